//! The only place that calls the OS: thin wrappers over rustix for sockets, pipes, fd passing,
//! poll and credentials. Every wrapper retries `EINTR`; non-blocking forms use per-call flags
//! (`MSG_DONTWAIT`, `RWF_NOWAIT`) so the fd itself stays blocking and the plain blocking calls
//! cost exactly one syscall.
#![allow(unsafe_code)] // recvmsg + CMSG parsing, Vec::set_len after a read into spare capacity, a stack buffer joining a small frame, getsockopt(SO_PEERCRED)

use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};
use rustix::io::{Errno, ReadWriteFlags};
use rustix::net::{
    AddressFamily, SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};

/// Whether a call may block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Block until some progress (one syscall).
    Block,
    /// Return `WouldBlock` instead of blocking.
    Nonblocking,
}

/// What the fd is: the calls differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A connected `AF_UNIX` stream socket (socketpair, listener, client).
    Socket,
    /// One end of a pipe.
    Pipe,
}

/// The most fds one message may carry (the kernel's `SCM_MAX_FD`).
pub(crate) const MAX_FDS: usize = 253;

/// Bytes of control buffer that hold [`MAX_FDS`] fds.
pub(crate) const CMSG_SPACE: usize = rustix::cmsg_space!(ScmRights(MAX_FDS));

fn retry<T>(mut f: impl FnMut() -> Result<T, Errno>) -> io::Result<T> {
    loop {
        match f() {
            Err(Errno::INTR) => {}
            other => return other.map_err(io::Error::from),
        }
    }
}

/// `socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC)`.
pub(crate) fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    retry(|| {
        rustix::net::socketpair(AddressFamily::UNIX, SocketType::STREAM, SocketFlags::CLOEXEC, None)
    })
}

/// `pipe2(O_CLOEXEC)`: (read end, write end).
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    retry(|| rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC))
}

/// Raise a pipe's buffer (`F_SETPIPE_SZ`), as far as `/proc/sys/fs/pipe-max-size` allows an
/// unprivileged process; best effort, the size obtained is returned.
pub(crate) fn grow_pipe(fd: BorrowedFd<'_>, want: usize) -> usize {
    let mut size = want;
    while size >= 65536 {
        if let Ok(got) = rustix::pipe::fcntl_setpipe_size(fd, size) {
            return got;
        }
        size /= 2;
    }
    rustix::pipe::fcntl_getpipe_size(fd).unwrap_or(65536)
}

/// A control-message buffer for [`recv_msg`], aligned for `cmsghdr`, holding [`MAX_FDS`] fds,
/// and what the last read left in it: fds not yet taken (closed if dropped or read over).
///
/// A read that accepts no fds offers no control buffer at all: the kernel then closes any
/// fds that came with the bytes read, never installing them in our fd table, and says so
/// with `MSG_CTRUNC` (noted as `discarded`, returned by [`take`](Self::take)).
#[derive(Debug)]
pub(crate) struct Cmsg {
    words: Box<[u64]>,
    /// Bytes of control data the last read left in `words`.
    len: usize,
    /// The last read came with `MSG_CTRUNC`.
    truncated: bool,
    /// The last read offered no control buffer and fds came with its bytes (closed by the
    /// kernel).
    discarded: bool,
}

impl Cmsg {
    pub(crate) fn new(with_room: bool) -> Cmsg {
        let words = if with_room { CMSG_SPACE.div_ceil(8) } else { 0 };
        Cmsg {
            words: vec![0u64; words].into_boxed_slice(),
            len: 0,
            truncated: false,
            discarded: false,
        }
    }

    /// Whether the last read brought fds or had its control data cut (to [`take`](Self::take)).
    pub(crate) fn pending(&self) -> bool {
        self.len > 0 || self.truncated || self.discarded
    }

    /// The fds of the last read (now owned by the caller), whether its control data was
    /// cut (`MSG_CTRUNC` with a buffer offered), and whether fds came with a read that offered
    /// none (closed by the kernel).
    #[cold]
    pub(crate) fn take(&mut self) -> (Vec<OwnedFd>, bool, bool) {
        let mut fds = Vec::new();
        if self.len > 0 {
            // SAFETY: `msghdr` is plain data; all-zero is a valid value.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_control = self.words.as_mut_ptr().cast();
            msg.msg_controllen = self.len.min(std::mem::size_of_val(&*self.words));
            take_fds(&msg, &mut fds);
        }
        let (truncated, discarded) = (self.truncated, self.discarded);
        self.len = 0;
        self.truncated = false;
        self.discarded = false;
        (fds, truncated, discarded)
    }
}

impl Drop for Cmsg {
    fn drop(&mut self) {
        if self.pending() {
            drop(self.take());
        }
    }
}

/// `recvmsg` into `buf`, offering `cmsg` for `SCM_RIGHTS` fds (`MSG_CMSG_CLOEXEC`) when
/// `offer` (else no control buffer: see [`Cmsg`]); returns the bytes read, and any fds wait
/// in `cmsg` ([`Cmsg::take`]). libc directly: rustix's `recvmsg` also fetches and decodes a
/// peer address and walks its ancillary buffer twice, a measurable cost on the hot path of
/// every message; here the control data is looked at only when the kernel put some there.
pub(crate) fn recv_msg(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    cmsg: &mut Cmsg,
    wait: Wait,
    offer: bool,
) -> io::Result<usize> {
    let mut iov = [libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() }];
    // SAFETY: the iovec covers `buf`, writable and exclusively borrowed for the call.
    unsafe { recv_iov(fd, &mut iov, cmsg, wait, offer) }
}

/// `recvmsg` into `head` and then into up to `max` bytes of the spare capacity of `vec`
/// (appended to `vec`), with the control data handled as in [`recv_msg`]: a frame's prefix
/// lands in `head` and its body straight in the caller's vector, in one call. Returns the
/// bytes of both.
pub(crate) fn recv_msg_spare(
    fd: BorrowedFd<'_>,
    head: &mut [u8],
    vec: &mut Vec<u8>,
    max: usize,
    cmsg: &mut Cmsg,
    wait: Wait,
    offer: bool,
) -> io::Result<usize> {
    let spare = vec.spare_capacity_mut();
    let take = spare.len().min(max);
    let mut iov = [
        libc::iovec { iov_base: head.as_mut_ptr().cast(), iov_len: head.len() },
        libc::iovec { iov_base: spare.as_mut_ptr().cast(), iov_len: take },
    ];
    // SAFETY: the iovecs cover `head` and the first `take` bytes of `vec`'s spare capacity,
    // all writable and exclusively borrowed for the call.
    let n = unsafe { recv_iov(fd, &mut iov, cmsg, wait, offer) }?;
    let body = n.saturating_sub(head.len()).min(take);
    let new_len = vec.len().saturating_add(body);
    // SAFETY: the kernel filled the iovecs in order, so the first `body` bytes of the spare
    // capacity (at most `take`, within the capacity) are initialised.
    unsafe { vec.set_len(new_len) };
    Ok(n)
}

/// The `recvmsg` behind [`recv_msg`], [`recv_msg_spare`] and [`recv_spare`]: with `cmsg`'s
/// control buffer when `offer`, else with none (fds that came are closed by the kernel and
/// noted as discarded in `cmsg`).
///
/// # Safety
/// Every iovec must describe memory writable for its whole length and not otherwise
/// accessed during the call.
unsafe fn recv_iov(
    fd: BorrowedFd<'_>,
    iov: &mut [libc::iovec],
    cmsg: &mut Cmsg,
    wait: Wait,
    offer: bool,
) -> io::Result<usize> {
    if cmsg.pending() {
        // fds nobody took: closed, never overwritten.
        drop(cmsg.take());
    }
    let mut flags = libc::MSG_CMSG_CLOEXEC;
    if wait == Wait::Nonblocking {
        flags |= libc::MSG_DONTWAIT;
    }
    let offer = offer && !cmsg.words.is_empty();
    let control_len = if offer { std::mem::size_of_val(&*cmsg.words) } else { 0 };
    // SAFETY: `msghdr` is plain data (pointers and integers); all-zero is a valid value
    // (no name, no iovecs, no control buffer).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = iov.len();
    let n = loop {
        msg.msg_control = if offer { cmsg.words.as_mut_ptr().cast() } else { std::ptr::null_mut() };
        msg.msg_controllen = control_len;
        msg.msg_flags = 0;
        // SAFETY: `msg` points at the caller's iovecs (writable memory, by this function's
        // contract) and at the control buffer of `control_len` bytes, alive and exclusively
        // borrowed for the call; the kernel writes within those bounds and updates `msg`.
        let r = unsafe { libc::recvmsg(fd.as_raw_fd(), &raw mut msg, flags) };
        if r >= 0 {
            break r.unsigned_abs();
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    let ctrunc = msg.msg_flags & libc::MSG_CTRUNC != 0;
    if offer {
        cmsg.len = msg.msg_controllen;
        cmsg.truncated = ctrunc;
    } else {
        cmsg.discarded = ctrunc;
    }
    Ok(n)
}

/// Take ownership of every fd in the `SCM_RIGHTS` messages of `msg`'s control data.
fn take_fds(msg: &libc::msghdr, fds: &mut Vec<OwnedFd>) {
    // SAFETY: `msg_control`/`msg_controllen` describe the control data a successful
    // `recvmsg` wrote into a `Cmsg` (CMSG_FIRSTHDR checks the length).
    let mut c = unsafe { libc::CMSG_FIRSTHDR(msg) };
    while !c.is_null() {
        // SAFETY: CMSG_FIRSTHDR/CMSG_NXTHDR return null or a pointer to a complete, aligned
        // `cmsghdr` inside the control data.
        let hdr = unsafe { std::ptr::read(c) };
        if hdr.cmsg_level == libc::SOL_SOCKET && hdr.cmsg_type == libc::SCM_RIGHTS {
            // SAFETY: `c` is a valid cmsghdr (above); CMSG_DATA points just past its header.
            let data = unsafe { libc::CMSG_DATA(c) };
            // SAFETY: CMSG_LEN(0) is a pure computation on a constant.
            let header = unsafe { libc::CMSG_LEN(0) } as usize;
            let int = std::mem::size_of::<libc::c_int>();
            let bytes = hdr.cmsg_len.saturating_sub(header) / int * int;
            // SAFETY: the kernel wrote `cmsg_len - CMSG_LEN(0)` bytes of fd numbers after the
            // header, inside the control data that lives as long as `msg`'s buffer.
            let data = unsafe { std::slice::from_raw_parts(data, bytes) };
            for chunk in data.chunks_exact(int) {
                let mut b = [0u8; std::mem::size_of::<libc::c_int>()];
                b.copy_from_slice(chunk);
                let raw = libc::c_int::from_ne_bytes(b);
                if raw >= 0 {
                    // SAFETY: SCM_RIGHTS installed `raw` as a new fd in this process, owned
                    // by nobody else; OwnedFd takes that ownership (and closes it on drop).
                    fds.push(unsafe { OwnedFd::from_raw_fd(raw) });
                }
            }
        }
        // SAFETY: `c` is a cmsghdr of `msg`'s control data; CMSG_NXTHDR returns the next one
        // or null at the end.
        c = unsafe { libc::CMSG_NXTHDR(msg, c) };
    }
}

/// Read at most `max` bytes into the spare capacity of `vec` (a socket with `recvmsg` offering
/// no control buffer, or a pipe with `read`), appending them; 0 means end of file. Fds
/// attached to these bytes (only a misbehaving peer attaches fds mid-frame) are closed by the
/// kernel, and noted in `cmsg` as discarded.
pub(crate) fn recv_spare(
    fd: BorrowedFd<'_>,
    kind: Kind,
    vec: &mut Vec<u8>,
    max: usize,
    wait: Wait,
    cmsg: &mut Cmsg,
) -> io::Result<usize> {
    if kind == Kind::Socket {
        let spare = vec.spare_capacity_mut();
        let take = spare.len().min(max);
        let mut iov = [libc::iovec { iov_base: spare.as_mut_ptr().cast(), iov_len: take }];
        // SAFETY: the iovec covers the first `take` bytes of `vec`'s spare capacity, writable
        // and exclusively borrowed for the call.
        let n = unsafe { recv_iov(fd, &mut iov, cmsg, wait, false) }?;
        let new_len = vec.len().saturating_add(n.min(take));
        // SAFETY: the kernel initialised the first `n` (at most `take`) bytes of the spare
        // capacity, so the elements up to `new_len` are initialised and within the capacity.
        unsafe { vec.set_len(new_len) };
        return Ok(n);
    }
    let spare = vec.spare_capacity_mut();
    let take = spare.len().min(max);
    let window = spare.get_mut(..take).unwrap_or_default();
    let n = retry(|| rustix::io::read(fd, &mut *window).map(|(init, _)| init.len()))?;
    let new_len = vec.len().saturating_add(n.min(take));
    // SAFETY: `read` initialised the first `n` bytes of the spare capacity (rustix returns
    // the initialised prefix, never longer than the window of `take` bytes), so the elements
    // up to `new_len` are initialised and `new_len <= capacity`.
    unsafe { vec.set_len(new_len) };
    Ok(n)
}

/// Read from a pipe into `buf`. The receiving end of our pipes is `O_NONBLOCK` (set by
/// `simplex` and `Receiver::from`), so this never blocks: `WouldBlock` when empty.
pub(crate) fn pipe_read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    retry(|| rustix::io::read(fd, &mut *buf))
}

/// Make a pipe's receiving end non-blocking.
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    let flags = retry(|| rustix::fs::fcntl_getfl(fd))?;
    retry(|| rustix::fs::fcntl_setfl(fd, flags | rustix::fs::OFlags::NONBLOCK))
}

/// The longest body [`send_small`] takes.
pub(crate) const SMALL_BODY: usize = 2048;

/// Send one frame holding `body` (at most [`SMALL_BODY`] bytes, so its prefix is the short
/// one) as one blocking `send`/`write` of one contiguous buffer on the stack: the hot path
/// of a small message. Returns the bytes written (of `4 + body.len()`); may be fewer only if
/// a signal interrupted a blocking write midway.
pub(crate) fn send_small(fd: BorrowedFd<'_>, kind: Kind, body: &[u8]) -> io::Result<usize> {
    const PREFIX: usize = crate::frame::SHORT_PREFIX;
    let mut space = [MaybeUninit::<u8>::uninit(); PREFIX + SMALL_BODY];
    let len = body.len().min(SMALL_BODY);
    // `len` fits an i32: the short prefix.
    let prefix = (len as u32).to_be_bytes();
    let (head, tail) = space.split_at_mut(PREFIX);
    // SAFETY: `head` is PREFIX writable bytes; `tail` has room for `len <= SMALL_BODY`
    // bytes; neither overlaps `prefix` or `body` (a local array is borrowed from nowhere).
    unsafe { std::ptr::copy_nonoverlapping(prefix.as_ptr(), head.as_mut_ptr().cast(), PREFIX) };
    // SAFETY: as above.
    unsafe { std::ptr::copy_nonoverlapping(body.as_ptr(), tail.as_mut_ptr().cast(), len) };
    // SAFETY: the first `PREFIX + len` bytes of `space` were written above.
    let frame = unsafe { std::slice::from_raw_parts(space.as_ptr().cast::<u8>(), PREFIX + len) };
    match kind {
        Kind::Socket => retry(|| rustix::net::send(fd, frame, SendFlags::NOSIGNAL)),
        Kind::Pipe => retry(|| rustix::io::write(fd, frame)),
    }
}

/// Frames of at most this many bytes (prefix included) are sent by [`send_joined`].
pub(crate) const JOIN_MAX: usize = 2048 + crate::frame::MAX_PREFIX;

/// Write `prefix` and `parts` once, as [`send`] does, after copying them into one buffer on
/// the stack (at most [`JOIN_MAX`] bytes are taken): one `send`/`write` of one contiguous
/// buffer costs the kernel less than a vectored call importing an iovec array, and the copy
/// of a small frame less than either; the stack is already in the cache, a scratch vector
/// would not be. Returns the bytes written (of the joined frame).
pub(crate) fn send_joined(
    fd: BorrowedFd<'_>,
    kind: Kind,
    prefix: &[u8],
    parts: &[IoSlice<'_>],
    fds: &[BorrowedFd<'_>],
    wait: Wait,
) -> io::Result<usize> {
    let mut space = [MaybeUninit::<u8>::uninit(); JOIN_MAX];
    let mut len = 0usize;
    for part in std::iter::once(prefix).chain(parts.iter().map(|p| &**p)) {
        let Some(room) = space.get_mut(len..) else { break };
        let take = part.len().min(room.len());
        // SAFETY: `part` is readable for `take` bytes and `room` writable for at least as
        // many; a local array never overlaps a borrowed slice.
        unsafe { std::ptr::copy_nonoverlapping(part.as_ptr(), room.as_mut_ptr().cast(), take) };
        len = len.saturating_add(take);
    }
    // SAFETY: the first `len` bytes of `space` (`len <= JOIN_MAX`) were written above.
    let joined = unsafe { std::slice::from_raw_parts(space.as_ptr().cast::<u8>(), len) };
    send(fd, kind, &[IoSlice::new(joined)], fds, wait)
}

/// Write `iov` (with `fds` as `SCM_RIGHTS` on a socket) once; returns the bytes written.
/// Sockets use `MSG_NOSIGNAL` (a vanished peer is `EPIPE`, never `SIGPIPE`).
pub(crate) fn send(
    fd: BorrowedFd<'_>,
    kind: Kind,
    iov: &[IoSlice<'_>],
    fds: &[BorrowedFd<'_>],
    wait: Wait,
) -> io::Result<usize> {
    match kind {
        Kind::Socket => {
            let mut flags = SendFlags::NOSIGNAL;
            if wait == Wait::Nonblocking {
                flags |= SendFlags::DONTWAIT;
            }
            if fds.is_empty() {
                if let [one] = iov {
                    return retry(|| rustix::net::send(fd, one, flags));
                }
                return retry(|| {
                    rustix::net::sendmsg(fd, iov, &mut SendAncillaryBuffer::default(), flags)
                });
            }
            let mut space =
                vec![MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
            let mut control = SendAncillaryBuffer::new(&mut space);
            if !control.push(SendAncillaryMessage::ScmRights(fds)) {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, "too many fds"));
            }
            retry(|| rustix::net::sendmsg(fd, iov, &mut control, flags))
        }
        Kind::Pipe => match (wait, iov) {
            (Wait::Block, [one]) => retry(|| rustix::io::write(fd, one)),
            (Wait::Block, _) => retry(|| rustix::io::writev(fd, iov)),
            (Wait::Nonblocking, _) => {
                retry(|| rustix::io::pwritev2(fd, iov, u64::MAX, ReadWriteFlags::NOWAIT))
            }
        },
    }
}

/// The time from now to `deadline` for `poll` (`None`: no deadline; a huge one saturates).
fn time_left(deadline: Option<Instant>) -> Option<rustix::time::Timespec> {
    deadline.map(|d| {
        let left = d.saturating_duration_since(Instant::now());
        rustix::time::Timespec::try_from(left)
            .unwrap_or(rustix::time::Timespec { tv_sec: i64::MAX, tv_nsec: 0 })
    })
}

/// Wait until `fd` has one of `events` (or an error/hangup), at most until `deadline`
/// (`None`: forever). Returns the events seen; empty on timeout.
pub(crate) fn poll(
    fd: BorrowedFd<'_>,
    events: PollFlags,
    deadline: Option<Instant>,
) -> io::Result<PollFlags> {
    loop {
        let timeout = time_left(deadline);
        let mut fds = [PollFd::new(&fd, events)];
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Ok(0) => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Ok(PollFlags::empty());
                }
            }
            Ok(_) => return Ok(fds[0].revents()),
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// `Instant::now() + d`, or `None` when that is past what an `Instant` holds (a huge timeout
/// means "no deadline").
pub(crate) fn deadline_after(d: Duration) -> Option<Instant> {
    Instant::now().checked_add(d)
}

/// `Instant::now() + d`, saturating at a century from now (for deadlines that must exist,
/// such as the handshake's).
pub(crate) fn deadline_saturating(d: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    let now = Instant::now();
    now.checked_add(d.min(CENTURY)).unwrap_or(now)
}

/// Wait until one of `fds` has one of `events` (or an error/hangup), at most until
/// `deadline` (`None`: forever). Returns whether any did (false on timeout).
pub(crate) fn poll_any(
    fds: &[BorrowedFd<'_>],
    events: PollFlags,
    deadline: Option<Instant>,
) -> io::Result<bool> {
    let mut set: Vec<PollFd<'_>> = fds.iter().map(|fd| PollFd::new(fd, events)).collect();
    loop {
        let timeout = time_left(deadline);
        match rustix::event::poll(&mut set, timeout.as_ref()) {
            Ok(0) => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Ok(false);
                }
            }
            Ok(_) => return Ok(true),
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// `SO_PEERCRED`: (pid, uid, gid). The pid is 0 when the peer is outside our pid namespace
/// (rustix's `UCred` holds a non-zero `Pid`, so this reads the raw struct with libc).
pub(crate) fn peer_creds(fd: BorrowedFd<'_>) -> io::Result<(u32, u32, u32)> {
    let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` is a writable `ucred` and `len` holds its exact size, as SO_PEERCRED
    // requires; the kernel writes at most `len` bytes and updates `len`.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &raw mut len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((cred.pid.unsigned_abs(), cred.uid, cred.gid))
}

/// Whether a socket is connected (`getpeername` succeeds).
pub(crate) fn is_connected(fd: BorrowedFd<'_>) -> bool {
    rustix::net::getpeername(fd).is_ok()
}

/// Random bytes from the kernel.
pub(crate) fn random(buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = buf.get_mut(filled..).unwrap_or_default();
        let n =
            retry(|| rustix::rand::getrandom(&mut *rest, rustix::rand::GetRandomFlags::empty()))?;
        filled = filled.saturating_add(n);
    }
    Ok(())
}

/// Our effective uid.
pub(crate) fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}
