//! What the sandbox logs about webhook receivers and throttled clients: once per episode, not
//! once per attempt or refused request.

mod common;
use common::*;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// Log lines written while the test's subscriber is the default (the test runs on one thread, so
/// every task of the sandbox logs through it).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let me = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || me.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn lines(&self, needle: &str) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_string)
            .collect()
    }
}

#[tokio::test]
async fn a_failing_receiver_is_logged_once_per_episode() {
    let logs = Captured::default();
    let _guard = logs.install();
    let rx = Receiver::start().await;
    rx.fail_next.store(3, Ordering::SeqCst);
    let h = Harness::start(config(&rx.url)).await;
    let (s, b) = h.send_360(text("4915100000001", "hello")).await;
    assert_eq!(s, 200, "{b}");
    let w = b["messages"][0]["id"].as_str().unwrap().to_string();
    h.advance(10.0).await;
    h.wait(&format!("wamid={w}&status=read"), 1).await;
    h.drain().await;
    let failed = logs.lines("webhook delivery failed");
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert!(failed[0].contains("WARN"), "{}", failed[0]);
    assert!(failed[0].contains(&rx.url), "{}", failed[0]);
    assert!(failed[0].contains("HTTP 500"), "{}", failed[0]);
    assert!(failed[0].contains("retrying in 5 s"), "{}", failed[0]);
    let recovered = logs.lines("webhook receiver recovered");
    assert_eq!(recovered.len(), 1, "{recovered:#?}");
    assert!(recovered[0].contains("INFO"));
    assert!(
        recovered[0].contains("failed_attempts=3"),
        "{}",
        recovered[0]
    );
    // A second episode is logged again.
    rx.fail_next.store(1, Ordering::SeqCst);
    let (s, _) = h.send_360(text("4915100000002", "again")).await;
    assert_eq!(s, 200);
    h.advance(60.0).await;
    h.drain().await;
    assert_eq!(logs.lines("webhook delivery failed").len(), 2);
    assert_eq!(logs.lines("webhook receiver recovered").len(), 2);
    h.shutdown().await;
}

#[tokio::test]
async fn a_delivery_dropped_after_the_retry_window_is_logged() {
    let logs = Captured::default();
    let _guard = logs.install();
    let rx = Receiver::start().await;
    rx.fail_next.store(usize::MAX, Ordering::SeqCst);
    let mut cfg = config(&rx.url);
    cfg.webhooks.retry_window_ms = 20_000;
    let h = Harness::start(cfg).await;
    let (s, b) = h.send_360(text("4915100000001", "hello")).await;
    assert_eq!(s, 200, "{b}");
    let w = b["messages"][0]["id"].as_str().unwrap().to_string();
    h.advance(120.0).await;
    h.wait(&format!("wamid={w}&status=read&delivered=false"), 1)
        .await;
    h.drain().await;
    assert_eq!(logs.lines("webhook delivery failed").len(), 1);
    let dropped = logs.lines("webhook delivery dropped after the retry window");
    assert_eq!(dropped.len(), 3, "one per delivery: {dropped:#?}");
    assert!(dropped.iter().all(|l| l.contains("INFO")));
    h.shutdown().await;
}

#[tokio::test]
async fn a_throttled_credential_is_logged_once_per_episode() {
    let logs = Captured::default();
    let _guard = logs.install();
    let rx = Receiver::start().await;
    let mut cfg = config(&rx.url);
    cfg.limits.messages_burst = Some(2);
    cfg.limits.messages_per_second = Some(1);
    let h = Harness::start(cfg).await;
    let mut refused = 0;
    for i in 0..6 {
        let (s, _) = h.send_360(text("4915100000001", &format!("{i}"))).await;
        if s == 429 {
            refused += 1;
        }
    }
    assert_eq!(refused, 4);
    assert!(logs.lines("throttled").is_empty(), "logged when it ends");
    h.advance(5.0).await;
    let (s, _) = h.send_360(text("4915100000001", "later")).await;
    assert_eq!(s, 200);
    let lines = logs.lines("throttled");
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(lines[0].contains("INFO"));
    assert!(
        lines[0].contains("4 requests refused in 0.0 s"),
        "{}",
        lines[0]
    );
    assert!(
        !lines[0].contains(KEY),
        "the credential is not logged whole: {}",
        lines[0]
    );
    h.shutdown().await;
}
