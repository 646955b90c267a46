//! loom models of ipc-shm's state machines: the EventCount handshake (no lost wake-up
//! between a waiter's check and its sleep), under the futex emulation that makes
//! check-then-sleep atomic. Run with
//! `RUSTFLAGS="--cfg ipc_loom" cargo test --release -p ipc-shm --test loom`.
#![cfg(ipc_loom)]
#![allow(missing_docs, clippy::unwrap_used)]

use ipc_shm::sync::atomic::{AtomicU32, Ordering};
use ipc_shm::{Deadline, EventCount};
use loom::sync::Arc;
use loom::thread;

/// One notifier, one waiter: the waiter always sees the flag (a lost wake-up would leave it
/// asleep forever, which loom reports as a deadlock).
#[test]
fn notify_all_reaches_a_waiter() {
    loom::model(|| {
        let flag = Arc::new(AtomicU32::new(0));
        let ec = Arc::new(EventCount::new());
        let (f2, e2) = (flag.clone(), ec.clone());
        let t = thread::spawn(move || {
            // Release: pairs with the Acquire in the waiter's condition.
            f2.store(1, Ordering::Release);
            e2.notify_all();
        });
        assert!(ec.wait_until(|| flag.load(Ordering::Acquire) == 1, Deadline::NEVER));
        t.join().unwrap();
    });
}

/// Two waiters, notify_one twice: both wake.
#[test]
fn notify_one_twice_wakes_two_waiters() {
    loom::model(|| {
        let count = Arc::new(AtomicU32::new(0));
        let ec = Arc::new(EventCount::new());
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let (c, e) = (count.clone(), ec.clone());
                thread::spawn(move || {
                    // Take one token each.
                    // The condition must be exact: a failed CAS means "look again",
                    // not "no token" (that mistake is a lost wake-up loom finds).
                    e.wait_until(
                        || {
                            let mut n = c.load(Ordering::Acquire);
                            while n > 0 {
                                // AcqRel: pairs with the producer's fetch_add.
                                match c.compare_exchange(
                                    n,
                                    n - 1,
                                    Ordering::AcqRel,
                                    Ordering::Acquire,
                                ) {
                                    Ok(_) => return true,
                                    Err(actual) => n = actual,
                                }
                            }
                            false
                        },
                        Deadline::NEVER,
                    );
                })
            })
            .collect();
        for _ in 0..2 {
            // AcqRel: publishes the token to the waiter that takes it.
            count.fetch_add(1, Ordering::AcqRel);
            ec.notify_one();
        }
        for w in waiters {
            w.join().unwrap();
        }
        assert_eq!(count.load(Ordering::Acquire), 0);
    });
}

/// A ping-pong of two rounds through one event count.
#[test]
fn ping_pong() {
    loom::model(|| {
        let turn = Arc::new(AtomicU32::new(0));
        let ec = Arc::new(EventCount::new());
        let (t2, e2) = (turn.clone(), ec.clone());
        let other = thread::spawn(move || {
            for r in 0..2u32 {
                e2.wait_until(|| t2.load(Ordering::Acquire) == 2 * r + 1, Deadline::NEVER);
                t2.store(2 * r + 2, Ordering::Release);
                e2.notify_all();
            }
        });
        for r in 0..2u32 {
            ec.wait_until(|| turn.load(Ordering::Acquire) == 2 * r, Deadline::NEVER);
            turn.store(2 * r + 1, Ordering::Release);
            ec.notify_all();
        }
        other.join().unwrap();
    });
}

/// Flagged waiters: two waiters flag themselves in a state word (bit 0 "someone waits", bit 1
/// "done") and sleep on a ticket; the notifier sets "done" with one RMW and notifies only if
/// it found the flag. Both wake (a ticket taken after the flag would be a lost wake-up).
#[test]
fn flagged_waiters_are_woken_by_a_flagged_notify() {
    const WAITING: u32 = 1;
    const DONE: u32 = 2;
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b.check(|| {
        let word = Arc::new(AtomicU32::new(0));
        let ec = Arc::new(EventCount::new());
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let (w, e) = (word.clone(), ec.clone());
                thread::spawn(move || {
                    loop {
                        let ticket = e.prepare_wait();
                        // Acquire: pairs with the notifier's AcqRel swap.
                        let cur = w.load(Ordering::Acquire);
                        if cur & DONE != 0 {
                            return;
                        }
                        // Relaxed: the flag and the notifier's RMW are on this one word.
                        if cur & WAITING == 0
                            && w.compare_exchange(
                                cur,
                                cur | WAITING,
                                Ordering::Relaxed,
                                Ordering::Relaxed,
                            )
                            .is_err()
                        {
                            continue;
                        }
                        e.sleep(ticket, Deadline::NEVER);
                    }
                })
            })
            .collect();
        // AcqRel: publishes DONE and reads the flag in one RMW.
        if word.swap(DONE, Ordering::AcqRel) & WAITING != 0 {
            ec.notify_all_flagged();
        }
        for w in waiters {
            w.join().unwrap();
        }
    });
}

// ---- doorbells: the selector's registration on a SelectableEventCount ----------------------

use ipc_shm::SelectableEventCount;
use ipc_shm::event_count::bell::Doorbell;

/// A selector registers its doorbell, then checks; a notifier publishes, then notifies. No
/// lost wake-up between the check and the sleep: the selector saw the change, or its
/// doorbell was rung (a selector that then slept would be woken).
#[test]
fn a_registered_doorbell_is_rung_or_the_change_seen() {
    loom::model(|| {
        let flag = Arc::new(AtomicU32::new(0));
        let ec = Arc::new(SelectableEventCount::with_bells());
        let (f2, e2) = (flag.clone(), ec.clone());
        let notifier = thread::spawn(move || {
            // Release: pairs with the Acquire in the selector's check.
            f2.store(1, Ordering::Release);
            e2.notify_all();
        });
        let bell = Doorbell::new().unwrap();
        let slot = ec.register(bell.id()).expect("a free slot");
        // Acquire: pairs with the notifier's Release store.
        let seen = flag.load(Ordering::Acquire) == 1;
        notifier.join().unwrap();
        let rung = bell.drain();
        assert!(seen || rung, "lost wake-up: change not seen and doorbell not rung");
        assert!(ec.deregister(slot));
        assert_eq!(ec.sleeper_count(), 0);
    });
}

/// A dead selector's doorbell (gone) is cleared by a notifier while its owner's
/// deregistration races with it (the owner closed its socket first): exactly one of them takes
/// the count back, and the slot ends free.
#[test]
fn a_gone_doorbell_is_taken_back_exactly_once() {
    loom::model(|| {
        let ec = Arc::new(SelectableEventCount::with_bells());
        let bell = Doorbell::new().unwrap();
        let slot = ec.register(bell.id()).expect("a free slot");
        drop(bell); // its socket is gone: a ring finds nobody
        let e2 = ec.clone();
        let notifier = thread::spawn(move || e2.notify_all());
        let mine = ec.deregister(slot);
        notifier.join().unwrap();
        assert_eq!(ec.sleeper_count(), 0, "count taken back twice or never (owner: {mine})");
        assert_eq!(ec.bell_ids(), [0; 3]);
    });
}

/// Two selectors register on one word while a notifier notifies: each either saw the change
/// or was rung; both slots end free.
#[test]
fn two_selectors_and_a_notifier() {
    loom::model(|| {
        let flag = Arc::new(AtomicU32::new(0));
        let ec = Arc::new(SelectableEventCount::with_bells());
        let (f2, e2) = (flag.clone(), ec.clone());
        let other = thread::spawn(move || {
            let bell = Doorbell::new().unwrap();
            let slot = e2.register(bell.id()).expect("a free slot");
            // Acquire: as above.
            let seen = f2.load(Ordering::Acquire) == 1;
            (bell, slot, seen)
        });
        let bell = Doorbell::new().unwrap();
        let slot = ec.register(bell.id()).expect("a free slot");
        // Release: as above.
        flag.store(1, Ordering::Release);
        ec.notify_all();
        let (obell, oslot, oseen) = other.join().unwrap();
        assert!(oseen || obell.drain(), "the other selector lost its wake-up");
        assert!(ec.deregister(slot) && ec.deregister(oslot));
        assert_eq!(ec.sleeper_count(), 0);
        drop(bell);
    });
}
