//! [`Address`]: where a [`Listener`](crate::Listener) listens and a
//! [`Client`](crate::Client) connects.

use std::fmt;
use std::path::{Path, PathBuf};

/// A local socket address: a filesystem path (the default), or a Linux abstract name (only
/// when asked for, with [`Address::abstract_name`]).
///
/// Paths are what Python's `Listener(address)` and `Client(address)` take for `AF_UNIX`.
/// Abstract names live in the network namespace, not the filesystem: any process in it can
/// connect (file permissions do not apply, CVE-2022-42919), so a listener on one requires an
/// authkey and admits only its own uid unless told otherwise. Python spells them
/// `"\0name"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// A socket file at this path.
    Path(PathBuf),
    /// A Linux abstract socket name (the bytes after the leading NUL).
    Abstract(Vec<u8>),
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

    /// The path, for a filesystem address.
    pub fn as_path(&self) -> Option<&Path> {
        match self {
            Address::Path(p) => Some(p),
            Address::Abstract(_) => None,
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Path(p) => write!(f, "{:?}", p.display().to_string()),
            Address::Abstract(n) => write!(f, "abstract \"@{}\"", String::from_utf8_lossy(n)),
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
