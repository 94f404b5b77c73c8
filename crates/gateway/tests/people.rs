//! People known by phone, business-scoped user id (BSUID) or both, end to end through a real
//! sandbox: its signed webhooks teach the gateway who is who, every gate works for a person
//! known only by BSUID, a number change (and with it a new BSUID) keeps their consent, and a
//! message the platform will not take by BSUID (131062) goes to the person's phone.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

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

fn by_user_id(mut body: Value, user_id: &str) -> Value {
    let o = body.as_object_mut().unwrap();
    o.remove("to");
    o.insert("recipient".into(), json!(user_id));
    body
}

/// The user's BSUID at the sandbox (for the default portfolio).
async fn bsuid_of(p: &Pair, wa_id: &str) -> String {
    let (s, u) = p
        .control(Method::PATCH, &format!("/users/{wa_id}"), &json!({}))
        .await;
    assert_eq!(s, 200, "{u}");
    u["user_ids"]["default"].as_str().unwrap().to_string()
}

fn delivered(m: &Value) -> bool {
    m["state"] == "delivered" || m["state"] == "read"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_known_only_by_bsuid_meets_every_gate_and_keeps_consent_across_a_number_change() {
    const PHONE: &str = "4915170000001";
    const NEW_PHONE: &str = "4915170000009";
    let p = Pair::start(sandbox_config(), gateway_config()).await;
    // Ana has a username: her first message reaches the business without her phone.
    let ana = bsuid_of(&p, PHONE).await;
    let (s, b) = p
        .control(
            Method::PUT,
            &format!("/users/{PHONE}/username"),
            &json!({ "username": "ana.k" }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = p.get(&format!("/v1/contacts/{ana}")).await;
    assert_eq!(s, 404, "nobody is known by it yet: {b}");

    // Before anything: no opt-in, no window.
    let promo = by_user_id(template("spring_sale", "0"), &ana);
    let (s, b) = p.post("/v1/messages", &promo).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (422, Some("consent_missing")),
        "{b}"
    );
    let hello = by_user_id(text("0", "hello"), &ana);
    let (s, b) = p.post("/v1/messages", &hello).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (422, Some("window_closed")),
        "{b}"
    );

    p.inbound(PHONE, "hi").await;
    let c = until_contact(&p, &ana, "an open window", |c| c["window"]["open"] == true).await;
    assert_eq!(c["user_id"], ana.as_str(), "{c}");
    assert_eq!(c["username"], "ana.k", "{c}");
    assert!(c["wa_id"].is_null(), "the platform withheld her phone: {c}");
    let person = c["person"].as_str().unwrap().to_string();
    assert!(person.starts_with("ct_"), "{c}");
    // The conversation answers to the BSUID and to her person key.
    for id in [ana.as_str(), person.as_str()] {
        let (s, conv) = p.get(&format!("/v1/contacts/{id}/messages")).await;
        assert_eq!(s, 200, "{conv}");
        let items = conv["messages"].as_array().unwrap();
        assert!(
            items
                .iter()
                .any(|m| m["direction"] == "inbound" && m["from"] == ana.as_str()),
            "{id}: {conv:#}"
        );
    }

    // The window is hers: a free-form reply by BSUID is delivered.
    let id = p.send(hello).await;
    p.until(&id, "delivered", delivered).await;
    // She opts in (recorded under her BSUID): the promotion is delivered.
    p.opt_in(&ana, "marketing").await;
    let id = p.send(promo).await;
    p.until(&id, "delivered", delivered).await;

    // She moves to a new number, and with it a new BSUID: the same person, her consent kept.
    let (s, u) = p
        .control(
            Method::POST,
            &format!("/users/{PHONE}/number"),
            &json!({ "new_wa_id": NEW_PHONE }),
        )
        .await;
    assert_eq!(s, 200, "{u}");
    let ana_new = u["user_ids"]["default"].as_str().unwrap().to_string();
    assert_ne!(ana_new, ana);
    let c = until_contact(&p, &ana_new, "the new BSUID", |_| true).await;
    assert_eq!(c["person"], person.as_str(), "{c}");
    assert_eq!(c["user_id"], ana_new.as_str(), "{c}");
    assert!(
        c["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["kind"] == "user_id_changed"),
        "{c:#}"
    );
    let id = p
        .send(by_user_id(template("spring_sale", "0"), &ana_new))
        .await;
    p.until(&id, "delivered", delivered).await;

    // She replies STOP: marketing is refused under any of her ids.
    p.inbound(NEW_PHONE, "STOP").await;
    until_contact(&p, &ana_new, "the opt-out", |c| {
        c["consents"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|x| x["category"] == "marketing" && x["status"] == "opted_out")
        })
    })
    .await;
    for id in [ana_new.as_str(), ana.as_str()] {
        let body = by_user_id(template("spring_sale", "0"), id);
        let (s, b) = p.post("/v1/messages", &body).await;
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (422, Some("consent_missing")),
            "{id}: {b}"
        );
    }
    p.shutdown().await;
}

fn otp_by_user_id(user_id: &str) -> Value {
    json!({ "recipient": user_id, "type": "template", "template": {
        "name": "verification_code", "language": { "code": "en_US" }, "components": [
            { "type": "body", "parameters": [ { "type": "text", "text": "482913" } ] },
            { "type": "button", "sub_type": "url", "index": "0",
              "parameters": [ { "type": "text", "text": "482913" } ] } ] } })
}

/// A user writes; the webhook names them by phone and BSUID together, and the gateway links
/// them. Returns their BSUID.
async fn linked_user(p: &Pair, phone: &str) -> String {
    let user_id = bsuid_of(p, phone).await;
    p.inbound(phone, "my code?").await;
    let c = until_contact(p, &user_id, "the phone", |c| c["wa_id"] == phone).await;
    let (s, by_phone) = p.get(&format!("/v1/contacts/{phone}")).await;
    assert_eq!((s, &by_phone["person"]), (200, &c["person"]), "{by_phone}");
    user_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_refused_for_a_bsuid_goes_to_the_persons_phone() {
    const PHONE: &str = "4915170000002";
    let p = Pair::start(sandbox_config(), gateway_config()).await;
    let ben = linked_user(&p, PHONE).await;
    p.opt_in(&ben, "authentication").await;
    // The platform refuses copy-code authentication templates by BSUID (131062).
    let id = p.send(otp_by_user_id(&ben)).await;
    let m = p.until(&id, "delivered", delivered).await;
    let resend = m["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "resend_by_phone")
        .unwrap_or_else(|| panic!("{m:#}"));
    assert_eq!(resend["detail"]["to"], PHONE, "{resend}");
    assert_eq!(resend["detail"]["error"]["code"], 131062, "{resend}");
    let (_, at_sandbox) = p
        .control(Method::GET, &format!("/messages?wa_id={PHONE}"), &json!({}))
        .await;
    let outbound: Vec<&Value> = at_sandbox["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["direction"] == "outbound")
        .collect();
    assert_eq!(
        outbound.len(),
        1,
        "one copy reached the user: {at_sandbox:#}"
    );
    assert_eq!(outbound[0]["body"]["to"], PHONE, "{at_sandbox:#}");
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fallback_to_the_phone_can_be_turned_off() {
    const PHONE: &str = "4915170000003";
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
    let cat = linked_user(&p, PHONE).await;
    p.opt_in(&cat, "authentication").await;
    let id = p.send(otp_by_user_id(&cat)).await;
    let m = p.until_state(&id, "failed").await;
    assert_eq!(m["last_error"]["code"], 131062, "{m}");
    assert!(
        !event_types(&m).iter().any(|e| e == "resend_by_phone"),
        "{m:#}"
    );
    p.shutdown().await;
}
