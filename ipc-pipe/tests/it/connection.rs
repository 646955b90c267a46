//! Connections and simplex pipes in one process (threads as the peers): every size, the
//! try/timeout forms, limits, poisoning, stalled and cut frames.

use std::io::{IoSlice, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use ipc_pipe::{Connection, Error, pipe, simplex};

const SIZES: &[usize] = &[0, 1, 7, 100, 4095, 16383, 16384, 65535, 65536, 70_000, 1 << 20, 3 << 20];

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

#[test]
fn messages_of_every_size_both_ways() {
    let (mut a, mut b) = pipe().unwrap();
    let t = std::thread::spawn(move || {
        for (i, &n) in SIZES.iter().enumerate() {
            let m = b.recv().unwrap();
            assert_eq!(m, pattern(n, i as u8), "size {n}");
            b.send(&m).unwrap();
        }
        b
    });
    for (i, &n) in SIZES.iter().enumerate() {
        a.send(&pattern(n, i as u8)).unwrap();
        assert_eq!(a.recv().unwrap(), pattern(n, i as u8));
    }
    t.join().unwrap();
}

#[test]
fn vectored_sends_and_recv_into_reuse() {
    let (mut a, mut b) = pipe().unwrap();
    let parts = [b"head".as_slice(), b"", &pattern(100_000, 3), b"tail"];
    let slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
    let whole = parts.concat();
    let t = std::thread::spawn(move || {
        let mut buf = Vec::new();
        for _ in 0..3 {
            let n = b.recv_into(&mut buf).unwrap();
            assert_eq!(n, buf.len());
            b.send(&buf).unwrap();
        }
    });
    for _ in 0..3 {
        a.send_vectored(&slices).unwrap();
        assert_eq!(a.recv().unwrap(), whole);
    }
    t.join().unwrap();
    // Many slices (more than one sendmsg takes) still make one frame.
    let (mut a, mut b) = pipe().unwrap();
    let many: Vec<[u8; 1]> = (0..3000u32).map(|i| [i as u8]).collect();
    let slices: Vec<IoSlice<'_>> = many.iter().map(|p| IoSlice::new(p)).collect();
    a.send_vectored(&slices).unwrap();
    assert_eq!(b.recv().unwrap(), many.concat());
}

#[test]
fn try_recv_recv_timeout_and_poll() {
    let (mut a, mut b) = pipe().unwrap();
    assert_eq!(b.try_recv().unwrap(), None);
    assert!(!b.poll(Some(Duration::ZERO)).unwrap());
    let t0 = Instant::now();
    let e = b.recv_timeout(Duration::from_millis(50)).unwrap_err();
    assert!(matches!(e, Error::Timeout { partial: false, .. }), "{e}");
    assert!(t0.elapsed() >= Duration::from_millis(50));
    a.send(b"x").unwrap();
    assert!(b.poll(Some(Duration::from_secs(5))).unwrap());
    assert!(b.poll(None).unwrap());
    assert_eq!(b.try_recv().unwrap().as_deref(), Some(&b"x"[..]));
    a.try_send(b"y").unwrap();
    assert_eq!(b.recv_timeout(Duration::from_secs(5)).unwrap(), b"y");
    drop(a);
    assert!(b.poll(Some(Duration::ZERO)).unwrap(), "end of stream counts as ready");
    assert!(matches!(b.try_recv(), Err(Error::Disconnected { .. })));
    assert!(matches!(b.recv(), Err(Error::Disconnected { .. })));
}

#[test]
fn max_message_is_enforced_on_both_sides() {
    let (mut a, mut b) = pipe().unwrap();
    a.set_max_message(10);
    let e = a.send(&[0; 11]).unwrap_err();
    assert!(matches!(e, Error::MessageTooLarge { len: 11, max: 10, .. }), "{e}");
    assert!(!a.is_poisoned(), "a refused send writes nothing and poisons nothing");
    a.set_max_message(1000);
    a.send(&[1; 11]).unwrap();
    b.set_max_message(10);
    let e = b.recv().unwrap_err();
    assert!(matches!(e, Error::MessageTooLarge { len: 11, max: 10, .. }), "{e}");
    assert!(b.is_poisoned());
    assert!(matches!(b.recv(), Err(Error::Poisoned { .. })));
    assert!(matches!(b.send(b"x"), Err(Error::Poisoned { .. })));
    assert!(e.to_string().contains("recv on pipe connection"), "{e}");
}

#[test]
fn a_stalled_partial_frame_hits_the_deadline_and_can_resume() {
    let (mut raw, ours) = UnixStream::pair().unwrap();
    let mut c = Connection::from(ours);
    raw.write_all(&100i32.to_be_bytes()).unwrap();
    raw.write_all(&[5; 10]).unwrap();
    let e = c.recv_timeout(Duration::from_millis(100)).unwrap_err();
    assert!(matches!(e, Error::Timeout { partial: true, .. }), "{e}");
    // A blocking recv is bound by the frame timeout once a frame has started.
    c.set_frame_timeout(Some(Duration::from_millis(200)));
    let t0 = Instant::now();
    let e = c.recv().unwrap_err();
    let waited = t0.elapsed();
    assert!(matches!(e, Error::Timeout { partial: true, .. }), "{e}");
    assert!(waited < Duration::from_secs(5), "blocking recv waited {waited:?}");
    eprintln!("stalled frame: blocking recv returned after {waited:?} (frame timeout 200 ms)");
    // Not poisoned: the rest arrives, the frame completes.
    raw.write_all(&[5; 90]).unwrap();
    assert_eq!(c.recv_timeout(Duration::from_secs(5)).unwrap(), vec![5; 100]);
}

#[test]
fn a_peer_closing_mid_frame_is_unexpected_eof_then_poisoned() {
    let (mut raw, ours) = UnixStream::pair().unwrap();
    let mut c = Connection::from(ours);
    raw.write_all(&200_000i32.to_be_bytes()).unwrap();
    raw.write_all(&[1; 70_000]).unwrap();
    drop(raw);
    match c.recv().unwrap_err() {
        Error::UnexpectedEof { received, expected, .. } => {
            assert_eq!((received, expected), (70_004, 200_004));
        }
        e => panic!("{e}"),
    }
    assert!(matches!(c.recv(), Err(Error::Poisoned { .. })));
}

#[test]
fn send_timeout_returns_at_its_deadline_when_the_peer_stops_reading() {
    let (mut a, _b) = pipe().unwrap();
    // Fill the socket with whole small messages until one does not fit.
    let small = vec![0u8; 1000];
    let mut sent = 0;
    loop {
        match a.send_timeout(&small, Duration::from_millis(20)) {
            Ok(()) => sent += 1,
            Err(Error::Timeout { partial, .. }) => {
                // The socket takes part of a message while it has any room: either way the
                // call came back.
                if partial {
                    assert!(a.is_poisoned());
                }
                break;
            }
            Err(e) => panic!("{e}"),
        }
        assert!(sent < 100_000, "the socket never filled");
    }
    let (mut a, _b) = pipe().unwrap();
    let big = vec![0u8; 8 << 20];
    let t0 = Instant::now();
    let e = a.send_timeout(&big, Duration::from_millis(150)).unwrap_err();
    let took = t0.elapsed();
    assert!(matches!(e, Error::Timeout { partial: true, .. }), "{e}");
    assert!(took >= Duration::from_millis(150) && took < Duration::from_secs(3), "{took:?}");
    assert!(a.is_poisoned(), "a frame cut at the deadline poisons the sender");
    eprintln!("send_timeout(150 ms) on a full socket returned after {took:?}");
    // try_send on a filling socket: it comes back at once when nothing fits, or finishes a
    // started frame within the frame timeout.
    let (mut a, _b) = pipe().unwrap();
    a.set_frame_timeout(Some(Duration::from_millis(100)));
    let t0 = Instant::now();
    let e = loop {
        if let Err(e) = a.try_send(&small) {
            break e;
        }
    };
    assert!(matches!(e, Error::Timeout { .. }), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(3));
}

#[test]
fn a_hundred_thousand_tiny_frames() {
    let (mut a, mut b) = pipe().unwrap();
    let t = std::thread::spawn(move || {
        for i in 0..100_000u32 {
            a.send(&i.to_le_bytes()[..(i % 5) as usize]).unwrap();
        }
    });
    for i in 0..100_000u32 {
        assert_eq!(b.recv().unwrap(), &i.to_le_bytes()[..(i % 5) as usize]);
    }
    t.join().unwrap();
    assert!(matches!(b.recv(), Err(Error::Disconnected { .. })));
}

#[test]
fn simplex_pipes_carry_messages_one_way() {
    let (mut tx, mut rx) = simplex().unwrap();
    assert_eq!(rx.try_recv().unwrap(), None);
    assert!(matches!(
        rx.recv_timeout(Duration::from_millis(20)),
        Err(Error::Timeout { partial: false, .. })
    ));
    let t = std::thread::spawn(move || {
        for (i, &n) in SIZES.iter().enumerate() {
            tx.send(&pattern(n, i as u8)).unwrap();
        }
        tx.send_vectored(&[IoSlice::new(b"ab"), IoSlice::new(b"cd")]).unwrap();
        tx
    });
    let mut buf = Vec::new();
    for (i, &n) in SIZES.iter().enumerate() {
        rx.recv_into(&mut buf).unwrap();
        assert_eq!(buf, pattern(n, i as u8));
    }
    assert_eq!(rx.recv().unwrap(), b"abcd");
    let mut tx = t.join().unwrap();
    // A reader that stops reading: send_timeout comes back at its deadline.
    let t0 = Instant::now();
    let e = tx.send_timeout(&vec![0; 4 << 20], Duration::from_millis(100)).unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(3));
    // Drain what did get through, then the writer goes: Disconnected or cut frame.
    drop(tx);
    let e = rx.recv().unwrap_err();
    assert!(e.is_disconnected(), "{e}");
}

#[test]
fn peer_credentials_of_a_socketpair_are_ours() {
    let (a, _b) = pipe().unwrap();
    let c = a.peer_credentials().unwrap();
    assert_eq!(c.pid, std::process::id());
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    // SAFETY: getegid has no preconditions.
    let gid = unsafe { libc::getegid() };
    assert_eq!((c.uid, c.gid), (uid, gid));
}

#[test]
fn every_fd_is_cloexec() {
    use std::os::fd::{AsFd, AsRawFd};
    let (a, b) = pipe().unwrap();
    let (tx, rx) = simplex().unwrap();
    for fd in [a.as_fd(), b.as_fd(), tx.as_fd(), rx.as_fd()].map(|f| f.as_raw_fd()) {
        // SAFETY: F_GETFD on an fd we own.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        assert!(flags & libc::FD_CLOEXEC != 0, "fd {fd} is not CLOEXEC");
    }
}
