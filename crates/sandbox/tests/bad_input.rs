//! Bad requests in both dialects: each is refused with the right HTTP status and code inside the
//! Graph error envelope (spec §2.11, §3.2, §3.3), credentials reach only their own numbers, and
//! the server keeps serving afterwards.

mod common;
use common::*;

use axum::http::HeaderMap;
use reqwest::Method;
use serde_json::{Value, json};

const TO: &str = "+49 151 23456789";
const B_PNID: &str = "109876543210987";
const B_DISPLAY: &str = "15550001234";
const B_KEY: &str = "mynah-key-b";
const B_TOKEN: &str = "mynah-token-b";

struct Answer {
    status: u16,
    headers: HeaderMap,
    json: Value,
}

async fn answer(r: reqwest::Response) -> Answer {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let bytes = r.bytes().await.unwrap();
    let json = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    Answer {
        status,
        headers,
        json,
    }
}

/// A raw request: method, path, headers, body bytes.
async fn raw(
    h: &Harness,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Answer {
    let mut rb = h.http.request(method, format!("{}{path}", h.base));
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    if let Some(b) = body {
        rb = rb.body(b);
    }
    answer(rb.send().await.unwrap()).await
}

const JSON: (&str, &str) = ("content-type", "application/json");
const D360: (&str, &str) = ("D360-API-KEY", KEY);

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn cloud_messages(pnid: &str) -> String {
    format!("/v23.0/{pnid}/messages")
}

/// Asserts the Graph error envelope (§3.2) with `code` and HTTP `status`; returns `details`.
fn refused(a: &Answer, status: u16, code: u64, what: &str) -> String {
    assert_eq!(a.status, status, "{what}: HTTP status: {}", a.json);
    assert_eq!(
        a.headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/json"),
        "{what}: errors are JSON"
    );
    let e = &a.json["error"];
    assert!(e.is_object(), "{what}: {{\"error\": ...}}: {}", a.json);
    assert_eq!(
        a.json.as_object().unwrap().len(),
        1,
        "{what}: only `error` at the top: {}",
        a.json
    );
    assert_eq!(e["code"].as_u64(), Some(code), "{what}: code: {}", a.json);
    let message = e["message"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: message: {}", a.json));
    assert!(
        message.starts_with(&format!("(#{code}) ")),
        "{what}: message {message:?}"
    );
    assert_eq!(e["type"], "OAuthException", "{what}");
    assert_eq!(e["error_data"]["messaging_product"], "whatsapp", "{what}");
    let details = e["error_data"]["details"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: details: {}", a.json));
    assert!(!details.is_empty(), "{what}: details");
    assert!(
        e["fbtrace_id"].as_str().is_some_and(|t| !t.is_empty()),
        "{what}: fbtrace_id"
    );
    assert!(
        e.get("error_subcode").is_none(),
        "{what}: no error_subcode from v16 on"
    );
    details.to_string()
}

fn body(v: &Value) -> Option<Vec<u8>> {
    Some(serde_json::to_vec(v).unwrap())
}

#[tokio::test]
async fn malformed_bodies_are_refused_and_the_server_keeps_serving() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    let auth_cloud = bearer(TOKEN);
    let dialects: [(&str, String, (&str, &str)); 2] = [
        ("360dialog", "/messages".to_string(), D360),
        (
            "cloud",
            cloud_messages(PNID),
            ("authorization", auth_cloud.as_str()),
        ),
    ];
    for (name, path, cred) in &dialects {
        // Malformed JSON.
        for bad in [
            &b"{\"messaging_product\": \"whatsapp\", \"to\": "[..],
            b"not json at all",
            b"",
            b"[1,2]",
            b"null",
        ] {
            let a = raw(&h, Method::POST, path, &[*cred, JSON], Some(bad.to_vec())).await;
            refused(
                &a,
                400,
                100,
                &format!("{name}: body {:?}", String::from_utf8_lossy(bad)),
            );
        }
        // Wrong or missing Content-Type.
        let a = raw(
            &h,
            Method::POST,
            path,
            &[*cred, ("content-type", "text/plain")],
            body(&text(TO, "hi")),
        )
        .await;
        refused(&a, 415, 100, &format!("{name}: text/plain"));
        let a = raw(
            &h,
            Method::POST,
            path,
            &[*cred, ("content-type", "application/x-www-form-urlencoded")],
            Some(b"to=1".to_vec()),
        )
        .await;
        refused(&a, 415, 100, &format!("{name}: form"));
        let a = raw(&h, Method::POST, path, &[*cred], body(&text(TO, "hi"))).await;
        refused(&a, 415, 100, &format!("{name}: no content type"));
        // `application/json; charset=utf-8` is JSON.
        let a = raw(
            &h,
            Method::POST,
            path,
            &[*cred, ("content-type", "application/json; charset=utf-8")],
            body(&text(TO, "hi")),
        )
        .await;
        assert_eq!(a.status, 200, "{name}: JSON with charset: {}", a.json);
        // Over 1 MiB.
        let big = json!({ "messaging_product": "whatsapp", "to": TO, "type": "text", "text": { "body": "a".repeat(1024 * 1024 + 10) } });
        let a = raw(&h, Method::POST, path, &[*cred, JSON], body(&big)).await;
        assert_eq!(a.status, 413, "{name}: over 1 MiB: {}", a.json);
        refused(&a, 413, 100, &format!("{name}: over 1 MiB"));
    }

    // After all of that, a valid send still works.
    let (s, b) = h.send_360(text(TO, "still here")).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = h.send_cloud(text(TO, "still here")).await;
    assert_eq!(s, 200, "{b}");
    let wamid = b["messages"][0]["id"].as_str().unwrap();
    h.advance(10.0).await;
    h.wait(&format!("wamid={wamid}&status=read"), 1).await;
    h.shutdown().await;
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    let auth_cloud = bearer(TOKEN);
    let cloud = ("authorization", auth_cloud.as_str());

    // 360dialog: a typo names the closest route.
    for path in ["/message", "/mesages", "/messages/send"] {
        let a = raw(&h, Method::POST, path, &[D360, JSON], body(&text(TO, "hi"))).await;
        let details = refused(&a, 404, 2500, path);
        assert!(details.contains("POST /messages"), "{path}: {details}");
    }
    // Cloud: likewise.
    for path in [
        format!("/v23.0/{PNID}/mesages"),
        format!("/v23.0/{PNID}/message"),
        format!("/v23.0/{PNID}/messages/x"),
    ] {
        let a = raw(
            &h,
            Method::POST,
            &path,
            &[cloud, JSON],
            body(&text(TO, "hi")),
        )
        .await;
        let details = refused(&a, 400, 2500, &path);
        assert!(
            details.contains("POST /{version}/{phone_number_id}/messages"),
            "{path}: {details}"
        );
    }

    // A wrong method is 405 with Allow.
    let a = raw(&h, Method::GET, "/messages", &[D360], None).await;
    refused(&a, 405, 100, "GET /messages");
    let allow = a
        .headers
        .get("allow")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        allow.split(',').any(|m| m.trim() == "POST"),
        "Allow: {allow:?}"
    );
    let a = raw(&h, Method::DELETE, "/v1/configs/webhook", &[D360], None).await;
    refused(&a, 405, 100, "DELETE /v1/configs/webhook");
    let allow = a
        .headers
        .get("allow")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        allow.contains("GET") && allow.contains("POST"),
        "Allow: {allow:?}"
    );
    let a = raw(
        &h,
        Method::PUT,
        &cloud_messages(PNID),
        &[cloud, JSON],
        body(&text(TO, "hi")),
    )
    .await;
    refused(&a, 405, 100, "PUT cloud messages");
    assert!(a.headers.get("allow").is_some());

    let (s, b) = h.send_360(text(TO, "fine")).await;
    assert_eq!(s, 200, "{b}");
    h.shutdown().await;
}

#[tokio::test]
async fn credentials_are_checked() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    let msg = body(&text(TO, "hi"));

    // 360dialog: missing, wrong, empty key → 401 code 0.
    for headers in [
        vec![JSON],
        vec![JSON, ("D360-API-KEY", "wrong")],
        vec![JSON, ("D360-API-KEY", "")],
    ] {
        let a = raw(&h, Method::POST, "/messages", &headers, msg.clone()).await;
        refused(&a, 401, 0, &format!("360dialog {headers:?}"));
    }
    // The bearer token does not open the 360dialog path's messages.
    let auth = bearer(TOKEN);
    let a = raw(
        &h,
        Method::POST,
        "/messages",
        &[JSON, ("authorization", auth.as_str())],
        msg.clone(),
    )
    .await;
    refused(&a, 401, 0, "360dialog with a bearer token");
    // Media and webhook configuration are guarded too.
    let a = raw(
        &h,
        Method::GET,
        "/v1/configs/webhook",
        &[("D360-API-KEY", "wrong")],
        None,
    )
    .await;
    refused(&a, 401, 0, "webhook config with a wrong key");

    // Cloud: missing, wrong, malformed bearer → 401 code 190.
    let wrong = bearer("wrong");
    for headers in [
        vec![JSON],
        vec![JSON, ("authorization", wrong.as_str())],
        vec![JSON, ("authorization", "Bearer")],
        vec![JSON, ("authorization", "Basic bXluYWg6ZGV2")],
        vec![JSON, ("authorization", TOKEN)],
        vec![JSON, D360],
    ] {
        let a = raw(
            &h,
            Method::POST,
            &cloud_messages(PNID),
            &headers,
            msg.clone(),
        )
        .await;
        refused(&a, 401, 190, &format!("cloud {headers:?}"));
    }
    let a = raw(&h, Method::GET, &format!("/v23.0/{PNID}"), &[], None).await;
    refused(&a, 401, 190, "cloud GET phone number without a token");

    let (s, b) = h.send_cloud(text(TO, "fine")).await;
    assert_eq!(s, 200, "{b}");
    h.shutdown().await;
}

/// Two numbers with their own keys and tokens: each credential reaches only its own number.
#[tokio::test]
async fn credentials_reach_only_their_own_number() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    let (s, n) = h
        .control(
            Method::POST,
            "/numbers",
            &json!({ "phone_number_id": B_PNID, "display_phone_number": B_DISPLAY, "api_key": B_KEY,
                     "token": B_TOKEN, "webhook_url": rx.url }),
        )
        .await;
    assert_eq!(s, 201, "{n}");

    let msg = body(&text(TO, "hi"));
    let token_a = bearer(TOKEN);
    let token_b = bearer(B_TOKEN);
    // Token A on number B's path, token B on number A's path: code 100.
    for (token, pnid) in [(&token_a, B_PNID), (&token_b, PNID)] {
        let a = raw(
            &h,
            Method::POST,
            &cloud_messages(pnid),
            &[JSON, ("authorization", token.as_str())],
            msg.clone(),
        )
        .await;
        let details = refused(&a, 400, 100, &format!("token on {pnid}"));
        assert!(details.contains(pnid), "{details}");
        let a = raw(
            &h,
            Method::GET,
            &format!("/v23.0/{pnid}"),
            &[("authorization", token.as_str())],
            None,
        )
        .await;
        refused(&a, 400, 100, &format!("GET {pnid} with the other token"));
    }
    // An unknown phone number id: code 100 too.
    let a = raw(
        &h,
        Method::POST,
        &cloud_messages("999999999999999"),
        &[JSON, ("authorization", token_a.as_str())],
        msg.clone(),
    )
    .await;
    refused(&a, 400, 100, "unknown phone number id");

    // Each token works on its own number; each key sends from its own number.
    let mut sent = Vec::new();
    for (path, headers, pnid) in [
        (
            cloud_messages(PNID),
            vec![JSON, ("authorization", token_a.as_str())],
            PNID,
        ),
        (
            cloud_messages(B_PNID),
            vec![JSON, ("authorization", token_b.as_str())],
            B_PNID,
        ),
        ("/messages".to_string(), vec![JSON, D360], PNID),
        (
            "/messages".to_string(),
            vec![JSON, ("D360-API-KEY", B_KEY)],
            B_PNID,
        ),
    ] {
        let a = raw(&h, Method::POST, &path, &headers, msg.clone()).await;
        assert_eq!(a.status, 200, "{path} {headers:?}: {}", a.json);
        sent.push((
            a.json["messages"][0]["id"].as_str().unwrap().to_string(),
            pnid,
        ));
    }
    h.advance(10.0).await;
    for (wamid, pnid) in &sent {
        let got = h.wait(&format!("wamid={wamid}&status=sent"), 1).await;
        assert_eq!(got[0]["phone_number_id"], *pnid);
        let b: Value = serde_json::from_str(got[0]["body"].as_str().unwrap()).unwrap();
        let meta = &b["entry"][0]["changes"][0]["value"]["metadata"];
        let display = if *pnid == B_PNID {
            B_DISPLAY
        } else {
            "15550783881"
        };
        assert_eq!(
            meta,
            &json!({ "display_phone_number": display, "phone_number_id": pnid }),
            "{wamid}"
        );
    }
    for r in rx.received() {
        assert!(signature_ok(&r, SECRET));
    }

    // Key B's webhook configuration is B's own; setting it leaves A's alone.
    let a = raw(
        &h,
        Method::GET,
        "/v1/configs/webhook",
        &[("D360-API-KEY", B_KEY)],
        None,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.json);
    assert_eq!(a.json["url"], rx.url.as_str());
    let a = raw(
        &h,
        Method::POST,
        "/v1/configs/webhook",
        &[JSON, ("D360-API-KEY", B_KEY)],
        body(&json!({ "url": "http://127.0.0.1:9/b" })),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.json);
    let a = raw(&h, Method::GET, "/v1/configs/webhook", &[D360], None).await;
    assert_eq!(a.json["url"], rx.url.as_str(), "A's webhook is unchanged");

    // Media uploaded through number A is not visible through key B.
    let boundary = "xyzBOUNDARYxyz";
    let mut mp = Vec::new();
    mp.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"messaging_product\"\r\n\r\nwhatsapp\r\n").as_bytes());
    mp.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n").as_bytes());
    mp.extend_from_slice(b"\x89PNG fake");
    mp.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let ct = format!("multipart/form-data; boundary={boundary}");
    let a = raw(
        &h,
        Method::POST,
        "/media",
        &[D360, ("content-type", ct.as_str())],
        Some(mp),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.json);
    let media = a.json["id"].as_str().unwrap().to_string();
    let a = raw(&h, Method::GET, &format!("/{media}"), &[D360], None).await;
    assert_eq!(a.status, 200, "{}", a.json);
    let a = raw(
        &h,
        Method::GET,
        &format!("/{media}"),
        &[("D360-API-KEY", B_KEY)],
        None,
    )
    .await;
    refused(&a, 400, 100, "media of another number");
    let img = json!({ "messaging_product": "whatsapp", "to": TO, "type": "image", "image": { "id": media } });
    let a = raw(
        &h,
        Method::POST,
        "/messages",
        &[JSON, ("D360-API-KEY", B_KEY)],
        body(&img),
    )
    .await;
    refused(&a, 400, 131009, "sending another number's media");
    h.shutdown().await;
}

#[tokio::test]
async fn invalid_messages_get_their_codes() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    let auth_cloud = bearer(TOKEN);
    let dialects: [(&str, String, (&str, &str)); 2] = [
        ("360dialog", "/messages".to_string(), D360),
        (
            "cloud",
            cloud_messages(PNID),
            ("authorization", auth_cloud.as_str()),
        ),
    ];
    for (name, path, cred) in &dialects {
        let send = |v: Value| {
            let path = path.clone();
            let cred = *cred;
            let h = &h;
            async move { raw(h, Method::POST, &path, &[cred, JSON], body(&v)).await }
        };
        // Neither `to` nor `recipient` → 100 naming `to` (since BSUIDs, 2026).
        let a = send(
            json!({ "messaging_product": "whatsapp", "type": "text", "text": { "body": "hi" } }),
        )
        .await;
        let details = refused(&a, 400, 100, &format!("{name}: no to"));
        assert!(details.contains("parameter to is required"), "{details}");
        let a = send(json!({ "messaging_product": "whatsapp", "to": "", "type": "text", "text": { "body": "hi" } })).await;
        refused(&a, 400, 100, &format!("{name}: blank to"));
        // Missing messaging_product → 131008; a wrong one → 100.
        let a = send(json!({ "to": TO, "type": "text", "text": { "body": "hi" } })).await;
        let details = refused(&a, 400, 131008, &format!("{name}: no messaging_product"));
        assert!(details.contains("messaging_product"), "{details}");
        let a = send(json!({ "messaging_product": "sms", "to": TO, "type": "text", "text": { "body": "hi" } })).await;
        refused(&a, 400, 100, &format!("{name}: messaging_product sms"));
        // Missing type object → 131008 naming it.
        let a = send(json!({ "messaging_product": "whatsapp", "to": TO, "type": "image" })).await;
        let details = refused(&a, 400, 131008, &format!("{name}: no image object"));
        assert!(details.contains("image"), "{details}");
        // Unknown type → 131051.
        let a = send(json!({ "messaging_product": "whatsapp", "to": TO, "type": "hologram", "hologram": {} })).await;
        refused(&a, 400, 131051, &format!("{name}: unknown type"));
        // A template that does not exist (or not in that language) → 404, 132001.
        let a = send(
            json!({ "messaging_product": "whatsapp", "to": TO, "type": "template",
            "template": { "name": "no_such_template", "language": { "code": "en_US" } } }),
        )
        .await;
        let details = refused(&a, 404, 132001, &format!("{name}: unknown template"));
        assert!(details.contains("no_such_template"), "{details}");
        let a = send(
            json!({ "messaging_product": "whatsapp", "to": TO, "type": "template",
            "template": { "name": "hello_world", "language": { "code": "de" } } }),
        )
        .await;
        refused(
            &a,
            404,
            132001,
            &format!("{name}: template in another language"),
        );
        // `to` equal to the business's own number → 131021.
        for own in ["15550783881", "+1 555-078-3881"] {
            let a = send(text(own, "hi me")).await;
            refused(&a, 400, 131021, &format!("{name}: to {own}"));
        }
        // A value that is not a phone number → 131009.
        let a = send(text("not a number", "hi")).await;
        refused(
            &a,
            400,
            131009,
            &format!("{name}: to is not a phone number"),
        );
        // Too long a text → 100; an unknown media id → 131009.
        let a = send(text(TO, &"x".repeat(4097))).await;
        refused(&a, 400, 100, &format!("{name}: text too long"));
        let a = send(json!({ "messaging_product": "whatsapp", "to": TO, "type": "image", "image": { "id": "123456789012345" } })).await;
        refused(&a, 400, 131009, &format!("{name}: unknown media id"));
        // Mark-as-read of something that is not an inbound message → 131009 (a value problem).
        let a = send(json!({ "messaging_product": "whatsapp", "status": "read", "message_id": "wamid.unknown" })).await;
        refused(&a, 400, 131009, &format!("{name}: read an unknown message"));
    }
    // Nothing of that was accepted; the server still serves.
    let (_, msgs) = h.control_get("/messages").await;
    assert_eq!(msgs["messages"], json!([]), "no message was stored");
    let (s, b) = h.send_360(text(TO, "valid")).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = h.send_cloud(text(TO, "valid")).await;
    assert_eq!(s, 200, "{b}");
    h.shutdown().await;
}
