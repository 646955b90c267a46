//! [`RawMutex`]: the robust lock word, and lock_api's raw traits over it.
//!
//! The state is one `AtomicU64` (all-zero is unlocked): the low 32 bits hold the owner's
//! 30-bit liveness id and two flags, the high 32 bits a *check* of the owner id
//! ([`check_of`]), so that a stray or hostile write is recognised as corruption instead of
//! being taken for some (dead) owner. On x86-64 and aarch64 a 64-bit CAS costs what a 32-bit
//! one does. Sleepers wait on a separate 32-bit futex word, bumped by every unlock that finds
//! `CONTENDED`.
//!
//! | state (`check << 32 \| low`) | meaning |
//! |---|---|
//! | `0` | unlocked |
//! | `check_of(id) << 32 \| id` | held by the process with owner id `id` (30 bits, never 0); nobody asleep |
//! | `… \| CONTENDED` | held; waiters may be asleep, so the unlock bumps the futex word and wakes one |
//! | `… \| INCONSISTENT` | held by `id`, who inherited it from a dead owner and has not yet marked the data consistent; waiters may be asleep |
//! | `INCONSISTENT` (no owner, no check) | not recoverable: an inherited lock was released without being marked consistent; permanent |
//! | anything else (a wrong check, `CONTENDED` alone, both flags with an owner) | corrupted: no correct peer writes it; a typed error |
//!
//! A held state's owner is judged by `ipc_shm::liveness` (the family's table): `Alive` is
//! waited on, `Dead` is inherited, and `Unknown` (an id no process ever had, or a registry
//! that cannot answer now) is never inherited: the waiter keeps waiting until its deadline,
//! re-asking after every slice.
//!
//! Fast paths: lock is one CAS `0 -> owner word`, unlock one CAS back to 0; the liveness
//! registry is never consulted there. A waiter spins a bounded budget while nobody sleeps,
//! then reads the futex word, sets `CONTENDED` (an RMW, so the unlock that clears it
//! synchronises with it and cannot bump the futex word before that read), and sleeps in
//! bounded slices (`ipc_shm::wait::Schedule`); after each slice it asks whether the owner is
//! alive. The first waiter to see a dead owner replaces its word with its own plus
//! `INCONSISTENT` in one CAS, so exactly one waiter inherits the lock and is told
//! `OwnerDied`; the others see the new owner and keep waiting.
#![allow(unsafe_code)] // unsafe impls only (ShmSafe, Zeroable, lock_api's raw traits); no unsafe blocks

use ipc_shm::SpinWait;
use ipc_shm::futex::{self, WaitResult};
use ipc_shm::liveness::{check_of, checked_word as owner_word};
use ipc_shm::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use ipc_shm::sync::spin_loop;
use ipc_shm::wait::Schedule;

use crate::owner::{self, RawError, Status, Wait};

/// Waiters may be asleep (low word bit 31).
pub(crate) const CONTENDED: u32 = 1 << 31;
/// Held by an owner that inherited it from a dead one and has not marked it consistent; with
/// no owner bits, the lock is not recoverable (low word bit 30).
pub(crate) const INCONSISTENT: u32 = 1 << 30;
/// The owner id bits (`ipc_shm::liveness::OwnerId::MASK`).
pub(crate) const OWNER_MASK: u32 = INCONSISTENT - 1;
/// The not-recoverable state.
pub(crate) const NOT_RECOVERABLE: u64 = INCONSISTENT as u64;

const _: () = assert!(OWNER_MASK == ipc_shm::liveness::OwnerId::MASK);

/// A decoded lock state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Unlocked,
    Held { owner: u32, contended: bool, inconsistent: bool },
    NotRecoverable,
    Corrupted,
}

/// Decode a lock state (pure; every `u64` maps to a state).
#[inline]
pub(crate) fn decode(state: u64) -> State {
    let low = state as u32;
    let check = (state >> 32) as u32;
    let owner = low & OWNER_MASK;
    let contended = low & CONTENDED != 0;
    let inconsistent = low & INCONSISTENT != 0;
    match (owner, contended, inconsistent) {
        (0, false, false) if check == 0 => State::Unlocked,
        (0, _, true) if check == 0 => State::NotRecoverable,
        (0, ..) | (_, true, true) => State::Corrupted,
        (owner, contended, inconsistent) if check == check_of(owner) => {
            State::Held { owner, contended, inconsistent }
        }
        _ => State::Corrupted,
    }
}

const C64: u64 = CONTENDED as u64;
const I64: u64 = INCONSISTENT as u64;

/// Per-acquisition state of a [`RawMutex`] (lock_api's guard state): who locked it, and
/// whether it was inherited from a dead owner.
#[derive(Debug)]
pub struct Held {
    word: u64,
    died: u32,
}

impl Held {
    pub(crate) fn new(owner: u32, died: u32) -> Held {
        Held { word: owner_word(owner), died }
    }

    /// The owner id this acquisition holds the lock with.
    pub fn owner(&self) -> u32 {
        self.word as u32
    }

    /// The owner word (state with no flags) of this acquisition.
    #[inline]
    pub(crate) fn word(&self) -> u64 {
        self.word
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

/// A robust, process-shared mutex: a 64-bit state and a 32-bit futex word (16 bytes,
/// `#[repr(C)]`, all-zero unlocked). It protects no data by itself; [`Mutex`](crate::Mutex)
/// pairs it with the data.
///
/// Through lock_api's surface ([`lock_api::RawMutex`], [`lock_api::RawMutexTimed`]) a lock
/// inherited from a dead owner is handed out like any other (check
/// [`is_inconsistent`](Self::is_inconsistent), then [`mark_consistent`](Self::mark_consistent),
/// or unlocking makes it not recoverable), and a lock that is not recoverable or corrupted
/// makes `lock` panic, because that surface has no way to return an error. Use
/// [`Mutex`](crate::Mutex) for the typed outcomes.
#[repr(C)]
pub struct RawMutex {
    state: AtomicU64,
    futex: AtomicU32,
    reserved: AtomicU32,
}

#[cfg(not(ipc_loom))] // loom atomics are larger
const _: () = assert!(size_of::<RawMutex>() == 16 && align_of::<RawMutex>() == 8);

impl std::fmt::Debug for RawMutex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Relaxed: a snapshot for display.
        let w = self.state.load(Ordering::Relaxed);
        f.debug_struct("RawMutex").field("state", &format_args!("{w:#018x}")).finish()
    }
}

impl Default for RawMutex {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: atomic integers; all-zero is the unlocked state with no sleepers.
unsafe impl bytemuck::Zeroable for RawMutex {}

// SAFETY: (1) atomic integers, no pointers; (2) every bit pattern decodes to a state
// (`decode` is total; garbage is a typed error; the futex word is only compared for change);
// (3) it mutates only atomically; (4) no drop; (5) `#[repr(C)]` over primitives.
unsafe impl ipc_shm::ShmSafe for RawMutex {
    const LAYOUT_VERSION: u32 = 2;
}

impl RawMutex {
    /// An unlocked mutex.
    #[cfg(not(ipc_loom))]
    pub const fn new() -> Self {
        RawMutex { state: AtomicU64::new(0), futex: AtomicU32::new(0), reserved: AtomicU32::new(0) }
    }

    /// An unlocked mutex.
    #[cfg(ipc_loom)]
    pub fn new() -> Self {
        RawMutex { state: AtomicU64::new(0), futex: AtomicU32::new(0), reserved: AtomicU32::new(0) }
    }

    pub(crate) fn state_word(&self) -> &AtomicU64 {
        &self.state
    }

    /// The uncontended fast path: one CAS `0 -> owner word` with the cached owner id; `None`
    /// if the state is not free or the id is not cached yet (then take the full path).
    #[inline]
    pub(crate) fn try_fast(&self) -> Option<Held> {
        let word = owner::cached_word()?;
        // Acquire: pairs with the Release of the unlock that freed the state, so the previous
        // owner's writes to the protected data are visible.
        match self.state.compare_exchange(0, word, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => Some(Held { word, died: 0 }),
            Err(_) => None,
        }
    }

    /// Lock. `Ok` holds the lock (inherited from a dead owner if `Held::owner_died`).
    #[inline]
    pub(crate) fn acquire(&self, wait: Wait) -> Result<Held, RawError> {
        let word = owner_word(owner::me()?);
        // Acquire: as in `try_fast`.
        if self.state.compare_exchange(0, word, Ordering::Acquire, Ordering::Relaxed).is_ok() {
            return Ok(Held { word, died: 0 });
        }
        self.slow(word as u32, wait, Mode::Acquire)?.ok_or(RawError::WouldBlock)
    }

    /// The contended path. `Ok(Some)` holds the state; `Ok(None)` (only in
    /// [`Mode::WaitFree`]) means the state was seen free.
    #[cold]
    pub(crate) fn slow(&self, me: u32, wait: Wait, mode: Mode) -> Result<Option<Held>, RawError> {
        let mine = owner_word(me);
        let mut spin = SpinWait::for_locks();
        let mut schedule = Schedule::new();
        let mut slept = false;
        // Relaxed: a snapshot to tell whether the owner made progress while we spun.
        let entry = self.state.load(Ordering::Relaxed);
        // Ask liveness whether the owner lives before the next sleep.
        let mut check = false;
        loop {
            // Relaxed: the CAS that acquires carries the Acquire.
            let w = self.state.load(Ordering::Relaxed);
            let (owner, contended, inconsistent) = match decode(w) {
                State::Unlocked => {
                    if mode == Mode::WaitFree {
                        return Ok(None);
                    }
                    // Once we slept, others may sleep too: keep CONTENDED so our unlock wakes
                    // the next one (the std futex mutex does the same).
                    let new = if slept { mine | C64 } else { mine };
                    // Acquire: as in `try_fast`.
                    match self.state.compare_exchange(0, new, Ordering::Acquire, Ordering::Relaxed)
                    {
                        Ok(_) => return Ok(Some(Held { word: mine, died: 0 })),
                        Err(_) => continue,
                    }
                }
                State::NotRecoverable => return Err(RawError::NotRecoverable),
                State::Corrupted => return Err(RawError::Corrupted(w)),
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
                match owner::status(owner) {
                    // Alive, or Unknown (never recovered): wait, until the deadline at most.
                    Status::Alive | Status::Unknown => {}
                    Status::Dead => {
                        // SYNC POINT: exactly one waiter wins this CAS from the dead owner's
                        // state; the others see the new owner and wait on it.
                        // Acquire: whatever the dead owner published is visible to the heir.
                        match self.state.compare_exchange(
                            w,
                            mine | I64,
                            Ordering::Acquire,
                            Ordering::Relaxed,
                        ) {
                            Ok(_) => {
                                ipc_shm::crash::point("mutex.recovered");
                                return Ok(Some(Held { word: mine, died: owner }));
                            }
                            Err(_) => continue,
                        }
                    }
                }
            }
            let Wait::Until(until) = wait else { return Err(RawError::WouldBlock) };
            // Read the futex word, then announce ourselves with an RMW on the state: the
            // unlock that leaves this state acquires our RMW (AcqRel), so its bump of the
            // futex word comes after our read and the futex wait below cannot sleep through
            // it. An inconsistent state keeps its flags (leaving it always bumps and wakes).
            // Relaxed: ordered by the RMW that follows, as explained.
            let seen = self.futex.load(Ordering::Relaxed);
            let announced = if inconsistent { w } else { w | C64 };
            if self
                .state
                .compare_exchange(w, announced, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            if until.has_passed() {
                if slept {
                    self.pass_on();
                }
                return Err(RawError::TimedOut);
            }
            let end = schedule.next(until);
            slept = true;
            if futex::wait(&self.futex, seen, end.instant()) == WaitResult::TimedOut {
                if until.has_passed() {
                    self.pass_on();
                    return Err(RawError::TimedOut);
                }
                // A slice ended: the owner may have died.
                check = true;
                spin_loop();
            }
        }
    }

    /// Bump the futex word and wake sleepers (one, or all).
    #[cold]
    fn wake(&self, all: bool) {
        // Release: a sleeper that reads the new value (its futex compare fails) or is woken
        // re-reads the state after.
        self.futex.fetch_add(1, Ordering::Release);
        if all {
            futex::wake_all(&self.futex);
        } else {
            futex::wake_one(&self.futex);
        }
    }

    /// A waiter that slept and gives up (timeout) may have been the one an unlock woke:
    /// hand the wake-up on so the other sleepers are not left until their next slice.
    #[cold]
    fn pass_on(&self) {
        // Relaxed: only decides whom to wake.
        let w = self.state.load(Ordering::Relaxed);
        match decode(w) {
            State::Unlocked => self.wake(false),
            State::Held { contended: false, inconsistent: false, .. } => {
                // AcqRel: as the announcing CAS in `slow`; makes the holder's unlock wake the
                // sleepers.
                let _ =
                    self.state.compare_exchange(w, w | C64, Ordering::AcqRel, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    /// Unlock as `owner`. Releasing an inherited state that was never marked consistent makes
    /// it not recoverable (and wakes everyone, who then get the error). A state not held by
    /// `owner` is left alone and `false` returned.
    #[inline]
    pub(crate) fn release(&self, owner: u32, wake_all: bool) -> bool {
        self.release_word(owner_word(owner), wake_all)
    }

    /// [`release`](Self::release) with the owner word at hand (the guards keep it).
    #[inline]
    pub(crate) fn release_word(&self, word: u64, wake_all: bool) -> bool {
        // Release: pairs with the Acquire CAS of the next locker: our writes to the data are
        // visible to it.
        if self.state.compare_exchange(word, 0, Ordering::Release, Ordering::Relaxed).is_ok() {
            return true;
        }
        self.release_slow(word as u32, wake_all)
    }

    #[cold]
    fn release_slow(&self, owner: u32, wake_all: bool) -> bool {
        // Relaxed: the CAS below carries the ordering.
        let mut w = self.state.load(Ordering::Relaxed);
        loop {
            let State::Held { owner: o, contended, inconsistent } = decode(w) else {
                return false;
            };
            if o != owner {
                return false;
            }
            let new = if inconsistent {
                ipc_shm::crash::point("mutex.unlock.inconsistent");
                NOT_RECOVERABLE
            } else {
                0
            };
            // AcqRel: Release as in `release`; Acquire pairs with the announcing RMW of every
            // waiter, so the bump in `wake` follows their reads of the futex word.
            match self.state.compare_exchange(w, new, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => {
                    if inconsistent || (contended && wake_all) {
                        self.wake(true);
                    } else if contended {
                        self.wake(false);
                    }
                    return true;
                }
                Err(actual) => w = actual,
            }
        }
    }

    /// Undo an inheritance that could not complete (an rwlock reader timed out while readers
    /// drained): put the dead owner's word back, so the next locker inherits it (and is told)
    /// as we were, and wake the sleepers to look again.
    pub(crate) fn restore_dead(&self, held: &Held, dead: u32) {
        // AcqRel: as in `release_slow` (nothing was written under the lock).
        let _ = self.state.compare_exchange(
            held.word() | I64,
            owner_word(dead) | C64,
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
        self.wake(true);
    }

    /// As `owner`, who inherited the state: declare the data consistent again. `false` if the
    /// state is not `owner | INCONSISTENT`.
    pub(crate) fn mark_consistent_as(&self, owner: u32) -> bool {
        // AcqRel: keeps the chain of RMWs from the waiters' announcements to the unlock (no
        // data is published here; the unlock publishes). CONTENDED is set because waiters may
        // sleep on the inconsistent state.
        let word = owner_word(owner);
        self.state
            .compare_exchange(word | I64, word | C64, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// If this process holds the lock inherited from a dead owner, declare the protected data
    /// consistent again (POSIX `pthread_mutex_consistent`). `false` if it does not hold it
    /// in that state.
    pub fn mark_consistent(&self) -> bool {
        match owner::me() {
            Ok(me) => self.mark_consistent_as(me),
            Err(_) => false,
        }
    }

    /// A snapshot of the state, decoded.
    pub(crate) fn state(&self) -> State {
        // Relaxed: a snapshot.
        decode(self.state.load(Ordering::Relaxed))
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

    /// Take a not-recoverable lock back for this process: `Some` (held, consistent, as if
    /// freshly locked) if the state was not recoverable, `None` otherwise or without an owner
    /// id. Its waiters stay announced, so the unlock wakes them.
    pub(crate) fn reclaim(&self) -> Option<Held> {
        let me = owner::me().ok()?;
        // Relaxed: the CAS below carries the ordering.
        let w = self.state.load(Ordering::Relaxed);
        if decode(w) != State::NotRecoverable {
            return None;
        }
        let new = owner_word(me) | (w & C64);
        // Acquire: pairs with the Release of the unlock that left it not recoverable, so the
        // dead owners' writes to the data are visible to the repair. Relaxed on failure:
        // someone else changed it; nothing taken.
        self.state
            .compare_exchange(w, new, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| Held::new(me, 0))
    }

    /// The raw state, for diagnostics (see the state table in the module docs).
    pub fn word_value(&self) -> u64 {
        // Relaxed: a snapshot.
        self.state.load(Ordering::Relaxed)
    }

    /// The owner id in the state (0 if none), for diagnostics.
    pub fn owner_value(&self) -> u32 {
        self.word_value() as u32 & OWNER_MASK
    }

    /// A blocking lock for the lock_api surface and internal relocks: retries the busy
    /// outcomes (which a blocking wait never produces) instead of panicking.
    pub(crate) fn lock_blocking(&self) -> Result<Held, RawError> {
        if let Some(held) = self.try_fast() {
            return Ok(held);
        }
        loop {
            match self.acquire(Wait::FOREVER) {
                Err(RawError::WouldBlock | RawError::TimedOut) => continue,
                other => return other,
            }
        }
    }

    #[cfg(not(ipc_loom))]
    fn timed(&self, deadline: ipc_shm::Deadline) -> Option<Held> {
        match self.acquire(Wait::Until(deadline)) {
            Ok(h) => Some(h),
            Err(RawError::WouldBlock | RawError::TimedOut) => None,
            Err(_) => {
                // A permanent failure (not recoverable, corrupted): lock_api requires an
                // unsuccessful timed lock not to return before its timeout.
                sleep_until(deadline);
                None
            }
        }
    }
}

#[cfg(not(ipc_loom))]
// SAFETY: mutual exclusion: the state is taken only by a CAS from 0 (or from a dead owner's
// word, which no live process holds), with Acquire; it is released by a CAS from the holder's
// word with Release. `Held` is plain data; forgetting it leaves the mutex locked, which is safe.
// A panic in `lock` happens before anything is acquired.
unsafe impl lock_api::RawMutex for RawMutex {
    #[allow(clippy::declare_interior_mutable_const)] // the documented lock_api idiom
    const INIT: Self = RawMutex::new();
    type Guard = Held;

    /// # Panics
    /// If the mutex is not recoverable or corrupted, or this process cannot get an owner id:
    /// lock_api's `lock` cannot return an error. [`Mutex::lock`](crate::Mutex::lock) can.
    #[inline]
    fn lock(&self) -> Held {
        match self.lock_blocking() {
            Ok(h) => h,
            Err(e) => panic!("ipc_lock::RawMutex::lock: {e}; use ipc_lock::Mutex for typed errors"),
        }
    }

    #[inline]
    fn try_lock(&self) -> Option<Held> {
        self.try_fast().or_else(|| self.acquire(Wait::No).ok())
    }

    #[inline]
    unsafe fn unlock(&self, guard: Held) {
        // A forked child's copy of a guard releases nothing (see `MutexGuard`).
        if owner::is_me(guard.owner()) {
            self.release_word(guard.word(), false);
        }
    }

    fn is_locked(&self) -> bool {
        RawMutex::is_locked(self)
    }
}

#[cfg(not(ipc_loom))]
// SAFETY: as for `RawMutex`; the timed forms use the same acquiring CAS.
unsafe impl lock_api::RawMutexTimed for RawMutex {
    type Duration = std::time::Duration;
    type Instant = std::time::Instant;

    fn try_lock_for(&self, timeout: std::time::Duration) -> Option<Held> {
        self.timed(ipc_shm::Deadline::after(timeout))
    }

    fn try_lock_until(&self, deadline: std::time::Instant) -> Option<Held> {
        self.timed(deadline.into())
    }
}

/// lock_api's timed forms must not fail before their deadline, even on a permanent failure:
/// sleep out what is left of it (nothing for [`Deadline::NEVER`](ipc_shm::Deadline::NEVER),
/// where the failure is returned at once, as a blocking lock's would panic).
#[cfg(not(ipc_loom))]
pub(crate) fn sleep_until(deadline: ipc_shm::Deadline) {
    if let Some(left) = deadline.remaining() {
        std::thread::sleep(left);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_is_total_and_matches_the_table() {
        let id = 5 << 14;
        let w = owner_word(id);
        assert_eq!(decode(0), State::Unlocked);
        assert_eq!(decode(w), State::Held { owner: id, contended: false, inconsistent: false });
        assert_eq!(
            decode(w | C64),
            State::Held { owner: id, contended: true, inconsistent: false }
        );
        assert_eq!(
            decode(w | I64),
            State::Held { owner: id, contended: false, inconsistent: true }
        );
        assert_eq!(decode(NOT_RECOVERABLE), State::NotRecoverable);
        assert_eq!(decode(NOT_RECOVERABLE | C64), State::NotRecoverable);
        assert_eq!(decode(C64), State::Corrupted);
        assert_eq!(decode(u64::MAX), State::Corrupted);
        assert_eq!(decode(u64::from(u32::MAX)), State::Corrupted);
        assert_eq!(decode(w | C64 | I64), State::Corrupted);
        // The bare id without its check, or with another id's check.
        assert_eq!(decode(u64::from(id)), State::Corrupted);
        assert_eq!(decode(owner_word(id + 1) & !0x3fff_ffff | u64::from(id)), State::Corrupted);
        // Check bits on an unlocked or not-recoverable state.
        assert_eq!(decode(1 << 40), State::Corrupted);
        assert_eq!(decode((1 << 40) | NOT_RECOVERABLE), State::Corrupted);
    }

    #[test]
    fn every_owner_has_a_nonzero_check() {
        for id in [1, 2, 0x3fff, 0x4000, 0x3fff_ffff, 12345] {
            assert_ne!(check_of(id), 0);
            assert_eq!(owner_word(id) as u32, id);
        }
    }
}
