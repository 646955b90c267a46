//! [`Listener`] and [`Client`]: Python's `multiprocessing.connection.Listener`/`Client` over
//! local sockets or TCP, with its challenge handshake, a deadline on every wait, a credential
//! policy and a safely managed socket file.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use interprocess::ConnectWaitMode;
use interprocess::local_socket::traits::Listener as _;
use interprocess::local_socket::{
    ConnectOptions, GenericFilePath, GenericNamespaced, ListenerNonblockingMode,
    ListenerOptions as SocketOptions, Name, ToFsName, ToNsName,
};
use interprocess::os::unix::local_socket::ListenerOptionsExt;
use interprocess::os::unix::uds_local_socket::{Listener as UdsListener, Stream as UdsStream};
use rustix::event::PollFlags;

use crate::address::Address;
use crate::auth::Policy;
use crate::connection::Connection;
use crate::core::Limit;
use crate::creds::Credentials;
use crate::error::{Error, Result};
use crate::handshake::{Handshake, Side};
use crate::reader::{DEFAULT_FRAME_TIMEOUT, DEFAULT_MAX_MESSAGE};
use crate::sockdir::{self, DirRules, SocketFile};
use crate::sys;

/// Default handshake deadline.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default connect deadline.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

fn check_key(
    authkey: Option<&[u8]>,
    op: &'static str,
    address: &Address,
) -> Result<Option<Vec<u8>>> {
    match authkey {
        // CPython's Listener treats b"" as "no key" while its Client authenticates with it, and
        // the two hang (cpython#88118); an empty key protects nothing anyway.
        Some([]) => Err(Error::InvalidAuthKey {
            op,
            object: address.to_string(),
            reason: "the authkey is empty (pass None for no authentication)",
        }),
        Some(k) => Ok(Some(k.to_vec())),
        None => Ok(None),
    }
}

fn wipe(key: &mut Option<Vec<u8>>) {
    if let Some(k) = key {
        k.fill(0);
        std::hint::black_box(&k);
    }
}

fn socket_name<'a>(address: &'a Address, op: &'static str) -> Result<Name<'a>> {
    let bad = |reason| Error::InvalidAddress { op, object: address.to_string(), reason };
    let name = match address {
        Address::Path(p) => {
            if p.as_os_str().len() > sockdir::MAX_SUN_PATH {
                return Err(bad("the path is longer than 107 bytes (sun_path)"));
            }
            p.as_path().to_fs_name::<GenericFilePath>()
        }
        Address::Abstract(n) => {
            if n.is_empty() || n.len() > sockdir::MAX_SUN_PATH - 1 {
                return Err(bad("an abstract name is 1 to 106 bytes"));
            }
            OsStr::from_bytes(n).to_ns_name::<GenericNamespaced>()
        }
        Address::Tcp(_) => return Err(bad("a TCP address is not a local socket name")),
    };
    name.map_err(|_| bad("not a valid local socket name (NUL byte?)"))
}

/// How a [`Listener`] is set up; [`Listener::bind`] uses the defaults.
#[derive(Debug, Clone)]
pub struct ListenerOptions {
    mode: u32,
    allowed_uids: Option<Vec<u32>>,
    any_uid: bool,
    handshake_timeout: Duration,
    max_message: usize,
    frame_timeout: Option<Duration>,
    policy: Policy,
    dir: DirRules,
    max_pending: usize,
    keyless_network: bool,
}

/// Default number of handshakes a listener runs side by side.
pub const DEFAULT_MAX_PENDING_HANDSHAKES: usize = 64;

impl Default for ListenerOptions {
    fn default() -> Self {
        ListenerOptions {
            mode: 0o600,
            allowed_uids: None,
            any_uid: false,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            max_message: DEFAULT_MAX_MESSAGE,
            frame_timeout: Some(DEFAULT_FRAME_TIMEOUT),
            policy: Policy::default(),
            dir: DirRules { create: false, allow_shared: false },
            max_pending: DEFAULT_MAX_PENDING_HANDSHAKES,
            keyless_network: false,
        }
    }
}

impl ListenerOptions {
    /// The defaults: socket file mode 0600, any uid (paths; abstract names: our own uid only),
    /// 5 s handshake deadline, 64 MiB messages, 30 s frame timeout, HMAC-MD5 accepted from
    /// CPython 3.11 peers, the directory must exist and be ours and private.
    pub fn new() -> Self {
        Self::default()
    }

    /// Mode of the socket file (default 0600: only our uid can connect). Others need search
    /// permission on the directory too.
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.mode = mode & 0o777;
        self
    }

    /// Admit only peers whose uid (`SO_PEERCRED`) is in `uids`; others are refused at accept,
    /// before the handshake, with [`Error::PeerNotAllowed`].
    pub fn allowed_uids(&mut self, uids: impl IntoIterator<Item = u32>) -> &mut Self {
        self.allowed_uids = Some(uids.into_iter().collect());
        self
    }

    /// On an abstract name, admit any uid (the default there is our own uid only).
    pub fn allow_any_uid(&mut self) -> &mut Self {
        self.any_uid = true;
        self
    }

    /// Deadline for the handshake of each accepted connection (default 5 s; a huge one
    /// saturates to a century).
    pub fn handshake_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.handshake_timeout = timeout;
        self
    }

    /// On TCP, listen on a non-loopback address without an authkey (default: refused, since
    /// anyone who can reach the port gets in). Even with a key, the connection is not
    /// encrypted: see [`Address`].
    pub fn allow_keyless_network(&mut self, yes: bool) -> &mut Self {
        self.keyless_network = yes;
        self
    }

    /// How many handshakes `accept` runs side by side (default 64, at least 1): clients
    /// beyond that wait in the kernel's backlog until one finishes or reaches its deadline.
    pub fn max_pending_handshakes(&mut self, n: usize) -> &mut Self {
        self.max_pending = n.max(1);
        self
    }

    /// `max_message` of accepted connections (default 64 MiB).
    pub fn max_message(&mut self, max: usize) -> &mut Self {
        self.max_message = max;
        self
    }

    /// Frame timeout of accepted connections (default 30 s).
    pub fn frame_timeout(&mut self, timeout: Option<Duration>) -> &mut Self {
        self.frame_timeout = timeout;
        self
    }

    /// Accept HMAC-MD5 answers (default: yes, CPython 3.11 and older know nothing else).
    pub fn accept_md5(&mut self, yes: bool) -> &mut Self {
        self.policy.allow_md5 = yes;
        self
    }

    /// Create the socket's directory (mode 0700) if it is missing (default: no).
    pub fn create_dir(&mut self, yes: bool) -> &mut Self {
        self.dir.create = yes;
        self
    }

    /// Accept a shared sticky directory such as `/tmp` (default: no, the directory must be
    /// ours and writable by nobody else). Anything another user put at the path is still
    /// refused, never followed or removed.
    pub fn allow_shared_dir(&mut self, yes: bool) -> &mut Self {
        self.dir.allow_shared = yes;
        self
    }

    /// Listen at `address`, authenticating every client with `authkey` (`None`: no
    /// handshake, as Python's `Listener(authkey=None)`).
    ///
    /// For a path: the directory is verified, a `<name>.lock` file next to the socket is
    /// locked for the listener's lifetime, a dead listener's socket is reclaimed, anything
    /// else at the path is refused; both files are removed on drop, by the process that bound
    /// them only (a forked child dropping its copy removes nothing). For TCP: port 0 picks a
    /// free port ([`Listener::address`] tells which); `SO_REUSEADDR` as in CPython.
    ///
    /// # Errors
    /// [`Error::InvalidAuthKey`] (empty key), [`Error::InvalidAddress`] (too long, NUL, an
    /// abstract name without a key, an allowed-uid policy on TCP, no key on TCP beyond
    /// loopback), [`Error::UnsafeDirectory`], [`Error::AddrInUse`], [`Error::Io`].
    pub fn bind(&self, address: impl Into<Address>, authkey: Option<&[u8]>) -> Result<Listener> {
        let address = address.into();
        let op = "bind";
        let key = check_key(authkey, op, &address)?;
        let object = address.to_string();
        let in_use = |e: io::Error| {
            if e.kind() == io::ErrorKind::AddrInUse {
                Error::AddrInUse {
                    op,
                    object: object.clone(),
                    reason: "another socket is bound to it (EADDRINUSE)".to_owned(),
                }
            } else {
                Error::io(op, object.clone(), e)
            }
        };
        let mut allowed = self.allowed_uids.clone();
        let mut address = address;
        let (inner, file) = match &address {
            Address::Tcp(sa) => {
                if allowed.is_some() {
                    return Err(Error::InvalidAddress {
                        op,
                        object,
                        reason: "an allowed-uid policy needs a local socket (TCP carries no \
                                 peer credentials)",
                    });
                }
                if key.is_none() && !sa.ip().is_loopback() && !self.keyless_network {
                    return Err(Error::InvalidAddress {
                        op,
                        object,
                        reason: "a TCP listener beyond loopback without an authkey admits \
                                 anyone who reaches the port; give an authkey, or \
                                 ListenerOptions::allow_keyless_network(true)",
                    });
                }
                let l = std::net::TcpListener::bind(sa).map_err(in_use)?;
                l.set_nonblocking(true).map_err(|e| Error::io(op, object.clone(), e))?;
                // Port 0 becomes the port the kernel chose.
                let bound = l.local_addr().map_err(|e| Error::io(op, object.clone(), e))?;
                (Inner::Tcp(l), Some(bound))
            }
            Address::Path(path) => {
                let prepared = sockdir::prepare(path, self.dir)?;
                let name = prepared
                    .bind_path
                    .as_path()
                    .to_fs_name::<GenericFilePath>()
                    .map_err(|e| Error::io(op, object.clone(), e))?;
                let inner = SocketOptions::new()
                    .name(name)
                    .mode(self.mode)
                    .reclaim_name(false)
                    .try_overwrite(false)
                    .nonblocking(ListenerNonblockingMode::Accept)
                    .create_sync_as::<UdsListener>()
                    .map_err(in_use)?;
                let file =
                    prepared.bound(self.mode).map_err(|e| Error::io(op, object.clone(), e))?;
                (Inner::Local { socket: inner, _file: Some(file) }, None)
            }
            Address::Abstract(_) => {
                if key.is_none() {
                    return Err(Error::InvalidAddress {
                        op,
                        object,
                        reason: "an abstract name needs an authkey (any local process can reach it)",
                    });
                }
                if allowed.is_none() && !self.any_uid {
                    allowed = Some(vec![sys::euid()]);
                }
                let inner = SocketOptions::new()
                    .name(socket_name(&address, op)?)
                    .reclaim_name(false)
                    .nonblocking(ListenerNonblockingMode::Accept)
                    .create_sync_as::<UdsListener>()
                    .map_err(in_use)?;
                (Inner::Local { socket: inner, _file: None }, None)
            }
        };
        if let Some(bound) = file {
            address = Address::Tcp(bound);
        }
        let object = address.to_string();
        Ok(Listener {
            inner,
            label: Arc::from(format!("listener {object}")),
            conn_label: Arc::from(format!("connection accepted on {object}")),
            address,
            key,
            allowed,
            opts: self.clone(),
            pending: Mutex::new(Vec::new()),
        })
    }
}

/// A server speaking Python's `multiprocessing.connection` protocol on a local socket or TCP
/// (see [`Address`]): a Python `Client(address, authkey=...)` connects to it, and so does our
/// [`Client`].
///
/// `accept` authenticates each client (mutual HMAC challenge, at most 256 bytes read before
/// authentication, a deadline) and checks its uid against the policy; a failure is an error of
/// that `accept` only, the listener goes on. Handshakes run side by side (up to
/// [`ListenerOptions::max_pending_handshakes`]): a client that connects and says nothing holds
/// up nobody, and is dropped at its deadline (one `accept` then returns that failure).
/// Handshakes still running when an `accept` returns are kept for the next one.
#[derive(Debug)]
pub struct Listener {
    inner: Inner,
    label: Arc<str>,
    conn_label: Arc<str>,
    address: Address,
    key: Option<Vec<u8>>,
    allowed: Option<Vec<u32>>,
    opts: ListenerOptions,
    /// Handshakes in progress between `accept` calls.
    pending: Mutex<Vec<Pending>>,
}

/// The listening socket.
#[derive(Debug)]
enum Inner {
    /// A local socket, and for a path its socket file. Field order is drop order: the
    /// listening socket closes, then the socket file and the lock file go, then the lock is
    /// released.
    Local {
        socket: UdsListener,
        _file: Option<SocketFile>,
    },
    Tcp(std::net::TcpListener),
}

impl Inner {
    /// Accept one connection (the listening socket is non-blocking); a TCP one gets
    /// `TCP_NODELAY` (frames are small and latency matters, as in CPython's clients).
    fn accept(&self) -> io::Result<(OwnedFd, bool)> {
        match self {
            Inner::Local { socket, .. } => socket.accept().map(|s| (OwnedFd::from(s), false)),
            Inner::Tcp(l) => {
                let (s, _) = l.accept()?;
                s.set_nodelay(true)?;
                Ok((OwnedFd::from(s), true))
            }
        }
    }

    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Inner::Local { socket, .. } => socket.as_fd(),
            Inner::Tcp(l) => l.as_fd(),
        }
    }
}

/// An accepted connection whose handshake is in progress.
#[derive(Debug)]
struct Pending {
    conn: Connection,
    hs: Handshake,
}

/// What admitting a new connection gave.
enum Admitted {
    /// Ready for the application (no key: no handshake).
    Ready(Connection),
    /// Its handshake has started.
    Pending(Pending),
}

fn lock(m: &Mutex<Vec<Pending>>) -> std::sync::MutexGuard<'_, Vec<Pending>> {
    // A panic while the lock was held left a plain vector; it is still consistent.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Listener {
    /// Listen at `address` with the default [`ListenerOptions`].
    ///
    /// # Errors
    /// See [`ListenerOptions::bind`].
    pub fn bind(address: impl Into<Address>, authkey: Option<&[u8]>) -> Result<Listener> {
        ListenerOptions::new().bind(address, authkey)
    }

    /// The address listened on (for TCP, with the port the kernel picked for port 0).
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// Accept the next client, authenticate it and check its credentials.
    ///
    /// # Errors
    /// [`Error::PeerNotAllowed`], [`Error::AuthFailed`] (wrong key, a client without a key
    /// that never answers: within the handshake deadline), [`Error::Io`].
    pub fn accept(&self) -> Result<Connection> {
        match self.accept_limit(Limit::Block)? {
            Some(c) => Ok(c),
            None => Err(self.timeout()),
        }
    }

    /// [`accept`](Self::accept), waiting at most `timeout` for a client to arrive (the
    /// handshake then has its own deadline).
    ///
    /// # Errors
    /// [`Error::Timeout`], and as [`accept`](Self::accept).
    pub fn accept_timeout(&self, timeout: Duration) -> Result<Connection> {
        match self.accept_limit(Limit::after(timeout))? {
            Some(c) => Ok(c),
            None => Err(self.timeout()),
        }
    }

    /// [`accept`](Self::accept) if a client is waiting now; `Ok(None)` otherwise.
    ///
    /// # Errors
    /// As [`accept`](Self::accept).
    pub fn try_accept(&self) -> Result<Option<Connection>> {
        self.accept_limit(Limit::Now)
    }

    fn timeout(&self) -> Error {
        Error::Timeout { op: "accept", object: self.label.to_string(), partial: false }
    }

    fn accept_limit(&self, limit: Limit) -> Result<Option<Connection>> {
        // Handshakes left by earlier calls continue here; what is still running when this
        // call returns goes back for the next (another thread's accept meanwhile takes in
        // new clients on its own).
        let mut pending = std::mem::take(&mut *lock(&self.pending));
        let r = self.accept_loop(&mut pending, limit);
        lock(&self.pending).append(&mut pending);
        r
    }

    fn accept_loop(&self, pending: &mut Vec<Pending>, limit: Limit) -> Result<Option<Connection>> {
        let op = "accept";
        loop {
            // Take in every client waiting in the backlog, while there is room.
            while pending.len() < self.opts.max_pending {
                match self.inner.accept() {
                    Ok((fd, tcp)) => match self.admit(fd, tcp)? {
                        Admitted::Ready(c) => return Ok(Some(c)),
                        Admitted::Pending(p) => pending.push(p),
                    },
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                        ) => {}
                    Err(e) => return Err(Error::io(op, self.label.to_string(), e)),
                }
            }
            // Advance the handshakes whose clients have spoken; fail those past their
            // deadline.
            if let Some(key) = &self.key {
                let mut i = 0;
                while let Some(p) = pending.get_mut(i) {
                    match p.hs.advance(&mut p.conn, key, false) {
                        Ok(true) => return Ok(Some(pending.swap_remove(i).conn)),
                        Ok(false) => i = i.saturating_add(1),
                        Err(e) => {
                            drop(pending.swap_remove(i));
                            return Err(e);
                        }
                    }
                }
            }
            let until = match limit {
                Limit::Now => return Ok(None),
                Limit::Block => None,
                Limit::Until(d) if Instant::now() >= d => return Ok(None),
                Limit::Until(d) => Some(d),
            };
            let earliest = pending.iter().map(|p| p.hs.deadline).min();
            let wake = match (until, earliest) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let mut fds: Vec<BorrowedFd<'_>> = pending.iter().map(|p| p.conn.as_fd()).collect();
            if pending.len() < self.opts.max_pending {
                fds.push(self.inner.as_fd());
            }
            sys::poll_any(&fds, PollFlags::IN, wake)
                .map_err(|e| Error::io(op, self.label.to_string(), e))?;
        }
    }

    fn admit(&self, fd: OwnedFd, tcp: bool) -> Result<Admitted> {
        let op = "accept";
        if let Some(uids) = &self.allowed {
            let creds = sys::peer_creds(fd.as_fd())
                .map(Credentials::from)
                .map_err(|e| Error::io(op, self.label.to_string(), e))?;
            if !uids.contains(&creds.uid) {
                drop(fd);
                return Err(Error::PeerNotAllowed { op, object: self.label.to_string(), creds });
            }
        }
        let mut conn = Connection::with_label(fd, Arc::clone(&self.conn_label));
        conn.core.tcp = tcp;
        conn.set_max_message(self.opts.max_message);
        conn.set_frame_timeout(self.opts.frame_timeout);
        let Some(key) = &self.key else { return Ok(Admitted::Ready(conn)) };
        let deadline = sys::deadline_saturating(self.opts.handshake_timeout);
        let hs = Handshake::start(
            &mut conn,
            Side::Server,
            op,
            &self.label,
            key,
            self.opts.policy,
            deadline,
        )?;
        Ok(Admitted::Pending(Pending { conn, hs }))
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        wipe(&mut self.key);
    }
}

/// How a [`Client`] connects; [`Client::connect`] uses the defaults.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    connect_timeout: Option<Duration>,
    handshake_timeout: Duration,
    max_message: usize,
    frame_timeout: Option<Duration>,
    policy: Policy,
    keyless_network: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Some(DEFAULT_CONNECT_TIMEOUT),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            max_message: DEFAULT_MAX_MESSAGE,
            frame_timeout: Some(DEFAULT_FRAME_TIMEOUT),
            policy: Policy::default(),
            keyless_network: false,
        }
    }
}

impl ClientOptions {
    /// The defaults: 10 s to connect (a listener's backlog can be full), 5 s for the
    /// handshake, 64 MiB messages, 30 s frame timeout, HMAC-MD5 accepted from CPython 3.11.
    pub fn new() -> Self {
        Self::default()
    }

    /// Deadline to get connected (`None`: wait as long as the listener's backlog stays full).
    pub fn connect_timeout(&mut self, timeout: Option<Duration>) -> &mut Self {
        self.connect_timeout = timeout;
        self
    }

    /// Deadline for the handshake (default 5 s; a huge one saturates to a century).
    pub fn handshake_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.handshake_timeout = timeout;
        self
    }

    /// `max_message` of the connection (default 64 MiB).
    pub fn max_message(&mut self, max: usize) -> &mut Self {
        self.max_message = max;
        self
    }

    /// Frame timeout of the connection (default 30 s).
    pub fn frame_timeout(&mut self, timeout: Option<Duration>) -> &mut Self {
        self.frame_timeout = timeout;
        self
    }

    /// Accept HMAC-MD5 (default: yes, for CPython 3.11 listeners).
    pub fn accept_md5(&mut self, yes: bool) -> &mut Self {
        self.policy.allow_md5 = yes;
        self
    }

    /// On TCP, connect to a non-loopback address without an authkey (default: refused: the
    /// peer is then whoever answers at that address). Even with a key, the connection is
    /// not encrypted: see [`Address`].
    pub fn allow_keyless_network(&mut self, yes: bool) -> &mut Self {
        self.keyless_network = yes;
        self
    }

    /// Connect to the listener at `address` and, with an `authkey`, run the handshake.
    ///
    /// Without a key, the first message received is checked: a `#CHALLENGE#` means the
    /// listener wants a key, and `recv` fails at once with [`Error::AuthRequired`] instead of
    /// handing the challenge to the application. With a key, a listener that sends no
    /// challenge (it has no key: CPython's client hangs forever there, cpython#123736) fails
    /// the handshake at its deadline, or at once if it sends anything else.
    ///
    /// # Errors
    /// [`Error::InvalidAuthKey`], [`Error::InvalidAddress`], [`Error::Timeout`] (connect
    /// deadline), [`Error::AuthFailed`], [`Error::Io`] (no listener: `ENOENT`,
    /// `ECONNREFUSED`).
    pub fn connect(
        &self,
        address: impl Into<Address>,
        authkey: Option<&[u8]>,
    ) -> Result<Connection> {
        let address = address.into();
        let op = "connect";
        let mut key = check_key(authkey, op, &address)?;
        let object = address.to_string();
        let deadline = self.connect_timeout.and_then(sys::deadline_after);
        let (fd, tcp) = match &address {
            Address::Tcp(sa) => {
                if key.is_none() && !sa.ip().is_loopback() && !self.keyless_network {
                    return Err(Error::InvalidAddress {
                        op,
                        object,
                        reason: "connecting beyond loopback without an authkey trusts whoever \
                                 answers; give an authkey, or \
                                 ClientOptions::allow_keyless_network(true)",
                    });
                }
                (
                    connect_tcp(*sa, deadline).map_err(|e| match e.kind() {
                        io::ErrorKind::TimedOut => {
                            Error::Timeout { op, object: object.clone(), partial: false }
                        }
                        _ => Error::io(op, object.clone(), e),
                    })?,
                    true,
                )
            }
            _ => (connect_local(&address, op, &object, deadline)?, false),
        };
        let mut conn = Connection::with_label(fd, format!("connection to {object}"));
        conn.core.tcp = tcp;
        conn.set_max_message(self.max_message);
        conn.set_frame_timeout(self.frame_timeout);
        match &key {
            Some(k) => {
                let hs = sys::deadline_saturating(self.handshake_timeout);
                let r = Handshake::start(&mut conn, Side::Client, op, &object, k, self.policy, hs)
                    .and_then(|mut h| h.advance(&mut conn, k, true));
                wipe(&mut key);
                r?;
            }
            None => conn.core.challenge_check = true,
        }
        Ok(conn)
    }
}

/// Connect to a local socket, retrying while its backlog is full, until `deadline`.
fn connect_local(
    address: &Address,
    op: &'static str,
    object: &str,
    deadline: Option<Instant>,
) -> Result<OwnedFd> {
    let name = socket_name(address, op)?;
    loop {
        let mode = match deadline {
            None => ConnectWaitMode::Unbounded,
            Some(d) => ConnectWaitMode::Timeout(d.saturating_duration_since(Instant::now())),
        };
        let stream = ConnectOptions::new()
            .name(name.borrow())
            .wait_mode(mode)
            .connect_sync_as::<UdsStream>();
        match stream {
            Ok(s) => {
                let fd = OwnedFd::from(s);
                // A full backlog can leave the socket unconnected (EAGAIN): try again.
                if sys::is_connected(fd.as_fd()) {
                    return Ok(fd);
                }
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock) => {}
            Err(e) => return Err(Error::io(op, object.to_owned(), e)),
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(Error::Timeout { op, object: object.to_owned(), partial: false });
        }
        // The backlog is full: back off briefly and retry until the deadline.
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Connect over TCP within `deadline`, with `TCP_NODELAY`.
fn connect_tcp(sa: std::net::SocketAddr, deadline: Option<Instant>) -> io::Result<OwnedFd> {
    let stream = match deadline {
        None => std::net::TcpStream::connect(sa)?,
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            std::net::TcpStream::connect_timeout(&sa, left)?
        }
    };
    stream.set_nodelay(true)?;
    Ok(OwnedFd::from(stream))
}

/// Connects to a [`Listener`] (or a Python `multiprocessing.connection.Listener`), like
/// Python's `Client(address, authkey=...)`.
#[derive(Debug, Clone, Copy)]
pub struct Client;

impl Client {
    /// Connect with the default [`ClientOptions`].
    ///
    /// # Errors
    /// See [`ClientOptions::connect`].
    pub fn connect(address: impl Into<Address>, authkey: Option<&[u8]>) -> Result<Connection> {
        ClientOptions::new().connect(address, authkey)
    }

    /// Connect, waiting at most `timeout` to get connected.
    ///
    /// # Errors
    /// See [`ClientOptions::connect`].
    pub fn connect_timeout(
        address: impl Into<Address>,
        authkey: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Connection> {
        ClientOptions::new().connect_timeout(Some(timeout)).connect(address, authkey)
    }
}
