//! Robust cross-process Mutex, RwLock, ReentrantMutex, Condvar and FileLock.
//!
//! This crate is being built; see the workspace README for the family.
#![deny(unsafe_code)]
