//! ipc-pipe rows (B1 round trips, B2 throughput).

use super::not_built;
use crate::harness::{Ctx, Outcome};

/// Round trips over a `Connection` pair.
pub fn rtt(_ctx: &Ctx) -> Outcome {
    not_built("ipc-pipe")
}

/// One-way 1 MiB messages.
pub fn tput(_ctx: &Ctx) -> Outcome {
    not_built("ipc-pipe")
}
