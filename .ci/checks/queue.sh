#!/usr/bin/env bash
# ipc-queue: the fuzz target of the ring (fuzz/fuzz_targets/ring.rs) must stay compile-correct.
# cargo-fuzz needs nightly, which CI lacks, so check it on stable (libfuzzer-sys builds there);
# its stable mirror, the adversary proptests, runs in `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/../.."
cd fuzz
CARGO_TARGET_DIR=../target/fuzz-check cargo check --quiet --bin ring
echo "fuzz target ring: compiles"
