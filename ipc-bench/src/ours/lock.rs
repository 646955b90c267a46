//! ipc-lock rows (B7 uncontended, B8 contended and handoff, B10 recovery): the robust
//! `Mutex` (and `RwLock` for reads) in an anonymous shared segment inherited by `fork`.

use ipc_lock::{LockError, Mutex, RwLock};
use ipc_shm::Shared;

use crate::floors::with_second_thread;
use crate::harness::{Ctx, Fail, OrFail, Outcome, contended_procs, pin, time_ops};
use crate::lockbench::{BenchLock, handoff, recovery};

fn lock_err<G>(e: LockError<G>) -> Fail {
    Fail::Error(format!("lock: {}", e.to_string_lossy()))
}

/// Text of a lock error without requiring `G: Display`.
trait Lossy {
    fn to_string_lossy(&self) -> String;
}

impl<G> Lossy for LockError<G> {
    fn to_string_lossy(&self) -> String {
        match self {
            LockError::OwnerDied(_) => "owner died".into(),
            LockError::NotRecoverable => "not recoverable".into(),
            LockError::Corrupted { word } => format!("corrupted word {word:#x}"),
            _ => "lock failed".into(),
        }
    }
}

fn increment(m: &Mutex<u64>) -> Result<(), Fail> {
    let mut g = m.lock().map_err(lock_err)?;
    *g += 1;
    Ok(())
}

/// Mutex lock + increment + unlock, uncontended (a second thread alive).
pub fn mutex_op(ctx: &Ctx) -> Outcome {
    let m = Shared::anonymous(Mutex::new(0u64)).or_fail("shared mutex")?;
    // As in `rwlock_read_op`: the lock itself, not the segment's deref, is timed.
    let m: &Mutex<u64> = &m;
    pin(Some(0))?;
    with_second_thread(|| time_ops(ctx, 0, || increment(m)))
}

/// RwLock read lock + read + unlock, uncontended.
pub fn rwlock_read_op(ctx: &Ctx) -> Outcome {
    let l = Shared::anonymous(RwLock::new(0u64)).or_fail("shared rwlock")?;
    // Deref the segment once, before timing: the peers lock a plain local, and this closure
    // is not inlined into the timing loop, so `&Shared` would pay `Shared`'s deref (offset
    // and pointer checks) on every operation.
    let l: &RwLock<u64> = &l;
    pin(Some(0))?;
    with_second_thread(|| {
        time_ops(ctx, 0, || {
            let g = l.read().map_err(lock_err)?;
            std::hint::black_box(*g);
            Ok(())
        })
    })
}

/// Mutex contended by two processes.
pub fn mutex_contended(ctx: &Ctx) -> Outcome {
    let m = Shared::anonymous(Mutex::new(0u64)).or_fail("shared mutex")?;
    let m: &Mutex<u64> = &m;
    contended_procs(ctx, move || increment(m))
}

/// The robust mutex as the handoff / recovery drivers see it.
#[derive(Debug, Clone, Copy)]
struct Ours<'a>(&'a Mutex<u64>);

impl BenchLock for Ours<'_> {
    fn with(&self, f: &mut dyn FnMut() -> Result<(), Fail>) -> Result<bool, Fail> {
        match self.0.lock() {
            Ok(g) => {
                let r = f();
                drop(g);
                r.map(|()| false)
            }
            Err(LockError::OwnerDied(mut g)) => {
                g.mark_consistent();
                let r = f();
                drop(g);
                r.map(|()| true)
            }
            Err(e) => Err(lock_err(e)),
        }
    }
}

/// Mutex handoff to a parked waiter in another process.
pub fn mutex_handoff(ctx: &Ctx) -> Outcome {
    let m = Shared::anonymous(Mutex::new(0u64)).or_fail("shared mutex")?;
    handoff(ctx, Ours(&m))
}

/// Owner SIGKILLed: time until the parked waiter gets `OwnerDied`.
pub fn mutex_recovery(ctx: &Ctx) -> Outcome {
    let m = Shared::anonymous(Mutex::new(0u64)).or_fail("shared mutex")?;
    recovery(ctx, Ours(&m))
}
