//! Links between a person's ids that the webhook intake learned lately, so that the statuses
//! of every message to a person do not each cost the store a write.

use crate::store::Sighting;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};

/// Links learned lately, so that the statuses of every message to a person do not each cost a
/// write: bounded, forgotten wholesale when full (a link learned twice is harmless).
#[derive(Debug, Default)]
pub struct LinkMemo {
    seen: HashSet<u64>,
}

impl LinkMemo {
    /// Most links remembered.
    pub const CAPACITY: usize = 65_536;

    fn key(s: &Sighting) -> u64 {
        // Fixed keys: the same sighting hashes alike across calls.
        let mut h = std::hash::DefaultHasher::new();
        (&s.wa_id, &s.user_id, &s.parent_user_id).hash(&mut h);
        h.finish()
    }

    /// Keeps the sightings not learned lately (and remembers them).
    pub fn fresh(&mut self, sightings: Vec<Sighting>) -> Vec<Sighting> {
        if self.seen.len() + sightings.len() > Self::CAPACITY {
            self.seen.clear();
        }
        sightings
            .into_iter()
            .filter(|s| self.seen.insert(Self::key(s)))
            .collect()
    }

    /// Forgets everything (after a change of ids, earlier links may be stale).
    pub fn clear(&mut self) {
        self.seen.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_skipped_until_forgotten() {
        let s = vec![Sighting {
            wa_id: Some("4915100000001".into()),
            user_id: Some("DE.1".into()),
            ..Sighting::default()
        }];
        let mut memo = LinkMemo::default();
        assert_eq!(memo.fresh(s.clone()).len(), 1);
        assert!(memo.fresh(s.clone()).is_empty(), "learned lately");
        memo.clear();
        assert_eq!(memo.fresh(s).len(), 1);
    }
}
