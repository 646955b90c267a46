//! Who holds a lock and whether they are alive: owner ids from `ipc_shm::liveness`, the
//! waiting policy (sleep in bounded slices so a dead owner is noticed), and the internal
//! outcome of the raw state machines.
//!
//! The state machines take the oracle as a parameter ([`Liveness`]): [`System`] in real use,
//! a model with fake owners in the loom tests (which cannot kill a process).

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering as StdOrdering};
use std::time::{Duration, Instant};

use ipc_shm::liveness;
use rustix::time::{ClockId, clock_getres, clock_gettime};

use crate::error::{LockError, TryLockError};

/// The first sleep of a waiter lasts about this long (pushed to just after a kernel tick, see
/// [`slice_end`]) before it asks whether the owner is alive; each later slice doubles, up to
/// [`SLICE_MAX`]. A dead owner is therefore noticed within `SLICE_MAX` (plus one liveness
/// query, ~1 µs) of its death, and within about one tick (4 ms at `HZ=250`) when it dies in
/// the first few milliseconds of the wait. (An owner already dead when the waiter arrives is
/// noticed before it sleeps.)
pub(crate) const SLICE_FIRST: Duration = Duration::from_millis(1);
/// The longest sleep between two liveness checks of the owner (tick alignment included).
pub(crate) const SLICE_MAX: Duration = Duration::from_millis(32);

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
fn slice_end(slice: Duration) -> Option<Instant> {
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

/// What the state machine needs to know about owners. See the module docs.
#[doc(hidden)]
pub trait Liveness {
    /// The calling process's owner id (non-zero, at most 30 bits).
    ///
    /// # Errors
    /// When the process cannot register.
    fn me(&self) -> Result<u32, ipc_shm::Error>;

    /// Whether `owner`, read from a lock word, is a live process, a dead one, or no owner id
    /// at all (garbage).
    ///
    /// # Errors
    /// When the liveness registry cannot be queried.
    fn status(&self, owner: u32) -> Result<OwnerStatus, ipc_shm::Error>;
}

/// The answer of [`Liveness::status`].
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerStatus {
    /// The owner is a live process (or a stopped one: a slow peer is not a dead one).
    Alive,
    /// The owner was a registered process and is dead.
    Dead,
    /// The value cannot be an owner id that ever registered: a corrupted word.
    Invalid,
}

/// This process's owner word (`raw_mutex::owner_word` of its id), cached so the fast paths pay
/// one plain load (0: not known yet). A fork handler clears it in the child, which registers
/// afresh and gets its own id.
static ME: AtomicU64 = AtomicU64::new(0);
/// Registration of that fork handler: 0 not yet, 1 in progress, 2 done, 3 failed. An atomic
/// rather than a `Once`: a child forked while another thread registers inherits "in progress"
/// with nobody to finish it, and must not block on it (it just never caches).
static ATFORK: AtomicU8 = AtomicU8::new(0);

extern "C" fn forget_me_in_child() {
    // Relaxed: the child has one thread; only an atomic store here (async-signal-safe).
    ME.store(0, StdOrdering::Relaxed);
}

/// The cached owner word, if this process has one (the lock fast paths).
#[inline]
pub(crate) fn cached_me_word() -> Option<u64> {
    // Relaxed: the id is immutable for the life of the process once stored (a forked child
    // starts from the cleared value), and it orders nothing else.
    match ME.load(StdOrdering::Relaxed) {
        0 => None,
        word => Some(word),
    }
}

/// The cached owner id, if this process has one.
#[inline]
pub(crate) fn cached_me() -> Option<u32> {
    cached_me_word().map(|w| w as u32)
}

/// Whether `owner` is this process's owner id: the test every release makes, so that a guard
/// inherited by a forked child (which has its own id, or none yet) releases nothing its parent
/// holds. One plain load on the fast path.
#[inline]
pub(crate) fn is_me(owner: u32) -> bool {
    // Relaxed: see `cached_me_word`. An unknown id (0) never equals an owner (never 0).
    ME.load(StdOrdering::Relaxed) as u32 == owner || is_me_slow(owner)
}

#[cold]
#[inline(never)]
fn is_me_slow(owner: u32) -> bool {
    // In a forked child this registers the child afresh (its own id, never the parent's); a
    // process that cannot register holds nothing.
    me().is_ok_and(|me| me == owner)
}

/// The owner id, registering (and caching, when the fork handler is in place) on first use.
#[inline]
pub(crate) fn me() -> Result<u32, ipc_shm::Error> {
    match cached_me() {
        Some(me) => Ok(me),
        None => me_slow(),
    }
}

#[cold]
fn me_slow() -> Result<u32, ipc_shm::Error> {
    // AcqRel: the winner's registration happens before its Release store of the outcome,
    // which a later Acquire load here pairs with.
    if ATFORK.compare_exchange(0, 1, StdOrdering::AcqRel, StdOrdering::Acquire).is_ok() {
        let outcome = if crate::sys::atfork_child(forget_me_in_child).is_ok() { 2 } else { 3 };
        // Release: pairs with the Acquire load below.
        ATFORK.store(outcome, StdOrdering::Release);
    }
    let me = liveness::current()?.get();
    // Without the fork handler a cached id could leak into a forked child: cache only once it
    // is registered.
    // Acquire: pairs with the Release store above.
    if ATFORK.load(StdOrdering::Acquire) == 2 {
        // Relaxed: see `cached_me_word`.
        ME.store(crate::raw_mutex::owner_word(me), StdOrdering::Relaxed);
    }
    Ok(me)
}

/// The real oracle: `ipc_shm::liveness`.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, Default)]
pub struct System;

impl Liveness for System {
    #[inline]
    fn me(&self) -> Result<u32, ipc_shm::Error> {
        me()
    }

    fn status(&self, owner: u32) -> Result<OwnerStatus, ipc_shm::Error> {
        // The family's one rule: only Dead is a death. Unknown (a garbage id, a slot never
        // used, the registry unavailable) keeps the waiter waiting until its deadline.
        Ok(match liveness::status_raw(owner) {
            liveness::Status::Alive => OwnerStatus::Alive,
            liveness::Status::Dead => OwnerStatus::Dead,
            liveness::Status::Unknown => OwnerStatus::Invalid,
        })
    }
}

/// How long a lock operation may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Not at all (`try_`).
    No,
    /// Until acquired.
    Forever,
    /// Until the deadline.
    Until(Instant),
}

impl Wait {
    pub(crate) fn for_duration(timeout: Duration) -> Wait {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => Wait::Until(deadline),
            None => Wait::Forever,
        }
    }

    /// Whether the caller's deadline has passed.
    pub(crate) fn expired(self) -> bool {
        match self {
            Wait::No => true,
            Wait::Forever => false,
            Wait::Until(deadline) => Instant::now() >= deadline,
        }
    }
}

/// The sleep schedule of one waiter: bounded slices so it re-checks the owner's liveness.
#[derive(Debug)]
pub(crate) struct Slices {
    next: Duration,
}

impl Slices {
    pub(crate) fn new() -> Slices {
        Slices { next: SLICE_FIRST }
    }

    /// The deadline of the next sleep: the caller's, or sooner, to ask whether the owner died.
    /// (Under loom the caller's own deadline: the model has no clock, and a slice would turn
    /// every blocking wait into a spin that hides lost wake-ups.)
    pub(crate) fn next_deadline(&mut self, wait: Wait) -> Option<Instant> {
        let user = match wait {
            Wait::Until(deadline) => Some(deadline),
            Wait::No | Wait::Forever => None,
        };
        if cfg!(ipc_loom) {
            return user;
        }
        let slice = slice_end(self.next);
        self.next = (self.next * 2).min(SLICE_MAX);
        match (user, slice) {
            (Some(u), Some(s)) => Some(u.min(s)),
            (u, s) => u.or(s),
        }
    }
}

/// Internal outcome of the raw state machines, converted to the public enums at the edge.
#[derive(Debug)]
pub(crate) enum RawError {
    WouldBlock,
    TimedOut,
    NotRecoverable,
    Corrupted(u64),
    TooManyReaders,
    Liveness(Box<ipc_shm::Error>),
}

impl From<ipc_shm::Error> for RawError {
    fn from(e: ipc_shm::Error) -> Self {
        RawError::Liveness(Box::new(e))
    }
}

impl RawError {
    pub(crate) fn into_try<G>(self) -> TryLockError<G> {
        match self {
            RawError::WouldBlock => TryLockError::WouldBlock,
            RawError::TimedOut => TryLockError::TimedOut,
            RawError::NotRecoverable => TryLockError::NotRecoverable,
            RawError::Corrupted(word) => TryLockError::Corrupted { word },
            RawError::TooManyReaders => TryLockError::TooManyReaders,
            RawError::Liveness(e) => TryLockError::Liveness(e),
        }
    }

    /// For blocking operations. `None` for the busy outcomes, which a blocking operation
    /// never produces; callers retry on `None` rather than panic.
    pub(crate) fn into_lock<G>(self) -> Option<LockError<G>> {
        match self {
            RawError::WouldBlock | RawError::TimedOut => None,
            RawError::NotRecoverable => Some(LockError::NotRecoverable),
            RawError::Corrupted(word) => Some(LockError::Corrupted { word }),
            RawError::TooManyReaders => Some(LockError::TooManyReaders),
            RawError::Liveness(e) => Some(LockError::Liveness(e)),
        }
    }
}

impl std::fmt::Display for RawError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RawError::WouldBlock => f.write_str("held by a live owner"),
            RawError::TimedOut => f.write_str("timed out"),
            RawError::NotRecoverable => f.write_str("not recoverable"),
            RawError::Corrupted(word) => write!(f, "corrupted lock word {word:#x}"),
            RawError::TooManyReaders => f.write_str("reader table full"),
            RawError::Liveness(e) => write!(f, "no owner id: {e}"),
        }
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
