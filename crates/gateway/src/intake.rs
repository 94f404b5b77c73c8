//! Webhook intake: the HTTP side verifies the signature, appends the raw body to the inbox and
//! answers 200 at once; [`run`] processes the inbox afterwards. Processing dedupes (a unique key
//! per status and per inbound message), applies statuses through the monotonic state machine
//! (parking those that beat their send response), opens the 24-hour window on inbound messages,
//! withdraws marketing consent on opt-out keywords and `user_preferences` stops, keeps the
//! template cache current, and retries what the platform failed asynchronously when the
//! classifier says so (131049). Payloads it does not understand are kept as `unparsed`.

use crate::classify::{Action, Decision, next_delay};
use crate::clock::Millis;
use crate::gateway::{Gateway, lock};
use crate::model::MessageState;
use crate::store::{
    Change, InboundRecord, InboxOutcome, InboxRow, NewEvent, StatusApplied, StatusUpdate, Store,
};
use crate::upstream::UpstreamError;
use hmac::{Hmac, Mac};
use mynah_wire::webhook::{
    ChangeValue, Envelope, OnPremStatuses, RawIdentity, RawIdentityUpdate, RawInbound, Status,
};
use serde::Deserialize;
use serde_json::json;
use sha2::Sha256;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Checks `X-Hub-Signature-256: sha256=<hex>` over the raw body, in constant time.
pub fn signature_ok(secret: &str, header: Option<&str>, body: &[u8]) -> bool {
    let Some(hex_sig) = header.and_then(|h| h.strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_sig.trim()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// Constant-time equality for shared-secret headers.
pub fn secret_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What one inbox body held.
#[derive(Default)]
struct Parsed {
    statuses: Vec<Status>,
    inbound: Vec<RawInbound>,
    opt_outs: Vec<(String, Millis, String)>,
    templates: Vec<(String, String, String)>,
    /// Changes of users' ids, in order.
    id_changes: Vec<RawIdentityUpdate>,
    /// The ids named together (contacts, statuses' recipients, preferences).
    identities: Vec<RawIdentity>,
}

/// Reads one inbox body; `false` when it is neither a platform envelope nor an On-Premises
/// body. A body of statuses only, most of them, is read typed straight from its bytes; any
/// other is parsed once into a tree that every reader of it, typed or not, works from.
fn read_body(body: &[u8], out: &mut Parsed) -> bool {
    if let Some(only) = mynah_wire::webhook::statuses_only(body) {
        out.statuses.extend(only.statuses);
        out.identities.extend(only.identities);
        return true;
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return false;
    };
    out.id_changes
        .extend(mynah_wire::webhook::raw_identity_updates_in(&value));
    out.identities
        .extend(mynah_wire::webhook::raw_identities_in(&value));
    parse_body(&value, out)
}

/// Reads one body parsed into a tree.
fn parse_body(body: &serde_json::Value, out: &mut Parsed) -> bool {
    if let Ok(env) = Envelope::deserialize(body) {
        // Inbound messages are kept whole (every field, every type), so they are read untyped.
        out.inbound
            .extend(mynah_wire::webhook::raw_inbound_in(body));
        for entry in env.entry {
            for change in entry.changes {
                match change.value {
                    ChangeValue::Messages(v) => {
                        out.statuses.extend(v.statuses.unwrap_or_default());
                    }
                    ChangeValue::UserPreferences(v) => {
                        for p in v.user_preferences {
                            let who = p.wa_id.or(p.user_id);
                            if let Some(who) = who
                                && p.value.eq_ignore_ascii_case("stop")
                                && p.category.contains("marketing")
                            {
                                out.opt_outs.push((
                                    who,
                                    p.timestamp.saturating_mul(1_000),
                                    "platform:user_preferences".into(),
                                ));
                            }
                        }
                    }
                    ChangeValue::TemplateStatus(t) => out.templates.push((
                        t.message_template_name,
                        t.message_template_language,
                        t.event,
                    )),
                    _ => {}
                }
            }
        }
        return true;
    }
    if let Ok(on) = OnPremStatuses::deserialize(body) {
        for s in on.statuses {
            out.statuses.push(Status {
                id: s.id,
                status: s.status,
                timestamp: s.timestamp,
                recipient_id: Some(s.recipient_id),
                recipient_user_id: None,
                recipient_parent_user_id: None,
                biz_opaque_callback_data: None,
                conversation: s.conversation,
                pricing: s.pricing,
                errors: s.errors.map(|errs| {
                    errs.into_iter()
                        .map(|e| mynah_wire::error::WebhookError {
                            code: e.code,
                            title: e.title.clone(),
                            message: e.title,
                            error_data: mynah_wire::error::WebhookErrorData {
                                details: e.details.unwrap_or_default(),
                            },
                            href: String::new(),
                        })
                        .collect()
                }),
            });
        }
        return true;
    }
    false
}

/// An inbound message as the store records it; `None` without an id or a sender.
fn inbound_record(m: &RawInbound, now: Millis) -> Option<InboundRecord> {
    Some(InboundRecord {
        seq: 0,
        id: m.id()?.to_string(),
        phone_number_id: m.phone_number_id.clone(),
        wa_id: m.sender()?.to_string(),
        profile_name: m.profile_name.clone(),
        kind: m.kind().to_string(),
        context_id: m.context_id().map(str::to_string),
        body: m.message.to_string(),
        timestamp: m.timestamp_secs().map_or(now, |s| s.saturating_mul(1_000)),
        received_at: now,
        person: None,
    })
}

/// Processes the inbox until `shutdown`.
/// On a shared store one instance at a time processes it (role `intake`); every instance takes
/// webhooks into it.
pub async fn run<S: Store + Clone>(gw: Arc<Gateway<S>>, shutdown: CancellationToken) {
    loop {
        if !gw.plays("intake").await {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
            continue;
        }
        let rows = match gw.store.pending_inbox(256).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "reading the webhook inbox failed");
                Vec::new()
            }
        };
        if rows.is_empty() {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = gw.wake_inbox.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
            continue;
        }
        if let Err(e) = process(&gw, rows).await {
            tracing::error!(error = %e, "processing webhooks failed; retrying");
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }
}

/// Processes one batch of inbox rows.
async fn process<S: Store + Clone>(
    gw: &Gateway<S>,
    rows: Vec<InboxRow>,
) -> Result<(), crate::store::StoreError> {
    let now = gw.now();
    let mut outcomes = Vec::with_capacity(rows.len());
    let mut all = Parsed::default();
    for row in &rows {
        let ok = read_body(&row.body, &mut all);
        outcomes.push((
            row.id,
            if ok {
                InboxOutcome::Processed
            } else {
                InboxOutcome::Unparsed
            },
        ));
    }
    let statuses = all.statuses;
    // Statuses that move nothing (`deleted`, `warning`) have no update; the rest stay paired
    // with their results.
    let (statuses, updates): (Vec<&Status>, Vec<StatusUpdate>) = statuses
        .iter()
        .filter_map(|s| {
            crate::statuses::update_for(s, serde_json::to_string(s).unwrap_or_default(), now)
                .map(|u| (s, u))
        })
        .unzip();
    // Announced before they are applied: a send whose answer commits meanwhile then knows to
    // look for parked statuses (see `statuses::adopt_orphans`).
    gw.watch_orphans(updates.iter().map(|u| u.wamid.clone()));
    // People: changes of ids, links between ids, and each sender, learned before the messages
    // are stored under their person; the statuses applied in the links' transaction.
    let readable: Vec<&RawInbound> = all
        .inbound
        .iter()
        .filter(|m| m.id().is_some() && m.sender().is_some())
        .collect();
    let senders = readable
        .iter()
        .map(|m| crate::people::inbound_sighting(m, now))
        .collect();
    let (keys, mut applied) = crate::people::learn(
        gw,
        std::mem::take(&mut all.id_changes),
        std::mem::take(&mut all.identities),
        senders,
        updates,
        now,
    )
    .await?;
    gw.unwatch_orphans(
        statuses
            .iter()
            .zip(&applied)
            .filter(|(_, a)| **a != StatusApplied::Orphaned)
            .map(|(s, _)| s.id.as_str()),
    );
    // A status for a wamid we do not know: its message may have lost its send answer (an
    // unknown outcome). biz_opaque_callback_data carries our id: adopt the wamid, then the
    // parked status applies.
    for (s, a) in statuses.iter().copied().zip(applied.iter_mut()) {
        if *a == StatusApplied::Orphaned
            && let Some(fixed) = correlate(gw, s, now).await?
        {
            gw.unwatch_orphans(std::iter::once(s.id.as_str()));
            *a = fixed;
        }
    }
    for (s, a) in statuses.iter().copied().zip(&applied) {
        if let StatusApplied::Applied { id, state, .. } = a
            && *state == MessageState::Failed
        {
            on_async_failure(gw, id, s, now).await;
        }
    }
    // Inbound: each first sighting is stored (the conversation), opens the window and becomes a
    // `message.received` event, in one transaction (a unique key per message dedupes them);
    // opt-out keywords of first sightings withdraw marketing consent.
    let inbound: Vec<(InboundRecord, Option<&str>)> = readable
        .iter()
        .zip(keys.into_iter().chain(std::iter::repeat(None)))
        .filter_map(|(m, person)| {
            let mut r = inbound_record(m, now)?;
            r.person = person;
            Some((r, m.words()))
        })
        .collect();
    let fresh = if inbound.is_empty() {
        Vec::new()
    } else {
        let records = inbound.iter().map(|(r, _)| r.clone()).collect();
        gw.store.record_inbound(records).await?
    };
    for ((r, words), _) in inbound.iter().zip(&fresh).filter(|(_, f)| **f) {
        tracing::debug!(from = %r.wa_id, kind = %r.kind, "message received");
        if let Some(text) = words
            && gw
                .cfg
                .opt_out_keywords
                .iter()
                .any(|k| k.eq_ignore_ascii_case(text.trim()))
        {
            all.opt_outs.push((
                r.person.clone().unwrap_or_else(|| r.wa_id.clone()),
                r.timestamp,
                format!("inbound:{}", text.trim()),
            ));
        }
    }
    // Recorded at the time we learned it: the platform's timestamps are whole seconds, and an
    // opt-in recorded earlier in that same second must not outlive the opt-out.
    for (wa_id, at, source) in &all.opt_outs {
        crate::consent::withdraw_marketing(gw, wa_id, (*at).max(now), source).await;
    }
    for (name, language, event) in &all.templates {
        crate::templates::on_status_event(gw, name, language, event, now).await;
    }
    gw.store.finish_inbox(outcomes).await?;
    gw.changed();
    // A delivery may have let the next message of a sequence go.
    gw.wake_dispatch.notify_one();
    Ok(())
}

/// Adopts a status's wamid for the message its `biz_opaque_callback_data` names, when that
/// message has none yet, and applies the statuses parked for it.
async fn correlate<S: Store + Clone>(
    gw: &Gateway<S>,
    s: &Status,
    now: Millis,
) -> Result<Option<StatusApplied>, crate::store::StoreError> {
    let Some(id) = &s.biz_opaque_callback_data else {
        return Ok(None);
    };
    let Some(m) = gw.store.get(id).await? else {
        return Ok(None);
    };
    if let Some(own) = &m.wamid {
        if *own == s.id {
            return Ok(None);
        }
        return other_attempt(gw, &m.id, s, now).await.map(Some);
    }
    let change = Change {
        wamid: Some(s.id.clone()),
        ..Change::new(&m.id, now)
    }
    .with_event(NewEvent::new(
        "correlated",
        now,
        json!({ "wamid": s.id, "via": "biz_opaque_callback_data" }),
    ));
    gw.store.apply(vec![change]).await?;
    let parked: Vec<StatusUpdate> = gw
        .store
        .take_orphans(&s.id)
        .await?
        .iter()
        .filter_map(|p| crate::statuses::status_update(p, now))
        .collect();
    let results = gw.store.apply_statuses(parked).await?;
    Ok(results
        .into_iter()
        .rev()
        .find(|r| matches!(r, StatusApplied::Applied { .. })))
}

/// A status for another accepted attempt of a message that already has its wamid (typically an
/// at-least-once resend after an unknown outcome, both copies accepted by the platform; or a late
/// status of an attempt that was retried). The message's state follows its own wamid; the other
/// attempt's statuses go into its timeline (once each) instead of waiting as orphans.
async fn other_attempt<S: Store + Clone>(
    gw: &Gateway<S>,
    id: &str,
    s: &Status,
    now: Millis,
) -> Result<StatusApplied, crate::store::StoreError> {
    gw.store.take_orphans(&s.id).await?;
    let first = gw
        .store
        .remember_keys(
            vec![crate::store::message_scoped_key(
                id,
                &crate::statuses::status_key(s),
            )],
            now,
        )
        .await?;
    if !first.first().copied().unwrap_or(false) {
        return Ok(StatusApplied::Duplicate);
    }
    let event = NewEvent::new(
        "other_attempt.status",
        now,
        json!({
            "wamid": s.id,
            "status": s.status.as_str(),
            "reason": "a status of another accepted attempt of this message; its state follows the wamid it has",
        }),
    );
    gw.store
        .apply(vec![Change::new(id, now).with_event(event)])
        .await?;
    Ok(StatusApplied::Duplicate)
}

/// A `failed` status: the classifier decides, as for a synchronous error (131049 retries on its
/// schedule within the TTL; 131050 withdraws consent; 132015 parks the template …).
async fn on_async_failure<S: Store + Clone>(gw: &Gateway<S>, id: &str, s: &Status, now: Millis) {
    let Some(err) = s.errors.as_ref().and_then(|e| e.first()) else {
        return;
    };
    let Ok(Some(row)) = gw.store.get(id).await else {
        return;
    };
    let as_error = UpstreamError::Rejected {
        http_status: 200,
        code: Some(i64::from(err.code)),
        subcode: None,
        title: Some(err.title.clone()),
        details: Some(err.error_data.details.clone()),
        retry_after: None,
        body: String::new(),
    };
    let rule = gw.classifier.classify(&as_error);
    match rule.action {
        Action::WithdrawConsent => {
            crate::consent::withdraw_marketing(gw, &row.to, now, "platform:131050").await;
        }
        Action::DisableTemplate => {
            if let Some(t) = &row.template {
                crate::templates::set_status(gw, &t.name, &t.language, "DISABLED", now).await;
            }
        }
        Action::PauseTemplate => {
            // A held message dropped by pacing (or a send racing a pause): it waits, parked,
            // until the template is active again.
            let Some(t) = &row.template else {
                return;
            };
            crate::templates::set_status(gw, &t.name, &t.language, "PAUSED", now).await;
            let change = Change {
                state: Some(MessageState::Queued),
                next_attempt_at: Some(now),
                clear_failure: true,
                ..Change::new(id, now)
            }
            .with_event(NewEvent::new(
                "template_paused",
                now,
                json!({ "code": err.code, "reason": rule.reason, "then": "parked until the template is active" }),
            ));
            if let Err(e) = gw.store.apply(vec![change]).await {
                tracing::error!(error = %e, "re-queueing after 132015 failed");
            }
            let _ = gw
                .store
                .park_template(&t.name, Some(&t.language), now)
                .await;
        }
        Action::MarketingBackoff => {
            let attempt = u32::try_from(row.attempts).unwrap_or(u32::MAX);
            let decision = {
                let mut rng = lock(&gw.rng);
                next_delay(&rule, attempt, &mut *rng, now, Some(row.deadline))
            };
            if let Decision::RetryAt(at) = decision {
                let change = Change {
                    state: Some(MessageState::Queued),
                    next_attempt_at: Some(at),
                    clear_failure: true,
                    ..Change::new(id, now)
                }
                .with_event(NewEvent::new(
                    "marketing_backoff",
                    now,
                    json!({ "code": err.code, "retry_at": at, "reason": rule.reason }),
                ));
                if let Err(e) = gw.store.apply(vec![change]).await {
                    tracing::error!(error = %e, "re-queueing after 131049 failed");
                }
                gw.wake_dispatch.notify_one();
            }
        }
        _ => {}
    }
}
