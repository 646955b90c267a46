//! [`ready`]: await a [`Waitable`] under tokio on the doorbell model (feature `tokio`): the
//! future registers a doorbell on the source's event count, checks (arming the source's
//! flag), and awaits the doorbell's socket in tokio's reactor (`AsyncFd`: no helper thread,
//! no busy polling), or the next liveness slice for a source whose dead peers are found by
//! looking. An fd source (a pipe, a child's pidfd) is awaited through a duplicate of its fd
//! in the reactor. Dropping the future (a cancelled `select!` branch, a timeout) deregisters the
//! doorbell and takes nothing: the callers take their message or permit with a `try_` call
//! after the await, synchronously.
//!
//! Doorbells are pooled per process (binding one costs a `socket` and a `bind`); a forked
//! child never reuses its parent's (they would share one socket).
#![allow(unsafe_code)] // AsyncFd::register (its contract: the fd stays open while registered)

use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::bell::{self, Doorbell, UNREACHABLE_CAP};
use super::{Check, FALLBACK_SLICE, Waitable};
use crate::Deadline;
use crate::wait::Schedule;

/// Idle doorbells of this process (with the pid that made them).
static POOL: Mutex<Vec<(u32, Doorbell)>> = Mutex::new(Vec::new());
/// Doorbells kept idle at most.
const POOL_MAX: usize = 16;

fn take_bell() -> Option<Doorbell> {
    let me = std::process::id();
    let mut pool = POOL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // A forked child's copies share their sockets with the parent: never use them here.
    // Dropping one closes only this process's fd (the parent's socket stays bound).
    while let Some((pid, b)) = pool.pop() {
        if pid == me {
            let _ = b.drain();
            return Some(b);
        }
        drop(b);
    }
    drop(pool);
    Doorbell::new().ok()
}

fn give_bell(b: Doorbell) {
    let mut pool = POOL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if pool.len() < POOL_MAX {
        pool.push((std::process::id(), b));
    }
}

/// The registration of one await, withdrawn on drop (completion or cancellation).
struct Registration<'a, W: Waitable + ?Sized> {
    source: &'a W,
    slot: Option<super::BellSlot>,
    bell: Option<AsyncFd<Doorbell>>,
    /// A duplicate of the source's own fd (a pipe, a pidfd) in the reactor.
    fd: Option<AsyncFd<OwnedFd>>,
}

/// A duplicate of `fd` registered for readability (readiness is a property of the shared
/// open file description, so the duplicate shows the source's).
fn register_fd(fd: BorrowedFd<'_>) -> Option<AsyncFd<OwnedFd>> {
    let dup = rustix::io::fcntl_dupfd_cloexec(fd, 0).ok()?;
    // SAFETY: `dup` is an OwnedFd moved into the AsyncFd: a valid open fd that nothing else
    // can close or replace, whose `as_raw_fd` stays the same for as long as the AsyncFd
    // lives (tokio's contract for `register`).
    unsafe { AsyncFd::register_with_interest(dup, Interest::READABLE) }.ok()
}

impl<W: Waitable + ?Sized> Drop for Registration<'_, W> {
    fn drop(&mut self) {
        if let (Some(ec), Some(slot)) = (self.source.event_count(), self.slot.take()) {
            let _ = ec.deregister(slot);
        }
        if let Some(fd) = self.bell.take() {
            give_bell(fd.into_inner());
        }
    }
}

/// Wait (asynchronously, under a tokio runtime with I/O and time enabled) until `source`
/// is ready: its [`check`](Waitable::check) says so. Returns at once if it already is.
/// Without a doorbell (no socket could be made, no free slot) it polls in
/// [`FALLBACK_SLICE`]s; a source that needs liveness looks gets them on the
/// [`Schedule`] of the blocking calls, so a dead peer ends the wait within the same bound.
pub async fn ready<W: Waitable + ?Sized>(source: &W) {
    if source.check(Check { arm: false, liveness: false }) {
        return;
    }
    let mut reg = Registration { source, slot: None, bell: None, fd: None };
    if let Some(fd) = source.fd() {
        if rustix::event::poll(
            &mut [rustix::event::PollFd::from_borrowed_fd(fd, rustix::event::PollFlags::IN)],
            Some(&rustix::time::Timespec { tv_sec: 0, tv_nsec: 0 }),
        )
        .is_ok_and(|n| n > 0)
        {
            return;
        }
        reg.fd = register_fd(fd);
    }
    if let Some(ec) = source.event_count()
        && let Some(b) = take_bell()
    {
        reg.slot = ec.register(b.id());
        if reg.slot.is_some() {
            // SAFETY: the Doorbell owns its socket fd (an OwnedFd) and is moved into the
            // AsyncFd: nothing else closes or replaces it, and `as_raw_fd` returns the same
            // number for as long as the AsyncFd lives (tokio's contract for `register`).
            match unsafe { AsyncFd::register_with_interest(b, Interest::READABLE) } {
                Ok(fd) => reg.bell = Some(fd),
                Err(e) => {
                    give_bell(e.into_parts().0);
                    // No reactor for it: withdraw and poll instead.
                    if let Some(slot) = reg.slot.take() {
                        let _ = ec.deregister(slot);
                    }
                }
            }
        } else {
            give_bell(b);
        }
    }
    // Registered, now the barrier that orders the registration before our checks (see the
    // event count's docs); without it, notifiers take the RMW path and we poll in slices.
    let mut fallback = reg.bell.is_none() && reg.fd.is_none();
    if let (Some(ec), Some(_)) = (source.event_count(), reg.slot)
        && source.needs_barrier()
        && !bell::announce_barrier()
    {
        ec.set_fallback();
        fallback = true;
    }
    let cap = if fallback { FALLBACK_SLICE } else { UNREACHABLE_CAP };
    let mut schedule = Schedule::new();
    let mut look = false;
    loop {
        if source.check(Check { arm: true, liveness: look }) {
            return;
        }
        let mut until = Deadline::after(cap);
        if source.needs_liveness() {
            until = until.earliest(schedule.next(Deadline::NEVER));
        }
        let sleep = until.remaining().unwrap_or(Duration::ZERO);
        look = false;
        let rung = async {
            match &reg.bell {
                Some(bell) => {
                    if let Ok(mut guard) = bell.readable().await {
                        let _ = guard.get_inner().drain();
                        guard.clear_ready();
                    }
                }
                None => std::future::pending().await,
            }
        };
        let fd_ready = async {
            match &reg.fd {
                // Level: the fd stays readable; the source's own call consumes it.
                Some(fd) => drop(fd.readable().await),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = rung => {}
            () = fd_ready => return,
            () = tokio::time::sleep(sleep) => look = true,
        }
    }
}
