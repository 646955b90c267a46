//! The MPMC algorithm: safe code over the atomics of a [`Region`]. The ring decisions come
//! from [`ring`](crate::ring); this module does the loads (each once), the CASes and the
//! notifications. It compiles under loom unchanged. The SPSC algorithm is in [`spsc`].
//!
//! A bounded Vyukov-style ring whose slot words also carry a state and the owner id (see the
//! ring module), so that every claim records its owner in the same CAS, and a slot whose owner
//! died can be recognised and skipped by anyone who finds it.
//!
//! `head`/`tail` are hints (helped on by anyone who sees them lag); the slot words are the
//! truth, so a process killed between claiming a slot and advancing an index stalls nobody.

pub(crate) mod spsc;

use ipc_shm::liveness::{self, Status};

use crate::region::{Ctrl, PeerTable, Region, Stat};
use crate::ring::{
    self, ConsumerView, Corruption, FREE, ProducerView, READING, READY, WRITING, consumer_view,
    free_word, next_lap, pack, producer_view, unpack,
};
use crate::sync::Ordering::{AcqRel, Acquire, Relaxed, Release};

/// Retries after which a ring that keeps changing under us is declared corrupt (an honest
/// ring makes progress on every failed CAS, so this is only reached under a hostile writer).
const MAX_RETRIES: u32 = 1 << 22;

/// Why a producer could not claim a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReserveErr {
    /// The slot still holds the previous lap: `pos` and the word found there.
    Full {
        pos: u64,
        word: u64,
    },
    Closed,
    Corrupted(Corruption),
}

/// Why a consumer could not claim a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClaimErr {
    Empty,
    /// The next message is being written (or its writer died): `pos` and the word found.
    Pending {
        pos: u64,
        word: u64,
    },
    Closed,
    Corrupted(Corruption),
}

/// A claimed message: its position and validated length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Claimed {
    pub(crate) pos: u64,
    pub(crate) len: usize,
}

/// The closed flag: `Ok(false)` open, `Ok(true)` closed, `Err` a value `close` never writes.
pub(crate) fn closed_flag(r: &Region) -> Result<bool, Corruption> {
    closed_state(r.ctrl())
}

/// [`closed_flag`] of a control block.
pub(crate) fn closed_state(ctrl: &Ctrl) -> Result<bool, Corruption> {
    // Acquire: pairs with the Release store in `close`.
    match ctrl.closed.load(Acquire) {
        0 => Ok(false),
        1 => Ok(true),
        found => Err(Corruption::ClosedFlag { found }),
    }
}

/// For the readiness checks of waiters: a garbage flag counts as something to do (the
/// attempt that follows reports it).
fn closed(r: &Region) -> bool {
    closed_flag(r) != Ok(false)
}

/// Claim the slot at the head for `me` (a message of `len` bytes will be written: a
/// prefetch hint only); returns its position.
///
/// With `direct`, the first attempt claims with a CAS from the free word it expects instead
/// of loading the word first: the line then crosses from the last consumer once, fetched for
/// ownership, instead of a shared read followed by an upgrade (two round trips between
/// cores). Callers pass `false` when the queue was recently full, where a failing CAS would
/// take the line away from a consumer reading it.
pub(crate) fn try_reserve(
    r: &Region,
    me: u32,
    len: usize,
    mut direct: bool,
) -> Result<u64, ReserveErr> {
    let ctrl = r.ctrl();
    let cap = r.cfg().capacity;
    match closed_flag(r) {
        Ok(false) => {}
        Ok(true) => return Err(ReserveErr::Closed),
        Err(c) => {
            ctrl.bump(Stat::Corrupt);
            return Err(ReserveErr::Corrupted(c));
        }
    }
    // Relaxed: the head is a hint; the slot word decides (loaded with Acquire below).
    let mut pos = ctrl.head.load(Relaxed);
    for _ in 0..MAX_RETRIES {
        let slot = r.slot(pos);
        let word = if direct {
            direct = false;
            // Ask for the payload's other lines now, in parallel with the CAS: the CAS is a
            // full barrier, so stores to lines still shared would otherwise wait for it and
            // then each for its own invalidation round trip.
            r.prefetch_for_write(pos, len);
            // Acquire: pairs with the Release store that freed the slot (`release`, `cancel`,
            // `recover`), so the previous reader is done with the payload before we write it.
            // Acquire on failure: the word found is classified below like a loaded one.
            match slot.word.compare_exchange(
                free_word(pos),
                pack(pos as u32, WRITING, me),
                Acquire,
                Acquire,
            ) {
                Ok(_) => return Ok(claimed_at(r, pos)),
                Err(found) => found,
            }
        } else {
            // Acquire: as above.
            slot.word.load(Acquire)
        };
        match producer_view(pos, word, cap) {
            Ok(ProducerView::Claim) => {
                let claimed = pack(pos as u32, WRITING, me);
                // Acquire: as the load above. Relaxed on failure: we reload.
                match slot.word.compare_exchange(word, claimed, Acquire, Relaxed) {
                    Ok(_) => return Ok(claimed_at(r, pos)),
                    // Relaxed: hint.
                    Err(_) => pos = ctrl.head.load(Relaxed),
                }
            }
            Ok(ProducerView::Advance) => {
                let next = pos.wrapping_add(1);
                // Relaxed: a hint.
                pos = match ctrl.head.compare_exchange(pos, next, Relaxed, Relaxed) {
                    Ok(_) => next,
                    Err(actual) => actual,
                };
            }
            Ok(ProducerView::Full(_)) => {
                // Relaxed: hint; a head that moved means our view was stale.
                let now = ctrl.head.load(Relaxed);
                if now != pos {
                    pos = now;
                    continue;
                }
                return Err(ReserveErr::Full { pos, word });
            }
            Err(c) => {
                // Relaxed: hint; a stale position can look like corruption: retry first.
                let now = ctrl.head.load(Relaxed);
                if now != pos {
                    pos = now;
                    continue;
                }
                ctrl.bump(Stat::Corrupt);
                return Err(ReserveErr::Corrupted(c));
            }
        }
    }
    ctrl.bump(Stat::Corrupt);
    Err(ReserveErr::Corrupted(Corruption::SlotWord { pos, word: 0 }))
}

/// After a producer claimed `pos`: help the head on and return `pos`.
#[inline]
fn claimed_at(r: &Region, pos: u64) -> u64 {
    // Relaxed: a hint; a failure means someone helped already.
    let _ = r.ctrl().head.compare_exchange(pos, pos.wrapping_add(1), Relaxed, Relaxed);
    ipc_shm::crash::point("queue.after_reserve");
    pos
}

/// Publish the claimed slot at `pos` holding `len` bytes (already written).
#[inline]
pub(crate) fn commit(r: &Region, pos: u64, len: usize) {
    let slot = r.slot(pos);
    // Relaxed: published by the Release store of the word just below.
    slot.len.store(len as u32, Relaxed);
    ipc_shm::crash::point("queue.before_commit");
    // SYNC POINT. Release: publishes the payload and length; pairs with the Acquire CAS that
    // claims the slot in `try_claim`. A process killed before this line never published.
    slot.word.store(pack(pos as u32, READY, 0), Release);
    r.ctrl().not_empty.notify_all();
}

/// Give back a claimed slot without publishing it: it becomes free for the next lap and
/// consumers skip its position.
pub(crate) fn cancel(r: &Region, pos: u64, me: u32) {
    let slot = r.slot(pos);
    let cap = r.cfg().capacity;
    // AcqRel: Release orders our (discarded) writes before the next claimer's Acquire.
    // Relaxed on failure: a hostile peer changed the word; nothing of ours to undo.
    if slot
        .word
        .compare_exchange(pack(pos as u32, WRITING, me), next_lap(pos as u32, cap), AcqRel, Relaxed)
        .is_ok()
    {
        r.ctrl().bump(Stat::Cancelled);
    }
    r.ctrl().not_empty.notify_all();
    r.ctrl().not_full.notify_all();
}

/// Claim the next committed message for `me`.
pub(crate) fn try_claim(r: &Region, me: u32) -> Result<Claimed, ClaimErr> {
    let ctrl = r.ctrl();
    let cfg = r.cfg();
    let cap = cfg.capacity;
    // Relaxed: the tail is a hint; the slot word decides.
    let mut pos = ctrl.tail.load(Relaxed);
    for _ in 0..MAX_RETRIES {
        let slot = r.slot(pos);
        // Acquire: pairs with the Release commit (and frees); the CAS below re-acquires.
        let word = slot.word.load(Acquire);
        let view = consumer_view(pos, word, cap);
        match view {
            Ok(ConsumerView::Claim) => {
                // Fetch the payload's other lines while the CAS below upgrades the word's
                // line (a full barrier: loads after it would wait, then miss one by one).
                r.prefetch_message(pos, slot);
                let claimed = pack(pos as u32, READING, me);
                // Acquire: pairs with the Release store in `commit`: the payload and length
                // are visible. Relaxed on failure: we reload.
                if slot.word.compare_exchange(word, claimed, Acquire, Relaxed).is_err() {
                    // Relaxed: hint.
                    pos = ctrl.tail.load(Relaxed);
                    continue;
                }
                // Relaxed: a hint. (Consumers never touch the producers' head line: that
                // would bounce it on every message; `len` tolerates a tail briefly ahead.)
                let _ = ctrl.tail.compare_exchange(pos, pos.wrapping_add(1), Relaxed, Relaxed);
                ipc_shm::crash::point("queue.after_claim");
                // Relaxed: ordered by the Acquire CAS above. Loaded once, checked, used.
                let len = slot.len.load(Relaxed);
                return match ring::check_len(len, cfg.max_message) {
                    Ok(len) => Ok(Claimed { pos, len }),
                    Err(c) => {
                        ctrl.bump(Stat::Corrupt);
                        release(r, pos);
                        Err(ClaimErr::Corrupted(c))
                    }
                };
            }
            Ok(ConsumerView::Advance) => {
                let next = pos.wrapping_add(1);
                // Relaxed: hint.
                pos = match ctrl.tail.compare_exchange(pos, next, Relaxed, Relaxed) {
                    Ok(_) => next,
                    Err(actual) => actual,
                };
            }
            Ok(ConsumerView::Empty | ConsumerView::Pending(_)) | Err(_) => {
                // Relaxed: hint; a stale position retries.
                let now = ctrl.tail.load(Relaxed);
                if now != pos {
                    pos = now;
                    continue;
                }
                return Err(match view {
                    Ok(ConsumerView::Pending(_)) => ClaimErr::Pending { pos, word },
                    Err(c) => {
                        ctrl.bump(Stat::Corrupt);
                        ClaimErr::Corrupted(c)
                    }
                    _ => match closed_flag(r) {
                        Ok(false) => ClaimErr::Empty,
                        Ok(true) => ClaimErr::Closed,
                        Err(c) => {
                            ctrl.bump(Stat::Corrupt);
                            ClaimErr::Corrupted(c)
                        }
                    },
                });
            }
        }
    }
    ctrl.bump(Stat::Corrupt);
    Err(ClaimErr::Corrupted(Corruption::SlotWord { pos, word: 0 }))
}

/// Release a claimed message: the slot is free for the next lap.
#[inline]
pub(crate) fn release(r: &Region, pos: u64) {
    let cap = r.cfg().capacity;
    // SYNC POINT. Release: our reads of the payload happen before the next producer's
    // writes; pairs with the Acquire claim in `try_reserve`.
    r.slot(pos).word.store(next_lap(pos as u32, cap), Release);
    r.ctrl().not_full.notify_all();
}

/// Recover the slot of `pos` found holding `word` if its owner (a producer writing it or a
/// consumer reading it) is dead. `true` if the slot changed (recovered by us or by anyone),
/// so the caller should retry at once. Slow path: one liveness query (~1 µs).
pub(crate) fn recover(r: &Region, pos: u64, word: u64) -> bool {
    let w = unpack(word);
    if w.owner == 0 || (w.state != WRITING && w.state != READING) {
        return false;
    }
    // Only a Dead owner is reclaimed: Unknown (garbage, registry unavailable) never is.
    if liveness::status_raw(w.owner) != Status::Dead {
        return false;
    }
    let slot = r.slot(pos);
    let cap = r.cfg().capacity;
    // AcqRel: Acquire so the dead owner's writes are ordered before our reuse, Release so
    // the next claimer sees the slot free. Relaxed on failure: someone else moved it.
    match slot.word.compare_exchange(word, next_lap(w.seq, cap), AcqRel, Relaxed) {
        Ok(_) => {
            let ctrl = r.ctrl();
            ctrl.bump(if w.state == WRITING { Stat::Abandoned } else { Stat::Lost });
            ctrl.not_empty.notify_all();
            ctrl.not_full.notify_all();
            true
        }
        Err(_) => true,
    }
}

/// List `me` in `table` (the processes of one side that ever used the queue): a free entry,
/// else one whose owner is dead, else the table is marked full. Cold: once per process,
/// side and handle; a few liveness queries when the table has no free entry.
pub(crate) fn list_peer(table: &PeerTable, me: u32) {
    let mut free = None;
    for e in &table.ids {
        // Acquire: pairs with the AcqRel CAS that listed the entry's owner.
        match e.load(Acquire) {
            id if id == me => return,
            0 if free.is_none() => free = Some(e),
            _ => {}
        }
    }
    // AcqRel: Release so that a waiter that acquires anything we publish later (a claim, a
    // commit) sees us listed. Relaxed on failure: taken meanwhile, the scan below retries.
    if free.is_some_and(|e| e.compare_exchange(0, me, AcqRel, Relaxed).is_ok()) {
        return;
    }
    for e in &table.ids {
        // Acquire: as above.
        let id = e.load(Acquire);
        if id == me {
            return;
        }
        // A dead owner's entry may be reused: it no longer says anything about the side.
        // (Unknown, e.g. garbage a peer wrote, is kept: it blocks Disconnected, the safe way.)
        if (id == 0 || liveness::status_raw(id) == Status::Dead)
            // AcqRel and Relaxed: as above.
            && e.compare_exchange(id, me, AcqRel, Relaxed).is_ok()
        {
            return;
        }
    }
    // Release: pairs with the Acquire load in `all_gone`.
    table.full.store(1, Release);
}

/// Whether every process listed in `table` is dead: at least one was listed, each listed
/// owner's status is `Dead` (`Alive` and `Unknown` both say no), and the table never filled
/// up (then nobody can tell). Slow path: one liveness query per entry, stopping at the first
/// owner that is not dead.
pub(crate) fn all_gone(table: &PeerTable) -> bool {
    // Acquire: pairs with the Release store in `list_peer`.
    if table.full.load(Acquire) != 0 {
        return false;
    }
    let mut listed = false;
    for e in &table.ids {
        // Acquire: pairs with the AcqRel CAS in `list_peer`.
        let id = e.load(Acquire);
        if id == 0 {
            continue;
        }
        if liveness::status_raw(id) != Status::Dead {
            return false;
        }
        listed = true;
    }
    listed
}

/// Whether a consumer has something to do: a message, a lagging tail, corruption, or close.
pub(crate) fn recv_ready(r: &Region) -> bool {
    let ctrl = r.ctrl();
    // Relaxed: hint.
    let pos = ctrl.tail.load(Relaxed);
    // Acquire: pairs with the Release commit.
    let word = r.slot(pos).word.load(Acquire);
    match consumer_view(pos, word, r.cfg().capacity) {
        Ok(ConsumerView::Empty | ConsumerView::Pending(_)) => closed(r),
        _ => true,
    }
}

/// Whether a producer has something to do: a free slot, a lagging head, corruption, or close.
pub(crate) fn send_ready(r: &Region) -> bool {
    let ctrl = r.ctrl();
    // Relaxed: hint.
    let pos = ctrl.head.load(Relaxed);
    // Acquire: pairs with the Release free.
    let word = r.slot(pos).word.load(Acquire);
    match producer_view(pos, word, r.cfg().capacity) {
        Ok(ProducerView::Full(_)) => closed(r),
        _ => true,
    }
}

/// Messages in the queue (committed or being written), at most the capacity.
pub(crate) fn len(r: &Region) -> usize {
    let ctrl = r.ctrl();
    // Relaxed: a snapshot. The tail can run briefly ahead of a head whose producer has not
    // advanced it yet: that counts as empty.
    let tail = ctrl.tail.load(Relaxed);
    let head = ctrl.head.load(Relaxed);
    let n = head.wrapping_sub(tail) as i64;
    n.clamp(0, i64::from(r.cfg().capacity)) as usize
}

/// Close: senders fail at once, receivers drain then fail; every sleeper wakes.
pub(crate) fn close(r: &Region) {
    let ctrl = r.ctrl();
    // Release: pairs with the Acquire loads in `closed`.
    ctrl.closed.store(1, Release);
    ctrl.not_empty.notify_all();
    ctrl.not_full.notify_all();
    ctrl.all_done.notify_all();
}

/// Messages committed and not yet released (slots READY or READING): the queued part of a
/// JoinableQueue's unfinished count. A scan of every slot word, not a snapshot: a message
/// that moves on during the scan is counted where its consumer's `in_progress` increment
/// (made before the release, seen through the Acquire load of the released word) puts it.
pub(crate) fn committed(r: &Region) -> u64 {
    let mut n = 0;
    for i in 0..u64::from(r.cfg().capacity) {
        // Acquire: pairs with the Release release of a slot, so a consumer's count taken
        // before it is visible to the caller's later load of `in_progress`.
        let w = unpack(r.slot(i).word.load(Acquire));
        if w.state == READY || w.state == READING {
            n += 1;
        }
    }
    n
}

/// Recover every slot whose owner (a producer writing it, a consumer reading it) is dead:
/// the slow path of waits that watch the whole queue (JoinableQueue::join).
pub(crate) fn recover_dead(r: &Region) {
    for i in 0..u64::from(r.cfg().capacity) {
        // Relaxed: `recover` re-checks the word with its CAS.
        let word = r.slot(i).word.load(Relaxed);
        let w = unpack(word);
        if w.state == WRITING || w.state == READING {
            let _ = recover(r, i, word);
        }
    }
}

/// Count slots held by `owner` (writing, reading): diagnostics for tests.
pub(crate) fn held_by(r: &Region, owner: u32) -> (usize, usize) {
    let mut held = (0, 0);
    for i in 0..u64::from(r.cfg().capacity) {
        // Relaxed: a diagnostic snapshot.
        let w = unpack(r.slot(i).word.load(Relaxed));
        if w.owner == owner && w.state == WRITING {
            held.0 += 1;
        }
        if w.owner == owner && w.state == READING {
            held.1 += 1;
        }
        let _ = FREE;
    }
    held
}
