//! Running the challenge handshake ([`auth`](crate::auth)) over a fresh connection, with a
//! deadline and at most 256 bytes per message read before authentication.
//!
//! [`Handshake`] is a state machine fed one received frame at a time, so a listener can run
//! the handshakes of many clients side by side (a client that says nothing then holds up
//! nobody but itself, until its deadline); [`Handshake::advance`] with `wait` drives one to
//! the end, blocking.

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

/// What the handshake waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// The answer to the challenge we delivered.
    Response,
    /// The peer's challenge.
    Challenge,
    /// The peer's verdict on our answer.
    Verdict,
    /// Nothing: both sides proved they hold the key.
    Done,
}

/// Where the handshake is; errors name `op` and `object`.
#[derive(Debug)]
pub(crate) struct Handshake {
    side: Side,
    stage: Stage,
    op: &'static str,
    object: String,
    policy: Policy,
    pub(crate) deadline: Instant,
    /// The challenge message we delivered.
    ours: Vec<u8>,
    /// Whether the peer's challenge has arrived (for the deadline's message).
    challenged: bool,
    /// `max_message` of the connection, restored when done.
    saved_max: usize,
}

impl Handshake {
    /// Put `conn` in handshake mode (256-byte messages, reads never past a frame) and send
    /// what goes first (the server's challenge).
    pub(crate) fn start(
        conn: &mut Connection,
        side: Side,
        op: &'static str,
        object: &str,
        key: &[u8],
        policy: Policy,
        deadline: Instant,
    ) -> Result<Handshake> {
        let saved_max = conn.core.reader.max_message;
        conn.core.reader.max_message = auth::MAX_AUTH_MESSAGE;
        conn.core.reader.exact = true;
        let mut hs = Handshake {
            side,
            stage: Stage::Challenge,
            op,
            object: object.to_owned(),
            policy,
            deadline,
            ours: Vec::new(),
            challenged: side == Side::Server,
            saved_max,
        };
        if side == Side::Server {
            hs.deliver(conn)?;
        }
        let _ = key;
        Ok(hs)
    }

    fn fail(&self, conn: &mut Connection, reason: AuthError) -> Error {
        conn.core.poison(PoisonCause::Handshake);
        Error::AuthFailed { op: self.op, object: self.object.clone(), reason }
    }

    /// Receive the next frame: `Ok(None)` when `wait` is false and none is complete yet, or
    /// the deadline passed (an error).
    fn recv(&mut self, conn: &mut Connection, wait: bool) -> Result<Option<Vec<u8>>> {
        let limit = if wait { Limit::Until(self.deadline) } else { Limit::Now };
        let got = conn.core.recv("handshake", limit, FdPolicy::None);
        let reason = match got {
            Ok(Some((m, _))) => return Ok(Some(m)),
            Ok(None) if Instant::now() < self.deadline => return Ok(None),
            Ok(None) | Err(Error::Timeout { .. }) => {
                AuthError::Deadline { challenged: self.challenged }
            }
            Err(Error::MessageTooLarge { len, .. }) => AuthError::MessageTooLong { len },
            Err(Error::UnexpectedFds { .. }) => AuthError::UnexpectedFds,
            Err(e) if e.is_disconnected() => AuthError::Disconnected,
            Err(Error::Io { source, .. }) => {
                conn.core.poison(PoisonCause::Handshake);
                return Err(Error::Io { op: self.op, object: self.object.clone(), source });
            }
            Err(_) => AuthError::Malformed,
        };
        Err(self.fail(conn, reason))
    }

    fn send(&mut self, conn: &mut Connection, msg: &[u8]) -> Result<()> {
        let parts = [std::io::IoSlice::new(msg)];
        let reason = match conn.core.send("handshake", &parts, &[], Limit::Until(self.deadline)) {
            Ok(()) => return Ok(()),
            Err(Error::Timeout { .. }) => AuthError::Deadline { challenged: self.challenged },
            Err(e) if e.is_disconnected() => AuthError::Disconnected,
            Err(Error::Io { source, .. }) => {
                conn.core.poison(PoisonCause::Handshake);
                return Err(Error::Io { op: self.op, object: self.object.clone(), source });
            }
            Err(_) => AuthError::Malformed,
        };
        Err(self.fail(conn, reason))
    }

    /// Send our challenge; the answer comes next.
    fn deliver(&mut self, conn: &mut Connection) -> Result<()> {
        let mut nonce = [0u8; auth::NONCE_LEN];
        sys::random(&mut nonce).map_err(|e| {
            Error::io(self.op, format!("{} (reading random bytes)", self.object), e)
        })?;
        self.ours = auth::challenge_message(Digest::Sha256, &nonce);
        self.send(conn, &auth::challenge_frame(&self.ours))?;
        self.stage = Stage::Response;
        Ok(())
    }

    /// One frame from the peer: check it and send what follows. Returns whether the
    /// handshake is complete.
    fn on_frame(&mut self, conn: &mut Connection, frame: &[u8], key: &[u8]) -> Result<bool> {
        match self.stage {
            Stage::Response => match auth::verify(key, &self.ours, frame, self.policy) {
                Ok(_) => {
                    self.send(conn, auth::WELCOME)?;
                    self.stage =
                        if self.side == Side::Server { Stage::Challenge } else { Stage::Done };
                }
                Err(reason) => {
                    // Tell the peer, as CPython does; its failure to hear it changes nothing.
                    let _ = self.send(conn, auth::FAILURE);
                    return Err(self.fail(conn, reason));
                }
            },
            Stage::Challenge => {
                self.challenged = true;
                let message = auth::parse_challenge(frame).map_err(|r| self.fail(conn, r))?;
                if self.side == Side::Server && auth::is_reflection(&self.ours, message) {
                    return Err(self.fail(conn, AuthError::Reflected));
                }
                let (_, response) =
                    auth::respond(key, message, self.policy).map_err(|r| self.fail(conn, r))?;
                self.send(conn, &response)?;
                self.stage = Stage::Verdict;
            }
            Stage::Verdict => {
                auth::check_verdict(frame).map_err(|r| self.fail(conn, r))?;
                if self.side == Side::Server {
                    self.stage = Stage::Done;
                } else {
                    self.deliver(conn)?;
                }
            }
            Stage::Done => {}
        }
        if self.stage == Stage::Done {
            conn.core.reader.max_message = self.saved_max;
            conn.core.reader.exact = false;
        }
        Ok(self.stage == Stage::Done)
    }

    /// Process what the peer has sent: every complete frame now (`wait` false), or frames
    /// as they come until done or the deadline (`wait` true). Returns whether the handshake
    /// is complete; on failure the connection is poisoned.
    pub(crate) fn advance(
        &mut self,
        conn: &mut Connection,
        key: &[u8],
        wait: bool,
    ) -> Result<bool> {
        while self.stage != Stage::Done {
            let Some(frame) = self.recv(conn, wait)? else { return Ok(false) };
            self.on_frame(conn, &frame, key)?;
        }
        Ok(true)
    }
}
