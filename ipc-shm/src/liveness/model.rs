//! Under `--cfg ipc_loom` only: a model of liveness, the one seam through which loom models
//! play several processes and kill some of them. A loom model has threads, not processes, so
//! every thread would get this process's one owner id; here a model thread can instead
//! [`act_as`] an owner id of its choosing (then [`current`](super::current) returns it) and a
//! model can [`kill`] an owner (then [`status`](super::status) says `Dead`). Primitives
//! keep calling the ordinary liveness functions: nothing about them changes for the model.
//!
//! ```ignore
//! loom::model(|| {
//!     let dead = ipc_shm::liveness::model::act_as(DEAD); // this thread plays DEAD ...
//!     sem.acquire().unwrap().forget();                     // ... takes a permit ...
//!     ipc_shm::liveness::model::kill(DEAD);                // ... and dies holding it
//!     ipc_shm::liveness::model::act_as(ALIVE);             // the next "process"
//!     // ... sem.acquire() takes the dead holder's permit over
//! });
//! ```
//!
//! Once a model thread has acted as an owner, ids the model never knew (neither acted as nor
//! killed) are [`Status::Unknown`], as an id no process ever had is to the real registry: a
//! model can leave such an id in a word the way a faulty peer would. Call these only inside `loom::model` (loom's thread locals
//! exist only there); a process that never calls [`act_as`] behaves exactly as without the
//! model.

use std::cell::Cell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{OwnerId, Status};

/// Set by the first [`act_as`]: from then on this process is a model process.
static MODELLED: AtomicBool = AtomicBool::new(false);

loom::thread_local! {
    /// The owner id the current model thread plays; 0 if none.
    static ACTING: Cell<u32> = Cell::new(0);
}

loom::lazy_static! {
    /// Owner ids of this model execution: `(id, alive)`. A std mutex: the oracle is not
    /// shared memory, so loom need not explore its interleavings (nor does the kernel's).
    static ref OWNERS: Mutex<Vec<(u32, bool)>> = Mutex::new(Vec::new());
}

fn set(id: u32, alive: bool) {
    let mut owners = OWNERS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    match owners.iter_mut().find(|(o, _)| *o == id) {
        Some(entry) => entry.1 = alive,
        None => owners.push((id, alive)),
    }
}

/// The id `id` as a model owner: any non-zero value of the 30 owner bits (models use small
/// ids; the real registry's generation rule does not apply).
#[allow(clippy::panic)] // test support: a model with an impossible id is a bug in the model
fn model_id(id: u32) -> OwnerId {
    match std::num::NonZeroU32::new(id & OwnerId::MASK) {
        Some(nz) if id & !OwnerId::MASK == 0 => OwnerId(nz),
        _ => panic!("liveness model: {id:#x} is not an owner id"),
    }
}

/// The current model thread plays owner `id` from now on (until it acts as another): a live
/// process of its own. Returns the id.
///
/// # Panics
/// If `id` is zero or wider than the 30 owner bits: a bug in the model.
pub fn act_as(id: u32) -> OwnerId {
    let owner = model_id(id);
    // Relaxed: a process-wide switch, set before any model thread reads it (it is the
    // model's own thread that sets it, and it stays set).
    MODELLED.store(true, Ordering::Relaxed);
    ACTING.with(|a| a.set(id));
    set(id, true);
    owner
}

/// The current model thread plays owner `id`, an id the model does not vouch for: it stores
/// it where it takes things, and [`status`](super::status) says `Unknown` for it (as the real
/// registry does for an id no process ever had), so the others must never recover it.
///
/// # Panics
/// As [`act_as`].
pub fn act_as_unknown(id: u32) -> OwnerId {
    let owner = model_id(id);
    // Relaxed: see `act_as`.
    MODELLED.store(true, Ordering::Relaxed);
    ACTING.with(|a| a.set(id));
    owner
}

/// Owner `id` dies: [`status`](super::status) says `Dead` for it from now on, as the kernel
/// would once it released a killed process's lease.
pub fn kill(id: u32) {
    set(id, false);
}

/// The id the current model thread plays, if any.
#[inline]
pub(super) fn acting() -> Option<OwnerId> {
    // Relaxed: see `act_as`.
    if !MODELLED.load(Ordering::Relaxed) {
        return None;
    }
    std::num::NonZeroU32::new(ACTING.with(Cell::get)).map(OwnerId)
}

/// The model's answer for `owner`, if the model knows it.
pub(super) fn status(owner: OwnerId) -> Option<Status> {
    // Relaxed: see `act_as`.
    if !MODELLED.load(Ordering::Relaxed) {
        return None;
    }
    let owners = OWNERS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    Some(
        owners.iter().find(|(o, _)| *o == owner.get()).map_or(Status::Unknown, |&(_, alive)| {
            if alive { Status::Alive } else { Status::Dead }
        }),
    )
}
