//! Python pickles from an untrusted peer, decoded within a memory budget: the guard that
//! ipc-pipe's `recv_pickle` and ipc-queue's `recv_pickle` run before serde-pickle sees a
//! peer's bytes, and the decode and encode they share. A crate of its own so that a pipe
//! user and a queue user each pay only for what they use, and the guard lives once.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use ipc_pickle::{PickleLimit, decode, encode};
//! // What Python's `pickle.dumps(["a", 1, None], protocol=4)` sends, give or take framing.
//! let bytes = encode(&vec![1u32, 2, 3])?;
//! let back: Vec<u32> = decode(&bytes, PickleLimit::default())?;
//! assert_eq!(back, [1, 2, 3]);
//! // A MARK flood: 2 MB on the wire that would ask serde-pickle for gigabytes.
//! let mut flood = vec![0x80, 4];
//! flood.extend(std::iter::repeat_n(b'(', 2_000_000));
//! flood.extend(b"N.");
//! assert!(matches!(decode::<()>(&flood, PickleLimit::default()), Err(ipc_pickle::DecodeError::Refused { .. })));
//! # Ok(()) }
//! ```
//!
//! # The guard
//! See [`check`]: it runs the pickle machine over a skeleton of the values, as serde-pickle
//! 1.x evaluates the opcodes, and adds up in bytes what serde-pickle will hold at its peak.
//! A pickle over its [`PickleLimit`], nested deeper than [`MAX_DEPTH`], with a text integer
//! of more than [`MAX_INT_DIGITS`] digits, or containing itself, is refused before
//! serde-pickle allocates anything.
#![deny(unsafe_code)]

mod guard;

pub use guard::*;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why [`decode`] returned no value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The guard refused the pickle before serde-pickle saw it.
    Refused {
        /// The pickle's length.
        len: usize,
        /// Why.
        reason: PickleError,
    },
    /// serde-pickle could not decode it as the type asked for.
    Invalid {
        /// The pickle's length.
        len: usize,
        /// serde-pickle's message, bounded, without the peer's bytes.
        text: String,
    },
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Refused { len, reason } => {
                write!(f, "refused the {len}-byte pickle: {reason}")
            }
            DecodeError::Invalid { len, text } => {
                write!(f, "cannot decode the {len}-byte pickle: {text}")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// Check `bytes` against `limit` (scaled to their length), then decode them as a `T`.
///
/// # Errors
/// [`DecodeError::Refused`] by the guard, [`DecodeError::Invalid`] by serde-pickle.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], limit: PickleLimit) -> Result<T, DecodeError> {
    let len = bytes.len();
    check_with_limit(bytes, limit.for_len(len))
        .map_err(|reason| DecodeError::Refused { len, reason })?;
    serde_pickle::from_slice(bytes, serde_pickle::DeOptions::new())
        .map_err(|e| DecodeError::Invalid { len, text: error_text(&e) })
}

/// Encode `value` as a pickle Python's `pickle.loads` reads.
///
/// # Errors
/// serde-pickle's message if the value cannot be pickled.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, String> {
    serde_pickle::to_vec(&value, serde_pickle::SerOptions::new())
        .map_err(|e| format!("cannot encode the value as a pickle: {e}"))
}

/// serde-pickle's message for `e`, without the peer's bytes it may quote (an invalid literal
/// is quoted whole) and at most a few hundred characters long.
pub fn error_text(e: &serde_pickle::Error) -> String {
    use std::fmt::Write as _;

    /// A `fmt::Write` that keeps the first `left` bytes (on a char boundary) and drops the rest.
    struct Bounded {
        out: String,
        left: usize,
    }
    impl std::fmt::Write for Bounded {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            let mut take = s.len().min(self.left);
            while !s.is_char_boundary(take) {
                take = take.saturating_sub(1);
            }
            self.out.push_str(s.get(..take).unwrap_or_default());
            self.left = self.left.saturating_sub(take);
            if take < s.len() { Err(std::fmt::Error) } else { Ok(()) }
        }
    }
    if let serde_pickle::Error::Eval(serde_pickle::ErrorCode::InvalidLiteral(l), pos) = e {
        return format!("an invalid literal of {} bytes at offset {pos}", l.len());
    }
    let mut b = Bounded { out: String::new(), left: 300 };
    if write!(b, "{e}").is_err() {
        b.out.push_str("...");
    }
    b.out
}
