//! Cross-process suite of the liveness registry's identity: a registry unlinked under live
//! processes (systemd-logind's `RemoveIPC=yes` does that when a user's last session ends),
//! two registries sharing one segment, and a process of another uid sharing a 0660 segment.
//! In every case: no live owner is ever taken for dead; what cannot be checked is refused
//! with a typed error.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use ipc_lock::{NamedMutex, TryLockError};
use ipc_shm::liveness::{self, Status};
use ipc_testkit::{
    Child, audit, fault, fork, recv_line, send_line, spawn_role_wrapped, unique_name, watchdog,
};

ipc_testkit::roles! {
    "registry-holder" => roles::holder,
    "registry-waiter" => roles::waiter,
    "registry-newcomer" => roles::newcomer,
    "registry-uid-opener" => roles::uid_opener,
}

const LINE: Duration = Duration::from_secs(30);

mod roles {
    use super::*;

    /// args: mutex name. Creates the named mutex and holds it; on each "fork" line, forks a
    /// child that must register (after the registry was unlinked too), see the holder alive
    /// and find the mutex held; answers "ok". Waits to be killed.
    pub(super) fn holder(args: &[String]) {
        let m = NamedMutex::<u64>::create(&args[0], 0).unwrap();
        m.shm().persist(true); // the test removes it (the holder dies by SIGKILL)
        let _g = m.lock().unwrap();
        let me = liveness::current().unwrap();
        send_line(&format!("holding {}", me.get()));
        while let Some(line) = recv_line(Duration::from_secs(120)) {
            assert_eq!(line, "fork");
            let mut child = fork(|| -> Result<(), String> {
                let mine =
                    liveness::current().map_err(|e| format!("child cannot register: {e}"))?;
                if mine == me {
                    return Err("the child got its parent's id".into());
                }
                if liveness::status(me) != Status::Alive {
                    return Err(format!(
                        "the child sees its live parent as {:?}",
                        liveness::status(me)
                    ));
                }
                match m.try_lock() {
                    Err(TryLockError::WouldBlock) => Ok(()),
                    other => Err(format!("a held mutex gave {other:?}")),
                }
            });
            child.assert_success();
            send_line("ok");
        }
    }

    /// args: mutex name. On each "check" line, a timed lock of the held mutex must time out
    /// (never hand the lock over); answers "ok". On "died" the holder was killed: the lock
    /// must come with OwnerDied.
    pub(super) fn waiter(args: &[String]) {
        let m = NamedMutex::<u64>::open(&args[0]).unwrap();
        send_line("ready");
        while let Some(line) = recv_line(Duration::from_secs(120)) {
            match line.as_str() {
                "check" => match m.try_lock_for(Duration::from_millis(2)) {
                    Err(TryLockError::TimedOut) => send_line("ok"),
                    other => panic!("the live holder's mutex gave {other:?}"),
                },
                "died" => {
                    match m.try_lock_for(Duration::from_secs(10)) {
                        Err(TryLockError::OwnerDied(mut g)) => g.mark_consistent(),
                        other => {
                            panic!("expected OwnerDied after the holder's death, got {other:?}")
                        }
                    };
                    send_line("inherited");
                    return;
                }
                other => panic!("unexpected line {other:?}"),
            }
        }
    }

    /// args: mutex name. A process started after its registry was removed (or in another
    /// registry): opening the mutex is a typed error naming both registries, never a silent
    /// misjudgement of the holder.
    pub(super) fn newcomer(args: &[String]) {
        match NamedMutex::<u64>::open(&args[0]) {
            Ok(m) => match m.try_lock() {
                Err(TryLockError::WouldBlock) => send_line("joined"),
                other => panic!("opened the held mutex and got {other:?}"),
            },
            Err(e) => match refused_line(&e) {
                Some(line) => send_line(&line),
                None => panic!("expected ForeignRegistry, got {e}"),
            },
        }
    }

    /// args: mutex name. Run as another uid: opens the creator's 0660 mutex.
    pub(super) fn uid_opener(args: &[String]) {
        let mut opts = ipc_shm::ShmOptions::new();
        opts.mode(0o660).owner_uid(0);
        match NamedMutex::<u64>::open_with(&opts, &args[0]) {
            Ok(_) => panic!("opened an object whose owner ids it cannot check"),
            Err(e) => match refused_line(&e) {
                Some(line) => send_line(&line),
                None => panic!("expected ForeignRegistry, got {e}"),
            },
        }
    }
}

fn refused_line(e: &ipc_lock::Error) -> Option<String> {
    match e {
        ipc_lock::Error::Shm { source, .. }
            if matches!(**source, ipc_shm::Error::ForeignRegistry { .. }) =>
        {
            Some(format!("refused: {source}"))
        }
        _ => None,
    }
}

fn with_registry(registry: &str) -> [String; 2] {
    ["env".to_owned(), format!("IPC_LIVENESS_REGISTRY={registry}")]
}

fn spawn_in(registry: &str, role: &str, args: &[&str]) -> Child {
    let w = with_registry(registry);
    spawn_role_wrapped(&[&w[0], &w[1]], role, args)
}

/// The registry file is unlinked while a holder holds a mutex and a waiter waits on it.
/// The holder's forked children still register (into the registry they share, by fd) and see
/// it alive; the waiter never takes the live holder for dead, over 200 rounds; a process
/// started afterwards gets a fresh registry and is refused with a typed error; the holder's
/// death is still reported to the waiter.
#[test]
fn a_registry_unlinked_under_live_processes_never_takes_a_live_owner_for_dead() {
    let _w = watchdog(Duration::from_secs(120), "registry unlinked");
    let registry = unique_name("registry");
    let name = unique_name("registry-mutex");
    let mut holder = spawn_in(&registry, "registry-holder", &[&name]);
    let line = holder.recv_line(LINE).unwrap();
    assert!(line.starts_with("holding "), "{line}");
    let mut waiter = spawn_in(&registry, "registry-waiter", &[&name]);
    assert_eq!(waiter.recv_line(LINE).unwrap(), "ready");
    // systemd-logind's RemoveIPC, in effect.
    std::fs::remove_file(format!("/dev/shm/{registry}")).unwrap();
    let rounds = fault::rounds(200, 2000);
    for round in 0..rounds {
        holder.send_line("fork");
        assert_eq!(holder.recv_line(LINE).as_deref(), Ok("ok"), "round {round}: holder");
        waiter.send_line("check");
        assert_eq!(waiter.recv_line(LINE).as_deref(), Ok("ok"), "round {round}: waiter");
    }
    // A newcomer creates the registry anew (another id): refused, with a message that says why.
    let mut newcomer = spawn_in(&registry, "registry-newcomer", &[&name]);
    let said = newcomer.recv_line(LINE).unwrap();
    eprintln!("newcomer: {said}");
    assert!(said.starts_with("refused: ") && said.contains("liveness registry"), "{said}");
    newcomer.assert_success();
    // Death is still seen through the unlinked registry.
    holder.kill_and_join();
    waiter.send_line("died");
    assert_eq!(waiter.recv_line(LINE).unwrap(), "inherited");
    waiter.assert_success();
    std::fs::remove_file(format!("/dev/shm/{registry}")).unwrap(); // the newcomer's
    std::fs::remove_file(format!("/dev/shm/{name}")).unwrap();
    assert!(audit::shm_entries(&registry).is_empty());
}

/// Two processes of two registries (`IPC_LIVENESS_REGISTRY`) share one segment: the second is
/// refused with a typed error naming both, never a takeover of the first one's lock.
#[test]
fn two_registries_sharing_a_segment_are_refused_never_a_takeover() {
    let _w = watchdog(Duration::from_secs(60), "two registries");
    let (r1, r2) = (unique_name("registry-one"), unique_name("registry-two"));
    let name = unique_name("registry-shared");
    let mut holder = spawn_in(&r1, "registry-holder", &[&name]);
    assert!(holder.recv_line(LINE).unwrap().starts_with("holding "));
    let mut other = spawn_in(&r2, "registry-newcomer", &[&name]);
    let said = other.recv_line(LINE).unwrap();
    eprintln!("second registry: {said}");
    assert!(said.starts_with("refused: "), "{said}");
    other.assert_success();
    // Same registry: it joins and finds the mutex held.
    let mut same = spawn_in(&r1, "registry-newcomer", &[&name]);
    assert_eq!(same.recv_line(LINE).unwrap(), "joined");
    same.assert_success();
    holder.kill_and_join();
    for f in [&r1, &r2, &name] {
        std::fs::remove_file(format!("/dev/shm/{f}")).unwrap();
    }
}

/// A process of another uid (65534, through setpriv) shares a 0660 segment: it has its own
/// registry, so opening an object that stores owner ids is a typed error that says how to
/// configure it; plain data (no owner ids) it shares fine.
#[test]
fn another_uid_sharing_a_0660_segment_gets_a_typed_error() {
    let _w = watchdog(Duration::from_secs(60), "other uid");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0
        || std::process::Command::new("setpriv").arg("-V").output().is_err()
    {
        eprintln!("skipped: needs root and setpriv to run a process as uid 65534");
        return;
    }
    let name = unique_name("registry-uid");
    let mut opts = ipc_shm::ShmOptions::new();
    opts.mode(0o660);
    let m = NamedMutex::<u64>::create_with(&opts, &name, ipc_lock::Mutex::new(5)).unwrap();
    std::os::unix::fs::chown(format!("/dev/shm/{name}"), None, Some(65534)).unwrap();
    let _g = m.lock().unwrap();
    let wrapper = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"];
    let mut other = spawn_role_wrapped(&wrapper, "registry-uid-opener", &[&name]);
    let said = other.recv_line(LINE).unwrap();
    eprintln!("uid 65534: {said}");
    assert!(said.starts_with("refused: ") && said.contains("IPC_LIVENESS_REGISTRY"), "{said}");
    other.assert_success();
    drop(_g);
    drop(m);
    assert!(audit::shm_entries(&name).is_empty());
}

/// The fork of a holder whose registry was unlinked registers and locks (the measured
/// failure: every forked process failed with `open liveness registry: NotFound`).
#[test]
fn forks_after_the_registry_was_unlinked_still_register() {
    let _w = watchdog(Duration::from_secs(60), "forks after unlink");
    let registry = unique_name("registry-forks");
    let name = unique_name("registry-forks-mutex");
    let mut holder = spawn_in(&registry, "registry-holder", &[&name]);
    assert!(holder.recv_line(LINE).unwrap().starts_with("holding "));
    std::fs::remove_file(format!("/dev/shm/{registry}")).unwrap();
    for _ in 0..20 {
        holder.send_line("fork");
        assert_eq!(holder.recv_line(LINE).as_deref(), Ok("ok"));
    }
    holder.kill_and_join();
    std::fs::remove_file(format!("/dev/shm/{name}")).unwrap();
    std::fs::remove_file(format!("/dev/shm/{registry}")).unwrap_err(); // already gone
}
