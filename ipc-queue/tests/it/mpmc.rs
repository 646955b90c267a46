use std::sync::Arc;
use std::time::{Duration, Instant};

use ipc_queue::{
    Queue, QueueOptions, RecvTimeoutError, SendTimeoutError, TryRecvError, TrySendError,
};

#[test]
fn send_recv_fifo_and_capacity() {
    let q = Queue::anonymous(3, 32).unwrap();
    assert_eq!(q.capacity(), 4);
    assert_eq!(q.max_message(), 32);
    assert!(q.is_empty());
    for i in 0..4u8 {
        q.try_send(&[i; 5]).unwrap();
    }
    assert!(q.is_full());
    assert_eq!(q.len(), 4);
    assert!(matches!(q.try_send(b"x"), Err(TrySendError::Full)));
    assert_eq!(q.try_send(&[0; 33]), Err(TrySendError::TooLong { len: 33, max: 32 }));
    for i in 0..4u8 {
        assert_eq!(q.try_recv().unwrap(), vec![i; 5]);
    }
    assert_eq!(q.try_recv(), Err(TryRecvError::Empty));
    q.send(b"").unwrap();
    assert_eq!(q.recv().unwrap(), b"");
}

#[test]
fn timeouts_hold() {
    let q = Queue::anonymous(1, 8).unwrap();
    let t = Instant::now();
    assert_eq!(q.recv_timeout(Duration::from_millis(30)), Err(RecvTimeoutError::Timeout));
    assert!(t.elapsed() >= Duration::from_millis(30));
    q.send(b"a").unwrap();
    let t = Instant::now();
    assert!(matches!(
        q.send_timeout(b"b", Duration::from_millis(30)),
        Err(SendTimeoutError::Timeout)
    ));
    assert!(t.elapsed() >= Duration::from_millis(30));
}

#[test]
fn close_drains_then_closed() {
    let q = Queue::anonymous(4, 8).unwrap();
    q.send(b"1").unwrap();
    q.close();
    assert!(q.is_closed());
    assert!(matches!(q.try_send(b"2"), Err(TrySendError::Closed)));
    assert_eq!(q.recv().unwrap(), b"1");
    assert_eq!(q.recv(), Err(ipc_queue::RecvError::Closed));
}

#[test]
fn reserve_commit_and_cancel() {
    let q = Queue::anonymous(4, 64).unwrap();
    let mut s = q.reserve(10).unwrap();
    s.copy_from_slice(b"0123456789");
    s.truncate(4);
    s.commit();
    let dropped = q.reserve(3).unwrap();
    drop(dropped);
    let mut s = q.try_reserve(2).unwrap();
    s.copy_from_slice(b"ok");
    s.commit();
    assert_eq!(&*q.recv_ref().unwrap(), b"0123");
    assert_eq!(q.recv().unwrap(), b"ok");
    assert_eq!(q.stats().cancelled, 1);
    assert!(q.is_empty());
    // The cancelled slot is reused cleanly across several laps.
    for i in 0..20u8 {
        q.send(&[i]).unwrap();
        assert_eq!(q.recv().unwrap(), [i]);
    }
}

#[test]
fn counters_near_wrap() {
    for start in [u64::MAX - 5, u64::from(u32::MAX) - 5] {
        let q = QueueOptions::new(2, 8).start_position(start).anonymous().unwrap();
        for i in 0..50u64 {
            q.send(&i.to_le_bytes()).unwrap();
            if i % 2 == 1 {
                assert_eq!(q.recv().unwrap(), (i - 1).to_le_bytes());
                assert_eq!(q.recv().unwrap(), i.to_le_bytes());
            }
            assert!(q.len() <= 2);
        }
    }
}

#[test]
fn threads_conserve_messages() {
    let q = Arc::new(Queue::anonymous(8, 16).unwrap());
    let n = 20_000u64;
    let producers: Vec<_> = (0..2u64)
        .map(|p| {
            let q = q.clone();
            std::thread::spawn(move || {
                for i in 0..n {
                    q.send(&[p.to_le_bytes(), i.to_le_bytes()].concat()).unwrap();
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let q = q.clone();
            std::thread::spawn(move || {
                let mut last = [None::<u64>; 2];
                let mut got = 0u64;
                loop {
                    match q.recv() {
                        Ok(m) => {
                            let p = u64::from_le_bytes(m[..8].try_into().unwrap()) as usize;
                            let i = u64::from_le_bytes(m[8..].try_into().unwrap());
                            assert!(last[p].is_none_or(|l| l < i), "order broken");
                            last[p] = Some(i);
                            got += 1;
                        }
                        Err(_) => return got,
                    }
                }
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    q.close();
    let total: u64 = consumers.into_iter().map(|c| c.join().unwrap()).sum();
    assert_eq!(total, 2 * n);
}
