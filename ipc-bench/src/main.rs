//! `cargo run --release -p ipc-bench`: the benchmark table of the ipc family.
//!
//! See the library docs (`ipc_bench`) and the crate README for what is measured and how.
#![deny(unsafe_code)]

fn main() -> std::process::ExitCode {
    // Spawned children of the process rows (ipc-process, procspawn) start here.
    ipc_process::init();
    #[cfg(feature = "procspawn")]
    procspawn::init();
    ipc_bench::main_with_args(std::env::args().skip(1))
}
