//! Webhook bodies as the gateway reads them: the `whatsapp_business_account` envelope, the
//! On-Premises `{"statuses": [...]}` body and `raw_inbound` never panic; what deserialises
//! serialises and deserialises back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mynah_wire::webhook::{Envelope, OnPremStatuses, raw_inbound};
use serde::Serialize;
use serde::de::DeserializeOwned;
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

fuzz_target!(|data: &[u8]| {
    round_trip::<Envelope>(data);
    round_trip::<OnPremStatuses>(data);
    for m in raw_inbound(data) {
        let _ = (m.id(), m.from(), m.kind(), m.timestamp_secs());
        let _ = (m.context_id(), m.words());
    }
});
