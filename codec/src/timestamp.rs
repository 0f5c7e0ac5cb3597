//! `datetime` values: signed milliseconds since the Unix epoch, as on the wire.
//!
//! The type keeps the wire value exactly (any `i64` round-trips) and converts to
//! [`SystemTime`] and to ISO-8601 text in the format of JavaScript's `toISOString`
//! (`2024-02-29T23:59:59.999Z`, years outside 0..=9999 as `+275760` / `-271821`).

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// An instant with millisecond resolution: the value of a PackMe `datetime` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

const MS_PER_DAY: i64 = 86_400_000;

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// From milliseconds since the epoch (negative before 1970).
    pub const fn from_millis(millis: i64) -> Self {
        Self(millis)
    }

    /// Milliseconds since the epoch.
    pub const fn millis(self) -> i64 {
        self.0
    }

    /// The current time, truncated to milliseconds.
    pub fn now() -> Self {
        SystemTime::now().into()
    }

    /// As a [`SystemTime`] (`None` if the platform cannot represent it).
    pub fn to_system_time(self) -> Option<SystemTime> {
        let magnitude = Duration::from_millis(self.0.unsigned_abs());
        if self.0 >= 0 {
            UNIX_EPOCH.checked_add(magnitude)
        } else {
            UNIX_EPOCH.checked_sub(magnitude)
        }
    }

    fn parts(self) -> (i64, u32, u32, u32, u32, u32, u32) {
        let days = self.0.div_euclid(MS_PER_DAY);
        let ms_of_day = self.0.rem_euclid(MS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        let secs = ms_of_day / 1000;
        (
            year,
            month,
            day,
            (secs / 3600) as u32,
            (secs / 60 % 60) as u32,
            (secs % 60) as u32,
            (ms_of_day % 1000) as u32,
        )
    }
}

impl From<SystemTime> for Timestamp {
    fn from(time: SystemTime) -> Self {
        match time.duration_since(UNIX_EPOCH) {
            Ok(after) => Self(i64::try_from(after.as_millis()).unwrap_or(i64::MAX)),
            Err(before) => {
                let ms = before.duration().as_nanos().div_ceil(1_000_000);
                Self(i64::try_from(ms).map_or(i64::MIN, |ms| -ms))
            }
        }
    }
}

// Howard Hinnant's algorithms (proleptic Gregorian calendar, day 0 = 1970-01-01),
// widened to i128 so every i64 millisecond value converts without overflow.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = i128::from(days) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i128::from(month <= 2);
    (year as i64, month, day)
}

fn days_from_civil(year: i64, month: u32, day: u32) -> i128 {
    let year = i128::from(year) - i128::from(month <= 2);
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let month = i128::from(month);
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i128::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl fmt::Display for Timestamp {
    /// ISO-8601 in UTC with milliseconds, as JavaScript's `Date.prototype.toISOString`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (year, month, day, hour, minute, second, ms) = self.parts();
        if (0..=9999).contains(&year) {
            write!(f, "{year:04}")?;
        } else {
            write!(
                f,
                "{}{:06}",
                if year < 0 { '-' } else { '+' },
                year.unsigned_abs()
            )?;
        }
        write!(
            f,
            "-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{ms:03}Z"
        )
    }
}

/// Text that is not an ISO-8601 UTC timestamp of the accepted form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid datetime {0:?}: expected YYYY-MM-DDTHH:MM:SS[.mmm]Z (years outside 0..9999 as +YYYYYY / -YYYYYY)")]
pub struct ParseTimestampError(String);

impl FromStr for Timestamp {
    type Err = ParseTimestampError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_iso(text).ok_or_else(|| ParseTimestampError(text.to_owned()))
    }
}

fn parse_iso(text: &str) -> Option<Timestamp> {
    let (date, time) = text.strip_suffix('Z')?.split_once('T')?;
    // Years 0..=9999 have four digits; others a sign and at least six (toISOString).
    let (year, rest) = match date.as_bytes().first()? {
        sign @ (b'+' | b'-') => {
            let (year, rest) = date[1..].split_once('-')?;
            let year = (year.len() >= 6).then(|| digits(year))??;
            (if *sign == b'-' { -year } else { year }, rest)
        }
        _ => {
            let (year, rest) = date.split_once('-')?;
            ((year.len() == 4).then(|| digits(year))??, rest)
        }
    };
    let (month, day) = rest.split_once('-')?;
    let two = |t: &str, max: i64| (t.len() == 2).then(|| digits(t).filter(|v| *v <= max))?;
    let (month, day) = (two(month, 12)? as u32, two(day, 31)? as u32);
    if month == 0 || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let (clock, ms) = match time.split_once('.') {
        Some((clock, fraction)) if fraction.len() == 3 => (clock, digits(fraction)?),
        Some(_) => return None,
        None => (time, 0),
    };
    let mut clock = clock.split(':');
    let (hour, minute, second) = (clock.next()?, clock.next()?, clock.next()?);
    if clock.next().is_some() {
        return None;
    }
    let (hour, minute, second) = (two(hour, 23)?, two(minute, 59)?, two(second, 59)?);
    let ms_total = days_from_civil(year, month, day) * i128::from(MS_PER_DAY)
        + i128::from(((hour * 60 + minute) * 60 + second) * 1000 + ms);
    i64::try_from(ms_total).ok().map(Timestamp)
}

fn digits(text: &str) -> Option<i64> {
    if text.is_empty() || text.len() > 15 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_javascript_to_iso_string() {
        let cases = [
            (0, "1970-01-01T00:00:00.000Z"),
            (-1, "1969-12-31T23:59:59.999Z"),
            (1_709_251_199_999, "2024-02-29T23:59:59.999Z"),
            (8_640_000_000_000_000, "+275760-09-13T00:00:00.000Z"),
            (-8_640_000_000_000_000, "-271821-04-20T00:00:00.000Z"),
            (-62_198_755_200_000, "-000001-01-01T00:00:00.000Z"),
            (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
            (253_402_300_800_000, "+010000-01-01T00:00:00.000Z"),
        ];
        for (ms, text) in cases {
            let t = Timestamp::from_millis(ms);
            assert_eq!(t.to_string(), text);
            assert_eq!(text.parse::<Timestamp>(), Ok(t), "{text}");
        }
    }

    #[test]
    fn extreme_values_format_and_parse_back() {
        for ms in [i64::MIN, i64::MAX, i64::MIN + 1] {
            let t = Timestamp::from_millis(ms);
            assert_eq!(t.to_string().parse::<Timestamp>(), Ok(t));
        }
    }

    #[test]
    fn rejects_malformed_text() {
        for text in [
            "",
            "2024-02-30T00:00:00.000Z",
            "2024-01-01T24:00:00.000Z",
            "2024-01-01T00:00:00.0Z",
            "2024-01-01 00:00:00Z",
            "24-01-01T00:00:00Z",
            "+2024-01-01T00:00:00.000Z",
            "2024-01-01T00:00:00.000",
        ] {
            assert!(text.parse::<Timestamp>().is_err(), "{text:?}");
        }
        assert_eq!(
            "2024-01-01T00:00:00Z"
                .parse::<Timestamp>()
                .map(Timestamp::millis),
            Ok(1_704_067_200_000)
        );
    }

    #[test]
    fn converts_to_and_from_system_time() {
        for ms in [0, 1, -1, 1_700_000_000_123, -86_400_001] {
            let t = Timestamp::from_millis(ms);
            assert_eq!(Timestamp::from(t.to_system_time().unwrap()), t);
        }
    }
}
