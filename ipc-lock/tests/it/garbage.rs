//! Bytes a faulty peer writes into the lock words (in-process: the words of an anonymous
//! shared segment written through the mapping). The cross-process suite repeats this with a
//! forked writer and random values.

use std::time::Duration;

use ipc_lock::{Mutex, RwLock, TryLockError};
use ipc_shm::Shared;

/// Write the low 32 bits of the mutex state through a second mapping, as a peer process would.
fn write_low_word<T: ipc_shm::ShmSafe>(s: &Shared<T>, value: u32) {
    let base = s.shm().as_ptr().as_ptr() as usize;
    let obj = std::ptr::from_ref::<T>(s) as usize;
    let fd = std::os::fd::AsFd::as_fd(s.shm()).try_clone_to_owned().unwrap();
    let mut peer = ipc_shm::Shm::from_fd(fd).unwrap();
    peer.write_at(obj - base, &value.to_ne_bytes()).unwrap();
}

#[test]
fn corrupted_words_are_typed_errors_never_acquired() {
    let s = Shared::anonymous(Mutex::new(0u64)).unwrap();
    let me = ipc_shm::liveness::current().unwrap().get();
    let other = me ^ 0x10; // some other owner id
    let bad_words = [
        u64::MAX,
        u64::from(u32::MAX),
        1 << 31,
        (1 << 31) | (1 << 30) | ipc_lock::owner_word(me),
        u64::from(me), // an id without its check
        (ipc_lock::owner_word(other) & !0x3fff_ffff) | u64::from(me), // another id's check
        1 << 45,       // check bits, no owner
    ];
    for bad in bad_words {
        s.raw().set_word_value(bad);
        match s.try_lock_for(Duration::from_millis(50)) {
            Err(TryLockError::Corrupted { word }) => assert_eq!(word, bad),
            other => panic!("{bad:#x}: expected Corrupted, got {other:?}"),
        }
        assert!(matches!(s.try_lock(), Err(TryLockError::Corrupted { .. })));
        assert!(s.lock().is_err());
        assert_eq!(s.raw().word_value(), bad, "the word was changed");
    }
    s.raw().set_word_value(1 << 30);
    assert!(matches!(s.try_lock(), Err(TryLockError::NotRecoverable)));
    s.raw().set_word_value(0);
    assert!(s.try_lock().is_ok());
    // A 32-bit write into the low half alone (a peer with the wrong layout).
    write_low_word(&s, me);
    assert!(matches!(s.try_lock(), Err(TryLockError::Corrupted { .. })));
}

#[test]
fn our_own_id_in_the_word_times_out() {
    let s = Shared::anonymous(Mutex::new(0u64)).unwrap();
    let me = ipc_shm::liveness::current().unwrap().get();
    s.raw().set_word_value(ipc_lock::owner_word(me));
    assert!(matches!(s.try_lock_for(Duration::from_millis(30)), Err(TryLockError::TimedOut)));
    assert!(matches!(s.try_lock(), Err(TryLockError::WouldBlock)));
}

#[test]
fn forged_reader_slots_are_waited_on_never_reclaimed() {
    let s = Shared::anonymous(RwLock::new(0u64)).unwrap();
    // A slot with garbage owner bits and a count: liveness says Unknown, which is never
    // recovered: the writer waits until its deadline and leaves the slot as it was.
    let garbage = (0xdead_beef_u64 << 32) | 3;
    s.raw().set_slot_value(5, garbage);
    assert!(matches!(s.try_write_for(Duration::from_millis(30)), Err(TryLockError::TimedOut)));
    assert_eq!(s.raw().slot_value(5) & !(1 << 31), garbage);
    s.raw().set_slot_value(5, 0);
    // A slot naming a live process (us): the writer waits, then times out.
    let me = u64::from(ipc_shm::liveness::current().unwrap().get());
    s.raw().set_slot_value(9, (me << 32) | 1);
    assert!(matches!(s.try_write_for(Duration::from_millis(30)), Err(TryLockError::TimedOut)));
    s.raw().set_slot_value(9, 0);
    // Garbage in the writer word.
    s.raw().set_writer_word(u64::MAX);
    assert!(matches!(s.try_read(), Err(TryLockError::Corrupted { .. })));
    assert!(matches!(s.try_write(), Err(TryLockError::Corrupted { .. })));
    s.raw().set_writer_word(0);
    assert!(s.try_read().is_ok());
}
