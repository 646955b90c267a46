//! The socket file of a filesystem-path listener: a verified directory, a lock file that
//! proves a live listener, safe reclaiming of a dead listener's socket, removal on drop.
//!
//! 1. The parent directory is opened once (`O_PATH|O_DIRECTORY|O_NOFOLLOW`) and checked by
//!    `fstat` on that fd: a directory (not a symlink), owned by us, writable by nobody else
//!    (or, when allowed, a sticky shared directory such as `/tmp`). Everything after goes
//!    through that fd (`openat`, `statat`, `unlinkat`, and `bind` on
//!    `/proc/self/fd/<dirfd>/<name>`), so the directory cannot be swapped under us.
//! 2. `<name>.lock` is opened (`O_NOFOLLOW`, ours, a regular file) and `flock`ed exclusively
//!    without waiting; a held lock means a live listener: `AddrInUse`. After locking, the
//!    lock file at the path must still be the inode we hold (a listener removing its lock file
//!    as it exits cannot hand two processes the lock).
//! 3. Under the lock, whatever sits at the socket path is looked at without following it:
//!    nothing is fine; a socket of ours that refuses connections is a dead listener's and is
//!    removed; a socket that accepts is a live listener that does not use our lock (Python's,
//!    say): `AddrInUse`; a socket of another user, a file, a symlink, a directory, a FIFO:
//!    `AddrInUse`, left exactly as it is. The connect probe alone never decides a removal;
//!    the lock does (two listeners cannot reclaim the same path at once).
//! 4. On drop the socket file is removed if it is still the one we bound, then the lock file,
//!    then the lock is released.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, FlockOperation, Mode, OFlags};
use rustix::io::Errno;

use crate::error::{Error, Result};
use crate::sys;

/// Longest `sun_path` (without its NUL).
pub(crate) const MAX_SUN_PATH: usize = 107;

/// Checks on the socket directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DirRules {
    /// Create the directory (0700) if it does not exist.
    pub(crate) create: bool,
    /// Accept a sticky directory others can write (`/tmp`): squatting is then possible (we
    /// refuse, never follow or delete), hijacking is not.
    pub(crate) allow_shared: bool,
}

/// A prepared path: directory verified, lock held, path free.
#[derive(Debug)]
pub(crate) struct Prepared {
    dir: OwnedFd,
    name: OsString,
    lock_name: OsString,
    /// Held (flock) for the listener's lifetime; closing it releases the lock.
    _lock: OwnedFd,
    lock_ident: (u64, u64),
    /// Our pid when we prepared it.
    pid: u32,
    /// `/proc/self/fd/<dirfd>/<name>`: bind here.
    pub(crate) bind_path: PathBuf,
}

/// The bound socket file; removed on drop.
#[derive(Debug)]
pub(crate) struct SocketFile {
    p: Prepared,
    ident: Option<(u64, u64)>,
}

/// The process that made a prepared path: only it removes the files (a forked child that
/// inherited the listener and exits must not unlink its parent's socket, as CPython's
/// `Finalize` also checks).
fn is_owner(pid: u32) -> bool {
    pid == std::process::id()
}

fn ident(st: &rustix::fs::Stat) -> (u64, u64) {
    (st.st_dev, st.st_ino)
}

fn kind_name(t: FileType) -> &'static str {
    match t {
        FileType::RegularFile => "regular file",
        FileType::Directory => "directory",
        FileType::Symlink => "symlink",
        FileType::Fifo => "FIFO",
        FileType::Socket => "socket",
        FileType::CharacterDevice => "character device",
        FileType::BlockDevice => "block device",
        _ => "file of unknown type",
    }
}

/// Verify the directory of `path`, take its lock and make the path free for `bind`.
pub(crate) fn prepare(path: &Path, rules: DirRules) -> Result<Prepared> {
    let op = "bind";
    let object = || format!("{:?}", path.display().to_string());
    let bad = |reason: &'static str| Error::InvalidAddress { op, object: object(), reason };
    let name = path.file_name().ok_or_else(|| bad("the path has no file name"))?.to_owned();
    if path.as_os_str().as_bytes().contains(&0) {
        return Err(bad(
            "the path contains a NUL byte (use Address::abstract_name for abstract names)",
        ));
    }
    if path.as_os_str().len() > MAX_SUN_PATH {
        return Err(bad("the path is longer than 107 bytes (sun_path)"));
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = open_dir(parent, rules).map_err(|reason| Error::UnsafeDirectory {
        op,
        object: object(),
        reason,
    })?;
    let bind_path = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd())).join(&name);
    if bind_path.as_os_str().len() > MAX_SUN_PATH {
        return Err(bad("the file name is too long for sun_path"));
    }
    let mut lock_name = name.clone();
    lock_name.push(".lock");
    let (lock, lock_ident) = take_lock(&dir, &lock_name, &object)?;
    let p = Prepared {
        dir,
        name,
        lock_name,
        _lock: lock,
        lock_ident,
        pid: std::process::id(),
        bind_path,
    };
    clear_path(&p, &object)?;
    Ok(p)
}

fn open_dir(parent: &Path, rules: DirRules) -> std::result::Result<OwnedFd, String> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let dir = match rustix::fs::openat(CWD, parent, flags, Mode::empty()) {
        Ok(d) => d,
        Err(Errno::NOENT) if rules.create => {
            match rustix::fs::mkdirat(CWD, parent, Mode::from_raw_mode(0o700)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(format!("cannot create it: {}", io::Error::from(e))),
            }
            rustix::fs::openat(CWD, parent, flags, Mode::empty())
                .map_err(|e| format!("cannot open it: {}", io::Error::from(e)))?
        }
        Err(Errno::LOOP | Errno::NOTDIR) => {
            return Err("it is a symlink or not a directory".to_owned());
        }
        Err(e) => return Err(format!("cannot open it: {}", io::Error::from(e))),
    };
    let st = rustix::fs::fstat(&dir).map_err(|e| format!("fstat: {}", io::Error::from(e)))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return Err("not a directory".to_owned());
    }
    let me = sys::euid();
    let mode = st.st_mode & 0o7777;
    let sticky = mode & 0o1000 != 0;
    if rules.allow_shared && sticky && (st.st_uid == me || st.st_uid == 0) {
        return Ok(dir);
    }
    // What to do instead, said where the check fails.
    let hint = if sticky {
        "; bind in a private directory (ours, mode 0700, such as $XDG_RUNTIME_DIR), or allow \
         this shared sticky one with ListenerOptions::allow_shared_dir(true)"
    } else {
        "; bind in a private directory (ours, mode 0700, such as $XDG_RUNTIME_DIR)"
    };
    if st.st_uid != me {
        return Err(format!("owned by uid {}, not by us (uid {me}){hint}", st.st_uid));
    }
    if mode & 0o022 != 0 {
        return Err(format!("mode {mode:#o} lets group or others write in it{hint}"));
    }
    Ok(dir)
}

fn take_lock(
    dir: &OwnedFd,
    lock_name: &OsStr,
    object: &dyn Fn() -> String,
) -> Result<(OwnedFd, (u64, u64))> {
    let op = "bind";
    let io_err = |e: Errno| Error::io(op, object(), e);
    for _ in 0..16 {
        let flags = OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let lock = match rustix::fs::openat(dir, lock_name, flags, Mode::from_raw_mode(0o600)) {
            Ok(f) => f,
            Err(e) => {
                // A symlink (ELOOP, or EACCES under fs.protected_symlinks in a sticky
                // directory) or someone else's file: say what is there, touch nothing.
                return Err(match rustix::fs::statat(dir, lock_name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st)
                        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile
                            || st.st_uid != sys::euid() =>
                    {
                        Error::AddrInUse {
                            op,
                            object: object(),
                            reason: format!(
                                "a {} of uid {} sits at the lock file {lock_name:?}; left alone",
                                kind_name(FileType::from_raw_mode(st.st_mode)),
                                st.st_uid
                            ),
                        }
                    }
                    _ => io_err(e),
                });
            }
        };
        let st = rustix::fs::fstat(&lock).map_err(io_err)?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile || st.st_uid != sys::euid()
        {
            return Err(Error::AddrInUse {
                op,
                object: object(),
                reason: format!(
                    "the lock file {lock_name:?} is a {} of uid {}; left alone",
                    kind_name(FileType::from_raw_mode(st.st_mode)),
                    st.st_uid
                ),
            });
        }
        match rustix::fs::flock(&lock, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(Errno::WOULDBLOCK) => {
                return Err(Error::AddrInUse {
                    op,
                    object: object(),
                    reason: "a live listener holds its lock file".to_owned(),
                });
            }
            Err(e) => return Err(io_err(e)),
        }
        // The file we locked must still be the one at the path: a listener that removed its
        // lock file while we waited to open it left us holding an orphan.
        match rustix::fs::statat(dir, lock_name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(now) if ident(&now) == ident(&st) => return Ok((lock, ident(&st))),
            Ok(_) | Err(Errno::NOENT) => continue,
            Err(e) => return Err(io_err(e)),
        }
    }
    Err(Error::AddrInUse {
        op,
        object: object(),
        reason: "its lock file keeps being replaced".to_owned(),
    })
}

/// With the lock held: make the socket path free, or say why it is not.
fn clear_path(p: &Prepared, object: &dyn Fn() -> String) -> Result<()> {
    let op = "bind";
    let in_use = |reason: String| Error::AddrInUse { op, object: object(), reason };
    let st = match rustix::fs::statat(&p.dir, &p.name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(Error::io(op, object(), e)),
    };
    let kind = FileType::from_raw_mode(st.st_mode);
    if kind != FileType::Socket {
        return Err(in_use(format!(
            "a {} sits at the path; it is neither followed nor removed",
            kind_name(kind)
        )));
    }
    if st.st_uid != sys::euid() {
        return Err(in_use(format!("a socket of uid {} sits at the path; left alone", st.st_uid)));
    }
    match probe(&p.bind_path) {
        Ok(()) => Err(in_use(
            "a live listener (one that does not take our lock) accepts on it".to_owned(),
        )),
        Err(Errno::CONNREFUSED) => {
            // A dead listener's socket, and we hold the lock: reclaim it.
            match rustix::fs::unlinkat(&p.dir, &p.name, AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => Ok(()),
                Err(e) => Err(Error::io(op, object(), e)),
            }
        }
        Err(Errno::AGAIN) => Err(in_use("a live listener (backlog full) accepts on it".to_owned())),
        Err(e) => Err(Error::io("probe the socket at", object(), e)),
    }
}

/// Try to connect (without waiting) to the socket at `path`.
fn probe(path: &Path) -> std::result::Result<(), Errno> {
    let s = rustix::net::socket_with(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::STREAM,
        rustix::net::SocketFlags::CLOEXEC | rustix::net::SocketFlags::NONBLOCK,
        None,
    )?;
    let addr = rustix::net::SocketAddrUnix::new(path)?;
    match rustix::net::connect(&s, &addr) {
        Ok(()) | Err(Errno::INPROGRESS) => Ok(()),
        Err(e) => Err(e),
    }
}

impl Prepared {
    /// After `bind`: set the socket file's mode exactly (`bind` applied the umask) and
    /// remember its inode so drop removes only our own socket file.
    pub(crate) fn bound(self, mode: u32) -> std::io::Result<SocketFile> {
        let st = rustix::fs::statat(&self.dir, &self.name, AtFlags::SYMLINK_NOFOLLOW)?;
        if FileType::from_raw_mode(st.st_mode) != FileType::Socket {
            return Err(std::io::Error::other("the bound socket file was replaced"));
        }
        if st.st_mode & 0o7777 != mode {
            // Our own fresh socket in a directory only we (or, sticky, only its owners) can
            // change entries of: chmod by name cannot be redirected.
            rustix::fs::chmodat(
                &self.dir,
                &self.name,
                Mode::from_raw_mode(mode),
                AtFlags::empty(),
            )?;
        }
        Ok(SocketFile { p: self, ident: Some(ident(&st)) })
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if let Some(id) = self.ident
            && is_owner(self.p.pid)
            && let Ok(st) = rustix::fs::statat(&self.p.dir, &self.p.name, AtFlags::SYMLINK_NOFOLLOW)
            && ident(&st) == id
        {
            let _ = rustix::fs::unlinkat(&self.p.dir, &self.p.name, AtFlags::empty());
        }
        // Then `p` drops: the lock file goes, then the lock.
    }
}

/// A prepared path that is dropped (bind failed, or the listener is gone) removes its lock
/// file while still holding the lock; the lock is released when `_lock` closes right after.
impl Drop for Prepared {
    fn drop(&mut self) {
        if is_owner(self.pid)
            && let Ok(st) =
                rustix::fs::statat(&self.dir, &self.lock_name, AtFlags::SYMLINK_NOFOLLOW)
            && ident(&st) == self.lock_ident
        {
            let _ = rustix::fs::unlinkat(&self.dir, &self.lock_name, AtFlags::empty());
        }
    }
}
