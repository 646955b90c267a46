//! In-process tests of ipc-sem (threads over heap or anonymous shared memory).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
