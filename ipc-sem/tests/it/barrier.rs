use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ipc_sem::{Barrier, BarrierError};
use ipc_shm::Shared;

#[test]
fn generations_with_one_leader_each() {
    let b = Shared::anonymous(Barrier::new(4).unwrap()).unwrap();
    assert_eq!(b.parties().unwrap(), 4);
    let leaders = AtomicU32::new(0);
    let phase = AtomicU32::new(0);
    let gens = 2_000;
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for g in 0..gens {
                    assert!(phase.load(Ordering::SeqCst) >= 4 * g);
                    phase.fetch_add(1, Ordering::SeqCst);
                    let r = b.wait_timeout(Duration::from_secs(10)).unwrap();
                    assert!(phase.load(Ordering::SeqCst) >= 4 * (g + 1), "left before all arrived");
                    if r.is_leader() {
                        leaders.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    assert_eq!(leaders.load(Ordering::SeqCst), gens);
}

#[test]
fn timeout_breaks_for_all_and_reset_repairs() {
    let b = Shared::anonymous(Barrier::new(3).unwrap()).unwrap();
    std::thread::scope(|s| {
        let other = s.spawn(|| b.wait_timeout(Duration::from_secs(10)));
        while b.n_waiting() == 0 {
            std::thread::yield_now();
        }
        let t = Instant::now();
        assert_eq!(b.wait_timeout(Duration::from_millis(30)), Err(BarrierError::Timeout));
        assert!(t.elapsed() >= Duration::from_millis(30));
        assert_eq!(other.join().unwrap(), Err(BarrierError::Broken));
    });
    assert!(b.is_broken());
    assert_eq!(b.wait(), Err(BarrierError::Broken));
    b.reset();
    assert!(!b.is_broken());
    let one = Shared::anonymous(Barrier::new(1).unwrap()).unwrap();
    assert!(one.wait().unwrap().is_leader());
}

#[test]
fn abort_and_reset_break_waiters() {
    let b = Shared::anonymous(Barrier::new(3).unwrap()).unwrap();
    for how in ["abort", "reset"] {
        std::thread::scope(|s| {
            let w = s.spawn(|| b.wait_timeout(Duration::from_secs(10)));
            while b.n_waiting() == 0 {
                std::thread::yield_now();
            }
            if how == "abort" {
                b.abort()
            } else {
                b.reset()
            }
            assert_eq!(w.join().unwrap(), Err(BarrierError::Broken), "{how}");
        });
        b.reset();
    }
    // Usable again.
    std::thread::scope(|s| {
        let w = s.spawn(|| b.wait_timeout(Duration::from_secs(10)).unwrap().is_leader());
        let x = s.spawn(|| b.wait_timeout(Duration::from_secs(10)).unwrap().is_leader());
        let me = b.wait_timeout(Duration::from_secs(10)).unwrap().is_leader();
        let n = [me, w.join().unwrap(), x.join().unwrap()].iter().filter(|l| **l).count();
        assert_eq!(n, 1);
    });
}

#[test]
fn corrupted_parties_and_garbage_count() {
    assert!(Barrier::new(0).is_err());
    assert!(Barrier::new(ipc_sem::MAX_PARTIES + 1).is_err());
    let b = Shared::anonymous(Barrier::new(3).unwrap()).unwrap();
    crate::poke(&b, 0, 0xFFF); // a count far past the parties: the next arrival leads
    assert!(b.wait_timeout(Duration::from_secs(1)).unwrap().is_leader());
    crate::poke(&b, 4, 7);
    assert!(matches!(b.wait(), Err(BarrierError::Corrupted { found: 7, .. })));
    assert!(b.parties().is_err());
}
