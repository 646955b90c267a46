use std::sync::Arc;
use std::time::Duration;

use ipc_lock::{RwLock, TryLockError};

#[test]
fn readers_share_and_writers_exclude() {
    let l = Arc::new(RwLock::new(1u64));
    let r1 = l.read().unwrap();
    let r2 = l.try_read().unwrap();
    assert_eq!(*r1 + *r2, 2);
    assert_eq!(l.raw().reader_count(), 2);
    assert!(matches!(l.try_write(), Err(TryLockError::WouldBlock)));
    assert!(matches!(l.try_write_for(Duration::from_millis(20)), Err(TryLockError::TimedOut)));
    drop((r1, r2));
    let mut w = l.write().unwrap();
    *w = 5;
    let l2 = l.clone();
    std::thread::spawn(move || {
        assert!(matches!(l2.try_read(), Err(TryLockError::WouldBlock)));
        assert!(matches!(l2.try_read_for(Duration::from_millis(20)), Err(TryLockError::TimedOut)));
    })
    .join()
    .unwrap();
    drop(w);
    assert_eq!(*l.try_read_for(Duration::from_millis(10)).unwrap(), 5);
    assert_eq!(l.raw().reader_count(), 0);
}

#[test]
fn mixed_threads_keep_the_invariant() {
    let l = Arc::new(RwLock::new([0u64; 2]));
    let ts: Vec<_> = (0..4)
        .map(|t| {
            let l = l.clone();
            std::thread::spawn(move || {
                for i in 0..10_000u32 {
                    if (i + t) % 4 == 0 {
                        let mut w = l.write().unwrap();
                        w[0] += 1;
                        std::hint::spin_loop();
                        w[1] += 1;
                    } else {
                        let r = l.read().unwrap();
                        assert_eq!(r[0], r[1], "a reader saw a half-done write");
                    }
                }
            })
        })
        .collect();
    for t in ts {
        t.join().unwrap();
    }
    assert_eq!(*l.read().unwrap(), [10_000, 10_000]);
}

#[test]
fn a_waiting_writer_gets_in_when_readers_leave() {
    let l = Arc::new(RwLock::new(0u32));
    let r = l.read().unwrap();
    let l2 = l.clone();
    let w = std::thread::spawn(move || {
        *l2.try_write_for(Duration::from_secs(10)).unwrap() += 1;
    });
    std::thread::sleep(Duration::from_millis(20));
    drop(r);
    w.join().unwrap();
    assert_eq!(*l.read().unwrap(), 1);
}
