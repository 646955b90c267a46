use std::sync::Arc;
use std::time::Duration;

use ipc_queue::{
    Error, JoinTimeoutError, JoinableQueue, Queue, QueueOptions, SpscQueue, TryRecvError,
    TrySendError, TypedQueue,
};

#[test]
fn spsc_roles_order_and_zero_copy() {
    let q = SpscQueue::anonymous(4, 16).unwrap();
    let mut tx = q.sender().unwrap();
    assert!(matches!(q.sender(), Err(Error::RoleTaken { role: "producer", .. })));
    let mut rx = q.receiver().unwrap();
    for round in 0..10u8 {
        for i in 0..4u8 {
            tx.try_send(&[round, i]).unwrap();
        }
        assert!(matches!(tx.try_send(b"x"), Err(TrySendError::Full)));
        assert_eq!(q.len(), 4);
        for i in 0..4u8 {
            assert_eq!(rx.try_recv().unwrap(), [round, i]);
        }
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    }
    let mut s = tx.reserve(3).unwrap();
    s.copy_from_slice(b"abc");
    s.commit();
    let _ = tx.try_reserve(2).unwrap(); // dropped: nothing published
    assert_eq!(&*rx.recv_ref().unwrap(), b"abc");
    assert!(rx.try_recv().is_err());
    drop(tx);
    let mut tx2 = q.sender().unwrap(); // the role is free again
    tx2.send(b"again").unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(1)).unwrap(), b"again");
    q.close();
    assert!(tx2.try_send(b"no").is_err());
    assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
}

#[test]
fn spsc_threads_keep_total_order() {
    let q = SpscQueue::anonymous(16, 8).unwrap();
    let mut tx = q.sender().unwrap();
    let mut rx = q.receiver().unwrap();
    let n = 100_000u64;
    let t = std::thread::spawn(move || {
        for i in 0..n {
            tx.send(&i.to_le_bytes()).unwrap();
        }
    });
    for i in 0..n {
        assert_eq!(rx.recv().unwrap(), i.to_le_bytes());
    }
    t.join().unwrap();
}

#[test]
fn spsc_counters_near_wrap() {
    let q = QueueOptions::new(2, 8).start_position(u64::MAX - 3).anonymous_spsc().unwrap();
    let mut tx = q.sender().unwrap();
    let mut rx = q.receiver().unwrap();
    for i in 0..20u64 {
        tx.send(&i.to_le_bytes()).unwrap();
        assert_eq!(rx.recv().unwrap(), i.to_le_bytes());
    }
}

#[test]
fn typed_roundtrip_and_mismatch() {
    let name = ipc_testkit::unique_name("typed");
    let q = TypedQueue::<[u32; 4]>::create(&name, 4).unwrap();
    q.send([1, 2, 3, 0]).unwrap();
    assert_eq!(q.try_recv().unwrap(), [1, 2, 3, 0]);
    assert!(matches!(TypedQueue::<[u64; 2]>::open(&name), Err(Error::ElementMismatch { .. })));
    assert!(matches!(TypedQueue::<[u8; 16]>::open(&name), Err(Error::ElementMismatch { .. })));
    let other = TypedQueue::<[u32; 4]>::open(&name).unwrap();
    other.send([4, 5, 6, 0]).unwrap();
    assert_eq!(q.recv().unwrap(), [4, 5, 6, 0]);
    // The flavours refuse each other.
    assert!(SpscQueue::open(&name).is_err());
    drop(other);
    drop(q);
    assert!(ipc_testkit::audit::shm_entries(&name).is_empty());
}

#[test]
fn joinable_counts_tasks() {
    let q = Arc::new(JoinableQueue::anonymous(8, 16).unwrap());
    for i in 0..5u8 {
        q.send(&[i]).unwrap();
    }
    assert_eq!(q.unfinished(), 5);
    assert_eq!(q.join_timeout(Duration::from_millis(20)), Err(JoinTimeoutError::Timeout(5)));
    let worker = {
        let q = q.clone();
        std::thread::spawn(move || {
            for _ in 0..5 {
                q.recv().unwrap();
                q.task_done().unwrap();
            }
        })
    };
    q.join();
    worker.join().unwrap();
    assert!(matches!(q.task_done(), Err(Error::TooManyTaskDone { .. })));
    assert_eq!(q.unfinished(), 0);
}

#[test]
fn named_queue_is_shared_and_unlinked_by_its_creator() {
    let name = ipc_testkit::unique_name("named");
    let q = Queue::create(&name, 4, 8).unwrap();
    let other = Queue::open(&name).unwrap();
    other.send(b"hi").unwrap();
    assert_eq!(q.recv().unwrap(), b"hi");
    assert!(Queue::create(&name, 4, 8).is_err());
    let again = Queue::open_or_create(&name, 4, 8).unwrap();
    assert_eq!(again.capacity(), 4);
    drop((q, other, again));
    assert!(ipc_testkit::audit::shm_entries(&name).is_empty());
}

#[test]
fn bad_configs_are_refused() {
    assert!(matches!(Queue::anonymous(0, 8), Err(Error::InvalidConfig { .. })));
    assert!(matches!(Queue::anonymous(1 << 31, 8), Err(Error::InvalidConfig { .. })));
    assert!(matches!(Queue::anonymous(4, usize::MAX), Err(Error::InvalidConfig { .. })));
    // A queue of empty messages only is refused, as documented.
    let e = QueueOptions::new(8, 0).anonymous().unwrap_err();
    assert!(matches!(e, Error::InvalidConfig { .. }), "{e}");
    assert!(e.to_string().contains("max_message is 0, must be 1 to"), "{e}");
    // The capacity is rounded up to a power of two.
    assert_eq!(Queue::anonymous(3, 8).unwrap().capacity(), 4);
}

#[test]
fn spsc_polling_ping_pong_threads() {
    let ping = SpscQueue::anonymous(64, 64).unwrap();
    let pong = SpscQueue::anonymous(64, 64).unwrap();
    let (p2, q2) = (ping.clone(), pong.clone());
    let echo = std::thread::spawn(move || {
        let mut rx = p2.receiver().unwrap();
        let mut tx = q2.sender().unwrap();
        let mut buf = Vec::with_capacity(64);
        let mut n = 0u64;
        loop {
            match rx.try_recv_into(&mut buf) {
                Ok(_) => {
                    n += 1;
                    while tx.try_send(&buf).is_err() {}
                }
                Err(TryRecvError::Empty) => std::hint::spin_loop(),
                Err(TryRecvError::Closed) => return n,
                Err(e) => panic!("echo after {n}: {e:?}"),
            }
        }
    });
    let mut tx = ping.sender().unwrap();
    let mut rx = pong.receiver().unwrap();
    let mut buf = Vec::new();
    for i in 0..20_000u64 {
        while tx.try_send(&i.to_le_bytes()).is_err() {}
        let mut spins = 0u64;
        loop {
            match rx.try_recv_into(&mut buf) {
                Ok(_) => break,
                Err(TryRecvError::Empty) => {}
                Err(e) => panic!("ping {i}: {e:?}"),
            }
            spins += 1;
            assert!(
                spins < 100_000_000,
                "stuck at {i}: ping len {} pong len {}",
                ping.len(),
                pong.len()
            );
        }
        assert_eq!(buf, i.to_le_bytes());
    }
    tx.close();
    assert_eq!(echo.join().unwrap(), 20_000);
}
