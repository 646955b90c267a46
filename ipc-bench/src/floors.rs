//! The floors: what the hardware and the kernel allow, measured in the same run as
//! everything else.

use std::fs::File;
use std::hint::black_box;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use ipc_shm::Shm;
use ipc_shm::futex;
use rustix::net::{AddressFamily, SocketFlags, SocketType};

use crate::harness::{
    Ctx, Fail, Initiator, OrFail, Outcome, STOP, anon, contended_procs, copy_in, copy_out,
    ping_pong, spin_until, stream_from_peer, time_ops, timed_out, word,
};

/// Offset of the second region: its own pair of cache lines, away from the first.
fn second_region(size: usize) -> usize {
    (8 + size).div_ceil(128) * 128
}

fn next_seq(seq: u32) -> u32 {
    match seq.wrapping_add(1) {
        0 | STOP => 1,
        s => s,
    }
}

struct SpinInit<'a> {
    shm: &'a Shm,
    ping: &'a AtomicU32,
    pong: &'a AtomicU32,
    b: usize,
    seq: u32,
    buf: Vec<u8>,
    deadline: Instant,
}

impl Initiator for SpinInit<'_> {
    fn round_trip(&mut self) -> Result<(), Fail> {
        self.seq = next_seq(self.seq);
        copy_in(self.shm, 8, &self.buf)?;
        // Release: pairs with the Acquire load in the echo loop; publishes the payload.
        self.ping.store(self.seq, Ordering::Release);
        let (pong, seq) = (self.pong, self.seq);
        // Acquire: pairs with the echo's Release store; the echoed payload is visible.
        spin_until(self.deadline, "spin echo", || pong.load(Ordering::Acquire) == seq)?;
        copy_out(self.shm, self.b + 8, &mut self.buf)
    }

    fn stop(&mut self) {
        self.ping.store(STOP, Ordering::Release);
    }
}

/// Spin ping-pong between two processes: a flag word per direction on its own cache line
/// pair, the payload right after the flag (in the flag's line for 8 B).
pub fn spin2(ctx: &Ctx) -> Outcome {
    let size = ctx.size.max(1);
    let b = second_region(size);
    let shm = anon((b + 8 + size).div_ceil(4096) * 4096)?;
    let (ping, pong) = (word(&shm, 0)?, word(&shm, b)?);
    let deadline = ctx.peer_deadline();
    let shm_ref = &shm;
    let echo = move || -> Result<(), Fail> {
        let mut buf = vec![0u8; size];
        let mut last = 0;
        loop {
            let mut v = 0;
            // Acquire: pairs with the initiator's Release store of the flag.
            spin_until(deadline, "spin ping", || {
                v = ping.load(Ordering::Acquire);
                v != last
            })?;
            if v == STOP {
                return Ok(());
            }
            copy_out(shm_ref, 8, &mut buf)?;
            copy_in(shm_ref, b + 8, &buf)?;
            // Release: pairs with the initiator's Acquire; publishes the echoed payload.
            pong.store(v, Ordering::Release);
            last = v;
        }
    };
    let init = SpinInit { shm: &shm, ping, pong, b, seq: 0, buf: vec![0u8; size], deadline };
    ping_pong(ctx, 0, echo, init)
}

struct Spin1Init<'a> {
    word: &'a AtomicU32,
    next: u32,
    deadline: Instant,
}

impl Initiator for Spin1Init<'_> {
    fn round_trip(&mut self) -> Result<(), Fail> {
        let odd = self.next;
        self.next = self.next.wrapping_add(2) & 0x7fff_ffff;
        // Release/Acquire: the counter itself is the message; pairs with the echo's RMW.
        self.word.store(odd, Ordering::Release);
        let w = self.word;
        spin_until(self.deadline, "spin1 echo", || w.load(Ordering::Acquire) == odd + 1)
    }

    fn stop(&mut self) {
        self.word.store(STOP, Ordering::Release);
    }
}

/// Spin ping-pong on one shared cache line: odd values go out, the echo adds one.
pub fn spin1(ctx: &Ctx) -> Outcome {
    let shm = anon(4096)?;
    let w = word(&shm, 0)?;
    let deadline = ctx.peer_deadline();
    let echo = move || -> Result<(), Fail> {
        loop {
            let mut v = 0;
            spin_until(deadline, "spin1 ping", || {
                v = w.load(Ordering::Acquire);
                v % 2 == 1
            })?;
            if v == STOP {
                return Ok(());
            }
            // Release: pairs with the initiator's Acquire load.
            w.store(v + 1, Ordering::Release);
        }
    };
    ping_pong(ctx, 0, echo, Spin1Init { word: w, next: 1, deadline })
}

struct FutexInit<'a> {
    ping: &'a AtomicU32,
    pong: &'a AtomicU32,
    seq: u32,
    deadline: Instant,
}

impl Initiator for FutexInit<'_> {
    fn round_trip(&mut self) -> Result<(), Fail> {
        self.seq = next_seq(self.seq);
        // Release: pairs with the echo's Acquire load.
        self.ping.store(self.seq, Ordering::Release);
        futex::wake_one(self.ping);
        loop {
            // Acquire: pairs with the echo's Release store.
            let v = self.pong.load(Ordering::Acquire);
            if v == self.seq {
                return Ok(());
            }
            if futex::wait(self.pong, v, Some(self.deadline)) == futex::WaitResult::TimedOut {
                return Err(timed_out("futex echo"));
            }
        }
    }

    fn stop(&mut self) {
        self.ping.store(STOP, Ordering::Release);
        futex::wake_one(self.ping);
    }
}

/// Raw futex ping-pong: store, unconditional FUTEX_WAKE, sleep in FUTEX_WAIT until the
/// echo arrives. The reference for every blocking mechanism.
pub fn futex(ctx: &Ctx) -> Outcome {
    let shm = anon(4096)?;
    let (ping, pong) = (word(&shm, 0)?, word(&shm, 128)?);
    let deadline = ctx.peer_deadline();
    let echo = move || -> Result<(), Fail> {
        let mut last = 0;
        loop {
            // Acquire: pairs with the initiator's Release store.
            let v = ping.load(Ordering::Acquire);
            if v == last {
                if futex::wait(ping, last, Some(deadline)) == futex::WaitResult::TimedOut {
                    return Err(timed_out("futex ping"));
                }
                continue;
            }
            if v == STOP {
                return Ok(());
            }
            // Release: pairs with the initiator's Acquire load.
            pong.store(v, Ordering::Release);
            futex::wake_one(pong);
            last = v;
        }
    };
    ping_pong(ctx, 0, echo, FutexInit { ping, pong, seq: 0, deadline })
}

/// The simplest futex mutex (Drepper's three states: 0 unlocked, 1 locked, 2 contended;
/// untimed waits, no robustness), driven by the same handoff code as the locks: the floor of
/// the handoff operation itself, where RTT/2 of a tight ping-pong is a different one.
#[derive(Debug, Clone, Copy)]
struct FutexMutex<'a>(&'a AtomicU32);

impl crate::lockbench::BenchLock for FutexMutex<'_> {
    fn with(&self, f: &mut dyn FnMut() -> Result<(), Fail>) -> Result<bool, Fail> {
        let w = self.0;
        // Acquire: pairs with the Release swap in unlock.
        if w.compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed).is_err() {
            // Acquire: as above.
            while w.swap(2, Ordering::Acquire) != 0 {
                futex::wait(w, 2, None);
            }
        }
        let r = f();
        // Release: publishes the critical section to the next owner's Acquire.
        if w.swap(0, Ordering::Release) == 2 {
            futex::wake_one(w);
        }
        r.map(|()| false)
    }
}

/// Handoff of the raw futex mutex to a parked waiter in another process.
pub fn futex_mutex_handoff(ctx: &Ctx) -> Outcome {
    let shm = anon(4096)?;
    let w = word(&shm, 0)?;
    crate::lockbench::handoff(ctx, FutexMutex(w))
}

/// Half the raw futex round trip: the floor of a one-way handoff.
pub fn futex_oneway(ctx: &Ctx) -> Outcome {
    futex(ctx).map(|m| m.scaled(0.5))
}

/// Round trips of `size` bytes over a pair of streams (the first byte 1 means stop).
#[derive(Debug)]
pub struct StreamInit<W: Write, R: Read> {
    /// Towards the echo.
    pub tx: W,
    /// From the echo.
    pub rx: R,
    /// The message.
    pub buf: Vec<u8>,
}

impl<W: Write, R: Read> Initiator for StreamInit<W, R> {
    fn round_trip(&mut self) -> Result<(), Fail> {
        self.tx.write_all(&self.buf).or_fail("write")?;
        self.rx.read_exact(&mut self.buf).or_fail("read")
    }

    fn stop(&mut self) {
        if let Some(b) = self.buf.first_mut() {
            *b = 1;
        }
        let _ = self.tx.write_all(&self.buf);
    }
}

/// The echo side of [`StreamInit`].
pub fn stream_echo(mut rx: impl Read, mut tx: impl Write, size: usize) -> Result<(), Fail> {
    let mut buf = vec![0u8; size];
    loop {
        match rx.read_exact(&mut buf) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(Fail::Error(format!("echo read: {e}"))),
        }
        if buf.first() == Some(&1) {
            return Ok(());
        }
        tx.write_all(&buf).or_fail("echo write")?;
    }
}

fn unix_pair() -> Result<(UnixStream, UnixStream), Fail> {
    let (a, b) = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .or_fail("socketpair")?;
    Ok((UnixStream::from(a), UnixStream::from(b)))
}

fn pipe_pair() -> Result<(File, File), Fail> {
    let (r, w): (OwnedFd, OwnedFd) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).or_fail("pipe2")?;
    Ok((File::from(r), File::from(w)))
}

/// Raw socketpair ping-pong of the group's size.
pub fn socketpair(ctx: &Ctx) -> Outcome {
    socketpair_n(ctx, ctx.size.max(1))
}

/// Raw socketpair 1-byte ping-pong.
pub fn socketpair_1b(ctx: &Ctx) -> Outcome {
    socketpair_n(ctx, 1)
}

fn socketpair_n(ctx: &Ctx, size: usize) -> Outcome {
    let (a, b) = unix_pair()?;
    let b2 = b.try_clone().or_fail("dup")?;
    let a2 = a.try_clone().or_fail("dup")?;
    ping_pong(
        ctx,
        0,
        move || stream_echo(b, b2, size),
        StreamInit { tx: a, rx: a2, buf: vec![0; size] },
    )
}

/// Raw TCP loopback ping-pong of the group's size: a connected pair over 127.0.0.1 with
/// `TCP_NODELAY` on both ends (as every ipc-pipe TCP connection has).
pub fn tcp(ctx: &Ctx) -> Outcome {
    let size = ctx.size.max(1);
    let l = std::net::TcpListener::bind(("127.0.0.1", 0)).or_fail("tcp bind")?;
    let a = std::net::TcpStream::connect(l.local_addr().or_fail("tcp address")?)
        .or_fail("tcp connect")?;
    let (b, _) = l.accept().or_fail("tcp accept")?;
    drop(l);
    a.set_nodelay(true).or_fail("TCP_NODELAY")?;
    b.set_nodelay(true).or_fail("TCP_NODELAY")?;
    let (a2, b2) = (a.try_clone().or_fail("dup")?, b.try_clone().or_fail("dup")?);
    ping_pong(
        ctx,
        0,
        move || stream_echo(b, b2, size),
        StreamInit { tx: a, rx: a2, buf: vec![0; size] },
    )
}

/// Raw pipe(2) pair ping-pong of the group's size.
pub fn pipe(ctx: &Ctx) -> Outcome {
    pipe_n(ctx, ctx.size.max(1))
}

/// Raw pipe(2) 1-byte ping-pong.
pub fn pipe_1b(ctx: &Ctx) -> Outcome {
    pipe_n(ctx, 1)
}

fn pipe_n(ctx: &Ctx, size: usize) -> Outcome {
    let (there_r, there_w) = pipe_pair()?;
    let (back_r, back_w) = pipe_pair()?;
    ping_pong(
        ctx,
        0,
        move || stream_echo(there_r, back_w, size),
        StreamInit { tx: there_w, rx: back_r, buf: vec![0; size] },
    )
}

struct EventfdInit {
    ping: File,
    pong: File,
}

impl Initiator for EventfdInit {
    fn round_trip(&mut self) -> Result<(), Fail> {
        self.ping.write_all(&1u64.to_ne_bytes()).or_fail("eventfd write")?;
        let mut v = [0u8; 8];
        self.pong.read_exact(&mut v).or_fail("eventfd read")
    }

    fn stop(&mut self) {
        let _ = self.ping.write_all(&1000u64.to_ne_bytes());
    }
}

/// Raw eventfd ping-pong (one eventfd per direction).
pub fn eventfd(ctx: &Ctx) -> Outcome {
    use rustix::event::{EventfdFlags, eventfd};
    let ping = File::from(eventfd(0, EventfdFlags::CLOEXEC).or_fail("eventfd")?);
    let pong = File::from(eventfd(0, EventfdFlags::CLOEXEC).or_fail("eventfd")?);
    let (ping2, pong2) = (ping.try_clone().or_fail("dup")?, pong.try_clone().or_fail("dup")?);
    let echo = move || -> Result<(), Fail> {
        let (mut ping, mut pong) = (ping2, pong2);
        let mut v = [0u8; 8];
        loop {
            ping.read_exact(&mut v).or_fail("eventfd read")?;
            if u64::from_ne_bytes(v) >= 1000 {
                return Ok(());
            }
            pong.write_all(&1u64.to_ne_bytes()).or_fail("eventfd write")?;
        }
    };
    ping_pong(ctx, 0, echo, EventfdInit { ping, pong })
}

fn memcpy(ctx: &Ctx, size: usize) -> Outcome {
    crate::harness::pin(ctx.placement.cpus().0)?;
    let src = vec![1u8; size];
    let mut dst = vec![0u8; size];
    time_ops(ctx, size as u64, || {
        dst.copy_from_slice(black_box(&src));
        black_box(&mut dst);
        Ok(())
    })
}

/// memcpy of 4 KiB (L1).
pub fn memcpy_4k(ctx: &Ctx) -> Outcome {
    memcpy(ctx, 4 << 10)
}

/// memcpy of 1 MiB (L2).
pub fn memcpy_1m(ctx: &Ctx) -> Outcome {
    memcpy(ctx, 1 << 20)
}

/// memcpy of 256 MiB (DRAM).
pub fn memcpy_256m(ctx: &Ctx) -> Outcome {
    memcpy(ctx, 256 << 20)
}

/// Keep a second thread alive (parked) while `f` runs: glibc skips atomics in a
/// single-threaded process, which would flatter its private mutexes.
pub fn with_second_thread<T>(f: impl FnOnce() -> T) -> T {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let idle = std::thread::spawn(move || {
        let _ = rx.recv();
    });
    let out = f();
    drop(tx);
    let _ = idle.join();
    out
}

/// `FUTEX_WAKE` on a word nobody waits on: the cost of an unconditional wake.
pub fn futex_wake(ctx: &Ctx) -> Outcome {
    let shm = anon(4096)?;
    let w = word(&shm, 0)?;
    crate::harness::pin(Some(0))?;
    time_ops(ctx, 0, || {
        futex::wake_one(w);
        Ok(())
    })
}

/// Test-and-set spinlock in shared memory: swap to lock, store to unlock, a counter
/// increment inside (the same critical section as the lock rows).
pub fn tas(ctx: &Ctx) -> Outcome {
    let shm = anon(4096)?;
    let (lock, counter) = (word(&shm, 0)?, word(&shm, 64)?);
    crate::harness::pin(Some(0))?;
    with_second_thread(|| {
        time_ops(ctx, 0, || {
            // Acquire: pairs with the Release store of the previous unlock.
            while lock.swap(1, Ordering::Acquire) != 0 {
                std::hint::spin_loop();
            }
            // Relaxed: guarded by the lock (a plain increment in effect).
            counter.store(counter.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
            // Release: pairs with the next locker's Acquire swap.
            lock.store(0, Ordering::Release);
            Ok(())
        })
    })
}

/// Two atomic read-modify-writes on a shared word: the least any semaphore does.
pub fn rmw(ctx: &Ctx) -> Outcome {
    let shm = anon(4096)?;
    let w = word(&shm, 0)?;
    w.store(1, Ordering::Relaxed);
    crate::harness::pin(Some(0))?;
    with_second_thread(|| {
        time_ops(ctx, 0, || {
            // Acquire / Release: as a semaphore's acquire and release would pair.
            black_box(w.fetch_sub(1, Ordering::Acquire));
            black_box(w.fetch_add(1, Ordering::Release));
            Ok(())
        })
    })
}

/// Two processes incrementing one shared counter: the cost of bouncing one line.
pub fn counter_contended(ctx: &Ctx) -> Outcome {
    let shm = anon(4096)?;
    let w = word(&shm, 0)?;
    contended_procs(ctx, move || {
        // Relaxed: a counter; nothing else is published through it.
        black_box(w.fetch_add(1, Ordering::Relaxed));
        Ok(())
    })
}

fn read_chunk(rx: &mut impl Read, buf: &mut [u8]) -> Result<(), Fail> {
    rx.read_exact(buf).or_fail("read")
}

fn pump(mut tx: impl Write, size: usize) -> Result<(), Fail> {
    let chunk = vec![7u8; size];
    loop {
        tx.write_all(&chunk).or_fail("write")?;
    }
}

/// One-way 1 MiB chunks over a raw Unix stream socketpair (default buffers).
pub fn uds_tput(ctx: &Ctx) -> Outcome {
    let size = ctx.size.max(1);
    let (mut a, b) = unix_pair()?;
    let mut buf = vec![0u8; size];
    stream_from_peer(ctx, size as u64, move || pump(b, size), || read_chunk(&mut a, &mut buf))
}

/// One-way 1 MiB chunks over a raw pipe(2) (default 64 KiB pipe buffer).
pub fn pipe_tput(ctx: &Ctx) -> Outcome {
    let size = ctx.size.max(1);
    let (mut r, w) = pipe_pair()?;
    let mut buf = vec![0u8; size];
    stream_from_peer(ctx, size as u64, move || pump(w, size), || read_chunk(&mut r, &mut buf))
}

/// A reference SPSC ring in shared memory (rigtorp style: each side caches the other's
/// index), copying messages in and out. The producer is the forked peer.
pub fn ring_tput(ctx: &Ctx) -> Outcome {
    let size = ctx.size.max(1);
    let slot = size.div_ceil(64) * 64;
    let cap: u32 = if size <= 4096 { 1024 } else { 16 };
    let base = 256;
    let shm = anon((base + slot * cap as usize).div_ceil(4096) * 4096)?;
    let (head, tail) = (word(&shm, 0)?, word(&shm, 128)?);
    let deadline = ctx.peer_deadline();
    let shm_ref = &shm;
    let producer = move || -> Result<(), Fail> {
        let msg = vec![3u8; size];
        let (mut t, mut cached_head) = (0u32, 0u32);
        loop {
            if t.wrapping_sub(cached_head) == cap {
                // Acquire: pairs with the consumer's Release of head; the slot is free.
                spin_until(deadline, "ring space", || {
                    cached_head = head.load(Ordering::Acquire);
                    t.wrapping_sub(cached_head) < cap
                })?;
            }
            let off = base + (t % cap) as usize * slot;
            copy_in(shm_ref, off, &msg)?;
            t = t.wrapping_add(1);
            // Release: pairs with the consumer's Acquire of tail; publishes the slot.
            tail.store(t, Ordering::Release);
        }
    };
    let mut buf = vec![0u8; size];
    let (mut h, mut cached_tail) = (0u32, 0u32);
    let consume = move || -> Result<(), Fail> {
        if h == cached_tail {
            // Acquire: pairs with the producer's Release of tail.
            spin_until(deadline, "ring data", || {
                cached_tail = tail.load(Ordering::Acquire);
                cached_tail != h
            })?;
        }
        let off = base + (h % cap) as usize * slot;
        copy_out(shm_ref, off, &mut buf)?;
        h = h.wrapping_add(1);
        // Release: pairs with the producer's Acquire of head; frees the slot.
        head.store(h, Ordering::Release);
        Ok(())
    };
    stream_from_peer(ctx, size as u64, producer, consume)
}

const SHM_LEN: usize = 1 << 20;

fn raw_shm_once(name: &str, reserve: bool) -> Result<(), Fail> {
    use rustix::fs::{FallocateFlags, Mode};
    use rustix::shm::OFlags;
    let fd = rustix::shm::open(
        name,
        OFlags::CREATE | OFlags::EXCL | OFlags::RDWR,
        Mode::from_raw_mode(0o600),
    )
    .or_fail("shm_open")?;
    if reserve {
        rustix::fs::fallocate(fd.as_fd(), FallocateFlags::empty(), 0, SHM_LEN as u64)
            .or_fail("fallocate")?;
    } else {
        rustix::fs::ftruncate(fd.as_fd(), SHM_LEN as u64).or_fail("ftruncate")?;
    }
    let map = memmap2::MmapOptions::new().len(SHM_LEN).map_raw(&fd).or_fail("mmap")?;
    black_box(map.as_ptr());
    drop(map);
    drop(fd);
    rustix::shm::unlink(name).or_fail("shm_unlink")
}

fn raw_shm(ctx: &Ctx, reserve: bool) -> Outcome {
    crate::harness::pin(Some(0))?;
    let name = format!("/{}", ipc_shm::random_name("ipcbench-raw").or_fail("name")?);
    let res = time_ops(ctx, 0, || raw_shm_once(&name, reserve));
    let _ = rustix::shm::unlink(name.as_str());
    res
}

/// Raw shm_open + ftruncate + mmap + munmap + close + shm_unlink of 1 MiB.
pub fn shm_raw(ctx: &Ctx) -> Outcome {
    raw_shm(ctx, false)
}

/// As [`shm_raw`] with fallocate instead of ftruncate (space reserved, as ipc-shm's default).
pub fn shm_raw_fallocate(ctx: &Ctx) -> Outcome {
    raw_shm(ctx, true)
}

/// An eventfd waited on through `epoll_wait`, then read.
struct Epolled {
    ep: std::os::fd::OwnedFd,
    fd: File,
}

impl Epolled {
    fn new(fd: File) -> Result<Epolled, Fail> {
        use rustix::event::epoll;
        let ep = epoll::create(epoll::CreateFlags::CLOEXEC).or_fail("epoll_create")?;
        epoll::add(&ep, &fd, epoll::EventData::new_u64(0), epoll::EventFlags::IN)
            .or_fail("epoll_ctl")?;
        Ok(Epolled { ep, fd })
    }

    fn wait_read(&mut self) -> Result<u64, Fail> {
        use rustix::event::epoll;
        let mut events = [epoll::Event {
            flags: epoll::EventFlags::empty(),
            data: epoll::EventData::new_u64(0),
        }; 1];
        loop {
            match epoll::wait(&self.ep, &mut events, None) {
                Ok(n) if n > 0 => break,
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(Fail::Error(format!("epoll_wait: {e}"))),
            }
        }
        let mut v = [0u8; 8];
        self.fd.read_exact(&mut v).or_fail("eventfd read")?;
        Ok(u64::from_ne_bytes(v))
    }
}

struct EpollInit {
    ping: File,
    pong: Epolled,
}

impl Initiator for EpollInit {
    fn round_trip(&mut self) -> Result<(), Fail> {
        self.ping.write_all(&1u64.to_ne_bytes()).or_fail("eventfd write")?;
        self.pong.wait_read().map(|_| ())
    }

    fn stop(&mut self) {
        let _ = self.ping.write_all(&1000u64.to_ne_bytes());
    }
}

/// Eventfd ping-pong with each side sleeping in `epoll_wait` (the floor of a selector: one
/// readiness sleep over an fd, woken by a write).
pub fn epoll_eventfd(ctx: &Ctx) -> Outcome {
    use rustix::event::{EventfdFlags, eventfd};
    let ping = File::from(eventfd(0, EventfdFlags::CLOEXEC).or_fail("eventfd")?);
    let pong = File::from(eventfd(0, EventfdFlags::CLOEXEC).or_fail("eventfd")?);
    let (ping2, pong2) = (ping.try_clone().or_fail("dup")?, pong.try_clone().or_fail("dup")?);
    let echo = move || -> Result<(), Fail> {
        let mut ping = Epolled::new(ping2)?;
        let mut pong = pong2;
        loop {
            if ping.wait_read()? >= 1000 {
                return Ok(());
            }
            pong.write_all(&1u64.to_ne_bytes()).or_fail("eventfd write")?;
        }
    };
    ping_pong(ctx, 0, echo, EpollInit { ping, pong: Epolled::new(pong)? })
}
