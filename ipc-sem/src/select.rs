//! Waiting on semaphores and events together with other things ([`ipc_shm::Waitable`], used
//! by the `ipc-select` selector and this crate's async futures).
//!
//! Both primitives keep a "someone waits" flag in their own state word (`WANTED` on a
//! tracked semaphore's held ledger words, `SLEEPERS` on an untracked one's count word and on
//! an event's word): a release or `set` that clears the flag wakes the sleepers and rings
//! every doorbell registered on the primitive's event count. A selector's
//! [`check`](Waitable::check) with [`Check::arm`] sets the flag, after registering its
//! doorbell, so the next change rings it. The flag CAS is Release: a notifier whose RMW
//! reads it then sees the doorbell slot written before it (the Acquire fence in the event
//! count's wake path).
//!
//! Not selectable: a [`Barrier`](crate::Barrier) (waiting on one *is* an arrival, which a
//! readiness check cannot undo) and a [`BoundedSemaphore`](crate::BoundedSemaphore) (its
//! 16-byte layout has no room for doorbell slots; a [`Semaphore`] with a ledger of one
//! does the same job and is selectable).

use ipc_shm::SelectableEventCount;
use ipc_shm::event_count::{Check, Waitable};
use ipc_shm::liveness::{self, Status};
use ipc_shm::sync::atomic::{AtomicU32, Ordering};

use crate::count::{COUNT_MAX, SLEEPERS as COUNT_SLEEPERS};
use crate::event::{SET, SLEEPERS as EVENT_SLEEPERS};
use crate::semaphore::{Mode, WANTED};
use crate::{Event, Semaphore};

/// Set `flag` on `word` unless `ready(word)`; returns `ready` of the last value read.
pub(crate) fn arm_word(
    word: &AtomicU32,
    flag: u32,
    arm: bool,
    ready: impl Fn(u32) -> bool,
) -> bool {
    // Acquire: pairs with the Release RMW of the releaser / setter, so a caller told "ready"
    // sees what was published with it.
    let mut cur = word.load(Ordering::Acquire);
    loop {
        if ready(cur) {
            return true;
        }
        if !arm || cur & flag != 0 {
            return false;
        }
        // Release: publishes the doorbell registration before the flag (see the module
        // docs). Failure Acquire: as the load above.
        match word.compare_exchange(cur, cur | flag, Ordering::Release, Ordering::Acquire) {
            Ok(_) => return false,
            Err(actual) => cur = actual,
        }
    }
}

impl<const L: usize> Waitable for Semaphore<L> {
    fn event_count(&self) -> Option<&SelectableEventCount> {
        Some(&self.waiters)
    }

    /// Ready: a permit is free, a dead holder's permit can be taken over (after a liveness
    /// slice), or the semaphore is corrupted (`try_acquire` reports it).
    fn check(&self, how: Check) -> bool {
        match self.mode("select") {
            Err(_) => true,
            Ok(Mode::Untracked) => {
                arm_word(&self.count, COUNT_SLEEPERS, how.arm, |c| c & COUNT_MAX != 0)
            }
            Ok(Mode::Tracked(p)) => {
                let mut ready = false;
                for w in self.words(p) {
                    let free_or_dead = |v: u32| {
                        v == 0
                            || how.liveness
                                && v & !WANTED != 0
                                && liveness::status_raw(v & !WANTED) == Status::Dead
                    };
                    // Arm every held word until one is found free: any release wakes us.
                    if arm_word(w, WANTED, how.arm && !ready, free_or_dead) {
                        ready = true;
                        if !how.arm {
                            break;
                        }
                    }
                }
                ready
            }
        }
    }

    fn needs_liveness(&self) -> bool {
        self.is_tracked()
    }

    /// Flagged: the check arms `WANTED` / `SLEEPERS`, which the release's CAS reads.
    fn needs_barrier(&self) -> bool {
        false
    }
}

impl Waitable for Event {
    fn event_count(&self) -> Option<&SelectableEventCount> {
        Some(&self.waiters)
    }

    /// Ready: the flag is set.
    fn check(&self, how: Check) -> bool {
        arm_word(&self.word, EVENT_SLEEPERS, how.arm, |w| w & SET != 0)
    }

    /// Flagged: the check arms `SLEEPERS`, which the setter's CAS reads.
    fn needs_barrier(&self) -> bool {
        false
    }
}
