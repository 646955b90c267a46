//! Peer credentials (`SO_PEERCRED`).

use std::fmt;

/// Who is at the other end of a socket, as the kernel recorded it when the connection was
/// made (`SO_PEERCRED`): not spoofable by the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Credentials {
    /// Process id (of the process that connected, or created the socketpair); 0 when that
    /// process is outside our pid namespace.
    pub pid: u32,
    /// Effective user id.
    pub uid: u32,
    /// Effective group id.
    pub gid: u32,
}

impl From<(u32, u32, u32)> for Credentials {
    fn from((pid, uid, gid): (u32, u32, u32)) -> Credentials {
        Credentials { pid, uid, gid }
    }
}

impl fmt::Display for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {} uid {} gid {}", self.pid, self.uid, self.gid)
    }
}
