//! `POST /_mynah/reset` and id uniqueness: a reset goes back to the first-start state but never
//! hands out an id it handed out before — neither does a restart of the same data directory —
//! while a fresh start with the same seed and the same requests repeats the first run's ids.

mod common;
use common::*;
use mynah_sandbox::config::{Config, MANUAL_CLOCK_START, NumberConfig};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// The ids one pass of the script drew.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Drawn {
    wamid: String,
    template_id: String,
    media_id: String,
    trace_id: String,
}

impl Drawn {
    fn all(&self) -> [&String; 4] {
        [
            &self.wamid,
            &self.template_id,
            &self.media_id,
            &self.trace_id,
        ]
    }
}

/// A send, a template creation (named after `tag`: names must be unique in an account), an
/// upload and a refused request.
async fn script(h: &Harness, tag: &str) -> Drawn {
    let (s, b) = h.send_360(text("4915100000001", "hello")).await;
    assert_eq!(s, 200, "{b}");
    let wamid = b["messages"][0]["id"].as_str().unwrap().to_string();
    let (s, b) = h
        .post_360(
            "/v1/configs/templates",
            &json!({ "name": format!("probe_{tag}"), "language": "en_US", "category": "UTILITY",
                     "components": [{ "type": "BODY", "text": "Your parcel is on its way." }] }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let template_id = b["id"].as_str().unwrap().to_string();
    let media_id = h.upload_png(b"pixel").await;
    let (s, b) = h.send_360(json!({ "messaging_product": "whatsapp" })).await;
    assert_eq!(s, 400, "{b}");
    let trace_id = b["error"]["fbtrace_id"].as_str().unwrap().to_string();
    Drawn {
        wamid,
        template_id,
        media_id,
        trace_id,
    }
}

async fn reset(h: &Harness, body: Option<Value>) -> Value {
    let mut req = h.http.post(format!("{}/_mynah/reset", h.base));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{v}");
    v
}

async fn now_ms(h: &Harness) -> i64 {
    h.control_get("/clock").await.1["now_ms"].as_i64().unwrap()
}

fn assert_new(seen: &mut BTreeSet<String>, d: &Drawn, when: &str) {
    for id in d.all() {
        assert!(
            seen.insert(id.clone()),
            "{when}: {id} was handed out before"
        );
    }
}

#[tokio::test]
async fn ids_after_a_reset_were_never_handed_out_before() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    let mut seen = BTreeSet::new();
    let before = script(&h, "x").await;
    assert_new(&mut seen, &before, "first run");
    h.advance(10.0).await;
    h.wait(&format!("wamid={}&status=read", before.wamid), 1)
        .await;
    let r = reset(&h, None).await;
    assert_eq!(r["epoch"], 1, "{r}");
    // The same script again: the same template name is free again, the ids are all new.
    let after = script(&h, "x").await;
    assert_new(&mut seen, &after, "after the reset");
    // The status webhooks of the new message go out under the new wamid.
    h.advance(10.0).await;
    let got = h
        .wait(&format!("wamid={}&status=read", after.wamid), 1)
        .await;
    assert_eq!(got.len(), 1);
    let r = reset(&h, Some(json!({}))).await;
    assert_eq!(r["epoch"], 2, "{r}");
    assert_new(&mut seen, &script(&h, "x").await, "after the second reset");
    h.shutdown().await;
}

#[tokio::test]
async fn ids_stay_unique_across_restarts_and_resets_and_a_fresh_dir_repeats_them() {
    let rx = Receiver::start().await;
    let dir = temp_dir("reset-ids");
    let mut cfg = config(&rx.url);
    cfg.data_dir = Some(dir.clone());
    let mut seen = BTreeSet::new();
    let mut first_dir = Vec::new();
    // Start, restart, reset, restart, reset without a restart in between.
    let h = Harness::start(cfg.clone()).await;
    let d = script(&h, "a").await;
    assert_new(&mut seen, &d, "first start");
    first_dir.push(d);
    h.shutdown().await;
    let h = Harness::start(cfg.clone()).await;
    let d = script(&h, "b").await;
    assert_new(&mut seen, &d, "after a restart");
    first_dir.push(d);
    assert_eq!(reset(&h, None).await["epoch"], 1);
    let d = script(&h, "c").await;
    assert_new(&mut seen, &d, "after a reset");
    first_dir.push(d);
    h.shutdown().await;
    let h = Harness::start(cfg.clone()).await;
    let d = script(&h, "d").await;
    assert_new(&mut seen, &d, "after a reset and a restart");
    first_dir.push(d);
    assert_eq!(
        reset(&h, None).await["epoch"],
        2,
        "the epoch survives restarts"
    );
    let d = script(&h, "e").await;
    assert_new(&mut seen, &d, "after a second reset");
    first_dir.push(d);
    h.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);

    // A fresh data directory, same seed, same requests: the same ids, step by step.
    let dir = temp_dir("reset-ids-fresh");
    cfg.data_dir = Some(dir.clone());
    let mut again = Vec::new();
    let h = Harness::start(cfg.clone()).await;
    again.push(script(&h, "a").await);
    h.shutdown().await;
    let h = Harness::start(cfg.clone()).await;
    again.push(script(&h, "b").await);
    reset(&h, None).await;
    again.push(script(&h, "c").await);
    h.shutdown().await;
    let h = Harness::start(cfg.clone()).await;
    again.push(script(&h, "d").await);
    reset(&h, None).await;
    again.push(script(&h, "e").await);
    h.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(again, first_dir);

    // And the first start of a data directory draws what an ephemeral sandbox draws.
    cfg.data_dir = None;
    let h = Harness::start(cfg).await;
    assert_eq!(script(&h, "a").await, first_dir[0]);
    h.shutdown().await;
}

#[tokio::test]
async fn reset_removes_added_numbers_restores_webhooks_and_the_clock() {
    let rx = Receiver::start().await;
    let other = Receiver::start().await;
    let mut cfg: Config = config("");
    cfg.accounts = vec![mynah_sandbox::config::AccountConfig {
        numbers: vec![NumberConfig {
            webhook_url: rx.url.clone(),
            ..NumberConfig::default()
        }],
        ..Default::default()
    }];
    let h = Harness::start(cfg).await;
    let (s, b) = h
        .control(
            Method::POST,
            "/numbers",
            &json!({ "phone_number_id": "200000000000001", "display_phone_number": "15550000001",
                     "api_key": "second-key", "webhook_url": other.url }),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    h.set_webhook(&other.url).await;
    let (_, b) = h
        .control(
            Method::PUT,
            "/users/4915100000009",
            &json!({ "reads": false }),
        )
        .await;
    assert_eq!(b["behaviour"]["reads"], false);
    h.advance(3_600.0).await;
    assert_eq!(now_ms(&h).await, MANUAL_CLOCK_START + 3_600_000);

    // A reset with no body at all.
    let r = reset(&h, None).await;
    assert_eq!(r["now_ms"], MANUAL_CLOCK_START, "{r}");
    assert_eq!(now_ms(&h).await, MANUAL_CLOCK_START);
    let (_, numbers) = h.control_get("/numbers").await;
    let ids: Vec<&str> = numbers["numbers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["phone_number_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![PNID], "the added number is gone");
    let r = h
        .http
        .post(format!("{}/messages", h.base))
        .header("D360-API-KEY", "second-key")
        .json(&text("4915100000009", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "its key no longer works");
    let (s, cfg_now) = {
        let r = h
            .http
            .get(format!("{}/v1/configs/webhook", h.base))
            .header("D360-API-KEY", KEY)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    assert_eq!(s, 200);
    assert_eq!(cfg_now["url"], json!(rx.url), "the configured URL is back");
    let (s, _) = h.control_get("/users/4915100000009").await;
    assert_eq!(s, 404, "users are back to the configured ones");
    // Webhooks go to the configured URL again.
    let (s, b) = h.send_360(text("4915100000009", "after")).await;
    assert_eq!(s, 200, "{b}");
    let w = b["messages"][0]["id"].as_str().unwrap().to_string();
    h.advance(10.0).await;
    let got = h.wait(&format!("wamid={w}&status=read"), 1).await;
    assert_eq!(got[0]["url"], json!(rx.url));

    // keep_clock leaves the manual clock where it is.
    let before = now_ms(&h).await;
    assert!(before > MANUAL_CLOCK_START);
    let r = reset(&h, Some(json!({ "keep_clock": true }))).await;
    assert_eq!(r["now_ms"], before, "{r}");
    assert_eq!(now_ms(&h).await, before);
    let (s, b) = h
        .control(Method::POST, "/reset", &json!({ "keep_clok": true }))
        .await;
    assert_eq!(s, 400, "an unknown option is refused: {b}");
    // The attempt history went with the reset.
    let (_, a) = h.control_get("/webhooks/attempts").await;
    assert_eq!(a["attempts"], json!([]));
    h.shutdown().await;
}

#[tokio::test]
async fn a_reset_clock_and_the_rate_limits_start_over_together() {
    // Buckets drained at a later time must not refuse requests once the clock went back.
    let rx = Receiver::start().await;
    let mut cfg = config(&rx.url);
    cfg.limits.messages_burst = Some(2);
    cfg.limits.messages_per_second = Some(1);
    let h = Harness::start(cfg).await;
    h.advance(3_600.0).await;
    for _ in 0..2 {
        assert_eq!(h.send_360(text("4915100000001", "x")).await.0, 200);
    }
    assert_eq!(h.send_360(text("4915100000001", "x")).await.0, 429);
    reset(&h, None).await;
    assert_eq!(now_ms(&h).await, MANUAL_CLOCK_START);
    for _ in 0..2 {
        let (s, b) = h.send_360(text("4915100000001", "x")).await;
        assert_eq!(s, 200, "{b}");
    }
    h.shutdown().await;
}
