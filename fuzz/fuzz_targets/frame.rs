//! ipc-pipe's frame decoder (CPython's `multiprocessing.connection` framing): arbitrary
//! bytes and any `max_message` give frames within the limit or one typed error, never a
//! panic; a stream that decodes fully re-encodes to the same bytes. The seed corpus is
//! `ipc-pipe/tests/data/bad_frames/*.bin`. Mirrored on stable by the proptests in
//! `ipc-pipe/tests/it/frames.rs` (against a reference model, and through a real
//! connection with an allocation tracker).
#![no_main]

use ipc_pipe::frame::{self, FrameError, Prefix};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u32, &[u8])| {
    let (max, bytes) = input;
    let max = max as usize;
    let mut bodies = Vec::new();
    let mut failed = None;
    for f in frame::frames(bytes, max) {
        match f {
            Ok(body) => {
                assert!(body.len() <= max);
                bodies.push(body);
            }
            Err(e) => {
                if let FrameError::TooLarge { len, max: m } = e {
                    assert!(len > m as u64);
                }
                failed = Some(e);
            }
        }
    }
    if failed.is_none() {
        // Canonical streams (short prefixes below 2^31) re-encode to the input.
        let mut again = Vec::new();
        for b in &bodies {
            frame::encode_into(b, &mut again);
        }
        if !bytes.windows(4).any(|w| w == [0xff; 4]) {
            assert_eq!(again, bytes);
        }
    }
    match frame::decode_prefix(bytes, max) {
        Ok(Prefix::Complete { prefix_len, body_len }) => {
            assert!(prefix_len == 4 || prefix_len == 12);
            assert!(body_len <= max);
        }
        Ok(Prefix::Incomplete { needed }) => assert!(needed > bytes.len()),
        Err(_) => {}
    }
});
