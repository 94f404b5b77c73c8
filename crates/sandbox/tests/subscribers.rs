//! Always-on webhook subscribers (`webhooks.subscribers`): every number's webhooks go to each of
//! them beside the number's own URL, each receiver with its own queue, retries and backoff; their
//! pending copies survive a restart and follow the subscriber list.

mod common;
use common::*;
use mynah_sandbox::config::{Config, LimitProfile};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

fn roomy(own_url: &str, subscribers: &[&str]) -> Config {
    let mut cfg = config(own_url);
    cfg.limits.profile = LimitProfile::Unlimited;
    cfg.webhooks.subscribers = subscribers.iter().map(|s| s.to_string()).collect();
    cfg
}

async fn pending(h: &Harness) -> u64 {
    h.control_get("/health").await.1["pending_webhooks"]
        .as_u64()
        .unwrap()
}

fn enc(url: &str) -> String {
    url.replace(':', "%3A").replace('/', "%2F")
}

/// Waits until `n` attempts to `url` matching `query` are recorded, delivered or not.
async fn wait_url(h: &Harness, url: &str, query: &str, n: usize) -> Vec<Value> {
    h.wait(&format!("url={}&{query}", enc(url)), n).await
}

/// A URL nobody listens on.
async fn dead_url() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    drop(l);
    url
}

fn counts(statuses: Vec<(String, String)>) -> BTreeMap<(String, String), usize> {
    let mut out = BTreeMap::new();
    for s in statuses {
        *out.entry(s).or_default() += 1;
    }
    out
}

#[tokio::test]
async fn subscribers_get_every_event_beside_the_numbers_own_url() {
    let own = Receiver::start().await;
    let sub = Receiver::start().await;
    let h = Harness::start(roomy(&own.url, &[&sub.url])).await;
    let w = h.send_text("4915100000001", "hello").await;
    h.advance(10.0).await;
    for url in [&own.url, &sub.url] {
        wait_url(&h, url, &format!("wamid={w}&status=read"), 1).await;
    }
    h.drain().await;
    let want: Vec<(String, String)> = ["sent", "delivered", "read"]
        .iter()
        .map(|s| (w.clone(), s.to_string()))
        .collect();
    assert_eq!(own.statuses(), want);
    assert_eq!(sub.statuses(), want, "in order, each once");
    for r in sub.received() {
        assert!(signature_ok(&r, SECRET));
    }
    // The attempt records say where each copy went, and the `url` filter picks them.
    let to_sub = h.attempts(&format!("url={}", enc(&sub.url))).await;
    assert_eq!(to_sub.len(), 3);
    assert!(to_sub.iter().all(|a| a["subscriber"] == 0), "{to_sub:#?}");
    let to_own = h.attempts(&format!("url={}", enc(&own.url))).await;
    assert_eq!(to_own.len(), 3);
    assert!(to_own.iter().all(|a| a.get("subscriber").is_none()));
    assert_eq!(h.attempts("").await.len(), 6);

    // The URL a user registers through the API only moves the own copy.
    let own2 = Receiver::start().await;
    h.set_webhook(&own2.url).await;
    let w2 = h.send_text("4915100000002", "hello").await;
    h.advance(10.0).await;
    wait_url(&h, &own2.url, &format!("wamid={w2}&status=read"), 1).await;
    wait_url(&h, &sub.url, &format!("wamid={w2}&status=read"), 1).await;
    h.shutdown().await;
}

#[tokio::test]
async fn account_events_reach_each_subscriber_once() {
    let own = Receiver::start().await;
    let other = Receiver::start().await;
    let sub = Receiver::start().await;
    let h = Harness::start(roomy(&own.url, &[&sub.url])).await;
    // A second number of the same account with a URL of its own.
    let (s, b) = h
        .control(
            Method::POST,
            "/numbers",
            &json!({ "phone_number_id": "200000000000001", "display_phone_number": "15550000001",
                     "api_key": "second-key", "webhook_url": other.url }),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = h
        .post_360(
            "/v1/configs/templates",
            &json!({ "name": "parcel_update", "language": "en_US", "category": "UTILITY",
                     "components": [{ "type": "BODY", "text": "Your parcel is on its way." }] }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    h.advance(120.0).await;
    h.drain().await;
    let field = "field=message_template_status_update";
    for url in [&own.url, &other.url, &sub.url] {
        let got = h.attempts(&format!("{field}&url={}", enc(url))).await;
        assert_eq!(got.len(), 1, "{url}: {got:#?}");
        assert_eq!(got[0]["outcome"], "delivered");
    }
    h.shutdown().await;
}

#[tokio::test]
async fn a_dead_own_url_never_delays_the_subscriber_and_vice_versa() {
    let own = Receiver::start().await;
    let sub = Receiver::start().await;
    own.fail_next.store(usize::MAX, Ordering::SeqCst);
    let mut cfg = roomy(&own.url, &[&sub.url]);
    cfg.webhooks.max_in_flight = 1;
    let h = Harness::start(cfg).await;
    let ws: Vec<String> = sends(&h, 3).await;
    h.advance(10.0).await;
    for w in &ws {
        wait_url(&h, &sub.url, &format!("wamid={w}&status=read"), 1).await;
    }
    // Every copy to the subscriber went through at its first attempt, while the own URL failed.
    let to_sub = h.attempts(&format!("url={}", enc(&sub.url))).await;
    assert_eq!(to_sub.len(), 9, "{to_sub:#?}");
    assert!(
        to_sub
            .iter()
            .all(|a| a["attempt"] == 1 && a["outcome"] == "delivered")
    );
    let failed = h
        .attempts(&format!("url={}&delivered=false", enc(&own.url)))
        .await;
    assert!(!failed.is_empty());
    assert!(failed.iter().all(|a| a["outcome"] == "retrying"));
    assert!(own.statuses().is_empty());
    // The own URL heals: its copies arrive with their retries, the subscriber gets nothing more.
    own.fail_next.store(0, Ordering::SeqCst);
    h.advance(3_600.0).await;
    h.drain().await;
    assert_eq!(own.statuses().len(), 9);
    assert_eq!(sub.statuses().len(), 9);
    h.shutdown().await;

    // The other way round: a subscriber nobody listens on stalls nothing of the own URL.
    let own = Receiver::start().await;
    let dead = dead_url().await;
    let mut cfg = roomy(&own.url, &[&dead]);
    cfg.webhooks.max_in_flight = 1;
    let h = Harness::start(cfg).await;
    let ws = sends(&h, 3).await;
    h.advance(10.0).await;
    for w in &ws {
        wait_url(&h, &own.url, &format!("wamid={w}&status=read"), 1).await;
    }
    let to_own = h.attempts(&format!("url={}", enc(&own.url))).await;
    assert_eq!(to_own.len(), 9);
    assert!(to_own.iter().all(|a| a["attempt"] == 1));
    let refused = wait_url(&h, &dead, "delivered=false", 1).await;
    assert!(
        refused[0]["error"]
            .as_str()
            .unwrap()
            .contains("cannot connect"),
        "{refused:#?}"
    );
    assert!(pending(&h).await > 0, "the dead subscriber's copies wait");
    h.shutdown().await;
}

async fn sends(h: &Harness, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(h.send_text(&format!("49151000001{i:02}"), "hello").await);
    }
    out
}

#[tokio::test]
async fn a_number_without_a_url_sends_only_to_the_subscribers() {
    let sub = Receiver::start().await;
    let h = Harness::start(roomy("", &[&sub.url])).await;
    let w = h.send_text("4915100000001", "hello").await;
    h.advance(10.0).await;
    wait_url(&h, &sub.url, &format!("wamid={w}&status=read"), 1).await;
    h.drain().await;
    let all = h.attempts("").await;
    assert_eq!(all.len(), 3, "no 'no webhook URL' attempts: {all:#?}");
    assert!(all.iter().all(|a| a["url"] == json!(sub.url)));
    h.shutdown().await;

    // Without subscribers, the attempt that says so is still recorded.
    let h = Harness::start(roomy("", &[])).await;
    let w = h.send_text("4915100000001", "hello").await;
    h.advance(10.0).await;
    let dropped = h
        .wait(&format!("wamid={w}&status=sent&delivered=false"), 1)
        .await;
    assert!(
        dropped[0]["error"]
            .as_str()
            .unwrap()
            .contains("no webhook URL is configured"),
        "{dropped:#?}"
    );
    assert_eq!(dropped[0]["outcome"], "dropped");
    h.shutdown().await;
}

#[tokio::test]
async fn pending_subscriber_copies_survive_a_restart_and_follow_the_list() {
    let own = Receiver::start().await;
    let sub0 = Receiver::start().await;
    let sub1 = Receiver::start().await;
    sub0.fail_next.store(usize::MAX, Ordering::SeqCst);
    sub1.fail_next.store(usize::MAX, Ordering::SeqCst);
    let dir = temp_dir("subscribers-restart");
    let mut cfg = roomy(&own.url, &[&sub0.url, &sub1.url]);
    cfg.data_dir = Some(dir.clone());
    let h = Harness::start(cfg.clone()).await;
    let w = h.send_text("4915100000001", "hello").await;
    h.advance(10.0).await;
    wait_url(&h, &own.url, &format!("wamid={w}&status=read"), 1).await;
    for url in [&sub0.url, &sub1.url] {
        wait_url(
            &h,
            url,
            &format!("wamid={w}&status=read&delivered=false"),
            1,
        )
        .await;
    }
    drain_own_only(&h, 6).await;
    h.shutdown().await;

    // Subscriber 0 moved to another address; subscriber 1 is no longer configured.
    let moved = Receiver::start().await;
    cfg.webhooks.subscribers = vec![moved.url.clone()];
    let h = Harness::start(cfg).await;
    let dropped = h
        .attempts(&format!("url={}&delivered=false", enc(&sub1.url)))
        .await
        .into_iter()
        .filter(|a| a["outcome"] == "dropped")
        .collect::<Vec<_>>();
    assert_eq!(dropped.len(), 3, "{dropped:#?}");
    assert!(
        dropped[0]["error"]
            .as_str()
            .unwrap()
            .contains("no longer configured"),
        "{dropped:#?}"
    );
    assert_eq!(pending(&h).await, 3, "subscriber 0's copies are back");
    h.advance(3_600.0).await;
    wait_url(&h, &moved.url, &format!("wamid={w}&status=read"), 1).await;
    h.drain().await;
    let want: Vec<(String, String)> = ["sent", "delivered", "read"]
        .iter()
        .map(|s| (w.clone(), s.to_string()))
        .collect();
    // Three deliveries retried at once: each arrives once, in whatever order.
    let mut got = moved.statuses();
    got.sort();
    let mut sorted = want.clone();
    sorted.sort();
    assert_eq!(got, sorted);
    assert_eq!(own.statuses(), want, "the own URL got each status once");
    assert!(sub1.statuses().is_empty());
    h.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The statuses each receiver got, counted, for a run with chaos.
async fn chaos_run(seed: u64) -> Vec<BTreeMap<(String, String), usize>> {
    let own = Receiver::start().await;
    let sub = Receiver::start().await;
    let mut cfg = roomy(&own.url, &[&sub.url]);
    cfg.seed = seed;
    cfg.webhooks.chaos.duplicate = 0.5;
    let h = Harness::start(cfg).await;
    sends(&h, 5).await;
    h.advance(30.0).await;
    h.drain().await;
    h.shutdown().await;
    vec![counts(own.statuses()), counts(sub.statuses())]
}

#[tokio::test]
async fn chaos_is_drawn_per_copy_and_stays_seeded() {
    let a = chaos_run(11).await;
    assert_eq!(a, chaos_run(11).await, "same seed, same duplicates");
    let total = |m: &BTreeMap<(String, String), usize>| m.values().sum::<usize>();
    for m in &a {
        assert_eq!(m.len(), 15, "every status reached every receiver");
        assert!(total(m) > 15, "some were duplicated");
    }
    assert_ne!(a[0], a[1], "each copy draws its own duplicates");
}

/// Waits until only `left` events (the failing subscribers' copies) are pending.
async fn drain_own_only(h: &Harness, left: u64) {
    loop {
        let (_, a) = h.control_get("/webhooks/attempts?limit=1").await;
        let last = a["attempts"]
            .as_array()
            .and_then(|l| l.last())
            .and_then(|a| a["seq"].as_u64())
            .unwrap_or(0);
        if pending(h).await == left {
            return;
        }
        h.wait(&format!("after_seq={last}"), 1).await;
    }
}
