use std::time::{Duration, Instant};

use ipc_lock::FileLock;

fn path(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("ipc-lock-it-{}-{tag}.lock", std::process::id()))
}

#[test]
fn exclusive_and_shared_between_two_handles() {
    let p = path("ex");
    let mut a = FileLock::open(&p).unwrap();
    let mut b = FileLock::open(&p).unwrap();
    {
        let g = a.lock().unwrap();
        assert!(!g.is_shared());
        assert!(b.is_locked_elsewhere().unwrap());
        assert!(b.try_lock().unwrap().is_none());
        assert!(b.try_lock_shared().unwrap().is_none());
        let t = Instant::now();
        assert!(b.try_lock_for(Duration::from_millis(30)).unwrap().is_none());
        assert!(t.elapsed() >= Duration::from_millis(30));
    }
    assert!(!b.is_locked_elsewhere().unwrap());
    {
        let _s1 = a.lock_shared().unwrap();
        let s2 = b.try_lock_shared_for(Duration::from_millis(100)).unwrap().unwrap();
        assert!(s2.is_shared());
        s2.unlock().unwrap();
    }
    let g = b.try_lock_until(Instant::now() + Duration::from_millis(100)).unwrap();
    assert!(g.is_some());
    drop(g);
    drop((a, b));
    std::fs::remove_file(&p).unwrap();
}

#[test]
fn a_symlink_is_not_followed() {
    let target = path("target");
    let link = path("link");
    std::fs::write(&target, b"victim").unwrap();
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let err = FileLock::open(&link).unwrap_err();
    assert!(err.to_string().contains("open file lock"), "{err}");
    assert_eq!(std::fs::read(&target).unwrap(), b"victim");
    std::fs::remove_file(&link).unwrap();
    std::fs::remove_file(&target).unwrap();
}
