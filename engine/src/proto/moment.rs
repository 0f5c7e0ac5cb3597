//! A moment in 8 bytes where an [`Instant`] takes 16: every idle connection keeps when it
//! last heard its peer, so those 8 bytes are paid once per connection (issue 15, "per
//! connection state made small").
//!
//! A [`Moment`] counts signed nanoseconds from one instant of the process, taken the first
//! time any moment is made. Signed, so an instant taken before that (a caller's own clock
//! reading, a test's simulated start) converts back exactly: the round trip is lossless for
//! any instant within 292 years of the first.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// An [`Instant`], stored as nanoseconds from the process's [`epoch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Moment(i64);

/// What every moment counts from.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// `d` in nanoseconds, saturating at 292 years.
fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

impl From<Instant> for Moment {
    #[inline]
    fn from(at: Instant) -> Self {
        let epoch = epoch();
        match at.checked_duration_since(epoch) {
            Some(after) => Self(nanos(after)),
            None => Self(-nanos(epoch.duration_since(at))),
        }
    }
}

impl From<Moment> for Instant {
    #[inline]
    fn from(moment: Moment) -> Self {
        let offset = Duration::from_nanos(moment.0.unsigned_abs());
        if moment.0 >= 0 {
            epoch() + offset
        } else {
            epoch() - offset
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_before_and_after_the_epoch_come_back_exactly() {
        let before = Instant::now();
        let _ = epoch();
        let after = Instant::now() + Duration::from_nanos(123_456_789_012);
        for at in [
            before,
            after,
            epoch(),
            before.checked_sub(Duration::from_secs(3)).unwrap_or(before),
            after + Duration::from_nanos(1),
        ] {
            assert_eq!(Instant::from(Moment::from(at)), at);
        }
        assert!(Moment::from(before) < Moment::from(after));
        assert_eq!(std::mem::size_of::<Moment>(), 8);
    }
}
