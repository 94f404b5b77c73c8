//! What a virtual user costs in memory, awake and asleep (idle past every window, kept compact:
//! `retention.idle_user_ms`), counted by the allocator: an idle user must cost at most 512 bytes
//! (about 450 now, against 2.7 KB awake), so that millions of users who were written to once
//! cannot grow the sandbox without bound.
//!
//! The figure is the live heap with the users minus the live heap before them, in the same
//! sandbox, divided by their number; messages are not retained (`retention.max_messages` = 1) and
//! webhooks are drained before each reading, so what remains is the users.

mod common;
use common::*;
mod counting;
use counting::{Counting, LIVE, forgetful_receiver};
use std::sync::atomic::Ordering;

#[global_allocator]
static ALLOC: Counting = Counting;

/// Sends `n` texts to one user who was there before, to sweep (each send looks at a few users).
/// 100 at a time, as [`greet`].
async fn sweep(h: &Harness, n: usize) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
        for _ in chunk {
            let (s, b) = h.send_360(text("4915199999999", "sweep")).await;
            assert_eq!(s, 200, "{b}");
        }
        h.advance(120.0).await;
        h.drain().await;
    }
}

/// Writes once to `n` new users from `from` on, 100 at a time, each hundred's lifecycle and
/// webhooks finished before the next: the work in flight peaks as in every round.
async fn greet(h: &Harness, from: usize, n: usize) {
    for chunk in (from..from + n).collect::<Vec<_>>().chunks(100) {
        for i in chunk {
            let (s, b) = h.send_360(text(&format!("49151{i:08}"), "hello")).await;
            assert_eq!(s, 200, "{b}");
        }
        h.advance(120.0).await;
        h.drain().await;
    }
}

/// Lets every lifecycle finish, then sends once more: the retained messages are down to that
/// one (eviction runs with each send), whatever came before, so readings compare users only.
async fn settle(h: &Harness) -> isize {
    h.advance(120.0).await;
    h.drain().await;
    let (s, b) = h.send_360(text("4915199999999", "settle")).await;
    assert_eq!(s, 200, "{b}");
    LIVE.load(Ordering::Relaxed)
}

#[tokio::test(flavor = "current_thread")]
async fn an_idle_user_costs_a_few_hundred_bytes() {
    const FIRST: usize = 500;
    const USERS: usize = 2_000;
    let url = forgetful_receiver().await;
    let mut cfg = config(&url);
    cfg.limits.profile = mynah_sandbox::config::LimitProfile::Unlimited;
    cfg.webhooks.keep_attempts = 1;
    cfg.retention.max_messages = 1;
    let h = Harness::start(cfg).await;
    sweep(&h, 100).await;
    let base = settle(&h).await;
    greet(&h, 0, FIRST).await;
    let first = settle(&h).await;
    greet(&h, FIRST, USERS).await;
    let awake = (settle(&h).await - first) / USERS as isize;
    h.advance(2.0 * 86_400.0).await;
    // Each send looks at a few users; the whole map is swept a few times over.
    for _ in 0..4 {
        sweep(&h, 100 + (FIRST + USERS) / 4).await;
    }
    let (_, health) = h.control_get("/health").await;
    assert_eq!(health["users"]["asleep"], FIRST + USERS, "{health}");
    let asleep = (settle(&h).await - base) / (FIRST + USERS) as isize;
    println!("a user costs {awake} bytes awake, {asleep} bytes asleep");
    assert!(
        asleep <= 512,
        "an idle user costs {asleep} bytes asleep (awake: {awake})"
    );
    h.shutdown().await;
}
