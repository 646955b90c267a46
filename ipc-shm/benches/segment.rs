//! Segment lifecycle: create + map + unlink of a 1 MiB segment, ours beside the raw
//! syscalls in the same run (goal: <= 1.1x). Two pairs, so the ratio compares like with like:
//! `reserve(false)` against raw `shm_open`+`ftruncate`+`mmap`, and our default (space
//! reserved with `fallocate`, so a full /dev/shm fails at create) against raw + `fallocate`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::os::fd::AsFd;

use criterion::{Criterion, criterion_group, criterion_main};
use ipc_shm::{Shm, ShmOptions};
use rustix::fs::{FallocateFlags, Mode};
use rustix::shm::OFlags;

const LEN: usize = 1 << 20;

fn raw_create_map_unlink(name: &str, reserve: bool) {
    let fd = rustix::shm::open(
        name,
        OFlags::CREATE | OFlags::EXCL | OFlags::RDWR,
        Mode::from_raw_mode(0o600),
    )
    .unwrap();
    if reserve {
        rustix::fs::fallocate(fd.as_fd(), FallocateFlags::empty(), 0, LEN as u64).unwrap();
    } else {
        rustix::fs::ftruncate(fd.as_fd(), LEN as u64).unwrap();
    }
    let map = memmap2::MmapOptions::new().len(LEN).map_raw(&fd).unwrap();
    black_box(map.as_ptr());
    drop(map);
    drop(fd);
    rustix::shm::unlink(name).unwrap();
}

fn bench(c: &mut Criterion) {
    let name = ipc_shm::random_name("bench-seg").unwrap();
    let raw_name = format!("/{name}");
    let mut sized = ShmOptions::new();
    sized.reserve(false);
    let reserved = ShmOptions::new();
    let mut g = c.benchmark_group("shm create+map+unlink 1MiB");
    g.bench_function("raw ftruncate", |b| b.iter(|| raw_create_map_unlink(&raw_name, false)));
    g.bench_function("ipc-shm reserve(false)", |b| {
        b.iter(|| black_box(sized.create(&name, LEN).unwrap()))
    });
    g.bench_function("raw fallocate", |b| b.iter(|| raw_create_map_unlink(&raw_name, true)));
    g.bench_function("ipc-shm default (reserved)", |b| {
        b.iter(|| black_box(reserved.create(&name, LEN).unwrap()))
    });
    g.bench_function("ipc-shm open existing", |b| {
        let keep = sized.create(&name, LEN).unwrap();
        b.iter(|| black_box(Shm::open(&name).unwrap()));
        drop(keep);
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
