//! Cross-process suite of ipc-process: every start method runs a function and brings its
//! value back; a child's `Err`, panic, `exit(3)`, SIGSEGV and SIGKILL each arrive as their
//! own typed error; a parent with eight threads holding locks starts children safely; a
//! thousand start/join cycles leave no zombie and no fd; the children of a killed parent
//! die; and the pool fault suite (random worker SIGKILLs with retries off and on, task
//! timeouts, `max_tasks_per_child = 1`).
//!
//! Counts of fds and children are taken inside forked children, which are single-threaded:
//! under `cargo test` other tests' threads open fds and start processes at any moment.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use ipc_pipe::Connection;
use ipc_process::{
    ExitStatus, Handle, Pool, Process, ProcessBuilder, Retry, StartMethod, TaskError,
};
use ipc_testkit::{audit, fault, fork, recv_line, send_line, watchdog};

// Spawned children of this binary start here, before libtest's main.
ipc_process::auto_init!();

const METHODS: [StartMethod; 2] = [StartMethod::Spawn, StartMethod::ForkServer];
const DEADLINE: Duration = Duration::from_secs(30);

// ---- tasks (plain fns: they cross to re-executed children by name) ---------------------

fn add((a, b): (u64, u64)) -> u64 {
    a + b
}

fn describe((name, times): (String, usize)) -> Result<String, String> {
    if times == 0 { Err(format!("nothing to say about {name}")) } else { Ok(name.repeat(times)) }
}

fn panics(msg: String) -> u32 {
    panic!("task panicked: {msg}")
}

#[allow(clippy::exit)] // the exit is what is tested
fn exits(code: i32) -> u32 {
    std::process::exit(code)
}

fn segfaults(_: ()) -> u32 {
    // SAFETY: raise has no preconditions; SIGSEGV's default action kills the process.
    unsafe { libc::raise(libc::SIGSEGV) };
    0
}

/// Says "running" on the connection it was handed, then blocks until killed.
fn waits_for_kill(conn: Handle<Connection>) -> u32 {
    let mut conn = conn.into_inner();
    conn.send(b"running").unwrap();
    loop {
        std::thread::park();
    }
}

/// Prints (taking stdout's lock in the child) and allocates.
fn prints_and_allocates(i: u64) -> u64 {
    use std::io::Write;
    let v: Vec<u64> = (0..1000).map(|x| x ^ i).collect();
    let mut out = std::io::stdout().lock();
    let _ = out.flush();
    v.iter().sum::<u64>() % 7 + i
}

fn pid_of(_: ()) -> u32 {
    std::process::id()
}

fn started(conn: &mut Connection) {
    let msg = conn.recv_timeout(DEADLINE).expect("the child said it runs");
    assert_eq!(msg, b"running");
}

// ---- start methods -----------------------------------------------------------------

#[test]
fn each_start_method_returns_the_value() {
    let _w = watchdog(Duration::from_secs(60), "each_start_method_returns_the_value");
    for method in METHODS {
        let mut p = Process::start(method, add, (40, 2)).unwrap();
        assert!(p.pid() > 0);
        assert_eq!(p.join().unwrap(), 42, "{method:?}");
        let mut p = Process::start(method, describe, ("ab".to_owned(), 3)).unwrap();
        assert_eq!(p.join().unwrap(), "ababab", "{method:?}");
    }
    // Fork runs closures, in a single-threaded process: a forked test child is one.
    let mut c = fork(|| {
        let base = 40u64;
        let mut p = Process::fork(move || base + 2).unwrap();
        assert_eq!(p.join().unwrap(), 42);
        let mut p = ProcessBuilder::default().method(StartMethod::Fork).start(add, (1, 2)).unwrap();
        assert_eq!(p.join().unwrap(), 3);
    });
    c.assert_success();
}

#[test]
fn fork_refuses_a_threaded_process() {
    let stop = Arc::new(AtomicBool::new(false));
    let s = Arc::clone(&stop);
    let t = std::thread::spawn(move || {
        while !s.load(Ordering::Relaxed) {
            std::thread::park_timeout(Duration::from_millis(10));
        }
    });
    match Process::fork(|| 1u32) {
        Err(ipc_process::Error::MultiThreaded { threads, .. }) => assert!(threads >= 2),
        other => panic!("fork in a threaded process: {other:?}"),
    }
    stop.store(true, Ordering::Relaxed);
    t.thread().unpark();
    t.join().unwrap();
}

// ---- handles --------------------------------------------------------------------------

type Handles = (
    Handle<ipc_shm::Shm>,
    Handle<ipc_shm::Shm>,
    Handle<ipc_queue::Queue>,
    Handle<ipc_sem::NamedSemaphore>,
    Handle<ipc_lock::NamedMutex<u64>>,
    Handle<Connection>,
);

/// Uses one object of each kind it was handed: a named and an anonymous segment, an
/// anonymous queue, a named semaphore, a named mutex, a pipe connection.
fn use_handles((named, anon, q, sem, m, conn): Handles) -> Result<u64, String> {
    let (mut named, mut anon) = (named.into_inner(), anon.into_inner());
    let mut b = [0u8; 1];
    named.read_at(0, &mut b).map_err(|e| e.to_string())?;
    anon.write_at(0, &[b[0] + 1]).map_err(|e| e.to_string())?;
    q.send(b"from the child").map_err(|e| e.to_string())?;
    sem.release().map_err(|e| e.to_string())?;
    *m.lock().map_err(|_| "mutex owner died".to_string())? += 5;
    let mut conn = conn.into_inner();
    conn.send(b"hello over a passed pipe").map_err(|e| e.to_string())?;
    Ok(u64::from(b[0]))
}

#[test]
fn handles_cross_by_fd_and_by_name() {
    let _w = watchdog(Duration::from_secs(60), "handles_cross_by_fd_and_by_name");
    let shm_name = ipctest_name("proc-named");
    let sem_name = ipctest_name("proc-sem");
    let mutex_name = ipctest_name("proc-mutex");
    let mut named = ipc_shm::Shm::create(&shm_name, 4096).unwrap();
    named.write_at(0, &[41]).unwrap();
    let mut anon = ipc_shm::Shm::anonymous(4096).unwrap();
    let q = ipc_queue::Queue::anonymous(8, 64).unwrap();
    let sem = ipc_sem::NamedSemaphore::create(&sem_name, 0).unwrap();
    let m = ipc_lock::NamedMutex::create(&mutex_name, 1u64).unwrap();
    for method in METHODS {
        let (mut mine, theirs) = ipc_pipe::pipe().unwrap();
        let args = (
            Handle::share(&named).unwrap(),
            Handle::share(&anon).unwrap(),
            Handle::share(&q).unwrap(),
            Handle::share(&sem).unwrap(),
            Handle::share(&m).unwrap(),
            Handle::new(theirs),
        );
        let mut p = Process::start(method, use_handles, args).unwrap();
        assert_eq!(p.join().unwrap(), 41, "{method:?}");
        let mut b = [0u8; 1];
        anon.read_at(0, &mut b).unwrap();
        assert_eq!(b[0], 42, "{method:?}: the anonymous segment is the same memory");
        assert_eq!(q.recv_timeout(DEADLINE).unwrap(), b"from the child");
        assert!(sem.try_acquire().unwrap(), "{method:?}: the named semaphore was released");
        assert_eq!(mine.recv_timeout(DEADLINE).unwrap(), b"hello over a passed pipe");
    }
    assert_eq!(*m.lock().unwrap(), 11);
    // Through the pool (apply), too.
    let pool = Pool::new(1).unwrap();
    let (_mine, theirs) = ipc_pipe::pipe().unwrap();
    let args = (
        Handle::share(&named).unwrap(),
        Handle::share(&anon).unwrap(),
        Handle::share(&q).unwrap(),
        Handle::share(&sem).unwrap(),
        Handle::share(&m).unwrap(),
        Handle::new(theirs),
    );
    assert_eq!(pool.apply(use_handles, args).unwrap(), 41);
    assert_eq!(q.recv_timeout(DEADLINE).unwrap(), b"from the child");
    // A handle outside a task's arguments (here: ipc-pipe's own typed send) does not
    // serialise.
    let (mut a, _b) = ipc_pipe::pipe().unwrap();
    assert!(a.send_value(&Handle::share(&anon).unwrap()).is_err());
    drop((named, m));
    ipc_sem::NamedSemaphore::unlink(&sem_name).unwrap();
    assert!(audit::shm_entries(&shm_name).is_empty());
}

fn ipctest_name(tag: &str) -> String {
    ipc_testkit::unique_name(tag)
}

// ---- typed failures ----------------------------------------------------------------------

#[test]
fn failures_arrive_typed() {
    let _w = watchdog(Duration::from_secs(60), "failures_arrive_typed");
    for method in METHODS {
        let mut p = Process::start(method, describe, ("x".to_owned(), 0)).unwrap();
        match p.join() {
            Err(TaskError::Failed(e)) => assert_eq!(e, "nothing to say about x"),
            other => panic!("{method:?} Err: {other:?}"),
        }

        let mut p = Process::start(method, panics, "boom".to_owned()).unwrap();
        match p.join() {
            Err(TaskError::Panicked(info)) => {
                assert_eq!(info.message, "task panicked: boom");
                assert!(info.location.as_deref().unwrap().contains("process.rs"), "{info:?}");
            }
            other => panic!("{method:?} panic: {other:?}"),
        }

        let mut p = Process::start(method, exits, 3).unwrap();
        match p.join() {
            Err(TaskError::WorkerDied { exit }) => assert_eq!(exit, ExitStatus::Code(3)),
            other => panic!("{method:?} exit(3): {other:?}"),
        }
        assert_eq!(p.exit_status(), Some(ExitStatus::Code(3)));

        let mut p = Process::start(method, segfaults, ()).unwrap();
        match p.join() {
            Err(TaskError::WorkerDied { exit }) => {
                assert_eq!(exit, ExitStatus::Signal(libc::SIGSEGV));
            }
            other => panic!("{method:?} SIGSEGV: {other:?}"),
        }

        let (mut mine, theirs) = ipc_pipe::pipe().unwrap();
        let mut p = Process::start(method, waits_for_kill, Handle::new(theirs)).unwrap();
        started(&mut mine);
        assert!(p.is_alive());
        p.kill().unwrap();
        match p.join() {
            Err(TaskError::WorkerDied { exit }) => {
                assert_eq!(exit, ExitStatus::Signal(libc::SIGKILL));
            }
            other => panic!("{method:?} SIGKILL: {other:?}"),
        }
        assert!(!p.is_alive());

        let (mut mine, theirs) = ipc_pipe::pipe().unwrap();
        let mut p = Process::start(method, waits_for_kill, Handle::new(theirs)).unwrap();
        started(&mut mine);
        p.terminate().unwrap();
        match p.join() {
            Err(TaskError::WorkerDied { exit }) => {
                assert_eq!(exit, ExitStatus::Signal(libc::SIGTERM));
            }
            other => panic!("{method:?} SIGTERM: {other:?}"),
        }
    }
}

#[test]
fn panic_carries_a_backtrace_when_asked() {
    // The child inherits the environment: it captures a backtrace exactly when
    // RUST_BACKTRACE asks for one.
    let mut p = Process::spawn(panics, "with trace".to_owned()).unwrap();
    match p.join() {
        Err(TaskError::Panicked(info)) => {
            let wanted = std::env::var("RUST_BACKTRACE").is_ok_and(|v| v != "0");
            assert_eq!(info.backtrace.is_some(), wanted, "{info:?}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn join_timeout_leaves_the_child_running_and_sentinel_polls() {
    let _w = watchdog(Duration::from_secs(60), "join_timeout");
    for method in METHODS {
        let (mut mine, theirs) = ipc_pipe::pipe().unwrap();
        let mut p = Process::start(method, waits_for_kill, Handle::new(theirs)).unwrap();
        started(&mut mine);
        assert!(p.join_timeout(Duration::from_millis(50)).is_none());
        assert!(p.try_join().is_none());
        assert!(p.is_alive());
        let mut fds =
            [rustix::event::PollFd::from_borrowed_fd(p.sentinel(), rustix::event::PollFlags::IN)];
        let zero = rustix::time::Timespec { tv_sec: 0, tv_nsec: 0 };
        assert_eq!(
            rustix::event::poll(&mut fds, Some(&zero)).unwrap(),
            0,
            "sentinel of a live child"
        );
        p.kill().unwrap();
        let ten = rustix::time::Timespec { tv_sec: 10, tv_nsec: 0 };
        assert_eq!(rustix::event::poll(&mut fds, Some(&ten)).unwrap(), 1, "sentinel after death");
        assert!(matches!(p.join_timeout(DEADLINE), Some(Err(TaskError::WorkerDied { .. }))));
        assert!(matches!(p.join(), Err(TaskError::Lost(ipc_process::Error::AlreadyJoined { .. }))));
    }
}

// ---- threads holding locks --------------------------------------------------------------

#[test]
fn threaded_parent_with_locks_held_spawns_safely() {
    let _w = watchdog(Duration::from_secs(90), "threaded_parent_with_locks_held_spawns_safely");
    let stop = Arc::new(AtomicBool::new(false));
    let locks: Arc<Vec<Mutex<u64>>> = Arc::new((0..4).map(Mutex::new).collect());
    let holding = Arc::new(Barrier::new(9));
    let mut threads = Vec::new();
    for t in 0..8usize {
        let (stop, locks, holding) = (Arc::clone(&stop), Arc::clone(&locks), Arc::clone(&holding));
        threads.push(std::thread::spawn(move || {
            match t {
                // Four hold a lock of ours the whole time.
                0..=3 => {
                    let g = locks[t].lock().unwrap();
                    holding.wait();
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::park_timeout(Duration::from_millis(5));
                    }
                    drop(g);
                }
                // One holds stdout's lock, one stderr's: a child forked from this process
                // that printed would wait on them for ever.
                4 => {
                    let g = std::io::stdout().lock();
                    holding.wait();
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::park_timeout(Duration::from_millis(5));
                    }
                    drop(g);
                }
                5 => {
                    let g = std::io::stderr().lock();
                    holding.wait();
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::park_timeout(Duration::from_millis(5));
                    }
                    drop(g);
                }
                // Two churn the allocator (its arena locks taken and released all the time).
                _ => {
                    holding.wait();
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let v: Vec<u64> = (0..64).collect();
                        n = n.wrapping_add(v[63]);
                    }
                    std::hint::black_box(n);
                }
            }
        }));
    }
    holding.wait();
    assert!(Process::fork(|| 0u32).is_err(), "fork must refuse a threaded process");
    for method in METHODS {
        for i in 0..20u64 {
            let mut p = Process::start(method, prints_and_allocates, i).unwrap();
            let expected = (0..1000u64).map(|x| x ^ i).sum::<u64>() % 7 + i;
            match p.join_timeout(DEADLINE) {
                Some(r) => assert_eq!(r.unwrap(), expected, "{method:?} #{i}"),
                None => panic!("{method:?} child #{i} hung in a threaded parent"),
            }
        }
        let pool = Pool::builder().workers(2).method(method).build().unwrap();
        assert_eq!(pool.map(prints_and_allocates, 0..50).unwrap().len(), 50);
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.thread().unpark();
        t.join().unwrap();
    }
}

// ---- no zombie, no fd ----------------------------------------------------------------

/// pids whose parent is `parent`, and how many of them are zombies.
fn children_of(parent: u32) -> (Vec<u32>, usize) {
    let mut kids = Vec::new();
    let mut zombies = 0;
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let Some((_, rest)) = stat.rsplit_once(") ") else { continue };
        let mut f = rest.split(' ');
        let state = f.next().unwrap_or("");
        let ppid: u32 = f.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if ppid == parent {
            kids.push(pid);
            zombies += usize::from(state == "Z");
        }
    }
    (kids, zombies)
}

#[test]
fn a_thousand_cycles_leave_no_zombie_and_no_fd() {
    let cycles = fault::rounds(1000, 1000);
    eprintln!("[process] {cycles} start/join cycles per start method");
    let _w = watchdog(Duration::from_secs(120), "a_thousand_cycles_leave_no_zombie_and_no_fd");
    let mut c = fork(move || {
        let me = std::process::id();
        // Warm up: the fork server (a child of ours that stays) and lazily opened fds.
        Process::start(StartMethod::ForkServer, add, (1, 1)).unwrap().join().unwrap();
        let server = ipc_process::fork_server_pid().unwrap();
        let fds = audit::FdAudit::new();
        for method in [StartMethod::Spawn, StartMethod::ForkServer, StartMethod::Fork] {
            for i in 0..cycles as u64 {
                let mut p = match method {
                    StartMethod::Fork => Process::fork(move || i + 1).unwrap(),
                    m => Process::start(m, add, (i, 1)).unwrap(),
                };
                assert_eq!(p.join().unwrap(), i + 1);
            }
            // A dropped, unjoined child is killed and reaped too.
            let (mut mine, theirs) = ipc_pipe::pipe().unwrap();
            let p = match method {
                StartMethod::Fork => Process::fork(|| {
                    loop {
                        std::thread::park()
                    }
                })
                .unwrap(),
                m => Process::start(m, waits_for_kill, Handle::new(theirs)).unwrap(),
            };
            if method != StartMethod::Fork {
                started(&mut mine);
            }
            drop(p);
        }
        let (kids, zombies) = children_of(me);
        assert_eq!(zombies, 0, "zombies among our children {kids:?}");
        assert_eq!(kids, vec![server], "children other than the fork server");
        let (server_kids, server_zombies) = children_of(server);
        assert_eq!(
            (server_kids.len(), server_zombies),
            (0, 0),
            "fork server children {server_kids:?}"
        );
        fds.assert_clean("start/join cycles");
    });
    c.assert_success_within(Duration::from_secs(110));
}

// ---- the children of a killed parent ---------------------------------------------------

fn pid_gone(pid: u32, within: Duration) -> bool {
    let Some(p) = rustix::process::Pid::from_raw(pid as i32) else { return true };
    let Ok(fd) = rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()) else {
        return true; // already gone
    };
    let mut fds = [rustix::event::PollFd::new(&fd, rustix::event::PollFlags::IN)];
    let ts = rustix::time::Timespec { tv_sec: within.as_secs() as i64, tv_nsec: 0 };
    rustix::event::poll(&mut fds, Some(&ts)).unwrap_or(0) == 1
}

#[test]
fn children_of_a_killed_parent_die() {
    let _w = watchdog(Duration::from_secs(60), "children_of_a_killed_parent_die");
    let mut parent = fork(|| {
        let mut pids = Vec::new();
        let mut keep = Vec::new();
        for method in METHODS {
            let (mut mine, theirs) = ipc_pipe::pipe().unwrap();
            let p = Process::start(method, waits_for_kill, Handle::new(theirs)).unwrap();
            started(&mut mine);
            pids.push(p.pid());
            keep.push((p, mine));
        }
        // And one whole pool.
        let pool = Pool::new(2).unwrap();
        pids.extend(pool.worker_pids());
        pids.push(ipc_process::fork_server_pid().unwrap());
        send_line(&pids.iter().map(u32::to_string).collect::<Vec<_>>().join(" "));
        let _ = recv_line(Duration::from_secs(60));
        drop((keep, pool));
    });
    let line = parent.recv_line(DEADLINE).unwrap();
    let pids: Vec<u32> = line.split(' ').map(|p| p.parse().unwrap()).collect();
    assert_eq!(pids.len(), 5, "{line}");
    for &pid in &pids {
        assert!(!pid_gone(pid, Duration::ZERO), "{pid} died early");
    }
    parent.kill();
    parent.join();
    for &pid in &pids {
        assert!(pid_gone(pid, Duration::from_secs(10)), "child {pid} outlived its killed parent");
    }
}

#[test]
fn detached_child_outlives_its_handle() {
    let _w = watchdog(Duration::from_secs(60), "detached_child_outlives_its_handle");
    let (mut mine, theirs) = ipc_pipe::pipe().unwrap();
    let p = ProcessBuilder::default()
        .detached(true)
        .start(waits_for_kill, Handle::new(theirs))
        .unwrap();
    started(&mut mine);
    let pid = p.pid();
    drop(p);
    assert!(!pid_gone(pid, Duration::from_millis(200)), "a detached child died with its handle");
    // Clean up: it is not ours to wait for any more; the launcher thread reaps it.
    let _ = rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid as i32).unwrap(),
        rustix::process::Signal::KILL,
    );
    assert!(pid_gone(pid, Duration::from_secs(10)));
}

// ---- the pool fault suite -----------------------------------------------------------------

fn work(i: u64) -> u64 {
    // About 100-200 us of arithmetic: long enough for kills to land mid-task.
    let mut x = i;
    for _ in 0..60_000 {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
    std::hint::black_box(x);
    i * 3
}

/// Run `tasks` tasks on a 2-worker pool while killing `kills` random workers; returns
/// (values, worker-died count, kills sent).
fn kill_storm(test: &str, retry: Retry, tasks: u64, kills: usize) -> (usize, usize, usize) {
    let mut rng = fault::seeded(test);
    let pool = Arc::new(Pool::builder().workers(2).retry(retry).build().unwrap());
    let results = pool.imap_unordered(work, 0..tasks).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let killer = {
        let (pool, done) = (Arc::clone(&pool), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut sent = 0;
            while sent < kills && !done.load(Ordering::Relaxed) {
                // Fault timing, not synchronisation: a random moment, then a random worker.
                std::thread::sleep(
                    rng.duration(Duration::from_micros(200), Duration::from_millis(4)),
                );
                let pids = pool.worker_pids();
                if pids.is_empty() {
                    continue;
                }
                let pid = pids[rng.below(pids.len() as u64) as usize];
                if let Some(p) = rustix::process::Pid::from_raw(pid as i32)
                    && rustix::process::kill_process(p, rustix::process::Signal::KILL).is_ok()
                {
                    sent += 1;
                }
            }
            sent
        })
    };
    let mut seen = HashSet::new();
    let (mut values, mut died) = (0, 0);
    for (i, r) in results {
        assert!(seen.insert(i), "task {i} reported twice");
        match r {
            Ok(v) => {
                assert_eq!(v, i as u64 * 3, "task {i}");
                values += 1;
            }
            Err(TaskError::WorkerDied { exit }) => {
                assert_eq!(exit, ExitStatus::Signal(libc::SIGKILL), "task {i}");
                died += 1;
            }
            Err(e) => panic!("task {i}: unexpected {e}"),
        }
    }
    done.store(true, Ordering::Relaxed);
    let sent = killer.join().unwrap();
    assert_eq!(seen.len() as u64, tasks, "every task reported");
    let stats = pool.stats();
    assert_eq!(stats.duplicate_results, 0, "{stats:?}");
    eprintln!("[process] {test}: {values} values, {died} WorkerDied, {sent} kills, {stats:?}");
    (values, died, sent)
}

fn storm_sizes() -> (u64, usize) {
    // Default tier: the counts (10^4 tasks, 200 kills); IPC_ROUNDS scales the kills.
    (10_000, fault::rounds(200, 1000))
}

#[test]
fn pool_kills_without_retry_fail_only_the_running_task() {
    let _w = watchdog(Duration::from_secs(120), "pool_kills_without_retry");
    let (tasks, kills) = storm_sizes();
    let (values, died, sent) = kill_storm("pool_kills_without_retry", Retry::Never, tasks, kills);
    assert_eq!(values + died, tasks as usize);
    assert_eq!(sent, kills, "the storm ended before all kills were sent");
    assert!(died <= sent, "more WorkerDied ({died}) than kills ({sent})");
    assert!(died > 0, "no kill landed on a running task");
}

#[test]
fn pool_kills_with_retry_complete_every_task() {
    let _w = watchdog(Duration::from_secs(120), "pool_kills_with_retry");
    let (tasks, kills) = storm_sizes();
    let (values, died, sent) = kill_storm("pool_kills_with_retry", Retry::Times(20), tasks, kills);
    assert_eq!((values, died), (tasks as usize, 0));
    assert_eq!(sent, kills, "the storm ended before all kills were sent");
}

fn sleeps_ms(ms: u64) -> u64 {
    if ms == u64::MAX {
        loop {
            std::thread::park();
        }
    }
    ms
}

#[test]
fn pool_timeout_kills_only_the_overrunning_worker() {
    let _w = watchdog(Duration::from_secs(60), "pool_timeout");
    let pool = Pool::builder().workers(2).task_timeout(Duration::from_millis(300)).build().unwrap();
    let before = pool.worker_pids();
    let stuck = pool.submit(sleeps_ms, u64::MAX).unwrap();
    let quick: Vec<_> = (0..200).map(|i| pool.submit(sleeps_ms, i % 3).unwrap()).collect();
    for (i, h) in quick.into_iter().enumerate() {
        assert_eq!(h.wait().unwrap(), i as u64 % 3);
    }
    let t = Instant::now();
    match stuck.wait() {
        Err(TaskError::Timeout { after }) => assert_eq!(after, Duration::from_millis(300)),
        other => panic!("stuck task: {other:?}"),
    }
    assert!(t.elapsed() < Duration::from_secs(10));
    let stats = pool.stats();
    assert_eq!((stats.worker_deaths, stats.workers_started), (1, 3), "{stats:?}");
    let after = pool.worker_pids();
    assert_eq!(before.iter().filter(|p| after.contains(p)).count(), 1, "{before:?} -> {after:?}");
    assert_eq!(pool.apply(sleeps_ms, 5).unwrap(), 5);
}

#[test]
fn pool_max_tasks_per_child_one() {
    let _w = watchdog(Duration::from_secs(120), "pool_max_tasks_per_child_one");
    let tasks = 1000;
    for method in METHODS {
        let pool =
            Pool::builder().workers(2).method(method).max_tasks_per_child(1).build().unwrap();
        let pids = pool.map(pid_of, std::iter::repeat_n((), tasks)).unwrap();
        let distinct: HashSet<u32> = pids.iter().copied().collect();
        assert_eq!(distinct.len(), tasks, "{method:?}: every task on a fresh worker");
        let stats = pool.stats();
        assert!(stats.workers_started >= tasks as u64, "{method:?} {stats:?}");
        assert_eq!(stats.worker_deaths, 0, "{method:?} {stats:?}");
        pool.close();
        pool.join().unwrap();
    }
}

fn failing_init(fail: bool) -> Result<(), String> {
    if fail { Err("no config file".to_owned()) } else { Ok(()) }
}

#[test]
fn pool_initializer_failure_is_reported_not_looped() {
    let _w = watchdog(Duration::from_secs(60), "pool_initializer_failure");
    match Pool::builder().workers(2).initializer(failing_init, true).build() {
        Err(ipc_process::Error::InitializerFailed { message, .. }) => {
            assert!(message.contains("no config file"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let pool = Pool::builder().workers(1).initializer(failing_init, false).build().unwrap();
    assert_eq!(pool.apply(add, (2, 2)).unwrap(), 4);
}

#[test]
fn pool_cancel_and_terminate() {
    let _w = watchdog(Duration::from_secs(60), "pool_cancel_and_terminate");
    let pool = Pool::builder().workers(1).build().unwrap();
    let running = pool.submit(sleeps_ms, u64::MAX).unwrap();
    let queued = pool.submit(sleeps_ms, 1).unwrap();
    assert!(queued.cancel());
    assert!(matches!(queued.wait(), Err(TaskError::Cancelled)));
    assert!(running.cancel());
    assert!(matches!(running.wait(), Err(TaskError::Cancelled)));
    assert_eq!(pool.apply(sleeps_ms, 2).unwrap(), 2);
    let stuck = pool.submit(sleeps_ms, u64::MAX).unwrap();
    let never = pool.submit(sleeps_ms, 3).unwrap();
    pool.terminate();
    assert!(matches!(stuck.wait(), Err(TaskError::Terminated)));
    assert!(matches!(never.wait(), Err(TaskError::Terminated)));
    assert!(matches!(pool.submit(add, (1, 1)), Err(ipc_process::Error::PoolClosed { .. })));
}

#[test]
fn pool_typed_failures() {
    let _w = watchdog(Duration::from_secs(60), "pool_typed_failures");
    let pool = Pool::new(2).unwrap();
    assert!(
        matches!(pool.apply(describe, ("y".into(), 0)), Err(TaskError::Failed(e)) if e.contains("y"))
    );
    assert!(
        matches!(pool.apply(panics, "p".into()), Err(TaskError::Panicked(p)) if p.message.ends_with(": p"))
    );
    assert!(matches!(
        pool.apply(exits, 3),
        Err(TaskError::WorkerDied { exit: ExitStatus::Code(3) })
    ));
    assert!(matches!(
        pool.apply(segfaults, ()),
        Err(TaskError::WorkerDied { exit: ExitStatus::Signal(libc::SIGSEGV) })
    ));
    // Everything else still runs, on replaced workers.
    assert_eq!(
        pool.map(add, (0..100).map(|i| (i, i))).unwrap(),
        (0..100).map(|i| 2 * i).collect::<Vec<_>>()
    );
    assert_eq!(pool.stats().worker_deaths, 2);
}

#[test]
fn feeding_many_tasks_never_deadlocks() {
    let _w = watchdog(Duration::from_secs(60), "feeding_many_tasks_never_deadlocks");
    let pool = Pool::new(2).unwrap();
    // Many more submissions than any socket buffer holds, none collected until all are in.
    let handles: Vec<_> = (0..20_000u64).map(|i| pool.submit(add, (i, i)).unwrap()).collect();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.wait().unwrap(), 2 * i as u64);
    }
    let big = pool.map_chunked(add, (0..200_000u64).map(|i| (i, 1)), 50_000).unwrap();
    assert_eq!(big.len(), 200_000);
}
