//! The queue over memory an adversary rewrites: random bytes anywhere in the body between
//! operations, lengths flipped while a receiver copies, impossible indices and slot states.
//! Every outcome must be a message no longer than the maximum, or a typed error: never a
//! panic, an out-of-bounds copy or a huge allocation.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ipc_queue::{Error, Queue, QueueOptions, SpscQueue, TryRecvError, TrySendError};
use proptest::prelude::*;

/// Body offset in the segment (64-byte header, body aligned to 128) and layout constants.
const BODY: usize = 128;
const SLOTS: usize = BODY + ipc_queue::ring::CTRL_LEN;

#[derive(Debug, Clone)]
enum Op {
    Send(usize),
    Recv,
    ReserveCommit(usize),
    ReserveDrop(usize),
    RecvRef,
    Scribble { at: usize, bytes: Vec<u8> },
    Word { at: usize, value: u32 },
}

fn op(body_len: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..80).prop_map(Op::Send),
        Just(Op::Recv),
        (0usize..80).prop_map(Op::ReserveCommit),
        (0usize..80).prop_map(Op::ReserveDrop),
        Just(Op::RecvRef),
        (0..body_len, proptest::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Op::Scribble { at, bytes }),
        (0..body_len / 4, prop_oneof![any::<u32>(), Just(u32::MAX), Just(0), 0u32..8])
            .prop_map(|(w, value)| Op::Word { at: w * 4, value }),
    ]
}

const MAX: usize = 64;

/// A second mapping of an anonymous queue's memory, as a peer process has: what the adversary
/// writes through it changes the queue's bytes under every handle, the way another process
/// would, and safe code can write plain bytes through an exclusive mapping.
fn peer_mapping(shm: &ipc_shm::Shm) -> ipc_shm::Shm {
    let fd = std::os::fd::AsFd::as_fd(shm).try_clone_to_owned().unwrap();
    ipc_shm::Shm::from_fd(fd).unwrap()
}

fn check_len(len: usize) -> Result<(), TestCaseError> {
    prop_assert!(len <= MAX, "a message of {} bytes from a queue of {}-byte messages", len, MAX);
    Ok(())
}

fn run(q: &Queue, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut peer = peer_mapping(q.shm());
    let body_len = peer.len() - BODY;
    for op in ops {
        match op {
            Op::Send(n) => match q.try_send(&vec![7u8; *n]) {
                Ok(()) | Err(TrySendError::Full | TrySendError::TooLong { .. }) => {}
                Err(TrySendError::Closed | TrySendError::Corrupted(_)) => {}
                Err(TrySendError::Unregistered) => prop_assert!(false, "registered"),
            },
            Op::Recv => match q.try_recv() {
                Ok(m) => check_len(m.len())?,
                Err(TryRecvError::Empty | TryRecvError::Closed | TryRecvError::Corrupted(_)) => {}
                Err(TryRecvError::Unregistered) => prop_assert!(false, "registered"),
            },
            Op::ReserveCommit(n) => {
                if let Ok(mut s) = q.try_reserve(*n) {
                    prop_assert_eq!(s.len(), *n);
                    s.fill(1);
                    s.commit();
                }
            }
            Op::ReserveDrop(n) => drop(q.try_reserve(*n)),
            Op::RecvRef => {
                if let Ok(m) = q.try_recv_ref() {
                    check_len(m.len())?;
                    let _sum: u32 = m.iter().map(|&b| u32::from(b)).sum();
                }
            }
            Op::Scribble { at, bytes } => {
                let at = (*at).min(body_len.saturating_sub(bytes.len()));
                peer.write_at(BODY + at, bytes).unwrap();
            }
            Op::Word { at, value } => {
                let _ = peer.write_at(BODY + (*at & !3), &value.to_ne_bytes());
            }
        }
        let _ = (q.len(), q.is_empty(), q.is_full(), q.stats());
        prop_assert!(q.len() <= q.capacity());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn mpmc_over_rewritten_memory_gives_typed_errors_only(
        ops in proptest::collection::vec(op(1024 + 4 * 128), 1..60),
        start in prop_oneof![Just(0u64), Just(u64::MAX - 2), any::<u64>()],
    ) {
        let q = QueueOptions::new(4, MAX).start_position(start).anonymous().unwrap();
        run(&q, &ops)?;
    }

    #[test]
    fn spsc_over_rewritten_memory_gives_typed_errors_only(
        ops in proptest::collection::vec((0usize..6, 0..1024usize + 4 * 80, any::<u32>()), 1..60),
    ) {
        let q = SpscQueue::anonymous(4, MAX).unwrap();
        let mut tx = q.sender().unwrap();
        let mut rx = q.receiver().unwrap();
        let mut peer = peer_mapping(q.shm());
        for (kind, at, value) in ops {
            match kind {
                0 => { let _ = tx.try_send(&[3u8; 40]); }
                1 => if let Ok(m) = rx.try_recv() { check_len(m.len())?; },
                2 => if let Ok(m) = rx.try_recv_ref() { check_len(m.len())?; },
                3 => if let Ok(mut s) = tx.try_reserve(10) { s.fill(2); s.commit(); },
                _ => {
                    let _ = peer.write_at(BODY + (at & !3), &value.to_ne_bytes());
                }
            }
            prop_assert!(q.len() <= q.capacity());
        }
    }

    #[test]
    fn corrupted_config_is_refused_at_open(word in 0usize..16, value in any::<u32>()) {
        let name = ipc_testkit::unique_name("adv-config");
        let _q = Queue::create(&name, 4, MAX).unwrap();
        let mut peer = ipc_shm::Shm::open(&name).unwrap();
        let mut old = [0u8; 4];
        peer.read_at(BODY + word * 4, &mut old).unwrap();
        let old = u32::from_ne_bytes(old);
        peer.write_at(BODY + word * 4, &value.to_ne_bytes()).unwrap();
        match Queue::open(&name) {
            Ok(other) => {
                // Only harmless words may pass: unchanged, the typed-queue tag (8, 9: checked
                // by TypedQueue, not by the bytes view), unused (10..16), or an element size
                // equal to the message size.
                let harmless = value == old || word >= 8 || (word == 7 && value as usize == MAX);
                prop_assert!(harmless, "word {} = {:#x} accepted", word, value);
                prop_assert_eq!(other.capacity(), 4);
            }
            Err(Error::Corrupted { .. }) => {}
            Err(e) => prop_assert!(false, "untyped failure {e:?}"),
        }
    }
}

/// A flipper thread rewrites every slot's length (huge, zero, max+1) and slot word while
/// the main thread sends and receives: the lengths are loaded once and checked, so nothing
/// longer than the maximum is ever copied or returned.
#[test]
fn lengths_flipped_after_validation_never_escape() {
    let q = Arc::new(Queue::anonymous(4, MAX).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let flipper = {
        let mut peer = peer_mapping(q.shm());
        let stop = stop.clone();
        std::thread::spawn(move || {
            let stride = 128; // 16 + 64 rounded to a cache line
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                for i in 0..4 {
                    let len = [u32::MAX, 0, MAX as u32 + 1, 1 << 30][(n % 4) as usize];
                    peer.write_at(SLOTS + i * stride + 8, &len.to_ne_bytes()).unwrap();
                }
                if n.is_multiple_of(64) {
                    // Now and then an impossible slot state or index as well.
                    let at = SLOTS + (n as usize % 4) * stride + 4;
                    peer.write_at(at, &n.rotate_left(7).to_ne_bytes()).unwrap();
                }
                n = n.wrapping_add(1);
            }
        })
    };
    let (mut ok, mut corrupt) = (0u32, 0u32);
    let start = std::time::Instant::now();
    let mut i = 0u32;
    // At least 20k rounds, and until the flipper (a thread the scheduler may starve on a
    // loaded machine) has hit a few times; bounded by 20 s.
    while (i < 20_000 || corrupt < 10) && start.elapsed() < std::time::Duration::from_secs(20) {
        i += 1;
        let _ = q.try_send(&i.to_le_bytes());
        match q.try_recv() {
            Ok(m) => {
                assert!(m.len() <= MAX);
                ok += 1;
            }
            Err(TryRecvError::Corrupted(_)) => corrupt += 1,
            Err(_) => {}
        }
        if let Ok(m) = q.try_recv_ref() {
            assert!(m.len() <= MAX);
        }
    }
    stop.store(true, Ordering::Relaxed);
    flipper.join().unwrap();
    eprintln!("flipper: {ok} messages received, {corrupt} corrupt lengths caught");
    assert!(corrupt > 0, "the flipper never hit: the test does not test");
}

/// Garbage over the whole body: sending and receiving agree that the queue is corrupted (a
/// garbage closed flag is not "closed").
#[test]
fn garbage_makes_send_and_recv_both_say_corrupted() {
    for flavour in ["mpmc", "spsc"] {
        let (shm_fd, mut ops): (_, Box<dyn FnMut() -> (String, String)>) = if flavour == "mpmc" {
            let q = Queue::anonymous(4, MAX).unwrap();
            let fd = std::os::fd::AsFd::as_fd(q.shm()).try_clone_to_owned().unwrap();
            (
                fd,
                Box::new(move || {
                    (format!("{:?}", q.try_send(b"x")), format!("{:?}", q.try_recv()))
                }),
            )
        } else {
            let q = SpscQueue::anonymous(4, MAX).unwrap();
            let fd = std::os::fd::AsFd::as_fd(q.shm()).try_clone_to_owned().unwrap();
            let (mut tx, mut rx) = (q.sender().unwrap(), q.receiver().unwrap());
            (
                fd,
                Box::new(move || {
                    (format!("{:?}", tx.try_send(b"x")), format!("{:?}", rx.try_recv()))
                }),
            )
        };
        let mut peer = ipc_shm::Shm::from_fd(shm_fd).unwrap();
        let body = vec![0xAB; peer.len() - BODY];
        // Leave the config block (read once at open) and scribble over everything after it.
        peer.write_at(BODY + 128, &body[128..]).unwrap();
        let (sent, got) = ops();
        assert!(sent.contains("Corrupted"), "{flavour}: try_send said {sent}");
        assert!(got.contains("Corrupted"), "{flavour}: try_recv said {got}");
    }
}

/// A claimed slot whose owner field is no owner id at all (zero, or generation 0: the registry
/// never hands those out) is `Unknown` to liveness: it is never recovered (taking it could hand
/// a live writer's slot to someone else), so receivers and senders wait for it until their
/// deadline, the outcome the locks and semaphores give a garbage owner word. (A well-formed id
/// whose slot now holds another generation is a dead owner, recovered like any other.)
#[test]
fn a_claim_with_a_garbage_owner_id_is_waited_for_never_recovered() {
    use ipc_queue::ring::{READING, WRITING, pack};
    let wait = std::time::Duration::from_millis(150);
    for owner in [0, 0x3ff0] {
        // A producer "writing" position 0: the receiver waits for it.
        let q = Queue::anonymous(2, MAX).unwrap();
        let mut peer = peer_mapping(q.shm());
        peer.write_at(SLOTS, &pack(0, WRITING, owner).to_le_bytes()).unwrap();
        assert!(matches!(q.try_recv(), Err(TryRecvError::Empty)), "owner {owner:#x}");
        let got = q.recv_timeout(wait);
        assert!(
            got.is_err() && format!("{got:?}").contains("Timeout"),
            "owner {owner:#x}: {got:?}"
        );
        let mut word = [0u8; 8];
        peer.read_at(SLOTS, &mut word).unwrap();
        assert_eq!(u64::from_le_bytes(word), pack(0, WRITING, owner), "the claim was taken over");

        // A consumer "reading" position 0 of a full queue: the sender of position 2 waits.
        let q = Queue::anonymous(2, MAX).unwrap();
        q.try_send(b"a").unwrap();
        q.try_send(b"b").unwrap();
        let mut peer = peer_mapping(q.shm());
        peer.write_at(SLOTS, &pack(0, READING, owner).to_le_bytes()).unwrap();
        // Position 0 is "being read" by the garbage owner: a receiver takes position 1.
        assert_eq!(q.try_recv().unwrap(), b"b", "owner {owner:#x}");
        let sent = q.send_timeout(b"c", wait);
        assert!(format!("{sent:?}").contains("Timeout"), "owner {owner:#x}: {sent:?}");
        peer.read_at(SLOTS, &mut word).unwrap();
        assert_eq!(u64::from_le_bytes(word), pack(0, READING, owner), "the claim was taken over");
    }
}
