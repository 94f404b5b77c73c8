//! The sandbox console: one page (`/_mynah/ui/`) and its modules, embedded in the binary. The
//! shared look and browser code come from `mynah-console-assets`; the page and its module
//! (`ui/index.html`, `ui/sandbox.js`) are the sandbox's own. Local and unauthenticated, like
//! the control API it talks to.

use crate::model::Dialect;
use crate::sandbox::Sandbox;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use mynah_console_assets::{Asset, HTML, JS};
use mynah_wire::error::{ApiError, ErrorCode};

/// Where the console lives.
pub const PREFIX: &str = "/_mynah/ui";

const INDEX: Asset = Asset::new("index.html", include_bytes!("../../ui/index.html"), HTML);
const OWN: &[Asset] = &[Asset::new(
    "sandbox.js",
    include_bytes!("../../ui/sandbox.js"),
    JS,
)];

/// Whether a path belongs to the console.
pub fn is_console(path: &str) -> bool {
    path == PREFIX || path.starts_with("/_mynah/ui/")
}

/// Answers a console request: the page, an asset, or a JSON error as the control API's.
pub fn handle(sb: &Sandbox, req: &Request) -> Response {
    let path = req.uri().path();
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        let e = ApiError::with_details(
            ErrorCode::MynahBadRequest,
            format!("{} {path}: the console is read with GET", req.method()),
        )
        .with_http(405);
        return super::error_response(Dialect::Cloud, &e, &sb.trace_id());
    }
    if path == PREFIX {
        return redirect(&format!("{PREFIX}/"));
    }
    let rest = &path[PREFIX.len() + 1..];
    let asset = match rest {
        "" | "index.html" => Some(&INDEX),
        _ => rest.strip_prefix("assets/").and_then(|name| {
            OWN.iter()
                .find(|a| a.name == name)
                .or_else(|| mynah_console_assets::shared(name))
        }),
    };
    match asset {
        Some(a) => serve(req, a),
        None => {
            let e = ApiError::with_details(
                ErrorCode::MynahNotFound,
                format!("no console page or asset {path}; the console is at {PREFIX}/"),
            );
            super::error_response(Dialect::Cloud, &e, &sb.trace_id())
        }
    }
}

/// `GET /`: to the console.
pub fn redirect_root() -> Response {
    redirect(&format!("{PREFIX}/"))
}

fn redirect(to: &str) -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::FOUND;
    if let Ok(v) = HeaderValue::from_str(to) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// An asset with its type, entity tag and the console's security headers; `304` when the
/// browser has it already.
fn serve(req: &Request, a: &Asset) -> Response {
    let fresh = a.fresh(
        req.headers()
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok()),
    );
    let mut resp = if fresh {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else if req.method() == Method::HEAD {
        Response::new(Body::empty())
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
