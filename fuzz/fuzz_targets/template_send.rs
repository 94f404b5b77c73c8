//! A template send checked against a definition: the input is a definition (a listing's
//! template, `parse_listed`), a NUL byte, and a `POST /messages` body. When both parse and the
//! body is a template message, `check_send` and the renderers never panic, and a send that
//! passes renders a body within the longest the check allows.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mynah_wire::message::{BodyFlavor, Content, Request, parse_request};
use mynah_wire::template::{MAX_BODY_ONLY_PARAM, parse_listed};

fuzz_target!(|data: &[u8]| {
    let Some(nul) = data.iter().position(|&b| b == 0) else {
        return;
    };
    let (definition, send) = (&data[..nul], &data[nul + 1..]);
    let Ok(def) = parse_listed(definition) else {
        return;
    };
    let Ok(Request::Send(message)) = parse_request(send, BodyFlavor::Cloud) else {
        return;
    };
    let Content::Template(template) = &message.content else {
        return;
    };
    let passed = def.check_send(template).is_ok();
    let body = def.render_body(template);
    let _ = def.render_header(template);
    if let (true, Some(body)) = (passed, body) {
        let len = body.chars().count();
        assert!(
            len <= MAX_BODY_ONLY_PARAM,
            "a passed send renders {len} characters"
        );
    }
});
