//! Platform statuses as the gateway applies them: the dedupe key of a status, its store update
//! (a monotonic observation plus its timeline event), and the re-application of statuses that
//! were parked because they overtook their send's answer. Used by the webhook intake (statuses
//! as they arrive) and the dispatcher (parked statuses adopted when the answer lands).

use crate::clock::Millis;
use crate::gateway::Gateway;
use crate::model::{Observation, PlatformStatus};
use crate::store::{NewEvent, StatusUpdate, Store};
use mynah_wire::webhook::Status;
use serde_json::json;

/// The dedupe key of a status: wamid, status, error code.
pub(crate) fn status_key(s: &Status) -> String {
    let code = s
        .errors
        .as_ref()
        .and_then(|e| e.first())
        .map_or(0, |e| e.code);
    format!("s:{}:{}:{code}", s.id, s.status.as_str())
}

/// A platform status as a store update (also used for parked orphans, stored as the status JSON).
pub(crate) fn status_update(payload: &str, now: Millis) -> Option<StatusUpdate> {
    let s: Status = serde_json::from_str(payload).ok()?;
    update_for(&s, payload.to_string(), now)
}

pub(crate) fn update_for(s: &Status, payload: String, now: Millis) -> Option<StatusUpdate> {
    let status = PlatformStatus::from_platform(s.status.as_str())?;
    let error = s
        .errors
        .as_ref()
        .and_then(|e| e.first())
        .map(|e| (i64::from(e.code), e.error_data.details.clone()));
    let unix: i64 = s.timestamp.parse().unwrap_or(now / 1_000);
    Some(StatusUpdate {
        wamid: s.id.clone(),
        observation: Observation::platform(status, unix, error.clone()),
        received_at: now,
        event: NewEvent::new(
            format!("status.{}", s.status.as_str()),
            now,
            json!({
                "wamid": s.id,
                "timestamp": unix,
                "error": error.map(|(code, details)| json!({ "code": code, "details": details })),
                "pricing": s.pricing,
                "conversation": s.conversation,
            }),
        ),
        payload,
        dedupe_key: Some(status_key(s)),
    })
}

/// Re-applies statuses parked before the send's answer was recorded.
pub(crate) async fn adopt_orphans<S: Store + Clone>(gw: &Gateway<S>, wamid: &str, now: Millis) {
    // Only a wamid whose statuses the intake is applying (or parked) can have orphans: the rest
    // cost no store call.
    if !gw.take_orphan_watch(wamid) {
        return;
    }
    let orphans = match gw.store.take_orphans(wamid).await {
        Ok(o) if !o.is_empty() => o,
        _ => return,
    };
    let updates: Vec<StatusUpdate> = orphans
        .into_iter()
        .filter_map(|payload| status_update(&payload, now))
        .collect();
    if let Err(e) = gw.store.apply_statuses(updates).await {
        tracing::error!(error = %e, "applying parked statuses failed");
    }
    gw.changed();
}
