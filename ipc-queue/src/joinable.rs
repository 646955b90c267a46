//! [`JoinableQueue`]: Python's `multiprocessing.JoinableQueue`: every message put counts as an
//! unfinished task until a consumer calls [`task_done`](JoinableQueue::task_done);
//! [`join`](JoinableQueue::join) waits until none is left.

use std::ops::Deref;
use std::time::{Duration, Instant};

use ipc_shm::{Shm, ShmOptions};

use crate::error::{Error, JoinTimeoutError, Result, SendError, SendTimeoutError, TrySendError};
use crate::queue::{Queue, deadline_in};
use crate::sync::Ordering;

/// A byte MPMC [`Queue`] with a shared unfinished-task count (every `Queue` method is
/// available through `Deref`; use this type's `send`/`try_send`/`send_timeout`, which count).
///
/// A consumer killed before its `task_done` leaves its task unfinished forever (as in Python):
/// use [`join_timeout`](Self::join_timeout) when consumers may die.
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

    fn counted<T, E>(
        &self,
        send: impl FnOnce() -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        let ctrl = self.queue.region_ctrl();
        // Relaxed: the count is read by `join` with Acquire after task_done's Release; the
        // increment happens before the message is published (the send's Release).
        ctrl.unfinished.fetch_add(1, Ordering::Relaxed);
        let r = send();
        if r.is_err() {
            self.finish_one();
        }
        r
    }

    /// Put a message (an unfinished task), waiting while full.
    ///
    /// # Errors
    /// As [`Queue::send`].
    pub fn send<'m>(&self, msg: &'m [u8]) -> std::result::Result<(), SendError<&'m [u8]>> {
        self.counted(|| self.queue.send(msg))
    }

    /// Put without waiting.
    ///
    /// # Errors
    /// As [`Queue::try_send`].
    pub fn try_send<'m>(&self, msg: &'m [u8]) -> std::result::Result<(), TrySendError<&'m [u8]>> {
        self.counted(|| self.queue.try_send(msg))
    }

    /// Put, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`Queue::send_timeout`].
    pub fn send_timeout<'m>(
        &self,
        msg: &'m [u8],
        timeout: Duration,
    ) -> std::result::Result<(), SendTimeoutError<&'m [u8]>> {
        self.counted(|| self.queue.send_timeout(msg, timeout))
    }

    fn finish_one(&self) -> bool {
        let ctrl = self.queue.region_ctrl();
        // Relaxed: the CAS below is what counts.
        let mut cur = ctrl.unfinished.load(Ordering::Relaxed);
        loop {
            if cur == 0 {
                return false;
            }
            // AcqRel: Release publishes the consumer's work to `join`'s Acquire load.
            // Relaxed on failure: retry with the fresh value.
            match ctrl.unfinished.compare_exchange_weak(
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
            ctrl.all_done.notify();
        }
        true
    }

    /// Mark one received task done.
    ///
    /// # Errors
    /// [`Error::TooManyTaskDone`] if more tasks were marked done than were put.
    pub fn task_done(&self) -> Result<()> {
        if self.finish_one() {
            Ok(())
        } else {
            Err(Error::TooManyTaskDone { name: self.queue.name().to_owned() })
        }
    }

    /// Tasks put and not yet marked done.
    pub fn unfinished(&self) -> u64 {
        // Acquire: pairs with the Release in task_done.
        self.queue.region_ctrl().unfinished.load(Ordering::Acquire)
    }

    /// Wait until every task put was marked done (without limit).
    pub fn join(&self) {
        let _ = self.join_deadline(None);
    }

    /// Wait at most `timeout` until every task was marked done.
    ///
    /// # Errors
    /// [`JoinTimeoutError::Timeout`] with the count still unfinished.
    pub fn join_timeout(&self, timeout: Duration) -> std::result::Result<(), JoinTimeoutError> {
        self.join_deadline(deadline_in(timeout))
    }

    fn join_deadline(
        &self,
        deadline: Option<Instant>,
    ) -> std::result::Result<(), JoinTimeoutError> {
        let ctrl = self.queue.region_ctrl();
        loop {
            let left = self.unfinished();
            if left == 0 {
                return Ok(());
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(JoinTimeoutError::Timeout(left));
            }
            ctrl.all_done.wait(|| self.unfinished() == 0, deadline);
        }
    }
}
