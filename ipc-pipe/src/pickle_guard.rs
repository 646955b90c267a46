//! A bounds check for pickles from a peer, run before serde-pickle decodes them.
//!
//! serde-pickle is not safe on hostile input: it recurses over nested values (deserializing,
//! cloning and dropping them), so a 20 kB pickle of nested lists overflows the stack and
//! aborts the process; and it expands shared (memoised) values into copies, so a few hundred
//! bytes can ask for 2^60 values. This module runs the pickle machine over a skeleton of the
//! values (no payloads, only containers, memo references and their nesting) exactly as
//! serde-pickle 1.x evaluates the opcodes, and refuses a pickle when any value it builds
//! nests deeper than [`MAX_DEPTH`], when the copies it makes exceed a budget, or when the
//! final value, with every memo reference expanded as serde-pickle expands it, is deeper than
//! [`MAX_DEPTH`] or larger than [`expanded_limit`]. Recursive structures (which serde-pickle
//! refuses anyway) are refused here. Everything is iterative, bounded by the input, and
//! panic-free.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects, clippy::panic_in_result_fn)]

use std::collections::HashMap;
use std::fmt;

/// Deepest nesting accepted (Python's own pickle stops near its recursion limit of 1000;
/// real data is far shallower).
pub const MAX_DEPTH: u32 = 200;

/// Frames of the expansion walk: a node and its memo reference per level, and some slack.
const MAX_FRAMES: usize = 2 * MAX_DEPTH as usize + 2;

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
    /// A container opcode applied to the wrong kind of value.
    TypeMismatch,
    /// A negative length prefix.
    NegativeLength,
    /// Values nest deeper than [`MAX_DEPTH`].
    TooDeep,
    /// More values than the budget (copies while evaluating, or the expanded result).
    TooLarge,
    /// A value contains itself.
    Recursive,
}

impl fmt::Display for PickleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PickleError::Truncated => f.write_str("pickle truncated"),
            PickleError::Unsupported(op) => write!(f, "unsupported pickle opcode {op:#04x}"),
            PickleError::StackUnderflow => f.write_str("pickle stack underflow"),
            PickleError::BadMemo => f.write_str("bad pickle memo reference"),
            PickleError::TypeMismatch => f.write_str("pickle opcode applied to the wrong type"),
            PickleError::NegativeLength => f.write_str("negative length in pickle"),
            PickleError::TooDeep => write!(f, "pickle nests deeper than {MAX_DEPTH} levels"),
            PickleError::TooLarge => f.write_str("pickle expands to too many values"),
            PickleError::Recursive => f.write_str("recursive pickle structure"),
        }
    }
}

impl std::error::Error for PickleError {}

/// The most values a pickle of `len` bytes may expand to: 8 per input byte, at least 2^16,
/// at most 2^24.
pub fn expanded_limit(len: usize) -> u64 {
    (len as u64).saturating_mul(8).clamp(1 << 16, 1 << 24)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    List,
    Dict,
    Set,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sym {
    Leaf,
    Node(usize),
    Memo(u32),
}

#[derive(Debug)]
struct Node {
    kind: Kind,
    children: Vec<Sym>,
    /// Nesting of the inline tree (memo references count as leaves).
    depth: u32,
    /// Values in the inline tree.
    size: u64,
}

struct Machine {
    nodes: Vec<Node>,
    stack: Vec<Sym>,
    marks: Vec<Vec<Sym>>,
    memo: HashMap<u32, Sym>,
    /// Values created or copied so far.
    made: u64,
    budget: u64,
}

type Res<T> = Result<T, PickleError>;

impl Machine {
    fn inline(&self, s: Sym) -> (u32, u64) {
        match s {
            Sym::Node(i) => self.nodes.get(i).map_or((0, 1), |n| (n.depth, n.size)),
            Sym::Leaf | Sym::Memo(_) => (0, 1),
        }
    }

    fn charge(&mut self, n: u64) -> Res<()> {
        self.made = self.made.saturating_add(n);
        if self.made > self.budget { Err(PickleError::TooLarge) } else { Ok(()) }
    }

    fn new_node(&mut self, kind: Kind, children: Vec<Sym>) -> Res<Sym> {
        let mut depth = 0u32;
        let mut size = 1u64;
        for &c in &children {
            let (d, s) = self.inline(c);
            depth = depth.max(d.saturating_add(1));
            size = size.saturating_add(s);
        }
        depth = depth.max(1);
        if depth > MAX_DEPTH {
            return Err(PickleError::TooDeep);
        }
        self.charge(1)?;
        self.nodes.push(Node { kind, children, depth, size });
        Ok(Sym::Node(self.nodes.len().saturating_sub(1)))
    }

    fn pop(&mut self) -> Res<Sym> {
        self.stack.pop().ok_or(PickleError::StackUnderflow)
    }

    fn pop_mark(&mut self) -> Res<Vec<Sym>> {
        let outer = self.marks.pop().ok_or(PickleError::StackUnderflow)?;
        Ok(std::mem::replace(&mut self.stack, outer))
    }

    /// What a memo reference stands for (one level).
    fn deref(&self, s: Sym) -> Res<Sym> {
        match s {
            Sym::Memo(id) => self.memo.get(&id).copied().ok_or(PickleError::BadMemo),
            other => Ok(other),
        }
    }

    /// A deep copy of an inline tree (serde-pickle's `Value::clone`).
    fn copy(&mut self, s: Sym) -> Res<Sym> {
        let Sym::Node(root) = s else { return Ok(s) };
        let (_, size) = self.inline(s);
        self.charge(size)?;
        // Iterative copy: (source node, index of the new node).
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
        let copy =
            Node { kind: n.kind, children: n.children.clone(), depth: n.depth, size: n.size };
        self.nodes.push(copy);
        Ok(self.nodes.len().saturating_sub(1))
    }

    /// The container the stack top stands for (through a memo reference), which must be of
    /// `kind`; `items` are added to it.
    fn extend_top(&mut self, kind: Kind, items: Vec<Sym>) -> Res<()> {
        let top = *self.stack.last().ok_or(PickleError::StackUnderflow)?;
        let Sym::Node(i) = self.deref(top)? else { return Err(PickleError::TypeMismatch) };
        let mut depth = 0u32;
        let mut size = 0u64;
        for &c in &items {
            let (d, s) = self.inline(c);
            depth = depth.max(d.saturating_add(1));
            size = size.saturating_add(s);
        }
        let node = self.nodes.get_mut(i).ok_or(PickleError::BadMemo)?;
        if node.kind != kind {
            return Err(PickleError::TypeMismatch);
        }
        node.children.extend(items);
        node.depth = node.depth.max(depth);
        node.size = node.size.saturating_add(size);
        if node.depth > MAX_DEPTH { Err(PickleError::TooDeep) } else { Ok(()) }
    }

    fn memoize(&mut self, id: u32) -> Res<()> {
        let item = self.pop()?;
        let item = match item {
            Sym::Memo(m) => {
                let target = self.deref(Sym::Memo(m))?;
                self.copy(target)?
            }
            other => other,
        };
        self.memo.insert(id, item);
        self.stack.push(Sym::Memo(id));
        Ok(())
    }

    /// serde-pickle's `pop_resolve`: pop, and copy a memoised value out of the memo.
    fn pop_resolve(&mut self) -> Res<Sym> {
        let s = self.pop()?;
        match s {
            Sym::Memo(_) => {
                let target = self.deref(s)?;
                self.copy(target)
            }
            other => Ok(other),
        }
    }

    /// Size and depth of `root` with every memo reference expanded; refuses cycles.
    fn expand(&self, root: Sym, limit: u64) -> Res<(u64, u32)> {
        #[derive(Clone, Copy)]
        enum V {
            Node(usize),
            Memo(u32),
        }
        struct Frame {
            v: V,
            next: usize,
            size: u64,
            depth: u32,
        }
        let mut node_done: HashMap<usize, (u64, u32)> = HashMap::new();
        // None: being expanded (a cycle if met again).
        let mut memo_done: HashMap<u32, Option<(u64, u32)>> = HashMap::new();
        let mut result = (1u64, 0u32);
        let start = match root {
            Sym::Leaf => return Ok(result),
            Sym::Node(i) => V::Node(i),
            Sym::Memo(m) => V::Memo(m),
        };
        let mut frames = vec![Frame { v: start, next: 0, size: 0, depth: 0 }];
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
            let finished: Option<(u64, u32)> = match child {
                None => {
                    // All children seen: this vertex is complete.
                    let (size, depth) = match top.v {
                        V::Node(_) => (top.size.saturating_add(1), top.depth.saturating_add(1)),
                        V::Memo(_) => (top.size, top.depth),
                    };
                    if depth > MAX_DEPTH {
                        return Err(PickleError::TooDeep);
                    }
                    if size > limit {
                        return Err(PickleError::TooLarge);
                    }
                    match top.v {
                        V::Node(i) => {
                            node_done.insert(i, (size, depth));
                        }
                        V::Memo(m) => {
                            memo_done.insert(m, Some((size, depth)));
                        }
                    }
                    frames.pop();
                    Some((size, depth))
                }
                Some(Sym::Leaf) => {
                    let (s, d) = (1u64, 0u32);
                    top.size = top.size.saturating_add(s);
                    top.depth = top.depth.max(d);
                    None
                }
                Some(Sym::Node(i)) => {
                    if let Some(&(s, d)) = node_done.get(&i) {
                        top.size = top.size.saturating_add(s);
                        top.depth = top.depth.max(d);
                    } else {
                        if frames.len() > MAX_FRAMES {
                            return Err(PickleError::TooDeep);
                        }
                        frames.push(Frame { v: V::Node(i), next: 0, size: 0, depth: 0 });
                    }
                    None
                }
                Some(Sym::Memo(m)) => {
                    match memo_done.get(&m) {
                        Some(Some((s, d))) => {
                            top.size = top.size.saturating_add(*s);
                            top.depth = top.depth.max(*d);
                        }
                        Some(None) => return Err(PickleError::Recursive),
                        None => {
                            if frames.len() > MAX_FRAMES {
                                return Err(PickleError::TooDeep);
                            }
                            memo_done.insert(m, None);
                            frames.push(Frame { v: V::Memo(m), next: 0, size: 0, depth: 0 });
                        }
                    }
                    None
                }
            };
            if let Some((s, d)) = finished {
                match frames.last_mut() {
                    Some(parent) => {
                        parent.size = parent.size.saturating_add(s);
                        parent.depth = parent.depth.max(d);
                        if parent.size > limit {
                            return Err(PickleError::TooLarge);
                        }
                    }
                    None => result = (s, d),
                }
            }
        }
        Ok(result)
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

    /// A line (serde-pickle's `read_until(b'\n')`: the rest of the input if no newline).
    fn line(&mut self) -> Res<&'a [u8]> {
        match self.rest.iter().position(|&b| b == b'\n') {
            Some(p) => {
                let (line, rest) = self.rest.split_at(p);
                self.rest = rest.get(1..).unwrap_or_default();
                Ok(line.strip_suffix(b"\r").unwrap_or(line))
            }
            None => {
                let line = self.rest;
                self.rest = &[];
                Ok(line)
            }
        }
    }
}

fn memo_id(line: &[u8]) -> Res<u32> {
    std::str::from_utf8(line).ok().and_then(|s| s.parse().ok()).ok_or(PickleError::BadMemo)
}

/// Check that serde-pickle can decode `pickle` within the stack and memory bounds; returns
/// the expanded number of values.
///
/// # Errors
/// [`PickleError`] naming the first problem.
pub fn check(pickle: &[u8]) -> Result<u64, PickleError> {
    let mut m = Machine {
        nodes: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        made: 0,
        budget: (pickle.len() as u64).saturating_mul(4).saturating_add(1024),
    };
    let mut c = Cursor { rest: pickle };
    loop {
        let op = c.byte()?;
        match op {
            0x80 => {
                c.byte()?;
            }
            0x95 => {
                c.take(8)?;
            }
            b'.' => {
                let root = m.pop()?;
                let (size, _) = m.expand(root, expanded_limit(pickle.len()))?;
                return Ok(size);
            }
            b'(' => {
                let outer = std::mem::take(&mut m.stack);
                m.marks.push(outer);
            }
            b'0' => {
                if m.stack.is_empty() {
                    m.pop_mark()?;
                } else {
                    m.pop()?;
                }
            }
            b'1' => {
                m.pop_mark()?;
            }
            b'2' => {
                let top = *m.stack.last().ok_or(PickleError::StackUnderflow)?;
                let target = m.deref(top)?;
                let dup = m.copy(target)?;
                m.stack.push(dup);
            }
            b'p' => {
                let id = memo_id(c.line()?)?;
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
            b'g' | b'h' | b'j' => {
                let id = match op {
                    b'g' => memo_id(c.line()?)?,
                    b'h' => u32::from(c.byte()?),
                    _ => u32::try_from(c.le(4)?).map_err(|_| PickleError::BadMemo)?,
                };
                if !m.memo.contains_key(&id) {
                    return Err(PickleError::BadMemo);
                }
                m.stack.push(Sym::Memo(id));
            }
            // Leaves.
            b'N' | 0x88 | 0x89 => m.stack.push(Sym::Leaf),
            b'I' | b'L' | b'F' | b'S' | b'V' => {
                c.line()?;
                m.stack.push(Sym::Leaf);
            }
            b'G' => {
                c.take(8)?;
                m.stack.push(Sym::Leaf);
            }
            b'J' => {
                c.take(4)?;
                m.stack.push(Sym::Leaf);
            }
            b'K' => {
                c.take(1)?;
                m.stack.push(Sym::Leaf);
            }
            b'M' => {
                c.take(2)?;
                m.stack.push(Sym::Leaf);
            }
            // u8-prefixed: LONG1, SHORT_BINBYTES, SHORT_BINSTRING, SHORT_BINUNICODE.
            0x8a | b'C' | b'U' | 0x8c => {
                let n = c.byte()?;
                c.take(u64::from(n))?;
                m.stack.push(Sym::Leaf);
            }
            // i32-prefixed: LONG4, BINSTRING.
            0x8b | b'T' => {
                let n = c.le(4)?;
                let n = i32::from_le_bytes(u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
                if n < 0 {
                    return Err(PickleError::NegativeLength);
                }
                c.take(u64::from(n.unsigned_abs()))?;
                m.stack.push(Sym::Leaf);
            }
            // u32-prefixed: BINBYTES, BINUNICODE.
            b'B' | b'X' => {
                let n = c.le(4)?;
                c.take(n)?;
                m.stack.push(Sym::Leaf);
            }
            // u64-prefixed: BINBYTES8, BINUNICODE8, BYTEARRAY8.
            0x8e | 0x8d | 0x96 => {
                let n = c.le(8)?;
                c.take(n)?;
                m.stack.push(Sym::Leaf);
            }
            // Tuples.
            b')' => {
                let t = m.new_node(Kind::Other, Vec::new())?;
                m.stack.push(t);
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
                let t = m.new_node(Kind::Other, items)?;
                m.stack.push(t);
            }
            b't' => {
                let items = m.pop_mark()?;
                let t = m.new_node(Kind::Other, items)?;
                m.stack.push(t);
            }
            // Lists, dicts, sets.
            b']' => {
                let l = m.new_node(Kind::List, Vec::new())?;
                m.stack.push(l);
            }
            b'l' => {
                let items = m.pop_mark()?;
                let l = m.new_node(Kind::List, items)?;
                m.stack.push(l);
            }
            b'a' => {
                let v = m.pop()?;
                m.extend_top(Kind::List, vec![v])?;
            }
            b'e' => {
                let items = m.pop_mark()?;
                m.extend_top(Kind::List, items)?;
            }
            b'}' => {
                let d = m.new_node(Kind::Dict, Vec::new())?;
                m.stack.push(d);
            }
            b'd' => {
                let items = m.pop_mark()?;
                let d = m.new_node(Kind::Dict, items)?;
                m.stack.push(d);
            }
            b's' => {
                let v = m.pop()?;
                let k = m.pop()?;
                m.extend_top(Kind::Dict, vec![k, v])?;
            }
            b'u' => {
                let items = m.pop_mark()?;
                m.extend_top(Kind::Dict, items)?;
            }
            0x8f => {
                let s = m.new_node(Kind::Set, Vec::new())?;
                m.stack.push(s);
            }
            0x91 => {
                let items = m.pop_mark()?;
                let s = m.new_node(Kind::Other, items)?;
                m.stack.push(s);
            }
            0x90 => {
                let items = m.pop_mark()?;
                m.extend_top(Kind::Set, items)?;
            }
            // Globals and reductions.
            b'c' => {
                c.line()?;
                c.line()?;
                m.stack.push(Sym::Leaf);
            }
            0x93 => {
                for _ in 0..2 {
                    if let Sym::Node(_) = m.pop_resolve()? {
                        return Err(PickleError::TypeMismatch);
                    }
                }
                m.stack.push(Sym::Leaf);
            }
            b'R' => {
                // Arguments copied out of the memo, then (for set/list/frozenset/bytearray)
                // the first argument copied again; the result holds at most the arguments.
                let args = m.pop_resolve()?;
                m.pop_resolve()?;
                let Sym::Node(a) = args else { return Err(PickleError::TypeMismatch) };
                let first = m.nodes.get(a).and_then(|n| n.children.last().copied());
                let inner = match first {
                    Some(f) => {
                        let t = m.deref(f)?;
                        m.copy(t)?
                    }
                    None => Sym::Leaf,
                };
                let r = m.new_node(Kind::Other, vec![args, inner])?;
                m.stack.push(r);
            }
            b'i' => {
                c.line()?;
                c.line()?;
                m.pop_mark()?;
                let d = m.new_node(Kind::Dict, Vec::new())?;
                m.stack.push(d);
            }
            b'o' => {
                m.pop_mark()?;
                m.pop()?;
                let d = m.new_node(Kind::Dict, Vec::new())?;
                m.stack.push(d);
            }
            0x81 => {
                m.pop()?;
                m.pop()?;
                let d = m.new_node(Kind::Dict, Vec::new())?;
                m.stack.push(d);
            }
            0x92 => {
                m.pop()?;
                m.pop()?;
                m.pop()?;
                let d = m.new_node(Kind::Dict, Vec::new())?;
                m.stack.push(d);
            }
            b'b' => {
                let state = m.pop()?;
                m.pop()?;
                m.stack.push(state);
            }
            other => return Err(PickleError::Unsupported(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::arithmetic_side_effects)]
    use super::*;

    fn nested_lists(n: usize) -> Vec<u8> {
        let mut v = vec![0x80, 3];
        v.extend(std::iter::repeat_n(b']', n));
        v.extend(std::iter::repeat_n(b'a', n - 1));
        v.push(b'.');
        v
    }

    #[test]
    fn shallow_values_pass() {
        // pickle.dumps({"a": [1, 2, "x"], "b": (None, True)}, protocol=4)
        let p = b"\x80\x04\x95\x1f\x00\x00\x00\x00\x00\x00\x00}\x94(\x8c\x01a\x94]\x94(K\x01K\x02\x8c\x01x\x94e\x8c\x01b\x94N\x88\x86\x94u.";
        assert!(check(p).is_ok());
        assert!(check(&nested_lists(150)).is_ok());
    }

    #[test]
    fn deep_and_exploding_pickles_are_refused() {
        assert_eq!(check(&nested_lists(100_000)), Err(PickleError::TooDeep));
        // x0 = []; x_{k+1} = (x_k, x_k) through the memo: 2^60 values once expanded.
        let mut p = vec![0x80, 4, b']', 0x94];
        for k in 0..60u8 {
            p.extend_from_slice(&[b'h', k, b'h', k, 0x86, 0x94]);
        }
        p.extend_from_slice(&[b'h', 60, b'.']);
        assert_eq!(check(&p), Err(PickleError::TooLarge));
        assert_eq!(check(b"\x80\x04]\x94h\x00a."), Err(PickleError::Recursive));
        assert_eq!(check(b"\x80\x04]"), Err(PickleError::Truncated));
        assert_eq!(check(b"\x80\x04Q."), Err(PickleError::Unsupported(b'Q')));
        assert_eq!(check(b"a."), Err(PickleError::StackUnderflow));
    }
}
