//! Robust cross-process locks: [`Mutex`], [`RwLock`], [`ReentrantMutex`] (Python's `RLock`),
//! [`Condvar`], their named forms, and [`FileLock`].
//!
//! A process killed while it holds a lock never hangs the others: the next locker is told
//! (`OwnerDied`, carrying the guard) and may repair the data. Here a child dies holding the
//! lock mid-update, and the parent recovers:
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use ipc_lock::{LockError, Mutex};
//! use ipc_shm::Shared;
//!
//! // Anonymous shared memory, inherited by the child below.
//! let account = Shared::anonymous(Mutex::new([0u64; 2]))?;
//!
//! // SAFETY: the child only locks, writes and kills itself; it never returns.
//! match unsafe { libc::fork() } {
//!     -1 => return Err(std::io::Error::last_os_error().into()),
//!     0 => {
//!         if let Ok(mut money) = account.lock() {
//!             money[0] = 100; // moved out of one account...
//!             // ...and killed before it is moved into the other, holding the lock.
//!             // SAFETY: signalling ourselves.
//!             unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
//!         }
//!         // SAFETY: leave the child without running the parent's destructors.
//!         unsafe { libc::_exit(1) }
//!     }
//!     child => {
//!         let mut status = 0;
//!         // SAFETY: `child` is our child; `status` is a valid out-pointer.
//!         unsafe { libc::waitpid(child, &mut status, 0) };
//!         assert!(libc::WIFSIGNALED(status));
//!     }
//! }
//!
//! match account.lock() {
//!     Err(LockError::OwnerDied(mut money)) => {
//!         // The dead owner's half-done transfer: roll it back, then declare it consistent.
//!         money[0] = 0;
//!         assert!(money.mark_consistent());
//!     }
//!     other => panic!("expected OwnerDied, got {other:?}"),
//! }
//! let money = account.lock().map_err(|e| e.to_string())?;
//! assert_eq!(*money, [0, 0]);
//! # Ok(()) }
//! ```
//!
//! # What is here
//! - [`Mutex<T>`]: `#[repr(C)]`, all-zero unlocked, [`ShmSafe`](ipc_shm::ShmSafe) for
//!   [`Pod`](bytemuck::Pod) data, so it sits in any [`Shared`](ipc_shm::Shared) struct.
//!   `lock`, `try_lock`, `try_lock_for`, `try_lock_until`. When the holder dies, exactly one
//!   waiter inherits the lock as [`LockError::OwnerDied`]; it repairs the data and calls
//!   [`MutexGuard::mark_consistent`], or the mutex becomes
//!   [`NotRecoverable`](LockError::NotRecoverable) for every process (POSIX robust
//!   semantics). Waiters sleep in bounded slices and notice a dead owner within
//!   [`DEAD_OWNER_CHECK`] (32 ms), not at their own timeout.
//! - [`RwLock<T>`]: a writer killed inside is inherited like a mutex (a reader that finds it
//!   is handed the *write* guard to repair); a reader killed inside is reclaimed through the
//!   liveness registry, so it never wedges writers; a full reader table
//!   ([`READER_SLOTS`] processes) is [`LockError::TooManyReaders`], never a hang.
//! - [`ReentrantMutex<T>`] and [`RawReentrantMutex`] (Python's `RLock`): the owner is a
//!   process *and* a thread (`gettid`), never a thread-local address; unlock by a non-owner
//!   is [`NotOwner`].
//! - [`Condvar`]: `wait`, `wait_timeout`, `wait_while` (Python's `wait_for`),
//!   `notify_one`, `notify_all` with [`Mutex`] across processes; no lost wake-ups, no
//!   syscall to notify when nobody waits.
//! - [`NamedMutex`], [`NamedRwLock`], [`NamedReentrantMutex`], [`NamedRLock`],
//!   [`NamedCondvar`]: each in its own `/dev/shm` segment behind ipc-shm's checked header
//!   (`create`, `open`, `open_or_create`).
//! - [`FileLock`]: shared or exclusive locks on a path over OFD locks, try and timed forms,
//!   released by the kernel when the process dies.
//! - lock_api's raw traits: [`RawMutex`] implements `RawMutex` + `RawMutexTimed`,
//!   [`RawRwLock`] implements `RawRwLock` + `RawRwLockTimed`, [`Condvar`] implements
//!   `RawCondvar` + `RawCondvarTimed`; [`lock_api`] is re-exported. Our own `#[repr(C)]`
//!   types are the shared layout: never put `lock_api::Mutex` in shared memory (its layout is
//!   not fixed across binaries).
//!
//! # How it works
//! A lock's state is one 64-bit word: the owner's 30-bit liveness id (`ipc_shm::liveness`:
//! registered once per process, its death seen by the kernel dropping an OFD lock, immune to
//! pid reuse), two flag bits, and a 32-bit check of the id ([`check_of`], [`owner_word`]).
//! Uncontended lock and unlock are one CAS each; the liveness registry is only consulted by
//! waiters, after a bounded spin and after each sleep slice; sleepers wait on a separate
//! futex word. Garbage written into a lock's state by a faulty peer never yields a phantom
//! acquire: a state no correct peer writes (a wrong check, impossible flags) is
//! [`LockError::Corrupted`] (a random 64-bit value passes the check with probability
//! 2^-32); a valid state is judged by what liveness says of its owner, as in every crate of
//! the family (the table in `ipc_shm::liveness`):
//!
//! | owner | mutex or writer word | reader slot |
//! |---|---|---|
//! | `Alive` (not us) | waited on (the timed forms time out) | waited on by writers |
//! | `Dead` | inherited as `OwnerDied`: exactly what that process dying while holding it leaves behind | reclaimed |
//! | `Unknown`: an id no process ever had (a registry slot never used), or a registry that cannot answer now | never inherited: waited on until the deadline, asking again after every slice | never reclaimed: waited on until the deadline |
//!
//! Owners are processes: two threads of a process exclude each other, but a thread that
//! locks a [`Mutex`] it already holds deadlocks (the timed forms time out), as with
//! `std::sync::Mutex`. All processes sharing a lock must use the same liveness registry (by
//! default one per user; see `ipc_shm::liveness`).
//!
//! # A guard cannot outlive its mapping
//! These locks do not use the kernel's robust list (a holder's death is seen through
//! liveness), so the list entry a glibc holder leaves unreadable when it unmaps the lock
//! cannot happen here; and safe code cannot unmap a lock it holds: a guard
//! borrows the lock, which borrows the mapping, so dropping the
//! [`Shared`](ipc_shm::Shared) first does not compile:
//!
//! ```compile_fail,E0505
//! use ipc_lock::Mutex;
//! use ipc_shm::Shared;
//!
//! let shared = Shared::anonymous(Mutex::new(0u32)).unwrap();
//! let mut guard = shared.lock().unwrap();
//! drop(shared); // error[E0505]: cannot move out of `shared` because it is borrowed
//! *guard += 1;
//! ```
//!
//! # Guards across `fork`
//! A forked child gets a copy of every guard its parent held at the fork. Only the process
//! that took a lock can release it: a guard (mutex, rwlock read or write, re-entrant, file
//! lock, and lock_api's) dropped in any other process is a no-op, so a child that unwinds
//! through its parent's frame, or returns through `?`, leaves the parent holding what it held.
//! (Each release compares the lock's recorded owner id, or for [`FileLock`] the pid, with the
//! current process's: one load on the fast path.) The child must not use such a guard's data:
//! the lock is not its own.
//!
//! # Where unsafe lives
//! Unsafe blocks: `mutex.rs` and `rwlock.rs` (the guards' views of the data cell); this crate
//! makes no system call of its own (futex, liveness, OFD locks and the fork handler are
//! ipc-shm's). Unsafe impls, each with its SAFETY argument: `ShmSafe`,
//! `Zeroable` and `Sync` of the lock types, and lock_api's raw traits (`raw_mutex.rs`,
//! `raw_rwlock.rs`, `condvar.rs`, `mutex.rs`, `rwlock.rs`, `reentrant.rs`). Everything else
//! is `#![deny(unsafe_code)]`.
#![deny(unsafe_code)]

mod condvar;
mod error;
mod file_lock;
mod mutex;
mod named;
mod owner;
mod raw_mutex;
mod raw_rwlock;
mod reentrant;
mod rwlock;

pub use lock_api;

pub use condvar::{CONDVAR_SLICE, Condvar};
pub use error::{
    Error, LockError, LockFailure, LockResult, NotOwner, Result, TryLockError, TryLockResult,
    WaitTimeoutResult,
};
pub use file_lock::{FileLock, FileLockGuard};
pub use ipc_shm::liveness::{check_of, checked_word as owner_word};
pub use mutex::{Mutex, MutexGuard};
pub use named::{Named, NamedCondvar, NamedMutex, NamedRLock, NamedReentrantMutex, NamedRwLock};
pub use raw_mutex::{Held, RawMutex};
pub use raw_rwlock::{READER_SLOTS, RawRwLock, ReadHeld};
pub use reentrant::{RawReentrantMutex, ReentrantMutex, ReentrantMutexGuard};
pub use rwlock::{ReadResult, RwLock, RwLockReadGuard, RwLockWriteGuard, TryReadResult};

/// The crash points of ipc-lock (`ipc_shm::crash`, feature `crashpoints`), with where they
/// sit: each is a moment a process can die at, exercised by the fault suite.
pub const CRASH_POINTS: &[&str] = &[
    // After winning the CAS that inherits a dead owner's mutex word, before returning.
    "mutex.recovered",
    // Releasing an inherited, unmarked word: before it becomes not recoverable.
    "mutex.unlock.inconsistent",
    // A reader has bumped its slot and not yet looked at the writer word.
    "rwlock.read.counted",
    // A writer holds the writer word and has not yet waited for readers to drain.
    "rwlock.write.draining",
    // A condvar waiter has registered, still holding the mutex.
    "condvar.registered",
    // A condvar waiter was woken and deregistered, before it re-locks.
    "condvar.woken",
];

/// The longest a waiter sleeps before asking whether the lock's owner is still alive: a
/// dead owner is noticed within this (plus one ~1 µs liveness query) of its death.
pub const DEAD_OWNER_CHECK: std::time::Duration = ipc_shm::wait::SLICE_MAX;
