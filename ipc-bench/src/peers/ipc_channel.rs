//! servo's ipc-channel 0.23: `bytes_channel` and typed channels (serde), across `fork`.

use crate::harness::{Ctx, Outcome};

#[cfg(feature = "ipc-channel")]
mod imp {
    use ipc_channel::ipc::{self, IpcBytesReceiver, IpcBytesSender, IpcReceiver, IpcSender};

    use crate::harness::{Ctx, Fail, Initiator, OrFail, Outcome, ping_pong, stream_from_peer};

    struct BytesInit {
        tx: IpcBytesSender,
        rx: IpcBytesReceiver,
        buf: Vec<u8>,
    }

    impl Initiator for BytesInit {
        fn round_trip(&mut self) -> Result<(), Fail> {
            self.tx.send(&self.buf).or_fail("send")?;
            self.buf = self.rx.recv().or_fail("recv")?;
            Ok(())
        }

        fn stop(&mut self) {
            let _ = self.tx.send(&[]);
        }
    }

    pub(super) fn bytes_rtt(ctx: &Ctx) -> Outcome {
        let size = ctx.size.max(1);
        let (tx1, rx1) = ipc::bytes_channel().or_fail("bytes_channel")?;
        let (tx2, rx2) = ipc::bytes_channel().or_fail("bytes_channel")?;
        let echo = move || -> Result<(), Fail> {
            loop {
                let m = rx1.recv().or_fail("echo recv")?;
                if m.is_empty() {
                    return Ok(());
                }
                tx2.send(&m).or_fail("echo send")?;
            }
        };
        ping_pong(ctx, 0, echo, BytesInit { tx: tx1, rx: rx2, buf: vec![0; size] })
    }

    struct TypedInit<T> {
        tx: IpcSender<T>,
        rx: IpcReceiver<T>,
        msg: Option<T>,
        stop_msg: Option<T>,
    }

    impl<T> Initiator for TypedInit<T>
    where
        T: serde::Serialize + for<'de> serde::Deserialize<'de>,
    {
        fn round_trip(&mut self) -> Result<(), Fail> {
            let m = self.msg.take().ok_or_else(|| Fail::Error("no message".into()))?;
            self.tx.send(m).or_fail("send")?;
            self.msg = Some(self.rx.recv().or_fail("recv")?);
            Ok(())
        }

        fn stop(&mut self) {
            if let Some(m) = self.stop_msg.take() {
                let _ = self.tx.send(m);
            }
        }
    }

    fn typed<T>(ctx: &Ctx, msg: T, stop: T, is_stop: fn(&T) -> bool) -> Outcome
    where
        T: serde::Serialize + for<'de> serde::Deserialize<'de>,
    {
        let (tx1, rx1) = ipc::channel::<T>().or_fail("channel")?;
        let (tx2, rx2) = ipc::channel::<T>().or_fail("channel")?;
        let echo = move || -> Result<(), Fail> {
            loop {
                let m = rx1.recv().or_fail("echo recv")?;
                if is_stop(&m) {
                    return Ok(());
                }
                tx2.send(m).or_fail("echo send")?;
            }
        };
        ping_pong(
            ctx,
            0,
            echo,
            TypedInit { tx: tx1, rx: rx2, msg: Some(msg), stop_msg: Some(stop) },
        )
    }

    pub(super) fn typed_rtt(ctx: &Ctx) -> Outcome {
        if ctx.size <= 8 {
            typed::<u64>(ctx, 0, u64::MAX, |m| *m == u64::MAX)
        } else {
            typed::<Vec<u8>>(ctx, vec![0; ctx.size], Vec::new(), Vec::is_empty)
        }
    }

    pub(super) fn bytes_tput(ctx: &Ctx) -> Outcome {
        let size = ctx.size.max(1);
        let (tx, rx) = ipc::bytes_channel().or_fail("bytes_channel")?;
        let writer = move || -> Result<(), Fail> {
            let chunk = vec![7u8; size];
            loop {
                tx.send(&chunk).or_fail("send")?;
            }
        };
        stream_from_peer(ctx, size as u64, writer, move || {
            let m = rx.recv().or_fail("recv")?;
            if m.len() == size { Ok(()) } else { Err(Fail::Error("short message".into())) }
        })
    }
}

#[cfg(not(feature = "ipc-channel"))]
mod imp {
    use crate::harness::{Ctx, Fail, Outcome};

    fn off() -> Outcome {
        Err(Fail::Skip("built without feature ipc-channel".into()))
    }
    pub(super) fn bytes_rtt(_: &Ctx) -> Outcome {
        off()
    }
    pub(super) fn typed_rtt(_: &Ctx) -> Outcome {
        off()
    }
    pub(super) fn bytes_tput(_: &Ctx) -> Outcome {
        off()
    }
}

/// Round trips over two `bytes_channel`s.
pub fn bytes_rtt(ctx: &Ctx) -> Outcome {
    imp::bytes_rtt(ctx)
}

/// Round trips over two typed channels (`u64` at 8 B, `Vec<u8>` above).
pub fn typed_rtt(ctx: &Ctx) -> Outcome {
    imp::typed_rtt(ctx)
}

/// One-way 1 MiB messages over a `bytes_channel`.
pub fn bytes_tput(ctx: &Ctx) -> Outcome {
    imp::bytes_tput(ctx)
}
