//! In-process tests of ipc-sem: threads over anonymous shared memory. The cross-process
//! suite (forked and re-executed processes, kills) is `tests/tests/sem.rs` in ipc-testkit.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod barrier;
mod bounded;
mod errors;
mod event;
mod named;
mod semaphore;

use ipc_shm::{Shared, ShmSafe};

/// Overwrite the `u32` at byte `offset` of the object's body, as a buggy peer would.
pub(crate) fn poke<T: ShmSafe>(obj: &Shared<T>, offset: usize, value: u32) {
    let base = obj.shm().as_ptr().as_ptr() as usize;
    let body = std::ptr::from_ref::<T>(obj) as usize - base;
    // A second mapping, as a peer process has: its writes land under every handle.
    let fd = std::os::fd::AsFd::as_fd(obj.shm()).try_clone_to_owned().unwrap();
    let mut peer = ipc_shm::Shm::from_fd(fd).unwrap();
    peer.write_at(body + offset, &value.to_ne_bytes()).unwrap();
}

/// Read the `u32` at byte `offset` of the object's body.
pub(crate) fn peek<T: ShmSafe>(obj: &Shared<T>, offset: usize) -> u32 {
    let base = obj.shm().as_ptr().as_ptr() as usize;
    let body = std::ptr::from_ref::<T>(obj) as usize - base;
    let mut b = [0u8; 4];
    let fd = std::os::fd::AsFd::as_fd(obj.shm()).try_clone_to_owned().unwrap();
    let mut peer = ipc_shm::Shm::from_fd(fd).unwrap();
    peer.read_at(body + offset, &mut b).unwrap();
    u32::from_ne_bytes(b)
}

/// This thread's kernel id.
pub(crate) fn tid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// Wait until thread `tid` of this process sleeps (state 'S'), i.e. is parked in the kernel.
pub(crate) fn wait_sleeping(tid: i32) {
    let t = std::time::Instant::now();
    loop {
        let stat =
            std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap_or_default();
        if stat.rsplit_once(") ").and_then(|(_, r)| r.chars().next()) == Some('S') {
            return;
        }
        assert!(t.elapsed() < std::time::Duration::from_secs(10), "thread {tid} never slept");
        std::thread::yield_now();
    }
}

#[test]
fn huge_timeouts_saturate_instead_of_panicking() {
    use std::time::Duration;
    let sem = ipc_sem::Semaphore::new(1).unwrap();
    assert!(sem.acquire_timeout(Duration::MAX).unwrap().is_some());
    let bounded = ipc_sem::BoundedSemaphore::new(1).unwrap();
    assert!(bounded.acquire_timeout(Duration::MAX).unwrap().is_some());
    let event = ipc_sem::Event::new();
    event.set();
    assert!(event.wait_timeout(Duration::MAX));
    let barrier = ipc_sem::Barrier::new(1).unwrap();
    assert!(barrier.wait_timeout(Duration::MAX).unwrap().is_leader());
}
