//! The measuring machinery: placements, warm-up and batched timing, ping-pong between two
//! processes (or two threads), and the forked measuring process every row runs in.
//!
//! Busy threads: the bench process itself only waits (in `poll`) while a row runs; the row
//! runs in a forked *measuring* process, which forks at most one *peer* process (or starts
//! one peer thread). So at most two threads are ever busy, as the machine has two cores.

use std::fmt;
use std::time::{Duration, Instant};

use rustix::thread::{CpuSet, sched_setaffinity};
use serde::{Deserialize, Serialize};

use crate::stats::{self, Measurement};

/// Where the two sides of a latency benchmark run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Placement {
    /// Pinned to cpu0 and cpu1: the polling path.
    Cross,
    /// Both pinned to cpu0: the kernel / context-switch path.
    Same,
    /// Not pinned: what users get (bimodal on a 2-vCPU VM).
    Unpinned,
}

impl Placement {
    /// One-letter code used in ids: X, S, U.
    pub fn code(self) -> &'static str {
        match self {
            Placement::Cross => "X",
            Placement::Same => "S",
            Placement::Unpinned => "U",
        }
    }

    /// Human description.
    pub fn describe(self) -> &'static str {
        match self {
            Placement::Cross => "cross-core (cpu0 / cpu1)",
            Placement::Same => "same core (cpu0 / cpu0)",
            Placement::Unpinned => "unpinned",
        }
    }

    /// The CPUs of the measuring side and the peer side (`None`: any CPU).
    pub fn cpus(self) -> (Option<usize>, Option<usize>) {
        match self {
            Placement::Cross => (Some(0), Some(1)),
            Placement::Same => (Some(0), Some(0)),
            Placement::Unpinned => (None, None),
        }
    }
}

/// What a row function gets: the group's parameters and the time budget of one run.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Placement of the two sides (latency rows), `Cross` for the others.
    pub placement: Placement,
    /// Message or block size in bytes (0 when the row has none).
    pub size: usize,
    /// Measuring time of one run (warm-up comes on top: 10% of it).
    pub budget: Duration,
    /// CPUs the bench may use (from its affinity at start-up).
    pub cpus: usize,
    /// `--quick`: fewer trials for the trial-based rows.
    pub quick: bool,
    /// Round trips only: an untimed pause before each one, long enough for the peer to
    /// fall asleep (its bounded spin expires), so each trip measures waking a sleeper.
    pub gap: Option<Duration>,
    /// The python3 interpreter (resolved once, past any pyenv shim), if there is one.
    pub python: Option<std::path::PathBuf>,
}

impl Ctx {
    /// A deadline for any wait of the peer side: generous, but never forever.
    pub fn peer_deadline(&self) -> Instant {
        Instant::now() + self.budget * 4 + Duration::from_secs(20)
    }

    /// Fail with a skip unless the placement can be honoured on this machine.
    pub fn check_placement(&self) -> Result<(), Fail> {
        if self.placement == Placement::Cross && self.cpus < 2 {
            return Err(Fail::Skip(
                "cross-core needs cpu0 and cpu1 in the bench's affinity".into(),
            ));
        }
        Ok(())
    }
}

/// Why a row has no figure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fail {
    /// Not measurable here (no python3, feature off, crate not built yet): not a failure.
    Skip(String),
    /// The mechanism failed while measured.
    Error(String),
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fail::Skip(r) => write!(f, "skipped: {r}"),
            Fail::Error(r) => write!(f, "error: {r}"),
        }
    }
}

/// The result of one run of one row.
pub type Outcome = Result<Measurement, Fail>;

/// `.or_fail("what")`: any displayable error becomes [`Fail::Error`] naming the step.
pub trait OrFail<T> {
    /// Convert the error, prefixing `what`.
    fn or_fail(self, what: &str) -> Result<T, Fail>;
}

impl<T, E: fmt::Display> OrFail<T> for Result<T, E> {
    fn or_fail(self, what: &str) -> Result<T, Fail> {
        self.map_err(|e| Fail::Error(format!("{what}: {e}")))
    }
}

/// An error for a wait that passed its deadline.
pub fn timed_out(what: &str) -> Fail {
    Fail::Error(format!("{what}: timed out (peer gone or stuck)"))
}

/// Pin the calling thread to `cpu`, or let it run anywhere (`None`).
pub fn pin(cpu: Option<usize>) -> Result<(), Fail> {
    let mut set = CpuSet::new();
    match cpu {
        Some(c) => set.set(c),
        None => {
            for c in 0..CpuSet::MAX_CPU {
                set.set(c);
            }
        }
    }
    sched_setaffinity(None, &set).or_fail("sched_setaffinity")
}

/// How many CPUs the calling thread may run on.
pub fn usable_cpus() -> usize {
    rustix::thread::sched_getaffinity(None).map(|s| s.count() as usize).unwrap_or(1)
}

/// Samples kept at most per run (memory bound; batching keeps real runs far below it).
const MAX_SAMPLES: usize = 2_000_000;
/// Samples taken at least, even past the budget (bounded by the hard limit).
const MIN_SAMPLES: usize = 10;
/// A sample should last at least this long (timer cost ~20 ns stays under 1%).
const SAMPLE_NS: f64 = 2000.0;

/// Time `op` for the context's budget after a warm-up of 10% of it.
///
/// Operations shorter than 2 µs are timed in batches (a sample is the mean of `batch`
/// operations); slower ones one by one. Returns the summary with `bytes_per_op` recorded.
pub fn time_ops(ctx: &Ctx, bytes_per_op: u64, mut op: impl FnMut() -> Result<(), Fail>) -> Outcome {
    let warm = ctx.budget / 10;
    let start = Instant::now();
    let mut n = 0u64;
    loop {
        op()?;
        n += 1;
        let el = start.elapsed();
        if (el >= warm && n >= 2) || el >= ctx.budget / 2 {
            break;
        }
    }
    let est = start.elapsed().as_nanos() as f64 / n as f64;
    let batch =
        if est >= SAMPLE_NS { 1 } else { (SAMPLE_NS / est).ceil().clamp(1.0, 1000.0) as u64 };
    let mut samples = Vec::with_capacity(4096);
    let begin = Instant::now();
    let soft = begin + ctx.budget;
    let hard = begin + ctx.budget * 4 + Duration::from_millis(200);
    let mut ops = 0u64;
    loop {
        let t0 = Instant::now();
        for _ in 0..batch {
            op()?;
        }
        let t1 = Instant::now();
        samples.push((t1 - t0).as_nanos() as f64 / batch as f64);
        ops += batch;
        if (t1 >= soft && samples.len() >= MIN_SAMPLES)
            || t1 >= hard
            || samples.len() >= MAX_SAMPLES
        {
            break;
        }
    }
    let wall = begin.elapsed().as_nanos() as f64;
    Ok(stats::summarize(&mut samples, wall, ops, batch, bytes_per_op))
}

/// Summarise externally timed trials (each trial returns its own duration): used where one
/// trial needs set-up that must not be timed (owner-death recovery, lock handoff).
pub fn time_trials(
    ctx: &Ctx,
    max_trials: usize,
    mut trial: impl FnMut() -> Result<Duration, Fail>,
) -> Outcome {
    let warm = (max_trials / 10).max(1);
    let warm_until = Instant::now() + ctx.budget / 10;
    for i in 0..warm {
        trial()?;
        if i >= 1 && Instant::now() >= warm_until {
            break;
        }
    }
    let begin = Instant::now();
    let soft = begin + ctx.budget;
    let mut samples = Vec::with_capacity(max_trials);
    let mut total = 0.0;
    while samples.len() < max_trials {
        let d = trial()?.as_nanos() as f64;
        total += d;
        samples.push(d);
        if Instant::now() >= soft && samples.len() >= MIN_SAMPLES {
            break;
        }
    }
    let n = samples.len() as u64;
    Ok(stats::summarize(&mut samples, total, n, 1, 0))
}

/// The measuring side of a ping-pong: one round trip per call, then a stop message.
pub trait Initiator {
    /// Send one message and wait for its echo.
    fn round_trip(&mut self) -> Result<(), Fail>;
    /// Tell the echo side to leave (best effort; it also leaves at its deadline or on EOF).
    fn stop(&mut self);
}

/// Round trips between this (measuring) process and a forked echo process.
///
/// The resource must already exist (created before the fork, so both sides share it);
/// `echo` runs in the child, pinned per the placement, until it sees the stop message.
/// The measuring side is pinned here. `bytes_per_op` is 0 for latency rows.
pub fn ping_pong<I: Initiator>(
    ctx: &Ctx,
    bytes_per_op: u64,
    echo: impl FnOnce() -> Result<(), Fail>,
    mut init: I,
) -> Outcome {
    ctx.check_placement()?;
    let (me, peer) = ctx.placement.cpus();
    pin(me)?;
    let mut child = ipc_testkit::fork_named("echo side", move || -> Result<(), String> {
        pin(peer).map_err(|e| e.to_string())?;
        echo().map_err(|e| e.to_string())
    });
    let res = match ctx.gap {
        None => time_ops(ctx, bytes_per_op, || init.round_trip()),
        Some(gap) => time_trials(ctx, 1_000_000, || {
            std::thread::sleep(gap);
            let t = Instant::now();
            init.round_trip()?;
            Ok(t.elapsed())
        }),
    };
    init.stop();
    drop(init);
    finish_peer(&mut child, res)
}

/// Join the peer process; a peer that failed turns the outcome into its error.
pub fn finish_peer(child: &mut ipc_testkit::Child, res: Outcome) -> Outcome {
    let limit = if res.is_ok() { Duration::from_secs(10) } else { Duration::from_millis(200) };
    match child.join_timeout(limit) {
        Ok(exit) if exit.success() => res,
        Ok(exit) => {
            let report = child.report();
            match res {
                Err(Fail::Skip(s)) => Err(Fail::Skip(s)),
                _ => Err(Fail::Error(format!("peer process ended with {exit}: {report}"))),
            }
        }
        Err(_) => {
            child.kill_and_join();
            match res {
                Ok(_) => Err(Fail::Error("peer process did not stop after the run".into())),
                other => other,
            }
        }
    }
}

/// Round trips between two threads of the measuring process (the in-process peers).
pub fn thread_ping_pong<I: Initiator>(
    ctx: &Ctx,
    bytes_per_op: u64,
    echo: impl FnOnce() -> Result<(), Fail> + Send,
    mut init: I,
) -> Outcome {
    ctx.check_placement()?;
    let (me, peer) = ctx.placement.cpus();
    std::thread::scope(|s| {
        let h = s.spawn(move || {
            pin(peer)?;
            echo()
        });
        let res = pin(me).and_then(|()| match ctx.gap {
            None => time_ops(ctx, bytes_per_op, || init.round_trip()),
            Some(gap) => time_trials(ctx, 1_000_000, || {
                std::thread::sleep(gap);
                let t = Instant::now();
                init.round_trip()?;
                Ok(t.elapsed())
            }),
        });
        init.stop();
        drop(init);
        let peer = h.join().unwrap_or_else(|_| Err(Fail::Error("peer thread panicked".into())));
        match (res, peer) {
            (Ok(m), Ok(())) => Ok(m),
            (Ok(_), Err(e)) | (Err(e), _) => Err(e),
        }
    })
}

/// Spin until `ready()` holds; check the clock every 1024 turns against `deadline`.
#[inline]
pub fn spin_until(
    deadline: Instant,
    what: &str,
    mut ready: impl FnMut() -> bool,
) -> Result<(), Fail> {
    let mut turns = 0u32;
    while !ready() {
        std::hint::spin_loop();
        turns = turns.wrapping_add(1);
        if turns.is_multiple_of(1024) && Instant::now() >= deadline {
            return Err(timed_out(what));
        }
    }
    Ok(())
}

/// Run `row` in a forked measuring process and return what it reported.
///
/// The child inherits everything it needs by `fork`; it sends its outcome back as one JSON
/// line. A child that hangs past a generous limit is killed (reported as an error), so no
/// row can hang the bench.
pub fn isolate(label: &str, ctx: &Ctx, row: fn(&Ctx) -> Outcome) -> Outcome {
    let c = ctx.clone();
    let mut child = ipc_testkit::fork_named(label, move || -> Result<(), String> {
        // Whatever a peer library prints goes to stderr, never into the table or --json.
        rustix::stdio::dup2_stdout(std::io::stderr()).map_err(|e| e.to_string())?;
        let out = row(&c);
        let line = serde_json::to_string(&out).map_err(|e| e.to_string())?;
        ipc_testkit::send_line(&line);
        Ok(())
    });
    let limit = ctx.budget * 40 + Duration::from_secs(60);
    let res = match child.recv_line(limit) {
        Ok(line) => serde_json::from_str::<Outcome>(&line)
            .unwrap_or_else(|e| Err(Fail::Error(format!("bad report from {label}: {e}")))),
        Err(ipc_testkit::JoinError::Timeout) => {
            child.kill_and_join();
            return Err(Fail::Error(format!("{label}: no result within {limit:?}; killed")));
        }
        Err(e) => return Err(Fail::Error(format!("{label}: measuring process {e}"))),
    };
    match child.join_timeout(Duration::from_secs(20)) {
        Ok(_) => {}
        Err(_) => {
            child.kill_and_join();
        }
    }
    res
}

/// Value of a flag word that tells the peer to leave.
pub const STOP: u32 = u32::MAX;

/// An anonymous shared segment (memfd) of `len` bytes, inherited by forked peers.
pub fn anon(len: usize) -> Result<ipc_shm::Shm, Fail> {
    ipc_shm::Shm::anonymous(len).or_fail("create anonymous segment")
}

/// The atomic word at `offset` of `shm`. Crate-internal: every bench segment keeps its
/// atomic words and its payload bytes at disjoint offsets.
#[allow(unsafe_code)]
pub(crate) fn word(
    shm: &ipc_shm::Shm,
    offset: usize,
) -> Result<&std::sync::atomic::AtomicU32, Fail> {
    // SAFETY: the floors use each word offset only through this atomic view and copy payloads
    // (`copy_in`/`copy_out`) only at other offsets, so no other kind of access covers it.
    unsafe { shm.atomic_u32(offset) }
        .ok_or_else(|| Fail::Error(format!("no atomic word at {offset}")))
}

/// Copy a payload into a bench segment at `offset` (never over one of its words).
#[allow(unsafe_code)]
pub(crate) fn copy_in(shm: &ipc_shm::Shm, offset: usize, data: &[u8]) -> Result<(), Fail> {
    // SAFETY: payload offsets are disjoint from the atomic words (see `word`), and within one
    // process only the measuring thread touches a payload, so nothing of ours covers it.
    unsafe { shm.write_at_shared(offset, data) }.or_fail("write payload")
}

/// Copy a payload out of a bench segment at `offset`.
#[allow(unsafe_code)]
pub(crate) fn copy_out(shm: &ipc_shm::Shm, offset: usize, buf: &mut [u8]) -> Result<(), Fail> {
    // SAFETY: as in `copy_in`.
    unsafe { shm.read_at_shared(offset, buf) }.or_fail("read payload")
}

/// Operations per block for contended runs: a block should last ~1/20 of the budget,
/// assuming contention makes an operation ~4x slower than alone.
fn block_len(ctx: &Ctx, op: &mut impl FnMut() -> Result<(), Fail>) -> Result<u64, Fail> {
    let t = Instant::now();
    for _ in 0..1000 {
        op()?;
    }
    let est = (t.elapsed().as_nanos() as f64 / 1000.0).max(1.0);
    let target = ctx.budget.as_nanos() as f64 / 20.0;
    Ok((target / (est * 4.0)).clamp(1000.0, 50_000_000.0) as u64)
}

/// Both sides loop `op` the same number of times, started together; a sample is one block,
/// its figure the wall time divided by the operations of both sides.
fn contended_blocks(
    ctx: &Ctx,
    n: u64,
    go: &std::sync::atomic::AtomicU32,
    done: &std::sync::atomic::AtomicU32,
    op: &mut impl FnMut() -> Result<(), Fail>,
) -> Outcome {
    use std::sync::atomic::Ordering;
    let deadline = ctx.peer_deadline();
    let mut samples = Vec::new();
    let mut wall = 0.0;
    let begin = Instant::now();
    // Block 0 is the warm-up.
    for k in 1u32.. {
        let t0 = Instant::now();
        // Release/Acquire: the go word only starts the block; no data rides on it.
        go.store(k, Ordering::Release);
        for _ in 0..n {
            op()?;
        }
        spin_until(deadline, "contended peer", || done.load(Ordering::Acquire) == k)?;
        let t = t0.elapsed().as_nanos() as f64;
        if k > 1 {
            wall += t;
            samples.push(t / (2 * n) as f64);
        }
        if (begin.elapsed() >= ctx.budget && samples.len() >= 5) || samples.len() >= 10_000 {
            break;
        }
    }
    go.store(STOP, Ordering::Release);
    let ops = samples.len() as u64 * 2 * n;
    Ok(stats::summarize(&mut samples, wall, ops, 2 * n, 0))
}

/// The peer's side of [`contended_blocks`].
fn contended_peer(
    deadline: Instant,
    n: u64,
    go: &std::sync::atomic::AtomicU32,
    done: &std::sync::atomic::AtomicU32,
    op: &mut impl FnMut() -> Result<(), Fail>,
) -> Result<(), Fail> {
    use std::sync::atomic::Ordering;
    for k in 1u32.. {
        let mut seen = 0;
        spin_until(deadline, "contended start", || {
            seen = go.load(Ordering::Acquire);
            seen == k || seen == STOP
        })?;
        if seen == STOP {
            return Ok(());
        }
        for _ in 0..n {
            op()?;
        }
        done.store(k, Ordering::Release);
    }
    Ok(())
}

/// Two processes (this one and a fork) run `op` on a shared object at the same time.
pub fn contended_procs<F>(ctx: &Ctx, mut op: F) -> Outcome
where
    F: FnMut() -> Result<(), Fail> + Clone,
{
    ctx.check_placement()?;
    let (me, peer) = ctx.placement.cpus();
    pin(me)?;
    let n = block_len(ctx, &mut op)?;
    let ctl = anon(4096)?;
    let (go, done) = (word(&ctl, 0)?, word(&ctl, 128)?);
    let mut op2 = op.clone();
    let deadline = ctx.peer_deadline();
    let mut child = ipc_testkit::fork_named("contending peer", move || -> Result<(), String> {
        pin(peer).map_err(|e| e.to_string())?;
        contended_peer(deadline, n, go, done, &mut op2).map_err(|e| e.to_string())
    });
    let res = contended_blocks(ctx, n, go, done, &mut op);
    if res.is_err() {
        go.store(STOP, std::sync::atomic::Ordering::Release);
    }
    finish_peer(&mut child, res)
}

/// Two threads of the measuring process run `op` on a shared object at the same time.
pub fn contended_threads<F>(ctx: &Ctx, mut op: F) -> Outcome
where
    F: FnMut() -> Result<(), Fail> + Clone + Send,
{
    use std::sync::atomic::AtomicU32;
    ctx.check_placement()?;
    let (me, peer) = ctx.placement.cpus();
    pin(me)?;
    let n = block_len(ctx, &mut op)?;
    let (go, done) = (AtomicU32::new(0), AtomicU32::new(0));
    let mut op2 = op.clone();
    let deadline = ctx.peer_deadline();
    std::thread::scope(|s| {
        let (go, done) = (&go, &done);
        let h = s.spawn(move || {
            pin(peer)?;
            contended_peer(deadline, n, go, done, &mut op2)
        });
        let res = contended_blocks(ctx, n, go, done, &mut op);
        if res.is_err() {
            go.store(STOP, std::sync::atomic::Ordering::Release);
        }
        let peer = h.join().unwrap_or_else(|_| Err(Fail::Error("peer thread panicked".into())));
        match (res, peer) {
            (Ok(m), Ok(())) => Ok(m),
            (Ok(_), Err(e)) | (Err(e), _) => Err(e),
        }
    })
}

/// One-way streaming: a forked writer (pinned to the peer CPU) produces until it is killed;
/// this side times `read_one`, which consumes `bytes_per_op` bytes.
pub fn stream_from_peer(
    ctx: &Ctx,
    bytes_per_op: u64,
    writer: impl FnOnce() -> Result<(), Fail>,
    read_one: impl FnMut() -> Result<(), Fail>,
) -> Outcome {
    ctx.check_placement()?;
    let (me, peer) = ctx.placement.cpus();
    pin(me)?;
    let mut child = ipc_testkit::fork_named("writer", move || -> Result<(), String> {
        pin(peer).map_err(|e| e.to_string())?;
        writer().map_err(|e| e.to_string())
    });
    let res = time_ops(ctx, bytes_per_op, read_one);
    // The writer only pumps data: killing it is its normal end.
    child.kill_and_join();
    match (res, child.exit()) {
        (Ok(m), _) => Ok(m),
        (Err(e), Some(exit)) if exit.success() || exit == ipc_testkit::Exit::Code(1) => {
            let report = child.report();
            if report.is_empty() {
                Err(e)
            } else {
                Err(Fail::Error(format!("{e}; writer: {report}")))
            }
        }
        (Err(e), _) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Ctx {
        Ctx {
            placement: Placement::Unpinned,
            size: 8,
            budget: Duration::from_millis(5),
            cpus: usable_cpus(),
            quick: true,
            gap: None,
            python: None,
        }
    }

    #[test]
    fn batches_fast_ops() {
        let mut x = 0u64;
        let m = time_ops(&ctx(), 0, || {
            x = std::hint::black_box(x + 1);
            Ok(())
        })
        .unwrap();
        assert!(m.batch > 1, "{m:?}");
        assert!(m.samples >= MIN_SAMPLES as u64);
        assert!(m.p50_ns <= m.p99_ns && m.p99_ns <= m.max_ns);
    }

    #[test]
    fn errors_propagate() {
        let r = time_ops(&ctx(), 0, || Err(Fail::Skip("nope".into())));
        assert_eq!(r, Err(Fail::Skip("nope".into())));
    }

    #[test]
    fn trials_bounded() {
        let mut k = 0;
        let m = time_trials(&ctx(), 20, || {
            k += 1;
            Ok(Duration::from_nanos(100))
        })
        .unwrap();
        assert!(m.samples <= 20);
        assert_eq!(m.p50_ns, 100.0);
    }
}
