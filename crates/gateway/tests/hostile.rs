//! The gateway under hostile input, end to end on real sockets: malformed, oversized, deeply
//! nested, non-UTF-8 and extreme-number bodies to every route; the auth matrix; forged, tampered
//! and replayed webhooks; dates that would pin consent; a message that would outlive its TTL; an
//! upstream that redirects. Every refusal is an error in the app error shape
//! (`{"error": {"code", "message", "details"}}`), and the gateway keeps serving.

mod common;

use common::*;
use mynah_gateway::clock::{Clock, HOUR};
use reqwest::Method;
use serde_json::{Value, json};
use std::sync::Arc;

/// A raw request to the gateway: (status, content type, body as JSON or text).
async fn raw(
    p: &Pair,
    method: Method,
    path: &str,
    auth: Option<&str>,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (u16, String, Value) {
    let mut r = p.http.request(method, format!("{}{path}", p.gw_base));
    if let Some(a) = auth {
        r = r.header("authorization", a);
    }
    if let Some(t) = content_type {
        r = r.header("content-type", t);
    }
    let resp = r.body(body).send().await.unwrap();
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = resp.text().await.unwrap_or_default();
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, ctype, v)
}

/// An answer is an app error: JSON, `error.code` and `error.message` strings.
fn assert_app_error(what: &str, (status, ctype, v): &(u16, String, Value), want: u16) {
    assert_eq!(*status, want, "{what}: {v}");
    assert!(ctype.starts_with("application/json"), "{what}: {ctype} {v}");
    assert!(
        v["error"]["code"].is_string() && v["error"]["message"].is_string(),
        "{what}: {v}"
    );
}

fn bearer() -> String {
    format!("Bearer {KEY}")
}

/// Every route of the app API with a body it takes.
fn app_routes() -> Vec<(Method, &'static str)> {
    vec![
        (Method::POST, "/v1/messages"),
        (Method::GET, "/v1/messages"),
        (Method::GET, "/v1/messages/msg_x"),
        (Method::POST, "/v1/messages/msg_x/cancel"),
        (Method::GET, "/v1/contacts/4915112345678/messages"),
        (Method::GET, "/v1/contacts/4915112345678/consents"),
        (Method::PUT, "/v1/contacts/4915112345678/consents/marketing"),
        (Method::GET, "/v1/contacts/4915112345678/consents/marketing"),
        (Method::POST, "/v1/consents/import"),
        (Method::GET, "/v1/templates"),
        (Method::POST, "/v1/templates/sync"),
        (Method::GET, "/v1/events"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_get_app_errors_and_the_gateway_keeps_serving() {
    let mut cfg = gateway_config();
    cfg.max_body_bytes = 64 * 1024;
    let p = Pair::start(sandbox_config(), cfg).await;
    let nested = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000)).into_bytes();
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("not JSON", b"{\"to\": ".to_vec()),
        ("not an object", b"[1,2,3]".to_vec()),
        ("invalid UTF-8", b"{\"to\":\"\xff\xfe\"}".to_vec()),
        ("deeply nested", nested),
        ("oversized", vec![b' '; 100 * 1024]),
        (
            "a number too big",
            br#"{"to":1e400,"type":"text"}"#.to_vec(),
        ),
    ];
    for (route, ctype) in [
        ("/v1/messages", "application/json"),
        (
            "/v1/contacts/4915112345678/consents/marketing",
            "application/json",
        ),
        ("/v1/consents/import", "application/json"),
        ("/v1/consents/import", "text/csv"),
    ] {
        let method = if route.contains("/consents/marketing") {
            Method::PUT
        } else {
            Method::POST
        };
        for (what, body) in &bodies {
            let a = raw(
                &p,
                method.clone(),
                route,
                Some(&bearer()),
                Some(ctype),
                body.clone(),
            )
            .await;
            let want = if *what == "oversized" { 413 } else { 400 };
            // A CSV import of garbage is a CSV with no valid rows, or an error: never a crash.
            if ctype == "text/csv" && a.0 == 200 {
                assert!(a.2["imported"] == 0, "{what}: {}", a.2);
                continue;
            }
            assert_app_error(&format!("{method} {route} {what}"), &a, want);
        }
    }
    // Extreme numbers in every numeric envelope field: refused, naming the field.
    let base = template("hello_world", "4915112345640");
    for (field, value) in [
        ("ttl_seconds", json!(0)),
        ("ttl_seconds", json!(-1)),
        ("ttl_seconds", json!(9_223_372_036_854_775_807i64)),
        ("ttl_seconds", json!(1e308)),
        ("ttl_seconds", json!("60")),
        ("not_before", json!(-1)),
        ("not_before", json!(1e308)),
        ("not_before", json!(9_223_372_036_854_775_807i64)),
    ] {
        let mut body = base.clone();
        body[field] = value.clone();
        let a = raw(
            &p,
            Method::POST,
            "/v1/messages",
            Some(&bearer()),
            Some("application/json"),
            serde_json::to_vec(&body).unwrap(),
        )
        .await;
        assert_app_error(&format!("{field} = {value}"), &a, 400);
        assert!(
            a.2["error"]["details"].as_str().unwrap().contains(field),
            "{field}: {}",
            a.2
        );
    }
    for at in [
        json!(-1),
        json!(i64::MAX),
        json!(1e308),
        json!(1_700_000_000),
    ] {
        let a = raw(
            &p,
            Method::PUT,
            "/v1/contacts/4915112345640/consents/marketing",
            Some(&bearer()),
            Some("application/json"),
            serde_json::to_vec(&json!({ "status": "opted_in", "at": at })).unwrap(),
        )
        .await;
        assert_app_error(&format!("consent at {at}"), &a, 400);
    }
    // Paths and queries the framework could not read, methods a route does not take, routes
    // that do not exist: the same shape.
    for (method, path, want) in [
        (Method::GET, "/v1/messages?limit=lots", 400),
        (
            Method::GET,
            "/v1/messages?limit=99999999999999999999999",
            400,
        ),
        (Method::GET, "/v1/messages?state=unheard", 400),
        (Method::GET, "/v1/events?after=soon", 400),
        (
            Method::GET,
            "/v1/contacts/4915112345640/messages?before=x.y.z",
            400,
        ),
        (Method::GET, "/v1/contacts/%FF%FE/messages", 400),
        (Method::DELETE, "/v1/messages", 405),
        (Method::POST, "/v1/templates", 405),
        (Method::GET, "/v2/messages", 404),
        (
            Method::GET,
            "/webhooks?hub.mode=subscribe&hub.verify_token=wrong",
            403,
        ),
    ] {
        let a = raw(&p, method.clone(), path, Some(&bearer()), None, Vec::new()).await;
        assert_app_error(&format!("{method} {path}"), &a, want);
    }
    // Still serving.
    p.opt_in("4915112345640", "utility").await;
    let id = p.send(template("hello_world", "4915112345640")).await;
    p.until(&id, "delivered", |m| m["delivered_at"].is_number())
        .await;
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_app_route_wants_the_gateway_key() {
    let p = Pair::start(sandbox_config(), gateway_config()).await;
    for (method, path) in app_routes() {
        for (who, auth) in [
            ("no credential", None),
            ("a wrong key", Some(format!("Bearer {KEY}x"))),
            ("the sandbox's key", Some(format!("Bearer {DEV_API_KEY}"))),
            ("another scheme", Some(format!("Basic {KEY}"))),
        ] {
            let a = raw(&p, method.clone(), path, auth.as_deref(), None, Vec::new()).await;
            assert_app_error(&format!("{method} {path} with {who}"), &a, 401);
        }
        // The scheme is case-insensitive (only the status is read: the event feed never ends).
        let status = p
            .http
            .request(method.clone(), format!("{}{path}", p.gw_base))
            .header("authorization", format!("bearer {KEY}"))
            .send()
            .await
            .unwrap()
            .status();
        assert_ne!(status, 401, "{method} {path} with a lowercase scheme");
    }
    // The key is checked before the query is read.
    let a = raw(
        &p,
        Method::GET,
        "/v1/events?after=soon",
        None,
        None,
        Vec::new(),
    )
    .await;
    assert_app_error("events without a key", &a, 401);
    p.shutdown().await;
}

/// A signed platform webhook body.
fn envelope(value: Value) -> String {
    json!({ "object": "whatsapp_business_account", "entry": [{ "id": "102290129340398",
        "changes": [value] }] })
    .to_string()
}

async fn post_webhook(p: &Pair, body: &str, signature: &str) -> u16 {
    p.http
        .post(format!("{}/webhooks", p.gw_base))
        .header("content-type", "application/json")
        .header("X-Hub-Signature-256", signature)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn sign(body: &str) -> String {
    mynah_sandbox::webhooks::sign(DEV_APP_SECRET, body.as_bytes())
}

/// A cached template's status.
async fn template_status(p: &Pair, name: &str) -> Option<String> {
    let (_, t) = p.get("/v1/templates").await;
    t["templates"]
        .as_array()?
        .iter()
        .find(|t| t["name"] == name)
        .and_then(|t| t["status"].as_str())
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_tampered_and_replayed_webhooks_change_nothing() {
    let mut cfg = gateway_config();
    cfg.gates.consent = false;
    let p = Pair::start(sandbox_config(), cfg).await;
    let user = "4915112345641";
    // A forged inbound message (no valid signature) does not open the window.
    let inbound = envelope(json!({ "field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": { "display_phone_number": "15550783881", "phone_number_id": DEV_PHONE_NUMBER_ID },
        "contacts": [{ "profile": { "name": "Mallory" }, "wa_id": user }],
        "messages": [{ "from": user, "id": "wamid.forged1", "timestamp": "1800000000",
                       "type": "text", "text": { "body": "hi" } }] } }));
    assert_eq!(post_webhook(&p, &inbound, "sha256=00").await, 401);
    assert_eq!(post_webhook(&p, &inbound, "").await, 401);
    // Signed, then one byte changed.
    let tampered = inbound.replace("hi", "ho");
    assert_eq!(post_webhook(&p, &tampered, &sign(&inbound)).await, 401);
    let (s, b) = p.post("/v1/messages", &text(user, "hello")).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (422, Some("window_closed")),
        "{b}"
    );
    // A forged template status does not approve a template.
    let pause = envelope(
        json!({ "field": "message_template_status_update", "value": {
        "event": "PAUSED", "message_template_id": 1, "message_template_name": "spring_sale",
        "message_template_language": "en_US", "reason": "forged" } }),
    );
    let approve = pause.replace("PAUSED", "APPROVED");
    assert_eq!(
        post_webhook(&p, &pause, &sign(&pause)).await,
        200,
        "a signed pause"
    );
    for _ in 0..500 {
        if template_status(&p, "spring_sale").await.as_deref() == Some("PAUSED") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        template_status(&p, "spring_sale").await.as_deref(),
        Some("PAUSED")
    );
    assert_eq!(post_webhook(&p, &approve, "sha256=1234").await, 401);
    assert_eq!(
        template_status(&p, "spring_sale").await.as_deref(),
        Some("PAUSED"),
        "still paused"
    );
    // A replayed status is applied once.
    p.opt_in(user, "utility").await;
    let id = p.send(template("hello_world", user)).await;
    let m = p.until(&id, "read", |m| m["state"] == "read").await;
    let wamid = m["wamid"].as_str().unwrap();
    let before = event_types(&m).len();
    let status = envelope(json!({ "field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": { "display_phone_number": "15550783881", "phone_number_id": DEV_PHONE_NUMBER_ID },
        "statuses": [{ "id": wamid, "status": "delivered", "timestamp": "1800000000", "recipient_id": user }] } }));
    for _ in 0..3 {
        assert_eq!(post_webhook(&p, &status, &sign(&status)).await, 200);
    }
    let again = p
        .until(&id, "the replays processed", |m| {
            event_types(m)
                .iter()
                .filter(|t| *t == "status.delivered")
                .count()
                >= 1
        })
        .await;
    let delivered = event_types(&again)
        .iter()
        .filter(|t| *t == "status.delivered")
        .count();
    assert!(delivered <= 2, "{:?}", event_types(&again));
    assert!(
        event_types(&again).len() <= before + 1,
        "{:?}",
        event_types(&again)
    );
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_future_opt_in_cannot_outlast_a_stop() {
    let p = Pair::start(sandbox_config(), gateway_config()).await;
    let user = "4915112345642";
    let now = p.gw.now();
    let (s, b) = p
        .put(
            &format!("/v1/contacts/{user}/consents/marketing"),
            &json!({ "status": "opted_in", "source": "form", "at": now + 365 * 24 * HOUR }),
        )
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (400, Some("invalid_parameter")),
        "{b}"
    );
    assert!(
        b["error"]["details"].as_str().unwrap().contains("future"),
        "{b}"
    );
    // An opt-in a few minutes ahead (clock skew) is taken, and a STOP still wins over it.
    let (s, _) = p
        .put(
            &format!("/v1/contacts/{user}/consents/marketing"),
            &json!({ "status": "opted_in", "source": "form", "at": now + 60_000 }),
        )
        .await;
    assert_eq!(s, 200);
    p.inbound(user, "STOP").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, c) = p
            .get(&format!("/v1/contacts/{user}/consents/marketing"))
            .await;
        if c["status"] == "opted_out" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "STOP never took: {c}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let (s, b) = p.post("/v1/messages", &template("spring_sale", user)).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (422, Some("consent_missing")),
        "{b}"
    );
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_is_never_sent_after_its_ttl() {
    let clock = Arc::new(Clock::manual(1_800_000_000_000));
    let mut cfg = gateway_config();
    cfg.gates.consent = false;
    // One message per minute to the same user.
    cfg.pair.every_ms = 60_000;
    cfg.pair.burst = 1;
    let p = Pair::start_with_clock(sandbox_config(), cfg, clock.clone()).await;
    let user = "4915112345643";
    let first = p.send(template("hello_world", user)).await;
    p.until(&first, "accepted", |m| m["wamid"].is_string())
        .await;
    // The second would wait a minute behind the pair limit: its 30 s TTL ends first.
    let mut short = template("hello_world", user);
    short["ttl_seconds"] = json!(30);
    let second = p.send(short).await;
    let m = p
        .until(&second, "expired", |m| m["state"] == "expired")
        .await;
    assert!(m["wamid"].is_null(), "never sent: {m}");
    let expired = m["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "expired")
        .unwrap();
    assert_eq!(expired["detail"]["sent"], false);
    // not_before past the TTL is refused at once.
    let mut late = template("hello_world", user);
    late["ttl_seconds"] = json!(60);
    late["not_before"] = json!(clock.now() + 2 * 60_000);
    let (s, b) = p.post("/v1/messages", &late).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (400, Some("invalid_envelope")),
        "{b}"
    );
    assert!(
        b["error"]["details"]
            .as_str()
            .unwrap()
            .contains("not_before"),
        "{b}"
    );
    // The platform got the first message only.
    let (_, at_sandbox) = p
        .control(Method::GET, &format!("/messages?wa_id={user}"), &json!({}))
        .await;
    assert_eq!(
        at_sandbox["messages"].as_array().map(Vec::len),
        Some(1),
        "{at_sandbox}"
    );
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_redirect_fails_the_message_and_goes_nowhere() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // An upstream that answers every request with a redirect to a host that counts visitors.
    let elsewhere = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = format!("http://{}/messages", elsewhere.local_addr().unwrap());
    let visits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let v = visits.clone();
    tokio::spawn(async move {
        while let Ok((_s, _)) = elsewhere.accept().await {
            v.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", upstream.local_addr().unwrap());
    let answer = format!(
        "HTTP/1.1 307 Temporary Redirect\r\nlocation: {target}\r\ncontent-length: 0\r\n\r\n"
    );
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = upstream.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65_536];
                while let Ok(n) = sock.read(&mut buf).await {
                    if n == 0 || sock.write_all(answer.as_bytes()).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let mut cfg = gateway_config();
    cfg.gates.consent = false;
    cfg.gates.template = false;
    let mut up = mynah_gateway::upstream::UpstreamConfig::d360(&base, DEV_API_KEY);
    up.system_proxy = false;
    cfg.upstream = up;
    let store = mynah_gateway::store::sqlite::SqliteStore::open(
        None,
        mynah_gateway::store::sqlite::SqliteOptions::default(),
    )
    .await
    .unwrap();
    let gw = mynah_gateway::Gateway::new(cfg, store.clone(), Arc::new(Clock::System)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw_base = format!("http://{}", listener.local_addr().unwrap());
    let stop = tokio_util::sync::CancellationToken::new();
    let (g, s) = (gw.clone(), stop.clone());
    let task = tokio::spawn(async move { mynah_gateway::run(listener, g, s).await });
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let sent: Value = http
        .post(format!("{gw_base}/v1/messages"))
        .bearer_auth(KEY)
        .json(&template("hello_world", "4915112345644"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = sent["id"].as_str().unwrap();
    let mut failed = Value::Null;
    for _ in 0..2_000 {
        let m: Value = http
            .get(format!("{gw_base}/v1/messages/{id}"))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if m["state"] == "failed" {
            failed = m;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let event = failed["events"]
        .as_array()
        .unwrap_or_else(|| panic!("never failed: {failed}"))
        .iter()
        .find(|e| e["type"] == "failed")
        .cloned()
        .unwrap();
    assert_eq!(event["detail"]["error"]["kind"], "redirect", "{event}");
    assert!(
        event["detail"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not followed"),
        "{event}"
    );
    assert_eq!(visits.load(std::sync::atomic::Ordering::SeqCst), 0);
    stop.cancel();
    let _ = task.await;
    store.close().await;
}
