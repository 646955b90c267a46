//! The crate's error type.

/// What can go wrong while selecting. Messages are one lower-case line naming the operation,
/// the object and the cause.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The selector's doorbell socket could not be made (`socket`/`bind` refused: fd limit,
    /// a sandbox without Unix sockets).
    #[error("{op} selector: cannot make its doorbell socket")]
    Doorbell {
        /// The operation.
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// `poll` failed (other than by a signal).
    #[error("{op} selector: poll failed")]
    Poll {
        /// The operation.
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// This crate's `Result`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
