//! loom models of ipc-lock's state machines under the futex emulation that makes
//! check-then-sleep atomic (a lost wake-up shows as a loom deadlock): the mutex fast and
//! contended paths, inheritance from a dead owner (model owners: loom cannot kill a process),
//! the rwlock's reader/writer Dekker pair and drain wake-up, and the condvar handshake. Run with
//! `RUSTFLAGS="--cfg ipc_loom" cargo test --release -p ipc-lock --test loom`.
#![cfg(ipc_loom)]
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use ipc_lock::model::{Liveness, OwnerStatus};
use ipc_lock::{Condvar, Mutex, RawMutex, RawRwLock, TryLockError};
use ipc_shm::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;

/// Model owners: ids 1..=63; `dead` has a bit per owner that died.
#[derive(Clone)]
struct Owner {
    id: u32,
    dead: Arc<AtomicU64>,
}

impl Liveness for Owner {
    fn me(&self) -> Result<u32, ipc_shm::Error> {
        Ok(self.id)
    }

    fn status(&self, owner: u32) -> Result<OwnerStatus, ipc_shm::Error> {
        Ok(match owner {
            // SeqCst: the model's "kernel" view of who died; not part of the modelled code.
            1..=63 if self.dead.load(Ordering::SeqCst) & (1 << owner) != 0 => OwnerStatus::Dead,
            1..=63 => OwnerStatus::Alive,
            _ => OwnerStatus::Invalid,
        })
    }
}

fn owners(dead: &Arc<AtomicU64>, id: u32) -> Owner {
    Owner { id, dead: dead.clone() }
}

/// A deadline that never passes in a model (loom times a timed wait out at once, which then
/// re-checks the owner's liveness: the slice path).
fn far() -> Option<Instant> {
    Some(Instant::now() + Duration::from_secs(3600))
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

/// Two lockers, one blocking: mutual exclusion on a loom cell (a race is a loom error) and
/// the blocked one is always woken (a lost wake-up is a loom deadlock).
#[test]
fn mutex_excludes_and_wakes() {
    builder().check(|| {
        let dead = Arc::new(AtomicU64::new(0));
        let m = Arc::new(RawMutex::new());
        let cell = Arc::new(UnsafeCell::new(0u32));
        let (m2, c2, o2) = (m.clone(), cell.clone(), owners(&dead, 2));
        let t = thread::spawn(move || {
            let h = m2.lock_with(&o2, None).unwrap();
            bump(&c2);
            assert!(m2.unlock_held(h));
        });
        let h = m.lock_with(&owners(&dead, 1), None).unwrap();
        bump(&cell);
        assert!(m.unlock_held(h));
        t.join().unwrap();
        let h = m.lock_with(&owners(&dead, 1), None).unwrap();
        assert_eq!(read(&cell), 2);
        assert!(m.unlock_held(h));
        assert_eq!(m.word_value(), 0);
    });
}

/// Two sleepers behind a holder: both get it in turn (the unlock wakes one, whose unlock wakes
/// the next, because it re-locked with CONTENDED).
#[test]
fn mutex_two_sleepers_both_wake() {
    builder().check(|| {
        let dead = Arc::new(AtomicU64::new(0));
        let m = Arc::new(RawMutex::new());
        let h = m.lock_with(&owners(&dead, 1), None).unwrap();
        let ts: Vec<_> = (2..=3)
            .map(|id| {
                let (m, o) = (m.clone(), owners(&dead, id));
                thread::spawn(move || {
                    let h = m.lock_with(&o, None).unwrap();
                    assert!(m.unlock_held(h));
                })
            })
            .collect();
        assert!(m.unlock_held(h));
        for t in ts {
            t.join().unwrap();
        }
        assert_eq!(m.word_value(), 0);
    });
}

/// The owner died holding it: of two racing lockers exactly one inherits it (OwnerDied); the
/// other then gets it clean once the heir marks it consistent and unlocks.
#[test]
fn mutex_exactly_one_heir() {
    builder().check(|| {
        let dead = Arc::new(AtomicU64::new(0));
        let m = Arc::new(RawMutex::new());
        let _ = m.lock_with(&owners(&dead, 1), None).unwrap(); // never unlocked
        // SeqCst: the model kernel notices the death.
        dead.fetch_or(1 << 1, Ordering::SeqCst);
        let heirs = Arc::new(AtomicU32::new(0));
        let ts: Vec<_> = (2..=3)
            .map(|id| {
                let (m, o, heirs) = (m.clone(), owners(&dead, id), heirs.clone());
                thread::spawn(move || match m.lock_with(&o, far()) {
                    Ok(h) => assert!(m.unlock_held(h)),
                    Err(TryLockError::OwnerDied(h)) => {
                        assert_eq!(h.dead_owner(), Some(1));
                        // SeqCst: a count for the final assertion.
                        heirs.fetch_add(1, Ordering::SeqCst);
                        assert!(m.mark_consistent_held(&h));
                        assert!(m.unlock_held(h));
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
        let dead = Arc::new(AtomicU64::new(0));
        let m = Arc::new(RawMutex::new());
        let _ = m.lock_with(&owners(&dead, 1), None).unwrap();
        // SeqCst: the model kernel notices the death.
        dead.fetch_or(1 << 1, Ordering::SeqCst);
        let h = m.lock_with(&owners(&dead, 2), far()).unwrap_err().into_owner_died().unwrap();
        let (m2, o3) = (m.clone(), owners(&dead, 3));
        let t = thread::spawn(move || m2.lock_with(&o3, None).map(|_| ()).unwrap_err());
        assert!(m.unlock_held(h)); // without mark_consistent
        assert!(matches!(t.join().unwrap(), TryLockError::NotRecoverable));
        assert!(m.is_not_recoverable());
    });
}

/// A reader and a writer: never both inside (the writer's write races the reader's read on a
/// loom cell otherwise), whatever the interleaving of the Dekker pair.
#[test]
fn rwlock_reader_and_writer_exclude() {
    builder().check(|| {
        let dead = Arc::new(AtomicU64::new(0));
        let l = Arc::new(RawRwLock::new());
        // A first read claims owner 1's slot, so the one raced below takes the fast path
        // (a blind increment of its own slot).
        l.unlock_read_held(l.read_with(&owners(&dead, 1), None).unwrap());
        let cell = Arc::new(UnsafeCell::new(0u32));
        let (l2, c2, o2) = (l.clone(), cell.clone(), owners(&dead, 2));
        let w = thread::spawn(move || {
            let h = l2.write_with(&o2, None).unwrap();
            bump(&c2);
            assert!(l2.unlock_write_held(h));
        });
        let r = l.read_with(&owners(&dead, 1), None).unwrap();
        let seen = read(&cell);
        l.unlock_read_held(r);
        w.join().unwrap();
        assert!(seen <= 1);
        assert_eq!(l.reader_count(), 0);
        assert!(!l.is_locked_exclusive());
    });
}

/// A writer waiting for a reader to leave is woken by the leaving reader (drain wake-up).
#[test]
fn rwlock_writer_woken_when_the_reader_leaves() {
    builder().check(|| {
        let dead = Arc::new(AtomicU64::new(0));
        let l = Arc::new(RawRwLock::new());
        let r = l.read_with(&owners(&dead, 1), None).unwrap();
        let (l2, o2) = (l.clone(), owners(&dead, 2));
        let w = thread::spawn(move || {
            let h = l2.write_with(&o2, None).unwrap();
            assert!(l2.unlock_write_held(h));
        });
        l.unlock_read_held(r);
        w.join().unwrap();
        assert_eq!(l.reader_count(), 0);
    });
}

/// A dead reader's count is reclaimed by the writer (slice path: loom times it out at once).
#[test]
fn rwlock_writer_reclaims_a_dead_reader() {
    builder().check(|| {
        let dead = Arc::new(AtomicU64::new(0));
        let l = Arc::new(RawRwLock::new());
        let _ = l.read_with(&owners(&dead, 1), None).unwrap(); // never released
        let (l2, o2) = (l.clone(), owners(&dead, 2));
        let w = thread::spawn(move || {
            let h = l2.write_with(&o2, far()).unwrap();
            assert!(l2.unlock_write_held(h));
        });
        // SeqCst: the model kernel notices the death.
        dead.fetch_or(1 << 1, Ordering::SeqCst);
        w.join().unwrap();
        assert_eq!(l.reader_count(), 0);
    });
}

/// The condvar handshake: a waiter that checked the flag under the mutex is always woken by
/// the notify that follows the flag's change (a lost wake-up is a loom deadlock).
#[test]
fn condvar_no_lost_wake_up() {
    // Register this process with liveness once, outside the model (real syscalls).
    ipc_shm::liveness::current().unwrap();
    builder().check(|| {
        let pair = Arc::new((Mutex::new(0u32), Condvar::new()));
        let p2 = pair.clone();
        let t = thread::spawn(move || {
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
    ipc_shm::liveness::current().unwrap();
    let mut b = builder();
    b.preemption_bound = Some(1);
    b.check(|| {
        let pair = Arc::new((Mutex::new(0u32), Condvar::new()));
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let p = pair.clone();
                thread::spawn(move || {
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
        let dead = Arc::new(AtomicU64::new(0));
        let l = Arc::new(RawRwLock::new());
        let cell = Arc::new(UnsafeCell::new(0u32));
        let r1 = l.read_with(&owners(&dead, 1), None).unwrap();
        let (l2, c2, o2) = (l.clone(), cell.clone(), owners(&dead, 2));
        let w = thread::spawn(move || {
            let h = l2.write_with(&o2, None).unwrap();
            bump(&c2);
            assert!(l2.unlock_write_held(h));
        });
        let (l3, c3, o33) = (l.clone(), cell.clone(), owners(&dead, 33));
        let r = thread::spawn(move || {
            if let Ok(h) = l3.read_with(&o33, far()) {
                let _ = read(&c3);
                l3.unlock_read_held(h);
            }
        });
        let _ = read(&cell);
        l.unlock_read_held(r1);
        w.join().unwrap();
        r.join().unwrap();
        assert_eq!(l.reader_count(), 0);
        assert_eq!(read(&cell), 1);
    });
}
