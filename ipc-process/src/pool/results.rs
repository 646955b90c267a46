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

/// An item's state. Replies point into a batch kept once per message (not an `Arc` per
/// item: a reference count bounced between the supervisor and the consumer for every item
/// costs more than the item).
#[derive(Debug)]
pub(crate) enum Slot {
    Pending,
    Reply {
        batch: u32,
        start: u32,
        end: u32,
    },
    /// Boxed: a slot stays 16 bytes (10^5 slots of a map are touched once each).
    Failed(Box<Failure>),
    Taken,
}

const _: () = assert!(size_of::<Slot>() <= 16);

#[derive(Debug)]
struct State {
    slots: Vec<Slot>,
    batches: Vec<Arc<Vec<u8>>>,
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
            state: Mutex::new(State {
                slots,
                batches: Vec::new(),
                remaining: n,
                order: VecDeque::new(),
            }),
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
        if !matches!(st.slots.get(i), Some(Slot::Pending)) {
            return false;
        }
        let slot = match raw {
            Raw::Failed(f) => Slot::Failed(Box::new(f)),
            Raw::Reply(batch, range) => {
                let b = u32::try_from(st.batches.len()).unwrap_or(u32::MAX);
                st.batches.push(batch);
                Slot::Reply { batch: b, start: to_u32(range.start), end: to_u32(range.end) }
            }
        };
        if let Some(s) = st.slots.get_mut(i) {
            *s = slot;
        }
        st.remaining = st.remaining.saturating_sub(1);
        st.order.push_back(index);
        drop(st);
        self.ready.notify_all();
        true
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
        let b = u32::try_from(st.batches.len()).unwrap_or(u32::MAX);
        st.batches.push(Arc::clone(batch));
        for (k, r) in ranges.iter().enumerate() {
            let index = first.saturating_add(u32::try_from(k).unwrap_or(u32::MAX));
            let i = usize::try_from(index).unwrap_or(usize::MAX);
            if let Some(slot @ Slot::Pending) = st.slots.get_mut(i) {
                *slot = Slot::Reply { batch: b, start: to_u32(r.start), end: to_u32(r.end) };
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
        !matches!(
            st.slots.get(usize::try_from(index).unwrap_or(usize::MAX)),
            Some(Slot::Pending) | None
        )
    }

    /// Take item `index` once ready, waiting until `deadline` (`None`: no limit).
    pub(crate) fn take(&self, index: u32, deadline: Option<Instant>) -> Option<Raw> {
        let i = usize::try_from(index).unwrap_or(usize::MAX);
        let mut st = self.lock();
        loop {
            match st.slots.get(i) {
                Some(Slot::Pending) => {}
                Some(Slot::Taken) | None => return None,
                Some(_) => return Some(take_slot(&mut st, i)),
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
                if !matches!(st.slots.get(i), Some(Slot::Pending | Slot::Taken) | None) {
                    return Some((index, take_slot(&mut st, i)));
                }
            }
            if st.remaining == 0 {
                return None;
            }
            st = wait(&self.ready, st, deadline)?;
        }
    }

    /// Wait until item `from` is ready, then take it and every ready item after it, in
    /// order, under one lock (fewer lock round trips with the supervisor than one per item).
    pub(crate) fn take_run(&self, from: u32, out: &mut Vec<Raw>) {
        let mut i = usize::try_from(from).unwrap_or(usize::MAX);
        let mut st = self.lock();
        loop {
            match st.slots.get(i) {
                Some(Slot::Pending) => {}
                Some(Slot::Taken) | None => return,
                Some(_) => break,
            }
            st = self.ready.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
        while !matches!(st.slots.get(i), Some(Slot::Pending | Slot::Taken) | None) {
            out.push(take_slot(&mut st, i));
            i += 1;
        }
    }
}

fn to_u32(x: usize) -> u32 {
    u32::try_from(x).unwrap_or(u32::MAX)
}

fn take_slot(st: &mut State, i: usize) -> Raw {
    let Some(slot) = st.slots.get_mut(i) else { return Raw::Failed(Failure::Terminated) };
    match std::mem::replace(slot, Slot::Taken) {
        Slot::Reply { batch, start, end } => {
            let b = st.batches.get(usize::try_from(batch).unwrap_or(usize::MAX));
            match b {
                Some(b) => Raw::Reply(Arc::clone(b), start as usize..end as usize),
                None => Raw::Failed(Failure::Terminated),
            }
        }
        Slot::Failed(f) => Raw::Failed(*f),
        Slot::Pending | Slot::Taken => Raw::Failed(Failure::Terminated),
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
        Raw::Reply(batch, range) => decode_bytes::<O>(batch.get(range).unwrap_or_default(), object),
        Raw::Failed(f) => Err(failure::<O>(f)),
    }
}

/// Decode one encoded reply.
pub(crate) fn decode_bytes<O: Outcome>(
    bytes: &[u8],
    object: &str,
) -> Result<O::Value, TaskError<O::Error>> {
    {
        {
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
    }
}

/// The typed error of a failure.
pub(crate) fn failure<O: Outcome>(f: Failure) -> TaskError<O::Error> {
    match f {
        Failure::WorkerDied(exit) => TaskError::WorkerDied { exit },
        Failure::Timeout(after) => TaskError::Timeout { after },
        Failure::Cancelled => TaskError::Cancelled,
        Failure::Terminated => TaskError::Terminated,
        Failure::InitializerFailed(message) => TaskError::InitializerFailed { message },
        Failure::Lost(e) => TaskError::Lost(e),
    }
}
