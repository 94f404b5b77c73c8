//! The gateway's data model: message states, lanes, categories, consent, and the monotonic status
//! state machine (a pure function).
//!
//! Every enum here has a stable lowercase string form (`as_str` / `parse`), which is also its serde
//! form and the value stored in the database. `parse` ignores ASCII case, so the platform's
//! `MARKETING` reads as [`Category::Marketing`].

use crate::clock::Millis;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Declares a string-backed enum with `ALL`, `as_str`, `parse` (ASCII case-insensitive),
/// `Display` and serde through the string form.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stable string form (serde and storage).
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// Parses the string form, ignoring ASCII case.
            pub fn parse(s: &str) -> Option<$name> {
                $name::ALL.iter().copied().find(|v| v.as_str().eq_ignore_ascii_case(s))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<$name, D::Error> {
                let s = std::borrow::Cow::<str>::deserialize(d)?;
                $name::parse(&s).ok_or_else(|| {
                    serde::de::Error::custom(format!(concat!("unknown ", stringify!($name), " `{}`"), s))
                })
            }
        }
    };
}

string_enum! {
    /// Where an outbound message is in its life.
    ///
    /// Terminal states ([`MessageState::is_terminal`]) are read, failed, expired, suppressed,
    /// refused and cancelled. `delivered` is *not* terminal because `read` may follow. `failed` and `expired` are
    /// terminal for the dispatcher (nothing more is sent) but a later platform `delivered`/`read`
    /// still supersedes them: the platform has the last word.
    MessageState {
        /// In the outbox, waiting for its turn (`next_attempt_at`).
        Queued => "queued",
        /// Claimed by a dispatcher under a lease; the send is in flight.
        Sending => "sending",
        /// The upstream accepted it (send response with a wamid).
        Accepted => "accepted",
        /// The upstream holds it for quality assessment (pacing).
        Held => "held",
        /// The platform reports it sent.
        Sent => "sent",
        /// The platform reports it delivered to the device.
        Delivered => "delivered",
        /// The platform reports it read (or played).
        Read => "read",
        /// Failed for good (the platform's `failed`, or a permanent send error).
        Failed => "failed",
        /// Not delivered before its deadline (our TTL drop detection, or dropped before sending).
        Expired => "expired",
        /// Stopped by a gate before sending (no consent, opted out, …).
        Suppressed => "suppressed",
        /// Refused by a gate before sending (invalid, template disabled, …).
        Refused => "refused",
        /// The outcome of a send is unknown (lease expired, timeout); reconcile before resending.
        Unknown => "unknown",
        /// Cancelled by the app before it was handed to the platform; never sent.
        Cancelled => "cancelled",
        /// Not an outbound state: an inbound message from the user (its `message.received`
        /// event and its place in the conversation carry it).
        Received => "received",
    }
}

impl MessageState {
    /// True when nothing more will be sent for this message. See the type's docs for why
    /// `delivered` is not terminal and `failed`/`expired` may still be superseded.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            MessageState::Read
                | MessageState::Failed
                | MessageState::Expired
                | MessageState::Suppressed
                | MessageState::Refused
                | MessageState::Cancelled
                | MessageState::Received
        )
    }

    /// Position in the monotonic order the status machine joins over:
    /// queued < sending < unknown < accepted < held < sent < expired < failed < delivered < read.
    /// `expired` and `failed` sit between `sent` and `delivered`: they override any progress short
    /// of delivery and are overridden by delivery. `suppressed`, `refused` and `cancelled` rank
    /// highest: a message stopped before sending is never moved by a status.
    pub fn rank(self) -> u8 {
        match self {
            MessageState::Queued => 0,
            MessageState::Sending => 1,
            MessageState::Unknown => 2,
            MessageState::Accepted => 3,
            MessageState::Held => 4,
            MessageState::Sent => 5,
            MessageState::Expired => 6,
            MessageState::Failed => 7,
            MessageState::Delivered => 8,
            MessageState::Read => 9,
            MessageState::Suppressed => 10,
            MessageState::Refused => 11,
            MessageState::Cancelled => 12,
            MessageState::Received => 13,
        }
    }
}

string_enum! {
    /// Dispatch lane: transactional messages are claimed before bulk ones.
    Lane {
        /// OTPs, notifications: claimed first.
        Transactional => "transactional",
        /// Campaigns and broadcasts.
        Bulk => "bulk",
    }
}

impl Lane {
    /// Lanes in the order the dispatcher claims them.
    pub const DISPATCH_ORDER: [Lane; 2] = [Lane::Transactional, Lane::Bulk];
}

string_enum! {
    /// The platform's message (and template) category.
    Category {
        /// Marketing (needs an opt-in; 131049/131050 apply).
        Marketing => "marketing",
        /// Utility.
        Utility => "utility",
        /// Authentication (OTPs).
        Authentication => "authentication",
        /// Service (free-form replies inside the customer service window).
        Service => "service",
    }
}

string_enum! {
    /// A contact's consent for one category.
    ConsentStatus {
        /// The contact opted in.
        OptedIn => "opted_in",
        /// The contact opted out.
        OptedOut => "opted_out",
    }
}

string_enum! {
    /// A message status as the platform reports it, mapped onto the states it can move to.
    /// `parse` also takes the platform's aliases: `held_for_quality_assessment` (held) and
    /// `played` (read).
    PlatformStatus {
        /// `accepted` (send response or on-prem status).
        Accepted => "accepted",
        /// `held_for_quality_assessment`.
        Held => "held",
        /// `sent`.
        Sent => "sent",
        /// `delivered`.
        Delivered => "delivered",
        /// `read` (and `played`).
        Read => "read",
        /// `failed`.
        Failed => "failed",
    }
}

impl PlatformStatus {
    /// Parses a platform status string, aliases included; `None` for statuses that do not move
    /// a message (`deleted`, `warning`, unknown words).
    pub fn from_platform(s: &str) -> Option<PlatformStatus> {
        if s.eq_ignore_ascii_case("held_for_quality_assessment") {
            return Some(PlatformStatus::Held);
        }
        if s.eq_ignore_ascii_case("played") {
            return Some(PlatformStatus::Read);
        }
        PlatformStatus::parse(s)
    }

    /// The message state this status moves to.
    pub fn state(self) -> MessageState {
        match self {
            PlatformStatus::Accepted => MessageState::Accepted,
            PlatformStatus::Held => MessageState::Held,
            PlatformStatus::Sent => MessageState::Sent,
            PlatformStatus::Delivered => MessageState::Delivered,
            PlatformStatus::Read => MessageState::Read,
            PlatformStatus::Failed => MessageState::Failed,
        }
    }
}

/// The part of a message the status machine reads: its state, its lifecycle timestamps and the
/// error behind a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Current state.
    pub state: MessageState,
    /// When the upstream accepted it (or reported it held).
    pub accepted_at: Option<Millis>,
    /// When the platform says it was sent.
    pub sent_at: Option<Millis>,
    /// When the platform says it was delivered.
    pub delivered_at: Option<Millis>,
    /// When the platform says it was read.
    pub read_at: Option<Millis>,
    /// When the platform says it failed (cleared when a delivery supersedes the failure).
    pub failed_at: Option<Millis>,
    /// The error code behind the current failure.
    pub error_code: Option<i64>,
}

impl Progress {
    /// A message in `state` with no timestamps.
    pub fn new(state: MessageState) -> Progress {
        Progress {
            state,
            accepted_at: None,
            sent_at: None,
            delivered_at: None,
            read_at: None,
            failed_at: None,
            error_code: None,
        }
    }
}

/// Something learned about a sent message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// A platform status (webhook, or the send response's `message_status`).
    Status {
        /// The status.
        status: PlatformStatus,
        /// Its timestamp, unix ms.
        at: Millis,
        /// The error (code, title) on a `failed`.
        error: Option<(i64, String)>,
    },
    /// Our TTL drop detection: the deadline passed without delivery.
    Expired {
        /// When we noticed.
        at: Millis,
    },
}

impl Observation {
    /// A platform status with the platform's unix-seconds timestamp.
    pub fn platform(
        status: PlatformStatus,
        unix_seconds: i64,
        error: Option<(i64, String)>,
    ) -> Observation {
        Observation::Status {
            status,
            at: unix_seconds.saturating_mul(1_000),
            error,
        }
    }

    /// The state this observation moves a message to, if it ranks higher.
    pub fn state(&self) -> MessageState {
        match self {
            Observation::Status { status, .. } => status.state(),
            Observation::Expired { .. } => MessageState::Expired,
        }
    }
}

/// What an observation did to a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// The state moved forward.
    Advanced,
    /// The state stayed but timestamps (or a superseded failure) changed.
    Recorded,
    /// Nothing changed (a duplicate, a stale status, or a message stopped before sending):
    /// record it as a timeline event only.
    Ignored,
}

/// The changes an observation makes to a message. `Some` fields are new values; `None` leaves the
/// stored value alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The new state, when it moves.
    pub state: Option<MessageState>,
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
    /// The failure's error (code, title), set together with `failed_at`.
    pub error: Option<(i64, String)>,
    /// Clear `failed_at` and the last error: a delivery superseded the failure.
    pub clear_failure: bool,
    /// Summary.
    pub effect: Effect,
}

impl Transition {
    fn none() -> Transition {
        Transition {
            state: None,
            accepted_at: None,
            sent_at: None,
            delivered_at: None,
            read_at: None,
            failed_at: None,
            error: None,
            clear_failure: false,
            effect: Effect::Ignored,
        }
    }

    /// True when the stored row must be written (anything but [`Effect::Ignored`]).
    pub fn changes_row(&self) -> bool {
        self.effect != Effect::Ignored
    }

    /// Applies the transition to `p` (what the store does to the row).
    pub fn apply_to(&self, p: &mut Progress) {
        if self.clear_failure {
            p.failed_at = None;
            p.error_code = None;
        }
        if let Some(s) = self.state {
            p.state = s;
        }
        set_if(&mut p.accepted_at, self.accepted_at);
        set_if(&mut p.sent_at, self.sent_at);
        set_if(&mut p.delivered_at, self.delivered_at);
        set_if(&mut p.read_at, self.read_at);
        set_if(&mut p.failed_at, self.failed_at);
        if let Some((code, _)) = &self.error {
            p.error_code = Some(*code);
        }
    }
}

fn set_if(slot: &mut Option<Millis>, value: Option<Millis>) {
    if value.is_some() {
        *slot = value;
    }
}

/// `Some(at)` when `at` is earlier than the stored timestamp (or there is none): timestamps keep
/// the earliest report, so duplicates converge whatever their order.
fn earlier(stored: Option<Millis>, at: Millis) -> Option<Millis> {
    match stored {
        Some(s) if s <= at => None,
        _ => Some(at),
    }
}

/// The monotonic status state machine: what `obs` changes in a message at `current`.
///
/// - The state is the join (highest [`MessageState::rank`]) of the current state and the
///   observed one, so it never moves backwards: a late `sent` never overwrites `delivered`.
/// - Each status fills its own timestamp with the earliest report; `read` also fills
///   `delivered_at` (read implies delivered).
/// - `failed` outranks everything short of delivery, so it is terminal for `sent`/`held`, but
///   a `delivered`/`read` in either order supersedes it and clears `failed_at` and the error; a
///   `failed` after a delivery changes nothing (an event only).
/// - `expired` (our TTL detection) is superseded by a later `delivered`/`read` and by `failed`.
/// - Suppressed, refused and cancelled messages were never sent: nothing moves them (nor an
///   inbound message's `received`).
///
/// The result depends only on the set of observations, not their arrival order.
pub fn observe(current: &Progress, obs: &Observation) -> Transition {
    let mut t = Transition::none();
    if matches!(
        current.state,
        MessageState::Suppressed
            | MessageState::Refused
            | MessageState::Cancelled
            | MessageState::Received
    ) {
        return t;
    }
    let incoming = obs.state();
    if incoming.rank() > current.state.rank() {
        t.state = Some(incoming);
    }
    let after = t.state.unwrap_or(current.state);
    if let Observation::Status { status, at, error } = obs {
        stamp(&mut t, current, *status, *at, error, after);
    }
    if current.failed_at.is_some() && after.rank() >= MessageState::Delivered.rank() {
        t.clear_failure = true;
        t.failed_at = None;
        t.error = None;
    }
    t.effect = effect_of(&t);
    t
}

fn stamp(
    t: &mut Transition,
    current: &Progress,
    status: PlatformStatus,
    at: Millis,
    error: &Option<(i64, String)>,
    after: MessageState,
) {
    match status {
        PlatformStatus::Accepted | PlatformStatus::Held => {
            t.accepted_at = earlier(current.accepted_at, at);
        }
        PlatformStatus::Sent => t.sent_at = earlier(current.sent_at, at),
        PlatformStatus::Delivered => t.delivered_at = earlier(current.delivered_at, at),
        PlatformStatus::Read => {
            t.read_at = earlier(current.read_at, at);
            t.delivered_at = earlier(current.delivered_at, at);
        }
        PlatformStatus::Failed => {
            if after == MessageState::Failed {
                t.failed_at = earlier(current.failed_at, at);
                if t.failed_at.is_some() {
                    t.error = error.clone();
                }
            }
        }
    }
}

fn effect_of(t: &Transition) -> Effect {
    if t.state.is_some() {
        Effect::Advanced
    } else if t.clear_failure
        || t.accepted_at.is_some()
        || t.sent_at.is_some()
        || t.delivered_at.is_some()
        || t.read_at.is_some()
        || t.failed_at.is_some()
    {
        Effect::Recorded
    } else {
        Effect::Ignored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(status: PlatformStatus, at: Millis) -> Observation {
        Observation::Status {
            status,
            at,
            error: None,
        }
    }

    fn failed(at: Millis, code: i64) -> Observation {
        Observation::Status {
            status: PlatformStatus::Failed,
            at,
            error: Some((code, "x".into())),
        }
    }

    fn run(start: MessageState, obs: &[&Observation]) -> Progress {
        let mut p = Progress::new(start);
        for o in obs {
            let before = p.state.rank();
            observe(&p, o).apply_to(&mut p);
            assert!(p.state.rank() >= before, "state moved backwards");
        }
        p
    }

    #[test]
    fn strings_round_trip_and_ignore_case() {
        for s in MessageState::ALL {
            assert_eq!(MessageState::parse(s.as_str()), Some(*s));
            let json = serde_json::to_string(s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
            assert_eq!(serde_json::from_str::<MessageState>(&json).unwrap(), *s);
        }
        assert_eq!(Category::parse("MARKETING"), Some(Category::Marketing));
        assert_eq!(
            ConsentStatus::parse("opted_out"),
            Some(ConsentStatus::OptedOut)
        );
        assert_eq!(Lane::parse("bulk"), Some(Lane::Bulk));
        assert_eq!(Lane::parse("nope"), None);
        assert!(serde_json::from_str::<Lane>("\"nope\"").is_err());
        assert_eq!(
            PlatformStatus::from_platform("held_for_quality_assessment"),
            Some(PlatformStatus::Held)
        );
        assert_eq!(
            PlatformStatus::from_platform("played"),
            Some(PlatformStatus::Read)
        );
        assert_eq!(PlatformStatus::from_platform("deleted"), None);
    }

    #[test]
    fn terminal_states_and_rank_order() {
        use MessageState::*;
        let terminal: Vec<_> = MessageState::ALL
            .iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(
            terminal,
            [
                &Read,
                &Failed,
                &Expired,
                &Suppressed,
                &Refused,
                &Cancelled,
                &Received
            ]
        );
        let chain = [Queued, Sending, Accepted, Held, Sent, Delivered, Read];
        assert!(chain.windows(2).all(|w| w[0].rank() < w[1].rank()));
        let mut ranks: Vec<_> = MessageState::ALL.iter().map(|s| s.rank()).collect();
        ranks.sort();
        ranks.dedup();
        assert_eq!(
            ranks.len(),
            MessageState::ALL.len(),
            "ranks are a total order"
        );
    }

    #[test]
    fn statuses_advance_in_order() {
        let p = run(
            MessageState::Accepted,
            &[
                &st(PlatformStatus::Held, 1_000),
                &st(PlatformStatus::Sent, 2_000),
                &st(PlatformStatus::Delivered, 3_000),
                &st(PlatformStatus::Read, 4_000),
            ],
        );
        assert_eq!(p.state, MessageState::Read);
        assert_eq!(
            (p.accepted_at, p.sent_at, p.delivered_at, p.read_at),
            (Some(1_000), Some(2_000), Some(3_000), Some(4_000))
        );
    }

    #[test]
    fn late_sent_never_overwrites_delivered() {
        let mut p = run(
            MessageState::Accepted,
            &[&st(PlatformStatus::Delivered, 3_000)],
        );
        let t = observe(&p, &st(PlatformStatus::Sent, 2_000));
        assert_eq!(t.state, None);
        assert_eq!(t.effect, Effect::Recorded, "sent_at is still filled");
        t.apply_to(&mut p);
        assert_eq!(p.state, MessageState::Delivered);
        assert_eq!(p.sent_at, Some(2_000));
    }

    #[test]
    fn read_implies_delivered() {
        let p = run(MessageState::Sent, &[&st(PlatformStatus::Read, 5_000)]);
        assert_eq!(p.state, MessageState::Read);
        assert_eq!(p.delivered_at, Some(5_000));
        // The real delivered arrives later with its earlier timestamp: the earliest wins.
        let mut p = p;
        let t = observe(&p, &st(PlatformStatus::Delivered, 4_000));
        assert_eq!((t.state, t.effect), (None, Effect::Recorded));
        t.apply_to(&mut p);
        assert_eq!((p.state, p.delivered_at), (MessageState::Read, Some(4_000)));
    }

    #[test]
    fn played_counts_as_read() {
        let played = PlatformStatus::from_platform("played").unwrap();
        let p = run(MessageState::Delivered, &[&st(played, 9_000)]);
        assert_eq!((p.state, p.read_at), (MessageState::Read, Some(9_000)));
    }

    #[test]
    fn failed_is_terminal_for_progress_short_of_delivery() {
        let p = run(
            MessageState::Accepted,
            &[
                &failed(2_000, 131026),
                &st(PlatformStatus::Sent, 1_000),
                &st(PlatformStatus::Held, 500),
            ],
        );
        assert_eq!(p.state, MessageState::Failed);
        assert_eq!((p.failed_at, p.error_code), (Some(2_000), Some(131026)));
        assert!(p.state.is_terminal());
    }

    #[test]
    fn delivery_supersedes_failure_and_clears_it() {
        let mut p = run(MessageState::Sent, &[&failed(2_000, 131026)]);
        let t = observe(&p, &st(PlatformStatus::Delivered, 3_000));
        assert_eq!(t.state, Some(MessageState::Delivered));
        assert!(t.clear_failure);
        t.apply_to(&mut p);
        assert_eq!(p.failed_at, None);
        assert_eq!(p.error_code, None);
    }

    #[test]
    fn failed_after_delivered_is_an_event_only() {
        let p = run(MessageState::Sent, &[&st(PlatformStatus::Delivered, 3_000)]);
        let t = observe(&p, &failed(4_000, 131026));
        assert_eq!(t, {
            let mut none = Transition::none();
            none.effect = Effect::Ignored;
            none
        });
    }

    #[test]
    fn expired_is_superseded_by_delivery_and_failure_only() {
        let p = run(MessageState::Sent, &[&Observation::Expired { at: 10_000 }]);
        assert_eq!(p.state, MessageState::Expired);
        let late_sent = observe(&p, &st(PlatformStatus::Sent, 11_000));
        assert_eq!(late_sent.state, None);
        let delivered = observe(&p, &st(PlatformStatus::Delivered, 12_000));
        assert_eq!(delivered.state, Some(MessageState::Delivered));
        let failed_later = observe(&p, &failed(12_000, 131026));
        assert_eq!(failed_later.state, Some(MessageState::Failed));
        let p = run(
            MessageState::Delivered,
            &[&Observation::Expired { at: 10_000 }],
        );
        assert_eq!(p.state, MessageState::Delivered);
    }

    #[test]
    fn duplicates_are_ignored() {
        let p = run(MessageState::Accepted, &[&st(PlatformStatus::Sent, 1_000)]);
        let t = observe(&p, &st(PlatformStatus::Sent, 1_000));
        assert_eq!(t.effect, Effect::Ignored);
        assert!(!t.changes_row());
    }

    #[test]
    fn stopped_messages_never_move() {
        for s in [MessageState::Suppressed, MessageState::Refused] {
            let t = observe(&Progress::new(s), &st(PlatformStatus::Read, 1));
            assert_eq!(t.effect, Effect::Ignored);
        }
    }

    #[test]
    fn platform_seconds_become_millis() {
        let o = Observation::platform(PlatformStatus::Sent, 1_700_000_000, None);
        assert_eq!(
            o,
            Observation::Status {
                status: PlatformStatus::Sent,
                at: 1_700_000_000_000,
                error: None
            }
        );
    }

    /// Heap's algorithm: calls `f` with every permutation of `items`.
    fn permutations<T: Clone>(items: &mut [T], k: usize, f: &mut impl FnMut(&[T])) {
        if k <= 1 {
            f(items);
            return;
        }
        for i in 0..k {
            permutations(items, k - 1, f);
            let j = if k.is_multiple_of(2) { i } else { 0 };
            items.swap(j, k - 1);
        }
    }

    fn converges(start: MessageState, obs: Vec<Observation>) -> Progress {
        let mut items = obs;
        let n = items.len();
        let mut finals: Vec<Progress> = Vec::new();
        permutations(&mut items, n, &mut |order| {
            let refs: Vec<&Observation> = order.iter().collect();
            finals.push(run(start, &refs));
        });
        let first = finals[0].clone();
        assert!(
            finals.iter().all(|p| *p == first),
            "arrival order changed the result"
        );
        first
    }

    #[test]
    fn any_arrival_order_converges() {
        let full = converges(
            MessageState::Accepted,
            vec![
                st(PlatformStatus::Held, 500),
                st(PlatformStatus::Sent, 1_000),
                st(PlatformStatus::Sent, 1_000),
                failed(1_500, 131026),
                st(PlatformStatus::Delivered, 2_000),
                st(PlatformStatus::Read, 3_000),
                Observation::Expired { at: 9_000 },
            ],
        );
        assert_eq!(full.state, MessageState::Read);
        assert_eq!(
            (
                full.sent_at,
                full.delivered_at,
                full.read_at,
                full.failed_at
            ),
            (Some(1_000), Some(2_000), Some(3_000), None)
        );
        let failed_only = converges(
            MessageState::Sending,
            vec![
                st(PlatformStatus::Accepted, 100),
                st(PlatformStatus::Sent, 1_000),
                failed(1_500, 131049),
                failed(1_400, 131049),
                Observation::Expired { at: 9_000 },
                st(PlatformStatus::Held, 200),
            ],
        );
        assert_eq!(failed_only.state, MessageState::Failed);
        assert_eq!(
            (failed_only.failed_at, failed_only.error_code),
            (Some(1_400), Some(131049))
        );
        let read_no_delivered = converges(
            MessageState::Accepted,
            vec![
                st(PlatformStatus::Read, 3_000),
                st(PlatformStatus::Sent, 1_000),
                Observation::Expired { at: 9_000 },
                st(PlatformStatus::Read, 3_000),
            ],
        );
        assert_eq!(
            (read_no_delivered.state, read_no_delivered.delivered_at),
            (MessageState::Read, Some(3_000))
        );
    }
}

/// What the next message of a sequence waits for from the one before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SequenceWait {
    /// Delivered to the user's phone (or read).
    #[default]
    Delivered,
    /// Read by the user.
    Read,
}

impl SequenceWait {
    /// Whether a message in `state` lets the next one go.
    pub fn met_by(self, state: MessageState) -> bool {
        match self {
            SequenceWait::Delivered => {
                matches!(state, MessageState::Delivered | MessageState::Read)
            }
            SequenceWait::Read => state == MessageState::Read,
        }
    }
}

/// What happens when the message before has not got there within the sequence's timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnSequenceTimeout {
    /// Send the next one anyway.
    #[default]
    SendAnyway,
    /// Fail the rest of the sequence, with the reason.
    FailRest,
}

/// What happens to the rest of a sequence when a message of it fails (or expires, or is
/// cancelled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnSequenceFailure {
    /// The rest fails, with the reason.
    #[default]
    Stop,
    /// The rest goes on.
    Continue,
}

/// A message's place in an ordered sequence: messages posted with the same `key` to the same
/// person go out one at a time, in the order accepted, each after the one before reached `wait`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequenceStep {
    /// The sequence (per person).
    pub key: String,
    /// What the message before must reach.
    pub wait: SequenceWait,
    /// How long to wait for it, ms.
    pub timeout_ms: Millis,
    /// After the timeout.
    pub on_timeout: OnSequenceTimeout,
    /// When a message before fails.
    pub on_failure: OnSequenceFailure,
}

impl MessageState {
    /// A state in which a message will never reach the user (for the messages after it in a
    /// sequence).
    pub fn is_lost(self) -> bool {
        matches!(
            self,
            MessageState::Failed
                | MessageState::Expired
                | MessageState::Cancelled
                | MessageState::Suppressed
                | MessageState::Refused
        )
    }
}
