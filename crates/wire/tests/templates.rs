//! Table-driven tests of template definitions: creation bodies and their validation (platform spec
//! §7.1–§7.2, §7.6), and the check of template sends against a definition (spec §2.7).

use mynah_wire::error::ErrorCode;
use mynah_wire::message::{
    BodyFlavor, Content, Parameter, ParameterValue, Request, Template, TemplateComponent,
    parse_request,
};
use mynah_wire::template::{
    ButtonKind, Category, ComponentDef, HeaderFormat, OtpType, ParameterFormat, TemplateDefinition,
    parse_create, parse_listed,
};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Valid creation bodies.

/// Spec §7.2's example, verbatim: a named-parameter utility template.
const ORDER_SHIPPED: &str = r#"{
  "name": "order_shipped",
  "language": "en_US",
  "category": "UTILITY",
  "parameter_format": "named",
  "message_send_ttl_seconds": 3600,
  "components": [
    { "type": "HEADER", "format": "TEXT", "text": "Order {{order_id}}",
      "example": { "header_text_named_params": [ { "param_name": "order_id", "example": "A-1001" } ] } },
    { "type": "BODY", "text": "Hi {{first_name}}, your order is on its way and arrives {{eta}}.",
      "example": { "body_text_named_params": [
        { "param_name": "first_name", "example": "Ana" }, { "param_name": "eta", "example": "Friday" } ] } },
    { "type": "FOOTER", "text": "Reply STOP to opt out" },
    { "type": "BUTTONS", "buttons": [
      { "type": "URL", "text": "Track", "url": "https://example.com/track/{{1}}", "example": [ "https://example.com/track/A-1001" ] },
      { "type": "QUICK_REPLY", "text": "Talk to us" } ] }
  ]
}"#;

/// Positional marketing template with an IMAGE header and a quick-reply opt-out.
const SPRING_PROMO: &str = r#"{
  "name": "spring_promo",
  "language": "en_US",
  "category": "MARKETING",
  "components": [
    { "type": "HEADER", "format": "IMAGE", "example": { "header_handle": [ "4::aW1hZ2UvanBlZw==:ARb" ] } },
    { "type": "BODY", "text": "Hello {{1}}, our spring sale starts today: {{2}} off everything in the shop and online.",
      "example": { "body_text": [ [ "Ana", "20%" ] ] } },
    { "type": "FOOTER", "text": "Reply STOP to opt out" },
    { "type": "BUTTONS", "buttons": [ { "type": "QUICK_REPLY", "text": "Stop promotions" } ] }
  ]
}"#;

/// Authentication template with a COPY_CODE OTP button.
const VERIFICATION: &str = r#"{
  "name": "verification_code",
  "language": "en_US",
  "category": "AUTHENTICATION",
  "message_send_ttl_seconds": 600,
  "components": [
    { "type": "BODY", "add_security_recommendation": true },
    { "type": "FOOTER", "code_expiration_minutes": 10 },
    { "type": "BUTTONS", "buttons": [ { "type": "OTP", "otp_type": "COPY_CODE", "text": "Copy code" } ] }
  ]
}"#;

/// Media-card carousel (spec §2.7.4, §7.2).
const CAROUSEL: &str = r#"{
  "name": "spring_carousel",
  "language": "en_US",
  "category": "MARKETING",
  "components": [
    { "type": "BODY", "text": "Hi {{1}}, have a look at this season's favourites from our shop.",
      "example": { "body_text": [ [ "Ana" ] ] } },
    { "type": "CAROUSEL", "cards": [
      { "components": [
        { "type": "HEADER", "format": "IMAGE", "example": { "header_handle": [ "4::a" ] } },
        { "type": "BODY", "text": "Linen shirt, light and cool for the warm days." },
        { "type": "BUTTONS", "buttons": [
          { "type": "QUICK_REPLY", "text": "More like this" },
          { "type": "URL", "text": "Buy", "url": "https://example.com/p/{{1}}", "example": [ "https://example.com/p/1" ] } ] } ] },
      { "components": [
        { "type": "HEADER", "format": "IMAGE", "example": { "header_handle": [ "4::b" ] } },
        { "type": "BODY", "text": "Straw hat, the classic for sunny afternoons." },
        { "type": "BUTTONS", "buttons": [
          { "type": "QUICK_REPLY", "text": "More like this" },
          { "type": "URL", "text": "Buy", "url": "https://example.com/p/{{1}}", "example": [ "https://example.com/p/2" ] } ] } ] }
    ] }
  ]
}"#;

/// Limited-time offer with a coupon code (marketing only).
const OFFER: &str = r#"{
  "name": "spring_offer",
  "language": "de",
  "category": "marketing",
  "components": [
    { "type": "LIMITED_TIME_OFFER", "limited_time_offer": { "text": "Spring deal!", "has_expiration": true } },
    { "type": "BODY", "text": "Good news {{1}}: use the code below for 25% off your next order.",
      "example": { "body_text": [ [ "Ana" ] ] } },
    { "type": "BUTTONS", "buttons": [
      { "type": "COPY_CODE", "example": "SPRING25" },
      { "type": "URL", "text": "Shop now", "url": "https://example.com/shop?c={{1}}", "example": "https://example.com/shop?c=SPRING25" } ] }
  ]
}"#;

/// A body and nothing else: body variables may be 32768 characters long.
const NOTE: &str = r#"{
  "name": "long_note",
  "language": "en_GB",
  "category": "UTILITY",
  "components": [
    { "type": "BODY", "text": "Dear customer, here is the note {{1}} you asked for today.",
      "example": { "body_text": [ [ "text" ] ] } }
  ]
}"#;

/// Lenient spellings: lower-case values, numbers as strings, nulls, unknown fields.
const LENIENT: &str = r#"{
  "name": "lenient_one",
  "language": "pt_BR",
  "category": "utility",
  "parameter_format": "NAMED",
  "message_send_ttl_seconds": "-1",
  "allow_category_change": true,
  "library_template_name": null,
  "something_new": { "x": 1 },
  "components": [
    { "type": "header", "format": "text", "text": "Hello", "example": null },
    { "type": "body", "text": "Hi {{first_name}}, your order is on its way.", "format": null, "buttons": null,
      "example": { "body_text_named_params": [ { "param_name": "first_name", "example": "Ana" } ] } },
    { "type": "Footer", "text": "Thanks", "code_expiration_minutes": null },
    { "type": "buttons", "buttons": [
      { "type": "quick_reply", "text": "Stop", "url": null, "extra": 7 },
      { "type": "phone_number", "text": "Call us", "phone_number": 4915112345678 },
      { "type": "flow", "text": "Book", "flow_id": 123456, "flow_action": "navigate" } ] }
  ]
}"#;

/// The sandbox's default templates (crates/sandbox/src/config.rs) must stay valid.
fn sandbox_defaults() -> Vec<Value> {
    vec![
        json!({
            "name": "hello_world", "language": "en_US", "category": "UTILITY",
            "components": [
                { "type": "HEADER", "format": "TEXT", "text": "Hello World" },
                { "type": "BODY", "text": "Welcome and congratulations!! This message demonstrates your ability to send a WhatsApp message notification from the Cloud API, hosted by Meta. Thank you for taking the time to test with us." },
                { "type": "FOOTER", "text": "WhatsApp Business Platform sample message" }
            ]
        }),
        json!({
            "name": "order_update", "language": "en_US", "category": "UTILITY",
            "components": [
                { "type": "BODY", "text": "Hi {{1}}, thank you for shopping with us. Your order of {{2}} is on its way and arrives on {{3}}. Reply to this message if you have any questions.",
                  "example": { "body_text": [["Ana", "$100.99", "February 25, 2026"]] } }
            ]
        }),
        json!({
            "name": "spring_sale", "language": "en_US", "category": "MARKETING",
            "components": [
                { "type": "BODY", "text": "Spring sale! Everything in the shop is 20% off this week only. Come and have a look before it ends." },
                { "type": "BUTTONS", "buttons": [ { "type": "QUICK_REPLY", "text": "Stop promotions" } ] }
            ]
        }),
        json!({
            "name": "new_arrivals", "language": "en_US", "category": "MARKETING",
            "components": [
                { "type": "HEADER", "format": "IMAGE", "example": { "header_handle": ["4::aW1hZ2UvanBlZw==:ARb"] } },
                { "type": "BODY", "text": "Hello {{1}}, new arrivals are in store this week. Take a look at the picture and visit us soon.",
                  "example": { "body_text": [["Ana"]] } },
                { "type": "BUTTONS", "buttons": [ { "type": "QUICK_REPLY", "text": "Stop promotions" } ] }
            ]
        }),
        json!({
            "name": "verification_code", "language": "en_US", "category": "AUTHENTICATION",
            "message_send_ttl_seconds": 600,
            "components": [
                { "type": "BODY", "add_security_recommendation": true },
                { "type": "FOOTER", "code_expiration_minutes": 10 },
                { "type": "BUTTONS", "buttons": [ { "type": "OTP", "otp_type": "COPY_CODE", "text": "Copy code" } ] }
            ]
        }),
    ]
}

fn create(body: &str) -> TemplateDefinition {
    parse_create(body.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{body}"))
}

#[test]
fn valid_bodies_parse() {
    for (name, body) in [
        ("order_shipped", ORDER_SHIPPED),
        ("spring_promo", SPRING_PROMO),
        ("verification", VERIFICATION),
        ("carousel", CAROUSEL),
        ("offer", OFFER),
        ("note", NOTE),
        ("lenient", LENIENT),
    ] {
        if let Err(e) = parse_create(body.as_bytes()) {
            panic!("{name}: {e}");
        }
    }
    for v in sandbox_defaults() {
        let body = v.to_string();
        if let Err(e) = parse_create(body.as_bytes()) {
            panic!("{}: {e}", v["name"]);
        }
    }
}

#[test]
fn typed_values() {
    let d = create(ORDER_SHIPPED);
    assert_eq!(d.name, "order_shipped");
    assert_eq!(d.language, "en_US");
    assert_eq!(d.category, Category::Utility);
    assert_eq!(d.parameter_format, ParameterFormat::Named);
    assert_eq!(d.message_send_ttl_seconds, Some(3600));
    assert_eq!(d.ttl_seconds(), 3600);
    assert_eq!(d.components.len(), 4);
    assert_eq!(d.header_variables(), vec!["order_id"]);
    assert_eq!(d.body_variables(), vec!["first_name", "eta"]);
    assert_eq!(d.button_variables(), vec![1, 0]);
    assert_eq!(d.buttons()[0].kind, ButtonKind::Url);
    assert!(d.buttons()[0].is_dynamic_url());
    assert_eq!(
        d.footer().and_then(|f| f.text.as_deref()),
        Some("Reply STOP to opt out")
    );

    let p = create(SPRING_PROMO);
    assert_eq!(p.parameter_format, ParameterFormat::Positional);
    assert_eq!(p.header().map(|h| h.format), Some(HeaderFormat::Image));
    assert_eq!(p.header_variables(), Vec::<String>::new());
    assert_eq!(p.body_variables(), vec!["1", "2"]);
    assert_eq!(p.ttl_seconds(), 2_592_000);

    let a = create(VERIFICATION);
    assert_eq!(a.category, Category::Authentication);
    assert_eq!(a.body_variables(), vec!["1"]);
    assert_eq!(a.buttons()[0].otp_type, Some(OtpType::CopyCode));
    assert_eq!(
        a.body_text(),
        Some("*{{1}}* is your verification code. For your security, do not share this code.")
    );
    assert_eq!(a.ttl_seconds(), 600);

    let c = create(CAROUSEL);
    let cards = c.cards().expect("cards");
    assert_eq!(cards.len(), 2);
    assert_eq!(c.body_variables(), vec!["1"]);

    let o = create(OFFER);
    assert_eq!(o.category, Category::Marketing);
    assert!(o.limited_time_offer().is_some_and(|l| l.has_expiration));
    assert_eq!(o.button_variables(), vec![1, 1]);

    let l = create(LENIENT);
    assert_eq!(l.category, Category::Utility);
    assert_eq!(l.parameter_format, ParameterFormat::Named);
    assert_eq!(l.message_send_ttl_seconds, Some(-1));
    assert_eq!(l.ttl_seconds(), 2_592_000);
    assert_eq!(
        l.buttons()[1].phone_number.as_deref(),
        Some("4915112345678")
    );
    assert_eq!(l.buttons()[2].flow_id.as_deref(), Some("123456"));
    assert!(matches!(&l.components[0], ComponentDef::Header(h) if h.format == HeaderFormat::Text));
}

#[test]
fn categories() {
    assert_eq!(
        Category::from_name(" marketing "),
        Some(Category::Marketing)
    );
    assert_eq!("Utility".parse::<Category>().ok(), Some(Category::Utility));
    assert!("service".parse::<Category>().is_err());
    assert_eq!(Category::Authentication.as_str(), "AUTHENTICATION");
    assert_eq!(Category::Authentication.lower(), "authentication");
    assert_eq!(Category::Authentication.ttl_range(), (30, 900));
    assert_eq!(Category::Utility.ttl_range(), (30, 43_200));
    assert_eq!(Category::Marketing.ttl_range(), (43_200, 2_592_000));
    assert_eq!(Category::Authentication.default_ttl_seconds(), 600);
    assert_eq!(Category::Utility.default_ttl_seconds(), 2_592_000);
    assert_eq!(Category::Marketing.default_ttl_seconds(), 2_592_000);
    assert_eq!(
        serde_json::to_value(Category::Utility).unwrap(),
        json!("UTILITY")
    );
    assert_eq!(
        serde_json::from_value::<Category>(json!("authentication")).unwrap(),
        Category::Authentication
    );
    assert_eq!(ParameterFormat::default(), ParameterFormat::Positional);
    assert_eq!(
        serde_json::to_value(ParameterFormat::Named).unwrap(),
        json!("named")
    );
}

#[test]
fn definitions_round_trip() {
    for body in [
        ORDER_SHIPPED,
        SPRING_PROMO,
        VERIFICATION,
        CAROUSEL,
        OFFER,
        NOTE,
        LENIENT,
    ] {
        let d = create(body);
        // Serialize → creation body → the same definition.
        let again = parse_create(&serde_json::to_vec(&d).unwrap()).unwrap();
        assert_eq!(again, d);
        // Deserialize (storage) → the same definition.
        let stored: TemplateDefinition =
            serde_json::from_value(serde_json::to_value(&d).unwrap()).unwrap();
        assert_eq!(stored, d);
        // Listing components → creation body (how edits re-validate) → the same definition.
        let listed = json!({
            "name": d.name, "language": d.language, "category": d.category,
            "parameter_format": d.parameter_format,
            "message_send_ttl_seconds": d.message_send_ttl_seconds,
            "components": d.components_json(),
        });
        let relisted = parse_create(listed.to_string().as_bytes()).unwrap();
        assert_eq!(relisted, d, "{}", d.name);
    }
}

#[test]
fn components_json_is_the_listing_shape() {
    let d = create(ORDER_SHIPPED);
    let v = d.components_json();
    assert_eq!(v[0]["type"], "HEADER");
    assert_eq!(v[0]["format"], "TEXT");
    assert_eq!(v[0]["text"], "Order {{order_id}}");
    assert_eq!(v[1]["type"], "BODY");
    assert_eq!(
        v[2],
        json!({ "type": "FOOTER", "text": "Reply STOP to opt out" })
    );
    assert_eq!(
        v[3],
        json!({ "type": "BUTTONS", "buttons": [
            { "type": "URL", "text": "Track", "url": "https://example.com/track/{{1}}", "example": [ "https://example.com/track/A-1001" ] },
            { "type": "QUICK_REPLY", "text": "Talk to us" } ] })
    );
    // Authentication templates list the platform's text.
    let a = create(VERIFICATION).components_json();
    assert_eq!(
        a[0],
        json!({ "type": "BODY", "add_security_recommendation": true,
            "text": "*{{1}}* is your verification code. For your security, do not share this code." })
    );
    assert_eq!(
        a[1],
        json!({ "type": "FOOTER", "code_expiration_minutes": 10, "text": "This code expires in 10 minutes." })
    );
    assert_eq!(
        a[2],
        json!({ "type": "BUTTONS", "buttons": [ { "type": "OTP", "text": "Copy code", "otp_type": "COPY_CODE" } ] })
    );
    let o = create(OFFER).components_json();
    assert_eq!(
        o[0],
        json!({ "type": "LIMITED_TIME_OFFER", "limited_time_offer": { "text": "Spring deal!", "has_expiration": true } })
    );
    let c = create(CAROUSEL).components_json();
    assert_eq!(c[1]["type"], "CAROUSEL");
    assert_eq!(c[1]["cards"][0]["components"][0]["format"], "IMAGE");
}

#[test]
fn authentication_text_given_is_dropped() {
    let body = apply(
        VERIFICATION,
        vec![
            Set("/components/0/text", json!("Your code is {{1}}.")),
            Set("/components/1/text", json!("Expires soon.")),
        ],
    );
    assert_eq!(create(&body), create(VERIFICATION));
}

#[test]
fn new_error_rows_render() {
    let e = mynah_wire::ApiError::new(ErrorCode::TemplateFieldTooLong);
    let v = serde_json::to_value(e.to_graph("t")).unwrap();
    assert_eq!(v["error"]["code"], 2_388_040);
    assert_eq!(
        v["error"]["message"],
        "(#2388040) Message template field too long"
    );
    assert_eq!(e.http_status(), 400);
    for code in [
        2_388_019, 2_388_040, 2_388_047, 2_388_072, 2_388_073, 2_388_293, 2_388_299,
    ] {
        assert!(ErrorCode::from_code(code).is_some(), "{code}");
    }
}

// ---------------------------------------------------------------------------------------------
// JSON edits.

enum Op {
    /// Sets the value at a JSON pointer (creating the last key, or appending at `len`).
    Set(&'static str, Value),
    /// Removes the value at a JSON pointer.
    Remove(&'static str),
}

use Op::{Remove, Set};

fn apply(base: &str, ops: Vec<Op>) -> String {
    let mut v: Value = serde_json::from_str(base).expect("base is JSON");
    for op in ops {
        let (ptr, new) = match op {
            Set(p, n) => (p, Some(n)),
            Remove(p) => (p, None),
        };
        let i = ptr.rfind('/').expect("pointer has a slash");
        let (parent, last) = (&ptr[..i], &ptr[i + 1..]);
        match (
            v.pointer_mut(parent)
                .unwrap_or_else(|| panic!("no {parent}")),
            new,
        ) {
            (Value::Object(m), Some(n)) => {
                m.insert(last.to_string(), n);
            }
            (Value::Object(m), None) => {
                m.remove(last).unwrap_or_else(|| panic!("no {ptr}"));
            }
            (Value::Array(a), Some(n)) => {
                let i: usize = last.parse().expect("index");
                if i == a.len() {
                    a.push(n);
                } else {
                    a[i] = n;
                }
            }
            (Value::Array(a), None) => {
                a.remove(last.parse().expect("index"));
            }
            (other, _) => panic!("cannot edit {other}"),
        }
    }
    v.to_string()
}

fn qr(text: &str) -> Value {
    json!({ "type": "QUICK_REPLY", "text": text })
}

fn url(u: &str) -> Value {
    json!({ "type": "URL", "text": "Open", "url": u })
}

fn card(format: &str, body: &str) -> Value {
    json!({ "components": [
        { "type": "HEADER", "format": format, "example": { "header_handle": [ "4::x" ] } },
        { "type": "BODY", "text": body },
        { "type": "BUTTONS", "buttons": [ qr("More"), { "type": "URL", "text": "Buy", "url": "https://example.com/p/{{1}}", "example": [ "https://example.com/p/1" ] } ] } ] })
}

// ---------------------------------------------------------------------------------------------
// Creation violations: (name, body, code, substring of details).

struct Case {
    name: &'static str,
    body: String,
    code: u32,
    details: &'static str,
}

fn case(name: &'static str, base: &str, ops: Vec<Op>, code: u32, details: &'static str) -> Case {
    Case {
        name,
        body: apply(base, ops),
        code,
        details,
    }
}

fn raw(name: &'static str, body: &str, code: u32, details: &'static str) -> Case {
    Case {
        name,
        body: body.to_string(),
        code,
        details,
    }
}

fn top_level_cases() -> Vec<Case> {
    vec![
        raw("not json", "{", 100, "not valid JSON"),
        raw("array body", "[]", 100, "expected a JSON object"),
        case(
            "name missing",
            ORDER_SHIPPED,
            vec![Remove("/name")],
            131008,
            "The parameter name is required.",
        ),
        case(
            "name null",
            ORDER_SHIPPED,
            vec![Set("/name", Value::Null)],
            131008,
            "parameter name",
        ),
        case(
            "name blank",
            ORDER_SHIPPED,
            vec![Set("/name", json!("  "))],
            131008,
            "parameter name",
        ),
        case(
            "name wrong type",
            ORDER_SHIPPED,
            vec![Set("/name", json!(7))],
            100,
            "Param name is not valid: invalid type",
        ),
        case(
            "name upper case",
            ORDER_SHIPPED,
            vec![Set("/name", json!("Order_Shipped"))],
            100,
            "Param name can only contain lowercase letters, digits and underscores",
        ),
        case(
            "name with hyphen",
            ORDER_SHIPPED,
            vec![Set("/name", json!("order-shipped"))],
            100,
            "Param name can only contain",
        ),
        case(
            "name too long",
            ORDER_SHIPPED,
            vec![Set("/name", json!("a".repeat(513)))],
            100,
            "Param name must be at most 512 characters long.",
        ),
        case(
            "language missing",
            ORDER_SHIPPED,
            vec![Remove("/language")],
            131008,
            "The parameter language is required.",
        ),
        case(
            "language not a locale",
            ORDER_SHIPPED,
            vec![Set("/language", json!("english"))],
            100,
            "Param language must be a locale",
        ),
        case(
            "language with hyphen",
            ORDER_SHIPPED,
            vec![Set("/language", json!("en-US"))],
            100,
            "Param language must be a locale",
        ),
        case(
            "category missing",
            ORDER_SHIPPED,
            vec![Remove("/category")],
            131008,
            "The parameter category is required.",
        ),
        case(
            "category unknown",
            ORDER_SHIPPED,
            vec![Set("/category", json!("TRANSACTIONAL"))],
            100,
            "Param category must be one of {MARKETING, UTILITY, AUTHENTICATION}",
        ),
        case(
            "parameter_format unknown",
            ORDER_SHIPPED,
            vec![Set("/parameter_format", json!("numbered"))],
            100,
            "Param parameter_format must be one of {positional, named}",
        ),
        case(
            "ttl utility too long",
            ORDER_SHIPPED,
            vec![Set("/message_send_ttl_seconds", json!(50_000))],
            100,
            "Param message_send_ttl_seconds must be between 30 and 43200 (or -1 for 30 days) for UTILITY templates, got 50000.",
        ),
        case(
            "ttl utility too short",
            ORDER_SHIPPED,
            vec![Set("/message_send_ttl_seconds", json!(29))],
            100,
            "between 30 and 43200",
        ),
        case(
            "ttl marketing too short",
            SPRING_PROMO,
            vec![Set("/message_send_ttl_seconds", json!(3600))],
            100,
            "must be between 43200 and 2592000 for MARKETING templates",
        ),
        case(
            "ttl marketing -1",
            SPRING_PROMO,
            vec![Set("/message_send_ttl_seconds", json!(-1))],
            100,
            "for MARKETING templates, got -1",
        ),
        case(
            "ttl auth too long",
            VERIFICATION,
            vec![Set("/message_send_ttl_seconds", json!(901))],
            100,
            "between 30 and 900 (or -1 for 30 days) for AUTHENTICATION",
        ),
        case(
            "ttl not an integer",
            ORDER_SHIPPED,
            vec![Set("/message_send_ttl_seconds", json!("soon"))],
            100,
            "Param message_send_ttl_seconds must be an integer.",
        ),
        case(
            "components missing",
            ORDER_SHIPPED,
            vec![Remove("/components")],
            131008,
            "The parameter components is required.",
        ),
        case(
            "components empty",
            ORDER_SHIPPED,
            vec![Set("/components", json!([]))],
            131008,
            "must contain a BODY component",
        ),
        case(
            "no body",
            ORDER_SHIPPED,
            vec![Remove("/components/1")],
            131008,
            "must contain a BODY component",
        ),
        case(
            "two bodies",
            SPRING_PROMO,
            vec![Set(
                "/components/4",
                json!({ "type": "BODY", "text": "Another body" }),
            )],
            100,
            "Param components[4] repeats the BODY component of components[1]",
        ),
        case(
            "two footers",
            SPRING_PROMO,
            vec![Set(
                "/components/4",
                json!({ "type": "FOOTER", "text": "x" }),
            )],
            100,
            "repeats the FOOTER",
        ),
        case(
            "component type missing",
            ORDER_SHIPPED,
            vec![Remove("/components/2/type")],
            131008,
            "The parameter components[2].type is required.",
        ),
        case(
            "component type unknown",
            ORDER_SHIPPED,
            vec![Set("/components/2/type", json!("SIDEBAR"))],
            100,
            "Param components[2].type must be one of {HEADER, BODY, FOOTER, BUTTONS, LIMITED_TIME_OFFER, CAROUSEL}",
        ),
        case(
            "component text wrong type",
            ORDER_SHIPPED,
            vec![Set("/components/2/text", json!(5))],
            100,
            "Param components[2].text is not valid",
        ),
    ]
}

fn header_cases() -> Vec<Case> {
    vec![
        case(
            "header format missing",
            ORDER_SHIPPED,
            vec![Remove("/components/0/format")],
            131008,
            "components[0].format",
        ),
        case(
            "header format unknown",
            ORDER_SHIPPED,
            vec![Set("/components/0/format", json!("GIF"))],
            2388047,
            "Param components[0].format must be one of",
        ),
        case(
            "header product outside a carousel",
            SPRING_PROMO,
            vec![Set("/components/0/format", json!("PRODUCT"))],
            2388047,
            "components[0].format",
        ),
        case(
            "header text missing",
            ORDER_SHIPPED,
            vec![Remove("/components/0/text")],
            131008,
            "components[0].text",
        ),
        case(
            "header text too long",
            ORDER_SHIPPED,
            vec![Set(
                "/components/0/text",
                json!(format!("Order {{{{order_id}}}} {}", "x".repeat(50))),
            )],
            2388040,
            "Param components[0].text must be at most 60 characters long",
        ),
        case(
            "header two variables",
            ORDER_SHIPPED,
            vec![Set(
                "/components/0/text",
                json!("Order {{order_id}} {{eta}}"),
            )],
            2388047,
            "can contain at most one variable, got 2",
        ),
        case(
            "header unclosed variable",
            ORDER_SHIPPED,
            vec![Set("/components/0/text", json!("Order {{order_id"))],
            2388047,
            "not closed",
        ),
        case(
            "named header variable badly named",
            ORDER_SHIPPED,
            vec![Set("/components/0/text", json!("Order {{OrderId}}"))],
            2388047,
            "{{OrderId}}",
        ),
        case(
            "named header example missing",
            ORDER_SHIPPED,
            vec![Remove("/components/0/example")],
            100,
            "components[0].example.header_text_named_params",
        ),
        case(
            "named header example wrong name",
            ORDER_SHIPPED,
            vec![Set(
                "/components/0/example/header_text_named_params/0/param_name",
                json!("order"),
            )],
            100,
            "\"order\" is not a variable",
        ),
        case(
            "positional header not {{1}}",
            SPRING_PROMO,
            vec![Set(
                "/components/0",
                json!({ "type": "HEADER", "format": "TEXT", "text": "Hi {{2}}", "example": { "header_text": ["Ana"] } }),
            )],
            2388047,
            "must be {{1}}",
        ),
        case(
            "positional header example missing",
            SPRING_PROMO,
            vec![Set(
                "/components/0",
                json!({ "type": "HEADER", "format": "TEXT", "text": "Hi {{1}}" }),
            )],
            100,
            "components[0].example.header_text must give an example value",
        ),
        case(
            "positional header example count",
            SPRING_PROMO,
            vec![Set(
                "/components/0",
                json!({ "type": "HEADER", "format": "TEXT", "text": "Hi {{1}}", "example": { "header_text": ["Ana", "Bo"] } }),
            )],
            100,
            "has 2 example values, but the text has 1 variable",
        ),
        case(
            "authentication header",
            VERIFICATION,
            vec![Set(
                "/components/3",
                json!({ "type": "HEADER", "format": "IMAGE" }),
            )],
            2388047,
            "AUTHENTICATION templates cannot have a header",
        ),
    ]
}

fn body_cases() -> Vec<Case> {
    vec![
        case(
            "body text missing",
            SPRING_PROMO,
            vec![Remove("/components/1/text")],
            131008,
            "The parameter components[1].text is required.",
        ),
        case(
            "body text too long",
            SPRING_PROMO,
            vec![Set(
                "/components/1/text",
                json!(format!(
                    "Hello {{{{1}}}}, {{{{2}}}} off. {}",
                    "word ".repeat(210)
                )),
            )],
            2388040,
            "Param components[1].text must be at most 1024 characters long",
        ),
        case(
            "positional gap",
            SPRING_PROMO,
            vec![Set(
                "/components/1/text",
                json!(
                    "Hello {{1}}, our spring sale starts today: {{3}} off everything in the shop."
                ),
            )],
            2388072,
            "must number its variables {{1}} to {{2}} without gaps",
        ),
        case(
            "positional named variable",
            SPRING_PROMO,
            vec![Set(
                "/components/1/text",
                json!("Hello {{name}}, our spring sale starts today: {{2}} off everything."),
            )],
            2388072,
            "has the variable {{name}}; positional variables must be numbered",
        ),
        case(
            "positional zero",
            SPRING_PROMO,
            vec![Set(
                "/components/1/text",
                json!("Hello {{0}}, our spring sale starts today: {{1}} off everything."),
            )],
            2388072,
            "{{0}}",
        ),
        case(
            "named positional variable",
            ORDER_SHIPPED,
            vec![Set(
                "/components/1/text",
                json!("Hi {{1}}, your order is on its way and arrives {{eta}}."),
            )],
            2388072,
            "has the variable {{1}}; named variables must be named with lowercase letters and underscores",
        ),
        case(
            "named upper case variable",
            ORDER_SHIPPED,
            vec![Set(
                "/components/1/text",
                json!("Hi {{First_name}}, your order is on its way and arrives {{eta}}."),
            )],
            2388072,
            "{{First_name}}",
        ),
        case(
            "unclosed variable",
            SPRING_PROMO,
            vec![Set(
                "/components/1/text",
                json!("Hello {{1}}, our spring sale starts today: {{2 off everything."),
            )],
            2388072,
            "not closed",
        ),
        case(
            "variable at start",
            SPRING_PROMO,
            vec![Set(
                "/components/1/text",
                json!("{{1}}, our spring sale starts today: {{2}} off everything in the shop."),
            )],
            2388299,
            "Param components[1].text cannot start or end with a variable.",
        ),
        case(
            "variable at end",
            SPRING_PROMO,
            vec![Set(
                "/components/1/text",
                json!("Hello {{1}}, our spring sale starts today with discounts of {{2}}"),
            )],
            2388299,
            "cannot start or end with a variable",
        ),
        case(
            "too many variables",
            SPRING_PROMO,
            vec![
                Set("/components/1/text", json!("Hi {{1}} {{2}} ok")),
                Set("/components/1/example/body_text", json!([["a", "b"]])),
            ],
            2388293,
            "has 2 variables in 4 words; at most one variable per 3 words",
        ),
        case(
            "positional example missing",
            SPRING_PROMO,
            vec![Remove("/components/1/example")],
            100,
            "Param components[1].example.body_text must give an example value for each of the 2 variables",
        ),
        case(
            "positional example flat",
            SPRING_PROMO,
            vec![Set(
                "/components/1/example/body_text",
                json!(["Ana", "20%"]),
            )],
            100,
            "example.body_text must give an example value",
        ),
        case(
            "positional example count",
            SPRING_PROMO,
            vec![Set("/components/1/example/body_text", json!([["Ana"]]))],
            100,
            "has 1 example value, but the text has 2 variables",
        ),
        case(
            "named example missing",
            ORDER_SHIPPED,
            vec![Remove("/components/1/example")],
            100,
            "components[1].example.body_text_named_params must give an example for each of the variables {{first_name}}, {{eta}}",
        ),
        case(
            "named example incomplete",
            ORDER_SHIPPED,
            vec![Remove("/components/1/example/body_text_named_params/1")],
            100,
            "has no example for the variable {{eta}}",
        ),
        case(
            "named example unknown name",
            ORDER_SHIPPED,
            vec![Set(
                "/components/1/example/body_text_named_params/1/param_name",
                json!("when"),
            )],
            100,
            "\"when\" is not a variable of the text",
        ),
        case(
            "named example twice",
            ORDER_SHIPPED,
            vec![Set(
                "/components/1/example/body_text_named_params/1/param_name",
                json!("first_name"),
            )],
            100,
            "appears more than once",
        ),
        case(
            "named example without value",
            ORDER_SHIPPED,
            vec![Remove(
                "/components/1/example/body_text_named_params/1/example",
            )],
            100,
            "must be an object with param_name and example",
        ),
    ]
}

fn footer_cases() -> Vec<Case> {
    vec![
        case(
            "footer text missing",
            SPRING_PROMO,
            vec![Remove("/components/2/text")],
            131008,
            "components[2].text",
        ),
        case(
            "footer too long",
            SPRING_PROMO,
            vec![Set("/components/2/text", json!("x".repeat(61)))],
            2388040,
            "Param components[2].text must be at most 60 characters long, got 61.",
        ),
        case(
            "footer with variable",
            SPRING_PROMO,
            vec![Set("/components/2/text", json!("Reply {{1}} to opt out"))],
            2388073,
            "Param components[2].text cannot contain variables.",
        ),
        case(
            "footer code expiry outside authentication",
            SPRING_PROMO,
            vec![Set("/components/2/code_expiration_minutes", json!(5))],
            100,
            "only allowed in AUTHENTICATION templates",
        ),
        case(
            "authentication code expiry too long",
            VERIFICATION,
            vec![Set("/components/1/code_expiration_minutes", json!(91))],
            100,
            "Param components[1].code_expiration_minutes must be between 1 and 90, got 91.",
        ),
        case(
            "authentication code expiry zero",
            VERIFICATION,
            vec![Set("/components/1/code_expiration_minutes", json!(0))],
            100,
            "between 1 and 90",
        ),
    ]
}

fn button_cases() -> Vec<Case> {
    vec![
        case(
            "buttons missing",
            SPRING_PROMO,
            vec![Remove("/components/3/buttons")],
            131008,
            "The parameter components[3].buttons is required.",
        ),
        case(
            "buttons empty",
            SPRING_PROMO,
            vec![Set("/components/3/buttons", json!([]))],
            100,
            "Param components[3].buttons must contain at least 1 item",
        ),
        case(
            "eleven buttons",
            SPRING_PROMO,
            vec![Set(
                "/components/3/buttons",
                Value::Array((0..11).map(|i| qr(&format!("Option {i}"))).collect()),
            )],
            100,
            "must contain at most 10 items, got 11",
        ),
        case(
            "three URL buttons",
            SPRING_PROMO,
            vec![Set(
                "/components/3/buttons",
                json!([
                    url("https://a.example"),
                    url("https://b.example"),
                    url("https://c.example")
                ]),
            )],
            100,
            "has 3 URL buttons; at most 2 are allowed",
        ),
        case(
            "two phone buttons",
            SPRING_PROMO,
            vec![Set(
                "/components/3/buttons",
                json!([
            { "type": "PHONE_NUMBER", "text": "Call", "phone_number": "+4915112345678" },
            { "type": "PHONE_NUMBER", "text": "Call", "phone_number": "+4915112345679" }]),
            )],
            100,
            "has 2 PHONE_NUMBER buttons; at most 1 is allowed",
        ),
        case(
            "two copy-code buttons",
            SPRING_PROMO,
            vec![Set(
                "/components/3/buttons",
                json!([{ "type": "COPY_CODE", "example": "A" }, { "type": "COPY_CODE", "example": "B" }]),
            )],
            100,
            "COPY_CODE buttons; at most 1",
        ),
        case(
            "quick replies split",
            SPRING_PROMO,
            vec![Set(
                "/components/3/buttons",
                json!([qr("Yes"), url("https://example.com"), qr("No")]),
            )],
            100,
            "invalid combination of buttons",
        ),
        case(
            "button type missing",
            SPRING_PROMO,
            vec![Remove("/components/3/buttons/0/type")],
            131008,
            "components[3].buttons[0].type",
        ),
        case(
            "button type unknown",
            SPRING_PROMO,
            vec![Set("/components/3/buttons/0/type", json!("LINK"))],
            100,
            "Param components[3].buttons[0].type must be one of {QUICK_REPLY, URL",
        ),
        case(
            "quick reply text missing",
            SPRING_PROMO,
            vec![Remove("/components/3/buttons/0/text")],
            131008,
            "components[3].buttons[0].text",
        ),
        case(
            "quick reply text too long",
            SPRING_PROMO,
            vec![Set("/components/3/buttons/0/text", json!("x".repeat(26)))],
            2388040,
            "Param components[3].buttons[0].text must be at most 25 characters long",
        ),
        case(
            "url missing",
            ORDER_SHIPPED,
            vec![Remove("/components/3/buttons/0/url")],
            131008,
            "components[3].buttons[0].url",
        ),
        case(
            "url too long",
            ORDER_SHIPPED,
            vec![Set(
                "/components/3/buttons/0/url",
                json!(format!("https://example.com/{}", "x".repeat(2000))),
            )],
            2388040,
            "must be at most 2000 characters long",
        ),
        case(
            "url not http",
            ORDER_SHIPPED,
            vec![Set(
                "/components/3/buttons/0/url",
                json!("ftp://example.com/{{1}}"),
            )],
            100,
            "must be an http or https URL",
        ),
        case(
            "url variable in the middle",
            ORDER_SHIPPED,
            vec![Set(
                "/components/3/buttons/0/url",
                json!("https://example.com/{{1}}/track"),
            )],
            100,
            "can contain one variable, {{1}}, and only at its end",
        ),
        case(
            "url variable not 1",
            ORDER_SHIPPED,
            vec![Set(
                "/components/3/buttons/0/url",
                json!("https://example.com/{{2}}"),
            )],
            100,
            "only at its end",
        ),
        case(
            "url two variables",
            ORDER_SHIPPED,
            vec![Set(
                "/components/3/buttons/0/url",
                json!("https://example.com/{{1}}{{1}}"),
            )],
            100,
            "only at its end",
        ),
        case(
            "url example missing",
            ORDER_SHIPPED,
            vec![Remove("/components/3/buttons/0/example")],
            100,
            "components[3].buttons[0].example must give an example URL",
        ),
        case(
            "phone number missing",
            SPRING_PROMO,
            vec![Set(
                "/components/3/buttons/1",
                json!({ "type": "PHONE_NUMBER", "text": "Call" }),
            )],
            131008,
            "components[3].buttons[1].phone_number",
        ),
        case(
            "phone number too long",
            SPRING_PROMO,
            vec![Set(
                "/components/3/buttons/1",
                json!({ "type": "PHONE_NUMBER", "text": "Call", "phone_number": "+49151123456789012345" }),
            )],
            2388040,
            "phone_number must be at most 20 characters long",
        ),
        case(
            "phone number not a number",
            SPRING_PROMO,
            vec![Set(
                "/components/3/buttons/1",
                json!({ "type": "PHONE_NUMBER", "text": "Call", "phone_number": "call me" }),
            )],
            100,
            "must be a phone number",
        ),
        case(
            "copy code example missing",
            OFFER,
            vec![Remove("/components/2/buttons/0/example")],
            100,
            "components[2].buttons[0].example must give the example code",
        ),
        case(
            "copy code example too long",
            OFFER,
            vec![Set(
                "/components/2/buttons/0/example",
                json!("SPRING2025-EXTRA"),
            )],
            2388040,
            "example must be at most 15 characters long, got 16",
        ),
        case(
            "flow without flow",
            SPRING_PROMO,
            vec![Set(
                "/components/3/buttons/1",
                json!({ "type": "FLOW", "text": "Book" }),
            )],
            131008,
            "components[3].buttons[1].flow_id (or flow_name or flow_json)",
        ),
        case(
            "otp outside authentication",
            SPRING_PROMO,
            vec![Set(
                "/components/3/buttons/1",
                json!({ "type": "OTP", "otp_type": "COPY_CODE" }),
            )],
            100,
            "OTP buttons are only allowed in AUTHENTICATION templates",
        ),
    ]
}

fn authentication_cases() -> Vec<Case> {
    vec![
        case(
            "no buttons",
            VERIFICATION,
            vec![Remove("/components/2")],
            131008,
            "BUTTONS component with an OTP button",
        ),
        case(
            "quick reply instead of OTP",
            VERIFICATION,
            vec![Set("/components/2/buttons/0", qr("Copy"))],
            100,
            "AUTHENTICATION templates take only an OTP button",
        ),
        case(
            "two OTP buttons",
            VERIFICATION,
            vec![Set(
                "/components/2/buttons/1",
                json!({ "type": "OTP", "otp_type": "COPY_CODE" }),
            )],
            100,
            "has 2 OTP buttons; at most 1 is allowed",
        ),
        case(
            "otp_type missing",
            VERIFICATION,
            vec![Remove("/components/2/buttons/0/otp_type")],
            131008,
            "components[2].buttons[0].otp_type",
        ),
        case(
            "otp_type unknown",
            VERIFICATION,
            vec![Set("/components/2/buttons/0/otp_type", json!("SMS"))],
            100,
            "Param components[2].buttons[0].otp_type must be one of {COPY_CODE, ONE_TAP, ZERO_TAP}",
        ),
        case(
            "one tap without app",
            VERIFICATION,
            vec![Set("/components/2/buttons/0/otp_type", json!("one_tap"))],
            131008,
            "components[2].buttons[0].supported_apps",
        ),
        case(
            "zero tap without terms",
            VERIFICATION,
            vec![
                Set("/components/2/buttons/0/otp_type", json!("ZERO_TAP")),
                Set(
                    "/components/2/buttons/0/supported_apps",
                    json!([{ "package_name": "com.example", "signature_hash": "K8a/AINcGX7" }]),
                ),
            ],
            100,
            "zero_tap_terms_accepted must be true",
        ),
        case(
            "limited-time offer",
            VERIFICATION,
            vec![Set(
                "/components/3",
                json!({ "type": "LIMITED_TIME_OFFER", "limited_time_offer": { "text": "Deal" } }),
            )],
            100,
            "LIMITED_TIME_OFFER is only allowed in MARKETING templates",
        ),
    ]
}

fn offer_and_carousel_cases() -> Vec<Case> {
    vec![
        case(
            "offer in utility",
            OFFER,
            vec![Set("/category", json!("UTILITY"))],
            100,
            "Param components[0]: LIMITED_TIME_OFFER is only allowed in MARKETING templates.",
        ),
        case(
            "offer text missing",
            OFFER,
            vec![Remove("/components/0/limited_time_offer/text")],
            131008,
            "components[0].limited_time_offer.text",
        ),
        case(
            "offer text too long",
            OFFER,
            vec![Set(
                "/components/0/limited_time_offer/text",
                json!("Spring deal for you"),
            )],
            2388040,
            "limited_time_offer.text must be at most 16 characters long",
        ),
        case(
            "offer object missing",
            OFFER,
            vec![Remove("/components/0/limited_time_offer")],
            131008,
            "components[0].limited_time_offer",
        ),
        case(
            "cards missing",
            CAROUSEL,
            vec![Remove("/components/1/cards")],
            131008,
            "The parameter components[1].cards is required.",
        ),
        case(
            "one card",
            CAROUSEL,
            vec![Remove("/components/1/cards/1")],
            100,
            "Param components[1].cards must contain between 2 and 10 cards, got 1.",
        ),
        case(
            "eleven cards",
            CAROUSEL,
            vec![Set(
                "/components/1/cards",
                Value::Array((0..11).map(|_| card("IMAGE", "A fine product.")).collect()),
            )],
            100,
            "between 2 and 10 cards, got 11",
        ),
        case(
            "card components missing",
            CAROUSEL,
            vec![Remove("/components/1/cards/1/components")],
            131008,
            "components[1].cards[1].components",
        ),
        case(
            "card with three buttons",
            CAROUSEL,
            vec![Set(
                "/components/1/cards/0/components/2/buttons/2",
                qr("Third"),
            )],
            100,
            "Param components[1].cards[0].components[2].buttons must contain at most 2 items, got 3.",
        ),
        case(
            "card body too long",
            CAROUSEL,
            vec![Set(
                "/components/1/cards/1/components/1/text",
                json!("x ".repeat(81)),
            )],
            2388040,
            "components[1].cards[1].components[1].text must be at most 160 characters long",
        ),
        case(
            "cards differ",
            CAROUSEL,
            vec![Set(
                "/components/1/cards/1",
                card("VIDEO", "A fine product."),
            )],
            100,
            "Param components[1].cards[1] must have the same components as components[1].cards[0]",
        ),
        case(
            "card without buttons differs",
            CAROUSEL,
            vec![Remove("/components/1/cards/1/components/2")],
            131008,
            "components[1].cards[1].components must contain a BUTTONS component",
        ),
        case(
            "card without header",
            CAROUSEL,
            vec![Remove("/components/1/cards/0/components/0")],
            131008,
            "components[1].cards[0].components must contain a HEADER component",
        ),
        case(
            "card text header",
            CAROUSEL,
            vec![Set(
                "/components/1/cards/0/components/0",
                json!({ "type": "HEADER", "format": "TEXT", "text": "Hi" }),
            )],
            2388047,
            "must be one of {IMAGE, VIDEO, PRODUCT} here",
        ),
        case(
            "card footer",
            CAROUSEL,
            vec![Set(
                "/components/1/cards/0/components/3",
                json!({ "type": "FOOTER", "text": "x" }),
            )],
            100,
            "FOOTER is not allowed in a carousel card",
        ),
        case(
            "card copy-code button",
            CAROUSEL,
            vec![Set(
                "/components/1/cards/0/components/2/buttons/0",
                json!({ "type": "COPY_CODE", "example": "X" }),
            )],
            100,
            "carousel cards take QUICK_REPLY, URL, PHONE_NUMBER or SPM buttons",
        ),
        case(
            "header beside carousel",
            CAROUSEL,
            vec![Set(
                "/components/2",
                json!({ "type": "HEADER", "format": "IMAGE" }),
            )],
            100,
            "Param components[2] is not allowed beside a CAROUSEL",
        ),
        case(
            "carousel in authentication",
            VERIFICATION,
            vec![Set(
                "/components/3",
                json!({ "type": "CAROUSEL", "cards": [] }),
            )],
            100,
            "CAROUSEL is not allowed in AUTHENTICATION templates",
        ),
    ]
}

#[test]
fn creation_violations_have_the_platform_codes() {
    let mut failures = Vec::new();
    let mut count = 0;
    for c in top_level_cases()
        .into_iter()
        .chain(header_cases())
        .chain(body_cases())
        .chain(footer_cases())
        .chain(button_cases())
        .chain(authentication_cases())
        .chain(offer_and_carousel_cases())
    {
        count += 1;
        match parse_create(c.body.as_bytes()) {
            Ok(_) => failures.push(format!("{}: accepted", c.name)),
            Err(e) => {
                if e.code.code() != c.code || !e.details.contains(c.details) {
                    failures.push(format!(
                        "{}: got {} {:?}, want {} containing {:?}",
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
    assert!(count > 100, "only {count} cases");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn lenient_variants_are_accepted() {
    let ok = [
        apply(
            ORDER_SHIPPED,
            vec![
                Set("/category", json!("utility")),
                Set("/parameter_format", json!("Named")),
            ],
        ),
        apply(
            ORDER_SHIPPED,
            vec![Set("/message_send_ttl_seconds", json!(-1))],
        ),
        apply(
            ORDER_SHIPPED,
            vec![Set("/message_send_ttl_seconds", Value::Null)],
        ),
        apply(
            ORDER_SHIPPED,
            vec![Set(
                "/components/3/buttons/0/example",
                json!("https://example.com/track/A-1001"),
            )],
        ),
        apply(SPRING_PROMO, vec![Remove("/components/0/example")]),
        apply(
            SPRING_PROMO,
            vec![Set("/components/0/format", json!("video"))],
        ),
        apply(
            SPRING_PROMO,
            vec![Set(
                "/components/0",
                json!({ "type": "HEADER", "format": "LOCATION" }),
            )],
        ),
        apply(
            SPRING_PROMO,
            vec![Set(
                "/components/3/buttons",
                json!([qr("A"), qr("B"), url("https://example.com"), { "type": "PHONE_NUMBER", "text": "Call", "phone_number": "+49 151 1234567" }]),
            )],
        ),
        apply(
            SPRING_PROMO,
            vec![Set(
                "/components/3/buttons",
                json!([url("https://example.com"), qr("A"), qr("B")]),
            )],
        ),
        apply(
            SPRING_PROMO,
            vec![Set(
                "/components/1/text",
                json!("Hello {{1}}, {{1}} again: {{2}} off everything in the shop and online."),
            )],
        ),
        apply(
            SPRING_PROMO,
            vec![Set("/components/1/example/body_text", json!([[1, "20%"]]))],
        ),
        apply(
            VERIFICATION,
            vec![Set("/message_send_ttl_seconds", json!(-1))],
        ),
        apply(
            VERIFICATION,
            vec![Set(
                "/components/2/buttons/0",
                json!({ "type": "otp", "otp_type": "one_tap",
            "supported_apps": [{ "package_name": "com.example", "signature_hash": "K8a/AINcGX7" }] }),
            )],
        ),
        apply(
            VERIFICATION,
            vec![Set(
                "/components/2/buttons/0",
                json!({ "type": "OTP", "otp_type": "ZERO_TAP",
            "package_name": "com.example", "signature_hash": "K8a/AINcGX7", "zero_tap_terms_accepted": "true" }),
            )],
        ),
        apply(
            CAROUSEL,
            vec![
                Set("/components/1/type", json!("carousel")),
                Set("/components/1/cards/0/components/0/format", json!("image")),
                Set("/components/1/cards/1/components/0/format", json!("Image")),
            ],
        ),
    ];
    for body in ok {
        if let Err(e) = parse_create(body.as_bytes()) {
            panic!("{e}\n{body}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Sends.

/// Parses a `template` object through the real send parser.
fn send(template: Value) -> Template {
    let body = json!({ "messaging_product": "whatsapp", "to": "4915112345678", "type": "template", "template": template });
    match parse_request(body.to_string().as_bytes(), BodyFlavor::Cloud) {
        Ok(Request::Send(m)) => match m.content {
            Content::Template(t) => t,
            other => panic!("not a template: {other:?}"),
        },
        other => panic!("send did not parse: {other:?}"),
    }
}

fn tpl(name: &str, components: Value) -> Value {
    json!({ "name": name, "language": { "code": "en_US" }, "components": components })
}

fn text(t: &str) -> Value {
    json!({ "type": "text", "text": t })
}

fn named(name: &str, t: &str) -> Value {
    json!({ "type": "text", "parameter_name": name, "text": t })
}

fn image() -> Value {
    json!({ "type": "image", "image": { "id": "1479537139650973" } })
}

fn button(sub_type: &str, index: u8, params: Value) -> Value {
    json!({ "type": "button", "sub_type": sub_type, "index": index.to_string(), "parameters": params })
}

fn shipped_ok() -> Value {
    json!([
        { "type": "header", "parameters": [ named("order_id", "A-1001") ] },
        { "type": "body", "parameters": [ named("eta", "Friday"), named("first_name", "Ana") ] },
        button("url", 0, json!([ text("A-1001") ]))
    ])
}

fn promo_ok() -> Value {
    json!([
        { "type": "header", "parameters": [ image() ] },
        { "type": "body", "parameters": [ text("Ana"), text("20%") ] }
    ])
}

fn auth_ok() -> Value {
    json!([
        { "type": "body", "parameters": [ text("482913") ] },
        button("url", 0, json!([ text("482913") ]))
    ])
}

fn carousel_card(i: u8, header: Value) -> Value {
    json!({ "card_index": i, "components": [
        { "type": "header", "parameters": [ header ] },
        button("quick_reply", 0, json!([ { "type": "payload", "payload": format!("card{i}") } ])),
        button("url", 1, json!([ text(&format!("p/{i}")) ])) ] })
}

fn carousel_ok() -> Value {
    json!([
        { "type": "body", "parameters": [ text("Ana") ] },
        { "type": "carousel", "cards": [ carousel_card(0, image()), carousel_card(1, image()) ] }
    ])
}

fn offer_ok() -> Value {
    json!([
        { "type": "limited_time_offer", "parameters": [ { "type": "limited_time_offer", "limited_time_offer": { "expiration_time_ms": 1_209_600_000 } } ] },
        { "type": "body", "parameters": [ text("Ana") ] },
        button("copy_code", 0, json!([ { "type": "coupon_code", "coupon_code": "SPRING25" } ])),
        button("url", 1, json!([ text("SPRING25") ]))
    ])
}

/// Replaces `components[i]` of a send.
fn with(base: Value, i: usize, c: Value) -> Value {
    let mut v = base;
    if let Some(a) = v.as_array_mut() {
        if i == a.len() {
            a.push(c);
        } else {
            a[i] = c;
        }
    }
    v
}

fn without(base: Value, i: usize) -> Value {
    let mut v = base;
    if let Some(a) = v.as_array_mut() {
        a.remove(i);
    }
    v
}

struct SendCase {
    name: &'static str,
    def: &'static str,
    components: Value,
    /// `None` = accepted.
    want: Option<(u32, String)>,
}

fn ok(name: &'static str, def: &'static str, components: Value) -> SendCase {
    SendCase {
        name,
        def,
        components,
        want: None,
    }
}

fn bad(
    name: &'static str,
    def: &'static str,
    components: Value,
    code: u32,
    details: &str,
) -> SendCase {
    SendCase {
        name,
        def,
        components,
        want: Some((code, details.to_string())),
    }
}

fn send_cases() -> Vec<SendCase> {
    let long = |n: usize| "x".repeat(n);
    vec![
        // Accepted.
        ok("named, all parts", ORDER_SHIPPED, shipped_ok()),
        ok(
            "named, with a quick-reply payload",
            ORDER_SHIPPED,
            with(
                shipped_ok(),
                3,
                button(
                    "quick_reply",
                    1,
                    json!([ { "type": "payload", "payload": "TALK" } ]),
                ),
            ),
        ),
        ok("positional with image header", SPRING_PROMO, promo_ok()),
        ok(
            "positional with currency and date",
            SPRING_PROMO,
            with(
                promo_ok(),
                1,
                json!({ "type": "body", "parameters": [
            { "type": "date_time", "date_time": { "fallback_value": "Friday" } },
            { "type": "currency", "currency": { "fallback_value": "€5", "code": "EUR", "amount_1000": 5000 } } ] }),
            ),
        ),
        ok("authentication", VERIFICATION, auth_ok()),
        ok("carousel", CAROUSEL, carousel_ok()),
        ok("offer", OFFER, offer_ok()),
        ok(
            "body-only long variable",
            NOTE,
            json!([ { "type": "body", "parameters": [ text(&long(30_000)) ] } ]),
        ),
        ok(
            "body-only short variable",
            NOTE,
            json!([ { "type": "body", "parameters": [ text("n-1") ] } ]),
        ),
        // 132000: counts.
        bad(
            "body count",
            SPRING_PROMO,
            with(
                promo_ok(),
                1,
                json!({ "type": "body", "parameters": [ text("Ana") ] }),
            ),
            132000,
            "body: number of localizable_params (1) does not match the expected number of params (2)",
        ),
        bad(
            "body too many",
            SPRING_PROMO,
            with(
                promo_ok(),
                1,
                json!({ "type": "body", "parameters": [ text("a"), text("b"), text("c") ] }),
            ),
            132000,
            "body: number of localizable_params (3) does not match the expected number of params (2)",
        ),
        bad(
            "body missing",
            SPRING_PROMO,
            without(promo_ok(), 1),
            132000,
            "body: number of localizable_params (0) does not match the expected number of params (2)",
        ),
        bad(
            "named body count",
            ORDER_SHIPPED,
            with(
                shipped_ok(),
                1,
                json!({ "type": "body", "parameters": [ named("first_name", "Ana") ] }),
            ),
            132000,
            "body: number of localizable_params (1) does not match the expected number of params (2)",
        ),
        bad(
            "text header missing",
            ORDER_SHIPPED,
            without(shipped_ok(), 0),
            132000,
            "header: number of localizable_params (0) does not match the expected number of params (1)",
        ),
        bad(
            "header on a template without one",
            NOTE,
            json!([ { "type": "header", "parameters": [ text("x") ] }, { "type": "body", "parameters": [ text("n") ] } ]),
            132000,
            "header: number of localizable_params (1) does not match the expected number of params (0)",
        ),
        bad(
            "dynamic url button missing",
            ORDER_SHIPPED,
            without(shipped_ok(), 2),
            132000,
            "button[0]: number of localizable_params (0) does not match the expected number of params (1)",
        ),
        bad(
            "url button without its suffix",
            ORDER_SHIPPED,
            with(shipped_ok(), 2, button("url", 0, json!([]))),
            132000,
            "button[0]: number of localizable_params (0) does not match the expected number of params (1)",
        ),
        bad(
            "quick reply with two payloads",
            ORDER_SHIPPED,
            with(
                shipped_ok(),
                3,
                button(
                    "quick_reply",
                    1,
                    json!([
            { "type": "payload", "payload": "A" }, { "type": "payload", "payload": "B" } ]),
                ),
            ),
            132000,
            "button[1]: number of localizable_params (2) does not match the expected number of params (1)",
        ),
        bad(
            "otp button missing",
            VERIFICATION,
            without(auth_ok(), 1),
            132000,
            "button[0]: number of localizable_params (0) does not match the expected number of params (1)",
        ),
        bad(
            "coupon missing",
            OFFER,
            without(offer_ok(), 2),
            132000,
            "button[0]: number of localizable_params (0)",
        ),
        bad(
            "offer expiry missing",
            OFFER,
            without(offer_ok(), 0),
            132000,
            "limited_time_offer: number of localizable_params (0) does not match the expected number of params (1)",
        ),
        bad(
            "carousel missing",
            CAROUSEL,
            without(carousel_ok(), 1),
            132000,
            "carousel: number of cards (0) does not match the expected number of cards (2)",
        ),
        bad(
            "carousel card count",
            CAROUSEL,
            with(
                carousel_ok(),
                1,
                json!({ "type": "carousel", "cards": [
            carousel_card(0, image()), carousel_card(1, image()), carousel_card(2, image()) ] }),
            ),
            132000,
            "carousel: number of cards (3) does not match the expected number of cards (2)",
        ),
        bad(
            "carousel card url missing",
            CAROUSEL,
            with(
                carousel_ok(),
                1,
                json!({ "type": "carousel", "cards": [
            carousel_card(0, image()),
            { "card_index": 1, "components": [ { "type": "header", "parameters": [ image() ] } ] } ] }),
            ),
            132000,
            "card[1].button[1]: number of localizable_params (0) does not match the expected number of params (1)",
        ),
        bad(
            "carousel card body params",
            CAROUSEL,
            with(
                carousel_ok(),
                1,
                json!({ "type": "carousel", "cards": [
            carousel_card(0, image()),
            { "card_index": 1, "components": [ { "type": "header", "parameters": [ image() ] },
                { "type": "body", "parameters": [ text("x") ] }, button("url", 1, json!([ text("p") ])) ] } ] }),
            ),
            132000,
            "card[1].body: number of localizable_params (1) does not match the expected number of params (0)",
        ),
        // 132012: kinds, names, buttons.
        bad(
            "image header missing",
            SPRING_PROMO,
            without(promo_ok(), 0),
            132012,
            "header: Format mismatch, expected IMAGE, received UNKNOWN",
        ),
        bad(
            "video for an image header",
            SPRING_PROMO,
            with(
                promo_ok(),
                0,
                json!({ "type": "header", "parameters": [
            { "type": "video", "video": { "link": "https://example.com/v.mp4" } } ] }),
            ),
            132012,
            "header: Format mismatch, expected IMAGE, received VIDEO",
        ),
        bad(
            "text for an image header",
            SPRING_PROMO,
            with(
                promo_ok(),
                0,
                json!({ "type": "header", "parameters": [ text("Ana") ] }),
            ),
            132012,
            "header: Format mismatch, expected IMAGE, received TEXT",
        ),
        bad(
            "image for a text header",
            ORDER_SHIPPED,
            with(
                shipped_ok(),
                0,
                json!({ "type": "header", "parameters": [ image() ] }),
            ),
            132012,
            "header: Format mismatch, expected TEXT, received IMAGE",
        ),
        bad(
            "named parameter without a name",
            ORDER_SHIPPED,
            with(
                shipped_ok(),
                1,
                json!({ "type": "body", "parameters": [ text("Ana"), text("Friday") ] }),
            ),
            132012,
            "body: parameter 1 has no parameter_name, but the template uses named parameters ({{first_name}}, {{eta}})",
        ),
        bad(
            "named parameter unknown",
            ORDER_SHIPPED,
            with(
                shipped_ok(),
                1,
                json!({ "type": "body", "parameters": [ named("first_name", "Ana"), named("day", "Friday") ] }),
            ),
            132012,
            "body: parameter_name \"day\" is not a parameter of the template (expected {{first_name}}, {{eta}})",
        ),
        bad(
            "named parameter twice",
            ORDER_SHIPPED,
            with(
                shipped_ok(),
                1,
                json!({ "type": "body", "parameters": [ named("eta", "Ana"), named("eta", "Friday") ] }),
            ),
            132012,
            "body: parameter_name \"eta\" is given more than once",
        ),
        bad(
            "named header wrong name",
            ORDER_SHIPPED,
            with(
                shipped_ok(),
                0,
                json!({ "type": "header", "parameters": [ named("order", "A-1") ] }),
            ),
            132012,
            "header: parameter_name \"order\" is not a parameter",
        ),
        bad(
            "positional parameter with a name",
            SPRING_PROMO,
            with(
                promo_ok(),
                1,
                json!({ "type": "body", "parameters": [ named("a", "Ana"), text("20%") ] }),
            ),
            132012,
            "body: parameter 1 has a parameter_name, but the template uses positional parameters",
        ),
        bad(
            "button sub_type mismatch",
            ORDER_SHIPPED,
            with(
                shipped_ok(),
                2,
                button(
                    "quick_reply",
                    0,
                    json!([ { "type": "payload", "payload": "x" } ]),
                ),
            ),
            132012,
            "button[0]: sub_type quick_reply does not match the template's URL button (expected sub_type url)",
        ),
        bad(
            "button index out of range",
            ORDER_SHIPPED,
            with(
                shipped_ok(),
                3,
                button(
                    "quick_reply",
                    5,
                    json!([ { "type": "payload", "payload": "x" } ]),
                ),
            ),
            132012,
            "button[5]: the template has no button at index 5 (it has 2 buttons)",
        ),
        bad(
            "button on a template without buttons",
            NOTE,
            json!([ { "type": "body", "parameters": [ text("n") ] }, button("quick_reply", 0, json!([])) ]),
            132012,
            "button[0]: the template has no button at index 0 (it has 0 buttons)",
        ),
        bad(
            "otp as copy_code",
            VERIFICATION,
            with(
                auth_ok(),
                1,
                button(
                    "copy_code",
                    0,
                    json!([ { "type": "coupon_code", "coupon_code": "482913" } ]),
                ),
            ),
            132012,
            "button[0]: sub_type copy_code does not match the template's OTP button (expected sub_type url)",
        ),
        bad(
            "offer on a template without one",
            SPRING_PROMO,
            with(
                promo_ok(),
                2,
                json!({ "type": "limited_time_offer", "parameters": [
            { "type": "limited_time_offer", "limited_time_offer": { "expiration_time_ms": 1 } } ] }),
            ),
            132012,
            "limited_time_offer: the template has no limited-time offer",
        ),
        bad(
            "offer expiry absent",
            OFFER,
            with(
                offer_ok(),
                0,
                json!({ "type": "limited_time_offer", "parameters": [
            { "type": "limited_time_offer", "limited_time_offer": {} } ] }),
            ),
            132012,
            "expiration_time_ms is required",
        ),
        bad(
            "carousel on a template without one",
            SPRING_PROMO,
            with(
                promo_ok(),
                2,
                json!({ "type": "carousel", "cards": [ carousel_card(0, image()), carousel_card(1, image()) ] }),
            ),
            132012,
            "carousel: the template has no carousel",
        ),
        bad(
            "carousel card header kind",
            CAROUSEL,
            with(
                carousel_ok(),
                1,
                json!({ "type": "carousel", "cards": [
            carousel_card(0, image()), carousel_card(1, json!({ "type": "video", "video": { "id": "1" } })) ] }),
            ),
            132012,
            "card[1].header: Format mismatch, expected IMAGE, received VIDEO",
        ),
        bad(
            "carousel card index out of range",
            CAROUSEL,
            with(
                carousel_ok(),
                1,
                json!({ "type": "carousel", "cards": [
            carousel_card(0, image()), carousel_card(4, image()) ] }),
            ),
            132012,
            "carousel: card_index 4 is out of range; the template has 2 cards",
        ),
        // 132005: lengths.
        bad(
            "body variable over 1024 with other components",
            SPRING_PROMO,
            with(
                promo_ok(),
                1,
                json!({ "type": "body", "parameters": [ text(&long(1025)), text("20%") ] }),
            ),
            132005,
            "body: parameter 1 is 1025 characters long; a body variable can be at most 1024 when the template has other components",
        ),
        bad(
            "rendered body over 1024",
            SPRING_PROMO,
            with(
                promo_ok(),
                1,
                json!({ "type": "body", "parameters": [ text(&long(500)), text(&long(500)) ] }),
            ),
            132005,
            "body: the text with its parameters is 1077 characters long; at most 1024 are allowed when the template has other components",
        ),
        bad(
            "rendered body-only over 32768",
            NOTE,
            json!([ { "type": "body", "parameters": [ text(&long(32_768)) ] } ]),
            132005,
            "body: the text with its parameters is 32821 characters long; at most 32768 are allowed when the body is the only component",
        ),
        bad(
            "one-time password too long",
            VERIFICATION,
            json!([
            { "type": "body", "parameters": [ text("1234567890123456") ] }, button("url", 0, json!([ text("1234567890123456") ])) ]),
            132005,
            "body: the one-time password is 16 characters long; at most 15 are allowed",
        ),
    ]
}

#[test]
fn sends_are_checked_against_the_definition() {
    let mut failures = Vec::new();
    for c in send_cases() {
        let def = create(c.def);
        let t = send(tpl(&def.name, c.components.clone()));
        let got = def.check_send(&t);
        match (&c.want, got) {
            (None, Ok(())) => {}
            (None, Err(e)) => failures.push(format!("{}: rejected: {e}", c.name)),
            (Some((code, _)), Ok(())) => {
                failures.push(format!("{}: accepted, want {code}", c.name))
            }
            (Some((code, details)), Err(e)) => {
                if e.code.code() != *code || !e.details.contains(details.as_str()) {
                    failures.push(format!(
                        "{}: got {} {:?}, want {code} containing {details:?}",
                        c.name,
                        e.code.code(),
                        e.details
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn header_variable_over_60_is_132005() {
    // The send parser already caps header text parameters at 60; a hand-built send reaches the
    // definition check.
    let def = create(ORDER_SHIPPED);
    let mut t = send(tpl(&def.name, shipped_ok()));
    t.components[0] = TemplateComponent::Header {
        parameters: vec![Parameter {
            name: Some("order_id".to_string()),
            value: ParameterValue::Text("x".repeat(61)),
        }],
    };
    let e = def.check_send(&t).unwrap_err();
    assert_eq!(e.code, ErrorCode::TemplateTextTooLong);
    assert_eq!(
        e.details,
        "header: parameter 1 is 61 characters long; a header variable can be at most 60"
    );
}

#[test]
fn rendering() {
    let def = create(ORDER_SHIPPED);
    let t = send(tpl(&def.name, shipped_ok()));
    assert_eq!(
        def.render_body(&t).as_deref(),
        Some("Hi Ana, your order is on its way and arrives Friday.")
    );
    assert_eq!(def.render_header(&t).as_deref(), Some("Order A-1001"));

    let promo = create(SPRING_PROMO);
    let t = send(tpl(
        &promo.name,
        with(
            promo_ok(),
            1,
            json!({ "type": "body", "parameters": [
        text("Ana"), { "type": "currency", "currency": { "fallback_value": "€5", "code": "EUR", "amount_1000": 5000 } } ] }),
        ),
    ));
    assert_eq!(
        promo.render_body(&t).as_deref(),
        Some("Hello Ana, our spring sale starts today: €5 off everything in the shop and online.")
    );
    assert_eq!(promo.render_header(&t), None);

    // Missing parameters stay as placeholders.
    let t = send(tpl(&promo.name, json!([])));
    assert_eq!(
        promo.render_body(&t).as_deref(),
        Some(
            "Hello {{1}}, our spring sale starts today: {{2}} off everything in the shop and online."
        )
    );

    let auth = create(VERIFICATION);
    let t = send(tpl(&auth.name, auth_ok()));
    assert_eq!(
        auth.render_body(&t).as_deref(),
        Some("*482913* is your verification code. For your security, do not share this code.")
    );
}

#[test]
fn definitions_built_by_hand_never_panic() {
    // Malformed texts in a definition that skipped validation: accessors and checks stay total.
    let mut def = create(SPRING_PROMO);
    if let Some(ComponentDef::Body(b)) = def.components.get_mut(1) {
        b.text = Some("{{ {{1 }} {{x}} {{}} {{2}}".to_string());
    }
    assert!(def.validate().is_err());
    assert_eq!(def.body_variables(), vec!["2"]);
    let t = send(tpl(&def.name, promo_ok()));
    let _ = def.check_send(&t);
    let _ = def.render_body(&t);
    let _ = def.components_json();
}

/// A listed definition (`parse_listed`: no length limits) and its send, built from the body text
/// and the send's body parameters.
fn listed_body(format: &str, text: &str, params: Vec<Value>) -> (TemplateDefinition, Template) {
    let def = json!({ "name": "big", "language": "en_US", "category": "UTILITY",
        "parameter_format": format, "components": [ { "type": "BODY", "text": text } ] });
    let def = parse_listed(def.to_string().as_bytes()).unwrap();
    let t = send(tpl(
        "big",
        json!([ { "type": "body", "parameters": params } ]),
    ));
    (def, t)
}

#[test]
fn long_listed_definitions_are_checked_in_linear_time() {
    // Found running the template_send fuzz target on large hand-made inputs (libFuzzer's inputs
    // stay under 4 KB): with 32,000 distinct named variables in a listed body, one check_send
    // took 53 s, as the variables, the parameter names and the duplicate names were each looked
    // up by a scan of a list. This test took 29 s and 6.5 GB before, under a second after.
    let names: Vec<String> = (0..20_000)
        .map(|i| {
            let (mut i, mut s) = (i + 1, String::new());
            while i > 0 {
                i -= 1;
                s.insert(0, char::from(b'a' + (i % 26) as u8));
                i /= 26;
            }
            s
        })
        .collect();
    let words: Vec<String> = names.iter().map(|n| format!("{{{{{n}}}}} and")).collect();
    let body = format!("Hi {} end", words.join(" "));
    let params = names.iter().map(|n| named(n, "v")).collect();
    let (def, t) = listed_body("named", &body, params);
    assert_eq!(def.body_variables().len(), 20_000);
    // Every check ran: counts, names, lengths, up to the rendered text.
    let e = def.check_send(&t).unwrap_err();
    assert_eq!(
        e.details,
        "body: the text with its parameters is 120006 characters long; at most 32768 are allowed when the body is the only component"
    );

    // One variable repeated 200,000 times with a 32,768-character value: the rendered length is
    // counted, not built (6.5 GB).
    let body = format!("Note {} end", "{{1}} ".repeat(200_000));
    let (def, t) = listed_body("positional", &body, vec![text(&"x".repeat(32_768))]);
    let e = def.check_send(&t).unwrap_err();
    assert_eq!(e.code, ErrorCode::TemplateTextTooLong);
    assert_eq!(
        e.details,
        "body: the text with its parameters is 6553800009 characters long; at most 32768 are allowed when the body is the only component"
    );
}
