//! Everything about the gateway that is configurable, with defaults (TOML, `--config`).

use crate::clock::Millis;
use crate::ratelimit::{NumberLimitConfig, PairLimitConfig};
use crate::upstream::{Dialect, UpstreamConfig};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The development key apps present (`Authorization: Bearer …`), printed at start.
pub const DEV_GATEWAY_KEY: &str = "mynah-gateway-key";

/// The gateway's configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where it listens.
    pub listen: String,
    /// Data directory (SQLite); `None` keeps everything in memory.
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL instead of SQLite (`postgres://user:password@host:port/database`): several
    /// gateway instances may share the database. `None`: SQLite in `data_dir`.
    pub database_url: Option<String>,
    /// The PostgreSQL schema the gateway's tables live in (created if missing; lowercase letters,
    /// digits and `_`). `None`: the connection's default (`public`). Instances share state only
    /// when they name the same database and schema.
    pub database_schema: Option<String>,
    /// The key apps present.
    pub gateway_key: String,
    /// App secret: incoming webhooks must carry a valid `X-Hub-Signature-256`. Empty: not checked
    /// (unless `webhook_secret_header` is set).
    pub app_secret: String,
    /// 360dialog-style shared secret: `(header name, value)` incoming webhooks must carry.
    pub webhook_secret_header: Option<(String, String)>,
    /// Accept webhooks that carry neither a signature nor the shared secret. `mynah gateway`
    /// refuses to start without a way to authenticate them unless this is set
    /// (`--unauthenticated-webhooks`): anyone who can reach the intake could forge statuses,
    /// inbound messages and template changes.
    pub unauthenticated_webhooks: bool,
    /// `hub.verify_token` the `GET` handshake expects.
    pub verify_token: String,
    /// The upstream: 360dialog or the Cloud API (or the sandbox in either dialect).
    pub upstream: UpstreamConfig,
    /// The number's send rate (from the upstream's limits); the dialect's preset when absent.
    pub rate: Option<NumberLimitConfig>,
    /// The per-recipient pair limit.
    pub pair: PairLimitConfig,
    /// Error classifier rows and policy, tried before the built-in table (TOML of
    /// `classify::Overrides`).
    pub classifier: Option<toml::Value>,
    /// Policy gates before sending.
    pub gates: Gates,
    /// What happens to a message whose send outcome is unknown after a crash.
    pub restart_policy: RestartPolicy,
    /// Dispatch.
    pub dispatch: DispatchConfig,
    /// Time-to-live drop detection: a message not delivered by its TTL plus this buffer is
    /// `expired` (ms).
    pub ttl_buffer_ms: Millis,
    /// Default time-to-live when a message names none, by category (ms).
    pub default_ttl_ms: Millis,
    /// Time-to-live of authentication messages (ms).
    pub auth_ttl_ms: Millis,
    /// Inbound texts that withdraw marketing consent (compared trimmed, case-insensitively).
    pub opt_out_keywords: Vec<String>,
    /// Template re-sync interval (ms); 0 never re-syncs after the start.
    pub template_sync_ms: Millis,
    /// Where state changes are pushed (Standard Webhooks).
    pub app_webhooks: Vec<AppWebhook>,
    /// Maximum request body, bytes.
    pub max_body_bytes: usize,
    /// How long what is no longer needed is kept.
    pub retention: Retention,
    /// Defaults of ordered sequences (a message's `sequence` envelope field may override them).
    pub sequences: Sequences,
    /// Where `GET /metrics` is served besides the API (behind the key there).
    pub metrics: MetricsConfig,
    /// Defaults of campaigns.
    pub campaigns: Campaigns,
    /// The web console (`/console/`): who may sign in, sessions, cookies.
    pub console: Console,
    /// Seed of the retry jitter.
    pub seed: u64,
    /// The HTTP server's limits: header read timeout, idle timeout, connection cap.
    pub server: mynah_serve::ServerConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8361".to_string(),
            data_dir: None,
            database_url: None,
            database_schema: None,
            gateway_key: DEV_GATEWAY_KEY.to_string(),
            app_secret: String::new(),
            webhook_secret_header: None,
            unauthenticated_webhooks: false,
            verify_token: "mynah-verify".to_string(),
            upstream: UpstreamConfig::d360("http://127.0.0.1:8360", "mynah-dev-key"),
            rate: None,
            pair: PairLimitConfig::default(),
            classifier: None,
            gates: Gates::default(),
            restart_policy: RestartPolicy::AtLeastOnce,
            dispatch: DispatchConfig::default(),
            ttl_buffer_ms: 10 * 60_000,
            default_ttl_ms: 30 * 24 * 3_600_000,
            auth_ttl_ms: 10 * 60_000,
            opt_out_keywords: [
                "STOP",
                "UNSUBSCRIBE",
                "STOPP",
                "ARRET",
                "ALTO",
                "BAJA",
                "CANCEL",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            template_sync_ms: 15 * 60_000,
            app_webhooks: Vec::new(),
            max_body_bytes: 1024 * 1024,
            retention: Retention::default(),
            sequences: Sequences::default(),
            metrics: MetricsConfig::default(),
            campaigns: Campaigns::default(),
            console: Console::default(),
            seed: 1,
            server: mynah_serve::ServerConfig::default(),
        }
    }
}

impl Config {
    /// How incoming webhooks are authenticated, in words (for the banner and errors).
    pub fn webhook_auth(&self) -> String {
        match (&self.app_secret, &self.webhook_secret_header) {
            (s, _) if !s.is_empty() => {
                "verified with the app secret (X-Hub-Signature-256)".to_string()
            }
            (_, Some((name, _))) => format!("verified by the shared-secret header {name}"),
            _ => "NOT AUTHENTICATED: anyone who can reach this address can forge statuses, inbound messages and template changes".to_string(),
        }
    }

    /// Refuses a configuration that would be unsafe on `listen`: webhooks nobody authenticates
    /// (unless `unauthenticated_webhooks` says so), and the development gateway key on an
    /// address other than loopback.
    pub fn check_exposure(&self, listen: std::net::SocketAddr) -> Result<(), String> {
        let authenticated = !self.app_secret.is_empty() || self.webhook_secret_header.is_some();
        if !authenticated && !self.unauthenticated_webhooks {
            return Err(
                "incoming webhooks would not be authenticated: give the platform's app secret (--app-secret, MYNAH_APP_SECRET or app_secret) or a shared-secret header (webhook_secret_header), or pass --unauthenticated-webhooks to accept unsigned webhooks knowingly".to_string(),
            );
        }
        if !listen.ip().is_loopback() && self.gateway_key == DEV_GATEWAY_KEY {
            return Err(format!(
                "the gateway listens on {listen}, beyond this machine, with the development key {DEV_GATEWAY_KEY:?}: choose a key of your own (--gateway-key, MYNAH_GATEWAY_KEY or gateway_key)"
            ));
        }
        Ok(())
    }

    /// The send rate in force: configured, or the dialect's preset.
    pub fn rate(&self) -> NumberLimitConfig {
        self.rate.clone().unwrap_or(match self.upstream.dialect {
            Dialect::D360 => NumberLimitConfig::d360(),
            Dialect::Cloud => NumberLimitConfig::cloud(),
        })
    }
}

/// The checks made before a message is accepted into the outbox; each can be switched off.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Gates {
    /// Business-initiated messages need the recipient's opt-in for their category.
    pub consent: bool,
    /// Free-form messages need an open 24-hour window (from inbound webhooks).
    pub window: bool,
    /// Templates must be known and active in the template cache.
    pub template: bool,
    /// Template messages must fit the cached template's definition (parameter counts, kinds and
    /// lengths: the platform's 132000, 132005, 132012), checked at enqueue.
    pub template_parameters: bool,
    /// Marketing templates to US numbers are suppressed (+1 Canada is not the US).
    pub us_marketing: bool,
    /// A template sent instead of a free-form message whose window is closed (131047), if any.
    pub window_fallback: Option<serde_json::Value>,
}

impl Default for Gates {
    fn default() -> Self {
        Gates {
            consent: true,
            window: true,
            template: true,
            template_parameters: true,
            us_marketing: true,
            window_fallback: None,
        }
    }
}

/// What the gateway does with a message whose send outcome is unknown (a crash or a timeout
/// between sending and the answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestartPolicy {
    /// Send it again (a duplicate is possible; `biz_opaque_callback_data` tells them apart).
    AtLeastOnce,
    /// Mark it `unknown`; a later status webhook (correlated through
    /// `biz_opaque_callback_data`) settles it.
    AtMostOnce,
}

/// Dispatcher tuning.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DispatchConfig {
    /// Sends in flight at once. It must cover the send rate times the upstream's answer time
    /// (1,000 messages/s answered in 250 ms need 250), or the rate cannot be reached.
    pub concurrency: usize,
    /// Rows claimed per round.
    pub batch: usize,
    /// How long a claim lasts before its outcome counts as unknown (ms).
    pub lease_ms: Millis,
    /// Attempts before a retryable failure becomes final.
    pub max_attempts: i64,
    /// At least once: how long a send whose outcome is unknown waits for a status webhook to
    /// settle it (through `biz_opaque_callback_data`) before it is sent again (ms).
    pub reconcile_ms: Millis,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        DispatchConfig {
            concurrency: 256,
            batch: 256,
            lease_ms: 60_000,
            max_attempts: 12,
            reconcile_ms: 2_000,
        }
    }
}

/// How long the gateway keeps records it no longer needs, ms after they arrived (0 keeps them
/// for ever; so does any value ≤ 0). Messages and their timelines are kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Retention {
    /// Statuses parked for a wamid no message claimed (sent by another tool on the same number,
    /// or for a send whose answer never came).
    pub orphans_ms: Millis,
    /// Webhook dedupe keys. Keep them longer than the platform redelivers a webhook (up to
    /// 7 days), or a late redelivery is applied twice.
    pub dedupe_keys_ms: Millis,
    /// Raw webhook bodies once processed (or found to be duplicates). Bodies that could not be
    /// parsed are never deleted.
    pub inbox_ms: Millis,
    /// How often the sweep runs.
    pub sweep_ms: Millis,
}

/// `GET /metrics`: always on the API listener behind the gateway key; with `listen`, also on a
/// listener of its own without the key (for a scraper on a private network).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// `host:port` of the metrics-only listener.
    pub listen: Option<String>,
}

/// Defaults of ordered sequences: messages posted with the same `sequence` key to one person go
/// out one at a time, each after the one before reached `wait`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sequences {
    /// What the message before must reach: `delivered` (or read) or `read`.
    pub wait: crate::model::SequenceWait,
    /// How long a message waits for the one before it, ms.
    pub timeout_ms: Millis,
    /// Then: `send_anyway` or `fail_rest`.
    pub on_timeout: crate::model::OnSequenceTimeout,
    /// When a message of the sequence fails, expires or is cancelled: `stop` (the rest fails)
    /// or `continue`.
    pub on_failure: crate::model::OnSequenceFailure,
}

impl Default for Sequences {
    fn default() -> Self {
        Sequences {
            wait: crate::model::SequenceWait::Delivered,
            timeout_ms: crate::clock::DAY,
            on_timeout: crate::model::OnSequenceTimeout::SendAnyway,
            on_failure: crate::model::OnSequenceFailure::Stop,
        }
    }
}

impl Default for Retention {
    fn default() -> Self {
        use crate::clock::DAY;
        Retention {
            orphans_ms: 7 * DAY,
            dedupe_keys_ms: 14 * DAY,
            inbox_ms: 30 * DAY,
            sweep_ms: 10 * 60_000,
        }
    }
}

/// An app endpoint that receives the gateway's events.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppWebhook {
    /// URL.
    pub url: String,
    /// Signing secret (Standard Webhooks: `whsec_` + base64, or any string).
    pub secret: String,
    /// Event kinds it wants (empty: all).
    #[serde(default)]
    pub events: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's gateway example parses into what it says.
    #[test]
    fn the_readme_example_is_valid() {
        let cfg: Config = toml::from_str(&readme_example()).unwrap();
        assert_eq!(cfg.restart_policy, RestartPolicy::AtLeastOnce);
        assert_eq!((cfg.rate().rate, cfg.rate().burst), (50.0, 40));
        assert_eq!(cfg.verify_token, "my-verify-token");
        assert!(cfg.gates.window_fallback.is_some() && cfg.gates.template_parameters);
        assert_eq!(cfg.app_webhooks.len(), 1);
        assert_eq!(cfg.retention.dedupe_keys_ms, 14 * crate::clock::DAY);
        assert_eq!(cfg.server, mynah_serve::ServerConfig::default());
        assert_eq!(cfg.console.users.len(), 1);
        cfg.console.validate(&cfg.gateway_key).unwrap();
        let overrides: crate::classify::Overrides =
            cfg.classifier.clone().unwrap().try_into().unwrap();
        assert_eq!(overrides.rule.len(), 1);
    }

    #[test]
    fn console_users_need_names_and_keys_of_their_own() {
        let user = |name: &str, key: &str| ConsoleUser {
            name: name.into(),
            key: key.into(),
        };
        let check = |users: Vec<ConsoleUser>| {
            Console {
                users,
                ..Console::default()
            }
            .validate("the-gateway-key-123")
        };
        assert!(check(vec![user("ana", "ana-key-0123456789")]).is_ok());
        let e = check(vec![user("ana", "short")]).unwrap_err();
        assert!(e.contains("shorter than 16"), "{e}");
        let e = check(vec![user(" ", "ana-key-0123456789")]).unwrap_err();
        assert!(e.contains("printable"), "{e}");
        let e = check(vec![
            user("ana", "ana-key-0123456789"),
            user("ben", "ana-key-0123456789"),
        ])
        .unwrap_err();
        assert!(e.contains("of their own"), "{e}");
        let e = check(vec![user("ana", "the-gateway-key-123")]).unwrap_err();
        assert!(e.contains("gateway key"), "{e}");
        let e = check(vec![
            user("ana", "ana-key-0123456789"),
            user("ana", "ana-key-9876543210"),
        ])
        .unwrap_err();
        assert!(e.contains("twice"), "{e}");
        let e = Console {
            origins: vec!["gateway.example.com".into()],
            ..Console::default()
        }
        .validate("k")
        .unwrap_err();
        assert!(e.contains("origin"), "{e}");
        let e = Console {
            gateway_key_sign_in: false,
            ..Console::default()
        }
        .validate("k")
        .unwrap_err();
        assert!(e.contains("nobody can sign in"), "{e}");
    }

    /// The README's TOML block that configures the gateway.
    fn readme_example() -> String {
        include_str!("../../../README.md")
            .split("```toml")
            .skip(1)
            .filter_map(|b| b.split("```").next())
            .find(|b| b.contains("restart_policy"))
            .expect("the README has a gateway example")
            .to_string()
    }
}

/// Defaults of campaigns (`[campaigns]`); a campaign may override the first three.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Campaigns {
    /// The campaign's share of the number's rate (0 < share ≤ 1), so that transactional
    /// messages keep flowing.
    pub rate_share: f64,
    /// A recipient contacted by another campaign within this many ms is skipped (0: no cap).
    pub frequency_cap_ms: Millis,
    /// A campaign paused because its template was paused resumes when it is active again.
    pub auto_resume: bool,
    /// Price per message sent, by category (`marketing = 0.0625`), for the cost.
    pub rate_card: std::collections::BTreeMap<String, f64>,
    /// Pending recipients the runner releases per batch, at most.
    pub batch: usize,
    /// Quiet hours in the recipient's local time (`"21:00-08:00"`): a message whose turn comes
    /// inside them waits until they end in the recipient's zone. Absent: none (a campaign's
    /// `schedule.quiet_hours` may still set them).
    pub quiet_hours: Option<crate::quiet::Window>,
    /// The zone of a recipient whose number's country is not known (and no `time_zone` column
    /// says): an IANA name.
    pub time_zone: String,
    /// A running campaign's `campaign.progress` event comes at most this often (ms of the
    /// gateway's clock), when its counters moved; 0: none.
    pub progress_ms: Millis,
}

impl Default for Campaigns {
    fn default() -> Self {
        Campaigns {
            rate_share: 0.5,
            frequency_cap_ms: 0,
            auto_resume: true,
            rate_card: std::collections::BTreeMap::new(),
            batch: 500,
            quiet_hours: None,
            time_zone: "UTC".into(),
            progress_ms: 5_000,
        }
    }
}

/// The web console (`[console]`): people sign in with the gateway key, or as a user of
/// `[[console.users]]` with a key of their own, and get a session cookie that stands for the
/// gateway key on the app API (with a CSRF token for every change).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Console {
    /// Serve `/console/` at all.
    pub enabled: bool,
    /// Whether the gateway key itself signs in (as the user `gateway`).
    pub gateway_key_sign_in: bool,
    /// People with keys of their own (`[[console.users]] name = "ana", key = "…"`).
    pub users: Vec<ConsoleUser>,
    /// A session ends this long after sign-in, however active (ms).
    pub session_ttl_ms: Millis,
    /// A session ends after this long without a request (ms).
    pub idle_timeout_ms: Millis,
    /// Mark the cookie `Secure` (set it when the console is reached over HTTPS, as behind a
    /// TLS-terminating proxy).
    pub secure_cookie: bool,
    /// Origins besides the gateway's own `Host` that a change may come from (the public origin
    /// behind a proxy that rewrites `Host`, like `https://gateway.example.com`).
    pub origins: Vec<String>,
}

impl Default for Console {
    fn default() -> Self {
        Console {
            enabled: true,
            gateway_key_sign_in: true,
            users: Vec::new(),
            session_ttl_ms: 12 * 3_600_000,
            idle_timeout_ms: 3_600_000,
            secure_cookie: false,
            origins: Vec::new(),
        }
    }
}

/// A console user.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleUser {
    /// Shown in the console and the log.
    pub name: String,
    /// What they sign in with (at least 16 characters).
    pub key: String,
}

/// Shortest key a console user may have.
pub const MIN_CONSOLE_KEY: usize = 16;

impl Console {
    /// Refuses users without a name, with a short or shared key, sessions of no length.
    pub fn validate(&self, gateway_key: &str) -> Result<(), String> {
        let mut names = std::collections::HashSet::new();
        let mut keys = std::collections::HashSet::new();
        for u in &self.users {
            let name = u.name.trim();
            if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
                return Err(format!(
                    "console.users: the name {:?} must be 1 to 64 printable characters",
                    u.name
                ));
            }
            if !names.insert(name.to_string()) {
                return Err(format!("console.users: {name:?} is listed twice"));
            }
            if u.key.chars().count() < MIN_CONSOLE_KEY {
                return Err(format!(
                    "console.users: the key of {name:?} is shorter than {MIN_CONSOLE_KEY} characters"
                ));
            }
            if u.key == gateway_key || !keys.insert(u.key.as_str()) {
                return Err(format!(
                    "console.users: the key of {name:?} is also the gateway key or another user's: give each user a key of their own"
                ));
            }
        }
        if self.enabled && !self.gateway_key_sign_in && self.users.is_empty() {
            return Err(
                "console: with gateway_key_sign_in = false and no [[console.users]] nobody can sign in (or set enabled = false)"
                    .into(),
            );
        }
        let hour_to_year = 60_000..=366 * crate::clock::DAY;
        if !hour_to_year.contains(&self.session_ttl_ms)
            || !hour_to_year.contains(&self.idle_timeout_ms)
        {
            return Err(
                "console.session_ttl_ms and console.idle_timeout_ms must be from 1 minute to a year"
                    .into(),
            );
        }
        for o in &self.origins {
            if !(o.starts_with("http://") || o.starts_with("https://")) || o.ends_with('/') {
                return Err(format!(
                    "console.origins: {o:?} is not an origin like https://gateway.example.com"
                ));
            }
        }
        Ok(())
    }
}
