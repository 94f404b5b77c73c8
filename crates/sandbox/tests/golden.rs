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
