//! Business-scoped user ids end to end (2026 note §1, §3, §4): every user's BSUID, usernames and
//! the phone-withholding rule on the manual clock, the contact book and its removal route, sends
//! by `recipient` on every path, the per-person rules whichever id addressed the person, 131062,
//! number changes, the Marketing Messages API path and the current Graph version.

mod common;
use common::*;

use mynah_sandbox::config::{AccountConfig, BsuidInTo, NumberConfig};
use reqwest::Method;
use serde_json::{Value, json};

const USER: &str = "4915112345678";
const DAY: f64 = 86_400.0;

fn text_to(recipient: &str, body: &str) -> Value {
    json!({ "messaging_product": "whatsapp", "recipient_type": "individual", "recipient": recipient,
            "type": "text", "text": { "body": body } })
}

fn template_to(field: &str, who: &str, name: &str) -> Value {
    let mut v = json!({ "messaging_product": "whatsapp", "type": "template",
        "template": { "name": name, "language": { "code": "en_US" } } });
    v[field] = json!(who);
    v
}

fn otp_to(field: &str, who: &str) -> Value {
    let mut v = json!({ "messaging_product": "whatsapp", "type": "template",
        "template": { "name": "verification_code", "language": { "code": "en_US" }, "components": [
            { "type": "body", "parameters": [ { "type": "text", "text": "482913" } ] },
            { "type": "button", "sub_type": "url", "index": "0", "parameters": [ { "type": "text", "text": "482913" } ] } ] } });
    v[field] = json!(who);
    v
}

async fn cloud(h: &Harness, path: &str, body: &Value) -> (u16, Value) {
    h.post_cloud(&format!("/v26.0/{PNID}/{path}"), body).await
}

/// A simulated message from `from` (a phone number or a BSUID); its webhook's `value`.
async fn inbound(h: &Harness, from: &str) -> Value {
    let (s, m) = h
        .control(
            Method::POST,
            "/inbound",
            &json!({ "from": from, "type": "text", "text": { "body": "hi" } }),
        )
        .await;
    assert_eq!(s, 200, "{m}");
    let wamid = m["id"].as_str().unwrap();
    let got = h.wait(&format!("wamid={wamid}"), 1).await;
    attempt_body(&got[0])["entry"][0]["changes"][0]["value"].clone()
}

/// The user's BSUID in the default portfolio (the user is created if need be).
async fn bsuid_of(h: &Harness, wa_id: &str) -> String {
    let (s, u) = h
        .control(Method::PATCH, &format!("/users/{wa_id}"), &json!({}))
        .await;
    assert_eq!(s, 200, "{u}");
    u["user_ids"]["default"].as_str().unwrap().to_string()
}

async fn set_username(h: &Harness, wa_id: &str, name: &str) {
    let (s, b) = h
        .control(
            Method::PUT,
            &format!("/users/{wa_id}/username"),
            &json!({ "username": name }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
}

/// The `value` of the one status webhook (wamid, status).
async fn status_value(h: &Harness, wamid: &str, status: &str) -> Value {
    let got = h.wait(&format!("wamid={wamid}&status={status}"), 1).await;
    attempt_body(&got[0])["entry"][0]["changes"][0]["value"].clone()
}

fn wamid(b: &Value) -> String {
    b["messages"][0]["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn every_user_has_a_bsuid_stable_per_portfolio_and_seed() {
    let rx = Receiver::start().await;
    let mut cfg = config(&rx.url);
    let mut second = AccountConfig {
        waba_id: "2002".into(),
        portfolio: "other".into(),
        numbers: vec![NumberConfig {
            phone_number_id: "3003".into(),
            display_phone_number: "15550003003".into(),
            api_key: "key-3003".into(),
            ..NumberConfig::default()
        }],
        ..AccountConfig::default()
    };
    second.name = "Other".into();
    cfg.accounts = vec![AccountConfig::default(), second];
    let h = Harness::start(cfg.clone()).await;
    let v = inbound(&h, USER).await;
    let id = v["contacts"][0]["user_id"].as_str().unwrap().to_string();
    assert!(is_bsuid(&id, false) && id.starts_with("DE."), "{id}");
    let (_, u) = h.control_get(&format!("/users/{USER}")).await;
    assert_eq!(u["user_ids"]["default"], id.as_str());
    let other = u["user_ids"]["other"].as_str().unwrap().to_string();
    assert!(is_bsuid(&other, false));
    assert_ne!(id, other, "another portfolio, another BSUID");
    // The user is found by either id.
    let (s, by_id) = h.control_get(&format!("/users/{id}")).await;
    assert_eq!((s, &by_id["wa_id"]), (200, &json!(USER)));
    // A US number gets US, a magic number no country (ZZ).
    let us = inbound(&h, "16505551234").await;
    assert!(
        us["contacts"][0]["user_id"]
            .as_str()
            .unwrap()
            .starts_with("US.")
    );
    h.shutdown().await;
    // The same seed, the same ids; another seed, others.
    let h = Harness::start(cfg.clone()).await;
    assert_eq!(bsuid_of(&h, USER).await, id, "no exchange needed, same id");
    h.shutdown().await;
    cfg.seed = 8;
    let h = Harness::start(cfg).await;
    assert_ne!(bsuid_of(&h, USER).await, id);
    h.shutdown().await;
}

#[tokio::test]
async fn usernames_follow_the_platform_rules() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    for (bad, rule) in [
        ("ab", "3 to 35"),
        ("anna-k", "may only contain"),
        ("1234", "at least one letter"),
        ("anna..k", "two periods"),
        ("www.anna", "www"),
        ("anna.com", "domain"),
    ] {
        let (s, b) = h
            .control(
                Method::PUT,
                &format!("/users/{USER}/username"),
                &json!({ "username": bad }),
            )
            .await;
        assert_eq!(s, 400, "{bad}: {b}");
        assert_eq!(b["error"]["code"], 4000);
        let details = b["error"]["error_data"]["details"].as_str().unwrap();
        assert!(details.contains(rule), "{bad}: {details}");
    }
    set_username(&h, USER, "@Anna_K").await;
    let (_, u) = h.control_get(&format!("/users/{USER}")).await;
    assert_eq!(u["username"], "anna_k");
    // Unique: another user cannot take it.
    let (s, b) = h
        .control(
            Method::PATCH,
            "/users/4915100000002",
            &json!({ "username": "anna_k" }),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    // Cleared.
    let (s, u) = h
        .control(
            Method::DELETE,
            &format!("/users/{USER}/username"),
            &json!({}),
        )
        .await;
    assert_eq!(s, 200, "{u}");
    assert!(u.get("username").is_none(), "{u}");
    h.shutdown().await;
}

/// Username ∧ no exchange with that phone for 30 days ∧ not in the contact book → no phone
/// fields (absent, not empty); the contact book and the 30 days, on the manual clock.
#[tokio::test]
async fn the_phone_is_withheld_exactly_as_the_rule_says() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    set_username(&h, USER, "anna.k").await;
    // First contact by username: no phone anywhere.
    let v = inbound(&h, USER).await;
    assert!(v["contacts"][0].get("wa_id").is_none(), "{v}");
    assert!(v["messages"][0].get("from").is_none(), "{v}");
    assert_eq!(v["contacts"][0]["profile"]["username"], "anna.k");
    let bsuid = v["contacts"][0]["user_id"].as_str().unwrap().to_string();
    let (_, p) = h.control_get("/portfolios").await;
    assert_eq!(
        p["portfolios"][0]["contact_book"],
        json!([]),
        "a withheld phone is not recorded: {p}"
    );
    // A reply by BSUID does not show the business the phone either.
    let (s, b) = cloud(&h, "messages", &text_to(&bsuid, "Hello Anna")).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["contacts"],
        json!([{ "input": bsuid, "user_id": bsuid }]),
        "no wa_id for a BSUID send"
    );
    h.advance(2.0).await;
    let st = status_value(&h, &wamid(&b), "delivered").await;
    assert!(st["statuses"][0].get("recipient_id").is_none(), "{st}");
    assert!(st["contacts"][0].get("wa_id").is_none(), "{st}");
    assert_eq!(st["statuses"][0]["recipient_user_id"], bsuid.as_str());
    // The business sends to the phone number: from now on the phone is shared, and the contact
    // book records it.
    let (s, b) = h.send_360(template_to("to", USER, "hello_world")).await;
    assert_eq!(s, 200, "{b}");
    let v = inbound(&h, &bsuid).await;
    assert_eq!(v["contacts"][0]["wa_id"], USER, "{v}");
    assert_eq!(v["messages"][0]["from"], USER, "{v}");
    let (_, p) = h.control_get("/portfolios").await;
    assert_eq!(p["portfolios"][0]["contact_book"][0]["wa_id"], USER, "{p}");
    assert_eq!(
        p["portfolios"][0]["contact_book"][0]["user_id"],
        bsuid.as_str()
    );
    // 31 days later the contact book alone keeps it shared.
    h.advance(31.0 * DAY).await;
    let (s, b) = cloud(&h, "messages", &text_to(&bsuid, "still there?")).await;
    assert_eq!(s, 200, "{b}");
    h.advance(2.0).await;
    let st = status_value(&h, &wamid(&b), "delivered").await;
    assert_eq!(st["statuses"][0]["recipient_id"], USER, "{st}");
    // The platform's route removes the entry (Cloud API; again through 360dialog: nothing left
    // to remove; a parent id is refused).
    let r = h
        .http
        .delete(format!(
            "{}/v26.0/{PNID}/contact_book?messaging_product=whatsapp&bsuid={bsuid}",
            h.base
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let removed: Value = r.json().await.unwrap();
    assert_eq!(
        removed,
        json!({ "messaging_product": "whatsapp", "success": true, "deleted": true })
    );
    let r = h
        .http
        .delete(format!("{}/contact_book?bsuid={bsuid}", h.base))
        .header("D360-API-KEY", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let again: Value = r.json().await.unwrap();
    assert_eq!(
        again,
        json!({ "messaging_product": "whatsapp", "success": true, "deleted": false })
    );
    let r = h
        .http
        .delete(format!(
            "{}/contact_book?bsuid=DE.ENT.123456789012345",
            h.base
        ))
        .header("D360-API-KEY", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Out of the book, and the last exchange with the phone (the inbound above) is more than
    // 30 days old: withheld from now on.
    let (_, u) = h.control_get(&format!("/users/{USER}")).await;
    let last = u["phone_exchange"][PNID].as_i64().unwrap();
    let (_, c) = h.control_get("/clock").await;
    let now = c["now_ms"].as_i64().unwrap();
    let left = (last + 30 * 86_400_000 - now) as f64 / 1_000.0;
    assert!(left < 0.0, "the 31 days passed already: {left}");
    let (s, b) = cloud(&h, "messages", &text_to(&bsuid, "and now?")).await;
    assert_eq!(s, 200, "{b}");
    h.advance(2.0).await;
    let st = status_value(&h, &wamid(&b), "delivered").await;
    assert!(
        st["statuses"][0].get("recipient_id").is_none(),
        "username, no exchange in 30 days, not in the book: withheld: {st}"
    );
    assert!(st["contacts"][0].get("wa_id").is_none(), "{st}");
    let v = inbound(&h, &bsuid).await;
    assert!(v["contacts"][0].get("wa_id").is_none(), "{v}");
    h.shutdown().await;
}

#[tokio::test]
async fn the_thirty_days_count_per_business_number_to_the_second() {
    let rx = Receiver::start().await;
    let mut cfg = config(&rx.url);
    cfg.portfolios = vec![mynah_sandbox::config::PortfolioConfig {
        id: "default".into(),
        parent: None,
        contact_book: false,
    }];
    let h = Harness::start(cfg).await;
    set_username(&h, USER, "anna.k").await;
    let bsuid = bsuid_of(&h, USER).await;
    // A send to the phone number at t0.
    let (s, b) = h.send_360(template_to("to", USER, "hello_world")).await;
    assert_eq!(s, 200, "{b}");
    // 30 days less a minute later, statuses of a BSUID send still show the phone …
    h.advance(30.0 * DAY - 60.0).await;
    let (_, b) = cloud(&h, "messages", &text_to(&bsuid, "one")).await;
    h.advance(2.0).await;
    let st = status_value(&h, &wamid(&b), "delivered").await;
    assert_eq!(st["statuses"][0]["recipient_id"], USER, "{st}");
    // … and two minutes later they do not.
    h.advance(120.0).await;
    let (_, b) = cloud(&h, "messages", &text_to(&bsuid, "two")).await;
    h.advance(2.0).await;
    let st = status_value(&h, &wamid(&b), "delivered").await;
    assert!(st["statuses"][0].get("recipient_id").is_none(), "{st}");
    h.shutdown().await;
}

#[tokio::test]
async fn recipient_works_on_every_send_path_and_to_wins() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    let bsuid = bsuid_of(&h, USER).await;
    // Cloud API, any version.
    for v in ["v23.0", "v26.0"] {
        let (s, b) = h
            .post_cloud(&format!("/{v}/{PNID}/messages"), &text_to(&bsuid, "hi"))
            .await;
        assert_eq!(s, 200, "{v}: {b}");
        assert_eq!(b["contacts"][0]["user_id"], bsuid.as_str());
        assert!(b["contacts"][0].get("wa_id").is_none());
    }
    // 360dialog.
    let (s, b) = h.send_360(text_to(&bsuid, "hi")).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["contacts"], json!([{ "input": bsuid, "user_id": bsuid }]));
    let (_, m) = h.control_get(&format!("/messages/{}", wamid(&b))).await;
    assert_eq!(m["wa_id"], USER, "the message reaches the person: {m}");
    assert_eq!(m["recipient"], bsuid.as_str());
    // Both given: `to` is used, the answer is a phone send's.
    let mut both = text_to(&bsuid, "hi");
    both["to"] = json!("+49 151 12345678");
    let (s, b) = h.send_360(both).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["contacts"],
        json!([{ "input": "+49 151 12345678", "wa_id": USER }])
    );
    // Neither: 100 naming `to`.
    let (s, b) = h
        .send_360(
            json!({ "messaging_product": "whatsapp", "type": "text", "text": { "body": "x" } }),
        )
        .await;
    assert_eq!((s, &b["error"]["code"]), (400, &json!(100)), "{b}");
    assert_eq!(
        b["error"]["error_data"]["details"],
        "The parameter to is required."
    );
    // The On-Premises path has no BSUIDs: it reads `to` only.
    let r = h
        .http
        .post(format!("{}/v1/messages", h.base))
        .header("D360-API-KEY", KEY)
        .json(&json!({ "recipient": bsuid, "type": "text", "text": { "body": "x" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    h.shutdown().await;
}

#[tokio::test]
async fn a_bsuid_of_another_portfolio_or_of_nobody_is_refused() {
    let rx = Receiver::start().await;
    let mut cfg = config(&rx.url);
    cfg.accounts = vec![
        AccountConfig::default(),
        AccountConfig {
            waba_id: "2002".into(),
            portfolio: "other".into(),
            numbers: vec![NumberConfig {
                phone_number_id: "3003".into(),
                display_phone_number: "15550003003".into(),
                api_key: "key-3003".into(),
                ..NumberConfig::default()
            }],
            ..AccountConfig::default()
        },
    ];
    let h = Harness::start(cfg).await;
    inbound(&h, USER).await;
    let (_, u) = h.control_get(&format!("/users/{USER}")).await;
    let other = u["user_ids"]["other"].as_str().unwrap().to_string();
    for id in [
        other.as_str(),
        "DE.1502576394655843",
        "DE.ENT.11815799212886844830",
    ] {
        let (s, b) = cloud(&h, "messages", &text_to(id, "hi")).await;
        assert_eq!(s, 400, "{id}: {b}");
        assert_eq!(b["error"]["code"], 100);
        assert!(
            b["error"]["error_data"]["details"]
                .as_str()
                .unwrap()
                .contains("business portfolio"),
            "{b}"
        );
    }
    // Through a number of the other portfolio, the same id reaches the user.
    let r = h
        .http
        .post(format!("{}/messages", h.base))
        .header("D360-API-KEY", "key-3003")
        .json(&text_to(&other, "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A malformed id: 100 too.
    let (s, b) = cloud(&h, "messages", &text_to("de.123", "hi")).await;
    assert_eq!((s, &b["error"]["code"]), (400, &json!(100)), "{b}");
    h.shutdown().await;
}

#[tokio::test]
async fn authentication_templates_by_bsuid_get_131062() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    let bsuid = bsuid_of(&h, USER).await;
    let (s, b) = cloud(&h, "messages", &otp_to("recipient", &bsuid)).await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["error"]["code"], 131062);
    assert_eq!(
        b["error"]["message"],
        "(#131062) Business-scoped User ID (BSUID) recipients are not supported for this message."
    );
    let (s, b) = h.send_360(otp_to("recipient", &bsuid)).await;
    assert_eq!((s, &b["error"]["code"]), (400, &json!(131062)), "{b}");
    // By phone it goes; other templates go by BSUID.
    let (s, b) = cloud(&h, "messages", &otp_to("to", USER)).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = cloud(
        &h,
        "messages",
        &template_to("recipient", &bsuid, "hello_world"),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    h.shutdown().await;
}

/// Window, opt-out, per-user marketing limit, holdout and pair rate apply to the person
/// whichever id addressed them.
#[tokio::test]
async fn the_rules_apply_to_the_person_whichever_id_addressed_them() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    let (s, b) = h
        .control(
            Method::PATCH,
            "/rules",
            &json!({ "customer_service_window": true, "marketing_limit": { "count": 2, "window_ms": 86400000 },
                     "pair_rate": { "every_ms": 6000, "burst": 5 } }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let bsuid = bsuid_of(&h, USER).await;
    // Window: closed for the BSUID until the person writes (by phone).
    let (_, b) = h.send_360(text_to(&bsuid, "too early")).await;
    h.advance(1.0).await;
    let st = status_value(&h, &wamid(&b), "failed").await;
    assert_eq!(st["statuses"][0]["errors"][0]["code"], 131047, "{st}");
    assert_eq!(st["contacts"], json!([{ "user_id": bsuid }]), "{st}");
    assert_eq!(st["statuses"][0]["recipient_user_id"], bsuid.as_str());
    inbound(&h, USER).await;
    let (_, b) = h.send_360(text_to(&bsuid, "now it goes")).await;
    h.advance(2.0).await;
    status_value(&h, &wamid(&b), "delivered").await;
    // Per-user marketing limit (2 per day): one by phone, one by BSUID, the third fails.
    let mut marketing = Vec::new();
    for (field, who) in [
        ("to", USER),
        ("recipient", bsuid.as_str()),
        ("recipient", bsuid.as_str()),
    ] {
        let (s, b) = h.send_360(template_to(field, who, "spring_sale")).await;
        assert_eq!(s, 200, "{b}");
        marketing.push(wamid(&b));
    }
    h.advance(2.0).await;
    let st = status_value(&h, &marketing[2], "failed").await;
    assert_eq!(st["statuses"][0]["errors"][0]["code"], 131049, "{st}");
    // Pair rate: the burst of 5 was spent on the person by both ids; the next is 131056.
    let (s, b) = h.send_360(text_to(&bsuid, "one more")).await;
    assert_eq!((s, &b["error"]["code"]), (429, &json!(131056)), "{b}");
    let (s, b) = h.send_360(common::text(USER, "by phone")).await;
    assert_eq!((s, &b["error"]["code"]), (429, &json!(131056)), "{b}");
    let (s, b) = h
        .control(
            Method::PATCH,
            "/rules",
            &json!({ "pair_rate": null, "marketing_limit": null, "holdout": true }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    // Opt-out, set on the person by BSUID: marketing by phone fails 131050.
    let (s, b) = h
        .control(
            Method::PUT,
            &format!("/users/{bsuid}"),
            &json!({ "marketing_opt_out": true }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (_, b) = h.send_360(template_to("to", USER, "spring_sale")).await;
    h.advance(2.0).await;
    let st = status_value(&h, &wamid(&b), "failed").await;
    assert_eq!(st["statuses"][0]["errors"][0]["code"], 131050, "{st}");
    // Holdout, outside any window (a day later): by BSUID, 130472.
    let (s, b) = h
        .control(
            Method::PUT,
            &format!("/users/{USER}"),
            &json!({ "marketing_opt_out": false, "holdout": true }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    h.advance(DAY + 1.0).await;
    let (_, b) = h
        .send_360(template_to("recipient", &bsuid, "spring_sale"))
        .await;
    h.advance(2.0).await;
    let st = status_value(&h, &wamid(&b), "failed").await;
    assert_eq!(st["statuses"][0]["errors"][0]["code"], 130472, "{st}");
    h.shutdown().await;
}

#[tokio::test]
async fn a_bsuid_in_to_is_dropped_by_default_or_refused_or_resolved() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    let bsuid = bsuid_of(&h, USER).await;
    let digits = bsuid[3..].to_string();
    let (s, b) = cloud(&h, "messages", &template_to("to", &bsuid, "hello_world")).await;
    assert_eq!(s, 200, "accepted, as the platform does: {b}");
    assert_eq!(b["contacts"], json!([{ "input": bsuid, "wa_id": digits }]));
    h.advance(1.0).await;
    let st = status_value(&h, &wamid(&b), "failed").await;
    assert_eq!(st["statuses"][0]["errors"][0]["code"], 131026, "{st}");
    assert_eq!(st["statuses"][0]["recipient_id"], digits.as_str());
    let (_, users) = h.control_get("/users").await;
    assert!(
        !users
            .to_string()
            .contains(&format!("\"wa_id\":\"{digits}\"")),
        "no user was made up: {users}"
    );
    h.shutdown().await;
    for (mode, want) in [(BsuidInTo::Reject, 400), (BsuidInTo::Resolve, 200)] {
        let mut cfg = config(&rx.url);
        cfg.bsuid.in_to = mode;
        let h = Harness::start(cfg).await;
        assert_eq!(bsuid_of(&h, USER).await, bsuid, "the same seed");
        let (s, b) = cloud(&h, "messages", &template_to("to", &bsuid, "hello_world")).await;
        assert_eq!(s, want, "{mode:?}: {b}");
        if want == 200 {
            assert_eq!(b["contacts"][0]["user_id"], bsuid.as_str());
        } else {
            assert_eq!(b["error"]["code"], 100);
        }
        h.shutdown().await;
    }
}

#[tokio::test]
async fn a_number_change_moves_the_person_to_a_new_bsuid() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    inbound(&h, USER).await;
    let old = bsuid_of(&h, USER).await;
    let (s, b) = h
        .control(
            Method::PUT,
            &format!("/users/{USER}"),
            &json!({ "marketing_opt_out": true }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, u) = h
        .control(
            Method::POST,
            &format!("/users/{old}/number"),
            &json!({ "new_wa_id": "4915198765432" }),
        )
        .await;
    assert_eq!(s, 200, "{u}");
    let new = u["user_ids"]["default"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert_eq!(
        u["behaviour"]["marketing_opt_out"], true,
        "the person's state moved"
    );
    let got = h.wait("field=user_id_update", 1).await;
    let update = attempt_body(&got[0])["entry"][0]["changes"][0]["value"].clone();
    assert_eq!(
        update["user_id_update"][0]["user_id"]["previous"],
        old.as_str()
    );
    assert_eq!(
        update["user_id_update"][0]["user_id"]["current"],
        new.as_str()
    );
    assert_eq!(update["user_id_update"][0]["wa_id"], "4915198765432");
    let got = h.wait("message_type=system", 1).await;
    let sys = attempt_body(&got[0])["entry"][0]["changes"][0]["value"].clone();
    assert_eq!(sys["messages"][0]["system"]["type"], "user_changed_user_id");
    assert_eq!(sys["messages"][0]["system"]["user_id"], new.as_str());
    // The new BSUID reaches the person; the old one reaches the old number, no longer on
    // WhatsApp.
    let (s, b) = h.send_360(text_to(&new, "welcome back")).await;
    assert_eq!(s, 200, "{b}");
    h.advance(2.0).await;
    status_value(&h, &wamid(&b), "delivered").await;
    let (s, b) = h.send_360(text_to(&old, "anyone?")).await;
    assert_eq!(s, 200, "{b}");
    h.advance(2.0).await;
    let st = status_value(&h, &wamid(&b), "failed").await;
    assert_eq!(st["statuses"][0]["errors"][0]["code"], 131026, "{st}");
    // A username user's change: no phone in the update or the system message.
    set_username(&h, "4915198765432", "anna.k").await;
    let (s, u) = h
        .control(
            Method::POST,
            "/users/4915198765432/number",
            &json!({ "new_wa_id": "4915100000009" }),
        )
        .await;
    assert_eq!(s, 200, "{u}");
    let got = h.wait("field=user_id_update", 2).await;
    let update = attempt_body(&got[1])["entry"][0]["changes"][0]["value"].clone();
    assert!(
        update["user_id_update"][0].get("wa_id").is_none(),
        "{update}"
    );
    assert!(update["contacts"][0].get("wa_id").is_none(), "{update}");
    let got = h.wait("message_type=system", 2).await;
    let sys = attempt_body(&got[1])["entry"][0]["changes"][0]["value"].clone();
    let m = &sys["messages"][0];
    // Neither phone was ever shared with the business (the exchanges were with the first
    // number): the system message names the old BSUID instead of `from`.
    assert!(m.get("from").is_none(), "{m}");
    assert_eq!(m["from_user_id"], new.as_str(), "{m}");
    assert!(!sys.to_string().contains("4915100000009"), "{sys}");
    // Refusals: unknown user, a number that is another user's.
    let (s, _) = h
        .control(
            Method::POST,
            "/users/4915100000055/number",
            &json!({ "new_wa_id": "4915100000056" }),
        )
        .await;
    assert_eq!(s, 404);
    inbound(&h, "4915100000077").await;
    let (s, b) = h
        .control(
            Method::POST,
            "/users/4915100000009/number",
            &json!({ "new_wa_id": "4915100000077" }),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    h.shutdown().await;
}

#[tokio::test]
async fn marketing_messages_api_on_both_dialects() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    let bsuid = bsuid_of(&h, USER).await;
    let (s, b) = cloud(
        &h,
        "marketing_messages",
        &template_to("to", USER, "spring_sale"),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["messages"][0]["message_status"], "accepted");
    assert_eq!(b["contacts"][0]["wa_id"], USER);
    h.advance(2.0).await;
    let st = status_value(&h, &wamid(&b), "sent").await;
    assert_eq!(
        st["statuses"][0]["pricing"],
        json!({ "billable": true, "pricing_model": "PMP", "type": "regular", "category": "marketing_lite" })
    );
    assert!(st["statuses"][0].get("conversation").is_none(), "v26: {st}");
    // 360dialog's path, by BSUID, with the API's own fields.
    let mut body = template_to("recipient", &bsuid, "new_arrivals");
    body["template"]["components"] = json!([
        { "type": "header", "parameters": [ { "type": "image", "image": { "link": "https://example.com/a.jpg" } } ] },
        { "type": "body", "parameters": [ { "type": "text", "text": "Ana" } ] } ]);
    body["product_policy"] = json!("STRICT");
    body["message_activity_sharing"] = json!(true);
    let (s, b) = h.post_360("/marketing_messages", &body).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["contacts"][0]["user_id"], bsuid.as_str());
    assert_eq!(b["messages"][0]["message_status"], "accepted");
    // Marketing templates only; with a bid_spec never by BSUID.
    let (s, b) = cloud(
        &h,
        "marketing_messages",
        &template_to("to", USER, "hello_world"),
    )
    .await;
    assert_eq!((s, &b["error"]["code"]), (400, &json!(100)), "{b}");
    let (s, b) = cloud(&h, "marketing_messages", &common::text(USER, "hi")).await;
    assert_eq!((s, &b["error"]["code"]), (400, &json!(100)), "{b}");
    let mut bid = template_to("recipient", &bsuid, "spring_sale");
    bid["bid_spec"] = json!({ "bid_amount": 1 });
    let (s, b) = cloud(&h, "marketing_messages", &bid).await;
    assert_eq!((s, &b["error"]["code"]), (400, &json!(131062)), "{b}");
    h.shutdown().await;
}

#[tokio::test]
async fn marketing_not_enabled_is_131063() {
    let rx = Receiver::start().await;
    let mut cfg = config(&rx.url);
    cfg.accounts = vec![AccountConfig {
        marketing_messages: false,
        ..AccountConfig::default()
    }];
    let h = Harness::start(cfg.clone()).await;
    let mut strict = template_to("to", USER, "spring_sale");
    strict["product_policy"] = json!("STRICT");
    let (s, b) = cloud(&h, "marketing_messages", &strict).await;
    assert_eq!((s, &b["error"]["code"]), (400, &json!(131063)), "{b}");
    // The default policy falls back to the Cloud API: marketing, not marketing_lite.
    let (s, b) = cloud(
        &h,
        "marketing_messages",
        &template_to("to", USER, "spring_sale"),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    h.advance(2.0).await;
    let st = status_value(&h, &wamid(&b), "sent").await;
    assert_eq!(st["statuses"][0]["pricing"]["category"], "marketing");
    h.shutdown().await;
    // Marketing disabled on the Cloud API: /messages refuses marketing templates, the Marketing
    // Messages API still sends them.
    cfg.accounts = vec![AccountConfig {
        marketing_on_cloud_api: false,
        ..AccountConfig::default()
    }];
    let h = Harness::start(cfg).await;
    let (s, b) = cloud(&h, "messages", &template_to("to", USER, "spring_sale")).await;
    assert_eq!((s, &b["error"]["code"]), (400, &json!(131063)), "{b}");
    assert_eq!(
        b["error"]["message"],
        "(#131063) Marketing templates disabled for Cloud API"
    );
    let (s, b) = cloud(&h, "messages", &template_to("to", USER, "hello_world")).await;
    assert_eq!(s, 200, "utility is not marketing: {b}");
    let (s, b) = cloud(
        &h,
        "marketing_messages",
        &template_to("to", USER, "spring_sale"),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    h.shutdown().await;
}

#[tokio::test]
async fn graph_versions_through_v26_and_messaging_account_id() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    for v in ["v17.0", "v24.0", "v25.0", "v26.0"] {
        let mut body = template_to("to", USER, "hello_world");
        body["messaging_account_id"] = json!("102290129340398");
        let (s, b) = h.post_cloud(&format!("/{v}/{PNID}/messages"), &body).await;
        assert_eq!(s, 200, "{v}: {b}");
    }
    let (s, b) = h
        .post_cloud(
            &format!("/v27.0/{PNID}/messages"),
            &template_to("to", USER, "hello_world"),
        )
        .await;
    assert_eq!((s, &b["error"]["code"]), (400, &json!(100)), "{b}");
    let r = h
        .http
        .get(format!("{}/v26.0/{PNID}", h.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["facebook-api-version"], "v26.0");
    // The deprecated alias too.
    let mut body = template_to("to", USER, "hello_world");
    body["paid_messaging_account_id"] = json!("102290129340398");
    let (s, b) = cloud(&h, "messages", &body).await;
    assert_eq!(s, 200, "{b}");
    let (_, m) = h.control_get(&format!("/messages/{}", wamid(&b))).await;
    assert!(
        m["timeline"]
            .to_string()
            .contains("messaging account 102290129340398"),
        "{m}"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn ids_usernames_and_the_contact_book_survive_a_restart() {
    let rx = Receiver::start().await;
    let dir = temp_dir("bsuid-restart");
    let mut cfg = config(&rx.url);
    cfg.data_dir = Some(dir.clone());
    let h = Harness::start(cfg.clone()).await;
    set_username(&h, USER, "anna.k").await;
    let (s, b) = h.send_360(template_to("to", USER, "hello_world")).await;
    assert_eq!(s, 200, "{b}");
    let bsuid = bsuid_of(&h, USER).await;
    let (_, before) = h.control_get("/portfolios").await;
    h.shutdown().await;
    let h = Harness::start(cfg).await;
    let (_, u) = h.control_get(&format!("/users/{bsuid}")).await;
    assert_eq!(u["wa_id"], USER, "found by BSUID after the restart: {u}");
    assert_eq!(u["username"], "anna.k");
    let (_, after) = h.control_get("/portfolios").await;
    assert_eq!(before, after, "the contact book is journalled");
    let (s, b) = cloud(&h, "messages", &text_to(&bsuid, "still you?")).await;
    assert_eq!(s, 200, "{b}");
    h.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
