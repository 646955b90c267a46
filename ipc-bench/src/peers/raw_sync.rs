//! raw_sync 0.1.5: a pshared pthread mutex behind `Box<dyn LockImpl>`, in a shared segment.
#![allow(unsafe_code)] // raw_sync's constructors take raw pointers into the mapping

use std::sync::atomic::Ordering;

use raw_sync::locks::{LockImpl, LockInit, Mutex};

use crate::floors::with_second_thread;
use crate::harness::{Ctx, Fail, Outcome, anon, pin, time_ops, word};

/// `raw_sync::locks::Mutex` lock + increment + unlock, uncontended.
pub fn mutex_op(ctx: &Ctx) -> Outcome {
    let shm = anon(4096)?;
    let counter = word(&shm, 2048)?;
    let base = shm.as_ptr().as_ptr();
    let data = base.wrapping_add(1024);
    // SAFETY: `base` and `data` point into the live 4 KiB mapping, which outlives `m`; the
    // lock needs far less than the 1024 bytes before `data`, and nothing else uses them.
    let made = unsafe { Mutex::new(base, data) };
    let (m, _size): (Box<dyn LockImpl>, usize) =
        made.map_err(|e| Fail::Error(format!("raw_sync Mutex::new: {e}")))?;
    pin(Some(0))?;
    with_second_thread(|| {
        time_ops(ctx, 0, || {
            let g = m.lock().map_err(|e| Fail::Error(format!("lock: {e}")))?;
            // Relaxed: guarded by the lock.
            counter.store(counter.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
            drop(g);
            Ok(())
        })
    })
}
