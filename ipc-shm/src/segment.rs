//! [`Shm`]: named POSIX shared memory segments and anonymous memfd segments.
//!
//! # The creation protocol
//! Named segments are files in /dev/shm (where glibc's `shm_open` puts them, so Python's
//! `SharedMemory` and C programs see the same names). Two OFD byte-range locks on each file
//! carry what the kernel must tell us even after a crash:
//!
//! - **use lock** (byte 0, shared): held by every process that has the segment mapped. The
//!   kernel drops it when the process dies, so [`sweep_stale`] can tell a segment nobody
//!   uses from one in use (never by pid, which is reused).
//! - **init lock** (byte 1, exclusive): held by whoever is sizing or initialising the segment.
//!   An opener that finds the segment unfinished waits (bounded) while the lock is held, and
//!   knows the creator died mid-way when it is not.
//!
//! Create: `open(O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC)` (nothing at the name is followed or
//! reused), take both locks, `fchmod` to the requested mode (default 0600, whatever the umask),
//! `fallocate` the length (a full /dev/shm is an error now, not SIGBUS later), map, release
//! the init lock. Open: `open(O_NOFOLLOW)`, check it is a regular file owned by us (or the uid
//! allowed) with no more permission than asked, take the use lock, check the name still names
//! the same file, wait for a size, map.
#![allow(unsafe_code)] // raw copies in and out of the mapping, and atomics over it

use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use memmap2::MmapRaw;

use crate::crash;
use crate::error::{Error, Result};
use crate::name::validate_name;
use crate::sys::{self, FileInfo, LockKind};

/// Byte locked shared by every process that maps the segment.
pub(crate) const USE_BYTE: u64 = 0;
/// Byte locked exclusively by whoever initialises the segment.
pub(crate) const INIT_BYTE: u64 = 1;

/// How to create or open a segment (like `std::fs::OpenOptions`).
///
/// ```
/// # fn main() -> Result<(), ipc_shm::Error> {
/// use ipc_shm::ShmOptions;
/// let name = ipc_shm::random_name("doc-options")?;
/// let seg = ShmOptions::new().mode(0o640).create(&name, 4096)?;
/// let again = ShmOptions::new().mode(0o640).open(&name)?;
/// assert_eq!(again.len(), 4096);
/// # drop(seg); Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ShmOptions {
    mode: u32,
    reserve: bool,
    persist: bool,
    init_timeout: Duration,
    owner_uid: Option<u32>,
}

impl Default for ShmOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl ShmOptions {
    /// Mode 0600, space reserved at create, unlinked when the creator drops it, 2 s bounded
    /// wait for a creator still initialising, segments must belong to our effective uid.
    pub fn new() -> Self {
        ShmOptions {
            mode: 0o600,
            reserve: true,
            persist: false,
            init_timeout: Duration::from_secs(2),
            owner_uid: None,
        }
    }

    /// Permission bits: set exactly on create (whatever the umask), and the most an opened
    /// segment may grant (a wider one is refused with [`Error::TooPermissive`]).
    /// The owner always keeps read and write (0600 is or-ed in): a segment its owner cannot
    /// map is of no use, and mode 0 marks a segment still being created.
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.mode = (mode & 0o777) | 0o600;
        self
    }

    /// Reserve the pages at create (`fallocate`; default on) so a full /dev/shm fails the
    /// create instead of raising SIGBUS at first touch. Off: the file is only sized, which
    /// is cheaper for large segments that are touched sparsely.
    pub fn reserve(&mut self, reserve: bool) -> &mut Self {
        self.reserve = reserve;
        self
    }

    /// Keep the name after the creator drops the segment (default: the creator unlinks it).
    pub fn persist(&mut self, persist: bool) -> &mut Self {
        self.persist = persist;
        self
    }

    /// How long `open` waits for a live creator to finish initialising (default 2 s).
    pub fn init_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.init_timeout = timeout;
        self
    }

    /// Accept segments owned by `uid` instead of our effective uid.
    pub fn owner_uid(&mut self, uid: u32) -> &mut Self {
        self.owner_uid = Some(uid);
        self
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.init_timeout
    }

    /// Create a new named segment of `len` bytes, zero-filled.
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::InvalidLength`], [`Error::AlreadyExists`] (also when
    /// a symlink or anything else sits at the name), [`Error::NoSpace`], [`Error::Io`].
    pub fn create(&self, name: &str, len: usize) -> Result<Shm> {
        Shm::create_impl(self, name, len, false)
    }

    /// Open an existing named segment.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::NotRegularFile`], [`Error::UntrustedOwner`],
    /// [`Error::TooPermissive`], [`Error::InitTimeout`], [`Error::NotInitialized`],
    /// [`Error::Io`].
    pub fn open(&self, name: &str) -> Result<Shm> {
        Shm::open_impl(self, name, None)
    }

    /// Open the segment, or create it with `len` bytes if it does not exist. Exactly one of
    /// many concurrent callers creates it; the others open it once it is sized. A segment
    /// left unsized by a creator that died is sized again. [`Shm::created`] tells which.
    ///
    /// # Errors
    /// As [`create`](Self::create) and [`open`](Self::open), and [`Error::SizeMismatch`]
    /// when the existing segment has another length.
    pub fn open_or_create(&self, name: &str, len: usize) -> Result<Shm> {
        for _ in 0..64 {
            match Shm::create_impl(self, name, len, false) {
                Err(Error::AlreadyExists { .. }) => {}
                other => return other,
            }
            match Shm::open_impl(self, name, Some(len)) {
                Err(Error::NotFound { .. }) => continue, // unlinked in between: create again
                Ok(shm) if shm.len() != len => {
                    return Err(Error::SizeMismatch {
                        op: "open",
                        name: name.to_owned(),
                        expected: len,
                        found: shm.len(),
                    });
                }
                other => return other,
            }
        }
        Err(Error::io(
            "open or create",
            name,
            io::Error::other("the name kept appearing and disappearing"),
        ))
    }

    /// An anonymous segment (memfd) of `len` bytes, sealed against shrinking and growing:
    /// inherited across `fork`, passable to another process as an fd, never truncated
    /// under a mapping.
    ///
    /// # Errors
    /// [`Error::InvalidLength`], [`Error::NoSpace`], [`Error::Io`].
    pub fn anonymous(&self, len: usize) -> Result<Shm> {
        let name = "<memfd>";
        check_len("create", name, len)?;
        let fd = sys::memfd("ipc-shm").map_err(|e| Error::io("create", name, e))?;
        size_file(self.reserve, fd.as_fd(), len, "create", name)?;
        sys::seal_size(fd.as_fd()).map_err(|e| Error::io("seal", name, e))?;
        let map = sys::map(fd.as_fd(), len).map_err(|e| Error::io("map", name, e))?;
        Ok(Shm::assemble(map, fd, len, None, false, true))
    }
}

/// A mapped shared-memory segment, named (POSIX shm in /dev/shm) or anonymous (memfd).
///
/// The mapping lives as long as the `Shm`. Other processes write it at any time, so its
/// bytes are only copied in and out ([`read_at`](Self::read_at),
/// [`write_at`](Self::write_at): safe on an exclusive handle; `*_shared` and
/// [`atomic_u32`](Self::atomic_u32) are `unsafe`, because an object's `&Shm` may be covered by
/// references the object has lent) or viewed through [`Shared`](crate::Shared).
///
/// The creator of a named segment unlinks the name on drop unless [`persist`](Self::persist)
/// was asked, and only in the creating process: a forked child's copy of the handle (dropped
/// when the child unwinds or returns through `?` without `_exit`) never removes the parent's
/// name. [`unlink`](Self::unlink) is explicit and works from any process.
///
/// # SIGBUS
/// A named segment can be truncated by any process with write access to it (same uid); a
/// later access past the new end raises SIGBUS. Anonymous segments are sealed against that.
pub struct Shm {
    map: MmapRaw,
    fd: OwnedFd,
    len: usize,
    name: Option<Box<str>>,
    unlink_on_drop: AtomicBool,
    created: bool,
    /// The process that made this handle: only it unlinks on drop (a forked child's copy of
    /// the creator's handle never removes the parent's name).
    maker: crate::liveness::ProcessToken,
}

impl fmt::Debug for Shm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shm")
            .field("name", &self.name)
            .field("len", &self.len)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

fn check_len(op: &'static str, name: &str, len: usize) -> Result<()> {
    if len == 0 || isize::try_from(len).is_err() {
        return Err(Error::InvalidLength { op, name: name.to_owned(), len });
    }
    Ok(())
}

fn size_file(
    reserve: bool,
    fd: BorrowedFd<'_>,
    len: usize,
    op: &'static str,
    name: &str,
) -> Result<()> {
    let len64 = len as u64;
    if reserve {
        match sys::reserve(fd, len64) {
            Ok(()) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                return Err(Error::NoSpace { op, name: name.to_owned(), len, source: e });
            }
            // A filesystem without fallocate: fall back to sizing only.
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {}
            Err(e) => return Err(Error::io(op, name, e)),
        }
    }
    sys::set_len(fd, len64).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOSPC) => Error::NoSpace { op, name: name.to_owned(), len, source: e },
        _ => Error::io(op, name, e),
    })
}

/// Unlinks a half-created segment on the error paths of `create`.
struct Unlinker<'a> {
    path: &'a str,
    fd: Option<BorrowedFd<'a>>,
}

impl Drop for Unlinker<'_> {
    fn drop(&mut self) {
        if let Some(fd) = self.fd {
            unlink_if_linked(self.path, fd);
        }
    }
}

/// Unlink `path` if the file of `fd` still has its name. Cheaper than comparing inodes (one
/// fstat, no path walk); a segment's only name is the one we gave it, so a linked file of
/// ours is the file at `path`.
fn unlink_if_linked(path: &str, fd: BorrowedFd<'_>) -> bool {
    match sys::fstat(fd) {
        Ok(info) if info.nlink > 0 => sys::unlink(path).is_ok(),
        _ => false,
    }
}

/// Unlink `path` only if it still names `file` (never someone else's new segment).
fn unlink_if_same(path: &str, file: &FileInfo) -> bool {
    match sys::lstat(path) {
        Ok(cur) if cur.same_file(file) => sys::unlink(path).is_ok(),
        _ => false,
    }
}

fn open_error(op: &'static str, name: &str, e: io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::ENOENT) => Error::NotFound { op, name: name.to_owned() },
        Some(libc::ELOOP | libc::EISDIR | libc::ENXIO | libc::ENODEV) => {
            Error::NotRegularFile { op, name: name.to_owned() }
        }
        _ => Error::io(op, name, e),
    }
}

/// An opened, use-locked file that may still be unsized (checks of owner and mode are
/// finished once it is sized, when its creator has set them).
pub(crate) struct Pending {
    fd: OwnedFd,
    name: String,
}

fn check_owner_and_mode(
    opts: &ShmOptions,
    info: &FileInfo,
    op: &'static str,
    name: &str,
) -> Result<()> {
    let expected = opts.owner_uid.unwrap_or_else(sys::euid);
    if info.uid != expected {
        return Err(Error::UntrustedOwner { op, name: name.to_owned(), expected, found: info.uid });
    }
    if info.perm & !opts.mode != 0 {
        return Err(Error::TooPermissive {
            op,
            name: name.to_owned(),
            allowed: opts.mode,
            found: info.perm,
        });
    }
    Ok(())
}

impl Pending {
    pub(crate) fn open(opts: &ShmOptions, name: &str, op: &'static str) -> Result<Pending> {
        validate_name(name)?;
        let path = sys::shm_path(name);
        for _ in 0..64 {
            let fd = sys::open_existing(&path).map_err(|e| open_error(op, name, e))?;
            // The use lock before anything else: once held, no sweep can unlink the file.
            let locked = sys::ofd_try_lock(fd.as_fd(), LockKind::Read, USE_BYTE, 1)
                .map_err(|e| Error::io(op, name, e))?;
            let info = sys::fstat(fd.as_fd()).map_err(|e| Error::io(op, name, e))?;
            if !info.regular {
                return Err(Error::NotRegularFile { op, name: name.to_owned() });
            }
            check_owner_and_mode(opts, &info, op, name)?;
            // Not locked: a sweep holds it exclusively and is unlinking it. Unlinked: a sweep
            // removed it between our open and our lock. Either way, open the name again.
            if locked && info.nlink > 0 {
                return Ok(Pending { fd, name: name.to_owned() });
            }
            std::thread::yield_now();
        }
        Err(Error::NotFound { op, name: name.to_owned() })
    }

    fn stat(&self, op: &'static str) -> Result<FileInfo> {
        sys::fstat(self.fd.as_fd()).map_err(|e| Error::io(op, &self.name, e))
    }

    fn init_busy(&self, op: &'static str) -> Result<bool> {
        sys::ofd_conflicts(self.fd.as_fd(), LockKind::Write, INIT_BYTE, 1)
            .map_err(|e| Error::io(op, &self.name, e))
    }

    /// Wait until the file is sized and return its size. An unsized file is a creator at
    /// work (sizing comes right after its exclusive open) or a dead one: it is waited for,
    /// bounded; after the wait it is `InitTimeout` if someone holds the init lock,
    /// `NotInitialized` if not, or, with `reinit`, sized again under the init lock (the
    /// object layer then initialises the header). Owner and mode are checked on the sized
    /// file.
    pub(crate) fn wait_sized(
        &self,
        opts: &ShmOptions,
        op: &'static str,
        reinit: Option<usize>,
    ) -> Result<usize> {
        let mut backoff = Backoff::new(opts.init_timeout);
        let mut retried = false;
        loop {
            let info = self.stat(op)?;
            if info.size > 0 {
                check_owner_and_mode(opts, &info, op, &self.name)?;
                return usize::try_from(info.size).map_err(|_| Error::InvalidLength {
                    op,
                    name: self.name.clone(),
                    len: usize::MAX,
                });
            }
            if backoff.wait() {
                continue;
            }
            if self.init_busy(op)? {
                return Err(Error::InitTimeout {
                    op,
                    name: self.name.clone(),
                    waited: opts.init_timeout,
                });
            }
            let Some(len) = reinit else {
                let why = "it has no size: its creator died before sizing it";
                return Err(Error::NotInitialized { op, name: self.name.clone(), why });
            };
            check_len(op, &self.name, len)?;
            if sys::ofd_try_lock(self.fd.as_fd(), LockKind::Write, INIT_BYTE, 1)
                .map_err(|e| Error::io(op, &self.name, e))?
            {
                let result = if self.stat(op)?.size == 0 {
                    size_file(opts.reserve, self.fd.as_fd(), len, op, &self.name)
                } else {
                    Ok(())
                };
                let _ = sys::ofd_unlock(self.fd.as_fd(), INIT_BYTE, 1);
                result?;
            } else if !retried {
                // Another opener is re-initialising it this very moment: wait for it.
                retried = true;
                backoff = Backoff::new(opts.init_timeout);
            } else {
                return Err(Error::InitTimeout {
                    op,
                    name: self.name.clone(),
                    waited: opts.init_timeout,
                });
            }
        }
    }

    pub(crate) fn map(self, len: usize, op: &'static str) -> Result<Shm> {
        check_len(op, &self.name, len)?;
        let map = sys::map(self.fd.as_fd(), len).map_err(|e| Error::io("map", &self.name, e))?;
        Ok(Shm::assemble(map, self.fd, len, Some(self.name), false, false))
    }
}

/// Bounded backoff for waits that have no kernel event to block on (a file being sized, a
/// header being written): 20 µs doubling to 2 ms, never past the deadline.
pub(crate) struct Backoff {
    next: Duration,
    /// `None`: a timeout too large to represent, i.e. no deadline.
    deadline: Option<Instant>,
}

impl Backoff {
    pub(crate) fn new(timeout: Duration) -> Self {
        // A huge timeout (Duration::MAX) saturates to "no deadline" instead of overflowing.
        Backoff { next: Duration::from_micros(20), deadline: Instant::now().checked_add(timeout) }
    }

    /// Wait a little; `false` once the deadline has passed.
    pub(crate) fn wait(&mut self) -> bool {
        let now = Instant::now();
        let pause = match self.deadline {
            Some(d) if now >= d => return false,
            Some(d) => self.next.min(d - now),
            None => self.next,
        };
        std::thread::sleep(pause);
        self.next = (self.next * 2).min(Duration::from_millis(2));
        true
    }
}

impl Shm {
    /// Create a new named segment with default [`ShmOptions`].
    ///
    /// # Errors
    /// See [`ShmOptions::create`].
    pub fn create(name: &str, len: usize) -> Result<Shm> {
        ShmOptions::new().create(name, len)
    }

    /// Open an existing named segment with default [`ShmOptions`].
    ///
    /// # Errors
    /// See [`ShmOptions::open`].
    pub fn open(name: &str) -> Result<Shm> {
        ShmOptions::new().open(name)
    }

    /// Open or create a named segment with default [`ShmOptions`].
    ///
    /// # Errors
    /// See [`ShmOptions::open_or_create`].
    pub fn open_or_create(name: &str, len: usize) -> Result<Shm> {
        ShmOptions::new().open_or_create(name, len)
    }

    /// An anonymous sealed memfd segment with default [`ShmOptions`].
    ///
    /// # Errors
    /// See [`ShmOptions::anonymous`].
    pub fn anonymous(len: usize) -> Result<Shm> {
        ShmOptions::new().anonymous(len)
    }

    /// Map a segment received as an fd (e.g. over a Unix socket). The fd must be a regular
    /// file (a memfd) sealed against shrinking, so the sender cannot truncate it under our
    /// mapping; its whole length is mapped.
    ///
    /// # Errors
    /// [`Error::NotRegularFile`], [`Error::NotSealed`], [`Error::InvalidLength`],
    /// [`Error::Io`].
    pub fn from_fd(fd: OwnedFd) -> Result<Shm> {
        let name = "<fd>";
        let info = sys::fstat(fd.as_fd()).map_err(|e| Error::io("stat", name, e))?;
        if !info.regular {
            return Err(Error::NotRegularFile { op: "map", name: name.to_owned() });
        }
        if !sys::is_shrink_sealed(fd.as_fd()).map_err(|e| Error::io("get seals of", name, e))? {
            return Err(Error::NotSealed { op: "map", name: name.to_owned() });
        }
        let len = usize::try_from(info.size).unwrap_or(0);
        check_len("map", name, len)?;
        let map = sys::map(fd.as_fd(), len).map_err(|e| Error::io("map", name, e))?;
        Ok(Shm::assemble(map, fd, len, None, false, false))
    }

    fn assemble(
        map: MmapRaw,
        fd: OwnedFd,
        len: usize,
        name: Option<String>,
        unlink_on_drop: bool,
        created: bool,
    ) -> Shm {
        Shm {
            map,
            fd,
            len,
            name: name.map(String::into_boxed_str),
            unlink_on_drop: AtomicBool::new(unlink_on_drop),
            created,
            maker: crate::liveness::ProcessToken::current(),
        }
    }

    /// Create, holding the init lock on return when `hold_init` (the header layer releases it
    /// once the object is ready).
    pub(crate) fn create_impl(
        opts: &ShmOptions,
        name: &str,
        len: usize,
        hold_init: bool,
    ) -> Result<Shm> {
        validate_name(name)?;
        check_len("create", name, len)?;
        // A sweep may unlink our brand-new file in the moment before we lock it; then the
        // name is free again and we create anew (bounded: a sweep needs an unlocked file).
        for _ in 0..16 {
            if let Some(shm) = Self::try_create(opts, name, len, hold_init)? {
                return Ok(shm);
            }
        }
        Err(Error::io("create", name, io::Error::other("the new segment kept being swept away")))
    }

    /// One attempt; `Ok(None)` if a sweep removed the file before we could lock it.
    fn try_create(
        opts: &ShmOptions,
        name: &str,
        len: usize,
        hold_init: bool,
    ) -> Result<Option<Shm>> {
        let op = "create";
        let path = sys::shm_path(name);
        let fd = sys::create_excl(&path, opts.mode).map_err(|e| match e.raw_os_error() {
            Some(libc::EEXIST) => Error::AlreadyExists { op, name: name.to_owned() },
            _ => Error::io(op, name, e),
        })?;
        let mut unlinker = Unlinker { path: &path, fd: Some(fd.as_fd()) };
        crash::point("shm.create.opened");
        // Objects: the init lock first, so an opener waits for us instead of deciding we died,
        // and nobody re-initialises under us.
        if hold_init
            && !sys::ofd_try_lock(fd.as_fd(), LockKind::Write, INIT_BYTE, 1)
                .map_err(|e| Error::io(op, name, e))?
        {
            // A re-initialiser (after its bounded wait) or a sweeper took it first.
            unlinker.fd = None;
            return Err(Error::AlreadyExists { op, name: name.to_owned() });
        }
        if !sys::ofd_try_lock(fd.as_fd(), LockKind::Read, USE_BYTE, 1)
            .map_err(|e| Error::io(op, name, e))?
        {
            unlinker.fd = None; // a sweep holds it and unlinks it: try again
            return Ok(None);
        }
        let info = sys::fstat(fd.as_fd()).map_err(|e| Error::io(op, name, e))?;
        if info.nlink == 0 {
            unlinker.fd = None; // a sweep unlinked it before we locked it: try again
            return Ok(None);
        }
        if info.size != 0 {
            // A re-initialiser sized it while we were stalled before our lock: it is theirs.
            unlinker.fd = None;
            return Err(Error::AlreadyExists { op, name: name.to_owned() });
        }
        crash::point("shm.create.locked");
        // Exactly the mode asked for, whatever the umask (only a stripped mode needs fchmod).
        if info.perm != opts.mode {
            sys::fchmod(fd.as_fd(), opts.mode).map_err(|e| Error::io("set mode of", name, e))?;
        }
        crash::point("shm.create.chmod");
        size_file(opts.reserve, fd.as_fd(), len, op, name)?;
        crash::point("shm.create.sized");
        let map = sys::map(fd.as_fd(), len).map_err(|e| Error::io("map", name, e))?;
        crash::point("shm.create.mapped");
        unlinker.fd = None;
        drop(unlinker);
        Ok(Some(Shm::assemble(map, fd, len, Some(name.to_owned()), !opts.persist, true)))
    }

    /// Open; when `reinit_len` is given, a segment left unsized by a dead creator is sized.
    fn open_impl(opts: &ShmOptions, name: &str, reinit_len: Option<usize>) -> Result<Shm> {
        let op = "open";
        let pending = Pending::open(opts, name, op)?;
        let size = pending.wait_sized(opts, op, reinit_len)?;
        pending.map(size, op)
    }

    /// The segment's name; `None` for anonymous and fd-received segments.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// A name for messages: the segment name, or `<anonymous>`.
    pub(crate) fn label(&self) -> &str {
        self.name.as_deref().unwrap_or("<anonymous>")
    }

    /// Length in bytes (what is mapped).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always `false`: segments have at least one byte.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether this handle created the segment (as opposed to opening it).
    pub fn created(&self) -> bool {
        self.created
    }

    /// Start of the mapping. Other processes write these bytes at any time: access them only
    /// through atomics or under a protocol that gives exclusive access.
    pub fn as_ptr(&self) -> NonNull<u8> {
        // The mapping is never empty and MmapRaw never hands out null.
        NonNull::new(self.map.as_mut_ptr()).unwrap_or(NonNull::dangling())
    }

    fn check_range(&self, op: &'static str, offset: usize, len: usize) -> Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(Error::OutOfBounds {
                op,
                name: self.label().to_owned(),
                offset,
                len,
                size: self.len,
            }),
        }
    }

    /// Copy `buf.len()` bytes out of the segment from `offset`.
    ///
    /// Takes `&mut self`: an exclusive handle is one no object of this family is using, since
    /// [`Shared`](crate::Shared), the queues and the named locks own their `Shm` and lend out
    /// only `&Shm`. So no reference this family handed out (a lock guard's `&mut T`, a queue's
    /// lent slot, an atomic view) can cover the bytes copied. Through a shared `&Shm`, use
    /// [`read_at_shared`](Self::read_at_shared) and uphold its contract.
    ///
    /// The bytes are whatever other processes left there: treat them as untrusted.
    ///
    /// ```compile_fail
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::atomic::AtomicU32;
    /// let name = ipc_shm::random_name("doc")?;
    /// let counter = ipc_shm::Shared::create(&name, AtomicU32::new(0))?;
    /// // The object's segment is only lent as `&Shm`: this does not compile, so safe code
    /// // cannot write plain bytes under the `&AtomicU32` the `Shared` hands out.
    /// counter.shm().write_at(64, &[0xff; 4])?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::OutOfBounds`] if the range leaves the segment.
    pub fn read_at(&mut self, offset: usize, buf: &mut [u8]) -> Result<()> {
        // SAFETY: `&mut self` is exclusive: no reference into this mapping borrowed from this
        // handle is alive, and objects of this family never lend a `&mut Shm` (see above).
        unsafe { self.read_at_shared(offset, buf) }
    }

    /// Copy `data` into the segment at `offset`. See [`read_at`](Self::read_at) for why this
    /// takes `&mut self`.
    ///
    /// # Errors
    /// [`Error::OutOfBounds`] if the range leaves the segment.
    pub fn write_at(&mut self, offset: usize, data: &[u8]) -> Result<()> {
        // SAFETY: as in `read_at`: the handle is exclusive.
        unsafe { self.write_at_shared(offset, data) }
    }

    /// [`read_at`](Self::read_at) through a shared handle, e.g. the `&Shm` of an object.
    ///
    /// # Safety
    /// For the duration of the call, no reference into the range may be alive in this
    /// process except atomic views that nobody writes concurrently: no `&mut` (a lock guard's
    /// data, a queue's reserved slot), no plain `&[u8]`/`&T` over bytes another thread may
    /// write, and no concurrent write by another thread of this process. Writes by *other
    /// processes* are allowed: the bytes are then stale or mixed, never invalid (any byte is
    /// a `u8`), and the caller treats them as untrusted.
    ///
    /// # Errors
    /// [`Error::OutOfBounds`] if the range leaves the segment.
    pub unsafe fn read_at_shared(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        self.check_range("read", offset, buf.len())?;
        let src = self.map.as_ptr().wrapping_add(offset);
        // SAFETY: `offset + buf.len() <= self.len` (checked): inside the live mapping; `buf`
        // is private (no overlap); nothing in this process writes the range now (the caller's
        // contract), and a peer writing concurrently leaves stale or mixed bytes at worst.
        unsafe { std::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    /// [`write_at`](Self::write_at) through a shared handle.
    ///
    /// # Safety
    /// For the duration of the call, no reference into the range may be alive in this
    /// process (shared or exclusive, atomic or not) and no other thread of this process may
    /// access it. Other processes may; they see stale or mixed bytes at worst.
    ///
    /// # Errors
    /// [`Error::OutOfBounds`] if the range leaves the segment.
    pub unsafe fn write_at_shared(&self, offset: usize, data: &[u8]) -> Result<()> {
        self.check_range("write", offset, data.len())?;
        let dst = self.map.as_mut_ptr().wrapping_add(offset);
        // SAFETY: the range lies inside the live, writable mapping (checked above); `data` is
        // private memory (no overlap); no reference of this process covers the range and no
        // thread of ours accesses it now (the caller's contract).
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len()) };
        Ok(())
    }

    /// An atomic view of the 4 bytes at `offset`; `None` if out of range or not 4-aligned.
    ///
    /// # Safety
    /// While the returned reference lives, every access to those 4 bytes in this process must
    /// be a 4-byte atomic one: no reference of another type (a lock guard's `&mut T`, a
    /// queue's lent slot, a wider or narrower atomic) may cover them, and no
    /// [`write_at_shared`](Self::write_at_shared) may touch them. Other processes may write
    /// them; any bit pattern is a valid `AtomicU32`.
    pub unsafe fn atomic_u32(&self, offset: usize) -> Option<&AtomicU32> {
        if !offset.is_multiple_of(4) || offset.checked_add(4)? > self.len {
            return None;
        }
        #[allow(clippy::cast_ptr_alignment)] // 4-alignment checked above
        let ptr = self.map.as_ptr().wrapping_add(offset).cast::<AtomicU32>();
        // SAFETY: in range and 4-aligned (page-aligned mapping), checked above; the mapping
        // outlives the borrow of `self`; any bit pattern is a valid AtomicU32; every access in
        // this process is atomic and of this size (the caller's contract).
        Some(unsafe { &*ptr })
    }

    /// Remove the name now (the mapping stays valid; processes that have it keep it). Only
    /// removes the name if it still names this segment.
    ///
    /// # Errors
    /// [`Error::NotFound`] if the name is gone or names another segment now.
    pub fn unlink(&self) -> Result<()> {
        let Some(name) = self.name.as_deref() else {
            return Ok(());
        };
        // Relaxed: a flag of this handle only, read by its own drop; it orders nothing.
        self.unlink_on_drop.store(false, Ordering::Relaxed);
        if unlink_if_linked(&sys::shm_path(name), self.fd.as_fd()) {
            Ok(())
        } else {
            Err(Error::NotFound { op: "unlink", name: name.to_owned() })
        }
    }

    /// Keep (`true`) or remove (`false`) the name when this handle is dropped. Creators
    /// remove it by default, openers keep it.
    pub fn persist(&self, persist: bool) {
        // Relaxed: as in `unlink`.
        self.unlink_on_drop.store(!persist && self.name.is_some(), Ordering::Relaxed);
    }

    pub(crate) fn init_busy(&self) -> Result<bool> {
        sys::ofd_conflicts(self.fd.as_fd(), LockKind::Write, INIT_BYTE, 1)
            .map_err(|e| Error::io("open", self.label(), e))
    }

    pub(crate) fn try_init_lock(&self) -> Result<bool> {
        sys::ofd_try_lock(self.fd.as_fd(), LockKind::Write, INIT_BYTE, 1)
            .map_err(|e| Error::io("open", self.label(), e))
    }

    pub(crate) fn unlock_init(&self) {
        if self.name.is_some() {
            let _ = sys::ofd_unlock(self.fd.as_fd(), INIT_BYTE, 1);
        }
    }
}

impl AsFd for Shm {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for Shm {
    fn drop(&mut self) {
        // Only in the process that made the handle: a forked child that unwinds through its
        // parent's frame (a panic, a `?`) drops a copy, and must leave the name alone.
        // Relaxed: the handle's own flag (see `unlink`).
        if self.unlink_on_drop.load(Ordering::Relaxed)
            && self.maker.is_current()
            && let Some(name) = self.name.as_deref()
        {
            unlink_if_linked(&sys::shm_path(name), self.fd.as_fd());
        }
    }
}

/// Unlink every segment whose name starts with `prefix` that no live process has mapped
/// (its use lock is free) and nobody is initialising. A segment in use is never removed,
/// whatever its creator's fate; a process that opens a segment while it is being swept
/// gets [`Error::NotFound`], never a segment unlinked under it. Segments of other users
/// are left alone. Returns the names removed.
///
/// # Errors
/// [`Error::InvalidName`] for a bad prefix; [`Error::Io`] if /dev/shm cannot be read.
pub fn sweep_stale(prefix: &str) -> Result<Vec<String>> {
    validate_name(prefix)?;
    let names = sys::list_shm().map_err(|e| Error::io("list", prefix, e))?;
    let me = sys::euid();
    let mut removed = Vec::new();
    for name in names {
        if !name.starts_with(prefix) || name.starts_with(crate::liveness::REGISTRY_PREFIX) {
            continue;
        }
        let path = sys::shm_path(&name);
        let Ok(fd) = sys::open_existing(&path) else { continue };
        let Ok(info) = sys::fstat(fd.as_fd()) else { continue };
        if !info.regular || info.uid != me {
            continue;
        }
        // Exclusive on the use and init bytes: succeeds only if nobody maps it and nobody
        // initialises it. Held until `fd` closes, so openers racing us retry and see it gone.
        if sys::ofd_try_lock(fd.as_fd(), LockKind::Write, USE_BYTE, 2).unwrap_or(false)
            && unlink_if_same(&path, &info)
        {
            removed.push(name);
        }
    }
    Ok(removed)
}
