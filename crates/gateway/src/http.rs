//! The gateway's HTTP faces: the app API under `/v1/` (bearer gateway key), the platform's
//! webhook intake under `/webhooks`, health and the OpenAPI document. Every error leaves in the
//! one format of [`crate::error`].

use crate::error::{AppError, Code};
use crate::gateway::Gateway;
use crate::model::MessageState;
use crate::store::{
    ConversationCursor, ConversationItem, Event, InboundRecord, ListFilter, MessageRecord, Store,
};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response, Sse};
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// The OpenAPI document of the app API.
pub const OPENAPI: &str = include_str!("openapi.json");

type Gw<S> = State<Arc<Gateway<S>>>;

/// The router.
pub fn router<S: Store + Clone>(gw: Arc<Gateway<S>>) -> Router {
    let limit = gw.cfg.max_body_bytes;
    Router::new()
        .route("/v1/messages", post(send::<S>).get(list::<S>))
        .route("/v1/messages/{id}", get(one::<S>))
        .route("/v1/messages/{id}/cancel", post(cancel::<S>))
        .route("/v1/contacts/{wa_id}", get(contact::<S>))
        .route("/v1/contacts/{wa_id}/messages", get(conversation::<S>))
        .route("/v1/contacts/{wa_id}/consents", get(consents::<S>))
        .route(
            "/v1/contacts/{wa_id}/consents/{category}",
            put(put_consent::<S>).get(get_consent::<S>),
        )
        .route("/v1/consents/import", post(import::<S>))
        .route("/v1/templates", get(templates::<S>))
        .route("/v1/templates/sync", post(sync_templates::<S>))
        .route("/v1/events", get(events::<S>))
        .route(
            "/v1/campaigns",
            post(create_campaign::<S>).get(campaigns::<S>),
        )
        .route("/v1/campaigns/{id}", get(campaign::<S>))
        .route("/v1/campaigns/{id}/audience", post(campaign_audience::<S>))
        .route(
            "/v1/campaigns/{id}/recipients",
            get(campaign_recipients::<S>),
        )
        .route("/v1/campaigns/{id}/recipients.csv", get(campaign_csv::<S>))
        .route("/v1/campaigns/{id}/{action}", post(campaign_control::<S>))
        .route("/webhooks", post(intake::<S>).get(verify::<S>))
        .route("/webhooks/{*source}", post(intake::<S>).get(verify::<S>))
        .route("/health", get(health::<S>))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz::<S>))
        .route("/openapi.json", get(openapi))
        .route("/metrics", get(metrics::<S>))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::map_response(json_errors))
        .with_state(gw)
}

async fn method_not_allowed() -> AppError {
    AppError::new(
        Code::MethodNotAllowed,
        "this route does not take that method; see GET /openapi.json",
    )
}

/// Every error leaves in the app error shape: answers the framework makes itself (a body over
/// the limit, a path or query it cannot read) come as plain text and are rewritten here.
async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let text = match axum::body::to_bytes(resp.into_body(), 4_096).await {
        Ok(b) => String::from_utf8_lossy(&b).trim().to_string(),
        Err(_) => String::new(),
    };
    let code = match status.as_u16() {
        404 => Code::NotFound,
        405 => Code::MethodNotAllowed,
        413 => Code::BodyTooLarge,
        400 | 415 | 422 => Code::InvalidParameter,
        401 => Code::Unauthorized,
        403 => Code::VerificationFailed,
        _ => Code::Unavailable,
    };
    let details = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("request refused")
            .to_string()
    } else {
        text
    };
    AppError::new(code, details).into_response()
}

async fn not_found() -> AppError {
    AppError::new(Code::NotFound, "no such route; see GET /openapi.json")
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// The gateway key check (`Authorization: Bearer <key>`, the scheme in any case).
pub(crate) fn authorize<S: Store + Clone>(
    gw: &Gateway<S>,
    headers: &HeaderMap,
) -> Result<(), AppError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim_start().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.trim());
    match presented {
        Some(k) if crate::intake::secret_eq(k, &gw.cfg.gateway_key) => Ok(()),
        Some(_) => Err(AppError::new(
            Code::Unauthorized,
            "the gateway key does not match",
        )),
        None => Err(AppError::new(
            Code::Unauthorized,
            "send Authorization: Bearer <gateway key>",
        )),
    }
}

async fn send<S: Store + Clone>(
    State(gw): Gw<S>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    authorize(&gw, &headers)?;
    let mut keys = headers.get_all("idempotency-key").iter();
    let first = keys.next();
    if keys.next().is_some() {
        return Err(AppError::new(
            Code::InvalidParameter,
            "send one Idempotency-Key header, not several",
        ));
    }
    let key = crate::enqueue::idempotency_key(first.map(|v| v.as_bytes()))?;
    let accepted = crate::enqueue::enqueue(&gw, &body, key).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(accepted)).into_response())
}

/// A message as the app API shows it.
fn view(r: &MessageRecord, events: Option<&[Event]>) -> Value {
    let mut v = json!({
        "id": r.id,
        "state": r.state,
        "wamid": r.wamid,
        "to": r.to,
        "person": r.person,
        "phone_number_id": r.phone_number_id,
        "category": r.category,
        "template": r.template,
        "lane": r.lane,
        "attempts": r.attempts,
        "metadata": r.metadata.as_deref().and_then(|m| serde_json::from_str::<Value>(m).ok()),
        "reason": r.reason,
        "parked": r.parked_reason,
        "last_error": r.last_error.as_ref().map(|m| json!({ "code": r.last_error_code, "message": m })),
        "not_before": r.not_before,
        "deadline": r.deadline,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "accepted_at": r.accepted_at,
        "sent_at": r.sent_at,
        "delivered_at": r.delivered_at,
        "read_at": r.read_at,
        "failed_at": r.failed_at,
    });
    if let (Some(step), Some(obj)) = (&r.sequence, v.as_object_mut()) {
        obj.insert(
            "sequence".into(),
            json!({
                "key": step.key,
                "after": r.sequence_prev,
                "wait": step.wait,
                "timeout_ms": step.timeout_ms,
                "on_timeout": step.on_timeout,
                "on_failure": step.on_failure,
            }),
        );
    }
    if let (Some(events), Some(obj)) = (events, v.as_object_mut()) {
        let list: Vec<Value> = events
            .iter()
            .map(|e| json!({ "seq": e.seq, "type": e.kind, "at": e.at, "state": e.state, "detail": e.detail }))
            .collect();
        obj.insert("events".into(), Value::Array(list));
    }
    v
}

async fn one<S: Store + Clone>(
    State(gw): Gw<S>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    authorize(&gw, &headers)?;
    let r = gw
        .store
        .get(&id)
        .await?
        .ok_or_else(|| AppError::new(Code::NotFound, format!("no message {id}")))?;
    let events = gw.store.events(&id).await?;
    Ok(axum::Json(view(&r, Some(&events))).into_response())
}

async fn cancel<S: Store + Clone>(
    State(gw): Gw<S>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    authorize(&gw, &headers)?;
    let r = gw
        .store
        .cancel(&id, gw.now())
        .await?
        .ok_or_else(|| AppError::new(Code::NotFound, format!("no message {id}")))?;
    if r.state != MessageState::Cancelled {
        return Err(AppError::new(Code::NotCancellable, why_not_cancellable(&r)));
    }
    gw.changed();
    tracing::info!(id = %r.id, to = %r.to, "message cancelled");
    Ok(axum::Json(view(&r, None)).into_response())
}

/// Why a message that is not queued cannot be cancelled, in words.
fn why_not_cancellable(r: &MessageRecord) -> String {
    let at = |t: Option<i64>| {
        t.map(|t| format!(" at {}", crate::events::rfc3339(t)))
            .unwrap_or_default()
    };
    match r.state {
        MessageState::Sending => format!(
            "{} is being handed to the platform right now (attempt {}); its outcome will show in its timeline",
            r.id, r.attempts
        ),
        MessageState::Unknown => format!(
            "{} was handed to the platform and the answer was lost; the platform may have it, so it cannot be withdrawn",
            r.id
        ),
        MessageState::Suppressed | MessageState::Refused => format!(
            "{} was never queued: it was {} ({})",
            r.id,
            r.state,
            r.reason.as_deref().unwrap_or("a gate stopped it")
        ),
        MessageState::Failed | MessageState::Expired if r.wamid.is_none() => format!(
            "{} has already ended ({}) without reaching the platform",
            r.id, r.state
        ),
        _ => format!(
            "{} was handed to the platform{} (now {}, wamid {}); the platform offers no way to recall a message it accepted",
            r.id,
            at(r.accepted_at),
            r.state,
            r.wamid.as_deref().unwrap_or("unknown")
        ),
    }
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct ConversationQuery {
    limit: Option<usize>,
    before: Option<String>,
}

/// One message of a conversation as the app API shows it.
fn conversation_view(item: &ConversationItem) -> Value {
    match item {
        ConversationItem::Outbound(m) => {
            let body: Value = serde_json::from_str(&m.body).unwrap_or(Value::Null);
            json!({
                "direction": "outbound",
                "id": m.id,
                "wamid": m.wamid,
                "at": m.created_at,
                "type": body.get("type"),
                "state": m.state,
                "template": m.template,
                "context": body.get("context"),
                "message": body,
                "updated_at": m.updated_at,
            })
        }
        ConversationItem::Inbound(m) => inbound_view(m),
    }
}

fn inbound_view(m: &InboundRecord) -> Value {
    let message: Value = serde_json::from_str(&m.body).unwrap_or(Value::Null);
    json!({
        "direction": "inbound",
        "id": m.id,
        "wamid": m.id,
        "at": m.received_at,
        "timestamp": m.timestamp,
        "type": m.kind,
        "state": MessageState::Received,
        "from": m.wa_id,
        "person": m.person,
        "profile": { "name": m.profile_name },
        "context": message.get("context"),
        "message": message,
    })
}

/// The conversation with a contact, both directions, newest first.
async fn conversation<S: Store + Clone>(
    State(gw): Gw<S>,
    headers: HeaderMap,
    Path(wa_id): Path<String>,
    query: Result<Query<ConversationQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, AppError> {
    authorize(&gw, &headers)?;
    let Query(q) = query.map_err(|e| AppError::new(Code::InvalidParameter, e.body_text()))?;
    let wa = normalise(&wa_id)?;
    let before = match &q.before {
        Some(b) => Some(ConversationCursor::decode(b).ok_or_else(|| {
            AppError::new(
                Code::InvalidParameter,
                "before must be the `next` value of a previous page",
            )
        })?),
        None => None,
    };
    let limit = match q.limit {
        None => 50,
        Some(l @ 1..=500) => l,
        Some(l) => {
            return Err(AppError::new(
                Code::InvalidParameter,
                format!("limit {l} is not from 1 to 500"),
            ));
        }
    };
    let items = gw.store.conversation(&wa, before, limit).await?;
    let next = (items.len() == limit)
        .then(|| items.last().map(|i| i.cursor().encode()))
        .flatten();
    let messages: Vec<Value> = items.iter().map(conversation_view).collect();
    Ok(axum::Json(json!({ "wa_id": wa, "messages": messages, "next": next })).into_response())
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct ListQuery {
    state: Option<String>,
    to: Option<String>,
    lane: Option<String>,
    template: Option<String>,
    metadata: Option<String>,
    order: Option<String>,
    limit: Option<usize>,
    after: Option<String>,
}

/// `metadata=key:value` → the key and the value (the key: letters, digits, `_`, `-`, `.`).
fn metadata_filter(raw: &str) -> Result<(String, String), AppError> {
    let bad = || {
        AppError::new(
            Code::InvalidParameter,
            format!(
                "metadata {raw:?} must be key:value, the key of letters, digits, _, - and . (up to 64)"
            ),
        )
    };
    let (k, v) = raw.split_once(':').ok_or_else(bad)?;
    let ok = !k.is_empty()
        && k.len() <= 64
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !ok {
        return Err(bad());
    }
    Ok((k.to_string(), v.trim().to_string()))
}

async fn list<S: Store + Clone>(
    State(gw): Gw<S>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, AppError> {
    authorize(&gw, &headers)?;
    let Query(q) = query.map_err(|e| AppError::new(Code::InvalidParameter, e.body_text()))?;
    let bad = |what: &str| AppError::new(Code::InvalidParameter, what.to_string());
    let filter = ListFilter {
        state: match &q.state {
            Some(s) => Some(
                crate::model::MessageState::parse(s)
                    .ok_or_else(|| bad("state is not a message state"))?,
            ),
            None => None,
        },
        to: q.to.clone(),
        phone_number_id: None,
        lane: match &q.lane {
            Some(l) => Some(
                crate::model::Lane::parse(l).ok_or_else(|| bad("lane is transactional or bulk"))?,
            ),
            None => None,
        },
        template: q.template.clone().filter(|t| !t.trim().is_empty()),
        metadata: q.metadata.as_deref().map(metadata_filter).transpose()?,
        limit: match q.limit {
            None => 100,
            Some(l @ 1..=1_000) => l,
            Some(l) => return Err(bad(&format!("limit {l} is not from 1 to 1000"))),
        },
        after_id: q.after.clone(),
        newest_first: match q.order.as_deref() {
            None | Some("oldest") => false,
            Some("newest") => true,
            Some(_) => return Err(bad("order is oldest or newest")),
        },
    };
    let limit = filter.limit;
    let rows = gw.store.list(filter).await?;
    let next = (rows.len() == limit)
        .then(|| rows.last().map(|r| r.id.clone()))
        .flatten();
    let messages: Vec<Value> = rows.iter().map(|r| view(r, None)).collect();
    Ok(axum::Json(json!({ "messages": messages, "next": next })).into_response())
}

async fn put_consent<S: Store + Clone>(
    State(gw): Gw<S>,
    headers: HeaderMap,
    Path((wa_id, category)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, AppError> {
    authorize(&gw, &headers)?;
    let input: crate::consent::ConsentInput = serde_json::from_slice(&body)
        .map_err(|e| AppError::new(Code::InvalidBody, format!("consent body: {e}")))?;
    let consent = crate::consent::build(&wa_id, &category, &input, gw.now())
        .map_err(|e| AppError::new(Code::InvalidParameter, e))?;
    gw.store.put_consents(vec![consent.clone()]).await?;
    let current = gw
        .store
        .consents(&consent.wa_id)
        .await?
        .into_iter()
        .find(|c| c.category == consent.category)
        .unwrap_or(consent);
    Ok(axum::Json(current).into_response())
}

async fn get_consent<S: Store + Clone>(
    State(gw): Gw<S>,
    headers: HeaderMap,
    Path((wa_id, category)): Path<(String, String)>,
) -> Result<Response, AppError> {
    authorize(&gw, &headers)?;
    let wa = normalise(&wa_id)?;
    let found = gw
        .store
        .consents(&wa)
        .await?
        .into_iter()
        .find(|c| c.category.as_str() == category.to_ascii_lowercase());
    match found {
        Some(c) => Ok(axum::Json(c).into_response()),
        None => Err(AppError::new(
            Code::NotFound,
            format!("no {category} consent recorded for {wa}"),
        )),
    }
}

fn normalise(id: &str) -> Result<String, AppError> {
    crate::people::parse_contact_id(id)
}

/// `GET /metrics` behind the gateway key.
async fn metrics<S: Store + Clone>(
    State(gw): Gw<S>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    authorize(&gw, &headers)?;
    scrape(&gw).await
}

/// The router of the metrics-only listener (`[metrics] listen`): `GET /metrics`, no key.
pub fn metrics_router<S: Store + Clone>(gw: Arc<Gateway<S>>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(gw): Gw<S>| async move { scrape(&gw).await }),
        )
        .fallback(not_found)
        .with_state(gw)
}

/// Reads the gauges (queue depth, limiter, events pending per app endpoint), then renders.
async fn scrape<S: Store + Clone>(gw: &Gateway<S>) -> Result<Response, AppError> {
    let m = &gw.metrics;
    {
        let l = crate::gateway::lock(&gw.limiter);
        m.limiter_rate.set(l.rate());
        m.limiter_ceiling.set(l.config().rate);
    }
    let depth = gw.store.queue_depth().await?;
    m.queue_depth.clear();
    for (state, lane, n) in depth {
        m.queue_depth
            .get_or_create(&crate::metrics::QueueLabels {
                state,
                lane: lane.as_str().to_string(),
            })
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    let last = gw.store.last_event_seq().await?;
    for hook in &gw.cfg.app_webhooks {
        let cursor = gw
            .store
            .cursor(&crate::events::cursor_name(&hook.url))
            .await?;
        m.events_pending
            .get_or_create(&crate::metrics::EndpointLabels {
                endpoint: hook.url.clone(),
            })
            .set((last - cursor).max(0));
    }
    let text = m
        .render()
        .map_err(|e| AppError::new(Code::Unavailable, format!("rendering metrics: {e}")))?;
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response())
}

/// Who a contact is: their ids, identity history, consents and window.
async fn contact<S: Store + Clone>(
    State(gw): Gw<S>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    authorize(&gw, &headers)?;
    let id = normalise(&id)?;
    match crate::people::contact(&gw, &id).await? {
        Some(view) => Ok(axum::Json(view).into_response()),
        None => Err(AppError::new(
            Code::NotFound,
            format!(
                "nobody is known by {id}: a business-scoped user id is learned from the platform's webhooks or a send"
            ),
        )),
    }
}

async fn consents<S: Store + Clone>(
    State(gw): Gw<S>,
    headers: HeaderMap,
    Path(wa_id): Path<String>,
) -> Result<Response, AppError> {
    authorize(&gw, &headers)?;
    let wa = normalise(&wa_id)?;
    let current = gw.store.consents(&wa).await?;
    let history = gw.store.consent_history(&wa).await?;
    Ok(axum::Json(json!({ "current": current, "history": history })).into_response())
}

async fn import<S: Store + Clone>(
    State(gw): Gw<S>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    authorize(&gw, &headers)?;
    let csv = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/csv"));
    let now = gw.now();
    let parsed = if csv {
        crate::consent::parse_csv(&body, now)
    } else {
        crate::consent::parse_json(&body, now)
    };
    let (rows, errors) = parsed.map_err(|e| AppError::new(Code::InvalidBody, e))?;
    let imported = rows.len();
    if !rows.is_empty() {
        gw.store.put_consents(rows).await?;
    }
    Ok(axum::Json(json!({ "imported": imported, "errors": errors })).into_response())
}

async fn templates<S: Store + Clone>(
    State(gw): Gw<S>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    authorize(&gw, &headers)?;
    template_list(&gw).await
}

async fn template_list<S: Store + Clone>(gw: &Gateway<S>) -> Result<Response, AppError> {
    let list: Vec<Value> = gw
        .store
        .templates()
        .await?
        .into_iter()
        .map(|t| {
            json!({
                "name": t.name, "language": t.language, "category": t.category,
                "status": t.status, "id": t.id,
                "components": serde_json::from_str::<Value>(&t.components).unwrap_or(Value::Null),
            })
        })
        .collect();
    Ok(axum::Json(json!({ "templates": list })).into_response())
}

async fn sync_templates<S: Store + Clone>(
    State(gw): Gw<S>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    authorize(&gw, &headers)?;
    crate::templates::sync(&gw).await.map_err(sync_error)?;
    template_list(&gw).await
}

/// A failed sync: the platform's rate limit is the caller's to wait out (429 with its
/// `Retry-After`); anything else is the gateway's trouble (503).
fn sync_error(e: crate::templates::SyncError) -> AppError {
    use crate::templates::SyncError;
    match &e {
        SyncError::Upstream(u) if u.http_status() == Some(429) => {
            let secs = u
                .retry_after()
                .map_or(1, |ms| (ms.max(0) as u64).div_ceil(1000));
            AppError::new(Code::UpstreamRateLimited, format!("template sync: {e}"))
                .retry_after(secs)
        }
        _ => AppError::new(Code::Unavailable, format!("template sync: {e}")),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct EventsQuery {
    after: Option<i64>,
    types: Option<String>,
}

async fn events<S: Store + Clone>(
    State(gw): Gw<S>,
    headers: HeaderMap,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, AppError> {
    authorize(&gw, &headers)?;
    let Query(q) = query.map_err(|e| AppError::new(Code::InvalidParameter, e.body_text()))?;
    let last_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    let after = last_id.or(q.after).unwrap_or(0);
    let filter = q.types.as_deref().map(crate::events::parse_types);
    let stream = crate::events::sse_stream(
        gw.store.clone(),
        after,
        gw.wake_events.clone(),
        filter,
        gw.shutdown.clone(),
    );
    Ok(Sse::new(stream)
        .keep_alive(axum::response::sse::KeepAlive::default())
        .into_response())
}

/// Webhook intake: verify, store the raw body durably, answer 200; processing comes after.
async fn intake<S: Store + Clone>(
    State(gw): Gw<S>,
    source: Option<Path<String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    let started = std::time::Instant::now();
    let answer = take_in(&gw, source, &headers, body).await;
    gw.metrics
        .intake_latency
        .observe(started.elapsed().as_secs_f64());
    answer
}

async fn take_in<S: Store + Clone>(
    gw: &Gateway<S>,
    source: Option<Path<String>>,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    if !gw.cfg.app_secret.is_empty() {
        let sig = headers
            .get("x-hub-signature-256")
            .and_then(|v| v.to_str().ok());
        if !crate::intake::signature_ok(&gw.cfg.app_secret, sig, &body) {
            return Err(AppError::new(
                Code::BadSignature,
                "X-Hub-Signature-256 is missing or does not match the app secret",
            ));
        }
    }
    if let Some((name, value)) = &gw.cfg.webhook_secret_header {
        let got = headers.get(name.as_str()).and_then(|v| v.to_str().ok());
        if !got.is_some_and(|g| crate::intake::secret_eq(g, value)) {
            return Err(AppError::new(
                Code::BadSignature,
                format!("the {name} header is missing or wrong"),
            ));
        }
    }
    let item = crate::store::InboxItem {
        received_at: gw.now(),
        body: body.to_vec(),
        source: source.map_or_else(|| "default".to_string(), |Path(s)| s),
    };
    gw.store.append_inbox(vec![item]).await?;
    gw.metrics.webhooks_received.inc();
    gw.health.webhook_received(gw.now());
    gw.wake_inbox.notify_one();
    Ok(axum::Json(json!({ "received": true })).into_response())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Handshake {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    verify_token: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
}

/// The `GET` verification handshake: echo `hub.challenge` when the token matches.
async fn verify<S: Store + Clone>(State(gw): Gw<S>, Query(q): Query<Handshake>) -> Response {
    let ok = q.mode.as_deref() == Some("subscribe")
        && q.verify_token
            .as_deref()
            .is_some_and(|t| crate::intake::secret_eq(t, &gw.cfg.verify_token));
    match (ok, q.challenge) {
        (true, Some(c)) => ([(header::CONTENT_TYPE, "text/plain")], c).into_response(),
        _ => AppError::new(
            Code::VerificationFailed,
            "hub.mode must be subscribe and hub.verify_token must match the gateway's verify_token",
        )
        .into_response(),
    }
}

/// The process runs and answers.
async fn livez() -> Response {
    axum::Json(json!({ "status": "live" })).into_response()
}

/// Ready to take work: the store answers, the template cache was loaded from the upstream (when
/// the template gate is on), and the upstream answers. 503 with what is missing otherwise.
async fn readyz<S: Store + Clone>(State(gw): Gw<S>) -> Response {
    let store = gw.store.cursor("readyz").await.is_ok();
    let templates = !gw.cfg.gates.template
        || gw
            .templates_synced
            .load(std::sync::atomic::Ordering::Acquire);
    let report = gw.health.report();
    let upstream = report.upstream.reachable && report.upstream.last_answer_at.is_some();
    let ready = store && templates && upstream;
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": { "store": store, "templates": templates, "upstream": upstream },
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

/// Liveness and the links to the platform: `status` is `degraded` while the upstream cannot be
/// reached or sends go without webhooks.
async fn health<S: Store + Clone>(State(gw): Gw<S>) -> Response {
    let r = gw.health.report();
    axum::Json(json!({
        "status": r.status,
        "upstream": {
            "dialect": gw.upstream.dialect().as_str(),
            "url": gw.upstream_url(),
            "reachable": r.upstream.reachable,
            "failing_since": r.upstream.failing_since,
            "failures": r.upstream.failures,
            "last_error": r.upstream.last_error,
            "last_answer_at": r.upstream.last_answer_at,
        },
        "throttle": r.throttle,
        "webhooks": r.webhooks,
        "phone_number_id": gw.phone_number_id(),
        "now": gw.now(),
    }))
    .into_response()
}

// ---------------------------------------------------------------------------------------------
// Campaigns

async fn create_campaign<S: Store + Clone>(
    State(gw): Gw<S>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    authorize(&gw, &headers)?;
    let v = crate::campaigns::create(&gw, &body).await?;
    Ok((StatusCode::CREATED, axum::Json(v)).into_response())
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct CampaignsQuery {
    state: Option<String>,
    limit: Option<usize>,
}

/// The campaigns, newest first, each as `GET /v1/campaigns/{id}` shows it.
async fn campaigns<S: Store + Clone>(
    State(gw): Gw<S>,
    headers: HeaderMap,
    query: Result<Query<CampaignsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, AppError> {
    use crate::model::CampaignState as C;
    authorize(&gw, &headers)?;
    let Query(q) = query.map_err(|e| AppError::new(Code::InvalidParameter, e.body_text()))?;
    let states = match q.state.as_deref() {
        None => vec![
            C::Draft,
            C::Scheduled,
            C::Running,
            C::Paused,
            C::Finished,
            C::Cancelled,
        ],
        Some(s) => vec![C::ALL.iter().copied().find(|c| c.as_str() == s).ok_or_else(|| {
            AppError::new(
                Code::InvalidParameter,
                format!(
                    "state {s:?} is not a campaign state (draft, scheduled, running, paused, finished, cancelled)"
                ),
            )
        })?],
    };
    let limit = match q.limit {
        None => 50,
        Some(l @ 1..=200) => l,
        Some(l) => {
            return Err(AppError::new(
                Code::InvalidParameter,
                format!("limit {l} is not from 1 to 200"),
            ));
        }
    };
    let mut found = gw.store.campaigns_in(states).await?;
    found.reverse();
    let mut list = Vec::new();
    for c in found.iter().take(limit) {
        list.push(crate::campaigns::view(&gw, &c.id).await?);
    }
    Ok(axum::Json(json!({ "campaigns": list })).into_response())
}

async fn campaign<S: Store + Clone>(
    State(gw): Gw<S>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    authorize(&gw, &headers)?;
    Ok(axum::Json(crate::campaigns::view(&gw, &id).await?).into_response())
}

async fn campaign_control<S: Store + Clone>(
    State(gw): Gw<S>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
) -> Result<Response, AppError> {
    authorize(&gw, &headers)?;
    Ok(axum::Json(crate::campaigns::control(&gw, &id, &action).await?).into_response())
}

/// The audience as CSV, streamed: read in chunks and added in batches, whatever its size.
async fn campaign_audience<S: Store + Clone>(
    State(gw): Gw<S>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Body,
) -> Result<Response, AppError> {
    authorize(&gw, &headers)?;
    let charset = crate::campaigns::Charset::of_content_type(
        headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
    )?;
    let stream = body.into_data_stream();
    let v = crate::campaigns::import_csv_with(&gw, &id, stream, charset).await?;
    Ok(axum::Json(v).into_response())
}

#[derive(Deserialize)]
struct RecipientsQuery {
    state: Option<String>,
    after: Option<i64>,
    limit: Option<usize>,
}

async fn campaign_recipients<S: Store + Clone>(
    State(gw): Gw<S>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<RecipientsQuery>,
) -> Result<Response, AppError> {
    authorize(&gw, &headers)?;
    let v = crate::campaigns::recipients(
        &gw,
        &id,
        q.state,
        q.after.unwrap_or(0),
        q.limit.unwrap_or(100),
    )
    .await?;
    Ok(axum::Json(v).into_response())
}

async fn campaign_csv<S: Store + Clone>(
    State(gw): Gw<S>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<RecipientsQuery>,
) -> Result<Response, AppError> {
    authorize(&gw, &headers)?;
    let csv = crate::campaigns::recipients_csv(gw, id, q.state).await?;
    // A store failure part-way ends the body early (the status line is already sent).
    let body = axum::body::Body::from_stream(futures_util::StreamExt::map(csv, |r| {
        r.map_err(|e| std::io::Error::other(e.details))
    }));
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response())
}
