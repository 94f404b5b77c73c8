//! `mynah serve` as a new user meets it: real processes of the real binary on loopback ports.
//!
//! - A webhook URL the user registers never takes the sandbox's webhooks away from the gateway,
//!   and a restart with another gateway port still delivers (the address is recomputed).
//! - After `POST /_mynah/reset` new sends get new ids, so their statuses are applied, not
//!   dropped as duplicates.
//! - `--gateway-config` takes the README's gateway configuration.
//! - A burst of 240 messages stays under every limit of the number: no `throttled` event.
//! - `--log-format json` writes one JSON object per line; `--log-level warn` drops the info lines.
#![cfg(unix)]

mod common;

use common::{Proc, Scratch, free_port, serve_args, spawn_mynah};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const GW_KEY: &str = "mynah-gateway-key";
const D360_KEY: &str = "mynah-dev-key";

/// A running `mynah serve`.
struct Serve {
    proc: Proc,
    sb: String,
    gw: String,
}

/// Starts `mynah serve` with its data in `dir` and waits until both planes answer.
async fn serve(dir: &Path, extra: &[&str]) -> Serve {
    let (sb_port, gw_port) = (free_port(), free_port());
    let mut args = serve_args(dir, sb_port, gw_port);
    args.extend(extra.iter().map(|a| a.to_string()));
    let proc = spawn_mynah(dir, "serve", args);
    let s = Serve {
        proc,
        sb: format!("http://127.0.0.1:{sb_port}"),
        gw: format!("http://127.0.0.1:{gw_port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    for url in [
        format!("{}/_mynah/health", s.sb),
        format!("{}/readyz", s.gw),
    ] {
        loop {
            if let Ok(r) = client().get(&url).send().await
                && r.status() == 200
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{url} did not answer within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    s
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

async fn call(req: reqwest::RequestBuilder) -> (u16, Value) {
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

impl Serve {
    async fn gw_post(&self, path: &str, body: &Value, key: &str) -> (u16, Value) {
        call(
            client()
                .post(format!("{}{path}", self.gw))
                .bearer_auth(key)
                .json(body),
        )
        .await
    }

    async fn gw_get(&self, path: &str) -> (u16, Value) {
        call(
            client()
                .get(format!("{}{path}", self.gw))
                .bearer_auth(GW_KEY),
        )
        .await
    }

    async fn opt_in(&self, wa_id: &str) {
        let (s, b) = call(
            client()
                .put(format!("{}/v1/contacts/{wa_id}/consents/utility", self.gw))
                .bearer_auth(GW_KEY)
                .json(&json!({ "status": "opted_in", "source": "test" })),
        )
        .await;
        assert_eq!(s, 200, "{b}");
    }

    /// Sends hello_world through the gateway; returns the message id.
    async fn send(&self, to: &str, key: &str) -> String {
        let body = json!({ "to": to, "type": "template",
            "template": { "name": "hello_world", "language": { "code": "en_US" } } });
        let (s, b) = self.gw_post("/v1/messages", &body, key).await;
        assert_eq!(s, 202, "{b}");
        b["id"].as_str().expect("an id").to_string()
    }

    /// Waits until the gateway has applied the message's `delivered` status.
    async fn delivered(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, m) = self.gw_get(&format!("/v1/messages/{id}")).await;
            if m["delivered_at"].is_number() {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "{id} was not delivered within 30 s: {m:#}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A webhook receiver of the user's on a real port: keeps every body.
async fn receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_webhook_and_another_gateway_port_leave_the_planes_wired() {
    let dir = Scratch::new("serve", "wired");
    let mut s = serve(&dir.0, &[]).await;
    // The user follows the README: registers a webhook URL of their own.
    let (hook, got) = receiver().await;
    let (st, b) = call(
        client()
            .post(format!("{}/v1/configs/webhook", s.sb))
            .header("D360-API-KEY", D360_KEY)
            .json(&json!({ "url": hook })),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    let user = "4915112345601";
    s.opt_in(user).await;
    let id = s.send(user, GW_KEY).await;
    let m = s.delivered(&id).await;
    // Both got the statuses: the gateway (it applied them) and the user's receiver.
    let wamid = m["wamid"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !got.lock().unwrap().iter().any(|b| b.contains(&wamid)) {
        assert!(Instant::now() < deadline, "the user's receiver got nothing");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, health) = s.gw_get("/health").await;
    assert_eq!(health["status"], "ok", "{health}");
    assert!(
        health["webhooks"]["last_received_at"].is_number(),
        "{health}"
    );

    // Restart on the same data directory with another gateway port: still wired.
    s.proc.terminate();
    let s = serve(&dir.0, &[]).await;
    s.opt_in("4915112345602").await;
    let id2 = s.send("4915112345602", GW_KEY).await;
    s.delivered(&id2).await;
    let banner = std::fs::read_to_string(dir.join("serve.out")).unwrap();
    assert!(
        banner.contains(&format!("{}/webhooks gets every webhook too", s.gw)),
        "the banner says where the webhooks also go: {banner}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_reset_new_sends_get_new_ids_and_their_statuses_apply() {
    let dir = Scratch::new("serve", "reset");
    let s = serve(&dir.0, &["--log-format", "json"]).await;
    let user = "4915112345603";
    s.opt_in(user).await;
    let first = s.send(user, GW_KEY).await;
    let first = s.delivered(&first).await;
    let (st, b) = call(client().post(format!("{}/_mynah/reset", s.sb))).await;
    assert_eq!(st, 200, "{b}");
    let second = s.send(user, GW_KEY).await;
    let second = s.delivered(&second).await;
    assert_ne!(first["wamid"], second["wamid"]);
    let kinds: Vec<&str> = second["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert!(kinds.contains(&"status.delivered"), "{kinds:?}");
    // --log-format json: every line of the log is a JSON object.
    let log = std::fs::read_to_string(dir.join("serve.log")).unwrap();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "gateway listening; its upstream is the sandbox"),
        "{log}"
    );
    assert!(lines.iter().all(|l| l["level"].is_string()), "{log}");
}

/// The TOML block of the README that configures the gateway.
fn readme_gateway_config() -> String {
    let readme = include_str!("../../../README.md");
    readme
        .split("```toml")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .find(|b| b.contains("restart_policy"))
        .expect("the README has a gateway configuration example")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_takes_the_readme_gateway_configuration() {
    let dir = Scratch::new("serve", "config");
    let text = readme_gateway_config();
    let file = dir.join("gateway.toml");
    std::fs::write(&file, &text).unwrap();
    let key: toml_key::Key = toml_key::gateway_key(&text);
    let s = serve(
        &dir.0,
        &[
            "--gateway-config",
            file.to_str().unwrap(),
            "--log-level",
            "warn",
        ],
    )
    .await;
    // The file's key is the one that works.
    let body = json!({ "to": "4915112345604", "type": "template",
        "template": { "name": "hello_world", "language": { "code": "en_US" } } });
    let (st, _) = s.gw_post("/v1/messages", &body, GW_KEY).await;
    assert_eq!(st, 401, "the default key no longer opens the gateway");
    let (st, b) = call(
        client()
            .put(format!(
                "{}/v1/contacts/4915112345604/consents/utility",
                s.gw
            ))
            .bearer_auth(&key.0)
            .json(&json!({ "status": "opted_in", "source": "test" })),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    let id = s.send("4915112345604", &key.0).await;
    // The upstream is the embedded sandbox whatever the file says, and statuses come back.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, m) = call(
            client()
                .get(format!("{}/v1/messages/{id}", s.gw))
                .bearer_auth(&key.0),
        )
        .await;
        if m["delivered_at"].is_number() {
            break;
        }
        assert!(Instant::now() < deadline, "not delivered: {m:#}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let banner = std::fs::read_to_string(dir.join("serve.out")).unwrap();
    assert!(banner.contains("gateway.toml"), "{banner}");
    // --log-level warn: the start lines (info) are not there.
    let log = std::fs::read_to_string(dir.join("serve.log")).unwrap();
    assert!(!log.contains("INFO"), "{log}");
}

/// Reads `gateway_key` from the TOML text (the test has no TOML parser of its own).
mod toml_key {
    pub struct Key(pub String);

    pub fn gateway_key(text: &str) -> Key {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with("gateway_key"))
            .expect("the example sets gateway_key");
        let value = line.split('"').nth(1).expect("a quoted key");
        Key(value.to_string())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_240_messages_is_never_throttled() {
    let dir = Scratch::new("serve", "burst");
    let s = serve(&dir.0, &[]).await;
    let users: Vec<String> = (0..240).map(|i| format!("49151100{i:05}")).collect();
    let rows: Vec<Value> = users
        .iter()
        .map(|u| json!({ "wa_id": u, "category": "utility", "status": "opted_in", "source": "test" }))
        .collect();
    let (st, b) = s.gw_post("/v1/consents/import", &json!(rows), GW_KEY).await;
    assert_eq!((st, b["imported"].as_u64()), (200, Some(240)), "{b}");
    // One after another: each answer comes after its commit, and the 240 take well under a
    // second, a burst for a number limited to 50/s.
    let mut ids = Vec::with_capacity(users.len());
    for u in &users {
        ids.push(s.send(u, GW_KEY).await);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    for id in &ids {
        loop {
            let (_, m) = s.gw_get(&format!("/v1/messages/{id}")).await;
            if m["wamid"].is_string() {
                let kinds: Vec<&str> = m["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|e| e["type"].as_str())
                    .collect();
                for bad in ["throttled", "attempt_failed", "number_paused"] {
                    assert!(!kinds.contains(&bad), "{id}: {kinds:?}");
                }
                break;
            }
            assert!(Instant::now() < deadline, "{id} was never sent: {m:#}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let (_, health) = s.gw_get("/health").await;
    assert_eq!(health["throttle"]["signals"], 0, "{health}");
}
