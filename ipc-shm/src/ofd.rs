//! Open-file-description record locks (`F_OFD_SETLK`, Linux 3.15): the kernel-released
//! locks the whole family stands on (liveness leases, segment use and init locks, and
//! ipc-lock's `FileLock`).
//!
//! They belong to the open file description, not the process: two opens of one file conflict
//! even within one process, the kernel drops a lock when the last fd of its description
//! closes (at process death too, SIGKILL included), and a forked child *shares* its parent's
//! descriptions, and so its locks (re-open the file for a lock of its own). They conflict with
//! classic POSIX locks (Python's `fcntl.lockf`), so the two interoperate. rustix's
//! `fcntl_lock` is the process-associated `F_SETLK`, which any `close` of the file drops:
//! these wrap libc.
//!
//! Ranges are `[start, start + len)`; `len == 0` means "to the end of the file, however it
//! grows" (so `0, 0` is the whole file).
//!
//! - [fcntl(2), "Open file description locks"](https://man7.org/linux/man-pages/man2/fcntl.2.html)

use std::io;
use std::os::fd::BorrowedFd;

pub use crate::sys::LockKind;

/// Take a lock if no other description holds a conflicting one: `Ok(false)` if one does.
/// EINTR is retried.
///
/// # Errors
/// The OS error (a bad fd, a range beyond `off_t`, ...).
pub fn try_lock(fd: BorrowedFd<'_>, kind: LockKind, start: u64, len: u64) -> io::Result<bool> {
    crate::sys::ofd_try_lock(fd, kind, start, len)
}

/// Take a lock, waiting (`F_OFD_SETLKW`) while another description holds a conflicting one.
/// EINTR is retried.
///
/// # Errors
/// As [`try_lock`]; `EDEADLK` if the kernel detects a deadlock.
pub fn lock(fd: BorrowedFd<'_>, kind: LockKind, start: u64, len: u64) -> io::Result<()> {
    crate::sys::ofd_lock_wait(fd, kind, start, len)
}

/// Release this description's lock on the range.
///
/// # Errors
/// As [`try_lock`].
pub fn unlock(fd: BorrowedFd<'_>, start: u64, len: u64) -> io::Result<()> {
    crate::sys::ofd_unlock(fd, start, len)
}

/// Whether *another* description holds a lock on the range that conflicts with a lock of
/// `kind` (`F_OFD_GETLK`; a snapshot). This description's own locks never conflict.
///
/// # Errors
/// As [`try_lock`].
pub fn conflicts(fd: BorrowedFd<'_>, kind: LockKind, start: u64, len: u64) -> io::Result<bool> {
    crate::sys::ofd_conflicts(fd, kind, start, len)
}
