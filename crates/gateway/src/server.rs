//! The wiring: [`run`] serves the HTTP API and runs the gateway's background tasks — the
//! dispatcher, the webhook processor, TTL drop detection, template sync, retention and the app
//! event pusher — until the shutdown token fires. It sits above every module it starts; none of
//! them imports it.

use crate::gateway::Gateway;
use crate::store::Store;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Serves `gw` on `listener` (within the configuration's `[server]` limits, through
/// `mynah_serve`) and runs its background tasks until `shutdown` fires; every task stops on the
/// token, and the store's queued writes are committed before this returns.
pub async fn run<S: Store + Clone>(
    listener: TcpListener,
    gw: Arc<Gateway<S>>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    crate::dispatch::recover(&gw).await;
    let tasks = vec![
        tokio::spawn(crate::dispatch::run(gw.clone(), shutdown.clone())),
        tokio::spawn(crate::intake::run(gw.clone(), shutdown.clone())),
        tokio::spawn(crate::campaigns::run(gw.clone(), shutdown.clone())),
        tokio::spawn(crate::dispatch::sweep_expired(gw.clone(), shutdown.clone())),
        tokio::spawn(crate::dispatch::recover_leases(
            gw.clone(),
            shutdown.clone(),
        )),
        tokio::spawn(crate::templates::run_sync(gw.clone(), shutdown.clone())),
        tokio::spawn(crate::retention::run(gw.clone(), shutdown.clone())),
        tokio::spawn(watch_links(gw.clone(), shutdown.clone())),
        tokio::spawn(crate::events::run_pusher(
            gw.store.clone(),
            gw.cfg.app_webhooks.clone(),
            gw.clock.clone(),
            gw.roles.clone(),
            gw.wake_events.clone(),
            shutdown.clone(),
        )),
    ];
    let console = crate::console::Console::new(gw.clone());
    let sampler = gw.cfg.console.enabled.then(|| {
        tokio::spawn(crate::console::overview::run(
            gw.clone(),
            console.samples.clone(),
            shutdown.clone(),
        ))
    });
    let app = crate::console::wrap(crate::http::router(gw.clone()), console);
    let metrics = match &gw.cfg.metrics.listen {
        Some(addr) => {
            let listener = TcpListener::bind(addr).await?;
            tracing::info!(addr = %listener.local_addr()?, "metrics listener (no key)");
            let router = crate::http::metrics_router(gw.clone());
            let (cfg, stop) = (gw.cfg.server.clone(), shutdown.clone());
            Some(tokio::spawn(async move {
                mynah_serve::serve(listener, router, &cfg, stop).await
            }))
        }
        None => None,
    };
    let stop = shutdown.clone();
    let streams = gw.shutdown.clone();
    tokio::join!(
        mynah_serve::serve(listener, app, &gw.cfg.server, shutdown.clone()),
        async move {
            stop.cancelled().await;
            // Event streams never end by themselves.
            streams.cancel();
        }
    );
    shutdown.cancel();
    for t in tasks {
        let _ = t.await;
    }
    if let Some(s) = sampler {
        let _ = s.await;
    }
    if let Some(m) = metrics {
        let _ = m.await;
    }
    Ok(())
}

/// Looks every second for sends that no webhook followed (the log says so once).
async fn watch_links<S: Store + Clone>(gw: Arc<Gateway<S>>, shutdown: CancellationToken) {
    let intake = format!("http://{}/webhooks", gw.cfg.listen);
    loop {
        gw.health.check(gw.now(), &intake);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
    }
}
