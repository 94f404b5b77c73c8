//! The gateway's web console, `/console/`: a sign-in page and one page of views (overview,
//! messages, contacts, templates, campaigns) over the app API, embedded in the binary. The
//! shared look and browser code come from `mynah-console-assets`; the pages and their module
//! (`ui/index.html`, `ui/sign-in.html`, `ui/gateway.js`) are the gateway's own.
//!
//! Signing in (`POST /console/sign-in` with the gateway key, or a `[[console.users]]` key)
//! makes a session: an `HttpOnly`, `SameSite=Strict` cookie (`Secure` when configured) that
//! stands for the gateway key on the app API (`/v1/…`), so the console's JSON is the app API's.
//! Every change through a session carries the session's CSRF token (`X-CSRF-Token`, compared
//! in constant time) and comes from the console's own origin (`Origin`, `Sec-Fetch-Site`);
//! a request with `Authorization` is the key's and the cookie plays no part in it.
//!
//! With nobody signed in the console costs the send path nothing: sessions are looked up only
//! for requests that carry the cookie, and the overview's counters are read off the send path
//! ([`overview`]).

pub mod overview;
pub mod session;

use crate::error::{AppError, Code};
use crate::gateway::Gateway;
use crate::store::Store;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use mynah_console_assets::{Asset, HTML, JS};
use serde::Deserialize;
use serde_json::json;
use session::{Session, Sessions};
use std::sync::Arc;
use std::time::Duration;

/// Where the console lives.
pub const PREFIX: &str = "/console";
/// The session cookie's name.
pub const COOKIE: &str = "mynah_console";
/// The header that carries the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

const INDEX: Asset = Asset::new("index.html", include_bytes!("../../ui/index.html"), HTML);
const SIGN_IN: Asset = Asset::new(
    "sign-in.html",
    include_bytes!("../../ui/sign-in.html"),
    HTML,
);
const OWN: &[Asset] = &[Asset::new(
    "gateway.js",
    include_bytes!("../../ui/gateway.js"),
    JS,
)];

/// The console's state: the gateway, the sessions, the overview's readings.
pub struct Console<S> {
    gw: Arc<Gateway<S>>,
    /// Who is signed in.
    pub sessions: Sessions,
    /// The counters read for the overview.
    pub samples: Arc<overview::Samples>,
}

impl<S: Store + Clone> Console<S> {
    /// The console of `gw` (nobody signed in).
    pub fn new(gw: Arc<Gateway<S>>) -> Arc<Console<S>> {
        let c = &gw.cfg.console;
        let ms = |v: i64| Duration::from_millis(u64::try_from(v).unwrap_or(0));
        let sessions = Sessions::new(ms(c.session_ttl_ms), ms(c.idle_timeout_ms));
        Arc::new(Console {
            gw,
            sessions,
            samples: Arc::new(overview::Samples::default()),
        })
    }
}

type Con<S> = State<Arc<Console<S>>>;

/// The app router with the console: its pages, sign-in and sign-out, `GET /v1/overview`, and
/// the session layer in front of every `/v1/` route. Without `[console] enabled`, `api` as it
/// is.
pub fn wrap<S: Store + Clone>(api: Router, console: Arc<Console<S>>) -> Router {
    if !console.gw.cfg.console.enabled {
        return api;
    }
    let own = Router::new()
        .route(PREFIX, get(to_console))
        .route("/console/", get(index::<S>))
        .route("/console/sign-in", get(sign_in_page).post(sign_in::<S>))
        .route("/console/sign-out", post(sign_out::<S>))
        .route("/console/session", get(session_info::<S>))
        .route("/console/assets/{name}", get(asset))
        .route("/v1/overview", get(overview_route::<S>))
        .layer(DefaultBodyLimit::max(16 * 1024))
        .with_state(console.clone());
    api.merge(own)
        .layer(axum::middleware::from_fn_with_state(console, sessions::<S>))
}

// ---------------------------------------------------------------------------------------------
// Pages

async fn to_console() -> Response {
    redirect("/console/")
}

fn redirect(to: &'static str) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::SEE_OTHER;
    r.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(to));
    r
}

/// The console's page for a session; the sign-in page's address otherwise.
async fn index<S: Store + Clone>(State(c): Con<S>, headers: HeaderMap) -> Response {
    match c.session(&headers) {
        Some(_) => serve(&headers, &INDEX),
        None => redirect("/console/sign-in"),
    }
}

async fn sign_in_page(headers: HeaderMap) -> Response {
    serve(&headers, &SIGN_IN)
}

async fn asset(headers: HeaderMap, Path(name): Path<String>) -> Response {
    match OWN
        .iter()
        .find(|a| a.name == name)
        .or_else(|| mynah_console_assets::shared(&name))
    {
        Some(a) => serve(&headers, a),
        None => AppError::new(
            Code::NotFound,
            format!("no console asset {name}; the console is at /console/"),
        )
        .into_response(),
    }
}

/// An asset with its type, entity tag and the consoles' security headers; `304` when the
/// browser has it already.
fn serve(headers: &HeaderMap, a: &Asset) -> Response {
    let fresh = a.fresh(
        headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok()),
    );
    let mut resp = if fresh {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        Response::new(Body::from(a.bytes))
    };
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(a.content_type),
    );
    if let Ok(v) = HeaderValue::from_str(&a.etag()) {
        h.insert(header::ETAG, v);
    }
    for (name, value) in mynah_console_assets::HEADERS {
        h.insert(*name, HeaderValue::from_static(value));
    }
    resp
}

// ---------------------------------------------------------------------------------------------
// Sessions

/// The session cookie's value, if the request carries one.
fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty())
}

impl<S: Store + Clone> Console<S> {
    /// The live session of the request's cookie.
    fn session(&self, headers: &HeaderMap) -> Option<(String, Session)> {
        let token = cookie(headers)?;
        let s = self.sessions.touch(token)?;
        Some((token.to_string(), s))
    }

    /// Whether a change may come from where this one comes from: a browser's `Sec-Fetch-Site`
    /// must be `same-origin` (or `none`, typed by the user), and an `Origin` must be the
    /// gateway's own (`Host`, either scheme) or one of `[console] origins`.
    fn same_origin(&self, headers: &HeaderMap) -> Result<(), AppError> {
        let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
        if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
            && !matches!(site, "same-origin" | "none")
        {
            return Err(AppError::new(
                Code::Forbidden,
                format!("a change from another site's page is refused (Sec-Fetch-Site: {site})"),
            ));
        }
        if let Some(origin) = text(header::ORIGIN) {
            let host = text(header::HOST).unwrap_or_default();
            let own = !host.is_empty()
                && (origin == format!("http://{host}") || origin == format!("https://{host}"));
            let listed = self.gw.cfg.console.origins.iter().any(|o| o == origin);
            if !(own || listed) {
                return Err(AppError::new(
                    Code::Forbidden,
                    format!(
                        "a change from the origin {origin} is refused: the console's origin is this gateway's (add a proxy's public origin to [console] origins)"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The CSRF check of a change through a session.
    fn check_change(&self, headers: &HeaderMap, s: &Session) -> Result<(), AppError> {
        self.same_origin(headers)?;
        let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        match sent {
            Some(t) if session::same_secret(t.trim(), &s.csrf) => Ok(()),
            Some(_) => Err(AppError::new(
                Code::Forbidden,
                "the X-CSRF-Token header does not match this session's token; reload the console",
            )),
            None => Err(AppError::new(
                Code::Forbidden,
                "a change through a console session needs the session's X-CSRF-Token header",
            )),
        }
    }

    fn set_cookie(&self, token: &str, max_age: Duration) -> Option<HeaderValue> {
        let secure = if self.gw.cfg.console.secure_cookie {
            "; Secure"
        } else {
            ""
        };
        HeaderValue::from_str(&format!(
            "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            max_age.as_secs()
        ))
        .ok()
    }
}

fn is_change(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// In front of every route: a `/v1/` request without `Authorization` but with the session
/// cookie is the gateway key's when the session is alive (and, for a change, its CSRF token
/// and origin check out); an ended session is told so.
async fn sessions<S: Store + Clone>(State(c): Con<S>, mut req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/v1/");
    if !api || req.headers().contains_key(header::AUTHORIZATION) {
        return next.run(req).await;
    }
    if cookie(req.headers()).is_none() {
        return next.run(req).await;
    }
    let Some((_, s)) = c.session(req.headers()) else {
        return AppError::new(
            Code::Unauthorized,
            "the console session has ended (signed out, expired or the gateway restarted): sign in again at /console/",
        )
        .into_response();
    };
    if is_change(req.method())
        && let Err(e) = c.check_change(req.headers(), &s)
    {
        tracing::warn!(user = %s.user, path = %req.uri().path(), error = %e.details, "console change refused");
        return e.into_response();
    }
    match HeaderValue::from_str(&format!("Bearer {}", c.gw.cfg.gateway_key)) {
        Ok(v) => {
            req.headers_mut().insert(header::AUTHORIZATION, v);
            next.run(req).await
        }
        Err(_) => AppError::new(
            Code::Unavailable,
            "the gateway key cannot be used in a header",
        )
        .into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    key: String,
}

/// Who a key signs in as.
fn who<S>(c: &Console<S>, key: &str) -> Option<String> {
    let cfg = &c.gw.cfg.console;
    // Every candidate is compared, so the time taken does not tell which one matched.
    let mut found = None;
    if session::same_secret(key, &c.gw.cfg.gateway_key) && cfg.gateway_key_sign_in {
        found = Some("gateway".to_string());
    }
    for u in &cfg.users {
        if session::same_secret(key, &u.key) && found.is_none() {
            found = Some(u.name.trim().to_string());
        }
    }
    found
}

async fn sign_in<S: Store + Clone>(
    State(c): Con<S>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    c.same_origin(&headers)?;
    if let Some(wait) = c.sessions.locked_out() {
        return Err(AppError::new(
            Code::TooManyAttempts,
            format!(
                "too many failed sign-ins lately: try again in {} s",
                wait.as_secs().max(1)
            ),
        )
        .retry_after(wait.as_secs()));
    }
    // JSON only: a page of another site cannot send it without the browser asking first.
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.trim_start().starts_with("application/json"));
    if !json {
        return Err(AppError::new(
            Code::InvalidBody,
            "sign in with Content-Type: application/json and a body {\"key\": \"…\"}",
        ));
    }
    let input: SignIn = serde_json::from_slice(&body).map_err(|e| {
        AppError::new(
            Code::InvalidBody,
            format!("sign in with a JSON body {{\"key\": \"…\"}}: {e}"),
        )
    })?;
    let Some(user) = who(&c, input.key.trim()) else {
        let wait = c.sessions.failed();
        tracing::warn!("console sign-in refused: the key matches no one");
        tokio::time::sleep(wait).await;
        return Err(AppError::new(
            Code::Unauthorized,
            "that key is neither the gateway key nor a console user's key; nothing was signed in",
        ));
    };
    let (token, s) = c
        .sessions
        .create(&user)
        .map_err(|e| AppError::new(Code::Unavailable, e))?;
    tracing::info!(user = %user, "console sign-in");
    let ttl = c.sessions.remaining(&s);
    let mut r = axum::Json(json!({
        "user": s.user,
        "csrf_token": s.csrf,
        "expires_in_ms": ttl.as_millis() as u64,
    }))
    .into_response();
    if let Some(v) = c.set_cookie(&token, ttl) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

async fn sign_out<S: Store + Clone>(
    State(c): Con<S>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let Some((token, s)) = c.session(&headers) else {
        return Err(AppError::new(
            Code::Unauthorized,
            "no console session to end: already signed out",
        ));
    };
    c.check_change(&headers, &s)?;
    c.sessions.remove(&token);
    tracing::info!(user = %s.user, "console sign-out");
    let mut r = axum::Json(json!({ "signed_out": true })).into_response();
    if let Some(v) = c.set_cookie("", Duration::ZERO) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(r)
}

/// Who is signed in, the CSRF token for changes, where the event feed stands.
async fn session_info<S: Store + Clone>(
    State(c): Con<S>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let Some((_, s)) = c.session(&headers) else {
        return Err(AppError::new(
            Code::Unauthorized,
            "not signed in to the console: sign in at /console/sign-in",
        ));
    };
    let last = c.gw.store.last_event_seq().await?;
    let mut r = axum::Json(json!({
        "user": s.user,
        "csrf_token": s.csrf,
        "expires_in_ms": c.sessions.remaining(&s).as_millis() as u64,
        "last_event_seq": last,
        "phone_number_id": c.gw.phone_number_id(),
        "upstream": c.gw.upstream_url(),
        "now": c.gw.now(),
    }))
    .into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// `GET /v1/overview` (the gateway key, or a session through [`sessions`]).
async fn overview_route<S: Store + Clone>(
    State(c): Con<S>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    crate::http::authorize(&c.gw, &headers)?;
    let v = overview::overview(&c.gw, &c.samples).await?;
    Ok(axum::Json(v).into_response())
}
