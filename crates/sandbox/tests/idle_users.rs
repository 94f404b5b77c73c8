//! Idle virtual users are kept compact (`retention.idle_user_ms`): after a day without a message
//! and with every window ended, a user sleeps, and the sandbox answers about it, and treats it,
//! exactly as before: the same ids, behaviour and contact-book entry; a username keeps a user
//! whole. The counts are on `GET /_mynah/health` and `/metrics`.

mod common;
use common::*;
use serde_json::{Value, json};

async fn users(h: &Harness) -> (u64, u64) {
    let (_, health) = h.control_get("/health").await;
    (
        health["users"]["awake"].as_u64().unwrap(),
        health["users"]["asleep"].as_u64().unwrap(),
    )
}

/// Sends a text; answers its wamid and the recipient's business-scoped user id (read without
/// waking the user).
async fn send(h: &Harness, to: &str) -> (String, String) {
    let (s, b) = h.send_360(text(to, "hello")).await;
    assert_eq!(s, 200, "{b}");
    let wamid = b["messages"][0]["id"].as_str().unwrap().to_string();
    (wamid, bsuid_of(h, to).await)
}

async fn bsuid_of(h: &Harness, wa_id: &str) -> String {
    let (s, u) = h.control_get(&format!("/users/{wa_id}")).await;
    assert_eq!(s, 200, "{u}");
    u["user_ids"]["default"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn idle_users_sleep_compact_and_wake_unchanged() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    // 40 plain users, one that does not read, one with a username.
    let mut ids = Vec::new();
    for i in 0..40 {
        ids.push(send(&h, &format!("49151{i:08}")).await.1);
    }
    let (s, b) = h
        .control(
            reqwest::Method::PATCH,
            "/users/4915199990001",
            &json!({ "reads": false }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (_, quiet_id) = send(&h, "4915199990001").await;
    let (s, b) = h
        .control(
            reqwest::Method::PUT,
            "/users/4915199990002/username",
            &json!({ "username": "sleepless" }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    send(&h, "4915199990002").await;
    h.advance(120.0).await;
    h.drain().await;
    let (_, before) = h.control_get("/users/4915100000007").await;
    assert_eq!(users(&h).await, (42, 0), "a day has not passed: all awake");

    // Two days later, later sends sweep a few users each.
    h.advance(2.0 * 86_400.0).await;
    for _ in 0..20 {
        send(&h, "4915188880000").await;
    }
    let (awake, asleep) = users(&h).await;
    assert_eq!(
        (awake, asleep),
        (2, 41),
        "the username keeps one whole, the one just written to is awake"
    );
    let text = h.metrics_text().await;
    assert!(
        text.contains("mynah_sandbox_users{state=\"asleep\"} 41"),
        "{text}"
    );

    // A sleeping user reads as before, and is listed.
    let (s, after) = h.control_get("/users/4915100000007").await;
    assert_eq!(s, 200, "{after}");
    // All but the conversation whose window ended (which no rule reads any more).
    let mut before = before;
    assert_eq!(
        before["conversations"].as_object().map(|c| c.len()),
        Some(1)
    );
    before["conversations"] = json!({});
    assert_eq!(after, before, "asleep, the user looks the same");
    let (_, list) = h.control_get("/users").await;
    let listed = list["data"]
        .as_array()
        .or_else(|| list["users"].as_array())
        .map(Vec::len);
    assert_eq!(listed, Some(43), "{list}");
    let (_, portfolios) = h.control_get("/portfolios").await;
    let book = portfolios["portfolios"][0]["contact_book"]
        .as_array()
        .unwrap();
    assert!(
        book.iter().any(|e| e["wa_id"] == "4915100000007"),
        "sleeping users keep their contact-book entries: {portfolios}"
    );

    // Woken by a send: the same business-scoped user id, the same behaviour.
    let (again, id) = send(&h, "4915100000007").await;
    assert_eq!(id, ids[7]);
    let (quiet_msg, id) = send(&h, "4915199990001").await;
    assert_eq!(id, quiet_id);
    h.advance(120.0).await;
    h.drain().await;
    let statuses = rx.statuses();
    let of = |wamid: &str| -> Vec<String> {
        statuses
            .iter()
            .filter(|(w, _)| w == wamid)
            .map(|(_, s)| s.clone())
            .collect()
    };
    assert_eq!(of(&again), ["sent", "delivered", "read"]);
    assert_eq!(
        of(&quiet_msg),
        ["sent", "delivered"],
        "the user who does not read still does not, after a sleep"
    );
    // Sending by the BSUID reaches a sleeping user too.
    h.advance(2.0 * 86_400.0).await;
    for _ in 0..20 {
        send(&h, "4915188880000").await;
    }
    assert!(users(&h).await.1 >= 41);
    let (s, b) = h
        .send_cloud(json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "recipient": ids[3],
            "type": "text",
            "text": { "body": "by id" }
        }))
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["contacts"][0]["user_id"], Value::from(ids[3].clone()));
    h.shutdown().await;
}

#[tokio::test]
async fn a_restart_puts_idle_users_back_to_sleep_and_zero_keeps_everyone_whole() {
    let rx = Receiver::start().await;
    let dir = temp_dir("idle-users-restart");
    let mut cfg = config(&rx.url);
    cfg.data_dir = Some(dir.clone());
    let h = Harness::start(cfg.clone()).await;
    for i in 0..10 {
        send(&h, &format!("49152{i:08}")).await;
    }
    h.advance(120.0).await;
    h.drain().await;
    h.advance(2.0 * 86_400.0).await;
    h.shutdown().await;

    let h = Harness::start(cfg.clone()).await;
    assert_eq!(users(&h).await, (0, 10), "idle users sleep from the start");
    h.shutdown().await;

    cfg.retention.idle_user_ms = 0;
    let h = Harness::start(cfg).await;
    assert_eq!(users(&h).await, (10, 0), "0 keeps every user whole");
    h.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}
