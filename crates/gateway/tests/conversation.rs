//! The users' side of the conversation, end to end through a real sandbox: inbound messages of
//! every kind reach apps (`message.received` on the SSE stream and the app webhooks) and the
//! conversation endpoint; a reply quoting one goes out; queued messages can be cancelled until
//! they are handed to the platform.

mod common;

use common::*;
use mynah_gateway::clock::{Clock, HOUR};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// An app endpoint on a real port that keeps what it is sent.
async fn app_endpoint() -> (String, Arc<Mutex<Vec<Value>>>) {
    use axum::routing::post;
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                if let Ok(v) = serde_json::from_slice(&body) {
                    sink.lock().unwrap().push(v);
                }
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

/// Reads server-sent events until `n` frames of `event: kind` arrived; returns their data.
async fn sse_frames(resp: &mut reqwest::Response, kind: &str, n: usize) -> Vec<Value> {
    let mut text = String::new();
    let marker = format!("event: {kind}\n");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while text.matches(&marker).count() < n {
        let chunk = tokio::time::timeout_at(deadline, resp.chunk())
            .await
            .expect("the events arrive")
            .unwrap()
            .expect("the stream stays open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    text.split("\n\n")
        .filter(|frame| frame.contains(&marker))
        .filter_map(|frame| {
            let data = frame.lines().find_map(|l| l.strip_prefix("data: "))?;
            serde_json::from_str(data).ok()
        })
        .collect()
}

/// A user writes through the sandbox; returns once the gateway has the message (webhooks may
/// arrive in any order, as on the platform, so the test goes one message at a time).
async fn user_sends(p: &Pair, message: Value) -> String {
    let (s, b) = p.control(reqwest::Method::POST, "/inbound", &message).await;
    assert_eq!(s, 200, "{b}");
    let id = b["id"]
        .as_str()
        .expect("the sandbox names the message")
        .to_string();
    let from = message["from"].as_str().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, c) = p
            .get(&format!("/v1/contacts/{from}/messages?limit=100"))
            .await;
        let known = c["messages"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["id"] == id.as_str()));
        if known {
            return id;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{id} never arrived: {c}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_messages_reach_apps_and_the_conversation_and_a_reply_goes_out() {
    let (hook, got) = app_endpoint().await;
    let mut cfg = gateway_config();
    cfg.gates.consent = false;
    cfg.app_webhooks = vec![mynah_gateway::config::AppWebhook {
        url: hook,
        secret: "whsec_dGVzdC1zZWNyZXQ=".into(),
        events: vec!["message.received".into()],
    }];
    let p = Pair::start(sandbox_config(), cfg).await;
    let user = "4915112345611";
    let mut sse = p
        .http
        .get(format!("{}/v1/events?types=message.received", p.gw_base))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 200);

    // The business writes first; the user answers in six kinds of message.
    let out = p.send(template("hello_world", user)).await;
    let sent = p
        .until(&out, "delivered", |m| m["delivered_at"].is_number())
        .await;
    let wamid = sent["wamid"].as_str().unwrap().to_string();
    let from = |extra: Value| {
        let mut m = json!({ "from": user });
        m.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        m
    };
    let text_id = user_sends(
        &p,
        from(json!({ "type": "text", "text": { "body": "Hi there" } })),
    )
    .await;
    user_sends(
        &p,
        from(
            json!({ "type": "button", "button": { "payload": "yes", "text": "Yes please" },
                     "context": { "id": wamid } }),
        ),
    )
    .await;
    user_sends(
        &p,
        from(json!({ "type": "image", "image": { "caption": "my receipt" } })),
    )
    .await;
    user_sends(
        &p,
        from(json!({ "type": "location", "location": { "latitude": 53.55, "longitude": 9.99, "name": "Hamburg" } })),
    )
    .await;
    user_sends(
        &p,
        from(
            json!({ "type": "interactive", "interactive": { "type": "button_reply",
                     "button_reply": { "id": "b1", "title": "Track order" } } }),
        ),
    )
    .await;
    user_sends(
        &p,
        from(json!({ "type": "reaction", "reaction": { "message_id": wamid, "emoji": "👍" } })),
    )
    .await;

    // The SSE stream: one message.received each, in order, with the contact and the quote.
    let frames = sse_frames(&mut sse, "message.received", 6).await;
    let kinds: Vec<&str> = frames
        .iter()
        .map(|f| f["detail"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds.len(),
        6,
        "{}",
        serde_json::to_string_pretty(&frames).unwrap()
    );
    assert_eq!(
        kinds,
        [
            "text",
            "button",
            "image",
            "location",
            "interactive",
            "reaction"
        ],
        "{}",
        serde_json::to_string_pretty(&frames).unwrap()
    );
    for f in &frames {
        assert_eq!(f["type"], "message.received");
        assert_eq!(f["state"], "received");
        assert_eq!(f["detail"]["from"], user);
        assert!(f["detail"]["contact"]["profile"]["name"].is_string(), "{f}");
    }
    assert_eq!(frames[0]["message_id"], text_id.as_str());
    assert_eq!(frames[0]["detail"]["message"]["text"]["body"], "Hi there");
    assert_eq!(frames[1]["detail"]["in_reply_to"]["id"], out.as_str());
    assert_eq!(frames[1]["detail"]["context"]["id"], wamid.as_str());
    assert!(frames[2]["detail"]["message"]["image"]["id"].is_string());
    assert_eq!(
        frames[3]["detail"]["message"]["location"]["name"],
        "Hamburg"
    );

    // The app webhook got the same six.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while got.lock().unwrap().len() < 6 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let hooked: Vec<String> = got
        .lock()
        .unwrap()
        .iter()
        .map(|v| v["data"]["detail"]["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        hooked,
        [
            "text",
            "button",
            "image",
            "location",
            "interactive",
            "reaction"
        ]
    );

    // A reply quoting the user's first message, inside the window.
    let reply = p
        .send(
            json!({ "to": user, "type": "text", "text": { "body": "Hello! How can we help?" },
                      "context": { "message_id": text_id } }),
        )
        .await;
    let delivered = p
        .until(&reply, "delivered", |m| m["delivered_at"].is_number())
        .await;
    let (_, at_sandbox) = p
        .control(
            reqwest::Method::GET,
            &format!("/messages/{}", delivered["wamid"].as_str().unwrap()),
            &json!({}),
        )
        .await;
    assert!(
        at_sandbox.to_string().contains(&text_id),
        "the platform got the quote: {at_sandbox}"
    );

    // The conversation, both ways, newest first, in pages.
    let mut seen: Vec<Value> = Vec::new();
    let mut path = format!("/v1/contacts/+{user}/messages?limit=3");
    loop {
        let (s, page) = p.get(&path).await;
        assert_eq!(s, 200, "{page}");
        let items = page["messages"].as_array().unwrap();
        assert!(items.len() <= 3);
        seen.extend(items.iter().cloned());
        match page["next"].as_str() {
            Some(n) => path = format!("/v1/contacts/{user}/messages?limit=3&before={n}"),
            None => break,
        }
    }
    let order: Vec<(String, String)> = seen
        .iter()
        .map(|m| {
            (
                m["direction"].as_str().unwrap().to_string(),
                m["type"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = [
        ("outbound", "text"),
        ("inbound", "reaction"),
        ("inbound", "interactive"),
        ("inbound", "location"),
        ("inbound", "image"),
        ("inbound", "button"),
        ("inbound", "text"),
        ("outbound", "template"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(d, t)| (d.to_string(), t.to_string()))
        .collect();
    assert_eq!(order, want);
    assert_eq!(seen[0]["id"], reply.as_str());
    assert_eq!(seen[0]["context"]["message_id"], text_id.as_str());
    assert_eq!(
        seen[6]["profile"]["name"],
        frames[0]["detail"]["contact"]["profile"]["name"]
    );
    let (s, bad) = p
        .get(&format!("/v1/contacts/{user}/messages?before=yesterday"))
        .await;
    assert_eq!(
        (s, bad["error"]["code"].as_str()),
        (400, Some("invalid_parameter"))
    );
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_messages_cancel_until_they_are_handed_over() {
    let clock = Arc::new(Clock::manual(1_800_000_000_000));
    let mut cfg = gateway_config();
    cfg.gates.consent = false;
    let p = Pair::start_with_clock(sandbox_config(), cfg, clock.clone()).await;
    let user = "4915112345612";

    // Queued for later: cancelled, and never sent when its time comes.
    let mut later = template("hello_world", user);
    later["not_before"] = json!(clock.now() + HOUR);
    let queued = p.send(later).await;
    let (s, c) = p
        .post(&format!("/v1/messages/{queued}/cancel"), &json!({}))
        .await;
    assert_eq!((s, c["state"].as_str()), (200, Some("cancelled")), "{c}");
    // Cancelling again says the same.
    let (s, _) = p
        .post(&format!("/v1/messages/{queued}/cancel"), &json!({}))
        .await;
    assert_eq!(s, 200);

    // Handed to the platform: cannot be cancelled, and the answer says why.
    let now = p.send(template("hello_world", user)).await;
    let accepted = p.until(&now, "accepted", |m| m["wamid"].is_string()).await;
    let (s, e) = p
        .post(&format!("/v1/messages/{now}/cancel"), &json!({}))
        .await;
    assert_eq!(s, 409, "{e}");
    assert_eq!(e["error"]["code"], "not_cancellable");
    let why = e["error"]["details"].as_str().unwrap();
    assert!(
        why.contains("handed to the platform") && why.contains(accepted["wamid"].as_str().unwrap()),
        "{why}"
    );

    // Its time comes: a message enqueued after it goes, and it does not (claims go in order of
    // due time, so it would have gone first).
    clock.advance(2 * HOUR);
    let after = p.send(template("hello_world", user)).await;
    p.until(&after, "accepted", |m| m["wamid"].is_string())
        .await;
    let (_, at_sandbox) = p
        .control(
            reqwest::Method::GET,
            &format!("/messages?wa_id={user}"),
            &json!({}),
        )
        .await;
    assert_eq!(
        at_sandbox["messages"].as_array().map(Vec::len),
        Some(2),
        "{at_sandbox}"
    );
    let (_, m) = p.get(&format!("/v1/messages/{queued}")).await;
    assert_eq!(m["state"], "cancelled");
    assert!(event_types(&m).contains(&"cancelled".to_string()));
    let (s, e) = p.post("/v1/messages/msg_nope/cancel", &json!({})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (404, Some("not_found")));
    p.shutdown().await;
}
