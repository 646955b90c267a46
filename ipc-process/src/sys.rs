//! The only place this crate calls the OS through `unsafe`: `posix_spawn` with a file action
//! (rustix has no spawn), `fork` and `_exit`, `dladdr` (which loaded object holds a function),
//! turning a code address back into a function pointer, and removing an environment
//! variable. Everything rustix wraps safely (pidfds, waitid, prctl, poll, eventfd) is called
//! from the other modules directly.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// The fd number a spawned child finds its control connection on.
pub(crate) const CHILD_FD: RawFd = 3;

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(rc) }
}

/// posix_spawn's functions return the error number instead of setting errno.
fn cvt_spawn(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 { Ok(()) } else { Err(io::Error::from_raw_os_error(rc)) }
}

/// `posix_spawn("/proc/self/exe", argv, envp)` with `ctrl` duplicated onto [`CHILD_FD`] in
/// the child (the duplicate is not close-on-exec; every other fd of ours is), the signal
/// mask emptied and every signal's disposition reset to default, as `std::process::Command`
/// does. Returns the child's pid.
///
/// glibc runs this as `clone(CLONE_VM | CLONE_VFORK)` + `execve`: no page tables are copied
/// and nothing runs in the child between the two but the file action, so it is safe
/// whatever other threads of ours hold.
pub(crate) fn spawn_self(
    ctrl: BorrowedFd<'_>,
    argv: &[CString],
    envp: &[CString],
) -> io::Result<libc::pid_t> {
    // The file action is a dup2: if the socket already is fd 3, dup2(3, 3) would keep its
    // close-on-exec flag, so move it out of the way first.
    let moved;
    let src = if ctrl.as_raw_fd() == CHILD_FD {
        moved = ctrl.try_clone_to_owned()?;
        moved.as_raw_fd()
    } else {
        ctrl.as_raw_fd()
    };
    let path = c"/proc/self/exe";
    let mut argv_p: Vec<*mut libc::c_char> =
        argv.iter().map(|a| a.as_ptr().cast_mut()).chain(Some(std::ptr::null_mut())).collect();
    let mut envp_p: Vec<*mut libc::c_char> =
        envp.iter().map(|a| a.as_ptr().cast_mut()).chain(Some(std::ptr::null_mut())).collect();

    let mut actions = std::mem::MaybeUninit::<libc::posix_spawn_file_actions_t>::uninit();
    // SAFETY: `actions` is valid for writes; init fully initialises it.
    cvt_spawn(unsafe { libc::posix_spawn_file_actions_init(actions.as_mut_ptr()) })?;
    let mut attr = std::mem::MaybeUninit::<libc::posix_spawnattr_t>::uninit();
    // SAFETY: as above, for the attribute object.
    if let Err(e) = cvt_spawn(unsafe { libc::posix_spawnattr_init(attr.as_mut_ptr()) }) {
        // SAFETY: `actions` was initialised above and is destroyed once.
        unsafe { libc::posix_spawn_file_actions_destroy(actions.as_mut_ptr()) };
        return Err(e);
    }
    let result = (|| {
        // SAFETY: `actions` is initialised; `src` is an fd we hold open for the call.
        cvt_spawn(unsafe {
            libc::posix_spawn_file_actions_adddup2(actions.as_mut_ptr(), src, CHILD_FD)
        })?;
        let mut empty = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigemptyset initialises the set it is given.
        cvt(unsafe { libc::sigemptyset(empty.as_mut_ptr()) })?;
        let mut all = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigfillset initialises the set it is given.
        cvt(unsafe { libc::sigfillset(all.as_mut_ptr()) })?;
        // SAFETY: `attr` is initialised; `empty` was initialised by sigemptyset.
        cvt_spawn(unsafe { libc::posix_spawnattr_setsigmask(attr.as_mut_ptr(), empty.as_ptr()) })?;
        // SAFETY: `attr` is initialised; `all` was initialised by sigfillset (the kernel skips
        // SIGKILL and SIGSTOP, whose dispositions cannot change).
        cvt_spawn(unsafe { libc::posix_spawnattr_setsigdefault(attr.as_mut_ptr(), all.as_ptr()) })?;
        let flags = libc::POSIX_SPAWN_SETSIGMASK | libc::POSIX_SPAWN_SETSIGDEF;
        let flags = libc::c_short::try_from(flags).unwrap_or(0);
        // SAFETY: `attr` is initialised.
        cvt_spawn(unsafe { libc::posix_spawnattr_setflags(attr.as_mut_ptr(), flags) })?;
        let mut pid: libc::pid_t = 0;
        // SAFETY: 1. `path` is NUL-terminated; 2. `argv_p`/`envp_p` are NULL-terminated arrays
        // of pointers into CStrings outliving the call (never written through); 3. `actions`
        // and `attr` are initialised; 4. `pid` is a valid out-pointer.
        cvt_spawn(unsafe {
            libc::posix_spawn(
                &raw mut pid,
                path.as_ptr(),
                actions.as_ptr(),
                attr.as_ptr(),
                argv_p.as_mut_ptr(),
                envp_p.as_mut_ptr(),
            )
        })?;
        Ok(pid)
    })();
    // SAFETY: both objects were initialised above and are destroyed exactly once.
    unsafe { libc::posix_spawn_file_actions_destroy(actions.as_mut_ptr()) };
    // SAFETY: as above.
    unsafe { libc::posix_spawnattr_destroy(attr.as_mut_ptr()) };
    result
}

/// What `fork` returned.
pub(crate) enum Forked {
    /// In the parent: the child's pid.
    Parent(libc::pid_t),
    /// In the child.
    Child,
}

/// `fork()`.
///
/// # Safety
/// - In the child only the calling thread exists: the caller must make sure the child does
///   nothing that needs a lock another thread of the parent may have held at the fork
///   (the process is single-threaded, or the child's code is known not to take such locks).
/// - The child must leave with [`exit_now`], never by returning into code that would run
///   the parent's destructors or atexit handlers a second time.
#[allow(clippy::disallowed_methods)] // the one fork of this crate
pub(crate) unsafe fn fork() -> io::Result<Forked> {
    // SAFETY: fork itself has no memory-safety preconditions; the caller upholds the rules
    // for what the child may do (this function's contract).
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid)),
    }
}

/// `_exit(code)`: leave without running destructors or atexit handlers (a forked child must
/// not run the parent's; a spawned child has nothing left to run).
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions and never returns.
    unsafe { libc::_exit(code) }
}

/// The load address of the object (executable or shared library) holding `addr`, and its
/// file name, from `dladdr`.
pub(crate) fn object_of(addr: usize) -> Option<(usize, String)> {
    let mut info = std::mem::MaybeUninit::<libc::Dl_info>::zeroed();
    // SAFETY: dladdr only reads `addr` as a number and writes `info`, which is valid.
    let rc = unsafe { libc::dladdr(addr as *const libc::c_void, info.as_mut_ptr()) };
    if rc == 0 {
        return None;
    }
    // SAFETY: dladdr returned non-zero, so it filled `info`.
    let info = unsafe { info.assume_init() };
    let name = if info.dli_fname.is_null() {
        String::new()
    } else {
        // SAFETY: dli_fname is a NUL-terminated string owned by the dynamic loader, valid
        // while the object stays loaded (the executable: always).
        unsafe { CStr::from_ptr(info.dli_fname) }.to_string_lossy().into_owned()
    };
    Some((info.dli_fbase as usize, name))
}

/// A function pointer of type `F` rebuilt from its address.
///
/// # Safety
/// `addr` must be the address of a function of exactly type `F` in this process image (here:
/// an address computed in the same executable from an offset taken, in a process running the
/// same file, of a function of type `F`).
pub(crate) unsafe fn fn_from_addr<F: Copy>(addr: usize) -> F {
    const { assert!(size_of::<F>() == size_of::<usize>()) };
    // SAFETY: `F` is a function pointer type the size of `usize` (asserted above); the
    // caller guarantees the address holds a function of that type.
    unsafe { std::mem::transmute_copy::<usize, F>(&addr) }
}

/// Remove `key` from the environment.
///
/// # Safety
/// No other thread may read or write the environment at the same time (the caller checks the
/// process has a single thread).
pub(crate) unsafe fn remove_env(key: &str) {
    // SAFETY: the caller guarantees no other thread touches the environment meanwhile.
    unsafe { std::env::remove_var(key) }
}

/// [`CHILD_FD`], borrowed (it may not be open: calls on it then fail with `EBADF`).
pub(crate) fn child_fd() -> BorrowedFd<'static> {
    // SAFETY: borrowing an fd number is sound whether or not it is open (a closed one makes
    // every call fail with EBADF); the borrow is only used for fstat/fcntl checks before
    // `own_child_fd` takes it.
    unsafe { BorrowedFd::borrow_raw(CHILD_FD) }
}

/// Take ownership of [`CHILD_FD`].
///
/// # Safety
/// The fd must be open and owned by nothing else in this process (the parent put our
/// control socket there, and `init` takes it before any other code could).
pub(crate) unsafe fn own_child_fd() -> OwnedFd {
    // SAFETY: the caller guarantees the fd is open and unowned.
    unsafe { OwnedFd::from_raw_fd(CHILD_FD) }
}
