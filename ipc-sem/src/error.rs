//! The crate's error type (set-up, OS failures, bad shared state) and the small outcome
//! enums of the hot paths.

use std::fmt;
use std::io;

/// Errors of ipc-sem. Messages name the operation and the object.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// This process could not get its owner id from the liveness registry (tracked mode
    /// records it beside every permit it holds).
    #[error("{op} {object}: no owner id from the liveness registry: {source}")]
    Liveness {
        /// The operation.
        op: &'static str,
        /// The kind of object.
        object: &'static str,
        /// What the registry said.
        #[source]
        source: ipc_shm::Error,
    },
    /// A release would push the count past the maximum (Python's `ValueError`), or the count
    /// in shared memory already is past it (written by a buggy or hostile peer).
    #[error("{op} {object}: count {found} + {n} released is above the maximum {max}")]
    Overflow {
        /// The operation.
        op: &'static str,
        /// The kind of object.
        object: &'static str,
        /// The count found.
        found: u32,
        /// Permits being released.
        n: u32,
        /// The maximum.
        max: u32,
    },
    /// More permits asked for at once than the object can ever hold, or zero.
    #[error("{op} {object}: {n} permits asked for at once, must be 1..={max}")]
    InvalidCount {
        /// The operation.
        op: &'static str,
        /// The kind of object.
        object: &'static str,
        /// Permits asked for.
        n: u32,
        /// The most the object can hold.
        max: u32,
    },
    /// A tracked release of permits this process does not hold.
    #[error("{op} {object}: this process holds {held} of the {n} permits it releases")]
    NotHeld {
        /// The operation.
        op: &'static str,
        /// The kind of object.
        object: &'static str,
        /// Permits being released.
        n: u32,
        /// Permits this process was found holding (and released).
        held: u32,
    },
    /// A word in shared memory holds a value the object never writes.
    #[error("{op} {object}: shared state is corrupted: {what} is {found:#x}")]
    Corrupted {
        /// The operation.
        op: &'static str,
        /// The kind of object.
        object: &'static str,
        /// Which word.
        what: &'static str,
        /// The value found.
        found: u32,
    },
    /// A constructor argument out of range.
    #[error("{op} {object}: {what}")]
    InvalidArgument {
        /// The operation.
        op: &'static str,
        /// The kind of object.
        object: &'static str,
        /// What is wrong.
        what: String,
    },
    /// A name that is not `[A-Za-z0-9._-]{1,200}` (or is `.`/`..`).
    #[error("{op} named semaphore {name:?}: invalid name: {}", name_rule(name))]
    InvalidName {
        /// The operation.
        op: &'static str,
        /// The name given.
        name: String,
    },
    /// A named semaphore owned by another user or with a wider mode than asked for.
    #[error("{op} named semaphore {name:?}: {what}")]
    Untrusted {
        /// The operation.
        op: &'static str,
        /// The name.
        name: String,
        /// What is wrong (owner uid or mode found).
        what: String,
    },
    /// The OS refused a named-semaphore call.
    #[error("{op} named semaphore {name:?}: {source}")]
    Named {
        /// The operation.
        op: &'static str,
        /// The name.
        name: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A barrier wait that failed (through `?`).
    #[error(transparent)]
    Barrier(#[from] BarrierError),
}

/// Which naming rule `name` breaks, for [`Error::InvalidName`].
fn name_rule(name: &str) -> String {
    match ipc_shm::validate_name(name) {
        Err(ipc_shm::Error::InvalidName { reason, .. }) => reason.to_owned(),
        _ => "it contains a NUL byte".to_owned(),
    }
}

impl Error {
    /// The OS error inside, if any (`ErrorKind::AlreadyExists`, `NotFound`, ...).
    pub fn os_error(&self) -> Option<&io::Error> {
        match self {
            Error::Named { source, .. } => Some(source),
            Error::Liveness { source, .. } => source.os_error(),
            _ => None,
        }
    }
}

/// Result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a [`Barrier`](crate::Barrier) wait failed (Python's `BrokenBarrierError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BarrierError {
    /// The barrier is broken: a party timed out, called `abort()`, died while the others
    /// waited, or `reset()` ran while this party waited. `reset()` repairs it.
    Broken,
    /// This party's timeout passed; the barrier is now broken for everyone.
    Timeout,
    /// The barrier's shared words hold values it never writes.
    Corrupted {
        /// The operation.
        op: &'static str,
        /// The value found.
        found: u32,
    },
    /// This process has no owner id (ipc-shm's liveness registry could not be used; call
    /// `ipc_shm::liveness::current()` for the cause). It does not arrive: a party the others
    /// cannot check for death could leave them waiting for ever.
    Unregistered,
}

impl fmt::Display for BarrierError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BarrierError::Broken => f.write_str("wait barrier: the barrier is broken"),
            BarrierError::Timeout => {
                f.write_str("wait barrier: timed out (the barrier is now broken)")
            }
            BarrierError::Corrupted { op, found } => {
                write!(f, "{op} barrier: shared state is corrupted: parties word is {found:#x}")
            }
            BarrierError::Unregistered => f.write_str(
                "wait barrier: this process has no liveness owner id, so it cannot take part",
            ),
        }
    }
}

impl std::error::Error for BarrierError {}
