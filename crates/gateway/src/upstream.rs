//! The upstream client: the gateway's only way to the platform (360dialog, the Cloud API, or a
//! Mynah sandbox), over HTTP.
//!
//! [`Upstream::send`] posts the platform JSON body unchanged — 360dialog `POST {base}/messages`
//! with `D360-API-KEY`, Cloud `POST {base}/{version}/{phone_number_id}/messages` with a bearer
//! token — and reads the answer through `mynah_wire::reply` (only `wire` knows the external JSON).
//! [`Upstream::list_templates`] reads every page of the template listing.
//!
//! The error tells what is known about the message's fate ([`UpstreamError::outcome_unknown`]):
//! [`Rejected`](UpstreamError::Rejected) (the platform answered with an error: not sent) and
//! [`Connect`](UpstreamError::Connect) (no connection: nothing was sent) are safe to retry;
//! [`Timeout`](UpstreamError::Timeout), [`Connection`](UpstreamError::Connection) and
//! [`Malformed`](UpstreamError::Malformed) come after the request may have reached the platform,
//! so the message may have gone out. No idempotency key exists on `POST /messages` (platform spec
//! §12), so the dispatcher reconciles those through status webhooks before resending.

use crate::clock::Millis;
use bytes::Bytes;
use mynah_wire::reply::{self, NextPage};
use mynah_wire::response::MessageStatus;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Client, StatusCode};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// How much of an error body is kept (the rest is cut; error bodies are small).
pub const MAX_ERROR_BODY: usize = 16 * 1024;
/// Most template pages read by one listing (a guard against a cursor that never ends).
pub const MAX_TEMPLATE_PAGES: usize = 1_000;

/// Which face of the platform the upstream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Dialect {
    /// 360dialog: `D360-API-KEY`, no phone-number id in paths.
    #[serde(rename = "360dialog", alias = "d360", alias = "D360")]
    D360,
    /// Meta's Cloud API (Graph): bearer token, `/{version}/{phone_number_id}/…`.
    #[serde(rename = "cloud", alias = "Cloud")]
    Cloud,
}

impl Dialect {
    /// The base URL of the real platform.
    pub fn default_base_url(self) -> &'static str {
        match self {
            Dialect::D360 => "https://waba-v2.360dialog.io",
            Dialect::Cloud => "https://graph.facebook.com",
        }
    }

    /// `360dialog` or `cloud`.
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::D360 => "360dialog",
            Dialect::Cloud => "cloud",
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn default_graph_version() -> String {
    "v21.0".to_string()
}

fn default_timeout_ms() -> u64 {
    10_000
}

fn default_connect_timeout_ms() -> u64 {
    3_000
}

fn default_true() -> bool {
    true
}

/// Where and how to reach the upstream (a `[upstream]` table of the gateway's TOML config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// `360dialog` or `cloud`.
    pub dialect: Dialect,
    /// Base URL without a trailing slash; the real platform's when absent.
    #[serde(default)]
    pub base_url: Option<String>,
    /// `D360-API-KEY` (360dialog).
    #[serde(default)]
    pub api_key: Option<String>,
    /// Bearer token (Cloud).
    #[serde(default)]
    pub token: Option<String>,
    /// The sending number's id (Cloud paths).
    #[serde(default)]
    pub phone_number_id: Option<String>,
    /// Graph API version in Cloud paths.
    #[serde(default = "default_graph_version")]
    pub graph_version: String,
    /// The WhatsApp Business Account id (Cloud template listing).
    #[serde(default)]
    pub waba_id: Option<String>,
    /// Whole-request timeout, ms.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Connection-establishment timeout, ms (a connect that times out sent nothing).
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Honour `HTTP(S)_PROXY` from the environment.
    #[serde(default = "default_true")]
    pub system_proxy: bool,
}

impl UpstreamConfig {
    /// A 360dialog upstream at `base_url` with `api_key`.
    pub fn d360(base_url: &str, api_key: &str) -> UpstreamConfig {
        UpstreamConfig {
            dialect: Dialect::D360,
            base_url: Some(base_url.to_string()),
            api_key: Some(api_key.to_string()),
            token: None,
            phone_number_id: None,
            graph_version: default_graph_version(),
            waba_id: None,
            timeout_ms: default_timeout_ms(),
            connect_timeout_ms: default_connect_timeout_ms(),
            system_proxy: true,
        }
    }

    /// A Cloud API upstream at `base_url` with a bearer token, sending from `phone_number_id`.
    pub fn cloud(base_url: &str, token: &str, phone_number_id: &str) -> UpstreamConfig {
        UpstreamConfig {
            dialect: Dialect::Cloud,
            token: Some(token.to_string()),
            api_key: None,
            phone_number_id: Some(phone_number_id.to_string()),
            ..UpstreamConfig::d360(base_url, "")
        }
    }

    /// The base URL in use, without a trailing slash.
    pub fn base(&self) -> &str {
        self.base_url
            .as_deref()
            .filter(|b| !b.trim().is_empty())
            .unwrap_or(self.dialect.default_base_url())
            .trim_end_matches('/')
    }
}

/// What the platform said to an accepted send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The message id every status webhook carries.
    pub wamid: String,
    /// The recipient's WhatsApp id, when the answer names it (it normally does).
    pub wa_id: Option<String>,
    /// `accepted`, `held_for_quality_assessment` (template pacing: may still fail with 132015)
    /// or `paused`; `None` when absent (read it as accepted).
    pub message_status: Option<MessageStatus>,
}

/// Why a request to the upstream did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamError {
    /// The platform answered with an error status: the message was not accepted.
    Rejected {
        /// HTTP status.
        http_status: u16,
        /// `error.code` (what to key on), if the body had one.
        code: Option<i64>,
        /// `error.error_subcode`.
        subcode: Option<i64>,
        /// The error's title (Graph `message` without its `(#code)` prefix).
        title: Option<String>,
        /// `error_data.details`.
        details: Option<String>,
        /// `Retry-After`, as a delay in ms.
        retry_after: Option<Millis>,
        /// The body as received (cut at [`MAX_ERROR_BODY`]), for body-text rules and records.
        body: String,
    },
    /// No answer in time after the request was (or may have been) sent: outcome unknown.
    Timeout,
    /// The connection failed after it was established: the request may have reached the
    /// platform; outcome unknown.
    Connection(String),
    /// No connection could be made (refused, DNS, TLS, connect timeout): nothing was sent.
    Connect(String),
    /// A success status with a body that cannot be read as an answer: outcome unknown.
    Malformed {
        /// HTTP status.
        http_status: u16,
        /// Why it could not be read.
        reason: String,
        /// The body (cut at [`MAX_ERROR_BODY`]).
        body: String,
    },
    /// The request could not be made as configured (e.g. a Cloud template listing without a
    /// `waba_id`): nothing was sent.
    Config(String),
    /// The upstream answered with a redirect. It is never followed: the body and the
    /// credentials stay with the configured host. The message was not accepted.
    Redirect {
        /// HTTP status (3xx).
        http_status: u16,
        /// Where it pointed (`Location`), if anywhere.
        location: Option<String>,
    },
}

impl UpstreamError {
    /// True when the message may have gone out (timeout or broken connection after sending, or
    /// an unreadable success): reconcile before resending.
    pub fn outcome_unknown(&self) -> bool {
        matches!(
            self,
            UpstreamError::Timeout | UpstreamError::Connection(_) | UpstreamError::Malformed { .. }
        )
    }

    /// The platform's error code, for a rejection that carried one.
    pub fn code(&self) -> Option<i64> {
        match self {
            UpstreamError::Rejected { code, .. } => *code,
            _ => None,
        }
    }

    /// The HTTP status, when an answer came.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            UpstreamError::Rejected { http_status, .. }
            | UpstreamError::Malformed { http_status, .. }
            | UpstreamError::Redirect { http_status, .. } => Some(*http_status),
            _ => None,
        }
    }

    /// `Retry-After` of a rejection, ms.
    pub fn retry_after(&self) -> Option<Millis> {
        match self {
            UpstreamError::Rejected { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether the upstream could not be reached or did not answer in time (as opposed to an
    /// answer, even an error, or a request that was never made).
    pub fn unreachable(&self) -> bool {
        matches!(
            self,
            UpstreamError::Timeout | UpstreamError::Connection(_) | UpstreamError::Connect(_)
        )
    }

    /// The kind's name: `rejected`, `timeout`, `connection`, `connect`, `malformed`, `config`,
    /// `redirect`.
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamError::Rejected { .. } => "rejected",
            UpstreamError::Timeout => "timeout",
            UpstreamError::Connection(_) => "connection",
            UpstreamError::Connect(_) => "connect",
            UpstreamError::Malformed { .. } => "malformed",
            UpstreamError::Config(_) => "config",
            UpstreamError::Redirect { .. } => "redirect",
        }
    }
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamError::Rejected {
                http_status,
                code,
                title,
                details,
                ..
            } => {
                write!(f, "rejected with HTTP {http_status}")?;
                if let Some(c) = code {
                    write!(f, " (#{c})")?;
                }
                if let Some(t) = title {
                    write!(f, " {t}")?;
                }
                if let Some(d) = details {
                    write!(f, ": {d}")?;
                }
                Ok(())
            }
            UpstreamError::Timeout => f.write_str("timed out; the outcome is unknown"),
            UpstreamError::Connection(e) => {
                write!(
                    f,
                    "connection failed after sending ({e}); the outcome is unknown"
                )
            }
            UpstreamError::Connect(e) => write!(f, "could not connect ({e}); nothing was sent"),
            UpstreamError::Malformed {
                http_status,
                reason,
                ..
            } => write!(
                f,
                "HTTP {http_status} with an unreadable answer ({reason}); the outcome is unknown"
            ),
            UpstreamError::Config(e) => write!(f, "not configured: {e}"),
            UpstreamError::Redirect {
                http_status,
                location,
            } => write!(
                f,
                "HTTP {http_status} redirect to {}: not followed (the message and the credentials stay with the configured upstream); fix upstream.base_url",
                location.as_deref().unwrap_or("nowhere")
            ),
        }
    }
}

impl std::error::Error for UpstreamError {}

/// A template as the upstream lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateInfo {
    /// Name.
    pub name: String,
    /// Locale.
    pub language: String,
    /// Status (`Approved`, `Paused`, …).
    pub status: reply::ListedStatus,
    /// Category, when a known one.
    pub category: Option<mynah_wire::template::Category>,
    /// Template id, when listed.
    pub id: Option<String>,
    /// Components as listed (JSON).
    pub components: serde_json::Value,
    /// Quality score, when listed.
    pub quality: Option<String>,
    /// `POSITIONAL` or `NAMED`, when listed.
    pub parameter_format: Option<String>,
}

impl From<reply::ListedTemplate> for TemplateInfo {
    fn from(t: reply::ListedTemplate) -> Self {
        TemplateInfo {
            name: t.name,
            language: t.language,
            status: t.status,
            category: t.category,
            id: t.id,
            components: t.components,
            quality: t.quality,
            parameter_format: t.parameter_format,
        }
    }
}

struct Inner {
    client: Client,
    config: UpstreamConfig,
    /// `POST` target of sends, parsed once (a parse per send was 1 % of a benchmark's CPU).
    messages_url: reqwest::Url,
    /// `GET` target of template listings (`None`: Cloud without a `waba_id`).
    templates_url: Option<String>,
    /// The credential header.
    auth: (header::HeaderName, HeaderValue),
}

/// The client. Cheap to clone: clones share one connection pool (kept-alive connections).
#[derive(Clone)]
pub struct Upstream {
    inner: Arc<Inner>,
}

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upstream")
            .field("dialect", &self.inner.config.dialect)
            .field("messages_url", &self.inner.messages_url.as_str())
            .finish()
    }
}

fn required<'a>(v: &'a Option<String>, what: &str, dialect: Dialect) -> Result<&'a str, String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("the {dialect} upstream needs {what}"))
}

fn cut(body: &[u8]) -> String {
    let end = body.len().min(MAX_ERROR_BODY);
    String::from_utf8_lossy(&body[..end]).into_owned()
}

/// `Retry-After` in seconds (fractions allowed) as ms. HTTP dates are not read.
pub fn parse_retry_after(headers: &HeaderMap) -> Option<Millis> {
    let v = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    let secs: f64 = v.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| (secs * 1_000.0).ceil() as Millis)
}

/// Maps a transport error to what it says about the request's fate.
fn transport(e: reqwest::Error) -> UpstreamError {
    if e.is_connect() {
        // Includes a connect timeout: no connection, so nothing was written.
        UpstreamError::Connect(chain(&e))
    } else if e.is_timeout() {
        UpstreamError::Timeout
    } else if e.is_builder() {
        UpstreamError::Config(chain(&e))
    } else {
        UpstreamError::Connection(chain(&e))
    }
}

/// The error and its sources, one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
        source = cause.source();
    }
    s
}

/// A non-success answer as a rejection.
fn rejected(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> UpstreamError {
    if status.is_redirection() {
        return UpstreamError::Redirect {
            http_status: status.as_u16(),
            location: headers
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        };
    }
    let parsed = reply::parse_error_reply(body);
    let (code, subcode, title, details) = match parsed {
        Some(r) => (r.code, r.subcode, r.title, r.details),
        None => (None, None, None, None),
    };
    UpstreamError::Rejected {
        http_status: status.as_u16(),
        code,
        subcode,
        title,
        details,
        retry_after: parse_retry_after(headers),
        body: cut(body),
    }
}

impl Upstream {
    /// A client for `config`; checks that the dialect's credentials are there.
    pub fn new(config: UpstreamConfig) -> Result<Upstream, String> {
        let base = config.base().to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(format!("base_url {base:?} is not an http(s) URL"));
        }
        let (messages_url, templates_url, auth) = match config.dialect {
            Dialect::D360 => {
                let key = required(&config.api_key, "an api_key", config.dialect)?;
                let mut v = HeaderValue::from_str(key)
                    .map_err(|_| "api_key is not a valid header value".to_string())?;
                v.set_sensitive(true);
                (
                    format!("{base}/messages"),
                    Some(format!("{base}/v1/configs/templates")),
                    (header::HeaderName::from_static("d360-api-key"), v),
                )
            }
            Dialect::Cloud => {
                let token = required(&config.token, "a token", config.dialect)?;
                let pnid = required(&config.phone_number_id, "a phone_number_id", config.dialect)?;
                let version = config.graph_version.trim().trim_matches('/');
                if version.is_empty() {
                    return Err("graph_version is empty".to_string());
                }
                let mut v = HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|_| "token is not a valid header value".to_string())?;
                v.set_sensitive(true);
                let templates = config
                    .waba_id
                    .as_deref()
                    .map(str::trim)
                    .filter(|w| !w.is_empty())
                    .map(|waba| format!("{base}/{version}/{waba}/message_templates"));
                (
                    format!("{base}/{version}/{pnid}/messages"),
                    templates,
                    (header::AUTHORIZATION, v),
                )
            }
        };
        let mut builder = Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms.max(1)))
            .connect_timeout(Duration::from_millis(config.connect_timeout_ms.max(1)))
            // Idle connections are dropped before a server's idle timeout (the sandbox's is 60 s
            // by default) would close them under a request.
            .pool_idle_timeout(Duration::from_secs(50))
            .tcp_nodelay(true)
            // A redirect would carry the body and the credentials to another host.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("mynah-gateway/", env!("CARGO_PKG_VERSION")));
        if !config.system_proxy {
            builder = builder.no_proxy();
        }
        let client = builder.build().map_err(|e| chain(&e))?;
        let messages_url = reqwest::Url::parse(&messages_url)
            .map_err(|e| format!("base_url {base:?} does not make a URL ({messages_url}): {e}"))?;
        Ok(Upstream {
            inner: Arc::new(Inner {
                client,
                config,
                messages_url,
                templates_url,
                auth,
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &UpstreamConfig {
        &self.inner.config
    }

    /// The dialect.
    pub fn dialect(&self) -> Dialect {
        self.inner.config.dialect
    }

    /// Where sends go.
    pub fn messages_url(&self) -> &str {
        self.inner.messages_url.as_str()
    }

    /// Posts a platform JSON body (`{"messaging_product": "whatsapp", "to": …}`) unchanged.
    pub async fn send(&self, body: &[u8]) -> Result<Accepted, UpstreamError> {
        self.send_bytes(Bytes::copy_from_slice(body)).await
    }

    /// [`send`](Self::send) without copying the body.
    pub async fn send_bytes(&self, body: Bytes) -> Result<Accepted, UpstreamError> {
        let inner = &*self.inner;
        let resp = inner
            .client
            .post(inner.messages_url.clone())
            .header(inner.auth.0.clone(), inner.auth.1.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(transport)?;
        let status = resp.status();
        if status.is_success() {
            // The platform accepted; a body we cannot read leaves the wamid unknown.
            let bytes = resp.bytes().await.map_err(transport)?;
            return match reply::parse_send_reply(&bytes) {
                Ok(r) => Ok(Accepted {
                    wamid: r.wamid,
                    wa_id: r.wa_id,
                    message_status: r.message_status,
                }),
                Err(e) => Err(UpstreamError::Malformed {
                    http_status: status.as_u16(),
                    reason: e.0,
                    body: cut(&bytes),
                }),
            };
        }
        // An error status means not accepted, even if its body is cut short.
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap_or_default();
        Err(rejected(status, &headers, &bytes))
    }

    /// Every template of the account, all pages (360dialog `GET /v1/configs/templates`, Cloud
    /// `GET /{version}/{waba_id}/message_templates` following the `after` cursors).
    pub async fn list_templates(&self) -> Result<Vec<TemplateInfo>, UpstreamError> {
        let inner = &*self.inner;
        let Some(url) = inner.templates_url.as_deref() else {
            return Err(UpstreamError::Config(
                "listing Cloud templates needs the waba_id".to_string(),
            ));
        };
        let mut out = Vec::new();
        let mut next: Option<NextPage> = None;
        for _ in 0..MAX_TEMPLATE_PAGES {
            let mut req = inner
                .client
                .get(url)
                .header(inner.auth.0.clone(), inner.auth.1.clone());
            req = match (&next, inner.config.dialect) {
                (None, Dialect::Cloud) => req.query(&[("limit", "100")]),
                (None, Dialect::D360) => req.query(&[("limit", "1000"), ("offset", "0")]),
                (Some(NextPage::After(a)), _) => req.query(&[("limit", "100"), ("after", a)]),
                (Some(NextPage::Offset(o)), _) => {
                    req.query(&[("limit", "1000".to_string()), ("offset", o.to_string())])
                }
            };
            let resp = req.send().await.map_err(transport)?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let bytes = resp.bytes().await.map_err(transport)?;
            if !status.is_success() {
                return Err(rejected(status, &headers, &bytes));
            }
            let page =
                reply::parse_template_page(&bytes).map_err(|e| UpstreamError::Malformed {
                    http_status: status.as_u16(),
                    reason: e.0,
                    body: cut(&bytes),
                })?;
            out.extend(page.templates.into_iter().map(TemplateInfo::from));
            match page.next {
                // A cursor that does not move would loop for ever.
                Some(n) if Some(&n) != next.as_ref() => next = Some(n),
                _ => return Ok(out),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_from_toml_and_urls() {
        let cfg: UpstreamConfig = toml::from_str(
            r#"dialect = "cloud"
               base_url = "http://127.0.0.1:8360/"
               token = "t"
               phone_number_id = "106"
               waba_id = "102""#,
        )
        .unwrap();
        assert_eq!(cfg.graph_version, "v21.0");
        assert_eq!(cfg.timeout_ms, 10_000);
        let up = Upstream::new(cfg).unwrap();
        assert_eq!(
            up.messages_url(),
            "http://127.0.0.1:8360/v21.0/106/messages"
        );
        assert_eq!(
            up.inner.templates_url.as_deref(),
            Some("http://127.0.0.1:8360/v21.0/102/message_templates")
        );

        let cfg: UpstreamConfig =
            toml::from_str("dialect = \"360dialog\"\napi_key = \"k\"").unwrap();
        let up = Upstream::new(cfg).unwrap();
        assert_eq!(up.messages_url(), "https://waba-v2.360dialog.io/messages");
        assert_eq!(up.dialect(), Dialect::D360);

        assert!(Upstream::new(UpstreamConfig::d360("http://x", " ")).is_err());
        let mut c = UpstreamConfig::cloud("http://x", "t", "");
        assert!(Upstream::new(c.clone()).is_err());
        c.phone_number_id = Some("1".into());
        assert!(Upstream::new(c.clone()).is_ok());
        // A base that does not make a URL fails here, not at every send.
        c.base_url = Some("http://exa mple".into());
        let e = Upstream::new(c.clone()).err().unwrap();
        assert!(e.contains("does not make a URL"), "{e}");
        c.base_url = Some("ftp://x".into());
        assert!(Upstream::new(c).is_err());
        assert!(toml::from_str::<UpstreamConfig>("dialect = \"onprem\"").is_err());
    }

    #[test]
    fn retry_after_seconds() {
        let mut h = HeaderMap::new();
        assert_eq!(parse_retry_after(&h), None);
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(parse_retry_after(&h), Some(3_000));
        h.insert(header::RETRY_AFTER, HeaderValue::from_static(" 0.25 "));
        assert_eq!(parse_retry_after(&h), Some(250));
        h.insert(
            header::RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(parse_retry_after(&h), None);
    }

    #[test]
    fn rejection_reads_the_body() {
        let body = br#"{"error":{"message":"(#131056) Pair rate limit hit","type":"OAuthException","code":131056,"error_data":{"messaging_product":"whatsapp","details":"too many"},"fbtrace_id":"x"}}"#;
        let mut h = HeaderMap::new();
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
        let e = rejected(StatusCode::BAD_REQUEST, &h, body);
        assert_eq!(e.code(), Some(131056));
        assert_eq!(e.retry_after(), Some(2_000));
        assert_eq!(e.http_status(), Some(400));
        assert!(!e.outcome_unknown());
        assert!(e.to_string().contains("too many"), "{e}");
        let e = rejected(
            StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            b"You have exceeded the endpoint rate limit",
        );
        match e {
            UpstreamError::Rejected { code, body, .. } => {
                assert_eq!(code, None);
                assert!(body.contains("endpoint rate limit"));
            }
            other => panic!("{other:?}"),
        }
        assert!(UpstreamError::Timeout.outcome_unknown());
        assert!(!UpstreamError::Connect("refused".into()).outcome_unknown());
    }
}
