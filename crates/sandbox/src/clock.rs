//! "Now": the system clock, or a manual clock that moves only when told to.
//!
//! All sandbox time is unix milliseconds ([`Millis`]). Every timer runs off the [`Clock`], so a
//! test on the manual clock can jump 30 days in a millisecond.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Unix time in milliseconds.
pub type Millis = i64;

/// One second in [`Millis`].
pub const SECOND: Millis = 1_000;
/// One hour in [`Millis`].
pub const HOUR: Millis = 3_600 * SECOND;
/// One day in [`Millis`].
pub const DAY: Millis = 24 * HOUR;

/// Where the sandbox's "now" comes from.
#[derive(Debug)]
pub enum Clock {
    /// Wall-clock time.
    System,
    /// Stands still until [`Clock::set`] moves it.
    Manual(AtomicI64),
}

impl Clock {
    /// A manual clock starting at `start`.
    pub fn manual(start: Millis) -> Clock {
        Clock::Manual(AtomicI64::new(start))
    }

    /// Now.
    pub fn now(&self) -> Millis {
        match self {
            Clock::System => system_now(),
            Clock::Manual(ms) => ms.load(Ordering::Acquire),
        }
    }

    /// True for the manual clock.
    pub fn is_manual(&self) -> bool {
        matches!(self, Clock::Manual(_))
    }

    /// Puts a manual clock back to `to`, even backwards (control API reset). No effect on the
    /// system clock.
    pub fn rewind(&self, to: Millis) {
        if let Clock::Manual(ms) = self {
            ms.store(to, Ordering::Release);
        }
    }

    /// Moves a manual clock to `to` (never backwards). No effect on the system clock.
    pub fn set(&self, to: Millis) {
        if let Clock::Manual(ms) = self {
            ms.fetch_max(to, Ordering::AcqRel);
        }
    }
}

/// Wall-clock now.
pub fn system_now() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

/// Unix seconds as the string the webhooks carry.
pub fn unix_seconds_string(ms: Millis) -> String {
    (ms.div_euclid(SECOND)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_forward() {
        let c = Clock::manual(1_000);
        assert_eq!(c.now(), 1_000);
        c.set(5_000);
        c.set(2_000);
        assert_eq!(c.now(), 5_000);
        assert_eq!(unix_seconds_string(5_999), "5");
    }
}
