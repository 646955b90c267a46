//! [`Condvar`]: a process-shared condition variable for [`Mutex`].
//!
//! One [`EventCount`], the family's waiter word (`ipc_shm::event_count`), all-zero initial:
//!
//! | word | meaning |
//! |---|---|
//! | `seq` | bumped by every notify that found a sleeper; waiters sleep on it |
//! | `sleepers` | waiters announced (under the mutex, before it is released), and the event count's sticky fallback bit |
//!
//! A waiter announces itself ([`EventCount::prepare_locked_wait`], which also reads `seq`)
//! while it still holds the mutex, then unlocks and sleeps while `seq` is unchanged. A notifier
//! that changed the predicate under the mutex locked it after the waiter unlocked, so it sees
//! the announcement, bumps `seq` and wakes: the waiter either finds `seq` changed (the futex
//! compare fails) or is asleep and woken. No wake-up is lost, and a notify with no waiter is
//! one load, no syscall. The mutex orders announcement and notify, so the waiter issues no
//! membarrier (which a plain [`EventCount::wait`] would).
//!
//! Because nothing in shared memory is trusted, a sleeper also wakes every
//! [`CONDVAR_SLICE`] to see whether `seq` moved without a wake-up reaching it (a peer that
//! zeroed `sleepers`, say): a bounded delay instead of a hang. Such rescues are counted
//! ([`Condvar::rescued_waits`]); in correct operation the count stays zero.
#![allow(unsafe_code)] // unsafe impls only (ShmSafe, Zeroable, lock_api's raw traits); no unsafe blocks

use std::sync::atomic::AtomicU64 as StdAtomicU64;
use std::time::{Duration, Instant};

use ipc_shm::futex::WaitResult;
use ipc_shm::{Deadline, EventCount};

use crate::error::{LockError, LockResult, WaitTimeoutResult};
use crate::mutex::{Mutex, MutexGuard};
use crate::raw_mutex::{Held, RawMutex};

/// How long a condition-variable sleeper sleeps at most before checking whether it missed a
/// notify (see the module docs).
pub const CONDVAR_SLICE: Duration = Duration::from_secs(1);

static RESCUED: StdAtomicU64 = StdAtomicU64::new(0);

/// A condition variable for [`Mutex`], usable across processes. `#[repr(C)]`, 8 bytes,
/// all-zero initial; put it next to its mutex in a shared struct.
///
/// Waits may wake spuriously; use [`wait_while`](Self::wait_while) (Python's `wait_for`) or
/// loop on the predicate. The relock after a wait has the mutex's robust semantics: it
/// returns [`LockError::OwnerDied`] when the mutex's holder died meanwhile.
#[repr(C)]
pub struct Condvar {
    waiters: EventCount,
}

#[cfg(not(ipc_loom))] // loom atomics are larger
const _: () = assert!(size_of::<Condvar>() == 8 && align_of::<Condvar>() == 4);

// SAFETY: an `EventCount`, two atomic integers: no pointers, any bits valid (garbage causes
// at worst spurious wake-ups, syscalls for nobody or a rescued wait, never UB), atomic
// mutation only, no drop, `#[repr(C)]`.
unsafe impl ipc_shm::ShmSafe for Condvar {
    // 2: the second word is the event count's `sleepers`, whose bit 31 is its sticky
    // fallback flag (version 1 counted waiters in all 32 bits).
    const LAYOUT_VERSION: u32 = 2;
}

// SAFETY: all-zero is the initial state.
unsafe impl bytemuck::Zeroable for Condvar {}

impl Default for Condvar {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Condvar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Condvar").field("waiters", &self.waiters).finish()
    }
}

fn relock<T>(mutex: &Mutex<T>) -> LockResult<MutexGuard<'_, T>> {
    match mutex.raw().lock_blocking() {
        Ok(held) if held.owner_died() => Err(LockError::OwnerDied(mutex.make_guard(held))),
        Ok(held) => Ok(mutex.make_guard(held)),
        Err(e) => Err(e.into_lock().unwrap_or(LockError::NotRecoverable)),
    }
}

impl Condvar {
    /// A new condition variable.
    #[cfg(not(ipc_loom))]
    pub const fn new() -> Self {
        Condvar { waiters: EventCount::new() }
    }

    /// A new condition variable.
    #[cfg(ipc_loom)]
    pub fn new() -> Self {
        Condvar { waiters: EventCount::new() }
    }

    /// Register, release the mutex, sleep until notified or `until`. Returns whether the
    /// caller's deadline passed. The mutex is *not* re-locked.
    fn park(&self, raw: &RawMutex, held: &Held, until: Deadline) -> bool {
        // Announced while we hold the mutex: every notifier that changes the predicate locks
        // it after our unlock below, and so sees us (the module docs).
        let waiter = self.waiters.prepare_locked_wait();
        ipc_shm::crash::point("condvar.registered");
        raw.release(held.owner(), false);
        let timed_out = loop {
            // Under loom the caller's deadline: the model has no clock.
            let end =
                if cfg!(ipc_loom) { until } else { until.earliest(Deadline::after(CONDVAR_SLICE)) };
            let r = waiter.sleep(end);
            if waiter.notified() {
                if r == WaitResult::TimedOut && end != until {
                    // Relaxed: a statistic.
                    RESCUED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                break false;
            }
            if r == WaitResult::TimedOut {
                if until.has_passed() {
                    break true;
                }
                ipc_shm::sync::spin_loop();
            }
        };
        // Withdrawn: a count only; wrapping (after a peer's garbage) costs at most spurious
        // wake syscalls.
        drop(waiter);
        ipc_shm::crash::point("condvar.woken");
        timed_out
    }

    /// Release the guard's mutex, sleep until notified, re-lock.
    ///
    /// Waiting releases the mutex: a guard that inherited it from a dead owner and was not
    /// marked consistent makes it not recoverable here, as any unlock would (POSIX).
    ///
    /// # Errors
    /// As [`Mutex::lock`] for the re-lock.
    pub fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> LockResult<MutexGuard<'a, T>> {
        let (mutex, held) = guard.into_parts();
        self.park(mutex.raw(), &held, Deadline::NEVER);
        relock(mutex)
    }

    /// [`wait`](Self::wait) for at most `timeout`.
    ///
    /// # Errors
    /// As [`wait`](Self::wait); the guard inside `OwnerDied` comes with the timeout result.
    pub fn wait_timeout<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> LockResult<(MutexGuard<'a, T>, WaitTimeoutResult)> {
        self.wait_inner(guard, Deadline::after(timeout))
    }

    /// [`wait`](Self::wait) until `deadline` at most.
    ///
    /// # Errors
    /// As [`wait_timeout`](Self::wait_timeout).
    pub fn wait_until<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        deadline: Instant,
    ) -> LockResult<(MutexGuard<'a, T>, WaitTimeoutResult)> {
        self.wait_inner(guard, deadline.into())
    }

    fn wait_inner<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        until: Deadline,
    ) -> LockResult<(MutexGuard<'a, T>, WaitTimeoutResult)> {
        let (mutex, held) = guard.into_parts();
        let timed_out = WaitTimeoutResult(self.park(mutex.raw(), &held, until));
        match relock(mutex) {
            Ok(g) => Ok((g, timed_out)),
            Err(e) => Err(e.map(|g| (g, timed_out))),
        }
    }

    /// Wait while `condition` holds (Python's `wait_for` with the predicate negated, std's
    /// `wait_while`).
    ///
    /// # Errors
    /// As [`wait`](Self::wait); on `OwnerDied` the predicate is not evaluated again (the data
    /// needs repair first).
    pub fn wait_while<'a, T, F>(
        &self,
        mut guard: MutexGuard<'a, T>,
        mut condition: F,
    ) -> LockResult<MutexGuard<'a, T>>
    where
        F: FnMut(&mut T) -> bool,
    {
        while condition(&mut *guard) {
            guard = self.wait(guard)?;
        }
        Ok(guard)
    }

    /// [`wait_while`](Self::wait_while) for at most `timeout`; the result says whether it
    /// timed out with the condition still true.
    ///
    /// # Errors
    /// As [`wait_timeout`](Self::wait_timeout).
    pub fn wait_timeout_while<'a, T, F>(
        &self,
        mut guard: MutexGuard<'a, T>,
        timeout: Duration,
        mut condition: F,
    ) -> LockResult<(MutexGuard<'a, T>, WaitTimeoutResult)>
    where
        F: FnMut(&mut T) -> bool,
    {
        let until = Deadline::after(timeout);
        loop {
            if !condition(&mut *guard) {
                return Ok((guard, WaitTimeoutResult(false)));
            }
            if until.has_passed() {
                return Ok((guard, WaitTimeoutResult(true)));
            }
            guard = self.wait_inner(guard, until)?.0;
        }
    }

    /// Wake one waiter (in any process). No syscall when nobody waits.
    pub fn notify_one(&self) {
        self.waiters.notify_one();
    }

    /// Wake every waiter (in every process). No syscall when nobody waits.
    pub fn notify_all(&self) {
        self.waiters.notify_all();
    }

    /// How many condition-variable waits in this process ended at a safety slice after a
    /// notify whose wake-up never reached them (see the module docs). Zero in correct
    /// operation; tests assert it.
    pub fn rescued_waits() -> u64 {
        // Relaxed: a statistic.
        RESCUED.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(not(ipc_loom))]
// SAFETY: `wait` unlocks the mutex only after registering and reading `seq` (see the module
// docs: no notify after the unlock is missed), and re-locks before returning; if the re-lock
// fails permanently (not recoverable, corrupted) it aborts, as the trait requires, because the
// guard state cannot be restored.
unsafe impl lock_api::RawCondvar for Condvar {
    #[allow(clippy::declare_interior_mutable_const)] // the documented lock_api idiom
    const INIT: Self = Condvar::new();
    type RawMutex = RawMutex;

    unsafe fn wait(&self, mutex: &RawMutex, guard: &mut Held) {
        self.park(mutex, guard, Deadline::NEVER);
        *guard = relock_or_abort(mutex);
    }

    fn notify_one(&self) -> bool {
        Condvar::notify_one(self);
        false // spurious wake-ups are possible
    }

    fn notify_all(&self) -> usize {
        Condvar::notify_all(self);
        0 // spurious wake-ups are possible
    }
}

#[cfg(not(ipc_loom))]
fn relock_or_abort(mutex: &RawMutex) -> Held {
    match mutex.lock_blocking() {
        Ok(held) => held,
        Err(_) => std::process::abort(),
    }
}

#[cfg(not(ipc_loom))]
// SAFETY: as for `RawCondvar`.
unsafe impl lock_api::RawCondvarTimed for Condvar {
    fn checked_duration_to_instant(timeout: &Duration) -> Option<Instant> {
        ipc_shm::Deadline::after(*timeout).instant()
    }

    unsafe fn wait_until(&self, mutex: &RawMutex, guard: &mut Held, timeout: &Instant) -> bool {
        let timed_out = self.park(mutex, guard, (*timeout).into());
        *guard = relock_or_abort(mutex);
        timed_out
    }
}
