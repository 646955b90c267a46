//! Shared memory for the ipc crate family: segments, a versioned object header, typed
//! shared objects, process-shared futexes and kernel-backed liveness.
//!
//! Two processes share a counter: the parent creates it, a forked child opens it by name
//! and adds one.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use ipc_shm::Shared;
//! use std::sync::atomic::{AtomicU64, Ordering};
//!
//! let name = ipc_shm::random_name("example")?;
//! let counter = Shared::create(&name, AtomicU64::new(41))?;
//!
//! // SAFETY: the child only opens the segment, adds one and leaves with _exit.
//! match unsafe { libc::fork() } {
//!     -1 => return Err(std::io::Error::last_os_error().into()),
//!     0 => {
//!         let code = match Shared::<AtomicU64>::open(&name) {
//!             Ok(c) => { c.fetch_add(1, Ordering::SeqCst); 0 }
//!             Err(_) => 1,
//!         };
//!         // SAFETY: leave the forked child without running the parent's destructors.
//!         unsafe { libc::_exit(code) }
//!     }
//!     child => {
//!         let mut status = 0;
//!         // SAFETY: `child` is our child; `status` is a valid out-pointer.
//!         unsafe { libc::waitpid(child, &mut status, 0) };
//!         assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
//!     }
//! }
//! assert_eq!(counter.load(Ordering::SeqCst), 42);
//! # Ok(()) }
//! ```
//!
//! # What is here
//! - [`Shm`] / [`ShmOptions`]: named POSIX segments (`/dev/shm`, created with
//!   `O_CREAT|O_EXCL|O_NOFOLLOW`, mode set exactly, space reserved, owner and mode checked
//!   at open) and anonymous memfd segments sealed against shrinking. [`sweep_stale`] removes
//!   segments nobody maps.
//! - [`header`]: the 64-byte header of every object we lay out in shared memory, with a pure
//!   decoder; [`Object`] runs the init protocol (bounded wait for a live creator, safe
//!   re-initialisation after a dead one) and [`Shared<T>`] gives a typed `&T` over it for
//!   [`ShmSafe`] types.
//! - [`futex`]: process-shared wait/wake with absolute monotonic deadlines; [`EventCount`],
//!   the waiter-flag helper that keeps wakers off the syscall when nobody sleeps;
//!   [`SpinWait`], the only (bounded) spinning allowed.
//! - [`liveness`]: owner ids for lock words and ledgers, and their [`Status`](liveness::Status) (alive, dead or unknown) answered by a lock
//!   the kernel releases when a process dies, immune to pid reuse and correct across fork.
//!
//! # Interop with Python's `SharedMemory`
//! A named segment is a plain POSIX shm object: Python opens it with
//! `multiprocessing.shared_memory.SharedMemory(name="jobs")` (the same name, without a
//! leading `/`). One trap: Python 3.11 and 3.12 register every `SharedMemory` they open, even
//! without `create=True`, with their *resource tracker*, which **unlinks the segment when
//! that Python process exits** and warns of a "leaked shared_memory object". A Python reader
//! of a Rust-owned segment must opt out:
//!
//! ```python
//! import sys
//! from multiprocessing import shared_memory, resource_tracker
//! if sys.version_info >= (3, 13):
//!     shm = shared_memory.SharedMemory(name="jobs", track=False)
//! else:
//!     shm = shared_memory.SharedMemory(name="jobs")
//!     resource_tracker.unregister(shm._name, "shared_memory")
//! data = bytes(shm.buf[:5])
//! shm.close()  # never shm.unlink(): the Rust creator removes the name
//! ```
//!
//! Python's segments are created with mode 0600 by the same user, which [`Shm::open`]
//! accepts; the header-bearing objects ([`Shared`], the queues, the locks) are for Rust
//! peers, raw [`Shm`] bytes for Python ones.
//!
//! # Threat model: what a peer can and cannot do
//! A *peer* is any other process that maps the same segment, and any second mapping of it in
//! this process (`Shm::open` of the same name, `Shm::from_fd` of a duplicated fd). A peer
//! that ignores the protocol, by bug or malice, **can**:
//! - corrupt the data it can already write: the values in a `Shared<T>`, the payload of a
//!   queue slot, the data behind a lock;
//! - make operations fail with typed errors (`Corrupted`, `Incompatible`, `NotRecoverable`,
//!   timeouts), or make them wait until their deadline.
//!
//! It can **never** make our process read or write out of bounds, allocate without bound,
//! hang past a deadline, panic, or reach undefined behaviour: every length, offset, index and
//! state read from shared memory is loaded once into private memory, range-checked and used
//! from the checked copy; plain data in shared memory is [`bytemuck::Pod`] (every bit pattern
//! valid), and [`ShmSafe`] types are atomics.
//!
//! Inside this process, safe code cannot write or read plain bytes that a reference of this
//! family covers (a lock guard's `&mut T`, a lent queue slot, an atomic view): the objects own
//! their segment and lend only `&Shm`, on which the raw copies
//! ([`Shm::read_at_shared`], [`Shm::write_at_shared`]) and [`Shm::atomic_u32`] are `unsafe`
//! with a stated contract; the safe [`Shm::read_at`] / [`Shm::write_at`] need an exclusive
//! `&mut Shm`, which no object ever hands out.
//!
//! # Where unsafe lives
//! `sys.rs` (OFD locks, `pthread_atfork`, raw fds), `segment.rs` (copies in and out of the
//! mapping, atomic views), `object.rs` (writing the header and zeroing the body of an object
//! nobody uses yet), `shared.rs` (the `&T` view, `ShmSafe` impls), `liveness.rs` (the raw
//! lease fd, the registry's atomic words), `event_count/ready_async.rs` (registering the
//! doorbell with tokio's reactor, feature `tokio`). Everything else is
//! `#![deny(unsafe_code)]`.
//!
//! # Platform
//! Linux only (futex, memfd, OFD locks, /dev/shm); other targets fail to compile with a
//! clear message.
#![deny(unsafe_code)]

mod platform_check;

pub mod crash;
mod deadline;
mod error;
pub mod event_count;
pub mod futex;
pub mod header;
pub mod liveness;
mod name;
mod object;
pub mod ofd;
mod segment;
mod shared;
pub mod spin;
pub mod sync;
mod sys;
pub mod wait;

pub use bytemuck;

pub use deadline::Deadline;
pub use error::{Error, Result};
pub use event_count::{EventCount, SelectableEventCount, Waitable};
pub use header::ObjectKind;
pub use liveness::{OwnerId, ProcessToken};
pub use name::{MAX_NAME_LEN, random_name, validate_name};
pub use object::{Init, Object, kind_name, named_tag};
pub use segment::{Shm, ShmOptions, sweep_stale};
pub use shared::{Shared, ShmSafe, object_kind};
pub use spin::{PeerSpin, SpinWait, current_cpu};
