//! A first end-to-end pass: send over real HTTP, see the lifecycle at a real receiver.

mod common;
use common::*;

#[tokio::test]
async fn text_message_lifecycle_reaches_the_receiver_signed() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    let (status, body) = h.send_360(text("+49 151 12345678", "hi")).await;
    assert_eq!(status, 200, "{body}");
    let wamid = body["messages"][0]["id"].as_str().unwrap().to_string();
    h.advance(10.0).await;
    h.wait(&format!("wamid={wamid}&status=read"), 1).await;
    assert_eq!(
        rx.statuses(),
        vec![
            (wamid.clone(), "sent".into()),
            (wamid.clone(), "delivered".into()),
            (wamid, "read".into())
        ]
    );
    for r in rx.received() {
        assert!(signature_ok(&r, SECRET));
    }
    h.shutdown().await;
}

/// On the system clock the driver fires the lifecycle by itself (latencies of a few
/// milliseconds here; the wait is a long-poll, not a sleep).
#[tokio::test]
async fn the_system_clock_drives_the_lifecycle() {
    use mynah_sandbox::config::{ClockMode, Latency};
    let rx = Receiver::start().await;
    let mut cfg = config(&rx.url);
    cfg.clock.mode = ClockMode::System;
    cfg.latency.sent = Latency::fixed(1);
    cfg.latency.delivered = Latency {
        min_ms: 1,
        max_ms: 3,
    };
    cfg.latency.read = Latency {
        min_ms: 1,
        max_ms: 3,
    };
    let h = Harness::start(cfg).await;
    let mut wamids = Vec::new();
    for i in 0..20 {
        let (status, body) = h
            .send_360(text(&format!("+49 151 000000{i:02}"), "hi"))
            .await;
        assert_eq!(status, 200, "{body}");
        wamids.push(body["messages"][0]["id"].as_str().unwrap().to_string());
    }
    h.wait("status=read", 20).await;
    for w in wamids {
        let got: Vec<String> = rx
            .statuses()
            .into_iter()
            .filter(|(id, _)| *id == w)
            .map(|(_, s)| s)
            .collect();
        assert_eq!(got, vec!["sent", "delivered", "read"], "{w}");
    }
    h.shutdown().await;
}
