//! Errors in two tiers: [`Error`] for set-up and OS failures (naming the operation and the
//! queue), and small outcome enums for the hot path that hand a refused message back.

use std::fmt;

pub use crate::ring::Corruption;

/// Set-up and OS failures of ipc-queue. Messages name the operation and the queue
/// (`open queue "jobs": ...`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The segment layer failed (name, permissions, header mismatch, size, ...).
    #[error("{op} queue {name:?}")]
    Shm {
        /// The operation.
        op: &'static str,
        /// The queue.
        name: String,
        /// What ipc-shm reported.
        #[source]
        source: ipc_shm::Error,
    },
    /// A capacity or message size out of range.
    #[error("{op} queue {name:?}: invalid configuration")]
    InvalidConfig {
        /// The operation.
        op: &'static str,
        /// The queue.
        name: String,
        /// Which value and why.
        #[source]
        source: Corruption,
    },
    /// The queue's shared state holds values no honest peer writes.
    #[error("{op} queue {name:?}: corrupted")]
    Corrupted {
        /// The operation.
        op: &'static str,
        /// The queue.
        name: String,
        /// What was wrong.
        #[source]
        source: Corruption,
    },
    /// A typed queue of another element type or size.
    #[error(
        "{op} queue {name:?}: holds elements of {found} bytes (tag {found_tag:#x}), expected {expected} bytes (tag {expected_tag:#x})"
    )]
    ElementMismatch {
        /// The operation.
        op: &'static str,
        /// The queue.
        name: String,
        /// Element size asked for.
        expected: u32,
        /// Element size found.
        found: u32,
        /// Type tag asked for.
        expected_tag: u64,
        /// Type tag found.
        found_tag: u64,
    },
    /// SPSC: the producer or consumer role is held by a live process.
    #[error("{op} queue {name:?}: the {role} role is held by live owner {holder:#x}")]
    RoleTaken {
        /// The operation.
        op: &'static str,
        /// The queue.
        name: String,
        /// `"producer"` or `"consumer"`.
        role: &'static str,
        /// Owner id of the holder.
        holder: u32,
    },
    /// JoinableQueue: `task_done` called more times than messages were put.
    #[error("task_done on queue {name:?}: called more times than messages were put")]
    TooManyTaskDone {
        /// The queue.
        name: String,
    },
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

macro_rules! send_error {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident),* $(,)? }, $what:literal) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq)]
        pub enum $name<T> {
            $($(#[$vm])* $v(T),)*
            /// The queue's shared state is corrupt (the message is handed back).
            Corrupted(T, Corruption),
        }

        impl<T> $name<T> {
            /// The message that was not sent.
            pub fn into_inner(self) -> T {
                match self {
                    $($name::$v(t))|* | $name::Corrupted(t, _) => t,
                }
            }
        }

        impl<T> fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $($name::$v(_) => write!(f, concat!(stringify!($name), "::", stringify!($v), "(..)")),)*
                    $name::Corrupted(_, c) => write!(f, concat!(stringify!($name), "::Corrupted(.., {:?})"), c),
                }
            }
        }

        impl<T> fmt::Display for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $($name::$v(_) => f.write_str(&concat!($what, ": ", stringify!($v)).to_lowercase()),)*
                    $name::Corrupted(_, c) => write!(f, concat!($what, ": queue corrupted: {}"), c),
                }
            }
        }

        impl<T> std::error::Error for $name<T> {}
    };
}

send_error!(
    /// Why [`try_send`](crate::Queue::try_send) refused a message (handed back inside).
    TrySendError {
        /// No free slot.
        Full,
        /// The queue was closed.
        Closed,
        /// Longer than the queue's maximum message.
        TooLong,
        /// This process has no owner id (ipc-shm's liveness registry could not be used; call
        /// `ipc_shm::liveness::current()` for the cause): it cannot claim a slot that others
        /// could recover if it died.
        Unregistered,
    },
    "try_send"
);

send_error!(
    /// Why [`send`](crate::Queue::send) refused a message (handed back inside).
    SendError {
        /// The queue was closed.
        Closed,
        /// Longer than the queue's maximum message.
        TooLong,
        /// SPSC only: the queue is full and the process holding the consumer role died. Not
        /// permanent: a new consumer may take the role over (and receives what is queued).
        Disconnected,
        /// This process has no owner id (ipc-shm's liveness registry could not be used; call
        /// `ipc_shm::liveness::current()` for the cause): it cannot claim a slot that others
        /// could recover if it died.
        Unregistered,
    },
    "send"
);

send_error!(
    /// Why [`send_timeout`](crate::Queue::send_timeout) refused a message (handed back inside).
    SendTimeoutError {
        /// Still full at the deadline.
        Timeout,
        /// The queue was closed.
        Closed,
        /// Longer than the queue's maximum message.
        TooLong,
        /// SPSC only: the consumer died, as [`SendError::Disconnected`].
        Disconnected,
        /// This process has no owner id (ipc-shm's liveness registry could not be used; call
        /// `ipc_shm::liveness::current()` for the cause): it cannot claim a slot that others
        /// could recover if it died.
        Unregistered,
    },
    "send_timeout"
);

impl<T> From<SendError<T>> for SendTimeoutError<T> {
    fn from(e: SendError<T>) -> Self {
        match e {
            SendError::Closed(t) => SendTimeoutError::Closed(t),
            SendError::TooLong(t) => SendTimeoutError::TooLong(t),
            SendError::Disconnected(t) => SendTimeoutError::Disconnected(t),
            SendError::Unregistered(t) => SendTimeoutError::Unregistered(t),
            SendError::Corrupted(t, c) => SendTimeoutError::Corrupted(t, c),
        }
    }
}

/// Why [`try_recv`](crate::Queue::try_recv) returned no message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TryRecvError {
    /// Nothing to receive now.
    #[error("try_recv: empty")]
    Empty,
    /// Closed and drained.
    #[error("try_recv: closed")]
    Closed,
    /// The queue's shared state is corrupt.
    #[error("try_recv: queue corrupted: {0}")]
    Corrupted(Corruption),
    /// This process has no owner id (ipc-shm's liveness registry could not be used; call
    /// `ipc_shm::liveness::current()` for the cause): it cannot claim a message that others
    /// could recover if it died.
    #[error("try_recv: this process has no liveness owner id")]
    Unregistered,
}

/// Why [`recv`](crate::Queue::recv) returned no message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecvError {
    /// Closed and drained.
    #[error("recv: closed")]
    Closed,
    /// The queue's shared state is corrupt.
    #[error("recv: queue corrupted: {0}")]
    Corrupted(Corruption),
    /// SPSC only: the process holding the producer role died and every message it published
    /// has been received. Not permanent: a new producer may take the role over, and later
    /// receives wait for it again. (A producer that drops its [`Sender`](crate::Sender)
    /// leaves the role vacant, and receivers keep waiting, as for a Python `Queue`.)
    #[error("recv: disconnected: the producer died")]
    Disconnected,
    /// This process has no owner id (ipc-shm's liveness registry could not be used; call
    /// `ipc_shm::liveness::current()` for the cause): it cannot claim a message that others
    /// could recover if it died.
    #[error("recv: this process has no liveness owner id")]
    Unregistered,
}

/// Why [`recv_timeout`](crate::Queue::recv_timeout) returned no message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecvTimeoutError {
    /// Nothing arrived before the deadline.
    #[error("recv_timeout: timed out")]
    Timeout,
    /// Closed and drained.
    #[error("recv_timeout: closed")]
    Closed,
    /// The queue's shared state is corrupt.
    #[error("recv_timeout: queue corrupted: {0}")]
    Corrupted(Corruption),
    /// SPSC only: the producer died, as [`RecvError::Disconnected`].
    #[error("recv_timeout: disconnected: the producer died")]
    Disconnected,
    /// This process has no owner id (ipc-shm's liveness registry could not be used; call
    /// `ipc_shm::liveness::current()` for the cause): it cannot claim a message that others
    /// could recover if it died.
    #[error("recv_timeout: this process has no liveness owner id")]
    Unregistered,
}

impl From<RecvTimeoutError> for RecvError {
    fn from(e: RecvTimeoutError) -> Self {
        match e {
            RecvTimeoutError::Closed | RecvTimeoutError::Timeout => RecvError::Closed,
            RecvTimeoutError::Corrupted(c) => RecvError::Corrupted(c),
            RecvTimeoutError::Disconnected => RecvError::Disconnected,
            RecvTimeoutError::Unregistered => RecvError::Unregistered,
        }
    }
}

impl From<TryRecvError> for RecvTimeoutError {
    fn from(e: TryRecvError) -> Self {
        match e {
            TryRecvError::Empty => RecvTimeoutError::Timeout,
            TryRecvError::Closed => RecvTimeoutError::Closed,
            TryRecvError::Corrupted(c) => RecvTimeoutError::Corrupted(c),
            TryRecvError::Unregistered => RecvTimeoutError::Unregistered,
        }
    }
}

/// Why [`join_timeout`](crate::JoinableQueue::join_timeout) returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JoinTimeoutError {
    /// Tasks were still unfinished at the deadline.
    #[error("join_timeout: {0} tasks still unfinished")]
    Timeout(u64),
}
