//! Every outbound message type through both dialects (360dialog and Cloud API), over real HTTP:
//! the send response, the signed status webhooks of each message's lifecycle and their pricing,
//! media upload/retrieve/download/delete, webhook configuration, and Graph API versions.

mod common;
use common::*;

use axum::http::HeaderMap;
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The recipient as the business types it, and its WhatsApp id.
const TO: &str = "+49 151 23456789";
const TO_WA: &str = "4915123456789";
const WABA: &str = "102290129340398";
const DISPLAY: &str = "15550783881";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Dialect {
    D360,
    Cloud,
}

/// A raw answer: status, headers, body parsed as JSON (or a JSON string when it is not JSON).
struct Answer {
    status: u16,
    headers: HeaderMap,
    json: Value,
}

impl Answer {
    fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

fn auth(rb: reqwest::RequestBuilder, d: Dialect) -> reqwest::RequestBuilder {
    match d {
        Dialect::D360 => rb.header("D360-API-KEY", KEY),
        Dialect::Cloud => rb.bearer_auth(TOKEN),
    }
}

async fn answer(r: reqwest::Response) -> Answer {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let bytes = r.bytes().await.unwrap().to_vec();
    let json = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    Answer {
        status,
        headers,
        json,
    }
}

async fn call(h: &Harness, d: Dialect, method: Method, path: &str, body: Option<&Value>) -> Answer {
    let mut rb = auth(h.http.request(method, format!("{}{path}", h.base)), d);
    if let Some(b) = body {
        rb = rb.json(b);
    }
    answer(rb.send().await.unwrap()).await
}

fn messages_path(d: Dialect, version: u32) -> String {
    match d {
        Dialect::D360 => "/messages".to_string(),
        Dialect::Cloud => format!("/v{version}.0/{PNID}/messages"),
    }
}

fn media_path(d: Dialect) -> String {
    match d {
        Dialect::D360 => "/media".to_string(),
        Dialect::Cloud => format!("/v23.0/{PNID}/media"),
    }
}

fn node_path(d: Dialect, id: &str) -> String {
    match d {
        Dialect::D360 => format!("/{id}"),
        Dialect::Cloud => format!("/v23.0/{id}"),
    }
}

async fn send(h: &Harness, d: Dialect, body: &Value) -> Answer {
    call(h, d, Method::POST, &messages_path(d, 23), Some(body)).await
}

/// A multipart/form-data body built by hand: `messaging_product`, `type` and `file`.
fn multipart(bytes: &[u8], mime: &str, filename: &str) -> (String, Vec<u8>) {
    let boundary = "----mynah-test-boundary-7MA4YWxkTrZu0gW";
    let mut b = Vec::new();
    for (name, value) in [("messaging_product", "whatsapp"), ("type", mime)] {
        b.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    b.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: {mime}\r\n\r\n"
        )
        .as_bytes(),
    );
    b.extend_from_slice(bytes);
    b.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), b)
}

/// Uploads media and returns its id.
async fn upload(h: &Harness, d: Dialect, bytes: &[u8], mime: &str, filename: &str) -> String {
    let (ct, body) = multipart(bytes, mime, filename);
    let rb = auth(h.http.post(format!("{}{}", h.base, media_path(d))), d)
        .header("content-type", ct)
        .body(body);
    let a = answer(rb.send().await.unwrap()).await;
    assert_eq!(a.status, 200, "upload via {d:?}: {}", a.json);
    let id = a.json["id"]
        .as_str()
        .expect("upload answers {\"id\"}")
        .to_string();
    assert!(
        !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()),
        "media id is numeric: {id}"
    );
    id
}

/// Checks a send answer (§3.1) and returns the wamid.
fn accepted(a: &Answer, to: &str, what: &str) -> String {
    assert_eq!(a.status, 200, "{what}: {}", a.json);
    assert_eq!(a.content_type(), "application/json", "{what}");
    assert_eq!(a.json["messaging_product"], "whatsapp", "{what}");
    let contact = &a.json["contacts"][0];
    assert_eq!(
        contact["input"], to,
        "{what}: contacts[0].input echoes `to`"
    );
    let wa_id = contact["wa_id"].as_str().unwrap_or("");
    assert!(
        !wa_id.is_empty() && wa_id.bytes().all(|b| b.is_ascii_digit()),
        "{what}: wa_id is digits: {wa_id}"
    );
    let m = &a.json["messages"][0];
    let id = m["id"].as_str().unwrap_or("").to_string();
    assert!(id.starts_with("wamid."), "{what}: id {id}");
    assert!(id.len() <= 128, "{what}: wamid at most 128 characters");
    assert_eq!(m["message_status"], "accepted", "{what}");
    id
}

/// How a message's lifecycle should end.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Life {
    /// sent → delivered → read.
    Full,
    /// sent → delivered → read → played (voice notes).
    Voice,
    /// sent only (reactions).
    SentOnly,
}

impl Life {
    fn statuses(self) -> &'static [&'static str] {
        match self {
            Life::Full => &["sent", "delivered", "read"],
            Life::Voice => &["sent", "delivered", "read", "played"],
            Life::SentOnly => &["sent"],
        }
    }
}

/// Expected pricing on `sent`: (billable, type, category).
type Price = (bool, &'static str, &'static str);
const FREE_SERVICE: Price = (false, "free_customer_service", "service");
const UTILITY_REGULAR: Price = (true, "regular", "utility");

struct Case {
    name: &'static str,
    wamid: String,
    life: Life,
    price: Price,
}

/// (wamid, status) → every (POST, change value, status object) that carried it.
type StatusIndex = BTreeMap<(String, String), Vec<(Received, Value, Value)>>;

/// Every status webhook the receiver got, by (wamid, status).
fn statuses_by_key(rx: &Receiver) -> StatusIndex {
    let mut out = StatusIndex::new();
    for r in rx.received() {
        let body = r.json();
        for e in body["entry"].as_array().into_iter().flatten() {
            for c in e["changes"].as_array().into_iter().flatten() {
                for s in c["value"]["statuses"].as_array().into_iter().flatten() {
                    let key = (
                        s["id"].as_str().unwrap().to_string(),
                        s["status"].as_str().unwrap().to_string(),
                    );
                    out.entry(key)
                        .or_default()
                        .push((r.clone(), c["value"].clone(), s.clone()));
                }
            }
        }
    }
    out
}

fn is_digits(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
}

/// The envelope of a `messages` webhook (§4.3) around one change; returns the change's value.
fn check_envelope(r: &Received, pnid: &str) -> Value {
    assert!(signature_ok(r, SECRET), "X-Hub-Signature-256 verifies");
    assert_eq!(
        r.headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/json"),
        "webhook content type"
    );
    assert_eq!(
        r.headers.get("user-agent").and_then(|v| v.to_str().ok()),
        Some("facebookexternalua"),
        "webhook user agent (§4.1)"
    );
    let b = r.json();
    assert_eq!(b["object"], "whatsapp_business_account");
    let entry = &b["entry"][0];
    assert_eq!(entry["id"], WABA);
    assert!(
        entry.get("time").is_none(),
        "no entry.time on messages: {b}"
    );
    let change = &entry["changes"][0];
    assert_eq!(change["field"], "messages");
    let value = change["value"].clone();
    assert_eq!(value["messaging_product"], "whatsapp");
    assert_eq!(value["metadata"]["phone_number_id"], pnid);
    assert_eq!(
        value["metadata"]["display_phone_number"], DISPLAY,
        "{value}"
    );
    value
}

/// Sends every message type through `d`, then checks each lifecycle at the receiver.
async fn every_type(d: Dialect) {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;

    let jpeg: Vec<u8> = (0..2048u32).map(|i| (i * 31 % 251) as u8).collect();
    let image_id = upload(&h, d, &jpeg, "image/jpeg", "receipt.jpg").await;

    let mut cases: Vec<Case> = Vec::new();
    let base = |kind: &str, payload: Value| -> Value {
        let mut v = json!({ "messaging_product": "whatsapp", "recipient_type": "individual", "to": TO, "type": kind });
        v[kind] = payload;
        v
    };
    let bodies: Vec<(&'static str, Value, Life, Price)> = vec![
        (
            "text",
            base(
                "text",
                json!({ "preview_url": true, "body": "Track it here: https://example.com/t/123" }),
            ),
            Life::Full,
            FREE_SERVICE,
        ),
        (
            "image by id",
            base(
                "image",
                json!({ "id": image_id, "caption": "Your receipt" }),
            ),
            Life::Full,
            FREE_SERVICE,
        ),
        (
            "image by link",
            base(
                "image",
                json!({ "link": "https://example.com/banner.jpg", "caption": "Banner" }),
            ),
            Life::Full,
            FREE_SERVICE,
        ),
        (
            "audio by link",
            base("audio", json!({ "link": "https://example.com/jingle.mp3" })),
            Life::Full,
            FREE_SERVICE,
        ),
        (
            "voice note",
            base(
                "audio",
                json!({ "link": "https://example.com/note.ogg", "voice": true }),
            ),
            Life::Voice,
            FREE_SERVICE,
        ),
        (
            "video",
            base(
                "video",
                json!({ "link": "https://example.com/clip.mp4", "caption": "Demo" }),
            ),
            Life::Full,
            FREE_SERVICE,
        ),
        (
            "document",
            base(
                "document",
                json!({ "link": "https://example.com/invoice-77.pdf", "caption": "Invoice 77", "filename": "invoice-77.pdf" }),
            ),
            Life::Full,
            FREE_SERVICE,
        ),
        (
            "sticker",
            base(
                "sticker",
                json!({ "link": "https://example.com/smile.webp" }),
            ),
            Life::Full,
            FREE_SERVICE,
        ),
        (
            "location",
            base(
                "location",
                json!({ "latitude": 52.520008, "longitude": 13.404954, "name": "Store Mitte", "address": "Alexanderplatz 1, 10178 Berlin" }),
            ),
            Life::Full,
            FREE_SERVICE,
        ),
        (
            "contacts",
            base(
                "contacts",
                json!([{
                    "name": { "formatted_name": "Dr. Erika Muster", "first_name": "Erika", "last_name": "Muster", "prefix": "Dr." },
                    "phones": [{ "phone": "+4915199999999", "type": "WORK", "wa_id": "4915199999999" }],
                    "emails": [{ "email": "erika@example.com", "type": "WORK" }],
                    "addresses": [{ "street": "Hauptstr. 5", "city": "Berlin", "zip": "10115", "country": "Germany", "country_code": "DE", "type": "WORK" }],
                    "org": { "company": "Example GmbH", "department": "Sales", "title": "Lead" },
                    "urls": [{ "url": "https://example.com", "type": "WORK" }],
                    "birthday": "1985-04-23"
                }]),
            ),
            Life::Full,
            FREE_SERVICE,
        ),
        (
            "template hello_world",
            base(
                "template",
                json!({ "name": "hello_world", "language": { "code": "en_US" } }),
            ),
            Life::Full,
            UTILITY_REGULAR,
        ),
        (
            "template order_update",
            base(
                "template",
                json!({
                    "name": "order_update",
                    "language": { "policy": "deterministic", "code": "en_US" },
                    "components": [{ "type": "body", "parameters": [
                        { "type": "text", "text": "Ana" },
                        { "type": "currency", "currency": { "fallback_value": "$100.99", "code": "USD", "amount_1000": 100990 } },
                        { "type": "date_time", "date_time": { "fallback_value": "February 25, 2026" } }
                    ] }]
                }),
            ),
            Life::Full,
            UTILITY_REGULAR,
        ),
        (
            "interactive button",
            base(
                "interactive",
                json!({
                    "type": "button",
                    "header": { "type": "image", "image": { "id": image_id } },
                    "body": { "text": "Your appointment is tomorrow at 9:00. Need to change it?" },
                    "footer": { "text": "Reply with a button" },
                    "action": { "buttons": [
                        { "type": "reply", "reply": { "id": "keep", "title": "Keep it" } },
                        { "type": "reply", "reply": { "id": "reschedule", "title": "Reschedule" } }
                    ] }
                }),
            ),
            Life::Full,
            FREE_SERVICE,
        ),
        (
            "interactive list",
            base(
                "interactive",
                json!({
                    "type": "list",
                    "header": { "type": "text", "text": "Shipping" },
                    "body": { "text": "Pick a delivery speed." },
                    "footer": { "text": "Prices include VAT" },
                    "action": { "button": "Options", "sections": [
                        { "title": "Fast", "rows": [
                            { "id": "express", "title": "Express", "description": "Next day" },
                            { "id": "prio", "title": "Priority", "description": "2 days" } ] },
                        { "title": "Cheap", "rows": [ { "id": "std", "title": "Standard", "description": "3-5 days" } ] }
                    ] }
                }),
            ),
            Life::Full,
            FREE_SERVICE,
        ),
        (
            "interactive cta_url",
            base(
                "interactive",
                json!({
                    "type": "cta_url",
                    "header": { "type": "text", "text": "Order #1234" },
                    "body": { "text": "Tap below to see the tracking page." },
                    "footer": { "text": "Example Shop" },
                    "action": { "name": "cta_url", "parameters": { "display_text": "Track order", "url": "https://example.com/t/1234" } }
                }),
            ),
            Life::Full,
            FREE_SERVICE,
        ),
        (
            "interactive product",
            base(
                "interactive",
                json!({
                    "type": "product",
                    "body": { "text": "Our bestseller" },
                    "footer": { "text": "Limited stock" },
                    "action": { "catalog_id": "194836987003835", "product_retailer_id": "sku-42" }
                }),
            ),
            Life::Full,
            FREE_SERVICE,
        ),
        (
            "interactive product_list",
            base(
                "interactive",
                json!({
                    "type": "product_list",
                    "header": { "type": "text", "text": "Summer picks" },
                    "body": { "text": "Have a look" },
                    "action": { "catalog_id": "194836987003835", "sections": [
                        { "title": "Shirts", "product_items": [ { "product_retailer_id": "sku-1" }, { "product_retailer_id": "sku-2" } ] }
                    ] }
                }),
            ),
            Life::Full,
            FREE_SERVICE,
        ),
        (
            "interactive catalog_message",
            base(
                "interactive",
                json!({
                    "type": "catalog_message",
                    "body": { "text": "Browse our catalog and order in chat." },
                    "footer": { "text": "Free delivery over 30 EUR" },
                    "action": { "name": "catalog_message", "parameters": { "thumbnail_product_retailer_id": "sku-1" } }
                }),
            ),
            Life::Full,
            FREE_SERVICE,
        ),
        (
            "interactive flow",
            base(
                "interactive",
                json!({
                    "type": "flow",
                    "header": { "type": "text", "text": "Book a table" },
                    "body": { "text": "Pick date and time in the form." },
                    "footer": { "text": "Takes 1 minute" },
                    "action": { "name": "flow", "parameters": {
                        "flow_message_version": "3",
                        "flow_id": "1234567890",
                        "flow_cta": "Book now",
                        "flow_token": "session-abc",
                        "mode": "published",
                        "flow_action": "navigate",
                        "flow_action_payload": { "screen": "WELCOME", "data": { "party_size": 2 } }
                    } }
                }),
            ),
            Life::Full,
            FREE_SERVICE,
        ),
        (
            "interactive location_request_message",
            base(
                "interactive",
                json!({
                    "type": "location_request_message",
                    "body": { "text": "Share your location so we can find the nearest store." },
                    "action": { "name": "send_location" }
                }),
            ),
            Life::Full,
            FREE_SERVICE,
        ),
        (
            "interactive address_message",
            base(
                "interactive",
                json!({
                    "type": "address_message",
                    "body": { "text": "Please confirm your delivery address." },
                    "action": { "name": "address_message", "parameters": {
                        "country": "IN",
                        "values": { "name": "A. Kumar", "phone_number": "+919000000000", "in_pin_code": "400063", "address": "Flat 2, Tower A", "city": "Mumbai", "state": "Maharashtra" },
                        "saved_addresses": [ { "id": "home", "value": { "name": "A. Kumar", "phone_number": "+919000000000", "in_pin_code": "400063", "address": "Flat 2, Tower A", "city": "Mumbai" } } ],
                        "validation_errors": { "in_pin_code": "We do not deliver to this PIN yet" }
                    } }
                }),
            ),
            Life::Full,
            FREE_SERVICE,
        ),
    ];
    for (name, body, life, price) in bodies {
        let a = send(&h, d, &body).await;
        let wamid = accepted(&a, TO, &format!("{d:?} {name}"));
        cases.push(Case {
            name,
            wamid,
            life,
            price,
        });
    }

    // A reaction to the first message of this recipient (the text).
    let target = cases[0].wamid.clone();
    let a = send(
        &h,
        d,
        &base(
            "reaction",
            json!({ "message_id": target, "emoji": "\u{1F600}" }),
        ),
    )
    .await;
    let wamid = accepted(&a, TO, &format!("{d:?} reaction"));
    cases.push(Case {
        name: "reaction",
        wamid,
        life: Life::SentOnly,
        price: FREE_SERVICE,
    });

    // The user writes; the business replies to it (context), marks it read and shows typing.
    let (s, inbound) = h
        .control(Method::POST, "/inbound", &json!({ "from": TO_WA, "name": "Erika", "type": "text", "text": { "body": "Where is my order?" } }))
        .await;
    assert_eq!(s, 200, "{inbound}");
    let inbound_id = inbound["id"].as_str().unwrap().to_string();
    let mut reply = base("text", json!({ "body": "It ships today." }));
    reply["context"] = json!({ "message_id": inbound_id });
    let a = send(&h, d, &reply).await;
    let wamid = accepted(&a, TO, &format!("{d:?} reply with context"));
    cases.push(Case {
        name: "reply with context",
        wamid,
        life: Life::Full,
        price: FREE_SERVICE,
    });

    let read =
        json!({ "messaging_product": "whatsapp", "status": "read", "message_id": inbound_id });
    let a = send(&h, d, &read).await;
    assert_eq!(
        (a.status, a.content_type()),
        (200, "application/json"),
        "{d:?} mark as read: {}",
        a.json
    );
    assert_eq!(a.json, json!({ "success": true }));
    let typing = json!({ "messaging_product": "whatsapp", "status": "read", "message_id": inbound_id, "typing_indicator": { "type": "text" } });
    let a = send(&h, d, &typing).await;
    assert_eq!(
        (a.status, a.content_type()),
        (200, "application/json"),
        "{d:?} typing indicator: {}",
        a.json
    );
    assert_eq!(a.json, json!({ "success": true }));
    let (_, m) = h.control_get(&format!("/messages/{inbound_id}")).await;
    assert_eq!(
        m["status"], "read",
        "the inbound message is marked read: {m}"
    );

    // Let every lifecycle run to its end, then wait for every webhook: one per status, plus the
    // inbound message.
    h.advance(10.0).await;
    let total: usize = cases.iter().map(|c| c.life.statuses().len()).sum::<usize>() + 1;
    h.wait(&format!("phone_number_id={PNID}"), total).await;
    let (_, health) = h.control_get("/health").await;
    assert_eq!(
        health["pending_webhooks"], 0,
        "nothing else is queued: {health}"
    );
    let (_, all) = h
        .control_get(&format!(
            "/webhooks/attempts?phone_number_id={PNID}&limit=1000"
        ))
        .await;
    assert_eq!(
        all["attempts"].as_array().unwrap().len(),
        total,
        "exactly one POST per event"
    );
    assert_eq!(rx.received().len(), total);
    for r in rx.received() {
        assert!(signature_ok(&r, SECRET), "every POST is signed");
    }

    let by_key = statuses_by_key(&rx);
    for c in &cases {
        let what = format!("{d:?} {}", c.name);
        for st in c.life.statuses() {
            h.wait(&format!("wamid={}&status={st}", c.wamid), 1).await;
        }
        for st in ["sent", "delivered", "read", "played", "failed"] {
            let got = by_key
                .get(&(c.wamid.clone(), st.to_string()))
                .map(|v| v.len())
                .unwrap_or(0);
            let want = usize::from(c.life.statuses().contains(&st));
            assert_eq!(got, want, "{what}: {st} webhooks");
        }
        let mut priced = 0;
        for st in c.life.statuses() {
            let (r, _, status) = &by_key[&(c.wamid.clone(), st.to_string())][0];
            let value = check_envelope(r, PNID);
            // The recipient is `recipient_id`. A `statuses` value carries no `contacts` on the
            // platform (§4.3, §4.5: see `status_values_carry_contacts_unless_turned_off`); where the sandbox adds
            // one, it must at least name the recipient.
            if let Some(contacts) = value.get("contacts") {
                assert_eq!(
                    contacts[0]["wa_id"], TO_WA,
                    "{what} {st}: contacts[0].wa_id"
                );
            }
            assert_eq!(status["id"], c.wamid.as_str());
            assert_eq!(status["recipient_id"], TO_WA, "{what} {st}");
            assert!(
                is_digits(&status["timestamp"]),
                "{what} {st}: timestamp is a string of digits"
            );
            assert!(status.get("errors").is_none(), "{what} {st}: {status}");
            if *st == "sent" {
                let p = &status["pricing"];
                assert_eq!(
                    (
                        p["billable"].as_bool(),
                        p["pricing_model"].as_str(),
                        p["type"].as_str(),
                        p["category"].as_str()
                    ),
                    (
                        Some(c.price.0),
                        Some("PMP"),
                        Some(c.price.1),
                        Some(c.price.2)
                    ),
                    "{what}: pricing on sent: {status}"
                );
                // v23 (both here): the conversation object, with its expiry on `sent`.
                let conv = &status["conversation"];
                assert!(
                    conv["id"].as_str().is_some_and(|s| !s.is_empty()),
                    "{what}: conversation on v23: {status}"
                );
                assert!(
                    is_digits(&conv["expiration_timestamp"]),
                    "{what}: expiration_timestamp on sent: {status}"
                );
                assert_eq!(
                    conv["origin"]["type"], c.price.2,
                    "{what}: origin follows the category"
                );
            } else if let Some(conv) = status.get("conversation") {
                assert!(
                    conv.get("expiration_timestamp").is_none(),
                    "{what} {st}: expiration only on sent"
                );
            }
            if status.get("pricing").is_some() {
                priced += 1;
                if *st != "sent" {
                    assert_eq!(
                        status["pricing"],
                        by_key[&(c.wamid.clone(), "sent".to_string())][0].2["pricing"]
                    );
                }
            }
        }
        if c.life != Life::SentOnly {
            // Pricing on `sent` and on one of `delivered`/`read` (§4.5).
            assert_eq!(
                priced, 2,
                "{what}: pricing on sent and on exactly one of delivered/read"
            );
        }
    }

    // The reaction stays at `sent`: nothing more is scheduled for it.
    let reaction = cases.iter().find(|c| c.life == Life::SentOnly).unwrap();
    let (_, m) = h
        .control_get(&format!("/messages/{}", reaction.wamid))
        .await;
    assert_eq!(m["status"], "sent", "{m}");
    assert!(
        m.get("next").is_none_or(|n| n.is_null()),
        "nothing more scheduled for a reaction: {m}"
    );
    h.advance(60.0).await;
    let (_, delivered) = h
        .control_get(&format!(
            "/webhooks/attempts?wamid={}&status=delivered",
            reaction.wamid
        ))
        .await;
    assert_eq!(
        delivered["attempts"],
        json!([]),
        "no delivered for a reaction"
    );

    // The timestamps of a lifecycle never go backwards.
    let text = &cases[0];
    let ts: Vec<u64> = ["sent", "delivered", "read"]
        .iter()
        .map(|st| {
            by_key[&(text.wamid.clone(), st.to_string())][0].2["timestamp"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "{ts:?}");
    h.shutdown().await;
    rx.stop();
}

#[tokio::test]
async fn every_outbound_type_via_360dialog() {
    every_type(Dialect::D360).await;
}

#[tokio::test]
async fn every_outbound_type_via_cloud_api() {
    every_type(Dialect::Cloud).await;
}

/// Template pricing follows the template's category and the customer service window (§4.5, §5.4).
#[tokio::test]
async fn template_pricing_follows_the_category_and_the_window() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    let tpl = |to: &str, name: &str, components: Value| {
        let mut t = json!({ "name": name, "language": { "code": "en_US" } });
        if !components.is_null() {
            t["components"] = components;
        }
        json!({ "messaging_product": "whatsapp", "to": to, "type": "template", "template": t })
    };
    let otp = json!([
        { "type": "body", "parameters": [ { "type": "text", "text": "482913" } ] },
        { "type": "button", "sub_type": "url", "index": "0", "parameters": [ { "type": "text", "text": "482913" } ] }
    ]);
    // (recipient, template, components, expected sent pricing).
    let sends: Vec<(&str, &str, Value, Price)> = vec![
        (
            "4915100000001",
            "hello_world",
            Value::Null,
            (true, "regular", "utility"),
        ),
        (
            "4915100000002",
            "spring_sale",
            Value::Null,
            (true, "regular", "marketing"),
        ),
        (
            "4915100000003",
            "verification_code",
            otp,
            (true, "regular", "authentication"),
        ),
    ];
    let mut wamids = Vec::new();
    for (to, name, comps, price) in &sends {
        let (s, b) = h.send_360(tpl(to, name, comps.clone())).await;
        assert_eq!(s, 200, "{name}: {b}");
        wamids.push((
            b["messages"][0]["id"].as_str().unwrap().to_string(),
            *price,
            *name,
        ));
    }
    // Inside an open customer service window a utility template is free; marketing is not.
    let (s, b) = h
        .control(
            Method::POST,
            "/inbound",
            &json!({ "from": "4915100000004", "type": "text", "text": { "body": "hi" } }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    for (name, price) in [
        ("hello_world", (false, "free_customer_service", "utility")),
        ("spring_sale", (true, "regular", "marketing")),
    ] {
        let (s, b) = h.send_360(tpl("4915100000004", name, Value::Null)).await;
        assert_eq!(s, 200, "{name}: {b}");
        wamids.push((
            b["messages"][0]["id"].as_str().unwrap().to_string(),
            price,
            name,
        ));
    }
    h.advance(10.0).await;
    for (wamid, (billable, kind, category), name) in &wamids {
        let got = h.wait(&format!("wamid={wamid}&status=sent"), 1).await;
        let body: Value = serde_json::from_str(got[0]["body"].as_str().unwrap()).unwrap();
        let st = &body["entry"][0]["changes"][0]["value"]["statuses"][0];
        assert_eq!(
            st["pricing"],
            json!({ "billable": billable, "pricing_model": "PMP", "type": kind, "category": category }),
            "{name}: {st}"
        );
        assert_eq!(
            st["conversation"]["origin"]["type"], *category,
            "{name}: {st}"
        );
    }
    h.shutdown().await;
}

/// Media through both dialects: upload, retrieve the URL, download the same bytes, delete (§8).
async fn media_round_trip(d: Dialect) {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    let bytes: Vec<u8> = (0..5000u32).map(|i| (i * 7 + 3) as u8).collect();
    let id = upload(&h, d, &bytes, "application/pdf", "terms.pdf").await;

    if d == Dialect::Cloud {
        // The optional `phone_number_id` query (§8.2).
        let a = call(
            &h,
            d,
            Method::GET,
            &format!("{}?phone_number_id={PNID}", node_path(d, &id)),
            None,
        )
        .await;
        assert_eq!((a.status, &a.json["id"]), (200, &json!(id)), "{}", a.json);
    }
    let a = call(&h, d, Method::GET, &node_path(d, &id), None).await;
    assert_eq!(a.status, 200, "{d:?} GET media: {}", a.json);
    assert_eq!(a.content_type(), "application/json");
    let info = &a.json;
    assert_eq!(info["messaging_product"], "whatsapp");
    assert_eq!(info["id"], id.as_str());
    assert_eq!(info["mime_type"], "application/pdf");
    assert_eq!(info["sha256"], hex::encode(Sha256::digest(&bytes)));
    assert_eq!(
        info["file_size"],
        bytes.len().to_string(),
        "file_size is a string"
    );
    let url = info["url"].as_str().unwrap().to_string();
    assert!(
        url.contains("/whatsapp_business/attachments/?mid="),
        "{url}"
    );
    for q in ["mid=", "ext=", "hash="] {
        assert!(url.contains(q), "{url} has {q}");
    }

    // The URL downloads the same bytes with the dialect's credential, and nothing without one.
    let got = auth(h.http.get(&url), d).send().await.unwrap();
    assert_eq!(got.status().as_u16(), 200);
    assert_eq!(
        got.headers().get("content-type").unwrap(),
        "application/pdf"
    );
    assert_eq!(got.bytes().await.unwrap().as_ref(), bytes.as_slice());
    let anon = h.http.get(&url).send().await.unwrap();
    assert_eq!(
        anon.status().as_u16(),
        401,
        "downloading needs the credential"
    );

    // The URL is valid for 5 minutes; a fresh GET gives a new one.
    h.advance(301.0).await;
    let stale = auth(h.http.get(&url), d).send().await.unwrap();
    assert_eq!(
        stale.status().as_u16(),
        404,
        "an expired media URL fails with 404"
    );
    let a = call(&h, d, Method::GET, &node_path(d, &id), None).await;
    assert_eq!(a.status, 200);
    let fresh = a.json["url"].as_str().unwrap().to_string();
    let got = auth(h.http.get(&fresh), d).send().await.unwrap();
    assert_eq!(got.bytes().await.unwrap().as_ref(), bytes.as_slice());

    let a = call(&h, d, Method::DELETE, &node_path(d, &id), None).await;
    assert_eq!(
        (a.status, &a.json),
        (200, &json!({ "success": true })),
        "{d:?} DELETE media"
    );
    let a = call(&h, d, Method::GET, &node_path(d, &id), None).await;
    assert!(a.status >= 400, "{d:?} GET after DELETE fails: {}", a.json);
    assert_eq!(a.json["error"]["code"], 100, "{}", a.json);
    assert!(
        a.json["error"]["error_data"]["details"]
            .as_str()
            .unwrap()
            .contains(&id)
    );
    let gone = auth(h.http.get(&fresh), d).send().await.unwrap();
    assert_eq!(
        gone.status().as_u16(),
        404,
        "a deleted media's URL no longer downloads"
    );
    // A deleted id can no longer be sent.
    let a = send(&h, d, &json!({ "messaging_product": "whatsapp", "to": TO, "type": "document", "document": { "id": id } })).await;
    assert_eq!(a.status, 400, "{}", a.json);
    assert_eq!(a.json["error"]["code"], 131009, "{}", a.json);
    h.shutdown().await;
}

#[tokio::test]
async fn media_round_trip_via_360dialog() {
    media_round_trip(Dialect::D360).await;
}

#[tokio::test]
async fn media_round_trip_via_cloud_api() {
    media_round_trip(Dialect::Cloud).await;
}

/// 360dialog: POST/GET /v1/configs/webhook round-trip `{url, headers}`; the headers arrive.
#[tokio::test]
async fn d360_webhook_configuration_round_trips_and_adds_headers() {
    let old = Receiver::start().await;
    let rx = Receiver::start().await;
    let h = Harness::start(config(&old.url)).await;
    let cfg = json!({ "url": rx.url, "headers": { "X-Auth": "s3cr3t", "X-Tenant": "acme" } });
    let a = call(
        &h,
        Dialect::D360,
        Method::POST,
        "/v1/configs/webhook",
        Some(&cfg),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.json);
    assert_eq!(a.json["url"], rx.url.as_str());
    assert_eq!(a.json["headers"], cfg["headers"]);
    let a = call(&h, Dialect::D360, Method::GET, "/v1/configs/webhook", None).await;
    assert_eq!(a.status, 200, "{}", a.json);
    assert_eq!(a.content_type(), "application/json");
    assert_eq!(a.json, cfg, "GET returns what was set");

    let (s, b) = h.send_360(text(TO, "configured")).await;
    assert_eq!(s, 200, "{b}");
    let wamid = b["messages"][0]["id"].as_str().unwrap();
    h.advance(10.0).await;
    h.wait(&format!("wamid={wamid}&status=read"), 1).await;
    let got = rx.received();
    assert_eq!(got.len(), 3, "sent, delivered, read at the new URL");
    for r in &got {
        assert_eq!(r.headers.get("x-auth").unwrap(), "s3cr3t");
        assert_eq!(r.headers.get("x-tenant").unwrap(), "acme");
        assert!(signature_ok(r, SECRET));
    }
    assert!(old.received().is_empty(), "the old URL gets nothing");

    // A URL that is not http(s) is refused.
    let a = call(
        &h,
        Dialect::D360,
        Method::POST,
        "/v1/configs/webhook",
        Some(&json!({ "url": "ftp://x" })),
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.json);
    assert!(a.json["error"]["code"].is_u64());
    h.shutdown().await;
}

/// Cloud API: `POST /{version}/{phone_number_id}` with `webhook_configuration.override_callback_uri`.
#[tokio::test]
async fn cloud_webhook_override_takes_effect() {
    let old = Receiver::start().await;
    let rx = Receiver::start().await;
    let h = Harness::start(config(&old.url)).await;
    let a = call(
        &h,
        Dialect::Cloud,
        Method::GET,
        &format!("/v23.0/{PNID}"),
        None,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.json);
    assert_eq!(a.json["id"], PNID);
    let body = json!({ "webhook_configuration": { "override_callback_uri": rx.url, "verify_token": "tok" } });
    let a = call(
        &h,
        Dialect::Cloud,
        Method::POST,
        &format!("/v23.0/{PNID}"),
        Some(&body),
    )
    .await;
    assert_eq!((a.status, &a.json), (200, &json!({ "success": true })));

    let (s, b) = h.send_cloud(text(TO, "override")).await;
    assert_eq!(s, 200, "{b}");
    let wamid = b["messages"][0]["id"].as_str().unwrap();
    h.advance(10.0).await;
    h.wait(&format!("wamid={wamid}&status=read"), 1).await;
    assert_eq!(
        rx.statuses().len(),
        3,
        "the override URL gets the lifecycle"
    );
    assert!(old.received().is_empty(), "the previous URL gets nothing");
    for r in rx.received() {
        assert!(signature_ok(&r, SECRET));
    }
    h.shutdown().await;
}

/// Graph versions: v16.0 and v24.0 work, v15.0 is refused; v24+ drops `conversation` from
/// free-form statuses, v23 keeps it (§4.6).
#[tokio::test]
async fn graph_versions() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    let mut sent = BTreeMap::new();
    for v in [16u32, 23, 24, 25] {
        let a = call(
            &h,
            Dialect::Cloud,
            Method::POST,
            &messages_path(Dialect::Cloud, v),
            Some(&text(TO, "versions")),
        )
        .await;
        let wamid = accepted(&a, TO, &format!("v{v}.0"));
        assert_eq!(
            a.headers
                .get("facebook-api-version")
                .and_then(|x| x.to_str().ok()),
            Some(format!("v{v}.0").as_str())
        );
        sent.insert(v, wamid);
    }
    let a = call(
        &h,
        Dialect::Cloud,
        Method::POST,
        &messages_path(Dialect::Cloud, 15),
        Some(&text(TO, "too old")),
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.json);
    assert_eq!(a.json["error"]["code"], 100, "{}", a.json);
    assert!(
        a.json["error"]["error_data"]["details"]
            .as_str()
            .unwrap()
            .contains("v15.0")
    );
    // A template on v24 still carries pricing; `conversation` is gone outside a free entry point.
    let a = call(
        &h,
        Dialect::Cloud,
        Method::POST,
        &messages_path(Dialect::Cloud, 24),
        Some(&json!({ "messaging_product": "whatsapp", "to": "4915100000009", "type": "template", "template": { "name": "hello_world", "language": { "code": "en_US" } } })),
    )
    .await;
    let tpl24 = accepted(&a, "4915100000009", "v24 template");

    h.advance(10.0).await;
    for (v, wamid) in &sent {
        for st in ["sent", "delivered", "read"] {
            let got = h.wait(&format!("wamid={wamid}&status={st}"), 1).await;
            let body: Value = serde_json::from_str(got[0]["body"].as_str().unwrap()).unwrap();
            let status = &body["entry"][0]["changes"][0]["value"]["statuses"][0];
            if *v >= 24 {
                assert!(
                    status.get("conversation").is_none(),
                    "v{v}.0 {st}: no conversation: {status}"
                );
            } else if st != "read" {
                assert!(
                    status.get("conversation").is_some(),
                    "v{v}.0 {st}: conversation: {status}"
                );
            }
            if st == "sent" {
                assert_eq!(status["pricing"]["category"], "service", "v{v}.0: {status}");
            }
            if *v == 16 {
                assert!(status.get("error_subcode").is_none());
            }
        }
    }
    let got = h.wait(&format!("wamid={tpl24}&status=sent"), 1).await;
    let body: Value = serde_json::from_str(got[0]["body"].as_str().unwrap()).unwrap();
    let status = &body["entry"][0]["changes"][0]["value"]["statuses"][0];
    assert!(
        status.get("conversation").is_none(),
        "v24 template: {status}"
    );
    assert_eq!(status["pricing"]["category"], "utility", "{status}");
    h.shutdown().await;
}

/// `biz_opaque_callback_data` is echoed in every status of the message (§2.1).
#[tokio::test]
async fn biz_opaque_callback_data_is_echoed_in_every_status() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    let mut body = text(TO, "with callback data");
    body["biz_opaque_callback_data"] = json!("order-8812");
    let (s, b) = h.send_cloud(body).await;
    assert_eq!(s, 200, "{b}");
    let wamid = b["messages"][0]["id"].as_str().unwrap();
    h.advance(10.0).await;
    h.wait(&format!("wamid={wamid}"), 3).await;
    for body in rx.bodies() {
        assert_eq!(
            body["entry"][0]["changes"][0]["value"]["statuses"][0]["biz_opaque_callback_data"],
            "order-8812",
            "{body}"
        );
    }
    assert_eq!(rx.bodies().len(), 3);
    h.shutdown().await;
}

/// Status values carry the recipient in `statuses[].recipient_id` (§4.5) and, by default, the
/// recipient's profile in `value.contacts[]` (configurable, see docs/fidelity.md).
#[tokio::test]
async fn status_values_carry_contacts_unless_turned_off() {
    // On by default (issue 2 asks for `value.contacts[]` on every status); `webhooks.status_contacts
    // = false` gives Meta's documented shape without it.
    for with_contacts in [true, false] {
        let rx = Receiver::start().await;
        let mut cfg = config(&rx.url);
        cfg.webhooks.status_contacts = with_contacts;
        let h = Harness::start(cfg).await;
        let (s, b) = h.send_360(text(TO, "contacts in statuses")).await;
        assert_eq!(s, 200, "{b}");
        let wamid = b["messages"][0]["id"].as_str().unwrap();
        h.advance(10.0).await;
        h.wait(&format!("wamid={wamid}"), 3).await;
        for body in rx.bodies() {
            let value = &body["entry"][0]["changes"][0]["value"];
            assert_eq!(value["statuses"][0]["recipient_id"], TO_WA);
            if with_contacts {
                assert_eq!(value["contacts"][0]["wa_id"], TO_WA, "{value}");
            } else {
                assert!(value.get("contacts").is_none(), "{value}");
            }
        }
        h.shutdown().await;
    }
}

/// A reaction to a message outside the thread (or unknown, or itself a reaction) is accepted and
/// then fails with 131009; a reaction to the user's own inbound message is fine (§2.6).
#[tokio::test]
async fn reactions_to_invalid_targets_fail_with_131009() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    let react = |to: &str, target: &str| json!({ "messaging_product": "whatsapp", "to": to, "type": "reaction", "reaction": { "message_id": target, "emoji": "\u{2764}" } });
    let (_, b) = h.send_360(text(TO, "hello")).await;
    let own = b["messages"][0]["id"].as_str().unwrap().to_string();
    let (s, m) = h
        .control(
            Method::POST,
            "/inbound",
            &json!({ "from": TO_WA, "type": "text", "text": { "body": "hi" } }),
        )
        .await;
    assert_eq!(s, 200, "{m}");
    let inbound = m["id"].as_str().unwrap().to_string();

    let mut ok = Vec::new();
    for target in [&own, &inbound] {
        let (s, b) = h.send_360(react(TO, target)).await;
        assert_eq!(s, 200, "{b}");
        ok.push(b["messages"][0]["id"].as_str().unwrap().to_string());
    }
    let mut bad = Vec::new();
    let (_, other) = h.send_360(text("4915100000077", "someone else")).await;
    let other = other["messages"][0]["id"].as_str().unwrap().to_string();
    for target in ["wamid.HBgNdoesnotexist".to_string(), other, ok[0].clone()] {
        let (s, b) = h.send_360(react(TO, &target)).await;
        assert_eq!(s, 200, "accepted, fails later: {b}");
        bad.push(b["messages"][0]["id"].as_str().unwrap().to_string());
    }
    h.advance(10.0).await;
    for wamid in &ok {
        h.wait(&format!("wamid={wamid}&status=sent"), 1).await;
    }
    for wamid in &bad {
        let got = h.wait(&format!("wamid={wamid}&status=failed"), 1).await;
        let body: Value = serde_json::from_str(got[0]["body"].as_str().unwrap()).unwrap();
        let st = &body["entry"][0]["changes"][0]["value"]["statuses"][0];
        assert_eq!(st["errors"][0]["code"], 131009, "{st}");
    }
    h.shutdown().await;
}
