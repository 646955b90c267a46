//! A watchdog that aborts the test process when a test overruns, so a hang fails fast in
//! both `cargo test` and nextest (and children, which die with their parent, go with it).

use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::time::Duration;

/// Disarmed when dropped.
#[derive(Debug)]
pub struct Watchdog {
    done: Option<Sender<()>>,
}

/// Abort the process if this guard is still alive after `limit`, naming `what`.
pub fn watchdog(limit: Duration, what: &str) -> Watchdog {
    let (tx, rx) = mpsc::channel::<()>();
    let what = what.to_owned();
    std::thread::Builder::new()
        .name(format!("watchdog {what}"))
        .spawn(move || {
            if let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                eprintln!("[ipc-testkit] watchdog: {what} still running after {limit:?}; aborting");
                std::process::abort();
            }
        })
        .expect("spawn watchdog thread");
    Watchdog { done: Some(tx) }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if let Some(tx) = self.done.take() {
            let _ = tx.send(());
        }
    }
}
