//! The framed-stream core behind [`Connection`](crate::Connection),
//! [`Sender`](crate::Sender) and [`Receiver`](crate::Receiver): sends with deadlines, receives
//! through the [`Reader`], fd checks and poisoning.

use std::io::{self, IoSlice};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::event::PollFlags;

use crate::error::{Error, PoisonCause, Result};
use crate::frame::{self, FrameError};
use crate::reader::{Fail, FrameFds, Located, Reader};
use crate::sys::{self, Kind, Wait};

/// How long an operation may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    /// As long as it takes (a started frame is still bound by the frame timeout).
    Block,
    /// Until this instant.
    Until(Instant),
    /// Not at all (`try_` forms).
    Now,
}

impl Limit {
    pub(crate) fn after(timeout: Duration) -> Limit {
        match sys::deadline_after(timeout) {
            Some(d) => Limit::Until(d),
            None => Limit::Block,
        }
    }
}

/// What the receiving call accepts in the way of fds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FdPolicy {
    /// None: any fds are closed and the message is an error.
    None,
    /// Up to this many.
    UpTo(usize),
}

pub(crate) struct Core {
    pub(crate) fd: OwnedFd,
    pub(crate) kind: Kind,
    pub(crate) reader: Reader,
    pub(crate) label: Arc<str>,
    pub(crate) poisoned: Option<PoisonCause>,
    /// A client without an authkey: the first frame must not be a `#CHALLENGE#`.
    pub(crate) challenge_check: bool,
    /// A TCP connection: no fds, no peer credentials.
    pub(crate) tcp: bool,
    /// The memory budget of `recv_pickle`.
    #[cfg(feature = "pickle")]
    pub(crate) pickle_limit: crate::pickle_guard::PickleLimit,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("object", &self.label)
            .field("fd", &self.fd)
            .field("poisoned", &self.poisoned)
            .field("reader", &self.reader)
            .finish_non_exhaustive()
    }
}

/// Messages up to this many bytes are copied behind their prefix and sent in one piece.
const SMALL: usize = sys::SMALL_BODY;

fn is_disconnect(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset)
}

impl Core {
    pub(crate) fn new(fd: OwnedFd, kind: Kind, label: impl Into<Arc<str>>) -> Core {
        Core {
            fd,
            kind,
            reader: Reader::new(kind),
            label: label.into(),
            poisoned: None,
            challenge_check: false,
            tcp: false,
            #[cfg(feature = "pickle")]
            pickle_limit: crate::pickle_guard::PickleLimit::default(),
        }
    }

    pub(crate) fn object(&self) -> String {
        self.label.to_string()
    }

    pub(crate) fn check(&self, op: &'static str) -> Result<()> {
        match self.poisoned {
            Some(cause) => Err(Error::Poisoned { op, object: self.object(), cause }),
            None => Ok(()),
        }
    }

    pub(crate) fn poison(&mut self, cause: PoisonCause) {
        self.poisoned = Some(cause);
        self.reader.discard();
    }

    fn frame_error(&mut self, op: &'static str, e: FrameError) -> Error {
        self.poison(PoisonCause::BadFrame(e));
        match e {
            FrameError::TooLarge { len, max } => {
                Error::MessageTooLarge { op, object: self.object(), len, max }
            }
            other => Error::BadFrame { op, object: self.object(), reason: other },
        }
    }

    /// The error for a failed receive step (poisoning where the stream is broken).
    #[cold]
    pub(crate) fn fail(&mut self, op: &'static str, f: Fail) -> Error {
        match f {
            Fail::WouldBlock => Error::Timeout { op, object: self.object(), partial: false },
            Fail::Disconnected => Error::Disconnected { op, object: self.object() },
            Fail::Eof { received, expected } => {
                self.poison(PoisonCause::Truncated);
                Error::UnexpectedEof { op, object: self.object(), received, expected }
            }
            Fail::Frame(e) => self.frame_error(op, e),
            Fail::Fds(count) => {
                self.poison(PoisonCause::UnexpectedFds);
                Error::UnexpectedFds { op, object: self.object(), count }
            }
            Fail::Io(e) => Error::io(op, self.object(), e),
        }
    }

    /// Locate the next complete frame. `Ok(None)` only for [`Limit::Now`] with nothing ready.
    pub(crate) fn locate(&mut self, op: &'static str, limit: Limit) -> Result<Option<Located>> {
        self.check(op)?;
        loop {
            let partial = self.reader.partial_deadline();
            let (mut wait, deadline) = match (limit, partial) {
                (Limit::Block, None) => (Wait::Block, None),
                (Limit::Block, Some(p)) => (Wait::Nonblocking, Some(p)),
                (Limit::Until(d), p) => (Wait::Nonblocking, Some(p.map_or(d, |p| p.min(d)))),
                (Limit::Now, _) => (Wait::Nonblocking, None),
            };
            if self.kind == Kind::Pipe {
                // A receiving pipe end is O_NONBLOCK (reads into uninitialised memory cannot
                // use per-call RWF_NOWAIT): reads never block, waiting is `poll`.
                wait = Wait::Nonblocking;
            }
            match self.reader.step(self.fd.as_fd(), self.kind, wait) {
                Ok(at) => return Ok(Some(at)),
                Err(Fail::WouldBlock) => {
                    if limit == Limit::Now {
                        return Ok(None);
                    }
                    let ev = sys::poll(self.fd.as_fd(), PollFlags::IN, deadline)
                        .map_err(|e| Error::io(op, self.object(), e))?;
                    if ev.is_empty() {
                        return Err(Error::Timeout {
                            op,
                            object: self.object(),
                            partial: self.reader.has_partial(),
                        });
                    }
                }
                Err(f) => return Err(self.fail(op, f)),
            }
        }
    }

    /// Check a taken frame's fds and the keyless client's challenge rule.
    pub(crate) fn vet(
        &mut self,
        op: &'static str,
        body: &[u8],
        fds: FrameFds,
        policy: FdPolicy,
    ) -> Result<Vec<OwnedFd>> {
        if fds.discarded {
            // fds where none were accepted: the kernel closed them; the peer broke the rules.
            drop(fds);
            self.poison(PoisonCause::UnexpectedFds);
            return Err(Error::UnexpectedFds { op, object: self.object(), count: None });
        }
        if fds.truncated {
            let received = fds.fds.len();
            drop(fds);
            return Err(Error::FdsTruncated { op, object: self.object(), received });
        }
        let allowed = match policy {
            FdPolicy::None => 0,
            FdPolicy::UpTo(n) => n,
        };
        if fds.fds.len() > allowed {
            let count = fds.fds.len();
            drop(fds);
            return Err(Error::UnexpectedFds { op, object: self.object(), count: Some(count) });
        }
        if self.challenge_check {
            self.challenge_check = false;
            if body.starts_with(crate::auth::CHALLENGE) {
                self.poison(PoisonCause::Handshake);
                return Err(Error::AuthRequired { op, object: self.object() });
            }
        }
        Ok(fds.fds)
    }

    /// Whether a receive may try [`Reader::fast_into`] first: a blocking receive on a healthy
    /// socket whose first frame needs no checking.
    fn fast_ok(&self, limit: Limit) -> bool {
        limit == Limit::Block
            && self.kind == Kind::Socket
            && self.poisoned.is_none()
            && !self.challenge_check
    }

    /// Receive one message as a new vector.
    pub(crate) fn recv(
        &mut self,
        op: &'static str,
        limit: Limit,
        policy: FdPolicy,
    ) -> Result<Option<(Vec<u8>, Vec<OwnedFd>)>> {
        self.reader.accept_fds = match policy {
            _ if self.tcp => 0,
            FdPolicy::None => 0,
            FdPolicy::UpTo(n) => n,
        };
        if self.fast_ok(limit) {
            let mut body = Vec::new();
            match self.reader.fast_into(self.fd.as_fd(), &mut body) {
                Some(Ok(_)) => return Ok(Some((body, Vec::new()))),
                Some(Err(f)) => return Err(self.fail(op, f)),
                None => {}
            }
        }
        let Some(at) = self.locate(op, limit)? else { return Ok(None) };
        let (body, fds) = self.reader.take(at);
        let fds = self.vet(op, &body, fds, policy)?;
        Ok(Some((body, fds)))
    }

    /// Receive one message into `out` (its old contents are replaced; its allocation reused).
    #[inline]
    pub(crate) fn recv_into(
        &mut self,
        op: &'static str,
        limit: Limit,
        out: &mut Vec<u8>,
    ) -> Result<Option<usize>> {
        self.reader.accept_fds = 0;
        if self.fast_ok(limit) {
            match self.reader.fast_into(self.fd.as_fd(), out) {
                Some(Ok(n)) => return Ok(Some(n)),
                Some(Err(f)) => return Err(self.fail(op, f)),
                None => {}
            }
        }
        self.recv_into_general(op, limit, out)
    }

    #[inline(never)]
    fn recv_into_general(
        &mut self,
        op: &'static str,
        limit: Limit,
        out: &mut Vec<u8>,
    ) -> Result<Option<usize>> {
        let Some(at) = self.locate(op, limit)? else { return Ok(None) };
        let fds = self.reader.take_into(at, out);
        self.vet(op, out, fds, FdPolicy::None)?;
        Ok(Some(out.len()))
    }

    /// Whether a message (or the end of the stream) is ready, waiting at most `timeout`.
    pub(crate) fn poll(&mut self, op: &'static str, timeout: Option<Duration>) -> Result<bool> {
        self.check(op)?;
        if self.reader.has_frame() {
            return Ok(true);
        }
        // A timeout too large to represent waits forever.
        let deadline = timeout.and_then(sys::deadline_after);
        let ev = sys::poll(self.fd.as_fd(), PollFlags::IN, deadline)
            .map_err(|e| Error::io(op, self.object(), e))?;
        Ok(!ev.is_empty())
    }

    /// Send one message, blocking: the hot path of `send`.
    pub(crate) fn send_one(&mut self, op: &'static str, data: &[u8]) -> Result<()> {
        if self.poisoned.is_none() && data.len() <= SMALL.min(self.reader.max_message) {
            // One small message on a healthy connection: prefix and body joined on the
            // stack, one write.
            return match sys::send_small(self.fd.as_fd(), self.kind, data) {
                Ok(n) if n == data.len().saturating_add(frame::SHORT_PREFIX) => Ok(()),
                Ok(n) => {
                    // Cut short (a signal): the rest as the general path writes it.
                    let prefix = frame::encode_prefix(data.len());
                    let mut iov = [IoSlice::new(prefix.as_slice()), IoSlice::new(data)];
                    let total = data.len().saturating_add(prefix.as_slice().len());
                    let mut rest = &mut iov[..];
                    IoSlice::advance_slices(&mut rest, n);
                    self.write_all(op, rest, total, n, &[], Limit::Block, false)
                }
                Err(e) => self.write_error(op, e, false),
            };
        }
        self.send(op, &[IoSlice::new(data)], &[], Limit::Block)
    }

    /// Send one frame made of `parts`, with `fds` attached to its first bytes.
    pub(crate) fn send(
        &mut self,
        op: &'static str,
        parts: &[IoSlice<'_>],
        fds: &[BorrowedFd<'_>],
        limit: Limit,
    ) -> Result<()> {
        self.check(op)?;
        let total = parts.iter().fold(0usize, |a, p| a.saturating_add(p.len()));
        if total > self.reader.max_message {
            return Err(Error::MessageTooLarge {
                op,
                object: self.object(),
                len: total as u64,
                max: self.reader.max_message,
            });
        }
        if self.tcp && !fds.is_empty() {
            return Err(Error::Unsupported {
                op,
                object: self.object(),
                reason: "file descriptors pass only over local (Unix) sockets, not TCP",
            });
        }
        if fds.len() > sys::MAX_FDS {
            return Err(Error::TooManyFds {
                op,
                object: self.object(),
                count: fds.len(),
                max: sys::MAX_FDS,
            });
        }
        let prefix = frame::encode_prefix(total);
        let frame_len = total.saturating_add(prefix.as_slice().len());
        // A small frame goes out as one contiguous buffer (see `sys::send_joined`).
        let join = frame_len <= sys::JOIN_MAX;
        let mut small: [IoSlice<'_>; 3];
        let mut big: Vec<IoSlice<'_>>;
        let iov: &mut [IoSlice<'_>] = match parts {
            [one] => {
                small = [IoSlice::new(prefix.as_slice()), *one, IoSlice::new(&[])];
                &mut small[..2]
            }
            [a, b] => {
                small = [IoSlice::new(prefix.as_slice()), *a, *b];
                &mut small[..]
            }
            _ if parts.len() < 1024 => {
                big = Vec::with_capacity(parts.len() + 1);
                big.push(IoSlice::new(prefix.as_slice()));
                big.extend_from_slice(parts);
                &mut big[..]
            }
            _ => {
                // More slices than one sendmsg takes (IOV_MAX): join them.
                let joined: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
                return self.send(op, &[IoSlice::new(&joined)], fds, limit);
            }
        };
        self.write_all(op, iov, frame_len, 0, fds, limit, join)
    }

    /// The error for a failed write; a frame cut after `partial` bytes poisons.
    fn write_error(&mut self, op: &'static str, e: io::Error, partial: bool) -> Result<()> {
        if partial {
            self.poison(PoisonCause::PartialSend);
        }
        if is_disconnect(&e) {
            Err(Error::Disconnected { op, object: self.object() })
        } else {
            Err(Error::io(op, self.object(), e))
        }
    }

    /// Write the `total` bytes of one frame described by `iov`, with `fds` on its first
    /// bytes; `join`: the frame is at most [`sys::JOIN_MAX`] bytes and its first write goes
    /// out as one contiguous buffer.
    #[allow(clippy::too_many_arguments)] // one private loop; a struct would only rename them
    fn write_all(
        &mut self,
        op: &'static str,
        mut iov: &mut [IoSlice<'_>],
        total: usize,
        already: usize,
        mut fds: &[BorrowedFd<'_>],
        limit: Limit,
        join: bool,
    ) -> Result<()> {
        // `iov` holds the frame's bytes after the first `already` of its `total`.
        let mut written = already;
        // A `try_` send that got a frame started finishes it within the frame timeout rather
        // than leaving half a frame behind.
        let mut limit = limit;
        loop {
            let wait = if limit == Limit::Block { Wait::Block } else { Wait::Nonblocking };
            let sent = if join && written == 0 {
                sys::send_joined(self.fd.as_fd(), self.kind, &[], iov, fds, wait)
            } else {
                sys::send(self.fd.as_fd(), self.kind, iov, fds, wait)
            };
            match sent {
                Ok(n) => {
                    written = written.saturating_add(n);
                    if written >= total {
                        return Ok(());
                    }
                    if n > 0 {
                        fds = &[];
                    }
                    IoSlice::advance_slices(&mut iov, n);
                    if limit == Limit::Now {
                        limit = match self.reader.frame_timeout {
                            Some(t) => Limit::after(t),
                            None => Limit::Block,
                        };
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let deadline = match limit {
                        Limit::Until(d) => Some(d),
                        Limit::Now => {
                            return Err(Error::Timeout {
                                op,
                                object: self.object(),
                                partial: false,
                            });
                        }
                        Limit::Block => None,
                    };
                    let ev = sys::poll(self.fd.as_fd(), PollFlags::OUT, deadline)
                        .map_err(|e| Error::io(op, self.object(), e))?;
                    if ev.is_empty() {
                        let partial = written > 0;
                        if partial {
                            self.poison(PoisonCause::PartialSend);
                        }
                        return Err(Error::Timeout { op, object: self.object(), partial });
                    }
                }
                Err(e) => return self.write_error(op, e, written > 0),
            }
        }
    }
}
