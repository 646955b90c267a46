//! Every error's message: operation, object and cause in one line (`--nocapture` prints them).

use ipc_lock::{Error, FileLock, LockError, Mutex, NamedMutex, TryLockError};

fn check(msg: String, wants: &[&str]) {
    println!("{msg}");
    assert!(!msg.contains('\n'), "one line: {msg}");
    for w in wants {
        assert!(msg.contains(w), "{msg:?} lacks {w:?}");
    }
}

#[test]
fn every_message_names_operation_object_and_cause() {
    let liveness = || Box::new(ipc_shm::Error::NotFound { op: "open", name: "reg".into() });
    let lock: Vec<(LockError<()>, &[&str])> = vec![
        (LockError::OwnerDied(()), &["lock", "died holding it"]),
        (LockError::NotRecoverable, &["lock", "not recoverable"]),
        (LockError::Corrupted { word: 0xbad }, &["lock", "corrupted lock word 0xbad"]),
        (LockError::TooManyReaders, &["lock", "reader table is full"]),
        (LockError::Liveness(liveness()), &["lock", "no owner id", "not found"]),
    ];
    for (e, wants) in lock {
        check(e.to_string(), wants);
        check(Error::from(e).to_string(), wants);
    }
    let try_lock: Vec<(TryLockError<()>, &[&str])> = vec![
        (TryLockError::WouldBlock, &["try lock", "held by a live owner"]),
        (TryLockError::TimedOut, &["timed out"]),
        (TryLockError::OwnerDied(()), &["try lock", "died holding it"]),
        (TryLockError::NotRecoverable, &["try lock", "not recoverable"]),
        (TryLockError::Corrupted { word: 1 }, &["try lock", "corrupted"]),
        (TryLockError::TooManyReaders, &["try lock", "reader table"]),
        (TryLockError::Liveness(liveness()), &["try lock", "no owner id"]),
    ];
    for (e, wants) in try_lock {
        check(e.to_string(), wants);
        check(Error::from(e).to_string(), wants);
    }
    let e = NamedMutex::<u64>::open("no-such-mutex").unwrap_err();
    check(e.to_string(), &["open mutex \"no-such-mutex\"", "not found"]);
    let e = NamedMutex::<u64>::create("/mutex", 0).unwrap_err();
    check(e.to_string(), &["create mutex \"/mutex\"", "drop the leading '/'"]);
    let e = FileLock::open("/no/such/dir/x.lock").unwrap_err();
    check(e.to_string(), &["open file lock \"/no/such/dir/x.lock\"", "No such file"]);
    check(ipc_lock::NotOwner.to_string(), &["unlock re-entrant mutex", "does not hold it"]);
    // `?` from a lock into the crate's Error (the guard is dropped), and from there anywhere.
    let m = Mutex::new(1u64);
    let f = || -> Result<u64, Error> { Ok(*m.try_lock()?) };
    assert_eq!(f().unwrap(), 1);
    let _held = m.lock().unwrap();
    check(f().unwrap_err().to_string(), &["try lock: held by a live owner"]);
    let g =
        || -> Result<u64, Box<dyn std::error::Error>> { Ok(*m.try_lock().map_err(Error::from)?) };
    check(g().unwrap_err().to_string(), &["try lock"]);
}
