//! Table-driven tests of `POST /messages` body parsing and validation (platform spec §2, §10).

use mynah_wire::ApiError;
use mynah_wire::message::{
    BodyFlavor, ButtonSubType, CardContent, Content, FlowActionKind, FlowMode, FlowRef,
    InteractiveAction, InteractiveHeader, InteractiveKind, MediaSource, MessageType,
    ParameterValue, RecipientType, Request, SendMessage, TemplateComponent, TypingIndicator,
    parse_request,
};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Valid bodies: the JSON examples of spec §2 (with the envelope added where the spec elides it).

const ENVELOPE: &str = r#"{
  "messaging_product": "whatsapp",
  "recipient_type": "individual",
  "to": "4915112345678",
  "type": "text",
  "context": { "message_id": "wamid.HBgLNDkxNTExMjM0NTY3OBUCABEYEjQ2QTRDRUY1" },
  "biz_opaque_callback_data": "order-8812",
  "text": { "body": "Hello" }
}"#;

const TEXT: &str = r#"{ "messaging_product": "whatsapp", "recipient_type": "individual", "to": "4915112345678",
  "type": "text",
  "text": { "preview_url": true, "body": "Track it here: https://example.com/t/123" } }"#;

const IMAGE: &str = r#"{ "messaging_product": "whatsapp", "recipient_type": "individual", "to": "4915112345678",
  "type": "image", "image": { "id": "1479537139650973", "caption": "Your receipt" } }"#;

const DOCUMENT: &str = r#"{ "messaging_product": "whatsapp", "to": "4915112345678", "type": "document",
  "document": { "link": "https://example.com/invoice-77.pdf", "caption": "Invoice 77", "filename": "invoice-77.pdf" } }"#;

const AUDIO: &str = r#"{ "messaging_product": "whatsapp", "to": "4915112345678", "type": "audio",
  "audio": { "id": "1013859600285441", "voice": true } }"#;

const VIDEO: &str = r#"{ "messaging_product": "whatsapp", "to": "4915112345678", "type": "video",
  "video": { "link": "https://example.com/clip.mp4", "caption": "Demo" } }"#;

const STICKER: &str = r#"{ "messaging_product": "whatsapp", "to": "4915112345678", "type": "sticker",
  "sticker": { "id": "798882015472548" } }"#;

const LOCATION: &str = r#"{ "messaging_product": "whatsapp", "to": "4915112345678", "type": "location",
  "location": { "latitude": 52.520008, "longitude": 13.404954,
                "name": "Store Mitte", "address": "Alexanderplatz 1, 10178 Berlin" } }"#;

const CONTACTS: &str = r#"{ "messaging_product": "whatsapp", "to": "4915112345678", "type": "contacts",
  "contacts": [ {
    "name": { "formatted_name": "Dr. Erika Muster", "first_name": "Erika", "last_name": "Muster", "prefix": "Dr." },
    "phones": [ { "phone": "+4915199999999", "type": "WORK", "wa_id": "4915199999999" } ],
    "emails": [ { "email": "erika@example.com", "type": "WORK" } ],
    "addresses": [ { "street": "Hauptstr. 5", "city": "Berlin", "zip": "10115", "country": "Germany", "country_code": "DE", "type": "WORK" } ],
    "org": { "company": "Example GmbH", "department": "Sales", "title": "Lead" },
    "urls": [ { "url": "https://example.com", "type": "WORK" } ],
    "birthday": "1985-04-23"
  } ] }"#;

const REACTION: &str = r#"{ "messaging_product": "whatsapp", "recipient_type": "individual", "to": "4915112345678",
  "type": "reaction",
  "reaction": { "message_id": "wamid.HBgLNDkxNTExMjM0NTY3OBUCABIYFjNFQjA", "emoji": "\uD83D\uDE00" } }"#;

const TEMPLATE: &str = r#"{
  "messaging_product": "whatsapp",
  "recipient_type": "individual",
  "to": "4915112345678",
  "type": "template",
  "template": {
    "name": "order_update",
    "language": { "policy": "deterministic", "code": "en_US" },
    "components": [
      { "type": "header",
        "parameters": [ { "type": "image", "image": { "link": "https://example.com/banner.jpg" } } ] },
      { "type": "body",
        "parameters": [
          { "type": "text", "text": "Ana" },
          { "type": "currency",
            "currency": { "fallback_value": "$100.99", "code": "USD", "amount_1000": 100990 } },
          { "type": "date_time", "date_time": { "fallback_value": "February 25, 2026" } }
        ] },
      { "type": "button", "sub_type": "quick_reply", "index": "0",
        "parameters": [ { "type": "payload", "payload": "STOP_PROMOS" } ] },
      { "type": "button", "sub_type": "url", "index": "1",
        "parameters": [ { "type": "text", "text": "orders/12345" } ] }
    ]
  }
}"#;

const TEMPLATE_NAMED: &str = r#"{ "messaging_product": "whatsapp", "to": "4915112345678", "type": "template",
  "template": { "name": "reservation", "language": { "code": "en_US" },
    "components": [ { "type": "body", "parameters": [
      { "type": "text", "parameter_name": "number_of_guests", "text": "4" },
      { "type": "text", "parameter_name": "day", "text": "Saturday" } ] } ] } }"#;

const TEMPLATE_AUTH: &str = r#"{ "messaging_product": "whatsapp", "recipient_type": "individual", "to": "4915112345678",
  "type": "template",
  "template": { "name": "verification_code", "language": { "code": "en_US" },
    "components": [
      { "type": "body",   "parameters": [ { "type": "text", "text": "482913" } ] },
      { "type": "button", "sub_type": "url", "index": "0", "parameters": [ { "type": "text", "text": "482913" } ] } ] } }"#;

const TEMPLATE_CAROUSEL: &str = r#"{ "messaging_product": "whatsapp", "to": "4915112345678",
  "type": "template", "template": { "name": "spring_carousel", "language": { "code": "en_US" },
  "components": [
    { "type": "body", "parameters": [ { "type": "text", "text": "Ana" } ] },
    { "type": "carousel", "cards": [
      { "card_index": 0, "components": [
        { "type": "header", "parameters": [ { "type": "image", "image": { "id": "1111" } } ] },
        { "type": "button", "sub_type": "quick_reply", "index": 0, "parameters": [ { "type": "payload", "payload": "card0" } ] },
        { "type": "button", "sub_type": "url", "index": 1, "parameters": [ { "type": "text", "text": "p/1" } ] } ] },
      { "card_index": 1, "components": [
        { "type": "header", "parameters": [ { "type": "image", "image": { "id": "2222" } } ] },
        { "type": "body", "parameters": [ { "type": "text", "text": "Card two" } ] },
        { "type": "button", "sub_type": "quick_reply", "index": 0, "parameters": [ { "type": "payload", "payload": "card1" } ] },
        { "type": "button", "sub_type": "url", "index": 1, "parameters": [ { "type": "text", "text": "p/2" } ] } ] } ] } ] } }"#;

const TEMPLATE_BUTTONS: &str = r#"{ "messaging_product": "whatsapp", "to": "4915112345678", "type": "template",
  "template": { "name": "spring_offer", "language": { "code": "en_US" },
    "components": [
      { "type": "header", "parameters": [ { "type": "document", "document": { "id": "2871834006348767", "filename": "ticket.pdf" } } ] },
      { "type": "limited_time_offer", "parameters": [ { "type": "limited_time_offer", "limited_time_offer": { "expiration_time_ms": 1209600000 } } ] },
      { "type": "button", "sub_type": "copy_code", "index": 0, "parameters": [ { "type": "coupon_code", "coupon_code": "SPRING25" } ] },
      { "type": "button", "sub_type": "flow", "index": 1, "parameters": [ { "type": "action", "action": { "flow_token": "tok-1", "flow_action_data": { "k": "v" } } } ] },
      { "type": "button", "sub_type": "catalog", "index": 2, "parameters": [ { "type": "action", "action": { "thumbnail_product_retailer_id": "sku-1" } } ] },
      { "type": "button", "sub_type": "mpm", "index": 3, "parameters": [ { "type": "action", "action": {
          "thumbnail_product_retailer_id": "sku-1",
          "sections": [ { "title": "Shirts", "product_items": [ { "product_retailer_id": "sku-1" } ] } ] } } ] },
      { "type": "button", "sub_type": "voice_call", "index": 4, "parameters": [] } ] } }"#;

const TEMPLATE_LOCATION_HEADER: &str = r#"{ "messaging_product": "whatsapp", "to": "4915112345678", "type": "template",
  "template": { "name": "store_visit", "language": { "code": "de" },
    "components": [
      { "type": "header", "parameters": [ { "type": "location", "location": { "latitude": "52.52", "longitude": "13.40", "name": "Store", "address": "Alexanderplatz 1" } } ] },
      { "type": "body", "parameters": [ { "type": "text", "text": "Ana" } ] } ] } }"#;

const TEMPLATE_VIDEO_HEADER: &str = r#"{ "messaging_product": "whatsapp", "to": "4915112345678", "type": "template",
  "template": { "name": "launch", "language": { "code": "pt_BR" },
    "components": [ { "type": "header", "parameters": [ { "type": "video", "video": { "link": "https://example.com/v.mp4" } } ] } ] } }"#;

const TEMPLATE_NO_COMPONENTS: &str = r#"{ "messaging_product": "whatsapp", "to": "4915112345678", "type": "template",
  "template": { "name": "hello_world", "language": { "code": "en_US" } } }"#;

const I_BUTTON: &str = r#"{ "messaging_product": "whatsapp", "recipient_type": "individual", "to": "4915112345678",
  "type": "interactive",
  "interactive": {
    "type": "button",
    "header": { "type": "image", "image": { "id": "2762702990552401" } },
    "body":   { "text": "Your appointment is tomorrow at 9:00. Need to change it?" },
    "footer": { "text": "Reply with a button" },
    "action": { "buttons": [
      { "type": "reply", "reply": { "id": "keep",       "title": "Keep it" } },
      { "type": "reply", "reply": { "id": "reschedule", "title": "Reschedule" } } ] } } }"#;

const I_LIST: &str = r#"{ "messaging_product": "whatsapp", "to": "4915112345678",
  "type": "interactive", "interactive": {
    "type": "list",
    "header": { "type": "text", "text": "Shipping" },
    "body":   { "text": "Pick a delivery speed." },
    "footer": { "text": "Prices include VAT" },
    "action": {
      "button": "Options",
      "sections": [
        { "title": "Fast", "rows": [
          { "id": "express", "title": "Express", "description": "Next day" },
          { "id": "prio",    "title": "Priority", "description": "2 days" } ] },
        { "title": "Cheap", "rows": [
          { "id": "std", "title": "Standard", "description": "3-5 days" } ] } ] } } }"#;

const I_CTA_URL: &str = r#"{ "messaging_product": "whatsapp", "to": "4915112345678",
  "type": "interactive", "interactive": {
    "type": "cta_url",
    "header": { "type": "text", "text": "Order #1234" },
    "body":   { "text": "Tap below to see the tracking page." },
    "footer": { "text": "Example Shop" },
    "action": { "name": "cta_url",
                "parameters": { "display_text": "Track order", "url": "https://example.com/t/1234" } } } }"#;

const I_PRODUCT: &str = r#"{ "messaging_product": "whatsapp", "to": "4915112345678",
  "type": "interactive", "interactive": {
    "type": "product",
    "body":   { "text": "Our bestseller" },
    "footer": { "text": "Limited stock" },
    "action": { "catalog_id": "194836987003835", "product_retailer_id": "sku-42" } } }"#;

const I_PRODUCT_LIST: &str = r#"{ "messaging_product": "whatsapp", "to": "4915112345678",
  "type": "interactive", "interactive": {
    "type": "product_list",
    "header": { "type": "text", "text": "Summer picks" },
    "body":   { "text": "Have a look" },
    "action": { "catalog_id": "194836987003835",
      "sections": [ { "title": "Shirts", "product_items": [ { "product_retailer_id": "sku-1" }, { "product_retailer_id": "sku-2" } ] } ] } } }"#;

const I_CATALOG: &str = r#"{ "messaging_product": "whatsapp", "to": "4915112345678",
  "type": "interactive", "interactive": {
    "type": "catalog_message",
    "body":   { "text": "Browse our catalog and order in chat." },
    "footer": { "text": "Free delivery over 30 EUR" },
    "action": { "name": "catalog_message", "parameters": { "thumbnail_product_retailer_id": "sku-1" } } } }"#;

const I_FLOW: &str = r#"{ "messaging_product": "whatsapp", "to": "4915112345678",
  "type": "interactive", "interactive": {
    "type": "flow",
    "header": { "type": "text", "text": "Book a table" },
    "body":   { "text": "Pick date and time in the form." },
    "footer": { "text": "Takes 1 minute" },
    "action": { "name": "flow", "parameters": {
        "flow_message_version": "3",
        "flow_id": "1234567890",
        "flow_cta": "Book now",
        "flow_token": "session-abc",
        "mode": "published",
        "flow_action": "navigate",
        "flow_action_payload": { "screen": "WELCOME", "data": { "party_size": 2 } } } } } }"#;

const I_LOCATION_REQUEST: &str = r#"{ "messaging_product": "whatsapp", "to": "4915112345678",
  "type": "interactive", "interactive": {
    "type": "location_request_message",
    "body": { "text": "Share your location so we can find the nearest store." },
    "action": { "name": "send_location" } } }"#;

const I_ADDRESS: &str = r#"{ "messaging_product": "whatsapp", "to": "919000000001",
  "type": "interactive", "interactive": {
    "type": "address_message",
    "body": { "text": "Please confirm your delivery address." },
    "action": { "name": "address_message",
      "parameters": { "country": "IN",
        "values": { "name": "A. Kumar", "phone_number": "+919000000000", "in_pin_code": "400063", "address": "Flat 2, Tower A", "city": "Mumbai", "state": "Maharashtra" },
        "saved_addresses": [ { "id": "home", "value": { "name": "A. Kumar", "phone_number": "+919000000000", "in_pin_code": "400063", "address": "Flat 2, Tower A", "city": "Mumbai" } } ],
        "validation_errors": { "in_pin_code": "We do not deliver to this PIN yet" } } } } }"#;

const I_CAROUSEL: &str = r#"{ "messaging_product": "whatsapp", "to": "4915112345678",
  "type": "interactive", "interactive": { "type": "carousel",
  "body": { "text": "This week's offers" },
  "action": { "cards": [
    { "card_index": 0, "type": "cta_url",
      "header": { "type": "image", "image": { "link": "https://example.com/1.png" } },
      "body": { "text": "Deal 1" },
      "action": { "name": "cta_url", "parameters": { "display_text": "Shop", "url": "https://example.com/d1" } } },
    { "card_index": 1, "type": "cta_url",
      "header": { "type": "image", "image": { "link": "https://example.com/2.png" } },
      "body": { "text": "Deal 2" },
      "action": { "name": "cta_url", "parameters": { "display_text": "Shop", "url": "https://example.com/d2" } } } ] } } }"#;

const I_PRODUCT_CAROUSEL: &str = r#"{ "messaging_product": "whatsapp", "to": "4915112345678",
  "type": "interactive", "interactive": { "type": "carousel",
  "body": { "text": "Picked for you" },
  "action": { "cards": [
    { "card_index": 0, "type": "product", "action": { "product_retailer_id": "sku-1", "catalog_id": "194836987003835" } },
    { "card_index": 1, "type": "product", "action": { "product_retailer_id": "sku-2", "catalog_id": "194836987003835" } } ] } } }"#;

const I_CALL_PERMISSION: &str = r#"{ "messaging_product": "whatsapp", "to": "4915112345678",
  "type": "interactive", "interactive": { "type": "call_permission_request",
  "body": { "text": "May we call you about your order?" },
  "action": { "name": "call_permission_request" } } }"#;

const MARK_READ: &str = r#"{ "messaging_product": "whatsapp", "status": "read", "message_id": "wamid.HBgLNDkxNTExMjM0NTY3OBUCABIYFjNFQjA" }"#;

const TYPING: &str = r#"{ "messaging_product": "whatsapp", "status": "read", "message_id": "wamid.HBgLNDkxNTExMjM0NTY3OBUCABIYFjNFQjA",
  "typing_indicator": { "type": "text" } }"#;

/// Every valid example with its expected message type and interactive sub-type.
const VALID: &[(&str, &str, MessageType, Option<InteractiveKind>)] = &[
    ("envelope", ENVELOPE, MessageType::Text, None),
    ("text", TEXT, MessageType::Text, None),
    ("image", IMAGE, MessageType::Image, None),
    ("document", DOCUMENT, MessageType::Document, None),
    ("audio", AUDIO, MessageType::Audio, None),
    ("video", VIDEO, MessageType::Video, None),
    ("sticker", STICKER, MessageType::Sticker, None),
    ("location", LOCATION, MessageType::Location, None),
    ("contacts", CONTACTS, MessageType::Contacts, None),
    ("reaction", REACTION, MessageType::Reaction, None),
    ("template", TEMPLATE, MessageType::Template, None),
    (
        "template named",
        TEMPLATE_NAMED,
        MessageType::Template,
        None,
    ),
    ("template auth", TEMPLATE_AUTH, MessageType::Template, None),
    (
        "template carousel",
        TEMPLATE_CAROUSEL,
        MessageType::Template,
        None,
    ),
    (
        "template buttons",
        TEMPLATE_BUTTONS,
        MessageType::Template,
        None,
    ),
    (
        "template location header",
        TEMPLATE_LOCATION_HEADER,
        MessageType::Template,
        None,
    ),
    (
        "template video header",
        TEMPLATE_VIDEO_HEADER,
        MessageType::Template,
        None,
    ),
    (
        "template no components",
        TEMPLATE_NO_COMPONENTS,
        MessageType::Template,
        None,
    ),
    (
        "button",
        I_BUTTON,
        MessageType::Interactive,
        Some(InteractiveKind::Button),
    ),
    (
        "list",
        I_LIST,
        MessageType::Interactive,
        Some(InteractiveKind::List),
    ),
    (
        "cta_url",
        I_CTA_URL,
        MessageType::Interactive,
        Some(InteractiveKind::CtaUrl),
    ),
    (
        "product",
        I_PRODUCT,
        MessageType::Interactive,
        Some(InteractiveKind::Product),
    ),
    (
        "product_list",
        I_PRODUCT_LIST,
        MessageType::Interactive,
        Some(InteractiveKind::ProductList),
    ),
    (
        "catalog_message",
        I_CATALOG,
        MessageType::Interactive,
        Some(InteractiveKind::CatalogMessage),
    ),
    (
        "flow",
        I_FLOW,
        MessageType::Interactive,
        Some(InteractiveKind::Flow),
    ),
    (
        "location_request_message",
        I_LOCATION_REQUEST,
        MessageType::Interactive,
        Some(InteractiveKind::LocationRequestMessage),
    ),
    (
        "address_message",
        I_ADDRESS,
        MessageType::Interactive,
        Some(InteractiveKind::AddressMessage),
    ),
    (
        "media carousel",
        I_CAROUSEL,
        MessageType::Interactive,
        Some(InteractiveKind::Carousel),
    ),
    (
        "product carousel",
        I_PRODUCT_CAROUSEL,
        MessageType::Interactive,
        Some(InteractiveKind::Carousel),
    ),
    (
        "call_permission_request",
        I_CALL_PERMISSION,
        MessageType::Interactive,
        Some(InteractiveKind::CallPermissionRequest),
    ),
];

// ---------------------------------------------------------------------------------------------
// Helpers.

fn parse(body: &str, flavor: BodyFlavor) -> Result<Request, ApiError> {
    parse_request(body.as_bytes(), flavor)
}

fn send(body: &str) -> SendMessage {
    send_in(body, BodyFlavor::Cloud)
}

fn send_in(body: &str, flavor: BodyFlavor) -> SendMessage {
    match parse(body, flavor) {
        Ok(Request::Send(m)) => *m,
        other => panic!("expected a send, got {other:?}"),
    }
}

fn value(body: &str) -> Value {
    serde_json::from_str(body).expect("test body is JSON")
}

/// A JSON edit applied to a valid example.
enum Op {
    /// Sets the value at a JSON pointer (creating the last key when absent).
    Set(&'static str, Value),
    /// Removes the value at a JSON pointer.
    Remove(&'static str),
}

fn split(pointer: &str) -> (&str, &str) {
    let i = pointer.rfind('/').expect("pointer has a slash");
    (&pointer[..i], &pointer[i + 1..])
}

fn apply(base: &str, ops: Vec<Op>) -> String {
    let mut v = value(base);
    for op in ops {
        match op {
            Op::Set(ptr, new) => {
                let (parent, last) = split(ptr);
                match v
                    .pointer_mut(parent)
                    .unwrap_or_else(|| panic!("no {parent}"))
                {
                    Value::Object(m) => {
                        m.insert(last.to_string(), new);
                    }
                    Value::Array(a) => {
                        let i: usize = last.parse().expect("index");
                        if i == a.len() {
                            a.push(new);
                        } else {
                            a[i] = new;
                        }
                    }
                    other => panic!("cannot set into {other}"),
                }
            }
            Op::Remove(ptr) => {
                let (parent, last) = split(ptr);
                match v
                    .pointer_mut(parent)
                    .unwrap_or_else(|| panic!("no {parent}"))
                {
                    Value::Object(m) => {
                        m.remove(last).unwrap_or_else(|| panic!("no {ptr}"));
                    }
                    Value::Array(a) => {
                        a.remove(last.parse().expect("index"));
                    }
                    other => panic!("cannot remove from {other}"),
                }
            }
        }
    }
    v.to_string()
}

fn s(n: usize) -> Value {
    Value::String("x".repeat(n))
}

fn rows(prefix: &str, n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|i| json!({"id": format!("{prefix}{i}"), "title": format!("Row {i}")}))
            .collect(),
    )
}

fn reply_buttons(n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|i| json!({"type": "reply", "reply": {"id": format!("b{i}"), "title": format!("B{i}")}}))
            .collect(),
    )
}

fn media_cards(n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|i| {
                json!({"card_index": i, "type": "cta_url",
                    "header": {"type": "image", "image": {"id": format!("{i}")}},
                    "action": {"name": "cta_url", "parameters": {"display_text": "Shop", "url": "https://example.com"}}})
            })
            .collect(),
    )
}

fn template_cards(n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|i| {
                json!({"card_index": i, "components": [
                    {"type": "header", "parameters": [{"type": "image", "image": {"id": "1"}}]}]})
            })
            .collect(),
    )
}

fn contact() -> Value {
    json!({"name": {"formatted_name": "A"}})
}

// ---------------------------------------------------------------------------------------------
// Valid bodies.

#[test]
fn every_valid_example_parses() {
    for (name, body, ty, kind) in VALID {
        let m = match parse(body, BodyFlavor::Cloud) {
            Ok(Request::Send(m)) => m,
            other => panic!("{name}: expected a send, got {other:?}"),
        };
        assert_eq!(m.message_type(), *ty, "{name}");
        assert_eq!(m.content.message_type().as_str(), ty.as_str(), "{name}");
        if let Content::Interactive(i) = &m.content {
            assert_eq!(Some(i.kind), *kind, "{name}");
            assert_eq!(i.action.kind(), i.kind, "{name}");
        } else {
            assert_eq!(*kind, None, "{name}");
        }
    }
}

#[test]
fn every_valid_example_round_trips_through_serialize() {
    for (name, body, _, _) in VALID {
        let first = send(body);
        let json = serde_json::to_string(&first).expect("serialises");
        let second = send(&json);
        assert_eq!(first, second, "{name}: {json}");
        // The serialised body names its type and carries the payload under that key.
        let v = value(&json);
        let ty = first.message_type().as_str();
        assert_eq!(v["type"], ty, "{name}");
        assert!(v.get(ty).is_some(), "{name}: {json}");
        assert_eq!(v["messaging_product"], "whatsapp", "{name}");
        // And the OnPrem shape parses in the OnPrem flavour to the same message.
        let onprem = first.to_json(BodyFlavor::OnPrem);
        assert!(onprem.get("messaging_product").is_none(), "{name}");
        assert_eq!(
            send_in(&onprem.to_string(), BodyFlavor::OnPrem),
            first,
            "{name}"
        );
    }
}

#[test]
fn envelope_fields() {
    let m = send(ENVELOPE);
    assert_eq!(m.to_input, "4915112345678");
    assert_eq!(m.to.as_str(), "4915112345678");
    assert_eq!(m.recipient_type, RecipientType::Individual);
    assert_eq!(
        m.context.as_ref().map(|c| c.message_id.as_str()),
        Some("wamid.HBgLNDkxNTExMjM0NTY3OBUCABEYEjQ2QTRDRUY1")
    );
    assert_eq!(m.biz_opaque_callback_data.as_deref(), Some("order-8812"));
    assert!(matches!(&m.content, Content::Text(t) if t.body == "Hello" && !t.preview_url));
}

#[test]
fn to_is_normalised_and_echoed_raw() {
    let body = apply(TEXT, vec![Op::Set("/to", json!("+49 151 1234-5678"))]);
    let m = send(&body);
    assert_eq!(m.to_input, "+49 151 1234-5678");
    assert_eq!(m.to.as_str(), "4915112345678");
    // A numeric `to` is accepted as well.
    let m = send(&apply(TEXT, vec![Op::Set("/to", json!(4915112345678u64))]));
    assert_eq!(m.to.as_str(), "4915112345678");
}

#[test]
fn typed_values_of_the_examples() {
    match send(TEXT).content {
        Content::Text(t) => assert!(t.preview_url && t.body.starts_with("Track")),
        c => panic!("{c:?}"),
    }
    match send(DOCUMENT).content {
        Content::Document(d) => {
            assert_eq!(
                d.source,
                MediaSource::Link("https://example.com/invoice-77.pdf".into())
            );
            assert_eq!(d.filename.as_deref(), Some("invoice-77.pdf"));
            assert_eq!(d.caption.as_deref(), Some("Invoice 77"));
        }
        c => panic!("{c:?}"),
    }
    match send(AUDIO).content {
        Content::Audio(a) => {
            assert!(a.voice && a.source == MediaSource::Id("1013859600285441".into()))
        }
        c => panic!("{c:?}"),
    }
    match send(LOCATION).content {
        Content::Location(l) => {
            assert_eq!((l.latitude, l.longitude), (52.520008, 13.404954));
            assert_eq!(l.name.as_deref(), Some("Store Mitte"));
        }
        c => panic!("{c:?}"),
    }
    match send(CONTACTS).content {
        Content::Contacts(c) => {
            assert_eq!(c.len(), 1);
            assert_eq!(c[0].name.formatted_name, "Dr. Erika Muster");
            assert_eq!(c[0].phones[0].wa_id.as_deref(), Some("4915199999999"));
            assert_eq!(c[0].birthday.as_deref(), Some("1985-04-23"));
        }
        c => panic!("{c:?}"),
    }
    match send(REACTION).content {
        Content::Reaction(r) => assert_eq!(r.emoji, "😀"),
        c => panic!("{c:?}"),
    }
    match send(TEMPLATE).content {
        Content::Template(t) => {
            assert_eq!(
                (t.name.as_str(), t.language.as_str()),
                ("order_update", "en_US")
            );
            assert_eq!(t.components.len(), 4);
            match &t.components[1] {
                TemplateComponent::Body { parameters } => {
                    assert_eq!(parameters[0].value, ParameterValue::Text("Ana".into()));
                    assert_eq!(
                        parameters[1].value,
                        ParameterValue::Currency {
                            fallback_value: "$100.99".into(),
                            code: "USD".into(),
                            amount_1000: 100990
                        }
                    );
                }
                c => panic!("{c:?}"),
            }
            assert!(matches!(
                &t.components[3],
                TemplateComponent::Button {
                    sub_type: ButtonSubType::Url,
                    index: 1,
                    ..
                }
            ));
        }
        c => panic!("{c:?}"),
    }
    match send(TEMPLATE_NAMED).content {
        Content::Template(t) => match &t.components[0] {
            TemplateComponent::Body { parameters } => {
                assert_eq!(parameters[0].name.as_deref(), Some("number_of_guests"));
                assert_eq!(parameters[1].name.as_deref(), Some("day"));
            }
            c => panic!("{c:?}"),
        },
        c => panic!("{c:?}"),
    }
    match send(TEMPLATE_CAROUSEL).content {
        Content::Template(t) => match &t.components[1] {
            TemplateComponent::Carousel { cards } => {
                assert_eq!(cards.len(), 2);
                assert_eq!(cards[1].card_index, 1);
                assert_eq!(cards[1].components.len(), 4);
            }
            c => panic!("{c:?}"),
        },
        c => panic!("{c:?}"),
    }
    match send(TEMPLATE_BUTTONS).content {
        Content::Template(t) => {
            let subs: Vec<ButtonSubType> = t
                .components
                .iter()
                .filter_map(|c| match c {
                    TemplateComponent::Button { sub_type, .. } => Some(*sub_type),
                    _ => None,
                })
                .collect();
            assert_eq!(
                subs,
                [
                    ButtonSubType::CopyCode,
                    ButtonSubType::Flow,
                    ButtonSubType::Catalog,
                    ButtonSubType::Mpm,
                    ButtonSubType::VoiceCall
                ]
            );
            assert!(matches!(
                &t.components[1],
                TemplateComponent::LimitedTimeOffer { parameters }
                    if parameters[0].value == ParameterValue::LimitedTimeOffer { expiration_time_ms: Some(1209600000) }
            ));
        }
        c => panic!("{c:?}"),
    }
    match send(TEMPLATE_LOCATION_HEADER).content {
        Content::Template(t) => match &t.components[0] {
            TemplateComponent::Header { parameters } => {
                assert!(
                    matches!(&parameters[0].value, ParameterValue::Location(l) if l.latitude == 52.52)
                );
            }
            c => panic!("{c:?}"),
        },
        c => panic!("{c:?}"),
    }
}

#[test]
fn typed_interactive_values() {
    let i = |body: &str| match send(body).content {
        Content::Interactive(i) => i,
        c => panic!("{c:?}"),
    };
    let b = i(I_BUTTON);
    assert!(matches!(b.header, Some(InteractiveHeader::Image(_))));
    assert_eq!(b.footer.as_deref(), Some("Reply with a button"));
    match &b.action {
        InteractiveAction::Buttons(buttons) => {
            assert_eq!(buttons.len(), 2);
            assert_eq!(
                (buttons[1].id.as_str(), buttons[1].title.as_str()),
                ("reschedule", "Reschedule")
            );
        }
        a => panic!("{a:?}"),
    }
    match i(I_LIST).action {
        InteractiveAction::List { button, sections } => {
            assert_eq!(button, "Options");
            assert_eq!(sections.len(), 2);
            assert_eq!(sections[0].rows[1].description.as_deref(), Some("2 days"));
        }
        a => panic!("{a:?}"),
    }
    match i(I_FLOW).action {
        InteractiveAction::Flow(f) => {
            assert_eq!(f.flow, FlowRef::Id("1234567890".into()));
            assert_eq!(f.mode, FlowMode::Published);
            assert_eq!(f.flow_action, FlowActionKind::Navigate);
            let payload = f.flow_action_payload.expect("payload");
            assert_eq!(payload.screen.as_deref(), Some("WELCOME"));
        }
        a => panic!("{a:?}"),
    }
    match i(I_ADDRESS).action {
        InteractiveAction::Address(a) => {
            assert_eq!(a.country, "IN");
            assert_eq!(a.saved_addresses.len(), 1);
        }
        a => panic!("{a:?}"),
    }
    match i(I_PRODUCT_CAROUSEL).action {
        InteractiveAction::Carousel(cards) => {
            assert!(
                matches!(&cards[1].content, CardContent::Product { product_retailer_id, .. } if product_retailer_id == "sku-2")
            );
        }
        a => panic!("{a:?}"),
    }
    assert!(matches!(
        i(I_LOCATION_REQUEST).action,
        InteractiveAction::LocationRequest
    ));
    assert!(i(I_PRODUCT).header.is_none());
}

#[test]
fn built_messages_serialise_to_parseable_bodies() {
    use mynah_wire::WaId;
    use mynah_wire::message::{Media, Text};
    let built = SendMessage::new(
        WaId::from_digits("4915112345678"),
        Content::Text(Text {
            body: "Hi".into(),
            preview_url: false,
        }),
    );
    assert_eq!(send(&serde_json::to_string(&built).unwrap()), built);
    let mut doc = Media::link("https://example.com/a.pdf");
    doc.filename = Some("a.pdf".into());
    let built = SendMessage::new(WaId::from_digits("4915112345678"), Content::Document(doc));
    let v = serde_json::to_value(&built).unwrap();
    assert_eq!(
        v["document"],
        json!({"link": "https://example.com/a.pdf", "filename": "a.pdf"})
    );
    assert_eq!(send(&v.to_string()), built);
}

#[test]
fn mark_read_and_typing_indicator() {
    match parse(MARK_READ, BodyFlavor::Cloud) {
        Ok(Request::MarkRead(m)) => {
            assert_eq!(m.message_id, "wamid.HBgLNDkxNTExMjM0NTY3OBUCABIYFjNFQjA");
            assert_eq!(m.typing_indicator, None);
            assert_eq!(serde_json::to_value(&m).unwrap(), value(MARK_READ));
        }
        other => panic!("{other:?}"),
    }
    match parse(TYPING, BodyFlavor::Cloud) {
        Ok(Request::MarkRead(m)) => {
            assert_eq!(m.typing_indicator, Some(TypingIndicator::Text));
            assert_eq!(serde_json::to_value(&m).unwrap(), value(TYPING));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn serialises_to_the_platform_shape() {
    let v = serde_json::to_value(send(I_CTA_URL)).unwrap();
    assert_eq!(
        v,
        json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": "4915112345678",
            "type": "interactive", "interactive": {"type": "cta_url",
                "header": {"type": "text", "text": "Order #1234"},
                "body": {"text": "Tap below to see the tracking page."},
                "footer": {"text": "Example Shop"},
                "action": {"name": "cta_url", "parameters": {"display_text": "Track order", "url": "https://example.com/t/1234"}}}})
    );
    let content = serde_json::to_value(&send(IMAGE).content).unwrap();
    assert_eq!(
        content,
        json!({"image": {"id": "1479537139650973", "caption": "Your receipt"}})
    );
    let t = serde_json::to_value(&send(TEMPLATE).content).unwrap();
    assert_eq!(t["template"]["language"], json!({"code": "en_US"}));
    assert_eq!(
        t["template"]["components"][2],
        json!({"type": "button", "sub_type": "quick_reply", "index": "0",
            "parameters": [{"type": "payload", "payload": "STOP_PROMOS"}]})
    );
    let named = serde_json::to_value(&send(TEMPLATE_NAMED).content).unwrap();
    assert_eq!(
        named["template"]["components"][0]["parameters"][0],
        json!({"type": "text", "parameter_name": "number_of_guests", "text": "4"})
    );
    let onprem = send(TEXT).to_json(BodyFlavor::OnPrem);
    assert_eq!(onprem["preview_url"], true);
    assert!(onprem["text"].get("preview_url").is_none());
}

// ---------------------------------------------------------------------------------------------
// Leniency (spec §2, point 3 of the brief).

#[test]
fn lenient_bodies_parse() {
    let cases: Vec<(&str, String, BodyFlavor)> = vec![
        (
            "component and sub_type in any case, index as number and string",
            apply(
                TEMPLATE,
                vec![
                    Op::Set("/template/components/0/type", json!("HEADER")),
                    Op::Set("/template/components/1/type", json!("BODY")),
                    Op::Set("/template/components/2/type", json!("Button")),
                    Op::Set("/template/components/2/sub_type", json!("Quick_Reply")),
                    Op::Set("/template/components/2/index", json!(0)),
                    Op::Set("/template/components/3/sub_type", json!("URL")),
                    Op::Set("/template/components/3/index", json!("1")),
                ],
            ),
            BodyFlavor::Cloud,
        ),
        (
            "parameter type in any case",
            apply(
                TEMPLATE,
                vec![
                    Op::Set("/template/components/1/parameters/0/type", json!("TEXT")),
                    Op::Set(
                        "/template/components/1/parameters/1/type",
                        json!("Currency"),
                    ),
                    Op::Set("/template/components/0/parameters/0/type", json!("IMAGE")),
                ],
            ),
            BodyFlavor::Cloud,
        ),
        (
            "numeric text parameter and amount as string",
            apply(
                TEMPLATE,
                vec![
                    Op::Set("/template/components/1/parameters/0/text", json!(482913)),
                    Op::Set(
                        "/template/components/1/parameters/1/currency/amount_1000",
                        json!("100990"),
                    ),
                ],
            ),
            BodyFlavor::Cloud,
        ),
        (
            "contacts with nulls and empty arrays",
            apply(
                CONTACTS,
                vec![
                    Op::Set("/contacts/0/emails", json!([])),
                    Op::Set("/contacts/0/org", Value::Null),
                    Op::Set("/contacts/0/phones", Value::Null),
                    Op::Set("/contacts/0/urls", json!([])),
                    Op::Set("/contacts/0/addresses", json!([])),
                    Op::Set("/contacts/0/birthday", Value::Null),
                    Op::Set("/contacts/0/name/first_name", Value::Null),
                    Op::Set(
                        "/contacts/0/phones",
                        json!([{"phone": "+1 555", "type": null, "wa_id": null}]),
                    ),
                ],
            ),
            BodyFlavor::Cloud,
        ),
        (
            "preview_url false on text",
            apply(TEXT, vec![Op::Set("/text/preview_url", json!(false))]),
            BodyFlavor::Cloud,
        ),
        (
            "recipient_type omitted",
            apply(TEXT, vec![Op::Remove("/recipient_type")]),
            BodyFlavor::Cloud,
        ),
        (
            "unknown fields ignored everywhere",
            apply(
                I_LIST,
                vec![
                    Op::Set("/future_field", json!({"a": 1})),
                    Op::Set("/interactive/shiny", json!(true)),
                    Op::Set("/interactive/action/sections/0/rows/0/emoji", json!("x")),
                    Op::Set("/interactive/header/sub", json!([1, 2])),
                ],
            ),
            BodyFlavor::Cloud,
        ),
        (
            "explicit nulls count as absent",
            apply(
                I_BUTTON,
                vec![
                    Op::Set("/context", Value::Null),
                    Op::Set("/biz_opaque_callback_data", Value::Null),
                    Op::Set("/recipient_type", Value::Null),
                    Op::Set("/interactive/header", Value::Null),
                    Op::Set("/interactive/footer", Value::Null),
                    Op::Set("/text", Value::Null),
                ],
            ),
            BodyFlavor::Cloud,
        ),
        (
            "type omitted defaults to text",
            apply(TEXT, vec![Op::Remove("/type")]),
            BodyFlavor::Cloud,
        ),
        (
            "coordinates as strings",
            apply(
                LOCATION,
                vec![
                    Op::Set("/location/latitude", json!("52.520008")),
                    Op::Set("/location/longitude", json!(" 13.404954 ")),
                ],
            ),
            BodyFlavor::Cloud,
        ),
        (
            "empty id next to a link",
            apply(VIDEO, vec![Op::Set("/video/id", json!(""))]),
            BodyFlavor::Cloud,
        ),
        (
            "media id as number",
            apply(
                STICKER,
                vec![Op::Set("/sticker/id", json!(798882015472548u64))],
            ),
            BodyFlavor::Cloud,
        ),
        (
            "interactive type and header type in any case",
            apply(
                I_BUTTON,
                vec![
                    Op::Set("/interactive/type", json!("BUTTON")),
                    Op::Set("/interactive/header/type", json!("Image")),
                    Op::Set("/interactive/action/buttons/0/type", json!("REPLY")),
                ],
            ),
            BodyFlavor::Cloud,
        ),
        (
            "reply button type omitted",
            apply(
                I_BUTTON,
                vec![Op::Remove("/interactive/action/buttons/0/type")],
            ),
            BodyFlavor::Cloud,
        ),
        (
            "list body up to 4096",
            apply(I_LIST, vec![Op::Set("/interactive/body/text", s(4096))]),
            BodyFlavor::Cloud,
        ),
        (
            "ten rows in one section",
            apply(
                I_LIST,
                vec![Op::Set(
                    "/interactive/action/sections",
                    json!([{"rows": rows("r", 10)}]),
                )],
            ),
            BodyFlavor::Cloud,
        ),
        (
            "flow by name, draft, data_exchange",
            apply(
                I_FLOW,
                vec![
                    Op::Remove("/interactive/action/parameters/flow_id"),
                    Op::Set("/interactive/action/parameters/flow_name", json!("booking")),
                    Op::Set("/interactive/action/parameters/mode", json!("DRAFT")),
                    Op::Set(
                        "/interactive/action/parameters/flow_action",
                        json!("data_exchange"),
                    ),
                    Op::Remove("/interactive/action/parameters/flow_action_payload"),
                    Op::Set(
                        "/interactive/action/parameters/flow_message_version",
                        json!(3),
                    ),
                    Op::Set("/interactive/action/parameters/flow_cta", s(30)),
                ],
            ),
            BodyFlavor::Cloud,
        ),
        (
            "product without body",
            apply(I_PRODUCT, vec![Op::Remove("/interactive/body")]),
            BodyFlavor::Cloud,
        ),
        (
            "group recipient",
            apply(
                TEXT,
                vec![
                    Op::Set("/recipient_type", json!("group")),
                    Op::Set(
                        "/to",
                        json!("Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjMzOTQzMjAxMzA2NjA="),
                    ),
                ],
            ),
            BodyFlavor::Cloud,
        ),
        (
            "emoji removal",
            apply(REACTION, vec![Op::Set("/reaction/emoji", json!(""))]),
            BodyFlavor::Cloud,
        ),
        (
            "text and param lengths at the limit",
            apply(
                TEMPLATE_LOCATION_HEADER,
                vec![
                    Op::Set(
                        "/template/components/0",
                        json!({"type": "header", "parameters": [{"type": "text", "text": "x".repeat(60)}]}),
                    ),
                    Op::Set("/template/components/1/parameters/0/text", s(32768)),
                    Op::Set("/biz_opaque_callback_data", s(512)),
                ],
            ),
            BodyFlavor::Cloud,
        ),
        (
            "onprem: no messaging_product, namespace, policy, top-level preview_url",
            apply(
                TEXT,
                vec![
                    Op::Remove("/messaging_product"),
                    Op::Remove("/text/preview_url"),
                    Op::Set("/preview_url", json!(true)),
                ],
            ),
            BodyFlavor::OnPrem,
        ),
        (
            "onprem template with namespace and deterministic policy",
            apply(
                TEMPLATE,
                vec![
                    Op::Remove("/messaging_product"),
                    Op::Set(
                        "/template/namespace",
                        json!("c8ae5f90_307a_ca4c_b8f6_d1e2a2573574"),
                    ),
                ],
            ),
            BodyFlavor::OnPrem,
        ),
        (
            "onprem accepts messaging_product when sent",
            TEXT.to_string(),
            BodyFlavor::OnPrem,
        ),
    ];
    for (name, body, flavor) in cases {
        if let Err(e) = parse(&body, flavor) {
            panic!("{name}: {e}\n{body}");
        }
    }
}

#[test]
fn lenient_values_are_normalised() {
    let m = send(&apply(TEXT, vec![Op::Remove("/type")]));
    assert_eq!(m.message_type(), MessageType::Text);

    let onprem = apply(
        TEXT,
        vec![
            Op::Remove("/messaging_product"),
            Op::Remove("/text/preview_url"),
            Op::Set("/preview_url", json!(true)),
        ],
    );
    assert!(
        matches!(send_in(&onprem, BodyFlavor::OnPrem).content, Content::Text(t) if t.preview_url)
    );
    // In the Cloud flavour a top-level preview_url is an unknown field and ignored.
    let cloud = apply(
        TEXT,
        vec![
            Op::Remove("/text/preview_url"),
            Op::Set("/preview_url", json!(true)),
        ],
    );
    assert!(matches!(send(&cloud).content, Content::Text(t) if !t.preview_url));

    let ns = apply(
        TEMPLATE,
        vec![
            Op::Remove("/messaging_product"),
            Op::Set("/template/namespace", json!("ns-1")),
        ],
    );
    assert!(
        matches!(send_in(&ns, BodyFlavor::OnPrem).content, Content::Template(t) if t.namespace.as_deref() == Some("ns-1"))
    );

    let m = send(&apply(VIDEO, vec![Op::Set("/video/id", json!(""))]));
    assert!(matches!(m.content, Content::Video(v) if matches!(v.source, MediaSource::Link(_))));

    let m = send(&apply(
        TEMPLATE,
        vec![
            Op::Set("/template/components/2/sub_type", json!("Quick_Reply")),
            Op::Set("/template/components/2/index", json!(0)),
            Op::Set("/template/components/3/sub_type", json!("URL")),
        ],
    ));
    match m.content {
        Content::Template(t) => {
            assert!(matches!(
                t.components[2],
                TemplateComponent::Button {
                    sub_type: ButtonSubType::QuickReply,
                    index: 0,
                    ..
                }
            ));
            assert!(matches!(
                t.components[3],
                TemplateComponent::Button {
                    sub_type: ButtonSubType::Url,
                    index: 1,
                    ..
                }
            ));
        }
        c => panic!("{c:?}"),
    }

    let m = send(&apply(
        TEMPLATE,
        vec![Op::Set(
            "/template/components/1/parameters/0/text",
            json!(482913),
        )],
    ));
    match m.content {
        Content::Template(t) => assert!(matches!(&t.components[1],
            TemplateComponent::Body { parameters } if parameters[0].value == ParameterValue::Text("482913".into()))),
        c => panic!("{c:?}"),
    }

    let m = send(&apply(
        TEXT,
        vec![
            Op::Set("/recipient_type", json!("group")),
            Op::Set("/to", json!(" group-id-1 ")),
        ],
    ));
    assert_eq!(m.recipient_type, RecipientType::Group);
    assert_eq!(m.to.as_str(), "group-id-1");
    assert_eq!(m.to_input, " group-id-1 ");
}

// ---------------------------------------------------------------------------------------------
// Violations: (name, body, flavour, expected code, substring of details).

struct Case {
    name: &'static str,
    body: String,
    flavor: BodyFlavor,
    code: u32,
    details: &'static str,
}

fn case(name: &'static str, base: &str, ops: Vec<Op>, code: u32, details: &'static str) -> Case {
    Case {
        name,
        body: apply(base, ops),
        flavor: BodyFlavor::Cloud,
        code,
        details,
    }
}

fn raw(name: &'static str, body: &str, code: u32, details: &'static str) -> Case {
    Case {
        name,
        body: body.to_string(),
        flavor: BodyFlavor::Cloud,
        code,
        details,
    }
}

fn onprem(name: &'static str, base: &str, ops: Vec<Op>, code: u32, details: &'static str) -> Case {
    Case {
        name,
        body: apply(base, ops),
        flavor: BodyFlavor::OnPrem,
        code,
        details,
    }
}

use Op::{Remove, Set};

fn envelope_cases() -> Vec<Case> {
    vec![
        raw(
            "truncated JSON",
            r#"{"messaging_product":"#,
            100,
            "not valid JSON",
        ),
        raw("empty body", "", 100, "not valid JSON"),
        raw("array body", "[]", 100, "not valid JSON"),
        raw("string body", r#""hello""#, 100, "not valid JSON"),
        raw("number body", "42", 100, "not valid JSON"),
        raw("null body", "null", 100, "not valid JSON"),
        raw(
            "trailing garbage",
            r#"{"messaging_product":"whatsapp","to":"4915112345678","text":{"body":"x"}} x"#,
            100,
            "not valid JSON",
        ),
        raw(
            "duplicate key",
            r#"{"messaging_product":"whatsapp","to":"4915112345678","to":"4915112345679","text":{"body":"x"}}"#,
            100,
            "duplicate field",
        ),
        case(
            "messaging_product missing",
            TEXT,
            vec![Remove("/messaging_product")],
            131008,
            "messaging_product",
        ),
        case(
            "messaging_product null",
            TEXT,
            vec![Set("/messaging_product", Value::Null)],
            131008,
            "messaging_product",
        ),
        case(
            "messaging_product not whatsapp",
            TEXT,
            vec![Set("/messaging_product", json!("sms"))],
            100,
            "messaging_product",
        ),
        case(
            "messaging_product wrong type",
            TEXT,
            vec![Set("/messaging_product", json!(1))],
            100,
            "messaging_product",
        ),
        // 2026: `to` or `recipient`; with neither, 100 "The parameter to is required."
        case("to missing", TEXT, vec![Remove("/to")], 100, "to"),
        case("to empty", TEXT, vec![Set("/to", json!(""))], 100, "to"),
        case(
            "to not a number",
            TEXT,
            vec![Set("/to", json!("hello"))],
            131009,
            "to",
        ),
        case(
            "to too short",
            TEXT,
            vec![Set("/to", json!("123"))],
            131009,
            "to",
        ),
        case(
            "to too long",
            TEXT,
            vec![Set("/to", json!("1234567890123456"))],
            131009,
            "to",
        ),
        case(
            "to wrong type",
            TEXT,
            vec![Set("/to", json!({"n": 1}))],
            100,
            "Param to",
        ),
        case(
            "recipient_type unknown",
            TEXT,
            vec![Set("/recipient_type", json!("broadcast"))],
            100,
            "recipient_type",
        ),
        case(
            "type unknown",
            TEXT,
            vec![Set("/type", json!("hologram"))],
            131051,
            "hologram",
        ),
        case(
            "type hsm",
            TEXT,
            vec![Set("/type", json!("hsm"))],
            131051,
            "hsm",
        ),
        case(
            "type wrong JSON type",
            TEXT,
            vec![Set("/type", json!(5))],
            100,
            "Param type",
        ),
        case(
            "payload object missing",
            IMAGE,
            vec![Remove("/image")],
            131008,
            "image",
        ),
        case(
            "payload under another key",
            TEXT,
            vec![Set("/type", json!("image"))],
            131008,
            "image",
        ),
        case(
            "context without message_id",
            ENVELOPE,
            vec![Set("/context", json!({}))],
            131008,
            "context.message_id",
        ),
        case(
            "context wrong type",
            ENVELOPE,
            vec![Set("/context", json!("wamid.x"))],
            100,
            "context",
        ),
        case(
            "biz_opaque_callback_data too long",
            ENVELOPE,
            vec![Set("/biz_opaque_callback_data", s(513))],
            100,
            "biz_opaque_callback_data must be at most 512",
        ),
        case(
            "biz_opaque_callback_data wrong type",
            ENVELOPE,
            vec![Set("/biz_opaque_callback_data", json!(7))],
            100,
            "biz_opaque_callback_data",
        ),
        onprem(
            "onprem messaging_product wrong",
            TEXT,
            vec![Set("/messaging_product", json!("sms"))],
            100,
            "messaging_product",
        ),
        onprem(
            "onprem policy other",
            TEMPLATE,
            vec![
                Remove("/messaging_product"),
                Set("/template/language/policy", json!("fallback")),
            ],
            100,
            "template.language.policy",
        ),
        onprem(
            "onprem to missing",
            TEXT,
            vec![Remove("/messaging_product"), Remove("/to")],
            131008,
            "to",
        ),
    ]
}

fn mark_read_cases() -> Vec<Case> {
    vec![
        case(
            "status not read",
            MARK_READ,
            vec![Set("/status", json!("delivered"))],
            100,
            "status",
        ),
        case(
            "mark read without message_id",
            MARK_READ,
            vec![Remove("/message_id")],
            131008,
            "message_id",
        ),
        case(
            "mark read without messaging_product",
            MARK_READ,
            vec![Remove("/messaging_product")],
            131008,
            "messaging_product",
        ),
        case(
            "typing indicator wrong type",
            TYPING,
            vec![Set("/typing_indicator/type", json!("audio"))],
            100,
            "typing_indicator.type",
        ),
        case(
            "typing indicator without type",
            TYPING,
            vec![Set("/typing_indicator", json!({}))],
            131008,
            "typing_indicator.type",
        ),
    ]
}

fn text_and_media_cases() -> Vec<Case> {
    vec![
        case(
            "text body missing",
            TEXT,
            vec![Remove("/text/body")],
            131008,
            "text.body",
        ),
        case(
            "text body empty",
            TEXT,
            vec![Set("/text/body", json!(""))],
            131008,
            "text.body",
        ),
        case(
            "text body blank",
            TEXT,
            vec![Set("/text/body", json!("   "))],
            131008,
            "text.body",
        ),
        case(
            "text body too long",
            TEXT,
            vec![Set("/text/body", s(4097))],
            100,
            "text.body must be at most 4096 characters",
        ),
        case(
            "text body counted in characters",
            TEXT,
            vec![Set("/text/body", json!("ä".repeat(4097)))],
            100,
            "text.body",
        ),
        case(
            "text body wrong type",
            TEXT,
            vec![Set("/text/body", json!(5))],
            100,
            "Param text.body has an invalid type",
        ),
        case(
            "text preview_url wrong type",
            TEXT,
            vec![Set("/text/preview_url", json!("yes"))],
            100,
            "text.preview_url",
        ),
        case(
            "text object wrong type",
            TEXT,
            vec![Set("/text", json!("hi"))],
            100,
            "Param text",
        ),
        case(
            "text object missing",
            TEXT,
            vec![Remove("/text")],
            131008,
            "text",
        ),
        case(
            "media id and link",
            IMAGE,
            vec![Set("/image/link", json!("https://example.com/a.jpg"))],
            131009,
            "image",
        ),
        case(
            "media neither id nor link",
            IMAGE,
            vec![Remove("/image/id")],
            131008,
            "image.id or image.link",
        ),
        case(
            "media link not http",
            IMAGE,
            vec![
                Remove("/image/id"),
                Set("/image/link", json!("ftp://example.com/a.jpg")),
            ],
            131009,
            "image.link",
        ),
        case(
            "media link relative",
            DOCUMENT,
            vec![Set("/document/link", json!("/files/a.pdf"))],
            131009,
            "document.link",
        ),
        case(
            "caption too long",
            IMAGE,
            vec![Set("/image/caption", s(1025))],
            100,
            "image.caption must be at most 1024",
        ),
        case(
            "caption on audio",
            AUDIO,
            vec![Set("/audio/caption", json!("hi"))],
            100,
            "audio.caption",
        ),
        case(
            "caption on sticker",
            STICKER,
            vec![Set("/sticker/caption", json!("hi"))],
            100,
            "sticker.caption",
        ),
        case(
            "filename on image",
            IMAGE,
            vec![Set("/image/filename", json!("a.jpg"))],
            100,
            "image.filename",
        ),
        case(
            "voice on video",
            VIDEO,
            vec![Set("/video/voice", json!(true))],
            100,
            "video.voice",
        ),
        case(
            "media id wrong type",
            STICKER,
            vec![Set("/sticker/id", json!([1]))],
            100,
            "sticker.id",
        ),
        case(
            "location latitude missing",
            LOCATION,
            vec![Remove("/location/latitude")],
            131008,
            "location.latitude",
        ),
        case(
            "location longitude missing",
            LOCATION,
            vec![Remove("/location/longitude")],
            131008,
            "location.longitude",
        ),
        case(
            "location latitude not numeric",
            LOCATION,
            vec![Set("/location/latitude", json!("north"))],
            100,
            "location.latitude",
        ),
        case(
            "location latitude out of range",
            LOCATION,
            vec![Set("/location/latitude", json!(91))],
            100,
            "location.latitude",
        ),
        case(
            "location longitude out of range",
            LOCATION,
            vec![Set("/location/longitude", json!(-180.5))],
            100,
            "location.longitude",
        ),
        case(
            "contacts empty",
            CONTACTS,
            vec![Set("/contacts", json!([]))],
            100,
            "contacts must contain at least 1",
        ),
        case(
            "contacts more than 5",
            CONTACTS,
            vec![Set(
                "/contacts",
                json!([
                    contact(),
                    contact(),
                    contact(),
                    contact(),
                    contact(),
                    contact()
                ]),
            )],
            100,
            "contacts must contain at most 5",
        ),
        case(
            "contacts not an array",
            CONTACTS,
            vec![Set("/contacts", contact())],
            100,
            "contacts",
        ),
        case(
            "contact name missing",
            CONTACTS,
            vec![Remove("/contacts/0/name")],
            131008,
            "contacts[0].name",
        ),
        case(
            "contact formatted_name missing",
            CONTACTS,
            vec![Remove("/contacts/0/name/formatted_name")],
            131008,
            "contacts[0].name.formatted_name",
        ),
        case(
            "contact formatted_name null",
            CONTACTS,
            vec![Set("/contacts/0/name/formatted_name", Value::Null)],
            131008,
            "contacts[0].name.formatted_name",
        ),
        case(
            "contact birthday format",
            CONTACTS,
            vec![Set("/contacts/0/birthday", json!("23.04.1985"))],
            131009,
            "contacts[0].birthday",
        ),
        case(
            "contact birthday impossible",
            CONTACTS,
            vec![Set("/contacts/0/birthday", json!("1985-02-30"))],
            131009,
            "contacts[0].birthday",
        ),
        case(
            "contact phones wrong type",
            CONTACTS,
            vec![Set("/contacts/0/phones", json!("+49"))],
            100,
            "contacts[0].phones",
        ),
        case(
            "second contact broken",
            CONTACTS,
            vec![Set("/contacts/1", json!({"name": {}}))],
            131008,
            "contacts[1].name.formatted_name",
        ),
        case(
            "reaction message_id missing",
            REACTION,
            vec![Remove("/reaction/message_id")],
            131008,
            "reaction.message_id",
        ),
        case(
            "reaction emoji missing",
            REACTION,
            vec![Remove("/reaction/emoji")],
            131008,
            "reaction.emoji",
        ),
        case(
            "reaction emoji text",
            REACTION,
            vec![Set("/reaction/emoji", json!("ok"))],
            131009,
            "reaction.emoji",
        ),
        case(
            "reaction several emoji",
            REACTION,
            vec![Set("/reaction/emoji", json!("😀😀😀😀😀😀😀😀😀😀😀"))],
            131009,
            "reaction.emoji",
        ),
    ]
}

fn template_cases() -> Vec<Case> {
    const C: &str = "/template/components";
    vec![
        case(
            "template object missing",
            TEMPLATE,
            vec![Remove("/template")],
            131008,
            "template",
        ),
        case(
            "template name missing",
            TEMPLATE,
            vec![Remove("/template/name")],
            131008,
            "template.name",
        ),
        case(
            "template name too long",
            TEMPLATE,
            vec![Set("/template/name", s(513))],
            100,
            "template.name",
        ),
        case(
            "template language missing",
            TEMPLATE,
            vec![Remove("/template/language")],
            131008,
            "template.language",
        ),
        case(
            "template language code missing",
            TEMPLATE,
            vec![Remove("/template/language/code")],
            131008,
            "template.language.code",
        ),
        case(
            "template language as string",
            TEMPLATE,
            vec![Set("/template/language", json!("en_US"))],
            100,
            "template.language",
        ),
        case(
            "template policy other",
            TEMPLATE,
            vec![Set("/template/language/policy", json!("fallback"))],
            100,
            "template.language.policy",
        ),
        case(
            "components not an array",
            TEMPLATE,
            vec![Set(C, json!({"type": "body"}))],
            100,
            "template.components",
        ),
        case(
            "component type missing",
            TEMPLATE,
            vec![Remove("/template/components/1/type")],
            131008,
            "template.components[1].type",
        ),
        case(
            "component type unknown",
            TEMPLATE,
            vec![Set("/template/components/1/type", json!("footer"))],
            100,
            "template.components[1].type",
        ),
        case(
            "duplicate body component",
            TEMPLATE,
            vec![Set(
                "/template/components/4",
                json!({"type": "body", "parameters": []}),
            )],
            100,
            "template.components[4]",
        ),
        case(
            "button sub_type missing",
            TEMPLATE,
            vec![Remove("/template/components/2/sub_type")],
            131008,
            "template.components[2].sub_type",
        ),
        case(
            "button sub_type unknown",
            TEMPLATE,
            vec![Set("/template/components/2/sub_type", json!("teleport"))],
            100,
            "template.components[2].sub_type",
        ),
        case(
            "button index missing",
            TEMPLATE,
            vec![Remove("/template/components/2/index")],
            131008,
            "template.components[2].index",
        ),
        case(
            "button index 10",
            TEMPLATE,
            vec![Set("/template/components/2/index", json!(10))],
            100,
            "template.components[2].index must be an integer between 0 and 9",
        ),
        case(
            "button index negative",
            TEMPLATE,
            vec![Set("/template/components/2/index", json!(-1))],
            100,
            "template.components[2].index",
        ),
        case(
            "button index not numeric",
            TEMPLATE,
            vec![Set("/template/components/2/index", json!("first"))],
            100,
            "template.components[2].index",
        ),
        case(
            "button index wrong type",
            TEMPLATE,
            vec![Set("/template/components/2/index", json!([0]))],
            100,
            "template.components[2].index",
        ),
        case(
            "button index duplicate",
            TEMPLATE,
            vec![Set("/template/components/3/index", json!(0))],
            100,
            "template.components[3].index must be unique",
        ),
        case(
            "parameter type missing",
            TEMPLATE,
            vec![Remove("/template/components/1/parameters/0/type")],
            131008,
            "template.components[1].parameters[0].type",
        ),
        case(
            "parameter type unknown",
            TEMPLATE,
            vec![Set(
                "/template/components/1/parameters/0/type",
                json!("emoji"),
            )],
            100,
            "template.components[1].parameters[0].type",
        ),
        case(
            "currency in header",
            TEMPLATE,
            vec![Set(
                "/template/components/0/parameters/0",
                json!({"type": "currency", "currency": {"fallback_value": "1", "code": "EUR", "amount_1000": 1}}),
            )],
            100,
            "template.components[0].parameters[0].type",
        ),
        case(
            "image in body",
            TEMPLATE,
            vec![Set(
                "/template/components/1/parameters/0",
                json!({"type": "image", "image": {"id": "1"}}),
            )],
            100,
            "template.components[1].parameters[0].type",
        ),
        case(
            "payload on url button",
            TEMPLATE,
            vec![Set(
                "/template/components/3/parameters/0",
                json!({"type": "payload", "payload": "x"}),
            )],
            100,
            "template.components[3].parameters[0].type",
        ),
        case(
            "text value missing",
            TEMPLATE,
            vec![Remove("/template/components/1/parameters/0/text")],
            131008,
            "template.components[1].parameters[0].text",
        ),
        case(
            "text value empty",
            TEMPLATE,
            vec![Set("/template/components/1/parameters/0/text", json!(""))],
            131008,
            "template.components[1].parameters[0].text",
        ),
        case(
            "text value wrong type",
            TEMPLATE,
            vec![Set(
                "/template/components/1/parameters/0/text",
                json!({"a": 1}),
            )],
            100,
            "template.components[1].parameters[0].text",
        ),
        case(
            "header text param too long",
            TEMPLATE,
            vec![Set(
                "/template/components/0/parameters/0",
                json!({"type": "text", "text": "x".repeat(61)}),
            )],
            100,
            "template.components[0].parameters[0].text must be at most 60",
        ),
        case(
            "body text param too long",
            TEMPLATE,
            vec![Set("/template/components/1/parameters/0/text", s(32769))],
            100,
            "template.components[1].parameters[0].text must be at most 32768",
        ),
        case(
            "body text param with new-line",
            TEMPLATE,
            vec![Set(
                "/template/components/1/parameters/0/text",
                json!("a\nb"),
            )],
            132018,
            "template.components[1].parameters[0].text",
        ),
        case(
            "body text param with 5 spaces",
            TEMPLATE,
            vec![Set(
                "/template/components/1/parameters/0/text",
                json!("a     b"),
            )],
            132018,
            "consecutive spaces",
        ),
        case(
            "parameter_name empty",
            TEMPLATE_NAMED,
            vec![Set(
                "/template/components/0/parameters/0/parameter_name",
                json!(""),
            )],
            131008,
            "template.components[0].parameters[0].parameter_name",
        ),
        case(
            "currency object missing",
            TEMPLATE,
            vec![Remove("/template/components/1/parameters/1/currency")],
            131008,
            "template.components[1].parameters[1].currency",
        ),
        case(
            "currency code invalid",
            TEMPLATE,
            vec![Set(
                "/template/components/1/parameters/1/currency/code",
                json!("EURO"),
            )],
            131009,
            "template.components[1].parameters[1].currency.code",
        ),
        case(
            "currency amount missing",
            TEMPLATE,
            vec![Remove(
                "/template/components/1/parameters/1/currency/amount_1000",
            )],
            131008,
            "currency.amount_1000",
        ),
        case(
            "currency amount not an integer",
            TEMPLATE,
            vec![Set(
                "/template/components/1/parameters/1/currency/amount_1000",
                json!(1.5),
            )],
            100,
            "currency.amount_1000",
        ),
        case(
            "currency fallback missing",
            TEMPLATE,
            vec![Remove(
                "/template/components/1/parameters/1/currency/fallback_value",
            )],
            131008,
            "currency.fallback_value",
        ),
        case(
            "date_time fallback missing",
            TEMPLATE,
            vec![Set(
                "/template/components/1/parameters/2/date_time",
                json!({}),
            )],
            131008,
            "date_time.fallback_value",
        ),
        case(
            "header image both id and link",
            TEMPLATE,
            vec![Set(
                "/template/components/0/parameters/0/image/id",
                json!("1"),
            )],
            131009,
            "template.components[0].parameters[0].image",
        ),
        case(
            "header image missing",
            TEMPLATE,
            vec![Remove("/template/components/0/parameters/0/image")],
            131008,
            "template.components[0].parameters[0].image",
        ),
        case(
            "header image bad link",
            TEMPLATE,
            vec![Set(
                "/template/components/0/parameters/0/image/link",
                json!("file:///etc/passwd"),
            )],
            131009,
            "parameters[0].image.link",
        ),
        case(
            "payload missing",
            TEMPLATE,
            vec![Remove("/template/components/2/parameters/0/payload")],
            131008,
            "template.components[2].parameters[0].payload",
        ),
        case(
            "coupon code too long",
            TEMPLATE_BUTTONS,
            vec![Set(
                "/template/components/2/parameters/0/coupon_code",
                s(16),
            )],
            100,
            "template.components[2].parameters[0].coupon_code must be at most 15",
        ),
        case(
            "action not an object",
            TEMPLATE_BUTTONS,
            vec![Set(
                "/template/components/3/parameters/0/action",
                json!("tok"),
            )],
            100,
            "template.components[3].parameters[0].action",
        ),
        case(
            "action missing",
            TEMPLATE_BUTTONS,
            vec![Remove("/template/components/4/parameters/0/action")],
            131008,
            "template.components[4].parameters[0].action",
        ),
        case(
            "lto param wrong type",
            TEMPLATE_BUTTONS,
            vec![Set(
                "/template/components/1/parameters/0/limited_time_offer/expiration_time_ms",
                json!("soon"),
            )],
            100,
            "limited_time_offer.expiration_time_ms",
        ),
        case(
            "location header latitude missing",
            TEMPLATE_LOCATION_HEADER,
            vec![Remove(
                "/template/components/0/parameters/0/location/latitude",
            )],
            131008,
            "parameters[0].location.latitude",
        ),
        case(
            "carousel cards missing",
            TEMPLATE_CAROUSEL,
            vec![Remove("/template/components/1/cards")],
            131008,
            "template.components[1].cards",
        ),
        case(
            "carousel one card",
            TEMPLATE_CAROUSEL,
            vec![Set("/template/components/1/cards", template_cards(1))],
            100,
            "template.components[1].cards must contain at least 2",
        ),
        case(
            "carousel eleven cards",
            TEMPLATE_CAROUSEL,
            vec![Set("/template/components/1/cards", template_cards(11))],
            100,
            "template.components[1].cards must contain at most 10",
        ),
        case(
            "carousel duplicate card_index",
            TEMPLATE_CAROUSEL,
            vec![Set("/template/components/1/cards/1/card_index", json!(0))],
            100,
            "cards[1].card_index must be unique",
        ),
        case(
            "carousel card_index missing",
            TEMPLATE_CAROUSEL,
            vec![Remove("/template/components/1/cards/0/card_index")],
            131008,
            "cards[0].card_index",
        ),
        case(
            "carousel card components missing",
            TEMPLATE_CAROUSEL,
            vec![Remove("/template/components/1/cards/0/components")],
            131008,
            "cards[0].components",
        ),
        case(
            "carousel inside a card",
            TEMPLATE_CAROUSEL,
            vec![Set(
                "/template/components/1/cards/0/components/3",
                json!({"type": "carousel", "cards": []}),
            )],
            100,
            "cards[0].components[3].type",
        ),
        case(
            "carousel card three buttons",
            TEMPLATE_CAROUSEL,
            vec![Set(
                "/template/components/1/cards/0/components/3",
                json!({"type": "button", "sub_type": "quick_reply", "index": 2, "parameters": [{"type": "payload", "payload": "x"}]}),
            )],
            100,
            "cards[0].components[3]",
        ),
    ]
}

fn interactive_cases() -> Vec<Case> {
    vec![
        case("interactive object missing", I_BUTTON, vec![Remove("/interactive")], 131008, "interactive"),
        case("interactive type missing", I_BUTTON, vec![Remove("/interactive/type")], 131008, "interactive.type"),
        case("interactive type unknown", I_BUTTON, vec![Set("/interactive/type", json!("poll"))], 100, "interactive.type"),
        case("interactive payments type", I_BUTTON, vec![Set("/interactive/type", json!("order_details"))], 131051, "order_details"),
        case("body missing", I_BUTTON, vec![Remove("/interactive/body")], 131008, "interactive.body"),
        case("body text missing", I_BUTTON, vec![Set("/interactive/body", json!({}))], 131008, "interactive.body.text"),
        case("body too long", I_BUTTON, vec![Set("/interactive/body/text", s(1025))], 100, "interactive.body.text must be at most 1024"),
        case("list body too long", I_LIST, vec![Set("/interactive/body/text", s(4097))], 100, "interactive.body.text must be at most 4096"),
        case("cta body too long", I_CTA_URL, vec![Set("/interactive/body/text", s(1025))], 100, "interactive.body.text must be at most 1024"),
        case("product body too long", I_PRODUCT, vec![Set("/interactive/body/text", s(1025))], 100, "interactive.body.text"),
        case("footer too long", I_BUTTON, vec![Set("/interactive/footer/text", s(61))], 100, "interactive.footer.text must be at most 60"),
        case("footer text missing", I_BUTTON, vec![Set("/interactive/footer", json!({}))], 131008, "interactive.footer.text"),
        case("header text too long", I_LIST, vec![Set("/interactive/header/text", s(61))], 100, "interactive.header.text must be at most 60"),
        case("header text missing", I_LIST, vec![Remove("/interactive/header/text")], 131008, "interactive.header.text"),
        case("header type missing", I_LIST, vec![Remove("/interactive/header/type")], 131008, "interactive.header.type"),
        case("header type unknown", I_BUTTON, vec![Set("/interactive/header/type", json!("audio"))], 100, "interactive.header.type"),
        case("header media missing", I_BUTTON, vec![Remove("/interactive/header/image")], 131008, "interactive.header.image"),
        case("header media bad link", I_BUTTON, vec![Set("/interactive/header/image", json!({"link": "mailto:a@b"}))], 131009, "interactive.header.image.link"),
        case("list with image header", I_LIST, vec![Set("/interactive/header", json!({"type": "image", "image": {"id": "1"}}))], 100, "interactive.header.type"),
        case("product with header", I_PRODUCT, vec![Set("/interactive/header", json!({"type": "text", "text": "x"}))], 100, "interactive.header is not allowed"),
        case("product_list header missing", I_PRODUCT_LIST, vec![Remove("/interactive/header")], 131008, "interactive.header"),
        case("product_list video header", I_PRODUCT_LIST, vec![Set("/interactive/header", json!({"type": "video", "video": {"id": "1"}}))], 100, "interactive.header.type"),
        case("action missing", I_BUTTON, vec![Remove("/interactive/action")], 131008, "interactive.action"),
        case("action wrong type", I_BUTTON, vec![Set("/interactive/action", json!([]))], 100, "interactive.action"),
        case("button as array", I_BUTTON, vec![Set("/interactive/action/buttons/0", json!(["reply", {"id": "a", "title": "b"}]))], 100, "interactive.action.buttons[0]"),
        case("envelope as array", I_BUTTON, vec![Set("/interactive", json!(["button"]))], 100, "Param interactive has an invalid type: array"),
        // Reply buttons.
        case("buttons missing", I_BUTTON, vec![Set("/interactive/action", json!({}))], 131008, "interactive.action.buttons"),
        case("buttons empty", I_BUTTON, vec![Set("/interactive/action/buttons", json!([]))], 100, "interactive.action.buttons must contain at least 1"),
        case("four buttons", I_BUTTON, vec![Set("/interactive/action/buttons", reply_buttons(4))], 100, "interactive.action.buttons must contain at most 3"),
        case("button type not reply", I_BUTTON, vec![Set("/interactive/action/buttons/0/type", json!("url"))], 100, "interactive.action.buttons[0].type"),
        case("button reply missing", I_BUTTON, vec![Remove("/interactive/action/buttons/1/reply")], 131008, "interactive.action.buttons[1].reply"),
        case("button id missing", I_BUTTON, vec![Remove("/interactive/action/buttons/1/reply/id")], 131008, "interactive.action.buttons[1].reply.id"),
        case("button id too long", I_BUTTON, vec![Set("/interactive/action/buttons/1/reply/id", s(257))], 100, "interactive.action.buttons[1].reply.id must be at most 256"),
        case("button id padded", I_BUTTON, vec![Set("/interactive/action/buttons/1/reply/id", json!(" keep2"))], 131009, "interactive.action.buttons[1].reply.id"),
        case("button id duplicate", I_BUTTON, vec![Set("/interactive/action/buttons/1/reply/id", json!("keep"))], 100, "interactive.action.buttons[1].reply.id must be unique"),
        case("button title missing", I_BUTTON, vec![Remove("/interactive/action/buttons/0/reply/title")], 131008, "interactive.action.buttons[0].reply.title"),
        case("button title empty", I_BUTTON, vec![Set("/interactive/action/buttons/0/reply/title", json!(""))], 131008, "interactive.action.buttons[0].reply.title"),
        case("button title too long", I_BUTTON, vec![Set("/interactive/action/buttons/0/reply/title", s(21))], 100, "interactive.action.buttons[0].reply.title must be at most 20"),
        case("button title duplicate", I_BUTTON, vec![Set("/interactive/action/buttons/1/reply/title", json!("Keep it"))], 100, "interactive.action.buttons[1].reply.title must be unique"),
        // Lists.
        case("list button missing", I_LIST, vec![Remove("/interactive/action/button")], 131008, "interactive.action.button"),
        case("list button too long", I_LIST, vec![Set("/interactive/action/button", s(21))], 100, "interactive.action.button must be at most 20"),
        case("list sections missing", I_LIST, vec![Remove("/interactive/action/sections")], 131008, "interactive.action.sections"),
        case("list sections empty", I_LIST, vec![Set("/interactive/action/sections", json!([]))], 100, "interactive.action.sections must contain at least 1"),
        case("list eleven sections", I_LIST, vec![Set("/interactive/action/sections", Value::Array((0..11).map(|i| json!({"title": format!("S{i}"), "rows": [{"id": format!("r{i}"), "title": "t"}]})).collect()))], 100, "interactive.action.sections must contain at most 10"),
        case("list eleven rows across sections", I_LIST, vec![Set("/interactive/action/sections", json!([{"title": "A", "rows": rows("a", 6)}, {"title": "B", "rows": rows("b", 5)}]))], 100, "at most 10 rows in total"),
        case("list section title missing with two sections", I_LIST, vec![Remove("/interactive/action/sections/1/title")], 131008, "interactive.action.sections[1].title"),
        case("list section title too long", I_LIST, vec![Set("/interactive/action/sections/0/title", s(25))], 100, "interactive.action.sections[0].title must be at most 24"),
        case("list rows missing", I_LIST, vec![Remove("/interactive/action/sections/1/rows")], 131008, "interactive.action.sections[1].rows"),
        case("list rows empty", I_LIST, vec![Set("/interactive/action/sections/1/rows", json!([]))], 100, "interactive.action.sections[1].rows must contain at least 1"),
        case("row id missing", I_LIST, vec![Remove("/interactive/action/sections/0/rows/1/id")], 131008, "interactive.action.sections[0].rows[1].id"),
        case("row id too long", I_LIST, vec![Set("/interactive/action/sections/0/rows/1/id", s(201))], 100, "interactive.action.sections[0].rows[1].id must be at most 200"),
        case("row id duplicate across sections", I_LIST, vec![Set("/interactive/action/sections/1/rows/0/id", json!("express"))], 100, "interactive.action.sections[1].rows[0].id must be unique"),
        case("row title missing", I_LIST, vec![Remove("/interactive/action/sections/0/rows/0/title")], 131008, "interactive.action.sections[0].rows[0].title"),
        case("row title too long", I_LIST, vec![Set("/interactive/action/sections/0/rows/0/title", s(25))], 100, "interactive.action.sections[0].rows[0].title must be at most 24"),
        case("row description too long", I_LIST, vec![Set("/interactive/action/sections/0/rows/0/description", s(73))], 100, "interactive.action.sections[0].rows[0].description must be at most 72"),
        // CTA URL.
        case("cta name missing", I_CTA_URL, vec![Remove("/interactive/action/name")], 131008, "interactive.action.name"),
        case("cta name wrong", I_CTA_URL, vec![Set("/interactive/action/name", json!("flow"))], 100, "interactive.action.name"),
        case("cta parameters missing", I_CTA_URL, vec![Remove("/interactive/action/parameters")], 131008, "interactive.action.parameters"),
        case("cta display_text missing", I_CTA_URL, vec![Remove("/interactive/action/parameters/display_text")], 131008, "interactive.action.parameters.display_text"),
        case("cta display_text too long", I_CTA_URL, vec![Set("/interactive/action/parameters/display_text", s(21))], 100, "interactive.action.parameters.display_text must be at most 20"),
        case("cta url missing", I_CTA_URL, vec![Remove("/interactive/action/parameters/url")], 131008, "interactive.action.parameters.url"),
        case("cta url not http", I_CTA_URL, vec![Set("/interactive/action/parameters/url", json!("javascript:alert(1)"))], 131009, "interactive.action.parameters.url"),
        // Products.
        case("product catalog_id missing", I_PRODUCT, vec![Remove("/interactive/action/catalog_id")], 131008, "interactive.action.catalog_id"),
        case("product retailer id missing", I_PRODUCT, vec![Remove("/interactive/action/product_retailer_id")], 131008, "interactive.action.product_retailer_id"),
        case("product_list sections missing", I_PRODUCT_LIST, vec![Remove("/interactive/action/sections")], 131008, "interactive.action.sections"),
        case("product_list items empty", I_PRODUCT_LIST, vec![Set("/interactive/action/sections/0/product_items", json!([]))], 100, "interactive.action.sections[0].product_items must contain at least 1"),
        case("product_list 31 items", I_PRODUCT_LIST, vec![Set("/interactive/action/sections", json!([
            {"title": "A", "product_items": (0..16).map(|i| json!({"product_retailer_id": format!("a{i}")})).collect::<Vec<_>>()},
            {"title": "B", "product_items": (0..15).map(|i| json!({"product_retailer_id": format!("b{i}")})).collect::<Vec<_>>()}]))], 100, "at most 30 product items"),
        case("product_list section title missing with two sections", I_PRODUCT_LIST, vec![Set("/interactive/action/sections/1", json!({"product_items": [{"product_retailer_id": "x"}]}))], 131008, "interactive.action.sections[1].title"),
        case("product_list item id missing", I_PRODUCT_LIST, vec![Set("/interactive/action/sections/0/product_items/1", json!({}))], 131008, "interactive.action.sections[0].product_items[1].product_retailer_id"),
        case("catalog name wrong", I_CATALOG, vec![Set("/interactive/action/name", json!("catalog"))], 100, "interactive.action.name"),
        // Flows.
        case("flow parameters missing", I_FLOW, vec![Remove("/interactive/action/parameters")], 131008, "interactive.action.parameters"),
        case("flow version missing", I_FLOW, vec![Remove("/interactive/action/parameters/flow_message_version")], 131008, "interactive.action.parameters.flow_message_version"),
        case("flow cta missing", I_FLOW, vec![Remove("/interactive/action/parameters/flow_cta")], 131008, "interactive.action.parameters.flow_cta"),
        case("flow cta too long", I_FLOW, vec![Set("/interactive/action/parameters/flow_cta", s(31))], 100, "interactive.action.parameters.flow_cta must be at most 30"),
        case("flow id and name", I_FLOW, vec![Set("/interactive/action/parameters/flow_name", json!("booking"))], 131009, "flow_id and flow_name"),
        case("flow neither id nor name", I_FLOW, vec![Remove("/interactive/action/parameters/flow_id")], 131008, "interactive.action.parameters.flow_id or interactive.action.parameters.flow_name"),
        case("flow mode unknown", I_FLOW, vec![Set("/interactive/action/parameters/mode", json!("live"))], 100, "interactive.action.parameters.mode"),
        case("flow action unknown", I_FLOW, vec![Set("/interactive/action/parameters/flow_action", json!("jump"))], 100, "interactive.action.parameters.flow_action"),
        case("flow payload data empty", I_FLOW, vec![Set("/interactive/action/parameters/flow_action_payload/data", json!({}))], 100, "interactive.action.parameters.flow_action_payload.data"),
        case("flow payload wrong type", I_FLOW, vec![Set("/interactive/action/parameters/flow_action_payload", json!("WELCOME"))], 100, "interactive.action.parameters.flow_action_payload"),
        case("flow name wrong", I_FLOW, vec![Set("/interactive/action/name", json!("cta_url"))], 100, "interactive.action.name"),
        // Location request, address, call permission.
        case("location request with header", I_LOCATION_REQUEST, vec![Set("/interactive/header", json!({"type": "text", "text": "x"}))], 100, "interactive.header is not allowed"),
        case("location request with footer", I_LOCATION_REQUEST, vec![Set("/interactive/footer", json!({"text": "x"}))], 100, "interactive.footer is not allowed"),
        case("location request name missing", I_LOCATION_REQUEST, vec![Set("/interactive/action", json!({}))], 131008, "interactive.action.name"),
        case("location request name wrong", I_LOCATION_REQUEST, vec![Set("/interactive/action/name", json!("send_contact"))], 100, "interactive.action.name"),
        case("location request body too long", I_LOCATION_REQUEST, vec![Set("/interactive/body/text", s(1025))], 100, "interactive.body.text must be at most 1024"),
        case("address parameters missing", I_ADDRESS, vec![Remove("/interactive/action/parameters")], 131008, "interactive.action.parameters"),
        case("address country missing", I_ADDRESS, vec![Remove("/interactive/action/parameters/country")], 131008, "interactive.action.parameters.country"),
        case("address values wrong type", I_ADDRESS, vec![Set("/interactive/action/parameters/values", json!([]))], 100, "interactive.action.parameters.values has an invalid type: array, expected an object"),
        case("call permission name wrong", I_CALL_PERMISSION, vec![Set("/interactive/action/name", json!("call"))], 100, "interactive.action.name"),
        // Carousels.
        case("carousel cards missing", I_CAROUSEL, vec![Set("/interactive/action", json!({}))], 131008, "interactive.action.cards"),
        case("carousel one card", I_CAROUSEL, vec![Set("/interactive/action/cards", media_cards(1))], 100, "interactive.action.cards must contain at least 2"),
        case("carousel eleven cards", I_CAROUSEL, vec![Set("/interactive/action/cards", media_cards(11))], 100, "interactive.action.cards must contain at most 10"),
        case("carousel duplicate card_index", I_CAROUSEL, vec![Set("/interactive/action/cards/1/card_index", json!(0))], 100, "interactive.action.cards[1].card_index must be unique"),
        case("carousel card_index 10", I_CAROUSEL, vec![Set("/interactive/action/cards/1/card_index", json!(10))], 100, "interactive.action.cards[1].card_index"),
        case("carousel card_index missing", I_CAROUSEL, vec![Remove("/interactive/action/cards/1/card_index")], 131008, "interactive.action.cards[1].card_index"),
        case("carousel card type missing", I_CAROUSEL, vec![Remove("/interactive/action/cards/0/type")], 131008, "interactive.action.cards[0].type"),
        case("carousel card type unknown", I_CAROUSEL, vec![Set("/interactive/action/cards/0/type", json!("button"))], 100, "interactive.action.cards[0].type"),
        case("carousel mixed card types", I_CAROUSEL, vec![Set("/interactive/action/cards/1", json!({"card_index": 1, "type": "product", "action": {"product_retailer_id": "a", "catalog_id": "1"}}))], 100, "interactive.action.cards[1].type"),
        case("carousel card header missing", I_CAROUSEL, vec![Remove("/interactive/action/cards/0/header")], 131008, "interactive.action.cards[0].header"),
        case("carousel card text header", I_CAROUSEL, vec![Set("/interactive/action/cards/0/header", json!({"type": "text", "text": "x"}))], 100, "interactive.action.cards[0].header.type"),
        case("carousel mixed media headers", I_CAROUSEL, vec![Set("/interactive/action/cards/1/header", json!({"type": "video", "video": {"id": "1"}}))], 100, "interactive.action.cards[1].header.type"),
        case("carousel card body too long", I_CAROUSEL, vec![Set("/interactive/action/cards/0/body/text", s(161))], 100, "interactive.action.cards[0].body.text must be at most 160"),
        case("carousel card display_text too long", I_CAROUSEL, vec![Set("/interactive/action/cards/0/action/parameters/display_text", s(21))], 100, "interactive.action.cards[0].action.parameters.display_text must be at most 20"),
        case("carousel card url bad", I_CAROUSEL, vec![Set("/interactive/action/cards/0/action/parameters/url", json!("example.com"))], 131009, "interactive.action.cards[0].action.parameters.url"),
        case("carousel card action missing", I_CAROUSEL, vec![Remove("/interactive/action/cards/0/action")], 131008, "interactive.action.cards[0].action"),
        case("carousel with header", I_CAROUSEL, vec![Set("/interactive/header", json!({"type": "text", "text": "x"}))], 100, "interactive.header is not allowed"),
        case("carousel with footer", I_CAROUSEL, vec![Set("/interactive/footer", json!({"text": "x"}))], 100, "interactive.footer is not allowed"),
        case("carousel body missing", I_CAROUSEL, vec![Remove("/interactive/body")], 131008, "interactive.body"),
        case("product carousel different catalogs", I_PRODUCT_CAROUSEL, vec![Set("/interactive/action/cards/1/action/catalog_id", json!("999"))], 100, "interactive.action.cards[1].action.catalog_id"),
        case("product carousel retailer id missing", I_PRODUCT_CAROUSEL, vec![Remove("/interactive/action/cards/1/action/product_retailer_id")], 131008, "interactive.action.cards[1].action.product_retailer_id"),
    ]
}

#[test]
fn violations_answer_with_the_platform_codes() {
    let groups = [
        envelope_cases(),
        mark_read_cases(),
        text_and_media_cases(),
        template_cases(),
        interactive_cases(),
    ];
    let mut failures = Vec::new();
    let mut count = 0;
    for c in groups.into_iter().flatten() {
        count += 1;
        match parse(&c.body, c.flavor) {
            Ok(r) => failures.push(format!("{}: accepted: {r:?}", c.name)),
            Err(e) => {
                if e.code.code() != c.code || !e.details.contains(c.details) {
                    failures.push(format!(
                        "{}: got ({}, {:?}), want ({}, …{:?}…)",
                        c.name,
                        e.code.code(),
                        e.details,
                        c.code,
                        c.details
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {count} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_error_names_a_path_and_never_panics_on_garbage() {
    // Mutating every scalar of every example into each JSON type must yield Ok or a clean error.
    fn paths(v: &Value, prefix: String, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, child) in m {
                    let p = format!("{prefix}/{k}");
                    out.push(p.clone());
                    paths(child, p, out);
                }
            }
            Value::Array(a) => {
                for (i, child) in a.iter().enumerate() {
                    let p = format!("{prefix}/{i}");
                    out.push(p.clone());
                    paths(child, p, out);
                }
            }
            _ => {}
        }
    }
    let replacements = [
        Value::Null,
        json!(true),
        json!(-1),
        json!(1.5),
        json!(""),
        json!("x"),
        json!([]),
        json!({}),
    ];
    for (name, body, _, _) in VALID {
        let base = value(body);
        let mut ps = Vec::new();
        paths(&base, String::new(), &mut ps);
        for p in &ps {
            for r in &replacements {
                let mut v = base.clone();
                *v.pointer_mut(p).expect("path exists") = r.clone();
                if let Err(e) = parse_request(v.to_string().as_bytes(), BodyFlavor::Cloud) {
                    assert!(!e.details.is_empty(), "{name} {p} {r}");
                    assert!(
                        [100, 131008, 131009, 131051, 132018].contains(&e.code.code()),
                        "{name} {p} {r}: {e}"
                    );
                }
            }
        }
    }
}

#[test]
fn deep_nesting_is_rejected_without_overflowing_the_stack() {
    fn nested_carousel(levels: usize) -> String {
        let mut inner = r#"{"type":"body","parameters":[]}"#.to_string();
        for _ in 0..levels {
            inner = format!(
                r#"{{"type":"carousel","cards":[{{"card_index":0,"components":[{inner}]}},{{"card_index":1,"components":[]}}]}}"#
            );
        }
        format!(
            r#"{{"messaging_product":"whatsapp","to":"4915112345678","type":"template",
                "template":{{"name":"t","language":{{"code":"en"}},"components":[{inner}]}}}}"#
        )
    }
    // Runs on a 2 MiB stack, the size of tokio's worker threads.
    let handle = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(|| {
            let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
            let ignored = format!(
                r#"{{"messaging_product":"whatsapp","to":"4915112345678","x":{deep},"text":{{"body":"hi"}}}}"#
            );
            // Unknown fields are skipped iteratively by serde_json: ignored, however deep.
            assert!(parse(&ignored, BodyFlavor::Cloud).is_ok());
            let in_known = ignored.replace(r#""x":"#, r#""context":"#);
            let e = parse(&in_known, BodyFlavor::Cloud).expect_err("wrong type");
            assert_eq!(e.code.code(), 100);
            assert!(e.details.contains("context"), "{}", e.details);

            let e = parse(&nested_carousel(40), BodyFlavor::Cloud).expect_err("too deep");
            assert_eq!(e.code.code(), 100);
            assert!(e.details.contains("not valid JSON"), "{}", e.details);

            // Within the JSON depth limit, a carousel inside a card is a placement error.
            let e = parse(&nested_carousel(30), BodyFlavor::Cloud).expect_err("nested carousel");
            assert_eq!(e.code.code(), 100);
            assert!(e.details.contains("cards[0].components[0].type"), "{}", e.details);
        })
        .expect("thread spawns");
    handle.join().expect("no stack overflow");
}

// ---------------------------------------------------------------------------------------------
// Addressing by business-scoped user id (2026 note §1.6).

fn send_as(body: Value, flavor: BodyFlavor) -> Result<SendMessage, ApiError> {
    match parse_request(body.to_string().as_bytes(), flavor)? {
        Request::Send(s) => Ok(*s),
        Request::MarkRead(_) => panic!("a send"),
    }
}

#[test]
fn recipient_and_to() {
    use mynah_wire::message::Recipient;
    let text = |extra: Value| {
        let mut b =
            json!({ "messaging_product": "whatsapp", "type": "text", "text": { "body": "hi" } });
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    // recipient alone: a BSUID, echoed as input; serialises back as `recipient`.
    let s = send_as(
        text(json!({ "recipient": "DE.1502576394655843" })),
        BodyFlavor::Cloud,
    )
    .unwrap();
    assert_eq!(s.to_input, "DE.1502576394655843");
    assert!(matches!(&s.to, Recipient::User(u) if u.as_str() == "DE.1502576394655843"));
    assert_eq!(s.to.phone(), None);
    let back = serde_json::to_value(&s).unwrap();
    assert_eq!(back["recipient"], "DE.1502576394655843");
    assert!(back.get("to").is_none(), "{back}");
    assert_eq!(send_as(back, BodyFlavor::Cloud).unwrap(), s);
    // A parent BSUID too; recipient_type individual is fine.
    let s = send_as(
        text(json!({ "recipient": "DE.ENT.11815799212886844830", "recipient_type": "individual" })),
        BodyFlavor::Cloud,
    )
    .unwrap();
    assert!(s.to.user_id().is_some_and(|u| u.is_parent()));
    // Both: `to` wins, the response will be a phone send's.
    let s = send_as(
        text(json!({ "to": "+49 151 12345678", "recipient": "DE.1502576394655843" })),
        BodyFlavor::Cloud,
    )
    .unwrap();
    assert_eq!(s.to_input, "+49 151 12345678");
    assert_eq!(s.to.phone().map(|w| w.as_str()), Some("4915112345678"));
    // Neither: 100 "The parameter to is required."
    let e = send_as(text(json!({})), BodyFlavor::Cloud).unwrap_err();
    assert_eq!(
        (e.code.code(), e.details.as_ref()),
        (100, "The parameter to is required.")
    );
    let e = send_as(
        text(json!({ "to": " ", "recipient": "" })),
        BodyFlavor::Cloud,
    )
    .unwrap_err();
    assert_eq!(e.code.code(), 100);
    // A malformed BSUID: 100 naming recipient.
    let e = send_as(
        text(json!({ "recipient": "user.12345" })),
        BodyFlavor::Cloud,
    )
    .unwrap_err();
    assert_eq!(e.code.code(), 100);
    assert!(e.details.contains("recipient"), "{}", e.details);
    // recipient_type other than individual/group: 100.
    let e = send_as(
        text(json!({ "recipient": "DE.1502576394655843", "recipient_type": "business_scoped_user_id" })),
        BodyFlavor::Cloud,
    )
    .unwrap_err();
    assert_eq!(e.code.code(), 100);
    assert!(e.details.contains("recipient_type"), "{}", e.details);
    // A BSUID in `to`: kept apart, for the receiver to decide.
    let s = send_as(
        text(json!({ "to": "DE.1502576394655843" })),
        BodyFlavor::Cloud,
    )
    .unwrap();
    assert!(matches!(&s.to, Recipient::UserInTo(_)));
    assert_eq!(
        send_as(serde_json::to_value(&s).unwrap(), BodyFlavor::Cloud).unwrap(),
        s
    );
    // On-Premises reads `to` only: without it, 131008 as before.
    let mut onprem = text(json!({ "recipient": "DE.1502576394655843" }));
    onprem.as_object_mut().unwrap().remove("messaging_product");
    let e = send_as(onprem, BodyFlavor::OnPrem).unwrap_err();
    assert_eq!(e.code.code(), 131008);
}

#[test]
fn messaging_account_ids() {
    let body = |extra: Value| {
        let mut b: Value = serde_json::from_str(TEXT).unwrap();
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let s = send_as(
        body(json!({ "messaging_account_id": "102290129340398" })),
        BodyFlavor::Cloud,
    )
    .unwrap();
    assert_eq!(s.messaging_account_id.as_deref(), Some("102290129340398"));
    let s = send_as(
        body(json!({ "paid_messaging_account_id": 7 })),
        BodyFlavor::Cloud,
    )
    .unwrap();
    assert_eq!(
        s.messaging_account_id.as_deref(),
        Some("7"),
        "the deprecated alias"
    );
    let s = send_as(
        body(json!({ "messaging_account_id": "1", "paid_messaging_account_id": "2" })),
        BodyFlavor::Cloud,
    )
    .unwrap();
    assert_eq!(
        s.messaging_account_id.as_deref(),
        Some("1"),
        "messaging_account_id wins"
    );
    assert_eq!(
        send_as(serde_json::to_value(&s).unwrap(), BodyFlavor::Cloud).unwrap(),
        s
    );
    let e = send_as(
        body(json!({ "messaging_account_id": "abc" })),
        BodyFlavor::Cloud,
    )
    .unwrap_err();
    assert_eq!(e.code.code(), 100);
    assert!(e.details.contains("messaging_account_id"), "{}", e.details);
}

#[test]
fn marketing_messages_bodies() {
    use mynah_wire::message::{ProductPolicy, parse_marketing};
    let t = json!({ "messaging_product": "whatsapp", "recipient": "DE.1502576394655843", "type": "template",
        "template": { "name": "spring_sale", "language": { "code": "en_US" } },
        "product_policy": "strict", "message_activity_sharing": true });
    let m = parse_marketing(t.to_string().as_bytes()).unwrap();
    assert_eq!(m.product_policy, ProductPolicy::Strict);
    assert_eq!(m.message_activity_sharing, Some(true));
    assert!(!m.bid_spec);
    let e = parse_marketing(TEXT.as_bytes()).unwrap_err();
    assert_eq!(e.code.code(), 100);
    assert!(e.details.contains("template"), "{}", e.details);
    let mut bad = t.clone();
    bad["product_policy"] = json!("SOMETIMES");
    assert_eq!(
        parse_marketing(bad.to_string().as_bytes())
            .unwrap_err()
            .code
            .code(),
        100
    );
}
