//! Waiting without lost wake-ups and without paying for it on the hot path.
//!
//! [`Waiters`] is a pair of words in shared memory: `sleepers` (how many waiters may be
//! asleep) and `seq` (the futex word, bumped by every notify that found sleepers). A waiter
//! announces itself in `sleepers`, re-checks its condition and sleeps on `seq`; a notifier,
//! after publishing its change, wakes only if `sleepers` is non-zero (an unconditional
//! `FUTEX_WAKE` costs ~130 ns here, half a cross-core round trip).
//!
//! That is the store-buffer pattern: the notifier stores the data then loads `sleepers`, the
//! waiter stores `sleepers` then loads the data, and without a StoreLoad barrier on *both*
//! sides both can miss each other. Two ways to pay for the notifier's barrier:
//!
//! - **membarrier (the default on Linux >= 4.16)**: every process that uses a queue registers
//!   for `MEMBARRIER_CMD_GLOBAL_EXPEDITED` once; a waiter, on its way to sleep (the slow path),
//!   calls `membarrier(GLOBAL_EXPEDITED)`, which runs a full barrier on every CPU currently
//!   running a registered process. The notifier's fast path is then a compiler fence and a
//!   plain load of a line it shares read-only: no locked instruction per message. (The
//!   asymmetric Dekker of liburcu and folly's `asymmetricHeavyBarrier`.)
//! - **fallback** (registration refused, and under loom): the notifier reads `sleepers` with an
//!   RMW (`fetch_add(0, AcqRel)`), which is ordered against the waiter's RMW on the same word:
//!   either the notifier's RMW sees the waiter, or the waiter's RMW reads from it and so
//!   acquires the notifier's data store. This is the variant the loom models check.
//!
//! A forked child inherits the registration (it is per address space and fork copies it).
//!
//! **Processes of both kinds on one queue.** Whether membarrier works is a property of each
//! process (a seccomp sandbox may forbid it to one of them), so a registered notifier may face
//! a waiter that could neither register nor issue the barrier. Such a waiter sets the sticky
//! [`FALLBACK`] bit of `sleepers` (with an RMW) before it announces itself; a registered
//! notifier that sees the bit takes the RMW path, which is correct whatever the waiter did.
//! The waiter's announcement may not yet be visible to a notifier racing with it, so the
//! waiter also caps each sleep at [`FALLBACK_SLICE`] and checks again: in that mixed set-up a
//! wake-up lost in the race costs one slice at most, never a hang.
//!
//! # When to spin
//! [`Policy`] decides between a bounded spin, a few `sched_yield`s, and sleeping: spinning is
//! only worth it when the peer can be running on another CPU; when it last ran on *our* CPU a
//! spin only burns the time slice it needs (a 1.7 µs same-core handoff became 225 µs with a
//! 10k-iteration spin in our measurements), so we yield to it instead, then sleep.

use std::time::{Duration, Instant};

use ipc_shm::futex;

use crate::sync::{AtomicU32, Ordering};

/// Sticky bit of `sleepers`: some waiter of this queue cannot issue membarrier, so notifiers
/// must use the RMW path. The low bits count the sleepers.
const FALLBACK: u32 = 1 << 31;
/// The longest sleep of a waiter that cannot issue membarrier (see the module docs).
const FALLBACK_SLICE: Duration = Duration::from_millis(10);

/// Waiter flag + futex word. All-zero is the initial state.
#[repr(C)]
pub(crate) struct Waiters {
    seq: AtomicU32,
    sleepers: AtomicU32,
}

#[cfg(not(ipc_loom))]
const _: () = assert!(size_of::<Waiters>() == 8);

impl Waiters {
    #[cfg(ipc_loom)]
    pub(crate) fn new() -> Waiters {
        Waiters { seq: AtomicU32::new(0), sleepers: AtomicU32::new(0) }
    }

    /// Wake every sleeper, if any. Call after the state change is published (Release).
    #[inline]
    pub(crate) fn notify(&self) {
        if self.may_have_sleepers() {
            self.wake();
        }
    }

    #[cold]
    fn wake(&self) {
        // Release: pairs with the Acquire load of `seq` in `wait`; the bump makes a waiter
        // that read the old value return from FUTEX_WAIT at once instead of sleeping.
        self.seq.fetch_add(1, Ordering::Release);
        futex::wake_all(&self.seq);
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
            // A waiter that cannot issue the barrier uses this queue: the RMW path below.
        }
        // AcqRel: an RMW on `sleepers` is ordered against the waiter's RMW on it (see the
        // module docs); Release publishes our data store to a waiter that reads from us.
        self.sleepers.fetch_add(0, Ordering::AcqRel) & !FALLBACK != 0
    }

    /// Sleep until `ready()` (checked after announcing ourselves) or the deadline; returns
    /// the last value of `ready()`. One sleep at most: callers loop.
    pub(crate) fn wait(&self, mut ready: impl FnMut() -> bool, deadline: Option<Instant>) -> bool {
        // Acquire: pairs with the Release bump in `wake`.
        let seq = self.seq.load(Ordering::Acquire);
        // AcqRel: the announcement; ordered against the notifier's RMW in the fallback, and
        // followed by the heavy barrier in the membarrier mode.
        let before = self.sleepers.fetch_add(1, Ordering::AcqRel);
        #[cfg(not(ipc_loom))]
        let deadline = if crate::sys::heavy_barrier() {
            deadline
        } else {
            if before & FALLBACK == 0 {
                // AcqRel: as the announcement; sticky, so registered notifiers take the RMW
                // path from now on.
                self.sleepers.fetch_or(FALLBACK, Ordering::AcqRel);
            }
            // A racing notifier may have missed the announcement: never sleep long.
            let cap = Instant::now() + FALLBACK_SLICE;
            Some(deadline.map_or(cap, |d| d.min(cap)))
        };
        #[cfg(ipc_loom)]
        let _ = before;
        let mut ok = ready();
        if !ok {
            let r = futex::wait(&self.seq, seq, deadline);
            ok = ready();
            let _ = r;
        }
        // Release: nothing to publish really; the count is a hint for notifiers.
        self.sleepers.fetch_sub(1, Ordering::Release);
        ok
    }
}

/// Whether to spin, yield or sleep while waiting for the other side.
///
/// The spin is linear, not exponential: one `PAUSE` between two looks at the condition,
/// as a polling caller's loop would do, so a message that arrives while we spin is seen
/// within tens of nanoseconds (an exponential backoff's late steps of hundreds of `PAUSE`s
/// would add microseconds to every handoff; even four `PAUSE`s per look cost a 64 B
/// ping-pong ~0.5x of the spin floor against polling). It is bounded by time, not by a
/// count of looks (a `PAUSE` is ~10 ns on one CPU and ~25 ns on another): [`SPIN_FOR`].
#[derive(Debug)]
pub(crate) struct Policy {
    spins: u32,
    yields: u32,
    same_cpu: Option<bool>,
    /// When the spin began: read at the first look at the clock, [`CLOCK_EVERY`] looks in
    /// (a wait that ends sooner never reads it).
    since: Option<Instant>,
}

/// Yields before sleeping when the peer shares our CPU.
const MAX_YIELDS: u32 = 8;
/// Looks between two reads of the clock while spinning.
const CLOCK_EVERY: u32 = 64;
/// How long to spin, when the peer runs on another CPU, before sleeping: longer than a
/// cross-core futex wake-up here (~30 µs one-way on the reference VM), so that the reply of
/// a peer our message just woke still finds us spinning instead of costing a second wake-up.
const SPIN_FOR: Duration = Duration::from_micros(40);

impl Policy {
    pub(crate) fn new() -> Policy {
        Policy { spins: 0, yields: 0, same_cpu: None, since: None }
    }

    /// One step of busy waiting; `false` once it is time to sleep. `peer_cpu` is the CPU + 1
    /// the other side published (0 unknown), `my_cpu` ours + 1.
    pub(crate) fn step(&mut self, peer_cpu: &AtomicU32, my_cpu: u32) -> bool {
        if cfg!(ipc_loom) {
            return false; // models sleep at once: spinning only adds interleavings
        }
        let same = *self.same_cpu.get_or_insert_with(|| {
            // Relaxed: a placement hint.
            peer_cpu.load(Ordering::Relaxed) == my_cpu
        });
        if !same {
            self.spins = self.spins.wrapping_add(1);
            if self.spins.is_multiple_of(CLOCK_EVERY) {
                let now = Instant::now();
                if now.duration_since(*self.since.get_or_insert(now)) >= SPIN_FOR {
                    return false;
                }
            }
            ipc_shm::sync::spin_loop();
            return true;
        }
        if self.yields < MAX_YIELDS {
            self.yields += 1;
            crate::sys::yield_now();
            return true;
        }
        false
    }
}
