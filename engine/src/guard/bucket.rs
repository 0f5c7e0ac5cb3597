//! A rate with a burst ([`RateLimit`]) and the state that enforces it ([`TokenBucket`]).
//!
//! The reference limits messages with a sliding log: up to `maxRequests` timestamps per key
//! and a lockout of a whole window (spec §9, §18 E3). A token bucket needs one timestamp:
//! this one is GCRA (the generic cell rate algorithm), which keeps only the "theoretical
//! arrival time" (TAT) of the next request and is exactly a token bucket of `burst` tokens
//! refilled at `rate` per second. The bucket never reads the clock: every call takes `now`,
//! so tests drive it with simulated time and the caller decides how often to read the clock.

use std::time::{Duration, Instant};

/// The longest interval between two tokens: about 136 years, i.e. "never refills". Rates
/// that are zero, negative, NaN or too small to express are clamped to it, which keeps
/// every `Instant` sum in range (no overflow, no panic).
const MAX_INTERVAL: Duration = Duration::from_secs(u32::MAX as u64);

/// A rate limit: `rate` tokens per second, at most `burst` saved up.
///
/// A fresh key holds `burst` tokens; each request takes one; tokens come back at `rate` per
/// second up to `burst`. So `RateLimit::per_second(10).burst(100)` lets 100 requests through
/// at once, then one every 100 ms.
///
/// ```
/// use connectme::RateLimit;
///
/// let limit = RateLimit::per_minute(120).burst(10);
/// assert_eq!((limit.rate, limit.burst), (2.0, 10));
/// ```
///
/// Edge values never panic: a `burst` of 0 counts as 1, a rate of 0 (or negative, or NaN)
/// lets the burst through once and then refills practically never, and an infinite rate
/// never refuses. To turn a limit off, use `None` where it is configured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Tokens added per second.
    pub rate: f64,
    /// Most tokens a key can hold: how many requests may arrive at once.
    pub burst: u32,
}

impl RateLimit {
    /// `rate` tokens per second with a burst of `burst`.
    pub const fn new(rate: f64, burst: u32) -> Self {
        Self { rate, burst }
    }

    /// `n` per second, with a burst of `n` (a second's worth at once).
    pub const fn per_second(n: u32) -> Self {
        Self {
            rate: n as f64,
            burst: n,
        }
    }

    /// `n` per minute, with a burst of `n` (a minute's worth at once, as the reference's
    /// "`maxRequests` per `window`" allows, but refilled smoothly instead of by a lockout).
    pub const fn per_minute(n: u32) -> Self {
        Self {
            rate: n as f64 / 60.0,
            burst: n,
        }
    }

    /// The same rate with a burst of `burst`.
    #[must_use]
    pub const fn burst(self, burst: u32) -> Self {
        Self { burst, ..self }
    }

    /// Time between two tokens, to the nanosecond, clamped to [`MAX_INTERVAL`].
    pub(crate) fn interval(&self) -> Duration {
        let rate = self.rate;
        if rate.is_nan() || rate <= 0.0 {
            return MAX_INTERVAL;
        }
        let nanos = 1e9 / rate; // finite or +inf; 0 for an infinite rate
        if nanos >= MAX_INTERVAL.as_nanos() as f64 {
            MAX_INTERVAL
        } else {
            // Rounded, so that 10 per second is exactly 100 ms.
            Duration::from_nanos(nanos.round() as u64)
        }
    }

    /// `burst` (at least 1).
    fn tokens(&self) -> u32 {
        self.burst.max(1)
    }

    /// How far the TAT may run ahead of now: a full bucket's worth of intervals.
    fn tolerance(&self) -> Duration {
        self.interval()
            .checked_mul(self.tokens())
            .unwrap_or(Duration::MAX)
    }
}

/// The state of one key's rate limit: the time at which its bucket is full again (GCRA's
/// theoretical arrival time). 16 bytes; a full bucket is any TAT not after now.
///
/// The limit is not stored (every session of a server shares one), so it is passed to
/// each call; changing it between calls is allowed and takes effect from that call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TokenBucket {
    /// When the bucket is full again; at or before now means full.
    full_at: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn new(now: Instant) -> Self {
        Self { full_at: now }
    }

    /// Takes one token, or says how long until one is available.
    ///
    /// Refused requests take nothing (they do not push the retry time further out), and a
    /// `now` earlier than an earlier call's is handled (no panic; it only sees fewer tokens).
    pub(crate) fn take(&mut self, limit: &RateLimit, now: Instant) -> Result<(), Duration> {
        let interval = limit.interval();
        let tolerance = limit.tolerance();
        // How far ahead of now the TAT would be after this request.
        let ahead = self
            .full_at
            .saturating_duration_since(now)
            .saturating_add(interval);
        if ahead > tolerance {
            // The earliest later `now` at which `ahead` fits in the tolerance.
            return Err(ahead - tolerance);
        }
        match now.checked_add(ahead) {
            Some(full_at) => {
                self.full_at = full_at;
                Ok(())
            }
            // Only reachable with a clamped, never-refilling rate near the end of time.
            None => Err(interval),
        }
    }

    /// Whether the bucket holds `burst` tokens at `now` (forgetting it loses nothing).
    pub(crate) fn is_full(&self, now: Instant) -> bool {
        self.full_at <= now
    }

    /// Tokens available at `now` (0 to `burst`).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn available(&self, limit: &RateLimit, now: Instant) -> u32 {
        let interval = limit.interval().as_nanos();
        if interval == 0 {
            return limit.tokens();
        }
        let used = self.full_at.saturating_duration_since(now).as_nanos();
        // Tokens still missing: every started interval is one.
        let missing = used.div_ceil(interval);
        let missing = u32::try_from(missing).unwrap_or(u32::MAX);
        limit.tokens().saturating_sub(missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn bucket_is_sixteen_bytes() {
        // It lives in every session: one Instant, nothing else.
        assert_eq!(std::mem::size_of::<TokenBucket>(), 16);
        assert_eq!(std::mem::size_of::<Option<TokenBucket>>(), 16);
        assert_eq!(std::mem::size_of::<RateLimit>(), 16);
    }

    #[test]
    fn constructors() {
        assert_eq!(RateLimit::per_second(5), RateLimit::new(5.0, 5));
        assert_eq!(RateLimit::per_minute(30), RateLimit::new(0.5, 30));
        assert_eq!(RateLimit::per_second(5).burst(1), RateLimit::new(5.0, 1));
        assert_eq!(RateLimit::per_second(10).interval(), 100 * MS);
        assert_eq!(RateLimit::per_minute(100).interval(), 600 * MS);
        assert_eq!(
            RateLimit::new(3.0, 1).interval(),
            Duration::from_nanos(333_333_333)
        );
    }

    #[test]
    fn burst_then_refill() {
        let t0 = Instant::now();
        let limit = RateLimit::per_second(10).burst(3);
        let mut bucket = TokenBucket::new(t0);
        assert!(bucket.is_full(t0));
        assert_eq!(bucket.available(&limit, t0), 3);
        for _ in 0..3 {
            assert_eq!(bucket.take(&limit, t0), Ok(()));
        }
        assert_eq!(bucket.available(&limit, t0), 0);
        assert!(!bucket.is_full(t0));
        // The fourth waits exactly one interval, and refusals do not push it further out.
        assert_eq!(bucket.take(&limit, t0), Err(100 * MS));
        assert_eq!(bucket.take(&limit, t0), Err(100 * MS));
        assert_eq!(bucket.take(&limit, t0 + 40 * MS), Err(60 * MS));
        assert_eq!(bucket.take(&limit, t0 + 100 * MS), Ok(()));
        assert_eq!(bucket.take(&limit, t0 + 100 * MS), Err(100 * MS));
        // Refill is linear and stops at the burst.
        assert_eq!(bucket.available(&limit, t0 + 250 * MS), 1);
        assert_eq!(bucket.available(&limit, t0 + 300 * MS), 2);
        assert!(!bucket.is_full(t0 + 399 * MS));
        assert!(bucket.is_full(t0 + 400 * MS));
        assert_eq!(bucket.available(&limit, t0 + 10_000 * MS), 3);
        let later = t0 + 10_000 * MS;
        for _ in 0..3 {
            assert_eq!(bucket.take(&limit, later), Ok(()));
        }
        assert_eq!(bucket.take(&limit, later), Err(100 * MS));
    }

    #[test]
    fn steady_rate_is_exact() {
        // One request per interval forever is always allowed, even with a burst of 1.
        let t0 = Instant::now();
        let limit = RateLimit::per_minute(60).burst(1);
        let mut bucket = TokenBucket::new(t0);
        for i in 0..1000u32 {
            let now = t0 + Duration::from_secs(u64::from(i));
            assert_eq!(bucket.take(&limit, now), Ok(()), "{i}");
            assert_eq!(
                bucket.take(&limit, now + 999 * MS),
                Err(MS),
                "{i}: one ms early"
            );
        }
    }

    #[test]
    fn retry_after_is_time_to_one_token() {
        let t0 = Instant::now();
        let limit = RateLimit::per_minute(100); // one per 600 ms, burst 100
        let mut bucket = TokenBucket::new(t0);
        for _ in 0..100 {
            bucket.take(&limit, t0).unwrap();
        }
        assert_eq!(bucket.take(&limit, t0), Err(600 * MS));
        assert_eq!(bucket.take(&limit, t0 + 599 * MS), Err(MS));
        assert_eq!(bucket.take(&limit, t0 + 600 * MS), Ok(()));
    }

    #[test]
    fn edge_limits_do_not_panic() {
        let t0 = Instant::now();
        let far = t0 + Duration::from_secs(1 << 30);
        for limit in [
            RateLimit::new(0.0, 2),
            RateLimit::new(-1.0, 2),
            RateLimit::new(f64::NAN, 2),
            RateLimit::new(1e-300, 2),
            RateLimit::new(f64::MIN_POSITIVE, u32::MAX),
        ] {
            let mut bucket = TokenBucket::new(t0);
            assert_eq!(bucket.take(&limit, t0), Ok(()), "{limit:?}");
            if limit.burst == 2 {
                assert_eq!(bucket.take(&limit, t0), Ok(()), "{limit:?}");
                assert!(bucket.take(&limit, t0).is_err(), "{limit:?}");
                assert!(
                    bucket.take(&limit, far).is_err(),
                    "{limit:?}: never refills"
                );
            }
            assert!(!bucket.is_full(far));
            let _ = bucket.available(&limit, far);
        }
        // Burst 0 counts as 1; an infinite or huge rate never refuses.
        let mut bucket = TokenBucket::new(t0);
        assert_eq!(bucket.take(&RateLimit::new(1.0, 0), t0), Ok(()));
        assert_eq!(
            bucket.take(&RateLimit::new(1.0, 0), t0),
            Err(Duration::from_secs(1))
        );
        for limit in [RateLimit::new(f64::INFINITY, 1), RateLimit::new(1e300, 1)] {
            let mut bucket = TokenBucket::new(t0);
            for _ in 0..1000 {
                assert_eq!(bucket.take(&limit, t0), Ok(()));
            }
            assert_eq!(bucket.available(&limit, t0), 1);
        }
        // Time going backwards: fewer tokens, no panic.
        let limit = RateLimit::per_second(1).burst(2);
        let mut bucket = TokenBucket::new(t0 + Duration::from_secs(5));
        assert_eq!(bucket.take(&limit, t0), Err(Duration::from_secs(4)));
    }
}
