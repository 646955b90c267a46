//! One tokio task serves a shared-memory queue, a pipe and a child process's exit at once:
//! `Queue::recv_async`, `AsyncConnection::recv` and `ipc_shm::event_count::ready` on the
//! child, in one `select!`, on a single-threaded runtime (no helper thread, no polling loop).
//!
//! Run: `cargo run -p ipc-select --example tokio_serve`

use std::time::Duration;

use ipc_pipe::AsyncConnection;
use ipc_process::Process;
use ipc_queue::Queue;
use ipc_shm::event_count::ready;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let jobs = Queue::anonymous(16, 64)?;
    let (near, far) = ipc_pipe::pipe()?;
    // The child sends three jobs on the queue and three greetings on the pipe, then exits.
    let jobs_ref = &jobs;
    let mut child = Process::fork(move || {
        let (jobs, mut far) = (jobs_ref, far);
        for i in 0..3 {
            jobs.send(format!("job {i}").as_bytes()).map_err(|e| e.to_string())?;
            far.send(format!("hello {i}").as_bytes()).map_err(|e| e.to_string())?;
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok::<(), String>(())
    })?;

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let mut conn = AsyncConnection::new(near)?;
        let (mut queued, mut piped, mut exited) = (0, 0, false);
        while queued < 3 || piped < 3 || !exited {
            tokio::select! {
                m = jobs.recv_async(), if queued < 3 => {
                    println!("queue: {}", String::from_utf8_lossy(&m?));
                    queued += 1;
                }
                m = conn.recv(), if piped < 3 => {
                    println!("pipe:  {}", String::from_utf8_lossy(&m?));
                    piped += 1;
                }
                () = ready(&child), if !exited => {
                    println!("child: exited");
                    exited = true;
                }
            }
        }
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    child.join()?;
    Ok(())
}
