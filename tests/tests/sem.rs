//! Cross-process suite of ipc-sem: semaphores, bounded semaphores, named semaphores, events
//! and barriers across real (forked and re-executed) processes, with holders, waiters and
//! parties SIGKILLed at random moments and at named crash points.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ipc_sem::{Barrier, BarrierError, BoundedSemaphore, Error, Event, NamedSemaphore, Semaphore};
use ipc_shm::{Shared, ShmSafe};
use ipc_testkit::{
    Child, audit, fault, fork, fork_inheriting, recv_line, send_line, spawn_role, unique_name,
    watchdog,
};

use ipc_testkit::interrupt;

ipc_testkit::roles! {
    "sem-holder" => roles::sem_holder,
    "named-poster" => roles::named_poster,
}

const LINE: Duration = Duration::from_secs(20);

mod roles {
    use super::*;

    /// args: name, k. Opens the named tracked semaphore, takes k permits, says so, waits to
    /// be killed.
    pub(super) fn sem_holder(args: &[String]) {
        let sem = Shared::<Semaphore>::open(&args[0]).unwrap();
        let k: u32 = args[1].parse().unwrap();
        sem.acquire_many(k).unwrap().forget();
        send_line("held");
        let _ = recv_line(Duration::from_secs(60));
    }

    /// args: name, n. Opens the named POSIX semaphore and posts n times.
    pub(super) fn named_poster(args: &[String]) {
        let sem = NamedSemaphore::open(&args[0]).unwrap();
        for _ in 0..args[1].parse::<u32>().unwrap() {
            sem.release().unwrap();
        }
    }
}

fn leak_check(prefix: &str) {
    let left = audit::shm_entries(prefix);
    assert!(left.is_empty(), "segments left behind: {left:?}");
}

/// A small control block shared with children.
#[repr(C)]
struct Ctl {
    stop: AtomicU32,
    words: [AtomicU64; 7],
}

// SAFETY: atomics only.
unsafe impl ShmSafe for Ctl {}

fn ctl() -> Shared<Ctl> {
    Shared::anonymous(Ctl {
        stop: AtomicU32::new(0),
        words: std::array::from_fn(|_| AtomicU64::new(0)),
    })
    .unwrap()
}

/// A child that takes and gives back random numbers of permits until told to stop.
fn churn(sem: &Semaphore, ctl: &Ctl, seed: u64) -> Result<(), String> {
    let mut rng = fault::Rng::new(seed);
    while ctl.stop.load(Ordering::Acquire) == 0 {
        let k = rng.range(1, 4) as u32;
        let p = sem
            .acquire_many_timeout(k, Duration::from_secs(10))
            .map_err(|e| e.to_string())?
            .ok_or("no permits for 10 s")?;
        for _ in 0..rng.below(200) {
            std::hint::spin_loop();
        }
        if rng.chance(1, 8) {
            // Sometimes keep them and give them back by count instead of by the permit.
            p.forget();
            sem.release_many(k).map_err(|e| e.to_string())?;
        } else {
            drop(p);
        }
    }
    Ok(())
}

/// S1, tracked: a holder killed at a random moment among live holders; after every round
/// the ledger is exact (`available + held_by_live == permits` once the dead are reclaimed),
/// the next acquirer takes the dead holder's permits back, and nothing is created or lost.
#[test]
fn tracked_holder_kills_conserve_permits() {
    const P: u32 = 8;
    let rounds = fault::rounds(200, 1000);
    let _w = watchdog(Duration::from_secs(600), "tracked holder kills");
    let mut rng = fault::seeded("tracked_holder_kills_conserve_permits");
    let sem = Shared::anonymous(Semaphore::tracked(P).unwrap()).unwrap();
    let ctl = ctl();
    for round in 0..rounds {
        ctl.stop.store(0, Ordering::Release);
        let (s1, s2) = (rng.next_u64(), rng.next_u64());
        let mut victim = fork(|| churn(&sem, &ctl, s1));
        let mut survivor = fork(|| churn(&sem, &ctl, s2));
        fault::kill_at_random(&victim, &mut rng, Duration::from_millis(10));
        victim.assert_signaled(libc::SIGKILL);
        // With the survivor still running, the ledger accounts for every permit.
        let l = sem.ledger().unwrap();
        assert_eq!(l.free + l.held_by_live + l.held_by_dead, P, "round {round}: {l:?}");
        assert!(l.held_by_dead <= 3, "round {round}: the victim held at most 3: {l:?}");
        ctl.stop.store(1, Ordering::Release);
        survivor.assert_success_within(Duration::from_secs(30));
        let l = sem.ledger().unwrap();
        assert_eq!(l.held_by_live, 0, "round {round}: {l:?}");
        assert_eq!(l.free + l.held_by_dead, P, "round {round}: {l:?}");
        // The next acquirer that needs them takes the dead holder's permits back.
        let before = sem.recovered();
        let all = sem
            .acquire_many_timeout(P, Duration::from_secs(5))
            .unwrap()
            .unwrap_or_else(|| panic!("round {round}: dead holder's permits never came back"));
        assert_eq!(sem.recovered() - before, l.held_by_dead, "round {round}");
        drop(all);
        let l = sem.ledger().unwrap();
        assert_eq!((l.free, l.held_by_live, l.held_by_dead), (P, 0, 0), "round {round}");
    }
    let back = sem.recovered();
    eprintln!("{rounds} holder kills, {back} permits taken back from dead holders");
    assert!(back > 0, "no kill ever hit a holder: the test proves nothing");
}

/// S1, untracked: a holder killed while holding k permits leaks exactly k.
#[test]
fn untracked_killed_holder_leaks_exactly_what_it_held() {
    const P: u32 = 8;
    let rounds = fault::rounds(50, 500);
    let _w = watchdog(Duration::from_secs(300), "untracked holder kills");
    let mut rng = fault::seeded("untracked_killed_holder_leaks_exactly_what_it_held");
    let sem = Shared::anonymous(Semaphore::new(P).unwrap()).unwrap();
    for round in 0..rounds {
        let k = rng.range(1, 5) as u32;
        let mut holder = fork(|| {
            sem.acquire_many(k).unwrap().forget();
            send_line("held");
            let _ = recv_line(Duration::from_secs(60));
        });
        assert_eq!(holder.recv_line(LINE).unwrap(), "held");
        fault::kill_at_random(&holder, &mut rng, Duration::from_millis(2));
        holder.assert_signaled(libc::SIGKILL);
        assert_eq!(sem.value(), P - k, "round {round}: leaked other than the {k} held");
        assert_eq!(sem.recover().unwrap(), 0, "untracked mode keeps no ledger");
        sem.release_many(k).unwrap(); // put them back by hand
    }
}

/// Deterministic kills at the tracked crash points: the ledger shows exactly what the dead
/// process held at that instruction (there is no window between taking and recording).
#[test]
fn tracked_crash_points_leave_an_exact_ledger() {
    const { assert!(ipc_shm::crash::ENABLED, "the suite builds ipc-sem with crash points") };
    let _w = watchdog(Duration::from_secs(120), "tracked crash points");
    // (point, nth pass, permits held when killed) for a child that does acquire_many(2)
    // then drops it (two give-backs).
    let cases = [
        ("sem.tracked.before_take", 1, 0),
        ("sem.tracked.after_take", 1, 1),
        ("sem.tracked.before_take", 2, 1),
        ("sem.tracked.after_take", 2, 2),
        ("sem.tracked.before_give_back", 1, 2),
        ("sem.tracked.after_give_back", 1, 1),
        ("sem.tracked.before_give_back", 2, 1),
        ("sem.tracked.after_give_back", 2, 0),
    ];
    let sem = Shared::anonymous(Semaphore::tracked(4).unwrap()).unwrap();
    for (point, nth, held) in cases {
        let mut child = fork(|| -> () {
            ipc_shm::crash::arm(point, nth);
            drop(sem.acquire_many(2).unwrap());
            panic!("crash point {point}:{nth} never fired");
        });
        child.assert_signaled(libc::SIGKILL);
        let l = sem.ledger().unwrap();
        assert_eq!(l.held_by_dead, held, "{point}:{nth}: {l:?}");
        assert_eq!(l.free + l.held_by_dead, 4, "{point}:{nth}: {l:?}");
        assert_eq!(sem.recover().unwrap(), held, "{point}:{nth}");
        assert_eq!(sem.value(), 4, "{point}:{nth}");
    }
}

/// A tracked semaphore in its own named segment, held by an unrelated process (a re-exec of
/// this binary) that is killed: a blocked acquirer gets the permits within the poll interval.
#[test]
fn named_tracked_semaphore_dead_unrelated_holder() {
    let _w = watchdog(Duration::from_secs(60), "named tracked");
    let name = unique_name("sem-named");
    let sem = Shared::create(&name, Semaphore::tracked(3).unwrap()).unwrap();
    let mut holder = spawn_role("sem-holder", &[&name, "3"]);
    assert_eq!(holder.recv_line(LINE).unwrap(), "held");
    assert!(sem.try_acquire().unwrap().is_none());
    std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            let t = Instant::now();
            let p = sem.acquire_many_timeout(3, Duration::from_secs(10)).unwrap();
            (p.map(|p| p.count()), t.elapsed())
        });
        std::thread::sleep(Duration::from_millis(20)); // let it block (fault timing)
        holder.kill();
        let (got, waited) = waiter.join().unwrap();
        assert_eq!(got, Some(3), "the dead holder's permits never reached the blocked waiter");
        eprintln!("blocked waiter got the dead holder's permits after {waited:?}");
    });
    holder.assert_signaled(libc::SIGKILL);
    assert_eq!(sem.value(), 3);
    drop(sem);
    leak_check(&name);
}

/// S2: a waiter killed while blocked consumes no permit; a later release wakes a live one.
#[test]
fn killed_waiter_consumes_no_permit() {
    let _w = watchdog(Duration::from_secs(120), "killed waiter");
    for tracked in [false, true] {
        let sem = Shared::anonymous(if tracked {
            Semaphore::tracked(1).unwrap()
        } else {
            Semaphore::new(1).unwrap()
        })
        .unwrap();
        for round in 0..5 {
            let held = sem.acquire().unwrap();
            let mut doomed = fork(|| -> () {
                let _ = sem.acquire_timeout(Duration::from_secs(30));
                panic!("the doomed waiter got a permit");
            });
            let mut live = fork(|| {
                let p = sem.acquire_timeout(Duration::from_secs(20)).unwrap();
                assert!(p.is_some(), "the live waiter was never woken");
            });
            ipc_testkit::wait_until_sleeping(doomed.pid());
            ipc_testkit::wait_until_sleeping(live.pid());
            doomed.kill();
            doomed.assert_signaled(libc::SIGKILL);
            let t = Instant::now();
            drop(held);
            live.assert_success_within(Duration::from_secs(5));
            assert!(
                t.elapsed() < Duration::from_secs(1),
                "tracked={tracked} round {round}: live waiter slept {:?}",
                t.elapsed()
            );
            assert_eq!(sem.value(), 1, "tracked={tracked} round {round}: a permit went missing");
        }
    }
}

/// A waiter killed asleep on an event leaves its "someone waits" flag behind; the next `set`
/// pays one wake-up for it and clears the flag, so later sets with nobody waiting are back to
/// one CAS (the flag gates the wake-up; a count of sleepers would never come down).
#[test]
fn a_killed_event_waiter_costs_the_next_set_only() {
    let _w = watchdog(Duration::from_secs(60), "killed event waiter");
    let ev = Shared::anonymous(Event::new()).unwrap();
    let mut doomed = fork(|| -> () {
        ev.wait_timeout(Duration::from_secs(30));
        panic!("the doomed waiter returned");
    });
    ipc_testkit::wait_until_sleeping(doomed.pid());
    assert!(ev.has_waiters());
    doomed.kill();
    doomed.assert_signaled(libc::SIGKILL);
    assert!(ev.has_waiters(), "the killed waiter's flag stays until a set");
    ev.set();
    assert!(!ev.has_waiters(), "the set cleared the flag");
    ev.clear();
    ev.set();
    assert!(!ev.has_waiters());
    // And a live waiter after that is still woken.
    ev.clear();
    let mut live = fork(|| assert!(ev.wait_timeout(Duration::from_secs(20)), "never woken"));
    ipc_testkit::wait_until_sleeping(live.pid());
    ev.set();
    live.assert_success_within(Duration::from_secs(5));
}

/// S3: 2 posters and 2 waiters in separate processes; every post matched, no waiter stuck
/// for more than 1 s, final count exact.
#[test]
fn lost_wakeup_stress_two_posters_two_waiters() {
    let ops = fault::rounds(100_000, 10_000_000) as u64;
    let _w = watchdog(
        Duration::from_secs(if fault::soak() { 3600 } else { 300 }),
        "lost wake-up stress",
    );
    let sem = Shared::anonymous(Semaphore::new(0).unwrap()).unwrap();
    let got = ctl();
    let per = ops / 2;
    let t = Instant::now();
    let mut kids: Vec<Child> = Vec::new();
    for w in 0..2usize {
        let (sem, got) = (&sem, &got);
        kids.push(fork(move || -> Result<(), String> {
            for i in 0..per {
                match sem.acquire_timeout(Duration::from_secs(1)) {
                    Ok(Some(p)) => p.forget(),
                    Ok(None) => {
                        return Err(format!(
                            "waiter {w} stuck > 1 s at op {i} (value {})",
                            sem.value()
                        ));
                    }
                    Err(e) => return Err(e.to_string()),
                }
                got.words[w].fetch_add(1, Ordering::Relaxed);
            }
            send_line(&voluntary_switches().to_string());
            Ok(())
        }));
    }
    // Both waiters asleep on the empty semaphore before any post: on a loaded machine the
    // posters could otherwise run first and leave nothing to wait for.
    for k in &kids {
        ipc_testkit::wait_until_sleeping(k.pid());
    }
    for p in 0..2u64 {
        let sem = &sem;
        kids.push(fork(move || {
            for i in 0..per {
                sem.release().unwrap();
                if (i + p) % 64 == 0 {
                    std::thread::yield_now(); // let the waiters fall asleep sometimes
                }
            }
        }));
    }
    let mut slept = 0;
    for k in &mut kids[..2] {
        slept += k
            .recv_line(Duration::from_secs(if fault::soak() { 3000 } else { 240 }))
            .unwrap()
            .parse::<u64>()
            .unwrap();
    }
    for k in &mut kids {
        k.assert_success_within(Duration::from_secs(60));
    }
    let taken = got.words[0].load(Ordering::Relaxed) + got.words[1].load(Ordering::Relaxed);
    assert_eq!(taken, ops);
    assert_eq!(sem.value(), 0, "final count");
    eprintln!(
        "{ops} posts matched by 2 waiters in {:?}; the waiters slept {slept} times",
        t.elapsed()
    );
    assert!(slept > 0, "the waiters never slept: no wake-up was tested");
}

/// Voluntary context switches of this process so far: how often it slept.
fn voluntary_switches() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// S4: a peer writes garbage (u32::MAX, max + 1) into a bounded semaphore's count: release
/// errors, acquire never grants more than max.
#[test]
fn garbage_count_from_a_peer() {
    const MAX: u32 = 4;
    for garbage in [u32::MAX, MAX + 1, 0x7FFF_FFFF] {
        let sem = Shared::anonymous(BoundedSemaphore::with_value(1, MAX).unwrap()).unwrap();
        let shm_base = sem.shm().as_ptr().as_ptr() as usize;
        let body = std::ptr::from_ref::<BoundedSemaphore>(&sem) as usize - shm_base;
        let mut peer = fork(|| {
            // SAFETY: this child takes no reference into the semaphore; it only scribbles.
            unsafe { sem.shm().write_at_shared(body, &garbage.to_ne_bytes()) }.unwrap()
        });
        peer.assert_success();
        assert!(matches!(sem.release(), Err(Error::Overflow { .. })), "{garbage:#x}");
        assert!(sem.value() <= MAX);
        // Acquirers in another process: at most MAX granted in all.
        let granted = ctl();
        let mut taker = fork(|| {
            let mut held = Vec::new();
            while let Some(p) = sem.try_acquire().unwrap() {
                held.push(p);
                granted.words[0].fetch_add(1, Ordering::SeqCst);
                assert!(held.len() <= MAX as usize);
            }
            held.into_iter().for_each(|p| p.forget());
        });
        taker.assert_success();
        assert_eq!(granted.words[0].load(Ordering::SeqCst), u64::from(MAX), "{garbage:#x}");
        sem.release_many(MAX).unwrap();
        assert!(sem.release().is_err());
    }
}

/// The byte offset of `obj` inside its segment (for a peer that scribbles on its words).
fn body_offset<T: ShmSafe>(obj: &Shared<T>) -> usize {
    std::ptr::from_ref::<T>(obj) as usize - obj.shm().as_ptr().as_ptr() as usize
}

/// A forked peer writes `words` (offset in the object, value) into `obj`, as a buggy or
/// hostile process would.
fn scribble<T: ShmSafe>(obj: &Shared<T>, words: &[(usize, u32)]) {
    let body = body_offset(obj);
    let mut peer = fork(|| {
        for &(at, value) in words {
            // SAFETY: this child takes no reference into the object; it only scribbles.
            unsafe { obj.shm().write_at_shared(body + at, &value.to_ne_bytes()) }.unwrap();
        }
    });
    peer.assert_success();
}

/// The `u32` at offset `at` of `obj`.
fn word_at<T: ShmSafe>(obj: &Shared<T>, at: usize) -> u32 {
    let mut b = [0u8; 4];
    // SAFETY: a copy out of the mapping; nothing borrows the bytes.
    unsafe { obj.shm().read_at_shared(body_offset(obj) + at, &mut b) }.unwrap();
    u32::from_ne_bytes(b)
}

/// Garbage owner words (values that are no owner id, written by a peer) get the family's
/// documented outcome: liveness calls them `Unknown`, which is never recovered. Semaphore: a
/// garbage ledger word is never taken over (the dead holder's word beside it is), an acquirer
/// waits for it until its deadline, and the word is left as it was. Barrier: a garbage
/// arrival record breaks nothing; the waiting party times out at its deadline, not earlier.
#[test]
fn garbage_owner_words_are_waited_for_never_reclaimed() {
    const LEDGER: usize = 64; // offset of the ledger in a Semaphore
    const ARRIVALS: usize = 64; // offset of the arrival table in a Barrier
    const GARBAGE: u32 = 0x4000_1234; // bit 30: never an owner id
    const WAIT: Duration = Duration::from_millis(300);
    let _w = watchdog(Duration::from_secs(120), "garbage owner words");
    let sem = Shared::anonymous(Semaphore::tracked(3).unwrap()).unwrap();
    let mut live = fork(|| {
        sem.acquire().unwrap().forget();
        send_line("held");
        let _ = recv_line(Duration::from_secs(60));
    });
    assert_eq!(live.recv_line(LINE).unwrap(), "held");
    fork(|| sem.acquire().unwrap().forget()).assert_success(); // exits holding one: dead
    let free = (0..3).map(|i| LEDGER + 4 * i).find(|&at| word_at(&sem, at) == 0).unwrap();
    scribble(&sem, &[(free, GARBAGE)]);
    let l = sem.ledger().unwrap();
    assert_eq!((l.free, l.held_by_live, l.held_by_dead, l.held_by_unknown), (0, 1, 1, 1), "{l:?}");
    let mut taker = fork(|| -> Result<(), String> {
        // The dead holder's permit comes back; the garbage one does not, ever.
        let p = sem.acquire_timeout(Duration::from_secs(10)).unwrap().ok_or("dead one's permit")?;
        let t = Instant::now();
        if sem.acquire_timeout(WAIT).unwrap().is_some() {
            return Err("a garbage word was taken over".into());
        }
        if t.elapsed() < WAIT {
            return Err(format!("gave up after {:?}, before the deadline", t.elapsed()));
        }
        if sem.recover().unwrap() != 0 {
            return Err("recover() reclaimed a garbage word".into());
        }
        drop(p);
        Ok(())
    });
    taker.assert_success();
    let l = sem.ledger().unwrap();
    assert_eq!((l.free, l.held_by_live, l.held_by_dead, l.held_by_unknown), (1, 1, 0, 1), "{l:?}");
    assert_eq!(sem.recovered(), 1);
    assert_eq!(word_at(&sem, free) & 0x7FFF_FFFF, GARBAGE, "the garbage word was rewritten");
    live.kill();
    live.assert_signaled(libc::SIGKILL);

    let barrier = Shared::anonymous(Barrier::new(3).unwrap()).unwrap();
    // Records of generation 0 (the current one) naming owners that cannot exist.
    scribble(&barrier, &[(ARRIVALS, GARBAGE), (ARRIVALS + 8, u32::MAX)]);
    let mut party = fork(|| -> Result<(), String> {
        let t = Instant::now();
        match barrier.wait_timeout(WAIT) {
            Err(BarrierError::Timeout) if t.elapsed() >= WAIT => Ok(()),
            other => Err(format!("{other:?} after {:?}", t.elapsed())),
        }
    });
    party.assert_success();
    assert!(barrier.is_broken(), "a timeout breaks the barrier, as documented");
}

/// Barrier: 3 processes x 10^4 generations, one leader per generation, nobody through
/// before all arrived.
#[test]
fn barrier_three_processes_many_generations() {
    let gens = fault::rounds(10_000, 100_000) as u64;
    let _w = watchdog(Duration::from_secs(600), "barrier generations");
    let b = Shared::anonymous(Barrier::new(3).unwrap()).unwrap();
    let c = ctl();
    let run = |who: usize| -> Result<(), String> {
        for g in 0..gens {
            c.words[0].fetch_add(1, Ordering::SeqCst);
            let r = b
                .wait_timeout(Duration::from_secs(20))
                .map_err(|e| format!("party {who} gen {g}: {e}"))?;
            let arrived = c.words[0].load(Ordering::SeqCst);
            if arrived < 3 * (g + 1) {
                return Err(format!("party {who} left gen {g} with {arrived} arrivals"));
            }
            if r.is_leader() {
                c.words[1].fetch_add(1, Ordering::SeqCst);
            }
        }
        Ok(())
    };
    let t = Instant::now();
    let mut a = fork(|| run(1));
    let mut bb = fork(|| run(2));
    run(0).unwrap();
    a.assert_success();
    bb.assert_success();
    assert_eq!(c.words[1].load(Ordering::SeqCst), gens, "one leader per generation");
    eprintln!("3 processes x {gens} generations in {:?}", t.elapsed());
}

/// Barrier: a party killed while waiting breaks it for the others within 1 s; reset
/// recovers and three fresh processes pass a generation.
#[test]
fn barrier_dead_party_breaks_it_and_reset_recovers() {
    let _w = watchdog(Duration::from_secs(120), "barrier dead party");
    let b = Shared::anonymous(Barrier::new(3).unwrap()).unwrap();
    let mut doomed = fork(|| -> () {
        let _ = b.wait_timeout(Duration::from_secs(30));
        panic!("the doomed party returned");
    });
    let mut other = fork(|| {
        assert_eq!(b.wait_timeout(Duration::from_secs(30)), Err(BarrierError::Broken));
        send_line("broken");
    });
    while b.n_waiting() < 2 {
        std::thread::yield_now();
    }
    ipc_testkit::wait_until_sleeping(doomed.pid());
    ipc_testkit::wait_until_sleeping(other.pid());
    let t = Instant::now();
    doomed.kill();
    assert_eq!(other.recv_line(Duration::from_secs(10)).unwrap(), "broken");
    let took = t.elapsed();
    other.assert_success();
    doomed.assert_signaled(libc::SIGKILL);
    eprintln!("a dead party broke the barrier for the others after {took:?}");
    assert!(took < Duration::from_secs(1), "broken only after {took:?}");
    assert_eq!(b.wait_timeout(Duration::from_secs(1)), Err(BarrierError::Broken));
    b.reset();
    let mut kids: Vec<Child> =
        (0..2).map(|_| fork(|| b.wait_timeout(Duration::from_secs(20)).map(|_| ()))).collect();
    b.wait_timeout(Duration::from_secs(20)).unwrap();
    for k in &mut kids {
        k.assert_success();
    }
}

/// Event: set wakes waiters parked in 3 processes; a set followed at once by clear still
/// releases every waiter that was blocked, round after round.
#[test]
fn event_wakes_waiters_in_three_processes() {
    let rounds = fault::rounds(100, 2000) as u32;
    let _w = watchdog(Duration::from_secs(300), "event waiters");
    let ev = Shared::anonymous(Event::new()).unwrap();
    let bar = Shared::anonymous(Barrier::new(4).unwrap()).unwrap();
    let c = ctl();
    let waiter = |i: usize| -> Result<(), String> {
        for r in 0..rounds {
            c.words[3 + i].fetch_add(1, Ordering::SeqCst);
            if !ev.wait_timeout(Duration::from_secs(10)) {
                return Err(format!("waiter {i} not woken in round {r}"));
            }
            c.words[i].fetch_add(1, Ordering::SeqCst);
            bar.wait_timeout(Duration::from_secs(10)).map_err(|e| e.to_string())?;
        }
        Ok(())
    };
    let mut kids: Vec<Child> = (0..3).map(|i| fork(move || waiter(i))).collect();
    let pids: Vec<u32> = kids.iter().map(Child::pid).collect();
    for r in 0..rounds {
        // All three are past the previous round's barrier and asleep in `wait`.
        for (i, &p) in pids.iter().enumerate() {
            while c.words[3 + i].load(Ordering::SeqCst) < u64::from(r) + 1 {
                std::thread::yield_now();
            }
            ipc_testkit::wait_until_sleeping(p);
        }
        ev.set();
        if r % 2 == 0 {
            ev.clear(); // a waiter blocked before the set must still return true
        }
        for i in 0..3 {
            let t = Instant::now();
            while c.words[i].load(Ordering::SeqCst) < u64::from(r) + 1 {
                assert!(t.elapsed() < Duration::from_secs(10), "round {r}: waiter {i} not woken");
                std::thread::yield_now();
            }
        }
        ev.clear();
        bar.wait_timeout(Duration::from_secs(10)).unwrap();
        for i in 0..3 {
            assert_eq!(c.words[i].load(Ordering::SeqCst), u64::from(r) + 1, "round {r} waiter {i}");
        }
    }
    for k in &mut kids {
        k.assert_success();
    }
}

const C_PROG: &str = r#"
#include <fcntl.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
int main(int argc, char **argv) {
    if (argc != 4) return 2;
    const char *name = argv[1], *what = argv[2];
    int n = atoi(argv[3]);
    sem_t *s;
    if (strcmp(what, "create") == 0) s = sem_open(name, O_CREAT | O_EXCL, 0600, n);
    else s = sem_open(name, 0);
    if (s == SEM_FAILED) { perror("sem_open"); return 3; }
    if (strcmp(what, "post") == 0) {
        for (int i = 0; i < n; i++) if (sem_post(s) != 0) { perror("sem_post"); return 4; }
    } else if (strcmp(what, "wait") == 0) {
        for (int i = 0; i < n; i++) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 10;
            if (sem_timedwait(s, &ts) != 0) { perror("sem_timedwait"); return 5; }
        }
    }
    int v = -1;
    sem_getvalue(s, &v);
    printf("%d\n", v);
    sem_close(s);
    return 0;
}
"#;

fn c_prog() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ipc-sem-c-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("named.c");
    let exe = dir.join("named");
    std::fs::write(&src, C_PROG).unwrap();
    let out = std::process::Command::new("gcc")
        .args(["-O1", "-o"])
        .arg(&exe)
        .arg(&src)
        .arg("-pthread")
        .output()
        .expect("gcc is on the machine");
    assert!(out.status.success(), "gcc: {}", String::from_utf8_lossy(&out.stderr));
    exe
}

fn run_c(exe: &std::path::Path, name: &str, what: &str, n: u32) -> i32 {
    let out = std::process::Command::new(exe)
        .args([&format!("/{name}"), what, &n.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "C {what} {n}: {:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// NamedSemaphore shared with a C program compiled here with gcc, both ways.
#[test]
fn named_semaphore_interop_with_c() {
    let _w = watchdog(Duration::from_secs(120), "named C interop");
    let exe = c_prog();
    let name = unique_name("named-c");
    let sem = NamedSemaphore::create(&name, 0).unwrap();
    assert_eq!(run_c(&exe, &name, "post", 3), 3);
    for _ in 0..3 {
        assert!(sem.acquire_timeout(Duration::from_secs(5)).unwrap());
    }
    std::thread::scope(|s| {
        let c = s.spawn(|| run_c(&exe, &name, "wait", 2));
        std::thread::sleep(Duration::from_millis(20)); // let C block (timing only)
        sem.release().unwrap();
        sem.release().unwrap();
        assert_eq!(c.join().unwrap(), 0);
    });
    assert_eq!(sem.value().unwrap(), 0);
    // An unrelated Rust process posts to it too.
    let mut poster = spawn_role("named-poster", &[&name, "2"]);
    poster.assert_success();
    assert_eq!(sem.value().unwrap(), 2);
    NamedSemaphore::unlink(&name).unwrap();
    // C creates (mode 0600), we open: our owner and mode checks accept it.
    let name2 = unique_name("named-c2");
    assert_eq!(run_c(&exe, &name2, "create", 5), 5);
    let theirs = NamedSemaphore::open(&name2).unwrap();
    assert_eq!(theirs.value().unwrap(), 5);
    assert!(theirs.try_acquire().unwrap());
    assert_eq!(run_c(&exe, &name2, "wait", 4), 0);
    NamedSemaphore::unlink(&name2).unwrap();
    assert!(!NamedSemaphore::exists(&name) && !NamedSemaphore::exists(&name2));
    let _ = std::fs::remove_dir_all(exe.parent().unwrap());
}

/// NamedSemaphore shared with Python's posix_ipc (installed by .ci/deps/sem.sh).
#[test]
fn named_semaphore_interop_with_python() {
    let _w = watchdog(Duration::from_secs(120), "named Python interop");
    let have = std::process::Command::new("python3")
        .args(["-c", "import posix_ipc"])
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        eprintln!("skipped: python3 with posix_ipc is not installed (.ci/deps/sem.sh installs it)");
        return;
    }
    let name = unique_name("named-py");
    let sem = NamedSemaphore::create(&name, 1).unwrap();
    let script = format!(
        "import posix_ipc\n\
         s = posix_ipc.Semaphore('/{name}')\n\
         s.acquire(10)\n\
         s.release(); s.release(); s.release()\n\
         print(s.value)\n\
         s.close()\n"
    );
    let out = std::process::Command::new("python3").args(["-c", &script]).output().unwrap();
    assert!(out.status.success(), "python: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "3");
    assert_eq!(sem.value().unwrap(), 3);
    // Python creates, we open and take what it posted.
    let name2 = unique_name("named-py2");
    let script = format!(
        "import posix_ipc\n\
         s = posix_ipc.Semaphore('/{name2}', posix_ipc.O_CREX, 0o600, 2)\n\
         s.close()\n"
    );
    let out = std::process::Command::new("python3").args(["-c", &script]).output().unwrap();
    assert!(out.status.success(), "python: {}", String::from_utf8_lossy(&out.stderr));
    let theirs = NamedSemaphore::open(&name2).unwrap();
    assert!(theirs.try_acquire().unwrap() && theirs.try_acquire().unwrap());
    assert!(!theirs.try_acquire().unwrap());
    NamedSemaphore::unlink(&name).unwrap();
    NamedSemaphore::unlink(&name2).unwrap();
}

/// A created named semaphore has exactly the asked mode whatever the umask (in a child: the
/// umask is per process).
#[test]
fn named_semaphore_mode_is_exact_whatever_the_umask() {
    fork(|| {
        use std::os::unix::fs::PermissionsExt;
        for (umask, mode) in [(0o000, 0o600), (0o077, 0o660), (0o022, 0o640)] {
            // SAFETY: umask has no preconditions; this child is single-threaded.
            unsafe { libc::umask(umask) };
            let name = unique_name("named-mode");
            let _s = NamedSemaphore::create_with_mode(&name, 0, mode).unwrap();
            let m = std::fs::metadata(format!("/dev/shm/sem.{name}")).unwrap().permissions().mode();
            NamedSemaphore::unlink(&name).unwrap();
            assert_eq!(m & 0o777, mode, "umask {umask:o}");
        }
    })
    .assert_success();
}

/// EINTR: a timed acquire under a storm of EINTRs ends at its deadline with no
/// permit taken; a blocking acquire ends with the permit the parent releases.
#[test]
fn semaphore_waits_survive_a_signal_storm() {
    let _w = watchdog(Duration::from_secs(60), "sem EINTR");
    let sem = Shared::anonymous(Semaphore::new(0).unwrap()).unwrap();
    let timeout = Duration::from_millis(300);
    let mut child = fork(|| {
        interrupt::storm_child(
            timeout,
            || assert!(sem.acquire_timeout(timeout).unwrap().is_none(), "a permit from nowhere"),
            || sem.acquire().unwrap().forget(),
        );
    });
    let (sent, caught) = interrupt::storm_parent(&mut child, || sem.release().unwrap());
    assert_eq!(sem.value(), 0, "the released permit was taken exactly once");
    eprintln!("semaphore waits under a signal storm: {sent} signals sent, {caught} caught");
}

// ---------------------------------------------------------------------------------------
// Permits inherited over fork, and a party without an owner id

#[test]
fn permits_dropped_in_a_forked_child_release_nothing() {
    let _w = watchdog(Duration::from_secs(60), "fork permits");
    ipc_shm::liveness::current().unwrap();
    for tracked in [false, true] {
        let sem = Shared::anonymous(if tracked {
            Semaphore::tracked(1).unwrap()
        } else {
            Semaphore::new(1).unwrap()
        })
        .unwrap();
        let p = sem.acquire().unwrap();
        fork_inheriting(&p, drop).assert_success();
        assert_eq!(sem.value(), 0, "tracked={tracked}: the child gave back the parent's permit");
        drop(p);
        assert_eq!(sem.value(), 1, "tracked={tracked}");
    }
    let sem = Shared::anonymous(BoundedSemaphore::new(2).unwrap()).unwrap();
    let p = sem.acquire_many(2).unwrap();
    fork_inheriting(&p, drop).assert_success();
    assert_eq!(sem.value(), 0, "bounded: the child gave back the parent's permits");
    drop(p);
    assert_eq!(sem.value(), 2);
}

#[test]
fn a_barrier_party_without_an_owner_id_does_not_arrive() {
    let _w = watchdog(Duration::from_secs(60), "barrier unregistered");
    ipc_shm::liveness::current().unwrap();
    let b = Shared::anonymous(Barrier::new(3).unwrap()).unwrap();
    // A party that cannot register (no fd left for the registry) must not arrive unrecorded:
    // if it then died, the others could never learn it and would wait for ever.
    let mut child = fork(|| -> Result<(), String> {
        let lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: a valid rlimit struct; lowering our own limit is always allowed.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const lim) }, 0);
        match b.wait_timeout(Duration::from_secs(1)) {
            Err(BarrierError::Unregistered) => Ok(()),
            other => Err(format!("expected Unregistered, got {other:?}")),
        }
    });
    child.assert_success();
    assert_eq!(b.n_waiting(), 0);
    assert!(!b.is_broken());
}

/// A semaphore file planted by another user (here a FIFO owned by uid 65534) is refused as
/// untrusted before `sem_open` touches it: not opened, not mapped.
#[test]
fn a_named_semaphore_planted_by_another_user_is_refused_before_it_is_opened() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to plant a file owned by another uid");
        return;
    }
    let name = unique_name("planted-sem");
    let path = format!("/dev/shm/sem.{name}");
    let cpath = std::ffi::CString::new(path.clone()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(cpath.as_ptr(), 0o666) }, 0);
    std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
    let got = NamedSemaphore::open_with_mode(&name, 0o777);
    std::fs::remove_file(&path).unwrap();
    match got {
        Err(Error::Untrusted { what, .. }) => assert!(what.contains("65534"), "{what}"),
        other => panic!("expected Untrusted naming the owner, got {other:?}"),
    }
}

/// A forked child dropping its copy of the creator's named semaphores must not unlink them.
#[test]
fn a_forked_child_dropping_the_creators_semaphores_keeps_the_names() {
    let _w = watchdog(Duration::from_secs(60), "fork unlink sem");
    let name = unique_name("fork-unlink-sem");
    let sem = Shared::create(&name, Semaphore::tracked(2).unwrap()).unwrap();
    fork_inheriting(&sem, drop).assert_success();
    assert!(Shared::<Semaphore>::open(&name).is_ok(), "the child's drop unlinked the semaphore");
    let posix = unique_name("fork-unlink-posix");
    let named = NamedSemaphore::create(&posix, 1).unwrap();
    fork_inheriting(&named, drop).assert_success();
    assert!(NamedSemaphore::exists(&posix));
    drop((sem, named));
    NamedSemaphore::unlink(&posix).unwrap();
    assert!(audit::shm_entries(&name).is_empty());
}
