//! Template definitions: `parse_create` and `parse_listed` never panic; a definition serialises
//! to a body that parses back to the same definition (the definition's documented promise), and
//! a created one is still valid; its accessors never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mynah_wire::template::{TemplateDefinition, parse_create, parse_listed};

fn round_trip(def: &TemplateDefinition, created: bool) {
    let body = serde_json::to_vec(def).expect("a definition serialises");
    let again = if created {
        parse_create(&body)
    } else {
        parse_listed(&body)
    };
    match again {
        Ok(again) => assert_eq!(
            &again,
            def,
            "round trip changed the definition; re-serialised body: {}",
            String::from_utf8_lossy(&body)
        ),
        Err(e) => panic!(
            "round trip rejected the re-serialised body {}: {e:?}",
            String::from_utf8_lossy(&body)
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(listed) = parse_listed(data) else {
        assert!(parse_create(data).is_err(), "created what cannot be listed");
        return;
    };
    round_trip(&listed, false);
    let _ = (listed.body_variables(), listed.header_variables());
    let _ = (listed.button_variables(), listed.ttl_seconds());
    let _ = (listed.components_json(), listed.body_text());
    match parse_create(data) {
        Ok(created) => {
            assert_eq!(created, listed, "created and listed differ");
            round_trip(&created, true);
        }
        Err(_) => assert!(
            listed.validate().is_err(),
            "validate() and parse_create disagree"
        ),
    }
});
