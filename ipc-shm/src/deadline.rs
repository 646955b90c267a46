//! [`Deadline`]: when a wait must end, or never. Every timed operation of the family turns
//! its `Duration` into one of these, so a huge timeout (`Duration::MAX`) saturates to "never"
//! instead of overflowing, everywhere the same way.

use std::time::{Duration, Instant};

/// A point in `CLOCK_MONOTONIC` time at which a wait gives up, or [`NEVER`](Self::NEVER).
///
/// ```
/// use ipc_shm::Deadline;
/// use std::time::Duration;
///
/// let soon = Deadline::after(Duration::from_millis(10));
/// assert!(!soon.has_passed());
/// assert_eq!(Deadline::after(Duration::MAX), Deadline::NEVER); // saturates, never panics
/// assert_eq!(soon.earliest(Deadline::NEVER), soon);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Deadline(Option<Instant>);

impl Deadline {
    /// No deadline: wait for ever.
    pub const NEVER: Deadline = Deadline(None);

    /// `timeout` from now; [`NEVER`](Self::NEVER) when that is too far to represent.
    #[inline]
    pub fn after(timeout: Duration) -> Deadline {
        Deadline(Instant::now().checked_add(timeout))
    }

    /// At `instant`.
    #[inline]
    pub fn at(instant: Instant) -> Deadline {
        Deadline(Some(instant))
    }

    /// From an optional instant (`None`: never).
    #[inline]
    pub fn from_instant(instant: Option<Instant>) -> Deadline {
        Deadline(instant)
    }

    /// The instant, `None` for never (what [`futex::wait`](crate::futex::wait) takes).
    #[inline]
    pub fn instant(self) -> Option<Instant> {
        self.0
    }

    /// Whether this is [`NEVER`](Self::NEVER).
    #[inline]
    pub fn is_never(self) -> bool {
        self.0.is_none()
    }

    /// The earlier of two deadlines.
    #[inline]
    #[must_use]
    pub fn earliest(self, other: Deadline) -> Deadline {
        match (self.0, other.0) {
            (Some(a), Some(b)) => Deadline(Some(a.min(b))),
            (a, b) => Deadline(a.or(b)),
        }
    }

    /// Whether the deadline has passed (never, for [`NEVER`](Self::NEVER)).
    #[inline]
    pub fn has_passed(self) -> bool {
        self.0.is_some_and(|d| Instant::now() >= d)
    }

    /// Time left: `None` for never, zero once passed.
    #[inline]
    pub fn remaining(self) -> Option<Duration> {
        self.0.map(|d| d.saturating_duration_since(Instant::now()))
    }
}

impl From<Option<Instant>> for Deadline {
    fn from(instant: Option<Instant>) -> Self {
        Deadline(instant)
    }
}

impl From<Instant> for Deadline {
    fn from(instant: Instant) -> Self {
        Deadline(Some(instant))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturates_orders_and_counts_down() {
        assert_eq!(Deadline::after(Duration::MAX), Deadline::NEVER);
        assert!(!Deadline::NEVER.has_passed());
        assert_eq!(Deadline::NEVER.remaining(), None);
        let past = Deadline::at(Instant::now());
        assert!(past.has_passed());
        assert_eq!(past.remaining(), Some(Duration::ZERO));
        let later = Deadline::after(Duration::from_secs(60));
        assert_eq!(past.earliest(later), past);
        assert_eq!(later.earliest(past), past);
        assert_eq!(Deadline::NEVER.earliest(later), later);
        assert!(later.remaining().is_some_and(|r| r > Duration::from_secs(59)));
    }
}
