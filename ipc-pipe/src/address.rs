//! [`Address`]: where a [`Listener`](crate::Listener) listens and a
//! [`Client`](crate::Client) connects.

use std::fmt;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6, ToSocketAddrs};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Where to listen or connect: a filesystem path (the default for strings and paths), a
/// Linux abstract name (only when asked for, with [`Address::abstract_name`]), or a TCP
/// address ([`Address::tcp`], or any `SocketAddr`).
///
/// Paths are what Python's `Listener(address)` and `Client(address)` take for `AF_UNIX`.
/// Abstract names live in the network namespace, not the filesystem: any process in it can
/// connect (file permissions do not apply, CVE-2022-42919), so a listener on one requires an
/// authkey and admits only its own uid unless told otherwise. Python spells them
/// `"\0name"`.
///
/// TCP addresses are Python's `('127.0.0.1', 6000)`: the same frames and the same
/// handshake, so either side may be Python. TCP carries no peer credentials (an allowed-uid
/// policy is refused at bind), and a listener on a non-loopback address without an authkey is
/// refused unless allowed explicitly. The handshake proves both sides hold the key; it does
/// not encrypt: anyone on the path reads and can alter every message after it. Across an
/// untrusted network, run the connection through a TLS tunnel (stunnel, `ssh -L`, a VPN) or
/// use a message broker.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Address {
    /// A socket file at this path.
    Path(PathBuf),
    /// A Linux abstract socket name (the bytes after the leading NUL).
    Abstract(Vec<u8>),
    /// A TCP address.
    Tcp(SocketAddr),
}

impl Address {
    /// A filesystem path.
    pub fn path(path: impl Into<PathBuf>) -> Address {
        Address::Path(path.into())
    }

    /// A Linux abstract socket name (without the leading NUL).
    pub fn abstract_name(name: impl AsRef<[u8]>) -> Address {
        Address::Abstract(name.as_ref().to_vec())
    }

    /// A TCP address from `"host:port"` (`"127.0.0.1:6000"`, `"[::1]:6000"`,
    /// `"localhost:6000"`: the first address the name resolves to).
    ///
    /// # Errors
    /// [`Error::InvalidAddress`] if it is not `host:port` or resolves to nothing,
    /// [`Error::Io`] if resolving fails.
    pub fn tcp(host_port: &str) -> Result<Address> {
        let object = format!("tcp {host_port}");
        let bad = |reason| Error::InvalidAddress { op: "resolve", object: object.clone(), reason };
        if !host_port.contains(':') {
            return Err(bad("not host:port"));
        }
        let mut addrs = host_port.to_socket_addrs().map_err(|e| {
            if e.kind() == std::io::ErrorKind::InvalidInput {
                bad("not host:port")
            } else {
                Error::io("resolve", object.clone(), e)
            }
        })?;
        addrs.next().map(Address::Tcp).ok_or_else(|| bad("the name resolves to no address"))
    }

    /// The path, for a filesystem address.
    pub fn as_path(&self) -> Option<&Path> {
        match self {
            Address::Path(p) => Some(p),
            _ => None,
        }
    }

    /// The socket address, for a TCP address.
    pub fn as_tcp(&self) -> Option<SocketAddr> {
        match self {
            Address::Tcp(a) => Some(*a),
            _ => None,
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Path(p) => write!(f, "{:?}", p.display().to_string()),
            Address::Abstract(n) => write!(f, "abstract \"@{}\"", String::from_utf8_lossy(n)),
            Address::Tcp(a) => write!(f, "tcp {a}"),
        }
    }
}

impl From<&Path> for Address {
    fn from(p: &Path) -> Address {
        Address::Path(p.to_path_buf())
    }
}

impl From<PathBuf> for Address {
    fn from(p: PathBuf) -> Address {
        Address::Path(p)
    }
}

impl From<&PathBuf> for Address {
    fn from(p: &PathBuf) -> Address {
        Address::Path(p.clone())
    }
}

impl From<&str> for Address {
    fn from(p: &str) -> Address {
        Address::Path(PathBuf::from(p))
    }
}

impl From<String> for Address {
    fn from(p: String) -> Address {
        Address::Path(PathBuf::from(p))
    }
}

impl From<&Address> for Address {
    fn from(a: &Address) -> Address {
        a.clone()
    }
}

impl From<SocketAddr> for Address {
    fn from(a: SocketAddr) -> Address {
        Address::Tcp(a)
    }
}

impl From<SocketAddrV4> for Address {
    fn from(a: SocketAddrV4) -> Address {
        Address::Tcp(a.into())
    }
}

impl From<SocketAddrV6> for Address {
    fn from(a: SocketAddrV6) -> Address {
        Address::Tcp(a.into())
    }
}
