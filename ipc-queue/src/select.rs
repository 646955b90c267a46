//! Waiting on queues together with other things ([`ipc_shm::Waitable`], used by the
//! `ipc-select` selector and this crate's async futures): a receiver waits on the
//! `not_empty` word, a sender on `not_full`, both of which carry doorbell slots, so every
//! commit, release, close or recovery that finds a sleeper rings the registered selectors.
//!
//! Readiness is what the blocking call would act on: a message (or room), a close, a
//! corrupted word, and, after a liveness slice ([`Check::liveness`]), a dead producer's
//! half-written slot (recovered here, as a blocking `recv` would) or every peer of the other
//! side dead ([`Queue::senders_gone`] and the like tell which). The look that skips a dead
//! producer's slot reports the queue once even if nothing follows the slot yet (the next
//! `try_recv` moves past it and says `Empty`): wait again.

use ipc_shm::SelectableEventCount;
use ipc_shm::event_count::{Check, Waitable};
use ipc_shm::sync::atomic::Ordering;

use crate::queue::{Inner, Side};
use crate::raw::{self, spsc as proto};
use crate::region::Region;
use crate::spsc::{Receiver, Sender};
use crate::{Queue, SpscQueue};

/// Recover the slot at the head (`send`) or tail (recv) if its owner died mid-write or
/// mid-read; `true` if it changed.
fn recover_blocked(r: &Region, side: Side) -> bool {
    let ctrl = r.ctrl();
    // Relaxed: a hint, as the claim paths read it; `recover` checks the word it is given.
    let pos = if side == Side::Send { &ctrl.head } else { &ctrl.tail }.load(Ordering::Relaxed);
    // Acquire: pairs with the Release stores of the slot word.
    let word = r.slot(pos).word.load(Ordering::Acquire);
    raw::recover(r, pos, word)
}

fn mpmc_check(inner: &Inner, side: Side, how: Check) -> bool {
    let r = inner.region();
    let ready =
        |r: &Region| if side == Side::Send { raw::send_ready(r) } else { raw::recv_ready(r) };
    if ready(r) {
        return true;
    }
    how.liveness && (recover_blocked(r, side) && ready(r) || inner.peers_gone(side))
}

/// A queue's sending side, for a selector: ready when a send would not block (room, closed,
/// every receiver dead). From [`Queue::writable`].
#[derive(Debug, Clone, Copy)]
pub struct Writable<'a>(&'a Queue);

impl Queue {
    /// This queue as a selector source that is ready when a send would not block (the
    /// queue itself, as a source, is ready when a receive would not).
    pub fn writable(&self) -> Writable<'_> {
        Writable(self)
    }

    /// Whether every process that ever sent on this queue is dead (then an empty queue stays
    /// empty: a blocking `recv` says `Disconnected`). `false` when nobody sent yet, or when
    /// too many processes sent for the queue to list them all.
    pub fn senders_gone(&self) -> bool {
        self.inner.peers_gone(Side::Recv)
    }

    /// Whether every process that ever received from this queue is dead (a blocking `send`
    /// on a full queue says `Disconnected`).
    pub fn receivers_gone(&self) -> bool {
        self.inner.peers_gone(Side::Send)
    }
}

impl Waitable for Queue {
    fn event_count(&self) -> Option<&SelectableEventCount> {
        Some(&self.inner.region().ctrl().not_empty)
    }
    fn check(&self, how: Check) -> bool {
        mpmc_check(&self.inner, Side::Recv, how)
    }
    fn needs_liveness(&self) -> bool {
        true
    }
}

impl Waitable for Writable<'_> {
    fn event_count(&self) -> Option<&SelectableEventCount> {
        Some(&self.0.inner.region().ctrl().not_full)
    }
    fn check(&self, how: Check) -> bool {
        mpmc_check(&self.0.inner, Side::Send, how)
    }
    fn needs_liveness(&self) -> bool {
        true
    }
}

impl Receiver {
    /// Whether the producer role's holder died (a blocking `recv` says `Disconnected` once
    /// everything it published is received).
    pub fn producer_gone(&self) -> bool {
        let (_, hot) = self.select_parts();
        crate::spsc::holder_died(&hot.ctrl().prod_role)
    }
}

impl Sender {
    /// Whether the consumer role's holder died (a blocking `send` on a full queue says
    /// `Disconnected`).
    pub fn consumer_gone(&self) -> bool {
        let (_, hot) = self.select_parts();
        crate::spsc::holder_died(&hot.ctrl().cons_role)
    }
}

impl Waitable for Receiver {
    fn event_count(&self) -> Option<&SelectableEventCount> {
        Some(&self.select_parts().0.region().ctrl().not_empty)
    }
    fn check(&self, how: Check) -> bool {
        let (_, hot) = self.select_parts();
        proto::recv_ready(hot) || how.liveness && self.producer_gone()
    }
    fn needs_liveness(&self) -> bool {
        true
    }
}

impl Waitable for Sender {
    fn event_count(&self) -> Option<&SelectableEventCount> {
        Some(&self.select_parts().0.region().ctrl().not_full)
    }
    fn check(&self, how: Check) -> bool {
        let (_, hot) = self.select_parts();
        proto::send_ready(hot) || how.liveness && self.consumer_gone()
    }
    fn needs_liveness(&self) -> bool {
        true
    }
}

// An SpscQueue handle itself takes no role: select on its Sender or Receiver.
const _: fn(&SpscQueue) = |_| {};
