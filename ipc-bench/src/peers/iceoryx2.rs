//! iceoryx2 0.10 publish/subscribe between two processes, busy-polling (its own benchmark's
//! method, but across processes and with the payload copied in and out, as ours is).

use crate::harness::{Ctx, Outcome};

#[cfg(feature = "iceoryx2")]
mod imp {
    use std::time::{Duration, Instant};

    use iceoryx2::port::publisher::Publisher;
    use iceoryx2::port::subscriber::Subscriber;
    use iceoryx2::prelude::*;

    use crate::harness::{Ctx, Fail, Initiator, OrFail, Outcome, ping_pong, timed_out};
    use crate::peers::by_size;

    type Svc = ipc::Service;

    struct Ends<const N: usize> {
        // Field order: ports drop before their node.
        publisher: Publisher<Svc, [u8; N], ()>,
        subscriber: Subscriber<Svc, [u8; N], ()>,
        _node: Node<Svc>,
    }

    fn ends<const N: usize>(base: &str, send_on: &str, recv_on: &str) -> Result<Ends<N>, Fail> {
        set_log_level(LogLevel::Error);
        let node = NodeBuilder::new()
            .signal_handling_mode(SignalHandlingMode::Disabled)
            .create::<Svc>()
            .or_fail("iceoryx2 node")?;
        let open = |which: &str| -> Result<_, Fail> {
            let name = ServiceName::new(&format!("{base}/{which}")).or_fail("service name")?;
            // Both processes open_or_create at once; a racing creation is retried.
            let mut last = String::new();
            for _ in 0..200 {
                match node.service_builder(&name).publish_subscribe::<[u8; N]>().open_or_create() {
                    Ok(s) => return Ok(s),
                    Err(e) => last = format!("{e:?}"),
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(Fail::Error(format!("iceoryx2 service {which}: {last}")))
        };
        let tx = open(send_on)?;
        let rx = open(recv_on)?;
        let publisher = tx.publisher_builder().create().or_fail("publisher")?;
        let subscriber = rx.subscriber_builder().create().or_fail("subscriber")?;
        Ok(Ends { publisher, subscriber, _node: node })
    }

    fn seq_of<const N: usize>(m: &[u8; N]) -> u64 {
        let mut s = [0u8; 8];
        s.copy_from_slice(&m[..8]);
        u64::from_le_bytes(s)
    }

    /// Poll `sub` until a sample with `seq` arrives (older ones are dropped); copies it out.
    fn recv_seq<const N: usize>(
        sub: &Subscriber<Svc, [u8; N], ()>,
        want: Option<u64>,
        until: Instant,
        out: &mut [u8; N],
    ) -> Result<bool, Fail> {
        let mut turns = 0u32;
        loop {
            if let Some(sample) = sub.receive().or_fail("receive")? {
                let p: &[u8; N] = sample.payload();
                if want.is_none_or(|w| seq_of(p) == w) {
                    out.copy_from_slice(p);
                    return Ok(true);
                }
                continue;
            }
            std::hint::spin_loop();
            turns = turns.wrapping_add(1);
            if turns.is_multiple_of(256) && Instant::now() >= until {
                return Ok(false);
            }
        }
    }

    struct IoxInit<const N: usize> {
        base: String,
        ends: Option<Ends<N>>,
        seq: u64,
        msg: Box<[u8; N]>,
        deadline: Instant,
    }

    impl<const N: usize> IoxInit<N> {
        fn send(&mut self, seq: u64) -> Result<(), Fail> {
            let e = self.ends.as_ref().ok_or_else(|| Fail::Error("not connected".into()))?;
            self.msg[..8].copy_from_slice(&seq.to_le_bytes());
            e.publisher.send_copy(*self.msg).or_fail("send")?;
            Ok(())
        }
    }

    impl<const N: usize> Initiator for IoxInit<N> {
        fn round_trip(&mut self) -> Result<(), Fail> {
            if self.ends.is_none() {
                self.ends = Some(ends::<N>(&self.base, "ping", "pong")?);
                // Handshake: repeat the first ping until the echo's ports are connected.
                self.seq = 1;
                loop {
                    self.send(1)?;
                    let e = self.ends.as_ref().ok_or_else(|| Fail::Error("gone".into()))?;
                    let until = Instant::now() + Duration::from_millis(5);
                    if recv_seq(&e.subscriber, Some(1), until, &mut self.msg)? {
                        return Ok(());
                    }
                    if Instant::now() >= self.deadline {
                        return Err(timed_out("iceoryx2 handshake"));
                    }
                }
            }
            self.seq += 1;
            self.send(self.seq)?;
            let e = self.ends.as_ref().ok_or_else(|| Fail::Error("gone".into()))?;
            if recv_seq(&e.subscriber, Some(self.seq), self.deadline, &mut self.msg)? {
                Ok(())
            } else {
                Err(timed_out("iceoryx2 echo"))
            }
        }

        fn stop(&mut self) {
            if self.ends.is_some() {
                let _ = self.send(u64::MAX);
            }
        }
    }

    fn pubsub_rtt_n<const N: usize>(ctx: &Ctx) -> Outcome {
        let base = format!("ipc-bench/{}", ipc_shm::random_name("iox").or_fail("name")?);
        let deadline = ctx.peer_deadline();
        let peer_base = base.clone();
        let echo = move || -> Result<(), Fail> {
            let e = ends::<N>(&peer_base, "pong", "ping")?;
            let mut buf = Box::new([0u8; N]);
            loop {
                if !recv_seq(&e.subscriber, None, deadline, &mut buf)? {
                    return Err(timed_out("iceoryx2 ping"));
                }
                if seq_of(&buf) == u64::MAX {
                    return Ok(());
                }
                e.publisher.send_copy(*buf).or_fail("echo send")?;
            }
        };
        let init = IoxInit::<N> { base, ends: None, seq: 0, msg: Box::new([0u8; N]), deadline };
        ping_pong(ctx, 0, echo, init)
    }

    pub(super) fn pubsub_rtt(ctx: &Ctx) -> Outcome {
        by_size!(ctx, pubsub_rtt_n)
    }
}

#[cfg(not(feature = "iceoryx2"))]
mod imp {
    use crate::harness::{Ctx, Fail, Outcome};

    pub(super) fn pubsub_rtt(_: &Ctx) -> Outcome {
        Err(Fail::Skip("built without feature iceoryx2".into()))
    }
}

/// iceoryx2 pub/sub ping-pong (two services, one per direction), busy-polling.
pub fn pubsub_rtt(ctx: &Ctx) -> Outcome {
    imp::pubsub_rtt(ctx)
}
