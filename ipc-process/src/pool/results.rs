//! Where a job's results land: one slot per item, filled by the supervisor (raw bytes or a
//! failure), taken and decoded by the caller's thread.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::error::{Error, ExitStatus, TaskError};
use crate::outcome::{Outcome, Reply};

/// Why an item has no reply from its worker.
#[derive(Debug)]
pub(crate) enum Failure {
    WorkerDied(ExitStatus),
    Timeout(Duration),
    Cancelled,
    Terminated,
    InitializerFailed(String),
    Lost(Error),
}

/// One item's raw outcome.
#[derive(Debug)]
pub(crate) enum Raw {
    /// The encoded reply: bytes `range` of a results batch.
    Reply(Arc<Vec<u8>>, std::ops::Range<usize>),
    Failed(Failure),
}

#[derive(Debug)]
enum Slot {
    Pending,
    Ready(Raw),
    Taken,
}

#[derive(Debug)]
struct State {
    slots: Vec<Slot>,
    /// Items not yet ready.
    remaining: usize,
    /// Ready items in completion order (for unordered iteration).
    order: VecDeque<u32>,
}

/// The results of one job.
#[derive(Debug)]
pub(crate) struct Results {
    state: Mutex<State>,
    ready: Condvar,
}

impl Results {
    pub(crate) fn new(n: usize) -> Arc<Results> {
        let slots = (0..n).map(|_| Slot::Pending).collect();
        Arc::new(Results {
            state: Mutex::new(State { slots, remaining: n, order: VecDeque::new() }),
            ready: Condvar::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Fill item `index`; the first outcome wins. Returns `false` for a second outcome of
    /// the same item (ignored: the pool counts these, which would be a bug).
    pub(crate) fn set(&self, index: u32, raw: Raw) -> bool {
        let mut st = self.lock();
        let i = usize::try_from(index).unwrap_or(usize::MAX);
        if let Some(slot @ Slot::Pending) = st.slots.get_mut(i) {
            *slot = Slot::Ready(raw);
            st.remaining = st.remaining.saturating_sub(1);
            st.order.push_back(index);
            drop(st);
            self.ready.notify_all();
            return true;
        }
        false
    }

    /// Fill several items at once from one batch; returns how many were second outcomes
    /// (ignored, as in [`set`](Self::set)).
    pub(crate) fn set_batch(
        &self,
        first: u32,
        batch: &Arc<Vec<u8>>,
        ranges: &[std::ops::Range<usize>],
    ) -> u64 {
        let mut dup = 0;
        let mut st = self.lock();
        for (k, r) in ranges.iter().enumerate() {
            let index = first.saturating_add(u32::try_from(k).unwrap_or(u32::MAX));
            let i = usize::try_from(index).unwrap_or(usize::MAX);
            if let Some(slot @ Slot::Pending) = st.slots.get_mut(i) {
                *slot = Slot::Ready(Raw::Reply(Arc::clone(batch), r.clone()));
                st.remaining = st.remaining.saturating_sub(1);
                st.order.push_back(index);
            } else {
                dup += 1;
            }
        }
        drop(st);
        self.ready.notify_all();
        dup
    }

    pub(crate) fn is_ready(&self, index: u32) -> bool {
        let st = self.lock();
        matches!(
            st.slots.get(usize::try_from(index).unwrap_or(usize::MAX)),
            Some(Slot::Ready(_) | Slot::Taken)
        )
    }

    /// Take item `index` once ready, waiting until `deadline` (`None`: no limit).
    pub(crate) fn take(&self, index: u32, deadline: Option<Instant>) -> Option<Raw> {
        let i = usize::try_from(index).unwrap_or(usize::MAX);
        let mut st = self.lock();
        loop {
            match st.slots.get_mut(i) {
                Some(slot @ Slot::Ready(_)) => {
                    if let Slot::Ready(raw) = std::mem::replace(slot, Slot::Taken) {
                        return Some(raw);
                    }
                }
                Some(Slot::Pending) => {}
                Some(Slot::Taken) | None => return None,
            }
            st = wait(&self.ready, st, deadline)?;
        }
    }

    /// Take the next item to become ready (completion order), waiting until `deadline`.
    pub(crate) fn take_next(&self, deadline: Option<Instant>) -> Option<(u32, Raw)> {
        let mut st = self.lock();
        loop {
            while let Some(index) = st.order.pop_front() {
                let i = usize::try_from(index).unwrap_or(usize::MAX);
                if let Some(slot @ Slot::Ready(_)) = st.slots.get_mut(i)
                    && let Slot::Ready(raw) = std::mem::replace(slot, Slot::Taken)
                {
                    return Some((index, raw));
                }
            }
            if st.remaining == 0 {
                return None;
            }
            st = wait(&self.ready, st, deadline)?;
        }
    }
}

fn wait<'a>(
    cv: &Condvar,
    st: std::sync::MutexGuard<'a, State>,
    deadline: Option<Instant>,
) -> Option<std::sync::MutexGuard<'a, State>> {
    match deadline {
        None => Some(cv.wait(st).unwrap_or_else(PoisonError::into_inner)),
        Some(d) => {
            let left = d.checked_duration_since(Instant::now()).filter(|l| !l.is_zero())?;
            Some(cv.wait_timeout(st, left).unwrap_or_else(PoisonError::into_inner).0)
        }
    }
}

/// Decode one item's raw outcome as the task's typed result.
pub(crate) fn decode<O: Outcome>(raw: Raw, object: &str) -> Result<O::Value, TaskError<O::Error>> {
    match raw {
        Raw::Reply(batch, range) => {
            let bytes = batch.get(range).unwrap_or_default();
            match postcard::from_bytes::<Reply<O::Value, O::Error>>(bytes) {
                Ok(Reply::Ok(v)) => Ok(v),
                Ok(Reply::Err(e)) => Err(TaskError::Failed(e)),
                Ok(Reply::Panic(p)) => Err(TaskError::Panicked(p)),
                Ok(Reply::Lost(why)) => {
                    Err(TaskError::Lost(Error::codec("run task in", object, why)))
                }
                Err(e) => Err(TaskError::Lost(Error::codec("decode result from", object, e))),
            }
        }
        Raw::Failed(f) => Err(match f {
            Failure::WorkerDied(exit) => TaskError::WorkerDied { exit },
            Failure::Timeout(after) => TaskError::Timeout { after },
            Failure::Cancelled => TaskError::Cancelled,
            Failure::Terminated => TaskError::Terminated,
            Failure::InitializerFailed(message) => TaskError::InitializerFailed { message },
            Failure::Lost(e) => TaskError::Lost(e),
        }),
    }
}
