//! Roles in fresh, unrelated processes: the test binary re-executes itself.
//!
//! Declare the roles of a test binary once, at its crate root:
//!
//! ```ignore
//! ipc_testkit::roles! {
//!     "shm-writer" => roles::shm_writer,
//!     "shm-reader" => roles::shm_reader,
//! }
//! ```
//!
//! This defines a test named [`ROLE_TEST`] that does nothing in a normal run. [`spawn_role`]
//! starts `current_exe() ipc_testkit_role_dispatch --exact` with the role and its arguments in
//! the environment; the dispatch test then runs the role (a `fn(&[String])` that panics to
//! fail) with the same line channel and exit reporting as a forked child.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use crate::child::{Child, run_child};
use crate::sys;

/// Name of the dispatch test that [`roles!`](crate::roles) defines.
pub const ROLE_TEST: &str = "ipc_testkit_role_dispatch";

/// A role: runs in its own process with the arguments given to [`spawn_role`]; panics to fail.
pub type Role = fn(&[String]);

const ENV_ROLE: &str = "IPC_TEST_ROLE";
const ENV_ARGS: &str = "IPC_TEST_ARGS";
const ENV_FDS: &str = "IPC_TEST_FDS";
const ARG_SEP: char = '\u{1f}';

/// Define the role dispatch test of this test binary (invoke once, at the crate root).
#[macro_export]
macro_rules! roles {
    ($($name:literal => $role:path),* $(,)?) => {
        #[test]
        fn ipc_testkit_role_dispatch() {
            $crate::dispatch(&[$(($name, $role as $crate::Role)),*]);
        }
    };
}

/// Body of the dispatch test: a no-op unless this process was started by [`spawn_role`].
pub fn dispatch(roles: &[(&str, Role)]) {
    let Ok(role) = std::env::var(ENV_ROLE) else { return };
    crate::child::install_panic_hook();
    let fds = std::env::var(ENV_FDS).unwrap_or_default();
    let mut it = fds.split(',').map(|s| s.parse::<i32>().unwrap_or(-1));
    let (tx, rx) = (it.next().unwrap_or(-1), it.next().unwrap_or(-1));
    let args: Vec<String> = std::env::var(ENV_ARGS)
        .unwrap_or_default()
        .split(ARG_SEP)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let Some(&(_, f)) = roles.iter().find(|(name, _)| *name == role) else {
        run_child(tx, rx, || -> Result<(), String> { Err(format!("no role named {role:?}")) })
    };
    run_child(tx, rx, move || f(&args))
}

/// Start `role` (declared with [`roles!`](crate::roles)) in a fresh process running this
/// test binary, with `args`. It dies with its parent and is reaped like a forked child.
///
/// # Panics
/// If the process cannot be started.
pub fn spawn_role(role: &str, args: &[&str]) -> Child {
    spawn_role_wrapped(&[], role, args)
}

/// [`spawn_role`] under a wrapper command, e.g. `["unshare", "--mount", "--"]` or
/// `["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]`.
///
/// # Panics
/// If the process cannot be started.
pub fn spawn_role_wrapped(wrapper: &[&str], role: &str, args: &[&str]) -> Child {
    let exe = std::env::current_exe().expect("current_exe");
    let (parent_rx, child_tx) = sys::pipe().expect("pipe for role report");
    let (child_rx, parent_tx) = sys::pipe().expect("pipe to role");
    let (tx, rx) = (child_tx.as_raw_fd(), child_rx.as_raw_fd());
    let parent = sys::getpid();
    let mut cmd = match wrapper.split_first() {
        Some((program, rest)) => {
            let mut c = Command::new(program);
            c.args(rest).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    cmd.args([ROLE_TEST, "--exact", "--nocapture", "--test-threads=1", "-q"])
        .env(ENV_ROLE, role)
        .env(ENV_ARGS, args.join(&ARG_SEP.to_string()))
        .env(ENV_FDS, format!("{tx},{rx}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe calls
    // (prctl, getppid, fcntl) on integers it captured.
    unsafe {
        cmd.pre_exec(move || {
            sys::die_with_parent();
            if sys::getppid() != parent {
                return Err(std::io::Error::other("parent died before exec"));
            }
            // Keep our two pipe ends across exec (they were opened close-on-exec).
            sys::clear_cloexec(tx)?;
            sys::clear_cloexec(rx)?;
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap_or_else(|e| panic!("ipc-testkit: spawn role {role:?}: {e}"));
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
    drop(child); // we reap it ourselves (std's handle neither waits nor kills on drop)
    close_child_ends(child_tx, child_rx);
    Child::new(pid, parent_rx, parent_tx, format!("role {role:?}"))
}

fn close_child_ends(a: OwnedFd, b: OwnedFd) {
    drop(a);
    drop(b);
}
