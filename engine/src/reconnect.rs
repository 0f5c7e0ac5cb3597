//! Reconnect policies for the client: exponential backoff with jitter by default, so that
//! the clients of a restarted server do not all come back in the same instant (the
//! reference's fixed 3 s, spec 11.A10, is available for parity).

use std::time::Duration;

/// When a client tries again after a connection failed or ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reconnect {
    /// Never: a lost connection stays lost.
    Never,
    /// After the same delay every time (ConnectMe: 3 s).
    Fixed(Duration),
    /// After `initial`, multiplied by `factor` per failed attempt up to `max`, each delay
    /// drawn uniformly from its upper half ("equal jitter").
    Backoff {
        /// First delay.
        initial: Duration,
        /// Largest delay.
        max: Duration,
        /// Growth per attempt.
        factor: f64,
    },
}

impl Default for Reconnect {
    /// Backoff from 100 ms to 10 s, doubling.
    fn default() -> Self {
        Self::Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
            factor: 2.0,
        }
    }
}

impl Reconnect {
    /// ConnectMe's behaviour: every 3 seconds, forever.
    pub const CONNECTME: Self = Self::Fixed(Duration::from_secs(3));

    /// The delay before attempt `attempt` (0 for the first retry), or `None` for never.
    pub fn delay(&self, attempt: u32) -> Option<Duration> {
        match *self {
            Self::Never => None,
            Self::Fixed(delay) => Some(delay),
            Self::Backoff {
                initial,
                max,
                factor,
            } => {
                let grown = initial.as_secs_f64() * factor.max(1.0).powi(attempt.min(64) as i32);
                let ceiling = grown.min(max.as_secs_f64());
                let jittered = ceiling / 2.0 + fastrand::f64() * ceiling / 2.0;
                Some(Duration::from_secs_f64(jittered))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_within_jitter_bounds_and_caps() {
        let policy = Reconnect::default();
        for attempt in 0..20 {
            let ceiling = (0.1 * 2f64.powi(attempt as i32)).min(10.0);
            for _ in 0..50 {
                let d = policy.delay(attempt).unwrap().as_secs_f64();
                assert!(
                    d >= ceiling / 2.0 - 1e-9 && d <= ceiling + 1e-9,
                    "attempt {attempt}: {d}"
                );
            }
        }
    }

    #[test]
    fn fixed_and_never() {
        assert_eq!(Reconnect::CONNECTME.delay(7), Some(Duration::from_secs(3)));
        assert_eq!(Reconnect::Never.delay(0), None);
    }
}
