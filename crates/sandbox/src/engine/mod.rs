//! The platform's state and its rules: accepting sends, stepping each message through its
//! lifecycle, simulating users, media.
//!
//! Every operation is a function of the [`World`], the request and "now", and returns its
//! [`Effects`] (journal writes, webhook events, timers) instead of doing I/O; the caller applies
//! them after releasing the lock.

use crate::clock::{DAY, Millis, unix_seconds_string};
use crate::config::{Behaviour, Config, Latency};
use crate::ids::Ids;
use crate::model::{
    Account, ConversationRef, Dialect, Direction, Media, Message, Name, Number, PricingRef,
    RawBody, Reaction, Step, User, WebhookTarget,
};
use crate::scheduler::Timer;
use crate::store::{Kind, Snapshot, Write};
use crate::templates::{self, Registry};
use crate::webhooks::{EventSummary, NewEvent};
use bytes::Bytes;
use indexmap::IndexMap;
use mynah_wire::error::{ApiError, ErrorCode};
use mynah_wire::message::{Content, MediaSource, SendMessage};
use mynah_wire::response::{MessageStatus, SendResponse};
use mynah_wire::webhook::{
    Change, ChangeValue, Contact, Conversation, InboundBody, InboundContext, InboundMessage,
    MessagesValue, Metadata, Origin, Pricing, Status, StatusKind,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Each user's messages as positions in the arrival order, oldest first.
type UserIndex = HashMap<String, VecDeque<u64>, foldhash::fast::RandomState>;

fn index_push(index: &mut UserIndex, wa_id: &str, pos: u64) {
    match index.get_mut(wa_id) {
        Some(list) => list.push_back(pos),
        None => {
            index.insert(wa_id.to_string(), VecDeque::from([pos]));
        }
    }
}

/// What an operation wants done once the lock is released.
#[derive(Debug, Default)]
pub struct Effects {
    /// Whether writes are wanted at all (false with the memory journal: nothing to serialise).
    pub persist: bool,
    /// Journal writes.
    pub writes: Vec<Write>,
    /// Webhook events.
    pub events: Vec<NewEvent>,
    /// Timers to set.
    pub timers: Vec<(Millis, Timer)>,
    /// Whether the live feed has listeners: then `changed` is kept.
    pub watch: bool,
    /// Entities changed (kind, id), for the live feed; empty unless `watch`.
    pub changed: Vec<(Kind, String)>,
}

impl Effects {
    fn put<T: Serialize>(&mut self, kind: Kind, id: &str, value: &T) {
        if self.watch {
            self.changed.push((kind, id.to_string()));
        }
        if !self.persist {
            return;
        }
        if let Ok(data) = serde_json::to_string(value) {
            self.writes.push(Write::Put {
                kind,
                id: id.to_string(),
                data,
            });
        }
    }

    fn write(&mut self, w: Write) {
        if self.persist {
            self.writes.push(w);
        }
    }

    /// Adds another operation's effects.
    pub fn extend(&mut self, other: Effects) {
        self.writes.extend(other.writes);
        self.events.extend(other.events);
        self.timers.extend(other.timers);
        self.changed.extend(other.changed);
    }
}

/// Most messages read back from the journal kept in memory at once (see `World::visit`).
const VISITORS: usize = 1_024;

/// Users a number reached, for the messaging limit: (time, user) in time order, and each user's
/// latest time.
type Reach = (VecDeque<(Millis, String)>, HashMap<String, Millis>);

/// The face a send came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Via {
    /// Dialect.
    pub dialect: Dialect,
    /// Graph major version (decides payload details such as `conversation`).
    pub graph_version: u32,
    /// The Marketing Messages API path (`/marketing_messages`), with its fields; `None`:
    /// `/messages`.
    pub marketing: Option<MarketingVia>,
}

impl Via {
    /// `/messages` through a dialect at a Graph version.
    pub fn messages(dialect: Dialect, graph_version: u32) -> Via {
        Via {
            dialect,
            graph_version,
            marketing: None,
        }
    }
}

/// What a Marketing Messages API send adds (2026 note §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarketingVia {
    /// `product_policy: STRICT`: no fallback to the Cloud API.
    pub strict: bool,
    /// A `bid_spec` was given (not addressable to a BSUID: 131062).
    pub bid_spec: bool,
    /// `message_activity_sharing`.
    pub activity_sharing: Option<bool>,
}

/// A simulated inbound message, as the control API takes it.
#[derive(Debug, Clone, Deserialize)]
pub struct InboundRequest {
    /// Business number; defaults to the first number.
    #[serde(default)]
    pub phone_number_id: Option<String>,
    /// The user.
    pub from: String,
    /// Profile name (defaults to the user's).
    #[serde(default)]
    pub name: Option<String>,
    /// Reply context (`{"id": "<wamid>"}`), forwarded flags, referred product.
    #[serde(default)]
    pub context: Option<InboundContext>,
    /// Click-to-WhatsApp referral.
    #[serde(default)]
    pub referral: Option<serde_json::Value>,
    /// The type and its object, as in the webhook (`"type": "text", "text": {"body": "hi"}`).
    #[serde(flatten)]
    pub body: InboundBody,
}

/// A change to a user's behaviour (absent fields stay as they are).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BehaviourPatch {
    /// Profile name.
    pub name: Option<String>,
    /// Reachable on WhatsApp.
    pub on_whatsapp: Option<bool>,
    /// Offline until (unix ms); `null` clears it.
    #[serde(default, deserialize_with = "double_option")]
    pub offline_until: Option<Option<Millis>>,
    /// Offline for this many seconds from now.
    pub offline_for_seconds: Option<i64>,
    /// Reads messages.
    pub reads: Option<bool>,
    /// Read receipts on.
    pub read_receipts: Option<bool>,
    /// Replies with this text; `null` stops replying.
    #[serde(default, deserialize_with = "double_option")]
    pub replies_with: Option<Option<String>>,
    /// Has blocked the business.
    pub blocks_business: Option<bool>,
    /// Stops (true) or resumes (false) marketing messages: a `user_preferences` webhook follows.
    pub marketing_opt_out: Option<bool>,
    /// In the experiment holdout; `null` leaves it to the seed.
    #[serde(default, deserialize_with = "double_option")]
    pub holdout: Option<Option<bool>>,
    /// Reaction weights to delivered templates; `null` removes them.
    #[serde(default, deserialize_with = "double_option")]
    pub reactions: Option<Option<crate::config::Reactions>>,
    /// Username (the platform's username rules); `null` clears it.
    #[serde(default, deserialize_with = "double_option")]
    pub username: Option<Option<String>>,
}

impl BehaviourPatch {
    /// Checks the patch's numbers; errors name the field.
    pub fn validate(&self) -> Result<(), String> {
        use crate::bounds::{MAX_DURATION, instant, range};
        if let Some(Some(t)) = self.offline_until {
            instant("offline_until", t)?;
        }
        if let Some(s) = self.offline_for_seconds {
            range("offline_for_seconds", s, 0, MAX_DURATION / 1_000)
                .map_err(|e| format!("{e} (seconds, at most 10 years)"))?;
        }
        if let Some(Some(r)) = &self.reactions {
            r.validate("reactions")?;
        }
        Ok(())
    }
}

fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// The sandbox's state.
pub struct World {
    cfg: Config,
    persist: bool,
    /// Accounts by WABA id.
    pub accounts: BTreeMap<String, Account>,
    /// Numbers by phone number id.
    pub numbers: BTreeMap<String, Number>,
    tokens: HashMap<String, Vec<String>>,
    keys: HashMap<String, String>,
    /// Users by `wa_id`, awake (those idle past every window sleep in `dormant`: read users
    /// through [`World::user`] and [`World::all_users`], and wake one with [`World::wake`]
    /// before changing it).
    pub users: IndexMap<String, User>,
    /// Users idle past every window, compact.
    dormant: dormant::Dormant,
    /// Where the next idle sweep of `users` starts.
    sweep_at: usize,
    /// Messages by wamid (boxed: the table's spare slots cost a pointer each, not a message).
    pub messages: MessageMap,
    /// Wamids in arrival order (each shares its allocation with its key in `messages`).
    order: VecDeque<Arc<str>>,
    /// Listeners of the live feed: while there are any, effects note what they changed.
    watch: Arc<AtomicUsize>,
    /// Messages of each user, as positions in `order` (`order_base` is that of `order[0]`), in
    /// arrival order: the control API pages a user's conversation without a scan. Built at the
    /// first page asked for by user, then kept up to date: until someone looks, sends pay
    /// nothing for it.
    by_user: Option<UserIndex>,
    /// Position of `order[0]` in arrival order (messages leave `order` only at its front).
    order_base: u64,
    /// Position of the oldest message that left memory for the journal (`retention.hot_messages`);
    /// those from here to `order_base` are read back on demand. Equal to `order_base` when
    /// none did.
    cold_base: u64,
    /// Messages read back from the journal for an operation that names one (a mark-read, a
    /// reaction's target), with their positions: in `messages` but not in `order`, at most
    /// [`VISITORS`], and gone when the journal forgets them.
    visitors: VecDeque<(u64, Arc<str>)>,
    /// Media by id. Change it through `store_media` and `delete_media`, which keep
    /// `media_bytes`.
    pub media: HashMap<String, Media>,
    /// Bytes of every stored media object (the `media.max_total_bytes` quota).
    media_bytes: u64,
    /// Message templates of every account.
    pub templates: Registry,
    ids: Ids,
    /// Users each number started a conversation with, for the messaging limit: in order of time,
    /// and by user (derived state, rebuilt empty after a restart).
    reach: HashMap<String, Reach>,
    /// Template ids come from a stream of their own, so templates never shift message ids.
    template_ids: Ids,
    draws: u128,
    template_draws: u128,
    /// Reset epoch: how many times `POST /_mynah/reset` ran on this data directory. Mixed into
    /// the seed of the id streams (epoch 0 is the configured seed itself).
    epoch: u64,
    /// Base URL of this sandbox, for media download URLs.
    pub base_url: String,
    /// The business portfolios of the numbers (and of the configuration), with their settings.
    portfolios: BTreeMap<String, crate::config::PortfolioConfig>,
    /// (portfolio, BSUID or parent id) → the user's phone number.
    by_user_id: HashMap<(String, String), String>,
}

/// Messages by wamid.
///
/// Hashed with foldhash, not SipHash: every send and every lifecycle step looks its message up,
/// and the keys are wamids this sandbox minted.
pub type MessageMap = HashMap<Arc<str>, Box<Message>, foldhash::fast::RandomState>;

mod dormant;
mod identity;
mod pacing;
mod policy;
mod quality;
mod template_ops;
use dormant::SWEEP_PER_CALL;
pub use identity::{By, Ident, PortfolioIds, Target};
pub use pacing::Verdict;
pub use policy::holdout_by_seed;
pub use quality::{parse_tier, tier_name};
pub use template_ops::TemplateEdit;

#[derive(Serialize, Deserialize)]
struct RngState {
    word_pos: u128,
}

/// The reset epoch the journal kept (0 when none: a fresh data directory, or `--ephemeral`).
pub fn stored_epoch(snapshot: &Snapshot) -> u64 {
    snapshot
        .rows
        .get(&Kind::Meta)
        .and_then(|rows| rows.iter().find(|(id, _)| id == "epoch"))
        .and_then(|(_, json)| json.parse().ok())
        .unwrap_or(0)
}

impl World {
    /// Builds the world from configuration and whatever the journal kept.
    pub fn new(
        cfg: &Config,
        persist: bool,
        snapshot: &mut Snapshot,
        now: Millis,
    ) -> (World, Effects) {
        let epoch = stored_epoch(snapshot);
        World::in_epoch(cfg, persist, snapshot, now, epoch)
    }

    fn in_epoch(
        cfg: &Config,
        persist: bool,
        snapshot: &mut Snapshot,
        now: Millis,
        epoch: u64,
    ) -> (World, Effects) {
        let seed = crate::ids::epoch_seed(cfg.seed, epoch);
        let mut w = World {
            cfg: cfg.clone(),
            persist,
            accounts: BTreeMap::new(),
            numbers: BTreeMap::new(),
            tokens: HashMap::new(),
            keys: HashMap::new(),
            users: IndexMap::new(),
            dormant: dormant::Dormant::default(),
            sweep_at: 0,
            messages: MessageMap::default(),
            order: VecDeque::new(),
            watch: Arc::new(AtomicUsize::new(0)),
            by_user: None,
            order_base: 0,
            cold_base: 0,
            visitors: VecDeque::new(),
            media: HashMap::new(),
            media_bytes: 0,
            templates: Registry::default(),
            ids: Ids::new(seed, 1),
            template_ids: Ids::new(seed, 4),
            reach: HashMap::new(),
            draws: 0,
            template_draws: 0,
            epoch,
            base_url: String::new(),
            portfolios: BTreeMap::new(),
            by_user_id: HashMap::new(),
        };
        let mut fx = w.fx();
        w.seed_from_config(&mut fx);
        // What the journal kept wins over the configuration's first-start values (but a
        // configured number's portfolio is the configuration's).
        let configured: HashMap<String, String> = cfg
            .effective_accounts()
            .iter()
            .flat_map(|a| {
                a.numbers
                    .iter()
                    .map(|n| (n.phone_number_id.clone(), a.portfolio.clone()))
            })
            .collect();
        for (_, json) in snapshot.take(Kind::Number) {
            if let Ok(mut n) = serde_json::from_str::<Number>(&json) {
                if let Some(p) = configured.get(&n.phone_number_id) {
                    n.portfolio = p.clone();
                }
                if !w.accounts.contains_key(&n.waba_id) {
                    w.accounts.insert(
                        n.waba_id.clone(),
                        Account {
                            waba_id: n.waba_id.clone(),
                            name: n.verified_name.clone(),
                            namespace: String::new(),
                            marketing_messages: true,
                            marketing_on_cloud_api: true,
                        },
                    );
                }
                w.insert_number(n);
            }
        }
        for (_, json) in snapshot.take(Kind::User) {
            if let Ok(u) = serde_json::from_str::<User>(&json) {
                w.users.insert(u.wa_id.clone(), u);
            }
        }
        w.note_portfolios();
        let everyone: Vec<String> = w.users.keys().cloned().collect();
        for wa_id in everyone {
            w.index_user(&wa_id);
        }
        // Users idle past every window go back to sleep at once.
        let all = w.users.len();
        w.sleep_idle(now, all);
        let mut msgs: Vec<Message> = snapshot
            .take(Kind::Message)
            .into_iter()
            .filter_map(|(_, json)| serde_json::from_str(&json).ok())
            .collect();
        // Arrival order (journals written before `seq` order by time).
        msgs.sort_by(|a, b| {
            (a.seq, a.created_at)
                .cmp(&(b.seq, b.created_at))
                .then_with(|| a.id.cmp(&b.id))
        });
        // The messaging limit's window is rebuilt from the messages it counted, those that left
        // memory included (read here, then dropped).
        let cold = std::mem::take(&mut snapshot.cold);
        // Positions go on from the last run's: after those in the journal only, else from the
        // first in memory.
        match (cold.first(), cold.last()) {
            (Some((first, _)), Some((last, _))) => {
                w.cold_base = *first;
                w.order_base = last.saturating_add(1);
            }
            _ => {
                w.order_base = msgs.first().map_or(0, |m| m.seq);
                w.cold_base = w.order_base;
            }
        }
        let window = cfg
            .rules
            .messaging_limit
            .map_or(DAY, |l| l.window_ms.max(DAY));
        let in_window = |m: &Message| m.counted && now.saturating_sub(m.created_at) <= window;
        let mut counted: Vec<(Millis, String, String)> = cold
            .into_iter()
            .filter_map(|(_, json)| serde_json::from_str::<Message>(&json).ok())
            .filter(in_window)
            .map(|m| (m.created_at, m.phone_number_id, m.wa_id))
            .chain(
                msgs.iter()
                    .filter(|m| in_window(m))
                    .map(|m| (m.created_at, m.phone_number_id.clone(), m.wa_id.clone())),
            )
            .collect();
        counted.sort_by_key(|(at, _, _)| *at);
        for (at, pnid, wa_id) in counted {
            let (order, last) = w.reach.entry(pnid).or_default();
            last.insert(wa_id.clone(), at);
            order.push_back((at, wa_id));
        }
        for m in msgs {
            if let Some((_, due)) = m.next {
                fx.timers
                    .push((due.max(now), Timer::Message(m.id.to_string())));
            }
            w.keep(m, true);
        }
        // A smaller `retention.hot_messages` than the last run's takes effect at once.
        w.evict(&mut fx);
        for (_, json) in snapshot.take(Kind::Media) {
            if let Ok(mut m) = serde_json::from_str::<Media>(&json) {
                m.bytes = snapshot.blobs.remove(&m.id).unwrap_or_default();
                w.media_bytes = w.media_bytes.saturating_add(m.file_size);
                w.media.insert(m.id.clone(), m);
            }
        }
        let mut templates_seeded = false;
        for (id, json) in snapshot.take(Kind::Meta) {
            if id == "rng"
                && let Ok(s) = serde_json::from_str::<RngState>(&json)
            {
                w.draws = s.word_pos;
                w.ids.rng().set_word_pos(s.word_pos);
            }
            if id == "template_rng"
                && let Ok(s) = serde_json::from_str::<RngState>(&json)
            {
                w.template_draws = s.word_pos;
                w.template_ids.rng().set_word_pos(s.word_pos);
            }
            templates_seeded |= id == "templates_seeded";
        }
        w.load_templates(snapshot, templates_seeded, now, &mut fx);
        w.note_rng(&mut fx);
        (w, fx)
    }

    fn seed_from_config(&mut self, fx: &mut Effects) {
        for acc in self.cfg.effective_accounts() {
            self.accounts.insert(
                acc.waba_id.clone(),
                Account {
                    waba_id: acc.waba_id.clone(),
                    name: acc.name.clone(),
                    namespace: acc.namespace.clone(),
                    marketing_messages: acc.marketing_messages,
                    marketing_on_cloud_api: acc.marketing_on_cloud_api,
                },
            );
            for n in &acc.numbers {
                let mut url = n.webhook_url.clone();
                if url.is_empty() {
                    url = self.cfg.webhooks.default_url.clone();
                }
                let number = Number {
                    phone_number_id: n.phone_number_id.clone(),
                    display_phone_number: n.display_phone_number.clone(),
                    verified_name: n.verified_name.clone(),
                    waba_id: acc.waba_id.clone(),
                    portfolio: acc.portfolio.clone(),
                    api_key: n.api_key.clone(),
                    token: self.cfg.token.clone(),
                    webhook: WebhookTarget {
                        url,
                        headers: n.webhook_headers.clone(),
                    },
                    health: Default::default(),
                };
                fx.put(Kind::Number, &number.phone_number_id, &number);
                self.insert_number(number);
            }
        }
        for u in self.cfg.users.users.clone() {
            // Configured numbers may carry `+` and spaces, as a `to` may.
            let wa_id = mynah_wire::WaId::parse(&u.wa_id)
                .map(|w| w.as_str().to_string())
                .unwrap_or_else(|_| u.wa_id.clone());
            let name = u.name.clone().unwrap_or_else(|| default_name(&wa_id));
            let mut user = new_user(&wa_id, name, u.behaviour.clone());
            user.username = u
                .username
                .as_deref()
                .and_then(|n| mynah_wire::user_id::validate_username(n).ok());
            fx.put(Kind::User, &user.wa_id, &user);
            self.users.insert(wa_id, user);
        }
    }

    fn fx(&self) -> Effects {
        Effects {
            persist: self.persist,
            watch: self.watch.load(Ordering::Relaxed) > 0,
            ..Effects::default()
        }
    }

    /// Shares the live feed's listener count (see [`Effects::changed`]).
    pub fn set_watch(&mut self, listeners: Arc<AtomicUsize>) {
        self.watch = listeners;
    }

    /// Journals a new message with its arrival position and keeps it.
    fn admit(&mut self, mut m: Message, index: bool, fx: &mut Effects) {
        m.seq = self.order_base + self.order.len() as u64;
        fx.put(Kind::Message, &m.id, &m);
        self.keep(m, index);
    }

    /// Keeps a message: appends it to the arrival order (its `seq` becomes its position) and,
    /// with `index`, to its user's index, once there is one.
    fn keep(&mut self, mut m: Message, index: bool) {
        let id = m.id.clone();
        let pos = self.order_base + self.order.len() as u64;
        m.seq = pos;
        self.order.push_back(id.clone());
        if index && let Some(by_user) = &mut self.by_user {
            index_push(by_user, &m.wa_id, pos);
        }
        self.messages.insert(id, Box::new(m));
    }

    /// Forgets the oldest message of the arrival order and the message itself; returns its
    /// position, id and user.
    fn pop_oldest(&mut self) -> Option<(u64, Arc<str>, Option<String>)> {
        let id = self.order.pop_front()?;
        let pos = self.order_base;
        self.order_base += 1;
        let gone = self.messages.remove(&*id);
        if let (Some(index), Some(m)) = (&mut self.by_user, &gone)
            && let Some(list) = index.get_mut(&m.wa_id)
        {
            if list.front() == Some(&pos) {
                list.pop_front();
            }
            if list.is_empty() {
                index.remove(&m.wa_id);
            }
        }
        Some((pos, id, gone.map(|m| m.wa_id)))
    }

    /// Positions of the messages that left memory and the journal still keeps:
    /// `cold_base..order_base` (empty when none did).
    pub fn cold_range(&self) -> std::ops::Range<u64> {
        self.cold_base..self.order_base
    }

    /// Retained messages: in memory (the arrival order's and the visitors), and in the
    /// journal only (left memory, read back on demand; visitors not counted again).
    pub fn message_counts(&self) -> (usize, u64) {
        let cold = self.cold_range();
        let visiting = self.visitors.len() as u64;
        (
            self.messages.len(),
            (cold.end - cold.start).saturating_sub(visiting),
        )
    }

    /// Messages in memory whose lifecycle has a step still to come (or that are held back).
    pub fn lifecycles_pending(&self) -> usize {
        self.messages
            .values()
            .filter(|m| m.next.is_some() || m.held)
            .count()
    }

    /// Takes in a message read back from the journal at position `pos` for an operation that
    /// names it; false (and nothing kept) when the journal has forgotten that position since,
    /// or when the message is in memory already.
    pub fn visit(&mut self, pos: u64, m: Message) -> bool {
        if !self.cold_range().contains(&pos) || self.messages.contains_key(&*m.id) {
            return false;
        }
        let id = m.id.clone();
        self.messages.insert(id.clone(), Box::new(m));
        self.visitors.push_back((pos, id));
        while self.visitors.len() > VISITORS {
            if let Some((_, gone)) = self.visitors.pop_front() {
                self.messages.remove(&*gone);
            }
        }
        true
    }

    fn is_visitor(&self, id: &str) -> bool {
        self.visitors.iter().any(|(_, v)| **v == *id)
    }

    /// Builds the per-user index from the arrival order, if it is not there yet (the first
    /// page asked for by user: one pass over the messages kept, then kept up to date).
    pub fn index_users(&mut self) {
        if self.by_user.is_some() {
            return;
        }
        let mut index = UserIndex::default();
        for (i, id) in self.order.iter().enumerate() {
            if let Some(m) = self.messages.get(&**id) {
                index_push(&mut index, &m.wa_id, self.order_base + i as u64);
            }
        }
        self.by_user = Some(index);
    }

    /// A message by its position in arrival order.
    fn at_position(&self, pos: u64) -> Option<&Message> {
        let i = usize::try_from(pos.checked_sub(self.order_base)?).ok()?;
        self.order
            .get(i)
            .and_then(|id| self.messages.get(&**id))
            .map(|m| &**m)
    }

    /// A page of messages, newest first, with their positions in arrival order: those of `wa_id`
    /// (through its index, when [`World::index_users`] built it; by a scan otherwise) or all,
    /// before position `before`, that `keep` accepts, at most `limit`. The positions are the
    /// control API's paging cursor.
    pub fn page<F: Fn(&Message) -> bool>(
        &self,
        wa_id: Option<&str>,
        before: Option<u64>,
        limit: usize,
        keep: F,
    ) -> Vec<(u64, &Message)> {
        let before = before.unwrap_or(u64::MAX);
        let mut out = Vec::new();
        if limit == 0 {
            return out;
        }
        if let (Some(w), Some(index)) = (wa_id, &self.by_user) {
            let Some(list) = index.get(w) else {
                return out;
            };
            let end = list.partition_point(|p| *p < before);
            for pos in list.range(..end).rev() {
                if let Some(m) = self.at_position(*pos).filter(|m| keep(m)) {
                    out.push((*pos, m));
                    if out.len() == limit {
                        break;
                    }
                }
            }
            return out;
        }
        let end = usize::try_from(before.saturating_sub(self.order_base))
            .unwrap_or(usize::MAX)
            .min(self.order.len());
        for i in (0..end).rev() {
            let pos = self.order_base + i as u64;
            let found = self
                .at_position(pos)
                .filter(|m| wa_id.is_none_or(|w| m.wa_id == w) && keep(m));
            if let Some(m) = found {
                out.push((pos, m));
                if out.len() == limit {
                    break;
                }
            }
        }
        out
    }

    /// Unique users of a number's messaging limit in the rolling window now, and the limit;
    /// `None` when the rule is off.
    pub fn limit_use(&self, pnid: &str, now: Millis) -> Option<(usize, u32, Millis)> {
        let limit = self.cfg.rules.messaging_limit?;
        let used = self.reach.get(pnid).map_or(0, |(_, last)| {
            last.values()
                .filter(|t| now - **t < limit.window_ms)
                .count()
        });
        Some((used, self.tier_of(pnid)?, limit.window_ms))
    }

    /// The delivery rules in force.
    pub fn rules(&self) -> &crate::config::RulesConfig {
        &self.cfg.rules
    }

    /// Changes the delivery rules (control API).
    pub fn set_rules(&mut self, rules: crate::config::RulesConfig) {
        self.cfg.rules = rules;
    }

    /// Adds or replaces a number.
    pub fn insert_number(&mut self, n: Number) {
        if let Some(old) = self.numbers.remove(&n.phone_number_id) {
            self.keys.remove(&old.api_key);
            if let Some(list) = self.tokens.get_mut(&old.token) {
                list.retain(|p| *p != old.phone_number_id);
            }
        }
        self.keys
            .insert(n.api_key.clone(), n.phone_number_id.clone());
        self.tokens
            .entry(n.token.clone())
            .or_default()
            .push(n.phone_number_id.clone());
        self.numbers.insert(n.phone_number_id.clone(), n);
    }

    /// Adds a number (control API); journalled.
    pub fn add_number(&mut self, n: Number) -> Result<Effects, ApiError> {
        if n.phone_number_id.is_empty() || n.api_key.is_empty() || n.display_phone_number.is_empty()
        {
            return Err(ApiError::with_details(
                ErrorCode::MynahBadRequest,
                "phone_number_id, display_phone_number and api_key are required",
            ));
        }
        if let Some(other) = self.keys.get(&n.api_key)
            && *other != n.phone_number_id
        {
            return Err(ApiError::with_details(
                ErrorCode::MynahBadRequest,
                format!("api_key is already used by phone number {other}"),
            ));
        }
        if !self.accounts.contains_key(&n.waba_id) {
            self.accounts.insert(
                n.waba_id.clone(),
                Account {
                    waba_id: n.waba_id.clone(),
                    name: n.verified_name.clone(),
                    namespace: String::new(),
                    marketing_messages: true,
                    marketing_on_cloud_api: true,
                },
            );
        }
        let mut fx = self.fx();
        fx.put(Kind::Number, &n.phone_number_id, &n);
        self.insert_number(n);
        self.note_portfolios();
        Ok(fx)
    }

    /// The number a 360dialog key reaches.
    pub fn number_for_key(&self, key: &str) -> Option<&Number> {
        self.keys.get(key).and_then(|p| self.numbers.get(p))
    }

    /// Whether a bearer token is known, and the numbers it reaches.
    pub fn numbers_for_token(&self, token: &str) -> Option<&[String]> {
        self.tokens
            .get(token)
            .map(|v| v.as_slice())
            .filter(|v| !v.is_empty())
    }

    /// The first number (defaults for the control API).
    pub fn first_number(&self) -> Option<&Number> {
        self.cfg
            .effective_accounts()
            .first()
            .and_then(|a| a.numbers.first())
            .and_then(|n| self.numbers.get(&n.phone_number_id))
            .or_else(|| self.numbers.values().next())
    }

    /// Sets a number's webhook.
    pub fn set_webhook(&mut self, pnid: &str, target: WebhookTarget) -> Effects {
        let mut fx = self.fx();
        if let Some(n) = self.numbers.get_mut(pnid) {
            n.webhook = target;
            fx.put(Kind::Number, pnid, &*n);
        }
        fx
    }

    /// Messages in arrival order.
    pub fn messages_in_order(&self) -> impl DoubleEndedIterator<Item = &Message> {
        self.order
            .iter()
            .filter_map(|id| self.messages.get(&**id).map(|m| &**m))
    }

    fn note_rng(&mut self, fx: &mut Effects) {
        let pos = self.ids.rng().get_word_pos();
        if pos != self.draws {
            self.draws = pos;
            fx.put(Kind::Meta, "rng", &RngState { word_pos: pos });
        }
        // Template ids go on after a restart too, so a deleted template's id is never reused.
        let pos = self.template_ids.rng().get_word_pos();
        if pos != self.template_draws {
            self.template_draws = pos;
            fx.put(Kind::Meta, "template_rng", &RngState { word_pos: pos });
        }
    }

    /// The reset epoch (0 until the first `POST /_mynah/reset` on this data directory).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    fn draw(&mut self, l: Latency) -> Millis {
        self.ids.between(l.min_ms, l.max_ms).max(0)
    }

    fn user_entry(&mut self, wa_id: &str, fx: &mut Effects) -> &mut User {
        self.user_entry_at(wa_id, 0, fx)
    }

    /// The user, created at first contact (`now`) with the default behaviour, or a magic
    /// number's.
    fn user_entry_at(&mut self, wa_id: &str, now: Millis, fx: &mut Effects) -> &mut User {
        self.wake(wa_id);
        if !self.users.contains_key(wa_id) {
            let default = &self.cfg.users.default;
            let behaviour =
                crate::magic::behaviour(wa_id, default, now).unwrap_or_else(|| default.clone());
            let user = new_user(wa_id, default_name(wa_id), behaviour);
            fx.put(Kind::User, wa_id, &user);
            self.users.insert(wa_id.to_string(), user);
            self.index_user(wa_id);
        }
        self.users
            .entry(wa_id.to_string())
            .or_insert_with(|| new_user(wa_id, default_name(wa_id), Behaviour::default()))
    }

    /// Accepts an outbound message: checks it, decides its pricing, schedules its lifecycle.
    /// `via` is the dialect, Graph version and path it came through; `target` the person its
    /// address resolved to ([`World::resolve`]); `forced` a failure a fault rule decided.
    #[allow(clippy::too_many_arguments)]
    pub fn send(
        &mut self,
        pnid: &str,
        via: Via,
        req: &SendMessage,
        target: &Target,
        raw: RawBody,
        forced: Option<ApiError>,
        now: Millis,
    ) -> Result<(SendResponse, Effects), ApiError> {
        let Via {
            dialect,
            graph_version,
            marketing,
        } = via;
        // Sweep first: the user this send is for is then awake until it ends.
        self.sleep_idle(now, SWEEP_PER_CALL);
        self.wake(&target.wa_id);
        let number = self.numbers.get(pnid).ok_or_else(|| {
            ApiError::with_details(ErrorCode::ParameterValueNotValid33, "Unknown phone number.")
        })?;
        if let By::Dropped(id) = &target.by {
            let id = id.clone();
            return Ok(self.send_dropped(pnid, via, req, &id, &target.wa_id, raw, now));
        }
        let wa_id = target.wa_id.clone();
        let by_user = match &target.by {
            By::User(id) => Some(id.clone()),
            _ => None,
        };
        if wa_id == number.display_phone_number {
            return Err(ApiError::new(ErrorCode::RecipientIsSender));
        }
        let account = self.accounts.get(&number.waba_id).cloned();
        let mut category = None;
        let mut template_id = None;
        // Marketing Messages API sends of an onboarded account are `marketing_lite`.
        let mut lite = false;
        // Time-to-live: 30 days, a template's own, or its category's (10 minutes for
        // authentication).
        let mut ttl_seconds: i64 = 30 * 24 * 3_600;
        match &req.content {
            Content::Template(t) => {
                if dialect == Dialect::OnPrem {
                    // The On-Premises API names the account's template namespace.
                    let expected = self
                        .accounts
                        .get(&number.waba_id)
                        .map_or("", |a| a.namespace.as_str());
                    match t.namespace.as_deref() {
                        None => return Err(ApiError::missing("template.namespace")),
                        Some(ns) if ns != expected => {
                            return Err(ApiError::with_details(
                                ErrorCode::TemplateDoesNotExist,
                                format!(
                                    "Template namespace {ns} is not this account's ({expected})."
                                ),
                            ));
                        }
                        Some(_) => {}
                    }
                }
                let found = self.templates.find(&number.waba_id, &t.name, &t.language);
                let template = templates::sendable(found, &t.name, &t.language)?;
                template.def.check_send(t)?;
                let cat = template.category();
                if by_user.is_some() && otp_template(&template.def) {
                    return Err(ApiError::with_details(
                        ErrorCode::BsuidNotSupported,
                        format!(
                            "You can only send the authentication template {} (one-tap, zero-tap or copy-code button) to a phone number: put it in to.",
                            t.name
                        ),
                    ));
                }
                let is_marketing = cat == mynah_wire::template::Category::Marketing;
                let cloud_ok = account.as_ref().is_none_or(|a| a.marketing_on_cloud_api);
                match marketing {
                    None if is_marketing && !cloud_ok => {
                        return Err(ApiError::with_details(
                            ErrorCode::MarketingDisabledOnCloudApi,
                            "Marketing templates are disabled for the Cloud API on this account (accounts.marketing_on_cloud_api = false): send them through POST /{phone_number_id}/marketing_messages.",
                        ));
                    }
                    None => {}
                    Some(_) if !is_marketing => {
                        return Err(ApiError::invalid_param(format!(
                            "Param template: the Marketing Messages API sends marketing templates only; {} is {}.",
                            t.name,
                            cat.as_str()
                        )));
                    }
                    Some(m) => {
                        if m.bid_spec && by_user.is_some() {
                            return Err(ApiError::with_details(
                                ErrorCode::BsuidNotSupported,
                                "A marketing message with a bid_spec can only be sent to a phone number: put it in to.",
                            ));
                        }
                        let onboarded = account.as_ref().is_none_or(|a| a.marketing_messages);
                        if onboarded {
                            lite = true;
                        } else if m.strict {
                            return Err(ApiError::with_details(
                                ErrorCode::MarketingDisabledOnCloudApi,
                                "This account is not onboarded to the Marketing Messages API (accounts.marketing_messages = false) and product_policy STRICT forbids the fallback to the Cloud API.",
                            ));
                        } else if !cloud_ok {
                            return Err(ApiError::with_details(
                                ErrorCode::MarketingDisabledOnCloudApi,
                                "This account is not onboarded to the Marketing Messages API (accounts.marketing_messages = false) and marketing templates are disabled for the Cloud API (accounts.marketing_on_cloud_api = false): nothing can send it.",
                            ));
                        }
                    }
                }
                category = Some(cat.lower().to_string());
                template_id = Some(template.id.clone());
                ttl_seconds = template.def.ttl_seconds();
            }
            Content::Image(m)
            | Content::Audio(m)
            | Content::Video(m)
            | Content::Document(m)
            | Content::Sticker(m) => {
                if let MediaSource::Id(id) = &m.source
                    && !self
                        .media
                        .get(id)
                        .is_some_and(|x| x.phone_number_id == pnid && x.expires_at > now)
                {
                    return Err(ApiError::invalid_value(format!(
                        "Param {}['id'] is not a valid media id for this phone number.",
                        req.content.message_type().as_str()
                    )));
                }
            }
            _ => {}
        }
        let mut fx = self.fx();
        let sent_latency = self.draw(self.cfg.latency.sent);
        // A wamid names the address it was sent to (the BSUID for a send to one).
        let wamid = self.fresh_wamid(by_user.as_ref().map_or(wa_id.as_str(), |u| u.as_str()));
        let user = self.user_entry_at(&wa_id, now, &mut fx);
        if user.behaviour.pair_limited {
            return Err(
                ApiError::new(ErrorCode::PairRateLimit).with_http(self.cfg.limits.throttle_status)
            );
        }
        let in_csw = user.last_inbound.get(pnid).is_some_and(|t| now - t < DAY);
        // Replying within 24 hours of a click-to-WhatsApp referral opens a 72-hour free entry point.
        let referral_recent = user.referral_at.get(pnid).is_some_and(|t| now - t < DAY);
        let fep_open = user.fep_until.get(pnid).is_some_and(|t| *t > now);
        let mut user_changed = false;
        if referral_recent && !fep_open {
            user.fep_until.insert(pnid.to_string(), now + 3 * DAY);
            user_changed = true;
        }
        let in_fep = user.fep_until.get(pnid).is_some_and(|t| *t > now);
        let mut checks = Vec::new();
        let fate = match forced {
            // A fault rule decided already; the platform's rules are not consulted (nor counted).
            Some(e) => {
                checks.push(format!("fault rule: fails with {}", e.code.code()));
                Some(e)
            }
            None => self.policy(
                &policy::Send {
                    pnid,
                    wa_id: &wa_id,
                    category: category.as_deref(),
                    in_csw,
                    in_fep,
                    now,
                },
                &mut checks,
                &mut fx,
            )?,
        };
        let counted = fate.is_none()
            && self
                .reach
                .get(pnid)
                .and_then(|(_, last)| last.get(&wa_id))
                .is_some_and(|t| *t == now);
        let force_hold = self
            .users
            .get(&wa_id)
            .is_some_and(|u| u.behaviour.held_for_quality);
        let pace = match (&fate, &template_id) {
            (None, Some(id)) => self.pace(id, &wamid, force_hold, now, &mut checks, &mut fx),
            _ => pacing::Pace::Normal,
        };
        let held = pace == pacing::Pace::Held;
        let user = self.user_entry(&wa_id, &mut fx);
        let priced_as = if lite {
            Some("marketing_lite")
        } else {
            category.as_deref()
        };
        let (pricing, origin) = price(priced_as, in_csw, in_fep);
        let show_conversation = graph_version < 24 || in_fep;
        // A message a rule refuses opens no conversation and is not charged.
        let conversation =
            if fate.is_some() || (pricing.category == "service" && !show_conversation) {
                None
            } else {
                let key = format!("{pnid}:{origin}");
                let open = user
                    .conversations
                    .get(&key)
                    .filter(|(_, exp)| *exp > now)
                    .cloned();
                let (id, expires) = match open {
                    Some(c) => c,
                    None => {
                        user_changed = true;
                        (String::new(), now + DAY)
                    }
                };
                Some((key, id, expires))
            };
        let conversation = match conversation {
            Some((key, id, expires)) if id.is_empty() => {
                let id = self.ids.hex32();
                let user = self.user_entry(&wa_id, &mut fx);
                user.conversations.insert(key, (id.clone(), expires));
                Some(ConversationRef {
                    id,
                    expires_at: expires,
                    origin: Name::intern(&origin),
                })
            }
            Some((_, id, expires)) => Some(ConversationRef {
                id,
                expires_at: expires,
                origin: Name::intern(&origin),
            }),
            None => None,
        };
        if user_changed && let Some(u) = self.users.get(&wa_id) {
            fx.put(Kind::User, &wa_id, u);
        }
        let mut msg = Message {
            id: wamid.as_str().into(),
            direction: Direction::Outbound,
            phone_number_id: pnid.to_string(),
            wa_id: wa_id.clone(),
            recipient: by_user.as_ref().map(|u| u.to_string().into()),
            kind: Name::intern(req.content.message_type().as_str()),
            dialect,
            graph_version,
            created_at: now,
            seq: 0,
            body: raw,
            reaction_to: match &req.content {
                Content::Reaction(r) => Some(r.message_id.as_str().into()),
                _ => None,
            },
            voice: matches!(&req.content, Content::Audio(m) if m.voice),
            category: category.map(String::into_boxed_str),
            template_id: template_id.as_deref().map(Box::from),
            held,
            counted,
            reaction: None,
            biz_opaque_callback_data: req.biz_opaque_callback_data.as_deref().map(Box::from),
            pricing: if fate.is_some() {
                None
            } else {
                Some(PricingRef::from(&pricing))
            },
            conversation,
            show_conversation,
            status: None,
            next: (!held).then_some((Step::Send, now + sent_latency)),
            expires_at: self
                .cfg
                .rules
                .ttl
                .then_some(now + ttl_seconds.max(1) * 1_000),
            fate: fate
                .as_ref()
                .map(|e| (e.code.code(), e.details.as_ref().into())),
            timeline: Vec::with_capacity(4),
        };
        for check in checks {
            msg.log(now, "rule_check", Some(check));
        }
        if self.cfg.rules.ttl {
            msg.log(now, "time_to_live", Some(format!("{ttl_seconds} s")));
        }
        if let Some(e) = &fate {
            msg.log(
                now,
                "rule",
                Some(format!("{} {}: it will fail", e.code.code(), e.details)),
            );
        }
        let mut detail = format!("via {} v{}.0", dialect.as_str(), graph_version);
        if let Some(m) = marketing {
            detail.push_str(if lite {
                " /marketing_messages (Marketing Messages API: marketing_lite)"
            } else {
                " /marketing_messages (not onboarded: sent through the Cloud API)"
            });
            if let Some(share) = m.activity_sharing {
                detail.push_str(&format!(", message_activity_sharing {share}"));
            }
        }
        if let Some(u) = &by_user {
            detail.push_str(&format!(", to the user {wa_id} by {u}"));
        }
        if let Some(a) = &req.messaging_account_id {
            detail.push_str(&format!(", messaging account {a}"));
        }
        msg.log(
            now,
            if held {
                "held_for_quality_assessment"
            } else {
                "accepted"
            },
            Some(detail),
        );
        if !held {
            fx.timers
                .push((now + sent_latency, Timer::Message(wamid.clone())));
        }
        self.admit(msg, true, &mut fx);
        if held && let Some(id) = &template_id {
            self.judge_pacing(id, now, &mut fx);
        }
        if target.by != By::Group {
            // Only a send addressed to the phone number shows the business the phone.
            let phone_seen = target.by == By::Phone && fate.is_none();
            self.note_exchange(pnid, &wa_id, phone_seen, now, &mut fx);
        }
        self.evict(&mut fx);
        self.note_rng(&mut fx);
        let status = if held {
            MessageStatus::HeldForQualityAssessment
        } else {
            MessageStatus::Accepted
        };
        let response = match &by_user {
            Some(u) => SendResponse::to_user(&req.to_input, u.as_str(), &wamid, status),
            None => SendResponse::new(&req.to_input, &wa_id, &wamid, status),
        };
        Ok((response, fx))
    }

    /// A business-scoped user id sent in `to` under `bsuid.in_to = "drop"`: the platform reads
    /// it as a phone number (its digits without the country code), answers as for a phone
    /// number, and the message fails with 131026. No user is involved and no rule applies.
    #[allow(clippy::too_many_arguments)]
    fn send_dropped(
        &mut self,
        pnid: &str,
        via: Via,
        req: &SendMessage,
        id: &mynah_wire::UserId,
        read_as: &str,
        raw: RawBody,
        now: Millis,
    ) -> (SendResponse, Effects) {
        let mut fx = self.fx();
        let sent_latency = self.draw(self.cfg.latency.sent);
        let wamid = self.fresh_wamid(read_as);
        let details = format!(
            "The business-scoped user id {id} was sent in to, which takes phone numbers: it was read as the phone number {read_as}, which is not a WhatsApp user. Send it in recipient."
        );
        let mut msg = Message {
            id: wamid.as_str().into(),
            direction: Direction::Outbound,
            phone_number_id: pnid.to_string(),
            wa_id: read_as.to_string(),
            recipient: None,
            kind: Name::intern(req.content.message_type().as_str()),
            dialect: via.dialect,
            graph_version: via.graph_version,
            created_at: now,
            seq: 0,
            body: raw,
            reaction_to: None,
            voice: false,
            category: None,
            template_id: None,
            held: false,
            counted: false,
            reaction: None,
            biz_opaque_callback_data: req.biz_opaque_callback_data.as_deref().map(Box::from),
            pricing: None,
            conversation: None,
            show_conversation: false,
            status: None,
            next: Some((Step::Send, now + sent_latency)),
            expires_at: None,
            fate: Some((ErrorCode::Undeliverable.code(), details.as_str().into())),
            timeline: Vec::with_capacity(3),
        };
        msg.log(
            now,
            "rule",
            Some(format!(
                "131026 {details} (bsuid.in_to = drop): it will fail"
            )),
        );
        msg.log(
            now,
            "accepted",
            Some(format!(
                "via {} v{}.0",
                via.dialect.as_str(),
                via.graph_version
            )),
        );
        fx.timers
            .push((now + sent_latency, Timer::Message(wamid.clone())));
        self.admit(msg, false, &mut fx);
        self.evict(&mut fx);
        self.note_rng(&mut fx);
        let response = SendResponse::new(&req.to_input, read_as, &wamid, MessageStatus::Accepted);
        (response, fx)
    }

    /// Keeps at most `retention.hot_messages` in memory and `retention.max_messages` in all:
    /// the oldest messages whose lifecycle is over leave memory for the journal (with no
    /// journal, or when all are kept in memory, they are forgotten), and the oldest of those the
    /// journal keeps go when there are more than `max_messages`.
    fn evict(&mut self, fx: &mut Effects) {
        let max = self.cfg.retention.max_messages.max(1);
        let hot = if self.persist {
            self.cfg.retention.hot_messages.clamp(1, max)
        } else {
            max
        };
        while self.order.len() > hot {
            let Some(oldest) = self.order.front() else {
                break;
            };
            if self
                .messages
                .get(oldest)
                .is_some_and(|m| m.next.is_some() || m.held)
            {
                break;
            }
            let Some((pos, id, wa_id)) = self.pop_oldest() else {
                break;
            };
            match wa_id {
                Some(wa_id) if hot < max => fx.write(Write::Cool { pos, id, wa_id }),
                _ => {
                    if self.cold_base == pos {
                        self.cold_base = pos + 1;
                    }
                    fx.write(Write::Delete {
                        kind: Kind::Message,
                        id: id.to_string(),
                    });
                }
            }
        }
        let kept = self.order.len() as u64 + (self.order_base - self.cold_base);
        let over = kept.saturating_sub(max as u64);
        let drop = over.min(self.order_base - self.cold_base);
        if drop > 0 {
            self.cold_base += drop;
            let first = self.cold_base;
            let mut gone = Vec::new();
            self.visitors.retain(|(pos, id)| {
                if *pos < first {
                    gone.push(id.clone());
                }
                *pos >= first
            });
            for id in gone {
                self.messages.remove(&*id);
            }
            fx.write(Write::Trim { before: first });
        }
    }

    fn fresh_wamid(&mut self, wa_id: &str) -> String {
        loop {
            let id = self.ids.wamid(wa_id);
            if !self.messages.contains_key(id.as_str()) {
                return id;
            }
        }
    }

    /// A message's lifecycle timer fired.
    pub fn on_message_timer(&mut self, wamid: &str, now: Millis) -> Effects {
        let mut fx = self.fx();
        let Some(msg) = self.messages.get(wamid) else {
            return fx;
        };
        let Some((step, due)) = msg.next else {
            return fx;
        };
        if due > now {
            return fx;
        }
        let wa_id = msg.wa_id.clone();
        let (msg_fate, msg_expires, msg_dialect) = (msg.fate.clone(), msg.expires_at, msg.dialect);
        self.sleep_idle(now, SWEEP_PER_CALL);
        self.wake(&wa_id);
        let behaviour = match self.users.get(&wa_id) {
            Some(u) => u.behaviour.clone(),
            // A message to a number that is no user (a BSUID read as a phone) only fails.
            None if msg_fate.is_some() => Behaviour::default(),
            None => self.user_entry(&wa_id, &mut fx).behaviour.clone(),
        };
        let lat = self.cfg.latency.clone();
        // What the user's reaction causes (quality webhooks, pauses) follows the status itself.
        let mut after = self.fx();
        let replies = |m: &MessageMap| {
            behaviour.replies_with.is_some()
                || m.get(wamid).and_then(|m| m.reaction) == Some(Reaction::Reply)
        };
        let (status, next, error): (Option<StatusKind>, Option<(Step, Millis)>, Option<ApiError>) =
            match step {
                Step::Send => {
                    let fate = msg_fate.as_ref().map(|(code, details)| {
                        ApiError::with_details(
                            ErrorCode::from_code(*code).unwrap_or(ErrorCode::GenericError),
                            details.to_string(),
                        )
                    });
                    if let Some(err) = fate {
                        (Some(StatusKind::Failed), None, Some(err))
                    } else if !behaviour.on_whatsapp {
                        (
                            Some(StatusKind::Failed),
                            None,
                            Some(ApiError::new(ErrorCode::Undeliverable)),
                        )
                    } else if let Some(err) = self.reaction_problem(wamid, now) {
                        (Some(StatusKind::Failed), None, Some(err))
                    } else if msg_kind(&self.messages, wamid) == "reaction"
                        || behaviour.blocks_business
                    {
                        (Some(StatusKind::Sent), None, None)
                    } else {
                        let mut at = now + self.draw(lat.delivered);
                        if let Some(until) = behaviour.offline_until.filter(|u| *u > now) {
                            at = at.max(until + self.draw(lat.delivered));
                        }
                        // Undeliverable within its time-to-live: the drop happens at the TTL.
                        let at = msg_expires.map_or(at, |exp| at.min(exp));
                        (Some(StatusKind::Sent), Some((Step::Deliver, at)), None)
                    }
                }
                Step::Deliver => {
                    let offline = behaviour.offline_until.is_some_and(|u| u > now);
                    let expired = msg_expires.is_some_and(|exp| now >= exp);
                    if offline && expired {
                        // Dropped: no webhook on the Cloud API and 360dialog (spec §7.6); the
                        // On-Premises API reports 410.
                        if msg_dialect == Dialect::OnPrem {
                            (
                                Some(StatusKind::Failed),
                                None,
                                Some(ApiError::new(ErrorCode::OnPremExpired)),
                            )
                        } else {
                            (None, None, None)
                        }
                    } else if let Some(until) = behaviour.offline_until.filter(|u| *u > now) {
                        // Went offline meanwhile: try again once the user is back (or drop at the TTL).
                        let at = until + self.draw(lat.delivered);
                        let at = msg_expires.map_or(at, |exp| at.min(exp.max(now + 1)));
                        (None, Some((Step::Deliver, at)), None)
                    } else if behaviour.blocks_business || !behaviour.on_whatsapp {
                        (None, None, None)
                    } else {
                        let reads = match self.react(wamid, behaviour.reactions, now, &mut after) {
                            Some(r) => matches!(r, Reaction::Read | Reaction::Reply),
                            None => behaviour.reads,
                        };
                        let next = reads.then(|| (Step::Read, now + self.draw(lat.read)));
                        (Some(StatusKind::Delivered), next, None)
                    }
                }
                Step::Read => {
                    let next = if is_voice(&self.messages, wamid) {
                        Some((Step::Play, now + self.draw(lat.played)))
                    } else {
                        replies(&self.messages).then(|| (Step::Reply, now + self.draw(lat.reply)))
                    };
                    // Read even without read receipts; only the webhook is suppressed (below).
                    (Some(StatusKind::Read), next, None)
                }
                Step::Play => {
                    let next =
                        replies(&self.messages).then(|| (Step::Reply, now + self.draw(lat.reply)));
                    (Some(StatusKind::Played), next, None)
                }
                Step::Reply => (None, None, None),
            };
        let emit_read = step != Step::Read || behaviour.read_receipts;
        if let Some(msg) = self.messages.get_mut(wamid) {
            msg.next = next;
            if let Some(s) = status {
                msg.status = Some(s);
                let detail = error
                    .as_ref()
                    .map(|e| format!("{} {}", e.code.code(), e.details));
                msg.log(now, s.as_str(), detail);
                if !emit_read {
                    msg.log(
                        now,
                        "read_receipt_suppressed",
                        Some("the user turned read receipts off".into()),
                    );
                }
            }
            if step == Step::Deliver
                && status != Some(StatusKind::Delivered)
                && next.is_none()
                && msg.expires_at.is_some_and(|exp| now >= exp)
            {
                msg.log(now, "dropped", Some("undelivered when its time-to-live ended; no webhook follows on the Cloud API".into()));
            }
            if let Some((s, at)) = next {
                fx.timers.push((at, Timer::Message(wamid.to_string())));
                if s == Step::Deliver && status.is_none() {
                    msg.log(
                        now,
                        "delivery_postponed",
                        Some(format!("user offline; next try at {at}")),
                    );
                }
            }
        }
        if let (Some(s), true) = (status, emit_read) {
            let ev = self.status_event(wamid, s, now, error.as_ref());
            fx.events.extend(ev);
        }
        let reply_text = behaviour.replies_with.clone().or_else(|| {
            (self.messages.get(wamid).and_then(|m| m.reaction) == Some(Reaction::Reply))
                .then(|| "Thanks!".to_string())
        });
        if step == Step::Reply
            && let Some(text) = reply_text
        {
            let (pnid, display) = match self
                .messages
                .get(wamid)
                .and_then(|m| self.numbers.get(&m.phone_number_id))
            {
                Some(n) => (n.phone_number_id.clone(), n.display_phone_number.clone()),
                None => return fx,
            };
            let req = InboundRequest {
                phone_number_id: Some(pnid),
                from: wa_id,
                name: None,
                context: Some(InboundContext {
                    from: Some(display),
                    id: Some(wamid.to_string()),
                    ..Default::default()
                }),
                referral: None,
                body: InboundBody::Text {
                    text: mynah_wire::webhook::InboundText { body: text },
                },
            };
            if let Ok((_, more)) = self.inbound(req, now) {
                fx.extend(more);
            }
        }
        if let Some(m) = self.messages.get(wamid) {
            fx.put(Kind::Message, wamid, m);
        }
        fx.extend(after);
        // A finished lifecycle may let the oldest messages leave memory after a burst.
        self.evict(&mut fx);
        self.note_rng(&mut fx);
        fx
    }

    fn reaction_problem(&self, wamid: &str, now: Millis) -> Option<ApiError> {
        let msg = self.messages.get(wamid)?;
        if msg.kind != "reaction" {
            return None;
        }
        let target = msg.reaction_to.as_deref()?;
        let bad = match self.messages.get(target) {
            None => true,
            Some(t) => {
                t.kind == "reaction" || t.wa_id != msg.wa_id || now - t.created_at > 30 * DAY
            }
        };
        bad.then(|| {
            ApiError::invalid_value(format!(
                "Param reaction['message_id'] {target} is not a message in this thread younger than 30 days that can be reacted to."
            ))
        })
    }

    fn status_event(
        &self,
        wamid: &str,
        status: StatusKind,
        now: Millis,
        error: Option<&ApiError>,
    ) -> Option<NewEvent> {
        let msg = self.messages.get(wamid)?;
        let number = self.numbers.get(&msg.phone_number_id)?;
        let priced = matches!(status, StatusKind::Sent | StatusKind::Delivered);
        let onprem = msg.dialect == Dialect::OnPrem;
        let conversation = match (&msg.conversation, priced && msg.show_conversation) {
            (Some(c), true) => Some(Conversation {
                id: c.id.clone(),
                expiration_timestamp: (status == StatusKind::Sent)
                    .then(|| unix_seconds_string(c.expires_at)),
                origin: Origin {
                    kind: c.origin.to_string(),
                },
            }),
            _ => None,
        };
        // The ids as the platform sends them (2026 note §1.5): a message sent to the phone
        // number always shows it; one sent to a BSUID shows it only when it may be shared.
        let id = self.ident(&number.phone_number_id, &msg.wa_id, now);
        let by_phone = msg.recipient.is_none();
        let failed = status == StatusKind::Failed;
        let phone = if by_phone {
            Some(msg.wa_id.clone())
        } else {
            id.phone.clone()
        };
        // A failed status of a message sent to the phone number carries no BSUID.
        let (user_id, parent) = if failed && by_phone {
            (None, None)
        } else {
            (id.user_id.clone(), id.parent.clone())
        };
        let contacts = if !self.cfg.webhooks.status_contacts {
            None
        } else if failed {
            match self.cfg.bsuid.failed_status_contacts {
                crate::config::FailedStatusContacts::Documented => None,
                crate::config::FailedStatusContacts::Observed => Some(vec![if by_phone {
                    Contact {
                        wa_id: Some(msg.wa_id.clone()),
                        ..Contact::default()
                    }
                } else {
                    Contact {
                        user_id: user_id.clone(),
                        ..Contact::default()
                    }
                }]),
            }
        } else {
            let shown = Ident {
                phone: phone.clone(),
                ..id.clone()
            };
            // `sent` never carries the username.
            Some(vec![World::contact_entry(
                &shown,
                status != StatusKind::Sent,
            )])
        };
        let st = Status {
            id: msg.id.to_string(),
            status,
            timestamp: unix_seconds_string(now),
            recipient_id: phone,
            recipient_user_id: user_id,
            recipient_parent_user_id: parent,
            biz_opaque_callback_data: msg.biz_opaque_callback_data.as_deref().map(str::to_string),
            conversation,
            pricing: if priced {
                msg.pricing.as_ref().map(Pricing::from)
            } else {
                None
            },
            errors: error.map(|e| {
                if onprem {
                    // The On-Premises API reports its own codes (2061 for 132015, 470 for 131047 …).
                    let mapped =
                        ApiError::with_details(e.code.onprem_equivalent(), e.details.clone());
                    vec![mapped.to_webhook()]
                } else {
                    vec![e.to_webhook()]
                }
            }),
        };
        let value = MessagesValue {
            messaging_product: "whatsapp".into(),
            metadata: metadata(number),
            contacts,
            messages: None,
            statuses: Some(vec![st]),
            errors: None,
        };
        Some(NewEvent {
            own_only: false,
            phone_number_id: number.phone_number_id.clone(),
            waba_id: number.waba_id.clone(),
            key: msg.id.to_string(),
            time: None,
            change: Change {
                value: ChangeValue::Messages(Box::new(value)),
                field: "messages".into(),
            },
            summary: EventSummary {
                field: "messages".into(),
                wamid: Some(msg.id.to_string()),
                status: Some(status.as_str().to_string()),
                wa_id: Some(msg.wa_id.clone()),
                message_type: None,
                onprem,
            },
        })
    }

    /// Simulates a message from a user to a business number.
    pub fn inbound(
        &mut self,
        req: InboundRequest,
        now: Millis,
    ) -> Result<(String, Effects), ApiError> {
        let pnid = match &req.phone_number_id {
            Some(p) => p.clone(),
            None => self
                .first_number()
                .map(|n| n.phone_number_id.clone())
                .unwrap_or_default(),
        };
        let number = self.numbers.get(&pnid).cloned().ok_or_else(|| {
            ApiError::with_details(ErrorCode::MynahNotFound, format!("no phone number {pnid}"))
        })?;
        // A phone number, or a BSUID of the number's portfolio.
        let from = self.user_key(Some(&pnid), &req.from)?;
        let mut fx = self.fx();
        let mut body = req.body;
        match &mut body {
            InboundBody::Audio { audio } => audio.voice = Some(audio.voice.unwrap_or(false)),
            InboundBody::Sticker { sticker } => {
                sticker.animated = Some(sticker.animated.unwrap_or(false))
            }
            _ => {}
        }
        if let Some(media) = body.media_mut() {
            if media.id.is_empty() {
                let mime = if media.mime_type.is_empty() {
                    default_mime(&media.filename)
                } else {
                    media.mime_type.clone()
                };
                let bytes =
                    Bytes::from(format!("mynah sample media for {from} at {now}").into_bytes());
                let m = self.store_media(
                    &pnid,
                    &mime,
                    media.filename.clone(),
                    bytes,
                    now,
                    7 * DAY,
                    &mut fx,
                );
                media.id = m.id.clone();
                media.mime_type = m.mime_type.clone();
                media.sha256 = m.sha256.clone();
            } else if let Some(m) = self.media.get(&media.id) {
                media.mime_type = m.mime_type.clone();
                media.sha256 = m.sha256.clone();
            } else {
                return Err(ApiError::with_details(
                    ErrorCode::MynahBadRequest,
                    format!(
                        "media id {} does not exist; omit it to have one created",
                        media.id
                    ),
                ));
            }
            media.url = Some(self.media_url(&media.id, now));
        }
        let user = self.user_entry_at(&from, now, &mut fx);
        if let Some(name) = &req.name {
            user.name = name.clone();
        }
        user.last_inbound.insert(pnid.clone(), now);
        if req.referral.is_some() {
            user.referral_at.insert(pnid.clone(), now);
        }
        if let Some(u) = self.users.get(&from) {
            fx.put(Kind::User, &from, u);
        }
        // The ids as they stand before this message (2026 note §1.3, §1.4): the phone number
        // only when it may be shared; the message itself then counts as an exchange with it.
        let id = self.ident(&pnid, &from, now);
        let wamid = self.fresh_wamid(match (&id.phone, &id.user_id) {
            (None, Some(u)) => u.as_str(),
            _ => from.as_str(),
        });
        self.note_exchange(&pnid, &from, id.phone.is_some(), now, &mut fx);
        let is_system = matches!(body, InboundBody::System { .. });
        let errors = matches!(body, InboundBody::Unsupported { .. })
            .then(|| vec![ApiError::new(ErrorCode::UnsupportedMessageType).to_webhook()]);
        let message_type = body.type_str().to_string();
        let inbound = InboundMessage {
            context: req.context,
            from: id.phone.clone(),
            from_user_id: id.user_id.clone(),
            from_parent_user_id: id.parent.clone(),
            id: wamid.clone(),
            timestamp: unix_seconds_string(now),
            body,
            referral: req.referral,
            errors,
        };
        let value = MessagesValue {
            messaging_product: "whatsapp".into(),
            metadata: metadata(&number),
            contacts: (!is_system).then(|| vec![World::contact_entry(&id, true)]),
            messages: Some(vec![inbound.clone()]),
            statuses: None,
            errors: None,
        };
        let mut msg = Message::inbound(
            wamid.clone(),
            pnid.clone(),
            from.clone(),
            message_type.clone(),
            &inbound,
            now,
        );
        msg.log(
            now,
            "received",
            Some("customer service window open for 24 hours".into()),
        );
        self.admit(msg, true, &mut fx);
        self.evict(&mut fx);
        fx.events.push(NewEvent {
            own_only: false,
            phone_number_id: pnid,
            waba_id: number.waba_id.clone(),
            key: wamid.clone(),
            time: None,
            change: Change {
                value: ChangeValue::Messages(Box::new(value)),
                field: "messages".into(),
            },
            summary: EventSummary {
                field: "messages".into(),
                wamid: Some(wamid.clone()),
                status: None,
                wa_id: Some(from),
                message_type: Some(message_type),
                onprem: false,
            },
        });
        self.note_rng(&mut fx);
        Ok((wamid, fx))
    }

    /// Marks an inbound message (and the earlier ones of that user) read; with a typing indicator,
    /// shows "typing…" to the user as well.
    pub fn mark_read(
        &mut self,
        pnid: &str,
        message_id: &str,
        typing: bool,
        now: Millis,
    ) -> Result<Effects, ApiError> {
        let Some(target) = self.messages.get(message_id) else {
            return Err(ApiError::invalid_value(format!(
                "Param message_id {message_id} is not a message received by this phone number."
            )));
        };
        if target.direction != Direction::Inbound || target.phone_number_id != pnid {
            return Err(ApiError::invalid_value(format!(
                "Param message_id {message_id} is not a message received by this phone number."
            )));
        }
        let wa_id = target.wa_id.clone();
        let mut fx = self.fx();
        // The target and every earlier (in arrival order) unread inbound message of that user
        // (those in memory: a target read back from the journal is marked alone).
        let mut ids: Vec<String> = Vec::new();
        let in_order = !self.is_visitor(message_id);
        for m in self.messages_in_order().take_while(|_| in_order) {
            if m.direction == Direction::Inbound
                && m.phone_number_id == pnid
                && m.wa_id == wa_id
                && m.status != Some(StatusKind::Read)
            {
                ids.push(m.id.to_string());
            }
            if *m.id == *message_id {
                break;
            }
        }
        for id in ids.iter().chain(std::iter::once(&message_id.to_string())) {
            if let Some(m) = self.messages.get_mut(id.as_str()) {
                if m.status != Some(StatusKind::Read) {
                    m.status = Some(StatusKind::Read);
                    m.log(now, "marked_read", None);
                }
                if typing && id == message_id {
                    m.log(
                        now,
                        "typing_indicator",
                        Some("shown until the next message or 25 seconds".into()),
                    );
                }
                fx.put(Kind::Message, id, &*m);
            }
        }
        Ok(fx)
    }

    /// Changes a user's behaviour, creating the user if needed.
    pub fn set_behaviour(
        &mut self,
        wa_id: &str,
        patch: BehaviourPatch,
        now: Millis,
    ) -> Result<(User, Effects), ApiError> {
        let wa_id = mynah_wire::WaId::parse(wa_id)
            .map_err(|e| ApiError::with_details(ErrorCode::MynahBadRequest, e.details))?
            .as_str()
            .to_string();
        let mut fx = match &patch.username {
            // Checked (and refused) before anything else changes.
            Some(name) => self.set_username(&wa_id, name.as_deref(), now)?.1,
            None => self.fx(),
        };
        let user = self.user_entry_at(&wa_id, now, &mut fx);
        let b = &mut user.behaviour;
        if let Some(v) = patch.name {
            user.name = v;
        }
        if let Some(v) = patch.on_whatsapp {
            b.on_whatsapp = v;
        }
        if let Some(v) = patch.offline_until {
            b.offline_until = v;
        }
        if let Some(s) = patch.offline_for_seconds {
            b.offline_until = Some(now.saturating_add(s.max(0).saturating_mul(1_000)));
        }
        if let Some(v) = patch.reads {
            b.reads = v;
        }
        if let Some(v) = patch.read_receipts {
            b.read_receipts = v;
        }
        if let Some(v) = patch.replies_with {
            b.replies_with = v;
        }
        if let Some(v) = patch.blocks_business {
            b.blocks_business = v;
        }
        if let Some(v) = patch.holdout {
            b.holdout = v;
        }
        if let Some(v) = patch.reactions {
            b.reactions = v;
        }
        let preference_changed = patch
            .marketing_opt_out
            .filter(|v| *v != b.marketing_opt_out);
        if let Some(v) = preference_changed {
            b.marketing_opt_out = v;
        }
        let user = user.clone();
        fx.put(Kind::User, &wa_id, &user);
        if let Some(stop) = preference_changed {
            fx.events.extend(self.preference_events(&user, stop, now));
        }
        Ok((user, fx))
    }

    /// The `user_preferences` webhook (spec §4.8) to every number the user has written to, or the
    /// first number when none.
    fn preference_events(&self, user: &User, stop: bool, now: Millis) -> Vec<NewEvent> {
        let mut pnids: Vec<&String> = user.last_inbound.keys().collect();
        if pnids.is_empty()
            && let Some(first) = self.first_number()
        {
            pnids.push(&first.phone_number_id);
        }
        pnids
            .into_iter()
            .filter_map(|p| self.numbers.get(p))
            .map(|n| {
                let id = self.ident(&n.phone_number_id, &user.wa_id, now);
                let contact = World::contact_entry(&id, true);
                let value = mynah_wire::webhook::UserPreferencesValue {
                    messaging_product: "whatsapp".into(),
                    metadata: metadata(n),
                    contacts: vec![contact],
                    user_preferences: vec![mynah_wire::webhook::UserPreference {
                        wa_id: id.phone.clone(),
                        user_id: id.user_id.clone(),
                        parent_user_id: id.parent.clone(),
                        detail: if stop {
                            "User requested to stop marketing messages".into()
                        } else {
                            "User requested to resume marketing messages".into()
                        },
                        category: "marketing_messages".into(),
                        value: if stop { "stop" } else { "resume" }.into(),
                        timestamp: now / 1_000,
                    }],
                };
                NewEvent {
                    own_only: false,
                    phone_number_id: n.phone_number_id.clone(),
                    waba_id: n.waba_id.clone(),
                    key: format!("user:{}", user.wa_id),
                    time: Some(now / 1_000),
                    change: Change {
                        value: ChangeValue::UserPreferences(value),
                        field: "user_preferences".into(),
                    },
                    summary: EventSummary {
                        field: "user_preferences".into(),
                        wa_id: Some(user.wa_id.clone()),
                        ..EventSummary::default()
                    },
                }
            })
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn store_media(
        &mut self,
        pnid: &str,
        mime: &str,
        filename: Option<String>,
        bytes: Bytes,
        now: Millis,
        ttl: Millis,
        fx: &mut Effects,
    ) -> Media {
        let mut id = self.ids.numeric();
        while self.media.contains_key(&id) {
            id = self.ids.numeric();
        }
        let media = Media {
            id: id.clone(),
            phone_number_id: pnid.to_string(),
            mime_type: mime.to_string(),
            sha256: hex::encode(Sha256::digest(&bytes)),
            file_size: bytes.len() as u64,
            filename,
            created_at: now,
            expires_at: now + ttl,
            bytes: bytes.clone(),
        };
        fx.put(Kind::Media, &id, &media);
        fx.writes.push(Write::Blob {
            id: id.clone(),
            bytes,
        });
        self.media_bytes = self.media_bytes.saturating_add(media.file_size);
        if let Some(old) = self.media.insert(id, media.clone()) {
            self.media_bytes = self.media_bytes.saturating_sub(old.file_size);
        }
        media
    }

    /// Bytes of every stored media object.
    pub fn media_bytes(&self) -> u64 {
        self.media_bytes
    }

    /// Bytes of the stored media objects not expired at `now` (expired ones make room for an
    /// upload that needs it).
    pub fn live_media_bytes(&self, now: Millis) -> u64 {
        self.media
            .values()
            .filter(|m| m.expires_at > now)
            .map(|m| m.file_size)
            .fold(0u64, u64::saturating_add)
    }

    /// Stores an upload; media ids live 30 days. Refused (131053) when it would take the stored
    /// media past `media.max_total_bytes`, once expired media are gone.
    pub fn upload_media(
        &mut self,
        pnid: &str,
        mime: &str,
        filename: Option<String>,
        bytes: Bytes,
        now: Millis,
    ) -> Result<(Media, Effects), ApiError> {
        let mut fx = self.fx();
        let size = bytes.len() as u64;
        let quota = self.cfg.media.max_total_bytes;
        if self.media_bytes.saturating_add(size) > quota {
            self.purge_expired_media(now, &mut fx);
        }
        if self.media_bytes.saturating_add(size) > quota {
            return Err(media_full(self.media_bytes, size, quota));
        }
        let m = self.store_media(pnid, mime, filename, bytes, now, 30 * DAY, &mut fx);
        self.note_rng(&mut fx);
        Ok((m, fx))
    }

    /// Forgets media past their expiry (nothing can fetch or send them any more).
    fn purge_expired_media(&mut self, now: Millis, fx: &mut Effects) {
        let expired: Vec<String> = self
            .media
            .values()
            .filter(|m| m.expires_at <= now)
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            if let Some(more) = self.delete_media(&id) {
                fx.extend(more);
            }
        }
    }

    /// The download URL of a media id (valid 5 minutes).
    pub fn media_url(&self, id: &str, now: Millis) -> String {
        let exp = (now + 5 * 60 * 1_000) / 1_000;
        let hash = hex::encode(
            &Sha256::digest(format!("{id}:{exp}:{}", self.cfg.app_secret).as_bytes())[..12],
        );
        format!(
            "{}/whatsapp_business/attachments/?mid={id}&ext={exp}&hash={hash}",
            self.base_url
        )
    }

    /// Checks a download URL's query and returns the media.
    pub fn media_for_download(
        &self,
        mid: &str,
        ext: &str,
        hash: &str,
        now: Millis,
    ) -> Result<&Media, ApiError> {
        let not_found = || {
            ApiError::with_details(
                ErrorCode::ParameterValueNotValid33,
                "The media URL is not valid or has expired.",
            )
        };
        let exp: i64 = ext.parse().map_err(|_| not_found())?;
        let want = hex::encode(
            &Sha256::digest(format!("{mid}:{exp}:{}", self.cfg.app_secret).as_bytes())[..12],
        );
        if want != hash || exp.saturating_mul(1_000) < now {
            return Err(not_found());
        }
        self.media
            .get(mid)
            .filter(|m| m.expires_at > now)
            .ok_or_else(not_found)
    }

    /// Deletes media.
    pub fn delete_media(&mut self, id: &str) -> Option<Effects> {
        let gone = self.media.remove(id)?;
        self.media_bytes = self.media_bytes.saturating_sub(gone.file_size);
        let mut fx = self.fx();
        fx.writes.push(Write::Delete {
            kind: Kind::Media,
            id: id.to_string(),
        });
        fx.writes.push(Write::DeleteBlob { id: id.to_string() });
        Some(fx)
    }

    /// Forgets messages, users, media and windows; keeps accounts and numbers as configured.
    ///
    /// The world starts a new epoch: its id streams (and the draws that share them) start from
    /// a seed of their own, so no id drawn before the reset comes again. `cfg` brings back the
    /// configured delivery rules (a `PATCH /_mynah/rules` ends here). The journal forgets
    /// everything (`Write::Reset`), then gets the first-start rows and the new epoch.
    pub fn reset(&mut self, cfg: &Config, now: Millis) -> Effects {
        let base_url = std::mem::take(&mut self.base_url);
        let epoch = self.epoch + 1;
        let (mut fresh, first) =
            World::in_epoch(cfg, self.persist, &mut Snapshot::default(), now, epoch);
        fresh.base_url = base_url;
        fresh.watch = self.watch.clone();
        *self = fresh;
        let mut fx = self.fx();
        fx.write(Write::Reset);
        fx.put(Kind::Meta, "epoch", &epoch);
        // Numbers, users, the seeded templates, the RNG positions.
        fx.extend(first);
        fx
    }
}

/// The error of a full media store (131053, naming the quota).
pub fn media_full(used: u64, size: u64, quota: u64) -> ApiError {
    ApiError::with_details(
        ErrorCode::MediaUploadError,
        format!(
            "The sandbox's media storage is full: {used} of {quota} bytes (media.max_total_bytes) are in use and this file needs {size} more. Delete media (DELETE /{{media_id}}), reset the sandbox (POST /_mynah/reset) or raise media.max_total_bytes."
        ),
    )
}

/// An authentication template with a one-tap, zero-tap or copy-code button: not addressable to a
/// business-scoped user id (131062).
fn otp_template(def: &mynah_wire::template::TemplateDefinition) -> bool {
    use mynah_wire::template::{ButtonKind, Category, OtpType};
    def.category == Category::Authentication
        && def.buttons().iter().any(|b| {
            b.kind == ButtonKind::Otp
                && matches!(
                    b.otp_type,
                    Some(OtpType::CopyCode | OtpType::OneTap | OtpType::ZeroTap)
                )
        })
}

fn msg_kind<'a>(messages: &'a MessageMap, wamid: &str) -> &'a str {
    messages.get(wamid).map(|m| m.kind.as_str()).unwrap_or("")
}

fn is_voice(messages: &MessageMap, wamid: &str) -> bool {
    messages.get(wamid).is_some_and(|m| m.voice)
}

fn metadata(n: &Number) -> Metadata {
    Metadata {
        display_phone_number: n.display_phone_number.clone(),
        phone_number_id: n.phone_number_id.clone(),
    }
}

fn new_user(wa_id: &str, name: String, behaviour: Behaviour) -> User {
    User {
        wa_id: wa_id.to_string(),
        name,
        behaviour,
        last_inbound: BTreeMap::new(),
        referral_at: BTreeMap::new(),
        fep_until: BTreeMap::new(),
        conversations: BTreeMap::new(),
        marketing_opened: BTreeMap::new(),
        last_marketing: BTreeMap::new(),
        username: None,
        phone_exchange: BTreeMap::new(),
        last_exchange: BTreeMap::new(),
        contact_book: BTreeMap::new(),
        moved_to: None,
    }
}

fn default_name(wa_id: &str) -> String {
    let tail: String = wa_id
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("User {tail}")
}

fn default_mime(filename: &Option<String>) -> String {
    let ext = filename
        .as_deref()
        .and_then(|f| f.rsplit('.').next())
        .unwrap_or("");
    match ext {
        "pdf" => "application/pdf",
        "png" => "image/png",
        "mp4" => "video/mp4",
        "ogg" => "audio/ogg",
        "webp" => "image/webp",
        _ => "image/jpeg",
    }
    .to_string()
}

/// Pricing of a message (spec §4.5, §5.4; 2026 note §3): the category, whether it is charged,
/// and the conversation origin it belongs to. Inside a free entry point window everything is
/// free and its category is `referral_conversion`.
pub fn price(template_category: Option<&str>, in_csw: bool, in_fep: bool) -> (Pricing, String) {
    let mut category = template_category.unwrap_or("service").to_string();
    let (billable, kind, origin) = if in_fep {
        category = "referral_conversion".to_string();
        (false, "free_entry_point", "referral_conversion".to_string())
    } else if template_category.is_none() || (in_csw && category == "utility") {
        (false, "free_customer_service", category.clone())
    } else {
        (true, "regular", category.clone())
    };
    (
        Pricing {
            billable,
            pricing_model: "PMP".into(),
            kind: kind.into(),
            category,
        },
        origin,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Messages past the hot set leave memory for the journal, the journal keeps
    /// `max_messages` in all, and a visitor read back goes when the journal forgets it.
    #[test]
    fn the_hot_set_the_journal_bound_and_visitors() {
        let mut cfg = Config::default();
        cfg.retention.hot_messages = 2;
        cfg.retention.max_messages = 4;
        let (mut w, _) = World::new(&cfg, true, &mut Snapshot::default(), 0);
        let receive = |w: &mut World, i: u32| {
            let req: InboundRequest = serde_json::from_value(serde_json::json!({
                "from": format!("49151000{i:05}"), "type": "text", "text": { "body": "hi" }
            }))
            .unwrap();
            let (id, fx) = w.inbound(req, 1_000).unwrap();
            (id, fx)
        };
        let mut ids = Vec::new();
        for i in 0..5 {
            ids.push(receive(&mut w, i).0);
        }
        // Positions 0..5: 3 and 4 in memory, 1 and 2 in the journal only, 0 forgotten.
        assert_eq!(w.cold_range(), 1..3);
        assert_eq!(w.message_counts(), (2, 2));
        assert!(!w.messages.contains_key(ids[1].as_str()));
        let old = |pos: u64, id: &str| Message {
            seq: pos,
            ..Message::inbound(
                id.to_string(),
                "pn".into(),
                "49151000".into(),
                "text".into(),
                &(),
                0,
            )
        };
        assert!(!w.visit(0, old(0, &ids[0])), "forgotten by the journal");
        assert!(w.visit(1, old(1, &ids[1])));
        assert!(!w.visit(3, old(3, &ids[3])), "in memory already");
        assert!(w.messages.contains_key(ids[1].as_str()));
        assert_eq!(
            w.message_counts(),
            (3, 1),
            "the visitor counts in memory only"
        );
        // The next message pushes position 1 out of the journal: the visitor goes with it.
        let (_, fx) = receive(&mut w, 5);
        assert_eq!(w.cold_range(), 2..4);
        assert!(!w.messages.contains_key(ids[1].as_str()));
        assert!(
            fx.writes
                .iter()
                .any(|x| matches!(x, Write::Trim { before: 2 })),
            "{:?}",
            fx.writes
        );
        assert!(
            fx.writes
                .iter()
                .any(|x| matches!(x, Write::Cool { pos: 3, .. })),
            "{:?}",
            fx.writes
        );
    }

    #[test]
    fn pricing_follows_the_spec() {
        let (p, o) = price(None, true, false);
        assert_eq!(
            (p.billable, p.kind.as_str(), p.category.as_str(), o.as_str()),
            (false, "free_customer_service", "service", "service")
        );
        let (p, _) = price(Some("utility"), true, false);
        assert_eq!(
            (p.billable, p.kind.as_str()),
            (false, "free_customer_service")
        );
        let (p, _) = price(Some("utility"), false, false);
        assert_eq!((p.billable, p.kind.as_str()), (true, "regular"));
        let (p, _) = price(Some("marketing"), true, false);
        assert_eq!(
            (p.billable, p.kind.as_str(), p.category.as_str()),
            (true, "regular", "marketing")
        );
        let (p, o) = price(Some("marketing"), false, true);
        assert_eq!(
            (p.billable, p.kind.as_str(), p.category.as_str(), o.as_str()),
            (
                false,
                "free_entry_point",
                "referral_conversion",
                "referral_conversion"
            )
        );
        let (p, o) = price(Some("marketing_lite"), false, false);
        assert_eq!(
            (p.billable, p.kind.as_str(), p.category.as_str(), o.as_str()),
            (true, "regular", "marketing_lite", "marketing_lite")
        );
    }
}
