//! Webhook receivers cannot break deliveries: custom headers that frame the request or carry the
//! signature, invalid header names and values, and URLs that are not `http(s)://` with a host are
//! refused where they are configured (360dialog, Cloud, the control API, the config file); an
//! `https://` URL is accepted with a clear warning (the sandbox does not speak TLS); a receiver's
//! answer is read up to 64 KiB and within `webhooks.timeout_ms`, whatever it sends.

mod common;
use common::*;

use mynah_sandbox::Sandbox;
use reqwest::Method;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TO: &str = "+49 151 23456789";

async fn post_360_raw(
    h: &Harness,
    path: &str,
    body: &Value,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let r = h
        .http
        .post(format!("{}{path}", h.base))
        .header("D360-API-KEY", KEY)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.json().await.unwrap_or(Value::Null))
}

fn details(b: &Value) -> String {
    b["error"]["error_data"]["details"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn reserved_and_invalid_headers_and_urls_are_refused_at_configuration() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    h.set_webhook(&rx.url).await;

    // 360dialog: POST /v1/configs/webhook.
    for (name, value) in [
        ("Content-Length", "5"),
        ("host", "evil.example"),
        ("X-Hub-Signature-256", "sha256=00"),
        ("x-hub-signature", "sha1=00"),
        ("Transfer-Encoding", "chunked"),
        ("CONNECTION", "close"),
        ("content-type", "text/plain"),
        ("bad header", "x"),
        ("x-ok-name", "line\r\nbreak"),
        ("", "empty name"),
    ] {
        let body = json!({ "url": rx.url, "headers": { name: value } });
        let (s, _, b) = post_360_raw(&h, "/v1/configs/webhook", &body).await;
        assert_eq!(s, 400, "{name:?}: {b}");
        assert_eq!(b["error"]["code"], 100, "{name:?}: {b}");
        assert!(
            details(&b).contains(&format!("{name:?}")),
            "{name:?}: {}",
            details(&b)
        );
    }
    for url in [
        "ftp://x.example/hook",
        "http://",
        "not a url",
        "http:///path",
        "//host/x",
        "mailto:a@b",
    ] {
        let (s, _, b) = post_360_raw(&h, "/v1/configs/webhook", &json!({ "url": url })).await;
        assert_eq!(s, 400, "{url:?}: {b}");
        assert_eq!(b["error"]["code"], 100, "{url:?}: {b}");
        assert!(
            details(&b).contains("Param url"),
            "{url:?}: {}",
            details(&b)
        );
    }
    let (s, _, b) = post_360_raw(
        &h,
        "/v1/configs/webhook",
        &json!({ "url": rx.url, "headers": { "X-Tenant": "acme" } }),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let r = h
        .http
        .get(format!("{}/v1/configs/webhook", h.base))
        .header("D360-API-KEY", KEY)
        .send()
        .await
        .unwrap();
    let cfg: Value = r.json().await.unwrap();
    assert_eq!(
        cfg,
        json!({ "url": rx.url, "headers": { "X-Tenant": "acme" } }),
        "only the valid configuration took effect"
    );

    // Cloud: webhook_configuration.override_callback_uri.
    for url in ["ftp://x.example/hook", "http://"] {
        let body = json!({ "webhook_configuration": { "override_callback_uri": url } });
        let (s, b) = h.post_cloud(&format!("/v23.0/{PNID}"), &body).await;
        assert_eq!(s, 400, "{url}: {b}");
        assert_eq!(b["error"]["code"], 100, "{url}: {b}");
        assert!(
            details(&b).contains("override_callback_uri"),
            "{}",
            details(&b)
        );
    }

    // The control API: POST /_mynah/numbers.
    let number = |url: &str, headers: Value| {
        json!({ "phone_number_id": "109876543210987", "display_phone_number": "15550001234",
                "api_key": "key-b", "webhook_url": url, "webhook_headers": headers })
    };
    for (body, named) in [
        (number("ftp://x.example/hook", json!({})), "webhook_url"),
        (number(&rx.url, json!({ "Host": "x" })), "\"Host\""),
        (
            number(&rx.url, json!({ "X-Hub-Signature-256": "x" })),
            "\"X-Hub-Signature-256\"",
        ),
        (number(&rx.url, json!({ "x-a": "\u{7f}" })), "\"x-a\""),
    ] {
        let (s, b) = h.control(Method::POST, "/numbers", &body).await;
        assert_eq!(s, 400, "{body}: {b}");
        assert_eq!(b["error"]["code"], 4000, "{b}");
        assert!(details(&b).contains(named), "{named}: {}", details(&b));
    }

    // A valid configuration still delivers, with its custom header and the real signature.
    let wamid = h.send_text(TO, "after the refusals").await;
    h.advance(1.0).await;
    h.wait(&format!("wamid={wamid}&status=sent"), 1).await;
    let got = rx.received();
    let last = got.last().unwrap();
    assert_eq!(last.headers.get("x-tenant").unwrap(), "acme");
    assert!(signature_ok(last, SECRET));
    h.shutdown().await;
}

#[tokio::test]
async fn https_urls_are_accepted_with_a_warning_and_fail_at_delivery_as_before() {
    let h = Harness::start(config("")).await;
    let url = "https://hooks.example.com/whatsapp";
    let (s, headers, b) = post_360_raw(&h, "/v1/configs/webhook", &json!({ "url": url })).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["url"], url, "the body keeps the platform's shape");
    let warning = headers
        .get("x-mynah-warning")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        warning.contains("TLS") && warning.contains("http://"),
        "{warning:?}"
    );

    let (s, b) = h
        .control(
            Method::POST,
            "/numbers",
            &json!({ "phone_number_id": "109876543210987", "display_phone_number": "15550001234",
                     "api_key": "key-b", "webhook_url": url }),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    assert!(
        b["warnings"][0].as_str().unwrap_or("").contains("TLS"),
        "{b}"
    );

    let wamid = h.send_text(TO, "to an https receiver").await;
    h.advance(1.0).await;
    let (s, b) = h
        .control_get(&format!(
            "/webhooks/wait?wamid={wamid}&delivered=false&timeout_ms=10000"
        ))
        .await;
    assert_eq!(s, 200, "{b}");
    let error = b["attempts"][0]["error"].as_str().unwrap_or("");
    assert!(error.contains("TLS"), "{error}");
    h.shutdown().await;
}

#[tokio::test]
async fn config_files_with_bad_receivers_do_not_start() {
    for (toml, named) in [
        (
            "[[accounts]]\n[[accounts.numbers]]\nwebhook_url = \"http://127.0.0.1:9/x\"\nwebhook_headers = { \"Content-Length\" = \"0\" }",
            "\"Content-Length\"",
        ),
        (
            "[[accounts]]\n[[accounts.numbers]]\nwebhook_url = \"gopher://x\"",
            "accounts[0].numbers[0].webhook_url",
        ),
        (
            "[webhooks]\nsubscribers = [\"ftp://x\"]",
            "webhooks.subscribers[0]",
        ),
        (
            "[webhooks]\ndefault_url = \"http://\"",
            "webhooks.default_url",
        ),
    ] {
        let cfg = mynah_sandbox::config::Config::from_toml(toml).unwrap();
        let err = Sandbox::open(cfg)
            .await
            .err()
            .unwrap_or_else(|| panic!("{toml} started"));
        assert!(err.contains(named), "{toml}: {err}");
    }
}

/// How a raw receiver answers.
#[derive(Clone, Copy)]
enum Answer {
    /// 200 with a `Content-Length` body of this size, then keep the connection.
    Sized(usize),
    /// 200, then a chunked body that never ends.
    Endless,
    /// 200, then one byte every 50 ms, never ending.
    Trickle,
}

/// A receiver written on a raw socket; counts its connections and requests.
struct RawReceiver {
    url: String,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
}

async fn raw_receiver(answer: Answer) -> RawReceiver {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let (c, r) = (connections.clone(), requests.clone());
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            let r = r.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    // One request: headers, then Content-Length bytes.
                    let mut tmp = [0u8; 8192];
                    let end = loop {
                        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break p + 4;
                        }
                        match sock.read(&mut tmp).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&tmp[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buf.len() < end + len {
                        match sock.read(&mut tmp).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&tmp[..n]),
                        }
                    }
                    buf.drain(..end + len);
                    r.fetch_add(1, Ordering::SeqCst);
                    match answer {
                        Answer::Sized(n) => {
                            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n");
                            if sock.write_all(head.as_bytes()).await.is_err() {
                                return;
                            }
                            let block = vec![b'x'; 64 * 1024];
                            let mut left = n;
                            while left > 0 {
                                let k = left.min(block.len());
                                if sock.write_all(&block[..k]).await.is_err() {
                                    return;
                                }
                                left -= k;
                            }
                        }
                        Answer::Endless | Answer::Trickle => {
                            let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
                            if sock.write_all(head.as_bytes()).await.is_err() {
                                return;
                            }
                            let chunk: Vec<u8> = match answer {
                                Answer::Trickle => b"1\r\nx\r\n".to_vec(),
                                _ => {
                                    let mut c = b"4000\r\n".to_vec();
                                    c.extend_from_slice(&[b'x'; 0x4000]);
                                    c.extend_from_slice(b"\r\n");
                                    c
                                }
                            };
                            loop {
                                if sock.write_all(&chunk).await.is_err() {
                                    return;
                                }
                                if matches!(answer, Answer::Trickle) {
                                    tokio::time::sleep(Duration::from_millis(50)).await;
                                }
                            }
                        }
                    }
                }
            });
        }
    });
    RawReceiver {
        url,
        connections,
        requests,
    }
}

/// The test configuration with one delivery in flight at a time and users who do not read, so
/// connections are opened one after another.
fn one_at_a_time(url: &str) -> mynah_sandbox::config::Config {
    let mut cfg = config(url);
    cfg.webhooks.max_in_flight = 1;
    cfg.users.default.reads = false;
    cfg
}

/// An answer body larger than 64 KiB is not read to its end: the delivery counts (the status
/// was 200), and the connection is closed instead of kept.
#[tokio::test]
async fn oversized_answers_are_dropped_with_their_connection() {
    let small = raw_receiver(Answer::Sized(100)).await;
    let h = Harness::start(one_at_a_time(&small.url)).await;
    for i in 0..2 {
        let wamid = h.send_text(TO, &format!("small {i}")).await;
        h.advance(1.0).await;
        h.wait(&format!("wamid={wamid}&status=sent"), 1).await;
    }
    assert_eq!(
        small.connections.load(Ordering::SeqCst),
        1,
        "a small answer keeps the connection"
    );
    h.shutdown().await;

    let big = raw_receiver(Answer::Sized(4 * 1024 * 1024)).await;
    let h = Harness::start(one_at_a_time(&big.url)).await;
    for i in 0..2 {
        let wamid = h.send_text(TO, &format!("big {i}")).await;
        h.advance(1.0).await;
        let got = h.wait(&format!("wamid={wamid}&status=sent"), 1).await;
        assert_eq!(got[0]["status"], 200);
    }
    h.drain().await;
    let requests = big.requests.load(Ordering::SeqCst);
    assert!(requests >= 2);
    assert_eq!(
        big.connections.load(Ordering::SeqCst),
        requests,
        "each oversized answer ends its connection"
    );
    h.shutdown().await;
}

/// A receiver that answers 200 and then streams forever holds nothing: the endless body is cut
/// at 64 KiB, a trickling one at `webhooks.timeout_ms`.
#[tokio::test]
async fn endless_answers_do_not_hold_a_delivery() {
    let endless = raw_receiver(Answer::Endless).await;
    let mut cfg = config(&endless.url);
    cfg.webhooks.timeout_ms = 60_000;
    let h = Harness::start(cfg).await;
    let started = Instant::now();
    let wamid = h.send_text(TO, "endless").await;
    h.advance(1.0).await;
    let got = h.wait(&format!("wamid={wamid}&status=sent"), 1).await;
    assert_eq!(got[0]["outcome"], "delivered");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    h.shutdown().await;

    let trickle = raw_receiver(Answer::Trickle).await;
    let mut cfg = one_at_a_time(&trickle.url);
    cfg.webhooks.timeout_ms = 400;
    let h = Harness::start(cfg).await;
    let wamid = h.send_text(TO, "trickle").await;
    h.advance(1.0).await;
    let got = h.wait(&format!("wamid={wamid}&status=sent"), 1).await;
    assert_eq!(got[0]["status"], 200);
    let latency = got[0]["latency_ms"].as_f64().unwrap();
    assert!(latency < 5_000.0, "held {latency} ms");
    // The next event goes out on a fresh connection.
    let wamid = h.send_text(TO, "trickle again").await;
    h.advance(1.0).await;
    h.wait(&format!("wamid={wamid}&status=sent"), 1).await;
    h.drain().await;
    let requests = trickle.requests.load(Ordering::SeqCst);
    assert!(requests >= 2);
    assert_eq!(
        trickle.connections.load(Ordering::SeqCst),
        requests,
        "a cut answer ends its connection"
    );
    h.shutdown().await;
}
