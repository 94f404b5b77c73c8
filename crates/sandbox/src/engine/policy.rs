//! The platform's delivery rules decided when a message is accepted: the customer service window
//! (131047), marketing opt-out (131050), the US marketing block and the per-user marketing limit
//! (131049), the experiment holdout (130472). A rule that refuses a message makes it fail
//! asynchronously: the send is answered 200 and the `failed` webhook follows (spec §11.1).

use super::{Effects, World};
use crate::clock::Millis;
use crate::store::Kind;
use mynah_wire::WaId;
use mynah_wire::error::{ApiError, ErrorCode};
use std::hash::{BuildHasher, Hasher};

/// What the rules need to know about a send.
pub(super) struct Send<'a> {
    pub pnid: &'a str,
    pub wa_id: &'a str,
    /// Template category, lower case; `None` for free-form messages.
    pub category: Option<&'a str>,
    pub in_csw: bool,
    pub in_fep: bool,
    pub now: Millis,
}

impl World {
    /// How long until a number's messaging limit has room for one more user: until the oldest
    /// user it counts leaves the rolling window. `None` when the limit is off or counts nobody.
    pub fn messaging_limit_wait(&self, pnid: &str, now: Millis) -> Option<Millis> {
        let limit = self.cfg.rules.messaging_limit?;
        let (order, last) = self.reach.get(pnid)?;
        order
            .iter()
            .find(|(t, w)| last.get(w) == Some(t))
            .map(|(t, _)| (t + limit.window_ms - now).max(1))
    }

    /// The rule that refuses this send, if any. `Err` answers the request itself (131047 when
    /// configured to be synchronous); `Ok(Some(..))` fails it asynchronously. Every rule met is
    /// written to `checks`, with its figures, for the message's explanation.
    pub(super) fn policy(
        &mut self,
        s: &Send<'_>,
        checks: &mut Vec<String>,
        fx: &mut Effects,
    ) -> Result<Option<ApiError>, ApiError> {
        let rules = self.cfg.rules.clone();
        let since = |t: Option<&Millis>| match t {
            Some(t) => format!("the user last wrote {} min ago", (s.now - t) / 60_000),
            None => "the user never wrote".to_string(),
        };
        let last_inbound = self
            .users
            .get(s.wa_id)
            .and_then(|u| u.last_inbound.get(s.pnid).copied());
        let Some(category) = s.category else {
            if !rules.customer_service_window {
                return Ok(None);
            }
            if s.in_csw {
                checks.push(format!(
                    "customer service window: open ({})",
                    since(last_inbound.as_ref())
                ));
                return Ok(None);
            }
            checks.push(format!(
                "customer service window: closed ({}); free-form messages need it: 131047",
                since(last_inbound.as_ref())
            ));
            let err = ApiError::with_details(
                ErrorCode::ReEngagement,
                "Message failed to send because more than 24 hours have passed since the customer last replied to this number.",
            );
            return if rules.window_error_sync {
                Err(err)
            } else {
                Ok(Some(err))
            };
        };
        if let Some(mut limit) = rules.messaging_limit
            && !s.in_csw
        {
            limit.unique_users = self.tier_of(s.pnid).unwrap_or(limit.unique_users);
            let (order, last) = self.reach.entry(s.pnid.to_string()).or_default();
            while let Some((t, w)) = order.front() {
                if s.now - t < limit.window_ms {
                    break;
                }
                if last.get(w).is_some_and(|seen| seen == t) {
                    last.remove(w);
                }
                order.pop_front();
            }
            if !last.contains_key(s.wa_id) {
                if last.len() >= limit.unique_users as usize {
                    checks.push(format!(
                        "messaging limit: {} unique users in the last {} h reached: {}",
                        limit.unique_users,
                        limit.window_ms / 3_600_000,
                        limit.code
                    ));
                    let code = ErrorCode::from_code(limit.code).unwrap_or(ErrorCode::SpamRateLimit);
                    let err = ApiError::with_details(
                        code,
                        format!(
                            "The phone number reached its messaging limit of {} unique users in {} hours.",
                            limit.unique_users,
                            limit.window_ms / 3_600_000
                        ),
                    );
                    return if limit.sync { Err(err) } else { Ok(Some(err)) };
                }
                checks.push(format!(
                    "messaging limit: {} of {} unique users",
                    last.len() + 1,
                    limit.unique_users
                ));
            }
        }
        let counts_for_limit = rules.messaging_limit.is_some() && !s.in_csw;
        if category != "marketing" {
            checks.push(format!(
                "{category} template: the marketing rules do not apply"
            ));
            if counts_for_limit {
                self.note_reach(s, fx);
            }
            return Ok(None);
        }
        let seed = self.cfg.seed;
        let Some(user) = self.users.get_mut(s.wa_id) else {
            return Ok(None);
        };
        if user.behaviour.marketing_opt_out {
            checks.push("opt-out: the user stopped marketing messages: 131050".into());
            return Ok(Some(ApiError::new(ErrorCode::UserStoppedMarketing)));
        }
        if user.behaviour.ecosystem_block {
            checks.push("ecosystem block: this user gets no marketing templates: 131049".into());
            return Ok(Some(ApiError::new(ErrorCode::EcosystemEngagement)));
        }
        let wa_id = WaId::from_digits(s.wa_id);
        if rules.us_marketing_block && wa_id.is_us() {
            checks.push(
                "US block: +1 with a US area code gets no marketing templates: 131049".into(),
            );
            return Ok(Some(ApiError::with_details(
                ErrorCode::EcosystemEngagement,
                "Marketing template messages are not delivered to users with United States phone numbers.",
            )));
        }
        checks.push(format!(
            "US block: {}",
            match wa_id.region() {
                Some(r) => format!("region {r}, not the United States"),
                None => "not a number of the United States".to_string(),
            }
        ));
        let conversation_open = s.in_csw || s.in_fep;
        let in_holdout = user
            .behaviour
            .holdout
            .unwrap_or_else(|| holdout_by_seed(seed, s.wa_id, rules.holdout_percent));
        if rules.holdout && in_holdout && !conversation_open {
            checks.push(
                "holdout: the user is in the marketing experiment and no window is open: 130472"
                    .into(),
            );
            return Ok(Some(ApiError::new(ErrorCode::ExperimentHoldout)));
        }
        checks.push(
            if in_holdout {
                "holdout: in the experiment, but a window is open (or the rule is off)"
            } else {
                "holdout: not in the experiment"
            }
            .to_string(),
        );
        // Inside an open marketing conversation, each response of the user allows one more
        // marketing template without counting against the budget (seed page, "Per-User
        // Marketing Template Message Limits").
        let marketing_open = user
            .conversations
            .get(&format!("{}:marketing", s.pnid))
            .is_some_and(|(_, exp)| *exp > s.now);
        let last_marketing = user.last_marketing.get(s.pnid).copied();
        let responded = match (user.last_inbound.get(s.pnid), last_marketing) {
            (Some(inbound), Some(marketing)) => *inbound > marketing,
            (Some(_), None) => true,
            _ => false,
        };
        let free = marketing_open && responded;
        match rules.marketing_limit {
            None => {}
            Some(_) if free => checks.push(
                "per-user marketing limit: inside an open marketing conversation after a response: not counted".into(),
            ),
            Some(limit) => {
                let log = user.marketing_opened.entry(s.pnid.to_string()).or_default();
                log.retain(|t| s.now - t < limit.window_ms);
                let hours = limit.window_ms / 3_600_000;
                if log.len() >= limit.count as usize {
                    checks.push(format!(
                        "per-user marketing limit: {} of {} in the last {hours} h used: 131049",
                        log.len(),
                        limit.count
                    ));
                    return Ok(Some(ApiError::with_details(
                        ErrorCode::EcosystemEngagement,
                        format!(
                            "In order to maintain a healthy ecosystem engagement, the message failed to be delivered: this user received {} marketing templates in the last {hours} hours.",
                            log.len(),
                        ),
                    )));
                }
                log.push(s.now);
                checks.push(format!(
                    "per-user marketing limit: {} of {} in the last {hours} h",
                    log.len(),
                    limit.count
                ));
            }
        }
        user.last_marketing.insert(s.pnid.to_string(), s.now);
        let user = user.clone();
        fx.put(Kind::User, s.wa_id, &user);
        if counts_for_limit {
            self.note_reach(s, fx);
        }
        Ok(None)
    }

    /// Counts the user against the number's messaging limit (a conversation the business
    /// started), once the send has passed every rule.
    fn note_reach(&mut self, s: &Send<'_>, fx: &mut Effects) {
        let (order, last) = self.reach.entry(s.pnid.to_string()).or_default();
        last.insert(s.wa_id.to_string(), s.now);
        order.push_back((s.now, s.wa_id.to_string()));
        let used = last.len();
        self.note_usage(s.pnid, used, s.now, fx);
    }
}

/// Whether a user is in the holdout: a stable function of seed and `wa_id`, true for about
/// `percent` % of users.
pub fn holdout_by_seed(seed: u64, wa_id: &str, percent: f64) -> bool {
    let mut h = foldhash::fast::FixedState::with_seed(seed).build_hasher();
    h.write(wa_id.as_bytes());
    (h.finish() % 10_000) < (percent.clamp(0.0, 100.0) * 100.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn about_one_percent_are_held_out_and_it_is_stable() {
        let held = (0..100_000u64)
            .filter(|i| holdout_by_seed(7, &format!("49151{i:08}"), 1.0))
            .count();
        assert!((700..1_300).contains(&held), "{held}");
        assert_eq!(
            holdout_by_seed(7, "4915112345678", 1.0),
            holdout_by_seed(7, "4915112345678", 1.0)
        );
        assert!(!holdout_by_seed(7, "4915112345678", 0.0));
        assert!(holdout_by_seed(7, "4915112345678", 100.0));
    }
}
