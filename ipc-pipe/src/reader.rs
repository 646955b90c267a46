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
//! is grown exactly as its bytes arrive (by [`CHUNK`] or a quarter of what it holds, never
//! past the frame's length), so a peer that announces a large frame and stalls pins at most
//! a chunk or a quarter beyond what it sent, and never more than the frame. In `exact` mode
//! (before authentication) no read goes past the end of the current frame.

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
/// A receive into a vector with room for at least this many bytes reads the body straight
/// into it (see [`Reader::fast_into`]).
const DIRECT_OUT: usize = 4096;
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
    /// fds came with a read that offered no room for them (the kernel closed them).
    discarded: bool,
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
    /// fds arrived with the current frame where the receive accepts none (`None`: the kernel
    /// discarded them uncounted), or beyond what it accepts by more than one batch.
    Fds(Option<usize>),
    /// Any other OS error.
    Io(io::Error),
}

/// fds that came with one frame.
#[derive(Debug, Default)]
pub(crate) struct FrameFds {
    pub(crate) fds: Vec<OwnedFd>,
    pub(crate) truncated: bool,
    pub(crate) discarded: bool,
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
    /// How many fds the receive in progress accepts: 0 offers the kernel no control buffer
    /// (so fds a peer attaches are never installed), more offers room for one batch per read.
    pub(crate) accept_fds: usize,
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
            accept_fds: 0,
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
            if !self.fds.is_empty() {
                self.check_fds()?;
            }
            if let Some(l) = &self.large {
                let need = l.len.saturating_sub(self.body.len());
                let end_pos =
                    l.frame_start.saturating_add(l.prefix_len as u64).saturating_add(l.len as u64);
                if need == 0 {
                    return Ok(Located::Body { end_pos });
                }
                let spare = self.body.capacity().saturating_sub(self.body.len());
                if spare < need.min(CHUNK) {
                    // Exactly: never past the frame's length (`reserve` would double, up to
                    // twice `max_message` for a stalled frame), by a chunk or a quarter of
                    // what is held (so a long body is copied a bounded number of times).
                    let step = CHUNK.max(self.body.len() / 4).min(need);
                    self.body.reserve_exact(step.saturating_sub(spare));
                }
                match sys::recv_spare(fd, kind, &mut self.body, need, wait, &mut self.cmsg) {
                    Ok(0) => {
                        let (received, expected) = self.partial_progress();
                        return Err(Fail::Eof { received, expected });
                    }
                    Ok(n) => {
                        if self.cmsg.pending() {
                            // fds in the middle of a frame: only a misbehaving peer sends them.
                            drop(self.cmsg.take());
                            return Err(Fail::Fds(None));
                        }
                        let _ = n;
                        continue;
                    }
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

    /// Where the current frame ends in the stream, when its prefix has been read.
    fn current_frame_end(&self) -> Option<u64> {
        if let Some(l) = &self.large {
            let len = (l.prefix_len as u64).saturating_add(l.len as u64);
            return Some(l.frame_start.saturating_add(len));
        }
        let avail = self.buf.get(self.start..self.end).unwrap_or_default();
        match frame::decode_prefix(avail, self.max_message) {
            Ok(Prefix::Complete { prefix_len, body_len }) => {
                Some(self.pos.saturating_add(prefix_len as u64).saturating_add(body_len as u64))
            }
            _ => None,
        }
    }

    /// The fd rules, checked as batches arrive rather than when the frame is complete: fds
    /// that came with the current frame where the receive accepts none fail it now (the first
    /// unexpected batch, before any more is read), and so do more fds pending than the
    /// receive accepts plus one batch (a peer attaching a batch to every byte).
    fn check_fds(&mut self) -> Result<(), Fail> {
        let end = self.current_frame_end();
        let in_frame = |b: &FdBatch| end.is_none_or(|e| b.at < e);
        if self.fds.iter().any(|b| b.discarded && in_frame(b)) {
            return Err(Fail::Fds(None));
        }
        let pending = self.fds.iter().fold(0usize, |n, b| n.saturating_add(b.fds.len()));
        if pending > self.accept_fds.saturating_add(sys::MAX_FDS) {
            return Err(Fail::Fds(Some(pending)));
        }
        Ok(())
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
            Kind::Socket => sys::recv_msg(fd, window, &mut self.cmsg, wait, self.accept_fds > 0),
            Kind::Pipe => sys::pipe_read(fd, window),
        };
        match got {
            Ok(n) => {
                let n = n.min(limit);
                if self.cmsg.pending() {
                    let (fds, truncated, discarded) = self.cmsg.take();
                    // Stream offset of the last byte of this read (or of the next byte, for a
                    // read of 0 bytes that still carried fds: they go to the next frame).
                    let at = self
                        .pos
                        .saturating_add(have as u64)
                        .saturating_add(n as u64)
                        .saturating_sub(u64::from(n > 0));
                    self.fds.push_back(FdBatch { at, fds, truncated, discarded });
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

    /// The common case of a blocking receive on a socket, in one read: nothing buffered, no
    /// fds pending, and the read brings one whole frame (or more) without fds. `None`: take
    /// the general path (whatever was read is in the buffer or the large body, accounted
    /// for, with any fds recorded against it).
    ///
    /// An `out` with room for at least [`DIRECT_OUT`] bytes receives the body straight into
    /// its allocation (prefix and body in one `recvmsg` with two iovecs, no copy); a smaller
    /// one gets the read buffer's copy.
    pub(crate) fn fast_into(
        &mut self,
        fd: BorrowedFd<'_>,
        out: &mut Vec<u8>,
    ) -> Option<Result<usize, Fail>> {
        if self.start != self.end || self.large.is_some() || self.exact || !self.fds.is_empty() {
            return None;
        }
        if out.capacity() >= DIRECT_OUT {
            return self.direct_into(fd, out);
        }
        self.ensure_buf();
        self.start = 0;
        self.end = 0;
        let offer = self.accept_fds > 0;
        let n = match sys::recv_msg(fd, &mut self.buf, &mut self.cmsg, Wait::Block, offer) {
            Ok(n) => n.min(self.buf.len()),
            Err(e) => return Some(Err(Self::first_read_failed(e))),
        };
        if n == 0 {
            drop(self.cmsg.take());
            return Some(Err(Fail::Disconnected));
        }
        self.end = n;
        if self.cmsg.pending() {
            self.record_fds(n);
            return None;
        }
        let avail = self.buf.get(..n).unwrap_or_default();
        let Ok(Prefix::Complete { prefix_len, body_len }) =
            frame::decode_prefix(avail, self.max_message)
        else {
            return None;
        };
        let total = prefix_len.saturating_add(body_len);
        let body = avail.get(prefix_len..total)?;
        out.clear();
        out.extend_from_slice(body);
        self.start = total;
        self.pos = self.pos.saturating_add(total as u64);
        Some(Ok(body_len))
    }

    /// A failed first read of a frame: nothing of it was read.
    fn first_read_failed(e: io::Error) -> Fail {
        if is_would_block(&e) {
            Fail::WouldBlock
        } else if is_reset(&e) {
            Fail::Disconnected
        } else {
            Fail::Io(e)
        }
    }

    /// Record the fds (or truncation) of a read of `n > 0` bytes that began at `self.pos`.
    #[cold]
    fn record_fds(&mut self, n: usize) {
        let (fds, truncated, discarded) = self.cmsg.take();
        // Stream offset of the last byte of the read (see the module docs).
        let at = self.pos.saturating_add(n as u64).saturating_sub(1);
        self.fds.push_back(FdBatch { at, fds, truncated, discarded });
    }

    /// [`fast_into`](Self::fast_into) reading the body straight into `out`'s allocation.
    fn direct_into(
        &mut self,
        fd: BorrowedFd<'_>,
        out: &mut Vec<u8>,
    ) -> Option<Result<usize, Fail>> {
        out.clear();
        let mut head = [0u8; frame::SHORT_PREFIX];
        // At most a read buffer's worth: bytes past the frame must fit the read buffer.
        let offer = self.accept_fds > 0;
        let n =
            match sys::recv_msg_spare(fd, &mut head, out, RBUF, &mut self.cmsg, Wait::Block, offer)
            {
                Ok(n) => n,
                Err(e) => return Some(Err(Self::first_read_failed(e))),
            };
        if n == 0 {
            drop(self.cmsg.take());
            return Some(Err(Fail::Disconnected));
        }
        let control = self.cmsg.pending();
        let frame_start = self.pos;
        if control {
            self.record_fds(n);
        }
        let (prefix_len, body_len) = match frame::decode_prefix(&head, self.max_message) {
            _ if n < frame::SHORT_PREFIX => {
                // Not even the prefix: to the read buffer, as `fill` would have it.
                self.buffer_read(head.get(..n).unwrap_or_default(), out);
                return None;
            }
            Err(e) => return Some(Err(Fail::Frame(e))),
            Ok(Prefix::Complete { prefix_len, body_len }) => (prefix_len, body_len),
            Ok(Prefix::Incomplete { .. }) => {
                // The long form: its 8 length bytes came first in `out`.
                let mut long = [0u8; frame::LONG_PREFIX];
                let (a, b) = long.split_at_mut(frame::SHORT_PREFIX);
                a.copy_from_slice(&head);
                let Some(len_bytes) = out.get(..frame::LONG_PREFIX - frame::SHORT_PREFIX) else {
                    self.buffer_read(&head, out);
                    return None;
                };
                b.copy_from_slice(len_bytes);
                match frame::decode_prefix(&long, self.max_message) {
                    Err(e) => return Some(Err(Fail::Frame(e))),
                    Ok(Prefix::Complete { prefix_len, body_len }) => {
                        out.drain(..frame::LONG_PREFIX - frame::SHORT_PREFIX);
                        (prefix_len, body_len)
                    }
                    Ok(Prefix::Incomplete { .. }) => {
                        self.buffer_read(&head, out);
                        return None;
                    }
                }
            }
        };
        if out.len() > body_len {
            // Bytes of the next frames (at most RBUF of them): to the read buffer.
            self.ensure_buf();
            let extra = out.get(body_len..).unwrap_or_default();
            let Some(dst) = self.buf.get_mut(..extra.len()) else {
                // Cannot happen (the read took at most RBUF bytes); refuse rather than drop.
                return Some(Err(Fail::Io(io::Error::other("read past the read buffer"))));
            };
            dst.copy_from_slice(extra);
            self.start = 0;
            self.end = extra.len();
            out.truncate(body_len);
        }
        let frame_end =
            frame_start.saturating_add(prefix_len as u64).saturating_add(body_len as u64);
        if out.len() == body_len && !control {
            self.pos = frame_end;
            return Some(Ok(body_len));
        }
        // A partial frame, or one that came with fds to vet: the general path takes it on
        // as a large body (complete or not), read on straight into this allocation.
        std::mem::swap(&mut self.body, out);
        out.clear();
        self.pos =
            frame_start.saturating_add(prefix_len as u64).saturating_add(self.body.len() as u64);
        self.large = Some(Large { prefix_len, len: body_len, frame_start });
        None
    }

    /// Put a read that ended inside a prefix (`head`, then the bytes in `out`) in the read
    /// buffer, where the general path continues it.
    fn buffer_read(&mut self, head: &[u8], out: &mut Vec<u8>) {
        self.ensure_buf();
        let mut end = 0usize;
        for part in [head, out.as_slice()] {
            let at = end;
            end = end.saturating_add(part.len());
            if let Some(dst) = self.buf.get_mut(at..end) {
                dst.copy_from_slice(part);
            }
        }
        self.start = 0;
        self.end = end;
        out.clear();
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
                out.discarded |= b.discarded;
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
