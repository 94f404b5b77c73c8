//! The sandbox's metrics in the Prometheus text format (OpenMetrics flavour, which Prometheus
//! reads): requests by route, dialect and status; webhook deliveries by outcome; messages held
//! for quality assessment, the webhook backlog, how far behind the sender is, the virtual
//! users awake and asleep and the messages kept in memory and in the journal only, read when
//! scraped. Served on `GET /metrics`, local like the control API.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// A request's route, dialect and answer.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The endpoint (`messages`, `templates`, `media`, … `control`, `console`, `unknown`).
    pub route: &'static str,
    /// `cloud`, `360dialog`, `onprem`, or `mynah` (control API and console).
    pub dialect: &'static str,
    /// The HTTP status.
    pub status: u16,
}

/// Whether virtual users are kept whole or compact.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UserLabels {
    /// `awake` (whole in memory) or `asleep` (idle past every window, compact).
    pub state: &'static str,
}

/// Where retained messages are kept.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PlaceLabels {
    /// `memory` (the hot set) or `journal` (left memory, read back on demand).
    pub place: &'static str,
}

/// A webhook delivery attempt's outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    /// `delivered`, `retrying` (failed, a retry is scheduled) or `failed` (out of retries).
    pub outcome: &'static str,
}

/// Every metric of one sandbox.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Requests by route, dialect and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Webhook delivery attempts by outcome (shared with the webhook sender).
    pub webhooks: Family<DeliveryLabels, Counter>,
    /// Messages held for quality assessment (pacing), now.
    pub held_messages: Gauge,
    /// Webhook events queued, held or awaiting a retry, now.
    pub webhook_backlog: Gauge,
    /// How far behind the webhook sender is, now: the age of the oldest event waiting for a
    /// receiver that is not paused, seconds.
    pub webhook_lag_seconds: Gauge<f64, AtomicU64>,
    /// Virtual users by state, now.
    pub users: Family<UserLabels, Gauge>,
    /// Retained messages by place, now.
    pub messages: Family<PlaceLabels, Gauge>,
}

impl Metrics {
    /// A registry over the webhook sender's outcome counters.
    pub fn new(webhooks: Family<DeliveryLabels, Counter>) -> Metrics {
        let mut registry = Registry::with_prefix("mynah_sandbox");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests by route, dialect and HTTP status",
            requests.clone(),
        );
        registry.register(
            "webhook_deliveries",
            "Webhook delivery attempts by outcome",
            webhooks.clone(),
        );
        let held_messages = Gauge::default();
        registry.register(
            "held_messages",
            "Messages held for quality assessment (template pacing)",
            held_messages.clone(),
        );
        let webhook_backlog = Gauge::default();
        registry.register(
            "webhook_backlog",
            "Webhook events queued, held or awaiting a retry",
            webhook_backlog.clone(),
        );
        let webhook_lag_seconds = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "webhook_lag_seconds",
            "Age of the oldest webhook event waiting for a receiver that is not paused",
            webhook_lag_seconds.clone(),
        );
        let users = Family::<UserLabels, Gauge>::default();
        registry.register(
            "users",
            "Virtual users in memory: awake (whole) or asleep (idle past every window, compact)",
            users.clone(),
        );
        let messages = Family::<PlaceLabels, Gauge>::default();
        registry.register(
            "messages",
            "Retained messages: in memory (the hot set) or in the journal only (read back on demand)",
            messages.clone(),
        );
        Metrics {
            registry,
            users,
            messages,
            webhook_lag_seconds,
            requests,
            webhooks,
            held_messages,
            webhook_backlog,
        }
    }

    /// Counts a request.
    pub fn request(&self, route: &'static str, dialect: &'static str, status: u16) {
        self.requests
            .get_or_create(&RequestLabels {
                route,
                dialect,
                status,
            })
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
