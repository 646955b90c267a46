//! Every error's message: operation, object and cause in one line (`--nocapture` prints them).

use ipc_sem::{BarrierError, Error, NamedSemaphore};

fn check(msg: String, wants: &[&str]) {
    println!("{msg}");
    assert!(!msg.contains('\n'), "one line: {msg}");
    for w in wants {
        assert!(msg.contains(w), "{msg:?} lacks {w:?}");
    }
}

#[test]
fn every_message_names_operation_object_and_cause() {
    let shm = || ipc_shm::Error::NotFound { op: "open", name: "reg".into() };
    let all: Vec<(Error, &[&str])> = vec![
        (
            Error::Liveness { op: "acquire", object: "semaphore", source: shm() },
            &["acquire semaphore", "no owner id", "not found"],
        ),
        (
            Error::Overflow { op: "release", object: "bounded semaphore", found: 4, n: 1, max: 4 },
            &["release bounded semaphore", "4 + 1", "maximum 4"],
        ),
        (
            Error::InvalidCount { op: "acquire", object: "semaphore", n: 0, max: 64 },
            &["acquire semaphore", "0 permits", "1..=64"],
        ),
        (
            Error::NotHeld { op: "release", object: "semaphore", n: 2, held: 0 },
            &["release semaphore", "holds 0 of the 2"],
        ),
        (
            Error::Corrupted { op: "acquire", object: "semaphore", what: "count", found: 9 },
            &["acquire semaphore", "corrupted", "count is 0x9"],
        ),
        (
            Error::InvalidArgument { op: "create", object: "barrier", what: "0 parties".into() },
            &["create barrier", "0 parties"],
        ),
    ];
    for (e, wants) in all {
        check(e.to_string(), wants);
    }
    let e = NamedSemaphore::open("/sem").unwrap_err();
    check(e.to_string(), &["open named semaphore \"/sem\"", "drop the leading '/'"]);
    let e = NamedSemaphore::open("no-such-sem").unwrap_err();
    check(e.to_string(), &["open named semaphore \"no-such-sem\"", "No such file"]);
    let n = format!("ipctest-{}-errors-wide", std::process::id());
    let _s = NamedSemaphore::create_with_mode(&n, 0, 0o644).unwrap();
    let e = NamedSemaphore::open(&n).unwrap_err();
    check(e.to_string(), &["open named semaphore", "mode 0o644 grants more than 0o600"]);
    NamedSemaphore::unlink(&n).unwrap();
    for (e, wants) in [
        (BarrierError::Broken, &["wait barrier", "broken"][..]),
        (BarrierError::Timeout, &["wait barrier", "timed out"]),
        (BarrierError::Corrupted { op: "wait", found: 7 }, &["wait barrier", "corrupted", "0x7"]),
        (BarrierError::Unregistered, &["wait barrier", "owner id"]),
    ] {
        check(e.to_string(), wants);
    }
    check(Error::from(BarrierError::Broken).to_string(), &["broken"]);
}
