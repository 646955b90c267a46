//! ipc-lock rows (B7 uncontended, B8 contended and handoff, B10 recovery).

use super::not_built;
use crate::harness::{Ctx, Outcome};

/// Mutex lock + increment + unlock, uncontended.
pub fn mutex_op(_ctx: &Ctx) -> Outcome {
    not_built("ipc-lock")
}

/// RwLock read lock + unlock, uncontended.
pub fn rwlock_read_op(_ctx: &Ctx) -> Outcome {
    not_built("ipc-lock")
}

/// Mutex contended by two processes.
pub fn mutex_contended(_ctx: &Ctx) -> Outcome {
    not_built("ipc-lock")
}

/// Mutex handoff to a parked waiter.
pub fn mutex_handoff(_ctx: &Ctx) -> Outcome {
    not_built("ipc-lock")
}

/// Owner SIGKILLed: time until the waiter gets OwnerDied.
pub fn mutex_recovery(_ctx: &Ctx) -> Outcome {
    not_built("ipc-lock")
}
