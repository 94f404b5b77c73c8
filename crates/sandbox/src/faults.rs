//! Fault rules: make the sandbox answer a send with an error, fail it asynchronously, or slow it
//! down, on demand — matched on dialect, number, recipient, template, message type, the Nth
//! matching request, a time window of sandbox time, with seeded probabilities. Set in the config
//! (`[[faults]]`) or through `POST /_mynah/faults`.

use crate::clock::Millis;
use crate::ids::Ids;
use mynah_wire::error::{ApiError, ErrorCode};
use serde::{Deserialize, Serialize};

/// What a rule matches. Absent fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultMatch {
    /// `cloud`, `360dialog` or `onprem`.
    pub dialect: Option<String>,
    /// Business number.
    pub phone_number_id: Option<String>,
    /// Recipient: the user's `wa_id` (digits), or the business-scoped user id a send addressed.
    pub to: Option<String>,
    /// Template name.
    pub template: Option<String>,
    /// Message type (`text`, `template`, …).
    #[serde(rename = "type")]
    pub message_type: Option<String>,
    /// Only the Nth matching request (1-based).
    pub nth: Option<u64>,
    /// Only from this sandbox time on (unix ms).
    pub from_ms: Option<Millis>,
    /// Only until this sandbox time (unix ms).
    pub until_ms: Option<Millis>,
    /// Fires with this probability (seeded).
    pub probability: Option<f64>,
}

/// What a rule does.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultAction {
    /// Answer with this error code (from the error table) instead of accepting.
    pub code: Option<u32>,
    /// HTTP status for `code` (the table's otherwise).
    pub http_status: Option<u16>,
    /// Accept, then fail asynchronously with this code (a `failed` webhook).
    pub async_code: Option<u32>,
    /// `error_data.details` for either.
    pub details: Option<String>,
    /// Wall-clock delay before answering, ms (for client timeouts).
    pub latency_ms: Option<u64>,
    /// Accept the send at once (its webhooks go out on their schedule), then hold the answer
    /// this long, ms: the message's statuses can reach the caller before its send answer does.
    pub answer_delay_ms: Option<u64>,
    /// Close the connection without an answer: `before` the send is processed (nothing
    /// happened), or `after` it was accepted (the message goes out; the caller cannot know).
    pub drop_connection: Option<DropWhen>,
}

/// When a dropped connection happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DropWhen {
    /// Before anything is done.
    Before,
    /// After the message was accepted.
    After,
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// Id (given, or assigned).
    #[serde(default)]
    pub id: String,
    /// What it matches.
    #[serde(default, rename = "match")]
    pub matches: FaultMatch,
    /// What it does.
    pub action: FaultAction,
    /// How many times it may fire; `None` for ever.
    #[serde(default)]
    pub times: Option<u64>,
    /// Requests it matched so far.
    #[serde(default)]
    pub seen: u64,
    /// Times it fired so far.
    #[serde(default)]
    pub fired: u64,
}

/// The longest wall-clock wait a rule may add (`latency_ms`, `answer_delay_ms`): one hour.
pub const MAX_WAIT_MS: u64 = 3_600_000;

impl FaultRule {
    /// Checks the rule's numbers; errors name the field (`match.probability = 1.5 is out of
    /// range …`).
    pub fn validate(&self) -> Result<(), String> {
        use crate::bounds::{instant, probability, range};
        let m = &self.matches;
        if let Some(n) = m.nth {
            range("match.nth", n, 1, u64::MAX)?;
        }
        if let Some(t) = m.from_ms {
            instant("match.from_ms", t)?;
        }
        if let Some(t) = m.until_ms {
            instant("match.until_ms", t)?;
        }
        if let (Some(from), Some(until)) = (m.from_ms, m.until_ms)
            && from >= until
        {
            return Err(format!(
                "match.from_ms = {from} is not before match.until_ms = {until}: the rule would never match"
            ));
        }
        if let Some(p) = m.probability {
            probability("match.probability", p)?;
        }
        let a = &self.action;
        if let Some(ms) = a.latency_ms {
            range("action.latency_ms", ms, 0, MAX_WAIT_MS)?;
        }
        if let Some(ms) = a.answer_delay_ms {
            range("action.answer_delay_ms", ms, 0, MAX_WAIT_MS)?;
        }
        if let Some(h) = a.http_status {
            range("action.http_status", h, 100, 599)?;
        }
        if let Some(t) = self.times {
            range("times", t, 1, u64::MAX)?;
        }
        Ok(())
    }
}

/// A send, as the rules see it.
pub struct Request<'a> {
    /// Dialect name.
    pub dialect: &'a str,
    /// Business number.
    pub phone_number_id: &'a str,
    /// Recipient: the person's `wa_id` (a send to a BSUID resolved to it).
    pub to: &'a str,
    /// The business-scoped user id the send addressed, if it did.
    pub user_id: Option<&'a str>,
    /// Template name.
    pub template: Option<&'a str>,
    /// Message type.
    pub message_type: &'a str,
    /// Sandbox now.
    pub now: Millis,
}

/// What the fault rules decided for a send.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Verdict {
    /// Refuse it with this error.
    pub refuse: Option<ApiError>,
    /// Accept it, then fail it with this error.
    pub fail_later: Option<ApiError>,
    /// Wait this long first.
    pub latency_ms: u64,
    /// Wait this long after accepting, before answering.
    pub answer_delay_ms: u64,
    /// Close the connection without an answer.
    pub drop_connection: Option<DropWhen>,
    /// Rules that fired.
    pub fired: Vec<String>,
}

/// The rule set.
#[derive(Debug)]
pub struct Faults {
    rules: Vec<FaultRule>,
    next_id: u64,
    rng: Ids,
}

fn error(code: u32, details: &Option<String>, http: Option<u16>) -> Result<ApiError, String> {
    let code = ErrorCode::from_code(code)
        .ok_or_else(|| format!("{code} is not in the error table (GET /_mynah/errors)"))?;
    let mut e = match details {
        Some(d) => ApiError::with_details(code, d.clone()),
        None => ApiError::new(code),
    };
    if let Some(h) = http {
        e = e.with_http(h);
    }
    Ok(e)
}

impl Faults {
    /// A rule set seeded with `seed`.
    pub fn new(seed: u64, rules: Vec<FaultRule>) -> Result<Faults, String> {
        let mut f = Faults {
            rules: Vec::new(),
            next_id: 1,
            rng: Ids::new(seed, 5),
        };
        for r in rules {
            f.add(r)?;
        }
        Ok(f)
    }

    /// Adds a rule (checked: its codes must be in the table); returns it with its id.
    pub fn add(&mut self, mut rule: FaultRule) -> Result<FaultRule, String> {
        rule.validate()?;
        let a = &rule.action;
        if a.code.is_none()
            && a.async_code.is_none()
            && a.latency_ms.is_none()
            && a.answer_delay_ms.is_none()
            && a.drop_connection.is_none()
        {
            return Err("a fault needs an action: code, async_code, latency_ms, \
                 answer_delay_ms or drop_connection"
                .to_string());
        }
        if let Some(c) = a.code {
            error(c, &a.details, a.http_status)?;
        }
        if let Some(c) = a.async_code {
            error(c, &a.details, None)?;
        }
        if rule.id.is_empty() {
            rule.id = format!("fault-{}", self.next_id);
        }
        self.next_id += 1;
        rule.seen = 0;
        rule.fired = 0;
        self.rules.retain(|r| r.id != rule.id);
        self.rules.push(rule.clone());
        Ok(rule)
    }

    /// Removes one rule.
    pub fn remove(&mut self, id: &str) -> bool {
        let before = self.rules.len();
        self.rules.retain(|r| r.id != id);
        before != self.rules.len()
    }

    /// Removes every rule.
    pub fn clear(&mut self) {
        self.rules.clear();
    }

    /// The rules, with their counters.
    pub fn list(&self) -> &[FaultRule] {
        &self.rules
    }

    /// Applies the rules to a send; the first rule that fires with an error decides.
    pub fn decide(&mut self, req: &Request<'_>) -> Verdict {
        let mut v = Verdict::default();
        if self.rules.is_empty() {
            return v;
        }
        for r in &mut self.rules {
            let m = &r.matches;
            let hit = m
                .dialect
                .as_deref()
                .is_none_or(|d| d.eq_ignore_ascii_case(req.dialect))
                && m.phone_number_id
                    .as_deref()
                    .is_none_or(|p| p == req.phone_number_id)
                && m.to
                    .as_deref()
                    .is_none_or(|t| t.trim_start_matches('+') == req.to || Some(t) == req.user_id)
                && m.template
                    .as_deref()
                    .is_none_or(|t| Some(t) == req.template)
                && m.message_type
                    .as_deref()
                    .is_none_or(|t| t == req.message_type)
                && m.from_ms.is_none_or(|f| req.now >= f)
                && m.until_ms.is_none_or(|u| req.now < u);
            if !hit || r.times.is_some_and(|t| r.fired >= t) {
                continue;
            }
            r.seen += 1;
            if m.nth.is_some_and(|n| n != r.seen) {
                continue;
            }
            if let Some(p) = m.probability
                && !self.rng.chance(p)
            {
                continue;
            }
            r.fired += 1;
            v.fired.push(r.id.clone());
            v.latency_ms = v.latency_ms.max(r.action.latency_ms.unwrap_or(0));
            v.answer_delay_ms = v.answer_delay_ms.max(r.action.answer_delay_ms.unwrap_or(0));
            if v.drop_connection.is_none() {
                v.drop_connection = r.action.drop_connection;
            }
            if v.refuse.is_none()
                && v.fail_later.is_none()
                && let Some(c) = r.action.code
            {
                v.refuse = error(c, &r.action.details, r.action.http_status).ok();
            }
            if v.refuse.is_none()
                && v.fail_later.is_none()
                && let Some(c) = r.action.async_code
            {
                v.fail_later = error(c, &r.action.details, None).ok();
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(to: &str) -> Request<'_> {
        Request {
            dialect: "cloud",
            phone_number_id: "1",
            to,
            user_id: None,
            template: None,
            message_type: "text",
            now: 0,
        }
    }

    fn rule(json: serde_json::Value) -> FaultRule {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn nth_times_and_matching() {
        let mut f = Faults::new(1, vec![]).unwrap();
        f.add(rule(serde_json::json!({ "match": { "to": "+491", "nth": 2 }, "action": { "code": 131000 } }))).unwrap();
        assert!(f.decide(&req("491")).refuse.is_none());
        assert_eq!(f.decide(&req("491")).refuse.unwrap().code.code(), 131000);
        assert!(f.decide(&req("491")).refuse.is_none());
        assert!(f.decide(&req("492")).refuse.is_none());
        f.add(rule(
            serde_json::json!({ "action": { "async_code": 131026 }, "times": 1 }),
        ))
        .unwrap();
        assert_eq!(f.decide(&req("9")).fail_later.unwrap().code.code(), 131026);
        assert!(f.decide(&req("9")).fail_later.is_none());
        assert!(
            f.add(rule(serde_json::json!({ "action": { "code": 999999 } })))
                .is_err()
        );
        assert!(f.add(rule(serde_json::json!({ "action": {} }))).is_err());
    }

    #[test]
    fn probabilities_are_seeded() {
        let run = |seed| {
            let mut f = Faults::new(
                seed,
                vec![rule(
                    serde_json::json!({ "match": { "probability": 0.3 }, "action": { "code": 2 } }),
                )],
            )
            .unwrap();
            (0..200)
                .map(|_| f.decide(&req("1")).refuse.is_some())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        let hits = run(7).iter().filter(|h| **h).count();
        assert!((30..90).contains(&hits), "{hits}");
    }
}
