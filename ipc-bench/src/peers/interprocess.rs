//! interprocess 2.4 local sockets (Unix domain sockets in the abstract namespace).

use std::io::{Read, Write};

use interprocess::local_socket::{GenericNamespaced, ListenerOptions, Stream, prelude::*};

use crate::harness::{Ctx, Fail, Initiator, OrFail, Outcome, ping_pong, stream_from_peer};

fn unique_name() -> Result<String, Fail> {
    Ok(format!("{}.sock", ipc_shm::random_name("ipcbench-ip").or_fail("name")?))
}

/// Listen, fork the peer (which connects), accept: the connected pair.
fn listen(name: &str) -> Result<interprocess::local_socket::Listener, Fail> {
    let n = name.to_ns_name::<GenericNamespaced>().or_fail("socket name")?;
    ListenerOptions::new().name(n).create_sync().or_fail("listen")
}

fn connect(name: &str) -> Result<Stream, Fail> {
    let n = name.to_ns_name::<GenericNamespaced>().or_fail("socket name")?;
    Stream::connect(n).or_fail("connect")
}

struct SockInit {
    conn: Stream,
    buf: Vec<u8>,
}

impl Initiator for SockInit {
    fn round_trip(&mut self) -> Result<(), Fail> {
        self.conn.write_all(&self.buf).or_fail("write")?;
        self.conn.read_exact(&mut self.buf).or_fail("read")
    }

    fn stop(&mut self) {
        if let Some(b) = self.buf.first_mut() {
            *b = 1;
        }
        let _ = self.conn.write_all(&self.buf);
    }
}

/// Round trips of the group's size over an interprocess local socket stream.
pub fn rtt(ctx: &Ctx) -> Outcome {
    let size = ctx.size.max(1);
    let name = unique_name()?;
    let listener = listen(&name)?;
    let peer_name = name.clone();
    let echo = move || -> Result<(), Fail> {
        let mut conn = connect(&peer_name)?;
        let mut buf = vec![0u8; size];
        loop {
            match conn.read_exact(&mut buf) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(Fail::Error(format!("echo read: {e}"))),
            }
            if buf.first() == Some(&1) {
                return Ok(());
            }
            conn.write_all(&buf).or_fail("echo write")?;
        }
    };
    // The peer connects after the fork inside ping_pong; accept it lazily on the first trip.
    let init = LazyAccept { listener: Some(listener), inner: None, size };
    ping_pong(ctx, 0, echo, init)
}

struct LazyAccept {
    listener: Option<interprocess::local_socket::Listener>,
    inner: Option<SockInit>,
    size: usize,
}

impl LazyAccept {
    fn conn(&mut self) -> Result<&mut SockInit, Fail> {
        if self.inner.is_none() {
            let l = self.listener.take().ok_or_else(|| Fail::Error("no listener".into()))?;
            let conn = l.accept().or_fail("accept")?;
            self.inner = Some(SockInit { conn, buf: vec![0u8; self.size] });
        }
        self.inner.as_mut().ok_or_else(|| Fail::Error("no connection".into()))
    }
}

impl Initiator for LazyAccept {
    fn round_trip(&mut self) -> Result<(), Fail> {
        self.conn()?.round_trip()
    }

    fn stop(&mut self) {
        if let Some(c) = self.inner.as_mut() {
            c.stop();
        }
    }
}

/// One-way 1 MiB chunks over an interprocess local socket stream.
pub fn tput(ctx: &Ctx) -> Outcome {
    let size = ctx.size.max(1);
    let name = unique_name()?;
    let listener = listen(&name)?;
    let peer_name = name.clone();
    let writer = move || -> Result<(), Fail> {
        let mut conn = connect(&peer_name)?;
        let chunk = vec![7u8; size];
        loop {
            conn.write_all(&chunk).or_fail("write")?;
        }
    };
    let mut conn: Option<Stream> = None;
    let mut listener = Some(listener);
    let mut buf = vec![0u8; size];
    stream_from_peer(ctx, size as u64, writer, move || {
        if conn.is_none() {
            let l = listener.take().ok_or_else(|| Fail::Error("no listener".into()))?;
            conn = Some(l.accept().or_fail("accept")?);
        }
        match conn.as_mut() {
            Some(c) => c.read_exact(&mut buf).or_fail("read"),
            None => Err(Fail::Error("no connection".into())),
        }
    })
}
