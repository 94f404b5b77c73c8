//! `GET /metrics` end to end: behind the gateway key (or on a listener of its own), parsed as
//! Prometheus text, its counters matching what the test sent through a real sandbox.

mod common;

use common::*;
use serde_json::json;
use std::collections::HashMap;

/// Samples by `(name, sorted labels)`.
type Samples = HashMap<(String, Vec<(String, String)>), f64>;

/// Parses the exposition with a Prometheus text parser.
fn parse(text: &str) -> Samples {
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text");
    let mut out = HashMap::new();
    for s in scrape.samples {
        let mut labels: Vec<(String, String)> = s
            .labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        labels.sort();
        let v = match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(h) => h.last().map_or(0.0, |b| b.count),
            prometheus_parse::Value::Summary(_) => continue,
        };
        out.insert((s.metric, labels), v);
    }
    out
}

fn get(m: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut l: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    l.sort();
    m.get(&(name.to_string(), l)).copied().unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_count_what_was_sent() {
    let mut cfg = gateway_config();
    cfg.gates.consent = false;
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    cfg.metrics.listen = Some(metrics_port.to_string());
    let p = Pair::start(sandbox_config(), cfg).await;
    // Without the key on the API listener: refused.
    let r = p
        .http
        .get(format!("{}/metrics", p.gw_base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let ok: Vec<String> = {
        let mut ids = Vec::new();
        for i in 0..5 {
            ids.push(
                p.send(template("hello_world", &format!("49151800000{i:02}")))
                    .await,
            );
        }
        ids
    };
    // Refused by the platform at once (131026, permanent: one attempt).
    let (st, b) = p
        .control(
            reqwest::Method::POST,
            "/faults",
            &json!({ "match": { "to": "4915180000099" }, "action": { "code": 131026 } }),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    let gone = p.send(template("hello_world", "4915180000099")).await;
    for id in &ok {
        p.until(id, "delivered", |m| {
            m["state"] == "delivered" || m["state"] == "read"
        })
        .await;
    }
    p.until_state(&gone, "failed").await;
    let (s, _) = p.post("/v1/messages", &json!({})).await;
    assert_eq!(s, 400);

    let r = p
        .http
        .get(format!("{}/metrics", p.gw_base))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"),
    );
    let text = r.text().await.unwrap();
    let m = parse(&text);
    assert_eq!(
        get(
            &m,
            "mynah_gateway_sends_total",
            &[("outcome", "accepted"), ("code", "")]
        ),
        5.0,
        "{text}"
    );
    assert_eq!(
        get(
            &m,
            "mynah_gateway_sends_total",
            &[("outcome", "rejected"), ("code", "131026")]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        get(&m, "mynah_gateway_upstream_latency_seconds_count", &[]),
        6.0,
        "{text}"
    );
    // Every status of the five came in as a webhook: at least sent + delivered each.
    assert!(
        get(&m, "mynah_gateway_webhooks_received_total", &[]) >= 10.0,
        "{text}"
    );
    assert!(
        get(&m, "mynah_gateway_intake_latency_seconds_count", &[]) >= 10.0,
        "{text}"
    );
    assert!(
        get(&m, "mynah_gateway_limiter_ceiling", &[]) > 0.0,
        "{text}"
    );
    // Nothing is waiting any more.
    assert_eq!(
        get(
            &m,
            "mynah_gateway_queue_depth",
            &[("state", "queued"), ("lane", "transactional")]
        ),
        0.0,
        "{text}"
    );

    // The metrics-only listener needs no key and says the same.
    let r = p
        .http
        .get(format!("http://{metrics_port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let again = parse(&r.text().await.unwrap());
    assert_eq!(
        get(
            &again,
            "mynah_gateway_sends_total",
            &[("outcome", "accepted"), ("code", "")]
        ),
        5.0
    );
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_depth_counts_what_waits() {
    let mut cfg = gateway_config();
    cfg.gates.consent = false;
    let p = Pair::start(sandbox_config(), cfg).await;
    let later = p.gw.now() + 3_600_000;
    for i in 0..3 {
        let mut body = template("hello_world", &format!("49151810000{i:02}"));
        body["not_before"] = json!(later);
        body["lane"] = json!("bulk");
        p.send(body).await;
    }
    let (s, text) = {
        let r = p
            .http
            .get(format!("{}/metrics", p.gw_base))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    };
    assert_eq!(s, 200);
    let m = parse(&text);
    assert_eq!(
        get(
            &m,
            "mynah_gateway_queue_depth",
            &[("state", "queued"), ("lane", "bulk")]
        ),
        3.0,
        "{text}"
    );
    p.shutdown().await;
}
