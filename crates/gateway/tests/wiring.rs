//! When a plane cannot reach the other, the gateway says so once per episode in the log and
//! shows it in `GET /health`: an upstream that cannot be reached, and sends the platform accepted
//! that no webhook followed. Both recover, and say so once.

mod common;

use common::*;
use mynah_gateway::Gateway;
use mynah_gateway::clock::{Clock, Millis};
use mynah_gateway::health::WEBHOOK_QUIET_MS;
use mynah_gateway::store::sqlite::{SqliteOptions, SqliteStore};
use mynah_gateway::upstream::UpstreamConfig;
use mynah_sandbox::Sandbox;
use serde_json::Value;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Log lines written while the test's subscriber is the default (the tests run on one thread, so
/// every task logs through it).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let me = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || me.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn count(&self, needle: &str) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }
}

async fn health(http: &reqwest::Client, base: &str) -> Value {
    http.get(format!("{base}/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Polls `GET /health` until `pred` holds (bounded).
async fn health_until(http: &reqwest::Client, base: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..2_000 {
        last = health(http, base).await;
        if pred(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("health never matched: {last:#}");
}

#[tokio::test]
async fn an_unreachable_upstream_is_logged_once_shown_in_health_and_recovers() {
    let logs = Captured::default();
    let _guard = logs.install();
    let clock = Arc::new(Clock::manual(1_800_000_000_000));
    // The sandbox's port, with nothing listening on it yet.
    let sb_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sb_base = format!("http://127.0.0.1:{sb_port}");
    let mut cfg = gateway_config();
    cfg.gates.consent = false;
    cfg.gates.template = false;
    let mut upstream = UpstreamConfig::d360(&sb_base, DEV_API_KEY);
    upstream.phone_number_id = Some(DEV_PHONE_NUMBER_ID.to_string());
    cfg.upstream = upstream;
    let gw_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw_base = format!("http://{}", gw_listener.local_addr().unwrap());
    cfg.listen = gw_listener.local_addr().unwrap().to_string();
    let store = SqliteStore::open(None, SqliteOptions::default())
        .await
        .unwrap();
    let gw = Gateway::new(cfg, store.clone(), clock.clone()).unwrap();
    let stop = CancellationToken::new();
    let (g, s) = (gw.clone(), stop.clone());
    let gw_task = tokio::spawn(async move { mynah_gateway::run(gw_listener, g, s).await });
    let http = reqwest::Client::builder().no_proxy().build().unwrap();

    let mut ids = Vec::new();
    for n in 0..3 {
        let r = http
            .post(format!("{gw_base}/v1/messages"))
            .bearer_auth(KEY)
            .json(&template("hello_world", &format!("49151123456{n:02}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let v: Value = r.json().await.unwrap();
        ids.push(v["id"].as_str().unwrap().to_string());
    }
    let h = health_until(&http, &gw_base, |h| {
        h["upstream"]["failures"].as_u64() >= Some(3)
    })
    .await;
    assert_eq!(h["status"], "degraded", "{h:#}");
    assert_eq!(h["upstream"]["reachable"], false);
    assert!(
        h["upstream"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains(&sb_port.to_string())),
        "{h:#}"
    );
    assert_eq!(logs.count("cannot reach the upstream"), 1);

    // The sandbox comes up on its port, its webhooks to the gateway; the retries go through.
    let mut sb_cfg = sandbox_config();
    sb_cfg.webhooks.subscribers = vec![format!("{gw_base}/webhooks")];
    let sandbox = Sandbox::open(sb_cfg).await.unwrap();
    let sb_listener = tokio::net::TcpListener::bind(("127.0.0.1", sb_port))
        .await
        .unwrap();
    let sb = sandbox.clone();
    let sb_stop = stop.clone();
    let sb_task =
        tokio::spawn(async move { mynah_sandbox::http::run(sb_listener, sb, sb_stop).await });
    clock.advance(120_000);
    gw.wake_dispatch.notify_one();
    for id in &ids {
        let mut delivered = false;
        for _ in 0..2_000 {
            let m: Value = http
                .get(format!("{gw_base}/v1/messages/{id}"))
                .bearer_auth(KEY)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if m["delivered_at"].is_number() {
                delivered = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(delivered, "{id} never delivered");
    }
    let h = health(&http, &gw_base).await;
    assert_eq!(
        (h["status"].as_str(), &h["upstream"]["reachable"]),
        (Some("ok"), &Value::Bool(true)),
        "{h:#}"
    );
    assert_eq!(logs.count("upstream reachable again"), 1);
    assert_eq!(
        logs.count("cannot reach the upstream"),
        1,
        "one episode, one line"
    );
    stop.cancel();
    let _ = gw_task.await;
    let _ = sb_task.await;
    store.close().await;
}

#[tokio::test]
async fn accepted_sends_without_webhooks_are_logged_once_and_shown_in_health() {
    let logs = Captured::default();
    let _guard = logs.install();
    let clock = Arc::new(Clock::manual(1_800_000_000_000));
    let mut cfg = gateway_config();
    cfg.gates.consent = false;
    // The sandbox's webhooks go nowhere near the gateway.
    let p = Pair::start_wired(sandbox_config(), cfg, clock.clone(), false).await;
    let id = p.send(template("hello_world", "4915112345630")).await;
    let m = p.until(&id, "accepted", |m| m["wamid"].is_string()).await;
    let intake = format!("{}/webhooks", p.gw_base);
    let now: Millis = clock.now();
    p.gw.health.check(now + WEBHOOK_QUIET_MS - 1, &intake);
    let (_, h) = p.get("/health").await;
    assert_eq!(h["status"], "ok", "a minute is not up yet: {h:#}");
    p.gw.health.check(now + WEBHOOK_QUIET_MS, &intake);
    p.gw.health.check(now + 2 * WEBHOOK_QUIET_MS, &intake);
    let (_, h) = p.get("/health").await;
    assert_eq!(h["status"], "degraded", "{h:#}");
    assert_eq!(h["webhooks"]["missing"], true);
    assert_eq!(h["webhooks"]["accepted_since"], 1);
    assert_eq!(logs.count("no webhook has arrived since"), 1);
    // A webhook arrives: back to ok, said once.
    let code = p
        .post_status(m["wamid"].as_str().unwrap(), "delivered", "4915112345630")
        .await;
    assert_eq!(code, 200);
    let (_, h) = p.get("/health").await;
    assert_eq!(h["status"], "ok", "{h:#}");
    assert_eq!(logs.count("webhooks are arriving again"), 1);
    p.shutdown().await;
}
