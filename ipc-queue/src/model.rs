//! Under `--cfg ipc_loom` only: the MPMC and SPSC algorithms and their waiters over heap
//! memory that loom tracks (atomics and payload cells), for the models in `tests/loom.rs`.
//! The code that runs is the crate's own (`raw.rs`, `raw/spsc.rs`, and ipc-shm's
//! `EventCount`); only the memory differs.

use std::sync::Arc;

use ipc_shm::Deadline;

use crate::raw::spsc::{self, Consumer, Nothing, Producer, Refused as SpscRefused};
use crate::raw::{self, ClaimErr, ReserveErr};
use crate::region::{Region, initialise};
use crate::ring::{self, Flavour};

/// A heap queue for loom models.
#[derive(Debug)]
pub struct Model {
    region: Region,
}

/// Outcome of a model receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Got {
    /// A message.
    Msg(Vec<u8>),
    /// Closed and drained.
    Closed,
}

impl Model {
    /// A queue of `capacity` (a power of two) slots of `max` bytes, positions from `start`.
    ///
    /// # Panics
    /// On an invalid configuration.
    pub fn new(capacity: usize, max: usize, start: u64) -> Model {
        let cfg = ring::plan(Flavour::Mpmc, capacity, max, 0, 0).expect("valid model config");
        let region = Region::heap(cfg);
        initialise(&region, &cfg, start);
        Model { region }
    }

    /// Send, sleeping while full (`me` is the owner id recorded in the slot).
    pub fn send(&self, me: u32, msg: &[u8]) -> bool {
        loop {
            match raw::try_reserve(&self.region, me, msg.len(), true) {
                Ok(pos) => {
                    self.region.write(pos, 0, msg);
                    raw::commit(&self.region, pos, msg.len());
                    return true;
                }
                Err(ReserveErr::Full { .. }) => {
                    let r = &self.region;
                    r.ctrl().not_full.wait(|| raw::send_ready(r), Deadline::NEVER);
                }
                Err(ReserveErr::Closed) => return false,
                Err(ReserveErr::Corrupted(c)) => panic!("corrupted: {c}"),
            }
        }
    }

    /// Reserve a slot and give it back without committing.
    pub fn cancel_one(&self, me: u32) -> bool {
        match raw::try_reserve(&self.region, me, 0, true) {
            Ok(pos) => {
                raw::cancel(&self.region, pos, me);
                true
            }
            Err(_) => false,
        }
    }

    /// Receive, sleeping while empty.
    pub fn recv(&self, me: u32) -> Got {
        loop {
            match raw::try_claim(&self.region, me) {
                Ok(c) => {
                    let mut v = vec![0u8; c.len];
                    self.region.read(c.pos, &mut v);
                    raw::release(&self.region, c.pos);
                    return Got::Msg(v);
                }
                Err(ClaimErr::Empty | ClaimErr::Pending { .. }) => {
                    let r = &self.region;
                    r.ctrl().not_empty.wait(|| raw::recv_ready(r), Deadline::NEVER);
                }
                Err(ClaimErr::Closed) => return Got::Closed,
                Err(ClaimErr::Corrupted(c)) => panic!("corrupted: {c}"),
            }
        }
    }

    /// Receive without waiting.
    pub fn try_recv(&self, me: u32) -> Option<Vec<u8>> {
        match raw::try_claim(&self.region, me) {
            Ok(c) => {
                let mut v = vec![0u8; c.len];
                self.region.read(c.pos, &mut v);
                raw::release(&self.region, c.pos);
                Some(v)
            }
            Err(_) => None,
        }
    }

    /// Close the queue.
    pub fn close(&self) {
        raw::close(&self.region);
    }

    /// Messages in the queue.
    pub fn len(&self) -> usize {
        raw::len(&self.region)
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A heap SPSC queue for loom models: the crate's SPSC algorithm
/// ([`raw::spsc`](crate::raw::spsc)) over loom-tracked memory. The roles (who may attach)
/// are ipc-shm's liveness decisions and are not modelled: a model attaches a side where a
/// process holding (or taking over) its role would.
#[derive(Debug)]
pub struct SpscModel {
    region: Region,
}

/// The producer side of an [`SpscModel`].
#[derive(Debug)]
pub struct SpscTx {
    q: Arc<SpscModel>,
    p: Producer,
}

/// The consumer side of an [`SpscModel`].
#[derive(Debug)]
pub struct SpscRx {
    q: Arc<SpscModel>,
    c: Consumer,
}

impl SpscModel {
    /// An SPSC queue of `capacity` (a power of two) slots of `max` bytes, positions from
    /// `start`.
    ///
    /// # Panics
    /// On an invalid configuration.
    pub fn new(capacity: usize, max: usize, start: u64) -> Arc<SpscModel> {
        let cfg = ring::plan(Flavour::Spsc, capacity, max, 0, 0).expect("valid model config");
        let region = Region::heap(cfg);
        initialise(&region, &cfg, start);
        Arc::new(SpscModel { region })
    }

    /// Attach as the producer (as `SpscQueue::sender` does once it holds the role).
    ///
    /// # Panics
    /// If the indices are corrupt.
    pub fn sender(self: &Arc<Self>) -> SpscTx {
        let p = Producer::attach(&self.region).expect("honest indices");
        SpscTx { q: self.clone(), p }
    }

    /// Attach as the consumer.
    ///
    /// # Panics
    /// If the indices are corrupt.
    pub fn receiver(self: &Arc<Self>) -> SpscRx {
        let c = Consumer::attach(&self.region).expect("honest indices");
        SpscRx { q: self.clone(), c }
    }

    /// Close the queue.
    pub fn close(&self) {
        raw::close(&self.region);
    }

    /// Messages in the queue.
    pub fn len(&self) -> usize {
        spsc::len(&self.region)
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl SpscTx {
    /// A slot for `len` bytes, sleeping while full; `None` once closed.
    fn slot(&mut self, len: usize) -> Option<u64> {
        let r = &self.q.region;
        loop {
            match self.p.try_slot(r, len) {
                Ok(pos) => return Some(pos),
                Err(SpscRefused::Full) => {
                    r.ctrl().not_full.wait(|| spsc::send_ready(r), Deadline::NEVER);
                }
                Err(SpscRefused::Closed) => return None,
                Err(e) => panic!("send: {e:?}"),
            }
        }
    }

    /// Send, sleeping while full; `false` once closed.
    pub fn send(&mut self, msg: &[u8]) -> bool {
        let Some(pos) = self.slot(msg.len()) else { return false };
        let r = &self.q.region;
        r.write(pos, 0, msg);
        self.p.publish(r, pos, pos, msg.len());
        true
    }

    /// Send, and die right after the stamp (before the head is published), as a producer
    /// SIGKILLed at the `queue.spsc.after_stamp` crash point; `false` once closed.
    pub fn send_and_die_after_stamp(mut self, msg: &[u8]) -> bool {
        let Some(pos) = self.slot(msg.len()) else { return false };
        let r = &self.q.region;
        r.write(pos, 0, msg);
        Producer::stamp(r, pos, pos, msg.len());
        true
    }
}

impl SpscRx {
    /// Receive, sleeping while empty.
    pub fn recv(&mut self) -> Got {
        let r = &self.q.region;
        loop {
            match self.c.try_next(r) {
                Ok((pos, len)) => {
                    let mut v = vec![0u8; len];
                    r.read(pos, &mut v);
                    self.c.advance(r, pos);
                    return Got::Msg(v);
                }
                Err(Nothing::Empty) => {
                    r.ctrl().not_empty.wait(|| spsc::recv_ready(r), Deadline::NEVER);
                }
                Err(Nothing::Closed) => return Got::Closed,
                Err(e) => panic!("recv: {e:?}"),
            }
        }
    }
}
