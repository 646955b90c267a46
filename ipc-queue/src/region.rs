//! The queue's memory: the control block and the slots, over a shared mapping (or, under loom,
//! over heap cells loom can track). This is where the queue's unsafe code lives: turning the
//! validated body of the mapping into `&Ctrl` / `&SlotHdr` views and copying payload bytes in
//! and out of slots that the ring protocol gives this process exclusive use of.
//!
//! Layout of the body (all offsets from the body start, which is 128-aligned):
//!
//! | offset | what |
//! |---|---|
//! | 0 | config block: 16 `u32` ([`RawConfig`](crate::ring::RawConfig)), written at init, read once at open |
//! | 128 | `head` (own 128-byte block: producers) |
//! | 256 | `tail` (own block: consumers) |
//! | 384 | `closed`, the published CPUs of each side, the SPSC role words |
//! | 512 / 576 / 640 | waiter words `not_empty`, `not_full`, `all_done` (one line each) |
//! | 704 | statistics |
//! | 768 | `in_progress` (JoinableQueue: tasks received and not yet marked done) |
//! | 1024 | `senders`: owner ids of the processes that ever sent (MPMC), [`PeerTable`] |
//! | 1152 | `receivers`: owner ids of the processes that ever received (MPMC) |
//! | 1280 | slot 0; slot `i` at `1280 + i * stride`: word `u64`, length `u32`, pad, payload |
//!
//! All-zero is a valid initial state of every field but the slot words, which the initialiser
//! sets to `FREE(i)`.
#![allow(unsafe_code)]

#[cfg(not(ipc_loom))]
use crate::ring::{CTRL_LEN, SLOT_HEADER};
use crate::ring::{Config, PEERS_LISTED};
use ipc_shm::{EventCount, SelectableEventCount};

use crate::sync::{AtomicU32, AtomicU64};

/// The control block at the start of the body.
#[repr(C)]
pub(crate) struct Ctrl {
    pub(crate) config: [AtomicU32; 16],
    _pad0: [u8; 64],
    /// Next position a producer claims (a hint for producers; slot words are the truth).
    pub(crate) head: AtomicU64,
    _pad1: [u8; 120],
    /// Next position a consumer claims (a hint for consumers).
    pub(crate) tail: AtomicU64,
    _pad2: [u8; 120],
    /// Non-zero once `close` ran.
    pub(crate) closed: AtomicU32,
    /// CPU (+1) a producer last ran on; 0 unknown.
    pub(crate) send_cpu: AtomicU32,
    /// CPU (+1) a consumer last ran on; 0 unknown.
    pub(crate) recv_cpu: AtomicU32,
    /// SPSC: owner id of the producer; 0 none.
    pub(crate) prod_role: AtomicU32,
    /// SPSC: owner id of the consumer; 0 none.
    pub(crate) cons_role: AtomicU32,
    _pad3: [u8; 108],
    pub(crate) not_empty: SelectableEventCount,
    _pad4: [u8; 44],
    pub(crate) not_full: SelectableEventCount,
    _pad5: [u8; 44],
    pub(crate) all_done: EventCount,
    _pad6: [u8; 56],
    /// Statistics, indexed by [`Stat`].
    pub(crate) stats: [AtomicU64; 8],
    /// JoinableQueue: messages put and not yet marked done.
    pub(crate) in_progress: AtomicU64,
    _pad7: [u8; 248],
    /// MPMC: the processes that ever sent (see [`PeerTable`]).
    pub(crate) senders: PeerTable,
    /// MPMC: the processes that ever received.
    pub(crate) receivers: PeerTable,
}

/// The owner ids of the processes that ever used one side of an MPMC queue, so that a waiter
/// of the other side can tell when every one of them is dead (`Disconnected`). Each process
/// lists itself on its first send (receive) through a handle, before it claims a slot; an
/// entry whose owner is dead may be reused. When no entry is free or dead, `full` is set for
/// good: nobody can tell any more, and waiters are never told `Disconnected`.
///
/// All-zero is the initial state (no entry, not full).
#[repr(C)]
pub(crate) struct PeerTable {
    /// Non-zero once a process found no entry (sticky).
    pub(crate) full: AtomicU32,
    /// Owner ids (0: free).
    pub(crate) ids: [AtomicU32; PEERS_LISTED],
}

#[cfg(ipc_loom)]
impl PeerTable {
    fn new() -> PeerTable {
        PeerTable { full: AtomicU32::new(0), ids: std::array::from_fn(|_| AtomicU32::new(0)) }
    }
}

#[cfg(not(ipc_loom))]
const _: () = {
    assert!(size_of::<Ctrl>() == CTRL_LEN);
    assert!(std::mem::offset_of!(Ctrl, head) == 128);
    assert!(std::mem::offset_of!(Ctrl, tail) == 256);
    assert!(std::mem::offset_of!(Ctrl, closed) == 384);
    assert!(std::mem::offset_of!(Ctrl, not_empty) == 512);
    assert!(std::mem::offset_of!(Ctrl, not_full) == 576);
    assert!(std::mem::offset_of!(Ctrl, all_done) == 640);
    assert!(std::mem::offset_of!(Ctrl, stats) == 704);
    assert!(std::mem::offset_of!(Ctrl, in_progress) == 768);
    assert!(std::mem::offset_of!(Ctrl, senders) == 1024);
    assert!(std::mem::offset_of!(Ctrl, receivers) == 1152);
    assert!(size_of::<PeerTable>() == 128);
    assert!(size_of::<SlotHdr>() == SLOT_HEADER);
    assert!(align_of::<Ctrl>() <= 8);
};

/// Statistics words.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stat {
    /// Slots of producers that died between reserve and commit, skipped.
    Abandoned = 0,
    /// Messages lent to consumers that died holding them, dropped.
    Lost = 1,
    /// Corrupt values found.
    Corrupt = 2,
    /// Reservations dropped without commit.
    Cancelled = 3,
    /// Sends that had to sleep.
    SendWaits = 4,
    /// Receives that had to sleep.
    RecvWaits = 5,
}

impl Ctrl {
    pub(crate) fn bump(&self, stat: Stat) {
        if let Some(s) = self.stats.get(stat as usize) {
            // Relaxed: a statistic, read on its own.
            s.fetch_add(1, crate::sync::Ordering::Relaxed);
        }
    }

    pub(crate) fn stat(&self, stat: Stat) -> u64 {
        // Relaxed: a statistic.
        self.stats.get(stat as usize).map_or(0, |s| s.load(crate::sync::Ordering::Relaxed))
    }

    #[cfg(ipc_loom)]
    fn new() -> Ctrl {
        Ctrl {
            config: std::array::from_fn(|_| AtomicU32::new(0)),
            _pad0: [0; 64],
            head: AtomicU64::new(0),
            _pad1: [0; 120],
            tail: AtomicU64::new(0),
            _pad2: [0; 120],
            closed: AtomicU32::new(0),
            send_cpu: AtomicU32::new(0),
            recv_cpu: AtomicU32::new(0),
            prod_role: AtomicU32::new(0),
            cons_role: AtomicU32::new(0),
            _pad3: [0; 108],
            not_empty: SelectableEventCount::with_bells(),
            _pad4: [0; 44],
            not_full: SelectableEventCount::with_bells(),
            _pad5: [0; 44],
            all_done: EventCount::new(),
            _pad6: [0; 56],
            stats: std::array::from_fn(|_| AtomicU64::new(0)),
            in_progress: AtomicU64::new(0),
            _pad7: [0; 248],
            senders: PeerTable::new(),
            receivers: PeerTable::new(),
        }
    }
}

/// The header of every slot.
#[repr(C)]
pub(crate) struct SlotHdr {
    /// The slot word (see [`ring`](crate::ring)).
    pub(crate) word: AtomicU64,
    /// Length of the message in the payload.
    pub(crate) len: AtomicU32,
    _pad: AtomicU32,
}

#[cfg(ipc_loom)]
impl SlotHdr {
    fn new() -> SlotHdr {
        SlotHdr { word: AtomicU64::new(0), len: AtomicU32::new(0), _pad: AtomicU32::new(0) }
    }
}

pub(crate) use imp::Region;

#[cfg(not(ipc_loom))]
mod imp {
    use std::ptr::NonNull;

    use super::{Ctrl, SlotHdr};
    use crate::ring::{Config, SLOT_HEADER};

    /// A view of a queue body. It does not own the memory: the owner keeps it mapped for as
    /// long as the region lives (see [`Region::new`]).
    pub(crate) struct Region {
        base: NonNull<u8>,
        cfg: Config,
        /// Whether the CPU has PREFETCHW (checked once per region).
        prefetchw: bool,
    }

    // SAFETY: the region is a view of shared memory that every process and thread accesses
    // only through atomics, or under the ring protocol that gives one party at a time the
    // use of a slot's payload; nothing in it is tied to a thread.
    unsafe impl Send for Region {}
    // SAFETY: as above: `&Region` hands out `&Ctrl`/`&SlotHdr` (atomics only) and copies that
    // callers synchronise through the slot words.
    unsafe impl Sync for Region {}

    impl std::fmt::Debug for Region {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Region").field("cfg", &self.cfg).finish_non_exhaustive()
        }
    }

    impl Region {
        /// A view of `cfg.body_len` bytes at `base`.
        ///
        /// # Safety
        /// 1. `base` points to `cfg.body_len` readable and writable bytes, 8-aligned, that stay
        ///    mapped for the whole life of the returned region.
        /// 2. Those bytes are only ever accessed by this crate's protocol (atomics, and
        ///    payload copies gated by slot words), in this and other processes; a hostile
        ///    process may write anything at any time, which the protocol tolerates (every
        ///    value is loaded once and checked; payload bytes are plain data).
        /// 3. `cfg` was planned or validated against `cfg.body_len`.
        pub(crate) unsafe fn new(base: NonNull<u8>, cfg: Config) -> Region {
            Region { base, cfg, prefetchw: has_prefetchw() }
        }

        pub(crate) fn cfg(&self) -> &Config {
            &self.cfg
        }

        pub(crate) fn ctrl(&self) -> &Ctrl {
            // SAFETY: the body starts with CTRL_LEN == size_of::<Ctrl>() bytes (the plan puts
            // slot 0 after them), 8-aligned (new's contract), and Ctrl is made of atomics and
            // padding we never read, valid for every bit pattern; it lives as long as `self`.
            unsafe { self.base.cast::<Ctrl>().as_ref() }
        }

        #[inline]
        pub(crate) fn slot(&self, pos: u64) -> &SlotHdr {
            let off = self.cfg.slot_offset(pos);
            // SAFETY: slot_offset masks the position, so off + stride <= body_len (validated
            // config); off is a multiple of 8 (CTRL_LEN and stride are); SlotHdr is atomics
            // only, valid for every bit pattern; it lives as long as `self`.
            #[allow(clippy::cast_ptr_alignment)] // off is a multiple of 8 (see above)
            let ptr = self.base.as_ptr().wrapping_add(off).cast::<SlotHdr>();
            // SAFETY: see above.
            unsafe { &*ptr }
        }

        /// Start of the payload of the slot of `pos` (`max_message` bytes).
        #[inline]
        pub(crate) fn payload(&self, pos: u64) -> NonNull<u8> {
            let off = self.cfg.slot_offset(pos) + SLOT_HEADER;
            // off + max_message <= off_slot + stride <= body_len: inside the mapping.
            NonNull::new(self.base.as_ptr().wrapping_add(off)).unwrap_or(self.base)
        }

        /// Start to fetch, for reading, the lines of the message in the slot of `pos` past
        /// the slot's first line (at most [`PREFETCH_LINES`]); its length is loaded as a
        /// hint. A hint only: nothing is read through it.
        #[inline]
        pub(crate) fn prefetch_message(&self, pos: u64, slot: &SlotHdr) {
            // Relaxed: a hint for the prefetch; the length used is loaded after the claim.
            let len = slot.len.load(crate::sync::Ordering::Relaxed);
            for line in self.later_lines(pos, len as usize) {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: a prefetch is a hint: it never faults, reads nothing into the
                // program and writes nothing; `line` lies inside the mapping anyway.
                unsafe {
                    std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                        line.cast::<i8>(),
                    );
                }
                #[cfg(not(target_arch = "x86_64"))]
                let _ = line;
            }
        }

        /// Start to fetch, for writing (PREFETCHW, where the CPU has it), the lines of a
        /// `len`-byte message in the slot of `pos` past the slot's first line (at most
        /// [`PREFETCH_LINES`]). A hint only.
        #[inline]
        pub(crate) fn prefetch_for_write(&self, pos: u64, len: usize) {
            if !self.prefetchw {
                return;
            }
            for line in self.later_lines(pos, len) {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: PREFETCHW (checked present by CPUID) is a hint: it never faults and
                // changes no memory or register the program sees; `line` lies inside the
                // mapping anyway.
                unsafe {
                    std::arch::asm!(
                        "prefetchw [{line}]",
                        line = in(reg) line,
                        options(nostack, readonly, preserves_flags),
                    );
                }
                #[cfg(not(target_arch = "x86_64"))]
                let _ = line;
            }
        }

        /// The cache lines after the first one of the slot of `pos` that a `len`-byte
        /// message reaches, at most [`PREFETCH_LINES`] of them; `len` is cut to the slot.
        #[inline]
        fn later_lines(&self, pos: u64, len: usize) -> impl Iterator<Item = *const u8> {
            let start = self.cfg.slot_offset(pos);
            let end = start
                .wrapping_add(SLOT_HEADER)
                .wrapping_add(len.min(self.cfg.max_message as usize));
            let first = (start | (LINE - 1)).wrapping_add(1);
            let base = self.base.as_ptr().cast_const();
            (first..end).step_by(LINE).take(PREFETCH_LINES).map(move |off| base.wrapping_add(off))
        }

        /// Copy `data` into the payload of the slot of `pos` at `at`. The caller holds the
        /// slot (claimed for writing). Out-of-range requests copy nothing.
        #[inline]
        pub(crate) fn write(&self, pos: u64, at: usize, data: &[u8]) {
            let Some(end) = at.checked_add(data.len()) else { return };
            if end > self.cfg.max_message as usize {
                return;
            }
            let dst = self.payload(pos).as_ptr().wrapping_add(at);
            // SAFETY: at + len <= max_message: inside this slot's payload in the mapping;
            // `data` is private memory (no overlap); the protocol gives the caller the slot,
            // and a hostile writer can only change plain bytes.
            unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len()) };
        }

        /// Copy the first `dst.len()` payload bytes of the slot of `pos` into `dst`. The
        /// caller holds the slot (claimed for reading). Out-of-range requests copy nothing.
        #[inline]
        pub(crate) fn read(&self, pos: u64, dst: &mut [u8]) {
            if dst.len() > self.cfg.max_message as usize {
                return;
            }
            let src = self.payload(pos);
            // SAFETY: len <= max_message: inside the slot's payload; `dst` is private memory
            // (no overlap); any byte is a valid u8, so a hostile peer writing concurrently
            // only makes a wrong message (checksums are the application's business).
            unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst.as_mut_ptr(), dst.len()) };
        }

        /// Replace `out`'s contents with the first `len` payload bytes of the slot of `pos`
        /// (no zero-fill first). The caller holds the slot (claimed for reading). `len` is cut
        /// to the slot's size.
        #[inline]
        pub(crate) fn read_vec(&self, pos: u64, len: usize, out: &mut Vec<u8>) {
            let len = len.min(self.cfg.max_message as usize);
            // SAFETY: (1) len <= max_message: inside the slot's payload; (2) the caller holds
            // the slot, so no process of the protocol writes it while this short-lived slice
            // is copied from; a hostile writer can only change plain bytes.
            let src = unsafe { std::slice::from_raw_parts(self.payload(pos).as_ptr(), len) };
            out.clear();
            out.extend_from_slice(src);
        }

        /// The payload of a slot this process holds, lent as a mutable slice.
        ///
        /// # Safety
        /// The caller holds the slot of `pos` (claimed it for writing or reading and has not
        /// released it) for the whole life of the slice, and creates no other slice over it.
        #[inline]
        #[allow(clippy::mut_from_ref)] // exclusivity comes from the slot protocol (# Safety)
        pub(crate) unsafe fn lend_mut(&self, pos: u64, len: usize) -> &mut [u8] {
            let len = len.min(self.cfg.max_message as usize);
            // SAFETY: in range (len <= max_message); exclusive by the caller's contract;
            // u8 is valid for every bit pattern.
            unsafe { std::slice::from_raw_parts_mut(self.payload(pos).as_ptr(), len) }
        }

        /// The payload of a slot this process holds for reading, lent as a slice.
        ///
        /// # Safety
        /// As [`lend_mut`](Self::lend_mut).
        #[inline]
        pub(crate) unsafe fn lend(&self, pos: u64, len: usize) -> &[u8] {
            let len = len.min(self.cfg.max_message as usize);
            // SAFETY: in range; the caller holds the slot, so no process of the protocol
            // writes it while the slice lives.
            unsafe { std::slice::from_raw_parts(self.payload(pos).as_ptr(), len) }
        }
    }

    /// Where a region's slots and control block are and its limits, copied into an SPSC
    /// handle so the per-message paths do not go through the shared handle's pointer (see
    /// [`Region::hot`]).
    pub(crate) struct Hot {
        base: NonNull<u8>,
        slots: NonNull<u8>,
        mask: u64,
        stride: usize,
        /// Largest message.
        pub(crate) max: u32,
        /// Slots.
        pub(crate) cap: u32,
    }

    // SAFETY: as for Region: a view of shared memory accessed through atomics and the slot
    // protocol only.
    unsafe impl Send for Hot {}
    // SAFETY: as above.
    unsafe impl Sync for Hot {}

    impl std::fmt::Debug for Hot {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Hot").field("cap", &self.cap).field("max", &self.max).finish()
        }
    }

    /// The offset of a slot from the first slot: made only by [`Hot::at`], so always in range.
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct At(usize);

    impl Region {
        /// The fast-path view of this region.
        ///
        /// # Safety
        /// The view is used only while this region's mapping stays mapped: its holder also
        /// holds (an `Arc` of) the owner of the mapping.
        pub(crate) unsafe fn hot(&self) -> Hot {
            let slots = self.base.as_ptr().wrapping_add(self.cfg.slots_offset);
            Hot {
                base: self.base,
                // slots_offset < body_len: inside the mapping, not null.
                slots: NonNull::new(slots).unwrap_or(self.base),
                mask: self.cfg.mask,
                stride: self.cfg.stride,
                max: self.cfg.max_message,
                cap: self.cfg.capacity,
            }
        }
    }

    impl Hot {
        /// The slot of `pos`.
        #[inline]
        pub(crate) fn at(&self, pos: u64) -> At {
            At(((pos & self.mask) as usize).wrapping_mul(self.stride))
        }

        /// The control block.
        #[inline]
        pub(crate) fn ctrl(&self) -> &Ctrl {
            // SAFETY: as Region::ctrl (`hot`'s contract keeps the mapping alive).
            unsafe { self.base.cast::<Ctrl>().as_ref() }
        }

        /// The header of the slot `at`.
        #[inline]
        pub(crate) fn hdr(&self, at: At) -> &SlotHdr {
            #[allow(clippy::cast_ptr_alignment)] // slots_offset and stride are multiples of 8
            let ptr = self.slots.as_ptr().wrapping_add(at.0).cast::<SlotHdr>();
            // SAFETY: at.0 = (pos & mask) * stride, so the slot lies inside the body (config
            // validated, mapping alive by `hot`'s contract); SlotHdr is atomics only.
            unsafe { &*ptr }
        }

        /// Copy `data` into the payload of the slot `at` (held for writing); nothing if it
        /// is longer than the maximum.
        #[inline]
        pub(crate) fn write(&self, at: At, data: &[u8]) {
            if data.len() > self.max as usize {
                return;
            }
            let dst = self.slots.as_ptr().wrapping_add(at.0 + SLOT_HEADER);
            // SAFETY: len <= max_message: inside the slot's payload, inside the mapping
            // (alive by `hot`'s contract); `data` is private memory, no overlap; the caller
            // holds the slot.
            unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len()) };
        }

        /// The first `len` payload bytes of the slot `at`, lent as a slice; `len` is cut to
        /// the maximum.
        ///
        /// # Safety
        /// As [`Region::lend_mut`]: the caller holds the slot for the whole life of the
        /// slice and lends no other mutable slice over it.
        #[inline]
        pub(crate) unsafe fn lend(&self, at: At, len: usize) -> &[u8] {
            let len = len.min(self.max as usize);
            let src = self.slots.as_ptr().wrapping_add(at.0 + SLOT_HEADER);
            // SAFETY: in range (len <= max_message), inside the mapping (alive by `hot`'s
            // contract); the caller holds the slot, so no process of the protocol writes it
            // while the slice lives.
            unsafe { std::slice::from_raw_parts(src, len) }
        }

        /// [`lend`](Self::lend), mutable.
        ///
        /// # Safety
        /// As [`lend`](Self::lend), and this is the only slice over the slot alive.
        #[inline]
        #[allow(clippy::mut_from_ref)] // exclusivity comes from the slot protocol (# Safety)
        pub(crate) unsafe fn lend_mut(&self, at: At, len: usize) -> &mut [u8] {
            let len = len.min(self.max as usize);
            let dst = self.slots.as_ptr().wrapping_add(at.0 + SLOT_HEADER);
            // SAFETY: as in `lend`; exclusive by the caller's contract.
            unsafe { std::slice::from_raw_parts_mut(dst, len) }
        }

        /// Replace `out`'s contents with the first `len` payload bytes of the slot `at`
        /// (held for reading); `len` is cut to the maximum.
        #[inline]
        pub(crate) fn read_vec(&self, at: At, len: usize, out: &mut Vec<u8>) {
            let len = len.min(self.max as usize);
            let src = self.slots.as_ptr().wrapping_add(at.0 + SLOT_HEADER);
            // SAFETY: len <= max_message: inside the slot's payload, inside the mapping
            // (alive by `hot`'s contract); the caller holds the slot; a hostile writer can
            // only change plain bytes of this short-lived slice.
            let src = unsafe { std::slice::from_raw_parts(src, len) };
            out.clear();
            out.extend_from_slice(src);
        }
    }

    /// A cache line.
    const LINE: usize = 64;
    /// Lines of a message prefetched at most (the hardware prefetcher streams longer ones).
    const PREFETCH_LINES: usize = 4;

    /// Whether the CPU has PREFETCHW (CPUID 0x8000_0001, ECX bit 8: AMD's 3DNowPrefetch,
    /// Intel's PRFCHW). Without it the instruction is not issued.
    #[cfg(target_arch = "x86_64")]
    fn has_prefetchw() -> bool {
        std::arch::x86_64::__cpuid(0x8000_0001).ecx & (1 << 8) != 0
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn has_prefetchw() -> bool {
        false
    }

    /// A queue body: the mapped object and the region over it, kept together so the region
    /// never outlives its mapping.
    pub(crate) struct Mapped {
        region: Region,
        object: ipc_shm::Object,
    }

    impl std::fmt::Debug for Mapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Mapped").field("shm", self.object.shm()).finish_non_exhaustive()
        }
    }

    impl Mapped {
        /// The region over `object`'s body; `None` unless the body has exactly the length
        /// `cfg` needs and is 128-aligned.
        pub(crate) fn new(object: ipc_shm::Object, cfg: Config) -> Option<Mapped> {
            let base = object.body();
            if object.body_len() != cfg.body_len || !base.as_ptr().addr().is_multiple_of(128) {
                return None;
            }
            // SAFETY: the body is body_len bytes of the mapping, 128-aligned (checked), kept
            // mapped by `object`, which lives and dies with the region in `Mapped`; bodies are
            // used only through this crate's protocol; `cfg` was validated against body_len.
            let region = unsafe { Region::new(base, cfg) };
            Some(Mapped { region, object })
        }

        pub(crate) fn region(&self) -> &Region {
            &self.region
        }

        pub(crate) fn object(&self) -> &ipc_shm::Object {
            &self.object
        }
    }

    /// The initialiser of a new body: config block and free slots, for `Object::create`.
    pub(crate) fn init_body(cfg: Config, start: u64) -> impl FnMut(NonNull<u8>, usize) {
        move |base: NonNull<u8>, len: usize| {
            if len != cfg.body_len || !base.as_ptr().addr().is_multiple_of(8) {
                return; // cannot happen: the object was planned from cfg.body_len
            }
            // SAFETY: Object's init contract: `base` points to `len` zeroed, writable bytes
            // aligned to the kind's alignment (128) that nobody else reads until READY, and
            // stays valid for this call, during which the region is used and dropped.
            let region = unsafe { Region::new(base, cfg) };
            super::initialise(&region, &cfg, start);
        }
    }
}

#[cfg(ipc_loom)]
mod imp {
    use loom::cell::UnsafeCell;

    use super::{Ctrl, SlotHdr};
    use crate::ring::Config;

    /// Under loom: the same control block and slot headers as loom atomics on the heap, and
    /// payloads in loom cells so a payload access the protocol does not order is reported.
    pub(crate) struct Region {
        ctrl: Ctrl,
        slots: Vec<SlotHdr>,
        payloads: Vec<UnsafeCell<Vec<u8>>>,
        cfg: Config,
    }

    impl std::fmt::Debug for Region {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Region").field("cfg", &self.cfg).finish_non_exhaustive()
        }
    }

    impl Region {
        pub(crate) fn heap(cfg: Config) -> Region {
            let n = cfg.capacity as usize;
            Region {
                ctrl: Ctrl::new(),
                slots: (0..n).map(|_| SlotHdr::new()).collect(),
                payloads: (0..n)
                    .map(|_| UnsafeCell::new(vec![0u8; cfg.max_message as usize]))
                    .collect(),
                cfg,
            }
        }

        pub(crate) fn cfg(&self) -> &Config {
            &self.cfg
        }

        pub(crate) fn ctrl(&self) -> &Ctrl {
            &self.ctrl
        }

        pub(crate) fn slot(&self, pos: u64) -> &SlotHdr {
            let i = (pos & self.cfg.mask) as usize;
            #[allow(clippy::indexing_slicing)] // i < capacity == slots.len()
            &self.slots[i]
        }

        /// No prefetching under loom (it adds no ordering).
        pub(crate) fn prefetch_message(&self, _pos: u64, _slot: &SlotHdr) {}

        /// No prefetching under loom (it adds no ordering).
        pub(crate) fn prefetch_for_write(&self, _pos: u64, _len: usize) {}

        pub(crate) fn write(&self, pos: u64, at: usize, data: &[u8]) {
            let i = (pos & self.cfg.mask) as usize;
            if let Some(cell) = self.payloads.get(i) {
                cell.with_mut(|p| {
                    // SAFETY: loom checks that no other access to this cell is concurrent,
                    // which is exactly what the model verifies.
                    let v = unsafe { &mut *p };
                    if let Some(dst) = v.get_mut(at..at + data.len()) {
                        dst.copy_from_slice(data);
                    }
                });
            }
        }

        pub(crate) fn read(&self, pos: u64, dst: &mut [u8]) {
            let i = (pos & self.cfg.mask) as usize;
            if let Some(cell) = self.payloads.get(i) {
                cell.with(|p| {
                    // SAFETY: as in `write`: loom reports a concurrent mutable access.
                    let v = unsafe { &*p };
                    if let Some(src) = v.get(..dst.len()) {
                        dst.copy_from_slice(src);
                    }
                });
            }
        }
    }
}

/// Write the initial state of a body: config block and `FREE(start + i)` in every slot.
pub(crate) fn initialise(region: &Region, cfg: &Config, start: u64) {
    use crate::ring::free_word;
    use crate::sync::Ordering::Relaxed;
    let ctrl = region.ctrl();
    for (dst, v) in ctrl.config.iter().zip(cfg.to_raw().to_words()) {
        // Relaxed: the object's READY store (Release) publishes the whole body.
        dst.store(v, Relaxed);
    }
    // Relaxed: as above.
    ctrl.head.store(start, Relaxed);
    ctrl.tail.store(start, Relaxed);
    for i in 0..u64::from(cfg.capacity) {
        let pos = start.wrapping_add(i);
        // Relaxed: as above.
        region.slot(pos).word.store(free_word(pos), Relaxed);
    }
}

#[cfg(not(ipc_loom))]
pub(crate) use imp::{At, Hot, Mapped, init_body};
