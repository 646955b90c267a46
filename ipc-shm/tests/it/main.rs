//! In-process tests of ipc-shm's API (the cross-process suite is in tests/tests/shm.rs).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use ipc_shm::header::{HeaderError, ObjectKind, layout_tag};
use ipc_shm::{Error, EventCount, Object, Shared, Shm, ShmOptions, SpinWait};

fn name(tag: &str) -> String {
    ipc_shm::random_name(&format!("ipctest-it-{tag}")).unwrap()
}

#[test]
fn read_write_are_bounds_checked() {
    let mut s = Shm::anonymous(100).unwrap();
    s.write_at(90, &[1; 10]).unwrap();
    let mut b = [0u8; 10];
    s.read_at(90, &mut b).unwrap();
    assert_eq!(b, [1; 10]);
    for (off, len) in [(91usize, 10usize), (100, 1), (usize::MAX, 2), (0, 101)] {
        let buf = vec![0u8; len];
        let e = s.write_at(off, &buf).unwrap_err();
        assert!(matches!(e, Error::OutOfBounds { .. }), "{e}");
        let mut buf = vec![0u8; len];
        assert!(matches!(s.read_at(off, &mut buf), Err(Error::OutOfBounds { .. })));
    }
    s.read_at(100, &mut []).unwrap(); // empty range at the end is fine
    for (at, ok) in [(96, true), (97, false), (100, false), (usize::MAX - 1, false)] {
        // SAFETY: the view is dropped at once; nothing else accesses `s`.
        assert_eq!(unsafe { s.atomic_u32(at) }.is_some(), ok, "{at}");
    }
}

#[test]
fn lengths_are_checked() {
    assert!(matches!(Shm::anonymous(0), Err(Error::InvalidLength { .. })));
    assert!(matches!(Shm::create(&name("zero"), 0), Err(Error::InvalidLength { .. })));
    assert!(matches!(Shm::anonymous(usize::MAX), Err(Error::InvalidLength { .. })));
}

#[test]
fn errors_name_the_operation_and_the_object() {
    let n = name("missing");
    let e = Shm::open(&n).unwrap_err();
    assert_eq!(e.to_string(), format!("open shm segment {n:?}: not found"));
    let made = Shm::create(&n, 10).unwrap();
    let e = Shm::create(&n, 10).unwrap_err();
    assert_eq!(e.to_string(), format!("create shm segment {n:?}: already exists"));
    let e = Shared::<AtomicU64>::open(&n).unwrap_err();
    assert!(e.to_string().starts_with(&format!("open shm segment {n:?}")), "{e}");
    drop(made);
    let e = Shm::create("bad/name", 10).unwrap_err();
    assert!(e.to_string().contains("invalid shm name \"bad/name\""), "{e}");
}

#[test]
fn objects_with_a_runtime_length() {
    let kind = ObjectKind { tag: layout_tag("test ring"), version: 2, align: 64, owner_ids: false };
    let n = name("object");
    let mut init = |p: NonNull<u8>, len: usize| {
        assert_eq!(len, 1000);
        assert_eq!(p.as_ptr() as usize % 64, 0);
        // SAFETY: the init closure owns these `len` zeroed bytes until READY.
        unsafe { p.as_ptr().write_bytes(7, len) };
    };
    let o = Object::create(&ShmOptions::new(), &n, kind, 1000, &mut init).unwrap();
    let opened = Object::open(&ShmOptions::new(), &n, kind, None).unwrap();
    assert_eq!(opened.body_len(), 1000);
    let mut b = [0u8; 4];
    let at = opened.body().as_ptr() as usize - opened.shm().as_ptr().as_ptr() as usize;
    // SAFETY: an `Object` lends no references into its body; nothing else writes it now.
    unsafe { opened.shm().read_at_shared(at, &mut b) }.unwrap();
    assert_eq!(b, [7; 4]);
    // Another length, version or tag is refused with the values.
    match Object::open(&ShmOptions::new(), &n, kind, Some(999)) {
        Err(Error::Incompatible {
            source: HeaderError::BodyLen { expected: 999, found: 1000 },
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    let v3 = ObjectKind { version: 3, ..kind };
    assert!(matches!(
        Object::open(&ShmOptions::new(), &n, v3, None),
        Err(Error::Incompatible {
            source: HeaderError::LayoutVersion { expected: 3, found: 2 },
            ..
        })
    ));
    // open_or_create finds it and does not run init again.
    let mut never = |_: NonNull<u8>, _: usize| panic!("init ran on an existing object");
    let again = Object::open_or_create(&ShmOptions::new(), &n, kind, 1000, &mut never).unwrap();
    assert!(!again.shm().created());
    drop((o, opened, again));
    assert!(matches!(Shm::open(&n), Err(Error::NotFound { .. })));
}

#[test]
fn bad_alignment_is_an_error() {
    let kind = ObjectKind { tag: 1, version: 0, align: 3, owner_ids: false };
    let mut init = |_: NonNull<u8>, _: usize| {};
    assert!(matches!(
        Object::anonymous(&ShmOptions::new(), kind, 8, &mut init),
        Err(Error::InvalidLength { .. })
    ));
}

#[test]
fn anonymous_objects_round_trip_through_from_shm() {
    let a = Shared::anonymous([AtomicU64::new(3), AtomicU64::new(4)]).unwrap();
    a[1].store(5, Ordering::Relaxed);
    assert_eq!(a[0].load(Ordering::Relaxed) + a[1].load(Ordering::Relaxed), 8);
    assert!(a.shm().name().is_none());
}

#[test]
fn event_count_skips_the_syscall_without_sleepers() {
    let ec = EventCount::new();
    assert!(!ec.has_sleepers());
    ec.notify_all();
    ec.notify_one();
    assert!(!ec.has_sleepers());
    // A timed wait on a condition that never holds times out, and leaves no sleeper behind.
    let t = std::time::Instant::now();
    let until = ipc_shm::Deadline::at(t + std::time::Duration::from_millis(5));
    assert!(!ec.wait_until(|| false, until));
    assert!(t.elapsed() >= std::time::Duration::from_millis(5));
    assert!(!ec.has_sleepers());
}

#[test]
fn spin_wait_is_bounded() {
    let mut s = SpinWait::with_steps(4);
    let mut n = 0;
    while s.spin() {
        n += 1;
    }
    assert_eq!(n, 4);
    s.reset();
    assert!(s.spin());
    assert!(ipc_shm::current_cpu() < 4096);
}

#[test]
fn liveness_of_self() {
    let me = ipc_shm::liveness::current().unwrap();
    assert_eq!(ipc_shm::liveness::current().unwrap(), me);
    assert_eq!(ipc_shm::liveness::status(me), ipc_shm::liveness::Status::Alive);
    assert!(me.get() & !ipc_shm::OwnerId::MASK == 0 && me.get() != 0);
    assert!(ipc_shm::OwnerId::from_raw(0).is_none());
    assert!(ipc_shm::OwnerId::from_raw(u32::MAX).is_none());
    assert_eq!(ipc_shm::liveness::status_raw(u32::MAX), ipc_shm::liveness::Status::Unknown);
    assert_eq!(ipc_shm::liveness::pid_hint(me), Some(std::process::id()));
}

#[test]
fn a_huge_init_timeout_saturates_instead_of_panicking() {
    use std::sync::atomic::AtomicU64;
    let n = name("huge-timeout");
    let mut opts = ShmOptions::new();
    opts.init_timeout(std::time::Duration::MAX);
    let made = ipc_shm::Shared::create_with(&opts, &n, AtomicU64::new(3)).unwrap();
    let opened = ipc_shm::Shared::<AtomicU64>::open_with(&opts, &n).unwrap();
    assert_eq!(opened.load(std::sync::atomic::Ordering::Relaxed), 3);
    drop((made, opened));
}

fn check(msg: String, wants: &[&str]) {
    println!("{msg}");
    assert!(!msg.contains('\n'), "one line: {msg}");
    for w in wants {
        assert!(msg.contains(w), "{msg:?} lacks {w:?}");
    }
}

/// Every error's message: operation, object and cause in one line (`--nocapture` prints them).
#[test]
fn every_message_names_operation_object_and_cause() {
    let (op, n) = ("open", || "jobs".to_owned());
    let os = || std::io::Error::from_raw_os_error(libc::EACCES);
    let all: Vec<(Error, &[&str])> = vec![
        (
            Error::InvalidName { name: "a b".into(), reason: "only A-Z" },
            &["invalid shm name \"a b\"", "only A-Z"],
        ),
        (
            Error::AlreadyExists { op: "create", name: n() },
            &["create shm segment \"jobs\"", "already exists"],
        ),
        (Error::NotFound { op, name: n() }, &["open shm segment \"jobs\"", "not found"]),
        (Error::NotRegularFile { op, name: n() }, &["not a regular file"]),
        (
            Error::UntrustedOwner { op, name: n(), expected: 0, found: 65534 },
            &["owned by uid 65534, expected uid 0"],
        ),
        (
            Error::TooPermissive { op, name: n(), allowed: 0o600, found: 0o666 },
            &["mode 0o666", "allowed 0o600"],
        ),
        (
            Error::NoSpace { op: "create", name: n(), len: 4096, source: os() },
            &["no space for 4096 bytes"],
        ),
        (
            Error::SizeMismatch { op, name: n(), expected: 8, found: 4 },
            &["size is 4 bytes, expected 8"],
        ),
        (Error::InvalidLength { op: "create", name: n(), len: 0 }, &["invalid length 0"]),
        (
            Error::NotInitialized { op, name: n(), why: "its creator died while initialising it" },
            &["not initialised", "creator died"],
        ),
        (
            Error::InitTimeout { op, name: n(), waited: std::time::Duration::from_secs(2) },
            &["still being initialised after 2s"],
        ),
        (
            Error::Incompatible { op, name: n(), source: HeaderError::BadMagic { found: 7 } },
            &["incompatible header", "magic"],
        ),
        (Error::NotSealed { op: "map", name: n() }, &["not sealed against shrinking"]),
        (
            Error::OutOfBounds { op: "read", name: n(), offset: 90, len: 20, size: 100 },
            &["range 90+20", "100-byte"],
        ),
        (
            Error::LivenessFull { name: "reg".into(), slots: 16384 },
            &["liveness registry \"reg\"", "16384 slots"],
        ),
        (
            Error::Io { op, name: n(), source: os() },
            &["open shm segment \"jobs\"", "Permission denied"],
        ),
    ];
    for (e, wants) in all {
        let cause = e.cause();
        assert!(!cause.starts_with("open shm segment"), "cause keeps the prefix: {cause}");
        check(e.to_string(), wants);
    }
    // A type mismatch names both types when this process knows them.
    let name = name("errors-type");
    let _a = Shared::create(&name, AtomicU64::new(1)).unwrap();
    let _ = ipc_shm::object_kind::<std::sync::atomic::AtomicU32>();
    let e = Shared::<std::sync::atomic::AtomicU32>::open(&name).unwrap_err();
    check(e.to_string(), &["AtomicU64", "not core::sync::atomic::AtomicU32"]);
}
