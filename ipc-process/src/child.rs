//! The child's side: [`init`] (which turns a re-executed process into the child it was
//! started as), the control loop of a one-shot child, of a pool worker and the hand-off to
//! the fork server.
#![allow(unsafe_code)] // taking fd 3, resolving the trampolines our parent named

use std::io::Write;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};

use ipc_pipe::Connection;

use crate::call::{self, ChunkEnd, ItemSink, RunInit, RunItems, RunOnce};
use crate::error::Error;
use crate::progress::Progress;
use crate::sys;
use crate::wire::{self, Down, Job, Refusal, Up};

/// The environment variable that tells a re-executed process what it is.
pub(crate) const ENV: &str = "IPC_PROCESS_CHILD";
/// The argument a spawned child gets (a test harness that never reaches `init` rejects it
/// instead of running its tests again).
pub(crate) const ARG: &str = "--ipc-process-child";

/// Exit code of a child whose set-up failed (bad marker, no control fd, refused).
pub const EXIT_SETUP: i32 = 70;
/// Exit code of a child whose parent died before it could take its task.
pub const EXIT_ORPHAN: i32 = 71;

static INIT_CALLED: AtomicBool = AtomicBool::new(false);

/// What the parent put in the child's environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Marker {
    pub(crate) parent: u32,
    pub(crate) exe: (u64, u64),
    pub(crate) token: u64,
    pub(crate) detached: bool,
}

impl Marker {
    pub(crate) fn encode(&self) -> String {
        format!(
            "v{};parent={};exe={}:{};token={:016x};detached={}",
            wire::VERSION,
            self.parent,
            self.exe.0,
            self.exe.1,
            self.token,
            u8::from(self.detached)
        )
    }

    pub(crate) fn decode(s: &str) -> Option<Marker> {
        let mut parts = s.split(';');
        if parts.next()? != format!("v{}", wire::VERSION) {
            return None;
        }
        let mut field = |key: &str| parts.next()?.strip_prefix(key)?.strip_prefix('=');
        let parent = field("parent")?.parse().ok()?;
        let (dev, ino) = field("exe")?.split_once(':')?;
        let exe = (dev.parse().ok()?, ino.parse().ok()?);
        let token = u64::from_str_radix(field("token")?, 16).ok()?;
        let detached = match field("detached")? {
            "0" => false,
            "1" => true,
            _ => return None,
        };
        Some(Marker { parent, exe, token, detached })
    }
}

/// Device and inode of the file this process runs.
pub(crate) fn exe_identity() -> std::io::Result<(u64, u64)> {
    let st = rustix::fs::stat("/proc/self/exe")?;
    Ok((st.st_dev, st.st_ino))
}

/// Threads of this process (entries of /proc/self/task).
pub(crate) fn thread_count() -> std::io::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/task")?.count())
}

/// Refuse to start processes from a child that was started by ipc-process but whose `main`
/// did not call [`init`] first: it would start its own children the same way (a fork bomb
/// for a program whose `main` starts processes).
pub(crate) fn check_dispatched(op: &'static str) -> Result<(), Error> {
    // Relaxed: a flag set once by `init` on the main thread before any start; it orders
    // nothing else.
    if !INIT_CALLED.load(Ordering::Relaxed) && std::env::var_os(ENV).is_some() {
        return Err(Error::InitNotCalled { op });
    }
    Ok(())
}

/// Call first thing in `main` (before anything else runs, threads especially): in a process
/// started by ipc-process's `Spawn` (or the fork server) this runs what the process was
/// started for and exits, never returning; in any other process it returns at once.
///
/// ```
/// fn main() {
///     ipc_process::init();
///     // ... the program, which may start processes
/// }
/// ```
///
/// In a test binary (no `main` of yours) use [`auto_init!`](crate::auto_init) instead. A
/// child that does not reach `init` is reported to its parent as
/// [`Error::NotDispatched`](crate::Error::NotDispatched) (or
/// [`Error::StartupTimeout`](crate::Error::StartupTimeout)), and it refuses to start
/// processes of its own.
#[allow(clippy::needless_doctest_main)] // the point is where in main it goes
pub fn init() {
    // Relaxed: see `check_dispatched`.
    INIT_CALLED.store(true, Ordering::Relaxed);
    let Some(raw) = std::env::var_os(ENV) else { return };
    run_as_child(&raw.to_string_lossy())
}

/// Call [`init`] before `main` runs (and, in a test binary, before the test harness starts
/// its threads): put `ipc_process::auto_init!();` once at the top level of a test crate (or
/// any binary). Needed in test binaries, where `main` is the harness's; harmless elsewhere.
///
/// It places a function in the executable's `.init_array`, as the `ctor` crate does; the
/// function only reads one environment variable unless this process is an ipc-process child.
#[macro_export]
macro_rules! auto_init {
    () => {
        #[used]
        #[allow(unsafe_code)]
        #[unsafe(link_section = ".init_array")]
        static __IPC_PROCESS_AUTO_INIT: extern "C" fn() = {
            extern "C" fn __ipc_process_auto_init() {
                $crate::init();
            }
            __ipc_process_auto_init
        };
    };
}

fn run_as_child(raw: &str) -> ! {
    let Some(marker) = Marker::decode(raw) else {
        let _ = writeln!(std::io::stderr(), "ipc-process child: malformed {ENV}={raw:?}");
        sys::exit_now(EXIT_SETUP)
    };
    // Grandchildren this task starts must not inherit the marker. Removing it is only safe
    // while no other thread can read the environment.
    if thread_count().is_ok_and(|n| n == 1) {
        // SAFETY: this process has a single thread (just counted; only it could start more).
        unsafe { sys::remove_env(ENV) };
    }
    call::ensure_panic_hook();
    if !marker.detached {
        die_with_parent(marker.parent);
    }
    let Some(fd) = take_control_fd() else {
        let _ = writeln!(std::io::stderr(), "ipc-process child: no control connection on fd 3");
        sys::exit_now(EXIT_SETUP)
    };
    let mut conn = Connection::from(fd);
    match exe_identity() {
        Ok(found) if found == marker.exe => {}
        found => {
            let show = |(d, i): (u64, u64)| format!("{d}:{i}");
            let reason = Refusal::Binary {
                expected: show(marker.exe),
                found: found.map(show).unwrap_or_else(|e| e.to_string()),
            };
            let _ = send_up(&mut conn, &Up::Refused { reason }, &[]);
            sys::exit_now(EXIT_SETUP)
        }
    }
    child_main(conn, marker.token)
}

/// `PR_SET_PDEATHSIG(SIGKILL)`, then the race check: if the parent died before that took
/// effect, we were re-parented already and must go.
pub(crate) fn die_with_parent(parent: u32) {
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    let ppid = rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get().unsigned_abs());
    if ppid != parent {
        sys::exit_now(EXIT_ORPHAN)
    }
}

fn take_control_fd() -> Option<OwnedFd> {
    let st = rustix::fs::fstat(sys::child_fd()).ok()?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::Socket {
        return None;
    }
    rustix::io::fcntl_setfd(sys::child_fd(), rustix::io::FdFlags::CLOEXEC).ok()?;
    // SAFETY: fd 3 is the socket our parent duplicated there for us (checked: open, a
    // socket); `init` runs before anything else in this process could have taken it, so no
    // one else owns it.
    Some(unsafe { sys::own_child_fd() })
}

pub(crate) fn send_up(conn: &mut Connection, up: &Up, payload: &[u8]) -> ipc_pipe::Result<()> {
    let mut header = Vec::with_capacity(32);
    if wire::encode_header(up, &mut header).is_err() {
        return Ok(());
    }
    let parts = [std::io::IoSlice::new(&header), std::io::IoSlice::new(payload)];
    conn.send_vectored(&parts)
}

fn flush_std() {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
}

/// Leave a child: flush what the task printed, then `_exit`.
pub(crate) fn leave(code: i32) -> ! {
    flush_std();
    sys::exit_now(code)
}

/// The control loop of every child that runs ipc-process code (spawned, fork-server and
/// fork pool children): say hello, take the start message, do the job, exit.
pub(crate) fn child_main(mut conn: Connection, token: u64) -> ! {
    let pid = std::process::id();
    if send_up(&mut conn, &Up::Hello { pid, version: wire::VERSION }, &[]).is_err() {
        leave(EXIT_ORPHAN)
    }
    let (start, fds) = match conn.recv_fds() {
        Ok(m) => m,
        Err(_) => leave(EXIT_ORPHAN),
    };
    let job = match wire::decode::<Down>(&start) {
        Ok((Down::Start { token: t, job }, _)) if t == token => job,
        Ok((Down::Start { .. }, _)) => {
            let _ = send_up(&mut conn, &Up::Refused { reason: Refusal::Token }, &[]);
            leave(EXIT_SETUP)
        }
        _ => leave(EXIT_SETUP),
    };
    let payload = match conn.recv() {
        Ok(p) => p,
        Err(_) => leave(EXIT_ORPHAN),
    };
    match job {
        Job::Once { call } => {
            // SAFETY: the call comes from our parent, which runs this executable (checked by
            // `init`, or inherited by fork) and made it with a `RunOnce` trampoline.
            let (run, func) = unsafe { call::resolve::<RunOnce>(call) };
            let reply = run(func, &payload, fds);
            let code = if send_up(&mut conn, &Up::Done, &reply).is_ok() { 0 } else { EXIT_ORPHAN };
            leave(code)
        }
        Job::Worker { init, timeouts, flush_bytes } => {
            worker(conn, init, timeouts, flush_bytes, &payload, fds)
        }
        Job::ForkServer => crate::forkserver::serve(conn),
    }
}

fn worker(
    mut conn: Connection,
    init: Option<wire::Call>,
    timeouts: bool,
    flush_bytes: u32,
    init_args: &[u8],
    mut fds: Vec<OwnedFd>,
) -> ! {
    if fds.is_empty() {
        leave(EXIT_SETUP)
    }
    let progress = match ipc_shm::Shm::from_fd(fds.remove(0)).ok().and_then(Progress::from_shm) {
        Some(p) => p,
        None => leave(EXIT_SETUP),
    };
    if let Some(call) = init {
        // SAFETY: as for `Job::Once`, with a `RunInit` trampoline.
        let (run, func) = unsafe { call::resolve::<RunInit>(call) };
        if let Err(message) = run(func, init_args, fds) {
            let _ = send_up(&mut conn, &Up::InitFailed { message }, &[]);
            leave(0)
        }
    }
    if send_up(&mut conn, &Up::Ready, &[]).is_err() {
        leave(EXIT_ORPHAN)
    }
    let flush_bytes = usize::try_from(flush_bytes).unwrap_or(usize::MAX);
    let mut header = Vec::new();
    let mut out = Vec::new();
    loop {
        let (msg, fds) = match conn.recv_fds() {
            Ok(m) => m,
            Err(_) => leave(0), // the supervisor is gone
        };
        match wire::decode::<Down>(&msg) {
            Ok((Down::Chunk { seq, call, count: _ }, items)) => {
                // SAFETY: as for `Job::Once`, with a `RunItems` trampoline.
                let (run, func) = unsafe { call::resolve::<RunItems>(call) };
                progress.begin_chunk(seq);
                let mut sink = ItemSink {
                    out: std::mem::take(&mut out),
                    pending: 0,
                    seq,
                    flush_bytes,
                    timeouts,
                    progress: &progress,
                    conn: &mut conn,
                    header: std::mem::take(&mut header),
                    last_flush: std::time::Instant::now(),
                };
                let end = run(func, items, fds, &mut sink);
                out = sink.out;
                header = sink.header;
                if let ChunkEnd::Disconnected = end {
                    leave(0)
                }
            }
            Ok((Down::Retire, _)) => leave(0),
            _ => leave(EXIT_SETUP),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_roundtrip_and_rejects() {
        let m = Marker { parent: 42, exe: (7, 99), token: 0xdead_beef, detached: true };
        assert_eq!(Marker::decode(&m.encode()), Some(m));
        for bad in [
            "",
            "v1",
            "v9;parent=1;exe=1:2;token=0;detached=0",
            "v1;parent=x;exe=1:2;token=0;detached=0",
            "v1;parent=1;exe=12;token=0;detached=0",
            "v1;parent=1;exe=1:2;token=0;detached=2",
        ] {
            assert_eq!(Marker::decode(bad), None, "{bad}");
        }
    }
}
