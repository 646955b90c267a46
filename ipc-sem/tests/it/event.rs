use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ipc_sem::Event;
use ipc_shm::Shared;

#[test]
fn set_clear_wait() {
    let e = Shared::anonymous(Event::new()).unwrap();
    assert!(!e.is_set());
    let t = Instant::now();
    assert!(!e.wait_timeout(Duration::from_millis(20)));
    assert!(t.elapsed() >= Duration::from_millis(20));
    assert!(!e.wait_until(Instant::now()));
    e.set();
    e.set();
    assert!(e.is_set() && e.wait_timeout(Duration::ZERO));
    e.clear();
    assert!(!e.is_set());
}

#[test]
fn set_wakes_every_waiter_even_if_cleared_at_once() {
    let e = Shared::anonymous(Event::new()).unwrap();
    let woke = AtomicU32::new(0);
    for _ in 0..20 {
        woke.store(0, Ordering::SeqCst);
        let tids = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    tids.lock().unwrap().push(crate::tid());
                    if e.wait_timeout(Duration::from_secs(10)) {
                        woke.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
            // Set only once all three sleep in the kernel: they are blocked in `wait`.
            while tids.lock().unwrap().len() < 3 {
                std::thread::yield_now();
            }
            for &t in tids.lock().unwrap().iter() {
                crate::wait_sleeping(t);
            }
            e.set();
            e.clear();
        });
        assert_eq!(woke.load(Ordering::SeqCst), 3);
    }
}

#[test]
fn any_word_is_a_valid_state() {
    let e = Shared::anonymous(Event::new()).unwrap();
    crate::poke(&e, 0, u32::MAX);
    assert!(e.is_set());
    e.clear();
    assert!(!e.wait_timeout(Duration::from_millis(1)));
    e.set();
    assert!(e.wait_timeout(Duration::ZERO));
}
