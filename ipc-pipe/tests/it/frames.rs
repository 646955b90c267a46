//! The frame decoder: the committed corpus of malformed frames, proptests of the pure
//! decoder against a reference model, and the same bytes through a real connection (typed
//! errors, never a panic, never an allocation past `max_message`).

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use ipc_pipe::frame::{self, FrameError};
use ipc_pipe::{Connection, Error};
use proptest::prelude::*;

use crate::alloc_track::largest_allocation;

/// The read buffer a connection allocates once (64 KiB) plus the control buffer: the only
/// allocations not sized by a message.
const FIXED_ALLOC: usize = 64 * 1024;

/// What the stream decodes to, at the level of a connection.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// `n` frames, then the peer's clean close.
    Frames(usize),
    /// `n` frames, then the error.
    Error(usize, &'static str),
}

/// The reference model of CPython's `_recv_bytes` with a limit (written independently of
/// ipc_pipe::frame).
fn model(bytes: &[u8], max: usize) -> (Vec<Vec<u8>>, Option<&'static str>) {
    let mut out = Vec::new();
    let mut i = 0usize;
    loop {
        if i == bytes.len() {
            return (out, None);
        }
        if bytes.len() - i < 4 {
            return (out, Some("truncated"));
        }
        let n = i32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
        i += 4;
        let len: u128 = if n == -1 {
            if bytes.len() - i < 8 {
                return (out, Some("truncated"));
            }
            let l = u64::from_be_bytes(bytes[i..i + 8].try_into().unwrap());
            i += 8;
            u128::from(l)
        } else if n < 0 {
            return (out, Some("negative"));
        } else {
            n as u128
        };
        if len > max as u128 {
            return (out, Some("too_large"));
        }
        let len = len as usize;
        if bytes.len() - i < len {
            return (out, Some("truncated"));
        }
        out.push(bytes[i..i + len].to_vec());
        i += len;
    }
}

fn pure(bytes: &[u8], max: usize) -> (Vec<Vec<u8>>, Option<&'static str>) {
    let mut out = Vec::new();
    for f in frame::frames(bytes, max) {
        match f {
            Ok(b) => out.push(b.to_vec()),
            Err(FrameError::Truncated { .. }) => return (out, Some("truncated")),
            Err(FrameError::NegativeLength(_)) => return (out, Some("negative")),
            Err(FrameError::TooLarge { .. }) => return (out, Some("too_large")),
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    (out, None)
}

/// How the receiving side of [`through_connection_with`] takes messages.
#[derive(Debug, Clone, Copy)]
enum Recv {
    /// `recv()`: a new vector each time (the read buffer's copy).
    Vec,
    /// `recv_into` one vector that starts with this capacity (from 4 KiB the body is read
    /// straight into it).
    Into(usize),
}

/// Feed `bytes` to a connection (the peer closes after them) and receive until an error.
fn through_connection(bytes: &[u8], max: usize) -> (Vec<Vec<u8>>, Outcome, usize) {
    through_connection_with(bytes, max, Recv::Vec, usize::MAX)
}

/// As [`through_connection`], receiving as `how` says, the peer writing `chunk` bytes at a
/// time (so frames arrive cut anywhere).
fn through_connection_with(
    bytes: &[u8],
    max: usize,
    how: Recv,
    chunk: usize,
) -> (Vec<Vec<u8>>, Outcome, usize) {
    let (mut raw, ours) = UnixStream::pair().unwrap();
    let data = bytes.to_vec();
    let writer = std::thread::spawn(move || {
        for piece in data.chunks(chunk.max(1)) {
            if raw.write_all(piece).is_err() {
                break;
            }
        }
        drop(raw);
    });
    let mut conn = Connection::from(ours);
    conn.set_max_message(max);
    let mut buf = match how {
        Recv::Vec => Vec::new(),
        Recv::Into(cap) => Vec::with_capacity(cap),
    };
    let ((frames, outcome), largest) = largest_allocation(|| {
        let mut frames = Vec::new();
        let outcome = loop {
            let got = match how {
                Recv::Vec => conn.recv(),
                Recv::Into(_) => conn.recv_into(&mut buf).map(|n| {
                    assert_eq!(n, buf.len());
                    buf.clone()
                }),
            };
            match got {
                Ok(m) => frames.push(m),
                Err(Error::Disconnected { .. }) => break Outcome::Frames(frames.len()),
                Err(e) => {
                    let kind = match e {
                        Error::UnexpectedEof { .. } => "truncated",
                        Error::BadFrame { reason: FrameError::NegativeLength(_), .. } => "negative",
                        Error::MessageTooLarge { .. } => "too_large",
                        other => panic!("unexpected error {other}"),
                    };
                    // A bad frame poisons the connection.
                    assert!(matches!(conn.recv(), Err(Error::Poisoned { .. })));
                    assert!(matches!(conn.recv_into(&mut buf), Err(Error::Poisoned { .. })));
                    break Outcome::Error(frames.len(), kind);
                }
            }
        };
        (frames, outcome)
    });
    // Closed before the join: a writer still sending (tiny writes cost the socket buffer far
    // more than their bytes) gets EPIPE instead of blocking on a reader that stopped.
    drop(conn);
    writer.join().unwrap();
    (frames, outcome, largest)
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/bad_frames")
}

#[test]
fn committed_corpus_of_malformed_frames_is_rejected_as_expected() {
    let list = std::fs::read_to_string(corpus_dir().join("expected.txt")).unwrap();
    let mut checked = 0;
    for line in list.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let mut it = line.split_whitespace();
        let (name, max, expected) =
            (it.next().unwrap(), it.next().unwrap().parse::<usize>().unwrap(), it.next().unwrap());
        let expected: &'static str = match expected {
            "truncated" => "truncated",
            "negative" => "negative",
            "too_large" => "too_large",
            ok if ok.starts_with("ok:") => Box::leak(ok.to_owned().into_boxed_str()),
            other => panic!("{name}: unknown expectation {other}"),
        };
        let bytes = std::fs::read(corpus_dir().join(format!("{name}.bin"))).unwrap();
        let (frames, err) = pure(&bytes, max);
        let (cframes, outcome, largest) = through_connection(&bytes, max);
        match expected.strip_prefix("ok:") {
            Some(n) => {
                let n: usize = n.parse().unwrap();
                assert_eq!((frames.len(), err), (n, None), "{name}: pure decoder");
                assert_eq!(outcome, Outcome::Frames(n), "{name}: connection");
            }
            None => {
                assert_eq!(err, Some(expected), "{name}: pure decoder");
                assert_eq!(outcome, Outcome::Error(frames.len(), expected), "{name}: connection");
            }
        }
        assert_eq!(frames, cframes, "{name}: same frames both ways");
        assert!(largest <= FIXED_ALLOC.max(max) + 64, "{name}: allocated {largest} bytes");
        checked += 1;
    }
    assert!(checked >= 19, "corpus has {checked} cases");
}

/// Byte strings that look like streams of frames, with corrupted prefixes mixed in.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        // A valid short frame.
        prop::collection::vec(any::<u8>(), 0..300).prop_map(|b| frame::encode(&b)),
        // A long-form prefix with any length, then a few bytes.
        (any::<u64>(), prop::collection::vec(any::<u8>(), 0..20)).prop_map(|(l, b)| {
            let mut v = (-1i32).to_be_bytes().to_vec();
            v.extend_from_slice(&l.to_be_bytes());
            v.extend(b);
            v
        }),
        // Any 4-byte prefix (negative, huge) and a few bytes.
        (any::<i32>(), prop::collection::vec(any::<u8>(), 0..20)).prop_map(|(n, b)| {
            let mut v = n.to_be_bytes().to_vec();
            v.extend(b);
            v
        }),
        // Noise.
        prop::collection::vec(any::<u8>(), 0..16),
    ];
    prop::collection::vec(piece, 0..12).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(crate::util::cases(256, 20_000)))]

    #[test]
    fn decoder_matches_the_reference_model_on_arbitrary_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
        max in 0usize..400,
    ) {
        prop_assert_eq!(pure(&bytes, max), model(&bytes, max));
    }

    #[test]
    fn decoder_matches_the_reference_model_on_frame_like_streams(
        bytes in stream(),
        max in prop_oneof![Just(0usize), 1usize..400, Just(usize::MAX)],
    ) {
        prop_assert_eq!(pure(&bytes, max), model(&bytes, max));
    }

    #[test]
    fn connection_gives_typed_errors_and_bounded_allocations(
        bytes in stream(),
        max in prop_oneof![1usize..400, 60_000usize..200_000],
    ) {
        let (frames, err) = model(&bytes, max);
        let (cframes, outcome, largest) = through_connection(&bytes, max);
        prop_assert_eq!(&cframes, &frames);
        match err {
            None => prop_assert_eq!(outcome, Outcome::Frames(frames.len())),
            Some(kind) => prop_assert_eq!(outcome, Outcome::Error(frames.len(), kind)),
        }
        prop_assert!(largest <= FIXED_ALLOC.max(max) + 64, "allocated {} bytes", largest);
    }

    #[test]
    fn recv_into_the_callers_vector_matches_the_model(
        bytes in stream(),
        max in prop_oneof![1usize..400, 60_000usize..200_000],
        cap in prop_oneof![Just(0usize), 1usize..64, Just(4096usize), Just(70_000usize)],
        chunk in prop_oneof![Just(usize::MAX), 1usize..16, 16usize..300],
    ) {
        let (frames, err) = model(&bytes, max);
        let (cframes, outcome, largest) =
            through_connection_with(&bytes, max, Recv::Into(cap), chunk);
        prop_assert_eq!(&cframes, &frames);
        match err {
            None => prop_assert_eq!(outcome, Outcome::Frames(frames.len())),
            Some(kind) => prop_assert_eq!(outcome, Outcome::Error(frames.len(), kind)),
        }
        // The test's own copies of each message are at most `max` bytes too.
        prop_assert!(largest <= FIXED_ALLOC.max(max) + 64, "allocated {} bytes", largest);
    }

    #[test]
    fn encode_then_decode_roundtrips(
        bodies in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..2000), 0..20),
    ) {
        let mut s = Vec::new();
        for b in &bodies {
            frame::encode_into(b, &mut s);
        }
        let got: Vec<Vec<u8>> = frame::frames(&s, 2000).map(|f| f.unwrap().to_vec()).collect();
        prop_assert_eq!(got, bodies);
    }
}

/// Frames that exercise the receive paths: several in one read, the long prefix on a small
/// body, bodies around the read buffer's size, each received into vectors of every kind.
#[test]
fn frames_cut_and_joined_every_way_arrive_whole() {
    let mut bytes = Vec::new();
    let mut bodies: Vec<Vec<u8>> = Vec::new();
    let sizes = [0usize, 1, 5, 4091, 4092, 4096, 20_000, 65_531, 65_532, 65_536, 65_540, 200_000];
    for (i, &n) in sizes.iter().enumerate() {
        let body: Vec<u8> =
            (0..n).map(|k| (k as u8).wrapping_mul(7).wrapping_add(i as u8)).collect();
        if i % 3 == 1 {
            // The long form CPython uses above 2 GiB, here on a short body (readers accept it).
            bytes.extend_from_slice(&(-1i32).to_be_bytes());
            bytes.extend_from_slice(&(n as u64).to_be_bytes());
            bytes.extend_from_slice(&body);
        } else {
            frame::encode_into(&body, &mut bytes);
        }
        bodies.push(body);
    }
    for how in [Recv::Vec, Recv::Into(0), Recv::Into(4096), Recv::Into(65_536), Recv::Into(1 << 20)]
    {
        for chunk in [usize::MAX, 3, 4095, 65_536] {
            let (got, outcome, _) = through_connection_with(&bytes, 1 << 20, how, chunk);
            assert_eq!(outcome, Outcome::Frames(bodies.len()), "{how:?} chunk {chunk}");
            assert!(got == bodies, "{how:?} chunk {chunk}: bodies differ");
        }
    }
}

#[test]
fn a_prefix_claiming_exabytes_allocates_nothing_for_the_body() {
    let mut bytes = (-1i32).to_be_bytes().to_vec();
    bytes.extend_from_slice(&(1u64 << 60).to_be_bytes());
    let (_, outcome, largest) = through_connection(&bytes, 64 << 20);
    assert_eq!(outcome, Outcome::Error(0, "too_large"));
    assert!(largest <= FIXED_ALLOC + 64, "allocated {largest}");
    // Also when the receiving vector has room (the prefix lands beside it, the body in it).
    let (_, outcome, largest) = through_connection_with(&bytes, 64 << 20, Recv::Into(1 << 16), 3);
    assert_eq!(outcome, Outcome::Error(0, "too_large"));
    assert!(largest <= FIXED_ALLOC + 64, "allocated {largest}");
}

#[test]
fn a_stalled_large_frame_pins_no_more_than_its_length() {
    // A peer announces a 9 MiB frame (under a 16 MiB limit), sends all but its last byte
    // and stalls: the receiver's body never grows past what the frame needs (amortised
    // doubling would take it to 16 MiB), and the frame timeout ends the wait.
    const LEN: usize = 9 << 20;
    let (a, mut b) = ipc_pipe::pipe().unwrap();
    b.set_max_message(16 << 20);
    b.set_frame_timeout(Some(std::time::Duration::from_millis(300)));
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let sender = std::thread::spawn(move || {
        let mut raw = std::os::unix::net::UnixStream::from(std::os::fd::OwnedFd::from(a));
        raw.write_all(&(LEN as u32).to_be_bytes()).unwrap();
        raw.write_all(&vec![7u8; LEN - 1]).unwrap();
        // Stall, connection open, until the receiver has given up.
        let _ = done_rx.recv();
    });
    let (r, largest) = largest_allocation(|| b.recv());
    done_tx.send(()).unwrap();
    sender.join().unwrap();
    assert!(matches!(r, Err(Error::Timeout { partial: true, .. })), "{r:?}");
    assert!(largest <= LEN + FIXED_ALLOC, "largest allocation {largest} for a {LEN}-byte frame");
}
