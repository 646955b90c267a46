//! procspawn (Rust): `spawn` + `join`, and its pool's per-task cost. Skipped when built
//! without the `procspawn` feature.

use crate::harness::{Ctx, Outcome};

#[cfg(feature = "procspawn")]
mod imp {
    use std::time::Instant;

    use crate::harness::{Ctx, Fail, OrFail, Outcome, pin, time_trials};

    fn nothing(x: u32) -> u32 {
        x
    }

    pub(super) fn start_join(ctx: &Ctx) -> Outcome {
        pin(None)?;
        time_trials(ctx, if ctx.quick { 50 } else { 400 }, || {
            let t = Instant::now();
            let v = procspawn::spawn(7u32, nothing).join().or_fail("procspawn join")?;
            let d = t.elapsed();
            if v != 7 {
                return Err(Fail::Error(format!("task returned {v}")));
            }
            Ok(d)
        })
    }

    pub(super) fn pool(ctx: &Ctx) -> Outcome {
        pin(None)?;
        let pool = procspawn::Pool::new(2).or_fail("procspawn pool")?;
        // One message (and a channel of its own) per task, so tasks are in flight 100 at a
        // time (10^4 at once run out of fds); 10^4 per trial.
        let n: u32 = if ctx.quick { 1_000 } else { 10_000 };
        let out = time_trials(ctx, 50, || {
            let t = Instant::now();
            for window in (0..n).collect::<Vec<u32>>().chunks(100) {
                let handles: Vec<_> = window.iter().map(|&i| (i, pool.spawn(i, nothing))).collect();
                for (i, h) in handles {
                    let v = h.join().or_fail("procspawn pool join")?;
                    if v != i {
                        return Err(Fail::Error(format!("task {i} returned {v}")));
                    }
                }
            }
            Ok(t.elapsed() / n)
        });
        pool.kill();
        out
    }
}

/// `procspawn::spawn(arg, f).join()`.
pub fn start_join(ctx: &Ctx) -> Outcome {
    #[cfg(feature = "procspawn")]
    return imp::start_join(ctx);
    #[cfg(not(feature = "procspawn"))]
    {
        let _ = ctx;
        Err(crate::harness::Fail::Skip("built without feature procspawn".into()))
    }
}

/// `procspawn::Pool::new(2)`: spawn and join 10^4 tasks, 100 in flight; time per task.
pub fn pool(ctx: &Ctx) -> Outcome {
    #[cfg(feature = "procspawn")]
    return imp::pool(ctx);
    #[cfg(not(feature = "procspawn"))]
    {
        let _ = ctx;
        Err(crate::harness::Fail::Skip("built without feature procspawn".into()))
    }
}
