//! Quality and pacing on the manual clock over real HTTP: users' reactions move template quality
//! (pauses) and the number's rating and tier (with their webhooks); pacing holds messages and
//! releases them on good feedback, drops them with 132015 on bad feedback, lets them go after the
//! time limit, and obeys forced verdicts; utility templates are paced only after a utility pause.

mod common;
use common::*;
use mynah_sandbox::config::{Config, MessagingLimit, PacingConfig, PacingVerdict, Reactions};
use reqwest::Method;
use serde_json::{Value, json};

/// Rules off but pacing on with a small sample, and every user reacting with `reactions`.
fn pacing_config(url: &str, threshold: u32, verdict: PacingVerdict, r: Reactions) -> Config {
    let mut cfg = config(url);
    cfg.rules.pacing = Some(PacingConfig {
        threshold,
        verdict,
        min_signals: 3,
        ..PacingConfig::default()
    });
    // Template quality itself needs more signals than the pacing verdict.
    cfg.rules.quality.min_signals = 100;
    cfg.users.default.reactions = Some(r);
    cfg
}

fn reading() -> Reactions {
    Reactions {
        read: 1.0,
        ..Reactions::default()
    }
}

fn blocking() -> Reactions {
    Reactions {
        block: 1.0,
        ..Reactions::default()
    }
}

/// Creates a template and lets its review approve it; returns its id.
async fn approved(h: &Harness, name: &str, category: &str) -> String {
    let (s, b) = h
        .post_360(
            "/v1/configs/templates",
            &json!({
                "name": name, "language": "en_US", "category": category,
                "components": [ { "type": "body", "text": "Hello, this week we have something new for you in every shop." } ]
            }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    h.advance(61.0).await;
    b["id"].as_str().unwrap().to_string()
}

fn send_body(name: &str, to: &str) -> Value {
    json!({ "messaging_product": "whatsapp", "to": to, "type": "template",
            "template": { "name": name, "language": { "code": "en_US" } } })
}

fn user(i: usize) -> String {
    format!("49151123400{i:02}")
}

/// Sends `name` to `n` users; returns (wamid, message_status) of each.
async fn send_many(h: &Harness, name: &str, from: usize, n: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for i in from..from + n {
        let (s, b) = h.send_360(send_body(name, &user(i))).await;
        assert_eq!(s, 200, "{b}");
        out.push((
            b["messages"][0]["id"].as_str().unwrap().to_string(),
            b["messages"][0]["message_status"]
                .as_str()
                .unwrap()
                .to_string(),
        ));
    }
    out
}

fn statuses_of(rx: &Receiver, wamid: &str) -> Vec<String> {
    rx.statuses()
        .into_iter()
        .filter(|(w, _)| w == wamid)
        .map(|(_, s)| s)
        .collect()
}

/// Every change value received for a subscription field, in arrival order.
fn changes(rx: &Receiver, field: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for b in rx.bodies() {
        for e in b["entry"].as_array().into_iter().flatten() {
            for c in e["changes"].as_array().into_iter().flatten() {
                if c["field"] == field {
                    out.push(c["value"].clone());
                }
            }
        }
    }
    out
}

fn failure_code(rx: &Receiver, wamid: &str) -> Option<i64> {
    rx.bodies().iter().find_map(|b| {
        b["entry"][0]["changes"][0]["value"]["statuses"]
            .as_array()?
            .iter()
            .find(|s| s["id"] == wamid && s["status"] == "failed")
            .and_then(|s| s["errors"][0]["code"].as_i64())
    })
}

#[tokio::test]
async fn pacing_holds_then_good_feedback_releases() {
    let rx = Receiver::start().await;
    let h = Harness::start(pacing_config(&rx.url, 3, PacingVerdict::Signals, reading())).await;
    approved(&h, "autumn_news", "MARKETING").await;
    let sent = send_many(&h, "autumn_news", 0, 5).await;
    let kinds: Vec<&str> = sent.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "accepted",
            "accepted",
            "accepted",
            "held_for_quality_assessment",
            "held_for_quality_assessment"
        ]
    );
    // The exact response of a held message.
    let (_, b) = h.send_360(send_body("autumn_news", &user(9))).await;
    let wamid = b["messages"][0]["id"].as_str().unwrap();
    assert_eq!(
        b,
        json!({ "messaging_product": "whatsapp",
                "contacts": [ { "input": user(9), "wa_id": user(9) } ],
                "messages": [ { "id": wamid, "message_status": "held_for_quality_assessment" } ] })
    );
    // Three reads are the good signal: released, quality GREEN, then the normal lifecycle.
    h.advance(5.0).await;
    h.drain().await;
    for (wamid, _) in &sent[3..] {
        assert_eq!(
            statuses_of(&rx, wamid),
            ["sent", "delivered", "read"],
            "{wamid}"
        );
    }
    let quality = changes(&rx, "message_template_quality_update");
    assert_eq!(quality.len(), 1, "{quality:?}");
    assert_eq!(quality[0]["previous_quality_score"], "UNKNOWN");
    assert_eq!(quality[0]["new_quality_score"], "GREEN");
    // The explanation names pacing.
    let (_, x) = h
        .control_get(&format!("/messages/{}/explain", sent[3].0))
        .await;
    let text = x.to_string();
    assert!(text.contains("held for quality assessment"), "{text}");
    assert!(text.contains("released"), "{text}");
    // GREEN now: no more pacing.
    let more = send_many(&h, "autumn_news", 20, 2).await;
    assert!(more.iter().all(|(_, s)| s == "accepted"), "{more:?}");
    h.shutdown().await;
}

#[tokio::test]
async fn pacing_bad_feedback_pauses_and_drops_held_messages() {
    let rx = Receiver::start().await;
    let h = Harness::start(pacing_config(
        &rx.url,
        3,
        PacingVerdict::Signals,
        blocking(),
    ))
    .await;
    let id = approved(&h, "winter_deals", "MARKETING").await;
    let sent = send_many(&h, "winter_deals", 0, 5).await;
    assert_eq!(sent[4].1, "held_for_quality_assessment");
    h.advance(5.0).await;
    h.drain().await;
    // The sample was blocked: paused (no timer: pacing pauses are lifted by hand), held messages
    // failed with 132015, not charged.
    for (wamid, _) in &sent[3..] {
        assert_eq!(statuses_of(&rx, wamid), ["failed"]);
        assert_eq!(failure_code(&rx, wamid), Some(132015));
    }
    for (wamid, _) in &sent[..3] {
        assert_eq!(statuses_of(&rx, wamid), ["sent", "delivered"]);
    }
    let status = changes(&rx, "message_template_status_update");
    let last = status.last().unwrap();
    assert_eq!(last["event"], "PAUSED");
    let quality = changes(&rx, "message_template_quality_update");
    assert_eq!(quality.last().unwrap()["new_quality_score"], "RED");
    let failed: Vec<Value> = rx
        .bodies()
        .iter()
        .filter_map(|b| {
            let s = &b["entry"][0]["changes"][0]["value"]["statuses"][0];
            (s["status"] == "failed").then(|| s.clone())
        })
        .collect();
    assert!(
        failed.iter().all(|s| s.get("pricing").is_none()),
        "{failed:?}"
    );
    h.advance(7.0 * 3600.0).await;
    let (s, b) = h.send_360(send_body("winter_deals", &user(30))).await;
    assert_eq!(
        (s, b["error"]["code"].as_i64()),
        (400, Some(132015)),
        "still paused hours later: {b}"
    );
    // Unpaused by hand (Cloud API), it sends again.
    let (s, b) = h
        .post_cloud(&format!("/v23.0/{id}/unpause"), &json!({}))
        .await;
    assert_eq!((s, &b), (200, &json!({ "success": true })));
    h.drain().await;
    let status = changes(&rx, "message_template_status_update");
    let last = status.last().unwrap();
    assert_eq!(
        (last["event"].as_str(), last["other_info"]["title"].as_str()),
        (Some("APPROVED"), Some("UNPAUSE"))
    );
    let (s, b) = h.send_360(send_body("winter_deals", &user(31))).await;
    assert_eq!(s, 200, "{b}");
    h.shutdown().await;
}

#[tokio::test]
async fn without_a_verdict_held_messages_go_out_within_the_hour() {
    let rx = Receiver::start().await;
    let h = Harness::start(pacing_config(&rx.url, 1, PacingVerdict::Wait, reading())).await;
    approved(&h, "quiet_launch", "MARKETING").await;
    let sent = send_many(&h, "quiet_launch", 0, 2).await;
    assert_eq!(sent[1].1, "held_for_quality_assessment");
    h.advance(3599.0).await;
    h.drain().await;
    assert!(statuses_of(&rx, &sent[1].0).is_empty());
    h.advance(1.0).await;
    h.advance(5.0).await;
    h.drain().await;
    assert_eq!(statuses_of(&rx, &sent[1].0), ["sent", "delivered", "read"]);
    h.shutdown().await;
}

#[tokio::test]
async fn utility_is_paced_only_after_a_utility_pause_and_verdicts_can_be_forced() {
    let rx = Receiver::start().await;
    let h = Harness::start(pacing_config(&rx.url, 0, PacingVerdict::Wait, reading())).await;
    let id = approved(&h, "parcel_notice", "UTILITY").await;
    // A new utility template is not paced while no utility template was paused.
    let sent = send_many(&h, "parcel_notice", 0, 1).await;
    assert_eq!(sent[0].1, "accepted");
    // Another utility template pauses: for 7 days utility templates are paced too.
    let (_, all) = h.control_get("/templates").await;
    let order_update = all["templates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["def"]["name"] == "order_update")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _) = h
        .control(
            Method::POST,
            &format!("/templates/{order_update}/quality"),
            &json!({ "score": "RED" }),
        )
        .await;
    assert_eq!(s, 200);
    let held = send_many(&h, "parcel_notice", 1, 1).await;
    assert_eq!(held[0].1, "held_for_quality_assessment");
    // A forced verdict releases it.
    let (s, t) = h
        .control(
            Method::POST,
            &format!("/templates/{id}/pacing"),
            &json!({ "verdict": "release" }),
        )
        .await;
    assert_eq!((s, t["quality"].as_str()), (200, Some("GREEN")), "{t}");
    h.advance(5.0).await;
    h.drain().await;
    assert_eq!(statuses_of(&rx, &held[0].0), ["sent", "delivered", "read"]);
    // Eight days later, a fresh utility template is not paced again.
    h.advance(8.0 * 86_400.0).await;
    approved(&h, "parcel_notice_two", "UTILITY").await;
    let later = send_many(&h, "parcel_notice_two", 2, 1).await;
    assert_eq!(later[0].1, "accepted");
    // A bad verdict value is refused clearly.
    let (s, b) = h
        .control(
            Method::POST,
            &format!("/templates/{id}/pacing"),
            &json!({ "verdict": "maybe" }),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    h.shutdown().await;
}

#[tokio::test]
async fn the_held_for_quality_magic_number_waits_for_the_time_limit() {
    let rx = Receiver::start().await;
    let mut cfg = config(&rx.url);
    cfg.rules.pacing = Some(PacingConfig::default());
    let h = Harness::start(cfg).await;
    let (s, b) = h.send_360(send_body("spring_sale", "99900000000007")).await;
    assert_eq!(s, 200);
    assert_eq!(
        b["messages"][0]["message_status"],
        "held_for_quality_assessment"
    );
    let wamid = b["messages"][0]["id"].as_str().unwrap().to_string();
    h.advance(3600.0).await;
    h.advance(5.0).await;
    h.drain().await;
    assert_eq!(statuses_of(&rx, &wamid), ["sent", "delivered", "read"]);
    h.shutdown().await;
}

#[tokio::test]
async fn reports_pause_the_template_and_flag_then_downgrade_the_number() {
    let rx = Receiver::start().await;
    let mut cfg = config(&rx.url);
    cfg.rules.quality.min_signals = 5;
    cfg.rules.messaging_limit = Some(MessagingLimit {
        unique_users: 2_000,
        window_ms: 86_400_000,
        code: 131_048,
        sync: false,
    });
    cfg.users.default.reactions = Some(Reactions {
        report: 1.0,
        ..Reactions::default()
    });
    let h = Harness::start(cfg).await;
    let sent = send_many(&h, "spring_sale", 0, 5).await;
    h.advance(5.0).await;
    h.drain().await;
    // Each user reported and so blocked the business.
    let (_, u) = h.control_get(&format!("/users/{}", user(0))).await;
    assert_eq!(u["behaviour"]["blocks_business"], true, "{u}");
    let (_, m) = h.control_get(&format!("/messages/{}", sent[0].0)).await;
    assert_eq!(m["reaction"], "report", "{m}");
    // The template went RED and paused for 3 hours.
    let quality = changes(&rx, "message_template_quality_update");
    assert_eq!(
        (
            quality[0]["previous_quality_score"].as_str(),
            quality[0]["new_quality_score"].as_str()
        ),
        (Some("GREEN"), Some("RED"))
    );
    let status = changes(&rx, "message_template_status_update");
    assert_eq!(
        (
            status[0]["event"].as_str(),
            status[0]["other_info"]["title"].as_str()
        ),
        (Some("PAUSED"), Some("FIRST_PAUSE"))
    );
    // The number was flagged.
    let number = changes(&rx, "phone_number_quality_update");
    assert_eq!(
        number,
        [
            json!({ "display_phone_number": mynah_sandbox::config::DEV_DISPLAY_NUMBER,
                 "event": "FLAGGED", "max_daily_conversations_per_business": "TIER_2K" })
        ]
    );
    let (_, n) = h.get_cloud(&format!("/v23.0/{PNID}")).await;
    assert_eq!(n["quality_rating"], "RED");
    // Still RED a week later: one tier down.
    h.advance(7.0 * 86_400.0).await;
    h.drain().await;
    let number = changes(&rx, "phone_number_quality_update");
    assert_eq!(number.len(), 2, "{number:?}");
    assert_eq!(number[1]["event"], "DOWNGRADE");
    assert_eq!(
        number[1]["max_daily_conversations_per_business"],
        "TIER_250"
    );
    let (_, n) = h.get_cloud(&format!("/v23.0/{PNID}")).await;
    assert_eq!(n["whatsapp_business_manager_messaging_limit"], "TIER_250");
    // Back to GREEN (forced): unflagged.
    let (s, _) = h
        .control(
            Method::POST,
            &format!("/numbers/{PNID}/quality"),
            &json!({ "rating": "GREEN" }),
        )
        .await;
    assert_eq!(s, 200);
    h.drain().await;
    let number = changes(&rx, "phone_number_quality_update");
    assert_eq!(number[2]["event"], "UNFLAGGED");
    h.shutdown().await;
}

#[tokio::test]
async fn a_green_number_that_uses_half_its_tier_moves_up() {
    let rx = Receiver::start().await;
    let mut cfg = config(&rx.url);
    cfg.rules.messaging_limit = Some(MessagingLimit {
        unique_users: 4,
        window_ms: 86_400_000,
        code: 131_048,
        sync: false,
    });
    let h = Harness::start(cfg).await;
    send_many(&h, "hello_world", 0, 2).await;
    h.advance(6.0 * 3600.0 - 1.0).await;
    h.drain().await;
    assert!(changes(&rx, "phone_number_quality_update").is_empty());
    h.advance(1.0).await;
    h.drain().await;
    let number = changes(&rx, "phone_number_quality_update");
    assert_eq!(number.len(), 1, "{number:?}");
    assert_eq!(number[0]["event"], "UPGRADE");
    assert_eq!(
        number[0]["max_daily_conversations_per_business"],
        "TIER_250"
    );
    // The new tier holds: users 3 to 6 are within it.
    let more = send_many(&h, "hello_world", 2, 4).await;
    h.advance(5.0).await;
    h.drain().await;
    for (wamid, _) in &more {
        assert_eq!(statuses_of(&rx, wamid)[0], "sent");
    }
    // Forcing a tier through the control API is refused when it makes no sense.
    let (s, b) = h
        .control(
            Method::POST,
            &format!("/numbers/{PNID}/quality"),
            &json!({ "tier": "TIER_LOTS" }),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    h.shutdown().await;
}
