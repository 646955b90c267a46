//! [`Selector`] and [`wait_any`]: register sources, then sleep once on all of them.

use std::time::{Duration, Instant};

use ipc_shm::Deadline;
use ipc_shm::event_count::bell::{self, Doorbell, UNREACHABLE_CAP};
use ipc_shm::event_count::{BellSlot, Check, FALLBACK_SLICE, Waitable};
use ipc_shm::wait::Schedule;
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::io::Errno;

use crate::error::{Error, Result};

/// The index of a source in its [`Selector`], in the order of [`add`](Selector::add) (0, 1,
/// ...), as [`wait`](Selector::wait) reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(pub usize);

/// Waits on many [`Waitable`] sources at once (queues, semaphores, events, connections,
/// listeners, child processes) in one `poll` sleep. See the crate docs for how it wakes.
pub struct Selector<'a> {
    bell: Doorbell,
    sources: Vec<&'a dyn Waitable>,
    ready: Vec<Key>,
    /// A notifier could not reach our doorbell once (another network namespace): from then
    /// on every sleep is capped at `FALLBACK_SLICE`.
    unreachable: bool,
}

impl std::fmt::Debug for Selector<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Selector")
            .field("doorbell", &self.bell.id())
            .field("sources", &self.sources.len())
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

impl<'a> Selector<'a> {
    /// A selector with no sources (binds its doorbell).
    ///
    /// # Errors
    /// [`Error::Doorbell`].
    pub fn new() -> Result<Selector<'a>> {
        let bell = Doorbell::new().map_err(|source| Error::Doorbell { op: "create", source })?;
        Ok(Selector { bell, sources: Vec::new(), ready: Vec::new(), unreachable: false })
    }

    /// Add a source; its key is its index (the number of sources added before it).
    pub fn add<W: Waitable + 'a>(&mut self, source: &'a W) -> Key {
        self.sources.push(source);
        Key(self.sources.len() - 1)
    }

    /// Add a source given as a trait object.
    pub fn add_dyn(&mut self, source: &'a dyn Waitable) -> Key {
        self.sources.push(source);
        Key(self.sources.len() - 1)
    }

    /// The number of sources.
    pub fn len(&self) -> usize {
        self.sources.len()
    }

    /// Whether no source was added.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// A handle that wakes this selector's waits from elsewhere.
    pub fn waker(&self) -> Waker {
        Waker { id: self.bell.id() }
    }

    /// Block until at least one source is ready; returns every source ready at that moment
    /// (level-triggered: another process may take it first, the source's `try_` call then
    /// says so).
    ///
    /// # Errors
    /// [`Error::Poll`].
    pub fn wait(&mut self) -> Result<&[Key]> {
        self.wait_deadline("wait", Deadline::NEVER)
    }

    /// As [`wait`](Self::wait), for `timeout` at most; an empty slice when it passed with
    /// nothing ready (or a [`Waker`] woke it). A huge timeout waits for ever.
    ///
    /// # Errors
    /// [`Error::Poll`].
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<&[Key]> {
        self.wait_deadline("wait", Deadline::after(timeout))
    }

    /// As [`wait`](Self::wait), until `deadline` at most.
    ///
    /// # Errors
    /// [`Error::Poll`].
    pub fn wait_until(&mut self, deadline: Instant) -> Result<&[Key]> {
        self.wait_deadline("wait", Deadline::at(deadline))
    }

    /// Which sources are ready now, without sleeping (the fds are polled with a zero
    /// timeout, and dead peers are looked for).
    ///
    /// # Errors
    /// [`Error::Poll`].
    pub fn try_wait(&mut self) -> Result<&[Key]> {
        self.ready.clear();
        for (i, s) in self.sources.iter().enumerate() {
            if s.check(Check { arm: false, liveness: true }) {
                self.ready.push(Key(i));
            }
        }
        poll_fds(&self.sources, None, Some(Duration::ZERO), &mut self.ready, "try_wait")?;
        self.ready.sort_unstable();
        self.ready.dedup();
        Ok(&self.ready)
    }

    fn wait_deadline(&mut self, op: &'static str, deadline: Deadline) -> Result<&[Key]> {
        self.ready.clear();
        let _ = self.bell.drain();
        let id = self.bell.id();
        let mut reg = Registered { sources: &self.sources, slots: Vec::new(), lost: false };
        let mut no_slot = false;
        let mut words = false;
        for s in &self.sources {
            let slot = s.event_count().and_then(|ec| {
                words = true;
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
            for (s, slot) in self.sources.iter().zip(&reg.slots) {
                if let (Some(ec), Some(_)) = (s.event_count(), slot) {
                    ec.set_fallback();
                }
            }
        }
        let liveness = self.sources.iter().any(|s| s.needs_liveness());
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
        let result = loop {
            for (i, s) in self.sources.iter().enumerate() {
                if s.check(Check { arm: true, liveness: look }) {
                    self.ready.push(Key(i));
                }
            }
            look = false;
            let mut until = deadline.earliest(Deadline::after(cap));
            if liveness {
                until = until.earliest(*slice.get_or_insert_with(|| schedule.next(deadline)));
            }
            let timeout =
                if self.ready.is_empty() { until.remaining() } else { Some(Duration::ZERO) };
            if let Err(e) = poll_fds(&self.sources, Some(&self.bell), timeout, &mut self.ready, op)
            {
                break Err(e);
            }
            let _ = self.bell.drain();
            if !self.ready.is_empty() {
                break Ok(());
            }
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
/// of ready fd sources.
fn poll_fds(
    sources: &[&dyn Waitable],
    bell: Option<&Doorbell>,
    timeout: Option<Duration>,
    ready: &mut Vec<Key>,
    op: &'static str,
) -> Result<()> {
    let mut fds = Vec::with_capacity(sources.len() + 1);
    let mut keys = Vec::with_capacity(sources.len());
    for (i, s) in sources.iter().enumerate() {
        if let Some(fd) = s.fd() {
            fds.push(PollFd::from_borrowed_fd(fd, PollFlags::IN));
            keys.push(Key(i));
        }
    }
    if let Some(b) = bell {
        fds.push(PollFd::new(b, PollFlags::IN));
    }
    if fds.is_empty() && timeout == Some(Duration::ZERO) {
        return Ok(());
    }
    let ts = timeout.map(|t| Timespec {
        tv_sec: i64::try_from(t.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(t.subsec_nanos()),
    });
    match poll(&mut fds, ts.as_ref()) {
        Ok(_) | Err(Errno::INTR) => {}
        Err(e) => return Err(Error::Poll { op, source: e.into() }),
    }
    for (fd, key) in fds.iter().zip(keys) {
        if !fd.revents().is_empty() {
            ready.push(key);
        }
    }
    Ok(())
}

/// Wait until at least one of `sources` is ready or `timeout` passes (`None`: for ever);
/// returns the indices of those ready (empty: timed out), like Python's
/// `multiprocessing.connection.wait`. A [`Selector`] made for one call.
///
/// # Errors
/// [`Error::Doorbell`], [`Error::Poll`].
pub fn wait_any(sources: &[&dyn Waitable], timeout: Option<Duration>) -> Result<Vec<usize>> {
    let mut sel = Selector::new()?;
    for s in sources {
        sel.add_dyn(*s);
    }
    let keys = match timeout {
        None => sel.wait()?,
        Some(t) => sel.wait_timeout(t)?,
    };
    Ok(keys.iter().map(|k| k.0).collect())
}
