//! [`TypedQueue<T>`]: an MPMC queue of `Pod` values, copied in and out whole.

use std::any::type_name;
use std::marker::PhantomData;
use std::time::Duration;

use ipc_shm::bytemuck::{self, Pod};

use ipc_shm::{Deadline, Shm, ShmOptions};

use crate::error::{
    Error, RecvError, RecvTimeoutError, Result, SendError, SendTimeoutError, TryRecvError,
    TrySendError,
};
use crate::queue::{How, Queue, QueueOptions, Refused, Stats, recv_timeout_err, try_recv_err};
use crate::raw::Claimed;
use crate::ring::{Corruption, Flavour};

/// An MPMC queue of `T` values (any [`Pod`] type: no pointers, every bit pattern valid), so a
/// value read from shared memory is always a valid `T`. The element size and a hash of the
/// type name are recorded in the segment and checked at open.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use ipc_queue::TypedQueue;
/// let q = TypedQueue::<[u32; 4]>::anonymous(8)?;
/// q.send([1, 2, 3, 4])?;
/// assert_eq!(q.recv()?, [1, 2, 3, 4]);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct TypedQueue<T: Pod> {
    queue: Queue,
    _type: PhantomData<fn(T) -> T>,
}

fn elem<T: Pod>() -> (u32, u64) {
    (u32::try_from(size_of::<T>()).unwrap_or(u32::MAX), ipc_shm::named_tag(type_name::<T>()))
}

impl<T: Pod> TypedQueue<T> {
    fn wrap(op: &'static str, queue: Queue) -> Result<Self> {
        let (size, tag) = elem::<T>();
        let cfg = queue.inner_cfg();
        if cfg.elem_size != size || cfg.type_tag != tag || cfg.max_message != size {
            return Err(Error::ElementMismatch {
                op,
                name: queue.name().to_owned(),
                expected: size,
                found: cfg.elem_size,
                expected_tag: tag,
                found_tag: cfg.type_tag,
            });
        }
        Ok(TypedQueue { queue, _type: PhantomData })
    }

    fn opts(capacity: usize) -> QueueOptions {
        QueueOptions::new(capacity, size_of::<T>())
    }

    /// Create a named queue of `capacity` values (rounded up to a power of two).
    ///
    /// # Errors
    /// As [`Queue::create`].
    pub fn create(name: &str, capacity: usize) -> Result<Self> {
        let inner = Self::opts(capacity).make(How::Create(name), Flavour::Mpmc, elem::<T>())?;
        Self::wrap("create", Queue::from_inner(inner))
    }

    /// Open a named queue of `T`.
    ///
    /// # Errors
    /// As [`Queue::open`], and [`Error::ElementMismatch`] for another element type.
    pub fn open(name: &str) -> Result<Self> {
        Self::wrap("open", Queue::open_with(&ShmOptions::new(), name)?)
    }

    /// Open or create a named queue of `T`.
    ///
    /// # Errors
    /// As [`create`](Self::create) and [`open`](Self::open).
    pub fn open_or_create(name: &str, capacity: usize) -> Result<Self> {
        let inner =
            Self::opts(capacity).make(How::OpenOrCreate(name), Flavour::Mpmc, elem::<T>())?;
        Self::wrap("open or create", Queue::from_inner(inner))
    }

    /// An anonymous queue of `T`.
    ///
    /// # Errors
    /// As [`Queue::anonymous`].
    pub fn anonymous(capacity: usize) -> Result<Self> {
        let inner = Self::opts(capacity).make(How::Anonymous, Flavour::Mpmc, elem::<T>())?;
        Self::wrap("create", Queue::from_inner(inner))
    }

    /// Adopt a segment received as an fd.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn from_shm(shm: Shm) -> Result<Self> {
        Self::wrap("map", Queue::from_shm(shm)?)
    }

    fn put(&self, pos: u64, value: &T) {
        self.queue.write_commit_pub(pos, bytemuck::bytes_of(value));
    }

    fn get(&self, c: Claimed) -> std::result::Result<T, Corruption> {
        let mut v = T::zeroed();
        let size = size_of::<T>();
        let ok = c.len == size;
        self.queue.take_into(c, bytemuck::bytes_of_mut(&mut v));
        if ok {
            Ok(v)
        } else {
            let len = u32::try_from(c.len).unwrap_or(u32::MAX);
            Err(Corruption::Length { len, max: u32::try_from(size).unwrap_or(u32::MAX) })
        }
    }

    /// Send without waiting.
    ///
    /// # Errors
    /// [`TrySendError::Full`], `Closed`, `Corrupted`, `Unregistered`.
    pub fn try_send(&self, value: T) -> std::result::Result<(), TrySendError> {
        match self.queue.try_reserve_pos(size_of::<T>()) {
            Ok(pos) => {
                self.put(pos, &value);
                Ok(())
            }
            Err(Refused::Closed) => Err(TrySendError::Closed),
            Err(Refused::Corrupted(c)) => Err(TrySendError::Corrupted(c)),
            Err(Refused::Unregistered) => Err(TrySendError::Unregistered),
            Err(Refused::TooLong) => {
                Err(TrySendError::TooLong { len: size_of::<T>(), max: self.queue.max_message() })
            }
            Err(Refused::Full | Refused::Timeout | Refused::Disconnected) => {
                Err(TrySendError::Full)
            }
        }
    }

    /// Send, waiting without limit while full.
    ///
    /// # Errors
    /// [`SendError::Closed`], `Corrupted`.
    pub fn send(&self, value: T) -> std::result::Result<(), SendError> {
        match self.queue.reserve_pos(size_of::<T>(), Deadline::NEVER) {
            Ok(pos) => {
                self.put(pos, &value);
                Ok(())
            }
            Err(Refused::Corrupted(c)) => Err(SendError::Corrupted(c)),
            Err(Refused::Unregistered) => Err(SendError::Unregistered),
            Err(Refused::TooLong) => {
                Err(SendError::TooLong { len: size_of::<T>(), max: self.queue.max_message() })
            }
            Err(Refused::Disconnected) => Err(SendError::Disconnected),
            Err(Refused::Full | Refused::Timeout | Refused::Closed) => Err(SendError::Closed),
        }
    }

    /// Send, waiting at most `timeout` while full.
    ///
    /// # Errors
    /// [`SendTimeoutError::Timeout`], `Closed`, `Corrupted`.
    pub fn send_timeout(
        &self,
        value: T,
        timeout: Duration,
    ) -> std::result::Result<(), SendTimeoutError> {
        match self.queue.reserve_pos(size_of::<T>(), Deadline::after(timeout)) {
            Ok(pos) => {
                self.put(pos, &value);
                Ok(())
            }
            Err(Refused::Closed) => Err(SendTimeoutError::Closed),
            Err(Refused::Corrupted(c)) => Err(SendTimeoutError::Corrupted(c)),
            Err(Refused::Unregistered) => Err(SendTimeoutError::Unregistered),
            Err(Refused::TooLong) => Err(SendTimeoutError::TooLong {
                len: size_of::<T>(),
                max: self.queue.max_message(),
            }),
            Err(Refused::Full | Refused::Timeout) => Err(SendTimeoutError::Timeout),
            Err(Refused::Disconnected) => Err(SendTimeoutError::Disconnected),
        }
    }

    /// Receive without waiting.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`], `Closed`, `Corrupted` (also for a slot of the wrong length).
    pub fn try_recv(&self) -> std::result::Result<T, TryRecvError> {
        let c = self.queue.try_claim().map_err(try_recv_err)?;
        self.get(c).map_err(TryRecvError::Corrupted)
    }

    /// Receive, waiting without limit.
    ///
    /// # Errors
    /// [`RecvError::Closed`], `Corrupted`.
    pub fn recv(&self) -> std::result::Result<T, RecvError> {
        let c =
            self.queue.claim(Deadline::NEVER).map_err(|e| RecvError::from(recv_timeout_err(e)))?;
        self.get(c).map_err(RecvError::Corrupted)
    }

    /// Receive, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`RecvTimeoutError::Timeout`], `Closed`, `Corrupted`.
    pub fn recv_timeout(&self, timeout: Duration) -> std::result::Result<T, RecvTimeoutError> {
        let c = self.queue.claim(Deadline::after(timeout)).map_err(recv_timeout_err)?;
        self.get(c).map_err(RecvTimeoutError::Corrupted)
    }

    /// Values in the queue.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether the queue is empty.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Whether the queue is full.
    pub fn is_full(&self) -> bool {
        self.queue.is_full()
    }

    /// Slots.
    pub fn capacity(&self) -> usize {
        self.queue.capacity()
    }

    /// Close (see [`Queue::close`]).
    pub fn close(&self) {
        self.queue.close();
    }

    /// Shared counters.
    pub fn stats(&self) -> Stats {
        self.queue.stats()
    }

    /// The underlying byte queue.
    pub fn as_bytes_queue(&self) -> &Queue {
        &self.queue
    }
}
