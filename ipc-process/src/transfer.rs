//! Handing ipc objects to a child: the [`Transfer`] trait and the [`Handle`] wrapper that
//! puts one inside a task's serde arguments.
//!
//! An anonymous object (a memfd segment, a socket) crosses as a file descriptor passed with
//! the arguments (`SCM_RIGHTS` on the control connection); a named one crosses as its name,
//! which the child opens (with the same owner and mode checks as any `open`). `Handle<T>`
//! serialises only inside this crate's argument encoder: serialised anywhere else (to JSON,
//! say) it is an error, as is one in a [`Pool::map`](crate::Pool::map) item (hand objects to
//! workers through the initializer or [`Pool::apply`](crate::Pool::apply)).

use std::cell::RefCell;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::os::fd::{AsFd, OwnedFd};

use serde::de::{DeserializeOwned, Error as _};
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;

/// How an object crosses to a child.
#[derive(Debug)]
pub enum Passed {
    /// By name: the child opens it.
    Name(String),
    /// By file descriptor: the child maps or wraps its duplicate.
    Fd(OwnedFd),
}

/// An object that can be handed to a child process inside a [`Handle`]. Implemented for the
/// family's types: [`ipc_shm::Shm`], [`ipc_shm::Shared<T>`] (so every lock, semaphore, event
/// or barrier placed in one), [`ipc_pipe::Connection`] and its simplex ends, and with
/// features `queue`, `sem`, `lock` the queues, named semaphores and named locks.
pub trait Transfer: Sized {
    /// How this object crosses.
    ///
    /// # Errors
    /// [`Error::CannotTransfer`] when it cannot (with why), or an OS error duplicating its fd.
    fn export(&self) -> Result<Passed, Error>;

    /// Rebuild the object in the child.
    ///
    /// # Errors
    /// [`Error::CannotTransfer`] when what arrived does not make one.
    fn import(passed: Passed) -> Result<Self, Error>;
}

/// A [`Transfer`] object inside a task's arguments: `Process::spawn(work, (Handle::new(q), 7))`
/// and `fn work((q, n): (Handle<Queue>, u32))` in the child. Derefs to the object.
///
/// To keep using the object in the parent, pass [`Handle::share(&q)`](Handle::share): a
/// second handle to the same object (the same memfd mapped again, the same name opened
/// again, a duplicate of the socket).
pub struct Handle<T>(pub T);

impl<T> Handle<T> {
    /// Wrap `value` (it moves to the child).
    pub fn new(value: T) -> Handle<T> {
        Handle(value)
    }

    /// A handle to the same object as `value`, which stays the caller's.
    ///
    /// # Errors
    /// As [`Transfer::export`] and [`Transfer::import`] (duplicating the fd, opening the
    /// name, mapping the segment again).
    pub fn share(value: &T) -> Result<Handle<T>, Error>
    where
        T: Transfer,
    {
        T::import(value.export()?).map(Handle)
    }

    /// The object.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: fmt::Debug> fmt::Debug for Handle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Handle").field(&self.0).finish()
    }
}

impl<T> Deref for Handle<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for Handle<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

/// What a handle looks like on the wire.
#[derive(Serialize, Deserialize)]
enum WireHandle {
    Name(String),
    Fd(u32),
}

thread_local! {
    /// While encoding arguments for a child: the fds collected so far.
    static SINK: RefCell<Option<Vec<OwnedFd>>> = const { RefCell::new(None) };
    /// While decoding arguments in a child: the fds that came with them.
    static SOURCE: RefCell<Option<Vec<Option<OwnedFd>>>> = const { RefCell::new(None) };
}

const OUTSIDE: &str =
    "an ipc_process::Handle only serialises as the arguments of a process or pool task";

impl<T: Transfer> Serialize for Handle<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let passed = self.0.export().map_err(S::Error::custom)?;
        let wire = match passed {
            Passed::Name(n) => WireHandle::Name(n),
            Passed::Fd(fd) => {
                let index = SINK.with(|sink| {
                    let mut sink = sink.borrow_mut();
                    let fds = sink.as_mut()?;
                    fds.push(fd);
                    u32::try_from(fds.len() - 1).ok()
                });
                WireHandle::Fd(index.ok_or_else(|| S::Error::custom(OUTSIDE))?)
            }
        };
        wire.serialize(s)
    }
}

impl<'de, T: Transfer> Deserialize<'de> for Handle<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let passed = match WireHandle::deserialize(d)? {
            WireHandle::Name(n) => Passed::Name(n),
            WireHandle::Fd(i) => {
                let fd = SOURCE.with(|src| {
                    let mut src = src.borrow_mut();
                    src.as_mut()?.get_mut(usize::try_from(i).ok()?)?.take()
                });
                Passed::Fd(fd.ok_or_else(|| {
                    D::Error::custom(format!("handle names fd {i}, which did not arrive"))
                })?)
            }
        };
        T::import(passed).map(Handle).map_err(D::Error::custom)
    }
}

/// Encode `value` for a child; the fds of handles inside it are returned alongside.
pub(crate) fn encode_with_fds<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<Vec<OwnedFd>, postcard::Error> {
    SINK.with(|s| *s.borrow_mut() = Some(Vec::new()));
    let r = crate::wire::encode_into(value, out);
    let fds = SINK.with(|s| s.borrow_mut().take()).unwrap_or_default();
    r.map(|()| fds)
}

/// Decode `bytes` in a child, handing `fds` to the handles inside (fds no handle claimed are
/// closed).
pub(crate) fn decode_with_fds<T: DeserializeOwned>(
    bytes: &[u8],
    fds: Vec<OwnedFd>,
) -> Result<T, postcard::Error> {
    SOURCE.with(|s| *s.borrow_mut() = Some(fds.into_iter().map(Some).collect()));
    let r = postcard::from_bytes(bytes);
    SOURCE.with(|s| s.borrow_mut().take());
    r
}

fn dup(fd: impl AsFd, what: &str) -> Result<OwnedFd, Error> {
    fd.as_fd().try_clone_to_owned().map_err(|e| Error::io("duplicate fd of", what, e))
}

fn cannot(what: &str, why: impl fmt::Display) -> Error {
    Error::CannotTransfer { what: what.to_owned(), why: why.to_string() }
}

impl Transfer for ipc_shm::Shm {
    fn export(&self) -> Result<Passed, Error> {
        match self.name() {
            Some(n) => Ok(Passed::Name(n.to_owned())),
            None => dup(self, "shm segment").map(Passed::Fd),
        }
    }

    fn import(passed: Passed) -> Result<Self, Error> {
        match passed {
            Passed::Name(n) => ipc_shm::Shm::open(&n).map_err(|e| cannot("shm segment", e)),
            Passed::Fd(fd) => ipc_shm::Shm::from_fd(fd).map_err(|e| cannot("shm segment", e)),
        }
    }
}

impl<T: ipc_shm::ShmSafe> Transfer for ipc_shm::Shared<T> {
    fn export(&self) -> Result<Passed, Error> {
        self.shm().export()
    }

    fn import(passed: Passed) -> Result<Self, Error> {
        let what = std::any::type_name::<Self>();
        match passed {
            Passed::Name(n) => ipc_shm::Shared::open(&n).map_err(|e| cannot(what, e)),
            Passed::Fd(fd) => ipc_shm::Shm::from_fd(fd)
                .and_then(ipc_shm::Shared::from_shm)
                .map_err(|e| cannot(what, e)),
        }
    }
}

macro_rules! fd_transfer {
    ($($ty:ty => $what:literal),* $(,)?) => {
        $(impl Transfer for $ty {
            fn export(&self) -> Result<Passed, Error> {
                dup(self, $what).map(Passed::Fd)
            }

            fn import(passed: Passed) -> Result<Self, Error> {
                match passed {
                    Passed::Fd(fd) => Ok(<$ty>::from(fd)),
                    Passed::Name(n) => Err(cannot($what, format!("got a name ({n:?}), not an fd"))),
                }
            }
        })*
    };
}

fd_transfer!(
    ipc_pipe::Connection => "pipe connection",
    ipc_pipe::Sender => "pipe sender",
    ipc_pipe::Receiver => "pipe receiver",
);

#[cfg(feature = "queue")]
macro_rules! queue_transfer {
    ($($ty:ty => $what:literal),* $(,)?) => {
        $(impl Transfer for $ty {
            fn export(&self) -> Result<Passed, Error> {
                self.shm().export()
            }

            fn import(passed: Passed) -> Result<Self, Error> {
                match passed {
                    Passed::Name(n) => <$ty>::open(&n).map_err(|e| cannot($what, e)),
                    Passed::Fd(fd) => ipc_shm::Shm::from_fd(fd)
                        .map_err(|e| cannot($what, e))
                        .and_then(|shm| <$ty>::from_shm(shm).map_err(|e| cannot($what, e))),
                }
            }
        })*
    };
}

#[cfg(feature = "queue")]
queue_transfer!(ipc_queue::Queue => "queue", ipc_queue::SpscQueue => "spsc queue");

#[cfg(feature = "sem")]
impl Transfer for ipc_sem::NamedSemaphore {
    fn export(&self) -> Result<Passed, Error> {
        Ok(Passed::Name(self.name().to_owned()))
    }

    fn import(passed: Passed) -> Result<Self, Error> {
        match passed {
            Passed::Name(n) => {
                ipc_sem::NamedSemaphore::open(&n).map_err(|e| cannot("named semaphore", e))
            }
            Passed::Fd(_) => Err(cannot("named semaphore", "got an fd, not a name")),
        }
    }
}

#[cfg(feature = "lock")]
impl<L: ipc_shm::ShmSafe> Transfer for ipc_lock::Named<L> {
    fn export(&self) -> Result<Passed, Error> {
        match self.shm().name() {
            Some(n) => Ok(Passed::Name(n.to_owned())),
            None => Err(cannot("named lock", "it has no name")),
        }
    }

    fn import(passed: Passed) -> Result<Self, Error> {
        match passed {
            Passed::Name(n) => ipc_lock::Named::open(&n).map_err(|e| cannot("named lock", e)),
            Passed::Fd(_) => Err(cannot("named lock", "got an fd, not a name")),
        }
    }
}
