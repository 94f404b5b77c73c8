//! Events to apps: every state change of a message is a timeline [`Event`] in the store with a
//! global, monotonic `seq`; apps get them two ways.
//!
//! 1. **Server-sent events** ([`sse_stream`], mounted by the router at
//!    `GET /v1/events?after=SEQ&types=a,b`): a follower of [`Store::events_after`] from a cursor.
//!    Each event is `id: {seq}`, `event: {kind}`, `data: {"seq","message_id","type","at","state",
//!    "detail"}` ([`event_data`]). A client resumes with `after` or, when it reconnects, with
//!    the `Last-Event-ID` header ([`start_seq`]). When caught up, the stream waits for the
//!    writer's wake-up (`Notify::notify_waiters` after every committed change) or a fallback
//!    tick ([`FALLBACK_TICK`]); [`sse_response`] adds a keep-alive comment every [`KEEP_ALIVE`].
//! 2. **App webhooks in the Standard Webhooks format** ([`run_pusher`]): one independent worker
//!    per configured endpoint ([`AppWebhook`]), each with its own durable cursor
//!    (`app_webhook:{url}`), so a slow, failing or disabled endpoint never delays another.
//!    Every event the endpoint wants (its `events` filter; empty means all) is POSTed as
//!    `{"type": kind, "timestamp": RFC 3339 of the event, "data": event_data}` with the headers
//!    `webhook-id` (`evt_{seq}`, stable across retries so the app can dedupe),
//!    `webhook-timestamp` (unix seconds of the attempt, from the gateway's [`Clock`]) and
//!    `webhook-signature` (`v1,` + base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`, see
//!    [`sign`]).
//!
//! # Delivery semantics
//!
//! - In order per endpoint: event `n + 1` is sent only after `n` was delivered (a 2xx answer).
//!   Redirects are not followed (a 3xx is a failure).
//! - At least once: the cursor advances only past delivered (or filtered-out) events. It is
//!   persisted after every batch read from the store, before every backoff wait and when the
//!   worker stops, so a crash re-sends at most one batch ([`PushOptions::batch`]) with the same
//!   `webhook-id`s.
//! - Retries: any other answer or a transport error (including the per-attempt timeout) is
//!   retried with exponential backoff, [`PushOptions::backoff`]: `initial_backoff` doubling per
//!   consecutive failure up to `max_backoff` — by default 1 s, 2 s, 4 s, … 256 s, then every
//!   5 min — for as long as it takes: an event is never skipped. A `Retry-After` (seconds) on
//!   the failure lengthens the wait, within `max_backoff`.
//! - `410 Gone` disables the endpoint until the gateway restarts (logged as an error); its
//!   cursor stays before the refused event, so a re-enabled endpoint resumes there.
//!
//! The app verifies a delivery with [`verify`] (or any Standard Webhooks library).

use crate::clock::{Clock, Millis};
use crate::config::AppWebhook;
use crate::roles::Roles;
use crate::store::{Event, Store, StoreError};
use axum::http::HeaderMap;
use axum::response::sse::{self, KeepAlive, KeepAliveStream, Sse};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use futures_util::Stream;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

/// Events read per store query by an SSE stream.
pub const SSE_BATCH: usize = 500;
/// How often a caught-up SSE stream looks at the store without a wake-up (a fallback only).
pub const FALLBACK_TICK: Duration = Duration::from_secs(1);
/// Interval of the SSE keep-alive comment ([`sse_response`]).
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Largest difference between `webhook-timestamp` and now that [`verify`] accepts (seconds).
pub const TIMESTAMP_TOLERANCE_SECS: i64 = 5 * 60;
/// Prefix of the secret form the Standard Webhooks spec uses (`whsec_` + base64 key).
pub const SECRET_PREFIX: &str = "whsec_";
/// How much of a receiver's answer body is read (the rest is dropped).
const MAX_ANSWER_BODY: usize = 64 * 1024;

// ---------------------------------------------------------------------------------------------
// The event as apps see it

/// The `data` object of an event, on both ways out:
/// `{"seq", "message_id", "type", "at" (unix ms), "state", "detail"}`; a campaign's event
/// (`campaign.*`) has `campaign_id` in place of `message_id` and the campaign's state.
pub fn event_data(e: &Event) -> Value {
    if e.kind.starts_with("campaign.") {
        return json!({
            "seq": e.seq,
            "campaign_id": e.message_id,
            "type": e.kind,
            "at": e.at,
            "state": e.detail["state"],
            "detail": e.detail,
        });
    }
    json!({
        "seq": e.seq,
        "message_id": e.message_id,
        "type": e.kind,
        "at": e.at,
        "state": e.state,
        "detail": e.detail,
    })
}

/// The webhook id of an event: `evt_{seq}` (the same for every attempt).
pub fn webhook_id(e: &Event) -> String {
    format!("evt_{}", e.seq)
}

/// The body POSTed to app webhooks:
/// `{"type": kind, "timestamp": RFC 3339 of the event, "data": event_data}`.
pub fn webhook_body(e: &Event) -> Vec<u8> {
    let v = json!({
        "type": e.kind,
        "timestamp": rfc3339(e.at),
        "data": event_data(e),
    });
    serde_json::to_vec(&v).unwrap_or_default()
}

/// Parses a `types=a,b` list: comma-separated, trimmed, empties dropped.
pub fn parse_types(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// True when `kind` passes `filter`: an empty filter passes everything; an entry matches the
/// kind exactly, or, ending in `*`, every kind starting with what precedes it (`status.*`).
pub fn type_matches(filter: &[String], kind: &str) -> bool {
    filter.is_empty()
        || filter.iter().any(|f| match f.strip_suffix('*') {
            Some(prefix) => kind.starts_with(prefix),
            None => f == kind,
        })
}

/// Where an SSE stream starts: the `Last-Event-ID` header of a reconnecting client when it
/// holds a sequence number, else the `after` query parameter, else 0 (everything).
pub fn start_seq(after: Option<i64>, last_event_id: Option<&str>) -> i64 {
    last_event_id
        .and_then(|id| id.trim().parse::<i64>().ok())
        .or(after)
        .unwrap_or(0)
        .max(0)
}

/// Formats unix milliseconds as RFC 3339 in UTC with milliseconds (`2023-11-14T22:13:20.000Z`).
pub fn rfc3339(ms: Millis) -> String {
    let secs = ms.div_euclid(1_000);
    let milli = ms.rem_euclid(1_000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{milli:03}Z",
        sod / 3_600,
        sod % 3_600 / 60,
        sod % 60
    )
}

/// The proleptic Gregorian date of a day number since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

// ---------------------------------------------------------------------------------------------
// Server-sent events

/// One store event as an SSE event: `id: {seq}`, `event: {kind}`, `data: {event_data}`.
pub fn sse_event(e: &Event) -> sse::Event {
    // Kinds are plain words; a line break would make axum panic, so it is replaced.
    let kind: String = e
        .kind
        .chars()
        .map(|c| if c == '\n' || c == '\r' { '_' } else { c })
        .collect();
    sse::Event::default()
        .id(e.seq.to_string())
        .event(kind)
        .data(event_data(e).to_string())
}

/// The app event feed as an SSE stream: every event after `after` (filtered by `filter`; `None`
/// or empty means all), in order, then new ones as they are committed. It reads
/// [`Store::events_after`] in batches of [`SSE_BATCH`]; when caught up it waits for `wake`
/// (the writer calls `notify_waiters()` after every committed change) or [`FALLBACK_TICK`]. It
/// ends when `cancel` fires or the store is closed. Wrap it with [`sse_response`] (keep-alive).
pub fn sse_stream<S: Store + Clone>(
    store: S,
    after: i64,
    wake: Arc<Notify>,
    filter: Option<Vec<String>>,
    cancel: CancellationToken,
) -> impl Stream<Item = Result<sse::Event, Infallible>> + Send + 'static {
    sse_stream_with(store, after, wake, filter, cancel, FALLBACK_TICK)
}

/// What an SSE stream carries between items.
struct Follower<S> {
    store: S,
    cursor: i64,
    wake: Arc<Notify>,
    filter: Vec<String>,
    cancel: CancellationToken,
    tick: Duration,
    buffer: VecDeque<Event>,
}

fn sse_stream_with<S: Store + Clone>(
    store: S,
    after: i64,
    wake: Arc<Notify>,
    filter: Option<Vec<String>>,
    cancel: CancellationToken,
    tick: Duration,
) -> impl Stream<Item = Result<sse::Event, Infallible>> + Send + 'static {
    let follower = Follower {
        store,
        cursor: after.max(0),
        wake,
        filter: filter.unwrap_or_default(),
        cancel,
        tick,
        buffer: VecDeque::new(),
    };
    futures_util::stream::unfold(follower, |mut f| async move {
        loop {
            if let Some(e) = f.buffer.pop_front() {
                return Some((Ok(sse_event(&e)), f));
            }
            if f.cancel.is_cancelled() {
                return None;
            }
            // Registered before the read: a commit between the read and the wait still wakes
            // us (`notify_waiters` wakes every `Notified` created before it).
            let wake = f.wake.clone();
            let notified = wake.notified();
            match f.store.events_after(f.cursor, SSE_BATCH).await {
                Ok(events) if !events.is_empty() => {
                    if let Some(last) = events.last() {
                        f.cursor = last.seq;
                    }
                    let filter = &f.filter;
                    f.buffer
                        .extend(events.into_iter().filter(|e| type_matches(filter, &e.kind)));
                    continue;
                }
                Ok(_) => {}
                Err(StoreError::Closed) => return None,
                Err(e) => warn!(error = %e, "event stream: reading events failed"),
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(f.tick) => {}
                _ = f.cancel.cancelled() => return None,
            }
        }
    })
}

/// The SSE response of a stream, with a keep-alive comment every [`KEEP_ALIVE`].
pub fn sse_response<St>(stream: St) -> Sse<KeepAliveStream<St>>
where
    St: Stream<Item = Result<sse::Event, Infallible>> + Send + 'static,
{
    Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive"))
}

// ---------------------------------------------------------------------------------------------
// Standard Webhooks signatures

/// The HMAC key of a secret: the base64-decoded rest of a `whsec_` secret (as the Standard
/// Webhooks spec says), otherwise — or when that rest is not base64 — the secret's raw bytes.
pub fn secret_key(secret: &str) -> Vec<u8> {
    if let Some(rest) = secret.strip_prefix(SECRET_PREFIX)
        && let Ok(key) = BASE64.decode(rest)
    {
        return key;
    }
    secret.as_bytes().to_vec()
}

fn mac(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&secret_key(secret))
        .expect("HMAC takes keys of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `webhook-signature` value of a delivery: `v1,` + base64(HMAC-SHA256(key,
/// `{id}.{timestamp}.{body}`)), the key from [`secret_key`].
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = mac(secret, id, &timestamp.to_string(), body)
        .finalize()
        .into_bytes();
    format!("v1,{}", BASE64.encode(tag))
}

/// Why [`verify`] refused a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    /// A required header is missing or not text.
    MissingHeader(&'static str),
    /// `webhook-timestamp` is not an integer.
    BadTimestamp,
    /// `webhook-timestamp` is further than [`TIMESTAMP_TOLERANCE_SECS`] from now.
    Expired,
    /// No `v1` signature in `webhook-signature` matches.
    BadSignature,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyError::MissingHeader(h) => write!(f, "missing header {h}"),
            VerifyError::BadTimestamp => f.write_str("invalid webhook-timestamp"),
            VerifyError::Expired => f.write_str("webhook-timestamp outside the tolerance"),
            VerifyError::BadSignature => f.write_str("no matching signature"),
        }
    }
}

impl std::error::Error for VerifyError {}

/// Verifies a delivery as an app would: the `webhook-id`, `webhook-timestamp` and
/// `webhook-signature` headers against the raw `body`. The signature header may hold several
/// space-separated signatures (key rotation); one matching `v1` signature suffices, compared in
/// constant time. With `now_secs`, the timestamp must be within [`TIMESTAMP_TOLERANCE_SECS`] of
/// it (replay protection); `None` skips that check.
pub fn verify(
    secret: &str,
    headers: &HeaderMap,
    body: &[u8],
    now_secs: Option<i64>,
) -> Result<(), VerifyError> {
    let header = |name: &'static str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or(VerifyError::MissingHeader(name))
    };
    verify_parts(
        secret,
        header("webhook-id")?,
        header("webhook-timestamp")?,
        header("webhook-signature")?,
        body,
        now_secs,
    )
}

/// [`verify`] on the header values themselves.
pub fn verify_parts(
    secret: &str,
    id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now_secs: Option<i64>,
) -> Result<(), VerifyError> {
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::BadTimestamp)?;
    if let Some(now) = now_secs
        && (now - ts).abs() > TIMESTAMP_TOLERANCE_SECS
    {
        return Err(VerifyError::Expired);
    }
    let expected = mac(secret, id, &ts.to_string(), body);
    let found = signatures.split_whitespace().any(|sig| {
        sig.strip_prefix("v1,")
            .and_then(|b64| BASE64.decode(b64).ok())
            .is_some_and(|tag| expected.clone().verify_slice(&tag).is_ok())
    });
    if found {
        Ok(())
    } else {
        Err(VerifyError::BadSignature)
    }
}

// ---------------------------------------------------------------------------------------------
// App webhooks

/// The durable cursor name of an endpoint: `app_webhook:{url}`.
pub fn cursor_name(url: &str) -> String {
    format!("app_webhook:{url}")
}

/// Tuning of the app webhook pusher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushOptions {
    /// Wait after the first failed attempt of an event.
    pub initial_backoff: Duration,
    /// Longest wait between attempts (the doubling stops here).
    pub max_backoff: Duration,
    /// Timeout of one attempt (connect, send, answer).
    pub timeout: Duration,
    /// Events read per store query (and most re-sent after a crash).
    pub batch: usize,
    /// How often a caught-up worker looks at the store without a wake-up (a fallback only).
    pub idle_tick: Duration,
}

impl Default for PushOptions {
    /// 1 s doubling to 5 min, 15 s per attempt (as Svix expects of receivers), batches of 100,
    /// a 1 s fallback tick.
    fn default() -> PushOptions {
        PushOptions {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            timeout: Duration::from_secs(15),
            batch: 100,
            idle_tick: FALLBACK_TICK,
        }
    }
}

impl PushOptions {
    /// The wait after the `failures`-th consecutive failed attempt of an event (1-based):
    /// `initial_backoff × 2^(failures − 1)`, at most `max_backoff`.
    pub fn backoff(&self, failures: u32) -> Duration {
        let factor = 1u32 << failures.saturating_sub(1).min(30);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// What one endpoint's worker has done, as a snapshot ([`Pusher::statuses`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct EndpointStatus {
    /// The endpoint.
    pub url: String,
    /// The last event handled (delivered or filtered out).
    pub cursor: i64,
    /// The last cursor value written to the store.
    pub persisted: i64,
    /// Events delivered since the start.
    pub delivered: u64,
    /// Failed attempts since the start.
    pub failed_attempts: u64,
    /// Failed attempts of the event being delivered now.
    pub consecutive_failures: u32,
    /// The last failure (`HTTP 500`, a transport error).
    pub last_error: Option<String>,
    /// Disabled by a `410 Gone` answer.
    pub disabled: bool,
}

/// The app webhook pusher: one worker per configured endpoint ([`Pusher::run`]). With
/// [`Pusher::with_roles`] on a shared store, one instance at a time pushes to an endpoint (the
/// role `app_webhook:{url}`); another takes over from the stored cursor when it stops.
pub struct Pusher<S> {
    store: S,
    clock: Arc<Clock>,
    opts: PushOptions,
    client: reqwest::Client,
    endpoints: Vec<(AppWebhook, watch::Sender<EndpointStatus>)>,
    roles: Option<Arc<Roles<S>>>,
}

impl<S: Store + Clone> Pusher<S> {
    /// A pusher for `hooks`. Endpoints without a URL, and repeats of a URL (they would share
    /// a cursor), are skipped with a warning.
    pub fn new(
        store: S,
        hooks: Vec<AppWebhook>,
        clock: Arc<Clock>,
        opts: PushOptions,
    ) -> Result<Pusher<S>, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(opts.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("mynah-gateway/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let mut seen = HashSet::new();
        let mut endpoints = Vec::new();
        for hook in hooks {
            if hook.url.trim().is_empty() {
                warn!("app webhook without a url ignored");
                continue;
            }
            if !seen.insert(hook.url.clone()) {
                warn!(url = %hook.url, "app webhook url configured twice; the repeat is ignored");
                continue;
            }
            let status = EndpointStatus {
                url: hook.url.clone(),
                ..EndpointStatus::default()
            };
            endpoints.push((hook, watch::channel(status).0));
        }
        Ok(Pusher {
            store,
            clock,
            opts,
            client,
            endpoints,
            roles: None,
        })
    }

    /// Pushes to an endpoint only while this instance plays its role (see [`Roles`]).
    pub fn with_roles(mut self, roles: Arc<Roles<S>>) -> Pusher<S> {
        self.roles = Some(roles);
        self
    }

    /// A live view of every endpoint's worker, in configuration order.
    pub fn statuses(&self) -> Vec<watch::Receiver<EndpointStatus>> {
        self.endpoints.iter().map(|(_, s)| s.subscribe()).collect()
    }

    /// Runs one worker per endpoint until `cancel` fires (each persists its cursor before it
    /// stops), or until every endpoint is disabled.
    pub async fn run(self, wake: Arc<Notify>, cancel: CancellationToken) {
        let mut tasks = JoinSet::new();
        for (hook, status) in self.endpoints {
            let worker = Worker {
                store: self.store.clone(),
                clock: self.clock.clone(),
                opts: self.opts.clone(),
                client: self.client.clone(),
                name: cursor_name(&hook.url),
                hook,
                status,
                cursor: 0,
                persisted: 0,
                roles: self.roles.clone(),
            };
            tasks.spawn(worker.run(wake.clone(), cancel.clone()));
        }
        while let Some(done) = tasks.join_next().await {
            if let Err(e) = done {
                error!(error = %e, "app webhook worker panicked");
            }
        }
    }
}

/// Pushes the store's events to `hooks` with the default [`PushOptions`] until `cancel` fires,
/// each endpoint from one instance at a time (`roles`).
pub async fn run_pusher<S: Store + Clone>(
    store: S,
    hooks: Vec<AppWebhook>,
    clock: Arc<Clock>,
    roles: Arc<Roles<S>>,
    wake: Arc<Notify>,
    cancel: CancellationToken,
) {
    match Pusher::new(store, hooks, clock, PushOptions::default()) {
        Ok(pusher) => pusher.with_roles(roles).run(wake, cancel).await,
        Err(e) => error!(error = %e, "app webhooks: cannot build the HTTP client"),
    }
}

/// The outcome of one delivery attempt.
enum Attempt {
    Delivered,
    Gone,
    Failed {
        error: String,
        retry_after: Option<Duration>,
    },
}

/// How delivering one event ended.
enum Outcome {
    Delivered,
    Gone,
    Cancelled,
    /// Another instance pushes to this endpoint now.
    Yielded,
}

/// One endpoint's worker.
struct Worker<S> {
    store: S,
    clock: Arc<Clock>,
    opts: PushOptions,
    client: reqwest::Client,
    hook: AppWebhook,
    name: String,
    status: watch::Sender<EndpointStatus>,
    /// The last event handled (delivered or filtered out).
    cursor: i64,
    /// The cursor value last written to the store.
    persisted: i64,
    /// On a shared store: push only while this instance plays the endpoint's role.
    roles: Option<Arc<Roles<S>>>,
}

impl<S: Store> Worker<S> {
    /// Whether this instance pushes to the endpoint now (always, without roles).
    async fn playing(&self) -> bool {
        match &self.roles {
            None => true,
            Some(r) => r.plays(&self.name).await,
        }
    }

    /// Reads the stored cursor (again); false when the store closed or `cancel` fired.
    async fn load_cursor(&mut self, cancel: &CancellationToken) -> bool {
        self.cursor = loop {
            match self.store.cursor(&self.name).await {
                Ok(c) => break c,
                Err(StoreError::Closed) => return false,
                Err(e) => {
                    warn!(url = %self.hook.url, error = %e, "app webhook: reading the cursor failed");
                    if pause(self.opts.idle_tick, cancel).await {
                        return false;
                    }
                }
            }
        };
        self.persisted = self.cursor;
        let cursor = self.cursor;
        self.status.send_modify(|s| {
            s.cursor = cursor;
            s.persisted = cursor;
        });
        info!(url = %self.hook.url, cursor, "app webhook worker started");
        true
    }

    async fn run(mut self, wake: Arc<Notify>, cancel: CancellationToken) {
        let url = self.hook.url.clone();
        // Whether this instance pushed to the endpoint at the last look.
        let mut pushing = false;
        loop {
            let notified = wake.notified();
            if !self.playing().await {
                // The cursor stays as stored (after every batch): the instance that pushes now
                // may have moved it on already.
                if pushing {
                    pushing = false;
                    info!(url = %url, "app webhook: another instance pushes to this endpoint now");
                }
                if pause(self.opts.idle_tick, &cancel).await {
                    return;
                }
                continue;
            }
            if !pushing {
                // Where this instance (or the one that pushed before) left off.
                if !self.load_cursor(&cancel).await {
                    return;
                }
                pushing = true;
            }
            let batch = match self
                .store
                .events_after(self.cursor, self.opts.batch.max(1))
                .await
            {
                Ok(batch) => batch,
                Err(StoreError::Closed) => return,
                Err(e) => {
                    warn!(url = %url, error = %e, "app webhook: reading events failed");
                    Vec::new()
                }
            };
            if batch.is_empty() {
                self.persist().await;
                tokio::select! {
                    _ = notified => continue,
                    _ = tokio::time::sleep(self.opts.idle_tick) => continue,
                    _ = cancel.cancelled() => break,
                }
            }
            let mut yielded = false;
            for event in batch {
                if !type_matches(&self.hook.events, &event.kind) {
                    self.cursor = event.seq;
                    continue;
                }
                if !self.playing().await {
                    yielded = true;
                    break;
                }
                match self.deliver(&event, &cancel).await {
                    Outcome::Delivered => {
                        self.cursor = event.seq;
                        let seq = event.seq;
                        self.status.send_modify(|s| {
                            s.cursor = seq;
                            s.delivered += 1;
                            s.consecutive_failures = 0;
                        });
                    }
                    Outcome::Gone => {
                        self.persist().await;
                        self.status.send_modify(|s| s.disabled = true);
                        error!(
                            url = %url,
                            seq = event.seq,
                            "app webhook endpoint answered 410 Gone: disabled until restart"
                        );
                        return;
                    }
                    Outcome::Cancelled => {
                        self.persist().await;
                        return;
                    }
                    Outcome::Yielded => {
                        yielded = true;
                        break;
                    }
                }
            }
            if yielded {
                // Noticed at the top of the loop; nothing stored over the new pusher's cursor.
                continue;
            }
            self.persist().await;
        }
        if pushing {
            self.persist().await;
        }
    }

    /// Delivers one event, retrying until it is delivered, the endpoint is gone, or `cancel`.
    async fn deliver(&mut self, event: &Event, cancel: &CancellationToken) -> Outcome {
        let id = webhook_id(event);
        let body = Bytes::from(webhook_body(event));
        let mut failures: u32 = 0;
        loop {
            if failures > 0 && !self.playing().await {
                return Outcome::Yielded;
            }
            let attempt = tokio::select! {
                a = self.attempt(&id, &body) => a,
                _ = cancel.cancelled() => return Outcome::Cancelled,
            };
            let (error, retry_after) = match attempt {
                Attempt::Delivered => {
                    if failures > 0 {
                        info!(
                            url = %self.hook.url,
                            webhook_id = %id,
                            failed_attempts = failures,
                            "app webhook endpoint recovered"
                        );
                    }
                    return Outcome::Delivered;
                }
                Attempt::Gone => return Outcome::Gone,
                Attempt::Failed { error, retry_after } => (error, retry_after),
            };
            failures = failures.saturating_add(1);
            let wait = self
                .opts
                .backoff(failures)
                .max(retry_after.unwrap_or_default())
                .min(self.opts.max_backoff);
            // Once per episode: the first failure says what and when it is retried; the rest of
            // the episode is at debug, and the recovery is logged when it comes.
            if failures == 1 {
                warn!(
                    url = %self.hook.url,
                    webhook_id = %id,
                    error = %error,
                    retry_in_ms = wait.as_millis() as u64,
                    "app webhook delivery failed; retrying with backoff until it is delivered"
                );
            } else {
                debug!(
                    url = %self.hook.url,
                    webhook_id = %id,
                    attempt = failures,
                    error = %error,
                    retry_in_ms = wait.as_millis() as u64,
                    "app webhook delivery failed again"
                );
            }
            self.status.send_modify(|s| {
                s.failed_attempts += 1;
                s.consecutive_failures = failures;
                s.last_error = Some(error);
            });
            // What was delivered so far stays delivered, however long this event takes.
            self.persist().await;
            if pause(wait, cancel).await {
                return Outcome::Cancelled;
            }
        }
    }

    /// One POST of a signed body.
    async fn attempt(&self, id: &str, body: &Bytes) -> Attempt {
        let timestamp = self.clock.now().div_euclid(1_000);
        let signature = sign(&self.hook.secret, id, timestamp, body);
        let sent = self
            .client
            .post(&self.hook.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body.clone())
            .send()
            .await;
        let mut answer = match sent {
            Ok(answer) => answer,
            Err(e) => {
                return Attempt::Failed {
                    error: e.without_url().to_string(),
                    retry_after: None,
                };
            }
        };
        let status = answer.status();
        let retry_after = answer
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        // Read (a bounded part of) the answer so the connection can be reused.
        let mut read = 0;
        while read < MAX_ANSWER_BODY {
            match answer.chunk().await {
                Ok(Some(chunk)) => read += chunk.len(),
                Ok(None) => break,
                Err(e) => {
                    debug!(url = %self.hook.url, error = %e, "app webhook: reading the answer failed");
                    break;
                }
            }
        }
        if status.is_success() {
            Attempt::Delivered
        } else if status == reqwest::StatusCode::GONE {
            Attempt::Gone
        } else {
            Attempt::Failed {
                error: format!("HTTP {}", status.as_u16()),
                retry_after,
            }
        }
    }

    /// Writes the cursor if it moved since the last write; a failure is logged and retried at
    /// the next persist.
    async fn persist(&mut self) {
        if self.cursor == self.persisted {
            return;
        }
        match self.store.set_cursor(&self.name, self.cursor).await {
            Ok(()) => {
                self.persisted = self.cursor;
                let cursor = self.cursor;
                self.status.send_modify(|s| {
                    s.cursor = s.cursor.max(cursor);
                    s.persisted = cursor;
                });
            }
            Err(e) => {
                warn!(url = %self.hook.url, error = %e, "app webhook: saving the cursor failed")
            }
        }
    }
}

/// Sleeps for `d`; `true` when `cancel` fired first.
async fn pause(d: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = cancel.cancelled() => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MessageState;

    type HmacSha256 = Hmac<Sha256>;

    fn independent(key: &[u8], content: &str) -> String {
        let mut m = <HmacSha256 as Mac>::new_from_slice(key).unwrap();
        m.update(content.as_bytes());
        format!("v1,{}", BASE64.encode(m.finalize().into_bytes()))
    }

    #[test]
    fn sign_matches_the_standard_webhooks_vector() {
        // The reference vector of the Standard Webhooks test suite.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = br#"{"test": 2432232314}"#;
        let sig = sign(secret, id, 1_614_265_330, body);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        let key = BASE64.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let content = format!("{id}.1614265330.{}", std::str::from_utf8(body).unwrap());
        assert_eq!(sig, independent(&key, &content));
        assert_eq!(
            verify_parts(secret, id, "1614265330", &sig, body, Some(1_614_265_330)),
            Ok(())
        );
    }

    #[test]
    fn a_plain_secret_is_its_raw_bytes() {
        let sig = sign("s3cret", "evt_7", 1_700_000_000, b"{}");
        assert_eq!(sig, independent(b"s3cret", "evt_7.1700000000.{}"));
        // A `whsec_` secret whose rest is not base64 is taken whole.
        let odd = "whsec_not base64!";
        assert_eq!(
            sign(odd, "evt_1", 1, b"x"),
            independent(odd.as_bytes(), "evt_1.1.x")
        );
    }

    #[test]
    fn verify_checks_headers_signature_and_time() {
        let secret = "whsec_c2VjcmV0LWtleS1mb3ItdGVzdHM=";
        let body = br#"{"type":"enqueued"}"#;
        let sig = sign(secret, "evt_1", 1_000, body);
        let mut h = HeaderMap::new();
        h.insert("webhook-id", "evt_1".parse().unwrap());
        h.insert("webhook-timestamp", "1000".parse().unwrap());
        h.insert("webhook-signature", sig.parse().unwrap());
        assert_eq!(verify(secret, &h, body, Some(1_100)), Ok(()));
        assert_eq!(verify(secret, &h, body, None), Ok(()));
        assert_eq!(
            verify(secret, &h, body, Some(1_000 + TIMESTAMP_TOLERANCE_SECS + 1)),
            Err(VerifyError::Expired)
        );
        assert_eq!(
            verify(secret, &h, b"tampered", None),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            verify("whsec_b3RoZXI=", &h, body, None),
            Err(VerifyError::BadSignature)
        );
        // Rotation: several signatures, one matches.
        let both = format!("v1,AAAA v1a,xyz {sig}");
        h.insert("webhook-signature", both.parse().unwrap());
        assert_eq!(verify(secret, &h, body, None), Ok(()));
        h.insert("webhook-timestamp", "soon".parse().unwrap());
        assert_eq!(
            verify(secret, &h, body, None),
            Err(VerifyError::BadTimestamp)
        );
        h.remove("webhook-id");
        assert_eq!(
            verify(secret, &h, body, None),
            Err(VerifyError::MissingHeader("webhook-id"))
        );
    }

    #[test]
    fn types_parse_and_match() {
        assert_eq!(
            parse_types(" accepted, status.delivered ,,"),
            vec!["accepted".to_string(), "status.delivered".to_string()]
        );
        assert!(parse_types("").is_empty());
        assert!(type_matches(&[], "anything"));
        let f = parse_types("accepted,status.*");
        assert!(type_matches(&f, "accepted"));
        assert!(type_matches(&f, "status.read"));
        assert!(!type_matches(&f, "accepted.twice"));
        assert!(!type_matches(&f, "enqueued"));
    }

    #[test]
    fn start_prefers_last_event_id() {
        assert_eq!(start_seq(None, None), 0);
        assert_eq!(start_seq(Some(5), None), 5);
        assert_eq!(start_seq(Some(5), Some(" 9 ")), 9);
        assert_eq!(start_seq(Some(5), Some("junk")), 5);
        assert_eq!(start_seq(Some(-3), None), 0);
    }

    #[test]
    fn rfc3339_formats_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(4_102_444_799_999), "2099-12-31T23:59:59.999Z");
    }

    #[test]
    fn backoff_doubles_to_its_cap() {
        let o = PushOptions::default();
        let secs: Vec<u64> = (1..=11).map(|n| o.backoff(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(o.backoff(u32::MAX), Duration::from_secs(300));
    }

    #[test]
    fn webhook_body_and_sse_event_carry_the_event() {
        let e = Event {
            seq: 42,
            message_id: "m1".into(),
            kind: "status.delivered".into(),
            at: 1_700_000_000_000,
            detail: json!({"wamid": "wamid.X"}),
            state: MessageState::Delivered,
        };
        let body: Value = serde_json::from_slice(&webhook_body(&e)).unwrap();
        assert_eq!(
            body,
            json!({
                "type": "status.delivered",
                "timestamp": "2023-11-14T22:13:20.000Z",
                "data": {"seq": 42, "message_id": "m1", "type": "status.delivered",
                         "at": 1_700_000_000_000i64, "state": "delivered",
                         "detail": {"wamid": "wamid.X"}},
            })
        );
        assert_eq!(webhook_id(&e), "evt_42");
        assert_eq!(cursor_name("http://x/y"), "app_webhook:http://x/y");
    }

    #[tokio::test]
    async fn a_caught_up_stream_wakes_on_notify_not_on_the_tick() {
        use crate::model::{Category, Lane};
        use crate::store::NewMessage;
        use crate::store::sqlite::{SqliteOptions, SqliteStore};
        use futures_util::StreamExt;

        let store = SqliteStore::open(None, SqliteOptions::default())
            .await
            .unwrap();
        let new = |id: &str| NewMessage {
            id: id.into(),
            idempotency_key: None,
            request_hash: None,
            person: None,
            sequence: None,
            phone_number_id: "pn1".into(),
            to: "15550001111".into(),
            category: Category::Utility,
            template: None,
            lane: Lane::Transactional,
            body: "{}".into(),
            metadata: None,
            state: MessageState::Queued,
            reason: None,
            not_before: 0,
            deadline: i64::MAX,
            created_at: 1,
        };
        store.enqueue(vec![new("a")]).await.unwrap();
        let wake = Arc::new(Notify::new());
        let cancel = CancellationToken::new();
        // A tick of an hour: only the wake-up can bring the second event in time.
        let stream = sse_stream_with(
            store.clone(),
            0,
            wake.clone(),
            None,
            cancel.clone(),
            Duration::from_secs(3_600),
        );
        let mut stream = Box::pin(stream);
        assert!(stream.next().await.is_some());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let next = tokio::spawn(async move {
            let _ = tx.send(());
            stream.next().await.is_some()
        });
        rx.await.unwrap();
        // Let the stream reach its wait, then commit and wake it.
        tokio::task::yield_now().await;
        store.enqueue(vec![new("b")]).await.unwrap();
        wake.notify_waiters();
        let got = tokio::time::timeout(Duration::from_secs(10), next)
            .await
            .expect("woken without the tick")
            .unwrap();
        assert!(got);
        cancel.cancel();
    }
}
