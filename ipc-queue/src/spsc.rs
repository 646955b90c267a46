//! The SPSC flavour: one producer, one consumer, the fastest path: the handles, their roles
//! and their waits. The protocol (private indices, a stamp per slot, no CAS) is described
//! and decided in [`ring`](crate::ring) and run by [`raw::spsc`](crate::raw::spsc), the
//! same code the loom models check; this module adds the per-process parts.
//!
//! The roles are enforced at attach time: [`SpscQueue::sender`] and [`SpscQueue::receiver`]
//! record the owner id of the process that holds each role, and a role whose holder died can
//! be taken over.
//!
//! Crash behaviour: the producer publishes `head` with a Release store after the payload, so a
//! producer killed mid-copy published nothing (there is no abandoned slot to skip). The
//! consumer advances `tail` only after it is done with a message, so a consumer killed while
//! holding a lent message ([`Receiver::recv_ref`]) leaves it in the queue: the next consumer
//! receives it again (**at least once**, unlike the MPMC flavour's at most once). A receiver
//! parked on an empty queue whose producer died is told [`RecvError::Disconnected`] within
//! [`PEER_CHECK`] (32 ms) of the death, after receiving everything the producer published;
//! likewise a sender parked on a full queue whose consumer died ([`SendError::Disconnected`]).
#![allow(unsafe_code)] // the lending guards deref into a held slot; taking the fast-path view

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use ipc_shm::{Deadline, Shm, ShmOptions, liveness};

use crate::error::{
    Error, RecvError, RecvTimeoutError, Result, SendError, SendTimeoutError, TryRecvError,
    TrySendError,
};
use crate::queue::{Attempt, How, Inner, QueueOptions, Side, Stats, my_cpu};
use crate::raw::spsc::{self as proto, Consumer, Nothing, Producer, Refused};
use crate::region::{At, Hot};
use crate::ring::{Corruption, Flavour};
use crate::sync::{AtomicU32, Ordering};

/// A named or anonymous SPSC queue segment; take its two roles with [`sender`](Self::sender)
/// and [`receiver`](Self::receiver) (in the same or different processes).
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use ipc_queue::SpscQueue;
/// let q = SpscQueue::anonymous(64, 64)?;
/// let mut tx = q.sender()?;
/// let mut rx = q.receiver()?;
/// tx.send(b"ping")?;
/// assert_eq!(rx.recv()?, b"ping");
/// assert!(q.receiver().is_err()); // one consumer at a time
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SpscQueue {
    inner: Arc<Inner>,
}

impl QueueOptions {
    /// Create a named SPSC queue.
    ///
    /// # Errors
    /// As [`QueueOptions::create`].
    pub fn create_spsc(&self, name: &str) -> Result<SpscQueue> {
        Ok(SpscQueue { inner: Arc::new(self.make(How::Create(name), Flavour::Spsc, (0, 0))?) })
    }

    /// Open or create a named SPSC queue.
    ///
    /// # Errors
    /// As [`QueueOptions::open_or_create`].
    pub fn open_or_create_spsc(&self, name: &str) -> Result<SpscQueue> {
        let inner = self.make(How::OpenOrCreate(name), Flavour::Spsc, (0, 0))?;
        Ok(SpscQueue { inner: Arc::new(inner) })
    }

    /// An anonymous SPSC queue.
    ///
    /// # Errors
    /// As [`QueueOptions::anonymous`].
    pub fn anonymous_spsc(&self) -> Result<SpscQueue> {
        Ok(SpscQueue { inner: Arc::new(self.make(How::Anonymous, Flavour::Spsc, (0, 0))?) })
    }
}

/// The longest a receiver parked on an empty queue (a sender parked on a full one) sleeps
/// between looks at whether its peer died ([`RecvError::Disconnected`],
/// [`SendError::Disconnected`]): waits sleep in ipc-shm's liveness slices
/// ([`ipc_shm::wait::Schedule`]: 1 ms first, doubling up to this, ends aligned to the kernel
/// tick), so a death is noticed within about this long; a live, idle peer costs the parked
/// side one wake-up per slice.
pub const PEER_CHECK: Duration = ipc_shm::wait::SLICE_MAX;

/// Whether the role `word` is held by a process that has died (vacant: no).
pub(crate) fn holder_died(word: &AtomicU32) -> bool {
    // Acquire: pairs with the AcqRel CAS of `take_role` (a new holder's attach) and the
    // Release of `give_role`; messages and freed slots are ordered by stamps and indices.
    let holder = word.load(Ordering::Acquire);
    holder != 0 && liveness::status_raw(holder) == liveness::Status::Dead
}

fn take_role(inner: &Inner, op: &'static str, role: &'static str, word: &AtomicU32) -> Result<u32> {
    let me = liveness::current()
        .map_err(|source| Error::Shm { op, name: inner.name().to_owned(), source })?
        .get();
    let taken = |holder| Error::RoleTaken { op, name: inner.name().to_owned(), role, holder };
    loop {
        // Acquire: pairs with the Release CAS of the previous holder (and its release on drop),
        // so its last index store is visible before we read the indices.
        let cur = word.load(Ordering::Acquire);
        if cur == me {
            return Err(taken(cur));
        }
        if cur != 0 && liveness::status_raw(cur) != liveness::Status::Dead {
            return Err(taken(cur));
        }
        // AcqRel: Acquire as above; Release publishes nothing yet but keeps the pair uniform.
        // Relaxed on failure: we reload.
        if word.compare_exchange(cur, me, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
            return Ok(me);
        }
    }
}

fn give_role(word: &AtomicU32, me: u32) {
    // Only the process that took the role gives it back (a forked child dropping an inherited
    // handle must not free its parent's role).
    if liveness::current().is_ok_and(|o| o.get() == me) {
        // Release: pairs with the Acquire in `take_role`: our last index store is visible to
        // the next holder. Relaxed on failure: the role was already taken over.
        let _ = word.compare_exchange(me, 0, Ordering::Release, Ordering::Relaxed);
    }
}

impl SpscQueue {
    /// Create a named SPSC queue of `capacity` (rounded up to a power of two) messages of
    /// at most `max_message` bytes.
    ///
    /// # Errors
    /// As [`QueueOptions::create`].
    pub fn create(name: &str, capacity: usize, max_message: usize) -> Result<SpscQueue> {
        QueueOptions::new(capacity, max_message).create_spsc(name)
    }

    /// Open a named SPSC queue.
    ///
    /// # Errors
    /// As [`Queue::open`](crate::Queue::open).
    pub fn open(name: &str) -> Result<SpscQueue> {
        Self::open_with(&ShmOptions::new(), name)
    }

    /// [`open`](Self::open) with segment options.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_with(shm: &ShmOptions, name: &str) -> Result<SpscQueue> {
        Ok(SpscQueue { inner: Arc::new(Inner::open(shm, name, Flavour::Spsc)?) })
    }

    /// Open or create a named SPSC queue.
    ///
    /// # Errors
    /// As [`QueueOptions::open_or_create`].
    pub fn open_or_create(name: &str, capacity: usize, max_message: usize) -> Result<SpscQueue> {
        QueueOptions::new(capacity, max_message).open_or_create_spsc(name)
    }

    /// An anonymous SPSC queue, shared with children forked afterwards.
    ///
    /// # Errors
    /// As [`QueueOptions::anonymous`].
    pub fn anonymous(capacity: usize, max_message: usize) -> Result<SpscQueue> {
        QueueOptions::new(capacity, max_message).anonymous_spsc()
    }

    /// Adopt an SPSC segment received as an fd.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn from_shm(shm: Shm) -> Result<SpscQueue> {
        Ok(SpscQueue { inner: Arc::new(Inner::from_shm(shm, Flavour::Spsc)?) })
    }

    /// Take the producer role: one per queue at a time, across all processes; a role whose
    /// holder died is taken over. Take it in the process that sends (a forked child takes
    /// its own; it must not use a `Sender` inherited from its parent).
    ///
    /// # Errors
    /// [`Error::RoleTaken`] while a live process holds it; [`Error::Corrupted`] if the
    /// indices are impossible.
    pub fn sender(&self) -> Result<Sender> {
        let prod_role = &self.inner.region().ctrl().prod_role;
        let (hot, prod, role) =
            self.attach("take producer role of", "producer", prod_role, Producer::attach)?;
        Ok(Sender { inner: self.inner.clone(), hot, prod, role, ops: 0 })
    }

    /// Take the consumer role (see [`sender`](Self::sender)).
    ///
    /// # Errors
    /// As [`sender`](Self::sender).
    pub fn receiver(&self) -> Result<Receiver> {
        let cons_role = &self.inner.region().ctrl().cons_role;
        let (hot, cons, role) =
            self.attach("take consumer role of", "consumer", cons_role, Consumer::attach)?;
        Ok(Receiver { inner: self.inner.clone(), hot, cons, role, ops: 0 })
    }

    /// Take the role in `word`, then continue from the published indices with `side` (the
    /// role is given back if they are corrupt). The caller keeps `inner` beside the view.
    fn attach<S>(
        &self,
        op: &'static str,
        role: &'static str,
        word: &AtomicU32,
        side: fn(&Hot) -> std::result::Result<S, Corruption>,
    ) -> Result<(Hot, S, u32)> {
        let me = take_role(&self.inner, op, role, word)?;
        // SAFETY: the caller stores the view in a handle that holds `inner`, the owner of
        // the mapping, for as long as the view.
        let hot = unsafe { self.inner.region().hot() };
        match side(&hot) {
            Ok(state) => Ok((hot, state, me)),
            Err(source) => {
                give_role(word, me);
                Err(Error::Corrupted { op, name: self.inner.name().to_owned(), source })
            }
        }
    }

    /// Messages in the queue.
    pub fn len(&self) -> usize {
        // SAFETY: the view is dropped before `inner` (held by `self`).
        proto::len(&unsafe { self.inner.region().hot() })
    }

    /// Whether the queue is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the queue is full.
    pub fn is_full(&self) -> bool {
        self.len() >= self.capacity()
    }

    /// Slots (a power of two).
    pub fn capacity(&self) -> usize {
        self.inner.cfg().capacity as usize
    }

    /// Close for both sides (see [`Queue::close`](crate::Queue::close)).
    pub fn close(&self) {
        crate::raw::close(self.inner.region());
    }

    /// Shared counters.
    pub fn stats(&self) -> Stats {
        self.inner.stats()
    }

    /// The underlying segment.
    pub fn shm(&self) -> &Shm {
        self.inner.shm()
    }
}

/// The producer side of an [`SpscQueue`].
#[derive(Debug)]
pub struct Sender {
    inner: Arc<Inner>,
    hot: Hot,
    prod: Producer,
    role: u32,
    ops: u32,
}

impl Sender {
    /// The queue and the hot view, for `select.rs`.
    pub(crate) fn select_parts(&self) -> (&Inner, &Hot) {
        (&self.inner, &self.hot)
    }

    /// Largest message in bytes.
    pub fn max_message(&self) -> usize {
        self.inner.cfg().max_message as usize
    }

    #[cfg_attr(not(feature = "serde"), allow(dead_code))]
    pub(crate) fn queue_name(&self) -> &str {
        self.inner.name()
    }

    /// The next slot for a message of `len` bytes (see [`Producer::try_slot`]).
    #[inline]
    fn try_slot(&mut self, len: usize) -> std::result::Result<u64, Refused> {
        self.prod.try_slot(&self.hot, len)
    }

    #[inline]
    fn publish(&mut self, pos: u64, len: usize) {
        self.publish_at(self.hot.at(pos), pos, len);
    }

    /// Publish the message of `len` bytes written in the slot `at` of `pos`.
    #[inline]
    fn publish_at(&mut self, at: At, pos: u64, len: usize) {
        self.prod.publish(&self.hot, at, pos, len);
        if self.ops.is_multiple_of(64) {
            self.inner.publish_cpu(Side::Send, my_cpu());
        }
        self.ops = self.ops.wrapping_add(1);
    }

    #[inline]
    fn slot_deadline(
        &mut self,
        len: usize,
        deadline: Deadline,
    ) -> std::result::Result<u64, Option<Refused>> {
        match self.try_slot(len) {
            Ok(pos) => Ok(pos),
            Err(Refused::Full) => self.wait_slot(len, deadline),
            Err(e) => Err(Some(e)),
        }
    }

    #[cold]
    #[inline(never)]
    fn wait_slot(
        &mut self,
        len: usize,
        deadline: Deadline,
    ) -> std::result::Result<u64, Option<Refused>> {
        let (inner, hot, prod) = (&self.inner, &self.hot, &mut self.prod);
        // Room the consumer made before dying is used first (the wait loop tries again).
        let consumer_died = || holder_died(&hot.ctrl().cons_role).then_some(Refused::Disconnected);
        let attempt = || match prod.try_slot(hot, len) {
            Ok(pos) => Attempt::Done(pos),
            Err(Refused::Full) => Attempt::Blocked(None),
            Err(e) => Attempt::Failed(e),
        };
        let ready = || proto::send_ready(hot);
        inner.wait_loop(Side::Send, deadline, ready, consumer_died, attempt)
    }

    /// Write and publish `msg` in the slot of `pos` (ours, checked by `try_slot`).
    #[inline]
    fn put(&mut self, pos: u64, msg: &[u8]) {
        let at = self.hot.at(pos);
        self.hot.write(at, msg);
        self.publish_at(at, pos, msg.len());
    }

    /// Send without waiting.
    ///
    /// # Errors
    /// [`TrySendError::Full`], `Closed`, `TooLong`, `Corrupted`, `Unregistered`.
    // Always inlined, like `Receiver::try_recv_into`: a polling loop calls it back to back,
    // and out of line the call (saved registers, spills, the error mapping) cost about 30
    // instructions per message of the ~170 a send and a receive take.
    #[inline(always)]
    pub fn try_send(&mut self, msg: &[u8]) -> std::result::Result<(), TrySendError> {
        match self.try_slot(msg.len()) {
            Ok(pos) => {
                self.put(pos, msg);
                Ok(())
            }
            // Full is what a polling producer sees over and over: kept inline.
            Err(Refused::Full | Refused::Disconnected) => Err(TrySendError::Full),
            Err(e) => Err(self.try_send_refused(e, msg.len())),
        }
    }

    /// The error of a `try_send` refused for another reason than a full queue, out of line so
    /// that the inlined `try_send` stays small.
    #[cold]
    #[inline(never)]
    fn try_send_refused(&self, refused: Refused, len: usize) -> TrySendError {
        match refused {
            Refused::Full | Refused::Disconnected => TrySendError::Full,
            Refused::Closed => TrySendError::Closed,
            Refused::TooLong => {
                TrySendError::TooLong { len, max: self.inner.cfg().max_message as usize }
            }
            Refused::Corrupted(c) => TrySendError::Corrupted(c),
        }
    }

    /// Send, waiting without limit while full.
    ///
    /// # Errors
    /// [`SendError::Closed`], `TooLong`, `Corrupted`; [`SendError::Disconnected`] when the
    /// queue stays full and the consumer has died (seen within [`PEER_CHECK`] of the death).
    // Always inlined, errors out of line: as `try_send` (a streaming producer calls it back
    // to back, and LLVM had left `send_deadline` out of line in ipc-bench's producer).
    #[inline(always)]
    pub fn send(&mut self, msg: &[u8]) -> std::result::Result<(), SendError> {
        match self.send_deadline(msg, Deadline::NEVER) {
            Ok(()) => Ok(()),
            Err(e) => Err(send_error(e)),
        }
    }

    /// Send, waiting at most `timeout` while full.
    ///
    /// # Errors
    /// [`SendTimeoutError::Timeout`], `Closed`, `TooLong`, `Corrupted`, `Disconnected` (as
    /// [`send`](Self::send)).
    pub fn send_timeout(
        &mut self,
        msg: &[u8],
        timeout: Duration,
    ) -> std::result::Result<(), SendTimeoutError> {
        self.send_deadline(msg, Deadline::after(timeout))
    }

    #[inline(always)]
    fn send_deadline(
        &mut self,
        msg: &[u8],
        deadline: Deadline,
    ) -> std::result::Result<(), SendTimeoutError> {
        match self.slot_deadline(msg.len(), deadline) {
            Ok(pos) => {
                self.put(pos, msg);
                Ok(())
            }
            Err(e) => Err(self.send_refused(e, msg.len())),
        }
    }

    /// The error of a send of `len` bytes that got no slot (`None`: the deadline passed).
    #[cold]
    #[inline(never)]
    fn send_refused(&self, refused: Option<Refused>, len: usize) -> SendTimeoutError {
        match refused {
            None | Some(Refused::Full) => SendTimeoutError::Timeout,
            Some(Refused::Closed) => SendTimeoutError::Closed,
            Some(Refused::TooLong) => {
                SendTimeoutError::TooLong { len, max: self.inner.cfg().max_message as usize }
            }
            Some(Refused::Corrupted(c)) => SendTimeoutError::Corrupted(c),
            Some(Refused::Disconnected) => SendTimeoutError::Disconnected,
        }
    }

    /// Zero-copy: lend the next slot (`len` bytes), waiting while full; publish it with
    /// [`SpscSlot::commit`]. Dropping it uncommitted publishes nothing.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    #[inline]
    pub fn reserve(&mut self, len: usize) -> std::result::Result<SpscSlot<'_>, SendError> {
        match self.slot_deadline(len, Deadline::NEVER) {
            Ok(pos) => Ok(SpscSlot { sender: self, pos, len }),
            Err(Some(Refused::TooLong)) => {
                Err(SendError::TooLong { len, max: self.inner.cfg().max_message as usize })
            }
            Err(Some(Refused::Corrupted(c))) => Err(SendError::Corrupted(c)),
            Err(Some(Refused::Disconnected)) => Err(SendError::Disconnected),
            Err(_) => Err(SendError::Closed),
        }
    }

    /// [`reserve`](Self::reserve) without waiting.
    ///
    /// # Errors
    /// As [`try_send`](Self::try_send).
    #[inline]
    pub fn try_reserve(&mut self, len: usize) -> std::result::Result<SpscSlot<'_>, TrySendError> {
        match self.try_slot(len) {
            Ok(pos) => Ok(SpscSlot { sender: self, pos, len }),
            Err(Refused::Full | Refused::Disconnected) => Err(TrySendError::Full),
            Err(Refused::Closed) => Err(TrySendError::Closed),
            Err(Refused::TooLong) => {
                Err(TrySendError::TooLong { len, max: self.inner.cfg().max_message as usize })
            }
            Err(Refused::Corrupted(c)) => Err(TrySendError::Corrupted(c)),
        }
    }

    /// [`reserve`](Self::reserve) waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`send_timeout`](Self::send_timeout).
    pub fn reserve_timeout(
        &mut self,
        len: usize,
        timeout: Duration,
    ) -> std::result::Result<SpscSlot<'_>, SendTimeoutError> {
        match self.slot_deadline(len, Deadline::after(timeout)) {
            Ok(pos) => Ok(SpscSlot { sender: self, pos, len }),
            Err(None | Some(Refused::Full)) => Err(SendTimeoutError::Timeout),
            Err(Some(Refused::Closed)) => Err(SendTimeoutError::Closed),
            Err(Some(Refused::TooLong)) => {
                Err(SendTimeoutError::TooLong { len, max: self.inner.cfg().max_message as usize })
            }
            Err(Some(Refused::Corrupted(c))) => Err(SendTimeoutError::Corrupted(c)),
            Err(Some(Refused::Disconnected)) => Err(SendTimeoutError::Disconnected),
        }
    }

    /// Close the queue (see [`Queue::close`](crate::Queue::close)).
    pub fn close(&self) {
        crate::raw::close(self.inner.region());
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        give_role(&self.inner.region().ctrl().prod_role, self.role);
    }
}

/// A slot lent by [`Sender::reserve`].
#[derive(Debug)]
pub struct SpscSlot<'s> {
    sender: &'s mut Sender,
    pos: u64,
    len: usize,
}

impl SpscSlot<'_> {
    /// Publish the message.
    #[inline]
    pub fn commit(self) {
        let (pos, len) = (self.pos, self.len);
        self.sender.publish(pos, len);
    }

    /// Shorten the message to `len` bytes.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
}

impl Deref for SpscSlot<'_> {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        let hot = &self.sender.hot;
        // SAFETY: the producer role gives this process the slot at its private head until it
        // publishes it; the guard borrows the sender mutably, so no other lend exists.
        unsafe { hot.lend(hot.at(self.pos), self.len) }
    }
}

impl DerefMut for SpscSlot<'_> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        let hot = &self.sender.hot;
        // SAFETY: as in deref; `&mut self` makes this the only slice alive.
        unsafe { hot.lend_mut(hot.at(self.pos), self.len) }
    }
}

/// The consumer side of an [`SpscQueue`].
#[derive(Debug)]
pub struct Receiver {
    inner: Arc<Inner>,
    hot: Hot,
    cons: Consumer,
    role: u32,
    ops: u32,
}

impl Receiver {
    /// The queue and the hot view, for `select.rs`.
    pub(crate) fn select_parts(&self) -> (&Inner, &Hot) {
        (&self.inner, &self.hot)
    }

    /// Largest message in bytes.
    pub fn max_message(&self) -> usize {
        self.inner.cfg().max_message as usize
    }

    #[cfg_attr(not(feature = "serde"), allow(dead_code))]
    pub(crate) fn queue_name(&self) -> &str {
        self.inner.name()
    }

    /// The next message's position and validated length (see [`Consumer::try_next`]).
    #[inline]
    fn try_next(&mut self) -> std::result::Result<(u64, usize), Nothing> {
        self.cons.try_next(&self.hot)
    }

    /// Done with the message at `pos`: free its slot.
    #[inline]
    fn advance(&mut self, pos: u64) {
        self.cons.advance(&self.hot, pos);
        if self.ops.is_multiple_of(64) {
            self.inner.publish_cpu(Side::Recv, my_cpu());
        }
        self.ops = self.ops.wrapping_add(1);
    }

    #[inline]
    fn next_deadline(
        &mut self,
        deadline: Deadline,
    ) -> std::result::Result<(u64, usize), Option<Nothing>> {
        match self.try_next() {
            Ok(v) => Ok(v),
            Err(Nothing::Empty) => self.wait_next(deadline),
            Err(e) => Err(Some(e)),
        }
    }

    /// Wait for the next message, in slices of at most [`PEER_CHECK`]: a dead producer
    /// wakes nobody, so after each slice the receiver looks whether the producer role's holder
    /// died and, once everything it published is received, reports
    /// [`Nothing::Disconnected`] instead of waiting for ever.
    #[cold]
    #[inline(never)]
    fn wait_next(
        &mut self,
        deadline: Deadline,
    ) -> std::result::Result<(u64, usize), Option<Nothing>> {
        let (inner, hot, cons) = (&self.inner, &self.hot, &mut self.cons);
        // What the producer published before dying is received first (the loop tries again).
        let producer_died = || holder_died(&hot.ctrl().prod_role).then_some(Nothing::Disconnected);
        let attempt = || match cons.try_next(hot) {
            Ok(v) => Attempt::Done(v),
            Err(Nothing::Empty) => Attempt::Blocked(None),
            Err(e) => Attempt::Failed(e),
        };
        let ready = || proto::recv_ready(hot);
        inner.wait_loop(Side::Recv, deadline, ready, producer_died, attempt)
    }

    #[inline]
    fn take(&mut self, (pos, len): (u64, usize), out: &mut Vec<u8>) {
        self.hot.read_vec(self.hot.at(pos), len, out);
        self.advance(pos);
    }

    /// Receive without waiting.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`], `Closed`, `Corrupted`.
    #[inline]
    pub fn try_recv(&mut self) -> std::result::Result<Vec<u8>, TryRecvError> {
        let mut v = Vec::new();
        self.try_recv_into(&mut v)?;
        Ok(v)
    }

    /// [`try_recv`](Self::try_recv) into `buf` (cleared first); returns the length.
    ///
    /// # Errors
    /// As [`try_recv`](Self::try_recv).
    // Always inlined: see `Sender::try_send` (the empty poll is 24 instructions inlined, 45
    // as a call).
    #[inline(always)]
    pub fn try_recv_into(&mut self, buf: &mut Vec<u8>) -> std::result::Result<usize, TryRecvError> {
        match self.try_next() {
            Ok(next) => {
                self.take(next, buf);
                Ok(next.1)
            }
            Err(e) => Err(try_recv_refused(e)),
        }
    }

    /// Receive, waiting without limit.
    ///
    /// # Errors
    /// [`RecvError::Closed`] once closed and drained, `Corrupted`;
    /// [`RecvError::Disconnected`] when the producer died and all it published was received
    /// (seen within [`PEER_CHECK`] of the death).
    pub fn recv(&mut self) -> std::result::Result<Vec<u8>, RecvError> {
        let mut v = Vec::new();
        self.recv_into(&mut v)?;
        Ok(v)
    }

    /// Receive into `buf` (cleared first); returns the length.
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    #[inline]
    pub fn recv_into(&mut self, buf: &mut Vec<u8>) -> std::result::Result<usize, RecvError> {
        let next =
            self.next_deadline(Deadline::NEVER).map_err(|e| RecvError::from(timeout_err(e)))?;
        self.take(next, buf);
        Ok(next.1)
    }

    /// Receive, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`RecvTimeoutError::Timeout`], `Closed`, `Corrupted`, `Disconnected` (as
    /// [`recv`](Self::recv)).
    pub fn recv_timeout(
        &mut self,
        timeout: Duration,
    ) -> std::result::Result<Vec<u8>, RecvTimeoutError> {
        let next = self.next_deadline(Deadline::after(timeout)).map_err(timeout_err)?;
        let mut v = Vec::new();
        self.take(next, &mut v);
        Ok(v)
    }

    /// Zero-copy: lend the next message, waiting without limit; released on drop. If this
    /// process dies holding it, the next consumer receives it again (at least once).
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    #[inline]
    pub fn recv_ref(&mut self) -> std::result::Result<SpscRef<'_>, RecvError> {
        let (pos, len) =
            self.next_deadline(Deadline::NEVER).map_err(|e| RecvError::from(timeout_err(e)))?;
        Ok(SpscRef { receiver: self, pos, len })
    }

    /// [`recv_ref`](Self::recv_ref) without waiting.
    ///
    /// # Errors
    /// As [`try_recv`](Self::try_recv).
    #[inline]
    pub fn try_recv_ref(&mut self) -> std::result::Result<SpscRef<'_>, TryRecvError> {
        match self.try_next() {
            Ok((pos, len)) => Ok(SpscRef { receiver: self, pos, len }),
            Err(Nothing::Empty | Nothing::Disconnected) => Err(TryRecvError::Empty),
            Err(Nothing::Closed) => Err(TryRecvError::Closed),
            Err(Nothing::Corrupted(c)) => Err(TryRecvError::Corrupted(c)),
        }
    }

    /// [`recv_ref`](Self::recv_ref) waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`recv_timeout`](Self::recv_timeout).
    pub fn recv_ref_timeout(
        &mut self,
        timeout: Duration,
    ) -> std::result::Result<SpscRef<'_>, RecvTimeoutError> {
        let (pos, len) = self.next_deadline(Deadline::after(timeout)).map_err(timeout_err)?;
        Ok(SpscRef { receiver: self, pos, len })
    }
}

/// What [`Sender::send`] reports for what the deadline form refused with.
#[cold]
#[inline(never)]
fn send_error(e: SendTimeoutError) -> SendError {
    match e {
        SendTimeoutError::TooLong { len, max } => SendError::TooLong { len, max },
        SendTimeoutError::Corrupted(c) => SendError::Corrupted(c),
        SendTimeoutError::Unregistered => SendError::Unregistered,
        SendTimeoutError::Disconnected => SendError::Disconnected,
        SendTimeoutError::Closed | SendTimeoutError::Timeout => SendError::Closed,
    }
}

/// The error of a `try_` receive that found nothing.
#[inline]
fn try_recv_refused(nothing: Nothing) -> TryRecvError {
    match nothing {
        Nothing::Empty | Nothing::Disconnected => TryRecvError::Empty,
        Nothing::Closed => TryRecvError::Closed,
        Nothing::Corrupted(c) => TryRecvError::Corrupted(c),
    }
}

fn timeout_err(e: Option<Nothing>) -> RecvTimeoutError {
    match e {
        None | Some(Nothing::Empty) => RecvTimeoutError::Timeout,
        Some(Nothing::Closed) => RecvTimeoutError::Closed,
        Some(Nothing::Corrupted(c)) => RecvTimeoutError::Corrupted(c),
        Some(Nothing::Disconnected) => RecvTimeoutError::Disconnected,
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        give_role(&self.inner.region().ctrl().cons_role, self.role);
    }
}

/// A message lent by [`Receiver::recv_ref`]; released on drop.
#[derive(Debug)]
pub struct SpscRef<'r> {
    receiver: &'r mut Receiver,
    pos: u64,
    len: usize,
}

impl Deref for SpscRef<'_> {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        let hot = &self.receiver.hot;
        // SAFETY: the consumer role gives this process the slot at its private tail until it
        // advances the tail (on drop); the producer never writes a slot the tail has not passed.
        unsafe { hot.lend(hot.at(self.pos), self.len) }
    }
}

impl Drop for SpscRef<'_> {
    #[inline]
    fn drop(&mut self) {
        // Only the process holding the consumer role advances the tail: a forked child's copy
        // of the guard must not free the slot its parent still reads.
        if liveness::current().is_ok_and(|o| o.get() == self.receiver.role) {
            let pos = self.pos;
            self.receiver.advance(pos);
        }
    }
}
