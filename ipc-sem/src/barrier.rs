//! [`Barrier`]: `n` parties meet, generation after generation (Python's
//! `multiprocessing.Barrier`), and a party that dies while the others wait breaks it for all.
//!
//! The state word (the family's waiter word, an [`EventCount`], sits beside it):
//!
//! | bits | meaning |
//! |---|---|
//! | 0..12 | parties arrived in this generation and waiting |
//! | 12..29 | generation (wraps) |
//! | 29 (`RESET`) | this generation began with a `reset` |
//! | 30 (`SLEEPERS`) | a waiter may be asleep |
//! | 31 (`BROKEN`) | broken: every waiter returns `Broken` until `reset` |
//!
//! - arrive: one CAS `count -> count + 1`; the last party's CAS instead starts the next
//!   generation (`count = 0`, generation + 1) and wakes everyone: it is the leader.
//! - sleep: take a ticket from the event count, set `SLEEPERS` (CAS), sleep on the ticket
//!   until the word shows the end of the generation; every CAS that ends one (completion,
//!   break, reset) clears `SLEEPERS` and, if it was set, notifies (the event count's
//!   flagged-waiter protocol, [`EventCount::prepare_wait`]). The flag is the notifier's gate:
//!   a generation nobody sleeps through pays no wake-up, and a flag left by a killed party
//!   costs one, once.
//! - a waiter returns `Ok` when the generation moves on by a completion, `Broken` when the
//!   word says `BROKEN` or the generation moved on by a `reset`.
//! - break (a timeout, `abort`, a dead party): one CAS sets `BROKEN` in the current
//!   generation and wakes everyone.
//! - dead parties: before arriving, a party records `(generation, owner id)` in a slot of the
//!   arrival table. Sleepers wake at the end of each slice of [`ipc_shm::wait::Schedule`]
//!   (1 ms doubling to 32 ms) and check the liveness of the parties recorded for their
//!   generation; a `Dead` one breaks the barrier. A party killed between recording itself and
//!   arriving is dead and recorded: it breaks the barrier too (it will never arrive). A
//!   record liveness cannot judge (`Unknown`: garbage from a peer) breaks nothing: the
//!   waiters wait for the real parties, or until their deadline. Records of older generations
//!   are ignored. The first [`ARRIVAL_SLOTS`] waiting parties are recorded; more are not
//!   watched.
//!
//! All-zero is a valid state: a one-party barrier (the parties word holds `parties - 1`).

use std::fmt;
use std::time::{Duration, Instant};

use ipc_shm::liveness::{self, Status};
use ipc_shm::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use ipc_shm::wait::Schedule;
use ipc_shm::{Deadline, EventCount, OwnerId, ShmSafe};

use crate::error::{BarrierError, Error, Result};

const COUNT_MASK: u32 = (1 << 12) - 1;
const GEN_SHIFT: u32 = 12;
const GEN_MASK: u32 = ((1 << 17) - 1) << GEN_SHIFT;
const RESET: u32 = 1 << 29;
const SLEEPERS: u32 = 1 << 30;
const BROKEN: u32 = 1 << 31;
/// Odd: the check of zero is zero, so an all-zero barrier is valid.
const CHECK_MUL: u32 = 0xC2B2_AE35;

/// The most parties a barrier can have.
pub const MAX_PARTIES: u32 = COUNT_MASK;
/// Waiting parties recorded (and so watched for death) per generation.
pub const ARRIVAL_SLOTS: usize = 64;

fn generation(w: u32) -> u32 {
    (w & GEN_MASK) >> GEN_SHIFT
}

fn next_generation(w: u32) -> u32 {
    ((generation(w).wrapping_add(1) << GEN_SHIFT) & GEN_MASK) | (w & BROKEN)
}

/// A barrier in shared memory. See the module docs.
///
/// ```
/// use ipc_sem::Barrier;
///
/// let b = ipc_shm::Shared::anonymous(Barrier::new(2).unwrap()).unwrap();
/// std::thread::scope(|s| {
///     let other = s.spawn(|| b.wait().unwrap().is_leader());
///     let me = b.wait().unwrap().is_leader();
///     assert!(me ^ other.join().unwrap()); // exactly one leader
/// });
/// ```
#[repr(C)]
pub struct Barrier {
    state: AtomicU32,
    /// `parties - 1`, written once.
    parties_less_one: AtomicU32,
    /// `parties_less_one * CHECK_MUL`.
    check: AtomicU32,
    /// Where waiting parties sleep; notified by a CAS that ends a generation with `SLEEPERS`.
    waiters: EventCount,
    _reserved: [AtomicU32; 11],
    /// `(generation << 32) | owner id` of recorded waiting parties.
    arrivals: [AtomicU64; ARRIVAL_SLOTS],
}

#[cfg(not(ipc_loom))]
const _: () = assert!(size_of::<Barrier>() == 64 + 8 * ARRIVAL_SLOTS);
#[cfg(not(ipc_loom))]
const _: () = assert!(std::mem::offset_of!(Barrier, waiters) == 12);

#[allow(unsafe_code)] // the ShmSafe marker; its argument follows
// SAFETY: (1) atomics only (the event count is two); (2) every bit pattern is valid: a bad
// parties/check pair is reported as `Corrupted`, a garbage count makes the next arrival the
// leader, a garbage arrival record is an unknown party that breaks nothing (or, if it names
// a dead registration, a dead party: the barrier breaks and `reset` repairs), a garbage event
// count costs spurious wake-ups; all-zero is a one-party barrier; (3) atomic mutation only;
// (4) no Drop; (5) `#[repr(C)]`.
unsafe impl ShmSafe for Barrier {
    /// 2: waiters sleep on an `EventCount` (8 bytes at offset 12) instead of the state word.
    const LAYOUT_VERSION: u32 = 2;
    /// The arrival table stores owner ids: a process of another liveness registry is refused.
    const OWNER_IDS: bool = true;
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier")
            .field("parties", &self.parties().ok())
            .field("waiting", &self.n_waiting())
            .field("broken", &self.is_broken())
            .finish()
    }
}

/// What a successful [`Barrier::wait`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarrierWaitResult {
    leader: bool,
}

impl BarrierWaitResult {
    /// Whether this party was the leader of its generation: exactly one per generation (the
    /// last to arrive).
    pub fn is_leader(&self) -> bool {
        self.leader
    }
}

impl Barrier {
    /// A barrier for `parties` parties (1..=[`MAX_PARTIES`]).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for 0 or more than [`MAX_PARTIES`].
    pub fn new(parties: u32) -> Result<Barrier> {
        if parties == 0 || parties > MAX_PARTIES {
            return Err(Error::InvalidArgument {
                op: "create",
                object: "barrier",
                what: format!("parties must be 1..={MAX_PARTIES}, not {parties}"),
            });
        }
        let less = parties - 1;
        Ok(Barrier {
            state: AtomicU32::new(0),
            parties_less_one: AtomicU32::new(less),
            check: AtomicU32::new(less.wrapping_mul(CHECK_MUL)),
            waiters: EventCount::new(),
            _reserved: std::array::from_fn(|_| AtomicU32::new(0)),
            arrivals: std::array::from_fn(|_| AtomicU64::new(0)),
        })
    }

    fn parties_for(&self, op: &'static str) -> Result<u32, BarrierError> {
        // Relaxed: written before publication; a rewrite is caught by the check word.
        let less = self.parties_less_one.load(Ordering::Relaxed);
        let check = self.check.load(Ordering::Relaxed);
        if less < MAX_PARTIES && check == less.wrapping_mul(CHECK_MUL) {
            Ok(less + 1)
        } else {
            Err(BarrierError::Corrupted { op, found: less })
        }
    }

    /// The number of parties.
    ///
    /// # Errors
    /// [`BarrierError::Corrupted`].
    pub fn parties(&self) -> Result<u32, BarrierError> {
        self.parties_for("inspect")
    }

    /// Parties waiting now (0 when broken).
    pub fn n_waiting(&self) -> u32 {
        // Relaxed: a snapshot.
        let w = self.state.load(Ordering::Relaxed);
        if w & BROKEN != 0 { 0 } else { w & COUNT_MASK }
    }

    /// Whether the barrier is broken.
    pub fn is_broken(&self) -> bool {
        // Relaxed: a snapshot.
        self.state.load(Ordering::Relaxed) & BROKEN != 0
    }

    /// Wait for all parties, as long as it takes.
    ///
    /// # Errors
    /// [`BarrierError::Broken`] if the barrier is or becomes broken while this party waits.
    pub fn wait(&self) -> Result<BarrierWaitResult, BarrierError> {
        self.wait_deadline(Deadline::NEVER)
    }

    /// Wait for all parties, at most `timeout`. A timeout breaks the barrier for everyone.
    ///
    /// # Errors
    /// [`BarrierError::Timeout`] for this party, [`BarrierError::Broken`].
    pub fn wait_timeout(&self, timeout: Duration) -> Result<BarrierWaitResult, BarrierError> {
        self.wait_deadline(Deadline::after(timeout))
    }

    /// Wait for all parties until `deadline` at most (see [`wait_timeout`](Self::wait_timeout)).
    ///
    /// # Errors
    /// As [`wait_timeout`](Self::wait_timeout).
    pub fn wait_until(&self, deadline: Instant) -> Result<BarrierWaitResult, BarrierError> {
        self.wait_deadline(Deadline::at(deadline))
    }

    /// Break the barrier: every waiter, and every later `wait` until [`reset`](Self::reset),
    /// gets [`BarrierError::Broken`].
    pub fn abort(&self) {
        // Relaxed: the CAS synchronises.
        let cur = self.state.load(Ordering::Relaxed);
        self.break_generation(generation(cur));
    }

    /// Start afresh: waiters of the current generation get [`BarrierError::Broken`], and the
    /// barrier is no longer broken. (A party of a generation that just completed but has not
    /// run yet when `reset` lands may also see `Broken`: it cannot tell the two apart.)
    pub fn reset(&self) {
        // Relaxed: the CAS synchronises.
        let mut cur = self.state.load(Ordering::Relaxed);
        loop {
            let new = (next_generation(cur) & !BROKEN) | RESET;
            // AcqRel: orders the reset with arrivals on either side of it.
            match self.state.compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        if cur & SLEEPERS != 0 {
            self.wake();
        }
    }

    /// Wake the sleepers: called after a CAS that ended a generation found `SLEEPERS`.
    fn wake(&self) {
        self.waiters.notify_all_flagged();
    }

    /// Set BROKEN if the barrier is still in generation `gen`.
    fn break_generation(&self, gen_now: u32) {
        // Relaxed: the CAS synchronises.
        let mut cur = self.state.load(Ordering::Relaxed);
        loop {
            if generation(cur) != gen_now || cur & BROKEN != 0 {
                return;
            }
            let new = (cur | BROKEN) & !SLEEPERS;
            // AcqRel: as in `reset`.
            match self.state.compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        if cur & SLEEPERS != 0 {
            self.wake();
        }
    }

    /// Record `me` as a waiting party of generation `gen` in a free arrival slot.
    fn record(&self, gen_now: u32, start: u32, me: u32) {
        let entry = (u64::from(gen_now) << 32) | u64::from(me);
        for k in 0..ARRIVAL_SLOTS {
            let i = (start as usize + k) % ARRIVAL_SLOTS;
            let Some(slot) = self.arrivals.get(i) else { continue };
            // Relaxed: the CAS decides; the arrival CAS that follows publishes it.
            let cur = slot.load(Ordering::Relaxed);
            let (owner, g) = (cur as u32, (cur >> 32) as u32);
            if (owner == 0 || g != gen_now)
                && slot.compare_exchange(cur, entry, Ordering::Relaxed, Ordering::Relaxed).is_ok()
            {
                return;
            }
        }
    }

    /// Whether a party recorded for generation `gen` is dead.
    fn dead_party(&self, gen_now: u32, me: u32) -> bool {
        let mut asked: Vec<u32> = Vec::new();
        for slot in &self.arrivals {
            // Acquire: pairs with the AcqRel arrival CAS chain (the record precedes it).
            let cur = slot.load(Ordering::Acquire);
            let (owner, g) = (cur as u32, (cur >> 32) as u32);
            if owner == 0 || owner == me || g != gen_now || asked.contains(&owner) {
                continue;
            }
            // Only `Dead` breaks the barrier: `Unknown` (garbage) never does.
            if liveness::status_raw(owner) == Status::Dead {
                return true;
            }
            asked.push(owner);
        }
        false
    }

    fn wait_deadline(&self, deadline: Deadline) -> Result<BarrierWaitResult, BarrierError> {
        let parties = self.parties_for("wait")?;
        // A party nobody can check for death must not arrive: if it died waiting, the others
        // would never learn it and wait for ever.
        let me = liveness::current().map(OwnerId::get).map_err(|_| BarrierError::Unregistered)?;
        // Acquire: pairs with the AcqRel CASes of the other parties.
        let mut cur = self.state.load(Ordering::Acquire);
        let mut recorded: Option<u32> = None;
        let gen_now = loop {
            if cur & BROKEN != 0 {
                return Err(BarrierError::Broken);
            }
            let count = cur & COUNT_MASK;
            if count + 1 >= parties {
                // The last party (or a garbage count): start the next generation.
                let new = next_generation(cur);
                // AcqRel: acquires every arrival of this generation (their CASes form a
                // release sequence on this word) and releases to the waiters.
                match self.state.compare_exchange_weak(
                    cur,
                    new,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        if cur & SLEEPERS != 0 {
                            self.wake();
                        }
                        return Ok(BarrierWaitResult { leader: true });
                    }
                    Err(actual) => {
                        cur = actual;
                        continue;
                    }
                }
            }
            let g = generation(cur);
            if recorded != Some(g) {
                self.record(g, count, me);
                recorded = Some(g);
                ipc_shm::crash::point("barrier.recorded");
            }
            // AcqRel: as above.
            match self.state.compare_exchange_weak(
                cur,
                cur + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break g,
                Err(actual) => cur = actual,
            }
        };
        ipc_shm::crash::point("barrier.arrived");
        let mut schedule = Schedule::new();
        loop {
            // Before the word is read and flagged (see EventCount::prepare_wait).
            let ticket = self.waiters.prepare_wait();
            // Acquire: pairs with the leader's (or a reset's) AcqRel CAS.
            let cur = self.state.load(Ordering::Acquire);
            if let Some(done) = outcome(cur, gen_now) {
                return done;
            }
            if deadline.has_passed() {
                self.break_generation(gen_now);
                // Acquire: as above. The generation may have completed just before the break.
                let now = self.state.load(Ordering::Acquire);
                return match outcome(now, gen_now) {
                    Some(Ok(r)) => Ok(r),
                    _ => Err(BarrierError::Timeout),
                };
            }
            // Relaxed: the flag and the CASes that clear it are on this one word; the ticket
            // taken before does the rest (EventCount::prepare_wait).
            if cur & SLEEPERS == 0
                && self
                    .state
                    .compare_exchange(cur, cur | SLEEPERS, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            // A slice with no end of the generation: is a recorded party dead?
            if !self.waiters.sleep(ticket, schedule.next(deadline)) && self.dead_party(gen_now, me)
            {
                self.break_generation(gen_now);
            }
        }
    }
}

/// The end of a wait in generation `gen_now`, if the word `w` shows one.
fn outcome(w: u32, gen_now: u32) -> Option<Result<BarrierWaitResult, BarrierError>> {
    let g = generation(w);
    if g == gen_now {
        return (w & BROKEN != 0).then_some(Err(BarrierError::Broken));
    }
    let next = gen_now.wrapping_add(1) & (GEN_MASK >> GEN_SHIFT);
    if g == next && w & RESET == 0 {
        Some(Ok(BarrierWaitResult { leader: false }))
    } else {
        Some(Err(BarrierError::Broken))
    }
}
