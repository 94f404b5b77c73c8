//! Idle virtual users, kept compact: a user with no message either way for
//! `retention.idle_user_ms` and no open window (conversation, free entry point, referral, marketing
//! log) is reduced to the facts that outlive windows, about a sixth of a whole [`User`]'s memory.
//!
//! What a sleeping user keeps: its behaviour (interned: users share a handful), and per business
//! number the last inbound message, last marketing template, last exchange and last phone
//! exchange, and its contact-book entries; its name is the default one and it has no username
//! and did not move (else it stays whole). What it drops are windows that have ended, which no
//! rule reads any more. So waking it ([`Dormant::take`]) gives back a user every rule treats as
//! the one put to sleep; nothing is written to the journal either way (its row there is the
//! user as last changed, read back whole at the next start).

use super::{default_name, new_user};
use crate::clock::Millis;
use crate::config::Behaviour;
use crate::model::User;
use std::collections::{BTreeMap, HashMap};

/// "No time" in a [`Thread`].
const NONE: Millis = Millis::MIN;

/// The sleeping users.
#[derive(Default)]
pub(super) struct Dormant {
    sleepers: HashMap<u64, Sleeper>,
    /// Business numbers and portfolios, interned.
    names: Vec<String>,
    name_ix: HashMap<String, u16>,
    /// Behaviours, interned.
    behaviours: Vec<Behaviour>,
}

struct Sleeper {
    behaviour: u16,
    threads: Box<[Thread]>,
    /// Contact-book entries: (portfolio, recorded at).
    book: Box<[(u16, Millis)]>,
}

/// What a user keeps about one business number.
#[derive(Clone, Copy)]
struct Thread {
    number: u16,
    last_inbound: Millis,
    last_marketing: Millis,
    phone_exchange: Millis,
    last_exchange: Millis,
}

/// A `wa_id` as an integer: digits without a leading zero name exactly one value.
fn key(wa_id: &str) -> Option<u64> {
    if wa_id.is_empty()
        || wa_id.len() > 19
        || wa_id.starts_with('0')
        || !wa_id.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    wa_id.parse().ok()
}

impl Dormant {
    /// How many users sleep.
    pub fn len(&self) -> usize {
        self.sleepers.len()
    }

    /// Whether `wa_id` sleeps.
    #[cfg(test)]
    pub fn contains(&self, wa_id: &str) -> bool {
        key(wa_id).is_some_and(|k| self.sleepers.contains_key(&k))
    }

    fn intern_name(&mut self, name: &str) -> Option<u16> {
        if let Some(i) = self.name_ix.get(name) {
            return Some(*i);
        }
        let i = u16::try_from(self.names.len()).ok()?;
        self.names.push(name.to_string());
        self.name_ix.insert(name.to_string(), i);
        Some(i)
    }

    fn intern_behaviour(&mut self, b: &Behaviour) -> Option<u16> {
        if let Some(i) = self.behaviours.iter().position(|x| x == b) {
            return u16::try_from(i).ok();
        }
        let i = u16::try_from(self.behaviours.len()).ok()?;
        self.behaviours.push(b.clone());
        Some(i)
    }

    /// Puts `user` to sleep if what it holds fits (the caller checked it is idle, see
    /// [`keeps_only_lasting_state`]); false leaves it to the caller to keep it whole.
    pub fn put(&mut self, user: &User) -> bool {
        let Some(k) = key(&user.wa_id) else {
            return false;
        };
        let Some(behaviour) = self.intern_behaviour(&user.behaviour) else {
            return false;
        };
        let mut numbers: Vec<&String> = user
            .last_inbound
            .keys()
            .chain(user.last_marketing.keys())
            .chain(user.phone_exchange.keys())
            .chain(user.last_exchange.keys())
            .collect();
        numbers.sort();
        numbers.dedup();
        let mut threads = Vec::with_capacity(numbers.len());
        for n in numbers {
            let Some(number) = self.intern_name(n) else {
                return false;
            };
            let at = |m: &BTreeMap<String, Millis>| m.get(n).copied().unwrap_or(NONE);
            threads.push(Thread {
                number,
                last_inbound: at(&user.last_inbound),
                last_marketing: at(&user.last_marketing),
                phone_exchange: at(&user.phone_exchange),
                last_exchange: at(&user.last_exchange),
            });
        }
        let mut book = Vec::with_capacity(user.contact_book.len());
        for (p, at) in &user.contact_book {
            let Some(i) = self.intern_name(p) else {
                return false;
            };
            book.push((i, *at));
        }
        self.sleepers.insert(
            k,
            Sleeper {
                behaviour,
                threads: threads.into_boxed_slice(),
                book: book.into_boxed_slice(),
            },
        );
        true
    }

    fn rebuild(&self, wa_id: &str, s: &Sleeper) -> User {
        let behaviour = self
            .behaviours
            .get(usize::from(s.behaviour))
            .cloned()
            .unwrap_or_default();
        let mut u = new_user(wa_id, default_name(wa_id), behaviour);
        let name = |i: u16| self.names.get(usize::from(i)).cloned().unwrap_or_default();
        for t in s.threads.iter() {
            let n = name(t.number);
            for (map, at) in [
                (&mut u.last_inbound, t.last_inbound),
                (&mut u.last_marketing, t.last_marketing),
                (&mut u.phone_exchange, t.phone_exchange),
                (&mut u.last_exchange, t.last_exchange),
            ] {
                if at != NONE {
                    map.insert(n.clone(), at);
                }
            }
        }
        for (p, at) in s.book.iter() {
            u.contact_book.insert(name(*p), *at);
        }
        u
    }

    /// Wakes `wa_id`: the user as it was put to sleep (less the windows that had ended).
    pub fn take(&mut self, wa_id: &str) -> Option<User> {
        let s = self.sleepers.remove(&key(wa_id)?)?;
        Some(self.rebuild(wa_id, &s))
    }

    /// The sleeping user `wa_id`, whole, leaving it asleep.
    pub fn peek(&self, wa_id: &str) -> Option<User> {
        let s = self.sleepers.get(&key(wa_id)?)?;
        Some(self.rebuild(wa_id, s))
    }

    /// The `wa_id` of every sleeping user.
    pub fn wa_ids(&self) -> impl Iterator<Item = String> + '_ {
        self.sleepers.keys().map(u64::to_string)
    }

    /// Every sleeping user, whole (for views that list users).
    pub fn users(&self) -> impl Iterator<Item = User> + '_ {
        self.sleepers
            .iter()
            .map(|(k, s)| self.rebuild(&k.to_string(), s))
    }
}

/// Whether `u` holds nothing a sleeping user drops but windows that have ended at `now`, and has
/// had no message either way for `idle_ms`: `marketing_window` is the per-user marketing limit's
/// window (`None`: no limit now, so a marketing log of any age keeps the user whole).
pub(super) fn keeps_only_lasting_state(
    u: &User,
    now: Millis,
    idle_ms: Millis,
    marketing_window: Option<Millis>,
) -> bool {
    let long_ago = |t: &Millis| now.saturating_sub(*t) >= idle_ms;
    // The name last: it is the one check that allocates.
    u.username.is_none()
        && u.moved_to.is_none()
        && u.last_exchange.values().all(long_ago)
        && u.last_inbound.values().all(long_ago)
        && u.conversations.values().all(|(_, expires)| *expires <= now)
        && u.fep_until.values().all(|t| *t <= now)
        && u.referral_at
            .values()
            .all(|t| now.saturating_sub(*t) >= crate::clock::DAY)
        && u.marketing_opened
            .values()
            .flatten()
            .all(|t| marketing_window.is_some_and(|w| now.saturating_sub(*t) >= w))
        && u.name == default_name(&u.wa_id)
}

/// Users an operation looks at for sleep, besides its own: sweeps cost O(1) per operation.
pub(super) const SWEEP_PER_CALL: usize = 4;

impl super::World {
    /// Wakes `wa_id` if it sleeps (before anything reads it whole or changes it).
    pub fn wake(&mut self, wa_id: &str) {
        if let Some(u) = self.dormant.take(wa_id) {
            // Its ids stayed indexed (`by_user_id`) while it slept.
            self.users.insert(wa_id.to_string(), u);
        }
    }

    /// The user `wa_id`, awake or asleep (a sleeping one rebuilt, left asleep).
    pub fn user(&self, wa_id: &str) -> Option<std::borrow::Cow<'_, User>> {
        match self.users.get(wa_id) {
            Some(u) => Some(std::borrow::Cow::Borrowed(u)),
            None => self.dormant.peek(wa_id).map(std::borrow::Cow::Owned),
        }
    }

    /// Every user, awake or asleep, in no order.
    pub fn all_users(&self) -> Vec<std::borrow::Cow<'_, User>> {
        self.users
            .values()
            .map(std::borrow::Cow::Borrowed)
            .chain(self.dormant.users().map(std::borrow::Cow::Owned))
            .collect()
    }

    /// Users awake and asleep.
    pub fn user_counts(&self) -> (usize, usize) {
        (self.users.len(), self.dormant.len())
    }

    /// Looks at up to `budget` awake users, from where the last sweep stopped, and puts those
    /// idle past every window to sleep.
    pub fn sleep_idle(&mut self, now: Millis, budget: usize) {
        let idle_ms = self.cfg.retention.idle_user_ms;
        if idle_ms == 0 || self.users.is_empty() {
            return;
        }
        let window = self.cfg.rules.marketing_limit.as_ref().map(|m| m.window_ms);
        for _ in 0..budget {
            if self.sweep_at >= self.users.len() {
                // A pass is over: give back what a burst of users left behind.
                self.sweep_at = 0;
                if self.users.capacity() > 2 * self.users.len() + 64 {
                    self.users.shrink_to_fit();
                }
                if self.users.is_empty() {
                    return;
                }
            }
            let i = self.sweep_at;
            let Some((_, u)) = self.users.get_index(i) else {
                return;
            };
            if keeps_only_lasting_state(u, now, idle_ms, window) && self.dormant.put(u) {
                self.users.swap_remove_index(i);
            } else {
                self.sweep_at += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::DAY;

    fn user_with_history() -> User {
        let mut u = new_user(
            "4915112345678",
            default_name("4915112345678"),
            Behaviour {
                reads: false,
                ..Behaviour::default()
            },
        );
        u.last_exchange.insert("1001".into(), 10);
        u.phone_exchange.insert("1001".into(), 10);
        u.last_inbound.insert("2002".into(), 5);
        u.last_marketing.insert("1001".into(), 7);
        u.contact_book.insert("default".into(), 10);
        u.conversations
            .insert("1001:service".into(), ("c1".into(), 10 + DAY));
        u
    }

    #[test]
    fn a_sleeping_user_wakes_with_everything_but_its_ended_windows() {
        let u = user_with_history();
        let mut d = Dormant::default();
        assert!(d.put(&u));
        assert!(d.contains(&u.wa_id));
        let mut want = u.clone();
        want.conversations.clear();
        let back = d.take(&u.wa_id).unwrap();
        assert_eq!(
            serde_json::to_value(&back).unwrap(),
            serde_json::to_value(&want).unwrap()
        );
        assert!(!d.contains(&u.wa_id) && d.len() == 0);
        // Not a digits-only id: kept whole.
        let odd = new_user("group-1", default_name("group-1"), Behaviour::default());
        assert!(!d.put(&odd));
    }

    #[test]
    fn only_users_past_every_window_are_idle() {
        let u = user_with_history();
        let later = 10 + 2 * DAY;
        assert!(keeps_only_lasting_state(&u, later, DAY, None));
        assert!(!keeps_only_lasting_state(&u, 10 + DAY / 2, DAY, None));
        let mut named = u.clone();
        named.username = Some("someone".into());
        assert!(!keeps_only_lasting_state(&named, later, DAY, None));
        let mut open = u.clone();
        open.fep_until.insert("1001".into(), later + 1);
        assert!(!keeps_only_lasting_state(&open, later, DAY, None));
        let mut logged = u.clone();
        logged.marketing_opened.insert("1001".into(), vec![10]);
        assert!(!keeps_only_lasting_state(&logged, later, DAY, None));
        assert!(keeps_only_lasting_state(&logged, later, DAY, Some(DAY)));
    }
}
