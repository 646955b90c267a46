//! [`Event`]: a flag that processes wait for (Python's `multiprocessing.Event`).
//!
//! One state word and the family's waiter word ([`EventCount`]) beside it:
//!
//! | bits of `word` | meaning |
//! |---|---|
//! | 0 (`SET`) | the flag |
//! | 1 (`SLEEPERS`) | a waiter may be asleep |
//! | 2..32 | generation: bumped by every `set` that finds the flag clear |
//!
//! `set` is one CAS that sets the flag, bumps the generation and clears `SLEEPERS`; if the
//! flag was there it notifies the event count, which wakes every sleeper in every process. A
//! waiter returns `true` when it sees the flag set *or* the generation moved since it
//! started, so a waiter blocked when `set` runs returns `true` even if `clear` follows at once
//! (as Python's `Event.wait` does). A waiter takes a ticket from the event count, sets
//! `SLEEPERS` (CAS) and sleeps on the ticket until the word shows a `set`; a `set` that finds
//! the flag notifies (the event count's flagged-waiter protocol,
//! [`EventCount::prepare_wait`], so no wake-up is lost). `SLEEPERS` is the notifier's gate: a
//! `set` nobody waits for costs its CAS alone, and a flag left by a killed waiter costs the
//! next `set` one wake-up, once (the `set` clears it).
//!
//! All-zero is a valid state: clear, nobody asleep. Any bit pattern is a valid state.

use std::fmt;
use std::time::{Duration, Instant};

use ipc_shm::sync::atomic::{AtomicU32, Ordering};
use ipc_shm::{Deadline, SelectableEventCount, ShmSafe};

pub(crate) const SET: u32 = 1;
pub(crate) const SLEEPERS: u32 = 2;
const GEN_ONE: u32 = 4;
pub(crate) const GEN_MASK: u32 = !(SET | SLEEPERS);

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
    pub(crate) word: AtomicU32,
    /// Where waiters sleep; notified by a `set` that found `SLEEPERS`. Its doorbell slots
    /// serve selectors and async waits.
    pub(crate) waiters: SelectableEventCount,
}

#[cfg(not(ipc_loom))]
const _: () = assert!(size_of::<Event>() == 24);

#[allow(unsafe_code)] // the ShmSafe marker; its argument follows
// SAFETY: (1) atomics only (the event count is two); (2) every bit pattern is a valid state
// (a garbage event count costs spurious wake-ups), all-zero is "clear, nobody asleep";
// (3) atomic mutation only; (4) no Drop; (5) `#[repr(C)]`.
unsafe impl ShmSafe for Event {
    /// 2: waiters sleep on an `EventCount` beside the word (was: on the word itself). 3: the
    /// event count carries doorbell slots (24 bytes in all); a version-2 setter would never
    /// ring a selector.
    const LAYOUT_VERSION: u32 = 3;
    /// No owner ids: an event may be shared with processes of another liveness registry.
    const OWNER_IDS: bool = false;
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
        Event { word: AtomicU32::new(0), waiters: SelectableEventCount::with_bells() }
    }

    /// A clear event.
    #[cfg(ipc_loom)]
    pub fn new() -> Event {
        Event { word: AtomicU32::new(0), waiters: SelectableEventCount::with_bells() }
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
            // The CAS that set the flag found a waiter's flag (see the module docs).
            self.waiters.notify_all_flagged();
        }
    }

    /// Clear the flag. Waiters blocked before the `set` that this undoes still return `true`.
    pub fn clear(&self) {
        // Relaxed: clearing publishes nothing; the generation and SLEEPERS bits stay.
        self.word.fetch_and(!SET, Ordering::Relaxed);
    }

    /// Block until the flag is set.
    pub fn wait(&self) {
        self.wait_deadline(Deadline::NEVER);
    }

    /// Block until the flag is set or `timeout` passes; `true` if it was set.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.wait_deadline(Deadline::after(timeout))
    }

    /// Block until the flag is set or `deadline` passes; `true` if it was set.
    pub fn wait_until(&self, deadline: Instant) -> bool {
        self.wait_deadline(Deadline::at(deadline))
    }

    /// Whether a waiter may be asleep on this event now (it noted the generation it waits
    /// past and flagged itself): a hint for diagnostics and tests. A waiter killed while
    /// asleep leaves it `true` until the next [`set`](Self::set).
    pub fn has_waiters(&self) -> bool {
        // Relaxed: a hint; see `wait_deadline` for the order a waiter follows.
        self.word.load(Ordering::Relaxed) & SLEEPERS != 0
    }

    fn wait_deadline(&self, deadline: Deadline) -> bool {
        // Acquire: as in `is_set`.
        let start = self.word.load(Ordering::Acquire);
        if start & SET != 0 {
            return true;
        }
        let generation = start & GEN_MASK;
        let done = |w: u32| w & SET != 0 || w & GEN_MASK != generation;
        loop {
            // Before the word is read and flagged (see EventCount::prepare_wait).
            let ticket = self.waiters.prepare_wait();
            // Acquire: as in `is_set`.
            let cur = self.word.load(Ordering::Acquire);
            if done(cur) {
                return true;
            }
            if deadline.has_passed() {
                return false;
            }
            // Relaxed: the flag and the setter's CAS are on this one word; the ticket taken
            // before does the rest (EventCount::prepare_wait).
            if cur & SLEEPERS == 0
                && self
                    .word
                    .compare_exchange(cur, cur | SLEEPERS, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            self.waiters.sleep(ticket, deadline);
        }
    }
}
