//! `kill -9` of the gateway process in the middle of 5,000 messages, then a restart: every
//! message reaches a terminal state, none is lost, duplicates stay within the configured policy.
//!
//! Real processes of the real binary: a sandbox (`mynah sandbox`) and a gateway (`mynah gateway`,
//! SQLite in a scratch directory) wired over loopback. Clients enqueue 5,000 template messages
//! (an `Idempotency-Key` each, retried until acknowledged); once 1,500 have reached `accepted` or
//! later, the gateway gets SIGKILL, the outbox it left is read (which rows were `sending`), and
//! a new gateway process starts on the same data directory. The sandbox delays every send a
//! little (a fault rule), so sends are in flight when the kill lands.
//!
//! Checks, per restart policy:
//! - nothing lost: every acknowledged enqueue (those acknowledged by the killed process too) is
//!   in the outbox; exactly 5,000 rows (a retried enqueue never made a second row);
//! - every message ends terminal: `read` (the sandbox's users read), or, under `at_most_once`,
//!   `unknown` for a send the platform never received;
//! - duplicates: `at_least_once` sends a message twice only if it was `sending` at the kill
//!   (outcome unknown, an `outcome_unknown` event in its timeline), so the sends the sandbox
//!   counts (per `biz_opaque_callback_data`, which carries the gateway's id) are at most 5,000
//!   plus the rows in flight, at most the dispatcher's concurrency; `at_most_once` never sends
//!   twice, and an interrupted send the platform did receive is correlated by its status
//!   webhooks.
#![cfg(unix)]

mod common;

use common::{Proc, Scratch, free_port, log_file};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use mynah_gateway::model::MessageState;
use mynah_gateway::store::sqlite::{SqliteOptions, SqliteStore};
use mynah_gateway::store::{ListFilter, MessageRecord, Store};
use std::collections::{HashMap, HashSet};
use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The issue's number.
const MESSAGES: usize = 5_000;
/// Concurrent app clients.
const CLIENTS: usize = 16;
/// The kill lands once this many messages are `accepted` or later.
const KILL_AFTER: usize = 1_500;
/// …at a moment when at least this many are `sending`.
const MIN_IN_FLIGHT: usize = 8;
/// The dispatcher's concurrency (the gateway's default): at most this many sends in flight.
const CONCURRENCY: usize = 64;
/// The gateway key apps present.
const KEY: &str = "k";
const AUTH: (&str, &str) = ("authorization", "Bearer k");
/// Recipient of message `n`: distinct German mobile numbers.
const FIRST_RECIPIENT: u64 = 4_915_110_000_000;

/// The scenarios start four processes each; on two cores they run one after the other.
static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn kill9_at_least_once_no_loss_and_duplicates_only_where_the_outcome_was_unknown() {
    run("at_least_once");
}

#[test]
fn kill9_at_most_once_no_loss_and_no_duplicates() {
    run("at_most_once");
}

fn run(policy: &'static str) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(scenario(policy));
}

const SANDBOX_TOML: &str = r#"
seed = 9

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

# Every send takes a little while, so sends are in flight when the gateway is killed.
[[faults]]
action = { latency_ms = 25 }
"#;

fn gateway_toml(policy: &str) -> String {
    format!(
        r#"
template_sync_ms = 0
restart_policy = "{policy}"
rate = {{ rate = 2000.0, burst = 2000 }}

[gates]
consent = false
window = false

[dispatch]
concurrency = {CONCURRENCY}
"#
    )
}

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

/// A keep-alive HTTP/1.1 client to one address; reconnects after any error.
struct Http {
    addr: SocketAddr,
    sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
}

impl Http {
    fn new(port: u16) -> Http {
        Http {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            sender: None,
        }
    }

    async fn call(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: String,
    ) -> Result<(u16, String), String> {
        let addr = self.addr;
        let slot = &mut self.sender;
        let attempt = async move {
            if slot.as_ref().is_none_or(|s| s.is_closed()) {
                let stream = tokio::net::TcpStream::connect(addr)
                    .await
                    .map_err(|e| format!("connect {addr}: {e}"))?;
                let _ = stream.set_nodelay(true);
                let (sender, conn) =
                    hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                        .await
                        .map_err(|e| format!("handshake: {e}"))?;
                tokio::spawn(conn);
                *slot = Some(sender);
            }
            let sender = slot.as_mut().ok_or("no connection")?;
            sender.ready().await.map_err(|e| format!("ready: {e}"))?;
            let mut req = hyper::Request::builder()
                .method(method)
                .uri(path)
                .header("host", addr.to_string())
                .header("content-type", "application/json");
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            let req = req
                .body(Full::new(Bytes::from(body)))
                .map_err(|e| e.to_string())?;
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| format!("{method} {path}: {e}"))?;
            let status = resp.status().as_u16();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("{method} {path} body: {e}"))?
                .to_bytes();
            Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
        };
        let result = match tokio::time::timeout(Duration::from_secs(10), attempt).await {
            Ok(r) => r,
            Err(_) => Err(format!("{method} {path}: no answer in 10 s")),
        };
        if result.is_err() {
            self.sender = None;
        }
        result
    }

    async fn get(&mut self, path: &str) -> Result<(u16, String), String> {
        self.call("GET", path, &[AUTH], String::new()).await
    }
}

/// Polls `path` until it answers 200 (bounded).
async fn wait_ready(port: u16, path: &str, what: &str) {
    let mut http = Http::new(port);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok((200, _)) = http.get(path).await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not answer {path} within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every string value of `"key":"…"` in a JSON text. The `mynah` package has no JSON
/// dependency (and this test adds none); the values read here (ids) have no escapes.
fn values<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    let pat = format!("\"{key}\":\"");
    text.match_indices(&pat)
        .filter_map(|(i, _)| {
            let rest = &text[i + pat.len()..];
            rest.find('"').map(|end| &rest[..end])
        })
        .collect()
}

/// The number after `"key":` in a JSON text.
fn number(text: &str, key: &str) -> Option<u64> {
    let pat = format!("\"{key}\":");
    let rest = &text[text.find(&pat)? + pat.len()..];
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// Ids of the gateway's messages in `state` (paged), stopping once `cap` are found.
async fn ids_in_state(http: &mut Http, state: &str, cap: usize) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    loop {
        let after = out
            .last()
            .map(|a| format!("&after={a}"))
            .unwrap_or_default();
        let (status, body) = http
            .get(&format!("/v1/messages?state={state}&limit=1000{after}"))
            .await?;
        if status != 200 {
            return Err(format!("list {state}: {status} {body}"));
        }
        let page: Vec<String> = values(&body, "id")
            .into_iter()
            .filter(|v| v.starts_with("msg_"))
            .map(str::to_string)
            .collect();
        let full = page.len() == 1_000;
        out.extend(page);
        if !full || out.len() >= cap {
            return Ok(out);
        }
    }
}

async fn count_states(http: &mut Http, states: &[&str], cap: usize) -> Result<usize, String> {
    let mut n = 0;
    for s in states {
        n += ids_in_state(http, s, cap.saturating_sub(n)).await?.len();
        if n >= cap {
            break;
        }
    }
    Ok(n)
}

/// Outbound messages the sandbox created, per `biz_opaque_callback_data` (the gateway's id).
async fn sandbox_sends(http: &mut Http, query: &str) -> HashMap<String, usize> {
    let (status, body) = http
        .get(&format!(
            "/_mynah/messages?direction=outbound&limit=10000{query}"
        ))
        .await
        .expect("sandbox message listing");
    assert_eq!(status, 200, "{body}");
    let mut sends = HashMap::new();
    // One chunk per message; its raw body and its own field both carry the callback data.
    for chunk in body.split("{\"id\":\"wamid.").skip(1) {
        let id = values(chunk, "biz_opaque_callback_data")
            .first()
            .map(|s| s.to_string())
            .unwrap_or_default();
        *sends.entry(id).or_insert(0) += 1;
    }
    sends
}

/// Every row of the outbox, read straight from the database (the gateway is not running).
async fn outbox(db: &Path) -> (SqliteStore, HashMap<String, MessageRecord>) {
    let store = SqliteStore::open(Some(db), SqliteOptions::default())
        .await
        .expect("open the gateway's database");
    let rows = store
        .list(ListFilter {
            limit: 1_000_000,
            ..ListFilter::default()
        })
        .await
        .expect("list the outbox");
    (store, rows.into_iter().map(|r| (r.id.clone(), r)).collect())
}

fn template_body(n: usize) -> String {
    format!(
        r#"{{"to":"{}","type":"template","template":{{"name":"hello_world","language":{{"code":"en_US"}}}}}}"#,
        FIRST_RECIPIENT + n as u64
    )
}

/// Enqueues messages `next..MESSAGES` until each is acknowledged (a retried request carries the
/// same `Idempotency-Key`, so a write that was durable but unanswered is not doubled).
async fn client(
    port: u16,
    next: Arc<AtomicUsize>,
    ids: Arc<Mutex<Vec<Option<String>>>>,
    deadline: Instant,
) -> Result<(), String> {
    let mut http = Http::new(port);
    loop {
        let n = next.fetch_add(1, Ordering::Relaxed);
        if n >= MESSAGES {
            return Ok(());
        }
        let key = format!("kill9-{n}");
        loop {
            let r = http
                .call(
                    "POST",
                    "/v1/messages",
                    &[AUTH, ("idempotency-key", key.as_str())],
                    template_body(n),
                )
                .await;
            match r {
                Ok((202, body)) => {
                    let id = values(&body, "id")
                        .first()
                        .map(|s| s.to_string())
                        .ok_or_else(|| format!("no id in {body}"))?;
                    ids.lock().unwrap_or_else(|e| e.into_inner())[n] = Some(id);
                    break;
                }
                Ok((status, body)) if status < 500 => {
                    return Err(format!("message {n}: {status} {body}"));
                }
                // The gateway is down (killed, restarting) or overloaded: try again.
                Ok(_) | Err(_) => {
                    if Instant::now() > deadline {
                        return Err(format!("message {n}: not acknowledged in time: {r:?}"));
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }
}

fn has_event(events: &[mynah_gateway::store::Event], kind: &str) -> bool {
    events.iter().any(|e| e.kind == kind)
}

async fn scenario(policy: &'static str) {
    let started = Instant::now();
    let at_most_once = policy == "at_most_once";
    let scratch = Scratch::new("kill9", policy);
    let dir = scratch.0.clone();
    fs::write(dir.join("sandbox.toml"), SANDBOX_TOML).expect("sandbox config");
    fs::write(dir.join("gateway.toml"), gateway_toml(policy)).expect("gateway config");
    let db = dir.join("data").join("gateway.db");
    let (sb_port, gw_port) = (free_port(), free_port());

    let _sandbox = start_sandbox(&dir, sb_port, gw_port);
    let mut gateway = start_gateway(&dir, gw_port, sb_port);
    wait_ready(sb_port, "/_mynah/health", "the sandbox").await;
    wait_ready(gw_port, "/health", "the gateway").await;
    let mut gw = Http::new(gw_port);
    let mut sb = Http::new(sb_port);
    let (status, body) = gw
        .call("POST", "/v1/templates/sync", &[AUTH], "{}".into())
        .await
        .expect("template sync");
    assert_eq!(status, 200, "template sync: {body}");

    // Apps enqueue the 5,000 messages while the dispatcher sends them.
    let next = Arc::new(AtomicUsize::new(0));
    let ids: Arc<Mutex<Vec<Option<String>>>> = Arc::new(Mutex::new(vec![None; MESSAGES]));
    let client_deadline = Instant::now() + Duration::from_secs(50);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| tokio::spawn(client(gw_port, next.clone(), ids.clone(), client_deadline)))
        .collect();

    // kill -9 once 1,500 messages were accepted by the upstream or went further, at a moment
    // when sends are in flight.
    let progressed = ["accepted", "held", "sent", "delivered", "read"];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = count_states(&mut gw, &progressed, KILL_AFTER).await;
        let sending = ids_in_state(&mut gw, "sending", CONCURRENCY).await;
        if n.as_ref().is_ok_and(|n| *n >= KILL_AFTER)
            && sending.as_ref().is_ok_and(|s| s.len() >= MIN_IN_FLIGHT)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never {KILL_AFTER} messages past the upstream with {MIN_IN_FLIGHT} in flight: {n:?}, {:?}",
            sending.map(|s| s.len())
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    gateway.kill9();
    let killed_at = started.elapsed();
    // Everything acknowledged so far was acknowledged by the killed process.
    let acked: Vec<String> = ids
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .flatten()
        .cloned()
        .collect();

    // The outbox the killed process left: nothing acknowledged is missing; `sending` rows were
    // in flight (their outcome is unknown).
    let (store, rows) = outbox(&db).await;
    store.close().await;
    let lost: Vec<&String> = acked.iter().filter(|id| !rows.contains_key(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged messages are not in the outbox after kill -9: {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    let in_flight: HashSet<String> = rows
        .values()
        .filter(|r| r.state == MessageState::Sending)
        .map(|r| r.id.clone())
        .collect();
    assert!(
        !in_flight.is_empty(),
        "no send was in flight at the kill: the test interrupted nothing"
    );
    assert!(
        in_flight.len() <= CONCURRENCY,
        "{} rows were sending at the kill; the dispatcher's concurrency is {CONCURRENCY}",
        in_flight.len()
    );

    // Restart on the same data directory; the clients carry on.
    let mut gateway = start_gateway(&dir, gw_port, sb_port);
    wait_ready(gw_port, "/health", "the restarted gateway").await;
    for c in clients {
        c.await
            .expect("client task")
            .expect("every message acknowledged");
    }
    let ids: Vec<String> = ids
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|i| i.clone().expect("an id per message"))
        .collect();
    let index: HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| (id.as_str(), n))
        .collect();
    assert_eq!(
        index.len(),
        MESSAGES,
        "every message got its own id (a retried enqueue returns the first row)"
    );

    // Wait (bounded) until nothing is on its way: no message short of a final state, no webhook
    // left in the sandbox, and (at most once) no `unknown` message that the sandbox did receive
    // still waiting for its correlating status.
    let mut open: Vec<&str> = vec!["queued", "sending", "accepted", "held", "sent", "delivered"];
    if !at_most_once {
        open.push("unknown");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pending = count_states(&mut gw, &open, MESSAGES).await;
        let webhooks = sb
            .get("/_mynah/health")
            .await
            .ok()
            .and_then(|(_, b)| number(&b, "pending_webhooks"));
        let mut why = (pending != Ok(0) || webhooks != Some(0)).then(|| {
            format!("messages not final: {pending:?}; sandbox webhooks pending: {webhooks:?}")
        });
        if why.is_none() && at_most_once {
            // An `unknown` message the platform did receive is still to be correlated.
            let unknown = ids_in_state(&mut gw, "unknown", MESSAGES)
                .await
                .unwrap_or_default();
            for id in &unknown {
                let Some(n) = index.get(id.as_str()) else {
                    continue;
                };
                let to = FIRST_RECIPIENT + *n as u64;
                if !sandbox_sends(&mut sb, &format!("&wa_id={to}"))
                    .await
                    .is_empty()
                {
                    why = Some(format!("{id} is unknown but the sandbox has its send"));
                    break;
                }
            }
        }
        let Some(why) = why else {
            break;
        };
        assert!(Instant::now() < deadline, "not settled in 60 s: {why}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let settled_at = started.elapsed();

    // The final account: the outbox (the gateway stopped) against the sandbox's sends.
    gateway.kill9();
    let sends = sandbox_sends(&mut sb, "").await;
    let (store, rows) = outbox(&db).await;
    let mut timelines = HashMap::new();
    for id in in_flight
        .iter()
        .chain(sends.iter().filter(|(_, n)| **n > 1).map(|(id, _)| id))
    {
        if let Some(r) = rows.get(id) {
            let events = store.events(&r.id).await.expect("timeline");
            timelines.insert(r.id.clone(), events);
        }
    }
    store.close().await;

    assert_eq!(
        rows.len(),
        MESSAGES,
        "the outbox holds exactly the 5,000 messages"
    );
    for id in &ids {
        assert!(
            rows.contains_key(id),
            "{id} was acknowledged but is missing"
        );
    }
    let strangers: Vec<&String> = sends.keys().filter(|id| !rows.contains_key(*id)).collect();
    assert!(
        strangers.is_empty(),
        "the sandbox has sends for unknown ids: {strangers:?}"
    );
    let total: usize = sends.values().sum();
    let duplicated: Vec<(&String, usize)> = sends
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, n)| (id, *n))
        .collect();
    let mut states: HashMap<MessageState, usize> = HashMap::new();
    for r in rows.values() {
        *states.entry(r.state).or_insert(0) += 1;
    }
    let unknown: Vec<&MessageRecord> = rows
        .values()
        .filter(|r| r.state == MessageState::Unknown)
        .collect();
    let correlated = in_flight
        .iter()
        .filter(|id| {
            timelines
                .get(*id)
                .is_some_and(|e| has_event(e, "correlated"))
        })
        .count();
    println!(
        "kill9 {policy}: killed at {:.1} s with {} acknowledged and {} in flight; settled at {:.1} s; \
         {total} sends for {MESSAGES} messages ({} duplicated), {} unknown, {correlated} correlated; states {states:?}",
        killed_at.as_secs_f64(),
        acked.len(),
        in_flight.len(),
        settled_at.as_secs_f64(),
        duplicated.len(),
        unknown.len(),
    );

    if at_most_once {
        assert!(
            duplicated.is_empty(),
            "at most once: messages sent twice: {duplicated:?}"
        );
        for r in rows.values() {
            let n = sends.get(&r.id).copied().unwrap_or(0);
            match (n, r.state) {
                (1, MessageState::Read) => {}
                (0, MessageState::Unknown) => {
                    assert!(
                        in_flight.contains(&r.id),
                        "{} is unknown but was not in flight at the kill",
                        r.id
                    );
                }
                (n, state) => panic!(
                    "at most once: {} is {state} after {n} sends (in flight at the kill: {})",
                    r.id,
                    in_flight.contains(&r.id)
                ),
            }
        }
        for id in &in_flight {
            let events = timelines.get(id).map(Vec::as_slice).unwrap_or_default();
            assert!(
                has_event(events, "outcome_unknown"),
                "{id} was in flight at the kill but its timeline has no outcome_unknown"
            );
            if sends.contains_key(id) {
                assert!(
                    has_event(events, "correlated"),
                    "{id} reached the sandbox but was not correlated by its statuses"
                );
            }
        }
    } else {
        assert!(
            total <= MESSAGES + in_flight.len(),
            "at least once: {total} sends for {MESSAGES} messages with {} in flight at the kill",
            in_flight.len()
        );
        for (id, n) in &duplicated {
            assert!(
                in_flight.contains(*id),
                "{id} was sent {n} times but was not in flight at the kill"
            );
            let events = timelines.get(*id).map(Vec::as_slice).unwrap_or_default();
            assert!(
                has_event(events, "outcome_unknown"),
                "{id} was sent {n} times without an outcome_unknown event"
            );
        }
        for r in rows.values() {
            assert_eq!(
                r.state,
                MessageState::Read,
                "at least once: {} ended {} (sends {})",
                r.id,
                r.state,
                sends.get(&r.id).copied().unwrap_or(0)
            );
            assert!(sends.contains_key(&r.id), "{} was never sent", r.id);
        }
    }
}
