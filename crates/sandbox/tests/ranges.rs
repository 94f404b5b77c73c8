//! Every number the sandbox takes is range-checked: the rules, fault rules, the clock, user
//! patches, quality forcing and the config file. An out-of-range value is a 400 naming the field
//! (or, in the config, a refusal to start naming the key); nothing panics, nothing wraps, and the
//! server goes on serving.

mod common;
use common::*;

use mynah_sandbox::Sandbox;
use mynah_sandbox::config::{Config, PairRate};
use reqwest::Method;
use serde_json::{Value, json};

const TO: &str = "+49 151 23456789";

/// Asserts a control API refusal: 400, code 4000, details naming `field`.
fn refused(status: u16, body: &Value, field: &str, what: &str) {
    assert_eq!(status, 400, "{what}: {body}");
    assert_eq!(body["error"]["code"], 4000, "{what}: {body}");
    let details = body["error"]["error_data"]["details"]
        .as_str()
        .unwrap_or_default();
    assert!(
        details.contains(field),
        "{what}: details should name {field:?}: {details}"
    );
}

#[tokio::test]
async fn rules_patches_out_of_range_are_refused_naming_the_field() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    let (_, before) = h.control_get("/rules").await;
    let cases: Vec<(Value, &str)> = vec![
        // governor's quota arithmetic overflows (and panics) on an interval this long.
        (
            json!({ "pair_rate": { "every_ms": i64::MAX, "burst": 45 } }),
            "pair_rate.every_ms",
        ),
        (
            json!({ "pair_rate": { "every_ms": 86_400_000, "burst": 10_000_000 } }),
            "pair_rate.every_ms × burst",
        ),
        (
            json!({ "pair_rate": { "every_ms": 1e308, "burst": 45 } }),
            "pair_rate.every_ms",
        ),
        (
            json!({ "pair_rate": { "every_ms": -1, "burst": 45 } }),
            "pair_rate.every_ms",
        ),
        (
            json!({ "pair_rate": { "every_ms": 6000, "burst": 0 } }),
            "pair_rate.burst",
        ),
        (
            json!({ "pair_rate": { "every_ms": 6000, "burst": 9_223_372_036_854_775_807u64 } }),
            "pair_rate.burst",
        ),
        (json!({ "holdout_percent": 101 }), "holdout_percent"),
        (json!({ "holdout_percent": -1 }), "holdout_percent"),
        (json!({ "holdout_percent": "NaN" }), "holdout_percent"),
        (json!({ "throughput_mps": 0 }), "throughput_mps"),
        (json!({ "throughput_mps": -1 }), "throughput_mps"),
        (
            json!({ "marketing_limit": { "count": 2, "window_ms": -5 } }),
            "marketing_limit.window_ms",
        ),
        (
            json!({ "messaging_limit": { "unique_users": 250, "window_ms": 0 } }),
            "messaging_limit.window_ms",
        ),
        (
            json!({ "messaging_limit": { "unique_users": 250, "code": 999 } }),
            "messaging_limit.code",
        ),
        (
            json!({ "quality": { "yellow_at": 2.0 } }),
            "quality.yellow_at",
        ),
        (
            json!({ "quality": { "window_ms": 9_223_372_036_854_775_807i64 } }),
            "quality.window_ms",
        ),
        (
            json!({ "quality": { "downgrade_after_ms": -1 } }),
            "quality.downgrade_after_ms",
        ),
        (
            json!({ "pacing": { "max_hold_ms": 1e300 } }),
            "pacing.max_hold_ms",
        ),
    ];
    for (patch, field) in cases {
        let (s, b) = h.control(Method::PATCH, "/rules", &patch).await;
        refused(s, &b, field, &patch.to_string());
    }
    let (_, after) = h.control_get("/rules").await;
    assert_eq!(before, after, "no refused patch changed the rules");

    // In range is fine, and the limiter built from it works.
    let (s, b) = h
        .control(
            Method::PATCH,
            "/rules",
            &json!({ "pair_rate": { "every_ms": 86_400_000, "burst": 1 } }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = h.send_360(text(TO, "one")).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = h.send_360(text(TO, "two")).await;
    assert_eq!(s, 429, "the pair rate of one a day: {b}");
    h.shutdown().await;
}

#[tokio::test]
async fn fault_rules_out_of_range_are_refused_naming_the_field() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({ "match": { "probability": 1.5 }, "action": { "code": 131000 } }),
            "match.probability",
        ),
        (
            json!({ "match": { "probability": -0.1 }, "action": { "code": 131000 } }),
            "match.probability",
        ),
        (
            json!({ "match": { "probability": "NaN" }, "action": { "code": 131000 } }),
            "match.probability",
        ),
        (
            json!({ "match": { "nth": 0 }, "action": { "code": 131000 } }),
            "match.nth",
        ),
        (
            json!({ "match": { "nth": -1 }, "action": { "code": 131000 } }),
            "match.nth",
        ),
        (
            json!({ "match": { "from_ms": -1 }, "action": { "code": 131000 } }),
            "match.from_ms",
        ),
        (
            json!({ "match": { "until_ms": 9_223_372_036_854_775_807i64 }, "action": { "code": 131000 } }),
            "match.until_ms",
        ),
        (
            json!({ "match": { "from_ms": 2000, "until_ms": 1000 }, "action": { "code": 131000 } }),
            "match.from_ms",
        ),
        (
            json!({ "action": { "latency_ms": 9_223_372_036_854_775_808u64 } }),
            "action.latency_ms",
        ),
        (
            json!({ "action": { "latency_ms": 1e308 } }),
            "action.latency_ms",
        ),
        (
            json!({ "action": { "answer_delay_ms": 3_600_001 } }),
            "action.answer_delay_ms",
        ),
        (
            json!({ "action": { "code": 131000, "http_status": 99 } }),
            "action.http_status",
        ),
        (json!({ "action": { "code": 131000 }, "times": 0 }), "times"),
        (
            json!({ "action": { "code": 131000 }, "times": -3 }),
            "times",
        ),
    ];
    for (rule, field) in cases {
        let (s, b) = h.control(Method::POST, "/faults", &rule).await;
        refused(s, &b, field, &rule.to_string());
    }
    let (_, list) = h.control_get("/faults").await;
    assert_eq!(list["faults"], json!([]), "nothing was added");
    let (s, b) = h
        .control(
            Method::POST,
            "/faults",
            &json!({ "match": { "probability": 1 }, "action": { "code": 131000 }, "times": 1 }),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let (s, _) = h.send_360(text(TO, "refused once")).await;
    assert_eq!(s, 500);
    let (s, b) = h.send_360(text(TO, "then fine")).await;
    assert_eq!(s, 200, "{b}");
    h.shutdown().await;
}

#[tokio::test]
async fn clock_advances_are_finite_non_negative_and_bounded() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    let (_, before) = h.control_get("/clock").await;
    let cases: Vec<(Value, &str)> = vec![
        (json!({ "seconds": -1 }), "seconds"),
        (json!({ "seconds": 1e308 }), "seconds"),
        (json!({ "seconds": -1e308 }), "seconds"),
        (json!({ "seconds": "NaN" }), "seconds"),
        (json!({ "seconds": 400_000_000 }), "seconds"),
        (json!({ "ms": -1 }), "ms"),
        (json!({ "ms": 9_223_372_036_854_775_808u64 }), "ms"),
        (json!({ "ms": 1e30 }), "ms"),
        (json!({ "ms": 400_000_000_000i64 }), "ms"),
        // Each within its bound, together over it.
        (
            json!({ "ms": 315_000_000_000i64, "seconds": 315_000_000 }),
            "ms + seconds",
        ),
    ];
    for (body, field) in cases {
        let (s, b) = h.control(Method::POST, "/clock/advance", &body).await;
        refused(s, &b, field, &body.to_string());
    }
    let (_, after) = h.control_get("/clock").await;
    assert_eq!(before["now_ms"], after["now_ms"], "the clock did not move");

    // Ten years at a time, the clock reaches its end (2200) and stops there with a clear error.
    let mut refused_at = None;
    for step in 0..30 {
        let (s, b) = h
            .control(
                Method::POST,
                "/clock/advance",
                &json!({ "seconds": 315_360_000 }),
            )
            .await;
        if s != 200 {
            refused(s, &b, "2200", "past the clock's end");
            refused_at = Some(step);
            break;
        }
    }
    assert!(refused_at.is_some(), "the clock has an end");
    let (_, now) = h.control_get("/clock").await;
    assert!(now["now_ms"].as_i64().unwrap() <= mynah_sandbox::bounds::MAX_TIME);
    let (s, b) = h.send_360(text(TO, "still here")).await;
    assert_eq!(s, 200, "{b}");
    h.shutdown().await;
}

#[tokio::test]
async fn user_patches_and_quality_forcing_are_range_checked() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    let user = "/users/4915112345678";
    let cases: Vec<(Value, &str)> = vec![
        // `now + s * 1000` overflowed before.
        (
            json!({ "offline_for_seconds": 4_611_686_018_427_387_904i64 }),
            "offline_for_seconds",
        ),
        (json!({ "offline_for_seconds": -5 }), "offline_for_seconds"),
        (
            json!({ "offline_for_seconds": 1e308 }),
            "offline_for_seconds",
        ),
        (json!({ "offline_until": -1 }), "offline_until"),
        (
            json!({ "offline_until": 9_223_372_036_854_775_807i64 }),
            "offline_until",
        ),
        (json!({ "reactions": { "block": -1 } }), "reactions.block"),
        (json!({ "reactions": { "read": 1e308 } }), "reactions.read"),
        (
            json!({ "reactions": { "reply": "NaN" } }),
            "reactions.reply",
        ),
    ];
    for (patch, field) in cases {
        let (s, b) = h.control(Method::PATCH, user, &patch).await;
        refused(s, &b, field, &patch.to_string());
    }
    let (s, b) = h
        .control(Method::PATCH, user, &json!({ "offline_for_seconds": 3600 }))
        .await;
    assert_eq!(s, 200, "{b}");

    let path = format!("/numbers/{PNID}/quality");
    for tier in [json!(0), json!(-1), json!(1e308), json!(2.5), json!("NaN")] {
        let (s, b) = h
            .control(Method::POST, &path, &json!({ "tier": tier }))
            .await;
        refused(s, &b, "tier", &tier.to_string());
    }
    let (s, b) = h
        .control(Method::POST, &path, &json!({ "tier": "TIER_2K" }))
        .await;
    assert_eq!(s, 200, "{b}");
    h.shutdown().await;
}

/// A config file with a number out of range does not start; the error names the key.
#[tokio::test]
async fn config_values_out_of_range_refuse_to_start() {
    let mut cfg = config("");
    cfg.rules.pair_rate = Some(PairRate {
        every_ms: i64::MAX,
        burst: 45,
    });
    let err = Sandbox::open(cfg).await.err().expect("refused");
    assert!(err.contains("rules.pair_rate.every_ms"), "{err}");

    for (toml, key) in [
        ("[clock]\nstart_ms = -1", "clock.start_ms"),
        ("[webhooks]\ntimeout_ms = 0", "webhooks.timeout_ms"),
        (
            "[webhooks]\nchaos = { duplicate = 1.5 }",
            "webhooks.chaos.duplicate",
        ),
        (
            "[latency]\nsent = { min_ms = 10, max_ms = 5 }",
            "latency.sent",
        ),
        (
            "[latency]\nread = { min_ms = 0, max_ms = 9223372036854775807 }",
            "latency.read.max_ms",
        ),
        ("[limits]\nthrottle_status = 200", "limits.throttle_status"),
        ("[limits]\nmessages_burst = 0", "limits.messages_burst"),
        ("[media]\nimage_max_bytes = 0", "media.image_max_bytes"),
        ("[rules]\nholdout_percent = nan", "rules.holdout_percent"),
        ("[rules.quality]\nred_at = inf", "rules.quality.red_at"),
        (
            "[users.default]\nreactions = { block = -0.5 }",
            "users.default.reactions.block",
        ),
        (
            "[[faults]]\nmatch = { probability = 2.0 }\naction = { code = 131000 }",
            "faults[0]: match.probability",
        ),
        (
            "[template_review]\nreview_delay_ms = -60000",
            "template_review.review_delay_ms",
        ),
    ] {
        let mut cfg = Config::from_toml(toml).unwrap_or_else(|e| panic!("{toml}: {e}"));
        cfg.clock.mode = mynah_sandbox::config::ClockMode::Manual;
        let err = Sandbox::open(cfg)
            .await
            .err()
            .unwrap_or_else(|| panic!("{toml} started"));
        assert!(err.contains(key), "{toml}: {err}");
        assert!(err.starts_with("invalid configuration"), "{err}");
    }
}
