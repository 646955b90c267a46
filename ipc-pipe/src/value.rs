//! Typed messages: `send_value`/`recv_value` (feature `serde`, postcard) and
//! `send_pickle`/`recv_pickle` (feature `pickle`, Python's pickle via serde-pickle).
//!
//! Both are plain byte frames underneath, so they mix freely with `send`/`recv`. The two
//! codecs have their own method names because features must be additive: enabling `pickle`
//! somewhere in a build must not change what `send_value` writes.
//!
//! Decoding a peer's bytes is bounded: the frame by `max_message`; a pickle additionally by
//! a check of its nesting and expansion before serde-pickle sees it (see
//! the `ipc-pickle` crate). postcard recurses as deep as the *type* nests, so a recursive type
//! (a tree in a `Box`) can be nested by a peer as deep as its message allows: give such
//! types a depth limit of their own.

use serde::{Serialize, de::DeserializeOwned};

use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::simplex::{Receiver, Sender};

fn codec(op: &'static str, object: String, reason: impl std::fmt::Display) -> Error {
    Error::Codec { op, object, reason: reason.to_string() }
}

#[cfg(feature = "serde")]
fn encode_postcard<T: Serialize + ?Sized>(
    value: &T,
    object: impl FnOnce() -> String,
) -> Result<Vec<u8>> {
    postcard::to_stdvec(value).map_err(|e| {
        codec("send_value", object(), format_args!("cannot encode the value with postcard: {e}"))
    })
}

#[cfg(feature = "serde")]
fn decode_postcard<T: DeserializeOwned>(
    bytes: &[u8],
    object: impl FnOnce() -> String,
) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|e| {
        let n = bytes.len();
        codec(
            "recv_value",
            object(),
            format_args!("cannot decode the {n}-byte postcard message: {e}"),
        )
    })
}

#[cfg(feature = "pickle")]
fn encode_pickle<T: Serialize + ?Sized>(
    value: &T,
    object: impl FnOnce() -> String,
) -> Result<Vec<u8>> {
    ipc_pickle::encode(value).map_err(|e| codec("send_pickle", object(), e))
}

#[cfg(feature = "pickle")]
fn decode_pickle<T: DeserializeOwned>(
    bytes: &[u8],
    limit: ipc_pickle::PickleLimit,
    object: impl FnOnce() -> String,
) -> Result<T> {
    match ipc_pickle::decode(bytes, limit) {
        Ok(v) => Ok(v),
        Err(ipc_pickle::DecodeError::Refused { len, reason }) => {
            Err(Error::PickleRefused { op: "recv_pickle", object: object(), len, reason })
        }
        Err(e) => Err(codec("recv_pickle", object(), e)),
    }
}

macro_rules! send_methods {
    ($ty:ty) => {
        #[cfg(feature = "serde")]
        impl $ty {
            /// Send `value` encoded with postcard (feature `serde`).
            ///
            /// # Errors
            /// [`Error::Codec`] if it cannot be encoded, and as `send`.
            pub fn send_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
                let bytes = encode_postcard(value, || self.core.object())?;
                self.send(&bytes)
            }
        }

        #[cfg(feature = "pickle")]
        impl $ty {
            /// Send `value` as a Python pickle (protocol 3), so a Python peer's
            /// `conn.recv()` returns it as Python objects (feature `pickle`).
            ///
            /// # Errors
            /// [`Error::Codec`] if it cannot be pickled, and as `send`.
            pub fn send_pickle<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
                let bytes = encode_pickle(value, || self.core.object())?;
                self.send(&bytes)
            }
        }
    };
}

macro_rules! recv_methods {
    ($ty:ty) => {
        #[cfg(feature = "serde")]
        impl $ty {
            /// Receive a value sent with `send_value` (feature `serde`).
            ///
            /// # Errors
            /// [`Error::Codec`] if the message does not decode as `T`, and as `recv`.
            pub fn recv_value<T: DeserializeOwned>(&mut self) -> Result<T> {
                let bytes = self.recv()?;
                decode_postcard(&bytes, || self.core.object())
            }

            /// [`recv_value`](Self::recv_value), waiting at most `timeout`.
            ///
            /// # Errors
            /// [`Error::Timeout`], and as [`recv_value`](Self::recv_value).
            pub fn recv_value_timeout<T: DeserializeOwned>(
                &mut self,
                timeout: std::time::Duration,
            ) -> Result<T> {
                let bytes = self.recv_timeout(timeout)?;
                decode_postcard(&bytes, || self.core.object())
            }
        }

        #[cfg(feature = "pickle")]
        impl $ty {
            /// Receive a Python pickle (what a Python peer's `conn.send(obj)` sends) as `T`
            /// (feature `pickle`).
            ///
            /// The pickle is checked before serde-pickle sees it (see the `pickle_guard`
            /// module): refused if decoding it would take more memory than the
            /// [pickle limit](Self::set_pickle_limit) (by default 64 bytes per byte of the
            /// pickle, at least 4 MiB), if it nests deeper than 200 levels, holds a text
            /// integer of more than 4300 digits, contains itself, or uses opcodes
            /// serde-pickle does not evaluate. A refused or undecodable message is consumed
            /// and the connection stays usable.
            ///
            /// # Errors
            /// [`Error::PickleRefused`], [`Error::Codec`] (not a `T`, or not a pickle), and as
            /// `recv`.
            pub fn recv_pickle<T: DeserializeOwned>(&mut self) -> Result<T> {
                let bytes = self.recv()?;
                decode_pickle(&bytes, self.core.pickle_limit, || self.core.object())
            }

            /// The most memory [`recv_pickle`](Self::recv_pickle) lets serde-pickle use for
            /// one message (feature `pickle`); the default is
            /// [`PickleLimit::PerByte(64)`](crate::pickle_guard::PickleLimit::PerByte), at
            /// least 4 MiB.
            pub fn pickle_limit(&self) -> crate::pickle_guard::PickleLimit {
                self.core.pickle_limit
            }

            /// Set the pickle limit: [`PickleLimit::Bytes`](crate::pickle_guard::PickleLimit::Bytes)
            /// for a fixed budget, or a larger
            /// [`PickleLimit::PerByte`](crate::pickle_guard::PickleLimit::PerByte) for data
            /// made of one-byte values (a list of `None` or small ints needs up to 140 bytes
            /// per byte) or of many references to a shared object (serde-pickle copies it
            /// out for each).
            pub fn set_pickle_limit(&mut self, limit: crate::pickle_guard::PickleLimit) {
                self.core.pickle_limit = limit;
            }

            /// [`recv_pickle`](Self::recv_pickle), waiting at most `timeout`.
            ///
            /// # Errors
            /// [`Error::Timeout`], and as [`recv_pickle`](Self::recv_pickle).
            pub fn recv_pickle_timeout<T: DeserializeOwned>(
                &mut self,
                timeout: std::time::Duration,
            ) -> Result<T> {
                let bytes = self.recv_timeout(timeout)?;
                decode_pickle(&bytes, self.core.pickle_limit, || self.core.object())
            }
        }
    };
}

send_methods!(Connection);
recv_methods!(Connection);
send_methods!(Sender);
recv_methods!(Receiver);
