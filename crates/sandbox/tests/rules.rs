//! The platform's delivery rules, one scenario each, on the manual clock over real HTTP: the
//! customer service window (131047), the US marketing block versus Canada (131049), the per-user
//! marketing limit (131049) and what an open conversation changes, the holdout (130472),
//! opt-out (131050, with its `user_preferences` webhook), and time-to-live drops.

mod common;
use common::*;
use mynah_sandbox::config::{Config, RulesConfig};
use reqwest::Method;
use serde_json::{Value, json};

/// The rules on, holdout decided per user only (so no test user falls into it by chance).
fn rules_config(url: &str) -> Config {
    let mut cfg = config(url);
    cfg.rules = RulesConfig {
        holdout_percent: 0.0,
        ..RulesConfig::default()
    };
    cfg
}

fn marketing(to: &str) -> Value {
    json!({ "messaging_product": "whatsapp", "to": to, "type": "template",
            "template": { "name": "spring_sale", "language": { "code": "en_US" } } })
}

fn otp(to: &str) -> Value {
    json!({ "messaging_product": "whatsapp", "to": to, "type": "template",
            "template": { "name": "verification_code", "language": { "code": "en_US" }, "components": [
                { "type": "body", "parameters": [ { "type": "text", "text": "482913" } ] },
                { "type": "button", "sub_type": "url", "index": "0", "parameters": [ { "type": "text", "text": "482913" } ] } ] } })
}

async fn accepted(h: &Harness, body: Value) -> String {
    let (s, b) = h.send_360(body).await;
    assert_eq!(s, 200, "{b}");
    b["messages"][0]["id"].as_str().unwrap().to_string()
}

/// The statuses received for a message, in order.
fn statuses_of(rx: &Receiver, wamid: &str) -> Vec<String> {
    rx.statuses()
        .into_iter()
        .filter(|(w, _)| w == wamid)
        .map(|(_, s)| s)
        .collect()
}

/// The error code of the `failed` status of a message.
fn failure_code(rx: &Receiver, wamid: &str) -> Option<i64> {
    for b in rx.bodies() {
        for s in b["entry"][0]["changes"][0]["value"]["statuses"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if s["id"] == wamid && s["status"] == "failed" {
                return s["errors"][0]["code"].as_i64();
            }
        }
    }
    None
}

/// Changes a user's behaviour (control API).
async fn set_user(h: &Harness, wa_id: &str, patch: Value) {
    let (s, b) = h
        .control(Method::PUT, &format!("/users/{wa_id}"), &patch)
        .await;
    assert_eq!(s, 200, "{b}");
}

async fn inbound(h: &Harness, from: &str) {
    let (s, b) = h
        .control(
            Method::POST,
            "/inbound",
            &json!({ "from": from, "type": "text", "text": { "body": "hi" } }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
}

#[tokio::test]
async fn free_form_needs_the_customer_service_window() {
    let rx = Receiver::start().await;
    let h = Harness::start(rules_config(&rx.url)).await;
    // Outside the window: accepted, then failed with 131047; nothing charged.
    let w = accepted(&h, text("4915100000001", "hello?")).await;
    h.advance(5.0).await;
    h.wait(&format!("wamid={w}&status=failed"), 1).await;
    assert_eq!(statuses_of(&rx, &w), vec!["failed"]);
    assert_eq!(failure_code(&rx, &w), Some(131047));
    // Inside the window (the user wrote): delivered and read.
    inbound(&h, "4915100000001").await;
    let w = accepted(&h, text("4915100000001", "hello!")).await;
    h.advance(10.0).await;
    h.wait(&format!("wamid={w}&status=read"), 1).await;
    assert_eq!(statuses_of(&rx, &w), vec!["sent", "delivered", "read"]);
    // 24 hours later the window is closed again.
    h.advance(24.0 * 3600.0).await;
    let w = accepted(&h, text("4915100000001", "still there?")).await;
    h.advance(5.0).await;
    h.wait(&format!("wamid={w}&status=failed"), 1).await;
    assert_eq!(failure_code(&rx, &w), Some(131047));
    h.shutdown().await;

    // Configured to answer synchronously instead.
    let rx = Receiver::start().await;
    let mut cfg = rules_config(&rx.url);
    cfg.rules.window_error_sync = true;
    let h = Harness::start(cfg).await;
    let (s, b) = h.send_360(text("4915100000001", "hello?")).await;
    assert_eq!((s, b["error"]["code"].as_i64()), (400, Some(131047)), "{b}");
    h.shutdown().await;
}

#[tokio::test]
async fn marketing_to_the_us_is_blocked_but_not_to_canada_even_inside_a_conversation() {
    let rx = Receiver::start().await;
    let h = Harness::start(rules_config(&rx.url)).await;
    let us = "+1 415 555 2671";
    let canada = "+1 416 555 0123";
    // The US user even wrote first: an open conversation lifts the per-user limit, not the block.
    inbound(&h, "14155552671").await;
    let w_us = accepted(&h, marketing(us)).await;
    let w_ca = accepted(&h, marketing(canada)).await;
    h.advance(10.0).await;
    h.wait(&format!("wamid={w_ca}&status=read"), 1).await;
    h.wait(&format!("wamid={w_us}&status=failed"), 1).await;
    assert_eq!(statuses_of(&rx, &w_us), vec!["failed"]);
    assert_eq!(failure_code(&rx, &w_us), Some(131049));
    assert_eq!(statuses_of(&rx, &w_ca), vec!["sent", "delivered", "read"]);
    // The failed one carried no pricing; the Canadian one is a charged marketing message.
    let (_, m) = h.control_get(&format!("/messages/{w_us}")).await;
    assert!(m.get("pricing").is_none(), "{m}");
    let (_, m) = h.control_get(&format!("/messages/{w_ca}")).await;
    assert_eq!(m["pricing"]["category"], "marketing");
    h.shutdown().await;
}

#[tokio::test]
async fn the_per_user_marketing_limit_and_what_a_response_changes() {
    let rx = Receiver::start().await;
    let h = Harness::start(rules_config(&rx.url)).await;
    let user = "4915100000002";
    // Default budget: 2 per 24 hours. The first opens a marketing conversation; the second,
    // without a response in between, counts too; the third is over the budget.
    let w1 = accepted(&h, marketing(user)).await;
    let w2 = accepted(&h, marketing(user)).await;
    let w3 = accepted(&h, marketing(user)).await;
    h.advance(10.0).await;
    h.wait(&format!("wamid={w3}&status=failed"), 1).await;
    assert_eq!(statuses_of(&rx, &w1), vec!["sent", "delivered", "read"]);
    assert_eq!(statuses_of(&rx, &w2), vec!["sent", "delivered", "read"]);
    assert_eq!(failure_code(&rx, &w3), Some(131049));
    // Inside the open marketing conversation, a response allows one more.
    inbound(&h, user).await;
    let w4 = accepted(&h, marketing(user)).await;
    let w5 = accepted(&h, marketing(user)).await;
    h.advance(10.0).await;
    h.wait(&format!("wamid={w5}&status=failed"), 1).await;
    assert_eq!(statuses_of(&rx, &w4), vec!["sent", "delivered", "read"]);
    assert_eq!(failure_code(&rx, &w5), Some(131049));
    // A day later the budget is back.
    h.advance(24.0 * 3600.0).await;
    let w6 = accepted(&h, marketing(user)).await;
    h.advance(10.0).await;
    h.wait(&format!("wamid={w6}&status=read"), 1).await;
    // Utility templates are not limited.
    let w7 = accepted(
        &h,
        json!({ "messaging_product": "whatsapp", "to": user, "type": "template",
                "template": { "name": "hello_world", "language": { "code": "en_US" } } }),
    )
    .await;
    h.advance(10.0).await;
    h.wait(&format!("wamid={w7}&status=read"), 1).await;
    h.shutdown().await;
}

#[tokio::test]
async fn the_holdout_gets_no_marketing_unless_a_conversation_is_open() {
    let rx = Receiver::start().await;
    let h = Harness::start(rules_config(&rx.url)).await;
    let user = "4915100000003";
    set_user(&h, user, json!({ "holdout": true })).await;
    let w1 = accepted(&h, marketing(user)).await;
    h.advance(10.0).await;
    h.wait(&format!("wamid={w1}&status=failed"), 1).await;
    assert_eq!(failure_code(&rx, &w1), Some(130472));
    inbound(&h, user).await;
    let w2 = accepted(&h, marketing(user)).await;
    h.advance(10.0).await;
    h.wait(&format!("wamid={w2}&status=read"), 1).await;
    h.shutdown().await;
}

#[tokio::test]
async fn an_opted_out_user_gets_no_marketing_and_the_business_is_told() {
    let rx = Receiver::start().await;
    let h = Harness::start(rules_config(&rx.url)).await;
    let user = "4915100000004";
    set_user(&h, user, json!({ "marketing_opt_out": true })).await;
    let got = h.wait("field=user_preferences", 1).await;
    let body: Value = attempt_body(&got[0]);
    let pref = &body["entry"][0]["changes"][0]["value"]["user_preferences"][0];
    assert_eq!(
        (pref["wa_id"].as_str(), pref["value"].as_str()),
        (Some(user), Some("stop"))
    );
    assert_eq!(pref["category"], "marketing_messages");
    let w = accepted(&h, marketing(user)).await;
    h.advance(10.0).await;
    h.wait(&format!("wamid={w}&status=failed"), 1).await;
    assert_eq!(failure_code(&rx, &w), Some(131050));
    // Resuming lets marketing through again.
    set_user(&h, user, json!({ "marketing_opt_out": false })).await;
    h.wait("field=user_preferences", 2).await;
    let w = accepted(&h, marketing(user)).await;
    h.advance(10.0).await;
    h.wait(&format!("wamid={w}&status=read"), 1).await;
    h.shutdown().await;
}

#[tokio::test]
async fn a_one_time_password_is_dropped_after_ten_minutes_offline() {
    let rx = Receiver::start().await;
    let h = Harness::start(rules_config(&rx.url)).await;
    let user = "4915100000005";
    set_user(&h, user, json!({ "offline_for_seconds": 3600 })).await;
    let code = accepted(&h, otp(user)).await;
    // A free-form message in an open window lives 30 days: it waits for the user.
    inbound(&h, user).await;
    let note = accepted(&h, text(user, "your code is on its way")).await;
    h.advance(11.0 * 60.0).await;
    let (_, m) = h.control_get(&format!("/messages/{code}")).await;
    let events: Vec<&str> = m["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert!(events.contains(&"dropped"), "{events:?}");
    assert!(m.get("next").is_none(), "nothing more will happen: {m}");
    // The user comes back within the hour: the note is delivered, the code never is.
    h.advance(3600.0).await;
    h.wait(&format!("wamid={note}&status=read"), 1).await;
    assert_eq!(
        statuses_of(&rx, &code),
        vec!["sent"],
        "no delivered, no failed: dropped silently"
    );
    h.shutdown().await;
}

fn hello(to: &str) -> Value {
    json!({ "messaging_product": "whatsapp", "to": to, "type": "template",
            "template": { "name": "hello_world", "language": { "code": "en_US" } } })
}

#[tokio::test]
async fn the_pair_rate_limit_and_the_numbers_throughput() {
    let rx = Receiver::start().await;
    let mut cfg = rules_config(&rx.url);
    cfg.limits.profile = mynah_sandbox::config::LimitProfile::Unlimited;
    let h = Harness::start(cfg).await;
    // 45 in a burst to one user, then 131056 until the time is earned back (one per 6 s).
    for i in 0..45 {
        let (s, b) = h.send_360(hello("4915100000010")).await;
        assert_eq!(s, 200, "message {i}: {b}");
    }
    let (s, b) = h.send_360(hello("4915100000010")).await;
    assert_eq!((s, b["error"]["code"].as_i64()), (429, Some(131056)), "{b}");
    // Other users are not affected.
    let (s, _) = h.send_360(hello("4915100000011")).await;
    assert_eq!(s, 200);
    h.advance(6.0).await;
    let (s, _) = h.send_360(hello("4915100000010")).await;
    assert_eq!(s, 200, "one more after 6 s");
    let (s, _) = h.send_360(hello("4915100000010")).await;
    assert_eq!(s, 429);
    h.advance(60.0).await;
    // 80 messages per second per number (the bucket is full again after the minute): 80 go at
    // once, the 81st is refused with 130429.
    let mut refused = None;
    for i in 0..100 {
        let (s, b) = h.send_360(hello(&format!("49151000001{i:02}"))).await;
        if s != 200 {
            refused = Some((i, s, b["error"]["code"].as_i64()));
            break;
        }
    }
    assert_eq!(refused, Some((80, 429, Some(130429))));
    h.shutdown().await;
}

#[tokio::test]
async fn magic_numbers_behave_without_any_setup() {
    let rx = Receiver::start().await;
    let h = Harness::start(rules_config(&rx.url)).await;
    let (_, table) = h.control_get("/magic").await;
    assert!(table["magic"].as_array().unwrap().len() >= 10, "{table}");
    let not_on_whatsapp = accepted(&h, hello("+999 00000131026")).await;
    let marketing_blocked = accepted(&h, marketing("+99900000131049")).await;
    let holdout = accepted(&h, marketing("+99900000130472")).await;
    let opted_out = accepted(&h, marketing("+99900000131050")).await;
    let never_reads = accepted(&h, hello("+99900000000001")).await;
    let offline_day = accepted(&h, otp("+99900000000002")).await;
    let (s, b) = h.send_360(hello("+99900000131056")).await;
    assert_eq!((s, b["error"]["code"].as_i64()), (429, Some(131056)), "{b}");
    h.advance(3600.0).await;
    h.wait(&format!("wamid={never_reads}&status=delivered"), 1)
        .await;
    assert_eq!(failure_code(&rx, &not_on_whatsapp), Some(131026));
    assert_eq!(failure_code(&rx, &marketing_blocked), Some(131049));
    assert_eq!(failure_code(&rx, &holdout), Some(130472));
    assert_eq!(failure_code(&rx, &opted_out), Some(131050));
    assert_eq!(statuses_of(&rx, &never_reads), vec!["sent", "delivered"]);
    assert_eq!(
        statuses_of(&rx, &offline_day),
        vec!["sent"],
        "the one-time password was dropped"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn the_control_api_explains_a_messages_fate() {
    let rx = Receiver::start().await;
    let h = Harness::start(rules_config(&rx.url)).await;
    let us = accepted(&h, marketing("+1 415 555 2671")).await;
    let de = accepted(&h, marketing("+49 151 00000020")).await;
    h.advance(10.0).await;
    h.wait(&format!("wamid={de}&status=read"), 1).await;
    let (s, e) = h.control_get(&format!("/messages/{us}/explain")).await;
    assert_eq!(s, 200, "{e}");
    assert!(
        e["fate"].as_str().unwrap().starts_with("failed: 131049"),
        "{e}"
    );
    let because: Vec<&str> = e["because"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        because.iter().any(|b| b.starts_with("US block")),
        "{because:?}"
    );
    let (_, e) = h.control_get(&format!("/messages/{de}/explain")).await;
    assert_eq!(e["fate"], "read (final)", "{e}");
    let because: Vec<&str> = e["because"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        because.contains(&"US block: region DE, not the United States"),
        "{because:?}"
    );
    assert!(
        because
            .iter()
            .any(|b| b.starts_with("per-user marketing limit: 1 of 2")),
        "{because:?}"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn fault_rules_answer_fail_later_and_count() {
    let rx = Receiver::start().await;
    let h = Harness::start(rules_config(&rx.url)).await;
    let user = "4915100000030";
    let (s, b) = h
        .control(
            Method::POST,
            "/faults",
            &json!({ "id": "second-fails", "match": { "to": user, "nth": 2 }, "action": { "code": 131000, "http_status": 500, "details": "injected" } }),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = h
        .control(
            Method::POST,
            "/faults",
            &json!({ "match": { "template": "hello_world", "dialect": "cloud" }, "action": { "async_code": 131026 }, "times": 1 }),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    accepted(&h, hello(user)).await;
    let (s, b) = h.send_360(hello(user)).await;
    assert_eq!((s, b["error"]["code"].as_i64()), (500, Some(131000)), "{b}");
    assert_eq!(b["error"]["error_data"]["details"], "injected");
    accepted(&h, hello(user)).await;
    // The asynchronous fault: accepted on the Cloud dialect, then failed.
    let (s, b) = h.send_cloud(hello("4915100000031")).await;
    assert_eq!(s, 200, "{b}");
    let failing = b["messages"][0]["id"].as_str().unwrap().to_string();
    let (s, b) = h.send_cloud(hello("4915100000032")).await;
    assert_eq!(s, 200, "once only: {b}");
    let fine = b["messages"][0]["id"].as_str().unwrap().to_string();
    h.advance(10.0).await;
    h.wait(&format!("wamid={fine}&status=read"), 1).await;
    h.wait(&format!("wamid={failing}&status=failed"), 1).await;
    assert_eq!(failure_code(&rx, &failing), Some(131026));
    let (_, list) = h.control_get("/faults").await;
    let first = &list["faults"][0];
    assert_eq!(
        (
            first["id"].as_str(),
            first["seen"].as_u64(),
            first["fired"].as_u64()
        ),
        (Some("second-fails"), Some(3), Some(1))
    );
    // Bad rules are refused; deleting clears.
    let (s, _) = h
        .control(
            Method::POST,
            "/faults",
            &json!({ "action": { "code": 42424242 } }),
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = h.control(Method::DELETE, "/faults", &json!({})).await;
    assert_eq!(s, 200);
    let (_, list) = h.control_get("/faults").await;
    assert_eq!(list["faults"], json!([]));
    h.shutdown().await;
}

#[tokio::test]
async fn dropped_connections_before_and_after_acceptance() {
    let rx = Receiver::start().await;
    let h = Harness::start(rules_config(&rx.url)).await;
    for (to, when) in [("4915100000040", "before"), ("4915100000041", "after")] {
        let (s, b) = h
            .control(
                Method::POST,
                "/faults",
                &json!({ "match": { "to": to }, "action": { "drop_connection": when }, "times": 1 }),
            )
            .await;
        assert_eq!(s, 201, "{b}");
    }
    // The client gets no answer at all: the connection closes mid-response.
    for to in ["4915100000040", "4915100000041"] {
        let sent = h
            .http
            .post(format!("{}/messages", h.base))
            .header("D360-API-KEY", KEY)
            .json(&hello(to))
            .send()
            .await;
        let outcome = match sent {
            Err(e) => Err(e),
            Ok(r) => r.bytes().await.map(|_| ()),
        };
        assert!(outcome.is_err(), "{to}: the answer should be cut off");
    }
    h.advance(10.0).await;
    h.drain().await;
    // Dropped before: nothing happened. Dropped after: the message went out anyway.
    let (_, list) = h.control_get("/messages?wa_id=4915100000040").await;
    assert_eq!(list["messages"].as_array().map(Vec::len), Some(0), "{list}");
    let (_, list) = h.control_get("/messages?wa_id=4915100000041").await;
    let msgs = list["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 1, "{list}");
    let wamid = msgs[0]["id"].as_str().unwrap();
    assert_eq!(statuses_of(&rx, wamid), ["sent", "delivered", "read"]);
    // Once only: the next sends are answered.
    accepted(&h, hello("4915100000040")).await;
    h.shutdown().await;
}

#[tokio::test]
async fn rules_can_be_switched_through_the_control_api() {
    let rx = Receiver::start().await;
    let h = Harness::start(rules_config(&rx.url)).await;
    let (_, rules) = h.control_get("/rules").await;
    assert_eq!(rules["customer_service_window"], true);
    let (s, rules) = h
        .control(
            Method::PATCH,
            "/rules",
            &json!({ "customer_service_window": false, "pair_rate": null }),
        )
        .await;
    assert_eq!(s, 200, "{rules}");
    assert_eq!(
        (
            rules["customer_service_window"].as_bool(),
            rules["us_marketing_block"].as_bool()
        ),
        (Some(false), Some(true))
    );
    let w = accepted(&h, text("4915100000040", "no window needed now")).await;
    for _ in 0..60 {
        accepted(&h, hello("4915100000041")).await;
    }
    h.advance(10.0).await;
    h.wait(&format!("wamid={w}&status=read"), 1).await;
    let (s, b) = h
        .control(Method::PATCH, "/rules", &json!({ "no_such_rule": true }))
        .await;
    assert_eq!(s, 400, "{b}");
    // Reset brings the configured rules back.
    h.control(Method::POST, "/reset", &json!({})).await;
    let (_, rules) = h.control_get("/rules").await;
    assert_eq!(rules["customer_service_window"], true);
    h.shutdown().await;
}

#[tokio::test]
async fn a_click_to_whatsapp_reply_opens_a_free_entry_point_window() {
    let rx = Receiver::start().await;
    let h = Harness::start(rules_config(&rx.url)).await;
    let user = "4915100000050";
    let (s, b) = h
        .control(
            Method::POST,
            "/inbound",
            &json!({ "from": user, "type": "text", "text": { "body": "Saw your ad" },
                     "referral": { "source_url": "https://fb.me/abc", "source_id": "120211111111", "source_type": "ad",
                                   "headline": "Spring", "body": "Ad text", "ctwa_clid": "ARAkLkA" } }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    // The business replies within 24 hours: a 72-hour free entry point window opens, in which
    // even marketing templates are free, and statuses carry the conversation (v24 too).
    let reply = accepted(&h, text(user, "Thanks for writing!")).await;
    let (s, b) = h
        .post_cloud(&format!("/v24.0/{PNID}/messages"), &marketing(user))
        .await;
    assert_eq!(s, 200, "{b}");
    let promo = b["messages"][0]["id"].as_str().unwrap().to_string();
    h.advance(10.0).await;
    h.wait(&format!("wamid={promo}&status=sent"), 1).await;
    h.wait(&format!("wamid={reply}&status=sent"), 1).await;
    for w in [&reply, &promo] {
        let (_, m) = h.control_get(&format!("/messages/{w}")).await;
        assert_eq!(m["pricing"]["type"], "free_entry_point", "{m}");
        assert_eq!(m["pricing"]["billable"], false);
    }
    let got = h.wait(&format!("wamid={promo}&status=sent"), 1).await;
    let body: Value = attempt_body(&got[0]);
    let status = &body["entry"][0]["changes"][0]["value"]["statuses"][0];
    assert_eq!(
        status["conversation"]["origin"]["type"], "referral_conversion",
        "{status}"
    );
    // Inside a free entry point window the category is `referral_conversion` (2026 note §3).
    assert_eq!(status["pricing"]["category"], "referral_conversion");
    // 72 hours later the window is over: marketing is charged again.
    h.advance(72.0 * 3600.0).await;
    let late = accepted(&h, marketing(user)).await;
    let (_, m) = h.control_get(&format!("/messages/{late}")).await;
    assert_eq!(
        (
            m["pricing"]["type"].as_str(),
            m["pricing"]["billable"].as_bool()
        ),
        (Some("regular"), Some(true)),
        "{m}"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn the_messaging_limit_counts_unique_users_started_outside_the_window() {
    let rx = Receiver::start().await;
    let mut cfg = rules_config(&rx.url);
    cfg.rules.messaging_limit = Some(mynah_sandbox::config::MessagingLimit {
        unique_users: 3,
        window_ms: 24 * 3_600_000,
        code: 131048,
        sync: false,
    });
    let h = Harness::start(cfg).await;
    for user in ["4915100000061", "4915100000062", "4915100000063"] {
        accepted(&h, hello(user)).await;
    }
    // The same users again do not count twice; a user who wrote first does not count.
    accepted(&h, hello("4915100000061")).await;
    inbound(&h, "4915100000064").await;
    let inside = accepted(&h, hello("4915100000064")).await;
    // A fourth user started outside the window is over the limit.
    let over = accepted(&h, hello("4915100000065")).await;
    h.advance(10.0).await;
    h.wait(&format!("wamid={over}&status=failed"), 1).await;
    h.wait(&format!("wamid={inside}&status=read"), 1).await;
    assert_eq!(failure_code(&rx, &over), Some(131048));
    let (_, e) = h.control_get(&format!("/messages/{over}/explain")).await;
    assert!(
        e["because"].as_array().unwrap().iter().any(|b| b
            .as_str()
            .unwrap()
            .starts_with("messaging limit: 3 unique users")),
        "{e}"
    );
    // A day later there is room again.
    h.advance(24.0 * 3600.0).await;
    let later = accepted(&h, hello("4915100000065")).await;
    h.advance(10.0).await;
    h.wait(&format!("wamid={later}&status=read"), 1).await;
    h.shutdown().await;
}

/// The window is rebuilt from the messages it counted, in memory or (past
/// `retention.hot_messages`) in the journal only.
#[tokio::test]
async fn the_messaging_limit_window_survives_a_restart() {
    for hot in [20_000, 1] {
        limit_window_survives_a_restart(hot).await;
    }
}

async fn limit_window_survives_a_restart(hot: usize) {
    let rx = Receiver::start().await;
    let mut cfg = rules_config(&rx.url);
    cfg.data_dir = Some(temp_dir(&format!("limit-restart-{hot}")));
    cfg.retention.hot_messages = hot;
    cfg.rules.messaging_limit = Some(mynah_sandbox::config::MessagingLimit {
        unique_users: 1,
        window_ms: 24 * 3_600_000,
        code: 131048,
        sync: true,
    });
    let h = Harness::start(cfg.clone()).await;
    accepted(&h, hello("4915100000071")).await;
    // Later messages (from another user: not counted) push the counted one out of memory when
    // `hot` is 1.
    h.advance(60.0).await;
    for _ in 0..3 {
        inbound(&h, "4915100000073").await;
    }
    let (_, health) = h.control_get("/health").await;
    assert_eq!(
        health["messages"]["journal"].as_u64().unwrap() > 0,
        hot == 1,
        "{health}"
    );
    h.shutdown().await;
    let h = Harness::start(cfg).await;
    let (s, b) = h.send_360(hello("4915100000072")).await;
    assert_eq!(
        (s, b["error"]["code"].as_i64()),
        (429, Some(131048)),
        "the user counted before the restart still fills the tier: {b}"
    );
    accepted(&h, hello("4915100000071")).await;
    h.shutdown().await;
}
