//! [`Mutex<T>`]: the robust mutex with its data, `#[repr(C)]` so it can sit in any shared
//! struct, and its guard.
#![allow(unsafe_code)] // the guard's views of the data cell

use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use crate::error::{LockError, LockResult, TryLockError, TryLockResult};
use crate::owner::{self, RawError, Wait};
use crate::raw_mutex::{Held, RawMutex};

/// A robust mutex for shared memory: [`RawMutex`] followed by the data, `#[repr(C)]`,
/// all-zero unlocked. Put it in any [`Shared`](ipc_shm::Shared) struct, or in its own
/// segment with [`NamedMutex`](crate::NamedMutex).
///
/// # When an owner dies: the recovery pattern
/// When the process holding it dies, the next locker gets the guard inside
/// [`LockError::OwnerDied`]; it may repair the data and call
/// [`MutexGuard::mark_consistent`]. Dropped without that (a plain `lock().unwrap()`, or a `?`
/// that drops the error), the mutex becomes [`NotRecoverable`](LockError::NotRecoverable)
/// for every process (POSIX robust semantics): handle `OwnerDied` wherever an owner may die.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use ipc_lock::{LockError, Mutex};
/// let m = Mutex::new(0u64);
/// let mut guard = match m.lock() {
///     Ok(g) => g,
///     Err(LockError::OwnerDied(mut g)) => {
///         // The dead owner may have left the data half-updated: repair it, then say so.
///         *g = 0; // (or re-check and fix what it guards)
///         g.mark_consistent();
///         g
///     }
///     // Not recoverable, corrupted, no owner id: an `ipc_lock::Error` through `?`.
///     Err(e) => return Err(ipc_lock::Error::from(e).into()),
/// };
/// *guard += 1;
/// # Ok(()) }
/// ```
///
/// A lock left not recoverable can be taken back explicitly with [`reclaim`](Self::reclaim),
/// by a process that then puts the data right.
///
/// The owner is a *process*: two threads of one process exclude each other, but locking it
/// again from the thread that holds it deadlocks (the timed forms time out), as with
/// `std::sync::Mutex`; and only the death of the process (or its `exec`) releases a lock it
/// holds, not the exit of a thread that leaked its guard. In shared memory, `T` must be [`bytemuck::Pod`]: any bytes a peer
/// leaves are a valid `T`.
#[repr(C)]
pub struct Mutex<T> {
    raw: RawMutex,
    data: UnsafeCell<T>,
}

#[cfg(not(ipc_loom))] // loom atomics are larger
const _: () = assert!(size_of::<Mutex<u64>>() == 24 && align_of::<Mutex<u64>>() == 8);
#[cfg(not(ipc_loom))] // loom atomics are larger
const _: () = assert!(size_of::<Mutex<[u8; 4]>>() == 24);

// SAFETY: the mutex hands `&mut T` to one holder at a time (the lock word's CAS protocol),
// so sharing it between threads needs only `T: Send`, as for `std::sync::Mutex`.
unsafe impl<T: Send> Sync for Mutex<T> {}

// SAFETY: (1) `RawMutex` is an atomic word and `T: Pod` holds no references (raw pointers in a
// Pod are plain integers here: never dereferenced by us); (2) every bit pattern is valid: the
// word decodes totally, and `Pod` data accepts any bytes; (3) the data is mutated only through
// a guard, which the lock word's protocol makes exclusive across processes; (4) no drop
// obligations (`Pod` is `Copy`); (5) `#[repr(C)]`.
unsafe impl<T: bytemuck::Pod + Send> ipc_shm::ShmSafe for Mutex<T> {
    const LAYOUT_VERSION: u32 = 1;
}

// SAFETY: all-zero is an unlocked word and zeroed `T` (valid because `T: Zeroable`).
unsafe impl<T: bytemuck::Zeroable> bytemuck::Zeroable for Mutex<T> {}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Mutex::new(T::default())
    }
}

impl<T> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mutex").field("raw", &self.raw).finish_non_exhaustive()
    }
}

impl<T> Mutex<T> {
    /// An unlocked mutex holding `value`.
    #[cfg(not(ipc_loom))]
    pub const fn new(value: T) -> Self {
        Mutex { raw: RawMutex::new(), data: UnsafeCell::new(value) }
    }

    /// An unlocked mutex holding `value`.
    #[cfg(ipc_loom)]
    pub fn new(value: T) -> Self {
        Mutex { raw: RawMutex::new(), data: UnsafeCell::new(value) }
    }

    fn guard(&self, held: Held) -> MutexGuard<'_, T> {
        MutexGuard { mutex: self, held, _not_sync_data: PhantomData }
    }

    fn outcome(&self, r: Result<Held, RawError>) -> TryLockResult<MutexGuard<'_, T>> {
        match r {
            Ok(held) if held.owner_died() => Err(TryLockError::OwnerDied(self.guard(held))),
            Ok(held) => Ok(self.guard(held)),
            Err(e) => Err(e.into_try()),
        }
    }

    /// Lock, blocking until acquired.
    ///
    /// # Errors
    /// [`LockError::OwnerDied`] (carrying the guard) if the previous owner died holding it;
    /// [`LockError::NotRecoverable`]; [`LockError::Corrupted`] if a peer wrote garbage into
    /// the lock word; [`LockError::Liveness`] if this process cannot get an owner id.
    #[inline]
    pub fn lock(&self) -> LockResult<MutexGuard<'_, T>> {
        match self.raw.try_fast() {
            Some(held) => Ok(self.guard(held)),
            None => self.lock_slow(),
        }
    }

    #[cold]
    #[inline(never)]
    fn lock_slow(&self) -> LockResult<MutexGuard<'_, T>> {
        match self.raw.lock_blocking() {
            Ok(held) if held.owner_died() => Err(LockError::OwnerDied(self.guard(held))),
            Ok(held) => Ok(self.guard(held)),
            Err(e) => Err(e.into_lock().unwrap_or(LockError::NotRecoverable)),
        }
    }

    /// Take back a mutex that is [not recoverable](LockError::NotRecoverable) (an owner died
    /// and the heir dropped its guard without marking the data consistent): returns a guard
    /// holding it as a plain, consistent lock, over the data as the dead owners left it.
    /// Repair or overwrite the data, then drop the guard: the mutex is an ordinary one again
    /// for every process. `None` if the mutex is not in that state (or this process has no
    /// liveness owner id).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let m = ipc_lock::Mutex::new(7u64);
    /// if m.is_not_recoverable() {
    ///     if let Some(mut g) = m.reclaim() {
    ///         *g = 0; // start again from a known state
    ///     }
    /// }
    /// assert!(m.lock().is_ok());
    /// # Ok(()) }
    /// ```
    pub fn reclaim(&self) -> Option<MutexGuard<'_, T>> {
        self.raw.reclaim().map(|held| self.guard(held))
    }

    /// Lock if it is free (or held by a dead owner) now.
    ///
    /// # Errors
    /// [`TryLockError::WouldBlock`] when a live owner holds it; otherwise as
    /// [`lock`](Self::lock). Asks the liveness registry (one syscall) when the lock is held.
    #[inline]
    pub fn try_lock(&self) -> TryLockResult<MutexGuard<'_, T>> {
        match self.raw.try_fast() {
            Some(held) => Ok(self.guard(held)),
            None => self.try_lock_slow(Wait::No),
        }
    }

    #[cold]
    #[inline(never)]
    fn try_lock_slow(&self, wait: Wait) -> TryLockResult<MutexGuard<'_, T>> {
        self.outcome(self.raw.acquire(wait))
    }

    /// Lock, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`TryLockError::TimedOut`] when a live owner still holds it at the deadline; otherwise
    /// as [`lock`](Self::lock).
    #[inline]
    pub fn try_lock_for(&self, timeout: Duration) -> TryLockResult<MutexGuard<'_, T>> {
        match self.raw.try_fast() {
            Some(held) => Ok(self.guard(held)),
            None => self.try_lock_slow(Wait::after(timeout)),
        }
    }

    /// Lock, waiting until `deadline` at most.
    ///
    /// # Errors
    /// As [`try_lock_for`](Self::try_lock_for).
    #[inline]
    pub fn try_lock_until(&self, deadline: Instant) -> TryLockResult<MutexGuard<'_, T>> {
        match self.raw.try_fast() {
            Some(held) => Ok(self.guard(held)),
            None => self.try_lock_slow(Wait::Until(deadline.into())),
        }
    }

    /// Whether it is held (a snapshot).
    pub fn is_locked(&self) -> bool {
        self.raw.is_locked()
    }

    /// Whether it is permanently unusable.
    pub fn is_not_recoverable(&self) -> bool {
        self.raw.is_not_recoverable()
    }

    /// The lock word, e.g. to use it through lock_api.
    pub fn raw(&self) -> &RawMutex {
        &self.raw
    }

    /// The data, through exclusive access to the mutex (no locking needed).
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    /// The data.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }

    /// A raw pointer to the data (for users of the raw word).
    pub fn data_ptr(&self) -> *mut T {
        self.data.get()
    }

    pub(crate) fn make_guard(&self, held: Held) -> MutexGuard<'_, T> {
        self.guard(held)
    }
}

/// Exclusive access to a [`Mutex`]'s data; unlocks when dropped.
#[must_use = "if unused the Mutex will immediately unlock"]
pub struct MutexGuard<'a, T> {
    mutex: &'a Mutex<T>,
    held: Held,
    // `&mut T` is reachable through the guard: it is Sync only if `T` is.
    _not_sync_data: PhantomData<&'a mut T>,
}

impl<T> MutexGuard<'_, T> {
    /// Declare the data consistent after inheriting it from a dead owner (POSIX
    /// `pthread_mutex_consistent`), so unlocking leaves the mutex usable. Returns whether the
    /// mutex was in that state (a guard from a clean lock returns `false` and changes
    /// nothing).
    pub fn mark_consistent(&mut self) -> bool {
        self.mutex.raw.mark_consistent_as(self.held.owner())
    }

    /// Whether this guard inherited the lock from an owner that died holding it (and the
    /// data may be inconsistent).
    pub fn owner_died(&self) -> bool {
        self.held.owner_died()
    }

    /// The liveness owner id of the dead owner this lock was inherited from, if it was.
    pub fn dead_owner(&self) -> Option<u32> {
        self.held.dead_owner()
    }

    /// The mutex this guard holds.
    pub fn mutex(&self) -> &Mutex<T> {
        self.mutex
    }
}

impl<'a, T> MutexGuard<'a, T> {
    /// Give up the guard without unlocking: the mutex and the acquisition's state.
    pub(crate) fn into_parts(self) -> (&'a Mutex<T>, Held) {
        let this = std::mem::ManuallyDrop::new(self);
        let held = Held::new(this.held.owner(), this.held.dead_owner().unwrap_or(0));
        (this.mutex, held)
    }
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock, so no other guard (in this or any process that
        // follows the protocol) accesses the data until it drops; the cell lives as long as
        // the borrowed mutex.
        unsafe { &*self.mutex.data.get() }
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only access through the guard.
        unsafe { &mut *self.mutex.data.get() }
    }
}

impl<T> Drop for MutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // Only the process that took the lock releases it: a forked child's copy of the guard
        // is a no-op (the parent still holds the lock).
        if owner::is_me(self.held.owner()) {
            self.mutex.raw.release_word(self.held.word(), false);
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MutexGuard")
            .field("data", &**self)
            .field("owner_died", &self.owner_died())
            .finish()
    }
}
