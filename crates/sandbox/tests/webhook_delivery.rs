//! Webhook delivery end to end: retries with exponential backoff on the sandbox clock, the retry
//! window, isolation between endpoints and between events, the receiver timeout, batching,
//! seeded chaos, and pending deliveries that survive a restart.

mod common;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use common::*;
use mynah_sandbox::config::{Config, LimitProfile, MANUAL_CLOCK_START};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

const T0: i64 = MANUAL_CLOCK_START;

// ---------------------------------------------------------------------------------------------
// A receiver that holds requests: the first `hold` POSTs it gets wait until `release()` (or
// forever). Every POST is recorded when it arrives.

#[derive(Clone)]
struct HoldState {
    got: Arc<Mutex<Vec<Received>>>,
    hold: Arc<AtomicUsize>,
    open: watch::Receiver<bool>,
    arrived: Arc<AtomicUsize>,
    arrival: Arc<Notify>,
}

struct HoldReceiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
    arrived: Arc<AtomicUsize>,
    arrival: Arc<Notify>,
    open: watch::Sender<bool>,
    stop: CancellationToken,
}

async fn hold_recv(State(s): State<HoldState>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let held = s
        .hold
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    s.got.lock().unwrap().push(Received { headers, body });
    s.arrived.fetch_add(1, Ordering::SeqCst);
    s.arrival.notify_waiters();
    if held {
        let mut open = s.open.clone();
        let _ = open.wait_for(|o| *o).await;
    }
    StatusCode::OK
}

impl HoldReceiver {
    async fn start(hold: usize) -> HoldReceiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let (open_tx, open_rx) = watch::channel(false);
        let state = HoldState {
            got: Arc::new(Mutex::new(Vec::new())),
            hold: Arc::new(AtomicUsize::new(hold)),
            open: open_rx,
            arrived: Arc::new(AtomicUsize::new(0)),
            arrival: Arc::new(Notify::new()),
        };
        let r = HoldReceiver {
            url,
            got: state.got.clone(),
            arrived: state.arrived.clone(),
            arrival: state.arrival.clone(),
            open: open_tx,
            stop: CancellationToken::new(),
        };
        let app = axum::Router::new()
            .route("/hook", post(hold_recv))
            .with_state(state);
        let s = r.stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { s.cancelled().await })
                .await;
        });
        r
    }

    /// Waits (wall clock, I/O only) until `n` POSTs have arrived.
    async fn arrivals(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let notified = self.arrival.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.arrived.load(Ordering::SeqCst) >= n {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "only {} of {n} POSTs arrived",
                    self.arrived.load(Ordering::SeqCst)
                );
            }
        }
    }

    fn release(&self) {
        let _ = self.open.send(true);
    }

    fn bodies(&self) -> Vec<Value> {
        self.got.lock().unwrap().iter().map(|r| r.json()).collect()
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

impl Drop for HoldReceiver {
    fn drop(&mut self) {
        self.release();
        self.stop.cancel();
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers.

fn roomy(url: &str) -> Config {
    let mut cfg = config(url);
    cfg.limits.profile = LimitProfile::Unlimited;
    cfg
}

async fn inbound(h: &Harness, from: &str, body: &str) -> String {
    let (s, b) = h
        .control(
            reqwest::Method::POST,
            "/inbound",
            &json!({ "from": from, "type": "text", "text": { "body": body } }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    b["id"].as_str().unwrap().to_string()
}

async fn now_ms(h: &Harness) -> i64 {
    let (s, b) = h.control_get("/clock").await;
    assert_eq!(s, 200, "{b}");
    b["now_ms"].as_i64().unwrap()
}

async fn health(h: &Harness) -> Value {
    let (s, b) = h.control_get("/health").await;
    assert_eq!(s, 200, "{b}");
    b
}

/// Moves the clock exactly to `at` (so a timer due then fires with the clock standing on it).
async fn advance_to(h: &Harness, at: i64) {
    let now = now_ms(h).await;
    assert!(at >= now, "cannot go back from {now} to {at}");
    let (s, b) = h
        .control(
            reqwest::Method::POST,
            "/clock/advance",
            &json!({ "ms": at - now }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
}

/// Waits until `cond` holds for the recorded attempts, waking on each new attempt whose
/// outcome is `delivered` (true: accepted by the receiver, false: refused).
async fn wait_until(h: &Harness, delivered: bool, cond: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    loop {
        let all = h.attempts("").await;
        if cond(&all) {
            return all;
        }
        let last = all.last().map(|a| a["seq"].as_u64().unwrap()).unwrap_or(0);
        h.wait(&format!("delivered={delivered}&after_seq={last}"), 1)
            .await;
    }
}

/// (wamid, status or message type) of every event an attempt carried.
fn event_keys(a: &Value) -> Vec<(String, String)> {
    a["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let what = e["status"]
                .as_str()
                .or(e["message_type"].as_str())
                .unwrap_or("");
            (
                e["wamid"].as_str().unwrap_or("").to_string(),
                what.to_string(),
            )
        })
        .collect()
}

fn keys_where(all: &[Value], outcome: &str) -> BTreeSet<(String, String)> {
    all.iter()
        .filter(|a| a["outcome"] == outcome)
        .flat_map(event_keys)
        .collect()
}

/// Status objects of a webhook body.
fn statuses_of(body: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for e in body["entry"].as_array().into_iter().flatten() {
        for c in e["changes"].as_array().into_iter().flatten() {
            out.extend(
                c["value"]["statuses"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .cloned(),
            );
        }
    }
    out
}

/// Per wamid, the statuses in the order the receiver got them.
fn per_wamid(statuses: &[(String, String)]) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (w, s) in statuses {
        m.entry(w.clone()).or_default().push(s.clone());
    }
    m
}

// ---------------------------------------------------------------------------------------------
// (a) Retries with exponential backoff.

#[tokio::test]
async fn receiver_failing_three_times_is_retried_with_exponential_backoff() {
    let rx = Receiver::start().await;
    rx.fail_next.store(3, Ordering::SeqCst);
    let h = Harness::start(roomy(&rx.url)).await;
    let wamid = inbound(&h, "+49 151 12345678", "hello").await;

    // Attempt 1 right away (the clock stands at T0), then +5 s, +10 s, +20 s.
    h.wait("delivered=false", 1).await;
    advance_to(&h, T0 + 5_000).await;
    h.wait("delivered=false", 2).await;
    advance_to(&h, T0 + 15_000).await;
    h.wait("delivered=false", 3).await;
    // Nothing happens before the retry is due.
    advance_to(&h, T0 + 34_999).await;
    assert_eq!(
        h.attempts("").await.len(),
        3,
        "no attempt before the backoff has passed"
    );
    advance_to(&h, T0 + 35_000).await;
    h.wait(&format!("wamid={wamid}"), 1).await;

    let all = h.attempts(&format!("wamid={wamid}")).await;
    assert_eq!(all.len(), 4, "{all:#?}");
    let body = all[0]["body"].as_str().unwrap().to_string();
    let signature = all[0]["signature"].as_str().unwrap().to_string();
    assert_eq!(
        signature,
        mynah_sandbox::webhooks::sign(SECRET, body.as_bytes())
    );
    let delivery_id = all[0]["delivery_id"].clone();
    let events = json!([{ "field": "messages", "wamid": wamid, "wa_id": "4915112345678", "message_type": "text" }]);
    let expected = [
        (
            T0,
            json!(500),
            json!("receiver answered HTTP 500"),
            "retrying",
            json!(T0 + 5_000),
        ),
        (
            T0 + 5_000,
            json!(500),
            json!("receiver answered HTTP 500"),
            "retrying",
            json!(T0 + 15_000),
        ),
        (
            T0 + 15_000,
            json!(500),
            json!("receiver answered HTTP 500"),
            "retrying",
            json!(T0 + 35_000),
        ),
        (
            T0 + 35_000,
            json!(200),
            Value::Null,
            "delivered",
            Value::Null,
        ),
    ];
    for (i, (a, (at, status, error, outcome, next))) in all.iter().zip(expected).enumerate() {
        let n = i as u64 + 1;
        assert_eq!(a["seq"], json!(n), "{a:#?}");
        assert_eq!(a["attempt"], json!(n), "{a:#?}");
        assert_eq!(
            a["delivery_id"], delivery_id,
            "one delivery, retried: {a:#?}"
        );
        assert_eq!(a["phone_number_id"], json!(PNID));
        assert_eq!(a["url"], json!(rx.url));
        assert_eq!(a["at"], json!(at), "attempt {n} at");
        assert_eq!(a["status"], status, "attempt {n} status");
        assert_eq!(a["error"], error, "attempt {n} error");
        assert_eq!(a["outcome"], json!(outcome), "attempt {n} outcome");
        assert_eq!(a["next_retry_at"], next, "attempt {n} next_retry_at");
        assert_eq!(a["events"], events, "attempt {n} events");
        assert_eq!(
            a["body"].as_str().unwrap(),
            body,
            "attempt {n}: the same body every time"
        );
        assert_eq!(
            a["signature"].as_str().unwrap(),
            signature,
            "attempt {n}: the same signature"
        );
        assert!(a["latency_ms"].as_f64().unwrap() >= 0.0);
    }

    // The receiver accepted exactly one POST, and it is the recorded body, signed.
    let got = rx.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body.as_ref(), body.as_bytes());
    assert!(signature_ok(&got[0], SECRET));
    assert_eq!(
        got[0].json()["entry"][0]["changes"][0]["value"]["messages"][0]["id"],
        json!(wamid)
    );
    assert_eq!(health(&h).await["pending_webhooks"], 0);

    // The filters see the same attempts.
    assert_eq!(h.attempts("delivered=false").await.len(), 3);
    assert_eq!(h.attempts("delivered=true").await.len(), 1);
    h.shutdown().await;
}

#[tokio::test]
async fn status_webhooks_are_retried_too_and_keep_their_timestamps() {
    let rx = Receiver::start().await;
    rx.fail_next.store(3, Ordering::SeqCst);
    let mut cfg = roomy(&rx.url);
    cfg.latency.sent = mynah_sandbox::config::Latency::fixed(1_000);
    cfg.latency.delivered = mynah_sandbox::config::Latency::fixed(3_600_000);
    let h = Harness::start(cfg).await;
    let wamid = h.send_text("+49 151 12345678", "hi").await;
    advance_to(&h, T0 + 1_000).await;
    h.wait("delivered=false", 1).await;
    advance_to(&h, T0 + 6_000).await;
    h.wait("delivered=false", 2).await;
    advance_to(&h, T0 + 16_000).await;
    h.wait("delivered=false", 3).await;
    advance_to(&h, T0 + 36_000).await;
    h.wait(&format!("wamid={wamid}&status=sent"), 1).await;
    let all = h.attempts("").await;
    let ats: Vec<i64> = all.iter().map(|a| a["at"].as_i64().unwrap()).collect();
    assert_eq!(ats, vec![T0 + 1_000, T0 + 6_000, T0 + 16_000, T0 + 36_000]);
    let nexts: Vec<Value> = all.iter().map(|a| a["next_retry_at"].clone()).collect();
    assert_eq!(
        nexts,
        vec![
            json!(T0 + 6_000),
            json!(T0 + 16_000),
            json!(T0 + 36_000),
            Value::Null
        ]
    );
    // The status carries the time it happened, not the time it was finally delivered.
    let st = &rx.bodies()[0]["entry"][0]["changes"][0]["value"]["statuses"][0];
    assert_eq!(st["id"], json!(wamid));
    assert_eq!(st["status"], json!("sent"));
    assert_eq!(st["timestamp"], json!(((T0 + 1_000) / 1_000).to_string()));
    h.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// (b) The retry window.

#[tokio::test]
async fn receiver_never_answering_200_is_dropped_after_the_retry_window() {
    let rx = Receiver::start().await;
    rx.fail_next.store(usize::MAX, Ordering::SeqCst);
    let mut cfg = roomy(&rx.url);
    cfg.webhooks.retry_window_ms = 60_000;
    let h = Harness::start(cfg).await;
    let wamid = inbound(&h, "+49 151 12345678", "hello").await;

    let mut n = 1;
    loop {
        let got = h.wait("delivered=false", n).await;
        let last = got.last().unwrap().clone();
        if last["outcome"] == "dropped" {
            break;
        }
        assert_eq!(last["outcome"], "retrying", "{last:#?}");
        advance_to(&h, last["next_retry_at"].as_i64().unwrap()).await;
        n += 1;
        assert!(n < 20, "never dropped");
    }
    let all = h.attempts(&format!("wamid={wamid}")).await;
    let summary: Vec<(i64, String, Value)> = all
        .iter()
        .map(|a| {
            (
                a["at"].as_i64().unwrap() - T0,
                a["outcome"].as_str().unwrap().to_string(),
                a["next_retry_at"].clone(),
            )
        })
        .collect();
    // 0, 5, 15, 35 s; the next retry would be at 75 s, past the 60 s window.
    assert_eq!(
        summary,
        vec![
            (0, "retrying".into(), json!(T0 + 5_000)),
            (5_000, "retrying".into(), json!(T0 + 15_000)),
            (15_000, "retrying".into(), json!(T0 + 35_000)),
            (35_000, "dropped".into(), Value::Null),
        ]
    );
    assert_eq!(
        health(&h).await["pending_webhooks"],
        0,
        "a dropped event is no longer pending"
    );

    // Nothing more, ever.
    h.advance(86_400.0).await;
    assert_eq!(h.attempts("").await.len(), 4);
    assert!(rx.received().is_empty());
    h.shutdown().await;
}

/// One `advance` fires every timer due on the way, each at its own time: the retries of a
/// failing delivery included, so jumping past the window gives the same attempts as stepping.
#[tokio::test]
async fn one_advance_past_the_window_runs_every_retry_at_its_own_time() {
    let rx = Receiver::start().await;
    rx.fail_next.store(usize::MAX, Ordering::SeqCst);
    let mut cfg = roomy(&rx.url);
    cfg.webhooks.retry_window_ms = 60_000;
    let h = Harness::start(cfg).await;
    let wamid = inbound(&h, "+49 151 12345678", "hello").await;
    h.wait("delivered=false", 1).await;
    h.advance(120.0).await;
    // A bounded wait for the attempts the jump should have made (at once when they exist).
    h.control_get("/webhooks/wait?delivered=false&count=4&timeout_ms=2000")
        .await;
    let all = h.attempts(&format!("wamid={wamid}")).await;
    let summary: Vec<(i64, String)> = all
        .iter()
        .map(|a| {
            (
                a["at"].as_i64().unwrap() - T0,
                a["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (0, "retrying".to_string()),
            (5_000, "retrying".to_string()),
            (15_000, "retrying".to_string()),
            (35_000, "dropped".to_string()),
        ],
        "advancing 120 s in one step must run the retries due at 5, 15 and 35 s"
    );
    assert_eq!(health(&h).await["pending_webhooks"], 0);
    h.shutdown().await;
}

/// The default window is seven days of sandbox time: one jump of eight days ends in `dropped`.
#[tokio::test]
async fn default_window_drops_after_seven_days_in_one_jump() {
    let rx = Receiver::start().await;
    rx.fail_next.store(usize::MAX, Ordering::SeqCst);
    let h = Harness::start(roomy(&rx.url)).await;
    let wamid = inbound(&h, "+49 151 12345678", "hello").await;
    h.wait("delivered=false", 1).await;
    h.advance(8.0 * 86_400.0).await;
    h.control_get("/webhooks/wait?delivered=false&count=177&timeout_ms=2000")
        .await;
    let all = h.attempts(&format!("wamid={wamid}")).await;
    let last = all.last().unwrap();
    assert_eq!(
        last["outcome"],
        "dropped",
        "after 8 days the event is dropped; attempts: {}",
        all.len()
    );
    assert!(last["at"].as_i64().unwrap() - T0 <= 7 * 86_400_000);
    // 5 s doubling to the 1 h cap, then hourly, within 7 days: 177 attempts.
    assert_eq!(all.len(), 177);
    h.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// (c) Isolation.

#[tokio::test]
async fn a_stuck_endpoint_does_not_stall_another_numbers_endpoint() {
    let stuck = HoldReceiver::start(usize::MAX).await;
    let healthy = Receiver::start().await;
    let failing = Receiver::start().await;
    failing.fail_next.store(usize::MAX, Ordering::SeqCst);
    // `advance` waits for answers whose retry could fall inside it, up to the timeout: keep the
    // timeout short so the stuck endpoint costs little wall-clock time.
    let mut cfg = roomy(&stuck.url);
    cfg.webhooks.timeout_ms = 200;
    let h = Harness::start(cfg).await;
    for (pnid, key, url) in [
        ("106540352240002", "key-two", &healthy.url),
        ("106540352240003", "key-three", &failing.url),
    ] {
        let (s, b) = h
            .control(
                reqwest::Method::POST,
                "/numbers",
                &json!({
                    "phone_number_id": pnid,
                    "display_phone_number": format!("1555{}", &pnid[9..]),
                    "api_key": key,
                    "webhook_url": url,
                }),
            )
            .await;
        assert_eq!(s, 201, "{b}");
    }

    let w1 = h
        .send_text("+49 151 12345678", "to the stuck endpoint")
        .await;
    let send_with = |key: &'static str, body: Value| {
        let req = h
            .http
            .post(format!("{}/messages", h.base))
            .header("D360-API-KEY", key)
            .json(&body)
            .send();
        async move {
            let r = req.await.unwrap();
            assert_eq!(r.status(), 200);
            let v: Value = r.json().await.unwrap();
            v["messages"][0]["id"].as_str().unwrap().to_string()
        }
    };
    let w3 = send_with(
        "key-three",
        text("+49 151 12345678", "to the failing endpoint"),
    )
    .await;
    let w2 = send_with(
        "key-two",
        text("+49 151 12345678", "to the healthy endpoint"),
    )
    .await;
    h.advance(10.0).await;

    // The healthy endpoint gets all three statuses at once, while the first endpoint's POST
    // hangs and the third's fail.
    h.wait(&format!("wamid={w2}&status=read"), 1).await;
    h.wait(&format!("wamid={w2}&status=delivered"), 1).await;
    h.wait(&format!("wamid={w2}&status=sent"), 1).await;
    stuck.arrivals(1).await;
    let got = healthy.statuses();
    assert_eq!(
        per_wamid(&got).get(&w2),
        Some(&vec!["sent".to_string(), "delivered".into(), "read".into()])
    );
    assert!(
        got.iter().all(|(w, _)| *w == w2),
        "only its own number's events: {got:?}"
    );
    assert!(
        h.attempts(&format!("wamid={w1}&delivered=true"))
            .await
            .is_empty(),
        "the stuck endpoint has not answered"
    );
    assert!(
        h.attempts(&format!("wamid={w3}&delivered=true"))
            .await
            .is_empty()
    );
    assert!(
        !h.attempts(&format!("wamid={w3}&delivered=false"))
            .await
            .is_empty()
    );
    for r in healthy.received() {
        assert!(signature_ok(&r, SECRET));
        assert_eq!(
            r.json()["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"],
            json!("106540352240002")
        );
    }

    // Once the stuck receiver answers, its events flow.
    stuck.release();
    h.wait(&format!("wamid={w1}&status=read"), 1).await;
    h.shutdown().await;
}

#[tokio::test]
async fn a_slow_event_does_not_stall_later_events_of_the_same_endpoint() {
    let rx = HoldReceiver::start(1).await;
    let mut cfg = roomy(&rx.url);
    cfg.webhooks.max_in_flight = 4;
    let h = Harness::start(cfg).await;
    let a = inbound(&h, "+49 151 12345678", "first").await;
    rx.arrivals(1).await;
    let b = inbound(&h, "+49 151 87654321", "second").await;
    let c = inbound(&h, "+49 151 12345678", "third").await;
    h.wait(&format!("wamid={b}"), 1).await;
    h.wait(&format!("wamid={c}"), 1).await;
    assert!(
        h.attempts(&format!("wamid={a}")).await.is_empty(),
        "the first is still in flight"
    );
    rx.release();
    h.wait(&format!("wamid={a}"), 1).await;
    let ids: Vec<Value> = rx
        .bodies()
        .iter()
        .map(|b| b["entry"][0]["changes"][0]["value"]["messages"][0]["id"].clone())
        .collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[0], json!(a), "the held one arrived first");
    let answered: Vec<Value> = h
        .attempts("")
        .await
        .iter()
        .map(|x| x["events"][0]["wamid"].clone())
        .collect();
    assert_eq!(answered.last(), Some(&json!(a)), "and was answered last");
    h.shutdown().await;
}

#[tokio::test]
async fn a_failed_event_waits_for_its_retry_while_later_events_move_on() {
    let rx = Receiver::start().await;
    rx.fail_next.store(1, Ordering::SeqCst);
    let h = Harness::start(roomy(&rx.url)).await;
    let a = inbound(&h, "+49 151 12345678", "first").await;
    h.wait("delivered=false", 1).await;
    let b = inbound(&h, "+49 151 12345678", "second").await;
    h.wait(&format!("wamid={b}"), 1).await;
    assert!(
        h.attempts(&format!("wamid={a}&delivered=true"))
            .await
            .is_empty()
    );
    advance_to(&h, T0 + 5_000).await;
    h.wait(&format!("wamid={a}"), 1).await;
    let ids: Vec<Value> = rx
        .bodies()
        .iter()
        .map(|x| x["entry"][0]["changes"][0]["value"]["messages"][0]["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!(b), json!(a)]);
    h.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// (d) The receiver timeout.

#[tokio::test]
async fn a_receiver_slower_than_the_timeout_has_failed() {
    let rx = HoldReceiver::start(1).await;
    let mut cfg = roomy(&rx.url);
    cfg.webhooks.timeout_ms = 200;
    let h = Harness::start(cfg).await;
    let wamid = inbound(&h, "+49 151 12345678", "hello").await;
    let failed = h.wait("delivered=false", 1).await;
    let a = &failed[0];
    assert_eq!(a["status"], Value::Null, "{a:#?}");
    let error = a["error"].as_str().unwrap();
    assert!(
        error.contains("200 ms"),
        "the error names the timeout: {error}"
    );
    assert!(error.contains("did not answer"), "{error}");
    assert_eq!(a["outcome"], "retrying");
    assert_eq!(a["next_retry_at"], json!(T0 + 5_000));
    let latency = a["latency_ms"].as_f64().unwrap();
    assert!((190.0..5_000.0).contains(&latency), "latency {latency} ms");

    // The retry reaches a receiver that answers in time.
    advance_to(&h, T0 + 5_000).await;
    let ok = h.wait(&format!("wamid={wamid}"), 1).await;
    assert_eq!(ok[0]["attempt"], 2);
    assert_eq!(ok[0]["status"], 200);
    h.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// (e) Batching.

#[tokio::test]
async fn batching_carries_several_statuses_per_post() {
    // One POST in flight at a time and the first one held: everything else queues behind it and
    // leaves in batches of 50.
    let rx = HoldReceiver::start(1).await;
    let mut cfg = roomy(&rx.url);
    cfg.webhooks.batch_size = 50;
    cfg.webhooks.max_in_flight = 1;
    // A retry of the held POST could not fall inside the advance, so the advance does not wait
    // for its answer (it would wait, up to the timeout, if one could).
    cfg.webhooks.initial_backoff_ms = 60_000;
    let h = Harness::start(cfg).await;
    let mut wamids = Vec::new();
    for i in 0..40 {
        wamids.push(
            h.send_text(&format!("+49 151 100000{i:02}"), &format!("message {i}"))
                .await,
        );
    }
    h.advance(10.0).await;
    rx.arrivals(1).await;
    rx.release();
    h.drain().await;

    let bodies = rx.bodies();
    let counts: Vec<usize> = bodies.iter().map(|b| statuses_of(b).len()).collect();
    assert_eq!(
        counts.iter().sum::<usize>(),
        120,
        "40 messages x sent, delivered, read: {counts:?}"
    );
    assert_eq!(counts, vec![1, 50, 50, 19]);
    for r in rx.received() {
        assert!(signature_ok(&r, SECRET));
        let b = r.json();
        // One entry, one change: the statuses merged into one value, with every contact.
        assert_eq!(b["entry"].as_array().unwrap().len(), 1, "{b}");
        let changes = b["entry"][0]["changes"].as_array().unwrap();
        assert_eq!(changes.len(), 1, "{b}");
        let value = &changes[0]["value"];
        assert_eq!(value["metadata"]["phone_number_id"], json!(PNID));
        let contacts: BTreeSet<&str> = value["contacts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["wa_id"].as_str().unwrap())
            .collect();
        let recipients: BTreeSet<&str> = value["statuses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["recipient_id"].as_str().unwrap())
            .collect();
        assert_eq!(contacts, recipients, "a contact for every recipient");
        // The shape a gateway reads typed, without a JSON tree.
        assert!(mynah_wire::webhook::statuses_only(&r.body).is_some(), "{b}");
    }
    let mut all = Vec::new();
    for b in &bodies {
        for s in statuses_of(b) {
            all.push((
                s["id"].as_str().unwrap().to_string(),
                s["status"].as_str().unwrap().to_string(),
            ));
        }
    }
    let distinct: BTreeSet<_> = all.iter().cloned().collect();
    assert_eq!(distinct.len(), 120, "no status twice");
    for (w, seq) in per_wamid(&all) {
        assert_eq!(
            seq,
            vec!["sent", "delivered", "read"],
            "{w}: order kept within a batch and across batches"
        );
    }
    // Each attempt lists the events it carried.
    let delivered = h.attempts("delivered=true").await;
    let carried: Vec<usize> = delivered
        .iter()
        .map(|a| a["events"].as_array().unwrap().len())
        .collect();
    assert_eq!(carried, counts);
    assert_eq!(wamids.len(), per_wamid(&all).len());
    h.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// (f) Chaos.

#[tokio::test]
async fn chaos_duplicate_delivers_every_event_twice() {
    let rx = Receiver::start().await;
    let mut cfg = roomy(&rx.url);
    cfg.webhooks.chaos.duplicate = 1.0;
    let h = Harness::start(cfg).await;
    let w1 = h.send_text("+49 151 12345678", "one").await;
    let w2 = h.send_text("+49 151 87654321", "two").await;
    h.advance(10.0).await;
    h.drain().await;
    let got = per_wamid(&rx.statuses());
    for w in [&w1, &w2] {
        assert_eq!(
            got.get(w).unwrap(),
            &vec!["sent", "sent", "delivered", "delivered", "read", "read"],
            "every event twice, in order"
        );
    }
    // Each duplicate is the same body, byte for byte.
    let mut counts: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    for r in rx.received() {
        *counts.entry(r.body.to_vec()).or_default() += 1;
    }
    assert_eq!(counts.len(), 6);
    assert!(
        counts.values().all(|n| *n == 2),
        "{:?}",
        counts.values().collect::<Vec<_>>()
    );
    h.shutdown().await;
}

/// Runs a reorder script and returns the per-wamid arrival order.
async fn reorder_run(seed: u64) -> BTreeMap<String, Vec<String>> {
    let rx = Receiver::start().await;
    let mut cfg = roomy(&rx.url);
    cfg.seed = seed;
    cfg.webhooks.chaos.reorder = 0.5;
    cfg.webhooks.chaos.reorder_hold_ms = 10_000;
    let h = Harness::start(cfg).await;
    for i in 0..10 {
        h.send_text(&format!("+49 151 200000{i:02}"), "hi").await;
    }
    h.advance(60.0).await;
    h.drain().await;
    h.shutdown().await;
    rx.stop();
    per_wamid(&rx.statuses())
}

#[tokio::test]
async fn chaos_reorder_is_seeded_and_lets_read_overtake_delivered() {
    let first = reorder_run(7).await;
    assert_eq!(first.len(), 10);
    for (w, seq) in &first {
        let mut sorted = seq.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            vec!["delivered", "read", "sent"],
            "{w}: each status once"
        );
    }
    let out_of_order = first
        .values()
        .filter(|s| *s != &vec!["sent", "delivered", "read"])
        .count();
    assert!(
        out_of_order > 0,
        "some message's statuses arrive out of order: {first:?}"
    );
    let read_first = first
        .values()
        .filter(|s| {
            let d = s.iter().position(|x| x == "delivered").unwrap();
            let r = s.iter().position(|x| x == "read").unwrap();
            r < d
        })
        .count();
    assert!(
        read_first > 0,
        "read arrives before delivered for some message: {first:?}"
    );
    // Same seed, same misbehaviour.
    let second = reorder_run(7).await;
    assert_eq!(first, second, "the same seed reorders the same way");
}

#[tokio::test]
async fn chaos_delay_holds_events_back_on_the_sandbox_clock() {
    let rx = Receiver::start().await;
    let mut cfg = roomy(&rx.url);
    cfg.webhooks.chaos.delay = 1.0;
    cfg.webhooks.chaos.delay_ms = Some(mynah_sandbox::config::Latency::fixed(60_000));
    let h = Harness::start(cfg).await;
    let wamid = inbound(&h, "+49 151 12345678", "hello").await;
    h.advance(59.0).await;
    assert!(
        h.attempts("").await.is_empty(),
        "held back for 60 s of sandbox time"
    );
    assert_eq!(health(&h).await["pending_webhooks"], 1);
    h.advance(1.0).await;
    let got = h.wait(&format!("wamid={wamid}"), 1).await;
    assert_eq!(got[0]["at"], json!(T0 + 60_000));
    h.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// (g) Restart with deliveries pending.

async fn download(h: &Harness, media_id: &str) -> (String, Vec<u8>) {
    let r = h
        .http
        .get(format!("{}/{media_id}", h.base))
        .header("D360-API-KEY", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let info: Value = r.json().await.unwrap();
    let url = info["url"].as_str().unwrap().to_string();
    let r = h
        .http
        .get(&url)
        .header("D360-API-KEY", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "download {url}");
    (
        info["sha256"].as_str().unwrap().to_string(),
        r.bytes().await.unwrap().to_vec(),
    )
}

/// The part of a message that must survive a restart.
fn message_essentials(messages: &Value) -> Vec<Value> {
    messages["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            json!([
                m["id"],
                m["direction"],
                m["wa_id"],
                m["type"],
                m["status"],
                m["timeline"],
                m["body"]
            ])
        })
        .collect()
}

#[tokio::test]
async fn pending_deliveries_messages_users_and_media_survive_a_restart() {
    let rx = Receiver::start().await;
    rx.fail_next.store(usize::MAX, Ordering::SeqCst);
    let dir = temp_dir("webhook-restart");
    let mut cfg = roomy(&rx.url);
    cfg.data_dir = Some(dir.clone());

    let h = Harness::start(cfg.clone()).await;
    let (s, b) = h
        .control(
            reqwest::Method::PUT,
            "/users/4915100000001",
            &json!({ "reads": false, "name": "Ada" }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let pixel = b"\x89PNG\r\n\x1a\nnot really a picture".to_vec();
    let media_id = h.upload_png(&pixel).await;
    let w1 = h.send_text("+49 151 00000001", "one").await;
    let w2 = h.send_text("+49 151 00000002", "two").await;
    let (s, b) = h
        .send_360(json!({ "messaging_product": "whatsapp", "to": "4915100000003", "type": "image", "image": { "id": media_id, "caption": "pixel" } }))
        .await;
    assert_eq!(s, 200, "{b}");
    let w3 = b["messages"][0]["id"].as_str().unwrap().to_string();
    let w4 = inbound(&h, "+49 151 00000004", "inbound before the restart").await;
    h.advance(10.0).await;

    let mut expected: BTreeSet<(String, String)> = BTreeSet::new();
    for (w, statuses) in [
        (&w1, vec!["sent", "delivered"]),
        (&w2, vec!["sent", "delivered", "read"]),
        (&w3, vec!["sent", "delivered", "read"]),
    ] {
        for s in statuses {
            expected.insert((w.clone(), s.to_string()));
        }
    }
    expected.insert((w4.clone(), "text".into()));
    // Every event has failed at least once, and none got through.
    wait_until(&h, false, |all| keys_where(all, "retrying") == expected).await;
    assert!(keys_where(&h.attempts("").await, "delivered").is_empty());
    assert_eq!(health(&h).await["pending_webhooks"], json!(expected.len()));
    // Which deliveries carried each event, and how many attempts they had.
    let mut deliveries_before: BTreeMap<(String, String), (BTreeSet<u64>, u64)> = BTreeMap::new();
    for a in h.attempts("").await {
        for k in event_keys(&a) {
            let e = deliveries_before.entry(k).or_default();
            e.0.insert(a["delivery_id"].as_u64().unwrap());
            e.1 = e.1.max(a["attempt"].as_u64().unwrap());
        }
    }
    let messages_before = h.control_get("/messages").await.1;
    let clock_before = now_ms(&h).await;
    let history_before = h.attempts("").await;
    let last_seq_before = history_before
        .last()
        .map(|a| a["seq"].as_u64().unwrap())
        .unwrap_or(0);
    h.shutdown().await;

    // A new sandbox on the same data directory; the receiver is healthy again.
    rx.fail_next.store(0, Ordering::SeqCst);
    let h = Harness::start(cfg).await;
    assert_eq!(
        now_ms(&h).await,
        clock_before,
        "the manual clock resumes where it stopped"
    );
    assert_eq!(
        health(&h).await["pending_webhooks"],
        json!(expected.len()),
        "pending deliveries are back"
    );
    // The attempt history is back too, and its sequence goes on.
    assert_eq!(
        h.attempts("").await,
        history_before,
        "attempt history survives"
    );
    h.advance(3_600.0).await;
    let all: Vec<Value> = wait_until(&h, true, |all| keys_where(all, "delivered") == expected)
        .await
        .into_iter()
        .filter(|a| a["seq"].as_u64().unwrap() > last_seq_before)
        .collect();
    assert!(all.iter().all(|a| a["outcome"] == "delivered"), "{all:#?}");
    // The restored deliveries are the same deliveries, retried: same id, later attempt number.
    for a in &all {
        for k in event_keys(a) {
            let (ids, attempts_before) = &deliveries_before[&k];
            assert!(
                ids.contains(&a["delivery_id"].as_u64().unwrap()),
                "{k:?}: a retry of the same delivery: {a:#?}"
            );
            assert!(
                a["attempt"].as_u64().unwrap() > *attempts_before,
                "{k:?}: attempt numbers go on: {a:#?}"
            );
        }
    }
    assert_eq!(health(&h).await["pending_webhooks"], 0);
    let mut got: BTreeSet<(String, String)> = rx.statuses().into_iter().collect();
    for b in rx.bodies() {
        for m in b["entry"][0]["changes"][0]["value"]["messages"]
            .as_array()
            .into_iter()
            .flatten()
        {
            got.insert((
                m["id"].as_str().unwrap().to_string(),
                m["type"].as_str().unwrap().to_string(),
            ));
        }
    }
    assert_eq!(got, expected, "every pending event reached the receiver");
    assert_eq!(rx.received().len(), expected.len(), "each exactly once");
    for r in rx.received() {
        assert!(signature_ok(&r, SECRET));
    }

    // Messages, users and media survived too.
    let messages_after = h.control_get("/messages").await.1;
    assert_eq!(
        message_essentials(&messages_after),
        message_essentials(&messages_before)
    );
    assert_eq!(messages_after["messages"].as_array().unwrap().len(), 4);
    let (s, user) = h.control_get("/users/4915100000001").await;
    assert_eq!(s, 200, "{user}");
    assert_eq!(user["name"], json!("Ada"));
    assert_eq!(user["behaviour"]["reads"], json!(false));
    let (sha, bytes) = download(&h, &media_id).await;
    assert_eq!(bytes, pixel);
    assert_eq!(sha.len(), 64);
    // And the sandbox carries on: a new message after the restart gets a fresh wamid and its
    // lifecycle.
    let w5 = h.send_text("+49 151 00000005", "after the restart").await;
    assert!(![&w1, &w2, &w3, &w4].contains(&&w5));
    h.advance(10.0).await;
    h.wait(&format!("wamid={w5}&status=read"), 1).await;
    h.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The attempt history holds at most `webhooks.keep_attempt_bytes`: the oldest attempts go
/// first, the newest stays, and what is kept is a fraction of what was delivered.
#[tokio::test]
async fn the_attempt_history_stays_within_its_bytes() {
    let rx = Receiver::start().await;
    let mut cfg = roomy(&rx.url);
    cfg.webhooks.keep_attempts = 100_000;
    cfg.webhooks.keep_attempt_bytes = 16 * 1024;
    let h = Harness::start(cfg).await;
    let mut last = String::new();
    for i in 0..40 {
        last = inbound(&h, &format!("+49 151 {:08}", 10_000 + i), "hello").await;
    }
    h.wait(&format!("wamid={last}"), 1).await;
    h.drain().await;
    let kept = h.attempts("").await;
    let bytes: usize = kept
        .iter()
        .map(|a| a["body"].as_str().map_or(0, str::len))
        .sum();
    assert!(bytes <= 16 * 1024, "{bytes} bytes of bodies kept");
    assert!(
        kept.len() < rx.received().len(),
        "{} kept of {} delivered",
        kept.len(),
        rx.received().len()
    );
    assert!(
        kept.iter()
            .any(|a| a["body"].as_str().is_some_and(|b| b.contains(&last))),
        "the newest attempt is kept"
    );
    h.shutdown().await;
}
