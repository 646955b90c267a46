//! [`Process`]: one function run in a child process, with its typed outcome.

use std::fmt;
use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};
use rustix::process::Signal;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::call;
use crate::error::{Error, ExitStatus, Result, TaskError};
use crate::launch::{self, Launched, StartMethod};
use crate::outcome::{Outcome, Reply};
use crate::pool::TaskResult;
use crate::transfer;
use crate::wire::{self, Job, Refusal, Up};

/// How long a re-executed child may take to reach [`init`](crate::init) and say so.
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// A child process running one function, like Python's `multiprocessing.Process`, that
/// also brings back what the function returned.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # ipc_process::init();
/// use ipc_process::{Process, TaskError};
///
/// fn parse(text: String) -> Result<u32, String> {
///     text.trim().parse().map_err(|e| format!("{text:?}: {e}"))
/// }
///
/// let mut ok = Process::spawn(parse, " 42 ".to_owned())?;
/// let mut bad = Process::spawn(parse, "forty-two".to_owned())?;
/// assert_eq!(ok.join()?, 42);
/// assert!(matches!(bad.join(), Err(TaskError::Failed(e)) if e.contains("invalid digit")));
/// # Ok(()) }
/// ```
///
/// # Lifetime and dropping
/// Unless [detached](ProcessBuilder::detached), the child dies with its parent: it sets
/// `PR_SET_PDEATHSIG(SIGKILL)` and then checks its parent is still the one that started it
/// (closing the race where the parent died first). The kernel ties that signal to the
/// *thread* that started the child, so children started from a thread other than the main
/// one are started by a long-lived launcher thread of this crate.
///
/// Dropping a `Process` that was not joined kills it (SIGKILL) and reaps it, so it never
/// stays a zombie; a detached one is left running and reaped in the background when it
/// ends. Either way its fds are closed.
pub struct Process<O: Outcome> {
    child: Option<launch::Child>,
    conn: Option<ipc_pipe::Connection>,
    label: String,
    needs_hello: bool,
    hello: bool,
    reply: Option<Vec<u8>>,
    refused: Option<Refusal>,
    startup_deadline: Option<Instant>,
    startup_timeout: Duration,
    detached: bool,
    joined: bool,
    _outcome: PhantomData<fn() -> O>,
}

impl<O: Outcome> fmt::Debug for Process<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Process")
            .field("label", &self.label)
            .field("pid", &self.child.as_ref().map(launch::Child::pid))
            .field("joined", &self.joined)
            .finish_non_exhaustive()
    }
}

/// Options for starting a [`Process`]: start method, detachment, startup timeout.
#[derive(Debug, Clone)]
pub struct ProcessBuilder {
    method: StartMethod,
    detached: bool,
    startup_timeout: Duration,
    name: Option<String>,
}

impl Default for ProcessBuilder {
    fn default() -> Self {
        ProcessBuilder {
            method: StartMethod::Spawn,
            detached: false,
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
            name: None,
        }
    }
}

impl ProcessBuilder {
    /// The start method (default [`StartMethod::Spawn`]). [`StartMethod::Fork`] checks that
    /// the process is single-threaded and fails with [`Error::MultiThreaded`] otherwise.
    pub fn method(mut self, method: StartMethod) -> Self {
        self.method = method;
        self
    }

    /// Whether the child outlives its parent (default `false`: it dies with it, and a
    /// dropped handle kills it).
    pub fn detached(mut self, detached: bool) -> Self {
        self.detached = detached;
        self
    }

    /// How long a re-executed child may take to reach [`init`](crate::init) (default 30 s);
    /// past that it is killed and `join` reports [`Error::StartupTimeout`].
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// A name for error messages (default `process <pid>`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Start `f(arg)` in a child. `arg` is encoded with serde (postcard); objects inside a
    /// [`Handle`](crate::Handle) cross by fd or by name.
    ///
    /// # Errors
    /// [`Error::Codec`] (the arguments do not encode), [`Error::NotInExecutable`],
    /// [`Error::MultiThreaded`] (fork with threads), [`Error::InitNotCalled`], OS errors
    /// starting the child, [`Error::ForkServerDied`].
    pub fn start<A, O>(&self, f: fn(A) -> O, arg: A) -> Result<Process<O>>
    where
        A: Serialize + DeserializeOwned,
        O: Outcome,
    {
        let object =
            self.name.clone().unwrap_or_else(|| format!("process ({})", self.method.name()));
        if self.method == StartMethod::Fork {
            let count = crate::child::thread_count().unwrap_or(usize::MAX);
            if count != 1 {
                return Err(Error::MultiThreaded { op: "fork", threads: count });
            }
            // SAFETY: the process is single-threaded (counted just now; only this thread
            // could start another before the fork).
            #[allow(unsafe_code)]
            let launched = unsafe {
                launch::fork_with(move || run_closure(move || f(arg)), self.detached, &object)?
            };
            return Ok(self.wrap(launched, object));
        }
        let call = call::once(f, &object)?;
        let mut payload = Vec::new();
        let fds = transfer::encode_with_fds(&arg, &mut payload)
            .map_err(|e| Error::codec("encode arguments of", &object, e))?;
        let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
        let job = Job::Once { call };
        let launched = match self.method {
            StartMethod::ForkServer => {
                let start = launch::Start {
                    job,
                    payload: &payload,
                    fds: &borrowed,
                    timeout: self.startup_timeout,
                };
                launch::via_server(self.detached, self.startup_timeout, &object, start)?
            }
            _ => {
                let mut l = launch::spawn(self.detached, &object)?;
                launch::send_start(
                    &mut l,
                    job,
                    &payload,
                    &borrowed,
                    self.startup_timeout,
                    &object,
                )?;
                l
            }
        };
        Ok(self.wrap(launched, object))
    }

    /// Fork a child that runs the closure `f` (captures are copied with the process: no
    /// encoding, any closure). Only while the process is single-threaded.
    ///
    /// # Errors
    /// [`Error::MultiThreaded`] if the process has other threads; OS errors.
    pub fn fork<O: Outcome>(&self, f: impl FnOnce() -> O) -> Result<Process<O>> {
        let count = crate::child::thread_count().unwrap_or(usize::MAX);
        if count != 1 {
            return Err(Error::MultiThreaded { op: "fork", threads: count });
        }
        // SAFETY: single-threaded, checked just now.
        #[allow(unsafe_code)]
        unsafe {
            self.fork_unchecked(f)
        }
    }

    /// [`fork`](Self::fork) without the single-thread check.
    ///
    /// # Safety
    /// In the child only this thread exists. The closure must not take any lock (including
    /// the allocator's in a non-glibc malloc, stdout's, a `Mutex` of yours) that another
    /// thread may hold at the moment of the fork, and must not rely on other threads. glibc's
    /// malloc is fork-safe; printing is not (stdout's lock).
    ///
    /// # Errors
    /// OS errors.
    #[allow(unsafe_code)]
    pub unsafe fn fork_unchecked<O: Outcome>(&self, f: impl FnOnce() -> O) -> Result<Process<O>> {
        let object = self.name.clone().unwrap_or_else(|| "process (fork)".to_owned());
        // SAFETY: the caller upholds fork's contract (this fn's).
        let launched =
            unsafe { launch::fork_with(move || run_closure(f), self.detached, &object)? };
        Ok(self.wrap(launched, object))
    }

    fn wrap<O: Outcome>(&self, l: Launched, label: String) -> Process<O> {
        let Launched { child, conn, needs_hello, .. } = l;
        let label = if self.name.is_some() { label } else { format!("{label} {}", child.pid()) };
        Process {
            child: Some(child),
            conn: Some(conn),
            label,
            needs_hello,
            hello: false,
            reply: None,
            refused: None,
            startup_deadline: needs_hello.then(|| after(self.startup_timeout)),
            startup_timeout: self.startup_timeout,
            detached: self.detached,
            joined: false,
            _outcome: PhantomData,
        }
    }
}

fn run_closure<O: Outcome>(f: impl FnOnce() -> O) -> Vec<u8> {
    let reply = match call::catch(|| f().into_result()) {
        Ok(Ok(v)) => Reply::Ok(v),
        Ok(Err(e)) => Reply::Err(e),
        Err(p) => Reply::Panic(p),
    };
    let mut out = Vec::new();
    call::encode_reply(&reply, &mut out);
    out
}

impl Process<()> {
    /// Options for a process.
    pub fn builder() -> ProcessBuilder {
        ProcessBuilder::default()
    }

    /// Start `f(arg)` in a re-executed child ([`StartMethod::Spawn`]).
    ///
    /// # Errors
    /// As [`ProcessBuilder::start`].
    pub fn spawn<A, O>(f: fn(A) -> O, arg: A) -> Result<Process<O>>
    where
        A: Serialize + DeserializeOwned,
        O: Outcome,
    {
        ProcessBuilder::default().start(f, arg)
    }

    /// Start `f(arg)` with `method`.
    ///
    /// # Errors
    /// As [`ProcessBuilder::start`].
    pub fn start<A, O>(method: StartMethod, f: fn(A) -> O, arg: A) -> Result<Process<O>>
    where
        A: Serialize + DeserializeOwned,
        O: Outcome,
    {
        ProcessBuilder::default().method(method).start(f, arg)
    }

    /// Fork a child running the closure `f`; only while the process is single-threaded.
    ///
    /// # Errors
    /// [`Error::MultiThreaded`], OS errors.
    pub fn fork<O: Outcome>(f: impl FnOnce() -> O) -> Result<Process<O>> {
        ProcessBuilder::default().fork(f)
    }
}

impl<O: Outcome> Process<O> {
    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, launch::Child::pid)
    }

    /// A pidfd of the child: readable once it has ended. Usable in `poll`/`epoll` with other
    /// fds (Python's `Process.sentinel`); works for fork-server children too, which are not
    /// our children.
    ///
    /// # Panics
    /// Never: a `Process` holds its pidfd until dropped.
    pub fn sentinel(&self) -> BorrowedFd<'_> {
        match &self.child {
            Some(c) => c.pidfd(),
            None => unreachable!("a Process holds its child until dropped"),
        }
    }

    /// Whether the child still runs.
    pub fn is_alive(&self) -> bool {
        self.child.as_ref().is_some_and(launch::Child::is_alive)
    }

    /// How the child ended, if it has (reaping it if needed); `None` while it runs.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        let label = self.label.clone();
        self.child.as_mut().and_then(|c| c.try_reap(&label).ok().flatten())
    }

    /// Ask the child to stop (SIGTERM).
    ///
    /// # Errors
    /// OS errors other than "already gone".
    pub fn terminate(&self) -> Result<()> {
        self.child.as_ref().map_or(Ok(()), |c| c.signal(Signal::TERM, &self.label))
    }

    /// Kill the child (SIGKILL).
    ///
    /// # Errors
    /// OS errors other than "already gone".
    pub fn kill(&self) -> Result<()> {
        self.child.as_ref().map_or(Ok(()), |c| c.signal(Signal::KILL, &self.label))
    }

    /// Send any signal.
    ///
    /// # Errors
    /// OS errors other than "already gone"; [`Error::InvalidArgument`] for an unknown signal.
    pub fn signal(&self, signal: i32) -> Result<()> {
        let sig = Signal::from_named_raw(signal).ok_or_else(|| Error::InvalidArgument {
            op: "signal",
            what: format!("unknown signal {signal}"),
        })?;
        self.child.as_ref().map_or(Ok(()), |c| c.signal(sig, &self.label))
    }

    /// Wait for the child to end and return what its function returned.
    ///
    /// # Errors
    /// [`TaskError::Failed`] (it returned `Err`), [`TaskError::Panicked`],
    /// [`TaskError::WorkerDied`] (it died, or exited, before reporting),
    /// [`TaskError::Lost`] (it never started its task: [`Error::NotDispatched`],
    /// [`Error::StartupTimeout`], [`Error::BinaryMismatch`]; a second join:
    /// [`Error::AlreadyJoined`]).
    pub fn join(&mut self) -> TaskResult<O> {
        match self.join_until(None) {
            Some(r) => r,
            None => Err(TaskError::Lost(Error::AlreadyJoined { object: self.label.clone() })),
        }
    }

    /// [`join`](Self::join), waiting at most `timeout`: `None` if the child still runs then
    /// (it is left running; join again later).
    pub fn join_timeout(&mut self, timeout: Duration) -> Option<TaskResult<O>> {
        self.join_until(Some(after(timeout)))
    }

    /// [`join`](Self::join) if the child has ended, else `None` at once.
    pub fn try_join(&mut self) -> Option<TaskResult<O>> {
        self.join_until(Some(Instant::now()))
    }

    fn join_until(&mut self, deadline: Option<Instant>) -> Option<TaskResult<O>> {
        if self.joined {
            return Some(Err(TaskError::Lost(Error::AlreadyJoined { object: self.label.clone() })));
        }
        loop {
            if let Err(e) = self.pump() {
                return Some(self.finish(Err(e)));
            }
            let done = self.reply.is_some() || self.refused.is_some() || self.conn.is_none();
            if self.reply.is_some() {
                // The outcome is in and the child exits right after sending it: wait for that
                // end (briefly spinning first, which saves a sleep and a wake-up), reaping our
                // own child; a fork-server child is the server's to reap, and its status is
                // not needed for an outcome that arrived.
                let label = self.label.clone();
                let child = self.child.as_mut()?;
                for _ in 0..EXIT_SPINS {
                    if !child.is_alive() {
                        break;
                    }
                    std::thread::yield_now();
                }
                let ended = if child.is_server_child() {
                    !child.is_alive() || launch::readable(child.pidfd(), left(deadline)?)
                } else {
                    matches!(child.wait(deadline, &label), Ok(Some(_)) | Err(_))
                };
                if !ended {
                    return None;
                }
                return Some(self.finish(Ok(ExitStatus::Code(0))));
            }
            let exit = match self.child.as_mut().map(|c| c.try_reap(&self.label)) {
                Some(Ok(e)) => e,
                Some(Err(e)) => return Some(self.finish(Err(e))),
                None => None,
            };
            if let Some(exit) = exit {
                // Read what it sent before it ended.
                let _ = self.pump();
                return Some(self.finish(Ok(exit)));
            }
            let now = Instant::now();
            if !self.hello
                && self.needs_hello
                && let Some(sd) = self.startup_deadline
                && now >= sd
            {
                if let Some(c) = self.child.take() {
                    c.kill_and_reap(Duration::from_secs(5), &self.label);
                }
                let after = self.startup_timeout;
                return Some(
                    self.finish(Err(Error::StartupTimeout { object: self.label.clone(), after })),
                );
            }
            if deadline.is_some_and(|d| now >= d) {
                return None;
            }
            let mut until = deadline;
            if !self.hello && self.needs_hello {
                until = match (until, self.startup_deadline) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            self.wait_event(until, done);
        }
    }

    /// Poll the control connection (unless everything expected has arrived) and the exit fd.
    fn wait_event(&self, until: Option<Instant>, done: bool) {
        let Some(child) = self.child.as_ref() else { return };
        let mut fds = vec![PollFd::from_borrowed_fd(child.exit_fd(), PollFlags::IN)];
        if let Some(c) = self.conn.as_ref().filter(|_| !done) {
            fds.push(PollFd::new(c, PollFlags::IN));
        }
        let ts = until.map(|u| launch::timespec(u.saturating_duration_since(Instant::now())));
        let _ = rustix::event::poll(&mut fds, ts.as_ref());
    }

    /// Read every message the child has sent so far.
    fn pump(&mut self) -> Result<()> {
        while let Some(conn) = self.conn.as_mut() {
            if self.reply.is_some() || self.refused.is_some() {
                return Ok(());
            }
            match conn.try_recv() {
                Ok(Some(msg)) => match wire::decode::<Up>(&msg) {
                    Ok((Up::Hello { .. }, _)) => self.hello = true,
                    Ok((Up::Done, payload)) => self.reply = Some(payload.to_vec()),
                    Ok((Up::Refused { reason }, _)) => self.refused = Some(reason),
                    Ok((other, _)) => {
                        return Err(Error::protocol(
                            "join",
                            &self.label,
                            format!("unexpected {other:?}"),
                        ));
                    }
                    Err(e) => return Err(Error::protocol("join", &self.label, e.to_string())),
                },
                Ok(None) => return Ok(()),
                Err(e) if e.is_disconnected() => self.conn = None,
                Err(e) => return Err(Error::pipe("join", &self.label, e)),
            }
        }
        Ok(())
    }

    fn finish(&mut self, exit: Result<ExitStatus>) -> TaskResult<O> {
        self.joined = true;
        self.conn = None;
        if let Some(reply) = self.reply.take() {
            return match postcard::from_bytes::<Reply<O::Value, O::Error>>(&reply) {
                Ok(Reply::Ok(v)) => Ok(v),
                Ok(Reply::Err(e)) => Err(TaskError::Failed(e)),
                Ok(Reply::Panic(p)) => Err(TaskError::Panicked(p)),
                Ok(Reply::Lost(why)) => Err(TaskError::Lost(Error::codec("run", &self.label, why))),
                Err(e) => Err(TaskError::Lost(Error::codec("decode result of", &self.label, e))),
            };
        }
        if let Some(reason) = self.refused.take() {
            let object = self.label.clone();
            return Err(TaskError::Lost(match reason {
                Refusal::Binary { expected, found } => {
                    Error::BinaryMismatch { object, expected, found }
                }
                other => Error::protocol("start", object, format!("the child refused: {other:?}")),
            }));
        }
        match exit {
            Ok(exit) if self.needs_hello && !self.hello => {
                Err(TaskError::Lost(Error::NotDispatched { object: self.label.clone(), exit }))
            }
            Ok(exit) => Err(TaskError::WorkerDied { exit }),
            Err(e) => Err(TaskError::Lost(e)),
        }
    }
}

/// Looks at a child that just sent its outcome before sleeping until it exits.
const EXIT_SPINS: u32 = 64;

/// Time left until `deadline`: `Some(None)` for no deadline, `None` once it passed.
fn left(deadline: Option<Instant>) -> Option<Option<Duration>> {
    match deadline {
        None => Some(None),
        Some(d) => d.checked_duration_since(Instant::now()).map(Some),
    }
}

/// "Never" as a finite instant (a century ahead): the supervisor's poll loop computes a
/// timeout from the earliest of many instants, so it wants a real `Instant` where
/// [`ipc_shm::Deadline`] says `NEVER`.
pub(crate) fn far_future() -> Instant {
    let now = Instant::now();
    now.checked_add(Duration::from_secs(100 * 365 * 24 * 3600)).unwrap_or(now)
}

/// `now + d`, saturating (ipc-shm's [`Deadline::after`](ipc_shm::Deadline::after)): a huge
/// timeout means "a century", never a panic.
pub(crate) fn after(d: Duration) -> Instant {
    ipc_shm::Deadline::after(d).instant().unwrap_or_else(far_future)
}

impl<O: Outcome> Drop for Process<O> {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        self.conn = None;
        if matches!(child.try_reap(&self.label), Ok(Some(_))) {
            return;
        }
        if self.detached {
            launch::orphan(child);
        } else {
            child.kill_and_reap(Duration::from_secs(1), &self.label);
        }
    }
}
