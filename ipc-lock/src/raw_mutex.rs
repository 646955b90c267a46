//! [`RawMutex`]: the robust lock word, and lock_api's raw traits over it.
//!
//! State table of the word (one `AtomicU32`; all-zero is unlocked):
//!
//! | value | meaning |
//! |---|---|
//! | `0` | unlocked |
//! | `id` | held by the process with liveness owner id `id` (30 bits, never 0); nobody asleep |
//! | `id \| CONTENDED` | held; waiters may be asleep, so the unlock wakes one |
//! | `id \| INCONSISTENT` | held by `id`, who inherited it from a dead owner and has not yet marked the data consistent; waiters may be asleep |
//! | `INCONSISTENT` (no owner) | not recoverable: an inherited lock was released without being marked consistent; permanent |
//! | anything else (`CONTENDED` alone, or both flags with an owner) | corrupted: no correct peer writes it; a typed error |
//!
//! Fast paths: lock is one CAS `0 -> id`, unlock one CAS `id -> 0`; the liveness registry is
//! never consulted there. A waiter spins a bounded budget while nobody sleeps, then sets
//! `CONTENDED` and sleeps on the word in bounded slices ([`crate::owner::Slices`]); after each
//! slice it asks whether the owner is alive. The first waiter to see a dead owner replaces
//! its id with its own plus `INCONSISTENT` in one CAS, so exactly one waiter inherits the lock
//! and is told `OwnerDied`; the others see the new owner and keep waiting.
#![allow(unsafe_code)] // unsafe impls only (ShmSafe, Zeroable, lock_api's raw traits); no unsafe blocks

use std::time::{Duration, Instant};

use ipc_shm::SpinWait;
use ipc_shm::futex::{self, WaitResult};
use ipc_shm::sync::atomic::{AtomicU32, Ordering};
use ipc_shm::sync::spin_loop;

use crate::owner::{Liveness, OwnerStatus, RawError, Slices, System, Wait};

/// Waiters may be asleep on the word.
pub(crate) const CONTENDED: u32 = 1 << 31;
/// Held by an owner that inherited it from a dead one and has not marked it consistent; with
/// no owner bits, the lock is not recoverable.
pub(crate) const INCONSISTENT: u32 = 1 << 30;
/// The owner id bits (`ipc_shm::liveness::OwnerId::MASK`).
pub(crate) const OWNER_MASK: u32 = INCONSISTENT - 1;
/// The not-recoverable state.
pub(crate) const NOT_RECOVERABLE: u32 = INCONSISTENT;
/// Spin budget before sleeping: `2^7 - 1` PAUSEs, about 1.3 µs on the reference machine.
const SPIN_STEPS: u32 = 7;

const _: () = assert!(OWNER_MASK == ipc_shm::liveness::OwnerId::MASK);

/// A decoded lock word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Unlocked,
    Held { owner: u32, contended: bool, inconsistent: bool },
    NotRecoverable,
    Corrupted,
}

/// Decode a lock word (pure; every `u32` maps to a state).
#[inline]
pub(crate) fn decode(word: u32) -> State {
    let owner = word & OWNER_MASK;
    let contended = word & CONTENDED != 0;
    let inconsistent = word & INCONSISTENT != 0;
    match (owner, contended, inconsistent) {
        (0, false, false) => State::Unlocked,
        (0, _, true) => State::NotRecoverable,
        (0, true, false) | (_, true, true) => State::Corrupted,
        (owner, contended, inconsistent) => State::Held { owner, contended, inconsistent },
    }
}

/// Per-acquisition state of a [`RawMutex`] (lock_api's guard state): who locked it, and
/// whether it was inherited from a dead owner.
#[derive(Debug)]
pub struct Held {
    owner: u32,
    died: u32,
}

impl Held {
    pub(crate) fn new(owner: u32, died: u32) -> Held {
        Held { owner, died }
    }

    /// The owner id this acquisition holds the lock with.
    pub fn owner(&self) -> u32 {
        self.owner
    }

    /// Whether the lock was inherited from an owner that died holding it.
    pub fn owner_died(&self) -> bool {
        self.died != 0
    }

    /// The owner id of the dead owner this lock was inherited from, if it was.
    pub fn dead_owner(&self) -> Option<u32> {
        (self.died != 0).then_some(self.died)
    }
}

/// What the slow path is after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Take the word.
    Acquire,
    /// Only wait until the word is free (readers of an RwLock wait for the writer word),
    /// though a dead owner's word is still inherited.
    WaitFree,
}

/// A robust, process-shared mutex word: `#[repr(transparent)]` over one `AtomicU32`, all-zero
/// unlocked. It protects no data by itself; [`Mutex`](crate::Mutex) pairs it with the data.
///
/// Through lock_api's surface ([`lock_api::RawMutex`], [`lock_api::RawMutexTimed`]) a lock
/// inherited from a dead owner is handed out like any other (check
/// [`is_inconsistent`](Self::is_inconsistent), then [`mark_consistent`](Self::mark_consistent),
/// or unlocking makes it not recoverable), and a lock that is not recoverable or corrupted
/// makes `lock` panic, because that surface has no way to return an error. Use
/// [`Mutex`](crate::Mutex) for the typed outcomes.
#[repr(transparent)]
pub struct RawMutex {
    word: AtomicU32,
}

const _: () = assert!(size_of::<RawMutex>() == 4 && align_of::<RawMutex>() == 4);

impl std::fmt::Debug for RawMutex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Relaxed: a snapshot for display.
        let w = self.word.load(Ordering::Relaxed);
        f.debug_struct("RawMutex").field("word", &format_args!("{w:#010x}")).finish()
    }
}

impl Default for RawMutex {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: a single atomic integer; all-zero is the unlocked state.
unsafe impl bytemuck::Zeroable for RawMutex {}

// SAFETY: (1) an atomic integer, no pointers; (2) every bit pattern decodes to a state
// (`decode` is total; garbage is a typed error); (3) it mutates only atomically; (4) no drop;
// (5) `#[repr(transparent)]` over a primitive.
unsafe impl ipc_shm::ShmSafe for RawMutex {
    const LAYOUT_VERSION: u32 = 1;
}

impl RawMutex {
    /// An unlocked mutex word.
    #[cfg(not(ipc_loom))]
    pub const fn new() -> Self {
        RawMutex { word: AtomicU32::new(0) }
    }

    /// An unlocked mutex word.
    #[cfg(ipc_loom)]
    pub fn new() -> Self {
        RawMutex { word: AtomicU32::new(0) }
    }

    pub(crate) fn word(&self) -> &AtomicU32 {
        &self.word
    }

    /// The uncontended fast path: one CAS `0 -> me` with the cached owner id; `None` if the
    /// word is not free or the id is not cached yet (then take the full path).
    #[inline]
    pub(crate) fn try_fast(&self) -> Option<Held> {
        let me = crate::owner::cached_me()?;
        // Acquire: pairs with the Release of the unlock that freed the word.
        match self.word.compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => Some(Held { owner: me, died: 0 }),
            Err(_) => None,
        }
    }

    /// Lock with the owner oracle `l`. `Ok` holds the lock (inherited from a dead owner if
    /// `Held::owner_died`).
    #[inline]
    pub(crate) fn acquire<L: Liveness>(&self, l: &L, wait: Wait) -> Result<Held, RawError> {
        let me = l.me()?;
        // Acquire: pairs with the Release of the unlock that freed the word, so the previous
        // owner's writes to the protected data are visible.
        if self.word.compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed).is_ok() {
            return Ok(Held { owner: me, died: 0 });
        }
        self.slow(l, me, wait, Mode::Acquire)?.ok_or(RawError::WouldBlock)
    }

    /// The contended path. `Ok(Some)` holds the word; `Ok(None)` (only in
    /// [`Mode::WaitFree`]) means the word was seen free.
    #[cold]
    pub(crate) fn slow<L: Liveness>(
        &self,
        l: &L,
        me: u32,
        wait: Wait,
        mode: Mode,
    ) -> Result<Option<Held>, RawError> {
        let mut spin = SpinWait::with_steps(SPIN_STEPS);
        let mut slices = Slices::new();
        let mut slept = false;
        // Relaxed: a snapshot to tell whether the owner made progress while we spun.
        let entry = self.word.load(Ordering::Relaxed);
        // Ask the oracle whether the owner lives before the next sleep.
        let mut check = false;
        loop {
            // Relaxed: the CAS that acquires carries the Acquire.
            let w = self.word.load(Ordering::Relaxed);
            let (owner, contended, inconsistent) = match decode(w) {
                State::Unlocked => {
                    if mode == Mode::WaitFree {
                        return Ok(None);
                    }
                    // Once we slept, others may sleep too: keep CONTENDED so our unlock wakes
                    // the next one (the std futex mutex does the same).
                    let new = if slept { me | CONTENDED } else { me };
                    // Acquire: as in `acquire`.
                    match self.word.compare_exchange(0, new, Ordering::Acquire, Ordering::Relaxed) {
                        Ok(_) => return Ok(Some(Held { owner: me, died: 0 })),
                        Err(_) => continue,
                    }
                }
                State::NotRecoverable => return Err(RawError::NotRecoverable),
                State::Corrupted => return Err(RawError::Corrupted(u64::from(w))),
                State::Held { owner, contended, inconsistent } => (owner, contended, inconsistent),
            };
            // Spin while the owner may be about to release and nobody sleeps yet.
            if wait != Wait::No && !slept && !contended && !inconsistent && spin.spin() {
                continue;
            }
            // The owner held it unchanged through the whole spin: ask once before sleeping.
            if !slept && w == entry {
                check = true;
            }
            if wait == Wait::No || check {
                check = false;
                match l.status(owner)? {
                    OwnerStatus::Alive => {}
                    OwnerStatus::Dead => {
                        // SYNC POINT: exactly one waiter wins this CAS from the dead owner's
                        // word; the others see the new owner and wait on it.
                        // Acquire: whatever the dead owner published is visible to the heir.
                        match self.word.compare_exchange(
                            w,
                            me | INCONSISTENT,
                            Ordering::Acquire,
                            Ordering::Relaxed,
                        ) {
                            Ok(_) => return Ok(Some(Held { owner: me, died: owner })),
                            Err(_) => continue,
                        }
                    }
                    OwnerStatus::Invalid => return Err(RawError::Corrupted(u64::from(w))),
                }
            }
            if wait == Wait::No {
                return Err(RawError::WouldBlock);
            }
            // Announce a sleeper so the unlock wakes us. An inconsistent word needs no flag:
            // leaving that state always wakes or keeps CONTENDED.
            let expected = if contended || inconsistent {
                w
            } else {
                // Relaxed: only the futex value matters; the data is ordered by the acquiring
                // CAS.
                match self.word.compare_exchange(
                    w,
                    w | CONTENDED,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => w | CONTENDED,
                    Err(_) => continue,
                }
            };
            if wait.expired() {
                if slept {
                    self.pass_on();
                }
                return Err(RawError::TimedOut);
            }
            let deadline = slices.next_deadline(wait);
            slept = true;
            if futex::wait(&self.word, expected, deadline) == WaitResult::TimedOut {
                if wait.expired() {
                    self.pass_on();
                    return Err(RawError::TimedOut);
                }
                // A slice ended: the owner may have died.
                check = true;
                spin_loop();
            }
        }
    }

    /// A waiter that slept and gives up (timeout) may have been the one an unlock woke:
    /// hand the wake-up on so the other sleepers are not left until their next slice.
    #[cold]
    fn pass_on(&self) {
        // Relaxed: only decides whom to wake.
        let w = self.word.load(Ordering::Relaxed);
        match decode(w) {
            State::Unlocked => {
                futex::wake_one(&self.word);
            }
            State::Held { contended: false, inconsistent: false, .. } => {
                // Relaxed: makes the holder's unlock wake the sleepers; orders no data.
                let _ = self.word.compare_exchange(
                    w,
                    w | CONTENDED,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
            _ => {}
        }
    }

    /// Unlock as `owner`. Releasing an inherited word that was never marked consistent makes
    /// it not recoverable (and wakes everyone, who then get the error). A word not held by
    /// `owner` is left alone and `false` returned.
    #[inline]
    pub(crate) fn release(&self, owner: u32, wake_all: bool) -> bool {
        // Release: pairs with the Acquire CAS of the next locker: our writes to the data are
        // visible to it.
        if self.word.compare_exchange(owner, 0, Ordering::Release, Ordering::Relaxed).is_ok() {
            return true;
        }
        self.release_slow(owner, wake_all)
    }

    #[cold]
    fn release_slow(&self, owner: u32, wake_all: bool) -> bool {
        // Relaxed: the CAS below carries the Release.
        let mut w = self.word.load(Ordering::Relaxed);
        loop {
            let State::Held { owner: o, contended, inconsistent } = decode(w) else {
                return false;
            };
            if o != owner {
                return false;
            }
            let new = if inconsistent { NOT_RECOVERABLE } else { 0 };
            // Release: as in `release`.
            match self.word.compare_exchange(w, new, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => {
                    if inconsistent || (contended && wake_all) {
                        futex::wake_all(&self.word);
                    } else if contended {
                        futex::wake_one(&self.word);
                    }
                    return true;
                }
                Err(actual) => w = actual,
            }
        }
    }

    /// As `owner`, who inherited the word: declare the data consistent again. `false` if the
    /// word is not `owner | INCONSISTENT`.
    pub(crate) fn mark_consistent_as(&self, owner: u32) -> bool {
        // Relaxed: no data is published by this transition (the unlock publishes). CONTENDED
        // is set because waiters may sleep on the inconsistent word.
        self.word
            .compare_exchange(
                owner | INCONSISTENT,
                owner | CONTENDED,
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    /// If this process holds the word inherited from a dead owner, declare the protected data
    /// consistent again (POSIX `pthread_mutex_consistent`). `false` if it does not hold it
    /// in that state.
    pub fn mark_consistent(&self) -> bool {
        match System.me() {
            Ok(me) => self.mark_consistent_as(me),
            Err(_) => false,
        }
    }

    /// A snapshot of the word's state, for diagnostics.
    pub(crate) fn state(&self) -> State {
        // Relaxed: a snapshot.
        decode(self.word.load(Ordering::Relaxed))
    }

    /// Whether the mutex is held (a snapshot).
    pub fn is_locked(&self) -> bool {
        matches!(self.state(), State::Held { .. })
    }

    /// Whether the holder inherited it from a dead owner and has not marked it consistent.
    pub fn is_inconsistent(&self) -> bool {
        matches!(self.state(), State::Held { inconsistent: true, .. })
    }

    /// Whether the mutex is permanently unusable (see the state table).
    pub fn is_not_recoverable(&self) -> bool {
        self.state() == State::NotRecoverable
    }

    /// The raw word, for diagnostics (see the state table in the module docs).
    pub fn word_value(&self) -> u32 {
        // Relaxed: a snapshot.
        self.word.load(Ordering::Relaxed)
    }

    /// Lock with a caller-supplied owner oracle and an optional deadline (`None` blocks).
    /// A seam for model checking (loom cannot kill a process); [`Mutex`](crate::Mutex) is
    /// the API.
    ///
    /// # Errors
    /// The raw outcome as a [`TryLockError`](crate::TryLockError) carrying the guard state.
    #[doc(hidden)]
    pub fn lock_with<L: Liveness>(
        &self,
        l: &L,
        deadline: Option<Instant>,
    ) -> Result<Held, crate::TryLockError<Held>> {
        let wait = deadline.map_or(Wait::Forever, Wait::Until);
        match self.acquire(l, wait) {
            Ok(h) if h.owner_died() => Err(crate::TryLockError::OwnerDied(h)),
            Ok(h) => Ok(h),
            Err(e) => Err(e.into_try()),
        }
    }

    /// Try once with a caller-supplied owner oracle (see [`lock_with`](Self::lock_with)).
    ///
    /// # Errors
    /// As [`lock_with`](Self::lock_with).
    #[doc(hidden)]
    pub fn try_lock_with<L: Liveness>(&self, l: &L) -> Result<Held, crate::TryLockError<Held>> {
        match self.acquire(l, Wait::No) {
            Ok(h) if h.owner_died() => Err(crate::TryLockError::OwnerDied(h)),
            Ok(h) => Ok(h),
            Err(e) => Err(e.into_try()),
        }
    }

    /// Unlock an acquisition made with [`lock_with`](Self::lock_with); `false` if the word
    /// was not held by it. Safe: the raw word guards no data by itself.
    #[doc(hidden)]
    pub fn unlock_held(&self, held: Held) -> bool {
        self.release(held.owner, false)
    }

    /// Mark an acquisition made with [`lock_with`](Self::lock_with) consistent.
    #[doc(hidden)]
    pub fn mark_consistent_held(&self, held: &Held) -> bool {
        self.mark_consistent_as(held.owner)
    }

    /// A blocking lock for the lock_api surface and internal relocks: retries the busy
    /// outcomes (which a blocking wait never produces) instead of panicking.
    pub(crate) fn lock_blocking(&self) -> Result<Held, RawError> {
        if let Some(held) = self.try_fast() {
            return Ok(held);
        }
        loop {
            match self.acquire(&System, Wait::Forever) {
                Err(RawError::WouldBlock | RawError::TimedOut) => continue,
                other => return other,
            }
        }
    }

    #[cfg(not(ipc_loom))]
    fn timed(&self, wait: Wait) -> Option<Held> {
        match self.acquire(&System, wait) {
            Ok(h) => Some(h),
            Err(RawError::WouldBlock | RawError::TimedOut) => None,
            Err(_) => {
                // A permanent failure (not recoverable, corrupted): lock_api requires an
                // unsuccessful timed lock not to return before its timeout.
                if let Wait::Until(deadline) = wait {
                    let now = Instant::now();
                    if deadline > now {
                        std::thread::sleep(deadline - now);
                    }
                }
                None
            }
        }
    }
}

#[cfg(not(ipc_loom))]
// SAFETY: mutual exclusion: the word is taken only by a CAS from 0 (or from a dead owner's id,
// which no live process holds), with Acquire; it is released by a CAS from the holder's id
// with Release. `Held` is plain data; forgetting it leaves the mutex locked, which is safe.
// A panic in `lock` happens before anything is acquired.
unsafe impl lock_api::RawMutex for RawMutex {
    #[allow(clippy::declare_interior_mutable_const)] // the documented lock_api idiom
    const INIT: Self = RawMutex::new();
    type Guard = Held;

    /// # Panics
    /// If the mutex is not recoverable or corrupted, or this process cannot get an owner id:
    /// lock_api's `lock` cannot return an error. [`Mutex::lock`](crate::Mutex::lock) can.
    fn lock(&self) -> Held {
        match self.lock_blocking() {
            Ok(h) => h,
            Err(e) => panic!("ipc_lock::RawMutex::lock: {e}; use ipc_lock::Mutex for typed errors"),
        }
    }

    fn try_lock(&self) -> Option<Held> {
        self.acquire(&System, Wait::No).ok()
    }

    unsafe fn unlock(&self, guard: Held) {
        self.release(guard.owner, false);
    }

    fn is_locked(&self) -> bool {
        RawMutex::is_locked(self)
    }
}

#[cfg(not(ipc_loom))]
// SAFETY: as for `RawMutex`; the timed forms use the same acquiring CAS.
unsafe impl lock_api::RawMutexTimed for RawMutex {
    type Duration = Duration;
    type Instant = Instant;

    fn try_lock_for(&self, timeout: Duration) -> Option<Held> {
        self.timed(Wait::for_duration(timeout))
    }

    fn try_lock_until(&self, deadline: Instant) -> Option<Held> {
        self.timed(Wait::Until(deadline))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_is_total_and_matches_the_table() {
        assert_eq!(decode(0), State::Unlocked);
        assert_eq!(
            decode(5 << 14),
            State::Held { owner: 5 << 14, contended: false, inconsistent: false }
        );
        assert_eq!(
            decode((5 << 14) | CONTENDED),
            State::Held { owner: 5 << 14, contended: true, inconsistent: false }
        );
        assert_eq!(
            decode((5 << 14) | INCONSISTENT),
            State::Held { owner: 5 << 14, contended: false, inconsistent: true }
        );
        assert_eq!(decode(NOT_RECOVERABLE), State::NotRecoverable);
        assert_eq!(decode(NOT_RECOVERABLE | CONTENDED), State::NotRecoverable);
        assert_eq!(decode(CONTENDED), State::Corrupted);
        assert_eq!(decode(u32::MAX), State::Corrupted);
        assert_eq!(decode(7 | CONTENDED | INCONSISTENT), State::Corrupted);
    }
}
