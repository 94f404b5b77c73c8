//! The sandbox's HTTP faces: the platform's dialects at the root of the port, Mynah's control API
//! under `/_mynah/`. One handler takes every request, parses it into an endpoint, and answers
//! errors in the caller's own format.

pub mod control;
pub mod endpoint;
pub mod platform;
pub mod ui;

use crate::model::Dialect;
use crate::sandbox::Sandbox;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mynah_wire::error::ApiError;
use serde::Serialize;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The router: one handler for everything.
pub fn router(sb: Arc<Sandbox>) -> Router {
    Router::new().fallback(handle).with_state(sb)
}

async fn handle(State(sb): State<Arc<Sandbox>>, req: Request) -> Response {
    if req.uri().path() == "/metrics" && req.method() == axum::http::Method::GET {
        return metrics(&sb);
    }
    let path = req.uri().path();
    if ui::is_console(path) {
        return ui::handle(&sb, &req);
    }
    // A browser at the root goes to the console; a platform client (with its credential) gets
    // the platform's answer for an empty media id, as before.
    if path == "/"
        && req.method() == axum::http::Method::GET
        && !req.headers().contains_key("d360-api-key")
        && !req.headers().contains_key(header::AUTHORIZATION)
    {
        return ui::redirect_root();
    }
    let resp = if path.starts_with("/_mynah") {
        let resp = control::handle(sb.clone(), req).await;
        sb.metrics
            .request("control", "mynah", resp.status().as_u16());
        resp
    } else {
        platform::handle(sb, req).await
    };
    // Every 429 says when to come back. Throttling answers carry the limiter's own wait; any
    // other 429 (a fault rule refusing with a rate-limit code, say) gets one second.
    if resp.status() == StatusCode::TOO_MANY_REQUESTS
        && !resp.headers().contains_key(header::RETRY_AFTER)
    {
        return with_retry_after(resp, std::time::Duration::from_secs(1));
    }
    resp
}

/// `GET /metrics`: the gauges read now, then every metric in the text format.
fn metrics(sb: &Sandbox) -> Response {
    let (held, (awake, asleep), (hot, cold)) = {
        let world = sb.world();
        (
            world.held_count(),
            world.user_counts(),
            world.message_counts(),
        )
    };
    for (state, n) in [("awake", awake), ("asleep", asleep)] {
        sb.metrics
            .users
            .get_or_create(&crate::metrics::UserLabels { state })
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    for (place, n) in [("memory", hot as u64), ("journal", cold)] {
        sb.metrics
            .messages
            .get_or_create(&crate::metrics::PlaceLabels { place })
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    sb.metrics
        .held_messages
        .set(i64::try_from(held).unwrap_or(i64::MAX));
    sb.metrics
        .webhook_backlog
        .set(i64::try_from(sb.hub.pending()).unwrap_or(i64::MAX));
    sb.metrics
        .webhook_lag_seconds
        .set(sb.webhook_lag_ms() as f64 / 1_000.0);
    match sb.metrics.render() {
        Ok(text) => ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("rendering metrics: {e}"),
        )
            .into_response(),
    }
}

/// Serves `sb` on `listener` until `shutdown` fires, with its timer driver, within the
/// configuration's `[server]` limits (`mynah_serve`: header read and idle timeouts, a cap on
/// connections). The requests in flight finish before it returns.
pub async fn run(
    listener: TcpListener,
    sb: Arc<Sandbox>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let driver = sb.spawn_driver(shutdown.clone());
    let app = router(sb.clone());
    mynah_serve::serve(listener, app, &sb.config.server, shutdown.clone()).await;
    shutdown.cancel();
    let _ = driver.await;
    sb.limits.flush_episodes();
    // Everything accepted or changed is on disk before we return.
    if let Err(e) = sb.journal.flush().await {
        tracing::error!(error = %e, "journal flush at shutdown failed");
    }
    Ok(())
}

/// An answer that never comes: its body fails at once, so the server closes the connection
/// without a complete response (a fault rule's `drop_connection`).
pub fn severed() -> Response {
    Response::new(Body::new(Severed))
}

/// A body that fails on its first read.
struct Severed;

impl http_body::Body for Severed {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::task::Poll::Ready(Some(Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "fault rule: connection dropped",
        ))))
    }
}

/// A `200` JSON answer.
pub fn json<T: Serialize>(value: &T) -> Response {
    json_status(StatusCode::OK, value)
}

/// A JSON answer with a status.
pub fn json_status<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut resp = Response::new(Body::from(body));
            *resp.status_mut() = status;
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            resp
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// An error in the caller's dialect: Graph envelope for Cloud and 360dialog, the
/// `{"meta","errors"}` body for On-Premises.
pub fn error_response(dialect: Dialect, err: &ApiError, trace: &str) -> Response {
    let status = StatusCode::from_u16(err.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut resp = match dialect {
        Dialect::OnPrem => {
            let onprem = ApiError {
                code: err.code.onprem_equivalent(),
                ..err.clone()
            };
            json_status(status, &onprem.to_onprem())
        }
        _ => json_status(status, &err.to_graph(trace)),
    };
    if let Ok(v) = HeaderValue::from_str(trace) {
        resp.headers_mut().insert("x-fb-trace-id", v);
    }
    if status == StatusCode::UNAUTHORIZED && dialect == Dialect::Cloud {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(
                "OAuth \"Facebook Platform\" \"invalid_token\" \"Invalid OAuth access token.\"",
            ),
        );
    }
    resp
}

/// Adds `Retry-After` (whole seconds, at least 1).
pub fn with_retry_after(mut resp: Response, wait: std::time::Duration) -> Response {
    let secs = wait.as_millis().div_ceil(1_000).max(1);
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// True when the request declares a JSON body.
pub fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/json")
        })
        .unwrap_or(false)
}

/// JSON is UTF-8: a body that is not is refused whole, also where its bad bytes sit in a field
/// nobody reads (serde skips those without looking).
pub fn check_utf8(bytes: &[u8]) -> Result<(), String> {
    std::str::from_utf8(bytes).map(|_| ()).map_err(|e| {
        format!(
            "The request body is not valid UTF-8 (at byte {}); JSON bodies are UTF-8.",
            e.valid_up_to()
        )
    })
}

/// Reads a body up to `limit` bytes; `None` when it is larger.
pub async fn read_body(body: Body, limit: usize) -> Result<bytes::Bytes, String> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let text = e.to_string();
        if text.contains("length limit") {
            format!("The request body is larger than the limit of {limit} bytes.")
        } else {
            format!("The request body could not be read: {text}")
        }
    })
}
