//! tokio's own `UnixStream` ping-pong (a socketpair in the reactor, current-thread runtime
//! each side): the reference of the `async-X` group.

use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{Ctx, Fail, Initiator, OrFail, Outcome, ping_pong, timed_out};

fn runtime() -> Result<tokio::runtime::Runtime, Fail> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().or_fail("tokio runtime")
}

struct UdsInit {
    rt: tokio::runtime::Runtime,
    stream: tokio::net::UnixStream,
    buf: Vec<u8>,
    deadline: Instant,
}

impl Initiator for UdsInit {
    fn round_trip(&mut self) -> Result<(), Fail> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        let (s, buf) = (&mut self.stream, &mut self.buf);
        self.rt
            .block_on(async {
                tokio::time::timeout(left, async {
                    s.write_all(buf).await?;
                    s.read_exact(buf).await.map(|_| ())
                })
                .await
            })
            .map_err(|_| timed_out("unix stream"))?
            .or_fail("unix stream")
    }

    fn stop(&mut self) {
        let s = &mut self.stream;
        let _ = self.rt.block_on(async { s.shutdown().await });
    }
}

/// 64 B each way over a tokio `UnixStream` pair.
pub fn uds_rtt(ctx: &Ctx) -> Outcome {
    let size = ctx.size.max(1);
    let (a, b) = std::os::unix::net::UnixStream::pair().or_fail("socketpair")?;
    let deadline = ctx.peer_deadline();
    let echo = move || -> Result<(), Fail> {
        let rt = runtime()?;
        rt.block_on(async {
            b.set_nonblocking(true).or_fail("nonblocking")?;
            let mut s = tokio::net::UnixStream::from_std(b).or_fail("register")?;
            let mut buf = vec![0u8; size];
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, s.read_exact(&mut buf)).await {
                    Err(_) => return Err(timed_out("unix stream")),
                    Ok(Err(_)) => return Ok(()), // EOF: stop
                    Ok(Ok(_)) => {}
                }
                s.write_all(&buf).await.or_fail("unix stream write")?;
            }
        })
    };
    let rt = runtime()?;
    a.set_nonblocking(true).or_fail("nonblocking")?;
    let stream = {
        let _g = rt.enter();
        tokio::net::UnixStream::from_std(a).or_fail("register")?
    };
    ping_pong(ctx, 0, echo, UdsInit { rt, stream, buf: vec![0u8; size], deadline })
}
