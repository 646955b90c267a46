//! Python's `multiprocessing.Process` (fork, forkserver, spawn), `Pool.map` and
//! `ProcessPoolExecutor.map`: a `python3` subprocess times the trials and prints them; they
//! are summarised here with the same statistics as our rows. Skipped without python3.

use std::process::{Command, Stdio};

use crate::harness::{Ctx, Fail, OrFail, Outcome, pin};
use crate::stats;

/// The measuring script, embedded so the bench needs no files at run time.
const SCRIPT: &str = include_str!("mp_process.py");

fn run(ctx: &Ctx, case: &str) -> Outcome {
    pin(None)?;
    let Some(python) = ctx.python.as_ref() else {
        return Err(Fail::Skip("python3 not found".into()));
    };
    let budget_ms = ctx.budget.as_secs_f64() * 1000.0;
    // The script bounds itself (trial count and budget); `output` waits for it.
    let out = Command::new(python)
        .arg("-S")
        .arg("-c")
        .arg(SCRIPT)
        .arg(case)
        .arg(format!("{budget_ms:.3}"))
        .arg(if ctx.quick { "1" } else { "0" })
        .stdin(Stdio::null())
        .output()
        .or_fail("run python3")?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or("").to_string();
        return Err(Fail::Error(format!("python3 {case} failed ({}): {last}", out.status)));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut samples: Vec<f64> =
        serde_json::from_str(text.lines().last().unwrap_or("")).or_fail("python3 result")?;
    let total: f64 = samples.iter().sum();
    let n = samples.len() as u64;
    Ok(stats::summarize(&mut samples, total, n, 1, 0))
}

/// `Process(target=int).start(); join()` with the fork context.
pub fn start_fork(ctx: &Ctx) -> Outcome {
    run(ctx, "fork")
}

/// The same with the forkserver context.
pub fn start_forkserver(ctx: &Ctx) -> Outcome {
    run(ctx, "forkserver")
}

/// The same with the spawn context.
pub fn start_spawn(ctx: &Ctx) -> Outcome {
    run(ctx, "spawn")
}

/// `Pool(2).map(abs, range(10^5))`, default chunk size: time per task.
pub fn pool_map(ctx: &Ctx) -> Outcome {
    run(ctx, "pool_map")
}

/// `ProcessPoolExecutor(2).map(abs, range(10^4))`, default chunk size (1): time per task.
pub fn executor_map(ctx: &Ctx) -> Outcome {
    run(ctx, "executor_map")
}
