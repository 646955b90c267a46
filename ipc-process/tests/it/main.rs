//! In-process and small cross-process tests of ipc-process (the fault suite lives in the
//! testkit's tests/process.rs).
ipc_process::auto_init!();

mod smoke;
