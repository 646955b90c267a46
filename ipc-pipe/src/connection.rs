//! [`Connection`]: a duplex message connection over a Unix stream socket, and [`pipe`].

use std::io::IoSlice;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use crate::core::{Core, FdPolicy, Limit};
use crate::creds::Credentials;
use crate::error::{Error, Result};
use crate::sys::{self, Kind};

/// A duplex message connection: [`pipe`] makes a connected pair; [`Listener`](crate::Listener)
/// and [`Client`](crate::Client) make them across unrelated processes.
///
/// Messages are framed as Python's `multiprocessing.connection` frames them, so the other end
/// may be a Python `Connection` (`send_bytes`/`recv_bytes`, or `send`/`recv` with the
/// `pickle` feature). The fd is `CLOEXEC`; it stays in blocking mode and the `try_`/`_timeout`
/// forms use per-call non-blocking flags.
///
/// # Limits and errors
/// - A received frame longer than [`max_message`](Self::max_message) (default 64 MiB) is
///   refused from its length prefix, before anything is allocated, and poisons the
///   connection ([`Error::MessageTooLarge`]); so does a malformed prefix
///   ([`Error::BadFrame`]) or a peer that disconnects mid-frame ([`Error::UnexpectedEof`]).
///   A poisoned connection answers every later call with [`Error::Poisoned`].
/// - Once a frame has started arriving, its remaining bytes must arrive within the
///   [`frame_timeout`](Self::set_frame_timeout) (default 30 s), even in a blocking `recv`;
///   otherwise [`Error::Timeout`] with `partial: true` (the connection stays usable).
/// - A peer that closed at a frame boundary gives [`Error::Disconnected`];
///   [`Error::is_disconnected`] covers both kinds of disconnection.
/// - A send that stops mid-frame (a [`send_timeout`](Self::send_timeout) deadline) poisons the
///   connection: the stream is no longer at a frame boundary.
#[derive(Debug)]
pub struct Connection {
    pub(crate) core: Core,
}

/// A connected pair of duplex connections (`socketpair(AF_UNIX, SOCK_STREAM)`), like Python's
/// `multiprocessing.Pipe()`. Both ends are `CLOEXEC`: hand one to a child by `fork`, or to an
/// unrelated process with [`Connection::send_fds`].
///
/// # Errors
/// [`Error::Io`] if the socketpair cannot be made.
pub fn pipe() -> Result<(Connection, Connection)> {
    let (a, b) = sys::socketpair().map_err(|e| Error::io("create", "pipe connection", e))?;
    let label: Arc<str> = Arc::from("pipe connection");
    Ok((
        Connection { core: Core::new(a, Kind::Socket, Arc::clone(&label)) },
        Connection { core: Core::new(b, Kind::Socket, label) },
    ))
}

impl Connection {
    pub(crate) fn with_label(fd: OwnedFd, label: impl Into<Arc<str>>) -> Connection {
        Connection { core: Core::new(fd, Kind::Socket, label) }
    }

    /// Send one message, blocking until all of it is written.
    ///
    /// # Errors
    /// [`Error::MessageTooLarge`] (nothing written), [`Error::Disconnected`],
    /// [`Error::Poisoned`], [`Error::Io`].
    pub fn send(&mut self, data: &[u8]) -> Result<()> {
        self.core.send_one("send", data)
    }

    /// Send one message made of several slices (one frame, written with one `sendmsg` where
    /// the socket takes it all).
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub fn send_vectored(&mut self, parts: &[IoSlice<'_>]) -> Result<()> {
        self.core.send("send", parts, &[], Limit::Block)
    }

    /// Send one message, waiting at most `timeout` for the peer to make room. At the deadline
    /// the call returns [`Error::Timeout`]; if part of the frame had been written
    /// (`partial: true`) the connection is poisoned, otherwise it is still usable.
    ///
    /// # Errors
    /// [`Error::Timeout`], and as [`send`](Self::send).
    pub fn send_timeout(&mut self, data: &[u8], timeout: Duration) -> Result<()> {
        self.core.send("send", &[IoSlice::new(data)], &[], Limit::after(timeout))
    }

    /// Send one message if the socket takes its first bytes without waiting; a frame once
    /// started is finished within the frame timeout.
    ///
    /// # Errors
    /// [`Error::Timeout`] with `partial: false` when nothing could be written (the socket is
    /// full), and as [`send`](Self::send).
    pub fn try_send(&mut self, data: &[u8]) -> Result<()> {
        self.core.send("try_send", &[IoSlice::new(data)], &[], Limit::Now)
    }

    /// Receive one message, blocking until it arrives.
    ///
    /// # Errors
    /// [`Error::Disconnected`], [`Error::UnexpectedEof`], [`Error::MessageTooLarge`],
    /// [`Error::BadFrame`], [`Error::UnexpectedFds`] (fds came with it: this receive offers
    /// no room for fds, so the kernel closed them; the connection is poisoned. Use
    /// [`recv_fds`](Self::recv_fds) on a connection that carries fds),
    /// [`Error::Timeout`] (a started frame stalled past the frame timeout),
    /// [`Error::Poisoned`], [`Error::AuthRequired`], [`Error::Io`].
    pub fn recv(&mut self) -> Result<Vec<u8>> {
        self.recv_limit("recv", Limit::Block)
    }

    /// Receive one message into `buf`, replacing its contents and reusing its allocation (a
    /// large message is read straight into an allocation of its own, and `buf`'s previous
    /// one is kept for the next). Returns the message length.
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    pub fn recv_into(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        match self.core.recv_into("recv", Limit::Block, buf)? {
            Some(n) => Ok(n),
            None => Err(Error::Timeout { op: "recv", object: self.core.object(), partial: false }),
        }
    }

    /// Receive one message if a whole one is ready now; `Ok(None)` otherwise.
    ///
    /// # Errors
    /// As [`recv`](Self::recv), except that it never waits.
    pub fn try_recv(&mut self) -> Result<Option<Vec<u8>>> {
        Ok(self.core.recv("try_recv", Limit::Now, FdPolicy::None)?.map(|(v, _)| v))
    }

    /// Receive one message, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`Error::Timeout`], and as [`recv`](Self::recv).
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Vec<u8>> {
        self.recv_limit("recv", Limit::after(timeout))
    }

    fn recv_limit(&mut self, op: &'static str, limit: Limit) -> Result<Vec<u8>> {
        match self.core.recv(op, limit, FdPolicy::None)? {
            Some((v, _)) => Ok(v),
            None => Err(Error::Timeout { op, object: self.core.object(), partial: false }),
        }
    }

    /// Whether a message can be received (or the peer has gone, which `recv` reports) within
    /// `timeout` (`None`: wait as long as it takes; `Some(ZERO)`: just look), like Python's
    /// `Connection.poll`. Bytes of an unfinished frame count as ready.
    ///
    /// # Errors
    /// [`Error::Poisoned`], [`Error::Io`].
    pub fn poll(&mut self, timeout: Option<Duration>) -> Result<bool> {
        self.core.poll("poll", timeout)
    }

    /// Send one message with file descriptors attached (`SCM_RIGHTS`; at most 253). The
    /// receiver gets duplicates of them from [`recv_fds`](Self::recv_fds); ours stay open.
    ///
    /// # Errors
    /// [`Error::TooManyFds`], and as [`send`](Self::send).
    pub fn send_fds(&mut self, data: &[u8], fds: &[BorrowedFd<'_>]) -> Result<()> {
        self.core.send("send_fds", &[IoSlice::new(data)], fds, Limit::Block)
    }

    /// Receive one message and the fds that came with it (none is fine), `CLOEXEC`. On a
    /// connection that carries fds, receive every message this way: a plain
    /// [`recv`](Self::recv) offers the kernel no room for fds, and may read ahead into the
    /// next message and so lose its fds.
    ///
    /// # Errors
    /// [`Error::FdsTruncated`] when the kernel cut the control data (`MSG_CTRUNC`: more than
    /// 253 fds, or our `RLIMIT_NOFILE` reached): every fd that did arrive is closed and the
    /// message dropped; and as [`recv`](Self::recv).
    pub fn recv_fds(&mut self) -> Result<(Vec<u8>, Vec<OwnedFd>)> {
        self.recv_fds_limit(Limit::Block)
    }

    /// [`recv_fds`](Self::recv_fds), waiting at most `timeout`.
    ///
    /// # Errors
    /// [`Error::Timeout`], and as [`recv_fds`](Self::recv_fds).
    pub fn recv_fds_timeout(&mut self, timeout: Duration) -> Result<(Vec<u8>, Vec<OwnedFd>)> {
        self.recv_fds_limit(Limit::after(timeout))
    }

    /// [`recv_fds`](Self::recv_fds) if a whole message is ready now; `Ok(None)` otherwise.
    ///
    /// # Errors
    /// As [`recv_fds`](Self::recv_fds).
    pub fn try_recv_fds(&mut self) -> Result<Option<(Vec<u8>, Vec<OwnedFd>)>> {
        self.core.recv("try_recv_fds", Limit::Now, FdPolicy::UpTo(sys::MAX_FDS))
    }

    fn recv_fds_limit(&mut self, limit: Limit) -> Result<(Vec<u8>, Vec<OwnedFd>)> {
        match self.core.recv("recv_fds", limit, FdPolicy::UpTo(sys::MAX_FDS))? {
            Some(m) => Ok(m),
            None => {
                Err(Error::Timeout { op: "recv_fds", object: self.core.object(), partial: false })
            }
        }
    }

    /// The peer's pid, uid and gid as the kernel recorded them when the connection was made
    /// (`SO_PEERCRED`).
    ///
    /// # Errors
    /// [`Error::Unsupported`] on TCP, [`Error::Io`] (for instance on an fd that is not a Unix
    /// socket).
    pub fn peer_credentials(&self) -> Result<Credentials> {
        if self.core.tcp {
            return Err(Error::Unsupported {
                op: "get peer credentials of",
                object: self.core.object(),
                reason: "TCP carries no peer credentials",
            });
        }
        sys::peer_creds(self.core.fd.as_fd())
            .map(Credentials::from)
            .map_err(|e| Error::io("get peer credentials of", self.core.object(), e))
    }

    /// The largest message received or sent (default 64 MiB).
    pub fn max_message(&self) -> usize {
        self.core.reader.max_message
    }

    /// Set the largest message received or sent.
    pub fn set_max_message(&mut self, max: usize) {
        self.core.reader.max_message = max;
    }

    /// The frame timeout: how long the rest of a frame may take once its first byte arrived
    /// (default 30 s; `None`: no limit).
    pub fn frame_timeout(&self) -> Option<Duration> {
        self.core.reader.frame_timeout
    }

    /// Set the frame timeout.
    pub fn set_frame_timeout(&mut self, timeout: Option<Duration>) {
        self.core.reader.frame_timeout = timeout;
    }

    /// Whether an earlier error left the connection unusable.
    pub fn is_poisoned(&self) -> bool {
        self.core.poisoned.is_some()
    }
}

impl AsFd for Connection {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.core.fd.as_fd()
    }
}

/// Take a connected Unix stream socket (e.g. one end of a socketpair handed over by a parent,
/// or an fd received with [`Connection::recv_fds`]).
impl From<OwnedFd> for Connection {
    fn from(fd: OwnedFd) -> Connection {
        Connection::with_label(fd, "connection")
    }
}

/// Give up the socket (to hand it to a child process, say). Bytes already read into the
/// connection's buffer and not yet received are lost.
impl From<Connection> for OwnedFd {
    fn from(c: Connection) -> OwnedFd {
        c.core.fd
    }
}

impl From<std::os::unix::net::UnixStream> for Connection {
    fn from(s: std::os::unix::net::UnixStream) -> Connection {
        Connection::from(OwnedFd::from(s))
    }
}
