//! The waiting policy shared by every primitive here: a short bounded spin before sleeping,
//! and a poll interval for waiters that must notice dead peers.
//!
//! The spin is deliberately short (a few hundred nanoseconds). On this class of machine a
//! peer on the same core cannot run while we spin, and a long spin turned a 1.7 µs same-core
//! handoff into 225 µs; across cores the futex wake-up costs tens of µs anyway, so a long spin
//! buys little. Under loom there is no spinning at all (it would only add interleavings).

use std::time::{Duration, Instant};

/// Spin steps before sleeping: `2^STEPS - 1` `PAUSE`s in all.
const STEPS: u32 = 4;

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

/// Whether the owner `raw` (a word read from shared memory) is alive. An error asking
/// (registry trouble) counts as alive: nothing is ever reclaimed or broken on a doubt.
#[cfg(not(ipc_loom))]
pub(crate) fn is_alive(raw: u32) -> bool {
    ipc_shm::liveness::is_alive_raw(raw).unwrap_or(true)
}

/// Under loom every owner is alive except [`LOOM_DEAD_OWNER`], which models a killed one.
#[cfg(ipc_loom)]
pub(crate) fn is_alive(raw: u32) -> bool {
    raw != LOOM_DEAD_OWNER
}

/// Under loom: the owner id the models treat as dead.
#[cfg(ipc_loom)]
pub const LOOM_DEAD_OWNER: u32 = 0x3FFF_FFFF;
