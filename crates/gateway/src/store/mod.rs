//! The gateway's durable storage behind one small, backend-neutral trait.
//!
//! [`Store`] is implemented by [`sqlite::SqliteStore`] (the default, embedded) and
//! [`postgres::PostgresStore`] (several instances on one database); both run the same SQL
//! operations (`logic.rs`) and pass the same conformance suite (`tests/store.rs`).
//!
//! Contract shared by every backend:
//! - every write is durable before its future resolves (accepted work is durable before it is
//!   acknowledged);
//! - each call is atomic: a batch argument (`Vec<…>`) is applied in one transaction, and a
//!   message row changes together with its timeline events;
//! - writes that read-then-write (`claim`, `apply_statuses`, `enqueue`'s idempotency, dedupe
//!   keys) are serialised by the backend, so concurrent callers never race;
//! - event sequence numbers are assigned in commit order, so a reader following
//!   [`Store::events_after`] with a cursor never skips an event.

mod coalesce;
pub mod postgres;
pub mod sqlite;

use crate::clock::Millis;
use crate::model::{
    CampaignState, Category, ConsentStatus, Effect, Lane, MessageState, Observation, Progress,
    Transition,
};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::future::Future;

/// Event kinds the store itself writes.
pub mod kind {
    /// A message entered the outbox.
    pub const ENQUEUED: &str = "enqueued";
    /// A message was stopped by a gate before sending.
    pub const SUPPRESSED: &str = "suppressed";
    /// A message was refused by a gate before sending.
    pub const REFUSED: &str = "refused";
    /// A queued message was parked (its template is paused).
    pub const PARKED: &str = "parked";
    /// A parked message was released.
    pub const UNPARKED: &str = "unparked";
    /// A queued message was cancelled by the app.
    pub const CANCELLED: &str = "cancelled";
    /// An inbound message arrived (its message id is the platform's wamid).
    pub const MESSAGE_RECEIVED: &str = "message.received";
}

/// `parked_reason` of messages parked by [`Store::park_template`].
pub const PARKED_TEMPLATE_PAUSED: &str = "template_paused";

/// What [`Store::take_tokens`] granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    /// Tokens taken (at most the number asked for).
    pub granted: u32,
    /// When the bucket holds what was asked for (`now` when it was all granted).
    pub next_at: Millis,
}

/// A storage failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The store is closed (shut down, or its writer stopped).
    Closed,
    /// The caller passed something the store cannot hold.
    Invalid(String),
    /// A stored value could not be read back.
    Corrupt(String),
    /// The database failed.
    Backend(String),
    /// The database file cannot be used (damaged, empty, another program's); the message names
    /// the file and what to do.
    Unusable(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Closed => f.write_str("store closed"),
            StoreError::Invalid(m) => write!(f, "invalid store input: {m}"),
            StoreError::Corrupt(m) => write!(f, "corrupt stored value: {m}"),
            StoreError::Backend(m) => write!(f, "storage error: {m}"),
            StoreError::Unusable(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for StoreError {}

/// A template reference: name and language code.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TemplateRef {
    /// Template name.
    pub name: String,
    /// Language code (`en_US`).
    pub language: String,
}

/// A message to put in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewMessage {
    /// Caller-made id (unique; enqueueing an existing id returns that row).
    pub id: String,
    /// Idempotency key (unique; an existing key returns the first row).
    pub idempotency_key: Option<String>,
    /// Hash of the request that made it, so a reused idempotency key with another body can be
    /// told from a retry; `None` for one enqueued without a key (nothing would compare it).
    pub request_hash: Option<String>,
    /// Sending phone number id.
    pub phone_number_id: String,
    /// The recipient as addressed: phone digits (`to`) or a BSUID (`recipient`).
    pub to: String,
    /// The recipient's person key, when known (their consents, window and pair limit).
    pub person: Option<String>,
    /// Its place in an ordered sequence: it waits for the message before it (the latest one
    /// accepted with the same key for the same person).
    pub sequence: Option<crate::model::SequenceStep>,
    /// Message category.
    pub category: Category,
    /// Template, for template messages.
    pub template: Option<TemplateRef>,
    /// Dispatch lane.
    pub lane: Lane,
    /// The platform request body (JSON).
    pub body: String,
    /// The caller's metadata (JSON).
    pub metadata: Option<String>,
    /// `Queued`, or `Suppressed`/`Refused` when a gate stopped it.
    pub state: MessageState,
    /// Why a gate stopped it.
    pub reason: Option<String>,
    /// Not sent before this time.
    pub not_before: Millis,
    /// Time-to-live: not delivered by then means expired.
    pub deadline: Millis,
    /// Enqueue time.
    pub created_at: Millis,
}

impl NewMessage {
    /// Checks what the store requires of a new row.
    pub fn validate(&self) -> Result<(), StoreError> {
        if self.id.is_empty() {
            return Err(StoreError::Invalid("empty message id".into()));
        }
        if !matches!(
            self.state,
            MessageState::Queued | MessageState::Suppressed | MessageState::Refused
        ) {
            return Err(StoreError::Invalid(format!(
                "message {} cannot start in state {}",
                self.id, self.state
            )));
        }
        Ok(())
    }

    /// The event kind its insertion writes.
    pub fn event_kind(&self) -> &'static str {
        match self.state {
            MessageState::Suppressed => kind::SUPPRESSED,
            MessageState::Refused => kind::REFUSED,
            _ => kind::ENQUEUED,
        }
    }
}

/// The result of enqueueing one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Enqueued {
    /// A new row was inserted.
    Inserted {
        /// Its id.
        id: String,
    },
    /// The idempotency key (or id) already existed: the first row, unchanged.
    Existing(Box<MessageRecord>),
}

/// A stored message: every column of the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRecord {
    /// Insertion order (monotonic).
    pub seq: i64,
    /// Id.
    pub id: String,
    /// Idempotency key.
    pub idempotency_key: Option<String>,
    /// Hash of the request that made it.
    pub request_hash: Option<String>,
    /// Sending phone number id.
    pub phone_number_id: String,
    /// The recipient as addressed: phone digits or a BSUID.
    pub to: String,
    /// The recipient's person key at enqueue, when known.
    pub person: Option<String>,
    /// Its place in an ordered sequence.
    pub sequence: Option<crate::model::SequenceStep>,
    /// The message of its sequence it waits for (the one accepted before it).
    pub sequence_prev: Option<String>,
    /// Category.
    pub category: Category,
    /// Template.
    pub template: Option<TemplateRef>,
    /// Lane.
    pub lane: Lane,
    /// Platform request body (JSON).
    pub body: String,
    /// Caller metadata (JSON).
    pub metadata: Option<String>,
    /// State.
    pub state: MessageState,
    /// Why a gate stopped it (suppressed/refused).
    pub reason: Option<String>,
    /// Why a queued message is held back (not claimable while set).
    pub parked_reason: Option<String>,
    /// The platform's message id, once accepted.
    pub wamid: Option<String>,
    /// Send attempts so far (claims).
    pub attempts: i64,
    /// Earliest time of the next attempt.
    pub next_attempt_at: Millis,
    /// Not sent before.
    pub not_before: Millis,
    /// Time-to-live deadline.
    pub deadline: Millis,
    /// End of the current send lease (`sending`).
    pub lease_until: Option<Millis>,
    /// Last error code.
    pub last_error_code: Option<i64>,
    /// Last error text.
    pub last_error: Option<String>,
    /// Enqueue time.
    pub created_at: Millis,
    /// Last change.
    pub updated_at: Millis,
    /// Accepted (or held) by the upstream.
    pub accepted_at: Option<Millis>,
    /// Sent, per the platform.
    pub sent_at: Option<Millis>,
    /// Delivered, per the platform.
    pub delivered_at: Option<Millis>,
    /// Read, per the platform.
    pub read_at: Option<Millis>,
    /// Failed.
    pub failed_at: Option<Millis>,
}

impl MessageRecord {
    /// What the status machine reads.
    pub fn progress(&self) -> Progress {
        Progress {
            state: self.state,
            accepted_at: self.accepted_at,
            sent_at: self.sent_at,
            delivered_at: self.delivered_at,
            read_at: self.read_at,
            failed_at: self.failed_at,
            error_code: self.last_error_code,
        }
    }
}

/// A timeline event to record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    /// What happened (`enqueued`, `accepted`, `status.delivered`, …).
    pub kind: String,
    /// When (unix ms).
    pub at: Millis,
    /// Details (JSON).
    pub detail: serde_json::Value,
}

impl NewEvent {
    /// An event with `detail`.
    pub fn new(kind: impl Into<String>, at: Millis, detail: serde_json::Value) -> NewEvent {
        NewEvent {
            kind: kind.into(),
            at,
            detail,
        }
    }
}

/// A recorded timeline event, with its global sequence number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Global, monotonic sequence number (the app event feed's cursor).
    pub seq: i64,
    /// The message.
    pub message_id: String,
    /// What happened.
    pub kind: String,
    /// When (unix ms).
    pub at: Millis,
    /// Details (JSON).
    pub detail: serde_json::Value,
    /// The message's state after the change.
    pub state: MessageState,
}

/// What `list` returns. Results are in insertion order (oldest first unless `newest_first`),
/// paged with `after_id`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ListFilter {
    /// Only this state.
    pub state: Option<MessageState>,
    /// Only this recipient.
    pub to: Option<String>,
    /// Only this sending number.
    pub phone_number_id: Option<String>,
    /// Only this lane.
    pub lane: Option<Lane>,
    /// Only messages of this template (by name).
    #[serde(default)]
    pub template: Option<String>,
    /// Only messages whose metadata has this key with this value (compared as text).
    #[serde(default)]
    pub metadata: Option<(String, String)>,
    /// At most this many (0 means 100).
    pub limit: usize,
    /// Continue after this message (exclusive); an unknown id yields nothing.
    pub after_id: Option<String>,
    /// Newest first.
    pub newest_first: bool,
}

impl ListFilter {
    /// The effective limit.
    pub fn effective_limit(&self) -> usize {
        if self.limit == 0 { 100 } else { self.limit }
    }
}

/// A batch item of [`Store::apply`]: a row update plus an optional timeline event.
/// `None`/`false` fields leave the column alone.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Change {
    /// The message.
    pub id: String,
    /// Time of the change (`updated_at`).
    pub at: Millis,
    /// New state.
    pub state: Option<MessageState>,
    /// The platform's message id.
    pub wamid: Option<String>,
    /// Next attempt time (retries).
    pub next_attempt_at: Option<Millis>,
    /// The new `state` applies only if the row is in this state now (a send's answer must not
    /// undo statuses that overtook it).
    pub only_from: Option<MessageState>,
    /// New platform request body (e.g. a fallback template); the template columns stay.
    pub body: Option<String>,
    /// Clear the send lease.
    pub clear_lease: bool,
    /// Clear `failed_at` and the last error (applied before the fields below).
    pub clear_failure: bool,
    /// New last error (code, text).
    pub last_error: Option<(i64, String)>,
    /// New `accepted_at`.
    pub accepted_at: Option<Millis>,
    /// New `sent_at`.
    pub sent_at: Option<Millis>,
    /// New `delivered_at`.
    pub delivered_at: Option<Millis>,
    /// New `read_at`.
    pub read_at: Option<Millis>,
    /// New `failed_at`.
    pub failed_at: Option<Millis>,
    /// The timeline event (written only if the row exists).
    pub event: Option<NewEvent>,
}

impl Change {
    /// A change to `id` at `at` that changes nothing yet.
    pub fn new(id: impl Into<String>, at: Millis) -> Change {
        Change {
            id: id.into(),
            at,
            ..Change::default()
        }
    }

    /// The row update a status-machine [`Transition`] stands for.
    pub fn from_transition(id: impl Into<String>, at: Millis, t: &Transition) -> Change {
        Change {
            state: t.state,
            clear_failure: t.clear_failure,
            last_error: t.error.clone(),
            accepted_at: t.accepted_at,
            sent_at: t.sent_at,
            delivered_at: t.delivered_at,
            read_at: t.read_at,
            failed_at: t.failed_at,
            ..Change::new(id, at)
        }
    }

    /// Adds a timeline event.
    pub fn with_event(mut self, event: NewEvent) -> Change {
        self.event = Some(event);
        self
    }
}

/// A platform status to apply atomically by wamid ([`Store::apply_statuses`]).
#[derive(Debug, Clone, PartialEq)]
pub struct StatusUpdate {
    /// The platform's message id.
    pub wamid: String,
    /// What the status says.
    pub observation: Observation,
    /// When we received it (`updated_at`, orphan time).
    pub received_at: Millis,
    /// The timeline event to record with it.
    pub event: NewEvent,
    /// The raw status, parked as an orphan when the wamid is unknown.
    pub payload: String,
    /// Dedupe key (e.g. `wamid:status:code`), recorded in the same transaction as the status
    /// so a crash can never remember a key whose status was not applied, under the message the
    /// wamid names ([`message_scoped_key`]). Not recorded for an orphan: re-applying it later
    /// with the same key must not look like a duplicate.
    pub dedupe_key: Option<String>,
}

/// The rows both backends' dedupe-key migrations are tested on, and the keys they must leave.
#[cfg(test)]
pub(crate) mod status_keys_fixture {
    /// Three messages (two with one wamid) and keys as remembered before the migration: status
    /// keys of known wamids, one of a wamid no message has, one of another kind.
    pub const BEFORE: &str = "INSERT INTO messages (id, phone_number_id, recipient, category, \
        lane, body, state, wamid, next_attempt_at, not_before, deadline, created_at, updated_at) \
        VALUES ('m1', 'pn1', '4915100000001', 'utility', 'transactional', '{}', 'sent', 'wamid.A', 0, 0, 1, 0, 0), \
        ('m2', 'pn1', '4915100000001', 'utility', 'transactional', '{}', 'sent', 'wamid.B', 0, 0, 1, 0, 0), \
        ('m3', 'pn1', '4915100000001', 'utility', 'transactional', '{}', 'sent', 'wamid.B', 0, 0, 1, 0, 0); \
        INSERT INTO dedupe_keys (key, at) VALUES ('s:wamid.A:sent:0', 1), \
        ('s:wamid.A:failed:131026', 2), ('s:wamid.B:delivered:0', 3), \
        ('s:wamid.gone:sent:0', 4), ('other', 5);";

    /// The keys after the migration, by `at`: the status keys of known wamids under their
    /// message (the newest of a wamid, as statuses find it), the others as they were.
    pub fn after() -> Vec<(String, i64)> {
        let scoped = super::message_scoped_key;
        vec![
            (scoped("m1", "s:wamid.A:sent:0"), 1),
            (scoped("m1", "s:wamid.A:failed:131026"), 2),
            (scoped("m3", "s:wamid.B:delivered:0"), 3),
            ("s:wamid.gone:sent:0".to_string(), 4),
            ("other".to_string(), 5),
        ]
    }
}

/// How a status's dedupe key is stored: after the id of the message its wamid names. A wamid
/// names one message, so this dedupes exactly what the key alone would; and since message ids
/// start with the time they were made, the keys of recent messages share the index's last pages
/// instead of each landing on a random one (a page written per status).
pub fn message_scoped_key(message_id: &str, key: &str) -> String {
    let mut out = String::with_capacity(message_id.len() + 1 + key.len());
    out.push_str(message_id);
    out.push(':');
    out.push_str(key);
    out
}

/// What [`Store::learn_and_apply`] answers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Learned {
    /// The person key of each sighting, as [`Store::learn`] answers.
    pub keys: Vec<Option<String>>,
    /// Each status's result, as [`Store::apply_statuses`] answers.
    pub applied: Vec<StatusApplied>,
    /// `(before, after)`: a person key some sighted id named before the call and the one it
    /// names after it, where they differ (an implicit phone person now a stored one, a person
    /// merged into another); once each.
    pub moved: Vec<(String, String)>,
}

/// What [`Store::apply_statuses`] did with one status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StatusApplied {
    /// Applied to a message (its event recorded whatever the effect).
    Applied {
        /// The message.
        id: String,
        /// Its state afterwards.
        state: MessageState,
        /// What the status changed.
        effect: Effect,
    },
    /// Unknown wamid: parked in the orphan table (see [`Store::take_orphans`]).
    Orphaned,
    /// Its dedupe key was seen before: nothing changed, no event.
    Duplicate,
}

/// A raw webhook body to append to the inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxItem {
    /// Receive time.
    pub received_at: Millis,
    /// The raw body.
    pub body: Vec<u8>,
    /// Where it came from (`360dialog`, `cloud`, …).
    pub source: String,
}

/// What [`Store::prune`] deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Prunable {
    /// Parked statuses no message claimed.
    Orphans,
    /// Webhook dedupe keys.
    DedupeKeys,
    /// Raw webhook bodies that were processed or were duplicates (never unparsed or pending
    /// ones).
    Inbox,
}

/// What one [`Store::prune`] call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Rows deleted.
    pub deleted: u64,
    /// Whether rows older than the cut may remain (call again).
    pub more: bool,
}

/// How an inbox item ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InboxOutcome {
    /// Processed.
    Processed,
    /// Not understood; kept for inspection.
    Unparsed,
    /// Everything in it had been seen before.
    Duplicate,
}

impl InboxOutcome {
    /// Storage form.
    pub fn as_str(self) -> &'static str {
        match self {
            InboxOutcome::Processed => "processed",
            InboxOutcome::Unparsed => "unparsed",
            InboxOutcome::Duplicate => "duplicate",
        }
    }

    /// Parses the storage form.
    pub fn parse(s: &str) -> Option<InboxOutcome> {
        [
            InboxOutcome::Processed,
            InboxOutcome::Unparsed,
            InboxOutcome::Duplicate,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
}

/// A stored inbox item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxRow {
    /// Id (append order).
    pub id: i64,
    /// Receive time.
    pub received_at: Millis,
    /// The raw body.
    pub body: Vec<u8>,
    /// Source.
    pub source: String,
    /// Outcome, once finished.
    pub outcome: Option<InboxOutcome>,
}

/// An inbound message: what the user sent, as the webhook carried it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundRecord {
    /// Arrival order (assigned by the store; ignored when recording).
    pub seq: i64,
    /// The platform's message id (wamid): unique.
    pub id: String,
    /// The business number it was sent to.
    pub phone_number_id: String,
    /// The user as the webhook named them: phone digits, or the BSUID when the phone is withheld.
    pub wa_id: String,
    /// The user's person key (the window is noted under it; `None`: under `wa_id`).
    pub person: Option<String>,
    /// The user's profile name, from the webhook's `contacts[]`.
    pub profile_name: Option<String>,
    /// The message type (`text`, `image`, `button`, `interactive`, …, as the platform names it).
    pub kind: String,
    /// The message it replies to (`context.id`), if any.
    pub context_id: Option<String>,
    /// The message object as the webhook carried it (JSON).
    pub body: String,
    /// The platform's timestamp (unix ms).
    pub timestamp: Millis,
    /// When the gateway processed it (unix ms; orders the conversation).
    pub received_at: Millis,
}

impl InboundRecord {
    /// The detail of its `message.received` event; `in_reply_to` is the gateway's id of the
    /// outbound message `context_id` names, when it is one of ours.
    pub fn event_detail(&self, in_reply_to: Option<&str>) -> serde_json::Value {
        let message: serde_json::Value =
            serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null);
        serde_json::json!({
            "wamid": self.id,
            "phone_number_id": self.phone_number_id,
            "from": self.wa_id,
            "contact": {
                "wa_id": (IdKind::of(&self.wa_id) == Some(IdKind::Phone)).then_some(&self.wa_id),
                "user_id": (IdKind::of(&self.wa_id) == Some(IdKind::UserId)).then_some(&self.wa_id),
                "person": self.person,
                "profile": { "name": self.profile_name },
            },
            "type": self.kind,
            "timestamp": self.timestamp,
            "context": message.get("context"),
            "in_reply_to": in_reply_to.map(|id| serde_json::json!({ "id": id, "wamid": self.context_id })),
            "message": message,
        })
    }
}

/// Where a page of a conversation ends: the sort key of its last item. Pages go newest first by
/// (time, direction — outbound before inbound at the same millisecond —, arrival order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationCursor {
    /// `created_at` of an outbound message, `received_at` of an inbound one.
    pub at: Millis,
    /// Whether the item is outbound.
    pub outbound: bool,
    /// Its `seq`.
    pub seq: i64,
}

impl ConversationCursor {
    /// The opaque form (`{at}.{o|i}.{seq}`).
    pub fn encode(&self) -> String {
        format!(
            "{}.{}.{}",
            self.at,
            if self.outbound { 'o' } else { 'i' },
            self.seq
        )
    }

    /// Parses [`ConversationCursor::encode`]'s form.
    pub fn decode(s: &str) -> Option<ConversationCursor> {
        let mut parts = s.split('.');
        let at = parts.next()?.parse().ok()?;
        let outbound = match parts.next()? {
            "o" => true,
            "i" => false,
            _ => return None,
        };
        let seq = parts.next()?.parse().ok()?;
        parts
            .next()
            .is_none()
            .then_some(ConversationCursor { at, outbound, seq })
    }
}

/// One message of a conversation, either way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConversationItem {
    /// Sent (or to be sent) by the business through the gateway.
    Outbound(Box<MessageRecord>),
    /// Sent by the user.
    Inbound(Box<InboundRecord>),
}

impl ConversationItem {
    /// Its sort key.
    pub fn cursor(&self) -> ConversationCursor {
        match self {
            ConversationItem::Outbound(m) => ConversationCursor {
                at: m.created_at,
                outbound: true,
                seq: m.seq,
            },
            ConversationItem::Inbound(m) => ConversationCursor {
                at: m.received_at,
                outbound: false,
                seq: m.seq,
            },
        }
    }
}

/// What an identifier is: a phone number (`wa_id`), a business-scoped user id (BSUID) or a
/// parent BSUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdKind {
    /// Phone digits (`wa_id`).
    Phone,
    /// A business-scoped user id (`CC.digits`).
    UserId,
    /// A parent BSUID (`CC.ENT.digits`).
    ParentUserId,
}

impl IdKind {
    /// Storage form.
    pub fn as_str(self) -> &'static str {
        match self {
            IdKind::Phone => "phone",
            IdKind::UserId => "user_id",
            IdKind::ParentUserId => "parent_user_id",
        }
    }

    /// The kind of an identifier by its shape: phone digits, `CC.…` or `CC.ENT.…`; `None` for
    /// anything else (a group id, a person key).
    pub fn of(id: &str) -> Option<IdKind> {
        if mynah_wire::UserId::well_formed(id) {
            Some(if id.get(2..7) == Some(".ENT.") {
                IdKind::ParentUserId
            } else {
                IdKind::UserId
            })
        } else if !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit()) {
            Some(IdKind::Phone)
        } else {
            None
        }
    }

    /// Parses the storage form.
    pub fn parse(s: &str) -> Option<IdKind> {
        [IdKind::Phone, IdKind::UserId, IdKind::ParentUserId]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// A person: known by phone, BSUID or both, with one key for all their state (consents,
/// windows, conversation). The key is an opaque `ct_…` for people met since identities were
/// kept, and the phone digits for people met before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    /// The key their state is stored under.
    pub key: String,
    /// Their phone (`wa_id`), when known.
    pub wa_id: Option<String>,
    /// Their business-scoped user id, when known (the current one).
    pub user_id: Option<String>,
    /// Their parent BSUID, when enrolled.
    pub parent_user_id: Option<String>,
    /// Their username, when they have one.
    pub username: Option<String>,
    /// Their profile name.
    pub profile_name: Option<String>,
    /// Last change.
    pub updated_at: Millis,
}

/// What a webhook (or an app) said about a person at once: the identifiers seen together belong
/// to one person.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sighting {
    /// Phone digits.
    pub wa_id: Option<String>,
    /// BSUID.
    pub user_id: Option<String>,
    /// Parent BSUID.
    pub parent_user_id: Option<String>,
    /// Username.
    pub username: Option<String>,
    /// Profile name.
    pub profile_name: Option<String>,
    /// When.
    pub at: Millis,
}

/// A user's identifiers changed on the platform (`user_id_update`, `user_changed_user_id`,
/// `user_changed_number`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityUpdate {
    /// The BSUID before (how the person is found).
    pub previous_user_id: Option<String>,
    /// The phone before (how the person is found when the BSUID is not given; unlinked unless
    /// it is also the phone now, since numbers are given to other people later).
    pub previous_wa_id: Option<String>,
    /// The BSUID now.
    pub user_id: Option<String>,
    /// The parent BSUID now.
    pub parent_user_id: Option<String>,
    /// The phone now.
    pub wa_id: Option<String>,
    /// Where it was learned (`webhook:user_id_update`, `webhook:system` …).
    pub source: String,
    /// When.
    pub at: Millis,
}

/// One change of a person's identity, in their history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdentityChange {
    /// Order.
    pub seq: i64,
    /// The person.
    pub person: String,
    /// When.
    pub at: Millis,
    /// `linked`, `user_id_changed`, `number_changed`, `merged`, `profile`.
    pub kind: String,
    /// Details (JSON).
    pub detail: serde_json::Value,
}

/// A consent (current value or history entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    /// The contact.
    pub wa_id: String,
    /// The category it covers.
    pub category: Category,
    /// Opted in or out.
    pub status: ConsentStatus,
    /// Who recorded it (`api`, `webhook:131050`, `inbound:STOP`, …).
    pub source: String,
    /// Proof (JSON or text).
    pub evidence: Option<String>,
    /// When the contact gave or withdrew it (as the recorder says).
    pub at: Millis,
    /// When the gateway recorded it: the order of recording decides which change is current.
    #[serde(default)]
    pub recorded_at: Millis,
}

/// A consent change to record (same shape as [`Consent`]).
pub type ConsentChange = Consent;

/// A cached message template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateRecord {
    /// Name.
    pub name: String,
    /// Language code.
    pub language: String,
    /// Category.
    pub category: Category,
    /// Status as the platform says it (`APPROVED`, `PAUSED`, `DISABLED`, …).
    pub status: String,
    /// The platform's template id.
    pub id: String,
    /// Components (JSON).
    pub components: String,
    /// `POSITIONAL` or `NAMED`, as the listing gives it (`None`: not listed; positional).
    #[serde(default)]
    pub parameter_format: Option<String>,
    /// When this version was learned; an older version never replaces a newer one.
    pub updated_at: Millis,
}

/// A stored campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignRecord {
    /// Id (`cmp_…`).
    pub id: String,
    /// Its name.
    pub name: String,
    /// Where it is.
    pub state: CampaignState,
    /// Why it is paused (or finished early, or cancelled).
    pub reason: Option<String>,
    /// What the app asked for (JSON: template, category, schedule, rate share …).
    pub spec: String,
    /// Created.
    pub created_at: Millis,
    /// Last change.
    pub updated_at: Millis,
    /// Started (running for the first time).
    pub started_at: Option<Millis>,
    /// Finished or cancelled.
    pub finished_at: Option<Millis>,
}

/// `status` of a campaign recipient: waiting to be released.
pub const RECIPIENT_PENDING: &str = "pending";
/// `status` of a campaign recipient: its message is in the outbox.
pub const RECIPIENT_RELEASED: &str = "released";
/// `status` of a campaign recipient: skipped (with a reason).
pub const RECIPIENT_SKIPPED: &str = "skipped";
/// `status` of a campaign recipient: the campaign was cancelled before it was released.
pub const RECIPIENT_CANCELLED: &str = "cancelled";

/// A campaign recipient to add to its audience.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRecipient {
    /// The recipient as listed (phone digits or BSUID; the raw text when invalid).
    pub recipient: String,
    /// Who it is: the person key (or the phone, for a phone nobody is linked to). A key already
    /// in the campaign's audience (not skipped) makes the row a `duplicate`.
    pub key: String,
    /// The row's columns (JSON object), as given.
    pub columns: String,
    /// The platform body to send (JSON), when eligible.
    pub body: Option<String>,
    /// Why it is skipped: (reason code, details).
    pub skip: Option<(String, String)>,
}

/// A campaign recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientRecord {
    /// Its row in the audience (1-based, in the order added).
    pub row: i64,
    /// The recipient as listed.
    pub recipient: String,
    /// Who it is.
    pub key: String,
    /// `pending`, `released`, `skipped`, `cancelled`.
    pub status: String,
    /// Why it was skipped (reason code).
    pub reason: Option<String>,
    /// Details of the reason.
    pub detail: Option<String>,
    /// The row's columns (JSON object).
    pub columns: String,
    /// The body to send (JSON).
    pub body: Option<String>,
    /// Its message, once released.
    pub message_id: Option<String>,
    /// Its message's state.
    pub message_state: Option<MessageState>,
    /// Its message's last error code.
    pub error_code: Option<i64>,
}

/// What the runner does with one pending recipient ([`Store::release_recipients`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// The recipient's row.
    pub row: i64,
    /// Its message (into the outbox, carrying the campaign), or
    pub message: Option<NewMessage>,
    /// why it is skipped after all (reason code, details).
    pub skip: Option<(String, String)>,
}

/// A campaign's counters.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CampaignCounts {
    /// Recipients by status (`pending`, `released`, `skipped`, `cancelled`).
    pub recipients: std::collections::BTreeMap<String, i64>,
    /// Skipped recipients by reason.
    pub skipped: std::collections::BTreeMap<String, i64>,
    /// Released messages by state.
    pub messages: std::collections::BTreeMap<String, i64>,
    /// Failed messages by error code (`none` without one).
    pub failed: std::collections::BTreeMap<String, i64>,
    /// Released messages still queued and held back (parked).
    pub parked: i64,
    /// Released messages still queued that were given a later start (quiet hours).
    #[serde(default)]
    pub deferred: i64,
    /// Sent messages (sent, delivered or read) by category, for the cost.
    pub billable: std::collections::BTreeMap<String, i64>,
}

/// A running campaign's flow ([`Store::campaign_flow`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CampaignFlow {
    /// Some recipient is still pending (not released, skipped or cancelled).
    pub pending: bool,
    /// Released messages `queued` or `sending`.
    pub outstanding: i64,
    /// Of those, queued with a later start (quiet hours).
    pub deferred: i64,
    /// Released messages the platform holds (pacing).
    pub held: i64,
}

/// The gateway's storage. Every method is one atomic operation; writes are durable when the
/// future resolves. See the module docs for the shared contract.
pub trait Store: Send + Sync + 'static {
    /// Inserts messages (one transaction), each with an `enqueued`/`suppressed`/`refused`
    /// event. An existing idempotency key (or id) returns [`Enqueued::Existing`] with the first
    /// row instead. Results are in input order.
    fn enqueue(
        &self,
        messages: Vec<NewMessage>,
    ) -> impl Future<Output = Result<Vec<Enqueued>, StoreError>> + Send;

    /// A message by id.
    fn get(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<MessageRecord>, StoreError>> + Send;

    /// A message by its idempotency key.
    fn by_idempotency_key(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<MessageRecord>, StoreError>> + Send;

    /// A message by the platform's id (the latest if several carry it).
    fn by_wamid(
        &self,
        wamid: &str,
    ) -> impl Future<Output = Result<Option<MessageRecord>, StoreError>> + Send;

    /// A message's timeline, in order.
    fn events(&self, id: &str) -> impl Future<Output = Result<Vec<Event>, StoreError>> + Send;

    /// Messages matching `filter`, in insertion order.
    fn list(
        &self,
        filter: ListFilter,
    ) -> impl Future<Output = Result<Vec<MessageRecord>, StoreError>> + Send;

    /// Atomically takes up to `limit` due messages (queued, not parked, `next_attempt_at` and
    /// `not_before` ≤ `now`): transactional lane first, then oldest `next_attempt_at`, then
    /// insertion order. They become `sending` with `lease_until` and one more attempt. Concurrent
    /// callers never get the same row.
    fn claim(
        &self,
        now: Millis,
        limit: usize,
        lease_until: Millis,
    ) -> impl Future<Output = Result<Vec<MessageRecord>, StoreError>> + Send;

    /// Applies row changes and their events in one transaction. `true` per change whose
    /// message exists (a missing one changes nothing and writes no event).
    fn apply(
        &self,
        changes: Vec<Change>,
    ) -> impl Future<Output = Result<Vec<bool>, StoreError>> + Send;

    /// Applies platform statuses by wamid through [`crate::model::observe`], read-modify-write
    /// serialised by the store, in one transaction; a status for an unknown wamid is parked as an
    /// orphan in the same step, so a status racing its send response is never lost. A status
    /// whose dedupe key was seen before is skipped ([`StatusApplied::Duplicate`]).
    fn apply_statuses(
        &self,
        updates: Vec<StatusUpdate>,
    ) -> impl Future<Output = Result<Vec<StatusApplied>, StoreError>> + Send;

    /// Parks the queued, unparked messages of a template ([`PARKED_TEMPLATE_PAUSED`]; all its
    /// languages when `language` is `None`), with a `parked` event each. Returns how many.
    fn park_template(
        &self,
        name: &str,
        language: Option<&str>,
        now: Millis,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Releases messages parked by [`Store::park_template`], with an `unparked` event each.
    /// Returns how many.
    fn unpark_template(
        &self,
        name: &str,
        language: Option<&str>,
        now: Millis,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Messages in `sending` whose lease ended by `now`: their send outcome is unknown.
    fn expired_leases(
        &self,
        now: Millis,
    ) -> impl Future<Output = Result<Vec<MessageRecord>, StoreError>> + Send;

    /// Up to `limit` messages in accepted/held/sent whose deadline is ≤ `now` (TTL drop
    /// detection), oldest deadline first.
    fn overdue(
        &self,
        now: Millis,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<MessageRecord>, StoreError>> + Send;

    /// Expires up to `limit` parked messages (queued, held back by a paused template) whose
    /// deadline is ≤ `now`, oldest deadline first, each with an `expired` event; returns their
    /// ids. (Messages that are not parked are expired by the dispatcher when it claims them.)
    fn expire_parked(
        &self,
        now: Millis,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// Applies the timeout policy to up to `limit` messages that have waited for the message
    /// before them in their sequence until their sequence timeout (≤ `now`): released (sent
    /// anyway) or failed with the rest of their sequence, each with its event; returns their ids.
    fn sequence_timeouts(
        &self,
        now: Millis,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// Parks a status whose wamid is not known yet.
    fn park_orphan(
        &self,
        wamid: &str,
        payload: String,
        at: Millis,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Returns and deletes the orphans parked for `wamid`, oldest first.
    fn take_orphans(
        &self,
        wamid: &str,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// Appends raw webhook bodies (one transaction); returns their ids.
    fn append_inbox(
        &self,
        items: Vec<InboxItem>,
    ) -> impl Future<Output = Result<Vec<i64>, StoreError>> + Send;

    /// Unfinished inbox items, oldest first.
    fn pending_inbox(
        &self,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<InboxRow>, StoreError>> + Send;

    /// Marks inbox items finished; bodies are kept.
    fn finish_inbox(
        &self,
        outcomes: Vec<(i64, InboxOutcome)>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records dedupe keys at `at`; `true` for a key seen for the first time. Enforced by a
    /// unique key, so concurrent callers agree on exactly one first sighting.
    fn remember_keys(
        &self,
        keys: Vec<String>,
        at: Millis,
    ) -> impl Future<Output = Result<Vec<bool>, StoreError>> + Send;

    /// Records consent changes in order: every change goes to the history; the current value per
    /// (wa_id, category) is the last recorded change, except an opt-in whose `at` is earlier than
    /// the opt-out in force (history only: it was given before it was withdrawn). An opt-out
    /// always becomes current. `true` per change that became current.
    fn put_consents(
        &self,
        changes: Vec<ConsentChange>,
    ) -> impl Future<Output = Result<Vec<bool>, StoreError>> + Send;

    /// Current consents of a contact, by category.
    fn consents(
        &self,
        wa_id: &str,
    ) -> impl Future<Output = Result<Vec<Consent>, StoreError>> + Send;

    /// Every consent change of a contact, in the order recorded.
    fn consent_history(
        &self,
        wa_id: &str,
    ) -> impl Future<Output = Result<Vec<Consent>, StoreError>> + Send;

    /// Notes inbound messages `(phone_number_id, wa_id, at)`; keeps the latest time per pair.
    fn note_inbound(
        &self,
        notes: Vec<(String, String, Millis)>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The latest inbound message time from `wa_id` to `phone_number_id`.
    fn last_inbound(
        &self,
        phone_number_id: &str,
        wa_id: &str,
    ) -> impl Future<Output = Result<Option<Millis>, StoreError>> + Send;

    /// Records inbound messages (one transaction): each first sighting of an id is stored, opens
    /// the 24-hour window (as [`Store::note_inbound`]) and writes a `message.received` event
    /// (message id = the wamid, state `received`). `true` per first sighting; a duplicate
    /// changes nothing.
    fn record_inbound(
        &self,
        messages: Vec<InboundRecord>,
    ) -> impl Future<Output = Result<Vec<bool>, StoreError>> + Send;

    /// The conversation with `wa_id` in both directions, newest first, after `before` (a page's
    /// last [`ConversationItem::cursor`]), at most `limit` items.
    fn conversation(
        &self,
        wa_id: &str,
        before: Option<ConversationCursor>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<ConversationItem>, StoreError>> + Send;

    /// Cancels a message that is still `queued` (parked or not), with a `cancelled` event;
    /// a message in any other state is left as it is. Returns the row afterwards (`None`: no
    /// such message); its state tells whether it is cancelled.
    fn cancel(
        &self,
        id: &str,
        at: Millis,
    ) -> impl Future<Output = Result<Option<MessageRecord>, StoreError>> + Send;

    /// The key of the person an identifier names (phone digits, BSUID or parent BSUID), `None`
    /// when nobody is known by it. Identifiers of a person are resolved through the store, so a
    /// consent recorded under the phone applies to a send addressed by BSUID and back.
    fn resolve(&self, id: &str) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// The key of the person an identifier names, creating the person (a fresh `ct_…` key) when
    /// unknown.
    fn person_key(
        &self,
        id: &str,
        kind: IdKind,
        at: Millis,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;

    /// Learns what sightings say, in order, one transaction: identifiers seen together belong to
    /// one person (two people named by one sighting are merged into the older: their consents,
    /// windows and identifiers move, the later-recorded consent per category wins); profile name
    /// and username follow the latest sighting. The key per sighting (`None` for a sighting with
    /// no identifier).
    fn learn(
        &self,
        sightings: Vec<Sighting>,
    ) -> impl Future<Output = Result<Vec<Option<String>>, StoreError>> + Send;

    /// [`Store::learn`] on `sightings`, then [`Store::apply_statuses`] on `updates`, in one
    /// transaction (what one webhook batch carries): the same outcome as the two calls in
    /// turn, but a send that a first sighting's person adopts and a status changes is written
    /// once; and which person keys the sighted ids moved between.
    fn learn_and_apply(
        &self,
        sightings: Vec<Sighting>,
        updates: Vec<StatusUpdate>,
    ) -> impl Future<Output = Result<Learned, StoreError>> + Send;

    /// Applies a change of a user's identifiers: the person found by the previous BSUID (or
    /// phone) takes the new ones, keeping every other state; a new phone unlinks the old one.
    /// The person's key (created when nobody was known by the previous ids).
    fn change_identity(
        &self,
        update: IdentityUpdate,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;

    /// The person an identifier (or a person key) names.
    fn person(&self, id: &str) -> impl Future<Output = Result<Option<Person>, StoreError>> + Send;

    /// Every identifier linked to a person, with its kind.
    fn identifiers(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Vec<(String, IdKind)>, StoreError>> + Send;

    /// A person's identity history, in order.
    fn identity_history(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Vec<IdentityChange>, StoreError>> + Send;

    /// Inserts or updates cached templates (an older `updated_at` never replaces a newer one).
    fn upsert_templates(
        &self,
        templates: Vec<TemplateRecord>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// One cached template.
    fn template(
        &self,
        name: &str,
        language: &str,
    ) -> impl Future<Output = Result<Option<TemplateRecord>, StoreError>> + Send;

    /// Every cached template, by name then language.
    fn templates(&self) -> impl Future<Output = Result<Vec<TemplateRecord>, StoreError>> + Send;

    /// Whether other processes may use the same database at once (PostgreSQL). On an exclusive
    /// store the `sending` rows found at start were left by a previous process; on a shared one
    /// they may be another live instance's, recovered only once their lease has ended.
    fn shared(&self) -> bool {
        false
    }

    /// Takes up to `want` tokens of the bucket `key` shared by every instance on the database:
    /// it refills at `rate` tokens per second (as of `now`, never backwards) up to `burst`, and a
    /// new bucket starts full. Several instances sending for one number take their tokens here,
    /// so together they never exceed its rate.
    fn take_tokens(
        &self,
        key: &str,
        rate: f64,
        burst: u32,
        want: u32,
        now: Millis,
    ) -> impl Future<Output = Result<Tokens, StoreError>> + Send;

    /// Takes or renews the lease of a role only one instance on the database plays at a time
    /// (processing the inbox, syncing templates): `holder` gets it until `until` if it is free,
    /// its lease has ended by `now`, or `holder` has it already. Whether `holder` has it now.
    fn lease_role(
        &self,
        role: &str,
        holder: &str,
        now: Millis,
        until: Millis,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Up to `limit` events with a sequence number greater than `seq`, in order.
    fn events_after(
        &self,
        seq: i64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Event>, StoreError>> + Send;

    /// Deletes rows of `what` that arrived before `before`, oldest first, examining at most
    /// `limit` rows per call. Progress is kept in the cursor `prune.<table>`, so rows that are
    /// kept (unparsed inbox bodies) are not examined again. Rows are taken in arrival order, so
    /// the first row at or after `before` ends the call.
    fn prune(
        &self,
        what: Prunable,
        before: Millis,
        limit: usize,
    ) -> impl Future<Output = Result<Pruned, StoreError>> + Send;

    /// A named cursor's value (0 when never set).
    fn cursor(&self, name: &str) -> impl Future<Output = Result<i64, StoreError>> + Send;

    /// How many messages wait in each state before the platform's final word, by lane:
    /// `queued` (due or waiting for their time), `parked` (queued but held back), `sending`,
    /// `accepted`, `held`, `sent`.
    fn queue_depth(
        &self,
    ) -> impl Future<Output = Result<Vec<(String, crate::model::Lane, u64)>, StoreError>> + Send;

    /// The newest timeline event's `seq` (0 when there is none).
    fn last_event_seq(&self) -> impl Future<Output = Result<i64, StoreError>> + Send;

    /// Sets a named cursor.
    fn set_cursor(
        &self,
        name: &str,
        value: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Stores a new campaign.
    fn create_campaign(
        &self,
        campaign: CampaignRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A campaign by id.
    fn campaign(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<CampaignRecord>, StoreError>> + Send;

    /// Campaigns in any of `states`, oldest first.
    fn campaigns_in(
        &self,
        states: Vec<CampaignState>,
    ) -> impl Future<Output = Result<Vec<CampaignRecord>, StoreError>> + Send;

    /// Appends recipients to a campaign's audience (rows numbered on from the last); a recipient
    /// whose key is already in the audience (not skipped) is skipped as `duplicate`. The rows
    /// as stored, in input order.
    fn add_recipients(
        &self,
        campaign: &str,
        recipients: Vec<NewRecipient>,
    ) -> impl Future<Output = Result<Vec<RecipientRecord>, StoreError>> + Send;

    /// Per key: whether a message of another campaign than `except` went to that person (key)
    /// since `since` (the frequency cap).
    fn contacted_by_campaigns(
        &self,
        keys: Vec<String>,
        except: &str,
        since: Millis,
    ) -> impl Future<Output = Result<Vec<bool>, StoreError>> + Send;

    /// Up to `limit` pending recipients of a campaign, in row order.
    fn pending_recipients(
        &self,
        campaign: &str,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<RecipientRecord>, StoreError>> + Send;

    /// Releases pending recipients in one transaction, only while the campaign is `running`:
    /// each message is enqueued carrying the campaign (its row becomes `released`), or the row
    /// is skipped with its reason. Returns how many messages were enqueued (0 when the campaign
    /// is not running: nothing changes).
    fn release_recipients(
        &self,
        campaign: &str,
        releases: Vec<Release>,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send;

    /// Moves a campaign to `to` if it is in one of `from` (else `None`, nothing changes), with
    /// what the move means for its messages, in the same transaction: `paused` parks its queued
    /// messages (`campaign:<id>`, with a `parked` event each), `running` releases them,
    /// `cancelled` cancels them (never sent) and its pending recipients.
    fn set_campaign_state(
        &self,
        id: &str,
        from: Vec<CampaignState>,
        to: CampaignState,
        reason: Option<String>,
        at: Millis,
    ) -> impl Future<Output = Result<Option<CampaignRecord>, StoreError>> + Send;

    /// A campaign's counters.
    fn campaign_counts(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<CampaignCounts, StoreError>> + Send;

    /// What a campaign's runner needs on every pass, read through indexes only (its cost does
    /// not grow with the audience): whether recipients are pending, and its messages in flight.
    fn campaign_flow(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<CampaignFlow, StoreError>> + Send;

    /// A campaign's recipients after row `after`, at most `limit`, in row order; `state`
    /// filters by the recipient's status or its message's state.
    fn campaign_recipients(
        &self,
        id: &str,
        state: Option<String>,
        after: i64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<RecipientRecord>, StoreError>> + Send;

    /// [`Store::resolve`] of many identifiers in one call (a campaign's audience batch), in
    /// input order. The default calls `resolve` for each.
    fn resolve_many(
        &self,
        ids: Vec<String>,
    ) -> impl Future<Output = Result<Vec<Option<String>>, StoreError>> + Send {
        async move {
            let mut out = Vec::with_capacity(ids.len());
            for id in &ids {
                out.push(self.resolve(id).await?);
            }
            Ok(out)
        }
    }

    /// [`Store::consents`] of many contacts in one call, in input order: each an id, or a
    /// person's key as [`Store::resolve`] returned it (read without looking the person up
    /// again). The default calls `consents` for each.
    fn consents_many(
        &self,
        ids: Vec<String>,
    ) -> impl Future<Output = Result<Vec<Vec<Consent>>, StoreError>> + Send {
        async move {
            let mut out = Vec::with_capacity(ids.len());
            for id in &ids {
                out.push(self.consents(id).await?);
            }
            Ok(out)
        }
    }

    /// Appends a campaign's event to the app event feed (`events_after`): `message_id` is the
    /// campaign's id, `kind` starts with `campaign.`, the state column holds the campaign's
    /// state (an [`Event`] read back carries a placeholder message state: apps see the
    /// campaign's, from `detail.state`). A store without it has no campaign events.
    fn campaign_event(
        &self,
        _campaign: &str,
        _kind: &str,
        _at: Millis,
        _state: CampaignState,
        _detail: serde_json::Value,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        async { Ok(()) }
    }
}
