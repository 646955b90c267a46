//! [`NamedSemaphore`]: a POSIX named semaphore (`sem_open`), shared by name with C programs
//! (`sem_open("/name", ...)`) and Python's `posix_ipc.Semaphore("/name")`.
//!
//! This is the system's semaphore, with the system's semantics: **not robust** (a holder
//! killed while holding leaks its permit, as with every POSIX semaphore; use a tracked
//! [`Semaphore`](crate::Semaphore) when that matters), not bounded, and its timed wait takes
//! a `CLOCK_REALTIME` deadline (recomputed from the monotonic time left after each EINTR).
//!
//! Names follow the family's rule (`[A-Za-z0-9._-]{1,200}`, not `.` or `..`); the POSIX name
//! is `/` + name, the file `/dev/shm/sem.<name>`. `create` makes it with `O_CREAT|O_EXCL`
//! and then sets the mode exactly (default 0600, whatever the umask); `open` refuses a
//! semaphore owned by another user or whose mode grants more than asked (0600 by default).

use std::ffi::CString;
use std::fmt;
use std::fs::{self, File, Permissions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::time::{Duration, Instant};

use ipc_shm::Deadline;

use crate::error::{Error, Result};
use crate::sys::{self, OpenHow, RawSem};

/// The default mode of a created named semaphore, and the widest `open` accepts by default.
pub const DEFAULT_MODE: u32 = 0o600;

/// A POSIX named semaphore. See the module docs.
///
/// ```
/// # fn main() -> Result<(), ipc_sem::Error> {
/// use ipc_sem::NamedSemaphore;
///
/// let name = format!("doc-named-{}", std::process::id());
/// let sem = NamedSemaphore::create(&name, 1)?;
/// let other = NamedSemaphore::open(&name)?; // any process of this user, in C or Python too
/// other.acquire()?;
/// assert!(!sem.try_acquire()?);
/// sem.release()?;
/// assert_eq!(other.value()?, 1);
/// NamedSemaphore::unlink(&name)?;
/// # Ok(()) }
/// ```
pub struct NamedSemaphore {
    raw: RawSem,
    name: String,
}

impl fmt::Debug for NamedSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NamedSemaphore").field("name", &self.name).finish()
    }
}

fn posix_name(op: &'static str, name: &str) -> Result<CString> {
    if ipc_shm::validate_name(name).is_err() {
        return Err(Error::InvalidName { op, name: name.to_owned() });
    }
    CString::new(format!("/{name}")).map_err(|_| Error::InvalidName { op, name: name.to_owned() })
}

/// The file glibc keeps a named semaphore in.
fn path_of(name: &str) -> String {
    format!("/dev/shm/sem.{name}")
}

fn named_err<'a>(op: &'static str, name: &'a str) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Named { op, name: name.to_owned(), source }
}

/// Open the semaphore's file without following links and check it is ours.
fn own_file(op: &'static str, name: &str) -> Result<File> {
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path_of(name))
        .map_err(named_err(op, name))?;
    let meta = file.metadata().map_err(named_err(op, name))?;
    let me = sys::euid();
    if meta.uid() != me {
        return Err(Error::Untrusted {
            op,
            name: name.to_owned(),
            what: format!("owned by uid {}, not by us (uid {me})", meta.uid()),
        });
    }
    Ok(file)
}

/// A semaphore file we may use: a regular file of ours whose mode grants no more than
/// `max_mode`.
fn check_file(op: &'static str, name: &str, meta: &fs::Metadata, max_mode: u32) -> Result<()> {
    let me = sys::euid();
    let untrusted = |what: String| Err(Error::Untrusted { op, name: name.to_owned(), what });
    if meta.uid() != me {
        return untrusted(format!("owned by uid {}, not by us (uid {me})", meta.uid()));
    }
    if !meta.file_type().is_file() {
        return untrusted("not a regular file".to_owned());
    }
    let mode = meta.mode() & 0o7777;
    if mode & !max_mode != 0 {
        return untrusted(format!("mode {mode:#o} grants more than {max_mode:#o}"));
    }
    Ok(())
}

impl NamedSemaphore {
    /// Create a named semaphore holding `value` permits, mode 0600. Fails if the name exists.
    ///
    /// # Errors
    /// [`Error::InvalidName`]; [`Error::Named`] (`AlreadyExists`, permission, ...).
    pub fn create(name: &str, value: u32) -> Result<NamedSemaphore> {
        Self::create_with_mode(name, value, DEFAULT_MODE)
    }

    /// Create with an explicit mode (set exactly, whatever the umask).
    ///
    /// # Errors
    /// As [`create`](Self::create); [`Error::InvalidArgument`] for a mode with bits beyond
    /// 0o777 or a value above `SEM_VALUE_MAX`.
    pub fn create_with_mode(name: &str, value: u32, mode: u32) -> Result<NamedSemaphore> {
        const OP: &str = "create";
        let cname = posix_name(OP, name)?;
        if mode & !0o777 != 0 || value > i32::MAX as u32 {
            return Err(Error::InvalidArgument {
                op: OP,
                object: "named semaphore",
                what: format!("mode {mode:#o} / value {value} out of range"),
            });
        }
        let raw =
            sys::sem_open(&cname, OpenHow::Create { mode, value }).map_err(named_err(OP, name))?;
        // The umask can only have narrowed the mode; set it exactly now.
        let fixed = own_file(OP, name).and_then(|f| {
            f.set_permissions(Permissions::from_mode(mode)).map_err(named_err(OP, name))
        });
        if let Err(e) = fixed {
            drop(raw);
            let _ = sys::sem_unlink(&cname);
            return Err(e);
        }
        Ok(NamedSemaphore { raw, name: name.to_owned() })
    }

    /// Open an existing named semaphore made by this user with a mode no wider than 0600.
    ///
    /// # Errors
    /// [`Error::InvalidName`]; [`Error::Named`] (`NotFound`, ...); [`Error::Untrusted`] if
    /// another user owns it or its mode grants more than 0600.
    pub fn open(name: &str) -> Result<NamedSemaphore> {
        Self::open_with_mode(name, DEFAULT_MODE)
    }

    /// Open, accepting a mode up to `max_mode` (e.g. 0o660 for a group-shared semaphore).
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_with_mode(name: &str, max_mode: u32) -> Result<NamedSemaphore> {
        const OP: &str = "open";
        let cname = posix_name(OP, name)?;
        // Check the file before sem_open opens and maps it: a file planted by another user (a
        // FIFO, a device, something it may truncate under our mapping) is refused untouched.
        // /dev/shm is sticky, so a file of ours cannot be swapped by another user in between.
        check_file(
            OP,
            name,
            &fs::symlink_metadata(path_of(name)).map_err(named_err(OP, name))?,
            max_mode,
        )?;
        let raw = sys::sem_open(&cname, OpenHow::Existing).map_err(named_err(OP, name))?;
        // And again on what is there now (a same-user race cannot widen what we accept).
        check_file(
            OP,
            name,
            &own_file(OP, name)?.metadata().map_err(named_err(OP, name))?,
            max_mode,
        )?;
        Ok(NamedSemaphore { raw, name: name.to_owned() })
    }

    /// Open the named semaphore, or create it holding `value` if there is none.
    ///
    /// # Errors
    /// As [`create`](Self::create) and [`open`](Self::open).
    pub fn open_or_create(name: &str, value: u32) -> Result<NamedSemaphore> {
        for _ in 0..16 {
            match Self::create(name, value) {
                Err(e)
                    if e.os_error().is_some_and(|e| e.kind() == io::ErrorKind::AlreadyExists) => {}
                other => return other,
            }
            match Self::open(name) {
                Err(e) if e.os_error().is_some_and(|e| e.kind() == io::ErrorKind::NotFound) => {}
                other => return other,
            }
        }
        Err(Error::Named {
            op: "open or create",
            name: name.to_owned(),
            source: io::Error::other("the name kept appearing and disappearing"),
        })
    }

    /// Remove the name (processes that have it open keep using it).
    ///
    /// # Errors
    /// [`Error::InvalidName`]; [`Error::Named`] (`NotFound`, ...).
    pub fn unlink(name: &str) -> Result<()> {
        const OP: &str = "unlink";
        let cname = posix_name(OP, name)?;
        sys::sem_unlink(&cname).map_err(named_err(OP, name))
    }

    /// Whether a named semaphore of this name exists.
    pub fn exists(name: &str) -> bool {
        fs::symlink_metadata(path_of(name)).is_ok()
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Take a permit, waiting as long as it takes (`sem_wait`).
    ///
    /// # Errors
    /// [`Error::Named`] if the OS refuses.
    pub fn acquire(&self) -> Result<()> {
        self.raw.wait().map_err(named_err("acquire", &self.name))
    }

    /// Take a permit if one is free now (`sem_trywait`); `Ok(false)` if none is.
    ///
    /// # Errors
    /// [`Error::Named`] if the OS refuses.
    pub fn try_acquire(&self) -> Result<bool> {
        self.raw.try_wait().map_err(named_err("try_acquire", &self.name))
    }

    /// Take a permit, waiting at most `timeout` (`sem_timedwait`); `Ok(false)` on timeout.
    ///
    /// # Errors
    /// [`Error::Named`] if the OS refuses.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<bool> {
        match Deadline::after(timeout).instant() {
            Some(deadline) => self.acquire_until(deadline),
            None => self.acquire().map(|()| true),
        }
    }

    /// Take a permit, waiting until `deadline` at most; `Ok(false)` on timeout.
    ///
    /// # Errors
    /// [`Error::Named`] if the OS refuses.
    pub fn acquire_until(&self, deadline: Instant) -> Result<bool> {
        self.raw.wait_until(deadline).map_err(named_err("acquire", &self.name))
    }

    /// Release a permit (`sem_post`).
    ///
    /// # Errors
    /// [`Error::Named`] (`EOVERFLOW` past `SEM_VALUE_MAX`).
    pub fn release(&self) -> Result<()> {
        self.raw.post().map_err(named_err("release", &self.name))
    }

    /// Permits free now (`sem_getvalue`).
    ///
    /// # Errors
    /// [`Error::Named`] if the OS refuses.
    pub fn value(&self) -> Result<u32> {
        let v = self.raw.value().map_err(named_err("value", &self.name))?;
        Ok(u32::try_from(v).unwrap_or(0))
    }
}
