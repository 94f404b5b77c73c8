//! `kill -9` of the gateway in the middle of a campaign, then a restart on the same data: no
//! recipient lost, none sent twice beyond the restart policy, the counters exact.
//!
//! Real processes: a sandbox (`mynah sandbox`, every send a little slow so sends are in flight)
//! and a gateway (`mynah gateway`, SQLite, `at_least_once`). A 2,000-recipient campaign (CSV
//! audience) runs at 400 messages/s; once 600 are released the gateway gets SIGKILL. Then:
//! - in its database, every recipient is pending or released with exactly one message (a release
//!   writes the message and marks the row in one transaction);
//! - a new gateway process finishes the campaign: 2,000 released, 2,000 delivered or read, no
//!   recipient with a second message;
//! - the sandbox received each message once, except those `sending` at the kill (their outcome
//!   unknown, resent under `at_least_once`): at most one extra send each.
#![cfg(unix)]

mod common;

use common::{Proc, Scratch, free_port, log_file};
use mynah_gateway::store::sqlite::{SqliteOptions, SqliteStore};
use mynah_gateway::store::{ListFilter, Store};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RECIPIENTS: usize = 2_000;
const KILL_AFTER: i64 = 600;
const KEY: &str = "k";

const SANDBOX_TOML: &str = r#"
seed = 11

[limits]
profile = "unlimited"
max_pending = 1000000

[latency]
sent = { min_ms = 1, max_ms = 5 }
delivered = { min_ms = 1, max_ms = 5 }
read = { min_ms = 1, max_ms = 5 }

[webhooks]
initial_backoff_ms = 50
max_backoff_ms = 250
batch_size = 20

[rules]
customer_service_window = false
us_marketing_block = false
holdout = false
ttl = false
marketing_limit = { count = 1000000, window_ms = 1000 }
pair_rate = { every_ms = 1, burst = 1000000 }
throughput_mps = 1000000
messaging_limit = { unique_users = 1000000 }

[rules.quality]
enabled = false

[rules.pacing]
threshold = 1000000

[[faults]]
action = { latency_ms = 20 }
"#;

const GATEWAY_TOML: &str = r#"
template_sync_ms = 0
restart_policy = "at_least_once"
rate = { rate = 400.0, burst = 400 }

[gates]
consent = false
window = false

[campaigns]
rate_share = 1.0
batch = 200
"#;

fn start_sandbox(dir: &Path, port: u16, gw_port: u16) -> Proc {
    let child = Command::new(env!("CARGO_BIN_EXE_mynah"))
        .args(["sandbox", "--ephemeral", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--webhook-url")
        .arg(format!("http://127.0.0.1:{gw_port}/webhooks"))
        .arg("--config")
        .arg(dir.join("sandbox.toml"))
        .stdin(Stdio::null())
        .stdout(log_file(dir, "sandbox.log"))
        .stderr(log_file(dir, "sandbox.log"))
        .spawn()
        .expect("start the sandbox");
    Proc::new(child)
}

fn start_gateway(dir: &Path, port: u16, sb_port: u16) -> Proc {
    let child = Command::new(env!("CARGO_BIN_EXE_mynah"))
        .arg("gateway")
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .args(["--upstream", "360dialog", "--upstream-url"])
        .arg(format!("http://127.0.0.1:{sb_port}"))
        .args([
            "--upstream-key",
            "mynah-dev-key",
            "--phone-number-id",
            "106540352242922",
            "--app-secret",
            "mynah-dev-secret",
            "--gateway-key",
            KEY,
            "--config",
        ])
        .arg(dir.join("gateway.toml"))
        .stdin(Stdio::null())
        .stdout(log_file(dir, "gateway.log"))
        .stderr(log_file(dir, "gateway.log"))
        .spawn()
        .expect("start the gateway");
    Proc::new(child)
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn get(base: &str, path: &str) -> Value {
    let r = http()
        .get(format!("{base}{path}"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert!(r.status().is_success(), "GET {path}: {}", r.status());
    r.json().await.unwrap()
}

async fn wait_ready(base: &str, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http().get(format!("{base}{path}")).send().await
            && r.status() == 200
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{base}{path} did not answer in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn until(base: &str, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let c = get(base, &format!("/v1/campaigns/{id}")).await;
        if pred(&c) {
            return c;
        }
        assert!(Instant::now() < deadline, "never {what}: {c:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every recipient row with its message, by row (paged).
async fn recipients(base: &str, id: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = get(
            base,
            &format!("/v1/campaigns/{id}/recipients?limit=1000&after={after}"),
        )
        .await;
        let rows = page["recipients"].as_array().cloned().unwrap_or_default();
        if rows.is_empty() {
            return out;
        }
        after = rows.last().unwrap()["row"].as_i64().unwrap();
        out.extend(rows);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_mid_campaign_loses_no_recipient_and_sends_none_twice_beyond_the_policy() {
    let dir = Scratch::new("kill9-campaign", "run");
    std::fs::write(dir.join("sandbox.toml"), SANDBOX_TOML).unwrap();
    std::fs::write(dir.join("gateway.toml"), GATEWAY_TOML).unwrap();
    let (sb_port, gw_port) = (free_port(), free_port());
    let sb = format!("http://127.0.0.1:{sb_port}");
    let gw = format!("http://127.0.0.1:{gw_port}");
    let _sandbox = start_sandbox(&dir.0, sb_port, gw_port);
    wait_ready(&sb, "/_mynah/health").await;
    let mut gateway = start_gateway(&dir.0, gw_port, sb_port);
    wait_ready(&gw, "/readyz").await;
    let r = http()
        .post(format!("{gw}/v1/campaigns"))
        .bearer_auth(KEY)
        .json(&json!({ "name": "killed", "template": { "name": "hello_world", "language": "en_US" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut csv = String::from("to\n");
    for i in 0..RECIPIENTS {
        csv.push_str(&format!("{}\n", 4_915_120_000_000u64 + i as u64));
    }
    let r = http()
        .post(format!("{gw}/v1/campaigns/{id}/audience"))
        .bearer_auth(KEY)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http()
        .post(format!("{gw}/v1/campaigns/{id}/start"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    until(&gw, &id, "600 released", |c| {
        c["counts"]["released"].as_i64().unwrap_or(0) >= KILL_AFTER
    })
    .await;
    gateway.kill9();

    // What the killed process left: each row pending, or released with one message.
    let db = dir.join("data").join("gateway.db");
    let sending_at_kill: HashSet<String> = {
        let store = SqliteStore::open(Some(&db), SqliteOptions::default())
            .await
            .expect("open the gateway's database");
        let mut released = 0;
        let mut after = 0;
        let mut messages = HashSet::new();
        loop {
            let rows = store
                .campaign_recipients(&id, None, after, 1_000)
                .await
                .unwrap();
            let Some(last) = rows.last() else { break };
            after = last.row;
            for r in &rows {
                match r.status.as_str() {
                    "pending" => assert!(r.message_id.is_none(), "{r:?}"),
                    "released" => {
                        released += 1;
                        let m = r
                            .message_id
                            .clone()
                            .expect("a released row has its message");
                        assert!(messages.insert(m), "one message per recipient: {r:?}");
                    }
                    other => panic!("row {} is {other}", r.row),
                }
            }
        }
        assert!(released >= KILL_AFTER, "{released}");
        let sending: HashSet<String> = store
            .list(ListFilter {
                state: Some(mynah_gateway::model::MessageState::Sending),
                limit: 100_000,
                ..ListFilter::default()
            })
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.id)
            .collect();
        store.close().await;
        sending
    };

    // A new process on the same data finishes the campaign.
    let _gateway = start_gateway(&dir.0, gw_port, sb_port);
    wait_ready(&gw, "/readyz").await;
    let done = until(&gw, &id, "finished with every message delivered", |c| {
        c["state"] == "finished"
            && c["counts"]["delivered"].as_i64().unwrap_or(0)
                + c["counts"]["read"].as_i64().unwrap_or(0)
                == RECIPIENTS as i64
    })
    .await;
    let counts = &done["counts"];
    assert_eq!(counts["audience"], RECIPIENTS, "{done:#}");
    assert_eq!(counts["released"], RECIPIENTS, "{done:#}");
    assert_eq!(counts["pending"], 0, "{done:#}");
    assert_eq!(counts["skipped"], 0, "{done:#}");
    assert_eq!(counts["failed"], 0, "{done:#}");
    let messages: HashSet<String> = recipients(&gw, &id)
        .await
        .iter()
        .map(|r| r["message_id"].as_str().expect("released").to_string())
        .collect();
    assert_eq!(messages.len(), RECIPIENTS, "one message per recipient");

    // The platform's view: each message once, but for those in flight at the kill.
    let listing: Value = http()
        .get(format!(
            "{sb}/_mynah/messages?direction=outbound&limit=10000"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let list = listing["messages"]
        .as_array()
        .or(listing["data"].as_array())
        .cloned()
        .unwrap_or_default();
    let mut sends: HashMap<String, usize> = HashMap::new();
    for m in &list {
        let callback = m["biz_opaque_callback_data"]
            .as_str()
            .or(m["request"]["biz_opaque_callback_data"].as_str())
            .unwrap_or_default()
            .to_string();
        *sends.entry(callback).or_default() += 1;
    }
    assert!(
        messages.iter().all(|m| sends.contains_key(m)),
        "every message reached the platform"
    );
    for (m, n) in &sends {
        if *n > 1 {
            assert!(
                sending_at_kill.contains(m) && *n == 2,
                "{m} sent {n} times; only a send in flight at the kill may go twice"
            );
        }
    }
    let total: usize = sends.values().sum();
    assert!(
        total <= RECIPIENTS + sending_at_kill.len(),
        "{total} sends for {RECIPIENTS} recipients, {} in flight at the kill",
        sending_at_kill.len()
    );
    eprintln!(
        "kill -9 after {KILL_AFTER}+ released: {} sending at the kill, {total} sends for {RECIPIENTS} recipients",
        sending_at_kill.len()
    );
}
