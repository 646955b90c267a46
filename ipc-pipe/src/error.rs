//! The crate's error type: every message names the operation and the connection or address.

use std::fmt;
use std::io;

use crate::auth::AuthError;
use crate::creds::Credentials;
use crate::frame::FrameError;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a connection was poisoned: after one of these, every operation on it fails with
/// [`Error::Poisoned`] (the stream is no longer at a frame boundary, or the peer broke the
/// protocol; the "bad message" rule: drop the connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PoisonCause {
    /// A frame above `max_message`, or a malformed prefix, was received.
    BadFrame(FrameError),
    /// The peer disconnected in the middle of a frame.
    Truncated,
    /// A send stopped (deadline or error) after part of a frame was written.
    PartialSend,
    /// An async send or receive was cancelled in the middle of a frame.
    Cancelled,
    /// The handshake failed.
    Handshake,
    /// File descriptors arrived with a message to a receive that accepts none (the peer
    /// broke the protocol; the kernel closed them), or far more than the receive accepts.
    UnexpectedFds,
}

impl fmt::Display for PoisonCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoisonCause::BadFrame(e) => write!(f, "bad frame: {e}"),
            PoisonCause::Truncated => f.write_str("peer disconnected mid-frame"),
            PoisonCause::PartialSend => f.write_str("a send stopped in the middle of a frame"),
            PoisonCause::Cancelled => f.write_str("an operation was cancelled mid-frame"),
            PoisonCause::Handshake => f.write_str("the handshake failed"),
            PoisonCause::UnexpectedFds => {
                f.write_str("file descriptors arrived where none were accepted")
            }
        }
    }
}

/// Errors of ipc-pipe. Messages name the operation and the object (`recv on connection
/// "/run/app/sock": peer disconnected`); OS errors are kept as the source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer closed its end (or died) at a frame boundary.
    #[error("{op} on {object}: peer disconnected")]
    Disconnected {
        /// The operation.
        op: &'static str,
        /// The connection.
        object: String,
    },
    /// The peer closed its end (or died) in the middle of a frame; the connection is poisoned.
    #[error("{op} on {object}: peer disconnected mid-frame after {received} of {expected} bytes")]
    UnexpectedEof {
        /// The operation.
        op: &'static str,
        /// The connection.
        object: String,
        /// Bytes of the frame received (prefix included).
        received: u64,
        /// Bytes the frame needed (prefix included; 4 or 12 if the prefix itself was cut).
        expected: u64,
    },
    /// The deadline passed. After a send that had written part of a frame (`partial`), the
    /// connection is poisoned; otherwise it is still usable.
    #[error("{op} on {object}: timed out{}", if *.partial { " mid-frame (connection poisoned)" } else { "" })]
    Timeout {
        /// The operation.
        op: &'static str,
        /// The connection.
        object: String,
        /// Whether part of a frame had been written (sends) or read (receives).
        partial: bool,
    },
    /// A received frame is longer than `max_message` (refused from its prefix, before any
    /// allocation), or a message to send is; a received one poisons the connection.
    #[error("{op} on {object}: message of {len} bytes exceeds the limit of {max} bytes")]
    MessageTooLarge {
        /// The operation.
        op: &'static str,
        /// The connection.
        object: String,
        /// The message length.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// A malformed frame prefix; the connection is poisoned.
    #[error("{op} on {object}: malformed frame: {reason}")]
    BadFrame {
        /// The operation.
        op: &'static str,
        /// The connection.
        object: String,
        /// What was wrong.
        reason: FrameError,
    },
    /// An earlier error left the connection unusable.
    #[error("{op} on {object}: connection unusable after an earlier error ({cause})")]
    Poisoned {
        /// The operation.
        op: &'static str,
        /// The connection.
        object: String,
        /// The earlier error.
        cause: PoisonCause,
    },
    /// File descriptors arrived with a message.
    ///
    /// To a receive that accepts none (`recv`, `try_recv`, `recv_into`, the handshake, the
    /// typed receives): no room for them was offered, so the kernel closed them before they
    /// reached our fd table (`count` is `None`), and the connection is poisoned (a peer that
    /// floods us with fds is dropped at its first batch). To `recv_fds` and its kin, more
    /// than asked for: all of them were closed and the message dropped (`count` is `Some`);
    /// the connection stays usable, unless far more kept coming within one frame.
    #[error(
        "{op} on {object}: {}",
        match count {
            Some(n) => format!(
                "{n} file descriptor(s) arrived with a message, more than accepted; closed them \
                 and dropped the message"
            ),
            None => "file descriptors arrived with a message to a receive that accepts none \
                     and were closed by the kernel (use recv_fds on a connection that carries \
                     fds); connection poisoned"
                .to_owned(),
        }
    )]
    UnexpectedFds {
        /// The operation.
        op: &'static str,
        /// The connection.
        object: String,
        /// How many arrived, when they reached us.
        count: Option<usize>,
    },
    /// The kernel truncated the control data of a message (`MSG_CTRUNC`: more fds than the
    /// receive buffer holds, or `RLIMIT_NOFILE` reached); the fds that did arrive were closed
    /// and the message dropped.
    #[error(
        "{op} on {object}: file descriptors truncated (MSG_CTRUNC); closed the {received} that arrived"
    )]
    FdsTruncated {
        /// The operation.
        op: &'static str,
        /// The connection.
        object: String,
        /// How many fds arrived before the truncation.
        received: usize,
    },
    /// Too many fds to send in one message (the kernel's limit is 253).
    #[error("{op} on {object}: {count} file descriptors in one message, at most {max}")]
    TooManyFds {
        /// The operation.
        op: &'static str,
        /// The connection.
        object: String,
        /// How many were given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A received fd is not what the message said it was (type, size or seals).
    #[error("{op} on {object}: received file descriptor refused: {reason}")]
    BadFd {
        /// The operation.
        op: &'static str,
        /// The connection.
        object: String,
        /// What was wrong.
        reason: String,
    },
    /// The challenge handshake failed.
    #[error("{op} {object}: authentication failed: {reason}")]
    AuthFailed {
        /// The operation (`accept` or `connect`).
        op: &'static str,
        /// The address.
        object: String,
        /// Why.
        reason: AuthError,
    },
    /// The listener sent a challenge but we have no authkey.
    #[error(
        "{op} {object}: the listener demands an authkey (it sent a challenge) and none was given"
    )]
    AuthRequired {
        /// The operation.
        op: &'static str,
        /// The connection.
        object: String,
    },
    /// The authkey is unusable (empty).
    #[error("invalid authkey: {reason}")]
    InvalidAuthKey {
        /// Why.
        reason: &'static str,
    },
    /// The connecting process is refused by the listener's credential policy.
    #[error("{op} {object}: peer {creds} refused by the listener's uid policy")]
    PeerNotAllowed {
        /// The operation.
        op: &'static str,
        /// The address.
        object: String,
        /// The peer's credentials (`SO_PEERCRED`).
        creds: Credentials,
    },
    /// The address cannot be used.
    #[error("{op} {object}: invalid address: {reason}")]
    InvalidAddress {
        /// The operation.
        op: &'static str,
        /// The address.
        object: String,
        /// Why.
        reason: &'static str,
    },
    /// Something already sits at the address: a live listener, or a file, symlink or
    /// foreign socket, which is neither followed nor removed.
    #[error("{op} {object}: address in use: {reason}")]
    AddrInUse {
        /// The operation.
        op: &'static str,
        /// The address.
        object: String,
        /// What is there.
        reason: String,
    },
    /// The directory of a socket path fails the checks (owner, mode, symlink).
    #[error("{op} {object}: unsafe socket directory: {reason}")]
    UnsafeDirectory {
        /// The operation.
        op: &'static str,
        /// The address.
        object: String,
        /// Which check failed.
        reason: String,
    },
    /// A received pickle was refused before decoding (feature `pickle`): decoding it would
    /// take more memory than the pickle limit, or it is malformed or hostile (see the
    /// `pickle_guard` module). The message was consumed; the connection stays usable.
    #[cfg(feature = "pickle")]
    #[error("{op} on {object}: pickle of {len} bytes refused: {reason}")]
    PickleRefused {
        /// The operation.
        op: &'static str,
        /// The connection.
        object: String,
        /// The pickle's length.
        len: usize,
        /// Why.
        reason: crate::pickle_guard::PickleError,
    },
    /// A message could not be encoded or decoded (features `serde`, `pickle`).
    #[error("{op} on {object}: {reason}")]
    Codec {
        /// The operation.
        op: &'static str,
        /// The connection.
        object: String,
        /// The codec's message.
        reason: String,
    },
    /// An operating-system error.
    #[error("{op} {object}: {source}")]
    Io {
        /// The operation.
        op: &'static str,
        /// The object.
        object: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// The peer is gone: [`Error::Disconnected`] or [`Error::UnexpectedEof`] (it went away
    /// mid-frame).
    pub fn is_disconnected(&self) -> bool {
        matches!(self, Error::Disconnected { .. } | Error::UnexpectedEof { .. })
    }

    /// A deadline passed ([`Error::Timeout`]).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }

    pub(crate) fn io(
        op: &'static str,
        object: impl Into<String>,
        source: impl Into<io::Error>,
    ) -> Error {
        Error::Io { op, object: object.into(), source: source.into() }
    }
}
