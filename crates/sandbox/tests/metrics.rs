//! `GET /metrics` on the sandbox: parsed as Prometheus text, its counters matching the requests
//! the test made and the webhooks the receiver took.

mod common;

use common::*;

fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text");
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

#[tokio::test]
async fn requests_and_webhooks_are_counted() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    for i in 0..3 {
        h.send_text(&format!("49151900000{i:02}"), "hi").await;
    }
    let (s, _) = h.send_cloud(text("4915190000010", "hi")).await;
    assert_eq!(s, 200);
    // Refused: no `to`, no `recipient` (400, code 100).
    let (s, _) = h
        .send_360(serde_json::json!({ "messaging_product": "whatsapp", "type": "text", "text": { "body": "x" } }))
        .await;
    assert_eq!(s, 400);
    // The lifecycle runs on the manual clock: sent, delivered, read for each.
    h.advance(60.0).await;
    h.drain().await;
    let r = h
        .http
        .get(format!("{}/metrics", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let ok = [
        ("route", "messages"),
        ("dialect", "360dialog"),
        ("status", "200"),
    ];
    assert_eq!(
        sample(&text, "mynah_sandbox_requests_total", &ok),
        3.0,
        "{text}"
    );
    let cloud = [
        ("route", "messages"),
        ("dialect", "cloud"),
        ("status", "200"),
    ];
    assert_eq!(
        sample(&text, "mynah_sandbox_requests_total", &cloud),
        1.0,
        "{text}"
    );
    let bad = [
        ("route", "messages"),
        ("dialect", "360dialog"),
        ("status", "400"),
    ];
    assert_eq!(
        sample(&text, "mynah_sandbox_requests_total", &bad),
        1.0,
        "{text}"
    );
    let delivered = sample(
        &text,
        "mynah_sandbox_webhook_deliveries_total",
        &[("outcome", "delivered")],
    );
    assert_eq!(delivered, rx.received().len() as f64, "{text}");
    assert!(delivered >= 12.0, "three statuses for each of four: {text}");
    assert_eq!(
        sample(&text, "mynah_sandbox_webhook_backlog", &[]),
        0.0,
        "{text}"
    );
    assert_eq!(
        sample(&text, "mynah_sandbox_held_messages", &[]),
        0.0,
        "{text}"
    );
    h.shutdown().await;
}
