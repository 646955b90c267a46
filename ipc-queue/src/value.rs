//! Typed messages on the byte queues: `send_value` / `recv_value` (feature `serde`, postcard)
//! and `send_pickle` / `recv_pickle` (feature `pickle`, Python's pickle), each with `try_` and
//! `_timeout` forms, so a Python-style queue of objects is one call. The two codecs have their
//! own method names because features must be additive.
//!
//! A value is encoded straight into a reserved slot (no intermediate buffer); one that does
//! not fit the queue's maximum message is refused as `TooLong` before anything is published.
//! Decoding a peer's bytes is bounded by the slot: postcard borrows or copies at most the
//! message, and serde pre-allocates cautiously. postcard recurses as deep as the *type* nests,
//! so a recursive type (a tree in a `Box`) can be nested by a peer as deep as its message
//! allows: give such types a depth limit of their own.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
#[cfg(feature = "serde")]
use crate::error::{SendError, SendTimeoutError, TrySendError};
use crate::queue::Queue;
#[cfg(feature = "serde")]
use crate::queue::SendSlot;
#[cfg(feature = "serde")]
use crate::spsc::{Receiver, Sender, SpscSlot};

#[cfg(feature = "serde")]
fn encode_err(op: &'static str, name: &str, e: &postcard::Error) -> Error {
    Error::Codec { op, name: name.to_owned(), reason: e.to_string() }
}

#[cfg(feature = "serde")]
fn decode<T: DeserializeOwned>(op: &'static str, name: &str, bytes: &[u8]) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|e| Error::Codec {
        op,
        name: name.to_owned(),
        reason: e.to_string(),
    })
}

#[cfg(feature = "serde")]
/// Encode into `slot`; on success returns the length used. `Err(None)`: too long.
fn encode_into<T: Serialize + ?Sized>(
    value: &T,
    slot: &mut [u8],
) -> std::result::Result<usize, Option<postcard::Error>> {
    match postcard::to_slice(value, slot) {
        Ok(used) => Ok(used.len()),
        Err(postcard::Error::SerializeBufferFull) => Err(None),
        Err(e) => Err(Some(e)),
    }
}

#[cfg(feature = "serde")]
/// Encoded length of `value` (to report a too-long value's size).
fn encoded_len<T: Serialize + ?Sized>(value: &T) -> usize {
    postcard::experimental::serialized_size(value).unwrap_or(usize::MAX)
}

#[cfg(feature = "serde")]
fn fill<T: Serialize + ?Sized>(
    op: &'static str,
    q: &Queue,
    mut slot: SendSlot<'_>,
    value: &T,
) -> Result<()> {
    match encode_into(value, &mut slot) {
        Ok(n) => {
            slot.truncate(n);
            slot.commit();
            Ok(())
        }
        Err(None) => {
            Err(SendError::TooLong { len: encoded_len(value), max: q.max_message() }.into())
        }
        Err(Some(e)) => Err(encode_err(op, q.name(), &e)),
    }
}

#[cfg(feature = "serde")]
impl Queue {
    /// Send a value (postcard-encoded), waiting while the queue is full.
    ///
    /// ```
    /// # fn main() -> Result<(), ipc_queue::Error> {
    /// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    /// struct Job { id: u32, path: String }
    /// let q = ipc_queue::Queue::anonymous(8, 256)?;
    /// q.send_value(&Job { id: 1, path: "a.txt".into() })?;
    /// let job: Job = q.recv_value()?;
    /// assert_eq!(job.path, "a.txt");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Send`] (closed, `TooLong` if the encoding exceeds the maximum message, ...),
    /// [`Error::Codec`] if the value cannot be encoded.
    pub fn send_value<T: Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        let slot = self.reserve(self.max_message())?;
        fill("send_value on", self, slot, value)
    }

    /// [`send_value`](Self::send_value) without waiting.
    ///
    /// # Errors
    /// [`Error::TrySend`] (full, ...), [`Error::Codec`].
    pub fn try_send_value<T: Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        let slot = self.try_reserve(self.max_message())?;
        fill("try_send_value on", self, slot, value).map_err(|e| match e {
            Error::Send(SendError::TooLong { len, max }) => {
                TrySendError::TooLong { len, max }.into()
            }
            e => e,
        })
    }

    /// [`send_value`](Self::send_value) waiting at most `timeout` for room.
    ///
    /// # Errors
    /// [`Error::SendTimeout`], [`Error::Codec`].
    pub fn send_value_timeout<T: Serialize + ?Sized>(
        &self,
        value: &T,
        timeout: Duration,
    ) -> Result<()> {
        let slot = self.reserve_timeout(self.max_message(), timeout)?;
        fill("send_value_timeout on", self, slot, value).map_err(|e| match e {
            Error::Send(SendError::TooLong { len, max }) => {
                SendTimeoutError::TooLong { len, max }.into()
            }
            e => e,
        })
    }

    /// Receive a value, waiting without limit.
    ///
    /// # Errors
    /// [`Error::Recv`] (closed, ...), [`Error::Codec`] if the message is not a `T`.
    pub fn recv_value<T: DeserializeOwned>(&self) -> Result<T> {
        let m = self.recv_ref()?;
        decode("recv_value on", self.name(), &m)
    }

    /// Receive a value without waiting.
    ///
    /// # Errors
    /// [`Error::TryRecv`] (empty, ...), [`Error::Codec`].
    pub fn try_recv_value<T: DeserializeOwned>(&self) -> Result<T> {
        let m = self.try_recv_ref()?;
        decode("try_recv_value on", self.name(), &m)
    }

    /// Receive a value, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`Error::RecvTimeout`], [`Error::Codec`].
    pub fn recv_value_timeout<T: DeserializeOwned>(&self, timeout: Duration) -> Result<T> {
        let m = self.recv_ref_timeout(timeout)?;
        decode("recv_value_timeout on", self.name(), &m)
    }
}

#[cfg(feature = "serde")]
fn fill_spsc<T: Serialize + ?Sized>(
    op: &'static str,
    name: &str,
    max: usize,
    mut slot: SpscSlot<'_>,
    value: &T,
) -> Result<()> {
    match encode_into(value, &mut slot) {
        Ok(n) => {
            slot.truncate(n);
            slot.commit();
            Ok(())
        }
        Err(None) => Err(SendError::TooLong { len: encoded_len(value), max }.into()),
        Err(Some(e)) => Err(encode_err(op, name, &e)),
    }
}

#[cfg(feature = "serde")]
impl Sender {
    /// Send a value (postcard), waiting while the queue is full; see [`Queue::send_value`].
    ///
    /// # Errors
    /// As [`Queue::send_value`].
    pub fn send_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        let (name, max) = (self.queue_name().to_owned(), self.max_message());
        let slot = self.reserve(max)?;
        fill_spsc("send_value on", &name, max, slot, value)
    }

    /// [`send_value`](Self::send_value) without waiting.
    ///
    /// # Errors
    /// As [`Queue::try_send_value`].
    pub fn try_send_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        let (name, max) = (self.queue_name().to_owned(), self.max_message());
        let slot = self.try_reserve(max)?;
        fill_spsc("try_send_value on", &name, max, slot, value).map_err(|e| match e {
            Error::Send(SendError::TooLong { len, max }) => {
                TrySendError::TooLong { len, max }.into()
            }
            e => e,
        })
    }
}

#[cfg(feature = "serde")]
impl Receiver {
    /// Receive a value, waiting without limit; see [`Queue::recv_value`].
    ///
    /// # Errors
    /// As [`Queue::recv_value`].
    pub fn recv_value<T: DeserializeOwned>(&mut self) -> Result<T> {
        let name = self.queue_name().to_owned();
        let m = self.recv_ref()?;
        decode("recv_value on", &name, &m)
    }

    /// Receive a value without waiting.
    ///
    /// # Errors
    /// As [`Queue::try_recv_value`].
    pub fn try_recv_value<T: DeserializeOwned>(&mut self) -> Result<T> {
        let name = self.queue_name().to_owned();
        let m = self.try_recv_ref()?;
        decode("try_recv_value on", &name, &m)
    }

    /// Receive a value, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`Queue::recv_value_timeout`].
    pub fn recv_value_timeout<T: DeserializeOwned>(&mut self, timeout: Duration) -> Result<T> {
        let name = self.queue_name().to_owned();
        let m = self.recv_ref_timeout(timeout)?;
        decode("recv_value_timeout on", &name, &m)
    }
}

#[cfg(feature = "pickle")]
fn decode_pickle<T: DeserializeOwned>(op: &'static str, q: &Queue, bytes: &[u8]) -> Result<T> {
    ipc_pickle::decode(bytes, ipc_pickle::PickleLimit::default()).map_err(|e| Error::Codec {
        op,
        name: q.name().to_owned(),
        reason: e.to_string(),
    })
}

#[cfg(feature = "pickle")]
fn encode_pickle<T: Serialize + ?Sized>(op: &'static str, q: &Queue, value: &T) -> Result<Vec<u8>> {
    ipc_pickle::encode(value).map_err(|reason| Error::Codec {
        op,
        name: q.name().to_owned(),
        reason,
    })
}

#[cfg(feature = "pickle")]
impl Queue {
    /// Send a value as a Python pickle, waiting while the queue is full. Python code that
    /// reads the queue's bytes gets it back with `pickle.loads`.
    ///
    /// ```
    /// # fn main() -> Result<(), ipc_queue::Error> {
    /// let q = ipc_queue::Queue::anonymous(8, 256)?;
    /// q.send_pickle(&("resize", 42u32))?;
    /// let (job, id): (String, u32) = q.recv_pickle()?;
    /// assert_eq!((job.as_str(), id), ("resize", 42));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Send`] (closed, `TooLong`, ...), [`Error::Codec`] if it cannot be pickled.
    pub fn send_pickle<T: Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        let bytes = encode_pickle("send_pickle on", self, value)?;
        Ok(self.send(&bytes)?)
    }

    /// [`send_pickle`](Self::send_pickle) without waiting.
    ///
    /// # Errors
    /// [`Error::TrySend`], [`Error::Codec`].
    pub fn try_send_pickle<T: Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        let bytes = encode_pickle("try_send_pickle on", self, value)?;
        Ok(self.try_send(&bytes)?)
    }

    /// [`send_pickle`](Self::send_pickle) waiting at most `timeout` for room.
    ///
    /// # Errors
    /// [`Error::SendTimeout`], [`Error::Codec`].
    pub fn send_pickle_timeout<T: Serialize + ?Sized>(
        &self,
        value: &T,
        timeout: Duration,
    ) -> Result<()> {
        let bytes = encode_pickle("send_pickle_timeout on", self, value)?;
        Ok(self.send_timeout(&bytes, timeout)?)
    }

    /// Receive a pickled value, waiting without limit. The pickle is checked by ipc-pickle's
    /// memory budget (64 bytes per byte of the message by default) before it is decoded: a
    /// hostile pickle is refused, never an allocation that aborts the process.
    ///
    /// # Errors
    /// [`Error::Recv`], [`Error::Codec`] (refused by the guard, or not a `T`).
    pub fn recv_pickle<T: DeserializeOwned>(&self) -> Result<T> {
        let m = self.recv_ref()?;
        decode_pickle("recv_pickle on", self, &m)
    }

    /// [`recv_pickle`](Self::recv_pickle) without waiting.
    ///
    /// # Errors
    /// [`Error::TryRecv`], [`Error::Codec`].
    pub fn try_recv_pickle<T: DeserializeOwned>(&self) -> Result<T> {
        let m = self.try_recv_ref()?;
        decode_pickle("try_recv_pickle on", self, &m)
    }

    /// [`recv_pickle`](Self::recv_pickle) waiting at most `timeout`.
    ///
    /// # Errors
    /// [`Error::RecvTimeout`], [`Error::Codec`].
    pub fn recv_pickle_timeout<T: DeserializeOwned>(&self, timeout: Duration) -> Result<T> {
        let m = self.recv_ref_timeout(timeout)?;
        decode_pickle("recv_pickle_timeout on", self, &m)
    }
}
