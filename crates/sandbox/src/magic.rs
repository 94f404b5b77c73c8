//! Magic recipient numbers: reserved `wa_id`s (country code 999, which no country has) whose
//! behaviour is fixed, so a test gets a rare platform behaviour without any configuration.

use crate::clock::{DAY, HOUR, Millis};
use crate::config::Behaviour;
use serde::Serialize;

/// One magic number.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Magic {
    /// The `wa_id` (send to `+999…`).
    pub wa_id: &'static str,
    /// What happens.
    pub behaviour: &'static str,
    #[serde(skip)]
    apply: fn(&mut Behaviour, Millis),
}

/// The table.
pub const MAGIC: &[Magic] = &[
    Magic {
        wa_id: "99900000000001",
        behaviour: "never reads: sent and delivered only",
        apply: |b, _| b.reads = false,
    },
    Magic {
        wa_id: "99900000000002",
        behaviour: "offline for a day from first contact: sent, delivered a day later (a 10-minute one-time password is dropped)",
        apply: |b, now| b.offline_until = Some(now + DAY),
    },
    Magic {
        wa_id: "99900000000003",
        behaviour: "slow delivery: offline for an hour from first contact",
        apply: |b, now| b.offline_until = Some(now + HOUR),
    },
    Magic {
        wa_id: "99900000000004",
        behaviour: "blocked the business: stays at sent",
        apply: |b, _| b.blocks_business = true,
    },
    Magic {
        wa_id: "99900000000005",
        behaviour: "replies \"Thanks!\" after reading",
        apply: |b, _| b.replies_with = Some("Thanks!".to_string()),
    },
    Magic {
        wa_id: "99900000000006",
        behaviour: "read receipts off: no read webhook",
        apply: |b, _| b.read_receipts = false,
    },
    Magic {
        wa_id: "99900000000007",
        behaviour: "held for quality: marketing templates answer held_for_quality_assessment and wait for the pacing verdict (released within an hour)",
        apply: |b, _| b.held_for_quality = true,
    },
    Magic {
        wa_id: "99900000000008",
        behaviour: "reports the business after every delivered template (negative quality signal)",
        apply: |b, _| {
            b.reactions = Some(crate::config::Reactions {
                report: 1.0,
                ..Default::default()
            })
        },
    },
    Magic {
        wa_id: "99900000000009",
        behaviour: "reads and replies \"Thanks!\" to every delivered template (positive quality signal)",
        apply: |b, _| {
            b.reactions = Some(crate::config::Reactions {
                reply: 1.0,
                ..Default::default()
            })
        },
    },
    Magic {
        wa_id: "99900000131026",
        behaviour: "not on WhatsApp: failed 131026",
        apply: |b, _| b.on_whatsapp = false,
    },
    Magic {
        wa_id: "99900000131049",
        behaviour: "every marketing template fails with 131049 (healthy ecosystem engagement)",
        apply: |b, _| b.ecosystem_block = true,
    },
    Magic {
        wa_id: "99900000130472",
        behaviour: "in the experiment holdout: marketing templates fail with 130472 outside an open window",
        apply: |b, _| b.holdout = Some(true),
    },
    Magic {
        wa_id: "99900000131050",
        behaviour: "stopped marketing messages: marketing templates fail with 131050",
        apply: |b, _| b.marketing_opt_out = true,
    },
    Magic {
        wa_id: "99900000131056",
        behaviour: "pair rate limit always hit: every send answers 131056",
        apply: |b, _| b.pair_limited = true,
    },
];

/// The behaviour of a magic number at its first contact (`now`), if `wa_id` is one.
pub fn behaviour(wa_id: &str, base: &Behaviour, now: Millis) -> Option<Behaviour> {
    let m = MAGIC.iter().find(|m| m.wa_id == wa_id)?;
    let mut b = base.clone();
    (m.apply)(&mut b, now);
    Some(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_numbers_are_valid_wa_ids_and_not_american() {
        for m in MAGIC {
            let w = mynah_wire::WaId::parse(&format!("+{}", m.wa_id)).unwrap();
            assert_eq!(w.as_str(), m.wa_id);
            assert!(!w.is_us());
        }
        assert!(behaviour("4915112345678", &Behaviour::default(), 0).is_none());
        assert!(
            !behaviour("99900000000001", &Behaviour::default(), 0)
                .unwrap()
                .reads
        );
    }
}
