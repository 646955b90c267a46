//! Message pipes, fd passing and Python multiprocessing.connection Listener/Client.
#![deny(unsafe_code)]

mod platform_check;

mod address;
pub mod auth;
mod connection;
mod core;
mod creds;
mod error;
pub mod frame;
mod handshake;
mod listener;
mod reader;
mod simplex;
mod sockdir;
mod sys;

pub use address::Address;
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
