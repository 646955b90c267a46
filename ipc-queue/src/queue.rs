//! [`Queue`]: the MPMC bytes queue, and what every flavour shares: construction over an
//! [`Object`], the wait loop (ipc-shm's spin policy, waiter word and liveness sleep schedule,
//! slow-path recovery of dead owners) and [`Stats`].
#![allow(unsafe_code)] // the two lending guards (SendSlot, RecvRef) deref into a held slot

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;
use std::time::Duration;

use ipc_shm::header::ObjectKind;
use ipc_shm::wait::{SLICE_MAX, Schedule};
use ipc_shm::{Deadline, Object, PeerSpin, Shm, ShmOptions, liveness};

use crate::error::{
    Error, RecvError, RecvTimeoutError, Result, SendError, SendTimeoutError, TryRecvError,
    TrySendError,
};
use crate::raw::{self, ClaimErr, Claimed, ReserveErr};
use crate::region::{Mapped, Region, Stat, init_body};
use crate::ring::{self, Config, Corruption, Flavour, RawConfig};
use crate::sync::{AtomicU32, Ordering};

/// The longest a waiter blocked by a claimed slot goes without asking whether the slot's
/// owner is alive: waits sleep in ipc-shm's liveness slices ([`ipc_shm::wait::Schedule`]:
/// 1 ms first, doubling up to this), and a `try_*` caller that keeps finding the same slot
/// claimed asks on the same schedule. A dead peer's slot is therefore recovered within about
/// this long of the death (plus one kernel tick), far below the 500 ms bound.
pub const RECOVERY_CHECK: Duration = SLICE_MAX;

/// Header identity of a queue body of `flavour`.
pub(crate) fn kind(flavour: Flavour) -> ObjectKind {
    let tag = match flavour {
        Flavour::Mpmc => ipc_shm::named_tag("ipc-queue MPMC queue"),
        Flavour::Spsc => ipc_shm::named_tag("ipc-queue SPSC queue"),
    };
    ObjectKind { tag, version: ring::LAYOUT_VERSION, align: 128, owner_ids: true }
}

/// How to get a queue segment.
#[derive(Debug, Clone, Copy)]
pub(crate) enum How<'a> {
    Create(&'a str),
    OpenOrCreate(&'a str),
    Anonymous,
}

/// Counters kept in the queue's shared memory (all processes see the same figures).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Slots of producers that died between reserve and commit, skipped by survivors.
    pub abandoned: u64,
    /// Messages lent to consumers that died holding them (MPMC: dropped, at most once).
    pub lost: u64,
    /// Corrupt values found (each was reported as `Corrupted`).
    pub corrupt: u64,
    /// Reservations dropped without commit.
    pub cancelled: u64,
    /// Sends that had to sleep.
    pub send_waits: u64,
    /// Receives that had to sleep.
    pub recv_waits: u64,
}

/// Which side of the queue a wait is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Send,
    Recv,
}

/// What an attempt inside a wait loop found.
pub(crate) enum Attempt<T, E> {
    Done(T),
    /// Nothing yet; `Some((pos, word))` names a slot whose owner may be dead.
    Blocked(Option<(u64, u64)>),
    Failed(E),
}

/// A slot that `try_*` calls keep finding claimed by the same word, and when to ask next
/// whether its owner is alive (`None`: seen once only; most claims are committed before the
/// next look, so the first sighting reads no clock).
#[derive(Debug)]
struct Blocked {
    word: u64,
    schedule: Schedule,
    check_at: Option<Deadline>,
}

/// This thread's CPU + 1, as the placement words store it (0 is "unknown").
#[inline]
pub(crate) fn my_cpu() -> u32 {
    ipc_shm::current_cpu().wrapping_add(1)
}

/// The state every queue handle shares: the mapped body and per-handle hints.
#[derive(Debug)]
pub(crate) struct Inner {
    mapped: Mapped,
    name: String,
    /// try_* calls that found the same slot blocked.
    pending: Mutex<Option<Blocked>>,
    /// Sampling counter for publishing our CPU (plain load/store: races only skew sampling).
    tick: AtomicU32,
    /// MPMC: the last reservation through this handle found the queue full (then the next
    /// one loads the slot word before its CAS). A process-local hint.
    was_full: std::sync::atomic::AtomicBool,
    /// MPMC: the owner id this handle last listed in the queue's table of senders (index
    /// `Side::Send`) and receivers (`Side::Recv`); 0 none. Process-local: a forked child's
    /// copy holds its parent's id, which is not the child's, so the child lists itself.
    listed: [std::sync::atomic::AtomicU32; 2],
}

fn shm_err<'a>(op: &'static str, name: &'a str) -> impl FnOnce(ipc_shm::Error) -> Error + 'a {
    move |source| Error::Shm { op, name: name.to_owned(), source }
}

/// Read the config block of an object's body into private memory.
fn read_config(object: &Object) -> std::result::Result<RawConfig, ipc_shm::Error> {
    let off = object.body().as_ptr().addr().wrapping_sub(object.shm().as_ptr().as_ptr().addr());
    let mut bytes = [0u8; 64];
    // SAFETY: the config block is written once by the creator before READY and never lent
    // out; no queue handle is built over `object` yet, so no reference covers it.
    unsafe { object.shm().read_at_shared(off, &mut bytes)? };
    let mut words = [0u32; 16];
    for (w, b) in words.iter_mut().zip(bytes.chunks_exact(4)) {
        *w = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
    }
    Ok(RawConfig::from_words(&words))
}

impl Inner {
    fn assemble(op: &'static str, name: &str, object: Object, cfg: Config) -> Result<Inner> {
        liveness::current().map_err(shm_err(op, name))?;
        let mapped = Mapped::new(object, cfg).ok_or_else(|| Error::Corrupted {
            op,
            name: name.to_owned(),
            source: Corruption::Config { field: "body_len", found: cfg.body_len as u64 },
        })?;
        Ok(Inner {
            mapped,
            name: name.to_owned(),
            pending: Mutex::new(None),
            tick: AtomicU32::new(0),
            was_full: std::sync::atomic::AtomicBool::new(false),
            listed: [std::sync::atomic::AtomicU32::new(0), std::sync::atomic::AtomicU32::new(0)],
        })
    }

    /// Validate the config of an opened object (read once, checked, the copy used).
    fn adopt(op: &'static str, name: &str, object: Object, flavour: Flavour) -> Result<Inner> {
        let raw = read_config(&object).map_err(shm_err(op, name))?;
        let cfg = ring::validate(&raw, object.body_len()).map_err(|source| Error::Corrupted {
            op,
            name: name.to_owned(),
            source,
        })?;
        if cfg.flavour != flavour {
            return Err(Error::Corrupted {
                op,
                name: name.to_owned(),
                source: Corruption::Config { field: "flavour", found: cfg.flavour as u64 },
            });
        }
        Self::assemble(op, name, object, cfg)
    }

    pub(crate) fn make(
        how: How<'_>,
        shm: &ShmOptions,
        flavour: Flavour,
        capacity: usize,
        max_message: usize,
        elem: (u32, u64),
        start: u64,
    ) -> Result<Inner> {
        let (op, name) = match how {
            How::Create(n) => ("create", n),
            How::OpenOrCreate(n) => ("open or create", n),
            How::Anonymous => ("create", "<anonymous>"),
        };
        let cfg = ring::plan(flavour, capacity, max_message, elem.0, elem.1)
            .map_err(|source| Error::InvalidConfig { op, name: name.to_owned(), source })?;
        let mut init = init_body(cfg, start);
        let kind = kind(flavour);
        let object = match how {
            How::Create(n) => Object::create(shm, n, kind, cfg.body_len, &mut init),
            How::OpenOrCreate(n) => Object::open_or_create(shm, n, kind, cfg.body_len, &mut init),
            How::Anonymous => Object::anonymous(shm, kind, cfg.body_len, &mut init),
        }
        .map_err(shm_err(op, name))?;
        match how {
            // Someone else may have created it: its config is validated like any open.
            How::OpenOrCreate(_) if !object.shm().created() => {
                Self::adopt(op, name, object, flavour)
            }
            _ => Self::assemble(op, name, object, cfg),
        }
    }

    pub(crate) fn open(shm: &ShmOptions, name: &str, flavour: Flavour) -> Result<Inner> {
        let object = Object::open(shm, name, kind(flavour), None).map_err(shm_err("open", name))?;
        Self::adopt("open", name, object, flavour)
    }

    pub(crate) fn from_shm(shm: Shm, flavour: Flavour) -> Result<Inner> {
        let name = shm.name().unwrap_or("<fd>").to_owned();
        let object = Object::from_shm(shm, kind(flavour), None).map_err(shm_err("map", &name))?;
        Self::adopt("map", &name, object, flavour)
    }

    #[inline]
    pub(crate) fn region(&self) -> &Region {
        self.mapped.region()
    }

    pub(crate) fn cfg(&self) -> &Config {
        self.region().cfg()
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn shm(&self) -> &Shm {
        self.mapped.object().shm()
    }

    /// This process's owner id, the claimant recorded in every slot it claims; `None` if it
    /// cannot register (then it claims nothing: a slot claimed as owner 0 could never be
    /// recovered after a death, and would wedge the queue).
    #[inline]
    pub(crate) fn me(&self) -> Option<u32> {
        liveness::current().ok().map(liveness::OwnerId::get)
    }

    /// MPMC: make sure this process is listed among the queue's senders (receivers) before
    /// it claims a slot, so that the other side can tell when every one of them is dead. One
    /// process-local load on the hot path.
    #[inline]
    pub(crate) fn list(&self, side: Side, me: u32) {
        let slot = &self.listed[side as usize];
        // Relaxed: a process-local memo; listing twice is harmless.
        if slot.load(std::sync::atomic::Ordering::Relaxed) != me {
            self.list_slow(side, me);
        }
    }

    #[cold]
    #[inline(never)]
    fn list_slow(&self, side: Side, me: u32) {
        let ctrl = self.region().ctrl();
        raw::list_peer(if side == Side::Send { &ctrl.senders } else { &ctrl.receivers }, me);
        // Relaxed: as in `list`.
        self.listed[side as usize].store(me, std::sync::atomic::Ordering::Relaxed);
    }

    /// MPMC: whether every process that ever used the other side of `side` is dead.
    pub(crate) fn peers_gone(&self, side: Side) -> bool {
        let ctrl = self.region().ctrl();
        raw::all_gone(if side == Side::Send { &ctrl.receivers } else { &ctrl.senders })
    }

    /// Publish our CPU for the other side's spin policy, one op in 64.
    #[inline]
    pub(crate) fn tick(&self, side: Side) {
        // Relaxed: a private sampling counter; a lost increment only shifts the sample.
        let n = self.tick.load(Ordering::Relaxed);
        self.tick.store(n.wrapping_add(1), Ordering::Relaxed);
        if n.is_multiple_of(64) {
            self.publish_cpu(side, my_cpu());
        }
    }

    pub(crate) fn publish_cpu(&self, side: Side, cpu: u32) {
        let ctrl = self.region().ctrl();
        let word = if side == Side::Send { &ctrl.send_cpu } else { &ctrl.recv_cpu };
        // Relaxed: a placement hint; written only when it changed.
        if word.load(Ordering::Relaxed) != cpu {
            word.store(cpu, Ordering::Relaxed);
        }
    }

    pub(crate) fn stats(&self) -> Stats {
        let c = self.region().ctrl();
        Stats {
            abandoned: c.stat(Stat::Abandoned),
            lost: c.stat(Stat::Lost),
            corrupt: c.stat(Stat::Corrupt),
            cancelled: c.stat(Stat::Cancelled),
            send_waits: c.stat(Stat::SendWaits),
            recv_waits: c.stat(Stat::RecvWaits),
        }
    }

    /// A try_* call found the slot of `pos` blocked by `word`. Seen again, it starts the
    /// liveness schedule; at the end of each slice it is still blocked, ask whether its
    /// owner is alive (slow path) and recover the slot if not.
    pub(crate) fn note_blocked(&self, pos: u64, word: u64) {
        let mut p = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match &mut *p {
            Some(b) if b.word == word => match b.check_at {
                None => b.check_at = Some(b.schedule.next(Deadline::NEVER)),
                Some(at) if at.has_passed() => {
                    if raw::recover(self.region(), pos, word) {
                        *p = None;
                    } else {
                        b.check_at = Some(b.schedule.next(Deadline::NEVER));
                    }
                }
                Some(_) => {}
            },
            _ => *p = Some(Blocked { word, schedule: Schedule::new(), check_at: None }),
        }
    }

    /// Run `attempt` until it is done (`Ok`), fails (`Err(Some(e))`), the deadline passes
    /// (`Err(None)`), or the other side is gone: spin while the peer can be running
    /// ([`PeerSpin`]), then sleep on the side's waiter word in the slices of ipc-shm's
    /// liveness [`Schedule`]. After each slice that ends with nothing done, ask whether the
    /// owner of a blocking slot died (and recover it) and whether every process of the other
    /// side is dead (`peers_gone` returns the error that says so): then, once the attempt
    /// finds nothing they left, `Err(Some(that error))`.
    ///
    /// The error stays `Option<E>`, the shape the callers return, on purpose: returning a
    /// three-way enum (timeout / disconnected / failed) instead measured ~60 ns slower on the
    /// SPSC round trip with a spinning peer (ipc-bench `poll-64/queue-spsc-adaptive`, 135 ns
    /// becoming 195 ns), for no reason found in the generated loop.
    pub(crate) fn wait_loop<T, E>(
        &self,
        side: Side,
        deadline: Deadline,
        ready: impl Fn() -> bool,
        mut peers_gone: impl FnMut() -> Option<E>,
        mut attempt: impl FnMut() -> Attempt<T, E>,
    ) -> std::result::Result<T, Option<E>> {
        let region = self.region();
        let ctrl = region.ctrl();
        let (waiters, peer_cpu, stat) = match side {
            Side::Send => (&ctrl.not_full, &ctrl.recv_cpu, Stat::SendWaits),
            Side::Recv => (&ctrl.not_empty, &ctrl.send_cpu, Stat::RecvWaits),
        };
        let my_cpu = my_cpu();
        self.publish_cpu(side, my_cpu);
        let mut spin = PeerSpin::new();
        let mut schedule = Schedule::new();
        // The end of the current sleep slice (None: not sleeping yet, or a new one is due).
        let mut slice: Option<Deadline> = None;
        let mut counted = false;
        loop {
            let blocker = match attempt() {
                Attempt::Done(v) => return Ok(v),
                Attempt::Failed(e) => return Err(Some(e)),
                Attempt::Blocked(b) => b,
            };
            if slice.is_some_and(Deadline::has_passed) {
                // A whole slice and still blocked: look at the peers (slow path).
                if let Some((pos, word)) = blocker
                    && raw::recover(region, pos, word)
                {
                    continue;
                }
                if let Some(gone) = peers_gone() {
                    // What the dead left (messages, room, recoverable slots) is taken first.
                    match attempt() {
                        Attempt::Done(v) => return Ok(v),
                        Attempt::Failed(e) => return Err(Some(e)),
                        Attempt::Blocked(Some((pos, word))) if raw::recover(region, pos, word) => {
                            continue;
                        }
                        Attempt::Blocked(_) => return Err(Some(gone)),
                    }
                }
                slice = None;
            }
            if spin.step(peer_cpu, my_cpu) {
                continue;
            }
            if deadline.has_passed() {
                return Err(None);
            }
            if !counted {
                ctrl.bump(stat);
                counted = true;
            }
            let end = *slice.get_or_insert_with(|| schedule.next(deadline));
            waiters.wait(&ready, end);
        }
    }
}

/// Why an MPMC reservation failed (internal, mapped to each API's outcome enum).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Refused {
    Full,
    Timeout,
    Closed,
    TooLong,
    Corrupted(Corruption),
    Unregistered,
    /// Full, and every process that ever received is dead (only from a blocking wait).
    Disconnected,
}

/// Why an MPMC claim failed (internal).
#[derive(Debug, Clone, Copy)]
pub(crate) enum NoMessage {
    Empty,
    Timeout,
    Closed,
    Corrupted(Corruption),
    Unregistered,
    /// Empty, and every process that ever sent is dead (only from a blocking wait).
    Disconnected,
}

/// A bounded MPMC queue of byte messages in shared memory (named or anonymous). Any number
/// of processes (and threads) send and receive; a message is delivered to exactly one
/// receiver. See the crate docs for the guarantees under SIGKILL.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use ipc_queue::Queue;
/// let q = Queue::anonymous(16, 256)?; // shared with children forked from here on
/// q.send(b"hello")?;
/// assert_eq!(q.recv()?, b"hello");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Queue {
    pub(crate) inner: Inner,
}

/// Options to create a queue (capacity, maximum message, segment options).
#[derive(Debug, Clone)]
pub struct QueueOptions {
    capacity: usize,
    max_message: usize,
    shm: ShmOptions,
    start: u64,
}

impl QueueOptions {
    /// A queue of `capacity` messages of at most `max_message` bytes each.
    ///
    /// The capacity is **rounded up to a power of two** (3 becomes 4, 1000 becomes 1024):
    /// [`Queue::capacity`] reports the real one. `capacity` must be 1 to 2^30 and `max_message`
    /// 1 to 2^30 bytes (and the segment must fit in memory), else creation fails with
    /// [`Error::InvalidConfig`] naming the value.
    pub fn new(capacity: usize, max_message: usize) -> QueueOptions {
        QueueOptions { capacity, max_message, shm: ShmOptions::new(), start: 0 }
    }

    /// Segment options (mode, persistence, init timeout, owner uid).
    pub fn shm_options(&mut self, shm: ShmOptions) -> &mut Self {
        self.shm = shm;
        self
    }

    /// Start the position counters at `start` (tests of counter wrap-around).
    #[doc(hidden)]
    pub fn start_position(&mut self, start: u64) -> &mut Self {
        self.start = start;
        self
    }

    pub(crate) fn make(&self, how: How<'_>, flavour: Flavour, elem: (u32, u64)) -> Result<Inner> {
        Inner::make(how, &self.shm, flavour, self.capacity, self.max_message, elem, self.start)
    }

    /// Create a named MPMC queue.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a zero or too large capacity or message size;
    /// [`Error::Shm`] when the segment cannot be created (name taken, invalid, no space).
    pub fn create(&self, name: &str) -> Result<Queue> {
        Ok(Queue { inner: self.make(How::Create(name), Flavour::Mpmc, (0, 0))? })
    }

    /// Open the named MPMC queue, or create it with these options.
    ///
    /// # Errors
    /// As [`create`](Self::create) and [`Queue::open`].
    pub fn open_or_create(&self, name: &str) -> Result<Queue> {
        Ok(Queue { inner: self.make(How::OpenOrCreate(name), Flavour::Mpmc, (0, 0))? })
    }

    /// Create an anonymous MPMC queue (memfd): shared with children forked afterwards.
    ///
    /// # Errors
    /// As [`create`](Self::create).
    pub fn anonymous(&self) -> Result<Queue> {
        Ok(Queue { inner: self.make(How::Anonymous, Flavour::Mpmc, (0, 0))? })
    }
}

impl Queue {
    pub(crate) fn from_inner(inner: Inner) -> Queue {
        Queue { inner }
    }

    pub(crate) fn inner_cfg(&self) -> &Config {
        self.inner.cfg()
    }

    pub(crate) fn region_ctrl(&self) -> &crate::region::Ctrl {
        self.inner.region().ctrl()
    }

    pub(crate) fn region(&self) -> &crate::region::Region {
        self.inner.region()
    }

    pub(crate) fn write_commit_pub(&self, pos: u64, msg: &[u8]) {
        self.write_commit(pos, msg);
    }

    /// Create a named queue of `capacity` (rounded up to a power of two) messages of at most
    /// `max_message` bytes.
    ///
    /// # Errors
    /// See [`QueueOptions::create`].
    pub fn create(name: &str, capacity: usize, max_message: usize) -> Result<Queue> {
        QueueOptions::new(capacity, max_message).create(name)
    }

    /// Open a named queue; its config is read once, validated and kept privately.
    ///
    /// # Errors
    /// [`Error::Shm`] (not found, not ours, header mismatch), [`Error::Corrupted`] for a
    /// config block no creator writes.
    pub fn open(name: &str) -> Result<Queue> {
        Self::open_with(&ShmOptions::new(), name)
    }

    /// [`open`](Self::open) with segment options.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_with(shm: &ShmOptions, name: &str) -> Result<Queue> {
        Ok(Queue { inner: Inner::open(shm, name, Flavour::Mpmc)? })
    }

    /// Open the named queue or create it.
    ///
    /// # Errors
    /// See [`QueueOptions::open_or_create`].
    pub fn open_or_create(name: &str, capacity: usize, max_message: usize) -> Result<Queue> {
        QueueOptions::new(capacity, max_message).open_or_create(name)
    }

    /// An anonymous queue (memfd), shared with children forked afterwards or passed as an fd.
    ///
    /// # Errors
    /// See [`QueueOptions::anonymous`].
    pub fn anonymous(capacity: usize, max_message: usize) -> Result<Queue> {
        QueueOptions::new(capacity, max_message).anonymous()
    }

    /// Adopt a queue segment received as an fd ([`Shm::from_fd`]).
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn from_shm(shm: Shm) -> Result<Queue> {
        Ok(Queue { inner: Inner::from_shm(shm, Flavour::Mpmc)? })
    }

    fn reserve_once(&self, len: usize) -> std::result::Result<u64, (Refused, Option<(u64, u64)>)> {
        if len > self.inner.cfg().max_message as usize {
            return Err((Refused::TooLong, None));
        }
        self.inner.tick(Side::Send);
        // Claim with a direct CAS unless the queue was full lately (see `raw::try_reserve`).
        let full = &self.inner.was_full;
        // Relaxed: a process-local hint.
        let direct = !full.load(std::sync::atomic::Ordering::Relaxed);
        let Some(me) = self.inner.me() else { return Err((Refused::Unregistered, None)) };
        self.inner.list(Side::Send, me);
        match raw::try_reserve(self.inner.region(), me, len, direct) {
            Ok(pos) => {
                if !direct {
                    // Relaxed: as above.
                    full.store(false, std::sync::atomic::Ordering::Relaxed);
                }
                Ok(pos)
            }
            Err(ReserveErr::Full { pos, word }) => {
                if direct {
                    // Relaxed: as above.
                    full.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                Err((Refused::Full, Some((pos, word))))
            }
            Err(ReserveErr::Closed) => Err((Refused::Closed, None)),
            Err(ReserveErr::Corrupted(c)) => Err((Refused::Corrupted(c), None)),
        }
    }

    pub(crate) fn try_reserve_pos(&self, len: usize) -> std::result::Result<u64, Refused> {
        self.reserve_once(len).map_err(|(r, blocker)| {
            if let Some((pos, word)) = blocker {
                self.inner.note_blocked(pos, word);
            }
            r
        })
    }

    pub(crate) fn reserve_pos(
        &self,
        len: usize,
        deadline: Deadline,
    ) -> std::result::Result<u64, Refused> {
        let attempt = || match self.reserve_once(len) {
            Ok(pos) => Attempt::Done(pos),
            Err((Refused::Full, blocker)) => Attempt::Blocked(blocker),
            Err((r, _)) => Attempt::Failed(r),
        };
        let ready = || raw::send_ready(self.inner.region());
        let gone = || self.inner.peers_gone(Side::Send).then_some(Refused::Disconnected);
        self.inner
            .wait_loop(Side::Send, deadline, ready, gone, attempt)
            .map_err(|e| e.unwrap_or(Refused::Timeout))
    }

    fn write_commit(&self, pos: u64, msg: &[u8]) {
        let region = self.inner.region();
        region.write(pos, 0, msg);
        ipc_shm::crash::point("queue.mid_copy");
        raw::commit(region, pos, msg.len());
    }

    /// Send without waiting.
    ///
    /// # Errors
    /// [`TrySendError::Full`], `Closed`, `TooLong`, `Corrupted`, `Unregistered`.
    pub fn try_send(&self, msg: &[u8]) -> std::result::Result<(), TrySendError> {
        match self.try_reserve_pos(msg.len()) {
            Ok(pos) => {
                self.write_commit(pos, msg);
                Ok(())
            }
            Err(Refused::Full | Refused::Timeout | Refused::Disconnected) => {
                Err(TrySendError::Full)
            }
            Err(Refused::Closed) => Err(TrySendError::Closed),
            Err(Refused::TooLong) => {
                Err(TrySendError::TooLong { len: msg.len(), max: self.max_message() })
            }
            Err(Refused::Corrupted(c)) => Err(TrySendError::Corrupted(c)),
            Err(Refused::Unregistered) => Err(TrySendError::Unregistered),
        }
    }

    /// Send, waiting (without limit) while the queue is full.
    ///
    /// # Errors
    /// [`SendError::Closed`], `TooLong`, `Corrupted`, `Unregistered`.
    pub fn send(&self, msg: &[u8]) -> std::result::Result<(), SendError> {
        match self.send_deadline(msg, Deadline::NEVER) {
            Ok(()) => Ok(()),
            Err(SendTimeoutError::Closed | SendTimeoutError::Timeout) => Err(SendError::Closed),
            Err(SendTimeoutError::TooLong { len, max }) => Err(SendError::TooLong { len, max }),
            Err(SendTimeoutError::Corrupted(c)) => Err(SendError::Corrupted(c)),
            Err(SendTimeoutError::Unregistered) => Err(SendError::Unregistered),
            Err(SendTimeoutError::Disconnected) => Err(SendError::Disconnected),
        }
    }

    /// Send, waiting at most `timeout` while the queue is full.
    ///
    /// # Errors
    /// [`SendTimeoutError::Timeout`], `Closed`, `TooLong`, `Corrupted`, `Unregistered`.
    pub fn send_timeout(
        &self,
        msg: &[u8],
        timeout: Duration,
    ) -> std::result::Result<(), SendTimeoutError> {
        self.send_deadline(msg, Deadline::after(timeout))
    }

    fn send_deadline(
        &self,
        msg: &[u8],
        deadline: Deadline,
    ) -> std::result::Result<(), SendTimeoutError> {
        match self.reserve_pos(msg.len(), deadline) {
            Ok(pos) => {
                self.write_commit(pos, msg);
                Ok(())
            }
            Err(Refused::Full | Refused::Timeout) => Err(SendTimeoutError::Timeout),
            Err(Refused::Closed) => Err(SendTimeoutError::Closed),
            Err(Refused::TooLong) => {
                Err(SendTimeoutError::TooLong { len: msg.len(), max: self.max_message() })
            }
            Err(Refused::Corrupted(c)) => Err(SendTimeoutError::Corrupted(c)),
            Err(Refused::Unregistered) => Err(SendTimeoutError::Unregistered),
            Err(Refused::Disconnected) => Err(SendTimeoutError::Disconnected),
        }
    }

    /// Zero-copy send: lend a writable slot of `len` bytes, waiting while the queue is full.
    /// [`SendSlot::commit`] publishes it; dropping it uncommitted gives it back (receivers
    /// skip it).
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub fn reserve(&self, len: usize) -> std::result::Result<SendSlot<'_>, SendError> {
        match self.reserve_pos(len, Deadline::NEVER) {
            Ok(pos) => Ok(self.slot(pos, len)),
            Err(Refused::TooLong) => Err(SendError::TooLong { len, max: self.max_message() }),
            Err(Refused::Corrupted(c)) => Err(SendError::Corrupted(c)),
            Err(Refused::Unregistered) => Err(SendError::Unregistered),
            Err(Refused::Disconnected) => Err(SendError::Disconnected),
            Err(Refused::Full | Refused::Timeout | Refused::Closed) => Err(SendError::Closed),
        }
    }

    /// [`reserve`](Self::reserve) without waiting.
    ///
    /// # Errors
    /// As [`try_send`](Self::try_send).
    pub fn try_reserve(&self, len: usize) -> std::result::Result<SendSlot<'_>, TrySendError> {
        match self.try_reserve_pos(len) {
            Ok(pos) => Ok(self.slot(pos, len)),
            Err(Refused::Full | Refused::Timeout | Refused::Disconnected) => {
                Err(TrySendError::Full)
            }
            Err(Refused::Closed) => Err(TrySendError::Closed),
            Err(Refused::TooLong) => Err(TrySendError::TooLong { len, max: self.max_message() }),
            Err(Refused::Corrupted(c)) => Err(TrySendError::Corrupted(c)),
            Err(Refused::Unregistered) => Err(TrySendError::Unregistered),
        }
    }

    /// [`reserve`](Self::reserve) waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`send_timeout`](Self::send_timeout).
    pub fn reserve_timeout(
        &self,
        len: usize,
        timeout: Duration,
    ) -> std::result::Result<SendSlot<'_>, SendTimeoutError> {
        match self.reserve_pos(len, Deadline::after(timeout)) {
            Ok(pos) => Ok(self.slot(pos, len)),
            Err(Refused::Full | Refused::Timeout) => Err(SendTimeoutError::Timeout),
            Err(Refused::Closed) => Err(SendTimeoutError::Closed),
            Err(Refused::TooLong) => {
                Err(SendTimeoutError::TooLong { len, max: self.max_message() })
            }
            Err(Refused::Corrupted(c)) => Err(SendTimeoutError::Corrupted(c)),
            Err(Refused::Unregistered) => Err(SendTimeoutError::Unregistered),
            Err(Refused::Disconnected) => Err(SendTimeoutError::Disconnected),
        }
    }

    fn slot(&self, pos: u64, len: usize) -> SendSlot<'_> {
        // The reservation just succeeded with this process's id (cached), so this is it.
        let me = self.inner.me().unwrap_or(0);
        SendSlot { queue: self, pos, len, me, done: false }
    }

    pub(crate) fn lend(&self, claimed: Claimed) -> RecvRef<'_> {
        // The claim just succeeded with this process's id (cached), so this is it.
        let me = self.inner.me().unwrap_or(0);
        RecvRef { queue: self, claimed, me }
    }

    fn claim_once(&self) -> std::result::Result<Claimed, (NoMessage, Option<(u64, u64)>)> {
        self.inner.tick(Side::Recv);
        let Some(me) = self.inner.me() else { return Err((NoMessage::Unregistered, None)) };
        self.inner.list(Side::Recv, me);
        match raw::try_claim(self.inner.region(), me) {
            Ok(c) => Ok(c),
            Err(ClaimErr::Empty) => Err((NoMessage::Empty, None)),
            Err(ClaimErr::Pending { pos, word }) => Err((NoMessage::Empty, Some((pos, word)))),
            Err(ClaimErr::Closed) => Err((NoMessage::Closed, None)),
            Err(ClaimErr::Corrupted(c)) => Err((NoMessage::Corrupted(c), None)),
        }
    }

    pub(crate) fn try_claim(&self) -> std::result::Result<Claimed, NoMessage> {
        self.claim_once().map_err(|(n, blocker)| {
            if let Some((pos, word)) = blocker {
                self.inner.note_blocked(pos, word);
            }
            n
        })
    }

    pub(crate) fn claim(&self, deadline: Deadline) -> std::result::Result<Claimed, NoMessage> {
        let attempt = || match self.claim_once() {
            Ok(c) => Attempt::Done(c),
            Err((NoMessage::Empty, blocker)) => Attempt::Blocked(blocker),
            Err((n, _)) => Attempt::Failed(n),
        };
        let ready = || raw::recv_ready(self.inner.region());
        let gone = || self.inner.peers_gone(Side::Recv).then_some(NoMessage::Disconnected);
        self.inner
            .wait_loop(Side::Recv, deadline, ready, gone, attempt)
            .map_err(|e| e.unwrap_or(NoMessage::Timeout))
    }

    /// Copy a claimed message out and release its slot.
    pub(crate) fn take(&self, c: Claimed, out: &mut Vec<u8>) {
        self.inner.region().read_vec(c.pos, c.len, out);
        raw::release(self.inner.region(), c.pos);
    }

    /// Copy a claimed message into `out` (exactly `c.len` bytes) and release its slot.
    pub(crate) fn take_into(&self, c: Claimed, out: &mut [u8]) {
        if let Some(dst) = out.get_mut(..c.len) {
            self.inner.region().read(c.pos, dst);
        }
        raw::release(self.inner.region(), c.pos);
    }

    /// Receive without waiting.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`], `Closed` (closed and drained), `Corrupted`.
    pub fn try_recv(&self) -> std::result::Result<Vec<u8>, TryRecvError> {
        let mut v = Vec::new();
        self.try_recv_into(&mut v)?;
        Ok(v)
    }

    /// [`try_recv`](Self::try_recv) into `buf` (cleared first, reusing its allocation);
    /// returns the length.
    ///
    /// # Errors
    /// As [`try_recv`](Self::try_recv).
    pub fn try_recv_into(&self, buf: &mut Vec<u8>) -> std::result::Result<usize, TryRecvError> {
        let c = self.try_claim().map_err(try_recv_err)?;
        self.take(c, buf);
        Ok(c.len)
    }

    /// Receive, waiting without limit.
    ///
    /// # Errors
    /// [`RecvError::Closed`] once closed and drained, `Corrupted`.
    pub fn recv(&self) -> std::result::Result<Vec<u8>, RecvError> {
        let mut v = Vec::new();
        self.recv_into(&mut v)?;
        Ok(v)
    }

    /// Receive into `buf` (cleared first, reusing its allocation); returns the length.
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    pub fn recv_into(&self, buf: &mut Vec<u8>) -> std::result::Result<usize, RecvError> {
        let c = self.claim(Deadline::NEVER).map_err(|e| RecvError::from(recv_timeout_err(e)))?;
        self.take(c, buf);
        Ok(c.len)
    }

    /// Receive, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`RecvTimeoutError::Timeout`], `Closed`, `Corrupted`.
    pub fn recv_timeout(
        &self,
        timeout: Duration,
    ) -> std::result::Result<Vec<u8>, RecvTimeoutError> {
        let c = self.claim(Deadline::after(timeout)).map_err(recv_timeout_err)?;
        let mut v = Vec::new();
        self.take(c, &mut v);
        Ok(v)
    }

    /// Zero-copy receive: lend the next message, waiting without limit. Its slot is released
    /// when the guard drops. If this process dies while holding it, the message is lost
    /// (counted in [`Stats::lost`]): delivery is at most once.
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    pub fn recv_ref(&self) -> std::result::Result<RecvRef<'_>, RecvError> {
        let c = self.claim(Deadline::NEVER).map_err(|e| RecvError::from(recv_timeout_err(e)))?;
        Ok(self.lend(c))
    }

    /// [`recv_ref`](Self::recv_ref) without waiting.
    ///
    /// # Errors
    /// As [`try_recv`](Self::try_recv).
    pub fn try_recv_ref(&self) -> std::result::Result<RecvRef<'_>, TryRecvError> {
        let c = self.try_claim().map_err(try_recv_err)?;
        Ok(self.lend(c))
    }

    /// [`recv_ref`](Self::recv_ref) waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`recv_timeout`](Self::recv_timeout).
    pub fn recv_ref_timeout(
        &self,
        timeout: Duration,
    ) -> std::result::Result<RecvRef<'_>, RecvTimeoutError> {
        let c = self.claim(Deadline::after(timeout)).map_err(recv_timeout_err)?;
        Ok(self.lend(c))
    }

    /// Messages in the queue (committed, or claimed by a producer and being written).
    pub fn len(&self) -> usize {
        raw::len(self.inner.region())
    }

    /// Whether [`len`](Self::len) is zero.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether [`len`](Self::len) equals the capacity.
    pub fn is_full(&self) -> bool {
        self.len() >= self.capacity()
    }

    /// Slots: the capacity asked for at creation, **rounded up to a power of two** (a queue
    /// created with capacity 3 holds 4 messages).
    pub fn capacity(&self) -> usize {
        self.inner.cfg().capacity as usize
    }

    /// Largest message in bytes.
    pub fn max_message(&self) -> usize {
        self.inner.cfg().max_message as usize
    }

    /// Close the queue for every process: senders get `Closed` at once, receivers drain
    /// what was committed and then get `Closed`; every sleeping sender and receiver, in every
    /// process, wakes. A send that raced the close may still land (and is received).
    pub fn close(&self) {
        raw::close(self.inner.region());
    }

    /// Whether [`close`](Self::close) was called (by any process).
    pub fn is_closed(&self) -> bool {
        // Acquire: pairs with the Release store in close.
        self.inner.region().ctrl().closed.load(Ordering::Acquire) != 0
    }

    /// The shared counters (abandoned slots, lost messages, waits...).
    pub fn stats(&self) -> Stats {
        self.inner.stats()
    }

    /// The segment's name (`<anonymous>` for memfd queues).
    pub fn name(&self) -> &str {
        self.inner.name()
    }

    /// The underlying segment (to pass its fd, or to persist/unlink the name).
    pub fn shm(&self) -> &Shm {
        self.inner.shm()
    }

    /// Slots held by `owner`: (being written, being read). Diagnostics for fault tests.
    #[doc(hidden)]
    pub fn slots_held_by(&self, owner: u32) -> (usize, usize) {
        raw::held_by(self.inner.region(), owner)
    }
}

pub(crate) fn try_recv_err(e: NoMessage) -> TryRecvError {
    match e {
        NoMessage::Empty | NoMessage::Timeout | NoMessage::Disconnected => TryRecvError::Empty,
        NoMessage::Closed => TryRecvError::Closed,
        NoMessage::Corrupted(c) => TryRecvError::Corrupted(c),
        NoMessage::Unregistered => TryRecvError::Unregistered,
    }
}

pub(crate) fn recv_timeout_err(e: NoMessage) -> RecvTimeoutError {
    match e {
        NoMessage::Empty | NoMessage::Timeout => RecvTimeoutError::Timeout,
        NoMessage::Closed => RecvTimeoutError::Closed,
        NoMessage::Corrupted(c) => RecvTimeoutError::Corrupted(c),
        NoMessage::Unregistered => RecvTimeoutError::Unregistered,
        NoMessage::Disconnected => RecvTimeoutError::Disconnected,
    }
}

/// A slot lent for writing by [`Queue::reserve`]: `len` bytes, published by
/// [`commit`](Self::commit), given back if dropped uncommitted.
#[derive(Debug)]
pub struct SendSlot<'q> {
    queue: &'q Queue,
    pos: u64,
    len: usize,
    me: u32,
    done: bool,
}

impl SendSlot<'_> {
    /// Publish the message (all `len` bytes, or fewer after [`truncate`](Self::truncate)).
    pub fn commit(mut self) {
        self.done = true;
        raw::commit(self.queue.inner.region(), self.pos, self.len);
    }

    /// Shorten the message to `len` bytes (no-op if longer than now).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
}

impl Deref for SendSlot<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: this guard holds the slot of `pos` (claimed WRITING by this process) until
        // commit or drop, and every slice it lends borrows the guard.
        unsafe { self.queue.inner.region().lend(self.pos, self.len) }
    }
}

impl DerefMut for SendSlot<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in deref; `&mut self` makes this the only slice alive.
        unsafe { self.queue.inner.region().lend_mut(self.pos, self.len) }
    }
}

impl Drop for SendSlot<'_> {
    fn drop(&mut self) {
        // Only the process that reserved the slot gives it back: a forked child's copy of the
        // guard leaves the parent's reservation alone.
        if !self.done && self.queue.inner.me() == Some(self.me) {
            raw::cancel(self.queue.inner.region(), self.pos, self.me);
        }
    }
}

/// A message lent by [`Queue::recv_ref`]; its slot is released on drop.
#[derive(Debug)]
pub struct RecvRef<'q> {
    queue: &'q Queue,
    claimed: Claimed,
    /// The process that claimed the slot (a forked child's copy must not release it).
    me: u32,
}

impl Deref for RecvRef<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: this guard holds the slot (claimed READING by this process) until drop;
        // the slice borrows the guard.
        unsafe { self.queue.inner.region().lend(self.claimed.pos, self.claimed.len) }
    }
}

impl Drop for RecvRef<'_> {
    fn drop(&mut self) {
        // Only in the process that claimed it: a forked child's copy of the guard must not
        // free the slot its parent still reads.
        if self.queue.inner.me() == Some(self.me) {
            raw::release(self.queue.inner.region(), self.claimed.pos);
        }
    }
}
