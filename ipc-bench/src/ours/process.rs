//! ipc-process rows: start + join per start method, `Pool::map` per-task cost, `apply`
//! round trip; and the floors of those groups (a posix_spawn of /bin/true, a raw
//! fork + `_exit` + waitpid), measured beside them.
#![allow(unsafe_code)] // the raw fork floor

use std::time::Instant;

use ipc_process::{Pool, Process, StartMethod};

use crate::harness::{Ctx, Fail, OrFail, Outcome, pin, time_ops, time_trials};

/// Tasks per `Pool::map` call (the 10^5 empty tasks).
pub const MAP_TASKS: u32 = 100_000;

fn nothing(x: u32) -> u32 {
    x
}

fn trials(ctx: &Ctx) -> usize {
    if ctx.quick { 50 } else { 400 }
}

fn start_join(ctx: &Ctx, method: StartMethod) -> Outcome {
    pin(None)?;
    time_trials(ctx, trials(ctx), || {
        let t = Instant::now();
        let mut p = Process::start(method, nothing, 7).or_fail("start")?;
        let v = p.join().or_fail("join")?;
        let d = t.elapsed();
        if v != 7 {
            return Err(Fail::Error(format!("task returned {v}")));
        }
        Ok(d)
    })
}

/// `Process::spawn` (re-exec of this binary) + join.
pub fn start_spawn(ctx: &Ctx) -> Outcome {
    start_join(ctx, StartMethod::Spawn)
}

/// `Process::start(ForkServer)` + join (the server started before timing).
pub fn start_forkserver(ctx: &Ctx) -> Outcome {
    ipc_process::start_fork_server().or_fail("start fork server")?;
    start_join(ctx, StartMethod::ForkServer)
}

/// `Process::fork` of a closure + join (the measuring process is single-threaded).
pub fn start_fork(ctx: &Ctx) -> Outcome {
    pin(None)?;
    time_trials(ctx, trials(ctx), || {
        let t = Instant::now();
        let mut p = Process::fork(|| 7u32).or_fail("fork")?;
        p.join().or_fail("join")?;
        Ok(t.elapsed())
    })
}

/// Floor: `posix_spawn` of /bin/true and waitpid (std's Command takes the posix_spawn path
/// when nothing runs between fork and exec).
pub fn posix_spawn_true(ctx: &Ctx) -> Outcome {
    pin(None)?;
    time_trials(ctx, trials(ctx), || {
        let t = Instant::now();
        let st = std::process::Command::new("/bin/true").status().or_fail("spawn /bin/true")?;
        let d = t.elapsed();
        if !st.success() {
            return Err(Fail::Error(format!("/bin/true: {st}")));
        }
        Ok(d)
    })
}

/// Floor of a re-exec: `posix_spawn` of this very binary, which leaves at once (its `init`
/// finds a malformed child marker and exits): what exec'ing this executable costs before any
/// of ipc-process's work.
pub fn posix_spawn_self(ctx: &Ctx) -> Outcome {
    pin(None)?;
    time_trials(ctx, trials(ctx), || {
        let t = Instant::now();
        let st = std::process::Command::new("/proc/self/exe")
            .env("IPC_PROCESS_CHILD", "not-a-marker")
            .stderr(std::process::Stdio::null())
            .status()
            .or_fail("spawn /proc/self/exe")?;
        let d = t.elapsed();
        if st.code() != Some(ipc_process::EXIT_SETUP) {
            return Err(Fail::Error(format!("/proc/self/exe: {st}")));
        }
        Ok(d)
    })
}

/// Floor: raw `fork`, `_exit(0)` in the child, `waitpid` in the parent.
pub fn raw_fork(ctx: &Ctx) -> Outcome {
    pin(None)?;
    time_trials(ctx, trials(ctx), || {
        let t = Instant::now();
        // SAFETY: the child calls only the async-signal-safe `_exit`.
        #[allow(clippy::disallowed_methods)]
        let pid = unsafe { libc::fork() };
        match pid {
            -1 => return Err(Fail::Error(format!("fork: {}", std::io::Error::last_os_error()))),
            // SAFETY: `_exit` has no preconditions.
            0 => unsafe { libc::_exit(0) },
            _ => {}
        }
        let mut status = 0;
        // SAFETY: `pid` is our child; `status` is a valid out-pointer.
        let rc = unsafe { libc::waitpid(pid, &raw mut status, 0) };
        if rc != pid {
            return Err(Fail::Error(format!("waitpid: {}", std::io::Error::last_os_error())));
        }
        Ok(t.elapsed())
    })
}

/// Time per task of `Pool::map` over [`MAP_TASKS`] tasks that return their argument, on two
/// workers, with Python's chunk size (four chunks per worker).
pub fn pool_map(ctx: &Ctx) -> Outcome {
    pin(None)?;
    let pool = Pool::new(2).or_fail("start pool")?;
    let n = if ctx.quick { MAP_TASKS / 10 } else { MAP_TASKS };
    time_trials(ctx, 200, || {
        let t = Instant::now();
        let v = pool.map(nothing, 0..n).or_fail("map")?;
        let d = t.elapsed();
        if v.len() != n as usize {
            return Err(Fail::Error(format!("{} results for {n} tasks", v.len())));
        }
        Ok(d / n)
    })
}

/// `Pool::apply` of a task that returns its argument, one worker: a round trip through
/// the supervisor and the worker.
pub fn pool_apply(ctx: &Ctx) -> Outcome {
    let (me, _) = ctx.placement.cpus();
    // Workers inherit the affinity of the process that starts them.
    pin(me)?;
    let pool = Pool::new(1).or_fail("start pool")?;
    time_ops(ctx, 0, || {
        let v = pool.apply(nothing, 3).or_fail("apply")?;
        if v != 3 {
            return Err(Fail::Error(format!("apply returned {v}")));
        }
        Ok(())
    })
}
