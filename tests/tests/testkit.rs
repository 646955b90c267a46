//! The harness checks itself: a child that panics, returns an error, exits non-zero, is
//! killed or hangs fails the test with a clear message; no child outlives its parent.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use ipc_testkit::{Exit, JoinError, fault, fork, recv_line, send_line, spawn_role};

ipc_testkit::roles! {
    "echo" => roles::echo,
    "panics" => roles::panics,
    "forks-grandchild" => roles::forks_grandchild,
    "watchdog-fires" => roles::watchdog_fires,
}

const LINE: Duration = Duration::from_secs(20);

mod roles {
    use super::*;

    pub(super) fn echo(args: &[String]) {
        send_line(&args.join(","));
        let line = recv_line(LINE).expect("a line from the parent");
        send_line(&format!("echo {line}"));
    }

    pub(super) fn panics(_: &[String]) {
        panic!("role failed on purpose: 1234");
    }

    /// Forks a grandchild (which dies with us) and reports its pid, then waits.
    pub(super) fn forks_grandchild(_: &[String]) {
        let gc = fork(|| {
            let _ = recv_line(Duration::from_secs(60));
        });
        send_line(&gc.pid().to_string());
        let _ = recv_line(Duration::from_secs(60));
        drop(gc);
    }

    pub(super) fn watchdog_fires(_: &[String]) {
        let _w = ipc_testkit::watchdog(Duration::from_millis(50), "a role that hangs");
        let _ = recv_line(Duration::from_secs(60));
    }
}

fn panic_message(f: impl FnOnce()) -> String {
    let payload = catch_unwind(AssertUnwindSafe(f)).expect_err("should have failed the test");
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

fn pid_gone(pid: u32) -> bool {
    // Gone, or a zombie nobody has reaped yet: either way, not running.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

fn wait_gone(pid: u32) {
    let t = Instant::now();
    while !pid_gone(pid) {
        assert!(t.elapsed() < Duration::from_secs(10), "process {pid} outlived its parent");
        std::thread::yield_now();
    }
}

#[test]
fn a_panicking_child_fails_the_test_with_its_message() {
    let mut child = fork(|| -> () { panic!("boom {}", 42) });
    let msg = panic_message(|| child.assert_success());
    assert!(msg.contains("boom 42"), "{msg}");
    assert!(msg.contains("exit code 101"), "{msg}");
    assert_eq!(child.exit(), Some(Exit::Code(101)));
}

#[test]
fn a_child_returning_err_fails_with_the_error() {
    let mut child = fork(|| Err::<(), _>("disk on fire"));
    assert_eq!(child.join(), Exit::Code(1));
    assert!(child.report().contains("disk on fire"), "{}", child.report());
    let msg = panic_message(|| child.assert_success());
    assert!(msg.contains("disk on fire"), "{msg}");
}

#[test]
fn a_child_exiting_non_zero_fails() {
    let mut child = fork(|| -> () {
        // SAFETY: leave the child at once with a chosen code.
        unsafe { libc::_exit(7) }
    });
    let msg = panic_message(|| child.assert_success());
    assert!(msg.contains("exit code 7"), "{msg}");
}

#[test]
fn a_killed_child_fails_and_reports_the_signal() {
    let mut child = fork(|| {
        send_line("up");
        let _ = recv_line(Duration::from_secs(60));
    });
    assert_eq!(child.recv_line(LINE).unwrap(), "up");
    child.kill();
    assert_eq!(child.join(), Exit::Signal(libc::SIGKILL));
    let msg = panic_message(|| child.assert_success());
    assert!(msg.contains("killed by SIGKILL"), "{msg}");
    child.assert_signaled(libc::SIGKILL);
}

#[test]
fn a_hanging_child_fails_at_its_deadline_and_is_killed() {
    let mut child = fork(|| {
        let _ = recv_line(Duration::from_secs(60));
    });
    let pid = child.pid();
    assert_eq!(child.join_timeout(Duration::from_millis(50)), Err(JoinError::Timeout));
    let t = Instant::now();
    let msg = panic_message(|| {
        child.join_within(Duration::from_millis(100));
    });
    assert!(msg.contains("hung past its 100ms deadline"), "{msg}");
    assert!(t.elapsed() < Duration::from_secs(10));
    assert_eq!(child.exit(), Some(Exit::Signal(libc::SIGKILL)));
    assert!(pid_gone(pid));
}

#[test]
fn dropping_a_child_kills_and_reaps_it() {
    let child = fork(|| {
        let _ = recv_line(Duration::from_secs(60));
    });
    let pid = child.pid();
    drop(child);
    // Reaped by the drop: the pid no longer exists as our child.
    assert!(pid_gone(pid));
}

#[test]
fn recv_line_reports_a_child_that_ended_without_the_line() {
    let mut child = fork(|| -> () { panic!("gave up") });
    match child.recv_line(LINE) {
        Err(JoinError::Exited { exit: Exit::Code(101), report }) => {
            assert!(report.contains("gave up"), "{report}")
        }
        other => panic!("{other:?}"),
    }
    let mut quiet = fork(|| {
        let _ = recv_line(Duration::from_secs(60));
    });
    assert_eq!(quiet.recv_line(Duration::from_millis(20)), Err(JoinError::Timeout));
}

#[test]
fn lines_flow_both_ways_and_survive_newlines() {
    let mut child = fork(|| {
        let a = recv_line(LINE).unwrap();
        send_line(&format!("got {a}"));
        send_line("two\nlines");
    });
    child.send_line("hello");
    assert_eq!(child.recv_line(LINE).unwrap(), "got hello");
    assert_eq!(child.recv_line(LINE).unwrap(), "two\nlines");
    child.assert_success();
}

#[test]
fn roles_run_in_fresh_processes() {
    let mut r = spawn_role("echo", &["a", "b c"]);
    assert_eq!(r.recv_line(LINE).unwrap(), "a,b c");
    r.send_line("ping");
    assert_eq!(r.recv_line(LINE).unwrap(), "echo ping");
    r.assert_success();
    assert_ne!(r.pid(), std::process::id());

    let mut bad = spawn_role("panics", &[]);
    let msg = panic_message(|| bad.assert_success());
    assert!(msg.contains("role failed on purpose: 1234"), "{msg}");

    let mut unknown = spawn_role("no-such-role", &[]);
    assert_eq!(unknown.join(), Exit::Code(1));
    assert!(unknown.report().contains("no role named"), "{}", unknown.report());
}

#[test]
fn no_child_outlives_its_parent() {
    let mut middle = spawn_role("forks-grandchild", &[]);
    let gc: u32 = middle.recv_line(LINE).unwrap().parse().unwrap();
    assert!(!pid_gone(gc));
    middle.kill_and_join();
    // PR_SET_PDEATHSIG: the grandchild dies with the middle process.
    wait_gone(gc);
}

#[test]
fn the_watchdog_aborts_a_hung_test_process() {
    let mut r = spawn_role("watchdog-fires", &[]);
    assert_eq!(r.join(), Exit::Signal(libc::SIGABRT));
}

#[test]
fn seeds_replay() {
    let mut a = fault::Rng::new(99);
    let mut b = fault::Rng::new(99);
    let xs: Vec<u64> = (0..100).map(|_| a.below(1000)).collect();
    let ys: Vec<u64> = (0..100).map(|_| b.below(1000)).collect();
    assert_eq!(xs, ys);
    assert!(xs.iter().any(|&x| x != xs[0]), "not constant");
    assert!(xs.iter().all(|&x| x < 1000));
    let d = a.duration(Duration::from_millis(1), Duration::from_millis(2));
    assert!(d >= Duration::from_millis(1) && d < Duration::from_millis(2));
    let expected = match std::env::var("IPC_ROUNDS").ok().and_then(|v| v.parse().ok()) {
        Some(n) => n,
        None if fault::soak() => 9,
        None => 3,
    };
    assert_eq!(fault::rounds(3, 9), expected);
}

#[test]
fn kill_at_random_kills() {
    let mut rng = fault::seeded("kill_at_random_kills");
    let mut child = fork(|| {
        let _ = recv_line(Duration::from_secs(60));
    });
    let d = fault::kill_at_random(&child, &mut rng, Duration::from_millis(5));
    assert!(d < Duration::from_millis(5));
    child.assert_signaled(libc::SIGKILL);
}
