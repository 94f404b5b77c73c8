//! Determinism: with a manual clock and a fixed seed, the same request script produces
//! byte-identical webhook bodies (wamids, timestamps, conversation ids included); another seed
//! gives other ids.

mod common;
use common::*;
use mynah_sandbox::config::LimitProfile;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// What one run produced.
struct Run {
    /// Every webhook body, in arrival order.
    bodies: Vec<String>,
    /// The wamids the sends were answered with, in request order.
    wamids: Vec<String>,
    /// The control API's message list at the end.
    messages: Value,
}

fn msg(to: &str, kind: &str, object: Value) -> Value {
    json!({ "messaging_product": "whatsapp", "recipient_type": "individual", "to": to, "type": kind, kind: object })
}

async fn send(h: &Harness, cloud: bool, body: Value) -> String {
    let (s, b) = if cloud {
        h.send_cloud(body).await
    } else {
        h.send_360(body).await
    };
    assert_eq!(s, 200, "{b}");
    b["messages"][0]["id"].as_str().unwrap().to_string()
}

/// The script: several message types to several users in both dialects, user behaviours, an
/// inbound message, a reply and a read receipt, the clock moving in steps.
async fn script(seed: u64) -> Run {
    let rx = Receiver::start().await;
    let mut cfg = config(&rx.url);
    cfg.seed = seed;
    cfg.limits.profile = LimitProfile::Unlimited;
    let h = Harness::start(cfg).await;

    let (s, b) = h
        .control(
            reqwest::Method::PUT,
            "/users/4915130000008",
            &json!({ "offline_for_seconds": 30 }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = h
        .control(
            reqwest::Method::PUT,
            "/users/4915130000009",
            &json!({ "replies_with": "ok, thanks" }),
        )
        .await;
    assert_eq!(s, 200, "{b}");

    let mut wamids = Vec::new();
    let a = send(&h, false, text("+49 151 30000001", "hello A")).await;
    wamids.push(a.clone());
    wamids.push(
        send(
            &h,
            true,
            msg(
                "+49 151 30000002",
                "image",
                json!({ "link": "https://example.com/cat.jpg", "caption": "a cat" }),
            ),
        )
        .await,
    );
    wamids.push(
        send(
            &h,
            false,
            msg(
                "+49 151 30000003",
                "template",
                json!({ "name": "hello_world", "language": { "code": "en_US" } }),
            ),
        )
        .await,
    );
    h.advance(0.5).await;
    wamids.push(
        send(
            &h,
            true,
            msg(
                "+49 151 30000004",
                "location",
                json!({ "latitude": 52.5163, "longitude": 13.3777, "name": "Brandenburger Tor" }),
            ),
        )
        .await,
    );
    wamids.push(
        send(
            &h,
            false,
            msg(
                "+49 151 30000005",
                "interactive",
                json!({
                    "type": "button",
                    "body": { "text": "Coming?" },
                    "action": { "buttons": [
                        { "type": "reply", "reply": { "id": "yes", "title": "Yes" } },
                        { "type": "reply", "reply": { "id": "no", "title": "No" } }
                    ] }
                }),
            ),
        )
        .await,
    );
    wamids.push(
        send(
            &h,
            true,
            msg(
                "+49 151 30000006",
                "audio",
                json!({ "link": "https://example.com/note.ogg", "voice": true }),
            ),
        )
        .await,
    );
    wamids.push(
        send(
            &h,
            false,
            msg(
                "+49 151 30000001",
                "reaction",
                json!({ "message_id": a, "emoji": "\u{1F44D}" }),
            ),
        )
        .await,
    );

    // A user writes in; the business reads it and answers within the window.
    let (s, inbound) = h
        .control(
            reqwest::Method::POST,
            "/inbound",
            &json!({ "from": "+49 151 30000007", "type": "text", "text": { "body": "any news?" } }),
        )
        .await;
    assert_eq!(s, 200, "{inbound}");
    let inbound_id = inbound["id"].as_str().unwrap().to_string();
    wamids.push(inbound_id.clone());
    let (s, b) = h
        .send_cloud(
            json!({ "messaging_product": "whatsapp", "status": "read", "message_id": inbound_id }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    wamids.push(send(&h, true, text("+49 151 30000007", "yes: it shipped")).await);
    wamids.push(send(&h, false, text("+49 151 30000008", "while you were away")).await);
    wamids.push(send(&h, false, text("+49 151 30000009", "please confirm")).await);

    for step in [1.0, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0] {
        h.advance(step).await;
    }
    h.drain().await;
    let (s, messages) = h.control_get("/messages?limit=1000").await;
    assert_eq!(s, 200, "{messages}");
    let received = rx.received();
    for r in &received {
        assert!(signature_ok(r, SECRET), "every POST is signed");
    }
    let bodies = received
        .iter()
        .map(|r| String::from_utf8(r.body.to_vec()).unwrap())
        .collect();
    h.shutdown().await;
    rx.stop();
    Run {
        bodies,
        wamids,
        messages,
    }
}

/// The message (or status) id a webhook body is about.
fn key_of(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap();
    let value = &v["entry"][0]["changes"][0]["value"];
    value["statuses"][0]["id"]
        .as_str()
        .or(value["messages"][0]["id"].as_str())
        .unwrap()
        .to_string()
}

/// Bodies grouped by the message they concern, in arrival order within each group.
fn per_message(bodies: &[String]) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for b in bodies {
        m.entry(key_of(b)).or_default().push(b.clone());
    }
    m
}

#[tokio::test]
async fn same_seed_same_script_gives_byte_identical_webhooks() {
    let (one, two) = tokio::join!(script(7), script(7));
    assert_eq!(one.wamids, two.wamids, "the same wamids");
    assert!(
        one.bodies.len() >= 30,
        "the script produced its webhooks: {}",
        one.bodies.len()
    );
    assert_eq!(one.bodies.len(), two.bodies.len());

    // Per message, the same bodies in the same order; across messages, the same multiset (POSTs
    // for different messages may race each other).
    assert_eq!(per_message(&one.bodies), per_message(&two.bodies));
    let mut a = one.bodies.clone();
    let mut b = two.bodies.clone();
    a.sort();
    b.sort();
    assert_eq!(a, b, "byte-identical bodies");

    // Every message of the script is in there, with the lifecycle its user calls for.
    let groups = per_message(&one.bodies);
    let statuses = |w: &str| -> Vec<String> {
        groups[w]
            .iter()
            .map(|b| {
                let v: Value = serde_json::from_str(b).unwrap();
                let value = &v["entry"][0]["changes"][0]["value"];
                value["statuses"][0]["status"]
                    .as_str()
                    .or(value["messages"][0]["type"].as_str())
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    let w = &one.wamids;
    assert_eq!(statuses(&w[0]), ["sent", "delivered", "read"]);
    assert_eq!(
        statuses(&w[5]),
        ["sent", "delivered", "read", "played"],
        "voice note"
    );
    assert_eq!(statuses(&w[6]), ["sent"], "reaction");
    assert_eq!(statuses(&w[7]), ["text"], "inbound");
    assert_eq!(
        statuses(&w[9]),
        ["sent", "delivered", "read"],
        "offline user, back after 30 s"
    );
    // The replying user's answer is a message of its own, with the same id in both runs.
    let replies: Vec<&String> = one
        .bodies
        .iter()
        .filter(|b| b.contains("ok, thanks"))
        .collect();
    assert_eq!(replies.len(), 1);
    assert!(two.bodies.contains(replies[0]));

    // The sandbox's own record agrees.
    assert_eq!(
        one.messages, two.messages,
        "the message lists (timelines included) are identical"
    );
}

#[tokio::test]
async fn another_seed_gives_other_ids() {
    let (seven, eight) = tokio::join!(script(7), script(8));
    assert_eq!(seven.wamids.len(), eight.wamids.len());
    for (a, b) in seven.wamids.iter().zip(&eight.wamids) {
        assert_ne!(a, b, "wamids depend on the seed");
        assert!(a.starts_with("wamid.") && b.starts_with("wamid."));
    }
    let mut a = seven.bodies.clone();
    let mut b = eight.bodies.clone();
    a.sort();
    b.sort();
    assert_ne!(a, b);
    // The same script still produces the same number of webhooks.
    assert_eq!(seven.bodies.len(), eight.bodies.len());
}
