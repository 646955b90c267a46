//! Cross-process suite of ipc-pipe: peers SIGKILLed mid-frame, fd passing and its leak
//! counts (including `MSG_CTRUNC` under a lowered `RLIMIT_NOFILE`), a receiver that stops
//! reading, foreign uids (setpriv) against the credential policy, attackers' files and
//! symlinks at the socket path, stale sockets of killed listeners, racing listeners, and
//! close-on-exec.
//!
//! Fd counts are taken inside forked children, which are single-threaded: under `cargo test`
//! other tests' threads open and close fds in the test process at any moment.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ipc_pipe::{Address, AuthError, Client, Error, Listener, ListenerOptions, pipe, simplex};
use ipc_shm::Shared;
use ipc_testkit::{fault, fork, recv_line, send_line, spawn_role, spawn_role_wrapped, watchdog};

use ipc_testkit::interrupt;

ipc_testkit::roles! {
    "pipe-connect" => roles::connect,
    "pipe-listen" => roles::listen,
    "pipe-fd-receiver" => roles::fd_receiver,
}

const LINE: Duration = Duration::from_secs(20);
const NOBODY: &[&str] = &["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"];

mod roles {
    use super::*;

    /// args: address ("@name" for abstract), key. Connects and reports the outcome; on
    /// success exchanges one message.
    pub(super) fn connect(args: &[String]) {
        let address = match args[0].strip_prefix('@') {
            Some(name) => Address::abstract_name(name),
            None => Address::path(&args[0]),
        };
        match Client::connect(address, Some(args[1].as_bytes())) {
            Ok(mut c) => {
                c.send(b"hello from the role").unwrap();
                let r = c.recv_timeout(LINE).unwrap();
                send_line(&format!("ok {}", String::from_utf8_lossy(&r)));
            }
            Err(e) => send_line(&format!("err {e}")),
        }
    }

    /// args: path. Binds a listener, says so, waits to be killed.
    pub(super) fn listen(args: &[String]) {
        let _l = Listener::bind(Path::new(&args[0]), None).unwrap();
        send_line("bound");
        let _ = recv_line(Duration::from_secs(60));
    }

    /// args: path. Connects, receives a pipe's write end, writes through it.
    pub(super) fn fd_receiver(args: &[String]) {
        let mut c = Client::connect(Path::new(&args[0]), Some(b"fds")).unwrap();
        let (msg, mut fds) = c.recv_fds().unwrap();
        assert_eq!(msg, b"write here");
        assert_eq!(fds.len(), 1);
        let mut w = std::fs::File::from(fds.pop().unwrap());
        w.write_all(b"written by an unrelated process").unwrap();
        send_line("done");
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Root, and setpriv (util-linux) to act as uid 65534.
fn can_setpriv() -> bool {
    is_root()
        && std::process::Command::new("setpriv")
            .arg("--version")
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid clock id and a writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// The open fd numbers of this process. (The testkit's `FdAudit` compares `readlink`
/// targets too, and a file inherited from another test's objects changes its target to
/// "... (deleted)" when that test removes it; fd numbers in a forked child change only by
/// what the child itself opens and closes.)
fn fd_numbers() -> Vec<i32> {
    let mut v: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    v.sort();
    v
}

/// Fds opened since `before` and still open (the directory fd of the listing aside).
struct Fds(Vec<i32>);

impl Fds {
    fn new() -> Fds {
        Fds(fd_numbers())
    }

    fn assert_clean(&self, what: &str) {
        let now = fd_numbers();
        let extra: Vec<(i32, String)> = now
            .iter()
            .filter(|fd| !self.0.contains(fd))
            .filter_map(|fd| {
                let target = std::fs::read_link(format!("/proc/self/fd/{fd}")).ok()?;
                Some((*fd, target.to_string_lossy().into_owned()))
            })
            .filter(|(_, t)| !t.starts_with("/proc/"))
            .collect();
        assert!(extra.is_empty(), "{what}: fds leaked: {extra:?}");
    }
}

/// A temp directory (mode `mode`) removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str, mode: u32) -> Dir {
        let p = std::env::temp_dir().join(ipc_testkit::unique_name(&format!("pipe-{tag}")));
        std::fs::create_dir(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        Dir(p)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn entries(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Receive 1 MiB frames until the writer is gone; the error and the time it was seen.
fn read_until_killed(r: &mut ipc_pipe::Connection, round: usize) -> (&'static str, u64) {
    let err = loop {
        match r.recv() {
            Ok(m) => assert_eq!(m.len(), 1 << 20),
            Err(e) => break e,
        }
    };
    let now = monotonic_ns();
    assert!(err.is_disconnected(), "round {round}: {err}");
    let kind = if matches!(err, Error::UnexpectedEof { .. }) { "mid-frame" } else { "boundary" };
    (kind, now)
}

/// The parent's side of the kill rounds: for each writer pid the supervisor sends, wait a
/// random moment, SIGKILL it (the time goes into `killed_at`), and collect the supervisor's
/// `"<ns seen after the kill> <mid-frame|boundary>"` line: (delay, killed mid-frame).
fn kill_rounds(
    sup: &mut ipc_testkit::Child,
    rounds: usize,
    rng: &mut fault::Rng,
    killed_at: &AtomicU64,
) -> Vec<(Duration, bool)> {
    let mut seen = Vec::new();
    for round in 0..rounds {
        let pid: i32 = sup.recv_line(LINE).unwrap().parse().unwrap();
        std::thread::sleep(rng.duration(Duration::ZERO, Duration::from_millis(8)));
        killed_at.store(monotonic_ns(), Ordering::SeqCst);
        // SAFETY: kill has no memory preconditions; pid is the supervisor's live child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let line = sup.recv_line(LINE).unwrap_or_else(|e| panic!("round {round}: {e}"));
        let mut it = line.split_whitespace();
        let d = Duration::from_nanos(it.next().unwrap().parse().unwrap());
        seen.push((d, it.next() == Some("mid-frame")));
    }
    sup.assert_success();
    seen
}

#[test]
fn peer_killed_mid_frame_is_disconnected_within_100ms_and_leaks_no_fd() {
    let _w = watchdog(Duration::from_secs(240), "kill mid-frame");
    let rounds = fault::rounds(40, 500);
    let mut rng = fault::seeded("pipe kill mid-frame");
    // When the parent sent SIGKILL (CLOCK_MONOTONIC ns), shared with the supervisor.
    let killed_at = Shared::anonymous(AtomicU64::new(0)).unwrap();
    let k2 = &killed_at;
    // The supervisor is a forked, single-threaded process: it makes each socketpair after
    // the fork (no other test's child can inherit it), forks the writer, reads, and counts
    // its fds.
    let mut sup = fork(move || {
        for round in 0..rounds {
            let audit = Fds::new();
            let (mut w, mut r) = pipe().unwrap();
            let big = vec![0x5au8; 1 << 20];
            let mut writer = fork(move || -> () {
                loop {
                    w.send(&big).unwrap();
                }
            });
            // The writer's end lived in the closure, dropped here: only the writer has it.
            send_line(&writer.pid().to_string());
            let (kind, now) = read_until_killed(&mut r, round);
            let delay = now.saturating_sub(k2.load(Ordering::SeqCst));
            writer.assert_signaled(libc::SIGKILL);
            drop(writer);
            drop(r);
            audit.assert_clean(&format!("round {round}"));
            send_line(&format!("{delay} {kind}"));
        }
    });
    let seen = kill_rounds(&mut sup, rounds, &mut rng, &killed_at);
    let mid_frame = seen.iter().filter(|s| s.1).count();
    let mut delays: Vec<Duration> = seen.iter().map(|s| s.0).collect();
    delays.sort();
    let p50 = delays[delays.len() / 2];
    let p99 = delays[(delays.len() * 99 / 100).min(delays.len() - 1)];
    let max = *delays.last().unwrap();
    let within = delays.iter().filter(|d| **d <= Duration::from_millis(100)).count();
    eprintln!(
        "kill mid-frame: {rounds} SIGKILLs ({mid_frame} mid-frame), disconnect seen after \
         p50 {p50:?} p99 {p99:?} max {max:?}; {within}/{rounds} within 100 ms; 0 fds leaked"
    );
    // The kernel closes the writer's socket as it dies and the blocked reader wakes at once
    // (the p50 above); what exceeds 100 ms on this shared 2-vCPU machine is the scheduler
    // not running the reader, so a few late rounds are tolerated, a systematic delay is not.
    assert!(within * 100 >= rounds * 95, "only {within}/{rounds} within 100 ms");
    assert!(p50 < Duration::from_millis(20), "median disconnect {p50:?}");
    assert!(max < Duration::from_secs(2), "a disconnect took {max:?}");
    assert!(mid_frame * 4 >= rounds, "kills should mostly land mid-frame ({mid_frame}/{rounds})");
}

fn dev_nulls(n: usize) -> Vec<std::fs::File> {
    (0..n).map(|_| std::fs::File::open("/dev/null").unwrap()).collect()
}

/// Set the soft `RLIMIT_NOFILE` (the hard limit stays).
fn fd_limit(n: u64) {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: a valid resource and a writable rlimit.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim) }, 0);
    lim.rlim_cur = n.min(lim.rlim_max);
    // SAFETY: a valid resource and a readable rlimit.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const lim) }, 0);
}

#[test]
fn fd_passing_one_many_truncated_unexpected_leaks_nothing() {
    let _w = watchdog(Duration::from_secs(60), "fd passing leaks");
    fork(|| {
        let audit = Fds::new();
        let (mut a, mut b) = pipe().unwrap();
        let files = dev_nulls(253);
        let fds: Vec<BorrowedFd<'_>> = files.iter().map(AsFd::as_fd).collect();
        // One fd, then the kernel's maximum of 253.
        a.send_fds(b"one", &fds[..1]).unwrap();
        let (m, got) = b.recv_fds().unwrap();
        assert_eq!((m.as_slice(), got.len()), (&b"one"[..], 1));
        drop(got);
        a.send_fds(b"many", &fds).unwrap();
        let (_, got) = b.recv_fds().unwrap();
        assert_eq!(got.len(), 253);
        drop(got);
        // fds where none were expected: never installed (the kernel closes them), reported,
        // and the connection poisoned; the rest goes on over a new pair.
        a.send_fds(b"unexpected", &fds[..10]).unwrap();
        assert!(matches!(b.recv(), Err(Error::UnexpectedFds { count: None, .. })));
        assert!(b.is_poisoned());
        drop((a, b));
        let (mut a, mut b) = pipe().unwrap();
        // Truncated control data: RLIMIT_NOFILE lowered so the kernel can install only a few
        // of the 200 fds (MSG_CTRUNC).
        let highest = ipc_testkit::audit::open_fds().last().map_or(0, |f| f.0);
        fd_limit(highest as u64 + 20);
        a.send_fds(b"truncated", &fds[..200]).unwrap();
        match b.recv_fds() {
            Err(Error::FdsTruncated { received, .. }) => assert!(received < 200, "{received}"),
            other => panic!("expected FdsTruncated, got {other:?}"),
        }
        fd_limit(u64::MAX);
        // The connection goes on.
        a.send(b"after").unwrap();
        assert_eq!(b.recv().unwrap(), b"after");
        // fds of messages never taken: queued in the kernel, or already read into our
        // buffer along with an earlier frame, are closed when the connection goes.
        a.send(b"first").unwrap();
        a.send_fds(b"second", &fds[..5]).unwrap();
        a.send_fds(b"third", &fds[..5]).unwrap();
        assert_eq!(b.recv().unwrap(), b"first");
        drop(a);
        drop(b);
        drop(files);
        audit.assert_clean("fd passing");
    })
    .assert_success();
}

#[test]
fn fds_reach_an_unrelated_process() {
    let _w = watchdog(Duration::from_secs(60), "fds to a role");
    let dir = Dir::new("fdrole", 0o700);
    let path = dir.join("s");
    let l = Listener::bind(&path, Some(b"fds")).unwrap();
    let mut role = spawn_role("pipe-fd-receiver", &[path.to_str().unwrap()]);
    let mut c = l.accept_timeout(LINE).unwrap();
    let (mut r, w) = std::io::pipe().unwrap();
    c.send_fds(b"write here", &[w.as_fd()]).unwrap();
    drop(w);
    assert_eq!(role.recv_line(LINE).unwrap(), "done");
    role.assert_success();
    let mut got = String::new();
    r.read_to_string(&mut got).unwrap();
    assert_eq!(got, "written by an unrelated process");
}

/// Send `chunk` until a send times out; check that call took its deadline, no more.
fn fill_until_timeout(
    what: &str,
    deadline: Duration,
    send: &mut dyn FnMut(&[u8]) -> ipc_pipe::Result<()>,
    chunk: &[u8],
) -> String {
    let mut sent = 0;
    let (err, took) = loop {
        let t0 = Instant::now();
        match send(chunk) {
            Ok(()) => sent += 1,
            Err(e) => break (e, t0.elapsed()),
        }
        assert!(sent < 10_000, "{what}: never filled");
    };
    assert!(err.is_timeout(), "{what}: {err}");
    assert!(took >= deadline, "{what}: returned early, after {took:?}");
    assert!(took < deadline + Duration::from_secs(1), "{what}: returned after {took:?}");
    format!("{what}: {sent} x 64 KiB sent, then Timeout after {took:?}")
}

#[test]
fn send_timeout_returns_at_its_deadline_when_the_receiver_stops_reading() {
    let _w = watchdog(Duration::from_secs(60), "send_timeout");
    let deadline = Duration::from_millis(200);
    // A socket connection and a simplex pipe, each with a reader in another process that
    // reads one message and then stops.
    let (mut a, mut b) = pipe().unwrap();
    let (mut tx, mut rx) = simplex().unwrap();
    let mut reader = fork(move || {
        assert_eq!(b.recv().unwrap(), b"first");
        assert_eq!(rx.recv().unwrap(), b"first");
        send_line("read one");
        let _ = recv_line(Duration::from_secs(30));
    });
    a.send(b"first").unwrap();
    tx.send(b"first").unwrap();
    assert_eq!(reader.recv_line(LINE).unwrap(), "read one");
    let chunk = vec![0u8; 64 * 1024];
    let report = [
        fill_until_timeout("socket", deadline, &mut |m| a.send_timeout(m, deadline), &chunk),
        fill_until_timeout("pipe", deadline, &mut |m| tx.send_timeout(m, deadline), &chunk),
    ];
    eprintln!("send_timeout({deadline:?}): {}", report.join("; "));
    reader.send_line("stop");
    reader.assert_success();
}

#[test]
fn a_foreign_uid_is_refused_by_an_allowed_uid_policy() {
    if !can_setpriv() {
        eprintln!("skipped: needs root and setpriv to act as uid 65534");
        return;
    }
    let _w = watchdog(Duration::from_secs(60), "foreign uid");
    // A directory others may traverse and a socket file they may connect to: only the
    // policy stands between them and the listener.
    let dir = Dir::new("uid", 0o711);
    let path = dir.join("s");
    let l = ListenerOptions::new().mode(0o666).allowed_uids([0]).bind(&path, Some(b"k")).unwrap();
    let mut role = spawn_role_wrapped(NOBODY, "pipe-connect", &[path.to_str().unwrap(), "k"]);
    let accepted = l.accept_timeout(LINE);
    if accepted.is_err() && !matches!(accepted, Err(Error::PeerNotAllowed { .. })) {
        panic!("{accepted:?}; the role said {:?}", role.recv_line(LINE));
    }
    match accepted {
        Err(Error::PeerNotAllowed { creds, .. }) => {
            assert_eq!((creds.uid, creds.gid, creds.pid), (65534, 65534, role.pid()));
        }
        other => panic!("expected PeerNotAllowed, got {other:?}"),
    }
    let line = role.recv_line(LINE).unwrap();
    assert!(line.starts_with("err "), "{line}");
    role.assert_success();
    // The same client is admitted once the policy lists its uid: the policy refused it.
    let l2 = ListenerOptions::new()
        .mode(0o666)
        .allowed_uids([0, 65534])
        .bind(dir.join("t"), Some(b"k"))
        .unwrap();
    let mut role =
        spawn_role_wrapped(NOBODY, "pipe-connect", &[dir.join("t").to_str().unwrap(), "k"]);
    let mut c = l2.accept_timeout(LINE).unwrap();
    assert_eq!(c.peer_credentials().unwrap().uid, 65534);
    assert_eq!(c.recv().unwrap(), b"hello from the role");
    c.send(b"admitted").unwrap();
    assert_eq!(role.recv_line(LINE).unwrap(), "ok admitted");
    role.assert_success();
    // An abstract name admits only our own uid unless told otherwise (file permissions do
    // not protect abstract names).
    let name = format!("{}-abstract", ipc_testkit::unique_name("uid"));
    let l3 = Listener::bind(Address::abstract_name(&name), Some(b"k")).unwrap();
    let mut role = spawn_role_wrapped(NOBODY, "pipe-connect", &[&format!("@{name}"), "k"]);
    assert!(matches!(l3.accept_timeout(LINE), Err(Error::PeerNotAllowed { .. })));
    assert!(role.recv_line(LINE).unwrap().starts_with("err "));
    role.assert_success();
}

fn as_nobody(script: &str) {
    let mut cmd = std::process::Command::new(NOBODY[0]);
    cmd.args(&NOBODY[1..]).arg("sh").arg("-c").arg(script);
    let st = cmd.status().unwrap();
    assert!(st.success(), "attacker script failed: {script}");
}

#[test]
fn an_attackers_file_or_symlink_at_the_socket_path_is_neither_followed_nor_deleted() {
    if !can_setpriv() {
        eprintln!("skipped: needs root and setpriv to plant files as uid 65534");
        return;
    }
    let _w = watchdog(Duration::from_secs(60), "squatting");
    // A shared sticky directory, like /tmp, where uid 65534 may create files.
    let shared = Dir::new("shared", 0o1777);
    let canary_dir = Dir::new("canary", 0o755);
    let canary = canary_dir.join("canary");
    std::fs::write(&canary, b"do not touch").unwrap();
    let p = |n: &str| shared.join(n).to_str().unwrap().to_owned();
    let c = canary.to_str().unwrap();
    as_nobody(&format!(
        "ln -s {c} {link} && ln -s {c} {lockln}.lock && printf mine > {file} && ln -s /nonexistent {dangling}",
        link = p("link"),
        lockln = p("locked"),
        file = p("file"),
        dangling = p("dangling"),
    ));
    // A socket file of uid 65534 (its listener gone): not ours to reclaim.
    let py = "import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])";
    let mut cmd = std::process::Command::new(NOBODY[0]);
    let st = cmd.args(&NOBODY[1..]).args(["/usr/bin/python3", "-c", py, &p("sock")]).status();
    let planted_socket = st.is_ok_and(|s| s.success());
    // The strict default refuses the shared directory outright.
    let e = Listener::bind(shared.join("mine"), None).unwrap_err();
    assert!(matches!(e, Error::UnsafeDirectory { .. }), "{e}");
    let opts = {
        let mut o = ListenerOptions::new();
        o.allow_shared_dir(true);
        o
    };
    let mut names = vec!["link", "locked", "file", "dangling"];
    if planted_socket {
        names.push("sock");
    }
    for name in &names {
        let e = opts.bind(shared.join(name), None).unwrap_err();
        assert!(matches!(e, Error::AddrInUse { .. }), "{name}: {e}");
        eprintln!("{name}: {e}");
    }
    // Everything is as the attacker left it; the symlinks' targets are untouched.
    assert_eq!(std::fs::read(&canary).unwrap(), b"do not touch");
    assert_eq!(std::fs::read_link(shared.join("link")).unwrap(), canary);
    assert_eq!(std::fs::read_link(shared.join("locked.lock")).unwrap(), canary);
    assert_eq!(std::fs::read(shared.join("file")).unwrap(), b"mine");
    assert!(std::fs::symlink_metadata(shared.join("dangling")).unwrap().file_type().is_symlink());
    assert!(!Path::new("/nonexistent").exists());
    if planted_socket {
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::symlink_metadata(shared.join("sock")).unwrap().uid(), 65534);
    }
    // A free name in the shared directory works, and is cleaned up.
    drop(opts.bind(shared.join("free"), None).unwrap());
    assert!(!shared.join("free").exists() && !shared.join("free.lock").exists());
}

#[test]
fn the_stale_socket_of_a_killed_listener_is_reclaimed() {
    let _w = watchdog(Duration::from_secs(60), "stale socket");
    let dir = Dir::new("stale", 0o700);
    let path = dir.join("s");
    let mut role = spawn_role("pipe-listen", &[path.to_str().unwrap()]);
    assert_eq!(role.recv_line(LINE).unwrap(), "bound");
    // While it lives, the path is taken.
    assert!(matches!(Listener::bind(&path, None), Err(Error::AddrInUse { .. })));
    role.kill();
    role.assert_signaled(libc::SIGKILL);
    assert_eq!(dir.entries(), vec!["s", "s.lock"], "a SIGKILLed listener leaves its files");
    let l = Listener::bind(&path, None).unwrap();
    let _c = Client::connect(&path, None).unwrap();
    assert!(l.accept_timeout(LINE).is_ok());
    drop(l);
    assert!(dir.entries().is_empty(), "{:?}", dir.entries());
}

#[test]
fn a_forked_child_dropping_an_inherited_listener_leaves_the_parents_socket() {
    let _w = watchdog(Duration::from_secs(60), "inherited listener");
    let dir = Dir::new("inherit", 0o700);
    let path = dir.join("s");
    let mut slot = Some(Listener::bind(&path, None).unwrap());
    // Only the child runs the closure: there it drops its copy of the listener, normally,
    // destructor and all; the parent's copy stays in `slot`.
    let mut child = fork(|| drop(slot.take()));
    child.assert_success();
    assert_eq!(dir.entries(), vec!["s", "s.lock"], "the child removed the parent's files");
    // A child that panics (unwinding drops everything it owns) removes nothing either.
    let mut child = fork(|| -> () {
        let _copy = slot.take();
        panic!("a child that unwinds with the listener");
    });
    assert!(matches!(child.join(), ipc_testkit::Exit::Code(101)));
    assert_eq!(dir.entries(), vec!["s", "s.lock"], "the unwinding child removed the files");
    let l = slot.take().unwrap();
    let _c = Client::connect(&path, None).unwrap();
    assert!(l.accept_timeout(LINE).is_ok());
    drop(l);
    assert!(dir.entries().is_empty());
}

/// Shared counters of the listener race.
#[repr(C)]
struct Race {
    holders: AtomicU32,
    most: AtomicU32,
    wins: AtomicU32,
    in_use: AtomicU32,
}

// SAFETY: atomics only; all-zero is the initial state.
unsafe impl ipc_shm::ShmSafe for Race {}

#[test]
fn racing_listeners_never_share_a_path() {
    let _w = watchdog(Duration::from_secs(120), "racing listeners");
    let dir = Dir::new("race", 0o700);
    let path = dir.join("s");
    let race = Shared::anonymous(Race {
        holders: AtomicU32::new(0),
        most: AtomicU32::new(0),
        wins: AtomicU32::new(0),
        in_use: AtomicU32::new(0),
    })
    .unwrap();
    let per = fault::rounds(50, 500) as u32;
    let children: Vec<_> = (0..4)
        .map(|_| {
            let path = path.clone();
            let race = &race;
            fork(move || {
                for _ in 0..per {
                    match Listener::bind(&path, None) {
                        Ok(l) => {
                            let h = race.holders.fetch_add(1, Ordering::SeqCst) + 1;
                            race.most.fetch_max(h, Ordering::SeqCst);
                            race.wins.fetch_add(1, Ordering::SeqCst);
                            // Serve one client while holding the path.
                            let _c = Client::connect(&path, None).unwrap();
                            l.accept_timeout(LINE).unwrap();
                            race.holders.fetch_sub(1, Ordering::SeqCst);
                            drop(l);
                        }
                        Err(Error::AddrInUse { .. }) => {
                            race.in_use.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(e) => panic!("bind: {e}"),
                    }
                }
            })
        })
        .collect();
    for mut c in children {
        c.assert_success();
    }
    let (most, wins, busy) = (
        race.most.load(Ordering::SeqCst),
        race.wins.load(Ordering::SeqCst),
        race.in_use.load(Ordering::SeqCst),
    );
    eprintln!(
        "{} racing starts: {wins} bound, {busy} found it in use, at most {most} at once",
        4 * per
    );
    assert_eq!(most, 1, "two listeners held the path at once");
    assert_eq!(wins + busy, 4 * per);
    assert!(wins > 0);
    assert!(dir.entries().is_empty(), "{:?}", dir.entries());
}

#[test]
fn no_fd_of_ours_survives_exec() {
    let _w = watchdog(Duration::from_secs(60), "cloexec");
    let dir = Dir::new("exec", 0o700);
    let (a, b) = pipe().unwrap();
    let (tx, rx) = simplex().unwrap();
    let l = Listener::bind(dir.join("s"), Some(b"k")).unwrap();
    let t = std::thread::spawn({
        let p = dir.join("s");
        move || Client::connect(p, Some(b"k")).unwrap()
    });
    let accepted = l.accept_timeout(LINE).unwrap();
    let client = t.join().unwrap();
    let ours: Vec<String> =
        [a.as_fd(), b.as_fd(), tx.as_fd(), rx.as_fd(), l.as_fd(), accepted.as_fd(), client.as_fd()]
            .iter()
            .map(|fd| std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap())
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("for f in /proc/$$/fd/*; do readlink $f; done")
        .output()
        .unwrap();
    let theirs = String::from_utf8_lossy(&out.stdout);
    for o in &ours {
        assert!(!theirs.lines().any(|l| l == o), "{o} survived exec: {theirs}");
    }
}

#[test]
fn silent_clients_cannot_hold_a_listener_past_the_handshake_deadline() {
    let _w = watchdog(Duration::from_secs(120), "half-open");
    let n = fault::rounds(64, 1000);
    let mut child = fork(move || {
        let dir = Dir::new("halfopen", 0o700);
        let path = dir.join("s");
        let rss = || {
            let s = std::fs::read_to_string("/proc/self/statm").unwrap();
            s.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 4096
        };
        let deadline = Duration::from_millis(100);
        let l = ListenerOptions::new().handshake_timeout(deadline).bind(&path, Some(b"k")).unwrap();
        let before = rss();
        let t0 = Instant::now();
        let (failed, slowest) = std::thread::scope(|s| {
            // Half-open clients: connect, send nothing, hold the connection.
            let connector = s.spawn(|| {
                (0..n)
                    .map(|_| std::os::unix::net::UnixStream::connect(&path).unwrap())
                    .collect::<Vec<_>>()
            });
            let workers: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        let (mut failed, mut slowest) = (0usize, Duration::ZERO);
                        loop {
                            let t = Instant::now();
                            match l.accept_timeout(Duration::from_millis(500)) {
                                Err(Error::AuthFailed {
                                    reason: AuthError::Deadline { .. },
                                    ..
                                }) => {
                                    failed += 1;
                                    slowest = slowest.max(t.elapsed());
                                }
                                Err(Error::Timeout { .. }) => break (failed, slowest),
                                other => panic!("{other:?}"),
                            }
                        }
                    })
                })
                .collect();
            let held = connector.join().unwrap();
            let r = workers
                .into_iter()
                .map(|w| w.join().unwrap())
                .fold((0, Duration::ZERO), |(f, s), (f2, s2)| (f + f2, s.max(s2)));
            drop(held);
            r
        });
        let took = t0.elapsed();
        let grew = rss().saturating_sub(before);
        send_line(&format!(
            "{n} silent clients: all refused at the {deadline:?} deadline (slowest accept {slowest:?}), in {took:?} with 4 accepting threads; RSS +{} KiB",
            grew / 1024
        ));
        assert_eq!(failed, n);
        assert!(slowest < deadline + Duration::from_secs(1), "{slowest:?}");
        assert!(grew < 16 << 20, "RSS grew by {grew} bytes");
        // A real client still gets in afterwards.
        let t = std::thread::spawn({
            let p = path.clone();
            move || Client::connect(p, Some(b"k")).map(drop)
        });
        l.accept_timeout(LINE).unwrap();
        t.join().unwrap().unwrap();
    });
    eprintln!("{}", child.recv_line(Duration::from_secs(100)).unwrap());
    child.assert_success();
}

#[test]
fn the_keyed_handshake_works_across_processes() {
    let _w = watchdog(Duration::from_secs(60), "handshake across processes");
    let dir = Dir::new("hs", 0o700);
    let path = dir.join("s");
    let l = Listener::bind(&path, Some(b"right")).unwrap();
    let mut good = spawn_role("pipe-connect", &[path.to_str().unwrap(), "right"]);
    let mut c = l.accept_timeout(LINE).unwrap();
    assert_eq!(c.recv().unwrap(), b"hello from the role");
    c.send(b"welcome").unwrap();
    assert_eq!(good.recv_line(LINE).unwrap(), "ok welcome");
    good.assert_success();
    let mut bad = spawn_role("pipe-connect", &[path.to_str().unwrap(), "wrong"]);
    match l.accept_timeout(LINE) {
        Err(Error::AuthFailed { reason: AuthError::WrongDigest, .. }) => {}
        other => panic!("{other:?}"),
    }
    assert!(bad.recv_line(LINE).unwrap().starts_with("err "));
    bad.assert_success();
}

/// EINTR: a timed receive under a storm of signals ends at its
/// deadline; a blocking receive ends with the message the parent sends.
#[test]
fn connection_waits_survive_a_signal_storm() {
    let _w = watchdog(Duration::from_secs(60), "pipe EINTR");
    let (mut ours, mut theirs) = pipe().unwrap();
    let timeout = Duration::from_millis(300);
    let mut child = fork(move || {
        let theirs = std::cell::RefCell::new(&mut theirs);
        interrupt::storm_child(
            timeout,
            || {
                let r = theirs.borrow_mut().recv_timeout(timeout);
                assert!(matches!(r, Err(Error::Timeout { .. })), "{r:?}");
            },
            || assert_eq!(theirs.borrow_mut().recv().unwrap(), b"late"),
        );
    });
    let (sent, caught) = interrupt::storm_parent(&mut child, || ours.send(b"late").unwrap());
    eprintln!("connection waits under a signal storm: {sent} signals sent, {caught} caught");
}

/// `sendmsg` of `data` with `fds` attached (`SCM_RIGHTS`), as a hostile peer does it.
fn sendmsg_with_fds(sock: BorrowedFd<'_>, data: &[u8], fds: &[i32]) -> std::io::Result<usize> {
    let bytes = std::mem::size_of_val(fds);
    // SAFETY: CMSG_SPACE is a pure computation.
    let space = unsafe { libc::CMSG_SPACE(bytes as u32) } as usize;
    let mut control = vec![0u64; space.div_ceil(8)];
    let mut iov = libc::iovec { iov_base: data.as_ptr().cast_mut().cast(), iov_len: data.len() };
    // SAFETY: `msghdr` is plain data; all-zero is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space;
    // SAFETY: CMSG_LEN is a pure computation.
    let cmsg_len = unsafe { libc::CMSG_LEN(bytes as u32) } as usize;
    let hdr = libc::cmsghdr { cmsg_len, cmsg_level: libc::SOL_SOCKET, cmsg_type: libc::SCM_RIGHTS };
    // SAFETY: `msg` has a control buffer of CMSG_SPACE(bytes) bytes: CMSG_FIRSTHDR returns a
    // pointer to its start.
    let c = unsafe { libc::CMSG_FIRSTHDR(&raw const msg) };
    // SAFETY: `c` is the aligned start of the control buffer, which holds a header.
    unsafe { c.write(hdr) };
    // SAFETY: `c` is a valid header: CMSG_DATA points just past it, inside the buffer.
    let data = unsafe { libc::CMSG_DATA(c) };
    // SAFETY: the buffer has room for `bytes` bytes of fds after the header (CMSG_SPACE).
    unsafe { std::ptr::copy_nonoverlapping(fds.as_ptr().cast::<u8>(), data, bytes) };
    // SAFETY: `msg` describes live buffers for the call.
    let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &raw const msg, libc::MSG_NOSIGNAL) };
    if n < 0 { Err(std::io::Error::last_os_error()) } else { Ok(n as usize) }
}

#[test]
fn an_fd_flood_before_authentication_never_fills_the_listeners_fd_table() {
    // The attacker connects and sends a 256-byte handshake frame one byte per sendmsg, 253
    // fds attached to each: the listener must not install them (its fd count, sampled all
    // along by a thread of its own, rises by a handful at most), drops the attacker, and
    // serves the next honest client.
    let _w = watchdog(Duration::from_secs(120), "fd flood");
    let dir = Dir::new("fdflood", 0o700);
    let path = dir.join("s");
    let lpath = path.clone();
    let mut listener = fork(move || {
        let l = Listener::bind(&lpath, Some(b"flood key")).unwrap();
        let base = fd_numbers().len();
        let stop = std::sync::atomic::AtomicBool::new(false);
        let (first, most) = std::thread::scope(|s| {
            let sampler = s.spawn(|| {
                let mut most = 0;
                while !stop.load(Ordering::SeqCst) {
                    most = most.max(fd_numbers().len());
                }
                most
            });
            send_line("ready");
            let first = l.accept_timeout(LINE).map(drop);
            let mut honest = l.accept_timeout(LINE).unwrap();
            honest.send(b"served").unwrap();
            assert_eq!(honest.recv_timeout(LINE).unwrap(), b"thanks");
            stop.store(true, Ordering::SeqCst);
            (first, sampler.join().unwrap())
        });
        let rise = most.saturating_sub(base);
        let first = match first {
            Ok(()) => "admitted".to_owned(),
            Err(e) => e.to_string(),
        };
        send_line(&format!("{rise} the attacker's accept: {first}"));
        assert!(rise <= 6, "the listener's fd count rose by {rise} during the flood");
    });
    assert_eq!(listener.recv_line(LINE).unwrap(), "ready");
    let apath = path.clone();
    let mut attacker = fork(move || {
        fd_limit(u64::MAX);
        let s = std::os::unix::net::UnixStream::connect(&apath).unwrap();
        let null = std::fs::File::open("/dev/null").unwrap();
        let fds = vec![null.as_raw_fd(); 253];
        let mut frame = 252u32.to_be_bytes().to_vec();
        frame.extend(std::iter::repeat_n(b'x', 252));
        let mut sent = 0;
        for b in &frame {
            match sendmsg_with_fds(s.as_fd(), std::slice::from_ref(b), &fds) {
                Ok(_) => sent += 1,
                Err(_) => break,
            }
        }
        send_line(&format!("{sent}"));
    });
    let sent = attacker.recv_line(LINE).unwrap();
    attacker.assert_success();
    let mut honest = Client::connect(&path, Some(b"flood key")).unwrap();
    assert_eq!(honest.recv_timeout(LINE).unwrap(), b"served");
    honest.send(b"thanks").unwrap();
    let line = listener.recv_line(LINE).unwrap();
    eprintln!("fd flood: {sent} bytes sent with 253 fds each; listener fd count rose by {line}");
    listener.assert_success();
}

#[test]
fn a_tcp_peer_killed_mid_frame_is_seen_at_once() {
    // As the socketpair test above, over TCP loopback: a writer process sends 1 MiB frames to
    // a listener's connection and is SIGKILLed at a random moment; how long the reader takes
    // to see it is measured and printed (the figure; no timing is asserted).
    let _w = watchdog(Duration::from_secs(240), "tcp kill mid-frame");
    let rounds = fault::rounds(20, 300);
    let mut rng = fault::seeded("tcp kill mid-frame");
    let killed_at = Shared::anonymous(AtomicU64::new(0)).unwrap();
    let k2 = &killed_at;
    let mut sup = fork(move || {
        let l = Listener::bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)), None).unwrap();
        let addr = l.address().clone();
        for round in 0..rounds {
            let a2 = addr.clone();
            let mut writer = fork(move || -> () {
                let mut c = Client::connect(a2, None).unwrap();
                let big = vec![0x5au8; 1 << 20];
                loop {
                    c.send(&big).unwrap();
                }
            });
            let mut r = l.accept_timeout(LINE).unwrap();
            // The writer is streaming (a first frame arrived) before it is killed.
            assert_eq!(r.recv_timeout(LINE).unwrap().len(), 1 << 20);
            let paused = round % 2 == 0;
            if paused {
                // Every other round the reader stops until the writer is blocked in a send
                // (both loopback buffers full) and reads again only once it is dead: the kill
                // lands inside a frame for sure. In the free-running rounds the reader keeps
                // up, the writer's sends rarely block, and a kill mostly lands between frames
                // (SIGKILL stops a TCP send only where it waits for buffer space).
                ipc_testkit::wait_until_sleeping(writer.pid());
            }
            send_line(&writer.pid().to_string());
            if paused {
                ipc_testkit::wait_until_dead(writer.pid());
            }
            // In a paused round the time includes draining the buffered megabytes.
            let (kind, now) = read_until_killed(&mut r, round);
            writer.assert_signaled(libc::SIGKILL);
            send_line(&format!("{} {kind}", now.saturating_sub(k2.load(Ordering::SeqCst))));
        }
    });
    let seen = kill_rounds(&mut sup, rounds, &mut rng, &killed_at);
    let mut mid: Vec<Duration> = seen.iter().filter(|s| s.1).map(|s| s.0).collect();
    mid.sort();
    // The paused rounds (half of them) end mid-frame; the free-running ones mostly at a
    // frame boundary (the writer's 1 MiB sends complete into the large loopback buffers).
    assert!(mid.len() >= rounds / 2, "only {} of {rounds} kills landed mid-frame", mid.len());
    let within = mid.iter().filter(|d| **d <= Duration::from_millis(100)).count();
    eprintln!(
        "tcp kill mid-frame: {rounds} SIGKILLs; {} mid-frame, each seen as UnexpectedEof after \
         p50 {:?} max {:?} ({within}/{} within 100 ms); the rest at a frame boundary",
        mid.len(),
        mid[mid.len() / 2],
        mid.last().unwrap(),
        mid.len()
    );
}
