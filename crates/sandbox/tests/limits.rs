//! Capacity limits on the manual clock (seed page "Before sending a message"): the `/messages`
//! burst of 150 and the rate of 50/s per credential, the 60-request burst of every other
//! endpoint, the configurable throttle status, and the 503 once pending work passes its bound.

mod common;
use common::*;
use mynah_sandbox::config::Config;
use serde_json::{Value, json};

/// A raw answer: status, `Retry-After`, body.
struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: Value,
}

async fn answer(r: reqwest::Response) -> Answer {
    let status = r.status().as_u16();
    let retry_after = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        retry_after,
        body,
    }
}

async fn send_360_raw(h: &Harness, body: &Value) -> Answer {
    let r = h
        .http
        .post(format!("{}/messages", h.base))
        .header("D360-API-KEY", KEY)
        .json(body)
        .send()
        .await
        .unwrap();
    answer(r).await
}

async fn send_cloud_raw(h: &Harness, body: &Value) -> Answer {
    let r = h
        .http
        .post(format!("{}/v23.0/{PNID}/messages", h.base))
        .bearer_auth(TOKEN)
        .json(body)
        .send()
        .await
        .unwrap();
    answer(r).await
}

async fn get_webhook_config_raw(h: &Harness) -> Answer {
    let r = h
        .http
        .get(format!("{}/v1/configs/webhook", h.base))
        .header("D360-API-KEY", KEY)
        .send()
        .await
        .unwrap();
    answer(r).await
}

/// Sends `n` messages and returns how many were accepted before the first refusal, plus that
/// refusal (if any).
async fn burst(h: &Harness, n: usize, cloud: bool) -> (usize, Option<Answer>) {
    for i in 0..n {
        let body = text("+49 151 12345678", &format!("burst {i}"));
        let a = if cloud {
            send_cloud_raw(h, &body).await
        } else {
            send_360_raw(h, &body).await
        };
        if a.status != 200 {
            return (i, Some(a));
        }
    }
    (n, None)
}

fn assert_throttled(a: &Answer, status: u16, code: i64) {
    assert_eq!(a.status, status, "{}", a.body);
    assert_eq!(a.body["error"]["code"], json!(code), "{}", a.body);
    let retry: u64 = a
        .retry_after
        .as_deref()
        .expect("a throttled answer carries Retry-After")
        .parse()
        .expect("Retry-After is whole seconds");
    assert!(retry >= 1, "Retry-After {retry}");
}

#[tokio::test]
async fn messages_burst_150_then_429_then_50_per_second() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;

    // 150 in a burst all succeed, the 151st is refused with 130429 and Retry-After.
    let (ok, refused) = burst(&h, 151, false).await;
    assert_eq!(ok, 150, "the burst admits exactly 150 /messages requests");
    let refused = refused.expect("the 151st request is refused");
    assert_throttled(&refused, 429, 130429);
    assert_eq!(
        refused.retry_after.as_deref(),
        Some("1"),
        "one message is 20 ms away: Retry-After 1"
    );
    assert!(
        refused.body["error"]["message"].is_string(),
        "{}",
        refused.body
    );
    assert!(
        refused.body["error"]["fbtrace_id"].is_string(),
        "{}",
        refused.body
    );

    // The bearer token has its own bucket: a full burst through the Cloud dialect.
    let (ok, refused) = burst(&h, 151, true).await;
    assert_eq!(ok, 150, "the token's bucket is separate from the key's");
    let refused = refused.expect("the token's 151st request is refused");
    assert_throttled(&refused, 429, 130429);

    // Still refused while the clock stands still.
    let again = send_360_raw(&h, &text("+49 151 12345678", "still")).await;
    assert_throttled(&again, 429, 130429);

    // One second later: 50 more, and the 51st is refused.
    h.advance(1.0).await;
    let (ok, refused) = burst(&h, 51, false).await;
    assert_eq!(ok, 50, "50 requests per second after the burst");
    assert_throttled(&refused.expect("the 51st is refused"), 429, 130429);
    let (ok, refused) = burst(&h, 51, true).await;
    assert_eq!(ok, 50, "the token recovers at 50/s too");
    assert_throttled(&refused.expect("the token's 51st is refused"), 429, 130429);

    // A full recovery after three seconds: the bucket holds at most the burst.
    h.advance(3.0).await;
    let (ok, _) = burst(&h, 151, false).await;
    assert_eq!(ok, 150, "after 3 s the full burst is back, and no more");

    // Refused requests were not accepted: exactly the accepted messages exist.
    let (s, b) = h.control_get("/messages?limit=10000").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["messages"].as_array().unwrap().len(),
        150 + 150 + 50 + 50 + 150
    );
    h.shutdown().await;
}

#[tokio::test]
async fn other_endpoints_allow_60_then_429_with_code_4() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    for i in 0..60 {
        let a = get_webhook_config_raw(&h).await;
        assert_eq!(a.status, 200, "request {i}: {}", a.body);
        assert_eq!(a.body["url"], json!(rx.url));
    }
    let refused = get_webhook_config_raw(&h).await;
    assert_throttled(&refused, 429, 4);

    // The other bucket is separate from /messages: sends still go through.
    let (s, b) = h.send_360(text("+49 151 12345678", "hi")).await;
    assert_eq!(s, 200, "{b}");

    // 20 per second after the burst.
    h.advance(1.0).await;
    for i in 0..20 {
        let a = get_webhook_config_raw(&h).await;
        assert_eq!(a.status, 200, "request {i} after 1 s: {}", a.body);
    }
    assert_throttled(&get_webhook_config_raw(&h).await, 429, 4);
    h.shutdown().await;
}

#[tokio::test]
async fn throttle_status_is_configurable() {
    let rx = Receiver::start().await;
    let mut cfg = config(&rx.url);
    cfg.limits.throttle_status = 400;
    cfg.limits.messages_burst = Some(3);
    cfg.limits.other_burst = Some(2);
    let h = Harness::start(cfg).await;
    let (ok, refused) = burst(&h, 4, false).await;
    assert_eq!(ok, 3, "the configured burst");
    assert_throttled(&refused.expect("refused"), 400, 130429);
    let (ok, refused) = burst(&h, 4, true).await;
    assert_eq!(ok, 3);
    assert_throttled(&refused.expect("refused"), 400, 130429);
    assert_eq!(get_webhook_config_raw(&h).await.status, 200);
    assert_eq!(get_webhook_config_raw(&h).await.status, 200);
    assert_throttled(&get_webhook_config_raw(&h).await, 400, 4);
    h.shutdown().await;
}

#[tokio::test]
async fn high_throughput_profile_raises_the_burst() {
    let rx = Receiver::start().await;
    let mut cfg = config(&rx.url);
    cfg.limits.profile = mynah_sandbox::config::LimitProfile::HighThroughput;
    let h = Harness::start(cfg).await;
    let (ok, refused) = burst(&h, 300, false).await;
    assert_eq!(ok, 300, "{:?}", refused.map(|a| a.body));
    h.shutdown().await;
}

/// Pending webhook events, as the control API reports them.
async fn pending(h: &Harness) -> u64 {
    let (s, b) = h.control_get("/health").await;
    assert_eq!(s, 200, "{b}");
    b["pending_webhooks"].as_u64().unwrap()
}

fn big_limits(cfg: &mut Config) {
    cfg.limits.profile = mynah_sandbox::config::LimitProfile::Unlimited;
}

#[tokio::test]
async fn pending_work_past_the_bound_gets_503_until_it_drains() {
    let rx = Receiver::start().await;
    rx.fail_next
        .store(1_000_000, std::sync::atomic::Ordering::SeqCst);
    let mut cfg = config(&rx.url);
    big_limits(&mut cfg);
    cfg.limits.max_pending = 5;
    let h = Harness::start(cfg).await;

    // Six accepted messages; nothing is pending until the clock moves.
    let mut wamids = Vec::new();
    for i in 0..6 {
        let (s, b) = h.send_360(text(&format!("+49 151 1000000{i}"), "hi")).await;
        assert_eq!(s, 200, "{b}");
        wamids.push(b["messages"][0]["id"].as_str().unwrap().to_string());
    }
    assert_eq!(pending(&h).await, 0);

    // One second: every message is sent and delivered (12 events), and every POST fails.
    h.advance(1.0).await;
    h.wait("delivered=false&status=delivered", 6).await;
    assert!(pending(&h).await > 5);

    let r = send_360_raw(&h, &text("+49 151 10000009", "too much")).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.body["error"]["code"], json!(2), "{}", r.body);
    assert!(r.retry_after.is_some(), "a 503 carries Retry-After");
    let r = send_cloud_raw(&h, &text("+49 151 10000009", "too much")).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.body["error"]["code"], json!(2), "{}", r.body);

    // The receiver recovers; the retries and the reads drain the queue.
    rx.fail_next.store(0, std::sync::atomic::Ordering::SeqCst);
    h.advance(60.0).await;
    for w in &wamids {
        h.wait(&format!("wamid={w}&status=read"), 1).await;
        h.wait(&format!("wamid={w}&status=delivered"), 1).await;
        h.wait(&format!("wamid={w}&status=sent"), 1).await;
    }
    assert_eq!(pending(&h).await, 0);
    assert!(rx.received().iter().all(|r| signature_ok(r, SECRET)));
    let (s, b) = h.send_360(text("+49 151 10000009", "drained")).await;
    assert_eq!(s, 200, "after the queue drained: {b}");
    h.shutdown().await;
}

fn hello(to: &str) -> Value {
    json!({ "messaging_product": "whatsapp", "to": to, "type": "template",
            "template": { "name": "hello_world", "language": { "code": "en_US" } } })
}

fn retry_after(a: &Answer) -> u64 {
    a.retry_after
        .as_deref()
        .unwrap_or_else(|| panic!("{} without Retry-After: {}", a.status, a.body))
        .parse()
        .expect("Retry-After is whole seconds")
}

#[tokio::test]
async fn throughput_and_pair_rate_refusals_say_when_to_come_back() {
    let rx = Receiver::start().await;
    let mut cfg = config(&rx.url);
    cfg.limits.profile = mynah_sandbox::config::LimitProfile::Unlimited;
    cfg.rules.throughput_mps = Some(2);
    cfg.rules.pair_rate = Some(mynah_sandbox::config::PairRate {
        every_ms: 6_000,
        burst: 1,
    });
    let h = Harness::start(cfg).await;
    assert_eq!(
        send_360_raw(&h, &text("4915100000001", "a")).await.status,
        200
    );
    // The same user again at once: one message per 6 s to a user.
    let pair = send_360_raw(&h, &text("4915100000001", "b")).await;
    assert_throttled(&pair, 429, 131056);
    assert_eq!(retry_after(&pair), 6);
    // The number's throughput (2/s) is used up: half a second, rounded up.
    let throughput = send_cloud_raw(&h, &text("4915100000002", "c")).await;
    assert_throttled(&throughput, 429, 130429);
    assert_eq!(retry_after(&throughput), 1);
    // Coming back when told works.
    h.advance(6.0).await;
    assert_eq!(
        send_360_raw(&h, &text("4915100000001", "d")).await.status,
        200
    );
    h.shutdown().await;
}

#[tokio::test]
async fn retry_after_comes_with_a_throttle_status_of_400_too() {
    let rx = Receiver::start().await;
    let mut cfg = config(&rx.url);
    cfg.limits.profile = mynah_sandbox::config::LimitProfile::Unlimited;
    cfg.limits.throttle_status = 400;
    cfg.rules.throughput_mps = Some(1);
    cfg.rules.pair_rate = Some(mynah_sandbox::config::PairRate {
        every_ms: 10_000,
        burst: 1,
    });
    let h = Harness::start(cfg).await;
    assert_eq!(
        send_360_raw(&h, &text("4915100000001", "a")).await.status,
        200
    );
    h.advance(1.0).await;
    let pair = send_360_raw(&h, &text("4915100000001", "b")).await;
    assert_throttled(&pair, 400, 131056);
    assert_eq!(retry_after(&pair), 9);
    let throughput = send_360_raw(&h, &text("4915100000002", "c")).await;
    assert_throttled(&throughput, 400, 130429);
    assert_eq!(retry_after(&throughput), 1);
    h.shutdown().await;
}

#[tokio::test]
async fn a_synchronous_messaging_limit_says_when_the_window_has_room() {
    let rx = Receiver::start().await;
    let mut cfg = config(&rx.url);
    cfg.limits.profile = mynah_sandbox::config::LimitProfile::Unlimited;
    cfg.rules.messaging_limit = Some(mynah_sandbox::config::MessagingLimit {
        unique_users: 1,
        window_ms: 24 * 3_600_000,
        code: 131048,
        sync: true,
    });
    let h = Harness::start(cfg).await;
    assert_eq!(send_360_raw(&h, &hello("4915100000001")).await.status, 200);
    h.advance(3_600.0).await;
    let refused = send_360_raw(&h, &hello("4915100000002")).await;
    assert_throttled(&refused, 429, 131048);
    assert_eq!(
        retry_after(&refused),
        23 * 3_600,
        "when the first user leaves the window"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn a_fault_rule_answering_429_carries_retry_after() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    for action in [
        json!({ "code": 80007 }),
        json!({ "code": 131000, "http_status": 429 }),
    ] {
        let (s, b) = h
            .control(
                reqwest::Method::POST,
                "/faults",
                &json!({ "action": action, "times": 1 }),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        let a = send_360_raw(&h, &text("4915100000001", "x")).await;
        assert_eq!(a.status, 429, "{}", a.body);
        assert_eq!(retry_after(&a), 1);
    }
    // Other refusals carry none.
    let a = send_360_raw(&h, &json!({ "messaging_product": "whatsapp" })).await;
    assert_eq!(a.status, 400);
    assert_eq!(a.retry_after, None);
    h.shutdown().await;
}
