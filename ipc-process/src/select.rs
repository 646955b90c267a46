//! Waiting on a child's exit together with shared-memory primitives and pipes
//! ([`ipc_shm::Waitable`], used by the `ipc-select` selector): the source is the child's pidfd
//! ([`Process::sentinel`]), readable once the child has ended.

use std::os::fd::BorrowedFd;

use ipc_shm::event_count::{Check, Waitable};

use crate::{Outcome, Process};

/// Ready once the child has ended (reap it with `join`, `try_join` or `exit_status`).
impl<O: Outcome> Waitable for Process<O> {
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.sentinel())
    }
    fn check(&self, _: Check) -> bool {
        false
    }
}
