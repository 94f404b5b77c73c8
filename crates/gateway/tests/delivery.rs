//! Delivery behaviour end to end: the transactional lane ahead of a bulk backlog, duplicated and
//! reordered webhooks converging, and TTL drop detection on a manual clock.

mod common;
use common::*;
use mynah_gateway::clock::Clock;
use mynah_gateway::ratelimit::NumberLimitConfig;
use reqwest::Method;
use serde_json::json;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transactional_lane_overtakes_a_bulk_backlog() {
    let mut gw = gateway_config();
    gw.gates.consent = false;
    gw.rate = Some(NumberLimitConfig {
        rate: 100.0,
        burst: 10,
        ..NumberLimitConfig::default()
    });
    let p = Pair::start(sandbox_config(), gw).await;
    let bulk = enqueue_many(&p, 300, |i| {
        let mut b = template("spring_sale", &format!("49151300{i:05}"));
        b["lane"] = json!("bulk");
        b
    })
    .await;
    let otp = p.send(template("hello_world", "4915130099999")).await;
    let m = p.until_state(&otp, "read").await;
    let otp_at = m["accepted_at"].as_i64().unwrap();
    let last_bulk = bulk.last().unwrap();
    let b = p.until_state(last_bulk, "read").await;
    assert!(
        otp_at < b["accepted_at"].as_i64().unwrap() - 1_000,
        "the transactional message waited behind the bulk backlog"
    );
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_and_reordered_webhooks_converge() {
    let mut sb = sandbox_config();
    sb.webhooks.chaos.duplicate = 0.5;
    sb.webhooks.chaos.reorder = 0.5;
    sb.webhooks.chaos.reorder_hold_ms = 30;
    let mut gw = gateway_config();
    gw.gates.consent = false;
    let p = Pair::start(sb, gw).await;
    let ids = enqueue_many(&p, 60, |i| {
        template("hello_world", &format!("49151400{i:05}"))
    })
    .await;
    let done = until_count(&p, "read", ids.len()).await;
    for m in done {
        assert!(m["delivered_at"].is_i64() && m["read_at"].is_i64(), "{m}");
    }
    // Each status is recorded once in the timeline however often it came.
    let (_, m) = p.get(&format!("/v1/messages/{}", ids[0])).await;
    let reads = event_types(&m)
        .iter()
        .filter(|t| *t == "status.read")
        .count();
    assert_eq!(reads, 1, "{m}");
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_undelivered_past_its_ttl_is_expired() {
    let clock = Arc::new(Clock::manual(mynah_gateway::clock::Clock::System.now()));
    let mut gw = gateway_config();
    gw.gates.consent = false;
    gw.ttl_buffer_ms = 60_000;
    let p = Pair::start_with_clock(sandbox_config(), gw, clock.clone()).await;
    let user = "4915150000001";
    let (s, b) = p
        .control(
            Method::PUT,
            &format!("/users/{user}"),
            &json!({ "offline_for_seconds": 86_400 }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let mut body = template("hello_world", user);
    body["ttl_seconds"] = json!(600);
    let id = p.send(body).await;
    p.until_state(&id, "sent").await;
    // The TTL plus the buffer pass on the gateway's clock: assumed dropped.
    clock.advance(600_000 + 60_000 - 1);
    assert_eq!(mynah_gateway::dispatch::sweep_once(&p.gw).await, 0);
    let (_, m) = p.get(&format!("/v1/messages/{id}")).await;
    assert_eq!(m["state"], "sent", "not before TTL + buffer: {m}");
    clock.advance(2);
    mynah_gateway::dispatch::sweep_once(&p.gw).await;
    let m = p.until_state(&id, "expired").await;
    let ev = m["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "expired")
        .cloned()
        .unwrap();
    assert!(
        ev["detail"]["reason"]
            .as_str()
            .unwrap()
            .contains("time-to-live"),
        "{ev}"
    );
    p.shutdown().await;
}

/// The sandbox accepts the send and emits its statuses at once but holds the answer: `sent`,
/// `delivered` and `read` reach the intake before the gateway knows the wamid. They are parked,
/// matched through `biz_opaque_callback_data`, and the late answer undoes none of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_that_overtake_the_send_answer_are_applied() {
    let mut gw = gateway_config();
    gw.gates.consent = false;
    let p = Pair::start(sandbox_config(), gw).await;
    let to = "4915150000001";
    let (s, b) = p
        .control(
            Method::POST,
            "/faults",
            &json!({ "match": { "to": to }, "action": { "answer_delay_ms": 1_000 } }),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let id = p.send(template("hello_world", to)).await;
    // Read while the answer is still held: only the webhooks can have brought the wamid.
    let m = p.until_state(&id, "read").await;
    let types = event_types(&m);
    assert!(types.contains(&"correlated".to_string()), "{m:#}");
    assert!(!types.contains(&"accepted".to_string()), "{m:#}");
    // Then the answer comes: it is recorded, and the state stays `read`.
    let m = p
        .until(&id, "the send answer", |m| {
            event_types(m).contains(&"accepted".to_string())
        })
        .await;
    assert_eq!(m["state"], "read", "{m:#}");
    let accepted = m["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "accepted")
        .unwrap();
    assert_eq!(
        accepted["state"], "read",
        "the event records the state it left: {m:#}"
    );
    assert_eq!(accepted["detail"]["wamid"], m["wamid"], "{m:#}");
    p.shutdown().await;
}

/// A status without `biz_opaque_callback_data` (as a platform that does not echo it sends) for a
/// wamid whose send answer is still on its way is parked, then applied when the answer lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_status_is_adopted_when_the_send_answer_lands() {
    let mut sb = sandbox_config();
    // The sandbox's own statuses come much later; the test's own webhook comes first.
    sb.latency.sent = mynah_sandbox::config::Latency {
        min_ms: 60_000,
        max_ms: 60_000,
    };
    let mut gw = gateway_config();
    gw.gates.consent = false;
    let p = Pair::start(sb, gw).await;
    let to = "4915150000002";
    let (s, b) = p
        .control(
            Method::POST,
            "/faults",
            &json!({ "match": { "to": to }, "action": { "answer_delay_ms": 1_000 } }),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let id = p.send(template("hello_world", to)).await;
    // The sandbox has accepted it (the answer is held): learn its wamid there.
    let mut wamid = None;
    for _ in 0..200 {
        let (_, l) = p
            .control(Method::GET, &format!("/messages?wa_id={to}"), &json!({}))
            .await;
        if let Some(w) = l["messages"][0]["id"].as_str() {
            wamid = Some(w.to_string());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let wamid = wamid.expect("the sandbox accepted the send");
    assert_eq!(p.post_status(&wamid, "delivered", to).await, 200);
    // The answer is still held (1 s): the status waits, parked.
    let (_, m) = p.get(&format!("/v1/messages/{id}")).await;
    assert_eq!(m["state"], "sending", "{m:#}");
    assert!(
        !event_types(&m).contains(&"status.delivered".to_string()),
        "{m:#}"
    );
    let m = p.until_state(&id, "delivered").await;
    let types = event_types(&m);
    let accepted = types.iter().position(|t| t == "accepted").expect("answer");
    let delivered = types
        .iter()
        .position(|t| t == "status.delivered")
        .expect("status");
    assert!(accepted < delivered, "parked until the answer: {m:#}");
    assert!(!types.contains(&"correlated".to_string()), "{m:#}");
    assert_eq!(m["wamid"], wamid.as_str());
    p.shutdown().await;
}

/// Retention on the gateway's clock: parked orphans, dedupe keys and processed webhook bodies go
/// after their configured ages; the message and its timeline stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_sweeps_what_is_no_longer_needed() {
    use mynah_gateway::store::{Prunable, Store};
    let clock = Arc::new(Clock::manual(mynah_gateway::clock::Clock::System.now()));
    let mut gw = gateway_config();
    gw.gates.consent = false;
    let p = Pair::start_with_clock(sandbox_config(), gw, clock.clone()).await;
    let id = p.send(template("hello_world", "4915150000003")).await;
    p.until_state(&id, "read").await;
    // A status for a message some other tool sent on the number: parked, never claimed.
    assert_eq!(
        p.post_status("wamid.someone-else", "sent", "4915150000004")
            .await,
        200
    );
    for _ in 0..500 {
        if p.gw.store.pending_inbox(1).await.unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(p.gw.store.pending_inbox(1).await.unwrap().is_empty());
    let deleted = |swept: &[(Prunable, u64)], what| {
        swept
            .iter()
            .find(|(w, _)| *w == what)
            .map_or(0, |(_, n)| *n)
    };
    use mynah_gateway::clock::DAY;
    // Nothing is old yet.
    let swept = mynah_gateway::retention::sweep_once(&p.gw).await.unwrap();
    assert!(swept.iter().all(|(_, n)| *n == 0), "{swept:?}");
    clock.advance(7 * DAY + 1);
    let swept = mynah_gateway::retention::sweep_once(&p.gw).await.unwrap();
    assert_eq!(deleted(&swept, Prunable::Orphans), 1, "{swept:?}");
    assert_eq!(deleted(&swept, Prunable::DedupeKeys), 0, "{swept:?}");
    clock.advance(7 * DAY);
    let swept = mynah_gateway::retention::sweep_once(&p.gw).await.unwrap();
    assert!(
        deleted(&swept, Prunable::DedupeKeys) >= 3,
        "sent, delivered, read: {swept:?}"
    );
    assert_eq!(deleted(&swept, Prunable::Inbox), 0, "{swept:?}");
    clock.advance(16 * DAY);
    let swept = mynah_gateway::retention::sweep_once(&p.gw).await.unwrap();
    assert!(deleted(&swept, Prunable::Inbox) >= 2, "{swept:?}");
    // The message keeps its state and its whole timeline.
    let (_, m) = p.get(&format!("/v1/messages/{id}")).await;
    assert_eq!(m["state"], "read");
    assert!(
        event_types(&m).contains(&"status.read".to_string()),
        "{m:#}"
    );
    p.shutdown().await;
}
