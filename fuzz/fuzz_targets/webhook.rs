//! Webhook bodies as the gateway reads them: the `whatsapp_business_account` envelope, the
//! On-Premises `{"statuses": [...]}` body and `raw_inbound` never panic; what deserialises
//! serialises and deserialises back to the same value; and a body `statuses_only` reads, the
//! general readers read the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mynah_wire::webhook::{
    ChangeValue, Envelope, OnPremStatuses, raw_identities_in, raw_identity_updates_in, raw_inbound,
    raw_inbound_in, statuses_only,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt::Debug;

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<T>(data) else {
        return;
    };
    let body = serde_json::to_vec(&value).expect("a parsed payload serialises");
    match serde_json::from_slice::<T>(&body) {
        Ok(again) => assert_eq!(
            again,
            value,
            "round trip changed the payload; re-serialised body: {}",
            String::from_utf8_lossy(&body)
        ),
        Err(e) => panic!(
            "round trip rejected the re-serialised body {}: {e}",
            String::from_utf8_lossy(&body)
        ),
    }
}

/// The typed reading of a body of statuses only gives what the general readers give.
fn statuses_only_agrees(data: &[u8]) {
    let Some(only) = statuses_only(data) else {
        return;
    };
    let Ok(tree) = serde_json::from_slice::<serde_json::Value>(data) else {
        // A tree rejects a whole body for what the typed reading skips unread (a lone surrogate
        // escape, a number out of range, deep nesting); UTF-8 both require.
        assert!(
            std::str::from_utf8(data).is_ok(),
            "statuses_only read bytes that are not UTF-8"
        );
        return;
    };
    let envelope = Envelope::deserialize(&tree).expect("statuses_only read an envelope");
    let statuses: Vec<_> = envelope
        .entry
        .into_iter()
        .flat_map(|e| e.changes)
        .flat_map(|c| match c.value {
            ChangeValue::Messages(m) => m.statuses.unwrap_or_default(),
            other => panic!("statuses_only read a change the envelope reads as {other:?}"),
        })
        .collect();
    assert_eq!(only.statuses, statuses);
    assert_eq!(only.identities, raw_identities_in(&tree));
    assert!(raw_inbound_in(&tree).is_empty());
    assert!(raw_identity_updates_in(&tree).is_empty());
}

fuzz_target!(|data: &[u8]| {
    statuses_only_agrees(data);
    round_trip::<Envelope>(data);
    round_trip::<OnPremStatuses>(data);
    for m in raw_inbound(data) {
        let _ = (m.id(), m.from(), m.kind(), m.timestamp_secs());
        let _ = (m.context_id(), m.words());
    }
});
