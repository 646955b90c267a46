#!/usr/bin/env bash
# ipc-pipe's optional features (serde, pickle, tokio, shm): `cargo test --workspace` builds
# ipc-pipe with its default features only, so the feature tests, lints and doc links run here.
set -euo pipefail
cd "$(dirname "$0")/../.."
for f in serde pickle tokio shm; do
  cargo check -p ipc-pipe --features "$f"
done
cargo clippy -p ipc-pipe --all-features --all-targets -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc -p ipc-pipe --all-features --no-deps
cargo test -p ipc-pipe --all-features
# The fuzz targets (frame, handshake, pickle) compile on stable; running them needs cargo-fuzz and
# nightly. Checking them builds libFuzzer (C++), so only in the soak tier.
if [ "${IPC_SOAK:-0}" = 1 ]; then
  CARGO_TARGET_DIR=target/fuzz-check cargo check --manifest-path fuzz/Cargo.toml --bin frame --bin handshake --bin pickle
fi
