//! Instruction counts of uncontended lock + unlock, for callgrind (deterministic, immune to
//! the noisy shared machine):
//!
//! ```text
//! cargo build --release -p ipc-lock --example icount
//! for n in 1000000 2000000; do
//!   valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/icount ipc-mutex $n 2>&1 | grep Collected
//! done   # (difference) / 1000000 = instructions per lock+unlock
//! ```
//!
//! Kinds: `ipc-mutex`, `parking_lot`, `std`, `glibc-robust`, `ipc-rwlock-read`,
//! `parking_lot-rwlock-read`, `std-rwlock-read`. A second thread is kept alive, as in the
//! criterion bench (glibc takes a single-threaded shortcut otherwise).
#![allow(unsafe_code)] // the glibc peer

use std::hint::black_box;

use ipc_lock::{Mutex, RwLock};
use ipc_shm::{Shared, Shm};

fn glibc_robust(n: u64) -> Result<(), ipc_shm::Error> {
    let shm = Shm::anonymous(4096)?;
    #[allow(clippy::cast_ptr_alignment)] // a page-aligned mapping
    let m = shm.as_ptr().as_ptr().cast::<libc::pthread_mutex_t>();
    // SAFETY: zero is a valid bit pattern for the attribute object, which init overwrites.
    let mut attr: libc::pthread_mutexattr_t = unsafe { std::mem::zeroed() };
    let pattr = &raw mut attr;
    // SAFETY: `pattr` points at our local attribute object.
    unsafe { libc::pthread_mutexattr_init(pattr) };
    // SAFETY: as above, initialised.
    unsafe { libc::pthread_mutexattr_setpshared(pattr, libc::PTHREAD_PROCESS_SHARED) };
    // SAFETY: as above.
    unsafe { libc::pthread_mutexattr_setrobust(pattr, libc::PTHREAD_MUTEX_ROBUST) };
    // SAFETY: `m` is page-aligned, writable, zeroed memory of our mapping, big enough.
    unsafe { libc::pthread_mutex_init(m, pattr) };
    for _ in 0..n {
        // SAFETY: an initialised mutex in our live mapping; each lock is matched by an unlock.
        unsafe { libc::pthread_mutex_lock(m) };
        // SAFETY: as above; we hold it.
        unsafe { libc::pthread_mutex_unlock(m) };
    }
    Ok(())
}

fn main() -> Result<(), ipc_shm::Error> {
    let mut args = std::env::args().skip(1);
    let kind = args.next().unwrap_or_else(|| "ipc-mutex".to_owned());
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let keep = std::thread::spawn(move || {
        let _ = rx.recv();
    });
    match kind.as_str() {
        "ipc-mutex" => {
            let s = Shared::anonymous(Mutex::new(0u64))?;
            let m: &Mutex<u64> = &s;
            for _ in 0..n {
                if let Ok(mut g) = m.lock() {
                    *g += 1;
                }
            }
            black_box(m);
        }
        "parking_lot" => {
            let m = parking_lot::Mutex::new(0u64);
            for _ in 0..n {
                *m.lock() += 1;
            }
            black_box(&m);
        }
        "std" => {
            let m = std::sync::Mutex::new(0u64);
            for _ in 0..n {
                if let Ok(mut g) = m.lock() {
                    *g += 1;
                }
            }
            black_box(&m);
        }
        "glibc-robust" => glibc_robust(n)?,
        "ipc-rwlock-read" => {
            let s = Shared::anonymous(RwLock::new(7u64))?;
            let l: &RwLock<u64> = &s;
            for _ in 0..n {
                if let Ok(g) = l.read() {
                    black_box(*g);
                }
            }
        }
        "parking_lot-rwlock-read" => {
            let l = parking_lot::RwLock::new(7u64);
            for _ in 0..n {
                black_box(*l.read());
            }
        }
        "std-rwlock-read" => {
            let l = std::sync::RwLock::new(7u64);
            for _ in 0..n {
                if let Ok(g) = l.read() {
                    black_box(*g);
                }
            }
        }
        other => eprintln!("unknown kind {other}"),
    }
    let _ = tx.send(());
    let _ = keep.join();
    Ok(())
}
