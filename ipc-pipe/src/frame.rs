//! The frame format of Python's `multiprocessing.connection` on Unix, as a pure codec.
//!
//! A frame is a length prefix and that many bytes of body:
//!
//! | length | prefix |
//! |---|---|
//! | `0 ..= i32::MAX` | 4 bytes: the length as a big-endian signed `i32` |
//! | above `i32::MAX` | 4 bytes `ff ff ff ff` (`-1`), then the length as a big-endian `u64` |
//!
//! That is what CPython's `Connection._send_bytes` writes and `_recv_bytes` reads (3.8 and
//! later). A reader accepts the long form for any length (CPython does), refuses every other
//! negative length, and refuses a length above its `max_message` from the prefix alone, before
//! anything is allocated for the body.
//!
//! Nothing here does I/O or can panic: the connection feeds bytes in and gets typed errors
//! out, and the same functions run under the fuzzer (`fuzz/fuzz_targets/frame.rs`) and the
//! proptests.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects, clippy::panic_in_result_fn)]

use std::fmt;

/// Length of the short prefix.
pub const SHORT_PREFIX: usize = 4;
/// Length of the long prefix (`-1` and a `u64`).
pub const LONG_PREFIX: usize = 12;
/// The longest prefix.
pub const MAX_PREFIX: usize = LONG_PREFIX;
/// Lengths above this use the long prefix.
pub const SHORT_MAX: usize = i32::MAX as usize;

/// Why bytes are not a valid frame. `Copy`, small, and free of allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FrameError {
    /// The prefix declares a body longer than the receiver's `max_message`.
    TooLarge {
        /// The declared length.
        len: u64,
        /// The receiver's limit.
        max: usize,
    },
    /// The prefix is negative but not the `-1` that introduces a long length.
    NegativeLength(i32),
    /// The bytes end inside a frame (only from decoders over a complete buffer, such as
    /// [`frames`]; a connection reports this as an unexpected end of file).
    Truncated {
        /// Bytes the frame needs (prefix included).
        needed: u64,
        /// Bytes there were.
        available: u64,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FrameError::TooLarge { len, max } => {
                write!(f, "frame of {len} bytes exceeds the limit of {max} bytes")
            }
            FrameError::NegativeLength(n) => write!(f, "negative frame length {n}"),
            FrameError::Truncated { needed, available } => {
                write!(f, "truncated frame: {available} of {needed} bytes")
            }
        }
    }
}

impl std::error::Error for FrameError {}

/// What a (possibly partial) prefix says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    /// More bytes are needed to know the length: at least `needed` in total.
    Incomplete {
        /// Total prefix bytes needed before the length is known (4 or 12).
        needed: usize,
    },
    /// The length is known and within the limit.
    Complete {
        /// Bytes of prefix (4 or 12).
        prefix_len: usize,
        /// Bytes of body that follow.
        body_len: usize,
    },
}

/// Decode the prefix at the start of `bytes` (which may hold more than the prefix), refusing
/// a body longer than `max`.
///
/// # Errors
/// [`FrameError::NegativeLength`], [`FrameError::TooLarge`].
pub fn decode_prefix(bytes: &[u8], max: usize) -> Result<Prefix, FrameError> {
    let Some(short) = bytes.first_chunk::<SHORT_PREFIX>() else {
        return Ok(Prefix::Incomplete { needed: SHORT_PREFIX });
    };
    let short = i32::from_be_bytes(*short);
    let (prefix_len, len) = match short {
        n if n >= 0 => (SHORT_PREFIX, u64::from(n.unsigned_abs())),
        -1 => {
            let Some(long) = bytes.get(SHORT_PREFIX..LONG_PREFIX) else {
                return Ok(Prefix::Incomplete { needed: LONG_PREFIX });
            };
            let mut b = [0u8; 8];
            b.copy_from_slice(long);
            (LONG_PREFIX, u64::from_be_bytes(b))
        }
        n => return Err(FrameError::NegativeLength(n)),
    };
    match usize::try_from(len) {
        Ok(body_len) if body_len <= max => Ok(Prefix::Complete { prefix_len, body_len }),
        _ => Err(FrameError::TooLarge { len, max }),
    }
}

/// An encoded prefix: up to 12 bytes on the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixBytes {
    bytes: [u8; MAX_PREFIX],
    len: u8,
}

impl PrefixBytes {
    /// The prefix bytes.
    pub fn as_slice(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
    }
}

/// The prefix for a body of `len` bytes, in the form CPython writes (short up to
/// `i32::MAX`, long above).
pub fn encode_prefix(len: usize) -> PrefixBytes {
    let mut bytes = [0u8; MAX_PREFIX];
    match i32::try_from(len) {
        Ok(short) => {
            if let Some(head) = bytes.first_chunk_mut::<SHORT_PREFIX>() {
                *head = short.to_be_bytes();
            }
            PrefixBytes { bytes, len: 4 }
        }
        Err(_) => {
            if let Some(head) = bytes.first_chunk_mut::<SHORT_PREFIX>() {
                *head = (-1i32).to_be_bytes();
            }
            if let Some(tail) = bytes.get_mut(SHORT_PREFIX..) {
                // usize is at most 64 bits on every supported target.
                tail.copy_from_slice(&(len as u64).to_be_bytes());
            }
            PrefixBytes { bytes, len: 12 }
        }
    }
}

/// Append one frame holding `body` to `out`.
pub fn encode_into(body: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(encode_prefix(body.len()).as_slice());
    out.extend_from_slice(body);
}

/// One frame holding `body`.
pub fn encode(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len().saturating_add(MAX_PREFIX));
    encode_into(body, &mut out);
    out
}

/// A frame's body and the bytes after the frame.
pub type Split<'a> = (&'a [u8], &'a [u8]);

/// Split off the first complete frame of `bytes`: `Ok(Some((body, rest)))`, or `Ok(None)` when
/// `bytes` holds only part of a frame.
///
/// # Errors
/// As [`decode_prefix`].
pub fn split_frame(bytes: &[u8], max: usize) -> Result<Option<Split<'_>>, FrameError> {
    match decode_prefix(bytes, max)? {
        Prefix::Incomplete { .. } => Ok(None),
        Prefix::Complete { prefix_len, body_len } => {
            let Some(after) = bytes.get(prefix_len..) else { return Ok(None) };
            if after.len() < body_len {
                return Ok(None);
            }
            Ok(Some(after.split_at(body_len)))
        }
    }
}

/// Iterator over the frames of a complete byte string (see [`frames`]).
#[derive(Debug, Clone)]
pub struct Frames<'a> {
    rest: &'a [u8],
    max: usize,
    failed: bool,
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<&'a [u8], FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        match split_frame(self.rest, self.max) {
            Ok(Some((body, rest))) => {
                self.rest = rest;
                Some(Ok(body))
            }
            Ok(None) => {
                self.failed = true;
                let needed = match decode_prefix(self.rest, self.max) {
                    Ok(Prefix::Complete { prefix_len, body_len }) => {
                        (prefix_len as u64).saturating_add(body_len as u64)
                    }
                    Ok(Prefix::Incomplete { needed }) => needed as u64,
                    Err(e) => return Some(Err(e)),
                };
                Some(Err(FrameError::Truncated { needed, available: self.rest.len() as u64 }))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// The frames of `bytes`, a complete stream (e.g. everything a peer sent before closing):
/// each body in turn, then at most one error, after which the iterator ends (a connection is
/// poisoned by the first bad frame). A stream that ends inside a frame yields
/// [`FrameError::Truncated`].
pub fn frames(bytes: &[u8], max: usize) -> Frames<'_> {
    Frames { rest: bytes, max, failed: false }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects, clippy::unwrap_used)]
    use super::*;

    #[test]
    fn short_and_long_prefixes_match_cpython() {
        // struct.pack("!i", 5)
        assert_eq!(encode_prefix(5).as_slice(), &[0, 0, 0, 5]);
        assert_eq!(encode_prefix(SHORT_MAX).as_slice(), &[0x7f, 0xff, 0xff, 0xff]);
        // struct.pack("!i", -1) + struct.pack("!Q", 2**31)
        assert_eq!(
            encode_prefix(SHORT_MAX + 1).as_slice(),
            &[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0x80, 0, 0, 0]
        );
    }

    #[test]
    fn prefix_decoding() {
        assert_eq!(decode_prefix(&[], 10), Ok(Prefix::Incomplete { needed: 4 }));
        assert_eq!(decode_prefix(&[0, 0, 0], 10), Ok(Prefix::Incomplete { needed: 4 }));
        assert_eq!(
            decode_prefix(&[0, 0, 0, 7], 10),
            Ok(Prefix::Complete { prefix_len: 4, body_len: 7 })
        );
        assert_eq!(
            decode_prefix(&[0, 0, 0, 11], 10),
            Err(FrameError::TooLarge { len: 11, max: 10 })
        );
        assert_eq!(decode_prefix(&[0xff; 4], 10), Ok(Prefix::Incomplete { needed: 12 }));
        assert_eq!(
            decode_prefix(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 3], 10),
            Ok(Prefix::Complete { prefix_len: 12, body_len: 3 })
        );
        assert_eq!(
            decode_prefix(&[0xff; 12], 10),
            Err(FrameError::TooLarge { len: u64::MAX, max: 10 })
        );
        assert_eq!(
            decode_prefix(&[0xff, 0xff, 0xff, 0xfe], 10),
            Err(FrameError::NegativeLength(-2))
        );
        assert_eq!(decode_prefix(&[0x80, 0, 0, 0], 10), Err(FrameError::NegativeLength(i32::MIN)));
    }

    #[test]
    fn frames_of_a_stream() {
        let mut s = encode(b"one");
        encode_into(b"", &mut s);
        encode_into(b"three", &mut s);
        let got: Vec<_> = frames(&s, 100).collect();
        assert_eq!(got, vec![Ok(&b"one"[..]), Ok(&b""[..]), Ok(&b"three"[..])]);
        s.extend_from_slice(&[0, 0, 0, 9, 1]);
        let last = frames(&s, 100).last().unwrap();
        assert_eq!(last, Err(FrameError::Truncated { needed: 13, available: 5 }));
    }
}
