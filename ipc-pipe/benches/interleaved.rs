//! Same-run ratios by interleaving (ours and the peers alternate round by round, so both see the same machine): every mechanism's echo
//! process is alive at once, and each round times a batch of round trips of each in turn
//! (ABCDE ABCDE ...), so a noisy neighbour slows all of them alike. Prints, per size, the
//! median over rounds of the per-round ratios ours/raw, ours/interprocess, ours/ipc-channel,
//! and ours/raw-recvmsg (the floor received with `recvmsg` and a control buffer, as any
//! receiver that notices fds must: it splits our distance to the floor into the kernel's
//! part and ours); for 1 MiB messages the throughput ratios to a raw socket and a raw pipe.
//!
//! `cargo bench -p ipc-pipe --bench interleaved` (`IPC_BENCH_PLACEMENT=S|X|U`, default S for
//! latency and X for throughput; `IPC_BENCH_ROUNDS`, default 31).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, clippy::print_stdout)]

use std::io::{IoSliceMut, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use interprocess::local_socket::prelude::*;
use interprocess::local_socket::{GenericNamespaced, ListenerOptions};
use ipc_pipe::{pipe, simplex};
use ipc_testkit::{Child, fork};
use rustix::net::{RecvAncillaryBuffer, RecvFlags, SendFlags};

const SIZES: &[usize] = &[8, 64, 256, 1024];
const MIB: usize = 1 << 20;

fn pin(cpu: usize) {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    let _ = rustix::thread::sched_setaffinity(None, &set);
}

fn placement(default: &str) -> (String, Option<(usize, usize)>) {
    let p = std::env::var("IPC_BENCH_PLACEMENT").unwrap_or_else(|_| default.to_owned());
    let cpus = match p.as_str() {
        "S" => Some((0, 0)),
        "X" => Some((0, 1)),
        _ => None,
    };
    (p, cpus)
}

fn rounds() -> usize {
    std::env::var("IPC_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(31)
}

fn child(place: Option<(usize, usize)>, f: impl FnOnce()) -> Child {
    fork(move || {
        if let Some((_, c)) = place {
            pin(c);
        }
        f();
    })
}

/// A round-trip mechanism: `go(n)` does n round trips.
struct Mech {
    name: &'static str,
    go: Box<dyn FnMut(u64)>,
    _child: Child,
}

fn mechs(size: usize, place: Option<(usize, usize)>) -> Vec<Mech> {
    let payload = vec![0xa5u8; size];
    let mut framed = (size as i32).to_be_bytes().to_vec();
    framed.extend_from_slice(&payload);
    let mut v = Vec::new();

    let (mut a, mut b) = UnixStream::pair().unwrap();
    let len = framed.len();
    let c = child(place, move || {
        let mut buf = vec![0u8; len];
        while b.read_exact(&mut buf).is_ok() && b.write_all(&buf).is_ok() {}
    });
    let f = framed.clone();
    let mut buf = vec![0u8; len];
    v.push(Mech {
        name: "raw",
        go: Box::new(move |n| {
            for _ in 0..n {
                a.write_all(&f).unwrap();
                a.read_exact(&mut buf).unwrap();
            }
        }),
        _child: c,
    });

    // The floor again, but receiving with recvmsg and a control buffer (what any receiver
    // that must notice fds pays): the part of our distance to `raw` that is the kernel's.
    let (a, b) = UnixStream::pair().unwrap();
    let len = framed.len();
    let c = child(place, move || {
        let mut buf = vec![0u8; len];
        while recvmsg_exact(&b, &mut buf)
            && rustix::net::send(&b, &buf, SendFlags::NOSIGNAL).is_ok()
        {}
    });
    let f = framed.clone();
    let mut buf = vec![0u8; len];
    v.push(Mech {
        name: "raw-recvmsg",
        go: Box::new(move |n| {
            for _ in 0..n {
                rustix::net::send(&a, &f, SendFlags::NOSIGNAL).unwrap();
                assert!(recvmsg_exact(&a, &mut buf));
            }
        }),
        _child: c,
    });

    let (mut a, mut b) = pipe().unwrap();
    let c = child(place, move || {
        let mut buf = Vec::new();
        while b.recv_into(&mut buf).is_ok() && b.send(&buf).is_ok() {}
    });
    let p = payload.clone();
    let mut buf = Vec::new();
    v.push(Mech {
        name: "ipc-pipe",
        go: Box::new(move |n| {
            for _ in 0..n {
                a.send(&p).unwrap();
                a.recv_into(&mut buf).unwrap();
            }
        }),
        _child: c,
    });

    let name = format!("ipctest-interleaved-{}-{size}", std::process::id());
    let ns = || name.as_str().to_ns_name::<GenericNamespaced>().unwrap();
    let listener = ListenerOptions::new().name(ns()).create_sync().unwrap();
    let mut a = LocalSocketStream::connect(ns()).unwrap();
    let mut b = listener.accept().unwrap();
    drop(listener);
    let c = child(place, move || {
        let (mut prefix, mut body, mut out) = ([0u8; 4], Vec::new(), Vec::new());
        while b.read_exact(&mut prefix).is_ok() {
            body.resize(i32::from_be_bytes(prefix) as usize, 0);
            if b.read_exact(&mut body).is_err() {
                break;
            }
            out.clear();
            out.extend_from_slice(&prefix);
            out.extend_from_slice(&body);
            if b.write_all(&out).is_err() {
                break;
            }
        }
    });
    let f = framed.clone();
    let (mut prefix, mut body) = ([0u8; 4], Vec::new());
    v.push(Mech {
        name: "interprocess",
        go: Box::new(move |n| {
            for _ in 0..n {
                a.write_all(&f).unwrap();
                a.read_exact(&mut prefix).unwrap();
                body.resize(i32::from_be_bytes(prefix) as usize, 0);
                a.read_exact(&mut body).unwrap();
            }
        }),
        _child: c,
    });

    let (tx1, rx1) = ipc_channel::ipc::bytes_channel().unwrap();
    let (tx2, rx2) = ipc_channel::ipc::bytes_channel().unwrap();
    let c = child(place, move || {
        while let Ok(m) = rx1.recv() {
            if tx2.send(&m).is_err() {
                break;
            }
        }
    });
    let p = payload;
    v.push(Mech {
        name: "ipc-channel",
        go: Box::new(move |n| {
            for _ in 0..n {
                tx1.send(&p).unwrap();
                std::hint::black_box(rx2.recv().unwrap());
            }
        }),
        _child: c,
    });
    v
}

/// Fill `buf` with recvmsg calls that offer room for 253 fds, as a receiver that checks for
/// fds must.
fn recvmsg_exact(s: &UnixStream, buf: &mut [u8]) -> bool {
    let mut space = [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(253))];
    let mut got = 0;
    while got < buf.len() {
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut iov = [IoSliceMut::new(&mut buf[got..])];
        match rustix::net::recvmsg(s, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC) {
            Ok(m) if m.bytes > 0 => got += m.bytes,
            _ => return false,
        }
    }
    true
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Batch size so one batch of `m` takes about `target`.
fn calibrate(m: &mut Mech, target: Duration) -> u64 {
    let mut n = 16;
    loop {
        let t0 = Instant::now();
        (m.go)(n);
        let t = t0.elapsed();
        if t >= target / 2 || n > 1 << 24 {
            return (n as f64 * target.as_secs_f64() / t.as_secs_f64().max(1e-9)).max(16.0) as u64;
        }
        n *= 4;
    }
}

fn latency() {
    let (pname, place) = placement("S");
    let r = rounds();
    println!("round trips, placement {pname}, {r} interleaved rounds, medians of per-round ratios");
    for &size in SIZES {
        let mut ms = mechs(size, place);
        if let Some((p, _)) = place {
            pin(p);
        }
        for m in ms.iter_mut() {
            (m.go)(2000); // warm-up
        }
        debug_assert_eq!(
            ms.iter().map(|m| m.name).collect::<Vec<_>>(),
            ["raw", "raw-recvmsg", "ipc-pipe", "interprocess", "ipc-channel"]
        );
        let batch: Vec<u64> =
            ms.iter_mut().map(|m| calibrate(m, Duration::from_millis(40))).collect();
        let mut per: Vec<Vec<f64>> = vec![Vec::new(); ms.len()];
        for _ in 0..r {
            for (i, m) in ms.iter_mut().enumerate() {
                let t0 = Instant::now();
                (m.go)(batch[i]);
                per[i].push(t0.elapsed().as_nanos() as f64 / batch[i] as f64);
            }
        }
        let ratio = |a: usize, b: usize| {
            let v: Vec<f64> = per[a].iter().zip(&per[b]).map(|(x, y)| x / y).collect();
            let (lo, hi) =
                (v.iter().copied().fold(f64::MAX, f64::min), v.iter().copied().fold(0.0, f64::max));
            (median(v), lo, hi)
        };
        let (r_raw, lo, hi) = ratio(2, 0);
        let (r_rm, ..) = ratio(2, 1);
        let (r_ip, ..) = ratio(2, 3);
        let (r_ch, ..) = ratio(2, 4);
        let (k_rm, ..) = ratio(1, 0);
        println!(
            "  {size:>5} B: RTT ours {:.2} us, raw {:.2} us, interprocess {:.2} us, ipc-channel {:.2} us | \
             ours/raw {r_raw:.3} (rounds {lo:.3}..{hi:.3}), ours/interprocess {r_ip:.3}, ours/ipc-channel {r_ch:.3} | \
             raw-recvmsg/raw {k_rm:.3}, ours/raw-recvmsg {r_rm:.3}",
            median(per[2].clone()) / 1000.0,
            median(per[0].clone()) / 1000.0,
            median(per[3].clone()) / 1000.0,
            median(per[4].clone()) / 1000.0,
        );
        drop(ms);
    }
}

fn throughput() {
    let (pname, place) = placement("X");
    let r = rounds();
    let msg = vec![0x3cu8; MIB];
    let per_round = 64u64;
    // raw: 8-byte count, then count x 1 MiB, then a 1-byte ack.
    let (mut ra, mut rb) = UnixStream::pair().unwrap();
    let _c1 = child(place, move || {
        let mut buf = vec![0u8; MIB];
        let mut count = [0u8; 8];
        while rb.read_exact(&mut count).is_ok() {
            for _ in 0..u64::from_le_bytes(count) {
                rb.read_exact(&mut buf).unwrap();
            }
            rb.write_all(b"k").unwrap();
        }
    });
    let (mut oa, mut ob) = pipe().unwrap();
    let _c2 = child(place, move || {
        let mut buf = Vec::new();
        while ob.recv_into(&mut buf).is_ok() {
            if buf.is_empty() {
                ob.send(b"k").unwrap();
            }
        }
    });
    // The pipe floor: a pipe with the same 1 MiB buffer, the same bytes, plain writes and
    // reads (ack on a second pipe).
    let (pr, pw) = rustix::pipe::pipe().unwrap();
    let _ = rustix::pipe::fcntl_setpipe_size(&pw, MIB);
    let (ar, aw) = rustix::pipe::pipe().unwrap();
    let (mut pr, mut pw) = (std::fs::File::from(pr), std::fs::File::from(pw));
    let (mut ar, mut aw) = (std::fs::File::from(ar), std::fs::File::from(aw));
    let _c4 = child(place, move || {
        let mut buf = vec![0u8; MIB];
        let mut count = [0u8; 8];
        while pr.read_exact(&mut count).is_ok() {
            for _ in 0..u64::from_le_bytes(count) {
                pr.read_exact(&mut buf).unwrap();
            }
            aw.write_all(b"k").unwrap();
        }
    });
    let (mut tx, mut rx) = simplex().unwrap();
    let (mut ack_tx, mut ack_rx) = simplex().unwrap();
    let _c3 = child(place, move || {
        let mut buf = Vec::new();
        while rx.recv_into(&mut buf).is_ok() {
            if buf.is_empty() {
                ack_tx.send(b"k").unwrap();
            }
        }
    });
    if let Some((p, _)) = place {
        pin(p);
    }
    let mut raw = |n: u64| {
        ra.write_all(&n.to_le_bytes()).unwrap();
        for _ in 0..n {
            ra.write_all(&msg).unwrap();
        }
        let mut k = [0u8; 1];
        ra.read_exact(&mut k).unwrap();
    };
    let mut ours = |n: u64| {
        for _ in 0..n {
            oa.send(&msg).unwrap();
        }
        oa.send(b"").unwrap();
        oa.recv().unwrap();
    };
    let mut simp = |n: u64| {
        for _ in 0..n {
            tx.send(&msg).unwrap();
        }
        tx.send(b"").unwrap();
        ack_rx.recv().unwrap();
    };
    let mut rawpipe = |n: u64| {
        pw.write_all(&n.to_le_bytes()).unwrap();
        for _ in 0..n {
            pw.write_all(&msg).unwrap();
        }
        let mut k = [0u8; 1];
        ar.read_exact(&mut k).unwrap();
    };
    let (mut t_raw, mut t_ours, mut t_simp, mut t_rawpipe) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    raw(16);
    ours(16);
    simp(16);
    rawpipe(16);
    for _ in 0..r {
        for (f, out) in [
            (&mut raw as &mut dyn FnMut(u64), &mut t_raw),
            (&mut ours as &mut dyn FnMut(u64), &mut t_ours),
            (&mut rawpipe as &mut dyn FnMut(u64), &mut t_rawpipe),
            (&mut simp as &mut dyn FnMut(u64), &mut t_simp),
        ] {
            let t0 = Instant::now();
            f(per_round);
            out.push(t0.elapsed().as_secs_f64());
        }
    }
    let gib = |t: f64| per_round as f64 * MIB as f64 / t / (1u64 << 30) as f64;
    let ratio = |base: &[f64], a: &[f64]| median(base.iter().zip(a).map(|(r, o)| r / o).collect());
    println!(
        "1 MiB messages, placement {pname}, {r} interleaved rounds of {per_round}: \
         socket raw {:.2} GiB/s, ours {:.2} GiB/s (ours/raw {:.3}); \
         pipe (1 MiB buffer) raw {:.2} GiB/s, simplex {:.2} GiB/s (simplex/raw pipe {:.3})",
        gib(median(t_raw.clone())),
        gib(median(t_ours.clone())),
        ratio(&t_raw, &t_ours),
        gib(median(t_rawpipe.clone())),
        gib(median(t_simp.clone())),
        ratio(&t_rawpipe, &t_simp),
    );
}

fn main() {
    let which = std::env::args().skip(1).find(|a| !a.starts_with('-')).unwrap_or_default();
    if which.is_empty() || which.contains("rtt") {
        latency();
    }
    if which.is_empty() || which.contains("throughput") {
        throughput();
    }
}
