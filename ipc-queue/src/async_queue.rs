//! Async sends and receives (feature `tokio`): `recv_async` / `send_async` on the MPMC
//! [`Queue`] and the SPSC [`Sender`] / [`Receiver`], awaiting the queue's doorbell in
//! tokio's reactor ([`ipc_shm::event_count::ready`]: no helper thread, no busy polling).
//!
//! Cancel-safe: each future takes its message (or its slot) with one synchronous `try_` call
//! after the await, so a future dropped at its await point has taken nothing, and its
//! doorbell registration is withdrawn on drop. A close, a dead producer's half-written slot
//! (recovered on the blocking calls' liveness schedule) and every peer of the other side
//! dead end the wait as they end a blocking call's.

use ipc_shm::event_count::ready;

use crate::error::{RecvError, SendError, TryRecvError, TrySendError};
use crate::{Queue, Receiver, Sender};

fn recv_err(e: TryRecvError) -> Option<RecvError> {
    match e {
        TryRecvError::Empty => None,
        TryRecvError::Closed => Some(RecvError::Closed),
        TryRecvError::Corrupted(c) => Some(RecvError::Corrupted(c)),
        TryRecvError::Unregistered => Some(RecvError::Unregistered),
    }
}

fn send_err(e: TrySendError) -> Option<SendError> {
    match e {
        TrySendError::Full => None,
        TrySendError::Closed => Some(SendError::Closed),
        TrySendError::TooLong { len, max } => Some(SendError::TooLong { len, max }),
        TrySendError::Corrupted(c) => Some(SendError::Corrupted(c)),
        TrySendError::Unregistered => Some(SendError::Unregistered),
    }
}

impl Queue {
    /// Receive one message, awaiting it (a tokio runtime with I/O and time enabled).
    /// Cancel-safe: dropped before it completes, it has taken no message.
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    pub async fn recv_async(&self) -> Result<Vec<u8>, RecvError> {
        let mut waited = false;
        loop {
            match self.try_recv() {
                Ok(m) => return Ok(m),
                Err(e) => {
                    if let Some(e) = recv_err(e) {
                        return Err(e);
                    }
                }
            }
            // Asked only after a wake that found nothing (a liveness query per listed peer).
            if waited && self.senders_gone() {
                // Nothing in the queue and nobody alive who sent: as a blocking recv says.
                return Err(RecvError::Disconnected);
            }
            ready(self).await;
            waited = true;
        }
    }

    /// Send one message, awaiting room. Cancel-safe: dropped before it completes, it has
    /// sent nothing and holds no slot.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub async fn send_async(&self, msg: &[u8]) -> Result<(), SendError> {
        let mut waited = false;
        loop {
            match self.try_send(msg) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    if let Some(e) = send_err(e) {
                        return Err(e);
                    }
                }
            }
            // Asked only after a wake that found nothing (a liveness query per listed peer).
            if waited && self.receivers_gone() {
                return Err(SendError::Disconnected);
            }
            ready(&self.writable()).await;
            waited = true;
        }
    }
}

impl Receiver {
    /// Receive one message, awaiting it. Cancel-safe, as [`Queue::recv_async`].
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    pub async fn recv_async(&mut self) -> Result<Vec<u8>, RecvError> {
        let mut waited = false;
        loop {
            match self.try_recv() {
                Ok(m) => return Ok(m),
                Err(e) => {
                    if let Some(e) = recv_err(e) {
                        return Err(e);
                    }
                }
            }
            // Asked only after a wake that found nothing (a liveness query per listed peer).
            if waited && self.producer_gone() {
                // Look once more: what it published before dying is received first.
                return match self.try_recv() {
                    Ok(m) => Ok(m),
                    Err(e) => Err(recv_err(e).unwrap_or(RecvError::Disconnected)),
                };
            }
            ready(&*self).await;
            waited = true;
        }
    }
}

impl Sender {
    /// Send one message, awaiting room. Cancel-safe, as [`Queue::send_async`].
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub async fn send_async(&mut self, msg: &[u8]) -> Result<(), SendError> {
        let mut waited = false;
        loop {
            match self.try_send(msg) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    if let Some(e) = send_err(e) {
                        return Err(e);
                    }
                }
            }
            // Asked only after a wake that found nothing (a liveness query per listed peer).
            if waited && self.consumer_gone() {
                return Err(SendError::Disconnected);
            }
            ready(&*self).await;
            waited = true;
        }
    }
}
