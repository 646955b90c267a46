//! A bounds check for pickles from a peer, run before serde-pickle decodes them.
//!
//! serde-pickle is not safe on hostile input. It recurses over nested values (deserializing,
//! cloning and dropping them), so a 20 kB pickle of nested lists overflows the stack and
//! aborts the process. And it allocates far more than the pickle's length: a 4 KiB stack
//! vector per MARK, a full deep copy of a value per DUP, per memo reference resolved while
//! decoding and per memo reference met while converting the result, 32 bytes per value slot
//! (twice, with the growth of vectors), and quadratic time for a text integer of many digits.
//! A few MB on the wire can ask for gigabytes, and an allocation failure aborts the process.
//!
//! [`check`] runs the pickle machine over a skeleton of the values (sizes, containers, memo
//! references and their nesting, no payloads) exactly as serde-pickle 1.x evaluates the
//! opcodes, and adds up, in bytes, what serde-pickle will hold at its peak: every payload with
//! the capacity its reader gives it, every vector with the capacity its growth gives it (the
//! old and the new buffer while one grows), 4 KiB per MARK, 128 bytes per memo entry, a deep
//! copy for every DUP and every memo reference serde-pickle copies, and the tree the decode
//! produces (a `serde_pickle::Value` or a typed value of similar size). The estimate is an
//! upper bound of serde-pickle's peak memory (a property test measures it with a counting
//! allocator). A pickle is refused when that estimate exceeds its [`PickleLimit`], when a
//! value nests deeper than [`MAX_DEPTH`], when a text integer has more than
//! [`MAX_INT_DIGITS`] digits (CPython's own cap on int/str conversions), when a value contains
//! itself, or when an opcode would make serde-pickle fail in a way that copies a value into
//! its error message. Everything here is iterative, linear in the input and the estimate, and
//! panic-free.
//!
//! What the default limit of 64 bytes per byte admits, by the estimate for what CPython
//! pickles: bytes and long strings 3 to 9 bytes per byte; lists of short strings, ints or
//! floats 15 to 32; dicts, sets, tuples, records and nested lists 40 to 53. Lists of one-byte
//! values (`[None] * n`, small ints: about 70 to 140) and many references to one shared object
//! (`[[1, 2, 3]] * n`, about 210: serde-pickle copies it out for each) are refused unless the
//! limit is raised ([`PickleLimit::Bytes`], or a larger [`PickleLimit::PerByte`]).
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects, clippy::panic_in_result_fn)]

use std::collections::HashMap;
use std::fmt;

/// Deepest nesting accepted (Python's own pickle stops near its recursion limit of 1000;
/// real data is far shallower).
pub const MAX_DEPTH: u32 = 200;

/// Most digits in a text integer (`I`, `L`: protocols 0 and 1), as CPython's
/// `sys.int_info.default_max_str_digits`; serde-pickle parses them in quadratic time.
pub const MAX_INT_DIGITS: usize = 4300;

/// Default limit: this many bytes of memory per byte of the pickle.
pub const DEFAULT_BYTES_PER_BYTE: u64 = 64;

/// The limit is never below this (small pickles have fixed costs: serde-pickle's 8 KiB read
/// buffer and 4 KiB stack, and a few MB are harmless).
pub const MIN_LIMIT: u64 = 4 << 20;

/// Frames of the expansion walk: a node and its memo reference per level, and some slack.
const MAX_FRAMES: usize = 2 * MAX_DEPTH as usize + 2;

/// Size of one of serde-pickle's values (its internal one and `serde_pickle::Value`).
const VALUE: u64 = 32;
/// Size of an element of serde-pickle's stack of stacks (a `Vec`).
const STACK_ENTRY: u64 = 24;
/// Slots of the stack serde-pickle makes at the start and at every MARK.
const STACK_SLOTS: u64 = 128;
/// Elements of its stack of stacks at the start.
const MARK_SLOTS: u64 = 16;
/// One entry of serde-pickle's memo (a `BTreeMap<u32, (Value, i32)>`: 44-byte entries in nodes
/// of 11 that can be half empty, and the inner nodes above them).
const MEMO_ENTRY: u64 = 128;
/// Fixed costs: the 8 KiB read buffer, the first stack, the stack of stacks, slack.
const BASE: u64 = 8192 + STACK_SLOTS * VALUE + MARK_SLOTS * STACK_ENTRY + 1024;
/// A node of the skeleton (this module's own memory per container).
const NODE_COST: u64 = 64;

/// The most memory a pickle may make serde-pickle use: see [`check_with_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PickleLimit {
    /// This many bytes per byte of the pickle, and at least [`MIN_LIMIT`].
    PerByte(u64),
    /// This many bytes, whatever the pickle's length.
    Bytes(u64),
}

impl Default for PickleLimit {
    /// [`DEFAULT_BYTES_PER_BYTE`] bytes per byte.
    fn default() -> Self {
        PickleLimit::PerByte(DEFAULT_BYTES_PER_BYTE)
    }
}

impl PickleLimit {
    /// The limit in bytes for a pickle of `len` bytes.
    pub fn for_len(self, len: usize) -> u64 {
        match self {
            PickleLimit::PerByte(n) => (len as u64).saturating_mul(n).max(MIN_LIMIT),
            PickleLimit::Bytes(n) => n,
        }
    }
}

/// Why a pickle is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PickleError {
    /// The bytes end before the `STOP` opcode (or inside an argument).
    Truncated,
    /// An opcode serde-pickle does not evaluate (persistent ids, extensions, out-of-band
    /// buffers) or no opcode at all.
    Unsupported(u8),
    /// An opcode pops more than the stack holds.
    StackUnderflow,
    /// A memo reference to nothing, or a malformed memo id.
    BadMemo,
    /// A container opcode applied to the wrong kind of value (serde-pickle would copy the
    /// value into its error message).
    TypeMismatch,
    /// A negative length prefix.
    NegativeLength,
    /// Values nest deeper than [`MAX_DEPTH`].
    TooDeep,
    /// Decoding would use more memory than the limit.
    TooLarge {
        /// What the estimate had reached when it passed the limit (a lower bound of the
        /// whole estimate).
        needed: u64,
        /// The limit.
        limit: u64,
    },
    /// A text integer has more than [`MAX_INT_DIGITS`] digits.
    IntTooLong {
        /// Its length.
        digits: usize,
    },
    /// A value contains itself.
    Recursive,
}

impl fmt::Display for PickleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PickleError::Truncated => f.write_str("the pickle ends before its STOP opcode"),
            PickleError::Unsupported(op) => write!(f, "unsupported pickle opcode {op:#04x}"),
            PickleError::StackUnderflow => f.write_str("an opcode pops more than the stack holds"),
            PickleError::BadMemo => f.write_str("a memo reference to nothing, or a bad memo id"),
            PickleError::TypeMismatch => f.write_str("an opcode applied to the wrong type"),
            PickleError::NegativeLength => f.write_str("a negative length prefix"),
            PickleError::TooDeep => write!(f, "values nest deeper than {MAX_DEPTH} levels"),
            PickleError::TooLarge { needed, limit } => write!(
                f,
                "decoding it would take at least {needed} bytes of memory, above the limit of \
                 {limit} bytes (see set_pickle_limit)"
            ),
            PickleError::IntTooLong { digits } => write!(
                f,
                "a text integer of {digits} digits, above the limit of {MAX_INT_DIGITS} digits"
            ),
            PickleError::Recursive => f.write_str("a value contains itself"),
        }
    }
}

impl std::error::Error for PickleError {}

/// Check that serde-pickle can decode `pickle` within the default [`PickleLimit`] and the
/// stack bound; returns the estimate of its peak memory in bytes.
///
/// # Errors
/// [`PickleError`] naming the first problem.
pub fn check(pickle: &[u8]) -> Result<u64, PickleError> {
    check_with_limit(pickle, PickleLimit::default().for_len(pickle.len()))
}

/// [`check`] with a limit of `limit` bytes: the pickle is refused as soon as the estimate of
/// serde-pickle's peak memory passes it.
///
/// # Errors
/// [`PickleError`] naming the first problem.
pub fn check_with_limit(pickle: &[u8], limit: u64) -> Result<u64, PickleError> {
    let mut m = Machine {
        nodes: Vec::new(),
        stack: Vec::new(),
        stack_cap: STACK_SLOTS,
        marks: Vec::new(),
        marks_cap: MARK_SLOTS,
        memo: HashMap::new(),
        counts: HashMap::new(),
        live: 0,
        peak: 0,
        limit,
    };
    m.alloc(BASE)?;
    run(&mut m, &mut Cursor { rest: pickle })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    List,
    Tuple,
    Dict,
    Set,
    FrozenSet,
    /// The result of a REDUCE of a global this module cannot name: no opcode may modify it.
    Opaque,
}

/// The globals serde-pickle gives a meaning to in REDUCE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Global {
    /// `set`, `frozenset`, `list`: the result is the list argument.
    Set,
    FrozenSet,
    List,
    /// Any other, or one pushed by STACK_GLOBAL (whose names are not kept here).
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LeafKind {
    Str,
    Global(Global),
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sym {
    /// A value with no children: `bytes` of payload (what a copy of it allocates).
    Leaf {
        kind: LeafKind,
        bytes: u64,
    },
    Node(usize),
    Memo(u32),
}

const fn leaf(bytes: u64) -> Sym {
    Sym::Leaf { kind: LeafKind::Other, bytes }
}

#[derive(Debug)]
struct Node {
    kind: Kind,
    children: Vec<Sym>,
    /// Capacity of serde-pickle's vector for it, in bytes.
    cap: u64,
    /// Nesting of the inline tree (memo references count as leaves).
    depth: u32,
    /// Bytes a deep copy allocates (memo references are copied as references).
    weight: u64,
}

struct Machine {
    nodes: Vec<Node>,
    stack: Vec<Sym>,
    /// Capacity of serde-pickle's current stack, in values.
    stack_cap: u64,
    marks: Vec<(Vec<Sym>, u64)>,
    marks_cap: u64,
    memo: HashMap<u32, Sym>,
    /// serde-pickle's reference count of each memo entry.
    counts: HashMap<u32, i64>,
    /// Bytes serde-pickle holds at this point of its run (never less).
    live: u64,
    /// The most it held.
    peak: u64,
    limit: u64,
}

type Res<T> = Result<T, PickleError>;

/// Capacity `std::io::Read::read_to_end` gives a vector for `n` bytes: it grows by doubling
/// from a 32-byte probe and reserves again when the data fills it exactly.
fn read_cap(n: u64) -> u64 {
    if n == 0 { 0 } else { n.saturating_add(n.max(40)) }
}

/// Bytes of an element of a container's vector.
fn elem(kind: Kind) -> u64 {
    if kind == Kind::Dict { 2 * VALUE } else { VALUE }
}

impl Machine {
    fn bump(&mut self, level: u64) -> Res<()> {
        self.peak = self.peak.max(level);
        if self.peak > self.limit {
            Err(PickleError::TooLarge { needed: self.peak, limit: self.limit })
        } else {
            Ok(())
        }
    }

    /// serde-pickle allocates `n` bytes and keeps them.
    fn alloc(&mut self, n: u64) -> Res<()> {
        self.live = self.live.saturating_add(n);
        self.bump(self.live)
    }

    /// serde-pickle allocates `n` bytes for a moment.
    fn spike(&mut self, n: u64) -> Res<()> {
        self.bump(self.live.saturating_add(n))
    }

    /// serde-pickle frees `n` bytes it holds.
    fn free(&mut self, n: u64) {
        self.live = self.live.saturating_sub(n);
    }

    /// A vector of `cap` bytes reallocated to `new` bytes (both live during the copy).
    fn realloc(&mut self, cap: u64, new: u64) -> Res<()> {
        self.spike(new)?;
        self.live = self.live.saturating_add(new).saturating_sub(cap);
        Ok(())
    }

    /// The capacity after pushing one element at a time up to `need` bytes (`Vec::push`
    /// doubling, at least 4 elements), charging each reallocation.
    fn grow_push(&mut self, mut cap: u64, need: u64, elem: u64) -> Res<u64> {
        while cap < need {
            let new = cap.saturating_mul(2).max(elem.saturating_mul(4)).max(cap.saturating_add(1));
            self.realloc(cap, new)?;
            cap = new;
        }
        Ok(cap)
    }

    /// The capacity after one `reserve` up to `need` bytes (`Vec::extend` of a vector).
    fn grow_reserve(&mut self, cap: u64, need: u64, elem: u64) -> Res<u64> {
        if need <= cap {
            return Ok(cap);
        }
        let new = cap.saturating_mul(2).max(need).max(elem.saturating_mul(4));
        self.realloc(cap, new)?;
        Ok(new)
    }

    /// A payload read from the pickle: `read_to_end`'s vector, kept.
    fn read_leaf(&mut self, kind: LeafKind, n: u64) -> Res<()> {
        let cap = read_cap(n);
        // The last doubling holds the old half and the new buffer at once.
        self.spike(cap.saturating_add(cap / 2).saturating_add(32))?;
        self.alloc(cap)?;
        self.push(Sym::Leaf { kind, bytes: n })
    }

    /// A text line read for an opcode and dropped (`read_until` into a growing vector).
    fn line_spike(&mut self, len: usize) -> Res<()> {
        let cap = (len as u64).saturating_mul(2).saturating_add(32);
        self.spike(cap.saturating_add(cap / 2))
    }

    fn inline(&self, s: Sym) -> (u32, u64) {
        match s {
            Sym::Node(i) => self.nodes.get(i).map_or((0, 0), |n| (n.depth, n.weight)),
            Sym::Leaf { bytes, .. } => (0, bytes),
            Sym::Memo(_) => (0, 0),
        }
    }

    fn push(&mut self, s: Sym) -> Res<()> {
        let need = (self.stack.len() as u64).saturating_add(1).saturating_mul(VALUE);
        let cap = self.stack_cap.saturating_mul(VALUE);
        self.stack_cap = self.grow_push(cap, need, VALUE)? / VALUE;
        self.stack.push(s);
        Ok(())
    }

    fn pop(&mut self) -> Res<Sym> {
        self.stack.pop().ok_or(PickleError::StackUnderflow)
    }

    fn mark(&mut self) -> Res<()> {
        self.alloc(STACK_SLOTS.saturating_mul(VALUE))?;
        let need = (self.marks.len() as u64).saturating_add(1).saturating_mul(STACK_ENTRY);
        let cap = self.marks_cap.saturating_mul(STACK_ENTRY);
        self.marks_cap = self.grow_push(cap, need, STACK_ENTRY)? / STACK_ENTRY;
        let outer = std::mem::take(&mut self.stack);
        self.marks.push((outer, self.stack_cap));
        self.stack_cap = STACK_SLOTS;
        Ok(())
    }

    /// The items since the last MARK and the capacity (bytes) of serde-pickle's vector
    /// holding them.
    fn pop_mark(&mut self) -> Res<(Vec<Sym>, u64)> {
        let (outer, outer_cap) = self.marks.pop().ok_or(PickleError::StackUnderflow)?;
        let items = std::mem::replace(&mut self.stack, outer);
        let cap = std::mem::replace(&mut self.stack_cap, outer_cap).saturating_mul(VALUE);
        Ok((items, cap))
    }

    fn new_node(&mut self, kind: Kind, children: Vec<Sym>, cap: u64) -> Res<Sym> {
        let mut depth = 0u32;
        let mut weight = (children.len() as u64).saturating_mul(VALUE);
        for &c in &children {
            let (d, w) = self.inline(c);
            depth = depth.max(d.saturating_add(1));
            weight = weight.saturating_add(w);
        }
        depth = depth.max(1);
        if depth > MAX_DEPTH {
            return Err(PickleError::TooDeep);
        }
        self.nodes.push(Node { kind, children, cap, depth, weight });
        self.check_own_memory()?;
        Ok(Sym::Node(self.nodes.len().saturating_sub(1)))
    }

    /// This module's skeleton stays within the limit too.
    fn check_own_memory(&self) -> Res<()> {
        let own = (self.nodes.len() as u64).saturating_mul(NODE_COST);
        if own > self.limit {
            Err(PickleError::TooLarge { needed: own, limit: self.limit })
        } else {
            Ok(())
        }
    }

    /// What a memo reference stands for (one level).
    fn deref(&self, s: Sym) -> Res<Sym> {
        match s {
            Sym::Memo(id) => self.memo.get(&id).copied().ok_or(PickleError::BadMemo),
            other => Ok(other),
        }
    }

    /// A deep copy of a value (serde-pickle's `Value::clone`: exact-length vectors, memo
    /// references copied as references), charged.
    fn copy(&mut self, s: Sym) -> Res<Sym> {
        let (_, weight) = self.inline(s);
        self.alloc(weight)?;
        let Sym::Node(root) = s else { return Ok(s) };
        // Iterative copy: (index of the new node).
        let first = self.shallow(root)?;
        let mut work = vec![first];
        while let Some(new) = work.pop() {
            let kids = self.nodes.get(new).map(|n| n.children.clone()).unwrap_or_default();
            let mut copied = Vec::with_capacity(kids.len());
            for k in kids {
                match k {
                    Sym::Node(src) => {
                        let n = self.shallow(src)?;
                        work.push(n);
                        copied.push(Sym::Node(n));
                    }
                    other => copied.push(other),
                }
            }
            if let Some(n) = self.nodes.get_mut(new) {
                n.children = copied;
            }
        }
        Ok(Sym::Node(first))
    }

    fn shallow(&mut self, src: usize) -> Res<usize> {
        let n = self.nodes.get(src).ok_or(PickleError::BadMemo)?;
        let copy = Node {
            kind: n.kind,
            children: n.children.clone(),
            // A clone has exactly its length (dict items are counted flat, a value each).
            cap: (n.children.len() as u64).saturating_mul(VALUE),
            depth: n.depth,
            weight: n.weight,
        };
        self.nodes.push(copy);
        self.check_own_memory()?;
        Ok(self.nodes.len().saturating_sub(1))
    }

    /// serde-pickle's `resolve`: a memo reference becomes a copy of its value, and the
    /// entry's count drops by one (`counted`; a copy made here only to be safe, where
    /// serde-pickle may not resolve, leaves the count alone).
    fn resolve(&mut self, s: Sym, counted: bool) -> Res<Sym> {
        match s {
            Sym::Memo(id) => {
                if counted && let Some(c) = self.counts.get_mut(&id) {
                    *c = c.saturating_sub(1);
                }
                let target = self.deref(s)?;
                self.copy(target)
            }
            other => Ok(other),
        }
    }

    fn pop_resolve(&mut self) -> Res<Sym> {
        let s = self.pop()?;
        self.resolve(s, true)
    }

    /// Add `items` to the container the stack top stands for (through a memo reference),
    /// which must be of `kind`: by one `extend` (`reserve`) or by pushes.
    fn extend_top(&mut self, kind: Kind, items: Vec<Sym>, by_push: bool) -> Res<()> {
        let top = *self.stack.last().ok_or(PickleError::StackUnderflow)?;
        let Sym::Node(i) = self.deref(top)? else { return Err(PickleError::TypeMismatch) };
        let mut depth = 0u32;
        let mut weight = (items.len() as u64).saturating_mul(VALUE);
        for &c in &items {
            let (d, w) = self.inline(c);
            depth = depth.max(d.saturating_add(1));
            weight = weight.saturating_add(w);
        }
        let node = self.nodes.get(i).ok_or(PickleError::BadMemo)?;
        if node.kind != kind {
            return Err(PickleError::TypeMismatch);
        }
        let (cap, len) = (node.cap, node.children.len() as u64);
        let need = len.saturating_add(items.len() as u64).saturating_mul(VALUE);
        let cap = if by_push {
            self.grow_push(cap, need, elem(kind))?
        } else {
            self.grow_reserve(cap, need, elem(kind))?
        };
        let node = self.nodes.get_mut(i).ok_or(PickleError::BadMemo)?;
        node.cap = cap;
        node.children.extend(items);
        node.depth = node.depth.max(depth);
        node.weight = node.weight.saturating_add(weight);
        if node.depth > MAX_DEPTH { Err(PickleError::TooDeep) } else { Ok(()) }
    }

    fn memoize(&mut self, id: u32) -> Res<()> {
        // A memo reference is copied out, its count untouched.
        let item = self.pop()?;
        let item = self.resolve(item, false)?;
        if !self.memo.contains_key(&id) {
            self.alloc(MEMO_ENTRY)?;
        }
        self.memo.insert(id, item);
        self.counts.insert(id, 1);
        self.push(Sym::Memo(id))
    }

    /// The bytes serde-pickle's result takes for one conversion of `n`'s own container (not
    /// its children): a vector grown by pushes (`Value::List`, and what `Deserialize` builds),
    /// or B-tree nodes for dicts and sets; plus a vector per tuple key made hashable.
    fn out(&self, n: &Node) -> u64 {
        let len = n.children.len() as u64;
        let vec_out = |len: u64| {
            if len == 0 { 0 } else { len.saturating_mul(2).max(4).saturating_mul(VALUE) }
        };
        let btree_out = |entries: u64, entry: u64| {
            if entries == 0 {
                return 0;
            }
            let leaf = entry.saturating_mul(11).saturating_add(16);
            if entries <= 11 {
                return leaf;
            }
            // Leaves at least 5 full (a split leaves 5 or 6), inner nodes above them.
            let leaves = (entries / 5).saturating_add(1);
            let inner = (leaves / 5).saturating_add(2);
            leaves
                .saturating_mul(leaf)
                .saturating_add(inner.saturating_mul(leaf.saturating_add(96)))
        };
        let keys = || {
            n.children
                .iter()
                .filter_map(|&c| match c {
                    Sym::Node(i) => self.nodes.get(i).map(|k| vec_out(k.children.len() as u64)),
                    _ => None,
                })
                .fold(0u64, u64::saturating_add)
        };
        match n.kind {
            Kind::Dict => btree_out(len / 2, 2 * VALUE).saturating_add(keys()),
            Kind::Set => btree_out(len, VALUE).max(vec_out(len)).saturating_add(keys()),
            Kind::FrozenSet => btree_out(len, VALUE).max(vec_out(len)).saturating_add(keys()),
            Kind::List | Kind::Tuple | Kind::Opaque => vec_out(len),
        }
    }

    /// What converting `root` into the result costs, and its nesting with every memo
    /// reference expanded; refuses cycles.
    ///
    /// serde-pickle converts the tree (into a `Value`, or through `Deserialize` into the
    /// caller's type) depth first, allocating each container's result as it goes and freeing
    /// the container's own vector when it is done (its payloads move into the result). A memo
    /// reference met on the way is the entry's value copied out of the memo while the entry's
    /// count (one for MEMOIZE/PUT, one more per GET, one less per reference resolved while
    /// decoding) stays above zero, and moved out at zero (a later reference is then an
    /// error). So entry `m` is converted at most `max(count, 1)` times, all but the last
    /// from a copy of its value.
    ///
    /// The cost bound: for the root's tree and the last conversion of each reachable memo
    /// entry, every container's result less its own vector (freed at its end, when that is
    /// smaller), for the other conversions the whole result and the copy; plus the vectors
    /// of the containers still open (the deepest path of them), and the old buffer of the
    /// largest result vector while it grows. The walk is iterative and visits each node and
    /// memo entry once.
    fn convert_cost(&self, root: Sym) -> Res<(u64, u32)> {
        #[derive(Clone, Copy)]
        enum V {
            Node(usize),
            Memo(u32),
        }
        /// Aggregates of a tree: results, results less freed vectors, the heaviest open
        /// path, the expanded depth. Memo references contribute their path and depth only.
        #[derive(Clone, Copy, Default)]
        struct Agg {
            out: u64,
            gain: u64,
            path: u64,
            depth: u32,
        }
        impl Agg {
            fn add_child(&mut self, c: Agg) {
                self.out = self.out.saturating_add(c.out);
                self.gain = self.gain.saturating_add(c.gain);
                self.path = self.path.max(c.path);
                self.depth = self.depth.max(c.depth);
            }
        }
        struct Frame {
            v: V,
            next: usize,
            agg: Agg,
        }
        let mut node_done: HashMap<usize, Agg> = HashMap::new();
        // None: being expanded (a cycle if met again).
        let mut memo_done: HashMap<u32, Option<Agg>> = HashMap::new();
        let start = match root {
            Sym::Leaf { .. } => return Ok((0, 0)),
            Sym::Node(i) => V::Node(i),
            Sym::Memo(m) => V::Memo(m),
        };
        let mut total = Agg::default();
        let mut widest = 0u64;
        let mut frames = vec![Frame { v: start, next: 0, agg: Agg::default() }];
        if let V::Memo(m) = start {
            memo_done.insert(m, None);
        }
        while let Some(top) = frames.last_mut() {
            let child = match top.v {
                V::Node(i) => {
                    self.nodes.get(i).ok_or(PickleError::BadMemo)?.children.get(top.next).copied()
                }
                V::Memo(m) => {
                    if top.next == 0 {
                        Some(self.memo.get(&m).copied().ok_or(PickleError::BadMemo)?)
                    } else {
                        None
                    }
                }
            };
            top.next = top.next.saturating_add(1);
            // The aggregate a finished vertex hands its parent.
            let finished: Option<Agg> = match child {
                None => {
                    let v = top.v;
                    let mut agg = top.agg;
                    if let V::Node(i) = v {
                        let n = self.nodes.get(i).ok_or(PickleError::BadMemo)?;
                        widest = widest.max((n.children.len() as u64).saturating_mul(VALUE));
                        let out = self.out(n);
                        agg.out = agg.out.saturating_add(out);
                        agg.gain = agg.gain.saturating_add(out.saturating_sub(n.cap));
                        agg.path = agg.path.saturating_add(n.cap);
                        agg.depth = agg.depth.saturating_add(1);
                    }
                    if agg.depth > MAX_DEPTH {
                        return Err(PickleError::TooDeep);
                    }
                    frames.pop();
                    match v {
                        V::Node(i) => {
                            node_done.insert(i, agg);
                            Some(agg)
                        }
                        V::Memo(m) => {
                            memo_done.insert(m, Some(agg));
                            // The entry's tree is counted per conversion below.
                            Some(Agg { out: 0, gain: 0, ..agg })
                        }
                    }
                }
                Some(Sym::Leaf { .. }) => None,
                Some(Sym::Node(i)) => {
                    if let Some(&a) = node_done.get(&i) {
                        top.agg.add_child(a);
                    } else {
                        if frames.len() > MAX_FRAMES {
                            return Err(PickleError::TooDeep);
                        }
                        frames.push(Frame { v: V::Node(i), next: 0, agg: Agg::default() });
                    }
                    None
                }
                Some(Sym::Memo(m)) => {
                    match memo_done.get(&m) {
                        Some(Some(a)) => top.agg.add_child(Agg { out: 0, gain: 0, ..*a }),
                        Some(None) => return Err(PickleError::Recursive),
                        None => {
                            if frames.len() > MAX_FRAMES {
                                return Err(PickleError::TooDeep);
                            }
                            memo_done.insert(m, None);
                            frames.push(Frame { v: V::Memo(m), next: 0, agg: Agg::default() });
                        }
                    }
                    None
                }
            };
            if let Some(a) = finished {
                match frames.last_mut() {
                    Some(parent) => parent.agg.add_child(a),
                    None => total = a,
                }
            }
        }
        let mut cost = total.gain.saturating_add(total.path).saturating_add(widest);
        for (m, done) in &memo_done {
            let a = done.unwrap_or_default();
            let count = self.counts.get(m).copied().unwrap_or(1);
            let copies = u64::try_from(count.saturating_sub(1).max(0)).unwrap_or(u64::MAX);
            let weight = self.memo.get(m).map_or(0, |&t| self.inline(t).1);
            cost = cost
                .saturating_add(copies.saturating_mul(a.out.saturating_add(weight)))
                .saturating_add(a.gain);
        }
        Ok((cost, total.depth))
    }
}

/// A cursor over the pickle bytes.
struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn byte(&mut self) -> Res<u8> {
        let (&b, rest) = self.rest.split_first().ok_or(PickleError::Truncated)?;
        self.rest = rest;
        Ok(b)
    }

    fn take(&mut self, n: u64) -> Res<&'a [u8]> {
        let n = usize::try_from(n).map_err(|_| PickleError::Truncated)?;
        if n > self.rest.len() {
            return Err(PickleError::Truncated);
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }

    fn le(&mut self, n: u64) -> Res<u64> {
        let bytes = self.take(n)?;
        Ok(bytes.iter().rev().fold(0u64, |acc, &b| acc.wrapping_shl(8) | u64::from(b)))
    }

    /// A line (serde-pickle's `read_until(b'\n')`: the rest of the input if no newline),
    /// without its `\n` and a `\r` before it; and its length as read.
    fn line(&mut self) -> (&'a [u8], usize) {
        match self.rest.iter().position(|&b| b == b'\n') {
            Some(p) => {
                let (line, rest) = self.rest.split_at(p);
                self.rest = rest.get(1..).unwrap_or_default();
                (line.strip_suffix(b"\r").unwrap_or(line), p.saturating_add(1))
            }
            None => {
                let line = self.rest;
                self.rest = &[];
                (line, line.len())
            }
        }
    }
}

fn memo_id(line: &[u8]) -> Res<u32> {
    std::str::from_utf8(line).ok().and_then(|s| s.parse().ok()).ok_or(PickleError::BadMemo)
}

/// A text integer's digits (sign and `L` suffix aside) must stay within [`MAX_INT_DIGITS`].
fn check_digits(line: &[u8]) -> Res<()> {
    let body = line.strip_suffix(b"L").unwrap_or(line);
    let body = body.strip_prefix(b"-").or_else(|| body.strip_prefix(b"+")).unwrap_or(body);
    if body.len() > MAX_INT_DIGITS {
        Err(PickleError::IntTooLong { digits: body.len() })
    } else {
        Ok(())
    }
}

fn global_kind(module: &[u8], name: &[u8]) -> Global {
    if module != b"builtins" && module != b"__builtin__" {
        return Global::Other;
    }
    match name {
        b"set" => Global::Set,
        b"frozenset" => Global::FrozenSet,
        b"list" => Global::List,
        _ => Global::Other,
    }
}

/// The pickle machine, opcode by opcode, as serde-pickle 1.x runs it (`de.rs`,
/// `parse_value`), with `DeOptions::new()`.
fn run(m: &mut Machine, c: &mut Cursor<'_>) -> Res<u64> {
    loop {
        let op = c.byte()?;
        match op {
            // PROTO, FRAME.
            0x80 => {
                c.byte()?;
            }
            0x95 => {
                c.take(8)?;
            }
            // STOP: the result is converted (or deserialized into the caller's type).
            b'.' => {
                let root = m.pop()?;
                let (cost, _) = m.convert_cost(root)?;
                m.alloc(cost)?;
                return Ok(m.peak);
            }
            b'(' => m.mark()?,
            // POP (of a MARK when the stack is empty), POP_MARK.
            b'0' => {
                if m.stack.is_empty() {
                    let (_, cap) = m.pop_mark()?;
                    m.free(cap);
                } else {
                    m.pop()?;
                }
            }
            b'1' => {
                let (_, cap) = m.pop_mark()?;
                m.free(cap);
            }
            // DUP: a deep copy of the top (through a memo reference).
            b'2' => {
                let top = *m.stack.last().ok_or(PickleError::StackUnderflow)?;
                let target = m.deref(top)?;
                let dup = m.copy(target)?;
                m.push(dup)?;
            }
            // PUT, BINPUT, LONG_BINPUT, MEMOIZE.
            b'p' => {
                let (line, len) = c.line();
                m.line_spike(len)?;
                let id = memo_id(line)?;
                m.memoize(id)?;
            }
            b'q' => {
                let id = c.byte()?;
                m.memoize(u32::from(id))?;
            }
            b'r' => {
                let id = u32::try_from(c.le(4)?).map_err(|_| PickleError::BadMemo)?;
                m.memoize(id)?;
            }
            0x94 => {
                let id = u32::try_from(m.memo.len()).map_err(|_| PickleError::BadMemo)?;
                m.memoize(id)?;
            }
            // GET, BINGET, LONG_BINGET.
            b'g' | b'h' | b'j' => {
                let id = match op {
                    b'g' => {
                        let (line, len) = c.line();
                        m.line_spike(len)?;
                        memo_id(line)?
                    }
                    b'h' => u32::from(c.byte()?),
                    _ => u32::try_from(c.le(4)?).map_err(|_| PickleError::BadMemo)?,
                };
                if !m.memo.contains_key(&id) {
                    return Err(PickleError::BadMemo);
                }
                let c = m.counts.entry(id).or_insert(0);
                *c = c.saturating_add(1);
                m.push(Sym::Memo(id))?;
            }
            // Leaves without a payload.
            b'N' | 0x88 | 0x89 => m.push(leaf(0))?,
            // INT, LONG: text integers, digits capped; FLOAT.
            b'I' | b'L' | b'F' => {
                let (line, len) = c.line();
                if op != b'F' {
                    check_digits(line)?;
                }
                m.line_spike(len)?;
                let bytes = if op == b'L' { (line.len() as u64).saturating_add(16) } else { 0 };
                m.alloc(bytes)?;
                m.push(leaf(bytes))?;
            }
            // STRING (escapes decoded into a new vector), UNICODE (raw-unicode-escape into a
            // string of up to two bytes per byte).
            b'S' | b'V' => {
                let (line, len) = c.line();
                let n = line.len() as u64;
                let (kind, bytes) = if op == b'S' {
                    (LeafKind::Other, n)
                } else {
                    (LeafKind::Str, n.saturating_mul(2).saturating_add(8))
                };
                let line_cap = (len as u64).saturating_mul(2).saturating_add(32);
                m.spike(line_cap.saturating_add(bytes).saturating_add(n))?;
                m.alloc(bytes)?;
                m.push(Sym::Leaf { kind, bytes })?;
            }
            // Fixed-size binary numbers.
            b'G' => {
                c.take(8)?;
                m.push(leaf(0))?;
            }
            b'J' => {
                c.take(4)?;
                m.push(leaf(0))?;
            }
            b'K' => {
                c.take(1)?;
                m.push(leaf(0))?;
            }
            b'M' => {
                c.take(2)?;
                m.push(leaf(0))?;
            }
            // LONG1, LONG4: the bytes, then a BigInt of them (and two more for a negative
            // one), the bytes dropped.
            0x8a | 0x8b => {
                let n = if op == 0x8a {
                    u64::from(c.byte()?)
                } else {
                    let n = c.le(4)?;
                    let n = i32::from_le_bytes(u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
                    if n < 0 {
                        return Err(PickleError::NegativeLength);
                    }
                    u64::from(n.unsigned_abs())
                };
                c.take(n)?;
                let cap = read_cap(n);
                let big = n.saturating_add(16);
                m.spike(cap.saturating_add(cap / 2).saturating_add(big.saturating_mul(3)))?;
                m.alloc(big)?;
                m.push(leaf(big))?;
            }
            // u8-prefixed: SHORT_BINBYTES, SHORT_BINSTRING, SHORT_BINUNICODE.
            b'C' | b'U' | 0x8c => {
                let n = c.byte()?;
                c.take(u64::from(n))?;
                let kind = if op == 0x8c { LeafKind::Str } else { LeafKind::Other };
                m.read_leaf(kind, u64::from(n))?;
            }
            // i32-prefixed: BINSTRING.
            b'T' => {
                let n = c.le(4)?;
                let n = i32::from_le_bytes(u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
                if n < 0 {
                    return Err(PickleError::NegativeLength);
                }
                let n = u64::from(n.unsigned_abs());
                c.take(n)?;
                m.read_leaf(LeafKind::Other, n)?;
            }
            // u32-prefixed: BINBYTES, BINUNICODE.
            b'B' | b'X' => {
                let n = c.le(4)?;
                c.take(n)?;
                let kind = if op == b'X' { LeafKind::Str } else { LeafKind::Other };
                m.read_leaf(kind, n)?;
            }
            // u64-prefixed: BINBYTES8, BINUNICODE8, BYTEARRAY8.
            0x8e | 0x8d | 0x96 => {
                let n = c.le(8)?;
                c.take(n)?;
                let kind = if op == 0x8d { LeafKind::Str } else { LeafKind::Other };
                m.read_leaf(kind, n)?;
            }
            // Tuples: exact-length vectors, or the MARK's vector.
            b')' => {
                let t = m.new_node(Kind::Tuple, Vec::new(), 0)?;
                m.push(t)?;
            }
            0x85..=0x87 => {
                let n = match op {
                    0x85 => 1,
                    0x86 => 2,
                    _ => 3,
                };
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(m.pop()?);
                }
                items.reverse();
                let cap = (n as u64).saturating_mul(VALUE);
                m.alloc(cap)?;
                let t = m.new_node(Kind::Tuple, items, cap)?;
                m.push(t)?;
            }
            b't' => {
                let (items, cap) = m.pop_mark()?;
                let t = m.new_node(Kind::Tuple, items, cap)?;
                m.push(t)?;
            }
            // Lists.
            b']' => {
                let l = m.new_node(Kind::List, Vec::new(), 0)?;
                m.push(l)?;
            }
            b'l' => {
                let (items, cap) = m.pop_mark()?;
                let l = m.new_node(Kind::List, items, cap)?;
                m.push(l)?;
            }
            b'a' => {
                let v = m.pop()?;
                m.extend_top(Kind::List, vec![v], true)?;
            }
            b'e' => {
                let (items, cap) = m.pop_mark()?;
                m.extend_top(Kind::List, items, false)?;
                m.free(cap);
            }
            // Dicts: items are flat key, value pairs; DICT copies them into a new vector of
            // pairs, SETITEMS pushes them one pair at a time (an odd last key is dropped).
            b'}' => {
                let d = m.new_node(Kind::Dict, Vec::new(), 0)?;
                m.push(d)?;
            }
            b'd' => {
                let (mut items, cap) = m.pop_mark()?;
                items.truncate(items.len() & !1);
                let pairs = (items.len() as u64).saturating_mul(VALUE);
                m.alloc(pairs)?;
                m.free(cap);
                let d = m.new_node(Kind::Dict, items, pairs)?;
                m.push(d)?;
            }
            b's' => {
                let v = m.pop()?;
                let k = m.pop()?;
                m.extend_top(Kind::Dict, vec![k, v], true)?;
            }
            b'u' => {
                let (mut items, cap) = m.pop_mark()?;
                items.truncate(items.len() & !1);
                m.extend_top(Kind::Dict, items, true)?;
                m.free(cap);
            }
            // Sets and frozensets.
            0x8f => {
                let s = m.new_node(Kind::Set, Vec::new(), 0)?;
                m.push(s)?;
            }
            0x91 => {
                let (items, cap) = m.pop_mark()?;
                let s = m.new_node(Kind::FrozenSet, items, cap)?;
                m.push(s)?;
            }
            0x90 => {
                let (items, cap) = m.pop_mark()?;
                m.extend_top(Kind::Set, items, false)?;
                m.free(cap);
            }
            // GLOBAL: two lines; STACK_GLOBAL: two strings, copied out of the memo.
            b'c' => {
                let (module, len1) = c.line();
                let (name, len2) = c.line();
                m.line_spike(len1.saturating_add(len2))?;
                let g = global_kind(module, name);
                m.push(Sym::Leaf { kind: LeafKind::Global(g), bytes: 0 })?;
            }
            0x93 => {
                for _ in 0..2 {
                    match m.pop_resolve()? {
                        Sym::Leaf { kind: LeafKind::Str, .. } => {}
                        _ => return Err(PickleError::TypeMismatch),
                    }
                }
                m.push(Sym::Leaf { kind: LeafKind::Global(Global::Other), bytes: 0 })?;
            }
            // REDUCE: a tuple of arguments and a global, both copied out of the memo, then an
            // argument copied out again; `set`/`frozenset`/`list` give the list argument,
            // others something at most as large as the arguments.
            b'R' => {
                let args = m.pop_resolve()?;
                let global = m.pop_resolve()?;
                let Sym::Node(a) = args else { return Err(PickleError::TypeMismatch) };
                let tuple = m.nodes.get(a).ok_or(PickleError::BadMemo)?;
                if tuple.kind != Kind::Tuple {
                    return Err(PickleError::TypeMismatch);
                }
                let Sym::Leaf { kind: LeafKind::Global(g), .. } = global else {
                    return Err(PickleError::TypeMismatch);
                };
                let arg_syms = tuple.children.clone();
                let mut resolved = Vec::with_capacity(arg_syms.len());
                for s in arg_syms {
                    resolved.push(m.resolve(s, false)?);
                }
                let last = resolved.last().copied();
                let result = match (g, last) {
                    (Global::Set | Global::FrozenSet | Global::List, Some(Sym::Node(l)))
                        if m.nodes.get(l).is_some_and(|n| n.kind == Kind::List) =>
                    {
                        if let Some(n) = m.nodes.get_mut(l) {
                            n.kind = match g {
                                Global::Set => Kind::Set,
                                Global::FrozenSet => Kind::FrozenSet,
                                _ => Kind::List,
                            };
                        }
                        Sym::Node(l)
                    }
                    _ => {
                        // bytearray and _codecs.encode build new bytes from a string.
                        let weight = resolved.iter().map(|&s| m.inline(s).1).max().unwrap_or(0);
                        m.alloc(weight)?;
                        m.new_node(Kind::Opaque, resolved, 0)?
                    }
                };
                m.push(result)?;
            }
            // INST, OBJ, NEWOBJ, NEWOBJ_EX: the class and its arguments are dropped and an
            // empty dict stands for the instance; BUILD keeps the state.
            b'i' => {
                let (_, len1) = c.line();
                let (_, len2) = c.line();
                m.line_spike(len1.saturating_add(len2))?;
                m.pop_mark()?;
                let d = m.new_node(Kind::Dict, Vec::new(), 0)?;
                m.push(d)?;
            }
            b'o' => {
                m.pop_mark()?;
                m.pop()?;
                let d = m.new_node(Kind::Dict, Vec::new(), 0)?;
                m.push(d)?;
            }
            0x81 | 0x92 => {
                let n = if op == 0x81 { 2 } else { 3 };
                for _ in 0..n {
                    m.pop()?;
                }
                let d = m.new_node(Kind::Dict, Vec::new(), 0)?;
                m.push(d)?;
            }
            b'b' => {
                let state = m.pop()?;
                m.pop()?;
                m.push(state)?;
            }
            other => return Err(PickleError::Unsupported(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::arithmetic_side_effects, clippy::indexing_slicing)]
    use super::*;

    fn nested_lists(n: usize) -> Vec<u8> {
        let mut v = vec![0x80, 3];
        v.extend(std::iter::repeat_n(b']', n));
        v.extend(std::iter::repeat_n(b'a', n - 1));
        v.push(b'.');
        v
    }

    #[test]
    fn the_value_size_matches_serde_pickle() {
        assert!(std::mem::size_of::<serde_pickle::Value>() as u64 <= VALUE);
        assert!(std::mem::size_of::<serde_pickle::HashableValue>() as u64 <= VALUE);
    }

    #[test]
    fn shallow_values_pass() {
        // pickle.dumps({"a": [1, 2, "x"], "b": (None, True)}, protocol=4)
        let p = b"\x80\x04\x95\x1f\x00\x00\x00\x00\x00\x00\x00}\x94(\x8c\x01a\x94]\x94(K\x01K\x02\x8c\x01x\x94e\x8c\x01b\x94N\x88\x86\x94u.";
        assert!(check(p).is_ok());
        assert!(check(&nested_lists(150)).is_ok());
    }

    #[test]
    fn deep_exploding_and_malformed_pickles_are_refused() {
        assert_eq!(check(&nested_lists(100_000)), Err(PickleError::TooDeep));
        // x0 = []; x_{k+1} = (x_k, x_k) through the memo: 2^60 values once expanded, but
        // serde-pickle copies an entry out only as often as it was referenced (then fails
        // with "recursive structure"), so the bound stays small.
        let mut p = vec![0x80, 4, b']', 0x94];
        for k in 0..60u8 {
            p.extend_from_slice(&[b'h', k, b'h', k, 0x86, 0x94]);
        }
        p.extend_from_slice(&[b'h', 60, b'.']);
        assert!(check(&p).unwrap() < 1 << 20);
        assert_eq!(check(b"\x80\x04]\x94h\x00a."), Err(PickleError::Recursive));
        assert_eq!(check(b"\x80\x04]"), Err(PickleError::Truncated));
        assert_eq!(check(b"\x80\x04Q."), Err(PickleError::Unsupported(b'Q')));
        assert_eq!(check(b"a."), Err(PickleError::StackUnderflow));
        // APPEND onto bytes, REDUCE of a list, STACK_GLOBAL of bytes: serde-pickle would
        // format the value into its error.
        assert_eq!(check(b"\x80\x04C\x01xNa."), Err(PickleError::TypeMismatch));
        assert_eq!(check(b"\x80\x04c__builtin__\nset\n]R."), Err(PickleError::TypeMismatch));
        assert_eq!(check(b"\x80\x04C\x01xC\x01y\x93."), Err(PickleError::TypeMismatch));
    }

    #[test]
    fn text_integers_are_capped_in_digits() {
        let mut p = b"\x80\x02L".to_vec();
        p.extend(std::iter::repeat_n(b'9', MAX_INT_DIGITS));
        p.extend_from_slice(b"L\n.");
        assert!(check(&p).is_ok());
        let mut p = b"\x80\x02I-".to_vec();
        p.extend(std::iter::repeat_n(b'9', MAX_INT_DIGITS + 1));
        p.extend_from_slice(b"\n.");
        assert_eq!(check(&p), Err(PickleError::IntTooLong { digits: MAX_INT_DIGITS + 1 }));
    }

    #[test]
    fn marks_and_copies_are_counted_in_bytes() {
        // 10 000 MARKs: 40 MiB of stacks in serde-pickle.
        let mut p = vec![0x80, 4];
        p.extend(std::iter::repeat_n(b'(', 10_000));
        p.extend_from_slice(b"N.");
        let Err(PickleError::TooLarge { needed, limit }) = check(&p) else { panic!() };
        assert_eq!(limit, MIN_LIMIT);
        assert!(needed > limit);
        assert!(check_with_limit(&p, 64 << 20).unwrap() > 10_000 * 4096);
        // A 64 KiB bytes value DUPed 100 times: at least 100 copies of it.
        let mut p = vec![0x80, 4, b'(', b'B', 0, 0, 1, 0];
        p.extend(std::iter::repeat_n(b'y', 1 << 16));
        p.extend(std::iter::repeat_n(b'2', 100));
        p.extend_from_slice(b"l.");
        assert!(check_with_limit(&p, 64 << 20).unwrap() > 100 << 16);
        assert!(matches!(check(&p), Err(PickleError::TooLarge { .. })));
    }

    #[test]
    fn limits() {
        assert_eq!(PickleLimit::default().for_len(10), MIN_LIMIT);
        assert_eq!(PickleLimit::default().for_len(1 << 20), DEFAULT_BYTES_PER_BYTE << 20);
        assert_eq!(PickleLimit::PerByte(u64::MAX).for_len(2), u64::MAX);
        assert_eq!(PickleLimit::Bytes(5).for_len(1 << 30), 5);
    }
}
