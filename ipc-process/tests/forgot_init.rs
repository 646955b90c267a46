//! A test binary that forgot `ipc_process::auto_init!()`: its spawned children reach the
//! test harness instead of `init`. They must fail fast with a clear error in the parent
//! (not run the tests again, not hang, not fork-bomb), and a process marked as a child that
//! never called `init` must refuse to start processes of its own.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::{Duration, Instant};

use ipc_process::{Error, ExitStatus, Pool, Process, TaskError};

fn double(x: u64) -> u64 {
    x * 2
}

#[test]
fn a_child_that_never_reaches_init_is_reported() {
    let t = Instant::now();
    let mut p = Process::spawn(double, 21).unwrap();
    match p.join() {
        Err(TaskError::Lost(e @ Error::NotDispatched { exit, .. })) => {
            // libtest rejects the child's marker argument instead of running the tests.
            assert_eq!(exit, ExitStatus::Code(101), "{e}");
            let msg = e.to_string();
            assert!(msg.contains("ipc_process::init()") && msg.contains("auto_init!()"), "{msg}");
        }
        other => panic!("expected NotDispatched, got {other:?}"),
    }
    assert!(t.elapsed() < Duration::from_secs(20), "took {:?}", t.elapsed());
    match Pool::new(1) {
        Err(Error::PoolBroken { message, .. }) => assert!(message.contains("init"), "{message}"),
        other => panic!("expected PoolBroken, got {other:?}"),
    }
}

/// Runs as a helper in a child started below with the child marker set: no `init` ran in
/// this binary, so starting a process must be refused.
#[test]
fn helper_marked_child_refuses_to_spawn() {
    if std::env::var_os("IPC_PROCESS_CHILD").is_none() {
        return;
    }
    match Process::spawn(double, 1) {
        Err(Error::InitNotCalled { .. }) => {}
        other => panic!("a marked child without init started a process: {other:?}"),
    }
    assert!(matches!(Pool::new(1), Err(Error::InitNotCalled { .. })));
}

#[test]
fn a_marked_child_without_init_refuses_to_start_processes() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["helper_marked_child_refuses_to_spawn", "--exact", "--nocapture"])
        .env("IPC_PROCESS_CHILD", "v1;parent=1;exe=0:0;token=1;detached=0")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
}
