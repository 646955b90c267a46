use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ipc_lock::{NotOwner, RawReentrantMutex, ReentrantMutex, TryLockError};

#[test]
fn the_owner_thread_may_lock_again_others_wait() {
    let m = Arc::new(ReentrantMutex::new(AtomicU64::new(0)));
    let a = m.lock().unwrap();
    let b = m.lock().unwrap();
    let c = m.try_lock().unwrap();
    assert!(m.is_owned_by_current_thread());
    a.fetch_add(1, Ordering::Relaxed);
    let m2 = m.clone();
    std::thread::spawn(move || {
        assert!(!m2.is_owned_by_current_thread());
        assert!(matches!(m2.try_lock(), Err(TryLockError::WouldBlock)));
        assert!(matches!(m2.try_lock_for(Duration::from_millis(20)), Err(TryLockError::TimedOut)));
    })
    .join()
    .unwrap();
    drop((a, b));
    assert!(m.is_locked());
    drop(c);
    assert!(!m.is_locked());
    let m2 = m.clone();
    std::thread::spawn(move || {
        let g = m2.try_lock_for(Duration::from_secs(5)).unwrap();
        g.fetch_add(1, Ordering::Relaxed);
    })
    .join()
    .unwrap();
    assert_eq!(m.lock().unwrap().load(Ordering::Relaxed), 2);
}

#[test]
fn release_by_a_non_owner_or_twice_is_not_owner() {
    let m = Arc::new(RawReentrantMutex::new());
    assert_eq!(m.unlock(), Err(NotOwner));
    m.lock().unwrap();
    m.lock().unwrap();
    let m2 = m.clone();
    std::thread::spawn(move || assert_eq!(m2.unlock(), Err(NotOwner))).join().unwrap();
    assert!(m.is_locked());
    m.unlock().unwrap();
    assert!(m.is_locked());
    m.unlock().unwrap();
    assert!(!m.is_locked());
    assert_eq!(m.unlock(), Err(NotOwner));
    assert!(!m.is_locked());
}

#[test]
fn threads_exclude_each_other_through_recursion() {
    let m = Arc::new(ReentrantMutex::new([AtomicU64::new(0), AtomicU64::new(0)]));
    let ts: Vec<_> = (0..4)
        .map(|_| {
            let m = m.clone();
            std::thread::spawn(move || {
                for _ in 0..5000 {
                    let g1 = m.lock().unwrap();
                    let g2 = m.lock().unwrap();
                    let v = g1[0].load(Ordering::Relaxed);
                    g2[0].store(v + 1, Ordering::Relaxed);
                    drop(g2);
                    g1[1].store(v + 1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in ts {
        t.join().unwrap();
    }
    let g = m.lock().unwrap();
    assert_eq!(g[0].load(Ordering::Relaxed), 20_000);
    assert_eq!(g[1].load(Ordering::Relaxed), 20_000);
}
