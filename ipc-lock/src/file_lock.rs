//! [`FileLock`]: a shared or exclusive lock on a file, over open-file-description (OFD)
//! record locks, released by the kernel when the process dies.

use std::fs::{File, OpenOptions};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ipc_shm::ofd::{self, LockKind};
use ipc_shm::{Deadline, ProcessToken};

use crate::error::{Error, Result};

/// The whole file, however it grows (`ofd`'s ranges: start 0, length 0 = to the end).
const WHOLE: (u64, u64) = (0, 0);

/// A lock on a file path, shared (readers) or exclusive (one writer), between processes
/// and between separate `FileLock`s of one process.
///
/// Over Linux OFD locks (`F_OFD_SETLK`): the lock belongs to this handle's open file
/// description, so it is never silently dropped when some other fd of the file is closed
/// (the classic POSIX-lock trap), and the kernel drops it when the process dies, even by
/// SIGKILL. It conflicts with POSIX record locks (`fcntl`, Python's `fcntl.lockf`), so it
/// interoperates with them.
///
/// Locking takes `&mut self`: one handle holds at most one lock at a time (two locks through
/// one open file description would not exclude each other). Threads that need the lock each
/// open their own `FileLock`.
///
/// The timed forms poll with a bounded backoff (100 µs doubling to 10 ms): the kernel has no
/// timed OFD wait.
#[derive(Debug)]
pub struct FileLock {
    file: File,
    path: PathBuf,
}

/// A held [`FileLock`]; released when dropped.
#[derive(Debug)]
#[must_use = "if unused the file lock is released at once"]
pub struct FileLockGuard<'a> {
    lock: &'a mut FileLock,
    kind: LockKind,
    /// The process that took the lock. A forked child shares the open file description (and
    /// so the lock): its copy of the guard must not unlock it.
    taken_by: ProcessToken,
}

const BACKOFF_FIRST: Duration = Duration::from_micros(100);
const BACKOFF_MAX: Duration = Duration::from_millis(10);

impl FileLock {
    /// Open (creating it with mode 0600 if needed) the lock file at `path`. A symlink at the
    /// path is refused (`O_NOFOLLOW`), so a planted link cannot redirect the open.
    ///
    /// # Errors
    /// [`Error::File`] with the OS error.
    pub fn open(path: impl AsRef<Path>) -> Result<FileLock> {
        Self::open_with_mode(path, 0o600)
    }

    /// [`open`](Self::open), creating the file with `mode` (subject to the umask).
    ///
    /// # Errors
    /// [`Error::File`] with the OS error.
    pub fn open_with_mode(path: impl AsRef<Path>, mode: u32) -> Result<FileLock> {
        let path = path.as_ref().to_path_buf();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(mode)
            // std opens with O_CLOEXEC.
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits().cast_signed())
            .open(&path)
            .map_err(|source| Error::File { op: "open", path: path.clone(), source })?;
        Ok(FileLock { file, path })
    }

    /// Lock through an already open file (it must be open for writing to take exclusive
    /// locks). `path` is only used in error messages.
    pub fn from_file(file: File, path: impl AsRef<Path>) -> FileLock {
        FileLock { file, path: path.as_ref().to_path_buf() }
    }

    /// The path given at open.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file.
    pub fn file(&self) -> &File {
        &self.file
    }

    fn err(&self, op: &'static str, source: std::io::Error) -> Error {
        Error::File { op, path: self.path.clone(), source }
    }

    fn guard(&mut self, kind: LockKind) -> FileLockGuard<'_> {
        FileLockGuard { lock: self, kind, taken_by: ProcessToken::current() }
    }

    fn take(&mut self, kind: LockKind) -> Result<FileLockGuard<'_>> {
        let (start, len) = WHOLE;
        ofd::lock(self.file.as_fd(), kind, start, len).map_err(|e| self.err("lock", e))?;
        Ok(self.guard(kind))
    }

    fn try_take(&mut self, kind: LockKind) -> Result<Option<FileLockGuard<'_>>> {
        let (start, len) = WHOLE;
        let got =
            ofd::try_lock(self.file.as_fd(), kind, start, len).map_err(|e| self.err("lock", e))?;
        Ok(if got { Some(self.guard(kind)) } else { None })
    }

    fn take_until(
        &mut self,
        kind: LockKind,
        deadline: Deadline,
    ) -> Result<Option<FileLockGuard<'_>>> {
        let Some(mut left) = deadline.remaining() else { return self.take(kind).map(Some) };
        let (start, len) = WHOLE;
        let mut pause = BACKOFF_FIRST;
        loop {
            let got = ofd::try_lock(self.file.as_fd(), kind, start, len)
                .map_err(|e| self.err("lock", e))?;
            if got {
                return Ok(Some(self.guard(kind)));
            }
            if left.is_zero() {
                return Ok(None);
            }
            // Polling with a bounded backoff: the kernel offers no timed OFD wait.
            std::thread::sleep(pause.min(left));
            pause = (pause * 2).min(BACKOFF_MAX);
            left = deadline.remaining().unwrap_or_default();
        }
    }

    /// Take the exclusive lock, blocking (`F_OFD_SETLKW`).
    ///
    /// # Errors
    /// [`Error::File`] (EDEADLK is not reported for OFD locks; a deadlock blocks).
    pub fn lock(&mut self) -> Result<FileLockGuard<'_>> {
        self.take(LockKind::Write)
    }

    /// Take a shared lock, blocking.
    ///
    /// # Errors
    /// As [`lock`](Self::lock).
    pub fn lock_shared(&mut self) -> Result<FileLockGuard<'_>> {
        self.take(LockKind::Read)
    }

    /// Take the exclusive lock if nobody holds a lock now; `Ok(None)` otherwise.
    ///
    /// # Errors
    /// [`Error::File`].
    pub fn try_lock(&mut self) -> Result<Option<FileLockGuard<'_>>> {
        self.try_take(LockKind::Write)
    }

    /// Take a shared lock if nobody holds the exclusive one now; `Ok(None)` otherwise.
    ///
    /// # Errors
    /// [`Error::File`].
    pub fn try_lock_shared(&mut self) -> Result<Option<FileLockGuard<'_>>> {
        self.try_take(LockKind::Read)
    }

    /// Take the exclusive lock, waiting at most `timeout`; `Ok(None)` on timeout.
    ///
    /// # Errors
    /// [`Error::File`].
    pub fn try_lock_for(&mut self, timeout: Duration) -> Result<Option<FileLockGuard<'_>>> {
        self.take_until(LockKind::Write, Deadline::after(timeout))
    }

    /// Take a shared lock, waiting at most `timeout`; `Ok(None)` on timeout.
    ///
    /// # Errors
    /// [`Error::File`].
    pub fn try_lock_shared_for(&mut self, timeout: Duration) -> Result<Option<FileLockGuard<'_>>> {
        self.take_until(LockKind::Read, Deadline::after(timeout))
    }

    /// Take the exclusive lock, waiting until `deadline` at most.
    ///
    /// # Errors
    /// [`Error::File`].
    pub fn try_lock_until(&mut self, deadline: Instant) -> Result<Option<FileLockGuard<'_>>> {
        self.take_until(LockKind::Write, deadline.into())
    }

    /// Take a shared lock, waiting until `deadline` at most.
    ///
    /// # Errors
    /// [`Error::File`].
    pub fn try_lock_shared_until(
        &mut self,
        deadline: Instant,
    ) -> Result<Option<FileLockGuard<'_>>> {
        self.take_until(LockKind::Read, deadline.into())
    }

    /// Whether another open file description (another process, or another `FileLock`) holds
    /// a lock that would block an exclusive lock now (a snapshot, `F_OFD_GETLK`).
    ///
    /// # Errors
    /// [`Error::File`].
    pub fn is_locked_elsewhere(&self) -> Result<bool> {
        let (start, len) = WHOLE;
        ofd::conflicts(self.file.as_fd(), LockKind::Write, start, len)
            .map_err(|e| self.err("query", e))
    }
}

impl FileLockGuard<'_> {
    /// Whether this is a shared (rather than exclusive) lock.
    pub fn is_shared(&self) -> bool {
        self.kind == LockKind::Read
    }

    /// Release now, reporting a failure (dropping the guard releases and ignores errors).
    ///
    /// # Errors
    /// [`Error::File`].
    pub fn unlock(self) -> Result<()> {
        let this = std::mem::ManuallyDrop::new(self);
        if !this.taken_by.is_current() {
            return Ok(()); // a forked child's copy: the lock is the parent's
        }
        let (start, len) = WHOLE;
        ofd::unlock(this.lock.file.as_fd(), start, len).map_err(|e| this.lock.err("unlock", e))
    }
}

impl Drop for FileLockGuard<'_> {
    fn drop(&mut self) {
        // Only in the process that locked: a forked child shares the open file description,
        // and an unlock there would release the parent's lock.
        if self.taken_by.is_current() {
            let (start, len) = WHOLE;
            let _ = ofd::unlock(self.lock.file.as_fd(), start, len);
        }
    }
}
