use std::sync::Arc;
use std::time::{Duration, Instant};

use ipc_lock::{Condvar, Mutex};

struct Pair {
    m: Mutex<u64>,
    cv: Condvar,
}

#[test]
fn ping_pong_between_threads_loses_no_wake_up() {
    let p = Arc::new(Pair { m: Mutex::new(0), cv: Condvar::new() });
    let rescued = Condvar::rescued_waits();
    let rounds = 20_000u64;
    let p2 = p.clone();
    let t = std::thread::spawn(move || {
        for i in 0..rounds {
            let g = p2.m.lock().unwrap();
            let mut g = p2.cv.wait_while(g, |v| *v != 2 * i + 1).unwrap();
            *g += 1;
            p2.cv.notify_one();
        }
    });
    for i in 0..rounds {
        let g = p.m.lock().unwrap();
        let mut g = p.cv.wait_while(g, |v| *v != 2 * i).unwrap();
        *g += 1;
        p.cv.notify_all();
    }
    t.join().unwrap();
    assert_eq!(*p.m.lock().unwrap(), 2 * rounds);
    assert_eq!(Condvar::rescued_waits(), rescued, "a wake-up was missed and rescued by a slice");
}

#[test]
fn timeouts_and_wait_timeout_while() {
    let p = Pair { m: Mutex::new(0), cv: Condvar::new() };
    let g = p.m.lock().unwrap();
    let t = Instant::now();
    let (g, r) = p.cv.wait_timeout(g, Duration::from_millis(30)).unwrap();
    assert!(r.timed_out());
    assert!(t.elapsed() >= Duration::from_millis(30));
    let (g, r) = p.cv.wait_timeout_while(g, Duration::from_millis(20), |v| *v == 0).unwrap();
    assert!(r.timed_out());
    let (g, r) = p.cv.wait_timeout_while(g, Duration::from_millis(20), |v| *v != 0).unwrap();
    assert!(!r.timed_out());
    let (_g, r) = p.cv.wait_until(g, Instant::now() + Duration::from_millis(5)).unwrap();
    assert!(r.timed_out());
}

#[test]
fn notify_without_waiters_is_cheap_and_harmless() {
    let cv = Condvar::new();
    for _ in 0..1000 {
        cv.notify_one();
        cv.notify_all();
    }
    assert!(format!("{cv:?}").contains("sleepers: 0"), "{cv:?}");
}

#[test]
fn notify_all_wakes_every_waiter() {
    let p = Arc::new(Pair { m: Mutex::new(0), cv: Condvar::new() });
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let p = p.clone();
            std::thread::spawn(move || {
                let g = p.m.lock().unwrap();
                let (g, r) =
                    p.cv.wait_timeout_while(g, Duration::from_secs(10), |v| *v == 0).unwrap();
                assert!(!r.timed_out());
                assert_eq!(*g, 1);
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(20));
    *p.m.lock().unwrap() = 1;
    p.cv.notify_all();
    for w in waiters {
        w.join().unwrap();
    }
}
