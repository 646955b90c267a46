//! Cross-process semaphores, events and barriers in shared memory, robust against processes
//! killed at any instruction: [`Semaphore`] (tracked or untracked), [`BoundedSemaphore`],
//! [`NamedSemaphore`] (POSIX `sem_open`), [`Event`] and [`Barrier`].
//!
//! A pool of two worker slots shared by name. A worker is SIGKILLed while it holds a slot;
//! the slot comes back to the pool, taken over by the next process that asks for one:
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use ipc_sem::Semaphore;
//! use ipc_shm::Shared;
//! use std::time::{Duration, Instant};
//!
//! let name = ipc_shm::random_name("doc-pool")?;
//! let pool = Shared::create(&name, Semaphore::tracked(2)?)?;
//!
//! // Two workers each take a slot and keep it until they are killed.
//! let mut workers = Vec::new();
//! for _ in 0..2 {
//!     # #[allow(clippy::disallowed_methods)]
//!     // SAFETY: the child only opens the pool, takes a slot and waits; it never returns.
//!     match unsafe { libc::fork() } {
//!         -1 => return Err(std::io::Error::last_os_error().into()),
//!         0 => {
//!             if let Ok(pool) = Shared::<Semaphore>::open(&name)
//!                 && let Ok(slot) = pool.acquire()
//!             {
//!                 slot.forget(); // held until this process dies
//!                 // SAFETY: no preconditions; we wait here to be killed.
//!                 loop { unsafe { libc::pause() }; }
//!             }
//!             // SAFETY: leave the child without running the parent's destructors.
//!             unsafe { libc::_exit(1) }
//!         }
//!         pid => workers.push(pid),
//!     }
//! }
//! let t = Instant::now();
//! while pool.value() > 0 && t.elapsed() < Duration::from_secs(10) {
//!     std::thread::sleep(Duration::from_millis(1));
//! }
//! assert!(pool.try_acquire()?.is_none(), "both slots are held");
//!
//! // Kill one worker: its slot comes back to the next process that asks.
//! for &pid in &workers[..1] {
//!     // SAFETY: `pid` is our child.
//!     unsafe { libc::kill(pid, libc::SIGKILL); libc::waitpid(pid, std::ptr::null_mut(), 0) };
//! }
//! let slot = pool.acquire_timeout(Duration::from_secs(10))?.expect("the dead worker's slot");
//! assert_eq!(pool.ledger()?.held_by_dead, 0);
//! drop(slot);
//! for &pid in &workers[1..] {
//!     // SAFETY: `pid` is our child.
//!     unsafe { libc::kill(pid, libc::SIGKILL); libc::waitpid(pid, std::ptr::null_mut(), 0) };
//! }
//! assert_eq!(pool.recover()?, 1);
//! assert_eq!(pool.value(), 2);
//! # Ok(()) }
//! ```
//!
//! # What is here
//! - [`Semaphore`]: `#[repr(C)]`, [`ShmSafe`](ipc_shm::ShmSafe): put it in an
//!   [`ipc_shm::Shared`] (named or anonymous) or inside your own shared struct.
//!   [`acquire`](Semaphore::acquire) / [`try_acquire`](Semaphore::try_acquire) /
//!   [`acquire_timeout`](Semaphore::acquire_timeout) / `acquire_many*`, RAII [`Permit`],
//!   [`release`](Semaphore::release) / [`release_many`](Semaphore::release_many),
//!   [`value`](Semaphore::value).
//!   - **tracked** ([`Semaphore::tracked`]): a ledger word per permit holds its holder's owner
//!     id; taking a permit and recording the taker are one CAS, so a holder killed at any
//!     instruction leaves an exact ledger, and its permits come back to the next acquirer
//!     that finds it dead (or [`Semaphore::recover`]). Invariant at every quiet moment:
//!     `available + held_by_live == permits` ([`Semaphore::ledger`] shows it).
//!   - **untracked** ([`Semaphore::new`]): a bare count, Python's and POSIX's semantics
//!     (release without acquire allowed); a killed holder leaks exactly what it held.
//! - [`BoundedSemaphore`]: release past the maximum is [`Error::Overflow`]; a garbage count
//!   never lets an acquirer get more than the maximum.
//! - [`NamedSemaphore`]: the system's `sem_open` semaphore, shared by name with C programs and
//!   Python's `posix_ipc` (not robust: the system's semantics).
//! - [`Event`]: `set`, `clear`, `is_set`, `wait`, `wait_timeout`; every waiter in every
//!   process wakes on `set`.
//! - [`Barrier`]: `n` parties, a leader per generation, `wait_timeout`, `abort`, `reset`; a
//!   timeout, an abort or a party that dies while the others wait breaks it for all
//!   ([`BarrierError::Broken`]).
//!
//! Every blocking call has `try_` and `_timeout` forms. A waiter sets a waiter flag in the
//! word it waits on before it sleeps, so a release or set with nobody asleep makes no
//! syscall, and a flag left by a killed waiter costs one wake-up, once. The untracked count
//! is its own futex word (the count is the state waited on, like a lock word); the tracked
//! ledger, [`Event`] and [`Barrier`] sleep on the family's waiter word,
//! [`ipc_shm::EventCount`]. Waiters do not spin: a semaphore cannot know whether its poster
//! runs, and spinning against one that shares our CPU only delays it ([`ipc_shm::spin`]).
//! Waiters that watch for dead peers (tracked acquirers, barrier parties) sleep in the
//! slices of [`ipc_shm::wait::Schedule`] and ask [`ipc_shm::liveness::status`] between them:
//! only `Dead` is recovered; `Unknown` (a garbage owner word) is waited for until the
//! deadline, never reclaimed.
//!
//! # Performance (this machine, `cargo bench -p ipc-sem --bench semaphore`)
//! Uncontended acquire + release, ours / glibc `sem_wait` + `sem_post` on a process-shared
//! `sem_t`, interleaved in one process: untracked ~0.95x, tracked ~0.98x, bounded ~0.97x
//! (about 12 ns each on a busy machine, 6 ns on a quiet one). Hand-offs between two
//! processes, ours / a raw futex ping-pong of the same run, on one core: semaphore post/wait
//! ~0.96-0.99x, [`Event`] set/wait ~0.92-0.95x; across cores all are within the hypervisor's
//! noise (30-130 µs round trips). A two-party [`Barrier`] round trip (two generations) costs
//! ~1.9-2.1x the ping-pong on one core, where both parties work after each wake; sleeping
//! untimed would make it ~1.7x, the rest of the price of the slices that notice a dead party.
//!
//! # Across `fork`
//! A permit ([`Permit`], [`BoundedPermit`]) inherited by a forked child gives back nothing
//! when the child drops it: only the process that took the permits releases them (the permit
//! records an [`ipc_shm::ProcessToken`], two loads to check), so the parent still holds them;
//! [`Permit::release`] in the child is [`Error::NotHeld`]. A [`Barrier`] party that cannot get
//! a liveness owner id does not arrive ([`BarrierError::Unregistered`]): the others could not
//! tell if it died.
//!
//! # Where unsafe lives
//! `sys.rs` (the libc calls of [`NamedSemaphore`]) and the `unsafe impl ShmSafe` of each
//! shared type (an item-level allow, with its argument above it). Everything else is
//! `#![deny(unsafe_code)]` and built on `ipc_shm`'s atomics and futex.
//!
//! # Platform
//! Linux (futex, `/dev/shm`), as the rest of the family.
#![deny(unsafe_code)]

#[cfg(feature = "tokio")]
mod async_sem;
mod barrier;
mod bounded;
mod count;
mod error;
mod event;
mod named;
mod select;
mod semaphore;
mod sys;

pub use barrier::{ARRIVAL_SLOTS, Barrier, BarrierWaitResult, MAX_PARTIES};
pub use bounded::{BoundedPermit, BoundedSemaphore};
pub use error::{BarrierError, Error, Result};
pub use event::Event;
pub use named::{DEFAULT_MODE, NamedSemaphore};
pub use semaphore::{Ledger, MAX_LEDGER, MAX_VALUE, Permit, Semaphore};
