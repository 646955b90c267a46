//! Interop with the real CPython on this machine (3.11 here: the legacy HMAC-MD5 challenge;
//! 3.12+ sends `{sha256}` challenges, which the emulated-3.12 peers below speak): Python's
//! Client against our Listener, our Client against Python's Listener, a Python
//! `Connection` on one end of our `pipe()`, wrong keys both ways, abstract names.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use ipc_pipe::{Address, AuthError, Client, ClientOptions, Error, Listener, ListenerOptions, pipe};

use crate::util::{TempDir, python};

/// A python3 process running `script` with `args`; killed on drop.
pub(crate) struct Py {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Py {
    pub(crate) fn spawn(script: &str, args: &[&str]) -> Py {
        Py::spawn_with(script, args, Stdio::null())
    }

    pub(crate) fn spawn_with(script: &str, args: &[&str], stdin: Stdio) -> Py {
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(script)
            .args(args)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn python3");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Py { child, lines }
    }

    /// The next line Python printed (at most 30 s).
    pub(crate) fn line(&mut self) -> String {
        match self.lines.recv_timeout(Duration::from_secs(30)) {
            Ok(l) => l,
            Err(_) => panic!("python printed nothing; stderr: {}", self.stderr()),
        }
    }

    fn stderr(&mut self) -> String {
        let _ = self.child.kill();
        let mut s = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut s);
        }
        s
    }

    /// Wait (at most 30 s) for the exit code; panics with stderr on a timeout.
    pub(crate) fn wait(&mut self) -> i32 {
        for _ in 0..3000 {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code().unwrap_or(-1);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("python did not finish; stderr: {}", self.stderr());
    }

    pub(crate) fn assert_ok(&mut self) {
        let code = self.wait();
        if code != 0 {
            panic!("python exited with {code}: {}", self.stderr());
        }
    }
}

impl Drop for Py {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

macro_rules! need_python {
    () => {
        if !python() {
            eprintln!("skipped: python3 with multiprocessing is not available");
            return;
        }
    };
}

const PY_CLIENT: &str = r#"
import sys
from multiprocessing.connection import Client
c = Client(sys.argv[1], authkey=sys.argv[2].encode())
c.send_bytes(b'x' * 100000)
c.send_bytes(b'')
c.send_bytes(b'small')
m = c.recv_bytes()
assert m == bytes(range(256)) * 400, len(m)
c.send_bytes(b'done:%d' % len(m))
print(sys.version.split()[0])
"#;

#[test]
fn python_client_against_our_listener() {
    need_python!();
    let dir = TempDir::new("pyclient");
    let path = dir.join("sock");
    let l = Listener::bind(&path, Some(b"shared secret")).unwrap();
    let mut py = Py::spawn(PY_CLIENT, &[path.to_str().unwrap(), "shared secret"]);
    let mut c = l.accept().unwrap();
    assert_eq!(c.recv().unwrap(), vec![b'x'; 100_000]);
    assert_eq!(c.recv().unwrap(), b"");
    assert_eq!(c.recv().unwrap(), b"small");
    let big: Vec<u8> = (0..=255u8).cycle().take(256 * 400).collect();
    c.send(&big).unwrap();
    assert_eq!(c.recv().unwrap(), b"done:102400");
    eprintln!("interop with CPython {}", py.line());
    py.assert_ok();
}

/// Messages of `sizes` to a peer that answers each reversed, then `bye`.
fn reversed_echoes(c: &mut ipc_pipe::Connection, sizes: &[usize]) {
    for &n in sizes {
        let m: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
        c.send(&m).unwrap();
        let mut r = m.clone();
        r.reverse();
        assert_eq!(c.recv().unwrap(), r, "size {n}");
    }
    c.send(b"bye").unwrap();
}

const PY_LISTENER: &str = r#"
import sys
from multiprocessing.connection import Listener
key = sys.argv[2].encode() if len(sys.argv) > 2 else None
with Listener(sys.argv[1], authkey=key) as l:
    print('ready', flush=True)
    try:
        c = l.accept()
    except Exception as e:
        print(type(e).__name__, flush=True)
        sys.exit(3)
    while True:
        m = c.recv_bytes()
        if m == b'bye':
            break
        c.send_bytes(m[::-1])
    print('finished', flush=True)
"#;

#[test]
fn our_client_against_python_listener() {
    need_python!();
    let dir = TempDir::new("pylistener");
    let path = dir.join("sock");
    let mut py = Py::spawn(PY_LISTENER, &[path.to_str().unwrap(), "k3y"]);
    assert_eq!(py.line(), "ready");
    let mut c = Client::connect(&path, Some(b"k3y")).unwrap();
    reversed_echoes(&mut c, &[0, 1, 5000, 70_000, 300_000]);
    assert_eq!(py.line(), "finished");
    py.assert_ok();
}

#[test]
fn wrong_keys_are_rejected_both_ways_with_python() {
    need_python!();
    let dir = TempDir::new("pywrong");
    // Python's Client with the wrong key against our Listener.
    let path = dir.join("ours");
    let l = Listener::bind(&path, Some(b"right")).unwrap();
    let script = r#"
import sys
from multiprocessing.connection import Client, AuthenticationError
try:
    Client(sys.argv[1], authkey=b'wrong')
except AuthenticationError as e:
    print('AuthenticationError', flush=True)
    sys.exit(3)
"#;
    let mut py = Py::spawn(script, &[path.to_str().unwrap()]);
    let e = l.accept().unwrap_err();
    assert!(matches!(e, Error::AuthFailed { reason: AuthError::WrongDigest, .. }), "{e}");
    assert_eq!(py.line(), "AuthenticationError");
    assert_eq!(py.wait(), 3);
    // Our Client with the wrong key against Python's Listener.
    let path = dir.join("theirs");
    let mut py = Py::spawn(PY_LISTENER, &[path.to_str().unwrap(), "right"]);
    assert_eq!(py.line(), "ready");
    let e = Client::connect(&path, Some(b"wrong")).unwrap_err();
    assert!(matches!(e, Error::AuthFailed { reason: AuthError::Rejected, .. }), "{e}");
    assert_eq!(py.line(), "AuthenticationError");
    assert_eq!(py.wait(), 3);
}

#[test]
fn our_keyed_client_against_a_keyless_python_listener_does_not_hang() {
    need_python!();
    let dir = TempDir::new("pykeyless");
    let path = dir.join("s");
    let mut py = Py::spawn(PY_LISTENER, &[path.to_str().unwrap()]);
    assert_eq!(py.line(), "ready");
    let t0 = std::time::Instant::now();
    let e = ClientOptions::new()
        .handshake_timeout(Duration::from_millis(500))
        .connect(&path, Some(b"key"))
        .unwrap_err();
    assert!(
        matches!(e, Error::AuthFailed { reason: AuthError::Deadline { challenged: false }, .. }),
        "{e}"
    );
    assert!(t0.elapsed() < Duration::from_secs(5));
    // Python's side sees the connection close (an EOFError in recv_bytes).
    let _ = py.wait();
}

/// A CPython 3.12+ client's side of the handshake, written out with `hmac` (sha256 digests
/// with `{sha256}` prefixes) for a client without `authkey` support for them (3.11 here).
const PY_MODERN_CLIENT: &str = r#"
import sys, os, hmac
from multiprocessing.connection import Client
key = sys.argv[2].encode()
c = Client(sys.argv[1])            # no authkey: we run the handshake by hand
msg = c.recv_bytes(256)
assert msg.startswith(b'#CHALLENGE#{sha256}'), msg
msg = msg[len(b'#CHALLENGE#'):]
c.send_bytes(b'{sha256}' + hmac.new(key, msg, 'sha256').digest())
assert c.recv_bytes(256) == b'#WELCOME#'
ours = b'{sha256}' + os.urandom(40)
c.send_bytes(b'#CHALLENGE#' + ours)
resp = c.recv_bytes(256)
assert resp.startswith(b'{sha256}'), resp
ok = hmac.compare_digest(resp[len(b'{sha256}'):], hmac.new(key, ours, 'sha256').digest())
c.send_bytes(b'#WELCOME#' if ok else b'#FAILURE#')
assert ok
c.send_bytes(b'modern hello')
print(c.recv_bytes().decode(), flush=True)
"#;

/// A CPython 3.12+ listener's side of the handshake, written out likewise.
const PY_MODERN_LISTENER: &str = r#"
import sys, os, hmac
from multiprocessing.connection import Listener
key = sys.argv[2].encode()
with Listener(sys.argv[1]) as l:
    print('ready', flush=True)
    c = l.accept()
    ours = b'{sha256}' + os.urandom(40)
    c.send_bytes(b'#CHALLENGE#' + ours)
    resp = c.recv_bytes(256)
    ok = resp.startswith(b'{sha256}') and hmac.compare_digest(
        resp[8:], hmac.new(key, ours, 'sha256').digest())
    c.send_bytes(b'#WELCOME#' if ok else b'#FAILURE#')
    assert ok, resp
    msg = c.recv_bytes(256)[len(b'#CHALLENGE#'):]
    assert msg.startswith(b'{sha256}'), msg
    c.send_bytes(b'{sha256}' + hmac.new(key, msg, 'sha256').digest())
    assert c.recv_bytes(256) == b'#WELCOME#'
    c.send_bytes(c.recv_bytes().upper())
    print('finished', flush=True)
"#;

#[test]
fn sha256_tagged_handshake_of_python_3_12_both_ways() {
    need_python!();
    let dir = TempDir::new("pymodern");
    // A 3.12-style client against our listener, which refuses md5 here.
    let path = dir.join("ours");
    let l = ListenerOptions::new().accept_md5(false).bind(&path, Some(b"modern")).unwrap();
    let mut py = Py::spawn(PY_MODERN_CLIENT, &[path.to_str().unwrap(), "modern"]);
    let mut c = l.accept().unwrap();
    assert_eq!(c.recv().unwrap(), b"modern hello");
    c.send(b"welcome, 3.12").unwrap();
    assert_eq!(py.line(), "welcome, 3.12");
    py.assert_ok();
    // Our client, refusing md5, against a 3.12-style listener.
    let path = dir.join("theirs");
    let mut py = Py::spawn(PY_MODERN_LISTENER, &[path.to_str().unwrap(), "modern"]);
    assert_eq!(py.line(), "ready");
    let mut c = ClientOptions::new().accept_md5(false).connect(&path, Some(b"modern")).unwrap();
    c.send(b"shout").unwrap();
    assert_eq!(c.recv().unwrap(), b"SHOUT");
    assert_eq!(py.line(), "finished");
    py.assert_ok();
    // A 3.11 listener only speaks md5: a client that refuses md5 refuses it.
    let path = dir.join("legacy");
    let mut py = Py::spawn(PY_LISTENER, &[path.to_str().unwrap(), "modern"]);
    assert_eq!(py.line(), "ready");
    let version = Command::new("python3")
        .arg("-c")
        .arg("import sys;print(sys.version_info[:2] < (3, 12))")
        .output()
        .unwrap();
    let legacy = String::from_utf8_lossy(&version.stdout).trim() == "True";
    let r = ClientOptions::new().accept_md5(false).connect(&path, Some(b"modern"));
    if legacy {
        assert!(matches!(r, Err(Error::AuthFailed { reason: AuthError::Md5Refused, .. })), "{r:?}");
    } else {
        assert!(r.is_ok(), "{r:?}");
    }
}

#[test]
fn a_python_connection_on_one_end_of_our_pipe() {
    need_python!();
    let (mut ours, theirs) = pipe().unwrap();
    let script = r#"
from multiprocessing.connection import Connection
c = Connection(0)
while True:
    m = c.recv_bytes()
    if not m:
        break
    c.send_bytes(b'py:' + m)
"#;
    let fd = std::os::fd::OwnedFd::from(theirs);
    let mut py = Py::spawn_with(script, &[], Stdio::from(fd));
    for m in [b"a".to_vec(), vec![9u8; 200_000]] {
        ours.send(&m).unwrap();
        let mut want = b"py:".to_vec();
        want.extend(&m);
        assert_eq!(ours.recv().unwrap(), want);
    }
    ours.send(b"").unwrap();
    py.assert_ok();
}

#[test]
fn python_client_on_an_abstract_name() {
    need_python!();
    let name = format!("ipctest-pipe-{}-pyabstract", std::process::id());
    let l = Listener::bind(Address::abstract_name(&name), Some(b"abs")).unwrap();
    let script = r#"
import sys
from multiprocessing.connection import Client
c = Client('\0' + sys.argv[1], authkey=b'abs')
c.send_bytes(b'from python, abstractly')
"#;
    let mut py = Py::spawn(script, &[&name]);
    let mut c = l.accept().unwrap();
    assert_eq!(c.recv().unwrap(), b"from python, abstractly");
    py.assert_ok();
}

/// A Python process at `('127.0.0.1', port)`: args are `client <port> <key>` or `listener
/// <key>` (it prints the port it got), then it exchanges messages of up to 300 KB.
const PY_TCP: &str = r#"
import sys
from multiprocessing.connection import Client, Listener, AuthenticationError
role, key = sys.argv[1], sys.argv[-1].encode()
def serve(c):
    while True:
        m = c.recv_bytes()
        if m == b'bye':
            break
        c.send_bytes(m[::-1])
try:
    if role == 'client':
        with Client(('127.0.0.1', int(sys.argv[2])), authkey=key) as c:
            c.send_bytes(b'y' * 100_000)
            assert c.recv_bytes() == b'z' * 200_000
            serve(c)
    else:
        with Listener(('127.0.0.1', 0), authkey=key) as l:
            print(l.address[1], flush=True)
            with l.accept() as c:
                serve(c)
    print('finished', sys.version.split()[0], flush=True)
except AuthenticationError:
    print('AuthenticationError', flush=True)
    sys.exit(3)
"#;

#[test]
fn python_over_tcp_both_ways_with_large_messages_and_wrong_keys() {
    need_python!();
    let exchange = |c: &mut ipc_pipe::Connection| reversed_echoes(c, &[0, 1, 70_000, 300_000]);
    // Python's Client against our TCP Listener.
    let l =
        Listener::bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)), Some(b"tcp key")).unwrap();
    let port = l.address().as_tcp().unwrap().port().to_string();
    let mut py = Py::spawn(PY_TCP, &["client", &port, "tcp key"]);
    let mut c = l.accept().unwrap();
    assert_eq!(c.recv().unwrap(), vec![b'y'; 100_000]);
    c.send(&vec![b'z'; 200_000]).unwrap();
    exchange(&mut c);
    let done = py.line();
    assert!(done.starts_with("finished"), "{done}");
    py.assert_ok();
    eprintln!("python client over tcp: CPython {}", done.trim_start_matches("finished "));
    // ... with the wrong key.
    let mut py = Py::spawn(PY_TCP, &["client", &port, "wrong"]);
    let e = l.accept().unwrap_err();
    assert!(matches!(e, Error::AuthFailed { reason: AuthError::WrongDigest, .. }), "{e}");
    assert_eq!(py.line(), "AuthenticationError");
    assert_eq!(py.wait(), 3);
    // Our Client against Python's TCP Listener.
    let mut py = Py::spawn(PY_TCP, &["listener", "tcp key"]);
    let port: u16 = py.line().parse().unwrap();
    let addr = ipc_pipe::Address::tcp(&format!("127.0.0.1:{port}")).unwrap();
    let mut c = Client::connect(addr, Some(b"tcp key")).unwrap();
    exchange(&mut c);
    assert!(py.line().starts_with("finished"));
    py.assert_ok();
    // ... with the wrong key.
    let mut py = Py::spawn(PY_TCP, &["listener", "right"]);
    let port: u16 = py.line().parse().unwrap();
    let e = Client::connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)), Some(b"wrong"))
        .unwrap_err();
    assert!(matches!(e, Error::AuthFailed { reason: AuthError::Rejected, .. }), "{e}");
    assert_eq!(py.line(), "AuthenticationError");
    assert_eq!(py.wait(), 3);
}
