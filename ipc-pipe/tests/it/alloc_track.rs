//! A global allocator that records, for the current thread while tracking is on, the largest
//! single allocation (the proof that a peer's length prefix never sizes an allocation beyond
//! `max_message`) and the peak of the bytes allocated and not yet freed (what the pickle
//! guard's estimate must bound). A reallocation counts its old and new blocks as both live.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Tracking;

thread_local! {
    static ON: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
    static LIVE: Cell<i64> = const { Cell::new(0) };
    static PEAK: Cell<i64> = const { Cell::new(0) };
}

/// `size` bytes allocated, `freed` freed (after the allocation: a reallocation).
fn note_live(size: usize, freed: usize) {
    let _ = LIVE.try_with(|live| {
        let during = live.get().saturating_add(size as i64);
        let _ = PEAK.try_with(|p| p.set(p.get().max(during)));
        live.set(during.saturating_sub(freed as i64));
    });
}

fn note(size: usize, freed: usize) {
    // try_with: the thread-locals may be gone while a thread exits.
    let _ = ON.try_with(|on| {
        if on.get() {
            let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
            note_live(size, freed);
        }
    });
}

fn note_free(size: usize) {
    let _ = ON.try_with(|on| {
        if on.get() {
            let _ = LIVE.try_with(|live| live.set(live.get().saturating_sub(size as i64)));
        }
    });
}

// SAFETY: every method forwards to the system allocator with the same arguments; `note` and
// `note_free` only touch const-initialised thread-locals and never allocate.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size(), 0);
        // SAFETY: forwarded unchanged; the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size(), 0);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size, layout.size());
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note_free(layout.size());
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Tracking = Tracking;

/// Run `f` and return the largest single allocation it made on this thread.
pub(crate) fn largest_allocation<R>(f: impl FnOnce() -> R) -> (R, usize) {
    LARGEST.with(|l| l.set(0));
    ON.with(|on| on.set(true));
    let r = f();
    ON.with(|on| on.set(false));
    (r, LARGEST.with(Cell::get))
}

/// Run `f` and return the peak of the bytes it had allocated and not freed on this thread.
#[cfg(feature = "pickle")]
pub(crate) fn peak_live<R>(f: impl FnOnce() -> R) -> (R, u64) {
    LIVE.with(|l| l.set(0));
    PEAK.with(|p| p.set(0));
    ON.with(|on| on.set(true));
    let r = f();
    ON.with(|on| on.set(false));
    (r, PEAK.with(Cell::get).max(0).unsigned_abs())
}
