//! Two unrelated processes share a named robust mutex; one is killed mid-update while it
//! holds the lock, and the other recovers: `cargo run -p ipc-lock --example lock_demo`.
//!
//! Roles by argv: no argument runs the demo (it starts itself as the `holder`);
//! `holder <name>` opens the mutex, half-updates the data under the lock and waits to die.

use std::error::Error;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use ipc_lock::{LockError, NamedMutex};

/// Two balances whose sum is 100: a transfer moves money from one to the other in two steps.
type Accounts = [u64; 2];

fn holder(name: &str) -> Result<(), Box<dyn Error>> {
    let accounts = NamedMutex::<Accounts>::open(name)?;
    let mut guard = accounts.lock().map_err(|e| e.to_string())?;
    guard[0] -= 30; // first half of a transfer of 30...
    println!("locked, mid-transfer");
    // ...and the second half never happens: the demo kills us here.
    std::thread::sleep(Duration::from_secs(60));
    guard[1] += 30;
    Ok(())
}

fn demo() -> Result<(), Box<dyn Error>> {
    let name = ipc_shm::random_name("lock-demo")?;
    let accounts = NamedMutex::create(&name, [100u64, 0])?;
    let mut child = Command::new(std::env::current_exe()?)
        .args(["holder", &name])
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        BufReader::new(out).read_line(&mut line)?;
    }
    println!("holder (pid {}) says: {}", child.id(), line.trim());
    child.kill()?;
    println!("holder killed: {}", child.wait()?);
    match accounts.lock() {
        Err(LockError::OwnerDied(mut guard)) => {
            println!(
                "lock inherited from dead owner {:?}; accounts {:?} (sum {})",
                guard.dead_owner(),
                *guard,
                guard[0] + guard[1]
            );
            // Repair: roll the half-done transfer back, then declare the data consistent.
            *guard = [guard[0] + 30, guard[1]];
            guard.mark_consistent();
            println!("repaired to {:?}", *guard);
        }
        Ok(guard) => println!("the holder never got the lock: {:?}", *guard),
        Err(e) => return Err(e.to_string().into()),
    }
    let guard = accounts.lock().map_err(|e| e.to_string())?;
    println!("the next locker sees {:?}", *guard);
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    match (args.get(1).map(String::as_str), args.get(2)) {
        (Some("holder"), Some(name)) => holder(name),
        _ => demo(),
    }
}
