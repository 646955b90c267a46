//! [`AsyncConnection`]: the same framing on tokio (feature `tokio`), over `AsyncFd`.
#![allow(unsafe_code)] // AsyncFd::register (its contract: the fd stays open while registered)

use std::io::{self, IoSlice};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use tokio::io::unix::AsyncFd;

use crate::connection::{Connection, pipe};
use crate::core::{Core, FdPolicy};
use crate::error::{Error, PoisonCause, Result};
use crate::frame;
use crate::reader::Fail;
use crate::sys::{self, Kind, Wait};

/// A [`Connection`] for tokio: `send` and `recv` are futures that wait on the runtime's
/// reactor instead of blocking a thread. The wire format is the same, so the other end can be
/// a blocking [`Connection`] or Python.
///
/// `recv` is cancel-safe (a partly received frame stays buffered for the next call). A `send`
/// cancelled after part of its frame was written leaves the stream mid-frame: the connection
/// is then poisoned. Deadlines: wrap the futures in `tokio::time::timeout`.
#[derive(Debug)]
pub struct AsyncConnection {
    /// A duplicate of the connection's fd, owned by the reactor registration (readiness is a
    /// property of the shared open file description). Declared first: it deregisters before
    /// the connection's own fd closes.
    afd: AsyncFd<OwnedFd>,
    core: Core,
    /// Bytes of a frame written by a `send` that was then cancelled.
    cut_send: bool,
}

fn io_err(op: &'static str, core: &Core, e: io::Error) -> Error {
    Error::io(op, core.object(), e)
}

impl AsyncConnection {
    /// Make `conn` asynchronous. Must be called within a tokio runtime with IO enabled.
    ///
    /// # Errors
    /// [`Error::Io`] if the fd cannot be registered with the reactor.
    pub fn new(conn: Connection) -> Result<AsyncConnection> {
        let core = conn.core;
        let dup = core.fd.try_clone().map_err(|e| io_err("register", &core, e))?;
        // SAFETY: `dup` is an OwnedFd moved into the AsyncFd: it is a valid open fd, nothing
        // else can close or replace it, and `as_raw_fd` on it always returns the same number,
        // for as long as the AsyncFd lives (tokio's contract for `register`).
        let afd = unsafe { AsyncFd::register(dup) }
            .map_err(|e| io_err("register", &core, io::Error::other(e.to_string())))?;
        Ok(AsyncConnection { afd, core, cut_send: false })
    }

    /// A connected pair, like [`pipe`].
    ///
    /// # Errors
    /// As [`pipe`] and [`new`](Self::new).
    pub fn pair() -> Result<(AsyncConnection, AsyncConnection)> {
        let (a, b) = pipe()?;
        Ok((AsyncConnection::new(a)?, AsyncConnection::new(b)?))
    }

    /// Back to a blocking [`Connection`] (buffered bytes and state are kept).
    pub fn into_inner(self) -> Connection {
        let AsyncConnection { afd, core, .. } = self;
        drop(afd);
        Connection { core }
    }

    /// Send one message.
    ///
    /// # Errors
    /// As [`Connection::send`].
    pub async fn send(&mut self, data: &[u8]) -> Result<()> {
        let op = "send";
        if self.cut_send {
            self.core.poison(PoisonCause::Cancelled);
        }
        self.core.check(op)?;
        if data.len() > self.core.reader.max_message {
            return Err(Error::MessageTooLarge {
                op,
                object: self.core.object(),
                len: data.len() as u64,
                max: self.core.reader.max_message,
            });
        }
        let prefix = frame::encode_prefix(data.len());
        let mut storage = [IoSlice::new(prefix.as_slice()), IoSlice::new(data)];
        let mut iov = &mut storage[..];
        let total = prefix.as_slice().len().saturating_add(data.len());
        let mut written = 0usize;
        while written < total {
            let mut guard = self.afd.writable().await.map_err(|e| io_err(op, &self.core, e))?;
            let fd = self.core.fd.as_fd();
            match sys::send(fd, Kind::Socket, iov, &[], Wait::Nonblocking) {
                Ok(n) => {
                    written = written.saturating_add(n);
                    self.cut_send = written < total;
                    IoSlice::advance_slices(&mut iov, n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => guard.clear_ready(),
                Err(e) => {
                    self.cut_send = false;
                    if written > 0 {
                        self.core.poison(PoisonCause::PartialSend);
                    }
                    if matches!(
                        e.kind(),
                        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                    ) {
                        return Err(Error::Disconnected { op, object: self.core.object() });
                    }
                    return Err(io_err(op, &self.core, e));
                }
            }
        }
        self.cut_send = false;
        Ok(())
    }

    /// Receive one message.
    ///
    /// # Errors
    /// As [`Connection::recv`].
    pub async fn recv(&mut self) -> Result<Vec<u8>> {
        let op = "recv";
        self.core.check(op)?;
        loop {
            let fd = self.core.fd.as_fd();
            match self.core.reader.step(fd, Kind::Socket, Wait::Nonblocking) {
                Ok(at) => {
                    let (body, fds) = self.core.reader.take(at);
                    self.core.vet(op, &body, fds, FdPolicy::None)?;
                    return Ok(body);
                }
                Err(Fail::WouldBlock) => {
                    let mut guard =
                        self.afd.readable().await.map_err(|e| io_err(op, &self.core, e))?;
                    if !self.core.reader.has_frame() {
                        // Readiness may be stale: clear it only once a read would block.
                        let fd = self.core.fd.as_fd();
                        match self.core.reader.step(fd, Kind::Socket, Wait::Nonblocking) {
                            Ok(at) => {
                                let (body, fds) = self.core.reader.take(at);
                                self.core.vet(op, &body, fds, FdPolicy::None)?;
                                return Ok(body);
                            }
                            Err(Fail::WouldBlock) => guard.clear_ready(),
                            Err(other) => return Err(self.fail(op, other)),
                        }
                    }
                }
                Err(other) => return Err(self.fail(op, other)),
            }
        }
    }

    fn fail(&mut self, op: &'static str, f: Fail) -> Error {
        self.core.fail(op, f)
    }

    /// Set the largest message received or sent.
    pub fn set_max_message(&mut self, max: usize) {
        self.core.reader.max_message = max;
    }
}

impl AsFd for AsyncConnection {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.core.fd.as_fd()
    }
}

impl TryFrom<OwnedFd> for AsyncConnection {
    type Error = Error;

    fn try_from(fd: OwnedFd) -> Result<AsyncConnection> {
        AsyncConnection::new(Connection::from(fd))
    }
}
