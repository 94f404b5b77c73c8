//! Every platform request is parsed into an [`Endpoint`] first: which dialect, which operation,
//! which ids. Unknown paths and wrong methods are answered here, in the dialect's own error
//! format, naming the closest supported route.

use crate::model::Dialect;
use axum::http::Method;
use mynah_wire::error::{ApiError, ErrorCode};

/// A platform operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /{version}/{phone_number_id}/messages` (Cloud), `POST /messages` (360dialog),
    /// `POST /v1/messages` (On-Premises / 360dialog sandbox).
    Messages {
        /// Phone number id in the path (Cloud only).
        pnid: Option<String>,
    },
    /// `POST /{version}/{phone_number_id}/marketing_messages` (Cloud), `POST /marketing_messages`
    /// (360dialog): the Marketing Messages API.
    MarketingMessages {
        /// Phone number id in the path (Cloud only).
        pnid: Option<String>,
    },
    /// `DELETE /{version}/{phone_number_id}/contact_book?bsuid=…` (Cloud),
    /// `DELETE /contact_book?bsuid=…` (360dialog): removes a user from the portfolio's contact
    /// book.
    ContactBook {
        /// Phone number id in the path (Cloud only).
        pnid: Option<String>,
    },
    /// `POST /{version}/{phone_number_id}/media`, `POST /media`.
    UploadMedia {
        /// Phone number id in the path (Cloud only).
        pnid: Option<String>,
    },
    /// `GET|POST|DELETE /{version}/{id}` or `GET|DELETE /{id}`: a phone number or a media object.
    Node {
        /// The object id.
        id: String,
    },
    /// `GET|POST /v1/configs/webhook` (360dialog).
    WebhookConfig,
    /// `GET|POST|DELETE /{version}/{waba_id}/message_templates` (Cloud),
    /// `GET|POST /v1/configs/templates` (360dialog).
    Templates {
        /// The account in the path (Cloud only).
        waba_id: Option<String>,
    },
    /// `DELETE /v1/configs/templates/{name}` (360dialog).
    TemplateByName {
        /// Template name.
        name: String,
    },
    /// `POST /{version}/{template_id}/unpause` (Cloud): unpauses a paused template.
    TemplateUnpause {
        /// Template id.
        id: String,
    },
    /// `GET /whatsapp_business/attachments/?mid=…` — media bytes.
    Download,
}

impl Endpoint {
    /// A short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Endpoint::Messages { .. } => "messages",
            Endpoint::MarketingMessages { .. } => "marketing_messages",
            Endpoint::ContactBook { .. } => "contact_book",
            Endpoint::UploadMedia { .. } => "media_upload",
            Endpoint::Node { .. } => "node",
            Endpoint::WebhookConfig => "webhook_config",
            Endpoint::Templates { .. } => "templates",
            Endpoint::TemplateByName { .. } => "template_by_name",
            Endpoint::TemplateUnpause { .. } => "template_unpause",
            Endpoint::Download => "media_download",
        }
    }
}

/// A parsed request line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The operation.
    pub endpoint: Endpoint,
    /// The dialect its path belongs to.
    pub dialect: Dialect,
    /// Graph major version (Cloud path), else the dialect's default.
    pub version: u32,
}

/// Why a request line was refused.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// Dialect for the error format.
    pub dialect: Dialect,
    /// The error.
    pub error: ApiError,
    /// For a wrong method: the methods the path supports (`Allow`).
    pub allow: Option<&'static str>,
}

/// Supported routes, for "did you mean".
const ROUTES: &[&str] = &[
    "POST /{version}/{phone_number_id}/messages",
    "POST /{version}/{phone_number_id}/marketing_messages",
    "DELETE /{version}/{phone_number_id}/contact_book",
    "POST /marketing_messages",
    "DELETE /contact_book",
    "POST /{version}/{phone_number_id}/media",
    "POST /{version}/{phone_number_id}",
    "POST /{version}/{template_id}/unpause",
    "GET /{version}/{phone_number_id}",
    "GET /{version}/{media_id}",
    "DELETE /{version}/{media_id}",
    "POST /messages",
    "POST /media",
    "GET /{media_id}",
    "DELETE /{media_id}",
    "GET /v1/configs/webhook",
    "GET /v1/configs/templates",
    "POST /v1/configs/templates",
    "DELETE /v1/configs/templates/{name}",
    "GET /{version}/{waba_id}/message_templates",
    "POST /{version}/{waba_id}/message_templates",
    "DELETE /{version}/{waba_id}/message_templates",
    "POST /v1/configs/webhook",
    "POST /v1/messages",
    "GET /whatsapp_business/attachments/",
];

fn graph_version(seg: &str) -> Option<u32> {
    let rest = seg.strip_prefix('v')?;
    let (major, minor) = rest.split_once('.')?;
    if minor.is_empty() || !minor.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    major.parse().ok()
}

fn is_id(seg: &str) -> bool {
    !seg.is_empty()
        && seg.len() <= 64
        && seg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The Graph versions served: the oldest and the newest major version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versions {
    /// Oldest (`graph.min_version`).
    pub min: u32,
    /// Newest (`graph.max_version`).
    pub max: u32,
    /// Assumed for 360dialog paths (`graph.dialect_360_version`).
    pub d360: u32,
}

/// Parses method and path against the Graph versions served.
pub fn parse(method: &Method, path: &str, versions: Versions) -> Result<Parsed, Refusal> {
    let Versions {
        min: min_version,
        max: max_version,
        d360: d360_version,
    } = versions;
    let trimmed = path.trim_end_matches('/');
    let segs: Vec<&str> = trimmed.split('/').filter(|s| !s.is_empty()).collect();
    let first = segs.first().copied().unwrap_or("");
    if let Some(version) = graph_version(first) {
        let refuse = |error| Refusal {
            dialect: Dialect::Cloud,
            error,
            allow: None,
        };
        if version < min_version {
            return Err(refuse(ApiError::invalid_param(format!(
                "Graph API version {first} is not available; this server accepts v{min_version}.0 to v{max_version}.0."
            ))));
        }
        if version > max_version {
            return Err(refuse(ApiError::invalid_param(format!(
                "Graph API version {first} does not exist; the newest is v{max_version}.0 (graph.max_version)."
            ))));
        }
        let (endpoint, allow) = match segs.as_slice() {
            [_, id, "messages"] if is_id(id) => (
                Endpoint::Messages {
                    pnid: Some(id.to_string()),
                },
                "POST",
            ),
            [_, id, "marketing_messages"] if is_id(id) => (
                Endpoint::MarketingMessages {
                    pnid: Some(id.to_string()),
                },
                "POST",
            ),
            [_, id, "contact_book"] if is_id(id) => (
                Endpoint::ContactBook {
                    pnid: Some(id.to_string()),
                },
                "DELETE",
            ),
            [_, id, "media"] if is_id(id) => (
                Endpoint::UploadMedia {
                    pnid: Some(id.to_string()),
                },
                "POST",
            ),
            [_, id, "message_templates"] if is_id(id) => (
                Endpoint::Templates {
                    waba_id: Some(id.to_string()),
                },
                "GET, POST, DELETE",
            ),
            [_, id, "unpause"] if is_id(id) => {
                (Endpoint::TemplateUnpause { id: id.to_string() }, "POST")
            }
            [_, id] if is_id(id) => (Endpoint::Node { id: id.to_string() }, "GET, POST, DELETE"),
            _ => return Err(unknown(Dialect::Cloud, method, path)),
        };
        check_method(method, allow, Dialect::Cloud, path)?;
        return Ok(Parsed {
            endpoint,
            dialect: Dialect::Cloud,
            version,
        });
    }
    let (endpoint, dialect, allow) = match segs.as_slice() {
        ["messages"] => (Endpoint::Messages { pnid: None }, Dialect::D360, "POST"),
        ["media"] => (Endpoint::UploadMedia { pnid: None }, Dialect::D360, "POST"),
        ["marketing_messages"] => (
            Endpoint::MarketingMessages { pnid: None },
            Dialect::D360,
            "POST",
        ),
        ["contact_book"] => (
            Endpoint::ContactBook { pnid: None },
            Dialect::D360,
            "DELETE",
        ),
        ["v1", "configs", "webhook"] => (Endpoint::WebhookConfig, Dialect::D360, "GET, POST"),
        ["v1", "configs", "templates"] => (
            Endpoint::Templates { waba_id: None },
            Dialect::D360,
            "GET, POST",
        ),
        ["v1", "configs", "templates", name] => (
            Endpoint::TemplateByName {
                name: name.to_string(),
            },
            Dialect::D360,
            "DELETE",
        ),
        ["v1", "messages"] => (Endpoint::Messages { pnid: None }, Dialect::OnPrem, "POST"),
        ["whatsapp_business", "attachments"] => (Endpoint::Download, Dialect::D360, "GET"),
        [id] if is_id(id) && id.bytes().all(|b| b.is_ascii_digit()) => (
            Endpoint::Node { id: id.to_string() },
            Dialect::D360,
            "GET, DELETE",
        ),
        _ => return Err(unknown(Dialect::D360, method, path)),
    };
    check_method(method, allow, dialect, path)?;
    Ok(Parsed {
        endpoint,
        dialect,
        version: d360_version,
    })
}

fn check_method(
    method: &Method,
    allow: &'static str,
    dialect: Dialect,
    path: &str,
) -> Result<(), Refusal> {
    if allow.split(", ").any(|m| m == method.as_str()) {
        return Ok(());
    }
    Err(Refusal {
        dialect,
        error: ApiError::invalid_param(format!(
            "Unsupported {} request on {path}. Supported: {allow}.",
            method.as_str()
        ))
        .with_http(405),
        allow: Some(allow),
    })
}

fn unknown(dialect: Dialect, method: &Method, path: &str) -> Refusal {
    let shape: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            if graph_version(s).is_some() {
                "{version}".to_string()
            } else if s.bytes().all(|b| b.is_ascii_digit()) {
                "{phone_number_id}".to_string()
            } else {
                s.to_string()
            }
        })
        .collect();
    let probe = format!("{} /{}", method.as_str(), shape.join("/"));
    let closest = ROUTES
        .iter()
        .min_by_key(|r| strsim::levenshtein(r, &probe))
        .copied()
        .unwrap_or("POST /messages");
    let status = if dialect == Dialect::Cloud { 400 } else { 404 };
    Refusal {
        dialect,
        error: ApiError::with_details(
            ErrorCode::UnknownPath,
            format!("Unknown path components: {path}. The closest supported route is {closest}."),
        )
        .with_http(status),
        allow: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V: Versions = Versions {
        min: 16,
        max: 26,
        d360: 23,
    };

    fn ok(m: Method, p: &str) -> Parsed {
        parse(&m, p, V).unwrap()
    }

    #[test]
    fn routes_parse() {
        assert_eq!(
            ok(Method::POST, "/v23.0/123/messages").endpoint,
            Endpoint::Messages {
                pnid: Some("123".into())
            }
        );
        assert_eq!(ok(Method::POST, "/v16.0/123/messages").version, 16);
        assert_eq!(
            ok(Method::POST, "/v24.0/123/").endpoint,
            Endpoint::Node { id: "123".into() }
        );
        assert_eq!(ok(Method::POST, "/messages").dialect, Dialect::D360);
        assert_eq!(ok(Method::POST, "/v1/messages").dialect, Dialect::OnPrem);
        assert_eq!(
            ok(Method::GET, "/v1/configs/webhook").endpoint,
            Endpoint::WebhookConfig
        );
        assert_eq!(
            ok(Method::DELETE, "/1479537139650973").endpoint,
            Endpoint::Node {
                id: "1479537139650973".into()
            }
        );
    }

    #[test]
    fn refusals_name_the_closest_route() {
        let r = parse(&Method::POST, "/v23.0/123/mesages", V).unwrap_err();
        assert_eq!(r.dialect, Dialect::Cloud);
        assert!(
            r.error
                .details
                .contains("POST /{version}/{phone_number_id}/messages"),
            "{}",
            r.error.details
        );
        let r = parse(&Method::POST, "/message", V).unwrap_err();
        assert!(
            r.error.details.contains("POST /messages"),
            "{}",
            r.error.details
        );
        assert_eq!(r.error.http_status(), 404);
        let r = parse(&Method::GET, "/messages", V).unwrap_err();
        assert_eq!(r.allow, Some("POST"));
        assert_eq!(r.error.http_status(), 405);
        let r = parse(&Method::POST, "/v15.0/123/messages", V).unwrap_err();
        assert_eq!(r.error.code, ErrorCode::InvalidParameter);
        let r = parse(&Method::POST, "/v27.0/123/messages", V).unwrap_err();
        assert_eq!(r.error.code, ErrorCode::InvalidParameter);
        assert!(r.error.details.contains("v26.0"), "{}", r.error.details);
        assert_eq!(ok(Method::POST, "/v26.0/123/messages").version, 26);
        assert_eq!(
            ok(Method::POST, "/v26.0/123/marketing_messages").endpoint,
            Endpoint::MarketingMessages {
                pnid: Some("123".into())
            }
        );
        assert_eq!(
            ok(Method::DELETE, "/contact_book").endpoint,
            Endpoint::ContactBook { pnid: None }
        );
    }
}
