use std::time::{Duration, Instant};

use ipc_sem::{Error, NamedSemaphore};

fn name(tag: &str) -> String {
    format!("ipctest-{}-named-{tag}", std::process::id())
}

#[test]
fn create_open_post_wait_unlink() {
    let n = name("basic");
    let a = NamedSemaphore::create(&n, 0).unwrap();
    assert!(NamedSemaphore::exists(&n));
    assert!(matches!(NamedSemaphore::create(&n, 0), Err(Error::Named { .. })));
    let b = NamedSemaphore::open(&n).unwrap();
    assert!(!b.try_acquire().unwrap());
    let t = Instant::now();
    assert!(!b.acquire_timeout(Duration::from_millis(30)).unwrap());
    assert!(t.elapsed() >= Duration::from_millis(30));
    a.release().unwrap();
    a.release().unwrap();
    assert_eq!(b.value().unwrap(), 2);
    b.acquire().unwrap();
    assert!(b.acquire_timeout(Duration::from_secs(5)).unwrap());
    assert_eq!(a.value().unwrap(), 0);
    let meta = std::fs::metadata(format!("/dev/shm/sem.{n}")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    NamedSemaphore::unlink(&n).unwrap();
    assert!(!NamedSemaphore::exists(&n));
    assert!(NamedSemaphore::open(&n).is_err());
    // Still usable by those who have it open.
    a.release().unwrap();
    assert!(b.try_acquire().unwrap());
    let c = NamedSemaphore::open_or_create(&n, 1).unwrap();
    let d = NamedSemaphore::open_or_create(&n, 5).unwrap();
    assert_eq!(d.value().unwrap(), 1);
    drop(c);
    NamedSemaphore::unlink(&n).unwrap();
}

#[test]
fn names_and_modes_are_checked() {
    for bad in ["", ".", "..", "a/b", "x\0y", &"n".repeat(201)] {
        assert!(
            matches!(NamedSemaphore::create(bad, 0), Err(Error::InvalidName { .. })),
            "{bad:?}"
        );
        assert!(matches!(NamedSemaphore::open(bad), Err(Error::InvalidName { .. })));
        assert!(matches!(NamedSemaphore::unlink(bad), Err(Error::InvalidName { .. })));
    }
    let n = name("wide");
    let _s = NamedSemaphore::create_with_mode(&n, 0, 0o644).unwrap();
    assert!(matches!(NamedSemaphore::open(&n), Err(Error::Untrusted { .. })));
    assert!(NamedSemaphore::open_with_mode(&n, 0o644).is_ok());
    NamedSemaphore::unlink(&n).unwrap();
    assert!(NamedSemaphore::create_with_mode(&n, 0, 0o1777).is_err());
    assert!(!NamedSemaphore::exists(&n));
}
