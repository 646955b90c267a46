//! Criterion benches of ipc-pipe against the floor and the peers, between two processes
//! (the echo side is a forked child), in the same run:
//!
//! - `rtt/<size>/{raw,ipc-pipe,interprocess,ipc-channel}`: one message there and back.
//!   `raw` is a socketpair carrying the same bytes (4-byte prefix + payload) with one
//!   `write` and one `read` of the known length each way: the floor. `interprocess` is its
//!   local-socket stream used the way one frames messages on a byte stream (one write of
//!   prefix and payload, a read of the prefix, a read of the payload). `ipc-channel` is
//!   servo's bytes channel (`IpcBytesSender`/`IpcBytesReceiver`).
//! - `throughput/1MiB/{raw,ipc-pipe,raw-pipe,ipc-pipe-simplex}`: a stream of 1 MiB messages
//!   one way; `raw` writes and reads the same bytes on a Unix stream socketpair, `raw-pipe` on
//!   a pipe with the simplex pipe's 1 MiB buffer.
//!
//! Placement (`IPC_BENCH_PLACEMENT`): latency defaults to `S` (both processes on cpu 0: the
//! kernel path, where per-message overheads show; cross-core wake-ups cost ~60 us on this VM
//! and hide everything), throughput to `X` (cpu 0 and cpu 1). `U` leaves both unpinned.
//! The ratios ours/raw, ours/peer are what to read, per run; the machine is shared.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use interprocess::local_socket::prelude::*;
use interprocess::local_socket::{GenericNamespaced, ListenerOptions};
use ipc_pipe::{pipe, simplex};
use ipc_testkit::{Child, fork};

const SIZES: &[usize] = &[8, 64, 256, 1024];
const MIB: usize = 1 << 20;

fn pin(cpu: usize) {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    let _ = rustix::thread::sched_setaffinity(None, &set);
}

/// (parent cpu, child cpu) for a placement letter; `None`: unpinned.
fn placement(default: &str) -> Option<(usize, usize)> {
    match std::env::var("IPC_BENCH_PLACEMENT").as_deref().unwrap_or(default) {
        "S" => Some((0, 0)),
        "X" => Some((0, 1)),
        _ => None,
    }
}

fn unpin() {
    let mut set = rustix::thread::CpuSet::new();
    for cpu in 0..rustix::thread::CpuSet::MAX_CPU {
        set.set(cpu);
    }
    let _ = rustix::thread::sched_setaffinity(None, &set);
}

/// Fork the echo side, pinned; the parent pins itself too.
fn spawn(place: Option<(usize, usize)>, f: impl FnOnce()) -> Child {
    let child = fork(move || {
        if let Some((_, c)) = place {
            pin(c);
        }
        f();
    });
    if let Some((p, _)) = place {
        pin(p);
    }
    child
}

fn finish(mut child: Child) {
    child.kill_and_join();
    unpin();
}

fn rtt(c: &mut Criterion) {
    let place = placement("S");
    let mut g = c.benchmark_group("rtt");
    g.sample_size(30)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    for &n in SIZES {
        let payload = vec![0xa5u8; n];
        let mut framed = (n as i32).to_be_bytes().to_vec();
        framed.extend_from_slice(&payload);

        // The floor: the same bytes, one write and one read each way.
        {
            let (mut a, mut b) = UnixStream::pair().unwrap();
            let len = framed.len();
            let child = spawn(place, move || {
                let mut buf = vec![0u8; len];
                while b.read_exact(&mut buf).is_ok() {
                    if b.write_all(&buf).is_err() {
                        break;
                    }
                }
            });
            let mut buf = vec![0u8; len];
            g.bench_function(BenchmarkId::new(format!("{n}"), "raw"), |bch| {
                bch.iter_custom(|iters| {
                    let t0 = Instant::now();
                    for _ in 0..iters {
                        a.write_all(&framed).unwrap();
                        a.read_exact(&mut buf).unwrap();
                    }
                    t0.elapsed()
                });
            });
            drop(a);
            finish(child);
        }

        // Ours.
        {
            let (mut a, mut b) = pipe().unwrap();
            let child = spawn(place, move || {
                let mut buf = Vec::new();
                while b.recv_into(&mut buf).is_ok() {
                    if b.send(&buf).is_err() {
                        break;
                    }
                }
            });
            let mut buf = Vec::new();
            g.bench_function(BenchmarkId::new(format!("{n}"), "ipc-pipe"), |bch| {
                bch.iter_custom(|iters| {
                    let t0 = Instant::now();
                    for _ in 0..iters {
                        a.send(&payload).unwrap();
                        a.recv_into(&mut buf).unwrap();
                    }
                    black_box(&buf);
                    t0.elapsed()
                });
            });
            drop(a);
            finish(child);
        }

        // interprocess local sockets, framed by hand.
        {
            let name = format!("ipctest-bench-{}-{n}", std::process::id());
            let listener = ListenerOptions::new()
                .name(name.as_str().to_ns_name::<GenericNamespaced>().unwrap())
                .create_sync()
                .unwrap();
            let mut a = LocalSocketStream::connect(
                name.as_str().to_ns_name::<GenericNamespaced>().unwrap(),
            )
            .unwrap();
            let mut b = listener.accept().unwrap();
            drop(listener);
            let child = spawn(place, move || {
                let mut prefix = [0u8; 4];
                let mut buf = Vec::new();
                let mut out = Vec::new();
                loop {
                    if b.read_exact(&mut prefix).is_err() {
                        break;
                    }
                    buf.resize(i32::from_be_bytes(prefix) as usize, 0);
                    if b.read_exact(&mut buf).is_err() {
                        break;
                    }
                    out.clear();
                    out.extend_from_slice(&prefix);
                    out.extend_from_slice(&buf);
                    if b.write_all(&out).is_err() {
                        break;
                    }
                }
            });
            let mut prefix = [0u8; 4];
            let mut buf = Vec::new();
            g.bench_function(BenchmarkId::new(format!("{n}"), "interprocess"), |bch| {
                bch.iter_custom(|iters| {
                    let t0 = Instant::now();
                    for _ in 0..iters {
                        a.write_all(&framed).unwrap();
                        a.read_exact(&mut prefix).unwrap();
                        buf.resize(i32::from_be_bytes(prefix) as usize, 0);
                        a.read_exact(&mut buf).unwrap();
                    }
                    black_box(&buf);
                    t0.elapsed()
                });
            });
            drop(a);
            finish(child);
        }

        // servo's ipc-channel, bytes flavour.
        {
            let (tx1, rx1) = ipc_channel::ipc::bytes_channel().unwrap();
            let (tx2, rx2) = ipc_channel::ipc::bytes_channel().unwrap();
            let child = spawn(place, move || {
                while let Ok(m) = rx1.recv() {
                    if tx2.send(&m).is_err() {
                        break;
                    }
                }
            });
            g.bench_function(BenchmarkId::new(format!("{n}"), "ipc-channel"), |bch| {
                bch.iter_custom(|iters| {
                    let t0 = Instant::now();
                    for _ in 0..iters {
                        tx1.send(&payload).unwrap();
                        black_box(rx2.recv().unwrap());
                    }
                    t0.elapsed()
                });
            });
            drop(tx1);
            drop(rx2);
            finish(child);
        }
    }
    g.finish();
}

fn throughput(c: &mut Criterion) {
    let place = placement("X");
    let mut g = c.benchmark_group("throughput");
    g.sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500));
    g.throughput(Throughput::Bytes(MIB as u64));
    let msg = vec![0x3cu8; MIB];

    // Raw stream: the receiver is told how many bytes follow, reads them in 1 MiB reads.
    {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let child = spawn(place, move || {
            let mut buf = vec![0u8; MIB];
            let mut count = [0u8; 8];
            while b.read_exact(&mut count).is_ok() {
                for _ in 0..u64::from_le_bytes(count) {
                    b.read_exact(&mut buf).unwrap();
                }
                b.write_all(b"k").unwrap();
            }
        });
        let mut ack = [0u8; 1];
        g.bench_function(BenchmarkId::new("1MiB", "raw"), |bch| {
            bch.iter_custom(|iters| {
                let t0 = Instant::now();
                a.write_all(&iters.to_le_bytes()).unwrap();
                for _ in 0..iters {
                    a.write_all(&msg).unwrap();
                }
                a.read_exact(&mut ack).unwrap();
                t0.elapsed()
            });
        });
        drop(a);
        finish(child);
    }

    // Ours over a socketpair: 1 MiB messages, an empty message ends a batch.
    {
        let (mut a, mut b) = pipe().unwrap();
        let child = spawn(place, move || {
            let mut buf = Vec::new();
            while b.recv_into(&mut buf).is_ok() {
                if buf.is_empty() {
                    b.send(b"k").unwrap();
                }
            }
        });
        g.bench_function(BenchmarkId::new("1MiB", "ipc-pipe"), |bch| {
            bch.iter_custom(|iters| {
                let t0 = Instant::now();
                for _ in 0..iters {
                    a.send(&msg).unwrap();
                }
                a.send(b"").unwrap();
                a.recv().unwrap();
                t0.elapsed()
            });
        });
        drop(a);
        finish(child);
    }

    // The pipe floor: a pipe with the same 1 MiB buffer carrying the same bytes.
    {
        let (pr, pw) = rustix::pipe::pipe().unwrap();
        let _ = rustix::pipe::fcntl_setpipe_size(&pw, MIB);
        let (ar, aw) = rustix::pipe::pipe().unwrap();
        let (mut pr, mut pw) = (std::fs::File::from(pr), std::fs::File::from(pw));
        let (mut ar, mut aw) = (std::fs::File::from(ar), std::fs::File::from(aw));
        let child = spawn(place, move || {
            let mut buf = vec![0u8; MIB];
            let mut count = [0u8; 8];
            while pr.read_exact(&mut count).is_ok() {
                for _ in 0..u64::from_le_bytes(count) {
                    pr.read_exact(&mut buf).unwrap();
                }
                aw.write_all(b"k").unwrap();
            }
        });
        let mut ack = [0u8; 1];
        g.bench_function(BenchmarkId::new("1MiB", "raw-pipe"), |bch| {
            bch.iter_custom(|iters| {
                let t0 = Instant::now();
                pw.write_all(&iters.to_le_bytes()).unwrap();
                for _ in 0..iters {
                    pw.write_all(&msg).unwrap();
                }
                ar.read_exact(&mut ack).unwrap();
                t0.elapsed()
            });
        });
        drop(pw);
        finish(child);
    }

    // Ours over a pipe (1 MiB pipe buffer), the ack on a second pipe.
    {
        let (mut tx, mut rx) = simplex().unwrap();
        let (mut ack_tx, mut ack_rx) = simplex().unwrap();
        let child = spawn(place, move || {
            let mut buf = Vec::new();
            while rx.recv_into(&mut buf).is_ok() {
                if buf.is_empty() {
                    ack_tx.send(b"k").unwrap();
                }
            }
        });
        g.bench_function(BenchmarkId::new("1MiB", "ipc-pipe-simplex"), |bch| {
            bch.iter_custom(|iters| {
                let t0 = Instant::now();
                for _ in 0..iters {
                    tx.send(&msg).unwrap();
                }
                tx.send(b"").unwrap();
                ack_rx.recv().unwrap();
                t0.elapsed()
            });
        });
        drop(tx);
        finish(child);
    }
    g.finish();
}

criterion_group!(benches, rtt, throughput);
criterion_main!(benches);
