//! Events to apps over real sockets: the SSE feed (order, ids, resumption, filtering, live
//! wake-ups) and the Standard Webhooks pusher (signatures, stable ids across retries, durable
//! cursors, isolation of failing endpoints, `410 Gone`, type filters). Also checks that
//! `openapi.json` documents every route of the app API.
//!
//! Nothing here sleeps to wait for a timer: tests wait on channels and `watch` values; backoffs
//! are milliseconds, and every wait has a generous timeout only as a guard against a hang.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use bytes::Bytes;
use mynah_gateway::clock::{Clock, Millis};
use mynah_gateway::config::AppWebhook;
use mynah_gateway::events::{
    self, EndpointStatus, PushOptions, Pusher, cursor_name, event_data, parse_types, start_seq,
    verify,
};
use mynah_gateway::model::{Category, Lane, MessageState};
use mynah_gateway::store::sqlite::{SqliteOptions, SqliteStore};
use mynah_gateway::store::{Change, Enqueued, Event, NewEvent, NewMessage, Store};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;

const T0: Millis = 1_700_000_000_000;
/// Guard against a hang; never a wait for a timer.
const GUARD: Duration = Duration::from_secs(10);

async fn guarded<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(GUARD, f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

// ---------------------------------------------------------------------------------------------
// Fixtures

fn msg(id: &str) -> NewMessage {
    NewMessage {
        id: id.to_string(),
        idempotency_key: None,
        request_hash: None,
        person: None,
        sequence: None,
        phone_number_id: "pn1".into(),
        to: "15550001111".into(),
        category: Category::Utility,
        template: None,
        lane: Lane::Transactional,
        body: r#"{"type":"text","text":{"body":"hi"}}"#.into(),
        metadata: None,
        state: MessageState::Queued,
        reason: None,
        not_before: T0,
        deadline: T0 + 86_400_000,
        created_at: T0,
    }
}

async fn change(store: &SqliteStore, id: &str, state: MessageState, kind: &str, at: Millis) {
    let mut c = Change {
        state: Some(state),
        ..Change::new(id, at)
    };
    if state == MessageState::Accepted {
        c.wamid = Some(format!("wamid.{id}"));
        c.accepted_at = Some(at);
    }
    if state == MessageState::Delivered {
        c.delivered_at = Some(at);
    }
    let c = c.with_event(NewEvent::new(kind, at, json!({ "note": kind })));
    assert_eq!(store.apply(vec![c]).await.unwrap(), vec![true]);
}

/// A store with six events: three `enqueued`, two `accepted`, one `status.delivered`.
async fn seeded() -> (SqliteStore, Vec<Event>) {
    let store = SqliteStore::open(None, SqliteOptions::default())
        .await
        .unwrap();
    for e in store
        .enqueue(vec![msg("m1"), msg("m2"), msg("m3")])
        .await
        .unwrap()
    {
        assert!(matches!(e, Enqueued::Inserted { .. }));
    }
    change(&store, "m1", MessageState::Accepted, "accepted", T0 + 10).await;
    change(&store, "m2", MessageState::Accepted, "accepted", T0 + 20).await;
    change(
        &store,
        "m1",
        MessageState::Delivered,
        "status.delivered",
        T0 + 30,
    )
    .await;
    let events = store.events_after(0, 100).await.unwrap();
    assert_eq!(events.len(), 6);
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "enqueued",
            "enqueued",
            "enqueued",
            "accepted",
            "accepted",
            "status.delivered"
        ]
    );
    (store, events)
}

async fn serve(app: Router) -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (base, task)
}

// ---------------------------------------------------------------------------------------------
// Server-sent events

#[derive(Clone)]
struct Feed {
    store: SqliteStore,
    wake: Arc<Notify>,
    cancel: CancellationToken,
}

#[derive(Deserialize)]
struct FeedQuery {
    after: Option<i64>,
    types: Option<String>,
}

/// `GET /v1/events` as the router mounts it.
async fn feed(
    State(f): State<Feed>,
    Query(q): Query<FeedQuery>,
    headers: HeaderMap,
) -> impl IntoResponse {
    let last = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let types = q.types.as_deref().map(parse_types);
    events::sse_response(events::sse_stream(
        f.store.clone(),
        start_seq(q.after, last),
        f.wake.clone(),
        types,
        f.cancel.child_token(),
    ))
}

#[derive(Debug, PartialEq)]
struct Frame {
    id: String,
    event: String,
    data: Value,
}

/// A minimal SSE client over a real response body.
struct SseClient {
    response: reqwest::Response,
    buffer: String,
}

impl SseClient {
    async fn open(url: &str, last_event_id: Option<&str>) -> SseClient {
        let mut req = reqwest::Client::new().get(url);
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let response = req.send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        SseClient {
            response,
            buffer: String::new(),
        }
    }

    async fn next(&mut self) -> Frame {
        guarded("an SSE event", async {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let block: String = self.buffer.drain(..end + 2).collect();
                    let (mut id, mut event, mut data) = (String::new(), String::new(), None);
                    for line in block.lines() {
                        if let Some(v) = line.strip_prefix("id: ") {
                            id = v.to_string();
                        } else if let Some(v) = line.strip_prefix("event: ") {
                            event = v.to_string();
                        } else if let Some(v) = line.strip_prefix("data: ") {
                            data = Some(serde_json::from_str(v).unwrap());
                        }
                    }
                    // A keep-alive comment has no data.
                    if let Some(data) = data {
                        return Frame { id, event, data };
                    }
                    continue;
                }
                let chunk = self.response.chunk().await.unwrap().expect("stream ended");
                self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
            }
        })
        .await
    }

    async fn take(&mut self, n: usize) -> Vec<Frame> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(self.next().await);
        }
        out
    }
}

fn frame_of(e: &Event) -> Frame {
    Frame {
        id: e.seq.to_string(),
        event: e.kind.clone(),
        data: event_data(e),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_feed_replays_in_order_resumes_filters_and_follows() {
    let (store, events) = seeded().await;
    let wake = Arc::new(Notify::new());
    let cancel = CancellationToken::new();
    let app = Router::new()
        .route("/v1/events", get(feed))
        .with_state(Feed {
            store: store.clone(),
            wake: wake.clone(),
            cancel: cancel.clone(),
        });
    let (base, server) = serve(app).await;

    // Everything from the start, in order, ids = seq.
    let mut all = SseClient::open(&format!("{base}/v1/events?after=0"), None).await;
    let frames = all.take(6).await;
    assert_eq!(frames, events.iter().map(frame_of).collect::<Vec<_>>());
    let ids: Vec<i64> = frames.iter().map(|f| f.id.parse().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(frames[5].data["type"], "status.delivered");
    assert_eq!(frames[5].data["state"], "delivered");
    assert_eq!(frames[5].data["message_id"], "m1");

    // Resumption from `after`, and from `Last-Event-ID` (which wins over `after`).
    let mut resumed = SseClient::open(&format!("{base}/v1/events?after=3"), None).await;
    assert_eq!(
        resumed.take(3).await,
        events[3..].iter().map(frame_of).collect::<Vec<_>>()
    );
    let last = events[4].seq.to_string();
    let mut reconnected = SseClient::open(&format!("{base}/v1/events?after=0"), Some(&last)).await;
    assert_eq!(reconnected.next().await, frame_of(&events[5]));

    // Type filter.
    let mut filtered = SseClient::open(&format!("{base}/v1/events?types=accepted"), None).await;
    assert_eq!(
        filtered.take(2).await,
        vec![frame_of(&events[3]), frame_of(&events[4])]
    );

    // Live: a new commit and a wake-up reach the caught-up streams.
    change(&store, "m3", MessageState::Accepted, "accepted", T0 + 40).await;
    wake.notify_waiters();
    let new = store.events_after(events[5].seq, 10).await.unwrap();
    assert_eq!(new.len(), 1);
    assert_eq!(all.next().await, frame_of(&new[0]));
    assert_eq!(resumed.next().await, frame_of(&new[0]));
    assert_eq!(filtered.next().await, frame_of(&new[0]));

    cancel.cancel();
    server.abort();
}

// ---------------------------------------------------------------------------------------------
// App webhooks

#[derive(Debug)]
struct Hit {
    status: u16,
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Default)]
struct Receiver {
    hits: HashMap<&'static str, mpsc::UnboundedSender<Hit>>,
    failed_once: AtomicBool,
}

impl Receiver {
    fn record(&self, path: &'static str, status: StatusCode, headers: HeaderMap, body: Bytes) {
        let _ = self.hits[path].send(Hit {
            status: status.as_u16(),
            headers,
            body,
        });
    }
}

/// Fails the very first attempt with 500, then accepts everything.
async fn ok_route(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let status = if r.failed_once.swap(true, Ordering::SeqCst) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    r.record("ok", status, headers, body);
    status
}

async fn down_route(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    r.record("down", StatusCode::SERVICE_UNAVAILABLE, headers, body);
    StatusCode::SERVICE_UNAVAILABLE
}

async fn gone_route(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    r.record("gone", StatusCode::GONE, headers, body);
    StatusCode::GONE
}

async fn filtered_route(
    State(r): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    r.record("filtered", StatusCode::OK, headers, body);
    StatusCode::OK
}

const OK_SECRET: &str = "whsec_c2VjcmV0LWtleS1mb3ItdGhlLW9rLWVuZHBvaW50";
const PLAIN_SECRET: &str = "plain secret";

fn hook(url: String, secret: &str, events: &[&str]) -> AppWebhook {
    AppWebhook {
        url,
        secret: secret.to_string(),
        events: events.iter().map(|s| s.to_string()).collect(),
    }
}

fn fast() -> PushOptions {
    PushOptions {
        initial_backoff: Duration::from_millis(2),
        max_backoff: Duration::from_millis(10),
        timeout: Duration::from_secs(5),
        batch: 2,
        // An hour: a caught-up worker only moves on a wake-up, which the test proves.
        idle_tick: Duration::from_secs(3_600),
    }
}

/// Checks a successful hit is the signed delivery of `e`.
fn assert_delivery(hit: &Hit, secret: &str, e: &Event) {
    assert_eq!(hit.headers["webhook-id"], format!("evt_{}", e.seq).as_str());
    assert_eq!(hit.headers["content-type"], "application/json");
    assert_eq!(
        hit.headers["webhook-timestamp"],
        (T0 / 1_000).to_string().as_str()
    );
    verify(secret, &hit.headers, &hit.body, Some(T0 / 1_000)).expect("valid signature");
    assert!(verify("another secret", &hit.headers, &hit.body, None).is_err());
    let body: Value = serde_json::from_slice(&hit.body).unwrap();
    assert_eq!(body["type"], e.kind.as_str());
    assert_eq!(body["timestamp"], events::rfc3339(e.at).as_str());
    assert_eq!(body["data"], event_data(e));
}

async fn recv(rx: &mut mpsc::UnboundedReceiver<Hit>, what: &str) -> Hit {
    guarded(what, rx.recv()).await.expect("receiver open")
}

async fn wait_status(
    rx: &mut watch::Receiver<EndpointStatus>,
    what: &str,
    f: impl FnMut(&EndpointStatus) -> bool,
) -> EndpointStatus {
    guarded(what, rx.wait_for(f))
        .await
        .expect("worker alive")
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_webhooks_are_signed_ordered_retried_isolated_and_durable() {
    let (store, events) = seeded().await;
    let last = events[5].seq;

    let mut receivers = HashMap::new();
    let mut hits = Receiver::default();
    for path in ["ok", "down", "gone", "filtered"] {
        let (tx, rx) = mpsc::unbounded_channel();
        hits.hits.insert(path, tx);
        receivers.insert(path, rx);
    }
    let app = Router::new()
        .route("/ok", post(ok_route))
        .route("/down", post(down_route))
        .route("/gone", post(gone_route))
        .route("/filtered", post(filtered_route))
        .with_state(Arc::new(hits));
    let (base, server) = serve(app).await;
    let (mut ok_rx, mut down_rx, mut gone_rx, mut filtered_rx) = (
        receivers.remove("ok").unwrap(),
        receivers.remove("down").unwrap(),
        receivers.remove("gone").unwrap(),
        receivers.remove("filtered").unwrap(),
    );

    let clock = Arc::new(Clock::manual(T0));
    let wake = Arc::new(Notify::new());
    let cancel = CancellationToken::new();
    let hooks = vec![
        hook(format!("{base}/ok"), OK_SECRET, &[]),
        hook(format!("{base}/down"), PLAIN_SECRET, &[]),
        hook(format!("{base}/gone"), PLAIN_SECRET, &[]),
        hook(format!("{base}/filtered"), PLAIN_SECRET, &["accepted"]),
    ];
    let pusher = Pusher::new(store.clone(), hooks, clock.clone(), fast()).unwrap();
    let mut statuses = pusher.statuses();
    assert_eq!(statuses.len(), 4);
    let (mut ok_st, mut down_st, mut gone_st, mut filtered_st) = (
        statuses.remove(0),
        statuses.remove(0),
        statuses.remove(0),
        statuses.remove(0),
    );
    let run = tokio::spawn(pusher.run(wake.clone(), cancel.clone()));

    // The first attempt fails with 500; the retry carries the same webhook id and body.
    let first = recv(&mut ok_rx, "the first attempt").await;
    assert_eq!(first.status, 500);
    let retry = recv(&mut ok_rx, "the retry").await;
    assert_eq!(retry.status, 204);
    assert_eq!(first.headers["webhook-id"], retry.headers["webhook-id"]);
    assert_eq!(first.body, retry.body);
    assert_delivery(&first, OK_SECRET, &events[0]);
    assert_delivery(&retry, OK_SECRET, &events[0]);
    // Then every other event, in order, each delivered once.
    for e in &events[1..] {
        let hit = recv(&mut ok_rx, "an event").await;
        assert_eq!(hit.status, 204);
        assert_delivery(&hit, OK_SECRET, e);
    }
    // The cursor is persisted.
    let st = wait_status(&mut ok_st, "ok persisted", |s| s.persisted == last).await;
    assert_eq!(st.delivered, 6);
    assert_eq!(st.failed_attempts, 1);
    assert!(!st.disabled);
    assert_eq!(
        store
            .cursor(&cursor_name(&format!("{base}/ok")))
            .await
            .unwrap(),
        last
    );

    // The endpoint that always fails was still on its first event all along.
    let st = wait_status(&mut down_st, "down retrying", |s| s.failed_attempts >= 3).await;
    assert_eq!(st.cursor, 0);
    assert_eq!(st.delivered, 0);
    assert_eq!(st.last_error.as_deref(), Some("HTTP 503"));
    for _ in 0..3 {
        let hit = recv(&mut down_rx, "a down attempt").await;
        assert_delivery(&hit, PLAIN_SECRET, &events[0]);
    }

    // 410 Gone disables its endpoint after one attempt; its cursor stays put.
    let st = wait_status(&mut gone_st, "gone disabled", |s| s.disabled).await;
    assert_eq!(st.delivered, 0);
    let hit = recv(&mut gone_rx, "the gone attempt").await;
    assert_delivery(&hit, PLAIN_SECRET, &events[0]);
    assert_eq!(
        store
            .cursor(&cursor_name(&format!("{base}/gone")))
            .await
            .unwrap(),
        0
    );

    // The filtered endpoint gets only `accepted`, yet its cursor passes every event.
    for e in &events[3..5] {
        let hit = recv(&mut filtered_rx, "an accepted event").await;
        assert_delivery(&hit, PLAIN_SECRET, e);
    }
    wait_status(&mut filtered_st, "filtered persisted", |s| {
        s.persisted == last
    })
    .await;
    assert!(filtered_rx.try_recv().is_err());

    // Live: a new commit and a wake-up (the idle tick is an hour away).
    change(&store, "m3", MessageState::Accepted, "accepted", T0 + 40).await;
    wake.notify_waiters();
    let new = store.events_after(last, 10).await.unwrap();
    assert_eq!(new.len(), 1);
    assert_delivery(
        &recv(&mut ok_rx, "the live event").await,
        OK_SECRET,
        &new[0],
    );
    assert_delivery(
        &recv(&mut filtered_rx, "the live event (filtered)").await,
        PLAIN_SECRET,
        &new[0],
    );
    wait_status(&mut ok_st, "ok persisted again", |s| {
        s.persisted == new[0].seq
    })
    .await;

    // Shutdown stops every worker, the failing one in its backoff included.
    cancel.cancel();
    guarded("the pusher to stop", run).await.unwrap();
    assert_eq!(gone_rx.try_recv().ok().map(|h| h.status), None);

    // A restarted pusher resumes from the durable cursor: no redelivery.
    change(
        &store,
        "m2",
        MessageState::Delivered,
        "status.delivered",
        T0 + 50,
    )
    .await;
    let cancel = CancellationToken::new();
    let pusher = Pusher::new(
        store.clone(),
        vec![hook(format!("{base}/ok"), OK_SECRET, &[])],
        clock,
        fast(),
    )
    .unwrap();
    let run = tokio::spawn(pusher.run(wake.clone(), cancel.clone()));
    let newer = store.events_after(new[0].seq, 10).await.unwrap();
    assert_eq!(newer.len(), 1);
    assert_delivery(
        &recv(&mut ok_rx, "the event after restart").await,
        OK_SECRET,
        &newer[0],
    );
    cancel.cancel();
    guarded("the pusher to stop", run).await.unwrap();
    assert!(ok_rx.try_recv().is_err());
    server.abort();
}

// ---------------------------------------------------------------------------------------------
// OpenAPI

#[test]
fn openapi_documents_every_route() {
    let doc: Value = serde_json::from_str(include_str!("../src/openapi.json")).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let routes = [
        ("/v1/messages", "post"),
        ("/v1/messages", "get"),
        ("/v1/messages/{id}", "get"),
        ("/v1/messages/{id}/cancel", "post"),
        ("/v1/contacts/{wa_id}", "get"),
        ("/v1/contacts/{wa_id}/messages", "get"),
        ("/v1/contacts/{wa_id}/consents/{category}", "put"),
        ("/v1/contacts/{wa_id}/consents/{category}", "get"),
        ("/v1/contacts/{wa_id}/consents", "get"),
        ("/v1/consents/import", "post"),
        ("/v1/templates", "get"),
        ("/v1/templates/sync", "post"),
        ("/v1/events", "get"),
        ("/webhooks", "post"),
        ("/webhooks", "get"),
        ("/webhooks/{source}", "post"),
        ("/health", "get"),
        ("/openapi.json", "get"),
        ("/v1/campaigns", "post"),
        ("/v1/campaigns", "get"),
        ("/v1/overview", "get"),
        ("/v1/campaigns/{id}", "get"),
        ("/v1/campaigns/{id}/start", "post"),
        ("/v1/campaigns/{id}/pause", "post"),
        ("/v1/campaigns/{id}/resume", "post"),
        ("/v1/campaigns/{id}/cancel", "post"),
        ("/v1/campaigns/{id}/audience", "post"),
        ("/v1/campaigns/{id}/recipients", "get"),
        ("/v1/campaigns/{id}/recipients.csv", "get"),
    ];
    for (path, method) in routes {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} missing"
        );
    }
    for schema in [
        "Message", "Event", "Consent", "Contact", "Template", "Error",
    ] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "schema {schema} missing"
        );
    }
    // Every local reference resolves.
    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r);
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let pointer = r.strip_prefix('#').expect("local reference");
        assert!(doc.pointer(pointer).is_some(), "dangling $ref {r}");
    }
    // The message states are the model's.
    let states: Vec<&str> = doc["components"]["schemas"]["MessageState"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let model: Vec<&str> = MessageState::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(states, model);
}
