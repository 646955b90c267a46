//! Cross-process suite of ipc-select: one selector over queues, a semaphore, an event, a pipe
//! and a child process, driven from other processes; a SIGKILLed selector; a producer killed
//! mid-send.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ipc_pipe::Connection;
use ipc_process::Process;
use ipc_queue::Queue;
use ipc_select::{Selector, wait_any};
use ipc_sem::{Event, Semaphore};
use ipc_shm::{Shared, Waitable};
use ipc_testkit::{Child, fault, fork, fork_named, send_line, wait_until_sleeping, watchdog};

const LINE: Duration = Duration::from_secs(20);

/// A process's first notify registers it for membarrier (milliseconds, once per process),
/// between its change and its wake-up: a selector that wakes for a liveness look in between
/// finds the change before the ring. Notify once before the measured part.
fn warm_up() {
    let q = Queue::anonymous(1, 8).unwrap();
    q.send(b"w").unwrap();
    q.try_recv().unwrap();
}

/// The doorbell ids registered on a source's waiter word, and its sleeper count.
fn registrations(w: &dyn Waitable) -> ([u32; 3], u32) {
    let ec = w.event_count().expect("a shared-memory source");
    (ec.bell_ids(), ec.sleeper_count())
}

/// Each source becomes ready in turn, made so by another process, and the selector (asleep
/// in its own process) reports that one and nothing else; it then consumes it.
#[test]
fn each_source_is_reported_alone_when_it_becomes_ready() {
    let _w = watchdog(Duration::from_secs(60), "ready in turn");
    warm_up();
    let qa = Queue::anonymous(4, 64).unwrap();
    let qb = Queue::anonymous(4, 64).unwrap();
    let sem = Shared::anonymous(Semaphore::new(0).unwrap()).unwrap();
    let ev = Shared::anonymous(Event::new()).unwrap();
    let exit_now = Shared::anonymous(Event::new()).unwrap();
    let (mut near, far) = ipc_pipe::pipe().unwrap();
    let mut selector = fork_named("selector", || {
        let mut far: Connection = far;
        // The grandchild whose exit is the sixth source.
        let mut kid = Process::fork(|| {
            exit_now.wait();
        })
        .unwrap();
        let mut sel = Selector::new().unwrap();
        for step in 0..6 {
            send_line("waiting");
            let got =
                sel.wait_timeout(&[&qa, &qb, &*sem, &*ev, &far, &kid], LINE).unwrap().to_vec();
            send_line(&format!("{got:?}"));
            match step {
                0 => assert_eq!(qa.try_recv().unwrap(), b"a"),
                1 => assert_eq!(qb.try_recv().unwrap(), b"b"),
                2 => sem.try_acquire().unwrap().expect("the permit").forget(),
                3 => ev.clear(),
                4 => assert_eq!(far.recv().unwrap(), b"p"),
                _ => kid.join().unwrap(),
            }
        }
        assert_eq!(sel.stats().late, 0, "{:?}", sel.stats());
        // Nothing is ready any more.
        assert_eq!(sel.try_wait(&[&qa, &qb, &*sem, &*ev, &far]).unwrap(), &[] as &[usize]);
    });
    for step in 0..6 {
        assert_eq!(selector.recv_line(LINE).unwrap(), "waiting");
        wait_until_sleeping(selector.pid());
        match step {
            0 => qa.send(b"a").unwrap(),
            1 => qb.send(b"b").unwrap(),
            2 => sem.release().unwrap(),
            3 => ev.set(),
            4 => near.send(b"p").unwrap(),
            _ => exit_now.set(),
        }
        assert_eq!(selector.recv_line(LINE).unwrap(), format!("[{step}]"), "step {step}");
    }
    selector.assert_success();
    // Every registration was withdrawn.
    for w in [&qa as &dyn Waitable, &qb, &*sem, &*ev] {
        assert_eq!(registrations(w), ([0; 3], 0));
    }
}

/// 10^5 events from two producer processes (messages on two small queues, permits on a
/// semaphore, messages on a pipe each), drained by one selector: every one arrives, and no
/// readiness was found only by a timed look (a lost wake-up would be).
#[test]
fn mixed_events_from_two_producers_lose_no_wake_up() {
    let total: u64 = fault::rounds(100_000, 1_000_000) as u64;
    let _w = watchdog(Duration::from_secs(120), "10^5 mixed events");
    warm_up();
    let qa = Queue::anonymous(8, 16).unwrap();
    let qb = Queue::anonymous(8, 16).unwrap();
    let sem = Shared::anonymous(Semaphore::new(0).unwrap()).unwrap();
    let mut rng = fault::seeded("mixed_events_from_two_producers_lose_no_wake_up");
    let per = total / 2;
    let mut ends = Vec::new();
    let mut producers: Vec<Child> = Vec::new();
    for p in 0..2u64 {
        let (mine, theirs) = ipc_pipe::pipe().unwrap();
        ends.push(mine);
        let seed = rng.next_u64();
        let (qa, qb, sem) = (&qa, &qb, &sem);
        producers.push(fork(move || {
            let mut theirs: Connection = theirs;
            warm_up();
            let mut rng = fault::Rng::new(seed);
            for i in 0..per {
                let m = (p << 32 | i).to_le_bytes();
                match rng.below(4) {
                    0 => qa.send(&m).unwrap(),
                    1 => qb.send(&m).unwrap(),
                    2 => sem.release().unwrap(),
                    _ => theirs.send(&m).unwrap(),
                }
                if rng.chance(1, 64) {
                    // Bursts and gaps, so the selector sleeps often.
                    std::thread::yield_now();
                }
            }
        }));
    }
    let mut sel = Selector::new().unwrap();
    let mut got = 0u64;
    let start = Instant::now();
    // A pipe whose producer finished and closed its end reads as ready (hung up) for good:
    // it leaves the set once drained.
    let mut open = [true; 2];
    while got < total {
        let mut srcs: Vec<&dyn Waitable> = vec![&qa, &qb, &*sem];
        let pipes: Vec<usize> = (0..2).filter(|&i| open[i]).collect();
        srcs.extend(pipes.iter().map(|&i| &ends[i] as &dyn Waitable));
        let ready = sel.wait_timeout(&srcs, LINE).unwrap().to_vec();
        drop(srcs);
        assert!(!ready.is_empty(), "nothing ready for {LINE:?} with {got} of {total} received");
        for k in ready {
            match k {
                0 => {
                    while qa.try_recv().is_ok() {
                        got += 1;
                    }
                }
                1 => {
                    while qb.try_recv().is_ok() {
                        got += 1;
                    }
                }
                2 => {
                    while let Some(p) = sem.try_acquire().unwrap() {
                        p.forget();
                        got += 1;
                    }
                }
                k => {
                    let i = pipes[k - 3];
                    while ends[i].poll(Some(Duration::ZERO)).unwrap() {
                        match ends[i].recv() {
                            Ok(_) => got += 1,
                            Err(ipc_pipe::Error::Disconnected { .. }) => {
                                open[i] = false;
                                break;
                            }
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
            }
        }
    }
    let st = sel.stats();
    let stats = (st.waits, st.late);
    for mut p in producers {
        p.assert_success();
    }
    eprintln!("{got} events in {:?}, {} waits, {} late", start.elapsed(), stats.0, stats.1);
    assert_eq!(got, total);
    assert!(stats.1 <= 2, "{} readiness found only by a timed look", stats.1);
}

/// Selectors SIGKILLed while asleep on a queue, a semaphore and an event leave their doorbells
/// in every slot and their counts in `sleepers`; the next notify of each finds the doorbells
/// gone, clears the slots and takes the counts back, so the plain path is free again and a
/// live selector registers and is woken as before.
#[test]
fn killed_selectors_leave_no_registration_behind() {
    let _w = watchdog(Duration::from_secs(60), "killed selectors");
    warm_up();
    let q = Queue::anonymous(4, 64).unwrap();
    let sem = Shared::anonymous(Semaphore::new(0).unwrap()).unwrap();
    let ev = Shared::anonymous(Event::new()).unwrap();
    // Three of them: every slot of every word taken.
    let mut dead: Vec<Child> = (0..3)
        .map(|_| {
            let (q, sem, ev) = (&q, &sem, &ev);
            fork_named("doomed selector", move || {
                let mut sel = Selector::new().unwrap();
                send_line("waiting");
                let _ = sel.wait(&[q, &**sem, &**ev]);
                Err::<(), &str>("woke up before the kill")
            })
        })
        .collect();
    for d in &mut dead {
        assert_eq!(d.recv_line(LINE).unwrap(), "waiting");
        wait_until_sleeping(d.pid());
    }
    // Every slot taken, and the announcements counted (a flagged waiter's state too).
    for (what, w) in [("queue", &q as &dyn Waitable), ("sem", &*sem), ("event", &*ev)] {
        let (ids, n) = registrations(w);
        assert!(ids.iter().all(|&i| i != 0), "{what}: {ids:?}");
        assert_eq!(n, 3, "{what}");
    }
    for mut d in dead {
        d.kill();
        d.assert_signaled(libc::SIGKILL);
    }
    // One notify each: the wake path finds the doorbells gone.
    q.send(b"m").unwrap();
    sem.release().unwrap();
    ev.set();
    for (what, w) in [("queue", &q as &dyn Waitable), ("sem", &*sem), ("event", &*ev)] {
        assert_eq!(registrations(w), ([0; 3], 0), "{what}: the dead selectors' registrations");
    }
    assert!(!q.event_count().unwrap().has_sleepers(), "the plain path pays nothing again");
    // A live selector in another process is woken by the next change of each.
    q.try_recv().unwrap();
    sem.try_acquire().unwrap().unwrap().forget();
    ev.clear();
    let mut live = fork_named("live selector", || {
        let mut sel = Selector::new().unwrap();
        for _ in 0..3 {
            send_line("waiting");
            let got = sel.wait_timeout(&[&q, &*sem, &*ev], LINE).unwrap().to_vec();
            send_line(&format!("{got:?}"));
            match got.as_slice() {
                [0] => drop(q.try_recv().unwrap()),
                [1] => sem.try_acquire().unwrap().unwrap().forget(),
                [2] => ev.clear(),
                other => panic!("reported {other:?}"),
            }
        }
        assert_eq!(sel.stats().late, 0, "{:?}", sel.stats());
    });
    for step in 0..3 {
        assert_eq!(live.recv_line(LINE).unwrap(), "waiting");
        wait_until_sleeping(live.pid());
        match step {
            0 => q.send(b"n").unwrap(),
            1 => sem.release().unwrap(),
            _ => ev.set(),
        }
        assert_eq!(live.recv_line(LINE).unwrap(), format!("[{step}]"));
    }
    live.assert_success();
}

/// A producer killed inside its reserve-commit window leaves a claimed slot ahead of a live
/// producer's message: the selector's liveness look (as a blocking `recv`'s) skips the dead
/// slot and reports the queue ready within the blocking calls' bound.
#[test]
fn a_producer_killed_mid_send_wakes_the_selector_with_recovery() {
    const { assert!(ipc_shm::crash::ENABLED) };
    let _w = watchdog(Duration::from_secs(60), "producer killed mid-send");
    warm_up();
    for point in ["queue.after_reserve", "queue.mid_copy", "queue.before_commit"] {
        let q = Queue::anonymous(4, 4096).unwrap();
        let mut sel_child = fork_named("selector", || {
            let mut sel = Selector::new().unwrap();
            send_line("waiting");
            // Level-triggered: the look that recovers the dead slot may report the queue
            // before the live message is in it (then `try_recv` says Empty once).
            let mut reports = 0;
            loop {
                let got = sel.wait_timeout(&[&q], LINE).unwrap().to_vec();
                assert_eq!(got, [0]);
                reports += 1;
                match q.try_recv() {
                    Ok(m) => break assert_eq!(m, b"live"),
                    Err(ipc_queue::TryRecvError::Empty) if reports < 3 => {}
                    Err(e) => panic!("after {reports} reports: {e}"),
                }
            }
            send_line("got it");
        });
        assert_eq!(sel_child.recv_line(LINE).unwrap(), "waiting");
        wait_until_sleeping(sel_child.pid());
        let mut dead = fork_named(point, || {
            ipc_shm::crash::arm(point, 1);
            q.send(&[7u8; 4096]).unwrap();
            Err::<(), String>(format!("crash point {point} did not fire"))
        });
        dead.assert_signaled(libc::SIGKILL);
        let died = Instant::now();
        // The live producer's message sits behind the dead one's claimed slot.
        q.send(b"live").unwrap();
        let _ = sel_child.recv_line(LINE).unwrap();
        let blocked = died.elapsed();
        sel_child.assert_success();
        eprintln!("{point}: selector reported the queue {blocked:?} after the producer died");
        assert_eq!(q.stats().abandoned, 1, "{point}");
        assert!(blocked < Duration::from_millis(500), "{point}: {blocked:?}");
    }
}

/// Every producer of a queue dead (nothing in flight): the selector reports it ready, and
/// `senders_gone` says why.
#[test]
fn a_queue_whose_producers_all_died_is_reported_ready() {
    let _w = watchdog(Duration::from_secs(60), "producers gone");
    let q = Queue::anonymous(4, 64).unwrap();
    let mut p = fork(|| {
        q.send(b"only").unwrap();
    });
    p.assert_success();
    assert_eq!(q.try_recv().unwrap(), b"only");
    let t = Instant::now();
    let ready = wait_any(&[&q], Some(LINE)).unwrap();
    assert_eq!(ready, [0]);
    assert!(q.senders_gone());
    assert!(t.elapsed() < Duration::from_millis(500), "{:?}", t.elapsed());
}

// ---------------------------------------------------------------------------------------
// tokio futures

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// 10^5 messages from two producer processes into one tokio task's `recv_async`: every one
/// arrives, in order per producer.
#[test]
fn async_recv_takes_every_message_from_other_processes() {
    let total: u64 = fault::rounds(100_000, 1_000_000) as u64;
    let _w = watchdog(Duration::from_secs(120), "async 10^5");
    warm_up();
    let q = Queue::anonymous(64, 16).unwrap();
    let per = total / 2;
    let producers: Vec<Child> = (0..2u64)
        .map(|p| {
            let q = &q;
            fork(move || {
                warm_up();
                for i in 0..per {
                    q.send(&(p << 32 | i).to_le_bytes()).unwrap();
                }
            })
        })
        .collect();
    let start = Instant::now();
    let next = runtime().block_on(async {
        let mut next = [0u64; 2];
        for _ in 0..total {
            let m = q.recv_async().await.unwrap();
            let v = u64::from_le_bytes(m.try_into().unwrap());
            let (p, i) = ((v >> 32) as usize, v & 0xffff_ffff);
            assert_eq!(i, next[p], "producer {p} out of order");
            next[p] += 1;
        }
        next
    });
    for mut p in producers {
        p.assert_success();
    }
    eprintln!("{total} messages in {:?}", start.elapsed());
    assert_eq!(next, [per, per]);
    assert!(q.is_empty());
    assert_eq!(registrations(&q), ([0; 3], 0));
}

/// Run `fut` until it completes (`Some`) or is dropped while pending (`None`): after `polls`
/// polls that found it pending, or (`by_timer`) after 1 ms asleep.
async fn cancel_after<F: std::future::Future>(
    fut: F,
    polls: u64,
    by_timer: bool,
) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    if by_timer {
        return tokio::time::timeout(Duration::from_millis(1), fut).await.ok();
    }
    let mut n = 0;
    std::future::poll_fn(|cx| match fut.as_mut().poll(cx) {
        std::task::Poll::Ready(v) => std::task::Poll::Ready(Some(v)),
        std::task::Poll::Pending if n >= polls => std::task::Poll::Ready(None),
        std::task::Poll::Pending => {
            n += 1;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await
}

/// Counters shared with a child.
#[repr(C)]
struct Counters([AtomicU64; 3]);

// SAFETY: atomics only, any bits valid, all-zero valid.
unsafe impl ipc_shm::ShmSafe for Counters {}

/// 10^4 pending `acquire_async` / `recv_async` futures cancelled at random moments while another
/// process releases permits and sends messages: no permit and no message is lost (what the
/// futures took plus what is left is exactly what was given), and no registration stays.
#[test]
fn cancelled_futures_lose_no_permit_and_no_message() {
    let rounds = fault::rounds(10_000, 100_000);
    let _w = watchdog(Duration::from_secs(120), "cancelled futures");
    warm_up();
    let q = Queue::anonymous(8, 16).unwrap();
    let sem = Shared::anonymous(Semaphore::new(0).unwrap()).unwrap();
    let mut rng = fault::seeded("cancelled_futures_lose_no_permit_and_no_message");
    let seed = rng.next_u64();
    // [stop, permits given, messages given]
    let ctl =
        Shared::anonymous(Counters([AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)]))
            .unwrap();
    let mut producer = fork(|| {
        warm_up();
        let mut rng = fault::Rng::new(seed);
        let c = &ctl.0;
        while c[0].load(Ordering::Acquire) == 0 {
            // At most a few permits ahead of the takers, so most futures wait.
            if rng.chance(1, 2) {
                if sem.value() < 4 {
                    sem.release().unwrap();
                    c[1].fetch_add(1, Ordering::Release);
                }
            } else if q.try_send(&[0u8; 8]).is_ok() {
                c[2].fetch_add(1, Ordering::Release);
            }
            std::thread::sleep(Duration::from_micros(rng.below(300)));
        }
    });
    let (mut took_permits, mut took_msgs, mut cancelled) = (0u64, 0u64, 0u64);
    runtime().block_on(async {
        // Until 10^4 futures were cancelled while pending: after 0-3 more polls (woken at
        // once), or by a timer while asleep in the reactor.
        while cancelled < rounds as u64 {
            let polls = rng.below(4);
            let by_timer = rng.chance(1, 4);
            if rng.chance(1, 2) {
                match cancel_after(sem.acquire_async(), polls, by_timer).await {
                    Some(p) => {
                        p.unwrap().forget();
                        took_permits += 1;
                    }
                    None => cancelled += 1,
                }
            } else {
                match cancel_after(q.recv_async(), polls, by_timer).await {
                    Some(m) => {
                        m.unwrap();
                        took_msgs += 1;
                    }
                    None => cancelled += 1,
                }
            }
        }
    });
    ctl.0[0].store(1, Ordering::Release);
    producer.assert_success();
    let (given_permits, given_msgs) =
        (ctl.0[1].load(Ordering::Acquire), ctl.0[2].load(Ordering::Acquire));
    let left_permits = u64::from(sem.value());
    let mut left_msgs = 0;
    while q.try_recv().is_ok() {
        left_msgs += 1;
    }
    eprintln!(
        "{} futures: {took_permits} permits and {took_msgs} messages taken, {cancelled} cancelled",
        took_permits + took_msgs + cancelled
    );
    assert!(cancelled > 0, "no future was cancelled: the test is not testing");
    assert_eq!(took_permits + left_permits, given_permits, "permits");
    assert_eq!(took_msgs + left_msgs, given_msgs, "messages");
    for w in [&q as &dyn Waitable, &*sem] {
        assert_eq!(registrations(w), ([0; 3], 0));
    }
}

/// A pending `recv_async` ends with `Closed` when another process closes the queue, and with
/// `Disconnected` when its only producer dies; a pending `wait_async` ends when another
/// process sets the event.
#[test]
fn close_death_and_set_end_pending_futures() {
    let _w = watchdog(Duration::from_secs(60), "close and death wake futures");
    let rt = runtime();
    // The other process acts only once this thread sleeps in the runtime's poll: the future
    // is pending, so what ends it is the wake under test, not a first look that finds it.
    let me = rustix::thread::gettid().as_raw_nonzero().get() as u32;
    let q = Queue::anonymous(4, 16).unwrap();
    let mut closer = fork(|| {
        ipc_testkit::wait_until_sleeping(me);
        q.close();
    });
    let r = rt.block_on(async { tokio::time::timeout(LINE, q.recv_async()).await }).unwrap();
    assert_eq!(r, Err(ipc_queue::RecvError::Closed));
    closer.assert_success();

    let q = Queue::anonymous(4, 16).unwrap();
    let mut only = fork(|| {
        q.send(b"1").unwrap();
        send_line("sent");
        let _ = ipc_testkit::recv_line(LINE);
    });
    assert_eq!(only.recv_line(LINE).unwrap(), "sent");
    assert_eq!(rt.block_on(q.recv_async()).unwrap(), b"1");
    only.kill();
    only.assert_signaled(libc::SIGKILL);
    let t = Instant::now();
    let r = rt.block_on(async { tokio::time::timeout(LINE, q.recv_async()).await }).unwrap();
    assert_eq!(r, Err(ipc_queue::RecvError::Disconnected));
    assert!(t.elapsed() < Duration::from_millis(500), "{:?}", t.elapsed());

    let ev = Shared::anonymous(Event::new()).unwrap();
    let mut setter = fork(|| {
        ipc_testkit::wait_until_sleeping(me); // the future is pending, as above
        ev.set();
    });
    rt.block_on(async { tokio::time::timeout(LINE, ev.wait_async()).await }).unwrap();
    setter.assert_success();
}

/// The other queue sources: an SPSC receiver (readable) and an SPSC sender and an MPMC
/// queue's `writable()` (room), made ready from another process; and an SPSC `recv_async` /
/// `send_async` pair across processes.
#[test]
fn spsc_and_writable_sources() {
    let _w = watchdog(Duration::from_secs(60), "spsc and writable");
    warm_up();
    let spsc = ipc_queue::SpscQueue::anonymous(2, 16).unwrap();
    let full = Queue::anonymous(1, 16).unwrap();
    full.send(b"x").unwrap();
    let back = ipc_queue::SpscQueue::anonymous(1, 16).unwrap();
    let mut peer = fork_named("peer", || {
        let mut tx = spsc.sender().unwrap();
        let mut rx = back.receiver().unwrap();
        send_line("ready");
        assert_eq!(ipc_testkit::recv_line(LINE).as_deref(), Some("send"));
        tx.send(b"s").unwrap();
        assert_eq!(ipc_testkit::recv_line(LINE).as_deref(), Some("drain"));
        assert_eq!(full.try_recv().unwrap(), b"x");
        assert_eq!(ipc_testkit::recv_line(LINE).as_deref(), Some("take"));
        assert_eq!(rx.recv_timeout(LINE).unwrap(), b"1"); // makes room for a second one
        // The async pair: one message each way.
        let rt = runtime();
        rt.block_on(async {
            tx.send_async(b"a").await.unwrap();
            assert_eq!(rx.recv_async().await.unwrap(), b"2");
        });
    });
    assert_eq!(peer.recv_line(LINE).unwrap(), "ready");
    let mut rx = spsc.receiver().unwrap();
    let mut tx = back.sender().unwrap();
    tx.send(b"1").unwrap(); // `back` (capacity 1) is full: its sender is not writable
    let mut sel = Selector::new().unwrap();
    assert_eq!(sel.try_wait(&[&rx, &full.writable(), &tx]).unwrap(), &[] as &[usize]);
    peer.send_line("send");
    assert_eq!(sel.wait_timeout(&[&rx, &full.writable(), &tx], LINE).unwrap(), [0]);
    assert_eq!(rx.try_recv().unwrap(), b"s");
    peer.send_line("drain");
    assert_eq!(sel.wait_timeout(&[&rx, &full.writable(), &tx], LINE).unwrap(), [1]);
    peer.send_line("take");
    // The peer may already have sent "a" too (then the receiver is ready as well).
    let got = sel.wait_timeout(&[&rx, &tx], LINE).unwrap().to_vec();
    assert!(got.contains(&1), "{got:?}");
    let rt = runtime();
    rt.block_on(async {
        assert_eq!(rx.recv_async().await.unwrap(), b"a");
        tx.send_async(b"2").await.unwrap();
    });
    peer.assert_success();
    assert_eq!(sel.stats().late, 0, "{:?}", sel.stats());
}
