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
#[cfg(not(ipc_loom))]
use ipc_shm::liveness;
pub(crate) use ipc_shm::liveness::Status;

use crate::error::{LockError, TryLockError};

/// This process's owner word (`check_of(id) << 32 | id`), if it has registered: the lock
/// fast paths CAS it in without any other lookup. One plain load (ipc-shm's cache, which its
/// fork handler clears in a forked child).
#[cfg(not(ipc_loom))]
#[inline(always)]
pub(crate) fn cached_word() -> Option<u64> {
    liveness::cached_word()
}

/// This process's owner id, registering on first use (and afresh in a forked child).
#[cfg(not(ipc_loom))]
#[inline]
pub(crate) fn me() -> Result<u32, ipc_shm::Error> {
    Ok(liveness::current()?.get())
}

/// What liveness says of `owner`, an id read from a lock word or a reader slot.
#[cfg(not(ipc_loom))]
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

#[cfg(ipc_loom)]
pub(crate) use model::{cached_word, me, status};

/// Model processes for the loom models (built only with `--cfg ipc_loom`): each loom thread
/// acts as the owner id it [enters](model::World::enter) with, and the test kills ids at
/// will. Ids 1..=63 are model processes, alive until killed; any other id is
/// [`Status::Unknown`], as an id no process ever had is to the real registry (a thread may
/// enter as one, to leave such an id in a lock word the way a peer would).
#[cfg(ipc_loom)]
pub mod model {
    use std::cell::RefCell;

    use ipc_shm::sync::atomic::{AtomicU64, Ordering};
    use loom::sync::Arc;

    use super::Status;

    /// Which model processes have died.
    #[derive(Debug, Default)]
    pub struct World {
        dead: AtomicU64,
    }

    loom::thread_local! {
        static ACTOR: RefCell<Option<(u32, Arc<World>)>> = RefCell::new(None);
    }

    impl World {
        /// A world where every model process lives.
        pub fn new() -> Arc<World> {
            Arc::new(World::default())
        }

        /// From now on, the calling loom thread is owner `id` of `world`: a model process
        /// (1..=63), or an owner liveness calls Unknown (any other 30-bit id).
        pub fn enter(world: &Arc<World>, id: u32) {
            assert!(id != 0 && id <= ipc_shm::liveness::OwnerId::MASK, "not an owner id");
            ACTOR.with(|a| *a.borrow_mut() = Some((id, world.clone())));
        }

        /// Model process `id` (1..=63) dies: the kernel's view (liveness) says Dead from now
        /// on.
        pub fn kill(&self, id: u32) {
            assert!((1..=63).contains(&id), "model processes are 1..=63");
            // SeqCst: the model kernel's record of deaths, not part of the modelled code.
            self.dead.fetch_or(1 << id, Ordering::SeqCst);
        }
    }

    fn actor() -> (u32, Arc<World>) {
        match ACTOR.with(|a| a.borrow().clone()) {
            Some(actor) => actor,
            None => panic!("loom model: call World::enter on this thread first"),
        }
    }

    pub(crate) fn cached_word() -> Option<u64> {
        Some(ipc_shm::liveness::checked_word(actor().0))
    }

    pub(crate) fn me() -> Result<u32, ipc_shm::Error> {
        Ok(actor().0)
    }

    pub(crate) fn status(owner: u32) -> Status {
        let (_, world) = actor();
        match owner {
            // SeqCst: as in `kill`.
            1..=63 if world.dead.load(Ordering::SeqCst) & (1 << owner) != 0 => Status::Dead,
            1..=63 => Status::Alive,
            _ => Status::Unknown,
        }
    }
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
