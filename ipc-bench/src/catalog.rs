//! Every group of comparable rows: what is measured, its floor, ours and the peers.
//!
//! A group is one table: its rows share the metric, the placement and the message size,
//! and are measured interleaved (each run measures every row once, in alternating order).
//! The group's floor is the hardware or kernel lower bound it is compared to; "best peer"
//! is the best row of kind `Peer` in the same group.

use serde::{Deserialize, Serialize};

use crate::harness::{Ctx, Outcome, Placement};
use crate::{floors, ours, peers};

/// A row function: runs in the forked measuring process.
pub type RowFn = fn(&Ctx) -> Outcome;

/// Who a row belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// A hardware or kernel lower bound (raw syscalls, spin on shared lines, memcpy).
    Floor,
    /// One of our crates.
    Ours,
    /// Another library or language runtime.
    Peer,
}

impl Kind {
    /// Short tag for tables.
    pub fn tag(self) -> &'static str {
        match self {
            Kind::Floor => "floor",
            Kind::Ours => "ours",
            Kind::Peer => "peer",
        }
    }
}

/// What the figure of a group is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Metric {
    /// Round-trip time (p50); RTT/2 is shown beside it, labelled one-way.
    Rtt,
    /// One-way latency measured directly (handoff), p50.
    OneWay,
    /// Time per operation (p50 of batched samples).
    Op,
    /// Bytes per second (from the mean), higher is better.
    Throughput,
    /// Time per trial (p50), each trial timed on its own.
    Trial,
}

impl Metric {
    /// Whether a larger figure is better.
    pub fn higher_is_better(self) -> bool {
        self == Metric::Throughput
    }
}

/// One row of a group.
#[derive(Debug, Clone)]
pub struct RowSpec {
    /// Id, unique in the group (`--filter` matches `group/row`).
    pub id: &'static str,
    /// What is measured.
    pub label: String,
    /// Floor, ours or peer.
    pub kind: Kind,
    /// The measurement.
    pub run: RowFn,
}

/// A group of comparable rows.
#[derive(Debug, Clone)]
pub struct GroupSpec {
    /// Id (`poll-64`, `block-X`, ...).
    pub id: String,
    /// Title line.
    pub title: String,
    /// The figure.
    pub metric: Metric,
    /// Placement of the two sides.
    pub placement: Placement,
    /// Message or block size (0: none).
    pub size: usize,
    /// The row every other row is divided by ("vs floor"), if the group has one.
    pub floor: Option<&'static str>,
    /// One line on how to read the group.
    pub note: &'static str,
    /// Untimed pause before each round trip (the "peer asleep" groups), else `None`.
    pub gap: Option<std::time::Duration>,
    /// The rows, measured in this order on even runs and reversed on odd runs.
    pub rows: Vec<RowSpec>,
}

fn row(id: &'static str, label: impl Into<String>, kind: Kind, run: RowFn) -> RowSpec {
    RowSpec { id, label: label.into(), kind, run }
}

/// Human size: 8 B, 1 KiB, 64 KiB, 1 MiB.
pub fn size_label(size: usize) -> String {
    match size {
        s if s >= 1 << 20 && s % (1 << 20) == 0 => format!("{} MiB", s >> 20),
        s if s >= 1 << 10 && s % (1 << 10) == 0 => format!("{} KiB", s >> 10),
        s => format!("{s} B"),
    }
}

/// Every group, in the order they are run and reported.
pub fn catalog() -> Vec<GroupSpec> {
    use Kind::{Floor, Ours, Peer};
    let mut g = Vec::new();

    // B3: polling queues, cross-core only (spinning against a peer on the same core is
    // ruinous on this machine: a 1.7 µs same-core handoff becomes ~225 µs).
    for size in [8usize, 64, 1024, 64 << 10] {
        let sz = size_label(size);
        let mut rows = vec![row(
            "spin2",
            if size <= 8 {
                "spin ping-pong, 2 lines (flag + 8 B in-line)".to_string()
            } else {
                format!("spin ping-pong, 2 flags + {sz} copied each way")
            },
            Floor,
            floors::spin2,
        )];
        if size <= 8 {
            rows.push(row(
                "spin1",
                "spin ping-pong, 1 shared line (counter)",
                Floor,
                floors::spin1,
            ));
        }
        rows.push(row(
            "queue-spsc",
            format!("ipc-queue SPSC polling, {sz}"),
            Ours,
            ours::queue::spsc_poll,
        ));
        if size == 64 {
            // The adaptive wait while the peer is spinning (both sides answer within the
            // bounded spin, so nobody sleeps): compared with polling in the same run.
            rows.push(row(
                "queue-spsc-adaptive",
                "ipc-queue SPSC, blocking recv (adaptive), peer spinning",
                Ours,
                ours::queue::spsc_block,
            ));
        }
        rows.extend([
            row(
                "queue-mpmc",
                format!("ipc-queue MPMC polling, {sz}"),
                Ours,
                ours::queue::mpmc_poll,
            ),
            row(
                "queue-zerocopy",
                format!("ipc-queue zero-copy reserve/commit, {sz}"),
                Ours,
                ours::queue::zero_copy_poll,
            ),
            row(
                "iceoryx2",
                format!("iceoryx2 pub/sub, busy-poll, 2 processes, [u8; {size}]"),
                Peer,
                peers::iceoryx2::pubsub_rtt,
            ),
            row(
                "crossbeam-arrayqueue",
                format!("crossbeam ArrayQueue spin (threads), [u8; {size}]"),
                Peer,
                peers::threads::arrayqueue_rtt,
            ),
        ]);
        g.push(GroupSpec {
            id: format!("poll-{}", compact(size)),
            title: format!("B3 queue round trip, polling, {sz}"),
            metric: Metric::Rtt,
            placement: Placement::Cross,
            size,
            floor: Some("spin2"),
            note: "spinning sides on two cores; the floor is two processes spinning on shared lines",
            gap: None,
            rows,
        });
    }

    // B4 + B6b: blocking round trips beside the raw futex ping-pong of the same run.
    for p in [Placement::Cross, Placement::Same, Placement::Unpinned] {
        g.push(GroupSpec {
            id: format!("block-{}", p.code()),
            title: "B4 blocking round trip, 64 B (sem: a permit)".to_string(),
            metric: Metric::Rtt,
            placement: p,
            size: 64,
            floor: Some("futex"),
            note: if p == Placement::Cross {
                "every cross-core wake is a VM IPI here (~60 us RTT): read ratios to the raw futex, not absolutes"
            } else {
                "same core or unpinned: the kernel / context-switch path"
            },
            gap: None,
            rows: vec![
                row("futex", "raw futex ping-pong (always sleeps)", Floor, floors::futex),
                row("eventfd", "raw eventfd ping-pong", Floor, floors::eventfd),
                row("pipe", "raw pipe(2) 1-byte ping-pong", Floor, floors::pipe_1b),
                row("socketpair", "raw socketpair 1-byte ping-pong", Floor, floors::socketpair_1b),
                row(
                    "queue-spsc",
                    "ipc-queue SPSC, blocking recv (adaptive)",
                    Ours,
                    ours::queue::spsc_block,
                ),
                row("queue-mpmc", "ipc-queue MPMC, blocking recv", Ours, ours::queue::mpmc_block),
                row("sem", "ipc-sem Semaphore ping-pong (untracked)", Ours, ours::sem::ping_pong_rtt),
                row("sem_t", "glibc sem_t pshared ping-pong", Peer, peers::glibc::sem_rtt),
                row(
                    "crossbeam-channel",
                    "crossbeam bounded(1) channel (threads)",
                    Peer,
                    peers::threads::cb_channel_rtt,
                ),
                row(
                    "std-channel",
                    "std sync_channel(1) (threads)",
                    Peer,
                    peers::threads::std_channel_rtt,
                ),
                row("mp-pipe", "Python mp.Pipe send_bytes", Peer, peers::python::pipe_rtt),
                row("mp-queue", "Python mp.Queue", Peer, peers::python::queue_rtt),
                row("mp-simplequeue", "Python mp.SimpleQueue", Peer, peers::python::simplequeue_rtt),
            ],
        });
    }

    // B4, peer asleep: a 200 µs untimed pause before each round trip lets every bounded spin
    // expire, so each trip wakes a sleeping peer: adaptive waits compared with the raw futex.
    g.push(GroupSpec {
        id: "wake-X".into(),
        title: "B4 blocking round trip, peer asleep (200 µs pause before each), 64 B".into(),
        metric: Metric::Rtt,
        placement: Placement::Cross,
        size: 64,
        floor: Some("futex"),
        note: "each trip wakes a sleeper across cores (a VM IPI here): compare with the raw futex of the same run",
        gap: Some(std::time::Duration::from_micros(200)),
        rows: vec![
            row("futex", "raw futex ping-pong (always sleeps)", Floor, floors::futex),
            row("eventfd", "raw eventfd ping-pong", Floor, floors::eventfd),
            row("pipe", "raw pipe(2) 1-byte ping-pong", Floor, floors::pipe_1b),
            row("queue-spsc", "ipc-queue SPSC, blocking recv (adaptive)", Ours, ours::queue::spsc_block),
            row("queue-mpmc", "ipc-queue MPMC, blocking recv", Ours, ours::queue::mpmc_block),
            row("sem", "ipc-sem Semaphore ping-pong (untracked)", Ours, ours::sem::ping_pong_rtt),
            row("sem_t", "glibc sem_t pshared ping-pong", Peer, peers::glibc::sem_rtt),
            row(
                "crossbeam-channel",
                "crossbeam bounded(1) channel (threads)",
                Peer,
                peers::threads::cb_channel_rtt,
            ),
            row("std-channel", "std sync_channel(1) (threads)", Peer, peers::threads::std_channel_rtt),
        ],
    });

    // Selector: the wake latency of a round trip whose both sides sleep in ipc-select
    // (registered doorbell, one poll), beside the same primitive's blocking call and an
    // eventfd waited through epoll (the floor of a readiness sleep), peer asleep before each.
    g.push(GroupSpec {
        id: "select-X".into(),
        title: "Selector wake round trip, peer asleep (200 µs pause before each), 64 B".into(),
        metric: Metric::Rtt,
        placement: Placement::Cross,
        size: 64,
        floor: Some("epoll-eventfd"),
        note: "goal: the selector rows within 1.2x of the blocking row of the same primitive",
        gap: Some(std::time::Duration::from_micros(200)),
        rows: vec![
            row(
                "epoll-eventfd",
                "raw eventfd ping-pong, epoll_wait then read",
                Floor,
                floors::epoll_eventfd,
            ),
            row("futex", "raw futex ping-pong (always sleeps)", Floor, floors::futex),
            row(
                "sem",
                "ipc-sem Semaphore ping-pong, blocking acquire",
                Ours,
                ours::sem::ping_pong_rtt,
            ),
            row(
                "sem-select",
                "ipc-sem Semaphore ping-pong, waits in a Selector",
                Ours,
                ours::select::sem_rtt,
            ),
            row("queue-mpmc", "ipc-queue MPMC, blocking recv", Ours, ours::queue::mpmc_block),
            row(
                "queue-select",
                "ipc-queue MPMC, waits in a Selector",
                Ours,
                ours::select::queue_rtt,
            ),
        ],
    });

    // Async: a tokio task awaiting recv_async each side, beside tokio's own UnixStream.
    g.push(GroupSpec {
        id: "async-X".into(),
        title: "Async round trip (tokio current-thread runtime each side), 64 B".into(),
        metric: Metric::Rtt,
        placement: Placement::Cross,
        size: 64,
        floor: Some("tokio-unixstream"),
        note: "goal: recv_async within 1.0x of tokio's own UnixStream ping-pong",
        gap: None,
        rows: vec![
            row("tokio-unixstream", "tokio UnixStream ping-pong", Peer, peers::tokio_uds::uds_rtt),
            row("queue-async", "ipc-queue MPMC, recv_async", Ours, ours::select::async_queue_rtt),
            row("queue-mpmc", "ipc-queue MPMC, blocking recv", Ours, ours::queue::mpmc_block),
            row(
                "epoll-eventfd",
                "raw eventfd ping-pong, epoll_wait then read",
                Floor,
                floors::epoll_eventfd,
            ),
        ],
    });

    // B1: message pipes.
    for (size, places) in [
        (8usize, &[Placement::Cross, Placement::Same, Placement::Unpinned][..]),
        (1024, &[Placement::Cross, Placement::Same][..]),
        (64 << 10, &[Placement::Cross, Placement::Same][..]),
    ] {
        let sz = size_label(size);
        for &p in places {
            g.push(GroupSpec {
                id: format!("pipe-{}-{}", compact(size), p.code()),
                title: format!("B1 message pipe round trip, {sz}"),
                metric: Metric::Rtt,
                placement: p,
                size,
                floor: Some("socketpair"),
                note: "a message and its echo; the floor is a raw socketpair moving the same bytes",
                gap: None,
                rows: vec![
                    row("socketpair", format!("raw socketpair, {sz}"), Floor, floors::socketpair),
                    row("pipe2", format!("raw pipe(2) pair, {sz}"), Floor, floors::pipe),
                    row("ipc-pipe", format!("ipc-pipe Connection, {sz}"), Ours, ours::pipe::rtt),
                    row(
                        "interprocess",
                        format!("interprocess local socket, {sz}"),
                        Peer,
                        peers::interprocess::rtt,
                    ),
                    row(
                        "ipc-channel-bytes",
                        format!("ipc-channel bytes_channel, {sz}"),
                        Peer,
                        peers::ipc_channel::bytes_rtt,
                    ),
                    row(
                        "ipc-channel-typed",
                        if size <= 8 {
                            "ipc-channel typed, u64".to_string()
                        } else {
                            format!("ipc-channel typed, Vec<u8> of {sz}")
                        },
                        Peer,
                        peers::ipc_channel::typed_rtt,
                    ),
                    row(
                        "mp-pipe",
                        format!("Python mp.Pipe send_bytes, {sz}"),
                        Peer,
                        peers::python::pipe_rtt,
                    ),
                ],
            });
        }
    }

    // B1 over TCP loopback: Listener/Client as Python's Listener(('127.0.0.1', port)),
    // against a raw TCP socket pair (TCP_NODELAY both) moving the same bytes; same core, where
    // the kernel path is what is measured (a cross-core trip adds a VM IPI to both rows).
    g.push(GroupSpec {
        id: "tcp-8-S".into(),
        title: "B1 message round trip over TCP loopback, 8 B".into(),
        metric: Metric::Rtt,
        placement: Placement::Same,
        size: 8,
        floor: Some("tcp"),
        note: "a message and its echo over 127.0.0.1; the floor is a raw TCP socket pair (TCP_NODELAY)",
        gap: None,
        rows: vec![
            row("tcp", "raw TCP socket pair, loopback, 8 B", Floor, floors::tcp),
            row("ipc-pipe-tcp", "ipc-pipe Connection over TCP (Listener/Client), 8 B", Ours, ours::pipe::tcp_rtt),
        ],
    });

    // B2 / B5: throughput, writer on cpu1, reader on cpu0.
    g.push(GroupSpec {
        id: "tput-pipe-1m".into(),
        title: "B2 message pipe throughput, 1 MiB messages, one way".into(),
        metric: Metric::Throughput,
        placement: Placement::Cross,
        size: 1 << 20,
        floor: Some("uds-stream"),
        note: "higher is better; the floor is a raw Unix stream socket with the same chunks",
        gap: None,
        rows: vec![
            row("uds-stream", "raw Unix stream socketpair, 1 MiB reads", Floor, floors::uds_tput),
            row("pipe2", "raw pipe(2), 1 MiB reads", Floor, floors::pipe_tput),
            row("ipc-pipe", "ipc-pipe Connection, 1 MiB messages", Ours, ours::pipe::tput),
            row(
                "ipc-pipe-simplex",
                "ipc-pipe simplex (grown pipe), 1 MiB messages",
                Ours,
                ours::pipe::simplex_tput,
            ),
            row(
                "interprocess",
                "interprocess local socket, 1 MiB",
                Peer,
                peers::interprocess::tput,
            ),
            row(
                "ipc-channel-bytes",
                "ipc-channel bytes_channel, 1 MiB",
                Peer,
                peers::ipc_channel::bytes_tput,
            ),
            row("mp-pipe", "Python mp.Pipe send_bytes, 1 MiB", Peer, peers::python::pipe_tput),
        ],
    });
    for size in [64usize, 64 << 10] {
        let sz = size_label(size);
        g.push(GroupSpec {
            id: format!("tput-queue-{}", compact(size)),
            title: format!("B5 shared-memory queue throughput, {sz} messages, one way"),
            metric: Metric::Throughput,
            placement: Placement::Cross,
            size,
            floor: Some("ring"),
            note: "higher is better; the floor is a reference SPSC ring (cached indices) copying in and out",
            gap: None,
            rows: vec![
                row("ring", format!("reference SPSC ring, {sz}"), Floor, floors::ring_tput),
                row("queue-spsc", format!("ipc-queue SPSC, {sz}"), Ours, ours::queue::spsc_tput),
                row(
                    "queue-zerocopy",
                    format!("ipc-queue zero-copy, {sz}"),
                    Ours,
                    ours::queue::zero_copy_tput,
                ),
                row(
                    "crossbeam-arrayqueue",
                    format!("crossbeam ArrayQueue (threads), [u8; {size}]"),
                    Peer,
                    peers::threads::arrayqueue_tput,
                ),
            ],
        });
    }
    g.push(GroupSpec {
        id: "memcpy".into(),
        title: "F0 memcpy, one thread".into(),
        metric: Metric::Throughput,
        placement: Placement::Cross,
        size: 0,
        floor: None,
        note: "the ceiling for any copy through shared memory (L1 / L2 / DRAM working sets)",
        gap: None,
        rows: vec![
            row("4k", "memcpy 4 KiB", Floor, floors::memcpy_4k),
            row("1m", "memcpy 1 MiB", Floor, floors::memcpy_1m),
            row("256m", "memcpy 256 MiB", Floor, floors::memcpy_256m),
        ],
    });

    // B7 / B6a: uncontended operations, one thread (a second thread alive, idle).
    g.push(GroupSpec {
        id: "lock-uncontended".into(),
        title: "B7 mutex lock+unlock, uncontended (counter++ inside)".into(),
        metric: Metric::Op,
        placement: Placement::Cross,
        size: 0,
        floor: Some("tas"),
        note: "one thread, a second one alive and idle; the floor is a TAS spinlock (xchg + store)",
        gap: None,
        rows: vec![
            row("tas", "TAS spinlock in shm (xchg + store)", Floor, floors::tas),
            row(
                "futex-wake",
                "FUTEX_WAKE with nobody waiting (one syscall)",
                Floor,
                floors::futex_wake,
            ),
            row("mutex", "ipc-lock Mutex (robust)", Ours, ours::lock::mutex_op),
            row("rwlock-read", "ipc-lock RwLock read", Ours, ours::lock::rwlock_read_op),
            row(
                "parking_lot",
                "parking_lot::Mutex (threads only)",
                Peer,
                peers::threads::parking_lot_op,
            ),
            row("std-mutex", "std::sync::Mutex (threads only)", Peer, peers::threads::std_mutex_op),
            row(
                "parking_lot-rwlock-read",
                "parking_lot::RwLock read (threads only)",
                Peer,
                peers::threads::parking_lot_rwlock_read_op,
            ),
            row("pthread-pshared", "glibc pthread mutex, pshared", Peer, peers::glibc::pshared_op),
            row(
                "pthread-robust",
                "glibc pthread mutex, pshared + robust",
                Peer,
                peers::glibc::robust_op,
            ),
            row(
                "raw_sync",
                "raw_sync::locks::Mutex (pshared pthread)",
                Peer,
                peers::raw_sync::mutex_op,
            ),
            row("mp-lock", "Python mp.Lock acquire+release", Peer, peers::python::lock_op),
        ],
    });
    g.push(GroupSpec {
        id: "sem-uncontended".into(),
        title: "B6 semaphore acquire+release, uncontended".into(),
        metric: Metric::Op,
        placement: Placement::Cross,
        size: 0,
        floor: Some("rmw"),
        note: "one thread; the floor is the two atomic read-modify-writes any semaphore needs",
        gap: None,
        rows: vec![
            row("rmw", "atomic fetch_sub + fetch_add in shm", Floor, floors::rmw),
            row("sem", "ipc-sem Semaphore acquire+release (untracked)", Ours, ours::sem::op),
            row(
                "sem-tracked",
                "ipc-sem Semaphore acquire+release (tracked, robust)",
                Ours,
                ours::sem::tracked_op,
            ),
            row("sem_t", "glibc sem_t pshared sem_wait+sem_post", Peer, peers::glibc::sem_op),
            row("mp-semaphore", "Python mp.Semaphore acquire+release", Peer, peers::python::sem_op),
        ],
    });

    // B8: contended locks, handoff, recovery.
    g.push(GroupSpec {
        id: "lock-contended".into(),
        title: "B8a mutex contended, 2 processes (2 threads for in-process peers), ns per lock".into(),
        metric: Metric::Op,
        placement: Placement::Cross,
        size: 0,
        floor: Some("counter"),
        note: "both sides loop lock; counter++; unlock; the figure is wall time / total locks (throughput, unfair)",
        gap: None,
        rows: vec![
            row("counter", "shared counter fetch_add, 2 processes", Floor, floors::counter_contended),
            row("mutex", "ipc-lock Mutex, 2 processes", Ours, ours::lock::mutex_contended),
            row(
                "pthread-robust",
                "glibc pthread pshared + robust, 2 processes",
                Peer,
                peers::glibc::robust_contended,
            ),
            row(
                "pthread-pshared",
                "glibc pthread pshared, 2 processes",
                Peer,
                peers::glibc::pshared_contended,
            ),
            row("parking_lot", "parking_lot::Mutex, 2 threads", Peer, peers::threads::parking_lot_contended),
            row("std-mutex", "std::sync::Mutex, 2 threads", Peer, peers::threads::std_mutex_contended),
            row("mp-lock", "Python mp.Lock, 2 processes", Peer, peers::python::lock_contended),
        ],
    });
    for p in [Placement::Cross, Placement::Same] {
        g.push(GroupSpec {
            id: format!("lock-handoff-{}", p.code()),
            title: "B8b mutex handoff: holder unlocks, parked waiter owns it".into(),
            metric: Metric::OneWay,
            placement: p,
            size: 0,
            floor: Some("futex"),
            note: "one-way; the floor is half the raw futex round trip of the same run; the raw \
                   futex mutex row does the same handoff through the same driver as the locks",
            gap: None,
            rows: vec![
                row("futex", "raw futex one-way (RTT/2)", Floor, floors::futex_oneway),
                row(
                    "futex-mutex",
                    "raw 3-state futex mutex handoff (no robustness)",
                    Floor,
                    floors::futex_mutex_handoff,
                ),
                row("mutex", "ipc-lock Mutex handoff", Ours, ours::lock::mutex_handoff),
                row(
                    "pthread-robust",
                    "glibc pthread robust handoff",
                    Peer,
                    peers::glibc::robust_handoff,
                ),
            ],
        });
    }
    g.push(GroupSpec {
        id: "lock-recovery".into(),
        title: "B10 owner SIGKILLed while holding the lock: time until the parked waiter is told"
            .into(),
        metric: Metric::Trial,
        placement: Placement::Cross,
        size: 0,
        floor: None,
        note: "from kill(2) to the waiter's lock() returning owner-died; goal: p99 <= 100 ms",
        gap: None,
        rows: vec![
            row("mutex", "ipc-lock Mutex, OwnerDied", Ours, ours::lock::mutex_recovery),
            row(
                "pthread-robust",
                "glibc pthread robust, EOWNERDEAD",
                Peer,
                peers::glibc::robust_recovery,
            ),
        ],
    });

    // ipc-process: start + join per start method beside the kernel's floors, procspawn and
    // Python; the pool's per-task cost; a task's round trip beside an ipc-pipe round trip.
    g.push(GroupSpec {
        id: "process-start".into(),
        title: "process start + join (a task that returns its argument)".into(),
        metric: Metric::Trial,
        placement: Placement::Unpinned,
        size: 0,
        floor: Some("posix-spawn"),
        note: "goals: spawn <= 1.2x posix_spawn of /bin/true; forkserver <= 1.5x raw fork; >= 10x faster than Python spawn; exec of this binary alone is the re-exec floor",
        gap: None,
        rows: vec![
            row("posix-spawn", "posix_spawn /bin/true + waitpid", Floor, ours::process::posix_spawn_true),
            row(
                "posix-spawn-self",
                "posix_spawn of this binary, exits in init + waitpid",
                Floor,
                ours::process::posix_spawn_self,
            ),
            row("raw-fork", "raw fork + _exit + waitpid", Floor, ours::process::raw_fork),
            row("spawn", "ipc-process Process::spawn + join (re-exec)", Ours, ours::process::start_spawn),
            row("forkserver", "ipc-process ForkServer start + join", Ours, ours::process::start_forkserver),
            row("fork", "ipc-process Process::fork + join", Ours, ours::process::start_fork),
            row("procspawn", "procspawn spawn + join", Peer, peers::procspawn::start_join),
            row("mp-fork", "Python Process (fork) start + join", Peer, peers::mp_process::start_fork),
            row(
                "mp-forkserver",
                "Python Process (forkserver) start + join",
                Peer,
                peers::mp_process::start_forkserver,
            ),
            row("mp-spawn", "Python Process (spawn) start + join", Peer, peers::mp_process::start_spawn),
        ],
    });
    g.push(GroupSpec {
        id: "process-pool".into(),
        title: "pool map, time per empty task, 2 workers".into(),
        metric: Metric::Op,
        placement: Placement::Unpinned,
        size: 0,
        floor: None,
        note: "ours and Python Pool.map: 10^5 tasks, Python's chunk size; ProcessPoolExecutor and procspawn: 10^4 tasks, one message each; goal >= 20x Python's throughput",
        gap: None,
        rows: vec![
            row("map", "ipc-process Pool::map", Ours, ours::process::pool_map),
            row("mp-pool", "Python Pool.map", Peer, peers::mp_process::pool_map),
            row("mp-executor", "Python ProcessPoolExecutor.map", Peer, peers::mp_process::executor_map),
            row("procspawn", "procspawn Pool spawn + join", Peer, peers::procspawn::pool),
        ],
    });
    for p in [Placement::Same, Placement::Unpinned] {
        g.push(GroupSpec {
            id: format!("process-apply-{}", p.code()),
            title: "task round trip: Pool::apply beside an ipc-pipe round trip, 8 B".into(),
            metric: Metric::Rtt,
            placement: p,
            size: 8,
            floor: Some("pipe"),
            note: "apply goes caller -> supervisor thread -> worker and back; goal <= 1.5x the ipc-pipe round trip",
            gap: None,
            rows: vec![
                row("pipe", "ipc-pipe Connection round trip (reference)", Ours, ours::pipe::rtt),
                row("apply", "ipc-process Pool::apply, 1 worker", Ours, ours::process::pool_apply),
            ],
        });
    }

    // B11: segment lifecycle.
    g.push(GroupSpec {
        id: "shm-create".into(),
        title: "B11 shared-memory segment create + map + unlink, 1 MiB".into(),
        metric: Metric::Op,
        placement: Placement::Cross,
        size: 1 << 20,
        floor: Some("raw"),
        note: "ipc-shm reserve(false) compares with raw ftruncate; its default (space reserved) with raw fallocate",
        gap: None,
        rows: vec![
            row("raw", "raw shm_open + ftruncate + mmap + unlink", Floor, floors::shm_raw),
            row(
                "raw-fallocate",
                "raw shm_open + fallocate + mmap + unlink",
                Floor,
                floors::shm_raw_fallocate,
            ),
            row("ipc-shm", "ipc-shm Shm::create, reserve(false)", Ours, ours::shm::create),
            row(
                "ipc-shm-reserved",
                "ipc-shm Shm::create (default: reserved)",
                Ours,
                ours::shm::create_reserved,
            ),
            row(
                "mp-shared-memory",
                "Python SharedMemory(create=True) + close + unlink",
                Peer,
                peers::python::shm_create,
            ),
        ],
    });
    g
}

/// 8, 64, 1k, 64k, 1m: for ids.
pub fn compact(size: usize) -> String {
    match size {
        s if s >= 1 << 20 && s % (1 << 20) == 0 => format!("{}m", s >> 20),
        s if s >= 1 << 10 && s % (1 << 10) == 0 => format!("{}k", s >> 10),
        s => s.to_string(),
    }
}

/// Keep the rows that match any of `filters` (case-insensitive substring of `group/row`,
/// of the group id or of the row label), plus each kept group's floor. Empty filters keep
/// everything.
pub fn filter(groups: Vec<GroupSpec>, filters: &[String]) -> Vec<GroupSpec> {
    if filters.is_empty() {
        return groups;
    }
    let pats: Vec<String> = filters.iter().map(|f| f.to_lowercase()).collect();
    groups
        .into_iter()
        .filter_map(|mut g| {
            let gid = g.id.to_lowercase();
            let floor = g.floor;
            let keep: Vec<bool> = g
                .rows
                .iter()
                .map(|r| {
                    let full = format!("{gid}/{}", r.id).to_lowercase();
                    let label = r.label.to_lowercase();
                    pats.iter().any(|p| full.contains(p.as_str()) || label.contains(p.as_str()))
                })
                .collect();
            if !keep.iter().any(|&k| k) {
                return None;
            }
            let mut i = 0;
            g.rows.retain(|r| {
                let k = keep.get(i).copied().unwrap_or(false) || Some(r.id) == floor;
                i += 1;
                k
            });
            Some(g)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_unique_and_floors_exist() {
        let groups = catalog();
        let mut gids = std::collections::HashSet::new();
        for g in &groups {
            assert!(gids.insert(g.id.clone()), "duplicate group {}", g.id);
            let mut rids = std::collections::HashSet::new();
            for r in &g.rows {
                assert!(rids.insert(r.id), "duplicate row {}/{}", g.id, r.id);
            }
            if let Some(f) = g.floor {
                assert!(g.rows.iter().any(|r| r.id == f), "{}: floor {f} missing", g.id);
            }
        }
    }

    #[test]
    fn filter_keeps_floor() {
        let f = filter(catalog(), &["poll-64/iceoryx2".to_string()]);
        assert_eq!(f.len(), 1);
        let ids: Vec<&str> = f[0].rows.iter().map(|r| r.id).collect();
        assert_eq!(ids, ["spin2", "iceoryx2"]);
        assert!(filter(catalog(), &["no-such-row".into()]).is_empty());
        assert_eq!(filter(catalog(), &[]).len(), catalog().len());
    }

    #[test]
    fn sizes() {
        assert_eq!(size_label(8), "8 B");
        assert_eq!(size_label(1024), "1 KiB");
        assert_eq!(size_label(1 << 20), "1 MiB");
        assert_eq!(compact(65536), "64k");
    }
}
