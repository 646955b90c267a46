//! [`Pool`]: a supervised pool of worker processes, like Python's `multiprocessing.Pool`,
//! that survives its workers dying.

mod results;
mod supervisor;

use std::fmt;
use std::marker::PhantomData;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::call;
use crate::error::{Error, Result, TaskError};
use crate::launch::StartMethod;
use crate::outcome::Outcome;
use crate::transfer;
use crate::wire;

use results::{Failure, Raw, Results};
use supervisor::{Chunk, Config, Direct, Job, Link, Shared, State, Supervisor};

/// What happens to a task whose worker died while running it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Retry {
    /// Report [`TaskError::WorkerDied`] (the default).
    #[default]
    Never,
    /// Run it again on another worker, up to this many times, then report
    /// [`TaskError::WorkerDied`].
    Times(u32),
}

/// The outcome of one task whose function returns `O`: its value or how it failed.
pub type TaskResult<O> = Result<<O as Outcome>::Value, TaskError<<O as Outcome>::Error>>;

/// What a pool has been through, from [`Pool::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Worker processes started, the first ones and every replacement.
    pub workers_started: u64,
    /// Workers that ended without being retired: killed, crashed, timed out, cancelled.
    pub worker_deaths: u64,
    /// Tasks run again under the [`Retry`] policy after their worker died.
    pub tasks_retried: u64,
    /// Tasks run again because they had finished but their results died with the worker.
    pub tasks_rerun: u64,
    /// Second outcomes for one task, ignored (always 0 unless the pool has a bug).
    pub duplicate_results: u64,
}

/// Settings of a [`Pool`]; [`build`](Self::build) starts it.
#[derive(Debug)]
pub struct PoolBuilder {
    workers: usize,
    method: StartMethod,
    max_tasks_per_child: Option<u32>,
    init: Option<(wire::Call, Vec<u8>, Vec<OwnedFd>)>,
    init_error: Option<Error>,
    timeout: Option<Duration>,
    retry: Retry,
    startup_timeout: Duration,
    name: Option<String>,
}

impl Default for PoolBuilder {
    fn default() -> Self {
        PoolBuilder {
            workers: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            method: StartMethod::Spawn,
            max_tasks_per_child: None,
            init: None,
            init_error: None,
            timeout: None,
            retry: Retry::Never,
            startup_timeout: crate::process::DEFAULT_STARTUP_TIMEOUT,
            name: None,
        }
    }
}

impl PoolBuilder {
    /// Number of worker processes (default: the number of CPUs).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// How workers are started: [`StartMethod::Spawn`] (default) or
    /// [`StartMethod::ForkServer`]. (For fork see [`fork_unsafe`](Self::fork_unsafe).)
    pub fn method(mut self, method: StartMethod) -> Self {
        if method != StartMethod::Fork {
            self.method = method;
        }
        self
    }

    /// Start workers by forking the pool's supervisor thread. Workers are forked whenever one
    /// is (re)started, while this process has other threads.
    ///
    /// # Safety
    /// The initializer and every task the pool runs must take no lock that another thread
    /// of this process may hold (stdout's, a `Mutex` of yours, a non-fork-safe allocator's):
    /// in a forked child such a lock stays held forever. Prefer `ForkServer`.
    #[allow(unsafe_code)]
    pub unsafe fn fork_unsafe(mut self) -> Self {
        self.method = StartMethod::Fork;
        self
    }

    /// Replace a worker after it has run this many tasks (Python's `maxtasksperchild`);
    /// default: never. `0` is treated as `1`.
    pub fn max_tasks_per_child(mut self, n: u32) -> Self {
        self.max_tasks_per_child = Some(n.max(1));
        self
    }

    /// Run `f(arg)` in every worker before its first task (to open files, load data, set up
    /// globals). An initializer that returns `Err` or panics is reported (by
    /// [`build`](Self::build), or by every task if a later replacement worker fails), not
    /// retried in a loop. `arg` may hold [`Handle`](crate::Handle)s.
    pub fn initializer<A, O>(mut self, f: fn(A) -> O, arg: A) -> Self
    where
        A: Serialize + DeserializeOwned,
        O: Outcome,
        O::Error: fmt::Debug,
    {
        let object = self.object();
        let made = call::init(f, &object).and_then(|call| {
            let mut payload = Vec::new();
            let fds = transfer::encode_with_fds(&arg, &mut payload)
                .map_err(|e| Error::codec("encode initializer arguments of", &object, e))?;
            Ok((call, payload, fds))
        });
        match made {
            Ok(init) => self.init = Some(init),
            Err(e) => self.init_error = Some(e),
        }
        self
    }

    /// Kill a worker whose task runs longer than `timeout` (the task gets
    /// [`TaskError::Timeout`]; the worker is replaced; other tasks are unaffected).
    pub fn task_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// What to do with a task whose worker died (default [`Retry::Never`]).
    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// How long a worker may take to start (default 30 s).
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// A name for error messages (default `pool`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    fn object(&self) -> String {
        self.name.clone().unwrap_or_else(|| "pool".to_owned())
    }

    /// Start the workers and wait until every one is ready (its initializer done).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] (zero workers), [`Error::InitializerFailed`],
    /// [`Error::PoolBroken`] (workers cannot start: e.g. `main` does not call
    /// [`init`](crate::init)), [`Error::InitNotCalled`], OS errors.
    pub fn build(self) -> Result<Pool> {
        let label = self.object();
        if let Some(e) = self.init_error {
            return Err(e);
        }
        if self.workers == 0 {
            return Err(Error::InvalidArgument { op: "build pool", what: "zero workers".into() });
        }
        crate::child::check_dispatched("start pool")?;
        let wake = rustix::event::eventfd(
            0,
            rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK,
        )
        .map_err(|e| Error::io("create eventfd for", &label, e.into()))?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: std::sync::Condvar::new(),
            wake,
            label: label.clone(),
            poke_direct: self.timeout.is_some(),
        });
        let retries = match self.retry {
            Retry::Never => 0,
            Retry::Times(n) => n,
        };
        let cfg = Config {
            workers: self.workers,
            method: self.method,
            max_tasks_per_child: self.max_tasks_per_child,
            init: self.init,
            timeout: self.timeout,
            retries,
            startup_timeout: self.startup_timeout,
            flush_bytes: 64 * 1024,
        };
        let sup = Supervisor::new(Arc::clone(&shared), cfg);
        let thread = std::thread::Builder::new()
            .name(format!("{label} supervisor"))
            .spawn(move || sup.run())
            .map_err(|e| Error::io("start supervisor thread of", &label, e))?;
        let pool = Pool { shared, thread: Mutex::new(Some(thread)), workers: self.workers };
        // Wait for every worker to be ready, or for the pool to break.
        let deadline =
            crate::process::after(self.startup_timeout.saturating_add(Duration::from_secs(5)));
        let mut st = pool.shared.lock();
        loop {
            if let Some(b) = &st.broken {
                let e = b.error(&label);
                drop(st);
                pool.terminate();
                return Err(e);
            }
            if st.ready_workers >= self.workers || st.finished {
                break;
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                drop(st);
                pool.terminate();
                return Err(Error::StartupTimeout { object: label, after: self.startup_timeout });
            };
            st = pool
                .shared
                .changed
                .wait_timeout(st, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        drop(st);
        Ok(pool)
    }
}

/// A pool of supervised worker processes.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # ipc_process::init();
/// use ipc_process::Pool;
///
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// let pool = Pool::new(2)?;
/// assert_eq!(pool.map(square, 1..=4)?, [1, 4, 9, 16]);
/// assert_eq!(pool.apply(square, 12)?, 144);
/// # Ok(()) }
/// ```
///
/// # Supervision
/// - A worker that dies at any instruction (SIGKILL, the OOM killer, a segfault, an abort)
///   fails only the task it was running, with [`TaskError::WorkerDied`] (or runs it again,
///   per [`Retry`]); tasks it had finished but not yet reported run again; the rest of its
///   chunk goes back to the queue; a new worker replaces it. Nothing hangs.
/// - A task past the [task timeout](PoolBuilder::task_timeout) has its worker killed and
///   gets [`TaskError::Timeout`]; other tasks are unaffected.
/// - Submitting never waits for results and collecting results never waits for
///   submission (an unbounded in-process queue feeds one supervisor thread that watches
///   every worker's connection and exit at once), so any number of tasks can be fed.
///
/// # Shutting down
/// [`close`](Self::close) stops new submissions; [`join`](Self::join) then waits until every
/// task finished and the workers exited. [`terminate`](Self::terminate) kills the workers at
/// once (unfinished tasks get [`TaskError::Terminated`]). **Dropping a pool terminates
/// it**, as leaving Python's `with Pool() as p:` block does: join first to let work finish.
pub struct Pool {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    workers: usize,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.shared.label)
            .field("workers", &self.workers)
            .finish_non_exhaustive()
    }
}

/// Largest task arguments handed straight to an idle worker (larger ones go through the
/// supervisor, which may wait for the socket).
const DIRECT_MAX: usize = 16 * 1024;

/// Write one task to a lent worker connection: a whole frame or nothing.
fn send_direct(link: &Link, chunk: &Chunk, seq: u32, buf: &mut Vec<u8>) -> Result<(), ()> {
    let down = wire::Down::Chunk { seq, call: chunk.job.call, count: chunk.count };
    wire::encode_header(&down, buf).map_err(drop)?;
    buf.extend_from_slice(&chunk.payload);
    let mut conn = link.send.lock().unwrap_or_else(PoisonError::into_inner);
    if chunk.fds.is_empty() {
        conn.try_send(buf).map_err(drop)
    } else {
        let fds: Vec<std::os::fd::BorrowedFd<'_>> =
            chunk.fds.iter().map(std::os::fd::AsFd::as_fd).collect();
        conn.send_fds(buf, &fds).map_err(drop)
    }
}

/// Python's `Pool.map` chunk size: the items spread over four chunks per worker.
pub fn default_chunksize(items: usize, workers: usize) -> usize {
    if items == 0 {
        return 0;
    }
    let per = workers.max(1).saturating_mul(4);
    items.div_ceil(per)
}

impl Pool {
    /// A pool of `workers` processes started with [`StartMethod::Spawn`].
    ///
    /// # Errors
    /// As [`PoolBuilder::build`].
    pub fn new(workers: usize) -> Result<Pool> {
        PoolBuilder::default().workers(workers).build()
    }

    /// Settings for a pool.
    pub fn builder() -> PoolBuilder {
        PoolBuilder::default()
    }

    /// Number of worker processes.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// pids of the workers running now (they change as workers are replaced).
    pub fn worker_pids(&self) -> Vec<u32> {
        self.shared.lock().pids.clone()
    }

    /// Counters: workers started (replacements included), deaths, retries...
    pub fn stats(&self) -> PoolStats {
        self.shared.lock().stats
    }

    fn scratch(&self) -> Vec<u8> {
        Vec::with_capacity(64)
    }

    fn new_job(&self, st: &mut State, call: wire::Call, n: usize) -> Arc<Job> {
        st.next_job += 1;
        Arc::new(Job { id: st.next_job, call, results: Results::new(n) })
    }

    fn check_open(&self, st: &State) -> Result<()> {
        if let Some(b) = &st.broken {
            return Err(b.error(&self.shared.label));
        }
        if st.closed || st.terminate || st.finished {
            return Err(Error::PoolClosed { object: self.shared.label.clone() });
        }
        Ok(())
    }

    /// Queue `f(arg)` and return a handle to its outcome. `arg` may hold
    /// [`Handle`](crate::Handle)s.
    ///
    /// # Errors
    /// [`Error::PoolClosed`], [`Error::InitializerFailed`], [`Error::PoolBroken`],
    /// [`Error::Codec`], [`Error::NotInExecutable`].
    pub fn submit<A, O>(&self, f: fn(A) -> O, arg: A) -> Result<TaskHandle<O>>
    where
        A: Serialize + DeserializeOwned,
        O: Outcome,
    {
        let call = call::items(f, &self.shared.label)?;
        let mut payload = Vec::with_capacity(16);
        let at = wire::begin_item(&mut payload);
        let fds = transfer::encode_with_fds(&arg, &mut payload)
            .map_err(|e| Error::codec("encode arguments of", &self.shared.label, e))?;
        wire::finish_item(&mut payload, at);
        let mut st = self.shared.lock();
        self.check_open(&st)?;
        let job = self.new_job(&mut st, call, 1);
        let handle = TaskHandle {
            results: Arc::clone(&job.results),
            job: job.id,
            pool: Arc::downgrade(&self.shared),
            taken: false,
            _outcome: PhantomData,
        };
        let chunk = Chunk { job, first: 0, count: 1, payload, fds, attempt: 0 };
        // Nothing queued and a worker idle: hand the task to it straight away, so the only
        // wake-ups are the worker's and, for the result, the supervisor's.
        if st.queue.is_empty()
            && chunk.payload.len() <= DIRECT_MAX
            && let Some(link) = st.idle.pop()
        {
            let seq = st.seq();
            match send_direct(&link, &chunk, seq, &mut self.scratch()) {
                Ok(()) => {
                    st.direct.push(Direct { worker: link.id, seq, chunk });
                    drop(st);
                    if self.shared.poke_direct {
                        self.shared.poke();
                    }
                }
                Err(()) => {
                    st.broken_links.push(link.id);
                    st.queue.push_back(chunk);
                    drop(st);
                    self.shared.poke();
                }
            }
            return Ok(handle);
        }
        st.queue.push_back(chunk);
        drop(st);
        self.shared.poke();
        Ok(handle)
    }

    /// Run `f(arg)` on a worker and wait for its outcome (with a deadline: [`submit`] and
    /// [`TaskHandle::wait_timeout`]).
    ///
    /// [`submit`]: Self::submit
    ///
    /// # Errors
    /// The task's [`TaskError`]; a refused submission as [`TaskError::Lost`].
    pub fn apply<A, O>(&self, f: fn(A) -> O, arg: A) -> TaskResult<O>
    where
        A: Serialize + DeserializeOwned,
        O: Outcome,
    {
        self.submit(f, arg).map_err(TaskError::Lost)?.wait()
    }

    fn submit_items<A, O, I>(
        &self,
        f: fn(A) -> O,
        items: I,
        chunksize: Option<usize>,
    ) -> Result<(Arc<Results>, usize)>
    where
        A: Serialize + DeserializeOwned,
        O: Outcome,
        I: IntoIterator<Item = A>,
    {
        let call = call::items(f, &self.shared.label)?;
        let items: Vec<A> = items.into_iter().collect();
        let n = items.len();
        let size = match chunksize {
            Some(0) => {
                return Err(Error::InvalidArgument { op: "map", what: "chunk size 0".into() });
            }
            Some(c) => c,
            None => default_chunksize(n, self.workers).max(1),
        };
        u32::try_from(n).map_err(|_| Error::InvalidArgument {
            op: "map",
            what: format!("{n} items (at most 2^32 - 1 per call)"),
        })?;
        let mut chunks = Vec::with_capacity(n.div_ceil(size));
        let mut first = 0u32;
        for group in items.chunks(size) {
            let mut payload = Vec::with_capacity(group.len() * 8);
            for item in group {
                let at = wire::begin_item(&mut payload);
                let fds = transfer::encode_with_fds(item, &mut payload)
                    .map_err(|e| Error::codec("encode arguments of", &self.shared.label, e))?;
                if !fds.is_empty() {
                    return Err(Error::CannotTransfer {
                        what: "a Handle in a map item".into(),
                        why: "pass handles with apply, submit or the initializer".into(),
                    });
                }
                wire::finish_item(&mut payload, at);
            }
            let count = u32::try_from(group.len()).unwrap_or(u32::MAX);
            chunks.push((first, count, payload));
            first = first.saturating_add(count);
        }
        let mut st = self.shared.lock();
        self.check_open(&st)?;
        let job = self.new_job(&mut st, call, n);
        let results = Arc::clone(&job.results);
        for (first, count, payload) in chunks {
            st.queue.push_back(Chunk {
                job: Arc::clone(&job),
                first,
                count,
                payload,
                fds: Vec::new(),
                attempt: 0,
            });
        }
        drop(st);
        self.shared.poke();
        Ok((results, n))
    }

    /// Apply `f` to every item, in order: all the values, or the first task error (by item
    /// order) once every task ended. The chunk size is chosen as Python's `Pool.map`
    /// chooses it (four chunks per worker). Items cannot hold [`Handle`](crate::Handle)s.
    ///
    /// # Errors
    /// The first item's [`TaskError`]; a refused submission as [`TaskError::Lost`].
    pub fn map<A, O, I>(
        &self,
        f: fn(A) -> O,
        items: I,
    ) -> Result<Vec<O::Value>, TaskError<O::Error>>
    where
        A: Serialize + DeserializeOwned,
        O: Outcome,
        I: IntoIterator<Item = A>,
    {
        self.map_inner(f, items, None)
    }

    /// [`map`](Self::map) with a chunk size of your choice.
    ///
    /// # Errors
    /// As [`map`](Self::map); a chunk size of 0 as [`TaskError::Lost`].
    pub fn map_chunked<A, O, I>(
        &self,
        f: fn(A) -> O,
        items: I,
        chunksize: usize,
    ) -> Result<Vec<O::Value>, TaskError<O::Error>>
    where
        A: Serialize + DeserializeOwned,
        O: Outcome,
        I: IntoIterator<Item = A>,
    {
        self.map_inner(f, items, Some(chunksize))
    }

    fn map_inner<A, O, I>(
        &self,
        f: fn(A) -> O,
        items: I,
        chunksize: Option<usize>,
    ) -> Result<Vec<O::Value>, TaskError<O::Error>>
    where
        A: Serialize + DeserializeOwned,
        O: Outcome,
        I: IntoIterator<Item = A>,
    {
        let (results, n) = self.submit_items(f, items, chunksize).map_err(TaskError::Lost)?;
        let mut out = Vec::with_capacity(n);
        let mut first_err = None;
        let mut run = Vec::new();
        let mut next = 0usize;
        while next < n {
            results.take_run(u32::try_from(next).unwrap_or(u32::MAX), &mut run);
            if run.is_empty() {
                return Err(TaskError::Lost(Error::protocol(
                    "map",
                    &self.shared.label,
                    "a result went missing",
                )));
            }
            next += run.len();
            for raw in run.drain(..) {
                match results::decode::<O>(raw, &self.shared.label) {
                    Ok(v) if first_err.is_none() => out.push(v),
                    Err(e) if first_err.is_none() => first_err = Some(e),
                    _ => {}
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// Apply `f` to every item; iterate the outcomes in item order as they arrive (every
    /// item is queued at once; the chunk size is Python's `map` choice).
    ///
    /// # Errors
    /// A refused submission ([`Error::PoolClosed`], [`Error::Codec`]...).
    pub fn imap<A, O, I>(&self, f: fn(A) -> O, items: I) -> Result<Imap<O>>
    where
        A: Serialize + DeserializeOwned,
        O: Outcome,
        I: IntoIterator<Item = A>,
    {
        self.imap_chunked(f, items, None)
    }

    /// [`imap`](Self::imap) with a chunk size (`None`: Python's `map` choice).
    ///
    /// # Errors
    /// As [`imap`](Self::imap).
    pub fn imap_chunked<A, O, I>(
        &self,
        f: fn(A) -> O,
        items: I,
        chunksize: Option<usize>,
    ) -> Result<Imap<O>>
    where
        A: Serialize + DeserializeOwned,
        O: Outcome,
        I: IntoIterator<Item = A>,
    {
        let (results, n) = self.submit_items(f, items, chunksize)?;
        Ok(Imap { results, next: 0, n, label: self.shared.label.clone(), _outcome: PhantomData })
    }

    /// Apply `f` to every item; iterate `(index, outcome)` in the order tasks finish.
    ///
    /// # Errors
    /// As [`imap`](Self::imap).
    pub fn imap_unordered<A, O, I>(&self, f: fn(A) -> O, items: I) -> Result<ImapUnordered<O>>
    where
        A: Serialize + DeserializeOwned,
        O: Outcome,
        I: IntoIterator<Item = A>,
    {
        self.imap_unordered_chunked(f, items, None)
    }

    /// [`imap_unordered`](Self::imap_unordered) with a chunk size (`None`: Python's choice).
    ///
    /// # Errors
    /// As [`imap`](Self::imap).
    pub fn imap_unordered_chunked<A, O, I>(
        &self,
        f: fn(A) -> O,
        items: I,
        chunksize: Option<usize>,
    ) -> Result<ImapUnordered<O>>
    where
        A: Serialize + DeserializeOwned,
        O: Outcome,
        I: IntoIterator<Item = A>,
    {
        let (results, n) = self.submit_items(f, items, chunksize)?;
        Ok(ImapUnordered {
            results,
            left: n,
            label: self.shared.label.clone(),
            _outcome: PhantomData,
        })
    }

    /// Take no more tasks; queued and running ones still finish.
    pub fn close(&self) {
        self.shared.lock().closed = true;
        self.shared.poke();
    }

    /// Wait until every task finished and the workers exited (after [`close`](Self::close)).
    ///
    /// # Errors
    /// [`Error::PoolNotClosed`].
    pub fn join(&self) -> Result<()> {
        self.join_until(None).map(drop)
    }

    /// [`join`](Self::join), waiting at most `timeout`: `Ok(false)` if work remains then.
    ///
    /// # Errors
    /// [`Error::PoolNotClosed`].
    pub fn join_timeout(&self, timeout: Duration) -> Result<bool> {
        self.join_until(Some(crate::process::after(timeout)))
    }

    fn join_until(&self, deadline: Option<Instant>) -> Result<bool> {
        let mut st = self.shared.lock();
        if !st.closed && !st.terminate {
            return Err(Error::PoolNotClosed { object: self.shared.label.clone() });
        }
        while !st.finished {
            st = match deadline {
                None => self.shared.changed.wait(st).unwrap_or_else(PoisonError::into_inner),
                Some(d) => {
                    let Some(left) =
                        d.checked_duration_since(Instant::now()).filter(|l| !l.is_zero())
                    else {
                        return Ok(false);
                    };
                    self.shared
                        .changed
                        .wait_timeout(st, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
        drop(st);
        if let Some(t) = self.thread.lock().unwrap_or_else(PoisonError::into_inner).take() {
            let _ = t.join();
        }
        Ok(true)
    }

    /// Kill every worker now; unfinished tasks get [`TaskError::Terminated`]. Returns once the
    /// workers are reaped.
    pub fn terminate(&self) {
        self.shared.lock().terminate = true;
        self.shared.poke();
        if let Some(t) = self.thread.lock().unwrap_or_else(PoisonError::into_inner).take() {
            let _ = t.join();
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// A queued task's outcome, from [`Pool::submit`].
pub struct TaskHandle<O: Outcome> {
    results: Arc<Results>,
    job: u64,
    pool: Weak<Shared>,
    taken: bool,
    _outcome: PhantomData<fn() -> O>,
}

impl<O: Outcome> fmt::Debug for TaskHandle<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskHandle").field("job", &self.job).field("done", &self.is_done()).finish()
    }
}

impl<O: Outcome> TaskHandle<O> {
    fn label(&self) -> String {
        self.pool.upgrade().map_or_else(|| "pool".to_owned(), |p| p.label.clone())
    }

    /// Whether the outcome is ready.
    pub fn is_done(&self) -> bool {
        self.taken || self.results.is_ready(0)
    }

    /// Wait for the outcome.
    ///
    /// # Errors
    /// The task's [`TaskError`].
    pub fn wait(mut self) -> TaskResult<O> {
        match self.wait_until(None) {
            Some(r) => r,
            None => Err(TaskError::Lost(Error::AlreadyJoined { object: self.label() })),
        }
    }

    /// Wait at most `timeout`: `None` if the task has not finished by then (the handle stays
    /// usable).
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<TaskResult<O>> {
        self.wait_until(Some(crate::process::after(timeout)))
    }

    /// The outcome if ready, else `None` at once.
    pub fn try_wait(&mut self) -> Option<TaskResult<O>> {
        self.wait_until(Some(Instant::now()))
    }

    fn wait_until(&mut self, deadline: Option<Instant>) -> Option<TaskResult<O>> {
        if self.taken {
            return Some(Err(TaskError::Lost(Error::AlreadyJoined { object: self.label() })));
        }
        let raw = self.results.take(0, deadline)?;
        self.taken = true;
        Some(results::decode::<O>(raw, &self.label()))
    }

    /// Cancel the task: a queued one never runs; a running one has its worker killed (and
    /// replaced). Either way it ends with [`TaskError::Cancelled`]. Returns `false` if it had
    /// already finished (or the pool is gone).
    pub fn cancel(&self) -> bool {
        if self.is_done() {
            return false;
        }
        let Some(pool) = self.pool.upgrade() else { return false };
        let mut st = pool.lock();
        if let Some(pos) = st.queue.iter().position(|c| c.job.id == self.job) {
            if let Some(c) = st.queue.remove(pos) {
                c.job.results.set(0, Raw::Failed(Failure::Cancelled));
            }
            return true;
        }
        st.cancels.push((self.job, 0));
        drop(st);
        pool.poke();
        true
    }
}

/// Outcomes of [`Pool::imap`], in item order.
pub struct Imap<O: Outcome> {
    results: Arc<Results>,
    next: usize,
    n: usize,
    label: String,
    _outcome: PhantomData<fn() -> O>,
}

impl<O: Outcome> fmt::Debug for Imap<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Imap").field("next", &self.next).field("len", &self.n).finish()
    }
}

impl<O: Outcome> Imap<O> {
    /// The next outcome, waiting at most `timeout`: `None` if it is not ready then (or all
    /// were taken: see [`len`](ExactSizeIterator::len)).
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<TaskResult<O>> {
        if self.next >= self.n {
            return None;
        }
        let deadline = crate::process::after(timeout);
        let raw =
            self.results.take(u32::try_from(self.next).unwrap_or(u32::MAX), Some(deadline))?;
        self.next += 1;
        Some(results::decode::<O>(raw, &self.label))
    }
}

impl<O: Outcome> Iterator for Imap<O> {
    type Item = TaskResult<O>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.n {
            return None;
        }
        let raw = self.results.take(u32::try_from(self.next).unwrap_or(u32::MAX), None)?;
        self.next += 1;
        Some(results::decode::<O>(raw, &self.label))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.n - self.next;
        (left, Some(left))
    }
}

impl<O: Outcome> ExactSizeIterator for Imap<O> {}

/// Outcomes of [`Pool::imap_unordered`], as `(item index, outcome)` in finishing order.
pub struct ImapUnordered<O: Outcome> {
    results: Arc<Results>,
    left: usize,
    label: String,
    _outcome: PhantomData<fn() -> O>,
}

impl<O: Outcome> fmt::Debug for ImapUnordered<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImapUnordered").field("left", &self.left).finish()
    }
}

impl<O: Outcome> ImapUnordered<O> {
    /// The next outcome to finish, waiting at most `timeout`.
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<(usize, TaskResult<O>)> {
        if self.left == 0 {
            return None;
        }
        let deadline = crate::process::after(timeout);
        let (i, raw) = self.results.take_next(Some(deadline))?;
        self.left -= 1;
        Some((usize::try_from(i).unwrap_or(usize::MAX), results::decode::<O>(raw, &self.label)))
    }
}

impl<O: Outcome> Iterator for ImapUnordered<O> {
    type Item = (usize, TaskResult<O>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let (i, raw) = self.results.take_next(None)?;
        self.left -= 1;
        Some((usize::try_from(i).unwrap_or(usize::MAX), results::decode::<O>(raw, &self.label)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<O: Outcome> ExactSizeIterator for ImapUnordered<O> {}
