//! Cross-process suite of ipc-lock: robust mutexes, rwlocks, re-entrant mutexes, condition
//! variables, named locks and file locks across real (forked and re-executed) processes,
//! SIGKILLed at random moments and at named crash points.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ipc_lock::{
    Condvar, FileLock, LockError, Mutex, MutexGuard, NamedMutex, NamedRLock, NamedRwLock,
    RawReentrantMutex, RwLock, TryLockError,
};
use ipc_shm::bytemuck::{Pod, Zeroable};
use ipc_shm::liveness::{self, OwnerId};
use ipc_shm::{Shared, Shm, ShmSafe};
use ipc_testkit::{
    Child, audit, fault, fork, fork_inheriting, fork_named, recv_line, send_line, spawn_role,
    unique_name, watchdog,
};

use ipc_testkit::interrupt;

ipc_testkit::roles! {
    "named-mutex-holder" => roles::named_mutex_holder,
    "named-rwlock-reader" => roles::named_rwlock_reader,
    "named-rlock" => roles::named_rlock,
}

const LINE: Duration = Duration::from_secs(20);
const OWNER_MASK: u32 = OwnerId::MASK;
const INCONSISTENT: u32 = 1 << 30;
const CONTENDED: u32 = 1 << 31;

mod roles {
    use super::*;

    /// args: name. Opens the named mutex, adds one, keeps holding it, waits to be killed.
    pub(super) fn named_mutex_holder(args: &[String]) {
        let m = NamedMutex::<u64>::open(&args[0]).unwrap();
        let mut g = m.lock().unwrap();
        *g += 1;
        send_line(&format!("locked {}", liveness::current().unwrap().get()));
        let _ = recv_line(Duration::from_secs(60));
    }

    /// args: name. Takes a read lock of the named rwlock and waits to be killed.
    pub(super) fn named_rwlock_reader(args: &[String]) {
        let l = NamedRwLock::<[u64; 2]>::open(&args[0]).unwrap();
        let g = l.read().unwrap();
        send_line(&format!("reading {}", g[0]));
        let _ = recv_line(Duration::from_secs(60));
    }

    /// args: name. Takes the named RLock three times, then tries to release a fourth time
    /// after releasing all three.
    pub(super) fn named_rlock(args: &[String]) {
        let l = NamedRLock::open(&args[0]).unwrap();
        for _ in 0..3 {
            l.lock().unwrap();
        }
        send_line("held");
        let _ = recv_line(Duration::from_secs(60));
        for _ in 0..3 {
            l.unlock().unwrap();
        }
        assert_eq!(l.unlock(), Err(ipc_lock::NotOwner));
        send_line("released");
    }
}

/// First thing in every test: register with liveness (whose cached owner word is the locks'
/// only owner-id cache) on this thread. `cargo test` runs tests on threads of one process, and
/// a child forked while another thread runs the process's first-ever registration would
/// inherit it half done; once any test has finished this, no fork can land inside it.
fn setup() {
    liveness::current().unwrap();
}

fn leak_check(prefix: &str) {
    let left = audit::shm_entries(prefix);
    assert!(left.is_empty(), "segments left behind: {left:?}");
}

/// Words in an anonymous shared segment (inherited by forked children).
struct Board {
    shm: Shm,
}

impl Board {
    fn new(words: usize) -> Board {
        Board { shm: Shm::anonymous(words * 4).unwrap() }
    }

    fn word(&self, i: usize) -> &AtomicU32 {
        // SAFETY: a board's words are only ever accessed as these atomic u32s.
        unsafe { self.shm.atomic_u32(i * 4) }.unwrap()
    }

    fn get(&self, i: usize) -> u32 {
        self.word(i).load(Ordering::SeqCst)
    }
}

fn owner_of(child: &mut Child) -> u32 {
    child.recv_line(LINE).unwrap().rsplit(' ').next().unwrap().parse().unwrap()
}

/// Spin `n` PAUSEs: work inside and between critical sections, so kills land everywhere.
fn spin(n: u64) {
    for _ in 0..n {
        std::hint::spin_loop();
    }
}

/// Work inside a critical section without burning the two cores the whole suite shares:
/// mostly a short sleep (a holder doing I/O), sometimes a spin (a holder computing).
fn work(rng: &mut fault::Rng) {
    if rng.chance(1, 4) {
        spin(rng.below(500));
    } else {
        std::thread::sleep(Duration::from_micros(rng.below(150)));
    }
}

/// Play a faulty peer: write `value` over the 8-byte word at `word` (inside `shm`'s mapping)
/// through a mapping of our own, as any process that maps the segment can, never through the
/// lock's atomics.
fn poke(shm: &Shm, word: *const u8, value: u64) {
    let at = (word as usize).checked_sub(shm.as_ptr().as_ptr() as usize).unwrap();
    let fd = std::os::fd::AsFd::as_fd(shm).try_clone_to_owned().unwrap();
    let mut peer = Shm::from_fd(fd).unwrap();
    peer.write_at(at, &value.to_ne_bytes()).unwrap();
}

/// The 64-bit state of a mutex (offset 0 of its `#[repr(C)]` layout).
fn state_of(m: &ipc_lock::RawMutex) -> *const u8 {
    std::ptr::from_ref(m).cast()
}

/// Reader slot `i` of an rwlock (after the 16-byte writer mutex and two u32s).
fn slot_of(l: &ipc_lock::RawRwLock, i: usize) -> *const u8 {
    std::ptr::from_ref(l).cast::<u8>().wrapping_add(24 + 8 * i)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Two counters a writer updates in two steps: a kill between them leaves them unequal,
/// which the heir of the lock repairs (rolls forward: `counter` is the commit point).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct Cell {
    counter: u64,
    mirror: u64,
}

// SAFETY: two u64s, no padding; any bits valid.
unsafe impl Zeroable for Cell {}
// SAFETY: as above.
unsafe impl Pod for Cell {}

const LOCKS: usize = 8;

#[repr(C)]
struct Locks {
    m: [Mutex<Cell>; LOCKS],
}

// SAFETY: an array of Pod mutexes.
unsafe impl ShmSafe for Locks {}

// ---------------------------------------------------------------------------------------
// M0: robustness works here at all

#[test]
fn m0_a_child_that_dies_holding_the_lock_is_reported() {
    setup();
    let _w = watchdog(Duration::from_secs(30), "m0");
    let m = Shared::anonymous(Mutex::new(0u64)).unwrap();
    let mut child = fork(|| {
        let mut g = m.lock().unwrap();
        *g = 7;
        std::mem::forget(g);
        // _exit without unlocking: the process ends holding it.
    });
    child.assert_success();
    let t = Instant::now();
    match m.lock() {
        Err(LockError::OwnerDied(mut g)) => {
            assert_eq!(*g, 7);
            assert!(g.mark_consistent());
        }
        other => panic!("expected OwnerDied, got {other:?}"),
    }
    eprintln!("m0: OwnerDied after {:?}", t.elapsed());
    assert!(m.lock().is_ok());
}

// ---------------------------------------------------------------------------------------
// M1: kill storm

/// Board layout of the mutex kill storm.
const STOP: usize = 0;
const NCHILD: usize = 1;
const IDS: usize = 16;
const MAX_CHILDREN: usize = 2100;
const REPORTS: usize = IDS + MAX_CHILDREN;
const JOURNAL: usize = REPORTS + MAX_CHILDREN;
const BOARD_WORDS: usize = JOURNAL + MAX_CHILDREN * LOCKS;

fn child_index(board: &Board, owner: u32) -> Option<usize> {
    let n = board.get(NCHILD) as usize;
    (0..n).find(|&k| board.get(IDS + k) == owner)
}

/// The heir's report: one increment for the dead owner named by `OwnerDied`.
fn report_death(board: &Board, dead: Option<u32>) {
    let dead = dead.expect("OwnerDied without a dead owner id");
    let k = child_index(board, dead)
        .unwrap_or_else(|| panic!("OwnerDied names {dead:#x}, no process of this test"));
    board.word(REPORTS + k).fetch_add(1, Ordering::SeqCst);
}

fn repair(g: &mut MutexGuard<'_, Cell>) {
    if g.mirror != g.counter {
        g.mirror = g.counter; // roll the dead owner's committed update forward
    }
    assert!(g.mark_consistent(), "mark_consistent on an inherited guard");
}

/// Lock with one of the three flavours, handling an inheritance (slowly at times, so kills
/// also land on heirs before and after they record the report).
fn storm_lock<'a>(m: &'a Mutex<Cell>, rng: &mut fault::Rng, board: &Board) -> MutexGuard<'a, Cell> {
    let flavour = rng.below(3);
    loop {
        let r = match flavour {
            0 => m.lock().map_err(TryLockError::from),
            1 => m.try_lock(),
            _ => m.try_lock_for(Duration::from_millis(20)),
        };
        match r {
            Ok(g) => return g,
            Err(TryLockError::OwnerDied(mut g)) => {
                if rng.chance(1, 2) {
                    work(rng);
                }
                report_death(board, g.dead_owner());
                if rng.chance(1, 2) {
                    work(rng);
                }
                repair(&mut g);
                return g;
            }
            Err(TryLockError::WouldBlock) => std::thread::yield_now(),
            Err(TryLockError::TimedOut) => {}
            Err(e) => panic!("lock: {e}"),
        }
    }
}

fn storm_child(locks: &Locks, board: &Board, k: usize, seed: u64) -> Child {
    fork_named("storm child", move || {
        let me = liveness::current().unwrap().get();
        board.word(IDS + k).store(me, Ordering::SeqCst);
        send_line(&me.to_string());
        let mut rng = fault::Rng::new(seed);
        while board.get(STOP) == 0 {
            let i = rng.below(LOCKS as u64) as usize;
            let mut g = storm_lock(&locks.m[i], &mut rng, board);
            work(&mut rng);
            g.counter += 1; // the commit point
            work(&mut rng);
            g.mirror = g.counter;
            board.word(JOURNAL + k * LOCKS + i).fetch_add(1, Ordering::SeqCst);
            spin(rng.below(100));
            drop(g);
            spin(rng.below(100));
        }
    })
}

fn journaled(board: &Board, i: usize) -> u64 {
    let n = board.get(NCHILD) as usize;
    (0..n).map(|k| u64::from(board.get(JOURNAL + k * LOCKS + i))).sum()
}

/// The data of lock `i`, read while its holder is frozen (or nobody holds it).
fn peek(locks: &Locks, i: usize) -> Cell {
    // SAFETY: the pointer is to a live Pod cell in our mapping; its holder is stopped (or the
    // lock is free and nobody else runs), so no write races this read; volatile because
    // another process wrote it.
    unsafe { locks.m[i].data_ptr().read_volatile() }
}

#[test]
#[allow(clippy::needless_range_loop)] // lock indices index several tables
fn m1_kill_storm_every_death_reported_once_and_no_update_lost() {
    setup();
    let kills = fault::rounds(200, 1000);
    assert!(kills + 8 <= MAX_CHILDREN);
    let _w = watchdog(Duration::from_secs(if fault::soak() { 1800 } else { 300 }), "m1 storm");
    let mut rng = fault::seeded("lock kill storm");
    let locks =
        Shared::anonymous(Locks { m: std::array::from_fn(|_| Mutex::new(Cell::default())) })
            .unwrap();
    let board = Board::new(BOARD_WORDS);
    let (locks, board) = (&*locks, &board);
    let mut live: Vec<(Child, usize, u32)> = Vec::new();
    let spawn = |rng: &mut fault::Rng, live: &mut Vec<(Child, usize, u32)>| {
        let k = board.get(NCHILD) as usize;
        board.word(NCHILD).store(k as u32 + 1, Ordering::SeqCst);
        let mut c = storm_child(locks, board, k, rng.next_u64());
        let id = owner_of(&mut c);
        live.push((c, k, id));
    };
    for _ in 0..4 {
        spawn(&mut rng, &mut live);
    }
    let mut expected = vec![0u32; MAX_CHILDREN];
    let mut inferred = vec![0u32; MAX_CHILDREN];
    let mut unjournaled = [0u64; LOCKS];
    let mut pending: [Option<usize>; LOCKS] = [None; LOCKS];
    let mut recoveries = Vec::new();
    let (mut held_kills, mut inconsistent_kills) = (0, 0);
    // Sometimes the next victim is the heir of the last death, killed at once: a chain of
    // deaths, heirs dying before and after they record the report.
    let mut heir: Option<u32> = None;
    for round in 0..kills {
        let v = match heir.take().and_then(|h| live.iter().position(|c| c.2 == h)) {
            Some(v) => {
                std::thread::sleep(rng.duration(Duration::ZERO, Duration::from_micros(300)));
                v
            }
            None => {
                std::thread::sleep(rng.duration(Duration::ZERO, Duration::from_millis(3)));
                rng.below(live.len() as u64) as usize
            }
        };
        let (mut victim, k, id) = live.swap_remove(v);
        // Freeze it and look at what it holds: exact, since it cannot move.
        victim.signal(libc::SIGSTOP);
        assert!(victim.wait_stopped(Duration::from_secs(10)), "victim did not stop");
        let held: Vec<usize> =
            (0..LOCKS).filter(|&i| locks.m[i].raw().owner_value() == id).collect();
        assert!(held.len() <= 1, "round {round}: child holds {held:?}");
        if let Some(&i) = held.first() {
            if locks.m[i].raw().is_inconsistent() {
                // It inherited lock i from the previous dead owner and dies before marking it
                // consistent: that death was reported to it; did it record the report?
                let dead = pending[i].expect("an inherited lock without a dead owner");
                if board.get(REPORTS + dead) == 0 {
                    inferred[dead] += 1;
                }
                inconsistent_kills += 1;
            }
            // Everything journaled, plus at most this holder's committed update.
            let cell = peek(locks, i);
            let diff = cell.counter.checked_sub(journaled(board, i) + unjournaled[i]);
            match diff {
                Some(d @ (0 | 1)) => unjournaled[i] += d,
                _ => panic!(
                    "round {round}: lock {i} holds {} but the journal says {} (+{} unjournaled)",
                    cell.counter,
                    journaled(board, i),
                    unjournaled[i]
                ),
            }
            expected[k] = 1;
            held_kills += 1;
        }
        let killed = Instant::now();
        victim.kill();
        victim.join_within(Duration::from_secs(10));
        spawn(&mut rng, &mut live);
        if let Some(&i) = held.first() {
            pending[i] = Some(k);
            // Another child inherits it promptly (they keep locking at random).
            while locks.m[i].raw().owner_value() == id {
                assert!(
                    killed.elapsed() < Duration::from_secs(5),
                    "round {round}: nobody inherited lock {i} of a dead owner in 5 s"
                );
                std::thread::sleep(Duration::from_micros(100));
            }
            recoveries.push(killed.elapsed());
            if rng.chance(1, 3) {
                heir = Some(locks.m[i].raw().owner_value());
            }
        }
    }
    board.word(STOP).store(1, Ordering::SeqCst);
    for (mut c, _, _) in live {
        c.assert_success_within(Duration::from_secs(30));
    }
    // Final sweep: whatever is still held by a dead owner is inherited here.
    let mut commits = 0;
    for i in 0..LOCKS {
        let cell = match locks.m[i].try_lock_for(Duration::from_secs(5)) {
            Ok(g) => *g,
            Err(TryLockError::OwnerDied(mut g)) => {
                report_death(board, g.dead_owner());
                repair(&mut g);
                *g
            }
            Err(e) => panic!("final lock {i}: {e}"),
        };
        assert_eq!(cell.mirror, cell.counter, "lock {i}: a half-done update was never repaired");
        assert_eq!(
            cell.counter,
            journaled(board, i) + unjournaled[i],
            "lock {i}: committed updates do not reconcile with the journal"
        );
        commits += cell.counter;
    }
    let n = board.get(NCHILD) as usize;
    let mut reported = 0;
    for k in 0..n {
        let got = board.get(REPORTS + k);
        reported += got;
        assert!(got <= 1, "child {k}'s death was reported {got} times");
        assert_eq!(
            got + inferred[k],
            expected[k],
            "child {k}: died holding={}, reports recorded {got}, reported to a killed heir {}",
            expected[k],
            inferred[k]
        );
    }
    recoveries.sort();
    let (p50, p99, max) = (
        percentile(&recoveries, 0.5),
        percentile(&recoveries, 0.99),
        recoveries.last().copied().unwrap_or_default(),
    );
    eprintln!(
        "m1 storm: {kills} SIGKILLs, {held_kills} while holding a lock ({inconsistent_kills} of them \
         heirs killed before marking consistent); {reported} OwnerDied recorded + {} reported to \
         killed heirs; {commits} committed updates, {} committed but not yet journaled at the \
         kill; death to inheritance p50 {p50:?} p99 {p99:?} max {max:?}",
        inferred.iter().sum::<u32>(),
        unjournaled.iter().sum::<u64>()
    );
    assert!(held_kills * 4 >= kills, "too few kills landed inside a lock: the test is not testing");
    assert!(p99 < Duration::from_millis(100), "p99 death-to-inheritance {p99:?} >= 100 ms");
}

// ---------------------------------------------------------------------------------------
// M2, M3: chains of deaths and NotRecoverable

#[test]
fn m3_a_chain_of_deaths_keeps_reporting_owner_died() {
    setup();
    let _w = watchdog(Duration::from_secs(60), "m3 chain");
    let m = Shared::anonymous(Mutex::new(0u64)).unwrap();
    let m = &*m;
    let mut first = fork(|| {
        let mut g = m.lock().unwrap();
        *g = 1;
        send_line(&format!("holding {}", liveness::current().unwrap().get()));
        let _ = recv_line(Duration::from_secs(60));
        drop(g);
    });
    let mut dead = owner_of(&mut first);
    first.kill_and_join();
    for depth in 1..=5u64 {
        // Each heir is told who died, updates half the data, and is killed holding it.
        let mut heir = fork(|| match m.lock() {
            Err(LockError::OwnerDied(mut g)) => {
                assert_eq!(*g, depth, "data of the previous owner");
                *g += 1;
                send_line(&format!(
                    "{} {}",
                    g.dead_owner().unwrap(),
                    liveness::current().unwrap().get()
                ));
                let _ = recv_line(Duration::from_secs(60));
            }
            other => panic!("depth {depth}: expected OwnerDied, got {other:?}"),
        });
        let line = heir.recv_line(LINE).unwrap();
        let (told, me) = line.split_once(' ').unwrap();
        assert_eq!(told.parse::<u32>().unwrap(), dead, "depth {depth}: told the wrong owner");
        dead = me.parse().unwrap();
        heir.kill_and_join();
    }
    match m.lock() {
        Err(LockError::OwnerDied(mut g)) => {
            assert_eq!(g.dead_owner(), Some(dead));
            assert_eq!(*g, 6);
            assert!(g.mark_consistent());
        }
        other => panic!("expected OwnerDied at the end of the chain, got {other:?}"),
    }
    assert_eq!(*m.lock().unwrap(), 6);
}

#[test]
fn m2_an_unmarked_heir_makes_it_not_recoverable_for_everyone() {
    setup();
    let _w = watchdog(Duration::from_secs(60), "m2");
    let name = unique_name("m2-nr");
    let m = NamedMutex::create(&name, 0u64).unwrap();
    let mut holder = spawn_role("named-mutex-holder", &[&name]);
    owner_of(&mut holder);
    holder.kill_and_join();
    // The heir (another process) drops the inherited guard without marking it consistent.
    let mut heir = fork(|| match m.lock() {
        Err(LockError::OwnerDied(g)) => drop(g),
        other => panic!("expected OwnerDied, got {other:?}"),
    });
    heir.assert_success();
    assert!(m.is_not_recoverable());
    // Every process, every flavour, permanently.
    for _ in 0..3 {
        assert!(matches!(m.lock(), Err(LockError::NotRecoverable)));
        assert!(matches!(m.try_lock(), Err(TryLockError::NotRecoverable)));
        assert!(matches!(
            m.try_lock_for(Duration::from_secs(1)),
            Err(TryLockError::NotRecoverable)
        ));
    }
    let mut other = fork(|| {
        let o = NamedMutex::<u64>::open(&name).unwrap();
        assert!(matches!(o.lock(), Err(LockError::NotRecoverable)));
        assert!(matches!(
            o.try_lock_for(Duration::from_millis(50)),
            Err(TryLockError::NotRecoverable)
        ));
    });
    other.assert_success();
    // Until someone takes it back explicitly and puts the data right: then it is an ordinary
    // lock again, for every process.
    assert!(m.try_lock().is_err());
    let mut g = m.reclaim().expect("a not-recoverable mutex can be reclaimed");
    assert!(m.reclaim().is_none(), "reclaimed twice");
    *g = 41;
    drop(g);
    assert!(!m.is_not_recoverable());
    let mut again = fork(|| {
        let o = NamedMutex::<u64>::open(&name).unwrap();
        let mut g = o.lock().unwrap();
        *g += 1;
    });
    again.assert_success();
    assert_eq!(*m.lock().unwrap(), 42);
    drop(m);
    leak_check(&name);
}

// ---------------------------------------------------------------------------------------
// M4: waiters parked in every flavour when the owner dies

#[repr(C)]
struct WithCondvar {
    m: Mutex<u64>,
    cv: Condvar,
}

// SAFETY: a Pod mutex and a condvar.
unsafe impl ShmSafe for WithCondvar {}

/// What a waiter got (and, for an heir, whether it marks the data consistent).
fn outcome(r: ipc_lock::TryLockResult<MutexGuard<'_, u64>>, consistent: bool) -> &'static str {
    match r {
        Ok(_) => "clean",
        Err(TryLockError::OwnerDied(mut g)) => {
            if consistent {
                assert!(g.mark_consistent());
            }
            "died"
        }
        Err(TryLockError::NotRecoverable) => "not-recoverable",
        Err(e) => panic!("unexpected {e}"),
    }
}

fn three_parked_waiters(consistent: bool) {
    let s = Shared::anonymous(WithCondvar { m: Mutex::new(0), cv: Condvar::new() }).unwrap();
    let s = &*s;
    let outcome = |r| outcome(r, consistent);
    // The condvar waiter parks first (the owner's notify wakes it into the mutex).
    let mut cw = fork_named("condvar waiter", || {
        let g = s.m.lock().unwrap();
        send_line("waiting");
        let r = s.cv.wait(g).map_err(TryLockError::from);
        send_line(outcome(r));
    });
    assert_eq!(cw.recv_line(LINE).unwrap(), "waiting");
    let mut owner = fork_named("owner", || {
        let g = s.m.lock().unwrap(); // only after the condvar waiter released it in wait
        s.cv.notify_all();
        send_line("holding");
        let _ = recv_line(Duration::from_secs(60));
        drop(g);
    });
    assert_eq!(owner.recv_line(LINE).unwrap(), "holding");
    let mut lw = fork_named("lock waiter", || {
        send_line("locking");
        send_line(outcome(s.m.lock().map_err(TryLockError::from)));
    });
    let mut tw = fork_named("try_lock_for waiter", || {
        send_line("locking");
        send_line(outcome(s.m.try_lock_for(Duration::from_secs(30))));
    });
    for c in [&mut lw, &mut tw] {
        assert_eq!(c.recv_line(LINE).unwrap(), "locking");
    }
    for c in [&cw, &lw, &tw] {
        ipc_testkit::wait_until_sleeping(c.pid());
    }
    let killed = Instant::now();
    owner.kill_and_join();
    let mut got = Vec::new();
    for c in [&mut cw, &mut lw, &mut tw] {
        let left = Duration::from_secs(1).saturating_sub(killed.elapsed());
        let line = c.recv_line(left.max(Duration::from_millis(1)));
        got.push(line.unwrap_or_else(|e| panic!("a waiter did not return within 1 s: {e}")));
    }
    let all_back = killed.elapsed();
    for c in [&mut cw, &mut lw, &mut tw] {
        c.assert_success();
    }
    got.sort();
    eprintln!("m4 (consistent={consistent}): all three back {all_back:?} after the kill: {got:?}");
    assert!(all_back < Duration::from_secs(1));
    let expect = if consistent {
        ["clean", "clean", "died"]
    } else {
        ["died", "not-recoverable", "not-recoverable"]
    };
    assert_eq!(got, expect);
}

#[test]
fn m4_three_parked_waiters_return_within_1s_consistent() {
    setup();
    let _w = watchdog(Duration::from_secs(60), "m4 consistent");
    three_parked_waiters(true);
}

#[test]
fn m4_three_parked_waiters_return_within_1s_not_consistent() {
    setup();
    let _w = watchdog(Duration::from_secs(60), "m4 not consistent");
    three_parked_waiters(false);
}

// ---------------------------------------------------------------------------------------
// M5, M6: cross-process wake; an owner that execs

#[test]
fn m6_an_owner_that_execs_is_dead_to_the_lock() {
    setup();
    let _w = watchdog(Duration::from_secs(60), "m6 exec");
    let m = Shared::anonymous(Mutex::new(0u64)).unwrap();
    let m = &*m;
    let mut child = fork(|| {
        let g = m.lock().unwrap();
        std::mem::forget(g);
        send_line("locked");
        // exec: the liveness lease is close-on-exec, so the new image no longer owns the lock
        // although the process lives on.
        let mut cmd = std::process::Command::new("sleep");
        cmd.arg("30");
        let err = std::os::unix::process::CommandExt::exec(&mut cmd);
        Err::<(), String>(format!("exec failed: {err}"))
    });
    assert_eq!(child.recv_line(LINE).unwrap(), "locked");
    let t = Instant::now();
    match m.try_lock_for(Duration::from_secs(10)) {
        Err(TryLockError::OwnerDied(mut g)) => assert!(g.mark_consistent()),
        other => panic!("expected OwnerDied after exec, got {other:?}"),
    }
    eprintln!("m6: inherited {:?} after the exec", t.elapsed());
    child.kill_and_join();
}

// ---------------------------------------------------------------------------------------
// M7: garbage in the lock word

/// What a lock attempt on a state `w` must give, decided from the documented format and the
/// liveness registry only (independently of the lock's code).
#[derive(Debug, PartialEq, Eq, Clone, Copy, PartialOrd, Ord)]
enum Expect {
    Acquire,
    Corrupted,
    NotRecoverable,
    Wait,
    Inherit,
}

fn expect_for(w: u64) -> Expect {
    let low = w as u32;
    let check = (w >> 32) as u32;
    let owner = low & OWNER_MASK;
    let (c, i) = (low & CONTENDED != 0, low & INCONSISTENT != 0);
    if owner == 0 {
        return match (check, c, i) {
            (0, false, false) => Expect::Acquire,
            (0, _, true) => Expect::NotRecoverable,
            _ => Expect::Corrupted,
        };
    }
    if (c && i) || check != ipc_lock::check_of(owner) {
        return Expect::Corrupted;
    }
    // An owner word: what liveness says of its id decides (the table in ipc_shm::liveness).
    // Unknown (an id no process ever had, a slot never used) is never recovered: the waiter
    // keeps waiting until its deadline, as it does on a live owner.
    match liveness::status_raw(owner) {
        liveness::Status::Dead => Expect::Inherit,
        liveness::Status::Alive | liveness::Status::Unknown => Expect::Wait,
    }
}

#[test]
fn m7_garbage_lock_words_never_acquire() {
    setup();
    let _w = watchdog(Duration::from_secs(120), "m7 garbage");
    let mut rng = fault::seeded("lock garbage words");
    let shared = Shared::anonymous(Mutex::new(0u64)).unwrap();
    let m = &*shared;
    // A live unrelated process and a dead one.
    let (mut live, live_id) = live_owner();
    let dead_id = dead_owners(1)[0];
    let me = liveness::current().unwrap().get();
    let (c, i) = (u64::from(CONTENDED), u64::from(INCONSISTENT));
    let ow = ipc_lock::owner_word;
    // (class, word)
    let mut words: Vec<(&str, u64)> = vec![
        ("fixed", u64::MAX),
        ("fixed", u64::from(u32::MAX)),
        ("fixed", c),
        ("fixed", i),
        ("fixed", i | c),
        ("fixed", 1 << 40),
        ("live owner", ow(live_id)),
        ("live owner", ow(live_id) | c),
        ("live owner", ow(live_id) | i),
        ("fixed", ow(live_id) | c | i),
        ("fixed", u64::from(live_id)),
        ("dead owner", ow(dead_id)),
        ("dead owner", ow(dead_id) | c),
        ("dead owner", ow(dead_id) | i),
        ("fixed", u64::from(dead_id)),
        ("live owner", ow(me)),
        // Owner words whose id no process ever had: generation 0, and a registry slot
        // never used.
        ("never an id", ow(1)),
        ("never an id", ow(0x3fff)),
        ("never an id", ow(never_registered_id(&mut rng))),
        ("never an id", ow(never_registered_id(&mut rng)) | c),
    ];
    let random = fault::rounds(300, 3000);
    words.extend((0..random).map(|_| ("random 64-bit", rng.next_u64())));
    words.extend((0..random / 3).map(|_| ("random low 32 bits", rng.next_u64() & 0xffff_ffff)));
    // Ids with their correct check: the part of the space a garbage writer can only reach by
    // computing the check (decided by liveness: never registered, live, or dead).
    words.extend((0..random / 6).map(|_| {
        let id = (rng.next_u64() as u32) & OWNER_MASK;
        ("random id, valid check", ow(id) | [0, c, i][rng.below(3) as usize])
    }));
    let mut seen = std::collections::BTreeMap::new();
    for &(class, w) in &words {
        // A peer (a forked child) writes the garbage.
        let mut writer = fork(|| poke(shared.shm(), state_of(m.raw()), w));
        writer.assert_success();
        let expect = expect_for(w);
        let t = Instant::now();
        let got = match m.try_lock_for(Duration::from_millis(30)) {
            Ok(g) => {
                drop(g);
                Expect::Acquire
            }
            Err(TryLockError::Corrupted { word: found }) => {
                assert_eq!(found, w);
                Expect::Corrupted
            }
            Err(TryLockError::NotRecoverable) => Expect::NotRecoverable,
            Err(TryLockError::TimedOut) => Expect::Wait,
            Err(TryLockError::OwnerDied(mut g)) => {
                assert_eq!(g.dead_owner(), Some(w as u32 & OWNER_MASK));
                assert!(g.mark_consistent());
                Expect::Inherit
            }
            Err(e) => panic!("{w:#018x}: {e}"),
        };
        let took = t.elapsed();
        assert_eq!(got, expect, "{class} {w:#018x}");
        assert!(took < Duration::from_secs(2), "{class} {w:#018x} took {took:?}");
        let now = m.raw().word_value();
        match got {
            // Never acquired: the state is untouched (a waiter may only add CONTENDED to a
            // live owner's state, so that owner's unlock wakes it).
            Expect::Corrupted | Expect::NotRecoverable => {
                assert_eq!(now, w, "{class} {w:#018x} was changed to {now:#018x}");
            }
            Expect::Wait => assert_eq!(now & !c, w & !c, "{class} {w:#018x} became {now:#018x}"),
            Expect::Acquire | Expect::Inherit => assert!(!m.is_locked()),
        }
        *seen.entry((class, got)).or_insert(0) += 1;
        poke(shared.shm(), state_of(m.raw()), 0);
    }
    live.kill_and_join();
    eprintln!("m7: {} states written by a peer: {seen:?}", words.len());
    for (&(class, got), &n) in &seen {
        if class.starts_with("random 64") || class.starts_with("random low") {
            // Random bytes never pass for an owner: no inheritance, no wait, no acquire
            // (except the all-zero unlocked state, and a bare flag pattern).
            assert!(
                matches!(got, Expect::Corrupted | Expect::NotRecoverable)
                    || (got == Expect::Acquire && n <= 1),
                "{n} {class} states gave {got:?}"
            );
        }
    }
    assert!(seen.keys().any(|k| k.1 == Expect::Wait));
    assert!(seen.keys().any(|k| k.1 == Expect::Inherit));
    assert_eq!(seen.get(&("never an id", Expect::Wait)), Some(&4), "{seen:?}");
}

/// A well-formed owner id (generation non-zero) of a liveness registry slot that never held
/// a process: liveness answers `Unknown` for it.
fn never_registered_id(rng: &mut fault::Rng) -> u32 {
    loop {
        let id = (rng.next_u64() as u32) & OWNER_MASK;
        if let Some(owner) = OwnerId::from_raw(id)
            && liveness::pid_hint(owner) == Some(0)
        {
            assert_eq!(liveness::status(owner), liveness::Status::Unknown);
            return id;
        }
    }
}

// ---------------------------------------------------------------------------------------
// M10, M11, M12: rwlock kills

const RW_LOCKS: usize = 2;

#[repr(C)]
struct RwLocks {
    l: [RwLock<Cell>; RW_LOCKS],
}

// SAFETY: Pod rwlocks.
unsafe impl ShmSafe for RwLocks {}

/// Board layout of the rwlock storm (shares STOP/NCHILD/IDS/REPORTS/JOURNAL offsets).
const TORN: usize = 2;
const MAX_WRITE_WAIT_US: usize = 3;

fn rw_child(locks: &RwLocks, board: &Board, k: usize, writer: bool, seed: u64) -> Child {
    fork_named(if writer { "rw writer" } else { "rw reader" }, move || {
        let me = liveness::current().unwrap().get();
        board.word(IDS + k).store(me, Ordering::SeqCst);
        send_line(&me.to_string());
        let mut rng = fault::Rng::new(seed);
        while board.get(STOP) == 0 {
            let i = rng.below(RW_LOCKS as u64) as usize;
            let l = &locks.l[i];
            let t = Instant::now();
            let r = if writer {
                match rng.below(2) {
                    0 => l.write().map_err(TryLockError::from),
                    _ => l.try_write_for(Duration::from_millis(20)),
                }
                .map(Err)
            } else {
                match rng.below(2) {
                    0 => l.read().map_err(TryLockError::from),
                    _ => l.try_read_for(Duration::from_millis(20)),
                }
                .map(Ok)
            };
            let mut w = match r {
                Ok(Ok(rg)) => {
                    // A reader never sees a half-done write.
                    if rg.counter != rg.mirror {
                        board.word(TORN).fetch_add(1, Ordering::SeqCst);
                    }
                    work(&mut rng);
                    work(&mut rng);
                    drop(rg);
                    spin(rng.below(200));
                    continue;
                }
                Ok(Err(wg)) => wg,
                Err(TryLockError::OwnerDied(mut wg)) => {
                    report_death(board, wg.dead_owner());
                    if wg.mirror != wg.counter {
                        wg.mirror = wg.counter;
                    }
                    assert!(wg.mark_consistent());
                    if !writer {
                        continue; // a reader repaired it; the guard drops
                    }
                    wg
                }
                Err(TryLockError::TimedOut) => continue,
                Err(e) => panic!("rwlock: {e}"),
            };
            let waited = u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX);
            board.word(MAX_WRITE_WAIT_US).fetch_max(waited, Ordering::SeqCst);
            work(&mut rng);
            w.counter += 1;
            work(&mut rng);
            w.mirror = w.counter;
            board.word(JOURNAL + k * LOCKS + i).fetch_add(1, Ordering::SeqCst);
            spin(rng.below(100));
            drop(w);
            spin(rng.below(200));
        }
    })
}

fn peek_rw(locks: &RwLocks, i: usize) -> Cell {
    // SAFETY: as in `peek`: the writer holding it is stopped.
    unsafe { locks.l[i].data_ptr().read_volatile() }
}

#[test]
#[allow(clippy::needless_range_loop)] // lock indices index several tables
fn m10_m11_rwlock_reader_and_writer_kills() {
    setup();
    let per_role = fault::rounds(200, 1000);
    assert!(2 * per_role + 8 <= MAX_CHILDREN);
    let _w = watchdog(Duration::from_secs(if fault::soak() { 1800 } else { 300 }), "rw storm");
    let mut rng = fault::seeded("rwlock kill storm");
    let locks =
        Shared::anonymous(RwLocks { l: std::array::from_fn(|_| RwLock::new(Cell::default())) })
            .unwrap();
    let board = Board::new(BOARD_WORDS);
    let (locks, board) = (&*locks, &board);
    // (child, index, owner id, is writer)
    let mut live: Vec<(Child, usize, u32, bool)> = Vec::new();
    let spawn = |rng: &mut fault::Rng, live: &mut Vec<(Child, usize, u32, bool)>, w: bool| {
        let k = board.get(NCHILD) as usize;
        board.word(NCHILD).store(k as u32 + 1, Ordering::SeqCst);
        let mut c = rw_child(locks, board, k, w, rng.next_u64());
        let id = owner_of(&mut c);
        live.push((c, k, id, w));
    };
    for w in [false, false, false, true, true] {
        spawn(&mut rng, &mut live, w);
    }
    let mut expected = vec![0u32; MAX_CHILDREN];
    let mut inferred = vec![0u32; MAX_CHILDREN];
    let mut unjournaled = [0u64; LOCKS];
    let mut pending: [Option<usize>; RW_LOCKS] = [None; RW_LOCKS];
    let (mut reader_kills, mut writer_kills) = (0, 0);
    let (mut readers_holding, mut writers_holding) = (0, 0);
    let (mut reclaims, mut inheritances) = (Vec::new(), Vec::new());
    while reader_kills < per_role || writer_kills < per_role {
        std::thread::sleep(rng.duration(Duration::ZERO, Duration::from_millis(3)));
        let want_writer = match (reader_kills < per_role, writer_kills < per_role) {
            (true, true) => rng.chance(1, 2),
            (r, _) => !r,
        };
        let v = live.iter().position(|c| c.3 == want_writer).unwrap();
        let (mut victim, k, id, is_writer) = live.swap_remove(v);
        victim.signal(libc::SIGSTOP);
        assert!(victim.wait_stopped(Duration::from_secs(10)), "victim did not stop");
        let mut wrote = None;
        let mut read = Vec::new();
        for i in 0..RW_LOCKS {
            let (owner, inconsistent) = writer_of(locks, i);
            if owner == id {
                if inconsistent {
                    let dead = pending[i].expect("inherited without a dead writer");
                    if board.get(REPORTS + dead) == 0 {
                        inferred[dead] += 1;
                    }
                }
                let cell = peek_rw(locks, i);
                match cell.counter.checked_sub(journaled(board, i) + unjournaled[i]) {
                    Some(d @ (0 | 1)) => unjournaled[i] += d,
                    _ => panic!(
                        "rwlock {i}: data {} vs journal {}",
                        cell.counter,
                        journaled(board, i)
                    ),
                }
                wrote = Some(i);
            }
            if reads(locks, i, id) {
                read.push(i);
            }
        }
        let killed = Instant::now();
        victim.kill();
        victim.join_within(Duration::from_secs(10));
        if is_writer {
            writer_kills += 1;
        } else {
            reader_kills += 1;
        }
        spawn(&mut rng, &mut live, is_writer);
        if let Some(i) = wrote {
            writers_holding += 1;
            expected[k] = 1;
            pending[i] = Some(k);
            while writer_of(locks, i).0 == id {
                assert!(killed.elapsed() < Duration::from_secs(5), "dead writer never inherited");
                std::thread::sleep(Duration::from_micros(100));
            }
            inheritances.push(killed.elapsed());
        }
        if !read.is_empty() {
            readers_holding += 1;
        }
        for &i in &read {
            // A writer comes by and reclaims the dead reader's count.
            while reads(locks, i, id) {
                assert!(
                    killed.elapsed() < Duration::from_millis(500),
                    "a dead reader's hold was not reclaimed within 500 ms"
                );
                std::thread::sleep(Duration::from_micros(100));
            }
            reclaims.push(killed.elapsed());
        }
    }
    board.word(STOP).store(1, Ordering::SeqCst);
    for (mut c, ..) in live {
        c.assert_success_within(Duration::from_secs(30));
    }
    let mut commits = 0;
    for i in 0..RW_LOCKS {
        let cell = match locks.l[i].try_write_for(Duration::from_secs(5)) {
            Ok(g) => *g,
            Err(TryLockError::OwnerDied(mut g)) => {
                report_death(board, g.dead_owner());
                if g.mirror != g.counter {
                    g.mirror = g.counter;
                }
                assert!(g.mark_consistent());
                *g
            }
            Err(e) => panic!("final write {i}: {e}"),
        };
        assert_eq!(cell.mirror, cell.counter);
        assert_eq!(cell.counter, journaled(board, i) + unjournaled[i], "rwlock {i} journal");
        commits += cell.counter;
    }
    let n = board.get(NCHILD) as usize;
    for k in 0..n {
        let got = board.get(REPORTS + k);
        assert!(got <= 1, "child {k}'s death reported {got} times");
        assert_eq!(got + inferred[k], expected[k], "child {k}: death reports");
    }
    reclaims.sort();
    inheritances.sort();
    let torn = board.get(TORN);
    eprintln!(
        "m10/m11: {reader_kills} reader kills ({readers_holding} holding a read lock), \
         {writer_kills} writer kills ({writers_holding} holding the write lock); {commits} \
         committed writes; dead reader reclaimed p50 {:?} max {:?}; dead writer inherited p50 \
         {:?} max {:?}; slowest write acquisition {} us; torn reads {torn}",
        percentile(&reclaims, 0.5),
        reclaims.last().copied().unwrap_or_default(),
        percentile(&inheritances, 0.5),
        inheritances.last().copied().unwrap_or_default(),
        board.get(MAX_WRITE_WAIT_US),
    );
    assert_eq!(torn, 0, "a reader saw a half-done write");
    assert!(readers_holding * 4 >= reader_kills, "too few reader kills inside a read lock");
    assert!(writers_holding * 8 >= writer_kills, "too few writer kills inside the write lock");
}

/// The writer lock's state of rwlock `i` (a snapshot): (owner id, inconsistent).
fn writer_of(locks: &RwLocks, i: usize) -> (u32, bool) {
    let w = locks.l[i].raw().writer_word_value() as u32;
    (w & OWNER_MASK, w & INCONSISTENT != 0)
}

/// Whether `id` holds a read count in rwlock `i`'s reader table (one load per slot).
fn reads(locks: &RwLocks, i: usize, id: u32) -> bool {
    let raw = locks.l[i].raw();
    (0..ipc_lock::READER_SLOTS).any(|s| {
        let v = raw.slot_value(s);
        v >> 32 == u64::from(id) && v as u32 & 0x7fff_ffff > 0 // the count, not the WAITING bit
    })
}

#[test]
fn m12_more_reader_processes_than_slots_get_too_many_readers_never_a_hang() {
    setup();
    let _w = watchdog(Duration::from_secs(120), "m12");
    let l = Shared::anonymous(RwLock::new(0u64)).unwrap();
    let l = &*l;
    let n = ipc_lock::READER_SLOTS;
    let mut holders: Vec<Child> = (0..n)
        .map(|_| {
            fork(|| {
                let g = l.read().unwrap();
                send_line("reading");
                let _ = recv_line(Duration::from_secs(60));
                drop(g);
            })
        })
        .collect();
    for h in &mut holders {
        assert_eq!(h.recv_line(LINE).unwrap(), "reading");
    }
    let mut extra = fork(|| {
        let t = Instant::now();
        assert!(matches!(l.read(), Err(LockError::TooManyReaders)));
        assert!(matches!(l.try_read(), Err(TryLockError::TooManyReaders)));
        assert!(matches!(
            l.try_read_for(Duration::from_secs(5)),
            Err(TryLockError::TooManyReaders)
        ));
        assert!(t.elapsed() < Duration::from_secs(1), "a full table took {:?}", t.elapsed());
    });
    extra.assert_success();
    // One holder dies: its slot is reclaimed for a newcomer.
    holders.pop().unwrap().kill_and_join();
    let mut newcomer = fork(|| {
        let g = l.try_read_for(Duration::from_secs(5)).unwrap();
        assert_eq!(*g, 0);
    });
    newcomer.assert_success();
    for mut h in holders {
        h.send_line("done");
        h.assert_success();
    }
    assert_eq!(l.raw().reader_count(), 0);
    *l.try_write_for(Duration::from_secs(5)).unwrap() += 1;
}

/// Reader slots forged by a peer: a slot is reclaimed only when liveness calls its owner
/// Dead. A garbage owner, an id no process ever had and a live process's id are Alive or
/// Unknown: never recovered, so a writer waits for them until its deadline and the slot is
/// left as the peer wrote it (the table in ipc_shm::liveness).
#[test]
fn m12_forged_reader_slots_are_reclaimed_only_when_their_owner_is_dead() {
    setup();
    let _w = watchdog(Duration::from_secs(60), "m12 forged slots");
    let mut rng = fault::seeded("forged reader slots");
    let shared = Shared::anonymous(RwLock::new(0u64)).unwrap();
    let l = &*shared;
    let (mut live, live_id) = live_owner();
    let dead_id = dead_owners(1)[0];
    let cases = [
        ("garbage owner", 0xdead_beef, false),
        ("never registered", never_registered_id(&mut rng), false),
        ("live reader", live_id, false),
        ("dead reader", dead_id, true),
    ];
    for (what, owner, reclaimed) in cases {
        let forged = (u64::from(owner) << 32) | 3;
        fork(|| poke(shared.shm(), slot_of(l.raw(), 5), forged)).assert_success();
        let got = l.try_write_for(Duration::from_millis(30)).map(drop);
        let left = l.raw().slot_value(5) & !(1 << 31); // a waiting writer may mark it
        if reclaimed {
            assert!(got.is_ok(), "{what}: {got:?}");
            assert_eq!(left, 0, "{what}: slot not reclaimed");
        } else {
            assert!(matches!(got, Err(TryLockError::TimedOut)), "{what}: {got:?}");
            assert_eq!(left, forged, "{what}: the slot was taken over");
            // A new reader does not take it over either: it reads through a slot of its own.
            let r = l.try_read_for(Duration::from_secs(5)).unwrap();
            assert_eq!(l.raw().slot_value(5) & !(1 << 31), forged, "{what}: reader took it");
            drop(r);
        }
        poke(shared.shm(), slot_of(l.raw(), 5), 0);
    }
    live.kill_and_join();
    assert!(l.try_write().is_ok());
}

// ---------------------------------------------------------------------------------------
// Condvar across processes

#[test]
fn condvar_ping_pong_across_two_processes_loses_no_wake_up() {
    setup();
    let rounds = fault::rounds(100_000, 1_000_000) as u64;
    let _w = watchdog(Duration::from_secs(600), "condvar ping-pong");
    let s = Shared::anonymous(WithCondvar { m: Mutex::new(0), cv: Condvar::new() }).unwrap();
    let s = &*s;
    let turn = |me: u64| {
        for i in 0..rounds {
            let g = s.m.lock().unwrap();
            let mut g = s.cv.wait_while(g, |v| *v != 2 * i + me).unwrap();
            *g += 1;
            drop(g);
            s.cv.notify_one();
        }
        Condvar::rescued_waits()
    };
    let t = Instant::now();
    let mut child = fork(move || {
        let rescued = turn(1);
        send_line(&rescued.to_string());
    });
    let rescued_here = turn(0);
    let rescued_there: u64 = child.recv_line(Duration::from_secs(600)).unwrap().parse().unwrap();
    child.assert_success();
    let el = t.elapsed();
    assert_eq!(*s.m.lock().unwrap(), 2 * rounds);
    eprintln!(
        "condvar: {rounds} rounds across two processes in {el:?} ({:?} per round trip); \
         wake-ups rescued by a safety slice: {rescued_here} here, {rescued_there} there",
        el / u32::try_from(rounds).unwrap()
    );
    assert_eq!(rescued_here + rescued_there, 0, "a wake-up was lost (rescued by a slice)");
}

// ---------------------------------------------------------------------------------------
// Re-entrant mutex, named locks, file locks

#[test]
fn reentrant_owner_is_process_and_thread_not_a_tls_address() {
    setup();
    let _w = watchdog(Duration::from_secs(60), "reentrant fork");
    let l = Shared::anonymous(RawReentrantMutex::new()).unwrap();
    let l = &*l;
    l.lock().unwrap();
    l.lock().unwrap();
    // A forked child has this thread's addresses and thread-locals, but is not the owner.
    let mut child = fork(|| {
        assert!(!l.is_owned_by_current_thread());
        assert!(matches!(l.try_lock(), Err(TryLockError::WouldBlock)));
        assert_eq!(l.unlock(), Err(ipc_lock::NotOwner));
        assert!(matches!(l.try_lock_for(Duration::from_millis(50)), Err(TryLockError::TimedOut)));
    });
    child.assert_success();
    assert!(l.is_owned_by_current_thread());
    l.unlock().unwrap();
    l.unlock().unwrap();
    // Now a child holds it three deep and dies: the parent inherits it.
    let mut child = fork(|| {
        for _ in 0..3 {
            l.lock().unwrap();
        }
        send_line("held");
        let _ = recv_line(Duration::from_secs(60));
    });
    assert_eq!(child.recv_line(LINE).unwrap(), "held");
    assert!(matches!(l.try_lock(), Err(TryLockError::WouldBlock)));
    child.kill_and_join();
    assert!(matches!(l.try_lock_for(Duration::from_secs(5)), Err(TryLockError::OwnerDied(()))));
    assert!(l.mark_consistent());
    l.unlock().unwrap();
    assert!(!l.is_locked());
}

#[test]
fn named_locks_are_shared_by_unrelated_processes() {
    setup();
    let _w = watchdog(Duration::from_secs(60), "named");
    let name = unique_name("named-mutex");
    let m = NamedMutex::create(&name, 41u64).unwrap();
    let mut holder = spawn_role("named-mutex-holder", &[&name]);
    let id = owner_of(&mut holder);
    assert!(matches!(m.try_lock(), Err(TryLockError::WouldBlock)));
    holder.kill_and_join();
    match m.try_lock_for(Duration::from_secs(5)) {
        Err(TryLockError::OwnerDied(mut g)) => {
            assert_eq!(g.dead_owner(), Some(id));
            assert_eq!(*g, 42);
            assert!(g.mark_consistent());
        }
        other => panic!("expected OwnerDied, got {other:?}"),
    }
    // The header check: the same name opened as another type is refused.
    let err = NamedRwLock::<u64>::open(&name).unwrap_err();
    assert!(err.to_string().contains(&name), "{err}");
    drop(m);

    let rw = unique_name("named-rw");
    let l = NamedRwLock::create(&rw, [5u64, 6]).unwrap();
    let mut reader = spawn_role("named-rwlock-reader", &[&rw]);
    assert_eq!(reader.recv_line(LINE).unwrap(), "reading 5");
    assert!(matches!(l.try_write(), Err(TryLockError::WouldBlock)));
    reader.kill_and_join();
    let t = Instant::now();
    let mut w = l.try_write_for(Duration::from_secs(5)).unwrap();
    w[0] = 7;
    drop(w);
    eprintln!("named rwlock: dead reader's hold reclaimed, writer in after {:?}", t.elapsed());

    let rl = unique_name("named-rlock");
    let r = NamedRLock::create(&rl).unwrap();
    let mut owner = spawn_role("named-rlock", &[&rl]);
    assert_eq!(owner.recv_line(LINE).unwrap(), "held");
    assert!(matches!(r.try_lock(), Err(TryLockError::WouldBlock)));
    assert_eq!(r.unlock(), Err(ipc_lock::NotOwner));
    owner.send_line("release");
    assert_eq!(owner.recv_line(LINE).unwrap(), "released");
    owner.assert_success();
    r.lock().unwrap();
    r.unlock().unwrap();
    drop((l, r));
    for n in [&name, &rw, &rl] {
        leak_check(n);
    }
}

#[test]
fn file_lock_is_released_by_the_kernel_when_the_holder_dies() {
    setup();
    let _w = watchdog(Duration::from_secs(60), "file lock");
    let path = std::env::temp_dir().join(format!("{}.lock", unique_name("filelock")));
    let p = path.clone();
    let mut holder = fork(move || {
        let mut fl = FileLock::open(&p).unwrap();
        let g = fl.lock().unwrap();
        send_line("locked");
        let _ = recv_line(Duration::from_secs(60));
        drop(g);
    });
    assert_eq!(holder.recv_line(LINE).unwrap(), "locked");
    let mut mine = FileLock::open(&path).unwrap();
    assert!(mine.is_locked_elsewhere().unwrap());
    assert!(mine.try_lock().unwrap().is_none());
    assert!(mine.try_lock_shared_for(Duration::from_millis(30)).unwrap().is_none());
    holder.kill_and_join();
    let t = Instant::now();
    let g = mine.try_lock_for(Duration::from_secs(5)).unwrap().expect("released at death");
    eprintln!("file lock: free {:?} after the holder's death", t.elapsed());
    drop(g);
    // Shared locks across processes.
    let p = path.clone();
    let mut reader = fork(move || {
        let mut fl = FileLock::open(&p).unwrap();
        let _g = fl.lock_shared().unwrap();
        send_line("shared");
        let _ = recv_line(Duration::from_secs(60));
    });
    assert_eq!(reader.recv_line(LINE).unwrap(), "shared");
    let s = mine.try_lock_shared().unwrap().expect("shared with a shared holder");
    drop(s);
    assert!(mine.try_lock().unwrap().is_none());
    reader.send_line("done");
    reader.assert_success();
    assert!(mine.try_lock_for(Duration::from_secs(5)).unwrap().is_some());
    drop(mine);
    std::fs::remove_file(&path).unwrap();
}

// ---------------------------------------------------------------------------------------
// Crash points

/// A registered process that waits to be killed, and its owner id (a live owner to plant).
fn live_owner() -> (Child, u32) {
    let mut live = fork(|| {
        send_line(&liveness::current().unwrap().get().to_string());
        let _ = recv_line(Duration::from_secs(120));
    });
    let id = owner_of(&mut live);
    (live, id)
}

/// Ids of `n` processes that registered and exited (dead owners to plant in words).
fn dead_owners(n: usize) -> Vec<u32> {
    (0..n)
        .map(|_| {
            let mut c = fork(|| send_line(&liveness::current().unwrap().get().to_string()));
            let id = owner_of(&mut c);
            c.assert_success();
            id
        })
        .collect()
}

#[repr(C)]
struct CrashState {
    m: Mutex<u64>,
    cv: Condvar,
    rw: RwLock<u64>,
}

// SAFETY: Pod locks and a condvar.
unsafe impl ShmSafe for CrashState {}

/// Run the workload that passes `point` up to three times; the child dies at the `nth` pass.
fn crash_workload(point: &str, shm: &Shm, s: &CrashState, dead: &[u32]) {
    for &dead in dead.iter().take(3) {
        match point {
            "mutex.recovered" | "mutex.unlock.inconsistent" => {
                poke(shm, state_of(s.m.raw()), ipc_lock::owner_word(dead));
                match s.m.lock() {
                    Err(LockError::OwnerDied(mut g)) => {
                        if point == "mutex.recovered" {
                            g.mark_consistent();
                        }
                    }
                    other => panic!("expected OwnerDied, got {other:?}"),
                }
                poke(shm, state_of(s.m.raw()), 0);
            }
            "rwlock.read.counted" => drop(s.rw.read().unwrap()),
            "rwlock.write.draining" => *s.rw.write().unwrap() += 1,
            "condvar.registered" | "condvar.woken" => {
                let g = s.m.lock().unwrap();
                let _ = s.cv.wait_timeout(g, Duration::from_millis(1)).unwrap();
            }
            other => panic!("no workload for crash point {other}"),
        }
    }
}

#[test]
fn crash_points_each_pass_leave_every_lock_usable() {
    setup();
    let _w = watchdog(Duration::from_secs(120), "crash points");
    const { assert!(ipc_shm::crash::ENABLED, "the suite is built with crash points") };
    let dead = dead_owners(3);
    for &point in ipc_lock::CRASH_POINTS {
        for nth in 1..=3u32 {
            let s = Shared::anonymous(CrashState {
                m: Mutex::new(0),
                cv: Condvar::new(),
                rw: RwLock::new(0),
            })
            .unwrap();
            let (st, shm) = (&*s, s.shm());
            let dead = &dead;
            let mut child = fork_named(point, move || {
                ipc_shm::crash::arm(point, nth);
                crash_workload(point, shm, st, dead);
                Err::<(), String>(format!("crash point {point} #{nth} was never reached"))
            });
            child.assert_signaled(libc::SIGKILL);
            // Every lock is usable again within the bound: inherited or free, never a hang.
            let t = Instant::now();
            match s.m.try_lock_for(Duration::from_secs(2)) {
                Ok(_) => {}
                Err(TryLockError::OwnerDied(mut g)) => assert!(g.mark_consistent()),
                Err(e) => panic!("{point} #{nth}: mutex {e}"),
            }
            match s.rw.try_write_for(Duration::from_secs(2)) {
                Ok(_) => {}
                Err(TryLockError::OwnerDied(mut g)) => assert!(g.mark_consistent()),
                Err(e) => panic!("{point} #{nth}: rwlock {e}"),
            }
            match s.rw.try_read_for(Duration::from_secs(2)) {
                Ok(_) => {}
                Err(e) => panic!("{point} #{nth}: rwlock read {e}"),
            }
            // The condvar still works (a leaked waiter registration costs a spurious wake).
            let g = s.m.lock().unwrap();
            s.cv.notify_all();
            let (_g, r) = s.cv.wait_timeout(g, Duration::from_millis(1)).unwrap();
            assert!(r.timed_out());
            assert!(t.elapsed() < Duration::from_secs(1), "{point} #{nth}: {:?}", t.elapsed());
        }
    }
}

/// M9: holders in other pid namespaces. Each is pid 1 of its own namespace (a forced pid
/// collision between the two), so anything keyed by pid would confuse them or take pid 1 for
/// init; owner ids and their leases are kernel file locks, which know no pid namespace.
#[test]
fn m9_holders_in_other_pid_namespaces_with_colliding_pids_are_told_apart() {
    setup();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root for unshare --pid");
        return;
    }
    let _w = watchdog(Duration::from_secs(60), "m9");
    let (na, nb) = (unique_name("m9-a"), unique_name("m9-b"));
    let a = NamedMutex::create(&na, 0u64).unwrap();
    let b = NamedMutex::create(&nb, 0u64).unwrap();
    // --kill-child: the holder (pid 1 inside) dies with the unshare process we kill.
    let wrap = ["unshare", "--pid", "--fork", "--kill-child", "--"];
    let mut ha = ipc_testkit::spawn_role_wrapped(&wrap, "named-mutex-holder", &[&na]);
    let oa = owner_of(&mut ha);
    let mut hb = ipc_testkit::spawn_role_wrapped(&wrap, "named-mutex-holder", &[&nb]);
    let ob = owner_of(&mut hb);
    assert_ne!(oa, ob, "two live processes share an owner id");
    // Both alive: neither lock is taken from its holder.
    for m in [&a, &b] {
        assert!(matches!(m.try_lock_for(Duration::from_millis(50)), Err(TryLockError::TimedOut)));
    }
    ha.kill_and_join();
    match a.lock() {
        Err(LockError::OwnerDied(mut g)) => {
            assert_eq!(g.dead_owner(), Some(oa));
            assert_eq!(*g, 1);
            assert!(g.mark_consistent());
        }
        other => panic!("expected OwnerDied from the dead namespaced holder, got {other:?}"),
    }
    // The other pid 1 is still alive and still holds its lock.
    assert!(matches!(b.try_lock_for(Duration::from_millis(100)), Err(TryLockError::TimedOut)));
    hb.kill_and_join();
    match b.lock() {
        Err(LockError::OwnerDied(mut g)) => {
            assert_eq!(g.dead_owner(), Some(ob));
            assert!(g.mark_consistent());
        }
        other => panic!("expected OwnerDied from the second holder, got {other:?}"),
    }
    drop((a, b));
    leak_check(&na);
    leak_check(&nb);
}

/// EINTR for the lock: a timed lock under a storm of EINTRs ends at its
/// deadline, and a blocking lock ends when the holder unlocks.
#[test]
fn lock_waits_survive_a_signal_storm() {
    setup();
    let _w = watchdog(Duration::from_secs(60), "lock EINTR");
    let m = Shared::anonymous(Mutex::new(0u64)).unwrap();
    let held = m.lock().unwrap();
    let timeout = Duration::from_millis(300);
    let mut child = fork(|| {
        interrupt::storm_child(
            timeout,
            || {
                let r = m.try_lock_for(timeout);
                assert!(matches!(r, Err(TryLockError::TimedOut)), "{r:?}");
            },
            || *m.lock().unwrap() += 1,
        );
    });
    let (sent, caught) = interrupt::storm_parent(&mut child, || drop(held));
    assert_eq!(*m.lock().unwrap(), 1);
    eprintln!("lock waits under a signal storm: {sent} signals sent, {caught} caught");
}

// ---------------------------------------------------------------------------------------
// Guards inherited over fork

/// Whether another process (a fresh fork, not the holder) can take `m` right now.
fn another_process_can_lock<T: Send>(m: &Mutex<T>) -> bool {
    let mut probe = fork(|| -> Result<(), String> {
        match m.try_lock() {
            Ok(_) | Err(TryLockError::OwnerDied(_)) => Err("took it".into()),
            Err(_) => Ok(()),
        }
    });
    match probe.join_timeout(LINE) {
        Ok(exit) => !exit.success(),
        Err(e) => panic!("probe: {e}"),
    }
}

#[test]
fn a_mutex_guard_dropped_in_a_forked_child_releases_nothing() {
    setup();
    let _w = watchdog(Duration::from_secs(60), "fork mutex guard");
    let m = Shared::anonymous(Mutex::new(5u64)).unwrap();
    let mut g = m.lock().unwrap();
    fork_inheriting(&g, drop).assert_success();
    assert!(m.is_locked(), "the child's drop unlocked the parent's mutex");
    assert!(!another_process_can_lock(&m), "another process took the parent's mutex");
    *g += 1;
    drop(g);
    assert!(!m.is_locked());
    assert_eq!(*m.try_lock().unwrap(), 6);
}

#[test]
fn rwlock_guards_dropped_in_a_forked_child_release_nothing() {
    setup();
    let _w = watchdog(Duration::from_secs(60), "fork rwlock guards");
    let l = Shared::anonymous(RwLock::new([1u64; 2])).unwrap();
    // A write guard.
    let w = l.write().unwrap();
    fork_inheriting(&w, drop).assert_success();
    let mut probe = fork(|| -> Result<(), String> {
        match l.try_read() {
            Ok(_) => Err("read while the parent writes".into()),
            Err(_) => Ok(()),
        }
    });
    probe.assert_success();
    drop(w);
    // A read guard: the child's drop must not free the parent's reader slot, or a writer
    // would get in while the parent reads.
    let r = l.read().unwrap();
    fork_inheriting(&r, drop).assert_success();
    let mut writer = fork(|| -> Result<(), String> {
        match l.try_write() {
            Ok(_) => Err("wrote while the parent reads".into()),
            Err(_) => Ok(()),
        }
    });
    writer.assert_success();
    assert_eq!(r[0], 1);
    drop(r);
    assert!(l.try_write().is_ok(), "the parent's own drop must free it");
}

#[test]
fn a_reentrant_guard_dropped_in_a_forked_child_releases_nothing() {
    setup();
    let _w = watchdog(Duration::from_secs(60), "fork reentrant guard");
    let m = Shared::anonymous(ipc_lock::ReentrantMutex::new(std::sync::atomic::AtomicU64::new(0)))
        .unwrap();
    let g = m.lock().unwrap();
    fork_inheriting(&g, drop).assert_success();
    assert!(m.is_locked());
    let mut probe = fork(|| -> Result<(), String> {
        match m.try_lock() {
            Ok(_) => Err("took the parent's reentrant mutex".into()),
            Err(_) => Ok(()),
        }
    });
    probe.assert_success();
    drop(g);
    assert!(!m.is_locked());
}

#[test]
fn a_file_lock_guard_dropped_in_a_forked_child_releases_nothing() {
    setup();
    let _w = watchdog(Duration::from_secs(60), "fork file lock guard");
    let path = std::env::temp_dir().join(format!("{}.lock", unique_name("fork-filelock")));
    let mut fl = FileLock::open(&path).unwrap();
    let g = fl.lock().unwrap();
    // The child shares the parent's open file description: an unlock there would drop the
    // parent's lock (OFD locks belong to the description, not the process).
    fork_inheriting(&g, drop).assert_success();
    let mut other = FileLock::open(&path).unwrap();
    assert!(other.try_lock().unwrap().is_none(), "the child's drop released the parent's lock");
    drop(g);
    assert!(other.try_lock().unwrap().is_some());
    drop(other);
    drop(fl);
    std::fs::remove_file(&path).unwrap();
}

/// A forked child dropping its copy of the creator's named lock must not unlink the name.
#[test]
fn a_forked_child_dropping_the_creators_named_lock_keeps_the_name() {
    setup();
    let _w = watchdog(Duration::from_secs(60), "fork unlink lock");
    let name = unique_name("fork-unlink-lock");
    let m = NamedMutex::<u64>::create(&name, 7).unwrap();
    fork_inheriting(&m, drop).assert_success();
    let opened = NamedMutex::<u64>::open(&name);
    assert!(opened.is_ok(), "the child's drop unlinked the parent's mutex: {:?}", opened.err());
    drop((m, opened));
    assert!(audit::shm_entries(&name).is_empty());
}
