//! Starting children by each start method, and the low-level child handle (pid, pidfd, how
//! its exit status is learnt) that [`Process`](crate::Process) and the pool build on.
#![allow(unsafe_code)] // calling sys::fork

use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::{Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

use ipc_pipe::Connection;
use rustix::event::{PollFd, PollFlags};
use rustix::process::{Pid, PidfdFlags, Signal, WaitId, WaitIdOptions};

use crate::child::{self, ARG, ENV, Marker};
use crate::error::{Error, ExitStatus, Result};
use crate::sys;
use crate::wire::{self, Down, Job, Up};

/// How a process is started, by the names Python gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum StartMethod {
    /// Re-execute this program (`/proc/self/exe`) and run the function there: a fresh
    /// process that shares nothing with the parent but what is passed to it. Safe whatever
    /// threads the parent has. The program's `main` must call [`init`](crate::init) first.
    #[default]
    Spawn,
    /// Ask a small single-threaded server (itself a spawned child, started on first use or
    /// by [`start_fork_server`](crate::start_fork_server)) to fork a child: fork's speed,
    /// without forking a threaded parent.
    ForkServer,
    /// Fork this process: the child is a copy of the parent (closures work). Only safe while
    /// the process has one thread; see [`Process::fork`](crate::Process::fork).
    Fork,
}

impl StartMethod {
    pub(crate) fn name(self) -> &'static str {
        match self {
            StartMethod::Spawn => "spawn",
            StartMethod::ForkServer => "forkserver",
            StartMethod::Fork => "fork",
        }
    }
}

/// How the exit status of a child is learnt.
#[derive(Debug)]
enum Reaper {
    /// Our own child: `waitid(P_PIDFD)`.
    Own,
    /// A child of the fork server: the server reaps it and writes the status to this socket.
    Server(Box<Connection>),
}

/// A started child: its pid, a pidfd (good for a non-child too), and its exit status once
/// known.
#[derive(Debug)]
pub(crate) struct Child {
    pid: u32,
    pidfd: OwnedFd,
    reaper: Reaper,
    exit: Option<ExitStatus>,
}

impl Child {
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    pub(crate) fn pidfd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    /// The fd that becomes readable once the exit status can be had.
    pub(crate) fn exit_fd(&self) -> BorrowedFd<'_> {
        match &self.reaper {
            Reaper::Own => self.pidfd.as_fd(),
            Reaper::Server(c) => c.as_fd(),
        }
    }

    /// Whether the process still runs (its pidfd is not readable yet).
    /// Whether the fork server, not this process, reaps it.
    pub(crate) fn is_server_child(&self) -> bool {
        matches!(self.reaper, Reaper::Server(_))
    }

    pub(crate) fn is_alive(&self) -> bool {
        self.exit.is_none() && !readable(self.pidfd.as_fd(), Some(Duration::ZERO))
    }

    /// The exit status if it ended (reaping it), without waiting.
    pub(crate) fn try_reap(&mut self, object: &str) -> Result<Option<ExitStatus>> {
        if self.exit.is_some() {
            return Ok(self.exit);
        }
        match &mut self.reaper {
            Reaper::Own => {
                let opts = WaitIdOptions::EXITED | WaitIdOptions::NOHANG;
                match rustix::process::waitid(WaitId::PidFd(self.pidfd.as_fd()), opts) {
                    Ok(Some(st)) => self.exit = Some(ExitStatus::from_waitid(&st)),
                    Ok(None) => {}
                    Err(rustix::io::Errno::INTR) => {}
                    Err(e) => return Err(Error::io("reap", object, e.into())),
                }
            }
            Reaper::Server(conn) => match conn.try_recv() {
                Ok(Some(bytes)) => match postcard::from_bytes::<ExitStatus>(&bytes) {
                    Ok(st) => self.exit = Some(st),
                    Err(e) => return Err(Error::protocol("reap", object, e.to_string())),
                },
                Ok(None) => {}
                Err(e) if e.is_disconnected() => {
                    return Err(Error::ForkServerDied { op: "reap", object: object.to_owned() });
                }
                Err(e) => return Err(Error::pipe("reap", object, e)),
            },
        }
        Ok(self.exit)
    }

    /// Wait until it ended (at most until `deadline`), reaping it.
    pub(crate) fn wait(
        &mut self,
        deadline: Option<Instant>,
        object: &str,
    ) -> Result<Option<ExitStatus>> {
        loop {
            if let Some(st) = self.try_reap(object)? {
                return Ok(Some(st));
            }
            let left = match deadline {
                None => None,
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => return Ok(None),
                },
            };
            readable(self.exit_fd(), left);
        }
    }

    /// Send `sig` through the pidfd (never to a recycled pid). A process that already ended
    /// is not an error.
    pub(crate) fn signal(&self, sig: Signal, object: &str) -> Result<()> {
        if self.exit.is_some() {
            return Ok(());
        }
        match rustix::process::pidfd_send_signal(&self.pidfd, sig) {
            Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
            Err(e) => Err(Error::io("signal", object, e.into())),
        }
    }

    /// SIGKILL and reap, waiting at most `grace` for the kernel to finish it; past that (a
    /// process stuck in uninterruptible sleep) it is handed to the reaper thread, so it never
    /// stays a zombie and the caller never hangs.
    pub(crate) fn kill_and_reap(mut self, grace: Duration, object: &str) {
        let _ = self.signal(Signal::KILL, object);
        match self.wait(Some(Instant::now() + grace), object) {
            Ok(Some(_)) | Err(_) => {}
            Ok(None) => adopt(self),
        }
    }
}

/// Whether `fd` polls readable (or hung up) within `timeout` (`None`: no limit).
pub(crate) fn readable(fd: BorrowedFd<'_>, timeout: Option<Duration>) -> bool {
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    let ts = timeout.map(timespec);
    match rustix::event::poll(&mut fds, ts.as_ref()) {
        Ok(n) => n > 0,
        Err(_) => false,
    }
}

/// A poll timeout; saturates for huge durations.
pub(crate) fn timespec(d: Duration) -> rustix::time::Timespec {
    rustix::time::Timespec {
        tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(d.subsec_nanos()),
    }
}

/// A started child with its control connection.
#[derive(Debug)]
pub(crate) struct Launched {
    pub(crate) child: Child,
    pub(crate) conn: Connection,
    pub(crate) token: u64,
    /// Whether it must say hello (re-executed children: proof that `init` ran).
    pub(crate) needs_hello: bool,
}

fn random_token() -> u64 {
    let mut b = [0u8; 8];
    let _ = rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty());
    u64::from_ne_bytes(b) | 1
}

fn pidfd_of(pid: u32, object: &str) -> Result<OwnedFd> {
    let raw = i32::try_from(pid).ok().and_then(Pid::from_raw);
    let pid = raw.ok_or_else(|| Error::protocol("start", object, format!("bad pid {pid}")))?;
    rustix::process::pidfd_open(pid, PidfdFlags::empty())
        .map_err(|e| Error::io("open pidfd of", object, e.into()))
}

fn cstring(bytes: &[u8]) -> Option<CString> {
    CString::new(bytes).ok()
}

/// Spawn a re-executed child now, from this thread (which becomes its parent for
/// `PR_SET_PDEATHSIG`: the child is killed when this thread ends, unless detached).
pub(crate) fn spawn_here(detached: bool, object: &str) -> Result<Launched> {
    child::check_dispatched("start process (spawn)")?;
    let (mine, theirs) =
        ipc_pipe::pipe().map_err(|e| Error::pipe("create control connection for", object, e))?;
    let exe = child::exe_identity().map_err(|e| Error::io("stat", "/proc/self/exe", e))?;
    let token = random_token();
    let marker = Marker { parent: std::process::id(), exe, token, detached };
    let mut envp: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| k != ENV)
        .filter_map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            cstring(&kv)
        })
        .collect();
    envp.extend(cstring(format!("{ENV}={}", marker.encode()).as_bytes()));
    let argv0 = std::env::args_os().next().unwrap_or_else(|| "ipc-process-child".into());
    let argv: Vec<CString> =
        [cstring(argv0.as_bytes()), cstring(ARG.as_bytes())].into_iter().flatten().collect();
    let pid = sys::spawn_self(theirs.as_fd(), &argv, &envp)
        .map_err(|e| Error::io("posix_spawn /proc/self/exe for", object, e))?;
    drop(theirs);
    own_child(pid, mine, token, true, object)
}

/// The handle of a child of ours that was just started as `pid`.
fn own_child(
    pid: libc::pid_t,
    conn: Connection,
    token: u64,
    needs_hello: bool,
    object: &str,
) -> Result<Launched> {
    let pid = pid.unsigned_abs();
    let pidfd = pidfd_of(pid, object)?;
    Ok(Launched {
        child: Child { pid, pidfd, reaper: Reaper::Own, exit: None },
        conn,
        token,
        needs_hello,
    })
}

/// Whether the calling thread is the process's main thread (which lives as long as the
/// process, so children it starts may die with it).
fn on_main_thread() -> bool {
    rustix::thread::gettid() == rustix::process::getpid()
}

enum Request {
    Spawn { detached: bool, object: String, reply: mpsc::SyncSender<Result<Launched>> },
    Adopt(Box<Child>),
}

/// The launcher thread: spawns children on behalf of other threads (so a child started from
/// a short-lived thread does not die when that thread ends: `PR_SET_PDEATHSIG` follows the
/// thread that forked), and reaps children whose handles were dropped while they still ran.
fn launcher() -> mpsc::Sender<Request> {
    // The owner pid: a forked child inherits this slot but not the thread behind it, so it
    // starts its own.
    static LAUNCHER: Mutex<Option<(u32, mpsc::Sender<Request>)>> = Mutex::new(None);
    let me = std::process::id();
    let mut slot = LAUNCHER.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((pid, tx)) = slot.as_ref()
        && *pid == me
    {
        return tx.clone();
    }
    let (tx, rx) = mpsc::channel::<Request>();
    let started =
        std::thread::Builder::new().name("ipc-process launcher".into()).spawn(move || {
            let mut orphans: Vec<Child> = Vec::new();
            loop {
                let req = if orphans.is_empty() {
                    match rx.recv() {
                        Ok(r) => Some(r),
                        Err(_) => return,
                    }
                } else {
                    // Reaping is garbage collection: a slow poll is fine.
                    match rx.recv_timeout(Duration::from_millis(100)) {
                        Ok(r) => Some(r),
                        Err(mpsc::RecvTimeoutError::Timeout) => None,
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                };
                match req {
                    Some(Request::Spawn { detached, object, reply }) => {
                        let _ = reply.send(spawn_here(detached, &object));
                    }
                    Some(Request::Adopt(c)) => orphans.push(*c),
                    None => {}
                }
                orphans.retain_mut(|c| matches!(c.try_reap("orphan"), Ok(None)));
            }
        });
    // Without the thread, requests fail at once (their reply channel is dropped).
    if started.is_ok() {
        *slot = Some((me, tx.clone()));
    }
    tx
}

fn adopt(child: Child) {
    if matches!(child.reaper, Reaper::Server(_)) {
        return; // the fork server reaps its own children
    }
    let _ = launcher().send(Request::Adopt(Box::new(child)));
}

/// Hand a child whose handle goes away while it runs to the reaper (detached children).
pub(crate) fn orphan(child: Child) {
    adopt(child);
}

/// Spawn a re-executed child; from a thread other than the main one, the launcher thread
/// does it (unless detached: nothing ties a detached child to a thread).
pub(crate) fn spawn(detached: bool, object: &str) -> Result<Launched> {
    if detached || on_main_thread() {
        return spawn_here(detached, object);
    }
    child::check_dispatched("start process (spawn)")?;
    let (reply, rx) = mpsc::sync_channel(1);
    let tx = launcher();
    let lost = || Error::io("start", object, std::io::Error::other("the launcher thread is gone"));
    tx.send(Request::Spawn { detached, object: object.to_owned(), reply }).map_err(|_| lost())?;
    rx.recv().map_err(|_| lost())?
}

/// Send the start message (with `fds`) and then the payload, within `timeout` for the
/// payload (a child that never reads it, because it never reached `init`, cannot block us).
pub(crate) fn send_start(
    l: &mut Launched,
    job: Job,
    payload: &[u8],
    fds: &[BorrowedFd<'_>],
    timeout: Duration,
    object: &str,
) -> Result<()> {
    send_start_on(&mut l.conn, l.token, job, payload, fds, timeout, object)
}

fn send_start_on(
    conn: &mut Connection,
    token: u64,
    job: Job,
    payload: &[u8],
    fds: &[BorrowedFd<'_>],
    timeout: Duration,
    object: &str,
) -> Result<()> {
    let mut header = Vec::new();
    wire::encode_header(&Down::Start { token, job }, &mut header)
        .map_err(|e| Error::codec("encode start message for", object, e))?;
    // A child that is already gone (it never reached `init`, or was killed) is not an error
    // here: its handle reports how it ended, which says more.
    let gone = |e: &ipc_pipe::Error| e.is_disconnected();
    match conn.send_fds(&header, fds) {
        Err(e) if gone(&e) => return Ok(()),
        Err(e) => return Err(Error::pipe("send start message to", object, e)),
        Ok(()) => {}
    }
    match conn.send_timeout(payload, timeout) {
        Err(e) if gone(&e) => Ok(()),
        r => r.map_err(|e| Error::pipe("send arguments to", object, e)),
    }
}

/// What a child is started for, its arguments and the fds among them.
#[derive(Debug)]
pub(crate) struct Start<'a> {
    pub(crate) job: Job,
    pub(crate) payload: &'a [u8],
    pub(crate) fds: &'a [BorrowedFd<'a>],
    pub(crate) timeout: Duration,
}

/// Arguments up to this size are written to a fork-server child's connection before the
/// fork request, so the child finds them at once (the socket holds them; larger ones could
/// fill it before anyone reads, so they follow the fork).
const PRESEND: usize = 32 * 1024;

// ---- fork server client ----------------------------------------------------------------

#[derive(Debug)]
struct Server {
    launched: Launched,
    /// The process that started it: a forked child inherits the slot, and must neither use
    /// nor stop its parent's server.
    owner: u32,
}

/// The fork server slot, emptied first if the server in it was inherited over a fork
/// (dropping our copies of its fds leaves the parent's server alone).
fn server_slot() -> std::sync::MutexGuard<'static, Option<Server>> {
    static SERVER: Mutex<Option<Server>> = Mutex::new(None);
    let mut slot = SERVER.lock().unwrap_or_else(PoisonError::into_inner);
    if slot.as_ref().is_some_and(|s| s.owner != std::process::id()) {
        *slot = None;
    }
    slot
}

const SERVER_OBJECT: &str = "fork server";

fn start_server(timeout: Duration) -> Result<Server> {
    let mut l = spawn(false, SERVER_OBJECT)?;
    send_start(&mut l, Job::ForkServer, &[], &[], timeout, SERVER_OBJECT)?;
    // Wait for its hello, so a server that cannot start is an error here.
    match l.conn.recv_timeout(timeout) {
        Ok(msg) => match wire::decode::<Up>(&msg) {
            Ok((Up::Hello { .. }, _)) => Ok(Server { launched: l, owner: std::process::id() }),
            Ok((Up::Refused { reason }, _)) => {
                Err(Error::protocol("start", SERVER_OBJECT, format!("refused: {reason:?}")))
            }
            _ => Err(Error::protocol("start", SERVER_OBJECT, "unexpected first message")),
        },
        Err(e) => {
            let exit = {
                let _ = l.child.signal(Signal::KILL, SERVER_OBJECT);
                l.child
                    .wait(Some(Instant::now() + Duration::from_secs(5)), SERVER_OBJECT)
                    .ok()
                    .flatten()
            };
            Err(match exit {
                Some(exit) if e.is_disconnected() => {
                    Error::NotDispatched { object: SERVER_OBJECT.to_owned(), exit }
                }
                _ if e.is_timeout() => {
                    Error::StartupTimeout { object: SERVER_OBJECT.to_owned(), after: timeout }
                }
                _ => Error::pipe("start", SERVER_OBJECT, e),
            })
        }
    }
}

/// Start the fork server now (it is otherwise started by the first
/// [`StartMethod::ForkServer`] start), so that first start does not pay for it. Idempotent.
///
/// # Errors
/// As a [`StartMethod::Spawn`] start: the server is a spawned child.
pub fn start_fork_server() -> Result<()> {
    let mut slot = server_slot();
    if slot.is_none() {
        *slot = Some(start_server(Duration::from_secs(30))?);
    }
    Ok(())
}

/// The pid of the running fork server, if one runs.
pub fn fork_server_pid() -> Option<u32> {
    let slot = server_slot();
    slot.as_ref().map(|s| s.launched.child.pid())
}

/// Have the fork server fork a child for us.
pub(crate) fn via_server(
    detached: bool,
    startup: Duration,
    object: &str,
    start: Start<'_>,
) -> Result<Launched> {
    child::check_dispatched("start process (forkserver)")?;
    let mut slot = server_slot();
    if slot.is_none() {
        *slot = Some(start_server(startup)?);
    }
    let Some(server) = slot.as_mut() else { unreachable_server() };
    match request_fork(server, detached, object, start) {
        Ok(l) => Ok(l),
        Err(e) => {
            // A broken server is replaced by the next start.
            if let Some(s) = slot.take() {
                s.launched.child.kill_and_reap(Duration::from_secs(1), SERVER_OBJECT);
            }
            Err(e)
        }
    }
}

fn unreachable_server() -> ! {
    // `slot` was filled just above.
    unreachable!("fork server slot empty after start")
}

fn request_fork(
    server: &mut Server,
    detached: bool,
    object: &str,
    start: Start<'_>,
) -> Result<Launched> {
    let died = || Error::ForkServerDied { op: "start", object: object.to_owned() };
    let (mut mine, theirs) =
        ipc_pipe::pipe().map_err(|e| Error::pipe("create control connection for", object, e))?;
    let (status_mine, status_theirs) =
        ipc_pipe::pipe().map_err(|e| Error::pipe("create status connection for", object, e))?;
    let token = random_token();
    let Start { job, payload, fds: start_fds, timeout } = start;
    let mut job = Some(job);
    if payload.len() <= PRESEND
        && let Some(job) = job.take()
    {
        send_start_on(&mut mine, token, job, payload, start_fds, timeout, object)?;
    }
    let mut header = Vec::new();
    wire::encode_header(&Down::Fork { token, detached }, &mut header)
        .map_err(|e| Error::codec("encode fork request for", object, e))?;
    let conn = &mut server.launched.conn;
    conn.send_fds(&header, &[theirs.as_fd(), status_theirs.as_fd()]).map_err(|_| died())?;
    drop(theirs);
    drop(status_theirs);
    loop {
        let (msg, mut fds) = conn.recv_fds_timeout(Duration::from_secs(30)).map_err(|_| died())?;
        match wire::decode::<Up>(&msg) {
            Ok((Up::Forked { pid }, _)) if fds.len() == 1 => {
                let pidfd = fds.remove(0);
                let child =
                    Child { pid, pidfd, reaper: Reaper::Server(Box::new(status_mine)), exit: None };
                let mut l = Launched { child, conn: mine, token, needs_hello: true };
                if let Some(job) = job.take() {
                    send_start(&mut l, job, payload, start_fds, timeout, object)?;
                }
                return Ok(l);
            }
            Ok((Up::Hello { .. }, _)) => continue,
            _ => return Err(died()),
        }
    }
}

// ---- fork ------------------------------------------------------------------------------

/// Fork a pool worker: the child runs the control loop on its end of a fresh connection.
///
/// # Safety
/// As [`sys::fork`]: the child only runs the worker loop, and the caller promises the tasks
/// and initializer it runs take no lock another thread of this process may hold.
pub(crate) unsafe fn fork_worker(object: &str) -> Result<Launched> {
    let (mine, theirs) =
        ipc_pipe::pipe().map_err(|e| Error::pipe("create control connection for", object, e))?;
    let token = random_token();
    crate::call::ensure_panic_hook();
    let parent = std::process::id();
    // SAFETY: the child below only closes our end, sets its death signal and runs the
    // worker loop, leaving with `_exit`; the caller vouches for the tasks (this fn's
    // contract).
    match unsafe { sys::fork() }.map_err(|e| Error::io("fork", object, e))? {
        sys::Forked::Child => {
            drop(mine);
            child::die_with_parent(parent);
            child::child_main(theirs, token)
        }
        sys::Forked::Parent(pid) => {
            drop(theirs);
            own_child(pid, mine, token, true, object)
        }
    }
}

/// Fork a child that runs `f` (already wrapped to produce its encoded reply) and sends it.
///
/// # Safety
/// As [`sys::fork`].
pub(crate) unsafe fn fork_with(
    f: impl FnOnce() -> Vec<u8>,
    detached: bool,
    object: &str,
) -> Result<Launched> {
    let (mine, mut theirs) =
        ipc_pipe::pipe().map_err(|e| Error::pipe("create control connection for", object, e))?;
    crate::call::ensure_panic_hook();
    {
        use std::io::Write;
        // Flush before forking, so the child's copy of a half-written buffer is not written
        // twice.
        let _ = std::io::stdout().flush();
    }
    let parent = std::process::id();
    // SAFETY: the caller upholds fork's contract; the child runs `f`, sends its reply and
    // leaves with `_exit`.
    match unsafe { sys::fork() }.map_err(|e| Error::io("fork", object, e))? {
        sys::Forked::Child => {
            drop(mine);
            if !detached {
                child::die_with_parent(parent);
            }
            let reply = f();
            let code = if child::send_up(&mut theirs, &Up::Done, &reply).is_ok() {
                0
            } else {
                child::EXIT_ORPHAN
            };
            child::leave(code)
        }
        sys::Forked::Parent(pid) => {
            drop(theirs);
            own_child(pid, mine, 0, false, object)
        }
    }
}
