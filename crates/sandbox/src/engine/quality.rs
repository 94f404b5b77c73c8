//! Quality from the virtual users' reactions (spec §6.1–§6.2, §7.3): a user with reaction weights
//! reacts to each delivered template (block, report, ignore, read, reply, drawn with the seeded
//! RNG); each reaction is a signal for the template's quality score and the number's quality
//! rating. A number that turns `RED` is flagged and drops a tier if it stays so; a `GREEN` number
//! that used half its tier moves up one. Each change sends its webhook.

use super::{Effects, World};
use crate::clock::Millis;
use crate::config::Reactions;
use crate::model::{Direction, Number, Reaction};
use crate::scheduler::Timer;
use crate::store::Kind;
use crate::webhooks::{EventSummary, NewEvent};
use mynah_wire::error::{ApiError, ErrorCode};
use mynah_wire::webhook::{Change, ChangeValue, PhoneNumberQualityUpdate, StatusKind};

/// The messaging limit ladder (spec §6.1): unique users per rolling 24 hours.
pub const TIERS: [u32; 5] = [250, 2_000, 10_000, 100_000, u32::MAX];

/// A tier's name in webhooks and the Graph API (`TIER_2K`, `TIER_UNLIMITED`).
pub fn tier_name(users: u32) -> String {
    match users {
        u32::MAX => "TIER_UNLIMITED".to_string(),
        n if n >= 1_000 && n % 1_000 == 0 => format!("TIER_{}K", n / 1_000),
        n => format!("TIER_{n}"),
    }
}

/// Parses `TIER_2K`, `tier_unlimited`, `2000`.
pub fn parse_tier(s: &str) -> Option<u32> {
    let up = s.trim().to_ascii_uppercase();
    let digits = up.strip_prefix("TIER_").unwrap_or(&up);
    match digits {
        "UNLIMITED" => Some(u32::MAX),
        d => match d.strip_suffix('K') {
            Some(k) => k.parse::<u32>().ok()?.checked_mul(1_000),
            None => d.parse().ok(),
        },
    }
}

fn tier_up(t: u32) -> u32 {
    TIERS.iter().copied().find(|r| *r > t).unwrap_or(u32::MAX)
}

fn tier_down(t: u32) -> u32 {
    TIERS.iter().rev().copied().find(|r| *r < t).unwrap_or(t)
}

impl World {
    /// The messaging limit a number works under now: its own tier once quality moved it, or
    /// the configured starting tier; `None` when the rule is off.
    pub fn tier_of(&self, pnid: &str) -> Option<u32> {
        let start = self.cfg.rules.messaging_limit?.unique_users;
        Some(
            self.numbers
                .get(pnid)
                .and_then(|n| n.health.tier)
                .unwrap_or(start),
        )
    }

    /// A template was just delivered: a user with reaction weights reacts, and the reaction
    /// feeds quality. Returns the reaction.
    pub(super) fn react(
        &mut self,
        wamid: &str,
        weights: Option<Reactions>,
        now: Millis,
        fx: &mut Effects,
    ) -> Option<Reaction> {
        let weights = weights?;
        let msg = self.messages.get(wamid)?;
        let template_id = msg.template_id.clone()?;
        let (pnid, wa_id) = (msg.phone_number_id.clone(), msg.wa_id.clone());
        let reaction = self.draw_reaction(weights);
        if let Some(m) = self.messages.get_mut(wamid) {
            m.reaction = Some(reaction);
            m.log(now, "reaction", Some(reaction.as_str().to_string()));
        }
        if matches!(reaction, Reaction::Block | Reaction::Report)
            && let Some(u) = self.users.get_mut(&wa_id)
        {
            u.behaviour.blocks_business = true;
            let u = u.clone();
            fx.put(Kind::User, &wa_id, &u);
        }
        if self.cfg.rules.quality.enabled {
            self.feed_template(&template_id, reaction.weight(), now, fx);
            self.feed_number(&pnid, reaction.weight(), now, fx);
        }
        Some(reaction)
    }

    /// The user reports the business (control API, the console's "Report"): the user blocks it,
    /// and the latest template the number delivered to the user that drew no reaction yet gets
    /// `report` — a negative signal (weight −2) for that template and the number, as a drawn
    /// reaction would give. Without such a template only the number gets the signal. Returns
    /// the user and the message reported, if any.
    pub fn report(
        &mut self,
        wa_id: &str,
        pnid: Option<&str>,
        now: Millis,
    ) -> Result<(crate::model::User, Option<String>, Effects), ApiError> {
        let wa_id = mynah_wire::WaId::parse(wa_id)
            .map_err(|e| ApiError::with_details(ErrorCode::MynahBadRequest, e.details))?
            .as_str()
            .to_string();
        let pnid = match pnid {
            Some(p) if self.numbers.contains_key(p) => p.to_string(),
            Some(p) => {
                return Err(ApiError::with_details(
                    ErrorCode::MynahNotFound,
                    format!("no phone number {p}"),
                ));
            }
            None => self
                .first_number()
                .map(|n| n.phone_number_id.clone())
                .ok_or_else(|| {
                    ApiError::with_details(ErrorCode::MynahNotFound, "no phone number")
                })?,
        };
        let mut fx = self.fx();
        self.index_users();
        let target = self
            .page(Some(&wa_id), None, usize::MAX, |m| {
                m.direction == Direction::Outbound
                    && m.phone_number_id == pnid
                    && m.template_id.is_some()
                    && matches!(m.status, Some(StatusKind::Delivered | StatusKind::Read))
            })
            .first()
            .map(|(_, m)| m.id.to_string());
        let user = self.user_entry_at(&wa_id, now, &mut fx);
        user.behaviour.blocks_business = true;
        let user = user.clone();
        fx.put(Kind::User, &wa_id, &user);
        let template = target.as_ref().and_then(|id| {
            let m = self.messages.get_mut(&**id)?;
            if m.reaction.is_some() {
                return None;
            }
            m.reaction = Some(Reaction::Report);
            m.log(
                now,
                "reaction",
                Some("report (the user reported the business)".into()),
            );
            let m = m.clone();
            fx.put(Kind::Message, &m.id, &m);
            m.template_id.clone()
        });
        if self.cfg.rules.quality.enabled {
            let w = Reaction::Report.weight();
            if let Some(t) = &template {
                self.feed_template(t, w, now, &mut fx);
            }
            self.feed_number(&pnid, w, now, &mut fx);
        }
        Ok((user, target.filter(|_| template.is_some()), fx))
    }

    fn draw_reaction(&mut self, w: Reactions) -> Reaction {
        let options = [
            (Reaction::Block, w.block),
            (Reaction::Report, w.report),
            (Reaction::Ignore, w.ignore),
            (Reaction::Read, w.read),
            (Reaction::Reply, w.reply),
        ];
        let total: f64 = options.iter().map(|(_, p)| p.max(0.0)).sum();
        if total <= 0.0 {
            return Reaction::Ignore;
        }
        let mut x = self.ids.between(0, 999_999) as f64 / 1_000_000.0 * total;
        for (r, p) in options {
            let p = p.max(0.0);
            if x < p {
                return r;
            }
            x -= p;
        }
        Reaction::Ignore
    }

    /// A signal for a template: its score follows, and a paced template may get its verdict.
    fn feed_template(&mut self, id: &str, weight: i8, now: Millis, fx: &mut Effects) {
        let q = self.cfg.rules.quality.clone();
        let Some(t) = self.templates.get_mut(id) else {
            return;
        };
        t.signals.push(now, weight, q.window_ms);
        let score = t
            .signals
            .score(now - q.window_ms, q.min_signals, q.yellow_at, q.red_at);
        let changed = score.filter(|s| *s != t.quality);
        let t = t.clone();
        fx.put(Kind::Template, &t.id, &t);
        if let Some(score) = changed
            && let Ok((_, more)) = self.set_template_quality(id, score, now)
        {
            fx.extend(more);
        }
        self.judge_pacing(id, now, fx);
    }

    /// A signal for a number: its rating follows.
    fn feed_number(&mut self, pnid: &str, weight: i8, now: Millis, fx: &mut Effects) {
        let q = self.cfg.rules.quality.clone();
        let Some(n) = self.numbers.get_mut(pnid) else {
            return;
        };
        n.health.signals.push(now, weight, q.window_ms);
        let score = n
            .health
            .signals
            .score(now - q.window_ms, q.min_signals, q.yellow_at, q.red_at);
        let changed = score.filter(|s| *s != n.health.rating);
        let n = n.clone();
        fx.put(Kind::Number, pnid, &n);
        if let Some(rating) = changed {
            self.rate_number(pnid, rating, now, fx);
        }
    }

    /// Sets a number's quality rating: `RED` flags it (a downgrade follows if it stays `RED`),
    /// leaving `RED` unflags it; each with a `phone_number_quality_update` webhook.
    pub(super) fn rate_number(&mut self, pnid: &str, rating: &str, now: Millis, fx: &mut Effects) {
        let after = self.cfg.rules.quality.downgrade_after_ms;
        let Some(n) = self.numbers.get_mut(pnid) else {
            return;
        };
        let previous = std::mem::replace(&mut n.health.rating, rating.to_string());
        let event = match (previous == "RED", rating == "RED") {
            (false, true) => {
                n.health.flagged_at = Some(now);
                n.health.review_at = Some(now + after);
                fx.timers
                    .push((now + after, Timer::NumberReview(pnid.to_string())));
                Some("FLAGGED")
            }
            (true, false) => {
                n.health.flagged_at = None;
                n.health.review_at = None;
                Some("UNFLAGGED")
            }
            _ => None,
        };
        let n = n.clone();
        fx.put(Kind::Number, pnid, &n);
        if let Some(e) = event {
            fx.events.push(self.number_event(&n, e, now));
        }
    }

    /// A user was counted against the number's tier: a `GREEN` number that used half of it is
    /// reviewed for an upgrade after `upgrade_after_ms`.
    pub(super) fn note_usage(&mut self, pnid: &str, used: usize, now: Millis, fx: &mut Effects) {
        let q = self.cfg.rules.quality.clone();
        let Some(tier) = self.tier_of(pnid) else {
            return;
        };
        let Some(n) = self.numbers.get_mut(pnid) else {
            return;
        };
        if !q.auto_scaling || tier == u32::MAX || used.saturating_mul(2) < tier as usize {
            return;
        }
        n.health.half_used_at = Some(now);
        if n.health.rating == "GREEN" && n.health.review_at.is_none() {
            let at = now + q.upgrade_after_ms;
            n.health.review_at = Some(at);
            fx.timers.push((at, Timer::NumberReview(pnid.to_string())));
        }
        let n = n.clone();
        fx.put(Kind::Number, pnid, &n);
    }

    /// A number's tier review is due: still `RED` since the flag → one tier down; `GREEN` with
    /// half the tier used in the last 7 days → one tier up.
    pub fn on_number_review(&mut self, pnid: &str, now: Millis) -> Effects {
        let mut fx = self.fx();
        let q = self.cfg.rules.quality.clone();
        let Some(tier) = self.tier_of(pnid) else {
            return fx;
        };
        let Some(n) = self.numbers.get_mut(pnid) else {
            return fx;
        };
        match n.health.review_at {
            Some(at) if at <= now => n.health.review_at = None,
            _ => return fx,
        }
        let week = 7 * crate::clock::DAY;
        let event = if !q.auto_scaling {
            None
        } else if n.health.rating == "RED"
            && n.health
                .flagged_at
                .is_some_and(|f| now - f >= q.downgrade_after_ms)
        {
            n.health.tier = Some(tier_down(tier));
            n.health.flagged_at = Some(now);
            n.health.review_at = Some(now + q.downgrade_after_ms);
            fx.timers.push((
                now + q.downgrade_after_ms,
                Timer::NumberReview(pnid.to_string()),
            ));
            Some("DOWNGRADE")
        } else if n.health.rating == "GREEN"
            && n.health.half_used_at.is_some_and(|h| now - h < week)
            && tier != u32::MAX
        {
            n.health.tier = Some(tier_up(tier));
            Some("UPGRADE")
        } else {
            None
        };
        let n = n.clone();
        fx.put(Kind::Number, pnid, &n);
        if let Some(e) = event {
            fx.events.push(self.number_event(&n, e, now));
        }
        fx
    }

    /// Forces a number's rating and/or tier (control API).
    pub fn set_number_health(
        &mut self,
        pnid: &str,
        rating: Option<&str>,
        tier: Option<u32>,
        now: Millis,
    ) -> Result<(Number, Effects), ApiError> {
        let mut fx = self.fx();
        if !self.numbers.contains_key(pnid) {
            return Err(ApiError::with_details(
                ErrorCode::MynahNotFound,
                format!("no phone number {pnid}"),
            ));
        }
        if let Some(r) = rating {
            let r = r.to_ascii_uppercase();
            let r = match r.as_str() {
                "GREEN" | "HIGH" => "GREEN",
                "YELLOW" | "MEDIUM" => "YELLOW",
                "RED" | "LOW" => "RED",
                _ => {
                    return Err(ApiError::with_details(
                        ErrorCode::MynahBadRequest,
                        format!("{r:?} is not a quality rating (GREEN, YELLOW, RED)"),
                    ));
                }
            };
            self.rate_number(pnid, r, now, &mut fx);
        }
        if let Some(t) = tier
            && let Some(n) = self.numbers.get_mut(pnid)
        {
            let before = n.health.tier;
            n.health.tier = Some(t);
            let n = n.clone();
            fx.put(Kind::Number, pnid, &n);
            if before != Some(t) {
                let start = self
                    .cfg
                    .rules
                    .messaging_limit
                    .map_or(u32::MAX, |l| l.unique_users);
                let up = t > before.unwrap_or(start);
                let ev = self.number_event(&n, if up { "UPGRADE" } else { "DOWNGRADE" }, now);
                fx.events.push(ev);
            }
        }
        let n = self
            .numbers
            .get(pnid)
            .cloned()
            .ok_or_else(|| ApiError::new(ErrorCode::MynahNotFound))?;
        Ok((n, fx))
    }

    /// The `phone_number_quality_update` webhook (spec §4.8).
    fn number_event(&self, n: &Number, event: &str, now: Millis) -> NewEvent {
        let tier = self.tier_of(&n.phone_number_id).unwrap_or(u32::MAX);
        let field = "phone_number_quality_update";
        NewEvent {
            own_only: false,
            phone_number_id: n.phone_number_id.clone(),
            waba_id: n.waba_id.clone(),
            key: format!("number:{}", n.phone_number_id),
            time: Some(now / 1_000),
            change: Change {
                value: ChangeValue::PhoneNumberQuality(PhoneNumberQualityUpdate {
                    display_phone_number: n.display_phone_number.clone(),
                    event: event.to_string(),
                    max_daily_conversations_per_business: tier_name(tier),
                }),
                field: field.to_string(),
            },
            summary: EventSummary {
                field: field.to_string(),
                ..EventSummary::default()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_have_platform_names_and_move_one_rung() {
        assert_eq!(tier_name(250), "TIER_250");
        assert_eq!(tier_name(2_000), "TIER_2K");
        assert_eq!(tier_name(100_000), "TIER_100K");
        assert_eq!(tier_name(u32::MAX), "TIER_UNLIMITED");
        assert_eq!(parse_tier("tier_2k"), Some(2_000));
        assert_eq!(parse_tier("TIER_UNLIMITED"), Some(u32::MAX));
        assert_eq!(parse_tier("3"), Some(3));
        assert_eq!(parse_tier("TIER_X"), None);
        assert_eq!(tier_up(250), 2_000);
        assert_eq!(tier_up(3), 250);
        assert_eq!(tier_down(2_000), 250);
        assert_eq!(tier_down(250), 250);
        assert_eq!(tier_up(100_000), u32::MAX);
    }
}
