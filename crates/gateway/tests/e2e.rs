//! The gateway end to end against a real sandbox on real sockets: the app API, policy gates,
//! the consent registry, webhook intake and the status timeline.

mod common;
use common::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_flows_through_the_sandbox_and_its_statuses_come_back() {
    let p = Pair::start(sandbox_config(), gateway_config()).await;
    p.opt_in("4915112345678", "utility").await;
    let id = p.send(template("hello_world", "+49 151 1234 5678")).await;
    let m = p.until_state(&id, "read").await;
    assert!(m["wamid"].as_str().unwrap().starts_with("wamid."), "{m}");
    assert_eq!(m["to"], "4915112345678");
    assert_eq!(m["category"], "utility");
    let types = event_types(&m);
    for t in [
        "enqueued",
        "accepted",
        "status.sent",
        "status.delivered",
        "status.read",
    ] {
        assert!(types.contains(&t.to_string()), "{t} missing from {types:?}");
    }
    assert!(m["delivered_at"].is_i64() && m["read_at"].is_i64(), "{m}");
    // Listing with a filter.
    let (s, l) = p.get("/v1/messages?state=read").await;
    assert_eq!(s, 200);
    assert_eq!(l["messages"][0]["id"], id);
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gates_refuse_with_clear_errors() {
    let p = Pair::start(sandbox_config(), gateway_config()).await;
    // A marketing template without consent is refused at enqueue.
    let (s, b) = p
        .post("/v1/messages", &template("spring_sale", "4915112345670"))
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (422, Some("consent_missing")),
        "{b}"
    );
    assert!(
        b["error"]["details"]
            .as_str()
            .unwrap()
            .contains("marketing"),
        "{b}"
    );
    // A free-form message outside the window.
    let (s, b) = p.post("/v1/messages", &text("4915112345670", "hi")).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (422, Some("window_closed")),
        "{b}"
    );
    // An unknown template.
    let (s, b) = p
        .post("/v1/messages", &template("no_such", "4915112345670"))
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (422, Some("template_unknown")),
        "{b}"
    );
    // A bad body: wire's validation, with the platform's code in the details.
    let (s, b) = p
        .post(
            "/v1/messages",
            &json!({ "to": "4915112345670", "type": "text", "text": {} }),
        )
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (400, Some("invalid_body")),
        "{b}"
    );
    let (s, b) = p
        .post("/v1/messages", &json!({ "to": "4915112345670", "type": "text", "text": { "body": "x" }, "lane": "fast" }))
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (400, Some("invalid_envelope")),
        "{b}"
    );
    // No key.
    let r = p
        .http
        .post(format!("{}/v1/messages", p.gw_base))
        .json(&text("4915112345670", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A marketing template to the US is suppressed with its reason; Canada goes out.
    p.opt_in("12025550123", "marketing").await;
    p.opt_in("14165550123", "marketing").await;
    let (s, b) = p
        .post("/v1/messages", &template("spring_sale", "+1 202 555 0123"))
        .await;
    assert_eq!((s, b["state"].as_str()), (202, Some("suppressed")), "{b}");
    assert!(
        b["reason"].as_str().unwrap().contains("United States"),
        "{b}"
    );
    let canada = p.send(template("spring_sale", "+1 416 555 0123")).await;
    p.until_state(&canada, "read").await;
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_return_the_first_answer() {
    let p = Pair::start(sandbox_config(), gateway_config()).await;
    p.opt_in("4915112345671", "utility").await;
    let post = || {
        p.http
            .post(format!("{}/v1/messages", p.gw_base))
            .bearer_auth(KEY)
            .header("Idempotency-Key", "order-42")
            .json(&template("hello_world", "4915112345671"))
            .send()
    };
    let first: serde_json::Value = post().await.unwrap().json().await.unwrap();
    let second = post().await.unwrap();
    assert_eq!(second.status(), 202);
    let second: serde_json::Value = second.json().await.unwrap();
    assert_eq!(first["id"], second["id"]);
    let (_, list) = p.get("/v1/messages?to=4915112345671").await;
    assert_eq!(list["messages"].as_array().unwrap().len(), 1);
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_opens_the_window_and_stop_withdraws_marketing_consent() {
    let p = Pair::start(sandbox_config(), gateway_config()).await;
    let user = "4915112345672";
    p.opt_in(user, "marketing").await;
    p.inbound(user, "Hello!").await;
    // The window opens once the webhook is processed.
    let mut id = None;
    for _ in 0..500 {
        let (s, b) = p
            .post("/v1/messages", &text(user, "Hi, how can we help?"))
            .await;
        if s == 202 {
            id = b["id"].as_str().map(str::to_string);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let id = id.expect("the window opened");
    p.until_state(&id, "read").await;
    // STOP withdraws marketing consent; later marketing sends are refused.
    p.inbound(user, " stop ").await;
    let mut refused = None;
    for _ in 0..500 {
        let (s, b) = p.post("/v1/messages", &template("spring_sale", user)).await;
        if s == 422 {
            refused = Some(b);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let b = refused.expect("marketing refused after STOP");
    assert_eq!(b["error"]["code"], "consent_missing");
    assert!(
        b["error"]["details"]
            .as_str()
            .unwrap()
            .contains("inbound:stop"),
        "{b}"
    );
    let (_, c) = p.get(&format!("/v1/contacts/{user}/consents")).await;
    assert_eq!(c["history"].as_array().unwrap().len(), 2, "{c}");
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_intake_verifies_signatures_and_the_handshake() {
    let p = Pair::start(sandbox_config(), gateway_config()).await;
    let r = p
        .http
        .post(format!("{}/webhooks", p.gw_base))
        .header("X-Hub-Signature-256", "sha256=00")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = p
        .http
        .get(format!(
            "{}/webhooks?hub.mode=subscribe&hub.verify_token=mynah-verify&hub.challenge=1158201444",
            p.gw_base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "1158201444");
    let r = p
        .http
        .get(format!(
            "{}/webhooks?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1",
            p.gw_base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Consent import (CSV) and read-back.
    let r = p
        .http
        .post(format!("{}/v1/consents/import", p.gw_base))
        .bearer_auth(KEY)
        .header("content-type", "text/csv")
        .body("wa_id,category,status,source\n4915112345673,marketing,opted_in,shop\nbad,marketing,opted_in,shop\n")
        .send()
        .await
        .unwrap();
    let b: serde_json::Value = r.json().await.unwrap();
    assert_eq!(b["imported"], 1, "{b}");
    assert_eq!(b["errors"][0]["line"], 3, "{b}");
    let (s, c) = p.get("/v1/contacts/4915112345673/consents/marketing").await;
    assert_eq!((s, c["status"].as_str()), (200, Some("opted_in")), "{c}");
    let _ = p.control(Method::GET, "/health", &json!({})).await;
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_changes_reach_apps_by_sse_and_signed_webhooks() {
    use axum::routing::post;
    use std::sync::{Arc, Mutex};
    // An app endpoint on a real port.
    let got: Arc<Mutex<Vec<(axum::http::HeaderMap, axum::body::Bytes)>>> = Arc::default();
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let sink = sink.clone();
                async move {
                    sink.lock().unwrap().push((headers, body));
                    "ok"
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut cfg = gateway_config();
    cfg.gates.consent = false;
    cfg.app_webhooks = vec![mynah_gateway::config::AppWebhook {
        url: hook,
        secret: "whsec_dGVzdC1zZWNyZXQ=".into(),
        events: vec!["status.read".into()],
    }];
    let p = Pair::start(sandbox_config(), cfg).await;
    let id = p.send(template("hello_world", "4915112345690")).await;
    p.until_state(&id, "read").await;
    // Server-sent events from the beginning: the timeline in order.
    let mut resp = p
        .http
        .get(format!("{}/v1/events?after=0", p.gw_base))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut text = String::new();
    while !text.contains("event: status.read") {
        let chunk = resp.chunk().await.unwrap().expect("the stream stays open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let enqueued = text.find("event: enqueued").unwrap();
    let read = text.find("event: status.read").unwrap();
    assert!(enqueued < read, "{text}");
    // The app webhook got the read, signed.
    for _ in 0..500 {
        if !got.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let (headers, body) = got.lock().unwrap()[0].clone();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["type"], "status.read");
    assert_eq!(v["data"]["message_id"], id.as_str());
    mynah_gateway::events::verify("whsec_dGVzdC1zZWNyZXQ=", &headers, &body, None).unwrap();
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_secret_header_guards_the_intake() {
    let mut cfg = gateway_config();
    cfg.app_secret = String::new();
    cfg.webhook_secret_header = Some(("x-webhook-secret".into(), "s3cret".into()));
    let p = Pair::start(sandbox_config(), cfg).await;
    let post = |secret: Option<&str>| {
        let mut r = p
            .http
            .post(format!("{}/webhooks/360dialog", p.gw_base))
            .body(r#"{"object":"whatsapp_business_account","entry":[]}"#);
        if let Some(s) = secret {
            r = r.header("x-webhook-secret", s);
        }
        r.send()
    };
    assert_eq!(post(None).await.unwrap().status(), 401);
    assert_eq!(post(Some("wrong")).await.unwrap().status(), 401);
    assert_eq!(post(Some("s3cret")).await.unwrap().status(), 200);
    p.shutdown().await;
}

/// `GET /v1/events` is a long-lived answer: the server's idle timeout (200 ms here) closes idle
/// kept-alive connections, never a stream still being sent, however quiet it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_outlives_the_idle_timeout() {
    let mut cfg = gateway_config();
    cfg.gates.consent = false;
    cfg.server = mynah_serve::ServerConfig::new(200, 200, 64);
    let p = Pair::start(sandbox_config(), cfg).await;
    let mut resp = p
        .http
        .get(format!("{}/v1/events", p.gw_base))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // The app listens quietly for three idle timeouts (the scenario, not a wait for a timer).
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let id = p.send(template("hello_world", "4915112345691")).await;
    let mut text = String::new();
    while !text.contains(&id) {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), resp.chunk())
            .await
            .expect("an event in time")
            .unwrap()
            .expect("the stream stays open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains("event: enqueued"), "{text}");
    p.shutdown().await;
}
