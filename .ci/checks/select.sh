#!/usr/bin/env bash
# The selector and the async futures: `cargo test --workspace` builds every crate with the
# union of the workspace's features, so here each crate is also checked alone, with and
# without its `tokio` / `select` feature (a user depends on one crate at a time), and the
# runnable example of a tokio task serving a queue, a pipe and a child's exit runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
for c in ipc-shm ipc-queue ipc-sem; do
  cargo check -q -p "$c"
  cargo check -q -p "$c" --features tokio
done
cargo check -q -p ipc-pipe --features select
cargo check -q -p ipc-select
RUSTDOCFLAGS="-D warnings" cargo doc -q -p ipc-select --no-deps
timeout 120 cargo run -q -p ipc-select --example tokio_serve
