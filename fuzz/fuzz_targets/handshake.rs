//! ipc-pipe's handshake parsers (CPython's `multiprocessing.connection` challenge):
//! arbitrary bytes as a challenge, a response or a verdict give typed errors, never a panic,
//! and never authenticate. Mirrored on stable by the proptests in
//! `ipc-pipe/tests/it/handshake.rs`, which also run hostile peers against a real listener and
//! client.
#![no_main]

use ipc_pipe::auth::{self, Digest, Policy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&[u8], &[u8], bool)| {
    let (key, bytes, allow_md5) = input;
    let policy = Policy { allow_md5 };
    let key = if key.is_empty() { b"k".as_slice() } else { key };
    // As a challenge: parsed, and if acceptable answered; our answer verifies.
    if let Ok(message) = auth::parse_challenge(bytes)
        && let Ok((digest, response)) = auth::respond(key, message, policy)
    {
        assert_eq!(auth::verify(key, message, &response, policy), Ok(digest));
    }
    // As a response to a challenge of ours: arbitrary bytes never verify.
    let ours = auth::challenge_message(Digest::Sha256, &[0x42; auth::NONCE_LEN]);
    assert!(auth::verify(key, &ours, bytes, policy).is_err());
    // As a verdict.
    if auth::check_verdict(bytes).is_ok() {
        assert_eq!(bytes, auth::WELCOME);
    }
    let _ = auth::split_digest(bytes);
});
