//! Python's `multiprocessing.connection` challenge handshake, as pure functions over messages.
//!
//! The handshake is mutual. The serving side *delivers* a challenge and then *answers* the
//! client's; the client answers first and then delivers its own:
//!
//! 1. deliverer sends `#CHALLENGE#` + MESSAGE (MESSAGE = random bytes, or since CPython 3.12
//!    `{sha256}` + 40 random bytes);
//! 2. answerer replies with the HMAC of the *whole* MESSAGE under the shared key: the raw
//!    16-byte HMAC-MD5 when MESSAGE is the legacy 20 random bytes (what 3.11 sends), else
//!    `{digest}` + HMAC-digest (what 3.12+ sends);
//! 3. deliverer compares in constant time and sends `#WELCOME#` or `#FAILURE#`.
//!
//! A response of 16 or 20 bytes is legacy HMAC-MD5 with no prefix; anything else must start
//! with `{name}` naming one of md5, sha256, sha384, sha3_256, sha3_384 (CPython's
//! `_ALLOWED_DIGESTS`). Every message is at most [`MAX_AUTH_MESSAGE`] bytes; the connection
//! refuses a longer frame from its prefix alone, before reading it.
//!
//! This module does no I/O and cannot panic (the handshake fuzz target and the proptests feed
//! it arbitrary bytes); `handshake.rs` runs it over a connection with a deadline.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects, clippy::panic_in_result_fn)]

use std::fmt;

use hmac::{Hmac, Mac};

/// Prefix of a challenge message.
pub const CHALLENGE: &[u8] = b"#CHALLENGE#";
/// The deliverer's reply to a correct digest.
pub const WELCOME: &[u8] = b"#WELCOME#";
/// The deliverer's reply to a wrong digest.
pub const FAILURE: &[u8] = b"#FAILURE#";
/// The longest handshake message read before authentication (CPython's `recv_bytes(256)`).
pub const MAX_AUTH_MESSAGE: usize = 256;
/// Random bytes in the challenges we deliver (CPython 3.12+ sends 40; 3.11 sent 20).
pub const NONCE_LEN: usize = 40;
/// Length of a legacy (3.11) challenge message: 20 random bytes and no digest name.
pub const LEGACY_MESSAGE_LEN: usize = 20;
/// Length of a legacy response: a raw HMAC-MD5.
pub const LEGACY_DIGEST_LEN: usize = 16;
/// Longest digest name (`sha3_256`), as in CPython's `_MAX_DIGEST_LEN`.
const MAX_DIGEST_NAME: usize = 8;

/// The HMAC digests of the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Digest {
    /// HMAC-MD5: the only one CPython 3.11 and older speak.
    Md5,
    /// HMAC-SHA256: what CPython 3.12+ and we ask for.
    Sha256,
    /// HMAC-SHA384.
    Sha384,
    /// HMAC-SHA3-256.
    Sha3_256,
    /// HMAC-SHA3-384.
    Sha3_384,
}

impl Digest {
    /// Every digest, in CPython's `_ALLOWED_DIGESTS`.
    pub const ALL: [Digest; 5] =
        [Digest::Md5, Digest::Sha256, Digest::Sha384, Digest::Sha3_256, Digest::Sha3_384];

    /// The name used in `{name}` prefixes (Python's `hashlib` name).
    pub fn name(self) -> &'static str {
        match self {
            Digest::Md5 => "md5",
            Digest::Sha256 => "sha256",
            Digest::Sha384 => "sha384",
            Digest::Sha3_256 => "sha3_256",
            Digest::Sha3_384 => "sha3_384",
        }
    }

    /// The digest named `name` (exact, case-sensitive, as CPython compares bytes).
    pub fn from_name(name: &[u8]) -> Option<Digest> {
        Digest::ALL.into_iter().find(|d| d.name().as_bytes() == name)
    }

    /// Length of the MAC in bytes.
    pub fn output_len(self) -> usize {
        match self {
            Digest::Md5 => 16,
            Digest::Sha256 | Digest::Sha3_256 => 32,
            Digest::Sha384 | Digest::Sha3_384 => 48,
        }
    }

    /// HMAC of `message` under `key`.
    pub fn mac(self, key: &[u8], message: &[u8]) -> Vec<u8> {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], message: &[u8]) -> Vec<u8> {
            // HMAC takes keys of any length; the error branch cannot happen and yields an
            // empty MAC, which no verification accepts.
            match <M as hmac::digest::KeyInit>::new_from_slice(key) {
                Ok(mut m) => {
                    m.update(message);
                    m.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(),
            }
        }
        match self {
            Digest::Md5 => run::<Hmac<md5::Md5>>(key, message),
            Digest::Sha256 => run::<Hmac<sha2::Sha256>>(key, message),
            Digest::Sha384 => run::<Hmac<sha2::Sha384>>(key, message),
            Digest::Sha3_256 => run::<Hmac<sha3::Sha3_256>>(key, message),
            Digest::Sha3_384 => run::<Hmac<sha3::Sha3_384>>(key, message),
        }
    }

    /// Whether `tag` is the HMAC of `message` under `key`, compared in constant time (hmac's
    /// `verify_slice`).
    pub fn verify(self, key: &[u8], message: &[u8], tag: &[u8]) -> bool {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], message: &[u8], tag: &[u8]) -> bool {
            match <M as hmac::digest::KeyInit>::new_from_slice(key) {
                Ok(mut m) => {
                    m.update(message);
                    m.verify_slice(tag).is_ok()
                }
                Err(_) => false,
            }
        }
        match self {
            Digest::Md5 => run::<Hmac<md5::Md5>>(key, message, tag),
            Digest::Sha256 => run::<Hmac<sha2::Sha256>>(key, message, tag),
            Digest::Sha384 => run::<Hmac<sha2::Sha384>>(key, message, tag),
            Digest::Sha3_256 => run::<Hmac<sha3::Sha3_256>>(key, message, tag),
            Digest::Sha3_384 => run::<Hmac<sha3::Sha3_384>>(key, message, tag),
        }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the handshake accepts from the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Accept HMAC-MD5: needed to talk to CPython 3.11 and older, which know nothing else.
    pub allow_md5: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy { allow_md5: true }
    }
}

/// Why a handshake failed. `Copy` and allocation-free; it never carries key material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthError {
    /// The first message was not a `#CHALLENGE#` (the listener may have no authkey and sent an
    /// application message instead).
    NotAChallenge,
    /// The challenge carries fewer than 20 bytes after `#CHALLENGE#`.
    ChallengeTooShort {
        /// Bytes it carried.
        len: usize,
    },
    /// Neither a legacy length nor a `{name}` prefix with a supported digest name.
    UnsupportedDigest,
    /// The peer uses HMAC-MD5 and the policy refuses it.
    Md5Refused,
    /// The MAC has the wrong length for its digest.
    DigestLength {
        /// Length the digest produces.
        expected: usize,
        /// Length received.
        found: usize,
    },
    /// The MAC does not match: the peer does not hold our key.
    WrongDigest,
    /// The peer answered our digest with `#FAILURE#`: it does not hold our key.
    Rejected,
    /// The peer answered our digest with something other than `#WELCOME#`/`#FAILURE#`.
    UnexpectedReply,
    /// The peer sent back the challenge we had sent it (a reflection attempt).
    Reflected,
    /// A handshake message is longer than [`MAX_AUTH_MESSAGE`].
    MessageTooLong {
        /// Its declared length.
        len: u64,
    },
    /// The handshake deadline passed; when still waiting for the challenge, the listener most
    /// likely has no authkey (the CPython client would hang here forever, cpython#123736).
    Deadline {
        /// Whether the challenge had arrived.
        challenged: bool,
    },
    /// The peer closed the connection during the handshake (it most likely refused our key,
    /// or demanded one we do not have).
    Disconnected,
    /// File descriptors arrived with a handshake message (the kernel closed them).
    UnexpectedFds,
    /// A handshake message was not a valid frame.
    Malformed,
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            AuthError::NotAChallenge => {
                f.write_str("expected a #CHALLENGE# message (does the listener have an authkey?)")
            }
            AuthError::ChallengeTooShort { len } => {
                write!(f, "challenge too short: {len} bytes, at least {LEGACY_MESSAGE_LEN}")
            }
            AuthError::UnsupportedDigest => {
                f.write_str("unsupported message length, missing or unknown {digest} prefix")
            }
            AuthError::Md5Refused => f.write_str("peer uses HMAC-MD5, which the policy refuses"),
            AuthError::DigestLength { expected, found } => {
                write!(f, "digest of {found} bytes, expected {expected}")
            }
            AuthError::WrongDigest => f.write_str("digest received was wrong (wrong authkey)"),
            AuthError::Rejected => f.write_str("digest sent was rejected (wrong authkey)"),
            AuthError::UnexpectedReply => {
                f.write_str("the reply to our digest was neither #WELCOME# nor #FAILURE#")
            }
            AuthError::Reflected => f.write_str("peer reflected our own challenge"),
            AuthError::MessageTooLong { len } => {
                write!(f, "handshake message of {len} bytes exceeds {MAX_AUTH_MESSAGE}")
            }
            AuthError::Deadline { challenged: false } => f.write_str(
                "no challenge before the handshake deadline (does the listener have an authkey?)",
            ),
            AuthError::Deadline { challenged: true } => f.write_str("handshake deadline passed"),
            AuthError::Disconnected => {
                f.write_str("peer closed the connection during the handshake")
            }
            AuthError::UnexpectedFds => f.write_str(
                "file descriptors arrived with a handshake message (closed unread by the kernel)",
            ),
            AuthError::Malformed => f.write_str("a handshake message was not a valid frame"),
        }
    }
}

impl std::error::Error for AuthError {}

/// How a message or response names its digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Named<'a> {
    /// Legacy: no name, HMAC-MD5; the whole input.
    Legacy(&'a [u8]),
    /// `{name}` + the rest.
    Digest(Digest, &'a [u8]),
}

/// CPython's `_get_digest_name_and_payload`: a 16- or 20-byte input is legacy; anything else
/// must start with `{name}` naming an allowed digest.
///
/// # Errors
/// [`AuthError::UnsupportedDigest`].
pub fn split_digest(message: &[u8]) -> Result<Named<'_>, AuthError> {
    if message.len() == LEGACY_MESSAGE_LEN || message.len() == LEGACY_DIGEST_LEN {
        return Ok(Named::Legacy(message));
    }
    let Some(inner) = message.strip_prefix(b"{") else {
        return Err(AuthError::UnsupportedDigest);
    };
    // CPython searches for '}' at indices 1..MAX+2 of the message, i.e. the name is at most
    // MAX_DIGEST_NAME bytes long.
    let window = inner.get(..MAX_DIGEST_NAME.saturating_add(1)).unwrap_or(inner);
    let Some(close) = window.iter().position(|&b| b == b'}') else {
        return Err(AuthError::UnsupportedDigest);
    };
    let (name, rest) = inner.split_at(close);
    let payload = rest.get(1..).unwrap_or(&[]);
    match Digest::from_name(name) {
        Some(d) => Ok(Named::Digest(d, payload)),
        None => Err(AuthError::UnsupportedDigest),
    }
}

/// The message of a challenge we deliver: `{name}` + `nonce` (what the HMAC covers).
pub fn challenge_message(digest: Digest, nonce: &[u8]) -> Vec<u8> {
    let name = digest.name().as_bytes();
    let mut m = Vec::with_capacity(name.len().saturating_add(2).saturating_add(nonce.len()));
    m.push(b'{');
    m.extend_from_slice(name);
    m.push(b'}');
    m.extend_from_slice(nonce);
    m
}

/// The frame body of a challenge: `#CHALLENGE#` + `message`.
pub fn challenge_frame(message: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(CHALLENGE.len().saturating_add(message.len()));
    f.extend_from_slice(CHALLENGE);
    f.extend_from_slice(message);
    f
}

/// The message inside a received challenge frame (what the answer's HMAC covers).
///
/// # Errors
/// [`AuthError::NotAChallenge`], [`AuthError::ChallengeTooShort`],
/// [`AuthError::MessageTooLong`].
pub fn parse_challenge(frame: &[u8]) -> Result<&[u8], AuthError> {
    if frame.len() > MAX_AUTH_MESSAGE {
        return Err(AuthError::MessageTooLong { len: frame.len() as u64 });
    }
    let Some(message) = frame.strip_prefix(CHALLENGE) else {
        return Err(AuthError::NotAChallenge);
    };
    if message.len() < LEGACY_MESSAGE_LEN {
        return Err(AuthError::ChallengeTooShort { len: message.len() });
    }
    Ok(message)
}

/// Our answer to a challenge `message` (from [`parse_challenge`]): the raw HMAC-MD5 for a
/// legacy challenge, `{name}` + HMAC for a named one. Returns the digest used too.
///
/// # Errors
/// [`AuthError::UnsupportedDigest`], [`AuthError::Md5Refused`].
pub fn respond(key: &[u8], message: &[u8], policy: Policy) -> Result<(Digest, Vec<u8>), AuthError> {
    match split_digest(message)? {
        Named::Legacy(_) | Named::Digest(Digest::Md5, _) if !policy.allow_md5 => {
            Err(AuthError::Md5Refused)
        }
        Named::Legacy(_) => Ok((Digest::Md5, Digest::Md5.mac(key, message))),
        Named::Digest(d, _) => {
            let mac = d.mac(key, message);
            let mut r = Vec::with_capacity(mac.len().saturating_add(MAX_DIGEST_NAME + 2));
            r.push(b'{');
            r.extend_from_slice(d.name().as_bytes());
            r.push(b'}');
            r.extend_from_slice(&mac);
            Ok((d, r))
        }
    }
}

/// Check the peer's `response` to the challenge `message` we delivered; the digest it used on
/// success. The comparison is constant-time.
///
/// # Errors
/// [`AuthError::UnsupportedDigest`], [`AuthError::Md5Refused`], [`AuthError::DigestLength`],
/// [`AuthError::WrongDigest`], [`AuthError::MessageTooLong`].
pub fn verify(
    key: &[u8],
    message: &[u8],
    response: &[u8],
    policy: Policy,
) -> Result<Digest, AuthError> {
    if response.len() > MAX_AUTH_MESSAGE {
        return Err(AuthError::MessageTooLong { len: response.len() as u64 });
    }
    let (digest, mac) = match split_digest(response)? {
        Named::Legacy(mac) => (Digest::Md5, mac),
        Named::Digest(d, mac) => (d, mac),
    };
    if digest == Digest::Md5 && !policy.allow_md5 {
        return Err(AuthError::Md5Refused);
    }
    if mac.len() != digest.output_len() {
        return Err(AuthError::DigestLength { expected: digest.output_len(), found: mac.len() });
    }
    if digest.verify(key, message, mac) { Ok(digest) } else { Err(AuthError::WrongDigest) }
}

/// Check the deliverer's verdict on our answer.
///
/// # Errors
/// [`AuthError::Rejected`] for `#FAILURE#`, [`AuthError::UnexpectedReply`] for anything but
/// `#WELCOME#`.
pub fn check_verdict(frame: &[u8]) -> Result<(), AuthError> {
    if frame == WELCOME {
        Ok(())
    } else if frame == FAILURE {
        Err(AuthError::Rejected)
    } else {
        Err(AuthError::UnexpectedReply)
    }
}

/// Whether the peer's challenge `theirs` is the one we sent (`ours`): answering it would hand
/// the peer the answer to our own question.
pub fn is_reflection(ours: &[u8], theirs: &[u8]) -> bool {
    ours == theirs
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects, clippy::unwrap_used)]
    use super::*;

    #[test]
    fn hmac_vectors_match_python() {
        // python3 -c "import hmac;print(hmac.new(b'key', b'The quick brown fox jumps over the
        // lazy dog', 'md5').hexdigest())" and the same for sha256 (RFC 2104 / Wikipedia).
        let m = b"The quick brown fox jumps over the lazy dog";
        let hex = |v: Vec<u8>| v.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(hex(Digest::Md5.mac(b"key", m)), "80070713463e7749b90c2dc24911e275");
        assert_eq!(
            hex(Digest::Sha256.mac(b"key", m)),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }

    #[test]
    fn legacy_and_named_messages() {
        assert_eq!(split_digest(&[7; 20]), Ok(Named::Legacy(&[7; 20])));
        assert_eq!(split_digest(&[7; 16]), Ok(Named::Legacy(&[7; 16])));
        assert_eq!(split_digest(b"{sha256}abc"), Ok(Named::Digest(Digest::Sha256, b"abc")));
        assert_eq!(split_digest(b"{sha3_384}"), Ok(Named::Digest(Digest::Sha3_384, b"")));
        assert_eq!(split_digest(b"{sha1}0123456789abcdef"), Err(AuthError::UnsupportedDigest));
        assert_eq!(split_digest(b"{sha256"), Err(AuthError::UnsupportedDigest));
        assert_eq!(split_digest(b"sha256}xx"), Err(AuthError::UnsupportedDigest));
        assert_eq!(split_digest(b""), Err(AuthError::UnsupportedDigest));
    }

    #[test]
    fn respond_then_verify_for_every_digest() {
        let key = b"secret key";
        for d in Digest::ALL {
            let msg = challenge_message(d, &[0x42; NONCE_LEN]);
            let frame = challenge_frame(&msg);
            let got = parse_challenge(&frame).unwrap();
            let (used, resp) = respond(key, got, Policy::default()).unwrap();
            assert_eq!(used, d);
            assert_eq!(verify(key, &msg, &resp, Policy::default()), Ok(d));
            assert_eq!(
                verify(b"other", &msg, &resp, Policy::default()),
                Err(AuthError::WrongDigest)
            );
        }
        // Legacy: a 3.11 deliverer's 20 bytes, answered with raw HMAC-MD5 over them.
        let legacy = [9u8; LEGACY_MESSAGE_LEN];
        let (d, resp) = respond(key, &legacy, Policy::default()).unwrap();
        assert_eq!((d, resp.len()), (Digest::Md5, 16));
        assert_eq!(verify(key, &legacy, &resp, Policy::default()), Ok(Digest::Md5));
        assert_eq!(respond(key, &legacy, Policy { allow_md5: false }), Err(AuthError::Md5Refused));
        // A 3.11 answerer md5s our whole named message and sends 16 raw bytes.
        let ours = challenge_message(Digest::Sha256, &[1; NONCE_LEN]);
        let md5 = Digest::Md5.mac(key, &ours);
        assert_eq!(verify(key, &ours, &md5, Policy::default()), Ok(Digest::Md5));
        assert_eq!(
            verify(key, &ours, &md5, Policy { allow_md5: false }),
            Err(AuthError::Md5Refused)
        );
    }

    #[test]
    fn malformed_handshake_messages() {
        assert_eq!(parse_challenge(b"hello"), Err(AuthError::NotAChallenge));
        assert_eq!(
            parse_challenge(b"#CHALLENGE#short"),
            Err(AuthError::ChallengeTooShort { len: 5 })
        );
        assert_eq!(parse_challenge(&[b'#'; 300]), Err(AuthError::MessageTooLong { len: 300 }));
        let msg = challenge_message(Digest::Sha256, &[1; NONCE_LEN]);
        assert_eq!(
            verify(b"k", &msg, b"{sha256}short", Policy::default()),
            Err(AuthError::DigestLength { expected: 32, found: 5 })
        );
        assert_eq!(
            verify(b"k", &msg, &[0; 20], Policy::default()),
            Err(AuthError::DigestLength { expected: 16, found: 20 })
        );
        assert_eq!(check_verdict(WELCOME), Ok(()));
        assert_eq!(check_verdict(FAILURE), Err(AuthError::Rejected));
        assert_eq!(check_verdict(b"#WELCOME"), Err(AuthError::UnexpectedReply));
    }
}
