//! Bytes a faulty peer writes into the lock words (in-process: the words of an anonymous
//! shared segment written through the mapping). The cross-process suite repeats this with a
//! forked writer and random values.

use std::time::Duration;

use ipc_lock::{Mutex, RwLock, TryLockError};
use ipc_shm::Shared;

/// Write `bytes` at `offset` into the object of `s` through a second mapping of its segment,
/// as a peer process ignoring the protocol would (never through the lock's own atomics).
fn poke<T: ipc_shm::ShmSafe>(s: &Shared<T>, offset: usize, bytes: &[u8]) {
    let base = s.shm().as_ptr().as_ptr() as usize;
    let obj = std::ptr::from_ref::<T>(s) as usize;
    let fd = std::os::fd::AsFd::as_fd(s.shm()).try_clone_to_owned().unwrap();
    let mut peer = ipc_shm::Shm::from_fd(fd).unwrap();
    peer.write_at(obj - base + offset, bytes).unwrap();
}

/// The 64-bit state of a mutex, or the writer word of an rwlock: offset 0 of each (the
/// `#[repr(C)]` layouts in their module docs).
const STATE: usize = 0;

/// Reader slot `i` of an rwlock: after the writer mutex (16 bytes) and two u32s.
fn slot(i: usize) -> usize {
    24 + 8 * i
}

fn poke_word<T: ipc_shm::ShmSafe>(s: &Shared<T>, offset: usize, value: u64) {
    poke(s, offset, &value.to_ne_bytes());
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
        poke_word(&s, STATE, bad);
        match s.try_lock_for(Duration::from_millis(50)) {
            Err(TryLockError::Corrupted { word }) => assert_eq!(word, bad),
            other => panic!("{bad:#x}: expected Corrupted, got {other:?}"),
        }
        assert!(matches!(s.try_lock(), Err(TryLockError::Corrupted { .. })));
        assert!(s.lock().is_err());
        assert_eq!(s.raw().word_value(), bad, "the word was changed");
    }
    poke_word(&s, STATE, 1 << 30);
    assert!(matches!(s.try_lock(), Err(TryLockError::NotRecoverable)));
    poke_word(&s, STATE, 0);
    assert!(s.try_lock().is_ok());
    // A 32-bit write into the low half alone (a peer with the wrong layout).
    poke(&s, STATE, &me.to_ne_bytes());
    assert!(matches!(s.try_lock(), Err(TryLockError::Corrupted { .. })));
}

#[test]
fn our_own_id_in_the_word_times_out() {
    let s = Shared::anonymous(Mutex::new(0u64)).unwrap();
    let me = ipc_shm::liveness::current().unwrap().get();
    poke_word(&s, STATE, ipc_lock::owner_word(me));
    assert!(matches!(s.try_lock_for(Duration::from_millis(30)), Err(TryLockError::TimedOut)));
    assert!(matches!(s.try_lock(), Err(TryLockError::WouldBlock)));
}

#[test]
fn forged_reader_slots_are_waited_on_never_reclaimed() {
    let s = Shared::anonymous(RwLock::new(0u64)).unwrap();
    // A slot with garbage owner bits and a count: liveness says Unknown, which is never
    // recovered: the writer waits until its deadline and leaves the slot as it was.
    let garbage = (0xdead_beef_u64 << 32) | 3;
    poke_word(&s, slot(5), garbage);
    assert!(matches!(s.try_write_for(Duration::from_millis(30)), Err(TryLockError::TimedOut)));
    assert_eq!(s.raw().slot_value(5) & !(1 << 31), garbage);
    poke_word(&s, slot(5), 0);
    // A slot naming a live process (us): the writer waits, then times out.
    let me = u64::from(ipc_shm::liveness::current().unwrap().get());
    poke_word(&s, slot(9), (me << 32) | 1);
    assert!(matches!(s.try_write_for(Duration::from_millis(30)), Err(TryLockError::TimedOut)));
    poke_word(&s, slot(9), 0);
    // Garbage in the writer word.
    poke_word(&s, STATE, u64::MAX);
    assert!(matches!(s.try_read(), Err(TryLockError::Corrupted { .. })));
    assert!(matches!(s.try_write(), Err(TryLockError::Corrupted { .. })));
    poke_word(&s, STATE, 0);
    assert!(s.try_read().is_ok());
}
