//! Named locks: each in its own `/dev/shm` segment behind ipc-shm's checked header (magic,
//! layout version, a hash of the full type name, size and alignment), so processes that share
//! no memory open it by name, and a segment of another type or version is refused.

use std::fmt;
use std::ops::Deref;

use ipc_shm::{Shared, ShmOptions, ShmSafe};

use crate::condvar::Condvar;
use crate::error::{Error, Result};
use crate::mutex::Mutex;
use crate::reentrant::{RawReentrantMutex, ReentrantMutex};
use crate::rwlock::RwLock;

/// A lock (or any [`ShmSafe`] object of this crate) in its own named segment; derefs to it.
///
/// Use the aliases: [`NamedMutex`], [`NamedRwLock`], [`NamedReentrantMutex`],
/// [`NamedRLock`], [`NamedCondvar`]. The creator unlinks the name when it drops its handle
/// (unless told to persist through [`create_with`](Self::create_with)'s options), in the
/// creating process only: a forked child dropping its copy of the handle leaves the name;
/// processes that opened it keep their mapping.
pub struct Named<L: ShmSafe> {
    shared: Shared<L>,
    kind: &'static str,
}

/// A [`Mutex<T>`] in its own named segment.
pub type NamedMutex<T> = Named<Mutex<T>>;
/// An [`RwLock<T>`] in its own named segment.
pub type NamedRwLock<T> = Named<RwLock<T>>;
/// A [`ReentrantMutex<T>`] in its own named segment.
pub type NamedReentrantMutex<T> = Named<ReentrantMutex<T>>;
/// A [`RawReentrantMutex`] (Python's `RLock`) in its own named segment.
pub type NamedRLock = Named<RawReentrantMutex>;
/// A [`Condvar`] in its own named segment (pair it with a [`NamedMutex`]).
pub type NamedCondvar = Named<Condvar>;

impl<L: ShmSafe> fmt::Debug for Named<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Named").field("kind", &self.kind).field("shm", self.shared.shm()).finish()
    }
}

impl<L: ShmSafe> Deref for Named<L> {
    type Target = L;

    fn deref(&self) -> &L {
        &self.shared
    }
}

fn shm_error(op: &'static str, kind: &'static str, name: &str, source: ipc_shm::Error) -> Error {
    Error::Shm { op, kind, name: name.to_owned(), source: Box::new(source) }
}

impl<L: ShmSafe> Named<L> {
    /// Create the segment `name` holding `value`, with `opts` (mode, persistence, ...).
    ///
    /// # Errors
    /// [`Error::Shm`]: the name exists, is invalid, /dev/shm is full, ...
    pub fn create_with(opts: &ShmOptions, name: &str, value: L) -> Result<Self> {
        let kind = kind_of::<L>();
        let shared = Shared::create_with(opts, name, value)
            .map_err(|e| shm_error("create", kind, name, e))?;
        Ok(Named { shared, kind })
    }

    /// Open the segment `name`; its header must say it holds an `L`.
    ///
    /// # Errors
    /// [`Error::Shm`]: not found, another type or layout version, untrusted owner or mode, ...
    pub fn open(name: &str) -> Result<Self> {
        Self::open_with(&ShmOptions::new(), name)
    }

    /// [`open`](Self::open) with options (accepted mode, init wait, ...).
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_with(opts: &ShmOptions, name: &str) -> Result<Self> {
        let kind = kind_of::<L>();
        let shared = Shared::open_with(opts, name).map_err(|e| shm_error("open", kind, name, e))?;
        Ok(Named { shared, kind })
    }

    /// Open the segment `name`, or create it holding `init()` (exactly one of many racing
    /// callers initialises it).
    ///
    /// # Errors
    /// As [`create_with`](Self::create_with) and [`open`](Self::open).
    pub fn open_or_create_with(name: &str, init: impl FnMut() -> L) -> Result<Self> {
        let kind = kind_of::<L>();
        let shared = Shared::open_or_create(name, init)
            .map_err(|e| shm_error("open or create", kind, name, e))?;
        Ok(Named { shared, kind })
    }

    /// The segment.
    pub fn shm(&self) -> &ipc_shm::Shm {
        self.shared.shm()
    }

    /// The shared object handle.
    pub fn shared(&self) -> &Shared<L> {
        &self.shared
    }
}

fn kind_of<L>() -> &'static str {
    let name = std::any::type_name::<L>();
    if name.contains("RwLock") {
        "rwlock"
    } else if name.contains("ReentrantMutex") {
        "re-entrant mutex"
    } else if name.contains("Condvar") {
        "condvar"
    } else if name.contains("Mutex") {
        "mutex"
    } else {
        "lock object"
    }
}

impl<T: bytemuck::Pod + Send> Named<Mutex<T>> {
    /// Create a named mutex holding `value`.
    ///
    /// # Errors
    /// As [`Named::create_with`].
    pub fn create(name: &str, value: T) -> Result<Self> {
        Self::create_with(&ShmOptions::new(), name, Mutex::new(value))
    }

    /// Open a named mutex, or create it holding `value`.
    ///
    /// # Errors
    /// As [`Named::open_or_create_with`].
    pub fn open_or_create(name: &str, value: T) -> Result<Self> {
        Self::open_or_create_with(name, || Mutex::new(value))
    }
}

impl<T: bytemuck::Pod + Send + Sync> Named<RwLock<T>> {
    /// Create a named reader-writer lock holding `value`.
    ///
    /// # Errors
    /// As [`Named::create_with`].
    pub fn create(name: &str, value: T) -> Result<Self> {
        Self::create_with(&ShmOptions::new(), name, RwLock::new(value))
    }

    /// Open a named reader-writer lock, or create it holding `value`.
    ///
    /// # Errors
    /// As [`Named::open_or_create_with`].
    pub fn open_or_create(name: &str, value: T) -> Result<Self> {
        Self::open_or_create_with(name, || RwLock::new(value))
    }
}

impl<T: ShmSafe + Send> Named<ReentrantMutex<T>> {
    /// Create a named re-entrant mutex holding `value`.
    ///
    /// # Errors
    /// As [`Named::create_with`].
    pub fn create(name: &str, value: T) -> Result<Self> {
        Self::create_with(&ShmOptions::new(), name, ReentrantMutex::new(value))
    }
}

impl Named<RawReentrantMutex> {
    /// Create a named `RLock`.
    ///
    /// # Errors
    /// As [`Named::create_with`].
    pub fn create(name: &str) -> Result<Self> {
        Self::create_with(&ShmOptions::new(), name, RawReentrantMutex::new())
    }

    /// Open a named `RLock`, or create it.
    ///
    /// # Errors
    /// As [`Named::open_or_create_with`].
    pub fn open_or_create(name: &str) -> Result<Self> {
        Self::open_or_create_with(name, RawReentrantMutex::new)
    }
}

impl Named<Condvar> {
    /// Create a named condition variable.
    ///
    /// # Errors
    /// As [`Named::create_with`].
    pub fn create(name: &str) -> Result<Self> {
        Self::create_with(&ShmOptions::new(), name, Condvar::new())
    }

    /// Open a named condition variable, or create it.
    ///
    /// # Errors
    /// As [`Named::open_or_create_with`].
    pub fn open_or_create(name: &str) -> Result<Self> {
        Self::open_or_create_with(name, Condvar::new)
    }
}
