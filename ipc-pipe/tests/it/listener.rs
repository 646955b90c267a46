//! Listener and Client in one process: the handshake both ways, key mismatches that fail
//! fast, the socket directory rules, what sits at the socket path, cleanup, abstract names.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

use ipc_pipe::{Address, AuthError, Client, ClientOptions, Error, Listener, ListenerOptions};

use crate::util::{TempDir, is_root};

fn serve_one(l: Listener) -> std::thread::JoinHandle<ipc_pipe::Result<Vec<u8>>> {
    std::thread::spawn(move || {
        let mut c = l.accept()?;
        let m = c.recv()?;
        c.send(&m)?;
        Ok(m)
    })
}

#[test]
fn authenticated_round_trip_and_cleanup() {
    let dir = TempDir::new("auth");
    let path = dir.join("sock");
    let l = Listener::bind(&path, Some(b"secret")).unwrap();
    assert_eq!(dir.entries(), vec!["sock", "sock.lock"]);
    let mode = std::fs::symlink_metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "socket file mode");
    assert_eq!(l.address(), &Address::Path(path.clone()));
    let t = serve_one(l);
    let mut c = Client::connect(&path, Some(b"secret")).unwrap();
    c.send(b"ping").unwrap();
    assert_eq!(c.recv().unwrap(), b"ping");
    assert_eq!(t.join().unwrap().unwrap(), b"ping");
    assert!(dir.entries().is_empty(), "socket and lock files removed on drop: {:?}", dir.entries());
    assert_eq!(c.peer_credentials().unwrap().pid, std::process::id());
}

#[test]
fn the_socket_file_mode_is_exact_whatever_the_umask() {
    let dir = TempDir::new("mode");
    for mode in [0o600, 0o660, 0o666] {
        let path = dir.join(&format!("s{mode:o}"));
        let _l = ListenerOptions::new().mode(mode).bind(&path, None).unwrap();
        let got = std::fs::symlink_metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(got, mode);
    }
}

#[test]
fn wrong_key_is_rejected_on_both_sides() {
    let dir = TempDir::new("wrongkey");
    let path = dir.join("s");
    let l = Listener::bind(&path, Some(b"right")).unwrap();
    let t = std::thread::spawn(move || l.accept().map(drop));
    let e = Client::connect(&path, Some(b"wrong")).unwrap_err();
    assert!(matches!(e, Error::AuthFailed { reason: AuthError::Rejected, .. }), "{e}");
    let e = t.join().unwrap().unwrap_err();
    assert!(matches!(e, Error::AuthFailed { reason: AuthError::WrongDigest, .. }), "{e}");
    assert!(e.to_string().contains("accept on listener"), "{e}");
}

#[test]
fn keyed_client_against_keyless_listener_fails_within_the_handshake_deadline() {
    let dir = TempDir::new("keyless");
    let path = dir.join("s");
    let l = Listener::bind(&path, None).unwrap();
    // The listener's application waits for the client to speak (cpython#123736: both hang).
    let t = std::thread::spawn(move || {
        let mut c = l.accept().unwrap();
        c.recv_timeout(Duration::from_secs(10))
    });
    let t0 = Instant::now();
    let e = ClientOptions::new()
        .handshake_timeout(Duration::from_millis(300))
        .connect(&path, Some(b"key"))
        .unwrap_err();
    let took = t0.elapsed();
    assert!(
        matches!(e, Error::AuthFailed { reason: AuthError::Deadline { challenged: false }, .. }),
        "{e}"
    );
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(e.to_string().contains("does the listener have an authkey"), "{e}");
    // The client gave up and closed: the listener side learns at once.
    assert!(t.join().unwrap().unwrap_err().is_disconnected());

    // A keyless listener that speaks first: the keyed client fails at once.
    let l = ListenerOptions::new().bind(dir.join("s2"), None).unwrap();
    let t = std::thread::spawn(move || {
        let mut c = l.accept().unwrap();
        c.send(b"hello, no auth here").unwrap();
        let _ = c.recv_timeout(Duration::from_secs(10));
    });
    let t0 = Instant::now();
    let e = Client::connect(dir.join("s2"), Some(b"key")).unwrap_err();
    assert!(matches!(e, Error::AuthFailed { reason: AuthError::NotAChallenge, .. }), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(3));
    t.join().unwrap();
}

#[test]
fn keyless_client_against_keyed_listener_fails_fast() {
    let dir = TempDir::new("nokey");
    let path = dir.join("s");
    let l = Listener::bind(&path, Some(b"key")).unwrap();
    let t = std::thread::spawn(move || l.accept().map(drop));
    let mut c = Client::connect(&path, None).unwrap();
    let e = c.recv_timeout(Duration::from_secs(10)).unwrap_err();
    assert!(matches!(e, Error::AuthRequired { .. }), "{e}");
    assert!(c.is_poisoned());
    drop(c);
    let e = t.join().unwrap().unwrap_err();
    assert!(matches!(e, Error::AuthFailed { reason: AuthError::Disconnected, .. }), "{e}");
}

#[test]
fn empty_keys_are_refused() {
    let dir = TempDir::new("empty");
    assert!(matches!(Listener::bind(dir.join("s"), Some(b"")), Err(Error::InvalidAuthKey { .. })));
    assert!(matches!(Client::connect(dir.join("s"), Some(b"")), Err(Error::InvalidAuthKey { .. })));
}

#[test]
fn md5_can_be_refused() {
    let dir = TempDir::new("md5");
    let path = dir.join("s");
    // Both sides of ours use sha256: refusing md5 changes nothing between us.
    let l = ListenerOptions::new().accept_md5(false).bind(&path, Some(b"k")).unwrap();
    let t = serve_one(l);
    let mut c = ClientOptions::new().accept_md5(false).connect(&path, Some(b"k")).unwrap();
    c.send(b"x").unwrap();
    assert_eq!(c.recv().unwrap(), b"x");
    t.join().unwrap().unwrap();
}

#[test]
fn accept_timeout_and_try_accept() {
    let dir = TempDir::new("acceptto");
    let l = Listener::bind(dir.join("s"), None).unwrap();
    assert!(l.try_accept().unwrap().is_none());
    let t0 = Instant::now();
    assert!(matches!(l.accept_timeout(Duration::from_millis(50)), Err(Error::Timeout { .. })));
    assert!(t0.elapsed() >= Duration::from_millis(50));
    let _c = Client::connect(dir.join("s"), None).unwrap();
    assert!(l.accept_timeout(Duration::from_secs(5)).is_ok());
}

#[test]
fn connecting_to_nothing_is_an_error_not_a_hang() {
    let dir = TempDir::new("nothing");
    let e = Client::connect_timeout(dir.join("none"), None, Duration::from_secs(1)).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
    // A dead listener's socket file: connection refused.
    let std_l = UnixListener::bind(dir.join("dead")).unwrap();
    drop(std_l);
    let e = Client::connect(dir.join("dead"), None).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
}

#[test]
fn directory_rules() {
    let dir = TempDir::new("dirs");
    // Missing directory: an error unless asked to create it (0700).
    let sub = dir.join("sub");
    assert!(matches!(Listener::bind(sub.join("s"), None), Err(Error::UnsafeDirectory { .. })));
    let l = ListenerOptions::new().create_dir(true).bind(sub.join("s"), None).unwrap();
    let mode = std::fs::metadata(&sub).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode & 0o077, 0, "created directory is private: {mode:o}");
    drop(l);
    // Writable by others: refused.
    let open = dir.join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let e = Listener::bind(open.join("s"), None).unwrap_err();
    assert!(matches!(e, Error::UnsafeDirectory { .. }), "{e}");
    assert!(e.to_string().contains("lets group or others write"), "{e}");
    assert!(e.to_string().contains("private directory"), "says what to do instead: {e}");
    // Sticky and shared (like /tmp): only when allowed, and the refusal says how.
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let e = Listener::bind(open.join("s"), None).unwrap_err();
    assert!(matches!(e, Error::UnsafeDirectory { .. }), "{e}");
    assert!(e.to_string().contains("allow_shared_dir(true)"), "{e}");
    drop(ListenerOptions::new().allow_shared_dir(true).bind(open.join("s"), None).unwrap());
    // /tmp itself, as a new user tries first.
    let tmp = std::path::Path::new("/tmp").join(ipc_testkit::unique_name("pipe-in-tmp"));
    let e = Listener::bind(&tmp, None).unwrap_err();
    eprintln!("{e}");
    assert!(e.to_string().contains("allow_shared_dir(true)"), "{e}");
    assert!(e.to_string().contains("private directory"), "{e}");
    // A symlink to a directory is not followed.
    let link = dir.join("link");
    symlink(dir.path(), &link).unwrap();
    let e = Listener::bind(link.join("s"), None).unwrap_err();
    assert!(matches!(e, Error::UnsafeDirectory { .. }), "{e}");
    // Someone else's directory.
    if is_root() {
        let theirs = dir.join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
        let e = Listener::bind(theirs.join("s"), None).unwrap_err();
        assert!(e.to_string().contains("owned by uid 65534"), "{e}");
    }
}

#[test]
fn whatever_sits_at_the_path_is_neither_followed_nor_removed() {
    let dir = TempDir::new("squat");
    // A regular file.
    std::fs::write(dir.join("file"), b"precious").unwrap();
    let e = Listener::bind(dir.join("file"), None).unwrap_err();
    assert!(matches!(e, Error::AddrInUse { .. }), "{e}");
    assert!(e.to_string().contains("regular file"), "{e}");
    assert_eq!(std::fs::read(dir.join("file")).unwrap(), b"precious");
    // A symlink, to a file and dangling.
    std::fs::write(dir.join("target"), b"keep").unwrap();
    symlink(dir.join("target"), dir.join("link")).unwrap();
    symlink(dir.join("nowhere"), dir.join("dangling")).unwrap();
    for name in ["link", "dangling"] {
        let e = Listener::bind(dir.join(name), None).unwrap_err();
        assert!(e.to_string().contains("symlink"), "{e}");
        assert!(std::fs::symlink_metadata(dir.join(name)).unwrap().file_type().is_symlink());
    }
    assert_eq!(std::fs::read(dir.join("target")).unwrap(), b"keep");
    assert!(!dir.join("nowhere").exists());
    // A symlink planted at the lock file's name.
    symlink(dir.join("target"), dir.join("locked.lock")).unwrap();
    let e = Listener::bind(dir.join("locked"), None).unwrap_err();
    assert!(matches!(e, Error::AddrInUse { .. }), "{e}");
    assert_eq!(std::fs::read(dir.join("target")).unwrap(), b"keep");
    // A live listener that does not use our lock (Python's, say).
    let live = UnixListener::bind(dir.join("live")).unwrap();
    let e = Listener::bind(dir.join("live"), None).unwrap_err();
    assert!(e.to_string().contains("live listener"), "{e}");
    drop(live);
    // ... and once it is dead, its socket is reclaimed.
    let l = Listener::bind(dir.join("live"), None).unwrap();
    drop(l);
    assert!(!dir.join("live").exists());
}

#[test]
fn a_live_listener_holds_the_path() {
    let dir = TempDir::new("held");
    let l = Listener::bind(dir.join("s"), None).unwrap();
    let e = Listener::bind(dir.join("s"), None).unwrap_err();
    assert!(matches!(e, Error::AddrInUse { .. }), "{e}");
    assert!(e.to_string().contains("holds its lock"), "{e}");
    drop(l);
    drop(Listener::bind(dir.join("s"), None).unwrap());
}

#[test]
fn addresses_that_cannot_work() {
    let dir = TempDir::new("addr");
    let long = dir.join(&"x".repeat(120));
    assert!(matches!(Listener::bind(&long, None), Err(Error::InvalidAddress { .. })));
    assert!(matches!(Client::connect(&long, None), Err(Error::InvalidAddress { .. })));
    assert!(matches!(Listener::bind("/", None), Err(Error::InvalidAddress { .. })));
}

#[test]
fn abstract_names_need_a_key_and_admit_only_our_uid_by_default() {
    let name = format!("ipctest-pipe-{}-abstract", std::process::id());
    let e = Listener::bind(Address::abstract_name(&name), None).unwrap_err();
    assert!(matches!(e, Error::InvalidAddress { .. }), "{e}");
    let l = Listener::bind(Address::abstract_name(&name), Some(b"k")).unwrap();
    let t = serve_one(l);
    let mut c = Client::connect(Address::abstract_name(&name), Some(b"k")).unwrap();
    c.send(b"abstract").unwrap();
    assert_eq!(c.recv().unwrap(), b"abstract");
    t.join().unwrap().unwrap();
}

#[test]
fn an_allowed_uid_policy_admits_listed_uids() {
    let dir = TempDir::new("policy");
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let l = ListenerOptions::new().allowed_uids([me]).bind(dir.join("s"), None).unwrap();
    let _c = Client::connect(dir.join("s"), None).unwrap();
    assert!(l.accept().is_ok());
    let l2 = ListenerOptions::new().allowed_uids([me + 1]).bind(dir.join("t"), None).unwrap();
    let _c = Client::connect(dir.join("t"), None).unwrap();
    match l2.accept().unwrap_err() {
        Error::PeerNotAllowed { creds, .. } => {
            assert_eq!((creds.uid, creds.pid), (me, std::process::id()));
        }
        e => panic!("{e}"),
    }
    // The refused client sees its connection closed.
    // (The foreign-uid case, via setpriv, is in tests/tests/pipe.rs.)
}

#[test]
fn a_silent_client_does_not_stall_the_next_one() {
    // A client connects and says nothing; an honest one connects after it. The honest one
    // is accepted first (handshakes run side by side, not one after the other), and the
    // silent one is dropped at its own handshake deadline.
    let dir = TempDir::new("silent");
    let path = dir.join("s");
    let deadline = Duration::from_secs(2);
    let l = ListenerOptions::new().handshake_timeout(deadline).bind(&path, Some(b"k")).unwrap();
    let silent = std::os::unix::net::UnixStream::connect(&path).unwrap();
    let honest = std::thread::spawn({
        let path = path.clone();
        move || {
            let mut c = Client::connect(path, Some(b"k"))?;
            c.send(b"hello")?;
            c.recv()
        }
    });
    let first = l.accept();
    let mut c = match first {
        Ok(c) => c,
        Err(e) => panic!("the first accept returned {e} instead of the honest client"),
    };
    assert_eq!(c.recv().unwrap(), b"hello");
    c.send(b"welcome").unwrap();
    assert_eq!(honest.join().unwrap().unwrap(), b"welcome");
    // The silent client: refused at its deadline by a later accept.
    match l.accept_timeout(Duration::from_secs(10)) {
        Err(Error::AuthFailed { reason: AuthError::Deadline { .. }, .. }) => {}
        other => panic!("{other:?}"),
    }
    // ... which closed its connection.
    silent.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = Vec::new();
    let _ = std::io::Read::read_to_end(&mut &silent, &mut buf);
    assert!(buf.starts_with(&[0, 0, 0]), "the silent client got the challenge first: {buf:?}");
}

#[test]
fn huge_timeouts_saturate_everywhere() {
    // Duration::MAX is "wait as long as it takes" in every call that takes a timeout: none
    // panics on `Instant::now() + timeout`, none quietly shortens it.
    let max = Duration::MAX;
    let (mut a, mut b) = ipc_pipe::pipe().unwrap();
    a.set_frame_timeout(Some(max));
    b.set_frame_timeout(Some(max));
    a.send_timeout(b"one", max).unwrap();
    assert!(b.poll(Some(max)).unwrap());
    assert_eq!(b.recv_timeout(max).unwrap(), b"one");
    a.send(b"two").unwrap();
    assert_eq!(b.recv_fds_timeout(max).unwrap().0, b"two");
    let (mut tx, mut rx) = ipc_pipe::simplex().unwrap();
    tx.set_frame_timeout(Some(max));
    rx.set_frame_timeout(Some(max));
    tx.send_timeout(b"three", max).unwrap();
    assert!(rx.poll(Some(max)).unwrap());
    assert_eq!(rx.recv_timeout(max).unwrap(), b"three");

    let dir = TempDir::new("huge");
    let path = dir.join("s");
    let l = ListenerOptions::new()
        .handshake_timeout(max)
        .frame_timeout(Some(max))
        .bind(&path, Some(b"k"))
        .unwrap();
    let t = std::thread::spawn({
        let path = path.clone();
        move || {
            ClientOptions::new()
                .connect_timeout(Some(max))
                .handshake_timeout(max)
                .frame_timeout(Some(max))
                .connect(path, Some(b"k"))
        }
    });
    let mut c = l.accept_timeout(max).unwrap();
    let mut client = t.join().unwrap().unwrap();
    client.send(b"four").unwrap();
    assert_eq!(c.recv_timeout(max).unwrap(), b"four");
    drop(Client::connect_timeout(&path, Some(b"k"), max).map(drop));
}

#[test]
fn a_huge_handshake_timeout_outlasts_a_slow_listener() {
    // The client's handshake timeout is Duration::MAX; the listener gets to it only after
    // 5.5 s (past the 5 s default, which a huge timeout once fell back to). The sleep is the
    // fault under test, a slow peer, not synchronisation.
    let dir = TempDir::new("slowlistener");
    let path = dir.join("s");
    let l = Listener::bind(&path, Some(b"k")).unwrap();
    let t = std::thread::spawn({
        let path = path.clone();
        move || {
            ClientOptions::new()
                .handshake_timeout(Duration::MAX)
                .connect(path, Some(b"k"))
                .map(drop)
        }
    });
    std::thread::sleep(Duration::from_millis(5500));
    let _c = l.accept().unwrap();
    t.join().unwrap().unwrap();
}
