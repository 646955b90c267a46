//! ipc-select and the async futures (the `select-X` and `async-X` groups): the same
//! ping-pongs as the blocking rows, each side waiting through a selector (or a tokio future)
//! instead of the primitive's blocking call.

use std::sync::atomic::Ordering;
use std::time::Instant;

use ipc_queue::{Queue, TryRecvError};
use ipc_select::Selector;
use ipc_sem::Semaphore;
use ipc_shm::Shared;

use crate::harness::{Ctx, Fail, Initiator, OrFail, Outcome, anon, ping_pong, timed_out, word};

fn err(what: &str, e: impl std::fmt::Display) -> Fail {
    Fail::Error(format!("{what}: {e}"))
}

/// Wait through `sel` until a permit of `s` is taken.
fn sem_take(sel: &mut Selector, s: &Semaphore, deadline: Instant) -> Result<(), Fail> {
    loop {
        if let Some(p) = s.try_acquire().map_err(|e| err("semaphore", e))? {
            p.forget();
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out("semaphore"));
        }
        sel.wait_timeout(&[s], left).map_err(|e| err("select", e))?;
    }
}

struct SemSelect<'a> {
    sel: Selector,
    there: &'a Semaphore,
    back: &'a Semaphore,
    stop: &'a std::sync::atomic::AtomicU32,
    deadline: Instant,
}

impl Initiator for SemSelect<'_> {
    fn round_trip(&mut self) -> Result<(), Fail> {
        self.there.release().map_err(|e| err("semaphore", e))?;
        sem_take(&mut self.sel, self.back, self.deadline)
    }

    fn stop(&mut self) {
        // Release: pairs with the echo's Acquire load.
        self.stop.store(1, Ordering::Release);
        let _ = self.there.release();
    }
}

/// Semaphore ping-pong (untracked, one per direction), both sides waiting in a selector.
pub fn sem_rtt(ctx: &Ctx) -> Outcome {
    let mk = || -> Result<Shared<Semaphore>, Fail> {
        Shared::anonymous(Semaphore::new(0).map_err(|e| err("semaphore", e))?)
            .or_fail("shared semaphore")
    };
    let (there, back) = (mk()?, mk()?);
    let ctl = anon(4096)?;
    let stop = word(&ctl, 0)?;
    let deadline = ctx.peer_deadline();
    let (t, b): (&Semaphore, &Semaphore) = (&there, &back);
    let echo = move || -> Result<(), Fail> {
        let mut sel = Selector::new().map_err(|e| err("selector", e))?;
        loop {
            sem_take(&mut sel, t, deadline)?;
            // Acquire: pairs with the Release store in stop().
            if stop.load(Ordering::Acquire) != 0 {
                return Ok(());
            }
            b.release().map_err(|e| err("semaphore", e))?;
        }
    };
    let sel = Selector::new().map_err(|e| err("selector", e))?;
    ping_pong(ctx, 0, echo, SemSelect { sel, there: &there, back: &back, stop, deadline })
}

fn queue_take(
    sel: &mut Selector,
    q: &Queue,
    buf: &mut Vec<u8>,
    deadline: Instant,
) -> Result<(), Fail> {
    loop {
        match q.try_recv_into(buf) {
            Ok(_) => return Ok(()),
            Err(TryRecvError::Empty) => {}
            Err(e) => return Err(err("queue", e)),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out("queue"));
        }
        sel.wait_timeout(&[q], left).map_err(|e| err("select", e))?;
    }
}

/// The initiator of both queue rows: send with `try_send`, take the echo with `take`.
struct QueueInit<'a, F: FnMut(&Queue, &mut Vec<u8>) -> Result<(), Fail>> {
    there: &'a Queue,
    back: &'a Queue,
    buf: Vec<u8>,
    take: F,
}

impl<F: FnMut(&Queue, &mut Vec<u8>) -> Result<(), Fail>> Initiator for QueueInit<'_, F> {
    fn round_trip(&mut self) -> Result<(), Fail> {
        self.there.try_send(&self.buf).map_err(|e| err("queue", e))?;
        (self.take)(self.back, &mut self.buf)
    }

    fn stop(&mut self) {
        let _ = self.there.try_send(&[1u8]);
    }
}

/// A queue ping-pong whose both sides take each message with `take` (made in each process
/// by `make`, after the fork).
fn queue_ping_pong<F>(ctx: &Ctx, make: impl Fn(Instant) -> Result<F, Fail>) -> Outcome
where
    F: FnMut(&Queue, &mut Vec<u8>) -> Result<(), Fail>,
{
    let size = ctx.size.max(1);
    let there = Queue::anonymous(4, size).or_fail("create queue")?;
    let back = Queue::anonymous(4, size).or_fail("create queue")?;
    let deadline = ctx.peer_deadline();
    let (t, b, mk) = (&there, &back, &make);
    let echo = move || -> Result<(), Fail> {
        let mut take = mk(deadline)?;
        let mut buf = vec![0u8; size];
        loop {
            take(t, &mut buf)?;
            if buf.first() == Some(&1) {
                return Ok(());
            }
            b.try_send(&buf).map_err(|e| err("queue", e))?;
        }
    };
    let take = make(deadline)?;
    ping_pong(ctx, 0, echo, QueueInit { there: &there, back: &back, buf: vec![0u8; size], take })
}

/// MPMC queue ping-pong, 64 B, both sides waiting in a selector.
pub fn queue_rtt(ctx: &Ctx) -> Outcome {
    queue_ping_pong(ctx, |deadline| {
        let mut sel = Selector::new().map_err(|e| err("selector", e))?;
        Ok(move |q: &Queue, buf: &mut Vec<u8>| queue_take(&mut sel, q, buf, deadline))
    })
}

/// MPMC queue ping-pong, 64 B, each side a tokio task awaiting `recv_async` (current-thread
/// runtime), as the tokio UnixStream row of the same group.
pub fn async_queue_rtt(ctx: &Ctx) -> Outcome {
    queue_ping_pong(ctx, |deadline| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .or_fail("tokio runtime")?;
        Ok(move |q: &Queue, buf: &mut Vec<u8>| {
            let left = deadline.saturating_duration_since(Instant::now());
            *buf = rt
                .block_on(async { tokio::time::timeout(left, q.recv_async()).await })
                .map_err(|_| timed_out("queue"))?
                .map_err(|e| err("queue", e))?;
            Ok(())
        })
    })
}
