//! `cargo run --release -p ipc-bench`: the benchmark table of the ipc family.
//!
//! The runner is being built (see the bench issue); until it lands this prints a notice.

fn main() {
    println!(
        "ipc-bench: the benchmark runner is not built yet.\n\
         Per-crate micro-benchmarks: cargo bench -p ipc-shm"
    );
}
