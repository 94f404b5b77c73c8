//! Every inbound message type, simulated through `POST /_mynah/inbound`, arrives at the receiver
//! as a signed `messages` webhook of the platform's shape (spec §4.3, §4.4); inbound media is
//! downloadable through the media endpoints; inbound messages can be marked read.

mod common;
use common::*;

use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const USER: &str = "4915177770001";
const NAME: &str = "Sheena Nelson";
const WABA: &str = "102290129340398";
const DISPLAY: &str = "15550783881";

fn is_digits(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
}

/// Asserts every key of `want` is in `got` with the same value (recursively for objects).
fn contains(got: &Value, want: &Value, path: &str) {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => {
            for (k, v) in w {
                let sub = format!("{path}.{k}");
                let gv = g
                    .get(k)
                    .unwrap_or_else(|| panic!("{sub} is missing in {got}"));
                contains(gv, v, &sub);
            }
        }
        _ => assert_eq!(got, want, "{path}"),
    }
}

/// Simulates an inbound message and returns (its wamid, the webhook's `value`, the message object).
async fn inbound(h: &Harness, rx: &Receiver, req: Value) -> (String, Value, Value) {
    let (s, m) = h.control(Method::POST, "/inbound", &req).await;
    assert_eq!(s, 200, "inbound {req}: {m}");
    let wamid = m["id"].as_str().unwrap().to_string();
    assert!(wamid.starts_with("wamid."), "{wamid}");
    assert_eq!(m["direction"], "inbound");
    h.wait(&format!("wamid={wamid}&field=messages"), 1).await;
    let hit = rx
        .received()
        .into_iter()
        .find(|r| {
            r.json()["entry"][0]["changes"][0]["value"]["messages"][0]["id"] == wamid.as_str()
        })
        .expect("the receiver got the message");
    assert!(signature_ok(&hit, SECRET), "signed");
    let body = hit.json();
    assert_eq!(body["object"], "whatsapp_business_account");
    assert_eq!(body["entry"][0]["id"], WABA);
    assert!(body["entry"][0].get("time").is_none());
    let change = &body["entry"][0]["changes"][0];
    assert_eq!(change["field"], "messages");
    let value = change["value"].clone();
    assert_eq!(value["messaging_product"], "whatsapp");
    assert_eq!(
        value["metadata"],
        json!({ "display_phone_number": DISPLAY, "phone_number_id": PNID })
    );
    assert!(
        value.get("statuses").is_none() && value.get("errors").is_none(),
        "{value}"
    );
    let msgs = value["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 1);
    let msg = msgs[0].clone();
    assert_eq!(msg["from"], req["from"], "from");
    assert_eq!(msg["id"], wamid.as_str());
    assert!(
        is_digits(&msg["timestamp"]),
        "timestamp is a string of unix seconds: {msg}"
    );
    let kind = req["type"].as_str().unwrap();
    assert_eq!(msg["type"], kind);
    assert!(
        msg.get(kind).is_some() || kind == "unsupported",
        "the {kind} object: {msg}"
    );
    (wamid, value, msg)
}

/// The common case: `contacts[0]` carries the profile name, the wa_id and the user's
/// business-scoped user id, which `messages[0].from_user_id` repeats.
fn has_contact(value: &Value, from: &str, name: &str) {
    let user_id = value["contacts"][0]["user_id"].clone();
    assert!(
        user_id
            .as_str()
            .is_some_and(|u| u.len() > 3 && u[3..].bytes().all(|b| b.is_ascii_digit())),
        "{value}"
    );
    assert_eq!(
        value["contacts"],
        json!([{ "profile": { "name": name }, "wa_id": from, "user_id": user_id }]),
        "{value}"
    );
    assert_eq!(value["messages"][0]["from_user_id"], user_id, "{value}");
}

fn req(kind: &str, payload: Value) -> Value {
    let mut v = json!({ "from": USER, "name": NAME, "type": kind });
    v[kind] = payload;
    v
}

#[tokio::test]
async fn text_location_contacts_and_reaction() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;

    let (_, value, msg) = inbound(
        &h,
        &rx,
        req("text", json!({ "body": "Do you ship to Hamburg?" })),
    )
    .await;
    has_contact(&value, USER, NAME);
    assert_eq!(msg["text"], json!({ "body": "Do you ship to Hamburg?" }));
    assert!(
        msg.get("context").is_none()
            && msg.get("referral").is_none()
            && msg.get("errors").is_none()
    );

    let loc = json!({ "latitude": 53.5511, "longitude": 9.9937, "name": "Rathaus", "address": "Rathausmarkt 1, Hamburg" });
    let (_, value, msg) = inbound(&h, &rx, req("location", loc.clone())).await;
    has_contact(&value, USER, NAME);
    contains(&msg["location"], &loc, "location");

    let card = json!({
        "name": { "formatted_name": "Erika Muster", "first_name": "Erika", "last_name": "Muster" },
        "phones": [{ "phone": "+49 151 99999999", "type": "CELL", "wa_id": "4915199999999" }]
    });
    let (_, value, msg) = inbound(&h, &rx, req("contacts", json!([card.clone()]))).await;
    has_contact(&value, USER, NAME);
    assert_eq!(msg["contacts"], json!([card]));

    // A reaction to a business message.
    let (s, b) = h.send_360(text(USER, "Yes, we do!")).await;
    assert_eq!(s, 200, "{b}");
    let out = b["messages"][0]["id"].as_str().unwrap().to_string();
    let (_, value, msg) = inbound(
        &h,
        &rx,
        req(
            "reaction",
            json!({ "message_id": out, "emoji": "\u{1F44D}" }),
        ),
    )
    .await;
    has_contact(&value, USER, NAME);
    assert_eq!(
        msg["reaction"],
        json!({ "message_id": out, "emoji": "\u{1F44D}" })
    );
    // Removing the reaction: no emoji.
    let (_, _, msg) = inbound(&h, &rx, req("reaction", json!({ "message_id": out }))).await;
    assert_eq!(msg["reaction"], json!({ "message_id": out }));

    // Without a name the user's profile name is used, and stays the same next time.
    let (_, value, _) = inbound(
        &h,
        &rx,
        json!({ "from": "4915177770002", "type": "text", "text": { "body": "anon" } }),
    )
    .await;
    let name = value["contacts"][0]["profile"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!name.is_empty());
    let (_, value, _) = inbound(
        &h,
        &rx,
        json!({ "from": "4915177770002", "type": "text", "text": { "body": "again" } }),
    )
    .await;
    assert_eq!(value["contacts"][0]["profile"]["name"], name.as_str());
    h.shutdown().await;
}

/// Inbound media gets an id that the 360dialog media endpoints resolve and download.
#[tokio::test]
async fn media_types_create_downloadable_media() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    let cases = [
        (
            "image",
            json!({ "caption": "my receipt", "mime_type": "image/jpeg" }),
            "image/jpeg",
        ),
        (
            "audio",
            json!({ "voice": true, "mime_type": "audio/ogg" }),
            "audio/ogg",
        ),
        (
            "video",
            json!({ "caption": "unboxing", "mime_type": "video/mp4" }),
            "video/mp4",
        ),
        (
            "document",
            json!({ "filename": "scan.pdf", "caption": "the contract" }),
            "application/pdf",
        ),
        (
            "sticker",
            json!({ "animated": false, "mime_type": "image/webp" }),
            "image/webp",
        ),
    ];
    for (kind, payload, mime) in cases {
        let (_, value, msg) = inbound(&h, &rx, req(kind, payload.clone())).await;
        has_contact(&value, USER, NAME);
        let media = &msg[kind];
        contains(media, &payload, kind);
        assert_eq!(media["mime_type"], mime, "{kind}: {media}");
        let id = media["id"].as_str().unwrap();
        assert!(
            !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()),
            "{kind}: media id {id}"
        );
        let sha = media["sha256"].as_str().unwrap().to_string();
        assert_eq!(sha.len(), 64, "{kind}: sha256 hex");
        let hook_url = media["url"]
            .as_str()
            .expect("inbound media carries a url")
            .to_string();

        // GET /{media_id} (360dialog) → url; the url downloads bytes whose hash the webhook named.
        let r = h
            .http
            .get(format!("{}/{id}", h.base))
            .header("D360-API-KEY", KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{kind}");
        let info: Value = r.json().await.unwrap();
        assert_eq!(info["id"], id);
        assert_eq!(info["mime_type"], mime);
        assert_eq!(info["sha256"], sha.as_str());
        for url in [info["url"].as_str().unwrap(), hook_url.as_str()] {
            let r = h
                .http
                .get(url)
                .header("D360-API-KEY", KEY)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200, "{kind}: download {url}");
            assert_eq!(r.headers().get("content-type").unwrap(), mime);
            let bytes = r.bytes().await.unwrap();
            assert!(!bytes.is_empty());
            assert_eq!(
                hex::encode(Sha256::digest(&bytes)),
                sha,
                "{kind}: the bytes match sha256"
            );
            assert_eq!(
                info["file_size"],
                bytes.len().to_string(),
                "{kind}: file_size is a string"
            );
        }
    }
    h.shutdown().await;
}

/// `voice` (audio) and `animated` (sticker) are booleans the platform always sends (§4.4), also
/// when the simulation does not set them.
#[tokio::test]
async fn inbound_audio_and_sticker_always_carry_their_flags() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    let (_, _, audio) = inbound(&h, &rx, req("audio", json!({ "mime_type": "audio/mpeg" }))).await;
    let (_, _, sticker) = inbound(
        &h,
        &rx,
        req("sticker", json!({ "mime_type": "image/webp" })),
    )
    .await;
    assert_eq!(
        (&audio["audio"]["voice"], &sticker["sticker"]["animated"]),
        (&json!(false), &json!(false)),
        "audio.voice and sticker.animated default to false: {audio} {sticker}"
    );
    h.shutdown().await;
}

/// Taps on template quick replies and interactive messages, Flow completions.
#[tokio::test]
async fn button_and_interactive_replies_carry_context() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    let (s, b) = h
        .send_360(
            json!({ "messaging_product": "whatsapp", "to": USER, "type": "template",
            "template": { "name": "hello_world", "language": { "code": "en_US" } } }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let tpl = b["messages"][0]["id"].as_str().unwrap().to_string();
    let ctx = json!({ "from": DISPLAY, "id": tpl });

    let mut r = req(
        "button",
        json!({ "payload": "STOP_PROMOS", "text": "Stop promotions" }),
    );
    r["context"] = ctx.clone();
    let (_, value, msg) = inbound(&h, &rx, r).await;
    has_contact(&value, USER, NAME);
    assert_eq!(
        msg["button"],
        json!({ "payload": "STOP_PROMOS", "text": "Stop promotions" })
    );
    assert_eq!(msg["context"], ctx);

    let replies = [
        json!({ "type": "button_reply", "button_reply": { "id": "keep", "title": "Keep it" } }),
        json!({ "type": "list_reply", "list_reply": { "id": "express", "title": "Express", "description": "Next day" } }),
        json!({ "type": "nfm_reply", "nfm_reply": {
            "name": "flow", "body": "Sent",
            "response_json": "{\"flow_token\":\"session-abc\",\"party_size\":2,\"date\":\"2026-03-01\"}" } }),
        json!({ "type": "nfm_reply", "nfm_reply": {
            "name": "address_message", "body": "Flat 2, Tower A, Mumbai",
            "response_json": "{\"saved_address_id\":\"home\"}" } }),
    ];
    for interactive in replies {
        let mut r = req("interactive", interactive.clone());
        r["context"] = ctx.clone();
        let (_, value, msg) = inbound(&h, &rx, r).await;
        has_contact(&value, USER, NAME);
        assert_eq!(msg["interactive"], interactive);
        assert_eq!(msg["context"], ctx);
        if interactive["type"] == "nfm_reply" {
            let rj = msg["interactive"]["nfm_reply"]["response_json"]
                .as_str()
                .expect("response_json is a string");
            let parsed: Value = serde_json::from_str(rj).expect("response_json holds JSON");
            assert!(parsed.is_object());
        }
    }

    // The answer to a location request: a location with context.
    let mut r = req(
        "location",
        json!({ "latitude": 19.076, "longitude": 72.8777 }),
    );
    r["context"] = ctx.clone();
    let (_, _, msg) = inbound(&h, &rx, r).await;
    assert_eq!(msg["context"], ctx);
    h.shutdown().await;
}

/// Referral (click-to-WhatsApp), order, system and unsupported messages.
#[tokio::test]
async fn referral_order_system_and_unsupported() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;

    let referral = json!({
        "source_url": "https://fb.me/abc", "source_id": "120211111111", "source_type": "ad",
        "body": "Ad primary text", "headline": "Ad headline", "media_type": "image",
        "image_url": "https://example.com/ad.jpg", "ctwa_clid": "ARAkLkA", "welcome_message": { "text": "Hi! How can we help?" }
    });
    let mut r = req("text", json!({ "body": "I saw your ad" }));
    r["referral"] = referral.clone();
    let (_, value, msg) = inbound(&h, &rx, r).await;
    has_contact(&value, USER, NAME);
    assert_eq!(msg["referral"], referral);
    assert_eq!(msg["text"]["body"], "I saw your ad");

    let order = json!({
        "catalog_id": "194836987003835", "text": "Please deliver fast",
        "product_items": [
            { "product_retailer_id": "sku-1", "quantity": 2, "item_price": 19.99, "currency": "EUR" },
            { "product_retailer_id": "sku-2", "quantity": 1, "item_price": 5.5, "currency": "EUR" }
        ]
    });
    let (_, value, msg) = inbound(&h, &rx, req("order", order.clone())).await;
    has_contact(&value, USER, NAME);
    assert_eq!(msg["order"], order);

    // user_changed_number: no contacts array.
    let system = json!({ "body": "Sheena Nelson changed their phone number to a new number 4915177770099",
        "wa_id": "4915177770099", "type": "user_changed_number" });
    let (_, value, msg) = inbound(&h, &rx, req("system", system.clone())).await;
    assert!(
        value.get("contacts").is_none(),
        "no contacts on a system message: {value}"
    );
    assert_eq!(msg["system"], system);

    // unsupported: errors[0] with 131051 and the full webhook error shape.
    let (_, value, msg) = inbound(&h, &rx, req("unsupported", json!({ "type": "poll" }))).await;
    has_contact(&value, USER, NAME);
    assert_eq!(msg["unsupported"], json!({ "type": "poll" }));
    let e = &msg["errors"][0];
    assert_eq!(e["code"], 131051, "{msg}");
    assert!(e["title"].is_string() && e["message"] == e["title"], "{e}");
    assert!(e["error_data"]["details"].is_string(), "{e}");
    assert_eq!(
        e["href"],
        "/documentation/business-messaging/whatsapp/support/error-codes"
    );
    h.shutdown().await;
}

/// An inbound message can be marked read in both dialects; marking one marks the earlier ones of
/// that thread too (§2.9); an outbound or unknown id cannot be marked read.
#[tokio::test]
async fn inbound_messages_can_be_marked_read() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    let mut ids = Vec::new();
    for body in ["one", "two", "three"] {
        let (id, _, _) = inbound(&h, &rx, req("text", json!({ "body": body }))).await;
        ids.push(id);
        h.advance(1.0).await;
    }
    let (other, _, _) = inbound(
        &h,
        &rx,
        json!({ "from": "4915177770003", "type": "text", "text": { "body": "other user" } }),
    )
    .await;
    h.advance(1.0).await;
    let (_, m) = h.control_get(&format!("/messages/{}", ids[0])).await;
    assert!(
        m["status"].is_null() || m.get("status").is_none(),
        "not read yet: {m}"
    );

    let read =
        |id: &str| json!({ "messaging_product": "whatsapp", "status": "read", "message_id": id });
    let (s, b) = h.send_360(read(&ids[1])).await;
    assert_eq!((s, &b), (200, &json!({ "success": true })));
    for (i, want) in [(0, "read"), (1, "read")] {
        let (_, m) = h.control_get(&format!("/messages/{}", ids[i])).await;
        assert_eq!(m["status"], want, "message {i}: {m}");
    }
    let (_, m) = h.control_get(&format!("/messages/{}", ids[2])).await;
    assert_ne!(m["status"], "read", "later messages stay unread: {m}");
    let (_, m) = h.control_get(&format!("/messages/{other}")).await;
    assert_ne!(m["status"], "read", "other threads stay unread: {m}");

    let (s, b) = h.send_cloud(read(&ids[2])).await;
    assert_eq!((s, &b), (200, &json!({ "success": true })));
    let (_, m) = h.control_get(&format!("/messages/{}", ids[2])).await;
    assert_eq!(m["status"], "read");
    // Marking again is harmless.
    let (s, _) = h.send_cloud(read(&ids[2])).await;
    assert_eq!(s, 200);

    // A typing indicator also marks the message read (§2.10).
    let (four, _, _) = inbound(&h, &rx, req("text", json!({ "body": "four" }))).await;
    let mut typing = read(&four);
    typing["typing_indicator"] = json!({ "type": "text" });
    let (s, b) = h.send_360(typing).await;
    assert_eq!((s, &b), (200, &json!({ "success": true })));
    let (_, m) = h.control_get(&format!("/messages/{four}")).await;
    assert_eq!(m["status"], "read", "{m}");

    // An unknown id and an outbound message cannot be marked read.
    let (s, b) = h.send_360(read("wamid.nope")).await;
    assert_eq!(s, 400, "{b}");
    assert!(b["error"]["code"].is_u64(), "{b}");
    let (s, b) = h.send_360(text(USER, "outbound")).await;
    assert_eq!(s, 200);
    let out = b["messages"][0]["id"].as_str().unwrap().to_string();
    let (s, b) = h.send_360(read(&out)).await;
    assert_eq!(s, 400, "{b}");
    // Marking read sends no webhook to the business.
    let (_, all) = h.control_get("/webhooks/attempts?limit=1000").await;
    assert!(
        all["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["events"][0]["status"] != "read")
    );
    h.shutdown().await;
}

/// "Earlier" means earlier in the thread, not "received at most at the same millisecond": two
/// messages received at the same instant are still one after the other.
#[tokio::test]
async fn mark_read_respects_arrival_order_within_one_instant() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    let (first, _, _) = inbound(&h, &rx, req("text", json!({ "body": "first" }))).await;
    let (second, _, _) = inbound(&h, &rx, req("text", json!({ "body": "second" }))).await;
    let read = json!({ "messaging_product": "whatsapp", "status": "read", "message_id": first });
    let (s, b) = h.send_360(read).await;
    assert_eq!((s, &b), (200, &json!({ "success": true })));
    let (_, m) = h.control_get(&format!("/messages/{first}")).await;
    assert_eq!(m["status"], "read");
    let (_, m) = h.control_get(&format!("/messages/{second}")).await;
    assert_ne!(
        m["status"], "read",
        "a message received after the one marked read stays unread: {m}"
    );
    h.shutdown().await;
}
