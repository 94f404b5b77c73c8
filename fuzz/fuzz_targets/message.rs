//! `POST /messages` bodies: `parse_request` under both flavours never panics, and an accepted
//! request serialises to a body that parses back to the same request (the Cloud shape through
//! `Serialize`, the On-Premises shape through `SendMessage::to_json`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mynah_wire::message::{BodyFlavor, Request, parse_request};

fuzz_target!(|data: &[u8]| {
    for flavor in [BodyFlavor::Cloud, BodyFlavor::OnPrem] {
        let Ok(request) = parse_request(data, flavor) else {
            continue;
        };
        let body = match (&request, flavor) {
            (Request::Send(m), BodyFlavor::OnPrem) => {
                serde_json::to_vec(&m.to_json(BodyFlavor::OnPrem))
            }
            _ => serde_json::to_vec(&request),
        }
        .expect("a parsed request serialises");
        match parse_request(&body, flavor) {
            Ok(again) => assert_eq!(
                again,
                request,
                "{flavor:?} round trip changed the request; re-serialised body: {}",
                String::from_utf8_lossy(&body)
            ),
            Err(e) => panic!(
                "{flavor:?} round trip rejected the re-serialised body {}: {e:?}",
                String::from_utf8_lossy(&body)
            ),
        }
    }
});
