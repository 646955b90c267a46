//! Errors in two tiers: [`Error`] for set-up and OS failures (naming the operation and the
//! queue), and small outcome enums for the hot path that hand a refused message back.

pub use crate::ring::Corruption;

/// Set-up and OS failures of ipc-queue, and (through `?`) any refused operation. Messages name
/// the operation, the queue and the cause in one line (`open queue "jobs": not found`).
///
/// Every outcome enum converts into it, so `?` works in a function returning this `Error`
/// (or `Box<dyn Error>`: the outcome enums are plain `'static` errors too):
///
/// ```
/// fn produce(q: &ipc_queue::Queue) -> Result<(), ipc_queue::Error> {
///     q.try_send(b"job")?;
///     let job = q.try_recv()?;
///     assert_eq!(job, b"job");
///     Ok(())
/// }
/// # produce(&ipc_queue::Queue::anonymous(4, 64).unwrap()).unwrap();
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The segment layer failed (name, permissions, header mismatch, size, ...).
    #[error("{op} queue {name:?}: {}", source.cause())]
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
    #[error("{op} queue {name:?}: invalid configuration: {source}")]
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
    #[error("{op} queue {name:?}: corrupted: {source}")]
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
        "{op} queue {name:?}: holds elements of {} ({found} bytes), not {} ({expected} bytes)",
        type_name(*found_tag), type_name(*expected_tag)
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
    /// JoinableQueue: `task_done` called more times than tasks were received.
    #[error("task_done on queue {name:?}: called more times than tasks were received")]
    TooManyTaskDone {
        /// The queue.
        name: String,
    },
    /// A typed value could not be encoded, or a received message is not a valid encoding of
    /// the type asked for (features `serde`).
    #[error("{op} queue {name:?}: {reason}")]
    Codec {
        /// The operation (`send_value on`, `recv_value on`, ...).
        op: &'static str,
        /// The queue.
        name: String,
        /// What the codec said.
        reason: String,
    },
    /// A `try_send` refused (through `?`).
    #[error(transparent)]
    TrySend(#[from] TrySendError),
    /// A `send` refused (through `?`).
    #[error(transparent)]
    Send(#[from] SendError),
    /// A `send_timeout` refused (through `?`).
    #[error(transparent)]
    SendTimeout(#[from] SendTimeoutError),
    /// A `try_recv` with nothing (through `?`).
    #[error(transparent)]
    TryRecv(#[from] TryRecvError),
    /// A `recv` with nothing (through `?`).
    #[error(transparent)]
    Recv(#[from] RecvError),
    /// A `recv_timeout` with nothing (through `?`).
    #[error(transparent)]
    RecvTimeout(#[from] RecvTimeoutError),
    /// A `join_timeout` that timed out (through `?`).
    #[error(transparent)]
    JoinTimeout(#[from] JoinTimeoutError),
}

fn type_name(tag: u64) -> String {
    ipc_shm::kind_name(tag).map_or_else(|| format!("an unknown type (tag {tag:#x})"), str::to_owned)
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

const NO_OWNER_ID: &str =
    "this process has no liveness owner id (ipc_shm::liveness::current() says why)";

/// Why [`try_send`](crate::Queue::try_send) (or `try_reserve`) refused. The message is not
/// handed back: it is the caller's borrowed bytes (or a `Copy` value) all along.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TrySendError {
    /// No free slot.
    #[error("try_send: the queue is full")]
    Full,
    /// The queue was closed.
    #[error("try_send: the queue is closed")]
    Closed,
    /// Longer than the queue's maximum message.
    #[error("try_send: a message of {len} bytes exceeds the queue's limit of {max} bytes")]
    TooLong {
        /// The message's length.
        len: usize,
        /// The queue's maximum message.
        max: usize,
    },
    /// The queue's shared state is corrupt.
    #[error("try_send: the queue's shared state is corrupted: {0}")]
    Corrupted(Corruption),
    /// This process has no owner id (ipc-shm's liveness registry could not be used): it
    /// cannot claim a slot that others could recover if it died.
    #[error("try_send: {NO_OWNER_ID}")]
    Unregistered,
}

/// Why [`send`](crate::Queue::send) (or `reserve`) refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The queue was closed.
    #[error("send: the queue is closed")]
    Closed,
    /// Longer than the queue's maximum message.
    #[error("send: a message of {len} bytes exceeds the queue's limit of {max} bytes")]
    TooLong {
        /// The message's length.
        len: usize,
        /// The queue's maximum message.
        max: usize,
    },
    /// The queue is full and its consumers died: SPSC, the process holding the consumer
    /// role; MPMC, every process that ever received from the queue (while at most
    /// [`PEERS_LISTED`](crate::PEERS_LISTED) live ones did). A process that dropped its
    /// handle but lives is not dead. Not permanent: a new consumer may come (and receives
    /// what is queued). Blocking sends only: `try_send` says `Full`.
    #[error("send: the queue is full and every consumer died")]
    Disconnected,
    /// The queue's shared state is corrupt.
    #[error("send: the queue's shared state is corrupted: {0}")]
    Corrupted(Corruption),
    /// As [`TrySendError::Unregistered`].
    #[error("send: {NO_OWNER_ID}")]
    Unregistered,
}

/// Why [`send_timeout`](crate::Queue::send_timeout) (or `reserve_timeout`) refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendTimeoutError {
    /// Still full at the deadline.
    #[error("send_timeout: the queue was still full at the deadline")]
    Timeout,
    /// The queue was closed.
    #[error("send_timeout: the queue is closed")]
    Closed,
    /// Longer than the queue's maximum message.
    #[error("send_timeout: a message of {len} bytes exceeds the queue's limit of {max} bytes")]
    TooLong {
        /// The message's length.
        len: usize,
        /// The queue's maximum message.
        max: usize,
    },
    /// The consumers died, as [`SendError::Disconnected`] (told before the deadline).
    #[error("send_timeout: the queue is full and every consumer died")]
    Disconnected,
    /// The queue's shared state is corrupt.
    #[error("send_timeout: the queue's shared state is corrupted: {0}")]
    Corrupted(Corruption),
    /// As [`TrySendError::Unregistered`].
    #[error("send_timeout: {NO_OWNER_ID}")]
    Unregistered,
}

impl From<SendError> for SendTimeoutError {
    fn from(e: SendError) -> Self {
        match e {
            SendError::Closed => SendTimeoutError::Closed,
            SendError::TooLong { len, max } => SendTimeoutError::TooLong { len, max },
            SendError::Disconnected => SendTimeoutError::Disconnected,
            SendError::Unregistered => SendTimeoutError::Unregistered,
            SendError::Corrupted(c) => SendTimeoutError::Corrupted(c),
        }
    }
}

/// Why [`try_recv`](crate::Queue::try_recv) returned no message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TryRecvError {
    /// Nothing to receive now.
    #[error("try_recv: the queue is empty")]
    Empty,
    /// Closed and drained.
    #[error("try_recv: the queue is closed and drained")]
    Closed,
    /// The queue's shared state is corrupt.
    #[error("try_recv: the queue's shared state is corrupted: {0}")]
    Corrupted(Corruption),
    /// This process has no owner id (ipc-shm's liveness registry could not be used): it
    /// cannot claim a message that others could recover if it died.
    #[error("try_recv: {NO_OWNER_ID}")]
    Unregistered,
}

/// Why [`recv`](crate::Queue::recv) returned no message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecvError {
    /// Closed and drained.
    #[error("recv: the queue is closed and drained")]
    Closed,
    /// The queue's shared state is corrupt.
    #[error("recv: the queue's shared state is corrupted: {0}")]
    Corrupted(Corruption),
    /// The producers died (exited or were killed) and everything they committed has been
    /// received: SPSC, the process holding the producer role; MPMC, every process that ever
    /// sent on the queue (while at most [`PEERS_LISTED`](crate::PEERS_LISTED) live ones did).
    /// Not permanent, and not "no more will come": a producer that has not sent yet is
    /// unknown to the queue, and later receives wait for it again (use `close` to say that
    /// everything was sent). A producer that drops its
    /// handle ([`Sender`](crate::Sender), [`Queue`](crate::Queue)) but lives is not dead:
    /// receivers keep waiting, as for a Python `Queue`. Blocking receives only: `try_recv`
    /// says `Empty`.
    #[error("recv: disconnected: every producer died and everything sent was received")]
    Disconnected,
    /// As [`TryRecvError::Unregistered`].
    #[error("recv: {NO_OWNER_ID}")]
    Unregistered,
}

/// Why [`recv_timeout`](crate::Queue::recv_timeout) returned no message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecvTimeoutError {
    /// Nothing arrived before the deadline.
    #[error("recv_timeout: nothing arrived before the deadline")]
    Timeout,
    /// Closed and drained.
    #[error("recv_timeout: the queue is closed and drained")]
    Closed,
    /// The queue's shared state is corrupt.
    #[error("recv_timeout: the queue's shared state is corrupted: {0}")]
    Corrupted(Corruption),
    /// The producers died, as [`RecvError::Disconnected`] (told before the deadline).
    #[error("recv_timeout: disconnected: every producer died and everything sent was received")]
    Disconnected,
    /// As [`TryRecvError::Unregistered`].
    #[error("recv_timeout: {NO_OWNER_ID}")]
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
    #[error("join_timeout: {0} tasks still unfinished at the deadline")]
    Timeout(u64),
}
