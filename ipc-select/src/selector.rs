//! [`Selector`] and [`wait_any`]: register sources, then sleep once on all of them.

use std::time::{Duration, Instant};

use ipc_shm::Deadline;
use ipc_shm::event_count::bell::{self, Doorbell, UNREACHABLE_CAP};
use ipc_shm::event_count::{BellSlot, Check, FALLBACK_SLICE, Waitable};
use ipc_shm::wait::Schedule;
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::io::Errno;

use crate::error::{Error, Result};

/// Waits on many [`Waitable`] sources at once (queues, semaphores, events, connections,
/// listeners, child processes) in one `poll` sleep. See the crate docs for how it wakes.
///
/// The sources are given to each call (as to Python's `multiprocessing.connection.wait`),
/// so they are borrowed only while it waits: the caller receives from them (`&mut`) between
/// waits. The selector keeps its doorbell socket from one wait to the next.
pub struct Selector {
    bell: Doorbell,
    ready: Vec<usize>,
    /// A notifier could not reach our doorbell once (another network namespace): from then
    /// on every sleep is capped at `FALLBACK_SLICE`.
    unreachable: bool,
    stats: Stats,
}

/// Counters of a [`Selector`]'s waits, for tests and diagnostics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Blocking waits (`wait`, `wait_timeout`, `wait_until`).
    pub waits: u64,
    /// Sleeps ended by a doorbell ring.
    pub rings: u64,
    /// Readiness found only after a sleep that ended by its time cap with no ring and no fd:
    /// a dead peer found by a liveness look, a source polled without a doorbell slot, or a
    /// wake-up that came late (a notifier between its change and its ring at that instant).
    /// With live peers and free slots it stays at (about) zero.
    pub late: u64,
}

impl std::fmt::Debug for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Selector")
            .field("doorbell", &self.bell.id())
            .field("unreachable", &self.unreachable)
            .finish()
    }
}

/// Wakes a [`Selector`] from another thread (or, knowing the id, another process of the same
/// network namespace): its wait returns, reporting whatever is ready (perhaps nothing).
#[derive(Debug, Clone, Copy)]
pub struct Waker {
    id: u32,
}

impl Waker {
    /// Ring the selector's doorbell. `false` if it is gone.
    pub fn wake(&self) -> bool {
        bell::ring(self.id) != bell::Rang::Gone
    }
}

/// One wait's registrations, withdrawn on drop (also on a panic in a source's `check`).
struct Registered<'s, 'a> {
    sources: &'s [&'a dyn Waitable],
    slots: Vec<Option<BellSlot>>,
    lost: bool,
}

impl Registered<'_, '_> {
    /// Withdraw every registration; `true` if a notifier had cleared one of them first
    /// (found the doorbell unreachable, see `ipc_shm::event_count::bell`).
    fn release(&mut self) -> bool {
        for (s, slot) in self.sources.iter().zip(self.slots.drain(..)) {
            if let (Some(ec), Some(slot)) = (s.event_count(), slot) {
                self.lost |= !ec.deregister(slot);
            }
        }
        self.lost
    }
}

impl Drop for Registered<'_, '_> {
    fn drop(&mut self) {
        self.release();
    }
}

impl Selector {
    /// A selector (binds its doorbell).
    ///
    /// # Errors
    /// [`Error::Doorbell`].
    pub fn new() -> Result<Selector> {
        let bell = Doorbell::new().map_err(|source| Error::Doorbell { op: "create", source })?;
        Ok(Selector { bell, ready: Vec::new(), unreachable: false, stats: Stats::default() })
    }

    /// The counters of this selector's waits.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// A handle that wakes this selector's waits from elsewhere.
    pub fn waker(&self) -> Waker {
        Waker { id: self.bell.id() }
    }

    /// Block until at least one of `sources` is ready; returns the indices (into `sources`,
    /// ascending) of every one ready at that moment (level-triggered: another process may
    /// take it first, the source's `try_` call then says so).
    ///
    /// # Errors
    /// [`Error::Poll`].
    pub fn wait(&mut self, sources: &[&dyn Waitable]) -> Result<&[usize]> {
        self.wait_deadline("wait", sources, Deadline::NEVER)
    }

    /// As [`wait`](Self::wait), for `timeout` at most; an empty slice when it passed with
    /// nothing ready (or a [`Waker`] woke it). A huge timeout waits for ever.
    ///
    /// # Errors
    /// [`Error::Poll`].
    pub fn wait_timeout(
        &mut self,
        sources: &[&dyn Waitable],
        timeout: Duration,
    ) -> Result<&[usize]> {
        self.wait_deadline("wait", sources, Deadline::after(timeout))
    }

    /// As [`wait`](Self::wait), until `deadline` at most.
    ///
    /// # Errors
    /// [`Error::Poll`].
    pub fn wait_until(&mut self, sources: &[&dyn Waitable], deadline: Instant) -> Result<&[usize]> {
        self.wait_deadline("wait", sources, Deadline::at(deadline))
    }

    /// Which sources are ready now, without sleeping (the fds are polled with a zero
    /// timeout, and dead peers are looked for).
    ///
    /// # Errors
    /// [`Error::Poll`].
    pub fn try_wait(&mut self, sources: &[&dyn Waitable]) -> Result<&[usize]> {
        self.ready.clear();
        for (i, s) in sources.iter().enumerate() {
            if s.check(Check { arm: false, liveness: true }) {
                self.ready.push(i);
            }
        }
        let _ = poll_fds(sources, None, Some(Duration::ZERO), &mut self.ready, "try_wait")?;
        self.ready.sort_unstable();
        self.ready.dedup();
        Ok(&self.ready)
    }

    fn wait_deadline(
        &mut self,
        op: &'static str,
        sources: &[&dyn Waitable],
        deadline: Deadline,
    ) -> Result<&[usize]> {
        self.ready.clear();
        // A ring left from an earlier wait costs one spurious round below, not a syscall
        // here on every wait.
        let id = self.bell.id();
        let mut reg = Registered { sources, slots: Vec::new(), lost: false };
        let mut no_slot = false;
        let mut words = false;
        for s in sources {
            let slot = s.event_count().and_then(|ec| {
                words |= s.needs_barrier();
                let slot = ec.register(id);
                no_slot |= slot.is_none();
                slot
            });
            reg.slots.push(slot);
        }
        // Registered, now the barrier that orders the registrations before our checks for
        // notifiers on the fence path (see ipc_shm::event_count).
        let barrier_ok = !words || bell::announce_barrier();
        if !barrier_ok {
            for (s, slot) in sources.iter().zip(&reg.slots) {
                if let (Some(ec), Some(_), true) = (s.event_count(), slot, s.needs_barrier()) {
                    ec.set_fallback();
                }
            }
        }
        let liveness = sources.iter().any(|s| s.needs_liveness());
        // The longest sleep without a look: a slot-less registration, a barrier we could
        // not issue or a doorbell found unreachable poll in short slices; otherwise the
        // unreachable-doorbell bound.
        let cap = if no_slot || !barrier_ok || self.unreachable {
            FALLBACK_SLICE
        } else {
            UNREACHABLE_CAP
        };
        let mut schedule = Schedule::new();
        let mut slice: Option<Deadline> = None;
        let mut look = false;
        // The last sleep ended by its time cap, with no ring and no fd ready.
        let mut quiet = false;
        self.stats.waits += 1;
        let result = loop {
            for (i, s) in sources.iter().enumerate() {
                if s.check(Check { arm: true, liveness: look }) {
                    self.ready.push(i);
                }
            }
            if quiet && !self.ready.is_empty() {
                self.stats.late += 1;
            }
            look = false;
            let mut until = deadline.earliest(Deadline::after(cap));
            if liveness {
                until = until.earliest(*slice.get_or_insert_with(|| schedule.next(deadline)));
            }
            let timeout =
                if self.ready.is_empty() { until.remaining() } else { Some(Duration::ZERO) };
            let rang = match poll_fds(sources, Some(&self.bell), timeout, &mut self.ready, op) {
                Ok(true) => self.bell.drain(),
                Ok(false) => false,
                Err(e) => break Err(e),
            };
            self.stats.rings += u64::from(rang);
            if !self.ready.is_empty() {
                break Ok(());
            }
            quiet = !rang;
            if deadline.has_passed() {
                break Ok(());
            }
            if slice.is_some_and(Deadline::has_passed) {
                // A whole slice: look at the peers (the slow part of a blocking call).
                look = true;
                slice = None;
            }
        };
        let lost = reg.release();
        drop(reg);
        self.unreachable |= lost;
        result?;
        self.ready.sort_unstable();
        self.ready.dedup();
        Ok(&self.ready)
    }
}

/// Poll the sources' fds (and the doorbell) for `timeout` (`None`: for ever); push the keys
/// of ready fd sources. `true` if the doorbell is readable.
fn poll_fds(
    sources: &[&dyn Waitable],
    bell: Option<&Doorbell>,
    timeout: Option<Duration>,
    ready: &mut Vec<usize>,
    op: &'static str,
) -> Result<bool> {
    let mut fds = Vec::with_capacity(sources.len() + 1);
    let mut keys = Vec::with_capacity(sources.len());
    for (i, s) in sources.iter().enumerate() {
        if let Some(fd) = s.fd() {
            fds.push(PollFd::from_borrowed_fd(fd, PollFlags::IN));
            keys.push(i);
        }
    }
    if let Some(b) = bell {
        fds.push(PollFd::new(b, PollFlags::IN));
    }
    if fds.is_empty() && timeout == Some(Duration::ZERO) {
        return Ok(false);
    }
    let ts = timeout.map(|t| Timespec {
        tv_sec: i64::try_from(t.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(t.subsec_nanos()),
    });
    match poll(&mut fds, ts.as_ref()) {
        Ok(_) | Err(Errno::INTR) => {}
        Err(e) => return Err(Error::Poll { op, source: e.into() }),
    }
    for (fd, key) in fds.iter().zip(&keys) {
        if !fd.revents().is_empty() {
            ready.push(*key);
        }
    }
    Ok(bell.is_some() && fds.get(keys.len()).is_some_and(|b| !b.revents().is_empty()))
}

/// Wait until at least one of `sources` is ready or `timeout` passes (`None`: for ever);
/// returns the indices of those ready (empty: timed out), like Python's
/// `multiprocessing.connection.wait`. A [`Selector`] made for one call.
///
/// # Errors
/// [`Error::Doorbell`], [`Error::Poll`].
pub fn wait_any(sources: &[&dyn Waitable], timeout: Option<Duration>) -> Result<Vec<usize>> {
    let mut sel = Selector::new()?;
    let ready = match timeout {
        None => sel.wait(sources)?,
        Some(t) => sel.wait_timeout(sources, t)?,
    };
    Ok(ready.to_vec())
}
