//! Lock drivers shared by our rows and the glibc peer: handoff latency (B8b) and
//! owner-death recovery (B10).

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ipc_shm::futex;

use crate::harness::{Ctx, Fail, OrFail, Outcome, STOP, anon, pin, time_trials, timed_out, word};

/// A cross-process lock as the drivers see it. Clones refer to the same shared lock.
pub trait BenchLock: Clone {
    /// Lock, run `f` while holding the lock, unlock. `Ok(true)` when the previous owner
    /// died holding it (the lock was made consistent before `f` ran).
    fn with(&self, f: &mut dyn FnMut() -> Result<(), Fail>) -> Result<bool, Fail>;
}

/// CLOCK_MONOTONIC in nanoseconds (the clock `Instant` uses), comparable across processes.
pub fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (t.tv_sec as u64).wrapping_mul(1_000_000_000).wrapping_add(t.tv_nsec as u64)
}

fn store_u64(lo: &AtomicU32, hi: &AtomicU32, v: u64) {
    // Relaxed: published by the lock or flag that follows (Release) in program order.
    lo.store(v as u32, Ordering::Relaxed);
    hi.store((v >> 32) as u32, Ordering::Relaxed);
}

fn load_u64(lo: &AtomicU32, hi: &AtomicU32) -> u64 {
    // Relaxed: read after the Acquire that pairs with the writer's publication.
    u64::from(lo.load(Ordering::Relaxed)) | (u64::from(hi.load(Ordering::Relaxed)) << 32)
}

/// Wait (sleeping) until `w == want` or `w == STOP`; returns the value seen.
fn wait_for(w: &AtomicU32, want: u32, deadline: Instant, what: &str) -> Result<u32, Fail> {
    loop {
        // Acquire: pairs with the Release store that set the value.
        let v = w.load(Ordering::Acquire);
        if v == want || v == STOP {
            return Ok(v);
        }
        if futex::wait(w, v, Some(deadline)) == futex::WaitResult::TimedOut {
            return Err(timed_out(what));
        }
    }
}

fn set(w: &AtomicU32, v: u32) {
    // Release: pairs with the Acquire in wait_for.
    w.store(v, Ordering::Release);
    futex::wake_all(w);
}

/// Handoff: the measuring side holds the lock while the forked waiter parks in `lock()`,
/// then stamps the clock and unlocks; the waiter stamps when it owns the lock. One trial
/// per handoff; the figure is the one-way time from unlock to owning.
pub fn handoff<L: BenchLock>(ctx: &Ctx, lock: L) -> Outcome {
    ctx.check_placement()?;
    let (me, peer) = ctx.placement.cpus();
    pin(me)?;
    let ctl = anon(4096)?;
    let (turn, ready, done) = (word(&ctl, 0)?, word(&ctl, 64)?, word(&ctl, 128)?);
    let (t0_lo, t0_hi, dt_lo, dt_hi) =
        (word(&ctl, 192)?, word(&ctl, 196)?, word(&ctl, 256)?, word(&ctl, 260)?);
    let deadline = ctx.peer_deadline();
    let waiter_lock = lock.clone();
    let mut child = ipc_testkit::fork_named("handoff waiter", move || -> Result<(), String> {
        let run = || -> Result<(), Fail> {
            pin(peer)?;
            for k in 1u32.. {
                if wait_for(turn, k, deadline, "handoff turn")? == STOP {
                    return Ok(());
                }
                set(ready, k);
                waiter_lock.with(&mut || {
                    let t1 = now_ns();
                    let dt = t1.saturating_sub(load_u64(t0_lo, t0_hi));
                    store_u64(dt_lo, dt_hi, dt);
                    Ok(())
                })?;
                set(done, k);
            }
            Ok(())
        };
        run().map_err(|e| e.to_string())
    });
    let mut k = 0u32;
    let trials = if ctx.quick { 40 } else { 400 };
    let res = time_trials(ctx, trials, || {
        k += 1;
        lock.with(&mut || {
            set(turn, k);
            wait_for(ready, k, deadline, "waiter ready")?;
            // Give the waiter time to park inside lock() (on the same core it must run to
            // do so).
            std::thread::sleep(Duration::from_micros(100));
            store_u64(t0_lo, t0_hi, now_ns());
            Ok(())
        })?;
        wait_for(done, k, deadline, "handoff done")?;
        Ok(Duration::from_nanos(load_u64(dt_lo, dt_hi)))
    });
    set(turn, STOP);
    crate::harness::finish_peer(&mut child, res)
}

/// Owner death: a forked owner takes the lock and is SIGKILLed while this process is parked
/// in `lock()`; the figure is the time from `kill(2)` to `lock()` returning owner-died.
pub fn recovery<L: BenchLock>(ctx: &Ctx, lock: L) -> Outcome {
    pin(None)?;
    let trials = if ctx.quick { 10 } else { 100 };
    time_trials(ctx, trials, || {
        let owner_lock = lock.clone();
        let mut owner = ipc_testkit::fork_named("lock owner", move || -> Result<(), String> {
            owner_lock
                .with(&mut || {
                    ipc_testkit::send_line("held");
                    // Hold until killed (bounded: the bench kills within milliseconds).
                    let _ = ipc_testkit::recv_line(Duration::from_secs(60));
                    Ok(())
                })
                .map_err(|e| e.to_string())?;
            Ok(())
        });
        match owner.recv_line(Duration::from_secs(20)) {
            Ok(l) if l == "held" => {}
            Ok(l) => return Err(Fail::Error(format!("owner said {l:?}"))),
            Err(e) => return Err(Fail::Error(format!("owner: {e}"))),
        }
        let killed_at = std::thread::scope(|s| {
            let owner = &owner;
            let killer = s.spawn(move || {
                // Long enough for the main thread to park inside lock().
                std::thread::sleep(Duration::from_millis(2));
                let t = now_ns();
                owner.kill();
                t
            });
            let mut t1 = 0;
            let died = lock.with(&mut || {
                t1 = now_ns();
                Ok(())
            });
            let t0 = killer.join().map_err(|_| Fail::Error("killer thread panicked".into()))?;
            match died {
                Ok(true) => Ok::<_, Fail>(t1.saturating_sub(t0)),
                Ok(false) => Err(Fail::Error("lock() did not report the dead owner".into())),
                Err(e) => Err(e),
            }
        })?;
        owner.join_timeout(Duration::from_secs(10)).or_fail("reap owner")?;
        Ok(Duration::from_nanos(killed_at))
    })
}
