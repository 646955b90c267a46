//! Criterion benches of ipc-pipe (filled in below).
fn main() {}
