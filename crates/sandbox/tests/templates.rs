//! Template management in both dialects, review on the manual clock, status webhooks, and the
//! send-time checks (132000, 132001, 132015, 132016).

mod common;
use common::*;
use reqwest::Method;
use serde_json::{Value, json};

const WABA: &str = mynah_sandbox::config::DEV_WABA_ID;

fn template_send(name: &str, components: Value) -> Value {
    let mut t = json!({ "name": name, "language": { "code": "en_US" } });
    if !components.is_null() {
        t["components"] = components;
    }
    json!({ "messaging_product": "whatsapp", "to": "4915112345678", "type": "template", "template": t })
}

async fn cloud_get(h: &Harness, path: &str) -> (u16, Value) {
    let r = h
        .http
        .get(format!("{}{path}", h.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

async fn get_360(h: &Harness, path: &str) -> (u16, Value) {
    let r = h
        .http
        .get(format!("{}{path}", h.base))
        .header("D360-API-KEY", KEY)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

async fn delete(h: &Harness, path: &str, cloud: bool) -> (u16, Value) {
    let req = h.http.delete(format!("{}{path}", h.base));
    let req = if cloud {
        req.bearer_auth(TOKEN)
    } else {
        req.header("D360-API-KEY", KEY)
    };
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// The id of a template by name (control API).
async fn template_id(h: &Harness, name: &str) -> String {
    let (_, all) = h.control_get("/templates").await;
    all["templates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["def"]["name"] == name)
        .unwrap_or_else(|| panic!("no template {name}"))["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn marketing(name: &str) -> Value {
    json!({
        "name": name, "language": "en_US", "category": "marketing",
        "components": [
            { "type": "body", "text": "Hello {{1}}, our autumn collection has arrived in every shop this week.",
              "example": { "body_text": [["Ana"]] } },
            { "type": "buttons", "buttons": [ { "type": "quick_reply", "text": "Stop promotions" } ] }
        ]
    })
}

#[tokio::test]
async fn seeded_templates_are_listed_in_both_dialects() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    let (s, b) = cloud_get(&h, &format!("/v23.0/{WABA}/message_templates?limit=2")).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"].as_array().unwrap().len(), 2);
    assert_eq!(b["summary"]["total_count"], 5);
    assert!(b["paging"]["next"].is_string(), "{b}");
    let (_, b) = cloud_get(&h, &format!("/v23.0/{WABA}/message_templates?limit=50")).await;
    let names: Vec<&str> = b["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for want in [
        "hello_world",
        "order_update",
        "spring_sale",
        "new_arrivals",
        "verification_code",
    ] {
        assert!(names.contains(&want), "{want} in {names:?}");
    }
    for t in b["data"].as_array().unwrap() {
        assert_eq!(t["status"], "APPROVED");
        assert!(t["parameter_format"].is_string(), "{t}");
        assert!(t["components"].is_array(), "{t}");
    }
    let (s, b) = get_360(&h, "/v1/configs/templates").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["total"], 5);
    assert_eq!(b["waba_templates"].as_array().unwrap().len(), 5);
    // Statuses read case-insensitively.
    let (_, b) = get_360(&h, "/v1/configs/templates?status=approved").await;
    assert_eq!(b["total"], 5);
    h.shutdown().await;
}

#[tokio::test]
async fn a_created_template_is_reviewed_then_sends() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    let (s, b) = h
        .post_360("/v1/configs/templates", &marketing("autumn_collection"))
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["status"], "PENDING");
    assert_eq!(b["category"], "MARKETING");
    let id = b["id"].as_str().unwrap().to_string();
    // In review: not sendable yet.
    let send = template_send(
        "autumn_collection",
        json!([{ "type": "body", "parameters": [{ "type": "text", "text": "Ana" }] }]),
    );
    let (s, b) = h.send_360(send.clone()).await;
    assert_eq!((s, b["error"]["code"].as_i64()), (404, Some(132001)), "{b}");
    h.advance(61.0).await;
    let got = h.wait("field=message_template_status_update", 1).await;
    let body: Value = attempt_body(&got[0]);
    let entry = &body["entry"][0];
    assert_eq!(entry["id"], WABA);
    assert!(entry["time"].is_i64(), "{entry}");
    let value = &entry["changes"][0]["value"];
    assert_eq!(
        entry["changes"][0]["field"],
        "message_template_status_update"
    );
    assert_eq!(value["event"], "APPROVED");
    assert_eq!(
        value["message_template_id"].as_u64().unwrap().to_string(),
        id
    );
    assert_eq!(value["message_template_name"], "autumn_collection");
    assert_eq!(value["message_template_language"], "en_US");
    assert_eq!(value["message_template_category"], "MARKETING");
    for r in rx.received() {
        assert!(signature_ok(&r, SECRET), "template webhooks are signed too");
    }
    let (s, b) = h.send_360(send).await;
    assert_eq!(s, 200, "{b}");
    // Wrong parameter count.
    let (s, b) = h
        .send_360(template_send("autumn_collection", Value::Null))
        .await;
    assert_eq!((s, b["error"]["code"].as_i64()), (400, Some(132000)), "{b}");
    h.shutdown().await;
}

#[tokio::test]
async fn a_rule_rejects_and_the_webhook_says_why() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    let path = format!("/v23.0/{WABA}/message_templates");
    let (s, b) = h.post_cloud(&path, &marketing("please_reject_me")).await;
    assert_eq!(s, 200, "{b}");
    h.advance(61.0).await;
    let got = h.wait("field=message_template_status_update", 1).await;
    let body: Value = attempt_body(&got[0]);
    let value = &body["entry"][0]["changes"][0]["value"];
    assert_eq!(value["event"], "REJECTED");
    assert_eq!(value["reason"], "INVALID_FORMAT");
    assert!(value["rejection_info"]["reason"].is_string(), "{value}");
    let (_, b) = cloud_get(&h, &format!("{path}?status=REJECTED")).await;
    assert_eq!(b["data"][0]["name"], "please_reject_me");
    h.shutdown().await;
}

#[tokio::test]
async fn paused_and_disabled_templates_refuse_sends() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    let id = template_id(&h, "spring_sale").await;
    let (s, b) = h
        .control(
            Method::POST,
            &format!("/templates/{id}/status"),
            &json!({ "status": "paused" }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = h.send_360(template_send("spring_sale", Value::Null)).await;
    assert_eq!((s, b["error"]["code"].as_i64()), (400, Some(132015)), "{b}");
    let (s, b) = h
        .send_cloud(template_send("spring_sale", Value::Null))
        .await;
    assert_eq!((s, b["error"]["code"].as_i64()), (400, Some(132015)), "{b}");
    h.control(
        Method::POST,
        &format!("/templates/{id}/status"),
        &json!({ "status": "DISABLED" }),
    )
    .await;
    let (s, b) = h.send_360(template_send("spring_sale", Value::Null)).await;
    assert_eq!((s, b["error"]["code"].as_i64()), (400, Some(132016)), "{b}");
    // Both changes were announced.
    let got = h.wait("field=message_template_status_update", 2).await;
    let events: Vec<String> = got
        .iter()
        .map(|a| {
            let body: Value = attempt_body(a);
            body["entry"][0]["changes"][0]["value"]["event"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(events, vec!["PAUSED", "DISABLED"]);
    // A disabled template cannot be deleted.
    let (s, b) = delete(&h, "/v1/configs/templates/spring_sale", false).await;
    assert_eq!(s, 400, "{b}");
    h.shutdown().await;
}

#[tokio::test]
async fn delete_and_edit() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    let (s, b) = delete(&h, "/v1/configs/templates/order_update", false).await;
    assert_eq!((s, &b), (200, &json!({ "success": true })));
    let (s, b) = h.send_360(template_send("order_update", Value::Null)).await;
    assert_eq!((s, b["error"]["code"].as_i64()), (404, Some(132001)), "{b}");
    let (s, _) = delete(
        &h,
        &format!("/v23.0/{WABA}/message_templates?name=order_update"),
        true,
    )
    .await;
    assert_eq!(s, 400, "deleting what is gone");
    // Edit an approved template: back to review, then approved again.
    let (_, b) = cloud_get(
        &h,
        &format!("/v23.0/{WABA}/message_templates?name=hello_world"),
    )
    .await;
    let id = b["data"][0]["id"].as_str().unwrap().to_string();
    let edit = json!({ "components": [ { "type": "BODY", "text": "Welcome to the new Mynah sandbox, a friendly place to test your messages." } ] });
    let (s, b) = h.post_cloud(&format!("/v23.0/{id}"), &edit).await;
    assert_eq!((s, &b), (200, &json!({ "success": true })));
    let (_, t) = cloud_get(&h, &format!("/v23.0/{id}")).await;
    assert_eq!(t["status"], "PENDING");
    // A second edit within 24 hours of an approved template's edit is refused only while approved;
    // in review it is refused because only APPROVED, REJECTED or PAUSED templates can be edited.
    let (s, b) = h.post_cloud(&format!("/v23.0/{id}"), &edit).await;
    assert_eq!(s, 400, "{b}");
    h.advance(61.0).await;
    let (_, t) = cloud_get(&h, &format!("/v23.0/{id}")).await;
    assert_eq!(t["status"], "APPROVED");
    assert_eq!(
        t["components"][0]["text"],
        "Welcome to the new Mynah sandbox, a friendly place to test your messages."
    );
    let (s, b) = h.post_cloud(&format!("/v23.0/{id}"), &edit).await;
    assert_eq!(s, 400, "once in 24 hours: {b}");
    h.shutdown().await;
}

#[tokio::test]
async fn creation_is_validated_with_the_platforms_codes() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    let mut bad_name = marketing("Bad Name!");
    bad_name["name"] = json!("Bad Name!");
    let (s, b) = h.post_360("/v1/configs/templates", &bad_name).await;
    assert_eq!((s, b["error"]["code"].as_i64()), (400, Some(100)), "{b}");
    assert!(
        b["error"]["error_data"]["details"]
            .as_str()
            .unwrap()
            .contains("name"),
        "{b}"
    );
    let (s, b) = h
        .post_360("/v1/configs/templates", &marketing("hello_world"))
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_i64()),
        (400, Some(100)),
        "exists already: {b}"
    );
    let mut no_body = marketing("no_body");
    no_body["components"] = json!([]);
    let (s, b) = h.post_360("/v1/configs/templates", &no_body).await;
    assert_eq!((s, b["error"]["code"].as_i64()), (400, Some(131008)), "{b}");
    h.shutdown().await;
}

#[tokio::test]
async fn templates_survive_a_restart() {
    let rx = Receiver::start().await;
    let dir = temp_dir("templates-restart");
    let mut cfg = config(&rx.url);
    cfg.data_dir = Some(dir.clone());
    let h = Harness::start(cfg.clone()).await;
    let (s, _) = h
        .post_360("/v1/configs/templates", &marketing("kept_over_restart"))
        .await;
    assert_eq!(s, 200);
    let (s, _) = delete(&h, "/v1/configs/templates/order_update", false).await;
    assert_eq!(s, 200);
    h.shutdown().await;
    let h = Harness::start(cfg).await;
    let (_, b) = get_360(&h, "/v1/configs/templates").await;
    let names: Vec<&str> = b["waba_templates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"kept_over_restart"), "{names:?}");
    assert!(
        !names.contains(&"order_update"),
        "a deleted seed stays deleted: {names:?}"
    );
    // The pending review resumes.
    h.advance(61.0).await;
    let (_, b) = get_360(&h, "/v1/configs/templates?name=kept_over_restart").await;
    assert_eq!(b["waba_templates"][0]["status"], "APPROVED");
    h.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// Low quality pauses a template for 3 hours, then 6 hours, and disables it the third time; a
/// pause ends by itself (spec §7.5), every step announced by webhooks.
#[tokio::test]
async fn red_quality_pauses_3h_then_6h_then_disables() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    let id = template_id(&h, "spring_sale").await;
    let send = || template_send("spring_sale", Value::Null);
    let quality_path = format!("/templates/{id}/quality");
    let red_body = json!({ "score": "RED" });
    // First pause: 3 hours.
    let (s, t) = h.control(Method::POST, &quality_path, &red_body).await;
    assert_eq!((s, t["status"].as_str()), (200, Some("PAUSED")), "{t}");
    let (s, b) = h.send_360(send()).await;
    assert_eq!((s, b["error"]["code"].as_i64()), (400, Some(132015)), "{b}");
    h.advance(3.0 * 3600.0 - 1.0).await;
    let (s, _) = h.send_360(send()).await;
    assert_eq!(s, 400, "still paused a second before the 3 hours");
    h.advance(1.0).await;
    let (s, b) = h.send_360(send()).await;
    assert_eq!(s, 200, "unpaused by itself: {b}");
    // Second pause: 6 hours.
    h.control(Method::POST, &quality_path, &red_body).await;
    h.advance(5.0 * 3600.0).await;
    let (s, _) = h.send_360(send()).await;
    assert_eq!(s, 400, "the second pause lasts 6 hours");
    h.advance(3600.0).await;
    let (s, _) = h.send_360(send()).await;
    assert_eq!(s, 200);
    // Third time: disabled for good.
    let (_, t) = h.control(Method::POST, &quality_path, &red_body).await;
    assert_eq!(t["status"], "DISABLED");
    h.advance(24.0 * 3600.0).await;
    let (s, b) = h.send_360(send()).await;
    assert_eq!((s, b["error"]["code"].as_i64()), (400, Some(132016)), "{b}");
    // The webhooks, in order.
    let got = h.wait("field=message_template_status_update", 5).await;
    let statuses: Vec<(String, String)> = got
        .iter()
        .map(|a| {
            let body: Value = attempt_body(a);
            let v = &body["entry"][0]["changes"][0]["value"];
            (
                v["event"].as_str().unwrap().to_string(),
                v["other_info"]["title"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("PAUSED", "FIRST_PAUSE"),
        ("APPROVED", "UNPAUSE"),
        ("PAUSED", "SECOND_PAUSE"),
        ("APPROVED", "UNPAUSE"),
        ("DISABLED", "DISABLED"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(statuses, expected);
    let quality = h.wait("field=message_template_quality_update", 3).await;
    let body: Value = attempt_body(&quality[0]);
    let v = &body["entry"][0]["changes"][0]["value"];
    assert_eq!(
        (
            v["previous_quality_score"].as_str(),
            v["new_quality_score"].as_str()
        ),
        (Some("GREEN"), Some("RED"))
    );
    h.shutdown().await;
}
