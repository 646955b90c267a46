//! The receive engine shared by [`Connection`](crate::Connection), the simplex
//! [`Receiver`](crate::Receiver) and the async connection: a read buffer, the frame decoder,
//! large bodies read straight into their own allocation, and received fds matched to the
//! frame they came with.
//!
//! # Which frame do received fds belong to?
//! A sender puts a whole frame (prefix and body) in one `sendmsg` with the fds, and the kernel
//! attaches them to the first socket buffer of that frame. A stream `recvmsg` returns the fds
//! of the first buffer it touches that carries some and stops reading at the end of that
//! buffer, so the last byte of that read lies inside the frame the fds were sent with. Each
//! batch is therefore recorded at the stream offset of the last byte read with it, and handed
//! to the frame whose bytes cover that offset.
//!
//! # Bounds
//! A prefix above `max_message` is refused before anything is allocated for the body; a body
//! is grown as its bytes arrive (at most [`CHUNK`] ahead of them), so a peer that announces a
//! large frame and stalls pins at most one chunk beyond what it sent. In `exact` mode (before
//! authentication) no read goes past the end of the current frame.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::frame::{self, FrameError, Prefix};
use crate::sys::{self, Kind, Wait};

/// Size of the read buffer of a connection.
pub(crate) const RBUF: usize = 64 * 1024;
/// Bodies at least this long that are not yet fully buffered are read into their own
/// allocation, skipping the copy through the read buffer.
const DIRECT_MIN: usize = 16 * 1024;
/// A large body grows by at most this much ahead of the bytes received.
pub(crate) const CHUNK: usize = 1 << 20;

/// Default `max_message`: 64 MiB.
pub(crate) const DEFAULT_MAX_MESSAGE: usize = 64 << 20;
/// Default frame timeout: 30 s from the first byte of a frame to its last.
pub(crate) const DEFAULT_FRAME_TIMEOUT: Duration = Duration::from_secs(30);

struct Large {
    prefix_len: usize,
    len: usize,
    frame_start: u64,
}

struct FdBatch {
    at: u64,
    fds: Vec<OwnedFd>,
    truncated: bool,
}

/// Where a complete frame is, before it is taken.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Located {
    /// In the read buffer at `start..start + len`.
    Buffered { start: usize, len: usize, end_pos: u64 },
    /// In `Reader::body`.
    Body { end_pos: u64 },
}

/// Why a step failed.
#[derive(Debug)]
pub(crate) enum Fail {
    /// Nothing more can be read without blocking.
    WouldBlock,
    /// End of stream at a frame boundary.
    Disconnected,
    /// End of stream inside a frame.
    Eof { received: u64, expected: u64 },
    /// A bad prefix.
    Frame(FrameError),
    /// Any other OS error.
    Io(io::Error),
}

/// fds that came with one frame.
#[derive(Debug, Default)]
pub(crate) struct FrameFds {
    pub(crate) fds: Vec<OwnedFd>,
    pub(crate) truncated: bool,
}

pub(crate) struct Reader {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// Stream offset of `buf[start]` (or of the byte after a large frame's buffered part).
    pos: u64,
    large: Option<Large>,
    pub(crate) body: Vec<u8>,
    fds: VecDeque<FdBatch>,
    cmsg: sys::Cmsg,
    pub(crate) max_message: usize,
    /// Never read past the end of the current frame (pre-authentication).
    pub(crate) exact: bool,
    pub(crate) frame_timeout: Option<Duration>,
    partial_since: Option<Instant>,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("buffered", &(self.end - self.start))
            .field("large", &self.large.as_ref().map(|l| (l.len, self.body.len())))
            .field("pending_fd_batches", &self.fds.len())
            .field("max_message", &self.max_message)
            .finish_non_exhaustive()
    }
}

fn is_would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

/// A peer that died with our data unread in its queue makes our reads fail with
/// `ECONNRESET` instead of reading end of file: the same disconnection.
fn is_reset(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::ConnectionReset
}

impl Reader {
    pub(crate) fn new(kind: Kind) -> Reader {
        Reader {
            buf: Box::new([]),
            start: 0,
            end: 0,
            pos: 0,
            large: None,
            body: Vec::new(),
            fds: VecDeque::new(),
            cmsg: sys::Cmsg::new(kind == Kind::Socket),
            max_message: DEFAULT_MAX_MESSAGE,
            exact: false,
            frame_timeout: Some(DEFAULT_FRAME_TIMEOUT),
            partial_since: None,
        }
    }

    /// Whether some bytes of an unfinished frame have been read.
    pub(crate) fn has_partial(&self) -> bool {
        self.start < self.end || self.large.is_some()
    }

    /// Whether a complete frame is buffered (so `recv` would not wait).
    pub(crate) fn has_frame(&self) -> bool {
        if self.large.as_ref().is_some_and(|l| self.body.len() >= l.len) {
            return true;
        }
        let avail = self.buf.get(self.start..self.end).unwrap_or_default();
        match frame::decode_prefix(avail, self.max_message) {
            Ok(Prefix::Complete { prefix_len, body_len }) => {
                avail.len() >= prefix_len.saturating_add(body_len)
            }
            Ok(Prefix::Incomplete { .. }) => false,
            Err(_) => true, // recv reports it at once
        }
    }

    /// When the frame now partially read must be complete (`frame_timeout` after it was first
    /// seen incomplete); `None` when nothing is partial or there is no frame timeout.
    pub(crate) fn partial_deadline(&mut self) -> Option<Instant> {
        if !self.has_partial() {
            self.partial_since = None;
            return None;
        }
        let since = *self.partial_since.get_or_insert_with(Instant::now);
        self.frame_timeout.and_then(|t| since.checked_add(t))
    }

    /// Bytes of the current partial frame (for `UnexpectedEof` and diagnostics).
    fn partial_progress(&self) -> (u64, u64) {
        if let Some(l) = &self.large {
            let have = (l.prefix_len as u64).saturating_add(self.body.len() as u64);
            return (have, (l.prefix_len as u64).saturating_add(l.len as u64));
        }
        let avail = self.buf.get(self.start..self.end).unwrap_or_default();
        let expected = match frame::decode_prefix(avail, self.max_message) {
            Ok(Prefix::Complete { prefix_len, body_len }) => {
                (prefix_len as u64).saturating_add(body_len as u64)
            }
            Ok(Prefix::Incomplete { needed }) => needed as u64,
            Err(_) => avail.len() as u64,
        };
        (avail.len() as u64, expected)
    }

    fn ensure_buf(&mut self) {
        if self.buf.is_empty() {
            self.buf = vec![0u8; RBUF].into_boxed_slice();
        }
    }

    /// Advance until a complete frame is located, reading as needed with `wait`.
    pub(crate) fn step(
        &mut self,
        fd: BorrowedFd<'_>,
        kind: Kind,
        wait: Wait,
    ) -> Result<Located, Fail> {
        loop {
            if let Some(l) = &self.large {
                let need = l.len.saturating_sub(self.body.len());
                let end_pos =
                    l.frame_start.saturating_add(l.prefix_len as u64).saturating_add(l.len as u64);
                if need == 0 {
                    return Ok(Located::Body { end_pos });
                }
                let spare = self.body.capacity().saturating_sub(self.body.len());
                if spare < need.min(CHUNK) {
                    self.body.reserve(need.min(CHUNK));
                }
                match sys::recv_spare(fd, kind, &mut self.body, need, wait) {
                    Ok(0) => {
                        let (received, expected) = self.partial_progress();
                        return Err(Fail::Eof { received, expected });
                    }
                    Ok(_) => continue,
                    Err(e) if is_would_block(&e) => return Err(Fail::WouldBlock),
                    Err(e) if is_reset(&e) => {
                        let (received, expected) = self.partial_progress();
                        return Err(Fail::Eof { received, expected });
                    }
                    Err(e) => return Err(Fail::Io(e)),
                }
            }
            let avail = self.buf.get(self.start..self.end).unwrap_or_default();
            let want = match frame::decode_prefix(avail, self.max_message) {
                Err(e) => return Err(Fail::Frame(e)),
                Ok(Prefix::Complete { prefix_len, body_len }) => {
                    let total = prefix_len.saturating_add(body_len);
                    if avail.len() >= total {
                        return Ok(Located::Buffered {
                            start: self.start.saturating_add(prefix_len),
                            len: body_len,
                            end_pos: self.pos.saturating_add(total as u64),
                        });
                    }
                    if !self.exact && (body_len >= DIRECT_MIN || total > RBUF) {
                        // Read the rest straight into the body's own allocation.
                        self.body.clear();
                        let first = avail.get(prefix_len..).unwrap_or_default();
                        self.body.reserve_exact(body_len.min(CHUNK).max(first.len()));
                        self.body.extend_from_slice(first);
                        self.large =
                            Some(Large { prefix_len, len: body_len, frame_start: self.pos });
                        self.pos = self.pos.saturating_add(avail.len() as u64);
                        self.start = 0;
                        self.end = 0;
                        continue;
                    }
                    total
                }
                Ok(Prefix::Incomplete { needed }) => needed,
            };
            self.fill(fd, kind, wait, want)?;
        }
    }

    /// Read more into the buffer; `want` is the total the current frame (or its prefix) needs.
    fn fill(
        &mut self,
        fd: BorrowedFd<'_>,
        kind: Kind,
        wait: Wait,
        want: usize,
    ) -> Result<(), Fail> {
        self.ensure_buf();
        let have = self.end.saturating_sub(self.start);
        if have == 0 {
            self.start = 0;
            self.end = 0;
        } else if self.start > 0 && (self.end >= RBUF || self.start >= RBUF / 2) {
            self.buf.copy_within(self.start..self.end, 0);
            self.start = 0;
            self.end = have;
        }
        let room = RBUF.saturating_sub(self.end);
        // A frame that does not fit the buffer went the large way in `step`, so there is room.
        debug_assert!(room > 0, "read buffer full");
        let limit = if self.exact { want.saturating_sub(have).min(room) } else { room };
        let window = self.buf.get_mut(self.end..self.end.saturating_add(limit)).unwrap_or_default();
        let got = match kind {
            Kind::Socket => sys::recv_msg(fd, window, &mut self.cmsg, wait),
            Kind::Pipe => sys::pipe_read(fd, window).map(|n| sys::Received {
                n,
                fds: Vec::new(),
                truncated: false,
            }),
        };
        match got {
            Ok(r) => {
                let n = r.n.min(limit);
                if !r.fds.is_empty() || r.truncated {
                    // Stream offset of the last byte of this read (or of the next byte, for a
                    // read of 0 bytes that still carried fds: they go to the next frame).
                    let at = self
                        .pos
                        .saturating_add(have as u64)
                        .saturating_add(n as u64)
                        .saturating_sub(u64::from(n > 0));
                    self.fds.push_back(FdBatch { at, fds: r.fds, truncated: r.truncated });
                }
                if n == 0 {
                    if have == 0 {
                        return Err(Fail::Disconnected);
                    }
                    let (received, expected) = self.partial_progress();
                    return Err(Fail::Eof { received, expected });
                }
                self.end = self.end.saturating_add(n);
                Ok(())
            }
            Err(e) if is_would_block(&e) => Err(Fail::WouldBlock),
            Err(e) if is_reset(&e) => {
                if have == 0 {
                    Err(Fail::Disconnected)
                } else {
                    let (received, expected) = self.partial_progress();
                    Err(Fail::Eof { received, expected })
                }
            }
            Err(e) => Err(Fail::Io(e)),
        }
    }

    /// The common case of a blocking receive, in one read: nothing buffered, no fds pending,
    /// and the read brings one whole frame (or more) without fds. `None`: take the general
    /// path (the read, if any, is in the buffer and accounted for).
    pub(crate) fn fast_into(
        &mut self,
        fd: BorrowedFd<'_>,
        kind: Kind,
        out: &mut Vec<u8>,
    ) -> Option<Result<usize, Fail>> {
        if self.start != self.end || self.large.is_some() || self.exact || !self.fds.is_empty() {
            return None;
        }
        if let Err(f) = self.fill(fd, kind, Wait::Block, frame::SHORT_PREFIX) {
            return Some(Err(f));
        }
        if !self.fds.is_empty() {
            return None;
        }
        let avail = self.buf.get(self.start..self.end).unwrap_or_default();
        let Ok(Prefix::Complete { prefix_len, body_len }) =
            frame::decode_prefix(avail, self.max_message)
        else {
            return None;
        };
        let total = prefix_len.saturating_add(body_len);
        let body = avail.get(prefix_len..total)?;
        out.clear();
        out.extend_from_slice(body);
        self.start = self.start.saturating_add(total);
        self.pos = self.pos.saturating_add(total as u64);
        Some(Ok(body_len))
    }

    /// Take the located frame: its body goes into `out` (replacing its contents; a large body
    /// is swapped in, and `out`'s old allocation becomes the next body's), with its fds.
    pub(crate) fn take_into(&mut self, at: Located, out: &mut Vec<u8>) -> FrameFds {
        let end_pos = match at {
            Located::Buffered { start, len, end_pos } => {
                out.clear();
                out.extend_from_slice(
                    self.buf.get(start..start.saturating_add(len)).unwrap_or_default(),
                );
                self.start = start.saturating_add(len);
                end_pos
            }
            Located::Body { end_pos } => {
                std::mem::swap(out, &mut self.body);
                self.body.clear();
                self.large = None;
                end_pos
            }
        };
        self.finish(end_pos)
    }

    /// Take the located frame as a new vector.
    pub(crate) fn take(&mut self, at: Located) -> (Vec<u8>, FrameFds) {
        match at {
            Located::Buffered { start, len, end_pos } => {
                let v = self.buf.get(start..start.saturating_add(len)).unwrap_or_default().to_vec();
                self.start = start.saturating_add(len);
                (v, self.finish(end_pos))
            }
            Located::Body { end_pos } => {
                let v = std::mem::take(&mut self.body);
                self.large = None;
                (v, self.finish(end_pos))
            }
        }
    }

    fn finish(&mut self, end_pos: u64) -> FrameFds {
        self.pos = end_pos;
        self.partial_since = None;
        let mut out = FrameFds::default();
        while self.fds.front().is_some_and(|b| b.at < end_pos) {
            if let Some(b) = self.fds.pop_front() {
                out.fds.extend(b.fds);
                out.truncated |= b.truncated;
            }
        }
        out
    }

    /// Drop everything buffered and every pending fd (after the connection is poisoned).
    pub(crate) fn discard(&mut self) {
        self.start = 0;
        self.end = 0;
        self.large = None;
        self.body = Vec::new();
        self.fds.clear();
    }
}
