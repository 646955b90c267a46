//! Bounded spinning: the only spinning the family allows, in two shapes.
//!
//! On this class of machine a spinning waiter whose peer shares its core burns the peer's
//! time slice (a 1.7 µs same-core handoff became 225 µs with a 10k-iteration spin), so spin
//! only a bounded budget and only when the peer can be running, e.g. when it last ran on
//! another CPU ([`current_cpu`]) and is not asleep.
//!
//! - [`SpinWait`]: an exponential budget of `PAUSE`s, for locks, whose holder is running
//!   (it just took the lock) more often than not: [`SpinWait::for_locks`] is the budget the
//!   locks measured (127 `PAUSE`s, ~1.3 µs; none under loom).
//! - [`PeerSpin`]: for a waiter that knows on which CPU its peer last ran (the queues
//!   publish it): a linear spin bounded by *time* when the peer is on another CPU, a few
//!   `sched_yield`s when it shares ours, then sleep.
//!
//! A primitive that cannot know whether its peer runs (a semaphore's poster) does not spin
//! at all: measured on ipc-sem's ping-pong, even 15 `PAUSE`s cost 0.5 µs per same-core round
//! trip and bought nothing across cores, where the hypervisor's wake-up takes 60-200 µs.

use std::time::{Duration, Instant};

use crate::sync::atomic::{AtomicU32, Ordering};
use crate::sync::spin_loop;

/// An exponential spin budget: 1, 2, 4, ... `PAUSE`s per step, `steps` steps in all.
#[derive(Debug, Clone)]
pub struct SpinWait {
    step: u32,
    steps: u32,
}

impl SpinWait {
    /// The default budget: 10 steps, 1023 `PAUSE`s, about 10 µs on the reference machine.
    pub const DEFAULT_STEPS: u32 = 10;

    /// The default budget.
    pub const fn new() -> Self {
        SpinWait { step: 0, steps: Self::DEFAULT_STEPS }
    }

    /// The budget of the locks: 7 steps, 127 `PAUSE`s, about 1.3 µs on the reference
    /// machine; none under loom (its `PAUSE` is a yield, which would keep the models from
    /// ever reaching the sleeping path).
    pub const fn for_locks() -> Self {
        Self::with_steps(if cfg!(ipc_loom) { 0 } else { 7 })
    }

    /// A budget of `steps` doubling steps (`2^steps - 1` `PAUSE`s in all, capped at 20 steps).
    pub const fn with_steps(steps: u32) -> Self {
        SpinWait { step: 0, steps: if steps > 20 { 20 } else { steps } }
    }

    /// Spin one step; `false` once the budget is spent (then block instead).
    #[inline]
    pub fn spin(&mut self) -> bool {
        if self.step >= self.steps {
            return false;
        }
        for _ in 0..(1u32 << self.step) {
            spin_loop();
        }
        self.step += 1;
        true
    }

    /// Start the budget again.
    pub fn reset(&mut self) {
        self.step = 0;
    }
}

impl Default for SpinWait {
    fn default() -> Self {
        Self::new()
    }
}

/// The CPU the calling thread is running on (vDSO `getcpu`, ~ns). Publish it next to a
/// waiter flag so a peer can skip spinning when both share a core.
pub fn current_cpu() -> u32 {
    u32::try_from(crate::sys::current_cpu()).unwrap_or(u32::MAX)
}

/// Yields before sleeping when the peer shares our CPU.
const MAX_YIELDS: u32 = 8;
/// Looks between two reads of the clock while spinning.
const CLOCK_EVERY: u32 = 64;

/// The spin of a waiter that knows where its peer last ran (see the module docs).
///
/// The spin is linear, not exponential: one `PAUSE` between two looks at the condition, as
/// a polling caller's loop would do, so a message that arrives while we spin is seen within
/// tens of nanoseconds (an exponential backoff's late steps of hundreds of `PAUSE`s would add
/// microseconds to every handoff; even four `PAUSE`s per look cost a 64 B ping-pong ~0.5x of
/// the spin floor). It is bounded by time ([`PeerSpin::SPIN_FOR`]), not by a count of looks
/// (a `PAUSE` is ~10 ns on one CPU and ~25 ns on another).
#[derive(Debug)]
pub struct PeerSpin {
    spins: u32,
    yields: u32,
    same_cpu: Option<bool>,
    /// When the spin began: read at the first look at the clock, [`CLOCK_EVERY`] looks in
    /// (a wait that ends sooner never reads it).
    since: Option<Instant>,
}

impl Default for PeerSpin {
    fn default() -> Self {
        Self::new()
    }
}

impl PeerSpin {
    /// How long to spin, when the peer runs on another CPU, before sleeping: longer than a
    /// cross-core futex wake-up here (~30 µs one-way on the reference VM), so that the reply
    /// of a peer our message just woke still finds us spinning instead of costing a second
    /// wake-up.
    pub const SPIN_FOR: Duration = Duration::from_micros(40);

    /// A fresh budget.
    pub const fn new() -> PeerSpin {
        PeerSpin { spins: 0, yields: 0, same_cpu: None, since: None }
    }

    /// One step of busy waiting; `false` once it is time to sleep. `peer_cpu` is the CPU + 1
    /// the other side published (0 unknown), `my_cpu` ours + 1. (None under loom.)
    pub fn step(&mut self, peer_cpu: &AtomicU32, my_cpu: u32) -> bool {
        if cfg!(ipc_loom) {
            return false; // models sleep at once: spinning only adds interleavings
        }
        let same = *self.same_cpu.get_or_insert_with(|| {
            // Relaxed: a placement hint.
            peer_cpu.load(Ordering::Relaxed) == my_cpu
        });
        if !same {
            self.spins = self.spins.wrapping_add(1);
            if self.spins.is_multiple_of(CLOCK_EVERY) {
                let now = Instant::now();
                if now.duration_since(*self.since.get_or_insert(now)) >= Self::SPIN_FOR {
                    return false;
                }
            }
            spin_loop();
            return true;
        }
        if self.yields < MAX_YIELDS {
            self.yields += 1;
            crate::sys::yield_now();
            return true;
        }
        false
    }
}
