//! End-to-end harness: a real sandbox and a real gateway on loopback ports, wired as
//! `mynah serve` wires them (the gateway's intake is subscribed to every sandbox webhook; the
//! gateway's upstream is the sandbox), and a small app client.
#![allow(dead_code)]

use mynah_gateway::Gateway;
use mynah_gateway::clock::Clock;
use mynah_gateway::config::Config as GwConfig;
use mynah_gateway::store::sqlite::{SqliteOptions, SqliteStore};
use mynah_gateway::upstream::UpstreamConfig;
use mynah_sandbox::Sandbox;
use mynah_sandbox::config::{ClockMode, Config as SbConfig};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub use mynah_sandbox::config::{DEV_API_KEY, DEV_APP_SECRET, DEV_PHONE_NUMBER_ID};

pub const KEY: &str = "test-gateway-key";

/// Both planes.
pub struct Pair {
    pub sandbox: Arc<Sandbox>,
    pub sb_base: String,
    pub gw: Arc<Gateway<SqliteStore>>,
    pub gw_base: String,
    pub http: reqwest::Client,
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    store: SqliteStore,
}

/// A sandbox config for gateway tests: system clock (the gateway paces in real time), fast
/// latencies, rules off unless a test turns them on.
pub fn sandbox_config() -> SbConfig {
    let mut cfg = SbConfig {
        seed: 7,
        ..SbConfig::default()
    };
    cfg.clock.mode = ClockMode::System;
    cfg.rules = mynah_sandbox::config::RulesConfig::off();
    let fast = |ms| mynah_sandbox::config::Latency {
        min_ms: ms,
        max_ms: ms,
    };
    cfg.latency.sent = fast(5);
    cfg.latency.delivered = fast(5);
    cfg.latency.read = fast(5);
    cfg.latency.reply = fast(5);
    cfg.webhooks.initial_backoff_ms = 100;
    cfg
}

/// A gateway config for tests (the upstream is filled in by [`Pair::start`]).
pub fn gateway_config() -> GwConfig {
    let mut cfg = GwConfig {
        gateway_key: KEY.to_string(),
        app_secret: DEV_APP_SECRET.to_string(),
        template_sync_ms: 0,
        ..GwConfig::default()
    };
    cfg.dispatch.lease_ms = 5_000;
    cfg
}

impl Pair {
    pub async fn start(sb_cfg: SbConfig, gw_cfg: GwConfig) -> Pair {
        Pair::start_with_clock(sb_cfg, gw_cfg, Arc::new(Clock::System)).await
    }

    pub async fn start_with_clock(sb_cfg: SbConfig, gw_cfg: GwConfig, clock: Arc<Clock>) -> Pair {
        Pair::start_wired(sb_cfg, gw_cfg, clock, true).await
    }

    /// Both planes, the gateway's upstream the sandbox; the sandbox's webhooks go to the gateway
    /// only when `wired`.
    pub async fn start_wired(
        mut sb_cfg: SbConfig,
        mut gw_cfg: GwConfig,
        clock: Arc<Clock>,
        wired: bool,
    ) -> Pair {
        let stop = CancellationToken::new();
        let gw_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gw_base = format!("http://{}", gw_listener.local_addr().unwrap());
        if wired {
            sb_cfg.webhooks.subscribers = vec![format!("{gw_base}/webhooks")];
        }
        gw_cfg.listen = gw_listener.local_addr().unwrap().to_string();
        let sandbox = Sandbox::open(sb_cfg).await.expect("sandbox opens");
        let sb_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sb_base = format!("http://{}", sb_listener.local_addr().unwrap());
        sandbox.set_base_url(&sb_base);
        let mut tasks = Vec::new();
        let (sb, s) = (sandbox.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            mynah_sandbox::http::run(sb_listener, sb, s).await.unwrap();
        }));
        let mut upstream = UpstreamConfig::d360(&sb_base, DEV_API_KEY);
        upstream.phone_number_id = Some(DEV_PHONE_NUMBER_ID.to_string());
        upstream.timeout_ms = 2_000;
        gw_cfg.upstream = upstream;
        let store = SqliteStore::open(None, SqliteOptions::default())
            .await
            .unwrap();
        let gw = Gateway::new(gw_cfg, store.clone(), clock).unwrap();
        let (g, s) = (gw.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            mynah_gateway::run(gw_listener, g, s).await.unwrap();
        }));
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let pair = Pair {
            sandbox,
            sb_base,
            gw,
            gw_base,
            http,
            stop,
            tasks,
            store,
        };
        // The template cache is filled from the sandbox before tests send templates.
        let (s, b) = pair.post("/v1/templates/sync", &json!({})).await;
        assert_eq!(s, 200, "{b}");
        pair
    }

    pub async fn shutdown(mut self) {
        self.stop.cancel();
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        self.store.close().await;
    }

    /// POST to the gateway's app API.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send_json(reqwest::Method::POST, path, body).await
    }

    /// PUT to the gateway's app API.
    pub async fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send_json(reqwest::Method::PUT, path, body).await
    }

    async fn send_json(&self, method: reqwest::Method, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .request(method, format!("{}{path}", self.gw_base))
            .bearer_auth(KEY)
            .json(body)
            .send()
            .await
            .unwrap();
        split(r).await
    }

    /// GET from the gateway's app API.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.gw_base))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        split(r).await
    }

    /// A request to the sandbox's control API.
    pub async fn control(&self, method: reqwest::Method, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .request(method, format!("{}/_mynah{path}", self.sb_base))
            .json(body)
            .send()
            .await
            .unwrap();
        split(r).await
    }

    /// Records an opt-in.
    pub async fn opt_in(&self, wa_id: &str, category: &str) {
        let (s, b) = self
            .put(
                &format!("/v1/contacts/{wa_id}/consents/{category}"),
                &json!({ "status": "opted_in", "source": "test" }),
            )
            .await;
        assert_eq!(s, 200, "{b}");
    }

    /// Enqueues a message; returns its id.
    pub async fn send(&self, body: Value) -> String {
        let (s, b) = self.post("/v1/messages", &body).await;
        assert_eq!(s, 202, "{b}");
        b["id"].as_str().unwrap().to_string()
    }

    /// A user writes to the business (opens the window at the gateway once the webhook is in).
    pub async fn inbound(&self, from: &str, text: &str) {
        let (s, b) = self
            .control(
                reqwest::Method::POST,
                "/inbound",
                &json!({ "from": from, "type": "text", "text": { "body": text } }),
            )
            .await;
        assert_eq!(s, 200, "{b}");
    }

    /// Posts a signed status webhook (Cloud shape, no `biz_opaque_callback_data`) to the
    /// gateway's intake, as the platform would; returns the HTTP status.
    pub async fn post_status(&self, wamid: &str, status: &str, to: &str) -> u16 {
        let body = json!({
            "object": "whatsapp_business_account",
            "entry": [{ "id": "waba", "changes": [{ "field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": { "display_phone_number": "15550000000", "phone_number_id": DEV_PHONE_NUMBER_ID },
                "statuses": [{ "id": wamid, "status": status, "timestamp": "1700000000", "recipient_id": to }]
            } }] }]
        })
        .to_string();
        let r = self
            .http
            .post(format!("{}/webhooks", self.gw_base))
            .header("content-type", "application/json")
            .header(
                "X-Hub-Signature-256",
                mynah_sandbox::webhooks::sign(DEV_APP_SECRET, body.as_bytes()),
            )
            .body(body)
            .send()
            .await
            .unwrap();
        r.status().as_u16()
    }

    /// Polls a message until `pred` holds (bounded: 40 s), returning it.
    pub async fn until(&self, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        let deadline = std::time::Instant::now() + Duration::from_secs(40);
        while std::time::Instant::now() < deadline {
            let (_, m) = self.get(&format!("/v1/messages/{id}")).await;
            if pred(&m) {
                return m;
            }
            last = m;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("message {id} never reached {what} within 40 s: {last:#}");
    }

    /// Polls until the message is in `state`.
    pub async fn until_state(&self, id: &str, state: &str) -> Value {
        self.until(id, state, |m| m["state"] == state).await
    }
}

/// The event types of a message's timeline.
pub fn event_types(m: &Value) -> Vec<String> {
    m["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["type"].as_str().unwrap_or("").to_string())
        .collect()
}

pub fn template(name: &str, to: &str) -> Value {
    json!({ "to": to, "type": "template", "template": { "name": name, "language": { "code": "en_US" } } })
}

pub fn text(to: &str, body: &str) -> Value {
    json!({ "to": to, "type": "text", "text": { "body": body } })
}

/// Enqueues `n` templates concurrently; returns their ids in order.
pub async fn enqueue_many(p: &Pair, n: usize, body: impl Fn(usize) -> Value) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(50) {
        let sends = chunk.iter().map(|i| p.send(body(*i)));
        ids.extend(futures_util::future::join_all(sends).await);
    }
    ids
}

/// Waits until `count` messages are in `state` (bounded).
pub async fn until_count(p: &Pair, state: &str, count: usize) -> Vec<Value> {
    let mut last = 0;
    for _ in 0..3_000 {
        let (_, l) = p
            .get(&format!("/v1/messages?state={state}&limit=1000"))
            .await;
        let mut all: Vec<Value> = l["messages"].as_array().cloned().unwrap_or_default();
        let mut next = l["next"].as_str().map(str::to_string);
        while let Some(after) = next {
            let (_, more) = p
                .get(&format!(
                    "/v1/messages?state={state}&limit=1000&after={after}"
                ))
                .await;
            all.extend(more["messages"].as_array().cloned().unwrap_or_default());
            next = more["next"].as_str().map(str::to_string);
        }
        if all.len() >= count {
            return all;
        }
        last = all.len();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("only {last} of {count} messages reached {state}");
}

async fn split(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}
