//! The gateway's metrics in the Prometheus text format (OpenMetrics flavour, which Prometheus
//! reads): counters and histograms kept as work happens, gauges read from the store and the
//! limiters when scraped. Served on `GET /metrics` behind the gateway key, or on a listener of
//! its own (`[metrics] listen`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// A send's outcome and the platform's error code (empty when there is none).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SendLabels {
    /// `accepted`, `held`, `rejected`, `unknown` (timeout or connection lost after sending),
    /// `unreachable` (nothing sent).
    pub outcome: &'static str,
    /// The platform's error code, or empty.
    pub code: String,
}

/// A queue's state and lane.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    /// `queued`, `parked` (queued but held back), `sending`, `accepted`, `held`, `sent`.
    pub state: String,
    /// `transactional` or `bulk`.
    pub lane: String,
}

/// An app webhook endpoint.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    /// Its URL.
    pub endpoint: String,
}

/// Upstream latency buckets, seconds: 1 ms to about 16 s.
fn latency_buckets() -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(0.001, 2.0, 15)
}

/// Every metric of one gateway.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Sends by outcome and error code.
    pub sends: Family<SendLabels, Counter>,
    /// Upstream answer time of sends, seconds.
    pub upstream_latency: Histogram,
    /// Webhook intake time (verify, commit to the inbox, answer), seconds.
    pub intake_latency: Histogram,
    /// Webhook bodies taken in.
    pub webhooks_received: Counter,
    /// Times a message waited for the recipient's pair limit.
    pub pair_waits: Counter,
    /// Times the dispatcher waited for a token of the number's bucket.
    pub token_waits: Counter,
    /// The number's send rate in force, messages per second.
    pub limiter_rate: Gauge<f64, AtomicU64>,
    /// The configured ceiling of that rate.
    pub limiter_ceiling: Gauge<f64, AtomicU64>,
    /// Messages by state and lane (states before the platform's final word).
    pub queue_depth: Family<QueueLabels, Gauge>,
    /// Events not yet delivered to each app webhook endpoint.
    pub events_pending: Family<EndpointLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("mynah_gateway");
        let sends = Family::<SendLabels, Counter>::default();
        registry.register(
            "sends",
            "Sends to the platform by outcome and error code",
            sends.clone(),
        );
        let upstream_latency = Histogram::new(latency_buckets());
        registry.register(
            "upstream_latency_seconds",
            "Time the platform took to answer a send",
            upstream_latency.clone(),
        );
        let intake_latency = Histogram::new(latency_buckets());
        registry.register(
            "intake_latency_seconds",
            "Time to verify a webhook, commit it to the inbox and answer",
            intake_latency.clone(),
        );
        let webhooks_received = Counter::default();
        registry.register(
            "webhooks_received",
            "Webhook bodies taken in",
            webhooks_received.clone(),
        );
        let pair_waits = Counter::default();
        registry.register(
            "pair_waits",
            "Times a message waited for its recipient's pair limit",
            pair_waits.clone(),
        );
        let token_waits = Counter::default();
        registry.register(
            "token_waits",
            "Times the dispatcher waited for a token of the number's bucket",
            token_waits.clone(),
        );
        let limiter_rate = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "limiter_rate",
            "The number's send rate in force, messages per second",
            limiter_rate.clone(),
        );
        let limiter_ceiling = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "limiter_ceiling",
            "The configured ceiling of the number's send rate, messages per second",
            limiter_ceiling.clone(),
        );
        let queue_depth = Family::<QueueLabels, Gauge>::default();
        registry.register(
            "queue_depth",
            "Messages by state and lane",
            queue_depth.clone(),
        );
        let events_pending = Family::<EndpointLabels, Gauge>::default();
        registry.register(
            "events_pending",
            "Events not yet delivered to each app webhook endpoint",
            events_pending.clone(),
        );
        Metrics {
            registry,
            sends,
            upstream_latency,
            intake_latency,
            webhooks_received,
            pair_waits,
            token_waits,
            limiter_rate,
            limiter_ceiling,
            queue_depth,
            events_pending,
        }
    }
}

impl Metrics {
    /// Counts a send's outcome.
    pub fn send(&self, outcome: &'static str, code: Option<i64>) {
        let code = code.map(|c| c.to_string()).unwrap_or_default();
        self.sends
            .get_or_create(&SendLabels { outcome, code })
            .inc();
    }

    /// The registry in the text format.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(4096);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_what_was_counted() {
        let m = Metrics::default();
        m.send("accepted", None);
        m.send("rejected", Some(131026));
        m.send("rejected", Some(131026));
        m.upstream_latency.observe(0.003);
        let text = m.render().unwrap();
        assert!(
            text.contains("mynah_gateway_sends_total{outcome=\"rejected\",code=\"131026\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("mynah_gateway_upstream_latency_seconds_count 1"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
