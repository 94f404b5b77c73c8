//! What a retained message costs in memory, counted by the allocator: a text message with its
//! whole lifecycle (accepted, sent, delivered, read) and its webhooks delivered must stay within
//! 1 KiB, so that a long retention cannot silently grow the sandbox.
//!
//! The global allocator here counts the bytes live. The figure is the growth between two runs of
//! different sizes in the same sandbox, divided by the difference in messages, so what is paid
//! once (the server, the connection pool, the users) cancels out. The attempt history is kept
//! minimal: it is bounded by its own settings (`webhooks.keep_attempts`, `keep_attempt_bytes`).

mod common;
use common::*;
mod counting;
use counting::{Counting, LIVE, forgetful_receiver};
use std::sync::atomic::Ordering;

#[global_allocator]
static ALLOC: Counting = Counting;

/// Sends `n` texts to 20 users, 250 at a time, letting each batch's lifecycle finish: both
/// rounds reach the same peak of work in flight (timers, webhook queues), so what grows between
/// them is what the retained messages hold.
async fn round(h: &Harness, from: usize, n: usize) {
    for chunk in (from..from + n).collect::<Vec<_>>().chunks(250) {
        for i in chunk {
            let to = format!("49151{:08}", i % 20);
            let (s, b) = h
                .send_360(text(&to, &format!("message number {i} of the memory test")))
                .await;
            assert_eq!(s, 200, "{b}");
        }
        h.advance(120.0).await;
        h.drain().await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_retained_message_with_its_timeline_costs_at_most_one_kib() {
    let url = forgetful_receiver().await;
    let mut cfg = config(&url);
    cfg.limits.profile = mynah_sandbox::config::LimitProfile::Unlimited;
    cfg.webhooks.keep_attempts = 1;
    cfg.retention.max_messages = 1_000_000;
    let h = Harness::start(cfg).await;

    round(&h, 0, 1_000).await;
    let before = LIVE.load(Ordering::Relaxed);
    round(&h, 1_000, 4_000).await;
    let after = LIVE.load(Ordering::Relaxed);
    let per_message = (after - before) / 4_000;
    println!("a retained message costs {per_message} bytes (live heap growth / messages)");
    let (_, m) = h.control_get("/messages?limit=1").await;
    println!("{m}");
    assert!(
        per_message <= 1_024,
        "a retained message costs {per_message} bytes, more than 1 KiB"
    );
    h.shutdown().await;
}
