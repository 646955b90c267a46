//! Integration tests of ipc-queue in one process (threads, anonymous and named segments).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod adversary;
mod flavours;
mod mpmc;
