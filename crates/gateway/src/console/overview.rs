//! The console's overview: queue depth by state and lane (the store), the send rate against the
//! number's limit, the platform's error codes over the last hour and the webhook intake's
//! latency (the metrics' counters, which only ever grow, read every [`SAMPLE_EVERY`] into a ring
//! of an hour so that a window is the difference of two readings).
//!
//! The sampler reads the counters off the send path (it renders the metrics registry as a
//! scrape does, once per period); the send path itself is untouched.

use crate::gateway::Gateway;
use crate::store::Store;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

/// How often the counters are read.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// How far back the ring reaches.
pub const WINDOW: Duration = Duration::from_secs(3_600);

/// One reading of the counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reading {
    /// Wall-clock time, unix ms.
    pub at: i64,
    /// Sends by (outcome, error code or empty).
    pub sends: HashMap<(String, String), f64>,
    /// Intake latency histogram: cumulative counts by upper bound (seconds).
    pub intake_buckets: Vec<(f64, f64)>,
    /// Its sum of seconds.
    pub intake_sum: f64,
    /// Its count.
    pub intake_count: f64,
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The value of `key="…"` in a label set.
fn label<'a>(labels: &'a str, key: &str) -> Option<&'a str> {
    let start = labels.find(&format!("{key}=\""))? + key.len() + 2;
    let rest = &labels[start..];
    Some(&rest[..rest.find('"')?])
}

/// Reads the counters the overview needs from the registry's text.
pub fn parse(text: &str, at: i64) -> Reading {
    let mut r = Reading {
        at,
        ..Reading::default()
    };
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((name_labels, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = match name_labels.split_once('{') {
            Some((n, l)) => (n, l.trim_end_matches('}')),
            None => (name_labels, ""),
        };
        match name {
            "mynah_gateway_sends_total" => {
                let outcome = label(labels, "outcome").unwrap_or_default().to_string();
                let code = label(labels, "code").unwrap_or_default().to_string();
                r.sends.insert((outcome, code), value);
            }
            "mynah_gateway_intake_latency_seconds_bucket" => {
                let le = match label(labels, "le") {
                    Some("+Inf") => f64::INFINITY,
                    Some(v) => v.parse().unwrap_or(f64::INFINITY),
                    None => continue,
                };
                r.intake_buckets.push((le, value));
            }
            "mynah_gateway_intake_latency_seconds_sum" => r.intake_sum = value,
            "mynah_gateway_intake_latency_seconds_count" => r.intake_count = value,
            _ => {}
        }
    }
    r
}

/// The ring of readings.
#[derive(Debug, Default)]
pub struct Samples {
    ring: Mutex<VecDeque<Reading>>,
}

impl Samples {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Reading>> {
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps a reading (and forgets those older than the window plus one period).
    pub fn push(&self, r: Reading) {
        let mut ring = self.lock();
        let horizon = r.at - i64::try_from((WINDOW + SAMPLE_EVERY).as_millis()).unwrap_or(0);
        while ring.front().is_some_and(|o| o.at < horizon) {
            ring.pop_front();
        }
        ring.push_back(r);
    }

    /// The oldest reading at or after `since` (unix ms), else the oldest there is.
    fn since(&self, since: i64) -> Option<Reading> {
        let ring = self.lock();
        ring.iter()
            .find(|r| r.at >= since)
            .or(ring.front())
            .cloned()
    }

    fn all(&self) -> Vec<Reading> {
        self.lock().iter().cloned().collect()
    }
}

/// Reads the counters now.
pub fn read<S: Store + Clone>(gw: &Gateway<S>) -> Option<Reading> {
    let text = gw.metrics.render().ok()?;
    Some(parse(&text, wall_ms()))
}

/// Reads the counters every [`SAMPLE_EVERY`] until `shutdown`.
pub async fn run<S: Store + Clone>(
    gw: Arc<Gateway<S>>,
    samples: Arc<Samples>,
    shutdown: CancellationToken,
) {
    loop {
        if let Some(r) = read(&gw) {
            samples.push(r);
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(SAMPLE_EVERY) => {}
        }
    }
}

/// The platform's title of an error code, from the one error table.
fn title(code: &str) -> Option<&'static str> {
    let n = code.parse::<u32>().ok()?;
    mynah_wire::error::ErrorCode::from_code(n).map(|c| c.spec().title)
}

fn total(r: &Reading) -> f64 {
    r.sends.values().sum()
}

/// Upper bound (ms) of the bucket the `q` quantile falls in, between two readings.
fn quantile(now: &Reading, then: &Reading, q: f64) -> Option<f64> {
    let count = now.intake_count - then.intake_count;
    if count <= 0.0 {
        return None;
    }
    let before: HashMap<u64, f64> = then
        .intake_buckets
        .iter()
        .map(|(le, n)| (le.to_bits(), *n))
        .collect();
    now.intake_buckets.iter().find_map(|(le, n)| {
        let within = n - before.get(&le.to_bits()).copied().unwrap_or(0.0);
        (within >= q * count).then_some(*le * 1_000.0)
    })
}

fn latency(now: &Reading, then: &Reading) -> Value {
    let count = now.intake_count - then.intake_count;
    let mean = (count > 0.0).then(|| (now.intake_sum - then.intake_sum) / count * 1_000.0);
    let finite = |v: Option<f64>| v.filter(|x| x.is_finite());
    json!({
        "since": then.at,
        "count": count,
        "mean_ms": mean,
        "p50_ms": finite(quantile(now, then, 0.5)),
        "p95_ms": finite(quantile(now, then, 0.95)),
        "p99_ms": finite(quantile(now, then, 0.99)),
    })
}

/// The overview as the console shows it.
pub async fn overview<S: Store + Clone>(
    gw: &Gateway<S>,
    samples: &Samples,
) -> Result<Value, crate::error::AppError> {
    let depth = gw.store.queue_depth().await?;
    let queue: Vec<Value> = depth
        .iter()
        .map(|(state, lane, n)| json!({ "state": state, "lane": lane.as_str(), "count": n }))
        .collect();
    let (current, ceiling) = {
        let l = crate::gateway::lock(&gw.limiter);
        (l.rate(), l.config().rate)
    };
    let now = read(gw).unwrap_or_default();
    let hour_ago = now.at - i64::try_from(WINDOW.as_millis()).unwrap_or(0);
    let minute_ago = now.at - 60_000;
    let then = samples.since(hour_ago).unwrap_or_else(|| now.clone());
    let last_minute = samples.since(minute_ago).unwrap_or_else(|| now.clone());
    // The platform's error codes since the hour's first reading.
    let mut codes: BTreeMap<(String, String), f64> = BTreeMap::new();
    for ((outcome, code), n) in &now.sends {
        let before = then
            .sends
            .get(&(outcome.clone(), code.clone()))
            .copied()
            .unwrap_or(0.0);
        if !code.is_empty() && n - before > 0.0 {
            codes.insert((code.clone(), outcome.clone()), n - before);
        }
    }
    let mut codes: Vec<Value> = codes
        .into_iter()
        .map(|((code, outcome), n)| json!({ "code": code, "outcome": outcome, "count": n, "title": title(&code) }))
        .collect();
    codes.sort_by(|a, b| {
        b["count"]
            .as_f64()
            .partial_cmp(&a["count"].as_f64())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let secs = ((now.at - last_minute.at) as f64 / 1_000.0).max(0.0);
    let rate = if secs > 0.0 {
        (total(&now) - total(&last_minute)) / secs
    } else {
        0.0
    };
    // Sends per minute over the hour: the differences of readings a minute apart.
    let readings = samples.all();
    let mut per_minute = Vec::new();
    let mut prev: Option<&Reading> = None;
    for r in readings.iter().chain(std::iter::once(&now)) {
        match prev {
            None => prev = Some(r),
            Some(p) if r.at - p.at >= 60_000 || std::ptr::eq(r, &now) => {
                if r.at > p.at {
                    per_minute.push(json!({ "at": r.at, "sends": total(r) - total(p), "seconds": (r.at - p.at) / 1_000 }));
                }
                prev = Some(r);
            }
            Some(_) => {}
        }
    }
    let health = gw.health.report();
    Ok(json!({
        "now": now.at,
        "queue": queue,
        "rate": {
            "limit": ceiling,
            "current_limit": current,
            "sends_per_second": rate,
            "over_seconds": secs,
            "per_minute": per_minute,
        },
        "errors": { "since": then.at, "codes": codes },
        "intake": {
            "hour": latency(&now, &then),
            "minute": latency(&now, &last_minute),
            "received": gw.metrics.webhooks_received.get(),
        },
        "health": {
            "status": health.status,
            "upstream": gw.upstream_url(),
            "reachable": health.upstream.reachable,
            "last_error": health.upstream.last_error,
            "throttle": health.throttle,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_counters_from_the_registry_text() {
        let m = crate::metrics::Metrics::default();
        m.send("accepted", None);
        m.send("rejected", Some(131026));
        m.send("rejected", Some(131026));
        m.intake_latency.observe(0.003);
        m.intake_latency.observe(0.0005);
        let r = parse(&m.render().unwrap(), 7);
        assert_eq!(
            r.sends[&("rejected".to_string(), "131026".to_string())],
            2.0
        );
        assert_eq!(r.sends[&("accepted".to_string(), String::new())], 1.0);
        assert_eq!(r.intake_count, 2.0);
        assert!(
            r.intake_buckets
                .iter()
                .any(|(le, n)| *le == 0.001 && *n == 1.0)
        );
        let none = Reading::default();
        assert_eq!(quantile(&r, &none, 0.5), Some(1.0));
        assert_eq!(quantile(&r, &none, 0.95), Some(4.0));
    }

    #[test]
    fn the_ring_keeps_an_hour() {
        let s = Samples::default();
        for i in 0..1_000 {
            s.push(Reading {
                at: i * 10_000,
                ..Reading::default()
            });
        }
        let all = s.all();
        assert!(all.len() <= 362, "{}", all.len());
        assert_eq!(all.last().map(|r| r.at), Some(999 * 10_000));
        assert_eq!(
            s.since(999 * 10_000 - 60_000).map(|r| r.at),
            Some(993 * 10_000)
        );
    }
}
