//! Rate compliance: a burst of 2,000 messages leaves at the configured rate with zero 429s,
//! within 2 % of the theoretical minimum time. Alone in its binary, so no other test shares the
//! machine while it is timed.

mod common;
use common::*;
use mynah_gateway::ratelimit::NumberLimitConfig;
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_2000_goes_out_at_the_configured_rate_without_a_429() {
    const N: usize = 2_000;
    const RATE: u32 = 200;
    const BURST: u32 = 50;
    let mut sb = sandbox_config();
    sb.limits.messages_per_second = Some(RATE);
    // The platform tolerates a little more burst than the gateway uses: network jitter can
    // bunch sends that left evenly spaced.
    sb.limits.messages_burst = Some(2 * BURST);
    let mut gw = gateway_config();
    gw.gates.consent = false;
    gw.rate = Some(NumberLimitConfig {
        rate: f64::from(RATE),
        burst: BURST,
        ..NumberLimitConfig::default()
    });
    let p = Pair::start(sb, gw).await;
    // Everything is in the outbox before the first send: the burst starts at once.
    let start = p.gw.now() + 5_000;
    let ids = enqueue_many(&p, N, |i| {
        let mut b = template("hello_world", &format!("49151200{i:05}"));
        b["not_before"] = json!(start);
        b
    })
    .await;
    assert_eq!(ids.len(), N);
    // Watch one message (cheap), then read them all once.
    p.until_state(ids.last().unwrap(), "read").await;
    let accepted = until_count(&p, "read", N).await;
    let times: Vec<i64> = accepted
        .iter()
        .map(|m| m["accepted_at"].as_i64().unwrap())
        .collect();
    let first = *times.iter().min().unwrap();
    let last = *times.iter().max().unwrap();
    let took = (last - first) as f64 / 1_000.0;
    let minimum = (N as f64 - f64::from(BURST)) / f64::from(RATE);
    assert!(
        took >= minimum * 0.98 && took <= minimum * 1.02,
        "{N} messages took {took:.3} s; the limit allows {minimum:.3} s at best"
    );
    // Not one throttling answer: no message was ever throttled or retried.
    for m in &accepted {
        assert_eq!(m["attempts"], 1, "{m}");
    }
    let (_, sb_msgs) = p
        .control(
            Method::GET,
            "/messages?limit=10000&direction=outbound",
            &json!({}),
        )
        .await;
    assert_eq!(sb_msgs["messages"].as_array().unwrap().len(), N);
    p.shutdown().await;
}
