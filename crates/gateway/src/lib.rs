//! `mynah-gateway`: the business-side sending service — durable outbox, consent registry,
//! template cache, rate-limited dispatch, error-code-aware retries, fast-ack webhook intake.
//!
//! Not built yet: the gateway core is its own issue. It will talk to the sandbox (or a real
//! upstream) over HTTP only, never by calling sandbox code.
