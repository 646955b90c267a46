use std::time::Duration;

use ipc_sem::{BoundedSemaphore, Error};
use ipc_shm::Shared;

use crate::poke;

#[test]
fn release_past_max_is_an_error() {
    let s = Shared::anonymous(BoundedSemaphore::new(2).unwrap()).unwrap();
    assert_eq!(s.max_value().unwrap(), 2);
    assert!(matches!(s.release(), Err(Error::Overflow { found: 2, n: 1, max: 2, .. })));
    let p = s.acquire_many(2).unwrap();
    assert!(s.try_acquire().unwrap().is_none());
    assert!(matches!(s.release_many(3), Err(Error::Overflow { .. })));
    s.release().unwrap();
    assert!(matches!(p.release(), Err(Error::Overflow { found: 1, n: 2, .. })));
    assert_eq!(s.value(), 1);
    assert!(BoundedSemaphore::with_value(3, 2).is_err());
    assert!(matches!(s.acquire_many(3), Err(Error::InvalidCount { max: 2, .. })));
    assert!(s.acquire_timeout(Duration::from_millis(1)).unwrap().is_some());
}

/// S4: a peer writes u32::MAX or max + 1 into the count.
#[test]
fn garbage_count_never_grants_more_than_max() {
    for garbage in [u32::MAX, 4, 0x7FFF_FFFF, 0x8000_0004, 1000] {
        let s = Shared::anonymous(BoundedSemaphore::with_value(0, 3).unwrap()).unwrap();
        poke(&s, 0, garbage);
        assert!(s.value() <= 3, "{garbage:#x}: value {}", s.value());
        assert!(matches!(s.release(), Err(Error::Overflow { .. })), "{garbage:#x}");
        let mut held = Vec::new();
        while let Some(p) = s.try_acquire().unwrap() {
            held.push(p);
            assert!(held.len() <= 3, "{garbage:#x}: granted more than max");
        }
        assert_eq!(held.len(), 3, "{garbage:#x}");
        held.into_iter().for_each(std::mem::drop);
        assert_eq!(s.value(), 3);
        assert!(s.release().is_err());
    }
}

#[test]
fn corrupted_max_is_a_typed_error() {
    let s = Shared::anonymous(BoundedSemaphore::new(2).unwrap()).unwrap();
    poke(&s, 4, 1000);
    assert!(matches!(s.acquire(), Err(Error::Corrupted { what: "maximum", found: 1000, .. })));
    assert!(matches!(s.release(), Err(Error::Corrupted { .. })));
    assert_eq!(s.value(), 0);
}
