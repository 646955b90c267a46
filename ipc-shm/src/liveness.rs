//! Liveness: who is alive, decided by the kernel, immune to pid reuse.
//!
//! Each process that takes part registers once ([`current`]) in a registry segment
//! (`/dev/shm/ipc-liveness.<uid>`, mode 0600) by taking an OFD write lock on one byte of it,
//! its *slot*, and bumping that slot's generation. Its [`OwnerId`] is `generation << 14 |
//! slot`: 30 bits, never zero, so it fits in a lock word with two flag bits to spare.
//! [`status`] answers "is the owner of this id alive?" with one `F_OFD_GETLK`: the kernel
//! drops the lock when the process dies (SIGKILL included), and a reused slot has a new
//! generation, so a new process that happens to get a dead one's pid, or even its slot, is
//! never taken for it.
//!
//! OFD locks belong to the open file description, which `fork` shares. A `pthread_atfork`
//! child handler therefore closes the child's copy of the lease (or the parent's death would
//! go unnoticed while the child lives) and the child registers afresh, with its own id, on
//! its next call. The lease fd is close-on-exec. (A raw `clone` that skips the fork handlers
//! keeps the parent's lease alive until the child exits or execs.)
//!
//! # What a status means, in every crate
//! [`status`] answers with one of three values, and every primitive of the family acts on
//! them the same way:
//!
//! | status | when | what the primitives do |
//! |---|---|---|
//! | `Alive` | the id's lease is held (a stopped process is alive) | wait (sleeping in [`wait::Schedule`](crate::wait::Schedule) slices) |
//! | `Dead` | the kernel released the lease (death, SIGKILL included, or exec), or the id's slot was taken by a newer process since | recover: the next locker gets `OwnerDied`, a dead reader's slot and a dead holder's permits are reclaimed, a dead producer's queue slot is skipped, a barrier breaks, an SPSC role is vacated |
//! | `Unknown` | not an id this registry handed out (zero, out of range, a slot never used), or the registry cannot answer now | never recovered: the waiter keeps waiting until its deadline (a lock word that is not an owner word at all is `Corrupted` first) |
//!
//! # One registry per set of sharing processes
//! Owner ids mean something only inside the registry that handed them out. The registry
//! carries a random id ([`registry_id`]); every object that stores owner ids records it in its
//! header, and a process of another registry that opens it gets
//! [`Error::ForeignRegistry`] naming both, instead of judging
//! those ids against the wrong leases. That happens when:
//! - **processes of two users** share a segment (each user has a registry of its own,
//!   `/dev/shm/ipc-liveness.<uid>`, mode 0600): share lock-, queue- and semaphore-bearing
//!   objects between processes of one user; plain data (atomics) shares across users fine;
//! - **two containers** with their own `/dev/shm` see one segment (passed by fd): the same;
//! - **`IPC_LIVENESS_REGISTRY`** names another registry in some of the processes: set it to
//!   the same name in all of them;
//! - **the registry was unlinked under running processes** (systemd-logind's `RemoveIPC=yes`
//!   does this when a user's last session ends). The running processes keep the registry they
//!   map, and their forked children join it (a lease is taken by re-opening the mapped file
//!   through `/proc/self/fd`, never by path): they stay alive to each other and every death
//!   among them is still seen. A process started afterwards creates a new registry (a new
//!   id) and is refused by the old objects with `ForeignRegistry`, never misjudging them.
//!
//! Under `--cfg ipc_loom`, `liveness::model` lets loom models play several processes and kill some
//! (the one seam for injecting owners; nothing else changes for the primitives).
//!
//! Cost: registration a few syscalls once per process; `status` one syscall (~1 µs), meant
//! for slow paths (a waiter that timed out, a recovery sweep).
#![allow(unsafe_code)] // the raw lease fd kept in process-global state for the fork handler

use std::num::NonZeroU32;
use std::os::fd::{AsFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU32, AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::segment::{Shm, ShmOptions};
use crate::sys::{self, LockKind};

#[cfg(ipc_loom)]
pub mod model;

/// Name prefix of registry segments (never swept).
pub(crate) const REGISTRY_PREFIX: &str = "ipc-liveness.";
const SLOT_BITS: u32 = 14;
/// Number of slots: at most this many processes registered at once per registry.
pub const SLOTS: usize = 1 << SLOT_BITS;
const GEN_BITS: u32 = 16;
const GEN_MASK: u32 = (1 << GEN_BITS) - 1;
/// Slot `s` is locked at byte `LOCK_BASE + s` (clear of the segment's own use/init bytes).
const LOCK_BASE: u64 = 4096;
/// Each slot holds `{generation: u32, pid: u32}` from this offset.
const SLOT_TABLE: usize = 64;
const REGISTRY_LEN: usize = SLOT_TABLE + SLOTS * 8;

/// A registered process: 30 bits, never zero. Store [`get`](Self::get) in shared words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(transparent)]
pub struct OwnerId(NonZeroU32);

impl OwnerId {
    /// Owner ids use the low 30 bits of a word; the top two are free for flags.
    pub const BITS: u32 = SLOT_BITS + GEN_BITS;
    /// Mask of the owner id bits.
    pub const MASK: u32 = (1 << Self::BITS) - 1;

    /// An owner id from a raw word read from shared memory; `None` if it cannot be one (zero,
    /// or bits above [`BITS`](Self::BITS), or generation zero).
    pub fn from_raw(raw: u32) -> Option<OwnerId> {
        if raw & !Self::MASK != 0 || raw >> SLOT_BITS == 0 {
            return None;
        }
        NonZeroU32::new(raw).map(OwnerId)
    }

    /// The raw 30-bit value.
    pub fn get(self) -> u32 {
        self.0.get()
    }

    fn slot(self) -> usize {
        (self.get() & ((1 << SLOT_BITS) - 1)) as usize
    }

    fn generation(self) -> u32 {
        self.get() >> SLOT_BITS
    }
}

/// The check stored beside owner id `owner` in the high half of a 64-bit owner word: a fixed
/// mix of the id, never zero, the same in every process. A random 64-bit word passes it with
/// probability 2^-32; a 32-bit write into the low half never does (its high half is a stale
/// check or 0). Lock words use it to tell garbage from an owner.
pub const fn check_of(owner: u32) -> u32 {
    (owner.wrapping_mul(0x9E37_79B1).rotate_left(13) ^ 0xA5A5_5A5A) | 1
}

/// `check_of(owner) << 32 | owner`: an owner id with its check, as lock words store it.
pub const fn checked_word(owner: u32) -> u64 {
    ((check_of(owner) as u64) << 32) | owner as u64
}

impl std::fmt::Display for OwnerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "owner {}:{}", self.slot(), self.generation())
    }
}

struct Registry {
    name: String,
    shm: Shm,
    /// This registry's random id (word 1 of the segment), recorded in the header of every
    /// object that stores owner ids.
    id: u32,
}

/// Offset of the registry id (a random non-zero u32 the first opener sets).
const ID_OFFSET: usize = 4;

/// The registry mapping, leaked once published. An atomic pointer rather than a `OnceLock`:
/// nothing here may block, because a fork can catch another thread half-way through and
/// the child would wait for it forever.
static REGISTRY: AtomicPtr<Registry> = AtomicPtr::new(std::ptr::null_mut());
/// Our lease: an fd of our own open file description holding our slot's lock; -1 if none.
/// Stored *before* the lock is taken, so a fork at any moment of registration leaves the
/// child's fork handler an fd to close.
static LEASE_FD: AtomicI32 = AtomicI32::new(-1);
/// Our owner id; 0 if not registered (in this process: reset in a forked child).
static OWNER: AtomicU32 = AtomicU32::new(0);
/// Our owner id as a checked 64-bit word ([`OwnerId::checked_word`]), cached for lock fast
/// paths; 0 if not registered. Reset with `OWNER`.
static OWNER_WORD: AtomicU64 = AtomicU64::new(0);
/// Serialises registration between threads; reset in a forked child (where the thread that
/// held it does not exist).
static REGISTERING: AtomicBool = AtomicBool::new(false);
/// Fork handler registration: 0 not yet, `DONE`, or the pid of the process registering it.
static ATFORK: AtomicU32 = AtomicU32::new(0);
const DONE: u32 = u32::MAX;
/// Bumped by the fork child handler: a [`ProcessToken`] is this value, so a child's differs
/// from its parent's. Only the low 31 bits are used; pid tokens set the top bit.
static FORK_EPOCH: AtomicU32 = AtomicU32::new(1);
/// Set when the fork handler could not be registered: tokens are then pids (one syscall).
static PID_TOKENS: AtomicBool = AtomicBool::new(false);
const PID_TOKEN: u32 = 1 << 31;

fn registry_name() -> String {
    match std::env::var("IPC_LIVENESS_REGISTRY") {
        Ok(name) if !name.is_empty() => name,
        _ => format!("{REGISTRY_PREFIX}{}", sys::euid()),
    }
}

fn registry() -> Result<&'static Registry> {
    // Acquire: pairs with the AcqRel publication below.
    let published = REGISTRY.load(Ordering::Acquire);
    if !published.is_null() {
        // SAFETY: a non-null pointer was published from a leaked Box and is never freed.
        return Ok(unsafe { &*published });
    }
    // Not cached on failure: a transient error (EMFILE, say) does not poison the process.
    // Two threads may both open it; open_or_create is safe for that and one copy is dropped.
    let name = registry_name();
    let mut opts = ShmOptions::new();
    opts.persist(true);
    let shm = opts.open_or_create(&name, REGISTRY_LEN)?;
    shm.persist(true);
    let id = registry_id_of(&shm, &name)?;
    let mine = Box::into_raw(Box::new(Registry { name, shm, id }));
    // AcqRel: publishes the registry (Release) or reads the winner's (Acquire).
    match REGISTRY.compare_exchange(std::ptr::null_mut(), mine, Ordering::AcqRel, Ordering::Acquire)
    {
        // SAFETY: we just leaked `mine`; it is never freed.
        Ok(_) => Ok(unsafe { &*mine }),
        Err(winner) => {
            // SAFETY: `mine` was never published, so we still own it.
            drop(unsafe { Box::from_raw(mine) });
            // SAFETY: the winner's pointer was published from a leaked Box, never freed.
            Ok(unsafe { &*winner })
        }
    }
}

/// The registry's id: set once, to a random non-zero value, by whichever opener finds it 0.
fn registry_id_of(shm: &Shm, name: &str) -> Result<u32> {
    // SAFETY: the id word is only ever accessed as this atomic u32, by every process.
    let word = unsafe { shm.atomic_u32(ID_OFFSET) }.ok_or_else(|| {
        Error::io("open liveness registry", name, std::io::Error::other("too short"))
    })?;
    // Acquire: pairs with the AcqRel CAS below (of whoever set it).
    let id = word.load(Ordering::Acquire);
    if id != 0 {
        return Ok(id);
    }
    let mut seed = [0u8; 4];
    sys::random_bytes(&mut seed).map_err(|e| Error::io("open liveness registry", name, e))?;
    let fresh = u32::from_ne_bytes(seed).max(1);
    // AcqRel: publishes our id, or reads the one set first.
    Ok(match word.compare_exchange(0, fresh, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => fresh,
        Err(set) => set,
    })
}

/// The id of this process's liveness registry (random, non-zero): recorded in the header
/// of every object that stores owner ids, so that a process of another registry (another
/// user, another `/dev/shm`, another `IPC_LIVENESS_REGISTRY`, or a registry removed and
/// re-created under it) refuses to read those ids rather than misjudge them.
///
/// # Errors
/// As [`current`].
pub fn registry_id() -> Result<u32> {
    Ok(registry()?.id)
}

fn slot_words(reg: &Registry, slot: usize) -> Option<(&AtomicU32, &AtomicU32)> {
    let at = SLOT_TABLE + slot * 8;
    // SAFETY: the slot table is only ever accessed as atomic u32 words, by every process.
    let generation = unsafe { reg.shm.atomic_u32(at)? };
    // SAFETY: as above.
    let pid = unsafe { reg.shm.atomic_u32(at + 4)? };
    Some((generation, pid))
}

unsafe extern "C" fn after_fork_child() {
    // Only async-signal-safe work: atomics and close(2). Idempotent, so registering the
    // handler twice (see `ensure_fork_handler`) is harmless.
    // AcqRel/Release: the child has one thread, so these only keep the same pairing as in
    // the parent: with the Acquire loads of LEASE_FD in `status`/`lease_fd`, of OWNER and
    // OWNER_WORD in `current`/`current_word`, of REGISTERING in `lock_registering`.
    let fd = LEASE_FD.swap(-1, Ordering::AcqRel);
    if fd >= 0 {
        sys::close_raw(fd);
    }
    OWNER.store(0, Ordering::Release);
    OWNER_WORD.store(0, Ordering::Release);
    REGISTERING.store(false, Ordering::Release);
    // Relaxed: the child has one thread; nothing else is ordered by the epoch.
    let epoch = FORK_EPOCH.load(Ordering::Relaxed);
    FORK_EPOCH.store(epoch.wrapping_add(1) & !PID_TOKEN, Ordering::Relaxed);
}

fn lock_registering() {
    // Acquire: pairs with the Release stores that free it, so the holder's writes of
    // LEASE_FD/OWNER are visible to the next holder. The holder is a live thread of this
    // process (a fork resets the flag in the child), so this wait is short.
    while REGISTERING
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        std::thread::yield_now();
    }
}

/// Register the fork child handler once per process image. A registration caught half-way by
/// a fork (the state names the parent's pid) is redone in the child; the handler is
/// idempotent, so running it twice is fine.
fn ensure_fork_handler() -> Result<()> {
    let me = sys::pid();
    loop {
        // Acquire: pairs with the Release store of DONE.
        let state = ATFORK.load(Ordering::Acquire);
        if state == DONE {
            return Ok(());
        }
        if state == me {
            std::thread::yield_now(); // another thread of ours is registering it
            continue;
        }
        // 0, or a registration the fork caught in the parent: ours to do.
        // Relaxed: only one claimant proceeds; DONE is published with Release.
        if ATFORK.compare_exchange(state, me, Ordering::Relaxed, Ordering::Relaxed).is_err() {
            continue;
        }
        return match sys::atfork_child(after_fork_child) {
            Ok(()) => {
                // Release: pairs with the Acquire loads of ATFORK in this function and below.
                ATFORK.store(DONE, Ordering::Release);
                Ok(())
            }
            Err(e) => {
                // Release: as above (the next caller tries again).
                ATFORK.store(0, Ordering::Release);
                Err(Error::io("register fork handlers for", "liveness", e))
            }
        };
    }
}

/// This process's owner id, registering on first use (and again in a forked child).
///
/// # Errors
/// [`Error::LivenessFull`] when every slot is held by a live process; [`Error::Io`] if the
/// registry cannot be opened or locked.
#[inline]
pub fn current() -> Result<OwnerId> {
    #[cfg(ipc_loom)]
    if let Some(id) = model::acting() {
        return Ok(id);
    }
    // Acquire: pairs with the Release store of OWNER in `register`. The fast path is this
    // load and a check, inlined into lock fast paths; registration is out of line.
    let raw = OWNER.load(Ordering::Acquire);
    if raw != 0 && raw & !OwnerId::MASK == 0 {
        // Nonzero and in range: written only by `register`, always a valid id.
        if let Some(nz) = NonZeroU32::new(raw) {
            return Ok(OwnerId(nz));
        }
    }
    current_slow()
}

#[cold]
#[inline(never)]
fn current_slow() -> Result<OwnerId> {
    ensure_fork_handler()?;
    let reg = registry()?;
    lock_registering();
    let result = register(reg);
    // Release: pairs with the Acquire of `lock_registering`: the next registrant sees our
    // OWNER and LEASE_FD stores.
    REGISTERING.store(false, Ordering::Release);
    result
}

fn register(reg: &Registry) -> Result<OwnerId> {
    // Acquire: pairs with the Release store of OWNER in `claim_slot`.
    if let Some(id) = OwnerId::from_raw(OWNER.load(Ordering::Acquire)) {
        return Ok(id); // another thread registered while we waited
    }
    // A new open file description of the file we already map (through /proc/self/fd), not
    // of whatever the name points to now: if the registry was unlinked (systemd's RemoveIPC)
    // or replaced, our lease is still on the inode our peers check, and we join them.
    let lease = sys::reopen(reg.shm.as_fd())
        .map_err(|e| Error::io("open liveness registry", &reg.name, e))?;
    // Into the fork handler's reach before any lock is taken on it (see LEASE_FD).
    let lease_raw = sys::into_raw(lease);
    // Release: pairs with the Acquire loads in `status` and `lease_fd`.
    LEASE_FD.store(lease_raw, Ordering::Release);
    let result = claim_slot(reg, lease_raw);
    if result.is_err() {
        // AcqRel: takes the fd back against the fork handler's swap (the same pairing).
        let fd = LEASE_FD.swap(-1, Ordering::AcqRel);
        if fd >= 0 {
            sys::close_raw(fd);
        }
    }
    result
}

fn claim_slot(reg: &Registry, lease_raw: RawFd) -> Result<OwnerId> {
    // SAFETY: `lease_raw` is our open fd; only a fork child handler closes it, and that runs
    // in a single-threaded child, never during this call.
    let lease = unsafe { sys::borrow_raw(lease_raw) };
    let mut seed = [0u8; 4];
    sys::random_bytes(&mut seed).map_err(|e| Error::io("register in", &reg.name, e))?;
    let start = u32::from_ne_bytes(seed) as usize;
    for i in 0..SLOTS {
        let slot = (start.wrapping_add(i)) % SLOTS;
        let got = sys::ofd_try_lock(lease, LockKind::Write, LOCK_BASE + slot as u64, 1)
            .map_err(|e| Error::io("register in", &reg.name, e))?;
        if !got {
            continue;
        }
        let Some((generation, pid)) = slot_words(reg, slot) else { break };
        // Relaxed: we hold the slot's lock; nobody else writes this slot now (a hostile peer
        // may, and then status reports the id dead, the safe direction for nobody).
        let old = generation.load(Ordering::Relaxed) & GEN_MASK;
        let new = if old == 0 {
            // A fresh registry (or one recreated after a sweep): start at a random
            // generation so ids of processes from before cannot come back alive.
            ((u32::from_ne_bytes(seed).rotate_left(16)) & GEN_MASK).max(1)
        } else if old == GEN_MASK {
            1
        } else {
            old + 1
        };
        // Relaxed: published by the Release store of the generation just below.
        pid.store(sys::pid(), Ordering::Relaxed);
        // Release: pairs with the Acquire loads in `status` and `pid_hint`: whoever sees
        // the new generation sees our pid (never the 0 of a slot not yet used).
        generation.store(new, Ordering::Release);
        let id = (new << SLOT_BITS) | slot as u32;
        // Release: pairs with the Acquire loads in `current` and `current_word`.
        OWNER_WORD.store(checked_word(id), Ordering::Release);
        // Release: pairs with the Acquire load in `current`.
        OWNER.store(id, Ordering::Release);
        return OwnerId::from_raw(id)
            .ok_or_else(|| Error::io("register in", &reg.name, std::io::Error::other("bad id")));
    }
    Err(Error::LivenessFull { name: reg.name.clone(), slots: SLOTS })
}

/// This process's owner id as a [checked word](checked_word), registering on first use:
/// one load on the fast path (the lock fast paths compare it with the lock word).
///
/// # Errors
/// As [`current`].
#[inline]
pub fn current_word() -> Result<u64> {
    #[cfg(ipc_loom)]
    if let Some(id) = model::acting() {
        return Ok(checked_word(id.get()));
    }
    // Acquire: pairs with the Release store in `claim_slot`.
    match OWNER_WORD.load(Ordering::Acquire) {
        0 => current().map(|id| checked_word(id.get())),
        word => Ok(word),
    }
}

/// The cached [`current_word`], if this process has registered (no registration here).
#[inline]
pub fn cached_word() -> Option<u64> {
    #[cfg(ipc_loom)]
    if let Some(id) = model::acting() {
        return Some(checked_word(id.get()));
    }
    // Relaxed: the word is immutable for the life of the process once stored (a forked child
    // starts from 0), and it orders nothing else: whoever uses it acquires through the lock
    // word it CASes.
    match OWNER_WORD.load(Ordering::Relaxed) {
        0 => None,
        word => Some(word),
    }
}

/// What liveness can say of an owner id read from shared memory. `Unknown` is never treated
/// as dead by any primitive of the family: see the module docs for the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// A live (or stopped: a slow peer is not a dead one) process holds this id's lease.
    Alive,
    /// The process that registered this id is gone: the kernel released its lease (it died,
    /// SIGKILL included, or exec'd), or its slot has been taken by a newer process since.
    Dead,
    /// Not an id this registry ever handed out (zero, out of range, a slot never used), or
    /// the question cannot be answered now (the registry is unavailable to this process).
    Unknown,
}

/// The [`Status`] of `owner`. A stopped (SIGSTOP) process is alive; a process that died,
/// even by SIGKILL, is dead as soon as the kernel has closed its files, before its parent
/// reaps it; a new process never inherits a dead one's id. One syscall (`F_OFD_GETLK`), for
/// slow paths.
pub fn status(owner: OwnerId) -> Status {
    #[cfg(ipc_loom)]
    if let Some(s) = model::status(owner) {
        return s;
    }
    let Ok(me) = current() else { return Status::Unknown };
    if me == owner {
        return Status::Alive;
    }
    let Ok(reg) = registry() else { return Status::Unknown };
    let Some((generation, pid)) = slot_words(reg, owner.slot()) else { return Status::Unknown };
    // Acquire: pairs with the Release store of the generation in `claim_slot` (after its pid).
    let g = generation.load(Ordering::Acquire) & GEN_MASK;
    if g != owner.generation() {
        // Relaxed: ordered by the Acquire load above.
        if g == 0 && pid.load(Ordering::Relaxed) == 0 {
            return Status::Unknown; // a slot never used: this was never an id
        }
        return Status::Dead; // the slot was taken by a newer process: the owner is gone
    }
    let fd = LEASE_FD.load(Ordering::Acquire);
    if fd < 0 {
        return Status::Unknown; // a fork handler ran mid-call
    }
    // SAFETY: LEASE_FD holds an fd we own; it is closed only by the fork child handler, which
    // runs in a child with a single thread, never concurrently with this call.
    let lease = unsafe { sys::borrow_raw(fd) };
    match sys::ofd_conflicts(lease, LockKind::Write, LOCK_BASE + owner.slot() as u64, 1) {
        Ok(true) => Status::Alive,
        Ok(false) => Status::Dead,
        Err(_) => Status::Unknown,
    }
}

/// [`status`] of a raw word read from shared memory: [`Status::Unknown`] when the word cannot
/// be an owner id at all.
pub fn status_raw(raw: u32) -> Status {
    #[cfg(ipc_loom)]
    if raw & !OwnerId::MASK == 0
        && let Some(nz) = NonZeroU32::new(raw)
        && let Some(s) = model::status(OwnerId(nz))
    {
        return s; // model ids need not follow the registry's generation rule
    }
    OwnerId::from_raw(raw).map_or(Status::Unknown, status)
}

/// The pid recorded for `owner`'s slot (diagnostics only: pids are reused). `Some(0)` when
/// the slot never held a process (so `owner` was never a real id); `None` when the slot has
/// been taken by another process since (the pid there is not `owner`'s) or the registry is
/// unavailable.
pub fn pid_hint(owner: OwnerId) -> Option<u32> {
    let reg = registry().ok()?;
    let (generation, pid) = slot_words(reg, owner.slot())?;
    // Acquire: pairs with the Release store of the generation in `claim_slot`, which follows
    // its pid store: a generation seen here comes with its pid.
    let g = generation.load(Ordering::Acquire) & GEN_MASK;
    // Relaxed: ordered by the Acquire load above.
    let p = pid.load(Ordering::Relaxed);
    if g == owner.generation() || (g == 0 && p == 0) { Some(p) } else { None }
}

#[doc(hidden)]
/// The raw lease fd (tests check it is close-on-exec and not inherited).
pub fn lease_fd() -> Option<RawFd> {
    // Acquire: pairs with the Release store in `register`.
    let fd = LEASE_FD.load(Ordering::Acquire);
    (fd >= 0).then_some(fd)
}

/// Which process this is, cheaply, for "is this still the process that took it?": a token
/// that differs in every forked child from its parent's (and from its siblings' only as far
/// as that matters: a guard reaches a child only by being copied from its parent).
///
/// Permits and guards record the token when they are taken and release only where it is
/// [`is_current`](Self::is_current), so a forked child that drops its copy of a parent's
/// permit gives back nothing. Costs one or two atomic loads (no syscall) once the fork
/// handler is registered, which the first call does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProcessToken(u32);

impl ProcessToken {
    /// This process's token.
    #[inline]
    pub fn current() -> ProcessToken {
        // Acquire: pairs with the Release store of DONE, so the handler that bumps the epoch
        // in a child is in place before any token is handed out.
        if ATFORK.load(Ordering::Acquire) == DONE {
            // Relaxed: the epoch changes only in a single-threaded forked child.
            return ProcessToken(FORK_EPOCH.load(Ordering::Relaxed));
        }
        Self::current_slow()
    }

    #[cold]
    #[inline(never)]
    fn current_slow() -> ProcessToken {
        // Relaxed: a sticky flag; both answers are correct tokens of this process.
        if !PID_TOKENS.load(Ordering::Relaxed) {
            if ensure_fork_handler().is_ok() {
                // Relaxed: as in `current`.
                return ProcessToken(FORK_EPOCH.load(Ordering::Relaxed));
            }
            // Relaxed: see above.
            PID_TOKENS.store(true, Ordering::Relaxed);
        }
        ProcessToken(PID_TOKEN | sys::pid())
    }

    /// Whether this token was taken in the current process (not in its parent before a fork).
    #[inline]
    pub fn is_current(self) -> bool {
        self == Self::current()
    }
}
