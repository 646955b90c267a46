use std::sync::Arc;
use std::time::{Duration, Instant};

use ipc_lock::{LockError, Mutex, TryLockError};
use ipc_shm::Shared;

#[test]
fn all_zero_is_unlocked_and_layout_is_fixed() {
    let m: Mutex<u64> = ipc_shm::bytemuck::Zeroable::zeroed();
    assert!(!m.is_locked());
    assert_eq!(*m.lock().unwrap(), 0);
    assert_eq!(size_of::<Mutex<u64>>(), 24);
    assert_eq!(size_of::<ipc_lock::RawMutex>(), 16);
}

#[test]
fn lock_try_lock_and_timeouts_between_threads() {
    let m = Arc::new(Mutex::new(5u32));
    let g = m.lock().unwrap();
    assert!(m.is_locked());
    let m2 = m.clone();
    std::thread::spawn(move || {
        assert!(matches!(m2.try_lock(), Err(TryLockError::WouldBlock)));
        let t = Instant::now();
        assert!(matches!(m2.try_lock_for(Duration::from_millis(30)), Err(TryLockError::TimedOut)));
        assert!(t.elapsed() >= Duration::from_millis(30));
        let deadline = Instant::now() + Duration::from_millis(10);
        assert!(matches!(m2.try_lock_until(deadline), Err(TryLockError::TimedOut)));
        assert!(Instant::now() >= deadline);
    })
    .join()
    .unwrap();
    drop(g);
    assert!(!m.is_locked());
    *m.try_lock().unwrap() += 1;
    assert_eq!(*m.try_lock_for(Duration::from_millis(1)).unwrap(), 6);
}

#[test]
fn threads_exclude_each_other() {
    let m = Arc::new(Mutex::new([0u64; 2]));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let m = m.clone();
            std::thread::spawn(move || {
                for i in 0..20_000u32 {
                    let mut g = match i % 3 {
                        0 => m.lock().unwrap(),
                        1 => loop {
                            match m.try_lock() {
                                Ok(g) => break g,
                                Err(TryLockError::WouldBlock) => std::thread::yield_now(),
                                Err(e) => panic!("{e}"),
                            }
                        },
                        _ => m.try_lock_for(Duration::from_secs(10)).unwrap(),
                    };
                    // Two steps: a torn pair would show a missed exclusion.
                    g[0] += 1;
                    std::hint::spin_loop();
                    g[1] = g[0];
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let g = m.lock().unwrap();
    assert_eq!(*g, [80_000, 80_000]);
}

#[test]
fn a_waiter_is_woken_by_the_unlock() {
    let m = Arc::new(Mutex::new(0u32));
    let g = m.lock().unwrap();
    let m2 = m.clone();
    let t = std::thread::spawn(move || {
        let t0 = Instant::now();
        *m2.lock().unwrap() += 1;
        t0.elapsed()
    });
    // Let the waiter park (CONTENDED set), then unlock.
    while m.raw().word_value() & (1 << 31) == 0 {
        std::thread::yield_now();
    }
    drop(g);
    let waited = t.join().unwrap();
    assert_eq!(*m.lock().unwrap(), 1);
    eprintln!("waiter got the lock after {waited:?}");
}

#[test]
fn mark_consistent_on_a_clean_guard_changes_nothing() {
    let m = Mutex::new(1u8);
    let mut g = m.lock().unwrap();
    assert!(!g.owner_died());
    assert_eq!(g.dead_owner(), None);
    assert!(!g.mark_consistent());
    drop(g);
    assert!(!m.is_not_recoverable());
    assert!(m.lock().is_ok());
}

#[test]
fn works_inside_shared_memory() {
    let s = Shared::anonymous(Mutex::new(7u64)).unwrap();
    *s.lock().unwrap() += 1;
    assert_eq!(*s.lock().unwrap(), 8);
    let e: LockError<()> = LockError::NotRecoverable;
    assert!(e.to_string().contains("not recoverable"));
}

#[test]
fn every_raw_lock_is_all_zero_when_new_and_has_a_fixed_layout() {
    use ipc_lock::{Condvar, RawMutex, RawReentrantMutex, RawRwLock};
    use ipc_shm::bytemuck::Zeroable;
    // (size, align) of each shared layout; all-zero is the initial state of each.
    assert_eq!((size_of::<RawMutex>(), align_of::<RawMutex>()), (16, 8));
    assert_eq!((size_of::<RawRwLock>(), align_of::<RawRwLock>()), (280, 8));
    assert_eq!((size_of::<RawReentrantMutex>(), align_of::<RawReentrantMutex>()), (32, 8));
    assert_eq!((size_of::<Condvar>(), align_of::<Condvar>()), (8, 4));
    let m = RawMutex::zeroed();
    assert_eq!(m.word_value(), RawMutex::new().word_value());
    assert_eq!(m.word_value(), 0);
    assert!(!m.is_locked());
    let l = RawRwLock::zeroed();
    assert_eq!((l.writer_word_value(), l.reader_count()), (0, 0));
    assert!((0..ipc_lock::READER_SLOTS).all(|i| l.slot_value(i) == 0));
    let r = RawReentrantMutex::zeroed();
    assert!(!r.is_locked() && !r.is_owned_by_current_thread());
    let c = Condvar::zeroed();
    assert!(format!("{c:?}").contains("seq: 0, sleepers: 0"), "{c:?}");
    // lock_api's INIT is the same all-zero value.
    let init: RawMutex = <RawMutex as lock_api::RawMutex>::INIT;
    assert_eq!(init.word_value(), 0);
}
