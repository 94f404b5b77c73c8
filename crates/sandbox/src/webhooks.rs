//! Webhook delivery: signed POSTs per business number, retried with exponential backoff over a
//! window of sandbox time, with seeded chaos (duplicates, reordering, delays).
//!
//! Every event goes to the number's own webhook URL and, besides, to each always-on subscriber
//! (`webhooks.subscribers`). Each copy is delivered on its own: every (number, receiver) pair has
//! its own queue, in-flight budget, retries and backoff, so a failing receiver stalls nobody else
//! — not another number, not the other receivers of the same number. Within a queue, events of
//! the same message go out one at a time so `sent` comes before `delivered` unless chaos (or a
//! retry) says otherwise. A failed delivery waits for its retry timer while later events move on,
//! as on the platform. Every attempt is recorded with its body, signature, response code, latency
//! and next retry. Pending events are journalled, so they survive a restart.
//!
//! Failures are logged once per episode and receiver URL: a warning at the first failure, the
//! recovery (with how many attempts failed, for how long) at the first success after it.

use crate::clock::{Clock, Millis};
use crate::config::WebhookConfig;
use crate::ids::Ids;
use crate::model::WebhookTarget;
use crate::scheduler::{Scheduler, Timer};
use crate::store::{Journal, Kind, Write};
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HOST, HeaderName, HeaderValue, USER_AGENT};
use mynah_wire::webhook::{
    Change, ChangeValue, Entry, Envelope, OBJECT, OnPremStatus, OnPremStatuses,
};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// One webhook event: a change for one business number, on its way to one receiver.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    /// Sequence number.
    pub id: u64,
    /// Business number it concerns.
    pub phone_number_id: String,
    /// Its account (the envelope's `entry[].id`).
    pub waba_id: String,
    /// Ordering key: events with the same key go out one at a time.
    pub key: String,
    /// Hash of `key`.
    #[serde(skip)]
    pub key_hash: u64,
    /// `entry[].time`, for account and template fields.
    pub time: Option<i64>,
    /// The change.
    pub change: Change,
    /// What it is about, for filtering.
    pub summary: Arc<EventSummary>,
    /// The receiver: `None` for the number's own webhook URL, `Some(i)` for subscriber `i` of
    /// `webhooks.subscribers`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriber: Option<usize>,
    /// Sandbox time it joined its receiver's queue (after any chaos hold): the webhook lag is
    /// measured from the oldest of these.
    #[serde(skip)]
    pub queued_at: Millis,
}

impl Attempt {
    /// What the attempt holds in memory, about: its body, its strings, and the summaries of its
    /// events (once the events are delivered, the attempt is their summaries' only holder).
    /// `webhooks.keep_attempt_bytes` bounds the sum.
    pub fn cost(&self) -> usize {
        let strings = self.phone_number_id.len()
            + self.url.len()
            + self.signature.len()
            + self.error.as_ref().map_or(0, String::len);
        let summaries: usize = self.events.iter().map(|e| e.cost()).sum();
        std::mem::size_of::<Attempt>() + self.body.len() + strings + summaries
    }
}

impl EventSummary {
    /// About what a summary holds in memory (its allocation and its strings).
    fn cost(&self) -> usize {
        let opt = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        // The summary itself and its reference counts.
        std::mem::size_of::<EventSummary>()
            + 16
            + self.field.len()
            + opt(&self.wamid)
            + opt(&self.status)
            + opt(&self.wa_id)
            + opt(&self.message_type)
    }
}

/// What an event is about, for the control API's filters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventSummary {
    /// Subscription field.
    pub field: String,
    /// The message it concerns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wamid: Option<String>,
    /// Status (`sent`, `delivered`, …) for status events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wa_id: Option<String>,
    /// Inbound message type, for inbound events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_type: Option<String>,
    /// Rendered in the On-Premises shape (`{"statuses": [...]}`, no envelope): statuses of
    /// messages sent through the On-Premises dialect.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub onprem: bool,
}

/// An event as the engine hands it over (the hub numbers it).
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// Business number.
    pub phone_number_id: String,
    /// Its account.
    pub waba_id: String,
    /// Ordering key (the message id, usually).
    pub key: String,
    /// `entry[].time`.
    pub time: Option<i64>,
    /// The change.
    pub change: Change,
    /// What it is about.
    pub summary: EventSummary,
    /// Only for the number's own URL, not the subscribers: a repeat of an account-level event
    /// that went to another of the account's URLs already (subscribers get it once).
    pub own_only: bool,
}

/// The journalled form of a pending event.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredEvent {
    event: Event,
    /// Set once the event failed in a delivery: (delivery id, position, attempts, first attempt,
    /// next attempt).
    #[serde(default)]
    retry: Option<(u64, usize, u32, Millis, Millis)>,
    /// The subscriber's URL when the event was journalled (for a subscriber's copy), so that a
    /// restart with another subscriber list finds its receiver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subscriber_url: Option<String>,
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The receiver answered 200.
    Delivered,
    /// Failed; a retry is scheduled.
    Retrying,
    /// Failed and out of retries (or no URL configured).
    Dropped,
}

/// One POST (or the decision not to make one).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attempt {
    /// Sequence number of the attempt, increasing.
    pub seq: u64,
    /// The delivery (same for all its retries).
    pub delivery_id: u64,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// Business number.
    pub phone_number_id: String,
    /// Where it went.
    pub url: String,
    /// The subscriber it went to (index in `webhooks.subscribers`); absent for the number's own
    /// URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriber: Option<usize>,
    /// Sandbox time of the attempt.
    pub at: Millis,
    /// The exact body.
    pub body: Arc<str>,
    /// `X-Hub-Signature-256`.
    pub signature: String,
    /// HTTP status of the answer.
    pub status: Option<u16>,
    /// What went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Wall-clock latency of the POST, ms.
    pub latency_ms: f64,
    /// How it ended.
    pub outcome: Outcome,
    /// When the next attempt is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_retry_at: Option<Millis>,
    /// The events it carried.
    pub events: Vec<Arc<EventSummary>>,
    /// A manual redelivery (control API) of this earlier attempt: one POST of the same body,
    /// not retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redelivery_of: Option<u64>,
}

/// Which attempts a query or a wait wants.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AttemptFilter {
    /// Business number.
    pub phone_number_id: Option<String>,
    /// Message id.
    pub wamid: Option<String>,
    /// Status (`sent`, `delivered`, `read`, `failed`, …).
    pub status: Option<String>,
    /// Subscription field.
    pub field: Option<String>,
    /// The user.
    pub wa_id: Option<String>,
    /// Inbound message type.
    pub message_type: Option<String>,
    /// Only attempts the receiver accepted (true) or refused (false).
    pub delivered: Option<bool>,
    /// Only attempts after this sequence number.
    pub after_seq: Option<u64>,
    /// Only attempts before this sequence number (paging back).
    pub before_seq: Option<u64>,
    /// Only attempts to this receiver URL (exactly as configured).
    pub url: Option<String>,
}

impl AttemptFilter {
    /// Whether `a` matches.
    pub fn matches(&self, a: &Attempt) -> bool {
        if self
            .phone_number_id
            .as_ref()
            .is_some_and(|p| *p != a.phone_number_id)
            || self.after_seq.is_some_and(|s| a.seq <= s)
            || self.before_seq.is_some_and(|s| a.seq >= s)
            || self
                .delivered
                .is_some_and(|d| d != (a.outcome == Outcome::Delivered))
            || self.url.as_ref().is_some_and(|u| *u != a.url)
        {
            return false;
        }
        let event_filter = self.wamid.is_some()
            || self.status.is_some()
            || self.field.is_some()
            || self.wa_id.is_some()
            || self.message_type.is_some();
        !event_filter
            || a.events.iter().any(|e| {
                eq(&self.wamid, &e.wamid)
                    && eq(&self.status, &e.status)
                    && self.field.as_ref().is_none_or(|f| *f == e.field)
                    && eq(&self.wa_id, &e.wa_id)
                    && eq(&self.message_type, &e.message_type)
            })
    }
}

fn eq(want: &Option<String>, have: &Option<String>) -> bool {
    want.as_ref().is_none_or(|w| have.as_ref() == Some(w))
}

/// A delivery being rebuilt from the journal: the delivery, its events by position, next attempt.
type Restored = (Delivery, Vec<(usize, Event)>, Millis);

/// Journalled copies whose subscriber is gone after a restart: why, attempts made so far, the
/// events by position.
type Orphans = (String, u32, Vec<(usize, StoredEvent)>);

struct Delivery {
    id: u64,
    phone_number_id: String,
    /// The receiver (see [`Event::subscriber`]).
    subscriber: Option<usize>,
    events: Vec<Event>,
    attempt: u32,
    first_at: Millis,
    /// Sandbox time this attempt started (the due time of the timer that started it).
    at: Millis,
    /// The hub's generation when it started; a reset in between makes its answer moot.
    generation: u64,
}

#[derive(Default)]
struct Queue {
    ready: VecDeque<Event>,
    retry_ready: VecDeque<Delivery>,
    in_flight: usize,
    busy: FastSet,
}

/// A number's queues: one for its own URL, one per subscriber.
#[derive(Default)]
struct Lanes {
    own: Queue,
    subscribers: Vec<Queue>,
}

impl Lanes {
    fn lane(&mut self, subscriber: Option<usize>) -> &mut Queue {
        match subscriber {
            None => &mut self.own,
            Some(i) => {
                if self.subscribers.len() <= i {
                    self.subscribers.resize_with(i + 1, Queue::default);
                }
                &mut self.subscribers[i]
            }
        }
    }
}

type FastSet = HashSet<u64, foldhash::fast::FixedState>;

/// A receiver's queue with room for more events than this shrinks once it is mostly empty.
const SHRINK_ABOVE: usize = 4_096;

fn key_hash(key: &str) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::default().hash_one(key)
}

/// Headers a receiver's configuration may not set: they frame the request or carry the
/// signature, and a wrong value would break every delivery (compared without case).
pub const RESERVED_HEADERS: &[&str] = &[
    "content-length",
    "content-type",
    "host",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "x-hub-signature",
    "x-hub-signature-256",
];

/// Most custom headers one receiver may have.
pub const MAX_HEADERS: usize = 64;
/// Longest custom header value, bytes.
pub const MAX_HEADER_VALUE: usize = 8 * 1024;
/// How much of a receiver's answer body is read; past it the connection is closed.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// What a configured webhook target is worth, once checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetCheck {
    /// An `http://` URL (or none): deliveries go out.
    Ok,
    /// An `https://` URL: accepted and kept, but the sandbox does not speak TLS, so every
    /// delivery to it is recorded as a failed attempt. The text says so.
    NoTls(String),
}

/// Checks a webhook URL and its custom headers where they are configured (platform routes,
/// control API, config file); the error names `field` or the header. An empty URL means none.
pub fn check_target(
    field: &str,
    url: &str,
    headers: &BTreeMap<String, String>,
) -> Result<TargetCheck, String> {
    if headers.len() > MAX_HEADERS {
        return Err(format!(
            "{field}: {} custom headers are more than the {MAX_HEADERS} a receiver may have",
            headers.len()
        ));
    }
    for (name, value) in headers {
        if HeaderName::try_from(name.as_str()).is_err() {
            return Err(format!("header {name:?} is not a valid HTTP header name"));
        }
        if RESERVED_HEADERS
            .iter()
            .any(|r| name.eq_ignore_ascii_case(r))
        {
            return Err(format!(
                "header {name:?} cannot be set: the sandbox sets it on every delivery (reserved: {})",
                RESERVED_HEADERS.join(", ")
            ));
        }
        if value.len() > MAX_HEADER_VALUE || HeaderValue::try_from(value.as_str()).is_err() {
            return Err(format!(
                "header {name:?} has a value that is not a valid HTTP header value (visible ASCII, at most {MAX_HEADER_VALUE} bytes, no line breaks)"
            ));
        }
    }
    if url.is_empty() {
        return Ok(TargetCheck::Ok);
    }
    let parsed = url.parse::<hyper::Uri>().map_err(|e| {
        format!("{field} {url:?} is not a valid URL ({e}): give an http:// URL with a host")
    })?;
    let scheme = parsed.scheme_str().map(str::to_ascii_lowercase);
    let host = parsed.host().filter(|h| !h.is_empty());
    match (scheme.as_deref(), host) {
        (Some("http"), Some(_)) => Ok(TargetCheck::Ok),
        (Some("https"), Some(_)) => Ok(TargetCheck::NoTls(format!(
            "{field} {url:?} is https://: the sandbox does not speak TLS, so deliveries to it are recorded as failed attempts; use an http:// URL"
        ))),
        (Some("http" | "https"), None) => Err(format!("{field} {url:?} has no host")),
        _ => Err(format!(
            "{field} {url:?} must be an http:// or https:// URL with a host"
        )),
    }
}

/// A webhook destination, parsed once, with its idle keep-alive connections.
struct Target {
    raw: String,
    /// `None` when the URL is not a valid `http://` URL.
    url: Option<hyper::Uri>,
    /// `host:port`, for connecting and the `Host` header.
    authority: String,
    /// Path and query: the request target.
    path: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    idle: Mutex<Vec<Conn>>,
}

type Conn = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

impl From<WebhookTarget> for Target {
    fn from(t: WebhookTarget) -> Target {
        let url = t.url.parse::<hyper::Uri>().ok().filter(|u| {
            u.scheme_str()
                .is_some_and(|s| s.eq_ignore_ascii_case("http"))
                && u.host().is_some_and(|h| !h.is_empty())
        });
        // Configuration refuses reserved and invalid headers; a journal written before that
        // check may still hold some, and they never go out.
        let headers = t
            .headers
            .iter()
            .filter(|(k, _)| !RESERVED_HEADERS.iter().any(|r| k.eq_ignore_ascii_case(r)))
            .filter_map(|(k, v)| {
                Some((
                    HeaderName::try_from(k.as_str()).ok()?,
                    HeaderValue::try_from(v.as_str()).ok()?,
                ))
            })
            .collect();
        let authority = url
            .as_ref()
            .and_then(|u| u.authority())
            .map(|a| {
                if a.port().is_some() {
                    a.to_string()
                } else {
                    format!("{}:80", a.host())
                }
            })
            .unwrap_or_default();
        let path = url
            .as_ref()
            .and_then(|u| u.path_and_query())
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".to_string());
        Target {
            raw: t.url,
            url,
            authority,
            path,
            headers,
            idle: Mutex::new(Vec::new()),
        }
    }
}

/// Opens a keep-alive HTTP/1.1 connection.
async fn connect(authority: &str) -> Result<Conn, String> {
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|e| format!("cannot connect to {authority}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(send)
}

/// Reads an answer body to its end, keeping nothing; false when it fails or passes
/// [`MAX_ANSWER_BYTES`] (the rest is not read).
async fn drain(mut body: hyper::body::Incoming) -> bool {
    use http_body_util::BodyExt;
    let mut read = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { return false };
        if let Some(data) = frame.data_ref() {
            read = read.saturating_add(data.len());
            if read > MAX_ANSWER_BYTES {
                return false;
            }
        }
    }
    true
}

/// Lets a shared body go out without a copy.
struct StrBytes(Arc<str>);

impl AsRef<[u8]> for StrBytes {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// A receiver's failure episode, for logging once per episode.
struct Failing {
    /// Sandbox time of the first failed attempt.
    since: Millis,
    /// Failed attempts so far.
    failures: u64,
}

/// What to log about an attempt, decided under the lock and written after it.
enum Note {
    Nothing,
    FirstFailure,
    Failure,
    Recovered { failures: u64, for_ms: Millis },
}

struct State {
    targets: HashMap<String, Arc<Target>>,
    queues: HashMap<String, Lanes>,
    held: HashMap<u64, Event>,
    retrying: HashMap<u64, Delivery>,
    /// Deliveries being sent, with the earliest time a retry could be due if they fail.
    sending: HashMap<u64, Millis>,
    attempts: VecDeque<Attempt>,
    /// Body bytes held by `attempts`.
    attempt_bytes: usize,
    attempt_seq: u64,
    next_event: u64,
    next_delivery: u64,
    chaos: Ids,
    /// Bumped by a reset: deliveries of an earlier generation still in flight are forgotten.
    generation: u64,
    /// Receivers failing now, by URL (or by number when it has no URL).
    failing: HashMap<String, Failing>,
    /// Receiver URLs paused through the control API: nothing goes to them until resumed.
    paused: HashSet<String>,
}

/// The webhook dispatcher.
pub struct Hub {
    state: Mutex<State>,
    pending: AtomicUsize,
    /// While the manual clock advances: its target. An event queued inside the jump counts as
    /// queued at its end (the sender had no time to send it within the jump), so the lag is
    /// never an artefact of the jump. `Millis::MIN` otherwise.
    queue_floor: AtomicI64,
    cfg: WebhookConfig,
    /// The always-on receivers of `webhooks.subscribers`, in order.
    subscribers: Vec<Arc<Target>>,
    app_secret: String,
    clock: Arc<Clock>,
    sched: Arc<Scheduler>,
    journal: Journal,
    attempted: Notify,
    /// The control API's live feed (attempts go to it while someone listens).
    feed: Arc<crate::feed::Feed>,
    /// Delivery attempts by outcome (for the metrics).
    pub outcomes: prometheus_client::metrics::family::Family<
        crate::metrics::DeliveryLabels,
        prometheus_client::metrics::counter::Counter,
    >,
}

type HmacSha256 = Hmac<Sha256>;

/// `sha256=<hex HMAC-SHA256(secret, body)>`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = match HmacSha256::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(), // HMAC takes keys of any length; not reachable.
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A delay for a log line: "5 s", "1.5 s".
fn seconds(ms: Millis) -> String {
    if ms % 1_000 == 0 {
        format!("{} s", ms / 1_000)
    } else {
        format!("{:.1} s", ms as f64 / 1_000.0)
    }
}

impl Hub {
    /// A dispatcher; `seed` drives its chaos.
    pub fn new(
        cfg: WebhookConfig,
        app_secret: String,
        seed: u64,
        clock: Arc<Clock>,
        sched: Arc<Scheduler>,
        journal: Journal,
        feed: Arc<crate::feed::Feed>,
    ) -> Arc<Hub> {
        let subscribers = cfg
            .subscribers
            .iter()
            .map(|url| {
                Arc::new(Target::from(WebhookTarget {
                    url: url.clone(),
                    headers: BTreeMap::new(),
                }))
            })
            .collect();
        Arc::new(Hub {
            state: Mutex::new(State {
                targets: HashMap::new(),
                queues: HashMap::new(),
                held: HashMap::new(),
                retrying: HashMap::new(),
                sending: HashMap::new(),
                attempts: VecDeque::new(),
                attempt_bytes: 0,
                attempt_seq: 0,
                next_event: 1,
                next_delivery: 1,
                chaos: Ids::new(seed, 2),
                generation: 0,
                failing: HashMap::new(),
                paused: HashSet::new(),
            }),
            pending: AtomicUsize::new(0),
            queue_floor: AtomicI64::new(Millis::MIN),
            cfg,
            subscribers,
            app_secret,
            clock,
            sched,
            journal,
            attempted: Notify::new(),
            feed,
            outcomes: Default::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets where a number's webhooks go.
    pub fn set_target(&self, phone_number_id: &str, target: WebhookTarget) {
        self.lock()
            .targets
            .insert(phone_number_id.to_string(), Arc::new(target.into()));
    }

    /// Events queued, held or awaiting a retry (each receiver's copy counts).
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }

    /// The manual clock is moving to `target` (`Some`), or has arrived (`None`): see
    /// `queue_floor`.
    pub fn set_advancing(&self, target: Option<Millis>) {
        self.queue_floor
            .store(target.unwrap_or(Millis::MIN), Ordering::Relaxed);
    }

    /// How far behind the sender is at `now`, ms: the age of the oldest event waiting in the
    /// queue of a receiver that is not paused; 0 when nothing waits. Events held by chaos and
    /// retries do not count: they wait on purpose (a receiver that fails builds retries, which
    /// `limits.max_pending` bounds).
    pub fn lag_ms(&self, now: Millis) -> Millis {
        let st = self.lock();
        let mut oldest: Option<Millis> = None;
        for (pnid, lanes) in &st.queues {
            let lanes = std::iter::once((None, &lanes.own)).chain(
                lanes
                    .subscribers
                    .iter()
                    .enumerate()
                    .map(|(i, q)| (Some(i), q)),
            );
            for (subscriber, q) in lanes {
                let Some(since) = q.ready.front().map(|e| e.queued_at) else {
                    continue;
                };
                if oldest.is_some_and(|o| o <= since) {
                    continue;
                }
                if !st.paused.is_empty() {
                    let url = match subscriber {
                        None => st.targets.get(pnid).map(|t| t.raw.as_str()),
                        Some(i) => self.subscribers.get(i).map(|t| t.raw.as_str()),
                    };
                    if url.is_some_and(|u| st.paused.contains(u)) {
                        continue;
                    }
                }
                oldest = Some(since);
            }
        }
        oldest.map_or(0, |o| now.saturating_sub(o).max(0))
    }

    /// The URL of a subscriber.
    fn subscriber_url(&self, subscriber: Option<usize>) -> Option<String> {
        subscriber.and_then(|i| self.subscribers.get(i).map(|t| t.raw.clone()))
    }

    /// Where a journalled subscriber copy goes after a restart: the subscriber with the same
    /// URL; when that URL is gone, the subscriber at the same position (a receiver whose address
    /// changed, such as the gateway on a new port); `Err` (why) when there is none.
    fn remap(&self, subscriber: Option<usize>, url: Option<&str>) -> Result<Option<usize>, String> {
        let Some(i) = subscriber else {
            return Ok(None);
        };
        if let Some(j) = url.and_then(|u| self.subscribers.iter().position(|t| t.raw == u)) {
            return Ok(Some(j));
        }
        if i < self.subscribers.len() {
            return Ok(Some(i));
        }
        Err(format!(
            "webhook subscriber #{i} ({}) is no longer configured (webhooks.subscribers has {}); the event was dropped at the restart",
            url.unwrap_or("unknown URL"),
            self.subscribers.len()
        ))
    }

    /// Restores journalled events and the recent attempt history after a restart, and schedules
    /// the events. A subscriber's copy goes to its receiver as [`Hub::remap`] finds it; one whose
    /// subscriber is gone is dropped with an attempt record that says why.
    pub fn restore(self: &Arc<Self>, rows: Vec<(String, String)>, attempts: Vec<String>) {
        let now = self.clock.now();
        let persist = !self.journal.is_memory();
        let mut pnids = Vec::new();
        let mut writes = Vec::new();
        {
            let mut st = self.lock();
            for json in attempts {
                if let Ok(a) = serde_json::from_str::<Attempt>(&json) {
                    st.attempt_seq = st.attempt_seq.max(a.seq);
                    st.attempt_bytes += a.cost();
                    st.attempts.push_back(a);
                }
            }
            let mut deliveries: HashMap<u64, Restored> = HashMap::new();
            // Copies whose subscriber is gone, by delivery (or event id when never attempted):
            // why, attempts so far, the events.
            let mut orphans: BTreeMap<(bool, u64), Orphans> = BTreeMap::new();
            for (_, json) in rows {
                let Ok(mut stored) = serde_json::from_str::<StoredEvent>(&json) else {
                    continue;
                };
                stored.event.key_hash = key_hash(&stored.event.key);
                stored.event.queued_at = now;
                st.next_event = st.next_event.max(stored.event.id + 1);
                if let Some((did, ..)) = stored.retry {
                    st.next_delivery = st.next_delivery.max(did + 1);
                }
                match self.remap(stored.event.subscriber, stored.subscriber_url.as_deref()) {
                    Ok(s) => stored.event.subscriber = s,
                    Err(why) => {
                        let (key, attempts, pos) = match stored.retry {
                            Some((did, pos, attempts, ..)) => ((true, did), attempts, pos),
                            None => ((false, stored.event.id), 0, 0),
                        };
                        orphans
                            .entry(key)
                            .or_insert_with(|| (why, attempts, Vec::new()))
                            .2
                            .push((pos, stored));
                        continue;
                    }
                }
                self.pending.fetch_add(1, Ordering::Relaxed);
                if !pnids.contains(&stored.event.phone_number_id) {
                    pnids.push(stored.event.phone_number_id.clone());
                }
                match stored.retry {
                    Some((did, pos, attempt, first_at, next_at)) => {
                        let entry = deliveries.entry(did).or_insert_with(|| {
                            let d = Delivery {
                                id: did,
                                phone_number_id: stored.event.phone_number_id.clone(),
                                subscriber: stored.event.subscriber,
                                events: Vec::new(),
                                attempt,
                                first_at,
                                at: next_at,
                                generation: 0,
                            };
                            (d, Vec::new(), next_at)
                        });
                        entry.1.push((pos, stored.event));
                    }
                    None => {
                        let sub = stored.event.subscriber;
                        st.queues
                            .entry(stored.event.phone_number_id.clone())
                            .or_default()
                            .lane(sub)
                            .ready
                            .push_back(stored.event);
                    }
                }
            }
            for lanes in st.queues.values_mut() {
                for q in std::iter::once(&mut lanes.own).chain(lanes.subscribers.iter_mut()) {
                    q.ready.make_contiguous().sort_by_key(|e| e.id);
                }
            }
            let mut restored: Vec<_> = deliveries.into_iter().collect();
            restored.sort_by_key(|(did, _)| *did);
            for (did, (mut d, mut events, next_at)) in restored {
                events.sort_by_key(|(pos, _)| *pos);
                d.events = events.into_iter().map(|(_, e)| e).collect();
                st.retrying.insert(did, d);
                self.sched.at(next_at.max(now), Timer::DeliveryRetry(did));
            }
            for ((retried, id), (why, attempts, mut events)) in orphans {
                events.sort_by_key(|(pos, _)| *pos);
                let url = events
                    .first()
                    .and_then(|(_, s)| s.subscriber_url.clone())
                    .unwrap_or_default();
                let subscriber = events.first().and_then(|(_, s)| s.event.subscriber);
                let events: Vec<Event> = events.into_iter().map(|(_, s)| s.event).collect();
                let Some(first) = events.first() else {
                    continue;
                };
                let delivery_id = if retried {
                    id
                } else {
                    st.next_delivery += 1;
                    st.next_delivery - 1
                };
                let body: Arc<str> = Arc::from(build_body(&events));
                tracing::info!(
                    url = %url,
                    phone_number_id = %first.phone_number_id,
                    events = events.len(),
                    reason = %why,
                    "pending webhook delivery dropped: its subscriber is no longer configured"
                );
                st.attempt_seq += 1;
                let attempt = Attempt {
                    seq: st.attempt_seq,
                    delivery_id,
                    attempt: attempts + 1,
                    phone_number_id: first.phone_number_id.clone(),
                    url,
                    subscriber,
                    at: now,
                    signature: sign(&self.app_secret, body.as_bytes()),
                    body,
                    status: None,
                    error: Some(why),
                    latency_ms: 0.0,
                    outcome: Outcome::Dropped,
                    next_retry_at: None,
                    events: events.iter().map(|e| e.summary.clone()).collect(),
                    redelivery_of: None,
                };
                if persist {
                    if let Ok(json) = serde_json::to_string(&attempt) {
                        writes.push(Write::Attempt { data: json });
                    }
                    for e in &events {
                        writes.push(Write::Delete {
                            kind: Kind::Delivery,
                            id: e.id.to_string(),
                        });
                    }
                }
                self.record(&mut st, attempt);
            }
        }
        self.journal.submit_detached(writes);
        for p in pnids {
            self.pump(&p);
        }
    }

    /// Keeps an attempt in the bounded history.
    fn record(&self, st: &mut State, attempt: Attempt) {
        st.attempt_bytes += attempt.cost();
        st.attempts.push_back(attempt);
        while st.attempts.len() > self.cfg.keep_attempts.max(1)
            || (st.attempt_bytes > self.cfg.keep_attempt_bytes && st.attempts.len() > 1)
        {
            if let Some(old) = st.attempts.pop_front() {
                st.attempt_bytes = st.attempt_bytes.saturating_sub(old.cost());
            }
        }
    }

    /// Numbers and queues events (applying chaos) without starting deliveries; returns the
    /// journal rows to write with them and the numbers to pump once they are written.
    ///
    /// Each event becomes one copy per receiver: the number's own URL (skipped when the number
    /// has none and subscribers are configured), then each subscriber in order. Chaos is drawn
    /// per copy, in that order, so with no subscribers the draws are those of a single receiver.
    pub fn stage(&self, events: Vec<NewEvent>) -> (Vec<Write>, Vec<String>) {
        let mut writes = Vec::new();
        let mut pnids: Vec<String> = Vec::new();
        if events.is_empty() {
            return (writes, pnids);
        }
        let now = self.clock.now();
        let chaos = &self.cfg.chaos;
        let persist = !self.journal.is_memory();
        let subscribers = self.subscribers.len();
        let mut st = self.lock();
        for new in events {
            if !pnids.contains(&new.phone_number_id) {
                pnids.push(new.phone_number_id.clone());
            }
            let own = subscribers == 0
                || st
                    .targets
                    .get(&new.phone_number_id)
                    .is_some_and(|t| !t.raw.is_empty());
            let to_subscribers = if new.own_only { 0 } else { subscribers };
            let receivers = own
                .then_some(None)
                .into_iter()
                .chain((0..to_subscribers).map(Some));
            let count = usize::from(own) + to_subscribers;
            let mut new = Some(new);
            for (r, subscriber) in receivers.enumerate() {
                let copies = if st.chaos.chance(chaos.duplicate) {
                    2
                } else {
                    1
                };
                for copy in 0..copies {
                    let last = r + 1 == count && copy + 1 == copies;
                    let NewEvent {
                        phone_number_id,
                        waba_id,
                        key,
                        time,
                        change,
                        summary,
                        ..
                    } = match (last, new.as_ref()) {
                        (true, _) => match new.take() {
                            Some(n) => n,
                            None => break,
                        },
                        (false, Some(n)) => n.clone(),
                        (false, None) => break,
                    };
                    let id = st.next_event;
                    st.next_event += 1;
                    let event = Event {
                        id,
                        phone_number_id,
                        waba_id,
                        key_hash: key_hash(&key),
                        key,
                        time,
                        change,
                        summary: Arc::new(summary),
                        subscriber,
                        queued_at: now.max(self.queue_floor.load(Ordering::Relaxed)),
                    };
                    if persist
                        && let Ok(json) = serde_json::to_string(&StoredEvent {
                            event: event.clone(),
                            retry: None,
                            subscriber_url: self.subscriber_url(subscriber),
                        })
                    {
                        writes.push(Write::Put {
                            kind: Kind::Delivery,
                            id: id.to_string(),
                            data: json,
                        });
                    }
                    self.pending.fetch_add(1, Ordering::Relaxed);
                    let mut hold = 0;
                    if st.chaos.chance(chaos.reorder) {
                        hold = chaos.reorder_hold_ms.max(1);
                    }
                    if st.chaos.chance(chaos.delay) {
                        let range = chaos.delay_ms.unwrap_or(crate::config::Latency {
                            min_ms: 500,
                            max_ms: 5_000,
                        });
                        hold = hold.max(st.chaos.between(range.min_ms, range.max_ms));
                    }
                    if hold > 0 {
                        st.held.insert(id, event);
                        self.sched.at(now + hold, Timer::EventReady(id));
                    } else {
                        st.queues
                            .entry(event.phone_number_id.clone())
                            .or_default()
                            .lane(subscriber)
                            .ready
                            .push_back(event);
                    }
                }
            }
        }
        (writes, pnids)
    }

    /// Queues events (journalled) and starts sending; returns the deliveries started.
    pub fn enqueue(self: &Arc<Self>, events: Vec<NewEvent>) -> Vec<u64> {
        let (writes, pnids) = self.stage(events);
        self.journal.submit_detached(writes);
        self.pump_all(&pnids)
    }

    /// Starts what can be started for these numbers; returns the deliveries started.
    pub fn pump_all(self: &Arc<Self>, pnids: &[String]) -> Vec<u64> {
        pnids.iter().flat_map(|p| self.pump(p)).collect()
    }

    /// A held event's timer fired.
    pub fn on_event_ready(self: &Arc<Self>, id: u64) -> Vec<u64> {
        let pnid = {
            let mut st = self.lock();
            let Some(mut event) = st.held.remove(&id) else {
                return Vec::new();
            };
            event.queued_at = self
                .clock
                .now()
                .max(self.queue_floor.load(Ordering::Relaxed));
            let pnid = event.phone_number_id.clone();
            let sub = event.subscriber;
            st.queues
                .entry(pnid.clone())
                .or_default()
                .lane(sub)
                .ready
                .push_back(event);
            pnid
        };
        self.pump(&pnid)
    }

    /// A retry timer due at `due` fired (the clock may already be later inside an `advance`).
    pub fn on_retry(self: &Arc<Self>, id: u64, due: Millis) -> Vec<u64> {
        let pnid = {
            let mut st = self.lock();
            let Some(mut d) = st.retrying.remove(&id) else {
                return Vec::new();
            };
            d.at = due;
            let pnid = d.phone_number_id.clone();
            let sub = d.subscriber;
            st.queues
                .entry(pnid.clone())
                .or_default()
                .lane(sub)
                .retry_ready
                .push_back(d);
            pnid
        };
        self.pump(&pnid)
    }

    /// Starts as many deliveries for `pnid` as the in-flight budget of each of its receivers
    /// allows.
    fn pump(self: &Arc<Self>, pnid: &str) -> Vec<u64> {
        let now = self.clock.now();
        let max = self.cfg.max_in_flight.max(1);
        let batch = self.cfg.batch_size.max(1);
        let mut starts: Vec<(Delivery, Option<Arc<Target>>)> = Vec::new();
        {
            let mut st = self.lock();
            let own_target = st.targets.get(pnid).cloned();
            let mut next_delivery = st.next_delivery;
            let generation = st.generation;
            let State {
                queues,
                sending,
                paused,
                ..
            } = &mut *st;
            let Some(lanes) = queues.get_mut(pnid) else {
                return Vec::new();
            };
            let lanes = std::iter::once((None, &mut lanes.own)).chain(
                lanes
                    .subscribers
                    .iter_mut()
                    .enumerate()
                    .map(|(i, q)| (Some(i), q)),
            );
            for (subscriber, q) in lanes {
                let target = match subscriber {
                    None => own_target.clone(),
                    Some(i) => self.subscribers.get(i).cloned(),
                };
                if !paused.is_empty() && target.as_ref().is_some_and(|t| paused.contains(&t.raw)) {
                    continue;
                }
                while q.in_flight < max {
                    if let Some(mut d) = q.retry_ready.pop_front() {
                        q.in_flight += 1;
                        d.generation = generation;
                        sending.insert(d.id, d.at + self.backoff(d.attempt + 1));
                        starts.push((d, target.clone()));
                        continue;
                    }
                    let events = take_batch(q, batch);
                    if events.is_empty() {
                        break;
                    }
                    for e in &events {
                        q.busy.insert(e.key_hash);
                    }
                    q.in_flight += 1;
                    sending.insert(next_delivery, now + self.backoff(1));
                    starts.push((
                        Delivery {
                            id: next_delivery,
                            phone_number_id: pnid.to_string(),
                            subscriber,
                            events,
                            attempt: 0,
                            first_at: now,
                            at: now,
                            generation,
                        },
                        target.clone(),
                    ));
                    next_delivery += 1;
                }
            }
            st.next_delivery = next_delivery;
        }
        let ids = starts.iter().map(|(d, _)| d.id).collect();
        for (d, target) in starts {
            let hub = self.clone();
            tokio::spawn(async move { hub.send(d, target).await });
        }
        ids
    }

    async fn send(self: Arc<Self>, mut d: Delivery, target: Option<Arc<Target>>) {
        d.attempt += 1;
        let body: Arc<str> = Arc::from(build_body(&d.events));
        let signature = sign(&self.app_secret, body.as_bytes());
        let started = Instant::now();
        let (url, status, error) = match target.as_deref() {
            Some(t @ Target { url: Some(_), .. }) => {
                let (status, error) = self.post(t, body.clone(), &signature).await;
                (t.raw.clone(), status, error)
            }
            Some(Target { raw, url: None, .. }) if !raw.is_empty() => (
                raw.clone(),
                None,
                Some(format!(
                    "the webhook URL {raw:?} is not a valid http:// URL (TLS is not supported)"
                )),
            ),
            _ => (
                String::new(),
                None,
                Some(format!(
                    "no webhook URL is configured for phone number {}",
                    d.phone_number_id
                )),
            ),
        };
        let latency_ms = started.elapsed().as_secs_f64() * 1_000.0;
        let retryable = !url.is_empty() && target.as_ref().is_some_and(|t| t.url.is_some());
        self.finish(
            d, url, body, signature, status, error, latency_ms, retryable,
        );
    }

    /// One POST over a kept-alive connection of the target (or a new one), within the timeout:
    /// the answer's status must come within `webhooks.timeout_ms`, and its body is read (up to
    /// [`MAX_ANSWER_BYTES`]) only for what is left of that time.
    async fn post(
        &self,
        target: &Target,
        body: Arc<str>,
        signature: &str,
    ) -> (Option<u16>, Option<String>) {
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(self.cfg.timeout_ms.max(1));
        match tokio::time::timeout_at(deadline, self.exchange(target, body, signature, deadline))
            .await
        {
            Ok(Ok(code)) => (
                Some(code),
                (code != 200).then(|| format!("receiver answered HTTP {code}")),
            ),
            Ok(Err(e)) => (None, Some(format!("request failed: {e}"))),
            Err(_) => (
                None,
                Some(format!(
                    "receiver did not answer within {} ms",
                    self.cfg.timeout_ms
                )),
            ),
        }
    }

    async fn exchange(
        &self,
        target: &Target,
        body: Arc<str>,
        signature: &str,
        deadline: tokio::time::Instant,
    ) -> Result<u16, String> {
        let build = || {
            let mut req = hyper::Request::post(target.path.as_str())
                .header(HOST, target.authority.as_str())
                .header(CONTENT_TYPE, "application/json")
                .header(USER_AGENT, "facebookexternalua")
                .header("x-hub-signature-256", signature);
            for (k, v) in &target.headers {
                req = req.header(k, v);
            }
            req.body(Full::new(Bytes::from_owner(StrBytes(body.clone()))))
                .map_err(|e| e.to_string())
        };
        // A kept-alive connection the receiver closed meanwhile fails before anything is sent:
        // then one fresh connection is tried.
        let idle = target
            .idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .filter(|c| !c.is_closed());
        let (mut conn, reused) = match idle {
            Some(c) => (c, true),
            None => (connect(&target.authority).await?, false),
        };
        let resp = match conn.send_request(build()?).await {
            Ok(r) => r,
            Err(e) if reused && (e.is_canceled() || e.is_closed() || e.is_incomplete_message()) => {
                conn = connect(&target.authority).await?;
                conn.send_request(build()?)
                    .await
                    .map_err(|e| e.to_string())?
            }
            Err(e) => return Err(e.to_string()),
        };
        let code = resp.status().as_u16();
        // The status decides. The body is read (so the connection can be reused) up to a small
        // bound and within the deadline; a longer or slower answer is dropped with its
        // connection.
        let complete = tokio::time::timeout_at(deadline, drain(resp.into_body()))
            .await
            .unwrap_or(false);
        if complete && !conn.is_closed() {
            target
                .idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(conn);
        }
        Ok(code)
    }

    #[allow(clippy::too_many_arguments)]
    fn finish(
        self: &Arc<Self>,
        d: Delivery,
        url: String,
        body: Arc<str>,
        signature: String,
        status: Option<u16>,
        error: Option<String>,
        latency_ms: f64,
        retryable: bool,
    ) {
        let ok = status == Some(200);
        // Retries count from the attempt's own start on the sandbox clock, not from when the
        // receiver happened to answer.
        let next_at = d.at + self.backoff(d.attempt);
        let retry = !ok && retryable && next_at - d.first_at <= self.cfg.retry_window_ms;
        let outcome = if ok {
            Outcome::Delivered
        } else if retry {
            Outcome::Retrying
        } else {
            Outcome::Dropped
        };
        self.outcomes
            .get_or_create(&crate::metrics::DeliveryLabels {
                outcome: match outcome {
                    Outcome::Delivered => "delivered",
                    Outcome::Retrying => "retrying",
                    Outcome::Dropped => "failed",
                },
            })
            .inc();
        let persist = !self.journal.is_memory();
        let mut writes = Vec::new();
        let pnid = d.phone_number_id.clone();
        let line;
        {
            let mut st = self.lock();
            if d.generation != st.generation {
                // A reset came in between: this delivery belongs to a world that is gone.
                st.sending.remove(&d.id);
                drop(st);
                self.attempted.notify_waiters();
                return;
            }
            let note = self.note(&mut st, &url, &pnid, d.at, ok);
            let dropped_after_window = outcome == Outcome::Dropped && retryable;
            // Most attempts log nothing: no copies for them.
            line = (!matches!(note, Note::Nothing) || dropped_after_window).then(|| LogLine {
                note,
                url: url.clone(),
                phone_number_id: pnid.clone(),
                subscriber: d.subscriber,
                delivery_id: d.id,
                attempt: d.attempt,
                error: error.clone(),
                retry_in: retry.then(|| next_at - d.at),
                dropped_after_window,
                window_ms: self.cfg.retry_window_ms,
            });
            st.attempt_seq += 1;
            let attempt = Attempt {
                seq: st.attempt_seq,
                delivery_id: d.id,
                attempt: d.attempt,
                phone_number_id: pnid.clone(),
                url,
                subscriber: d.subscriber,
                at: d.at,
                body,
                signature,
                status,
                error,
                latency_ms,
                outcome,
                next_retry_at: retry.then_some(next_at),
                events: d.events.iter().map(|e| e.summary.clone()).collect(),
                redelivery_of: None,
            };
            if persist && let Ok(json) = serde_json::to_string(&attempt) {
                writes.push(Write::Attempt { data: json });
            }
            if self.feed.watching() {
                self.feed.publish("attempt", &attempt_summary(&attempt));
            }
            self.record(&mut st, attempt);
            st.sending.remove(&d.id);
            if let Some(lanes) = st.queues.get_mut(&pnid) {
                let q = lanes.lane(d.subscriber);
                q.in_flight = q.in_flight.saturating_sub(1);
                for e in &d.events {
                    q.busy.remove(&e.key_hash);
                }
                // A backlog drained: its queue gives the room back.
                if q.ready.capacity() > SHRINK_ABOVE && q.ready.len() < q.ready.capacity() / 8 {
                    let keep = q.ready.len() * 2;
                    q.ready.shrink_to(keep);
                }
            }
            if retry {
                if persist {
                    let subscriber_url = self.subscriber_url(d.subscriber);
                    for (pos, e) in d.events.iter().enumerate() {
                        let stored = StoredEvent {
                            event: e.clone(),
                            retry: Some((d.id, pos, d.attempt, d.first_at, next_at)),
                            subscriber_url: subscriber_url.clone(),
                        };
                        if let Ok(json) = serde_json::to_string(&stored) {
                            writes.push(Write::Put {
                                kind: Kind::Delivery,
                                id: e.id.to_string(),
                                data: json,
                            });
                        }
                    }
                }
                let id = d.id;
                st.retrying.insert(id, d);
                self.sched.at(next_at, Timer::DeliveryRetry(id));
            } else {
                let n = d.events.len();
                let _ = self
                    .pending
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |p| {
                        Some(p.saturating_sub(n))
                    });
                if persist {
                    for e in &d.events {
                        writes.push(Write::Delete {
                            kind: Kind::Delivery,
                            id: e.id.to_string(),
                        });
                    }
                }
            }
        }
        if let Some(line) = line {
            line.write();
        }
        self.journal.submit_detached(writes);
        self.pump(&pnid);
        self.attempted.notify_waiters();
    }

    /// Follows the receiver's failure episode; says what to log about this attempt.
    fn note(&self, st: &mut State, url: &str, pnid: &str, at: Millis, ok: bool) -> Note {
        if ok {
            if st.failing.is_empty() {
                return Note::Nothing;
            }
            return match st.failing.remove(url) {
                Some(f) => Note::Recovered {
                    failures: f.failures,
                    for_ms: (at - f.since).max(0),
                },
                None => Note::Nothing,
            };
        }
        let key = if url.is_empty() {
            format!("phone number {pnid} without a webhook URL")
        } else {
            url.to_string()
        };
        match st.failing.get_mut(&key) {
            Some(f) => {
                f.failures += 1;
                Note::Failure
            }
            None => {
                st.failing.insert(
                    key,
                    Failing {
                        since: at,
                        failures: 1,
                    },
                );
                Note::FirstFailure
            }
        }
    }

    /// Delay before retry number `attempt` (1-based): doubling from the initial backoff, capped.
    fn backoff(&self, attempt: u32) -> Millis {
        self.cfg
            .initial_backoff_ms
            .saturating_mul(1i64 << attempt.saturating_sub(1).min(30))
            .min(self.cfg.max_backoff_ms.max(1))
            .max(1)
    }

    /// Waits (wall-clock, until `deadline`) for the answers of deliveries in flight whose retry,
    /// should they fail, would be due by `until`. The manual clock's `advance` waits on this, so
    /// that a retry falling inside the same advance fires in it, at its own time.
    pub async fn settle(&self, until: Millis, deadline: tokio::time::Instant) {
        loop {
            let notified = self.attempted.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let busy = self
                .lock()
                .sending
                .values()
                .any(|retry_at| *retry_at <= until);
            if !busy || tokio::time::timeout_at(deadline, notified).await.is_err() {
                return;
            }
        }
    }

    /// Recorded attempts matching `filter`, oldest first, at most `limit` (the latest ones).
    pub fn attempts(&self, filter: &AttemptFilter, limit: usize) -> Vec<Attempt> {
        let st = self.lock();
        let matching: Vec<&Attempt> = st.attempts.iter().filter(|a| filter.matches(a)).collect();
        let skip = matching.len().saturating_sub(limit);
        matching.into_iter().skip(skip).cloned().collect()
    }

    /// Waits (wall-clock, at most `timeout`) until `count` attempts match `filter`.
    pub async fn wait_for(
        &self,
        filter: &AttemptFilter,
        count: usize,
        timeout: Duration,
    ) -> Option<Vec<Attempt>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.attempted.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let found = self.attempts(filter, usize::MAX);
            if found.len() >= count.max(1) {
                return Some(found);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    /// Pauses (`true`) or resumes a receiver URL: while paused, its events wait in their queues
    /// and its retries wait when due; nothing is sent to it. Resuming starts what waits. Returns
    /// whether the URL receives anything (a number's own URL or a subscriber).
    pub fn set_paused(self: &Arc<Self>, url: &str, pause: bool) -> bool {
        let (known, pnids) = {
            let mut st = self.lock();
            let known = self.subscribers.iter().any(|t| t.raw == url)
                || st.targets.values().any(|t| t.raw == url);
            if pause {
                if known {
                    st.paused.insert(url.to_string());
                }
            } else {
                st.paused.remove(url);
            }
            let pnids: Vec<String> = if pause {
                Vec::new()
            } else {
                st.queues.keys().cloned().collect()
            };
            (known, pnids)
        };
        self.pump_all(&pnids);
        self.feed.publish(
            "receivers",
            &serde_json::json!({ "url": url, "paused": pause && known }),
        );
        known
    }

    /// Every receiver — each number's own URL and each subscriber — with what waits for it.
    pub fn receivers(&self) -> Vec<ReceiverState> {
        let st = self.lock();
        let mut out: BTreeMap<String, ReceiverState> = BTreeMap::new();
        let mut entry = |url: &str, subscriber: Option<usize>| -> String {
            let r = out.entry(url.to_string()).or_insert_with(|| ReceiverState {
                url: url.to_string(),
                subscriber,
                phone_number_ids: Vec::new(),
                paused: st.paused.contains(url),
                queued: 0,
                in_flight: 0,
                retrying: 0,
                failing_since: st.failing.get(url).map(|f| f.since),
                failed_attempts: st.failing.get(url).map_or(0, |f| f.failures),
            });
            r.url.clone()
        };
        let mut own: Vec<(&String, &Arc<Target>)> = st.targets.iter().collect();
        own.sort_by(|a, b| a.0.cmp(b.0));
        let mut own_urls = HashMap::new();
        for (pnid, t) in own {
            if t.raw.is_empty() {
                continue;
            }
            let key = entry(&t.raw, None);
            own_urls.insert(pnid.clone(), key);
        }
        for (i, t) in self.subscribers.iter().enumerate() {
            entry(&t.raw, Some(i));
        }
        for (pnid, lanes) in &st.queues {
            let lanes = std::iter::once((None, &lanes.own)).chain(
                lanes
                    .subscribers
                    .iter()
                    .enumerate()
                    .map(|(i, q)| (Some(i), q)),
            );
            for (subscriber, q) in lanes {
                let url = match subscriber {
                    None => own_urls.get(pnid).cloned(),
                    Some(i) => self.subscribers.get(i).map(|t| t.raw.clone()),
                };
                if let Some(r) = url.and_then(|u| out.get_mut(&u)) {
                    r.queued += q.ready.len() + q.retry_ready.len();
                    r.in_flight += q.in_flight;
                }
            }
        }
        for d in st.retrying.values() {
            let url = match d.subscriber {
                None => own_urls.get(&d.phone_number_id).cloned(),
                Some(i) => self.subscribers.get(i).map(|t| t.raw.clone()),
            };
            if let Some(r) = url.and_then(|u| out.get_mut(&u)) {
                r.retrying += d.events.len();
            }
        }
        for (pnid, url) in &own_urls {
            if let Some(r) = out.get_mut(url) {
                r.phone_number_ids.push(pnid.clone());
            }
        }
        out.into_values().collect()
    }

    /// Sends a recorded attempt's body once more, to the same receiver (with its current custom
    /// headers): one POST, not retried, recorded as an attempt of its own (`redelivery_of`).
    /// `Err` when there is no such attempt or it had nowhere to go.
    pub async fn redeliver(self: &Arc<Self>, seq: u64) -> Result<Attempt, String> {
        let (old, target) = {
            let st = self.lock();
            let old = st
                .attempts
                .iter()
                .find(|a| a.seq == seq)
                .cloned()
                .ok_or_else(|| format!("no attempt {seq} (the history keeps the latest ones)"))?;
            let target = match old.subscriber {
                Some(i) => self
                    .subscribers
                    .get(i)
                    .filter(|t| t.raw == old.url)
                    .cloned(),
                None => st
                    .targets
                    .get(&old.phone_number_id)
                    .filter(|t| t.raw == old.url)
                    .cloned(),
            };
            (old, target)
        };
        if old.url.is_empty() {
            return Err(format!(
                "attempt {seq} had no webhook URL to go to; configure one and send again"
            ));
        }
        let target = target.unwrap_or_else(|| {
            Arc::new(Target::from(WebhookTarget {
                url: old.url.clone(),
                headers: BTreeMap::new(),
            }))
        });
        if target.url.is_none() {
            return Err(format!(
                "the webhook URL {:?} is not a valid http:// URL (TLS is not supported)",
                old.url
            ));
        }
        let at = self.clock.now();
        let started = Instant::now();
        let (status, error) = self.post(&target, old.body.clone(), &old.signature).await;
        let latency_ms = started.elapsed().as_secs_f64() * 1_000.0;
        let ok = status == Some(200);
        let attempt = {
            let mut st = self.lock();
            st.attempt_seq += 1;
            st.next_delivery += 1;
            let attempt = Attempt {
                seq: st.attempt_seq,
                delivery_id: st.next_delivery - 1,
                attempt: 1,
                phone_number_id: old.phone_number_id.clone(),
                url: old.url.clone(),
                subscriber: old.subscriber,
                at,
                body: old.body.clone(),
                signature: old.signature.clone(),
                status,
                error,
                latency_ms,
                outcome: if ok {
                    Outcome::Delivered
                } else {
                    Outcome::Dropped
                },
                next_retry_at: None,
                events: old.events.clone(),
                redelivery_of: Some(seq),
            };
            if !self.journal.is_memory()
                && let Ok(json) = serde_json::to_string(&attempt)
            {
                self.journal
                    .submit_detached(vec![Write::Attempt { data: json }]);
            }
            self.record(&mut st, attempt.clone());
            attempt
        };
        self.feed.publish("attempt", &attempt_summary(&attempt));
        self.attempted.notify_waiters();
        Ok(attempt)
    }

    /// Forgets every event, attempt and webhook target (control API reset); chaos starts over
    /// from `seed`. Deliveries in flight finish unrecorded. The caller sets the targets again.
    pub fn reset(&self, seed: u64) {
        let mut st = self.lock();
        st.generation += 1;
        st.targets.clear();
        st.queues.clear();
        st.held.clear();
        st.retrying.clear();
        st.sending.clear();
        st.attempts.clear();
        st.attempt_bytes = 0;
        st.failing.clear();
        st.paused.clear();
        st.chaos = Ids::new(seed, 2);
        self.pending.store(0, Ordering::Relaxed);
        drop(st);
        self.attempted.notify_waiters();
    }
}

/// A receiver and what waits for it (`GET /_mynah/webhooks/receivers`).
#[derive(Debug, Clone, Serialize)]
pub struct ReceiverState {
    /// Its URL.
    pub url: String,
    /// The subscriber it is (index in `webhooks.subscribers`); absent for numbers' own URLs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscriber: Option<usize>,
    /// The numbers whose own URL it is.
    pub phone_number_ids: Vec<String>,
    /// Paused through the control API.
    pub paused: bool,
    /// Events waiting to go (queued, or due for a retry).
    pub queued: usize,
    /// Deliveries in flight.
    pub in_flight: usize,
    /// Events waiting for a retry timer.
    pub retrying: usize,
    /// Sandbox time of the first failure of its current failure episode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<Millis>,
    /// Failed attempts in the current episode.
    pub failed_attempts: u64,
}

/// An attempt for the live feed: everything but its body.
fn attempt_summary(a: &Attempt) -> serde_json::Value {
    serde_json::json!({
        "seq": a.seq,
        "delivery_id": a.delivery_id,
        "attempt": a.attempt,
        "phone_number_id": a.phone_number_id,
        "url": a.url,
        "at": a.at,
        "status": a.status,
        "error": a.error,
        "latency_ms": a.latency_ms,
        "outcome": a.outcome,
        "next_retry_at": a.next_retry_at,
        "events": a.events,
        "redelivery_of": a.redelivery_of,
    })
}

/// A log line about an attempt, written once the hub's lock is released.
struct LogLine {
    note: Note,
    url: String,
    phone_number_id: String,
    subscriber: Option<usize>,
    delivery_id: u64,
    attempt: u32,
    error: Option<String>,
    retry_in: Option<Millis>,
    dropped_after_window: bool,
    window_ms: Millis,
}

impl LogLine {
    fn write(&self) {
        let receiver = match self.subscriber {
            None => "own".to_string(),
            Some(i) => format!("subscriber #{i}"),
        };
        let error = self.error.as_deref().unwrap_or("");
        let retry_in = self.retry_in.map(seconds);
        let retry = match &retry_in {
            Some(s) => format!("retrying in {s}"),
            None => "not retried".to_string(),
        };
        let retry_in = retry_in.unwrap_or_else(|| "never".to_string());
        match &self.note {
            Note::Nothing => {}
            Note::FirstFailure => tracing::warn!(
                url = %self.url,
                receiver = %receiver,
                phone_number_id = %self.phone_number_id,
                error,
                retry_in = %retry_in,
                "webhook delivery failed; {retry}"
            ),
            Note::Failure => tracing::debug!(
                url = %self.url,
                receiver = %receiver,
                delivery_id = self.delivery_id,
                attempt = self.attempt,
                error,
                retry_in = %retry_in,
                "webhook delivery failed again"
            ),
            Note::Recovered { failures, for_ms } => tracing::info!(
                url = %self.url,
                receiver = %receiver,
                failed_attempts = failures,
                failing_for = %seconds(*for_ms),
                "webhook receiver recovered"
            ),
        }
        if self.dropped_after_window {
            tracing::info!(
                url = %self.url,
                receiver = %receiver,
                phone_number_id = %self.phone_number_id,
                delivery_id = self.delivery_id,
                attempts = self.attempt,
                retry_window = %seconds(self.window_ms),
                "webhook delivery dropped after the retry window"
            );
        }
    }
}

/// Takes up to `max` ready events whose key has nothing in flight, keeping per-key order.
/// One delivery carries events of one shape (Graph envelope or On-Premises).
fn take_batch(q: &mut Queue, max: usize) -> Vec<Event> {
    let n = max.min(q.ready.len());
    let Some(shape) = q.ready.front().map(|e| e.summary.onprem) else {
        return Vec::new();
    };
    if q.busy.is_empty() {
        // Nothing in flight: the oldest events of the first one's shape go, in order.
        let same = q
            .ready
            .iter()
            .take(n)
            .take_while(|e| e.summary.onprem == shape)
            .count();
        return q.ready.drain(..same).collect();
    }
    let mut out = Vec::with_capacity(n);
    let mut blocked = FastSet::default();
    let mut i = 0;
    let mut scanned = 0;
    let mut shape = None;
    while i < q.ready.len() && out.len() < max && scanned < 4_096 {
        scanned += 1;
        let h = q.ready[i].key_hash;
        let other_shape = shape.is_some_and(|s| s != q.ready[i].summary.onprem);
        if q.busy.contains(&h) || blocked.contains(&h) || other_shape {
            blocked.insert(h);
            i += 1;
            continue;
        }
        if let Some(e) = q.ready.remove(i) {
            shape = Some(e.summary.onprem);
            out.push(e);
        }
    }
    out
}

/// Builds the POST body for a delivery: one envelope; consecutive `messages` changes of the same
/// number merge into one value (statuses and messages in arrays), as the platform batches them.
pub fn build_body(events: &[Event]) -> String {
    if events.first().is_some_and(|e| e.summary.onprem) {
        return onprem_body(events);
    }
    if let [one] = events {
        let env = OneEnvelope {
            object: OBJECT,
            entry: [OneEntry {
                id: &one.waba_id,
                time: one.time,
                changes: [&one.change],
            }],
        };
        return to_ascii_json(&env, 1);
    }
    let mut entries: Vec<Entry> = Vec::new();
    for e in events {
        let same_entry = entries
            .last()
            .is_some_and(|last| last.id == e.waba_id && last.time == e.time);
        if !same_entry {
            entries.push(Entry {
                id: e.waba_id.clone(),
                time: e.time,
                changes: Vec::new(),
            });
        }
        let Some(entry) = entries.last_mut() else {
            continue;
        };
        if let Some(last) = entry.changes.last_mut()
            && merge(last, &e.change)
        {
            continue;
        }
        entry.changes.push(e.change.clone());
    }
    to_ascii_json(
        &Envelope {
            object: OBJECT.to_string(),
            entry: entries,
        },
        events.len(),
    )
}

/// The On-Premises body: `{"statuses": [...]}` of every status the events carry.
fn onprem_body(events: &[Event]) -> String {
    let statuses = events
        .iter()
        .filter_map(|e| match &e.change.value {
            ChangeValue::Messages(v) => v.statuses.as_ref(),
            _ => None,
        })
        .flatten()
        .map(OnPremStatus::from_status)
        .collect();
    to_ascii_json(&OnPremStatuses { statuses }, events.len())
}

/// The envelope of a single event, borrowed (same shape as [`Envelope`]).
#[derive(Serialize)]
struct OneEnvelope<'a> {
    object: &'static str,
    entry: [OneEntry<'a>; 1],
}

#[derive(Serialize)]
struct OneEntry<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    time: Option<i64>,
    changes: [&'a Change; 1],
}

fn to_ascii_json<T: Serialize>(env: &T, events: usize) -> String {
    // About 500 bytes per status event: one allocation for most bodies.
    let mut out = Vec::with_capacity(512 * events.max(1));
    let mut ser = serde_json::Serializer::with_formatter(&mut out, AsciiEscaped);
    if env.serialize(&mut ser).is_err() {
        return String::new();
    }
    // The formatter writes ASCII only.
    String::from_utf8(out).unwrap_or_default()
}

/// Writes JSON as the platform signs it: every non-ASCII character escaped as `\uXXXX` (UTF-16
/// units, so emoji become surrogate pairs). Receivers that re-serialise before verifying the
/// signature fail here as they would on the platform.
struct AsciiEscaped;

impl serde_json::ser::Formatter for AsciiEscaped {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        if fragment.is_ascii() {
            return writer.write_all(fragment.as_bytes());
        }
        let bytes = fragment.as_bytes();
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if c.is_ascii() {
                continue;
            }
            writer.write_all(&bytes[start..i])?;
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                write!(writer, "\\u{unit:04x}")?;
            }
            start = i + c.len_utf8();
        }
        writer.write_all(&bytes[start..])
    }
}

fn merge(into: &mut Change, next: &Change) -> bool {
    let (ChangeValue::Messages(a), ChangeValue::Messages(b)) = (&mut into.value, &next.value)
    else {
        return false;
    };
    if into.field != next.field
        || a.metadata != b.metadata
        || a.errors.is_some()
        || b.errors.is_some()
    {
        return false;
    }
    let kinds_match = a.statuses.is_some() == b.statuses.is_some()
        && a.messages.is_some() == b.messages.is_some();
    if !kinds_match {
        return false;
    }
    if let (Some(x), Some(y)) = (&mut a.statuses, &b.statuses) {
        x.extend(y.iter().cloned());
    }
    if let (Some(x), Some(y)) = (&mut a.messages, &b.messages) {
        x.extend(y.iter().cloned());
    }
    match (&mut a.contacts, &b.contacts) {
        (Some(x), Some(y)) => {
            for c in y {
                if !x.iter().any(|have| have.wa_id == c.wa_id) {
                    x.push(c.clone());
                }
            }
        }
        (None, Some(y)) => a.contacts = Some(y.clone()),
        _ => {}
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_escape_non_ascii_like_the_platform() {
        let mut out = Vec::new();
        let mut ser = serde_json::Serializer::with_formatter(&mut out, AsciiEscaped);
        "Grüße 😀".serialize(&mut ser).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#""Gr\u00fc\u00dfe \ud83d\ude00""#
        );
    }

    #[test]
    fn an_attempt_costs_its_body_and_its_events_summaries() {
        let summary = Arc::new(EventSummary {
            field: "messages".into(),
            wamid: Some("wamid.HBgNNDkxNTEwMDAwMDAwMRUCABEYEDRDQjE3MTAzMzZGMzU4ODgA".into()),
            status: Some("delivered".into()),
            wa_id: Some("4915100000001".into()),
            message_type: None,
            onprem: false,
        });
        let attempt = Attempt {
            seq: 1,
            delivery_id: 1,
            attempt: 1,
            phone_number_id: "106540352242922".into(),
            url: "http://127.0.0.1:9/hook".into(),
            subscriber: None,
            at: 0,
            body: Arc::from("x".repeat(10_000)),
            signature: "sha256=00".into(),
            status: Some(200),
            error: None,
            latency_ms: 1.0,
            outcome: Outcome::Delivered,
            next_retry_at: None,
            events: vec![summary; 100],
            redelivery_of: None,
        };
        // 100 summaries of about 230 bytes each count beside the 10,000 bytes of body.
        let cost = attempt.cost();
        assert!(cost > 10_000 + 100 * 200, "{cost}");
        assert!(cost < 10_000 + 100 * 400, "{cost}");
    }

    #[test]
    fn signature_matches_hmac_sha256() {
        // Known answer: HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog").
        assert_eq!(
            sign("key", b"The quick brown fox jumps over the lazy dog"),
            "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }
}
