//! The upstream client end to end: a real sandbox on a loopback port (manual clock, in memory),
//! both dialects, its errors classified through the default table; and tiny hand-made servers
//! for what a sandbox does not do (refuse, hang, hang up, answer garbage, 360dialog's plain-text
//! endpoint rate limit). Nothing sleeps.

use mynah_gateway::classify::{Action, Classifier, Decision};
use mynah_gateway::upstream::{Dialect, Upstream, UpstreamConfig, UpstreamError};
use mynah_sandbox::Sandbox;
use mynah_sandbox::config::{
    ClockMode, Config, DEV_API_KEY, DEV_PHONE_NUMBER_ID, DEV_TOKEN, DEV_WABA_ID, LimitProfile,
    RulesConfig,
};
use mynah_wire::reply::ListedStatus;
use mynah_wire::response::MessageStatus;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// A sandbox on a real port.
struct Harness {
    base: String,
    http: reqwest::Client,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
    _sandbox: Arc<Sandbox>,
}

fn config() -> Config {
    let mut cfg = Config {
        seed: 7,
        ..Config::default()
    };
    cfg.clock.mode = ClockMode::Manual;
    cfg.rules = RulesConfig::off();
    cfg
}

impl Harness {
    async fn start(cfg: Config) -> Harness {
        let sandbox = Sandbox::open(cfg).await.expect("sandbox opens");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        sandbox.set_base_url(&base);
        let stop = CancellationToken::new();
        let (sb, s) = (sandbox.clone(), stop.clone());
        let task = tokio::spawn(async move {
            mynah_sandbox::http::run(listener, sb, s).await.unwrap();
        });
        Harness {
            base,
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            stop,
            task: Some(task),
            _sandbox: sandbox,
        }
    }

    async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(t) = self.task.take() {
            t.await.unwrap();
        }
    }

    fn d360(&self) -> Upstream {
        let mut cfg = UpstreamConfig::d360(&self.base, DEV_API_KEY);
        cfg.system_proxy = false;
        Upstream::new(cfg).unwrap()
    }

    fn cloud(&self) -> Upstream {
        let mut cfg = UpstreamConfig::cloud(&self.base, DEV_TOKEN, DEV_PHONE_NUMBER_ID);
        cfg.waba_id = Some(DEV_WABA_ID.to_string());
        cfg.system_proxy = false;
        Upstream::new(cfg).unwrap()
    }

    async fn add_fault(&self, rule: Value) {
        let r = self
            .http
            .post(format!("{}/_mynah/faults", self.base))
            .json(&rule)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap());
    }

    async fn post_360(&self, path: &str, body: &Value) -> u16 {
        self.http
            .post(format!("{}{path}", self.base))
            .header("D360-API-KEY", DEV_API_KEY)
            .json(body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

fn text(to: &str, body: &str) -> Vec<u8> {
    serde_json::to_vec(
        &json!({ "messaging_product": "whatsapp", "recipient_type": "individual",
        "to": to, "type": "text", "text": { "body": body } }),
    )
    .unwrap()
}

fn template(to: &str, name: &str) -> Vec<u8> {
    serde_json::to_vec(
        &json!({ "messaging_product": "whatsapp", "to": to, "type": "template",
        "template": { "name": name, "language": { "code": "en_US" } } }),
    )
    .unwrap()
}

fn rejected(e: &UpstreamError) -> (u16, Option<i64>, Option<&str>) {
    match e {
        UpstreamError::Rejected {
            http_status,
            code,
            details,
            ..
        } => (*http_status, *code, details.as_deref()),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn sends_in_both_dialects_and_reads_the_errors() {
    let h = Harness::start(config()).await;
    let classifier = Classifier::default();
    for up in [h.d360(), h.cloud()] {
        let ok = up
            .send(&text("+49 151 2345 6789", "Hello"))
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", up.dialect()));
        assert!(ok.wamid.starts_with("wamid."), "{ok:?}");
        assert_eq!(ok.wa_id.as_deref(), Some("4915123456789"));
        assert!(matches!(
            ok.message_status,
            None | Some(MessageStatus::Accepted)
        ));

        // A bad body: code 100 with details naming the problem.
        let bad = serde_json::to_vec(&json!({ "messaging_product": "sms", "to": "4915123456789",
            "type": "text", "text": { "body": "x" } }))
        .unwrap();
        let e = up.send(&bad).await.unwrap_err();
        let (status, code, details) = rejected(&e);
        assert_eq!((status, code), (400, Some(100)), "{e}");
        assert!(
            details.is_some_and(|d| d.contains("messaging_product")),
            "{e}"
        );
        assert!(!e.outcome_unknown());
        assert_eq!(classifier.classify(&e).action, Action::Fail);

        // A template that does not exist: 132001.
        let e = up
            .send(&template("4915123456789", "no_such_template"))
            .await
            .unwrap_err();
        assert_eq!(rejected(&e).1, Some(132001), "{e}");
        assert_eq!(classifier.classify(&e).action, Action::Fail);

        // A real one goes.
        let ok = up
            .send(&template("4915123456789", "hello_world"))
            .await
            .unwrap();
        assert!(ok.wamid.starts_with("wamid."));
    }

    // Wrong credentials: the whole number stops.
    let mut cfg = UpstreamConfig::d360(&h.base, "wrong-key");
    cfg.system_proxy = false;
    let e = Upstream::new(cfg)
        .unwrap()
        .send(&text("4915123456789", "x"))
        .await
        .unwrap_err();
    assert_eq!(rejected(&e).0, 401, "{e}");
    assert_eq!(classifier.classify(&e).action, Action::PauseNumber);
    h.shutdown().await;
}

#[tokio::test]
async fn capacity_limit_is_a_throttle_with_retry_after() {
    let mut cfg = config();
    cfg.limits.messages_per_second = Some(1);
    cfg.limits.messages_burst = Some(2);
    let h = Harness::start(cfg).await;
    let up = h.d360();
    up.send(&text("4915123456789", "1")).await.unwrap();
    up.send(&text("4915123456789", "2")).await.unwrap();
    let e = up.send(&text("4915123456789", "3")).await.unwrap_err();
    let (status, code, _) = rejected(&e);
    assert_eq!((status, code), (429, Some(130429)), "{e}");
    let retry_after = e.retry_after().expect("Retry-After");
    assert!((1..=1_000).contains(&retry_after), "{retry_after}");
    let rule = Classifier::default().classify(&e);
    assert_eq!(rule.action, Action::Throttle);
    let mut rng = StdRng::seed_from_u64(1);
    assert_eq!(
        rule.next_delay(1, &mut rng, 10_000, None),
        Decision::Throttle {
            until: 10_000 + retry_after
        }
    );
    // The Cloud dialect's token has its own bucket.
    h.cloud().send(&text("4915123456789", "4")).await.unwrap();
    h.shutdown().await;
}

#[tokio::test]
async fn magic_numbers_and_faults_classify_through_the_default_table() {
    let h = Harness::start(config()).await;
    let classifier = Classifier::default();
    let mut rng = StdRng::seed_from_u64(9);

    // The magic pair-rate-limited recipient answers 131056 synchronously.
    let e = h
        .d360()
        .send(&text("+99900000131056", "hi"))
        .await
        .unwrap_err();
    assert_eq!(rejected(&e).1, Some(131056), "{e}");
    let rule = classifier.classify(&e);
    assert_eq!(rule.action, Action::PairBackoff);
    assert_eq!(
        rule.next_delay(2, &mut rng, 0, None),
        Decision::PairBackoff { until: 4_000 }
    );

    // Injected refusals, one recipient each.
    let cases: &[(u32, Option<u16>, Action)] = &[
        (130429, Some(400), Action::Throttle),
        (4, None, Action::Throttle),
        (80007, None, Action::Throttle),
        (131048, None, Action::Throttle),
        (2, None, Action::Throttle), // 503: overloaded
        (2, Some(500), Action::Retry),
        (131057, None, Action::RetryAfter),
        (131000, None, Action::Retry),
        (131016, None, Action::Retry),
        (131049, None, Action::MarketingBackoff),
        (131050, None, Action::WithdrawConsent),
        (132015, None, Action::PauseTemplate),
        (132016, None, Action::DisableTemplate),
        (131047, None, Action::WindowClosed),
        (130472, None, Action::Holdout),
        (131026, None, Action::Fail),
        (131051, None, Action::Fail),
        (132000, None, Action::Fail),
        (132005, None, Action::Fail),
        (132012, None, Action::Fail),
        (131008, None, Action::Fail),
        (131009, None, Action::Fail),
        (368, None, Action::PauseNumber),
        (131031, None, Action::PauseNumber),
        (130497, None, Action::PauseNumber),
        (2388019, None, Action::Fail), // no row: the wire table's retry class (fix)
        (133016, None, Action::Throttle), // no row, HTTP 429: the status row
    ];
    for (i, (code, http, want)) in cases.iter().enumerate() {
        let to = format!("49151000{:05}", i);
        let mut action = json!({ "code": code, "details": format!("injected {code}") });
        if let Some(s) = http {
            action["http_status"] = json!(s);
        }
        h.add_fault(json!({ "match": { "to": to }, "action": action, "times": 1 }))
            .await;
        let up = if i % 2 == 0 { h.d360() } else { h.cloud() };
        let e = up.send(&text(&to, "hi")).await.unwrap_err();
        let (status, got, details) = rejected(&e);
        assert_eq!(got, Some(i64::from(*code)), "{e}");
        if let Some(s) = http {
            assert_eq!(status, *s);
        }
        assert_eq!(details, Some(format!("injected {code}").as_str()));
        assert_eq!(classifier.classify(&e).action, *want, "code {code}: {e}");
        // Once only: the next send to the same recipient goes.
        up.send(&text(&to, "again")).await.unwrap();
    }
    h.shutdown().await;
}

#[tokio::test]
async fn lists_templates_in_both_dialects_across_pages() {
    let mut cfg = config();
    cfg.limits.profile = LimitProfile::Unlimited;
    let h = Harness::start(cfg).await;
    let seeded = h.d360().list_templates().await.unwrap();
    let hello = seeded
        .iter()
        .find(|t| t.name == "hello_world")
        .expect("hello_world is seeded");
    assert_eq!(hello.language, "en_US");
    assert_eq!(hello.status, ListedStatus::Approved);
    assert!(hello.components.as_array().is_some_and(|c| !c.is_empty()));
    let cloud = h.cloud().list_templates().await.unwrap();
    assert_eq!(cloud.len(), seeded.len());
    assert!(cloud.iter().all(|t| t.id.is_some()));

    // More than one Cloud page (100 per page).
    for i in 0..110 {
        let body = json!({ "name": format!("bulk_{i:03}"), "language": "en_US", "category": "UTILITY",
            "components": [{ "type": "BODY", "text": format!("Your order number {i} has shipped today.") }] });
        assert_eq!(h.post_360("/v1/configs/templates", &body).await, 200);
    }
    let cloud = h.cloud().list_templates().await.unwrap();
    let d360 = h.d360().list_templates().await.unwrap();
    assert_eq!(cloud.len(), seeded.len() + 110);
    assert_eq!(d360.len(), cloud.len());
    let mut names: Vec<&str> = cloud.iter().map(|t| t.name.as_str()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), cloud.len(), "no template twice");
    assert!(cloud.iter().any(|t| t.name == "bulk_109"));

    // Cloud without a waba_id cannot list.
    let mut cfg = UpstreamConfig::cloud(&h.base, DEV_TOKEN, DEV_PHONE_NUMBER_ID);
    cfg.system_proxy = false;
    let e = Upstream::new(cfg)
        .unwrap()
        .list_templates()
        .await
        .unwrap_err();
    assert!(matches!(e, UpstreamError::Config(_)), "{e}");
    h.shutdown().await;
}

/// A server that answers every connection with `answer` after reading the request (`None`:
/// hang up without answering; `Some(b"")`: never answer).
async fn canned(answer: Option<&'static [u8]>) -> (String, CancellationToken) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = tokio::select! {
                _ = s.cancelled() => return,
                r = listener.accept() => r.unwrap(),
            };
            let s = s.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65_536];
                let _ = sock.read(&mut buf).await;
                match answer {
                    None => drop(sock),
                    Some(b"") => s.cancelled().await,
                    Some(bytes) => {
                        let _ = sock.write_all(bytes).await;
                        let _ = sock.shutdown().await;
                    }
                }
            });
        }
    });
    (base, stop)
}

fn client(base: &str, timeout_ms: u64) -> Upstream {
    let mut cfg = UpstreamConfig::d360(base, "k");
    cfg.timeout_ms = timeout_ms;
    cfg.system_proxy = false;
    Upstream::new(cfg).unwrap()
}

#[tokio::test]
async fn transport_failures_say_what_is_known() {
    let classifier = Classifier::default();

    // A closed port: nothing was sent.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let e = client(&base, 2_000)
        .send(&text("1", "x"))
        .await
        .unwrap_err();
    assert!(matches!(e, UpstreamError::Connect(_)), "{e:?}");
    assert!(!e.outcome_unknown());
    assert_eq!(classifier.classify(&e).action, Action::Retry);

    // Accepts and never answers: a timeout, outcome unknown.
    let (base, stop) = canned(Some(b"")).await;
    let e = client(&base, 200).send(&text("1", "x")).await.unwrap_err();
    assert_eq!(e, UpstreamError::Timeout);
    assert!(e.outcome_unknown());
    assert_eq!(classifier.classify(&e).action, Action::Unknown);
    stop.cancel();

    // Reads the request and hangs up: the connection broke after sending.
    let (base, stop) = canned(None).await;
    let e = client(&base, 2_000)
        .send(&text("1", "x"))
        .await
        .unwrap_err();
    assert!(matches!(e, UpstreamError::Connection(_)), "{e:?}");
    assert!(e.outcome_unknown());
    assert_eq!(classifier.classify(&e).action, Action::Unknown);
    stop.cancel();

    // A 200 that is not a send response: accepted, but which wamid?
    let (base, stop) = canned(Some(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: 6\r\nconnection: close\r\n\r\n<html>",
    ))
    .await;
    let e = client(&base, 2_000)
        .send(&text("1", "x"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            UpstreamError::Malformed {
                http_status: 200,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(classifier.classify(&e).action, Action::Unknown);
    stop.cancel();

    // 360dialog's endpoint rate limit: HTTP 400 and a text.
    let (base, stop) = canned(Some(
        b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: 41\r\nretry-after: 2\r\nconnection: close\r\n\r\nYou have exceeded the endpoint rate limit",
    ))
    .await;
    let e = client(&base, 2_000)
        .send(&text("1", "x"))
        .await
        .unwrap_err();
    assert_eq!(rejected(&e).0, 400);
    assert_eq!(e.retry_after(), Some(2_000));
    assert_eq!(classifier.classify(&e).action, Action::Throttle);
    stop.cancel();

    // A 502 from a proxy in front of the platform: retry.
    let (base, stop) = canned(Some(
        b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    ))
    .await;
    let e = client(&base, 2_000)
        .send(&text("1", "x"))
        .await
        .unwrap_err();
    assert_eq!(rejected(&e), (502, None, None));
    assert_eq!(classifier.classify(&e).action, Action::Retry);
    stop.cancel();
    assert_eq!(Dialect::D360.as_str(), "360dialog");
}

#[tokio::test]
async fn redirects_are_never_followed() {
    let classifier = Classifier::default();
    // Where a redirect would lead: it counts what reaches it.
    let elsewhere = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let elsewhere_url = format!("http://{}/messages", elsewhere.local_addr().unwrap());
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = elsewhere.accept().await {
            h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = sock
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                .await;
        }
    });
    for status in [
        "301 Moved Permanently",
        "302 Found",
        "307 Temporary Redirect",
        "308 Permanent Redirect",
    ] {
        let answer = format!(
            "HTTP/1.1 {status}\r\nlocation: {elsewhere_url}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        );
        let (base, stop) = canned(Some(Box::leak(answer.into_bytes().into_boxed_slice()))).await;
        let e = client(&base, 2_000)
            .send(&text("1", "x"))
            .await
            .unwrap_err();
        let UpstreamError::Redirect { location, .. } = &e else {
            panic!("{status}: {e:?}");
        };
        assert_eq!(location.as_deref(), Some(elsewhere_url.as_str()));
        assert!(!e.outcome_unknown() && !e.unreachable());
        let rule = classifier.classify(&e);
        assert_eq!(rule.action, Action::Fail, "permanent unless configured");
        assert!(e.to_string().contains("not followed"), "{e}");
        stop.cancel();
    }
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "nothing went elsewhere"
    );
}
