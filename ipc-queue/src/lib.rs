//! Bounded shared-memory queues (MPMC, SPSC, typed, joinable) that survive SIGKILL.
//!
//! This crate is being built; see the workspace README for the family.
#![deny(unsafe_code)]
