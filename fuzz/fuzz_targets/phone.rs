//! `to` values: `WaId::parse` never panics; an accepted id is 5 to 15 digits, parses to itself,
//! and its region lookups (through `phonenumber`) never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mynah_wire::WaId;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(id) = WaId::parse(input) else {
        return;
    };
    let digits = id.as_str();
    assert!((5..=15).contains(&digits.len()), "{digits:?}");
    assert!(digits.bytes().all(|b| b.is_ascii_digit()), "{digits:?}");
    assert_eq!(WaId::parse(digits).as_ref(), Ok(&id));
    let _ = (id.region(), id.calling_code(), id.is_us());
});
