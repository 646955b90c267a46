//! ipc-sem rows (B6 uncontended and ping-pong), untracked (POSIX and Python semantics, as
//! `sem_t`) and tracked (permits of a dead holder come back).

use std::sync::atomic::Ordering;
use std::time::Instant;

use ipc_sem::Semaphore;
use ipc_shm::Shared;

use crate::floors::with_second_thread;
use crate::harness::{
    Ctx, Fail, Initiator, OrFail, Outcome, anon, pin, ping_pong, time_ops, timed_out, word,
};

fn sem_err(e: impl std::fmt::Display) -> Fail {
    Fail::Error(format!("semaphore: {e}"))
}

fn op_with(ctx: &Ctx, s: Semaphore) -> Outcome {
    let s = Shared::anonymous(s).or_fail("shared semaphore")?;
    pin(Some(0))?;
    with_second_thread(|| {
        time_ops(ctx, 0, || {
            let p = s.acquire().map_err(sem_err)?;
            drop(p);
            Ok(())
        })
    })
}

/// Untracked `acquire` + drop of the permit (release), uncontended.
pub fn op(ctx: &Ctx) -> Outcome {
    op_with(ctx, Semaphore::new(1).map_err(sem_err)?)
}

/// Tracked (robust) `acquire` + release, uncontended.
pub fn tracked_op(ctx: &Ctx) -> Outcome {
    op_with(ctx, Semaphore::tracked(1).map_err(sem_err)?)
}

struct SemInit<'a> {
    there: &'a Semaphore,
    back: &'a Semaphore,
    stop: &'a std::sync::atomic::AtomicU32,
    deadline: Instant,
}

fn take(s: &Semaphore, deadline: Instant) -> Result<(), Fail> {
    match s.acquire_until(deadline).map_err(sem_err)? {
        Some(p) => {
            p.forget();
            Ok(())
        }
        None => Err(timed_out("semaphore")),
    }
}

impl Initiator for SemInit<'_> {
    fn round_trip(&mut self) -> Result<(), Fail> {
        self.there.release().map_err(sem_err)?;
        take(self.back, self.deadline)
    }

    fn stop(&mut self) {
        // Release: pairs with the echo's Acquire load after its acquire.
        self.stop.store(1, Ordering::Release);
        let _ = self.there.release();
    }
}

/// Ping-pong with one untracked semaphore per direction, two processes.
pub fn ping_pong_rtt(ctx: &Ctx) -> Outcome {
    let there =
        Shared::anonymous(Semaphore::new(0).map_err(sem_err)?).or_fail("shared semaphore")?;
    let back =
        Shared::anonymous(Semaphore::new(0).map_err(sem_err)?).or_fail("shared semaphore")?;
    let ctl = anon(4096)?;
    let stop = word(&ctl, 0)?;
    let deadline = ctx.peer_deadline();
    let (t, b): (&Semaphore, &Semaphore) = (&there, &back);
    let echo = move || -> Result<(), Fail> {
        loop {
            take(t, deadline)?;
            // Acquire: pairs with the Release store in stop().
            if stop.load(Ordering::Acquire) != 0 {
                return Ok(());
            }
            b.release().map_err(sem_err)?;
        }
    };
    ping_pong(ctx, 0, echo, SemInit { there: &there, back: &back, stop, deadline })
}
