//! [`EventCount`]: the one waiter word of the family. A waiter sleeps until a condition over
//! *other* shared state holds; a notifier pays no syscall, and usually no locked instruction,
//! unless someone sleeps (an unconditional `FUTEX_WAKE` costs ~130 ns here, half a
//! cross-core round trip). Queues, condition variables, semaphores, events and barriers all
//! wait through it.
//!
//! Two words in shared memory: `sleepers` (how many waiters may be asleep, plus the sticky
//! [`FALLBACK`] bit) and `seq` (the futex word, bumped by every notify that found sleepers).
//! A waiter announces itself in `sleepers`, re-checks its condition and sleeps on `seq`; a
//! notifier, after publishing its change, wakes only if `sleepers` is non-zero. All-zero is
//! the initial state, so an `EventCount` can sit in any zeroed shared struct.
//!
//! That is the store-buffer pattern: the notifier stores the data then loads `sleepers`, the
//! waiter stores `sleepers` then loads the data, and without a StoreLoad barrier on *both*
//! sides both can miss each other. Two ways to pay for the notifier's barrier:
//!
//! - **membarrier (Linux >= 4.16)**: every process registers for
//!   `MEMBARRIER_CMD_GLOBAL_EXPEDITED` once (on its first notify); a waiter, on its way to
//!   sleep (the slow path), calls `membarrier(GLOBAL_EXPEDITED)`, which runs a full barrier
//!   on every CPU currently running a registered process. The notifier's fast path is then a
//!   compiler fence and a plain load of a line it shares read-only: no locked instruction.
//!   (The asymmetric Dekker of liburcu and folly's `asymmetricHeavyBarrier`.)
//! - **fallback** (registration refused, and under loom): the notifier reads `sleepers` with
//!   an RMW (`fetch_add(0, AcqRel)`), which is ordered against the waiter's RMW on the same
//!   word: either the notifier's RMW sees the waiter, or the waiter's RMW reads from it and
//!   so acquires the notifier's data store. This is the variant the loom models check.
//!
//! **Processes of both kinds on one word.** Whether membarrier works is a property of each
//! process (a seccomp sandbox may forbid it to one of them), so a registered notifier may face
//! a waiter that can issue no barrier. Such a waiter sets the sticky [`FALLBACK`] bit before
//! it announces itself; a registered notifier that sees the bit takes the RMW path, which is
//! correct whatever the waiter did. The waiter's announcement may not yet be visible to a
//! notifier racing with it, so the waiter also caps each sleep at [`FALLBACK_SLICE`]: a
//! wake-up lost in that race costs one slice at most, never a hang.
//!
//! A forked child inherits the registration (it is per address space and fork copies it).
//!
//! **Flagged waiters.** A primitive whose condition lives in one state word of its own can
//! keep a "someone waits" flag in that word instead (a semaphore ledger word, an event's or
//! a barrier's state): its notifier's RMW, which publishes the change, also reads the flag,
//! so it needs neither `sleepers` nor a barrier, and a flag left by a waiter killed asleep is
//! cleared by the next notify instead of costing every later one a wake-up (a count in
//! `sleepers` left by a killed waiter stays for good). Such a primitive uses
//! [`prepare_wait`](EventCount::prepare_wait) / [`sleep`](EventCount::sleep) on the waiter's
//! side and [`notify_all_flagged`](EventCount::notify_all_flagged) on the notifier's, and never
//! mixes them with `wait` / `notify_*` on one event count. Measured on ipc-sem's same-core
//! event ping-pong: the announced `wait` costs ~1 µs more per round trip (0.94x -> 1.19x of
//! a raw futex), the membarrier on every way to sleep.
//!
//! **Doorbells (selectors and async waits).** A [`SelectableEventCount`] carries
//! [`BELL_SLOTS`] doorbell ids after the two words. A waiter that sleeps in `poll`/`epoll`
//! (the `ipc-select` selector, a tokio future) registers its doorbell in a free slot and
//! counts itself in `sleepers` ([`register`](EventCount::register)), then checks its
//! condition as any waiter does (after [`bell::announce_barrier`], or arming its flag for a
//! flagged primitive). Every notify that takes the wake path then also rings the registered
//! doorbells ([`bell`]); the plain path (no sleeper, no flag) is unchanged. A notifier that
//! finds a doorbell gone (its waiter died) clears the slot and takes the count back; the
//! slot's CAS decides between it and the owner's [`deregister`](EventCount::deregister), so
//! exactly one of them does. The loom models in `tests/loom.rs` check both halves.
//!
//! | word | bits | meaning |
//! |---|---|---|
//! | `seq` | 0..32 | bumped by every notify that found sleepers (the futex word) |
//! | `sleepers` | 0..31 | waiters that may be asleep |
//! | `sleepers` | 31 ([`FALLBACK`]) | some waiter cannot issue membarrier: notify with an RMW |
//! | `bells[i]` | 0..32 | a registered doorbell's id, 0 free (selectable event counts only) |

pub mod bell;
#[cfg(all(feature = "tokio", not(ipc_loom)))]
mod ready_async;
mod waitable;

#[cfg(all(feature = "tokio", not(ipc_loom)))]
pub use ready_async::ready;

pub use waitable::{Check, Waitable};

use std::time::Duration;

use crate::deadline::Deadline;
use crate::futex;
use crate::sync::atomic::{AtomicU32, Ordering};

/// Sticky bit of `sleepers`: some waiter of this word cannot issue membarrier, so notifiers
/// must use the RMW path. The low bits count the sleepers.
pub const FALLBACK: u32 = 1 << 31;
/// The longest sleep of a waiter that cannot issue membarrier (see the module docs).
pub const FALLBACK_SLICE: Duration = Duration::from_millis(10);

/// The waiter word. See the module docs.
///
/// ```
/// use ipc_shm::{Deadline, EventCount};
/// use std::sync::atomic::{AtomicU32, Ordering};
///
/// let ready = AtomicU32::new(0);
/// let ec = EventCount::new();
/// std::thread::scope(|s| {
///     s.spawn(|| {
///         ready.store(1, Ordering::Release);
///         ec.notify_all();
///     });
///     assert!(ec.wait_until(|| ready.load(Ordering::Acquire) == 1, Deadline::NEVER));
/// });
/// ```
///
/// `BELLS` doorbell slots follow the two words (see [`bell`]): `EventCount` (no slots, 8
/// bytes) for words nobody selects on, [`SelectableEventCount`] for the primitives a
/// selector or an async future can wait on.
#[repr(C)]
#[derive(Debug)]
pub struct EventCount<const BELLS: usize = 0> {
    seq: AtomicU32,
    sleepers: AtomicU32,
    /// Doorbell ids of registered selectors (0: free); see [`bell`].
    bells: [AtomicU32; BELLS],
}

/// The event count of a primitive that a selector can wait on: [`BELL_SLOTS`] doorbells.
pub type SelectableEventCount = EventCount<BELL_SLOTS>;

/// Doorbell slots of a [`SelectableEventCount`]: how many selectors (or async futures) can
/// wait on one primitive with a doorbell at once; a further one polls in
/// [`FALLBACK_SLICE`]s. Three keep the word at 20 bytes, inside the padding the primitives
/// already had (an event: 24 bytes, a semaphore's header: unchanged at 64).
pub const BELL_SLOTS: usize = 3;

#[cfg(not(ipc_loom))] // loom atomics are bigger
const _: () = assert!(size_of::<EventCount>() == 8 && size_of::<SelectableEventCount>() == 20);

impl<const BELLS: usize> Default for EventCount<BELLS> {
    fn default() -> Self {
        Self::with_bells()
    }
}

impl EventCount {
    /// A new event count (all zero) without doorbell slots.
    #[cfg(not(ipc_loom))]
    pub const fn new() -> Self {
        Self::with_bells()
    }

    /// A new event count (all zero) without doorbell slots.
    #[cfg(ipc_loom)]
    pub fn new() -> Self {
        Self::with_bells()
    }
}

impl<const BELLS: usize> EventCount<BELLS> {
    /// A new event count (all zero) with `BELLS` doorbell slots (`SelectableEventCount::with_bells()`).
    #[cfg(not(ipc_loom))]
    pub const fn with_bells() -> Self {
        EventCount {
            seq: AtomicU32::new(0),
            sleepers: AtomicU32::new(0),
            bells: [const { AtomicU32::new(0) }; BELLS],
        }
    }

    /// A new event count (all zero) with `BELLS` doorbell slots.
    #[cfg(ipc_loom)]
    pub fn with_bells() -> Self {
        EventCount {
            seq: AtomicU32::new(0),
            sleepers: AtomicU32::new(0),
            bells: std::array::from_fn(|_| AtomicU32::new(0)),
        }
    }

    /// Wake every sleeper, if any. Call after the state change is published (a Release
    /// store or RMW of it).
    #[inline]
    pub fn notify_all(&self) {
        if self.may_have_sleepers() {
            self.wake(u32::MAX);
        }
    }

    /// Wake one sleeper, if any (for a change only one waiter can use: one permit, one
    /// slot). A waiter woken for nothing re-checks and sleeps again.
    #[inline]
    pub fn notify_one(&self) {
        if self.may_have_sleepers() {
            self.wake(1);
        }
    }

    #[cold]
    fn wake(&self, n: u32) {
        // Release: pairs with the Acquire load of `seq` in `wait`; the bump makes a waiter
        // that read the old value return from FUTEX_WAIT at once instead of sleeping.
        self.seq.fetch_add(1, Ordering::Release);
        if n == 1 {
            futex::wake_one(&self.seq);
        } else {
            futex::wake_all(&self.seq);
        }
        if BELLS > 0 {
            self.ring_bells();
        }
    }

    /// Ring every registered doorbell (the wake path of a [`SelectableEventCount`]; a word
    /// without slots compiles this away). A doorbell whose selector is gone is cleared here,
    /// and the CAS that clears it also decides that this notifier, not the owner's
    /// deregistration, takes its count back out of `sleepers`: exactly one of them does.
    #[cold]
    fn ring_bells(&self) {
        self.notify_bells();
    }

    /// Ring the registered doorbells only, without the futex wake: for a primitive whose
    /// blocking waiters sleep on a word of their own (an untracked semaphore's count) and
    /// which keeps this event count for its selectors. Call it where that word's wake-up
    /// happens (after the RMW that found its waiter flag), never on the plain path.
    #[cold]
    pub fn notify_bells(&self) {
        // Acquire: in the membarrier mode `may_have_sleepers` read `sleepers` Relaxed; this
        // fence pairs with the AcqRel announcement in `register`, so the slot written before
        // that announcement is visible to the loads below.
        crate::sync::atomic::fence(Ordering::Acquire);
        for slot in &self.bells {
            // Acquire: pairs with the AcqRel CAS in `register`.
            let id = slot.load(Ordering::Acquire);
            if id != 0 && bell::ring(id) == bell::Rang::Gone {
                // AcqRel: the slot's CAS decides who takes the count back (the owner's
                // `deregister` CASes the same slot). Failure Relaxed: someone else did.
                if slot.compare_exchange(id, 0, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                    // Release: as every withdrawal of a count.
                    self.sleepers.fetch_sub(1, Ordering::Release);
                }
            }
        }
    }

    /// Register the doorbell `id` (a [`bell::Doorbell`]'s) in a free slot and count it in
    /// `sleepers`, so that every notify from now on takes the wake path and rings it. `None`
    /// when every slot is taken (the caller then polls in [`FALLBACK_SLICE`]s; nothing is
    /// changed). Undo with [`deregister`](Self::deregister).
    ///
    /// The caller then checks its condition (after [`bell::announce_barrier`] for a word whose
    /// notifiers use [`notify_all`](Self::notify_all) / [`notify_one`](Self::notify_one); a
    /// flagged primitive arms its flag instead) and sleeps on the doorbell's fd: a notify
    /// after the check rings it, so no wake-up is lost between the check and the sleep.
    pub fn register(&self, id: u32) -> Option<BellSlot> {
        if id == 0 {
            return None;
        }
        for (i, slot) in self.bells.iter().enumerate() {
            // AcqRel: publishes the slot before the count below; pairs with the Acquire
            // loads in `ring_bells`. Failure Relaxed: the slot is taken, try the next.
            if slot.compare_exchange(0, id, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                // AcqRel: the announcement, as in `wait` (ordered against the notifier's
                // RMW in the fallback mode, followed by the heavy barrier otherwise).
                self.sleepers.fetch_add(1, Ordering::AcqRel);
                return Some(BellSlot { index: i, id });
            }
        }
        None
    }

    /// Withdraw a registration. `false` if a notifier had cleared the slot first, having
    /// found the doorbell unreachable (a doorbell in another network namespace looks dead):
    /// that notifier took the count back, and the caller may have missed its wake-up.
    pub fn deregister(&self, slot: BellSlot) -> bool {
        let Some(word) = self.bells.get(slot.index) else { return false };
        // AcqRel: as in `ring_bells`, whose CAS on this slot races with this one.
        // Failure Relaxed: the notifier cleared it and took the count.
        if word.compare_exchange(slot.id, 0, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
            // Release: as in `wait`.
            self.sleepers.fetch_sub(1, Ordering::Release);
            true
        } else {
            false
        }
    }

    /// A registered selector that could not issue the heavy barrier
    /// ([`bell::announce_barrier`] returned `false`): make notifiers take the RMW path, as
    /// [`wait`](Self::wait) does for such a waiter. The caller caps its sleeps at
    /// [`FALLBACK_SLICE`].
    pub fn set_fallback(&self) {
        // AcqRel: as in `wait`.
        self.sleepers.fetch_or(FALLBACK, Ordering::AcqRel);
    }

    /// The doorbell ids registered now (0: free), for diagnostics and tests.
    pub fn bell_ids(&self) -> [u32; BELLS] {
        // Relaxed: a snapshot.
        std::array::from_fn(|i| self.bells[i].load(Ordering::Relaxed))
    }

    /// The waiters counted in `sleepers` (without the [`FALLBACK`] bit), for diagnostics and
    /// tests.
    pub fn sleeper_count(&self) -> u32 {
        // Relaxed: a snapshot.
        self.sleepers.load(Ordering::Relaxed) & !FALLBACK
    }

    #[inline]
    fn may_have_sleepers(&self) -> bool {
        #[cfg(not(ipc_loom))]
        if crate::sys::membarrier_registered() {
            // The waiter's membarrier(GLOBAL_EXPEDITED) supplies the StoreLoad barrier for
            // this side: a compiler fence keeps the data store before this load here.
            std::sync::atomic::compiler_fence(Ordering::SeqCst);
            // Relaxed: ordered by the membarrier protocol described in the module docs.
            let s = self.sleepers.load(Ordering::Relaxed);
            if s & FALLBACK == 0 {
                return s != 0;
            }
            // A waiter that cannot issue the barrier uses this word: the RMW path below.
        }
        // AcqRel: an RMW on `sleepers` is ordered against the waiter's RMW on it (see the
        // module docs); Release publishes our data store to a waiter that reads from us.
        self.sleepers.fetch_add(0, Ordering::AcqRel) & !FALLBACK != 0
    }

    /// Sleep until `ready()` (checked after announcing ourselves) or `until`; returns the
    /// last value of `ready()`. One sleep at most (it may end early, spuriously, or at a
    /// [`FALLBACK_SLICE`]): callers loop, or use [`wait_until`](Self::wait_until).
    ///
    /// The notifier must make `ready()` true *before* it notifies, and `ready` must be exact:
    /// `false` only when the condition does not hold.
    pub fn wait(&self, mut ready: impl FnMut() -> bool, until: Deadline) -> bool {
        // Acquire: pairs with the Release bump in `wake`.
        let seq = self.seq.load(Ordering::Acquire);
        // AcqRel: the announcement; ordered against the notifier's RMW in the fallback, and
        // followed by the heavy barrier in the membarrier mode.
        let before = self.sleepers.fetch_add(1, Ordering::AcqRel);
        #[cfg(not(ipc_loom))]
        let until = if crate::sys::heavy_barrier() {
            until
        } else {
            if before & FALLBACK == 0 {
                // AcqRel: as the announcement; sticky, so registered notifiers take the RMW
                // path from now on.
                self.sleepers.fetch_or(FALLBACK, Ordering::AcqRel);
            }
            // A racing notifier may have missed the announcement: never sleep long.
            until.earliest(Deadline::after(FALLBACK_SLICE))
        };
        #[cfg(ipc_loom)]
        let _ = before;
        let mut ok = ready();
        if !ok {
            let _ = futex::wait(&self.seq, seq, until.instant());
            ok = ready();
        }
        // Release: nothing to publish really; the count is a hint for notifiers.
        self.sleepers.fetch_sub(1, Ordering::Release);
        ok
    }

    /// Block until `ready()` returns true (then `true`) or `until` passes (then the last
    /// value of `ready()`). `ready` is called again after every wake-up, spurious or not.
    pub fn wait_until(&self, mut ready: impl FnMut() -> bool, until: Deadline) -> bool {
        loop {
            if ready() {
                return true;
            }
            if self.wait(&mut ready, until) {
                return true;
            }
            if until.has_passed() {
                return ready();
            }
            #[cfg(ipc_loom)]
            if !until.is_never() {
                // No clock under loom: a timed wait times out at once.
                return ready();
            }
        }
    }

    /// The flagged waiter's first step: the ticket to [`sleep`](Self::sleep) on, taken
    /// *before* it reads its state word and flags itself there.
    ///
    /// The protocol, and why no wake-up is lost: the waiter (1) takes the ticket, (2) reads
    /// its state word, finds its condition false and sets its flag in it with an RMW that
    /// expects the value it read (or finds the flag already set), (3) sleeps on the ticket.
    /// The notifier publishes its change with an RMW of that word that clears the flag and,
    /// if the flag was set, calls [`notify_all_flagged`](Self::notify_all_flagged), which bumps
    /// the ticket and wakes. If the waiter's ticket predates the bump, the kernel's compare
    /// in [`sleep`](Self::sleep) catches it (returns at once, or sleeps and is woken); if the
    /// ticket already shows the bump (an Acquire load of the Release bump), the waiter's read
    /// in (2) comes after the notifier's RMW and sees the change.
    #[inline]
    pub fn prepare_wait(&self) -> u32 {
        // Acquire: pairs with the Release bump in `wake` (see above).
        self.seq.load(Ordering::Acquire)
    }

    /// The flagged waiter's sleep (see [`prepare_wait`](Self::prepare_wait)): returns at once
    /// if a notify came since `ticket` was taken, else sleeps until one comes or `until`.
    /// `false` only when `until` passed; callers re-check their condition either way.
    pub fn sleep(&self, ticket: u32, until: Deadline) -> bool {
        futex::wait(&self.seq, ticket, until.instant()) != futex::WaitResult::TimedOut
    }

    /// The flagged notifier's wake-up: call it after the RMW that published the change found
    /// a waiter's flag (see [`prepare_wait`](Self::prepare_wait)). Wakes every sleeper,
    /// without consulting `sleepers`.
    #[inline]
    pub fn notify_all_flagged(&self) {
        self.wake(u32::MAX);
    }

    /// Whether a waiter may be asleep (a hint, for statistics and tests).
    pub fn has_sleepers(&self) -> bool {
        // Relaxed: a hint only.
        self.sleepers.load(Ordering::Relaxed) & !FALLBACK != 0
    }

    /// The futex word (`seq`): it changes with every notify that found sleepers.
    pub fn seq_word(&self) -> &AtomicU32 {
        &self.seq
    }
}

/// A waiter announced on an [`EventCount`] by [`prepare_locked_wait`](EventCount::prepare_locked_wait):
/// it counts as a sleeper until dropped.
///
/// This is the split form a condition variable needs: the waiter announces itself while it
/// still holds its mutex, releases the mutex, and only then sleeps, with one announcement
/// covering every sleep of the wait (a single [`wait`](EventCount::wait) call cannot span the
/// unlock, and a loop of them would withdraw the announcement between two sleeps, where a
/// notifier could see no sleeper and skip the bump).
///
/// ```
/// use ipc_shm::{Deadline, EventCount};
/// use std::sync::Mutex;
///
/// let (state, ec) = (Mutex::new(false), EventCount::new());
/// std::thread::scope(|s| {
///     let mut ready = state.lock().unwrap();
///     s.spawn(|| {
///         *state.lock().unwrap() = true; // the change, under the lock...
///         ec.notify_all(); // ...then the notify
///     });
///     while !*ready {
///         let waiter = ec.prepare_locked_wait(); // announced under the lock
///         drop(ready);
///         while !waiter.notified() {
///             waiter.sleep(Deadline::NEVER);
///         }
///         drop(waiter);
///         ready = state.lock().unwrap();
///     }
/// });
/// ```
#[derive(Debug)]
#[must_use = "dropping it withdraws the announcement at once"]
pub struct LockedWait<'a, const BELLS: usize = 0> {
    ec: &'a EventCount<BELLS>,
    seq: u32,
}

/// A doorbell registered in one slot of an event count ([`EventCount::register`]); give it
/// back to [`EventCount::deregister`] of the same event count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a registration stays until it is deregistered"]
pub struct BellSlot {
    index: usize,
    id: u32,
}

impl<const BELLS: usize> EventCount<BELLS> {
    /// Announce a waiter whose announcement reaches every notifier it must not miss through a
    /// lock: the waiter calls this while it holds a lock (a condition variable's mutex), and
    /// each such notifier makes its change under that lock, then notifies (inside the lock or
    /// after it). The lock orders the announcement before the notifier's look at the sleepers
    /// count, so, unlike [`wait`](Self::wait), no membarrier is issued and no
    /// [`FALLBACK_SLICE`] cap applies. Release the lock, then [`sleep`](LockedWait::sleep)
    /// until [`notified`](LockedWait::notified) (or a deadline).
    pub fn prepare_locked_wait(&self) -> LockedWait<'_, BELLS> {
        // Acquire: pairs with the Release bump in `wake`.
        let seq = self.seq.load(Ordering::Acquire);
        // Relaxed: the caller's lock release (a Release) orders this announcement before every
        // notifier that takes the lock afterwards (an Acquire) and then reads `sleepers`.
        self.sleepers.fetch_add(1, Ordering::Relaxed);
        LockedWait { ec: self, seq }
    }
}

impl<const BELLS: usize> LockedWait<'_, BELLS> {
    /// Whether a notify that found sleepers came since the announcement (a notify by someone
    /// who did not take the lock may also count: a spurious wake-up).
    pub fn notified(&self) -> bool {
        // Acquire: pairs with the Release bump in `wake`.
        self.ec.seq.load(Ordering::Acquire) != self.seq
    }

    /// Sleep while no notify came since the announcement, until `until` at most. One sleep:
    /// it may end early (a signal, a wake-up for another waiter); check
    /// [`notified`](Self::notified) and loop. Returns the futex outcome.
    pub fn sleep(&self, until: Deadline) -> futex::WaitResult {
        futex::wait(&self.ec.seq, self.seq, until.instant())
    }
}

impl<const BELLS: usize> Drop for LockedWait<'_, BELLS> {
    fn drop(&mut self) {
        // Release: nothing to publish really; the count is a hint for notifiers (as in `wait`).
        self.ec.sleepers.fetch_sub(1, Ordering::Release);
    }
}
