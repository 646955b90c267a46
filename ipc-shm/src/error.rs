//! The crate's error type: set-up and OS failures, each naming the operation and the object.

use std::io;
use std::time::Duration;

use crate::header::HeaderError;

/// Errors of ipc-shm. Every message names the operation and the segment (`open shm segment
/// "jobs": ...`); OS errors are kept as the source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The name breaks the rules: `[A-Za-z0-9._-]{1,200}` and not `.` or `..`.
    #[error("invalid shm name {name:?}: {reason}")]
    InvalidName {
        /// The name as given (lossy if it was not UTF-8).
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// `create` found a segment (or anything else) at the name.
    #[error("{op} shm segment {name:?}: already exists")]
    AlreadyExists {
        /// The operation.
        op: &'static str,
        /// The segment.
        name: String,
    },
    /// `open` found nothing at the name.
    #[error("{op} shm segment {name:?}: not found")]
    NotFound {
        /// The operation.
        op: &'static str,
        /// The segment.
        name: String,
    },
    /// A symlink, directory, FIFO or device sits at the name; it is neither followed nor touched.
    #[error(
        "{op} shm segment {name:?}: not a regular file (symlinks and special files are refused)"
    )]
    NotRegularFile {
        /// The operation.
        op: &'static str,
        /// The segment.
        name: String,
    },
    /// The segment belongs to another user.
    #[error("{op} shm segment {name:?}: owned by uid {found}, expected uid {expected}")]
    UntrustedOwner {
        /// The operation.
        op: &'static str,
        /// The segment.
        name: String,
        /// Our effective uid.
        expected: u32,
        /// The owner found.
        found: u32,
    },
    /// The segment's mode grants more than the caller allowed (default 0600).
    #[error("{op} shm segment {name:?}: mode {found:#o} grants more than the allowed {allowed:#o}")]
    TooPermissive {
        /// The operation.
        op: &'static str,
        /// The segment.
        name: String,
        /// The widest mode the caller accepts.
        allowed: u32,
        /// The segment's mode.
        found: u32,
    },
    /// The space could not be reserved (a full /dev/shm), reported at create time.
    #[error("{op} shm segment {name:?}: no space for {len} bytes (is /dev/shm full?)")]
    NoSpace {
        /// The operation.
        op: &'static str,
        /// The segment.
        name: String,
        /// The length asked for.
        len: usize,
        /// The OS error (ENOSPC).
        #[source]
        source: io::Error,
    },
    /// The segment's size is not what the caller or the header requires.
    #[error("{op} shm segment {name:?}: size is {found} bytes, expected {expected}")]
    SizeMismatch {
        /// The operation.
        op: &'static str,
        /// The segment.
        name: String,
        /// The size required.
        expected: usize,
        /// The size found.
        found: usize,
    },
    /// A zero length, or one too large to map.
    #[error("{op} shm segment {name:?}: invalid length {len}")]
    InvalidLength {
        /// The operation.
        op: &'static str,
        /// The segment.
        name: String,
        /// The length asked for.
        len: usize,
    },
    /// The segment holds no finished object and nobody is initialising it: it was never one
    /// (all zero), or its creator died before it was ready (`why` says which).
    /// `open_or_create` re-initialises such a segment; `open` reports it.
    #[error("{op} shm segment {name:?}: not initialised: {why}")]
    NotInitialized {
        /// The operation.
        op: &'static str,
        /// The segment.
        name: String,
        /// What was found.
        why: &'static str,
    },
    /// A live creator is still initialising the segment after the bounded wait.
    #[error("{op} shm segment {name:?}: still being initialised after {waited:?}")]
    InitTimeout {
        /// The operation.
        op: &'static str,
        /// The segment.
        name: String,
        /// How long we waited.
        waited: Duration,
    },
    /// The header does not describe what the caller expects (or is corrupt).
    #[error("{op} shm segment {name:?}: incompatible header: {}", describe_header(source))]
    Incompatible {
        /// The operation.
        op: &'static str,
        /// The segment.
        name: String,
        /// What was wrong, with expected and found values.
        #[source]
        source: HeaderError,
    },
    /// The object stores liveness owner ids made under another liveness registry than this
    /// process's: they cannot be checked here (a live owner could be taken for dead), so the
    /// object is refused. See `ipc_shm::liveness` for when this happens and what to do.
    #[error(
        "{op} shm segment {name:?}: made under liveness registry {found:#010x}, but this process \
         uses registry {ours:#010x}, so the owner ids in it cannot be checked here: processes \
         that share it must share one registry (the same user and /dev/shm; set \
         IPC_LIVENESS_REGISTRY to the same name in each; a registry removed under running \
         processes, e.g. by systemd's RemoveIPC, is re-created with a new id for new processes)"
    )]
    ForeignRegistry {
        /// The operation.
        op: &'static str,
        /// The segment.
        name: String,
        /// The registry id recorded in the object.
        found: u32,
        /// Ours.
        ours: u32,
    },
    /// A passed fd is not a memfd sealed against shrinking (a peer could truncate it under us).
    #[error("{op} shm segment {name:?}: fd is not sealed against shrinking")]
    NotSealed {
        /// The operation.
        op: &'static str,
        /// The segment.
        name: String,
    },
    /// `read_at`/`write_at` outside the segment.
    #[error("{op} shm segment {name:?}: range {offset}+{len} is outside the {size}-byte segment")]
    OutOfBounds {
        /// The operation.
        op: &'static str,
        /// The segment.
        name: String,
        /// Start of the range.
        offset: usize,
        /// Length of the range.
        len: usize,
        /// Size of the segment.
        size: usize,
    },
    /// Every slot of the liveness registry is held by a live process.
    #[error("register in liveness registry {name:?}: all {slots} slots are held by live processes")]
    LivenessFull {
        /// The registry segment.
        name: String,
        /// Its slot count.
        slots: usize,
    },
    /// Any other OS failure.
    #[error("{op} shm segment {name:?}: {source}")]
    Io {
        /// The operation.
        op: &'static str,
        /// The segment.
        name: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    pub(crate) fn io(op: &'static str, name: &str, source: impl Into<io::Error>) -> Self {
        Error::Io { op, name: name.to_owned(), source: source.into() }
    }

    /// What went wrong, without the operation and object the message starts with: for an
    /// error of another crate that names its own object (`open queue "jobs": not found`).
    pub fn cause(&self) -> String {
        let full = self.to_string();
        let prefix = match self {
            Error::InvalidName { reason, .. } => return format!("invalid name: {reason}"),
            Error::LivenessFull { .. } => return full,
            Error::AlreadyExists { op, name }
            | Error::NotFound { op, name }
            | Error::NotRegularFile { op, name }
            | Error::UntrustedOwner { op, name, .. }
            | Error::TooPermissive { op, name, .. }
            | Error::NoSpace { op, name, .. }
            | Error::SizeMismatch { op, name, .. }
            | Error::InvalidLength { op, name, .. }
            | Error::NotInitialized { op, name, .. }
            | Error::InitTimeout { op, name, .. }
            | Error::Incompatible { op, name, .. }
            | Error::NotSealed { op, name }
            | Error::ForeignRegistry { op, name, .. }
            | Error::OutOfBounds { op, name, .. }
            | Error::Io { op, name, .. } => format!("{op} shm segment {name:?}: "),
        };
        full.strip_prefix(&prefix).map_or(full.clone(), str::to_owned)
    }

    /// The OS error behind this error, if any.
    pub fn os_error(&self) -> Option<&io::Error> {
        match self {
            Error::Io { source, .. } | Error::NoSpace { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A header error for a message: a type mismatch names both types where this process knows
/// them (the header itself records only their tags).
fn describe_header(e: &HeaderError) -> String {
    match *e {
        HeaderError::LayoutTag { expected, found } => {
            let name = |tag: u64| {
                crate::object::kind_name(tag)
                    .map_or_else(|| format!("an unknown type (tag {tag:#018x})"), str::to_owned)
            };
            format!("it holds {}, not {} (a different object type)", name(found), name(expected))
        }
        _ => e.to_string(),
    }
}
