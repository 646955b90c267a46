//! Who holds a lock and whether they are alive, how long a lock operation may wait, and the
//! internal outcome of the raw state machines.
//!
//! Owner ids, their checked words and their [`Status`] come from `ipc_shm::liveness` (its
//! module docs hold the table every primitive of the family follows: `Alive` is waited on,
//! `Dead` is recovered, `Unknown` is never recovered and waited on until the deadline).
//! This module is the state machines' only window on it: under `--cfg ipc_loom` the same
//! four functions answer from [`model`] instead, a world of model processes whose deaths the
//! test decides (loom cannot kill a process). Nothing else differs between the two builds.

use ipc_shm::Deadline;
use ipc_shm::liveness;
pub(crate) use ipc_shm::liveness::Status;

use crate::error::{LockError, TryLockError};

/// This process's owner word (`check_of(id) << 32 | id`), if it has registered: the lock
/// fast paths CAS it in without any other lookup. One plain load (ipc-shm's cache, which its
/// fork handler clears in a forked child).
#[inline(always)]
pub(crate) fn cached_word() -> Option<u64> {
    liveness::cached_word()
}

/// This process's owner id, registering on first use (and afresh in a forked child).
#[inline]
pub(crate) fn me() -> Result<u32, ipc_shm::Error> {
    Ok(liveness::current()?.get())
}

/// What liveness says of `owner`, an id read from a lock word or a reader slot.
#[inline]
pub(crate) fn status(owner: u32) -> Status {
    liveness::status_raw(owner)
}

/// Whether `owner` is this process's owner id: the test every release makes, so that a guard
/// inherited by a forked child (which has its own id, or none yet) releases nothing its parent
/// holds. One plain load on the fast path.
#[inline(always)]
pub(crate) fn is_me(owner: u32) -> bool {
    // An unknown word (0) never equals an owner id (never 0).
    cached_word().unwrap_or(0) as u32 == owner || is_me_slow(owner)
}

#[cold]
#[inline(never)]
fn is_me_slow(owner: u32) -> bool {
    // In a forked child this registers the child afresh (its own id, never the parent's); a
    // process that cannot register holds nothing.
    me().is_ok_and(|me| me == owner)
}

/// How long a lock operation may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Not at all (`try_`).
    No,
    /// Until the deadline ([`Deadline::NEVER`]: until acquired).
    Until(Deadline),
}

impl Wait {
    /// Until acquired.
    pub(crate) const FOREVER: Wait = Wait::Until(Deadline::NEVER);

    /// Until `timeout` from now (saturating: a huge timeout waits until acquired).
    pub(crate) fn after(timeout: std::time::Duration) -> Wait {
        Wait::Until(Deadline::after(timeout))
    }

    /// Whether the caller's deadline has passed.
    pub(crate) fn expired(self) -> bool {
        match self {
            Wait::No => true,
            Wait::Until(deadline) => deadline.has_passed(),
        }
    }
}

/// Internal outcome of the raw state machines, converted to the public enums at the edge.
#[derive(Debug)]
pub(crate) enum RawError {
    WouldBlock,
    TimedOut,
    NotRecoverable,
    Corrupted(u64),
    TooManyReaders,
    Liveness(Box<ipc_shm::Error>),
}

impl From<ipc_shm::Error> for RawError {
    fn from(e: ipc_shm::Error) -> Self {
        RawError::Liveness(Box::new(e))
    }
}

impl RawError {
    pub(crate) fn into_try<G>(self) -> TryLockError<G> {
        match self {
            RawError::WouldBlock => TryLockError::WouldBlock,
            RawError::TimedOut => TryLockError::TimedOut,
            RawError::NotRecoverable => TryLockError::NotRecoverable,
            RawError::Corrupted(word) => TryLockError::Corrupted { word },
            RawError::TooManyReaders => TryLockError::TooManyReaders,
            RawError::Liveness(e) => TryLockError::Liveness(e),
        }
    }

    /// For blocking operations. `None` for the busy outcomes, which a blocking operation
    /// never produces; callers retry on `None` rather than panic.
    pub(crate) fn into_lock<G>(self) -> Option<LockError<G>> {
        match self {
            RawError::WouldBlock | RawError::TimedOut => None,
            RawError::NotRecoverable => Some(LockError::NotRecoverable),
            RawError::Corrupted(word) => Some(LockError::Corrupted { word }),
            RawError::TooManyReaders => Some(LockError::TooManyReaders),
            RawError::Liveness(e) => Some(LockError::Liveness(e)),
        }
    }
}

impl std::fmt::Display for RawError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RawError::WouldBlock => f.write_str("held by a live owner"),
            RawError::TimedOut => f.write_str("timed out"),
            RawError::NotRecoverable => f.write_str("not recoverable"),
            RawError::Corrupted(word) => write!(f, "corrupted lock word {word:#x}"),
            RawError::TooManyReaders => f.write_str("reader table full"),
            RawError::Liveness(e) => write!(f, "no owner id: {e}"),
        }
    }
}
