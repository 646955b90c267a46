//! ipc-queue against the hardware floors and the peers, measured in the same run, between
//! real processes pinned with sched_setaffinity (X = cpu0/cpu1, S = both on cpu0):
//!
//! - `rtt-x/*`: polling round trip, cross-core: our SPSC and MPMC (8 and 64 B) vs a 2-line
//!   spin ping-pong between two processes (the floor), and crossbeam's ArrayQueue between
//!   two threads (the MPMC reference).
//! - `tput-64B/*`: one-way streaming of 64 B messages, cross-core: our SPSC vs a plain
//!   reference SPSC ring (cached indices, fixed 64-byte slots, no length, no checks).
//! - `tput-64KiB/*`: zero-copy 64 KiB messages (the producer fills a reserved slot, the
//!   consumer reads the lent message) vs memcpy of 64 KiB into a ring of the same size (one
//!   core), and vs the same two-process pipeline over a plain ring (no queue at all).
//! - `asleep-x/*`: blocking round trip when the peer is asleep (a 200 µs pause before each
//!   round trip lets its spin budget run out) vs a raw futex ping-pong with the same pause.
//! - `same-core/*`: blocking round trip with both processes on cpu0 vs a pipe ping-pong.
//!
//! Ratios: `cargo bench -p ipc-queue --bench queue` then `python3 ipc-queue/benches/ratios.py`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use crossbeam_queue::ArrayQueue;
use ipc_queue::{Queue, SpscQueue, TryRecvError};
use ipc_shm::Shm;
use ipc_testkit::{Child, fork};

/// The bench's raw rings: atomic words and payload slots at disjoint offsets, each payload
/// touched by one thread of a process at a time.
trait BenchShm {
    fn word(&self, offset: usize) -> &AtomicU32;
    fn put(&self, offset: usize, data: &[u8]);
    fn get(&self, offset: usize, buf: &mut [u8]);
}

impl BenchShm for Shm {
    fn word(&self, offset: usize) -> &AtomicU32 {
        // SAFETY: word offsets are only ever accessed as these atomic u32s (payloads lie
        // elsewhere in the segment).
        unsafe { self.atomic_u32(offset) }.unwrap()
    }

    fn put(&self, offset: usize, data: &[u8]) {
        // SAFETY: payload offsets never overlap a word, and one thread of each process copies
        // a given slot at a time; no reference covers it.
        unsafe { self.write_at_shared(offset, data) }.unwrap()
    }

    fn get(&self, offset: usize, buf: &mut [u8]) {
        // SAFETY: as in `put`.
        unsafe { self.read_at_shared(offset, buf) }.unwrap()
    }
}

fn pin(cpus: &[usize]) {
    // SAFETY: all-zero is a valid (empty) cpu_set_t.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus {
        // SAFETY: c < 2 < CPU_SETSIZE: the bit lies inside `set`.
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: `set` is a valid cpu_set_t of the size given; pid 0 is the calling thread.
    unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &raw const set) };
}

fn unpin() {
    pin(&[0, 1]);
}

fn stop(mut child: Child) {
    child.assert_success_within(Duration::from_secs(30));
}

// ---------------------------------------------------------------------------------------
// Polling round trips, cross-core

fn spsc_rtt(c: &mut Criterion, size: usize) {
    let ping = SpscQueue::anonymous(64, 64).unwrap();
    let pong = SpscQueue::anonymous(64, 64).unwrap();
    let child = fork(|| {
        pin(&[1]);
        let mut rx = ping.receiver().unwrap();
        let mut tx = pong.sender().unwrap();
        let mut buf = Vec::with_capacity(64);
        loop {
            match rx.try_recv_into(&mut buf) {
                Ok(_) => while tx.try_send(&buf).is_err() {},
                Err(TryRecvError::Empty) => std::hint::spin_loop(),
                Err(_) => return,
            }
        }
    });
    pin(&[0]);
    let mut tx = ping.sender().unwrap();
    let mut rx = pong.receiver().unwrap();
    let msg = vec![7u8; size];
    let mut buf = Vec::with_capacity(64);
    c.bench_function(&format!("rtt-x/{size}B/ipc-queue spsc"), |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            for _ in 0..iters {
                while tx.try_send(&msg).is_err() {}
                while rx.try_recv_into(&mut buf).is_err() {}
            }
            t.elapsed()
        })
    });
    tx.close();
    unpin();
    stop(child);
}

fn mpmc_rtt(c: &mut Criterion, size: usize) {
    let ping = Queue::anonymous(64, 64).unwrap();
    let pong = Queue::anonymous(64, 64).unwrap();
    let child = fork(|| {
        pin(&[1]);
        let mut buf = Vec::with_capacity(64);
        loop {
            match ping.try_recv() {
                Ok(m) => {
                    buf.clear();
                    buf.extend_from_slice(&m);
                    while pong.try_send(&buf).is_err() {}
                }
                Err(TryRecvError::Empty) => std::hint::spin_loop(),
                Err(_) => return,
            }
        }
    });
    pin(&[0]);
    let msg = vec![7u8; size];
    let mut buf = Vec::with_capacity(64);
    c.bench_function(&format!("rtt-x/{size}B/ipc-queue mpmc"), |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            for _ in 0..iters {
                while ping.try_send(&msg).is_err() {}
                loop {
                    if let Ok(r) = ping_pong_recv(&pong, &mut buf) {
                        black_box(r);
                        break;
                    }
                }
            }
            t.elapsed()
        })
    });
    ping.close();
    unpin();
    stop(child);
}

fn ping_pong_recv(q: &Queue, buf: &mut Vec<u8>) -> Result<usize, TryRecvError> {
    let m = q.try_recv_ref()?;
    buf.clear();
    buf.extend_from_slice(&m);
    Ok(m.len())
}

/// The floor: two processes bounce a counter over two cache lines.
fn spin_floor(c: &mut Criterion) {
    let shm = Shm::anonymous(4096).unwrap();
    let child = fork(|| {
        pin(&[1]);
        let (a, b) = (shm.word(0), shm.word(128));
        let mut seen = 0;
        loop {
            let v = a.load(Ordering::Acquire);
            if v == u32::MAX {
                return;
            }
            if v != seen {
                seen = v;
                b.store(v, Ordering::Release);
            } else {
                std::hint::spin_loop();
            }
        }
    });
    pin(&[0]);
    let (a, b) = (shm.word(0), shm.word(128));
    let mut n = 0u32;
    c.bench_function("rtt-x/floor/spin ping-pong 2 lines", |bn| {
        bn.iter_custom(|iters| {
            let t = Instant::now();
            for _ in 0..iters {
                n = if n >= u32::MAX - 2 { 1 } else { n + 1 };
                a.store(n, Ordering::Release);
                while b.load(Ordering::Acquire) != n {
                    std::hint::spin_loop();
                }
            }
            t.elapsed()
        })
    });
    a.store(u32::MAX, Ordering::Release);
    unpin();
    stop(child);
}

fn crossbeam_rtt(c: &mut Criterion) {
    let ping = std::sync::Arc::new(ArrayQueue::<[u8; 64]>::new(64));
    let pong = std::sync::Arc::new(ArrayQueue::<[u8; 64]>::new(64));
    let done = std::sync::Arc::new(AtomicU32::new(0));
    let t = {
        let (ping, pong, done) = (ping.clone(), pong.clone(), done.clone());
        std::thread::spawn(move || {
            pin(&[1]);
            while done.load(Ordering::Relaxed) == 0 {
                if let Some(m) = ping.pop() {
                    while pong.push(m).is_err() {}
                } else {
                    std::hint::spin_loop();
                }
            }
        })
    };
    pin(&[0]);
    c.bench_function("rtt-x/64B/crossbeam ArrayQueue threads", |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            for _ in 0..iters {
                while ping.push([7u8; 64]).is_err() {}
                loop {
                    if let Some(m) = pong.pop() {
                        black_box(m);
                        break;
                    }
                }
            }
            t.elapsed()
        })
    });
    done.store(1, Ordering::Relaxed);
    t.join().unwrap();
    unpin();
}

fn rtt(c: &mut Criterion) {
    spin_floor(c);
    spsc_rtt(c, 8);
    spsc_rtt(c, 64);
    mpmc_rtt(c, 8);
    mpmc_rtt(c, 64);
    crossbeam_rtt(c);
}

// ---------------------------------------------------------------------------------------
// Throughput, cross-core

/// A control word: the parent asks the child for `n` messages; u32::MAX stops it.
struct Go {
    shm: Shm,
}

impl Go {
    fn new() -> Go {
        Go { shm: Shm::anonymous(4096).unwrap() }
    }

    fn word(&self) -> &AtomicU32 {
        self.shm.word(0)
    }

    fn ask(&self, n: u32) {
        self.word().store(n, Ordering::Release);
    }

    /// In the child: the next request (spinning briefly, then sleeping a little).
    fn next(&self) -> u32 {
        let mut spins = 0u32;
        loop {
            let n = self.word().swap(0, Ordering::AcqRel);
            if n != 0 {
                return n;
            }
            spins += 1;
            if spins > 1000 {
                std::thread::sleep(Duration::from_micros(50));
            } else {
                std::hint::spin_loop();
            }
        }
    }
}

const BATCH: u64 = 10_000;

fn batches(iters: u64) -> u32 {
    u32::try_from(iters.div_ceil(BATCH)).unwrap_or(u32::MAX - 1)
}

fn spsc_tput(c: &mut Criterion) {
    let q = SpscQueue::anonymous(1024, 64).unwrap();
    let go = Go::new();
    let child = fork(|| {
        pin(&[1]);
        let mut tx = q.sender().unwrap();
        let msg = [5u8; 64];
        loop {
            let n = go.next();
            if n == u32::MAX {
                return;
            }
            for _ in 0..u64::from(n) * BATCH {
                while tx.try_send(&msg).is_err() {
                    std::hint::spin_loop();
                }
            }
        }
    });
    pin(&[0]);
    let mut rx = q.receiver().unwrap();
    let mut buf = Vec::with_capacity(64);
    let mut g = c.benchmark_group("tput-64B");
    g.throughput(Throughput::Elements(1));
    g.bench_function("ipc-queue spsc", |b| {
        b.iter_custom(|iters| {
            let n = batches(iters);
            let t = Instant::now();
            go.ask(n);
            for _ in 0..u64::from(n) * BATCH {
                while rx.try_recv_into(&mut buf).is_err() {
                    std::hint::spin_loop();
                }
            }
            t.elapsed().mul_f64(iters as f64 / (u64::from(n) * BATCH) as f64)
        })
    });
    g.finish();
    go.ask(u32::MAX);
    unpin();
    stop(child);
}

/// The reference: a plain SPSC ring of 1024 fixed 64-byte slots with cached indices (32-bit
/// counters), copies through the same bounds-checked `Shm::write_at_shared`/`read_at_shared`.
const RING: u64 = 1024;

fn ref_tput(c: &mut Criterion) {
    let shm = Shm::anonymous(256 + (RING as usize) * 64).unwrap();
    let go = Go::new();
    let child = fork(|| {
        pin(&[1]);
        let head = shm.word(0);
        let tail = shm.word(128);
        let mut h = 0u32;
        let mut cached_tail = 0u32;
        let msg = [5u8; 64];
        loop {
            let n = go.next();
            if n == u32::MAX {
                return;
            }
            for _ in 0..u64::from(n) * BATCH {
                while h.wrapping_sub(cached_tail) as u64 >= RING {
                    cached_tail = tail.load(Ordering::Acquire);
                }
                shm.put(256 + (u64::from(h) % RING) as usize * 64, &msg);
                h = h.wrapping_add(1);
                head.store(h, Ordering::Release);
            }
        }
    });
    pin(&[0]);
    let head = shm.word(0);
    let tail = shm.word(128);
    let mut t_ = 0u32;
    let mut cached_head = 0u32;
    let mut buf = [0u8; 64];
    let mut g = c.benchmark_group("tput-64B");
    g.throughput(Throughput::Elements(1));
    g.bench_function("reference spsc ring", |b| {
        b.iter_custom(|iters| {
            let n = batches(iters);
            let t = Instant::now();
            go.ask(n);
            for _ in 0..u64::from(n) * BATCH {
                while t_ == cached_head {
                    cached_head = head.load(Ordering::Acquire);
                }
                shm.get(256 + (u64::from(t_) % RING) as usize * 64, &mut buf);
                black_box(&buf);
                t_ = t_.wrapping_add(1);
                tail.store(t_, Ordering::Release);
            }
            t.elapsed().mul_f64(iters as f64 / (u64::from(n) * BATCH) as f64)
        })
    });
    g.finish();
    go.ask(u32::MAX);
    unpin();
    stop(child);
}

const BIG: usize = 65536;

fn zero_copy_tput(c: &mut Criterion) {
    let q = SpscQueue::anonymous(16, BIG).unwrap();
    let go = Go::new();
    let child = fork(|| {
        pin(&[1]);
        let mut tx = q.sender().unwrap();
        let src = vec![3u8; BIG];
        loop {
            let n = go.next();
            if n == u32::MAX {
                return;
            }
            for _ in 0..n {
                // Polling, like the reference ring below (no sleeping producer).
                let mut s = loop {
                    match tx.try_reserve(BIG) {
                        Ok(s) => break s,
                        Err(_) => std::hint::spin_loop(),
                    }
                };
                s.copy_from_slice(&src);
                s.commit();
            }
        }
    });
    pin(&[0]);
    let mut rx = q.receiver().unwrap();
    let mut g = c.benchmark_group("tput-64KiB");
    g.throughput(Throughput::Bytes(BIG as u64));
    g.bench_function("ipc-queue spsc zero-copy", |b| {
        b.iter_custom(|iters| {
            let n = u32::try_from(iters).unwrap();
            let t = Instant::now();
            go.ask(n);
            for _ in 0..n {
                let m = loop {
                    if let Ok(m) = rx.try_recv_ref() {
                        break m;
                    }
                    std::hint::spin_loop();
                };
                // The consumer reads every byte (8 at a time), as a real one would.
                black_box(xor_fold(&m));
            }
            t.elapsed()
        })
    });
    g.finish();
    go.ask(u32::MAX);
    stop(child);
    ref_ring_big(c);
    pin(&[0]);
    let mut g = c.benchmark_group("tput-64KiB");
    g.throughput(Throughput::Bytes(BIG as u64));
    let ring = Shm::anonymous(16 * BIG).unwrap();
    let src = vec![3u8; BIG];
    let mut i = 0usize;
    g.bench_function("memcpy into a 1 MiB shm ring", |b| {
        b.iter(|| {
            ring.put((i % 16) * BIG, black_box(&src));
            i += 1;
        })
    });
    g.finish();
    unpin();
}

fn xor_fold(m: &[u8]) -> u64 {
    m.chunks_exact(8).fold(0u64, |a, c| a ^ u64::from_ne_bytes(c.try_into().unwrap()))
}

/// The same 2-process pipeline over a plain ring of 16 x 64 KiB slots (32-bit indices, no
/// header, no checks): what moving 64 KiB between two cores costs without any queue.
fn ref_ring_big(c: &mut Criterion) {
    let shm = Shm::anonymous(256 + 16 * BIG).unwrap();
    let go = Go::new();
    let child = fork(|| {
        pin(&[1]);
        let head = shm.word(0);
        let tail = shm.word(128);
        let src = vec![3u8; BIG];
        let mut h = 0u32;
        loop {
            let n = go.next();
            if n == u32::MAX {
                return;
            }
            for _ in 0..n {
                while h.wrapping_sub(tail.load(Ordering::Acquire)) >= 16 {
                    std::hint::spin_loop();
                }
                shm.put(256 + (h % 16) as usize * BIG, &src);
                h = h.wrapping_add(1);
                head.store(h, Ordering::Release);
            }
        }
    });
    pin(&[0]);
    let head = shm.word(0);
    let tail = shm.word(128);
    let mut t_ = 0u32;
    let mut buf = vec![0u8; BIG];
    let mut g = c.benchmark_group("tput-64KiB");
    g.throughput(Throughput::Bytes(BIG as u64));
    g.bench_function("reference ring between processes", |b| {
        b.iter_custom(|iters| {
            let n = u32::try_from(iters).unwrap();
            let t = Instant::now();
            go.ask(n);
            for _ in 0..n {
                while head.load(Ordering::Acquire) == t_ {
                    std::hint::spin_loop();
                }
                // read_at copies: the reader touches every byte, as the queue's consumer does.
                shm.get(256 + (t_ % 16) as usize * BIG, &mut buf);
                black_box(xor_fold(&buf));
                t_ = t_.wrapping_add(1);
                tail.store(t_, Ordering::Release);
            }
            t.elapsed()
        })
    });
    g.finish();
    go.ask(u32::MAX);
    unpin();
    stop(child);
}

fn tput(c: &mut Criterion) {
    spsc_tput(c);
    ref_tput(c);
    zero_copy_tput(c);
}

// ---------------------------------------------------------------------------------------
// Blocking: peer asleep (cross-core) and same core

const PAUSE: Duration = Duration::from_micros(200);

fn blocking_echo(c: &mut Criterion, name: &str, cpus: (usize, usize), pause: bool) {
    let ping = SpscQueue::anonymous(4, 8).unwrap();
    let pong = SpscQueue::anonymous(4, 8).unwrap();
    let child = fork(|| {
        pin(&[cpus.1]);
        let mut rx = ping.receiver().unwrap();
        let mut tx = pong.sender().unwrap();
        while let Ok(m) = rx.recv() {
            tx.send(&m).unwrap();
        }
    });
    pin(&[cpus.0]);
    let mut tx = ping.sender().unwrap();
    let mut rx = pong.receiver().unwrap();
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                if pause {
                    std::thread::sleep(PAUSE);
                }
                let t = Instant::now();
                tx.send(b"12345678").unwrap();
                black_box(rx.recv().unwrap());
                total += t.elapsed();
            }
            total
        })
    });
    tx.close();
    unpin();
    stop(child);
}

fn futex_floor(c: &mut Criterion) {
    use ipc_shm::futex;
    let shm = Shm::anonymous(4096).unwrap();
    let child = fork(|| {
        pin(&[1]);
        let (a, b) = (shm.word(0), shm.word(128));
        let mut seen = 0;
        loop {
            let v = a.load(Ordering::Acquire);
            if v == u32::MAX {
                return;
            }
            if v == seen {
                futex::wait(a, seen, None);
                continue;
            }
            seen = v;
            b.store(v, Ordering::Release);
            futex::wake_one(b);
        }
    });
    pin(&[0]);
    let (a, b) = (shm.word(0), shm.word(128));
    let mut n = 0u32;
    c.bench_function("asleep-x/raw futex ping-pong", |bn| {
        bn.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                std::thread::sleep(PAUSE);
                let t = Instant::now();
                n += 1;
                a.store(n, Ordering::Release);
                futex::wake_one(a);
                loop {
                    let v = b.load(Ordering::Acquire);
                    if v == n {
                        break;
                    }
                    futex::wait(b, v, None);
                }
                total += t.elapsed();
            }
            total
        })
    });
    a.store(u32::MAX, Ordering::Release);
    futex::wake_one(a);
    unpin();
    stop(child);
}

fn pipe_same_core(c: &mut Criterion) {
    let (mut r1, mut w1) = std::io::pipe().unwrap();
    let (mut r2, mut w2) = std::io::pipe().unwrap();
    let child = fork(move || {
        pin(&[0]);
        let mut b = [0u8; 1];
        while r1.read_exact(&mut b).is_ok() && b[0] != 0 {
            w2.write_all(&b).unwrap();
        }
    });
    pin(&[0]);
    c.bench_function("same-core/pipe ping-pong", |bn| {
        bn.iter(|| {
            w1.write_all(&[1]).unwrap();
            let mut b = [0u8; 1];
            r2.read_exact(&mut b).unwrap();
        })
    });
    w1.write_all(&[0]).unwrap();
    unpin();
    stop(child);
}

fn blocking(c: &mut Criterion) {
    futex_floor(c);
    blocking_echo(c, "asleep-x/ipc-queue spsc blocking", (0, 1), true);
    pipe_same_core(c);
    blocking_echo(c, "same-core/ipc-queue spsc blocking", (0, 0), false);
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! { name = benches; config = config(); targets = rtt, tput, blocking }
criterion_main!(benches);
