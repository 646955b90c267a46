//! Lock micro-benchmarks, ours beside the peers in the same run (uncontended, contended, rwlock):
//!
//! - `uncontended`: lock + counter increment + unlock, one thread, with a second thread of the
//!   process alive (glibc takes a single-threaded shortcut otherwise): ours (in shared
//!   memory) vs `parking_lot::Mutex`, `std::sync::Mutex`, glibc pthread process-shared
//!   robust mutex. Goal: ours <= 1.1x parking_lot.
//! - `rwlock`: read lock + load + unlock vs `parking_lot::RwLock` and `std::sync::RwLock`
//!   (goal <= 1.1x parking_lot); the write lock for information.
//! - `contended`: two forked processes pinned to cpu0/cpu1 each do N x (lock; counter++;
//!   unlock) on one lock in shared memory; time per operation. Ours vs the glibc robust
//!   pshared mutex. Goal: >= 1.2x its throughput.
//! - `handoff`: a holder unlocks while the other process (pinned to the other cpu) is parked
//!   in the lock; the time until the waiter owns it (CLOCK_MONOTONIC stamps, comparable across
//!   processes). Ours vs the glibc robust mutex vs a raw futex handoff (the floor).
//! - `condvar`: two processes take turns through a `Mutex<u32>` and a `Condvar` (wait while it
//!   is not my turn; bump; notify_one), cross-core (cpu0/cpu1) and same-core (cpu0/cpu0); the
//!   round trip. Ours vs a glibc pshared `pthread_cond_t` doing the same vs a raw futex
//!   ping-pong (the floor: both sides always sleep).
//!
//! Run: `cargo bench -p ipc-lock --bench lock`. The machine is shared and noisy: compare
//! ratios within one run, over several runs.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]
#![allow(unsafe_code)] // glibc peers, fork, affinity

use std::hint::black_box;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use ipc_lock::{Condvar, Mutex, RwLock};
use ipc_shm::futex;
use ipc_shm::{Shared, Shm, ShmSafe};

/// A glibc robust, process-shared mutex (offset 0) in an anonymous shared segment, with a
/// counter (offset 2048) and a start flag (offset 1024).
struct GlibcRobust {
    shm: Shm,
}

impl GlibcRobust {
    fn new() -> GlibcRobust {
        let shm = Shm::anonymous(4096).unwrap();
        #[allow(clippy::cast_ptr_alignment)] // page-aligned mapping, asserted below
        let m = shm.as_ptr().as_ptr().cast::<libc::pthread_mutex_t>();
        assert_eq!(m.align_offset(align_of::<libc::pthread_mutex_t>()), 0);
        // SAFETY: `attr` is a local the init call initialises before the others use it.
        let mut attr: libc::pthread_mutexattr_t = unsafe { std::mem::zeroed() };
        let pattr = &raw mut attr;
        // SAFETY: `pattr` points at our local attribute object.
        assert_eq!(unsafe { libc::pthread_mutexattr_init(pattr) }, 0);
        // SAFETY: as above, initialised.
        let rc = unsafe { libc::pthread_mutexattr_setpshared(pattr, libc::PTHREAD_PROCESS_SHARED) };
        assert_eq!(rc, 0);
        // SAFETY: as above.
        let rc = unsafe { libc::pthread_mutexattr_setrobust(pattr, libc::PTHREAD_MUTEX_ROBUST) };
        assert_eq!(rc, 0);
        // SAFETY: `m` points at 4096 zeroed, page-aligned (checked), writable bytes of our
        // mapping, room for a pthread_mutex_t nobody else uses yet; `pattr` is initialised.
        assert_eq!(unsafe { libc::pthread_mutex_init(m, pattr) }, 0);
        // SAFETY: as above; the mutex does not keep the attribute object.
        unsafe { libc::pthread_mutexattr_destroy(pattr) };
        GlibcRobust { shm }
    }

    fn mutex(&self) -> *mut libc::pthread_mutex_t {
        #[allow(clippy::cast_ptr_alignment)] // page-aligned mapping, asserted in `new`
        self.shm.as_ptr().as_ptr().cast()
    }

    fn counter(&self) -> &AtomicU32 {
        // SAFETY: offset 2048 is only ever accessed as this atomic word.
        unsafe { self.shm.atomic_u32(2048) }.unwrap()
    }

    fn start(&self) -> &AtomicU32 {
        // SAFETY: offset 1024 is only ever accessed as this atomic word.
        unsafe { self.shm.atomic_u32(1024) }.unwrap()
    }

    /// The futex word (`__lock`, offset 0 on glibc): bit 31 is FUTEX_WAITERS.
    fn word(&self) -> u32 {
        // SAFETY: glibc accesses `__lock` atomically as a 32-bit int; the view is dropped
        // right after one atomic load.
        unsafe { self.shm.atomic_u32(0) }.unwrap().load(Ordering::SeqCst)
    }

    #[inline]
    fn lock(&self) {
        // SAFETY: an initialised robust pshared mutex in our live mapping.
        let rc = unsafe { libc::pthread_mutex_lock(self.mutex()) };
        if rc == libc::EOWNERDEAD {
            // SAFETY: as above; we hold it after EOWNERDEAD.
            unsafe { libc::pthread_mutex_consistent(self.mutex()) };
        }
    }

    #[inline]
    fn unlock(&self) {
        // SAFETY: as above; we hold it.
        unsafe { libc::pthread_mutex_unlock(self.mutex()) };
    }
}

/// Keep a second thread alive so glibc takes its multi-threaded paths (with one thread glibc skips its atomics: 3.8 ns instead of 12.9 ns).
fn second_thread() -> std::sync::mpsc::Sender<()> {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let _ = rx.recv();
    });
    tx
}

/// Ours and a peer in alternating 1 ms batches (ABBA...), 41 rounds: the median per-round
/// ratio is robust to the load of a shared machine, which criterion's sequential groups are
/// not (ours and the peers interleaved, ratio of medians). Printed beside the criterion figures.
fn interleaved(what: &str, mut ours: impl FnMut(), mut peer: impl FnMut()) {
    const ROUNDS: usize = 41;
    const N: u32 = 100_000;
    let batch = |f: &mut dyn FnMut()| {
        let t = Instant::now();
        for _ in 0..N {
            f();
        }
        t.elapsed().as_secs_f64() * 1e9 / f64::from(N)
    };
    let (mut ratios, mut a, mut b) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let (x, y) = if round % 2 == 0 {
            let x = batch(&mut ours);
            (x, batch(&mut peer))
        } else {
            let y = batch(&mut peer);
            (batch(&mut ours), y)
        };
        ratios.push(x / y);
        a.push(x);
        b.push(y);
    }
    for v in [&mut ratios, &mut a, &mut b] {
        v.sort_by(f64::total_cmp);
    }
    let q = |v: &[f64], p: usize| v[(v.len() - 1) * p / 100];
    println!(
        "interleaved {what}: ratio median {:.3} (p25 {:.3}, p75 {:.3}); ours {:.2} ns, peer {:.2} ns (medians of {ROUNDS} rounds)",
        q(&ratios, 50),
        q(&ratios, 25),
        q(&ratios, 75),
        q(&a, 50),
        q(&b, 50)
    );
}

fn uncontended(c: &mut Criterion) {
    let _keep = second_thread();
    let shared = Shared::anonymous(Mutex::new(0u64)).unwrap();
    // Borrowed once, as a user holds `&Mutex` inside a shared struct.
    let ours: &Mutex<u64> = &shared;
    let pl = parking_lot::Mutex::new(0u64);
    let st = std::sync::Mutex::new(0u64);
    let gl = GlibcRobust::new();
    let glibc = || {
        gl.lock();
        let c = gl.counter();
        c.store(c.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
        gl.unlock();
    };
    let mine = || {
        if let Ok(mut g) = ours.lock() {
            *g += 1;
        }
    };
    interleaved("Mutex / parking_lot::Mutex", mine, || *pl.lock() += 1);
    interleaved("Mutex / std::sync::Mutex", mine, || *st.lock().unwrap() += 1);
    interleaved("Mutex / glibc pshared robust", mine, glibc);
    let mut g = c.benchmark_group("uncontended lock+inc+unlock");
    g.bench_function("ipc-lock Mutex (shm)", |b| {
        b.iter(|| {
            let mut guard = ours.lock().unwrap();
            *guard += 1;
        })
    });
    g.bench_function("parking_lot::Mutex", |b| b.iter(|| *pl.lock() += 1));
    g.bench_function("std::sync::Mutex", |b| b.iter(|| *st.lock().unwrap() += 1));
    g.bench_function("glibc pshared robust", |b| {
        b.iter(|| {
            gl.lock();
            let c = gl.counter();
            c.store(c.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
            gl.unlock();
        })
    });
    g.finish();
    black_box((*pl.lock(), gl.counter().load(Ordering::Relaxed)));
}

fn rwlock(c: &mut Criterion) {
    let _keep = second_thread();
    let shared = Shared::anonymous(RwLock::new(7u64)).unwrap();
    let ours: &RwLock<u64> = &shared;
    let pl = parking_lot::RwLock::new(7u64);
    let st = std::sync::RwLock::new(7u64);
    let mine = || {
        if let Ok(g) = ours.read() {
            black_box(*g);
        }
    };
    interleaved("RwLock read / parking_lot::RwLock read", mine, || {
        black_box(*pl.read());
    });
    interleaved("RwLock read / std::sync::RwLock read", mine, || {
        black_box(*st.read().unwrap());
    });
    let mut g = c.benchmark_group("uncontended rwlock");
    g.bench_function("read ipc-lock RwLock (shm)", |b| b.iter(|| black_box(*ours.read().unwrap())));
    g.bench_function("read parking_lot::RwLock", |b| b.iter(|| black_box(*pl.read())));
    g.bench_function("read std::sync::RwLock", |b| b.iter(|| black_box(*st.read().unwrap())));
    g.bench_function("write ipc-lock RwLock (shm)", |b| b.iter(|| *ours.write().unwrap() += 1));
    g.bench_function("write parking_lot::RwLock", |b| b.iter(|| *pl.write() += 1));
    g.finish();
}

/// Pin the calling thread to `cpu`; returns the previous mask.
fn pin(cpu: usize) -> libc::cpu_set_t {
    // SAFETY: cpu_set_t is a plain bit array; zero is a valid (empty) set.
    let mut old: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `old` is a valid out-pointer of the given size.
    unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &raw mut old) };
    // SAFETY: as above.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` < CPU_SETSIZE; `set` is ours.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid mask of the given size.
    unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &raw const set) };
    old
}

fn unpin(old: &libc::cpu_set_t) {
    // SAFETY: `old` is a valid mask of the given size.
    unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), old) };
}

/// Fork a child pinned to `cpu` that runs `f` and leaves with `_exit`; returns its pid.
fn fork_child_on(cpu: usize, f: impl FnOnce()) -> libc::pid_t {
    #[allow(clippy::disallowed_methods)] // a benchmark of cross-process locks needs a process
    // SAFETY: the child only runs `f` (locks and atomics in shared memory) and `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        pin(cpu);
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_ok();
        // SAFETY: leave without running the parent's destructors.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    pid
}

fn reap(pid: libc::pid_t) {
    let mut status = 0;
    // SAFETY: `pid` is our child; `status` a valid out-pointer.
    unsafe { libc::waitpid(pid, &raw mut status, 0) };
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "bench child failed");
}

/// Both processes arrive before either starts.
fn rendezvous(flag: &AtomicU32) {
    flag.fetch_add(1, Ordering::SeqCst);
    let t = Instant::now();
    while flag.load(Ordering::SeqCst) < 2 {
        std::hint::spin_loop();
        assert!(t.elapsed() < Duration::from_secs(10), "rendezvous timed out");
    }
}

#[repr(C)]
struct Contended {
    lock: Mutex<u64>,
    start: AtomicU32,
}

// SAFETY: a Pod mutex and an atomic: no pointers, any bits valid, no drop, repr(C).
unsafe impl ShmSafe for Contended {}

/// Run `work(1)` in a child pinned to cpu1 and `work(0)` here pinned to cpu0; the wall time.
fn two_processes(work: impl Fn(u64) + Copy) -> Duration {
    two_processes_on(1, work)
}

/// [`two_processes`] with the child on `child_cpu` (0: both on cpu0).
fn two_processes_on(child_cpu: usize, work: impl Fn(u64) + Copy) -> Duration {
    let old = pin(0);
    let pid = fork_child_on(child_cpu, || work(1));
    let t = Instant::now();
    work(0);
    reap(pid);
    let el = t.elapsed();
    unpin(&old);
    el
}

/// Two processes, `iters` x (lock; counter++; unlock) each, on our mutex: the wall time.
fn contended_ours(iters: u64) -> Duration {
    let s = Shared::anonymous(Contended { lock: Mutex::new(0), start: AtomicU32::new(0) }).unwrap();
    let s = &s;
    let el = two_processes(|_| {
        rendezvous(&s.start);
        for _ in 0..iters {
            *s.lock.lock().unwrap() += 1;
        }
    });
    assert_eq!(*s.lock.lock().unwrap(), 2 * iters);
    el
}

/// The same on the glibc robust pshared mutex.
fn contended_glibc(iters: u64) -> Duration {
    let gl = GlibcRobust::new();
    let gl = &gl;
    let el = two_processes(|_| {
        rendezvous(gl.start());
        for _ in 0..iters {
            gl.lock();
            let c = gl.counter();
            c.store(c.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
            gl.unlock();
        }
    });
    assert_eq!(u64::from(gl.counter().load(Ordering::Relaxed)), (2 * iters) & 0xffff_ffff);
    el
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn contended(c: &mut Criterion) {
    // Interleaved rounds of 2 x 200k ops each: the median ratio of the per-op times.
    let (mut ours, mut glibc, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..9 {
        let n = 200_000;
        let per_op = |d: Duration| d.as_secs_f64() * 1e9 / (2.0 * n as f64);
        let (a, b) = if round % 2 == 0 {
            let a = per_op(contended_ours(n));
            (a, per_op(contended_glibc(n)))
        } else {
            let b = per_op(contended_glibc(n));
            (per_op(contended_ours(n)), b)
        };
        ours.push(a);
        glibc.push(b);
        ratio.push(b / a);
    }
    println!(
        "interleaved contended 2 processes: throughput ours/glibc robust median {:.2}x; ours {:.1} ns/op, glibc {:.1} ns/op (medians of 9 rounds)",
        median(&mut ratio),
        median(&mut ours),
        median(&mut glibc)
    );
    let mut g = c.benchmark_group("contended 2 processes (cpu0+cpu1), per op");
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(4));
    g.bench_function("ipc-lock Mutex", |b| b.iter_custom(|iters| contended_ours(iters) / 2));
    g.bench_function("glibc pshared robust", |b| b.iter_custom(|iters| contended_glibc(iters) / 2));
    g.finish();
}

fn monotonic_ns() -> u64 {
    // SAFETY: zero is a valid timespec.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: `ts` is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    ts.tv_sec.unsigned_abs() * 1_000_000_000 + ts.tv_nsec.unsigned_abs()
}

/// Handoffs recorded per run (the samples the interleaved report takes medians of).
const SAMPLES: usize = 256;

/// Shared state of a handoff run: stamps, the accumulated handoff time, the turn counter, the
/// first `SAMPLES` handoffs.
#[repr(C)]
struct Handoff {
    lock: Mutex<u64>,
    futex: AtomicU32,
    parked: AtomicU32,
    turn: AtomicU32,
    start: AtomicU32,
    stamp: AtomicU64,
    total: AtomicU64,
    samples: [AtomicU64; SAMPLES],
}

// SAFETY: a Pod mutex and atomics.
unsafe impl ShmSafe for Handoff {}

fn handoff_state() -> Shared<Handoff> {
    Shared::anonymous(Handoff {
        lock: Mutex::new(0),
        futex: AtomicU32::new(0),
        parked: AtomicU32::new(0),
        turn: AtomicU32::new(0),
        start: AtomicU32::new(0),
        stamp: AtomicU64::new(0),
        total: AtomicU64::new(0),
        samples: std::array::from_fn(|_| AtomicU64::new(0)),
    })
    .unwrap()
}

fn record(s: &Handoff, i: u64, ns: u64) {
    s.total.fetch_add(ns, Ordering::SeqCst);
    if let Some(slot) = s.samples.get(i as usize) {
        slot.store(ns, Ordering::SeqCst);
    }
}

/// Wait until `parked()` (the waiter's flag is up), then a little longer so it is asleep in
/// the kernel, not just about to enter it.
fn until_parked(parked: impl Fn() -> bool) {
    let t = Instant::now();
    while !parked() {
        std::hint::spin_loop();
        assert!(t.elapsed() < Duration::from_secs(10), "peer never parked");
    }
    let t = Instant::now();
    while t.elapsed() < Duration::from_micros(20) {
        std::hint::spin_loop();
    }
}

/// One process's side of a lock handoff run: on its turns it holds the lock until the other
/// parks, stamps and unlocks; on the others' it waits for the turn, locks (parking), stamps.
fn handoff_side(
    s: &Handoff,
    me: u64,
    iters: u64,
    lock: &dyn Fn(),
    unlock: &dyn Fn(),
    parked: &dyn Fn() -> bool,
) {
    rendezvous(&s.start);
    for i in 0..iters {
        let turn = (i as u32).wrapping_mul(2).wrapping_add(1);
        if i % 2 == me {
            lock();
            s.turn.store(turn, Ordering::SeqCst);
            until_parked(parked);
            s.stamp.store(monotonic_ns(), Ordering::SeqCst);
            unlock();
        } else {
            while s.turn.load(Ordering::SeqCst) != turn {
                std::hint::spin_loop();
            }
            lock();
            let now = monotonic_ns();
            record(s, i, now.saturating_sub(s.stamp.load(Ordering::SeqCst)));
            unlock();
        }
    }
}

/// One handoff run of `iters` handoffs on our mutex.
fn handoff_ours(iters: u64) -> Shared<Handoff> {
    let s = handoff_state();
    let r = &s;
    two_processes(|me| {
        // The guard lives between the two closures.
        let held = std::cell::RefCell::new(None);
        handoff_side(
            r,
            me,
            iters,
            &|| *held.borrow_mut() = Some(r.lock.lock().unwrap()),
            &|| drop(held.borrow_mut().take()),
            &|| r.lock.raw().word_value() & (1 << 31) != 0,
        );
    });
    s
}

/// One handoff run on the glibc robust mutex.
fn handoff_glibc(iters: u64) -> Shared<Handoff> {
    let s = handoff_state();
    let gl = GlibcRobust::new();
    let (r, gl) = (&s, &gl);
    two_processes(|me| {
        handoff_side(r, me, iters, &|| gl.lock(), &|| gl.unlock(), &|| gl.word() & (1 << 31) != 0);
    });
    s
}

/// One handoff run on a raw futex word (store + FUTEX_WAKE to a waiter in FUTEX_WAIT).
fn handoff_futex(iters: u64) -> Shared<Handoff> {
    let s = handoff_state();
    let r = &s;
    two_processes(|me| {
        rendezvous(&r.start);
        for i in 0..iters {
            let value = i as u32 + 1;
            if i % 2 == me {
                until_parked(|| r.parked.load(Ordering::SeqCst) == value);
                r.stamp.store(monotonic_ns(), Ordering::SeqCst);
                r.futex.store(value, Ordering::SeqCst);
                futex::wake_one(&r.futex);
            } else {
                r.parked.store(value, Ordering::SeqCst);
                while r.futex.load(Ordering::SeqCst) != value {
                    futex::wait(&r.futex, value - 1, None);
                }
                let now = monotonic_ns();
                record(r, i, now.saturating_sub(r.stamp.load(Ordering::SeqCst)));
            }
        }
    });
    s
}

/// The median handoff of a run, in µs.
fn median_handoff(s: &Handoff, iters: u64) -> f64 {
    let n = (iters as usize).min(SAMPLES);
    let mut v: Vec<f64> =
        s.samples[..n].iter().map(|x| x.load(Ordering::SeqCst) as f64 / 1e3).collect();
    median(&mut v)
}

/// Ours, glibc's and the floor's figure (µs) in 9 interleaved rounds: the medians of each and
/// of the per-round ratios to the floor, printed as `what (peer)`.
fn ours_glibc_floor(
    what: &str,
    peer: &str,
    mut ours: impl FnMut() -> f64,
    mut glibc: impl FnMut() -> f64,
    mut floor: impl FnMut() -> f64,
) {
    let mut runs: [Vec<f64>; 5] = Default::default();
    for _ in 0..9 {
        let (a, b, f) = (ours(), glibc(), floor());
        for (v, x) in runs.iter_mut().zip([a, b, f, a / f, b / f]) {
            v.push(x);
        }
    }
    let [a, b, f, ra, rb] = runs.map(|mut v| median(&mut v));
    println!(
        "interleaved {what}: ours {a:.2} us, {peer} {b:.2} us, raw futex {f:.2} us; ours/futex {ra:.2}x, glibc/futex {rb:.2}x (medians of 9 rounds)"
    );
}

fn handoff(c: &mut Criterion) {
    // Interleaved rounds of 200 handoffs each: medians per run, then the median over rounds
    // of each mechanism and of the per-round ratios to the raw futex.
    let n = 200;
    ours_glibc_floor(
        "handoff to a parked waiter (cpu0/cpu1, 200 per round)",
        "glibc robust",
        || median_handoff(&handoff_ours(n), n),
        || median_handoff(&handoff_glibc(n), n),
        || median_handoff(&handoff_futex(n), n),
    );
    let mut g = c.benchmark_group("handoff to a parked waiter (2 processes, cpu0/cpu1)");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(3));
    let total = |s: Shared<Handoff>| Duration::from_nanos(s.total.load(Ordering::SeqCst));
    g.bench_function("ipc-lock Mutex", |b| b.iter_custom(|iters| total(handoff_ours(iters))));
    g.bench_function("glibc pshared robust", |b| {
        b.iter_custom(|iters| total(handoff_glibc(iters)))
    });
    g.bench_function("raw futex (floor)", |b| b.iter_custom(|iters| total(handoff_futex(iters))));
    g.finish();
}

/// The state of a condvar ping-pong: whose turn it is (even: side 0) under the mutex.
#[repr(C)]
struct PingPong {
    m: Mutex<u32>,
    cv: Condvar,
    start: AtomicU32,
    futex: AtomicU32,
}

// SAFETY: a Pod mutex, a condvar and atomics: no pointers, any bits valid, no drop, repr(C).
unsafe impl ShmSafe for PingPong {}

fn ping_pong_state() -> Shared<PingPong> {
    Shared::anonymous(PingPong {
        m: Mutex::new(0),
        cv: Condvar::new(),
        start: AtomicU32::new(0),
        futex: AtomicU32::new(0),
    })
    .unwrap()
}

/// `iters` round trips through our Mutex + Condvar, the child on `cpu`: time per round trip.
fn condvar_ours(cpu: usize, iters: u64) -> Duration {
    let s = ping_pong_state();
    let s = &s;
    let el = two_processes_on(cpu, |me| {
        rendezvous(&s.start);
        let mut g = s.m.lock().unwrap();
        for _ in 0..iters {
            while u64::from(*g) % 2 != me {
                g = s.cv.wait(g).unwrap();
            }
            *g += 1;
            s.cv.notify_one();
        }
    });
    assert_eq!(u64::from(*s.m.lock().unwrap()), 2 * iters);
    el / u32::try_from(iters).unwrap()
}

/// A glibc pshared mutex (offset 0) and condition variable (offset 256), the turn at 512 and
/// a start flag at 1024, in an anonymous shared segment.
struct GlibcCond {
    shm: Shm,
}

impl GlibcCond {
    fn new() -> GlibcCond {
        let shm = Shm::anonymous(4096).unwrap();
        let base = shm.as_ptr().as_ptr();
        #[allow(clippy::cast_ptr_alignment)] // page-aligned mapping, offsets 0 and 256
        let (m, c) = (base.cast::<libc::pthread_mutex_t>(), base.wrapping_add(256).cast());
        // SAFETY: zeroed attribute objects, initialised by the init calls before any use.
        let mut ma: libc::pthread_mutexattr_t = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut ca: libc::pthread_condattr_t = unsafe { std::mem::zeroed() };
        let (pma, pca) = (&raw mut ma, &raw mut ca);
        // SAFETY: `pma` points at our local attribute object.
        assert_eq!(unsafe { libc::pthread_mutexattr_init(pma) }, 0);
        // SAFETY: as above, initialised.
        let rc = unsafe { libc::pthread_mutexattr_setpshared(pma, libc::PTHREAD_PROCESS_SHARED) };
        assert_eq!(rc, 0);
        // SAFETY: `m` points at zeroed, aligned, writable bytes of our mapping nobody else
        // uses yet; `pma` is initialised.
        assert_eq!(unsafe { libc::pthread_mutex_init(m, pma) }, 0);
        // SAFETY: `pca` points at our local attribute object.
        assert_eq!(unsafe { libc::pthread_condattr_init(pca) }, 0);
        // SAFETY: as above, initialised.
        let rc = unsafe { libc::pthread_condattr_setpshared(pca, libc::PTHREAD_PROCESS_SHARED) };
        assert_eq!(rc, 0);
        // SAFETY: as for the mutex, at offset 256; `pca` is initialised.
        assert_eq!(unsafe { libc::pthread_cond_init(c, pca) }, 0);
        GlibcCond { shm }
    }

    fn parts(&self) -> (*mut libc::pthread_mutex_t, *mut libc::pthread_cond_t) {
        let base = self.shm.as_ptr().as_ptr();
        #[allow(clippy::cast_ptr_alignment)] // as in `new`
        (base.cast(), base.wrapping_add(256).cast())
    }

    fn turn(&self) -> &AtomicU32 {
        // SAFETY: offset 512 is only ever accessed as this atomic word.
        unsafe { self.shm.atomic_u32(512) }.unwrap()
    }

    fn start(&self) -> &AtomicU32 {
        // SAFETY: offset 1024 is only ever accessed as this atomic word.
        unsafe { self.shm.atomic_u32(1024) }.unwrap()
    }
}

/// The same ping-pong through glibc's pshared mutex and condition variable.
fn condvar_glibc(cpu: usize, iters: u64) -> Duration {
    let gl = GlibcCond::new();
    let gl = &gl;
    let el = two_processes_on(cpu, |me| {
        rendezvous(gl.start());
        let (m, c) = gl.parts();
        // SAFETY: `m` is an initialised pshared mutex in our live mapping.
        unsafe { libc::pthread_mutex_lock(m) };
        for _ in 0..iters {
            while u64::from(gl.turn().load(Ordering::Relaxed)) % 2 != me {
                // SAFETY: `c` is an initialised pshared condvar there; we hold `m`.
                unsafe { libc::pthread_cond_wait(c, m) };
            }
            gl.turn().fetch_add(1, Ordering::Relaxed);
            // SAFETY: as above.
            unsafe { libc::pthread_cond_signal(c) };
        }
        // SAFETY: we hold `m`.
        unsafe { libc::pthread_mutex_unlock(m) };
    });
    assert_eq!(u64::from(gl.turn().load(Ordering::SeqCst)), 2 * iters);
    el / u32::try_from(iters).unwrap()
}

/// The floor: a raw futex ping-pong in which both sides always sleep.
fn condvar_floor(cpu: usize, iters: u64) -> Duration {
    let s = ping_pong_state();
    let s = &s;
    let el = two_processes_on(cpu, |me| {
        rendezvous(&s.start);
        for _ in 0..iters {
            loop {
                let v = s.futex.load(Ordering::SeqCst);
                if u64::from(v) % 2 == me {
                    break;
                }
                futex::wait(&s.futex, v, None);
            }
            s.futex.fetch_add(1, Ordering::SeqCst);
            futex::wake_one(&s.futex);
        }
    });
    el / u32::try_from(iters).unwrap()
}

fn condvar(c: &mut Criterion) {
    // Interleaved rounds: the median per-round ratio to the raw futex ping-pong.
    for (cpu, place, n) in [(1, "cross-core cpu0/cpu1", 2_000), (0, "same core cpu0/cpu0", 20_000)]
    {
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        ours_glibc_floor(
            &format!("condvar ping-pong RTT ({place}, {n} per round)"),
            "glibc pshared cond",
            || us(condvar_ours(cpu, n)),
            || us(condvar_glibc(cpu, n)),
            || us(condvar_floor(cpu, n)),
        );
    }
    let mut g = c.benchmark_group("condvar ping-pong RTT (2 processes, cpu0/cpu1)");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(3));
    let per = |d: Duration, iters: u64| d * u32::try_from(iters).unwrap();
    g.bench_function("ipc-lock Condvar", |b| b.iter_custom(|i| per(condvar_ours(1, i), i)));
    g.bench_function("glibc pshared cond", |b| b.iter_custom(|i| per(condvar_glibc(1, i), i)));
    g.bench_function("raw futex (floor)", |b| b.iter_custom(|i| per(condvar_floor(1, i), i)));
    g.finish();
}

criterion_group!(benches, uncontended, rwlock, contended, handoff, condvar);
criterion_main!(benches);
