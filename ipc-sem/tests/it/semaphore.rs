use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ipc_sem::{Error, MAX_VALUE, Semaphore};
use ipc_shm::Shared;

use crate::{peek, poke};

const LEDGER: usize = 64;

#[test]
fn untracked_counts_and_release_without_acquire() {
    let s = Shared::anonymous(Semaphore::new(2).unwrap()).unwrap();
    assert!(!s.is_tracked());
    let a = s.acquire().unwrap();
    let b = s.try_acquire().unwrap().unwrap();
    assert!(s.try_acquire().unwrap().is_none());
    assert_eq!(s.value(), 0);
    drop(a);
    assert_eq!(s.value(), 1);
    b.forget();
    assert_eq!(s.value(), 1);
    s.release_many(3).unwrap(); // a producer's release: no acquire needed
    assert_eq!(s.value(), 4);
    let many = s.acquire_many(4).unwrap();
    assert_eq!(many.count(), 4);
    assert!(s.try_acquire_many(1).unwrap().is_none());
    many.release().unwrap();
    assert!(s.try_acquire_many(5).unwrap().is_none(), "all or none");
    assert_eq!(s.value(), 4);
    assert!(matches!(s.acquire_many(0), Err(Error::InvalidCount { .. })));
    assert!(matches!(s.acquire_many(MAX_VALUE + 1), Err(Error::InvalidCount { .. })));
    assert!(matches!(s.release_many(0), Err(Error::InvalidCount { .. })));
}

#[test]
fn untracked_release_past_the_maximum_is_an_error() {
    let s = Shared::anonymous(Semaphore::new(MAX_VALUE - 1).unwrap()).unwrap();
    s.release().unwrap();
    assert!(
        matches!(s.release(), Err(Error::Overflow { found, max, .. }) if found == MAX_VALUE && max == MAX_VALUE)
    );
    assert_eq!(s.value(), MAX_VALUE);
    assert!(Semaphore::new(MAX_VALUE + 1).is_err());
}

#[test]
fn timeouts_hold_and_leak_nothing() {
    for s in [Semaphore::new(0).unwrap(), Semaphore::tracked(1).unwrap()] {
        let s = Shared::anonymous(s).unwrap();
        let hold = if s.is_tracked() { Some(s.acquire().unwrap()) } else { None };
        let t = Instant::now();
        assert!(s.acquire_timeout(Duration::from_millis(30)).unwrap().is_none());
        assert!(t.elapsed() >= Duration::from_millis(30));
        assert!(s.acquire_timeout(Duration::ZERO).unwrap().is_none());
        assert!(s.acquire_until(Instant::now()).unwrap().is_none());
        assert!(s.acquire_many_timeout(1, Duration::from_millis(1)).unwrap().is_none());
        drop(hold);
        if !s.is_tracked() {
            s.release().unwrap();
        }
        assert_eq!(s.value(), 1, "a timeout took a permit");
        // A huge timeout is "for ever", not an overflow.
        assert!(s.acquire_timeout(Duration::MAX).unwrap().is_some());
    }
}

#[test]
fn tracked_ledger_release_rules() {
    let s = Shared::anonymous(Semaphore::tracked(3).unwrap()).unwrap();
    assert!(s.is_tracked());
    assert_eq!(s.max_permits().unwrap(), 3);
    assert!(matches!(s.release(), Err(Error::NotHeld { held: 0, .. })));
    let p = s.acquire_many(2).unwrap();
    let l = s.ledger().unwrap();
    assert_eq!((l.permits, l.free, l.held_by_me, l.held_by_live, l.held_by_dead), (3, 1, 2, 2, 0));
    p.forget();
    s.release().unwrap();
    assert!(matches!(s.release_many(2), Err(Error::NotHeld { n: 2, held: 1, .. })));
    assert_eq!(s.value(), 3);
    assert!(matches!(s.acquire_many(4), Err(Error::InvalidCount { max: 3, .. })));
    assert!(Semaphore::tracked(0).is_err());
    assert!(Semaphore::tracked(LEDGER as u32 + 1).is_err());
    let big = Shared::anonymous(Semaphore::<256>::with_ledger(200).unwrap()).unwrap();
    let all = big.acquire_many(200).unwrap();
    assert_eq!(big.value(), 0);
    drop(all);
    assert_eq!(big.value(), 200);
}

#[test]
fn permits_move_between_threads() {
    let s = Shared::anonymous(Semaphore::tracked(1).unwrap()).unwrap();
    let p = s.acquire().unwrap();
    std::thread::scope(|sc| {
        sc.spawn(move || drop(p));
    });
    assert_eq!(s.value(), 1);
}

#[test]
fn never_more_holders_than_permits() {
    for tracked in [false, true] {
        let s = Shared::anonymous(if tracked {
            Semaphore::tracked(2).unwrap()
        } else {
            Semaphore::new(2).unwrap()
        })
        .unwrap();
        let inside = AtomicU32::new(0);
        let max_seen = AtomicU32::new(0);
        std::thread::scope(|sc| {
            for t in 0..4 {
                let (s, inside, max_seen) = (&s, &inside, &max_seen);
                sc.spawn(move || {
                    for i in 0..5_000 {
                        let p = if (i + t) % 3 == 0 {
                            s.try_acquire().unwrap()
                        } else {
                            Some(s.acquire_timeout(Duration::from_secs(10)).unwrap().unwrap())
                        };
                        let Some(p) = p else { continue };
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        max_seen.fetch_max(now, Ordering::SeqCst);
                        inside.fetch_sub(1, Ordering::SeqCst);
                        drop(p);
                    }
                });
            }
        });
        assert!(max_seen.load(Ordering::SeqCst) <= 2);
        assert_eq!(s.value(), 2, "tracked={tracked}");
    }
}

#[test]
fn blocked_waiter_is_woken_by_release() {
    for tracked in [false, true] {
        let s = Shared::anonymous(if tracked {
            Semaphore::tracked(1).unwrap()
        } else {
            Semaphore::new(1).unwrap()
        })
        .unwrap();
        let p = s.acquire().unwrap();
        std::thread::scope(|sc| {
            let w = sc.spawn(|| s.acquire_timeout(Duration::from_secs(10)).unwrap().is_some());
            std::thread::sleep(Duration::from_millis(20)); // let it sleep (timing only)
            drop(p);
            assert!(w.join().unwrap());
        });
    }
}

#[test]
fn corrupted_config_is_a_typed_error() {
    let s = Shared::anonymous(Semaphore::tracked(2).unwrap()).unwrap();
    poke(&s, 4, 0x8000_0005); // permits 5 without a matching check word
    assert!(matches!(s.acquire(), Err(Error::Corrupted { what: "config word", .. })));
    assert!(matches!(s.release(), Err(Error::Corrupted { .. })));
    assert_eq!(s.value(), 0);
    // A forged pair naming more permits than the ledger holds is refused too.
    poke(&s, 4, 0x8000_0000 | 65);
    poke(&s, 8, (0x8000_0000u32 | 65).wrapping_mul(0x9E37_79B1));
    assert!(matches!(s.try_acquire(), Err(Error::Corrupted { .. })));
}

#[test]
fn garbage_ledger_words_are_never_reclaimed() {
    // A garbage holder is Unknown to liveness, never Dead: its permits are not handed to
    // anyone (a live owner is never taken for dead); acquirers wait until their deadline.
    let s = Shared::anonymous(Semaphore::tracked(2).unwrap()).unwrap();
    poke(&s, 64, 0x4000_1234); // bit 30: never an owner id
    poke(&s, 68, 0xFFFF_FFFF);
    assert_eq!(s.value(), 0);
    let l = s.ledger().unwrap();
    assert_eq!((l.held_by_dead, l.held_by_unknown), (0, 2));
    assert!(s.try_acquire().unwrap().is_none(), "a garbage word was taken over");
    assert!(s.acquire_timeout(std::time::Duration::from_millis(20)).unwrap().is_none());
    assert_eq!(s.recover().unwrap(), 0);
    assert_eq!(s.recovered(), 0);
    // Untouched (a waiter may have set the WANTED bit, bit 31, beside it).
    assert_eq!((peek(&s, 64) & 0x7FFF_FFFF, peek(&s, 68)), (0x4000_1234, 0xFFFF_FFFF));
}

#[test]
fn untracked_garbage_count_is_clamped() {
    let s = Shared::anonymous(Semaphore::new(1).unwrap()).unwrap();
    poke(&s, 0, u32::MAX); // SLEEPERS + the largest count
    assert_eq!(s.value(), MAX_VALUE);
    assert!(matches!(s.release(), Err(Error::Overflow { .. })));
    assert!(s.try_acquire().unwrap().is_some());
}
