//! The peers: other libraries and runtimes, measured with the same method in the same run.
//!
//! A peer that cannot run here (feature off, python3 missing) reports
//! [`Fail::Skip`](crate::harness::Fail::Skip) with the reason; it never fails the bench.

pub mod glibc;
pub mod iceoryx2;
pub mod interprocess;
pub mod ipc_channel;
pub mod mp_process;
pub mod procspawn;
pub mod python;
pub mod raw_sync;
pub mod threads;
pub mod tokio_uds;

/// Call `$f::<N>($ctx)` for the message sizes the groups use, else skip.
macro_rules! by_size {
    ($ctx:expr, $f:ident) => {
        match $ctx.size {
            8 => $f::<8>($ctx),
            64 => $f::<64>($ctx),
            1024 => $f::<1024>($ctx),
            65536 => $f::<65536>($ctx),
            s => Err($crate::harness::Fail::Skip(format!("no fixed-size variant for {s} B"))),
        }
    };
}
pub(crate) use by_size;
