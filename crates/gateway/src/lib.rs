//! `mynah-gateway`: the business-side sending service — durable outbox, consent registry,
//! template cache, rate-limited dispatch, error-code-aware retries, fast-ack webhook intake.
//!
//! It talks to its upstream (the sandbox, 360dialog or the Cloud API) over HTTP only, never by
//! calling sandbox code.

pub mod clock;
