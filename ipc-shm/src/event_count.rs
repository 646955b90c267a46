//! [`EventCount`]: the waiter-flag helper. A waiter sleeps until a condition over *other*
//! shared state holds; a notifier pays one atomic instruction and no syscall unless someone
//! sleeps (an unconditional `FUTEX_WAKE` costs ~130 ns here, half a cross-core round trip).
//!
//! State table of the word:
//!
//! | bits | meaning |
//! |---|---|
//! | 0 (`SLEEPERS`) | at least one waiter may be asleep on the word |
//! | 1..32 | epoch, bumped by every notify that found `SLEEPERS` |
//!
//! All-zero is the initial state, so an `EventCount` can sit in any zeroed shared struct.

use std::time::Instant;

use crate::futex::{self, WaitResult};
use crate::sync::atomic::{AtomicU32, Ordering};

const SLEEPERS: u32 = 1;
const EPOCH: u32 = 2;

/// An event count over one `u32` word in shared memory. See the module docs.
///
/// ```
/// use ipc_shm::EventCount;
/// use std::sync::atomic::{AtomicU32, Ordering};
///
/// let ready = AtomicU32::new(0);
/// let ec = EventCount::new();
/// std::thread::scope(|s| {
///     s.spawn(|| {
///         ready.store(1, Ordering::Release);
///         ec.notify_all();
///     });
///     assert!(ec.wait_until(|| ready.load(Ordering::Acquire) == 1, None));
/// });
/// ```
#[repr(C)]
#[derive(Debug, Default)]
pub struct EventCount {
    word: AtomicU32,
}

#[cfg(not(ipc_loom))] // loom atomics are bigger
const _: () = assert!(size_of::<EventCount>() == 4);

impl EventCount {
    /// A new event count (all zero).
    #[cfg(not(ipc_loom))]
    pub const fn new() -> Self {
        EventCount { word: AtomicU32::new(0) }
    }

    /// A new event count (all zero).
    #[cfg(ipc_loom)]
    pub fn new() -> Self {
        EventCount { word: AtomicU32::new(0) }
    }

    /// Block until `ready()` returns true (then `true`) or the deadline passes (then the last
    /// value of `ready()`). `ready` is called again after every wake-up, spurious or not.
    ///
    /// The notifier must make `ready()` true *before* calling [`notify_all`](Self::notify_all)
    /// or [`notify_one`](Self::notify_one). `ready` must be exact: `false` only when the
    /// condition does not hold (a condition that takes a token with a CAS must retry a failed
    /// CAS, not report `false`, or the wake-up meant for it is lost).
    pub fn wait_until(&self, mut ready: impl FnMut() -> bool, deadline: Option<Instant>) -> bool {
        loop {
            if ready() {
                return true;
            }
            // AcqRel: the RMW orders against the notifier's RMW on the same word. Either ours
            // comes first in the word's modification order (the notifier then sees SLEEPERS
            // and wakes us) or the notifier's comes first (we then acquire its Release and the
            // re-check below sees its state change). No SeqCst fence needed.
            let armed = self.word.fetch_or(SLEEPERS, Ordering::AcqRel) | SLEEPERS;
            if ready() {
                return true;
            }
            if futex::wait(&self.word, armed, deadline) == WaitResult::TimedOut {
                return ready();
            }
        }
    }

    /// Wake every sleeping waiter; one RMW and no syscall when nobody sleeps.
    pub fn notify_all(&self) {
        // AcqRel: Release publishes the caller's state change to a waiter whose arming RMW
        // reads from this one; pairs with the AcqRel `fetch_or` in `wait_until`.
        let mut cur = self.word.fetch_or(0, Ordering::AcqRel);
        loop {
            if cur & SLEEPERS == 0 {
                return;
            }
            let next = cur.wrapping_add(EPOCH) & !SLEEPERS;
            // AcqRel: same pairing as above; failure is Relaxed, we only retry.
            match self.word.compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        futex::wake_all(&self.word);
    }

    /// Wake one sleeping waiter; one RMW and no syscall when nobody sleeps. The flag stays set
    /// (others may still sleep), so later notifies keep waking until a `notify_all`.
    pub fn notify_one(&self) {
        // AcqRel: as in `notify_all`.
        let cur = self.word.fetch_or(0, Ordering::AcqRel);
        if cur & SLEEPERS == 0 {
            return;
        }
        // AcqRel: as above; bumping the epoch makes a waiter that is about to sleep on the old
        // value return at once instead of sleeping through this wake.
        self.word.fetch_add(EPOCH, Ordering::AcqRel);
        futex::wake_one(&self.word);
    }

    /// Whether a waiter may be asleep (a hint, for statistics and tests).
    pub fn has_sleepers(&self) -> bool {
        // Relaxed: a hint only.
        self.word.load(Ordering::Relaxed) & SLEEPERS != 0
    }
}
