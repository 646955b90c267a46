//! Cross-process suite of ipc-shm: segments, header protocol, liveness and futex across real
//! (forked and re-executed) processes.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ipc_shm::futex::{self, WaitResult};
use ipc_shm::{Error, EventCount, Shared, Shm, ShmOptions, ShmSafe, liveness};
use ipc_testkit::interrupt;
use ipc_testkit::{
    audit, fault, fork, fork_inheriting, recv_line, send_line, spawn_role, unique_name, watchdog,
};

ipc_testkit::roles! {
    "shm-writer" => roles::shm_writer,
    "shm-reader" => roles::shm_reader,
    "memfd-writer" => roles::memfd_writer,
    "full-dev-shm" => roles::full_dev_shm,
    "registered" => roles::registered,
    "fork-during-first-current" => roles::fork_during_first_current,
}

const LINE: Duration = Duration::from_secs(20);

/// A 64-byte shared object with a recognisable pattern: a torn or half-initialised copy is
/// visible as a wrong word.
#[repr(C)]
struct Pattern {
    words: [AtomicU64; 8],
}

// SAFETY: an array of atomics: no pointers, any bits valid, atomic mutation, no drop.
unsafe impl ShmSafe for Pattern {}

impl Pattern {
    fn new(seed: u64) -> Pattern {
        Pattern { words: std::array::from_fn(|i| AtomicU64::new(seed ^ (i as u64 * 0x0101))) }
    }

    fn check(&self, seed: u64) -> Result<(), String> {
        for (i, w) in self.words.iter().enumerate() {
            let v = w.load(Ordering::SeqCst);
            if v != seed ^ (i as u64 * 0x0101) {
                return Err(format!("word {i} is {v:#x}, not the pattern of {seed:#x}"));
            }
        }
        Ok(())
    }
}

mod roles {
    use super::*;

    /// args: name, value. Opens the named counter and stores value.
    pub(super) fn shm_writer(args: &[String]) {
        let c = Shared::<AtomicU64>::open(&args[0]).unwrap();
        c.store(args[1].parse().unwrap(), Ordering::SeqCst);
        send_line("written");
    }

    /// args: name. Sends the counter's value.
    pub(super) fn shm_reader(args: &[String]) {
        let c = Shared::<AtomicU64>::open(&args[0]).unwrap();
        send_line(&c.load(Ordering::SeqCst).to_string());
    }

    /// args: /proc path of a memfd held by the parent. Maps it from there (a fresh open file
    /// description, as an unrelated process gets from SCM_RIGHTS) and adds one.
    pub(super) fn memfd_writer(args: &[String]) {
        let file = std::fs::File::options().read(true).write(true).open(&args[0]).unwrap();
        let shm = Shm::from_fd(OwnedFd::from(file)).unwrap();
        let c = Shared::<AtomicU64>::from_shm(shm).unwrap();
        c.fetch_add(1, Ordering::SeqCst);
        send_line("added");
    }

    /// Runs under `unshare --mount`: a 1 MiB tmpfs on /dev/shm, then a 4 MiB create.
    pub(super) fn full_dev_shm(_: &[String]) {
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs", "/dev/shm"])
            .status()
            .unwrap();
        assert!(status.success(), "mount tmpfs failed");
        let name = unique_name("full");
        match Shm::create(&name, 4 << 20) {
            Err(Error::NoSpace { len, .. }) => {
                assert_eq!(len, 4 << 20);
                assert!(audit::shm_entries(&name).is_empty(), "a failed create left its file");
                send_line("nospace");
            }
            other => panic!("expected NoSpace, got {other:?}"),
        }
    }

    /// A fresh process: one thread makes the process's first `liveness::current()` while the
    /// main thread forks children that each register too. A fork must never catch the
    /// first registration half-way in a way that hangs the child.
    pub(super) fn fork_during_first_current(_: &[String]) {
        let t = std::thread::spawn(|| liveness::current().unwrap());
        let mut kids: Vec<_> = (0..8)
            .map(|_| {
                fork(|| {
                    let me = liveness::current().unwrap();
                    assert_eq!(liveness::status(me), liveness::Status::Alive);
                })
            })
            .collect();
        let parent = t.join().unwrap();
        for k in &mut kids {
            k.assert_success_within(Duration::from_secs(20));
        }
        assert_eq!(liveness::status(parent), liveness::Status::Alive);
    }

    /// Registers with liveness, sends its owner id, waits to be killed.
    pub(super) fn registered(_: &[String]) {
        let me = liveness::current().unwrap();
        send_line(&me.get().to_string());
        let _ = recv_line(Duration::from_secs(30));
    }
}

fn leak_check(prefix: &str) {
    let left = audit::shm_entries(prefix);
    assert!(left.is_empty(), "segments left behind: {left:?}");
}

#[test]
fn forked_processes_share_named_and_anonymous_segments() {
    let _w = watchdog(Duration::from_secs(60), "forked share");
    let name = unique_name("fork-share");
    let named = Shared::create(&name, AtomicU64::new(7)).unwrap();
    let anon = Shared::anonymous(AtomicU64::new(100)).unwrap();
    let mut raw = Shm::anonymous(4096).unwrap();
    raw.write_at(4000, b"parent").unwrap();
    let n2 = name.clone();
    let mut child = fork(move || {
        let mut raw = raw;
        let mine = Shared::<AtomicU64>::open(&n2).unwrap();
        assert_eq!(mine.load(Ordering::SeqCst), 7);
        mine.store(8, Ordering::SeqCst);
        assert_eq!(anon.fetch_add(1, Ordering::SeqCst), 100); // inherited mapping
        let mut buf = [0u8; 6];
        raw.read_at(4000, &mut buf).unwrap();
        assert_eq!(&buf, b"parent");
        raw.write_at(0, b"child").unwrap();
    });
    child.assert_success();
    assert_eq!(named.load(Ordering::SeqCst), 8);
    let anon2 = Shared::anonymous(AtomicU64::new(0)).unwrap();
    drop(anon2);
    drop(named);
    leak_check(&name);
}

#[test]
fn forked_child_sees_parent_writes_to_anonymous_segment() {
    let anon = Shared::anonymous(AtomicU64::new(0)).unwrap();
    let raw = Shm::anonymous(64).unwrap();
    let mut child = fork(|| {
        let v = recv_line(LINE).unwrap();
        assert_eq!(anon.load(Ordering::SeqCst).to_string(), v);
        let mut b = [0u8; 2];
        // SAFETY: no reference into `raw` exists; the parent wrote it before saying so.
        unsafe { raw.read_at_shared(10, &mut b) }.unwrap();
        assert_eq!(&b, b"hi");
    });
    anon.store(99, Ordering::SeqCst);
    // The raw segment was mapped before the fork, so it is shared too.
    // SAFETY: no reference into `raw` exists in this process.
    unsafe { raw.write_at_shared(10, b"hi") }.unwrap();
    child.send_line("99");
    child.assert_success();
}

#[test]
fn unrelated_processes_share_named_and_anonymous_segments() {
    let _w = watchdog(Duration::from_secs(60), "unrelated share");
    let name = unique_name("unrelated");
    let counter = Shared::create(&name, AtomicU64::new(0)).unwrap();

    let mut writer = spawn_role("shm-writer", &[&name, "4242"]);
    assert_eq!(writer.recv_line(LINE).unwrap(), "written");
    writer.assert_success();
    assert_eq!(counter.load(Ordering::SeqCst), 4242);

    counter.store(77, Ordering::SeqCst);
    let mut reader = spawn_role("shm-reader", &[&name]);
    assert_eq!(reader.recv_line(LINE).unwrap(), "77");
    reader.assert_success();

    // Anonymous: an unrelated process maps our memfd through /proc (a fresh description).
    let anon = Shared::anonymous(AtomicU64::new(5)).unwrap();
    let path = format!("/proc/{}/fd/{}", std::process::id(), anon.shm().as_fd_raw());
    let mut m = spawn_role("memfd-writer", &[&path]);
    assert_eq!(m.recv_line(LINE).unwrap(), "added");
    m.assert_success();
    assert_eq!(anon.load(Ordering::SeqCst), 6);
    drop(counter);
    leak_check(&name);
}

trait RawFdOf {
    fn as_fd_raw(&self) -> i32;
}

impl RawFdOf for Shm {
    fn as_fd_raw(&self) -> i32 {
        use std::os::fd::AsFd;
        self.as_fd().as_raw_fd()
    }
}

/// Shared control block of the open_or_create race.
#[repr(C)]
struct RaceCtl {
    round: AtomicU32,
    round_ec: EventCount,
    done: AtomicU32,
    done_ec: EventCount,
    creators: AtomicU32,
    bad: AtomicU32,
}

// SAFETY: atomics and event counts only.
unsafe impl ShmSafe for RaceCtl {}

#[test]
fn open_or_create_race_has_exactly_one_creator() {
    const PROCS: u32 = 8;
    let rounds = fault::rounds(200, 2000) as u32;
    let _w = watchdog(Duration::from_secs(240), "open_or_create race");
    let ctl = Shared::anonymous(RaceCtl {
        round: AtomicU32::new(0),
        round_ec: EventCount::new(),
        done: AtomicU32::new(0),
        done_ec: EventCount::new(),
        creators: AtomicU32::new(0),
        bad: AtomicU32::new(0),
    })
    .unwrap();
    let base = unique_name("race");
    let deadline = || ipc_shm::Deadline::after(Duration::from_secs(20));
    let mut children: Vec<_> = (0..PROCS)
        .map(|_| {
            let base = base.clone();
            let ctl = &*ctl;
            fork(move || {
                let mut held: Option<Shared<Pattern>> = None;
                for r in 1..=rounds {
                    assert!(
                        ctl.round_ec
                            .wait_until(|| ctl.round.load(Ordering::Acquire) >= r, deadline()),
                        "round {r} never started"
                    );
                    drop(held.take()); // the previous round's creator unlinks its name now
                    let name = format!("{base}-{r}");
                    let obj = Shared::open_or_create(&name, || Pattern::new(u64::from(r))).unwrap();
                    if obj.shm().created() {
                        ctl.creators.fetch_add(1, Ordering::AcqRel);
                    }
                    if obj.check(u64::from(r)).is_err() {
                        ctl.bad.fetch_add(1, Ordering::AcqRel);
                    }
                    held = Some(obj);
                    ctl.done.fetch_add(1, Ordering::AcqRel);
                    ctl.done_ec.notify_all();
                }
                // Keep the last object until every process has opened it: the creator's
                // drop unlinks the name.
                let end = rounds + 1;
                assert!(
                    ctl.round_ec
                        .wait_until(|| ctl.round.load(Ordering::Acquire) >= end, deadline())
                );
                drop(held);
            })
        })
        .collect();
    for r in 1..=rounds {
        ctl.round.store(r, Ordering::Release);
        ctl.round_ec.notify_all();
        let want = r * PROCS;
        assert!(
            ctl.done_ec.wait_until(|| ctl.done.load(Ordering::Acquire) >= want, deadline()),
            "round {r}: only {} of {want} opens finished",
            ctl.done.load(Ordering::Acquire)
        );
        assert_eq!(ctl.creators.swap(0, Ordering::AcqRel), 1, "round {r}: creators");
        assert_eq!(ctl.bad.load(Ordering::Acquire), 0, "round {r}: a torn or half-made object");
    }
    ctl.round.store(rounds + 1, Ordering::Release);
    ctl.round_ec.notify_all();
    for c in &mut children {
        c.assert_success();
    }
    leak_check(&base);
}

#[test]
fn creator_killed_at_every_step_never_yields_a_torn_object() {
    // Run in a child: a single-threaded process, so no fork of a concurrent test inherits
    // our segment's fd (and its use lock) and keeps it "in use" for the sweep below.
    fork(creator_crash_points).assert_success();
}

fn creator_crash_points() {
    const { assert!(ipc_shm::crash::ENABLED, "the suite is built with ipc-shm/crashpoints") };
    let _w = watchdog(Duration::from_secs(120), "creator crash points");
    let prefix = unique_name("crash");
    for (i, point) in ipc_shm::crash::SHM_POINTS.iter().enumerate() {
        let name = format!("{prefix}-{i}");
        let n2 = name.clone();
        let mut creator = fork(move || -> () {
            ipc_shm::crash::arm(point, 1);
            let _ = Shared::create(&n2, Pattern::new(1));
            panic!("crash point {point} did not fire");
        });
        creator.assert_signaled(libc::SIGKILL);
        let mut opts = ShmOptions::new();
        opts.init_timeout(Duration::from_millis(200));
        let opened = Shared::<Pattern>::open_with(&opts, &name);
        if *point == "object.init.ready" {
            // Killed after READY: a complete object that nobody unlinked.
            opened.unwrap().check(1).unwrap();
        } else {
            match opened {
                Err(Error::NotInitialized { .. }) => {}
                other => panic!("{point}: expected NotInitialized, got {other:?}"),
            }
        }
        // open_or_create re-initialises what the dead creator left, exactly once.
        let fixed = Shared::open_or_create_with(&opts, &name, || Pattern::new(2)).unwrap();
        let want = if *point == "object.init.ready" { 1 } else { 2 };
        fixed.check(want).unwrap_or_else(|e| panic!("{point}: {e}"));
        assert!(!fixed.shm().created());
        Shared::<Pattern>::open(&name).unwrap().check(want).unwrap();
        drop(fixed);
        // Nobody maps it any more: the sweep removes it, and only it.
        let removed = ipc_shm::sweep_stale(&name).unwrap();
        assert_eq!(removed, vec![name.clone()], "{point}");
    }
    leak_check(&prefix);
}

#[test]
fn opener_waits_for_a_live_creator_and_times_out_on_a_stopped_one() {
    let _w = watchdog(Duration::from_secs(60), "stopped creator");
    let name = unique_name("stopped");
    let n2 = name.clone();
    let mut creator = fork(move || {
        ipc_shm::crash::arm_stop("object.init.body", 1);
        let obj = Shared::create(&n2, Pattern::new(3)).unwrap();
        send_line("ready");
        let _ = recv_line(LINE);
        drop(obj);
    });
    assert!(creator.wait_stopped(Duration::from_secs(10)), "creator did not stop mid-init");
    let mut opts = ShmOptions::new();
    opts.init_timeout(Duration::from_millis(100));
    let t = Instant::now();
    match Shared::<Pattern>::open_with(&opts, &name) {
        Err(Error::InitTimeout { waited, .. }) => assert_eq!(waited, Duration::from_millis(100)),
        other => panic!("expected InitTimeout while the creator is stopped, got {other:?}"),
    }
    assert!(t.elapsed() >= Duration::from_millis(100), "the wait was not the bounded wait");
    // A stopped creator is alive: open_or_create must not re-initialise under it either.
    assert!(matches!(
        Shared::open_or_create_with(&opts, &name, || Pattern::new(9)),
        Err(Error::InitTimeout { .. })
    ));
    creator.signal(libc::SIGCONT);
    assert_eq!(creator.recv_line(LINE).unwrap(), "ready");
    let obj = Shared::<Pattern>::open(&name).unwrap(); // default wait: the creator finished
    obj.check(3).unwrap();
    creator.send_line("done");
    creator.assert_success();
    drop(obj);
    leak_check(&name);
}

#[test]
fn invalid_names_are_typed_errors_and_touch_nothing() {
    let passwd = std::fs::read("/etc/passwd").unwrap();
    for bad in ["", ".", "..", "a/b", "../etc/passwd", "a\0b", "sp ace", &"x".repeat(201)] {
        for r in [Shm::create(bad, 10), Shm::open(bad), Shm::open_or_create(bad, 10)] {
            assert!(matches!(r, Err(Error::InvalidName { .. })), "{bad:?}: {r:?}");
        }
        assert!(matches!(Shared::<AtomicU64>::open(bad), Err(Error::InvalidName { .. })));
        assert!(matches!(ipc_shm::sweep_stale(bad), Err(Error::InvalidName { .. })));
        // Nothing was made at (or through) the name. (A global before/after listing of
        // /dev/shm would race with every other process on the machine.)
        if !bad.is_empty() && !bad.contains('\0') && !bad.starts_with('.') {
            assert!(
                std::fs::symlink_metadata(format!("/dev/shm/{bad}")).is_err(),
                "{bad:?} exists"
            );
        }
    }
    assert!(std::fs::symlink_metadata("/dev/shm/a").is_err(), "a directory was made for a/b");
    assert_eq!(std::fs::read("/etc/passwd").unwrap(), passwd, "/etc/passwd changed");
}

fn header_bytes(shm: &Shm) -> [u8; 64] {
    let mut b = [0u8; 64];
    // SAFETY: the header is only copied (its state word is atomic, and nobody writes it now).
    unsafe { shm.read_at_shared(0, &mut b) }.unwrap();
    b
}

/// Write `bytes` at `at` through a second mapping of `name`, as another process would.
fn scribble(name: &str, at: usize, bytes: &[u8]) {
    Shm::open(name).unwrap().write_at(at, bytes).unwrap();
}

#[test]
fn corrupted_header_fields_are_typed_errors() {
    use ipc_shm::header::HeaderError as H;
    let name = unique_name("corrupt");
    let obj = Shared::create(&name, AtomicU64::new(1)).unwrap();
    let good = header_bytes(obj.shm());
    // (offset, bytes to write, what the error must be)
    type Check = fn(&H) -> bool;
    let cases: Vec<(usize, Vec<u8>, Check)> = vec![
        (0, vec![0xff; 8], |e| matches!(e, H::BadMagic { .. })),
        (8, 3u32.to_ne_bytes().to_vec(), |e| {
            matches!(e, H::HeaderVersion { expected: 2, found: 3 })
        }),
        (12, 77u32.to_ne_bytes().to_vec(), |e| matches!(e, H::BadState { found: 77 })),
        (20, 5u32.to_ne_bytes().to_vec(), |e| matches!(e, H::LayoutVersion { found: 5, .. })),
        (24, 1u64.to_ne_bytes().to_vec(), |e| matches!(e, H::LayoutTag { found: 1, .. })),
        (32, 4096u64.to_ne_bytes().to_vec(), |e| matches!(e, H::TotalLen { found: 4096, .. })),
        (40, 8u64.to_ne_bytes().to_vec(), |e| matches!(e, H::BodyRange { .. })),
        (48, 16u64.to_ne_bytes().to_vec(), |e| matches!(e, H::BodyLen { found: 16, .. })),
        (56, 4u32.to_ne_bytes().to_vec(), |e| matches!(e, H::Align { found: 4, .. })),
    ];
    for (at, bytes, want) in cases {
        scribble(&name, 0, &good);
        scribble(&name, at, &bytes);
        // The opener is another process: it must get a typed error, not a panic or a hang.
        let n2 = name.clone();
        let mut child = fork(move || match Shared::<AtomicU64>::open(&n2) {
            Err(Error::Incompatible { source, name, op }) => {
                assert_eq!((op, name.as_str()), ("open", n2.as_str()));
                assert!(want(&source), "offset {at}: unexpected {source:?}");
            }
            Err(Error::NotInitialized { .. }) if at == 12 => {}
            other => panic!("offset {at}: expected Incompatible, got {other:?}"),
        });
        child.assert_success();
    }
    scribble(&name, 0, &good);
    assert_eq!(Shared::<AtomicU64>::open(&name).unwrap().load(Ordering::SeqCst), 1);
    // A not-ready state with nobody initialising is a dead creator's leftover.
    scribble(&name, 12, &1u32.to_ne_bytes());
    assert!(matches!(Shared::<AtomicU64>::open(&name), Err(Error::NotInitialized { .. })));
    drop(obj);
    leak_check(&name);
}

#[test]
fn wrong_type_or_size_is_refused() {
    let name = unique_name("wrongtype");
    let obj = Shared::create(&name, AtomicU64::new(1)).unwrap();
    match Shared::<AtomicU32>::open(&name) {
        Err(Error::Incompatible { source, .. }) => {
            assert!(matches!(source, ipc_shm::header::HeaderError::LayoutTag { .. }), "{source:?}")
        }
        other => panic!("{other:?}"),
    }
    match Shared::<Pattern>::open(&name) {
        Err(Error::Incompatible { .. }) => {}
        other => panic!("{other:?}"),
    }
    // A raw segment that is not one of our objects.
    let raw_name = unique_name("notours");
    let mut raw = Shm::create(&raw_name, 4096).unwrap();
    match Shared::<AtomicU64>::open(&raw_name) {
        Err(Error::NotInitialized { .. }) => {} // all zero: state UNINIT, nobody initialising
        other => panic!("{other:?}"),
    }
    raw.write_at(0, &[0xAB; 64]).unwrap();
    raw.write_at(12, &2u32.to_ne_bytes()).unwrap();
    match Shared::<AtomicU64>::open(&raw_name) {
        Err(Error::Incompatible {
            source: ipc_shm::header::HeaderError::BadMagic { .. }, ..
        }) => {}
        other => panic!("{other:?}"),
    }
    // A segment too short for a header.
    let tiny_name = unique_name("tiny");
    let tiny = Shm::create(&tiny_name, 10).unwrap();
    assert!(matches!(Shared::<AtomicU64>::open(&tiny_name), Err(Error::Incompatible { .. })));
    // open_or_create with another size than the existing one.
    assert!(matches!(Shm::open_or_create(&raw_name, 8192), Err(Error::SizeMismatch { .. })));
    drop((obj, raw, tiny));
    leak_check(&name);
    leak_check(&raw_name);
    leak_check(&tiny_name);
}

fn sha_of(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[test]
fn planted_symlink_is_not_followed() {
    let name = unique_name("symlink");
    let dir = std::env::temp_dir().join(unique_name("victim"));
    std::fs::create_dir(&dir).unwrap();
    let victim = dir.join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    let link = format!("/dev/shm/{name}");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let before = sha_of(victim.to_str().unwrap());
    assert!(matches!(Shm::create(&name, 4096), Err(Error::AlreadyExists { .. })));
    assert!(matches!(Shm::open(&name), Err(Error::NotRegularFile { .. })));
    assert!(matches!(Shm::open_or_create(&name, 4096), Err(Error::NotRegularFile { .. })));
    assert!(matches!(Shared::<AtomicU64>::open(&name), Err(Error::NotRegularFile { .. })));
    assert!(ipc_shm::sweep_stale(&name).unwrap().is_empty());
    assert_eq!(sha_of(victim.to_str().unwrap()), before, "victim changed");
    assert_eq!(std::fs::metadata(&victim).unwrap().len(), 8);
    std::fs::remove_file(&link).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn segment_planted_by_another_uid_is_refused() {
    if !is_root() {
        eprintln!("skipped: needs root to act as another uid with setpriv");
        return;
    }
    let name = unique_name("squat");
    let path = format!("/dev/shm/{name}");
    // The attacker: uid 65534 creates the name world-writable, with content.
    let status = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--", "sh", "-c"])
        .arg(format!("umask 0; printf attacker > {path}"))
        .status()
        .unwrap();
    assert!(status.success());
    let meta = std::fs::metadata(&path).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!((meta.uid(), meta.mode() & 0o777), (65534, 0o666));
    assert!(matches!(Shm::create(&name, 4096), Err(Error::AlreadyExists { .. })));
    match Shm::open(&name) {
        Err(Error::UntrustedOwner { expected: 0, found: 65534, name: n, .. }) => {
            assert_eq!(n, name)
        }
        other => panic!("expected UntrustedOwner, got {other:?}"),
    }
    assert!(matches!(Shm::open_or_create(&name, 4096), Err(Error::UntrustedOwner { .. })));
    assert!(matches!(Shared::<AtomicU64>::open(&name), Err(Error::UntrustedOwner { .. })));
    assert!(ipc_shm::sweep_stale(&name).unwrap().is_empty(), "swept another user's file");
    let after = std::fs::metadata(&path).unwrap();
    assert_eq!((after.uid(), after.mode() & 0o777, after.len()), (65534, 0o666, 8));
    assert_eq!(std::fs::read(&path).unwrap(), b"attacker");
    // Trusting that uid explicitly still refuses the 0666 mode unless asked for it.
    let mut trusting = ShmOptions::new();
    trusting.owner_uid(65534);
    assert!(matches!(trusting.open(&name), Err(Error::TooPermissive { found: 0o666, .. })));
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn our_own_segment_with_a_wider_mode_is_refused() {
    let name = unique_name("wide");
    let mut o = ShmOptions::new();
    o.mode(0o644);
    let seg = o.create(&name, 4096).unwrap();
    match Shm::open(&name) {
        Err(Error::TooPermissive { allowed: 0o600, found: 0o644, .. }) => {}
        other => panic!("{other:?}"),
    }
    o.open(&name).unwrap();
    drop(seg);
    leak_check(&name);
}

#[test]
fn mode_is_exact_whatever_the_umask() {
    for umask in [0o000u32, 0o077, 0o022] {
        let mut child = fork(move || {
            use std::os::unix::fs::MetadataExt;
            // SAFETY: umask has no preconditions; this child is single-threaded.
            unsafe { libc::umask(umask) };
            for mode in [0o600u32, 0o640, 0o660, 0o604] {
                let name = unique_name("umask");
                let mut o = ShmOptions::new();
                o.mode(mode);
                let s = o.create(&name, 100).unwrap();
                let m = std::fs::metadata(format!("/dev/shm/{name}")).unwrap().mode() & 0o777;
                assert_eq!(m, mode, "umask {umask:o}");
                drop(s);
            }
            let name = unique_name("umask-default");
            let s = Shm::create(&name, 100).unwrap();
            let m = std::fs::metadata(format!("/dev/shm/{name}")).unwrap().mode() & 0o777;
            assert_eq!(m, 0o600, "default mode under umask {umask:o}");
            drop(s);
        });
        child.assert_success();
    }
}

#[test]
fn full_dev_shm_is_an_error_at_create_time() {
    if !is_root() {
        eprintln!("skipped: needs root for a private tmpfs mount");
        return;
    }
    let mut c = ipc_testkit::spawn_role_wrapped(&["unshare", "--mount", "--"], "full-dev-shm", &[]);
    assert_eq!(c.recv_line(LINE).unwrap(), "nospace");
    c.assert_success();
}

#[test]
fn truncated_named_segment_is_sigbus_but_sealed_memfd_cannot_shrink() {
    // Documents the hazard of named segments: a same-uid peer can truncate them.
    let name = unique_name("truncate");
    let seg = Shm::create(&name, 8192).unwrap();
    let mut child = fork(|| -> () {
        let s = Shm::open(&name).unwrap();
        send_line("opened");
        assert_eq!(recv_line(LINE).as_deref(), Some("truncated"));
        let mut b = [0u8; 1];
        let mut s = s;
        let _ = s.read_at(4096, &mut b); // past the new end: SIGBUS
        panic!("read past a truncated end did not fault");
    });
    assert_eq!(child.recv_line(LINE).unwrap(), "opened");
    let f = std::fs::File::options().write(true).open(format!("/dev/shm/{name}")).unwrap();
    f.set_len(0).unwrap();
    child.send_line("truncated");
    child.assert_signaled(libc::SIGBUS);
    drop(seg);
    // memfd: sealed against shrinking and growing.
    let anon = Shm::anonymous(8192).unwrap();
    let path = format!("/proc/self/fd/{}", anon.as_fd_raw());
    let f = std::fs::File::options().write(true).open(path).unwrap();
    let err = f.set_len(0).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EPERM));
    assert_eq!(f.set_len(1 << 20).unwrap_err().raw_os_error(), Some(libc::EPERM));
    leak_check(&name);
}

#[test]
fn from_fd_checks_type_and_seals() {
    // An unsealed file (a named segment's fd) is refused: its owner could truncate it.
    let name = unique_name("unsealed");
    let seg = Shm::create(&name, 4096).unwrap();
    let f = std::fs::File::open(format!("/dev/shm/{name}")).unwrap();
    assert!(matches!(Shm::from_fd(OwnedFd::from(f)), Err(Error::NotSealed { .. })));
    let dir = std::fs::File::open("/dev/shm").unwrap();
    assert!(matches!(Shm::from_fd(OwnedFd::from(dir)), Err(Error::NotRegularFile { .. })));
    let (r, _w) = std::io::pipe().unwrap();
    assert!(matches!(Shm::from_fd(OwnedFd::from(r)), Err(Error::NotRegularFile { .. })));
    // A sealed memfd of the wrong type is refused by the header check.
    let anon = Shared::anonymous(AtomicU64::new(1)).unwrap();
    let dup = std::fs::File::options()
        .read(true)
        .write(true)
        .open(format!("/proc/self/fd/{}", anon.shm().as_fd_raw()))
        .unwrap();
    let shm = Shm::from_fd(OwnedFd::from(dup)).unwrap();
    assert!(matches!(Shared::<Pattern>::from_shm(shm), Err(Error::Incompatible { .. })));
    drop(seg);
    leak_check(&name);
}

#[test]
fn sweep_removes_only_unused_segments() {
    // In a child, for the same reason as the crash-point test.
    fork(sweep_unused).assert_success();
}

fn sweep_unused() {
    let prefix = unique_name("sweep");
    let kept = Shm::create(&format!("{prefix}-inuse"), 4096).unwrap();
    let mut o = ShmOptions::new();
    o.persist(true);
    drop(o.create(&format!("{prefix}-stale"), 4096).unwrap());
    // A segment whose only user was killed.
    let p2 = prefix.clone();
    let mut child = fork(move || {
        let mut o = ShmOptions::new();
        o.persist(true);
        let s = o.create(&format!("{p2}-killed"), 4096).unwrap();
        send_line("made");
        let _ = recv_line(LINE);
        drop(s);
    });
    assert_eq!(child.recv_line(LINE).unwrap(), "made");
    // While the child maps it, the sweep leaves it.
    let mut removed = ipc_shm::sweep_stale(&prefix).unwrap();
    assert_eq!(removed, vec![format!("{prefix}-stale")]);
    child.kill_and_join();
    removed = ipc_shm::sweep_stale(&prefix).unwrap();
    assert_eq!(removed, vec![format!("{prefix}-killed")]);
    assert_eq!(audit::shm_entries(&prefix), vec![format!("{prefix}-inuse")]);
    drop(kept);
    leak_check(&prefix);
}

#[test]
fn sweep_racing_open_never_unlinks_an_opened_segment() {
    // N8: openers get a valid segment or a clean error, never one unlinked under them.
    // In a child, so no fork of a concurrent test inherits our fds (and use locks).
    let _w = watchdog(Duration::from_secs(120), "sweep race");
    fork(sweep_race).assert_success_within(Duration::from_secs(100));
}

fn sweep_race() {
    let prefix = unique_name("sweeprace");
    let iterations = fault::rounds(500, 5000);
    let stop = Shared::anonymous([AtomicU64::new(0), AtomicU64::new(0)]).unwrap();
    let p2 = prefix.clone();
    let mut sweeper = fork(|| {
        while stop[0].load(Ordering::Acquire) == 0 {
            let removed = ipc_shm::sweep_stale(&p2).unwrap();
            stop[1].fetch_add(removed.len() as u64, Ordering::AcqRel);
        }
    });
    let mut o = ShmOptions::new();
    o.persist(true);
    let name = format!("{prefix}-x");
    // At least `iterations`, and on until the sweeper has raced us a few times (on a loaded
    // machine it may not be scheduled at first), within a bound.
    let start = Instant::now();
    let mut i = 0u64;
    while (i < iterations as u64 || stop[1].load(Ordering::Acquire) < 5)
        && start.elapsed() < Duration::from_secs(60)
    {
        let mut seg =
            o.open_or_create(&name, 4096).unwrap_or_else(|e| panic!("iteration {i}: {e}"));
        seg.write_at(0, &i.to_ne_bytes()).unwrap();
        // We map it: the name must still be this segment, whoever created it.
        let mut again = o.open(&name).unwrap_or_else(|e| panic!("iteration {i}: reopen: {e}"));
        let mut b = [0u8; 8];
        again.read_at(0, &mut b).unwrap();
        assert_eq!(u64::from_ne_bytes(b), i, "iteration {i}: opened a different segment");
        i += 1;
    }
    stop[0].store(1, Ordering::Release);
    let swept = stop[1].load(Ordering::Acquire);
    eprintln!("sweep race: {i} open_or_create, {swept} segments swept between them");
    assert!(swept > 0, "the sweeper never raced the opener; the test proved nothing");
    sweeper.assert_success();
    ipc_shm::sweep_stale(&prefix).unwrap();
    leak_check(&prefix);
}

#[test]
fn killed_owner_is_dead_at_once_and_pid_reuse_is_not_mistaken() {
    let _w = watchdog(Duration::from_secs(60), "liveness");
    let me = liveness::current().unwrap();
    assert_eq!(liveness::status(me), liveness::Status::Alive);
    let mut a = spawn_role("registered", &[]);
    let a_id = liveness::OwnerId::from_raw(a.recv_line(LINE).unwrap().parse().unwrap()).unwrap();
    assert_ne!(a_id, me);
    assert_eq!(liveness::status(a_id), liveness::Status::Alive);
    let a_pid = a.pid();
    let killed = Instant::now();
    a.kill();
    // The kernel drops the lease as it closes the dying process's files, before the reap.
    let mut polls = 0u32;
    while liveness::status(a_id) != liveness::Status::Dead {
        polls += 1;
        assert!(killed.elapsed() < Duration::from_secs(5), "owner still alive 5 s after SIGKILL");
        std::hint::spin_loop();
    }
    eprintln!("liveness: dead {:?} after SIGKILL ({polls} polls)", killed.elapsed());
    a.assert_signaled(libc::SIGKILL);
    assert_eq!(liveness::status(a_id), liveness::Status::Dead, "dead after reap");

    // PID reuse: make the next pid the dead owner's (root: ns_last_pid), register there.
    if !is_root() {
        eprintln!("skipped pid reuse: needs root for ns_last_pid");
        return;
    }
    // Other processes on the machine fork too, so the pid may go to someone else: retry
    // (a fork right after the write wins almost always; only the winner registers).
    for attempt in 0..500 {
        let _ = std::fs::write("/proc/sys/kernel/ns_last_pid", (a_pid - 1).to_string());
        let mut b = fork(move || {
            if std::process::id() != a_pid {
                return;
            }
            send_line(&liveness::current().unwrap().get().to_string());
            let _ = recv_line(LINE);
        });
        if b.pid() != a_pid {
            b.assert_success();
            if attempt % 50 == 49 {
                eprintln!("pid reuse attempt {attempt}: got {} not {a_pid}", b.pid());
            }
            continue;
        }
        let b_id =
            liveness::OwnerId::from_raw(b.recv_line(LINE).unwrap().parse().unwrap()).unwrap();
        assert_eq!(liveness::status(b_id), liveness::Status::Alive);
        assert!(
            liveness::status(a_id) == liveness::Status::Dead,
            "a new process with the same pid revived the dead id"
        );
        assert_ne!(a_id, b_id);
        b.kill_and_join();
        return;
    }
    panic!("could not make the kernel reuse pid {a_pid}");
}

#[test]
fn forked_child_gets_its_own_id_and_does_not_keep_the_parent_alive() {
    let _w = watchdog(Duration::from_secs(60), "liveness fork");
    // A middle process registers, forks a grandchild that never calls into ipc-shm (and does
    // not die with it), and is killed. The grandchild must not keep the middle "alive".
    let mut middle = fork(|| {
        let id = liveness::current().unwrap();
        let lease = liveness::lease_fd().unwrap();
        // SAFETY: fcntl on our own fd.
        let flags = unsafe { libc::fcntl(lease, libc::F_GETFD) };
        assert!(flags & libc::FD_CLOEXEC != 0, "lease fd must be close-on-exec");
        let grandchild = fork_plain_sleeper();
        send_line(&format!("{} {grandchild}", id.get()));
        let _ = recv_line(LINE);
    });
    let line = middle.recv_line(LINE).unwrap();
    let (id, gc) = line.split_once(' ').unwrap();
    let id = liveness::OwnerId::from_raw(id.parse().unwrap()).unwrap();
    let gc: libc::pid_t = gc.parse().unwrap();
    assert_eq!(liveness::status(id), liveness::Status::Alive);
    middle.kill_and_join();
    // SAFETY: kill with signal 0 only probes.
    let gc_alive = unsafe { libc::kill(gc, 0) } == 0;
    assert!(gc_alive, "the grandchild should still run");
    assert_eq!(
        liveness::status(id),
        liveness::Status::Dead,
        "a forked grandchild kept its dead parent alive"
    );
    // SAFETY: our test's grandchild; it was reparented, its new parent reaps it.
    unsafe { libc::kill(gc, libc::SIGKILL) };

    // A child of a registered process registers afresh, with another id.
    let parent_id = liveness::current().unwrap();
    let mut child = fork(move || {
        let mine = liveness::current().unwrap();
        assert_ne!(mine, parent_id);
        assert_eq!(
            liveness::status(parent_id),
            liveness::Status::Alive,
            "child must see its parent"
        );
    });
    child.assert_success();
}

#[test]
fn fork_during_the_first_registration_never_hangs_the_child() {
    let _w = watchdog(Duration::from_secs(120), "fork during first registration");
    for _ in 0..fault::rounds(12, 100) {
        spawn_role("fork-during-first-current", &[]).assert_success_within(Duration::from_secs(60));
    }
}

/// A grandchild made with a plain fork (no testkit, no death signal) that sleeps up to 30 s.
/// Returns once the grandchild runs (its fork handlers have run by then: until they have, it
/// still holds the parent's lease, so the parent would look alive a little longer).
fn fork_plain_sleeper() -> libc::pid_t {
    let (r, w) = std::io::pipe().unwrap();
    #[allow(clippy::disallowed_methods)]
    // SAFETY: the child only writes one byte, sleeps and _exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        use std::io::Write;
        let _ = (&w).write_all(b"r");
        std::thread::sleep(Duration::from_secs(30));
        // SAFETY: leave without running anything of the parent's.
        unsafe { libc::_exit(0) };
    }
    drop(w);
    let mut b = [0u8; 1];
    std::io::Read::read_exact(&mut &r, &mut b).unwrap();
    pid
}

#[test]
fn futex_wakes_a_waiter_in_another_process() {
    let _w = watchdog(Duration::from_secs(60), "futex cross-process");
    let word = Shared::anonymous(AtomicU32::new(0)).unwrap();
    let mut waiter = fork(|| {
        send_line("waiting");
        let deadline = Some(Instant::now() + Duration::from_secs(20));
        while word.load(Ordering::Acquire) == 0 {
            let r = futex::wait(&word, 0, deadline);
            assert_ne!(r, WaitResult::TimedOut, "never woken: a private futex?");
        }
    });
    assert_eq!(waiter.recv_line(LINE).unwrap(), "waiting");
    // Wake only once the waiter sleeps in the kernel (its state is 'S'), so the wake is what
    // ends the wait, not a lucky value check.
    ipc_testkit::wait_until_sleeping(waiter.pid());
    word.store(1, Ordering::Release);
    let mut woken = 0;
    let t = Instant::now();
    while woken == 0 && t.elapsed() < Duration::from_secs(5) {
        woken = futex::wake_all(&word);
    }
    assert_eq!(woken, 1, "the shared futex wake did not reach the other process");
    waiter.assert_success();
}

#[test]
fn futex_timeouts_hold() {
    let word = AtomicU32::new(5);
    let t = Instant::now();
    assert_eq!(futex::wait(&word, 5, Some(t + Duration::from_millis(30))), WaitResult::TimedOut);
    assert!(t.elapsed() >= Duration::from_millis(30));
    assert_eq!(futex::wait(&word, 4, Some(t + Duration::from_secs(5))), WaitResult::Changed);
    // A deadline in the past: no sleep at all.
    assert_eq!(futex::wait(&word, 5, Some(Instant::now())), WaitResult::TimedOut);
    assert_eq!(futex::wait(&word, 6, Some(Instant::now())), WaitResult::Changed);
    // A huge deadline does not overflow.
    let far = Instant::now().checked_add(Duration::from_secs(u64::from(u32::MAX)));
    assert_eq!(futex::wait(&word, 4, far), WaitResult::Changed);
    assert_eq!(futex::wake_one(&word), 0);
}

#[repr(C)]
struct PingPong {
    turn: AtomicU32,
    ec: EventCount,
}

// SAFETY: atomics only.
unsafe impl ShmSafe for PingPong {}

#[test]
fn futex_ping_pong_loses_no_wake_up() {
    let rounds = fault::rounds(100_000, 10_000_000) as u32;
    let _w = watchdog(Duration::from_secs(300), "futex ping-pong");
    let pp =
        Shared::anonymous(PingPong { turn: AtomicU32::new(0), ec: EventCount::new() }).unwrap();
    let step = |pp: &PingPong, me: u32| -> Result<(), String> {
        for r in 0..rounds {
            let want = 2 * r + me;
            let deadline = ipc_shm::Deadline::after(Duration::from_secs(10));
            if !pp.ec.wait_until(|| pp.turn.load(Ordering::Acquire) == want, deadline) {
                return Err(format!(
                    "side {me} stuck at round {r} (turn {})",
                    pp.turn.load(Ordering::Acquire)
                ));
            }
            pp.turn.store(want + 1, Ordering::Release);
            pp.ec.notify_all();
        }
        Ok(())
    };
    let mut other = fork(|| step(&pp, 1));
    step(&pp, 0).unwrap();
    other.assert_success();
    assert_eq!(pp.turn.load(Ordering::Acquire), 2 * rounds);
}

#[test]
fn unlink_on_drop_and_persist() {
    let name = unique_name("persist");
    let s = Shm::create(&name, 100).unwrap();
    assert!(s.created());
    let opener = Shm::open(&name).unwrap();
    assert!(!opener.created());
    drop(opener);
    assert_eq!(audit::shm_entries(&name).len(), 1, "an opener must not unlink");
    s.persist(true);
    drop(s);
    assert_eq!(audit::shm_entries(&name).len(), 1, "persisted");
    let again = Shm::open(&name).unwrap();
    again.unlink().unwrap();
    assert!(again.unlink().is_err());
    leak_check(&name);
    // A name reused by someone else is never unlinked by the old handle.
    let first = Shm::create(&name, 100).unwrap();
    first.unlink().unwrap();
    let second = Shm::create(&name, 100).unwrap();
    drop(first);
    assert_eq!(audit::shm_entries(&name).len(), 1, "old handle unlinked the new segment");
    drop(second);
    leak_check(&name);
}

/// EINTR at the bottom of every wait: signals land every 0.5 ms on a process
/// inside futex waits (a handler without SA_RESTART: each one is an EINTR). A timed wait ends
/// at its deadline, neither early nor restarted from scratch; an untimed one ends by the wake.
#[test]
fn futex_waits_survive_a_signal_storm() {
    let _w = watchdog(Duration::from_secs(60), "futex EINTR");
    let word = Shared::anonymous(AtomicU32::new(0)).unwrap();
    let timeout = Duration::from_millis(300);
    let mut child = fork(|| {
        let local = AtomicU32::new(5);
        interrupt::storm_child(
            timeout,
            || {
                let deadline = Some(Instant::now() + timeout);
                assert_eq!(futex::wait(&local, 5, deadline), WaitResult::TimedOut);
            },
            || {
                while word.load(Ordering::Acquire) == 0 {
                    futex::wait(&word, 0, None);
                }
            },
        );
    });
    let (sent, caught) = interrupt::storm_parent(&mut child, || {
        word.store(1, Ordering::Release);
        futex::wake_all(&word);
    });
    eprintln!("futex waits under a signal storm: {sent} signals sent, {caught} caught");
}

// ---------------------------------------------------------------------------------------
// Names across fork

/// A forked child that drops its copy of the creator's handle (it unwound, or returned
/// through `?`, without `_exit`) must not unlink the parent's name.
#[test]
fn a_forked_child_dropping_the_creators_handle_keeps_the_name() {
    let _w = watchdog(Duration::from_secs(60), "fork unlink shm");
    let name = unique_name("fork-unlink-shm");
    let shm = Shm::create(&name, 4096).unwrap();
    fork_inheriting(&shm, drop).assert_success();
    assert!(Shm::open(&name).is_ok(), "the child's drop unlinked the parent's segment");
    let typed = unique_name("fork-unlink-shared");
    let counter = Shared::create(&typed, AtomicU64::new(1)).unwrap();
    fork_inheriting(&counter, drop).assert_success();
    assert_eq!(Shared::<AtomicU64>::open(&typed).unwrap().load(Ordering::SeqCst), 1);
    // The creator itself still unlinks on drop.
    drop((shm, counter));
    assert!(audit::shm_entries(&name).is_empty() && audit::shm_entries(&typed).is_empty());
}

// ---------------------------------------------------------------------------------------
// Python's SharedMemory and its resource tracker

fn python(script: &str, name: &str) -> std::process::Output {
    std::process::Command::new("python3").arg("-c").arg(script).arg(name).output().expect("python3")
}

/// A Python reader of a Rust-created segment: Python 3.11/3.12's resource tracker unlinks a
/// segment that a reader merely opened, when that reader exits (and warns of a "leak"). The
/// documented fix (unregister it, or `track=False` on 3.13+) keeps it.
#[test]
fn python_reads_a_rust_segment_and_the_documented_fix_keeps_it() {
    let _w = watchdog(Duration::from_secs(60), "python shm");
    if std::process::Command::new("python3").arg("-V").output().is_err() {
        eprintln!("skipped: no python3");
        return;
    }
    let read = "import sys\n\
                from multiprocessing import shared_memory\n\
                shm = shared_memory.SharedMemory(name=sys.argv[1])\n\
                assert bytes(shm.buf[:5]) == b'hello', bytes(shm.buf[:5])\n\
                shm.buf[5:10] = b'world'\n";
    let fix = "from multiprocessing import resource_tracker\n\
               if sys.version_info >= (3, 13):\n\
               \x20   pass  # SharedMemory(name, track=False) says it at open\n\
               else:\n\
               \x20   resource_tracker.unregister(shm._name, 'shared_memory')\n";
    let close = "shm.close()\n";
    // Without the fix: the tracker removes the Rust process's segment.
    let name = unique_name("py-naive");
    let mut seg = Shm::create(&name, 4096).unwrap();
    seg.write_at(0, b"hello").unwrap();
    let out = python(&format!("{read}{close}"), &name);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let naive_unlinked = Shm::open(&name).is_err();
    eprintln!(
        "python without the fix: segment {} ({})",
        if naive_unlinked { "unlinked by its resource tracker" } else { "kept" },
        String::from_utf8_lossy(&out.stderr).trim()
    );
    drop(seg);
    // With the fix, as the ipc-shm docs give it.
    let name = unique_name("py-fixed");
    let mut seg = Shm::create(&name, 4096).unwrap();
    seg.write_at(0, b"hello").unwrap();
    let out = python(&format!("{read}{fix}{close}"), &name);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("leaked"), "the tracker still warns: {stderr}");
    let mut again = Shm::open(&name).expect("the documented fix keeps the segment");
    let mut b = [0u8; 10];
    again.read_at(0, &mut b).unwrap();
    assert_eq!(&b, b"helloworld");
    drop((again, seg));
    assert!(audit::shm_entries(&name).is_empty());
}
