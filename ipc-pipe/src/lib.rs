//! Message pipes, fd passing and Python multiprocessing.connection Listener/Client.
//!
//! This crate is being built; see the workspace README for the family.
#![deny(unsafe_code)]
