//! In-process peers between two threads: crossbeam ArrayQueue and bounded channel, std's
//! sync_channel, parking_lot and std mutexes. They cannot cross processes; they are here as
//! the bar a cross-process primitive should reach.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;

use crate::floors::with_second_thread;
use crate::harness::{
    Ctx, Fail, Initiator, Outcome, contended_threads, pin, spin_until, thread_ping_pong, time_ops,
    timed_out,
};
use crate::peers::by_size;

struct QueueInit<'a, const N: usize> {
    there: &'a ArrayQueue<[u8; N]>,
    back: &'a ArrayQueue<[u8; N]>,
    msg: [u8; N],
    deadline: Instant,
}

impl<const N: usize> Initiator for QueueInit<'_, N> {
    fn round_trip(&mut self) -> Result<(), Fail> {
        self.there.force_push(self.msg);
        let mut got = None;
        spin_until(self.deadline, "ArrayQueue echo", || {
            got = self.back.pop();
            got.is_some()
        })?;
        if let Some(m) = got {
            self.msg = m;
        }
        Ok(())
    }

    fn stop(&mut self) {
        let mut m = self.msg;
        m[0] = 1;
        self.there.force_push(m);
    }
}

fn arrayqueue_rtt_n<const N: usize>(ctx: &Ctx) -> Outcome {
    let there = ArrayQueue::<[u8; N]>::new(4);
    let back = ArrayQueue::<[u8; N]>::new(4);
    let deadline = ctx.peer_deadline();
    let (t, b) = (&there, &back);
    let echo = move || -> Result<(), Fail> {
        loop {
            let mut got = None;
            spin_until(deadline, "ArrayQueue ping", || {
                got = t.pop();
                got.is_some()
            })?;
            let Some(m) = got else { continue };
            if m[0] == 1 {
                return Ok(());
            }
            b.force_push(m);
        }
    };
    thread_ping_pong(ctx, 0, echo, QueueInit { there: &there, back: &back, msg: [0; N], deadline })
}

/// crossbeam `ArrayQueue` spin ping-pong between two threads.
pub fn arrayqueue_rtt(ctx: &Ctx) -> Outcome {
    by_size!(ctx, arrayqueue_rtt_n)
}

fn arrayqueue_tput_n<const N: usize>(ctx: &Ctx) -> Outcome {
    ctx.check_placement()?;
    let cap = if N <= 4096 { 1024 } else { 16 };
    let q = ArrayQueue::<[u8; N]>::new(cap);
    let stop = AtomicBool::new(false);
    let deadline = ctx.peer_deadline();
    let (me, peer) = ctx.placement.cpus();
    std::thread::scope(|s| {
        let (q, stop) = (&q, &stop);
        let h = s.spawn(move || -> Result<(), Fail> {
            pin(peer)?;
            let msg = [3u8; N];
            let mut turns = 0u32;
            // Relaxed: a stop request; nothing is published through it.
            while !stop.load(Ordering::Relaxed) {
                if q.push(msg).is_err() {
                    std::hint::spin_loop();
                    turns = turns.wrapping_add(1);
                    if turns.is_multiple_of(1024) && Instant::now() >= deadline {
                        return Err(timed_out("ArrayQueue space"));
                    }
                }
            }
            Ok(())
        });
        let res = pin(me).and_then(|()| {
            let mut buf = [0u8; N];
            time_ops(ctx, N as u64, || {
                let mut got = None;
                spin_until(deadline, "ArrayQueue data", || {
                    got = q.pop();
                    got.is_some()
                })?;
                if let Some(m) = got {
                    buf = m;
                }
                black_box(&buf);
                Ok(())
            })
        });
        stop.store(true, Ordering::Relaxed);
        let peer = h.join().unwrap_or_else(|_| Err(Fail::Error("producer panicked".into())));
        match (res, peer) {
            (Ok(m), Ok(())) => Ok(m),
            (Ok(_), Err(e)) | (Err(e), _) => Err(e),
        }
    })
}

/// crossbeam `ArrayQueue` one-way throughput between two threads.
pub fn arrayqueue_tput(ctx: &Ctx) -> Outcome {
    by_size!(ctx, arrayqueue_tput_n)
}

type Msg = [u8; 64];

struct ChanInit<S, R> {
    send: S,
    recv: R,
    msg: Msg,
}

impl Initiator for ChanInit<crossbeam_channel::Sender<Msg>, crossbeam_channel::Receiver<Msg>> {
    fn round_trip(&mut self) -> Result<(), Fail> {
        self.send.send(self.msg).map_err(|_| Fail::Error("channel closed".into()))?;
        self.msg = self
            .recv
            .recv_timeout(Duration::from_secs(10))
            .map_err(|e| Fail::Error(format!("recv: {e}")))?;
        Ok(())
    }

    fn stop(&mut self) {
        let mut m = self.msg;
        m[0] = 1;
        let _ = self.send.send(m);
    }
}

/// crossbeam `bounded(1)` channel ping-pong between two threads (spins, then parks).
pub fn cb_channel_rtt(ctx: &Ctx) -> Outcome {
    let (tx1, rx1) = crossbeam_channel::bounded::<Msg>(1);
    let (tx2, rx2) = crossbeam_channel::bounded::<Msg>(1);
    let deadline = ctx.peer_deadline();
    let echo = move || -> Result<(), Fail> {
        loop {
            let m = rx1.recv_deadline(deadline).map_err(|e| Fail::Error(format!("echo: {e}")))?;
            if m[0] == 1 {
                return Ok(());
            }
            tx2.send(m).map_err(|_| Fail::Error("echo: closed".into()))?;
        }
    };
    thread_ping_pong(ctx, 0, echo, ChanInit { send: tx1, recv: rx2, msg: [0; 64] })
}

impl Initiator for ChanInit<std::sync::mpsc::SyncSender<Msg>, std::sync::mpsc::Receiver<Msg>> {
    fn round_trip(&mut self) -> Result<(), Fail> {
        self.send.send(self.msg).map_err(|_| Fail::Error("channel closed".into()))?;
        self.msg = self
            .recv
            .recv_timeout(Duration::from_secs(10))
            .map_err(|e| Fail::Error(format!("recv: {e}")))?;
        Ok(())
    }

    fn stop(&mut self) {
        let mut m = self.msg;
        m[0] = 1;
        let _ = self.send.send(m);
    }
}

/// std `sync_channel(1)` ping-pong between two threads.
pub fn std_channel_rtt(ctx: &Ctx) -> Outcome {
    let (tx1, rx1) = std::sync::mpsc::sync_channel::<Msg>(1);
    let (tx2, rx2) = std::sync::mpsc::sync_channel::<Msg>(1);
    let deadline = ctx.peer_deadline();
    let echo = move || -> Result<(), Fail> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let m = rx1.recv_timeout(left).map_err(|e| Fail::Error(format!("echo: {e}")))?;
            if m[0] == 1 {
                return Ok(());
            }
            tx2.send(m).map_err(|_| Fail::Error("echo: closed".into()))?;
        }
    };
    thread_ping_pong(ctx, 0, echo, ChanInit { send: tx1, recv: rx2, msg: [0; 64] })
}

/// `parking_lot::Mutex` lock + increment + unlock, one thread (a second one idle).
pub fn parking_lot_op(ctx: &Ctx) -> Outcome {
    pin(Some(0))?;
    let m = parking_lot::Mutex::new(0u64);
    with_second_thread(|| {
        time_ops(ctx, 0, || {
            *m.lock() += 1;
            Ok(())
        })
    })
}

/// `std::sync::Mutex` lock + increment + unlock, one thread (a second one idle).
pub fn std_mutex_op(ctx: &Ctx) -> Outcome {
    pin(Some(0))?;
    let m = std::sync::Mutex::new(0u64);
    with_second_thread(|| {
        time_ops(ctx, 0, || {
            *m.lock().map_err(|_| Fail::Error("poisoned".into()))? += 1;
            Ok(())
        })
    })
}

/// `parking_lot::Mutex` contended by two threads.
pub fn parking_lot_contended(ctx: &Ctx) -> Outcome {
    let m = parking_lot::Mutex::new(0u64);
    let m = &m;
    contended_threads(ctx, move || {
        *m.lock() += 1;
        Ok(())
    })
}

/// `std::sync::Mutex` contended by two threads.
pub fn std_mutex_contended(ctx: &Ctx) -> Outcome {
    let m = std::sync::Mutex::new(0u64);
    let m = &m;
    contended_threads(ctx, move || {
        *m.lock().map_err(|_| Fail::Error("poisoned".into()))? += 1;
        Ok(())
    })
}

/// `parking_lot::RwLock` read lock + read + unlock, one thread (a second one idle).
pub fn parking_lot_rwlock_read_op(ctx: &Ctx) -> Outcome {
    pin(Some(0))?;
    let l = parking_lot::RwLock::new(0u64);
    with_second_thread(|| {
        time_ops(ctx, 0, || {
            black_box(*l.read());
            Ok(())
        })
    })
}
