#!/usr/bin/env bash
# Every cargo-fuzz target (fuzz/fuzz_targets: header, ring, frame, handshake, pickle) must stay
# compile-correct. cargo-fuzz itself needs nightly, which CI lacks, so check them on stable
# (libfuzzer-sys builds there); their stable mirrors are the proptests run by `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/../../fuzz"
CARGO_TARGET_DIR=../target/fuzz-check cargo check --quiet --bins
echo "fuzz targets compile: $(ls fuzz_targets | tr '\n' ' ')"
