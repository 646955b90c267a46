//! ipc-shm: segment create + map + unlink (B11).

use std::hint::black_box;

use ipc_shm::ShmOptions;

use crate::harness::{Ctx, OrFail, Outcome, pin, time_ops};

fn create_with(ctx: &Ctx, reserve: bool) -> Outcome {
    pin(Some(0))?;
    let name = ipc_shm::random_name("ipcbench-shm").or_fail("name")?;
    let mut opts = ShmOptions::new();
    opts.reserve(reserve);
    let len = if ctx.size == 0 { 1 << 20 } else { ctx.size };
    // Each create is dropped at once: the creator unlinks on drop.
    time_ops(ctx, 0, || {
        black_box(opts.create(&name, len).or_fail("create")?);
        Ok(())
    })
}

/// `ShmOptions::new().reserve(false).create(..)` then drop (unmap + unlink).
pub fn create(ctx: &Ctx) -> Outcome {
    create_with(ctx, false)
}

/// `Shm::create(..)` (space reserved with fallocate) then drop.
pub fn create_reserved(ctx: &Ctx) -> Outcome {
    create_with(ctx, true)
}
