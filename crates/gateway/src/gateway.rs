//! The gateway's shared state as one value: its configuration, store, clock, upstream client,
//! classifier and limiters, the in-memory template heads, and the wake-ups its background tasks
//! wait on. Every module that does the gateway's work takes a `&Gateway`; this module imports
//! none of them (the wiring that starts them is `server`).

use crate::classify::{Classifier, Overrides};
use crate::clock::{Clock, Millis};
use crate::config::Config;
use crate::ratelimit::{NumberLimiter, PairLimiter};
use crate::store::Store;
use crate::upstream::Upstream;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use crate::roles::ROLE_LEASE_MS;

/// The sending service.
pub struct Gateway<S> {
    /// Configuration.
    pub cfg: Config,
    /// Durable state.
    pub store: S,
    /// "Now".
    pub clock: Arc<Clock>,
    /// The platform.
    pub upstream: Upstream,
    /// Error codes → actions.
    pub classifier: Classifier,
    /// The number's send rate.
    pub(crate) limiter: Mutex<NumberLimiter>,
    /// This instance's name in role leases (random per start).
    pub instance: String,
    /// The roles this instance holds (on a shared store).
    pub roles: Arc<crate::roles::Roles<S>>,
    /// Tokens of the number's shared bucket this instance took and has not used yet (a shared
    /// store only: see `dispatch::take_shared`).
    pub(crate) shared_tokens: Mutex<u32>,
    /// How long the last take from the shared bucket took (ms), which sizes the next.
    pub(crate) shared_rtt: std::sync::atomic::AtomicI64,
    /// Per-recipient pacing.
    pub(crate) pairs: Mutex<PairLimiter>,
    /// Jitter for retries.
    pub(crate) rng: Mutex<ChaCha8Rng>,
    /// Wakes the dispatcher (new or released work).
    pub wake_dispatch: Notify,
    /// Wakes the campaign runner (a campaign started, paused, resumed or cancelled).
    pub wake_campaigns: Notify,
    /// Wakes the webhook processor (new inbox rows).
    pub wake_inbox: Notify,
    /// Wakes event followers (SSE, app webhooks) after committed changes.
    pub wake_events: Arc<Notify>,
    /// Fires when the gateway shuts down (ends event streams).
    pub shutdown: CancellationToken,
    /// Wamids whose statuses the intake is applying or has parked as orphans, with when: only
    /// these can have statuses waiting when their send's answer is recorded.
    orphan_watch: Mutex<OrphanWatch>,
    /// The links to the platform (reachability, throttling, webhook arrivals).
    pub health: crate::health::Health,
    /// When the template cache was last synced (gateway time), behind the lock that makes an
    /// on-demand sync single-flight.
    pub(crate) last_sync: tokio::sync::Mutex<Option<Millis>>,
    /// Whether a template sync has succeeded since the start (readiness).
    pub templates_synced: std::sync::atomic::AtomicBool,
    /// Category and status of the cached templates, in memory.
    pub template_heads: crate::template_heads::Heads,
    /// Links between a person's ids learned lately (skips repeated writes).
    pub(crate) links: Mutex<crate::link_memo::LinkMemo>,
    /// Counters and histograms for `GET /metrics`.
    pub metrics: crate::metrics::Metrics,
}

/// Wamids being watched for parked statuses, and since when. Entries that no answer can race
/// any more (statuses for messages another tool sent on the number, say) are swept once the set
/// has doubled since the last sweep, so it stays bounded by the traffic of the horizon.
#[derive(Debug, Default)]
struct OrphanWatch {
    at: HashMap<String, Millis>,
    sweep_at: usize,
}

impl OrphanWatch {
    const MIN_SWEEP: usize = 1_024;

    fn watch(&mut self, wamids: impl Iterator<Item = String>, now: Millis, horizon: Millis) {
        for w in wamids {
            self.at.insert(w, now);
        }
        if self.at.len() >= self.sweep_at.max(Self::MIN_SWEEP) {
            self.at.retain(|_, t| now - *t < horizon);
            self.sweep_at = self.at.len() * 2;
        }
    }
}

/// Locks a mutex, surviving a poisoned one (the data are counters).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<S: Store + Clone> Gateway<S> {
    /// Builds the gateway over an open store.
    pub fn new(cfg: Config, store: S, clock: Arc<Clock>) -> Result<Arc<Gateway<S>>, String> {
        let upstream = Upstream::new(cfg.upstream.clone())?;
        let mut classifier = Classifier::default();
        if let Some(table) = &cfg.classifier {
            let overrides: Overrides = table
                .clone()
                .try_into()
                .map_err(|e| format!("classifier: {e}"))?;
            classifier = classifier.with_overrides(overrides)?;
        }
        let c = &cfg.campaigns;
        if !(c.rate_share > 0.0 && c.rate_share <= 1.0) {
            return Err("campaigns.rate_share must be more than 0 and at most 1".into());
        }
        if c.batch == 0 || c.batch > 100_000 || c.frequency_cap_ms < 0 || c.progress_ms < 0 {
            return Err(
                "campaigns.batch must be 1 to 100000, frequency_cap_ms and progress_ms not negative"
                    .into(),
            );
        }
        crate::quiet::zone(&c.time_zone).map_err(|e| format!("campaigns.time_zone: {e}"))?;
        if let Some((k, _)) = c
            .rate_card
            .iter()
            .find(|(_, p)| !(p.is_finite() && **p >= 0.0))
        {
            return Err(format!(
                "campaigns.rate_card.{k} must be a price of 0 or more"
            ));
        }
        cfg.console.validate(&cfg.gateway_key)?;
        let limiter = NumberLimiter::try_new(cfg.rate())?;
        let pairs = PairLimiter::try_new(cfg.pair.clone())?;
        let rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let instance = format!("gw-{:016x}", rand::random::<u64>());
        let roles = Arc::new(crate::roles::Roles::new(
            store.clone(),
            clock.clone(),
            instance.clone(),
        ));
        Ok(Arc::new(Gateway {
            cfg,
            store,
            clock,
            upstream,
            classifier,
            limiter: Mutex::new(limiter),
            shared_tokens: Mutex::new(0),
            shared_rtt: std::sync::atomic::AtomicI64::new(0),
            roles,
            instance,
            pairs: Mutex::new(pairs),
            rng: Mutex::new(rng),
            wake_dispatch: Notify::new(),
            wake_inbox: Notify::new(),
            wake_campaigns: Notify::new(),
            wake_events: Arc::new(Notify::new()),
            shutdown: CancellationToken::new(),
            orphan_watch: Mutex::new(OrphanWatch::default()),
            health: crate::health::Health::default(),
            last_sync: tokio::sync::Mutex::new(None),
            templates_synced: std::sync::atomic::AtomicBool::new(false),
            template_heads: crate::template_heads::Heads::default(),
            links: Mutex::new(crate::link_memo::LinkMemo::default()),
            metrics: crate::metrics::Metrics::default(),
        }))
    }

    /// Now.
    pub fn now(&self) -> Millis {
        self.clock.now()
    }

    /// Whether this instance plays `role` (see [`crate::roles::Roles::plays`]).
    pub async fn plays(&self, role: &str) -> bool {
        self.roles.plays(role).await
    }

    /// The sending number's id (one gateway instance sends for one number).
    pub fn phone_number_id(&self) -> &str {
        self.cfg
            .upstream
            .phone_number_id
            .as_deref()
            .unwrap_or("default")
    }

    /// Announces wamids whose statuses are about to be applied.
    pub(crate) fn watch_orphans(&self, wamids: impl Iterator<Item = String>) {
        // An answer comes within the upstream timeout of its request, and a request starts
        // within its lease: older entries can no longer be raced.
        let horizon = 2 * self
            .cfg
            .dispatch
            .lease_ms
            .max(self.cfg.upstream.timeout_ms as Millis);
        lock(&self.orphan_watch).watch(wamids, self.now(), horizon);
    }

    /// Withdraws wamids whose statuses were applied (not parked).
    pub(crate) fn unwatch_orphans<'a>(&self, wamids: impl Iterator<Item = &'a str>) {
        let mut w = lock(&self.orphan_watch);
        for id in wamids {
            w.at.remove(id);
        }
    }

    /// Whether `wamid` may have parked statuses (and stops watching it).
    pub(crate) fn take_orphan_watch(&self, wamid: &str) -> bool {
        lock(&self.orphan_watch).at.remove(wamid).is_some()
    }

    /// The upstream's base URL, for messages.
    pub fn upstream_url(&self) -> &str {
        self.cfg
            .upstream
            .base_url
            .as_deref()
            .unwrap_or("(the platform)")
    }

    /// Tells followers that changes were committed.
    pub fn changed(&self) {
        self.wake_events.notify_waiters();
    }
}

impl Gateway<crate::store::postgres::PostgresStore> {
    /// Wakes this instance's event followers (SSE streams, app webhooks) and its inbox
    /// processor when any instance on the database commits a change (`LISTEN`/`NOTIFY`), so
    /// what another instance wrote is seen at once rather than at the next poll.
    pub fn follow_other_instances(self: &Arc<Self>) -> Result<(), crate::store::StoreError> {
        let gw = Arc::downgrade(self);
        self.store.follow_changes(move || {
            if let Some(gw) = gw.upgrade() {
                gw.wake_events.notify_waiters();
                gw.wake_inbox.notify_one();
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::OrphanWatch;

    #[test]
    fn the_orphan_watch_forgets_what_no_answer_can_race() {
        let mut w = OrphanWatch::default();
        let horizon = 1_000;
        // Statuses for wamids nobody here sent keep coming: the set stays bounded.
        for t in 0..100_000i64 {
            w.watch(std::iter::once(format!("wamid.{t}")), t, horizon);
            assert!(w.at.len() <= 2 * (OrphanWatch::MIN_SWEEP + horizon as usize));
        }
        // A recent entry is still there, an old one is gone.
        assert!(w.at.contains_key("wamid.99999"));
        assert!(!w.at.contains_key("wamid.5"));
    }
}
