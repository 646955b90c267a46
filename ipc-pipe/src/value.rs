//! Typed messages: `send_value`/`recv_value` (feature `serde`, postcard) and
//! `send_pickle`/`recv_pickle` (feature `pickle`, Python's pickle via serde-pickle).
//!
//! Both are plain byte frames underneath, so they mix freely with `send`/`recv`. The two
//! codecs have their own method names because features must be additive: enabling `pickle`
//! somewhere in a build must not change what `send_value` writes.
//!
//! Decoding a peer's bytes is bounded: the frame by `max_message`; a pickle additionally by
//! a check of its nesting and expansion before serde-pickle sees it (see
//! `pickle_guard.rs`). postcard recurses as deep as the *type* nests, so a recursive type
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
    postcard::to_stdvec(value).map_err(|e| codec("encode postcard for", object(), e))
}

#[cfg(feature = "serde")]
fn decode_postcard<T: DeserializeOwned>(
    bytes: &[u8],
    object: impl FnOnce() -> String,
) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|e| codec("decode postcard from", object(), e))
}

#[cfg(feature = "pickle")]
fn encode_pickle<T: Serialize + ?Sized>(
    value: &T,
    object: impl FnOnce() -> String,
) -> Result<Vec<u8>> {
    serde_pickle::to_vec(&value, serde_pickle::SerOptions::new())
        .map_err(|e| codec("encode pickle for", object(), e))
}

#[cfg(feature = "pickle")]
fn decode_pickle<T: DeserializeOwned>(bytes: &[u8], object: impl FnOnce() -> String) -> Result<T> {
    if let Err(e) = crate::pickle_guard::check(bytes) {
        return Err(codec("decode pickle from", object(), e));
    }
    serde_pickle::from_slice(bytes, serde_pickle::DeOptions::new())
        .map_err(|e| codec("decode pickle from", object(), e))
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
            /// (feature `pickle`). Pickles nested deeper than 200 levels, expanding to too
            /// many values, recursive, or using opcodes serde-pickle does not evaluate are
            /// refused before decoding.
            ///
            /// # Errors
            /// [`Error::Codec`], and as `recv`.
            pub fn recv_pickle<T: DeserializeOwned>(&mut self) -> Result<T> {
                let bytes = self.recv()?;
                decode_pickle(&bytes, || self.core.object())
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
                decode_pickle(&bytes, || self.core.object())
            }
        }
    };
}

send_methods!(Connection);
recv_methods!(Connection);
send_methods!(Sender);
recv_methods!(Receiver);
