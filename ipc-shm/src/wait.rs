//! The one sleep schedule of the family: a waiter that must notice a dead peer (a lock owner,
//! the producer of an empty queue, a barrier party) sleeps in bounded *slices* and checks the
//! peer's liveness after each. The first slice is short, so a death early in a wait is seen
//! within about one kernel tick; each later slice doubles, up to [`SLICE_MAX`], so a long
//! wait costs a liveness query (~1 µs) every 32 ms at most. Slice ends fall just after a
//! kernel tick (see `slice_end`), which makes the early wake-up of a timed futex wait free.
//!
//! ```
//! use ipc_shm::{Deadline, wait::Schedule};
//! let mut schedule = Schedule::new();
//! let user = Deadline::NEVER;
//! let first = schedule.next(user); // ~1 ms from now: sleep until then, then check the peer
//! assert!(!first.is_never());
//! ```

use std::sync::atomic::{AtomicU64, Ordering as StdOrdering};
use std::time::{Duration, Instant};

use rustix::time::{ClockId, clock_getres, clock_gettime};

use crate::deadline::Deadline;

/// The first sleep slice (pushed to just after a kernel tick): a dead peer is noticed within
/// about one tick (4 ms at `HZ=250`) when it dies early in the wait.
pub const SLICE_FIRST: Duration = Duration::from_millis(1);
/// The longest sleep between two liveness checks of a peer (tick alignment included): a dead
/// peer is noticed within this (plus one liveness query) of its death.
pub const SLICE_MAX: Duration = Duration::from_millis(32);

/// The kernel tick period in ns (`clock_getres(CLOCK_MONOTONIC_COARSE)` is one tick on
/// Linux), cached: 0 not asked yet, `u64::MAX` not usable (slices are then not aligned).
static TICK_NS: AtomicU64 = AtomicU64::new(0);

fn tick_ns() -> Option<u64> {
    // Relaxed: a cached constant of the running kernel; racing first callers store the same.
    match TICK_NS.load(StdOrdering::Relaxed) {
        0 => {
            let res = clock_getres(ClockId::MonotonicCoarse);
            let ns = u64::try_from(res.tv_sec)
                .ok()
                .and_then(|s| s.checked_mul(1_000_000_000))
                .and_then(|s| s.checked_add(u64::try_from(res.tv_nsec).ok()?))
                // A plausible tick: HZ from 50 to 10000.
                .filter(|ns| (100_000..=20_000_000).contains(ns));
            // Relaxed: as above.
            TICK_NS.store(ns.unwrap_or(u64::MAX), StdOrdering::Relaxed);
            ns
        }
        u64::MAX => None,
        ns => Some(ns),
    }
}

/// CLOCK_MONOTONIC (the clock of `Instant` and of the futex timeouts) in ns.
fn monotonic_ns() -> Option<u64> {
    let t = clock_gettime(ClockId::Monotonic);
    u64::try_from(t.tv_sec)
        .ok()?
        .checked_mul(1_000_000_000)?
        .checked_add(u64::try_from(t.tv_nsec).ok()?)
}

/// The end of a sleep slice of about `slice` from now, moved to just after a kernel tick.
///
/// Why: a futex wait with a timeout arms a timer that the kernel cancels when the waiter is
/// woken early (the normal case: the lock was released). If that timer was the CPU's next
/// event, cancelling it reprograms the clock-event device, which on a VM traps to the
/// host: on the reference VM (nested KVM, `HZ=250`) ~10 µs more per wake-up, +30% on a
/// cross-core handoff and 2.5x on a same-core one with an unaligned 1 ms slice. Ending the
/// slice just after a tick boundary (ticks fall on multiples of the period of
/// `CLOCK_MONOTONIC`) puts the tick first whenever the tick runs, as it does once the CPU
/// wakes, so the cancel is free; measured, an aligned 1 ms slice costs what an untimed
/// wait does. The end is at most `SLICE_MAX` from now.
pub(crate) fn slice_end(slice: Duration) -> Option<Instant> {
    let now = Instant::now();
    let (Some(tick), Some(mono)) = (tick_ns(), monotonic_ns()) else {
        return now.checked_add(slice);
    };
    let margin = tick / 8;
    let max = u64::try_from(SLICE_MAX.as_nanos()).unwrap_or(u64::MAX);
    // Room for the rounding up below within SLICE_MAX.
    let cap = max.saturating_sub(tick + margin).max(1);
    let want = u64::try_from(slice.as_nanos()).unwrap_or(u64::MAX).min(cap);
    let end = mono
        .checked_add(want)
        .map(|t| t.div_ceil(tick).saturating_mul(tick).saturating_add(margin));
    match end {
        Some(end) => now.checked_add(Duration::from_nanos(end.saturating_sub(mono))),
        None => now.checked_add(slice),
    }
}

/// The sleep schedule of one waiter: bounded slices so it re-checks its peer's liveness.
/// See the module docs.
#[derive(Debug, Clone)]
pub struct Schedule {
    next: Duration,
}

impl Default for Schedule {
    fn default() -> Self {
        Self::new()
    }
}

impl Schedule {
    /// A schedule starting at [`SLICE_FIRST`].
    pub const fn new() -> Schedule {
        Schedule { next: SLICE_FIRST }
    }

    /// The end of the next sleep: `until` (the caller's deadline), or sooner, at the end of
    /// the next slice, when the waiter should ask whether its peer died. Each call doubles
    /// the slice, up to [`SLICE_MAX`]. (Under loom, `until` itself: the model has no clock,
    /// and a slice would turn every blocking wait into a spin that hides lost wake-ups.)
    pub fn next(&mut self, until: Deadline) -> Deadline {
        if cfg!(ipc_loom) {
            return until;
        }
        let slice = slice_end(self.next);
        self.next = (self.next * 2).min(SLICE_MAX);
        until.earliest(Deadline::from_instant(slice))
    }

    /// Start again from [`SLICE_FIRST`] (a waiter that made progress).
    pub fn reset(&mut self) {
        self.next = SLICE_FIRST;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Slice ends are never past `SLICE_MAX`, never (much) before the asked length, and fall
    /// just after a tick boundary of CLOCK_MONOTONIC when the tick is known.
    #[test]
    fn slice_ends_are_bounded_and_tick_aligned() {
        let tick = tick_ns();
        println!("kernel tick: {tick:?} ns");
        for ms in [1, 2, 4, 8, 16, 32, 64] {
            let slice = Duration::from_millis(ms);
            let (mono, now) = (monotonic_ns().unwrap(), Instant::now());
            let end = slice_end(slice).unwrap();
            let ahead = end.duration_since(now);
            assert!(ahead <= SLICE_MAX + Duration::from_micros(100), "{ms} ms: {ahead:?}");
            let asked = slice.min(SLICE_MAX - Duration::from_nanos(tick.map_or(0, |t| t + t / 8)));
            assert!(ahead + Duration::from_micros(100) >= asked, "{ms} ms: {ahead:?}");
            if let Some(tick) = tick {
                let end_ns = mono + u64::try_from(ahead.as_nanos()).unwrap();
                let phase = (end_ns + tick - tick / 8) % tick;
                let off = phase.min(tick - phase);
                assert!(off < 200_000, "{ms} ms: {off} ns off the tick grid (+margin)");
            }
        }
    }
}
