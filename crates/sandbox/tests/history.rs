//! Message history beyond the hot set (`retention.hot_messages`) lives in the journal and is read
//! back on demand: the control API lists and pages it (by user too) and shows each message and
//! its explanation; a mark-read or a reaction may name one; a restart reads it back the same;
//! `retention.max_messages` bounds the journal; the counts are on `/_mynah/health` and
//! `/metrics`.

mod common;
use common::*;
use reqwest::Method;
use serde_json::{Value, json};

const USER: &str = "4915100000999";

fn history_config(rx: &Receiver, dir: &std::path::Path, hot: usize, max: usize) -> Config {
    let mut cfg = config(&rx.url);
    cfg.data_dir = Some(dir.to_path_buf());
    cfg.retention.hot_messages = hot;
    cfg.retention.max_messages = max;
    cfg
}

use mynah_sandbox::config::Config;

/// (in memory, in the journal only) from `/_mynah/health`.
async fn placed(h: &Harness) -> (u64, u64) {
    let (_, health) = h.control_get("/health").await;
    (
        health["messages"]["memory"].as_u64().unwrap(),
        health["messages"]["journal"].as_u64().unwrap(),
    )
}

/// Every message of a listing, oldest first, followed page by page (`limit` each).
async fn list_all(h: &Harness, query: &str, limit: usize) -> Vec<Value> {
    let mut pages = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let cursor = before
            .as_ref()
            .map(|b| format!("&before={b}"))
            .unwrap_or_default();
        let (s, page) = h
            .control_get(&format!("/messages?limit={limit}{query}{cursor}"))
            .await;
        assert_eq!(s, 200, "{page}");
        let msgs = page["messages"].as_array().unwrap().clone();
        assert!(msgs.len() <= limit);
        pages.push(msgs);
        match page["next"].as_str() {
            Some(n) => before = Some(n.to_string()),
            None => break,
        }
    }
    pages.reverse();
    pages.into_iter().flatten().collect()
}

fn ids(msgs: &[Value]) -> Vec<String> {
    msgs.iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn history_beyond_the_hot_set_is_read_back_from_the_journal() {
    let rx = Receiver::start().await;
    let dir = temp_dir("history");
    let h = Harness::start(history_config(&rx, &dir, 5, 40)).await;
    // The user writes first: that message will have left memory when it is marked read and
    // reacted to.
    let (s, m) = h
        .control(
            Method::POST,
            "/inbound",
            &json!({ "from": USER, "type": "text", "text": { "body": "hi" } }),
        )
        .await;
    assert_eq!(s, 200, "{m}");
    let inbound = m["id"].as_str().unwrap().to_string();
    let mut sent = vec![inbound.clone()];
    for i in 0..25 {
        sent.push(
            h.send_text(&format!("4915100000{:03}", i % 5), &format!("m{i}"))
                .await,
        );
    }
    // Before the clock moves, every send has its lifecycle ahead of it and stays in memory.
    assert_eq!(h.sandbox.world().lifecycles_pending(), 25);
    h.advance(120.0).await;
    h.drain().await;
    assert_eq!(h.sandbox.world().lifecycles_pending(), 0);
    assert_eq!(
        placed(&h).await,
        (5, 21),
        "finished lifecycles leave memory: the hot set holds 5"
    );
    let text = h.metrics_text().await;
    assert!(
        text.contains("mynah_sandbox_messages{place=\"journal\"} 21"),
        "{text}"
    );

    // Listings go on into the journal, in arrival order, whatever the page size.
    let all = list_all(&h, "", 100).await;
    assert_eq!(ids(&all), sent, "one page");
    for limit in [1, 4, 7] {
        assert_eq!(
            ids(&list_all(&h, "", limit).await),
            sent,
            "pages of {limit}"
        );
    }
    assert!(
        all.iter().skip(1).all(|m| m["status"] == "read"),
        "messages read back whole: {all:?}"
    );
    let of_user: Vec<String> = sent[1..].iter().step_by(5).cloned().collect();
    assert_eq!(
        ids(&list_all(&h, "&wa_id=4915100000000", 2).await),
        of_user,
        "one user's, through the journal's index"
    );
    assert_eq!(
        ids(&list_all(&h, "&wa_id=4915100000000&status=read", 3).await),
        of_user,
        "filters apply to what is read back"
    );
    let (s, m) = h.control_get(&format!("/messages/{}", sent[1])).await;
    assert_eq!(s, 200, "{m}");
    assert_eq!(m["status"], "read");
    assert!(m["timeline"].as_array().unwrap().len() >= 4, "{m}");
    let (s, x) = h
        .control_get(&format!("/messages/{}/explain", sent[1]))
        .await;
    assert_eq!(s, 200, "{x}");
    assert_eq!(
        placed(&h).await,
        (5, 21),
        "reading does not bring them back"
    );

    // A mark-read and a reaction may name a message that left memory.
    let read = json!({ "messaging_product": "whatsapp", "status": "read", "message_id": inbound });
    let (s, b) = h.send_cloud(read).await;
    assert_eq!(s, 200, "{b}");
    let (_, m) = h.control_get(&format!("/messages/{inbound}")).await;
    assert_eq!(
        m["status"], "read",
        "the mark-read reached the journal: {m}"
    );
    let react = |target: &str| {
        json!({ "messaging_product": "whatsapp", "to": USER, "type": "reaction",
                "reaction": { "message_id": target, "emoji": "👍" } })
    };
    let (s, b) = h.send_cloud(react(&inbound)).await;
    assert_eq!(s, 200, "{b}");
    let reaction = b["messages"][0]["id"].as_str().unwrap().to_string();
    let (s, b) = h.send_cloud(react("wamid.unknown")).await;
    assert_eq!(s, 200, "{b}");
    let stray = b["messages"][0]["id"].as_str().unwrap().to_string();
    h.advance(120.0).await;
    h.drain().await;
    let (_, m) = h.control_get(&format!("/messages/{reaction}")).await;
    assert_ne!(m["status"], "failed", "its target was read back: {m}");
    let (_, m) = h.control_get(&format!("/messages/{stray}")).await;
    assert_eq!(m["status"], "failed", "an unknown target still fails: {m}");
    sent.push(reaction);
    sent.push(stray);
    let before_restart = list_all(&h, "", 100).await;
    assert_eq!(ids(&before_restart), sent);
    h.shutdown().await;

    // A restart reads the hot set back and leaves the rest in the journal.
    let h = Harness::start(history_config(&rx, &dir, 5, 40)).await;
    assert_eq!(placed(&h).await, (5, 23));
    assert_eq!(
        list_all(&h, "", 100).await,
        before_restart,
        "the same history"
    );
    assert_eq!(ids(&list_all(&h, "", 3).await), sent, "the same cursors");
    h.shutdown().await;

    // A smaller `max_messages` forgets the oldest at the next start.
    let h = Harness::start(history_config(&rx, &dir, 5, 10)).await;
    assert_eq!(placed(&h).await, (5, 5));
    assert_eq!(ids(&list_all(&h, "", 4).await), sent[sent.len() - 10..]);
    let (s, _) = h.control_get(&format!("/messages/{}", sent[0])).await;
    assert_eq!(s, 404, "forgotten");
    // New sends keep the bound.
    for i in 0..6 {
        h.send_text("4915100000001", &format!("late {i}")).await;
    }
    h.advance(120.0).await;
    h.drain().await;
    assert_eq!(placed(&h).await, (5, 5));
    assert_eq!(list_all(&h, "", 100).await.len(), 10);
    // A reset forgets the journal's history too, and positions start over.
    let (s, b) = h.control(Method::POST, "/reset", &json!({})).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(placed(&h).await, (0, 0));
    assert!(list_all(&h, "", 100).await.is_empty());
    let (s, _) = h
        .control_get(&format!("/messages/{}", sent[sent.len() - 1]))
        .await;
    assert_eq!(s, 404, "forgotten by the reset");
    let after = h.send_text("4915100000001", "after the reset").await;
    let (_, m) = h.control_get(&format!("/messages/{after}")).await;
    assert_eq!(m["seq"], 0, "{m}");
    h.shutdown().await;
    let h = Harness::start(history_config(&rx, &dir, 5, 10)).await;
    assert_eq!(ids(&list_all(&h, "", 100).await), vec![after]);
    h.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn with_everything_in_memory_nothing_is_read_back() {
    let rx = Receiver::start().await;
    let dir = temp_dir("history-hot");
    // `hot_messages` above `max_messages`: every kept message stays in memory.
    let h = Harness::start(history_config(&rx, &dir, 100, 8)).await;
    let mut sent = Vec::new();
    for i in 0..12 {
        sent.push(h.send_text("4915100000002", &format!("m{i}")).await);
    }
    h.advance(120.0).await;
    h.drain().await;
    assert_eq!(placed(&h).await, (8, 0));
    assert_eq!(ids(&list_all(&h, "", 3).await), sent[4..]);
    h.shutdown().await;
    let h = Harness::start(history_config(&rx, &dir, 100, 8)).await;
    assert_eq!(placed(&h).await, (8, 0));
    assert_eq!(ids(&list_all(&h, "", 100).await), sent[4..]);
    h.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
