//! Process-shared futex wait and wake on an [`AtomicU32`].
//!
//! Always process-shared: never `FUTEX_PRIVATE_FLAG`, which keys the wait queue by the
//! address in *this* process and so cannot wake a waiter in another (std's `Mutex` cannot live
//! in shared memory for exactly this reason). Deadlines are absolute `CLOCK_MONOTONIC`
//! (`FUTEX_WAIT_BITSET`), immune to wall-clock jumps, and an interrupted wait (EINTR) is retried
//! against the same absolute deadline, so it never waits longer than asked.
//!
//! This module depends on nothing else in ipc-shm (only on [`crate::sync`] for the atomic
//! type), so it can move to a crate of its own without an API change.
//!
//! Under `--cfg ipc_loom` the calls are emulated with a loom `Mutex` + `Condvar` that makes
//! check-then-sleep atomic, so a lost wake-up shows up as a loom deadlock. A timed wait has no
//! clock under loom: it times out at once when the value still matches.
//!
//! # References
//! - [futex(2)](https://man7.org/linux/man-pages/man2/futex.2.html)

use std::time::Instant;

use crate::sync::atomic::AtomicU32;

#[cfg(ipc_loom)]
mod loom;

/// How a [`wait`] ended. Callers always re-check their condition: `Woken` may be spurious.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitResult {
    /// A wake-up arrived (or the kernel returned spuriously).
    Woken,
    /// The word did not hold `expected` when the wait began.
    Changed,
    /// The deadline passed.
    TimedOut,
}

/// Sleep while `word == expected`, until a wake, or until `deadline` (absolute, monotonic).
///
/// # Panics
/// Only on an errno the kernel documents as a caller bug (EFAULT, EINVAL, ENOSYS), which
/// would mean a bug in this module.
#[inline]
pub fn wait(word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> WaitResult {
    #[cfg(not(ipc_loom))]
    {
        imp::wait(word, expected, deadline)
    }
    #[cfg(ipc_loom)]
    {
        loom::wait(word, expected, deadline)
    }
}

/// Wake at most one waiter sleeping on `word`; returns how many were woken.
#[inline]
pub fn wake_one(word: &AtomicU32) -> usize {
    wake(word, 1)
}

/// Wake every waiter sleeping on `word`; returns how many were woken.
#[inline]
pub fn wake_all(word: &AtomicU32) -> usize {
    wake(word, i32::MAX.unsigned_abs())
}

/// Wake at most `n` waiters sleeping on `word`; returns how many were woken.
///
/// # Panics
/// As [`wait`].
#[inline]
pub fn wake(word: &AtomicU32, n: u32) -> usize {
    #[cfg(not(ipc_loom))]
    {
        imp::wake(word, n)
    }
    #[cfg(ipc_loom)]
    {
        loom::wake(word, n)
    }
}

#[cfg(not(ipc_loom))]
mod imp {
    use std::num::NonZeroU32;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Instant;

    use rustix::io::Errno;
    use rustix::thread::futex::{self, Flags};
    use rustix::time::{ClockId, Timespec, clock_gettime};

    use super::WaitResult;

    pub(super) fn wait(word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> WaitResult {
        let timeout = match deadline {
            None => None,
            Some(deadline) => {
                let now = Instant::now();
                if deadline <= now {
                    // Relaxed: a snapshot only; the caller re-checks its own condition with its
                    // own ordering.
                    return if word.load(Ordering::Relaxed) == expected {
                        WaitResult::TimedOut
                    } else {
                        WaitResult::Changed
                    };
                }
                Some(absolute(deadline - now))
            }
        };
        loop {
            // Flags::empty(): shared (no FUTEX_PRIVATE_FLAG), CLOCK_MONOTONIC absolute timeout.
            match futex::wait_bitset(word, Flags::empty(), expected, timeout.as_ref(), MATCH_ANY) {
                Ok(()) => return WaitResult::Woken,
                Err(Errno::AGAIN) => return WaitResult::Changed,
                Err(Errno::TIMEDOUT) => return WaitResult::TimedOut,
                // Same absolute deadline: the retry never extends the wait.
                Err(Errno::INTR) => continue,
                Err(e) => unexpected("FUTEX_WAIT_BITSET", e),
            }
        }
    }

    pub(super) fn wake(word: &AtomicU32, n: u32) -> usize {
        match futex::wake(word, Flags::empty(), n) {
            Ok(woken) => woken,
            Err(e) => unexpected("FUTEX_WAKE", e),
        }
    }

    const MATCH_ANY: NonZeroU32 = NonZeroU32::MAX;

    /// `now(CLOCK_MONOTONIC) + rel`, saturating.
    fn absolute(rel: std::time::Duration) -> Timespec {
        let now = clock_gettime(ClockId::Monotonic);
        let secs = i64::try_from(rel.as_secs()).unwrap_or(i64::MAX);
        let mut tv_sec = now.tv_sec.saturating_add(secs);
        let mut tv_nsec = now.tv_nsec + i64::from(rel.subsec_nanos());
        if tv_nsec >= 1_000_000_000 {
            tv_nsec -= 1_000_000_000;
            tv_sec = tv_sec.saturating_add(1);
        }
        Timespec { tv_sec, tv_nsec }
    }

    #[cold]
    fn unexpected(op: &str, e: Errno) -> ! {
        // EFAULT/EINVAL/ENOSYS cannot come from a valid &AtomicU32 and a valid timespec: a bug.
        panic!("ipc_shm::futex: {op} failed with unexpected {e:?}; this is a bug in ipc-shm")
    }
}
