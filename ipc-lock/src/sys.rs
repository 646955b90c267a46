//! The only place ipc-lock calls the OS directly (besides ipc-shm's safe futex and liveness
//! APIs): open-file-description record locks for [`FileLock`](crate::FileLock).
//!
//! libc, because rustix's `fcntl_lock` is `F_SETLK`, the process-associated lock that any
//! `close` of any fd of the file in the process drops (and that threads of one process share).
//! OFD locks (`F_OFD_SETLK`, Linux 3.15) belong to the open file description: two opens
//! conflict even within one process, and the kernel drops the lock when the last fd of the
//! description closes, including at process death. They conflict with classic POSIX locks
//! (Python's `fcntl.lockf`), so the two interoperate.
//!
//! - [fcntl(2), "Open file description locks"](https://man7.org/linux/man-pages/man2/fcntl.2.html)
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Kind of an OFD lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockKind {
    /// Shared (`F_RDLCK`).
    Shared,
    /// Exclusive (`F_WRLCK`).
    Exclusive,
}

fn whole_file(kind: libc::c_int) -> io::Result<libc::flock> {
    let invalid = || io::Error::from(io::ErrorKind::InvalidInput);
    // SAFETY: `libc::flock` is a C struct of integers; all-zero is a valid value of it.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::c_short::try_from(kind).map_err(|_| invalid())?;
    fl.l_whence = libc::c_short::try_from(libc::SEEK_SET).map_err(|_| invalid())?;
    // l_start = 0, l_len = 0: the whole file, however it grows. l_pid must be 0 for OFD locks.
    Ok(fl)
}

fn lock_type(kind: LockKind) -> libc::c_int {
    match kind {
        LockKind::Shared => libc::F_RDLCK,
        LockKind::Exclusive => libc::F_WRLCK,
    }
}

/// `fcntl(F_OFD_SETLK)` (`block == false`) or `F_OFD_SETLKW` on the whole file. `Ok(false)`
/// when a conflicting lock is held and `block` is false. EINTR is retried.
pub(crate) fn ofd_lock(fd: BorrowedFd<'_>, kind: LockKind, block: bool) -> io::Result<bool> {
    let mut fl = whole_file(lock_type(kind))?;
    let cmd = if block { libc::F_OFD_SETLKW } else { libc::F_OFD_SETLK };
    loop {
        // SAFETY: `fd` is open for the call; `fl` is a valid, exclusively borrowed
        // `struct flock` the kernel reads.
        let rc = unsafe { libc::fcntl(fd.as_raw_fd(), cmd, &raw mut fl) };
        if rc == 0 {
            return Ok(true);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EAGAIN | libc::EACCES) if !block => return Ok(false),
            Some(libc::EINTR) => continue,
            _ => return Err(err),
        }
    }
}

/// Release our OFD lock on the whole file.
pub(crate) fn ofd_unlock(fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut fl = whole_file(libc::F_UNLCK)?;
    loop {
        // SAFETY: as in `ofd_lock`.
        let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_SETLK, &raw mut fl) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

/// `fcntl(F_OFD_GETLK)`: whether another open file description holds a lock on the file that
/// conflicts with a lock of `kind` (our own description's locks never conflict).
pub(crate) fn ofd_conflicts(fd: BorrowedFd<'_>, kind: LockKind) -> io::Result<bool> {
    let mut fl = whole_file(lock_type(kind))?;
    // SAFETY: as in `ofd_lock`; F_OFD_GETLK also writes `fl`, which we own.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_GETLK, &raw mut fl) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(libc::c_int::from(fl.l_type) != libc::F_UNLCK)
}

/// Register `child` to run in the child after every `fork` (`pthread_atfork`).
pub(crate) fn atfork_child(child: extern "C" fn()) -> io::Result<()> {
    // SAFETY: `child` is an `extern "C"` function that stays valid for the life of the
    // process (a plain function, never unloaded); no prepare or parent handlers.
    let rc = unsafe { libc::pthread_atfork(None, None, Some(child)) };
    if rc == 0 { Ok(()) } else { Err(io::Error::from_raw_os_error(rc)) }
}

/// This process's pid (`getpid`; uncached by glibc, so always right after `fork`).
pub(crate) fn pid() -> u32 {
    rustix::process::getpid().as_raw_nonzero().get().cast_unsigned()
}
