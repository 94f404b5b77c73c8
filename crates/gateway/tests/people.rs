//! People known by phone, business-scoped user id (BSUID) or both, end to end on real sockets:
//! the platform's signed webhooks teach the gateway who is who, every gate works for a person
//! known only by BSUID, a change of BSUID keeps their consent, and a message the platform will
//! not take by BSUID (131062) goes to the person's phone.

mod common;

use common::*;
use mynah_sandbox::config::DEV_APP_SECRET;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

/// Posts a signed webhook to the gateway's intake, as the platform would.
async fn post_webhook(p: &Pair, value: Value) {
    let body = json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": "waba", "changes": [value] }]
    })
    .to_string();
    let r = p
        .http
        .post(format!("{}/webhooks", p.gw_base))
        .header("content-type", "application/json")
        .header(
            "X-Hub-Signature-256",
            mynah_sandbox::webhooks::sign(DEV_APP_SECRET, body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

fn metadata() -> Value {
    json!({ "display_phone_number": "15550000000", "phone_number_id": DEV_PHONE_NUMBER_ID })
}

/// An inbound text from a user whose phone the platform withholds (a username, no recent
/// exchange): only the BSUID names them.
fn inbound_by_user_id(wamid: &str, user_id: &str, text: &str) -> Value {
    json!({ "field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": metadata(),
        "contacts": [{ "profile": { "name": "Ana", "username": "ana.k" }, "user_id": user_id }],
        "messages": [{ "from_user_id": user_id, "id": wamid, "timestamp": (now_ms() / 1_000).to_string(),
                       "type": "text", "text": { "body": text } }]
    } })
}

/// Polls `GET /v1/contacts/{id}` until `pred` holds (bounded).
async fn until_contact(p: &Pair, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut last = Value::Null;
    while std::time::Instant::now() < deadline {
        let (s, c) = p.get(&format!("/v1/contacts/{id}")).await;
        if s == 200 && pred(&c) {
            return c;
        }
        last = c;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("contact {id} never showed {what}: {last:#}");
}

/// A message that stays queued for the test's length (it is accepted by every gate, and the
/// dispatcher leaves it for an hour).
fn later(mut body: Value, now_ms: i64) -> Value {
    body["not_before"] = json!(now_ms + 3_600_000);
    body["ttl_seconds"] = json!(86_400);
    body
}

fn by_user_id(mut body: Value, user_id: &str) -> Value {
    let o = body.as_object_mut().unwrap();
    o.remove("to");
    o.insert("recipient".into(), json!(user_id));
    body
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_known_only_by_bsuid_meets_every_gate_and_keeps_consent_across_a_bsuid_change() {
    const ANA: &str = "DE.7000000000000001";
    const ANA_NEW: &str = "DE.7000000000000002";
    let p = Pair::start(sandbox_config(), gateway_config()).await;
    let (s, b) = p.get(&format!("/v1/contacts/{ANA}")).await;
    assert_eq!(s, 404, "nobody is known by it yet: {b}");

    // Before anything: no opt-in, no window.
    let promo = by_user_id(template("spring_sale", "0"), ANA);
    let (s, b) = p
        .post("/v1/messages", &later(promo.clone(), now_ms()))
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (422, Some("consent_missing")),
        "{b}"
    );
    let hello = by_user_id(text("0", "hello"), ANA);
    let (s, b) = p
        .post("/v1/messages", &later(hello.clone(), now_ms()))
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (422, Some("window_closed")),
        "{b}"
    );

    // Ana writes; the platform withholds her phone.
    post_webhook(&p, inbound_by_user_id("wamid.ana1", ANA, "hi")).await;
    let c = until_contact(&p, ANA, "an open window", |c| c["window"]["open"] == true).await;
    assert_eq!(c["user_id"], ANA, "{c}");
    assert_eq!(c["username"], "ana.k", "{c}");
    assert_eq!(c["profile_name"], "Ana", "{c}");
    assert!(c["wa_id"].is_null(), "no phone: {c}");
    let person = c["person"].as_str().unwrap().to_string();
    assert!(person.starts_with("ct_"), "{c}");

    // The window is hers: a free-form reply by BSUID is accepted.
    let (s, b) = p.post("/v1/messages", &later(hello, now_ms())).await;
    assert_eq!((s, b["state"].as_str()), (202, Some("queued")), "{b}");
    // The conversation answers to the BSUID and to her person key.
    for id in [ANA, person.as_str()] {
        let (s, conv) = p.get(&format!("/v1/contacts/{id}/messages")).await;
        assert_eq!(s, 200, "{conv}");
        let items = conv["messages"].as_array().unwrap();
        assert!(
            items
                .iter()
                .any(|m| m["id"] == "wamid.ana1" && m["from"] == ANA),
            "{id}: {conv:#}"
        );
    }

    // She opts in to marketing (recorded under her BSUID): the promotion is accepted.
    p.opt_in(ANA, "marketing").await;
    let (s, b) = p.post("/v1/messages", &later(promo, now_ms())).await;
    assert_eq!((s, b["state"].as_str()), (202, Some("queued")), "{b}");

    // Her BSUID changes (user_id_update): the same person, her consent kept.
    post_webhook(
        &p,
        json!({ "field": "user_id_update", "value": {
            "messaging_product": "whatsapp",
            "metadata": metadata(),
            "user_id_update": [{
                "detail": "User id for Ana has been updated.",
                "user_id": { "previous": ANA, "current": ANA_NEW },
                "timestamp": "1750000100"
            }]
        } }),
    )
    .await;
    let c = until_contact(&p, ANA_NEW, "the new BSUID", |_| true).await;
    assert_eq!(c["person"], person.as_str(), "{c}");
    assert_eq!(c["user_id"], ANA_NEW, "{c}");
    assert!(
        c["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["kind"] == "user_id_changed"),
        "{c:#}"
    );
    let promo_new = by_user_id(template("spring_sale", "0"), ANA_NEW);
    let (s, b) = p
        .post("/v1/messages", &later(promo_new.clone(), now_ms()))
        .await;
    assert_eq!(
        (s, b["state"].as_str()),
        (202, Some("queued")),
        "consent carried over: {b}"
    );

    // She replies STOP from her new BSUID: marketing is refused under either id.
    post_webhook(&p, inbound_by_user_id("wamid.ana2", ANA_NEW, "STOP")).await;
    until_contact(&p, ANA_NEW, "the opt-out", |c| {
        c["consents"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|x| x["category"] == "marketing" && x["status"] == "opted_out")
        })
    })
    .await;
    for id in [ANA_NEW, ANA] {
        let body = by_user_id(template("spring_sale", "0"), id);
        let (s, b) = p.post("/v1/messages", &later(body, now_ms())).await;
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (422, Some("consent_missing")),
            "{id}: {b}"
        );
    }
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_refused_for_a_bsuid_goes_to_the_persons_phone() {
    const PHONE: &str = "4915100000777";
    const BEN: &str = "DE.7100000000000001";
    let p = Pair::start(sandbox_config(), gateway_config()).await;
    // A webhook names Ben by phone and BSUID together: one person.
    post_webhook(
        &p,
        json!({ "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": metadata(),
            "contacts": [{ "profile": { "name": "Ben" }, "wa_id": PHONE, "user_id": BEN }],
            "messages": [{ "from": PHONE, "from_user_id": BEN, "id": "wamid.ben1",
                           "timestamp": "1750000000", "type": "text", "text": { "body": "code?" } }]
        } }),
    )
    .await;
    let c = until_contact(&p, BEN, "his phone", |c| c["wa_id"] == PHONE).await;
    let (s, by_phone) = p.get(&format!("/v1/contacts/{PHONE}")).await;
    assert_eq!((s, &by_phone["person"]), (200, &c["person"]), "{by_phone}");
    p.opt_in(PHONE, "authentication").await;
    // The platform refuses copy-code authentication templates by BSUID (131062).
    let (s, b) = p
        .control(
            Method::POST,
            "/faults",
            &json!({ "match": { "to": BEN }, "action": { "code": 131062 } }),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let otp = json!({ "recipient": BEN, "type": "template", "template": {
        "name": "verification_code", "language": { "code": "en_US" }, "components": [
            { "type": "body", "parameters": [ { "type": "text", "text": "482913" } ] },
            { "type": "button", "sub_type": "url", "index": "0",
              "parameters": [ { "type": "text", "text": "482913" } ] } ] } });
    let id = p.send(otp).await;
    let m = p
        .until(&id, "delivered", |m| {
            m["state"] == "delivered" || m["state"] == "read"
        })
        .await;
    let events = event_types(&m);
    assert!(events.iter().any(|e| e == "resend_by_phone"), "{m:#}");
    let resend = m["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "resend_by_phone")
        .unwrap();
    assert_eq!(resend["detail"]["to"], PHONE, "{resend}");
    assert_eq!(resend["detail"]["error"]["code"], 131062, "{resend}");
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fallback_to_the_phone_can_be_turned_off() {
    const PHONE: &str = "4915100000778";
    const CAT: &str = "DE.7200000000000001";
    let mut cfg = gateway_config();
    cfg.classifier = Some(
        toml::from_str(
            r#"
            [[rule]]
            code = 131062
            action = "fail"
            "#,
        )
        .unwrap(),
    );
    let p = Pair::start(sandbox_config(), cfg).await;
    post_webhook(
        &p,
        json!({ "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": metadata(),
            "contacts": [{ "profile": { "name": "Cat" }, "wa_id": PHONE, "user_id": CAT }],
            "statuses": []
        } }),
    )
    .await;
    until_contact(&p, CAT, "her phone", |c| c["wa_id"] == PHONE).await;
    p.opt_in(CAT, "authentication").await;
    let (s, b) = p
        .control(
            Method::POST,
            "/faults",
            &json!({ "match": { "to": CAT }, "action": { "code": 131062 } }),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let otp = json!({ "recipient": CAT, "type": "template", "template": {
        "name": "verification_code", "language": { "code": "en_US" }, "components": [
            { "type": "body", "parameters": [ { "type": "text", "text": "1" } ] },
            { "type": "button", "sub_type": "url", "index": "0",
              "parameters": [ { "type": "text", "text": "1" } ] } ] } });
    let id = p.send(otp).await;
    let m = p.until_state(&id, "failed").await;
    assert_eq!(m["last_error"]["code"], 131062, "{m}");
    assert!(
        !event_types(&m).iter().any(|e| e == "resend_by_phone"),
        "{m:#}"
    );
    p.shutdown().await;
}
