//! [`Waitable`]: what a selector (the `ipc-select` crate) or an async future needs from a
//! primitive to wait on it together with others: the event count its notifiers wake (where
//! the waiter registers a doorbell), or an fd that polls readable, and an exact readiness
//! check. Implemented next to each primitive (ipc-queue, ipc-sem, ipc-pipe, ipc-process).

use std::os::fd::BorrowedFd;

use super::SelectableEventCount;

/// How a selector calls [`Waitable::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Check {
    /// The caller is about to sleep if this says "not ready": a primitive whose notifier
    /// wakes only a flagged waiter (a semaphore, an event) sets its flag now, so the next
    /// change rings the doorbells registered on its event count.
    pub arm: bool,
    /// A liveness slice ended: also look at the peers (recover what a dead one left
    /// half-done, report "every peer is dead" as ready), the slow part of a blocking call.
    pub liveness: bool,
}

/// Something a selector can wait on alongside others. Readiness is level-triggered and
/// honest: `check` says what holds *now*; another process may take it before the caller does
/// (the primitive's `try_` call then says so).
pub trait Waitable {
    /// The event count whose notifies mean "look again", with doorbell slots.
    fn event_count(&self) -> Option<&SelectableEventCount> {
        None
    }

    /// An fd whose `POLLIN` (or hang-up / error) means "ready".
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }

    /// Whether the object is ready now: a message, a free slot, a permit, the flag set, a
    /// buffered frame, or something the caller must learn of (closed, every peer dead,
    /// corrupted). For an fd source, what the fd alone does not show (a frame already read
    /// ahead into a buffer); the selector adds the fd's own readiness.
    fn check(&self, how: Check) -> bool;

    /// Whether a registration on [`event_count`](Self::event_count) must be followed by the
    /// heavy barrier ([`announce_barrier`](super::bell::announce_barrier)) before the check:
    /// `true` when the notifiers read `sleepers` (`notify_all` / `notify_one`). A flagged
    /// primitive, whose [`check`](Self::check) arms its flag with an RMW that the notifier's
    /// own RMW reads, returns `false`: that pair orders the registration already, and a
    /// selector over flagged sources only skips the barrier (a few µs: an IPI per CPU).
    fn needs_barrier(&self) -> bool {
        true
    }

    /// Whether waiting needs liveness slices: the object's blocking call finds dead peers
    /// by looking (a queue's producers), not by being woken. The selector then sleeps in
    /// [`Schedule`](crate::wait::Schedule) slices and checks with `liveness: true` after each.
    fn needs_liveness(&self) -> bool {
        false
    }
}

impl<W: Waitable + ?Sized> Waitable for &W {
    fn event_count(&self) -> Option<&SelectableEventCount> {
        (**self).event_count()
    }
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        (**self).fd()
    }
    fn check(&self, how: Check) -> bool {
        (**self).check(how)
    }
    fn needs_barrier(&self) -> bool {
        (**self).needs_barrier()
    }
    fn needs_liveness(&self) -> bool {
        (**self).needs_liveness()
    }
}
