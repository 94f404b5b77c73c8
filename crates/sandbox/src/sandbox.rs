//! The running sandbox: the world behind its lock, the clock and its timers, the journal, the
//! webhook hub and the rate limiters, and the glue that applies an operation's effects.

use crate::clock::{Clock, Millis};
use crate::config::{ClockMode, Config};
use crate::engine::{Effects, World};
use crate::faults::Faults;
use crate::feed::Feed;
use crate::model::{Message, WebhookTarget};
use crate::ratelimit::Limits;
use crate::scheduler::{Scheduler, Timer};
use crate::store::{Journal, Kind, Snapshot};
use crate::webhooks::Hub;
use mynah_wire::error::{ApiError, ErrorCode};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio_util::sync::CancellationToken;

/// One sandbox instance.
pub struct Sandbox {
    /// Its configuration.
    pub config: Config,
    /// "Now".
    pub clock: Arc<Clock>,
    /// Timers.
    pub sched: Arc<Scheduler>,
    /// Webhook delivery.
    pub hub: Arc<Hub>,
    /// The journal.
    pub journal: Journal,
    /// Request-rate limits.
    pub limits: Limits,
    /// Fault rules.
    pub faults: Mutex<Faults>,
    /// The control API's live feed (`GET /_mynah/events`).
    pub feed: Arc<Feed>,
    /// Media bytes of uploads being received (counted against `media.max_total_bytes`).
    pub media_incoming: std::sync::atomic::AtomicU64,
    /// Requests, webhook deliveries and gauges for `GET /metrics`.
    pub metrics: crate::metrics::Metrics,
    world: Mutex<World>,
    advancing: tokio::sync::Mutex<()>,
    /// Error responses so far (since this start): the trace id's sequence number.
    trace_seq: AtomicU64,
    /// The reset epoch (see `World::epoch`), for trace ids without the world's lock.
    epoch: AtomicU64,
    /// Starts of this data directory before this one (0 for a fresh one, or `--ephemeral`).
    boot: u64,
}

/// What `POST /_mynah/reset` may be told.
#[derive(Debug, Clone, Copy, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResetOptions {
    /// Leave the manual clock where it is (otherwise it goes back to `clock.start_ms`).
    pub keep_clock: bool,
}

impl Sandbox {
    /// Opens the sandbox: reads back the journal (or starts empty when ephemeral), creates the
    /// configured accounts on first start, restores pending timers and webhook deliveries.
    pub async fn open(config: Config) -> Result<Arc<Sandbox>, String> {
        config
            .validate()
            .map_err(|e| format!("invalid configuration: {e}"))?;
        let clock = Arc::new(match config.clock.mode {
            ClockMode::System => Clock::System,
            ClockMode::Manual => Clock::manual(config.clock.start_ms),
        });
        let (journal, mut snapshot) = match &config.data_dir {
            Some(dir) => Journal::open_sqlite(dir, config.webhooks.keep_attempts).await?,
            None => (Journal::memory(), Snapshot::default()),
        };
        let mut boot = 0;
        for (id, json) in snapshot.rows.get(&Kind::Meta).into_iter().flatten() {
            // A restarted manual clock resumes where it stopped.
            if id == "clock"
                && let Ok(ms) = json.parse::<Millis>()
            {
                clock.set(ms);
            }
            if id == "boots"
                && let Ok(n) = json.parse::<u64>()
            {
                boot = n;
            }
        }
        let sched = Arc::new(Scheduler::default());
        let now = clock.now();
        let deliveries = snapshot.take(Kind::Delivery);
        let (mut world, mut fx) = World::new(&config, !journal.is_memory(), &mut snapshot, now);
        let feed = Arc::new(Feed::new());
        world.set_watch(feed.listeners());
        let epoch = world.epoch();
        if !journal.is_memory() {
            // Trace ids of this start differ from those of every earlier one.
            fx.writes.push(boots_row(boot + 1));
        }
        let hub = Hub::new(
            config.webhooks.clone(),
            config.app_secret.clone(),
            config.seed,
            clock.clone(),
            sched.clone(),
            journal.clone(),
            feed.clone(),
        );
        for n in world.numbers.values() {
            hub.set_target(&n.phone_number_id, n.webhook.clone());
        }
        let limits = Limits::new(&config.limits, &config.rules, clock.clone());
        let faults =
            Faults::new(config.seed, config.faults.clone()).map_err(|e| format!("faults: {e}"))?;
        let metrics = crate::metrics::Metrics::new(hub.outcomes.clone());
        let sandbox = Arc::new(Sandbox {
            config,
            clock,
            sched,
            hub,
            journal,
            limits,
            faults: Mutex::new(faults),
            feed,
            media_incoming: std::sync::atomic::AtomicU64::new(0),
            metrics,
            world: Mutex::new(world),
            advancing: tokio::sync::Mutex::new(()),
            trace_seq: AtomicU64::new(0),
            epoch: AtomicU64::new(epoch),
            boot,
        });
        sandbox.apply_durable(fx).await.map_err(|e| e.to_string())?;
        let attempts = std::mem::take(&mut snapshot.attempts);
        sandbox.hub.restore(deliveries, attempts);
        Ok(sandbox)
    }

    /// The world, locked. Never hold it across an `.await`.
    pub fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A message by wamid: from memory, or read back from the journal when it left memory
    /// (`retention.hot_messages`).
    pub async fn message(&self, id: &str) -> Result<Option<Message>, ApiError> {
        if let Some(m) = self.world().messages.get(id) {
            return Ok(Some((**m).clone()));
        }
        Ok(self.read_back(id).await?.map(|(_, m)| m))
    }

    /// A message as the journal has it, with its arrival position if it left memory.
    async fn read_back(&self, id: &str) -> Result<Option<(Option<u64>, Message)>, ApiError> {
        let Some((pos, json)) = self.journal.message(id).await.map_err(storage)? else {
            return Ok(None);
        };
        let m = serde_json::from_str::<Message>(&json)
            .map_err(|e| storage(format!("message {id} could not be read back: {e}")))?;
        Ok(Some((pos, m)))
    }

    /// Reads a message that left memory back in for an operation that names it (a mark-read, a
    /// reaction's target; see [`World::visit`]); nothing when it is in memory or unknown.
    pub async fn warm(&self, id: &str) -> Result<(), ApiError> {
        if self.journal.is_memory() || self.world().messages.contains_key(id) {
            return Ok(());
        }
        // A message leaving memory at this moment is listed by a commit still on its way: a
        // second look finds it.
        for _ in 0..2 {
            match self.read_back(id).await? {
                Some((Some(pos), m)) => {
                    self.world().visit(pos, m);
                    return Ok(());
                }
                Some((None, _)) if !self.world().messages.contains_key(id) => continue,
                _ => return Ok(()),
            }
        }
        Ok(())
    }

    /// A page of messages, newest first, with their arrival positions (the control API's
    /// cursor): those in memory (see [`World::page`]), then those read back from the journal,
    /// until `limit` are found or history ends.
    pub async fn page<F: Fn(&Message) -> bool>(
        &self,
        wa_id: Option<&str>,
        before: Option<u64>,
        limit: usize,
        keep: F,
    ) -> Result<Vec<(u64, Message)>, ApiError> {
        let (mut out, cold) = {
            let mut world = self.world();
            if wa_id.is_some() {
                world.index_users();
            }
            let page: Vec<(u64, Message)> = world
                .page(wa_id, before, limit, &keep)
                .into_iter()
                .map(|(pos, m)| (pos, m.clone()))
                .collect();
            (page, world.cold_range())
        };
        let mut cursor = before.unwrap_or(u64::MAX).min(cold.end);
        while out.len() < limit && cursor > cold.start {
            let batch = (limit - out.len()).max(256);
            let rows = self
                .journal
                .cold_page(wa_id, cursor, batch)
                .await
                .map_err(storage)?;
            let Some((last, _)) = rows.last() else {
                break;
            };
            cursor = *last;
            let full = rows.len() == batch;
            for (pos, json) in rows {
                if let Ok(m) = serde_json::from_str::<Message>(&json)
                    && keep(&m)
                {
                    out.push((pos, m));
                    if out.len() == limit {
                        break;
                    }
                }
            }
            if !full {
                break;
            }
        }
        Ok(out)
    }

    /// Tells the world its own base URL (for media download URLs).
    pub fn set_base_url(&self, url: &str) {
        self.world().base_url = url.trim_end_matches('/').to_string();
    }

    /// Applies effects without waiting for the journal; the state change and its webhook events
    /// are journalled in one commit. Returns the webhook deliveries started.
    pub fn apply(&self, fx: Effects) -> Vec<u64> {
        let (writes, pnids) = self.stage(fx);
        self.journal.submit_detached(writes);
        self.hub.pump_all(&pnids)
    }

    /// Applies effects once their writes (and their webhook events) are durable, for work that is
    /// about to be acknowledged.
    pub async fn apply_durable(&self, fx: Effects) -> Result<(), ApiError> {
        let (writes, pnids) = self.stage(fx);
        let result = self.journal.submit(writes).wait().await;
        self.hub.pump_all(&pnids);
        result.map_err(storage)
    }

    /// Sets the timers, queues the webhook events, and returns every journal write (state and
    /// events together) with the numbers whose queues to start.
    fn stage(&self, fx: Effects) -> (Vec<crate::store::Write>, Vec<String>) {
        if !fx.changed.is_empty() {
            self.publish_changes(&fx.changed);
        }
        let (events, pnids) = self.hub.stage(fx.events);
        let mut writes = fx.writes;
        writes.extend(events);
        self.sched.at_many(fx.timers);
        (writes, pnids)
    }

    /// Tells the live feed's listeners what changed: each message with its user and status, the
    /// ids of templates, users and numbers.
    fn publish_changes(&self, changed: &[(Kind, String)]) {
        let mut seen = std::collections::HashSet::new();
        let world = self.world();
        let mut items = Vec::new();
        for (kind, id) in changed {
            if !seen.insert((*kind, id.as_str())) {
                continue;
            }
            match kind {
                Kind::Message => {
                    if let Some(m) = world.messages.get(id.as_str()) {
                        items.push((
                            "message",
                            serde_json::json!({
                                "id": m.id,
                                "wa_id": m.wa_id,
                                "phone_number_id": m.phone_number_id,
                                "direction": m.direction,
                                "status": m.status,
                            }),
                        ));
                    }
                }
                Kind::Template => items.push(("template", serde_json::json!({ "id": id }))),
                Kind::User => items.push(("user", serde_json::json!({ "wa_id": id }))),
                Kind::Number => items.push(("number", serde_json::json!({ "id": id }))),
                _ => {}
            }
        }
        drop(world);
        for (kind, data) in items {
            self.feed.publish(kind, &data);
        }
    }

    /// Sets a number's webhook target (journalled, and effective for the next delivery).
    pub async fn set_webhook(&self, pnid: &str, target: WebhookTarget) -> Result<(), ApiError> {
        let fx = self.world().set_webhook(pnid, target.clone());
        self.hub.set_target(pnid, target);
        self.apply_durable(fx).await
    }

    /// Fires one timer; returns the webhook deliveries it started.
    fn fire(&self, timer: Timer, now: Millis) -> Vec<u64> {
        match timer {
            Timer::Message(id) => {
                let fx = self.world().on_message_timer(&id, now);
                self.apply(fx)
            }
            Timer::EventReady(id) => self.hub.on_event_ready(id),
            Timer::DeliveryRetry(id) => self.hub.on_retry(id, now),
            Timer::TemplateUnpause(id) => {
                let fx = self.world().on_template_unpause(&id, now);
                self.apply(fx)
            }
            Timer::TemplateReview(id) => {
                let fx = self.world().on_template_review(&id, now);
                self.apply(fx)
            }
            Timer::PacingRelease(id) => {
                let fx = self.world().on_pacing_release(&id, now);
                self.apply(fx)
            }
            Timer::NumberReview(id) => {
                let fx = self.world().on_number_review(&id, now);
                self.apply(fx)
            }
        }
    }

    /// Fires every timer due by the system clock's now. Message steps that are due together run
    /// under one lock of the world and leave as one batch of effects (one journal job, one
    /// hand-over to the webhook hub); other timers fire one by one, in order.
    fn fire_due(&self) {
        const BATCH: usize = 512;
        let mut steps: Vec<String> = Vec::with_capacity(BATCH);
        loop {
            let now = self.clock.now();
            while steps.len() < BATCH {
                match self.sched.pop_due(now) {
                    Some((_, Timer::Message(id))) => steps.push(id),
                    Some((_, other)) => {
                        self.fire_steps(&mut steps, now);
                        let _started = self.fire(other, now);
                    }
                    None => break,
                }
            }
            if steps.is_empty() {
                return;
            }
            self.fire_steps(&mut steps, now);
        }
    }

    fn fire_steps(&self, steps: &mut Vec<String>, now: Millis) {
        if steps.is_empty() {
            return;
        }
        let fx = {
            let mut world = self.world();
            let mut all = Effects {
                persist: !self.journal.is_memory(),
                watch: self.feed.watching(),
                ..Effects::default()
            };
            for id in steps.drain(..) {
                all.extend(world.on_message_timer(&id, now));
            }
            all
        };
        let _started = self.apply(fx);
    }

    /// Moves the manual clock forward by `ms`, firing every timer due on the way in order, each at
    /// its own due time. When the timers have started webhook deliveries whose retries could fall
    /// inside the same advance, it waits (wall-clock, at most the webhook timeout) for their
    /// answers and fires those retries too, each at its own due time. Returns the new now.
    pub async fn advance(&self, ms: Millis) -> Result<Millis, ApiError> {
        if !self.clock.is_manual() {
            return Err(ApiError::with_details(
                ErrorCode::MynahBadRequest,
                "the clock is the system clock; start the sandbox with --clock manual to move it",
            ));
        }
        if ms < 0 {
            return Err(ApiError::with_details(
                ErrorCode::MynahBadRequest,
                "time only moves forward",
            ));
        }
        let _one_at_a_time = self.advancing.lock().await;
        let target = self.clock.now().saturating_add(ms);
        if target > crate::bounds::MAX_TIME {
            return Err(ApiError::with_details(
                ErrorCode::MynahBadRequest,
                format!(
                    "ms = {ms} would move the clock past its end ({} ms, 2200-01-01); reset it (POST /_mynah/reset) to go on",
                    crate::bounds::MAX_TIME
                ),
            ));
        }
        let patience =
            std::time::Duration::from_millis(self.config.webhooks.timeout_ms.saturating_add(500));
        // Events queued inside the jump count as queued at its end; also if this advance is
        // given up half-way (its request dropped).
        struct Advancing<'a>(&'a crate::webhooks::Hub);
        impl Drop for Advancing<'_> {
            fn drop(&mut self) {
                self.0.set_advancing(None);
            }
        }
        self.hub.set_advancing(Some(target));
        let _advancing = Advancing(&self.hub);
        loop {
            while let Some((due, timer)) = self.sched.pop_due(target) {
                self.clock.set(due);
                let _started = self.fire(timer, due);
            }
            self.hub
                .settle(target, tokio::time::Instant::now() + patience)
                .await;
            if self.sched.next_due().is_none_or(|due| due > target) {
                break;
            }
        }
        self.clock.set(target);
        self.journal.submit_detached(vec![crate::store::Write::Put {
            kind: Kind::Meta,
            id: "clock".into(),
            data: target.to_string(),
        }]);
        self.feed
            .publish("clock", &serde_json::json!({ "now_ms": target }));
        Ok(target)
    }

    /// Runs the system clock's timers until `cancel` fires. The manual clock needs no driver.
    pub fn spawn_driver(
        self: &Arc<Self>,
        cancel: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let sb = self.clone();
        tokio::spawn(async move {
            if sb.clock.is_manual() {
                cancel.cancelled().await;
                return;
            }
            loop {
                sb.fire_due();
                let wait = match sb.sched.next_due() {
                    Some(due) => (due - sb.clock.now()).clamp(0, 3_600_000) as u64,
                    None => 3_600_000,
                };
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = sb.sched.changed() => {}
                    _ = tokio::time::sleep(std::time::Duration::from_millis(wait)) => {}
                }
            }
        })
    }

    /// A trace id for an error envelope (`fbtrace_id`), deterministic in request order from a
    /// fresh start; never repeated across resets and restarts of the same data directory.
    pub fn trace_id(&self) -> String {
        let n = self.trace_seq.fetch_add(1, Ordering::Relaxed);
        let epoch = self.epoch.load(Ordering::Relaxed);
        let seed = crate::ids::trace_seed(self.config.seed, epoch, self.boot, n);
        crate::ids::Ids::new(seed, 3).trace()
    }

    /// Changes the delivery rules in force (the pair-rate and throughput buckets start full).
    pub fn set_rules(&self, rules: crate::config::RulesConfig) {
        self.limits.set_rules(&rules);
        self.world().set_rules(rules);
    }

    /// How far behind the webhook sender is now, ms (see [`crate::webhooks::Hub::lag_ms`]).
    pub fn webhook_lag_ms(&self) -> Millis {
        self.hub.lag_ms(self.clock.now())
    }

    /// Work waiting: webhook events not yet delivered plus journal writes not yet committed.
    pub fn pending_work(&self) -> usize {
        self.hub.pending() + self.journal.backlog()
    }

    /// Back to the first-start state (control API): the configured accounts, numbers (those
    /// added through the control API go), webhook URLs, users, templates, rules and fault rules;
    /// no messages, media, conversations, timers, pending webhooks or attempt history; the
    /// manual clock at `clock.start_ms` unless `keep_clock`. The world moves to a new epoch, so
    /// ids never repeat those drawn before (see `ids::epoch_seed`). Returns the new epoch.
    pub async fn reset(&self, opts: ResetOptions) -> Result<u64, ApiError> {
        // Not in the middle of an advance: its timers belong to the world being replaced.
        let _one_at_a_time = self.advancing.lock().await;
        if let Ok(fresh) = Faults::new(self.config.seed, self.config.faults.clone()) {
            *self.faults.lock().unwrap_or_else(|e| e.into_inner()) = fresh;
        }
        if self.clock.is_manual() && !opts.keep_clock {
            self.clock.rewind(self.config.clock.start_ms);
        }
        self.limits.reset(&self.config.limits, &self.config.rules);
        let now = self.clock.now();
        let (mut fx, epoch) = {
            // Under the world's lock, so that no request slips its timers or webhook events
            // into the old world's scheduler and hub after the reset.
            let mut world = self.world();
            let fx = world.reset(&self.config, now);
            self.sched.clear();
            self.hub.reset(self.config.seed);
            for n in world.numbers.values() {
                self.hub.set_target(&n.phone_number_id, n.webhook.clone());
            }
            (fx, world.epoch())
        };
        self.epoch.store(epoch, Ordering::Relaxed);
        if fx.persist {
            // `Write::Reset` forgot these too.
            fx.writes.push(boots_row(self.boot + 1));
            if self.clock.is_manual() {
                fx.writes.push(crate::store::Write::Put {
                    kind: Kind::Meta,
                    id: "clock".into(),
                    data: now.to_string(),
                });
            }
        }
        self.apply_durable(fx).await?;
        self.feed.publish(
            "reset",
            &serde_json::json!({ "epoch": epoch, "now_ms": self.clock.now() }),
        );
        Ok(epoch)
    }
}

fn boots_row(n: u64) -> crate::store::Write {
    crate::store::Write::Put {
        kind: Kind::Meta,
        id: "boots".into(),
        data: n.to_string(),
    }
}

/// A journal that could not be read, as the platform's generic error.
fn storage(e: String) -> ApiError {
    ApiError::with_details(ErrorCode::GenericError, format!("storage failed: {e}"))
}
