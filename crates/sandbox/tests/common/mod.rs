//! Test harness: a sandbox on a real loopback port, a real webhook receiver, and a small client.
//! Tests run on the manual clock and wait through the control API; they never sleep.
#![allow(dead_code)]

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use mynah_sandbox::Sandbox;
use mynah_sandbox::config::{ClockMode, Config};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

// Not every test binary uses every name.
#[allow(unused_imports)]
pub use mynah_sandbox::config::{
    DEV_API_KEY as KEY, DEV_APP_SECRET as SECRET, DEV_PHONE_NUMBER_ID as PNID, DEV_TOKEN as TOKEN,
};

/// One POST the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("webhook body is JSON")
    }
}

/// A webhook receiver on a real port. It answers 200, or 500 while `fail_next` is above zero.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    pub got: Arc<Mutex<Vec<Received>>>,
    pub fail_next: Arc<AtomicUsize>,
    stop: CancellationToken,
}

#[derive(Clone)]
struct RecvState {
    got: Arc<Mutex<Vec<Received>>>,
    fail_next: Arc<AtomicUsize>,
}

async fn recv(State(s): State<RecvState>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let failing = s
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if failing {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    s.got.lock().unwrap().push(Received { headers, body });
    StatusCode::OK
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let got = Arc::new(Mutex::new(Vec::new()));
        let fail_next = Arc::new(AtomicUsize::new(0));
        let state = RecvState {
            got: got.clone(),
            fail_next: fail_next.clone(),
        };
        let app = axum::Router::new()
            .route("/hook", post(recv))
            .with_state(state);
        let stop = CancellationToken::new();
        let s = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { s.cancelled().await })
                .await
                .unwrap();
        });
        Receiver {
            url,
            got,
            fail_next,
            stop,
        }
    }

    /// Every body received so far.
    pub fn bodies(&self) -> Vec<Value> {
        self.got.lock().unwrap().iter().map(|r| r.json()).collect()
    }

    /// Every POST received so far.
    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Every status object received, as (wamid, status) in arrival order.
    pub fn statuses(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for b in self.bodies() {
            for e in b["entry"].as_array().into_iter().flatten() {
                for c in e["changes"].as_array().into_iter().flatten() {
                    for s in c["value"]["statuses"].as_array().into_iter().flatten() {
                        out.push((
                            s["id"].as_str().unwrap().to_string(),
                            s["status"].as_str().unwrap().to_string(),
                        ));
                    }
                }
            }
        }
        out
    }

    pub fn stop(&self) {
        self.stop.cancel();
    }
}

/// A sandbox on a real port.
pub struct Harness {
    pub base: String,
    pub sandbox: Arc<Sandbox>,
    pub http: reqwest::Client,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// The default test configuration: manual clock, seed 7, in memory, webhooks to `url`, and the
/// platform's delivery rules off (the rule tests switch on the rule they are about).
pub fn config(webhook_url: &str) -> Config {
    let mut cfg = Config {
        seed: 7,
        ..Config::default()
    };
    cfg.clock.mode = ClockMode::Manual;
    cfg.webhooks.default_url = webhook_url.to_string();
    cfg.rules = mynah_sandbox::config::RulesConfig::off();
    cfg
}

/// A fresh temporary data directory.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mynah-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

impl Harness {
    pub async fn start(cfg: Config) -> Harness {
        let sandbox = Sandbox::open(cfg).await.expect("sandbox opens");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        sandbox.set_base_url(&base);
        let stop = CancellationToken::new();
        let (sb, s) = (sandbox.clone(), stop.clone());
        let task = tokio::spawn(async move {
            mynah_sandbox::http::run(listener, sb, s).await.unwrap();
        });
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        Harness {
            base,
            sandbox,
            http,
            stop,
            task: Some(task),
        }
    }

    /// Stops serving and waits until the server is down.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(t) = self.task.take() {
            t.await.unwrap();
        }
    }

    /// POST JSON with a D360-API-KEY.
    pub async fn post_360(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("D360-API-KEY", KEY)
            .json(body)
            .send()
            .await
            .unwrap();
        split(r).await
    }

    /// POST JSON with the bearer token.
    pub async fn post_cloud(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .json(body)
            .send()
            .await
            .unwrap();
        split(r).await
    }

    /// GET with the bearer token.
    pub async fn get_cloud(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        split(r).await
    }

    /// Sends a message through the 360dialog dialect.
    pub async fn send_360(&self, body: Value) -> (u16, Value) {
        self.post_360("/messages", &body).await
    }

    /// Sends a message through the Cloud dialect.
    pub async fn send_cloud(&self, body: Value) -> (u16, Value) {
        self.post_cloud(&format!("/v23.0/{PNID}/messages"), &body)
            .await
    }

    /// `GET /metrics`, its text.
    pub async fn metrics_text(&self) -> String {
        let r = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap();
        r.text().await.unwrap()
    }

    /// GET a control API path.
    pub async fn control_get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}/_mynah{path}", self.base))
            .send()
            .await
            .unwrap();
        split(r).await
    }

    /// POST/PUT to the control API.
    pub async fn control(&self, method: reqwest::Method, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .request(method, format!("{}/_mynah{path}", self.base))
            .json(body)
            .send()
            .await
            .unwrap();
        split(r).await
    }

    /// Moves the manual clock.
    pub async fn advance(&self, seconds: f64) {
        let (status, body) = self
            .control(
                reqwest::Method::POST,
                "/clock/advance",
                &json!({ "seconds": seconds }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    /// Waits until `count` delivered webhook attempts match the query (e.g. `wamid=…&status=read`).
    pub async fn wait(&self, query: &str, count: usize) -> Vec<Value> {
        let (status, body) = self
            .control_get(&format!(
                "/webhooks/wait?{query}&count={count}&timeout_ms=10000"
            ))
            .await;
        assert_eq!(status, 200, "waiting for {count} x {query}: {body}");
        body["attempts"].as_array().unwrap().clone()
    }

    /// Waits until no webhook event is pending, waking on each accepted delivery.
    pub async fn drain(&self) {
        loop {
            // The last attempt first, then the count: an attempt that ends in between has a later
            // seq.
            let (_, a) = self.control_get("/webhooks/attempts?limit=1").await;
            let last = a["attempts"]
                .as_array()
                .and_then(|list| list.last())
                .and_then(|a| a["seq"].as_u64())
                .unwrap_or(0);
            let (_, health) = self.control_get("/health").await;
            if health["pending_webhooks"] == 0 {
                return;
            }
            self.wait(&format!("after_seq={last}"), 1).await;
        }
    }

    /// Sets the webhook URL through the 360dialog endpoint.
    /// Sends a text through the 360dialog dialect; returns its wamid.
    pub async fn send_text(&self, to: &str, body: &str) -> String {
        let (s, b) = self.send_360(text(to, body)).await;
        assert_eq!(s, 200, "{b}");
        b["messages"][0]["id"].as_str().unwrap().to_string()
    }

    /// Recorded webhook attempts matching `query` (the control API's filters).
    pub async fn attempts(&self, query: &str) -> Vec<Value> {
        let (s, b) = self
            .control_get(&format!("/webhooks/attempts?{query}&limit=10000"))
            .await;
        assert_eq!(s, 200, "{b}");
        b["attempts"].as_array().unwrap().clone()
    }

    /// Uploads a PNG through the 360dialog media endpoint; returns its media id.
    pub async fn upload_png(&self, bytes: &[u8]) -> String {
        let mut body = Vec::new();
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"messaging_product\"\r\n\r\nwhatsapp\r\n").as_bytes(),
        );
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"pixel.png\"\r\nContent-Type: image/png\r\n\r\n")
                .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
        let r = self
            .http
            .post(format!("{}/media", self.base))
            .header("D360-API-KEY", KEY)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert_eq!(status, 200, "{v}");
        v["id"].as_str().unwrap().to_string()
    }

    pub async fn set_webhook(&self, url: &str) {
        let (s, b) = self
            .post_360("/v1/configs/webhook", &json!({ "url": url }))
            .await;
        assert_eq!(s, 200, "{b}");
    }
}

async fn split(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, v)
}

/// A text message body.
const BOUNDARY: &str = "mynah-test-boundary-7MA4YWxkTrZu0gW";

pub fn text(to: &str, body: &str) -> Value {
    json!({ "messaging_product": "whatsapp", "recipient_type": "individual", "to": to, "type": "text", "text": { "body": body } })
}

/// The JSON body of a recorded webhook attempt (from `/webhooks/attempts` or `wait`).
pub fn attempt_body(attempt: &Value) -> Value {
    serde_json::from_str(attempt["body"].as_str().expect("an attempt has a body"))
        .expect("attempt bodies are JSON")
}

/// Verifies `X-Hub-Signature-256` of a received POST.
pub fn signature_ok(r: &Received, secret: &str) -> bool {
    let got = r
        .headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    got == mynah_sandbox::webhooks::sign(secret, &r.body)
}

/// Whether `s` has the shape of a business-scoped user id the sandbox mints: two capital
/// letters, a period, then digits only (what pywa recognises), or with `parent`, `CC.ENT.`
/// and digits.
pub fn is_bsuid(s: &str, parent: bool) -> bool {
    let Some((cc, rest)) = s.split_once('.') else {
        return false;
    };
    let digits = if parent {
        match rest.strip_prefix("ENT.") {
            Some(d) => d,
            None => return false,
        }
    } else {
        rest
    };
    cc.len() == 2
        && cc.bytes().all(|b| b.is_ascii_uppercase())
        && (15..=20).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Keys whose values must equal the example's (the rest are ids, names, times: compared by
/// kind and shape).
const SAME_VALUE: &[&str] = &[
    "object",
    "field",
    "messaging_product",
    "status",
    "type",
    "billable",
    "pricing_model",
    "category",
    "code",
    "title",
    "message",
];

/// Compares a payload with one of the platform's documented examples field by field: the same
/// keys at every level (`extra` names keys Mynah may add, as `path.key`), the same values for
/// the keys of `SAME_VALUE`, and for every other value the same kind — a wamid for a wamid, a
/// BSUID (or parent id) for one, digits for digits, a string, number or boolean for the same.
pub fn assert_like_example(ours: &Value, example: &Value, extra: &[&str]) {
    like(ours, example, "", extra);
}

fn like(ours: &Value, want: &Value, path: &str, extra: &[&str]) {
    match (ours, want) {
        (Value::Object(o), Value::Object(w)) => {
            for k in w.keys() {
                assert!(
                    o.contains_key(k),
                    "{path}.{k} is in the example but missing: {ours}"
                );
            }
            for k in o.keys() {
                let p = format!("{path}.{k}");
                assert!(
                    w.contains_key(k) || extra.contains(&p.as_str()),
                    "{p} is not in the example: {ours}"
                );
            }
            for (k, wv) in w {
                let p = format!("{path}.{k}");
                if SAME_VALUE.contains(&k.as_str()) && !wv.is_object() && !wv.is_array() {
                    assert_eq!(&o[k], wv, "{p}");
                } else {
                    like(&o[k], wv, &p, extra);
                }
            }
        }
        (Value::Array(o), Value::Array(w)) => {
            assert_eq!(o.len(), w.len(), "{path}: {ours}");
            for (i, (a, b)) in o.iter().zip(w).enumerate() {
                like(a, b, &format!("{path}[{i}]"), extra);
            }
        }
        (Value::String(o), Value::String(w)) => {
            if w.starts_with("wamid.") {
                assert!(o.starts_with("wamid."), "{path}: {o}");
            } else if is_bsuid(w, false) {
                assert!(is_bsuid(o, false), "{path}: {o} is not a BSUID");
            } else if is_bsuid(w, true) {
                assert!(is_bsuid(o, true), "{path}: {o} is not a parent BSUID");
            } else if !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit()) {
                assert!(
                    !o.is_empty() && o.bytes().all(|b| b.is_ascii_digit()),
                    "{path}: {o} is not digits"
                );
            }
        }
        (o, w) => assert_eq!(
            std::mem::discriminant(o),
            std::mem::discriminant(w),
            "{path}: {o} where the example has {w}"
        ),
    }
}
