//! EINTR injection without strace: a child installs a do-nothing signal handler *without*
//! `SA_RESTART` ([`interrupt_blocking_calls`]), so every blocking system call it is inside
//! when the signal lands returns `EINTR`; the parent then signals it every few hundred
//! microseconds ([`SignalStorm`]) while it waits, and the waits must neither return early nor
//! restart their full timeout.
//!
//! Order matters: the child installs the handler and *then* says "ready"; only then may the
//! parent start the storm (SIGUSR1's default action would kill the child), and the parent stops
//! the storm before it reaps the child (a reaped pid may be reused).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::{Child, recv_line, send_line, sys, wait_until_sleeping};

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

/// How long each line of the storm protocol may take.
const LINE: Duration = Duration::from_secs(20);

/// The child's side of a storm test, in a forked child. Installs the handler, says "ready",
/// waits for "go" (the storm has started), then runs `timed`: a wait of `timeout` that must
/// end by its deadline (`timed` asserts its own outcome). Checks it took at least `timeout`
/// (so an EINTR was never taken for the deadline) and under 5 s more (so the wait was never
/// restarted from scratch for ever), and that signals did land. Says "timed", runs
/// `blocking` (a wait that only the parent's wake ends), and reports the signals caught.
///
/// # Panics
/// On any failed check (the harness reports it to the parent).
pub fn storm_child(timeout: Duration, timed: impl FnOnce(), blocking: impl FnOnce()) {
    interrupt_blocking_calls();
    send_line("ready");
    assert_eq!(recv_line(LINE).as_deref(), Some("go"), "no go from the parent");
    let t = Instant::now();
    timed();
    let took = t.elapsed();
    assert!(took >= timeout, "the timed wait ended early, after {took:?}");
    assert!(took < timeout + Duration::from_secs(5), "the timed wait took {took:?}");
    assert!(signals_caught() > 0, "no signal landed during the timed wait");
    send_line("timed");
    blocking();
    send_line(&signals_caught().to_string());
}

/// The parent's side of [`storm_child`]: storms `child` every 0.5 ms from its "ready" on,
/// and once the child sleeps in its blocking wait runs `wake`; stops the storm before the
/// child is reaped, checks the child succeeded. Returns (signals sent, signals caught).
///
/// # Panics
/// If the child fails or a line does not come in time.
pub fn storm_parent(child: &mut Child, wake: impl FnOnce()) -> (u64, u64) {
    assert_eq!(child.recv_line(LINE).expect("ready"), "ready");
    let storm = SignalStorm::start(child.pid(), Duration::from_micros(500));
    child.send_line("go");
    assert_eq!(child.recv_line(LINE).expect("timed"), "timed");
    wait_until_sleeping(child.pid());
    wake();
    let caught = child.recv_line(LINE).expect("caught");
    let sent = storm.stop();
    child.assert_success();
    (sent, caught.parse().unwrap_or(0))
}
