//! The SPSC algorithm: safe code over the atomics of a ring's memory, the way
//! [`raw`](crate::raw) is for MPMC. The decisions come from the SPSC protocol of
//! [`ring`](crate::ring) (stamps, room, takeover); this module does the loads (each once), the
//! stores and the notifications. It compiles under loom unchanged: the queue runs it over the
//! mapped ring's fast-path view ([`Hot`](crate::region::Hot)), the loom models over heap
//! cells.
//!
//! Per message the producer writes payload and length and stamps the slot (one Release store
//! publishes), then bumps its own `head` line; the consumer checks the stamp (Acquire), and
//! once done with the message frees the slot with one Release store of `tail`. The fast paths
//! are inline; closing, refreshing the cached tail and every corruption check live in
//! out-of-line cold paths.

use crate::region::{Ctrl, SlotHdr, Stat};
use crate::ring::{self, Corruption, SpscView};
use crate::sync::Ordering::{Acquire, Relaxed, Release};

/// The memory an SPSC side works on.
pub(crate) trait Ring {
    /// Where the slot of a position is (made only by [`at`](Self::at)).
    type At: Copy;
    /// The slot of `pos`.
    fn at(&self, pos: u64) -> Self::At;
    /// The control block.
    fn ctrl(&self) -> &Ctrl;
    /// The header of the slot `at`.
    fn hdr(&self, at: Self::At) -> &SlotHdr;
    /// Slots (a power of two).
    fn capacity(&self) -> u32;
    /// Largest message.
    fn max_message(&self) -> u32;
}

#[cfg(not(ipc_loom))]
impl Ring for crate::region::Hot {
    type At = crate::region::At;

    #[inline]
    fn at(&self, pos: u64) -> Self::At {
        crate::region::Hot::at(self, pos)
    }

    #[inline]
    fn ctrl(&self) -> &Ctrl {
        crate::region::Hot::ctrl(self)
    }

    #[inline]
    fn hdr(&self, at: Self::At) -> &SlotHdr {
        crate::region::Hot::hdr(self, at)
    }

    #[inline]
    fn capacity(&self) -> u32 {
        self.cap
    }

    #[inline]
    fn max_message(&self) -> u32 {
        self.max
    }
}

#[cfg(ipc_loom)]
impl Ring for crate::region::Region {
    type At = u64;

    fn at(&self, pos: u64) -> u64 {
        pos
    }

    fn ctrl(&self) -> &Ctrl {
        crate::region::Region::ctrl(self)
    }

    fn hdr(&self, pos: u64) -> &SlotHdr {
        self.slot(pos)
    }

    fn capacity(&self) -> u32 {
        self.cfg().capacity
    }

    fn max_message(&self) -> u32 {
        self.cfg().max_message
    }
}

/// Why the producer got no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    Full,
    Closed,
    TooLong,
    Corrupted(Corruption),
    /// Full, and the consumer role's holder is dead (only from a blocking wait).
    Disconnected,
}

/// Why the consumer got no message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nothing {
    Empty,
    Closed,
    Corrupted(Corruption),
    /// Empty, and the producer role's holder is dead (only from a blocking wait).
    Disconnected,
}

/// The closed flag, or a corruption counted and reported.
fn closed<M: Ring>(m: &M) -> Result<bool, Corruption> {
    crate::raw::closed_state(m.ctrl()).inspect_err(|_| m.ctrl().bump(Stat::Corrupt))
}

/// The producer's private state: its head and its cached copy of the consumer's tail.
#[derive(Debug)]
pub(crate) struct Producer {
    head: u64,
    cached_tail: u64,
}

impl Producer {
    /// Continue from the published indices as the producer (the caller holds the role): a
    /// message a dead predecessor stamped without publishing its head counts as sent.
    ///
    /// # Errors
    /// The indices cannot come from an honest ring.
    pub(crate) fn attach<M: Ring>(m: &M) -> Result<Producer, Corruption> {
        let ctrl = m.ctrl();
        // Relaxed: our own index (the role's Acquire ordered the previous holder's stores).
        let head = ctrl.head.load(Relaxed);
        // Acquire: pairs with the consumer's Release store of tail.
        let tail = ctrl.tail.load(Acquire);
        // Acquire: pairs with the dead producer's Release store of the stamp.
        let word = m.hdr(m.at(head)).word.load(Acquire);
        let next = ring::spsc_attach_producer(head, tail, word, m.capacity())?;
        if next != head {
            // Release: as in `publish`.
            ctrl.head.store(next, Release);
        }
        Ok(Producer { head: next, cached_tail: tail })
    }

    /// The slot for a message of `len` bytes: the common case inline (one compare against
    /// the cached tail), everything else out of line.
    #[inline]
    pub(crate) fn try_slot<M: Ring>(&mut self, m: &M, len: usize) -> Result<u64, Refused> {
        // Relaxed: checked again (Acquire) on the slow path below before reporting Closed.
        if len > m.max_message() as usize
            || m.ctrl().closed.load(Relaxed) != 0
            || self.head.wrapping_sub(self.cached_tail) >= u64::from(m.capacity())
        {
            return self.try_slot_slow(m, len);
        }
        Ok(self.head)
    }

    #[cold]
    #[inline(never)]
    fn try_slot_slow<M: Ring>(&mut self, m: &M, len: usize) -> Result<u64, Refused> {
        if len > m.max_message() as usize {
            return Err(Refused::TooLong);
        }
        match closed(m) {
            Ok(false) => {}
            Ok(true) => return Err(Refused::Closed),
            Err(c) => return Err(Refused::Corrupted(c)),
        }
        // Acquire: pairs with the consumer's Release store of tail: it is done with the
        // slot we are about to overwrite.
        self.cached_tail = m.ctrl().tail.load(Acquire);
        match ring::spsc_room(self.head, self.cached_tail, m.capacity()) {
            Ok(true) => Ok(self.head),
            Ok(false) => Err(Refused::Full),
            Err(c) => Err(Refused::Corrupted(c)),
        }
    }

    /// Publish the message of `len` bytes written in the slot `at` of `pos` (from
    /// [`try_slot`](Self::try_slot)): [`stamp`](Self::stamp), then [`advance`](Self::advance).
    #[inline]
    pub(crate) fn publish<M: Ring>(&mut self, m: &M, at: M::At, pos: u64, len: usize) {
        Self::stamp(m, at, pos, len);
        self.advance(m, pos);
    }

    /// Commit the message: its length, then the stamp. From here on the message exists
    /// (a producer killed before `advance` left it for the next one to count).
    #[inline]
    pub(crate) fn stamp<M: Ring>(m: &M, at: M::At, pos: u64, len: usize) {
        let slot = m.hdr(at);
        // Relaxed: published by the Release store of the stamp below.
        slot.len.store(len as u32, Relaxed);
        ipc_shm::crash::point("queue.spsc.before_publish");
        // SYNC POINT. Release: publishes the payload and length; pairs with the Acquire load
        // of the stamp in `Consumer::try_next`.
        slot.word.store(ring::spsc_stamp(pos), Release);
        ipc_shm::crash::point("queue.spsc.after_stamp");
    }

    /// Move the head past `pos` and wake a sleeping consumer.
    #[inline]
    pub(crate) fn advance<M: Ring>(&mut self, m: &M, pos: u64) {
        self.head = pos.wrapping_add(1);
        let ctrl = m.ctrl();
        // Release: pairs with Acquire loads of head (len, checks, a new producer's attach);
        // it follows the stamp, so head > pos implies the stamp of pos is visible.
        ctrl.head.store(self.head, Release);
        ctrl.not_empty.notify_all();
    }
}

/// The consumer's private state: its tail.
#[derive(Debug)]
pub(crate) struct Consumer {
    tail: u64,
}

impl Consumer {
    /// Continue from the published indices as the consumer (the caller holds the role).
    ///
    /// # Errors
    /// The indices cannot come from an honest ring.
    pub(crate) fn attach<M: Ring>(m: &M) -> Result<Consumer, Corruption> {
        let ctrl = m.ctrl();
        // Relaxed: our own index.
        let tail = ctrl.tail.load(Relaxed);
        // Acquire: pairs with the producer's Release store of head.
        let head = ctrl.head.load(Acquire);
        ring::spsc_attach_consumer(head, tail, m.capacity())?;
        Ok(Consumer { tail })
    }

    /// The next message's position and validated length: the stamp of the slot at our tail
    /// decides (the producer's head is not read: polling it would pull the line the producer
    /// writes on every message). The common cases inline, the rest out of line.
    #[inline]
    pub(crate) fn try_next<M: Ring>(&mut self, m: &M) -> Result<(u64, usize), Nothing> {
        let pos = self.tail;
        let slot = m.hdr(m.at(pos));
        // Acquire: pairs with the producer's Release store of the stamp: payload and length
        // are visible. Loaded once.
        let word = slot.word.load(Acquire);
        if word == ring::spsc_stamp(pos) {
            // Relaxed: ordered by the Acquire load of the stamp. Loaded once, checked, used.
            let len = slot.len.load(Relaxed);
            if len <= m.max_message() {
                return Ok((pos, len as usize));
            }
        } else if ring::spsc_empty_word(pos, word, m.capacity())
            // Relaxed: a close is confirmed (Acquire) on the slow path.
            && m.ctrl().closed.load(Relaxed) == 0
        {
            // The previous lap's stamp (or the first lap's free word), queue open: empty.
            return Err(Nothing::Empty);
        }
        self.next_slow(m, pos, word)
    }

    /// The slot at `pos` held `word`: not a message with a valid length. Empty, closed,
    /// corrupt, or a message after all (one that landed while a close was seen).
    #[cold]
    #[inline(never)]
    fn next_slow<M: Ring>(
        &mut self,
        m: &M,
        pos: u64,
        mut word: u64,
    ) -> Result<(u64, usize), Nothing> {
        let slot = m.hdr(m.at(pos));
        let cap = m.capacity();
        let corrupt = |c| {
            m.ctrl().bump(Stat::Corrupt);
            Nothing::Corrupted(c)
        };
        if ring::spsc_view(pos, word, cap).map_err(corrupt)? == SpscView::Empty {
            match closed(m) {
                Ok(false) => return Err(Nothing::Empty),
                Ok(true) => {}
                Err(c) => return Err(Nothing::Corrupted(c)),
            }
            // Closed: one more look, a message may have landed before the close.
            // Acquire: pairs with the Release store of the stamp.
            word = slot.word.load(Acquire);
            if word != ring::spsc_stamp(pos) {
                return Err(Nothing::Closed);
            }
        }
        // Relaxed: ordered by the Acquire load of the stamp. Loaded once, checked, used.
        match ring::check_len(slot.len.load(Relaxed), m.max_message()) {
            Ok(len) => Ok((pos, len)),
            Err(c) => {
                // Skip the message: its length cannot be trusted.
                self.advance(m, pos);
                Err(corrupt(c))
            }
        }
    }

    /// Done with the message at `pos`: free its slot for the producer.
    #[inline]
    pub(crate) fn advance<M: Ring>(&mut self, m: &M, pos: u64) {
        self.tail = pos.wrapping_add(1);
        let ctrl = m.ctrl();
        // SYNC POINT. Release: we are done reading the slot; pairs with the producer's Acquire
        // load of tail before it overwrites it.
        ctrl.tail.store(self.tail, Release);
        ctrl.not_full.notify_all();
    }
}

/// For waiters: whether the producer has something to do (room, or a close to report).
pub(crate) fn send_ready<M: Ring>(m: &M) -> bool {
    let ctrl = m.ctrl();
    // Relaxed: the producer's own index. Acquire: pairs with the consumer's Release of tail.
    let head = ctrl.head.load(Relaxed);
    let tail = ctrl.tail.load(Acquire);
    head.wrapping_sub(tail) < u64::from(m.capacity()) || closed_or_bad(m)
}

/// For waiters: whether the consumer has something to do (a message, a word to report as
/// corrupt, or a close).
pub(crate) fn recv_ready<M: Ring>(m: &M) -> bool {
    let ctrl = m.ctrl();
    // Relaxed: the consumer's own index.
    let tail = ctrl.tail.load(Relaxed);
    // Acquire: pairs with the producer's Release store of the stamp.
    let word = m.hdr(m.at(tail)).word.load(Acquire);
    !ring::spsc_empty_word(tail, word, m.capacity()) || closed_or_bad(m)
}

/// Closed, or a garbage flag (the attempt that follows reports it).
fn closed_or_bad<M: Ring>(m: &M) -> bool {
    crate::raw::closed_state(m.ctrl()) != Ok(false)
}

/// Messages in the queue (a snapshot, at most the capacity).
pub(crate) fn len<M: Ring>(m: &M) -> usize {
    let ctrl = m.ctrl();
    // Relaxed: a snapshot; the tail can be one ahead of a head about to be stored.
    let tail = ctrl.tail.load(Relaxed);
    let head = ctrl.head.load(Relaxed);
    (head.wrapping_sub(tail) as i64).clamp(0, i64::from(m.capacity())) as usize
}
