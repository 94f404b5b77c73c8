//! Retention: a periodic sweep deletes what the gateway no longer needs (parked orphan statuses,
//! webhook dedupe keys, processed raw webhook bodies) once it is older than its configured age
//! ([`crate::config::Retention`]). Deletes go in small batches, so the writer is never held
//! for long.

use crate::gateway::Gateway;
use crate::store::{Prunable, Store, StoreError};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Rows examined per store call.
const BATCH: usize = 1_000;

/// Sweeps every `retention.sweep_ms` until shutdown.
pub async fn run<S: Store + Clone>(gw: Arc<Gateway<S>>, shutdown: CancellationToken) {
    let every = Duration::from_millis(gw.cfg.retention.sweep_ms.max(1_000) as u64);
    loop {
        if let Err(e) = sweep_once(&gw).await {
            tracing::error!(error = %e, "retention sweep failed");
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// One sweep over every kind of record; how many rows of each were deleted.
pub async fn sweep_once<S: Store + Clone>(
    gw: &Gateway<S>,
) -> Result<Vec<(Prunable, u64)>, StoreError> {
    let r = &gw.cfg.retention;
    let now = gw.now();
    let mut out = Vec::with_capacity(3);
    for (what, keep_ms) in [
        (Prunable::Orphans, r.orphans_ms),
        (Prunable::DedupeKeys, r.dedupe_keys_ms),
        (Prunable::Inbox, r.inbox_ms),
    ] {
        if keep_ms <= 0 {
            continue;
        }
        let before = now.saturating_sub(keep_ms);
        let mut deleted = 0;
        loop {
            let p = gw.store.prune(what, before, BATCH).await?;
            deleted += p.deleted;
            if !p.more {
                break;
            }
            // Other writers get their turn between batches.
            tokio::task::yield_now().await;
        }
        if deleted > 0 {
            tracing::info!(?what, deleted, "retention");
        }
        out.push((what, deleted));
    }
    Ok(out)
}
