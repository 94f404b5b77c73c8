//! Ranges of every number the sandbox takes from outside: the config file, `PATCH /_mynah/rules`,
//! fault rules, the clock, user patches.
//!
//! Time is unix milliseconds in an `i64`, and the rate limiters count nanoseconds in a `u64`; both
//! stay far from overflow when every instant is at most [`MAX_TIME`] and every duration at most
//! [`MAX_DURATION`], so the arithmetic on them (`now + delay`, `every_ms × burst`) cannot wrap.
//! Each check names the field it refuses, with the range it wants.

use crate::clock::{DAY, Millis};
use std::fmt::Display;

/// The latest instant the sandbox clock may show: 2200-01-01T00:00:00Z, unix ms.
pub const MAX_TIME: Millis = 7_258_118_400_000;
/// The longest duration any setting or request may name: 10 years, ms.
pub const MAX_DURATION: Millis = 3_653 * DAY;
/// The largest burst of any rate limit.
pub const MAX_BURST: u32 = 10_000_000;
/// The largest reaction weight (weights are relative; this only keeps sums finite).
pub const MAX_WEIGHT: f64 = 1e9;

/// `value` within `lo..=hi`, or an error naming `field`.
pub fn range<T: PartialOrd + Display>(field: &str, value: T, lo: T, hi: T) -> Result<T, String> {
    if value < lo || value > hi {
        Err(format!(
            "{field} = {value} is out of range: it must be between {lo} and {hi}"
        ))
    } else {
        Ok(value)
    }
}

/// A duration in ms: 0 to [`MAX_DURATION`].
pub fn duration(field: &str, ms: Millis) -> Result<Millis, String> {
    range(field, ms, 0, MAX_DURATION).map_err(|e| format!("{e} (ms, at most 10 years)"))
}

/// A duration in ms that must be positive: 1 to [`MAX_DURATION`].
pub fn positive_duration(field: &str, ms: Millis) -> Result<Millis, String> {
    range(field, ms, 1, MAX_DURATION).map_err(|e| format!("{e} (ms, at most 10 years)"))
}

/// An instant, unix ms: 0 to [`MAX_TIME`].
pub fn instant(field: &str, ms: Millis) -> Result<Millis, String> {
    range(field, ms, 0, MAX_TIME).map_err(|e| format!("{e} (unix ms, before the year 2200)"))
}

/// A finite number in `lo..=hi` (NaN and the infinities are refused).
pub fn real(field: &str, value: f64, lo: f64, hi: f64) -> Result<f64, String> {
    if !value.is_finite() {
        return Err(format!(
            "{field} = {value} is not a finite number: it must be between {lo} and {hi}"
        ));
    }
    range(field, value, lo, hi)
}

/// A probability: 0 to 1.
pub fn probability(field: &str, p: f64) -> Result<f64, String> {
    real(field, p, 0.0, 1.0)
}

/// A latency range: both ends durations, `min_ms ≤ max_ms`.
pub fn latency(field: &str, l: &crate::config::Latency) -> Result<(), String> {
    duration(&format!("{field}.min_ms"), l.min_ms)?;
    duration(&format!("{field}.max_ms"), l.max_ms)?;
    if l.min_ms > l.max_ms {
        return Err(format!(
            "{field}: min_ms = {} is above max_ms = {}",
            l.min_ms, l.max_ms
        ));
    }
    Ok(())
}

/// Seconds (possibly fractional) as ms: finite, not negative, at most [`MAX_DURATION`].
pub fn seconds_to_ms(field: &str, seconds: f64) -> Result<Millis, String> {
    let max = (MAX_DURATION / 1_000) as f64;
    let s =
        real(field, seconds, 0.0, max).map_err(|e| format!("{e} (seconds, at most 10 years)"))?;
    // In range, so the product is exact enough and far from `i64::MAX`.
    Ok((s * 1_000.0).round() as Millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_name_the_field() {
        assert_eq!(range("a.b", 5, 1, 10), Ok(5));
        let e = range("a.b", 11, 1, 10).unwrap_err();
        assert!(e.contains("a.b = 11") && e.contains("1 and 10"), "{e}");
        assert!(
            real("x", f64::NAN, 0.0, 1.0)
                .unwrap_err()
                .contains("x = NaN")
        );
        assert!(probability("p", 1.5).is_err());
        assert!(seconds_to_ms("seconds", -1.0).is_err());
        assert!(seconds_to_ms("seconds", 1e308).is_err());
        assert_eq!(seconds_to_ms("seconds", 1.5), Ok(1_500));
        assert!(duration("d", i64::MAX).is_err());
        assert!(instant("t", MAX_TIME + 1).is_err());
        // The rate limiters' worst case in nanoseconds (an instant, plus a refill time of at most
        // MAX_DURATION, plus one interval) stays inside a u64.
        let worst = (MAX_TIME as u128 + 2 * MAX_DURATION as u128) * 1_000_000;
        assert!(worst < u64::MAX as u128);
    }
}
