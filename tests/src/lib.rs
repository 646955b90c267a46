//! ipc-testkit: the fork harness of the ipc crate family, and (under `tests/`) the
//! cross-process test suite of every crate.
//!
//! - [`fork`] runs a closure in a forked child and returns a [`Child`]: a report pipe opened
//!   before the fork carries the child's panic message or error back; its exit status is
//!   decoded ([`Exit`]); [`Child::join_timeout`] waits on a pidfd with a deadline; the child
//!   dies with its parent (`PR_SET_PDEATHSIG`) and is killed and reaped on drop.
//! - [`spawn_role`] runs a named role in a *fresh, unrelated* process (a re-exec of the test
//!   binary), for objects shared by name between processes that share no memory; declare
//!   the roles once per test binary with [`roles!`].
//! - Line messages both ways ([`Child::recv_line`], [`Child::send_line`] in the parent,
//!   [`send_line`] and [`recv_line`] in the child) to hand out ids and say "ready" / "go".
//! - [`fault`]: seeds printed and replayable (`IPC_SEED`), kill-at-a-random-moment helpers,
//!   round counts for the default and soak (`IPC_SOAK=1`) tiers.
//! - [`audit`]: segments left in /dev/shm under a prefix, open fds of a process.
//! - [`seccomp`]: deny one system call to a process (the paths a sandbox forces).
//! - [`interrupt`]: EINTR injection (a do-nothing handler without `SA_RESTART` in the
//!   child, a storm of signals from the parent).
//! - [`unique_name`] and [`watchdog`].
//!
//! # Rules for test authors
//! 1. **Every wait has a deadline.** Use `join_timeout`/`recv_line(timeout)`; `join()` waits
//!    [`DEFAULT_DEADLINE`] at most and fails the test after that. Use [`watchdog`] around
//!    anything else that blocks.
//! 2. **Keep forked children small.** `cargo test` runs tests on threads, and after `fork`
//!    only the forking thread exists in the child: a lock another thread held at the fork
//!    (stdout's, the panic hook's) stays held forever in the child. glibc's malloc is safe
//!    after fork, so allocating is fine; printing is not: report with [`send_line`] or by
//!    panicking (the harness installs its panic hook in the parent, before the first fork, so
//!    a child never touches the hook lock to set it).
//!    Under `cargo nextest run` (the primary runner) each test is its own process and the
//!    problem does not arise.
//! 3. **A child reports failure by panicking** (or returning `Err`): the message reaches the
//!    parent and [`Child::assert_success`] fails the test with it.
//! 4. **Name objects with [`unique_name`]** so concurrent tests never collide, and check
//!    [`audit::shm_entries`] is empty for your prefix at the end.
//! 5. **No sleeps as synchronisation.** Use lines ("ready"/"go") or the primitive under test.
//!    A random delay before a SIGKILL is fault timing, not synchronisation.
#![allow(unsafe_code)] // fork, waitpid, pipes, prctl: this crate is the harness around the OS
#![allow(clippy::disallowed_methods)] // libc::fork is allowed here, and only here
#![allow(clippy::missing_panics_doc)] // test infrastructure: failing loudly is its job
#![allow(clippy::expect_used, clippy::unwrap_used)] // same

pub mod audit;
mod child;
pub mod fault;
pub mod interrupt;
mod names;
mod reexec;
pub mod seccomp;
mod sys;
mod watchdog;

pub use child::{
    Child, ChildResult, DEFAULT_DEADLINE, Exit, JoinError, fork, fork_inheriting, fork_named,
    recv_line, send_line,
};
pub use names::{TEST_PREFIX, unique_name};
pub use reexec::{ROLE_TEST, Role, dispatch, spawn_role, spawn_role_wrapped};
pub use watchdog::{Watchdog, watchdog};

/// Wait (at most 10 s) until `pid` sleeps in the kernel (state `S` in `/proc/<pid>/stat`),
/// e.g. parked in a futex, so that what ends its wait next is the wake under test and not a
/// lucky check of a value.
///
/// # Panics
/// If it never sleeps within 10 s.
pub fn wait_until_sleeping(pid: u32) {
    wait_for_state(pid, 'S', "slept");
}

/// Wait (at most 10 s) until our child `pid` has died and is not yet reaped (state `Z`):
/// everything it did is over, and its exit status is still there for [`Child`] to collect.
///
/// # Panics
/// If it is still running after 10 s.
pub fn wait_until_dead(pid: u32) {
    wait_for_state(pid, 'Z', "died");
}

fn wait_for_state(pid: u32, state: char, what: &str) {
    let t = std::time::Instant::now();
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next()) == Some(state) {
            return;
        }
        assert!(t.elapsed() < std::time::Duration::from_secs(10), "process {pid} never {what}");
        // A polling interval, not synchronisation: the state is what is waited for.
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
}
