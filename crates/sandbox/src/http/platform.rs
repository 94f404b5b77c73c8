//! The platform's endpoints in their dialects: authentication, capacity limits, and the
//! handlers for messages, media, webhook configuration and phone numbers.

use super::endpoint::{self, Endpoint, Parsed};
use super::{error_response, is_json, json, read_body, with_retry_after};
use crate::config::MediaKind;
use crate::engine::TemplateEdit;
use crate::faults::DropWhen;
use crate::model::{Dialect, Number, WebhookTarget};
use crate::ratelimit::Bucket;
use crate::sandbox::Sandbox;
use crate::templates::{Template, TemplateStatus};
use axum::body::Body;
use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, header};
use axum::response::Response;
use bytes::Bytes;
use mynah_wire::error::{ApiError, ErrorCode};
use mynah_wire::message::{BodyFlavor, Request as ApiRequest, parse_request};
use mynah_wire::response::{MediaInfo, MediaUploaded, Success, WebhookConfig};
use serde::Deserialize;
use std::sync::Arc;

/// Handles one platform request.
pub async fn handle(sb: Arc<Sandbox>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let cfg = &sb.config;
    let parsed = match endpoint::parse(
        &parts.method,
        parts.uri.path(),
        endpoint::Versions {
            min: cfg.graph.min_version,
            max: cfg.graph.max_version,
            d360: cfg.graph.dialect_360_version,
        },
    ) {
        Ok(p) => p,
        Err(r) => {
            let mut resp = error_response(r.dialect, &r.error, &sb.trace_id());
            if let Some(allow) = r.allow {
                resp.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            sb.metrics
                .request("unknown", r.dialect.as_str(), resp.status().as_u16());
            return resp;
        }
    };
    let mut dialect = parsed.dialect;
    let result = async {
        let (number, credential, via) = authenticate(&sb, &parts, &parsed)?;
        dialect = via;
        let bucket = if matches!(
            parsed.endpoint,
            Endpoint::Messages { .. } | Endpoint::MarketingMessages { .. }
        ) {
            Bucket::Messages
        } else {
            Bucket::Other
        };
        if let Err(wait) = sb.limits.check(bucket, &credential) {
            let code = if bucket == Bucket::Messages {
                ErrorCode::RateLimitHit
            } else {
                ErrorCode::TooManyCalls
            };
            let err = ApiError::with_details(
                code,
                format!(
                    "Request rate limit for this {} exceeded; retry after the Retry-After header.",
                    credential_name(via)
                ),
            )
            .with_http(sb.config.limits.throttle_status);
            return Err((err, Some(wait)));
        }
        if bucket == Bucket::Messages {
            backpressure(&sb)?;
        }
        route(&sb, parts, body, parsed.clone(), number, via)
            .await
            .map_err(|r| (r.err, r.retry))
    }
    .await;
    let resp = match result {
        Ok(mut resp) => {
            if dialect == Dialect::Cloud
                && let Ok(v) = HeaderValue::from_str(&format!("v{}.0", parsed.version))
            {
                resp.headers_mut().insert("facebook-api-version", v);
            }
            resp
        }
        Err((err, retry)) => {
            let resp = error_response(dialect, &err, &sb.trace_id());
            match retry {
                Some(wait) => with_retry_after(resp, wait),
                None => resp,
            }
        }
    };
    sb.metrics.request(
        parsed.endpoint.name(),
        dialect.as_str(),
        resp.status().as_u16(),
    );
    resp
}

/// Concurrent rate limiting: 503 (code 2) with `Retry-After` while the webhook sender is more
/// than `limits.max_webhook_lag_ms` behind, or, as a last resort, while more than
/// `limits.max_pending` pieces of work wait.
fn backpressure(sb: &Sandbox) -> Result<(), (ApiError, Option<std::time::Duration>)> {
    let limits = &sb.config.limits;
    let lag = sb.webhook_lag_ms();
    if lag > limits.max_webhook_lag_ms {
        let err = ApiError::with_details(
            ErrorCode::ApiService,
            format!(
                "Concurrent rate limiting: webhooks are {:.1} s behind (more than {:.1} s); slow down until they catch up.",
                lag as f64 / 1_000.0,
                limits.max_webhook_lag_ms as f64 / 1_000.0
            ),
        );
        // Come back once the excess could have drained at the receivers' pace (1 to 60 s).
        let over = u64::try_from(lag - limits.max_webhook_lag_ms).unwrap_or(0);
        let wait = std::time::Duration::from_millis(over.clamp(1_000, 60_000));
        return Err((err, Some(wait)));
    }
    if sb.pending_work() > limits.max_pending {
        let err = ApiError::with_details(
            ErrorCode::ApiService,
            format!(
                "Concurrent rate limiting: more than {} events are pending; slow down until they drain.",
                limits.max_pending
            ),
        );
        return Err((err, Some(std::time::Duration::from_secs(1))));
    }
    Ok(())
}

fn credential_name(d: Dialect) -> &'static str {
    match d {
        Dialect::Cloud => "access token",
        _ => "D360-API-KEY",
    }
}

fn header_str<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn bearer(parts: &Parts) -> Option<&str> {
    let v = header_str(parts, "authorization")?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Finds the number the request's credential reaches. Returns it, the credential (the rate-limit
/// key) and the dialect the credential speaks.
fn authenticate(
    sb: &Sandbox,
    parts: &Parts,
    parsed: &Parsed,
) -> Result<(String, String, Dialect), (ApiError, Option<std::time::Duration>)> {
    let world = sb.world();
    let key = header_str(parts, "d360-api-key");
    let token = bearer(parts);
    let cloud_denied = || {
        ApiError::with_details(
            ErrorCode::AccessTokenExpired,
            "Invalid OAuth access token - Cannot parse access token",
        )
    };
    let d360_denied = || {
        ApiError::with_details(
            ErrorCode::AuthException,
            "Invalid or missing D360-API-KEY header.",
        )
    };
    match parsed.dialect {
        Dialect::Cloud => {
            let token = token.ok_or_else(|| (cloud_denied(), None))?;
            let reach = world
                .numbers_for_token(token)
                .ok_or_else(|| (cloud_denied(), None))?;
            let pnid = match &parsed.endpoint {
                Endpoint::Messages { pnid: Some(p) }
                | Endpoint::MarketingMessages { pnid: Some(p) }
                | Endpoint::ContactBook { pnid: Some(p) }
                | Endpoint::UploadMedia { pnid: Some(p) } => Some(p.as_str()),
                Endpoint::Node { id } if world.numbers.contains_key(id) => Some(id.as_str()),
                _ => None,
            };
            // Account-level objects (templates, an account's template list) need a number of that
            // account among those the token reaches.
            let account = match &parsed.endpoint {
                Endpoint::Templates { waba_id: Some(w) } => Some((w.as_str(), w.as_str())),
                Endpoint::Node { id } => world
                    .templates
                    .get(id)
                    .map(|t| (t.waba_id.as_str(), id.as_str())),
                _ => None,
            };
            let pnid = match (pnid, account) {
                (Some(p), _) if reach.iter().any(|r| r == p) => p.to_string(),
                (Some(p), _) => {
                    return Err((unsupported_object(&parts.method, p), None));
                }
                (None, Some((waba, object))) => reach
                    .iter()
                    .find(|r| world.numbers.get(*r).is_some_and(|n| n.waba_id == waba))
                    .cloned()
                    .ok_or_else(|| (unsupported_object(&parts.method, object), None))?,
                // Media objects: the token's first number owns the request; ownership is checked later.
                (None, None) => reach.first().cloned().unwrap_or_default(),
            };
            if !world.numbers.contains_key(&pnid) {
                return Err((cloud_denied(), None));
            }
            Ok((pnid, token.to_string(), Dialect::Cloud))
        }
        Dialect::D360 | Dialect::OnPrem => {
            if let Some(key) = key {
                let number = world
                    .number_for_key(key)
                    .map(|n| n.phone_number_id.clone())
                    .ok_or_else(|| (d360_denied(), None))?;
                let via = if parsed.dialect == Dialect::OnPrem {
                    Dialect::OnPrem
                } else {
                    Dialect::D360
                };
                return Ok((number, key.to_string(), via));
            }
            // The download URL and the On-Premises path also take the Cloud bearer token.
            if let (Some(token), Endpoint::Download | Endpoint::Messages { .. }) =
                (token, &parsed.endpoint)
                && (parsed.endpoint == Endpoint::Download || parsed.dialect == Dialect::OnPrem)
            {
                let reach = world
                    .numbers_for_token(token)
                    .ok_or_else(|| (cloud_denied(), None))?;
                let pnid = reach.first().cloned().unwrap_or_default();
                if !world.numbers.contains_key(&pnid) {
                    return Err((cloud_denied(), None));
                }
                let number = pnid;
                let via = if parsed.dialect == Dialect::OnPrem {
                    Dialect::OnPrem
                } else {
                    Dialect::Cloud
                };
                return Ok((number, token.to_string(), via));
            }
            Err((d360_denied(), None))
        }
    }
}

fn unsupported_object(method: &Method, id: &str) -> ApiError {
    ApiError::invalid_param(format!(
        "Unsupported {} request. Object with ID '{id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation.",
        method.as_str().to_lowercase()
    ))
}

async fn route(
    sb: &Arc<Sandbox>,
    parts: Parts,
    body: Body,
    parsed: Parsed,
    pnid: String,
    dialect: Dialect,
) -> Result<Response, Refusal> {
    match &parsed.endpoint {
        Endpoint::Messages { .. } => {
            return messages(sb, &parts, body, &pnid, dialect, parsed.version, false).await;
        }
        Endpoint::MarketingMessages { .. } => {
            return messages(sb, &parts, body, &pnid, dialect, parsed.version, true).await;
        }
        _ => {}
    }
    other(sb, parts, body, parsed, pnid, dialect)
        .await
        .map_err(Refusal::from)
}

/// A refused request: the error and, when it is throttling, how long until a retry can pass
/// (the `Retry-After` header).
struct Refusal {
    err: ApiError,
    retry: Option<std::time::Duration>,
}

impl From<ApiError> for Refusal {
    fn from(err: ApiError) -> Refusal {
        Refusal { err, retry: None }
    }
}

/// Every endpoint but `/messages`.
async fn other(
    sb: &Arc<Sandbox>,
    parts: Parts,
    body: Body,
    parsed: Parsed,
    pnid: String,
    dialect: Dialect,
) -> Result<Response, ApiError> {
    match (&parsed.endpoint, &parts.method) {
        (Endpoint::Messages { .. } | Endpoint::MarketingMessages { .. }, _) => Err(
            ApiError::with_details(ErrorCode::MynahInternal, "misrouted /messages request"),
        ),
        (Endpoint::ContactBook { .. }, _) => {
            let q: ContactBookQuery =
                serde_urlencoded::from_str(parts.uri.query().unwrap_or(""))
                    .map_err(|e| ApiError::invalid_param(format!("Invalid query: {e}")))?;
            if let Some(p) = &q.messaging_product
                && p != "whatsapp"
            {
                return Err(ApiError::invalid_param(
                    "Param messaging_product must be \"whatsapp\".",
                ));
            }
            let bsuid = q.bsuid.ok_or_else(|| ApiError::missing("bsuid"))?;
            let (deleted, fx) = sb.world().delete_contact(&pnid, &bsuid)?;
            sb.apply_durable(fx).await?;
            Ok(json(&serde_json::json!({
                "messaging_product": "whatsapp",
                "success": true,
                "deleted": deleted,
            })))
        }
        (Endpoint::UploadMedia { .. }, _) => upload(sb, parts, body, &pnid, dialect).await,
        (Endpoint::WebhookConfig, &Method::GET) => {
            let number = number_of(sb, &pnid)?;
            Ok(json(&WebhookConfig {
                url: number.webhook.url,
                headers: number.webhook.headers,
            }))
        }
        (Endpoint::WebhookConfig, _) => set_360_webhook(sb, &parts, body, &pnid).await,
        (Endpoint::Download, _) => download(sb, &parts, &pnid),
        (Endpoint::Templates { .. }, &Method::GET) => list_templates(sb, &parts, &pnid, dialect),
        (Endpoint::Templates { .. }, &Method::POST) => {
            create_template(sb, &parts, body, &pnid).await
        }
        (Endpoint::Templates { .. }, _) => {
            let q: DeleteQuery = serde_urlencoded::from_str(parts.uri.query().unwrap_or(""))
                .map_err(|e| ApiError::invalid_param(format!("Invalid query: {e}")))?;
            let name = q.name.ok_or_else(|| ApiError::missing("name"))?;
            delete_templates(sb, &pnid, &name, q.hsm_id.as_deref()).await
        }
        (Endpoint::TemplateByName { name }, _) => delete_templates(sb, &pnid, name, None).await,
        (Endpoint::TemplateUnpause { id }, _) => {
            let waba = waba_of(sb, &pnid)?;
            let now = sb.clock.now();
            let fx = {
                let mut world = sb.world();
                if world.templates.get(id).is_none_or(|t| t.waba_id != waba) {
                    return Err(unsupported_object(&Method::POST, id));
                }
                world.unpause_template(id, now)?
            };
            sb.apply_durable(fx).await?;
            Ok(json(&Success::TRUE))
        }
        (Endpoint::Node { id }, method) => {
            node(sb, &parts, body, &number_of(sb, &pnid)?, id, method.clone()).await
        }
    }
}

fn number_of(sb: &Sandbox, pnid: &str) -> Result<Number, ApiError> {
    sb.world().numbers.get(pnid).cloned().ok_or_else(|| {
        ApiError::with_details(ErrorCode::ParameterValueNotValid33, "Unknown phone number.")
    })
}

async fn json_body(sb: &Sandbox, parts: &Parts, body: Body) -> Result<Bytes, ApiError> {
    if !is_json(&parts.headers) {
        return Err(ApiError::invalid_param(
            "The request body must be JSON: send the header Content-Type: application/json.",
        )
        .with_http(415));
    }
    let bytes = read_body(body, sb.config.limits.max_body_bytes)
        .await
        .map_err(|e| ApiError::invalid_param(e).with_http(413))?;
    super::check_utf8(&bytes).map_err(ApiError::invalid_param)?;
    Ok(bytes)
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ContactBookQuery {
    messaging_product: Option<String>,
    bsuid: Option<String>,
}

/// `/messages`, or with `marketing` the Marketing Messages API's `/marketing_messages`.
async fn messages(
    sb: &Arc<Sandbox>,
    parts: &Parts,
    body: Body,
    pnid: &str,
    dialect: Dialect,
    version: u32,
    marketing: bool,
) -> Result<Response, Refusal> {
    let bytes = json_body(sb, parts, body).await?;
    let flavor = if dialect == Dialect::OnPrem {
        BodyFlavor::OnPrem
    } else {
        BodyFlavor::Cloud
    };
    let (request, marketing) = if marketing {
        let m = mynah_wire::message::parse_marketing(&bytes)?;
        let via = crate::engine::MarketingVia {
            strict: m.product_policy == mynah_wire::message::ProductPolicy::Strict,
            bid_spec: m.bid_spec,
            activity_sharing: m.message_activity_sharing,
        };
        (ApiRequest::Send(Box::new(m.message)), Some(via))
    } else {
        (parse_request(&bytes, flavor)?, None)
    };
    match request {
        ApiRequest::Send(send) => {
            // The body was parsed and validated just above; it is kept as it came, in a buffer
            // of its own (the request's bytes may share the connection's read buffer, which a
            // retained message would otherwise keep alive).
            let raw = crate::model::RawBody(bytes::Bytes::copy_from_slice(&bytes));
            let throttle = sb.config.limits.throttle_status;
            // The person the address names: every per-user limit applies to them.
            let target = sb.world().resolve(pnid, &send)?;
            if let Err(wait) = sb.limits.check(Bucket::Throughput, pnid) {
                return Err(Refusal {
                    err: ApiError::new(ErrorCode::RateLimitHit).with_http(throttle),
                    retry: Some(wait),
                });
            }
            if let Err(wait) = sb.limits.check_pair(pnid, &target.wa_id) {
                return Err(Refusal {
                    err: ApiError::new(ErrorCode::PairRateLimit).with_http(throttle),
                    retry: Some(wait),
                });
            }
            let now = sb.clock.now();
            let template = match &send.content {
                mynah_wire::message::Content::Template(t) => Some(t.name.as_str()),
                _ => None,
            };
            let verdict = sb.faults.lock().unwrap_or_else(|e| e.into_inner()).decide(
                &crate::faults::Request {
                    dialect: dialect.as_str(),
                    phone_number_id: pnid,
                    to: &target.wa_id,
                    user_id: send.to.user_id().map(|u| u.as_str()),
                    template,
                    message_type: send.content.message_type().as_str(),
                    now,
                },
            );
            if verdict.latency_ms > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(verdict.latency_ms)).await;
            }
            if verdict.drop_connection == Some(DropWhen::Before) {
                return Ok(super::severed());
            }
            if let Some(e) = verdict.refuse {
                return Err(e.into());
            }
            if let mynah_wire::message::Content::Reaction(r) = &send.content {
                // Its target may have left memory: the reaction's check reads it back.
                sb.warm(&r.message_id).await?;
            }
            let sent = sb.world().send(
                pnid,
                crate::engine::Via {
                    dialect,
                    graph_version: version,
                    marketing,
                },
                &send,
                &target,
                raw,
                verdict.fail_later,
                now,
            );
            let (response, fx) = match sent {
                Ok(sent) => sent,
                Err(err) if err.http_status() == 429 => {
                    // The messaging limit answered synchronously: room comes back when the
                    // oldest user it counts leaves the rolling window.
                    let wait = sb.world().messaging_limit_wait(pnid, now);
                    return Err(Refusal {
                        err,
                        retry: wait.map(|ms| std::time::Duration::from_millis(ms.max(1) as u64)),
                    });
                }
                Err(err) => return Err(err.into()),
            };
            sb.apply_durable(fx).await?;
            if verdict.answer_delay_ms > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(verdict.answer_delay_ms)).await;
            }
            if verdict.drop_connection == Some(DropWhen::After) {
                return Ok(super::severed());
            }
            if dialect == Dialect::OnPrem {
                return Ok(json(&response.to_onprem()));
            }
            Ok(json(&response))
        }
        ApiRequest::MarkRead(read) => {
            sb.warm(&read.message_id).await?;
            let now = sb.clock.now();
            let fx = sb.world().mark_read(
                pnid,
                &read.message_id,
                read.typing_indicator.is_some(),
                now,
            )?;
            sb.apply_durable(fx).await?;
            Ok(json(&Success::TRUE))
        }
    }
}

/// Media bytes being received by uploads in progress, counted against `media.max_total_bytes`
/// with what is stored; released when the upload ends either way.
struct Receiving<'a> {
    sb: &'a Sandbox,
    bytes: u64,
}

impl Receiving<'_> {
    /// Counts `n` more bytes; false when stored and incoming media together pass the quota.
    fn grow(&mut self, n: u64, stored: u64) -> bool {
        self.bytes = self.bytes.saturating_add(n);
        let incoming = self
            .sb
            .media_incoming
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed)
            .saturating_add(n);
        stored.saturating_add(incoming) <= self.sb.config.media.max_total_bytes
    }
}

impl Drop for Receiving<'_> {
    fn drop(&mut self) {
        self.sb
            .media_incoming
            .fetch_sub(self.bytes, std::sync::atomic::Ordering::Relaxed);
    }
}

/// An animated WebP: a `VP8X` header with the animation flag (WebP container specification).
fn animated_webp(head: &[u8]) -> bool {
    head.len() >= 21
        && &head[0..4] == b"RIFF"
        && &head[8..12] == b"WEBP"
        && &head[12..16] == b"VP8X"
        && head[20] & 0x02 != 0
}

/// A MIME type as the limits compare it: lower case, without parameters.
fn essence(mime: &str) -> String {
    mime.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn unsupported_type(mime: &str) -> ApiError {
    ApiError::with_details(
        ErrorCode::MediaUploadError,
        format!(
            "Param type: {mime:?} is not a supported media type. Supported: image/jpeg, image/png, image/webp (stickers), video/mp4, video/3gpp, audio/aac, audio/amr, audio/mpeg, audio/mp4, audio/ogg, text/plain, application/pdf and the Microsoft Office types."
        ),
    )
}

fn too_large(kind: Option<(MediaKind, bool)>, mime: Option<&str>, limit: u64) -> ApiError {
    let mib = limit as f64 / (1024.0 * 1024.0);
    let details = match kind {
        Some((kind, animated)) => {
            let key = match (kind, animated) {
                (MediaKind::Sticker, true) => "animated_sticker_max_bytes".to_string(),
                (kind, _) => format!("{}_max_bytes", kind.as_str()),
            };
            let what = match (kind, animated) {
                (MediaKind::Sticker, true) => "an animated sticker".to_string(),
                (MediaKind::Sticker, false) => "a static sticker".to_string(),
                (kind, _) => format!("{} media", kind.as_str()),
            };
            format!(
                "The file is too large: {what} ({}) may be at most {limit} bytes ({mib:.2} MiB, media.{key}).",
                mime.unwrap_or("")
            )
        }
        None => format!(
            "The file is too large: no media type may be more than {limit} bytes ({mib:.2} MiB)."
        ),
    };
    ApiError::with_details(ErrorCode::MediaUploadError, details)
}

/// How long a refused upload's remaining body is read (and dropped), so the client gets the
/// answer instead of a reset connection; and how long a pause in it ends that early.
const DRAIN_FOR: std::time::Duration = std::time::Duration::from_secs(30);
const DRAIN_IDLE: std::time::Duration = std::time::Duration::from_secs(1);

/// `POST /media` and `POST /{version}/{phone_number_id}/media`: a multipart body, streamed. The
/// file part is counted as it comes and refused as soon as it passes the limit of its type (the
/// `type` field, or the part's own `Content-Type` until that field comes; the largest limit of
/// all while neither is known) or the media quota; nothing past the limit is kept.
async fn upload(
    sb: &Arc<Sandbox>,
    parts: Parts,
    body: Body,
    pnid: &str,
    dialect: Dialect,
) -> Result<Response, ApiError> {
    let media = &sb.config.media;
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let boundary = multer::parse_boundary(content_type).map_err(|_| {
        ApiError::invalid_param(
            "Media uploads are multipart/form-data (with a boundary) with the fields file, type and messaging_product.",
        )
        .with_http(415)
    })?;
    // The file's limit, plus room for the other fields and the part headers.
    let whole = media.largest().saturating_add(1024 * 1024);
    let constraints =
        multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(whole));
    let mut multipart =
        multer::Multipart::with_constraints(body.into_data_stream(), boundary, constraints);
    let malformed = |e: multer::Error| {
        if matches!(e, multer::Error::StreamSizeExceeded { .. }) {
            too_large(None, None, media.largest())
        } else {
            ApiError::invalid_param(format!("Malformed multipart body: {e}"))
        }
    };
    let stored_at_start = sb.world().live_media_bytes(sb.clock.now());
    let mut receiving = Receiving {
        sb: sb.as_ref(),
        bytes: 0,
    };
    let (mut file, mut file_type, mut declared, mut product, mut filename) =
        (None::<Bytes>, None::<String>, None::<String>, None, None);
    let refusal = 'parts: loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break 'parts None,
            Err(e) => return Err(malformed(e)),
        };
        let mut field = field;
        match field.name().unwrap_or("") {
            "file" => {
                if file.is_some() {
                    break 'parts Some(ApiError::invalid_param(
                        "Param file: give one file per upload.",
                    ));
                }
                file_type = field.content_type().map(|m| essence(m.essence_str()));
                filename = field.file_name().map(str::to_string);
                if let Some(d) = &declared
                    && MediaKind::of(d).is_none()
                {
                    break 'parts Some(unsupported_type(d));
                }
                // The type known so far decides the limit: the `type` field, else the part's.
                let known = declared
                    .as_deref()
                    .or(file_type.as_deref())
                    .and_then(|m| MediaKind::of(m).map(|k| (k, m.to_string())));
                let mut buf = bytes::BytesMut::new();
                loop {
                    let chunk = match field.chunk().await {
                        Ok(Some(c)) => c,
                        Ok(None) => break,
                        Err(e) => return Err(malformed(e)),
                    };
                    buf.extend_from_slice(&chunk);
                    let (limit, kind) = match &known {
                        Some((MediaKind::Sticker, _)) if buf.len() < 21 => (
                            media.limit(MediaKind::Sticker, true),
                            Some((MediaKind::Sticker, true)),
                        ),
                        Some((MediaKind::Sticker, _)) => {
                            let animated = animated_webp(&buf);
                            (
                                media.limit(MediaKind::Sticker, animated),
                                Some((MediaKind::Sticker, animated)),
                            )
                        }
                        Some((k, _)) => (media.limit(*k, false), Some((*k, false))),
                        None => (media.largest(), None),
                    };
                    if buf.len() as u64 > limit {
                        break 'parts Some(too_large(
                            kind,
                            known.as_ref().map(|(_, m)| m.as_str()),
                            limit,
                        ));
                    }
                    if !receiving.grow(chunk.len() as u64, stored_at_start) {
                        let used = stored_at_start
                            .saturating_add(
                                sb.media_incoming.load(std::sync::atomic::Ordering::Relaxed),
                            )
                            .saturating_sub(receiving.bytes);
                        break 'parts Some(crate::engine::media_full(
                            used,
                            receiving.bytes,
                            media.max_total_bytes,
                        ));
                    }
                }
                file = Some(buf.freeze());
            }
            "type" => match small_text(&mut field).await {
                Ok(t) => {
                    let t = essence(&t);
                    if file.is_none() && MediaKind::of(&t).is_none() {
                        break 'parts Some(unsupported_type(&t));
                    }
                    declared = Some(t);
                }
                Err(e) => break 'parts Some(e),
            },
            "messaging_product" => match small_text(&mut field).await {
                Ok(t) => product = Some(t),
                Err(e) => break 'parts Some(e),
            },
            // Other fields are skipped (the whole stream stays bounded).
            _ => {}
        }
    };
    if let Some(err) = refusal {
        // Read what is left of the body (nothing of it is kept), so the answer reaches the
        // client; a body that goes on past the stream bound or the time limit is cut.
        drop(receiving);
        let drain = async {
            while let Ok(Ok(Some(mut field))) =
                tokio::time::timeout(DRAIN_IDLE, multipart.next_field()).await
            {
                while let Ok(Ok(Some(_))) = tokio::time::timeout(DRAIN_IDLE, field.chunk()).await {}
            }
        };
        let _ = tokio::time::timeout(DRAIN_FOR, drain).await;
        return Err(err);
    }
    if dialect == Dialect::Cloud && product.is_none() {
        return Err(ApiError::missing("messaging_product"));
    }
    if let Some(p) = &product
        && p != "whatsapp"
    {
        return Err(ApiError::invalid_param(
            "Param messaging_product must be \"whatsapp\".",
        ));
    }
    let file = file.ok_or_else(|| ApiError::missing("file"))?;
    let mime = declared
        .or(file_type)
        .ok_or_else(|| ApiError::missing("type"))?;
    let kind = MediaKind::of(&mime).ok_or_else(|| unsupported_type(&mime))?;
    let animated = kind == MediaKind::Sticker && animated_webp(&file);
    let limit = media.limit(kind, animated);
    if file.len() as u64 > limit {
        return Err(too_large(Some((kind, animated)), Some(&mime), limit));
    }
    let now = sb.clock.now();
    let uploaded = sb.world().upload_media(pnid, &mime, filename, file, now);
    drop(receiving);
    let (stored, fx) = uploaded?;
    sb.apply_durable(fx).await?;
    Ok(json(&MediaUploaded { id: stored.id }))
}

/// A short text field of a multipart body (at most 1 KiB).
async fn small_text(field: &mut multer::Field<'_>) -> Result<String, ApiError> {
    const MAX: usize = 1024;
    let name = field.name().unwrap_or("").to_string();
    let mut buf = Vec::new();
    loop {
        match field.chunk().await {
            Ok(Some(c)) => {
                buf.extend_from_slice(&c);
                if buf.len() > MAX {
                    return Err(ApiError::invalid_param(format!(
                        "Param {name} is longer than {MAX} bytes."
                    )));
                }
            }
            Ok(None) => break,
            Err(e) => {
                return Err(ApiError::invalid_param(format!(
                    "Malformed multipart body: {e}"
                )));
            }
        }
    }
    String::from_utf8(buf)
        .map(|s| s.trim().to_string())
        .map_err(|_| ApiError::invalid_param(format!("Param {name} is not UTF-8 text.")))
}

#[derive(Deserialize)]
struct SetWebhook {
    url: Option<String>,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
}

/// Checks a webhook URL and its headers at configuration: refused with code 100 naming the
/// parameter or the header.
fn check_target(
    param: &str,
    url: &str,
    headers: &std::collections::BTreeMap<String, String>,
) -> Result<crate::webhooks::TargetCheck, ApiError> {
    crate::webhooks::check_target(&format!("Param {param}"), url, headers)
        .map_err(ApiError::invalid_param)
}

/// An accepted configuration the sandbox cannot deliver to (an `https://` URL) says so: in the
/// log, and in an `X-Mynah-Warning` header of the answer (the body keeps the platform's shape).
pub(super) fn warn_target(
    mut resp: Response,
    pnid: &str,
    check: &crate::webhooks::TargetCheck,
) -> Response {
    if let crate::webhooks::TargetCheck::NoTls(why) = check {
        tracing::warn!(phone_number_id = %pnid, "{why}");
        if let Ok(v) = HeaderValue::from_str(why) {
            resp.headers_mut().insert("x-mynah-warning", v);
        }
    }
    resp
}

async fn set_360_webhook(
    sb: &Arc<Sandbox>,
    parts: &Parts,
    body: Body,
    pnid: &str,
) -> Result<Response, ApiError> {
    let bytes = json_body(sb, parts, body).await?;
    let req: SetWebhook = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::invalid_param(format!(
            "The body must be {{\"url\": \"...\", \"headers\": {{...}}}}: {e}"
        ))
    })?;
    let url = req.url.ok_or_else(|| ApiError::missing("url"))?;
    let check = check_target("url", &url, &req.headers)?;
    let target = WebhookTarget {
        url,
        headers: req.headers,
    };
    sb.set_webhook(pnid, target.clone()).await?;
    let resp = json(&WebhookConfig {
        url: target.url,
        headers: target.headers,
    });
    Ok(warn_target(resp, pnid, &check))
}

#[derive(Deserialize)]
struct CloudWebhookBody {
    webhook_configuration: Option<CloudWebhookConfig>,
}

#[derive(Deserialize)]
struct CloudWebhookConfig {
    #[serde(default)]
    override_callback_uri: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    verify_token: Option<String>,
}

async fn node(
    sb: &Arc<Sandbox>,
    parts: &Parts,
    body: Body,
    number: &Number,
    id: &str,
    method: Method,
) -> Result<Response, ApiError> {
    if id == number.phone_number_id {
        let tier = sb.world().tier_of(id).unwrap_or(u32::MAX);
        return match method {
            Method::GET => Ok(json(&serde_json::json!({
                "verified_name": number.verified_name,
                "display_phone_number": format!("+{}", number.display_phone_number),
                "quality_rating": number.health.rating,
                "whatsapp_business_manager_messaging_limit": crate::engine::tier_name(tier),
                "code_verification_status": "VERIFIED",
                "platform_type": "CLOUD_API",
                "throughput": { "level": "STANDARD" },
                "webhook_configuration": { "phone_number": number.webhook.url },
                "id": number.phone_number_id,
            }))),
            Method::POST => {
                let bytes = json_body(sb, parts, body).await?;
                let req: CloudWebhookBody = serde_json::from_slice(&bytes)
                    .map_err(|e| ApiError::invalid_param(format!("Invalid body: {e}")))?;
                let cfg = req
                    .webhook_configuration
                    .ok_or_else(|| ApiError::missing("webhook_configuration"))?;
                let url = cfg.override_callback_uri.unwrap_or_default();
                let headers = number.webhook.headers.clone();
                let check = check_target(
                    "webhook_configuration.override_callback_uri",
                    &url,
                    &headers,
                )?;
                sb.set_webhook(&number.phone_number_id, WebhookTarget { url, headers })
                    .await?;
                Ok(warn_target(
                    json(&Success::TRUE),
                    &number.phone_number_id,
                    &check,
                ))
            }
            _ => Err(unsupported_object(&method, id)),
        };
    }
    if sb.world().templates.get(id).is_some() {
        return template_node(sb, parts, body, id, method).await;
    }
    let now = sb.clock.now();
    match method {
        Method::GET => {
            let world = sb.world();
            let media = world
                .media
                .get(id)
                .filter(|m| m.phone_number_id == number.phone_number_id && m.expires_at > now)
                .ok_or_else(|| unsupported_object(&method, id))?;
            let info = MediaInfo {
                messaging_product: "whatsapp".into(),
                url: world.media_url(id, now),
                mime_type: media.mime_type.clone(),
                sha256: media.sha256.clone(),
                file_size: media.file_size.to_string(),
                id: media.id.clone(),
            };
            Ok(json(&info))
        }
        Method::DELETE => {
            let fx = {
                let mut world = sb.world();
                let owned = world
                    .media
                    .get(id)
                    .is_some_and(|m| m.phone_number_id == number.phone_number_id);
                if !owned {
                    return Err(unsupported_object(&method, id));
                }
                world.delete_media(id)
            };
            if let Some(fx) = fx {
                sb.apply_durable(fx).await?;
            }
            Ok(json(&Success::TRUE))
        }
        _ => Err(unsupported_object(&method, id)),
    }
}

#[derive(Deserialize)]
struct DownloadQuery {
    mid: Option<String>,
    ext: Option<String>,
    hash: Option<String>,
}

fn download(sb: &Arc<Sandbox>, parts: &Parts, pnid: &str) -> Result<Response, ApiError> {
    let q: DownloadQuery = serde_urlencoded::from_str(parts.uri.query().unwrap_or(""))
        .map_err(|e| ApiError::invalid_param(format!("Invalid query: {e}")))?;
    let (mid, ext, hash) = match (q.mid, q.ext, q.hash) {
        (Some(m), Some(e), Some(h)) => (m, e, h),
        _ => return Err(ApiError::missing("mid, ext and hash")),
    };
    let world = sb.world();
    let media = world
        .media_for_download(&mid, &ext, &hash, sb.clock.now())
        .map_err(|e| e.with_http(404))?;
    if media.phone_number_id != pnid {
        return Err(ApiError::with_details(
            ErrorCode::ParameterValueNotValid33,
            "The media URL is not valid or has expired.",
        )
        .with_http(404));
    }
    let mut resp = Response::new(Body::from(media.bytes.clone()));
    if let Ok(v) = HeaderValue::from_str(&media.mime_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    if let Some(name) = &media.filename
        && let Ok(v) = HeaderValue::from_str(&format!(
            "attachment; filename=\"{}\"",
            name.replace('"', "")
        ))
    {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

fn waba_of(sb: &Sandbox, pnid: &str) -> Result<String, ApiError> {
    number_of(sb, pnid).map(|n| n.waba_id)
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ListQuery {
    limit: Option<usize>,
    offset: Option<usize>,
    after: Option<String>,
    name: Option<String>,
    status: Option<String>,
    category: Option<String>,
    language: Option<String>,
}

/// One template as listings show it.
fn template_json(t: &Template, status_lower: bool, namespace: &str) -> serde_json::Value {
    let status = if status_lower {
        t.status.as_str().to_lowercase()
    } else {
        t.status.as_str().to_string()
    };
    let mut v = serde_json::json!({
        "name": t.def.name,
        "parameter_format": t.def.parameter_format,
        "components": t.def.components_json(),
        "language": t.def.language,
        "status": status,
        "category": t.def.category.as_str(),
        "id": t.id,
        "quality_score": { "score": t.quality },
        "rejected_reason": t.rejected_reason,
        "namespace": namespace,
    });
    if let Some(ttl) = t.def.message_send_ttl_seconds {
        v["message_send_ttl_seconds"] = serde_json::json!(ttl);
    }
    v
}

fn list_templates(
    sb: &Arc<Sandbox>,
    parts: &Parts,
    pnid: &str,
    dialect: Dialect,
) -> Result<Response, ApiError> {
    let q: ListQuery = serde_urlencoded::from_str(parts.uri.query().unwrap_or(""))
        .map_err(|e| ApiError::invalid_param(format!("Invalid query: {e}")))?;
    let waba = waba_of(sb, pnid)?;
    let world = sb.world();
    let namespace = world
        .accounts
        .get(&waba)
        .map(|a| a.namespace.clone())
        .unwrap_or_default();
    let status = q.status.as_deref().map(|s| {
        TemplateStatus::parse(s).ok_or_else(|| {
            ApiError::invalid_param(format!("Param status {s:?} is not a template status."))
        })
    });
    let status = status.transpose()?;
    let matching: Vec<&Template> = world
        .templates
        .of(&waba)
        .filter(|t| {
            q.name
                .as_ref()
                .is_none_or(|n| t.def.name.contains(n.as_str()))
        })
        .filter(|t| status.is_none_or(|s| t.status == s))
        .filter(|t| {
            q.category
                .as_ref()
                .is_none_or(|c| t.def.category.as_str().eq_ignore_ascii_case(c))
        })
        .filter(|t| q.language.as_ref().is_none_or(|l| t.def.language == *l))
        .collect();
    let total = matching.len();
    if dialect == Dialect::Cloud {
        let offset = q
            .after
            .as_deref()
            .and_then(|a| a.parse::<usize>().ok())
            .unwrap_or(0);
        let limit = q.limit.unwrap_or(25).clamp(1, 1_000);
        let page: Vec<serde_json::Value> = matching
            .iter()
            .skip(offset)
            .take(limit)
            .map(|t| template_json(t, false, &namespace))
            .collect();
        let mut paging = serde_json::json!({ "cursors": { "before": offset.to_string(), "after": (offset + page.len()).to_string() } });
        if offset + page.len() < total {
            paging["next"] =
                serde_json::json!(format!("?limit={limit}&after={}", offset + page.len()));
        }
        return Ok(json(&serde_json::json!({
            "data": page,
            "paging": paging,
            "summary": {
                "total_count": total,
                "message_template_count": world.templates.of(&waba).count(),
                "message_template_limit": sb.config.template_review.max_per_account,
                "are_translations_complete": true,
            },
        })));
    }
    let offset = q.offset.unwrap_or(0);
    let limit = q.limit.unwrap_or(1_000).clamp(1, 1_000);
    let lower = sb
        .config
        .template_review
        .status_case_360
        .eq_ignore_ascii_case("lower");
    let page: Vec<serde_json::Value> = matching
        .iter()
        .skip(offset)
        .take(limit)
        .map(|t| template_json(t, lower, &namespace))
        .collect();
    Ok(json(&serde_json::json!({
        "count": page.len(),
        "filters": {},
        "limit": limit,
        "offset": offset,
        "sort": ["id"],
        "total": total,
        "waba_templates": page,
    })))
}

async fn create_template(
    sb: &Arc<Sandbox>,
    parts: &Parts,
    body: Body,
    pnid: &str,
) -> Result<Response, ApiError> {
    let bytes = json_body(sb, parts, body).await?;
    let waba = waba_of(sb, pnid)?;
    let now = sb.clock.now();
    let (t, fx) = sb.world().create_template(&waba, &bytes, now)?;
    sb.apply_durable(fx).await?;
    Ok(json(
        &serde_json::json!({ "id": t.id, "status": t.status.as_str(), "category": t.def.category.as_str() }),
    ))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DeleteQuery {
    name: Option<String>,
    hsm_id: Option<String>,
}

async fn delete_templates(
    sb: &Arc<Sandbox>,
    pnid: &str,
    name: &str,
    id: Option<&str>,
) -> Result<Response, ApiError> {
    let waba = waba_of(sb, pnid)?;
    let now = sb.clock.now();
    let fx = sb.world().delete_templates(&waba, name, id, now)?;
    sb.apply_durable(fx).await?;
    Ok(json(&Success::TRUE))
}

async fn template_node(
    sb: &Arc<Sandbox>,
    parts: &Parts,
    body: Body,
    id: &str,
    method: Method,
) -> Result<Response, ApiError> {
    match method {
        Method::GET => {
            let world = sb.world();
            let t = world
                .templates
                .get(id)
                .ok_or_else(|| unsupported_object(&method, id))?;
            let namespace = world
                .accounts
                .get(&t.waba_id)
                .map(|a| a.namespace.clone())
                .unwrap_or_default();
            Ok(json(&template_json(t, false, &namespace)))
        }
        Method::POST => {
            let bytes = json_body(sb, parts, body).await?;
            let edit: TemplateEdit = serde_json::from_slice(&bytes)
                .map_err(|e| ApiError::invalid_param(format!("Invalid body: {e}")))?;
            let now = sb.clock.now();
            let (_, fx) = sb.world().edit_template(id, edit, now)?;
            sb.apply_durable(fx).await?;
            Ok(json(&Success::TRUE))
        }
        _ => Err(unsupported_object(&method, id)),
    }
}
