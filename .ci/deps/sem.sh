#!/usr/bin/env bash
# ipc-sem: Python's posix_ipc, for the NamedSemaphore interop test (tests/tests/sem.rs). It
# ships manylinux wheels on PyPI; the C interop test needs only gcc.
set -euo pipefail
if python3 -c "import posix_ipc" 2>/dev/null; then
  exit 0
fi
python3 -m pip install --quiet --disable-pip-version-check posix_ipc \
  || echo "posix_ipc could not be installed: the Python interop test will say it is skipped"
