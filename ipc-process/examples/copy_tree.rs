//! Copy a directory tree with a pool of worker processes, a progress bar on the parent's
//! terminal, errors reported per file and a summary; optionally SIGKILL one worker mid-run
//! to show that nothing is lost (its file is retried on a fresh worker).
//!
//! ```text
//! cargo run --release -p ipc-process --example copy_tree -- SRC DST [--workers N] [--kill-one]
//! cargo run --release -p ipc-process --example copy_tree        # demo: makes a tree, copies it, kills a worker
//! ```
#![allow(clippy::print_stderr, clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use ipc_process::{Pool, Retry, TaskError};

/// The task: copy one file (runs in a worker process). Returns the bytes copied.
fn copy_file((src, dst): (PathBuf, PathBuf)) -> Result<u64, String> {
    std::fs::copy(&src, &dst).map_err(|e| format!("{}: {e}", src.display()))
}

/// Every regular file under `root`, as paths relative to it; directories listed too.
fn walk(root: &Path) -> std::io::Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let (mut files, mut dirs) = (Vec::new(), Vec::new());
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for entry in std::fs::read_dir(root.join(&rel))? {
            let entry = entry?;
            let path = rel.join(entry.file_name());
            let kind = entry.file_type()?;
            if kind.is_dir() {
                dirs.push(path.clone());
                stack.push(path);
            } else if kind.is_file() {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok((files, dirs))
}

struct Args {
    src: PathBuf,
    dst: PathBuf,
    workers: usize,
    kill_one: bool,
    demo: bool,
}

fn parse() -> Result<Args, String> {
    let mut pos = Vec::new();
    let mut workers = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
    let mut kill_one = false;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--workers" => {
                workers = it.next().and_then(|n| n.parse().ok()).ok_or("--workers N")?;
            }
            "--kill-one" => kill_one = true,
            "-h" | "--help" => {
                return Err("usage: copy_tree [SRC DST] [--workers N] [--kill-one]".into());
            }
            _ => pos.push(PathBuf::from(a)),
        }
    }
    match pos.as_slice() {
        [] => {
            let base =
                std::env::temp_dir().join(format!("ipc-process-copy-demo-{}", std::process::id()));
            make_demo_tree(&base.join("src")).map_err(|e| format!("make demo tree: {e}"))?;
            Ok(Args {
                src: base.join("src"),
                dst: base.join("dst"),
                workers,
                kill_one: true,
                demo: true,
            })
        }
        [src, dst] => {
            Ok(Args { src: src.clone(), dst: dst.clone(), workers, kill_one, demo: false })
        }
        _ => Err("usage: copy_tree [SRC DST] [--workers N] [--kill-one]".into()),
    }
}

/// 12 directories of 25 files, 16 KiB to 1 MiB each, plus one unreadable file (an error to
/// report, unless we run as root, who reads everything).
fn make_demo_tree(root: &Path) -> std::io::Result<()> {
    let mut seed = 0x9e37_79b9_u64;
    for d in 0..12 {
        let dir = root.join(format!("dir{d:02}"));
        std::fs::create_dir_all(&dir)?;
        for f in 0..25 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let len = 16 * 1024 + (seed >> 33) as usize % (1024 * 1024);
            let byte = (seed >> 56) as u8;
            std::fs::write(dir.join(format!("file{f:02}.bin")), vec![byte; len])?;
        }
    }
    let locked = root.join("dir00/unreadable.bin");
    std::fs::write(&locked, b"secret")?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000))?;
    Ok(())
}

fn main() {
    ipc_process::init(); // first: the workers are this program, re-executed
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&args) {
        eprintln!("copy_tree: {e}");
        std::process::exit(1);
    }
    if args.demo {
        let _ = std::fs::remove_dir_all(args.src.parent().unwrap_or(&args.src));
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let (files, dirs) = walk(&args.src)?;
    std::fs::create_dir_all(&args.dst)?;
    for d in &dirs {
        std::fs::create_dir_all(args.dst.join(d))?;
    }
    println!(
        "copying {} files from {} to {} with {} worker processes",
        files.len(),
        args.src.display(),
        args.dst.display(),
        args.workers
    );
    // A task whose worker dies is run again (up to twice) on a fresh worker.
    let pool = Pool::builder().workers(args.workers).retry(Retry::Times(2)).build()?;
    let jobs: Vec<(PathBuf, PathBuf)> =
        files.iter().map(|f| (args.src.join(f), args.dst.join(f))).collect();
    // One file per task, so progress moves file by file and a death blames one file.
    let results = pool.imap_unordered_chunked(copy_file, jobs, Some(1))?;

    let bar = ProgressBar::new(files.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} files {elapsed} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let (mut bytes, mut errors, mut killed) = (0u64, Vec::new(), None);
    for (n, (i, outcome)) in results.enumerate() {
        match outcome {
            Ok(b) => bytes += b,
            Err(TaskError::Failed(why)) => errors.push(why),
            Err(other) => errors.push(format!("{}: {other}", files[i].display())),
        }
        bar.inc(1);
        bar.set_message(format!("{} MiB", bytes >> 20));
        if args.kill_one
            && killed.is_none()
            && n == files.len() / 3
            && let Some(&pid) = pool.worker_pids().first()
        {
            let _ = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status();
            bar.suspend(|| println!("killed worker {pid} with SIGKILL mid-run"));
            killed = Some(pid);
        }
    }
    bar.finish();
    let stats = pool.stats();
    pool.close();
    pool.join()?;

    println!(
        "copied {} of {} files, {} MiB, in {:.2?}",
        files.len() - errors.len(),
        files.len(),
        bytes >> 20,
        started.elapsed()
    );
    println!(
        "workers started {}, died {}, tasks retried {}",
        stats.workers_started, stats.worker_deaths, stats.tasks_retried
    );
    for e in &errors {
        println!("  error: {e}");
    }
    // Nothing lost: every file that did not fail is at its destination, whole.
    let mut missing = 0;
    for f in &files {
        let (a, b) = (std::fs::metadata(args.src.join(f)), std::fs::metadata(args.dst.join(f)));
        let failed = errors.iter().any(|e| e.contains(&f.display().to_string()));
        match (a, b) {
            (Ok(a), Ok(b)) if a.len() == b.len() => {}
            _ if failed => {}
            _ => {
                missing += 1;
                println!("  lost: {}", f.display());
            }
        }
    }
    if missing > 0 {
        return Err(format!("{missing} files lost").into());
    }
    println!(
        "verified: every file copied whole{}",
        if killed.is_some() { " despite the kill" } else { "" }
    );
    Ok(())
}
