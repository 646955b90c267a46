//! Bounded shared-memory queues (MPMC, SPSC, typed, joinable) that survive SIGKILL.
#![deny(unsafe_code)]

mod error;
pub mod ring;
mod raw;
mod region;
mod sys;
mod wait;

#[cfg(not(ipc_loom))]
mod joinable;
#[cfg(not(ipc_loom))]
mod queue;
#[cfg(not(ipc_loom))]
mod spsc;
#[cfg(not(ipc_loom))]
mod typed;

/// Atomics from core, or loom's under `--cfg ipc_loom`.
pub(crate) mod sync {
    pub(crate) use ipc_shm::sync::atomic::{AtomicU32, AtomicU64, Ordering};
}

pub use error::{
    Corruption, Error, JoinTimeoutError, RecvError, RecvTimeoutError, Result, SendError,
    SendTimeoutError, TryRecvError, TrySendError,
};
#[cfg(not(ipc_loom))]
pub use joinable::JoinableQueue;
#[cfg(not(ipc_loom))]
pub use queue::{Queue, QueueOptions, RECOVERY_CHECK, RecvRef, SendSlot, Stats};
#[cfg(not(ipc_loom))]
pub use spsc::{Receiver, Sender, SpscQueue, SpscRef, SpscSlot};
#[cfg(not(ipc_loom))]
pub use typed::TypedQueue;
