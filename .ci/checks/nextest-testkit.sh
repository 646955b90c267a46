#!/usr/bin/env bash
# The harness must behave the same under nextest (one process per test) as under cargo test.
set -euo pipefail
cargo nextest run -p ipc-testkit --no-fail-fast
