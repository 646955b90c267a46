//! [`simplex`]: a one-way [`Sender`]/[`Receiver`] over a pipe.

use std::io::IoSlice;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use crate::core::{Core, FdPolicy, Limit};
use crate::error::{Error, Result};
use crate::sys::{self, Kind};

/// The pipe buffer `simplex` asks for (`F_SETPIPE_SZ`; the kernel caps an unprivileged
/// process at `/proc/sys/fs/pipe-max-size`, 1 MiB by default).
const PIPE_SIZE: usize = 1 << 20;

/// The sending end of a [`simplex`] pipe.
///
/// Like any pipe writer, writing after every reader has gone raises `SIGPIPE`, which Rust
/// programs ignore by default (then it is [`Error::Disconnected`]); a program that restores
/// the default action dies instead. Use [`pipe`](crate::pipe) (a socket, `MSG_NOSIGNAL`) where
/// that matters.
#[derive(Debug)]
pub struct Sender {
    pub(crate) core: Core,
}

/// The receiving end of a [`simplex`] pipe. Its fd is `O_NONBLOCK`: a receive reads what
/// is there and waits in `poll` (so a blocking `recv` on an idle pipe costs a `poll` more
/// than a plain `read` would; the pipe is built for throughput).
#[derive(Debug)]
pub struct Receiver {
    pub(crate) core: Core,
}

/// A one-way message pipe (`pipe2(O_CLOEXEC)`, with the buffer raised to 1 MiB where the
/// system allows, for throughput), like Python's `multiprocessing.Pipe(duplex=False)` (which
/// returns the receiving end first; here the order is `(Sender, Receiver)`, as in
/// `std::sync::mpsc`).
///
/// # Errors
/// [`Error::Io`] if the pipe cannot be made.
pub fn simplex() -> Result<(Sender, Receiver)> {
    let (r, w) = sys::pipe().map_err(|e| Error::io("create", "simplex pipe", e))?;
    sys::grow_pipe(w.as_fd(), PIPE_SIZE);
    sys::set_nonblocking(r.as_fd()).map_err(|e| Error::io("create", "simplex pipe", e))?;
    Ok((
        Sender { core: Core::new(w, Kind::Pipe, "simplex pipe") },
        Receiver { core: Core::new(r, Kind::Pipe, "simplex pipe") },
    ))
}

impl Sender {
    /// Send one message, blocking until all of it is written.
    ///
    /// # Errors
    /// [`Error::MessageTooLarge`], [`Error::Disconnected`], [`Error::Poisoned`], [`Error::Io`].
    pub fn send(&mut self, data: &[u8]) -> Result<()> {
        self.core.send_one("send", data)
    }

    /// Send one message made of several slices.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub fn send_vectored(&mut self, parts: &[IoSlice<'_>]) -> Result<()> {
        self.core.send("send", parts, &[], Limit::Block)
    }

    /// Send one message, waiting at most `timeout` (a frame cut at the deadline poisons the
    /// sender, see [`Connection::send_timeout`](crate::Connection::send_timeout)).
    ///
    /// # Errors
    /// [`Error::Timeout`], and as [`send`](Self::send).
    pub fn send_timeout(&mut self, data: &[u8], timeout: Duration) -> Result<()> {
        self.core.send("send", &[IoSlice::new(data)], &[], Limit::after(timeout))
    }

    /// Send one message if the pipe takes its first bytes without waiting.
    ///
    /// # Errors
    /// [`Error::Timeout`] with `partial: false` when the pipe is full, and as
    /// [`send`](Self::send).
    pub fn try_send(&mut self, data: &[u8]) -> Result<()> {
        self.core.send("try_send", &[IoSlice::new(data)], &[], Limit::Now)
    }

    /// The largest message sent (default 64 MiB).
    pub fn max_message(&self) -> usize {
        self.core.reader.max_message
    }

    /// Set the largest message sent.
    pub fn set_max_message(&mut self, max: usize) {
        self.core.reader.max_message = max;
    }

    /// How long a `try_send` that started a frame may take to finish it (default 30 s).
    pub fn set_frame_timeout(&mut self, timeout: Option<Duration>) {
        self.core.reader.frame_timeout = timeout;
    }
}

impl Receiver {
    /// Receive one message, blocking until it arrives.
    ///
    /// # Errors
    /// As [`Connection::recv`](crate::Connection::recv) (without the fd errors).
    pub fn recv(&mut self) -> Result<Vec<u8>> {
        self.recv_limit(Limit::Block)
    }

    /// Receive one message into `buf` (see
    /// [`Connection::recv_into`](crate::Connection::recv_into)).
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    pub fn recv_into(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        match self.core.recv_into("recv", Limit::Block, buf)? {
            Some(n) => Ok(n),
            None => Err(Error::Timeout { op: "recv", object: self.core.object(), partial: false }),
        }
    }

    /// Receive one message if a whole one is ready now.
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    pub fn try_recv(&mut self) -> Result<Option<Vec<u8>>> {
        Ok(self.core.recv("try_recv", Limit::Now, FdPolicy::None)?.map(|(v, _)| v))
    }

    /// Receive one message, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`Error::Timeout`], and as [`recv`](Self::recv).
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Vec<u8>> {
        self.recv_limit(Limit::after(timeout))
    }

    fn recv_limit(&mut self, limit: Limit) -> Result<Vec<u8>> {
        match self.core.recv("recv", limit, FdPolicy::None)? {
            Some((v, _)) => Ok(v),
            None => Err(Error::Timeout { op: "recv", object: self.core.object(), partial: false }),
        }
    }

    /// Whether a message can be received (or the writer has gone) within `timeout`.
    ///
    /// # Errors
    /// [`Error::Poisoned`], [`Error::Io`].
    pub fn poll(&mut self, timeout: Option<Duration>) -> Result<bool> {
        self.core.poll("poll", timeout)
    }

    /// The largest message received (default 64 MiB).
    pub fn max_message(&self) -> usize {
        self.core.reader.max_message
    }

    /// Set the largest message received.
    pub fn set_max_message(&mut self, max: usize) {
        self.core.reader.max_message = max;
    }

    /// Set the frame timeout (see [`Connection::set_frame_timeout`](crate::Connection::set_frame_timeout)).
    pub fn set_frame_timeout(&mut self, timeout: Option<Duration>) {
        self.core.reader.frame_timeout = timeout;
    }
}

impl AsFd for Sender {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.core.fd.as_fd()
    }
}

impl AsFd for Receiver {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.core.fd.as_fd()
    }
}

/// Take the write end of a pipe.
impl From<OwnedFd> for Sender {
    fn from(fd: OwnedFd) -> Sender {
        Sender { core: Core::new(fd, Kind::Pipe, "simplex pipe") }
    }
}

/// Take the read end of a pipe. Its open file description is made `O_NONBLOCK` (every
/// receive waits in `poll`, so timeouts hold and reads go straight into uninitialised
/// buffers); if that fails, it stays blocking and only plain `recv` is reliable.
impl From<OwnedFd> for Receiver {
    fn from(fd: OwnedFd) -> Receiver {
        let _ = sys::set_nonblocking(fd.as_fd());
        Receiver { core: Core::new(fd, Kind::Pipe, "simplex pipe") }
    }
}
