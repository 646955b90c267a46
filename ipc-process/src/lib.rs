//! Start, supervise and pool worker processes: Python's `multiprocessing.Process` and
//! `Pool`, with typed results and errors, and without the hangs.
//!
//! Square numbers on two worker processes:
//!
//! ```rust,standalone_crate
//! use ipc_process::Pool;
//!
//! fn square(x: u64) -> u64 {
//!     x * x
//! }
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     ipc_process::init(); // first thing in main: a worker process starts here too
//!
//!     let pool = Pool::new(2)?;
//!     let squares = pool.map(square, 0..10)?;
//!     assert_eq!(squares, [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]);
//!     Ok(())
//! }
//! ```
//!
//! # What is here
//! - **Start methods** ([`StartMethod`]), as Python names them. [`Spawn`](StartMethod::Spawn)
//!   re-executes this program (`/proc/self/exe`) and runs the named function there:
//!   safe whatever threads the parent has; `main` must call [`init`] first (test binaries:
//!   [`auto_init!`]). [`ForkServer`](StartMethod::ForkServer) asks a small single-threaded
//!   server (a spawned child, started on first use or by [`start_fork_server`]) to fork:
//!   fork's speed without forking a threaded parent. [`Fork`](StartMethod::Fork) forks
//!   this process: [`Process::fork`] runs any closure, but only while the process is
//!   single-threaded (checked); [`ProcessBuilder::fork_unchecked`] is `unsafe`.
//! - [`Process`]: `spawn`/`start`, [`pid`](Process::pid), [`join`](Process::join),
//!   [`join_timeout`](Process::join_timeout), [`try_join`](Process::try_join),
//!   [`is_alive`](Process::is_alive), [`exit_status`](Process::exit_status),
//!   [`terminate`](Process::terminate) (SIGTERM), [`kill`](Process::kill), and a
//!   [`sentinel`](Process::sentinel) (a pidfd, also for fork-server children, which are not
//!   our children). Children die with their parent unless detached (`PR_SET_PDEATHSIG`
//!   plus a check of the parent pid for the race); a dropped handle kills and reaps its
//!   child (or, detached, reaps it in the background): never a zombie.
//! - **Outcomes come back typed.** A task is a `fn(A) -> O` where `A` is serde-encoded
//!   (postcard) and `O` is a plain value or a `Result<T, E>` ([`Outcome`]). Its `Err`, a
//!   panic (message, location, and a backtrace when `RUST_BACKTRACE` is set in the child),
//!   an exit code or a death signal arrive as a [`TaskError`].
//! - **Handles cross over** ([`Handle`], [`Transfer`]): queues, pipes, segments, locks and
//!   semaphores inside a task's arguments reach the child, anonymous ones by fd passing on
//!   the control connection, named ones by name; [`Handle::share`] keeps the parent's own.
//! - [`Pool`] ([`PoolBuilder`]: start method, workers, `max_tasks_per_child`, initializer,
//!   per-task timeout, [`Retry`] policy): [`apply`](Pool::apply), [`submit`](Pool::submit) →
//!   [`TaskHandle`] (`wait`, `wait_timeout`, `cancel`), [`map`](Pool::map) (ordered, chunked
//!   as Python chunks), [`imap`](Pool::imap), [`imap_unordered`](Pool::imap_unordered),
//!   [`close`](Pool::close), [`join`](Pool::join), [`terminate`](Pool::terminate). A worker
//!   killed at any instruction fails only the task it held (or retries it) and is replaced;
//!   a task past its timeout gets only its worker killed; submission and collection never
//!   wait on each other.
//!
//! # How a function reaches a child, and why it is sound
//! Tasks are plain `fn` items (or closures that capture nothing), not boxed closures: a
//! re-executed child has none of the parent's memory, so what crosses is the *name* of the
//! code: its offset from a fixed function of this crate, taken in the parent (which checks
//! with `dladdr` that the function lives in the executable itself, not in a shared library
//! loaded at another distance) and added back in the child. The child first checks that it
//! runs the same file as its parent (device and inode of `/proc/self/exe`, sent in its
//! environment), so the offset names the same function of the same type; a monomorphised
//! trampoline per argument and outcome type does the decoding, the call and the encoding.
//! This is procspawn's approach; unlike procspawn there is no registry to forget and no
//! `unsafe` promise about shared libraries: it is checked.
//!
//! # Choices, and why
//! - **Handles travel inside the arguments** ([`Handle<T>`] in any serde argument), not in a
//!   separate list beside them: the child's function receives its queue where its signature
//!   says, typed, and one encoder collects the fds of all the handles in one message.
//! - **The fork server is a spawned child** (a fresh exec of this program that runs only the
//!   server loop), started on first use rather than necessarily at `init`: being a fresh
//!   exec, it is single-threaded and clean whenever it starts. The exit status of a child it
//!   forked reaches us through a per-child status socket it writes after reaping.
//! - **`PR_SET_PDEATHSIG` fires when the starting *thread* ends**, so starts from any thread
//!   but the main one go through a long-lived launcher thread of this crate (and pool workers
//!   are started by the pool's supervisor thread, which lives as long as the pool).
//! - **Which task a dead worker held** comes from its progress word in shared memory, not
//!   from a message per task: so chunks stay cheap and exactly one task is blamed. Tasks that
//!   had finished but whose results had not left the worker run again (their results never
//!   reached anyone); a task is never reported twice.
//! - **One supervisor thread owns the workers**, and a task submitted while a worker idles
//!   is written straight to that worker by the submitting thread (the supervisor adopts it
//!   when the result arrives): one wake-up less per `apply`, no sharing of a worker between
//!   the two otherwise (the idle list, under the pool's lock, says who may write to it).
//! - **Dropping a pool terminates it** (as leaving Python's `with Pool()` block does): no
//!   drop can hang on a stuck task. `close` + `join` waits.
//!
//! # The protocol
//! Each child gets a `socketpair` control connection (ipc-pipe): the start message (with
//! fds), its arguments, and back a hello, the outcome, or (pool workers) batches of results.
//! A pool worker also gets a 64-byte anonymous segment (ipc-shm) where it records which item
//! of its chunk runs and since when: this survives its death, so the supervisor blames
//! exactly one item and times tasks out without a message per item.
//!
//! # Where unsafe lives
//! `sys.rs` (posix_spawn, fork, `_exit`, dladdr, fd 3, a function pointer from an address,
//! removing an environment variable), `call.rs` and `child.rs` (rebuilding the trampolines
//! the parent named), `launch.rs` (the forks). Everything else is `#![deny(unsafe_code)]`.
//!
//! # Platform
//! Linux only (pidfds, `PR_SET_PDEATHSIG`, `/proc/self/exe`); other targets fail to compile
//! with a clear message.
#![deny(unsafe_code)]

mod platform_check;

mod call;
mod child;
mod error;
mod forkserver;
mod launch;
mod outcome;
mod pool;
mod process;
mod progress;
mod select;
mod sys;
mod transfer;
mod wire;

pub use child::{EXIT_ORPHAN, EXIT_SETUP, init};
pub use error::{Error, ExitStatus, Panic, Result, TaskError};
pub use launch::{StartMethod, fork_server_pid, start_fork_server};
pub use outcome::{Never, Outcome};
pub use pool::{
    Imap, ImapUnordered, Pool, PoolBuilder, PoolStats, Retry, TaskHandle, TaskResult,
    default_chunksize,
};
pub use process::{DEFAULT_STARTUP_TIMEOUT, Process, ProcessBuilder};
pub use transfer::{Handle, Passed, Transfer};
