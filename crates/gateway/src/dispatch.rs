//! The dispatcher: claims due outbox rows (transactional lane first) under a lease, paces them
//! through the number's token bucket and the per-recipient pair limiter, sends them upstream and
//! records every attempt. Errors go through the classifier; its decision becomes the row's next
//! state. Also: the restart policy for sends whose outcome is unknown, and TTL drop detection.

use crate::classify::{Action, Decision, FailKind, next_delay};
use crate::clock::Millis;
use crate::config::RestartPolicy;
use crate::gateway::{Gateway, lock};
use crate::model::{MessageState, Observation};
use crate::store::{Change, MessageRecord, NewEvent, StatusUpdate, Store};
use crate::upstream::UpstreamError;
use bytes::Bytes;
use mynah_wire::response::MessageStatus;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// How often an idle dispatcher looks for due work it was not woken for (retries coming due).
const IDLE_TICK: Duration = Duration::from_millis(50);

/// At start: rows left in `sending` by a previous process have an unknown outcome; the restart
/// policy decides (resend, or `unknown` until a status webhook settles them). On a shared store
/// (several instances) only rows whose lease has ended are taken: the others belong to live
/// instances. [`recover_leases`] goes on doing that while the gateway runs.
pub async fn recover<S: Store + Clone>(gw: &Gateway<S>) {
    let now = gw.now();
    let until = if gw.store.shared() { now } else { Millis::MAX };
    let rows = match gw.store.expired_leases(until).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "reading unfinished sends failed");
            return;
        }
    };
    if rows.is_empty() {
        return;
    }
    let why = if gw.store.shared() {
        "its instance stopped (its lease ended) before the answer was recorded"
    } else {
        "interrupted by a restart before the answer was recorded"
    };
    tracing::warn!(count = rows.len(), policy = ?gw.cfg.restart_policy, "{why}");
    let changes = rows
        .iter()
        .map(|r| Change {
            // An answer recorded meanwhile (a slow instance, not a dead one) stands.
            only_from: Some(MessageState::Sending),
            ..unknown_outcome(gw, r, now, why)
        })
        .collect();
    if let Err(e) = gw.store.apply(changes).await {
        tracing::error!(error = %e, "recording the restart policy failed");
    }
    gw.changed();
}

/// The change for a send whose outcome is unknown, by the restart policy.
fn unknown_outcome<S>(gw: &Gateway<S>, r: &MessageRecord, now: Millis, why: &str) -> Change {
    match gw.cfg.restart_policy {
        RestartPolicy::AtLeastOnce => {
            // A status webhook carrying its id may still settle it: resent only after a while.
            let at = now.saturating_add(gw.cfg.dispatch.reconcile_ms.max(0));
            Change {
                state: Some(MessageState::Queued),
                next_attempt_at: Some(at),
                clear_lease: true,
                ..Change::new(&r.id, now)
            }
            .with_event(NewEvent::new(
                "outcome_unknown",
                now,
                json!({ "reason": why, "policy": "at_least_once", "then": "resend", "resend_at": at }),
            ))
        }
        RestartPolicy::AtMostOnce => Change {
            state: Some(MessageState::Unknown),
            clear_lease: true,
            ..Change::new(&r.id, now)
        }
        .with_event(NewEvent::new(
            "outcome_unknown",
            now,
            json!({ "reason": why, "policy": "at_most_once", "then": "wait for a status webhook (biz_opaque_callback_data)" }),
        )),
    }
}

/// Claims and sends until `shutdown`.
pub async fn run<S: Store + Clone>(gw: Arc<Gateway<S>>, shutdown: CancellationToken) {
    let permits = Arc::new(Semaphore::new(gw.cfg.dispatch.concurrency.max(1)));
    let tasks = tokio_util::task::TaskTracker::new();
    // Small claims keep the transactional lane ahead of a bulk backlog: about 100 ms of sending.
    let per_claim =
        ((gw.cfg.rate().rate / 10.0).ceil() as usize).clamp(1, gw.cfg.dispatch.batch.max(1));
    loop {
        if shutdown.is_cancelled() {
            break;
        }
        let free = permits.available_permits().min(per_claim);
        let now = gw.now();
        let rows = if free == 0 {
            Vec::new()
        } else {
            match gw
                .store
                .claim(now, free, now + gw.cfg.dispatch.lease_ms)
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "claiming messages failed");
                    Vec::new()
                }
            }
        };
        if rows.is_empty() {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = gw.wake_dispatch.notified() => {}
                _ = tokio::time::sleep(IDLE_TICK) => {}
            }
            continue;
        }
        let mut rows = rows.into_iter();
        while let Some(row) = rows.next() {
            // Past its time-to-live a message is never sent.
            if gw.now() >= row.deadline {
                expire_unsent(&gw, &row, "its time-to-live ended before its turn came").await;
                continue;
            }
            // The pair limiter first: a recipient that must wait does not take a number token.
            let pair_wait = lock(&gw.pairs).try_take(pair_key(&row), gw.now()).err();
            if pair_wait.is_some() {
                gw.metrics.pair_waits.inc();
            }
            if let Some(at) = pair_wait {
                if at >= row.deadline {
                    expire_unsent(
                        &gw,
                        &row,
                        "its time-to-live ends before the recipient may get another message (about one per 6 s)",
                    )
                    .await;
                    continue;
                }
                let now = gw.now();
                let change = Change {
                    state: Some(MessageState::Queued),
                    next_attempt_at: Some(at),
                    clear_lease: true,
                    ..Change::new(&row.id, now)
                }
                .with_event(NewEvent::new(
                    "pair_wait",
                    now,
                    json!({ "until": at, "reason": "about one message per 6 s to the same user" }),
                ));
                apply(&gw, vec![change]).await;
                continue;
            }
            if !take_token(&gw, &shutdown).await {
                // Shutting down: what was claimed but not sent goes back to the queue (it was
                // never sent, so no restart policy applies to it).
                let now = gw.now();
                let back = std::iter::once(row)
                    .chain(rows)
                    .map(|r| Change {
                        state: Some(MessageState::Queued),
                        clear_lease: true,
                        ..Change::new(&r.id, now)
                    })
                    .collect();
                apply(&gw, back).await;
                break;
            }
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            // The wait for a token may have taken it past its time-to-live.
            if gw.now() >= row.deadline {
                expire_unsent(
                    &gw,
                    &row,
                    "its time-to-live ended while it waited for the number's rate",
                )
                .await;
                continue;
            }
            let gw = gw.clone();
            tasks.spawn(async move {
                send_one(&gw, row, permit).await;
            });
        }
    }
    // Let in-flight sends record their outcome.
    tasks.close();
    tasks.wait().await;
}

/// A claimed message whose time-to-live ended before it was sent: `expired`, never sent.
async fn expire_unsent<S: Store + Clone>(gw: &Gateway<S>, row: &MessageRecord, why: &str) {
    let now = gw.now();
    let change = Change {
        state: Some(MessageState::Expired),
        clear_lease: true,
        ..Change::new(&row.id, now)
    }
    .with_event(NewEvent::new(
        "expired",
        now,
        json!({ "deadline": row.deadline, "sent": false, "reason": why }),
    ));
    apply(gw, vec![change]).await;
}

/// Waits for a token of the number's bucket (and, on a shared store, of the bucket all
/// instances share); false when shutting down.
async fn take_token<S: Store + Clone>(gw: &Gateway<S>, shutdown: &CancellationToken) -> bool {
    loop {
        let now = gw.now();
        let wait = match lock(&gw.limiter).try_take(now) {
            Ok(()) => break,
            Err(at) => (at - now).clamp(1, 1_000),
        };
        gw.metrics.token_waits.inc();
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
        }
    }
    !gw.store.shared() || take_shared(gw, shutdown).await
}

/// How many tokens of the shared bucket one store call takes: enough for 20 ms of sending plus
/// the store's last round trip (`rtt_ms`), and at most half the burst. An instance takes at most
/// `slice / round trip` tokens a second, so a slice smaller than that starves it (two instances
/// with one-token slices and 50 ms round trips reached 40 of 50/s together); tokens taken but
/// not used yet (at most a slice per instance, about `rate × round trip` in all) are what the
/// instances can add to the bucket's burst, and what an instance that dies strands.
fn shared_slice(rate: f64, burst: u32, rtt_ms: Millis) -> u32 {
    let ms = 20.0 + rtt_ms.clamp(0, 1_000) as f64;
    ((rate * ms / 1_000.0).ceil() as u32).clamp(1, (burst / 2).max(1))
}

/// Takes one token of the number's bucket in the store, shared by every instance on the
/// database, in slices (see `ARCHITECTURE.md`, "Several gateways on one database"); false when
/// shutting down.
async fn take_shared<S: Store + Clone>(gw: &Gateway<S>, shutdown: &CancellationToken) -> bool {
    let key = format!(
        "number:{}",
        gw.cfg
            .upstream
            .phone_number_id
            .as_deref()
            .unwrap_or("default")
    );
    loop {
        {
            let mut held = lock(&gw.shared_tokens);
            if *held > 0 {
                *held -= 1;
                return true;
            }
        }
        let (rate, burst) = {
            let l = lock(&gw.limiter);
            (l.rate(), l.config().burst)
        };
        let rtt = gw.shared_rtt.load(std::sync::atomic::Ordering::Relaxed);
        let slice = shared_slice(rate, burst, rtt);
        let now = gw.now();
        let taken = gw.store.take_tokens(&key, rate, burst, slice, now).await;
        gw.shared_rtt.store(
            gw.now().saturating_sub(now),
            std::sync::atomic::Ordering::Relaxed,
        );
        let wait = match taken {
            Ok(t) if t.granted > 0 => {
                *lock(&gw.shared_tokens) += t.granted - 1;
                return true;
            }
            Ok(t) => t.next_at.saturating_sub(now).clamp(1, 1_000),
            Err(e) => {
                tracing::error!(error = %e, "taking the number's shared tokens failed");
                100
            }
        };
        gw.metrics.token_waits.inc();
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
        }
    }
}

async fn apply<S: Store + Clone>(gw: &Gateway<S>, changes: Vec<Change>) {
    if let Err(e) = gw.store.apply(changes).await {
        tracing::error!(error = %e, "recording a dispatch outcome failed");
    }
    gw.changed();
}

/// One attempt: send, then record what came of it.
async fn send_one<S: Store + Clone>(
    gw: &Gateway<S>,
    row: MessageRecord,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let started = std::time::Instant::now();
    let result = gw.upstream.send_bytes(Bytes::from(row.body.clone())).await;
    // The permit bounds requests in flight upstream; recording the outcome (group-committed)
    // does not hold it.
    drop(permit);
    gw.metrics
        .upstream_latency
        .observe(started.elapsed().as_secs_f64());
    match &result {
        Ok(ok) if ok.message_status == Some(MessageStatus::HeldForQualityAssessment) => {
            gw.metrics.send("held", None)
        }
        Ok(_) => gw.metrics.send("accepted", None),
        Err(UpstreamError::Connect(_) | UpstreamError::Config(_)) => {
            gw.metrics.send("unreachable", None)
        }
        Err(e @ (UpstreamError::Rejected { .. } | UpstreamError::Redirect { .. })) => {
            gw.metrics.send("rejected", e.code())
        }
        Err(_) => gw.metrics.send("unknown", None),
    }
    let now = gw.now();
    match &result {
        Err(e) if e.unreachable() => {
            gw.health
                .upstream_failed(now, gw.upstream_url(), &e.to_string());
        }
        Err(UpstreamError::Config(_)) => {}
        _ => gw.health.upstream_answered(now, gw.upstream_url()),
    }
    match result {
        Ok(ok) => {
            let (rate, ceiling) = {
                let mut l = lock(&gw.limiter);
                l.on_success(now);
                (l.rate(), l.config().rate)
            };
            gw.health.sent_at_rate(now, rate, ceiling);
            gw.health.accepted(now);
            lock(&gw.pairs).on_success(pair_key(&row));
            let held = ok.message_status == Some(MessageStatus::HeldForQualityAssessment);
            let change = Change {
                state: Some(if held {
                    MessageState::Held
                } else {
                    MessageState::Accepted
                }),
                // Statuses correlated through biz_opaque_callback_data may have moved it on.
                only_from: Some(MessageState::Sending),
                wamid: Some(ok.wamid.clone()),
                accepted_at: Some(now),
                clear_lease: true,
                ..Change::new(&row.id, now)
            }
            .with_event(NewEvent::new(
                "accepted",
                now,
                json!({ "attempt": row.attempts, "wamid": ok.wamid, "message_status": ok.message_status }),
            ));
            apply(gw, vec![change]).await;
            // Statuses that raced the answer were parked: apply them now.
            crate::statuses::adopt_orphans(gw, &ok.wamid, now).await;
        }
        Err(e) => on_error(gw, &row, e, now).await,
    }
}

/// Classifies a failed attempt and records the decision.
async fn on_error<S: Store + Clone>(
    gw: &Gateway<S>,
    row: &MessageRecord,
    e: UpstreamError,
    now: Millis,
) {
    let rule = gw.classifier.classify(&e);
    let attempt = match rule.action {
        Action::PairBackoff => lock(&gw.pairs).errors(pair_key(row)) + 1,
        _ => u32::try_from(row.attempts).unwrap_or(u32::MAX),
    };
    let decision = {
        let mut rng = lock(&gw.rng);
        next_delay(&rule, attempt, &mut *rng, now, Some(row.deadline))
    };
    // Effects on the number, the recipient, the template or the contact, whatever the message's
    // own fate.
    match rule.action {
        Action::Throttle | Action::PauseNumber => {
            let (until, rate) = {
                let mut l = lock(&gw.limiter);
                (l.on_throttle(now, rule.retry_after), l.rate())
            };
            gw.health.throttled(now, rule.code, rate, until);
        }
        Action::PairBackoff => {
            lock(&gw.pairs).on_pair_error(pair_key(row), now);
        }
        Action::WithdrawConsent => {
            crate::consent::withdraw_marketing(gw, &row.to, now, "platform:131050").await
        }
        Action::PauseTemplate | Action::DisableTemplate => {
            if let Some(t) = &row.template {
                let status = if rule.action == Action::PauseTemplate {
                    "PAUSED"
                } else {
                    "DISABLED"
                };
                crate::templates::set_status(gw, &t.name, &t.language, status, now).await;
            }
        }
        _ => {}
    }
    let error = (rule.code.unwrap_or(0), rule.reason.clone());
    let attempt_detail = json!({
        "attempt": row.attempts,
        "error": { "kind": e.kind(), "code": rule.code, "http_status": rule.http_status, "message": e.to_string() },
        "action": rule.action.as_str(),
    });
    let base = Change {
        clear_lease: true,
        last_error: Some(error.clone()),
        ..Change::new(&row.id, now)
    };
    let requeue = |at: Millis, kind: &str| {
        Change {
            state: Some(MessageState::Queued),
            next_attempt_at: Some(at),
            ..base.clone()
        }
        .with_event(NewEvent::new(
            kind,
            now,
            merge(&attempt_detail, json!({ "retry_at": at })),
        ))
    };
    let mut park_template = false;
    let change = match decision {
        Decision::RetryAt(at) => requeue(at, "attempt_failed"),
        Decision::Throttle { until } => requeue(until, "throttled"),
        Decision::PairBackoff { until } => requeue(until, "pair_backoff"),
        Decision::PauseNumber { until } => requeue(until, "number_paused"),
        Decision::PauseTemplate { recheck_at } => {
            // Parked until the template is active again (a status webhook or a sync releases it,
            // and then it goes at once); `recheck_at` is the classifier's hint, in the event.
            park_template = true;
            let mut c = requeue(now, "template_paused");
            if let Some(ev) = c.event.as_mut() {
                ev.detail = merge(&ev.detail, json!({ "recheck_at": recheck_at }));
            }
            c
        }
        Decision::Unknown { .. } => unknown_outcome(gw, row, now, &e.to_string()),
        Decision::Fail { kind, reason } => {
            if kind == FailKind::WindowClosed
                && let Some(fallback) = window_fallback(gw, row)
            {
                // The body becomes the fallback template (recorded in the event).
                Change {
                    state: Some(MessageState::Queued),
                    next_attempt_at: Some(now),
                    body: Some(fallback.to_string()),
                    ..base.clone()
                }
                .with_event(NewEvent::new(
                    "window_fallback",
                    now,
                    merge(&attempt_detail, json!({ "fallback": fallback })),
                ))
            } else if kind == FailKind::NotByUserId
                && let Some((phone, body)) = phone_fallback(gw, row).await
            {
                // The platform takes it by phone: the body is readdressed (recorded in the event).
                Change {
                    state: Some(MessageState::Queued),
                    next_attempt_at: Some(now),
                    body: Some(body.to_string()),
                    ..base.clone()
                }
                .with_event(NewEvent::new(
                    "resend_by_phone",
                    now,
                    merge(&attempt_detail, json!({ "to": phone })),
                ))
            } else if kind == FailKind::Holdout && window_open(gw, &row.to, now).await {
                // 130472 is retried only while a conversation is open.
                requeue(now + 60_000, "holdout_retry")
            } else {
                Change {
                    state: Some(MessageState::Failed),
                    failed_at: Some(now),
                    ..base.clone()
                }
                .with_event(NewEvent::new(
                    "failed",
                    now,
                    merge(&attempt_detail, json!({ "kind": kind, "reason": reason })),
                ))
            }
        }
    };
    apply(gw, vec![change]).await;
    if park_template && let Some(t) = &row.template {
        let _ = gw
            .store
            .park_template(&t.name, Some(&t.language), now)
            .await;
    }
}

/// Whether the user wrote in the last 24 hours (an open conversation).
async fn window_open<S: Store + Clone>(gw: &Gateway<S>, wa_id: &str, now: Millis) -> bool {
    gw.store
        .last_inbound(gw.phone_number_id(), wa_id)
        .await
        .ok()
        .flatten()
        .is_some_and(|t| now - t < 24 * 3_600_000)
}

/// The configured fallback template for a free-form message whose window closed, as a body.
fn window_fallback<S>(gw: &Gateway<S>, row: &MessageRecord) -> Option<serde_json::Value> {
    if row.template.is_some() {
        return None;
    }
    let template = gw.cfg.gates.window_fallback.clone()?;
    let address = if mynah_wire::UserId::well_formed(&row.to) {
        "recipient"
    } else {
        "to"
    };
    Some(json!({
        "messaging_product": "whatsapp",
        address: row.to,
        "type": "template",
        "template": template,
        "biz_opaque_callback_data": row.id,
    }))
}

/// Who the pair limiter paces: the person, whichever id addressed them.
fn pair_key(row: &MessageRecord) -> &str {
    row.person.as_deref().unwrap_or(&row.to)
}

/// A message refused for a business-scoped user id, readdressed to the person's phone: the
/// phone and the new body; `None` when it was not addressed by BSUID or no phone is known.
async fn phone_fallback<S: Store + Clone>(
    gw: &Gateway<S>,
    row: &MessageRecord,
) -> Option<(String, serde_json::Value)> {
    let mut body: serde_json::Value = serde_json::from_str(&row.body).ok()?;
    let obj = body.as_object_mut()?;
    if obj.contains_key("to") || !obj.contains_key("recipient") {
        return None;
    }
    let phone = gw.store.person(&row.to).await.ok()??.wa_id?;
    obj.remove("recipient");
    obj.insert("to".into(), serde_json::Value::String(phone.clone()));
    Some((phone, body))
}

fn merge(a: &serde_json::Value, b: serde_json::Value) -> serde_json::Value {
    let mut out = a.clone();
    if let (Some(o), serde_json::Value::Object(extra)) = (out.as_object_mut(), b) {
        o.extend(extra);
    }
    out
}

/// On a shared store: the sends of an instance that died mid-send are found by their ended
/// leases and settled by the restart policy, as at a start. (An exclusive store needs none of
/// this: its only process settles its own sends.)
pub async fn recover_leases<S: Store + Clone>(gw: Arc<Gateway<S>>, shutdown: CancellationToken) {
    if !gw.store.shared() {
        return;
    }
    let every = Duration::from_millis(u64::try_from(gw.cfg.dispatch.lease_ms / 2).unwrap_or(0))
        .clamp(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        recover(&gw).await;
    }
}

/// TTL drop detection: a message accepted or sent but not delivered by its deadline plus the
/// buffer is `expired` — the platform drops it without a webhook, as the seed page says.
pub async fn sweep_expired<S: Store + Clone>(gw: Arc<Gateway<S>>, shutdown: CancellationToken) {
    loop {
        // A full batch means more may be due: go on at once.
        if sweep_once(&gw).await == SWEEP_BATCH {
            continue;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

const SWEEP_BATCH: usize = 500;

/// One pass of TTL drop detection at the clock's now; returns how many messages it looked at.
pub async fn sweep_once<S: Store + Clone>(gw: &Gateway<S>) -> usize {
    let now = gw.now();
    let due = gw
        .store
        .overdue(now - gw.cfg.ttl_buffer_ms, SWEEP_BATCH)
        .await
        .unwrap_or_default();
    let updates: Vec<StatusUpdate> = due
        .iter()
        .filter_map(|r| {
            let wamid = r.wamid.clone()?;
            Some(StatusUpdate {
                wamid,
                observation: Observation::Expired { at: now },
                received_at: now,
                event: NewEvent::new(
                    "expired",
                    now,
                    json!({ "deadline": r.deadline, "buffer_ms": gw.cfg.ttl_buffer_ms, "reason": "not delivered within its time-to-live: assumed dropped by the platform" }),
                ),
                payload: String::new(),
                dedupe_key: None,
            })
        })
        .collect();
    if !updates.is_empty() {
        if let Err(e) = gw.store.apply_statuses(updates).await {
            tracing::error!(error = %e, "recording expiries failed");
        }
        gw.changed();
    }
    // Messages that waited for the one before them in their sequence until its timeout.
    match gw.store.sequence_timeouts(now, SWEEP_BATCH).await {
        Ok(ids) if !ids.is_empty() => {
            gw.changed();
            gw.wake_dispatch.notify_one();
        }
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "applying sequence timeouts failed"),
    }
    // Messages held back by a paused template whose time-to-live ended: never sent.
    let parked = match gw.store.expire_parked(now, SWEEP_BATCH).await {
        Ok(ids) => ids.len(),
        Err(e) => {
            tracing::error!(error = %e, "expiring held-back messages failed");
            0
        }
    };
    if parked > 0 {
        gw.changed();
    }
    due.len().max(parked)
}
