//! Handing an [`ipc_shm::Shm`] to another process over a connection (feature `shm`).
//!
//! The message is a 16-byte body (`"ipc-shm\x01"` and the segment length, little-endian
//! `u64`) with the segment's fd attached. The receiver refuses anything but exactly one fd
//! that is a regular file (a memfd) of exactly the announced length and sealed against
//! shrinking (so the sender cannot truncate it under the mapping and SIGBUS us), before it
//! maps anything. Only anonymous segments (`Shm::anonymous`, sealed memfds) pass; named
//! segments are shared by name instead.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects, clippy::panic_in_result_fn)]

use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use ipc_shm::Shm;
use rustix::fs::{FileType, SealFlags};

use crate::connection::Connection;
use crate::core::{FdPolicy, Limit};
use crate::error::{Error, Result};

/// Magic at the start of a segment message.
pub const SHM_MAGIC: [u8; 8] = *b"ipc-shm\x01";
/// Length of a segment message body.
pub const SHM_MESSAGE_LEN: usize = 16;

/// The body announcing a segment of `len` bytes.
pub fn encode_shm_message(len: u64) -> [u8; SHM_MESSAGE_LEN] {
    let mut m = [0u8; SHM_MESSAGE_LEN];
    let (magic, size) = m.split_at_mut(8);
    magic.copy_from_slice(&SHM_MAGIC);
    size.copy_from_slice(&len.to_le_bytes());
    m
}

/// The length announced by a segment message body.
///
/// # Errors
/// A description of what is wrong with it.
pub fn decode_shm_message(body: &[u8]) -> std::result::Result<u64, &'static str> {
    let Some((magic, size)) = body.split_first_chunk::<8>() else {
        return Err("message too short for a segment message");
    };
    if *magic != SHM_MAGIC {
        return Err("not a segment message (bad magic)");
    }
    let Ok(size) = <[u8; 8]>::try_from(size) else {
        return Err("segment message of the wrong length");
    };
    match u64::from_le_bytes(size) {
        0 => Err("segment message announces 0 bytes"),
        n => Ok(n),
    }
}

fn kind_name(t: FileType) -> &'static str {
    match t {
        FileType::RegularFile => "regular file",
        FileType::Directory => "directory",
        FileType::Symlink => "symlink",
        FileType::Fifo => "FIFO",
        FileType::Socket => "socket",
        FileType::CharacterDevice => "character device",
        FileType::BlockDevice => "block device",
        _ => "file of unknown type",
    }
}

/// Check a received fd against the announced length and map it.
fn vet_segment(fd: OwnedFd, len: u64) -> std::result::Result<Shm, String> {
    let st = rustix::fs::fstat(&fd).map_err(|e| format!("fstat: {}", std::io::Error::from(e)))?;
    let kind = FileType::from_raw_mode(st.st_mode);
    if kind != FileType::RegularFile {
        return Err(format!("a {}, not a memfd", kind_name(kind)));
    }
    let size = u64::try_from(st.st_size).unwrap_or(0);
    if size != len {
        return Err(format!("{size} bytes, but the message announced {len}"));
    }
    let seals = match rustix::fs::fcntl_get_seals(&fd) {
        Ok(s) => s,
        Err(rustix::io::Errno::INVAL) => return Err("not a sealable memfd".to_owned()),
        Err(e) => return Err(format!("F_GET_SEALS: {}", std::io::Error::from(e))),
    };
    if !seals.contains(SealFlags::SHRINK) {
        return Err("not sealed against shrinking (the sender could truncate it)".to_owned());
    }
    Shm::from_fd(fd).map_err(|e| e.to_string())
}

impl Connection {
    /// Send an anonymous segment (a sealed memfd from `Shm::anonymous`): the receiver maps
    /// the same memory with [`recv_shm`](Self::recv_shm). Our mapping stays ours.
    ///
    /// # Errors
    /// As [`send_fds`](Self::send_fds).
    pub fn send_shm(&mut self, shm: &Shm) -> Result<()> {
        let body = encode_shm_message(shm.len() as u64);
        self.send_fds(&body, &[shm.as_fd()])
    }

    /// Receive a segment sent with [`send_shm`](Self::send_shm) and map it, after checking
    /// the fd: exactly one, a regular file (memfd), of the announced size, sealed against
    /// shrinking. A FIFO, directory, socket, device (`/dev/zero`), unsealed or wrongly sized
    /// file is closed and refused.
    ///
    /// # Errors
    /// [`Error::BadFd`], [`Error::UnexpectedFds`], and as [`recv_fds`](Self::recv_fds).
    pub fn recv_shm(&mut self) -> Result<Shm> {
        self.recv_shm_limit(Limit::Block)
    }

    /// [`recv_shm`](Self::recv_shm), waiting at most `timeout`.
    ///
    /// # Errors
    /// [`Error::Timeout`], and as [`recv_shm`](Self::recv_shm).
    pub fn recv_shm_timeout(&mut self, timeout: Duration) -> Result<Shm> {
        self.recv_shm_limit(Limit::after(timeout))
    }

    fn recv_shm_limit(&mut self, limit: Limit) -> Result<Shm> {
        let op = "recv_shm";
        let Some((body, mut fds)) = self.core.recv(op, limit, FdPolicy::UpTo(1))? else {
            return Err(Error::Timeout { op, object: self.core.object(), partial: false });
        };
        let bad = |reason: String| Error::BadFd { op, object: self.core.object(), reason };
        let len = decode_shm_message(&body).map_err(|r| bad(r.to_owned()))?;
        let Some(fd) = fds.pop() else {
            return Err(bad("no file descriptor came with the segment message".to_owned()));
        };
        vet_segment(fd, len).map_err(bad)
    }
}
