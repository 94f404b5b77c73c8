//! Capacity rate limits per credential (seed page "Before sending a message"): `/messages` 50
//! requests/s with bursts to 150, other endpoints 20/s with bursts to 60. GCRA buckets from
//! `governor`, driven by the sandbox clock, so a test on the manual clock sees the burst, the 429
//! and the recovery without sleeping.

use crate::clock::{Clock, Millis};
use crate::config::{LimitsConfig, RulesConfig};
use governor::clock::Reference;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::ops::Add;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
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
    messages: RwLock<Option<Keyed>>,
    other: RwLock<Option<Keyed>>,
    pair: RwLock<Option<Keyed>>,
    throughput: RwLock<Option<Keyed>>,
    clock: LimiterClock,
    /// Throttling episodes of credentials (`/messages` and other endpoints together).
    credentials: Episodes,
    /// … of numbers' throughput (130429).
    numbers: Episodes,
    /// … of numbers' pair rate (131056), all users of a number together.
    pairs: Episodes,
    /// Pair checks since idle entries were last dropped.
    pair_checks: AtomicUsize,
}

/// Every this many pair checks, the entries of pairs whose bucket has refilled are dropped.
const EVICT_EVERY: usize = 4_096;

/// How long without a refusal ends a throttling episode, ms of sandbox time.
const EPISODE_QUIET_MS: Millis = 1_000;
/// A throttling episode that goes on is summed up this often, ms of sandbox time.
const EPISODE_REPORT_MS: Millis = 60_000;

/// Throttling episodes of one kind of key, so that a throttled client is logged once per episode
/// (with how many requests were refused and for how long), not once per refused request.
struct Episodes {
    /// What a key is, for the log (`credential`, `phone number`).
    what: &'static str,
    /// What throttles it, for the log.
    why: &'static str,
    /// Whether the key is a secret to shorten in logs.
    secret: bool,
    /// Episodes open: lets the allowed path skip the map when nobody is throttled.
    open: AtomicUsize,
    map: Mutex<HashMap<String, Episode>>,
}

struct Episode {
    since: Millis,
    last: Millis,
    refused: u64,
}

impl Episodes {
    fn new(what: &'static str, why: &'static str, secret: bool) -> Episodes {
        Episodes {
            what,
            why,
            secret,
            open: AtomicUsize::new(0),
            map: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Episode>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn name(&self, key: &str) -> String {
        if !self.secret {
            return key.to_string();
        }
        // Credentials are secrets: their first characters are enough to tell them apart.
        let head: String = key.chars().take(4).collect();
        format!("{head}…")
    }

    /// One line for an episode: from its first refusal to its latest.
    fn log(&self, key: &str, e: &Episode, going_on: bool) {
        let (what, name, refused) = (self.what, self.name(key), e.refused);
        let secs = (e.last - e.since) as f64 / 1_000.0;
        tracing::info!(
            what,
            key = %name,
            refused,
            seconds = secs,
            going_on,
            "{what} {name} throttled ({}): {refused} requests refused in {secs:.1} s{}",
            self.why,
            if going_on { ", still throttled" } else { "" }
        );
    }

    fn refused(&self, key: &str, now: Millis) {
        let mut map = self.lock();
        match map.get_mut(key) {
            Some(e) => {
                e.refused += 1;
                e.last = now;
                if now - e.since >= EPISODE_REPORT_MS {
                    self.log(key, e, true);
                    e.since = now;
                    e.refused = 0;
                }
            }
            None => {
                tracing::debug!(what = self.what, key = %self.name(key), "throttling starts");
                map.insert(
                    key.to_string(),
                    Episode {
                        since: now,
                        last: now,
                        refused: 1,
                    },
                );
                self.open.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn allowed(&self, key: &str, now: impl FnOnce() -> Millis) {
        if self.open.load(Ordering::Relaxed) == 0 {
            return;
        }
        let now = now();
        let mut map = self.lock();
        let over = map
            .get(key)
            .is_some_and(|e| now - e.last >= EPISODE_QUIET_MS);
        if over && let Some(e) = map.remove(key) {
            self.open.fetch_sub(1, Ordering::Relaxed);
            if e.refused > 0 {
                self.log(key, &e, false);
            }
        }
    }

    /// Logs the episodes still open (at shutdown) and forgets them.
    fn flush(&self) {
        let mut map = self.lock();
        for (key, e) in map.drain() {
            self.log(&key, &e, false);
        }
        self.open.store(0, Ordering::Relaxed);
    }

    fn clear(&self) {
        let mut map = self.lock();
        map.clear();
        self.open.store(0, Ordering::Relaxed);
    }
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
            messages: RwLock::new(keyed(mr, mb, &clock)),
            other: RwLock::new(keyed(or, ob, &clock)),
            pair: RwLock::new(None),
            throughput: RwLock::new(None),
            clock,
            credentials: Episodes::new("credential", "request rate limit", true),
            numbers: Episodes::new("phone number", "throughput, 130429", false),
            pairs: Episodes::new("phone number", "pair rate limit, 131056", false),
            pair_checks: AtomicUsize::new(0),
        };
        limits.set_rules(rules);
        limits
    }

    /// Every bucket full again (control API reset; the manual clock may have gone back).
    pub fn reset(&self, cfg: &LimitsConfig, rules: &RulesConfig) {
        let (mr, mb) = cfg.messages();
        let (or, ob) = cfg.other();
        *self.messages.write().unwrap_or_else(|e| e.into_inner()) = keyed(mr, mb, &self.clock);
        *self.other.write().unwrap_or_else(|e| e.into_inner()) = keyed(or, ob, &self.clock);
        self.set_rules(rules);
        for e in [&self.credentials, &self.numbers, &self.pairs] {
            e.clear();
        }
    }

    /// Logs the throttling episodes still going on (at shutdown: each is logged once).
    pub fn flush_episodes(&self) {
        for e in [&self.credentials, &self.numbers, &self.pairs] {
            e.flush();
        }
    }

    fn now_ms(&self) -> Millis {
        self.clock.0.now()
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

    /// Drops the entries of every key whose bucket is full again on the sandbox clock (a key
    /// idle past its window): they hold nothing a fresh entry would not. Runs by itself every
    /// [`EVICT_EVERY`] pair checks.
    pub fn evict_idle(&self) {
        for l in [&self.messages, &self.other, &self.pair, &self.throughput] {
            if let Some(l) = l.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
                l.retain_recent();
                l.shrink_to_fit();
            }
        }
    }

    /// Entries kept by the pair-rate limiter (one per number and user seen within its window).
    pub fn pair_entries(&self) -> usize {
        self.pair
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map_or(0, |l| l.len())
    }

    /// The pair-rate check for a number and a user; the key is built only when the rule is on.
    pub fn check_pair(&self, pnid: &str, wa_id: &str) -> Result<(), Duration> {
        let guard = self.pair.read().unwrap_or_else(|e| e.into_inner());
        let Some(limiter) = guard.as_ref() else {
            return Ok(());
        };
        if self.pair_checks.fetch_add(1, Ordering::Relaxed) % EVICT_EVERY == EVICT_EVERY - 1 {
            limiter.retain_recent();
        }
        let key = format!("{pnid}:{wa_id}");
        let result = limiter.check_key(&key).map_err(|not_until| {
            use governor::clock::Clock as _;
            not_until.wait_time_from(self.clock.now())
        });
        match result {
            Ok(()) => self.pairs.allowed(pnid, || self.now_ms()),
            Err(_) => self.pairs.refused(pnid, self.now_ms()),
        }
        result
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
        let read = |l: &RwLock<Option<Keyed>>| take(&l.read().unwrap_or_else(|e| e.into_inner()));
        let (result, episodes) = match bucket {
            Bucket::Messages => (read(&self.messages), &self.credentials),
            Bucket::Other => (read(&self.other), &self.credentials),
            Bucket::Throughput => (read(&self.throughput), &self.numbers),
        };
        match result {
            Ok(()) => episodes.allowed(key, || self.now_ms()),
            Err(_) => episodes.refused(key, self.now_ms()),
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_pairs_are_dropped_once_their_bucket_refilled() {
        let clock = Arc::new(Clock::manual(1_000_000));
        let mut rules = RulesConfig::off();
        rules.pair_rate = Some(crate::config::PairRate {
            every_ms: 6_000,
            burst: 1,
        });
        let l = Limits::new(&LimitsConfig::default(), &rules, clock.clone());
        for u in 0..100 {
            assert!(l.check_pair("pn", &format!("user{u}")).is_ok());
        }
        assert_eq!(l.pair_entries(), 100);
        // Within the window the entries hold state (the next send would wait): kept.
        clock.set(1_003_000);
        l.evict_idle();
        assert_eq!(l.pair_entries(), 100);
        assert!(l.check_pair("pn", "user1").is_err());
        // Well past it (governor keeps a key until it is indistinguishable from a fresh one,
        // one emission interval after its bucket refilled), the entries go, and the rule still
        // holds.
        clock.set(1_020_000);
        l.evict_idle();
        assert_eq!(l.pair_entries(), 0);
        assert!(l.check_pair("pn", "user1").is_ok());
        assert!(l.check_pair("pn", "user1").is_err());
        // It also happens by itself, every few thousand checks.
        clock.set(1_040_000);
        for u in 0..EVICT_EVERY {
            let _ = l.check_pair("pn2", &format!("u{}", u % 10));
        }
        assert!(l.pair_entries() <= 10, "{}", l.pair_entries());
    }

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
