//! Async waits (feature `tokio`): [`Semaphore::acquire_async`] and [`Event::wait_async`],
//! awaiting the primitive's doorbell in tokio's reactor ([`ipc_shm::event_count::ready`]:
//! no helper thread, no busy polling).
//!
//! Cancel-safe: the permit is taken by one synchronous `try_acquire` after the await, so a
//! future dropped at its await point holds no permit, and its doorbell registration is
//! withdrawn on drop. A tracked semaphore's permits held by dead processes are taken over on
//! the blocking calls' liveness schedule.

use ipc_shm::SelectableEventCount;
use ipc_shm::event_count::{Check, Waitable, ready};
use ipc_shm::sync::atomic::Ordering;

use crate::event::{GEN_MASK, SET, SLEEPERS};
use crate::select::arm_word;

use crate::error::Result;
use crate::{Event, Permit, Semaphore};

impl<const L: usize> Semaphore<L> {
    /// Take one permit, awaiting it (a tokio runtime with I/O and time enabled).
    /// Cancel-safe: dropped before it completes, it holds no permit.
    ///
    /// # Errors
    /// As [`acquire`](Self::acquire).
    pub async fn acquire_async(&self) -> Result<Permit<'_, L>> {
        loop {
            if let Some(p) = self.try_acquire()? {
                return Ok(p);
            }
            ready(self).await;
        }
    }
}

/// An event as a source that is ready once it is set, or was set (and maybe cleared again)
/// since `generation`: what a blocking `wait` returns for.
struct SetSince<'a> {
    ev: &'a Event,
    generation: u32,
}

impl Waitable for SetSince<'_> {
    fn event_count(&self) -> Option<&SelectableEventCount> {
        self.ev.event_count()
    }
    fn check(&self, how: Check) -> bool {
        let g = self.generation;
        arm_word(&self.ev.word, SLEEPERS, how.arm, |w| w & SET != 0 || w & GEN_MASK != g)
    }
    fn needs_barrier(&self) -> bool {
        false
    }
}

impl Event {
    /// Await the flag being set (returns at once if it is). A `set` followed by a `clear`
    /// while the future waits still ends it, as it ends a blocking [`wait`](Self::wait).
    pub async fn wait_async(&self) {
        // Acquire: pairs with the Release CAS of `set`.
        let generation = self.word.load(Ordering::Acquire) & GEN_MASK;
        ready(&SetSince { ev: self, generation }).await;
    }
}
