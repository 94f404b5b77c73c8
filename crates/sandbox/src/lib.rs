//! `mynah-sandbox`: the emulated WhatsApp Business platform.
//!
//! The platform's state ([`engine::World`]) lives in memory behind one lock and is journalled to
//! SQLite ([`store`]); its rules are functions of state, request and "now" that return effects
//! instead of doing I/O; every timer runs off the sandbox [`clock`] through the [`scheduler`];
//! webhooks leave through the [`webhooks`] hub, signed; the [`http`] module serves the dialects
//! (Cloud API, 360dialog, On-Premises) and the control API under `/_mynah/`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), String> {
//! let config = mynah_sandbox::config::Config::default();
//! let sandbox = mynah_sandbox::Sandbox::open(config).await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! mynah_sandbox::http::run(listener, sandbox, shutdown).await.map_err(|e| e.to_string())
//! # }
//! ```

pub mod bounds;
pub mod clock;
pub mod config;
pub mod engine;
pub mod faults;
pub mod feed;
pub mod http;
pub mod ids;
pub mod magic;
pub mod metrics;
pub mod model;
pub mod ratelimit;
pub mod sandbox;
pub mod scheduler;
pub mod store;
pub mod templates;
pub mod webhooks;

pub use sandbox::Sandbox;
