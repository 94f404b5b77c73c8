//! The sandbox's entities: business numbers, virtual users, messages, media. Plain data,
//! serialisable so the journal can keep them.

use crate::clock::Millis;
use crate::config::Behaviour;
use bytes::Bytes;
use mynah_wire::webhook::{Pricing, StatusKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A WhatsApp Business Account.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Account {
    /// WABA id.
    pub waba_id: String,
    /// Business name.
    pub name: String,
    /// Template namespace.
    pub namespace: String,
    /// Onboarded to the Marketing Messages API.
    #[serde(default = "yes")]
    pub marketing_messages: bool,
    /// Marketing templates may go through `/messages`.
    #[serde(default = "yes")]
    pub marketing_on_cloud_api: bool,
}

fn yes() -> bool {
    true
}

fn default_portfolio() -> String {
    crate::config::DEFAULT_PORTFOLIO.to_string()
}

/// A business phone number and its webhook.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Number {
    /// Phone number id.
    pub phone_number_id: String,
    /// Display number, digits.
    pub display_phone_number: String,
    /// Verified name.
    pub verified_name: String,
    /// Its account.
    pub waba_id: String,
    /// Its account's business portfolio (users' business-scoped user ids depend on it).
    #[serde(default = "default_portfolio")]
    pub portfolio: String,
    /// 360dialog key that reaches it.
    pub api_key: String,
    /// Cloud bearer token that reaches it.
    #[serde(default)]
    pub token: String,
    /// Where its webhooks go.
    pub webhook: WebhookTarget,
    /// Quality rating and messaging limit tier, as the users' reactions move them.
    #[serde(default)]
    pub health: NumberHealth,
}

/// A number's quality rating and messaging limit tier (spec §6.1–§6.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NumberHealth {
    /// `GREEN`, `YELLOW` or `RED`.
    pub rating: String,
    /// Unique users per rolling 24 hours once quality moved the tier (`u32::MAX`: unlimited);
    /// `None`: the configured starting tier.
    pub tier: Option<u32>,
    /// When the rating turned `RED` (a downgrade follows if it stays so).
    pub flagged_at: Option<Millis>,
    /// When half the tier was last used (an upgrade follows while the rating is `GREEN`).
    pub half_used_at: Option<Millis>,
    /// A pending tier review (upgrade or downgrade) and when it is due.
    pub review_at: Option<Millis>,
    /// Reactions to its templates.
    pub signals: Signals,
}

impl Default for NumberHealth {
    fn default() -> Self {
        NumberHealth {
            rating: "GREEN".to_string(),
            tier: None,
            flagged_at: None,
            half_used_at: None,
            review_at: None,
            signals: Signals::default(),
        }
    }
}

/// Users' reactions as quality signals: (time, weight) with weight −2 (report), −1 (block),
/// 0 (ignore) or +1 (read, reply), oldest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Signals(pub std::collections::VecDeque<(Millis, i8)>);

impl Signals {
    /// Most signals kept (older ones go first).
    const CAP: usize = 2_000;

    /// Adds one signal and forgets those older than `window`.
    pub fn push(&mut self, at: Millis, weight: i8, window: Millis) {
        self.0.push_back((at, weight));
        while self
            .0
            .front()
            .is_some_and(|(t, _)| at - t >= window || self.0.len() > Self::CAP)
        {
            self.0.pop_front();
        }
    }

    /// Signals at or after `since`, and their negative share (report counts twice).
    pub fn share_since(&self, since: Millis) -> (u32, f64) {
        let (mut n, mut neg) = (0u32, 0f64);
        for (_, w) in self.0.iter().filter(|(t, _)| *t >= since) {
            n += 1;
            if *w < 0 {
                neg += f64::from(-*w);
            }
        }
        (n, if n == 0 { 0.0 } else { neg / f64::from(n) })
    }

    /// The score the signals give: `None` until `min` signals are in.
    pub fn score(
        &self,
        since: Millis,
        min: u32,
        yellow_at: f64,
        red_at: f64,
    ) -> Option<&'static str> {
        let (n, share) = self.share_since(since);
        if n < min.max(1) {
            return None;
        }
        Some(if share >= red_at {
            "RED"
        } else if share >= yellow_at {
            "YELLOW"
        } else {
            "GREEN"
        })
    }
}

/// How a user reacted to a delivered template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reaction {
    /// Blocked the business.
    Block,
    /// Reported the business (and blocked it).
    Report,
    /// Never opened it.
    Ignore,
    /// Read it.
    Read,
    /// Read it and replied.
    Reply,
}

impl Reaction {
    /// Its quality signal.
    pub fn weight(self) -> i8 {
        match self {
            Reaction::Report => -2,
            Reaction::Block => -1,
            Reaction::Ignore => 0,
            Reaction::Read | Reaction::Reply => 1,
        }
    }

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Reaction::Block => "block",
            Reaction::Report => "report",
            Reaction::Ignore => "ignore",
            Reaction::Read => "read",
            Reaction::Reply => "reply",
        }
    }
}

/// A webhook destination.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookTarget {
    /// URL; empty means none.
    pub url: String,
    /// Extra headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// A simulated WhatsApp user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    /// The user's `wa_id`.
    pub wa_id: String,
    /// Profile name.
    pub name: String,
    /// How they behave.
    pub behaviour: Behaviour,
    /// Last inbound message per business number (opens the 24-hour window).
    #[serde(default)]
    pub last_inbound: BTreeMap<String, Millis>,
    /// Last inbound that came through a click-to-WhatsApp referral, per business number.
    #[serde(default)]
    pub referral_at: BTreeMap<String, Millis>,
    /// End of an open free entry point window, per business number.
    #[serde(default)]
    pub fep_until: BTreeMap<String, Millis>,
    /// Open conversations per business number and origin: (id, expires).
    #[serde(default)]
    pub conversations: BTreeMap<String, (String, Millis)>,
    /// When marketing templates opened a marketing conversation, per business number (the
    /// per-user marketing limit counts these).
    #[serde(default)]
    pub marketing_opened: BTreeMap<String, Vec<Millis>>,
    /// Last marketing template accepted, per business number.
    #[serde(default)]
    pub last_marketing: BTreeMap<String, Millis>,
    /// Username (lower case, without `@`): with one, the phone number may be withheld.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Last exchange in which the business number saw the phone number (a send addressed to
    /// it, or an inbound message whose webhook carried it), per business number.
    #[serde(default)]
    pub phone_exchange: BTreeMap<String, Millis>,
    /// Last message either way, per business number (the threads a number change is announced
    /// in).
    #[serde(default)]
    pub last_exchange: BTreeMap<String, Millis>,
    /// The portfolios whose contact book holds this user's phone number and business-scoped
    /// user id, with when it was recorded last.
    #[serde(default)]
    pub contact_book: BTreeMap<String, Millis>,
    /// This number's user changed to another number (`POST /_mynah/users/{wa_id}/number`):
    /// the number is no longer on WhatsApp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moved_to: Option<String>,
}

/// Which API face a request came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// Meta Cloud API: Bearer, `/{version}/{phone_number_id}/…`.
    Cloud,
    /// 360dialog: `D360-API-KEY`, `/messages`.
    #[serde(rename = "360dialog")]
    D360,
    /// Legacy On-Premises API: `/v1/messages`.
    OnPrem,
}

impl Dialect {
    /// Its name in URLs, logs and the control API.
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Cloud => "cloud",
            Dialect::D360 => "360dialog",
            Dialect::OnPrem => "onprem",
        }
    }
}

/// Inbound or outbound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Business → user.
    Outbound,
    /// User → business.
    Inbound,
}

/// The next lifecycle step of an outbound message, and when it is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Emit `sent` (or fail if the user is not on WhatsApp).
    Send,
    /// Emit `delivered`.
    Deliver,
    /// Emit `read`.
    Read,
    /// Emit `played` (voice notes).
    Play,
    /// The user replies.
    Reply,
}

/// A message, inbound or outbound, with its status timeline.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Message {
    /// The wamid (shared with the key that finds the message).
    pub id: Arc<str>,
    /// Direction.
    pub direction: Direction,
    /// Business number.
    pub phone_number_id: String,
    /// The user (their phone number).
    pub wa_id: String,
    /// The business-scoped user id (or parent id) the message was addressed to; `None`: the
    /// phone number (outbound) or the user (inbound).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<Box<str>>,
    /// Message type (`text`, `template`, …).
    #[serde(rename = "type")]
    pub kind: Name,
    /// Dialect it came through (outbound).
    pub dialect: Dialect,
    /// Graph major version it came through (decides payload details).
    pub graph_version: u32,
    /// When it was accepted (outbound) or received (inbound).
    pub created_at: Millis,
    /// Its position in arrival order: the control API's paging cursor, kept so that a restart
    /// restores the order of messages accepted in the same millisecond.
    #[serde(default)]
    pub seq: u64,
    /// The body as the business sent it, or the inbound message as the webhook carried it.
    pub body: RawBody,
    /// For reactions: the message reacted to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reaction_to: Option<Box<str>>,
    /// A voice note (audio with `voice: true`): gets `played` after `read`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub voice: bool,
    /// Template category, lower case (outbound templates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<Box<str>>,
    /// The template's id (outbound templates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_id: Option<Box<str>>,
    /// Held for quality assessment (template pacing): waits for a verdict.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub held: bool,
    /// Counted against the number's messaging limit (rebuilt from messages after a restart).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub counted: bool,
    /// How the user reacted once it was delivered (users with reaction weights).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reaction: Option<Reaction>,
    /// Echoed in every status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub biz_opaque_callback_data: Option<Box<str>>,
    /// Pricing decided at acceptance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing: Option<PricingRef>,
    /// Conversation (id, expiry, origin) decided at acceptance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<ConversationRef>,
    /// Whether statuses carry the `conversation` object.
    #[serde(default)]
    pub show_conversation: bool,
    /// Latest status (outbound) — `read` once the business marked an inbound message read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusKind>,
    /// Pending step and its due time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<(Step, Millis)>,
    /// End of its time-to-live: undelivered by then, it is dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Millis>,
    /// A rule decided at acceptance that it fails (reported in a `failed` webhook): code and
    /// details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fate: Option<(u32, Box<str>)>,
    /// Every state change, in order.
    pub timeline: Vec<TimelineEntry>,
}

/// JSON kept as the bytes it arrived in (already validated), written out verbatim. Serialising
/// checks it once more; the request path never pays for a second parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawBody(pub Bytes);

impl Serialize for RawBody {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let raw = std::str::from_utf8(&self.0)
            .ok()
            .and_then(|t| serde_json::value::RawValue::from_string(t.to_owned()).ok());
        match raw {
            Some(raw) => raw.serialize(s),
            None => s.serialize_unit(),
        }
    }
}

impl<'de> Deserialize<'de> for RawBody {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<RawBody, D::Error> {
        let raw: Box<serde_json::value::RawValue> = Deserialize::deserialize(d)?;
        Ok(RawBody(Bytes::from(raw.get().to_owned())))
    }
}

/// A conversation as a message refers to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationRef {
    /// Conversation id.
    pub id: String,
    /// Expiry.
    pub expires_at: Millis,
    /// Origin type.
    pub origin: Name,
}

/// A message's pricing as it keeps it: the platform's terms as shared names (the webhook's
/// [`Pricing`] is built from it when a status goes out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricingRef {
    /// Whether the message is charged.
    pub billable: bool,
    /// `PMP`.
    pub pricing_model: Name,
    /// `regular`, `free_customer_service`, `free_entry_point`.
    #[serde(rename = "type")]
    pub kind: Name,
    /// `marketing`, `utility`, `authentication`, `service` …
    pub category: Name,
}

impl From<&Pricing> for PricingRef {
    fn from(p: &Pricing) -> PricingRef {
        PricingRef {
            billable: p.billable,
            pricing_model: Name::intern(&p.pricing_model),
            kind: Name::intern(&p.kind),
            category: Name::intern(&p.category),
        }
    }
}

impl From<&PricingRef> for Pricing {
    fn from(p: &PricingRef) -> Pricing {
        Pricing {
            billable: p.billable,
            pricing_model: p.pricing_model.to_string(),
            kind: p.kind.to_string(),
            category: p.category.to_string(),
        }
    }
}

/// One entry of a message's timeline: 40 bytes, and a heap allocation only for a detail (the
/// event's name is one of the code's own, shared).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// When.
    pub at: Millis,
    /// What (`accepted`, `sent`, `delivered`, `read`, `failed`, `received`, `webhook_queued` …).
    pub event: Name,
    /// Why, or with which figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<Box<str>>,
}

/// A short name from a small set (timeline events, pricing terms, conversation origins, template
/// categories): shared, so a message holds a pointer rather than a copy. A name the code does not
/// spell itself (read back from the journal, a template's category) is kept once for the process
/// and shared from then on (such names are few).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Name(&'static str);

impl Name {
    /// The name.
    pub fn as_str(self) -> &'static str {
        self.0
    }

    /// The name for `s`, shared with every other use of it.
    pub fn intern(s: &str) -> Name {
        static KNOWN: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
        let mut known = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(k) = known.iter().find(|k| **k == s) {
            return Name(k);
        }
        let leaked: &'static str = Box::leak(s.to_string().into_boxed_str());
        known.push(leaked);
        Name(leaked)
    }
}

impl From<&'static str> for Name {
    fn from(s: &'static str) -> Name {
        Name(s)
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        self.0
    }
}

impl Serialize for Name {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Name, D::Error> {
        let s: std::borrow::Cow<'de, str> = Deserialize::deserialize(d)?;
        Ok(Name::intern(&s))
    }
}

impl Message {
    /// An inbound message from `wa_id` to `phone_number_id`, as the webhook carried it (`body`),
    /// with an empty timeline.
    pub fn inbound(
        id: String,
        phone_number_id: String,
        wa_id: String,
        kind: String,
        body: &impl Serialize,
        now: Millis,
    ) -> Message {
        Message {
            id: id.into(),
            direction: Direction::Inbound,
            phone_number_id,
            wa_id,
            recipient: None,
            kind: Name::intern(&kind),
            dialect: Dialect::Cloud,
            graph_version: 0,
            created_at: now,
            seq: 0,
            body: RawBody(Bytes::from(serde_json::to_vec(body).unwrap_or_default())),
            reaction_to: None,
            voice: false,
            category: None,
            template_id: None,
            held: false,
            counted: false,
            reaction: None,
            biz_opaque_callback_data: None,
            pricing: None,
            conversation: None,
            show_conversation: false,
            status: None,
            next: None,
            expires_at: None,
            fate: None,
            timeline: Vec::new(),
        }
    }

    /// Appends to the timeline.
    pub fn log(&mut self, at: Millis, event: &'static str, detail: Option<String>) {
        self.timeline.push(TimelineEntry {
            at,
            event: Name(event),
            detail: detail.map(String::into_boxed_str),
        });
    }
}

/// Uploaded (or inbound) media.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Media {
    /// Media id.
    pub id: String,
    /// Owning number.
    pub phone_number_id: String,
    /// MIME type.
    pub mime_type: String,
    /// SHA-256, hex.
    pub sha256: String,
    /// Size in bytes.
    pub file_size: u64,
    /// File name, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// Upload time.
    pub created_at: Millis,
    /// Expiry (30 days for uploads, 7 days for inbound media).
    pub expires_at: Millis,
    /// The bytes (journalled separately).
    #[serde(skip)]
    pub bytes: Bytes,
}

#[cfg(test)]
mod size_tests {
    use super::*;

    /// What a message holds inline (the retained-message budget of 1 KiB, counted whole by
    /// `tests/message_memory.rs`, starts here).
    #[test]
    fn a_message_and_its_timeline_entries_stay_small() {
        assert!(
            std::mem::size_of::<Message>() <= 408,
            "{}",
            std::mem::size_of::<Message>()
        );
        assert_eq!(std::mem::size_of::<TimelineEntry>(), 40);
        assert_eq!(std::mem::size_of::<Name>(), 16);
    }

    #[test]
    fn names_read_back_are_shared_and_serialise_as_strings() {
        let a: Name = serde_json::from_str("\"a_name_of_the_journal\"").unwrap();
        let b = Name::intern("a_name_of_the_journal");
        assert!(std::ptr::eq(a.as_str(), b.as_str()));
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            "\"a_name_of_the_journal\""
        );
        assert_eq!(Name::from("sent"), "sent");
    }
}
