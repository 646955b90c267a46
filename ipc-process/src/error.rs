//! Errors in two tiers: [`Error`] for starting and talking to processes (set-up and OS
//! failures), [`TaskError`] for how one task ended when it did not return `Ok`.

use std::fmt;
use std::io;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How a process ended: its exit code, or the signal that killed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExitStatus {
    /// It called `exit(code)` (or returned from `main`).
    Code(i32),
    /// A signal killed it (SIGKILL from the OOM killer, SIGSEGV, SIGABRT from a panic under
    /// `panic = "abort"`...).
    Signal(i32),
}

impl ExitStatus {
    /// Exit code 0.
    pub fn success(self) -> bool {
        self == ExitStatus::Code(0)
    }

    /// The exit code, if it exited.
    pub fn code(self) -> Option<i32> {
        match self {
            ExitStatus::Code(c) => Some(c),
            ExitStatus::Signal(_) => None,
        }
    }

    /// The signal, if one killed it.
    pub fn signal(self) -> Option<i32> {
        match self {
            ExitStatus::Signal(s) => Some(s),
            ExitStatus::Code(_) => None,
        }
    }

    pub(crate) fn from_waitid(status: &rustix::process::WaitIdStatus) -> ExitStatus {
        match status.terminating_signal() {
            Some(sig) => ExitStatus::Signal(sig),
            None => ExitStatus::Code(status.exit_status().unwrap_or(-1)),
        }
    }
}

fn signal_name(sig: i32) -> Option<&'static str> {
    Some(match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGSYS => "SIGSYS",
        _ => return None,
    })
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ExitStatus::Code(c) => write!(f, "exit code {c}"),
            ExitStatus::Signal(s) => match signal_name(s) {
                Some(name) => write!(f, "killed by {name}"),
                None => write!(f, "killed by signal {s}"),
            },
        }
    }
}

/// A panic in a child: its message, where it happened and, when `RUST_BACKTRACE` (or
/// `RUST_LIB_BACKTRACE`) was set in the child, its backtrace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Panic {
    /// The panic message (`"<non-string payload>"` if it was not a string).
    pub message: String,
    /// `file:line:column` of the panic.
    pub location: Option<String>,
    /// The child's backtrace, when one was captured.
    pub backtrace: Option<String>,
}

impl fmt::Display for Panic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(at) => write!(f, "panicked at {at}: {}", self.message),
            None => write!(f, "panicked: {}", self.message),
        }
    }
}

/// Errors of ipc-process when starting, talking to or supervising processes. Messages name
/// the operation and the object (`start process (spawn): posix_spawn: Resource temporarily
/// unavailable`); OS and connection errors are kept as the source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An OS call failed.
    #[error("{op} {object}: {source}")]
    Io {
        /// The operation.
        op: &'static str,
        /// What it was done to.
        object: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The control connection to a child failed.
    #[error("{op} {object}: {source}")]
    Pipe {
        /// The operation.
        op: &'static str,
        /// The process or pool.
        object: String,
        /// The connection's error.
        #[source]
        source: ipc_pipe::Error,
    },
    /// Arguments or a result could not be encoded or decoded (serde/postcard).
    #[error("{op} {object}: {reason}")]
    Codec {
        /// The operation (`encode arguments of`, `decode result of`...).
        op: &'static str,
        /// The task or process.
        object: String,
        /// What the codec said.
        reason: String,
    },
    /// The function to run in a child is not in the main executable (it lives in a shared
    /// library, whose load address differs between processes), so a re-executed child could
    /// not find it.
    #[error(
        "start {object}: function at {address:#x} is in {found:?}, not the executable {expected:?}; spawn and forkserver need functions linked into the executable"
    )]
    NotInExecutable {
        /// The process or pool.
        object: String,
        /// The function's address here.
        address: usize,
        /// The object holding the executable's own code.
        expected: String,
        /// The object holding the function.
        found: String,
    },
    /// A re-executed child runs a different file than its parent (the executable was
    /// replaced in between), so function addresses cannot be trusted: it refused to run.
    #[error(
        "start {object}: the re-executed binary is not the parent's (device:inode {expected} here, {found} in the child)"
    )]
    BinaryMismatch {
        /// The process or pool.
        object: String,
        /// `dev:ino` of the parent's executable.
        expected: String,
        /// `dev:ino` the child found.
        found: String,
    },
    /// A spawned child ended before it took its task: its `main` never called
    /// [`init`](crate::init) (or, in a test binary, [`auto_init!`](crate::auto_init) is
    /// missing).
    #[error(
        "start {object}: the child ended ({exit}) before it ran its task; call ipc_process::init() at the top of main, or ipc_process::auto_init!() in a test binary"
    )]
    NotDispatched {
        /// The process or pool.
        object: String,
        /// How it ended.
        exit: ExitStatus,
    },
    /// A spawned child did not report within the startup timeout (its `main` runs without
    /// calling [`init`](crate::init) first, or the machine is overloaded); it was killed.
    #[error(
        "start {object}: the child did not report within {after:?} (does main call ipc_process::init() first?); killed"
    )]
    StartupTimeout {
        /// The process or pool.
        object: String,
        /// The startup timeout.
        after: Duration,
    },
    /// This process was started by ipc-process as a child but its `main` did not call
    /// [`init`](crate::init) first; it refuses to start processes of its own (which would
    /// repeat the mistake, a fork bomb).
    #[error(
        "{op}: this process is an ipc-process child whose main never called ipc_process::init(); refusing to start processes"
    )]
    InitNotCalled {
        /// The operation refused.
        op: &'static str,
    },
    /// `fork` was asked for while the process has more than one thread.
    #[error(
        "{op}: the process has {threads} threads; fork is only safe single-threaded (use spawn or forkserver)"
    )]
    MultiThreaded {
        /// The operation.
        op: &'static str,
        /// Threads counted in /proc/self/task.
        threads: usize,
    },
    /// The fork server died (or broke the protocol); the next start begins a new one.
    #[error("{op} {object}: the fork server died")]
    ForkServerDied {
        /// The operation.
        op: &'static str,
        /// The process or pool.
        object: String,
    },
    /// A child sent something the protocol does not allow (a bug or a hostile peer).
    #[error("{op} {object}: protocol violation: {what}")]
    Protocol {
        /// The operation.
        op: &'static str,
        /// The process or pool.
        object: String,
        /// What was wrong.
        what: String,
    },
    /// The pool was closed: it takes no more tasks.
    #[error("submit to {object}: the pool is closed")]
    PoolClosed {
        /// The pool.
        object: String,
    },
    /// `Pool::join` before `Pool::close`.
    #[error("join {object}: close the pool first")]
    PoolNotClosed {
        /// The pool.
        object: String,
    },
    /// A worker's initializer failed; the pool does not loop restarting workers.
    #[error("start {object}: the worker initializer failed: {message}")]
    InitializerFailed {
        /// The pool.
        object: String,
        /// The initializer's error or panic.
        message: String,
    },
    /// The pool's workers cannot start (they die before getting ready, again and again):
    /// why the last one failed. The pool does not loop restarting them.
    #[error("run {object}: workers cannot start: {message}")]
    PoolBroken {
        /// The pool.
        object: String,
        /// Why the last worker failed.
        message: String,
    },
    /// The outcome of a process was already taken by an earlier `join`.
    #[error("join {object}: already joined")]
    AlreadyJoined {
        /// The process.
        object: String,
    },
    /// A value cannot be handed to a child.
    #[error("pass {what} to a child: {why}")]
    CannotTransfer {
        /// The type or object.
        what: String,
        /// Why not.
        why: String,
    },
    /// An invalid setting (zero workers, zero chunk size...).
    #[error("{op}: {what}")]
    InvalidArgument {
        /// The operation.
        op: &'static str,
        /// What was wrong.
        what: String,
    },
}

impl Error {
    pub(crate) fn io(op: &'static str, object: impl Into<String>, source: io::Error) -> Error {
        Error::Io { op, object: object.into(), source }
    }

    pub(crate) fn pipe(
        op: &'static str,
        object: impl Into<String>,
        source: ipc_pipe::Error,
    ) -> Error {
        Error::Pipe { op, object: object.into(), source }
    }

    pub(crate) fn codec(
        op: &'static str,
        object: impl Into<String>,
        reason: impl fmt::Display,
    ) -> Error {
        Error::Codec { op, object: object.into(), reason: reason.to_string() }
    }

    pub(crate) fn protocol(
        op: &'static str,
        object: impl Into<String>,
        what: impl Into<String>,
    ) -> Error {
        Error::Protocol { op, object: object.into(), what: what.into() }
    }
}

/// How a task (a [`Process`](crate::Process)'s function, or one task of a
/// [`Pool`](crate::Pool)) ended when it did not return its value. `E` is the task's own
/// error type (the `E` of the `Result<T, E>` it returns; [`Never`](crate::Never) for tasks
/// that cannot fail).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError<E> {
    /// The task returned `Err(e)`.
    #[error("task failed: {0}")]
    Failed(E),
    /// The task panicked (the child caught it, reported it and carried on or exited).
    #[error("task {0}")]
    Panicked(Panic),
    /// The process running the task ended before reporting its result: SIGKILL (the OOM
    /// killer, a `kill -9`), a segfault, an abort, or an `exit()` inside the task.
    #[error("the worker running the task died: {exit}")]
    WorkerDied {
        /// How the worker ended.
        exit: ExitStatus,
    },
    /// The task ran longer than the pool's per-task timeout; its worker was killed (and
    /// replaced).
    #[error("the task ran past its {after:?} timeout; its worker was killed")]
    Timeout {
        /// The timeout.
        after: Duration,
    },
    /// The task was cancelled ([`TaskHandle::cancel`](crate::TaskHandle::cancel)) before it
    /// finished.
    #[error("the task was cancelled")]
    Cancelled,
    /// The pool was terminated (or dropped) before the task finished.
    #[error("the pool was terminated before the task finished")]
    Terminated,
    /// The pool's worker initializer failed, so no worker can run the task.
    #[error("the worker initializer failed: {message}")]
    InitializerFailed {
        /// The initializer's error or panic.
        message: String,
    },
    /// The task's outcome could not be obtained (the fork server died, a result did not
    /// decode, the child never started...).
    #[error("the task's outcome was lost: {0}")]
    Lost(#[source] Error),
}

impl<E> TaskError<E> {
    /// Whether the task's process died (not counting timeouts or cancellations).
    pub fn is_worker_died(&self) -> bool {
        matches!(self, TaskError::WorkerDied { .. })
    }

    /// Change the task's error type (for the variants that carry it).
    pub fn map_err<F>(self, f: impl FnOnce(E) -> F) -> TaskError<F> {
        match self {
            TaskError::Failed(e) => TaskError::Failed(f(e)),
            TaskError::Panicked(p) => TaskError::Panicked(p),
            TaskError::WorkerDied { exit } => TaskError::WorkerDied { exit },
            TaskError::Timeout { after } => TaskError::Timeout { after },
            TaskError::Cancelled => TaskError::Cancelled,
            TaskError::Terminated => TaskError::Terminated,
            TaskError::InitializerFailed { message } => TaskError::InitializerFailed { message },
            TaskError::Lost(e) => TaskError::Lost(e),
        }
    }
}
