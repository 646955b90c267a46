//! Bounded shared-memory queues (MPMC, SPSC, typed, joinable) that survive SIGKILL.
//!
//! A parent feeds file paths to forked workers that copy the files; results come back on a
//! second queue (Python's classic `multiprocessing.Queue` example, without the feeder thread
//! and with competing workers):
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use ipc_queue::{Queue, RecvError};
//!
//! let dir = std::env::temp_dir().join(format!("ipc-queue-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! for i in 0..8 {
//!     std::fs::write(dir.join(format!("in{i}")), vec![b'x'; 1000 * i])?;
//! }
//! let jobs = Queue::anonymous(16, 4096)?;    // paths to copy
//! let results = Queue::anonymous(16, 4096)?; // "<path> <bytes>" or "<path> error ..."
//!
//! let mut workers = Vec::new();
//! for _ in 0..2 {
//!     // SAFETY: the child only uses the inherited queues and the file system, then _exits.
//!     match unsafe { libc::fork() } {
//!         -1 => return Err(std::io::Error::last_os_error().into()),
//!         0 => {
//!             let mut path = Vec::new();
//!             while jobs.recv_into(&mut path).is_ok() {
//!                 let src = String::from_utf8_lossy(&path).into_owned();
//!                 let report = match std::fs::copy(&src, format!("{src}.copy")) {
//!                     Ok(n) => format!("{src} {n}"),
//!                     Err(e) => format!("{src} error {e}"),
//!                 };
//!                 let _ = results.send(report.as_bytes());
//!             }
//!             // SAFETY: leave the child without running the parent's destructors.
//!             unsafe { libc::_exit(0) }
//!         }
//!         pid => workers.push(pid),
//!     }
//! }
//!
//! for i in 0..8 {
//!     let path = dir.join(format!("in{i}")).to_string_lossy().into_owned();
//!     jobs.send(path.as_bytes()).map_err(|e| e.to_string())?;
//! }
//! jobs.close(); // workers drain the queue, then see Closed and leave
//! let mut copied = 0;
//! for _ in 0..8 {
//!     let report = String::from_utf8(results.recv()?)?;
//!     let (path, bytes) = report.rsplit_once(' ').unwrap_or_default();
//!     assert_eq!(std::fs::metadata(path)?.len().to_string(), bytes, "{report}");
//!     copied += 1;
//! }
//! assert_eq!(copied, 8);
//! for pid in workers {
//!     let mut status = 0;
//!     // SAFETY: `pid` is our child; `status` is a valid out-pointer.
//!     unsafe { libc::waitpid(pid, &mut status, 0) };
//!     assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
//! }
//! assert_eq!(results.try_recv(), Err(ipc_queue::TryRecvError::Empty));
//! # let _ = RecvError::Closed;
//! std::fs::remove_dir_all(&dir)?;
//! # Ok(()) }
//! ```
//!
//! # The queues
//! - [`Queue`]: bytes, many producers and many consumers (each message to exactly one
//!   receiver), in a named segment ([`Queue::create`], [`Queue::open`],
//!   [`Queue::open_or_create`]) or an anonymous memfd ([`Queue::anonymous`], inherited by
//!   children forked afterwards, or passed as an fd and adopted with [`Queue::from_shm`]).
//!   `send`/`try_send`/`send_timeout`, `recv`/`recv_into`/`try_recv`/`try_recv_into`/
//!   `recv_timeout`, `len`, `is_empty`, `is_full`, `capacity`, `close`,
//!   [`stats`](Queue::stats).
//! - Zero-copy: [`Queue::reserve`] lends a writable slot ([`SendSlot`]), `commit` publishes it,
//!   dropping it uncommitted gives it back; [`Queue::recv_ref`] lends a committed message
//!   ([`RecvRef`]), released on drop.
//! - [`SpscQueue`]: one producer ([`Sender`]) and one consumer ([`Receiver`]), enforced at
//!   attach; cached indices and no CAS: the fastest path. Same verbs.
//! - [`TypedQueue<T>`] for `bytemuck::Pod` values; [`JoinableQueue`] (`task_done`, `join`,
//!   `join_timeout`; too many `task_done` is an error, as in Python).
//! - Every blocking call has `try_` and `_timeout` forms. Hot-path failures are small `Copy`
//!   enums saying why ([`TrySendError::Full`], [`TrySendError::TooLong`] with both sizes);
//!   set-up failures are [`Error`], naming the operation, the queue and the cause. Every
//!   outcome enum converts into [`Error`], so `q.send(&buf)?` works in a function returning
//!   `ipc_queue::Error` or `Box<dyn Error>`.
//!
//! # Bounded means a full queue blocks: feed from one thread, collect from another
//! Python's `multiprocessing.Queue` is unbounded (a feeder thread buffers what you put), so a
//! program that puts every job first and collects results afterwards works there. These
//! queues are bounded shared memory: if the thread that fills the jobs queue is also the one
//! that must drain the results queue, and workers block on a full results queue, everyone
//! waits for everyone. Feed from a thread of its own (or interleave `try_send` and
//! `try_recv`), and collect on another:
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use ipc_queue::Queue;
//! let jobs = Queue::anonymous(16, 8)?; // far fewer slots than jobs
//! let results = Queue::anonymous(16, 8)?;
//! std::thread::scope(|s| {
//!     s.spawn(|| {
//!         // The feeder: blocks while `jobs` is full, which is fine, it does nothing else.
//!         for n in 0..1000u64 {
//!             jobs.send(&n.to_le_bytes()).unwrap();
//!         }
//!     });
//!     // A worker (a process in real use: here a thread, to keep the example short).
//!     s.spawn(|| {
//!         for _ in 0..1000 {
//!             let n = u64::from_le_bytes(jobs.recv().unwrap().try_into().unwrap());
//!             results.send(&(n * 2).to_le_bytes()).unwrap();
//!         }
//!     });
//!     // The collector runs while the feeder still feeds.
//!     let total: u64 = (0..1000)
//!         .map(|_| u64::from_le_bytes(results.recv().unwrap().try_into().unwrap()))
//!         .sum();
//!     assert_eq!(total, 999 * 1000);
//! });
//! # Ok(()) }
//! ```
//!
//! # Under SIGKILL
//! Every slot records, in the same CAS that claims it, the liveness owner id of the process
//! writing or reading it ([`ring`] has the layout).
//! - **A producer killed between reserve and commit** leaves its slot claimed by a dead owner.
//!   A consumer (or producer) that finds a slot still claimed at the end of a sleep slice
//!   (1 ms, doubling up to [`RECOVERY_CHECK`], 32 ms) asks whether the owner is alive (one
//!   syscall, only on this slow path) and, if it is dead, frees the slot: it is skipped, never
//!   delivered, and counted in [`Stats::abandoned`]. Nobody waits much longer than 32 ms on a
//!   dead producer (the bound we test is 500 ms); an owner whose status is unknown (not an id
//!   of our liveness registry) is never taken for dead.
//! - **A message killed mid-copy is never delivered torn**: commit is a Release store of the
//!   slot word after the payload; a slot not committed is never handed out.
//! - **A consumer killed while holding a lent message** ([`Queue::recv_ref`], or between claim
//!   and copy): MPMC delivery is *at most once*: that one message is lost (counted in
//!   [`Stats::lost`] when a producer reclaims the slot); nothing else is. The SPSC flavour is
//!   *at least once*: the consumer advances its index only after it is done, so the next
//!   consumer receives the message again.
//! - **Every producer dies while consumers wait**: a parked receiver looks at the end of
//!   every sleep slice (at most [`PEER_CHECK`], 32 ms) and, once it has everything the
//!   producers committed, gets [`RecvError::Disconnected`] instead of a hang; a sender parked
//!   on a full queue whose consumers all died gets [`SendError::Disconnected`] (its message
//!   is not sent). SPSC roles name their holders; an MPMC queue lists the owner ids of the
//!   processes that ever sent and ever received (each lists itself on its first send or
//!   receive, a cold path), and only when every listed one is `Dead` is the other side
//!   disconnected. A process that only dropped its handle is alive: its peers keep waiting,
//!   as for a Python `Queue`. With more than [`PEERS_LISTED`] live processes on a side, or an
//!   owner whose status is unknown, the queue cannot tell and never says `Disconnected`.
//!   `Disconnected` means "nobody who has used the other side is alive now" (exited or
//!   killed), not "no more will come": a producer that has not sent yet is unknown to the
//!   queue. To say "all work is sent", [`Queue::close`] the queue (receivers drain, then get
//!   `Closed`), as the example above does.
//! - **A hostile or buggy peer** that scribbles on the segment: every value read from the ring
//!   (indices, slot words, lengths, the config) is loaded once, checked, and the checked copy
//!   is used; a bad value is [`Corruption`] inside a typed `Corrupted` outcome, never UB, a
//!   panic, an out-of-bounds copy or an allocation beyond the configured maximum message.
//!
//! # Waiting
//! The queues wait with ipc-shm's kernel, as every primitive of the family does. A waiter
//! spins ([`ipc_shm::PeerSpin`]: one `PAUSE` per look, at most 40 µs, longer than one
//! cross-core futex wake-up on the reference VM, so a peer we just woke answers before we
//! sleep) only when the other side last ran on another CPU (each side publishes its CPU);
//! when it shares our CPU it yields a few times instead (spinning would burn the time slice
//! the peer needs). Then it sleeps on the side's waiter word ([`ipc_shm::EventCount`]), in
//! the slices of ipc-shm's liveness schedule ([`ipc_shm::wait::Schedule`]) so that a dead
//! peer is noticed. Notifiers wake only when the word says someone sleeps, and pay no locked
//! instruction for checking it (waiters issue `membarrier(GLOBAL_EXPEDITED)` on their way to
//! sleep, with an RMW fallback where membarrier is unavailable). `close` wakes every sleeper
//! in every process.
//!
//! # Across `fork`
//! A forked child inherits copies of its parent's handles and of any slot it had lent. A
//! named queue's name is removed when its creator drops it, and only in the creating process:
//! a child that unwinds (a panic, a `?`) without `_exit` drops its copy and leaves the name. A lent
//! slot ([`SendSlot`], [`RecvRef`], [`SpscRef`]) dropped in a process other than the one that
//! took it is a no-op: the child does not cancel the parent's reservation nor free the slot
//! the parent still reads (each release compares the slot's recorded owner id with the
//! current process's). SPSC roles are likewise given back only by the process that took them.
//! A process that cannot get an owner id (ipc-shm's liveness registry unavailable) claims no
//! slot at all: its sends and receives fail with `Unregistered`, because a slot claimed
//! without an owner could never be recovered if that process died.
//!
//! # Features
//! | feature | adds |
//! |---|---|
//! | `serde` | `send_value` / `try_send_value` / `send_value_timeout` and `recv_value` / `try_recv_value` / `recv_value_timeout` on [`Queue`] (and the SPSC [`Sender`] / [`Receiver`]): any `Serialize` value, postcard-encoded straight into a slot, so a queue of objects is one call, as in Python |
//! | `pickle` | `send_pickle` / `try_send_pickle` / `send_pickle_timeout` and `recv_pickle` / `try_recv_pickle` / `recv_pickle_timeout` on [`Queue`]: Python's pickle, so values cross to and from Python code that reads the bytes (a peer's pickle is checked by `ipc-pickle`'s memory budget before it is decoded) |
//! | `crashpoints` | named crash points for fault tests |
//!
//! # Where unsafe lives
//! `region.rs` (the `&Ctrl`/`&SlotHdr` views of the mapping, payload copies, prefetch hints),
//! the lending guards' `Deref` in `queue.rs` and `spsc.rs`, and in `spsc.rs` taking the
//! handles' copy of the region's fast-path view (`Region::hot`). Everything else is
//! `#![deny(unsafe_code)]`.
//!
//! # Platform
//! Linux (futex, memfd, OFD locks, membarrier), like ipc-shm.
#![deny(unsafe_code)]
// Under loom only the ring, the algorithms over a region and the model are built.
#![cfg_attr(ipc_loom, allow(dead_code))]

#[cfg(feature = "tokio")]
mod async_queue;
mod error;
mod raw;
mod region;
pub mod ring;

#[cfg(not(ipc_loom))]
mod joinable;
#[cfg(not(ipc_loom))]
mod queue;
#[cfg(not(ipc_loom))]
mod select;
#[cfg(not(ipc_loom))]
mod spsc;
#[cfg(not(ipc_loom))]
mod typed;
#[cfg(any(feature = "serde", feature = "pickle"))]
mod value;

#[cfg(ipc_loom)]
pub mod model;

/// Atomics from core, or loom's under `--cfg ipc_loom`.
pub(crate) mod sync {
    pub(crate) use ipc_shm::sync::atomic::{AtomicU32, AtomicU64, Ordering};
}

pub use error::{
    Corruption, Error, JoinTimeoutError, RecvError, RecvTimeoutError, Result, SendError,
    SendTimeoutError, TryRecvError, TrySendError,
};
#[cfg(not(ipc_loom))]
pub use joinable::JoinableQueue;
#[cfg(not(ipc_loom))]
pub use queue::{Queue, QueueOptions, RECOVERY_CHECK, RecvRef, SendSlot, Stats};
pub use ring::PEERS_LISTED;
#[cfg(not(ipc_loom))]
pub use select::Writable;
#[cfg(not(ipc_loom))]
pub use spsc::{PEER_CHECK, Receiver, Sender, SpscQueue, SpscRef, SpscSlot};
#[cfg(not(ipc_loom))]
pub use typed::TypedQueue;
