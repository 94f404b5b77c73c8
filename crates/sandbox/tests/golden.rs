//! Golden snapshots of exact webhook bodies and of the send response (spec §3.1, §4.3–§4.5).
//!
//! Each snapshot in `tests/golden/*.json` is the received body, pretty-printed without reordering
//! keys or touching string escapes; removing the whitespace outside strings gives back the exact
//! bytes the receiver got (and that `X-Hub-Signature-256` signs). Run with `UPDATE_GOLDEN=1` to
//! (re)write the files. Every run is deterministic: manual clock, seed 7, one harness per test.

mod common;
use common::*;

use reqwest::Method;
use serde_json::{Value, json};
use std::path::PathBuf;

const TO: &str = "+49 151 12345678";
const TO_WA: &str = "4915112345678";

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("golden")
        .join(format!("{name}.json"))
}

/// Indents JSON text without reparsing it: key order and escapes stay as they are.
fn pretty(raw: &str) -> String {
    let chars: Vec<char> = raw.chars().collect();
    let mut out = String::with_capacity(raw.len() * 2);
    let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.push_str(&"  ".repeat(depth));
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if in_str {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_str = false;
            }
            i += 1;
            continue;
        }
        match c {
            '"' => {
                in_str = true;
                out.push(c);
            }
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                let mut j = i + 1;
                while j < chars.len() && chars[j].is_whitespace() {
                    j += 1;
                }
                if j < chars.len() && chars[j] == close {
                    out.push(c);
                    out.push(close);
                    i = j;
                } else {
                    out.push(c);
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
        i += 1;
    }
    out.push('\n');
    out
}

/// Removes the whitespace outside strings.
fn minify(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut in_str, mut escaped) = (false, false);
    for c in text.chars() {
        if in_str {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_str = false;
            }
        } else if c == '"' {
            in_str = true;
            out.push(c);
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    out
}

/// Compares `raw` (exact bytes) with the golden file `name`, or writes it under UPDATE_GOLDEN=1.
fn golden(name: &str, raw: &[u8]) {
    let raw = std::str::from_utf8(raw).expect("UTF-8 body");
    serde_json::from_str::<Value>(raw).expect("the body is JSON");
    let path = golden_path(name);
    let pretty = pretty(raw);
    assert_eq!(
        minify(&pretty),
        raw,
        "{name}: the pretty printer is lossless"
    );
    if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &pretty).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with UPDATE_GOLDEN=1 to create it",
            path.display()
        )
    });
    assert_eq!(
        pretty,
        want,
        "{name}: body differs from {} (UPDATE_GOLDEN=1 rewrites it)",
        path.display()
    );
    assert_eq!(minify(&want), raw, "{name}: exact bytes");
}

/// The exact body of the status webhook (wamid, status) the receiver got.
fn status_body(rx: &Receiver, wamid: &str, status: &str) -> Received {
    let hits: Vec<Received> = rx
        .received()
        .into_iter()
        .filter(|r| {
            let s = &r.json()["entry"][0]["changes"][0]["value"]["statuses"][0];
            s["id"] == wamid && s["status"] == status
        })
        .collect();
    assert_eq!(hits.len(), 1, "one {status} webhook for {wamid}");
    assert!(signature_ok(&hits[0], SECRET), "signed");
    hits[0].clone()
}

/// Sends through the 360dialog dialect and returns the exact response body.
async fn send_raw(h: &Harness, body: &Value) -> (u16, Vec<u8>) {
    let r = h
        .http
        .post(format!("{}/messages", h.base))
        .header("D360-API-KEY", KEY)
        .json(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
}

fn wamid_of(resp: &[u8]) -> String {
    let v: Value = serde_json::from_slice(resp).unwrap();
    v["messages"][0]["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn golden_text_lifecycle_360_v23() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    let (status, resp) = send_raw(&h, &text(TO, "Your order has shipped.")).await;
    assert_eq!(status, 200);
    golden("send_response", &resp);
    let wamid = wamid_of(&resp);
    h.advance(10.0).await;
    h.wait(&format!("wamid={wamid}&status=read"), 1).await;
    for st in ["sent", "delivered", "read"] {
        golden(&format!("text_{st}"), &status_body(&rx, &wamid, st).body);
    }
    h.shutdown().await;
}

#[tokio::test]
async fn golden_template_lifecycle() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    let body = json!({ "messaging_product": "whatsapp", "recipient_type": "individual", "to": TO, "type": "template",
        "template": { "name": "hello_world", "language": { "code": "en_US" } } });
    let (status, resp) = send_raw(&h, &body).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp));
    let wamid = wamid_of(&resp);
    h.advance(10.0).await;
    h.wait(&format!("wamid={wamid}&status=read"), 1).await;
    for st in ["sent", "delivered", "read"] {
        golden(
            &format!("template_hello_world_{st}"),
            &status_body(&rx, &wamid, st).body,
        );
    }
    h.shutdown().await;
}

#[tokio::test]
async fn golden_failed_not_on_whatsapp() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    let (s, b) = h
        .control(
            Method::PUT,
            &format!("/users/{TO_WA}"),
            &json!({ "on_whatsapp": false }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (status, resp) = send_raw(&h, &text(TO, "Anyone there?")).await;
    assert_eq!(
        status, 200,
        "the send is accepted; the failure comes as a webhook"
    );
    let wamid = wamid_of(&resp);
    h.advance(10.0).await;
    h.wait(&format!("wamid={wamid}&status=failed"), 1).await;
    let r = status_body(&rx, &wamid, "failed");
    let st = &r.json()["entry"][0]["changes"][0]["value"]["statuses"][0];
    assert_eq!(st["errors"][0]["code"], 131026, "{st}");
    golden("failed_131026", &r.body);
    assert_eq!(
        rx.statuses(),
        vec![(wamid, "failed".to_string())],
        "nothing but failed"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn golden_inbound_text() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    let (s, m) = h
        .control(
            Method::POST,
            "/inbound",
            &json!({ "from": "16505551234", "name": "Sheena Nelson", "type": "text", "text": { "body": "Do you ship to Hamburg?" } }),
        )
        .await;
    assert_eq!(s, 200, "{m}");
    let wamid = m["id"].as_str().unwrap();
    h.wait(&format!("wamid={wamid}"), 1).await;
    let got = rx.received();
    assert_eq!(got.len(), 1);
    assert!(signature_ok(&got[0], SECRET));
    golden("inbound_text", &got[0].body);
    h.shutdown().await;
}

/// The platform escapes non-ASCII characters (emoji, umlauts) as `\uXXXX` in the signed body
/// (spec §4.1), so a receiver that re-serialises before verifying breaks; the sandbox should
/// send the same bytes so that such receivers fail here too.
#[tokio::test]
async fn golden_inbound_non_ascii_is_escaped() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    let (s, m) = h
        .control(
            Method::POST,
            "/inbound",
            &json!({ "from": "4915112345678", "name": "J\u{fc}rgen", "type": "text", "text": { "body": "Gr\u{fc}\u{df}e \u{1F600}" } }),
        )
        .await;
    assert_eq!(s, 200, "{m}");
    let wamid = m["id"].as_str().unwrap();
    h.wait(&format!("wamid={wamid}"), 1).await;
    let got = rx.received();
    assert!(signature_ok(&got[0], SECRET));
    let v = got[0].json();
    assert_eq!(
        v["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"],
        "Gr\u{fc}\u{df}e \u{1F600}"
    );
    let raw = String::from_utf8(got[0].body.to_vec()).unwrap();
    assert!(
        raw.is_ascii(),
        "non-ASCII is escaped in the signed body: {raw}"
    );
    assert!(
        raw.contains(r"\ud83d\ude00"),
        "emoji as a UTF-16 surrogate pair escape: {raw}"
    );
    h.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Business-scoped user ids (2026 note §1.4–§1.8): each new shape against the platform's own
// example, field by field, and as an exact golden body.

/// The documented examples (Meta's business-scoped user id page and the system messages
/// reference, 2026), as published.
mod examples {
    use serde_json::{Value, json};

    pub fn inbound_with_phone() -> Value {
        json!({"object":"whatsapp_business_account","entry":[{"id":"100000000000001","changes":[{"field":"messages","value":{
          "messaging_product":"whatsapp",
          "metadata":{"display_phone_number":"15550001111","phone_number_id":"200000000000002"},
          "contacts":[{"profile":{"name":"Anna K"},"wa_id":"4915112345678","user_id":"DE.1502576394655843"}],
          "messages":[{"from":"4915112345678","from_user_id":"DE.1502576394655843",
            "id":"wamid.HBgNNDkxNTExMjM0NTY3OBUCABIYFDNBQ0YwMDAwMDAwMDAwMDAwMDAxAA==",
            "timestamp":"1783000000","type":"text","text":{"body":"Hallo"}}]}}]}]})
    }

    pub fn inbound_withheld_parent() -> Value {
        json!({"object":"whatsapp_business_account","entry":[{"id":"100000000000001","changes":[{"field":"messages","value":{
          "messaging_product":"whatsapp",
          "metadata":{"display_phone_number":"15550001111","phone_number_id":"200000000000002"},
          "contacts":[{"profile":{"name":"Anna K","username":"anna.k"},
                       "user_id":"DE.1502576394655843","parent_user_id":"DE.ENT.11815799212886844830"}],
          "messages":[{"from_user_id":"DE.1502576394655843","from_parent_user_id":"DE.ENT.11815799212886844830",
            "id":"wamid.HBgTREUuMTUwMjU3NjM5NDY1NTg0MxUCABIYFDNBQ0YwMDAwMDAwMDAwMDAwMDAyAA==",
            "timestamp":"1783000100","type":"text","text":{"body":"Is it in stock?"}}]}}]}]})
    }

    pub fn delivered_to_bsuid_withheld_parent() -> Value {
        json!({"object":"whatsapp_business_account","entry":[{"id":"100000000000001","changes":[{"field":"messages","value":{
          "messaging_product":"whatsapp",
          "metadata":{"display_phone_number":"15550001111","phone_number_id":"200000000000002"},
          "contacts":[{"profile":{"name":"Anna K","username":"anna.k"},
                       "user_id":"DE.1502576394655843","parent_user_id":"DE.ENT.11815799212886844830"}],
          "statuses":[{"id":"wamid.HBgTREUuMTUwMjU3NjM5NDY1NTg0MxUCABEYEjAwMDAwMDAwMDAwMDAwMDAwMQA=",
            "status":"delivered","timestamp":"1783000300",
            "recipient_user_id":"DE.1502576394655843","recipient_parent_user_id":"DE.ENT.11815799212886844830",
            "pricing":{"billable":false,"pricing_model":"PMP","type":"free_customer_service","category":"service"}}]}}]}]})
    }

    /// `value` of a `sent` status of a message addressed by phone (other fields elided).
    pub fn sent_by_phone() -> Value {
        json!({"contacts":[{"profile":{"name":"Anna K"},"wa_id":"4915112345678","user_id":"DE.1502576394655843"}],
         "statuses":[{"id":"wamid.…","status":"sent","timestamp":"1783000250","recipient_id":"4915112345678",
           "recipient_user_id":"DE.1502576394655843",
           "pricing":{"billable":true,"pricing_model":"PMP","type":"regular","category":"utility"}}]})
    }

    /// `value` of a `failed` status of a message addressed by phone, as production sends it.
    pub fn failed_by_phone() -> Value {
        json!({"contacts":[{"wa_id":"4915112345678"}],
         "statuses":[{"id":"wamid.…","status":"failed","timestamp":"1783000400","recipient_id":"4915112345678",
           "errors":[{"code":131026,"title":"Message undeliverable","message":"Message undeliverable",
             "error_data":{"details":"Message Undeliverable."},
             "href":"https://developers.facebook.com/documentation/business-messaging/whatsapp/support/error-codes"}]}]})
    }

    pub fn send_response_to_bsuid() -> Value {
        json!({"messaging_product":"whatsapp",
         "contacts":[{"input":"DE.1502576394655843","user_id":"DE.1502576394655843"}],
         "messages":[{"id":"wamid.HBgTREUuMTUwMjU3NjM5NDY1NTg0MxUCABEYEjAwMDAwMDAwMDAwMDAwMDAwMQA="}]})
    }

    /// `value.messages` of the system message of a changed BSUID (no `contacts`).
    pub fn user_changed_user_id() -> Value {
        json!({"messages":[{"from":"4915112345678","id":"wamid.…","timestamp":"1783000500","type":"system",
          "system":{"body":"User Anna K changed from DE.1502576394655843 to DE.2602576394655843",
                    "user_id":"DE.2602576394655843","type":"user_changed_user_id"}}]})
    }

    pub fn user_id_update() -> Value {
        json!({"object":"whatsapp_business_account","entry":[{"id":"100000000000001","changes":[{"field":"user_id_update","value":{
          "messaging_product":"whatsapp",
          "metadata":{"display_phone_number":"15550001111","phone_number_id":"200000000000002"},
          "contacts":[{"profile":{"name":"Anna K"},"wa_id":"4915198765432"}],
          "user_id_update":[{"wa_id":"4915198765432","detail":"User id for Anna K has been updated.",
            "user_id":{"previous":"DE.1502576394655843","current":"DE.2602576394655843"},
            "parent_user_id":{"previous":"DE.ENT.11815799212886844830","current":"DE.ENT.21815799212886844830"},
            "timestamp":"1783000500"}]}}]}]})
    }
}

/// The sandbox's portfolio enrolled in parent business-scoped user ids.
fn enrolled(url: &str) -> mynah_sandbox::config::Config {
    let mut cfg = config(url);
    cfg.portfolios = vec![mynah_sandbox::config::PortfolioConfig {
        id: "default".into(),
        parent: Some("holding".into()),
        contact_book: true,
    }];
    cfg
}

/// The single webhook body the receiver got whose change is `field` (and, for messages, about
/// the wamid).
fn body_with(rx: &Receiver, field: &str, wamid: Option<&str>) -> Received {
    let hits: Vec<Received> = rx
        .received()
        .into_iter()
        .filter(|r| {
            let c = &r.json()["entry"][0]["changes"][0];
            c["field"] == field
                && wamid.is_none_or(|w| {
                    c["value"]["messages"][0]["id"] == w || c["value"]["statuses"][0]["id"] == w
                })
        })
        .collect();
    assert_eq!(hits.len(), 1, "one {field} webhook ({wamid:?})");
    assert!(signature_ok(&hits[0], SECRET), "signed");
    hits[0].clone()
}

async fn simulate(h: &Harness, from: &str, text: &str) -> String {
    let (s, m) = h
        .control(
            Method::POST,
            "/inbound",
            &json!({ "from": from, "name": "Anna K", "type": "text", "text": { "body": text } }),
        )
        .await;
    assert_eq!(s, 200, "{m}");
    let wamid = m["id"].as_str().unwrap().to_string();
    h.wait(&format!("wamid={wamid}"), 1).await;
    wamid
}

fn value_of(r: &Received) -> Value {
    r.json()["entry"][0]["changes"][0]["value"].clone()
}

#[tokio::test]
async fn golden_bsuid_inbound_with_phone() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    let wamid = simulate(&h, TO_WA, "Hallo").await;
    let r = body_with(&rx, "messages", Some(&wamid));
    assert_like_example(&r.json(), &examples::inbound_with_phone(), &[]);
    let v = value_of(&r);
    assert_eq!(
        v["contacts"][0]["user_id"], v["messages"][0]["from_user_id"],
        "one id"
    );
    assert!(
        v["contacts"][0]["user_id"]
            .as_str()
            .unwrap()
            .starts_with("DE."),
        "the country of +49: {v}"
    );
    golden("bsuid_inbound_with_phone", &r.body);
    h.shutdown().await;
}

#[tokio::test]
async fn golden_bsuid_withheld_phone_inbound_reply_and_delivered() {
    let rx = Receiver::start().await;
    let h = Harness::start(enrolled(&rx.url)).await;
    let (s, u) = h
        .control(
            Method::PUT,
            &format!("/users/{TO_WA}/username"),
            &json!({ "username": "Anna.K" }),
        )
        .await;
    assert_eq!(s, 200, "{u}");
    assert_eq!(u["username"], "anna.k", "stored in lower case");
    let wamid = simulate(&h, TO_WA, "Is it in stock?").await;
    let r = body_with(&rx, "messages", Some(&wamid));
    assert_like_example(&r.json(), &examples::inbound_withheld_parent(), &[]);
    let raw = String::from_utf8(r.body.to_vec()).unwrap();
    assert!(
        !raw.contains(TO_WA),
        "the phone number is nowhere in the body: {raw}"
    );
    golden("bsuid_inbound_withheld", &r.body);
    let bsuid = value_of(&r)["contacts"][0]["user_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(u["user_ids"]["default"], bsuid.as_str(), "{u}");
    // The reply by BSUID, as pywa sends it (Cloud API, v26.0).
    let resp = h
        .http
        .post(format!("{}/v26.0/{PNID}/messages", h.base))
        .bearer_auth(TOKEN)
        .json(&json!({ "messaging_product": "whatsapp", "recipient_type": "individual", "recipient": bsuid,
            "type": "text", "text": { "body": "Yes, it is in stock." } }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = resp.bytes().await.unwrap().to_vec();
    let answer: Value = serde_json::from_slice(&resp).unwrap();
    // `message_status` is documented for the Marketing Messages API and sent on every send.
    assert_like_example(
        &answer,
        &examples::send_response_to_bsuid(),
        &[".messages[0].message_status"],
    );
    assert_eq!(answer["contacts"][0]["input"], bsuid.as_str());
    assert_eq!(answer["contacts"][0]["user_id"], bsuid.as_str());
    golden("bsuid_send_response", &resp);
    let reply = wamid_of(&resp);
    h.advance(10.0).await;
    h.wait(&format!("wamid={reply}&status=read"), 1).await;
    let delivered = status_body(&rx, &reply, "delivered");
    assert_like_example(
        &delivered.json(),
        &examples::delivered_to_bsuid_withheld_parent(),
        &[],
    );
    golden("bsuid_delivered_withheld", &delivered.body);
    // `sent` never carries the username.
    let sent = value_of(&status_body(&rx, &reply, "sent"));
    assert!(
        sent["contacts"][0]["profile"].get("username").is_none(),
        "{sent}"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn golden_bsuid_sent_by_phone() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    let resp = h
        .http
        .post(format!("{}/v26.0/{PNID}/messages", h.base))
        .bearer_auth(TOKEN)
        .json(
            &json!({ "messaging_product": "whatsapp", "to": TO, "type": "template",
            "template": { "name": "hello_world", "language": { "code": "en_US" } } }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(
        answer["contacts"],
        json!([{ "input": TO, "wa_id": TO_WA }]),
        "a send by phone answers wa_id, never user_id"
    );
    let wamid = answer["messages"][0]["id"].as_str().unwrap().to_string();
    h.advance(10.0).await;
    h.wait(&format!("wamid={wamid}&status=read"), 1).await;
    let sent = status_body(&rx, &wamid, "sent");
    let v = value_of(&sent);
    assert_like_example(
        &json!({ "contacts": v["contacts"], "statuses": v["statuses"] }),
        &examples::sent_by_phone(),
        &[],
    );
    // The shape a gateway reads typed, without a JSON tree.
    assert!(mynah_wire::webhook::statuses_only(&sent.body).is_some());
    golden("bsuid_sent_by_phone", &sent.body);
    h.shutdown().await;
}

#[tokio::test]
async fn golden_failed_by_phone_is_like_production() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    let (s, b) = h
        .control(
            Method::PUT,
            &format!("/users/{TO_WA}"),
            &json!({ "on_whatsapp": false }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (_, resp) = send_raw(&h, &text(TO, "Anyone there?")).await;
    let wamid = wamid_of(&resp);
    h.advance(10.0).await;
    h.wait(&format!("wamid={wamid}&status=failed"), 1).await;
    let failed = status_body(&rx, &wamid, "failed");
    let v = value_of(&failed);
    assert_like_example(
        &json!({ "contacts": v["contacts"], "statuses": v["statuses"] }),
        &examples::failed_by_phone(),
        &[],
    );
    assert!(mynah_wire::webhook::statuses_only(&failed.body).is_some());
    h.shutdown().await;
}

#[tokio::test]
async fn golden_number_change_user_changed_user_id_and_user_id_update() {
    let rx = Receiver::start().await;
    let h = Harness::start(enrolled(&rx.url)).await;
    let first = simulate(&h, TO_WA, "Hallo").await;
    let old = value_of(&body_with(&rx, "messages", Some(&first)))["contacts"][0].clone();
    let (s, u) = h
        .control(
            Method::POST,
            &format!("/users/{TO_WA}/number"),
            &json!({ "new_wa_id": "+49 151 98765432" }),
        )
        .await;
    assert_eq!(s, 200, "{u}");
    assert_eq!(u["wa_id"], "4915198765432");
    let new_id = u["user_ids"]["default"].as_str().unwrap().to_string();
    assert_ne!(old["user_id"], new_id.as_str(), "a new number, a new BSUID");
    h.wait("field=user_id_update", 1).await;
    h.wait("message_type=system", 1).await;
    let update = body_with(&rx, "user_id_update", None);
    assert_like_example(&update.json(), &examples::user_id_update(), &[]);
    let item = &value_of(&update)["user_id_update"][0];
    assert_eq!(item["user_id"]["previous"], old["user_id"]);
    assert_eq!(item["user_id"]["current"], new_id.as_str());
    assert_eq!(item["parent_user_id"]["previous"], old["parent_user_id"]);
    assert_eq!(
        item["parent_user_id"]["current"],
        u["parent_user_ids"]["default"]
    );
    golden("user_id_update", &update.body);
    let system = rx
        .received()
        .into_iter()
        .find(|r| value_of(r)["messages"][0]["type"] == "system")
        .unwrap();
    let v = value_of(&system);
    assert!(v.get("contacts").is_none(), "no contacts: {v}");
    // The parent id is there because the portfolio is enrolled.
    assert_like_example(
        &json!({ "messages": v["messages"] }),
        &examples::user_changed_user_id(),
        &[".messages[0].system.parent_user_id"],
    );
    assert_eq!(
        v["messages"][0]["system"]["body"],
        format!(
            "User Anna K changed from {} to {new_id}",
            old["user_id"].as_str().unwrap()
        )
    );
    assert_eq!(v["messages"][0]["from"], TO_WA, "the old phone");
    golden("user_changed_user_id", &system.body);
    h.shutdown().await;
}
