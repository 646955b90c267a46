//! In-process tests of ipc-lock: one integration binary (threads, heap or anonymous shared
//! memory, model owners). The cross-process suite is `tests/tests/lock.rs` in ipc-testkit.
#![cfg(not(ipc_loom))] // the loom build runs tests/loom.rs only
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod condvar;
mod errors;
mod file_lock;
mod garbage;
mod lock_api_surface;
mod mutex;
mod reentrant;
mod rwlock;

#[test]
fn huge_timeouts_saturate_instead_of_panicking() {
    use std::time::Duration;
    let m = ipc_lock::Mutex::new(0u64);
    let g = m.try_lock_for(Duration::MAX).unwrap();
    let cv = ipc_lock::Condvar::new();
    let (g, _) = cv.wait_timeout_while(g, Duration::MAX, |_| false).unwrap();
    drop(g);
    let l = ipc_lock::RwLock::new(0u64);
    drop(l.try_read_for(Duration::MAX).unwrap());
    drop(l.try_write_for(Duration::MAX).unwrap());
    let r = ipc_lock::ReentrantMutex::new(std::sync::atomic::AtomicU64::new(0));
    drop(r.try_lock_for(Duration::MAX).unwrap());
}
