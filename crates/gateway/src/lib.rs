//! `mynah-gateway`: the business-side sending service — durable outbox, consent registry,
//! template cache, rate-limited dispatch, error-code-aware retries, fast-ack webhook intake.
//!
//! It talks to its upstream (the sandbox, 360dialog or the Cloud API) over HTTP only, never by
//! calling sandbox code.

pub mod campaigns;
pub mod classify;
pub mod clock;
pub mod config;
pub mod consent;
pub mod console;
pub mod dispatch;
pub mod enqueue;
pub mod error;
pub mod events;
pub mod gateway;
pub mod health;
pub mod http;
pub mod intake;
pub mod link_memo;
pub mod metrics;
pub mod model;
pub mod people;
pub mod quiet;
pub mod ratelimit;
pub mod retention;
pub mod roles;
pub mod server;
pub mod statuses;
pub mod store;
pub mod template_heads;
pub mod templates;
pub mod upstream;

pub use gateway::Gateway;
pub use server::run;
