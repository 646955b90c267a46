//! loom models of ipc-sem's state machines: semaphore counts (untracked and tracked, with a
//! dead holder), the bounded maximum, event generations and barrier generations, under the
//! futex emulation of ipc-shm that makes check-then-sleep atomic (a lost wake-up shows up
//! as a loom deadlock). Model threads play separate processes, and kill some, through the
//! one seam for that, `ipc_shm::liveness::model`: the semaphore is driven through its public
//! API only. Run with
//! `RUSTFLAGS="--cfg ipc_loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release -p ipc-sem --test loom`.
#![cfg(ipc_loom)]
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use ipc_sem::{Barrier, BarrierError, BoundedSemaphore, Error, Event, Semaphore};
use ipc_shm::liveness::model::{act_as, kill};
use ipc_shm::sync::atomic::{AtomicU32, Ordering};
use loom::sync::Arc;
use loom::thread;

/// Owner ids the model threads play (any 30-bit ids with a non-zero generation).
const A: u32 = (1 << 14) | 1;
const B: u32 = (1 << 14) | 2;
const C: u32 = (1 << 14) | 3;
/// The owner the models kill while it holds a permit.
const DEAD: u32 = (1 << 14) | 4;

/// Untracked, one permit, two threads: mutual exclusion, and the blocked one is woken.
#[test]
fn untracked_one_permit_two_threads() {
    loom::model(|| {
        let s = Arc::new(Semaphore::new(1).unwrap());
        let inside = Arc::new(AtomicU32::new(0));
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let (s, inside) = (s.clone(), inside.clone());
                thread::spawn(move || {
                    let p = s.acquire().unwrap();
                    // Relaxed: the permit orders these.
                    assert_eq!(inside.fetch_add(1, Ordering::Relaxed), 0);
                    inside.fetch_sub(1, Ordering::Relaxed);
                    drop(p);
                })
            })
            .collect();
        for t in ts {
            t.join().unwrap();
        }
        assert_eq!(s.value(), 1);
    });
}

/// Untracked producer/consumer: two posts, two blocking waits; every post is matched and
/// the count ends exact.
#[test]
fn untracked_post_wait_loses_no_wakeup() {
    loom::model(|| {
        let s = Arc::new(Semaphore::new(0).unwrap());
        let s2 = s.clone();
        let poster = thread::spawn(move || {
            s2.release().unwrap();
            s2.release().unwrap();
        });
        for _ in 0..2 {
            s.acquire().unwrap().forget();
        }
        poster.join().unwrap();
        assert_eq!(s.value(), 0);
    });
}

/// Untracked: two waiters, one post each from the main thread; both wake.
#[test]
fn untracked_two_waiters() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b.check(|| {
        let s = Arc::new(Semaphore::new(0).unwrap());
        let ws: Vec<_> = (0..2)
            .map(|_| {
                let s = s.clone();
                thread::spawn(move || s.acquire().unwrap().forget())
            })
            .collect();
        s.release().unwrap();
        s.release().unwrap();
        for w in ws {
            w.join().unwrap();
        }
        assert_eq!(s.value(), 0);
    });
}

/// Bounded: two concurrent releases into one free slot: exactly one succeeds, and the count
/// never passes the maximum.
#[test]
fn bounded_release_never_passes_max() {
    loom::model(|| {
        let s = Arc::new(BoundedSemaphore::with_value(1, 2).unwrap());
        let s2 = s.clone();
        let t = thread::spawn(move || s2.release().is_ok());
        let mine = s.release().is_ok();
        let theirs = t.join().unwrap();
        assert!(mine ^ theirs);
        assert_eq!(s.value(), 2);
    });
}

/// Tracked, one permit, two owners: mutual exclusion; the waiter is woken by the release.
#[test]
fn tracked_one_permit_two_owners() {
    loom::model(|| {
        let s = Arc::new(Semaphore::tracked(1).unwrap());
        let inside = Arc::new(AtomicU32::new(0));
        let ts: Vec<_> = [A, B]
            .into_iter()
            .map(|me| {
                let (s, inside) = (s.clone(), inside.clone());
                thread::spawn(move || {
                    act_as(me);
                    let p = s.acquire().unwrap();
                    // Relaxed: the permit orders these.
                    assert_eq!(inside.fetch_add(1, Ordering::Relaxed), 0);
                    inside.fetch_sub(1, Ordering::Relaxed);
                    p.release().unwrap();
                })
            })
            .collect();
        for t in ts {
            t.join().unwrap();
        }
        assert_eq!(s.value(), 1);
    });
}

/// Tracked, two permits: one holder died holding one; two live owners both get through,
/// one of them by taking the dead holder's permit over. Nothing is created or lost.
#[test]
fn tracked_dead_holder_permit_comes_back() {
    loom::model(|| {
        let s = Arc::new(Semaphore::tracked(2).unwrap());
        act_as(DEAD);
        s.try_acquire().unwrap().unwrap().forget();
        kill(DEAD);
        act_as(C);
        let live = s.try_acquire().unwrap().unwrap();
        let ts: Vec<_> = [A, B]
            .into_iter()
            .map(|me| {
                let s = s.clone();
                thread::spawn(move || {
                    act_as(me);
                    s.acquire().unwrap().release().unwrap();
                })
            })
            .collect();
        live.release().unwrap();
        for t in ts {
            t.join().unwrap();
        }
        // The dead holder's permit was taken over by A or B, or is still recorded as the
        // dead one's: either way recovery accounts for it exactly once.
        let back = s.recover().unwrap();
        assert_eq!(s.recovered(), 1, "taken back {back} by recover()");
        assert_eq!(s.value(), 2);
        act_as(DEAD);
        assert!(matches!(s.release(), Err(Error::NotHeld { held: 0, .. })));
    });
}

/// Tracked, one permit held by a dead holder: a blocking acquirer takes it over.
#[test]
fn tracked_waiter_reclaims_from_dead_holder() {
    loom::model(|| {
        let s = Arc::new(Semaphore::tracked(1).unwrap());
        act_as(DEAD);
        s.try_acquire().unwrap().unwrap().forget();
        kill(DEAD);
        let s2 = s.clone();
        let t = thread::spawn(move || {
            act_as(B);
            s2.acquire().unwrap().release().unwrap();
        });
        act_as(A);
        s.acquire().unwrap().release().unwrap();
        t.join().unwrap();
        assert_eq!(s.value(), 1);
        assert_eq!(s.recovered(), 1);
    });
}

/// Tracked acquire_many(2) against a single-permit acquirer: all-or-none, no deadlock.
#[test]
fn tracked_acquire_many_all_or_none() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b.check(|| {
        let s = Arc::new(Semaphore::tracked(2).unwrap());
        let s2 = s.clone();
        let t = thread::spawn(move || {
            act_as(B);
            s2.acquire().unwrap().release().unwrap();
        });
        act_as(A);
        let both = s.acquire_many(2).unwrap();
        assert_eq!(both.count(), 2);
        both.release().unwrap();
        t.join().unwrap();
        assert_eq!(s.value(), 2);
    });
}

/// Event: a waiter blocked before `set` returns even when `clear` follows at once.
#[test]
fn event_set_then_clear_wakes_waiter() {
    loom::model(|| {
        let e = Arc::new(Event::new());
        let e2 = e.clone();
        let w = thread::spawn(move || e2.wait());
        // Set once the waiter is committed to sleeping (it armed the flag).
        while !e.has_waiters() {
            thread::yield_now();
        }
        e.set();
        e.clear();
        w.join().unwrap();
    });
}

/// Event: two waiters, one set: both wake (every waiter in every process).
#[test]
fn event_set_wakes_all() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b.check(|| {
        let e = Arc::new(Event::new());
        let ws: Vec<_> = (0..2)
            .map(|_| {
                let e = e.clone();
                thread::spawn(move || e.wait())
            })
            .collect();
        e.set();
        for w in ws {
            w.join().unwrap();
        }
        assert!(e.is_set());
    });
}

/// Barrier: two parties, two generations: one leader per generation, nobody leaves a
/// generation before both arrived.
#[test]
fn barrier_two_generations() {
    loom::model(|| {
        let b = Arc::new(Barrier::new(2).unwrap());
        let arrived = Arc::new(AtomicU32::new(0));
        let (b2, a2) = (b.clone(), arrived.clone());
        let run = move |b: &Barrier, arrived: &AtomicU32| {
            let mut leaders = 0;
            for g in 0..2u32 {
                // Relaxed: the barrier orders these.
                arrived.fetch_add(1, Ordering::Relaxed);
                if b.wait().unwrap().is_leader() {
                    leaders += 1;
                }
                assert!(arrived.load(Ordering::Relaxed) >= 2 * (g + 1));
            }
            leaders
        };
        let t = thread::spawn(move || run(&b2, &a2));
        let mine = run(&b, &arrived);
        assert_eq!(mine + t.join().unwrap(), 2);
    });
}

/// Barrier: abort while a party waits breaks it for that party; reset repairs.
#[test]
fn barrier_abort_breaks_waiter() {
    loom::model(|| {
        let b = Arc::new(Barrier::new(2).unwrap());
        let b2 = b.clone();
        let w = thread::spawn(move || b2.wait());
        b.abort();
        match w.join().unwrap() {
            // The waiter arrived after the abort, or was woken by it.
            Err(BarrierError::Broken) => {}
            other => panic!("{other:?}"),
        }
        b.reset();
        assert!(!b.is_broken());
    });
}
