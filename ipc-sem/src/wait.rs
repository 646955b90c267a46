//! The waiting policy shared by every primitive here: a bounded spin before sleeping (its
//! budget is zero today), and a poll interval for waiters that must notice dead peers.
//!
//! A waiter re-checks its condition once more after arming its flag and then sleeps: no
//! spinning. Measured here (ipc-sem's bench, 2-process post/wait ping-pong): a spin of 15
//! `PAUSE`s cost 8.2 vs 7.7 µs per same-core round trip against the raw futex (the peer
//! cannot run while we spin) and bought nothing across cores, where the hypervisor's wake-up
//! takes 60-200 µs. A semaphore does not know whether its poster is running, so it cannot
//! spin only when that pays (the rule of the family). `STEPS` is the knob if a bare-metal
//! measurement says otherwise. Under loom there is no spinning at all.

use std::time::{Duration, Instant};

/// Spin steps before sleeping: `2^STEPS - 1` `PAUSE`s in all (see the module docs).
const STEPS: u32 = 0;

/// A bounded spin.
#[derive(Debug)]
pub(crate) struct Spin(#[cfg(not(ipc_loom))] ipc_shm::SpinWait);

impl Spin {
    pub(crate) fn new() -> Spin {
        #[cfg(not(ipc_loom))]
        {
            Spin(ipc_shm::SpinWait::with_steps(STEPS))
        }
        #[cfg(ipc_loom)]
        {
            let _ = STEPS;
            Spin()
        }
    }

    /// Spin one step; `false` once the budget is spent.
    #[inline]
    pub(crate) fn spin(&mut self) -> bool {
        #[cfg(not(ipc_loom))]
        {
            self.0.spin()
        }
        #[cfg(ipc_loom)]
        {
            false
        }
    }
}

/// How often a sleeper that waits on other processes checks that they are alive.
#[cfg_attr(ipc_loom, allow(dead_code))]
pub(crate) const POLL: Duration = Duration::from_millis(50);

/// The deadline of one sleep of a waiter that polls liveness: the caller's deadline or the
/// next poll, whichever is first. Under loom a timed futex wait times out at once, so the
/// model sleeps untimed unless the caller gave a deadline.
pub(crate) fn poll_deadline(deadline: Option<Instant>) -> Option<Instant> {
    #[cfg(ipc_loom)]
    {
        deadline
    }
    #[cfg(not(ipc_loom))]
    {
        let next = Instant::now() + POLL;
        Some(deadline.map_or(next, |d| d.min(next)))
    }
}

/// `now + timeout`, saturating to "never" for huge timeouts.
pub(crate) fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// Whether the owner `raw` (a word read from shared memory) may be alive: only a `Dead`
/// status says no; `Unknown` (garbage, registry trouble) never reclaims or breaks anything.
#[cfg(not(ipc_loom))]
pub(crate) fn is_alive(raw: u32) -> bool {
    ipc_shm::liveness::status_raw(raw) != ipc_shm::liveness::Status::Dead
}

/// Under loom every owner is alive except [`LOOM_DEAD_OWNER`], which models a killed one.
#[cfg(ipc_loom)]
pub(crate) fn is_alive(raw: u32) -> bool {
    raw != LOOM_DEAD_OWNER
}

/// Under loom: the owner id the models treat as dead.
#[cfg(ipc_loom)]
pub const LOOM_DEAD_OWNER: u32 = 0x3FFF_FFFF;
