//! Typed messages with postcard (feature `serde`).

use std::time::Duration;

use ipc_pipe::{Error, pipe, simplex};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Job {
    id: u64,
    name: String,
    data: Vec<u8>,
    tags: Option<Vec<String>>,
}

#[test]
fn values_roundtrip_over_pipes() {
    let job =
        Job { id: 7, name: "resize".into(), data: vec![1; 70_000], tags: Some(vec!["a".into()]) };
    let (mut a, mut b) = pipe().unwrap();
    a.send_value(&job).unwrap();
    assert_eq!(b.recv_value::<Job>().unwrap(), job);
    b.send_value(&(1u8, "two", [3.0f64; 2])).unwrap();
    let got: (u8, String, [f64; 2]) = a.recv_value_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(got, (1, "two".to_owned(), [3.0; 2]));
    let (mut tx, mut rx) = simplex().unwrap();
    tx.send_value(&job).unwrap();
    assert_eq!(rx.recv_value::<Job>().unwrap(), job);
}

#[test]
fn bytes_that_are_not_the_type_are_a_codec_error() {
    let (mut a, mut b) = pipe().unwrap();
    a.send(&[0xff; 3]).unwrap();
    let e = b.recv_value::<Job>().unwrap_err();
    assert!(matches!(e, Error::Codec { .. }), "{e}");
    // A huge claimed length inside the message allocates nothing unreasonable.
    a.send(&[0xff, 0xff, 0xff, 0xff, 0x0f]).unwrap();
    assert!(matches!(b.recv_value::<Vec<u64>>(), Err(Error::Codec { .. })));
}
