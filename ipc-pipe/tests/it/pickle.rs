//! Python pickles (feature `pickle`): Python objects both ways with the real CPython, and
//! hostile pickles refused before serde-pickle sees them.

use std::collections::BTreeMap;

use ipc_pipe::{Error, Listener, pipe};
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
    assert!(matches!(e, Error::Codec { .. }) && e.to_string().contains("deeper"), "{e}");
    // The deepest accepted nesting decodes fine on a test thread's stack.
    a.send(&nested_lists(199)).unwrap();
    assert!(b.recv_pickle::<Value>().is_ok());
    // Exponential expansion through the memo.
    let mut p = vec![0x80, 4, b']', 0x94];
    for k in 0..60u8 {
        p.extend_from_slice(&[b'h', k, b'h', k, 0x86, 0x94]);
    }
    p.extend_from_slice(&[b'h', 60, b'.']);
    a.send(&p).unwrap();
    let e = b.recv_pickle::<Value>().unwrap_err();
    assert!(e.to_string().contains("too many values"), "{e}");
    // Garbage.
    a.send(b"\x80\x04\x95garbage").unwrap();
    assert!(matches!(b.recv_pickle::<Value>(), Err(Error::Codec { .. })));
    // The connection is fine afterwards.
    a.send_pickle(&vec![1, 2]).unwrap();
    assert_eq!(b.recv_pickle::<Vec<i32>>().unwrap(), vec![1, 2]);
}
