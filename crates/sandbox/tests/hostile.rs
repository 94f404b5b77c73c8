//! Hostile input to every route: every platform route of every dialect and every control route
//! gets malformed JSON, the wrong content type, oversized bodies, JSON nested 100,000 deep,
//! invalid UTF-8 and extreme numbers (1e308, -1, 2^63, 2^64, NaN and infinity strings) in every
//! numeric field the sandbox knows. Each answer is a 4xx in the documented shape — the Graph
//! envelope for the platform (the On-Premises `{"meta","errors"}` body for `/v1/messages`), the
//! control API's envelope with its own codes under `/_mynah/` — never a 5xx, and the server
//! answers a normal request afterwards. Then the auth matrix: every platform route with no
//! credential, a wrong one, the other dialect's and the gateway's key gets the dialect's auth
//! error.

mod common;
use common::*;

use mynah_sandbox::config::{DEV_WABA_ID as WABA, LimitProfile};
use reqwest::Method;
use serde_json::{Value, json};

/// Number literals as raw JSON text: past f64, negative, zero, past i32 and u32, 2^62 (times
/// 1,000 past i64), i64's ends and past them, past u64, NaN and infinity as strings, underflow, a
/// fraction.
const NUMBERS: &[&str] = &[
    "1e308",
    "-1e308",
    "-1",
    "0",
    "2147483648",
    "4294967296",
    "4611686018427387904",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551616",
    "-9223372036854775808",
    "-9223372036854775809",
    "\"NaN\"",
    "\"Infinity\"",
    "\"-inf\"",
    "1e-400",
    "0.5",
];

/// The same for query strings (plus percent-encoded garbage).
const QUERY_NUMBERS: &[&str] = &[
    "1e308",
    "-1",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551616",
    "NaN",
    "inf",
    "%FF",
    "%00",
    "",
];

const GATEWAY_KEY: &str = "mynah-gateway-key";

#[derive(Clone, Copy, PartialEq, Debug)]
enum Shape {
    /// The Graph envelope with a platform code.
    Graph,
    /// The On-Premises `{"meta", "errors"}` body.
    OnPrem,
    /// The control API's envelope with Mynah's codes.
    Control,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Cred {
    Cloud,
    D360,
    Control,
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    json: Value,
    text: String,
}

async fn hit(
    h: &Harness,
    method: &Method,
    path: &str,
    headers: &[(&str, String)],
    body: Option<Vec<u8>>,
) -> Answer {
    let mut rb = h.http.request(method.clone(), format!("{}{path}", h.base));
    for (k, v) in headers {
        rb = rb.header(*k, v.as_str());
    }
    if let Some(b) = body {
        rb = rb.body(b);
    }
    let r = rb
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: no answer (did the server crash?): {e}"));
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let bytes = r.bytes().await.unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).to_string();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        json,
        text,
    }
}

/// Asserts an error in `shape`; returns its code.
fn error_shape(a: &Answer, shape: Shape, what: &str) -> u64 {
    assert!(
        (400..500).contains(&a.status),
        "{what}: HTTP {} (want a 4xx): {}",
        a.status,
        a.text
    );
    let ct = a
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert_eq!(
        ct, "application/json",
        "{what}: errors are JSON: {}",
        a.text
    );
    match shape {
        Shape::Graph | Shape::Control => {
            let e = &a.json["error"];
            assert_eq!(
                a.json.as_object().map(|o| o.len()),
                Some(1),
                "{what}: {{\"error\": …}} only: {}",
                a.text
            );
            let code = e["code"]
                .as_u64()
                .unwrap_or_else(|| panic!("{what}: code: {}", a.text));
            let message = e["message"].as_str().unwrap_or_default();
            assert!(
                message.starts_with(&format!("(#{code}) ")),
                "{what}: message: {}",
                a.text
            );
            assert_eq!(e["type"], "OAuthException", "{what}: {}", a.text);
            assert_eq!(e["error_data"]["messaging_product"], "whatsapp", "{what}");
            assert!(
                e["error_data"]["details"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty()),
                "{what}: details: {}",
                a.text
            );
            assert!(
                e["fbtrace_id"].as_str().is_some_and(|t| !t.is_empty()),
                "{what}: fbtrace_id"
            );
            let known = mynah_wire::error::ERROR_TABLE
                .iter()
                .any(|r| u64::from(r.code) == code);
            assert!(known, "{what}: code {code} is in the error table");
            if shape == Shape::Control {
                assert!(
                    [4000, 4040, 4080].contains(&code),
                    "{what}: a control API code: {}",
                    a.text
                );
            } else {
                assert!(
                    !(4000..=5000).contains(&code),
                    "{what}: a platform code: {}",
                    a.text
                );
            }
            code
        }
        Shape::OnPrem => {
            assert_eq!(a.json["meta"]["api_status"], "stable", "{what}: {}", a.text);
            let errors = a.json["errors"]
                .as_array()
                .unwrap_or_else(|| panic!("{what}: errors: {}", a.text));
            assert_eq!(errors.len(), 1, "{what}");
            assert!(errors[0]["title"].is_string(), "{what}: {}", a.text);
            assert!(errors[0]["details"].is_string(), "{what}: {}", a.text);
            errors[0]["code"]
                .as_u64()
                .unwrap_or_else(|| panic!("{what}: code: {}", a.text))
        }
    }
}

/// Asserts a 2xx with a JSON body, or an error in `shape`.
fn ok_or_error(a: &Answer, shape: Shape, what: &str) {
    if (200..300).contains(&a.status) {
        assert!(!a.json.is_null(), "{what}: a JSON answer: {}", a.text);
    } else {
        error_shape(a, shape, what);
    }
}

/// Request headers.
type Headers = Vec<(&'static str, String)>;

fn creds(c: Cred) -> Headers {
    match c {
        Cred::Cloud => vec![("authorization", format!("Bearer {TOKEN}"))],
        Cred::D360 => vec![("D360-API-KEY", KEY.to_string())],
        Cred::Control => vec![],
    }
}

fn with(
    mut h: Vec<(&'static str, String)>,
    k: &'static str,
    v: &str,
) -> Vec<(&'static str, String)> {
    h.push((k, v.to_string()));
    h
}

/// A JSON route and the templates of its numeric fields (`@N@` stands for the number).
struct JsonRoute {
    method: Method,
    path: String,
    cred: Cred,
    shape: Shape,
    fields: Vec<&'static str>,
}

/// The JSON battery: malformed, wrong content type, oversized, nested, invalid UTF-8, not an
/// object; then every extreme number in every field.
async fn json_battery(h: &Harness, r: &JsonRoute) {
    let what = |case: &str| format!("{} {} {case}", r.method, r.path);
    let json_headers = with(creds(r.cred), "content-type", "application/json");
    let nested = "[".repeat(100_000).into_bytes();
    let big = format!("{{\"a\": \"{}\"}}", "x".repeat(2 * 1024 * 1024)).into_bytes();
    let refusals: Vec<(&str, Headers, Vec<u8>)> = vec![
        (
            "malformed JSON",
            json_headers.clone(),
            b"{\"messaging_product\": \"whatsapp\", \"to\": ".to_vec(),
        ),
        ("trailing garbage", json_headers.clone(), b"{} {}".to_vec()),
        (
            "wrong content type",
            with(creds(r.cred), "content-type", "text/plain"),
            b"{\"hostile\": 1}".to_vec(),
        ),
        ("oversized", json_headers.clone(), big),
        ("nested 100,000 deep", json_headers.clone(), nested),
        (
            "invalid UTF-8",
            json_headers.clone(),
            b"{\"to\": \"\xff\xfe\xfd\", \"hostile\": \"\xc3\x28\"}".to_vec(),
        ),
    ];
    for (case, headers, body) in refusals {
        let a = hit(h, &r.method, &r.path, &headers, Some(body)).await;
        let is_reset = r.path.ends_with("/reset");
        if case == "wrong content type" && is_reset {
            // Reset takes any content type; the unknown field refuses it.
            error_shape(&a, r.shape, &what(case));
            continue;
        }
        error_shape(&a, r.shape, &what(case));
        if case == "oversized" {
            assert_eq!(a.status, 413, "{}", what(case));
        }
        if case == "wrong content type" {
            assert_eq!(a.status, 415, "{}", what(case));
        }
    }
    if !r.path.ends_with("/reset") {
        for body in ["[]", "null", "\"a string\"", "1e308", "[[[[1]]]]"] {
            let a = hit(h, &r.method, &r.path, &json_headers, Some(body.into())).await;
            ok_or_error(&a, r.shape, &what(&format!("body {body}")));
        }
    }
    for field in &r.fields {
        for n in NUMBERS {
            let body = field.replace("@N@", n);
            let a = hit(
                h,
                &r.method,
                &r.path,
                &json_headers,
                Some(body.clone().into_bytes()),
            )
            .await;
            ok_or_error(&a, r.shape, &what(&body));
        }
    }
    alive(h, &what("battery")).await;
}

/// The server still answers.
async fn alive(h: &Harness, after: &str) {
    let (s, b) = h.control_get("/health").await;
    assert_eq!(s, 200, "after {after}: {b}");
}

/// Hostile queries on a GET (or DELETE) route: `@Q@` in the query stands for each value.
async fn query_battery(h: &Harness, method: Method, path: &str, cred: Cred, shape: Shape) {
    for q in QUERY_NUMBERS {
        let p = path.replace("@Q@", q);
        let a = hit(h, &method, &p, &creds(cred), None).await;
        ok_or_error(&a, shape, &format!("{method} {p}"));
    }
    alive(h, path).await;
}

const TO: &str = "4915123456789";

fn multipart(fields: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let b = "hostile-boundary-x1";
    let mut body = Vec::new();
    for (name, ct, data) in fields {
        body.extend_from_slice(
            format!("--{b}\r\nContent-Disposition: form-data; name=\"{name}\"").as_bytes(),
        );
        if *name == "file" {
            body.extend_from_slice(b"; filename=\"f\"");
        }
        body.extend_from_slice(b"\r\n");
        if let Some(ct) = ct {
            body.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{b}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={b}"), body)
}

async fn media_battery(h: &Harness, path: &str, cred: Cred) {
    let what = |c: &str| format!("POST {path} {c}");
    let send = |ct: String, body: Vec<u8>| {
        let headers = with(creds(cred), "content-type", &ct);
        async move { hit(h, &Method::POST, path, &headers, Some(body)).await }
    };
    let a = send("application/json".into(), b"{}".to_vec()).await;
    error_shape(&a, Shape::Graph, &what("JSON instead of multipart"));
    assert_eq!(a.status, 415);
    let a = send("multipart/form-data".into(), b"--x\r\n".to_vec()).await;
    error_shape(&a, Shape::Graph, &what("no boundary"));
    let a = send(
        "multipart/form-data; boundary=hostile-boundary-x1".into(),
        b"garbage \xff\xfe with no parts".to_vec(),
    )
    .await;
    error_shape(&a, Shape::Graph, &what("garbage"));
    let a = send(
        "multipart/form-data; boundary=hostile-boundary-x1".into(),
        "[".repeat(100_000).into_bytes(),
    )
    .await;
    error_shape(&a, Shape::Graph, &what("nested JSON"));
    let (ct, body) = multipart(&[
        ("messaging_product", None, b"whatsapp"),
        ("file", Some("image/png"), &vec![0u8; 6 * 1024 * 1024]),
    ]);
    let a = send(ct, body).await;
    assert_eq!(error_shape(&a, Shape::Graph, &what("oversized")), 131053);
    let (ct, body) = multipart(&[
        ("messaging_product", None, b"whatsapp"),
        ("type", None, b"image/\xff\xfe"),
        ("file", None, b"x"),
    ]);
    let a = send(ct, body).await;
    error_shape(&a, Shape::Graph, &what("invalid UTF-8 type"));
    let (ct, body) = multipart(&[
        ("messaging_product", None, b"\xc3\x28"),
        ("file", Some("image/png"), b"x"),
    ]);
    let a = send(ct, body).await;
    error_shape(&a, Shape::Graph, &what("invalid UTF-8 product"));
    let long = "a".repeat(10_000);
    let (ct, body) = multipart(&[
        ("messaging_product", None, long.as_bytes()),
        ("file", Some("image/png"), b"x"),
    ]);
    let a = send(ct, body).await;
    error_shape(&a, Shape::Graph, &what("a 10 KB field"));
    for n in NUMBERS {
        let (ct, body) = multipart(&[
            ("messaging_product", None, b"whatsapp"),
            ("type", None, n.as_bytes()),
            ("file", Some("image/png"), b"x"),
        ]);
        let a = send(ct, body).await;
        assert_eq!(
            error_shape(&a, Shape::Graph, &what(&format!("type {n}"))),
            131053
        );
    }
    alive(h, path).await;
}

async fn setup() -> (Receiver, Harness) {
    let rx = Receiver::start().await;
    let mut cfg = config(&rx.url);
    cfg.limits.profile = LimitProfile::Unlimited;
    let h = Harness::start(cfg).await;
    // One delivered attempt, so a wait with any timeout returns at once.
    let wamid = h.send_text(TO, "before").await;
    h.advance(1.0).await;
    h.wait(&format!("wamid={wamid}&status=sent"), 1).await;
    (rx, h)
}

async fn template_id(h: &Harness, name: &str) -> String {
    let (_, t) = h.control_get("/templates").await;
    t["templates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["def"]["name"] == name)
        .and_then(|t| t["id"].as_str())
        .unwrap()
        .to_string()
}

fn message_fields() -> Vec<&'static str> {
    vec![
        r#"{"messaging_product":"whatsapp","to":"4915123456789","type":"location","location":{"latitude":@N@,"longitude":13.4}}"#,
        r#"{"messaging_product":"whatsapp","to":"4915123456789","type":"location","location":{"latitude":52.5,"longitude":@N@}}"#,
        r#"{"messaging_product":"whatsapp","to":@N@,"type":"text","text":{"body":"hi"}}"#,
        r#"{"messaging_product":"whatsapp","to":"4915123456789","type":"text","text":{"body":"hi","preview_url":@N@}}"#,
        r#"{"messaging_product":"whatsapp","to":"4915123456789","type":"text","text":{"body":@N@}}"#,
        r#"{"messaging_product":"whatsapp","to":"4915123456789","type":"template","template":{"name":"order_update","language":{"code":"en_US"},"components":[{"type":"body","parameters":[{"type":"currency","currency":{"fallback_value":"$1","code":"USD","amount_1000":@N@}},{"type":"text","text":"a"},{"type":"text","text":"b"}]}]}}"#,
        r#"{"messaging_product":"whatsapp","to":"4915123456789","type":"template","template":{"name":"order_update","language":{"code":"en_US"},"components":[{"type":"button","sub_type":"quick_reply","index":@N@,"parameters":[{"type":"payload","payload":"x"}]}]}}"#,
        r#"{"messaging_product":"whatsapp","to":"4915123456789","type":"contacts","contacts":[{"name":{"formatted_name":"A"},"birthday":@N@}]}"#,
        r#"{"messaging_product":"whatsapp","to":"4915123456789","type":"reaction","reaction":{"message_id":@N@,"emoji":"👍"}}"#,
        r#"{"messaging_product":"whatsapp","to":"4915123456789","type":"interactive","interactive":{"type":"button","body":{"text":"x"},"action":{"buttons":[{"type":"reply","reply":{"id":@N@,"title":"a"}}]}}}"#,
        r#"{"messaging_product":"whatsapp","status":"read","message_id":@N@}"#,
        r#"{"messaging_product":"whatsapp","to":"4915123456789","type":"image","image":{"id":@N@}}"#,
        r#"{"messaging_product":"whatsapp","to":"4915123456789","type":"text","text":{"body":"hi"},"biz_opaque_callback_data":@N@}"#,
    ]
}

fn template_fields() -> Vec<&'static str> {
    vec![
        r#"{"name":"hostile_ttl","language":"en_US","category":"AUTHENTICATION","message_send_ttl_seconds":@N@,"components":[{"type":"BODY","add_security_recommendation":true}]}"#,
        r#"{"name":"hostile_expiry","language":"en_US","category":"AUTHENTICATION","components":[{"type":"BODY"},{"type":"FOOTER","code_expiration_minutes":@N@}]}"#,
        r#"{"name":"hostile_example","language":"en_US","category":"UTILITY","components":[{"type":"BODY","text":"Hello {{1}}, your order is on its way to you now.","example":{"body_text":[[@N@]]}}]}"#,
        r#"{"name":@N@,"language":"en_US","category":"UTILITY","components":[{"type":"BODY","text":"hello there"}]}"#,
    ]
}

#[tokio::test]
async fn platform_routes_survive_hostile_input() {
    let (_rx, h) = setup().await;
    let media = h.upload_png(b"\x89PNG hostile").await;
    let template = template_id(&h, "order_update").await;

    let mut routes = Vec::new();
    for (path, cred, shape) in [
        (format!("/v23.0/{PNID}/messages"), Cred::Cloud, Shape::Graph),
        ("/messages".to_string(), Cred::D360, Shape::Graph),
        ("/v1/messages".to_string(), Cred::D360, Shape::OnPrem),
        ("/v1/messages".to_string(), Cred::Cloud, Shape::OnPrem),
    ] {
        routes.push(JsonRoute {
            method: Method::POST,
            path,
            cred,
            shape,
            fields: message_fields(),
        });
    }
    routes.push(JsonRoute {
        method: Method::POST,
        path: format!("/v23.0/{WABA}/message_templates"),
        cred: Cred::Cloud,
        shape: Shape::Graph,
        fields: template_fields(),
    });
    routes.push(JsonRoute {
        method: Method::POST,
        path: "/v1/configs/templates".to_string(),
        cred: Cred::D360,
        shape: Shape::Graph,
        fields: template_fields(),
    });
    routes.push(JsonRoute {
        method: Method::POST,
        path: format!("/v23.0/{template}"),
        cred: Cred::Cloud,
        shape: Shape::Graph,
        fields: vec![
            r#"{"message_send_ttl_seconds":@N@}"#,
            r#"{"category":@N@}"#,
            r#"{"components":[{"type":"BODY","text":@N@}]}"#,
        ],
    });
    routes.push(JsonRoute {
        method: Method::POST,
        path: "/v1/configs/webhook".to_string(),
        cred: Cred::D360,
        shape: Shape::Graph,
        fields: vec![
            r#"{"url":@N@}"#,
            r#"{"url":"http://127.0.0.1:9/x","headers":{"x-a":@N@}}"#,
        ],
    });
    routes.push(JsonRoute {
        method: Method::POST,
        path: format!("/v23.0/{PNID}"),
        cred: Cred::Cloud,
        shape: Shape::Graph,
        fields: vec![r#"{"webhook_configuration":{"override_callback_uri":@N@}}"#],
    });
    for r in &routes {
        json_battery(&h, r).await;
    }
    // The webhook URL may have been changed by an accepted value: back to the receiver.
    h.set_webhook(&_rx.url).await;

    media_battery(&h, "/media", Cred::D360).await;
    media_battery(&h, &format!("/v23.0/{PNID}/media"), Cred::Cloud).await;

    for (method, path, cred) in [
        (
            Method::GET,
            format!("/v23.0/{WABA}/message_templates?limit=@Q@"),
            Cred::Cloud,
        ),
        (
            Method::GET,
            format!("/v23.0/{WABA}/message_templates?after=@Q@"),
            Cred::Cloud,
        ),
        (
            Method::GET,
            format!("/v23.0/{WABA}/message_templates?status=@Q@"),
            Cred::Cloud,
        ),
        (
            Method::GET,
            "/v1/configs/templates?limit=@Q@&offset=@Q@".to_string(),
            Cred::D360,
        ),
        (
            Method::DELETE,
            format!("/v23.0/{WABA}/message_templates?name=nothing_here&hsm_id=@Q@"),
            Cred::Cloud,
        ),
        (
            Method::DELETE,
            "/v1/configs/templates/@Q@".to_string(),
            Cred::D360,
        ),
        (
            Method::GET,
            "/whatsapp_business/attachments/?mid=@Q@&ext=@Q@&hash=@Q@".to_string(),
            Cred::D360,
        ),
        (
            Method::GET,
            format!("/whatsapp_business/attachments/?mid={media}&ext=@Q@&hash=00"),
            Cred::D360,
        ),
        (Method::GET, "/v23.0/@Q@".to_string(), Cred::Cloud),
        (Method::DELETE, "/v23.0/@Q@".to_string(), Cred::Cloud),
        (Method::GET, "/@Q@".to_string(), Cred::D360),
        (Method::POST, "/v23.0/@Q@/unpause".to_string(), Cred::Cloud),
        (Method::GET, "/v@Q@/123/messages".to_string(), Cred::Cloud),
        (
            Method::GET,
            format!("/v23.0/{PNID}?fields=@Q@"),
            Cred::Cloud,
        ),
        (
            Method::GET,
            "/v1/configs/webhook?x=@Q@".to_string(),
            Cred::D360,
        ),
    ] {
        query_battery(&h, method, &path, cred, Shape::Graph).await;
    }
    // A 65-character id and a path of 10,000 segments.
    let a = hit(
        &h,
        &Method::GET,
        &format!("/v23.0/{}", "9".repeat(65)),
        &creds(Cred::Cloud),
        None,
    )
    .await;
    error_shape(&a, Shape::Graph, "a 65-character id");
    let a = hit(
        &h,
        &Method::GET,
        &"/a".repeat(10_000),
        &creds(Cred::D360),
        None,
    )
    .await;
    error_shape(&a, Shape::Graph, "10,000 segments");

    // After all of that, a normal send goes through its lifecycle.
    let wamid = h.send_text(TO, "still here").await;
    h.advance(10.0).await;
    h.wait(&format!("wamid={wamid}&status=delivered"), 1).await;
    h.shutdown().await;
}

#[tokio::test]
async fn control_routes_survive_hostile_input() {
    let (rx, h) = setup().await;
    let template = template_id(&h, "spring_sale").await;
    let user = "/_mynah/users/4915112345678";
    let json_route = |method: Method, path: String, fields: Vec<&'static str>| JsonRoute {
        method,
        path,
        cred: Cred::Control,
        shape: Shape::Control,
        fields,
    };
    let routes = vec![
        json_route(
            Method::POST,
            "/_mynah/clock/advance".into(),
            vec![
                r#"{"seconds":@N@}"#,
                r#"{"ms":@N@}"#,
                r#"{"ms":1,"seconds":@N@}"#,
            ],
        ),
        json_route(
            Method::PATCH,
            "/_mynah/rules".into(),
            vec![
                r#"{"holdout_percent":@N@}"#,
                r#"{"marketing_limit":{"count":@N@,"window_ms":1000}}"#,
                r#"{"marketing_limit":{"count":2,"window_ms":@N@}}"#,
                r#"{"pair_rate":{"every_ms":@N@,"burst":45}}"#,
                r#"{"pair_rate":{"every_ms":6000,"burst":@N@}}"#,
                r#"{"throughput_mps":@N@}"#,
                r#"{"messaging_limit":{"unique_users":@N@}}"#,
                r#"{"messaging_limit":{"unique_users":250,"window_ms":@N@}}"#,
                r#"{"messaging_limit":{"unique_users":250,"code":@N@}}"#,
                r#"{"quality":{"min_signals":@N@}}"#,
                r#"{"quality":{"window_ms":@N@}}"#,
                r#"{"quality":{"yellow_at":@N@}}"#,
                r#"{"quality":{"red_at":@N@}}"#,
                r#"{"quality":{"downgrade_after_ms":@N@}}"#,
                r#"{"quality":{"upgrade_after_ms":@N@}}"#,
                r#"{"pacing":{"threshold":@N@}}"#,
                r#"{"pacing":{"max_hold_ms":@N@}}"#,
                r#"{"pacing":{"min_signals":@N@}}"#,
                r#"{"pacing":{"utility_after_pause_ms":@N@}}"#,
                r#"{"customer_service_window":@N@}"#,
            ],
        ),
        json_route(
            Method::POST,
            "/_mynah/faults".into(),
            vec![
                r#"{"match":{"nth":@N@},"action":{"latency_ms":0}}"#,
                r#"{"match":{"from_ms":@N@},"action":{"latency_ms":0}}"#,
                r#"{"match":{"until_ms":@N@},"action":{"latency_ms":0}}"#,
                r#"{"match":{"probability":@N@},"action":{"latency_ms":0}}"#,
                r#"{"action":{"latency_ms":@N@}}"#,
                r#"{"action":{"answer_delay_ms":@N@}}"#,
                r#"{"match":{"to":"1"},"action":{"code":131000,"http_status":@N@}}"#,
                r#"{"match":{"to":"1"},"action":{"code":@N@}}"#,
                r#"{"match":{"to":"1"},"action":{"async_code":@N@}}"#,
                r#"{"match":{"to":"1"},"action":{"code":131000},"times":@N@}"#,
            ],
        ),
        json_route(
            Method::PATCH,
            user.into(),
            vec![
                r#"{"offline_until":@N@}"#,
                r#"{"offline_for_seconds":@N@}"#,
                r#"{"reactions":{"block":@N@}}"#,
                r#"{"reactions":{"report":@N@}}"#,
                r#"{"reactions":{"ignore":@N@}}"#,
                r#"{"reactions":{"read":@N@}}"#,
                r#"{"reactions":{"reply":@N@}}"#,
                r#"{"on_whatsapp":@N@}"#,
                r#"{"name":@N@}"#,
            ],
        ),
        json_route(
            Method::PUT,
            user.into(),
            vec![r#"{"offline_for_seconds":@N@}"#],
        ),
        json_route(
            Method::POST,
            format!("/_mynah/numbers/{PNID}/quality"),
            vec![r#"{"tier":@N@}"#, r#"{"rating":@N@}"#],
        ),
        json_route(
            Method::POST,
            "/_mynah/numbers".into(),
            vec![
                r#"{"phone_number_id":@N@,"display_phone_number":"15550001234","api_key":"k"}"#,
                r#"{"phone_number_id":"1","display_phone_number":"1","api_key":"k","webhook_url":@N@}"#,
            ],
        ),
        json_route(
            Method::POST,
            "/_mynah/inbound".into(),
            vec![
                r#"{"from":@N@,"type":"text","text":{"body":"x"}}"#,
                r#"{"from":"4915123456789","type":"location","location":{"latitude":@N@,"longitude":1}}"#,
                r#"{"from":"4915123456789","type":"text","text":{"body":@N@}}"#,
            ],
        ),
        json_route(
            Method::POST,
            format!("/_mynah/templates/{template}/quality"),
            vec![r#"{"score":@N@}"#],
        ),
        json_route(
            Method::POST,
            format!("/_mynah/templates/{template}/status"),
            vec![r#"{"status":@N@}"#],
        ),
        json_route(
            Method::POST,
            format!("/_mynah/templates/{template}/verdict"),
            vec![r#"{"status":@N@}"#],
        ),
        json_route(
            Method::POST,
            format!("/_mynah/templates/{template}/pacing"),
            vec![r#"{"verdict":@N@}"#],
        ),
        // The console's routes.
        json_route(
            Method::POST,
            format!("{user}/report"),
            vec![r#"{"phone_number_id":@N@}"#],
        ),
        json_route(
            Method::POST,
            "/_mynah/webhooks/receivers/pause".into(),
            vec![r#"{"url":@N@}"#],
        ),
        json_route(
            Method::POST,
            "/_mynah/webhooks/receivers/resume".into(),
            vec![r#"{"url":@N@}"#],
        ),
        // Template creation and edits answer with the platform's codes (the console shows them
        // by field), in the Graph envelope.
        JsonRoute {
            shape: Shape::Graph,
            ..json_route(
                Method::POST,
                "/_mynah/templates".into(),
                vec![
                    r#"{"name":@N@,"language":"en_US","category":"UTILITY","components":[{"type":"BODY","text":"hello there"}]}"#,
                    r#"{"name":"console_hostile","language":"en_US","category":"UTILITY","components":[{"type":"BODY","text":@N@}]}"#,
                ],
            )
        },
        JsonRoute {
            shape: Shape::Graph,
            ..json_route(
                Method::POST,
                format!("/_mynah/templates/{template}"),
                vec![
                    r#"{"components":@N@}"#,
                    r#"{"category":@N@}"#,
                    r#"{"message_send_ttl_seconds":@N@}"#,
                ],
            )
        },
        // Last: a reset that went through would make the ids above moot.
        json_route(
            Method::POST,
            "/_mynah/reset".into(),
            vec![r#"{"keep_clock":@N@}"#],
        ),
    ];
    for r in &routes {
        json_battery(&h, r).await;
    }
    for path in [
        "/_mynah/messages?limit=@Q@",
        "/_mynah/messages?direction=@Q@",
        "/_mynah/messages?bogus=@Q@",
        "/_mynah/messages?before=@Q@",
        "/_mynah/messages?wa_id=@Q@&before=@Q@",
        "/_mynah/messages?error_code=@Q@",
        "/_mynah/messages?template=@Q@",
        "/_mynah/webhooks/attempts?before_seq=@Q@",
        "/_mynah/templates/@Q@",
        "/_mynah/numbers/@Q@",
        "/_mynah/webhooks/attempts?limit=@Q@",
        "/_mynah/webhooks/attempts?after_seq=@Q@",
        "/_mynah/webhooks/attempts?delivered=@Q@",
        "/_mynah/webhooks/wait?count=@Q@&timeout_ms=1",
        "/_mynah/webhooks/wait?timeout_ms=@Q@",
        "/_mynah/messages/@Q@",
        "/_mynah/messages/@Q@/explain",
        "/_mynah/users/@Q@",
        "/_mynah/@Q@",
    ] {
        query_battery(&h, Method::GET, path, Cred::Control, Shape::Control).await;
    }
    query_battery(
        &h,
        Method::DELETE,
        "/_mynah/faults/@Q@",
        Cred::Control,
        Shape::Control,
    )
    .await;
    for path in [
        "/_mynah/health",
        "/_mynah/clock",
        "/_mynah/users",
        "/_mynah/numbers",
        "/_mynah/templates",
        "/_mynah/rules",
        "/_mynah/faults",
        "/_mynah/magic",
        "/_mynah/errors",
    ] {
        let a = hit(&h, &Method::GET, path, &[], Some(b"\xff{[".to_vec())).await;
        assert_eq!(a.status, 200, "GET {path} ignores a body: {}", a.text);
    }

    // Whatever was accepted goes; a normal send goes through its lifecycle.
    let (s, b) = h.control(Method::DELETE, "/faults", &json!({})).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = h
        .control(Method::POST, "/reset", &json!({ "keep_clock": true }))
        .await;
    assert_eq!(s, 200, "{b}");
    h.set_webhook(&rx.url).await;
    let wamid = h.send_text(TO, "still here").await;
    h.advance(10.0).await;
    h.wait(&format!("wamid={wamid}&status=delivered"), 1).await;
    h.shutdown().await;
}

/// Every platform route × no credential, a wrong one, the other dialect's and the gateway's
/// key → the dialect's auth error (Cloud 401 code 190 with `WWW-Authenticate`; 360dialog 401
/// code 0; On-Premises 401 in its own body).
#[tokio::test]
async fn every_platform_route_checks_its_credential() {
    let (_rx, h) = setup().await;
    let media = h.upload_png(b"\x89PNG auth").await;
    let template = template_id(&h, "hello_world").await;
    let body = Some(serde_json::to_vec(&text(TO, "hi")).unwrap());
    #[derive(Clone, Copy, PartialEq)]
    enum D {
        Cloud,
        D360,
        OnPrem,
        Download,
    }
    let routes: Vec<(Method, String, D)> = vec![
        (Method::POST, format!("/v23.0/{PNID}/messages"), D::Cloud),
        (Method::POST, format!("/v23.0/{PNID}/media"), D::Cloud),
        (Method::POST, format!("/v23.0/{PNID}"), D::Cloud),
        (Method::GET, format!("/v23.0/{PNID}"), D::Cloud),
        (Method::GET, format!("/v23.0/{media}"), D::Cloud),
        (Method::DELETE, format!("/v23.0/{media}"), D::Cloud),
        (Method::GET, format!("/v23.0/{template}"), D::Cloud),
        (Method::POST, format!("/v23.0/{template}"), D::Cloud),
        (Method::POST, format!("/v23.0/{template}/unpause"), D::Cloud),
        (
            Method::GET,
            format!("/v23.0/{WABA}/message_templates"),
            D::Cloud,
        ),
        (
            Method::POST,
            format!("/v23.0/{WABA}/message_templates"),
            D::Cloud,
        ),
        (
            Method::DELETE,
            format!("/v23.0/{WABA}/message_templates?name=hello_world"),
            D::Cloud,
        ),
        (Method::POST, "/messages".into(), D::D360),
        (Method::POST, "/media".into(), D::D360),
        (Method::GET, format!("/{media}"), D::D360),
        (Method::DELETE, format!("/{media}"), D::D360),
        (Method::GET, "/v1/configs/webhook".into(), D::D360),
        (Method::POST, "/v1/configs/webhook".into(), D::D360),
        (Method::GET, "/v1/configs/templates".into(), D::D360),
        (Method::POST, "/v1/configs/templates".into(), D::D360),
        (
            Method::DELETE,
            "/v1/configs/templates/hello_world".into(),
            D::D360,
        ),
        (
            Method::GET,
            format!("/whatsapp_business/attachments/?mid={media}&ext=1&hash=00"),
            D::Download,
        ),
        (Method::POST, "/v1/messages".into(), D::OnPrem),
    ];
    let wrong_token = format!("Bearer wrong-{TOKEN}");
    let gateway_bearer = format!("Bearer {GATEWAY_KEY}");
    let dev_bearer = format!("Bearer {TOKEN}");
    for (method, path, d) in &routes {
        let mut cases: Vec<(&str, Vec<(&str, String)>)> = vec![
            ("no credential", vec![]),
            (
                "gateway key as bearer",
                vec![("authorization", gateway_bearer.clone())],
            ),
            (
                "gateway key as D360-API-KEY",
                vec![("D360-API-KEY", GATEWAY_KEY.into())],
            ),
            ("empty bearer", vec![("authorization", "Bearer ".into())]),
            (
                "basic auth",
                vec![("authorization", "Basic bXluYWg6ZGV2".into())],
            ),
        ];
        match d {
            D::Cloud => {
                cases.push(("wrong token", vec![("authorization", wrong_token.clone())]));
                cases.push(("the 360dialog key", vec![("D360-API-KEY", KEY.into())]));
            }
            D::D360 => {
                cases.push(("wrong key", vec![("D360-API-KEY", "wrong-key".into())]));
                cases.push((
                    "the Cloud token",
                    vec![("authorization", dev_bearer.clone())],
                ));
            }
            D::OnPrem | D::Download => {
                // Both credentials are valid here; wrong ones of both are not.
                cases.push(("wrong key", vec![("D360-API-KEY", "wrong-key".into())]));
                cases.push(("wrong token", vec![("authorization", wrong_token.clone())]));
            }
        }
        for (case, mut headers) in cases {
            headers.push(("content-type", "application/json".into()));
            let a = hit(&h, method, path, &headers, body.clone()).await;
            let what = format!("{method} {path} with {case}");
            assert_eq!(a.status, 401, "{what}: {}", a.text);
            match d {
                D::Cloud => {
                    assert_eq!(error_shape(&a, Shape::Graph, &what), 190);
                    assert!(a.headers.get("www-authenticate").is_some(), "{what}");
                }
                D::D360 | D::Download => {
                    let code = error_shape(&a, Shape::Graph, &what);
                    // The download URL speaks both: a bearer is judged as a Cloud token.
                    let want: &[u64] = if *d == D::Download { &[0, 190] } else { &[0] };
                    assert!(want.contains(&code), "{what}: code {code}");
                }
                // On-Premises takes both credentials too: a key is judged as a key (0), a
                // bearer as a Cloud token (190); both in the On-Premises body.
                D::OnPrem => {
                    let code = error_shape(&a, Shape::OnPrem, &what);
                    assert!([0, 190].contains(&code), "{what}: code {code}");
                }
            }
        }
    }
    let (s, b) = h.send_cloud(text(TO, "fine")).await;
    assert_eq!(s, 200, "{b}");
    h.shutdown().await;
}
