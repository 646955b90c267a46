//! Waiting on connections and listeners together with shared-memory primitives
//! ([`ipc_shm::Waitable`], feature `select`, used by the `ipc-select` selector): the source is
//! the fd (readable, or hung up), plus a whole frame already read ahead into the
//! connection's buffer, which the fd no longer shows.

use std::os::fd::{AsFd, BorrowedFd};

use ipc_shm::event_count::{Check, Waitable};

use crate::{Connection, Listener, Receiver};

impl Waitable for Connection {
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.as_fd())
    }
    fn check(&self, _: Check) -> bool {
        self.core.reader.has_frame()
    }
}

impl Waitable for Receiver {
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.as_fd())
    }
    fn check(&self, _: Check) -> bool {
        self.core.reader.has_frame()
    }
}

/// Ready when a client is waiting to be accepted.
impl Waitable for Listener {
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.as_fd())
    }
    fn check(&self, _: Check) -> bool {
        false
    }
}
