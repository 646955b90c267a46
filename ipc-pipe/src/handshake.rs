//! Running the challenge handshake ([`auth`](crate::auth)) over a fresh connection, with a
//! deadline and at most 256 bytes per message read before authentication.

use std::time::Instant;

use crate::auth::{self, AuthError, Digest, Policy};
use crate::connection::Connection;
use crate::core::{FdPolicy, Limit};
use crate::error::{Error, PoisonCause, Result};
use crate::sys;

/// Which side of the handshake we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// The listener: deliver, then answer.
    Server,
    /// The client: answer, then deliver.
    Client,
}

struct Run<'a> {
    conn: &'a mut Connection,
    op: &'static str,
    object: &'a str,
    key: &'a [u8],
    policy: Policy,
    deadline: Instant,
    challenged: bool,
}

impl Run<'_> {
    fn fail(&mut self, reason: AuthError) -> Error {
        self.conn.core.poison(PoisonCause::Handshake);
        Error::AuthFailed { op: self.op, object: self.object.to_owned(), reason }
    }

    fn recv(&mut self) -> Result<Vec<u8>> {
        match self.conn.core.recv("handshake", Limit::Until(self.deadline), FdPolicy::None) {
            Ok(Some((m, _))) => Ok(m),
            Ok(None) | Err(Error::Timeout { .. }) => {
                let challenged = self.challenged;
                Err(self.fail(AuthError::Deadline { challenged }))
            }
            Err(Error::MessageTooLarge { len, .. }) => {
                Err(self.fail(AuthError::MessageTooLong { len }))
            }
            Err(e) if e.is_disconnected() => Err(self.fail(AuthError::Disconnected)),
            Err(Error::Io { source, .. }) => {
                self.conn.core.poison(PoisonCause::Handshake);
                Err(Error::Io { op: self.op, object: self.object.to_owned(), source })
            }
            Err(_) => Err(self.fail(AuthError::UnexpectedReply)),
        }
    }

    fn send(&mut self, msg: &[u8]) -> Result<()> {
        match self.conn.core.send(
            "handshake",
            &[std::io::IoSlice::new(msg)],
            &[],
            Limit::Until(self.deadline),
        ) {
            Ok(()) => Ok(()),
            Err(Error::Timeout { .. }) => {
                let challenged = self.challenged;
                Err(self.fail(AuthError::Deadline { challenged }))
            }
            Err(e) if e.is_disconnected() => Err(self.fail(AuthError::Disconnected)),
            Err(Error::Io { source, .. }) => {
                self.conn.core.poison(PoisonCause::Handshake);
                Err(Error::Io { op: self.op, object: self.object.to_owned(), source })
            }
            Err(_) => Err(self.fail(AuthError::UnexpectedReply)),
        }
    }

    /// Send a challenge, check the answer, send the verdict. Returns our challenge message.
    fn deliver(&mut self) -> Result<Vec<u8>> {
        let mut nonce = [0u8; auth::NONCE_LEN];
        sys::random(&mut nonce).map_err(|e| Error::io(self.op, self.object, e))?;
        let message = auth::challenge_message(Digest::Sha256, &nonce);
        self.send(&auth::challenge_frame(&message))?;
        let response = self.recv()?;
        match auth::verify(self.key, &message, &response, self.policy) {
            Ok(_) => {
                self.send(auth::WELCOME)?;
                Ok(message)
            }
            Err(reason) => {
                // Tell the peer, as CPython does; its failure to hear it changes nothing.
                let _ = self.send(auth::FAILURE);
                Err(self.fail(reason))
            }
        }
    }

    /// Receive a challenge, answer it, check the verdict.
    fn answer(&mut self, ours: Option<&[u8]>) -> Result<()> {
        let frame = self.recv()?;
        self.challenged = true;
        let message = match auth::parse_challenge(&frame) {
            Ok(m) => m,
            Err(reason) => return Err(self.fail(reason)),
        };
        if ours.is_some_and(|o| auth::is_reflection(o, message)) {
            return Err(self.fail(AuthError::Reflected));
        }
        let (_, response) = match auth::respond(self.key, message, self.policy) {
            Ok(r) => r,
            Err(reason) => return Err(self.fail(reason)),
        };
        self.send(&response)?;
        let verdict = self.recv()?;
        auth::check_verdict(&verdict).map_err(|reason| self.fail(reason))
    }
}

/// Authenticate `conn` with `key` as `side`, within `deadline`. On return the connection is
/// back to normal mode; on failure it is poisoned.
pub(crate) fn run(
    conn: &mut Connection,
    side: Side,
    op: &'static str,
    object: &str,
    key: &[u8],
    policy: Policy,
    deadline: Instant,
) -> Result<()> {
    let saved_max = conn.core.reader.max_message;
    conn.core.reader.max_message = auth::MAX_AUTH_MESSAGE;
    conn.core.reader.exact = true;
    let mut run = Run { conn, op, object, key, policy, deadline, challenged: side == Side::Server };
    let result = match side {
        Side::Server => run.deliver().and_then(|ours| run.answer(Some(&ours))),
        Side::Client => run.answer(None).and_then(|()| run.deliver().map(drop)),
    };
    conn.core.reader.max_message = saved_max;
    conn.core.reader.exact = false;
    result
}
