//! Virtual users on the manual clock: the default lifecycle, offline users, users who never
//! read or hide their read receipts, users who reply, block the business or are not on
//! WhatsApp, voice notes, and behaviours from the configuration.

mod common;
use common::*;
use mynah_sandbox::config::{Behaviour, Config, LimitProfile, MANUAL_CLOCK_START, UserConfig};
use serde_json::{Value, json};

const T0: i64 = MANUAL_CLOCK_START;
const DAY: f64 = 86_400.0;

fn roomy(url: &str) -> Config {
    let mut cfg = config(url);
    cfg.limits.profile = LimitProfile::Unlimited;
    cfg
}

async fn send(h: &Harness, body: Value) -> String {
    let (s, b) = h.send_360(body).await;
    assert_eq!(s, 200, "{b}");
    b["messages"][0]["id"].as_str().unwrap().to_string()
}

async fn behave(h: &Harness, wa_id: &str, patch: Value) -> Value {
    let (s, b) = h
        .control(reqwest::Method::PUT, &format!("/users/{wa_id}"), &patch)
        .await;
    assert_eq!(s, 200, "{b}");
    b
}

/// The statuses the receiver got for `wamid`, in order.
fn lifecycle(rx: &Receiver, wamid: &str) -> Vec<String> {
    rx.statuses()
        .into_iter()
        .filter(|(w, _)| w == wamid)
        .map(|(_, s)| s)
        .collect()
}

/// The status objects the receiver got for `wamid`.
fn status_objects(rx: &Receiver, wamid: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for b in rx.bodies() {
        for s in b["entry"][0]["changes"][0]["value"]["statuses"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if s["id"] == wamid {
                out.push(s.clone());
            }
        }
    }
    out
}

/// The `timestamp` (unix seconds) of `status` for `wamid`.
fn stamp(rx: &Receiver, wamid: &str, status: &str) -> i64 {
    let s = status_objects(rx, wamid)
        .into_iter()
        .find(|s| s["status"] == status)
        .expect(status);
    s["timestamp"].as_str().unwrap().parse().unwrap()
}

async fn message(h: &Harness, wamid: &str) -> Value {
    let (s, m) = h.control_get(&format!("/messages/{wamid}")).await;
    assert_eq!(s, 200, "{m}");
    m
}

fn timeline_events(m: &Value) -> Vec<String> {
    m["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect()
}

/// Inbound messages the receiver got from `wa_id`.
fn inbound_from(rx: &Receiver, wa_id: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for b in rx.bodies() {
        for m in b["entry"][0]["changes"][0]["value"]["messages"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if m["from"] == wa_id {
                out.push(m.clone());
            }
        }
    }
    out
}

#[tokio::test]
async fn default_user_gets_sent_delivered_within_a_second_and_read_within_seconds() {
    let rx = Receiver::start().await;
    let h = Harness::start(roomy(&rx.url)).await;
    let wamid = send(&h, text("+49 151 12345678", "hi")).await;
    h.advance(1.0).await;
    h.wait(&format!("wamid={wamid}&status=delivered"), 1).await;
    h.drain().await;
    assert_eq!(
        lifecycle(&rx, &wamid),
        ["sent", "delivered"],
        "delivered within a second, not yet read"
    );
    assert_eq!(message(&h, &wamid).await["status"], "delivered");
    h.advance(4.0).await;
    h.wait(&format!("wamid={wamid}&status=read"), 1).await;
    h.drain().await;
    assert_eq!(lifecycle(&rx, &wamid), ["sent", "delivered", "read"]);
    let t0 = T0 / 1_000;
    assert!(stamp(&rx, &wamid, "sent") - t0 <= 1);
    assert!(stamp(&rx, &wamid, "delivered") - t0 <= 1);
    let read = stamp(&rx, &wamid, "read") - t0;
    assert!((1..=5).contains(&read), "read {read} s after sending");
    let m = message(&h, &wamid).await;
    assert_eq!(m["status"], "read");
    assert_eq!(
        timeline_events(&m),
        ["accepted", "sent", "delivered", "read"]
    );
    assert!(rx.received().iter().all(|r| signature_ok(r, SECRET)));
    // Nothing more happens later.
    h.advance(DAY).await;
    h.drain().await;
    assert_eq!(lifecycle(&rx, &wamid).len(), 3);
    h.shutdown().await;
}

#[tokio::test]
async fn offline_user_gets_only_sent_until_back() {
    let rx = Receiver::start().await;
    let h = Harness::start(roomy(&rx.url)).await;
    let user = behave(&h, "4915112345678", json!({ "offline_for_seconds": 3600 })).await;
    assert_eq!(
        user["behaviour"]["offline_until"],
        json!(T0 + 3_600_000),
        "{user}"
    );
    let wamid = send(&h, text("+49 151 12345678", "are you there?")).await;
    h.advance(1_800.0).await;
    h.wait(&format!("wamid={wamid}&status=sent"), 1).await;
    h.advance(1_799.0).await;
    h.drain().await;
    assert_eq!(lifecycle(&rx, &wamid), ["sent"], "offline: only sent");
    assert_eq!(message(&h, &wamid).await["status"], "sent");

    // Back after the hour: delivered (at once), then read.
    h.advance(10.0).await;
    h.wait(&format!("wamid={wamid}&status=read"), 1).await;
    h.drain().await;
    assert_eq!(lifecycle(&rx, &wamid), ["sent", "delivered", "read"]);
    let delivered = stamp(&rx, &wamid, "delivered");
    assert!(
        delivered >= (T0 + 3_600_000) / 1_000,
        "not delivered before the user is back"
    );
    assert!(
        delivered <= (T0 + 3_601_000) / 1_000,
        "delivered as soon as the user is back"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn offline_until_an_absolute_time_and_going_offline_after_sent() {
    let rx = Receiver::start().await;
    let mut cfg = roomy(&rx.url);
    // Long enough that the user can go offline between `sent` and `delivered`.
    cfg.latency.delivered = mynah_sandbox::config::Latency::fixed(60_000);
    let h = Harness::start(cfg).await;
    behave(
        &h,
        "4915112345678",
        json!({ "offline_until": T0 + 600_000 }),
    )
    .await;
    let w1 = send(&h, text("+49 151 12345678", "one")).await;
    let w2 = send(&h, text("+49 151 87654321", "two")).await;
    h.advance(1.0).await;
    h.wait(&format!("wamid={w2}&status=sent"), 1).await;
    // The second user goes offline after `sent`: delivery waits for them too.
    behave(&h, "4915187654321", json!({ "offline_for_seconds": 1200 })).await;
    h.advance(598.0).await;
    h.drain().await;
    assert_eq!(lifecycle(&rx, &w1), ["sent"]);
    assert_eq!(lifecycle(&rx, &w2), ["sent"]);
    h.advance(70.0).await;
    h.wait(&format!("wamid={w1}&status=delivered"), 1).await;
    h.drain().await;
    assert_eq!(lifecycle(&rx, &w2), ["sent"], "still offline until 1201 s");
    h.advance(700.0).await;
    h.wait(&format!("wamid={w2}&status=read"), 1).await;
    assert!(stamp(&rx, &w2, "delivered") >= (T0 + 1_201_000) / 1_000);
    let (s, user) = h.control_get("/users/4915187654321").await;
    assert_eq!(s, 200);
    assert_eq!(
        user["behaviour"]["offline_until"],
        json!(T0 + 1_000 + 1_200_000)
    );
    // Clearing it works too.
    let user = behave(&h, "4915187654321", json!({ "offline_until": null })).await;
    assert_eq!(user["behaviour"]["offline_until"], Value::Null);
    h.shutdown().await;
}

#[tokio::test]
async fn user_who_never_reads_stays_delivered() {
    let rx = Receiver::start().await;
    let h = Harness::start(roomy(&rx.url)).await;
    behave(&h, "4915112345678", json!({ "reads": false })).await;
    let wamid = send(&h, text("+49 151 12345678", "hi")).await;
    h.advance(10.0).await;
    h.wait(&format!("wamid={wamid}&status=delivered"), 1).await;
    h.advance(DAY).await;
    h.drain().await;
    assert_eq!(lifecycle(&rx, &wamid), ["sent", "delivered"]);
    assert_eq!(message(&h, &wamid).await["status"], "delivered");
    h.shutdown().await;
}

#[tokio::test]
async fn read_receipts_off_means_no_read_webhook() {
    let rx = Receiver::start().await;
    let h = Harness::start(roomy(&rx.url)).await;
    behave(&h, "4915112345678", json!({ "read_receipts": false })).await;
    let wamid = send(&h, text("+49 151 12345678", "hi")).await;
    h.advance(10.0).await;
    h.wait(&format!("wamid={wamid}&status=delivered"), 1).await;
    h.advance(DAY).await;
    h.drain().await;
    assert_eq!(
        lifecycle(&rx, &wamid),
        ["sent", "delivered"],
        "no read webhook"
    );
    let m = message(&h, &wamid).await;
    assert!(
        timeline_events(&m).contains(&"read_receipt_suppressed".to_string()),
        "{m}"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn user_who_replies_answers_after_reading_quoting_the_message() {
    let rx = Receiver::start().await;
    let h = Harness::start(roomy(&rx.url)).await;
    behave(
        &h,
        "4915112345678",
        json!({ "replies_with": "Thanks, got it!", "name": "Grace" }),
    )
    .await;
    let wamid = send(&h, text("+49 151 12345678", "your order shipped")).await;
    h.advance(30.0).await;
    let got = h.wait("wa_id=4915112345678&message_type=text", 1).await;
    assert_eq!(got.len(), 1);
    h.drain().await;
    assert_eq!(lifecycle(&rx, &wamid), ["sent", "delivered", "read"]);

    let replies = inbound_from(&rx, "4915112345678");
    assert_eq!(replies.len(), 1, "one reply");
    let reply = &replies[0];
    assert_eq!(reply["type"], "text");
    assert_eq!(reply["text"]["body"], "Thanks, got it!");
    assert_eq!(
        reply["context"]["id"],
        json!(wamid),
        "the reply quotes the message"
    );
    assert_eq!(
        reply["context"]["from"],
        json!(mynah_sandbox::config::DEV_DISPLAY_NUMBER)
    );
    let read_at = stamp(&rx, &wamid, "read");
    let reply_at: i64 = reply["timestamp"].as_str().unwrap().parse().unwrap();
    assert!(
        reply_at >= read_at,
        "the reply comes after the read ({reply_at} < {read_at})"
    );
    // The webhook names the user.
    let body = rx
        .bodies()
        .into_iter()
        .find(|b| b["entry"][0]["changes"][0]["value"]["messages"].is_array())
        .unwrap();
    assert_eq!(
        body["entry"][0]["changes"][0]["value"]["contacts"][0]["profile"]["name"],
        "Grace"
    );

    // The control API lists it as inbound.
    let (s, list) = h
        .control_get("/messages?direction=inbound&wa_id=4915112345678")
        .await;
    assert_eq!(s, 200, "{list}");
    let inbound = list["messages"].as_array().unwrap();
    assert_eq!(inbound.len(), 1, "{list}");
    assert_eq!(inbound[0]["id"], reply["id"]);
    assert_eq!(inbound[0]["direction"], "inbound");
    assert_eq!(inbound[0]["type"], "text");

    // It replies once per message, not in a loop.
    h.advance(DAY).await;
    h.drain().await;
    assert_eq!(inbound_from(&rx, "4915112345678").len(), 1);
    h.shutdown().await;
}

#[tokio::test]
async fn user_who_blocked_the_business_stays_at_sent() {
    let rx = Receiver::start().await;
    let h = Harness::start(roomy(&rx.url)).await;
    behave(&h, "4915112345678", json!({ "blocks_business": true })).await;
    let wamid = send(&h, text("+49 151 12345678", "hi")).await;
    h.advance(10.0).await;
    h.wait(&format!("wamid={wamid}&status=sent"), 1).await;
    h.advance(DAY).await;
    h.advance(DAY).await;
    h.drain().await;
    assert_eq!(lifecycle(&rx, &wamid), ["sent"], "sent forever");
    assert_eq!(message(&h, &wamid).await["status"], "sent");
    h.shutdown().await;
}

#[tokio::test]
async fn user_not_on_whatsapp_fails_with_131026() {
    let rx = Receiver::start().await;
    let h = Harness::start(roomy(&rx.url)).await;
    behave(&h, "4915112345678", json!({ "on_whatsapp": false })).await;
    let wamid = send(&h, text("+49 151 12345678", "hi")).await;
    h.advance(10.0).await;
    h.wait(&format!("wamid={wamid}&status=failed"), 1).await;
    h.advance(DAY).await;
    h.drain().await;
    assert_eq!(
        lifecycle(&rx, &wamid),
        ["failed"],
        "failed, never delivered"
    );
    let failed = &status_objects(&rx, &wamid)[0];
    assert_eq!(failed["errors"][0]["code"], 131026, "{failed}");
    assert_eq!(failed["recipient_id"], "4915112345678");
    assert!(failed["errors"][0]["title"].is_string(), "{failed}");
    assert_eq!(message(&h, &wamid).await["status"], "failed");
    h.shutdown().await;
}

#[tokio::test]
async fn voice_note_is_played_after_read() {
    let rx = Receiver::start().await;
    let h = Harness::start(roomy(&rx.url)).await;
    let audio = |voice: bool| {
        json!({ "messaging_product": "whatsapp", "to": "+49 151 12345678", "type": "audio",
                "audio": { "link": "https://example.com/note.ogg", "voice": voice } })
    };
    let voice = send(&h, audio(true)).await;
    let plain = send(&h, audio(false)).await;
    h.advance(30.0).await;
    h.wait(&format!("wamid={voice}&status=played"), 1).await;
    h.wait(&format!("wamid={plain}&status=read"), 1).await;
    h.drain().await;
    assert_eq!(
        lifecycle(&rx, &voice),
        ["sent", "delivered", "read", "played"]
    );
    assert!(stamp(&rx, &voice, "played") >= stamp(&rx, &voice, "read"));
    assert_eq!(
        lifecycle(&rx, &plain),
        ["sent", "delivered", "read"],
        "only voice notes are played"
    );
    assert_eq!(message(&h, &voice).await["status"], "played");
    h.shutdown().await;
}

#[tokio::test]
async fn behaviours_from_the_configuration_work_like_the_api() {
    let rx = Receiver::start().await;
    let mut cfg = roomy(&rx.url);
    let user = |wa_id: &str, name: Option<&str>, behaviour: Behaviour| UserConfig {
        wa_id: wa_id.to_string(),
        name: name.map(str::to_string),
        username: None,
        behaviour,
    };
    cfg.users.users = vec![
        user(
            "4915140000001",
            Some("Never Reads"),
            Behaviour {
                reads: false,
                ..Behaviour::default()
            },
        ),
        user(
            "4915140000002",
            None,
            Behaviour {
                on_whatsapp: false,
                ..Behaviour::default()
            },
        ),
        user(
            "4915140000003",
            None,
            Behaviour {
                blocks_business: true,
                ..Behaviour::default()
            },
        ),
        user(
            "4915140000004",
            None,
            Behaviour {
                replies_with: Some("configured reply".into()),
                ..Behaviour::default()
            },
        ),
        user(
            "4915140000005",
            None,
            Behaviour {
                offline_until: Some(T0 + 3_600_000),
                ..Behaviour::default()
            },
        ),
        user(
            "4915140000006",
            None,
            Behaviour {
                read_receipts: false,
                ..Behaviour::default()
            },
        ),
    ];
    // Everybody else never reads either.
    cfg.users.default = Behaviour {
        reads: false,
        ..Behaviour::default()
    };
    let h = Harness::start(cfg).await;

    let (s, u) = h.control_get("/users/4915140000001").await;
    assert_eq!(s, 200, "{u}");
    assert_eq!(u["name"], "Never Reads");
    assert_eq!(u["behaviour"]["reads"], false);

    let mut w = Vec::new();
    for i in 1..=6 {
        w.push(send(&h, text(&format!("+49 151 4000000{i}"), "hi")).await);
    }
    let stranger = send(&h, text("+49 151 49999999", "hi")).await;
    h.advance(60.0).await;
    h.wait("wa_id=4915140000004&message_type=text", 1).await;
    h.advance(DAY).await;
    h.drain().await;

    assert_eq!(lifecycle(&rx, &w[0]), ["sent", "delivered"], "never reads");
    assert_eq!(
        status_objects(&rx, &w[0])[0]["recipient_id"],
        "4915140000001"
    );
    assert_eq!(lifecycle(&rx, &w[1]), ["failed"], "not on WhatsApp");
    assert_eq!(status_objects(&rx, &w[1])[0]["errors"][0]["code"], 131026);
    assert_eq!(lifecycle(&rx, &w[2]), ["sent"], "blocks the business");
    assert_eq!(
        lifecycle(&rx, &w[3]),
        ["sent", "delivered", "read"],
        "replies"
    );
    let replies = inbound_from(&rx, "4915140000004");
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0]["text"]["body"], "configured reply");
    assert_eq!(replies[0]["context"]["id"], json!(w[3]));
    assert_eq!(
        lifecycle(&rx, &w[4]),
        ["sent", "delivered", "read"],
        "offline for the first hour"
    );
    assert!(stamp(&rx, &w[4], "delivered") >= (T0 + 3_600_000) / 1_000);
    assert_eq!(
        lifecycle(&rx, &w[5]),
        ["sent", "delivered"],
        "read receipts off"
    );
    assert_eq!(
        lifecycle(&rx, &stranger),
        ["sent", "delivered"],
        "the configured default behaviour"
    );

    // The API changes a configured user like any other.
    behave(&h, "4915140000003", json!({ "blocks_business": false })).await;
    let again = send(&h, text("+49 151 40000003", "unblocked?")).await;
    h.advance(30.0).await;
    h.wait(&format!("wamid={again}&status=read"), 1).await;
    h.shutdown().await;
}
