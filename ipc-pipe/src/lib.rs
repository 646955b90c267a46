//! Message pipes, fd passing, and Python's `multiprocessing.connection` Listener/Client, for
//! Rust processes that talk to each other or to Python.
//!
//! A Rust process serves a Python worker over an authenticated local socket, exactly as a
//! Python `Listener` would:
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use ipc_pipe::Listener;
//!
//! # let dir = std::env::temp_dir().join(format!("ipc-pipe-doc-{}", std::process::id()));
//! # std::fs::create_dir(&dir)?;
//! let path = dir.join("jobs.sock");
//! let listener = Listener::bind(&path, Some(b"secret key"))?;
//!
//! // A Python worker, using nothing but the standard library.
//! let mut python = std::process::Command::new("python3")
//!     .arg("-c")
//!     .arg(
//!         "import sys\n\
//!          from multiprocessing.connection import Client\n\
//!          with Client(sys.argv[1], authkey=b'secret key') as conn:\n\
//!          \x20   job = conn.recv_bytes()\n\
//!          \x20   conn.send_bytes(job.upper())\n",
//!     )
//!     .arg(&path)
//!     .spawn()?;
//!
//! let mut conn = listener.accept()?; // both sides proved they hold the key
//! conn.send(b"resize image 42")?;
//! assert_eq!(conn.recv()?, b"RESIZE IMAGE 42");
//! assert!(python.wait()?.success());
//! # drop(listener);
//! # std::fs::remove_dir(&dir)?;
//! # Ok(()) }
//! ```
//!
//! # What is here
//! - [`pipe`] makes two connected duplex [`Connection`]s (a `socketpair`), like Python's
//!   `Pipe()`; [`simplex`] a one-way [`Sender`]/[`Receiver`] over a pipe whose buffer is
//!   raised to 1 MiB. Messages: [`send`](Connection::send),
//!   [`send_vectored`](Connection::send_vectored), [`send_timeout`](Connection::send_timeout),
//!   [`try_send`](Connection::try_send), [`recv`](Connection::recv),
//!   [`recv_into`](Connection::recv_into) (reuses your buffer),
//!   [`try_recv`](Connection::try_recv), [`recv_timeout`](Connection::recv_timeout),
//!   [`poll`](Connection::poll). Every fd is `CLOEXEC`; connections are [`AsFd`] and
//!   `From<OwnedFd>`, so one end can be handed to a child (Python's
//!   `multiprocessing.connection.Connection(fd)` reads it too).
//! - The [`frame`] format is CPython's: a 4-byte big-endian signed length, or `-1` and an
//!   8-byte length above `i32::MAX`. A length above [`max_message`](Connection::max_message)
//!   (default 64 MiB) is refused from the prefix, before any allocation, and poisons the
//!   connection; a peer gone mid-frame is [`Error::UnexpectedEof`]; once a frame has started,
//!   the rest must arrive within the [frame timeout](Connection::set_frame_timeout) (30 s).
//! - fd passing: [`send_fds`](Connection::send_fds) / [`recv_fds`](Connection::recv_fds)
//!   (`SCM_RIGHTS`, received with `MSG_CMSG_CLOEXEC`). Received fds belong to the message they
//!   were sent with. A receive that accepts no fds (`recv`, `try_recv`, `recv_into`, the typed
//!   receives, the handshake) offers the kernel no room for them, so fds a peer attaches are
//!   closed by the kernel and never reach our fd table, and the connection is poisoned at the
//!   first such batch ([`Error::UnexpectedFds`]); since a receive may read ahead into the next
//!   message, receive every message with `recv_fds` on a connection that carries fds. fds cut
//!   by the kernel (`MSG_CTRUNC`) are closed and reported ([`Error::FdsTruncated`]).
//! - [`peer_credentials`](Connection::peer_credentials) (`SO_PEERCRED`), and an allowed-uid
//!   policy at accept ([`ListenerOptions::allowed_uids`]).
//! - [`Listener::bind`] / [`Client::connect`] on local sockets (via the `interprocess`
//!   crate): a filesystem path by default (its directory verified by `fstat` on a directory
//!   fd, the socket file's mode set exactly, a dead listener's socket reclaimed under a `flock`
//!   lock file, anything else at the path refused and left untouched, both files removed on
//!   drop), or a Linux abstract name when asked ([`Address::abstract_name`]; then a key is
//!   required and only our uid is admitted by default). The handshake is Python's mutual HMAC
//!   challenge ([`auth`]): we send the `{sha256}` challenge of CPython 3.12+ and answer both it
//!   and the legacy HMAC-MD5 challenge of 3.11 (refusable with
//!   [`ListenerOptions::accept_md5`]); digests are compared in constant time, each message
//!   read before authentication is at most 256 bytes, and the whole handshake has a deadline
//!   (5 s). Unlike CPython, a keyed client facing a keyless listener fails at that deadline
//!   instead of hanging forever (cpython#123736), a keyless client facing a keyed listener
//!   fails at its first `recv` ([`Error::AuthRequired`]), and an empty key is refused rather
//!   than silently meaning "no key" on one side only (cpython#88118). Handshakes run side by
//!   side: a client that says nothing holds up no other.
//! - The same over TCP ([`Address::Tcp`], or [`Address::tcp`]`("host:port")`), as Python's
//!   `Listener(('127.0.0.1', 6000), authkey=...)`: the same frames, handshake, deadlines and
//!   limits, `TCP_NODELAY` on every connection. TCP carries no peer credentials (an
//!   allowed-uid policy is an error at bind) and no fds; a keyless listener beyond loopback is
//!   refused unless allowed ([`ListenerOptions::allow_keyless_network`]). The handshake proves
//!   both sides hold the key but does not encrypt: across an untrusted network, run the
//!   connection through a TLS tunnel (stunnel, `ssh -L`, a VPN) or use a message broker.
//! - Features: `serde` (`send_value`/`recv_value`, postcard), `pickle`
//!   (`send_pickle`/`recv_pickle`: a Python peer's `conn.send(obj)`/`conn.recv()`; pickles are
//!   bounds-checked by `pickle_guard` before serde-pickle decodes them),
//!   `tokio` (`AsyncConnection` over `AsyncFd`), `shm` (`send_shm`/`recv_shm`: hand a sealed
//!   memfd `ipc_shm::Shm` to an unrelated process, checked by `fstat` and `F_GET_SEALS` before
//!   it is mapped).
//!
//! # Errors
//! One [`Error`] enum; each message names the operation, the connection or address, and the
//! cause, with sizes and limits where they apply (`recv on connection to "/run/app.sock":
//! message of 4096 bytes exceeds the limit of 1024 bytes`). [`Error::is_disconnected`] and
//! [`Error::is_timeout`] sort the common cases. A connection that saw a protocol violation is
//! poisoned ([`Error::Poisoned`]): drop it.
//!
//! The error owns everything it holds (it borrows neither the message nor the connection),
//! so `?` works in a function returning [`Result`] or `Box<dyn Error>` alike:
//!
//! ```
//! use ipc_pipe::Connection;
//!
//! /// Send a request and wait for the reply.
//! fn ask(conn: &mut Connection, request: &[u8]) -> ipc_pipe::Result<Vec<u8>> {
//!     conn.send(request)?;
//!     conn.recv()
//! }
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let (mut client, mut server) = ipc_pipe::pipe()?;
//!     let echo = std::thread::spawn(move || -> ipc_pipe::Result<()> {
//!         let m = server.recv()?;
//!         server.send(&m.to_ascii_uppercase())?;
//!         Ok(())
//!     });
//!     let buf = b"ping".to_vec();
//!     assert_eq!(ask(&mut client, &buf)?, b"PING");
//!     echo.join().expect("echo thread")?;
//!     // The other end is gone: the next receive says so.
//!     assert!(client.recv().is_err_and(|e| e.is_disconnected()));
//!     Ok(())
//! }
//! ```
//!
//! # Blocking and deadlines
//! Every blocking call has `try_` and `_timeout` forms. The fd stays in blocking mode, so a
//! plain `send`/`recv` costs one syscall; the other forms use `MSG_DONTWAIT` (sockets) or
//! `poll` (pipes).
//!
//! # Where unsafe lives
//! `sys.rs`: `recvmsg` and the `CMSG_*` walk over its control data through libc (rustix's
//! `recvmsg` also fetches a peer address and walks the ancillary buffer twice, a measurable
//! cost on every message), `Vec::set_len` after the kernel filled a vector's spare capacity
//! (large bodies are read straight into their allocation without zeroing it first), and
//! `getsockopt(SO_PEERCRED)` (rustix's credential type cannot hold the pid 0 the kernel
//! reports for a peer in another pid namespace). `async_conn.rs` (feature `tokio`):
//! `AsyncFd::register` on an fd the registration owns. Everything else is
//! `#![deny(unsafe_code)]`.
//!
//! # Features
//! | feature | adds |
//! |---|---|
//! | `serde` | `send_value`, `recv_value`, `recv_value_timeout` (postcard) |
//! | `pickle` | `send_pickle`, `recv_pickle`, `recv_pickle_timeout`, the `pickle_guard` module |
//! | `tokio` | `AsyncConnection` |
//! | `shm` | `send_shm`, `recv_shm`, `recv_shm_timeout`, the `shm` module |
//!
//! # Platform
//! Linux only; other targets fail to compile with a clear message.
#![deny(unsafe_code)]

mod platform_check;

mod address;
#[cfg(feature = "tokio")]
mod async_conn;
pub mod auth;
mod connection;
mod core;
mod creds;
mod error;
pub mod frame;
mod handshake;
mod listener;
/// The guard that bounds what decoding a peer's pickle may allocate (the `ipc-pickle` crate,
/// shared with ipc-queue).
#[cfg(feature = "pickle")]
pub use ipc_pickle as pickle_guard;
mod reader;
#[cfg(feature = "select")]
mod select;
#[cfg(feature = "shm")]
pub mod shm;
mod simplex;
mod sockdir;
mod sys;
#[cfg(any(feature = "serde", feature = "pickle"))]
mod value;

#[cfg(doc)]
use std::os::fd::AsFd;

pub use address::Address;
#[cfg(feature = "tokio")]
pub use async_conn::AsyncConnection;
pub use auth::{AuthError, Digest};
pub use connection::{Connection, pipe};
pub use creds::Credentials;
pub use error::{Error, PoisonCause, Result};
pub use frame::FrameError;
pub use listener::{
    Client, ClientOptions, DEFAULT_CONNECT_TIMEOUT, DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_MAX_PENDING_HANDSHAKES, Listener, ListenerOptions,
};
#[cfg(feature = "pickle")]
pub use pickle_guard::{PickleError, PickleLimit};
pub use simplex::{Receiver, Sender, simplex};
