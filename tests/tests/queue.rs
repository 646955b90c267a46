//! Cross-process suite of ipc-queue: conservation under contention, random SIGKILLs of
//! producers and consumers, crash points inside the reserve-commit window, close waking
//! parked processes, unrelated processes sharing a named queue.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ipc_queue::{Queue, QueueOptions, RecvError, RecvTimeoutError, SendError, SpscQueue};
use ipc_shm::{Shm, liveness};
use ipc_testkit::{
    Child, audit, fault, fork, fork_inheriting, fork_named, recv_line, send_line, spawn_role,
    unique_name, watchdog,
};

use ipc_testkit::interrupt;

ipc_testkit::roles! {
    "queue-echo" => roles::echo,
    "queue-echo-no-membarrier" => roles::echo_no_membarrier,
}

const LINE: Duration = Duration::from_secs(20);

mod roles {
    use super::*;

    /// args: name. Opens the named queue, receives one message and sends it back doubled.
    pub(super) fn echo(args: &[String]) {
        let q = Queue::open(&args[0]).unwrap();
        let m = q.recv_timeout(LINE).unwrap();
        q.send(&[m.clone(), m].concat()).unwrap();
        send_line("echoed");
    }

    /// args: ping name, pong name, rounds. A process that cannot use membarrier (a seccomp
    /// filter, as some sandboxes have) echoes every ping back as a pong.
    pub(super) fn echo_no_membarrier(args: &[String]) {
        ipc_testkit::seccomp::deny(libc::SYS_membarrier, libc::EPERM).unwrap();
        let (ping, pong) = (Queue::open(&args[0]).unwrap(), Queue::open(&args[1]).unwrap());
        let rounds: u64 = args[2].parse().unwrap();
        send_line("ready");
        for i in 0..rounds {
            // A lost wake-up leaves this receive asleep: the parent's deadline reports it.
            let m = ping.recv_timeout(LINE).unwrap_or_else(|e| panic!("round {i}: {e}"));
            pong.send(&m).unwrap();
        }
    }
}

/// Monotonic clock in ns, comparable across processes (Instant's inside is private).
fn mono_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn fnv(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// A message: `[id: u64][len: u32][check: u32][pattern]`, `check` over everything else.
fn encode(out: &mut [u8], id: u64) {
    let len = out.len() as u32;
    out[..8].copy_from_slice(&id.to_le_bytes());
    out[8..12].copy_from_slice(&len.to_le_bytes());
    for (i, b) in out[16..].iter_mut().enumerate() {
        *b = (id as usize).wrapping_mul(31).wrapping_add(i) as u8;
    }
    let mut c = fnv(&out[16..]) ^ (id as u32) ^ (id >> 32) as u32 ^ len;
    if c == 0 {
        c = 1;
    }
    out[12..16].copy_from_slice(&c.to_le_bytes());
}

/// The id of an intact message; `None` if torn or corrupt.
fn verify(m: &[u8]) -> Option<u64> {
    if m.len() < 16 {
        return None;
    }
    let id = u64::from_le_bytes(m[..8].try_into().unwrap());
    let len = u32::from_le_bytes(m[8..12].try_into().unwrap());
    let c = u32::from_le_bytes(m[12..16].try_into().unwrap());
    let mut want = fnv(&m[16..]) ^ (id as u32) ^ (id >> 32) as u32 ^ len;
    if want == 0 {
        want = 1;
    }
    (len as usize == m.len() && c == want).then_some(id)
}

/// Shared test memory: `words` u32 counters/bitmaps in an anonymous segment.
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

    /// Set bit `bit` of the bitmap starting at word `base`; `true` if it was already set.
    fn set_bit(&self, base: usize, bit: u64) -> bool {
        let w = self.word(base + (bit / 32) as usize);
        w.fetch_or(1 << (bit % 32), Ordering::SeqCst) & (1 << (bit % 32)) != 0
    }

    fn bit(&self, base: usize, bit: u64) -> bool {
        self.word(base + (bit / 32) as usize).load(Ordering::SeqCst) & (1 << (bit % 32)) != 0
    }
}

fn join_all(children: &mut [Child], deadline: Duration) {
    for c in children {
        c.assert_success_within(deadline);
    }
}

// ---------------------------------------------------------------------------------------
// Conservation under contention

fn conservation(producers: u64, consumers: usize, n: u64) {
    let per = n / producers;
    let total = per * producers;
    let q = Queue::anonymous(64, 512).unwrap();
    // Bitmap of received ids from word 16; word 0: duplicates, 1: corrupt, 2: order breaks.
    let board = Board::new(16 + (total as usize).div_ceil(32));
    let mut rng = fault::seeded(&format!("conservation P{producers} C{consumers}"));
    let seeds: Vec<u64> = (0..producers).map(|_| rng.next_u64()).collect();
    let mut kids = Vec::new();
    for c in 0..consumers {
        let (q, board) = (&q, &board);
        kids.push(fork_named(&format!("consumer {c}"), move || {
            let mut last = vec![None::<u64>; producers as usize];
            let mut buf = Vec::new();
            loop {
                match q.recv_into(&mut buf) {
                    Ok(_) => {}
                    Err(RecvError::Closed) => return,
                    // Every producer that sent so far is gone (they finish at different
                    // times, and the last may not have started): more may come until close.
                    Err(RecvError::Disconnected) => continue,
                    Err(e) => panic!("recv: {e}"),
                }
                let Some(id) = verify(&buf) else {
                    board.word(1).fetch_add(1, Ordering::SeqCst);
                    continue;
                };
                let (p, seq) = ((id / per) as usize, id % per);
                if last[p].is_some_and(|l| l >= seq) {
                    board.word(2).fetch_add(1, Ordering::SeqCst);
                }
                last[p] = Some(seq);
                if board.set_bit(16, id) {
                    board.word(0).fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    let mut prods = Vec::new();
    for (p, seed) in seeds.into_iter().enumerate() {
        let q = &q;
        prods.push(fork_named(&format!("producer {p}"), move || {
            let mut rng = fault::Rng::new(seed);
            let mut buf = vec![0u8; 512];
            for seq in 0..per {
                // Mostly small messages (the suite runs oversubscribed on 2 cores).
                let len = if rng.chance(1, 16) { rng.range(16, 513) } else { rng.range(16, 64) };
                let m = &mut buf[..len as usize];
                encode(m, p as u64 * per + seq);
                q.send(m).unwrap();
            }
        }));
    }
    join_all(&mut prods, Duration::from_secs(120));
    q.close();
    join_all(&mut kids, Duration::from_secs(60));
    let missing = (0..total).filter(|&id| !board.bit(16, id)).count();
    let (dups, corrupt, order) = (
        board.word(0).load(Ordering::SeqCst),
        board.word(1).load(Ordering::SeqCst),
        board.word(2).load(Ordering::SeqCst),
    );
    eprintln!(
        "conservation P{producers} C{consumers}: {total} messages, {missing} lost, {dups} duplicated, \
         {corrupt} corrupt, {order} out of order; stats {:?}",
        q.stats()
    );
    assert_eq!((missing, dups, corrupt, order), (0, 0, 0, 0));
    assert_eq!(q.stats().corrupt, 0);
    assert!(q.is_empty());
}

#[test]
fn mpmc_conservation_under_contention() {
    let n = fault::rounds(100_000, 10_000_000) as u64;
    let _w = watchdog(Duration::from_secs(if fault::soak() { 3600 } else { 600 }), "conservation");
    let t = Instant::now();
    for p in [1, 2, 4] {
        for c in [1, 2, 4] {
            let t0 = Instant::now();
            conservation(p, c, n);
            eprintln!("  P{p} C{c}: {:?}", t0.elapsed());
        }
    }
    eprintln!("conservation: 9 configs x {n} messages in {:?}", t.elapsed());
}

#[test]
fn spsc_keeps_total_order_across_processes() {
    let n = fault::rounds(100_000, 10_000_000) as u64;
    let _w = watchdog(Duration::from_secs(600), "spsc order");
    let q = SpscQueue::anonymous(64, 512).unwrap();
    let mut cons = fork(|| {
        let mut rx = q.receiver().unwrap();
        let mut buf = Vec::new();
        for expect in 0..n {
            rx.recv_into(&mut buf).unwrap();
            assert_eq!(verify(&buf), Some(expect), "message {expect} wrong or out of order");
        }
        assert_eq!(rx.recv(), Err(RecvError::Closed));
    });
    let mut prod = fork(|| {
        let mut tx = q.sender().unwrap();
        let mut rng = fault::seeded("spsc order");
        let mut buf = vec![0u8; 512];
        for id in 0..n {
            let m = &mut buf[..rng.range(16, 512) as usize];
            encode(m, id);
            tx.send(m).unwrap();
        }
        tx.close();
    });
    prod.assert_success_within(Duration::from_secs(300));
    cons.assert_success_within(Duration::from_secs(60));
}

// ---------------------------------------------------------------------------------------
// Random SIGKILLs

/// Board layout of the kill test.
const NEXT_ID: usize = 0;
const STOP: usize = 1;
const DUPS: usize = 2;
const TORN: usize = 3;
/// The current all-producers-dead phase (0: none yet), bumped by the parent before it kills.
const EPOCH: usize = 4;
/// Consumers told `Disconnected` in the current phase, and when the last one was (µs).
const DISC_SEEN: usize = 5;
const DISC_AT: usize = 6;
const RECEIVED: usize = 64; // bitmap
const MAX_IDS: u64 = 1 << 22;
const COMMITTED: usize = RECEIVED + (MAX_IDS / 32) as usize; // bitmap

fn kill_producer(q: &Queue, board: &Board, seed: u64) -> Child {
    fork_named("producer", move || {
        let me = liveness::current().unwrap().get().to_string();
        let mut announced = false;
        let mut rng = fault::Rng::new(seed);
        while board.word(STOP).load(Ordering::SeqCst) == 0 {
            let id = u64::from(board.word(NEXT_ID).fetch_add(1, Ordering::SeqCst));
            assert!(id < MAX_IDS);
            let len = rng.range(16, 4097) as usize;
            // Zero-copy: the message is encoded inside the slot, so the reserve-commit window
            // is most of the loop and many kills land inside it (torn writes included).
            match q.reserve_timeout(len, Duration::from_millis(200)) {
                Ok(mut slot) => {
                    encode(&mut slot, id);
                    slot.commit();
                    board.set_bit(COMMITTED, id);
                }
                Err(ipc_queue::SendTimeoutError::Timeout) => {}
                // Disconnected included: a consumer is always alive here.
                Err(e) => panic!("send: {e}"),
            }
            if !announced {
                // After the first send: by now the queue lists this process as a sender.
                send_line(&me);
                announced = true;
            }
        }
        if !announced {
            send_line(&me);
        }
    })
}

/// Monotonic clock in µs, cut to 32 bits (differences taken with wrapping arithmetic).
fn mono_us32() -> u32 {
    (mono_ns() / 1000) as u32
}

fn kill_consumer(q: &Queue, board: &Board) -> Child {
    fork_named("consumer", move || {
        send_line(&liveness::current().unwrap().get().to_string());
        let mut worst = Duration::ZERO;
        let mut last_epoch = 0;
        loop {
            let t = Instant::now();
            let m = match q.recv_ref_timeout(Duration::from_millis(100)) {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => {
                    // Every producer is dead (the parent killed them all, or they left at the
                    // end): report once per phase, then wait for the next producers.
                    let epoch = board.word(EPOCH).load(Ordering::SeqCst);
                    if epoch != last_epoch {
                        last_epoch = epoch;
                        board.word(DISC_AT).store(mono_us32(), Ordering::SeqCst);
                        board.word(DISC_SEEN).fetch_add(1, Ordering::SeqCst);
                    }
                    continue;
                }
                Err(RecvTimeoutError::Closed) => break,
                Err(e) => panic!("recv: {e}"),
            };
            worst = worst.max(t.elapsed());
            match verify(&m) {
                Some(id) => {
                    if board.set_bit(RECEIVED, id) {
                        board.word(DUPS).fetch_add(1, Ordering::SeqCst);
                    }
                }
                None => {
                    board.word(TORN).fetch_add(1, Ordering::SeqCst);
                }
            }
            drop(m);
        }
        send_line(&format!("worst {}", worst.as_micros()));
    })
}

fn owner_of(child: &mut Child) -> u32 {
    child.recv_line(LINE).unwrap().parse().unwrap()
}

#[test]
fn random_sigkills_of_producers_and_consumers() {
    let kills = fault::rounds(200, 1000);
    let _w = watchdog(Duration::from_secs(if fault::soak() { 3000 } else { 600 }), "kills");
    let mut rng = fault::seeded("queue random kills");
    let q = Queue::anonymous(16, 4096).unwrap();
    let board = Board::new(COMMITTED + (MAX_IDS / 32) as usize);
    let mut producers: Vec<(Child, u32)> = Vec::new();
    let mut consumers: Vec<(Child, u32)> = Vec::new();
    for _ in 0..2 {
        let mut c = kill_producer(&q, &board, rng.next_u64());
        let id = owner_of(&mut c);
        producers.push((c, id));
        let mut c = kill_consumer(&q, &board);
        let id = owner_of(&mut c);
        consumers.push((c, id));
    }
    let (mut in_window, mut holding, mut producer_kills) = (0u64, 0u64, 0u64);
    let mut worst_recovery = Duration::ZERO;
    let (mut phases, mut worst_told, mut killed) = (0u32, 0u32, 0u64);
    for _ in 0..kills {
        std::thread::sleep(rng.duration(Duration::ZERO, Duration::from_millis(8)));
        let producer = rng.chance(1, 2);
        if producer && rng.chance(1, 8) {
            // Every producer dies: the parked consumers must take everything committed, then
            // be told Disconnected; then new producers come and the queue goes on.
            phases += 1;
            board.word(DISC_SEEN).store(0, Ordering::SeqCst);
            board.word(EPOCH).store(phases, Ordering::SeqCst);
            let before = q.stats().abandoned;
            let mut writing_all = 0;
            for (mut victim, owner) in producers.drain(..) {
                victim.signal(libc::SIGSTOP);
                assert!(victim.wait_stopped(Duration::from_secs(10)), "victim did not stop");
                writing_all += q.slots_held_by(owner).0 as u64;
                victim.kill();
                victim.join_within(Duration::from_secs(10));
                producer_kills += 1;
                killed += 1;
            }
            let killed_at = mono_us32();
            in_window += writing_all;
            let t = Instant::now();
            while board.word(DISC_SEEN).load(Ordering::SeqCst) < consumers.len() as u32 {
                assert!(
                    t.elapsed() < Duration::from_secs(10),
                    "phase {phases}: consumers were not told Disconnected"
                );
                std::thread::sleep(Duration::from_micros(200));
            }
            let told = board.word(DISC_AT).load(Ordering::SeqCst).wrapping_sub(killed_at);
            worst_told = worst_told.max((told as i32).max(0) as u32);
            // Told only once everything committed was taken: abandoned slots recovered, and
            // nothing committed unreceived but what killed consumers held.
            assert!(q.stats().abandoned >= before + writing_all, "phase {phases}: not recovered");
            let ids = u64::from(board.word(NEXT_ID).load(Ordering::SeqCst));
            let stranded = (0..ids)
                .filter(|&id| board.bit(COMMITTED, id) && !board.bit(RECEIVED, id))
                .count() as u64;
            assert!(
                stranded <= holding,
                "phase {phases}: Disconnected while {stranded} committed messages waited"
            );
            for _ in 0..2 {
                let mut c = kill_producer(&q, &board, rng.next_u64());
                let id = owner_of(&mut c);
                producers.push((c, id));
            }
            continue;
        }
        let list = if producer { &mut producers } else { &mut consumers };
        let k = rng.below(list.len() as u64) as usize;
        let (mut victim, owner) = list.swap_remove(k);
        // Freeze it, look at what it holds (exactly: it cannot move), then kill it.
        victim.signal(libc::SIGSTOP);
        assert!(victim.wait_stopped(Duration::from_secs(10)), "victim did not stop");
        let (writing, reading) = q.slots_held_by(owner);
        let before = q.stats().abandoned;
        victim.kill();
        killed += 1;
        victim.join_within(Duration::from_secs(10));
        in_window += writing as u64;
        holding += reading as u64;
        if producer {
            producer_kills += 1;
        }
        if writing > 0 {
            // Survivors skip the dead producer's slot within the recovery bound.
            let t = Instant::now();
            while q.stats().abandoned < before + writing as u64 {
                assert!(t.elapsed() < Duration::from_secs(5), "abandoned slot never recovered");
                std::thread::sleep(Duration::from_micros(200));
            }
            worst_recovery = worst_recovery.max(t.elapsed());
        }
        let mut c = if producer {
            kill_producer(&q, &board, rng.next_u64())
        } else {
            kill_consumer(&q, &board)
        };
        let id = owner_of(&mut c);
        if producer { producers.push((c, id)) } else { consumers.push((c, id)) }
    }
    board.word(STOP).store(1, Ordering::SeqCst);
    for (mut p, _) in producers {
        p.assert_success_within(Duration::from_secs(30));
    }
    let t = Instant::now();
    while !q.is_empty() {
        assert!(t.elapsed() < Duration::from_secs(30), "queue never drained: {} left", q.len());
        std::thread::sleep(Duration::from_millis(1));
    }
    q.close();
    let mut worst_wait = 0u128;
    for (mut c, _) in consumers {
        let line = c.recv_line(LINE).unwrap();
        worst_wait = worst_wait.max(line.trim_start_matches("worst ").parse().unwrap());
        c.assert_success_within(Duration::from_secs(30));
    }
    let ids = u64::from(board.word(NEXT_ID).load(Ordering::SeqCst));
    let missing =
        (0..ids).filter(|&id| board.bit(COMMITTED, id) && !board.bit(RECEIVED, id)).count() as u64;
    let delivered = (0..ids).filter(|&id| board.bit(RECEIVED, id)).count();
    let stats = q.stats();
    let (dups, torn) =
        (board.word(DUPS).load(Ordering::SeqCst), board.word(TORN).load(Ordering::SeqCst));
    eprintln!(
        "random kills: {kills} rounds, {killed} kills ({producer_kills} producers, {in_window} inside reserve-commit, \
         {holding} consumers holding a message); {delivered} delivered of {ids} ids; {missing} committed \
         but lost to consumer kills; {dups} duplicated; {torn} torn; worst recovery of a dead producer's \
         slot {worst_recovery:?}; worst consumer wait {worst_wait} us; {phases} phases with every \
         producer dead, consumers told Disconnected at worst {worst_told} us after; stats {stats:?}"
    );
    assert_eq!(dups, 0, "a message was delivered twice");
    assert_eq!(torn, 0, "a torn message was delivered");
    assert_eq!(stats.abandoned, in_window, "abandoned slots != kills inside the window");
    assert!(
        missing <= holding,
        "{missing} committed messages lost, only {holding} held by killed consumers"
    );
    assert!(stats.lost <= holding);
    assert!(worst_recovery < Duration::from_millis(500), "recovery took {worst_recovery:?}");
    assert!(
        in_window > 0 || kills < 50,
        "no kill landed inside the window: the test is not testing"
    );
    assert!(phases > 0 || kills < 50, "no phase killed every producer: the test is not testing");
}

// ---------------------------------------------------------------------------------------
// Crash points

fn die_at(q: &Queue, point: &'static str, len: usize) -> Child {
    fork_named(point, move || {
        ipc_shm::crash::arm(point, 1);
        let mut m = vec![0u8; len];
        encode(&mut m, 7);
        q.send(&m).unwrap();
        Err::<(), String>(format!("crash point {point} did not fire"))
    })
}

#[test]
fn producer_killed_inside_the_window_is_skipped_within_the_bound() {
    const { assert!(ipc_shm::crash::ENABLED) };
    let _w = watchdog(Duration::from_secs(60), "producer crash points");
    for (i, point) in
        ["queue.after_reserve", "queue.mid_copy", "queue.before_commit"].into_iter().enumerate()
    {
        let q = Queue::anonymous(4, 65536).unwrap();
        // This process is a (live) producer of the queue: the dead one is not the only one,
        // so its death is no disconnection.
        let mut m = vec![0u8; 100];
        encode(&mut m, 6);
        q.send(&m).unwrap();
        // A consumer parked on the queue once it took that message.
        let mut cons = fork(|| {
            assert_eq!(verify(&q.recv_timeout(LINE).unwrap()), Some(6));
            send_line("parked");
            let first = q.recv_timeout(LINE).unwrap();
            let got = mono_ns();
            assert_eq!(verify(&first), Some(8), "the dead producer's message was delivered");
            send_line(&got.to_string());
        });
        assert_eq!(cons.recv_line(LINE).unwrap(), "parked");
        let mut dead = die_at(&q, point, 65536);
        dead.assert_signaled(libc::SIGKILL);
        let died = mono_ns();
        // Its claimed slot is in the queue until the parked consumer's next liveness look
        // (within a slice, ~1 ms) skips it.
        assert!(q.len() <= 1, "{} slots in the queue", q.len());
        encode(&mut m, 8);
        q.send(&m).unwrap();
        let got: u64 = cons.recv_line(LINE).unwrap().parse().unwrap();
        cons.assert_success();
        let blocked = Duration::from_nanos(got.saturating_sub(died));
        eprintln!("{point}: consumer got the next message {blocked:?} after the producer died");
        assert_eq!(q.stats().abandoned, 1, "{point}");
        assert!(blocked < Duration::from_millis(500), "{point}: blocked {blocked:?}");
        assert!(q.is_empty(), "{i}");
    }
}

/// A consumer that only polls (`try_recv`, never a blocking wait) is not wedged by a producer
/// killed inside its reserve-commit window: its repeated calls that find the same slot claimed
/// ask, on the liveness schedule, whether the owner is alive, and skip the slot.
#[test]
fn a_polling_consumer_skips_a_dead_producers_slot_within_the_bound() {
    const { assert!(ipc_shm::crash::ENABLED) };
    let _w = watchdog(Duration::from_secs(60), "polling consumer, dead producer");
    let q = Queue::anonymous(4, 4096).unwrap();
    let mut dead = die_at(&q, "queue.mid_copy", 4096);
    dead.assert_signaled(libc::SIGKILL);
    let mut m = vec![0u8; 100];
    encode(&mut m, 8);
    q.try_send(&m).unwrap();
    let t = Instant::now();
    let got = loop {
        match q.try_recv() {
            Ok(m) => break m,
            Err(ipc_queue::TryRecvError::Empty) => {
                assert!(t.elapsed() < Duration::from_secs(5), "a dead producer wedged try_recv");
                std::hint::spin_loop();
            }
            Err(e) => panic!("try_recv: {e}"),
        }
    };
    let took = t.elapsed();
    eprintln!("a polling consumer skipped the dead producer's slot after {took:?}");
    assert_eq!(verify(&got), Some(8), "the dead producer's message was delivered");
    assert_eq!(q.stats().abandoned, 1);
    assert!(took < Duration::from_millis(500), "took {took:?}");
}

#[test]
fn consumer_killed_holding_a_message_loses_only_that_message() {
    let _w = watchdog(Duration::from_secs(60), "consumer crash point");
    let q = Queue::anonymous(2, 64).unwrap();
    q.send(b"m1-lost").unwrap();
    let mut dead = fork(|| {
        ipc_shm::crash::arm("queue.after_claim", 1);
        let _ = q.recv();
        Err::<(), &str>("crash point did not fire")
    });
    dead.assert_signaled(libc::SIGKILL);
    q.send(b"m2").unwrap();
    // m3 needs the dead consumer's slot: the sender finds its owner dead and reclaims it.
    let t = Instant::now();
    q.send_timeout(b"m3", Duration::from_secs(5)).unwrap();
    eprintln!("slot held by a dead consumer reclaimed after {:?}", t.elapsed());
    assert!(t.elapsed() < Duration::from_millis(500));
    assert_eq!(q.recv().unwrap(), b"m2");
    assert_eq!(q.recv().unwrap(), b"m3");
    assert_eq!(q.stats().lost, 1);
    assert!(q.is_empty());
}

#[test]
fn spsc_consumer_killed_holding_a_message_gets_it_redelivered() {
    let _w = watchdog(Duration::from_secs(60), "spsc redelivery");
    let q = SpscQueue::anonymous(4, 64).unwrap();
    let mut tx = q.sender().unwrap();
    tx.send(b"again").unwrap();
    let mut dead = fork(|| {
        let mut rx = q.receiver().unwrap();
        let m = rx.recv_ref().unwrap();
        assert_eq!(&*m, b"again");
        send_line("holding");
        std::thread::sleep(Duration::from_secs(30));
        drop(m);
    });
    assert_eq!(dead.recv_line(LINE).unwrap(), "holding");
    assert!(q.receiver().is_err(), "the role is held by a live process");
    dead.kill_and_join();
    let mut rx = q.receiver().unwrap(); // taken over from the dead holder
    assert_eq!(rx.recv().unwrap(), b"again");
}

/// The consumer is parked and the only producer dies. It receives what the
/// producer published, then `Disconnected` (not a hang); a new producer brings the queue back,
/// and a producer that leaves voluntarily is not a disconnection.
#[test]
fn spsc_receiver_parked_on_a_dead_producer_is_told_disconnected() {
    let _w = watchdog(Duration::from_secs(60), "spsc dead producer");
    let q = SpscQueue::anonymous(4, 64).unwrap();
    let mut producer = fork_named("producer", || {
        let mut tx = q.sender().unwrap();
        tx.send(b"before").unwrap();
        send_line("sent");
        // Holds the role until it is killed.
        let _ = recv_line(Duration::from_secs(60));
    });
    assert_eq!(producer.recv_line(LINE).unwrap(), "sent");
    let mut consumer = fork_named("consumer", || {
        let mut rx = q.receiver().unwrap();
        assert_eq!(rx.recv().unwrap(), b"before");
        match rx.recv() {
            Err(RecvError::Disconnected) => {}
            other => panic!("expected Disconnected, got {other:?}"),
        }
        send_line(&mono_ns().to_string());
        // Still disconnected for a bounded receive, at once or at its first look.
        match rx.recv_timeout(Duration::from_secs(5)) {
            Err(RecvTimeoutError::Disconnected) => {}
            other => panic!("expected Disconnected from recv_timeout, got {other:?}"),
        }
    });
    // Parked: it counted its wait (just before sleeping) after taking the first message.
    let t = Instant::now();
    while q.stats().recv_waits < 1 {
        assert!(t.elapsed() < Duration::from_secs(20), "the consumer did not park");
        std::thread::sleep(Duration::from_millis(1));
    }
    let killed_at = mono_ns();
    producer.kill_and_join();
    let told: u64 = consumer.recv_line(LINE).unwrap().parse().unwrap();
    let after = Duration::from_nanos(told.saturating_sub(killed_at));
    eprintln!("parked SPSC consumer told Disconnected {after:?} after its producer was killed");
    assert!(after < Duration::from_secs(2), "told after {after:?}");
    consumer.assert_success();
    // A new producer takes the dead one's role; the queue works again.
    let mut tx = q.sender().unwrap();
    tx.send(b"after").unwrap();
    let mut rx = q.receiver().unwrap();
    assert_eq!(rx.recv().unwrap(), b"after");
    // A producer that drops its handle leaves the role vacant: receivers wait (time out).
    drop(tx);
    assert_eq!(rx.recv_timeout(Duration::from_millis(250)), Err(RecvTimeoutError::Timeout));
}

/// The symmetric case: a sender parked on a full SPSC queue whose consumer dies gets its
/// message back as `Disconnected`; the queued messages wait for the next consumer.
#[test]
fn spsc_sender_parked_on_a_dead_consumer_is_told_disconnected() {
    let _w = watchdog(Duration::from_secs(60), "spsc dead consumer");
    let q = SpscQueue::anonymous(2, 64).unwrap();
    let mut consumer = fork_named("consumer", || {
        let _rx = q.receiver().unwrap();
        send_line("holding");
        // Holds the role without receiving until it is killed.
        let _ = recv_line(Duration::from_secs(60));
    });
    assert_eq!(consumer.recv_line(LINE).unwrap(), "holding");
    let mut producer = fork_named("producer", || {
        let mut tx = q.sender().unwrap();
        tx.send(b"a").unwrap();
        tx.send(b"b").unwrap();
        match tx.send(b"c") {
            Err(SendError::Disconnected) => {}
            other => panic!("expected Disconnected, got {other:?}"),
        }
        send_line(&mono_ns().to_string());
    });
    let t = Instant::now();
    while q.stats().send_waits < 1 {
        assert!(t.elapsed() < Duration::from_secs(20), "the producer did not park");
        std::thread::sleep(Duration::from_millis(1));
    }
    let killed_at = mono_ns();
    consumer.kill_and_join();
    let told: u64 = producer.recv_line(LINE).unwrap().parse().unwrap();
    let after = Duration::from_nanos(told.saturating_sub(killed_at));
    eprintln!("parked SPSC sender told Disconnected {after:?} after its consumer was killed");
    assert!(after < Duration::from_secs(2), "told after {after:?}");
    producer.assert_success();
    // The next consumer takes over and gets what was queued, in order.
    let mut rx = q.receiver().unwrap();
    assert_eq!(rx.recv().unwrap(), b"a");
    assert_eq!(rx.recv().unwrap(), b"b");
}

// ---------------------------------------------------------------------------------------
// MPMC peer death: every producer (or every consumer) dead is Disconnected, not a hang

/// The bound within which a parked MPMC waiter is told its peers died (the SPSC bound).
const PEER_DEATH_BOUND: Duration = Duration::from_millis(100);

/// Wait until the queue's waiters of one side slept `n` times and every child in `kids`
/// sleeps in the kernel (parked, not about to look again).
fn until_parked(kids: &[Child], waits: impl Fn() -> u64, n: u64) {
    let t = Instant::now();
    while waits() < n {
        assert!(t.elapsed() < Duration::from_secs(20), "the waiters did not park");
        std::thread::sleep(Duration::from_millis(1));
    }
    for k in kids {
        ipc_testkit::wait_until_sleeping(k.pid());
    }
}

/// Receivers parked on an MPMC queue whose every producer died get what was committed, then
/// `Disconnected` within the bound: one blocking without limit, one with a timeout far past it.
#[test]
fn mpmc_receivers_parked_on_dead_producers_are_told_disconnected() {
    let _w = watchdog(Duration::from_secs(60), "mpmc dead producers");
    let q = Queue::anonymous(8, 64).unwrap();
    // Two producers: each commits a message, then lives (holding no slot) until killed.
    let mut producers: Vec<Child> = (0..2)
        .map(|p| {
            let q = &q;
            fork_named(&format!("producer {p}"), move || {
                q.send(format!("from {p}").as_bytes()).unwrap();
                send_line("sent");
                let _ = recv_line(Duration::from_secs(60));
            })
        })
        .collect();
    for p in &mut producers {
        assert_eq!(p.recv_line(LINE).unwrap(), "sent");
    }
    let mut receivers: Vec<Child> = (0..2)
        .map(|r| {
            let q = &q;
            fork_named(&format!("receiver {r}"), move || {
                let mut got = 0;
                loop {
                    let res = if r == 0 {
                        q.recv().map_err(|e| format!("{e:?}"))
                    } else {
                        q.recv_timeout(Duration::from_secs(30)).map_err(|e| format!("{e:?}"))
                    };
                    match res {
                        Ok(m) => {
                            assert!(m.starts_with(b"from "), "{m:?}");
                            got += 1;
                        }
                        Err(e) if e == "Disconnected" => break,
                        Err(e) => panic!("receiver {r}: expected Disconnected, got {e}"),
                    }
                }
                send_line(&format!("{} {got}", mono_ns()));
            })
        })
        .collect();
    until_parked(&receivers, || q.stats().recv_waits, 2);
    assert!(q.is_empty(), "the receivers parked before taking the committed messages");
    for p in &mut producers {
        p.kill_and_join();
    }
    let dead_at = mono_ns();
    let mut total = 0;
    for (r, c) in receivers.iter_mut().enumerate() {
        let line = c.recv_line(LINE).unwrap();
        let (told, got) = line.split_once(' ').unwrap();
        let after = Duration::from_nanos(told.parse::<u64>().unwrap().saturating_sub(dead_at));
        eprintln!("MPMC receiver {r} told Disconnected {after:?} after the last producer died");
        assert!(after <= PEER_DEATH_BOUND, "receiver {r} told after {after:?}");
        total += got.parse::<u32>().unwrap();
        c.assert_success();
    }
    assert_eq!(total, 2, "what the producers committed before dying was not all received");
}

/// Senders parked on a full MPMC queue whose every consumer died are told `Disconnected`
/// within the bound (with and without a timeout); the queued messages wait for the next one.
#[test]
fn mpmc_senders_parked_on_dead_consumers_are_told_disconnected() {
    let _w = watchdog(Duration::from_secs(60), "mpmc dead consumers");
    let q = Queue::anonymous(2, 64).unwrap();
    q.send(b"0").unwrap();
    // The only consumer: it received once, then lives (holding no slot) until killed.
    let mut consumer = fork_named("consumer", || {
        assert_eq!(q.recv_timeout(LINE).unwrap(), b"0");
        send_line("received");
        let _ = recv_line(Duration::from_secs(60));
    });
    assert_eq!(consumer.recv_line(LINE).unwrap(), "received");
    q.send(b"a").unwrap();
    q.send(b"b").unwrap();
    assert!(q.is_full());
    let mut senders: Vec<Child> = (0..2)
        .map(|s| {
            let q = &q;
            fork_named(&format!("sender {s}"), move || {
                let res = if s == 0 {
                    q.send(b"c").map_err(|e| format!("{e:?}"))
                } else {
                    q.send_timeout(b"c", Duration::from_secs(30)).map_err(|e| format!("{e:?}"))
                };
                assert_eq!(res, Err("Disconnected".to_string()), "sender {s}");
                send_line(&mono_ns().to_string());
            })
        })
        .collect();
    until_parked(&senders, || q.stats().send_waits, 2);
    consumer.kill_and_join();
    let dead_at = mono_ns();
    for (s, c) in senders.iter_mut().enumerate() {
        let told: u64 = c.recv_line(LINE).unwrap().parse().unwrap();
        let after = Duration::from_nanos(told.saturating_sub(dead_at));
        eprintln!("MPMC sender {s} told Disconnected {after:?} after the consumer died");
        assert!(after <= PEER_DEATH_BOUND, "sender {s} told after {after:?}");
        c.assert_success();
    }
    // The next consumer gets what was queued, in order; nothing of the refused sends landed.
    assert_eq!(q.recv().unwrap(), b"a");
    assert_eq!(q.recv().unwrap(), b"b");
    assert!(q.is_empty());
}

/// A producer that drops its handle but lives is not a death: receivers keep waiting (their
/// timeout, not `Disconnected`); once it dies they are told.
#[test]
fn mpmc_a_producer_that_drops_its_handle_is_not_a_death() {
    let _w = watchdog(Duration::from_secs(60), "mpmc dropped producer");
    let name = unique_name("mpmc-dropped");
    let q = Queue::create(&name, 4, 64).unwrap();
    let mut producer = fork_named("producer", || {
        let own = Queue::open(&name).unwrap();
        own.send(b"last").unwrap();
        drop(own);
        send_line("dropped");
        let _ = recv_line(Duration::from_secs(60));
    });
    assert_eq!(producer.recv_line(LINE).unwrap(), "dropped");
    assert_eq!(q.recv().unwrap(), b"last");
    assert_eq!(q.recv_timeout(Duration::from_millis(300)), Err(RecvTimeoutError::Timeout));
    producer.kill_and_join();
    let t = Instant::now();
    assert_eq!(q.recv(), Err(RecvError::Disconnected));
    assert_eq!(q.recv_timeout(LINE), Err(RecvTimeoutError::Disconnected));
    eprintln!("told Disconnected {:?} after the producer died", t.elapsed());
    drop(q);
    assert!(audit::shm_entries(&name).is_empty());
}

/// More live producers than the queue can list: the queue cannot tell when all are dead, so
/// it never says `Disconnected` (receivers wait for their timeout), never a false one.
#[test]
fn mpmc_more_producers_than_listed_is_never_disconnected() {
    let _w = watchdog(Duration::from_secs(60), "mpmc producer table full");
    let q = Queue::anonymous(64, 8).unwrap();
    let n = ipc_queue::PEERS_LISTED + 1;
    let mut producers: Vec<Child> = (0..n)
        .map(|p| {
            let q = &q;
            fork_named(&format!("producer {p}"), move || {
                q.send(&(p as u64).to_le_bytes()).unwrap();
                send_line("sent");
                let _ = recv_line(Duration::from_secs(60));
            })
        })
        .collect();
    for p in &mut producers {
        assert_eq!(p.recv_line(LINE).unwrap(), "sent");
    }
    for _ in 0..n {
        q.recv_timeout(LINE).unwrap();
    }
    for p in &mut producers {
        p.kill_and_join();
    }
    assert_eq!(q.recv_timeout(Duration::from_millis(300)), Err(RecvTimeoutError::Timeout));
}

#[test]
fn spsc_producer_killed_mid_copy_publishes_nothing() {
    let _w = watchdog(Duration::from_secs(60), "spsc producer killed");
    let q = SpscQueue::anonymous(4, 65536).unwrap();
    let mut dead = fork(|| {
        let mut tx = q.sender().unwrap();
        tx.send(b"before").unwrap();
        let mut s = tx.reserve(65536).unwrap();
        s.fill(0xAA);
        send_line("writing");
        std::thread::sleep(Duration::from_secs(30));
        s.commit();
    });
    assert_eq!(dead.recv_line(LINE).unwrap(), "writing");
    dead.kill_and_join();
    let mut rx = q.receiver().unwrap();
    assert_eq!(rx.recv().unwrap(), b"before");
    assert!(rx.try_recv().is_err());
    let mut tx = q.sender().unwrap();
    tx.send(b"after").unwrap();
    assert_eq!(rx.recv().unwrap(), b"after");
}

#[test]
fn spsc_producer_killed_at_every_publish_step_never_tears_or_duplicates() {
    let _w = watchdog(Duration::from_secs(60), "spsc publish crash points");
    for (point, delivered) in
        [("queue.spsc.before_publish", false), ("queue.spsc.after_stamp", true)]
    {
        let q = SpscQueue::anonymous(4, 64).unwrap();
        let mut rx = q.receiver().unwrap();
        let mut dead = fork(|| {
            let mut tx = q.sender().unwrap();
            tx.send(b"one").unwrap();
            ipc_shm::crash::arm(point, 1);
            tx.send(b"two").unwrap();
            Err::<(), String>(format!("crash point {point} did not fire"))
        });
        dead.assert_signaled(libc::SIGKILL);
        let mut tx = q.sender().unwrap(); // taken over from the dead producer
        tx.send(b"three").unwrap();
        let mut got = Vec::new();
        while let Ok(m) = rx.try_recv() {
            got.push(String::from_utf8(m).unwrap());
        }
        let want: &[&str] = if delivered { &["one", "two", "three"] } else { &["one", "three"] };
        assert_eq!(got, want, "{point}");
    }
}

// ---------------------------------------------------------------------------------------
// close() wakes every parked process

#[test]
fn close_wakes_parked_senders_and_receivers_in_other_processes() {
    let _w = watchdog(Duration::from_secs(60), "close wakes");
    let empty = Queue::anonymous(4, 16).unwrap();
    let full = Queue::anonymous(2, 16).unwrap();
    full.send(b"1").unwrap();
    full.send(b"2").unwrap();
    let mut kids = Vec::new();
    for i in 0..3 {
        let (empty, full) = (&empty, &full);
        kids.push(fork_named(&format!("receiver {i}"), move || {
            assert_eq!(empty.recv(), Err(RecvError::Closed));
            send_line(&mono_ns().to_string());
        }));
        kids.push(fork_named(&format!("sender {i}"), move || {
            assert!(matches!(full.send(b"3"), Err(SendError::Closed)));
            send_line(&mono_ns().to_string());
        }));
    }
    // Wait until all six sleep (each counts its wait just before sleeping).
    let t = Instant::now();
    while empty.stats().recv_waits < 3 || full.stats().send_waits < 3 {
        assert!(t.elapsed() < Duration::from_secs(20), "children did not park");
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(20)); // let them reach FUTEX_WAIT (fault timing)
    let closed_at = mono_ns();
    empty.close();
    full.close();
    let mut worst = 0;
    for k in &mut kids {
        let woke: u64 = k.recv_line(LINE).unwrap().parse().unwrap();
        worst = worst.max(woke.saturating_sub(closed_at));
        k.assert_success();
    }
    eprintln!(
        "close woke 3 parked receivers and 3 parked senders; the last after {} us",
        worst / 1000
    );
    assert!(Duration::from_nanos(worst) < Duration::from_millis(100));
    assert_eq!(full.recv().unwrap(), b"1"); // receivers still drain
}

// ---------------------------------------------------------------------------------------
// Typed and joinable flavours across processes

#[test]
fn joinable_and_typed_queues_across_processes() {
    let _w = watchdog(Duration::from_secs(60), "joinable typed");
    let jobs = ipc_queue::JoinableQueue::anonymous(8, 16).unwrap();
    let sums = ipc_queue::TypedQueue::<[u64; 2]>::anonymous(128).unwrap(); // holds every result
    let mut workers: Vec<Child> = (0..2)
        .map(|w| {
            let (jobs, sums) = (&jobs, &sums);
            fork_named(&format!("worker {w}"), move || {
                while let Ok(job) = jobs.recv() {
                    let n = u64::from_le_bytes(job.try_into().unwrap());
                    sums.send([n, n * n]).unwrap();
                    jobs.task_done().unwrap();
                }
            })
        })
        .collect();
    for n in 1..=100u64 {
        jobs.send(&n.to_le_bytes()).unwrap();
    }
    let mut total = 0;
    for _ in 0..100 {
        let [n, sq] = sums.recv_timeout(LINE).unwrap();
        assert_eq!(sq, n * n);
        total += n;
    }
    jobs.join_timeout(LINE).unwrap();
    assert_eq!(total, 5050);
    assert_eq!(jobs.unfinished(), 0);
    jobs.close();
    join_all(&mut workers, Duration::from_secs(20));
}

// ---------------------------------------------------------------------------------------
// Unrelated processes, named queue

#[test]
fn unrelated_process_shares_a_named_queue() {
    let _w = watchdog(Duration::from_secs(60), "named queue");
    let name = unique_name("queue-echo");
    let q = Queue::create(&name, 4, 64).unwrap();
    let mut echo = spawn_role("queue-echo", &[&name]);
    q.send(b"ab").unwrap();
    assert_eq!(echo.recv_line(LINE).unwrap(), "echoed");
    echo.assert_success();
    assert_eq!(q.recv_timeout(LINE).unwrap(), b"abab");
    drop(q);
    assert!(audit::shm_entries(&name).is_empty());
}

#[test]
fn counters_started_near_wrap_work_across_processes() {
    let _w = watchdog(Duration::from_secs(60), "wrap");
    let q = QueueOptions::new(4, 16).start_position(u64::MAX - 50).anonymous().unwrap();
    let mut prod = fork(|| {
        for i in 0..200u64 {
            q.send(&i.to_le_bytes()).unwrap();
        }
    });
    for i in 0..200u64 {
        assert_eq!(q.recv_timeout(LINE).unwrap(), i.to_le_bytes());
    }
    prod.assert_success();
}

/// EINTR: a timed receive under a storm of EINTRs ends at its deadline; a
/// blocking receive ends with the message the parent sends.
#[test]
fn queue_waits_survive_a_signal_storm() {
    let _w = watchdog(Duration::from_secs(60), "queue EINTR");
    let q = Queue::anonymous(4, 64).unwrap();
    let timeout = Duration::from_millis(300);
    let mut child = fork(|| {
        interrupt::storm_child(
            timeout,
            || assert_eq!(q.recv_timeout(timeout), Err(RecvTimeoutError::Timeout)),
            || assert_eq!(q.recv().unwrap(), b"late"),
        );
    });
    let (sent, caught) = interrupt::storm_parent(&mut child, || q.send(b"late").unwrap());
    eprintln!("queue waits under a signal storm: {sent} signals sent, {caught} caught");
}

// ---------------------------------------------------------------------------------------
// Guards inherited over fork

#[test]
fn a_reserved_slot_dropped_in_a_forked_child_is_not_cancelled() {
    let _w = watchdog(Duration::from_secs(60), "fork send slot");
    liveness::current().unwrap();
    let q = Queue::anonymous(2, 64).unwrap();
    let mut slot = q.reserve(5).unwrap();
    slot.copy_from_slice(b"hello");
    // The child's copy of the guard must not cancel the parent's slot: if it did, the slot
    // would be free for the next lap while the parent still writes it.
    fork_inheriting(&slot, drop).assert_success();
    assert_eq!(q.stats().cancelled, 0, "the child cancelled the parent's slot");
    q.try_send(b"x").unwrap();
    assert!(q.try_send(b"y").is_err(), "a sender got the slot the parent still writes");
    slot.commit();
    assert_eq!(q.try_recv().unwrap(), b"hello");
    assert_eq!(q.try_recv().unwrap(), b"x");
}

#[test]
fn a_lent_message_dropped_in_a_forked_child_keeps_its_slot() {
    let _w = watchdog(Duration::from_secs(60), "fork recv ref");
    liveness::current().unwrap();
    let q = Queue::anonymous(1, 64).unwrap();
    q.try_send(b"first").unwrap();
    let lent = q.try_recv_ref().unwrap();
    fork_inheriting(&lent, drop).assert_success();
    // The parent still reads the slot: nobody may write into it.
    assert!(q.try_send(b"second").is_err(), "a sender got the slot the parent still reads");
    assert_eq!(&*lent, b"first");
    drop(lent);
    q.try_send(b"second").unwrap();
    assert_eq!(q.try_recv().unwrap(), b"second");
}

#[test]
fn an_spsc_lent_message_dropped_in_a_forked_child_keeps_its_slot() {
    let _w = watchdog(Duration::from_secs(60), "fork spsc ref");
    liveness::current().unwrap();
    let q = SpscQueue::anonymous(2, 64).unwrap();
    let mut tx = q.sender().unwrap();
    let mut rx = q.receiver().unwrap();
    tx.try_send(b"a").unwrap();
    tx.try_send(b"b").unwrap();
    let lent = rx.try_recv_ref().unwrap();
    fork_inheriting(&lent, drop).assert_success();
    assert!(tx.try_send(b"c").is_err(), "the producer got the slot the consumer still reads");
    assert_eq!(&*lent, b"a");
    drop(lent);
    assert_eq!(rx.try_recv().unwrap(), b"b");
}

/// Make every later open(2) of this (forked) process fail with EMFILE, so it cannot register
/// with the liveness registry.
fn no_more_fds() {
    let lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: a valid rlimit struct; lowering our own limit is always allowed.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const lim) }, 0);
}

#[test]
fn a_process_without_an_owner_id_claims_no_slot_and_wedges_nobody() {
    const { assert!(ipc_shm::crash::ENABLED) };
    let _w = watchdog(Duration::from_secs(60), "unregistered claims");
    liveness::current().unwrap();
    let q = Queue::anonymous(1, 64).unwrap();
    // A producer that cannot register, killed between its claim and its commit (if it claims).
    let mut child = fork(|| -> Result<(), String> {
        no_more_fds();
        ipc_shm::crash::arm("queue.mid_copy", 1);
        match q.try_send(b"x") {
            Err(ipc_queue::TrySendError::Unregistered) => Ok(()),
            other => Err(format!("expected Unregistered, got {other:?}")),
        }
    });
    let exit = child.join_timeout(LINE).unwrap();
    // Had it claimed the only slot as owner 0, nobody could ever recover it.
    let sent = q.send_timeout(b"y", Duration::from_secs(3));
    assert!(
        sent.is_ok(),
        "the queue is wedged by an unrecoverable claim: {sent:?} (child: {exit})"
    );
    assert!(exit.success(), "producer child: {exit}");
    // A consumer that cannot register, killed right after its claim (if it claims).
    let mut child = fork(|| -> Result<(), String> {
        no_more_fds();
        ipc_shm::crash::arm("queue.after_claim", 1);
        match q.try_recv_ref() {
            Err(ipc_queue::TryRecvError::Unregistered) => Ok(()),
            other => Err(format!("expected Unregistered, got {:?}", other.map(|m| m.to_vec()))),
        }
    });
    let exit = child.join_timeout(LINE).unwrap();
    let got = q.recv_timeout(Duration::from_secs(3));
    assert_eq!(got.as_deref(), Ok(&b"y"[..]), "the message was lost (child: {exit})");
    assert!(exit.success(), "consumer child: {exit}");
}

/// A waiter that cannot use membarrier beside a notifier that does: the notifier must not
/// skip the barrier the waiter could not supply (a lost wake-up would leave the waiter asleep).
#[test]
fn a_waiter_without_membarrier_loses_no_wake_up_from_one_with_it() {
    let _w = watchdog(Duration::from_secs(120), "mixed membarrier");
    liveness::current().unwrap();
    let rounds = fault::rounds(20_000, 200_000);
    let (pn, qn) = (unique_name("mb-ping"), unique_name("mb-pong"));
    let ping = Queue::create(&pn, 1, 64).unwrap();
    let pong = Queue::create(&qn, 1, 64).unwrap();
    let mut echo = spawn_role("queue-echo-no-membarrier", &[&pn, &qn, &rounds.to_string()]);
    assert_eq!(echo.recv_line(LINE).unwrap(), "ready");
    let mut rng = fault::seeded("mixed membarrier");
    let start = Instant::now();
    for i in 0..rounds as u64 {
        // A pause around the echo's spin budget (40 µs) before each ping, so that the ping
        // lands while the echo is on its way to sleep: the window a lost wake-up needs.
        // Fault timing, not synchronisation: any pause gives a correct run.
        let pause = Duration::from_micros(20 + rng.below(40));
        let t = Instant::now();
        while t.elapsed() < pause {
            std::hint::spin_loop();
        }
        ping.send(&i.to_le_bytes()).unwrap();
        // The echo's reply needs its receive to have been woken.
        match pong.recv_timeout(Duration::from_secs(5)) {
            Ok(m) => assert_eq!(m, i.to_le_bytes()),
            Err(e) => panic!("round {i} of {rounds}: no echo within 5 s ({e}): a lost wake-up"),
        }
    }
    eprintln!("mixed membarrier: {rounds} round trips in {:?}", start.elapsed());
    echo.assert_success();
    drop((ping, pong));
    assert!(audit::shm_entries(&pn).is_empty() && audit::shm_entries(&qn).is_empty());
}

/// A producer killed between counting its task and publishing the message: `join` must not
/// wait for a task that was never put.
#[test]
fn a_producer_killed_mid_put_leaves_no_phantom_task_for_join() {
    const { assert!(ipc_shm::crash::ENABLED) };
    let _w = watchdog(Duration::from_secs(60), "joinable producer killed");
    liveness::current().unwrap();
    let q = ipc_queue::JoinableQueue::anonymous(4, 64).unwrap();
    q.send(b"real").unwrap();
    let mut producer = fork(|| -> Result<(), String> {
        ipc_shm::crash::arm("queue.mid_copy", 1);
        let _ = q.send(b"never published");
        Err("the crash point did not fire".into())
    });
    let exit = producer.join_timeout(LINE).unwrap();
    assert_eq!(
        exit,
        ipc_testkit::Exit::Signal(libc::SIGKILL),
        "the producer was not killed mid-put"
    );
    assert_eq!(q.recv_timeout(LINE).unwrap(), b"real");
    q.task_done().unwrap();
    // Only the real task was put; it is done.
    let joined = q.join_timeout(Duration::from_secs(5));
    assert_eq!(
        joined,
        Ok(()),
        "join waits for a task that was never put ({} unfinished)",
        q.unfinished()
    );
}

/// A forked child dropping its copy of the creator's queue must not unlink the name.
#[test]
fn a_forked_child_dropping_the_creators_queue_keeps_the_name() {
    let _w = watchdog(Duration::from_secs(60), "fork unlink queue");
    let name = unique_name("fork-unlink-queue");
    let q = Queue::create(&name, 4, 64).unwrap();
    fork_inheriting(&q, drop).assert_success();
    let opened = Queue::open(&name);
    assert!(opened.is_ok(), "the child's drop unlinked the parent's queue: {:?}", opened.err());
    let spsc = unique_name("fork-unlink-spsc");
    let s = SpscQueue::create(&spsc, 4, 64).unwrap();
    fork_inheriting(&s, drop).assert_success();
    assert!(SpscQueue::open(&spsc).is_ok(), "the child's drop unlinked the parent's SPSC queue");
    drop((q, opened, s));
    assert!(audit::shm_entries(&name).is_empty() && audit::shm_entries(&spsc).is_empty());
}

/// A queue of objects, as a Python user would write it: structs in, structs out, across
/// processes; a message that is not a `Job` is a typed error, not a panic.
#[test]
fn typed_values_cross_processes() {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Job {
        id: u32,
        path: String,
        sizes: Vec<u64>,
    }
    let _w = watchdog(Duration::from_secs(60), "typed values");
    let jobs = Queue::anonymous(8, 256).unwrap();
    let done = Queue::anonymous(8, 256).unwrap();
    let mut worker = fork(|| -> Result<(), ipc_queue::Error> {
        for _ in 0..20 {
            let job: Job = jobs.recv_value_timeout(LINE)?;
            done.send_value(&(job.id, job.sizes.iter().sum::<u64>()))?;
        }
        Ok(())
    });
    for id in 0..20u32 {
        let job = Job { id, path: format!("/data/{id}.txt"), sizes: vec![u64::from(id); 3] };
        jobs.send_value(&job).unwrap();
        let (got, sum): (u32, u64) = done.recv_value_timeout(LINE).unwrap();
        assert_eq!((got, sum), (id, 3 * u64::from(id)));
    }
    worker.assert_success();
    // Too big for a slot: refused before anything is published, with both sizes.
    let big = Job { id: 0, path: "x".repeat(300), sizes: vec![] };
    let e = jobs.try_send_value(&big).unwrap_err();
    assert!(e.to_string().contains("exceeds the queue's limit of 256 bytes"), "{e}");
    assert_eq!(
        jobs.try_recv(),
        Err(ipc_queue::TryRecvError::Empty),
        "a partial value was published"
    );
    // Bytes that are not a Job: a codec error naming the operation.
    jobs.send(&[0xff; 10]).unwrap();
    let e = jobs.try_recv_value::<Job>().unwrap_err();
    assert!(matches!(e, ipc_queue::Error::Codec { .. }), "{e}");
}

/// Pickled values across processes, and a hostile pickle refused by the guard (a MARK
/// flood that would ask serde-pickle for gigabytes), the queue usable afterwards.
#[test]
fn pickled_values_cross_processes_and_a_hostile_pickle_is_refused() {
    let _w = watchdog(Duration::from_secs(60), "pickled values");
    let q = Queue::anonymous(4, 1 << 20).unwrap();
    let mut producer = fork(|| -> Result<(), ipc_queue::Error> {
        q.send_pickle(&("resize", 42u32, vec![1.5f64, 2.5]))?;
        // 1 MB of MARKs: 1M x 4 KiB of stacks in serde-pickle, refused from its skeleton.
        let mut flood = vec![0x80, 4];
        flood.extend(std::iter::repeat_n(b'(', (1 << 20) - 4));
        flood.extend(b"N.");
        q.send(&flood)?;
        q.send_pickle(&"after")?;
        Ok(())
    });
    producer.assert_success();
    let (job, id, sizes): (String, u32, Vec<f64>) = q.recv_pickle_timeout(LINE).unwrap();
    assert_eq!((job.as_str(), id, sizes), ("resize", 42, vec![1.5, 2.5]));
    let e = q.recv_pickle_timeout::<String>(LINE).unwrap_err();
    assert!(e.to_string().contains("refused the"), "{e}");
    assert_eq!(q.recv_pickle_timeout::<String>(LINE).unwrap(), "after");
}
