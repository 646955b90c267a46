//! The control protocol between a parent and its children, as pure encoders and decoders.
//!
//! Every message is one ipc-pipe frame: a postcard-encoded header ([`Down`] to a child,
//! [`Up`] from it) followed by a raw payload. Payloads that carry several items (a chunk of
//! task arguments, a batch of results) frame each item as a 4-byte little-endian length and
//! its bytes, so the supervisor can count, split and requeue items without knowing their
//! types. Nothing read here is trusted: lengths are checked against what is left, counts
//! against what was asked for, and a bad message is a typed error, never a panic.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects, clippy::panic_in_result_fn)]

use serde::{Deserialize, Serialize};

/// Version of the protocol; a child of another version refuses to run.
pub(crate) const VERSION: u32 = 1;

/// A function to call in a child, as offsets from an anchor function in the executable
/// (both processes run the same file, checked, so the offsets name the same code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Call {
    /// The monomorphised trampoline that decodes arguments, calls, encodes the outcome.
    pub(crate) run: i64,
    /// The user's function.
    pub(crate) func: i64,
}

/// Parent to child.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Down {
    /// The first message to every child: what it is for. `token` must match the one in the
    /// child's environment (spawned children) or the fork request (fork-server children).
    Start { token: u64, job: Job },
    /// A chunk of `count` framed items for a pool worker (payload: the items).
    Chunk { seq: u32, call: Call, count: u32 },
    /// A pool worker is done: exit.
    Retire,
    /// To the fork server: fork a child (fds: its control connection, the status socket).
    Fork { token: u64, detached: bool },
}

/// What a child is started for.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Job {
    /// Run one call (payload: its arguments; fds: handles among them), reply
    /// [`Up::Done`], exit.
    Once { call: Call },
    /// Be a pool worker: run the initializer (payload: its arguments) if any, reply
    /// [`Up::Ready`] or [`Up::InitFailed`], then run chunks. fd 0: the progress segment.
    Worker { init: Option<Call>, timeouts: bool, flush_bytes: u32 },
    /// Be the fork server.
    ForkServer,
}

/// Child to parent.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Up {
    /// The child is running ipc-process code (init was called) and took the control fd.
    Hello { pid: u32, version: u32 },
    /// The child refused to run (binary mismatch, bad token, version): why.
    Refused { reason: Refusal },
    /// The outcome of a [`Job::Once`] (payload: the encoded reply).
    Done,
    /// The worker's initializer succeeded (or there was none).
    Ready,
    /// The worker's initializer failed: its message.
    InitFailed { message: String },
    /// Results of the next `count` items of chunk `seq` (payload: framed replies).
    Results { seq: u32, count: u32 },
    /// From the fork server: the child's pid (fd: its pidfd).
    Forked { pid: u32 },
}

/// Why a child refused to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Refusal {
    /// It runs another file than the parent: (expected, found) as `dev:ino`.
    Binary { expected: String, found: String },
    /// The token did not match.
    Token,
    /// Another protocol version.
    Version { found: u32 },
}

/// A malformed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WireError {
    /// The header did not decode.
    Header(String),
    /// An item's length runs past the payload.
    Truncated { index: u32 },
    /// Fewer or more items than the header said.
    Count { expected: u32, found: u32 },
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Header(e) => write!(f, "bad header: {e}"),
            WireError::Truncated { index } => write!(f, "item {index} runs past the message"),
            WireError::Count { expected, found } => {
                write!(f, "{found} items where {expected} were announced")
            }
        }
    }
}

/// `Extend<u8>` over a borrowed vector, so postcard appends in place and a failed encode
/// leaves what was there before.
struct Append<'a>(&'a mut Vec<u8>);

impl Extend<u8> for Append<'_> {
    fn extend<I: IntoIterator<Item = u8>>(&mut self, iter: I) {
        self.0.extend(iter);
    }
}

/// Append the postcard encoding of `value` to `out` (on error, partly written bytes may
/// remain: the caller truncates).
pub(crate) fn encode_into<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), postcard::Error> {
    postcard::to_extend(value, Append(out)).map(drop)
}

/// Encode a header into `out` (cleared first); the payload is appended by the caller or sent
/// as a second slice.
pub(crate) fn encode_header<H: Serialize>(header: &H, out: &mut Vec<u8>) -> Result<(), String> {
    out.clear();
    encode_into(header, out).map_err(|e| e.to_string())
}

/// Split a message into its header and payload.
pub(crate) fn decode<'a, H: Deserialize<'a>>(msg: &'a [u8]) -> Result<(H, &'a [u8]), WireError> {
    postcard::take_from_bytes(msg).map_err(|e| WireError::Header(e.to_string()))
}

/// Append one framed item: its length (u32 LE) then `body`.
#[cfg(test)]
pub(crate) fn push_item(out: &mut Vec<u8>, body: &[u8]) {
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(body);
}

/// Reserve room for an item's length prefix; returns where it is, for [`finish_item`].
pub(crate) fn begin_item(out: &mut Vec<u8>) -> usize {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    at
}

/// Write the length of the item begun at `at` (everything appended since).
pub(crate) fn finish_item(out: &mut [u8], at: usize) {
    let body = out.len().saturating_sub(at).saturating_sub(4);
    let len = u32::try_from(body).unwrap_or(u32::MAX).to_le_bytes();
    if let Some(slot) = out.get_mut(at..at.saturating_add(4)) {
        slot.copy_from_slice(&len);
    }
}

/// Iterator over framed items.
#[derive(Debug, Clone)]
pub(crate) struct Items<'a> {
    rest: &'a [u8],
    index: u32,
}

/// Read framed items from `payload`.
pub(crate) fn items(payload: &[u8]) -> Items<'_> {
    Items { rest: payload, index: 0 }
}

impl<'a> Iterator for Items<'a> {
    type Item = Result<&'a [u8], WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let index = self.index;
        self.index = self.index.saturating_add(1);
        let Some((len, rest)) = self.rest.split_first_chunk::<4>() else {
            self.rest = &[];
            return Some(Err(WireError::Truncated { index }));
        };
        let len = usize::try_from(u32::from_le_bytes(*len)).unwrap_or(usize::MAX);
        if len > rest.len() {
            self.rest = &[];
            return Some(Err(WireError::Truncated { index }));
        }
        let (body, rest) = rest.split_at(len);
        self.rest = rest;
        Some(Ok(body))
    }
}

/// Byte offsets of each framed item's start (prefix included) in `payload`, plus the end;
/// checks there are exactly `count`.
pub(crate) fn item_bounds(payload: &[u8], count: u32) -> Result<Vec<usize>, WireError> {
    let mut bounds = Vec::with_capacity(usize::try_from(count).unwrap_or(0).saturating_add(1));
    let mut at = 0usize;
    let mut found = 0u32;
    for item in items(payload) {
        bounds.push(at);
        let body = item?;
        at = at.saturating_add(4).saturating_add(body.len());
        found = found.saturating_add(1);
    }
    bounds.push(at);
    if found != count {
        return Err(WireError::Count { expected: count, found });
    }
    Ok(bounds)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    #[test]
    fn items_roundtrip_and_bounds() {
        let mut p = Vec::new();
        push_item(&mut p, b"ab");
        push_item(&mut p, b"");
        let at = begin_item(&mut p);
        p.extend_from_slice(b"xyz");
        finish_item(&mut p, at);
        let got: Vec<&[u8]> = items(&p).map(Result::unwrap).collect();
        assert_eq!(got, vec![&b"ab"[..], b"", b"xyz"]);
        assert_eq!(item_bounds(&p, 3).unwrap(), vec![0, 6, 10, 17]);
        assert_eq!(item_bounds(&p, 2), Err(WireError::Count { expected: 2, found: 3 }));
    }

    #[test]
    fn truncated_and_hostile_lengths_are_errors() {
        for bad in [&[1u8, 0][..], &[5, 0, 0, 0, 1], &[0xff, 0xff, 0xff, 0xff]] {
            let r: Vec<_> = items(bad).collect();
            assert_eq!(r.len(), 1);
            assert!(matches!(r[0], Err(WireError::Truncated { index: 0 })), "{bad:?}");
        }
        assert!(decode::<Up>(&[0xff, 0xff]).is_err());
    }

    #[test]
    fn headers_roundtrip() {
        let mut buf = Vec::new();
        encode_header(&Down::Chunk { seq: 7, call: Call { run: -5, func: 9 }, count: 3 }, &mut buf)
            .unwrap();
        buf.extend_from_slice(b"tail");
        let (h, rest): (Down, _) = decode(&buf).unwrap();
        assert!(matches!(h, Down::Chunk { seq: 7, count: 3, .. }));
        assert_eq!(rest, b"tail");
    }
}
