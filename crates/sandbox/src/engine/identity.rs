//! Business-scoped user ids (BSUID), usernames, the contact book and number changes (platform
//! 2026 note §1).
//!
//! Every virtual user has one BSUID per business portfolio: the country code of their phone
//! number's region, a period, then 19 digits from a keyed hash of the seed, the portfolio and the
//! phone number — stable for a portfolio, different in another, the same run after run under one
//! seed, and new when the user changes phone number. A portfolio enrolled in parent ids (its
//! `parent` account) also gives users a parent id `CC.ENT.` + 19 digits, shared by the
//! portfolios of that parent. Users stay keyed by their phone number: a send to a BSUID is
//! resolved to the person first, so every per-user rule (window, opt-out, limits, holdout, pair
//! rate) applies to the person whichever id addressed them.
//!
//! The phone number of a user with a username is withheld from webhooks unless the business
//! number exchanged messages with that phone in the last 30 days or the user is in the
//! portfolio's contact book. An exchange counts when the business saw the phone number in it (a
//! send addressed to the phone, an inbound message whose webhook carried it); the contact book
//! records the same exchanges, for every number of the portfolio.

use super::{Effects, World, default_name, metadata, new_user};
use crate::clock::{DAY, Millis, unix_seconds_string};
use crate::config::{BsuidInTo, PortfolioConfig};
use crate::model::{Message, User};
use crate::store::Kind;
use crate::webhooks::{EventSummary, NewEvent};
use mynah_wire::error::{ApiError, ErrorCode};
use mynah_wire::message::{Recipient, SendMessage};
use mynah_wire::webhook::{
    Change, ChangeValue, Contact, IdChange, InboundBody, InboundMessage, MessagesValue, Profile,
    SystemChange, UserIdUpdate, UserIdUpdateValue,
};
use mynah_wire::{UserId, WaId};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// How long an exchange with the phone number keeps it shared (per business number).
pub const PHONE_SHARED_FOR: Millis = 30 * DAY;

/// A user's ids in one portfolio: the BSUID and, when the portfolio is enrolled, the parent id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortfolioIds {
    /// The business-scoped user id.
    pub user_id: UserId,
    /// The parent BSUID.
    pub parent: Option<UserId>,
}

/// Who an outbound message reaches, once its address is resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The person (their phone number: users are keyed by it), or a group id.
    pub wa_id: String,
    /// How the send addressed them.
    pub by: By,
}

/// How a send addressed its recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum By {
    /// The phone number (`to`).
    Phone,
    /// A group id.
    Group,
    /// A business-scoped user id or a parent id (`recipient`, or `to` under `bsuid.in_to =
    /// "resolve"`).
    User(UserId),
    /// A business-scoped user id in `to`, read as a phone number (`bsuid.in_to = "drop"`): the
    /// message fails with 131026.
    Dropped(UserId),
}

/// What a webhook says about a user, to one business number, at one time.
#[derive(Debug, Clone, Default)]
pub struct Ident {
    /// Profile name.
    pub name: String,
    /// Username.
    pub username: Option<String>,
    /// The phone number, when it may be shared.
    pub phone: Option<String>,
    /// The BSUID (none for a number that is no user).
    pub user_id: Option<String>,
    /// The parent BSUID (enrolled portfolios).
    pub parent: Option<String>,
}

/// 19 digits from a keyed hash of the seed, a scope (portfolio or parent account) and the phone.
fn mint(seed: u64, scope: &str, wa_id: &str) -> String {
    let digest = Sha256::digest(format!("mynah-bsuid\0{seed}\0{scope}\0{wa_id}").as_bytes());
    let mut word = [0u8; 8];
    word.copy_from_slice(&digest[..8]);
    let n = u64::from_be_bytes(word);
    (1_000_000_000_000_000_000u64 + n % 9_000_000_000_000_000_000).to_string()
}

/// The two-letter country of a phone number's region (`ZZ` when it has none, as magic numbers).
fn country(wa_id: &str) -> String {
    let code = WaId::from_digits(wa_id)
        .region_code()
        .filter(|r| r.iter().all(u8::is_ascii_uppercase))
        .unwrap_or(*b"ZZ");
    String::from_utf8_lossy(&code).into_owned()
}

/// The error of a business-scoped user id that names no user of the portfolio (2026 note §1.6:
/// the platform's code is undocumented; 100 as for a bad id).
fn unknown_user_id(param: &str, id: &str) -> ApiError {
    ApiError::invalid_param(format!(
        "Param {param} {id} is not a business-scoped user id of a WhatsApp user of this business portfolio. Use the user_id (or parent_user_id) your webhooks carry, in full."
    ))
}

impl World {
    /// The portfolio a business number belongs to.
    pub fn portfolio_of(&self, pnid: &str) -> &str {
        self.numbers
            .get(pnid)
            .map_or(crate::config::DEFAULT_PORTFOLIO, |n| n.portfolio.as_str())
    }

    /// A portfolio's settings.
    pub(super) fn portfolio_cfg(&self, id: &str) -> PortfolioConfig {
        self.portfolios
            .get(id)
            .cloned()
            .unwrap_or_else(|| self.cfg.portfolio(id))
    }

    /// Makes the portfolios of every number known, and indexes every user in each new one.
    pub(super) fn note_portfolios(&mut self) {
        let wanted: Vec<String> = self
            .numbers
            .values()
            .map(|n| n.portfolio.clone())
            .chain(self.cfg.portfolios.iter().map(|p| p.id.clone()))
            .filter(|p| !self.portfolios.contains_key(p))
            .collect();
        if wanted.is_empty() {
            return;
        }
        for p in wanted {
            let cfg = self.cfg.portfolio(&p);
            self.portfolios.insert(p, cfg);
        }
        let users: Vec<String> = self
            .users
            .keys()
            .cloned()
            .chain(self.dormant.wa_ids())
            .collect();
        for wa_id in users {
            self.index_user(&wa_id);
        }
    }

    /// The user's ids in a portfolio, minted from the seed.
    pub fn mint_ids(&self, portfolio: &str, wa_id: &str) -> PortfolioIds {
        let cc = country(wa_id);
        let seed = self.cfg.seed;
        let user_id = UserId::from_parts(&cc, false, &mint(seed, portfolio, wa_id));
        let parent = self
            .portfolio_cfg(portfolio)
            .parent
            .map(|p| UserId::from_parts(&cc, true, &mint(seed, &format!("parent\0{p}"), wa_id)));
        PortfolioIds { user_id, parent }
    }

    /// Records a user's ids in every portfolio, id → user (user → id is minted when asked:
    /// a keyed hash costs less than a map of every user's ids would hold).
    pub(super) fn index_user(&mut self, wa_id: &str) {
        let portfolios: Vec<String> = self.portfolios.keys().cloned().collect();
        for p in portfolios {
            let ids = self.mint_ids(&p, wa_id);
            if let Some(parent) = &ids.parent {
                self.by_user_id
                    .insert((p.clone(), parent.as_str().to_string()), wa_id.to_string());
            }
            self.by_user_id
                .insert((p, ids.user_id.as_str().to_string()), wa_id.to_string());
        }
    }

    /// Forgets a user's ids (the user moved to another number).
    fn unindex_user(&mut self, wa_id: &str) {
        let portfolios: Vec<String> = self.portfolios.keys().cloned().collect();
        for p in portfolios {
            let ids = self.mint_ids(&p, wa_id);
            if let Some(parent) = ids.parent {
                self.by_user_id
                    .remove(&(p.clone(), parent.as_str().to_string()));
            }
            self.by_user_id
                .remove(&(p, ids.user_id.as_str().to_string()));
        }
    }

    /// The user's ids in a portfolio.
    pub fn ids_of(&self, portfolio: &str, wa_id: &str) -> PortfolioIds {
        self.mint_ids(portfolio, wa_id)
    }

    /// Every BSUID of a user, by portfolio, and the parent ids.
    pub fn user_ids_view(
        &self,
        wa_id: &str,
    ) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
        let mut ids = BTreeMap::new();
        let mut parents = BTreeMap::new();
        for p in self.portfolios.keys() {
            let i = self.ids_of(p, wa_id);
            ids.insert(p.clone(), i.user_id.to_string());
            if let Some(parent) = i.parent {
                parents.insert(p.clone(), parent.to_string());
            }
        }
        (ids, parents)
    }

    /// The user (phone number) a business-scoped user id or parent id names in a portfolio.
    pub fn user_by_id(&self, portfolio: &str, id: &str) -> Option<&str> {
        self.by_user_id
            .get(&(portfolio.to_string(), id.to_string()))
            .map(String::as_str)
    }

    /// A phone number or a business-scoped user id (of the number's portfolio) as the user's
    /// phone number; for the control API.
    pub fn user_key(&self, pnid: Option<&str>, id: &str) -> Result<String, ApiError> {
        let id = id.trim();
        if UserId::well_formed(id) {
            let portfolio = pnid.map_or(crate::config::DEFAULT_PORTFOLIO, |p| self.portfolio_of(p));
            let found = self
                .user_by_id(portfolio, id)
                .or_else(|| {
                    // Any portfolio will do when none was named.
                    pnid.is_none()
                        .then(|| {
                            self.by_user_id
                                .iter()
                                .find(|((_, i), _)| i == id)
                                .map(|(_, w)| w.as_str())
                        })
                        .flatten()
                })
                .ok_or_else(|| {
                    ApiError::with_details(
                        ErrorCode::MynahNotFound,
                        format!("no user has the business-scoped user id {id}"),
                    )
                })?;
            return Ok(found.to_string());
        }
        WaId::parse(id)
            .map(|w| w.as_str().to_string())
            .map_err(|e| ApiError::with_details(ErrorCode::MynahBadRequest, e.details))
    }

    /// Resolves a send's address to the person it reaches (2026 note §1.6): a phone number as
    /// given; a BSUID or parent id of the number's portfolio to its user; an id the portfolio
    /// does not know is code 100. A BSUID in `to` follows `bsuid.in_to`.
    pub fn resolve(&self, pnid: &str, req: &SendMessage) -> Result<Target, ApiError> {
        let portfolio = self.portfolio_of(pnid);
        let user = |id: &UserId, param: &str| {
            self.user_by_id(portfolio, id.as_str())
                .map(|w| Target {
                    wa_id: w.to_string(),
                    by: By::User(id.clone()),
                })
                .ok_or_else(|| unknown_user_id(param, id.as_str()))
        };
        match &req.to {
            Recipient::Phone(w) => Ok(Target {
                wa_id: w.as_str().to_string(),
                by: By::Phone,
            }),
            Recipient::Group(g) => Ok(Target {
                wa_id: g.clone(),
                by: By::Group,
            }),
            Recipient::User(id) => user(id, "recipient"),
            Recipient::UserInTo(id) => match self.cfg.bsuid.in_to {
                BsuidInTo::Resolve => user(id, "to"),
                BsuidInTo::Reject => Err(ApiError::invalid_param(format!(
                    "Param to {id} is a business-scoped user id: send it in the recipient field (to takes a phone number or a group id)."
                ))),
                BsuidInTo::Drop => {
                    // The platform strips the country code and reads the rest as a phone number.
                    let rest = id.as_str().get(3..).unwrap_or("");
                    let rest = rest.strip_prefix("ENT.").unwrap_or(rest);
                    Ok(Target {
                        wa_id: rest.to_string(),
                        by: By::Dropped(id.clone()),
                    })
                }
            },
        }
    }

    /// Whether a user's phone number may be shared with a business number now: always without
    /// a username (or with `bsuid.withhold_phones` off); with one, only after an exchange with
    /// that phone in the last 30 days or while the user is in the portfolio's contact book.
    pub(super) fn shareable(&self, pnid: &str, user: &User, now: Millis) -> bool {
        if !self.cfg.bsuid.withhold_phones || user.username.is_none() {
            return true;
        }
        if user
            .phone_exchange
            .get(pnid)
            .is_some_and(|t| now - t < PHONE_SHARED_FOR)
        {
            return true;
        }
        let portfolio = self.portfolio_of(pnid);
        self.portfolio_cfg(portfolio).contact_book && user.contact_book.contains_key(portfolio)
    }

    /// What webhooks to `pnid` say about the user `wa_id` now.
    pub(super) fn ident(&self, pnid: &str, wa_id: &str, now: Millis) -> Ident {
        let Some(user) = self.user(wa_id) else {
            // A number that is no user (a BSUID read as a phone number).
            return Ident {
                name: default_name(wa_id),
                phone: Some(wa_id.to_string()),
                ..Ident::default()
            };
        };
        let ids = self.ids_of(self.portfolio_of(pnid), wa_id);
        Ident {
            name: user.name.clone(),
            username: user.username.clone(),
            phone: self.shareable(pnid, &user, now).then(|| wa_id.to_string()),
            user_id: Some(ids.user_id.to_string()),
            parent: ids.parent.map(|p| p.to_string()),
        }
    }

    /// The user's `contacts[]` entry in a webhook: profile (with the username when `username`),
    /// the phone when it may be shared, the ids.
    pub(super) fn contact_entry(id: &Ident, username: bool) -> Contact {
        Contact {
            profile: Some(Profile {
                name: id.name.clone(),
                username: if username { id.username.clone() } else { None },
            }),
            wa_id: id.phone.clone(),
            user_id: id.user_id.clone(),
            parent_user_id: id.parent.clone(),
        }
    }

    /// Records a message between a business number and a user: the thread, and — when the
    /// business saw the phone number in it — the exchange that keeps the phone shared for 30 days
    /// and the portfolio's contact book entry.
    pub(super) fn note_exchange(
        &mut self,
        pnid: &str,
        wa_id: &str,
        phone_seen: bool,
        now: Millis,
        fx: &mut Effects,
    ) {
        let portfolio = self.portfolio_of(pnid).to_string();
        let book = self.portfolio_cfg(&portfolio).contact_book;
        self.wake(wa_id);
        let Some(user) = self.users.get_mut(wa_id) else {
            return;
        };
        user.last_exchange.insert(pnid.to_string(), now);
        if phone_seen {
            user.phone_exchange.insert(pnid.to_string(), now);
            if book {
                user.contact_book.insert(portfolio, now);
            }
        }
        let user = user.clone();
        fx.put(Kind::User, wa_id, &user);
    }

    /// `DELETE /{pnid}/contact_book?bsuid=…`: removes the user from the number's portfolio's
    /// contact book. Parent ids are refused; an id the portfolio does not know is code 100.
    /// Answers whether an entry was removed.
    pub fn delete_contact(&mut self, pnid: &str, bsuid: &str) -> Result<(bool, Effects), ApiError> {
        let id = UserId::parse_param(bsuid, "bsuid")?;
        if id.is_parent() {
            return Err(ApiError::invalid_param(format!(
                "Param bsuid {id} is a parent business-scoped user id: contact book entries are removed by the user's own business-scoped user id."
            )));
        }
        let portfolio = self.portfolio_of(pnid).to_string();
        let wa_id = self
            .user_by_id(&portfolio, id.as_str())
            .ok_or_else(|| unknown_user_id("bsuid", id.as_str()))?
            .to_string();
        let mut fx = self.fx();
        self.wake(&wa_id);
        let Some(user) = self.users.get_mut(&wa_id) else {
            return Ok((false, fx));
        };
        let deleted = user.contact_book.remove(&portfolio).is_some();
        if deleted {
            let user = user.clone();
            fx.put(Kind::User, &wa_id, &user);
        }
        Ok((deleted, fx))
    }

    /// Sets (or with `None` clears) a user's username, checked by the platform's rules and
    /// unique among the users.
    pub fn set_username(
        &mut self,
        wa_id: &str,
        username: Option<&str>,
        now: Millis,
    ) -> Result<(User, Effects), ApiError> {
        let name = match username {
            Some(u) => Some(
                mynah_wire::user_id::validate_username(u)
                    .map_err(|e| ApiError::with_details(ErrorCode::MynahBadRequest, e))?,
            ),
            None => None,
        };
        if let Some(n) = &name
            && let Some(other) = self
                .users
                .values()
                .find(|u| u.wa_id != wa_id && u.username.as_deref() == Some(n.as_str()))
        {
            return Err(ApiError::with_details(
                ErrorCode::MynahBadRequest,
                format!(
                    "username {n:?} is taken by the user {}; usernames are unique",
                    other.wa_id
                ),
            ));
        }
        let mut fx = self.fx();
        let user = self.user_entry_at(wa_id, now, &mut fx);
        user.username = name;
        let user = user.clone();
        fx.put(Kind::User, wa_id, &user);
        Ok((user, fx))
    }

    /// The user changes phone number (`POST /_mynah/users/{wa_id}/number`): the person moves to
    /// `new_wa_id` with their behaviour, username, windows and counters, and gets new BSUIDs (and
    /// parent ids); the contact book entries and the 30-day exchanges, which were about the old
    /// phone, do not move. The old number is left as a number that is not on WhatsApp. Every
    /// business number the user exchanged messages with (else the first number) gets the
    /// `user_changed_user_id` system message and the `user_id_update` webhook (2026 note §1.8).
    pub fn change_number(
        &mut self,
        wa_id: &str,
        new_wa_id: &str,
        now: Millis,
    ) -> Result<(User, Effects), ApiError> {
        let new = WaId::parse(new_wa_id)
            .map_err(|e| {
                ApiError::with_details(
                    ErrorCode::MynahBadRequest,
                    format!("new_wa_id: {}", e.details),
                )
            })?
            .as_str()
            .to_string();
        self.wake(wa_id);
        self.wake(&new);
        let old_user = self
            .users
            .get(wa_id)
            .filter(|u| u.moved_to.is_none())
            .cloned()
            .ok_or_else(|| {
                ApiError::with_details(ErrorCode::MynahNotFound, format!("no user {wa_id}"))
            })?;
        if new == wa_id {
            return Err(ApiError::with_details(
                ErrorCode::MynahBadRequest,
                "new_wa_id is the user's number already",
            ));
        }
        if self.users.get(&new).is_some_and(|u| u.moved_to.is_none()) {
            return Err(ApiError::with_details(
                ErrorCode::MynahBadRequest,
                format!("new_wa_id {new} is another user's number"),
            ));
        }
        let mut fx = self.fx();
        // What webhooks said before the change, per thread.
        let mut threads: Vec<String> = old_user
            .last_exchange
            .keys()
            .chain(old_user.last_inbound.keys())
            .filter(|p| self.numbers.contains_key(*p))
            .cloned()
            .collect();
        threads.sort();
        threads.dedup();
        if threads.is_empty()
            && let Some(first) = self.first_number()
        {
            threads.push(first.phone_number_id.clone());
        }
        let before: Vec<(String, Ident)> = threads
            .iter()
            .map(|p| (p.clone(), self.ident(p, wa_id, now)))
            .collect();
        let mut moved = old_user.clone();
        moved.wa_id = new.clone();
        moved.phone_exchange.clear();
        moved.contact_book.clear();
        let mut left = new_user(
            wa_id,
            default_name(wa_id),
            crate::config::Behaviour {
                on_whatsapp: false,
                ..crate::config::Behaviour::default()
            },
        );
        left.moved_to = Some(new.clone());
        self.unindex_user(wa_id);
        self.users.insert(wa_id.to_string(), left.clone());
        self.index_user(wa_id);
        self.users.insert(new.clone(), moved.clone());
        self.index_user(&new);
        fx.put(Kind::User, wa_id, &left);
        fx.put(Kind::User, &new, &moved);
        for (pnid, old) in before {
            let now_id = self.ident(&pnid, &new, now);
            let Some(number) = self.numbers.get(&pnid).cloned() else {
                continue;
            };
            let (Some(prev_id), Some(cur_id)) = (old.user_id.clone(), now_id.user_id.clone())
            else {
                continue;
            };
            // The system message, in the thread (no `contacts`).
            let wamid = self.fresh_wamid(old.phone.as_deref().unwrap_or(&prev_id));
            let system = SystemChange {
                body: format!("User {} changed from {prev_id} to {cur_id}", moved.name),
                wa_id: None,
                user_id: Some(cur_id.clone()),
                parent_user_id: now_id.parent.clone(),
                kind: "user_changed_user_id".into(),
            };
            let inbound = InboundMessage {
                context: None,
                // The old phone when it was shared, else the old BSUID (2026 note §1.8, §6).
                from: old.phone.clone(),
                from_user_id: old.phone.is_none().then(|| prev_id.clone()),
                from_parent_user_id: old.phone.is_none().then(|| old.parent.clone()).flatten(),
                id: wamid.clone(),
                timestamp: unix_seconds_string(now),
                body: InboundBody::System {
                    system: serde_json::to_value(&system).unwrap_or_default(),
                },
                referral: None,
                errors: None,
            };
            let mut msg = Message::inbound(
                wamid.clone(),
                pnid.clone(),
                new.clone(),
                "system".into(),
                &inbound,
                now,
            );
            msg.log(
                now,
                "received",
                Some(format!("user_changed_user_id: {wa_id} → {new}")),
            );
            self.admit(msg, false, &mut fx);
            let value = MessagesValue {
                messaging_product: "whatsapp".into(),
                metadata: metadata(&number),
                contacts: None,
                messages: Some(vec![inbound]),
                statuses: None,
                errors: None,
            };
            fx.events.push(NewEvent {
                own_only: false,
                phone_number_id: pnid.clone(),
                waba_id: number.waba_id.clone(),
                key: format!("user:{new}"),
                time: None,
                change: Change {
                    value: ChangeValue::Messages(Box::new(value)),
                    field: "messages".into(),
                },
                summary: EventSummary {
                    field: "messages".into(),
                    wamid: Some(wamid),
                    wa_id: Some(new.clone()),
                    message_type: Some("system".into()),
                    ..EventSummary::default()
                },
            });
            // The `user_id_update` webhook.
            let update = UserIdUpdateValue {
                messaging_product: "whatsapp".into(),
                metadata: metadata(&number),
                contacts: vec![Contact {
                    profile: Some(Profile {
                        name: moved.name.clone(),
                        username: None,
                    }),
                    wa_id: now_id.phone.clone(),
                    user_id: None,
                    parent_user_id: None,
                }],
                user_id_update: vec![UserIdUpdate {
                    wa_id: now_id.phone.clone(),
                    detail: format!("User id for {} has been updated.", moved.name),
                    user_id: IdChange {
                        previous: prev_id,
                        current: cur_id,
                    },
                    parent_user_id: match (old.parent, now_id.parent) {
                        (Some(previous), Some(current)) => Some(IdChange { previous, current }),
                        _ => None,
                    },
                    timestamp: unix_seconds_string(now),
                }],
            };
            fx.events.push(NewEvent {
                own_only: false,
                phone_number_id: pnid.clone(),
                waba_id: number.waba_id.clone(),
                key: format!("user:{new}"),
                time: None,
                change: Change {
                    value: ChangeValue::UserIdUpdate(update),
                    field: "user_id_update".into(),
                },
                summary: EventSummary {
                    field: "user_id_update".into(),
                    wa_id: Some(new.clone()),
                    ..EventSummary::default()
                },
            });
        }
        self.evict(&mut fx);
        self.note_rng(&mut fx);
        Ok((moved, fx))
    }
}

impl World {
    /// The portfolios with their settings and contact books (control API).
    pub fn portfolios_view(&self) -> Vec<serde_json::Value> {
        self.portfolios
            .values()
            .map(|p| {
                let mut book: Vec<(String, Millis)> = self
                    .all_users()
                    .iter()
                    .filter_map(|u| u.contact_book.get(&p.id).map(|t| (u.wa_id.clone(), *t)))
                    .collect();
                book.sort();
                let entries: Vec<serde_json::Value> = book
                    .into_iter()
                    .map(|(wa_id, at)| {
                        serde_json::json!({
                            "wa_id": wa_id,
                            "user_id": self.ids_of(&p.id, &wa_id).user_id,
                            "recorded_at": at,
                        })
                    })
                    .collect();
                serde_json::json!({
                    "id": p.id,
                    "parent": p.parent,
                    "contact_book_enabled": p.contact_book,
                    "numbers": self.numbers.values().filter(|n| n.portfolio == p.id).map(|n| n.phone_number_id.clone()).collect::<Vec<_>>(),
                    "contact_book": entries,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_ids_are_digits_and_depend_on_every_key() {
        let a = mint(7, "default", "4915112345678");
        assert_eq!(a.len(), 19);
        assert!(a.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(a, mint(7, "default", "4915112345678"), "stable");
        assert_ne!(a, mint(8, "default", "4915112345678"), "the seed");
        assert_ne!(a, mint(7, "other", "4915112345678"), "the portfolio");
        assert_ne!(a, mint(7, "default", "4915112345679"), "the phone");
        assert_eq!(country("4915112345678"), "DE");
        assert_eq!(country("16505551234"), "US");
        assert_eq!(country("99900000000001"), "ZZ");
    }
}
