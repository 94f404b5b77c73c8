//! The control routes the console is built on, over real HTTP without a browser: the live feed
//! (server-sent events), paged conversations, reporting, redelivery, pausing a receiver, template
//! creation and edits, a number's messaging-limit use.

mod common;
use common::*;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

const USER: &str = "4915112345678";

/// Reads server-sent events from a streaming answer until `want` of them are in (a bounded
/// wait: the test fails after 10 s).
struct Events {
    resp: reqwest::Response,
    buf: String,
}

impl Events {
    async fn open(h: &Harness) -> Events {
        let resp = h
            .http
            .get(format!("{}/_mynah/events", h.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        Events {
            resp,
            buf: String::new(),
        }
    }

    /// The next event: (name, data).
    async fn next(&mut self) -> (String, Value) {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut name = String::new();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(n) = line.strip_prefix("event:") {
                        name = n.trim().to_string();
                    } else if let Some(d) = line.strip_prefix("data:") {
                        data.push_str(d.trim());
                    }
                }
                if name.is_empty() {
                    continue; // a keep-alive comment
                }
                return (name, serde_json::from_str(&data).unwrap_or(Value::Null));
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.resp.chunk())
                .await
                .expect("an event within 10 s")
                .unwrap()
                .expect("the stream goes on");
            self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// Skips events until one named `name` that `pred` accepts.
    async fn until(&mut self, name: &str, pred: impl Fn(&Value) -> bool) -> Value {
        loop {
            let (n, d) = self.next().await;
            if n == name && pred(&d) {
                return d;
            }
        }
    }
}

#[tokio::test]
async fn the_feed_tells_listeners_what_changed_and_costs_nothing_unwatched() {
    let h = Harness::start(config("")).await;
    assert!(!h.sandbox.feed.watching());
    let mut ev = Events::open(&h).await;
    let (name, hello) = ev.next().await;
    assert_eq!(name, "hello");
    assert_eq!(hello["clock"], "manual");
    assert!(h.sandbox.feed.watching());
    let wamid = h.send_text(USER, "hi").await;
    let m = ev.until("message", |d| d["id"] == wamid.as_str()).await;
    assert_eq!(m["wa_id"], USER);
    assert_eq!(m["direction"], "outbound");
    h.advance(10.0).await;
    ev.until("message", |d| {
        d["id"] == wamid.as_str() && d["status"] == "read"
    })
    .await;
    let c = ev.until("clock", |_| true).await;
    assert_eq!(c["now_ms"], h.control_get("/clock").await.1["now_ms"]);
    // Users, templates and fault rules are announced too.
    h.control(
        Method::PUT,
        &format!("/users/{USER}"),
        &json!({ "reads": false }),
    )
    .await;
    ev.until("user", |d| d["wa_id"] == USER).await;
    h.control(
        Method::POST,
        "/faults",
        &json!({ "match": { "to": "4915100000099" }, "action": { "code": 131026 } }),
    )
    .await;
    ev.until("faults", |_| true).await;
    // The listener gone, the next change finds nobody listening and nothing is noted.
    drop(ev);
    h.send_text(USER, "again").await;
    let mut quiet = false;
    for _ in 0..200 {
        if !h.sandbox.feed.watching() {
            quiet = true;
            break;
        }
        h.send_text(USER, "anyone?").await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(quiet, "the listener count falls back to zero");
    h.shutdown().await;
}

#[tokio::test]
async fn a_conversation_pages_back_with_a_cursor() {
    let h = Harness::start(config("")).await;
    for i in 0..25 {
        h.send_text(USER, &format!("m{i}")).await;
        h.send_text("4915100000002", "other").await;
    }
    let (s, p1) = h
        .control_get(&format!("/messages?wa_id={USER}&limit=10"))
        .await;
    assert_eq!(s, 200, "{p1}");
    let texts = |p: &Value| -> Vec<String> {
        p["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["body"]["text"]["body"].as_str().unwrap().to_string())
            .collect()
    };
    // Oldest first within a page, the newest page first.
    assert_eq!(texts(&p1)[0], "m15");
    assert_eq!(texts(&p1)[9], "m24");
    let next = p1["next"].as_str().unwrap();
    let (_, p2) = h
        .control_get(&format!("/messages?wa_id={USER}&limit=10&before={next}"))
        .await;
    assert_eq!(texts(&p2)[0], "m5");
    let next = p2["next"].as_str().unwrap();
    let (_, p3) = h
        .control_get(&format!("/messages?wa_id={USER}&limit=10&before={next}"))
        .await;
    assert_eq!(texts(&p3).len(), 5);
    assert!(p3.get("next").is_none(), "{p3}");
    // Without a user, the same over everything.
    let (_, all) = h.control_get("/messages?limit=100").await;
    assert_eq!(all["messages"].as_array().unwrap().len(), 50);
    let (s, bad) = h.control_get("/messages?before=yesterday").await;
    assert_eq!(s, 400, "{bad}");
    assert!(bad.to_string().contains("cursor"), "{bad}");
    h.shutdown().await;
}

#[tokio::test]
async fn messages_filter_by_template_and_error_code() {
    let mut cfg = config("");
    cfg.rules.customer_service_window = true;
    let h = Harness::start(cfg).await;
    let (s, b) = h
        .send_360(
            json!({ "messaging_product": "whatsapp", "to": USER, "type": "template",
                          "template": { "name": "hello_world", "language": { "code": "en_US" } } }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let failing = h.send_text(USER, "outside the window").await;
    h.advance(1.0).await;
    let (_, t) = h.control_get("/messages?template=hello_world").await;
    assert_eq!(t["messages"].as_array().unwrap().len(), 1);
    assert_eq!(t["messages"][0]["type"], "template");
    let (_, e) = h.control_get("/messages?error_code=131047").await;
    assert_eq!(e["messages"].as_array().unwrap().len(), 1);
    assert_eq!(e["messages"][0]["id"], failing.as_str());
    let (_, none) = h.control_get("/messages?error_code=131026").await;
    assert_eq!(none["messages"], json!([]));
    h.shutdown().await;
}

#[tokio::test]
async fn a_report_blocks_and_signals_the_reported_template() {
    let mut cfg = config("");
    cfg.rules.quality.enabled = true;
    let h = Harness::start(cfg).await;
    let (_, b) = h
        .send_360(
            json!({ "messaging_product": "whatsapp", "to": USER, "type": "template",
                          "template": { "name": "spring_sale", "language": { "code": "en_US" } } }),
        )
        .await;
    let wamid = b["messages"][0]["id"].as_str().unwrap().to_string();
    h.advance(10.0).await;
    let (s, r) = h
        .control(Method::POST, &format!("/users/{USER}/report"), &json!({}))
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["user"]["behaviour"]["blocks_business"], true);
    assert_eq!(r["reported_message"], wamid.as_str());
    let (_, m) = h.control_get(&format!("/messages/{wamid}")).await;
    assert_eq!(m["reaction"], "report");
    let (_, n) = h.control_get(&format!("/numbers/{PNID}")).await;
    assert_eq!(n["health"]["signals"][0][1], -2, "{n}");
    // Without a body too; an unknown number is refused.
    let (s, _) = h
        .control(Method::POST, &format!("/users/{USER}/report"), &json!(null))
        .await;
    assert_eq!(s, 400);
    let (s, e) = h
        .control(
            Method::POST,
            &format!("/users/{USER}/report"),
            &json!({ "phone_number_id": "1" }),
        )
        .await;
    assert_eq!(s, 404, "{e}");
    h.shutdown().await;
}

#[tokio::test]
async fn an_attempt_is_redelivered_once_and_a_receiver_pauses() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    let wamid = h.send_text(USER, "hello").await;
    h.advance(1.0).await;
    let got = h.wait(&format!("wamid={wamid}&status=sent"), 1).await;
    let seq = got[0]["seq"].as_u64().unwrap();
    let n = rx.received().len();
    let (s, a) = h
        .control(
            Method::POST,
            &format!("/webhooks/attempts/{seq}/redeliver"),
            &json!({}),
        )
        .await;
    assert_eq!(s, 200, "{a}");
    assert_eq!(a["redelivery_of"], seq);
    assert_eq!(a["outcome"], "delivered");
    assert_eq!(rx.received().len(), n + 1);
    assert_eq!(rx.received()[n].body, got[0]["body"].as_str().unwrap());
    let (s, _) = h
        .control(
            Method::POST,
            "/webhooks/attempts/99999/redeliver",
            &json!({}),
        )
        .await;
    assert_eq!(s, 404);
    // Paused: the events wait; resumed: they go, in order.
    let (s, r) = h
        .control(
            Method::POST,
            "/webhooks/receivers/pause",
            &json!({ "url": rx.url }),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["receivers"][0]["paused"], true);
    let before = rx.statuses();
    h.advance(10.0).await;
    assert_eq!(rx.statuses(), before);
    let (_, r) = h.control_get("/webhooks/receivers").await;
    assert!(r["receivers"][0]["queued"].as_u64().unwrap() >= 1, "{r}");
    let (s, _) = h
        .control(
            Method::POST,
            "/webhooks/receivers/resume",
            &json!({ "url": rx.url }),
        )
        .await;
    assert_eq!(s, 200);
    h.wait(&format!("wamid={wamid}&status=read"), 1).await;
    let after = rx.statuses();
    assert_eq!(after[..before.len()], before[..]);
    assert_eq!(after.last().map(|(_, s)| s.as_str()), Some("read"));
    let (s, e) = h
        .control(
            Method::POST,
            "/webhooks/receivers/pause",
            &json!({ "url": "http://127.0.0.1:1/nobody" }),
        )
        .await;
    assert_eq!(s, 404, "{e}");
    h.shutdown().await;
}

#[tokio::test]
async fn templates_are_created_and_edited_through_the_control_api() {
    let h = Harness::start(config("")).await;
    let (s, e) = h
        .control(
            Method::POST,
            "/templates",
            &json!({ "name": "parcel", "language": "en_US", "category": "UTILITY",
                     "components": [ { "type": "BODY", "text": "Your parcel {{1 is here." } ] }),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    let details = e["error"]["error_data"]["details"].as_str().unwrap();
    assert!(details.contains("components[0].text"), "{details}");
    let (s, t) = h
        .control(
            Method::POST,
            "/templates",
            &json!({ "name": "parcel", "language": "en_US", "category": "UTILITY",
                     "components": [ { "type": "BODY", "text": "Your parcel {{1}} is here.",
                                       "example": { "body_text": [["A-1"]] } } ] }),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    assert_eq!(t["status"], "PENDING");
    let id = t["id"].as_str().unwrap();
    let (_, got) = h.control_get(&format!("/templates/{id}")).await;
    assert_eq!(got["def"]["name"], "parcel");
    // Reviewed after a minute; an approved template takes edits.
    h.advance(61.0).await;
    let (s, edited) = h
        .control(
            Method::POST,
            &format!("/templates/{id}"),
            &json!({ "components": [ { "type": "BODY", "text": "Your parcel {{1}} has arrived.",
                                       "example": { "body_text": [["A-1"]] } } ] }),
        )
        .await;
    assert_eq!(s, 200, "{edited}");
    assert_eq!(
        edited["def"]["components"][0]["text"],
        "Your parcel {{1}} has arrived."
    );
    let (s, _) = h.control_get("/templates/404").await;
    assert_eq!(s, 404);
    h.shutdown().await;
}

#[tokio::test]
async fn a_number_shows_its_messaging_limit_use() {
    let mut cfg = config("");
    cfg.rules.messaging_limit = mynah_sandbox::config::RulesConfig::default().messaging_limit;
    let h = Harness::start(cfg).await;
    for i in 0..3 {
        let (s, b) = h
            .send_360(json!({ "messaging_product": "whatsapp", "to": format!("49151000000{i:02}"), "type": "template",
                              "template": { "name": "hello_world", "language": { "code": "en_US" } } }))
            .await;
        assert_eq!(s, 200, "{b}");
    }
    let (s, n) = h.control_get(&format!("/numbers/{PNID}")).await;
    assert_eq!(s, 200, "{n}");
    assert_eq!(
        n["messaging_limit"],
        json!({ "tier": "TIER_250", "unique_users": 250, "used": 3, "window_ms": 86_400_000 })
    );
    // A day later the window is empty again.
    h.advance(86_400.0).await;
    let (_, n) = h.control_get(&format!("/numbers/{PNID}")).await;
    assert_eq!(n["messaging_limit"]["used"], 0);
    let (s, _) = h.control_get("/numbers/1").await;
    assert_eq!(s, 404);
    h.shutdown().await;
}

#[tokio::test]
async fn a_change_from_another_site_is_refused() {
    let h = Harness::start(config("")).await;
    let host = h.base.trim_start_matches("http://").to_string();
    let post = |origin: Option<String>, site: Option<&'static str>| {
        let mut r = h
            .http
            .post(format!("{}/_mynah/clock/advance", h.base))
            .json(&json!({ "seconds": 1 }));
        if let Some(o) = origin {
            r = r.header("Origin", o);
        }
        if let Some(s) = site {
            r = r.header("Sec-Fetch-Site", s);
        }
        r.send()
    };
    let r = post(Some("http://evil.example".into()), None)
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert!(body.to_string().contains("cross-site"), "{body}");
    let r = post(None, Some("cross-site")).await.unwrap();
    assert_eq!(r.status(), 403);
    // The console's own origin, and clients without one, may.
    let r = post(Some(format!("http://{host}")), Some("same-origin"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = post(None, None).await.unwrap();
    assert_eq!(r.status(), 200);
    // Reading stays open (the browser itself keeps other sites from reading the answers).
    let r = h
        .http
        .get(format!("{}/_mynah/clock", h.base))
        .header("Origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(!r.headers().contains_key("access-control-allow-origin"));
    h.shutdown().await;
}

/// A user's messages through the index agree with a scan of everything, as messages arrive and
/// the oldest are forgotten (`retention.max_messages`).
#[tokio::test]
async fn the_per_user_index_agrees_with_a_scan() {
    let mut cfg = config("");
    cfg.retention.max_messages = 30;
    let h = Harness::start(cfg).await;
    let users = ["4915100000001", "4915100000002", "4915100000003"];
    let ids = |v: &Value| -> Vec<String> {
        v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect()
    };
    for round in 0..4 {
        for i in 0..12 {
            let to = users[(i * 7 + round) % 3];
            h.send_text(to, &format!("r{round} m{i}")).await;
            if i % 4 == 0 {
                let (s, r) = h
                    .control(
                        Method::POST,
                        "/inbound",
                        &json!({ "from": to, "type": "text", "text": { "body": "hi" } }),
                    )
                    .await;
                assert_eq!(s, 200, "{r}");
            }
        }
        // Finished messages can be forgotten.
        h.advance(10.0).await;
        let (_, all) = h.control_get("/messages?limit=1000").await;
        assert!(all["messages"].as_array().unwrap().len() <= 32, "{round}");
        for u in users {
            let (_, mine) = h
                .control_get(&format!("/messages?wa_id={u}&limit=1000"))
                .await;
            let scanned: Vec<String> = all["messages"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["wa_id"] == u)
                .map(|m| m["id"].as_str().unwrap().to_string())
                .collect();
            assert_eq!(ids(&mine), scanned, "round {round}, user {u}");
        }
    }
    h.shutdown().await;
}

#[tokio::test]
async fn a_template_for_an_unknown_account_is_refused() {
    let h = Harness::start(config("")).await;
    let (s, e) = h
        .control(
            Method::POST,
            "/templates?waba_id=1",
            &json!({ "name": "x_y", "language": "en_US", "category": "UTILITY",
                     "components": [ { "type": "BODY", "text": "hello there" } ] }),
        )
        .await;
    assert_eq!(s, 404, "{e}");
    let (_, list) = h.control_get("/templates").await;
    assert!(!list.to_string().contains("x_y"));
    h.shutdown().await;
}
