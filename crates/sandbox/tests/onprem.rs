//! The On-Premises dialect (`POST /v1/messages`, the deprecated API of the seed page): its own
//! send response, template namespaces, its error codes (1008, 2001, 2061, 2062, 470, 410) in
//! responses and in status webhooks that come without the Graph envelope.

mod common;
use common::*;
use mynah_sandbox::config::{PacingConfig, PacingVerdict, Reactions, RulesConfig};
use reqwest::Method;
use serde_json::{Value, json};

const NAMESPACE: &str = "c8ae5f90_307a_ca4c_b8f6_d1e2a2573574";

fn template(name: &str, to: &str, namespace: Option<&str>) -> Value {
    let mut t = json!({ "name": name, "language": { "policy": "deterministic", "code": "en_US" } });
    if let Some(ns) = namespace {
        t["namespace"] = json!(ns);
    }
    json!({ "to": to, "type": "template", "template": t })
}

async fn onprem(h: &Harness, body: &Value) -> (u16, Value) {
    h.post_360("/v1/messages", body).await
}

/// The On-Premises status objects received for a message, in order.
fn onprem_statuses(rx: &Receiver, wamid: &str) -> Vec<Value> {
    rx.bodies()
        .iter()
        .flat_map(|b| b["statuses"].as_array().cloned().unwrap_or_default())
        .filter(|s| s["id"] == wamid)
        .collect()
}

#[tokio::test]
async fn text_and_templates_answer_and_report_in_the_onprem_shape() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    let (s, b) = onprem(
        &h,
        &json!({ "to": "4915112345678", "recipient_type": "individual", "type": "text",
                 "text": { "body": "Hello from the old API" } }),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let wamid = b["messages"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        b,
        json!({ "messages": [ { "id": wamid } ],
                "meta": { "api_status": "stable", "version": "2.53.0" } })
    );
    h.advance(5.0).await;
    h.drain().await;
    let statuses = onprem_statuses(&rx, &wamid);
    let kinds: Vec<&str> = statuses
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["sent", "delivered", "read"]);
    assert_eq!(statuses[0]["recipient_id"], "4915112345678");
    for r in rx.received() {
        let body = r.json();
        assert!(
            body.get("entry").is_none() && body.get("object").is_none(),
            "{body}"
        );
        assert!(signature_ok(&r, SECRET));
    }
    // A template with the account's namespace sends.
    let (s, b) = onprem(
        &h,
        &template("hello_world", "4915112345678", Some(NAMESPACE)),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    h.shutdown().await;
}

#[tokio::test]
async fn namespace_and_template_errors_use_onprem_codes() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    let (s, b) = onprem(&h, &template("hello_world", "4915112345678", None)).await;
    assert_eq!(
        (s, b["errors"][0]["code"].as_i64()),
        (400, Some(1008)),
        "{b}"
    );
    let (s, b) = onprem(
        &h,
        &template("hello_world", "4915112345678", Some("other_ns")),
    )
    .await;
    assert_eq!(
        (s, b["errors"][0]["code"].as_i64()),
        (404, Some(2001)),
        "{b}"
    );
    assert!(
        b["errors"][0]["details"]
            .as_str()
            .unwrap()
            .contains("other_ns")
    );
    let (s, b) = onprem(&h, &template("no_such", "4915112345678", Some(NAMESPACE))).await;
    assert_eq!(
        (s, b["errors"][0]["code"].as_i64()),
        (404, Some(2001)),
        "{b}"
    );
    // Paused: 2061; disabled: 2062.
    let (_, all) = h.control_get("/templates").await;
    let id = all["templates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["def"]["name"] == "spring_sale")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let red = json!({ "score": "RED" });
    h.control(Method::POST, &format!("/templates/{id}/quality"), &red)
        .await;
    let (s, b) = onprem(
        &h,
        &template("spring_sale", "4915112345678", Some(NAMESPACE)),
    )
    .await;
    assert_eq!(
        (s, b["errors"][0]["code"].as_i64()),
        (400, Some(2061)),
        "{b}"
    );
    h.control(
        Method::POST,
        &format!("/templates/{id}/status"),
        &json!({ "status": "DISABLED" }),
    )
    .await;
    let (s, b) = onprem(
        &h,
        &template("spring_sale", "4915112345678", Some(NAMESPACE)),
    )
    .await;
    assert_eq!(
        (s, b["errors"][0]["code"].as_i64()),
        (400, Some(2062)),
        "{b}"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn async_failures_carry_onprem_codes() {
    let rx = Receiver::start().await;
    let mut cfg = config(&rx.url);
    cfg.rules = RulesConfig {
        customer_service_window: true,
        ttl: true,
        ..RulesConfig::off()
    };
    let h = Harness::start(cfg).await;
    // Outside the 24-hour window: 470 (131047 on the Cloud API).
    let (_, b) = onprem(
        &h,
        &json!({ "to": "4915112345678", "type": "text", "text": { "body": "late" } }),
    )
    .await;
    let late = b["messages"][0]["id"].as_str().unwrap().to_string();
    // A user offline past the 30-day TTL: the On-Premises API reports 410 (the Cloud API drops
    // it).
    let (s, b) = h
        .control(
            Method::PUT,
            "/users/4915100000040",
            &json!({ "offline_for_seconds": 40 * 86_400 }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (_, b) = onprem(
        &h,
        &template("hello_world", "4915100000040", Some(NAMESPACE)),
    )
    .await;
    let expired = b["messages"][0]["id"].as_str().unwrap().to_string();
    h.advance(31.0 * 86_400.0).await;
    h.drain().await;
    let late_status = onprem_statuses(&rx, &late);
    assert_eq!(late_status.len(), 1, "{late_status:?}");
    assert_eq!(late_status[0]["status"], "failed");
    assert_eq!(late_status[0]["errors"][0]["code"], 470);
    let exp = onprem_statuses(&rx, &expired);
    let last = exp.last().unwrap();
    assert_eq!(
        (last["status"].as_str(), last["errors"][0]["code"].as_i64()),
        (Some("failed"), Some(410)),
        "{exp:?}"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn pacing_drops_held_onprem_messages_with_2061() {
    let rx = Receiver::start().await;
    let mut cfg = config(&rx.url);
    cfg.rules.pacing = Some(PacingConfig {
        threshold: 0,
        verdict: PacingVerdict::Drop,
        ..PacingConfig::default()
    });
    cfg.users.default.reactions = Some(Reactions::default());
    let h = Harness::start(cfg).await;
    let (s, b) = h
        .post_360(
            "/v1/configs/templates",
            &json!({ "name": "old_api_offer", "language": "en_US", "category": "MARKETING",
                     "components": [ { "type": "body", "text": "A special offer for our long-time customers this week." } ] }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    h.advance(61.0).await;
    let (s, b) = onprem(
        &h,
        &template("old_api_offer", "4915112345678", Some(NAMESPACE)),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let wamid = b["messages"][0]["id"].as_str().unwrap().to_string();
    h.advance(1.0).await;
    h.drain().await;
    let st = onprem_statuses(&rx, &wamid);
    assert_eq!(st.len(), 1, "{st:?}");
    assert_eq!(
        (
            st[0]["status"].as_str(),
            st[0]["errors"][0]["code"].as_i64()
        ),
        (Some("failed"), Some(2061))
    );
    h.shutdown().await;
}
