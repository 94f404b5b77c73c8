//! People known by phone, business-scoped user id (BSUID) or both: what the webhooks teach the
//! store about them (identifiers seen together, changes of number and of BSUID), how an app
//! names them (either id, or the person key), and the contact view of `GET /v1/contacts/{id}`.
//!
//! Every per-person state (consents, the 24-hour window, the conversation) is kept by the store
//! under the person's key, so each gate works the same whichever id addressed the person.

use crate::clock::Millis;
use crate::error::{AppError, Code};
use crate::gateway::{Gateway, lock};
use crate::store::{IdKind, IdentityUpdate, Sighting, StatusApplied, StatusUpdate, Store};
use mynah_wire::webhook::{RawIdentity, RawIdentityUpdate, RawInbound};
use mynah_wire::{UserId, WaId};
use serde::Serialize;

/// How the app names a contact: phone digits (any common notation), a BSUID (`CC.…`), a parent
/// BSUID (`CC.ENT.…`) or a person key (`ct_…`). Returns the normalised id, or a clear error.
pub fn parse_contact_id(raw: &str) -> Result<String, AppError> {
    let s = raw.trim();
    if UserId::well_formed(s) || (s.starts_with("ct_") && s.len() <= 40) {
        return Ok(s.to_string());
    }
    WaId::parse(s)
        .map(|w| w.as_str().to_string())
        .map_err(|_| {
            AppError::new(
                Code::InvalidParameter,
                format!(
                    "{raw:?} is not a contact id: give a phone number (+4915112345678), a business-scoped user id (DE.1502576394655843) or a person key (ct_…)"
                ),
            )
        })
}

/// Whether a recipient is in the United States: a US phone, a BSUID minted for the US, or a
/// person whose phone is a US one.
pub async fn is_us<S: Store + Clone>(gw: &Gateway<S>, to: &str) -> Result<bool, AppError> {
    match IdKind::of(to) {
        Some(IdKind::Phone) => Ok(WaId::from_digits(to).is_us()),
        Some(_) => {
            if to.starts_with("US.") {
                return Ok(true);
            }
            let phone = gw.store.person(to).await?.and_then(|p| p.wa_id);
            Ok(phone.is_some_and(|p| WaId::from_digits(&p).is_us()))
        }
        None => Ok(false),
    }
}

/// The sighting of an inbound message's sender (always learned: the sender now has state).
pub fn inbound_sighting(m: &RawInbound, at: Millis) -> Sighting {
    Sighting {
        wa_id: m.from().map(str::to_string),
        user_id: m.from_user_id().map(str::to_string),
        parent_user_id: m.from_parent_user_id().map(str::to_string),
        username: m.username().map(str::to_string),
        profile_name: m.profile_name.clone(),
        at,
    }
}

/// The sightings among a webhook body's ids worth learning beyond its senders: those that link
/// two ids (a status's `recipient_id` with its `recipient_user_id`, a contact's `wa_id` with its
/// `user_id`). A phone alone teaches nothing (its implicit person is already it).
pub fn linking_sightings(identities: Vec<RawIdentity>, at: Millis) -> Vec<Sighting> {
    identities
        .into_iter()
        .filter(|i| {
            [&i.wa_id, &i.user_id, &i.parent_user_id]
                .iter()
                .filter(|x| x.is_some())
                .count()
                >= 2
        })
        .map(|i: RawIdentity| Sighting {
            wa_id: i.wa_id,
            user_id: i.user_id,
            parent_user_id: i.parent_user_id,
            username: i.username,
            profile_name: i.profile_name,
            at,
        })
        .collect()
}

/// A change of a user's ids as the store applies it.
pub fn identity_update(u: RawIdentityUpdate, now: Millis) -> IdentityUpdate {
    IdentityUpdate {
        previous_user_id: u.previous_user_id,
        previous_wa_id: u.previous_wa_id,
        user_id: u.user_id,
        parent_user_id: u.parent_user_id,
        wa_id: u.wa_id,
        source: format!("webhook:{}", u.source),
        at: now,
    }
}

/// The ids a sighting names.
fn ids_of(s: &Sighting) -> Vec<&str> {
    [&s.wa_id, &s.user_id, &s.parent_user_id]
        .into_iter()
        .filter_map(|x| x.as_deref())
        .collect()
}

/// Learns what a batch of webhook bodies says about people: the changes of ids first (in
/// order), then the links among the ids named together, then the inbound senders; and applies
/// the batch's statuses in the transaction that learns the links ([`Store::learn_and_apply`]).
/// Returns each sender's person key and each status's result. When a person's key changes (an
/// id linked to another person, two people found to be one), the pair limiter's state follows
/// it.
pub async fn learn<S: Store + Clone>(
    gw: &Gateway<S>,
    id_changes: Vec<RawIdentityUpdate>,
    identities: Vec<RawIdentity>,
    senders: Vec<Sighting>,
    statuses: Vec<StatusUpdate>,
    now: Millis,
) -> Result<(Vec<Option<String>>, Vec<StatusApplied>), crate::store::StoreError> {
    let mut changed = false;
    for u in id_changes {
        let update = identity_update(u, now);
        let mut before = Vec::new();
        for id in [&update.user_id, &update.wa_id, &update.parent_user_id]
            .into_iter()
            .flatten()
        {
            before.push(gw.store.resolve(id).await?);
        }
        let key = gw.store.change_identity(update.clone()).await?;
        for old in before.into_iter().flatten() {
            lock(&gw.pairs).rekey(&old, &key);
        }
        tracing::info!(person = %key, source = %update.source, "contact's ids changed");
        changed = true;
    }
    let links = linking_sightings(identities, now);
    // Senders that name two ids are links too (remembered, so that their statuses' links
    // are not learned again; the senders themselves are always learned).
    let links = {
        let mut memo = lock(&gw.links);
        if changed {
            memo.clear();
        }
        let sender_links: Vec<Sighting> = senders
            .iter()
            .filter(|s| ids_of(s).len() >= 2)
            .cloned()
            .collect();
        let links = memo.fresh(links);
        memo.fresh(sender_links);
        links
    };
    let n = links.len();
    let mut all = links;
    all.extend(senders);
    let mut learned = gw.store.learn_and_apply(all, statuses).await?;
    // The pair limiter's entries follow the people whose key changed (a phone's implicit
    // person now a stored one, a person merged into another).
    if !learned.moved.is_empty() {
        let mut pairs = lock(&gw.pairs);
        for (old, new) in &learned.moved {
            pairs.rekey(old, new);
        }
    }
    let senders_keys = learned.keys.split_off(n.min(learned.keys.len()));
    Ok((senders_keys, learned.applied))
}

/// `GET /v1/contacts/{id}`: who a contact is.
#[derive(Debug, Serialize)]
pub struct ContactView {
    /// The key their state is kept under.
    pub person: String,
    /// Their phone, when known (and not withheld).
    pub wa_id: Option<String>,
    /// Their business-scoped user id, when known.
    pub user_id: Option<String>,
    /// Their parent BSUID, when known.
    pub parent_user_id: Option<String>,
    /// Their username, when they have one.
    pub username: Option<String>,
    /// Their profile name.
    pub profile_name: Option<String>,
    /// Every id that names them, with its kind.
    pub identifiers: Vec<IdentifierView>,
    /// Changes of their identity, in order.
    pub history: Vec<crate::store::IdentityChange>,
    /// Their current consents.
    pub consents: Vec<crate::store::Consent>,
    /// The customer-service window on this gateway's number.
    pub window: WindowView,
}

/// One id of a contact.
#[derive(Debug, Serialize)]
pub struct IdentifierView {
    /// The id.
    pub id: String,
    /// `phone`, `user_id` or `parent_user_id`.
    pub kind: IdKind,
}

/// The 24-hour customer-service window.
#[derive(Debug, Serialize)]
pub struct WindowView {
    /// Whether free-form messages may be sent now.
    pub open: bool,
    /// When the user last wrote (unix ms).
    pub last_inbound_at: Option<Millis>,
    /// When the window closes (unix ms).
    pub closes_at: Option<Millis>,
}

/// The 24-hour window, in ms.
pub const WINDOW_MS: Millis = 24 * 3_600_000;

/// Builds the contact view; `None` when nobody is known by `id`.
pub async fn contact<S: Store + Clone>(
    gw: &Gateway<S>,
    id: &str,
) -> Result<Option<ContactView>, AppError> {
    let Some(p) = gw.store.person(id).await? else {
        return Ok(None);
    };
    let identifiers = gw
        .store
        .identifiers(&p.key)
        .await?
        .into_iter()
        .map(|(id, kind)| IdentifierView { id, kind })
        .collect();
    let history = gw.store.identity_history(&p.key).await?;
    let consents = gw.store.consents(&p.key).await?;
    let last = gw.store.last_inbound(gw.phone_number_id(), &p.key).await?;
    let now = gw.now();
    let closes_at = last.map(|t| t.saturating_add(WINDOW_MS));
    Ok(Some(ContactView {
        person: p.key,
        wa_id: p.wa_id,
        user_id: p.user_id,
        parent_user_id: p.parent_user_id,
        username: p.username,
        profile_name: p.profile_name,
        identifiers,
        history,
        consents,
        window: WindowView {
            open: closes_at.is_some_and(|c| now < c),
            last_inbound_at: last,
            closes_at,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_ids_are_phones_bsuids_or_keys() {
        assert_eq!(
            parse_contact_id("+49 151 1234 5678").unwrap(),
            "4915112345678"
        );
        assert_eq!(
            parse_contact_id(" DE.1502576394655843 ").unwrap(),
            "DE.1502576394655843"
        );
        assert_eq!(
            parse_contact_id("US.ENT.11815799212886844830").unwrap(),
            "US.ENT.11815799212886844830"
        );
        assert_eq!(parse_contact_id("ct_00ff").unwrap(), "ct_00ff");
        let e = parse_contact_id("anna").unwrap_err();
        assert!(
            e.details.contains("business-scoped user id"),
            "{}",
            e.details
        );
    }

    #[test]
    fn only_links_are_learned_from_statuses() {
        let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"1","phone_number_id":"pn"},"statuses":[
            {"id":"wamid.1","status":"sent","timestamp":"1","recipient_id":"4915100000001","recipient_user_id":"DE.1"},
            {"id":"wamid.2","status":"sent","timestamp":"1","recipient_id":"4915100000002"}]}}]}]}"#;
        let body: serde_json::Value = serde_json::from_slice(body).unwrap();
        let s = linking_sightings(mynah_wire::webhook::raw_identities_in(&body), 5);
        assert_eq!(s.len(), 1);
        assert_eq!(
            (s[0].wa_id.as_deref(), s[0].user_id.as_deref()),
            (Some("4915100000001"), Some("DE.1"))
        );
    }
}
