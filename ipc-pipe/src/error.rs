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

/// Errors of ipc-pipe. Messages name the operation, the object and the cause in one line, with
/// sizes and limits where they apply (`recv on connection to "/run/app.sock": message of 4096
/// bytes exceeds the limit of 1024 bytes`, `connect to "/run/app.sock": authentication failed:
/// digest sent was rejected (wrong authkey)`); OS errors are kept as the source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer closed its end (or died) at a frame boundary.
    #[error("{}: peer disconnected", phrase(.op, .object))]
    Disconnected {
        /// The operation.
        op: &'static str,
        /// The connection.
        object: String,
    },
    /// The peer closed its end (or died) in the middle of a frame; the connection is poisoned.
    #[error("{}: peer disconnected mid-frame after {received} of {expected} bytes", phrase(.op, .object))]
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
    #[error(
        "{}: timed out{}",
        phrase(.op, .object),
        if *.partial { " mid-frame (connection poisoned)" } else { "" }
    )]
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
    #[error("{}: message of {len} bytes exceeds the limit of {max} bytes", phrase(.op, .object))]
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
    #[error("{}: malformed frame: {reason}", phrase(.op, .object))]
    BadFrame {
        /// The operation.
        op: &'static str,
        /// The connection.
        object: String,
        /// What was wrong.
        reason: FrameError,
    },
    /// An earlier error left the connection unusable.
    #[error("{}: connection unusable after an earlier error ({cause})", phrase(.op, .object))]
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
        "{}: {}",
        phrase(.op, .object),
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
        "{}: file descriptors truncated by the kernel (MSG_CTRUNC: more than 253, or \
         RLIMIT_NOFILE reached); closed the {received} that arrived and dropped the message",
        phrase(.op, .object)
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
    #[error("{}: {count} file descriptors in one message, at most {max}", phrase(.op, .object))]
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
    #[error("{}: received file descriptor refused: {reason}", phrase(.op, .object))]
    BadFd {
        /// The operation.
        op: &'static str,
        /// The connection.
        object: String,
        /// What was wrong.
        reason: String,
    },
    /// The challenge handshake failed.
    #[error("{}: authentication failed: {reason}", phrase(.op, .object))]
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
        "{}: the listener demands an authkey (it sent a challenge) and none was given",
        phrase(.op, .object)
    )]
    AuthRequired {
        /// The operation.
        op: &'static str,
        /// The connection.
        object: String,
    },
    /// The authkey is unusable (empty).
    #[error("{}: invalid authkey: {reason}", phrase(.op, .object))]
    InvalidAuthKey {
        /// The operation (`bind` or `connect`).
        op: &'static str,
        /// The address.
        object: String,
        /// Why.
        reason: &'static str,
    },
    /// The connecting process is refused by the listener's credential policy.
    #[error("{}: peer {creds} refused by the listener's uid policy", phrase(.op, .object))]
    PeerNotAllowed {
        /// The operation.
        op: &'static str,
        /// The address.
        object: String,
        /// The peer's credentials (`SO_PEERCRED`).
        creds: Credentials,
    },
    /// The address cannot be used.
    #[error("{}: invalid address: {reason}", phrase(.op, .object))]
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
    #[error("{}: address in use: {reason}", phrase(.op, .object))]
    AddrInUse {
        /// The operation.
        op: &'static str,
        /// The address.
        object: String,
        /// What is there.
        reason: String,
    },
    /// The directory of a socket path fails the checks (owner, mode, symlink).
    #[error("{}: unsafe socket directory: {reason}", phrase(.op, .object))]
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
    #[error("{}: pickle of {len} bytes refused: {reason}", phrase(.op, .object))]
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
    #[error("{}: {reason}", phrase(.op, .object))]
    Codec {
        /// The operation.
        op: &'static str,
        /// The connection.
        object: String,
        /// The codec's message.
        reason: String,
    },
    /// The connection's transport cannot do this (fd passing or peer credentials over TCP).
    #[error("{}: not supported: {reason}", phrase(.op, .object))]
    Unsupported {
        /// The operation.
        op: &'static str,
        /// The connection.
        object: String,
        /// Why.
        reason: &'static str,
    },
    /// An operating-system error.
    #[error("{}: {source}", phrase(.op, .object))]
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

/// The operation and its object as words: `connect to "/run/app.sock"`, `bind
/// "/run/app.sock"`, `accept on listener "/run/app.sock"`, `recv on pipe connection`.
fn phrase(op: &str, object: &str) -> String {
    match op {
        "connect" => format!("connect to {object}"),
        "bind" | "create" => format!("{op} {object}"),
        _ if op.ends_with(" of") || op.ends_with(" at") => format!("{op} {object}"),
        _ => format!("{op} on {object}"),
    }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// One of each variant, as the crate makes them.
    fn every_variant() -> Vec<Error> {
        let conn = || "connection to \"/run/app.sock\"".to_owned();
        let listener = || "listener \"/run/app.sock\"".to_owned();
        let addr = || "\"/run/app.sock\"".to_owned();
        #[allow(unused_mut)]
        let mut v = vec![
            Error::Disconnected { op: "recv", object: "pipe connection".to_owned() },
            Error::UnexpectedEof { op: "recv", object: conn(), received: 12, expected: 4100 },
            Error::Timeout { op: "recv", object: conn(), partial: false },
            Error::Timeout { op: "send", object: conn(), partial: true },
            Error::Timeout { op: "connect", object: addr(), partial: false },
            Error::MessageTooLarge { op: "recv", object: conn(), len: 4096, max: 1024 },
            Error::BadFrame { op: "recv", object: conn(), reason: FrameError::NegativeLength(-7) },
            Error::Poisoned { op: "send", object: conn(), cause: PoisonCause::PartialSend },
            Error::UnexpectedFds { op: "recv", object: conn(), count: None },
            Error::UnexpectedFds { op: "recv_shm", object: conn(), count: Some(2) },
            Error::FdsTruncated { op: "recv_fds", object: conn(), received: 3 },
            Error::TooManyFds { op: "send_fds", object: conn(), count: 254, max: 253 },
            Error::BadFd { op: "recv_shm", object: conn(), reason: "a FIFO, not a memfd".into() },
            Error::AuthFailed { op: "accept", object: listener(), reason: AuthError::WrongDigest },
            Error::AuthFailed {
                op: "connect",
                object: addr(),
                reason: AuthError::Deadline { challenged: false },
            },
            Error::AuthRequired { op: "recv", object: conn() },
            Error::InvalidAuthKey {
                op: "bind",
                object: addr(),
                reason: "the authkey is empty (pass None for no authentication)",
            },
            Error::PeerNotAllowed {
                op: "accept",
                object: listener(),
                creds: Credentials { pid: 42, uid: 65534, gid: 65534 },
            },
            Error::InvalidAddress {
                op: "bind",
                object: addr(),
                reason: "the path is longer than 107 bytes (sun_path)",
            },
            Error::AddrInUse {
                op: "bind",
                object: addr(),
                reason: "a live listener holds its lock file".into(),
            },
            Error::UnsafeDirectory {
                op: "bind",
                object: addr(),
                reason: "mode 0o1777 lets group or others write in it".into(),
            },
            Error::Codec {
                op: "recv_value",
                object: conn(),
                reason: "cannot decode the 3-byte postcard message: unexpected end".into(),
            },
            Error::Unsupported {
                op: "send_fds",
                object: "connection to tcp 127.0.0.1:6000".to_owned(),
                reason: "file descriptors pass only over local (Unix) sockets, not TCP",
            },
            Error::io("create", "pipe connection", io::Error::from_raw_os_error(24)),
            Error::io("get peer credentials of", conn(), io::Error::from_raw_os_error(95)),
            Error::io("accept", listener(), io::Error::from_raw_os_error(24)),
        ];
        #[cfg(feature = "pickle")]
        v.push(Error::PickleRefused {
            op: "recv_pickle",
            object: conn(),
            len: 2_000_004,
            reason: crate::pickle_guard::PickleError::TooLarge { needed: 1 << 30, limit: 1 << 27 },
        });
        v
    }

    /// Adding a variant fails to compile here until it is in the list above.
    fn covered(e: &Error) -> &'static str {
        match e {
            Error::Disconnected { op, .. }
            | Error::UnexpectedEof { op, .. }
            | Error::Timeout { op, .. }
            | Error::MessageTooLarge { op, .. }
            | Error::BadFrame { op, .. }
            | Error::Poisoned { op, .. }
            | Error::UnexpectedFds { op, .. }
            | Error::FdsTruncated { op, .. }
            | Error::TooManyFds { op, .. }
            | Error::BadFd { op, .. }
            | Error::AuthFailed { op, .. }
            | Error::AuthRequired { op, .. }
            | Error::InvalidAuthKey { op, .. }
            | Error::PeerNotAllowed { op, .. }
            | Error::InvalidAddress { op, .. }
            | Error::AddrInUse { op, .. }
            | Error::UnsafeDirectory { op, .. }
            | Error::Codec { op, .. }
            | Error::Unsupported { op, .. }
            | Error::Io { op, .. } => op,
            #[cfg(feature = "pickle")]
            Error::PickleRefused { op, .. } => op,
        }
    }

    #[test]
    fn every_message_names_operation_object_and_cause_in_one_line() {
        for e in every_variant() {
            let op = covered(&e);
            let text = e.to_string();
            eprintln!("{text}");
            assert!(text.starts_with(op), "{text}");
            let (head, cause) = text.split_once(": ").unwrap();
            assert!(head.len() > op.len() && !cause.is_empty(), "{text}");
            assert!(!text.contains('\n') && !text.ends_with('.') && !text.contains("  "), "{text}");
            assert!(!text.contains(" on on ") && !text.contains(" from on "), "{text}");
        }
        let e = every_variant().remove(4);
        assert_eq!(e.to_string(), "connect to \"/run/app.sock\": timed out");
    }
}
