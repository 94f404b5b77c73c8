//! Backpressure by time: `/messages` gets 503 (code 2, `Retry-After`) once the webhook sender is
//! more than `limits.max_webhook_lag_ms` behind a slow receiver, and not before. The receiver is
//! a real HTTP server that holds every answer until the test lets it go; the lag is measured on
//! the manual clock, so nothing here depends on how fast the machine is.

mod common;
use axum::routing::post;
use common::*;
use serde_json::json;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// A receiver that answers 200 only once a permit is given, one per POST.
struct SlowReceiver {
    url: String,
    gate: Arc<Semaphore>,
}

async fn slow_receiver() -> SlowReceiver {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let gate = Arc::new(Semaphore::new(0));
    let g = gate.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move || {
            let g = g.clone();
            async move {
                if let Ok(p) = g.acquire().await {
                    p.forget();
                }
                "ok"
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    SlowReceiver { url, gate }
}

async fn lag(h: &Harness) -> i64 {
    let (s, b) = h.control_get("/health").await;
    assert_eq!(s, 200, "{b}");
    b["webhook_lag_ms"].as_i64().unwrap()
}

async fn send(h: &Harness, to: &str) -> (u16, Option<String>, serde_json::Value) {
    let r = h
        .http
        .post(format!("{}/messages", h.base))
        .header("D360-API-KEY", KEY)
        .json(&text(to, "hi"))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let retry_after = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    (status, retry_after, r.json().await.unwrap())
}

#[tokio::test]
async fn a_slow_receiver_gets_503_once_the_lag_passes_the_limit_and_not_before() {
    let rx = slow_receiver().await;
    let mut cfg = config(&rx.url);
    cfg.limits.profile = mynah_sandbox::config::LimitProfile::Unlimited;
    cfg.limits.max_webhook_lag_ms = 5_000;
    // One POST at a time, answered whenever the receiver likes (no timeout, no retry within the
    // test's advances): the sender can only go at the receiver's pace.
    cfg.webhooks.max_in_flight = 1;
    cfg.webhooks.timeout_ms = 600_000;
    cfg.webhooks.initial_backoff_ms = 600_000;
    let fixed = mynah_sandbox::config::Latency::fixed(100);
    cfg.latency.sent = fixed;
    cfg.latency.delivered = fixed;
    cfg.latency.read = fixed;
    let h = Harness::start(cfg).await;

    let (s, _, b) = send(&h, "4915100000001").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(lag(&h).await, 0, "nothing waits yet");

    // `sent` goes out and hangs; `delivered` and `read` wait behind it. Events queued inside an
    // advance count as queued at its end (the sender had no time within the jump).
    h.advance(1.0).await;
    assert_eq!(lag(&h).await, 0);
    let (s, _, b) = send(&h, "4915100000002").await;
    assert_eq!(s, 200, "{b}");

    // 4 s, then 4.9 s behind: still accepted.
    h.advance(4.0).await;
    assert_eq!(lag(&h).await, 4_000);
    h.advance(0.9).await;
    assert_eq!(lag(&h).await, 4_900);
    let (s, _, b) = send(&h, "4915100000003").await;
    assert_eq!(s, 200, "4.9 s behind is within the limit: {b}");

    // 5.1 s behind: the platform's concurrency signal, on both dialects.
    h.advance(0.2).await;
    assert_eq!(lag(&h).await, 5_100);
    let (s, retry_after, b) = send(&h, "4915100000004").await;
    assert_eq!(s, 503, "{b}");
    assert_eq!(b["error"]["code"], json!(2), "{b}");
    assert_eq!(retry_after.as_deref(), Some("1"), "{b}");
    let (s, b) = h.send_cloud(text("4915100000004", "hi")).await;
    assert_eq!(s, 503, "{b}");

    // The lag is in the metrics too.
    let metrics = h.metrics_text().await;
    assert!(
        metrics.contains("mynah_sandbox_webhook_lag_seconds 5.1"),
        "{metrics}"
    );

    // Far behind, the client is told to stay away longer.
    h.advance(3.0).await;
    let (s, retry_after, _) = send(&h, "4915100000004").await;
    assert_eq!(s, 503);
    assert_eq!(retry_after.as_deref(), Some("4"));

    // The receiver catches up: the backlog drains and sends are accepted again.
    rx.gate.add_permits(1_000);
    h.drain().await;
    assert_eq!(lag(&h).await, 0);
    let (s, _, b) = send(&h, "4915100000004").await;
    assert_eq!(s, 200, "{b}");
    h.shutdown().await;
}

#[tokio::test]
async fn a_paused_receiver_builds_no_lag() {
    let rx = slow_receiver().await;
    rx.gate.add_permits(1_000);
    let mut cfg = config(&rx.url);
    cfg.limits.profile = mynah_sandbox::config::LimitProfile::Unlimited;
    cfg.limits.max_webhook_lag_ms = 1_000;
    let h = Harness::start(cfg).await;
    let (s, b) = h
        .control(
            reqwest::Method::POST,
            "/webhooks/receivers/pause",
            &json!({ "url": rx.url }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, _, b) = send(&h, "4915100000001").await;
    assert_eq!(s, 200, "{b}");
    h.advance(60.0).await;
    // Its events wait on purpose: they are not lag.
    let (_, health) = h.control_get("/health").await;
    assert!(health["pending_webhooks"].as_u64().unwrap() > 0, "{health}");
    assert_eq!(lag(&h).await, 0);
    let (s, _, b) = send(&h, "4915100000002").await;
    assert_eq!(s, 200, "{b}");
    h.shutdown().await;
}
