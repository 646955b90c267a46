//! Message pipes, fd passing and Python multiprocessing.connection Listener/Client.
#![deny(unsafe_code)]

mod platform_check;

mod address;
#[cfg(feature = "tokio")]
mod async_conn;
pub mod auth;
mod connection;
mod core;
mod creds;
mod error;
pub mod frame;
mod handshake;
mod listener;
#[cfg(feature = "pickle")]
pub mod pickle_guard;
mod reader;
#[cfg(feature = "shm")]
pub mod shm;
mod simplex;
mod sockdir;
mod sys;
#[cfg(any(feature = "serde", feature = "pickle"))]
mod value;

pub use address::Address;
#[cfg(feature = "tokio")]
pub use async_conn::AsyncConnection;
pub use auth::{AuthError, Digest};
pub use connection::{Connection, pipe};
pub use creds::Credentials;
pub use error::{Error, PoisonCause, Result};
pub use frame::FrameError;
pub use listener::{
    Client, ClientOptions, DEFAULT_CONNECT_TIMEOUT, DEFAULT_HANDSHAKE_TIMEOUT, Listener,
    ListenerOptions,
};
pub use simplex::{Receiver, Sender, simplex};
