//! ipc-pipe's pickle guard (`recv_pickle`'s check before serde-pickle decodes a peer's
//! pickle): arbitrary bytes give an estimate within the limit or one typed refusal, never a
//! panic; and whatever it admits, serde-pickle decodes (or refuses) within that memory, run
//! here under libFuzzer's RSS limit (`-rss_limit_mb=2048`), without overflowing the stack
//! or running long. Mirrored on stable by the property test in `ipc-pipe/tests/it/pickle.rs`,
//! which measures serde-pickle's peak against the estimate with a counting allocator.
#![no_main]

use ipc_pipe::pickle_guard::{self, PickleError};
use libfuzzer_sys::fuzz_target;

/// The budget the fuzzer admits pickles under.
const LIMIT: u64 = 256 << 20;

fuzz_target!(|data: &[u8]| {
    match pickle_guard::check_with_limit(data, LIMIT) {
        Ok(estimate) => {
            assert!(estimate <= LIMIT);
            // What recv_pickle runs. (Not serde_pickle::value_from_slice: it builds sets with
            // BTreeSet::from_iter, whose sort panics on a NaN member, "comparison does not
            // implement a total order"; found by this target, and not on recv_pickle's path.)
            let _ = serde_pickle::from_slice::<serde_pickle::Value>(
                data,
                serde_pickle::DeOptions::new(),
            );
        }
        Err(PickleError::TooLarge { needed, limit }) => assert!(needed > limit),
        Err(_) => {}
    }
});
