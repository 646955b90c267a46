//! Python pickles (feature `pickle`): Python objects both ways with the real CPython, and
//! hostile pickles refused before serde-pickle sees them.

use std::collections::BTreeMap;

use ipc_pipe::{Error, Listener, PickleError, pipe};
use serde::{Deserialize, Serialize};
use serde_pickle::Value;

use crate::python::Py;
use crate::util::{TempDir, python};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Reply {
    status: String,
    ids: Vec<i64>,
    scores: BTreeMap<String, f64>,
    note: Option<String>,
}

const PY_PICKLER: &str = r#"
import sys
from multiprocessing.connection import Client
c = Client(sys.argv[1], authkey=b'pk')
shared = 'shared-string'
c.send({'name': 'job', 'ids': [1, 2, 3], 'ok': True, 'ratio': 0.5,
        'nested': {'a': [None, shared, shared]}, 'blob': b'\x00\x01',
        'rows': [{'k': shared, 'v': i} for i in range(50)]})
r = c.recv()
assert r == {'status': 'done', 'ids': [3, 2, 1], 'scores': {'a': 1.5, 'b': -2.0}, 'note': None}, r
c.send(['ack', len(r)])
"#;

#[test]
fn python_objects_both_ways() {
    if !python() {
        eprintln!("skipped: no python3");
        return;
    }
    let dir = TempDir::new("pickle");
    let path = dir.join("s");
    let l = Listener::bind(&path, Some(b"pk")).unwrap();
    let mut py = Py::spawn(PY_PICKLER, &[path.to_str().unwrap()]);
    let mut c = l.accept().unwrap();
    let v: Value = c.recv_pickle().unwrap();
    let Value::Dict(d) = v else { panic!("not a dict: {v:?}") };
    let get = |k: &str| d.get(&serde_pickle::HashableValue::String(k.into())).cloned();
    assert_eq!(get("name"), Some(Value::String("job".into())));
    assert_eq!(get("ids"), Some(Value::List(vec![Value::I64(1), Value::I64(2), Value::I64(3)])));
    assert_eq!(get("ok"), Some(Value::Bool(true)));
    assert_eq!(get("ratio"), Some(Value::F64(0.5)));
    assert_eq!(get("blob"), Some(Value::Bytes(vec![0, 1])));
    let Some(Value::List(rows)) = get("rows") else { panic!("rows") };
    assert_eq!(rows.len(), 50);
    let reply = Reply {
        status: "done".into(),
        ids: vec![3, 2, 1],
        scores: [("a".to_owned(), 1.5), ("b".to_owned(), -2.0)].into_iter().collect(),
        note: None,
    };
    c.send_pickle(&reply).unwrap();
    let ack: (String, i64) = c.recv_pickle().unwrap();
    assert_eq!(ack, ("ack".to_owned(), 4));
    py.assert_ok();
}

#[test]
fn a_set_of_nans_decodes_without_a_panic() {
    // Found by the fuzz target: serde_pickle::value_from_slice panics on a set holding NaNs
    // (its BTreeSet::from_iter sorts, and NaN has no total order); recv_pickle's path
    // (Deserialize into the caller's type) builds sets by insertion and does not.
    let mut p = vec![0x80, 4, 0x8f, b'('];
    for i in 0..28 {
        let f = if i % 4 == 0 { f64::NAN } else { f64::from(i) };
        p.push(b'G');
        p.extend_from_slice(&f.to_be_bytes());
    }
    p.extend_from_slice(&[0x90, b'.']);
    let (mut a, mut b) = pipe().unwrap();
    a.send(&p).unwrap();
    let Value::List(items) = b.recv_pickle::<Value>().unwrap() else { panic!("not a list") };
    assert_eq!(items.len(), 28);
}

#[test]
fn pickles_roundtrip_between_rust_processes() {
    let (mut a, mut b) = pipe().unwrap();
    let r =
        Reply { status: "x".into(), ids: vec![], scores: BTreeMap::new(), note: Some("n".into()) };
    a.send_pickle(&r).unwrap();
    assert_eq!(b.recv_pickle::<Reply>().unwrap(), r);
}

fn nested_lists(n: usize) -> Vec<u8> {
    let mut v = vec![0x80, 3];
    v.extend(std::iter::repeat_n(b']', n));
    v.extend(std::iter::repeat_n(b'a', n - 1));
    v.push(b'.');
    v
}

#[test]
fn hostile_pickles_are_refused_without_crashing() {
    let (mut a, mut b) = pipe().unwrap();
    // 100 000 nested lists: serde-pickle alone overflows the stack on this.
    a.send(&nested_lists(100_000)).unwrap();
    let e = b.recv_pickle::<Value>().unwrap_err();
    assert!(matches!(e, Error::PickleRefused { reason: PickleError::TooDeep, .. }), "{e}");
    // The deepest accepted nesting decodes fine on a test thread's stack.
    a.send(&nested_lists(199)).unwrap();
    assert!(b.recv_pickle::<Value>().is_ok());
    // Exponential expansion through the memo (x_{k+1} = (x_k, x_k)).
    let mut p = vec![0x80, 4, b']', 0x94];
    for k in 0..60u8 {
        p.extend_from_slice(&[b'h', k, b'h', k, 0x86, 0x94]);
    }
    p.extend_from_slice(&[b'h', 60, b'.']);
    a.send(&p).unwrap();
    // serde-pickle copies an entry out only as often as it was referenced, then fails.
    let e = b.recv_pickle::<Value>().unwrap_err();
    assert!(matches!(e, Error::Codec { .. }) && e.to_string().contains("recursive"), "{e}");
    // Garbage, and a pickle of the wrong type.
    a.send(b"\x80\x04\x95garbage").unwrap();
    let e = b.recv_pickle::<Value>().unwrap_err();
    assert!(matches!(e, Error::PickleRefused { reason: PickleError::Truncated, .. }), "{e}");
    a.send_pickle("text").unwrap();
    let e = b.recv_pickle::<i32>().unwrap_err();
    assert!(matches!(e, Error::Codec { .. }), "{e}");
    assert!(e.to_string().starts_with("recv_pickle on pipe connection: cannot decode"), "{e}");
    // The connection is fine afterwards.
    a.send_pickle(&vec![1, 2]).unwrap();
    assert_eq!(b.recv_pickle::<Vec<i32>>().unwrap(), vec![1, 2]);
}

/// The address-space cap the hostile pickles are decoded under.
const AS_LIMIT: u64 = 2 << 30;

fn cap_address_space(bytes: u64) {
    let lim = libc::rlimit { rlim_cur: bytes, rlim_max: bytes };
    // SAFETY: a valid resource and a valid rlimit value.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &raw const lim) }, 0);
}

/// `\x80\x04`, then `body`, then `.`.
fn proto4(body: &[u8]) -> Vec<u8> {
    let mut v = vec![0x80, 4];
    v.extend_from_slice(body);
    v.push(b'.');
    v
}

/// BINBYTES of `n` bytes of `b'y'`.
fn binbytes(n: u32) -> Vec<u8> {
    let mut v = vec![b'B'];
    v.extend_from_slice(&n.to_le_bytes());
    v.extend(std::iter::repeat_n(b'y', n as usize));
    v
}

/// What CPython 3.11's `pickle.dumps([b"y" * 2**20] * copies, protocol=4)` writes (framing
/// aside): the bytes once, memoised, then a memo reference per further copy, appended 1000
/// at a time.
fn python_shared_bytes(copies: usize) -> Vec<u8> {
    let mut v = vec![b']', 0x94, b'('];
    v.extend(binbytes(1 << 20));
    v.push(0x94);
    for i in 1..copies {
        if i % 1000 == 0 {
            v.extend_from_slice(b"e(");
        }
        v.extend_from_slice(&[b'h', 1]);
    }
    v.push(b'e');
    proto4(&v)
}

/// What CPython writes for a list of `count` distinct short strings at protocol 4: each
/// string memoised, appended 1000 at a time (framing aside). About 13 bytes per item.
pub(crate) fn python_list_of_strings(count: usize) -> Vec<u8> {
    let mut v = vec![b']', 0x94, b'('];
    for i in 0..count {
        if i > 0 && i % 1000 == 0 {
            v.extend_from_slice(b"e(");
        }
        let s = format!("item-{i:07}");
        v.push(0x8c);
        v.push(s.len() as u8);
        v.extend_from_slice(s.as_bytes());
        v.push(0x94);
    }
    v.push(b'e');
    proto4(&v)
}

/// The hostile pickles of the review that found the denial of service, and a few more of
/// the same families; each is at most a few MB on the wire.
fn hostile_pickles() -> Vec<(&'static str, Vec<u8>)> {
    let mut cases = Vec::new();
    // 2M MARKs: serde-pickle allocates a 4 KiB stack per MARK (8 GiB).
    let mut marks = vec![b'('; 2_000_000];
    marks.push(b'N');
    cases.push(("2M MARKs", proto4(&marks)));
    // DUP copies the whole 1 MiB leaf, 3000 times (3 GiB).
    let mut dup = vec![b'('];
    dup.extend(binbytes(1 << 20));
    dup.extend(std::iter::repeat_n(b'2', 3000));
    dup.push(b'l');
    cases.push(("3000 DUPs of 1 MiB bytes", proto4(&dup)));
    // Python's own [b"y" * 2**20] * 3000: memo references copied out at decode (3 GiB).
    cases.push(("python [b'y'*2**20]*3000", python_shared_bytes(3000)));
    // Memoising a memo reference copies its value: 3 bytes per 1 MiB copy.
    let mut memo = binbytes(1 << 20);
    memo.push(0x94);
    for _ in 0..3000 {
        memo.extend_from_slice(&[b'h', 0, 0x94]);
    }
    cases.push(("3000 memo-of-memo copies", proto4(&memo)));
    // The same copies held on the stack by BINGET + DUP (the DUP resolves the reference).
    let mut get_dup = binbytes(1 << 20);
    get_dup.extend_from_slice(&[0x94, b'(']);
    for _ in 0..3000 {
        get_dup.extend_from_slice(&[b'h', 0, b'2']);
    }
    get_dup.push(b'l');
    cases.push(("3000 BINGET+DUP copies", proto4(&get_dup)));
    // A text LONG of 2M digits: quadratic parsing (13 s of CPU).
    let mut long = vec![b'L'];
    long.extend(std::iter::repeat_n(b'7', 2_000_000));
    long.extend_from_slice(b"L\n");
    cases.push(("text LONG of 2M digits", proto4(&long)));
    // A text INT of 2M digits (CPython caps int/str conversions at 4300 digits).
    let mut int = vec![b'I'];
    int.extend(std::iter::repeat_n(b'7', 2_000_000));
    int.push(b'\n');
    cases.push(("text INT of 2M digits", proto4(&int)));
    // A list of 50 000 Nones, DUPed 2000 times (3 GiB of value slots).
    let mut wide = vec![b'('];
    wide.extend(std::iter::repeat_n(b'N', 50_000));
    wide.push(b'l');
    wide.extend(std::iter::repeat_n(b'2', 2000));
    cases.push(("2000 DUPs of a 50k list", proto4(&wide)));
    // Exponential expansion through the memo: x_{k+1} = (x_k, x_k).
    let mut exp = vec![b']', 0x94];
    for k in 0..60u8 {
        exp.extend_from_slice(&[b'h', k, b'h', k, 0x86, 0x94]);
    }
    exp.extend_from_slice(&[b'h', 60]);
    cases.push(("2^60 memo expansion", proto4(&exp)));
    // 100 000 nested lists: serde-pickle overflows the stack.
    cases.push(("100k nested lists", nested_lists(100_000)));
    cases
}

/// One decode in a forked child under [`AS_LIMIT`]: the child reports `refused <µs> <error>`
/// or `decoded <µs>`, then checks the connection still carries the next message.
fn decode_under_cap(what: &str, pickle: Vec<u8>) -> (ipc_testkit::Exit, String) {
    let mut child = ipc_testkit::fork_named(what, move || {
        let (mut a, mut b) = pipe().unwrap();
        let sender = std::thread::spawn(move || {
            a.send(&pickle).unwrap();
            a.send_pickle(&("next", 1)).unwrap();
        });
        // What the child had mapped before the cap (the test binary, its threads' stacks
        // and malloc arenas): the decode has the rest of the 2 GiB.
        let vm = std::fs::read_to_string("/proc/self/status")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmSize:").map(|v| v.trim().to_owned()))
            .unwrap_or_default();
        cap_address_space(AS_LIMIT);
        let t = std::time::Instant::now();
        let r = b.recv_pickle::<Value>();
        let us = t.elapsed().as_micros();
        match r {
            Ok(_) => ipc_testkit::send_line(&format!("decoded {us} us (mapped before: {vm})")),
            Err(e) => {
                ipc_testkit::send_line(&format!("refused {us} us (mapped before: {vm}): {e}"))
            }
        }
        assert_eq!(b.recv_pickle::<(String, i32)>().unwrap(), ("next".to_owned(), 1));
        sender.join().unwrap();
    });
    let line = child.recv_line(std::time::Duration::from_secs(120)).unwrap_or_default();
    (child.join_within(std::time::Duration::from_secs(120)), line)
}

#[test]
fn hostile_pickles_are_refused_under_a_2_gib_address_space_cap() {
    let mut aborted = Vec::new();
    let mut accepted = Vec::new();
    for (what, pickle) in hostile_pickles() {
        let len = pickle.len();
        let (exit, line) = decode_under_cap(what, pickle);
        eprintln!("{what:28} {len:>9} bytes: {exit}; {line}");
        if !exit.success() {
            aborted.push(what);
        } else if !line.starts_with("refused") {
            accepted.push(what);
        }
    }
    assert!(
        aborted.is_empty() && accepted.is_empty(),
        "aborted: {aborted:?}; decoded: {accepted:?}"
    );
}

#[test]
fn random_hostile_pickles_never_abort_under_a_2_gib_cap() {
    // The generator biased towards copies (DUP, GET, MEMOIZE of references) and payloads
    // of up to 256 KiB; each pickle decoded in its own capped child, which must exit
    // normally whether the pickle was refused, failed to decode, or decoded.
    let mut rng = ipc_testkit::fault::seeded("random_hostile_pickles_never_abort");
    let rounds = ipc_testkit::fault::rounds(24, 600);
    let (mut refused, mut decoded) = (0, 0);
    let (mut slowest_refusal, mut slowest_decode) = (0u128, 0u128);
    for round in 0..rounds {
        let seed = rng.next_u64();
        let steps = rng.range(200, 3000) as usize;
        let pickle = crate::pickle_gen::Gen::new(seed, true).pickle(steps);
        let len = pickle.len();
        let (exit, line) = decode_under_cap("random hostile pickle", pickle);
        assert!(
            exit.success(),
            "round {round} (generator seed {seed}, {steps} steps, {len} bytes): {exit}"
        );
        let us: u128 = line.split(' ').nth(1).and_then(|t| t.parse().ok()).unwrap_or(0);
        if line.starts_with("refused") {
            refused += 1;
            slowest_refusal = slowest_refusal.max(us);
        } else {
            decoded += 1;
            slowest_decode = slowest_decode.max(us);
        }
    }
    eprintln!(
        "{rounds} random hostile pickles: {refused} refused or undecodable, {decoded} decoded; slowest refusal {slowest_refusal} us, slowest decode {slowest_decode} us; 0 aborts"
    );
}

#[test]
fn a_10_mib_list_of_strings_decodes_under_the_cap() {
    let count = 10 * (1 << 20) / 15;
    let pickle = python_list_of_strings(count);
    let len = pickle.len();
    let (exit, line) = decode_under_cap("10 MiB list of strings", pickle);
    eprintln!("10 MiB list of {count} strings, {len} bytes: {exit}; {line}");
    assert!(exit.success() && line.starts_with("decoded"), "{exit}; {line}");
}

/// serde-pickle's peak memory decoding `p`, both ways `recv_pickle` can (a `Value` through
/// `Deserialize`, and its own `value_from_slice`).
fn serde_pickle_peak(p: &[u8]) -> u64 {
    let (_, a) = crate::alloc_track::peak_live(|| {
        serde_pickle::from_slice::<Value>(p, serde_pickle::DeOptions::new()).map(drop)
    });
    let (_, b) = crate::alloc_track::peak_live(|| {
        serde_pickle::value_from_slice(p, serde_pickle::DeOptions::new()).map(drop)
    });
    a.max(b)
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(crate::util::cases(300, 5000)))]

    /// For random pickles written opcode by opcode, whenever the guard accepts one, its
    /// estimate bounds what serde-pickle really holds at its peak (measured by the counting
    /// allocator).
    #[test]
    fn the_guard_estimate_bounds_serde_pickles_peak_memory(
        seed in proptest::prelude::any::<u64>(),
        steps in 1usize..400,
        hostile in proptest::prelude::any::<bool>(),
    ) {
        let p = crate::pickle_gen::Gen::new(seed, hostile).pickle(steps);
        if let Ok(estimate) = ipc_pipe::pickle_guard::check_with_limit(&p, 256 << 20) {
            let peak = serde_pickle_peak(&p);
            proptest::prop_assert!(
                peak <= estimate,
                "peak {} > estimate {} for {} bytes", peak, estimate, p.len()
            );
        }
    }
}

const PY_SHAPES: &str = r#"
import pickle, sys
n = 200_000
shapes = {
    'strings': [f'item{i:06d}' for i in range(n)],
    'long strings': [f'item{i:06d}' * 4 for i in range(n // 3)],
    'bytes': b'x' * (4 << 20),
    'ints': list(range(n)),
    'floats': [i * 0.5 for i in range(n)],
    'dict str->int': {f'k{i}': i for i in range(n // 2)},
    'set of ints': set(range(n // 2)),
    'tuples': [(i, str(i)) for i in range(n // 4)],
    'nested lists': [[i, [i]] for i in range(n // 4)],
    'records': [{'id': i, 'name': f'n{i}', 'ok': True} for i in range(n // 10)],
    'shared rows': [[1, 2, 3]] * n,
}
for name, obj in shapes.items():
    with open(f'{sys.argv[1]}/{name}', 'wb') as f:
        pickle.dump(obj, f, protocol=4)
"#;

#[test]
fn what_python_sends_fits_the_default_limit_and_the_estimate_bounds_the_peak() {
    // The shapes Python programs send, pickled by CPython itself: each is admitted by the
    // default limit, and its estimate bounds serde-pickle's real peak (printed side by side).
    if !python() {
        eprintln!("skipped: no python3");
        return;
    }
    let dir = TempDir::new("shapes");
    let mut py = Py::spawn(PY_SHAPES, &[dir.path().to_str().unwrap()]);
    py.assert_ok();
    let mut cases: Vec<(String, Vec<u8>)> = dir
        .entries()
        .into_iter()
        .map(|name| {
            let p = std::fs::read(dir.join(&name)).unwrap();
            (name, p)
        })
        .collect();
    cases.push(("rust: 1 MiB bytes".to_owned(), proto4(&binbytes(1 << 20))));
    for (what, p) in cases {
        let default = ipc_pipe::pickle_guard::check(&p);
        // 200 000 references to one small list: serde-pickle copies it out for each (over
        // 100 bytes of memory per byte); refused unless the limit is raised.
        if what == "shared rows" {
            assert!(matches!(default, Err(PickleError::TooLarge { .. })), "{default:?}");
        } else if let Err(e) = default {
            panic!("{what}: refused by default: {e}");
        }
        let estimate = ipc_pipe::pickle_guard::check_with_limit(&p, 1 << 30).unwrap();
        let peak = serde_pickle_peak(&p);
        let len = p.len() as f64;
        eprintln!(
            "{what:18} {:>9} bytes: peak {:>10} ({:5.1}/byte), estimate {:>10} ({:5.1}/byte)",
            p.len(),
            peak,
            peak as f64 / len,
            estimate,
            estimate as f64 / len
        );
        assert!(peak <= estimate, "{what}");
    }
}
