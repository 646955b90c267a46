//! Pure ring arithmetic: the layout plan, the validated configuration, the slot word and what a
//! producer or consumer must do given a position and a slot word it loaded once, for both
//! queue protocols: the MPMC one (claims by CAS, owners in the slot word) and the SPSC one
//! (private indices and stamps, see [`spsc_view`]).
//!
//! Nothing here touches shared memory: every function takes values the caller loaded (once)
//! and returns a verdict, so the fuzz target, the proptests and the loom models all drive the
//! same decisions the queue makes. A value that no honest peer can produce is a
//! [`Corruption`], never a panic, an out-of-range index or an overflow.
//!
//! # The slot word (64 bits)
//!
//! | bits | field | meaning |
//! |---|---|---|
//! | 32..64 | `seq` | low 32 bits of the position the slot holds (or waits for) |
//! | 30..32 | `state` | [`FREE`], [`WRITING`], [`READY`], [`READING`] |
//! | 0..30 | `owner` | liveness owner id of the process writing or reading it (0 otherwise) |
//!
//! Position `p` lives in slot `p & mask`. A slot waiting for position `p` is `FREE(p)`; a
//! producer claims it `FREE(p) -> WRITING(p, me)` with one CAS (so the owner is recorded in
//! the same instruction that claims: no window where a claimed slot has no owner), commits
//! `WRITING(p) -> READY(p)` with a Release store after the payload, a consumer claims
//! `READY(p) -> READING(p, me)` with one CAS and releases `READING(p) -> FREE(p + capacity)`.
//! A slot whose owner died is moved to `FREE(p + capacity)` by whoever finds it (counted).
//!
//! All-zero words: `FREE` with seq 0, the initial state of slot 0 when positions start at 0;
//! the initialiser writes `FREE(i)` into slot `i`.
//!
//! The SPSC flavour stores only two kinds of slot word: the initialiser's `FREE(pos)` and the
//! producer's stamp `READY(pos)`; its protocol is described above [`spsc_stamp`].
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects, clippy::panic_in_result_fn)]

/// Slot state: waiting for the producer of its position.
pub const FREE: u32 = 0;
/// Slot state: claimed by a producer (owner recorded), payload being written.
pub const WRITING: u32 = 1;
/// Slot state: committed, waiting for a consumer.
pub const READY: u32 = 2;
/// Slot state: claimed by a consumer (owner recorded), payload being read or lent.
pub const READING: u32 = 3;

const OWNER_BITS: u32 = 30;
const OWNER_MASK: u64 = (1 << OWNER_BITS) - 1;

/// Layout version of the queue body; bump on any change of the layout below. (3: the
/// tables of the processes that ever sent and received, after the control block's first
/// 1024 bytes; slots from [`CTRL_LEN`]. 4: the `not_empty` / `not_full` waiter words carry
/// doorbell slots, rung by every notify that finds sleepers: a version-3 notifier would never
/// ring a selector's doorbell.)
pub const LAYOUT_VERSION: u32 = 4;
/// Magic of the config block (`"IPCQ"`).
pub const CONFIG_MAGIC: u32 = u32::from_le_bytes(*b"IPCQ");
/// Largest capacity: positions are compared as signed 32-bit distances, which stay exact
/// while a capacity is at most 2^30.
pub const MAX_CAPACITY: u32 = 1 << 30;
/// Largest message (and slot payload): 1 GiB.
pub const MAX_MESSAGE: u32 = 1 << 30;
/// Largest body (1 TiB): larger layouts are refused before any mapping is tried.
pub const MAX_BODY: usize = 1 << 40;
/// Bytes of the slot header (word + length + pad) before the payload.
pub const SLOT_HEADER: usize = 16;
/// Length of the control block at the start of the body (config, indices, waiters, stats,
/// the tables of senders and receivers).
pub const CTRL_LEN: usize = 1280;
/// How many processes of each side an MPMC queue lists, to tell its waiters when every
/// process of the other side is dead (`Disconnected`): with more live senders (receivers)
/// than this, the queue cannot tell, and its waiters wait for their timeout or a close.
pub const PEERS_LISTED: usize = 31;

/// Queue flavour recorded in the config block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// Many producers, many consumers.
    Mpmc = 1,
    /// One producer, one consumer.
    Spsc = 2,
}

impl Flavour {
    fn from_raw(v: u32) -> Option<Flavour> {
        match v {
            1 => Some(Flavour::Mpmc),
            2 => Some(Flavour::Spsc),
            _ => None,
        }
    }
}

/// What was wrong with a value read from the ring: the queue is then `Corrupted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Corruption {
    /// The config block does not describe a queue this code can use.
    #[error("config field {field} is {found}")]
    Config {
        /// Which field.
        field: &'static str,
        /// Its value.
        found: u64,
    },
    /// A slot word that no honest peer writes for this position.
    #[error("slot word {word:#018x} is impossible at position {pos}")]
    SlotWord {
        /// Position expected in the slot.
        pos: u64,
        /// The word found.
        word: u64,
    },
    /// A message length larger than the slot.
    #[error("message length {len} exceeds the slot's {max}")]
    Length {
        /// Length found.
        len: u32,
        /// The largest possible.
        max: u32,
    },
    /// A capacity or message size outside what a queue supports.
    #[error("{field} is {found}, must be {min} to {max}")]
    OutOfRange {
        /// Which value.
        field: &'static str,
        /// The value given (or found).
        found: u64,
        /// The smallest allowed.
        min: u64,
        /// The largest allowed.
        max: u64,
    },
    /// The closed flag holds a value `close` never writes (it writes only 1).
    #[error("the closed flag is {found:#x} (only 0 and 1 are ever written)")]
    ClosedFlag {
        /// The value found.
        found: u32,
    },
    /// Head and tail further apart than the capacity, or tail ahead of head.
    #[error("indices head {head} tail {tail} are impossible for capacity {capacity}")]
    Indices {
        /// Head found.
        head: u64,
        /// Tail found.
        tail: u64,
        /// The capacity.
        capacity: u32,
    },
}

/// A decoded slot word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Word {
    /// Low 32 bits of the position.
    pub seq: u32,
    /// One of [`FREE`], [`WRITING`], [`READY`], [`READING`].
    pub state: u32,
    /// Owner id (30 bits).
    pub owner: u32,
}

/// Pack a slot word (the owner is cut to 30 bits, the state to 2).
#[inline]
pub fn pack(seq: u32, state: u32, owner: u32) -> u64 {
    (u64::from(seq) << 32) | (u64::from(state & 3) << OWNER_BITS) | (u64::from(owner) & OWNER_MASK)
}

/// Unpack a slot word.
#[inline]
pub fn unpack(word: u64) -> Word {
    Word {
        seq: (word >> 32) as u32,
        state: ((word >> OWNER_BITS) & 3) as u32,
        owner: (word & OWNER_MASK) as u32,
    }
}

/// The word of a slot waiting for position `pos`.
#[inline]
pub fn free_word(pos: u64) -> u64 {
    pack(pos as u32, FREE, 0)
}

/// The word that frees a slot holding `seq` for the next lap.
#[inline]
pub fn next_lap(seq: u32, capacity: u32) -> u64 {
    pack(seq.wrapping_add(capacity), FREE, 0)
}

/// Signed distance from position `pos` to the slot's `seq`, in the 32-bit ring.
#[inline]
fn distance(seq: u32, pos: u64) -> i64 {
    i64::from(seq.wrapping_sub(pos as u32) as i32)
}

/// What a producer at head position `pos` does with the slot word it loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProducerView {
    /// The slot waits for `pos`: claim it with a CAS.
    Claim,
    /// The slot already holds `pos` or a later position: the head lags; help it on.
    Advance,
    /// The slot still holds the previous lap's message (`state`, `owner`): the queue is full
    /// (the owner may be dead: a slow path checks).
    Full(Word),
}

/// What a consumer at tail position `pos` does with the slot word it loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerView {
    /// A committed message: claim it with a CAS.
    Claim,
    /// A producer claimed it and is writing (or died writing): wait, check its owner slowly.
    Pending(Word),
    /// Nothing yet at `pos` (free, or the previous lap still being read).
    Empty,
    /// The slot is past `pos`: the tail lags; help it on.
    Advance,
}

/// Classify a slot word for a producer at `pos`.
///
/// # Errors
/// [`Corruption::SlotWord`] for a word no honest peer writes for `pos` (a stale `pos` that
/// races the ring can look the same: callers reload the head and retry before reporting).
pub fn producer_view(pos: u64, word: u64, capacity: u32) -> Result<ProducerView, Corruption> {
    let w = unpack(word);
    let d = distance(w.seq, pos);
    let cap = i64::from(capacity);
    let bad = Corruption::SlotWord { pos, word };
    if d == 0 {
        return Ok(if w.state == FREE { ProducerView::Claim } else { ProducerView::Advance });
    }
    if d > 0 {
        return if d.checked_rem(cap) == Some(0) { Ok(ProducerView::Advance) } else { Err(bad) };
    }
    if d.checked_add(cap) == Some(0) && w.state != FREE {
        return Ok(ProducerView::Full(w));
    }
    Err(bad)
}

/// Classify a slot word for a consumer at `pos`.
///
/// # Errors
/// As [`producer_view`].
pub fn consumer_view(pos: u64, word: u64, capacity: u32) -> Result<ConsumerView, Corruption> {
    let w = unpack(word);
    let d = distance(w.seq, pos);
    let cap = i64::from(capacity);
    let bad = Corruption::SlotWord { pos, word };
    if d == 0 {
        return Ok(match w.state {
            READY => ConsumerView::Claim,
            WRITING => ConsumerView::Pending(w),
            READING => ConsumerView::Advance,
            _ => ConsumerView::Empty,
        });
    }
    if d > 0 {
        return if d.checked_rem(cap) == Some(0) { Ok(ConsumerView::Advance) } else { Err(bad) };
    }
    // The previous lap's message is still lent to a consumer: nothing at `pos` yet.
    if d.checked_add(cap) == Some(0) && w.state == READING {
        return Ok(ConsumerView::Empty);
    }
    Err(bad)
}

/// Check a message length loaded once from a slot.
///
/// # Errors
/// [`Corruption::Length`] if it exceeds `max`.
#[inline]
pub fn check_len(len: u32, max: u32) -> Result<usize, Corruption> {
    if len > max {
        return Err(Corruption::Length { len, max });
    }
    usize::try_from(len).map_err(|_| Corruption::Length { len, max })
}

/// Number of messages between `tail` and `head`, checked against the capacity.
///
/// # Errors
/// [`Corruption::Indices`] if the tail is ahead of the head or they are more than a
/// capacity apart.
#[inline]
pub fn occupancy(head: u64, tail: u64, capacity: u32) -> Result<u32, Corruption> {
    let n = head.wrapping_sub(tail);
    if n > u64::from(capacity) {
        return Err(Corruption::Indices { head, tail, capacity });
    }
    Ok(n as u32)
}

// ---------------------------------------------------------------------------------------
// The SPSC protocol
//
// One producer, one consumer, each keeping its own index privately (rigtorp's SPSCQueue).
// The producer writes payload and length, then *stamps* the slot: one Release store of the
// slot word `READY(pos)` (owner 0), then publishes `head = pos + 1`. The consumer never reads
// `head`: the stamp alone tells a message (`READY(pos)`) from an empty slot (the previous
// lap's stamp, or the first lap's free word) from a corrupt one (anything else), so a small
// message costs the consumer one cache line and an empty poll touches no line the producer
// writes. The consumer never writes slot words; it frees a slot by publishing `tail = pos + 1`
// (Release) once it is done with it, so a consumer killed while holding a message leaves it
// to the next consumer (at least once). A producer killed between its stamp and its head
// store left a committed message at `head` that the next producer must count as sent (the
// consumer may even have taken it already, its tail one ahead of the head).

/// The stamp of a published SPSC message at `pos`: the slot word `READY(pos)`, owner 0.
#[inline]
pub fn spsc_stamp(pos: u64) -> u64 {
    pack(pos as u32, READY, 0)
}

/// Whether `word` is what an empty SPSC slot at `pos` holds: the previous lap's stamp, or the
/// first lap's free word (the initialiser's `FREE(pos)`).
#[inline]
pub fn spsc_empty_word(pos: u64, word: u64, capacity: u32) -> bool {
    word == spsc_stamp(pos.wrapping_sub(u64::from(capacity))) || word == free_word(pos)
}

/// What an SPSC consumer at `pos` finds in the slot word it loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpscView {
    /// The stamp of `pos`: a committed message (its length is loaded next, once).
    Message,
    /// Nothing at `pos` yet.
    Empty,
}

/// Classify a slot word for an SPSC consumer at `pos`.
///
/// # Errors
/// [`Corruption::SlotWord`] for a word no honest producer leaves in the slot of `pos`.
#[inline]
pub fn spsc_view(pos: u64, word: u64, capacity: u32) -> Result<SpscView, Corruption> {
    if word == spsc_stamp(pos) {
        Ok(SpscView::Message)
    } else if spsc_empty_word(pos, word, capacity) {
        Ok(SpscView::Empty)
    } else {
        Err(Corruption::SlotWord { pos, word })
    }
}

/// Whether an SPSC producer at `head` has room, given the `tail` it loaded.
///
/// # Errors
/// [`Corruption::Indices`] when the two cannot come from an honest ring.
#[inline]
pub fn spsc_room(head: u64, tail: u64, capacity: u32) -> Result<bool, Corruption> {
    Ok(occupancy(head, tail, capacity)? < capacity)
}

/// The head a producer taking the role over continues from, given the published `head` and
/// `tail` and the word it loaded from the slot of `head`: one past a message a dead
/// predecessor stamped but never published the head of (never overwrite it), else `head`.
///
/// # Errors
/// [`Corruption::Indices`] when the indices cannot come from an honest ring.
pub fn spsc_attach_producer(
    head: u64,
    tail: u64,
    word_at_head: u64,
    capacity: u32,
) -> Result<u64, Corruption> {
    // Fewer than `capacity` messages (or the tail one ahead, when the consumer took the
    // stamped message already) and the slot of `head` stamped for `head`: sent.
    let behind = (head.wrapping_sub(tail) as i64) < i64::from(capacity);
    let head = if behind && word_at_head == spsc_stamp(head) { head.wrapping_add(1) } else { head };
    occupancy(head, tail, capacity)?;
    Ok(head)
}

/// Check the published `head` and `tail` a consumer taking the role over continues from: the
/// tail may be one ahead of a head its producer has not stored yet (or never will: it died
/// between its stamp and its head store).
///
/// # Errors
/// [`Corruption::Indices`] when the indices cannot come from an honest ring.
pub fn spsc_attach_consumer(head: u64, tail: u64, capacity: u32) -> Result<(), Corruption> {
    if head.wrapping_add(1) == tail {
        return Ok(());
    }
    occupancy(head, tail, capacity).map(|_| ())
}

/// The raw config block as stored (16 words at the start of the body).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RawConfig {
    /// [`CONFIG_MAGIC`].
    pub magic: u32,
    /// [`LAYOUT_VERSION`].
    pub version: u32,
    /// [`Flavour`] as a number.
    pub flavour: u32,
    /// Slots (a power of two).
    pub capacity: u32,
    /// Largest message.
    pub max_message: u32,
    /// Bytes per slot.
    pub stride: u32,
    /// Offset of slot 0 from the start of the body.
    pub slots_offset: u32,
    /// Size of the element for typed queues (0 for bytes).
    pub elem_size: u32,
    /// Low half of the element type tag (typed queues).
    pub type_tag_lo: u32,
    /// High half of the element type tag.
    pub type_tag_hi: u32,
}

impl RawConfig {
    /// The config as the 16 words of the block.
    pub fn to_words(&self) -> [u32; 16] {
        let mut w = [0u32; 16];
        let vals = [
            self.magic,
            self.version,
            self.flavour,
            self.capacity,
            self.max_message,
            self.stride,
            self.slots_offset,
            self.elem_size,
            self.type_tag_lo,
            self.type_tag_hi,
        ];
        for (dst, src) in w.iter_mut().zip(vals) {
            *dst = src;
        }
        w
    }

    /// The config from the 16 words of the block (a private copy).
    pub fn from_words(w: &[u32; 16]) -> RawConfig {
        let g = |i: usize| w.get(i).copied().unwrap_or(0);
        RawConfig {
            magic: g(0),
            version: g(1),
            flavour: g(2),
            capacity: g(3),
            max_message: g(4),
            stride: g(5),
            slots_offset: g(6),
            elem_size: g(7),
            type_tag_lo: g(8),
            type_tag_hi: g(9),
        }
    }
}

/// A validated configuration: every field checked against the others and the body length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Flavour.
    pub flavour: Flavour,
    /// Slots, a power of two in `1..=MAX_CAPACITY`.
    pub capacity: u32,
    /// `capacity - 1`.
    pub mask: u64,
    /// Largest message.
    pub max_message: u32,
    /// Bytes per slot (`>= SLOT_HEADER + max_message`, a multiple of 8).
    pub stride: usize,
    /// Offset of slot 0.
    pub slots_offset: usize,
    /// Element size of typed queues (0: bytes).
    pub elem_size: u32,
    /// Element type tag of typed queues.
    pub type_tag: u64,
    /// Body length the layout needs.
    pub body_len: usize,
}

impl Config {
    /// Byte offset of slot `idx & mask` from the start of the body; always inside the body.
    #[inline]
    pub fn slot_offset(&self, pos: u64) -> usize {
        let idx = (pos & self.mask) as usize;
        // idx < capacity, and slots_offset + capacity * stride == body_len was checked.
        self.slots_offset.wrapping_add(idx.wrapping_mul(self.stride))
    }

    /// The raw block that describes this config.
    pub fn to_raw(&self) -> RawConfig {
        RawConfig {
            magic: CONFIG_MAGIC,
            version: LAYOUT_VERSION,
            flavour: self.flavour as u32,
            capacity: self.capacity,
            max_message: self.max_message,
            stride: self.stride as u32,
            slots_offset: self.slots_offset as u32,
            elem_size: self.elem_size,
            type_tag_lo: self.type_tag as u32,
            type_tag_hi: (self.type_tag >> 32) as u32,
        }
    }
}

fn stride_for(flavour: Flavour, max_message: u32) -> Option<usize> {
    let raw = SLOT_HEADER.checked_add(usize::try_from(max_message).ok()?)?;
    // MPMC slots sit on their own cache lines (consumers CAS them). SPSC slots are packed for
    // streaming, but a slot that fits a cache line never straddles two (a power-of-two
    // stride), so a small message costs the consumer one line transfer.
    let align: usize = match flavour {
        Flavour::Mpmc => 64,
        Flavour::Spsc if raw <= 64 => return Some(raw.next_power_of_two()),
        Flavour::Spsc => 8,
    };
    raw.checked_add(align.checked_sub(1)?)?.checked_div(align)?.checked_mul(align)
}

/// Plan a queue: the capacity is rounded up to a power of two.
///
/// # Errors
/// [`Corruption::Config`] naming the field when a value is out of range (zero or too large
/// capacity or message) or the layout does not fit the address space.
pub fn plan(
    flavour: Flavour,
    capacity: usize,
    max_message: usize,
    elem_size: u32,
    type_tag: u64,
) -> Result<Config, Corruption> {
    let bad = |field, found: usize| Corruption::Config { field, found: found as u64 };
    if capacity == 0 || capacity > MAX_CAPACITY as usize {
        return Err(Corruption::OutOfRange {
            field: "capacity",
            found: capacity as u64,
            min: 1,
            max: u64::from(MAX_CAPACITY),
        });
    }
    let capacity = capacity.checked_next_power_of_two().ok_or(bad("capacity", capacity))?;
    if max_message == 0 || max_message > MAX_MESSAGE as usize {
        return Err(Corruption::OutOfRange {
            field: "max_message",
            found: max_message as u64,
            min: 1,
            max: u64::from(MAX_MESSAGE),
        });
    }
    let cap = u32::try_from(capacity).map_err(|_| bad("capacity", capacity))?;
    let max = u32::try_from(max_message).map_err(|_| bad("max_message", max_message))?;
    let stride = stride_for(flavour, max).ok_or(bad("max_message", max_message))?;
    let body_len = capacity
        .checked_mul(stride)
        .and_then(|s| s.checked_add(CTRL_LEN))
        .filter(|&l| l <= MAX_BODY)
        .ok_or(bad("capacity", capacity))?;
    Ok(Config {
        flavour,
        capacity: cap,
        mask: u64::from(cap).wrapping_sub(1),
        max_message: max,
        stride,
        slots_offset: CTRL_LEN,
        elem_size,
        type_tag,
        body_len,
    })
}

/// Validate a config block read once from the body (`body_len` bytes long).
///
/// # Errors
/// [`Corruption::Config`] naming the first field that is wrong.
pub fn validate(raw: &RawConfig, body_len: usize) -> Result<Config, Corruption> {
    let bad = |field, found: u32| Corruption::Config { field, found: u64::from(found) };
    if raw.magic != CONFIG_MAGIC {
        return Err(bad("magic", raw.magic));
    }
    if raw.version != LAYOUT_VERSION {
        return Err(bad("version", raw.version));
    }
    let flavour = Flavour::from_raw(raw.flavour).ok_or(bad("flavour", raw.flavour))?;
    if !raw.capacity.is_power_of_two() || raw.capacity > MAX_CAPACITY {
        return Err(bad("capacity", raw.capacity));
    }
    let type_tag = (u64::from(raw.type_tag_hi) << 32) | u64::from(raw.type_tag_lo);
    let want =
        plan(flavour, raw.capacity as usize, raw.max_message as usize, raw.elem_size, type_tag)?;
    if raw.stride as usize != want.stride {
        return Err(bad("stride", raw.stride));
    }
    if raw.slots_offset as usize != want.slots_offset {
        return Err(bad("slots_offset", raw.slots_offset));
    }
    if want.body_len != body_len {
        return Err(Corruption::Config { field: "body_len", found: body_len as u64 });
    }
    if raw.elem_size != 0 && raw.elem_size != raw.max_message {
        return Err(bad("elem_size", raw.elem_size));
    }
    Ok(want)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn word_roundtrip() {
        let w = pack(0xdead_beef, READING, 0x3fff_ffff);
        assert_eq!(unpack(w), Word { seq: 0xdead_beef, state: READING, owner: 0x3fff_ffff });
        assert_eq!(unpack(0), Word { seq: 0, state: FREE, owner: 0 });
    }

    #[test]
    fn producer_lifecycle() {
        let cap = 4;
        assert_eq!(producer_view(5, free_word(5), cap), Ok(ProducerView::Claim));
        assert_eq!(producer_view(5, pack(5, WRITING, 9), cap), Ok(ProducerView::Advance));
        assert_eq!(producer_view(5, free_word(9), cap), Ok(ProducerView::Advance));
        assert!(matches!(producer_view(5, pack(1, READY, 0), cap), Ok(ProducerView::Full(_))));
        assert!(producer_view(5, free_word(1), cap).is_err());
        assert!(producer_view(5, free_word(6), cap).is_err());
        assert!(producer_view(5, free_word(u64::MAX), cap).is_err());
    }

    #[test]
    fn consumer_lifecycle() {
        let cap = 4;
        assert_eq!(consumer_view(5, free_word(5), cap), Ok(ConsumerView::Empty));
        assert!(matches!(consumer_view(5, pack(5, WRITING, 3), cap), Ok(ConsumerView::Pending(_))));
        assert_eq!(consumer_view(5, pack(5, READY, 0), cap), Ok(ConsumerView::Claim));
        assert_eq!(consumer_view(5, pack(5, READING, 2), cap), Ok(ConsumerView::Advance));
        assert_eq!(consumer_view(5, free_word(9), cap), Ok(ConsumerView::Advance));
        assert_eq!(consumer_view(5, pack(1, READING, 2), cap), Ok(ConsumerView::Empty));
        assert!(consumer_view(5, pack(1, READY, 0), cap).is_err());
        assert!(consumer_view(5, free_word(7), cap).is_err());
    }

    #[test]
    fn positions_wrap() {
        let cap = 2;
        let pos = u64::MAX;
        assert_eq!(producer_view(pos, free_word(pos), cap), Ok(ProducerView::Claim));
        let next = pos.wrapping_add(1);
        assert_eq!(producer_view(next, free_word(next), cap), Ok(ProducerView::Claim));
        assert_eq!(consumer_view(pos, next_lap(pos as u32, cap), cap), Ok(ConsumerView::Advance));
        assert_eq!(occupancy(1, u64::MAX, cap), Ok(2));
        assert!(occupancy(u64::MAX, 1, cap).is_err());
    }

    #[test]
    fn plan_and_validate() {
        let c = plan(Flavour::Mpmc, 5, 100, 0, 0).unwrap();
        assert_eq!(c.capacity, 8);
        assert_eq!(c.stride, 128);
        assert_eq!(validate(&c.to_raw(), c.body_len), Ok(c));
        assert!(validate(&c.to_raw(), c.body_len + 1).is_err());
        assert!(plan(Flavour::Mpmc, 0, 1, 0, 0).is_err());
        assert!(plan(Flavour::Spsc, 1 << 31, 1, 0, 0).is_err());
        assert!(plan(Flavour::Spsc, 1 << 30, 1 << 30, 0, 0).is_err());
        let s = plan(Flavour::Spsc, 1024, 64, 0, 0).unwrap();
        assert_eq!(s.stride, 80);
    }

    #[test]
    fn spsc_lifecycle() {
        let cap = 4;
        assert_eq!(spsc_view(5, spsc_stamp(5), cap), Ok(SpscView::Message));
        assert_eq!(spsc_view(5, spsc_stamp(1), cap), Ok(SpscView::Empty)); // previous lap
        assert_eq!(spsc_view(1, free_word(1), cap), Ok(SpscView::Empty)); // first lap
        assert!(spsc_view(5, spsc_stamp(9), cap).is_err());
        assert!(spsc_view(5, pack(5, WRITING, 3), cap).is_err());
        assert!(spsc_view(5, free_word(9), cap).is_err());
        assert_eq!(spsc_room(5, 1, cap), Ok(false));
        assert_eq!(spsc_room(5, 2, cap), Ok(true));
        assert!(spsc_room(6, 1, cap).is_err());
        // Taking the producer role over: a message stamped and not headed counts as sent.
        assert_eq!(spsc_attach_producer(3, 1, spsc_stamp(3), cap), Ok(4));
        assert_eq!(spsc_attach_producer(3, 1, spsc_stamp(u64::MAX), cap), Ok(3));
        assert_eq!(spsc_attach_producer(3, 4, spsc_stamp(3), cap), Ok(4)); // already taken
        assert_eq!(spsc_attach_producer(5, 1, spsc_stamp(5), cap), Ok(5)); // full: not ours
        assert!(spsc_attach_producer(9, 1, 0, cap).is_err());
        assert!(spsc_attach_producer(3, 5, spsc_stamp(3), cap).is_err());
        assert_eq!(spsc_attach_consumer(3, 4, cap), Ok(()));
        assert_eq!(spsc_attach_consumer(3, 0, cap), Ok(()));
        assert!(spsc_attach_consumer(3, 5, cap).is_err());
        assert!(spsc_attach_consumer(9, 0, cap).is_err());
    }

    /// The SPSC ring driven by these functions alone, as the queue drives it.
    #[derive(Debug)]
    struct SpscSim {
        cap: u32,
        mask: u64,
        slots: Vec<u64>,
        start: u64,
        /// Published indices (the shared words).
        head: u64,
        tail: u64,
        /// The producer's private head and cached tail, and whether it died after a stamp.
        p_head: u64,
        cached_tail: u64,
        dead: bool,
        sent: u64,
        got: u64,
    }

    impl SpscSim {
        fn new(cap: u32, start: u64) -> SpscSim {
            let mask = u64::from(cap) - 1;
            let mut slots = vec![0; cap as usize];
            for i in 0..u64::from(cap) {
                let pos = start.wrapping_add(i);
                slots[(pos & mask) as usize] = free_word(pos);
            }
            SpscSim {
                cap,
                mask,
                slots,
                start,
                head: start,
                tail: start,
                p_head: start,
                cached_tail: start,
                dead: false,
                sent: 0,
                got: 0,
            }
        }

        fn slot(&mut self, pos: u64) -> &mut u64 {
            &mut self.slots[(pos & self.mask) as usize]
        }

        /// Send one message; with `die`, the producer is killed between stamp and head.
        fn produce(&mut self, die: bool) -> Result<(), Corruption> {
            if self.dead {
                return Ok(());
            }
            if !spsc_room(self.p_head, self.cached_tail, self.cap)? {
                self.cached_tail = self.tail;
                if !spsc_room(self.p_head, self.cached_tail, self.cap)? {
                    return Ok(());
                }
            }
            let pos = self.p_head;
            *self.slot(pos) = spsc_stamp(pos);
            self.sent += 1;
            if die {
                self.dead = true;
            } else {
                self.p_head = pos.wrapping_add(1);
                self.head = self.p_head;
            }
            Ok(())
        }

        /// A new producer takes the dead one's role.
        fn take_over(&mut self) -> Result<(), Corruption> {
            if self.dead {
                let word = *self.slot(self.head);
                self.p_head = spsc_attach_producer(self.head, self.tail, word, self.cap)?;
                self.head = self.p_head;
                self.cached_tail = self.tail;
                self.dead = false;
            }
            Ok(())
        }

        /// Receive one message if there is one; returns its number (position - start).
        fn consume(&mut self) -> Result<Option<u64>, Corruption> {
            let pos = self.tail;
            let word = *self.slot(pos);
            match spsc_view(pos, word, self.cap)? {
                SpscView::Message => {
                    self.got += 1;
                    self.tail = pos.wrapping_add(1);
                    Ok(Some(pos.wrapping_sub(self.start)))
                }
                SpscView::Empty => Ok(None),
            }
        }
    }

    proptest! {
        #[test]
        fn spsc_decisions_never_panic(pos in any::<u64>(), word in any::<u64>(),
                                      tail in any::<u64>(), shift in 0u32..31) {
            let cap = 1u32 << shift;
            let _ = spsc_view(pos, word, cap);
            let _ = spsc_room(pos, tail, cap);
            if let Ok(head) = spsc_attach_producer(pos, tail, word, cap) {
                prop_assert!(occupancy(head, tail, cap).is_ok());
            }
            let _ = spsc_attach_consumer(pos, tail, cap);
        }

        /// Producers killed between stamp and head and taken over, a consumer that may take
        /// the stamped message before the takeover, counters near both wraps: every message
        /// is received exactly once, in order, and nothing is ever reported corrupt.
        #[test]
        fn spsc_protocol_conserves_in_order(
            ops in proptest::collection::vec(0u8..6, 1..400),
            shift in 0u32..4,
            start in prop_oneof![
                Just(0u64), Just(u64::MAX - 5), Just(u64::from(u32::MAX) - 3), any::<u64>()
            ],
        ) {
            let mut sim = SpscSim::new(1 << shift, start);
            let mut next = 0;
            for op in ops {
                match op {
                    0 | 1 => sim.produce(false).unwrap(),
                    2 => sim.produce(true).unwrap(),
                    3 => sim.take_over().unwrap(),
                    _ => {
                        spsc_attach_consumer(sim.head, sim.tail, sim.cap).unwrap();
                        if let Some(n) = sim.consume().unwrap() {
                            prop_assert_eq!(n, next, "out of order");
                            next += 1;
                        }
                    }
                }
            }
            sim.take_over().unwrap();
            while let Some(n) = sim.consume().unwrap() {
                prop_assert_eq!(n, next, "out of order");
                next += 1;
            }
            prop_assert_eq!(sim.got, sim.sent);
        }
    }

    proptest! {
        #[test]
        fn any_config_words_validate_or_error(words in proptest::array::uniform16(any::<u32>()),
                                              body in any::<usize>()) {
            if let Ok(c) = validate(&RawConfig::from_words(&words), body) {
                prop_assert!(c.capacity.is_power_of_two());
                prop_assert_eq!(c.body_len, body);
                for pos in [0u64, 1, u64::MAX, u64::from(c.capacity)] {
                    let off = c.slot_offset(pos);
                    prop_assert!(off + c.stride <= body);
                    prop_assert!(off >= CTRL_LEN);
                }
            }
        }

        #[test]
        fn views_never_panic(pos in any::<u64>(), word in any::<u64>(), shift in 0u32..31) {
            let cap = 1u32 << shift;
            let _ = producer_view(pos, word, cap);
            let _ = consumer_view(pos, word, cap);
        }

        #[test]
        fn check_len_bounds(len in any::<u32>(), max in 0u32..=MAX_MESSAGE) {
            match check_len(len, max) {
                Ok(n) => prop_assert!(n <= max as usize),
                Err(_) => prop_assert!(len > max),
            }
        }
    }
}
