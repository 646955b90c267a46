//! Python's multiprocessing (Pipe, Queue, SimpleQueue, Lock, Semaphore, SharedMemory): the
//! system most users come from. Run as a `python3` subprocess with the same method (warm-up,
//! batches under 2 µs, same placements, same percentiles); skipped when python3 is missing.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{Ctx, Fail, OrFail, Outcome, pin};
use crate::stats::Measurement;

/// The measuring script, embedded so the bench needs no files at run time.
const SCRIPT: &str = include_str!("mp_bench.py");

fn run(ctx: &Ctx, case: &str) -> Outcome {
    // The Rust measuring process only waits: let python place itself.
    pin(None)?;
    if ctx.placement == crate::harness::Placement::Cross && ctx.cpus < 2 {
        return Err(Fail::Skip("cross-core needs two CPUs".into()));
    }
    let Some(python) = ctx.python.as_ref() else {
        return Err(Fail::Skip("python3 not found".into()));
    };
    let budget_ms = ctx.budget.as_secs_f64() * 1000.0;
    // -S: no site-packages (the script needs only the standard library); starts faster.
    let spawned = Command::new(python)
        .arg("-S")
        .arg("-c")
        .arg(SCRIPT)
        .arg(case)
        .arg(ctx.placement.code())
        .arg(ctx.size.to_string())
        .arg(format!("{budget_ms:.3}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Fail::Skip("python3 not found".into()));
        }
        Err(e) => return Err(Fail::Error(format!("spawn python3: {e}"))),
    };
    let limit = Instant::now() + ctx.budget * 20 + Duration::from_secs(60);
    loop {
        match child.try_wait().or_fail("wait python3")? {
            Some(_) => break,
            None if Instant::now() >= limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Fail::Error("python3 did not finish in time; killed".into()));
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    let out = child.wait_with_output().or_fail("python3 output")?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or("").to_string();
        return Err(Fail::Error(format!("python3 {case} failed ({}): {last}", out.status)));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or("");
    serde_json::from_str::<Measurement>(line).or_fail("python3 result")
}

/// The real interpreter behind `python3` (past pyenv-style shims, which cost ~0.2 s per
/// start), or `None` when there is no python3.
pub fn resolve() -> Option<std::path::PathBuf> {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let path = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !path.is_empty()).then(|| std::path::PathBuf::from(path))
}

/// `mp.Pipe()` round trips with `send_bytes`/`recv_bytes`.
pub fn pipe_rtt(ctx: &Ctx) -> Outcome {
    run(ctx, "pipe_rtt")
}

/// Two `mp.Queue`s ping-pong.
pub fn queue_rtt(ctx: &Ctx) -> Outcome {
    run(ctx, "queue_rtt")
}

/// Two `mp.SimpleQueue`s ping-pong.
pub fn simplequeue_rtt(ctx: &Ctx) -> Outcome {
    run(ctx, "simplequeue_rtt")
}

/// `mp.Lock` acquire + release.
pub fn lock_op(ctx: &Ctx) -> Outcome {
    run(ctx, "lock_op")
}

/// `mp.Semaphore` acquire + release.
pub fn sem_op(ctx: &Ctx) -> Outcome {
    run(ctx, "sem_op")
}

/// `mp.Lock` contended by two processes.
pub fn lock_contended(ctx: &Ctx) -> Outcome {
    run(ctx, "lock_contended")
}

/// `SharedMemory(create=True)` + close + unlink.
pub fn shm_create(ctx: &Ctx) -> Outcome {
    run(ctx, "shm_create")
}

/// `mp.Pipe(duplex=False)` one-way `send_bytes` of 1 MiB.
pub fn pipe_tput(ctx: &Ctx) -> Outcome {
    run(ctx, "pipe_tput")
}
