//! The gateway's rate limiters, on gateway time ([`Millis`] passed in, so tests never sleep):
//!
//! - [`NumberLimiter`]: one per sending number. A GCRA bucket (rate in messages per second,
//!   burst) that **adapts** (AIMD): a throttle signal (429, 503, 130429, 360dialog's endpoint
//!   rate limit …) multiplies the rate by a factor, down to a floor, and blocks the bucket until
//!   `Retry-After` (or a default pause); clean sending creeps the rate back up additively toward
//!   the configured ceiling. Presets: 360dialog 50/s, Cloud API 80/s, both with bursts of 40 (under
//!   every limit that applies to the number at once); configurable.
//! - [`PairLimiter`]: one per sending number, keyed by recipient (`wa_id`): about one message per
//!   6 s with bursts (45), modelled as borrowed time (spec §6.4), and a 4^X s backoff after
//!   consecutive 131056 errors, reset by a success. Idle entries expire, so memory stays bounded.
//!
//! Hand-written rather than `governor`: governor's quota is fixed when the limiter is built, and
//! the number's bucket must change its rate at run time (AIMD, and limits read from the
//! upstream). Both take `&mut self`; the dispatcher owns them (behind its own lock if shared).
//! `try_take` allocates nothing for an existing key.

use crate::clock::Millis;
use crate::upstream::Dialect;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

const NANOS_PER_MS: i64 = 1_000_000;

/// Settings of a [`NumberLimiter`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NumberLimitConfig {
    /// The ceiling: messages per second when nothing throttles.
    pub rate: f64,
    /// Messages that may go at once from a full bucket.
    pub burst: u32,
    /// The rate never falls below this, messages per second.
    pub min_rate: f64,
    /// A throttle multiplies the rate by this (0.5).
    pub decrease: f64,
    /// Clean sending adds this share of the ceiling per second (0.05: +5 % of it per second).
    pub increase_per_sec: f64,
    /// Pause after a throttle without `Retry-After`, ms.
    pub pause_ms: Millis,
    /// At most one cut per this interval, ms (a volley of in-flight 429s is one signal).
    pub cut_interval_ms: Millis,
}

impl Default for NumberLimitConfig {
    /// The Cloud API preset.
    fn default() -> Self {
        NumberLimitConfig::cloud()
    }
}

impl NumberLimitConfig {
    /// 360dialog: 50 messages/s (the seed page's request limit), bursts of 40. The burst stays
    /// under both limits that apply to the number at once — 360dialog's (bursts to 150) and the
    /// Cloud API's per-number throughput behind it (80/s, one second of burst) — with room for
    /// requests that arrive closer together than they left.
    pub fn d360() -> NumberLimitConfig {
        NumberLimitConfig {
            rate: 50.0,
            burst: 40,
            ..NumberLimitConfig::cloud()
        }
    }

    /// Cloud API: 80 messages/s per number (1,000 after the upgrade), bursts of 40: half the
    /// platform's one second of burst, so arrival jitter never meets an empty bucket.
    pub fn cloud() -> NumberLimitConfig {
        NumberLimitConfig {
            rate: 80.0,
            burst: 40,
            min_rate: 1.0,
            decrease: 0.5,
            increase_per_sec: 0.05,
            pause_ms: 1_000,
            cut_interval_ms: 1_000,
        }
    }

    /// The preset of a dialect.
    pub fn for_dialect(d: Dialect) -> NumberLimitConfig {
        match d {
            Dialect::D360 => NumberLimitConfig::d360(),
            Dialect::Cloud => NumberLimitConfig::cloud(),
        }
    }

    /// Checks the numbers.
    pub fn check(&self) -> Result<(), String> {
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return Err("rate must be above 0".into());
        }
        if self.burst == 0 {
            return Err("burst must be at least 1".into());
        }
        if !(self.min_rate.is_finite() && self.min_rate > 0.0 && self.min_rate <= self.rate) {
            return Err("min_rate must be above 0 and at most rate".into());
        }
        if !(self.decrease > 0.0 && self.decrease < 1.0) {
            return Err("decrease must be between 0 and 1".into());
        }
        if !(self.increase_per_sec.is_finite() && self.increase_per_sec >= 0.0) {
            return Err("increase_per_sec must not be negative".into());
        }
        if self.pause_ms < 0 || self.cut_interval_ms < 0 {
            return Err("pause_ms and cut_interval_ms must not be negative".into());
        }
        Ok(())
    }
}

/// The adaptive bucket of one sending number (GCRA in nanoseconds, exact for whole rates).
#[derive(Debug, Clone)]
pub struct NumberLimiter {
    cfg: NumberLimitConfig,
    /// The rate in force, messages per second.
    rate: f64,
    /// Emission interval at `rate`, ns.
    interval: i64,
    /// Theoretical arrival time, ns.
    tat: i64,
    /// Last rate cut.
    last_cut: Option<Millis>,
    /// Clean sending counts from here (the end of the last pause).
    clean_since: Millis,
    /// No message before this.
    blocked_until: Millis,
}

fn interval_ns(rate: f64) -> i64 {
    ((1e9 / rate).round() as i64).max(1)
}

fn ceil_ms(ns: i64) -> Millis {
    ns.div_euclid(NANOS_PER_MS) + i64::from(ns.rem_euclid(NANOS_PER_MS) != 0)
}

impl NumberLimiter {
    /// A full bucket at the ceiling. Panics on settings that [`NumberLimitConfig::check`]
    /// refuses; use [`NumberLimiter::try_new`] for configuration input.
    pub fn new(cfg: NumberLimitConfig) -> NumberLimiter {
        NumberLimiter::try_new(cfg).expect("valid number limit")
    }

    /// A full bucket at the ceiling, or why the settings are wrong.
    pub fn try_new(cfg: NumberLimitConfig) -> Result<NumberLimiter, String> {
        cfg.check()?;
        Ok(NumberLimiter {
            rate: cfg.rate,
            interval: interval_ns(cfg.rate),
            cfg,
            tat: i64::MIN / 2,
            last_cut: None,
            clean_since: Millis::MIN,
            blocked_until: Millis::MIN,
        })
    }

    fn tau(&self) -> i64 {
        self.interval.saturating_mul(i64::from(self.cfg.burst))
    }

    /// Takes one message's slot at `now`, or says the earliest time one is free.
    pub fn try_take(&mut self, now: Millis) -> Result<(), Millis> {
        let now_ns = now.saturating_mul(NANOS_PER_MS);
        let t = self.tat.max(now_ns).saturating_add(self.interval);
        if t - now_ns <= self.tau() {
            self.tat = t;
            Ok(())
        } else {
            Err(ceil_ms(t - self.tau()))
        }
    }

    /// The earliest time a slot is free (now or later), without taking it.
    pub fn next_free(&self, now: Millis) -> Millis {
        let now_ns = now.saturating_mul(NANOS_PER_MS);
        let t = self.tat.max(now_ns).saturating_add(self.interval);
        ceil_ms((t - self.tau()).max(now_ns))
    }

    /// A throttle signal at `now`: cuts the rate (once per `cut_interval_ms`) and blocks the
    /// bucket until `now + retry_after` (or the default pause). Returns the end of the block.
    pub fn on_throttle(&mut self, now: Millis, retry_after: Option<Millis>) -> Millis {
        let cut_due = self
            .last_cut
            .is_none_or(|last| now.saturating_sub(last) >= self.cfg.cut_interval_ms);
        if cut_due {
            self.set_rate(now, (self.rate * self.cfg.decrease).max(self.cfg.min_rate));
            self.last_cut = Some(now);
        }
        let until = now.saturating_add(retry_after.unwrap_or(self.cfg.pause_ms).max(0));
        self.blocked_until = self.blocked_until.max(until);
        // The first slot is at `until`, then the new rate, with no burst right after a pause.
        let block_tat = self
            .blocked_until
            .saturating_mul(NANOS_PER_MS)
            .saturating_add(self.tau() - self.interval);
        self.tat = self.tat.max(block_tat);
        self.clean_since = self.clean_since.max(self.blocked_until);
        self.blocked_until
    }

    /// A message went through at `now`: the rate creeps back up by `increase_per_sec` of the
    /// ceiling per second of clean sending since the last pause or success.
    pub fn on_success(&mut self, now: Millis) {
        if self.rate >= self.cfg.rate {
            self.clean_since = self.clean_since.max(now);
            return;
        }
        if now <= self.clean_since {
            return;
        }
        let secs = (now - self.clean_since) as f64 / 1_000.0;
        let rate =
            (self.rate + self.cfg.rate * self.cfg.increase_per_sec * secs).min(self.cfg.rate);
        self.set_rate(now, rate);
        self.clean_since = now;
    }

    /// Changes the rate at `now`, keeping the bucket's level in messages (a backlog of n
    /// slots stays n slots at the new rate).
    fn set_rate(&mut self, now: Millis, rate: f64) {
        let old = self.interval;
        self.rate = rate;
        self.interval = interval_ns(rate);
        let now_ns = now.saturating_mul(NANOS_PER_MS);
        if self.tat > now_ns && old != self.interval {
            let backlog = (self.tat - now_ns) as f64 * self.interval as f64 / old as f64;
            self.tat = now_ns.saturating_add(backlog.round() as i64);
        }
    }

    /// Changes the ceiling and burst at run time (limits learnt from the upstream). A rate
    /// above the new ceiling comes down to it; an unadapted rate follows the ceiling up.
    pub fn set_limit(&mut self, now: Millis, rate: f64, burst: u32) -> Result<(), String> {
        let at_ceiling = self.rate >= self.cfg.rate;
        let cfg = NumberLimitConfig {
            rate,
            burst,
            min_rate: self.cfg.min_rate.min(rate),
            ..self.cfg.clone()
        };
        cfg.check()?;
        self.cfg = cfg;
        if at_ceiling || self.rate > rate {
            self.set_rate(now, rate);
        }
        Ok(())
    }

    /// The rate in force, messages per second.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// The settings (the ceiling is `config().rate`).
    pub fn config(&self) -> &NumberLimitConfig {
        &self.cfg
    }

    /// Until when a throttle blocks the bucket (in the past when it does not).
    pub fn blocked_until(&self) -> Millis {
        self.blocked_until
    }
}

/// Settings of a [`PairLimiter`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PairLimitConfig {
    /// One message per this interval to the same recipient, ms (6 s).
    pub every_ms: Millis,
    /// Messages a burst may borrow (45).
    pub burst: u32,
    /// 131056 backoff: `base × factor^X` with X = consecutive errors − 1 (1 s, 4 s, 16 s …).
    pub backoff_base_ms: Millis,
    /// The factor (4).
    pub backoff_factor: u32,
    /// Longest backoff, ms.
    pub backoff_cap_ms: Millis,
    /// An idle recipient's error count is forgotten this long after its backoff ended, ms.
    pub forget_ms: Millis,
}

impl Default for PairLimitConfig {
    fn default() -> Self {
        PairLimitConfig {
            every_ms: 6_000,
            burst: 45,
            backoff_base_ms: 1_000,
            backoff_factor: 4,
            backoff_cap_ms: 3_600_000,
            forget_ms: 3_600_000,
        }
    }
}

impl PairLimitConfig {
    /// Checks the numbers.
    pub fn check(&self) -> Result<(), String> {
        if self.every_ms <= 0 || self.burst == 0 || self.backoff_factor == 0 {
            return Err("every_ms, burst and backoff_factor must be above 0".into());
        }
        if self.backoff_base_ms < 0 || self.backoff_cap_ms < 0 || self.forget_ms < 0 {
            return Err("backoff and forget times must not be negative".into());
        }
        Ok(())
    }
}

/// One recipient's state.
#[derive(Debug, Clone, Copy, Default)]
struct Pair {
    /// When the borrowed time is repaid.
    repaid_at: Millis,
    /// Start of the current burst.
    burst_start: Millis,
    /// Messages in the current burst.
    in_burst: u32,
    /// Consecutive 131056 errors.
    errors: u32,
    /// Backed off until.
    blocked_until: Millis,
}

/// The pair limiter of one sending number, keyed by recipient.
///
/// Borrowed time: each message borrows `every_ms`. When the debt is repaid a burst may start,
/// and within `every_ms` of its start it may borrow up to `burst` messages; after that the
/// recipient waits until the debt is repaid (a burst of 20 at 6 s each waits 2 minutes). Steady
/// sending is one message per `every_ms`. This is stricter than a token bucket of the same
/// numbers, so it never exceeds one.
#[derive(Debug, Clone)]
pub struct PairLimiter {
    cfg: PairLimitConfig,
    pairs: HashMap<String, Pair>,
    /// Sweep expired entries when the map reaches this size.
    sweep_at: usize,
}

const MIN_SWEEP: usize = 1_024;

impl PairLimiter {
    /// An empty limiter. Panics on settings [`PairLimitConfig::check`] refuses.
    pub fn new(cfg: PairLimitConfig) -> PairLimiter {
        PairLimiter::try_new(cfg).expect("valid pair limit")
    }

    /// An empty limiter, or why the settings are wrong.
    pub fn try_new(cfg: PairLimitConfig) -> Result<PairLimiter, String> {
        cfg.check()?;
        Ok(PairLimiter {
            cfg,
            pairs: HashMap::new(),
            sweep_at: MIN_SWEEP,
        })
    }

    fn take(cfg: &PairLimitConfig, p: &mut Pair, now: Millis) -> Result<(), Millis> {
        if now < p.blocked_until {
            return Err(p.blocked_until);
        }
        if p.repaid_at <= now {
            p.burst_start = now;
            p.in_burst = 0;
        } else if now >= p.burst_start.saturating_add(cfg.every_ms) || p.in_burst >= cfg.burst {
            return Err(p.repaid_at);
        }
        p.in_burst += 1;
        p.repaid_at = p.repaid_at.max(now).saturating_add(cfg.every_ms);
        Ok(())
    }

    /// Takes a message's slot to `wa_id` at `now`, or says the earliest time one is free.
    pub fn try_take(&mut self, wa_id: &str, now: Millis) -> Result<(), Millis> {
        if let Some(p) = self.pairs.get_mut(wa_id) {
            return Self::take(&self.cfg, p, now);
        }
        if self.pairs.len() >= self.sweep_at {
            self.sweep(now);
        }
        let mut p = Pair::default();
        let r = Self::take(&self.cfg, &mut p, now);
        self.pairs.insert(wa_id.to_string(), p);
        r
    }

    /// A 131056 for `wa_id` at `now`: backs that recipient off `base × factor^X` (X = its
    /// consecutive errors − 1). Returns the end of the backoff.
    pub fn on_pair_error(&mut self, wa_id: &str, now: Millis) -> Millis {
        let cfg = &self.cfg;
        if !self.pairs.contains_key(wa_id) {
            self.pairs.insert(wa_id.to_string(), Pair::default());
        }
        let Some(p) = self.pairs.get_mut(wa_id) else {
            return now;
        };
        p.errors = p.errors.saturating_add(1);
        let mut d = cfg.backoff_base_ms;
        for _ in 1..p.errors {
            d = d.saturating_mul(Millis::from(cfg.backoff_factor));
            if d >= cfg.backoff_cap_ms {
                break;
            }
        }
        let until = now.saturating_add(d.min(cfg.backoff_cap_ms));
        p.blocked_until = p.blocked_until.max(until);
        p.blocked_until
    }

    /// A message to `wa_id` went through: its error count resets.
    pub fn on_success(&mut self, wa_id: &str) {
        if let Some(p) = self.pairs.get_mut(wa_id) {
            p.errors = 0;
        }
    }

    /// Consecutive pair errors of `wa_id`.
    pub fn errors(&self, wa_id: &str) -> u32 {
        self.pairs.get(wa_id).map_or(0, |p| p.errors)
    }

    /// Drops the entries that are as good as new at `now` (debt repaid, no backoff, errors
    /// forgotten). Runs by itself as the map grows; callable on a timer too.
    pub fn sweep(&mut self, now: Millis) {
        let forget = self.cfg.forget_ms;
        self.pairs.retain(|_, p| {
            p.repaid_at > now
                || p.blocked_until > now
                || (p.errors > 0 && p.blocked_until.saturating_add(forget) > now)
        });
        self.sweep_at = (self.pairs.len() * 2).max(MIN_SWEEP);
    }

    /// The recipient once known as `from` is now known as `into` (a person's ids were linked,
    /// or they changed): `into` keeps the stricter of both states.
    pub fn rekey(&mut self, from: &str, into: &str) {
        if from == into {
            return;
        }
        let Some(old) = self.pairs.remove(from) else {
            return;
        };
        let p = self.pairs.entry(into.to_string()).or_default();
        p.repaid_at = p.repaid_at.max(old.repaid_at);
        if old.burst_start >= p.burst_start {
            p.burst_start = old.burst_start;
            p.in_burst = p.in_burst.max(old.in_burst);
        }
        p.errors = p.errors.max(old.errors);
        p.blocked_until = p.blocked_until.max(old.blocked_until);
    }

    /// Recipients tracked.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// True when no recipient is tracked.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Millis = 1_767_225_600_000;

    /// Admissions of a sender that tries many times at one instant.
    fn at_once(l: &mut NumberLimiter, t: Millis) -> usize {
        (0..10_000).filter(|_| l.try_take(t).is_ok()).count()
    }

    /// Admissions of a greedy sender that tries every millisecond in `(from, to]`.
    fn greedy(l: &mut NumberLimiter, from: Millis, to: Millis) -> usize {
        (from + 1..=to).filter(|t| l.try_take(*t).is_ok()).count()
    }

    /// 50/s with bursts of 150 (round figures for the mechanics).
    fn fifty_150() -> NumberLimitConfig {
        NumberLimitConfig {
            rate: 50.0,
            burst: 150,
            ..NumberLimitConfig::d360()
        }
    }

    #[test]
    fn a_rekeyed_recipient_keeps_its_debt() {
        let mut l = PairLimiter::new(PairLimitConfig {
            every_ms: 60_000,
            burst: 1,
            ..PairLimitConfig::default()
        });
        assert!(l.try_take("4915100000001", 0).is_ok());
        l.rekey("4915100000001", "ct_1");
        assert_eq!(
            l.try_take("ct_1", 1),
            Err(60_000),
            "the phone's debt is the person's"
        );
        assert!(
            l.try_take("4915100000001", 1).is_ok(),
            "the old key is free"
        );
    }

    #[test]
    fn presets_stay_under_every_limit_of_the_number() {
        // 360dialog: 50 requests/s, bursts to 150; behind it the Cloud API's 80/s per number
        // with one second of burst. Half of the smaller burst is left for arrival jitter.
        let d = NumberLimitConfig::d360();
        assert!(d.rate <= 50.0 && d.burst as f64 <= 0.5 * 80.0);
        let c = NumberLimitConfig::cloud();
        assert!(c.rate <= 80.0 && c.burst as f64 <= 0.5 * 80.0);
        assert_eq!(NumberLimitConfig::default(), c);
    }

    #[test]
    fn burst_then_steady_rate_exact_counts() {
        let mut l = NumberLimiter::new(fifty_150());
        assert_eq!(at_once(&mut l, T0), 150);
        assert_eq!(l.try_take(T0), Err(T0 + 20));
        assert_eq!(l.next_free(T0), T0 + 20);
        assert_eq!(greedy(&mut l, T0, T0 + 1_000), 50);
        assert_eq!(greedy(&mut l, T0 + 1_000, T0 + 10_000), 450);

        let mut l = NumberLimiter::new(NumberLimitConfig::cloud());
        assert_eq!(at_once(&mut l, T0), 40);
        assert_eq!(greedy(&mut l, T0, T0 + 1_000), 80);
        // 12.5 ms per message: the slots fall on half milliseconds, rounded up.
        assert_eq!(l.try_take(T0 + 1_000), Err(T0 + 1_013));

        // A paced sender at exactly the rate is never refused.
        let mut l = NumberLimiter::new(NumberLimitConfig {
            burst: 1,
            ..fifty_150()
        });
        for i in 0..500 {
            assert_eq!(l.try_take(T0 + i * 20), Ok(()), "message {i}");
        }
        assert!(l.try_take(T0 + 499 * 20 + 19).is_err());
    }

    #[test]
    fn an_idle_bucket_refills_to_its_burst_only() {
        let mut l = NumberLimiter::new(fifty_150());
        assert_eq!(at_once(&mut l, T0), 150);
        // Three seconds idle refill the 150, not more.
        assert_eq!(at_once(&mut l, T0 + 10_000), 150);
    }

    #[test]
    fn aimd_cut_pause_and_recovery() {
        let mut l = NumberLimiter::new(fifty_150());
        assert_eq!(at_once(&mut l, T0), 150);
        // A 429 with Retry-After 2 s: the rate halves, nothing until T0 + 2 s.
        let until = l.on_throttle(T0, Some(2_000));
        assert_eq!(until, T0 + 2_000);
        assert_eq!(l.rate(), 25.0);
        assert_eq!(l.try_take(T0 + 1_999), Err(T0 + 2_000));
        // A volley of in-flight throttles within the cut interval is one cut (the block grows).
        l.on_throttle(T0 + 10, None);
        l.on_throttle(T0 + 500, Some(1_000));
        assert_eq!(l.rate(), 25.0);
        assert_eq!(l.blocked_until(), T0 + 2_000);
        // After the pause: no burst, the new rate (one per 40 ms).
        assert_eq!(l.try_take(T0 + 2_000), Ok(()));
        assert_eq!(l.try_take(T0 + 2_000), Err(T0 + 2_040));
        assert_eq!(greedy(&mut l, T0 + 2_000, T0 + 3_000), 25);

        // A second throttle a second later cuts again, down to the floor at most.
        l.on_throttle(T0 + 3_000, None);
        assert_eq!(l.rate(), 12.5);
        assert_eq!(l.blocked_until(), T0 + 4_000);
        for i in 0..20 {
            l.on_throttle(T0 + 5_000 + i * 1_000, Some(0));
        }
        assert_eq!(l.rate(), 1.0);

        // Recovery: +5 % of the ceiling (2.5/s) per second of clean sending, counted from the
        // end of the last pause, up to the ceiling.
        let clean = T0 + 24_000;
        l.on_success(clean - 500); // inside the pause: no credit
        assert_eq!(l.rate(), 1.0);
        l.on_success(clean + 1_000);
        assert!((l.rate() - 3.5).abs() < 1e-9, "{}", l.rate());
        for s in 2..=10 {
            l.on_success(clean + s * 1_000);
        }
        assert!((l.rate() - 26.0).abs() < 1e-9, "{}", l.rate());
        for s in 11..=40 {
            l.on_success(clean + s * 1_000);
        }
        assert_eq!(l.rate(), 50.0);
        // At the ceiling, a burst's worth of idle time refills the bucket again.
        assert_eq!(at_once(&mut l, clean + 100_000), 150);
    }

    #[test]
    fn throttle_without_retry_after_uses_the_pause_and_limits_change_at_run_time() {
        let mut l = NumberLimiter::new(NumberLimitConfig::cloud());
        assert_eq!(l.on_throttle(T0, None), T0 + 1_000);
        assert_eq!(l.rate(), 40.0);
        assert!(l.try_take(T0 + 999).is_err());
        assert!(l.try_take(T0 + 1_000).is_ok());
        // A raised ceiling: an adapted rate stays; an unadapted one follows.
        l.set_limit(T0 + 1_000, 1_000.0, 1_000).unwrap();
        assert_eq!(l.rate(), 40.0);
        let mut fresh = NumberLimiter::new(NumberLimitConfig::cloud());
        fresh.set_limit(T0, 1_000.0, 1_000).unwrap();
        assert_eq!(fresh.rate(), 1_000.0);
        assert_eq!(at_once(&mut fresh, T0), 1_000);
        assert!(fresh.set_limit(T0, 0.0, 1).is_err());
        assert!(
            NumberLimiter::try_new(NumberLimitConfig {
                decrease: 1.5,
                ..NumberLimitConfig::cloud()
            })
            .is_err()
        );
        let cfg: NumberLimitConfig = toml::from_str("rate = 20.0\nburst = 20").unwrap();
        assert_eq!(cfg.decrease, 0.5);
    }

    #[test]
    fn pair_burst_borrows_time() {
        let mut p = PairLimiter::new(PairLimitConfig::default());
        // 45 in a burst, then the debt (45 × 6 s) is repaid before the next.
        let n = (0..100).filter(|_| p.try_take("4915", T0).is_ok()).count();
        assert_eq!(n, 45);
        assert_eq!(p.try_take("4915", T0 + 5_999), Err(T0 + 270_000));
        assert_eq!(p.try_take("4915", T0 + 6_000), Err(T0 + 270_000));
        // Others are not affected.
        assert_eq!(p.try_take("4916", T0), Ok(()));
        assert_eq!(p.try_take("4915", T0 + 270_000), Ok(()));

        // A burst of 20 waits two minutes.
        let mut p = PairLimiter::new(PairLimitConfig::default());
        for _ in 0..20 {
            p.try_take("1", T0).unwrap();
        }
        assert_eq!(p.try_take("1", T0 + 6_000), Err(T0 + 120_000));
        // Steady sending: one per 6 s goes through; faster does not.
        let mut p = PairLimiter::new(PairLimitConfig {
            burst: 1,
            ..PairLimitConfig::default()
        });
        for i in 0..10 {
            assert_eq!(p.try_take("1", T0 + i * 6_000), Ok(()));
        }
        assert_eq!(p.try_take("1", T0 + 59_999), Err(T0 + 60_000));
    }

    #[test]
    fn pair_backoff_grows_and_resets() {
        let mut p = PairLimiter::new(PairLimitConfig::default());
        let mut now = T0;
        let mut waits = Vec::new();
        for _ in 0..8 {
            let until = p.on_pair_error("1", now);
            waits.push(until - now);
            assert_eq!(p.try_take("1", until - 1), Err(until));
            now = until;
        }
        assert_eq!(
            waits,
            vec![
                1_000, 4_000, 16_000, 64_000, 256_000, 1_024_000, 3_600_000, 3_600_000
            ]
        );
        assert_eq!(p.errors("1"), 8);
        assert_eq!(p.try_take("1", now), Ok(()));
        p.on_success("1");
        assert_eq!(p.errors("1"), 0);
        assert_eq!(p.on_pair_error("1", now) - now, 1_000);
        // An unknown recipient's first error backs it off too.
        assert_eq!(p.on_pair_error("2", now), now + 1_000);
    }

    #[test]
    fn idle_entries_expire() {
        let mut p = PairLimiter::new(PairLimitConfig::default());
        for i in 0..5_000 {
            p.try_take(&format!("49{i}"), T0 + i).unwrap();
        }
        p.on_pair_error("490", T0 + 6_000);
        assert!(p.len() <= 5_000);
        // A minute later every debt is repaid; only the one with errors stays.
        p.sweep(T0 + 70_000);
        assert_eq!(p.len(), 1);
        assert_eq!(p.errors("490"), 1);
        // Its errors are forgotten an hour after its backoff.
        p.sweep(T0 + 6_000 + 1_000 + 3_600_000);
        assert!(p.is_empty());
        // The map sweeps itself as it grows: a stream of one-off recipients stays bounded.
        for i in 0..50_000i64 {
            p.try_take(&format!("1{i}"), T0 + i * 1_000).unwrap();
        }
        assert!(p.len() <= 2 * MIN_SWEEP, "{}", p.len());
    }
}
