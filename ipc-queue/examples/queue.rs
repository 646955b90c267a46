//! Two unrelated processes share a named queue; run the roles in two terminals:
//!
//! ```text
//! cargo run -p ipc-queue --example queue -- consumer jobs
//! cargo run -p ipc-queue --example queue -- producer jobs 5
//! ```
//!
//! The consumer creates the queue (or opens it) and prints what arrives until the producer
//! closes it; kill either side with SIGKILL at any moment and start it again: nothing torn is
//! ever printed, and a producer killed mid-message is skipped (see `stats`).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use ipc_queue::{Queue, RecvTimeoutError};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (role, name) = match args.as_slice() {
        [role, name, ..] => (role.as_str(), name.as_str()),
        _ => {
            eprintln!("usage: queue (producer NAME [COUNT] | consumer NAME)");
            return Ok(());
        }
    };
    match role {
        "consumer" => {
            let q = Queue::open_or_create(name, 64, 4096)?;
            q.shm().persist(false);
            loop {
                match q.recv_timeout(Duration::from_secs(60)) {
                    Ok(m) => println!("{}", String::from_utf8_lossy(&m)),
                    Err(RecvTimeoutError::Closed) => break,
                    Err(e) => return Err(e.into()),
                }
            }
            println!("closed; stats {:?}", q.stats());
        }
        "producer" => {
            let q = Queue::open_or_create(name, 64, 4096)?;
            let count: u32 = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(10);
            for i in 0..count {
                let mut slot = q.reserve(64).map_err(|e| e.to_string())?;
                let text = format!("message {i} from pid {}", std::process::id());
                slot[..text.len()].copy_from_slice(text.as_bytes());
                slot.truncate(text.len());
                slot.commit();
            }
            q.close();
        }
        other => eprintln!("unknown role {other:?}"),
    }
    Ok(())
}
