//! EINTR injection without strace: a child installs a do-nothing signal handler *without*
//! `SA_RESTART` ([`interrupt_blocking_calls`]), so every blocking system call it is inside
//! when the signal lands returns `EINTR`; the parent then signals it every few hundred
//! microseconds ([`SignalStorm`]) while it waits, and the waits must neither return early nor
//! restart their full timeout (RELIABILITY.md S5, Q12).
//!
//! Order matters: the child installs the handler and *then* says "ready"; only then may the
//! parent start the storm (SIGUSR1's default action would kill the child), and the parent stops
//! the storm before it reaps the child (a reaped pid may be reused).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::sys;

/// Signals the handler has caught in this process.
static CAUGHT: AtomicU64 = AtomicU64::new(0);

extern "C" fn count_signal(_: libc::c_int) {
    // Relaxed: a counter read after the fact; async-signal-safe (one atomic add).
    CAUGHT.fetch_add(1, Ordering::Relaxed);
}

/// In the child: catch `SIGUSR1` with a handler that only counts, without `SA_RESTART`, so
/// the signal interrupts whatever blocking call the process is in.
///
/// # Panics
/// If `sigaction` fails.
pub fn interrupt_blocking_calls() {
    // SAFETY: `sigaction` is plain data; all-zero is a valid value (empty mask, no flags).
    let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
    act.sa_sigaction = count_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    act.sa_flags = 0; // no SA_RESTART: interrupted calls fail with EINTR
    // SAFETY: installs a handler that only does an atomic add (async-signal-safe); `act` is
    // a valid sigaction and the old action is not asked for.
    let rc = unsafe { libc::sigaction(libc::SIGUSR1, &raw const act, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "sigaction: {}", std::io::Error::last_os_error());
}

/// How many signals [`interrupt_blocking_calls`]' handler has caught in this process.
pub fn signals_caught() -> u64 {
    // Relaxed: pairs with the Relaxed add in the handler; a count, nothing else ordered by it.
    CAUGHT.load(Ordering::Relaxed)
}

/// A thread sending `SIGUSR1` to one process every `period` until stopped or dropped.
#[derive(Debug)]
pub struct SignalStorm {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<u64>>,
}

impl SignalStorm {
    /// Start signalling `pid` (a child that has called [`interrupt_blocking_calls`]).
    pub fn start(pid: u32, period: Duration) -> SignalStorm {
        let pid = libc::pid_t::try_from(pid).expect("pid fits pid_t");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut sent = 0u64;
            // Relaxed: a stop request; the join in `stop` orders everything else.
            while !flag.load(Ordering::Relaxed) {
                if sys::kill(pid, libc::SIGUSR1).is_err() {
                    break; // gone (a zombie still accepts signals; a reaped pid is not ours)
                }
                sent += 1;
                // Pacing the signals, not synchronisation.
                std::thread::sleep(period);
            }
            sent
        });
        SignalStorm { stop, thread: Some(thread) }
    }

    /// Stop and return how many signals were sent.
    pub fn stop(mut self) -> u64 {
        self.halt()
    }

    fn halt(&mut self) -> u64 {
        // Relaxed: see the loop; the join waits for the thread's last kill.
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().map_or(0, |t| t.join().unwrap_or(0))
    }
}

impl Drop for SignalStorm {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Wait (at most 10 s) until `pid` sleeps in the kernel (state `S` in `/proc/<pid>/stat`), so
/// that what ends its wait next is the wake under test, not a lucky check of a value.
///
/// # Panics
/// If it never sleeps within 10 s.
pub fn wait_until_sleeping(pid: u32) {
    let t = std::time::Instant::now();
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit_once(") ").map(|(_, rest)| rest.chars().next());
        if state == Some(Some('S')) {
            return;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "process {pid} never slept");
        std::thread::yield_now();
    }
}
