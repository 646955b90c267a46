//! A Python program drives a Rust worker pool: Python listens with
//! `multiprocessing.connection.Listener` (authkey and all), starts this binary as its
//! worker, and sends it batches of numbers; the Rust side connects with ipc-pipe's `Client`
//! (Python's own handshake), runs each batch on an ipc-process `Pool` and sends the results
//! back. A worker of the pool that dies only fails its task.
//!
//! ```text
//! cargo run --release -p ipc-process --example python_driver     # needs python3
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use ipc_pipe::{Address, Client};
use ipc_process::{Pool, TaskError};

/// The work: the Collatz stopping time of `n` (or an error for 0).
fn steps(n: u64) -> Result<u64, String> {
    if n == 0 {
        return Err("0 has no Collatz sequence".into());
    }
    let (mut x, mut k) = (n, 0);
    while x != 1 {
        x = if x % 2 == 0 { x / 2 } else { 3 * x + 1 };
        k += 1;
    }
    Ok(k)
}

/// Python's side: listen, start the Rust worker, send jobs, print the answers.
const DRIVER: &str = r#"
import os, subprocess, sys, tempfile
from multiprocessing.connection import Listener

key = os.urandom(32)
path = os.path.join(tempfile.mkdtemp(), "jobs.sock")
with Listener(path, authkey=key) as listener:
    worker = subprocess.Popen([sys.argv[1], "--worker", path], env={**os.environ, "JOBS_KEY": key.hex()})
    with listener.accept() as conn:
        for batch in ([27, 97, 871], [0, 6171], list(range(1, 10001))):
            conn.send_bytes(",".join(map(str, batch)).encode())
            answer = conn.recv_bytes().decode().split(",")
            shown = answer if len(answer) < 6 else answer[:3] + ["..."] + answer[-2:]
            print(f"python: {len(batch)} jobs -> {shown}")
        conn.send_bytes(b"quit")
    code = worker.wait()
os.rmdir(os.path.dirname(path))
sys.exit(code)
"#;

fn worker(path: &str) -> Result<(), Box<dyn std::error::Error>> {
    let key = std::env::var("JOBS_KEY")?;
    let key: Vec<u8> = (0..key.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(key.get(i..i + 2).unwrap_or("00"), 16))
        .collect::<Result<_, _>>()?;
    let mut conn = Client::connect(Address::path(path), Some(&key))?;
    let pool = Pool::new(2)?;
    loop {
        let msg = conn.recv()?;
        if msg == b"quit" {
            return Ok(());
        }
        let jobs: Vec<u64> =
            String::from_utf8(msg)?.split(',').map(str::parse).collect::<Result<_, _>>()?;
        let answers: Vec<String> = pool
            .imap(steps, jobs)?
            .map(|r| match r {
                Ok(k) => k.to_string(),
                Err(TaskError::Failed(e)) => format!("error: {e}"),
                Err(e) => format!("lost: {e}"),
            })
            .collect();
        conn.send(answers.join(",").as_bytes())?;
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    ipc_process::init(); // the pool's workers are this binary too
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, path] = args.as_slice()
        && flag == "--worker"
    {
        return worker(path);
    }
    let me = std::env::current_exe()?;
    let status = std::process::Command::new("python3").arg("-c").arg(DRIVER).arg(me).status()?;
    if !status.success() {
        return Err(format!("python driver: {status}").into());
    }
    println!("rust: the Python driver finished");
    Ok(())
}
