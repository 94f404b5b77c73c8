//! The template status cache: synced from the upstream's template API at start and every
//! `template_sync_ms`, and kept current by `message_template_status_update` webhooks and by
//! 132015/132016 answers. A pause parks the template's queued messages; its return to APPROVED
//! releases them.

use crate::clock::Millis;
use crate::gateway::Gateway;
use crate::model::Category;
use crate::store::{Store, TemplateRecord};
use mynah_wire::reply::ListedStatus;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The platform's status word for a listed status.
fn status_word(s: &ListedStatus) -> String {
    match s {
        ListedStatus::Approved => "APPROVED".into(),
        ListedStatus::Pending => "PENDING".into(),
        ListedStatus::Rejected => "REJECTED".into(),
        ListedStatus::Paused => "PAUSED".into(),
        ListedStatus::Disabled => "DISABLED".into(),
        ListedStatus::Other(o) => o.to_ascii_uppercase(),
    }
}

fn category(c: Option<mynah_wire::template::Category>) -> Category {
    match c {
        Some(mynah_wire::template::Category::Marketing) => Category::Marketing,
        Some(mynah_wire::template::Category::Authentication) => Category::Authentication,
        _ => Category::Utility,
    }
}

/// The shortest time between two syncs asked for by enqueue (a template not in the cache).
pub const ON_DEMAND_SYNC_MS: Millis = 10_000;

/// Syncs the cache because enqueue met a template it does not hold (just created, or sent before
/// the start's sync finished), unless a sync ran in the last [`ON_DEMAND_SYNC_MS`]; concurrent
/// callers share one sync. True when a sync ran (or finished meanwhile).
pub async fn sync_on_demand<S: Store + Clone>(gw: &Gateway<S>) -> bool {
    let asked = gw.now();
    let mut last = gw.last_sync.lock().await;
    if let Some(at) = *last {
        // Another caller synced while this one waited: use its result.
        if at >= asked {
            return true;
        }
        if asked - at < ON_DEMAND_SYNC_MS {
            return false;
        }
    }
    let ok = sync_locked(gw).await.is_ok();
    *last = Some(gw.now());
    ok
}

/// Why a sync failed (the cache is unchanged).
#[derive(Debug)]
pub enum SyncError {
    /// The upstream's template API failed or refused.
    Upstream(crate::upstream::UpstreamError),
    /// The store could not be read or written.
    Store(String),
}

impl std::fmt::Display for SyncError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SyncError::Upstream(e) => e.fmt(f),
            SyncError::Store(e) => f.write_str(e),
        }
    }
}

/// Reads every template from the upstream into the cache; returns how many.
pub async fn sync<S: Store + Clone>(gw: &Gateway<S>) -> Result<usize, SyncError> {
    let mut last = gw.last_sync.lock().await;
    let result = sync_locked(gw).await;
    *last = Some(gw.now());
    result
}

async fn sync_locked<S: Store + Clone>(gw: &Gateway<S>) -> Result<usize, SyncError> {
    let listed = gw.upstream.list_templates().await;
    let now = gw.now();
    match &listed {
        Err(e) if e.unreachable() => {
            gw.health
                .upstream_failed(now, gw.upstream_url(), &e.to_string())
        }
        Err(crate::upstream::UpstreamError::Config(_)) => {}
        _ => gw.health.upstream_answered(now, gw.upstream_url()),
    }
    let listed = listed.map_err(SyncError::Upstream)?;
    let before = gw
        .store
        .templates()
        .await
        .map_err(|e| SyncError::Store(e.to_string()))?;
    let records: Vec<TemplateRecord> = listed
        .into_iter()
        .map(|t| TemplateRecord {
            status: status_word(&t.status),
            category: category(t.category),
            id: t.id.unwrap_or_default(),
            components: t.components.to_string(),
            parameter_format: t.parameter_format,
            name: t.name,
            language: t.language,
            updated_at: now,
        })
        .collect();
    let n = records.len();
    for r in &records {
        let was = before
            .iter()
            .find(|b| b.name == r.name && b.language == r.language)
            .map(|b| b.status.as_str());
        if was != Some(r.status.as_str()) {
            if let Some(was) = was {
                log_change(&r.name, &r.language, was, &r.status);
            }
            follow_status(gw, &r.name, &r.language, &r.status, now).await;
        }
    }
    gw.store
        .upsert_templates(records.clone())
        .await
        .map_err(|e| SyncError::Store(e.to_string()))?;
    gw.template_heads.remember(&records);
    gw.templates_synced
        .store(true, std::sync::atomic::Ordering::Release);
    Ok(n)
}

/// How often an instance that does not sync templates (another one on the database does)
/// reads the cache the syncing instance keeps.
const FOLLOW_MS: Millis = 5_000;

/// Syncs at start and then every `template_sync_ms`, until `shutdown`. On a shared store one
/// instance at a time syncs (role `templates`, renewed every third of its lease); the others
/// read what it stored every [`FOLLOW_MS`].
pub async fn run_sync<S: Store + Clone>(gw: Arc<Gateway<S>>, shutdown: CancellationToken) {
    let shared = gw.store.shared();
    let mut synced_at: Option<Millis> = None;
    let mut followed_at: Option<Millis> = None;
    loop {
        let now = gw.now();
        if gw.plays("templates").await {
            let due = !shared
                || synced_at.is_none_or(|at| {
                    gw.cfg.template_sync_ms > 0 && now - at >= gw.cfg.template_sync_ms
                });
            if due {
                match sync(&gw).await {
                    Ok(n) => tracing::debug!(templates = n, "template cache synced"),
                    Err(e) => {
                        tracing::warn!(error = %e, "template sync failed; the cache keeps what it has")
                    }
                }
                synced_at = Some(now);
            }
        } else {
            // Taking the role over later syncs at once.
            synced_at = None;
            if followed_at.is_none_or(|at| now - at >= FOLLOW_MS) {
                match gw.store.templates().await {
                    Ok(records) => {
                        gw.template_heads.remember(&records);
                        gw.templates_synced
                            .store(true, std::sync::atomic::Ordering::Release);
                    }
                    Err(e) => tracing::warn!(error = %e, "reading the template cache failed"),
                }
                followed_at = Some(now);
            }
        }
        let every = if shared {
            crate::gateway::ROLE_LEASE_MS / 3
        } else if gw.cfg.template_sync_ms > 0 {
            gw.cfg.template_sync_ms
        } else {
            // Never again, but keep the task alive for shutdown.
            Millis::MAX / 4
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(every.clamp(1_000, 86_400_000) as u64)) => {}
        }
    }
}

/// Sets a cached template's status (a webhook or an error code told us) and follows it.
pub async fn set_status<S: Store + Clone>(
    gw: &Gateway<S>,
    name: &str,
    language: &str,
    status: &str,
    now: Millis,
) {
    let current = gw.store.template(name, language).await.ok().flatten();
    let record = match current {
        Some(mut t) => {
            if t.status == status {
                return;
            }
            log_change(name, language, &t.status, status);
            t.status = status.to_string();
            t.updated_at = now;
            t
        }
        None => TemplateRecord {
            name: name.to_string(),
            language: language.to_string(),
            category: Category::Utility,
            status: status.to_string(),
            id: String::new(),
            components: "[]".into(),
            parameter_format: None,
            updated_at: now,
        },
    };
    match gw.store.upsert_templates(vec![record.clone()]).await {
        Ok(()) => gw.template_heads.remember(std::slice::from_ref(&record)),
        Err(e) => tracing::error!(error = %e, "updating the template cache failed"),
    }
    follow_status(gw, name, language, status, now).await;
    // A campaign sending it pauses (or resumes) now, not at the runner's next look.
    gw.wake_campaigns.notify_one();
}

/// A `message_template_status_update` event.
pub async fn on_status_event<S: Store + Clone>(
    gw: &Gateway<S>,
    name: &str,
    language: &str,
    event: &str,
    now: Millis,
) {
    let status = match event.to_ascii_uppercase().as_str() {
        "APPROVED" | "REINSTATED" => "APPROVED",
        "PAUSED" => "PAUSED",
        "DISABLED" => "DISABLED",
        "REJECTED" => "REJECTED",
        "PENDING" | "IN_APPEAL" => "PENDING",
        "DELETED" | "PENDING_DELETION" | "ARCHIVED" => "DELETED",
        _ => return,
    };
    set_status(gw, name, language, status, now).await;
}

/// Logs a template's change of status (not its first sighting).
fn log_change(name: &str, language: &str, from: &str, to: &str) {
    match to {
        "PAUSED" | "DISABLED" | "REJECTED" | "DELETED" => tracing::warn!(
            template = name,
            language,
            from,
            to,
            "template status changed: it cannot be sent now"
        ),
        _ => tracing::info!(
            template = name,
            language,
            from,
            to,
            "template status changed"
        ),
    }
}

/// Parks or releases the template's queued messages for its new status.
async fn follow_status<S: Store + Clone>(
    gw: &Gateway<S>,
    name: &str,
    language: &str,
    status: &str,
    now: Millis,
) {
    let result = match status {
        "PAUSED" => gw.store.park_template(name, Some(language), now).await,
        // Disabled or deleted: parked messages go and fail with the platform's answer (132016).
        "APPROVED" | "DISABLED" | "DELETED" => {
            gw.store.unpark_template(name, Some(language), now).await
        }
        _ => Ok(0),
    };
    match result {
        Ok(n) if n > 0 => {
            tracing::info!(
                template = name,
                language,
                status,
                messages = n,
                "template status followed"
            );
            gw.changed();
            gw.wake_dispatch.notify_one();
        }
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "parking a template's messages failed"),
    }
}
