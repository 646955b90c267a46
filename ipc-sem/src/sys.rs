//! The only calls into libc: POSIX named semaphores (`sem_open` and friends; rustix has
//! none) and the few identity and clock calls around them. Each wrapper is a small safe
//! function; [`RawSem`] owns one `sem_open` handle.
//!
//! # References
//! - [sem_overview(7)](https://man7.org/linux/man-pages/man7/sem_overview.7.html)
//! - [sem_open(3)](https://man7.org/linux/man-pages/man3/sem_open.3.html)
#![allow(unsafe_code)] // the libc calls of NamedSemaphore

use std::ffi::CStr;
use std::io;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

/// A handle from `sem_open`, closed on drop.
#[derive(Debug)]
pub(crate) struct RawSem(NonNull<libc::sem_t>);

// SAFETY: a `sem_t *` from sem_open is a process-wide handle; POSIX makes every sem_* call on
// it thread-safe, and it is not tied to the thread that opened it.
unsafe impl Send for RawSem {}
// SAFETY: as above: concurrent sem_post/sem_wait/sem_getvalue from many threads are allowed.
unsafe impl Sync for RawSem {}

/// How `sem_open` should open.
#[derive(Debug, Clone, Copy)]
pub(crate) enum OpenHow {
    /// `O_CREAT | O_EXCL` with this mode and initial value.
    Create { mode: u32, value: u32 },
    /// An existing semaphore.
    Existing,
}

pub(crate) fn sem_open(name: &CStr, how: OpenHow) -> io::Result<RawSem> {
    let ptr = match how {
        // SAFETY: `name` is a valid NUL-terminated string; with O_CREAT the variadic
        // arguments are the mode (promoted to c_uint, as glibc reads it) and the value.
        OpenHow::Create { mode, value } => unsafe {
            libc::sem_open(
                name.as_ptr(),
                libc::O_CREAT | libc::O_EXCL,
                mode as libc::c_uint,
                libc::c_uint::from(value),
            )
        },
        // SAFETY: `name` is a valid NUL-terminated string; without O_CREAT no variadic
        // arguments are read.
        OpenHow::Existing => unsafe { libc::sem_open(name.as_ptr(), 0) },
    };
    if ptr == libc::SEM_FAILED {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(ptr).map(RawSem).ok_or_else(|| io::Error::other("sem_open returned NULL"))
}

pub(crate) fn sem_unlink(name: &CStr) -> io::Result<()> {
    // SAFETY: `name` is a valid NUL-terminated string.
    if unsafe { libc::sem_unlink(name.as_ptr()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The effective uid.
pub(crate) fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

fn realtime_now() -> libc::timespec {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_REALTIME always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &raw mut ts) };
    ts
}

/// `CLOCK_REALTIME` now + `rel`, saturating (what sem_timedwait takes).
fn realtime_after(rel: Duration) -> libc::timespec {
    let now = realtime_now();
    let secs = libc::time_t::try_from(rel.as_secs()).unwrap_or(libc::time_t::MAX);
    let mut tv_sec = now.tv_sec.saturating_add(secs);
    let mut tv_nsec = now.tv_nsec + rel.subsec_nanos() as libc::c_long;
    if tv_nsec >= 1_000_000_000 {
        tv_nsec -= 1_000_000_000;
        tv_sec = tv_sec.saturating_add(1);
    }
    libc::timespec { tv_sec, tv_nsec }
}

impl RawSem {
    fn ptr(&self) -> *mut libc::sem_t {
        self.0.as_ptr()
    }

    pub(crate) fn post(&self) -> io::Result<()> {
        // SAFETY: the handle is valid until drop.
        if unsafe { libc::sem_post(self.ptr()) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// `sem_wait`, retried on EINTR.
    pub(crate) fn wait(&self) -> io::Result<()> {
        loop {
            // SAFETY: the handle is valid until drop.
            if unsafe { libc::sem_wait(self.ptr()) } == 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// `sem_trywait`: `Ok(false)` on EAGAIN.
    pub(crate) fn try_wait(&self) -> io::Result<bool> {
        loop {
            // SAFETY: the handle is valid until drop.
            if unsafe { libc::sem_trywait(self.ptr()) } == 0 {
                return Ok(true);
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EAGAIN) => return Ok(false),
                Some(libc::EINTR) => {}
                _ => return Err(e),
            }
        }
    }

    /// `sem_timedwait` until the monotonic `deadline`: the realtime deadline is recomputed
    /// from the time left after every EINTR, so a wall-clock jump shifts at most one try.
    /// `Ok(false)` on timeout.
    pub(crate) fn wait_until(&self, deadline: Instant) -> io::Result<bool> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let abs = realtime_after(left);
            // SAFETY: the handle is valid until drop; `abs` is a valid timespec.
            if unsafe { libc::sem_timedwait(self.ptr(), &raw const abs) } == 0 {
                return Ok(true);
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::ETIMEDOUT) => {
                    if Instant::now() >= deadline {
                        return Ok(false);
                    }
                }
                Some(libc::EINTR) => {}
                _ => return Err(e),
            }
        }
    }

    pub(crate) fn value(&self) -> io::Result<i32> {
        let mut v: libc::c_int = 0;
        // SAFETY: the handle is valid until drop; `v` is a valid out-pointer.
        if unsafe { libc::sem_getvalue(self.ptr(), &raw mut v) } == 0 {
            Ok(v)
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

impl Drop for RawSem {
    fn drop(&mut self) {
        // SAFETY: the handle came from sem_open and is closed exactly once, here.
        unsafe { libc::sem_close(self.ptr()) };
    }
}
