//! [`Event`]: a flag that processes wait for (Python's `multiprocessing.Event`).
//!
//! One `u32` word, also the futex word:
//!
//! | bits | meaning |
//! |---|---|
//! | 0 (`SET`) | the flag |
//! | 1 (`SLEEPERS`) | a waiter may be asleep |
//! | 2..32 | generation: bumped by every `set` that finds the flag clear |
//!
//! `set` is one CAS that sets the flag, bumps the generation and clears `SLEEPERS`; if the
//! flag was there it wakes every sleeper in every process (`FUTEX_WAKE` all). A waiter
//! returns `true` when it sees the flag set *or* the generation moved since it started, so a
//! waiter blocked when `set` runs returns `true` even if `clear` follows at once (as Python's
//! `Event.wait` does). A waiter sleeps only after setting `SLEEPERS` on the exact value it
//! then waits on: any later change either wakes it (a `set`) or fails the kernel's compare.
//! A killed waiter leaves at most a stale `SLEEPERS`, which costs the next `set` one syscall.
//!
//! All-zero is a valid state: clear, nobody asleep. Any bit pattern is a valid state.

use std::fmt;
use std::time::{Duration, Instant};

use ipc_shm::ShmSafe;
use ipc_shm::futex::{self, WaitResult};
use ipc_shm::sync::atomic::{AtomicU32, Ordering};

use crate::wait::{self, Spin};

const SET: u32 = 1;
const SLEEPERS: u32 = 2;
const GEN_ONE: u32 = 4;
const GEN_MASK: u32 = !(SET | SLEEPERS);

/// An event flag in shared memory. See the module docs.
///
/// ```
/// use ipc_sem::Event;
///
/// let ev = ipc_shm::Shared::anonymous(Event::new()).unwrap();
/// assert!(!ev.wait_timeout(std::time::Duration::from_millis(1)));
/// ev.set();
/// assert!(ev.is_set());
/// ev.wait();
/// ev.clear();
/// assert!(!ev.is_set());
/// ```
#[repr(C)]
pub struct Event {
    word: AtomicU32,
}

#[cfg(not(ipc_loom))]
const _: () = assert!(size_of::<Event>() == 4);

#[allow(unsafe_code)] // the ShmSafe marker; its argument follows
// SAFETY: (1) one atomic; (2) every bit pattern is a valid state, all-zero is "clear";
// (3) atomic mutation only; (4) no Drop; (5) `#[repr(C)]`.
unsafe impl ShmSafe for Event {
    const LAYOUT_VERSION: u32 = 1;
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event").field("set", &self.is_set()).finish()
    }
}

impl Default for Event {
    fn default() -> Self {
        Self::new()
    }
}

impl Event {
    /// A clear event.
    #[cfg(not(ipc_loom))]
    pub const fn new() -> Event {
        Event { word: AtomicU32::new(0) }
    }

    /// A clear event.
    #[cfg(ipc_loom)]
    pub fn new() -> Event {
        Event { word: AtomicU32::new(0) }
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        // Acquire: pairs with the Release CAS in `set`, so a caller that sees the flag sees
        // what the setter did before setting it.
        self.word.load(Ordering::Acquire) & SET != 0
    }

    /// Set the flag and wake every waiter in every process.
    pub fn set(&self) {
        // Relaxed: the CAS synchronises.
        let mut cur = self.word.load(Ordering::Relaxed);
        loop {
            if cur & SET != 0 {
                return;
            }
            let new = ((cur & GEN_MASK).wrapping_add(GEN_ONE) & GEN_MASK) | SET;
            // Release: pairs with the Acquire loads of waiters. Failure Relaxed: retry.
            match self.word.compare_exchange_weak(cur, new, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        if cur & SLEEPERS != 0 {
            futex::wake_all(&self.word);
        }
    }

    /// Clear the flag. Waiters blocked before the `set` that this undoes still return `true`.
    pub fn clear(&self) {
        // Relaxed: clearing publishes nothing; the generation and SLEEPERS bits stay.
        self.word.fetch_and(!SET, Ordering::Relaxed);
    }

    /// Block until the flag is set.
    pub fn wait(&self) {
        self.wait_deadline(None);
    }

    /// Block until the flag is set or `timeout` passes; `true` if it was set.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.wait_deadline(wait::deadline_after(timeout))
    }

    /// Block until the flag is set or `deadline` passes; `true` if it was set.
    pub fn wait_until(&self, deadline: Instant) -> bool {
        self.wait_deadline(Some(deadline))
    }

    /// Under loom: whether a waiter armed the sleepers flag (it captured its generation).
    #[cfg(ipc_loom)]
    #[doc(hidden)]
    pub fn loom_has_sleepers(&self) -> bool {
        self.word.load(Ordering::SeqCst) & SLEEPERS != 0
    }

    fn wait_deadline(&self, deadline: Option<Instant>) -> bool {
        // Acquire: as in `is_set`.
        let start = self.word.load(Ordering::Acquire);
        if start & SET != 0 {
            return true;
        }
        let generation = start & GEN_MASK;
        let done = |w: u32| w & SET != 0 || w & GEN_MASK != generation;
        let mut spin = Spin::new();
        loop {
            // Acquire: as in `is_set`.
            let cur = self.word.load(Ordering::Acquire);
            if done(cur) {
                return true;
            }
            if spin.spin() {
                continue;
            }
            let armed = cur | SLEEPERS;
            // Relaxed: the flag and the setter's CAS are on this one word.
            if cur & SLEEPERS == 0
                && self
                    .word
                    .compare_exchange(cur, armed, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            if futex::wait(&self.word, armed, deadline) == WaitResult::TimedOut {
                // Acquire: as in `is_set`.
                return done(self.word.load(Ordering::Acquire));
            }
        }
    }
}
