//! The error classifier, as data: the platform's error codes (the Cloud API error code
//! reference) and what a resilient sender does with each.
//!
//! A TOML table (`classify.toml`, embedded in the binary and extendable from the gateway's
//! config) maps an upstream error — its code, HTTP status, subcode, body text, or the kind of
//! transport failure — to an [`Action`]. [`Classifier::classify`] finds the row and returns a
//! [`Rule`] (the action with its parameters resolved against the table's `[policy]`); the pure
//! [`next_delay`] turns a rule, the attempt number, a random source, now and the message's
//! deadline into a [`Decision`] for that message.
//!
//! Rows are tried in order and the first match wins; override rows are tried before the built-in
//! ones (and replace a built-in row with the same matchers). A code without a row falls back to
//! the retry class of `mynah_wire`'s error table, then to the HTTP status (429 throttle, 5xx
//! retry, other statuses fail). Keys are the platform's `code` first, as Meta asks; the HTTP
//! status only decides alone when no code matched.
//!
//! The [`Decision`] is about the one message. Effects on the number (a throttle cuts the number's
//! rate, `pause_number` stops it), on the template (`pause_template`, `disable_template`) or on
//! consent (`withdraw_consent`) follow [`Rule::action`] whatever the decision for the message —
//! e.g. a throttle whose pause ends past the message's deadline fails that message, but still
//! throttles the number.

use crate::clock::Millis;
use crate::upstream::UpstreamError;
use mynah_wire::error::{ErrorCode, RetryClass};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The built-in table.
pub const DEFAULT_TABLE: &str = include_str!("classify.toml");

/// What to do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Pause the number's bucket (Retry-After, else the row's delay) and cut its rate; retry
    /// the message then.
    Throttle,
    /// Back this recipient off `delay × factor^X` (X = consecutive pair errors); others go on.
    PairBackoff,
    /// Retry after a fixed delay (or Retry-After when longer).
    RetryAfter,
    /// Exponential backoff with full jitter, capped, a bounded number of attempts.
    Retry,
    /// Per-user marketing limit (131049): retry on a geometric schedule within the deadline.
    MarketingBackoff,
    /// Marketing opt-out (131050): record it, never retry.
    WithdrawConsent,
    /// Template paused (132015): park until it is active again.
    PauseTemplate,
    /// Template disabled (132016): fail.
    DisableTemplate,
    /// The 24-hour window is closed (131047): fail, or send the fallback template.
    WindowClosed,
    /// Experiment holdout (130472): fail unless a conversation is open.
    Holdout,
    /// Not by business-scoped user id (131062): resend by phone when the person's phone is
    /// known, else fail.
    ResendByPhone,
    /// Permanent for this message.
    Fail,
    /// Pause the whole number and alert (policy, account, credentials).
    PauseNumber,
    /// The message may have gone out: the dispatcher resolves it by policy (reconcile through
    /// statuses before any resend).
    Unknown,
}

impl Action {
    /// The table's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Throttle => "throttle",
            Action::PairBackoff => "pair_backoff",
            Action::RetryAfter => "retry_after",
            Action::Retry => "retry",
            Action::MarketingBackoff => "marketing_backoff",
            Action::WithdrawConsent => "withdraw_consent",
            Action::PauseTemplate => "pause_template",
            Action::DisableTemplate => "disable_template",
            Action::WindowClosed => "window_closed",
            Action::Holdout => "holdout",
            Action::ResendByPhone => "resend_by_phone",
            Action::Fail => "fail",
            Action::PauseNumber => "pause_number",
            Action::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of [`UpstreamError`] a row matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The platform answered with an error.
    Rejected,
    /// Timed out after sending.
    Timeout,
    /// The connection broke after sending.
    Connection,
    /// No connection: nothing sent.
    Connect,
    /// A success with an unreadable body.
    Malformed,
    /// Not configured.
    Config,
    /// A redirect, not followed.
    Redirect,
}

impl ErrorKind {
    /// The kind of an error.
    pub fn of(e: &UpstreamError) -> ErrorKind {
        match e {
            UpstreamError::Rejected { .. } => ErrorKind::Rejected,
            UpstreamError::Timeout => ErrorKind::Timeout,
            UpstreamError::Connection(_) => ErrorKind::Connection,
            UpstreamError::Connect(_) => ErrorKind::Connect,
            UpstreamError::Malformed { .. } => ErrorKind::Malformed,
            UpstreamError::Config(_) => ErrorKind::Config,
            UpstreamError::Redirect { .. } => ErrorKind::Redirect,
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Row {
    /// Matches this kind of error (absent: `rejected`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorKind>,
    /// Matches `error.code`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    /// Matches the HTTP status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// Matches `error.error_subcode`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subcode: Option<i64>,
    /// Matches text in the body, title or details (case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_contains: Option<String>,
    /// What to do.
    pub action: Action,
    /// The delay: the fixed delay (`retry_after`), the pause without Retry-After (`throttle`),
    /// the base (`retry`, `pair_backoff`), the re-check (`pause_template`, `pause_number`,
    /// `unknown`). The policy's value when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<Millis>,
    /// Ceiling of one delay (`retry`, `pair_backoff`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap_ms: Option<Millis>,
    /// Attempts before giving up (`retry`, `retry_after`, `pair_backoff`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// The schedule (`marketing_backoff`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_ms: Option<Vec<Millis>>,
    /// Why, for people and logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Row {
    /// The kind of error it matches.
    fn kind(&self) -> ErrorKind {
        self.error.unwrap_or(ErrorKind::Rejected)
    }

    /// True when both rows match the same errors.
    fn same_matchers(&self, other: &Row) -> bool {
        self.kind() == other.kind()
            && self.code == other.code
            && self.http_status == other.http_status
            && self.subcode == other.subcode
            && self.body_contains.as_deref().map(str::to_lowercase)
                == other.body_contains.as_deref().map(str::to_lowercase)
    }

    fn check(&self) -> Result<(), String> {
        let any_field = self.code.is_some()
            || self.http_status.is_some()
            || self.subcode.is_some()
            || self.body_contains.is_some();
        if !any_field && self.error.is_none() {
            return Err(
                "a rule needs a matcher: error, code, http_status, subcode or body_contains".into(),
            );
        }
        if any_field && !matches!(self.kind(), ErrorKind::Rejected | ErrorKind::Malformed) {
            return Err(format!(
                "error = {:?} has no code, status or body to match",
                self.kind()
            ));
        }
        if self
            .body_contains
            .as_deref()
            .is_some_and(|b| b.trim().is_empty())
        {
            return Err("body_contains is empty".into());
        }
        if self.action == Action::RetryAfter && self.delay_ms.is_none() {
            return Err("retry_after needs delay_ms".into());
        }
        if self.delay_ms.is_some_and(|d| d < 0) || self.cap_ms.is_some_and(|d| d < 0) {
            return Err("delays are not negative".into());
        }
        if let Some(s) = &self.schedule_ms
            && (s.is_empty() || s.iter().any(|d| *d < 0))
        {
            return Err("schedule_ms needs at least one non-negative delay".into());
        }
        if self.max_attempts == Some(0) {
            return Err("max_attempts is at least 1".into());
        }
        Ok(())
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(e) = self.error {
            parts.push(format!("error={e:?}"));
        }
        if let Some(c) = self.code {
            parts.push(format!("code={c}"));
        }
        if let Some(s) = self.http_status {
            parts.push(format!("http_status={s}"));
        }
        if let Some(s) = self.subcode {
            parts.push(format!("subcode={s}"));
        }
        if let Some(b) = &self.body_contains {
            parts.push(format!("body_contains={b:?}"));
        }
        parts.join(" ")
    }
}

/// The table's defaults for rows that do not set their own parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// `retry`: the first delay's ceiling, doubled per attempt.
    pub backoff_base_ms: Millis,
    /// `retry`: the ceiling of one delay.
    pub backoff_cap_ms: Millis,
    /// `retry`, `retry_after`, `pair_backoff`: attempts before giving up.
    pub max_attempts: u32,
    /// `throttle` without Retry-After: the pause.
    pub throttle_pause_ms: Millis,
    /// `pair_backoff`: the unit (X = 0 waits this long).
    pub pair_base_ms: Millis,
    /// `pair_backoff`: the factor (4).
    pub pair_factor: u32,
    /// `pair_backoff`: the ceiling.
    pub pair_cap_ms: Millis,
    /// `marketing_backoff`: the schedule.
    pub marketing_schedule_ms: Vec<Millis>,
    /// `pause_template`: when to re-check the template at the latest.
    pub template_recheck_ms: Millis,
    /// `pause_number`: when to re-check the number.
    pub number_pause_ms: Millis,
    /// `unknown`: when to reconcile.
    pub unknown_recheck_ms: Millis,
}

impl Policy {
    fn check(&self) -> Result<(), String> {
        let delays = [
            self.backoff_base_ms,
            self.backoff_cap_ms,
            self.throttle_pause_ms,
            self.pair_base_ms,
            self.pair_cap_ms,
            self.template_recheck_ms,
            self.number_pause_ms,
            self.unknown_recheck_ms,
        ];
        if delays.iter().any(|d| *d < 0) {
            return Err("policy delays are not negative".into());
        }
        if self.max_attempts == 0 || self.pair_factor == 0 {
            return Err("max_attempts and pair_factor are at least 1".into());
        }
        if self.marketing_schedule_ms.is_empty()
            || self.marketing_schedule_ms.iter().any(|d| *d < 0)
        {
            return Err("marketing_schedule_ms needs at least one non-negative delay".into());
        }
        Ok(())
    }
}

/// Changes to the policy; absent fields keep the table's value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[allow(missing_docs)]
pub struct PolicyPatch {
    pub backoff_base_ms: Option<Millis>,
    pub backoff_cap_ms: Option<Millis>,
    pub max_attempts: Option<u32>,
    pub throttle_pause_ms: Option<Millis>,
    pub pair_base_ms: Option<Millis>,
    pub pair_factor: Option<u32>,
    pub pair_cap_ms: Option<Millis>,
    pub marketing_schedule_ms: Option<Vec<Millis>>,
    pub template_recheck_ms: Option<Millis>,
    pub number_pause_ms: Option<Millis>,
    pub unknown_recheck_ms: Option<Millis>,
}

impl PolicyPatch {
    fn apply(self, p: &mut Policy) {
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = self.$f { p.$f = v; } )* };
        }
        set!(
            backoff_base_ms,
            backoff_cap_ms,
            max_attempts,
            throttle_pause_ms,
            pair_base_ms,
            pair_factor,
            pair_cap_ms,
            marketing_schedule_ms,
            template_recheck_ms,
            number_pause_ms,
            unknown_recheck_ms
        );
    }
}

/// What the gateway config adds to the table (`[classifier]`: `policy` and `[[classifier.rule]]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Overrides {
    /// Policy changes.
    pub policy: PolicyPatch,
    /// Rows tried before the built-in ones.
    pub rule: Vec<Row>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    policy: Policy,
    #[serde(default)]
    rule: Vec<Row>,
}

/// A row ready to match (its body text lower-cased once).
#[derive(Debug, Clone)]
struct Compiled {
    row: Row,
    needle: Option<String>,
}

/// Where a rule came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Row `n` of the effective table (overrides first).
    Row(usize),
    /// No row matched; the wire error table's retry class decided.
    RetryClass(RetryClass),
    /// No row matched and the code is unknown; the HTTP status decided.
    HttpStatus(u16),
    /// No row matched a transport error; the built-in fallback decided.
    Transport,
}

/// The classification of one error: the action and its parameters, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// What to do.
    pub action: Action,
    /// Which row (or fallback) decided.
    pub source: Source,
    /// The error's code, if any.
    pub code: Option<i64>,
    /// The error's HTTP status, if any.
    pub http_status: Option<u16>,
    /// The error's `Retry-After`, ms.
    pub retry_after: Option<Millis>,
    /// The action's delay (see [`Row::delay_ms`]).
    pub delay_ms: Millis,
    /// Ceiling of one delay.
    pub cap_ms: Millis,
    /// Growth factor (`retry`: 2, `pair_backoff`: the policy's).
    pub factor: u32,
    /// Attempts before giving up.
    pub max_attempts: u32,
    /// `marketing_backoff`'s schedule.
    pub schedule_ms: Vec<Millis>,
    /// A sentence for records and logs: the error and the row's note.
    pub reason: String,
}

/// Why a message is given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailKind {
    /// The error is permanent for this message.
    Permanent,
    /// The user opted out of marketing: record it (category marketing), never retry.
    WithdrawConsent,
    /// The template is disabled.
    DisableTemplate,
    /// The customer-service window is closed: send the fallback template if one is configured.
    WindowClosed,
    /// Experiment holdout: only an open conversation lets it through.
    Holdout,
    /// Refused for a business-scoped user id: resend by phone if it is known.
    NotByUserId,
    /// Out of attempts.
    Exhausted,
    /// The next try would come after the message's deadline.
    Deadline,
}

/// What happens to the message next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Send it again at this time.
    RetryAt(Millis),
    /// The number is throttled until then; send it again then.
    Throttle {
        /// End of the pause.
        until: Millis,
    },
    /// This recipient is backed off until then; send it again then.
    PairBackoff {
        /// End of the backoff.
        until: Millis,
    },
    /// Park it until the template is active again; look again at `recheck_at` at the latest.
    PauseTemplate {
        /// Latest re-check.
        recheck_at: Millis,
    },
    /// The number is paused (alert); park the message; look again at `until`.
    PauseNumber {
        /// Re-check time.
        until: Millis,
    },
    /// The outcome is unknown (it may have gone out): reconcile at `recheck_at` through
    /// statuses before any resend. The deadline does not fail it: it may have been delivered.
    Unknown {
        /// When to reconcile.
        recheck_at: Millis,
    },
    /// Give up on it.
    Fail {
        /// Why, as a kind.
        kind: FailKind,
        /// Why, in words.
        reason: String,
    },
}

/// The classifier: a policy and rows.
#[derive(Debug, Clone)]
pub struct Classifier {
    policy: Policy,
    rows: Vec<Compiled>,
}

impl Default for Classifier {
    /// The built-in table ([`DEFAULT_TABLE`]).
    fn default() -> Self {
        Classifier::from_toml(DEFAULT_TABLE).expect("the built-in classifier table parses")
    }
}

fn compile(rows: Vec<Row>) -> Result<Vec<Compiled>, String> {
    rows.into_iter()
        .enumerate()
        .map(|(i, row)| {
            row.check()
                .map_err(|e| format!("rule {} ({}): {e}", i + 1, row.describe()))?;
            let needle = row.body_contains.as_deref().map(str::to_lowercase);
            Ok(Compiled { row, needle })
        })
        .collect()
}

fn contains_ci(hay: Option<&str>, needle: &str) -> bool {
    hay.is_some_and(|h| h.to_lowercase().contains(needle))
}

impl Classifier {
    /// A classifier from a whole table (`[policy]` and `[[rule]]`s).
    pub fn from_toml(text: &str) -> Result<Classifier, String> {
        let table: Table = toml::from_str(text).map_err(|e| e.to_string())?;
        table.policy.check()?;
        Ok(Classifier {
            policy: table.policy,
            rows: compile(table.rule)?,
        })
    }

    /// This table with `overrides`: policy fields replaced, rows tried first (a built-in row
    /// with the same matchers as an override row is dropped).
    pub fn with_overrides(self, overrides: Overrides) -> Result<Classifier, String> {
        let mut policy = self.policy;
        overrides.policy.apply(&mut policy);
        policy.check()?;
        let new = compile(overrides.rule)?;
        let mut rows = new;
        for old in self.rows {
            if !rows.iter().any(|n| n.row.same_matchers(&old.row)) {
                rows.push(old);
            }
        }
        Ok(Classifier { policy, rows })
    }

    /// [`with_overrides`](Self::with_overrides) from TOML text (`[policy]`, `[[rule]]`).
    pub fn with_overrides_toml(self, text: &str) -> Result<Classifier, String> {
        let o: Overrides = toml::from_str(text).map_err(|e| e.to_string())?;
        self.with_overrides(o)
    }

    /// The policy in effect.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The rows in the order they are tried.
    pub fn rows(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter().map(|c| &c.row)
    }

    fn matches(c: &Compiled, e: &UpstreamError, kind: ErrorKind) -> bool {
        let r = &c.row;
        if r.kind() != kind {
            return false;
        }
        if r.code.is_some() && r.code != e.code() {
            return false;
        }
        if r.http_status.is_some() && r.http_status != e.http_status() {
            return false;
        }
        let (subcode, title, details, body) = match e {
            UpstreamError::Rejected {
                subcode,
                title,
                details,
                body,
                ..
            } => (
                *subcode,
                title.as_deref(),
                details.as_deref(),
                Some(body.as_str()),
            ),
            UpstreamError::Malformed { body, .. } => (None, None, None, Some(body.as_str())),
            _ => (None, None, None, None),
        };
        if r.subcode.is_some() && r.subcode != subcode {
            return false;
        }
        if let Some(n) = &c.needle
            && !(contains_ci(body, n) || contains_ci(title, n) || contains_ci(details, n))
        {
            return false;
        }
        true
    }

    /// Classifies an error.
    pub fn classify(&self, e: &UpstreamError) -> Rule {
        let kind = ErrorKind::of(e);
        let found = self
            .rows
            .iter()
            .enumerate()
            .find(|(_, c)| Self::matches(c, e, kind));
        let (action, source, row) = match found {
            Some((i, c)) => (c.row.action, Source::Row(i), Some(&c.row)),
            None => {
                let (a, s) = fallback(e);
                (a, s, None)
            }
        };
        self.resolve(action, source, row, e)
    }

    fn resolve(
        &self,
        action: Action,
        source: Source,
        row: Option<&Row>,
        e: &UpstreamError,
    ) -> Rule {
        let p = &self.policy;
        let (delay, cap, factor) = match action {
            Action::Throttle => (p.throttle_pause_ms, p.throttle_pause_ms, 1),
            Action::PairBackoff => (p.pair_base_ms, p.pair_cap_ms, p.pair_factor),
            Action::Retry => (p.backoff_base_ms, p.backoff_cap_ms, 2),
            Action::PauseTemplate => (p.template_recheck_ms, p.template_recheck_ms, 1),
            Action::PauseNumber => (p.number_pause_ms, p.number_pause_ms, 1),
            Action::Unknown => (p.unknown_recheck_ms, p.unknown_recheck_ms, 1),
            _ => (0, 0, 1),
        };
        let delay = row.and_then(|r| r.delay_ms).unwrap_or(delay);
        let cap = row.and_then(|r| r.cap_ms).unwrap_or(cap.max(delay));
        let schedule = if action == Action::MarketingBackoff {
            row.and_then(|r| r.schedule_ms.clone())
                .unwrap_or_else(|| p.marketing_schedule_ms.clone())
        } else {
            Vec::new()
        };
        let mut reason = e.to_string();
        if let Some(note) = row.and_then(|r| r.note.as_deref()) {
            reason.push_str(" — ");
            reason.push_str(note);
        }
        Rule {
            action,
            source,
            code: e.code(),
            http_status: e.http_status(),
            retry_after: e.retry_after(),
            delay_ms: delay,
            cap_ms: cap,
            factor,
            max_attempts: row.and_then(|r| r.max_attempts).unwrap_or(p.max_attempts),
            schedule_ms: schedule,
            reason,
        }
    }
}

/// When no row matched: the wire table's retry class, then the HTTP status.
fn fallback(e: &UpstreamError) -> (Action, Source) {
    match e {
        UpstreamError::Rejected {
            http_status, code, ..
        } => {
            if let Some(spec) = code
                .and_then(|c| u32::try_from(c).ok())
                .and_then(ErrorCode::from_code)
                .map(|c| c.spec())
            {
                let action = match spec.retry {
                    RetryClass::Backoff | RetryClass::Wait => Action::Retry,
                    RetryClass::Pace => Action::Throttle,
                    RetryClass::Alt | RetryClass::Fix | RetryClass::Never => Action::Fail,
                };
                return (action, Source::RetryClass(spec.retry));
            }
            let action = match *http_status {
                429 => Action::Throttle,
                500..=599 => Action::Retry,
                _ => Action::Fail,
            };
            (action, Source::HttpStatus(*http_status))
        }
        UpstreamError::Connect(_) => (Action::Retry, Source::Transport),
        UpstreamError::Config(_) | UpstreamError::Redirect { .. } => {
            (Action::Fail, Source::Transport)
        }
        UpstreamError::Timeout | UpstreamError::Connection(_) | UpstreamError::Malformed { .. } => {
            (Action::Unknown, Source::Transport)
        }
    }
}

/// `base × factor^exp`, saturating, at most `cap`.
fn grow(base: Millis, factor: u32, exp: u32, cap: Millis) -> Millis {
    let mut d = base.max(0);
    for _ in 0..exp {
        d = d.saturating_mul(factor as Millis);
        if d >= cap {
            return cap;
        }
    }
    d.min(cap)
}

/// What happens to a message after `attempt` failed attempts (1 for the first failure; for
/// `pair_backoff`, the count of consecutive pair errors to this recipient) ended with `rule`.
/// Pure: the same inputs (and random draws) give the same decision. `deadline` bounds every
/// retry (`None`: unbounded).
pub fn next_delay(
    rule: &Rule,
    attempt: u32,
    rng: &mut impl Rng,
    now: Millis,
    deadline: Option<Millis>,
) -> Decision {
    let attempt = attempt.max(1);
    let fail = |kind: FailKind, why: &str| Decision::Fail {
        kind,
        reason: if why.is_empty() {
            rule.reason.clone()
        } else {
            format!("{}; {why}", rule.reason)
        },
    };
    let exhausted = || {
        fail(
            FailKind::Exhausted,
            &format!("gave up after {attempt} attempts"),
        )
    };
    let retry_after = rule.retry_after.unwrap_or(0).max(0);
    let at = |t: Millis| -> Result<Millis, Decision> {
        match deadline {
            Some(d) if t > d => Err(fail(
                FailKind::Deadline,
                "the next try would come after the message's deadline",
            )),
            _ => Ok(t),
        }
    };
    let decide = |t: Millis, make: fn(Millis) -> Decision| match at(t) {
        Ok(t) => make(t),
        Err(d) => d,
    };
    match rule.action {
        Action::Throttle => {
            let pause = rule.retry_after.unwrap_or(rule.delay_ms).max(0);
            decide(now.saturating_add(pause), |until| Decision::Throttle {
                until,
            })
        }
        Action::PairBackoff => {
            if attempt > rule.max_attempts {
                return exhausted();
            }
            let d = grow(rule.delay_ms, rule.factor, attempt - 1, rule.cap_ms).max(retry_after);
            decide(now.saturating_add(d), |until| Decision::PairBackoff {
                until,
            })
        }
        Action::RetryAfter => {
            if attempt >= rule.max_attempts {
                return exhausted();
            }
            decide(
                now.saturating_add(rule.delay_ms.max(retry_after)),
                Decision::RetryAt,
            )
        }
        Action::Retry => {
            if attempt >= rule.max_attempts {
                return exhausted();
            }
            let ceiling = grow(rule.delay_ms, rule.factor, attempt - 1, rule.cap_ms);
            let jittered = if ceiling > 0 {
                rng.random_range(0..=ceiling)
            } else {
                0
            };
            decide(
                now.saturating_add(jittered.max(retry_after)),
                Decision::RetryAt,
            )
        }
        Action::MarketingBackoff => match rule.schedule_ms.get(attempt as usize - 1) {
            None => exhausted(),
            Some(d) => decide(now.saturating_add((*d).max(retry_after)), Decision::RetryAt),
        },
        Action::PauseTemplate => decide(now.saturating_add(rule.delay_ms), |recheck_at| {
            Decision::PauseTemplate { recheck_at }
        }),
        Action::PauseNumber => decide(
            now.saturating_add(rule.delay_ms.max(retry_after)),
            |until| Decision::PauseNumber { until },
        ),
        Action::Unknown => Decision::Unknown {
            recheck_at: now.saturating_add(rule.delay_ms),
        },
        Action::WithdrawConsent => fail(FailKind::WithdrawConsent, ""),
        Action::DisableTemplate => fail(FailKind::DisableTemplate, ""),
        Action::WindowClosed => fail(FailKind::WindowClosed, ""),
        Action::Holdout => fail(FailKind::Holdout, ""),
        Action::ResendByPhone => fail(FailKind::NotByUserId, ""),
        Action::Fail => fail(FailKind::Permanent, ""),
    }
}

impl Rule {
    /// [`next_delay`] as a method.
    pub fn next_delay(
        &self,
        attempt: u32,
        rng: &mut impl Rng,
        now: Millis,
        deadline: Option<Millis>,
    ) -> Decision {
        next_delay(self, attempt, rng, now, deadline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{HOUR, SECOND};
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn rejected(http_status: u16, code: Option<i64>) -> UpstreamError {
        UpstreamError::Rejected {
            http_status,
            code,
            subcode: None,
            title: None,
            details: None,
            retry_after: None,
            body: String::new(),
        }
    }

    fn action(c: &Classifier, http: u16, code: i64) -> Action {
        c.classify(&rejected(http, Some(code))).action
    }

    #[test]
    fn the_default_table_parses_and_every_code_in_it_is_known() {
        let c = Classifier::default();
        assert!(c.rows().count() > 60);
        // Codes of the table that the wire table does not know are deliberate (an old or
        // On-Premises-only code); list them here so a typo cannot slip in.
        let extra: &[i64] = &[134101];
        for r in c.rows() {
            if let Some(code) = r.code {
                assert!(
                    ErrorCode::from_code(code as u32).is_some() || extra.contains(&code),
                    "code {code} is neither in the wire table nor a known extra"
                );
            }
        }
    }

    #[test]
    fn every_named_code_has_its_action() {
        let c = Classifier::default();
        let cases: &[(i64, u16, Action)] = &[
            (130429, 400, Action::Throttle),
            (130429, 429, Action::Throttle),
            (4, 429, Action::Throttle),
            (80007, 400, Action::Throttle),
            (131048, 400, Action::Throttle),
            (131056, 400, Action::PairBackoff),
            (131056, 429, Action::PairBackoff),
            (131057, 500, Action::RetryAfter),
            (131000, 500, Action::Retry),
            (131016, 503, Action::Retry),
            (2, 500, Action::Retry),
            (2, 503, Action::Throttle),
            (133004, 503, Action::Retry),
            (131049, 400, Action::MarketingBackoff),
            (131050, 400, Action::WithdrawConsent),
            (132015, 400, Action::PauseTemplate),
            (132016, 400, Action::DisableTemplate),
            (131047, 400, Action::WindowClosed),
            (130472, 400, Action::Holdout),
            (131062, 400, Action::ResendByPhone),
            (131026, 400, Action::Fail),
            (131051, 400, Action::Fail),
            (132000, 400, Action::Fail),
            (132001, 404, Action::Fail),
            (132005, 400, Action::Fail),
            (132012, 400, Action::Fail),
            (100, 400, Action::Fail),
            (131008, 400, Action::Fail),
            (131009, 400, Action::Fail),
            (368, 403, Action::PauseNumber),
            (131031, 403, Action::PauseNumber),
            (130497, 403, Action::PauseNumber),
            (190, 401, Action::PauseNumber),
            // On-Premises equivalents.
            (2061, 400, Action::PauseTemplate),
            (2062, 400, Action::DisableTemplate),
            (470, 400, Action::WindowClosed),
            (472, 400, Action::Holdout),
            (429, 429, Action::Throttle),
        ];
        for (code, http, want) in cases {
            assert_eq!(
                action(&c, *http, *code),
                *want,
                "code {code} at HTTP {http}"
            );
        }
    }

    #[test]
    fn statuses_bodies_and_transport() {
        let c = Classifier::default();
        assert_eq!(c.classify(&rejected(429, None)).action, Action::Throttle);
        assert_eq!(c.classify(&rejected(503, None)).action, Action::Throttle);
        assert_eq!(c.classify(&rejected(502, None)).action, Action::Retry);
        assert_eq!(c.classify(&rejected(500, None)).action, Action::Retry);
        assert_eq!(c.classify(&rejected(401, None)).action, Action::PauseNumber);
        assert_eq!(c.classify(&rejected(400, None)).action, Action::Fail);

        // 360dialog's endpoint rate limit: HTTP 400 and a body text, plain or in a body.
        for body in [
            "You have exceeded the endpoint rate limit",
            r#"{"meta":{"success":false,"http_code":400,"developer_message":"You have exceeded the Endpoint Rate Limit"}}"#,
        ] {
            let e = UpstreamError::Rejected {
                http_status: 400,
                code: None,
                subcode: None,
                title: None,
                details: None,
                retry_after: None,
                body: body.into(),
            };
            let r = c.classify(&e);
            assert_eq!(r.action, Action::Throttle, "{body}");
            assert!(matches!(r.source, Source::Row(0)));
        }
        // The same text in details counts; at another status it does not.
        let e = UpstreamError::Rejected {
            http_status: 400,
            code: Some(100),
            subcode: None,
            title: None,
            details: Some("endpoint rate limit exceeded".into()),
            retry_after: None,
            body: String::new(),
        };
        assert_eq!(c.classify(&e).action, Action::Throttle);

        assert_eq!(c.classify(&UpstreamError::Timeout).action, Action::Unknown);
        assert_eq!(
            c.classify(&UpstreamError::Connection("reset".into()))
                .action,
            Action::Unknown
        );
        assert_eq!(
            c.classify(&UpstreamError::Malformed {
                http_status: 200,
                reason: "x".into(),
                body: String::new()
            })
            .action,
            Action::Unknown
        );
        assert_eq!(
            c.classify(&UpstreamError::Connect("refused".into())).action,
            Action::Retry
        );
        assert_eq!(
            c.classify(&UpstreamError::Config("x".into())).action,
            Action::Fail
        );
    }

    #[test]
    fn unknown_codes_fall_back_to_the_retry_class_then_the_status() {
        let c = Classifier::default();
        let r = c.classify(&rejected(400, Some(133016)));
        assert_eq!(
            (r.action, r.source),
            (Action::Retry, Source::RetryClass(RetryClass::Wait))
        );
        let r = c.classify(&rejected(400, Some(2388019)));
        assert_eq!(
            (r.action, r.source),
            (Action::Fail, Source::RetryClass(RetryClass::Fix))
        );
        let r = c.classify(&rejected(500, Some(4080)));
        assert_eq!(r.action, Action::Retry);
        let r = c.classify(&rejected(502, Some(987654)));
        assert_eq!(
            (r.action, r.source),
            (Action::Retry, Source::HttpStatus(502))
        );
        let r = c.classify(&rejected(418, Some(987654)));
        assert_eq!(
            (r.action, r.source),
            (Action::Fail, Source::HttpStatus(418))
        );
        // A code row beats a status row: 131056 at 429 is the pair, not the number.
        assert_eq!(action(&c, 429, 131056), Action::PairBackoff);
        // An empty classifier still decides by the fallbacks.
        let bare = Classifier::from_toml(
            "[policy]\nbackoff_base_ms = 1\nbackoff_cap_ms = 1\nmax_attempts = 1\nthrottle_pause_ms = 1\n\
             pair_base_ms = 1\npair_factor = 4\npair_cap_ms = 1\nmarketing_schedule_ms = [1]\n\
             template_recheck_ms = 1\nnumber_pause_ms = 1\nunknown_recheck_ms = 1\n",
        )
        .unwrap();
        assert_eq!(action(&bare, 400, 130429), Action::Throttle);
        assert_eq!(
            bare.classify(&UpstreamError::Timeout).action,
            Action::Unknown
        );
        assert_eq!(
            bare.classify(&UpstreamError::Connect("x".into())).action,
            Action::Retry
        );
    }

    #[test]
    fn overrides_come_first_and_replace() {
        let c = Classifier::default()
            .with_overrides_toml(
                r#"
                [policy]
                max_attempts = 3
                [[rule]]
                code = 131026
                action = "retry"
                note = "our upstream says 131026 for a flaky reason"
                [[rule]]
                code = 999001
                action = "pause_template"
                delay_ms = 5000
                [[rule]]
                http_status = 400
                body_contains = "WABA disabled"
                action = "pause_number"
                "#,
            )
            .unwrap();
        let r = c.classify(&rejected(400, Some(131026)));
        assert_eq!((r.action, r.source), (Action::Retry, Source::Row(0)));
        assert_eq!(r.max_attempts, 3);
        assert!(r.reason.contains("flaky"), "{}", r.reason);
        assert_eq!(
            c.rows().filter(|r| r.code == Some(131026)).count(),
            1,
            "the built-in row is replaced"
        );
        assert_eq!(action(&c, 400, 999001), Action::PauseTemplate);
        assert_eq!(c.classify(&rejected(400, Some(999001))).delay_ms, 5_000);
        assert_eq!(c.policy().max_attempts, 3);
        assert_eq!(c.policy().pair_factor, 4);

        // Bad rows are refused with their position.
        for bad in [
            "[[rule]]\naction = \"fail\"",
            "[[rule]]\ncode = 1\naction = \"retry_after\"",
            "[[rule]]\ncode = 1\naction = \"explode\"",
            "[[rule]]\nerror = \"timeout\"\ncode = 1\naction = \"fail\"",
            "[[rule]]\ncode = 1\naction = \"retry\"\nmax_attempts = 0",
            "[[rule]]\ncode = 1\naction = \"fail\"\ncolour = \"red\"",
            "[policy]\npair_factor = 0",
        ] {
            assert!(
                Classifier::default().with_overrides_toml(bad).is_err(),
                "{bad}"
            );
        }
        let o: Overrides =
            toml::from_str("[[rule]]\nerror = \"timeout\"\naction = \"retry\"").unwrap();
        let c = Classifier::default().with_overrides(o).unwrap();
        assert_eq!(c.classify(&UpstreamError::Timeout).action, Action::Retry);
    }

    fn rule_for(c: &Classifier, e: &UpstreamError) -> Rule {
        c.classify(e)
    }

    #[test]
    fn throttle_honours_retry_after() {
        let c = Classifier::default();
        let mut rng = StdRng::seed_from_u64(1);
        let mut e = rejected(429, Some(130429));
        if let UpstreamError::Rejected { retry_after, .. } = &mut e {
            *retry_after = Some(7_000);
        }
        let r = rule_for(&c, &e);
        assert_eq!(
            r.next_delay(1, &mut rng, 1_000, None),
            Decision::Throttle { until: 8_000 }
        );
        let r = rule_for(&c, &rejected(400, Some(130429)));
        assert_eq!(
            r.next_delay(4, &mut rng, 1_000, None),
            Decision::Throttle { until: 2_000 }
        );
        let r = rule_for(&c, &rejected(400, Some(131048)));
        assert_eq!(
            r.next_delay(1, &mut rng, 0, None),
            Decision::Throttle { until: 300_000 }
        );
        // Past the deadline the message fails (the number is still throttled by the action).
        assert!(matches!(
            r.next_delay(1, &mut rng, 0, Some(1_000)),
            Decision::Fail {
                kind: FailKind::Deadline,
                ..
            }
        ));
    }

    #[test]
    fn pair_backoff_is_four_to_the_x() {
        let c = Classifier::default();
        let mut rng = StdRng::seed_from_u64(1);
        let r = rule_for(&c, &rejected(400, Some(131056)));
        let waits: Vec<Millis> = (1..=8)
            .map(|x| match r.next_delay(x, &mut rng, 0, None) {
                Decision::PairBackoff { until } => until,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            waits,
            vec![
                1_000, 4_000, 16_000, 64_000, 256_000, 1_024_000, 3_600_000, 3_600_000
            ]
        );
        assert!(matches!(
            r.next_delay(11, &mut rng, 0, None),
            Decision::Fail {
                kind: FailKind::Exhausted,
                ..
            }
        ));
    }

    #[test]
    fn retry_is_capped_full_jitter_and_bounded() {
        let c = Classifier::default();
        let r = rule_for(&c, &rejected(500, Some(131016)));
        let mut rng = StdRng::seed_from_u64(42);
        for attempt in 1..10u32 {
            let ceiling = (1_000i64 << (attempt - 1)).min(300_000);
            let mut seen_low = false;
            for _ in 0..200 {
                match r.next_delay(attempt, &mut rng, 10_000, None) {
                    Decision::RetryAt(t) => {
                        let d = t - 10_000;
                        assert!((0..=ceiling).contains(&d), "attempt {attempt}: {d}");
                        seen_low |= d < ceiling / 2;
                    }
                    other => panic!("{other:?}"),
                }
            }
            assert!(seen_low, "full jitter reaches the lower half");
        }
        assert!(matches!(
            r.next_delay(10, &mut rng, 0, None),
            Decision::Fail {
                kind: FailKind::Exhausted,
                ..
            }
        ));
        // 131000 gives up sooner; code 1 retries once.
        let r = rule_for(&c, &rejected(500, Some(131000)));
        assert!(matches!(
            r.next_delay(4, &mut rng, 0, None),
            Decision::RetryAt(_)
        ));
        assert!(matches!(
            r.next_delay(5, &mut rng, 0, None),
            Decision::Fail { .. }
        ));
        let r = rule_for(&c, &rejected(400, Some(1)));
        assert!(matches!(
            r.next_delay(1, &mut rng, 0, None),
            Decision::RetryAt(_)
        ));
        assert!(matches!(
            r.next_delay(2, &mut rng, 0, None),
            Decision::Fail { .. }
        ));
        // Retry-After is a floor; the deadline bounds it.
        let mut e = rejected(503, Some(131016));
        if let UpstreamError::Rejected { retry_after, .. } = &mut e {
            *retry_after = Some(90_000);
        }
        let r = rule_for(&c, &e);
        assert_eq!(
            r.next_delay(1, &mut rng, 0, None),
            Decision::RetryAt(90_000)
        );
        assert!(matches!(
            r.next_delay(1, &mut rng, 0, Some(60_000)),
            Decision::Fail {
                kind: FailKind::Deadline,
                ..
            }
        ));
        // Transport: connect retries, a timeout is unknown whatever the deadline.
        let r = rule_for(&c, &UpstreamError::Connect("refused".into()));
        assert!(matches!(r.next_delay(1, &mut rng, 0, None), Decision::RetryAt(t) if t <= 1_000));
        let r = rule_for(&c, &UpstreamError::Timeout);
        assert_eq!(
            r.next_delay(1, &mut rng, 5, Some(0)),
            Decision::Unknown { recheck_at: 60_005 }
        );
    }

    #[test]
    fn fixed_delays_and_schedules() {
        let c = Classifier::default();
        let mut rng = StdRng::seed_from_u64(3);
        let r = rule_for(&c, &rejected(500, Some(131057)));
        assert_eq!(
            r.next_delay(1, &mut rng, 0, None),
            Decision::RetryAt(60_000)
        );
        assert_eq!(
            r.next_delay(9, &mut rng, 0, None),
            Decision::RetryAt(60_000)
        );
        assert!(matches!(
            r.next_delay(10, &mut rng, 0, None),
            Decision::Fail { .. }
        ));

        let r = rule_for(&c, &rejected(400, Some(131049)));
        let day = 24 * HOUR;
        assert_eq!(
            r.next_delay(1, &mut rng, 0, None),
            Decision::RetryAt(12 * HOUR)
        );
        assert_eq!(r.next_delay(2, &mut rng, 0, None), Decision::RetryAt(day));
        assert_eq!(
            r.next_delay(3, &mut rng, 0, None),
            Decision::RetryAt(2 * day)
        );
        assert!(matches!(
            r.next_delay(4, &mut rng, 0, None),
            Decision::Fail {
                kind: FailKind::Exhausted,
                ..
            }
        ));
        assert!(matches!(
            r.next_delay(2, &mut rng, 0, Some(20 * HOUR)),
            Decision::Fail {
                kind: FailKind::Deadline,
                ..
            }
        ));

        let r = rule_for(&c, &rejected(400, Some(132015)));
        assert_eq!(
            r.next_delay(1, &mut rng, SECOND, None),
            Decision::PauseTemplate {
                recheck_at: SECOND + 3 * HOUR
            }
        );
        let r = rule_for(&c, &rejected(403, Some(368)));
        assert_eq!(
            r.next_delay(1, &mut rng, 0, None),
            Decision::PauseNumber { until: HOUR }
        );

        let kinds = [
            (131050, FailKind::WithdrawConsent),
            (132016, FailKind::DisableTemplate),
            (131047, FailKind::WindowClosed),
            (130472, FailKind::Holdout),
            (131062, FailKind::NotByUserId),
            (131026, FailKind::Permanent),
            (132001, FailKind::Permanent),
        ];
        for (code, want) in kinds {
            let r = rule_for(&c, &rejected(400, Some(code)));
            match r.next_delay(1, &mut rng, 0, None) {
                Decision::Fail { kind, reason } => {
                    assert_eq!(kind, want, "{code}");
                    assert!(reason.contains(&format!("#{code}")), "{reason}");
                }
                other => panic!("{code}: {other:?}"),
            }
        }
    }
}
