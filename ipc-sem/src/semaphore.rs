//! [`Semaphore`]: a counting semaphore in shared memory, untracked (a bare count, the
//! fastest path) or tracked (a permit ledger keyed by owner ids, so permits held by a killed
//! process come back).
//!
//! # Tracked mode: one word per permit
//! A tracked semaphore of `p` permits keeps `p` ledger words. A word is `0` when its permit
//! is free and holds the holder's [owner id](ipc_shm::liveness) while it is held:
//!
//! | bits | meaning |
//! |---|---|
//! | 0..31 | `0` (free) or the holder's owner id (30 bits; bit 30 is never set by us) |
//! | 31 (`WANTED`) | a waiter may be asleep waiting for a permit |
//!
//! Taking a permit and recording who took it are **one CAS** (`0 -> me`), and so is giving
//! it back (`me -> 0`): there is no instant at which a process holds a permit the ledger does
//! not show, so a process killed at any instruction leaves the ledger exact. The count of
//! free permits is not stored anywhere else; `available + held_by_live + held_by_dead ==
//! permits` holds at every instant by construction, and once the dead holders' words are
//! reclaimed, `available + held_by_live == permits`.
//!
//! A dead holder's words are reclaimed by the next acquirer that finds no free permit (it
//! asks [`liveness::status`](ipc_shm::liveness::status) about each holder, ~1 µs each, on
//! that slow path only), by a sleeping waiter at the end of each sleep slice of
//! [`ipc_shm::wait::Schedule`] (1 ms doubling to 32 ms), or by [`Semaphore::recover`]. The
//! reclaimer takes the word over with one CAS `dead -> me`, so two reclaimers never both get
//! it. Only a `Dead` holder is reclaimed: a word liveness cannot judge (`Unknown`: a value
//! that cannot be an owner id, a peer's garbage, an id of a slot never used) is never taken
//! over; acquirers wait for it until their deadline, and [`Semaphore::ledger`] counts it in
//! [`Ledger::held_by_unknown`].
//!
//! Waiting: a waiter that finds too few permits takes a ticket from the semaphore's
//! [`EventCount`], sets `WANTED` on the held words (CAS) and sleeps on the ticket; a release
//! that clears a word with `WANTED` notifies the event count (its flagged-waiter protocol,
//! [`EventCount::prepare_wait`]). The flag is the notifier's gate: a release nobody waits for
//! pays nothing more than its CAS, and a flag left by a waiter killed while asleep costs the
//! next release of that word one wake-up, once (the release clears it). A killed waiter
//! holds nothing and so consumes no permit.
//!
//! The uncontended path is a load of the config, the owner id (a process-global load), one
//! CAS to take and one CAS to give back: the same number of atomic read-modify-writes as
//! glibc's `sem_wait` + `sem_post`.
//!
//! # Untracked mode
//! One count word (see [`count`](crate::count)); a holder killed while holding `k` permits
//! leaks exactly those `k`, as POSIX semaphores and Python's do. `release` needs no prior
//! `acquire` (the producer/consumer use of a semaphore).

use std::fmt;
use std::time::{Duration, Instant};

use ipc_shm::liveness::{self, Status};
use ipc_shm::sync::atomic::{AtomicU32, Ordering};
use ipc_shm::wait::Schedule;
use ipc_shm::{Deadline, OwnerId, ProcessToken, SelectableEventCount, ShmSafe};

use crate::count::{self, COUNT_MAX};
use crate::error::{Error, Result};

const OBJECT: &str = "semaphore";

/// Tracked-mode flag in the config word; the low bits hold the number of permits.
const TRACKED: u32 = 1 << 31;
/// The config check word is `config * CHECK_MUL` (odd, so zero maps to zero: an all-zero
/// semaphore is a valid untracked semaphore with no permits).
const CHECK_MUL: u32 = 0x9E37_79B1;
/// Ledger word flag: a waiter may be asleep.
pub(crate) const WANTED: u32 = 1 << 31;
/// The most ledger words a semaphore type may declare.
pub const MAX_LEDGER: usize = 1 << 16;
/// The largest count of an untracked semaphore.
pub const MAX_VALUE: u32 = COUNT_MAX;

/// A counting semaphore that lives in shared memory (put it in a [`ipc_shm::Shared`], alone
/// or inside your own `#[repr(C)]` struct). `L` is the ledger size: the most permits a
/// tracked semaphore of this type can have (64 by default; an untracked one ignores it).
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use ipc_sem::Semaphore;
/// use ipc_shm::Shared;
///
/// let name = ipc_shm::random_name("doc-sem")?;
/// let sem = Shared::create(&name, Semaphore::tracked(2)?)?;
/// let a = sem.acquire()?;
/// let b = sem.try_acquire()?.expect("a second permit");
/// assert!(sem.try_acquire()?.is_none());
/// drop(a);
/// assert_eq!(sem.value(), 1);
/// # drop(b);
/// # Ok(()) }
/// ```
#[repr(C)]
pub struct Semaphore<const L: usize = 64> {
    /// Untracked: the count word (see `count`).
    pub(crate) count: AtomicU32,
    /// 0 for untracked, `TRACKED | permits` for tracked. Written once, before publication.
    config: AtomicU32,
    /// `config * CHECK_MUL`.
    check: AtomicU32,
    /// Tracked: where waiters sleep; notified by every release that found `WANTED`. Its
    /// doorbell slots serve selectors in both modes (an untracked release that finds
    /// `SLEEPERS` rings them).
    pub(crate) waiters: SelectableEventCount,
    /// Tracked: a ledger index that was free a moment ago (a hint only).
    hint: AtomicU32,
    /// Tracked: permits taken back from dead holders (statistics).
    recovered: AtomicU32,
    _reserved: [AtomicU32; 6],
    /// Tracked: one word per permit.
    pub(crate) ledger: [AtomicU32; L],
}

#[cfg(not(ipc_loom))]
const _: () = assert!(size_of::<Semaphore>() == 64 + 64 * 4);
#[cfg(not(ipc_loom))]
const _: () = assert!(std::mem::offset_of!(Semaphore, waiters) == 12);
#[cfg(not(ipc_loom))]
const _: () = assert!(size_of::<Semaphore<1>>() == 68);
#[cfg(not(ipc_loom))]
const _: () = assert!(std::mem::offset_of!(Semaphore, ledger) == 64);

#[allow(unsafe_code)] // the ShmSafe marker; its argument follows
// SAFETY: (1) only atomics (the event count is two), no pointers; (2) every bit pattern of
// every word is a valid state (a bad config is reported as `Corrupted`, a ledger word that is
// no owner id is held by an unknown owner and never reclaimed, any count is clamped to the
// maximum, a garbage event count costs spurious wake-ups); all-zero is an untracked semaphore
// with no permits; (3) all mutation is atomic; (4) no Drop; (5) `#[repr(C)]`.
unsafe impl<const L: usize> ShmSafe for Semaphore<L> {
    /// 2: waiters sleep on an `EventCount` (8 bytes at offset 12) instead of a bare sequence
    /// word; a process of version 1 would sleep where version 2 never wakes. 3: the event
    /// count carries doorbell slots (20 bytes at offset 12) that every wake rings; a version-2
    /// releaser would never ring a selector.
    const LAYOUT_VERSION: u32 = 3;
    /// The ledger stores owner ids: a process of another liveness registry is refused.
    const OWNER_IDS: bool = true;
}

impl<const L: usize> fmt::Debug for Semaphore<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Semaphore");
        match self.mode("inspect") {
            Ok(Mode::Untracked) => d.field("mode", &"untracked"),
            Ok(Mode::Tracked(p)) => d.field("mode", &"tracked").field("permits", &p),
            Err(_) => d.field("mode", &"corrupted"),
        };
        d.field("value", &self.value()).finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Untracked,
    Tracked(u32),
}

/// A snapshot of a tracked semaphore's ledger (see [`Semaphore::ledger`]). `free +
/// held_by_live + held_by_dead + held_by_unknown == permits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Ledger {
    /// Permits of the semaphore.
    pub permits: u32,
    /// Free permits.
    pub free: u32,
    /// Permits held by live processes (this one included).
    pub held_by_live: u32,
    /// Permits held by this process.
    pub held_by_me: u32,
    /// Permits held by dead processes, not reclaimed yet (the next acquirer that needs them,
    /// or [`Semaphore::recover`], takes them back).
    pub held_by_dead: u32,
    /// Permits held by words liveness cannot judge ([`Status::Unknown`]: a value that is no
    /// owner id, written by a buggy peer): never reclaimed, so never handed to anyone.
    pub held_by_unknown: u32,
}

/// Which permits a [`Permit`] holds. Plain data: a permit has no drop glue beyond its
/// release. Tracked permits are fungible within a process (the ledger counts what each
/// process holds), so a `Many` permit gives back any `k` words this process holds, and a
/// `One` permit whose word is no longer ours gives back another of ours.
#[derive(Debug, Clone, Copy)]
enum Slots {
    /// Untracked: a number of permits.
    Count(u32),
    /// Tracked: one ledger word (index).
    One(u32),
    /// Tracked: this many ledger words.
    Many(u32),
    /// Released or forgotten.
    Gone,
}

/// Permits held from a [`Semaphore`]; released on drop.
#[must_use = "the permit is released at once if it is not kept"]
pub struct Permit<'a, const L: usize = 64> {
    sem: &'a Semaphore<L>,
    slots: Slots,
    /// The process that took the permits: only it gives them back (a forked child's copy of
    /// the permit is inert).
    token: ProcessToken,
}

impl<const L: usize> fmt::Debug for Permit<'_, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit").field("count", &self.count()).finish()
    }
}

impl<const L: usize> Permit<'_, L> {
    /// How many permits this holds.
    pub fn count(&self) -> u32 {
        match &self.slots {
            Slots::Count(n) => *n,
            Slots::One(_) => 1,
            Slots::Many(n) => *n,
            Slots::Gone => 0,
        }
    }

    /// Keep the permits without releasing them. Untracked: they are gone until someone
    /// calls [`Semaphore::release`]. Tracked: the ledger still shows this process as their
    /// holder; [`Semaphore::release_many`] from this process gives them back, and they
    /// return to the pool when this process dies.
    pub fn forget(mut self) {
        self.slots = Slots::Gone;
    }

    /// Release now, reporting errors (drop releases too, but cannot report).
    ///
    /// # Errors
    /// [`Error::NotHeld`] if a tracked permit is no longer this process's (it was inherited
    /// over `fork`, or a peer rewrote the ledger); [`Error::Overflow`] if an untracked count
    /// would pass the maximum (only after a peer wrote garbage); [`Error::Liveness`].
    pub fn release(mut self) -> Result<()> {
        let slots = std::mem::replace(&mut self.slots, Slots::Gone);
        if !self.token.is_current() {
            // A copy inherited over fork: the permits are the parent's.
            let n = match slots {
                Slots::Count(n) | Slots::Many(n) => n,
                Slots::One(_) => 1,
                Slots::Gone => 0,
            };
            return Err(Error::NotHeld { op: "release", object: "semaphore", n, held: 0 });
        }
        self.sem.release_slots(slots)
    }
}

impl<const L: usize> Drop for Permit<'_, L> {
    #[inline(always)]
    fn drop(&mut self) {
        // Only in the process that took the permits: a forked child's copy gives back nothing.
        if !self.token.is_current() {
            return;
        }
        match self.slots {
            Slots::Count(n) if count::release_fast(&self.sem.count, n, MAX_VALUE) => {}
            Slots::One(i) if self.sem.give_back_fast(i) => {}
            Slots::Gone => {}
            slots => self.sem.drop_slow(slots),
        }
    }
}

/// How long an acquire may wait.
#[derive(Debug, Clone, Copy)]
enum Wait {
    /// Not at all.
    Try,
    /// Until the deadline.
    Until(Deadline),
}

impl Semaphore<64> {
    /// An untracked semaphore holding `value` permits (Python's `Semaphore(value)`): the
    /// fastest mode; `release` needs no prior `acquire`; a holder killed while holding `k`
    /// permits leaks exactly those `k`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `value` is above [`MAX_VALUE`].
    pub fn new(value: u32) -> Result<Self> {
        Self::with_ledger_untracked(value)
    }

    /// A tracked semaphore of `permits` permits (1..=64; use [`Semaphore::with_ledger`] for
    /// more): permits held by a process that dies come back. `release` gives back only what
    /// this process holds.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `permits` is 0 or above the ledger size.
    pub fn tracked(permits: u32) -> Result<Self> {
        Self::with_ledger(permits)
    }
}

impl<const L: usize> Semaphore<L> {
    fn zeroed() -> Self {
        Semaphore {
            count: AtomicU32::new(0),
            config: AtomicU32::new(0),
            check: AtomicU32::new(0),
            waiters: SelectableEventCount::with_bells(),
            hint: AtomicU32::new(0),
            recovered: AtomicU32::new(0),
            _reserved: std::array::from_fn(|_| AtomicU32::new(0)),
            ledger: std::array::from_fn(|_| AtomicU32::new(0)),
        }
    }

    /// An untracked semaphore of this ledger size (the ledger is unused).
    ///
    /// # Errors
    /// As [`Semaphore::new`].
    pub fn with_ledger_untracked(value: u32) -> Result<Self> {
        if value > MAX_VALUE {
            return Err(Error::InvalidArgument {
                op: "create",
                object: OBJECT,
                what: format!("initial value {value} is above the maximum {MAX_VALUE}"),
            });
        }
        let s = Self::zeroed();
        // Relaxed: a value under construction, published by whatever shares it (the
        // segment's READY store).
        s.count.store(value, Ordering::Relaxed);
        Ok(s)
    }

    /// A tracked semaphore of `permits` permits, `1..=L`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `permits` is 0 or above `L`, or `L` is above
    /// [`MAX_LEDGER`].
    pub fn with_ledger(permits: u32) -> Result<Self> {
        if L > MAX_LEDGER || permits == 0 || permits as usize > L {
            return Err(Error::InvalidArgument {
                op: "create",
                object: OBJECT,
                what: format!(
                    "a tracked semaphore needs 1..={} permits (its ledger size), not {permits}",
                    L.min(MAX_LEDGER)
                ),
            });
        }
        let s = Self::zeroed();
        let config = TRACKED | permits;
        // Relaxed: the value is published with the object (the header's Release of READY).
        s.config.store(config, Ordering::Relaxed);
        s.check.store(config.wrapping_mul(CHECK_MUL), Ordering::Relaxed);
        Ok(s)
    }

    /// The mode, validated.
    #[inline]
    pub(crate) fn mode(&self, op: &'static str) -> Result<Mode> {
        // Relaxed: written before the object was published and never again by us; a peer's
        // later rewrite is caught by the check word.
        let config = self.config.load(Ordering::Relaxed);
        let check = self.check.load(Ordering::Relaxed);
        if config == 0 && check == 0 {
            return Ok(Mode::Untracked);
        }
        let permits = config & !TRACKED;
        if check == config.wrapping_mul(CHECK_MUL)
            && config & TRACKED != 0
            && permits != 0
            && permits as usize <= L.min(MAX_LEDGER)
        {
            return Ok(Mode::Tracked(permits));
        }
        Err(Error::Corrupted { op, object: OBJECT, what: "config word", found: config })
    }

    /// The ledger words in use.
    #[inline]
    pub(crate) fn words(&self, permits: u32) -> &[AtomicU32] {
        self.ledger.get(..permits as usize).unwrap_or(&self.ledger)
    }

    /// Whether this is a tracked semaphore (`false` also when its config is corrupted).
    pub fn is_tracked(&self) -> bool {
        matches!(self.mode("inspect"), Ok(Mode::Tracked(_)))
    }

    /// Permits free now (0 if the shared state is corrupted). Tracked: permits held by dead
    /// processes are not counted until reclaimed.
    pub fn value(&self) -> u32 {
        match self.mode("value") {
            Ok(Mode::Untracked) => count::value(&self.count, MAX_VALUE),
            Ok(Mode::Tracked(p)) => {
                // Relaxed: a snapshot.
                let free = self.words(p).iter().filter(|w| w.load(Ordering::Relaxed) == 0).count();
                u32::try_from(free).unwrap_or(u32::MAX)
            }
            Err(_) => 0,
        }
    }

    /// The most permits this semaphore can ever grant at once: the permits of a tracked one,
    /// [`MAX_VALUE`] for an untracked one.
    ///
    /// # Errors
    /// [`Error::Corrupted`].
    pub fn max_permits(&self) -> Result<u32> {
        Ok(match self.mode("inspect")? {
            Mode::Untracked => MAX_VALUE,
            Mode::Tracked(p) => p,
        })
    }

    /// Take one permit, waiting as long as it takes.
    ///
    /// # Errors
    /// [`Error::Liveness`] (tracked: this process could not register), [`Error::Corrupted`].
    #[inline(always)]
    pub fn acquire(&self) -> Result<Permit<'_, L>> {
        if self.untracked_take_fast(1) {
            return Ok(Permit {
                sem: self,
                slots: Slots::Count(1),
                token: ProcessToken::current(),
            });
        }
        if let Some(i) = self.tracked_take_fast() {
            return Ok(Permit { sem: self, slots: Slots::One(i), token: ProcessToken::current() });
        }
        self.acquire_impl("acquire", 1, Wait::Until(Deadline::NEVER))?
            .ok_or_else(unreachable_timeout)
    }

    /// The uncontended untracked take: the config check and one CAS.
    #[inline(always)]
    fn untracked_take_fast(&self, n: u32) -> bool {
        // Relaxed: as in `mode`; both zero is exactly `Mode::Untracked`.
        self.config.load(Ordering::Relaxed) == 0
            && self.check.load(Ordering::Relaxed) == 0
            && count::try_take_fast(&self.count, n, MAX_VALUE)
    }

    /// Take one permit if one is free now (tracked: after reclaiming any held by dead
    /// processes). `Ok(None)` if none is.
    ///
    /// # Errors
    /// As [`acquire`](Self::acquire).
    #[inline(always)]
    pub fn try_acquire(&self) -> Result<Option<Permit<'_, L>>> {
        if self.untracked_take_fast(1) {
            return Ok(Some(Permit {
                sem: self,
                slots: Slots::Count(1),
                token: ProcessToken::current(),
            }));
        }
        if let Some(i) = self.tracked_take_fast() {
            return Ok(Some(Permit {
                sem: self,
                slots: Slots::One(i),
                token: ProcessToken::current(),
            }));
        }
        self.acquire_impl("try_acquire", 1, Wait::Try)
    }

    /// Take one permit, waiting at most `timeout`. `Ok(None)` on timeout.
    ///
    /// # Errors
    /// As [`acquire`](Self::acquire).
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<Option<Permit<'_, L>>> {
        self.acquire_impl("acquire", 1, Wait::Until(Deadline::after(timeout)))
    }

    /// Take one permit, waiting until `deadline` at most. `Ok(None)` on timeout.
    ///
    /// # Errors
    /// As [`acquire`](Self::acquire).
    pub fn acquire_until(&self, deadline: Instant) -> Result<Option<Permit<'_, L>>> {
        self.acquire_impl("acquire", 1, Wait::Until(Deadline::at(deadline)))
    }

    /// Take `n` permits at once (all or none), waiting as long as it takes.
    ///
    /// # Errors
    /// [`Error::InvalidCount`] if `n` is 0 or more than the semaphore can ever hold, and as
    /// [`acquire`](Self::acquire).
    pub fn acquire_many(&self, n: u32) -> Result<Permit<'_, L>> {
        self.acquire_impl("acquire", n, Wait::Until(Deadline::NEVER))?
            .ok_or_else(unreachable_timeout)
    }

    /// Take `n` permits if that many are free now.
    ///
    /// # Errors
    /// As [`acquire_many`](Self::acquire_many).
    pub fn try_acquire_many(&self, n: u32) -> Result<Option<Permit<'_, L>>> {
        self.acquire_impl("try_acquire", n, Wait::Try)
    }

    /// Take `n` permits, waiting at most `timeout`. `Ok(None)` on timeout.
    ///
    /// # Errors
    /// As [`acquire_many`](Self::acquire_many).
    pub fn acquire_many_timeout(&self, n: u32, timeout: Duration) -> Result<Option<Permit<'_, L>>> {
        self.acquire_impl("acquire", n, Wait::Until(Deadline::after(timeout)))
    }

    /// Release one permit. Untracked: adds one to the count (no prior acquire needed).
    /// Tracked: gives back one permit this process holds (one it kept with
    /// [`Permit::forget`]).
    ///
    /// # Errors
    /// [`Error::Overflow`] (untracked: the count would pass [`MAX_VALUE`]), [`Error::NotHeld`]
    /// (tracked: this process holds no permit), [`Error::Corrupted`], [`Error::Liveness`].
    #[inline]
    pub fn release(&self) -> Result<()> {
        // Relaxed: as in `mode`.
        if self.config.load(Ordering::Relaxed) == 0
            && self.check.load(Ordering::Relaxed) == 0
            && count::release_fast(&self.count, 1, MAX_VALUE)
        {
            return Ok(());
        }
        self.release_many(1)
    }

    /// Release `n` permits (see [`release`](Self::release)). Tracked: if this process holds
    /// fewer than `n`, it releases those it holds and reports [`Error::NotHeld`].
    ///
    /// # Errors
    /// As [`release`](Self::release), and [`Error::InvalidCount`] for `n == 0`.
    #[inline(never)]
    pub fn release_many(&self, n: u32) -> Result<()> {
        const OP: &str = "release";
        match self.mode(OP)? {
            Mode::Untracked => {
                if n == 0 {
                    return Err(Error::InvalidCount { op: OP, object: OBJECT, n, max: MAX_VALUE });
                }
                count::release(&self.count, n, MAX_VALUE).map(|w| self.woke(w)).map_err(|o| {
                    Error::Overflow { op: OP, object: OBJECT, found: o.found, n, max: MAX_VALUE }
                })
            }
            Mode::Tracked(p) => {
                if n == 0 || n > p {
                    return Err(Error::InvalidCount { op: OP, object: OBJECT, n, max: p });
                }
                let me = owner(OP)?;
                let held = self.give_back_any(me, n);
                if held < n {
                    return Err(Error::NotHeld { op: OP, object: OBJECT, n, held });
                }
                Ok(())
            }
        }
    }

    #[cold]
    #[inline(never)]
    fn drop_slow(&self, slots: Slots) {
        let _ = self.release_slots(slots);
    }

    #[inline(never)]
    fn release_slots(&self, slots: Slots) -> Result<()> {
        const OP: &str = "release";
        match slots {
            Slots::Gone => Ok(()),
            Slots::Count(n) => {
                count::release(&self.count, n, MAX_VALUE).map(|w| self.woke(w)).map_err(|o| {
                    Error::Overflow { op: OP, object: OBJECT, found: o.found, n, max: MAX_VALUE }
                })
            }
            Slots::One(i) => {
                let me = owner(OP)?;
                if self.give_back(i as usize, me) || self.give_back_any(me, 1) == 1 {
                    Ok(())
                } else {
                    Err(Error::NotHeld { op: OP, object: OBJECT, n: 1, held: 0 })
                }
            }
            Slots::Many(n) => {
                let me = owner(OP)?;
                let held = self.give_back_any(me, n);
                if held == n {
                    Ok(())
                } else {
                    Err(Error::NotHeld { op: OP, object: OBJECT, n, held })
                }
            }
        }
    }

    #[inline(never)]
    fn acquire_impl(&self, op: &'static str, n: u32, how: Wait) -> Result<Option<Permit<'_, L>>> {
        match self.mode(op)? {
            Mode::Untracked => {
                if n == 0 || n > MAX_VALUE {
                    return Err(Error::InvalidCount { op, object: OBJECT, n, max: MAX_VALUE });
                }
                let got = match how {
                    Wait::Try => count::try_take(&self.count, n, MAX_VALUE),
                    Wait::Until(deadline) => count::take(&self.count, n, MAX_VALUE, deadline),
                };
                Ok(got.then(|| Permit {
                    sem: self,
                    slots: Slots::Count(n),
                    token: ProcessToken::current(),
                }))
            }
            Mode::Tracked(p) => {
                if n == 0 || n > p {
                    return Err(Error::InvalidCount { op, object: OBJECT, n, max: p });
                }
                let me = owner(op)?;
                let taken = self.tracked_acquire(p, n, me, how);
                Ok(taken.map(|taken| Permit {
                    sem: self,
                    slots: into_slots(&taken),
                    token: ProcessToken::current(),
                }))
            }
        }
    }

    // ---- tracked mode -------------------------------------------------------------------

    /// The number of permits if this is a valid tracked semaphore (the test of `mode`).
    #[inline(always)]
    fn tracked_permits(&self) -> Option<u32> {
        // Relaxed: as in `mode`.
        let config = self.config.load(Ordering::Relaxed);
        let check = self.check.load(Ordering::Relaxed);
        let permits = config & !TRACKED;
        (config & TRACKED != 0
            && check == config.wrapping_mul(CHECK_MUL)
            && permits != 0
            && permits as usize <= L.min(MAX_LEDGER))
        .then_some(permits)
    }

    /// The uncontended tracked take: the word at the hint, if free, with one CAS.
    #[inline(always)]
    fn tracked_take_fast(&self) -> Option<u32> {
        let permits = self.tracked_permits()?;
        let me = liveness::current().ok()?.get();
        // Relaxed: a hint only.
        let hint = self.hint.load(Ordering::Relaxed);
        if hint >= permits {
            return None;
        }
        let w = self.ledger.get(hint as usize)?;
        ipc_shm::crash::point("sem.tracked.before_take");
        // Relaxed probe; Acquire CAS: as in `take_free`.
        let taken = w.load(Ordering::Relaxed) == 0
            && w.compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed).is_ok();
        if taken {
            ipc_shm::crash::point("sem.tracked.after_take");
        }
        taken.then_some(hint)
    }

    /// The uncontended give-back: our word, nobody waiting, one CAS. `false` sends the
    /// caller to the general path.
    #[inline(always)]
    fn give_back_fast(&self, i: u32) -> bool {
        let Ok(me) = liveness::current().map(OwnerId::get) else { return false };
        let Some(w) = self.ledger.get(i as usize) else { return false };
        ipc_shm::crash::point("sem.tracked.before_give_back");
        // Relaxed probe; Release CAS: as in `give_back`.
        if w.load(Ordering::Relaxed) != me
            || w.compare_exchange(me, 0, Ordering::Release, Ordering::Relaxed).is_err()
        {
            return false;
        }
        ipc_shm::crash::point("sem.tracked.after_give_back");
        // Relaxed: a hint only.
        self.hint.store(i, Ordering::Relaxed);
        true
    }

    /// Take a free word at or after the hint. The uncontended fast path.
    #[inline]
    fn take_free(&self, words: &[AtomicU32], me: u32) -> Option<u32> {
        let len = words.len();
        // Relaxed: a hint only.
        let hint = self.hint.load(Ordering::Relaxed) as usize;
        let start = if hint < len { hint } else { 0 };
        for i in (start..len).chain(0..start) {
            let Some(w) = words.get(i) else { continue };
            // Relaxed: a probe; the CAS synchronises.
            if w.load(Ordering::Relaxed) != 0 {
                continue;
            }
            let idx = u32::try_from(i).unwrap_or(u32::MAX);
            ipc_shm::crash::point("sem.tracked.before_take");
            // Acquire: pairs with the Release CAS in `give_back`, so the previous holder's
            // writes are visible to us. Failure Relaxed: we move on.
            if w.compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed).is_ok() {
                ipc_shm::crash::point("sem.tracked.after_take");
                return Some(idx);
            }
        }
        None
    }

    /// Give back ledger word `i` if `me` holds it: one CAS `me -> 0`. Wakes the waiters if
    /// one flagged the word. `false` if the word is not ours.
    fn give_back(&self, i: usize, me: u32) -> bool {
        let Some(w) = self.ledger.get(i) else { return false };
        // Relaxed: the CAS synchronises.
        let mut cur = w.load(Ordering::Relaxed);
        loop {
            if cur & !WANTED != me {
                return false;
            }
            ipc_shm::crash::point("sem.tracked.before_give_back");
            // Release: pairs with the Acquire CAS of the next taker. Failure Relaxed: retry.
            match w.compare_exchange_weak(cur, 0, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        ipc_shm::crash::point("sem.tracked.after_give_back");
        // Relaxed: a hint only.
        self.hint.store(u32::try_from(i).unwrap_or(0), Ordering::Relaxed);
        if cur & WANTED != 0 {
            self.wake();
        }
        true
    }

    /// Give back up to `n` ledger words this process holds, whichever; returns how many.
    fn give_back_any(&self, me: u32, n: u32) -> u32 {
        let Ok(Mode::Tracked(p)) = self.mode("release") else { return 0 };
        let mut back = 0;
        for (i, w) in self.words(p).iter().enumerate() {
            if back == n {
                break;
            }
            // Relaxed: a probe; the CAS in `give_back` is the synchronising access.
            if w.load(Ordering::Relaxed) & !WANTED == me && self.give_back(i, me) {
                back += 1;
            }
        }
        back
    }

    /// Untracked: a release woke the count word's sleepers (`woke`); ring the doorbells of
    /// the selectors among them too (they sleep in `poll`, not on the word).
    fn woke(&self, woke: bool) {
        if woke {
            self.waiters.notify_bells();
        }
    }

    /// Wake the waiters: a release found `WANTED` on the word it cleared (with that CAS).
    fn wake(&self) {
        self.waiters.notify_all_flagged();
    }

    fn tracked_acquire(&self, permits: u32, n: u32, me: u32, how: Wait) -> Option<Vec<u32>> {
        let words = self.words(permits);
        let mut taken: Vec<u32> = Vec::new();
        let mut schedule = Schedule::new();
        let mut check_live = true;
        loop {
            while (taken.len() as u32) < n {
                match self.take_free(words, me) {
                    Some(i) => taken.push(i),
                    None => break,
                }
            }
            if taken.len() as u32 == n {
                return Some(taken);
            }
            // Before the sweep reads and flags the words (see EventCount::prepare_wait).
            let ticket = self.waiters.prepare_wait();
            let arm = matches!(how, Wait::Until(_));
            self.sweep(words, me, n, &mut taken, check_live, arm);
            if taken.len() as u32 == n {
                return Some(taken);
            }
            // Not enough now: give back what we hold so others can progress, then sleep.
            for i in taken.drain(..) {
                self.give_back(i as usize, me);
            }
            let Wait::Until(deadline) = how else { return None };
            if deadline.has_passed() {
                return None;
            }
            // Every word we did not take is flagged, so its next release notifies.
            let woken = self.waiters.sleep(ticket, schedule.next(deadline));
            // A slice with no release: look at the holders' liveness again.
            check_live = !woken;
        }
    }

    /// The slow pass over the ledger: take free words, take over words of dead holders (if
    /// `check_live`), and flag the rest `WANTED` (if `arm`).
    fn sweep(
        &self,
        words: &[AtomicU32],
        me: u32,
        n: u32,
        taken: &mut Vec<u32>,
        check_live: bool,
        arm: bool,
    ) {
        let mut status = StatusCache::default();
        for (i, w) in words.iter().enumerate() {
            if taken.len() as u32 >= n {
                return;
            }
            let idx = u32::try_from(i).unwrap_or(u32::MAX);
            if taken.contains(&idx) {
                continue;
            }
            // Relaxed: the CASes below synchronise.
            let mut cur = w.load(Ordering::Relaxed);
            loop {
                let holder = cur & !WANTED;
                if cur == 0 {
                    // Acquire: as in `take_free`.
                    match w.compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed) {
                        Ok(_) => {
                            taken.push(idx);
                            break;
                        }
                        Err(actual) => {
                            cur = actual;
                            continue;
                        }
                    }
                }
                if holder != me && check_live && status.is_dead(holder) {
                    // Take the dead holder's permit over, keeping any waiter's flag so our
                    // own release of it wakes them. Acquire: as in `take_free`.
                    let new = me | (cur & WANTED);
                    match w.compare_exchange(cur, new, Ordering::Acquire, Ordering::Relaxed) {
                        Ok(_) => {
                            // Relaxed: statistics.
                            self.recovered.fetch_add(1, Ordering::Relaxed);
                            taken.push(idx);
                            break;
                        }
                        Err(actual) => {
                            cur = actual;
                            continue;
                        }
                    }
                }
                if arm && cur & WANTED == 0 {
                    // Relaxed: the flag and the holder's release CAS are on this one word; the
                    // ticket taken before the sweep does the rest (EventCount::prepare_wait).
                    if let Err(actual) =
                        w.compare_exchange(cur, cur | WANTED, Ordering::Relaxed, Ordering::Relaxed)
                    {
                        cur = actual;
                        continue;
                    }
                }
                break;
            }
        }
    }

    /// Tracked: give every permit held by a dead process back to the pool now; returns how
    /// many. Permits held by words liveness cannot judge (garbage) stay where they are.
    /// Untracked: 0 (nothing is recorded).
    ///
    /// # Errors
    /// [`Error::Corrupted`], [`Error::Liveness`].
    pub fn recover(&self) -> Result<u32> {
        const OP: &str = "recover";
        let Mode::Tracked(p) = self.mode(OP)? else { return Ok(0) };
        let me = owner(OP)?;
        let mut status = StatusCache::default();
        let mut back = 0;
        let mut wake = false;
        for w in self.words(p) {
            // Relaxed: the CAS synchronises.
            let mut cur = w.load(Ordering::Relaxed);
            while cur != 0 && cur & !WANTED != me && status.is_dead(cur & !WANTED) {
                // Release: the permit goes back to the pool, as in `give_back`.
                match w.compare_exchange(cur, 0, Ordering::Release, Ordering::Relaxed) {
                    Ok(_) => {
                        back += 1;
                        wake |= cur & WANTED != 0;
                        break;
                    }
                    Err(actual) => cur = actual,
                }
            }
        }
        if back > 0 {
            // Relaxed: statistics.
            self.recovered.fetch_add(back, Ordering::Relaxed);
        }
        if wake {
            self.wake();
        }
        Ok(back)
    }

    /// Tracked: permits taken back from dead holders since creation (statistics).
    pub fn recovered(&self) -> u32 {
        // Relaxed: statistics.
        self.recovered.load(Ordering::Relaxed)
    }

    /// Tracked: who holds what, with each holder's liveness checked (a syscall per distinct
    /// holder: for tests and diagnostics). Nothing is reclaimed.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an untracked semaphore; [`Error::Corrupted`],
    /// [`Error::Liveness`].
    pub fn ledger(&self) -> Result<Ledger> {
        const OP: &str = "inspect";
        let Mode::Tracked(p) = self.mode(OP)? else {
            return Err(Error::InvalidArgument {
                op: OP,
                object: OBJECT,
                what: "an untracked semaphore keeps no ledger".into(),
            });
        };
        let me = owner(OP)?;
        let mut status = StatusCache::default();
        let mut l = Ledger { permits: p, ..Ledger::default() };
        for w in self.words(p) {
            // Relaxed: a snapshot.
            let holder = w.load(Ordering::Relaxed) & !WANTED;
            if holder == 0 {
                l.free += 1;
            } else if holder == me {
                l.held_by_me += 1;
                l.held_by_live += 1;
            } else {
                match status.of(holder) {
                    Status::Alive => l.held_by_live += 1,
                    Status::Dead => l.held_by_dead += 1,
                    Status::Unknown => l.held_by_unknown += 1,
                }
            }
        }
        Ok(l)
    }
}

fn into_slots(taken: &[u32]) -> Slots {
    match taken {
        [i] => Slots::One(*i),
        _ => Slots::Many(u32::try_from(taken.len()).unwrap_or(u32::MAX)),
    }
}

fn unreachable_timeout() -> Error {
    // An untimed wait returns only with permits; this is here so no path can panic.
    Error::InvalidArgument {
        op: "acquire",
        object: OBJECT,
        what: "an untimed wait timed out".into(),
    }
}

/// This process's owner id, for the ledger.
#[inline]
fn owner(op: &'static str) -> Result<u32> {
    liveness::current().map(OwnerId::get).map_err(|source| Error::Liveness {
        op,
        object: OBJECT,
        source,
    })
}

/// Liveness answers of one pass, so a holder of many permits costs one syscall.
#[derive(Default)]
struct StatusCache {
    known: [Option<(u32, Status)>; 8],
}

impl StatusCache {
    /// The [`Status`] of the holder word `holder` (a word read from the ledger).
    fn of(&mut self, holder: u32) -> Status {
        if let Some((_, s)) = self.known.iter().flatten().find(|(h, _)| *h == holder) {
            return *s;
        }
        let s = liveness::status_raw(holder);
        if let Some(slot) = self.known.iter_mut().find(|k| k.is_none()) {
            *slot = Some((holder, s));
        }
        s
    }

    /// Only a `Dead` holder is reclaimed: `Unknown` never is (see the module docs).
    fn is_dead(&mut self, holder: u32) -> bool {
        self.of(holder) == Status::Dead
    }
}
