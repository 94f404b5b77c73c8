//! The gateway's one table of app-facing errors: code, HTTP status, meaning. Every error of the
//! app API leaves as `{"error": {"code", "message", "details"}}` built from a row here.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

macro_rules! error_table {
    ($($(#[$doc:meta])* $name:ident = $code:literal, $http:literal, $message:literal;)*) => {
        /// An app API error code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Code {
            $($(#[$doc])* $name,)*
        }

        impl Code {
            /// Every code, in table order.
            pub const ALL: &[Code] = &[$(Code::$name,)*];

            /// The wire code (`consent_missing`).
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$name => $code,)* }
            }

            /// Its HTTP status.
            pub fn http(self) -> u16 {
                match self { $(Code::$name => $http,)* }
            }

            /// What it means.
            pub fn message(self) -> &'static str {
                match self { $(Code::$name => $message,)* }
            }
        }
    };
}

error_table! {
    /// The body is not a message the platform accepts.
    InvalidBody = "invalid_body", 400, "The message body is not valid.";
    /// An envelope field (`category`, `ttl_seconds`, `lane`, …) is not valid.
    InvalidEnvelope = "invalid_envelope", 400, "An envelope field is not valid.";
    /// The body has a top-level field that is neither the platform's nor an envelope field.
    UnknownField = "unknown_field", 400, "The body has a field the gateway does not know.";
    /// A query or path parameter is not valid.
    InvalidParameter = "invalid_parameter", 400, "A parameter is not valid.";
    /// Missing or wrong gateway key.
    Unauthorized = "unauthorized", 401, "Missing or invalid gateway key (Authorization: Bearer …).";
    /// A webhook's signature or secret did not match.
    BadSignature = "bad_signature", 401, "The webhook signature does not match.";
    /// The webhook URL handshake (`GET /webhooks?hub.mode=subscribe…`) did not match.
    VerificationFailed = "verification_failed", 403, "The webhook verification handshake failed.";
    /// A change from the console without its session's CSRF token, or from another origin.
    Forbidden = "forbidden", 403, "Refused: a change through a console session needs the session's CSRF token and must come from the console's own origin.";
    /// Too many failed console sign-ins lately.
    TooManyAttempts = "too_many_attempts", 429, "Too many failed sign-ins; wait a moment and try again.";
    /// No such object.
    NotFound = "not_found", 404, "Not found.";
    /// Wrong method for the path.
    MethodNotAllowed = "method_not_allowed", 405, "Method not allowed.";
    /// The body is too large.
    BodyTooLarge = "body_too_large", 413, "The body is too large.";
    /// The recipient has not opted in to the message's category.
    ConsentMissing = "consent_missing", 422, "The recipient has not opted in to this category.";
    /// A free-form message outside the 24-hour customer service window.
    WindowClosed = "window_closed", 422, "The customer service window is closed: free-form messages need a message from the user in the last 24 hours.";
    /// The template is not in the template cache.
    TemplateUnknown = "template_unknown", 422, "The template is not known (not in the template cache).";
    /// The template exists but cannot be sent (rejected, disabled, pending).
    TemplateInactive = "template_inactive", 422, "The template is not active.";
    /// The template message does not fit the template's definition (the platform's 132000,
    /// 132005, 132012).
    TemplateMismatch = "template_mismatch", 422, "The template message does not match the template's definition.";
    /// An `Idempotency-Key` reused with a different request.
    IdempotencyConflict = "idempotency_conflict", 409, "This Idempotency-Key was used with a different request.";
    /// The message has been handed to the platform (or was never queued) and cannot be cancelled.
    NotCancellable = "not_cancellable", 409, "The message can no longer be cancelled.";
    /// A campaign's definition is not valid.
    InvalidCampaign = "invalid_campaign", 400, "The campaign is not valid.";
    /// The campaign is not in a state that allows this.
    CampaignState = "campaign_state", 409, "The campaign's state does not allow this.";
    /// The platform refused a request the gateway made for this one with its rate limit;
    /// `Retry-After` says when to ask again.
    UpstreamRateLimited = "upstream_rate_limited", 429, "The platform's rate limit refused the request; try again after Retry-After.";
    /// Storage or upstream trouble; try again.
    Unavailable = "unavailable", 503, "The gateway cannot take the request right now.";
}

/// An app API error: a table row plus details.
#[derive(Debug, Clone)]
pub struct AppError {
    /// The row.
    pub code: Code,
    /// What exactly.
    pub details: String,
    /// Seconds for a `Retry-After` header, when waiting is the answer.
    pub retry_after_s: Option<u64>,
}

impl AppError {
    /// An error with details.
    pub fn new(code: Code, details: impl Into<String>) -> AppError {
        AppError {
            code,
            details: details.into(),
            retry_after_s: None,
        }
    }

    /// The same error with a `Retry-After` of `secs` (at least 1).
    pub fn retry_after(mut self, secs: u64) -> AppError {
        self.retry_after_s = Some(secs.max(1));
        self
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.details)
    }
}

impl From<crate::store::StoreError> for AppError {
    fn from(e: crate::store::StoreError) -> Self {
        AppError::new(Code::Unavailable, e.to_string())
    }
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: Body<'a>,
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'static str,
    message: &'static str,
    details: &'a str,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http()).unwrap_or(StatusCode::BAD_REQUEST);
        let body = Envelope {
            error: Body {
                code: self.code.as_str(),
                message: self.code.message(),
                details: &self.details,
            },
        };
        let mut r = (status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after_s {
            r.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_statuses_are_errors() {
        let mut seen = std::collections::HashSet::new();
        for c in Code::ALL {
            assert!(seen.insert(c.as_str()), "{}", c.as_str());
            assert!((400..600).contains(&c.http()));
        }
    }
}
