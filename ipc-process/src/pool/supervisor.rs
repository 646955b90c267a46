//! The pool's supervisor: one thread that owns every worker, hands out chunks, collects
//! results, watches each worker's connection and exit fd in one `poll`, and replaces the
//! dead. Submitters only push onto an in-process queue and poke an eventfd; the supervisor
//! only pushes results into per-job slots. Neither ever waits for the other, so any number
//! of tasks can be fed without a deadlock.

use std::collections::VecDeque;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};
use rustix::process::Signal;

use super::results::{Failure, Raw, Results};
use crate::error::{Error, ExitStatus};
use crate::launch::{self, Launched, StartMethod};
use crate::progress::{self, Progress};
use crate::wire::{self, Call, Down, Job as StartJob, Up};

/// One submission (an `apply`, a `submit`, a `map`): its function and result slots.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) id: u64,
    pub(crate) call: Call,
    pub(crate) results: Arc<Results>,
}

/// Consecutive items of a job, framed, as handed to one worker.
#[derive(Debug)]
pub(crate) struct Chunk {
    pub(crate) job: Arc<Job>,
    /// Index (in the job) of the first item.
    pub(crate) first: u32,
    pub(crate) count: u32,
    pub(crate) payload: Vec<u8>,
    /// fds of handles in the arguments (single-item chunks only).
    pub(crate) fds: Vec<OwnedFd>,
    /// Runs so far that ended in the worker's death (for the retry policy).
    pub(crate) attempt: u32,
}

/// A worker's sending side, lent to a caller while the worker idles: `submit` hands a task
/// straight to it, saving the supervisor's wake-up on the way out. The supervisor and the
/// callers never write at once: whoever takes the link out of [`State::idle`] (under the
/// state lock) is the only writer until the supervisor offers it again.
#[derive(Debug)]
pub(crate) struct Link {
    pub(crate) id: u64,
    pub(crate) send: Mutex<ipc_pipe::Connection>,
}

/// A task a caller handed straight to an idle worker, for the supervisor to adopt as that
/// worker's chunk.
#[derive(Debug)]
pub(crate) struct Direct {
    pub(crate) worker: u64,
    pub(crate) seq: u32,
    pub(crate) chunk: Chunk,
}

/// Why the pool cannot run tasks any more.
#[derive(Debug, Clone)]
pub(crate) struct Broken {
    pub(crate) initializer: bool,
    pub(crate) message: String,
}

impl Broken {
    pub(crate) fn failure(&self, object: &str) -> Failure {
        if self.initializer {
            Failure::InitializerFailed(self.message.clone())
        } else {
            Failure::Lost(Error::PoolBroken {
                object: object.to_owned(),
                message: self.message.clone(),
            })
        }
    }

    pub(crate) fn error(&self, object: &str) -> Error {
        if self.initializer {
            Error::InitializerFailed { object: object.to_owned(), message: self.message.clone() }
        } else {
            Error::PoolBroken { object: object.to_owned(), message: self.message.clone() }
        }
    }
}

/// State shared between the pool's handles and the supervisor.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) queue: VecDeque<Chunk>,
    pub(crate) cancels: Vec<(u64, u32)>,
    pub(crate) closed: bool,
    pub(crate) terminate: bool,
    pub(crate) finished: bool,
    pub(crate) broken: Option<Broken>,
    pub(crate) ready_workers: usize,
    pub(crate) next_job: u64,
    /// pids of the live workers (for tests and tools that kill workers on purpose).
    pub(crate) pids: Vec<u32>,
    /// Counters for [`Pool::stats`](crate::Pool::stats).
    pub(crate) stats: crate::pool::PoolStats,
    /// Idle workers a caller may hand a task to directly.
    pub(crate) idle: Vec<Arc<Link>>,
    /// Tasks handed to workers directly, not yet adopted by the supervisor.
    pub(crate) direct: Vec<Direct>,
    /// Workers whose direct hand-over failed (their stream may be cut): to be killed.
    pub(crate) broken_links: Vec<u64>,
    /// Chunk sequence numbers (callers hand out chunks too).
    pub(crate) next_seq: u32,
}

impl State {
    /// The next chunk sequence number (never 0: a fresh progress word reads 0).
    pub(crate) fn seq(&mut self) -> u32 {
        self.next_seq = self.next_seq.wrapping_add(1).max(1);
        self.next_seq
    }
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    pub(crate) changed: Condvar,
    pub(crate) wake: OwnedFd,
    pub(crate) label: String,
    /// Whether a direct hand-over must still wake the supervisor (task timeouts are on: it
    /// must time the task).
    pub(crate) poke_direct: bool,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wake the supervisor (an eventfd write; never blocks).
    pub(crate) fn poke(&self) {
        let _ = rustix::io::write(&self.wake, &1u64.to_ne_bytes());
    }
}

/// The pool's settings, as the supervisor uses them.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) workers: usize,
    pub(crate) method: StartMethod,
    pub(crate) max_tasks_per_child: Option<u32>,
    pub(crate) init: Option<(Call, Vec<u8>, Vec<OwnedFd>)>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) retries: u32,
    pub(crate) startup_timeout: Duration,
    pub(crate) flush_bytes: u32,
}

/// Why the supervisor killed a worker.
#[derive(Debug, Clone)]
enum Kill {
    /// Item `index` of its chunk ran past the timeout.
    Timeout { index: u32 },
    /// Item `index` was cancelled.
    Cancel { index: u32 },
    /// It did not get ready within the startup timeout.
    Startup,
    /// It broke the protocol (or stopped reading).
    Protocol(String),
    /// The pool is terminating.
    Terminate,
}

#[derive(Debug)]
struct Busy {
    chunk: Chunk,
    seq: u32,
    delivered: u32,
}

#[derive(Debug)]
struct Worker {
    id: u64,
    link: Arc<Link>,
    l: Launched,
    progress: Progress,
    hello: bool,
    ready: bool,
    startup_deadline: Instant,
    tasks: u32,
    conn_open: bool,
    busy: Option<Busy>,
    retiring: bool,
    kill: Option<Kill>,
}

/// How many startup failures in a row (with no worker getting ready in between) break the
/// pool instead of being retried.
const STARTUP_FAILURES: u32 = 5;
/// The same for workers SIGKILLed while starting: that is done to them (the OOM killer, an
/// operator), not a fault of their start-up, so it takes many more in a row.
const STARTUP_KILLS: u32 = 100;
/// Longest a send to a worker may block (a stopped worker must not stop the supervisor).
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) struct Supervisor {
    shared: Arc<Shared>,
    cfg: Config,
    workers: Vec<Worker>,
    next_worker: u64,
    failures: u32,
    kills: u32,
    last_failure: String,
    retry_spawn_at: Option<Instant>,
    buf: Vec<u8>,
}

fn sub_chunk(chunk: &Chunk, bounds: &[usize], from: u32, to: u32, attempt: u32) -> Option<Chunk> {
    if from >= to {
        return None;
    }
    let a = *bounds.get(usize::try_from(from).ok()?)?;
    let b = *bounds.get(usize::try_from(to).ok()?)?;
    Some(Chunk {
        job: Arc::clone(&chunk.job),
        first: chunk.first.saturating_add(from),
        count: to - from,
        payload: chunk.payload.get(a..b)?.to_vec(),
        fds: Vec::new(),
        attempt,
    })
}

impl Supervisor {
    pub(crate) fn new(shared: Arc<Shared>, cfg: Config) -> Supervisor {
        Supervisor {
            shared,
            cfg,
            workers: Vec::new(),
            next_worker: 0,
            failures: 0,
            kills: 0,
            last_failure: String::new(),
            retry_spawn_at: None,
            buf: Vec::new(),
        }
    }

    fn label(&self) -> &str {
        &self.shared.label
    }

    /// The supervisor's loop; returns when the pool is finished (closed and drained, or
    /// terminated).
    pub(crate) fn run(mut self) {
        loop {
            self.adopt();
            let (terminate, closed, cancels, broken, cut) = {
                let mut st = self.shared.lock();
                let cut = std::mem::take(&mut st.broken_links);
                (st.terminate, st.closed, std::mem::take(&mut st.cancels), st.broken.is_some(), cut)
            };
            if terminate {
                self.terminate_all();
                break;
            }
            for id in cut {
                if let Some(w) = self.workers.iter_mut().find(|w| w.id == id)
                    && w.kill.is_none()
                {
                    w.kill = Some(Kill::Protocol("a direct hand-over failed".into()));
                    let _ = w.l.child.signal(Signal::KILL, &self.shared.label);
                }
            }
            self.apply_cancels(cancels);
            if broken {
                self.fail_queue();
            }
            self.assign();
            let drained = {
                let st = self.shared.lock();
                st.queue.is_empty() && st.direct.is_empty()
            } && self.workers.iter().all(|w| w.busy.is_none());
            if closed && drained {
                for i in 0..self.workers.len() {
                    self.retire(i);
                }
                if self.workers.is_empty() {
                    break;
                }
            } else if !broken {
                self.top_up();
            }
            self.poll_once();
        }
        let mut st = self.shared.lock();
        st.finished = true;
        st.pids.clear();
        drop(st);
        self.shared.changed.notify_all();
    }

    fn publish_pids(&self) {
        let pids = self.workers.iter().map(|w| w.l.child.pid()).collect();
        self.shared.lock().pids = pids;
    }

    fn top_up(&mut self) {
        if self.retry_spawn_at.is_some_and(|t| Instant::now() < t) {
            return;
        }
        self.retry_spawn_at = None;
        let mut changed = false;
        while self.workers.len() < self.cfg.workers {
            match self.spawn_worker() {
                Ok(w) => {
                    self.workers.push(w);
                    changed = true;
                    self.shared.lock().stats.workers_started += 1;
                }
                Err(e) => {
                    self.startup_failed(e.to_string(), false);
                    self.retry_spawn_at = Some(Instant::now() + Duration::from_millis(50));
                    break;
                }
            }
        }
        if changed {
            self.publish_pids();
        }
    }

    fn spawn_worker(&mut self) -> Result<Worker, Error> {
        let object = self.shared.label.clone();
        let progress = Progress::create(&object)?;
        let (init, init_args, init_fds) = match &self.cfg.init {
            Some((call, args, fds)) => (Some(*call), args.as_slice(), fds.as_slice()),
            None => (None, &[][..], &[][..]),
        };
        let mut fds: Vec<BorrowedFd<'_>> = vec![progress.shm().as_fd()];
        fds.extend(init_fds.iter().map(AsFd::as_fd));
        let job = StartJob::Worker {
            init,
            timeouts: self.cfg.timeout.is_some(),
            flush_bytes: self.cfg.flush_bytes,
        };
        let timeout = self.cfg.startup_timeout;
        let mut l = match self.cfg.method {
            StartMethod::ForkServer => {
                let start = launch::Start { job, payload: init_args, fds: &fds, timeout };
                return self.worker(launch::via_server(false, timeout, &object, start)?, progress);
            }
            StartMethod::Spawn => launch::spawn_here(false, &object)?,
            StartMethod::Fork => {
                // SAFETY: the pool was built with `fork_unsafe`, whose caller promised the
                // worker's initializer and tasks take no lock another thread may hold.
                #[allow(unsafe_code)]
                unsafe {
                    launch::fork_worker(&object)?
                }
            }
        };
        if let Err(e) = launch::send_start(&mut l, job, init_args, &fds, timeout, &object) {
            l.child.kill_and_reap(Duration::from_secs(1), &object);
            return Err(e);
        }
        drop(fds);
        self.worker(l, progress)
    }

    fn worker(&mut self, l: Launched, progress: Progress) -> Result<Worker, Error> {
        let dup = l.conn.as_fd().try_clone_to_owned();
        let dup =
            dup.map_err(|e| Error::io("duplicate control connection of", &self.shared.label, e))?;
        self.next_worker += 1;
        let id = self.next_worker;
        Ok(Worker {
            id,
            link: Arc::new(Link { id, send: Mutex::new(ipc_pipe::Connection::from(dup)) }),
            l,
            progress,
            hello: false,
            ready: false,
            startup_deadline: crate::process::after(self.cfg.startup_timeout),
            tasks: 0,
            conn_open: true,
            busy: None,
            retiring: false,
            kill: None,
        })
    }

    fn startup_failed(&mut self, why: String, killed: bool) {
        if killed {
            self.kills += 1;
        } else {
            self.failures += 1;
        }
        self.last_failure = why;
        if self.failures >= STARTUP_FAILURES || self.kills >= STARTUP_KILLS {
            self.break_pool(Broken { initializer: false, message: self.last_failure.clone() });
        }
    }

    fn break_pool(&mut self, broken: Broken) {
        {
            let mut st = self.shared.lock();
            if st.broken.is_none() {
                st.broken = Some(broken);
            }
        }
        self.shared.changed.notify_all();
        self.fail_queue();
    }

    fn fail_queue(&mut self) {
        let (chunks, broken) = {
            let mut st = self.shared.lock();
            (std::mem::take(&mut st.queue), st.broken.clone())
        };
        let Some(broken) = broken else { return };
        for c in chunks {
            for k in 0..c.count {
                c.job.results.set(c.first + k, Raw::Failed(broken.failure(self.label())));
            }
        }
    }

    fn apply_cancels(&mut self, cancels: Vec<(u64, u32)>) {
        for (job, index) in cancels {
            for w in &mut self.workers {
                if let Some(b) = &w.busy
                    && b.chunk.job.id == job
                    && index >= b.chunk.first
                    && index < b.chunk.first + b.chunk.count
                    && w.kill.is_none()
                {
                    w.kill = Some(Kill::Cancel { index: index - b.chunk.first });
                    let _ = w.l.child.signal(Signal::KILL, &self.shared.label);
                }
            }
        }
    }

    /// Take over the tasks callers handed straight to workers.
    fn adopt(&mut self) {
        let direct = std::mem::take(&mut self.shared.lock().direct);
        for d in direct {
            match self.workers.iter_mut().find(|w| w.id == d.worker) {
                Some(w) if w.busy.is_none() => {
                    w.busy = Some(Busy { chunk: d.chunk, seq: d.seq, delivered: 0 });
                }
                // Cannot happen (a worker leaves `idle` before it gets a task, and is only
                // removed after its tasks are adopted); run the task elsewhere.
                _ => self.shared.lock().queue.push_front(d.chunk),
            }
        }
    }

    /// Whether worker `i` may get a task: ready, idle, not retiring or being killed, and
    /// with budget left.
    fn eligible(&self, i: usize) -> bool {
        self.workers.get(i).is_some_and(|w| {
            w.ready
                && w.busy.is_none()
                && !w.retiring
                && w.kill.is_none()
                && w.conn_open
                && self.cfg.max_tasks_per_child.is_none_or(|m| w.tasks < m)
        })
    }

    /// Take worker `id` out of the idle list; `false` if a caller took it first (its task
    /// is in `direct`).
    fn claim(st: &mut State, id: u64) -> bool {
        match st.idle.iter().position(|l| l.id == id) {
            Some(pos) => {
                st.idle.swap_remove(pos);
                true
            }
            None => !st.direct.iter().any(|d| d.worker == id),
        }
    }

    fn retire(&mut self, i: usize) {
        let Some(w) = self.workers.get(i) else { return };
        if w.retiring || w.busy.is_some() {
            return;
        }
        if !Self::claim(&mut self.shared.lock(), w.id) {
            return; // a caller just handed it a task
        }
        let Some(w) = self.workers.get_mut(i) else { return };
        w.retiring = true;
        let mut header = Vec::new();
        if wire::encode_header(&Down::Retire, &mut header).is_ok() && w.conn_open {
            let _ = w.l.conn.send_timeout(&header, SEND_TIMEOUT);
        } else {
            let _ = w.l.child.signal(Signal::KILL, &self.shared.label);
        }
    }

    fn assign(&mut self) {
        for i in 0..self.workers.len() {
            if !self.eligible(i) {
                continue;
            }
            let Some(w) = self.workers.get(i) else { continue };
            let (id, tasks) = (w.id, w.tasks);
            let mut st = self.shared.lock();
            if st.queue.is_empty() {
                // Nothing queued: offer it to callers.
                if !st.idle.iter().any(|l| l.id == id) && !st.direct.iter().any(|d| d.worker == id)
                {
                    st.idle.push(Arc::clone(&w.link));
                }
                continue;
            }
            if !Self::claim(&mut st, id) {
                continue;
            }
            let Some(mut chunk) = st.queue.pop_front() else { continue };
            // Never hand a worker more items than it may still run.
            if let Some(max) = self.cfg.max_tasks_per_child {
                let left = max.saturating_sub(tasks).max(1);
                if chunk.count > left
                    && let Ok(bounds) = wire::item_bounds(&chunk.payload, chunk.count)
                {
                    let tail = sub_chunk(&chunk, &bounds, left, chunk.count, chunk.attempt);
                    if let Some(head) = sub_chunk(&chunk, &bounds, 0, left, chunk.attempt) {
                        if let Some(tail) = tail {
                            st.queue.push_front(tail);
                        }
                        chunk = head;
                    }
                }
            }
            let seq = st.seq();
            drop(st);
            self.send_chunk(i, chunk, seq);
        }
    }

    fn send_chunk(&mut self, i: usize, chunk: Chunk, seq: u32) {
        let label = self.shared.label.clone();
        let Some(w) = self.workers.get_mut(i) else { return };
        let down = Down::Chunk { seq, call: chunk.job.call, count: chunk.count };
        let sent = match wire::encode_header(&down, &mut self.buf) {
            Err(e) => Err(e),
            Ok(()) if !chunk.fds.is_empty() => {
                self.buf.extend_from_slice(&chunk.payload);
                let fds: Vec<BorrowedFd<'_>> = chunk.fds.iter().map(AsFd::as_fd).collect();
                w.l.conn.send_fds(&self.buf, &fds).map_err(|e| e.to_string())
            }
            Ok(()) => {
                self.buf.extend_from_slice(&chunk.payload);
                w.l.conn.send_timeout(&self.buf, SEND_TIMEOUT).map_err(|e| e.to_string())
            }
        };
        w.busy = Some(Busy { chunk, seq, delivered: 0 });
        if let Err(e) = sent {
            // Dead or stuck: kill it; its death requeues the chunk (nothing of it started).
            if w.kill.is_none() {
                w.kill = Some(Kill::Protocol(format!("send chunk: {e}")));
            }
            let _ = w.l.child.signal(Signal::KILL, &label);
        }
    }

    fn poll_once(&mut self) {
        let now = Instant::now();
        let mut wake_at: Option<Instant> = self.retry_spawn_at;
        let mut earliest = |t: Instant| {
            wake_at = Some(wake_at.map_or(t, |w| w.min(t)));
        };
        // Startup deadlines and task timeouts.
        for w in &mut self.workers {
            if !w.ready && w.kill.is_none() {
                if now >= w.startup_deadline {
                    w.kill = Some(Kill::Startup);
                    let _ = w.l.child.signal(Signal::KILL, &self.shared.label);
                } else {
                    earliest(w.startup_deadline);
                }
            }
            if let (Some(limit), Some(b)) = (self.cfg.timeout, &w.busy)
                && w.kill.is_none()
            {
                let seen = w.progress.read();
                let limit_ms = u32::try_from(limit.as_millis()).unwrap_or(u32::MAX);
                if seen.seq == b.seq && seen.started > b.delivered {
                    let elapsed = progress::now_ms().wrapping_sub(seen.start_ms);
                    if elapsed >= limit_ms {
                        w.kill = Some(Kill::Timeout { index: seen.started - 1 });
                        let _ = w.l.child.signal(Signal::KILL, &self.shared.label);
                    } else {
                        earliest(now + Duration::from_millis(u64::from(limit_ms - elapsed)));
                    }
                } else {
                    earliest(now.checked_add(limit).unwrap_or_else(crate::process::far_future));
                }
            }
        }
        let n = self.workers.len();
        let ready: Vec<(bool, bool)>;
        let wake_ready;
        {
            let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(1 + 2 * n);
            fds.push(PollFd::new(&self.shared.wake, PollFlags::IN));
            for w in &self.workers {
                fds.push(PollFd::from_borrowed_fd(w.l.child.exit_fd(), PollFlags::IN));
                if w.conn_open {
                    fds.push(PollFd::new(&w.l.conn, PollFlags::IN));
                }
            }
            let ts = wake_at.map(|t| launch::timespec(t.saturating_duration_since(Instant::now())));
            if rustix::event::poll(&mut fds, ts.as_ref()).is_err() {
                return; // EINTR: go round again
            }
            let mut it = fds.iter().map(|f| !f.revents().is_empty());
            wake_ready = it.next().unwrap_or(false);
            ready = self
                .workers
                .iter()
                .map(|w| {
                    let exit = it.next().unwrap_or(false);
                    let conn = w.conn_open && it.next().unwrap_or(false);
                    (exit, conn)
                })
                .collect();
        }
        if wake_ready {
            let mut b = [0u8; 8];
            let _ = rustix::io::read(&self.shared.wake, &mut b);
        }
        for (i, &(_, conn)) in ready.iter().enumerate() {
            if conn {
                self.read_messages(i);
            }
        }
        let mut any_exit = false;
        for i in (0..ready.len()).rev() {
            if ready.get(i).is_some_and(|r| r.0) {
                any_exit |= self.on_exit(i);
            }
        }
        if any_exit {
            self.publish_pids();
        }
    }

    fn read_messages(&mut self, i: usize) {
        self.adopt();
        loop {
            let Some(w) = self.workers.get_mut(i) else { return };
            if !w.conn_open {
                return;
            }
            let msg = match w.l.conn.try_recv() {
                Ok(Some(m)) => m,
                Ok(None) => return,
                Err(e) => {
                    w.conn_open = false;
                    if !e.is_disconnected() && w.kill.is_none() {
                        w.kill = Some(Kill::Protocol(e.to_string()));
                        let _ = w.l.child.signal(Signal::KILL, &self.shared.label);
                    }
                    return;
                }
            };
            if let Err(what) = self.handle(i, msg) {
                let label = self.shared.label.clone();
                if let Some(w) = self.workers.get_mut(i) {
                    if w.kill.is_none() {
                        w.kill = Some(Kill::Protocol(what));
                    }
                    let _ = w.l.child.signal(Signal::KILL, &label);
                }
                return;
            }
        }
    }

    fn handle(&mut self, i: usize, msg: Vec<u8>) -> Result<(), String> {
        let (up, payload_len) = match wire::decode::<Up>(&msg) {
            Ok((up, payload)) => (up, payload.len()),
            Err(e) => return Err(e.to_string()),
        };
        let header_len = msg.len() - payload_len;
        let max_tasks = self.cfg.max_tasks_per_child;
        let Some(w) = self.workers.get_mut(i) else { return Ok(()) };
        match up {
            Up::Hello { .. } => w.hello = true,
            Up::Ready => {
                w.ready = true;
                self.failures = 0;
                self.kills = 0;
                self.shared.lock().ready_workers += 1;
                self.shared.changed.notify_all();
            }
            Up::InitFailed { message } => {
                w.kill = Some(Kill::Protocol("initializer failed".into()));
                self.break_pool(Broken { initializer: true, message });
            }
            Up::Refused { reason } => {
                w.kill = Some(Kill::Protocol(format!("refused: {reason:?}")));
                self.break_pool(Broken {
                    initializer: false,
                    message: format!("worker refused to run: {reason:?}"),
                });
            }
            Up::Results { seq, count } => {
                let Some(b) = w.busy.as_mut() else { return Err("results while idle".into()) };
                if seq != b.seq || count == 0 || b.delivered + count > b.chunk.count {
                    return Err(format!(
                        "results for chunk {seq} x{count} while running {} ({} of {} done)",
                        b.seq, b.delivered, b.chunk.count
                    ));
                }
                let payload = msg.get(header_len..).unwrap_or_default();
                let bounds = wire::item_bounds(payload, count).map_err(|e| e.to_string())?;
                let ranges: Vec<std::ops::Range<usize>> = bounds
                    .windows(2)
                    .filter_map(|p| Some(header_len + p.first()? + 4..header_len + p.get(1)?))
                    .collect();
                let batch = Arc::new(msg);
                let dup =
                    b.chunk.job.results.set_batch(b.chunk.first + b.delivered, &batch, &ranges);
                if dup > 0 {
                    self.shared.lock().stats.duplicate_results += dup;
                }
                b.delivered += count;
                if b.delivered == b.chunk.count {
                    w.tasks = w.tasks.saturating_add(b.chunk.count);
                    w.busy = None;
                    if max_tasks.is_some_and(|m| w.tasks >= m) {
                        self.retire(i);
                    }
                }
            }
            other => return Err(format!("unexpected {other:?}")),
        }
        Ok(())
    }

    /// The worker's exit fd is readable: collect what it sent, reap it, settle its chunk.
    /// Returns whether it was removed.
    fn on_exit(&mut self, i: usize) -> bool {
        self.read_messages(i);
        if let Some(w) = self.workers.get(i) {
            // No caller may hand it a task any more; one handed already is settled below.
            let id = w.id;
            let mut st = self.shared.lock();
            st.idle.retain(|l| l.id != id);
            drop(st);
            self.adopt();
        }
        let label = self.shared.label.clone();
        let Some(w) = self.workers.get_mut(i) else { return false };
        let exit = match w.l.child.try_reap(&label) {
            Ok(Some(st)) => st,
            Ok(None) => return false,
            Err(_) => ExitStatus::Signal(libc::SIGKILL), // the fork server died with it
        };
        let w = self.workers.swap_remove(i);
        if !w.retiring {
            self.shared.lock().stats.worker_deaths += 1;
        }
        // Replace it before settling its tasks, so whoever learns of the death finds the
        // pool whole again.
        let (closed, broken) = {
            let st = self.shared.lock();
            (st.closed || st.terminate, st.broken.is_some())
        };
        if !closed && !broken && !w.retiring {
            self.top_up();
        }
        if let Some(b) = w.busy {
            self.post_mortem(b, &w.progress, w.kill.clone(), exit);
        } else if !w.ready && !w.retiring {
            let why = match &w.kill {
                Some(Kill::Startup) => {
                    format!("a worker did not get ready within {:?}", self.cfg.startup_timeout)
                }
                Some(Kill::Protocol(m)) => m.clone(),
                _ if !w.hello => format!(
                    "a worker ended ({exit}) before it started: does main call ipc_process::init() first (or the test binary ipc_process::auto_init!())?"
                ),
                _ => format!("a worker died while starting: {exit}"),
            };
            if !matches!(w.kill, Some(Kill::Terminate)) {
                let killed = w.kill.is_none() && exit == ExitStatus::Signal(libc::SIGKILL);
                self.startup_failed(why, killed);
            }
        }
        true
    }

    fn post_mortem(&mut self, b: Busy, progress: &Progress, kill: Option<Kill>, exit: ExitStatus) {
        let chunk = b.chunk;
        let count = chunk.count;
        let seen = progress.read();
        let started = if seen.seq == b.seq { seen.started.min(count) } else { 0 };
        let d = b.delivered;
        let Ok(bounds) = wire::item_bounds(&chunk.payload, count) else {
            return;
        };
        let results = Arc::clone(&chunk.job.results);
        let first = chunk.first;
        let mut dups = 0u64;
        let mut fail = |k: u32, f: Failure| {
            if !results.set(first + k, Raw::Failed(f)) {
                dups += 1;
            }
        };
        let mut requeue: Vec<Chunk> = Vec::new();
        // The item that was running when the worker died, if one was.
        let victim = (started > d).then(|| started - 1);
        let rerun_end = victim.unwrap_or(d).max(d);
        // Items [d, rerun_end) finished, but their results died with the worker: run again,
        // except one the supervisor killed for running past its timeout (it did, even if it
        // then finished).
        let mut from = d;
        if let Some(Kill::Timeout { index }) = &kill
            && *index >= d
            && *index < rerun_end
        {
            requeue.extend(sub_chunk(&chunk, &bounds, d, *index, chunk.attempt));
            fail(*index, Failure::Timeout(self.cfg.timeout.unwrap_or_default()));
            from = index + 1;
        }
        requeue.extend(sub_chunk(&chunk, &bounds, from, rerun_end, chunk.attempt));
        let rerun = u64::from(rerun_end.saturating_sub(from));
        let mut retried = 0u64;
        if let Some(v) = victim {
            let blamed = match &kill {
                Some(Kill::Timeout { index }) if *index == v => {
                    Some(Failure::Timeout(self.cfg.timeout.unwrap_or_default()))
                }
                Some(Kill::Cancel { index }) if *index == v => Some(Failure::Cancelled),
                // Killed for another item's sake: this one is innocent, run it again.
                Some(Kill::Timeout { .. } | Kill::Cancel { .. }) => None,
                Some(Kill::Terminate) => Some(Failure::Terminated),
                Some(Kill::Protocol(m)) => {
                    Some(Failure::Lost(Error::protocol("run task in", self.label(), m.clone())))
                }
                Some(Kill::Startup) | None => Some(Failure::WorkerDied(exit)),
            };
            match blamed {
                Some(Failure::WorkerDied(exit)) if chunk.attempt < self.cfg.retries => {
                    let mut one = sub_chunk(&chunk, &bounds, v, v + 1, chunk.attempt + 1);
                    if let Some(c) = one.as_mut()
                        && count == 1
                    {
                        c.fds = chunk.fds.iter().filter_map(|f| f.try_clone().ok()).collect();
                    }
                    if one.is_none() {
                        fail(v, Failure::WorkerDied(exit));
                    }
                    retried += 1;
                    requeue.extend(one);
                }
                Some(f) => fail(v, f),
                None => {
                    let mut one = sub_chunk(&chunk, &bounds, v, v + 1, chunk.attempt);
                    if let Some(c) = one.as_mut()
                        && count == 1
                    {
                        c.fds = chunk.fds.iter().filter_map(|f| f.try_clone().ok()).collect();
                    }
                    requeue.extend(one);
                }
            }
        }
        // Items after the victim never started; a cancelled one among them (cancels come
        // for single-item tasks) is settled here instead of going back to the queue.
        let mut rest_from = victim.map_or(rerun_end, |v| v + 1).max(rerun_end);
        if let Some(Kill::Cancel { index }) = &kill
            && victim != Some(*index)
            && *index == rest_from
        {
            fail(*index, Failure::Cancelled);
            rest_from += 1;
        }
        let mut rest = sub_chunk(&chunk, &bounds, rest_from, count, chunk.attempt);
        if let Some(c) = rest.as_mut()
            && count == 1
        {
            c.fds = chunk.fds;
        }
        requeue.extend(rest);
        let mut st = self.shared.lock();
        st.stats.tasks_rerun += rerun;
        st.stats.tasks_retried += retried;
        st.stats.duplicate_results += dups;
        if st.terminate {
            drop(st);
            for c in requeue {
                for k in 0..c.count {
                    c.job.results.set(c.first + k, Raw::Failed(Failure::Terminated));
                }
            }
            return;
        }
        for c in requeue.into_iter().rev() {
            st.queue.push_front(c);
        }
    }

    fn terminate_all(&mut self) {
        self.shared.lock().idle.clear();
        self.adopt();
        let label = self.shared.label.clone();
        for w in &mut self.workers {
            w.kill = Some(Kill::Terminate);
            let _ = w.l.child.signal(Signal::KILL, &label);
        }
        let chunks = std::mem::take(&mut self.shared.lock().queue);
        for c in chunks {
            for k in 0..c.count {
                c.job.results.set(c.first + k, Raw::Failed(Failure::Terminated));
            }
        }
        // Results they sent before the kill still count.
        for i in 0..self.workers.len() {
            self.read_messages(i);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for mut w in std::mem::take(&mut self.workers) {
            if let Some(b) = w.busy.take() {
                for k in b.delivered..b.chunk.count {
                    b.chunk.job.results.set(b.chunk.first + k, Raw::Failed(Failure::Terminated));
                }
            }
            match w.l.child.wait(Some(deadline), &label) {
                Ok(Some(_)) | Err(_) => {}
                Ok(None) => w.l.child.kill_and_reap(Duration::from_millis(100), &label),
            }
        }
    }
}
