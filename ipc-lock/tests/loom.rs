//! loom models of ipc-lock's state machines under the futex emulation that makes
//! check-then-sleep atomic (a lost wake-up shows as a loom deadlock): the mutex fast and
//! contended paths, inheritance from a dead owner, the rwlock's reader/writer Dekker pair and
//! drain wake-up, and the condvar handshake. They drive the public API; loom cannot kill a
//! process, so each model thread plays an owner id through `ipc_shm::liveness::model` (the
//! family's one seam: `act_as`, `kill`), which liveness answers from under `--cfg ipc_loom`. The single-thread
//! models at the end pin the owner-status table down deterministically. Run with
//! `RUSTFLAGS="--cfg ipc_loom" cargo test --release -p ipc-lock --test loom`.
#![cfg(ipc_loom)]
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use ipc_lock::{Condvar, LockError, Mutex, RwLock, TryLockError};
use ipc_shm::liveness::model;
use ipc_shm::sync::atomic::{AtomicU32, Ordering};
use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;

/// A deadline that never passes in a model (loom times a timed wait out at once, which then
/// re-checks the owner's liveness: the slice path).
fn far() -> Instant {
    Instant::now() + Duration::from_secs(3600)
}

/// Add one to a loom cell; loom reports the access if it is concurrent with another (the
/// lock under test failed to exclude).
fn bump(c: &UnsafeCell<u32>) {
    c.with_mut(|v| {
        // SAFETY: the caller holds the lock under test; loom checks that this is exclusive.
        unsafe { *v += 1 }
    });
}

/// Read a loom cell (loom checks no write is concurrent).
fn read(c: &UnsafeCell<u32>) -> u32 {
    c.with(|v| {
        // SAFETY: as in `bump`, for a shared access.
        unsafe { *v }
    })
}

fn builder() -> loom::model::Builder {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(2);
    }
    b
}

/// Spawn a loom thread acting as model process `id`.
fn spawn_as<T: 'static>(id: u32, f: impl FnOnce() -> T + 'static) -> thread::JoinHandle<T> {
    thread::spawn(move || {
        model::act_as(id);
        f()
    })
}

/// Two lockers, one blocking: mutual exclusion on a loom cell (a race is a loom error) and
/// the blocked one is always woken (a lost wake-up is a loom deadlock).
#[test]
fn mutex_excludes_and_wakes() {
    builder().check(|| {
        model::act_as(1);
        let m = Arc::new(Mutex::new(()));
        let cell = Arc::new(UnsafeCell::new(0u32));
        let (m2, c2) = (m.clone(), cell.clone());
        let t = spawn_as(2, move || {
            let g = m2.lock().unwrap();
            bump(&c2);
            drop(g);
        });
        let g = m.lock().unwrap();
        bump(&cell);
        drop(g);
        t.join().unwrap();
        let g = m.lock().unwrap();
        assert_eq!(read(&cell), 2);
        drop(g);
        assert_eq!(m.raw().word_value(), 0);
    });
}

/// Two sleepers behind a holder: both get it in turn (the unlock wakes one, whose unlock wakes
/// the next, because it re-locked with CONTENDED).
#[test]
fn mutex_two_sleepers_both_wake() {
    builder().check(|| {
        model::act_as(1);
        let m = Arc::new(Mutex::new(()));
        let g = m.lock().unwrap();
        let ts: Vec<_> = (2..=3)
            .map(|id| {
                let m = m.clone();
                spawn_as(id, move || drop(m.lock().unwrap()))
            })
            .collect();
        drop(g);
        for t in ts {
            t.join().unwrap();
        }
        assert_eq!(m.raw().word_value(), 0);
    });
}

/// The owner died holding it: of two racing lockers exactly one inherits it (OwnerDied); the
/// other then gets it clean once the heir marks it consistent and unlocks.
#[test]
fn mutex_exactly_one_heir() {
    builder().check(|| {
        model::act_as(1);
        let m = Arc::new(Mutex::new(()));
        std::mem::forget(m.lock().unwrap()); // never unlocked
        model::kill(1);
        let heirs = Arc::new(AtomicU32::new(0));
        let ts: Vec<_> = (2..=3)
            .map(|id| {
                let (m, heirs) = (m.clone(), heirs.clone());
                spawn_as(id, move || match m.try_lock_until(far()) {
                    Ok(g) => drop(g),
                    Err(TryLockError::OwnerDied(mut g)) => {
                        assert_eq!(g.dead_owner(), Some(1));
                        // SeqCst: a count for the final assertion.
                        heirs.fetch_add(1, Ordering::SeqCst);
                        assert!(g.mark_consistent());
                    }
                    Err(TryLockError::TimedOut) => {}
                    Err(e) => panic!("{e}"),
                })
            })
            .collect();
        for t in ts {
            t.join().unwrap();
        }
        // SeqCst: see above.
        assert_eq!(heirs.load(Ordering::SeqCst), 1);
        assert!(!m.is_locked());
    });
}

/// An heir that drops the lock unmarked makes it not recoverable, and a sleeper on it wakes
/// to that error.
#[test]
fn mutex_unmarked_heir_wakes_sleepers_with_not_recoverable() {
    builder().check(|| {
        model::act_as(1);
        let m = Arc::new(Mutex::new(()));
        std::mem::forget(m.lock().unwrap());
        model::kill(1);
        model::act_as(2);
        let g = m.try_lock_until(far()).unwrap_err().into_owner_died().unwrap();
        let m2 = m.clone();
        let t = spawn_as(3, move || matches!(m2.lock(), Err(LockError::NotRecoverable)));
        drop(g); // without mark_consistent
        assert!(t.join().unwrap());
        assert!(m.is_not_recoverable());
    });
}

/// A reader and a writer: never both inside (the writer's write races the reader's read on a
/// loom cell otherwise), whatever the interleaving of the Dekker pair.
#[test]
fn rwlock_reader_and_writer_exclude() {
    builder().check(|| {
        model::act_as(1);
        let l = Arc::new(RwLock::new(()));
        // A first read claims owner 1's slot, so the one raced below takes the fast path
        // (a blind increment of its own slot).
        drop(l.read().unwrap());
        let cell = Arc::new(UnsafeCell::new(0u32));
        let (l2, c2) = (l.clone(), cell.clone());
        let w = spawn_as(2, move || {
            let g = l2.write().unwrap();
            bump(&c2);
            drop(g);
        });
        let r = l.read().unwrap();
        let seen = read(&cell);
        drop(r);
        w.join().unwrap();
        assert!(seen <= 1);
        assert_eq!(l.raw().reader_count(), 0);
        assert!(!l.raw().is_locked_exclusive());
    });
}

/// A writer waiting for a reader to leave is woken by the leaving reader (drain wake-up).
#[test]
fn rwlock_writer_woken_when_the_reader_leaves() {
    builder().check(|| {
        model::act_as(1);
        let l = Arc::new(RwLock::new(()));
        let r = l.read().unwrap();
        let l2 = l.clone();
        let w = spawn_as(2, move || drop(l2.write().unwrap()));
        drop(r);
        w.join().unwrap();
        assert_eq!(l.raw().reader_count(), 0);
    });
}

/// A dead reader's count is reclaimed by the writer (slice path: loom times it out at once).
#[test]
fn rwlock_writer_reclaims_a_dead_reader() {
    builder().check(|| {
        model::act_as(1);
        let l = Arc::new(RwLock::new(()));
        std::mem::forget(l.read().unwrap()); // never released
        let l2 = l.clone();
        let w = spawn_as(2, move || drop(l2.try_write_until(far()).unwrap()));
        model::kill(1);
        w.join().unwrap();
        assert_eq!(l.raw().reader_count(), 0);
    });
}

/// The condvar handshake: a waiter that checked the flag under the mutex is always woken by
/// the notify that follows the flag's change (a lost wake-up is a loom deadlock).
#[test]
fn condvar_no_lost_wake_up() {
    builder().check(|| {
        model::act_as(1);
        let pair = Arc::new((Mutex::new(0u32), Condvar::new()));
        let p2 = pair.clone();
        let t = spawn_as(2, move || {
            *p2.0.lock().unwrap() = 1;
            p2.1.notify_one();
        });
        let g = pair.0.lock().unwrap();
        let g = pair.1.wait_while(g, |v| *v == 0).unwrap();
        assert_eq!(*g, 1);
        drop(g);
        t.join().unwrap();
    });
}

/// notify_all with two waiters: both wake.
#[test]
fn condvar_notify_all_wakes_both() {
    let mut b = builder();
    b.preemption_bound = Some(1);
    b.check(|| {
        model::act_as(1);
        let pair = Arc::new((Mutex::new(0u32), Condvar::new()));
        let ts: Vec<_> = (2..=3)
            .map(|id| {
                let p = pair.clone();
                spawn_as(id, move || {
                    let g = p.0.lock().unwrap();
                    drop(p.1.wait_while(g, |v| *v == 0).unwrap());
                })
            })
            .collect();
        *pair.0.lock().unwrap() = 1;
        pair.1.notify_all();
        for t in ts {
            t.join().unwrap();
        }
    });
}

/// Two owners whose preferred slot collides (33 % 32 == 1): the second one's blind increment
/// of the first one's slot is taken back (and wakes a writer waiting on it if that empties
/// it); both still exclude the writer.
#[test]
fn rwlock_slot_collision_undoes_the_stray_increment() {
    builder().check(|| {
        model::act_as(1);
        let l = Arc::new(RwLock::new(()));
        let cell = Arc::new(UnsafeCell::new(0u32));
        let r1 = l.read().unwrap();
        let (l2, c2) = (l.clone(), cell.clone());
        let w = spawn_as(2, move || {
            let g = l2.write().unwrap();
            bump(&c2);
            drop(g);
        });
        let (l3, c3) = (l.clone(), cell.clone());
        let r = spawn_as(33, move || {
            if let Ok(g) = l3.try_read_until(far()) {
                let _ = read(&c3);
                drop(g);
            }
        });
        let _ = read(&cell);
        drop(r1);
        w.join().unwrap();
        r.join().unwrap();
        assert_eq!(l.raw().reader_count(), 0);
        assert_eq!(read(&cell), 1);
    });
}

// ---------------------------------------------------------------------------------------
// Single-thread models: one execution each, the owner-status table pinned down.

/// One thread, so one execution; a full reader table takes thousands of atomic steps.
fn single(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.max_branches = 100_000;
    b.check(f);
}

/// A chain of heirs that each die before marking the data consistent: each next locker is
/// told, with the previous heir as the dead owner; the one that marks it ends the chain.
#[test]
fn a_chain_of_deaths_keeps_reporting_owner_died() {
    single(|| {
        model::act_as(1);
        let m = Mutex::new(());
        std::mem::forget(m.lock().unwrap());
        model::kill(1);
        for id in 2..=6 {
            model::act_as(id);
            match m.try_lock() {
                Err(TryLockError::OwnerDied(g)) => {
                    assert_eq!(g.dead_owner(), Some(id - 1));
                    std::mem::forget(g);
                }
                other => panic!("owner {id}: expected OwnerDied, got {other:?}"),
            }
            model::kill(id);
        }
        model::act_as(7);
        let mut g = m.try_lock().unwrap_err().into_owner_died().unwrap();
        assert!(g.mark_consistent());
        drop(g);
        model::act_as(8);
        assert!(!m.lock().unwrap().owner_died());
    });
}

/// A live owner is waited on, and so is an owner liveness calls Unknown (never inherited);
/// a dead one is inherited at once, even by `try_lock`.
#[test]
fn live_and_unknown_owners_are_waited_on_dead_ones_inherited() {
    single(|| {
        for holder in [9, 64] {
            // 9: a live model process; 64: an owner liveness cannot vouch for.
            let m = Mutex::new(());
            if holder < 64 {
                model::act_as(holder);
            } else {
                model::act_as_unknown(holder);
            }
            std::mem::forget(m.lock().unwrap());
            model::act_as(2);
            assert!(matches!(m.try_lock(), Err(TryLockError::WouldBlock)), "{holder}");
            let passed = Instant::now();
            assert!(matches!(m.try_lock_until(passed), Err(TryLockError::TimedOut)), "{holder}");
            assert_eq!(m.raw().owner_value(), holder);
        }
        let m = Mutex::new(());
        model::act_as(9);
        std::mem::forget(m.lock().unwrap());
        model::kill(9);
        model::act_as(2);
        let mut g = m.try_lock().unwrap_err().into_owner_died().unwrap();
        assert_eq!(g.dead_owner(), Some(9));
        assert!(g.mark_consistent());
    });
}

/// A reader that inherits a dead writer holds the lock exclusively; released unmarked, the
/// lock is not recoverable for readers and writers.
#[test]
fn rwlock_dead_writer_is_inherited_by_a_reader_as_the_write_lock() {
    single(|| {
        model::act_as(1);
        let l = RwLock::new(());
        std::mem::forget(l.write().unwrap());
        model::kill(1);
        model::act_as(2);
        let g = l.read().map(drop).unwrap_err().into_owner_died().unwrap();
        assert!(l.raw().is_locked_exclusive());
        drop(g);
        assert!(l.raw().is_not_recoverable());
        model::act_as(3);
        assert!(matches!(l.try_read(), Err(TryLockError::NotRecoverable)));
        assert!(matches!(l.try_write(), Err(TryLockError::NotRecoverable)));
    });
}

/// A table full of live readers is TooManyReaders; a dead reader's slot is reclaimed for a
/// newcomer, an Unknown one's never.
#[test]
fn rwlock_full_table_and_reclaimed_slots() {
    single(|| {
        let l = RwLock::new(());
        // Readers 1..=31 in slots 1..=31, and in slot 0 (64 % 32) an owner liveness calls
        // Unknown.
        for id in (1..ipc_lock::READER_SLOTS as u32).chain([64]) {
            model::act_as(id);
            std::mem::forget(l.read().unwrap());
        }
        model::act_as(40);
        assert!(matches!(l.try_read(), Err(TryLockError::TooManyReaders)));
        assert_eq!(l.raw().slot_value(0), (64 << 32) | 1, "the Unknown reader's slot was taken");
        // Reader 8 dies: its slot goes to the newcomer.
        model::kill(8);
        let g = l.try_read().unwrap();
        assert_eq!(l.raw().slot_value(8) >> 32, 40);
        drop(g);
    });
}

/// Owners 1 and 33 prefer the same slot (33 % 32 == 1): 33's blind increment of 1's slot is
/// taken back and 33 reads through a slot of its own; the counts stay exact.
#[test]
fn rwlock_colliding_owners_share_the_table_correctly() {
    single(|| {
        let l = RwLock::new(());
        model::act_as(1);
        let r1 = l.read().unwrap();
        let r1b = l.read().unwrap(); // fast path, own slot
        model::act_as(33);
        let r33 = l.read().unwrap();
        assert_eq!(l.raw().reader_count(), 3);
        assert_eq!(l.raw().slot_value(1), (1 << 32) | 2, "33's stray increment stayed");
        model::act_as(2);
        assert!(matches!(l.try_write(), Err(TryLockError::WouldBlock)));
        model::act_as(1);
        drop(r1);
        drop(r1b);
        model::act_as(33);
        drop(r33);
        assert_eq!(l.raw().reader_count(), 0);
        model::act_as(2);
        drop(l.try_write().unwrap());
    });
}
