//! Every path of the error classifier, triggered through the sandbox (magic numbers and fault
//! rules) and observed in the gateway's timeline: permanent failures, the per-user marketing
//! backoff, opt-out, holdout, pair backoff, throttling, paused and disabled templates, the closed
//! window (with and without a fallback template), retries after 5xx, and unknown outcomes.

mod common;
use common::*;
use mynah_gateway::config::Config;
use mynah_gateway::store::Store;
use reqwest::Method;
use serde_json::{Value, json};

fn no_consent_gate() -> Config {
    let mut cfg = gateway_config();
    cfg.gates.consent = false;
    cfg
}

async fn fault(p: &Pair, rule: Value) {
    let (s, b) = p.control(Method::POST, "/faults", &rule).await;
    assert_eq!(s, 201, "{b}");
}

fn has(m: &Value, t: &str) -> bool {
    event_types(m).iter().any(|e| e == t)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_failures_opt_outs_and_holdouts_are_not_retried() {
    let mut sb = sandbox_config();
    sb.rules.holdout = true;
    let p = Pair::start(sb, no_consent_gate()).await;
    // 131026: not on WhatsApp.
    let gone = p.send(template("hello_world", "99900000131026")).await;
    let m = p.until_state(&gone, "failed").await;
    assert_eq!(m["last_error"]["code"], 131026, "{m}");
    assert_eq!(m["attempts"], 1);
    // 131050: the user stopped marketing; the registry records the opt-out.
    let stopped = p.send(template("spring_sale", "99900000131050")).await;
    p.until_state(&stopped, "failed").await;
    let (_, c) = p.get("/v1/contacts/99900000131050/consents").await;
    assert_eq!(c["current"][0]["status"], "opted_out", "{c}");
    assert_eq!(c["current"][0]["source"], "platform:131050", "{c}");
    // 130472: holdout, no open conversation: failed, not retried.
    let held_out = p.send(template("spring_sale", "99900000130472")).await;
    let m = p.until_state(&held_out, "failed").await;
    assert_eq!(m["last_error"]["code"], 130472, "{m}");
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_marketing_limit_backs_off_within_the_ttl() {
    let p = Pair::start(sandbox_config(), no_consent_gate()).await;
    let mut long = template("spring_sale", "99900000131049");
    long["ttl_seconds"] = json!(3 * 86_400);
    let retried = p.send(long).await;
    let m = p
        .until(&retried, "the marketing backoff", |m| {
            has(m, "marketing_backoff") && m["state"] == "queued"
        })
        .await;
    let ev = m["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "marketing_backoff")
        .unwrap();
    let wait = ev["detail"]["retry_at"].as_i64().unwrap() - ev["at"].as_i64().unwrap();
    assert!(
        (11 * 3_600_000..=13 * 3_600_000).contains(&wait),
        "first retry in about 12 h: {wait}"
    );
    // With a TTL shorter than the schedule it stays failed.
    let mut short = template("spring_sale", "99900000131049");
    short["ttl_seconds"] = json!(3_600);
    let given_up = p.send(short).await;
    let m = p.until_state(&given_up, "failed").await;
    assert!(!has(&m, "marketing_backoff"), "{m}");
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttles_retries_and_pair_limits_recover() {
    let p = Pair::start(sandbox_config(), no_consent_gate()).await;
    fault(&p, json!({ "match": { "to": "4915100000201" }, "action": { "code": 130429, "http_status": 429 }, "times": 1 })).await;
    fault(&p, json!({ "match": { "to": "4915100000202" }, "action": { "code": 131000, "http_status": 500 }, "times": 1 })).await;
    let throttled = p.send(template("hello_world", "4915100000201")).await;
    let retried = p.send(template("hello_world", "4915100000202")).await;
    let m = p.until_state(&throttled, "read").await;
    assert!(has(&m, "throttled") && has(&m, "accepted"), "{m}");
    let m = p.until_state(&retried, "read").await;
    assert!(has(&m, "attempt_failed"), "{m}");
    assert_eq!(m["attempts"], 2, "{m}");
    // 131056: only that recipient backs off.
    let paired = p.send(template("hello_world", "99900000131056")).await;
    p.until(&paired, "pair backoff", |m| {
        has(m, "pair_backoff") && m["state"] == "queued"
    })
    .await;
    let other = p.send(template("hello_world", "4915100000203")).await;
    p.until_state(&other, "read").await;
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_templates_park_and_resume_disabled_ones_fail() {
    let p = Pair::start(sandbox_config(), no_consent_gate()).await;
    fault(&p, json!({ "match": { "template": "order_update" }, "action": { "code": 132015 }, "times": 1 })).await;
    let body = json!({ "to": "4915100000210", "type": "template", "template": {
        "name": "order_update", "language": { "code": "en_US" },
        "components": [ { "type": "body", "parameters": [
            { "type": "text", "text": "Ana" }, { "type": "text", "text": "$10" }, { "type": "text", "text": "Monday" } ] } ] } });
    let parked = p.send(body.clone()).await;
    let m = p
        .until(&parked, "parked", |m| m["parked"].is_string())
        .await;
    assert_eq!(m["state"], "queued");
    assert!(has(&m, "template_paused"), "{m}");
    let (_, t) = p.get("/v1/templates").await;
    let status = t["templates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "order_update")
        .unwrap()["status"]
        .clone();
    assert_eq!(status, "PAUSED");
    // New sends of the paused template wait too.
    let waiting = p.send(body).await;
    p.until(&waiting, "parked", |m| m["parked"].is_string())
        .await;
    // The template is active upstream: a sync finds it APPROVED and releases both.
    let (s, _) = p.post("/v1/templates/sync", &json!({})).await;
    assert_eq!(s, 200);
    p.until_state(&parked, "read").await;
    p.until_state(&waiting, "read").await;
    // 132016: disabled — failed, cache updated.
    fault(
        &p,
        json!({ "match": { "template": "hello_world" }, "action": { "code": 132016 }, "times": 1 }),
    )
    .await;
    let dead = p.send(template("hello_world", "4915100000211")).await;
    let m = p.until_state(&dead, "failed").await;
    assert_eq!(m["last_error"]["code"], 132016, "{m}");
    // The cache now says DISABLED: later sends of it are refused at enqueue.
    let (s, b) = p
        .post("/v1/messages", &template("hello_world", "4915100000212"))
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (422, Some("template_inactive")),
        "{b}"
    );
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_window_fails_or_falls_back_to_a_template() {
    let mut cfg = no_consent_gate();
    cfg.gates.window = false;
    let p = Pair::start(sandbox_config(), cfg).await;
    fault(
        &p,
        json!({ "match": { "type": "text" }, "action": { "async_code": 131047 } }),
    )
    .await;
    let late = p.send(text("4915100000220", "Are you still there?")).await;
    let m = p.until_state(&late, "failed").await;
    assert_eq!(m["last_error"]["code"], 131047, "{m}");
    p.shutdown().await;

    let mut cfg = no_consent_gate();
    cfg.gates.window = false;
    cfg.gates.window_fallback =
        Some(json!({ "name": "hello_world", "language": { "code": "en_US" } }));
    let p = Pair::start(sandbox_config(), cfg).await;
    fault(
        &p,
        json!({ "match": { "type": "text" }, "action": { "code": 131047 } }),
    )
    .await;
    let rescued = p.send(text("4915100000221", "Are you still there?")).await;
    let m = p.until_state(&rescued, "read").await;
    assert!(has(&m, "window_fallback"), "{m}");
    p.shutdown().await;
}

/// The resend goes out before the lost send's statuses arrive: the platform has two copies.
/// The message follows the resend's wamid; the first copy's statuses are recorded in its
/// timeline, once each, and none is left parked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_copies_of_a_resend_are_accounted_for() {
    let mut sb = sandbox_config();
    let slow = mynah_sandbox::config::Latency {
        min_ms: 1_000,
        max_ms: 1_000,
    };
    sb.latency.sent = slow;
    let mut gw = no_consent_gate();
    gw.pair.every_ms = 1;
    // Resent at once: the first copy's statuses come after the second copy was accepted.
    gw.dispatch.reconcile_ms = 0;
    let p = Pair::start(sb, gw).await;
    let to = "4915100000231";
    fault(
        &p,
        json!({ "match": { "to": to }, "action": { "drop_connection": "after" }, "times": 1 }),
    )
    .await;
    let id = p.send(template("hello_world", to)).await;
    let m = p
        .until(&id, "read, with the other copy's read", |m| {
            m["state"] == "read"
                && m["events"].as_array().is_some_and(|e| {
                    e.iter().any(|e| {
                        e["type"] == "other_attempt.status" && e["detail"]["status"] == "read"
                    })
                })
        })
        .await;
    assert!(has(&m, "outcome_unknown") && has(&m, "accepted"), "{m:#}");
    let (_, list) = p
        .control(Method::GET, &format!("/messages?wa_id={to}"), &json!({}))
        .await;
    let copies = list["messages"].as_array().unwrap();
    assert_eq!(copies.len(), 2, "{list}");
    let first = copies
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .find(|w| *w != m["wamid"])
        .unwrap();
    let others: Vec<&Value> = m["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "other_attempt.status")
        .collect();
    assert_eq!(others.len(), 3, "sent, delivered, read once each: {m:#}");
    assert!(
        others.iter().all(|e| e["detail"]["wamid"] == first),
        "{m:#}"
    );
    assert!(p.gw.store.take_orphans(first).await.unwrap().is_empty());
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_outcome_is_resent_at_least_once() {
    let p = Pair::start(sandbox_config(), no_consent_gate()).await;
    fault(&p, json!({ "match": { "to": "4915100000230" }, "action": { "drop_connection": "after" }, "times": 1 })).await;
    let id = p.send(template("hello_world", "4915100000230")).await;
    let m = p.until_state(&id, "read").await;
    assert!(has(&m, "outcome_unknown"), "{m}");
    // The statuses of the send whose answer was lost carry the gateway's id: they are matched
    // before the resend is due, so the platform got it once.
    assert!(has(&m, "correlated"), "{m}");
    let (_, list) = p
        .control(Method::GET, "/messages?wa_id=4915100000230", &json!({}))
        .await;
    let sent = list["messages"].as_array().unwrap();
    assert_eq!(sent.len(), 1, "{list}");
    assert_eq!(sent[0]["biz_opaque_callback_data"], id.as_str());
    assert_eq!(sent[0]["id"], m["wamid"]);
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_template_sync_answers_429_with_retry_after() {
    let mut sb = sandbox_config();
    sb.limits.other_per_second = Some(1);
    // Room for the gateway's sync at start and the harness's own.
    sb.limits.other_burst = Some(2);
    let p = Pair::start(sb, gateway_config()).await;
    // The sandbox takes one template listing a second: asking quickly soon meets its limit.
    let mut refused = None;
    for _ in 0..10 {
        let r = p
            .http
            .post(format!("{}/v1/templates/sync", p.gw_base))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        if r.status() != 200 {
            refused = Some(r);
            break;
        }
    }
    let r = refused.expect("the sandbox's limit refused a listing");
    assert_eq!(r.status(), 429);
    let after: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&after), "{after}");
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["error"]["code"], "upstream_rate_limited", "{b}");
    // The cache is unchanged: the templates listed before are still there.
    let (s, t) = p.get("/v1/templates").await;
    assert_eq!(s, 200);
    assert!(!t["templates"].as_array().unwrap().is_empty(), "{t}");
    p.shutdown().await;
}
