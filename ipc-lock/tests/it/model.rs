//! The robust state machine under model owners: "processes" are ids whose death the test
//! decides, so owner death, inheritance and chains run in one process, deterministically.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ipc_lock::model::{Liveness, OwnerStatus};
use ipc_lock::{RawMutex, RawRwLock, TryLockError};

/// Model owners 1..=63; a bit per owner says it died.
#[derive(Clone)]
struct World {
    dead: Arc<AtomicU64>,
}

impl World {
    fn new() -> World {
        World { dead: Arc::new(AtomicU64::new(0)) }
    }

    fn kill(&self, id: u32) {
        self.dead.fetch_or(1 << id, Ordering::SeqCst);
    }

    fn owner(&self, id: u32) -> Owner {
        Owner { id, world: self.clone() }
    }
}

struct Owner {
    id: u32,
    world: World,
}

impl Liveness for Owner {
    fn me(&self) -> Result<u32, ipc_shm::Error> {
        Ok(self.id)
    }

    fn status(&self, owner: u32) -> Result<OwnerStatus, ipc_shm::Error> {
        Ok(match owner {
            1..=63 if self.world.dead.load(Ordering::SeqCst) & (1 << owner) != 0 => {
                OwnerStatus::Dead
            }
            1..=63 => OwnerStatus::Alive,
            _ => OwnerStatus::Invalid,
        })
    }
}

fn deadline() -> Option<Instant> {
    Some(Instant::now() + Duration::from_secs(10))
}

#[derive(Debug, Default)]
struct Tally {
    clean: u32,
    died: u32,
    not_recoverable: u32,
}

/// Owner 1 dies holding the lock while owners 2..=4 wait; exactly one of them inherits it.
fn three_waiters(consistent: bool) -> Tally {
    let world = World::new();
    let m = Arc::new(RawMutex::new());
    let held = m.lock_with(&world.owner(1), None).unwrap();
    let _ = held; // owner 1 never unlocks
    let waiters: Vec<_> = (2..=4)
        .map(|id| {
            let (m, o) = (m.clone(), world.owner(id));
            std::thread::spawn(move || {
                let t = Instant::now();
                let r = m.lock_with(&o, deadline());
                let outcome = match r {
                    Ok(h) => {
                        m.unlock_held(h);
                        0
                    }
                    Err(TryLockError::OwnerDied(h)) => {
                        if consistent {
                            assert!(m.mark_consistent_held(&h));
                        }
                        m.unlock_held(h);
                        1
                    }
                    Err(TryLockError::NotRecoverable) => 2,
                    Err(e) => panic!("owner {id}: {e}"),
                };
                (outcome, t.elapsed())
            })
        })
        .collect();
    // Let them park, then "kill" owner 1.
    std::thread::sleep(Duration::from_millis(20));
    let killed = Instant::now();
    world.kill(1);
    let mut tally = Tally::default();
    for w in waiters {
        let (outcome, _) = w.join().unwrap();
        match outcome {
            0 => tally.clean += 1,
            1 => tally.died += 1,
            _ => tally.not_recoverable += 1,
        }
    }
    let all_back = killed.elapsed();
    assert!(all_back < Duration::from_secs(1), "waiters returned {all_back:?} after the death");
    eprintln!("model: all three waiters back {all_back:?} after the death: {tally:?}");
    tally
}

#[test]
fn exactly_one_waiter_inherits_and_the_others_proceed() {
    let t = three_waiters(true);
    assert_eq!((t.died, t.clean, t.not_recoverable), (1, 2, 0));
}

#[test]
fn without_mark_consistent_everyone_else_gets_not_recoverable() {
    let t = three_waiters(false);
    assert_eq!((t.died, t.clean, t.not_recoverable), (1, 0, 2));
}

#[test]
fn a_chain_of_deaths_keeps_reporting_owner_died() {
    let world = World::new();
    let m = RawMutex::new();
    let _ = m.lock_with(&world.owner(1), None).unwrap();
    world.kill(1);
    for id in 2..=6 {
        // Each heir is told, then dies itself before marking the data consistent.
        match m.lock_with(&world.owner(id), deadline()) {
            Err(TryLockError::OwnerDied(h)) => {
                assert_eq!(h.dead_owner(), Some(id - 1));
                let _ = h;
            }
            other => panic!("owner {id}: expected OwnerDied, got {other:?}"),
        }
        world.kill(id);
    }
    match m.lock_with(&world.owner(7), deadline()) {
        Err(TryLockError::OwnerDied(h)) => {
            assert!(m.mark_consistent_held(&h));
            assert!(m.unlock_held(h));
        }
        other => panic!("expected OwnerDied, got {other:?}"),
    }
    let h = m.lock_with(&world.owner(8), deadline()).unwrap();
    assert!(!h.owner_died());
    assert!(m.unlock_held(h));
}

#[test]
fn try_lock_sees_a_dead_owner_at_once() {
    let world = World::new();
    let m = RawMutex::new();
    let _ = m.lock_with(&world.owner(1), None).unwrap();
    assert!(matches!(m.try_lock_with(&world.owner(2)), Err(TryLockError::WouldBlock)));
    world.kill(1);
    let h = m.try_lock_with(&world.owner(2)).expect_err("inherits");
    let h = h.into_owner_died().unwrap();
    assert!(m.mark_consistent_held(&h));
    assert!(m.unlock_held(h));
}

#[test]
fn a_live_stranger_in_the_word_times_out_and_garbage_is_corrupted() {
    let world = World::new();
    let m = RawMutex::new();
    // Owner 9 "lives" and holds it: a timed lock times out, never acquires.
    let _ = m.lock_with(&world.owner(9), None).unwrap();
    let t = Instant::now();
    let r = m.lock_with(&world.owner(2), Some(Instant::now() + Duration::from_millis(50)));
    assert!(matches!(r, Err(TryLockError::TimedOut)), "{r:?}");
    assert!(t.elapsed() >= Duration::from_millis(50));
    // An id the oracle calls invalid: corrupted.
    let m = RawMutex::new();
    let _ = m.lock_with(&world.owner(1000), None).unwrap();
    let r = m.lock_with(&world.owner(2), deadline());
    assert!(
        matches!(r, Err(TryLockError::Corrupted { word }) if word == ipc_lock::owner_word(1000)),
        "{r:?}"
    );
}

#[test]
fn unlock_by_a_non_owner_changes_nothing() {
    let world = World::new();
    let m = RawMutex::new();
    let h1 = m.lock_with(&world.owner(1), None).unwrap();
    let fake = m.lock_with(&world.owner(1), Some(Instant::now())).unwrap_err();
    assert!(fake.is_busy());
    let before = m.word_value();
    // An acquisition record of owner 2 (taken on another mutex) cannot unlock this one.
    let other = RawMutex::new();
    let h2 = other.lock_with(&world.owner(2), None).unwrap();
    assert!(!m.unlock_held(h2));
    assert_eq!(m.word_value(), before);
    assert!(m.unlock_held(h1));
}

#[test]
fn rwlock_writer_reclaims_a_dead_readers_slot() {
    let world = World::new();
    let l = RawRwLock::new();
    let r = l.read_with(&world.owner(3), None).unwrap();
    let _ = r; // reader 3 never leaves
    assert!(matches!(
        l.write_with(&world.owner(4), Some(Instant::now() + Duration::from_millis(20))),
        Err(TryLockError::TimedOut)
    ));
    let w = {
        let w4 = world.owner(4);
        let l = Arc::new(l);
        let l2 = l.clone();
        let t = std::thread::spawn(move || {
            let t0 = Instant::now();
            let w = l2.write_with(&w4, deadline()).unwrap();
            assert!(l2.unlock_write_held(w));
            t0.elapsed()
        });
        std::thread::sleep(Duration::from_millis(10));
        let killed = Instant::now();
        world.kill(3);
        let waited = t.join().unwrap();
        let since = killed.elapsed();
        assert!(since < Duration::from_millis(500), "writer took {since:?} after the reader died");
        eprintln!("model rwlock: writer in after {waited:?} ({since:?} after the death)");
        l
    };
    assert_eq!(w.reader_count(), 0);
}

#[test]
fn rwlock_dead_writer_is_inherited_by_a_reader_as_the_write_lock() {
    let world = World::new();
    let l = RawRwLock::new();
    let _ = l.write_with(&world.owner(1), None).unwrap();
    world.kill(1);
    match l.read_with(&world.owner(2), deadline()) {
        Ok(h) => {
            assert!(h.owner_died(), "a reader inherits the dead writer exclusively");
            assert!(l.is_locked_exclusive());
            l.unlock_read_held(h);
        }
        Err(e) => panic!("{e}"),
    }
    // Released without marking consistent: not recoverable for readers and writers.
    assert!(l.is_not_recoverable());
    assert!(matches!(l.read_with(&world.owner(3), deadline()), Err(TryLockError::NotRecoverable)));
    assert!(matches!(l.write_with(&world.owner(3), deadline()), Err(TryLockError::NotRecoverable)));
}

#[test]
fn rwlock_table_full_of_live_readers_is_too_many_readers() {
    let world = World::new();
    let l = RawRwLock::new();
    for id in 1..=ipc_lock::READER_SLOTS as u32 {
        let _ = l.read_with(&world.owner(id), None).unwrap();
    }
    let r = l.read_with(&world.owner(40), deadline());
    assert!(matches!(r, Err(TryLockError::TooManyReaders)), "{r:?}");
    // One of them dies: its slot is reclaimed for the newcomer.
    world.kill(7);
    let h = l.read_with(&world.owner(40), deadline()).unwrap();
    l.unlock_read_held(h);
}

#[test]
fn rwlock_colliding_owners_share_the_table_correctly() {
    // 1 and 33 prefer the same slot (33 % 32 == 1): 33's blind increment of 1's slot is taken
    // back and 33 reads through a slot of its own; the counts stay exact.
    let world = World::new();
    let l = RawRwLock::new();
    let r1 = l.read_with(&world.owner(1), None).unwrap();
    let r1b = l.read_with(&world.owner(1), None).unwrap(); // fast path, own slot
    let r33 = l.read_with(&world.owner(33), None).unwrap();
    assert_eq!(l.reader_count(), 3);
    assert_eq!(l.slot_value(1) >> 32, 1);
    assert_eq!(l.slot_value(1) as u32, 2, "33's stray increment was not taken back");
    assert!(matches!(
        l.write_with(&world.owner(2), Some(Instant::now() + Duration::from_millis(20))),
        Err(TryLockError::TimedOut)
    ));
    l.unlock_read_held(r1);
    l.unlock_read_held(r33);
    l.unlock_read_held(r1b);
    assert_eq!(l.reader_count(), 0);
    let w = l.write_with(&world.owner(2), deadline()).unwrap();
    assert!(l.unlock_write_held(w));
}
