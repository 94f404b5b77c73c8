//! Capacity rate limits per credential (seed page "Before sending a message"): `/messages` 50
//! requests/s with bursts to 150, other endpoints 20/s with bursts to 60. GCRA buckets from
//! `governor`, driven by the sandbox clock, so a test on the manual clock sees the burst, the 429
//! and the recovery without sleeping.

use crate::clock::Clock;
use crate::config::{LimitsConfig, RulesConfig};
use governor::clock::Reference;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use std::num::NonZeroU32;
use std::ops::Add;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// An instant of the sandbox clock, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Instant(u64);

impl Add<Nanos> for Instant {
    type Output = Instant;
    fn add(self, other: Nanos) -> Instant {
        Instant(self.0.saturating_add(other.as_u64()))
    }
}

impl Reference for Instant {
    fn duration_since(&self, earlier: Self) -> Nanos {
        Nanos::from(self.0.saturating_sub(earlier.0))
    }
    fn saturating_sub(&self, duration: Nanos) -> Self {
        Instant(self.0.saturating_sub(duration.as_u64()))
    }
}

/// The sandbox clock as `governor` sees it.
#[derive(Debug, Clone)]
pub struct LimiterClock(Arc<Clock>);

impl governor::clock::Clock for LimiterClock {
    type Instant = Instant;
    fn now(&self) -> Instant {
        Instant((self.0.now().max(0) as u64).saturating_mul(1_000_000))
    }
}

type Keyed =
    RateLimiter<String, DefaultKeyedStateStore<String>, LimiterClock, NoOpMiddleware<Instant>>;

/// Which bucket a request draws from (the pair rate limit has [`Limits::check_pair`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    /// `/messages`.
    Messages,
    /// Everything else.
    Other,
    /// Messages from one business number (throughput, 130429).
    Throughput,
}

/// The limiters.
pub struct Limits {
    messages: Option<Keyed>,
    other: Option<Keyed>,
    pair: RwLock<Option<Keyed>>,
    throughput: RwLock<Option<Keyed>>,
    clock: LimiterClock,
}

fn keyed(rate: u32, burst: u32, clock: &LimiterClock) -> Option<Keyed> {
    if rate == u32::MAX {
        return None;
    }
    let rate = NonZeroU32::new(rate.max(1))?;
    let burst = NonZeroU32::new(burst.max(1))?;
    let quota = Quota::per_second(rate).allow_burst(burst);
    Some(RateLimiter::new(
        quota,
        DefaultKeyedStateStore::default(),
        clock.clone(),
    ))
}

impl Limits {
    /// Limiters per the configuration.
    pub fn new(cfg: &LimitsConfig, rules: &RulesConfig, clock: Arc<Clock>) -> Limits {
        let clock = LimiterClock(clock);
        let (mr, mb) = cfg.messages();
        let (or, ob) = cfg.other();
        let limits = Limits {
            messages: keyed(mr, mb, &clock),
            other: keyed(or, ob, &clock),
            pair: RwLock::new(None),
            throughput: RwLock::new(None),
            clock,
        };
        limits.set_rules(rules);
        limits
    }

    /// Rebuilds the pair-rate and throughput limiters from the rules (their buckets start full).
    pub fn set_rules(&self, rules: &RulesConfig) {
        let pair = rules.pair_rate.and_then(|p| {
            let period = Duration::from_millis(p.every_ms.max(1) as u64);
            let quota = Quota::with_period(period)?.allow_burst(NonZeroU32::new(p.burst.max(1))?);
            Some(RateLimiter::new(
                quota,
                DefaultKeyedStateStore::default(),
                self.clock.clone(),
            ))
        });
        let throughput = rules
            .throughput_mps
            .and_then(|mps| keyed(mps.max(1), mps.max(1), &self.clock));
        *self.pair.write().unwrap_or_else(|e| e.into_inner()) = pair;
        *self.throughput.write().unwrap_or_else(|e| e.into_inner()) = throughput;
    }

    /// The pair-rate check for a number and a user; the key is built only when the rule is on.
    pub fn check_pair(&self, pnid: &str, wa_id: &str) -> Result<(), Duration> {
        let guard = self.pair.read().unwrap_or_else(|e| e.into_inner());
        let Some(limiter) = guard.as_ref() else {
            return Ok(());
        };
        let key = format!("{pnid}:{wa_id}");
        limiter.check_key(&key).map_err(|not_until| {
            use governor::clock::Clock as _;
            not_until.wait_time_from(self.clock.now())
        })
    }

    /// Takes one request from `key`'s bucket; on refusal, how long until one is allowed.
    pub fn check(&self, bucket: Bucket, key: &str) -> Result<(), Duration> {
        let take = |limiter: &Option<Keyed>| match limiter {
            None => Ok(()),
            Some(l) => l.check_key(&key.to_string()).map_err(|not_until| {
                use governor::clock::Clock as _;
                not_until.wait_time_from(self.clock.now())
            }),
        };
        match bucket {
            Bucket::Messages => take(&self.messages),
            Bucket::Other => take(&self.other),
            Bucket::Throughput => take(&self.throughput.read().unwrap_or_else(|e| e.into_inner())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate_on_the_manual_clock() {
        let clock = Arc::new(Clock::manual(1_000_000));
        let l = Limits::new(&LimitsConfig::default(), &RulesConfig::off(), clock.clone());
        for _ in 0..150 {
            assert!(l.check(Bucket::Messages, "k").is_ok());
        }
        let wait = l.check(Bucket::Messages, "k").unwrap_err();
        assert!(wait <= Duration::from_millis(20), "{wait:?}");
        assert!(l.check(Bucket::Messages, "other-key").is_ok());
        clock.set(1_001_000);
        let allowed = (0..100)
            .filter(|_| l.check(Bucket::Messages, "k").is_ok())
            .count();
        assert_eq!(allowed, 50);
        for _ in 0..60 {
            assert!(l.check(Bucket::Other, "k").is_ok());
        }
        assert!(l.check(Bucket::Other, "k").is_err());
    }
}
