//! Ordered sequences end to end through a real sandbox: messages posted with the same
//! `sequence` key to one person go out one at a time in the order accepted, each after the one
//! before was delivered (also for 1,000 sequences under the sandbox's webhook reorder and delay
//! chaos); a failed step stops the rest (unless told to continue); a step that waits too long is
//! sent anyway or fails the rest, as configured.

mod common;

use common::*;
use mynah_gateway::clock::Clock;
use reqwest::Method;
use serde_json::{Value, json};
use std::sync::Arc;

fn step(to: &str, text_body: &str, sequence: Value) -> Value {
    json!({ "to": to, "type": "template", "category": "utility", "sequence": sequence,
            "template": { "name": "hello_world", "language": { "code": "en_US" } },
            "metadata": { "step": text_body } })
}

fn event<'a>(m: &'a Value, kind: &str) -> Option<&'a Value> {
    m["events"].as_array()?.iter().find(|e| e["type"] == kind)
}

fn no_consent_gate() -> mynah_gateway::config::Config {
    let mut cfg = gateway_config();
    cfg.gates.consent = false;
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_step_goes_after_the_one_before_is_delivered() {
    let p = Pair::start(sandbox_config(), no_consent_gate()).await;
    let to = "4915160000001";
    let ids: Vec<String> = {
        let mut ids = Vec::new();
        for i in 0..4 {
            ids.push(
                p.send(step(to, &format!("s{i}"), json!("onboarding")))
                    .await,
            );
        }
        ids
    };
    // Another sequence (and a message without one) to the same person are not held by it.
    let other = p.send(step(to, "other", json!("billing"))).await;
    let mut last_delivered = 0;
    let mut waited = 0;
    for (i, id) in ids.iter().enumerate() {
        let m = p
            .until(id, "delivered", |m| {
                m["state"] == "delivered" || m["state"] == "read"
            })
            .await;
        let accepted = m["accepted_at"].as_i64().unwrap();
        assert!(
            accepted >= last_delivered,
            "step {i} was handed over before step {} was delivered: {m:#}",
            i.saturating_sub(1)
        );
        last_delivered = m["delivered_at"].as_i64().unwrap();
        if i > 0 {
            assert_eq!(m["sequence"]["after"], ids[i - 1].as_str(), "{m:#}");
            assert_eq!(m["sequence"]["key"], "onboarding");
            // It waited, unless the one before was delivered by the time it was accepted.
            if let Some(wait) = event(&m, "sequence_wait") {
                waited += 1;
                assert_eq!(wait["detail"]["after"], ids[i - 1].as_str());
                let released = event(&m, "sequence_released").expect("released");
                assert_eq!(released["detail"]["after"], ids[i - 1].as_str(), "{m:#}");
            }
        } else {
            assert!(
                m["sequence"]["after"].is_null(),
                "the first waits for nothing: {m:#}"
            );
        }
    }
    assert!(waited > 0, "steps posted at once wait for each other");
    let m = p
        .until(&other, "delivered", |m| {
            m["state"] == "delivered" || m["state"] == "read"
        })
        .await;
    assert!(m["sequence"]["after"].is_null(), "another key: {m:#}");
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_step_stops_the_rest_unless_told_to_continue() {
    let p = Pair::start(sandbox_config(), no_consent_gate()).await;
    let to = "4915160000002";
    // The first send to this user fails for good (131026, not retried).
    let (s, b) = p
        .control(
            Method::POST,
            "/faults",
            &json!({ "match": { "to": to, "nth": 1 }, "action": { "code": 131026 } }),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let first = p.send(step(to, "s0", json!("welcome"))).await;
    let second = p.send(step(to, "s1", json!("welcome"))).await;
    let third = p.send(step(to, "s2", json!("welcome"))).await;
    p.until_state(&first, "failed").await;
    for (id, after) in [(&second, &first), (&third, &second)] {
        let m = p.until_state(id, "failed").await;
        assert_eq!(m["attempts"], 0, "never sent: {m:#}");
        let failed = event(&m, "failed").unwrap();
        assert_eq!(failed["detail"]["kind"], "sequence_stopped", "{m:#}");
        assert_eq!(failed["detail"]["after"], after.as_str(), "{m:#}");
        assert!(m["reason"].as_str().unwrap().contains("welcome"), "{m:#}");
    }
    // A later step of a stopped sequence fails at once; one that continues on failure goes.
    let late = p.send(step(to, "s3", json!("welcome"))).await;
    p.until_state(&late, "failed").await;
    let goes = p
        .send(step(
            to,
            "s4",
            json!({ "key": "welcome", "on_failure": "continue" }),
        ))
        .await;
    p.until(&goes, "delivered", |m| {
        m["state"] == "delivered" || m["state"] == "read"
    })
    .await;
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_that_waits_too_long_is_sent_anyway_or_fails_the_rest() {
    let clock = Arc::new(Clock::manual(Clock::System.now()));
    let p = Pair::start_with_clock(sandbox_config(), no_consent_gate(), clock.clone()).await;
    let to = "4915160000003";
    // The user's phone is off: nothing is delivered.
    let (s, b) = p
        .control(
            Method::PUT,
            &format!("/users/{to}"),
            &json!({ "offline_for_seconds": 86_400 }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let first = p.send(step(to, "s0", json!("a"))).await;
    let anyway = p
        .send(step(to, "s1", json!({ "key": "a", "timeout_seconds": 60 })))
        .await;
    let strict_first = p.send(step(to, "t0", json!("b"))).await;
    let strict = p
        .send(step(
            to,
            "t1",
            json!({ "key": "b", "timeout_seconds": 60, "on_timeout": "fail_rest" }),
        ))
        .await;
    let strict_after = p.send(step(to, "t2", json!("b"))).await;
    p.until_state(&first, "sent").await;
    p.until_state(&strict_first, "sent").await;
    let (_, m) = p.get(&format!("/v1/messages/{anyway}")).await;
    assert_eq!(
        (m["state"].as_str(), m["parked"].as_str()),
        (Some("queued"), Some("sequence")),
        "{m:#}"
    );
    // Not before the timeout.
    clock.advance(59_000);
    mynah_gateway::dispatch::sweep_once(&p.gw).await;
    let (_, m) = p.get(&format!("/v1/messages/{anyway}")).await;
    assert_eq!(m["state"], "queued", "{m:#}");
    clock.advance(1_000);
    mynah_gateway::dispatch::sweep_once(&p.gw).await;
    let m = p.until_state(&anyway, "sent").await;
    assert_eq!(
        event(&m, "sequence_released").unwrap()["detail"]["timeout"],
        true,
        "{m:#}"
    );
    let m = p.until_state(&strict, "failed").await;
    assert_eq!(
        event(&m, "failed").unwrap()["detail"]["kind"],
        "sequence_timeout",
        "{m:#}"
    );
    // The step after the one that timed out stops with it.
    let m = p.until_state(&strict_after, "failed").await;
    assert_eq!(
        event(&m, "failed").unwrap()["detail"]["kind"],
        "sequence_stopped",
        "{m:#}"
    );
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_sequence_field_is_refused_with_the_reason() {
    let p = Pair::start(sandbox_config(), no_consent_gate()).await;
    for (bad, says) in [
        (json!(""), "key"),
        (json!(7), "must be a key"),
        (json!({ "key": "x", "wait": "sent" }), "wait"),
        (
            json!({ "key": "x", "timeout_seconds": 0 }),
            "timeout_seconds",
        ),
        (json!({ "key": "x", "then": 1 }), "has no field"),
    ] {
        let (s, b) = p
            .post("/v1/messages", &step("4915160000004", "x", bad.clone()))
            .await;
        assert_eq!(s, 400, "{bad}: {b}");
        assert_eq!(b["error"]["code"], "invalid_envelope", "{b}");
        assert!(
            b["error"]["details"].as_str().unwrap().contains(says),
            "{bad}: {b}"
        );
    }
    p.shutdown().await;
}

/// Every message of the gateway, by id (pages of 1,000).
async fn all_messages(p: &Pair) -> std::collections::HashMap<String, Value> {
    let mut out = std::collections::HashMap::new();
    let mut after = String::new();
    loop {
        let (s, page) = p.get(&format!("/v1/messages?limit=1000{after}")).await;
        assert_eq!(s, 200, "{page}");
        let list = page["messages"].as_array().cloned().unwrap_or_default();
        let full = list.len() == 1_000;
        if let Some(last) = list.last().and_then(|m| m["id"].as_str()) {
            after = format!("&after={last}");
        }
        for m in list {
            if let Some(id) = m["id"].as_str() {
                out.insert(id.to_string(), m.clone());
            }
        }
        if !full {
            return out;
        }
    }
}

/// 1,000 sequences of three steps under the sandbox's webhook chaos (half the webhooks held
/// back and overtaken, a third delayed) and deliveries that take 1 to 60 ms: every step is
/// handed over only after the step accepted before it was delivered, so each sequence's
/// messages are delivered in the order they were accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_sequences_are_delivered_in_order_under_webhook_chaos() {
    const SEQUENCES: usize = 1_000;
    const STEPS: usize = 3;
    let mut sb = sandbox_config();
    sb.limits.profile = mynah_sandbox::config::LimitProfile::Unlimited;
    sb.latency.delivered = mynah_sandbox::config::Latency {
        min_ms: 1,
        max_ms: 60,
    };
    sb.webhooks.chaos.reorder = 0.5;
    sb.webhooks.chaos.reorder_hold_ms = 30;
    sb.webhooks.chaos.delay = 0.3;
    sb.webhooks.chaos.delay_ms = Some(mynah_sandbox::config::Latency {
        min_ms: 0,
        max_ms: 60,
    });
    let mut gw = no_consent_gate();
    gw.rate = Some(mynah_gateway::ratelimit::NumberLimitConfig {
        rate: 500.0,
        burst: 100,
        ..mynah_gateway::ratelimit::NumberLimitConfig::default()
    });
    let p = Pair::start(sb, gw).await;
    // Step k of every sequence is accepted before step k + 1 of any.
    let ids = enqueue_many(&p, SEQUENCES * STEPS, |i| {
        let (sequence, k) = (i % SEQUENCES, i / SEQUENCES);
        step(
            &format!("491517{sequence:07}"),
            &format!("s{k}"),
            json!("onboarding"),
        )
    })
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    let all = loop {
        let all = all_messages(&p).await;
        let done = ids
            .iter()
            .filter(|id| {
                all.get(id.as_str())
                    .is_some_and(|m| m["state"] == "delivered" || m["state"] == "read")
            })
            .count();
        if done == ids.len() {
            break all;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{done} of {} delivered",
            ids.len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    for sequence in 0..SEQUENCES {
        for k in 1..STEPS {
            let (before, id) = (
                &ids[(k - 1) * SEQUENCES + sequence],
                &ids[k * SEQUENCES + sequence],
            );
            let m = &all[id.as_str()];
            let prev = &all[before.as_str()];
            assert_eq!(m["sequence"]["after"], before.as_str(), "{m:#}");
            let (accepted, delivered) = (
                m["accepted_at"].as_i64().unwrap(),
                prev["delivered_at"].as_i64().unwrap(),
            );
            assert!(
                accepted >= delivered,
                "sequence {sequence}: step {k} handed over at {accepted}, before step {} was delivered at {delivered}",
                k - 1
            );
        }
    }
    p.shutdown().await;
}
