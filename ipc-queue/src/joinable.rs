//! [`JoinableQueue`]: Python's `multiprocessing.JoinableQueue`: every message put counts as an
//! unfinished task until a consumer calls [`task_done`](JoinableQueue::task_done);
//! [`join`](JoinableQueue::join) waits until none is left.
//!
//! The count is not a counter a producer bumps before it sends (a producer killed between the
//! bump and the commit would leave a task nobody can ever finish): it is derived. A task is a
//! message committed to the queue and not yet released (a slot READY or READING), or one a
//! consumer received through this type and has not yet marked done (`in_progress`, bumped
//! before the slot is released). So a producer killed mid-send leaves no task behind, and a
//! consumer killed while it holds a claimed slot loses that message (recovered as lost, no
//! longer a task). A consumer killed after receiving and before `task_done` leaves its task
//! unfinished, as in Python: use [`join_timeout`](JoinableQueue::join_timeout) when consumers
//! may die.

use std::ops::Deref;
use std::time::Duration;

use ipc_shm::{Deadline, Shm, ShmOptions};

use crate::error::{Error, JoinTimeoutError, RecvError, RecvTimeoutError, Result, TryRecvError};
use crate::queue::{Queue, RecvRef, recv_timeout_err, try_recv_err};
use crate::raw;
use crate::sync::Ordering;

/// How often a waiting `join` looks for slots of dead processes to recover, and re-counts
/// (messages received through a plain [`Queue`] handle finish without a notification).
///
/// Not ipc-shm's liveness schedule (`wait::Schedule`, slices of 1 to 32 ms), on purpose:
/// that schedule paces one liveness query of one peer, while each look here is a sweep of
/// every slot of the ring (a cache line per slot, a query per claimed one), whose cost grows
/// with the capacity; `join` is not latency-sensitive, so the sweep runs at a fixed, slower
/// pace.
const JOIN_CHECK: Duration = Duration::from_millis(100);

/// A byte MPMC [`Queue`] whose messages are tasks (every `Queue` method is available through
/// `Deref`; receive through this type's methods, which count the task as in progress until
/// [`task_done`](Self::task_done)). Every message in the queue is a task, whoever sent it.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use ipc_queue::JoinableQueue;
/// let q = JoinableQueue::anonymous(8, 64)?;
/// q.send(b"job")?;
/// let job = q.recv()?;
/// assert_eq!(job, b"job");
/// q.task_done()?;
/// q.join();
/// assert!(q.task_done().is_err()); // one too many
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct JoinableQueue {
    queue: Queue,
}

impl Deref for JoinableQueue {
    type Target = Queue;

    fn deref(&self) -> &Queue {
        &self.queue
    }
}

impl JoinableQueue {
    /// Create a named joinable queue.
    ///
    /// # Errors
    /// As [`Queue::create`].
    pub fn create(name: &str, capacity: usize, max_message: usize) -> Result<Self> {
        Ok(JoinableQueue { queue: Queue::create(name, capacity, max_message)? })
    }

    /// Open a named joinable queue.
    ///
    /// # Errors
    /// As [`Queue::open`].
    pub fn open(name: &str) -> Result<Self> {
        Ok(JoinableQueue { queue: Queue::open_with(&ShmOptions::new(), name)? })
    }

    /// An anonymous joinable queue.
    ///
    /// # Errors
    /// As [`Queue::anonymous`].
    pub fn anonymous(capacity: usize, max_message: usize) -> Result<Self> {
        Ok(JoinableQueue { queue: Queue::anonymous(capacity, max_message)? })
    }

    /// Adopt a segment received as an fd.
    ///
    /// # Errors
    /// As [`Queue::from_shm`].
    pub fn from_shm(shm: Shm) -> Result<Self> {
        Ok(JoinableQueue { queue: Queue::from_shm(shm)? })
    }

    /// Count a received task as in progress: called while its slot is still claimed, so
    /// the task is never uncounted in between.
    fn take_task(&self) {
        // AcqRel: Release orders the increment before the slot's release (a Release store
        // that `unfinished` acquires); pairs with the Acquire load in `unfinished`.
        self.queue.region_ctrl().in_progress.fetch_add(1, Ordering::AcqRel);
    }

    /// Receive a task without waiting.
    ///
    /// # Errors
    /// As [`Queue::try_recv`].
    pub fn try_recv(&self) -> std::result::Result<Vec<u8>, TryRecvError> {
        let mut v = Vec::new();
        self.try_recv_into(&mut v)?;
        Ok(v)
    }

    /// [`try_recv`](Self::try_recv) into `buf`; returns the length.
    ///
    /// # Errors
    /// As [`Queue::try_recv`].
    pub fn try_recv_into(&self, buf: &mut Vec<u8>) -> std::result::Result<usize, TryRecvError> {
        let c = self.queue.try_claim().map_err(try_recv_err)?;
        self.take_task();
        self.queue.take(c, buf);
        Ok(c.len)
    }

    /// Receive a task, waiting without limit.
    ///
    /// # Errors
    /// As [`Queue::recv`].
    pub fn recv(&self) -> std::result::Result<Vec<u8>, RecvError> {
        let mut v = Vec::new();
        self.recv_into(&mut v)?;
        Ok(v)
    }

    /// [`recv`](Self::recv) into `buf`; returns the length.
    ///
    /// # Errors
    /// As [`Queue::recv`].
    pub fn recv_into(&self, buf: &mut Vec<u8>) -> std::result::Result<usize, RecvError> {
        let c =
            self.queue.claim(Deadline::NEVER).map_err(|e| RecvError::from(recv_timeout_err(e)))?;
        self.take_task();
        self.queue.take(c, buf);
        Ok(c.len)
    }

    /// Receive a task, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`Queue::recv_timeout`].
    pub fn recv_timeout(
        &self,
        timeout: Duration,
    ) -> std::result::Result<Vec<u8>, RecvTimeoutError> {
        let c = self.queue.claim(Deadline::after(timeout)).map_err(recv_timeout_err)?;
        self.take_task();
        let mut v = Vec::new();
        self.queue.take(c, &mut v);
        Ok(v)
    }

    /// Zero-copy receive of a task (see [`Queue::recv_ref`]); the task stays in progress after
    /// the guard drops, until [`task_done`](Self::task_done).
    ///
    /// # Errors
    /// As [`Queue::recv`].
    pub fn recv_ref(&self) -> std::result::Result<RecvRef<'_>, RecvError> {
        let c =
            self.queue.claim(Deadline::NEVER).map_err(|e| RecvError::from(recv_timeout_err(e)))?;
        self.take_task();
        Ok(self.queue.lend(c))
    }

    /// [`recv_ref`](Self::recv_ref) without waiting.
    ///
    /// # Errors
    /// As [`Queue::try_recv`].
    pub fn try_recv_ref(&self) -> std::result::Result<RecvRef<'_>, TryRecvError> {
        let c = self.queue.try_claim().map_err(try_recv_err)?;
        self.take_task();
        Ok(self.queue.lend(c))
    }

    /// [`recv_ref`](Self::recv_ref) waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`Queue::recv_timeout`].
    pub fn recv_ref_timeout(
        &self,
        timeout: Duration,
    ) -> std::result::Result<RecvRef<'_>, RecvTimeoutError> {
        let c = self.queue.claim(Deadline::after(timeout)).map_err(recv_timeout_err)?;
        self.take_task();
        Ok(self.queue.lend(c))
    }

    /// Mark one received task done.
    ///
    /// # Errors
    /// [`Error::TooManyTaskDone`] if more tasks were marked done than were received.
    pub fn task_done(&self) -> Result<()> {
        let ctrl = self.queue.region_ctrl();
        // Relaxed: the CAS below is what counts.
        let mut cur = ctrl.in_progress.load(Ordering::Relaxed);
        loop {
            if cur == 0 {
                return Err(Error::TooManyTaskDone { name: self.queue.name().to_owned() });
            }
            // AcqRel: Release publishes the consumer's work to `join`'s Acquire load.
            // Relaxed on failure: retry with the fresh value.
            match ctrl.in_progress.compare_exchange_weak(
                cur,
                cur - 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        if cur == 1 {
            ctrl.all_done.notify_all();
        }
        Ok(())
    }

    /// Tasks unfinished: messages in the queue (committed, or lent to a consumer) plus tasks
    /// received and not yet marked done. A scan of the queue's slots.
    pub fn unfinished(&self) -> u64 {
        let queued = raw::committed(self.queue.region());
        // Acquire: pairs with the AcqRel increment in `take_task` and the Release of
        // `task_done`; read after the scan (see `raw::committed`).
        queued + self.queue.region_ctrl().in_progress.load(Ordering::Acquire)
    }

    /// Wait until every task was marked done (without limit). Processes that died holding a
    /// slot are recovered on the way (their messages are lost, not waited for).
    pub fn join(&self) {
        let _ = self.join_deadline(Deadline::NEVER);
    }

    /// Wait at most `timeout` until every task was marked done.
    ///
    /// # Errors
    /// [`JoinTimeoutError::Timeout`] with the count still unfinished.
    pub fn join_timeout(&self, timeout: Duration) -> std::result::Result<(), JoinTimeoutError> {
        self.join_deadline(Deadline::after(timeout))
    }

    fn join_deadline(&self, deadline: Deadline) -> std::result::Result<(), JoinTimeoutError> {
        let ctrl = self.queue.region_ctrl();
        loop {
            let left = self.unfinished();
            if left == 0 {
                return Ok(());
            }
            if deadline.has_passed() {
                return Err(JoinTimeoutError::Timeout(left));
            }
            let until = Deadline::after(JOIN_CHECK).earliest(deadline);
            ctrl.all_done.wait(|| self.unfinished() == 0, until);
            raw::recover_dead(self.queue.region());
        }
    }
}
