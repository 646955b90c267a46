//! ipc-pipe rows (B1 round trips, B2 throughput): framed messages (Python's
//! `multiprocessing.connection` format) over a socketpair (`pipe()`), a pipe (`simplex()`) or
//! TCP loopback (`Listener`/`Client`).

use std::hint::black_box;

use ipc_pipe::Connection;

use crate::harness::{Ctx, Fail, Initiator, OrFail, Outcome, ping_pong, stream_from_peer};

fn pipe_err(e: impl std::fmt::Display) -> Fail {
    Fail::Error(format!("ipc-pipe: {e}"))
}

struct ConnInit {
    conn: Connection,
    buf: Vec<u8>,
}

impl Initiator for ConnInit {
    fn round_trip(&mut self) -> Result<(), Fail> {
        self.conn.send(&self.buf).map_err(pipe_err)?;
        self.conn.recv_into(&mut self.buf).map(|_| ()).map_err(pipe_err)
    }

    fn stop(&mut self) {
        if let Some(b) = self.buf.first_mut() {
            *b = 1;
        }
        let _ = self.conn.send(&self.buf);
    }
}

/// Round trips over a `Connection` pair.
pub fn rtt(ctx: &Ctx) -> Outcome {
    let (a, b) = ipc_pipe::pipe().or_fail("pipe")?;
    rtt_between(ctx, a, b)
}

/// Round trips over TCP loopback: a `Listener` on 127.0.0.1 and a `Client` (no key: the
/// handshake is not what is measured).
pub fn tcp_rtt(ctx: &Ctx) -> Outcome {
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let l = ipc_pipe::Listener::bind(loopback, None).or_fail("tcp listener")?;
    let a = ipc_pipe::Client::connect(l.address().clone(), None).or_fail("tcp client")?;
    let b = l.accept().or_fail("tcp accept")?;
    drop(l);
    rtt_between(ctx, a, b)
}

/// Round trips from `a` to an echo on `b` (run in the peer process).
fn rtt_between(ctx: &Ctx, a: Connection, mut b: Connection) -> Outcome {
    let size = ctx.size.max(1);
    let echo = move || -> Result<(), Fail> {
        let mut buf = Vec::with_capacity(size);
        loop {
            b.recv_into(&mut buf).map_err(pipe_err)?;
            if buf.first() == Some(&1) {
                return Ok(());
            }
            b.send(&buf).map_err(pipe_err)?;
        }
    };
    ping_pong(ctx, 0, echo, ConnInit { conn: a, buf: vec![0u8; size] })
}

/// One-way 1 MiB messages over a `Connection` pair (socketpair).
pub fn tput(ctx: &Ctx) -> Outcome {
    let size = ctx.size.max(1);
    let (mut a, mut b) = ipc_pipe::pipe().or_fail("pipe")?;
    let writer = move || -> Result<(), Fail> {
        let msg = vec![7u8; size];
        loop {
            b.send(&msg).map_err(pipe_err)?;
        }
    };
    let mut buf = Vec::with_capacity(size);
    stream_from_peer(ctx, size as u64, writer, move || {
        a.recv_into(&mut buf).map_err(pipe_err)?;
        black_box(&buf);
        Ok(())
    })
}

/// One-way 1 MiB messages over `simplex()` (a pipe grown to its maximum size).
pub fn simplex_tput(ctx: &Ctx) -> Outcome {
    let size = ctx.size.max(1);
    let (mut tx, mut rx) = ipc_pipe::simplex().or_fail("simplex")?;
    let writer = move || -> Result<(), Fail> {
        let msg = vec![7u8; size];
        loop {
            tx.send(&msg).map_err(pipe_err)?;
        }
    };
    let mut buf = Vec::with_capacity(size);
    stream_from_peer(ctx, size as u64, writer, move || {
        rx.recv_into(&mut buf).map_err(pipe_err)?;
        black_box(&buf);
        Ok(())
    })
}
