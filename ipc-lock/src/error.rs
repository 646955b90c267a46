//! Errors in two tiers: [`Error`] for set-up and OS failures (named locks, file locks), and
//! small outcome enums for the lock operations themselves ([`LockError`], [`TryLockError`]),
//! whose `OwnerDied` variant carries the guard, like std's `PoisonError`.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Set-up and OS failures of this crate, and (through `?`) a lock that was not taken. Every
/// message names the operation, the object and the cause in one line
/// (`open mutex "jobs": not found`).
///
/// [`LockError`] and [`TryLockError`] convert into it, dropping the guard they may carry, so
/// `m.lock()?` works in a function returning `ipc_lock::Error` (and, through it, in one
/// returning `Box<dyn Error>`: `m.lock().map_err(ipc_lock::Error::from)?`). Dropping an
/// `OwnerDied` guard that way leaves the lock not recoverable: see [`Mutex`](crate::Mutex)
/// for the recovery pattern when an owner may die.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Creating, opening or mapping the segment of a named lock failed (the source names the
    /// segment and says why: not found, incompatible header, permissions, ...).
    #[error("{op} {kind} {name:?}: {}", source.cause())]
    Shm {
        /// The operation (`create`, `open`, `open or create`).
        op: &'static str,
        /// What the segment holds (`mutex`, `rwlock`, ...).
        kind: &'static str,
        /// The segment name.
        name: String,
        /// What went wrong in ipc-shm.
        #[source]
        source: Box<ipc_shm::Error>,
    },
    /// A file lock operation failed.
    #[error("{op} file lock {path:?}: {source}")]
    File {
        /// The operation (`open`, `lock`, `unlock`, ...).
        op: &'static str,
        /// The lock file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A lock operation did not take the lock (converted from [`LockError`] or
    /// [`TryLockError`]; any guard it carried was dropped).
    #[error("{op}: {cause}")]
    Lock {
        /// `lock` or `try lock`.
        op: &'static str,
        /// Why.
        cause: LockFailure,
    },
}

/// Why a lock was not taken, without the guard: what [`Error::Lock`] holds.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockFailure {
    /// Held by a live owner.
    #[error("held by a live owner")]
    WouldBlock,
    /// Timed out while a live owner held it.
    #[error("timed out while a live owner held it")]
    TimedOut,
    /// The previous owner died holding it; the guard was dropped without marking the data
    /// consistent, so the lock is now not recoverable.
    #[error("{OWNER_DIED}; the guard was dropped unmarked, so the lock is now not recoverable")]
    OwnerDied,
    /// Not recoverable.
    #[error("{NOT_RECOVERABLE}")]
    NotRecoverable,
    /// A corrupted lock word.
    #[error("corrupted lock word {word:#x} (written by a faulty peer)")]
    Corrupted {
        /// The offending word.
        word: u64,
    },
    /// The reader table is full.
    #[error("{TOO_MANY_READERS}")]
    TooManyReaders,
    /// No owner id for this process.
    #[error("no owner id for this process: {0}")]
    Liveness(#[source] Box<ipc_shm::Error>),
}

impl<G> From<LockError<G>> for Error {
    fn from(e: LockError<G>) -> Self {
        let cause = match e {
            LockError::OwnerDied(_) => LockFailure::OwnerDied,
            LockError::NotRecoverable => LockFailure::NotRecoverable,
            LockError::Corrupted { word } => LockFailure::Corrupted { word },
            LockError::TooManyReaders => LockFailure::TooManyReaders,
            LockError::Liveness(e) => LockFailure::Liveness(e),
        };
        Error::Lock { op: "lock", cause }
    }
}

impl<G> From<TryLockError<G>> for Error {
    fn from(e: TryLockError<G>) -> Self {
        let op = if matches!(e, TryLockError::TimedOut) { "timed lock" } else { "try lock" };
        let cause = match e {
            TryLockError::WouldBlock => LockFailure::WouldBlock,
            TryLockError::TimedOut => LockFailure::TimedOut,
            TryLockError::OwnerDied(_) => LockFailure::OwnerDied,
            TryLockError::NotRecoverable => LockFailure::NotRecoverable,
            TryLockError::Corrupted { word } => LockFailure::Corrupted { word },
            TryLockError::TooManyReaders => LockFailure::TooManyReaders,
            TryLockError::Liveness(e) => LockFailure::Liveness(e),
        };
        Error::Lock { op, cause }
    }
}

/// Result alias of the tier-1 [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a blocking lock operation did not hand out a clean guard.
///
/// `G` is the guard handed out when the previous owner died: the same guard type as a clean
/// lock gives for a mutex; for a read lock of an [`RwLock`](crate::RwLock) it is the *write*
/// guard, because a reader that inherits a dead writer's lock gets it exclusively so it can
/// repair the data ([`LockResult`]'s second parameter).
pub enum LockError<G> {
    /// The previous owner died holding the lock. The guard inside holds it now; the data may
    /// be inconsistent. Repair it and call `mark_consistent()` on the guard, or the lock
    /// becomes [`NotRecoverable`](Self::NotRecoverable) for everyone when the guard drops.
    OwnerDied(G),
    /// A previous owner died, and its successor dropped the guard without marking the data
    /// consistent: the lock is permanently unusable (POSIX robust-mutex semantics).
    NotRecoverable,
    /// The lock's shared word holds a value no correct peer writes (a stray write or a
    /// hostile peer): nothing was acquired.
    Corrupted {
        /// The offending word.
        word: u64,
    },
    /// An [`RwLock`](crate::RwLock)'s reader table is full of live readers of other
    /// processes: nothing was acquired.
    TooManyReaders,
    /// This process could not register with the liveness registry, so it has no owner id
    /// to lock with.
    Liveness(Box<ipc_shm::Error>),
}

/// Why a `try_` or timed lock operation did not hand out a clean guard.
pub enum TryLockError<G> {
    /// The lock is held by a live owner, or by one liveness cannot call dead (`Unknown`,
    /// never recovered: see the crate docs) (`try_` forms).
    WouldBlock,
    /// The deadline passed while such an owner held the lock (timed forms).
    TimedOut,
    /// As [`LockError::OwnerDied`].
    OwnerDied(G),
    /// As [`LockError::NotRecoverable`].
    NotRecoverable,
    /// As [`LockError::Corrupted`].
    Corrupted {
        /// The offending word.
        word: u64,
    },
    /// As [`LockError::TooManyReaders`].
    TooManyReaders,
    /// As [`LockError::Liveness`].
    Liveness(Box<ipc_shm::Error>),
}

/// Result of a blocking lock operation.
pub type LockResult<G, D = G> = std::result::Result<G, LockError<D>>;
/// Result of a `try_` or timed lock operation.
pub type TryLockResult<G, D = G> = std::result::Result<G, TryLockError<D>>;

impl<G> LockError<G> {
    /// The guard of an `OwnerDied` outcome, if that is what this is.
    pub fn into_owner_died(self) -> Option<G> {
        match self {
            LockError::OwnerDied(g) => Some(g),
            _ => None,
        }
    }

    /// Whether this is `OwnerDied`.
    pub fn is_owner_died(&self) -> bool {
        matches!(self, LockError::OwnerDied(_))
    }

    /// Map the guard of an `OwnerDied` outcome.
    pub fn map<H>(self, f: impl FnOnce(G) -> H) -> LockError<H> {
        match self {
            LockError::OwnerDied(g) => LockError::OwnerDied(f(g)),
            LockError::NotRecoverable => LockError::NotRecoverable,
            LockError::Corrupted { word } => LockError::Corrupted { word },
            LockError::TooManyReaders => LockError::TooManyReaders,
            LockError::Liveness(e) => LockError::Liveness(e),
        }
    }
}

impl<G> TryLockError<G> {
    /// The guard of an `OwnerDied` outcome, if that is what this is.
    pub fn into_owner_died(self) -> Option<G> {
        match self {
            TryLockError::OwnerDied(g) => Some(g),
            _ => None,
        }
    }

    /// Whether this is `OwnerDied`.
    pub fn is_owner_died(&self) -> bool {
        matches!(self, TryLockError::OwnerDied(_))
    }

    /// Whether the lock was simply busy (`WouldBlock` or `TimedOut`).
    pub fn is_busy(&self) -> bool {
        matches!(self, TryLockError::WouldBlock | TryLockError::TimedOut)
    }

    /// Map the guard of an `OwnerDied` outcome.
    pub fn map<H>(self, f: impl FnOnce(G) -> H) -> TryLockError<H> {
        match self {
            TryLockError::WouldBlock => TryLockError::WouldBlock,
            TryLockError::TimedOut => TryLockError::TimedOut,
            TryLockError::OwnerDied(g) => TryLockError::OwnerDied(f(g)),
            TryLockError::NotRecoverable => TryLockError::NotRecoverable,
            TryLockError::Corrupted { word } => TryLockError::Corrupted { word },
            TryLockError::TooManyReaders => TryLockError::TooManyReaders,
            TryLockError::Liveness(e) => TryLockError::Liveness(e),
        }
    }
}

impl<G> From<LockError<G>> for TryLockError<G> {
    fn from(e: LockError<G>) -> Self {
        match e {
            LockError::OwnerDied(g) => TryLockError::OwnerDied(g),
            LockError::NotRecoverable => TryLockError::NotRecoverable,
            LockError::Corrupted { word } => TryLockError::Corrupted { word },
            LockError::TooManyReaders => TryLockError::TooManyReaders,
            LockError::Liveness(e) => TryLockError::Liveness(e),
        }
    }
}

const OWNER_DIED: &str = "the previous owner died holding it (the data may be inconsistent)";
const NOT_RECOVERABLE: &str =
    "not recoverable (an owner died and the data was never marked consistent)";
const TOO_MANY_READERS: &str = "the reader table is full of live readers";

impl<G> fmt::Debug for LockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::OwnerDied(_) => f.write_str("OwnerDied(..)"),
            LockError::NotRecoverable => f.write_str("NotRecoverable"),
            LockError::Corrupted { word } => write!(f, "Corrupted {{ word: {word:#x} }}"),
            LockError::TooManyReaders => f.write_str("TooManyReaders"),
            LockError::Liveness(e) => f.debug_tuple("Liveness").field(e).finish(),
        }
    }
}

impl<G> fmt::Display for LockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::OwnerDied(_) => write!(f, "lock: {OWNER_DIED}"),
            LockError::NotRecoverable => write!(f, "lock: {NOT_RECOVERABLE}"),
            LockError::Corrupted { word } => {
                write!(f, "lock: corrupted lock word {word:#x} (written by a faulty peer)")
            }
            LockError::TooManyReaders => write!(f, "lock: {TOO_MANY_READERS}"),
            LockError::Liveness(e) => write!(f, "lock: no owner id for this process: {e}"),
        }
    }
}

impl<G> std::error::Error for LockError<G> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LockError::Liveness(e) => Some(&**e),
            _ => None,
        }
    }
}

impl<G> fmt::Debug for TryLockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryLockError::WouldBlock => f.write_str("WouldBlock"),
            TryLockError::TimedOut => f.write_str("TimedOut"),
            TryLockError::OwnerDied(_) => f.write_str("OwnerDied(..)"),
            TryLockError::NotRecoverable => f.write_str("NotRecoverable"),
            TryLockError::Corrupted { word } => write!(f, "Corrupted {{ word: {word:#x} }}"),
            TryLockError::TooManyReaders => f.write_str("TooManyReaders"),
            TryLockError::Liveness(e) => f.debug_tuple("Liveness").field(e).finish(),
        }
    }
}

impl<G> fmt::Display for TryLockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryLockError::WouldBlock => f.write_str("try lock: held by a live owner"),
            TryLockError::TimedOut => {
                f.write_str("timed lock: timed out while a live owner held it")
            }
            TryLockError::OwnerDied(_) => write!(f, "try lock: {OWNER_DIED}"),
            TryLockError::NotRecoverable => write!(f, "try lock: {NOT_RECOVERABLE}"),
            TryLockError::Corrupted { word } => {
                write!(f, "try lock: corrupted lock word {word:#x} (written by a faulty peer)")
            }
            TryLockError::TooManyReaders => write!(f, "try lock: {TOO_MANY_READERS}"),
            TryLockError::Liveness(e) => write!(f, "try lock: no owner id for this process: {e}"),
        }
    }
}

impl<G> std::error::Error for TryLockError<G> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TryLockError::Liveness(e) => Some(&**e),
            _ => None,
        }
    }
}

/// A release by a thread or process that does not hold the lock (see
/// [`RawReentrantMutex::unlock`](crate::RawReentrantMutex::unlock)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unlock re-entrant mutex: the calling thread does not hold it")]
pub struct NotOwner;

/// Outcome of a timed condition-variable wait: whether the deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitTimeoutResult(pub(crate) bool);

impl WaitTimeoutResult {
    /// Whether the wait ended because its deadline passed (the predicate, if any, still
    /// false).
    pub fn timed_out(&self) -> bool {
        self.0
    }
}
