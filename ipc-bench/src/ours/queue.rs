//! ipc-queue rows (B3 polling, B4 blocking, B5 throughput).

use super::not_built;
use crate::harness::{Ctx, Outcome};

/// SPSC, polling receiver, round trips between two processes.
pub fn spsc_poll(_ctx: &Ctx) -> Outcome {
    not_built("ipc-queue")
}

/// MPMC bytes queue, polling receiver, round trips between two processes.
pub fn mpmc_poll(_ctx: &Ctx) -> Outcome {
    not_built("ipc-queue")
}

/// Zero-copy reserve/commit, polling receiver, round trips.
pub fn zero_copy_poll(_ctx: &Ctx) -> Outcome {
    not_built("ipc-queue")
}

/// SPSC, blocking (adaptive) receive, round trips.
pub fn spsc_block(_ctx: &Ctx) -> Outcome {
    not_built("ipc-queue")
}

/// MPMC, blocking receive, round trips.
pub fn mpmc_block(_ctx: &Ctx) -> Outcome {
    not_built("ipc-queue")
}

/// SPSC one-way throughput.
pub fn spsc_tput(_ctx: &Ctx) -> Outcome {
    not_built("ipc-queue")
}

/// Zero-copy one-way throughput.
pub fn zero_copy_tput(_ctx: &Ctx) -> Outcome {
    not_built("ipc-queue")
}
