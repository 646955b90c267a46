//! In-process tests of ipc-lock: one integration binary (threads, heap or anonymous shared
//! memory, model owners). The cross-process suite is `tests/tests/lock.rs` in ipc-testkit.
#![cfg(not(ipc_loom))] // the loom build runs tests/loom.rs only
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod condvar;
mod file_lock;
mod garbage;
mod lock_api_surface;
mod model;
mod mutex;
mod reentrant;
mod rwlock;
