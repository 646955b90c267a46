//! [`RwLock<T>`]: the robust reader-writer lock with its data, `#[repr(C)]`, and its guards.
#![allow(unsafe_code)] // the guards' views of the data cell

use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use ipc_shm::sync::atomic::AtomicU64;

use crate::error::{LockError, LockResult, TryLockError, TryLockResult};
use crate::owner::{self, RawError, Wait};
use crate::raw_mutex::Held;
use crate::raw_rwlock::{RawRwLock, ReadHeld};

/// A robust reader-writer lock for shared memory: [`RawRwLock`] followed by the data,
/// `#[repr(C)]`, all-zero unlocked.
///
/// - A writer killed inside is reported to the next locker as `OwnerDied`, carrying a
///   *write* guard even for a reader, so it can repair the data and
///   [`mark_consistent`](RwLockWriteGuard::mark_consistent) (else the lock becomes
///   `NotRecoverable`).
/// - A reader killed inside never wedges writers: its hold is reclaimed once the liveness
///   registry says it is dead (checked in bounded slices, within ~32 ms).
/// - At most [`READER_SLOTS`](crate::READER_SLOTS) processes hold read locks at once; one more
///   gets `TooManyReaders`, never a hang.
///
/// Writers are preferred: a waiting writer holds off new readers, so a thread that already
/// holds a read lock and asks for another while a writer waits deadlocks (the timed forms
/// time out), as with `parking_lot::RwLock`.
#[repr(C)]
pub struct RwLock<T> {
    raw: RawRwLock,
    data: UnsafeCell<T>,
}

#[cfg(not(ipc_loom))] // loom atomics are larger
const _: () = assert!(size_of::<RwLock<u64>>() == size_of::<RawRwLock>() + 8);

// SAFETY: shared access hands out `&T` to many threads (T: Sync), exclusive access `&mut T` to
// one at a time, possibly on another thread (T: Send), as for `std::sync::RwLock`.
unsafe impl<T: Send + Sync> Sync for RwLock<T> {}

// SAFETY: as for `Mutex<T>`: atomics plus `Pod` data (any bytes valid, no references), mutated
// only under the write lock, no drop, `#[repr(C)]`.
unsafe impl<T: bytemuck::Pod + Send + Sync> ipc_shm::ShmSafe for RwLock<T> {
    const LAYOUT_VERSION: u32 = 1;
}

// SAFETY: all-zero is an unlocked lock and zeroed `T` (valid because `T: Zeroable`).
unsafe impl<T: bytemuck::Zeroable> bytemuck::Zeroable for RwLock<T> {}

impl<T: Default> Default for RwLock<T> {
    fn default() -> Self {
        RwLock::new(T::default())
    }
}

impl<T> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RwLock").field("raw", &self.raw).finish_non_exhaustive()
    }
}

/// Result of a read lock: a read guard, or on `OwnerDied` the write guard.
pub type ReadResult<'a, T> = LockResult<RwLockReadGuard<'a, T>, RwLockWriteGuard<'a, T>>;
/// Result of a `try_`/timed read lock.
pub type TryReadResult<'a, T> = TryLockResult<RwLockReadGuard<'a, T>, RwLockWriteGuard<'a, T>>;

impl<T> RwLock<T> {
    /// An unlocked lock holding `value`.
    #[cfg(not(ipc_loom))]
    pub const fn new(value: T) -> Self {
        RwLock { raw: RawRwLock::new(), data: UnsafeCell::new(value) }
    }

    /// An unlocked lock holding `value`.
    #[cfg(ipc_loom)]
    pub fn new(value: T) -> Self {
        RwLock { raw: RawRwLock::new(), data: UnsafeCell::new(value) }
    }

    /// The outcome of a slow read as the slot it took (or the error). The slow paths hand
    /// back the slot rather than the finished result so that, once the public method is
    /// inlined, the fast path's result stays in registers (a callee that writes the result
    /// in place makes the caller build it in memory on both paths: ~10 instructions more per
    /// read).
    fn read_parts_outcome(
        &self,
        r: Result<ReadHeld, RawError>,
    ) -> Result<(u32, u32), TryLockError<RwLockWriteGuard<'_, T>>> {
        match r {
            Ok(held) => match RawRwLock::read_parts(held) {
                Ok(parts) => Ok(parts),
                Err(held) => Err(TryLockError::OwnerDied(self.write_guard(held))),
            },
            Err(e) => Err(e.into_try()),
        }
    }

    fn write_guard(&self, held: Held) -> RwLockWriteGuard<'_, T> {
        RwLockWriteGuard { lock: self, held, _not_sync_data: PhantomData }
    }

    fn write_outcome(&self, r: Result<Held, RawError>) -> TryLockResult<RwLockWriteGuard<'_, T>> {
        match r {
            Ok(held) if held.owner_died() => Err(TryLockError::OwnerDied(self.write_guard(held))),
            Ok(held) => Ok(self.write_guard(held)),
            Err(e) => Err(e.into_try()),
        }
    }

    /// A read guard from the fast path's (slot, owner), or a slow path's (slot index, owner).
    #[inline]
    fn read_guard<'a>(
        &'a self,
        fast: Option<(&'a AtomicU64, u32)>,
        slow: impl FnOnce() -> Result<(u32, u32), TryLockError<RwLockWriteGuard<'a, T>>>,
    ) -> TryReadResult<'a, T> {
        let (slot, owner) = match fast {
            Some(parts) => parts,
            None => {
                let (i, owner) = slow()?;
                (self.raw.slot_ref(i), owner)
            }
        };
        Ok(RwLockReadGuard { lock: self, slot, owner, _not_send_data: PhantomData })
    }

    /// Take a read lock, blocking.
    ///
    /// # Errors
    /// [`LockError::OwnerDied`] with the *write* guard when a writer died holding the lock;
    /// [`LockError::TooManyReaders`]; [`LockError::NotRecoverable`]; [`LockError::Corrupted`];
    /// [`LockError::Liveness`].
    #[inline]
    pub fn read(&self) -> ReadResult<'_, T> {
        let (slot, owner) = match self.raw.read_fast_ref() {
            Some(parts) => parts,
            None => {
                let (i, owner) = self.read_slow()?;
                (self.raw.slot_ref(i), owner)
            }
        };
        Ok(RwLockReadGuard { lock: self, slot, owner, _not_send_data: PhantomData })
    }

    #[cold]
    #[inline(never)]
    fn read_slow(&self) -> Result<(u32, u32), LockError<RwLockWriteGuard<'_, T>>> {
        self.read_parts_outcome(self.raw.read_blocking()).map_err(busy_to_lock)
    }

    /// Take a read lock if no live writer holds or waits for it now.
    ///
    /// # Errors
    /// [`TryLockError::WouldBlock`], otherwise as [`read`](Self::read).
    #[inline]
    pub fn try_read(&self) -> TryReadResult<'_, T> {
        self.read_guard(self.raw.read_fast_ref(), || self.try_read_slow(Wait::No))
    }

    #[cold]
    #[inline(never)]
    fn try_read_slow(
        &self,
        wait: Wait,
    ) -> Result<(u32, u32), TryLockError<RwLockWriteGuard<'_, T>>> {
        self.read_parts_outcome(self.raw.read_acquire(wait))
    }

    /// Take a read lock, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`TryLockError::TimedOut`], otherwise as [`read`](Self::read).
    #[inline]
    pub fn try_read_for(&self, timeout: Duration) -> TryReadResult<'_, T> {
        self.read_guard(self.raw.read_fast_ref(), || self.try_read_slow(Wait::after(timeout)))
    }

    /// Take a read lock, waiting until `deadline` at most.
    ///
    /// # Errors
    /// As [`try_read_for`](Self::try_read_for).
    #[inline]
    pub fn try_read_until(&self, deadline: Instant) -> TryReadResult<'_, T> {
        self.read_guard(self.raw.read_fast_ref(), || {
            self.try_read_slow(Wait::Until(deadline.into()))
        })
    }

    /// Take the write lock, blocking.
    ///
    /// # Errors
    /// [`LockError::OwnerDied`] when the previous writer died holding it;
    /// [`LockError::NotRecoverable`]; [`LockError::Corrupted`]; [`LockError::Liveness`].
    pub fn write(&self) -> LockResult<RwLockWriteGuard<'_, T>> {
        match self.write_outcome(self.raw.write_blocking()) {
            Ok(g) => Ok(g),
            Err(TryLockError::OwnerDied(g)) => Err(LockError::OwnerDied(g)),
            Err(e) => Err(busy_to_lock(e)),
        }
    }

    /// Take the write lock if nobody (alive) holds the lock now.
    ///
    /// # Errors
    /// [`TryLockError::WouldBlock`], otherwise as [`write`](Self::write).
    pub fn try_write(&self) -> TryLockResult<RwLockWriteGuard<'_, T>> {
        self.write_outcome(self.raw.write_acquire(Wait::No))
    }

    /// Take the write lock, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`TryLockError::TimedOut`], otherwise as [`write`](Self::write).
    pub fn try_write_for(&self, timeout: Duration) -> TryLockResult<RwLockWriteGuard<'_, T>> {
        self.write_outcome(self.raw.write_acquire(Wait::after(timeout)))
    }

    /// Take the write lock, waiting until `deadline` at most.
    ///
    /// # Errors
    /// As [`try_write_for`](Self::try_write_for).
    pub fn try_write_until(&self, deadline: Instant) -> TryLockResult<RwLockWriteGuard<'_, T>> {
        self.write_outcome(self.raw.write_acquire(Wait::Until(deadline.into())))
    }

    /// The lock words, e.g. to use them through lock_api.
    pub fn raw(&self) -> &RawRwLock {
        &self.raw
    }

    /// The data, through exclusive access (no locking needed).
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    /// The data.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }

    /// A raw pointer to the data.
    pub fn data_ptr(&self) -> *mut T {
        self.data.get()
    }
}

/// A blocking operation never reports busy; keep the conversion total without a panic.
fn busy_to_lock<G>(e: TryLockError<G>) -> LockError<G> {
    match e {
        TryLockError::OwnerDied(g) => LockError::OwnerDied(g),
        TryLockError::Corrupted { word } => LockError::Corrupted { word },
        TryLockError::TooManyReaders => LockError::TooManyReaders,
        TryLockError::Liveness(e) => LockError::Liveness(e),
        TryLockError::NotRecoverable | TryLockError::WouldBlock | TryLockError::TimedOut => {
            LockError::NotRecoverable
        }
    }
}

/// Shared access to an [`RwLock`]'s data; releases its read count when dropped.
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct RwLockReadGuard<'a, T> {
    lock: &'a RwLock<T>,
    /// The reader slot holding our count (in `lock`).
    slot: &'a AtomicU64,
    owner: u32,
    _not_send_data: PhantomData<&'a T>,
}

impl<T> Deref for RwLockReadGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the guard holds a read count, so no writer (following the protocol) holds
        // the lock until it is released; shared access for many readers is what `T: Sync`
        // (required for the lock to be shared) allows.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> Drop for RwLockReadGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // A forked child's copy of the guard leaves the parent's reader slot alone.
        if owner::is_me(self.owner) {
            self.lock.raw.leave(self.slot, self.owner);
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RwLockReadGuard").field("data", &**self).finish()
    }
}

/// Exclusive access to an [`RwLock`]'s data; releases the write lock when dropped.
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct RwLockWriteGuard<'a, T> {
    lock: &'a RwLock<T>,
    held: Held,
    _not_sync_data: PhantomData<&'a mut T>,
}

impl<T> RwLockWriteGuard<'_, T> {
    /// Declare the data consistent after inheriting the lock from a dead writer; see
    /// [`MutexGuard::mark_consistent`](crate::MutexGuard::mark_consistent).
    pub fn mark_consistent(&mut self) -> bool {
        self.lock.raw.writer().mark_consistent_as(self.held.owner())
    }

    /// Whether this guard inherited the lock from a writer that died holding it.
    pub fn owner_died(&self) -> bool {
        self.held.owner_died()
    }

    /// The liveness owner id of the dead writer this lock was inherited from, if it was.
    pub fn dead_owner(&self) -> Option<u32> {
        self.held.dead_owner()
    }
}

impl<T> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the guard holds the writer word and every read count drained: no other
        // access (following the protocol) until it drops.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for RwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only access through the guard.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for RwLockWriteGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // A forked child's copy of the guard releases nothing.
        if owner::is_me(self.held.owner()) {
            self.lock.raw.writer().release_word(self.held.word(), true);
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RwLockWriteGuard")
            .field("data", &**self)
            .field("owner_died", &self.owner_died())
            .finish()
    }
}
