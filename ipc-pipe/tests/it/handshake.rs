//! The handshake against hostile peers: silent, flooding, reflecting, truncating, lying
//! listeners and clients, deterministic cases and proptests. A failed handshake is always a
//! typed error within the deadline, and never hands a connection to the application.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

use ipc_pipe::auth::{self, Digest, Policy};
use ipc_pipe::frame;
use ipc_pipe::{AuthError, ClientOptions, Error, ListenerOptions};
use proptest::prelude::*;

use crate::alloc_track::largest_allocation;
use crate::util::TempDir;

/// The handshake deadline of the tests *about* the deadline (a silent peer).
const DEADLINE: Duration = Duration::from_millis(300);
/// The deadline of every test whose outcome the peer decides (a bad frame, a hang-up): far
/// above what a loaded scheduler delays, so the case, not the load, decides.
const LONG: Duration = Duration::from_secs(20);

/// Read one frame from a raw stream (test side, trusted sizes).
fn read_frame(s: &mut UnixStream) -> Vec<u8> {
    let mut p = [0u8; 4];
    s.read_exact(&mut p).unwrap();
    let mut b = vec![0u8; i32::from_be_bytes(p) as usize];
    s.read_exact(&mut b).unwrap();
    b
}

fn write_frame(s: &mut UnixStream, body: &[u8]) {
    s.write_all(&frame::encode(body)).unwrap();
}

/// How an accept went: its result, how long it took, its largest allocation.
type Accepted = (Result<(), Error>, Duration, usize);

/// A listener of ours with a key and the [`LONG`] deadline, accepting once in a thread;
/// returns (path, join handle).
fn keyed_listener(dir: &TempDir) -> (std::path::PathBuf, std::thread::JoinHandle<Accepted>) {
    keyed_listener_within(dir, LONG)
}

/// As [`keyed_listener`] with a handshake deadline of `deadline`.
fn keyed_listener_within(
    dir: &TempDir,
    deadline: Duration,
) -> (std::path::PathBuf, std::thread::JoinHandle<Accepted>) {
    let path = dir.join("s");
    let l = ListenerOptions::new().handshake_timeout(deadline).bind(&path, Some(b"key")).unwrap();
    let t = std::thread::spawn(move || {
        let t0 = Instant::now();
        let (r, largest) = largest_allocation(|| l.accept().map(drop));
        (r, t0.elapsed(), largest)
    });
    (path, t)
}

fn expect_auth_failure(r: Result<(), Error>, took: Duration, want: impl Fn(&AuthError) -> bool) {
    match r {
        Err(Error::AuthFailed { reason, .. }) => assert!(want(&reason), "got {reason:?}"),
        other => panic!("expected an authentication failure, got {other:?}"),
    }
    assert!(took < LONG + Duration::from_secs(2), "took {took:?}");
}

#[test]
fn a_silent_client_fails_at_the_handshake_deadline() {
    let dir = TempDir::new("silent");
    let (path, t) = keyed_listener_within(&dir, DEADLINE);
    let _raw = UnixStream::connect(&path).unwrap();
    let (r, took, _) = t.join().unwrap();
    expect_auth_failure(r, took, |e| matches!(e, AuthError::Deadline { .. }));
    assert!(took >= DEADLINE, "{took:?}");
    eprintln!("silent client: accept failed after {took:?} (deadline {DEADLINE:?})");
}

#[test]
fn a_4_gib_prefix_before_auth_is_refused_unread() {
    let dir = TempDir::new("flood");
    let (path, t) = keyed_listener(&dir);
    let mut raw = UnixStream::connect(&path).unwrap();
    let _challenge = read_frame(&mut raw);
    raw.write_all(&(-1i32).to_be_bytes()).unwrap();
    raw.write_all(&(4u64 << 30).to_be_bytes()).unwrap();
    let (r, took, largest) = t.join().unwrap();
    expect_auth_failure(
        r,
        took,
        |e| matches!(e, AuthError::MessageTooLong { len } if *len == 4 << 30),
    );
    assert!(largest <= 64 * 1024 + 64, "pre-auth allocation {largest}");
}

#[test]
fn pre_auth_reads_stop_at_the_end_of_each_handshake_message() {
    // The client sends its last handshake message and, right behind it, an application
    // frame: the listener reads exactly the handshake message, and the application frame
    // arrives intact as the first message after authentication.
    let dir = TempDir::new("exact");
    let path = dir.join("s");
    let l = ListenerOptions::new().bind(&path, Some(b"key")).unwrap();
    let t = std::thread::spawn(move || {
        let mut c = l.accept().unwrap();
        c.recv().unwrap()
    });
    let mut raw = UnixStream::connect(&path).unwrap();
    let challenge = read_frame(&mut raw);
    let message = auth::parse_challenge(&challenge).unwrap().to_vec();
    let (_, response) = auth::respond(b"key", &message, Policy::default()).unwrap();
    write_frame(&mut raw, &response);
    assert_eq!(read_frame(&mut raw), auth::WELCOME);
    // Our challenge to the listener; then the verdict and, right behind it in the same
    // write, an application frame (what a Python client does when `Client()` returns).
    let ours = auth::challenge_message(Digest::Sha256, &[7; 40]);
    write_frame(&mut raw, &auth::challenge_frame(&ours));
    let answer = read_frame(&mut raw);
    assert_eq!(auth::verify(b"key", &ours, &answer, Policy::default()), Ok(Digest::Sha256));
    let mut burst = frame::encode(auth::WELCOME);
    burst.extend(frame::encode(b"first application message"));
    raw.write_all(&burst).unwrap();
    assert_eq!(t.join().unwrap(), b"first application message");
}

#[test]
fn a_reflected_challenge_is_refused() {
    let dir = TempDir::new("reflect");
    let (path, t) = keyed_listener(&dir);
    let mut raw = UnixStream::connect(&path).unwrap();
    let challenge = read_frame(&mut raw);
    let message = auth::parse_challenge(&challenge).unwrap().to_vec();
    let (_, response) = auth::respond(b"key", &message, Policy::default()).unwrap();
    write_frame(&mut raw, &response);
    assert_eq!(read_frame(&mut raw), auth::WELCOME);
    // Hand the listener its own challenge to answer.
    write_frame(&mut raw, &challenge);
    let (r, took, _) = t.join().unwrap();
    expect_auth_failure(r, took, |e| *e == AuthError::Reflected);
}

#[test]
fn a_replayed_response_to_an_old_challenge_is_refused() {
    let dir = TempDir::new("replay");
    let path = dir.join("s");
    let l = ListenerOptions::new().handshake_timeout(LONG).bind(&path, Some(b"key")).unwrap();
    let t = std::thread::spawn(move || (l.accept().map(drop), l.accept().map(drop)));
    // An eavesdropper saw a good response to a first challenge ...
    let mut first = UnixStream::connect(&path).unwrap();
    let c1 = read_frame(&mut first);
    let (_, good) =
        auth::respond(b"key", auth::parse_challenge(&c1).unwrap(), Policy::default()).unwrap();
    write_frame(&mut first, &good);
    assert_eq!(read_frame(&mut first), auth::WELCOME);
    drop(first);
    // ... and replays it against a fresh challenge.
    let mut second = UnixStream::connect(&path).unwrap();
    let c2 = read_frame(&mut second);
    assert_ne!(c1, c2, "challenges are fresh");
    write_frame(&mut second, &good);
    assert_eq!(read_frame(&mut second), auth::FAILURE);
    let (r1, r2) = t.join().unwrap();
    assert!(r1.is_err(), "the first client never answered the listener's challenge");
    assert!(matches!(r2, Err(Error::AuthFailed { reason: AuthError::WrongDigest, .. })), "{r2:?}");
}

/// A raw listener that plays `script` on its first connection.
fn hostile_listener(
    dir: &TempDir,
    script: impl FnOnce(UnixStream) + Send + 'static,
) -> (std::path::PathBuf, std::thread::JoinHandle<()>) {
    let path = dir.join("evil");
    let l = UnixListener::bind(&path).unwrap();
    let t = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        script(s);
    });
    (path, t)
}

fn connect_keyed(path: &std::path::Path) -> (Error, Duration) {
    connect_keyed_within(path, DEADLINE)
}

/// As [`connect_keyed`] with a handshake deadline of `deadline`.
fn connect_keyed_within(path: &std::path::Path, deadline: Duration) -> (Error, Duration) {
    let t0 = Instant::now();
    let e = ClientOptions::new()
        .handshake_timeout(deadline)
        .connect(path, Some(b"key"))
        .map(drop)
        .unwrap_err();
    (e, t0.elapsed())
}

#[test]
fn hostile_listeners_are_refused_by_the_client() {
    let dir = TempDir::new("evil");
    type Script = fn(UnixStream);
    type Want = fn(&AuthError) -> bool;
    let cases: [(Script, Want); 5] = [
        // Truncated challenge.
        (
            |mut s| write_frame(&mut s, b"#CHALLENGE#short"),
            |e| matches!(e, AuthError::ChallengeTooShort { len: 5 }),
        ),
        // Oversized challenge (300 bytes: refused from its prefix).
        (
            |mut s| write_frame(&mut s, &[b'#'; 300]),
            |e| matches!(e, AuthError::MessageTooLong { len: 300 }),
        ),
        // Unknown digest.
        (
            |mut s| {
                write_frame(&mut s, b"#CHALLENGE#{sha1}0123456789012345678901234567890123456789")
            },
            |e| *e == AuthError::UnsupportedDigest,
        ),
        // A listener without the key that welcomes anything: mutual authentication catches
        // it when it cannot answer our challenge.
        (
            |mut s| {
                let m = auth::challenge_message(Digest::Sha256, &[1; 40]);
                write_frame(&mut s, &auth::challenge_frame(&m));
                let _ = read_frame(&mut s);
                write_frame(&mut s, auth::WELCOME);
                let _ = read_frame(&mut s);
                write_frame(&mut s, b"{sha256}00000000000000000000000000000000");
                let _ = read_frame(&mut s);
            },
            |e| *e == AuthError::WrongDigest,
        ),
        // A listener that hangs up mid-handshake.
        (
            |mut s| {
                let m = auth::challenge_message(Digest::Sha256, &[1; 40]);
                write_frame(&mut s, &auth::challenge_frame(&m));
                let _ = read_frame(&mut s);
            },
            |e| *e == AuthError::Disconnected,
        ),
    ];
    // Every case ends by the listener's doing (a bad frame, a hang-up), not by the deadline:
    // give the handshake a deadline no loaded scheduler reaches, so that the case, not the
    // machine's load, decides the outcome (a 300 ms deadline failed once in 20 loaded runs).
    let long = LONG;
    for (i, (script, want)) in cases.into_iter().enumerate() {
        let sub = TempDir::new(&format!("evil{i}"));
        let (path, t) = hostile_listener(&sub, script);
        let (e, took) = connect_keyed_within(&path, long);
        match &e {
            Error::AuthFailed { reason, .. } => assert!(want(reason), "case {i}: {reason:?}"),
            other => panic!("case {i}: {other}"),
        }
        assert!(took < long, "case {i}: {took:?}");
        t.join().unwrap();
    }
    drop(dir);
}

proptest! {
    // 128 hostile handshakes per property by default, 10^4 in the soak tier.
    #![proptest_config(ProptestConfig::with_cases(crate::util::cases(128, 10_000)))]

    #[test]
    fn pure_handshake_functions_never_panic(
        frame_bytes in prop::collection::vec(any::<u8>(), 0..400),
        key in prop::collection::vec(any::<u8>(), 1..64),
        allow_md5 in any::<bool>(),
    ) {
        let policy = Policy { allow_md5 };
        let _ = auth::parse_challenge(&frame_bytes);
        let _ = auth::split_digest(&frame_bytes);
        let _ = auth::respond(&key, &frame_bytes, policy);
        let _ = auth::check_verdict(&frame_bytes);
        let ours = auth::challenge_message(Digest::Sha256, &[3; 40]);
        // Arbitrary bytes never verify.
        prop_assert!(auth::verify(&key, &ours, &frame_bytes, policy).is_err());
    }

    #[test]
    fn answers_verify_only_under_the_same_key_and_message(
        key in prop::collection::vec(any::<u8>(), 1..100),
        other in prop::collection::vec(any::<u8>(), 1..100),
        nonce in prop::collection::vec(any::<u8>(), 40),
        d in prop::sample::select(Digest::ALL.to_vec()),
        flip in any::<prop::sample::Index>(),
    ) {
        let message = auth::challenge_message(d, &nonce);
        let got = auth::parse_challenge(&auth::challenge_frame(&message)).unwrap().to_vec();
        prop_assert_eq!(&got, &message);
        let (used, response) = auth::respond(&key, &got, Policy::default()).unwrap();
        prop_assert_eq!(used, d);
        prop_assert_eq!(auth::verify(&key, &message, &response, Policy::default()), Ok(d));
        if other != key {
            prop_assert!(auth::verify(&other, &message, &response, Policy::default()).is_err());
        }
        let mut bad = response.clone();
        let i = flip.index(bad.len());
        bad[i] ^= 0x01;
        prop_assert!(auth::verify(&key, &message, &bad, Policy::default()).is_err());
    }

    #[test]
    fn arbitrary_bytes_from_a_client_never_authenticate(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..80), 0..4),
        framed in any::<bool>(),
    ) {
        let dir = TempDir::new("pclient");
        let (path, t) = keyed_listener(&dir);
        let mut raw = UnixStream::connect(&path).unwrap();
        let _ = read_frame(&mut raw);
        for c in &chunks {
            let bytes = if framed { frame::encode(c) } else { c.clone() };
            if raw.write_all(&bytes).is_err() {
                break;
            }
        }
        drop(raw);
        let (r, took, largest) = t.join().unwrap();
        prop_assert!(r.is_err(), "authenticated on {:?}", chunks);
        prop_assert!(took < LONG + Duration::from_secs(2));
        prop_assert!(largest <= 64 * 1024 + 64);
    }

    #[test]
    fn arbitrary_bytes_from_a_listener_never_authenticate(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..80), 0..4),
        framed in any::<bool>(),
        challenge_first in any::<bool>(),
    ) {
        let dir = TempDir::new("plistener");
        let (path, t) = hostile_listener(&dir, move |mut s| {
            if challenge_first {
                let m = auth::challenge_message(Digest::Sha256, &[1; 40]);
                write_frame(&mut s, &auth::challenge_frame(&m));
            }
            for c in &chunks {
                let bytes = if framed { frame::encode(c) } else { c.clone() };
                if s.write_all(&bytes).is_err() {
                    break;
                }
            }
        });
        let (e, took) = connect_keyed(&path);
        prop_assert!(matches!(e, Error::AuthFailed { .. } | Error::Io { .. }), "{}", e);
        prop_assert!(took < LONG + Duration::from_secs(2));
        t.join().unwrap();
    }
}
