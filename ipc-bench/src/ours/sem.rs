//! ipc-sem rows (B6 uncontended and ping-pong).

use super::not_built;
use crate::harness::{Ctx, Outcome};

/// acquire + release, uncontended.
pub fn op(_ctx: &Ctx) -> Outcome {
    not_built("ipc-sem")
}

/// Ping-pong with one semaphore per direction, two processes.
pub fn ping_pong(_ctx: &Ctx) -> Outcome {
    not_built("ipc-sem")
}
