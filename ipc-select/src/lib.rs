//! Wait on many things at once: shared-memory queues, semaphores and events, pipe
//! connections and listeners, child processes, and a timeout, in one sleep, like Python's
//! `multiprocessing.connection.wait` and `select`, but for shared memory too.
//!
//! A parent waits on a queue, an event and a child process at once; a forked child sends a
//! message, sets the event and exits, and the parent learns of each:
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use ipc_process::Process;
//! use ipc_queue::Queue;
//! use ipc_select::Selector;
//! use ipc_sem::Event;
//!
//! let jobs = Queue::anonymous(8, 64)?;
//! let done = ipc_shm::Shared::anonymous(Event::new())?;
//! let mut child = Process::fork(|| {
//!     jobs.send(b"job 1").expect("send");
//!     done.set();
//! })?;
//!
//! let mut sel = Selector::new()?;
//! let mut seen = [false; 3];
//! while seen != [true; 3] {
//!     let ready = sel.wait_timeout(&[&jobs, &*done, &child], Duration::from_secs(10))?;
//!     assert!(!ready.is_empty(), "nothing within 10 s");
//!     for &i in ready {
//!         match i {
//!             0 => assert_eq!(jobs.try_recv()?, b"job 1"), // the message is there
//!             1 => done.clear(), // level-triggered: a set event stays ready until cleared
//!             _ => {}            // the child ended (its pidfd stays readable)
//!         }
//!         seen[i] = true;
//!     }
//! }
//! child.join()?;
//! # Ok(()) }
//! ```
//!
//! # Sources
//! Anything that implements [`ipc_shm::Waitable`]: an MPMC `ipc_queue::Queue` (readable;
//! `queue.writable()` for room), SPSC `ipc_queue::Receiver` / `ipc_queue::Sender`, an
//! `ipc_sem::Semaphore` (a permit is free), an `ipc_sem::Event` (set), an ipc-pipe
//! `Connection`, `Receiver` or `Listener` (feature `select` of ipc-pipe: readable, or a client
//! waiting), an `ipc_process::Process` (the child ended). Closed queues, queues whose every
//! peer on the other side died, and corrupted objects count as ready, so the caller's `try_`
//! call tells what happened.
//!
//! Readiness is **level-triggered and honest**: [`Selector::wait`] returns what is ready at
//! that moment; another process may take it first (the `try_` call then finds nothing, and
//! the caller waits again).
//!
//! Not sources: a barrier (waiting on one is an arrival, which no readiness check can take
//! back), a condition variable (its wait must release and re-take a mutex: not a readiness),
//! a `BoundedSemaphore` (no room in its layout for doorbells; a `Semaphore` with a ledger of
//! one does its job).
//!
//! # How it wakes
//! One `poll` over the sources' fds and the selector's **doorbell**: an abstract Unix
//! datagram socket (`\0ipc-bell.<id>`), whose 32-bit id the selector writes into a free
//! doorbell slot of each shared-memory source's waiter word
//! ([`ipc_shm::SelectableEventCount`], three slots) and counts itself as a sleeper there for
//! the length of one wait. A notifier that finds sleepers already takes the wake path (a
//! `FUTEX_WAKE`); that path now also sends an empty datagram to every registered id. A
//! notifier that finds no sleeper pays nothing new: the plain path still reads one word. The
//! registration is checked the same way as a blocking waiter's announcement: register, issue
//! the barrier (membarrier), check the condition (a semaphore or event also arms its waiter
//! flag), sleep; a change after the check rings the doorbell, one before it is seen by the
//! check. See [`ipc_shm::event_count::bell`] for the socket's details.
//!
//! - **A dead selector** (SIGKILL while asleep) leaves its id in the slots and its count in
//!   `sleepers`; its socket is gone with it, so the next notifier's `sendto` fails with
//!   `ECONNREFUSED`, and that notifier clears the slot and takes the count back (the slot's
//!   CAS decides between it and a deregistration: exactly once). Cost to the others: one
//!   failed `sendto`, once.
//! - **No free slot** (three selectors already wait on that primitive): the selector polls
//!   that wait in slices of [`FALLBACK_SLICE`](ipc_shm::event_count::FALLBACK_SLICE) (10 ms:
//!   the bound the family already accepts for a waiter that cannot issue a barrier; 100
//!   wake-ups a second only while it waits, never a lost wake-up).
//! - **Dead peers**: a source whose blocking call finds dead peers by looking (a queue's
//!   producers, a tracked semaphore's holders) makes the selector sleep in the liveness slices
//!   of [`ipc_shm::wait::Schedule`] (1 ms doubling to 32 ms) and look after each, as the
//!   blocking call does: a queue whose producer died mid-send is recovered and reported
//!   within the same bound.
//! - **Containers**: abstract sockets are per network namespace. A notifier in another one
//!   (sharing `/dev/shm`, not the network) cannot reach the doorbell and clears it as if its
//!   selector were dead; the selector notices at the end of that wait and from then on sleeps
//!   in 10 ms slices. Until then a sleep is capped at
//!   [`UNREACHABLE_CAP`](ipc_shm::event_count::bell::UNREACHABLE_CAP) (1 s), so that one
//!   wake-up is late, never lost.
//!
//! **Why not `futex_waitv`** (Linux 5.16+): it sleeps on up to 128 futex words in one call,
//! but on no fd, so a pipe or a child process next to a queue would need a helper thread, and
//! tokio could not await it without one. An eventfd per waiter cannot be written by a
//! notifier that does not hold it (`pidfd_getfd` needs ptrace rights); a named FIFO or socket
//! file needs a shared directory and leaves a file behind a SIGKILL. The abstract socket is
//! reachable by id alone, vanishes with its owner, and is one more fd in the same `poll`.
//!
//! # Async (tokio)
//! The same doorbell in tokio's reactor: `Queue::recv_async` / `send_async` and the SPSC
//! equivalents (ipc-queue feature `tokio`), `Semaphore::acquire_async` and
//! `Event::wait_async` (ipc-sem feature `tokio`), and for any source
//! `ipc_shm::event_count::ready` (ipc-shm feature `tokio`; an fd source such as a child's
//! pidfd is awaited through a duplicate of its fd). No helper thread, no polling loop;
//! cancel-safe (the message or permit is taken synchronously after the await, and a dropped
//! future withdraws its doorbell). `examples/tokio_serve.rs`: one task serving a queue, a
//! pipe (ipc-pipe's `AsyncConnection`) and a child's exit in one `select!`.
//!
//! # Cost
//! To a user of one primitive who never selects: nothing (the doorbell ring sits on the wake
//! path only, after the `FUTEX_WAKE` it already pays; ipc-bench's `select` group shows the
//! plain rows). To a selecting waiter: one register/deregister CAS pair per source and one
//! membarrier per wait; to its notifier, one `sendto` per wake-up.
#![deny(unsafe_code)]

mod error;
mod selector;

pub use error::{Error, Result};
pub use selector::{Selector, Stats, Waker, wait_any};
