//! Cross-process Semaphore, BoundedSemaphore, NamedSemaphore, Event and Barrier.
//!
//! This crate is being built; see the workspace README for the family.
#![deny(unsafe_code)]
