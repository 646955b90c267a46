//! A pool worker's progress word: which item of which chunk it runs and since when, in a
//! small anonymous segment shared with the supervisor. It outlives the worker, so after a
//! death the supervisor knows exactly which item was running (that one is blamed; those
//! before it finished, those after it never started), and while the worker lives it tells
//! the supervisor when a per-task timeout falls due, without a message per item.
//!
//! Layout (a `Shared<[AtomicU32; 3]>`): `seq` (the chunk the worker began last), `started`
//! (items of that chunk begun: item `started - 1` runs or just finished), `start_ms` (when
//! that item began, CLOCK_MONOTONIC milliseconds modulo 2^32; written only when timeouts are
//! on).

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use ipc_shm::{Shared, Shm};

use crate::error::Error;

const SEQ: usize = 0;
const STARTED: usize = 1;
const START_MS: usize = 2;

/// What the supervisor reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seen {
    pub(crate) seq: u32,
    pub(crate) started: u32,
    pub(crate) start_ms: u32,
}

/// The progress words of one worker.
#[derive(Debug)]
pub(crate) struct Progress {
    words: Shared<[AtomicU32; 3]>,
}

fn word(words: &Shared<[AtomicU32; 3]>, at: usize) -> &AtomicU32 {
    // `at` is one of the three constants above.
    static DUMMY: AtomicU32 = AtomicU32::new(0);
    words.get(at).unwrap_or(&DUMMY)
}

/// CLOCK_MONOTONIC in milliseconds, modulo 2^32 (the same clock in every process).
pub(crate) fn now_ms() -> u32 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let ms = i128::from(t.tv_sec) * 1000 + i128::from(t.tv_nsec) / 1_000_000;
    u32::try_from(ms.rem_euclid(1 << 32)).unwrap_or(0)
}

impl Progress {
    /// A fresh segment (supervisor side).
    pub(crate) fn create(object: &str) -> Result<Progress, Error> {
        let words = Shared::anonymous([const { AtomicU32::new(0) }; 3]).map_err(|e| {
            Error::io("create progress segment for", object, std::io::Error::other(e))
        })?;
        Ok(Progress { words })
    }

    /// The segment received from the supervisor (worker side), its header checked.
    pub(crate) fn from_shm(shm: Shm) -> Option<Progress> {
        Shared::from_shm(shm).ok().map(|words| Progress { words })
    }

    /// The segment, to hand to the worker.
    pub(crate) fn shm(&self) -> &Shm {
        self.words.shm()
    }

    /// Worker: chunk `seq` begins.
    pub(crate) fn begin_chunk(&self, seq: u32) {
        // Relaxed: ordered before the seq store by its Release.
        word(&self.words, STARTED).store(0, Ordering::Relaxed);
        // Release: pairs with the Acquire load of `seq` in `read`, so a reader that sees this
        // chunk's seq sees `started` reset.
        word(&self.words, SEQ).store(seq, Ordering::Release);
    }

    /// Worker: item `index` of the current chunk begins.
    pub(crate) fn start_item(&self, index: u32, timed: bool) {
        if timed {
            // Relaxed: published by the Release store of `started` below.
            word(&self.words, START_MS).store(now_ms(), Ordering::Relaxed);
        }
        // Release: pairs with the Acquire loads of `started` in `read`, so the start time
        // read after it is this item's (or a later one's).
        word(&self.words, STARTED).store(index.saturating_add(1), Ordering::Release);
    }

    /// Supervisor: a consistent snapshot (re-read until `seq` and `started` did not move
    /// around the read of `start_ms`; after the worker died, the first read is final).
    pub(crate) fn read(&self) -> Seen {
        let deadline = Instant::now() + std::time::Duration::from_millis(5);
        loop {
            // Acquire: pairs with the Release store in `begin_chunk`.
            let seq = word(&self.words, SEQ).load(Ordering::Acquire);
            // Acquire: pairs with the Release store in `start_item`.
            let started = word(&self.words, STARTED).load(Ordering::Acquire);
            // Relaxed: ordered after the Acquire load of `started` above.
            let start_ms = word(&self.words, START_MS).load(Ordering::Relaxed);
            // Acquire: as above; an unchanged pair means `start_ms` belongs to this item.
            let again = word(&self.words, STARTED).load(Ordering::Acquire);
            let seq_again = word(&self.words, SEQ).load(Ordering::Acquire);
            if (again == started && seq_again == seq) || Instant::now() > deadline {
                return Seen { seq, started, start_ms };
            }
        }
    }
}
