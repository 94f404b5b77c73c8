//! The gateway console (`/console/`) end to end: sign-in and sessions over plain HTTP (a wrong
//! key makes no session, a change without the session's CSRF token or from another origin is
//! refused, sign-out ends the session), then in a real headless Chromium driven over WebDriver
//! (the sandbox's client, `crates/sandbox/tests/browser/`): signing in, a message's timeline
//! following the platform live, a campaign paused and cancelled from its buttons, a CSV consent
//! import with its progress and refused rows, every view at 360 px by keyboard at AA contrast.
//! Screenshots go to `docs/screenshots/gateway-*.png` with `MYNAH_SCREENSHOTS=1`.
//!
//! Run with `MYNAH_BROWSER_TESTS=1` to make a missing Chromium an error (CI does).

#[path = "../../sandbox/tests/browser/mod.rs"]
mod browser;
mod common;

use browser::Browser;
use common::*;
use mynah_gateway::config::{Config as GwConfig, ConsoleUser};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

const ANA_KEY: &str = "ana-console-key-0123456789";

fn console_config() -> GwConfig {
    let mut cfg = gateway_config();
    cfg.console.users = vec![ConsoleUser {
        name: "ana".into(),
        key: ANA_KEY.into(),
    }];
    cfg
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Signs in over HTTP: the session cookie (`name=value`) and the CSRF token.
async fn http_sign_in(p: &Pair, key: &str) -> (String, String) {
    let r = client()
        .post(format!("{}/console/sign-in", p.gw_base))
        .json(&json!({ "key": key }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    let v: Value = r.json().await.unwrap();
    let pair = cookie.split(';').next().unwrap().to_string();
    (pair, v["csrf_token"].as_str().unwrap().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_need_the_right_key_and_changes_need_the_csrf_token() {
    let mut cfg = console_config();
    cfg.console.secure_cookie = true;
    let p = Pair::start(sandbox_config(), cfg).await;
    let http = client();
    let url = |path: &str| format!("{}{path}", p.gw_base);
    // The console without a session: to the sign-in page, which is served with a strict policy.
    let r = http.get(url("/console/")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/console/sign-in");
    let r = http.get(url("/console/sign-in")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"));
    for asset in ["gateway.js", "console.js", "console.css", "icon.svg"] {
        let r = http
            .get(url(&format!("/console/assets/{asset}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{asset}");
    }
    // Sign-in takes JSON only, from the gateway's own origin.
    let r = http
        .post(url("/console/sign-in"))
        .header("content-type", "text/plain")
        .body(format!("{{\"key\": \"{KEY}\"}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("set-cookie").is_none());
    let r = http
        .post(url("/console/sign-in"))
        .header("origin", "https://evil.example")
        .json(&json!({ "key": KEY }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("set-cookie").is_none());
    // A wrong key: refused, clearly, and no cookie.
    let r = http
        .post(url("/console/sign-in"))
        .json(&json!({ "key": "guess-guess-guess" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("set-cookie").is_none());
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "unauthorized");
    assert!(
        e["error"]["details"]
            .as_str()
            .unwrap()
            .contains("nothing was signed in"),
        "{e}"
    );
    // The gateway key and a user's key both sign in; the cookie is HttpOnly, SameSite=Strict,
    // Secure (configured), for the whole gateway, with a lifetime.
    let r = http
        .post(url("/console/sign-in"))
        .json(&json!({ "key": KEY }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    for part in [
        "mynah_console=",
        "HttpOnly",
        "SameSite=Strict",
        "Secure",
        "Path=/",
        "Max-Age=",
    ] {
        assert!(set.contains(part), "{part} missing from {set}");
    }
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["user"], "gateway");
    let (cookie, csrf) = http_sign_in(&p, ANA_KEY).await;
    let token_hex = cookie.trim_start_matches("mynah_console=");
    assert_eq!(token_hex.len(), 64, "{cookie}");
    let (_, csrf2) = http_sign_in(&p, ANA_KEY).await;
    assert_ne!(csrf, csrf2, "every session has its own token");
    // Reading through the session works like the key.
    let r = http
        .get(url("/v1/messages"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .get(url("/console/session"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    let s: Value = r.json().await.unwrap();
    assert_eq!(
        (s["user"].as_str(), s["csrf_token"].as_str()),
        (Some("ana"), Some(csrf.as_str()))
    );
    // A change without the token, with a wrong one, or from another origin: refused, and
    // nothing changes.
    let change = |token: Option<&str>, origin: Option<&str>| {
        let mut req = http
            .put(url("/v1/contacts/4915112345678/consents/marketing"))
            .header("cookie", &cookie)
            .json(&json!({ "status": "opted_in", "source": "console" }));
        if let Some(t) = token {
            req = req.header("x-csrf-token", t);
        }
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        req.send()
    };
    let own = p.gw_base.clone();
    for (token, origin, why) in [
        (None, Some(own.as_str()), "X-CSRF-Token"),
        (Some("0".repeat(64)), Some(own.as_str()), "does not match"),
        (Some(csrf.clone()), Some("https://evil.example"), "origin"),
        (Some(csrf2.clone()), Some(own.as_str()), "does not match"),
    ] {
        let r = change(token.as_deref(), origin).await.unwrap();
        assert_eq!(r.status(), 403, "{why}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["code"], "forbidden");
        assert!(
            e["error"]["details"].as_str().unwrap().contains(why),
            "{why}: {e}"
        );
    }
    let r = http
        .post(url("/v1/templates/sync"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let (_, c) = p.get("/v1/contacts/4915112345678/consents").await;
    assert_eq!(c["current"], json!([]), "nothing was recorded: {c}");
    // With the token from the console's origin: done.
    let r = change(Some(&csrf), Some(&own)).await.unwrap();
    assert_eq!(r.status(), 200);
    let (_, c) = p.get("/v1/contacts/4915112345678/consents").await;
    assert_eq!(c["current"][0]["status"], "opted_in");
    // The key still works without any cookie; a session does not reach the metrics.
    let (s, _) = p.get("/v1/overview").await;
    assert_eq!(s, 200);
    // Sign-out needs the token too, then the session is gone.
    let r = http
        .post(url("/console/sign-out"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = http
        .post(url("/console/sign-out"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let r = http
        .get(url("/v1/messages"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let e: Value = r.json().await.unwrap();
    assert!(
        e["error"]["details"]
            .as_str()
            .unwrap()
            .contains("session has ended"),
        "{e}"
    );
    p.shutdown().await;
}

/// The app API routes the console added: the message search by template and metadata, newest
/// first; the campaign list; the overview.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_search_the_campaign_list_and_the_overview_answer_through_the_api() {
    let p = Pair::start(sandbox_config(), console_config()).await;
    p.opt_in("4915100000001", "utility").await;
    let mut tagged = template("hello_world", "4915100000001");
    tagged["metadata"] = json!({ "order_id": "A-7", "n": 7 });
    let a = p.send(tagged).await;
    let b = p.send(template("hello_world", "4915100000001")).await;
    let (s, l) = p.get("/v1/messages?metadata=order_id:A-7").await;
    assert_eq!(s, 200, "{l}");
    assert_eq!(l["messages"].as_array().unwrap().len(), 1);
    assert_eq!(l["messages"][0]["id"], a.as_str());
    let (_, l) = p
        .get("/v1/messages?metadata=n:7&template=hello_world")
        .await;
    assert_eq!(l["messages"][0]["id"], a.as_str());
    let (_, l) = p.get("/v1/messages?template=nope").await;
    assert_eq!(l["messages"], json!([]));
    let (_, l) = p.get("/v1/messages?order=newest").await;
    let ids: Vec<&str> = l["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, [b.as_str(), a.as_str()]);
    for bad in ["metadata=order_id", "metadata=a%20b:c", "order=sideways"] {
        let (s, e) = p.get(&format!("/v1/messages?{bad}")).await;
        assert_eq!(s, 400, "{bad}: {e}");
        assert_eq!(e["error"]["code"], "invalid_parameter");
    }
    let (s, c) = p
        .post(
            "/v1/campaigns",
            &json!({ "name": "one", "template": { "name": "hello_world", "language": "en_US" },
                     "audience": [{ "to": "4915100000001" }] }),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    let (s, l) = p.get("/v1/campaigns").await;
    assert_eq!(s, 200, "{l}");
    assert_eq!(l["campaigns"][0]["id"], c["id"]);
    assert_eq!(l["campaigns"][0]["counts"]["audience"], 1);
    let (_, l) = p.get("/v1/campaigns?state=running").await;
    assert_eq!(l["campaigns"], json!([]));
    let (s, _) = p.get("/v1/campaigns?state=RUNNING").await;
    assert_eq!(s, 400);
    let (s, o) = p.get("/v1/overview").await;
    assert_eq!(s, 200, "{o}");
    assert!(o["rate"]["limit"].as_f64().unwrap() > 0.0, "{o}");
    assert!(
        o["queue"].is_array() && o["errors"]["codes"].is_array(),
        "{o}"
    );
    let r = client()
        .get(format!("{}/v1/overview", p.gw_base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_wrong_keys_are_slowed_then_refused() {
    let p = Pair::start(sandbox_config(), console_config()).await;
    let http = client();
    let started = std::time::Instant::now();
    let tries = (0..20).map(|i| {
        http.post(format!("{}/console/sign-in", p.gw_base))
            .json(&json!({ "key": format!("wrong-{i}") }))
            .send()
    });
    let answers = futures_util::future::join_all(tries).await;
    assert!(
        answers.iter().all(|r| r.as_ref().unwrap().status() == 401),
        "every wrong key is refused"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "failures are answered late"
    );
    // Locked out, even the right key waits.
    let r = http
        .post(format!("{}/console/sign-in", p.gw_base))
        .json(&json!({ "key": ANA_KEY }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    p.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// In the browser

/// A browser signed in to the console of `p` as ana, its live feed open.
async fn signed_in(p: &Pair, width: u32, height: u32) -> Browser {
    let b = Browser::start(width, height).await;
    b.goto(&format!("{}/console/", p.gw_base)).await;
    let key = b.find("#key").await;
    key.type_text(ANA_KEY).await;
    b.click("#sign-in button[type=submit]").await;
    b.wait_for(
        "the console's live feed",
        "return location.pathname === '/console/' && document.body.dataset.live === 'open'",
        json!([]),
    )
    .await;
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_works_and_a_wrong_key_is_refused() {
    if !browser::enabled("signing_in_works_and_a_wrong_key_is_refused") {
        return;
    }
    let p = Pair::start(sandbox_config(), console_config()).await;
    // Some traffic for the overview: sends, and one the platform refuses with 131026.
    let (s, b) = p
        .control(
            Method::POST,
            "/faults",
            &json!({ "match": { "to": "4915100000099" }, "action": { "code": 131026 } }),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    for who in ["4915100000001", "4915100000002", "4915100000099"] {
        p.opt_in(who, "utility").await;
        p.send(template("hello_world", who)).await;
    }
    let b = Browser::start(1280, 900).await;
    b.goto(&format!("{}/console/", p.gw_base)).await;
    b.wait_for(
        "the sign-in page",
        "return location.pathname === '/console/sign-in' && document.activeElement?.id === 'key'",
        json!([]),
    )
    .await;
    b.find("#key").await.type_text("not-the-key-at-all").await;
    b.click("#sign-in button[type=submit]").await;
    let error = b.text("#sign-in .field-error").await;
    assert!(error.contains("neither the gateway key"), "{error}");
    let session = b
        .eval(
            "return fetch('/console/session').then(r => r.status)",
            json!([]),
        )
        .await;
    assert_eq!(session, 401, "no session after a wrong key");
    assert_eq!(
        b.eval("return location.pathname", json!([])).await,
        "/console/sign-in"
    );
    b.screenshot("gateway-sign-in.png").await;
    // The right key (typed, then Enter): the overview, signed in as ana.
    let key = b.find("#key").await;
    key.clear().await;
    key.type_text(&format!("{ANA_KEY}\u{E007}")).await;
    b.find("#overview[data-ready]").await;
    assert_eq!(b.text("#user").await, "ana");
    b.wait_for(
        "the refused send in the overview",
        "return document.querySelector('#errors [data-code=\"131026\"]') !== null",
        json!([]),
    )
    .await;
    let rate = b.text("#rate").await;
    assert!(rate.contains("msg/s") && rate.contains("limit"), "{rate}");
    let queue = b.text("#queue").await;
    assert!(
        queue.contains("queued") && queue.contains("Bulk"),
        "{queue}"
    );
    let intake = b.text("#intake").await;
    assert!(intake.contains("webhooks"), "{intake}");
    b.screenshot("gateway-overview.png").await;
    // Sign-out: back to the sign-in page, and the session is gone.
    b.click("#sign-out").await;
    b.wait_for(
        "the sign-in page",
        "return location.pathname === '/console/sign-in'",
        json!([]),
    )
    .await;
    let session = b
        .eval(
            "return fetch('/console/session').then(r => r.status)",
            json!([]),
        )
        .await;
    assert_eq!(session, 401);
    b.quit().await;
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_messages_timeline_is_shown_and_follows_the_platform() {
    if !browser::enabled("a_messages_timeline_is_shown_and_follows_the_platform") {
        return;
    }
    let p = Pair::start(sandbox_config(), console_config()).await;
    let to = "4915112340001";
    p.opt_in(to, "utility").await;
    p.opt_in("4915112340002", "utility").await;
    let b = signed_in(&p, 1280, 900).await;
    // Found by its metadata in the search.
    let mut body = template("hello_world", to);
    body["metadata"] = json!({ "order_id": "A-1042" });
    let id = p.send(body).await;
    p.send(template("hello_world", "4915112340002")).await;
    b.click("a[href='#/messages']").await;
    b.find("#results[data-ready]").await;
    b.find("#q-metadata")
        .await
        .type_text("order_id:A-1042")
        .await;
    b.click("#search button[type=submit]").await;
    b.wait_for(
        "only the message with that metadata",
        "const ids = [...document.querySelectorAll('#results a[data-id]')].map(a => a.dataset.id);
         return ids.length === 1 && ids[0] === arguments[0]",
        json!([id]),
    )
    .await;
    b.screenshot("gateway-messages.png").await;
    // Its timeline, live as the platform's statuses come in.
    b.click(&format!("#results a[data-id='{id}']")).await;
    b.wait_for(
        "the timeline up to read",
        "return document.querySelector('#timeline li[data-type=\"status.read\"]') !== null",
        json!([]),
    )
    .await;
    let kinds = b
        .eval(
            "return [...document.querySelectorAll('#timeline li')].map(li => li.dataset.type)",
            json!([]),
        )
        .await;
    for k in [
        "enqueued",
        "accepted",
        "status.sent",
        "status.delivered",
        "status.read",
    ] {
        assert!(
            kinds.as_array().unwrap().iter().any(|x| x == k),
            "{k} missing from {kinds}"
        );
    }
    let (_, m) = p.get(&format!("/v1/messages/{id}")).await;
    let wamid = m["wamid"].as_str().unwrap();
    assert!(b.text("#message").await.contains(wamid));
    assert!(b.text("#message").await.contains("A-1042"));
    b.wait_for(
        "the state shown as read",
        "return document.querySelector('#message')?.dataset.state === 'read'",
        json!([]),
    )
    .await;
    b.screenshot("gateway-message.png").await;
    // An unknown id is said so.
    b.goto(&format!("{}/console/#/messages/msg_nope", p.gw_base))
        .await;
    let e = b.text("#message .form-error").await;
    assert!(e.contains("no message msg_nope"), "{e}");
    b.quit().await;
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_pauses_resumes_and_cancels_from_the_console() {
    if !browser::enabled("a_campaign_pauses_resumes_and_cancels_from_the_console") {
        return;
    }
    let mut cfg = console_config();
    cfg.gates.consent = false;
    cfg.rate = Some(mynah_gateway::ratelimit::NumberLimitConfig {
        rate: 2.0,
        burst: 1,
        min_rate: 1.0,
        ..cfg.rate()
    });
    let p = Pair::start(sandbox_config(), cfg).await;
    let audience: Vec<Value> = (0..40)
        .map(|i| json!({ "to": format!("49151720{i:05}") }))
        .collect();
    let (s, c) = p
        .post(
            "/v1/campaigns",
            &json!({ "name": "Spring newsletter", "template": { "name": "hello_world", "language": "en_US" },
                     "rate_share": 0.5, "audience": audience }),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    let id = c["id"].as_str().unwrap().to_string();
    let (s, b) = p
        .post(&format!("/v1/campaigns/{id}/start"), &json!({}))
        .await;
    assert_eq!(s, 200, "{b}");
    let b = signed_in(&p, 1280, 900).await;
    b.click("a[href='#/campaigns']").await;
    let card = format!("article[data-campaign='{id}']");
    b.find(&format!("{card}[data-state='running']")).await;
    b.wait_for(
        "some released",
        "return /[1-9]\\d* of 40 released/.test(document.querySelector(arguments[0])?.innerText || '')",
        json!([card]),
    )
    .await;
    b.screenshot("gateway-campaigns.png").await;
    b.click(&format!("{card} button[data-action='pause']"))
        .await;
    b.find(&format!("{card}[data-state='paused']")).await;
    let (_, c) = p.get(&format!("/v1/campaigns/{id}")).await;
    assert_eq!(c["state"], "paused", "{c}");
    assert_eq!(c["reason"], "paused by hand");
    b.click(&format!("{card} button[data-action='resume']"))
        .await;
    b.find(&format!("{card}[data-state='running']")).await;
    // Cancel asks first.
    b.click(&format!("{card} button[data-action='cancel']"))
        .await;
    b.click(&format!("{card} button[data-action='confirm-cancel']"))
        .await;
    b.find(&format!("{card}[data-state='cancelled']")).await;
    let (_, c) = p.get(&format!("/v1/campaigns/{id}")).await;
    assert_eq!(c["state"], "cancelled", "{c}");
    assert_eq!(
        b.eval(
            "return document.querySelectorAll(arguments[0] + ' button[data-action]').length",
            json!([card]),
        )
        .await,
        0,
        "a cancelled campaign has no controls"
    );
    b.quit().await;
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consent_import_shows_its_progress_and_the_refused_rows() {
    if !browser::enabled("a_consent_import_shows_its_progress_and_the_refused_rows") {
        return;
    }
    let p = Pair::start(sandbox_config(), console_config()).await;
    // 500 rows in three requests; three are refused, one after a blank line.
    let mut csv = String::from("wa_id,category,status,source\n");
    for i in 0..497 {
        csv.push_str(&format!("49151730{i:05},marketing,opted_in,shop\n"));
    }
    csv.push_str("4915173099001,newsletters,opted_in,shop\n");
    csv.push_str("not-a-number,marketing,opted_in,shop\n\n");
    csv.push_str("4915173099002,marketing,maybe,shop\n");
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-import");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("consents.csv");
    std::fs::write(&file, &csv).unwrap();
    let b = signed_in(&p, 1280, 900).await;
    b.click("a[href='#/contacts']").await;
    b.find("#import-file")
        .await
        .type_text(file.to_str().unwrap())
        .await;
    b.click("#import-start").await;
    let status = b
        .wait_for(
            "the import to finish",
            "const s = document.querySelector('#import-status'); return s?.dataset.done === '1' && s.innerText",
            json!([]),
        )
        .await;
    assert_eq!(
        status, "Done: 500 of 500 rows read, 497 recorded, 3 refused.",
        "{status}"
    );
    let progress = b
        .eval(
            "const p = document.querySelector('#import-progress'); return [p.value, p.max]",
            json!([]),
        )
        .await;
    assert_eq!(progress, json!([500, 500]));
    let refused = b
        .eval(
            "return [...document.querySelectorAll('#import-errors tbody tr')].map(tr => [...tr.cells].map(c => c.innerText))",
            json!([]),
        )
        .await;
    let rows = refused.as_array().unwrap();
    assert_eq!(rows.len(), 3, "{refused}");
    assert_eq!(rows[0][0], "499", "{refused}");
    assert!(rows[0][1].as_str().unwrap().contains("newsletters"));
    assert_eq!(rows[1][0], "500");
    assert_eq!(rows[2][0], "502", "the blank line counts: {refused}");
    assert!(rows[2][1].as_str().unwrap().contains("maybe"));
    let (_, c) = p.get("/v1/contacts/4915173000042/consents").await;
    assert_eq!(c["current"][0]["status"], "opted_in", "{c}");
    assert_eq!(c["current"][0]["source"], "shop");
    b.screenshot("gateway-import.png").await;
    // The contact: identity, consents with their history, the window.
    p.put(
        "/v1/contacts/4915173000042/consents/marketing",
        &json!({ "status": "opted_out", "source": "call centre" }),
    )
    .await;
    p.inbound("4915173000042", "Hello!").await;
    b.find("#contact-id")
        .await
        .type_text("+49 151 7300 0042\u{E007}")
        .await;
    b.wait_for(
        "the open window",
        "return document.querySelector('#window')?.dataset.open === 'true'",
        json!([]),
    )
    .await;
    let consents = b.text("#consents").await;
    assert!(
        consents.contains("opted_out") && consents.contains("call centre"),
        "{consents}"
    );
    assert!(consents.contains("History"), "{consents}");
    b.screenshot("gateway-contact.png").await;
    b.quit().await;
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_fits_a_360_px_phone_and_works_by_keyboard() {
    if !browser::enabled("the_console_fits_a_360_px_phone_and_works_by_keyboard") {
        return;
    }
    let p = Pair::start(sandbox_config(), console_config()).await;
    p.opt_in("4915100000001", "utility").await;
    let id = p.send(template("hello_world", "4915100000001")).await;
    p.until_state(&id, "read").await;
    let (s, c) = p
        .post(
            "/v1/campaigns",
            &json!({ "name": "Draft", "template": { "name": "hello_world", "language": "en_US" },
                     "audience": [{ "to": "4915100000001" }] }),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    // Signing in by keyboard alone.
    let b = Browser::start(360, 740).await;
    b.goto(&format!("{}/console/sign-in", p.gw_base)).await;
    b.find("#key").await;
    b.keys(&format!("{ANA_KEY}\u{E007}")).await;
    b.wait_for(
        "the console",
        "return document.body.dataset.live === 'open'",
        json!([]),
    )
    .await;
    for hash in [
        "#/overview".to_string(),
        "#/messages".to_string(),
        format!("#/messages/{id}"),
        "#/contacts/4915100000001".to_string(),
        "#/templates".to_string(),
        "#/campaigns".to_string(),
    ] {
        b.goto(&format!("{}/console/{hash}", p.gw_base)).await;
        b.find("main h2").await;
        b.find("[data-ready]").await;
        let overflow = b
            .eval(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth",
                json!([]),
            )
            .await;
        assert_eq!(overflow, 0, "{hash}: wider than 360 px");
        let bad = b.eval(browser::UNNAMED_CONTROLS, json!([])).await;
        assert_eq!(bad, json!([]), "{hash}");
        let low = b.eval(browser::LOW_CONTRAST, json!([])).await;
        assert_eq!(low, json!([]), "{hash}: text below AA contrast");
    }
    // The skip link first, then the navigation.
    b.goto(&format!("{}/console/#/overview", p.gw_base)).await;
    b.find("#overview[data-ready]").await;
    b.eval(
        "document.activeElement?.blur(); window.scrollTo(0, 0)",
        json!([]),
    )
    .await;
    b.keys("\u{E004}").await;
    assert_eq!(b.active().await.text().await, "Skip to content");
    let mut reached = false;
    for _ in 0..20 {
        b.keys("\u{E004}").await;
        if b.active().await.attr("href").await.as_deref() == Some("#/campaigns") {
            reached = true;
            break;
        }
    }
    assert!(reached, "the campaigns link is reachable by Tab");
    b.keys("\u{E007}").await;
    b.find("#campaigns[data-ready]").await;
    b.screenshot("gateway-360.png").await;
    b.quit().await;
    p.shutdown().await;
}
