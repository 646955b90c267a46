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
        // One message per task (procspawn has no chunking): 10^4 keep a trial near a second.
        let n: u32 = if ctx.quick { 1_000 } else { 10_000 };
        let out = time_trials(ctx, 50, || {
            let t = Instant::now();
            let handles: Vec<_> = (0..n).map(|i| pool.spawn(i, nothing)).collect();
            for (i, h) in handles.into_iter().enumerate() {
                let v = h.join().or_fail("procspawn pool join")?;
                if v as usize != i {
                    return Err(Fail::Error(format!("task {i} returned {v}")));
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

/// `procspawn::Pool::new(2)`: spawn 10^4 tasks, join them all; time per task.
pub fn pool(ctx: &Ctx) -> Outcome {
    #[cfg(feature = "procspawn")]
    return imp::pool(ctx);
    #[cfg(not(feature = "procspawn"))]
    {
        let _ = ctx;
        Err(crate::harness::Fail::Skip("built without feature procspawn".into()))
    }
}
