//! The gateway's "now": the system clock, or a manual clock that tests move by hand.
//!
//! Gateway time is unix milliseconds ([`Millis`]). Every timer (retries, leases, TTL drop detection)
//! reads the [`Clock`], never the system time directly.

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

/// Where the gateway's "now" comes from.
#[derive(Debug)]
pub enum Clock {
    /// Wall-clock time.
    System,
    /// Stands still until [`Clock::set`] or [`Clock::advance`] moves it.
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
            Clock::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as Millis)
                .unwrap_or(0),
            Clock::Manual(ms) => ms.load(Ordering::Acquire),
        }
    }

    /// True for the manual clock.
    pub fn is_manual(&self) -> bool {
        matches!(self, Clock::Manual(_))
    }

    /// Moves a manual clock to `to` (never backwards). No effect on the system clock.
    pub fn set(&self, to: Millis) {
        if let Clock::Manual(ms) = self {
            ms.fetch_max(to, Ordering::AcqRel);
        }
    }

    /// Moves a manual clock forward by `by`.
    pub fn advance(&self, by: Millis) {
        if let Clock::Manual(ms) = self {
            ms.fetch_add(by.max(0), Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_forward() {
        let c = Clock::manual(1_000);
        c.set(5_000);
        c.set(2_000);
        c.advance(10);
        assert_eq!(c.now(), 5_010);
        assert!(Clock::System.now() > 1_600_000_000_000);
    }
}
