//! ipc-queue rows (B3 polling, B4 blocking, B5 throughput).
//!
//! Ping-pong uses two queues, one per direction. Polling rows loop on `try_recv_into`
//! (`try_recv_ref` for zero-copy) with a deadline; blocking rows call `recv_into`, which
//! spins a bounded budget only when the peer runs on another CPU and then sleeps on a futex.
//! A message whose first byte is 1 tells the echo side to leave.

use std::hint::black_box;
use std::time::Instant;

use ipc_queue::{Queue, Receiver, Sender, SpscQueue, TryRecvError, TrySendError};

use crate::harness::{
    Ctx, Fail, Initiator, OrFail, Outcome, ping_pong, spin_until, stream_from_peer, timed_out,
};

/// Slots per queue for round trips (one message is in flight at a time).
const RTT_CAP: usize = 16;

fn corrupt(e: impl std::fmt::Display) -> Fail {
    Fail::Error(format!("queue: {e}"))
}

/// Poll `attempt` until it is done (`Ok(true)`) or fails, through the floor rows' own spin
/// loop (`spin_until`), so that polling costs the same on both sides of a ratio. (A closure
/// returning `Result<Option<T>, Fail>`, formatting its error inline, cost the 8 B round trip
/// ~0.1x of the floor.)
#[inline]
fn poll<E: std::fmt::Display>(
    deadline: Instant,
    what: &str,
    mut attempt: impl FnMut() -> Result<bool, E>,
) -> Result<(), Fail> {
    let mut failed = None;
    spin_until(deadline, what, || match attempt() {
        Ok(done) => done,
        Err(e) => {
            failed = Some(e);
            true
        }
    })?;
    failed.map_or(Ok(()), |e| Err(corrupt(e)))
}

#[inline]
fn spsc_try_send(tx: &mut Sender, msg: &[u8], deadline: Instant) -> Result<(), Fail> {
    poll(deadline, "spsc space", || match tx.try_send(msg) {
        Ok(()) => Ok(true),
        Err(TrySendError::Full) => Ok(false),
        Err(e) => Err(e),
    })
}

#[inline]
fn spsc_try_recv(rx: &mut Receiver, buf: &mut Vec<u8>, deadline: Instant) -> Result<(), Fail> {
    poll(deadline, "spsc message", || match rx.try_recv_into(buf) {
        Ok(_) => Ok(true),
        Err(TryRecvError::Empty) => Ok(false),
        Err(e) => Err(e),
    })
}

/// How the sides of a queue ping-pong move one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `try_send` + `try_recv_into` loops.
    Poll,
    /// `send` + blocking `recv_into`.
    Block,
    /// `reserve` + write in place + `commit`; `try_recv_ref` read in place.
    ZeroCopy,
}

#[inline]
fn spsc_move(
    tx: &mut Sender,
    rx: &mut Receiver,
    buf: &mut Vec<u8>,
    mode: Mode,
    deadline: Instant,
) -> Result<(), Fail> {
    // Send what `buf` holds, then receive into `buf`.
    match mode {
        Mode::Poll => {
            spsc_try_send(tx, buf, deadline)?;
            spsc_try_recv(rx, buf, deadline)
        }
        Mode::Block => {
            tx.send(buf).map_err(corrupt)?;
            rx.recv_into(buf).map(|_| ()).map_err(corrupt)
        }
        Mode::ZeroCopy => {
            let mut slot = tx.reserve(buf.len()).map_err(corrupt)?;
            slot.copy_from_slice(buf);
            slot.commit();
            poll(deadline, "spsc message", || match rx.try_recv_ref() {
                Ok(m) => {
                    // Read in place: the first byte is all the echo needs to look at.
                    if let (Some(d), Some(s)) = (buf.first_mut(), m.first()) {
                        *d = *s;
                    }
                    black_box(&*m);
                    Ok(true)
                }
                Err(TryRecvError::Empty) => Ok(false),
                Err(e) => Err(e),
            })
        }
    }
}

struct SpscInit {
    tx: Sender,
    rx: Receiver,
    buf: Vec<u8>,
    mode: Mode,
    deadline: Instant,
}

impl Initiator for SpscInit {
    fn round_trip(&mut self) -> Result<(), Fail> {
        spsc_move(&mut self.tx, &mut self.rx, &mut self.buf, self.mode, self.deadline)
    }

    fn stop(&mut self) {
        if let Some(b) = self.buf.first_mut() {
            *b = 1;
        }
        let _ = self.tx.try_send(&self.buf);
    }
}

fn spsc_rtt(ctx: &Ctx, mode: Mode) -> Outcome {
    let size = ctx.size.max(1);
    let there = SpscQueue::anonymous(RTT_CAP, size).or_fail("create spsc")?;
    let back = SpscQueue::anonymous(RTT_CAP, size).or_fail("create spsc")?;
    let deadline = ctx.peer_deadline();
    let (t, b) = (&there, &back);
    let echo = move || -> Result<(), Fail> {
        // Roles are taken in the process that uses them.
        let mut rx = t.receiver().or_fail("receiver role")?;
        let mut tx = b.sender().or_fail("sender role")?;
        let mut buf = vec![0u8; size];
        loop {
            match mode {
                Mode::Poll => spsc_try_recv(&mut rx, &mut buf, deadline)?,
                Mode::Block => {
                    // A blocking receive with a deadline that reuses `buf`, as the measuring
                    // side's `recv_into` does (`recv_timeout` allocates every message).
                    let left = deadline.saturating_duration_since(Instant::now());
                    let m = rx.recv_ref_timeout(left).map_err(corrupt)?;
                    buf.clear();
                    buf.extend_from_slice(&m);
                }
                Mode::ZeroCopy => {
                    let mut turns = 0u32;
                    loop {
                        match rx.try_recv_ref() {
                            Ok(m) => {
                                if m.first() == Some(&1) {
                                    return Ok(());
                                }
                                // Echo straight from the received slot into the reserved one.
                                let mut slot = tx.reserve(m.len()).map_err(corrupt)?;
                                slot.copy_from_slice(&m);
                                slot.commit();
                                break;
                            }
                            Err(TryRecvError::Empty) => {}
                            Err(e) => return Err(corrupt(e)),
                        }
                        std::hint::spin_loop();
                        turns = turns.wrapping_add(1);
                        if turns.is_multiple_of(1024) && Instant::now() >= deadline {
                            return Err(timed_out("spsc ping"));
                        }
                    }
                    continue;
                }
            }
            if buf.first() == Some(&1) {
                return Ok(());
            }
            match mode {
                Mode::Block => tx.send(&buf).map_err(corrupt)?,
                _ => spsc_try_send(&mut tx, &buf, deadline)?,
            }
        }
    };
    let tx = there.sender().or_fail("sender role")?;
    let rx = back.receiver().or_fail("receiver role")?;
    ping_pong(ctx, 0, echo, SpscInit { tx, rx, buf: vec![0u8; size], mode, deadline })
}

struct MpmcInit<'a> {
    there: &'a Queue,
    back: &'a Queue,
    buf: Vec<u8>,
    mode: Mode,
    deadline: Instant,
}

fn mpmc_send(q: &Queue, msg: &[u8], mode: Mode, deadline: Instant) -> Result<(), Fail> {
    match mode {
        Mode::Block => q.send(msg).map_err(corrupt),
        _ => poll(deadline, "mpmc space", || match q.try_send(msg) {
            Ok(()) => Ok(true),
            Err(TrySendError::Full) => Ok(false),
            Err(e) => Err(e),
        }),
    }
}

fn mpmc_recv(q: &Queue, buf: &mut Vec<u8>, mode: Mode, deadline: Instant) -> Result<(), Fail> {
    match mode {
        Mode::Block => {
            // Deadline-bounded and reusing `buf`, like the SPSC rows (`recv_timeout` would
            // allocate every message).
            let left = deadline.saturating_duration_since(Instant::now());
            let m = q.recv_ref_timeout(left).map_err(corrupt)?;
            buf.clear();
            buf.extend_from_slice(&m);
            Ok(())
        }
        _ => poll(deadline, "mpmc message", || match q.try_recv_into(buf) {
            Ok(_) => Ok(true),
            Err(TryRecvError::Empty) => Ok(false),
            Err(e) => Err(e),
        }),
    }
}

impl Initiator for MpmcInit<'_> {
    fn round_trip(&mut self) -> Result<(), Fail> {
        mpmc_send(self.there, &self.buf, self.mode, self.deadline)?;
        mpmc_recv(self.back, &mut self.buf, self.mode, self.deadline)
    }

    fn stop(&mut self) {
        if let Some(b) = self.buf.first_mut() {
            *b = 1;
        }
        let _ = self.there.try_send(&self.buf);
    }
}

fn mpmc_rtt(ctx: &Ctx, mode: Mode) -> Outcome {
    let size = ctx.size.max(1);
    let there = Queue::anonymous(RTT_CAP, size).or_fail("create queue")?;
    let back = Queue::anonymous(RTT_CAP, size).or_fail("create queue")?;
    let deadline = ctx.peer_deadline();
    let (t, b) = (&there, &back);
    let echo = move || -> Result<(), Fail> {
        let mut buf = vec![0u8; size];
        loop {
            mpmc_recv(t, &mut buf, mode, deadline)?;
            if buf.first() == Some(&1) {
                return Ok(());
            }
            mpmc_send(b, &buf, mode, deadline)?;
        }
    };
    let init = MpmcInit { there: &there, back: &back, buf: vec![0u8; size], mode, deadline };
    ping_pong(ctx, 0, echo, init)
}

/// SPSC, polling receiver, round trips between two processes.
pub fn spsc_poll(ctx: &Ctx) -> Outcome {
    spsc_rtt(ctx, Mode::Poll)
}

/// MPMC bytes queue, polling receiver, round trips between two processes.
pub fn mpmc_poll(ctx: &Ctx) -> Outcome {
    mpmc_rtt(ctx, Mode::Poll)
}

/// Zero-copy reserve/commit, polling receiver, round trips.
pub fn zero_copy_poll(ctx: &Ctx) -> Outcome {
    spsc_rtt(ctx, Mode::ZeroCopy)
}

/// SPSC, blocking (adaptive) receive, round trips.
pub fn spsc_block(ctx: &Ctx) -> Outcome {
    spsc_rtt(ctx, Mode::Block)
}

/// MPMC, blocking receive, round trips.
pub fn mpmc_block(ctx: &Ctx) -> Outcome {
    mpmc_rtt(ctx, Mode::Block)
}

fn tput_cap(size: usize) -> usize {
    if size <= 4096 { 1024 } else { 16 }
}

/// SPSC one-way throughput: the forked producer `send`s, this side `recv_into`s.
pub fn spsc_tput(ctx: &Ctx) -> Outcome {
    let size = ctx.size.max(1);
    let q = SpscQueue::anonymous(tput_cap(size), size).or_fail("create spsc")?;
    let qr = &q;
    let producer = move || -> Result<(), Fail> {
        let mut tx = qr.sender().or_fail("sender role")?;
        let msg = vec![3u8; size];
        loop {
            tx.send(&msg).map_err(corrupt)?;
        }
    };
    let mut rx = q.receiver().or_fail("receiver role")?;
    let mut buf = Vec::with_capacity(size);
    stream_from_peer(ctx, size as u64, producer, move || {
        rx.recv_into(&mut buf).map_err(corrupt)?;
        black_box(&buf);
        Ok(())
    })
}

/// Zero-copy one-way throughput: the producer writes in place (`reserve` + `commit`), this
/// side reads in place (`recv_ref`) and copies out once.
pub fn zero_copy_tput(ctx: &Ctx) -> Outcome {
    let size = ctx.size.max(1);
    let q = SpscQueue::anonymous(tput_cap(size), size).or_fail("create spsc")?;
    let qr = &q;
    let producer = move || -> Result<(), Fail> {
        let mut tx = qr.sender().or_fail("sender role")?;
        loop {
            let mut slot = tx.reserve(size).map_err(corrupt)?;
            slot.fill(3);
            slot.commit();
        }
    };
    let mut rx = q.receiver().or_fail("receiver role")?;
    let mut buf = vec![0u8; size];
    stream_from_peer(ctx, size as u64, producer, move || {
        let m = rx.recv_ref().map_err(corrupt)?;
        let n = m.len().min(buf.len());
        if let (Some(d), Some(s)) = (buf.get_mut(..n), m.get(..n)) {
            d.copy_from_slice(s);
        }
        black_box(&buf);
        Ok(())
    })
}
