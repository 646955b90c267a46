//! [`BoundedSemaphore`]: an untracked counting semaphore whose count never exceeds its
//! maximum (Python's `BoundedSemaphore`).
//!
//! The maximum is written once, with a check word beside it (`max * odd constant`). Every
//! operation loads the pair once into locals, validates it and then uses only the local copy,
//! so a peer that rewrites the maximum mid-operation changes nothing, and a maximum rewritten
//! without its check is reported as [`Error::Corrupted`]. The count itself is the shared
//! [`count`](crate::count) word: a count above the maximum (a peer's garbage, e.g.
//! `u32::MAX` or `max + 1`) makes every release fail with [`Error::Overflow`] and is read as
//! `max` by an acquire, whose CAS then writes back a count below `max`: an acquirer is never
//! granted more than `max` permits however the count was damaged.

use std::fmt;
use std::time::{Duration, Instant};

use ipc_shm::sync::atomic::{AtomicU32, Ordering};
use ipc_shm::{Deadline, ProcessToken, ShmSafe};

use crate::count::{self, COUNT_MAX};
use crate::error::{Error, Result};

const OBJECT: &str = "bounded semaphore";
/// Odd: the check of a zero maximum is zero, so an all-zero object is valid.
const CHECK_MUL: u32 = 0x85EB_CA6B;

/// A bounded counting semaphore in shared memory. See the module docs.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use ipc_sem::{BoundedSemaphore, Error};
///
/// let sem = ipc_shm::Shared::anonymous(BoundedSemaphore::new(2)?)?;
/// let p = sem.acquire()?;
/// drop(p);
/// assert!(matches!(sem.release(), Err(Error::Overflow { .. }))); // already at its maximum
/// # Ok(()) }
/// ```
#[repr(C)]
pub struct BoundedSemaphore {
    count: AtomicU32,
    max: AtomicU32,
    check: AtomicU32,
    _reserved: AtomicU32,
}

#[cfg(not(ipc_loom))]
const _: () = assert!(size_of::<BoundedSemaphore>() == 16);

#[allow(unsafe_code)] // the ShmSafe marker; its argument follows
// SAFETY: (1) atomics only; (2) every bit pattern is valid: a bad max/check pair is reported
// as `Corrupted`, any count is clamped to the max; all-zero is a semaphore of maximum 0;
// (3) atomic mutation only; (4) no Drop; (5) `#[repr(C)]`.
unsafe impl ShmSafe for BoundedSemaphore {
    const LAYOUT_VERSION: u32 = 1;
    /// No owner ids: it may be shared with processes of another liveness registry.
    const OWNER_IDS: bool = false;
}

impl fmt::Debug for BoundedSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundedSemaphore")
            .field("max", &self.max("inspect").ok())
            .field("value", &self.value())
            .finish()
    }
}

/// Permits held from a [`BoundedSemaphore`]; released on drop.
#[must_use = "the permit is released at once if it is not kept"]
pub struct BoundedPermit<'a> {
    sem: &'a BoundedSemaphore,
    n: u32,
    /// The maximum validated when the permit was taken: the release uses this copy.
    max: u32,
    /// The process that took the permits: only it gives them back (a forked child's copy of
    /// the permit is inert).
    token: ProcessToken,
}

impl fmt::Debug for BoundedPermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundedPermit").field("count", &self.n).finish()
    }
}

impl BoundedPermit<'_> {
    /// How many permits this holds.
    pub fn count(&self) -> u32 {
        self.n
    }

    /// Keep the permits: they are gone until someone calls [`BoundedSemaphore::release`].
    pub fn forget(mut self) {
        self.n = 0;
    }

    /// Release now, reporting errors.
    ///
    /// # Errors
    /// [`Error::Overflow`] if a peer pushed the count up meanwhile, [`Error::Corrupted`].
    pub fn release(mut self) -> Result<()> {
        let n = std::mem::take(&mut self.n);
        if n != 0 && !self.token.is_current() {
            // A copy inherited over fork: the permits are the parent's.
            return Err(Error::NotHeld { op: "release", object: "bounded semaphore", n, held: 0 });
        }
        if n == 0 { Ok(()) } else { self.sem.release_many(n) }
    }
}

impl Drop for BoundedPermit<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        let n = std::mem::take(&mut self.n);
        // Only in the process that took the permits: a forked child's copy gives back nothing.
        if n == 0 || !self.token.is_current() {
            return;
        }
        if count::release_fast(&self.sem.count, n, self.max) {
            return;
        }
        let _ = self.sem.release_many(n);
    }
}

impl BoundedSemaphore {
    /// A bounded semaphore holding `max` permits, its maximum (Python's
    /// `BoundedSemaphore(max)`).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `max` is above [`MAX_VALUE`](crate::MAX_VALUE).
    pub fn new(max: u32) -> Result<Self> {
        Self::with_value(max, max)
    }

    /// A bounded semaphore of maximum `max` holding `value` permits now.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `value > max` or `max` is above
    /// [`MAX_VALUE`](crate::MAX_VALUE).
    pub fn with_value(value: u32, max: u32) -> Result<Self> {
        if max > COUNT_MAX || value > max {
            return Err(Error::InvalidArgument {
                op: "create",
                object: OBJECT,
                what: format!("value {value} and maximum {max} need value <= max <= {COUNT_MAX}"),
            });
        }
        Ok(BoundedSemaphore {
            count: AtomicU32::new(value),
            max: AtomicU32::new(max),
            check: AtomicU32::new(max.wrapping_mul(CHECK_MUL)),
            _reserved: AtomicU32::new(0),
        })
    }

    /// The maximum, loaded once and validated: the private copy every operation uses.
    #[inline]
    fn max(&self, op: &'static str) -> Result<u32> {
        // Relaxed: written before publication; a later rewrite is caught by the check.
        let max = self.max.load(Ordering::Relaxed);
        let check = self.check.load(Ordering::Relaxed);
        if max <= COUNT_MAX && check == max.wrapping_mul(CHECK_MUL) {
            Ok(max)
        } else {
            Err(Error::Corrupted { op, object: OBJECT, what: "maximum", found: max })
        }
    }

    /// The maximum.
    ///
    /// # Errors
    /// [`Error::Corrupted`].
    pub fn max_value(&self) -> Result<u32> {
        self.max("inspect")
    }

    /// Permits free now: never above the maximum (0 if the maximum is corrupted).
    pub fn value(&self) -> u32 {
        self.max("value").map_or(0, |max| count::value(&self.count, max))
    }

    #[inline(never)]
    fn take(
        &self,
        op: &'static str,
        n: u32,
        how: Option<Deadline>,
    ) -> Result<Option<BoundedPermit<'_>>> {
        let max = self.max(op)?;
        if n == 0 || n > max {
            return Err(Error::InvalidCount { op, object: OBJECT, n, max });
        }
        let got = match how {
            None => count::try_take(&self.count, n, max),
            Some(deadline) => count::take(&self.count, n, max, deadline),
        };
        Ok(got.then(|| BoundedPermit { sem: self, n, max, token: ProcessToken::current() }))
    }

    /// Take one permit, waiting as long as it takes.
    ///
    /// # Errors
    /// [`Error::Corrupted`]; [`Error::InvalidCount`] if the maximum is 0.
    #[inline(always)]
    pub fn acquire(&self) -> Result<BoundedPermit<'_>> {
        if let Ok(max) = self.max("acquire")
            && count::try_take_fast(&self.count, 1, max)
        {
            return Ok(BoundedPermit { sem: self, n: 1, max, token: ProcessToken::current() });
        }
        self.acquire_many(1)
    }

    /// Take one permit if one is free now.
    ///
    /// # Errors
    /// As [`acquire`](Self::acquire).
    #[inline]
    pub fn try_acquire(&self) -> Result<Option<BoundedPermit<'_>>> {
        if let Ok(max) = self.max("try_acquire")
            && count::try_take_fast(&self.count, 1, max)
        {
            return Ok(Some(BoundedPermit {
                sem: self,
                n: 1,
                max,
                token: ProcessToken::current(),
            }));
        }
        self.take("try_acquire", 1, None)
    }

    /// Take one permit, waiting at most `timeout`; `Ok(None)` on timeout.
    ///
    /// # Errors
    /// As [`acquire`](Self::acquire).
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<Option<BoundedPermit<'_>>> {
        self.take("acquire", 1, Some(Deadline::after(timeout)))
    }

    /// Take one permit, waiting until `deadline` at most; `Ok(None)` on timeout.
    ///
    /// # Errors
    /// As [`acquire`](Self::acquire).
    pub fn acquire_until(&self, deadline: Instant) -> Result<Option<BoundedPermit<'_>>> {
        self.take("acquire", 1, Some(Deadline::at(deadline)))
    }

    /// Take `n` permits at once, waiting as long as it takes.
    ///
    /// # Errors
    /// [`Error::InvalidCount`] if `n` is 0 or above the maximum; [`Error::Corrupted`].
    pub fn acquire_many(&self, n: u32) -> Result<BoundedPermit<'_>> {
        self.take("acquire", n, Some(Deadline::NEVER))?.ok_or_else(|| Error::InvalidArgument {
            op: "acquire",
            object: OBJECT,
            what: "an untimed wait timed out".into(),
        })
    }

    /// Take `n` permits if that many are free now.
    ///
    /// # Errors
    /// As [`acquire_many`](Self::acquire_many).
    pub fn try_acquire_many(&self, n: u32) -> Result<Option<BoundedPermit<'_>>> {
        self.take("try_acquire", n, None)
    }

    /// Take `n` permits, waiting at most `timeout`; `Ok(None)` on timeout.
    ///
    /// # Errors
    /// As [`acquire_many`](Self::acquire_many).
    pub fn acquire_many_timeout(
        &self,
        n: u32,
        timeout: Duration,
    ) -> Result<Option<BoundedPermit<'_>>> {
        self.take("acquire", n, Some(Deadline::after(timeout)))
    }

    /// Release one permit.
    ///
    /// # Errors
    /// [`Error::Overflow`] if the count is at (or, after a peer's garbage, above) the maximum:
    /// nothing changes then. [`Error::Corrupted`].
    #[inline]
    pub fn release(&self) -> Result<()> {
        if let Ok(max) = self.max("release")
            && count::release_fast(&self.count, 1, max)
        {
            return Ok(());
        }
        self.release_many(1)
    }

    /// Release `n` permits, all or none.
    ///
    /// # Errors
    /// As [`release`](Self::release); [`Error::InvalidCount`] for `n == 0`.
    #[inline(never)]
    pub fn release_many(&self, n: u32) -> Result<()> {
        const OP: &str = "release";
        let max = self.max(OP)?;
        if n == 0 {
            return Err(Error::InvalidCount { op: OP, object: OBJECT, n, max });
        }
        if count::release_fast(&self.count, n, max) {
            return Ok(());
        }
        count::release(&self.count, n, max).map(|_| ()).map_err(|o| Error::Overflow {
            op: OP,
            object: OBJECT,
            found: o.found,
            n,
            max,
        })
    }
}
