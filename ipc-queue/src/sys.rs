//! The few OS calls of this crate (all through rustix, all safe): membarrier for the waiter
//! protocol, sched_yield and the current CPU for the spin policy.

#[cfg(not(ipc_loom))]
mod imp {
    use std::sync::atomic::{AtomicU8, Ordering};

    use rustix::thread::{MembarrierCommand, membarrier};

    const UNKNOWN: u8 = 0;
    const REGISTERED: u8 = 1;
    const UNAVAILABLE: u8 = 2;

    /// Process-wide: whether this process registered for GLOBAL_EXPEDITED membarriers. A
    /// forked child inherits both the registration and this value.
    static MODE: AtomicU8 = AtomicU8::new(UNKNOWN);

    /// Register this process (once) so that notifiers may skip their barrier.
    pub(crate) fn register() {
        // Relaxed: a process-local flag; the syscall below is idempotent, so two threads
        // racing here both register, harmlessly.
        if MODE.load(Ordering::Relaxed) != UNKNOWN {
            return;
        }
        let mode = match membarrier(MembarrierCommand::RegisterGlobalExpedited) {
            Ok(()) => REGISTERED,
            Err(_) => UNAVAILABLE,
        };
        // Relaxed: as above. A thread that still sees UNKNOWN takes the fallback (an RMW),
        // which is always correct.
        MODE.store(mode, Ordering::Relaxed);
    }

    /// Whether this process is registered (then notifiers use a compiler fence only).
    #[inline]
    pub(crate) fn membarrier_registered() -> bool {
        // Relaxed: process-local and monotonic (UNKNOWN -> final); set before any handle
        // exists that could notify.
        MODE.load(Ordering::Relaxed) == REGISTERED
    }

    /// The waiter's side of the protocol: a full barrier on every CPU that runs a registered
    /// process. `false` if this process cannot issue it (membarrier forbidden or missing):
    /// the waiter must then take the fallback described in `wait.rs`, because registered
    /// peers may still be skipping their barrier.
    pub(crate) fn heavy_barrier() -> bool {
        // Relaxed: as above.
        if MODE.load(Ordering::Relaxed) == UNAVAILABLE {
            return false;
        }
        membarrier(MembarrierCommand::GlobalExpedited).is_ok()
    }

    pub(crate) fn yield_now() {
        rustix::thread::sched_yield();
    }

    /// The calling thread's CPU + 1 (0 is "unknown" in the shared words).
    #[inline]
    pub(crate) fn my_cpu() -> u32 {
        ipc_shm::current_cpu().wrapping_add(1)
    }
}

#[cfg(ipc_loom)]
mod imp {
    pub(crate) fn yield_now() {
        loom::thread::yield_now();
    }

    /// Under loom every thread is "on another CPU": spin (which yields under loom).
    pub(crate) fn my_cpu() -> u32 {
        0
    }
}

pub(crate) use imp::*;
