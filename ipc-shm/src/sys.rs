//! The only place ipc-shm talks to the OS (besides the self-contained `futex` module).
//!
//! rustix for everything it wraps safely; libc for OFD byte-range locks (rustix's
//! `fcntl_lock` is `F_SETLK`, process-associated and whole-file) and `pthread_atfork`.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

use memmap2::{MmapOptions, MmapRaw};
use rustix::fs::{AtFlags, FallocateFlags, MemfdFlags, Mode, OFlags, SealFlags};

/// Where Linux keeps POSIX shared memory objects (glibc's `shm_open` opens files here).
pub(crate) const SHM_DIR: &str = "/dev/shm";

pub(crate) fn shm_path(name: &str) -> String {
    format!("{SHM_DIR}/{name}")
}

/// What we need of `struct stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileInfo {
    pub(crate) uid: u32,
    /// Permission bits only (`st_mode & 0o7777`).
    pub(crate) perm: u32,
    pub(crate) size: u64,
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) nlink: u64,
    pub(crate) regular: bool,
}

impl FileInfo {
    fn from_stat(st: &rustix::fs::Stat) -> Self {
        let mode = st.st_mode;
        FileInfo {
            uid: st.st_uid,
            perm: mode & 0o7777,
            size: u64::try_from(st.st_size).unwrap_or(0),
            dev: st.st_dev,
            ino: st.st_ino,
            nlink: st.st_nlink,
            regular: mode & libc::S_IFMT == libc::S_IFREG,
        }
    }

    /// Same file (device and inode).
    pub(crate) fn same_file(&self, other: &FileInfo) -> bool {
        self.dev == other.dev && self.ino == other.ino
    }
}

/// `open(path, O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC|O_RDWR, mode)`: never follows or reuses
/// anything already at the path.
pub(crate) fn create_excl(path: &str, mode: u32) -> io::Result<OwnedFd> {
    let flags = OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::RDWR;
    Ok(rustix::fs::open(path, flags, Mode::from_raw_mode(mode))?)
}

/// `open(path, O_RDWR|O_NOFOLLOW|O_NONBLOCK|O_CLOEXEC)`: a symlink is ELOOP, a FIFO does not
/// block the open.
pub(crate) fn open_existing(path: &str) -> io::Result<OwnedFd> {
    let flags = OFlags::RDWR | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    Ok(rustix::fs::open(path, flags, Mode::empty())?)
}

pub(crate) fn fstat(fd: BorrowedFd<'_>) -> io::Result<FileInfo> {
    Ok(FileInfo::from_stat(&rustix::fs::fstat(fd)?))
}

/// `lstat`: describes a symlink itself rather than its target.
pub(crate) fn lstat(path: &str) -> io::Result<FileInfo> {
    let st = rustix::fs::statat(rustix::fs::CWD, path, AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(FileInfo::from_stat(&st))
}

pub(crate) fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    Ok(rustix::fs::fchmod(fd, Mode::from_raw_mode(mode))?)
}

/// Reserve `len` bytes (`fallocate` mode 0, what `posix_fallocate` does on tmpfs): a full
/// /dev/shm is ENOSPC now instead of SIGBUS at first touch.
pub(crate) fn reserve(fd: BorrowedFd<'_>, len: u64) -> io::Result<()> {
    Ok(rustix::fs::fallocate(fd, FallocateFlags::empty(), 0, len)?)
}

pub(crate) fn set_len(fd: BorrowedFd<'_>, len: u64) -> io::Result<()> {
    Ok(rustix::fs::ftruncate(fd, len)?)
}

pub(crate) fn unlink(path: &str) -> io::Result<()> {
    Ok(rustix::fs::unlink(path)?)
}

/// An anonymous memfd that may be sealed.
pub(crate) fn memfd(name: &str) -> io::Result<OwnedFd> {
    Ok(rustix::fs::memfd_create(name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?)
}

/// Seal a memfd against shrinking and growing, and against further seals.
pub(crate) fn seal_size(fd: BorrowedFd<'_>) -> io::Result<()> {
    Ok(rustix::fs::fcntl_add_seals(fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)?)
}

/// Whether `fd` carries the shrink seal. Files that cannot be sealed answer `false`.
pub(crate) fn is_shrink_sealed(fd: BorrowedFd<'_>) -> io::Result<bool> {
    match rustix::fs::fcntl_get_seals(fd) {
        Ok(seals) => Ok(seals.contains(SealFlags::SHRINK)),
        Err(rustix::io::Errno::INVAL) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// `mmap(NULL, len, PROT_READ|PROT_WRITE, MAP_SHARED, fd, 0)`.
pub(crate) fn map(fd: BorrowedFd<'_>, len: usize) -> io::Result<MmapRaw> {
    MmapOptions::new().len(len).map_raw(fd.as_raw_fd())
}

/// Kind of an OFD byte-range lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    /// Shared (`F_RDLCK`).
    Read,
    /// Exclusive (`F_WRLCK`).
    Write,
}

fn flock(kind: libc::c_int, start: u64, len: u64) -> io::Result<libc::flock> {
    let overflow = || io::Error::from(io::ErrorKind::InvalidInput);
    // SAFETY: `libc::flock` is a C struct of integers; all-zero is a valid value of it.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::c_short::try_from(kind).map_err(|_| overflow())?;
    fl.l_whence = libc::c_short::try_from(libc::SEEK_SET).map_err(|_| overflow())?;
    fl.l_start = libc::off_t::try_from(start).map_err(|_| overflow())?;
    fl.l_len = libc::off_t::try_from(len).map_err(|_| overflow())?;
    // l_pid must be 0 for OFD locks.
    Ok(fl)
}

fn lock_type(kind: LockKind) -> libc::c_int {
    match kind {
        LockKind::Read => libc::F_RDLCK,
        LockKind::Write => libc::F_WRLCK,
    }
}

/// `fcntl(F_OFD_SETLK)`: try to take an open-file-description lock on `[start, start+len)`.
/// `Ok(false)` when another description holds a conflicting lock. The kernel drops the lock
/// when the last fd of this description closes, including at process death.
pub(crate) fn ofd_try_lock(
    fd: BorrowedFd<'_>,
    kind: LockKind,
    start: u64,
    len: u64,
) -> io::Result<bool> {
    let mut fl = flock(lock_type(kind), start, len)?;
    loop {
        // SAFETY: `fd` is a valid open fd for the call; `fl` is a valid, exclusively borrowed
        // `struct flock` that F_OFD_SETLK reads.
        let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_SETLK, &raw mut fl) };
        if rc == 0 {
            return Ok(true);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EAGAIN | libc::EACCES) => return Ok(false),
            Some(libc::EINTR) => continue,
            _ => return Err(err),
        }
    }
}

/// `fcntl(F_OFD_SETLKW)`: wait for an open-file-description lock on `[start, start+len)`.
/// EINTR is retried.
pub(crate) fn ofd_lock_wait(
    fd: BorrowedFd<'_>,
    kind: LockKind,
    start: u64,
    len: u64,
) -> io::Result<()> {
    let mut fl = flock(lock_type(kind), start, len)?;
    loop {
        // SAFETY: `fd` is a valid open fd for the call; `fl` is a valid, exclusively borrowed
        // `struct flock` that F_OFD_SETLKW reads.
        let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_SETLKW, &raw mut fl) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

/// Release an OFD lock on `[start, start+len)`.
pub(crate) fn ofd_unlock(fd: BorrowedFd<'_>, start: u64, len: u64) -> io::Result<()> {
    let mut fl = flock(libc::F_UNLCK, start, len)?;
    // SAFETY: as in `ofd_try_lock`.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_SETLK, &raw mut fl) };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// `fcntl(F_OFD_GETLK)`: whether another open file description holds a lock on
/// `[start, start+len)` that conflicts with a lock of `kind`. Locks of our own description
/// never conflict, so this never reports our own locks.
pub(crate) fn ofd_conflicts(
    fd: BorrowedFd<'_>,
    kind: LockKind,
    start: u64,
    len: u64,
) -> io::Result<bool> {
    let mut fl = flock(lock_type(kind), start, len)?;
    // SAFETY: `fd` is valid for the call; `fl` is a valid, exclusively borrowed `struct flock`
    // that F_OFD_GETLK reads and overwrites.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_GETLK, &raw mut fl) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(libc::c_int::from(fl.l_type) != libc::F_UNLCK)
}

/// Fill `buf` from the kernel's CSPRNG.
pub(crate) fn random_bytes(buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = buf.get_mut(filled..).unwrap_or_default();
        match rustix::rand::getrandom(rest, rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

pub(crate) fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

pub(crate) fn pid() -> u32 {
    rustix::process::getpid().as_raw_nonzero().get().unsigned_abs()
}

/// The CPU this thread runs on now (vDSO `getcpu`).
pub(crate) fn current_cpu() -> usize {
    rustix::thread::sched_getcpu()
}

/// `close(fd)` of a raw fd we own; used only by the fork handler, where no `OwnedFd` exists.
pub(crate) fn close_raw(fd: RawFd) {
    // SAFETY: the caller owns `fd` (it was leaked from an `OwnedFd` into the liveness state)
    // and nothing uses it after this call. close(2) is async-signal-safe.
    unsafe {
        libc::close(fd);
    }
}

/// Leak an `OwnedFd` into a raw fd kept in process-global state.
pub(crate) fn into_raw(fd: OwnedFd) -> RawFd {
    std::os::fd::IntoRawFd::into_raw_fd(fd)
}

/// Borrow a raw fd kept in process-global state.
///
/// # Safety
/// `fd` must be open and stay open for `'a`.
pub(crate) unsafe fn borrow_raw<'a>(fd: RawFd) -> BorrowedFd<'a> {
    // SAFETY: forwarded to the caller.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

/// Register a fork child handler (`pthread_atfork(NULL, NULL, child)`).
pub(crate) fn atfork_child(child: unsafe extern "C" fn()) -> io::Result<()> {
    // SAFETY: the handler is an `extern "C"` function that stays valid for the life of the
    // process (a plain function, never unloaded).
    let rc = unsafe { libc::pthread_atfork(None, None, Some(child)) };
    if rc == 0 { Ok(()) } else { Err(io::Error::from_raw_os_error(rc)) }
}

/// Names in /dev/shm.
pub(crate) fn list_shm() -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(SHM_DIR)? {
        if let Ok(name) = entry?.file_name().into_string() {
            names.push(name);
        }
    }
    Ok(names)
}

/// `sched_yield`.
pub(crate) fn yield_now() {
    #[cfg(not(ipc_loom))]
    rustix::thread::sched_yield();
    #[cfg(ipc_loom)]
    loom::thread::yield_now();
}

#[cfg(not(ipc_loom))]
mod membarrier {
    use std::sync::atomic::{AtomicU8, Ordering};

    use rustix::thread::{MembarrierCommand, membarrier};

    const UNKNOWN: u8 = 0;
    const REGISTERED: u8 = 1;
    const UNAVAILABLE: u8 = 2;

    /// Process-wide: whether this process registered for GLOBAL_EXPEDITED membarriers. A
    /// forked child inherits both the registration and this value.
    static MODE: AtomicU8 = AtomicU8::new(UNKNOWN);

    /// Whether this process is registered (then `EventCount` notifiers use a compiler fence
    /// only); registers on first use.
    #[inline]
    pub(crate) fn membarrier_registered() -> bool {
        // Relaxed: process-local and monotonic (UNKNOWN -> final). A thread that still sees
        // UNKNOWN registers (idempotent) or takes the RMW fallback, both correct.
        match MODE.load(Ordering::Relaxed) {
            REGISTERED => true,
            UNAVAILABLE => false,
            _ => register(),
        }
    }

    #[cold]
    #[inline(never)]
    fn register() -> bool {
        let ok = membarrier(MembarrierCommand::RegisterGlobalExpedited).is_ok();
        // Relaxed: as above; the registration syscall is complete before this store.
        MODE.store(if ok { REGISTERED } else { UNAVAILABLE }, Ordering::Relaxed);
        ok
    }

    /// The waiter's side: a full barrier on every CPU that runs a registered process. `false`
    /// if this process cannot issue it (membarrier forbidden or missing): the waiter must then
    /// take the fallback described in `event_count.rs`.
    pub(crate) fn heavy_barrier() -> bool {
        // Relaxed: as above.
        if MODE.load(Ordering::Relaxed) == UNAVAILABLE {
            return false;
        }
        membarrier(MembarrierCommand::GlobalExpedited).is_ok()
    }
}

#[cfg(not(ipc_loom))]
pub(crate) use membarrier::{heavy_barrier, membarrier_registered};

/// A new open file description of the file behind `fd` (`open("/proc/self/fd/N", O_RDWR)`),
/// so that OFD locks taken through it are ours alone, on that very inode (never on whatever
/// a path names now).
pub(crate) fn reopen(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    Ok(rustix::fs::open(path, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())?)
}
