//! Enqueue is strict where a typo would cost a message: unknown fields, template messages that
//! do not fit their template, idempotency keys reused for another request, malformed keys.

mod common;

use common::*;
use mynah_gateway::store::Store;
use serde_json::{Value, json};

async fn post_keyed(p: &Pair, key: &[u8], body: &str) -> (u16, Value) {
    let r = p
        .http
        .post(format!("{}/v1/messages", p.gw_base))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .header(
            "Idempotency-Key",
            reqwest::header::HeaderValue::from_bytes(key).unwrap(),
        )
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

fn code(b: &Value) -> &str {
    b["error"]["code"].as_str().unwrap_or("")
}

fn details(b: &Value) -> &str {
    b["error"]["details"].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_fields_are_refused_with_the_nearest_known_one() {
    let p = Pair::start(sandbox_config(), gateway_config()).await;
    let user = "4915112345620";
    p.opt_in(user, "utility").await;
    let mut body = template("hello_world", user);
    body["ttl_second"] = json!(60);
    let (s, b) = p.post("/v1/messages", &body).await;
    assert_eq!((s, code(&b)), (400, "unknown_field"), "{b}");
    assert!(
        details(&b).contains("`ttl_second`") && details(&b).contains("`ttl_seconds`"),
        "{b}"
    );
    let (s, b) = p
        .post(
            "/v1/messages",
            &json!({ "to": user, "type": "template", "tmplate": { "name": "hello_world" } }),
        )
        .await;
    assert_eq!((s, code(&b)), (400, "unknown_field"), "{b}");
    assert!(details(&b).contains("`template`"), "{b}");
    let mut far = template("hello_world", user);
    far["schedule_for_tuesday"] = json!(true);
    let (s, b) = p.post("/v1/messages", &far).await;
    assert_eq!((s, code(&b)), (400, "unknown_field"), "{b}");
    assert!(details(&b).contains("ttl_seconds, not_before"), "{b}");
    // Every known field still goes through.
    let mut all = template("hello_world", user);
    for (k, v) in [
        ("messaging_product", json!("whatsapp")),
        ("recipient_type", json!("individual")),
        ("biz_opaque_callback_data", json!("app-ref")),
        ("category", json!("utility")),
        ("ttl_seconds", json!(600)),
        ("lane", json!("transactional")),
        ("metadata", json!({ "order": 42 })),
    ] {
        all[k] = v;
    }
    let (s, b) = p.post("/v1/messages", &all).await;
    assert_eq!(s, 202, "{b}");
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_messages_are_checked_against_the_cached_definition() {
    let p = Pair::start(sandbox_config(), gateway_config()).await;
    let user = "4915112345621";
    p.opt_in(user, "utility").await;
    p.opt_in(user, "marketing").await;
    // order_update has three body parameters.
    let (s, b) = p
        .post("/v1/messages", &template("order_update", user))
        .await;
    assert_eq!((s, code(&b)), (422, "template_mismatch"), "{b}");
    assert!(details(&b).contains("132000"), "{b}");
    let one = json!({ "to": user, "type": "template", "template": { "name": "order_update",
        "language": { "code": "en_US" },
        "components": [{ "type": "body", "parameters": [{ "type": "text", "text": "Ana" }] }] } });
    let (s, b) = p.post("/v1/messages", &one).await;
    assert_eq!((s, code(&b)), (422, "template_mismatch"), "{b}");
    assert!(
        details(&b).contains("(1)") && details(&b).contains("(3)"),
        "{b}"
    );
    // new_arrivals has an IMAGE header: a text parameter there is the platform's 132012.
    let wrong_kind = json!({ "to": user, "type": "template", "template": { "name": "new_arrivals",
        "language": { "code": "en_US" },
        "components": [
            { "type": "header", "parameters": [{ "type": "text", "text": "Hi" }] },
            { "type": "body", "parameters": [{ "type": "text", "text": "Ana" }] }] } });
    let (s, b) = p.post("/v1/messages", &wrong_kind).await;
    assert_eq!((s, code(&b)), (422, "template_mismatch"), "{b}");
    assert!(details(&b).contains("132012"), "{b}");
    // The right parameters go out and arrive.
    let right = json!({ "to": user, "type": "template", "template": { "name": "order_update",
        "language": { "code": "en_US" },
        "components": [{ "type": "body", "parameters": [
            { "type": "text", "text": "Ana" }, { "type": "text", "text": "$10" },
            { "type": "text", "text": "Friday" }] }] } });
    let id = p.send(right).await;
    p.until(&id, "delivered", |m| m["delivered_at"].is_number())
        .await;
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_conflict_on_another_request_and_must_be_well_formed() {
    let p = Pair::start(sandbox_config(), gateway_config()).await;
    let user = "4915112345622";
    p.opt_in(user, "utility").await;
    let body = r#"{"to":"4915112345622","type":"template","template":{"name":"hello_world","language":{"code":"en_US"}}}"#;
    let (s, first) = post_keyed(&p, b"order-7", body).await;
    assert_eq!(s, 202, "{first}");
    // The keyed row keeps the request's fingerprint; a row without a key keeps none (nothing
    // would ever compare it).
    let stored = |id: &Value| {
        let (gw, id) = (p.gw.clone(), id.as_str().unwrap().to_string());
        async move { gw.store.get(&id).await.unwrap().unwrap().request_hash }
    };
    assert_eq!(stored(&first["id"]).await.map(|h| h.len()), Some(64));
    let keyless = p.send(serde_json::from_str(body).unwrap()).await;
    assert_eq!(stored(&Value::String(keyless)).await, None);
    // The same request, spaced and ordered differently: the first answer.
    let same = r#"{ "type": "template", "template": { "language": { "code": "en_US" }, "name": "hello_world" }, "to": "4915112345622" }"#;
    let (s, again) = post_keyed(&p, b"order-7", same).await;
    assert_eq!((s, &again["id"]), (202, &first["id"]), "{again}");
    // Another request under the same key: 409, naming the first message.
    let other = body.replace("hello_world", "order_update");
    let (s, b) = post_keyed(&p, b"order-7", &other).await;
    assert_eq!((s, code(&b)), (409, "idempotency_conflict"), "{b}");
    assert!(details(&b).contains(first["id"].as_str().unwrap()), "{b}");
    // A retry after the consent was withdrawn still gets the first answer, not a refusal.
    let (s, _) = p
        .put(
            &format!("/v1/contacts/{user}/consents/utility"),
            &json!({ "status": "opted_out", "source": "test" }),
        )
        .await;
    assert_eq!(s, 200);
    let (s, retry) = post_keyed(&p, b"order-7", body).await;
    assert_eq!((s, &retry["id"]), (202, &first["id"]), "{retry}");
    // ... while the same body under a fresh key is refused by the gate.
    let (s, b) = post_keyed(&p, b"order-8", body).await;
    assert_eq!((s, code(&b)), (422, "consent_missing"), "{b}");
    // Malformed keys are refused, never ignored.
    for bad in [
        "bestellung-ü".as_bytes().to_vec(),
        vec![b'k'; 256],
        b"  ".to_vec(),
    ] {
        let (s, b) = post_keyed(&p, &bad, body).await;
        assert_eq!((s, code(&b)), (400, "invalid_parameter"), "{b}");
        assert!(details(&b).contains("Idempotency-Key"), "{b}");
    }
    let (s, _) = post_keyed(&p, &[b'k'; 255], body).await;
    assert_eq!(
        s, 422,
        "255 characters is a valid key (the gate refuses the body)"
    );
    let r = p
        .http
        .post(format!("{}/v1/messages", p.gw_base))
        .bearer_auth(KEY)
        .header("Idempotency-Key", "a")
        .header("Idempotency-Key", "b")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    p.shutdown().await;
}
