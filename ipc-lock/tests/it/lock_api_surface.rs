//! lock_api's generic wrappers over our raw types (process-local use).
use std::sync::Arc;
use std::time::Duration;

type Mutex<T> = lock_api::Mutex<ipc_lock::RawMutex, T>;
type RwLock<T> = lock_api::RwLock<ipc_lock::RawRwLock, T>;
type Condvar = lock_api::Condvar<ipc_lock::Condvar>;

#[test]
fn mutex_rwlock_and_condvar_through_lock_api() {
    let m = Arc::new(Mutex::new(0u64));
    let ts: Vec<_> = (0..2)
        .map(|_| {
            let m = m.clone();
            std::thread::spawn(move || {
                for _ in 0..10_000 {
                    *m.lock() += 1;
                }
            })
        })
        .collect();
    for t in ts {
        t.join().unwrap();
    }
    assert_eq!(*m.lock(), 20_000);
    let g = m.lock();
    assert!(m.try_lock().is_none());
    assert!(m.try_lock_for(Duration::from_millis(5)).is_none());
    drop(g);
    assert!(m.try_lock_for(Duration::from_millis(5)).is_some());

    let l = RwLock::new(3u8);
    {
        let a = l.read();
        let b = l.read();
        assert_eq!(*a + *b, 6);
        assert!(l.try_write().is_none());
    }
    *l.write() = 4;
    assert_eq!(*l.try_read_for(Duration::from_millis(5)).unwrap(), 4);

    let pair = Arc::new((Mutex::new(false), Condvar::new()));
    let p2 = pair.clone();
    let t = std::thread::spawn(move || {
        *p2.0.lock() = true;
        p2.1.notify_one();
    });
    let mut g = pair.0.lock();
    while !*g {
        pair.1.wait(&mut g);
    }
    drop(g);
    t.join().unwrap();
}
