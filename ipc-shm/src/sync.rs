//! Atomics and spin hints from `core`, or from loom under `--cfg ipc_loom`.
//!
//! Every crate of the family declares its shared words with these types so that its state
//! machines can be model-checked by loom with the same source.

#[cfg(not(ipc_loom))]
pub use core::sync::atomic;

#[cfg(ipc_loom)]
pub use loom::sync::atomic;

/// A spin-loop hint (`PAUSE`); under loom, a yield so the model makes progress.
#[inline]
pub fn spin_loop() {
    #[cfg(not(ipc_loom))]
    core::hint::spin_loop();
    #[cfg(ipc_loom)]
    loom::thread::yield_now();
}
