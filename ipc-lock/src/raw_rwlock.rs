//! [`RawRwLock`]: a robust reader-writer lock word set, and lock_api's raw traits over it.
//!
//! Layout (`#[repr(C)]`, 280 bytes, all-zero unlocked):
//!
//! | field | meaning |
//! |---|---|
//! | `writer: RawMutex` | the writer lock, a robust mutex (owner id with its check, `CONTENDED`, `INCONSISTENT`, not recoverable). A writer takes it first, then waits for readers to leave; readers never take it, they wait until it is free |
//! | `drain: u32` | an epoch, bumped by a reader that empties a slot a writer waits on (the writer sleeps on this word) |
//! | `reserved: u32` | zero |
//! | `slots: [u64; 32]` | the reader table: `owner id << 32 \| WAITING? \| count`, the read locks (31-bit count) a process holds through the slot; bit 31 `WAITING`: a writer waits for this slot to empty. Count 0 with an owner: reserved but idle, any process may take it over |
//!
//! A reader bumps its process's slot (one `fetch_add`, checked after: an increment of a slot
//! that is not its own is taken back, and the first read of a process claims a slot with a
//! CAS), then loads the writer word: free means it holds a read lock; otherwise it backs out
//! and waits for the writer. Unlocking is one `fetch_sub`. A writer takes the writer
//! word (so new readers back out), then waits until every slot's count is zero. The two
//! sides form a Dekker pair (reader: slot, then writer word; writer: writer word, then slots)
//! made sound by sequentially consistent operations, so at least one of them sees the other.
//! A writer waiting for a slot to empty marks it `WAITING` (a CAS on the slot); the reader
//! whose decrement empties it sees the mark in the value its `fetch_sub` returns (no second
//! load on the unlock path), bumps `drain` and wakes the writer.
//!
//! A reader killed while holding leaves its count behind: a writer waiting on it sleeps in
//! bounded slices and, after each, asks whether the slot's owner is alive; a slot whose owner
//! liveness calls `Dead` is reclaimed (CAS to zero). A slot whose owner is `Unknown` (garbage,
//! an id no process ever had, a registry that cannot answer now) is never reclaimed, by
//! writers or by readers looking for a slot: it is waited on until the deadline, like a live
//! reader's (the family's table in `ipc_shm::liveness`). A writer killed while holding the writer word is
//! inherited by the next reader or writer as with a mutex, handed out as the *write* guard in
//! `OwnerDied` (the heir needs exclusive access to repair). When all 32 slots are held by live
//! readers of other processes, a new reader gets `TooManyReaders`, never a hang.
#![allow(unsafe_code)] // unsafe impls only (ShmSafe, Zeroable, lock_api's raw traits); no unsafe blocks

use ipc_shm::SpinWait;
use ipc_shm::futex::{self, WaitResult};
use ipc_shm::liveness::checked_word as owner_word;
use ipc_shm::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use ipc_shm::sync::spin_loop;
use ipc_shm::wait::Schedule;

use crate::owner::{self, RawError, Status, Wait};
use crate::raw_mutex::{Held, Mode, RawMutex};

/// Number of reader slots: at most this many processes hold read locks at once.
pub const READER_SLOTS: usize = 32;
/// Slot bit: a writer waits for this slot to empty.
const WAITING: u64 = 1 << 31;
/// The count bits of a slot.
const COUNT_MASK: u32 = (1 << 31) - 1;
/// Rounds a `try_` read makes when writers keep arriving between its two looks.
const TRY_ROUNDS: u32 = 4;

/// Whether slot value `old` (read by the increment that took a count) belongs to `me` with
/// room for that count: owner `me`, count below the maximum (`WAITING` may be set). One
/// subtraction and one comparison: the difference has a zero high half only for owner `me`.
#[inline(always)]
fn own_with_room(old: u64, me: u32) -> bool {
    old.wrapping_sub(join(me, 0)) & !WAITING < u64::from(COUNT_MASK)
}

/// Whether the decrement that read slot value `old` left nothing more to do: owner `me`, a
/// count of at least one, no writer waiting on the slot (`WAITING` clear). One subtraction
/// and one comparison, as in [`own_with_room`].
#[inline(always)]
fn left_clean(old: u64, me: u32) -> bool {
    old.wrapping_sub(join(me, 1)) < u64::from(COUNT_MASK)
}

/// (owner, count) of a slot value (the `WAITING` mark left out).
fn split(v: u64) -> (u32, u32) {
    ((v >> 32) as u32, v as u32 & COUNT_MASK)
}

#[inline(always)]
fn join(owner: u32, count: u32) -> u64 {
    (u64::from(owner) << 32) | u64::from(count)
}

/// The sequentially consistent operations make the Dekker pair sound on real hardware; loom
/// treats SeqCst accesses as AcqRel, so the model gets the equivalent fences.
#[inline(always)]
fn dekker_fence() {
    #[cfg(ipc_loom)]
    ipc_shm::sync::atomic::fence(Ordering::SeqCst);
}

/// A full fence after a writer took the writer word by any path (the slow path's CAS is only
/// Acquire): its later slot loads cannot be ordered before it.
#[inline(always)]
fn writer_fence() {
    ipc_shm::sync::atomic::fence(Ordering::SeqCst);
}

/// Per-acquisition state of a read lock (lock_api's shared guard state).
#[derive(Debug)]
pub struct ReadHeld(ReadKind);

#[derive(Debug)]
enum ReadKind {
    /// A count in reader slot `slot`, taken as `owner`.
    Slot { slot: u32, owner: u32 },
    /// The writer word, inherited from a dead writer (exclusive).
    Exclusive(Held),
}

impl ReadHeld {
    /// Whether this read acquisition inherited a dead writer's lock (and holds it
    /// exclusively).
    pub fn owner_died(&self) -> bool {
        matches!(&self.0, ReadKind::Exclusive(h) if h.owner_died())
    }
}

/// A robust, process-shared reader-writer lock: see the module docs. All-zero unlocked;
/// protects no data by itself ([`RwLock`](crate::RwLock) pairs it with the data).
///
/// Through lock_api's surface, a read lock that inherits a dead writer is held exclusively
/// until released, and `lock_shared`/`lock_exclusive` panic on the outcomes they cannot
/// return (not recoverable, corrupted, reader table full); [`RwLock`](crate::RwLock) returns
/// them as typed errors.
#[repr(C)]
pub struct RawRwLock {
    writer: RawMutex,
    drain: AtomicU32,
    reserved: AtomicU32,
    slots: [AtomicU64; READER_SLOTS],
}

#[cfg(not(ipc_loom))] // loom atomics are larger
const _: () = assert!(size_of::<RawRwLock>() == 24 + 8 * READER_SLOTS);
const _: () = assert!(align_of::<RawRwLock>() == 8);

// SAFETY: all-zero is an unlocked writer word, no waiting writer and an empty reader table.
unsafe impl bytemuck::Zeroable for RawRwLock {}

// SAFETY: (1) atomics only, no pointers; (2) every bit pattern is a state: the writer word
// decodes totally, a slot is an (owner, count) pair whose owner is checked with the liveness
// registry before anything is reclaimed; (3) atomic mutation only; (4) no drop;
// (5) `#[repr(C)]`.
unsafe impl ipc_shm::ShmSafe for RawRwLock {
    const LAYOUT_VERSION: u32 = 1;
}

impl Default for RawRwLock {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for RawRwLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawRwLock")
            .field("writer", &self.writer)
            .field("readers", &self.reader_count())
            .finish_non_exhaustive()
    }
}

impl RawRwLock {
    /// An unlocked reader-writer lock.
    #[cfg(not(ipc_loom))]
    pub const fn new() -> Self {
        RawRwLock {
            writer: RawMutex::new(),
            drain: AtomicU32::new(0),
            reserved: AtomicU32::new(0),
            slots: [const { AtomicU64::new(0) }; READER_SLOTS],
        }
    }

    /// An unlocked reader-writer lock.
    #[cfg(ipc_loom)]
    pub fn new() -> Self {
        RawRwLock {
            writer: RawMutex::new(),
            drain: AtomicU32::new(0),
            reserved: AtomicU32::new(0),
            slots: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    fn slot(&self, i: usize) -> &AtomicU64 {
        &self.slots[i % READER_SLOTS]
    }

    /// Reader slot `i` (wraps), for a guard that keeps it.
    #[inline]
    pub(crate) fn slot_ref(&self, i: u32) -> &AtomicU64 {
        self.slot(i as usize)
    }

    /// The uncontended read path: bump our slot, see no writer. `Some((slot index, owner))`
    /// holds a read count; `None`: take the full path.
    #[cfg(not(ipc_loom))] // lock_api's surface only
    #[inline]
    pub(crate) fn read_fast(&self) -> Option<(u32, u32)> {
        let (i, _, me) = self.read_fast_as(owner::cached_word()? as u32)?;
        Some((i, me))
    }

    /// [`read_fast`](Self::read_fast) handing back the slot itself, for guards that keep it.
    #[inline]
    pub(crate) fn read_fast_ref(&self) -> Option<(&AtomicU64, u32)> {
        let (_, slot, me) = self.read_fast_as(owner::cached_word()? as u32)?;
        Some((slot, me))
    }

    /// [`read_fast`](Self::read_fast) as owner `me`.
    #[inline]
    fn read_fast_as(&self, me: u32) -> Option<(u32, &AtomicU64, u32)> {
        let i = me % READER_SLOTS as u32;
        let slot = &self.slots[i as usize];
        // SeqCst: the reader half of the Dekker pair (slot, then writer word). A blind
        // increment, checked after: only our own slot (our id, room left) counts; anything
        // else is undone (the slow path claims a slot). Until undone, the stray count only
        // makes a writer wait a little, never lets one in.
        let old = slot.fetch_add(1, Ordering::SeqCst);
        if !own_with_room(old, me) {
            self.undo_enter(slot, old);
            return None;
        }
        ipc_shm::crash::point("rwlock.read.counted");
        dekker_fence();
        // SeqCst: as above; it also acquires, pairing with the Release of the last writer's
        // unlock, so that writer's data is visible.
        if self.writer.state_word().load(Ordering::SeqCst) == 0 {
            return Some((i, slot, me));
        }
        self.leave(slot, me);
        None
    }

    /// Take a read lock (the full path).
    pub(crate) fn read_acquire(&self, wait: Wait) -> Result<ReadHeld, RawError> {
        let me = owner::me()?;
        self.read_slow(me, wait)
    }

    #[cold]
    fn read_slow(&self, me: u32, wait: Wait) -> Result<ReadHeld, RawError> {
        let mut rounds = 0;
        loop {
            // Wait until no writer holds or waits; a dead writer's word is inherited.
            if let Some(held) = self.writer.slow(me, wait, Mode::WaitFree)? {
                // The writer word is ours, exclusively: let the readers drain out.
                writer_fence();
                return match self.drain_readers(wait) {
                    Ok(()) => Ok(ReadHeld(ReadKind::Exclusive(held))),
                    Err(e) => {
                        self.give_back(&held);
                        Err(e)
                    }
                };
            }
            let i = self.claim_slot(me)?;
            ipc_shm::crash::point("rwlock.read.counted");
            dekker_fence();
            // SeqCst: as in `read_fast`.
            if self.writer.state_word().load(Ordering::SeqCst) == 0 {
                return Ok(ReadHeld(ReadKind::Slot { slot: i as u32, owner: me }));
            }
            self.leave_slot(i, me);
            // A writer came between our two looks. Bounded: a `try_` gives up after a few
            // such rounds, a timed one at its deadline.
            rounds += 1;
            if wait == Wait::No && rounds >= TRY_ROUNDS {
                return Err(RawError::WouldBlock);
            }
            if wait != Wait::No && wait.expired() {
                return Err(RawError::TimedOut);
            }
            spin_loop();
        }
    }

    /// Bump a reader slot for `me`: its own, a free or idle one, or a dead reader's.
    fn claim_slot(&self, me: u32) -> Result<usize, RawError> {
        let start = me as usize % READER_SLOTS;
        for pass in 0..2 {
            for k in 0..READER_SLOTS {
                let i = (start + k) % READER_SLOTS;
                let slot = self.slot(i);
                loop {
                    // Relaxed: the CAS re-checks it.
                    let v = slot.load(Ordering::Relaxed);
                    let (owner, count) = split(v);
                    let new = if owner == me && count < COUNT_MASK {
                        v + 1
                    } else if count == 0 && owner != me {
                        // Free, or reserved by a process that holds nothing through it.
                        join(me, 1)
                    } else if pass == 1 && owner != me && owner::status(owner) == Status::Dead {
                        // A dead reader's slot: reclaim it (never an Unknown owner's).
                        join(me, 1)
                    } else {
                        break;
                    };
                    // SeqCst: the reader half of the Dekker pair, as in `read_fast`.
                    if slot.compare_exchange(v, new, Ordering::SeqCst, Ordering::Relaxed).is_ok() {
                        return Ok(i);
                    }
                }
            }
        }
        Err(RawError::TooManyReaders)
    }

    /// Give back one read count of slot `i`, held by `me`; wake a draining writer when the
    /// count reaches zero.
    #[inline]
    pub(crate) fn leave_slot(&self, i: usize, me: u32) {
        self.leave(self.slot(i), me);
    }

    /// [`leave_slot`](Self::leave_slot) with the slot at hand (`slot` is one of ours).
    #[inline]
    pub(crate) fn leave(&self, slot: &AtomicU64, me: u32) {
        // AcqRel: Release, so our reads of the data happen before the writer's writes (it
        // acquires this value); Acquire, so a writer's WAITING mark read here synchronises
        // with it (its read of `drain` happened before our bump). Nobody else changes a slot
        // whose count is not zero except to reclaim a dead reader's, and we are alive, so one
        // decrement suffices.
        let old = slot.fetch_sub(1, Ordering::AcqRel);
        if !left_clean(old, me) {
            self.left_slow(slot, old, me);
        }
    }

    /// The rest of [`leave_slot`](Self::leave_slot): a foreign slot value, or a writer to
    /// wake.
    #[cold]
    fn left_slow(&self, slot: &AtomicU64, old: u64, me: u32) {
        if (old >> 32) as u32 != me || old as u32 & COUNT_MASK == 0 {
            // Not ours (a faulty peer rewrote it): put it back as it was.
            self.undo_leave(slot);
        } else if old as u32 == (WAITING as u32) | 1 {
            // We emptied a slot a writer waits on.
            self.wake_writer(slot, old - 1);
        }
    }

    /// Take back a stray increment of `slot` made when it held `old`: while the slot still
    /// has `old`'s owner and a count, ours is in it (a slot with a count is never taken over,
    /// and a dead owner's that is reclaimed never gets that owner back). Wakes a writer if
    /// this empties a slot it waits on, as a leaving reader would.
    #[cold]
    fn undo_enter(&self, slot: &AtomicU64, old: u64) {
        // Relaxed: the CAS re-checks it.
        let mut w = slot.load(Ordering::Relaxed);
        loop {
            if w >> 32 != old >> 32 || w as u32 & COUNT_MASK == 0 {
                return; // reclaimed or taken over: our increment went with it
            }
            // AcqRel: as the decrement in `leave_slot`.
            match slot.compare_exchange(w, w - 1, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => {
                    if w as u32 == (WAITING as u32) | 1 {
                        self.wake_writer(slot, w - 1);
                    }
                    return;
                }
                Err(actual) => w = actual,
            }
        }
    }

    #[cold]
    fn undo_leave(&self, slot: &AtomicU64) {
        // Relaxed: restores a foreign value; orders nothing.
        slot.fetch_add(1, Ordering::Relaxed);
    }

    /// We emptied slot `slot` (now `now`) that a writer waits on: clear the mark, bump the
    /// epoch the writer sleeps on, wake it.
    #[cold]
    fn wake_writer(&self, slot: &AtomicU64, now: u64) {
        // Relaxed: a failed clear (the slot changed) leaves a stale mark, which costs at most
        // a spurious wake later.
        let _ = slot.compare_exchange(now, now & !WAITING, Ordering::Relaxed, Ordering::Relaxed);
        // Release: the writer's futex compare or its wake-up sees the new epoch.
        self.drain.fetch_add(1, Ordering::Release);
        futex::wake_all(&self.drain);
    }

    /// As the holder of the writer word, wait until every reader slot is empty, reclaiming
    /// the slots of dead readers.
    #[inline]
    fn drain_readers(&self, wait: Wait) -> Result<(), RawError> {
        // SeqCst: the writer half of the Dekker pair; it also acquires, pairing with the
        // leaving readers' decrements.
        if self.slots.iter().all(|s| split(s.load(Ordering::SeqCst)).1 == 0) {
            return Ok(());
        }
        self.drain_inner(wait)
    }

    #[cold]
    fn drain_inner(&self, wait: Wait) -> Result<(), RawError> {
        for i in 0..READER_SLOTS {
            let slot = self.slot(i);
            let mut spin = SpinWait::for_locks();
            let mut schedule = Schedule::new();
            let mut slept = false;
            let mut check = false;
            loop {
                // SeqCst: the writer half of the Dekker pair (after the fence that follows our
                // taking the writer word); it also acquires, pairing with the leaving reader's
                // decrement.
                let v = slot.load(Ordering::SeqCst);
                let (owner, count) = split(v);
                if count == 0 {
                    break;
                }
                if wait != Wait::No && !slept && spin.spin() {
                    continue;
                }
                if wait == Wait::No || !slept || check {
                    check = false;
                    // Only a Dead owner's slot is reclaimed: a live reader, and an Unknown
                    // one (garbage, never an id), are waited on until the deadline.
                    if owner::status(owner) == Status::Dead {
                        // SeqCst: keeps the slot's modification order simple for readers.
                        let _ = slot.compare_exchange(v, 0, Ordering::SeqCst, Ordering::Relaxed);
                        continue;
                    }
                }
                let Wait::Until(until) = wait else { return Err(RawError::WouldBlock) };
                // Read the epoch, then mark the slot WAITING with an RMW: the reader whose
                // decrement empties it reads our mark (AcqRel on both sides), so its bump of
                // the epoch follows our read and the futex wait cannot sleep through it.
                // Relaxed: ordered by the RMW that follows, as explained.
                let armed = self.drain.load(Ordering::Relaxed);
                if slot
                    .compare_exchange(v, v | WAITING, Ordering::AcqRel, Ordering::Relaxed)
                    .is_err()
                {
                    continue;
                }
                if until.has_passed() {
                    return Err(RawError::TimedOut);
                }
                let end = schedule.next(until);
                slept = true;
                if futex::wait(&self.drain, armed, end.instant()) == WaitResult::TimedOut {
                    if until.has_passed() {
                        return Err(RawError::TimedOut);
                    }
                    check = true;
                    spin_loop();
                }
            }
        }
        Ok(())
    }

    /// Undo an acquisition of the writer word that could not complete (timeout while readers
    /// drain): a clean one is released; an inherited one goes back to the dead owner's id, so
    /// the next locker inherits it (and is told) as we were.
    fn give_back(&self, held: &Held) {
        match held.dead_owner() {
            None => {
                self.writer.release(held.owner(), true);
            }
            Some(dead) => self.writer.restore_dead(held, dead),
        }
    }

    /// Take the write lock.
    #[inline]
    pub(crate) fn write_acquire(&self, wait: Wait) -> Result<Held, RawError> {
        let me = owner::me()?;
        // SeqCst (an Acquire too): the writer half of the Dekker pair (writer word, then the
        // slots); pairs with the previous writer's Release unlock.
        let held = if self
            .writer
            .state_word()
            .compare_exchange(0, owner_word(me), Ordering::SeqCst, Ordering::Relaxed)
            .is_ok()
        {
            dekker_fence();
            Held::new(me, 0)
        } else {
            let held = self.writer.slow(me, wait, Mode::Acquire)?.ok_or(RawError::WouldBlock)?;
            // The slow path's CAS is only Acquire: order it before the slot loads.
            writer_fence();
            held
        };
        ipc_shm::crash::point("rwlock.write.draining");
        match self.drain_readers(wait) {
            Ok(()) => Ok(held),
            Err(e) => {
                self.give_back(&held);
                Err(e)
            }
        }
    }

    /// Release the write lock held as `owner` (wakes every waiter: readers may all proceed).
    #[cfg(not(ipc_loom))] // lock_api's surface only
    #[inline]
    pub(crate) fn write_release(&self, owner: u32) -> bool {
        self.writer.release(owner, true)
    }

    /// Release a read acquisition.
    #[cfg(not(ipc_loom))] // lock_api's surface only
    #[inline]
    pub(crate) fn read_release(&self, held: ReadHeld) {
        match held.0 {
            ReadKind::Slot { slot, owner } => self.leave_slot(slot as usize, owner),
            ReadKind::Exclusive(h) => {
                self.write_release(h.owner());
            }
        }
    }

    /// Split a read acquisition: `Ok((slot, owner))` for a shared one, `Err(held)` for one
    /// that inherited the writer word.
    pub(crate) fn read_parts(held: ReadHeld) -> Result<(u32, u32), Held> {
        match held.0 {
            ReadKind::Slot { slot, owner } => Ok((slot, owner)),
            ReadKind::Exclusive(h) => Err(h),
        }
    }

    pub(crate) fn writer(&self) -> &RawMutex {
        &self.writer
    }

    /// Blocking read for lock_api's surface (retries the busy outcomes).
    pub(crate) fn read_blocking(&self) -> Result<ReadHeld, RawError> {
        loop {
            match self.read_acquire(Wait::FOREVER) {
                Err(RawError::WouldBlock | RawError::TimedOut) => continue,
                other => return other,
            }
        }
    }

    /// Blocking write (retries the busy outcomes).
    pub(crate) fn write_blocking(&self) -> Result<Held, RawError> {
        loop {
            match self.write_acquire(Wait::FOREVER) {
                Err(RawError::WouldBlock | RawError::TimedOut) => continue,
                other => return other,
            }
        }
    }

    /// Read locks held now, summed over the table (a snapshot, garbage included).
    pub fn reader_count(&self) -> u64 {
        self.slots
            .iter()
            // Relaxed: a snapshot.
            .map(|s| u64::from(split(s.load(Ordering::Relaxed)).1))
            .sum()
    }

    /// Whether a writer holds (or is draining readers for) the writer word (a snapshot).
    pub fn is_locked_exclusive(&self) -> bool {
        self.writer.is_locked()
    }

    /// Whether the lock is permanently unusable.
    pub fn is_not_recoverable(&self) -> bool {
        self.writer.is_not_recoverable()
    }

    /// The writer lock's state (a snapshot, for diagnostics; the mutex state table applies).
    pub fn writer_word_value(&self) -> u64 {
        self.writer.word_value()
    }

    /// If this process holds the write lock inherited from a dead writer, declare the data
    /// consistent again; see [`RawMutex::mark_consistent`].
    pub fn mark_consistent(&self) -> bool {
        self.writer.mark_consistent()
    }

    /// Reader slot `i` (a snapshot, for diagnostics; `i` wraps): `owner id << 32 | count`,
    /// bit 31 set while a writer waits for it (see the layout in the module docs).
    pub fn slot_value(&self, i: usize) -> u64 {
        // Relaxed: a snapshot.
        self.slot(i).load(Ordering::Relaxed)
    }
}

#[cfg(not(ipc_loom))]
// SAFETY: readers and a writer exclude each other through the Dekker pair described in the
// module docs (every read count is taken before checking the writer word, and every writer
// takes the writer word before checking the counts, with sequentially consistent operations);
// writers exclude each other through the writer word, a robust mutex word. Guard states are
// plain data; forgetting one leaves the lock held, which is safe. Panics happen before
// anything is acquired.
unsafe impl lock_api::RawRwLock for RawRwLock {
    #[allow(clippy::declare_interior_mutable_const)] // the documented lock_api idiom
    const INIT: Self = RawRwLock::new();
    type SharedGuard = ReadHeld;
    type ExclusiveGuard = Held;

    /// # Panics
    /// If the lock is not recoverable or corrupted, the reader table is full, or this process
    /// cannot get an owner id: lock_api cannot return an error. [`RwLock`](crate::RwLock) can.
    #[inline]
    fn lock_shared(&self) -> ReadHeld {
        if let Some((slot, owner)) = self.read_fast() {
            return ReadHeld(ReadKind::Slot { slot, owner });
        }
        match self.read_blocking() {
            Ok(h) => h,
            Err(e) => panic!("ipc_lock::RawRwLock::lock_shared: {e}; use ipc_lock::RwLock"),
        }
    }

    #[inline]
    fn try_lock_shared(&self) -> Option<ReadHeld> {
        match self.read_fast() {
            Some((slot, owner)) => Some(ReadHeld(ReadKind::Slot { slot, owner })),
            None => self.read_acquire(Wait::No).ok(),
        }
    }

    #[inline]
    unsafe fn unlock_shared(&self, guard: ReadHeld) {
        // A forked child's copy of a guard releases nothing its parent holds.
        let owner = match &guard.0 {
            ReadKind::Slot { owner, .. } => *owner,
            ReadKind::Exclusive(h) => h.owner(),
        };
        if owner::is_me(owner) {
            self.read_release(guard);
        }
    }

    /// # Panics
    /// As `lock_shared`.
    fn lock_exclusive(&self) -> Held {
        match self.write_blocking() {
            Ok(h) => h,
            Err(e) => panic!("ipc_lock::RawRwLock::lock_exclusive: {e}; use ipc_lock::RwLock"),
        }
    }

    fn try_lock_exclusive(&self) -> Option<Held> {
        self.write_acquire(Wait::No).ok()
    }

    unsafe fn unlock_exclusive(&self, guard: Held) {
        if owner::is_me(guard.owner()) {
            self.write_release(guard.owner());
        }
    }

    fn is_locked(&self) -> bool {
        self.is_locked_exclusive() || self.reader_count() > 0
    }

    fn is_locked_exclusive(&self) -> bool {
        RawRwLock::is_locked_exclusive(self)
    }
}

#[cfg(not(ipc_loom))]
// SAFETY: as for `RawRwLock`; the timed forms use the same acquisitions, and a failed one
// gives back whatever it took.
unsafe impl lock_api::RawRwLockTimed for RawRwLock {
    type Duration = std::time::Duration;
    type Instant = std::time::Instant;

    fn try_lock_shared_for(&self, timeout: std::time::Duration) -> Option<ReadHeld> {
        self.try_lock_shared_until_wait(ipc_shm::Deadline::after(timeout))
    }

    fn try_lock_shared_until(&self, deadline: std::time::Instant) -> Option<ReadHeld> {
        self.try_lock_shared_until_wait(deadline.into())
    }

    fn try_lock_exclusive_for(&self, timeout: std::time::Duration) -> Option<Held> {
        self.try_lock_exclusive_until_wait(ipc_shm::Deadline::after(timeout))
    }

    fn try_lock_exclusive_until(&self, deadline: std::time::Instant) -> Option<Held> {
        self.try_lock_exclusive_until_wait(deadline.into())
    }
}

#[cfg(not(ipc_loom))]
impl RawRwLock {
    fn try_lock_shared_until_wait(&self, deadline: ipc_shm::Deadline) -> Option<ReadHeld> {
        match self.read_acquire(Wait::Until(deadline)) {
            Ok(h) => Some(h),
            Err(RawError::WouldBlock | RawError::TimedOut) => None,
            Err(_) => {
                // lock_api: an unsuccessful timed lock must not return before its timeout.
                crate::raw_mutex::sleep_until(deadline);
                None
            }
        }
    }

    fn try_lock_exclusive_until_wait(&self, deadline: ipc_shm::Deadline) -> Option<Held> {
        match self.write_acquire(Wait::Until(deadline)) {
            Ok(h) => Some(h),
            Err(RawError::WouldBlock | RawError::TimedOut) => None,
            Err(_) => {
                crate::raw_mutex::sleep_until(deadline);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-comparison checks of the read fast path agree with the field-by-field rules.
    #[test]
    fn fast_checks_match_the_slot_fields() {
        let ids = [1, 2, 31, 32, 33, 0x3fff, 0x4000, 0x3fff_ffff];
        let counts = [0, 1, 2, 1000, COUNT_MASK - 1, COUNT_MASK];
        for &me in &ids {
            for &owner in ids.iter().chain(&[0, me - 1, me + 1, u32::MAX]) {
                for &count in &counts {
                    for waiting in [0, WAITING] {
                        let v = join(owner, count) | waiting;
                        let room = owner == me && count < COUNT_MASK;
                        assert_eq!(own_with_room(v, me), room, "{v:#x} as {me:#x}");
                        let clean = owner == me && count >= 1 && waiting == 0;
                        assert_eq!(left_clean(v, me), clean, "{v:#x} as {me:#x}");
                    }
                }
            }
        }
    }
}
