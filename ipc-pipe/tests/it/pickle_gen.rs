//! A generator of random pickles, opcode by opcode, that keeps a model of serde-pickle's
//! stack so most of what it writes is evaluated to the end (containers filled through memo
//! references, copies by DUP, GET and MEMOIZE of references, marks left open, REDUCE of the
//! globals serde-pickle knows). `hostile` biases it towards the copies and large payloads
//! that multiply memory.

use ipc_testkit::fault::Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum K {
    Scalar,
    Str,
    List,
    Dict,
    Set,
    Tuple,
    FrozenSet,
    Global,
}

pub(crate) struct Gen {
    rng: Rng,
    out: Vec<u8>,
    /// The stack of the machine, one vector per open MARK level (the last is the top).
    levels: Vec<Vec<K>>,
    memo: Vec<(u32, K)>,
    hostile: bool,
}

impl Gen {
    pub(crate) fn new(seed: u64, hostile: bool) -> Gen {
        Gen {
            rng: Rng::new(seed),
            out: vec![0x80, 4],
            levels: vec![Vec::new()],
            memo: Vec::new(),
            hostile,
        }
    }

    fn top(&mut self) -> &mut Vec<K> {
        if self.levels.is_empty() {
            self.levels.push(Vec::new());
        }
        let last = self.levels.len() - 1;
        &mut self.levels[last]
    }

    fn push(&mut self, k: K) {
        self.top().push(k);
    }

    fn len_arg(&mut self) -> usize {
        let r = self.rng.below(100);
        if self.hostile && r < 20 {
            self.rng.range(16 << 10, 256 << 10) as usize
        } else if r < 5 {
            self.rng.range(1000, 20_000) as usize
        } else {
            self.rng.below(60) as usize
        }
    }

    fn scalar(&mut self) {
        match self.rng.below(16) {
            0 => self.out.push(b'N'),
            1 => self.out.push(0x88),
            2 => self.out.extend_from_slice(&[b'K', self.rng.below(256) as u8]),
            3 => {
                self.out.push(b'J');
                self.out.extend_from_slice(&(self.rng.next_u64() as u32).to_le_bytes());
            }
            4 => {
                self.out.push(b'G');
                self.out.extend_from_slice(&(self.rng.below(1000) as f64 / 7.0).to_be_bytes());
            }
            5 => {
                let n = self.rng.below(30) as usize;
                self.out.extend_from_slice(&[0x8a, n as u8]);
                for _ in 0..n {
                    self.out.push(self.rng.below(256) as u8);
                }
            }
            6 => {
                let n = self.rng.below(40) as usize;
                self.out.push(b'I');
                if self.rng.chance(1, 3) {
                    self.out.push(b'-');
                }
                self.out.push(b'1');
                for _ in 0..n.min(17) {
                    self.out.push(b'0' + self.rng.below(10) as u8);
                }
                self.out.push(b'\n');
            }
            7 => {
                let n = self.rng.below(200) as usize;
                self.out.extend_from_slice(b"L9");
                for _ in 0..n {
                    self.out.push(b'0' + self.rng.below(10) as u8);
                }
                self.out.extend_from_slice(b"L\n");
            }
            8 => self.out.extend_from_slice(b"F1.25e3\n"),
            9 => {
                let n = self.len_arg();
                self.out.push(b'B');
                self.out.extend_from_slice(&(n as u32).to_le_bytes());
                self.out.extend(std::iter::repeat_n(b'b', n));
            }
            10 | 11 => {
                let n = self.len_arg().min(255);
                self.out.extend_from_slice(&[0x8c, n as u8]);
                self.out.extend(std::iter::repeat_n(b's', n));
                self.push(K::Str);
                return;
            }
            12 => {
                let n = self.len_arg();
                self.out.push(b'X');
                self.out.extend_from_slice(&(n as u32).to_le_bytes());
                self.out.extend(std::iter::repeat_n(b'x', n));
                self.push(K::Str);
                return;
            }
            13 => {
                // raw-unicode-escape: bytes above 0x7f become two-byte chars.
                let n = self.len_arg();
                self.out.push(b'V');
                for i in 0..n {
                    self.out.push(if i % 3 == 0 { 0xe9 } else { b'v' });
                }
                self.out.extend_from_slice(b"\\u20ac\n");
                self.push(K::Str);
                return;
            }
            14 => {
                let n = self.len_arg();
                self.out.extend_from_slice(b"S'");
                for _ in 0..n {
                    self.out.extend_from_slice(b"a\\x41");
                }
                self.out.extend_from_slice(b"'\n");
            }
            _ => {
                let n = self.len_arg().min(255);
                self.out.extend_from_slice(&[b'C', n as u8]);
                self.out.extend(std::iter::repeat_n(b'c', n));
            }
        }
        self.push(K::Scalar);
    }

    /// MEMOIZE: the id is the memo's size (as in serde-pickle and CPython).
    fn memoize(&mut self, k: K) {
        let id = self.memo.len() as u32;
        self.memo.retain(|&(i, _)| i != id);
        self.memo.push((id, k));
    }

    fn memo_id(&mut self) -> Option<(u32, K)> {
        if self.memo.is_empty() {
            return None;
        }
        let i = self.rng.below(self.memo.len() as u64) as usize;
        Some(self.memo[i])
    }

    /// One step; returns false when nothing applied.
    fn step(&mut self) {
        let top_len = self.top().len();
        let top = self.top().last().copied();
        match self.rng.below(if self.hostile { 32 } else { 26 }) {
            0..=5 => self.scalar(),
            6 => {
                self.out.push(b'(');
                self.levels.push(Vec::new());
            }
            7 => {
                let (op, k) = match self.rng.below(4) {
                    0 => (b']', K::List),
                    1 => (b'}', K::Dict),
                    2 => (0x8f, K::Set),
                    _ => (b')', K::Tuple),
                };
                self.out.push(op);
                self.push(k);
            }
            8 if self.levels.len() > 1 => {
                let items = self.levels.pop().unwrap();
                let (op, k) = match self.rng.below(4) {
                    0 => (b'l', K::List),
                    1 => (b't', K::Tuple),
                    2 => (b'd', K::Dict),
                    _ => (0x91, K::FrozenSet),
                };
                let _ = items;
                self.out.push(op);
                self.push(k);
            }
            9 if top_len >= 1 => {
                let n = (self.rng.below(3) as usize + 1).min(top_len);
                for _ in 0..n {
                    self.top().pop();
                }
                self.out.push(0x84 + n as u8);
                self.push(K::Tuple);
            }
            10 if top_len >= 2 && self.top()[top_len - 2] == K::List => {
                self.top().pop();
                self.out.push(b'a');
            }
            11 if top_len >= 3 && self.top()[top_len - 3] == K::Dict => {
                self.top().pop();
                self.top().pop();
                self.out.push(b's');
            }
            12 if self.levels.len() > 1 => {
                let outer = self.levels[self.levels.len() - 2].last().copied();
                let op = match outer {
                    Some(K::List) => b'e',
                    Some(K::Dict) => b'u',
                    Some(K::Set) => 0x90,
                    _ => return,
                };
                self.levels.pop();
                self.out.push(op);
            }
            13 | 14 if top.is_some() => {
                let k = top.unwrap_or(K::Scalar);
                self.out.push(0x94);
                self.memoize(k);
            }
            15 | 16 => {
                if let Some((id, k)) = self.memo_id() {
                    if id < 256 {
                        self.out.extend_from_slice(&[b'h', id as u8]);
                    } else {
                        self.out.push(b'j');
                        self.out.extend_from_slice(&id.to_le_bytes());
                    }
                    self.push(k);
                }
            }
            17 if top.is_some() => {
                self.out.push(b'2');
                self.push(top.unwrap_or(K::Scalar));
            }
            18 if top.is_some() => {
                self.out.push(b'0');
                self.top().pop();
            }
            19 if self.levels.len() > 1 && self.rng.chance(1, 3) => {
                self.out.push(b'1');
                self.levels.pop();
            }
            20 => {
                // set([...]) / list([...]) / frozenset([...]) through REDUCE.
                let (global, k): (&[u8], K) = match self.rng.below(3) {
                    0 => (b"c__builtin__\nset\n", K::Set),
                    1 => (b"cbuiltins\nlist\n", K::List),
                    _ => (b"c__builtin__\nfrozenset\n", K::FrozenSet),
                };
                self.out.extend_from_slice(global);
                self.out.extend_from_slice(b"(K\x01K\x02l\x85R");
                self.push(k);
            }
            21 if top_len >= 2 => {
                // NEWOBJ / BUILD.
                self.top().pop();
                self.top().pop();
                if self.rng.chance(1, 2) {
                    self.out.push(0x81);
                    self.push(K::Dict);
                } else {
                    self.out.push(b'b');
                    self.push(K::Scalar);
                }
            }
            22 if top.is_some() => {
                // PUT / GET with text ids.
                let k = top.unwrap_or(K::Scalar);
                let id = 1000 + self.rng.below(50) as u32;
                self.out.extend_from_slice(format!("p{id}\n").as_bytes());
                self.memo.retain(|&(i, _)| i != id);
                self.memo.push((id, k));
                if self.rng.chance(1, 2) {
                    self.out.extend_from_slice(format!("g{id}\n").as_bytes());
                    self.push(k);
                }
            }
            23 => {
                self.out.extend_from_slice(b"\x8c\x08builtins\x8c\x03set\x93");
                self.push(K::Global);
            }
            // Hostile: copies.
            24..=27 if top.is_some() => {
                let n = self.rng.range(1, 40);
                for _ in 0..n {
                    self.out.push(b'2');
                    self.push(top.unwrap_or(K::Scalar));
                }
            }
            28..=31 => {
                if let Some((id, k)) = self.memo_id().filter(|m| m.0 < 256) {
                    let n = self.rng.range(1, 60);
                    for _ in 0..n {
                        self.out.extend_from_slice(&[b'h', id as u8]);
                        self.push(k);
                        if self.rng.chance(1, 4) {
                            self.out.push(0x94);
                            self.memoize(k);
                        }
                    }
                }
            }
            _ => self.scalar(),
        }
    }

    /// A pickle of about `steps` opcodes.
    pub(crate) fn pickle(mut self, steps: usize) -> Vec<u8> {
        for _ in 0..steps {
            self.step();
        }
        if self.top().is_empty() {
            self.out.push(b'N');
        }
        self.out.push(b'.');
        self.out
    }
}
