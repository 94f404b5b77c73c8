//! What the gateway knows of its links to the platform, for `GET /health` and for the log: can
//! the upstream be reached, is it throttling, and do webhooks arrive for what was sent. Every
//! change of one of these is logged once per episode (the first failure, then the recovery),
//! never per request.

use crate::clock::Millis;
use serde::Serialize;
use std::sync::Mutex;

/// How long accepted sends may go without any webhook before the log says the webhooks are not
/// arriving (the platform sends `sent` within seconds).
pub const WEBHOOK_QUIET_MS: Millis = 60_000;

/// The links' state.
#[derive(Debug, Default)]
pub struct Health {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    upstream: Upstream,
    throttle: Throttle,
    webhooks: Webhooks,
}

/// Whether the upstream answers.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Upstream {
    /// False from the first attempt that could not reach it until one that did (true before
    /// any attempt).
    pub reachable: bool,
    /// Since when it cannot be reached.
    pub failing_since: Option<Millis>,
    /// Attempts that failed in this episode.
    pub failures: u64,
    /// The last failure.
    pub last_error: Option<String>,
    /// The last answer of any kind.
    pub last_answer_at: Option<Millis>,
}

/// Whether the upstream is throttling the number.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Throttle {
    /// Since when (`None`: not throttled).
    pub since: Option<Millis>,
    /// Throttle answers in this episode.
    pub signals: u64,
    /// The send rate in force, messages per second.
    pub rate: Option<f64>,
}

/// Whether webhooks arrive for what was sent.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Webhooks {
    /// The last webhook body received.
    pub last_received_at: Option<Millis>,
    /// Sends accepted since the last webhook.
    pub accepted_since: u64,
    /// The first of those.
    pub waiting_since: Option<Millis>,
    /// Whether the log said they are not arriving (until one arrives).
    pub missing: bool,
}

/// A snapshot for `GET /health`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `ok`, or `degraded` while the upstream cannot be reached or webhooks are missing.
    pub status: &'static str,
    /// The upstream link.
    pub upstream: Upstream,
    /// Throttling.
    pub throttle: Throttle,
    /// Webhook arrivals.
    pub webhooks: Webhooks,
}

impl Health {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An attempt reached the upstream and got an answer (any answer).
    pub fn upstream_answered(&self, now: Millis, url: &str) {
        let mut st = self.lock();
        let u = &mut st.upstream;
        u.last_answer_at = Some(now);
        if let Some(since) = u.failing_since.take() {
            tracing::info!(
                upstream = url,
                failed_attempts = u.failures,
                after_ms = now - since,
                "upstream reachable again"
            );
        }
        u.failures = 0;
        u.last_error = None;
    }

    /// An attempt could not reach the upstream (refused, timed out, broken connection).
    pub fn upstream_failed(&self, now: Millis, url: &str, error: &str) {
        let mut st = self.lock();
        let u = &mut st.upstream;
        if u.failing_since.is_none() {
            u.failing_since = Some(now);
            tracing::warn!(
                upstream = url,
                error,
                "cannot reach the upstream; sends wait and retry (logged once until it answers)"
            );
        }
        u.failures += 1;
        u.last_error = Some(error.to_string());
    }

    /// The upstream throttled the number: the rate is now `rate`, sends pause until `until`.
    pub fn throttled(&self, now: Millis, code: Option<i64>, rate: f64, until: Millis) {
        let mut st = self.lock();
        let t = &mut st.throttle;
        t.signals += 1;
        t.rate = Some(rate);
        if t.since.is_none() {
            t.since = Some(now);
            tracing::warn!(
                ?code,
                rate_per_sec = rate,
                pause_ms = until - now,
                "upstream throttled the number; sending slower (logged once per episode)"
            );
        } else {
            tracing::debug!(?code, rate_per_sec = rate, "throttled again");
        }
    }

    /// A send went through at `rate`; a throttle episode ends once the rate is back at `ceiling`.
    pub fn sent_at_rate(&self, now: Millis, rate: f64, ceiling: f64) {
        let mut st = self.lock();
        let t = &mut st.throttle;
        if let Some(since) = t.since {
            t.rate = Some(rate);
            if rate >= ceiling {
                tracing::info!(
                    signals = t.signals,
                    after_ms = now - since,
                    rate_per_sec = rate,
                    "throttling over; back at the full rate"
                );
                *t = Throttle::default();
            }
        }
    }

    /// The platform accepted a send (a webhook should follow).
    pub fn accepted(&self, now: Millis) {
        let mut st = self.lock();
        let w = &mut st.webhooks;
        w.accepted_since += 1;
        w.waiting_since.get_or_insert(now);
    }

    /// A webhook body arrived.
    pub fn webhook_received(&self, now: Millis) {
        let mut st = self.lock();
        let w = &mut st.webhooks;
        if w.missing {
            tracing::info!("webhooks are arriving again");
        }
        w.last_received_at = Some(now);
        w.accepted_since = 0;
        w.waiting_since = None;
        w.missing = false;
    }

    /// Looks for accepted sends that no webhook followed for [`WEBHOOK_QUIET_MS`]; says so once.
    /// `intake` is where the platform should post.
    pub fn check(&self, now: Millis, intake: &str) {
        let mut st = self.lock();
        let w = &mut st.webhooks;
        if let Some(since) = w.waiting_since
            && !w.missing
            && now - since >= WEBHOOK_QUIET_MS
        {
            w.missing = true;
            tracing::warn!(
                accepted = w.accepted_since,
                waiting_ms = now - since,
                intake,
                "the platform accepted messages but no webhook has arrived since: their statuses are not tracked; is the platform's webhook URL pointing at the intake?"
            );
        }
    }

    /// The snapshot.
    pub fn report(&self) -> Report {
        let st = self.lock();
        let degraded = st.upstream.failing_since.is_some() || st.webhooks.missing;
        Report {
            status: if degraded { "degraded" } else { "ok" },
            upstream: Upstream {
                reachable: st.upstream.failing_since.is_none(),
                ..st.upstream.clone()
            },
            throttle: st.throttle.clone(),
            webhooks: st.webhooks.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn episodes_start_and_end_once() {
        let h = Health::default();
        assert_eq!(h.report().status, "ok");
        h.upstream_failed(1_000, "http://u", "connection refused");
        h.upstream_failed(2_000, "http://u", "connection refused");
        let r = h.report();
        assert_eq!(
            (r.status, r.upstream.failing_since, r.upstream.failures),
            ("degraded", Some(1_000), 2)
        );
        h.upstream_answered(3_000, "http://u");
        let r = h.report();
        assert!(r.upstream.reachable && r.upstream.failing_since.is_none());

        h.accepted(10_000);
        h.accepted(11_000);
        h.check(10_000 + WEBHOOK_QUIET_MS - 1, "http://g/webhooks");
        assert!(!h.report().webhooks.missing);
        h.check(10_000 + WEBHOOK_QUIET_MS, "http://g/webhooks");
        let r = h.report();
        assert!(r.webhooks.missing && r.status == "degraded");
        assert_eq!(r.webhooks.accepted_since, 2);
        h.webhook_received(80_000);
        let r = h.report();
        assert!(!r.webhooks.missing && r.webhooks.waiting_since.is_none());

        h.throttled(5_000, Some(130429), 40.0, 6_000);
        h.throttled(5_500, Some(130429), 40.0, 6_500);
        h.sent_at_rate(7_000, 60.0, 80.0);
        assert_eq!(h.report().throttle.signals, 2);
        h.sent_at_rate(9_000, 80.0, 80.0);
        assert_eq!(h.report().throttle.since, None);
    }
}
