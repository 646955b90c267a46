//! loom emulation of the futex calls: one global `Mutex` + `Condvar` make the check of the
//! word and the sleep atomic, exactly what the kernel guarantees; `wake` notifies every
//! sleeper (they re-check their words), so a missing wake shows as a loom deadlock.

use std::time::Instant;

use loom::sync::atomic::{AtomicU32, Ordering};
use loom::sync::{Condvar, Mutex};

use super::WaitResult;

loom::lazy_static! {
    static ref TABLE: (Mutex<()>, Condvar) = (Mutex::new(()), Condvar::new());
}

#[allow(clippy::unwrap_used)] // loom's Mutex only poisons when a model already panicked.
pub(super) fn wait(word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> WaitResult {
    let (lock, cvar) = &*TABLE;
    let guard = lock.lock().unwrap();
    if word.load(Ordering::SeqCst) != expected {
        return WaitResult::Changed;
    }
    if deadline.is_some() {
        // No clock under loom: a timed wait on a matching word times out at once.
        return WaitResult::TimedOut;
    }
    drop(cvar.wait(guard).unwrap());
    WaitResult::Woken
}

#[allow(clippy::unwrap_used)] // as above
pub(super) fn wake(_word: &AtomicU32, _n: u32) -> usize {
    let (lock, cvar) = &*TABLE;
    let guard = lock.lock().unwrap();
    cvar.notify_all();
    drop(guard);
    1
}
