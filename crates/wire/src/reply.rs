//! What an upstream answers a sender (the gateway's side of [`response`](crate::response) and
//! [`error`](crate::error)): the send response, the error bodies (Graph envelope, On-Premises
//! `errors[]`, 360dialog's own `meta` form) and the template listings of both dialects
//! (Cloud `{"data", "paging"}`, 360dialog `{"count", …, "waba_templates"}`), parsed into typed
//! values.
//!
//! Parsing is lenient, as a client of a changing platform must be: unknown fields are ignored,
//! numbers may come as strings, `null` means absent, an unknown `message_status` or template
//! status does not fail the parse. A send response without a wamid does (the sender cannot track
//! the message), and so does a body that is not JSON at all.

use crate::response::MessageStatus;
use crate::template::Category;
use serde_json::Value;
use std::fmt;

/// Why an upstream answer could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyError(pub String);

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ReplyError {}

fn err<T>(s: impl Into<String>) -> Result<T, ReplyError> {
    Err(ReplyError(s.into()))
}

fn parse_json(body: &[u8]) -> Result<Value, ReplyError> {
    serde_json::from_slice(body).map_err(|e| ReplyError(format!("not JSON: {e}")))
}

/// A string field: strings as they are, numbers and booleans written out; `null` and objects
/// are absent. Blank strings are absent.
fn string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// An integer field: a JSON integer or a string of one.
fn integer(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn boolean(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Send response.

/// An accepted send (`200`, platform spec §3.1), typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendReply {
    /// `messages[0].id`, the wamid every status webhook carries.
    pub wamid: String,
    /// `contacts[0].wa_id`, the recipient's WhatsApp id (absent in some older answers).
    pub wa_id: Option<String>,
    /// `contacts[0].input`, the `to` (or `recipient`) as sent.
    pub input: Option<String>,
    /// `contacts[0].user_id`, the business-scoped user id a message addressed by one went to
    /// (such answers carry no `wa_id`).
    pub user_id: Option<String>,
    /// `messages[0].message_status`; absent (or a value this crate does not know) is `None`,
    /// which senders treat as `accepted` (spec §3.1).
    pub message_status: Option<MessageStatus>,
}

impl SendReply {
    /// The status, absent meaning accepted.
    pub fn status(&self) -> MessageStatus {
        self.message_status.unwrap_or(MessageStatus::Accepted)
    }
}

/// Parses `message_status` in any case; unknown values are `None`.
pub fn parse_message_status(s: &str) -> Option<MessageStatus> {
    match s.trim().to_ascii_lowercase().as_str() {
        "accepted" => Some(MessageStatus::Accepted),
        "held_for_quality_assessment" => Some(MessageStatus::HeldForQualityAssessment),
        "paused" => Some(MessageStatus::Paused),
        _ => None,
    }
}

/// Parses the answer to an accepted send. Cloud and 360dialog answer the same shape; the
/// On-Premises form (`{"messages": [{"id"}]}`, no `contacts`) is read too. A missing wamid is an
/// error: the sender could not track the message.
pub fn parse_send_reply(body: &[u8]) -> Result<SendReply, ReplyError> {
    let v = parse_json(body)?;
    let Some(message) = v.get("messages").and_then(|m| m.get(0)) else {
        return err("no messages[0] in the send response");
    };
    let Some(wamid) = message.get("id").and_then(string) else {
        return err("no messages[0].id in the send response");
    };
    let contact = v.get("contacts").and_then(|c| c.get(0));
    Ok(SendReply {
        wamid,
        wa_id: contact.and_then(|c| c.get("wa_id")).and_then(string),
        input: contact.and_then(|c| c.get("input")).and_then(string),
        user_id: contact.and_then(|c| c.get("user_id")).and_then(string),
        message_status: message
            .get("message_status")
            .and_then(Value::as_str)
            .and_then(parse_message_status),
    })
}

// ---------------------------------------------------------------------------------------------
// Error bodies.

/// Which shape an error body had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorForm {
    /// `{"error": {"message", "type", "code", "error_subcode", "error_data", "fbtrace_id"}}`.
    Graph,
    /// `{"meta": …, "errors": [{"code", "title", "details"}]}` (On-Premises).
    OnPrem,
    /// 360dialog's own `{"meta": {"success": false, "http_code", "developer_message"}}`.
    Meta360,
}

/// An error answer from an upstream, typed. Every field is optional: the body might be any of
/// the forms, or carry only some fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReply {
    /// The shape it had.
    pub form: ErrorForm,
    /// `error.code` / `errors[0].code`: what senders key on.
    pub code: Option<i64>,
    /// `error.error_subcode` (deprecated since Graph v16, still seen).
    pub subcode: Option<i64>,
    /// The title: `errors[0].title`, or Graph's `error.message` without its `"(#code) "` prefix.
    pub title: Option<String>,
    /// `error.message` as sent (Graph), the title otherwise.
    pub message: Option<String>,
    /// `error.error_data.details` / `errors[0].details` / `meta.developer_message`.
    pub details: Option<String>,
    /// `error.type` (`OAuthException`).
    pub kind: Option<String>,
    /// `error.fbtrace_id`.
    pub fbtrace_id: Option<String>,
    /// `error.is_transient`, when given.
    pub is_transient: Option<bool>,
    /// `error.error_user_msg`, when given.
    pub user_message: Option<String>,
}

/// Strips a Graph `"(#130429) "` prefix from a message.
fn strip_code_prefix(message: &str) -> &str {
    let m = message.trim_start();
    if let Some(rest) = m.strip_prefix("(#")
        && let Some(end) = rest.find(')')
        && rest[..end].chars().all(|c| c.is_ascii_digit())
    {
        return rest[end + 1..].trim_start();
    }
    m
}

/// Parses an error body in any of the known forms. `None` when the body is not JSON or has none
/// of them (the caller keeps the raw text: 360dialog's gateway errors may be plain text).
pub fn parse_error_reply(body: &[u8]) -> Option<ErrorReply> {
    let v: Value = serde_json::from_slice(body).ok()?;
    if let Some(e) = v.get("error").filter(|e| e.is_object()) {
        let message = e.get("message").and_then(string);
        return Some(ErrorReply {
            form: ErrorForm::Graph,
            code: e.get("code").and_then(integer),
            subcode: e.get("error_subcode").and_then(integer),
            title: message
                .as_deref()
                .map(|m| strip_code_prefix(m).to_string())
                .filter(|t| !t.is_empty()),
            message,
            details: e
                .get("error_data")
                .and_then(|d| d.get("details"))
                .and_then(string)
                .or_else(|| e.get("error_user_msg").and_then(string)),
            kind: e.get("type").and_then(string),
            fbtrace_id: e.get("fbtrace_id").and_then(string),
            is_transient: e.get("is_transient").and_then(boolean),
            user_message: e.get("error_user_msg").and_then(string),
        });
    }
    if let Some(first) = v.get("errors").and_then(|e| e.get(0)) {
        let title = first.get("title").and_then(string);
        return Some(ErrorReply {
            form: ErrorForm::OnPrem,
            code: first.get("code").and_then(integer),
            subcode: None,
            message: title.clone(),
            title,
            details: first.get("details").and_then(string),
            kind: None,
            fbtrace_id: None,
            is_transient: None,
            user_message: None,
        });
    }
    if let Some(meta) = v.get("meta").filter(|m| m.is_object()) {
        let details = meta
            .get("developer_message")
            .or_else(|| meta.get("message"))
            .and_then(string);
        details.as_ref()?;
        return Some(ErrorReply {
            form: ErrorForm::Meta360,
            code: meta.get("code").and_then(integer),
            subcode: None,
            title: details.clone(),
            message: details.clone(),
            details,
            kind: None,
            fbtrace_id: None,
            is_transient: None,
            user_message: None,
        });
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Template listings.

/// A template's status as listings show it (Meta upper case, 360dialog often lower case).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ListedStatus {
    /// `APPROVED` (also `ACTIVE`): can be sent.
    Approved,
    /// `PENDING`, `SUBMITTED`, `CREATED`, `IN_APPEAL`: in review.
    Pending,
    /// `REJECTED`.
    Rejected,
    /// `PAUSED`: sends fail with 132015 until it is active again.
    Paused,
    /// `DISABLED`: sends fail with 132016 for good.
    Disabled,
    /// Anything else (`PENDING_DELETION`, `DELETED`, `ARCHIVED`, `LIMIT_EXCEEDED`, new values),
    /// as sent.
    Other(String),
}

impl ListedStatus {
    /// Parses a status in any case.
    pub fn parse(s: &str) -> ListedStatus {
        match s.trim().to_ascii_uppercase().as_str() {
            "APPROVED" | "ACTIVE" => ListedStatus::Approved,
            "PENDING" | "SUBMITTED" | "CREATED" | "IN_APPEAL" => ListedStatus::Pending,
            "REJECTED" => ListedStatus::Rejected,
            "PAUSED" => ListedStatus::Paused,
            "DISABLED" => ListedStatus::Disabled,
            _ => ListedStatus::Other(s.trim().to_string()),
        }
    }

    /// True when sends of the template can succeed.
    pub fn is_sendable(&self) -> bool {
        matches!(self, ListedStatus::Approved)
    }

    /// Upper-case name.
    pub fn as_str(&self) -> &str {
        match self {
            ListedStatus::Approved => "APPROVED",
            ListedStatus::Pending => "PENDING",
            ListedStatus::Rejected => "REJECTED",
            ListedStatus::Paused => "PAUSED",
            ListedStatus::Disabled => "DISABLED",
            ListedStatus::Other(s) => s,
        }
    }
}

/// One template of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedTemplate {
    /// Name.
    pub name: String,
    /// Locale (`en_US`).
    pub language: String,
    /// Status.
    pub status: ListedStatus,
    /// Category; `None` when absent or not one this crate knows (`category_raw` keeps it).
    pub category: Option<Category>,
    /// The category as sent.
    pub category_raw: Option<String>,
    /// Template id (Meta's numeric id; 360dialog listings may omit it).
    pub id: Option<String>,
    /// The components as listed (JSON, kept as is).
    pub components: Value,
    /// `quality_score.score` (`GREEN`, `YELLOW`, `RED`, `UNKNOWN`), when listed.
    pub quality: Option<String>,
    /// `rejected_reason`, when listed.
    pub rejected_reason: Option<String>,
    /// `namespace` (On-Premises leftover), when listed.
    pub namespace: Option<String>,
    /// `parameter_format` (`POSITIONAL`/`NAMED`), when listed.
    pub parameter_format: Option<String>,
}

/// How to ask for the next page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextPage {
    /// Cloud: `after=<cursor>`.
    After(String),
    /// 360dialog: `offset=<n>`.
    Offset(u64),
}

/// One page of a template listing.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplatePage {
    /// The templates on this page (entries without a name are skipped).
    pub templates: Vec<ListedTemplate>,
    /// The next page, if there is one.
    pub next: Option<NextPage>,
    /// The total the upstream reports, when it does.
    pub total: Option<u64>,
}

fn listed_template(t: &Value) -> Option<ListedTemplate> {
    let name = t.get("name").and_then(string)?;
    let category_raw = t.get("category").and_then(string);
    Some(ListedTemplate {
        name,
        language: t.get("language").and_then(string).unwrap_or_default(),
        status: ListedStatus::parse(
            t.get("status")
                .and_then(string)
                .as_deref()
                .unwrap_or("UNKNOWN"),
        ),
        category: category_raw.as_deref().and_then(Category::from_name),
        category_raw,
        id: t.get("id").and_then(string),
        components: t.get("components").cloned().unwrap_or(Value::Array(vec![])),
        quality: t
            .get("quality_score")
            .and_then(|q| q.get("score"))
            .and_then(string),
        rejected_reason: t.get("rejected_reason").and_then(string),
        namespace: t.get("namespace").and_then(string),
        parameter_format: t.get("parameter_format").and_then(string),
    })
}

/// The `after` value of a `next` URL (`…?limit=25&after=QVFI…`).
fn after_from_url(url: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "after")
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty())
}

/// Parses one page of a template listing, in either dialect (told apart by shape: Cloud has
/// `data`, 360dialog has `waba_templates`).
///
/// Cloud: the next page exists when `paging.next` is present; its cursor is
/// `paging.cursors.after` (or the `after` parameter of the `next` URL). 360dialog: the next page
/// exists while `offset + count < total`.
pub fn parse_template_page(body: &[u8]) -> Result<TemplatePage, ReplyError> {
    let v = parse_json(body)?;
    if let Some(data) = v.get("data") {
        let Some(list) = data.as_array() else {
            return err("data is not an array");
        };
        let templates = list.iter().filter_map(listed_template).collect();
        let paging = v.get("paging");
        let next = paging
            .and_then(|p| p.get("next"))
            .and_then(string)
            .and_then(|next_url| {
                paging
                    .and_then(|p| p.get("cursors"))
                    .and_then(|c| c.get("after"))
                    .and_then(string)
                    .or_else(|| after_from_url(&next_url))
            })
            .map(NextPage::After);
        let total = v
            .get("summary")
            .and_then(|s| s.get("total_count"))
            .and_then(integer)
            .and_then(|t| u64::try_from(t).ok());
        return Ok(TemplatePage {
            templates,
            next,
            total,
        });
    }
    if let Some(list) = v.get("waba_templates") {
        let Some(list) = list.as_array() else {
            return err("waba_templates is not an array");
        };
        let templates: Vec<ListedTemplate> = list.iter().filter_map(listed_template).collect();
        let num = |k: &str| {
            v.get(k)
                .and_then(integer)
                .and_then(|n| u64::try_from(n).ok())
        };
        let offset = num("offset").unwrap_or(0);
        let count = num("count").unwrap_or(list.len() as u64);
        let total = num("total");
        let next = match total {
            Some(total) if count > 0 && offset + count < total => {
                Some(NextPage::Offset(offset + count))
            }
            _ => None,
        };
        return Ok(TemplatePage {
            templates,
            next,
            total,
        });
    }
    err("neither data nor waba_templates in the template listing")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ApiError, ErrorCode};
    use crate::response::SendResponse;
    use serde_json::json;

    #[test]
    fn send_reply_of_every_form() {
        let body = serde_json::to_vec(&SendResponse::new(
            "+49 151 1234",
            "491511234",
            "wamid.X",
            MessageStatus::HeldForQualityAssessment,
        ))
        .unwrap();
        let r = parse_send_reply(&body).unwrap();
        assert_eq!(r.wamid, "wamid.X");
        assert_eq!(r.wa_id.as_deref(), Some("491511234"));
        assert_eq!(r.input.as_deref(), Some("+49 151 1234"));
        assert_eq!(
            r.message_status,
            Some(MessageStatus::HeldForQualityAssessment)
        );

        // No message_status (older text sends), an unknown one, and the On-Premises form.
        let r = parse_send_reply(br#"{"messaging_product":"whatsapp","contacts":[{"input":"1","wa_id":"1"}],"messages":[{"id":"wamid.A"}]}"#).unwrap();
        assert_eq!(r.status(), MessageStatus::Accepted);
        let r = parse_send_reply(
            br#"{"messages":[{"id":"wamid.B","message_status":"SOMETHING_NEW"}]}"#,
        )
        .unwrap();
        assert_eq!((r.wamid.as_str(), r.message_status), ("wamid.B", None));
        assert_eq!(r.wa_id, None);
        let r = parse_send_reply(br#"{"messages":[{"id":"gBEGkYiEB1VXAglK1ZEqA1YKPrU"}],"meta":{"api_status":"stable"}}"#).unwrap();
        assert_eq!(r.wamid, "gBEGkYiEB1VXAglK1ZEqA1YKPrU");
        let r =
            parse_send_reply(br#"{"messages":[{"id":"w","message_status":"Paused"}]}"#).unwrap();
        assert_eq!(r.message_status, Some(MessageStatus::Paused));

        assert!(parse_send_reply(b"<html>").is_err());
        assert!(parse_send_reply(br#"{"messages":[]}"#).is_err());
        assert!(parse_send_reply(br#"{"messages":[{"id":null}]}"#).is_err());
    }

    #[test]
    fn graph_error_round_trips_through_the_table() {
        let e = ApiError::with_details(ErrorCode::RateLimitHit, "slow down");
        let body = serde_json::to_vec(&e.to_graph("trace1")).unwrap();
        let r = parse_error_reply(&body).unwrap();
        assert_eq!(r.form, ErrorForm::Graph);
        assert_eq!(r.code, Some(130429));
        assert_eq!(r.title.as_deref(), Some("Rate limit hit"));
        assert_eq!(r.message.as_deref(), Some("(#130429) Rate limit hit"));
        assert_eq!(r.details.as_deref(), Some("slow down"));
        assert_eq!(r.kind.as_deref(), Some("OAuthException"));
        assert_eq!(r.fbtrace_id.as_deref(), Some("trace1"));
        assert_eq!(r.subcode, None);
    }

    #[test]
    fn graph_error_with_subcode_and_strings() {
        let body = json!({"error": {"message": "(#4) Application request limit reached", "type": "OAuthException",
            "code": "4", "error_subcode": 2446079, "is_transient": true, "error_user_msg": "wait",
            "fbtrace_id": "Az8"}});
        let r = parse_error_reply(&serde_json::to_vec(&body).unwrap()).unwrap();
        assert_eq!(r.code, Some(4));
        assert_eq!(r.subcode, Some(2446079));
        assert_eq!(r.is_transient, Some(true));
        assert_eq!(r.details.as_deref(), Some("wait"));
        assert_eq!(
            r.title.as_deref(),
            Some("Application request limit reached")
        );
    }

    #[test]
    fn onprem_and_360_meta_errors() {
        let e = ApiError::new(ErrorCode::OnPremTemplatePaused);
        let body = serde_json::to_vec(&e.to_onprem()).unwrap();
        let r = parse_error_reply(&body).unwrap();
        assert_eq!(r.form, ErrorForm::OnPrem);
        assert_eq!(r.code, Some(2061));
        assert_eq!(r.title.as_deref(), Some("Template paused"));
        assert_eq!(
            r.details.as_deref(),
            Some("The template is paused due to low quality.")
        );

        let body = br#"{"meta":{"success":false,"http_code":400,"developer_message":"You have exceeded the endpoint rate limit"}}"#;
        let r = parse_error_reply(body).unwrap();
        assert_eq!(r.form, ErrorForm::Meta360);
        assert_eq!(r.code, None);
        assert!(r.details.unwrap().contains("endpoint rate limit"));

        assert_eq!(
            parse_error_reply(b"You have exceeded the endpoint rate limit"),
            None
        );
        assert_eq!(parse_error_reply(br#"{"ok":false}"#), None);
    }

    #[test]
    fn cloud_listing_with_cursors() {
        let body = json!({
            "data": [
                {"name": "hello_world", "language": "en_US", "status": "APPROVED", "category": "UTILITY",
                 "id": "1234", "components": [{"type": "BODY", "text": "Hello"}],
                 "quality_score": {"score": "GREEN"}, "parameter_format": "POSITIONAL"},
                {"name": "promo", "language": "de", "status": "PAUSED", "category": "MARKETING", "id": 99,
                 "components": []},
                {"language": "de"}
            ],
            "paging": {"cursors": {"before": "QVFIa", "after": "QVFIb"}, "next": "https://graph.facebook.com/v21.0/1/message_templates?limit=2&after=QVFIb"},
            "summary": {"total_count": 5}
        });
        let page = parse_template_page(&serde_json::to_vec(&body).unwrap()).unwrap();
        assert_eq!(page.templates.len(), 2);
        let t = &page.templates[0];
        assert_eq!(
            (t.name.as_str(), t.language.as_str()),
            ("hello_world", "en_US")
        );
        assert_eq!(t.status, ListedStatus::Approved);
        assert_eq!(t.category, Some(Category::Utility));
        assert_eq!(t.id.as_deref(), Some("1234"));
        assert_eq!(t.quality.as_deref(), Some("GREEN"));
        assert_eq!(t.components[0]["text"], "Hello");
        assert_eq!(page.templates[1].status, ListedStatus::Paused);
        assert_eq!(page.templates[1].id.as_deref(), Some("99"));
        assert_eq!(page.next, Some(NextPage::After("QVFIb".into())));
        assert_eq!(page.total, Some(5));

        // The last page: cursors but no next.
        let body = br#"{"data":[],"paging":{"cursors":{"before":"a","after":"b"}}}"#;
        assert_eq!(parse_template_page(body).unwrap().next, None);
        // A next URL without cursors.
        let body = br#"{"data":[],"paging":{"next":"?limit=1&after=7"}}"#;
        assert_eq!(
            parse_template_page(body).unwrap().next,
            Some(NextPage::After("7".into()))
        );
    }

    #[test]
    fn d360_listing_with_offsets() {
        let body = json!({"count": 2, "filters": {}, "limit": 2, "offset": 0, "sort": ["id"], "total": 3,
        "waba_templates": [
            {"name": "order_shipped", "language": "en_US", "category": "UTILITY", "status": "approved",
             "components": [{"type": "BODY", "text": "Hi {{1}}"}], "rejected_reason": "NONE",
             "namespace": "c8ae"},
            {"name": "old", "language": "en", "category": "TRANSACTIONAL", "status": "submitted", "components": []}
        ]});
        let page = parse_template_page(&serde_json::to_vec(&body).unwrap()).unwrap();
        assert_eq!(page.templates[0].status, ListedStatus::Approved);
        assert_eq!(page.templates[0].namespace.as_deref(), Some("c8ae"));
        assert_eq!(page.templates[0].id, None);
        assert_eq!(page.templates[1].status, ListedStatus::Pending);
        assert_eq!(page.templates[1].category, None);
        assert_eq!(
            page.templates[1].category_raw.as_deref(),
            Some("TRANSACTIONAL")
        );
        assert_eq!(page.next, Some(NextPage::Offset(2)));
        let body =
            br#"{"count":1,"offset":2,"total":3,"waba_templates":[{"name":"x","status":"weird"}]}"#;
        let page = parse_template_page(body).unwrap();
        assert_eq!(page.next, None);
        assert_eq!(
            page.templates[0].status,
            ListedStatus::Other("weird".into())
        );
        assert!(!page.templates[0].status.is_sendable());
        assert!(parse_template_page(br#"{"foo":1}"#).is_err());
    }
}
