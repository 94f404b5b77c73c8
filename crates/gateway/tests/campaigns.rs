//! Campaigns end to end through a real sandbox: the audience checked row by row (skipped with
//! reasons and counts), every eligible recipient gets exactly one message through the normal
//! outbox, a recipient by BSUID, pause/resume/cancel, a CSV audience.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

async fn bsuid(p: &Pair, wa_id: &str) -> String {
    let (s, u) = p
        .control(Method::PATCH, &format!("/users/{wa_id}"), &json!({}))
        .await;
    assert_eq!(s, 200, "{u}");
    u["user_ids"]["default"].as_str().unwrap().to_string()
}

/// Polls a campaign until `pred` holds (bounded: 40 s).
async fn until_campaign(p: &Pair, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    let mut last = Value::Null;
    while std::time::Instant::now() < deadline {
        let (s, c) = p.get(&format!("/v1/campaigns/{id}")).await;
        assert_eq!(s, 200, "{c}");
        if pred(&c) {
            return c;
        }
        last = c;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("campaign {id} never reached {what} within 40 s: {last:#}");
}

fn order_update(audience: Value) -> Value {
    json!({
        "name": "spring orders",
        "template": { "name": "order_update", "language": "en_US", "components": [
            { "type": "body", "parameters": [
                { "type": "text", "text": "{{first_name}}" },
                { "type": "text", "text": "{{amount}}" },
                { "type": "text", "text": "tomorrow" } ] } ] },
        "audience": audience,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audience_is_checked_and_every_eligible_recipient_gets_one_message() {
    let p = Pair::start(sandbox_config(), gateway_config()).await;
    let (ana, ben, cleo, dora, eve) = (
        "4915170000001",
        "4915170000002",
        "4915170000003",
        "4915170000004",
        "4915170000005",
    );
    for who in [ana, ben, cleo, dora] {
        p.opt_in(who, "utility").await;
    }
    let (s, b) = p
        .put(
            &format!("/v1/contacts/{ben}/consents/utility"),
            &json!({ "status": "opted_out", "source": "test" }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    // Dora is addressed by her BSUID; her consent was recorded under her phone, which the
    // gateway learns goes with the BSUID once a webhook names both.
    let dora_id = bsuid(&p, dora).await;
    let (s, b) = p
        .put(
            &format!("/v1/contacts/{dora_id}/consents/utility"),
            &json!({ "status": "opted_in", "source": "test" }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let audience = json!([
        { "to": ana, "first_name": "Ana", "amount": "$10" },
        { "to": format!("+{ana}"), "first_name": "Ana again", "amount": "$10" },
        { "to": ben, "first_name": "Ben", "amount": "$20" },
        { "to": cleo, "amount": "$30" },
        { "recipient": dora_id, "first_name": "Dora", "amount": "$40" },
        { "to": eve, "first_name": "Eve", "amount": "$50" },
        { "to": "12ab", "first_name": "Nobody", "amount": "$0" },
    ]);
    let (s, c) = p.post("/v1/campaigns", &order_update(audience)).await;
    assert_eq!(s, 201, "{c}");
    let id = c["id"].as_str().unwrap().to_string();
    assert_eq!(c["state"], "draft");
    let counts = &c["counts"];
    assert_eq!(counts["audience"], 7, "{c:#}");
    assert_eq!(counts["pending"], 2, "{c:#}");
    assert_eq!(counts["skipped"], 5, "{c:#}");
    let reasons = &counts["skipped_by_reason"];
    for reason in [
        "duplicate",
        "opted_out",
        "missing_column",
        "no_consent",
        "invalid_number",
    ] {
        assert_eq!(reasons[reason], 1, "{reason}: {c:#}");
    }
    // The skipped rows as CSV, each with its reason.
    let csv = p
        .http
        .get(format!(
            "{}/v1/campaigns/{id}/recipients.csv?state=skipped",
            p.gw_base
        ))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(csv.lines().count(), 6, "{csv}");
    assert!(
        csv.contains("missing_column") && csv.contains("first_name"),
        "{csv}"
    );

    // A marketing campaign skips the US number.
    let us = "12125550100";
    p.opt_in(us, "marketing").await;
    p.opt_in(eve, "marketing").await;
    let (s, m) = p
        .post(
            "/v1/campaigns",
            &json!({ "name": "sale", "template": { "name": "spring_sale", "language": "en_US" },
                     "audience": [ { "to": us }, { "to": eve } ] }),
        )
        .await;
    assert_eq!(s, 201, "{m}");
    assert_eq!(m["category"], "marketing");
    assert_eq!(m["counts"]["skipped_by_reason"]["us_marketing"], 1, "{m:#}");
    assert_eq!(m["counts"]["pending"], 1, "{m:#}");

    let (s, b) = p
        .post(&format!("/v1/campaigns/{id}/start"), &json!({}))
        .await;
    assert_eq!(s, 200, "{b}");
    let done = until_campaign(&p, &id, "finished and delivered", |c| {
        c["state"] == "finished"
            && c["counts"]["delivered"].as_i64().unwrap_or(0)
                + c["counts"]["read"].as_i64().unwrap_or(0)
                == 2
    })
    .await;
    assert_eq!(done["counts"]["released"], 2, "{done:#}");
    assert!(done["finished_at"].is_i64());
    // Exactly one message each, through the outbox, carrying the campaign.
    let (_, list) = p.get(&format!("/v1/messages?to={ana}")).await;
    let msgs = list["messages"]
        .as_array()
        .or(list["data"].as_array())
        .cloned()
        .unwrap_or_default();
    assert_eq!(msgs.len(), 1, "{list:#}");
    assert_eq!(msgs[0]["metadata"]["campaign"], id.as_str());
    assert_eq!(msgs[0]["lane"], "bulk");
    let (_, r) = p
        .get(&format!("/v1/campaigns/{id}/recipients?state=released"))
        .await;
    assert_eq!(r["recipients"].as_array().unwrap().len(), 2, "{r:#}");
    let (_, r) = p.get(&format!("/v1/campaigns/{id}/recipients")).await;
    let rows = r["recipients"].as_array().unwrap();
    let by_bsuid = rows
        .iter()
        .find(|x| x["recipient"] == dora_id.as_str())
        .unwrap();
    let mid = by_bsuid["message_id"].as_str().unwrap();
    let m = p
        .until(mid, "delivered", |m| {
            m["state"] == "delivered" || m["state"] == "read"
        })
        .await;
    assert!(m["person"].is_string(), "{m:#}");
    // A finished campaign cannot be started again.
    let (s, b) = p
        .post(&format!("/v1/campaigns/{id}/start"), &json!({}))
        .await;
    assert_eq!(s, 409, "{b}");
    assert_eq!(b["error"]["code"], "campaign_state");
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_stops_the_release_resume_continues_and_cancel_cancels_what_is_unsent() {
    let mut cfg = gateway_config();
    cfg.gates.consent = false;
    // One message a second for the campaign: slow enough to pause in the middle.
    cfg.rate = Some(mynah_gateway::ratelimit::NumberLimitConfig {
        rate: 2.0,
        burst: 1,
        min_rate: 1.0,
        ..cfg.rate()
    });
    let p = Pair::start(sandbox_config(), cfg).await;
    let audience: Vec<Value> = (0..40)
        .map(|i| json!({ "to": format!("49151710{i:05}") }))
        .collect();
    let (s, c) = p
        .post(
            "/v1/campaigns",
            &json!({ "name": "slow", "template": { "name": "hello_world", "language": "en_US" },
                     "rate_share": 0.5, "audience": audience }),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    let id = c["id"].as_str().unwrap().to_string();
    assert_eq!(c["counts"]["pending"], 40, "{c:#}");
    let (s, b) = p
        .post(&format!("/v1/campaigns/{id}/start"), &json!({}))
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["state"], "running");
    until_campaign(&p, &id, "some released", |c| {
        c["counts"]["released"].as_i64().unwrap_or(0) >= 1
    })
    .await;
    let (s, paused) = p
        .post(&format!("/v1/campaigns/{id}/pause"), &json!({}))
        .await;
    assert_eq!(s, 200, "{paused}");
    assert_eq!(paused["state"], "paused");
    let released = paused["counts"]["released"].as_i64().unwrap();
    // Paused: nothing more is released (the runner looks every 200 ms).
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (_, c) = p.get(&format!("/v1/campaigns/{id}")).await;
        assert_eq!(c["counts"]["released"], released, "{c:#}");
        assert_eq!(
            c["counts"]["queued"].as_i64().unwrap() - c["counts"]["parked"].as_i64().unwrap(),
            0,
            "queued messages are held: {c:#}"
        );
    }
    let (s, b) = p
        .post(&format!("/v1/campaigns/{id}/resume"), &json!({}))
        .await;
    assert_eq!(s, 200, "{b}");
    until_campaign(&p, &id, "more released", |c| {
        c["counts"]["released"].as_i64().unwrap_or(0) > released
    })
    .await;
    let (s, cancelled) = p
        .post(&format!("/v1/campaigns/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(s, 200, "{cancelled}");
    assert_eq!(cancelled["state"], "cancelled");
    assert!(
        cancelled["counts"]["cancelled"].as_i64().unwrap() > 0,
        "{cancelled:#}"
    );
    assert_eq!(cancelled["counts"]["pending"], 0);
    // Never sent later: what was handed over settles, nothing else moves.
    let settled = until_campaign(&p, &id, "settled", |c| {
        c["counts"]["queued"] == 0 && c["counts"]["accepted"] == 0 && c["counts"]["sent"] == 0
    })
    .await;
    let handed = settled["counts"]["delivered"].as_i64().unwrap()
        + settled["counts"]["read"].as_i64().unwrap();
    assert!(handed < 40, "{settled:#}");
    assert_eq!(
        handed + settled["counts"]["cancelled"].as_i64().unwrap(),
        40,
        "{settled:#}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, after) = p.get(&format!("/v1/campaigns/{id}")).await;
    // (a delivered message may still be read: compare what was handed over, not its state)
    for k in [
        "released",
        "cancelled",
        "pending",
        "queued",
        "accepted",
        "sent",
    ] {
        assert_eq!(
            after["counts"][k], settled["counts"][k],
            "nothing sent after cancel: {after:#}"
        );
    }
    let handed_after =
        after["counts"]["delivered"].as_i64().unwrap() + after["counts"]["read"].as_i64().unwrap();
    assert_eq!(handed_after, handed, "{after:#}");
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_audience_is_streamed_in_with_per_row_errors() {
    let mut cfg = gateway_config();
    cfg.gates.consent = false;
    cfg.campaigns.batch = 3;
    let p = Pair::start(sandbox_config(), cfg).await;
    let (s, c) = p
        .post(
            "/v1/campaigns",
            &json!({ "name": "csv", "template": { "name": "hello_world", "language": "en_US" } }),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    let id = c["id"].as_str().unwrap().to_string();
    let mut csv = String::from("phone,first_name\n");
    for i in 0..10 {
        csv.push_str(&format!("49151720{i:05},N{i}\n"));
    }
    csv.push_str("4915172000000,dup\n");
    csv.push_str("4915172999999,too,many\n");
    csv.push_str("not a number,x\n");
    let r = p
        .http
        .post(format!("{}/v1/campaigns/{id}/audience", p.gw_base))
        .bearer_auth(KEY)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["counts"]["pending"], 10, "{v:#}");
    let reasons = &v["counts"]["skipped_by_reason"];
    assert_eq!(reasons["duplicate"], 1, "{v:#}");
    assert_eq!(reasons["bad_row"], 1, "{v:#}");
    assert_eq!(reasons["invalid_number"], 1, "{v:#}");
    p.shutdown().await;
}

/// The sandbox's id of a template.
async fn template_id(p: &Pair, name: &str) -> String {
    let (s, b) = p.control(Method::GET, "/templates", &json!({})).await;
    assert_eq!(s, 200, "{b}");
    let list = b["templates"]
        .as_array()
        .or(b["data"].as_array())
        .or(b.as_array())
        .cloned()
        .unwrap();
    list.iter()
        .find(|t| t["def"]["name"] == name || t["name"] == name)
        .and_then(|t| t["id"].as_str())
        .unwrap_or_else(|| panic!("no template {name}: {b:#}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pacing_holds_the_release_a_drop_pauses_the_campaign_and_it_resumes_when_active() {
    let mut sb = sandbox_config();
    // A new marketing template: the first two go, later ones are held until a verdict.
    sb.rules.pacing = Some(mynah_sandbox::config::PacingConfig {
        threshold: 2,
        verdict: mynah_sandbox::config::PacingVerdict::Wait,
        ..Default::default()
    });
    let mut cfg = gateway_config();
    cfg.gates.consent = false;
    cfg.rate = Some(mynah_gateway::ratelimit::NumberLimitConfig {
        rate: 8.0,
        burst: 1,
        min_rate: 1.0,
        ..cfg.rate()
    });
    let p = Pair::start(sb, cfg).await;
    let audience: Vec<Value> = (0..8)
        .map(|i| json!({ "to": format!("49151730{i:05}") }))
        .collect();
    let (s, c) = p
        .post(
            "/v1/campaigns",
            &json!({ "name": "paced", "template": { "name": "spring_sale", "language": "en_US" },
                     "rate_share": 0.25, "audience": audience }),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    let id = c["id"].as_str().unwrap().to_string();
    // Not GREEN: paced.
    let tid = template_id(&p, "spring_sale").await;
    let (s, b) = p
        .control(
            Method::POST,
            &format!("/templates/{tid}/quality"),
            &json!({ "score": "YELLOW" }),
        )
        .await;
    assert!(s == 200 || s == 202, "{s} {b}");
    let (s, b) = p
        .post(&format!("/v1/campaigns/{id}/start"), &json!({}))
        .await;
    assert_eq!(s, 200, "{b}");
    // The platform holds the third: the campaign stops releasing.
    let held = until_campaign(&p, &id, "a message held", |c| {
        c["counts"]["held"].as_i64().unwrap_or(0) >= 1
    })
    .await;
    let released = held["counts"]["released"].as_i64().unwrap();
    assert!(released < 8, "{held:#}");
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let (_, c) = p.get(&format!("/v1/campaigns/{id}")).await;
        assert_eq!(c["counts"]["released"], released, "held: no release: {c:#}");
    }
    // The drop verdict: the template pauses (the held fail with 132015, and the gateway parks
    // them until the template is active again), and so does the campaign.
    let (s, b) = p
        .control(
            Method::POST,
            &format!("/templates/{tid}/pacing"),
            &json!({ "verdict": "drop" }),
        )
        .await;
    assert!(s == 200 || s == 202, "{s} {b}");
    let paused = until_campaign(&p, &id, "paused for its template", |c| {
        c["state"] == "paused" && c["counts"]["parked"].as_i64().unwrap_or(0) >= 1
    })
    .await;
    let reason = paused["reason"].as_str().unwrap();
    assert!(reason.contains("spring_sale"), "{paused:#}");
    let released = paused["counts"]["released"].as_i64().unwrap();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let (_, c) = p.get(&format!("/v1/campaigns/{id}")).await;
        assert_eq!(c["counts"]["released"], released, "paused: {c:#}");
        assert_eq!(c["state"], "paused");
    }
    // Active again: the campaign resumes by itself and finishes.
    let (s, b) = p
        .control(
            Method::POST,
            &format!("/templates/{tid}/status"),
            &json!({ "status": "APPROVED" }),
        )
        .await;
    assert!(s == 200 || s == 202, "{s} {b}");
    until_campaign(&p, &id, "resumed", |c| c["state"] == "running").await;
    // The resumed template is paced again: a release verdict lets the held go (GREEN).
    until_campaign(&p, &id, "held again", |c| {
        c["counts"]["held"].as_i64().unwrap_or(0) >= 1
            || c["counts"]["pending"].as_i64().unwrap_or(0) == 0
    })
    .await;
    let (s, b) = p
        .control(
            Method::POST,
            &format!("/templates/{tid}/pacing"),
            &json!({ "verdict": "release" }),
        )
        .await;
    assert!(s == 200 || s == 202 || s == 409, "{s} {b}");
    let done = until_campaign(&p, &id, "finished", |c| c["state"] == "finished").await;
    assert_eq!(done["counts"]["pending"], 0, "{done:#}");
    assert_eq!(done["counts"]["released"], 8, "{done:#}");
    let done = until_campaign(&p, &id, "all delivered", |c| {
        c["counts"]["delivered"].as_i64().unwrap_or(0) + c["counts"]["read"].as_i64().unwrap_or(0)
            == 8
    })
    .await;
    assert_eq!(done["counts"]["failed"], 0, "{done:#}");
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recipient_another_campaign_contacted_within_the_cap_is_skipped() {
    let mut cfg = gateway_config();
    cfg.gates.consent = false;
    let p = Pair::start(sandbox_config(), cfg).await;
    let (x, y) = ("4915174000001", "4915174000002");
    let hello = |name: &str, audience: Value| {
        json!({ "name": name, "template": { "name": "hello_world", "language": "en_US" },
                "frequency_cap_seconds": 3600, "audience": audience })
    };
    let (s, a) = p
        .post("/v1/campaigns", &hello("first", json!([{ "to": x }])))
        .await;
    assert_eq!(s, 201, "{a}");
    let a = a["id"].as_str().unwrap().to_string();
    let (s, b) = p
        .post(&format!("/v1/campaigns/{a}/start"), &json!({}))
        .await;
    assert_eq!(s, 200, "{b}");
    until_campaign(&p, &a, "finished", |c| c["state"] == "finished").await;
    let (s, c) = p
        .post(
            "/v1/campaigns",
            &hello("second", json!([{ "to": x }, { "to": y }])),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    assert_eq!(
        c["counts"]["skipped_by_reason"]["frequency_cap"], 1,
        "{c:#}"
    );
    assert_eq!(c["counts"]["pending"], 1, "{c:#}");
    p.shutdown().await;
}

/// The recipients' rows of a campaign, by recipient.
async fn rows_by_recipient(p: &Pair, id: &str) -> std::collections::HashMap<String, Value> {
    let (s, r) = p.get(&format!("/v1/campaigns/{id}/recipients")).await;
    assert_eq!(s, 200, "{r}");
    r["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["recipient"].as_str().unwrap().to_string(), x.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_132015_answer_pauses_the_campaign_at_once_and_a_sync_resumes_it() {
    let mut cfg = gateway_config();
    cfg.gates.consent = false;
    cfg.rate = Some(mynah_gateway::ratelimit::NumberLimitConfig {
        rate: 8.0,
        burst: 1,
        min_rate: 1.0,
        ..cfg.rate()
    });
    let p = Pair::start(sandbox_config(), cfg).await;
    // The platform answers the third send of the template with 132015 (no webhook says so).
    let (s, b) = p
        .control(
            Method::POST,
            "/faults",
            &json!({ "match": { "template": "hello_world", "nth": 3 }, "action": { "code": 132015 } }),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let audience: Vec<Value> = (0..8)
        .map(|i| json!({ "to": format!("49151750{i:05}") }))
        .collect();
    let (s, c) = p
        .post(
            "/v1/campaigns",
            &json!({ "name": "answered", "template": { "name": "hello_world", "language": "en_US" },
                     "rate_share": 0.25, "audience": audience }),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    let id = c["id"].as_str().unwrap().to_string();
    let (s, b) = p
        .post(&format!("/v1/campaigns/{id}/start"), &json!({}))
        .await;
    assert_eq!(s, 200, "{b}");
    let paused = until_campaign(&p, &id, "paused on the answer", |c| c["state"] == "paused").await;
    let reason = paused["reason"].as_str().unwrap();
    assert!(
        reason.contains("hello_world") && reason.contains("132015"),
        "{paused:#}"
    );
    let released = paused["counts"]["released"].as_i64().unwrap();
    assert!(released < 8, "{paused:#}");
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let (_, c) = p.get(&format!("/v1/campaigns/{id}")).await;
        assert_eq!(c["counts"]["released"], released, "paused: {c:#}");
        assert_eq!(c["state"], "paused");
    }
    // The template cache learns from the platform that it is approved: resumed, finished, and
    // the answered message went too (parked, then sent).
    let (s, b) = p.post("/v1/templates/sync", &json!({})).await;
    assert_eq!(s, 200, "{b}");
    let done = until_campaign(&p, &id, "all delivered", |c| {
        c["state"] == "finished"
            && c["counts"]["delivered"].as_i64().unwrap_or(0)
                + c["counts"]["read"].as_i64().unwrap_or(0)
                == 8
    })
    .await;
    assert_eq!(done["counts"]["failed"], 0, "{done:#}");
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_out_recipients_are_not_retried_and_131049_is_retried_on_schedule_until_end_by() {
    use mynah_gateway::clock::{Clock, HOUR};
    use std::sync::Arc;
    let mut sb = sandbox_config();
    sb.rules.holdout = true;
    let t0 = Clock::System.now();
    let clock = Arc::new(Clock::manual(t0));
    let mut cfg = gateway_config();
    cfg.gates.consent = false;
    let p = Pair::start_with_clock(sb, cfg, clock.clone()).await;
    let (limited, held_out, fine) = ("99900000131049", "99900000130472", "4915176000001");
    let (s, c) = p
        .post(
            "/v1/campaigns",
            &json!({ "name": "limits", "template": { "name": "spring_sale", "language": "en_US" },
                     "ttl_seconds": 172_800, "schedule": { "end_by": t0 + 30 * HOUR },
                     "audience": [ { "to": limited }, { "to": held_out }, { "to": fine } ] }),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    let id = c["id"].as_str().unwrap().to_string();
    let (s, b) = p
        .post(&format!("/v1/campaigns/{id}/start"), &json!({}))
        .await;
    assert_eq!(s, 200, "{b}");
    let c = until_campaign(&p, &id, "first round settled", |c| {
        c["counts"]["failed_by_code"]["130472"] == 1
            && c["counts"]["delivered"].as_i64().unwrap_or(0)
                + c["counts"]["read"].as_i64().unwrap_or(0)
                == 1
            && c["counts"]["queued"] == 1
    })
    .await;
    assert_eq!(
        c["state"], "running",
        "the 131049 retry is outstanding: {c:#}"
    );
    let rows = rows_by_recipient(&p, &id).await;
    let limited_id = rows[limited]["message_id"].as_str().unwrap().to_string();
    let held_id = rows[held_out]["message_id"].as_str().unwrap().to_string();
    let m = p
        .until(&limited_id, "backed off", |m| {
            event_types(m).contains(&"marketing_backoff".to_string())
        })
        .await;
    let backoff = m["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "marketing_backoff")
        .cloned()
        .unwrap();
    assert_eq!(backoff["detail"]["retry_at"], t0 + 12 * HOUR, "{m:#}");
    // Eleven hours on: nothing is due.
    clock.advance(11 * HOUR);
    p.gw.wake_dispatch.notify_one();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, m) = p.get(&format!("/v1/messages/{limited_id}")).await;
    assert_eq!(
        (m["state"].as_str(), m["attempts"].as_i64()),
        (Some("queued"), Some(1)),
        "{m:#}"
    );
    // Twelve: the second try, refused again; the next (24 h later) would pass end_by: failed.
    clock.advance(HOUR);
    p.gw.wake_dispatch.notify_one();
    let m = p
        .until(&limited_id, "failed after its second try", |m| {
            m["state"] == "failed" && m["attempts"] == 2
        })
        .await;
    assert_eq!(m["last_error"]["code"], 131049, "{m:#}");
    // The held-out recipient was tried once and never again, however long the campaign runs.
    clock.advance(12 * HOUR);
    p.gw.wake_dispatch.notify_one();
    let done = until_campaign(&p, &id, "finished", |c| c["state"] == "finished").await;
    let (_, h) = p.get(&format!("/v1/messages/{held_id}")).await;
    assert_eq!(
        (h["state"].as_str(), h["attempts"].as_i64()),
        (Some("failed"), Some(1)),
        "{h:#}"
    );
    assert_eq!(done["counts"]["failed_by_code"]["131049"], 1, "{done:#}");
    assert_eq!(done["counts"]["failed_by_code"]["130472"], 1, "{done:#}");
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_hours_hold_a_message_until_morning_in_the_recipients_zone() {
    use mynah_gateway::clock::Clock;
    use std::sync::Arc;
    // 2026-12-03 21:30 UTC: 22:30 in Berlin, 16:30 in New York, 03:00 in Delhi, 06:30 in Tokyo.
    let t0 = 1_796_333_400_000;
    let clock = Arc::new(Clock::manual(t0));
    let mut cfg = gateway_config();
    cfg.gates.consent = false;
    cfg.campaigns.quiet_hours = Some("21:00-08:00".parse().unwrap());
    let p = Pair::start_with_clock(sandbox_config(), cfg, clock.clone()).await;
    let (berlin, new_york, delhi, tokyo) = (
        "4915177000001",
        "12125550101",
        "919812345678",
        "4915177000002",
    );
    let (s, c) = p
        .post(
            "/v1/campaigns",
            &json!({ "name": "night", "template": { "name": "hello_world", "language": "en_US" },
                     "audience": [ { "to": berlin }, { "to": new_york }, { "to": delhi },
                                   { "to": tokyo, "time_zone": "Asia/Tokyo" } ] }),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    let id = c["id"].as_str().unwrap().to_string();
    let (s, b) = p
        .post(&format!("/v1/campaigns/{id}/start"), &json!({}))
        .await;
    assert_eq!(s, 200, "{b}");
    let handed = |c: &Value| {
        c["counts"]["delivered"].as_i64().unwrap_or(0) + c["counts"]["read"].as_i64().unwrap_or(0)
    };
    // New York's afternoon: at once; the others wait for their morning.
    let c = until_campaign(&p, &id, "New York delivered, three deferred", |c| {
        handed(c) == 1 && c["counts"]["deferred"] == 3
    })
    .await;
    assert_eq!(c["counts"]["released"], 4, "{c:#}");
    let rows = rows_by_recipient(&p, &id).await;
    let not_before = |who: &str| {
        let id = rows[who]["message_id"].as_str().unwrap().to_string();
        let p = &p;
        async move {
            let (_, m) = p.get(&format!("/v1/messages/{id}")).await;
            (
                m["state"].as_str().unwrap().to_string(),
                m["not_before"].as_i64().unwrap(),
            )
        }
    };
    let (state, at) = not_before(berlin).await;
    assert_eq!(
        (state.as_str(), at),
        ("queued", 1_796_367_600_000),
        "08:00 CET is 07:00 UTC"
    );
    let (_, at) = not_before(delhi).await;
    assert_eq!(at, 1_796_351_400_000, "08:00 IST is 02:30 UTC");
    let (_, at) = not_before(tokyo).await;
    assert_eq!(at, 1_796_338_800_000, "08:00 JST is 23:00 UTC");
    // Each morning comes in turn.
    for (until, n) in [
        (1_796_338_800_000, 2),
        (1_796_351_400_000, 3),
        (1_796_367_600_000, 4),
    ] {
        clock.set(until - 1);
        p.gw.wake_dispatch.notify_one();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (_, c) = p.get(&format!("/v1/campaigns/{id}")).await;
        assert_eq!(handed(&c), n - 1, "not before its morning: {c:#}");
        clock.set(until);
        p.gw.wake_dispatch.notify_one();
        until_campaign(&p, &id, "the next morning's message delivered", |c| {
            handed(c) == n
        })
        .await;
    }
    let done = until_campaign(&p, &id, "finished", |c| c["state"] == "finished").await;
    assert_eq!(done["counts"]["deferred"], 0, "{done:#}");
    p.shutdown().await;
}

/// Reads server-sent events from `path` until one of type `last` (bounded: 20 s).
async fn sse_until(p: &Pair, path: &str, last: &str) -> Vec<(String, Value)> {
    let mut r = p
        .http
        .get(format!("{}{path}", p.gw_base))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut buf = String::new();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                let event = block.lines().find_map(|l| l.strip_prefix("event: "));
                let data = block.lines().find_map(|l| l.strip_prefix("data: "));
                if let (Some(e), Some(d)) = (event, data) {
                    out.push((e.to_string(), serde_json::from_str::<Value>(d).unwrap()));
                    if e == last {
                        return;
                    }
                }
            }
            let chunk = r.chunk().await.unwrap().expect("the stream ended");
            buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {last} event within 20 s: {out:?}"));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_and_state_changes_reach_the_event_stream_and_app_webhooks() {
    use axum::{Router, body::Bytes, extract::State, routing::post};
    use std::sync::{Arc, Mutex};
    // An app webhook endpoint that wants campaign events only.
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let app = Router::new()
        .route(
            "/hook",
            post(
                |State(got): State<Arc<Mutex<Vec<Value>>>>, body: Bytes| async move {
                    got.lock()
                        .unwrap()
                        .push(serde_json::from_slice(&body).unwrap());
                    "ok"
                },
            ),
        )
        .with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut cfg = gateway_config();
    cfg.gates.consent = false;
    cfg.campaigns.progress_ms = 50;
    cfg.app_webhooks = vec![mynah_gateway::config::AppWebhook {
        url: hook,
        secret: "s".into(),
        events: vec!["campaign.*".into()],
    }];
    let p = Pair::start(sandbox_config(), cfg).await;
    let audience: Vec<Value> = (0..6)
        .map(|i| json!({ "to": format!("49151780{i:05}") }))
        .collect();
    let (s, c) = p
        .post(
            "/v1/campaigns",
            &json!({ "name": "watched", "template": { "name": "hello_world", "language": "en_US" },
                     "audience": audience }),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    let id = c["id"].as_str().unwrap().to_string();
    let (s, b) = p
        .post(&format!("/v1/campaigns/{id}/start"), &json!({}))
        .await;
    assert_eq!(s, 200, "{b}");
    // The campaign's events in the one timeline, the campaign as their subject.
    let events = sse_until(&p, "/v1/events?types=campaign.*", "campaign.finished").await;
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"campaign.running"), "{kinds:?}");
    assert!(kinds.contains(&"campaign.progress"), "{kinds:?}");
    for (kind, data) in &events {
        assert_eq!(data["campaign_id"], id.as_str(), "{kind}: {data}");
        assert_eq!(data["type"], kind.as_str());
        assert!(data["message_id"].is_null(), "{data}");
    }
    let (_, finished) = events.last().unwrap();
    assert_eq!(finished["state"], "finished", "{finished}");
    assert_eq!(finished["detail"]["counts"]["released"], 6, "{finished}");
    let progress: Vec<i64> = events
        .iter()
        .filter(|(k, _)| k == "campaign.progress")
        .map(|(_, d)| d["detail"]["counts"]["released"].as_i64().unwrap())
        .collect();
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "{progress:?}");
    // The same events reach the app webhook, in order; no message event (filtered out).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let hooks = got.lock().unwrap().clone();
        if hooks.iter().any(|h| h["type"] == "campaign.finished") {
            let types: Vec<&str> = hooks.iter().map(|h| h["type"].as_str().unwrap()).collect();
            assert_eq!(types, kinds, "{hooks:#?}");
            assert!(
                hooks
                    .iter()
                    .all(|h| h["data"]["campaign_id"] == id.as_str())
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{hooks:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Pause, resume and cancel of another campaign are events too.
    let (_, c) = p
        .post(
            "/v1/campaigns",
            &json!({ "name": "stopped", "template": { "name": "hello_world", "language": "en_US" },
                     "schedule": { "start_at": 4_000_000_000_000i64 },
                     "audience": [ { "to": "4915178100000" } ] }),
        )
        .await;
    let other = c["id"].as_str().unwrap().to_string();
    for action in ["start", "pause", "resume", "cancel"] {
        let (s, b) = p
            .post(&format!("/v1/campaigns/{other}/{action}"), &json!({}))
            .await;
        assert_eq!(s, 200, "{action}: {b}");
    }
    let events = sse_until(&p, "/v1/events?types=campaign.*", "campaign.cancelled").await;
    let theirs: Vec<(&str, &str)> = events
        .iter()
        .filter(|(_, d)| d["campaign_id"] == other.as_str())
        .map(|(k, d)| (k.as_str(), d["detail"]["reason"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        theirs,
        [
            ("campaign.scheduled", ""),
            ("campaign.paused", "paused by hand"),
            ("campaign.scheduled", ""),
            ("campaign.cancelled", "cancelled by hand")
        ],
        "{events:?}"
    );
    p.shutdown().await;
}

/// Posts a CSV audience with a content type; the status and the answer.
async fn upload(p: &Pair, id: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
    let r = p
        .http
        .post(format!("{}/v1/campaigns/{id}/audience", p.gw_base))
        .bearer_auth(KEY)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

async fn draft(p: &Pair, name: &str) -> String {
    let mut spec = order_update(Value::Null);
    spec["name"] = json!(name);
    spec.as_object_mut().unwrap().remove("audience");
    let (s, c) = p.post("/v1/campaigns", &spec).await;
    assert_eq!(s, 201, "{c}");
    c["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_audience_files_are_refused_whole_or_row_by_row_with_the_reason() {
    let mut cfg = gateway_config();
    cfg.gates.consent = false;
    cfg.campaigns.batch = 4;
    let p = Pair::start(sandbox_config(), cfg).await;
    // The template names first_name and amount: a header without amount is refused whole.
    let id = draft(&p, "no amount").await;
    let (s, b) = upload(
        &p,
        &id,
        "text/csv",
        b"to,first_name\n4915181000001,Ana\n".to_vec(),
    )
    .await;
    assert_eq!(s, 400, "{b}");
    let msg = b["error"]["details"]
        .as_str()
        .unwrap_or_default()
        .to_string()
        + b["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("amount") && msg.contains("nothing was added"),
        "{b:#}"
    );
    let (_, c) = p.get(&format!("/v1/campaigns/{id}")).await;
    assert_eq!(c["counts"]["audience"], 0, "{c:#}");
    // UTF-16 (with its byte-order mark): refused whole, with what to do.
    let utf16: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(
            "to,first_name,amount\n4915181000001,Ana,$1\n"
                .encode_utf16()
                .flat_map(|u| u.to_le_bytes()),
        )
        .collect();
    let (s, b) = upload(&p, &id, "text/csv", utf16).await;
    assert_eq!(s, 400, "{b}");
    assert!(b.to_string().contains("UTF-16"), "{b:#}");
    // An unknown charset is refused.
    let (s, b) = upload(&p, &id, "text/csv; charset=shift_jis", b"to\n".to_vec()).await;
    assert_eq!(s, 400, "{b}");
    assert!(b.to_string().contains("shift_jis"), "{b:#}");
    // Latin-1 read as UTF-8: its accented rows are bad rows that say how to send it; the same
    // file with charset=iso-8859-1 is read whole.
    let latin1 = |s: &str| s.chars().map(|c| c as u8).collect::<Vec<u8>>();
    let file = latin1(
        "to,first_name,amount\n4915181000001,Jos\u{e9},$1\n4915181000002,Ana,$2\n4915181000003,Ren\u{e9}e,$3\n",
    );
    let (s, b) = upload(&p, &id, "text/csv", file.clone()).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["counts"]["pending"], 1, "{b:#}");
    assert_eq!(b["counts"]["skipped_by_reason"]["bad_row"], 2, "{b:#}");
    let (_, r) = p
        .get(&format!("/v1/campaigns/{id}/recipients?state=skipped"))
        .await;
    let details: Vec<&str> = r["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["detail"].as_str().unwrap())
        .collect();
    assert!(details[0].starts_with("line 2: not UTF-8"), "{details:?}");
    assert!(
        details[1].starts_with("line 4: not UTF-8") && details[1].contains("charset=iso-8859-1"),
        "{details:?}"
    );
    let latin = draft(&p, "latin").await;
    let (s, b) = upload(&p, &latin, "text/csv; charset=ISO-8859-1", file).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["counts"]["pending"], 3, "{b:#}");
    let (_, r) = p.get(&format!("/v1/campaigns/{latin}/recipients")).await;
    assert_eq!(
        r["recipients"][0]["columns"]["first_name"], "Jos\u{e9}",
        "{r:#}"
    );
    // A 10 MB line, an unterminated quote and a short row among good ones: each its own bad
    // row with its line; the rows around them are in.
    let big = draft(&p, "big line").await;
    let mut file = b"to,first_name,amount\n4915182000001,A,$1\n4915182000002,".to_vec();
    file.extend(std::iter::repeat_n(b'x', 10 * 1024 * 1024));
    file.extend_from_slice(b",$2\n4915182000003,\"Bo,$3\n4915182000004,C\n4915182000005,D,$5\n");
    let (s, b) = upload(&p, &big, "text/csv", file).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["counts"]["pending"], 2, "{b:#}");
    assert_eq!(b["counts"]["skipped_by_reason"]["bad_row"], 3, "{b:#}");
    assert_eq!(b["lines"], 6, "{b:#}");
    let (_, r) = p
        .get(&format!("/v1/campaigns/{big}/recipients?state=skipped"))
        .await;
    let details: Vec<&str> = r["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["detail"].as_str().unwrap())
        .collect();
    assert_eq!(
        details,
        [
            "line 3: longer than 65536 bytes",
            "line 4: an unterminated quote (a field cannot span lines)",
            "line 5: 2 fields, the header has 3"
        ],
        "{r:#}"
    );
    // An upload that breaks off part-way says what was added before: nothing half-built unsaid.
    let broken = draft(&p, "broken").await;
    let mut chunks: Vec<Result<bytes::Bytes, String>> =
        vec![Ok(bytes::Bytes::from_static(b"to,first_name,amount\n"))];
    for i in 0..6 {
        chunks.push(Ok(bytes::Bytes::from(format!("49151830{i:05},N,$1\n"))));
    }
    chunks.push(Err("connection reset".into()));
    let err =
        mynah_gateway::campaigns::import_csv(&p.gw, &broken, futures_util::stream::iter(chunks))
            .await
            .unwrap_err();
    assert!(
        err.details.contains("broke off after line 5")
            && err.details.contains("with the 4 rows added before")
            && err.details.contains("connection reset"),
        "{err:?}"
    );
    let (_, c) = p.get(&format!("/v1/campaigns/{broken}")).await;
    assert_eq!(
        (c["state"].as_str(), c["counts"]["audience"].as_i64()),
        (Some("draft"), Some(4)),
        "{c:#}"
    );
    // Empty, or a header without a recipient column.
    let (s, b) = upload(&p, &broken, "text/csv", Vec::new()).await;
    assert_eq!(s, 400, "{b}");
    assert!(b.to_string().contains("empty"), "{b:#}");
    let (s, b) = upload(
        &p,
        &broken,
        "text/csv",
        b"name,first_name,amount\nx,y,z\n".to_vec(),
    )
    .await;
    assert_eq!(s, 400, "{b}");
    assert!(b.to_string().contains("recipient column"), "{b:#}");
    p.shutdown().await;
}
