//! Every error's message: operation, object and cause in one line, with sizes and limits
//! where they apply. The test prints them all so a reviewer reads them (`--nocapture`).

use ipc_queue::{
    Corruption, Error, JoinTimeoutError, Queue, QueueOptions, RecvError, RecvTimeoutError,
    SendError, SendTimeoutError, TryRecvError, TrySendError,
};

fn check(msg: String, wants: &[&str]) {
    println!("{msg}");
    assert!(!msg.contains('\n'), "one line: {msg}");
    for w in wants {
        assert!(msg.contains(w), "{msg:?} lacks {w:?}");
    }
}

#[test]
fn every_message_names_operation_object_and_cause() {
    let c = Corruption::SlotWord { pos: 3, word: 0xdead };
    let too_long = |op: &str| [op.to_owned(), "100 bytes".into(), "limit of 64 bytes".into()];
    let outcomes: Vec<(String, Vec<String>)> = vec![
        (TrySendError::Full.to_string(), vec!["try_send".into(), "full".into()]),
        (TrySendError::Closed.to_string(), vec!["try_send".into(), "closed".into()]),
        (TrySendError::TooLong { len: 100, max: 64 }.to_string(), too_long("try_send").into()),
        (TrySendError::Corrupted(c).to_string(), vec!["corrupted".into(), "position 3".into()]),
        (TrySendError::Unregistered.to_string(), vec!["owner id".into()]),
        (SendError::Closed.to_string(), vec!["send: the queue is closed".into()]),
        (SendError::TooLong { len: 100, max: 64 }.to_string(), too_long("send").into()),
        (SendError::Disconnected.to_string(), vec!["consumer died".into()]),
        (SendError::Corrupted(c).to_string(), vec!["send".into(), "corrupted".into()]),
        (SendError::Unregistered.to_string(), vec!["send".into(), "owner id".into()]),
        (SendTimeoutError::Timeout.to_string(), vec!["send_timeout".into(), "full".into()]),
        (SendTimeoutError::Closed.to_string(), vec!["closed".into()]),
        (
            SendTimeoutError::TooLong { len: 100, max: 64 }.to_string(),
            too_long("send_timeout").into(),
        ),
        (SendTimeoutError::Disconnected.to_string(), vec!["consumer died".into()]),
        (SendTimeoutError::Corrupted(c).to_string(), vec!["corrupted".into()]),
        (SendTimeoutError::Unregistered.to_string(), vec!["owner id".into()]),
        (TryRecvError::Empty.to_string(), vec!["try_recv".into(), "empty".into()]),
        (TryRecvError::Closed.to_string(), vec!["closed".into()]),
        (TryRecvError::Corrupted(c).to_string(), vec!["corrupted".into()]),
        (TryRecvError::Unregistered.to_string(), vec!["owner id".into()]),
        (RecvError::Closed.to_string(), vec!["recv".into(), "closed".into()]),
        (RecvError::Corrupted(c).to_string(), vec!["corrupted".into()]),
        (RecvError::Disconnected.to_string(), vec!["producer died".into()]),
        (RecvError::Unregistered.to_string(), vec!["owner id".into()]),
        (RecvTimeoutError::Timeout.to_string(), vec!["recv_timeout".into(), "deadline".into()]),
        (RecvTimeoutError::Closed.to_string(), vec!["closed".into()]),
        (RecvTimeoutError::Corrupted(c).to_string(), vec!["corrupted".into()]),
        (RecvTimeoutError::Disconnected.to_string(), vec!["producer died".into()]),
        (RecvTimeoutError::Unregistered.to_string(), vec!["owner id".into()]),
        (JoinTimeoutError::Timeout(3).to_string(), vec!["join_timeout".into(), "3 tasks".into()]),
    ];
    for (msg, wants) in outcomes {
        check(msg, &wants.iter().map(String::as_str).collect::<Vec<_>>());
    }
    // Tier 1, provoked for real where we can.
    let e = Queue::open("no-such-queue").unwrap_err();
    check(e.to_string(), &["open queue \"no-such-queue\"", "not found"]);
    let e = Queue::create("my jobs", 4, 8).unwrap_err();
    check(e.to_string(), &["create queue \"my jobs\"", "only A-Z"]);
    let e = Queue::create("/jobs", 4, 8).unwrap_err();
    check(e.to_string(), &["drop the leading '/'"]);
    let e = QueueOptions::new(4, 0).anonymous().unwrap_err();
    check(
        e.to_string(),
        &["create queue \"<anonymous>\"", "invalid configuration", "max_message is 0"],
    );
    let e = QueueOptions::new(0, 8).anonymous().unwrap_err();
    check(e.to_string(), &["capacity is 0, must be 1 to"]);
    check(
        Error::Corrupted { op: "open", name: "jobs".into(), source: c }.to_string(),
        &["open queue \"jobs\"", "corrupted", "slot word"],
    );
    check(
        Error::RoleTaken { op: "attach", name: "jobs".into(), role: "producer", holder: 7 }
            .to_string(),
        &["attach queue \"jobs\"", "producer role", "live owner"],
    );
    check(
        Error::TooManyTaskDone { name: "jobs".into() }.to_string(),
        &["task_done on queue \"jobs\""],
    );
    // A typed queue opened as another type names both types.
    let name = ipc_testkit::unique_name("errors-typed");
    let _q = ipc_queue::TypedQueue::<u64>::create(&name, 4).unwrap();
    let e = ipc_queue::TypedQueue::<[u32; 2]>::open(&name).unwrap_err();
    check(e.to_string(), &["u64", "[u32; 2]"]);
    // A raw zeroed segment opened as a queue: never an object, nobody died.
    let raw = ipc_testkit::unique_name("errors-raw");
    let _seg = ipc_shm::Shm::create(&raw, 1 << 16).unwrap();
    let e = Queue::open(&raw).unwrap_err();
    check(e.to_string(), &["never an object"]);
    // And `?` converts every outcome.
    let q = Queue::anonymous(1, 4).unwrap();
    let f = || -> Result<(), Error> {
        q.try_send(b"12345")?;
        Ok(())
    };
    check(f().unwrap_err().to_string(), &["try_send", "5 bytes", "limit of 4 bytes"]);
    let g = || -> Result<(), Box<dyn std::error::Error>> {
        q.send(b"1")?;
        q.try_send(b"2")?;
        Ok(())
    };
    check(g().unwrap_err().to_string(), &["try_send: the queue is full"]);
}
