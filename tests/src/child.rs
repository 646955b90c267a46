//! Forked children: the parent's [`Child`] handle and the child's side of the line channel.

use std::collections::VecDeque;
use std::fmt;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use crate::sys;

/// How long [`Child::join`] and [`Child::assert_success`] wait before failing the test.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(60);

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// `exit(code)`: 0 success, 101 a panic, 1 an `Err` returned by the closure.
    Code(i32),
    /// Killed by a signal.
    Signal(i32),
}

impl Exit {
    fn from_status(status: libc::c_int) -> Exit {
        if libc::WIFSIGNALED(status) {
            Exit::Signal(libc::WTERMSIG(status))
        } else {
            Exit::Code(libc::WEXITSTATUS(status))
        }
    }

    /// Exit code 0.
    pub fn success(self) -> bool {
        self == Exit::Code(0)
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Exit::Code(0) => write!(f, "exit code 0"),
            Exit::Code(101) => write!(f, "exit code 101 (panicked)"),
            Exit::Code(c) => write!(f, "exit code {c}"),
            Exit::Signal(libc::SIGKILL) => write!(f, "killed by SIGKILL"),
            Exit::Signal(libc::SIGABRT) => write!(f, "killed by SIGABRT"),
            Exit::Signal(libc::SIGSEGV) => write!(f, "killed by SIGSEGV"),
            Exit::Signal(libc::SIGBUS) => write!(f, "killed by SIGBUS"),
            Exit::Signal(s) => write!(f, "killed by signal {s}"),
        }
    }
}

/// Why waiting for a child (or a line from it) ended without what was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinError {
    /// The deadline passed; the child is still running.
    Timeout,
    /// The child ended (before sending the line asked for).
    Exited {
        /// How it ended.
        exit: Exit,
        /// Its panic message or error, if it sent one.
        report: String,
    },
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Timeout => write!(f, "deadline passed"),
            JoinError::Exited { exit, report } if report.is_empty() => {
                write!(f, "child ended: {exit}")
            }
            JoinError::Exited { exit, report } => write!(f, "child ended: {exit}: {report}"),
        }
    }
}

impl std::error::Error for JoinError {}

/// What a child closure may return: `()` or a `Result` whose error fails the child.
pub trait ChildResult {
    /// `Err(message)` fails the child with exit code 1.
    fn into_report(self) -> Result<(), String>;
}

impl ChildResult for () {
    fn into_report(self) -> Result<(), String> {
        Ok(())
    }
}

impl<E: fmt::Debug> ChildResult for Result<(), E> {
    fn into_report(self) -> Result<(), String> {
        self.map_err(|e| format!("{e:?}"))
    }
}

// Record kinds on the child-to-parent pipe: one line each, `\` and newline escaped.
const LINE: u8 = b'L';
const PANIC: u8 = b'P';
const ERROR: u8 = b'E';

fn encode(kind: u8, text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 2);
    out.push(kind);
    for b in text.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            _ => out.push(b),
        }
    }
    out.push(b'\n');
    out
}

fn decode(record: &[u8]) -> (u8, String) {
    let kind = record.first().copied().unwrap_or(LINE);
    let mut text = Vec::with_capacity(record.len());
    let mut it = record.iter().skip(1);
    while let Some(&b) = it.next() {
        if b == b'\\' {
            match it.next() {
                Some(b'n') => text.push(b'\n'),
                Some(&o) => text.push(o),
                None => {}
            }
        } else {
            text.push(b);
        }
    }
    (kind, String::from_utf8_lossy(&text).into_owned())
}

/// A child process started by [`fork`] or [`spawn_role`](crate::spawn_role). Killed with
/// SIGKILL and reaped when dropped unless already joined.
pub struct Child {
    pid: libc::pid_t,
    pidfd: OwnedFd,
    rx: OwnedFd,
    tx: Option<OwnedFd>,
    buf: Vec<u8>,
    lines: VecDeque<String>,
    report: Vec<String>,
    eof: bool,
    exit: Option<Exit>,
    label: String,
}

impl fmt::Debug for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Child")
            .field("label", &self.label)
            .field("pid", &self.pid)
            .field("exit", &self.exit)
            .finish_non_exhaustive()
    }
}

impl Child {
    pub(crate) fn new(pid: libc::pid_t, rx: OwnedFd, tx: OwnedFd, label: String) -> Child {
        let pidfd = match sys::pidfd_open(pid) {
            Ok(fd) => fd,
            Err(e) => {
                let _ = sys::kill(pid, libc::SIGKILL);
                let _ = sys::wait(pid);
                panic!("ipc-testkit: pidfd_open({pid}) for {label} failed: {e}");
            }
        };
        sys::set_nonblocking(rx.as_raw_fd()).expect("set report pipe non-blocking");
        Child {
            pid,
            pidfd,
            rx,
            tx: Some(tx),
            buf: Vec::new(),
            lines: VecDeque::new(),
            report: Vec::new(),
            eof: false,
            exit: None,
            label,
        }
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.pid.unsigned_abs()
    }

    /// How it ended, once joined.
    pub fn exit(&self) -> Option<Exit> {
        self.exit
    }

    /// Its panic message or returned error, if it sent one (complete once joined).
    pub fn report(&self) -> String {
        self.report.join("\n")
    }

    /// Read whatever the pipe holds now, without blocking.
    fn pump(&mut self) {
        let mut chunk = [0u8; 4096];
        while !self.eof {
            match sys::read(self.rx.as_raw_fd(), &mut chunk) {
                Ok(0) => self.eof = true,
                Ok(n) => self.buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => self.eof = true,
            }
        }
        while let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
            let record: Vec<u8> = self.buf.drain(..=end).collect();
            let (kind, text) = decode(record.get(..end).unwrap_or_default());
            match kind {
                PANIC | ERROR => self.report.push(text),
                _ => self.lines.push_back(text),
            }
        }
    }

    fn reap_if_exited(&mut self) -> Option<Exit> {
        if self.exit.is_none()
            && let Ok(Some(status)) = sys::try_wait(self.pid)
        {
            self.exit = Some(Exit::from_status(status));
            self.pump();
        }
        self.exit
    }

    fn exited_error(&mut self) -> JoinError {
        let exit = self.exit.unwrap_or(Exit::Code(-1));
        JoinError::Exited { exit, report: self.report() }
    }

    /// The next line the child sent with [`send_line`], waiting at most `timeout`.
    ///
    /// # Errors
    /// [`JoinError::Timeout`], or [`JoinError::Exited`] if the child ended first.
    pub fn recv_line(&mut self, timeout: Duration) -> Result<String, JoinError> {
        let deadline = deadline_in(timeout);
        loop {
            self.pump();
            if let Some(line) = self.lines.pop_front() {
                return Ok(line);
            }
            if self.reap_if_exited().is_some() {
                return match self.lines.pop_front() {
                    Some(line) => Ok(line),
                    None => Err(self.exited_error()),
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(JoinError::Timeout);
            }
            let mut fds = vec![self.pidfd.as_raw_fd()];
            if !self.eof {
                fds.push(self.rx.as_raw_fd());
            }
            let _ = sys::poll_readable(&fds, Some(deadline - now));
        }
    }

    /// Send a line to the child (read there with [`recv_line`]).
    ///
    /// # Panics
    /// If the child is gone.
    pub fn send_line(&mut self, line: &str) {
        let fd = self.tx.as_ref().map(AsRawFd::as_raw_fd).expect("child input already closed");
        let mut data = line.replace('\n', " ").into_bytes();
        data.push(b'\n');
        if let Err(e) = sys::write_all(fd, &data) {
            panic!("ipc-testkit: send_line to {} (pid {}): {e}", self.label, self.pid);
        }
    }

    /// Wait for the child to end, at most `timeout`.
    ///
    /// # Errors
    /// [`JoinError::Timeout`] if it is still running (it is not killed).
    pub fn join_timeout(&mut self, timeout: Duration) -> Result<Exit, JoinError> {
        let deadline = deadline_in(timeout);
        loop {
            if let Some(exit) = self.reap_if_exited() {
                return Ok(exit);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(JoinError::Timeout);
            }
            let _ = sys::poll_readable(&[self.pidfd.as_raw_fd()], Some(deadline - now));
            self.pump();
        }
    }

    /// Wait for the child to end; a child still running after [`DEFAULT_DEADLINE`] is killed
    /// and fails the test.
    pub fn join(&mut self) -> Exit {
        self.join_within(DEFAULT_DEADLINE)
    }

    /// Wait at most `deadline`; a child still running then is killed and fails the test.
    pub fn join_within(&mut self, deadline: Duration) -> Exit {
        match self.join_timeout(deadline) {
            Ok(exit) => exit,
            Err(_) => {
                self.kill();
                let _ = self.join_timeout(Duration::from_secs(5));
                panic!(
                    "ipc-testkit: {} (pid {}) hung past its {deadline:?} deadline and was killed{}",
                    self.label,
                    self.pid,
                    self.report_suffix()
                );
            }
        }
    }

    fn report_suffix(&self) -> String {
        if self.report.is_empty() { String::new() } else { format!("; it said: {}", self.report()) }
    }

    /// Join (within [`DEFAULT_DEADLINE`]) and fail the test unless the child exited with 0;
    /// the failure message carries the child's panic message or error.
    pub fn assert_success(&mut self) {
        self.assert_success_within(DEFAULT_DEADLINE);
    }

    /// [`assert_success`](Self::assert_success) with a deadline.
    pub fn assert_success_within(&mut self, deadline: Duration) {
        let exit = self.join_within(deadline);
        if !exit.success() {
            panic!(
                "ipc-testkit: {} (pid {}) failed: {exit}{}",
                self.label,
                self.pid,
                self.report_suffix()
            );
        }
    }

    /// Join and fail the test unless the child was killed by `signal`.
    pub fn assert_signaled(&mut self, signal: i32) {
        let exit = self.join();
        if exit != Exit::Signal(signal) {
            panic!(
                "ipc-testkit: {} (pid {}) should have died of signal {signal} but ended with {exit}{}",
                self.label,
                self.pid,
                self.report_suffix()
            );
        }
    }

    /// Wait until the child is stopped (SIGSTOP, a stop crash point), at most `timeout`.
    /// `true` once stopped; `false` on timeout or if it ended.
    pub fn wait_stopped(&mut self, timeout: Duration) -> bool {
        let deadline = deadline_in(timeout);
        let mut pause = Duration::from_micros(50);
        loop {
            if self.exit.is_some() {
                return false;
            }
            match sys::try_wait_stopped(self.pid) {
                Ok(Some(status)) if libc::WIFSTOPPED(status) => return true,
                Ok(Some(status)) => {
                    self.exit = Some(Exit::from_status(status));
                    self.pump();
                    return false;
                }
                Ok(None) => {}
                Err(_) => return false,
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            // Polling the kernel's view with a deadline: there is no fd that signals a stop.
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(Duration::from_millis(5));
        }
    }

    /// Send SIGKILL (no-op once it has ended).
    pub fn kill(&self) {
        self.signal(libc::SIGKILL);
    }

    /// Send `signal` (no-op once it has ended).
    pub fn signal(&self, signal: i32) {
        if self.exit.is_none() {
            let _ = sys::kill(self.pid, signal);
        }
    }

    /// SIGKILL and reap; returns how it ended (a child that already exited keeps its status).
    pub fn kill_and_join(&mut self) -> Exit {
        self.kill();
        self.join_within(Duration::from_secs(10))
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.exit.is_none() {
            let _ = sys::kill(self.pid, libc::SIGKILL);
            let _ = sys::wait(self.pid);
        }
    }
}

/// The child's end of the line channel: (to parent, from parent), -1 outside a child.
static CHILD_TX: AtomicI32 = AtomicI32::new(-1);
static CHILD_RX: AtomicI32 = AtomicI32::new(-1);
static CHILD_BUF: Mutex<Vec<u8>> = Mutex::new(Vec::new());

fn write_record(kind: u8, text: &str) {
    let fd = CHILD_TX.load(Ordering::Acquire);
    if fd >= 0 {
        let _ = sys::write_all(fd, &encode(kind, text));
    }
}

/// In a child: send a line to the parent ([`Child::recv_line`]).
///
/// # Panics
/// Outside a testkit child.
pub fn send_line(line: &str) {
    assert!(CHILD_TX.load(Ordering::Acquire) >= 0, "send_line outside an ipc-testkit child");
    write_record(LINE, line);
}

/// In a child: the next line from the parent ([`Child::send_line`]), waiting at most
/// `timeout`; `None` on timeout or when the parent closed the channel.
///
/// # Panics
/// Outside a testkit child.
pub fn recv_line(timeout: Duration) -> Option<String> {
    let fd = CHILD_RX.load(Ordering::Acquire);
    assert!(fd >= 0, "recv_line outside an ipc-testkit child");
    let deadline = deadline_in(timeout);
    let mut buf = CHILD_BUF.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    loop {
        if let Some(end) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=end).collect();
            return Some(String::from_utf8_lossy(line.get(..end).unwrap_or_default()).into_owned());
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        match sys::poll_readable(&[fd], Some(deadline - now)) {
            Ok(ready) if ready.first() == Some(&true) => {}
            _ => continue,
        }
        let mut chunk = [0u8; 1024];
        match sys::read(fd, &mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
        }
    }
}

/// Install (once, in the parent, before any fork) a panic hook that, in a testkit child,
/// sends the panic message to the parent, and elsewhere defers to the previous hook.
///
/// Installing it in the child instead would be a trap: `set_hook` takes the hook lock, and a
/// thread of the parent that was panicking at the moment of the fork leaves that lock held
/// forever in the child.
pub(crate) fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if CHILD_TX.load(Ordering::Acquire) >= 0 {
                write_record(PANIC, &info.to_string());
            } else {
                previous(info);
            }
        }));
    });
}

/// Set up the child side (after fork or exec) and run `f`, then `_exit`.
pub(crate) fn run_child<R: ChildResult>(tx: RawFd, rx: RawFd, f: impl FnOnce() -> R) -> ! {
    CHILD_TX.store(tx, Ordering::Release);
    CHILD_RX.store(rx, Ordering::Release);
    let code = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => match result.into_report() {
            Ok(()) => 0,
            Err(msg) => {
                write_record(ERROR, &msg);
                1
            }
        },
        Err(_) => 101,
    };
    sys::exit_now(code)
}

/// Run `f` in a forked child. The child dies with the parent, reports a panic or an `Err`
/// back through a pipe, and leaves with `_exit` (no destructors of the parent's state run
/// twice). See the crate docs for what a child may do.
///
/// # Panics
/// If `fork`, `pipe2` or `pidfd_open` fail (the test cannot go on).
pub fn fork<R: ChildResult>(f: impl FnOnce() -> R) -> Child {
    fork_named("forked child", f)
}

/// Run `f` in a forked child on the child's own copy of `value`, exactly as a forked child
/// that unwinds through the parent's frame (a panic, a `?`) drops what the parent held there.
/// The parent's `value` is untouched: it is neither moved nor dropped by this call.
///
/// Use it to prove that a guard, permit or handle inherited over `fork` releases nothing
/// its parent still holds.
pub fn fork_inheriting<T, R: ChildResult>(value: &T, f: impl FnOnce(T) -> R) -> Child {
    let at = std::ptr::from_ref(value).expose_provenance();
    fork_named("forked child (inheriting)", move || {
        // In the child, the memory at `at` is the child's copy of the parent's live `value`
        // (fork copies the address space), properly aligned and initialised.
        // SAFETY: the child never returns into the parent's code (it `_exit`s after `f`), so
        // nothing else uses or drops that copy: reading it out leaves exactly one owner.
        let copy = unsafe { std::ptr::read(std::ptr::with_exposed_provenance::<T>(at)) };
        f(copy)
    })
}

/// [`fork`] with a label used in failure messages.
pub fn fork_named<R: ChildResult>(label: &str, f: impl FnOnce() -> R) -> Child {
    install_panic_hook();
    let (parent_rx, child_tx) = sys::pipe().expect("pipe for child report");
    let (child_rx, parent_tx) = sys::pipe().expect("pipe to child");
    let parent = sys::getpid();
    // SAFETY: fork has no memory-safety preconditions of its own; the child side follows the
    // crate's rules (it only runs `f`, then `_exit`s, never returning into the test harness).
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        panic!("ipc-testkit: fork failed: {}", std::io::Error::last_os_error());
    }
    if pid == 0 {
        sys::die_with_parent();
        if sys::getppid() != parent {
            sys::exit_now(98); // the parent died before PR_SET_PDEATHSIG took effect
        }
        drop(parent_rx);
        drop(parent_tx);
        run_child(child_tx.into_raw_fd(), child_rx.into_raw_fd(), f)
    }
    drop(child_tx);
    drop(child_rx);
    Child::new(pid, parent_rx, parent_tx, label.to_owned())
}

/// `now + timeout`, saturating at ~a century for huge timeouts (a `Duration::MAX` never
/// panics).
fn deadline_in(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_roundtrip() {
        for text in ["", "a", "two\nlines", "back\\slash\\n", "é"] {
            let enc = encode(PANIC, text);
            assert_eq!(enc.iter().filter(|&&b| b == b'\n').count(), 1);
            let (kind, dec) = decode(enc.get(..enc.len() - 1).unwrap());
            assert_eq!((kind, dec.as_str()), (PANIC, text));
        }
    }
}
