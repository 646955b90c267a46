//! Integration tests of ipc-queue in one process (threads, anonymous and named segments).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod adversary;
mod errors;
mod flavours;
mod mpmc;

#[test]
fn huge_timeouts_saturate_instead_of_panicking() {
    use std::time::Duration;
    let q = ipc_queue::Queue::anonymous(2, 8).unwrap();
    q.send_timeout(b"x", Duration::MAX).unwrap();
    assert_eq!(q.recv_timeout(Duration::MAX).unwrap(), b"x");
    let j = ipc_queue::JoinableQueue::anonymous(2, 8).unwrap();
    j.join_timeout(Duration::MAX).unwrap();
    let s = ipc_queue::SpscQueue::anonymous(2, 8).unwrap();
    let (mut tx, mut rx) = (s.sender().unwrap(), s.receiver().unwrap());
    tx.send_timeout(b"y", Duration::MAX).unwrap();
    assert_eq!(rx.recv_timeout(Duration::MAX).unwrap(), b"y");
}
