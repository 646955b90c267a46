//! loom models of the MPMC ring and its waiters: 2 producers / 1 consumer, 1 producer / 2
//! consumers, capacity 2 with wrap-around, counters started near the u64 and u32 wrap, a
//! cancelled reservation, and close waking a sleeper; and of the SPSC ring: producer /
//! consumer with close, capacity 2 with wrap-around (also near both wraps), and a producer
//! killed between stamp and head taken over while the consumer runs. Payloads live in loom cells, so a
//! payload access the slot protocol does not order is reported as a data race; a lost
//! wake-up shows as a deadlock. Run with
//! `RUSTFLAGS="--cfg ipc_loom" cargo test --release -p ipc-queue --test loom`.
#![cfg(ipc_loom)]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use ipc_queue::model::{Got, Model, SpscModel};
use loom::thread;

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(2);
    }
    b.check(f);
}

fn msg(g: Got) -> Vec<u8> {
    match g {
        Got::Msg(m) => m,
        Got::Closed => panic!("closed"),
    }
}

#[test]
fn two_producers_one_consumer() {
    model(|| {
        let q = Arc::new(Model::new(2, 2, 0));
        let ps: Vec<_> = (1..=2u8)
            .map(|p| {
                let q = q.clone();
                thread::spawn(move || assert!(q.send(u32::from(p), &[p, 0])))
            })
            .collect();
        let mut got = vec![msg(q.recv(9)), msg(q.recv(9))];
        for p in ps {
            p.join().unwrap();
        }
        got.sort();
        assert_eq!(got, vec![vec![1, 0], vec![2, 0]]);
        assert!(q.is_empty());
    });
}

#[test]
fn one_producer_two_consumers() {
    model(|| {
        let q = Arc::new(Model::new(2, 1, 0));
        let cs: Vec<_> = (0..2u32)
            .map(|c| {
                let q = q.clone();
                thread::spawn(move || msg(q.recv(10 + c)))
            })
            .collect();
        assert!(q.send(1, &[7]));
        assert!(q.send(1, &[8]));
        let mut got: Vec<_> = cs.into_iter().map(|c| c.join().unwrap()).collect();
        got.sort();
        assert_eq!(got, vec![vec![7], vec![8]]);
    });
}

fn wrap_model(start: u64) {
    model(move || {
        // Capacity 2, three messages: the producer laps the ring and must wait for the
        // consumer to free slot 0.
        let q = Arc::new(Model::new(2, 1, start));
        let p = {
            let q = q.clone();
            thread::spawn(move || {
                for i in 0..3u8 {
                    assert!(q.send(1, &[i]));
                }
            })
        };
        for i in 0..3u8 {
            assert_eq!(msg(q.recv(2)), vec![i]);
        }
        p.join().unwrap();
        assert!(q.is_empty());
    });
}

#[test]
fn capacity_two_with_wrap_around() {
    wrap_model(0);
}

#[test]
fn counters_started_near_u64_wrap() {
    wrap_model(u64::MAX - 1);
}

#[test]
fn counters_started_near_u32_wrap() {
    wrap_model(u64::from(u32::MAX));
}

#[test]
fn cancelled_reservation_is_skipped() {
    model(|| {
        let q = Arc::new(Model::new(2, 1, 0));
        let p = {
            let q = q.clone();
            thread::spawn(move || {
                assert!(q.cancel_one(1));
                assert!(q.send(1, &[5]));
            })
        };
        assert_eq!(msg(q.recv(2)), vec![5]);
        p.join().unwrap();
        assert!(q.try_recv(2).is_none());
    });
}

#[test]
fn close_wakes_a_sleeping_receiver() {
    model(|| {
        let q = Arc::new(Model::new(2, 1, 0));
        let c = {
            let q = q.clone();
            thread::spawn(move || q.recv(2))
        };
        q.close();
        assert_eq!(c.join().unwrap(), Got::Closed);
        assert!(!q.send(1, &[1]));
    });
}

// ---------------------------------------------------------------------------------------
// SPSC: the crate's SPSC algorithm (private indices, stamps, no CAS) over loom memory.

fn spsc_wrap_model(start: u64) {
    model(move || {
        // Capacity 2, three messages: the producer laps the ring and must wait for the
        // consumer to free slot 0 (its Release store of tail before our overwrite).
        let q = SpscModel::new(2, 1, start);
        let mut tx = q.sender();
        let mut rx = q.receiver();
        let p = thread::spawn(move || {
            for i in 0..3u8 {
                assert!(tx.send(&[i]));
            }
        });
        for i in 0..3u8 {
            assert_eq!(msg(rx.recv()), vec![i]);
        }
        p.join().unwrap();
        assert!(q.is_empty());
    });
}

#[test]
fn spsc_producer_consumer() {
    model(|| {
        let q = SpscModel::new(2, 2, 0);
        let mut tx = q.sender();
        let mut rx = q.receiver();
        let c = thread::spawn(move || (msg(rx.recv()), msg(rx.recv()), rx.recv()));
        assert!(tx.send(&[1, 2]));
        assert!(tx.send(&[3, 4]));
        q.close();
        let (a, b, end) = c.join().unwrap();
        assert_eq!((a, b, end), (vec![1, 2], vec![3, 4], Got::Closed));
    });
}

#[test]
fn spsc_capacity_two_with_wrap_around() {
    spsc_wrap_model(0);
}

#[test]
fn spsc_counters_started_near_u64_wrap() {
    spsc_wrap_model(u64::MAX - 1);
}

#[test]
fn spsc_counters_started_near_u32_wrap() {
    spsc_wrap_model(u64::from(u32::MAX));
}

/// A producer killed between its stamp and its head store; a new one takes the role over
/// while the consumer runs (it may take the stamped message before or after the takeover):
/// every message arrives exactly once, in order, and none is overwritten.
#[test]
fn spsc_killed_producer_is_taken_over() {
    model(|| {
        let q = SpscModel::new(2, 1, 0);
        let mut rx = q.receiver();
        let c = thread::spawn(move || (0..3).map(|_| msg(rx.recv())).collect::<Vec<_>>());
        let first = {
            let q = q.clone();
            thread::spawn(move || {
                let mut tx = q.sender();
                assert!(tx.send(&[0]));
                assert!(tx.send_and_die_after_stamp(&[1]));
            })
        };
        first.join().unwrap();
        let mut next = q.sender(); // the role's holder is dead: taken over
        assert!(next.send(&[2]));
        assert_eq!(c.join().unwrap(), vec![vec![0], vec![1], vec![2]]);
        assert!(q.is_empty());
    });
}
