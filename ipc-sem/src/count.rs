//! The untracked count: one `u32` word that is both the permit count and the futex word.
//! Shared by [`Semaphore`](crate::Semaphore) (untracked mode) and
//! [`BoundedSemaphore`](crate::BoundedSemaphore).
//!
//! | bits | meaning |
//! |---|---|
//! | 0..31 | the count (at most [`COUNT_MAX`], and at most the caller's `max`) |
//! | 31 (`SLEEPERS`) | a waiter may be asleep on the word |
//!
//! - take `n`: one CAS `c -> c - n` (keeps `SLEEPERS`); a count above `max` (garbage from a
//!   peer) is taken as `max`, so a take never grants more than `max` permits in a row.
//! - release `n`: one CAS `c -> c + n` that also clears `SLEEPERS`; if the flag was set,
//!   `FUTEX_WAKE` everybody (they re-check, the losers re-arm the flag and sleep again). The
//!   wake-all makes a flag left by a killed waiter cost one syscall, once: it heals itself.
//! - sleep: set `SLEEPERS` (CAS, only if clear), then `FUTEX_WAIT` on the armed value. Every
//!   change of the word after that point either is a release (which wakes) or makes the
//!   kernel's compare fail, so no wake-up is lost. Only a release clears the flag.
//!
//! All-zero is a valid state: no permits, nobody asleep.
//!
//! Why this word is its own futex word rather than an [`ipc_shm::EventCount`]: the count *is*
//! the state the waiter waits on, so the release's one CAS both publishes the permit and
//! tells it whether anyone sleeps (no second word to load, no store-buffer race to pay a
//! barrier for), and a flag left by a killed waiter is cleared by the next release. It is
//! the shape of a lock word, as the family's mutexes keep theirs; the event count is for
//! waiters of a condition spread over other words (the tracked ledger, events, barriers).
//!
//! No spinning before the sleep: a semaphore cannot know whether its poster is running, and
//! spinning against a poster that shares our CPU only delays it ([`ipc_shm::spin`] gives the
//! measurement, taken on this crate's ping-pong).

use ipc_shm::Deadline;
use ipc_shm::futex::{self, WaitResult};
use ipc_shm::sync::atomic::{AtomicU32, Ordering};

/// Flag: a waiter may be asleep.
pub(crate) const SLEEPERS: u32 = 1 << 31;
/// The largest count the word can hold.
pub(crate) const COUNT_MAX: u32 = SLEEPERS - 1;

/// The count of `word` as the object sees it: never above `max`.
#[inline]
pub(crate) fn value(word: &AtomicU32, max: u32) -> u32 {
    // Relaxed: a snapshot; nothing is published by reading it.
    (word.load(Ordering::Relaxed) & COUNT_MAX).min(max)
}

/// The uncontended take: a count in `n..=max`, one load, one CAS, no loop. `false` sends
/// the caller to the general path (which decides for real).
#[inline(always)]
pub(crate) fn try_take_fast(word: &AtomicU32, n: u32, max: u32) -> bool {
    // Relaxed: the CAS below is the synchronising access.
    let cur = word.load(Ordering::Relaxed);
    let count = cur & COUNT_MAX;
    // Subtracting from the count bits leaves SLEEPERS as it is.
    // Acquire: pairs with the Release CAS in `release`. Failure Relaxed: the slow path retries.
    count >= n
        && count <= max
        && word.compare_exchange(cur, cur - n, Ordering::Acquire, Ordering::Relaxed).is_ok()
}

/// The uncontended release: nobody asleep, no overflow past `max`, one CAS. `false` sends
/// the caller to [`release`].
#[inline(always)]
pub(crate) fn release_fast(word: &AtomicU32, n: u32, max: u32) -> bool {
    // Relaxed: the CAS below is the synchronising access.
    let cur = word.load(Ordering::Relaxed);
    // Without SLEEPERS, `cur` is the count itself.
    // Release: pairs with the Acquire CAS of takers. Failure Relaxed: the slow path retries.
    cur & SLEEPERS == 0
        && cur <= max
        && n <= max - cur
        && word.compare_exchange(cur, cur + n, Ordering::Release, Ordering::Relaxed).is_ok()
}

/// Take `n` permits if there are that many. `n >= 1`.
#[inline]
pub(crate) fn try_take(word: &AtomicU32, n: u32, max: u32) -> bool {
    // Relaxed: the CAS below is the synchronising access.
    let mut cur = word.load(Ordering::Relaxed);
    loop {
        let count = (cur & COUNT_MAX).min(max);
        if count < n {
            return false;
        }
        let new = (count - n) | (cur & SLEEPERS);
        // Acquire: pairs with the Release CAS in `release`, so what the releaser did before
        // releasing is visible to the taker. Failure Relaxed: we only retry.
        match word.compare_exchange_weak(cur, new, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => return true,
            Err(actual) => cur = actual,
        }
    }
}

/// Why a release failed: the count found (already above `max`, or too high for `n` more).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Overflow {
    pub(crate) found: u32,
}

/// Release `n` permits; wakes the sleepers if any (then `Ok(true)`: the caller also rings
/// the doorbells of selectors waiting on the word, if it keeps any). Fails without changing
/// anything if the count would pass `max`.
#[inline]
pub(crate) fn release(word: &AtomicU32, n: u32, max: u32) -> Result<bool, Overflow> {
    // Relaxed: the CAS below is the synchronising access.
    let mut cur = word.load(Ordering::Relaxed);
    loop {
        let count = cur & COUNT_MAX;
        if count > max || n > max - count {
            return Err(Overflow { found: count });
        }
        // Release: pairs with the Acquire CAS in `try_take`. Failure Relaxed: we only retry.
        match word.compare_exchange_weak(cur, count + n, Ordering::Release, Ordering::Relaxed) {
            Ok(_) => break,
            Err(actual) => cur = actual,
        }
    }
    if cur & SLEEPERS != 0 {
        futex::wake_all(word);
        return Ok(true);
    }
    Ok(false)
}

/// Take `n` permits, waiting until `deadline`. `true` if taken.
pub(crate) fn take(word: &AtomicU32, n: u32, max: u32, deadline: Deadline) -> bool {
    loop {
        if try_take(word, n, max) {
            return true;
        }
        // Relaxed: the futex compare and the CAS work on this one word; its modification
        // order alone decides whether a release came before or after we armed.
        let cur = word.load(Ordering::Relaxed);
        if (cur & COUNT_MAX).min(max) >= n {
            continue;
        }
        let armed = cur | SLEEPERS;
        // Relaxed: arming the waiter flag publishes nothing; the futex wait re-reads the word
        // and a releaser's RMW that sees the flag takes the wake path.
        if cur & SLEEPERS == 0
            && word.compare_exchange(cur, armed, Ordering::Relaxed, Ordering::Relaxed).is_err()
        {
            continue;
        }
        if futex::wait(word, armed, deadline.instant()) == WaitResult::TimedOut {
            // One last look: a release may have landed right at the deadline.
            return try_take(word, n, max);
        }
    }
}
