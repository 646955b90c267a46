//! [`RawReentrantMutex`] (Python's `RLock`) and [`ReentrantMutex<T>`].
//!
//! Layout (`#[repr(C)]`, 32 bytes, all-zero unlocked):
//!
//! | field | meaning |
//! |---|---|
//! | `mutex: RawMutex` | the robust mutex word, taken once per outermost acquisition; its owner is the *process* |
//! | `count: u32` | acquisitions by the owning thread (written only by it, under the mutex) |
//! | `reserved: u32` | zero |
//! | `owner: u64` | `process owner id << 32 \| thread id` of the owning thread, 0 when free |
//!
//! The owner is a process (liveness id) and a thread (`gettid`), never the address of a
//! thread-local: a forked child has the same addresses as its parent but a new owner id, and
//! a thread id is unique among the live threads of a pid namespace. Only the owning thread
//! ever stores its own pair into `owner`, and it clears it before releasing the mutex, so a
//! thread that reads back its own pair holds the lock.
#![allow(unsafe_code)] // the Sync impl of ReentrantMutex<T>

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::time::{Duration, Instant};

use ipc_shm::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::error::{LockError, LockResult, NotOwner, TryLockError, TryLockResult};
use crate::owner::{self, RawError, Wait};
use crate::raw_mutex::RawMutex;

thread_local! {
    /// (owner id, thread id) of this thread, cached: `gettid` is a syscall. Keyed by the owner
    /// id, which changes in a forked child, so a stale copy is never used there.
    static TID: Cell<(u32, u32)> = const { Cell::new((0, 0)) };
}

fn thread_pair(me: u32) -> u64 {
    let tid = TID.with(|c| {
        let (owner, tid) = c.get();
        if owner == me && tid != 0 {
            tid
        } else {
            let tid = rustix::thread::gettid().as_raw_nonzero().get().unsigned_abs();
            c.set((me, tid));
            tid
        }
    });
    (u64::from(me) << 32) | u64::from(tid)
}

/// A robust re-entrant mutex word without data: Python's `multiprocessing.RLock`
/// (`lock`/`unlock` as `acquire`/`release`). The thread that holds it may lock it again;
/// it is free once every lock was matched by an unlock. Unlock by any other thread is
/// [`NotOwner`]. See the module docs for the layout.
#[repr(C)]
pub struct RawReentrantMutex {
    mutex: RawMutex,
    count: AtomicU32,
    reserved: AtomicU32,
    owner: AtomicU64,
}

#[cfg(not(ipc_loom))] // loom atomics are larger
const _: () = assert!(size_of::<RawReentrantMutex>() == 32);

// SAFETY: all-zero is an unlocked word, no owner, count zero.
unsafe impl bytemuck::Zeroable for RawReentrantMutex {}

// SAFETY: (1) atomics only; (2) any bits are a state: the word decodes totally, and `owner`
// and `count` are trusted only as "this thread wrote its own pair" (a forged pair equal to
// ours would need our owner id and thread id: a faulty peer can always break the protocol,
// but never cause UB, as no data is reached through this type); (3) atomic mutation; (4) no
// drop; (5) `#[repr(C)]`.
unsafe impl ipc_shm::ShmSafe for RawReentrantMutex {
    const LAYOUT_VERSION: u32 = 1;
}

impl Default for RawReentrantMutex {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for RawReentrantMutex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Relaxed: snapshots for display.
        f.debug_struct("RawReentrantMutex")
            .field("mutex", &self.mutex)
            .field("count", &self.count.load(Ordering::Relaxed))
            .field("owner", &format_args!("{:#x}", self.owner.load(Ordering::Relaxed)))
            .finish()
    }
}

/// One acquisition: who (process and thread), and whether the mutex was inherited.
#[derive(Debug, Clone, Copy)]
struct Entered {
    me: u32,
    pair: u64,
    died: bool,
}

impl RawReentrantMutex {
    /// An unlocked re-entrant mutex.
    #[cfg(not(ipc_loom))]
    pub const fn new() -> Self {
        RawReentrantMutex {
            mutex: RawMutex::new(),
            count: AtomicU32::new(0),
            reserved: AtomicU32::new(0),
            owner: AtomicU64::new(0),
        }
    }

    /// An unlocked re-entrant mutex.
    #[cfg(ipc_loom)]
    pub fn new() -> Self {
        RawReentrantMutex {
            mutex: RawMutex::new(),
            count: AtomicU32::new(0),
            reserved: AtomicU32::new(0),
            owner: AtomicU64::new(0),
        }
    }

    fn enter(&self, wait: Wait) -> Result<Entered, RawError> {
        let me = owner::me()?;
        let pair = thread_pair(me);
        // Relaxed: only this thread ever stores `pair` here (module docs): reading it back
        // means this thread holds the lock, and it reads its own writes.
        if self.owner.load(Ordering::Relaxed) == pair {
            // Relaxed: written only by the owning thread (us).
            let count = self.count.load(Ordering::Relaxed);
            if count == u32::MAX || count == 0 {
                // Impossible in correct use (the stack ends first; we hold it): a peer wrote it.
                return Err(RawError::Corrupted(u64::from(count)));
            }
            // Relaxed: as above.
            self.count.store(count + 1, Ordering::Relaxed);
            return Ok(Entered { me, pair, died: false });
        }
        let held = loop {
            match self.mutex.acquire(wait) {
                Err(RawError::WouldBlock | RawError::TimedOut) if wait == Wait::FOREVER => {}
                other => break other?,
            }
        };
        // Relaxed: under the mutex, published by its Release unlock.
        self.owner.store(pair, Ordering::Relaxed);
        self.count.store(1, Ordering::Relaxed);
        Ok(Entered { me, pair, died: held.owner_died() })
    }

    fn exit(&self, me: u32, pair: u64) -> Result<(), NotOwner> {
        // Relaxed: see `enter`.
        if self.owner.load(Ordering::Relaxed) != pair {
            return Err(NotOwner);
        }
        // Relaxed: written only by the owning thread.
        let count = self.count.load(Ordering::Relaxed);
        if count > 1 {
            self.count.store(count - 1, Ordering::Relaxed);
            return Ok(());
        }
        // Relaxed: cleared under the mutex, before the Release of its unlock.
        self.owner.store(0, Ordering::Relaxed);
        self.count.store(0, Ordering::Relaxed);
        self.mutex.release(me, false);
        Ok(())
    }

    fn outcome(r: Result<Entered, RawError>) -> TryLockResult<()> {
        match r {
            Ok(e) if e.died => Err(TryLockError::OwnerDied(())),
            Ok(_) => Ok(()),
            Err(e) => Err(e.into_try()),
        }
    }

    /// Acquire (again, if this thread holds it), blocking.
    ///
    /// # Errors
    /// [`LockError::OwnerDied`]`(())` when the previous owner died holding it: this thread
    /// now holds it (call [`mark_consistent`](Self::mark_consistent) before the final unlock,
    /// or it becomes not recoverable); otherwise as [`Mutex::lock`](crate::Mutex::lock).
    pub fn lock(&self) -> LockResult<()> {
        match Self::outcome(self.enter(Wait::FOREVER)) {
            Ok(()) => Ok(()),
            Err(TryLockError::OwnerDied(())) => Err(LockError::OwnerDied(())),
            Err(e) => Err(try_to_lock(e)),
        }
    }

    /// Acquire if free (or already ours) now.
    ///
    /// # Errors
    /// [`TryLockError::WouldBlock`]; otherwise as [`lock`](Self::lock).
    pub fn try_lock(&self) -> TryLockResult<()> {
        Self::outcome(self.enter(Wait::No))
    }

    /// Acquire, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`TryLockError::TimedOut`]; otherwise as [`lock`](Self::lock).
    pub fn try_lock_for(&self, timeout: Duration) -> TryLockResult<()> {
        Self::outcome(self.enter(Wait::after(timeout)))
    }

    /// Acquire, waiting until `deadline` at most.
    ///
    /// # Errors
    /// As [`try_lock_for`](Self::try_lock_for).
    pub fn try_lock_until(&self, deadline: Instant) -> TryLockResult<()> {
        Self::outcome(self.enter(Wait::Until(deadline.into())))
    }

    /// Release one level.
    ///
    /// # Errors
    /// [`NotOwner`] if the calling thread does not hold it (including a second unlock after
    /// the last), with nothing changed.
    pub fn unlock(&self) -> Result<(), NotOwner> {
        let me = owner::me().map_err(|_| NotOwner)?;
        self.exit(me, thread_pair(me))
    }

    /// Whether the calling thread holds it.
    pub fn is_owned_by_current_thread(&self) -> bool {
        match owner::me() {
            // Relaxed: see `enter`.
            Ok(me) => self.owner.load(Ordering::Relaxed) == thread_pair(me),
            Err(_) => false,
        }
    }

    /// Whether any thread of any process holds it (a snapshot).
    pub fn is_locked(&self) -> bool {
        self.mutex.is_locked()
    }

    /// As the holder that inherited it from a dead owner: declare the protected state
    /// consistent. `false` if the calling thread does not hold it in that state.
    pub fn mark_consistent(&self) -> bool {
        self.is_owned_by_current_thread() && self.mutex.mark_consistent()
    }

    /// Whether it is permanently unusable.
    pub fn is_not_recoverable(&self) -> bool {
        self.mutex.is_not_recoverable()
    }
}

fn try_to_lock<G>(e: TryLockError<G>) -> LockError<G> {
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

/// A robust re-entrant mutex with data: the holding thread may lock it again; the guard
/// gives `&T` (use atomics or cells inside for mutation, as with std's `ReentrantLock`).
/// `#[repr(C)]`; in shared memory `T` must be [`ShmSafe`](ipc_shm::ShmSafe).
#[repr(C)]
pub struct ReentrantMutex<T> {
    raw: RawReentrantMutex,
    data: T,
}

// SAFETY: `&T` is handed only to the thread that holds the lock (guards are not Send), one
// thread at a time, so `T: Send` suffices, as for std's `ReentrantLock`.
unsafe impl<T: Send> Sync for ReentrantMutex<T> {}

// SAFETY: `RawReentrantMutex` is ShmSafe and `T: ShmSafe`; `#[repr(C)]`; only `&T` is ever
// handed out, so `T`'s own rules cover every access.
unsafe impl<T: ipc_shm::ShmSafe + Send> ipc_shm::ShmSafe for ReentrantMutex<T> {
    const LAYOUT_VERSION: u32 = 1;
}

// SAFETY: all-zero is an unlocked word and zeroed `T` (valid because `T: Zeroable`).
unsafe impl<T: bytemuck::Zeroable> bytemuck::Zeroable for ReentrantMutex<T> {}

impl<T> fmt::Debug for ReentrantMutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReentrantMutex").field("raw", &self.raw).finish_non_exhaustive()
    }
}

impl<T: Default> Default for ReentrantMutex<T> {
    fn default() -> Self {
        ReentrantMutex::new(T::default())
    }
}

impl<T> ReentrantMutex<T> {
    /// An unlocked re-entrant mutex holding `value`.
    #[cfg(not(ipc_loom))]
    pub const fn new(value: T) -> Self {
        ReentrantMutex { raw: RawReentrantMutex::new(), data: value }
    }

    /// An unlocked re-entrant mutex holding `value`.
    #[cfg(ipc_loom)]
    pub fn new(value: T) -> Self {
        ReentrantMutex { raw: RawReentrantMutex::new(), data: value }
    }

    fn outcome(&self, r: Result<Entered, RawError>) -> TryLockResult<ReentrantMutexGuard<'_, T>> {
        match r {
            Ok(e) => {
                let guard = ReentrantMutexGuard {
                    lock: self,
                    me: e.me,
                    pair: e.pair,
                    died: e.died,
                    _not_send: PhantomData,
                };
                if e.died { Err(TryLockError::OwnerDied(guard)) } else { Ok(guard) }
            }
            Err(e) => Err(e.into_try()),
        }
    }

    /// Lock (again, if this thread holds it), blocking.
    ///
    /// # Errors
    /// As [`RawReentrantMutex::lock`], the guard inside `OwnerDied`.
    pub fn lock(&self) -> LockResult<ReentrantMutexGuard<'_, T>> {
        self.outcome(self.raw.enter(Wait::FOREVER)).map_err(try_to_lock)
    }

    /// Lock if free (or already ours) now.
    ///
    /// # Errors
    /// As [`RawReentrantMutex::try_lock`].
    pub fn try_lock(&self) -> TryLockResult<ReentrantMutexGuard<'_, T>> {
        self.outcome(self.raw.enter(Wait::No))
    }

    /// Lock, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`RawReentrantMutex::try_lock_for`].
    pub fn try_lock_for(&self, timeout: Duration) -> TryLockResult<ReentrantMutexGuard<'_, T>> {
        self.outcome(self.raw.enter(Wait::after(timeout)))
    }

    /// Lock, waiting until `deadline` at most.
    ///
    /// # Errors
    /// As [`RawReentrantMutex::try_lock_until`].
    pub fn try_lock_until(&self, deadline: Instant) -> TryLockResult<ReentrantMutexGuard<'_, T>> {
        self.outcome(self.raw.enter(Wait::Until(deadline.into())))
    }

    /// Whether the calling thread holds it.
    pub fn is_owned_by_current_thread(&self) -> bool {
        self.raw.is_owned_by_current_thread()
    }

    /// Whether any thread holds it (a snapshot).
    pub fn is_locked(&self) -> bool {
        self.raw.is_locked()
    }

    /// The data, through exclusive access.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.data
    }

    /// The data.
    pub fn into_inner(self) -> T {
        self.data
    }
}

/// Shared access to a [`ReentrantMutex`]'s data for the holding thread; releases one level
/// when dropped. Not `Send`: the lock belongs to the thread.
#[must_use = "if unused the ReentrantMutex will immediately unlock"]
pub struct ReentrantMutexGuard<'a, T> {
    lock: &'a ReentrantMutex<T>,
    me: u32,
    pair: u64,
    died: bool,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: sharing `&guard` across threads gives only `&T`, which needs `T: Sync`.
unsafe impl<T: Sync> Sync for ReentrantMutexGuard<'_, T> {}

impl<T> ReentrantMutexGuard<'_, T> {
    /// Declare the protected state consistent after inheriting the lock from a dead owner.
    pub fn mark_consistent(&self) -> bool {
        self.lock.raw.mutex.mark_consistent_as(self.me)
    }

    /// Whether this acquisition inherited the lock from an owner that died holding it.
    pub fn owner_died(&self) -> bool {
        self.died
    }
}

impl<T> Deref for ReentrantMutexGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.lock.data
    }
}

impl<T> Drop for ReentrantMutexGuard<'_, T> {
    fn drop(&mut self) {
        // A forked child's copy of the guard (another process, another thread id) releases
        // nothing.
        if owner::is_me(self.me) {
            let _ = self.lock.raw.exit(self.me, self.pair);
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for ReentrantMutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReentrantMutexGuard").field("data", &**self).finish()
    }
}
