//! Upstream answers as the gateway reads them: the send response, the error bodies and the
//! template listings of both dialects never panic, whatever the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mynah_wire::reply::{
    ListedStatus, NextPage, parse_error_reply, parse_message_status, parse_send_reply,
    parse_template_page,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = parse_send_reply(data) {
        assert!(!r.wamid.trim().is_empty(), "a send reply without a wamid");
        let _ = r.status();
    }
    let _ = parse_error_reply(data);
    if let Ok(page) = parse_template_page(data) {
        for t in &page.templates {
            // A status parses to itself: its name is its canonical form.
            assert_eq!(ListedStatus::parse(t.status.as_str()), t.status);
            let _ = t.status.is_sendable();
        }
        if let (Some(NextPage::Offset(next)), Some(total)) = (&page.next, page.total) {
            assert!(*next < total, "a next offset past the total");
        }
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = parse_message_status(s);
        let _ = ListedStatus::parse(s);
    }
});
