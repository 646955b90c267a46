//! The shm object header decoder: arbitrary bytes, any expected kind and segment length.
#![no_main]

use ipc_shm::header::{self, ObjectKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&[u8], u64, u32, u8, usize, Option<usize>)| {
    let (bytes, tag, version, align_shift, segment_len, body_len) = input;
    let kind = ObjectKind { tag, version, align: 1usize << (align_shift % 16), owner_ids: false };
    if let Ok(fields) = header::decode(bytes)
        && let Ok(body) = header::validate(&fields, &kind, body_len, segment_len)
    {
        assert!(body.offset >= header::HEADER_LEN);
        assert!(body.offset.checked_add(body.len).is_some_and(|end| end <= segment_len));
    }
});
