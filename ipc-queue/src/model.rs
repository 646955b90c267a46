//! Under `--cfg ipc_loom` only: the MPMC algorithm and its waiters over heap memory that
//! loom tracks (atomics and payload cells), for the models in `tests/loom.rs`. The code that
//! runs is the crate's own (`raw.rs`, and ipc-shm's `EventCount`); only the memory differs.

use ipc_shm::Deadline;

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
