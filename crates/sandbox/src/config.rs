//! The sandbox's configuration: what the command line and the TOML config file set.
//!
//! Every field has a default, so an empty file (or none) gives a working sandbox: one business
//! account, one phone number, the development credentials, everyone reachable.

use crate::clock::Millis;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Development API key (360dialog dialect) of the first number.
pub const DEV_API_KEY: &str = "mynah-dev-key";
/// Development bearer token (Cloud dialect).
pub const DEV_TOKEN: &str = "mynah-dev-token";
/// Development app secret (signs webhooks).
pub const DEV_APP_SECRET: &str = "mynah-dev-secret";
/// Phone number id of the first number.
pub const DEV_PHONE_NUMBER_ID: &str = "106540352242922";
/// WhatsApp Business Account id of the first account.
pub const DEV_WABA_ID: &str = "102290129340398";
/// Display number of the first number.
pub const DEV_DISPLAY_NUMBER: &str = "15550783881";
/// Where the manual clock starts unless told otherwise: 2026-01-01T00:00:00Z.
pub const MANUAL_CLOCK_START: Millis = 1_767_225_600_000;

/// Everything the sandbox can be told.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Seed of every random draw (ids, latencies, chaos).
    pub seed: u64,
    /// The clock.
    pub clock: ClockConfig,
    /// Where data lives; `None` keeps everything in memory (`--ephemeral`).
    pub data_dir: Option<PathBuf>,
    /// The app secret that signs webhooks (`X-Hub-Signature-256`).
    pub app_secret: String,
    /// Bearer token of the Cloud dialect; reaches the numbers of the first account.
    pub token: String,
    /// Business accounts and their numbers. Empty means: the development account.
    pub accounts: Vec<AccountConfig>,
    /// Business portfolios the accounts belong to (`accounts.portfolio`): whether a portfolio is
    /// enrolled in parent business-scoped user ids, whether its contact book is on. A portfolio
    /// an account names without a table here has the defaults.
    pub portfolios: Vec<PortfolioConfig>,
    /// Business-scoped user ids: when phone numbers are withheld, the contacts of failed
    /// statuses, a BSUID placed in `to`.
    pub bsuid: BsuidConfig,
    /// Request limits.
    pub limits: LimitsConfig,
    /// Media: size limits per type and the total stored.
    pub media: MediaConfig,
    /// Message lifecycle timing.
    pub latency: LatencyConfig,
    /// Webhook delivery.
    pub webhooks: WebhookConfig,
    /// Virtual users: the default behaviour and per-user overrides.
    pub users: UsersConfig,
    /// Graph API versions.
    pub graph: GraphConfig,
    /// More templates present from the first start (besides the defaults).
    pub templates: Vec<TemplateConfig>,
    /// Template review and management.
    pub template_review: TemplateReviewConfig,
    /// How much history is kept.
    pub retention: RetentionConfig,
    /// The platform's delivery rules, each switchable.
    pub rules: RulesConfig,
    /// Fault rules present from the start.
    pub faults: Vec<crate::faults::FaultRule>,
    /// The HTTP server's limits: header read timeout, idle timeout, connection cap.
    pub server: mynah_serve::ServerConfig,
}

/// The platform's delivery rules (seed page "Sending Template Messages", spec §5–§7), each one
/// switchable so a test can isolate the rule it is about.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RulesConfig {
    /// Free-form messages need the 24-hour customer service window (131047).
    pub customer_service_window: bool,
    /// Answer 131047 in the HTTP response instead of a `failed` webhook.
    pub window_error_sync: bool,
    /// No marketing templates to United States numbers (131049).
    pub us_marketing_block: bool,
    /// The marketing-message experiment holdout (130472).
    pub holdout: bool,
    /// Share of users in the holdout, percent.
    pub holdout_percent: f64,
    /// Per-user marketing limit: marketing templates that open a new marketing conversation,
    /// per rolling window (131049 past it); `None` (`false` in TOML) switches it off.
    #[serde(deserialize_with = "rule_or_off")]
    pub marketing_limit: Option<MarketingLimit>,
    /// Messages undelivered past their time-to-live are dropped.
    pub ttl: bool,
    /// Pair rate limit: one message per `every_ms` from a number to the same user, bursts of
    /// `burst` (131056); `None` (`false` in TOML) switches it off.
    #[serde(deserialize_with = "rule_or_off")]
    pub pair_rate: Option<PairRate>,
    /// Messages per second per business number (80; up to 1,000 after an upgrade) (130429);
    /// `None` (`false` in TOML) switches it off.
    #[serde(deserialize_with = "rule_or_off")]
    pub throughput_mps: Option<u32>,
    /// Messaging limit tier: unique users a number may start conversations with (templates
    /// outside the customer service window) per rolling window; `None` is unlimited. It is each
    /// number's starting tier; quality moves it (see `quality`). `false` in TOML.
    #[serde(deserialize_with = "rule_or_off")]
    pub messaging_limit: Option<MessagingLimit>,
    /// Quality from the virtual users' reactions: template quality scores, the number's quality
    /// rating, and the tier moves that follow.
    pub quality: QualityConfig,
    /// Template pacing (held_for_quality_assessment); `None` (`false` in TOML) switches it off.
    #[serde(deserialize_with = "rule_or_off")]
    pub pacing: Option<PacingConfig>,
}

/// A rule that may be off: its value, or `false` (TOML has no null) or null to switch it off.
/// The value's own errors come through as they are.
fn rule_or_off<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    use serde::de::value::MapAccessDeserializer;
    use serde::de::{self, IntoDeserializer, Visitor};
    struct OrOff<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for OrOff<T> {
        type Value = Option<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("the rule's settings, or false to switch it off")
        }
        fn visit_bool<E: de::Error>(self, on: bool) -> Result<Self::Value, E> {
            if on {
                return Err(E::custom(
                    "true is not a setting: give the rule's settings, or false to switch it off",
                ));
            }
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: serde::Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_any(self)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            T::deserialize(v.into_deserializer()).map(Some)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            T::deserialize(v.into_deserializer()).map(Some)
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            T::deserialize(v.into_deserializer()).map(Some)
        }
        fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            T::deserialize(MapAccessDeserializer::new(map)).map(Some)
        }
    }
    d.deserialize_any(OrOff(std::marker::PhantomData))
}

/// How reactions become quality (spec §6.2, §7.3). A reaction is a signal: `block` and `report`
/// are negative (a report counts twice), `read` and `reply` positive, `ignore` neutral. Over the
/// last `window_ms`, once `min_signals` reactions are in, the negative share decides the score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QualityConfig {
    /// Reactions feed quality at all.
    pub enabled: bool,
    /// Reactions needed before a score is given (templates stay `UNKNOWN` until then).
    pub min_signals: u32,
    /// Signals older than this are forgotten (7 days).
    pub window_ms: Millis,
    /// Negative share from which the score is `YELLOW`.
    pub yellow_at: f64,
    /// Negative share from which the score is `RED` (a template pauses; a number is flagged).
    pub red_at: f64,
    /// A number still `RED` this long after being flagged drops one tier (7 days).
    pub downgrade_after_ms: Millis,
    /// A `GREEN` number that used half its tier moves up one tier after this delay (6 hours).
    pub upgrade_after_ms: Millis,
    /// Tiers move with quality at all.
    pub auto_scaling: bool,
}

impl Default for QualityConfig {
    fn default() -> Self {
        QualityConfig {
            enabled: true,
            min_signals: 20,
            window_ms: 7 * day_ms(),
            yellow_at: 0.03,
            red_at: 0.08,
            downgrade_after_ms: 7 * day_ms(),
            upgrade_after_ms: 6 * 3_600_000,
            auto_scaling: true,
        }
    }
}

/// Template pacing (spec §7.4): marketing and utility templates that are new, just unpaused or
/// not `GREEN` (utility only within `utility_after_pause_ms` of a utility template's pause on the
/// account) send `threshold` messages normally; later ones are held until a verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PacingConfig {
    /// Messages that go out before the rest are held.
    pub threshold: u32,
    /// Held messages go out after this long without a verdict (1 hour).
    pub max_hold_ms: Millis,
    /// How the verdict is reached.
    pub verdict: PacingVerdict,
    /// Reactions to the first messages needed before `signals` decides.
    pub min_signals: u32,
    /// Utility templates are paced only this long after a utility template was paused (7 days).
    pub utility_after_pause_ms: Millis,
}

impl Default for PacingConfig {
    fn default() -> Self {
        PacingConfig {
            threshold: 1_000,
            max_hold_ms: 3_600_000,
            verdict: PacingVerdict::Signals,
            min_signals: 20,
            utility_after_pause_ms: 7 * day_ms(),
        }
    }
}

/// How a paced template's verdict is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PacingVerdict {
    /// The users' reactions to the first messages decide (negative share at or above
    /// `quality.red_at`: drop; otherwise release once `min_signals` are in).
    Signals,
    /// Release as soon as a message is held.
    Release,
    /// Pause the template and drop the held messages as soon as a message is held.
    Drop,
    /// No verdict: only the time limit (or the control API) releases them.
    Wait,
}

/// A messaging limit tier (spec §6.1). The platform does not document the error for an
/// exhausted limit; Mynah fails the message with `code` (131048 by default), asynchronously
/// unless `sync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessagingLimit {
    /// Unique users (250, 2,000, 10,000, 100,000).
    pub unique_users: u32,
    /// Rolling window, ms (24 h).
    #[serde(default = "day_ms")]
    pub window_ms: Millis,
    /// Error code when exhausted.
    #[serde(default = "spam_code")]
    pub code: u32,
    /// Answer in the response instead of a `failed` webhook.
    #[serde(default)]
    pub sync: bool,
}

fn day_ms() -> Millis {
    24 * 3_600_000
}

fn spam_code() -> u32 {
    131_048
}

/// The pair rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairRate {
    /// One message per this interval, ms (6 s).
    pub every_ms: Millis,
    /// Burst (45).
    pub burst: u32,
}

/// A per-user marketing budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarketingLimit {
    /// Marketing templates that open a conversation…
    pub count: u32,
    /// …per this rolling window, ms.
    pub window_ms: Millis,
}

impl RulesConfig {
    /// Every rule off: messages only go through the lifecycle (tests of other behaviours).
    pub fn off() -> RulesConfig {
        RulesConfig {
            customer_service_window: false,
            window_error_sync: false,
            us_marketing_block: false,
            holdout: false,
            holdout_percent: 0.0,
            marketing_limit: None,
            ttl: false,
            pair_rate: None,
            throughput_mps: None,
            messaging_limit: None,
            quality: QualityConfig::default(),
            pacing: None,
        }
    }
}

impl RulesConfig {
    /// Checks every number of the rules; errors name the field under `prefix` (`rules` in the
    /// config file, nothing for `PATCH /_mynah/rules`).
    pub fn validate(&self, prefix: &str) -> Result<(), String> {
        use crate::bounds::{MAX_BURST, MAX_DURATION, duration, positive_duration, range, real};
        let f = |name: &str| {
            if prefix.is_empty() {
                name.to_string()
            } else {
                format!("{prefix}.{name}")
            }
        };
        real(&f("holdout_percent"), self.holdout_percent, 0.0, 100.0)?;
        if let Some(m) = &self.marketing_limit {
            positive_duration(&f("marketing_limit.window_ms"), m.window_ms)?;
        }
        if let Some(p) = &self.pair_rate {
            positive_duration(&f("pair_rate.every_ms"), p.every_ms)?;
            range(&f("pair_rate.burst"), p.burst, 1, MAX_BURST)?;
            // The limiter refills the whole burst in every_ms × burst; keep that finite.
            let refill = p.every_ms.checked_mul(i64::from(p.burst));
            if refill.is_none_or(|r| r > MAX_DURATION) {
                return Err(format!(
                    "{} = {} × {} = {} ms is out of range: the burst must refill within 10 years ({MAX_DURATION} ms)",
                    f("pair_rate.every_ms × burst"),
                    p.every_ms,
                    p.burst,
                    i128::from(p.every_ms) * i128::from(p.burst)
                ));
            }
        }
        if let Some(mps) = self.throughput_mps {
            range(&f("throughput_mps"), mps, 1, u32::MAX)?;
        }
        if let Some(m) = &self.messaging_limit {
            positive_duration(&f("messaging_limit.window_ms"), m.window_ms)?;
            if mynah_wire::error::ErrorCode::from_code(m.code).is_none() {
                return Err(format!(
                    "{} = {} is not a code of the error table (GET /_mynah/errors)",
                    f("messaging_limit.code"),
                    m.code
                ));
            }
        }
        let q = &self.quality;
        positive_duration(&f("quality.window_ms"), q.window_ms)?;
        real(&f("quality.yellow_at"), q.yellow_at, 0.0, 1.0)?;
        real(&f("quality.red_at"), q.red_at, 0.0, 1.0)?;
        duration(&f("quality.downgrade_after_ms"), q.downgrade_after_ms)?;
        duration(&f("quality.upgrade_after_ms"), q.upgrade_after_ms)?;
        if let Some(p) = &self.pacing {
            duration(&f("pacing.max_hold_ms"), p.max_hold_ms)?;
            duration(
                &f("pacing.utility_after_pause_ms"),
                p.utility_after_pause_ms,
            )?;
        }
        Ok(())
    }
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            customer_service_window: true,
            window_error_sync: false,
            us_marketing_block: true,
            holdout: true,
            holdout_percent: 1.0,
            marketing_limit: Some(MarketingLimit {
                count: 2,
                window_ms: 24 * 3_600_000,
            }),
            ttl: true,
            messaging_limit: Some(MessagingLimit {
                unique_users: 250,
                window_ms: day_ms(),
                code: spam_code(),
                sync: false,
            }),
            pair_rate: Some(PairRate {
                every_ms: 6_000,
                burst: 45,
            }),
            throughput_mps: Some(80),
            quality: QualityConfig::default(),
            pacing: Some(PacingConfig::default()),
        }
    }
}

/// How much history the sandbox keeps.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Messages kept in all (memory and journal); the oldest finished ones go first.
    pub max_messages: usize,
    /// Messages kept in memory (at most `max_messages`): with a journal, older finished ones
    /// live only there and are read back on demand (the control API, the console, a mark-read
    /// or reaction naming one); in memory only (`--ephemeral`) `max_messages` are kept.
    pub hot_messages: usize,
    /// A user with no message either way for this long (ms) and no open window is kept compact
    /// in memory (about a sixth of a whole user; its journal row is untouched); 0 keeps every
    /// user whole.
    pub idle_user_ms: Millis,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            max_messages: 200_000,
            hot_messages: 20_000,
            idle_user_ms: crate::clock::DAY,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            seed: 1,
            clock: ClockConfig::default(),
            data_dir: None,
            app_secret: DEV_APP_SECRET.to_string(),
            token: DEV_TOKEN.to_string(),
            accounts: Vec::new(),
            portfolios: Vec::new(),
            bsuid: BsuidConfig::default(),
            limits: LimitsConfig::default(),
            media: MediaConfig::default(),
            latency: LatencyConfig::default(),
            webhooks: WebhookConfig::default(),
            users: UsersConfig::default(),
            graph: GraphConfig::default(),
            templates: Vec::new(),
            template_review: TemplateReviewConfig::default(),
            retention: RetentionConfig::default(),
            rules: RulesConfig::default(),
            faults: Vec::new(),
            server: mynah_serve::ServerConfig::default(),
        }
    }
}

impl Config {
    /// Parses a TOML config file's text.
    pub fn from_toml(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// The configuration as TOML that [`Config::from_toml`] reads back the same: the rules
    /// that are off are written `false` (TOML has no null, and a missing key is the default).
    pub fn to_toml_with_rules_off(&self) -> String {
        let Ok(mut table) = toml::Table::try_from(self) else {
            return String::new();
        };
        if let Some(toml::Value::Table(rules)) = table.get_mut("rules") {
            for key in [
                "marketing_limit",
                "pair_rate",
                "throughput_mps",
                "messaging_limit",
                "pacing",
            ] {
                rules
                    .entry(key.to_string())
                    .or_insert(toml::Value::Boolean(false));
            }
        }
        toml::to_string(&table).unwrap_or_default()
    }

    /// Checks every number (and webhook URL and header) of the configuration against its range;
    /// the error names the key (`rules.pair_rate.every_ms = … is out of range …`).
    pub fn validate(&self) -> Result<(), String> {
        use crate::bounds::{duration, instant, latency, positive_duration, probability, range};
        instant("clock.start_ms", self.clock.start_ms)?;
        self.limits.validate("limits")?;
        self.media.validate("media")?;
        for (name, l) in [
            ("sent", &self.latency.sent),
            ("delivered", &self.latency.delivered),
            ("read", &self.latency.read),
            ("played", &self.latency.played),
            ("reply", &self.latency.reply),
        ] {
            latency(&format!("latency.{name}"), l)?;
        }
        let w = &self.webhooks;
        range("webhooks.timeout_ms", w.timeout_ms, 1, 3_600_000)?;
        positive_duration("webhooks.initial_backoff_ms", w.initial_backoff_ms)?;
        positive_duration("webhooks.max_backoff_ms", w.max_backoff_ms)?;
        duration("webhooks.retry_window_ms", w.retry_window_ms)?;
        range("webhooks.batch_size", w.batch_size, 1, 10_000)?;
        range("webhooks.max_in_flight", w.max_in_flight, 1, 100_000)?;
        probability("webhooks.chaos.duplicate", w.chaos.duplicate)?;
        probability("webhooks.chaos.reorder", w.chaos.reorder)?;
        probability("webhooks.chaos.delay", w.chaos.delay)?;
        duration("webhooks.chaos.reorder_hold_ms", w.chaos.reorder_hold_ms)?;
        if let Some(l) = &w.chaos.delay_ms {
            latency("webhooks.chaos.delay_ms", l)?;
        }
        let none = BTreeMap::new();
        crate::webhooks::check_target("webhooks.default_url", &w.default_url, &none)?;
        for (i, url) in w.subscribers.iter().enumerate() {
            if url.is_empty() {
                return Err(format!(
                    "webhooks.subscribers[{i}] is empty: give an http:// URL"
                ));
            }
            crate::webhooks::check_target(&format!("webhooks.subscribers[{i}]"), url, &none)?;
        }
        self.users.default.validate("users.default")?;
        for (i, u) in self.users.users.iter().enumerate() {
            u.behaviour.validate(&format!("users.users[{i}]"))?;
            if let Some(name) = &u.username {
                mynah_wire::user_id::validate_username(name)
                    .map_err(|e| format!("users.users[{i}].username: {e}"))?;
            }
        }
        for (i, p) in self.portfolios.iter().enumerate() {
            if p.id.trim().is_empty() {
                return Err(format!("portfolios[{i}].id is empty: name the portfolio"));
            }
            if self.portfolios[..i].iter().any(|q| q.id == p.id) {
                return Err(format!("portfolios[{i}].id = {:?} is given twice", p.id));
            }
            if p.parent.as_deref().is_some_and(|s| s.trim().is_empty()) {
                return Err(format!(
                    "portfolios[{i}].parent is empty: name the parent account, or leave it out"
                ));
            }
        }
        range("graph.min_version", self.graph.min_version, 1, 99)?;
        range(
            "graph.max_version",
            self.graph.max_version,
            self.graph.min_version,
            99,
        )?;
        range(
            "graph.dialect_360_version",
            self.graph.dialect_360_version,
            1,
            99,
        )?;
        duration(
            "template_review.review_delay_ms",
            self.template_review.review_delay_ms,
        )?;
        range(
            "retention.max_messages",
            self.retention.max_messages,
            1,
            usize::MAX,
        )?;
        range(
            "retention.hot_messages",
            self.retention.hot_messages,
            1,
            usize::MAX,
        )?;
        duration("retention.idle_user_ms", self.retention.idle_user_ms)?;
        self.rules.validate("rules")?;
        for (a, account) in self.accounts.iter().enumerate() {
            if account.portfolio.trim().is_empty() {
                return Err(format!(
                    "accounts[{a}].portfolio is empty: name a portfolio (or leave it out: {DEFAULT_PORTFOLIO:?})"
                ));
            }
            for (n, number) in account.numbers.iter().enumerate() {
                let field = format!("accounts[{a}].numbers[{n}]");
                crate::webhooks::check_target(
                    &format!("{field}.webhook_url"),
                    &number.webhook_url,
                    &number.webhook_headers,
                )?;
            }
        }
        for (i, f) in self.faults.iter().enumerate() {
            f.validate().map_err(|e| format!("faults[{i}]: {e}"))?;
        }
        Ok(())
    }

    /// A portfolio's settings: its table, or the defaults.
    pub fn portfolio(&self, id: &str) -> PortfolioConfig {
        self.portfolios
            .iter()
            .find(|p| p.id == id)
            .cloned()
            .unwrap_or_else(|| PortfolioConfig {
                id: id.to_string(),
                ..PortfolioConfig::default()
            })
    }

    /// The accounts to create: the configured ones, or the development account.
    pub fn effective_accounts(&self) -> Vec<AccountConfig> {
        if self.accounts.is_empty() {
            vec![AccountConfig::default()]
        } else {
            self.accounts.clone()
        }
    }
}

/// Clock settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClockConfig {
    /// `system` or `manual`.
    pub mode: ClockMode,
    /// Start of the manual clock, unix milliseconds.
    pub start_ms: Millis,
}

impl Default for ClockConfig {
    fn default() -> Self {
        ClockConfig {
            mode: ClockMode::System,
            start_ms: MANUAL_CLOCK_START,
        }
    }
}

/// Which clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClockMode {
    /// Wall-clock time.
    System,
    /// Moved only by `POST /_mynah/clock/advance`.
    Manual,
}

/// A WhatsApp Business Account.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccountConfig {
    /// WABA id.
    pub waba_id: String,
    /// Business name.
    pub name: String,
    /// Namespace of its templates (On-Premises sends carry it).
    pub namespace: String,
    /// The business portfolio it belongs to: users' business-scoped user ids are the same for
    /// every number of a portfolio and differ between portfolios.
    pub portfolio: String,
    /// Onboarded to the Marketing Messages API: its sends are `marketing_lite`. When false, a
    /// `/marketing_messages` send falls back to the Cloud API (`product_policy`
    /// `CLOUD_API_FALLBACK`) or is refused with 131063 (`STRICT`).
    pub marketing_messages: bool,
    /// Marketing templates may go through `/messages` (false is the platform's
    /// `disable_marketing_messages_on_cloud_api`: 131063, also for a fallback).
    pub marketing_on_cloud_api: bool,
    /// Its phone numbers.
    pub numbers: Vec<NumberConfig>,
}

/// The portfolio accounts belong to when they name none.
pub const DEFAULT_PORTFOLIO: &str = "default";

impl Default for AccountConfig {
    fn default() -> Self {
        AccountConfig {
            waba_id: DEV_WABA_ID.to_string(),
            name: "Mynah Sandbox".to_string(),
            namespace: "c8ae5f90_307a_ca4c_b8f6_d1e2a2573574".to_string(),
            portfolio: DEFAULT_PORTFOLIO.to_string(),
            marketing_messages: true,
            marketing_on_cloud_api: true,
            numbers: vec![NumberConfig::default()],
        }
    }
}

/// A business portfolio.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PortfolioConfig {
    /// Its id, as `accounts.portfolio` names it.
    pub id: String,
    /// Enrolled in parent business-scoped user ids: the parent account's name. Portfolios with
    /// the same `parent` share users' parent ids (`CC.ENT.…`); `None`: not enrolled.
    pub parent: Option<String>,
    /// The contact book is on: every exchange in which the business saw a user's phone number
    /// records it, and the phone number of a user in the book is always shared.
    pub contact_book: bool,
}

impl Default for PortfolioConfig {
    fn default() -> Self {
        PortfolioConfig {
            id: DEFAULT_PORTFOLIO.to_string(),
            parent: None,
            contact_book: true,
        }
    }
}

/// Business-scoped user ids and usernames.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BsuidConfig {
    /// Usernames are generally available: the phone number of a user with a username is left
    /// out of webhooks unless the business number exchanged messages with that phone in the
    /// last 30 days or the user is in the portfolio's contact book. False: phone numbers are
    /// always sent (before the platform's username launch).
    pub withhold_phones: bool,
    /// `contacts` of a `failed` status: `observed` (`[{"wa_id"}]` for a message sent to a
    /// phone number, `[{"user_id"}]` for one sent to a business-scoped user id, as production
    /// sends them) or `documented` (none, as the documentation says).
    pub failed_status_contacts: FailedStatusContacts,
    /// A business-scoped user id sent in `to` instead of `recipient`: `drop` (accepted, read as
    /// a phone number without its country code, then `failed` 131026, as the platform was seen
    /// to do), `reject` (400 code 100) or `resolve` (sent as if it were in `recipient`).
    pub in_to: BsuidInTo,
}

impl Default for BsuidConfig {
    fn default() -> Self {
        BsuidConfig {
            withhold_phones: true,
            failed_status_contacts: FailedStatusContacts::Observed,
            in_to: BsuidInTo::Drop,
        }
    }
}

/// `bsuid.failed_status_contacts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailedStatusContacts {
    /// As production sends them.
    Observed,
    /// As the documentation says: none.
    Documented,
}

/// `bsuid.in_to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BsuidInTo {
    /// Accepted, then `failed` 131026.
    Drop,
    /// 400 code 100.
    Reject,
    /// Sent to the user, as `recipient` would.
    Resolve,
}

/// A business phone number.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NumberConfig {
    /// Phone number id (Cloud paths, `metadata.phone_number_id`).
    pub phone_number_id: String,
    /// Display number, digits.
    pub display_phone_number: String,
    /// Verified business name.
    pub verified_name: String,
    /// 360dialog API key that reaches this number.
    pub api_key: String,
    /// Webhook URL; empty means none until set through the API.
    pub webhook_url: String,
    /// Extra headers on every webhook POST.
    pub webhook_headers: BTreeMap<String, String>,
}

impl Default for NumberConfig {
    fn default() -> Self {
        NumberConfig {
            phone_number_id: DEV_PHONE_NUMBER_ID.to_string(),
            display_phone_number: DEV_DISPLAY_NUMBER.to_string(),
            verified_name: "Mynah Sandbox".to_string(),
            api_key: DEV_API_KEY.to_string(),
            webhook_url: String::new(),
            webhook_headers: BTreeMap::new(),
        }
    }
}

/// Request-rate and capacity limits (seed page "Before sending a message").
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// `standard` (50/150 and 20/60) or `high-throughput` (1,000/3,000 and 100/300); the explicit
    /// numbers below win when set.
    pub profile: LimitProfile,
    /// `/messages` requests per second per key.
    pub messages_per_second: Option<u32>,
    /// `/messages` burst per key.
    pub messages_burst: Option<u32>,
    /// Other endpoints: requests per second per key.
    pub other_per_second: Option<u32>,
    /// Other endpoints: burst per key.
    pub other_burst: Option<u32>,
    /// HTTP status of throttling answers (429; the 2026 Meta page says 400).
    pub throttle_status: u16,
    /// How far behind the webhook sender may fall, ms: while the oldest event waiting for a
    /// receiver that is not paused has waited longer, `/messages` gets 503 (code 2) with
    /// `Retry-After`, so a client faster than its receivers meets the signal after a few seconds
    /// of backlog, not after a fixed number of events.
    pub max_webhook_lag_ms: i64,
    /// The last resort: pending work (webhook events queued, held or awaiting a retry, plus
    /// journal writes not yet committed) above which `/messages` gets 503 whatever the lag
    /// (a receiver that fails fast builds no lag but a pile of retries).
    pub max_pending: usize,
    /// Largest JSON body accepted, bytes (media uploads have their own limits: `[media]`).
    pub max_body_bytes: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            profile: LimitProfile::Standard,
            messages_per_second: None,
            messages_burst: None,
            other_per_second: None,
            other_burst: None,
            throttle_status: 429,
            max_webhook_lag_ms: 3_000,
            max_pending: 50_000,
            max_body_bytes: 1024 * 1024,
        }
    }
}

impl LimitsConfig {
    /// Checks the limits; errors name the field under `prefix`.
    pub fn validate(&self, prefix: &str) -> Result<(), String> {
        use crate::bounds::{MAX_BURST, range};
        for (name, v) in [
            ("messages_per_second", self.messages_per_second),
            ("other_per_second", self.other_per_second),
        ] {
            if let Some(v) = v {
                range(&format!("{prefix}.{name}"), v, 1, u32::MAX)?;
            }
        }
        for (name, v) in [
            ("messages_burst", self.messages_burst),
            ("other_burst", self.other_burst),
        ] {
            if let Some(v) = v {
                range(&format!("{prefix}.{name}"), v, 1, MAX_BURST)?;
            }
        }
        range(
            &format!("{prefix}.throttle_status"),
            self.throttle_status,
            400,
            599,
        )?;
        range(
            &format!("{prefix}.max_webhook_lag_ms"),
            self.max_webhook_lag_ms,
            1,
            crate::bounds::MAX_DURATION,
        )?;
        range(
            &format!("{prefix}.max_body_bytes"),
            self.max_body_bytes,
            1_024,
            1 << 30,
        )?;
        Ok(())
    }

    /// (rate, burst) for `/messages`.
    pub fn messages(&self) -> (u32, u32) {
        let (r, b) = match self.profile {
            LimitProfile::Standard => (50, 150),
            LimitProfile::HighThroughput => (1_000, 3_000),
            LimitProfile::Unlimited => (u32::MAX, u32::MAX),
        };
        (
            self.messages_per_second.unwrap_or(r),
            self.messages_burst.unwrap_or(b),
        )
    }

    /// (rate, burst) for every other endpoint.
    pub fn other(&self) -> (u32, u32) {
        let (r, b) = match self.profile {
            LimitProfile::Standard => (20, 60),
            LimitProfile::HighThroughput => (100, 300),
            LimitProfile::Unlimited => (u32::MAX, u32::MAX),
        };
        (
            self.other_per_second.unwrap_or(r),
            self.other_burst.unwrap_or(b),
        )
    }
}

/// Media the sandbox stores: the platform's size limit of each kind (Meta Cloud API media
/// reference: "Supported media types") and a quota over everything stored, so uploads cannot
/// fill the memory. Sizes in bytes; MB and KB of the platform's table are read as MiB and KiB.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaConfig {
    /// Every stored media object together (uploads and simulated inbound media), bytes (1 GiB).
    pub max_total_bytes: u64,
    /// `image/jpeg`, `image/png` (5 MB).
    pub image_max_bytes: u64,
    /// `video/3gpp`, `video/mp4` (16 MB).
    pub video_max_bytes: u64,
    /// `audio/aac`, `audio/amr`, `audio/mpeg`, `audio/mp4`, `audio/ogg` (16 MB).
    pub audio_max_bytes: u64,
    /// `text/plain`, `application/pdf`, the Microsoft Office types (100 MB).
    pub document_max_bytes: u64,
    /// A static `image/webp` sticker (100 KB).
    pub sticker_max_bytes: u64,
    /// An animated `image/webp` sticker (500 KB).
    pub animated_sticker_max_bytes: u64,
}

const MIB: u64 = 1024 * 1024;

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            max_total_bytes: 1024 * MIB,
            image_max_bytes: 5 * MIB,
            video_max_bytes: 16 * MIB,
            audio_max_bytes: 16 * MIB,
            document_max_bytes: 100 * MIB,
            sticker_max_bytes: 100 * 1024,
            animated_sticker_max_bytes: 500 * 1024,
        }
    }
}

/// A kind of media, as the platform's size limits group the types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    /// JPEG, PNG.
    Image,
    /// 3GPP, MP4.
    Video,
    /// AAC, AMR, MP3, MP4 audio, OGG.
    Audio,
    /// Text, PDF, Office.
    Document,
    /// WebP.
    Sticker,
}

impl MediaKind {
    /// The kind of a MIME type (lower case, without parameters); `None` when the platform does
    /// not take it.
    pub fn of(mime: &str) -> Option<MediaKind> {
        Some(match mime {
            "image/jpeg" | "image/png" => MediaKind::Image,
            "video/3gpp" | "video/mp4" => MediaKind::Video,
            "audio/aac" | "audio/amr" | "audio/mpeg" | "audio/mp4" | "audio/ogg" => {
                MediaKind::Audio
            }
            "text/plain"
            | "application/pdf"
            | "application/vnd.ms-excel"
            | "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            | "application/msword"
            | "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
            | "application/vnd.ms-powerpoint"
            | "application/vnd.openxmlformats-officedocument.presentationml.presentation" => {
                MediaKind::Document
            }
            "image/webp" => MediaKind::Sticker,
            _ => return None,
        })
    }

    /// Its name in errors.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Video => "video",
            MediaKind::Audio => "audio",
            MediaKind::Document => "document",
            MediaKind::Sticker => "sticker",
        }
    }
}

impl MediaConfig {
    /// The size limit of a kind; stickers have two (`animated`).
    pub fn limit(&self, kind: MediaKind, animated: bool) -> u64 {
        match kind {
            MediaKind::Image => self.image_max_bytes,
            MediaKind::Video => self.video_max_bytes,
            MediaKind::Audio => self.audio_max_bytes,
            MediaKind::Document => self.document_max_bytes,
            MediaKind::Sticker if animated => self.animated_sticker_max_bytes,
            MediaKind::Sticker => self.sticker_max_bytes,
        }
    }

    /// The largest file any kind may be.
    pub fn largest(&self) -> u64 {
        [
            self.image_max_bytes,
            self.video_max_bytes,
            self.audio_max_bytes,
            self.document_max_bytes,
            self.sticker_max_bytes,
            self.animated_sticker_max_bytes,
        ]
        .into_iter()
        .max()
        .unwrap_or(0)
    }

    /// Checks the limits; errors name the field under `prefix`.
    pub fn validate(&self, prefix: &str) -> Result<(), String> {
        use crate::bounds::range;
        range(
            &format!("{prefix}.max_total_bytes"),
            self.max_total_bytes,
            0,
            64 * 1024 * MIB,
        )?;
        for (name, v) in [
            ("image_max_bytes", self.image_max_bytes),
            ("video_max_bytes", self.video_max_bytes),
            ("audio_max_bytes", self.audio_max_bytes),
            ("document_max_bytes", self.document_max_bytes),
            ("sticker_max_bytes", self.sticker_max_bytes),
            (
                "animated_sticker_max_bytes",
                self.animated_sticker_max_bytes,
            ),
        ] {
            range(&format!("{prefix}.{name}"), v, 1, 4 * 1024 * MIB)?;
        }
        Ok(())
    }
}

/// A preset of request limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LimitProfile {
    /// 360dialog's documented limits.
    Standard,
    /// For load tests of fast senders.
    HighThroughput,
    /// No request-rate limit at all (benchmarks).
    Unlimited,
}

/// A latency distribution, milliseconds: uniform in `[min_ms, max_ms]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Latency {
    /// Shortest.
    pub min_ms: i64,
    /// Longest.
    pub max_ms: i64,
}

impl Latency {
    /// A fixed latency.
    pub const fn fixed(ms: i64) -> Latency {
        Latency {
            min_ms: ms,
            max_ms: ms,
        }
    }
}

/// How long each lifecycle step takes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LatencyConfig {
    /// Accepted → `sent`.
    pub sent: Latency,
    /// `sent` → `delivered` (for a reachable user).
    pub delivered: Latency,
    /// `delivered` → `read`.
    pub read: Latency,
    /// `read` → `played` (voice notes).
    pub played: Latency,
    /// `read` → the user's reply (for users who reply).
    pub reply: Latency,
}

impl Default for LatencyConfig {
    fn default() -> Self {
        LatencyConfig {
            sent: Latency {
                min_ms: 50,
                max_ms: 200,
            },
            delivered: Latency {
                min_ms: 200,
                max_ms: 800,
            },
            read: Latency {
                min_ms: 1_000,
                max_ms: 4_000,
            },
            played: Latency {
                min_ms: 1_000,
                max_ms: 3_000,
            },
            reply: Latency {
                min_ms: 2_000,
                max_ms: 6_000,
            },
        }
    }
}

/// Webhook delivery settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// A receiver that takes longer than this has failed, ms.
    pub timeout_ms: u64,
    /// First retry delay, ms; doubles each attempt.
    pub initial_backoff_ms: i64,
    /// Longest retry delay, ms.
    pub max_backoff_ms: i64,
    /// How long a failing event keeps being retried, ms of sandbox time (7 days).
    pub retry_window_ms: i64,
    /// Events per POST (1: many clients read only the first).
    pub batch_size: usize,
    /// POSTs in flight per endpoint.
    pub max_in_flight: usize,
    /// Attempts kept in memory for the control API.
    pub keep_attempts: usize,
    /// Memory those attempts may hold, bytes: their bodies, the summaries of their events and
    /// their other fields (the oldest go first). 32 MiB by default: about 27,000 one-event
    /// deliveries or 450 batches of 100 events.
    pub keep_attempt_bytes: usize,
    /// Seeded chaos.
    pub chaos: ChaosConfig,
    /// Default webhook URL for numbers that have none.
    pub default_url: String,
    /// Always-on receivers: every number's webhooks also go to each of these, beside the
    /// number's own URL (whatever it is set to). Each receiver has its own queue, retries and
    /// backoff. Configuration only: never journalled, so a restart with another list takes
    /// effect.
    pub subscribers: Vec<String>,
    /// Whether status webhooks carry `value.contacts[]` (the recipient's profile). Meta's
    /// examples omit it; many receivers read the recipient from it, so it is on by default.
    pub status_contacts: bool,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            timeout_ms: 5_000,
            initial_backoff_ms: 5_000,
            max_backoff_ms: 3_600_000,
            retry_window_ms: 7 * 24 * 3_600_000,
            batch_size: 1,
            max_in_flight: 32,
            keep_attempts: 50_000,
            keep_attempt_bytes: 32 * 1024 * 1024,
            chaos: ChaosConfig::default(),
            default_url: String::new(),
            subscribers: Vec::new(),
            status_contacts: true,
        }
    }
}

/// Delivery misbehaviour, drawn from the seeded RNG.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChaosConfig {
    /// Probability that an event is delivered twice.
    pub duplicate: f64,
    /// Probability that an event is held back so a later one overtakes it (`read` before
    /// `delivered`).
    pub reorder: f64,
    /// How long a reordered event is held back, ms.
    pub reorder_hold_ms: i64,
    /// Probability that an event is delayed.
    pub delay: f64,
    /// Delay range.
    pub delay_ms: Option<Latency>,
}

/// Virtual users.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UsersConfig {
    /// Behaviour of users nobody configured.
    pub default: Behaviour,
    /// Per-user behaviours.
    pub users: Vec<UserConfig>,
}

/// One configured user.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// The user's `wa_id`.
    pub wa_id: String,
    /// Profile name.
    #[serde(default)]
    pub name: Option<String>,
    /// Username (the platform's username rules).
    #[serde(default)]
    pub username: Option<String>,
    /// Behaviour.
    #[serde(default, flatten)]
    pub behaviour: Behaviour,
}

/// How a virtual user behaves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Behaviour {
    /// False: not a WhatsApp user (sends fail with 131026).
    pub on_whatsapp: bool,
    /// Unreachable until this time (unix ms): messages stay `sent` until then.
    pub offline_until: Option<Millis>,
    /// Whether the user opens messages (`read`).
    pub reads: bool,
    /// Whether read receipts are on (no `read` webhook when off).
    pub read_receipts: bool,
    /// Replies with this text after reading a message.
    pub replies_with: Option<String>,
    /// Has blocked the business: messages stay at `sent`.
    pub blocks_business: bool,
    /// Has stopped marketing messages (marketing templates fail with 131050).
    pub marketing_opt_out: bool,
    /// In the marketing-message experiment holdout (`None`: decided by the seed, ~1 %).
    pub holdout: Option<bool>,
    /// Every marketing template to this user fails with 131049.
    pub ecosystem_block: bool,
    /// Every send to this user answers 131056 (pair rate limit).
    pub pair_limited: bool,
    /// Marketing and utility templates to this user are held for quality assessment (the
    /// pacing verdict, or its time limit, releases them).
    pub held_for_quality: bool,
    /// How the user reacts to each business-initiated template delivered to them: weights drawn
    /// with the sandbox's seeded RNG. `None`: `reads`, `replies_with` and `blocks_business`
    /// decide alone.
    pub reactions: Option<Reactions>,
}

/// Weights of a user's reactions to a delivered template (they need not add up to 1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Reactions {
    /// Blocks the business (negative signal; later messages stay `sent`).
    pub block: f64,
    /// Reports the business (strongly negative; also blocks).
    pub report: f64,
    /// Never opens it (neutral).
    pub ignore: f64,
    /// Reads it (positive).
    pub read: f64,
    /// Reads it and replies (positive; opens the customer service window).
    pub reply: f64,
}

impl Behaviour {
    /// Checks the behaviour's numbers; errors name the field under `prefix`.
    pub fn validate(&self, prefix: &str) -> Result<(), String> {
        if let Some(t) = self.offline_until {
            crate::bounds::instant(&format!("{prefix}.offline_until"), t)?;
        }
        if let Some(r) = &self.reactions {
            r.validate(&format!("{prefix}.reactions"))?;
        }
        Ok(())
    }
}

impl Reactions {
    /// Every weight finite and not negative; errors name the weight under `prefix`.
    pub fn validate(&self, prefix: &str) -> Result<(), String> {
        for (name, w) in [
            ("block", self.block),
            ("report", self.report),
            ("ignore", self.ignore),
            ("read", self.read),
            ("reply", self.reply),
        ] {
            crate::bounds::real(
                &format!("{prefix}.{name}"),
                w,
                0.0,
                crate::bounds::MAX_WEIGHT,
            )?;
        }
        Ok(())
    }
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            on_whatsapp: true,
            offline_until: None,
            reads: true,
            read_receipts: true,
            replies_with: None,
            blocks_business: false,
            marketing_opt_out: false,
            holdout: None,
            ecosystem_block: false,
            pair_limited: false,
            held_for_quality: false,
            reactions: None,
        }
    }
}

/// Graph API versions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GraphConfig {
    /// Oldest accepted major version (16 → v16.0).
    pub min_version: u32,
    /// Newest accepted major version (26 → v26.0, the current one); later ones get code 100.
    pub max_version: u32,
    /// Version assumed for the 360dialog dialect (decides payload details such as `conversation`).
    pub dialect_360_version: u32,
}

impl Default for GraphConfig {
    fn default() -> Self {
        GraphConfig {
            min_version: 16,
            max_version: 26,
            dialect_360_version: 23,
        }
    }
}

/// A template present from the first start: a creation body (spec §7.2) as TOML, plus its status.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TemplateConfig {
    /// Status it starts in (`APPROVED` unless told otherwise).
    #[serde(default)]
    pub status: Option<String>,
    /// The creation body: `name`, `language`, `category`, `components`, …
    #[serde(flatten)]
    pub definition: serde_json::Map<String, serde_json::Value>,
}

/// The templates every account has on the first start (unless
/// `template_review.seed_defaults = false`).
pub fn default_templates() -> Vec<TemplateConfig> {
    let t = |v: serde_json::Value| TemplateConfig {
        status: None,
        definition: match v {
            serde_json::Value::Object(m) => m,
            _ => serde_json::Map::new(),
        },
    };
    vec![
        t(serde_json::json!({
            "name": "hello_world", "language": "en_US", "category": "UTILITY",
            "components": [
                { "type": "HEADER", "format": "TEXT", "text": "Hello World" },
                { "type": "BODY", "text": "Welcome and congratulations!! This message demonstrates your ability to send a WhatsApp message notification from the Cloud API, hosted by Meta. Thank you for taking the time to test with us." },
                { "type": "FOOTER", "text": "WhatsApp Business Platform sample message" }
            ]
        })),
        t(serde_json::json!({
            "name": "order_update", "language": "en_US", "category": "UTILITY",
            "components": [
                { "type": "BODY", "text": "Hi {{1}}, thank you for shopping with us. Your order of {{2}} is on its way and arrives on {{3}}. Reply to this message if you have any questions.",
                  "example": { "body_text": [["Ana", "$100.99", "February 25, 2026"]] } }
            ]
        })),
        t(serde_json::json!({
            "name": "spring_sale", "language": "en_US", "category": "MARKETING",
            "components": [
                { "type": "BODY", "text": "Spring sale! Everything in the shop is 20% off this week only. Come and have a look before it ends." },
                { "type": "BUTTONS", "buttons": [ { "type": "QUICK_REPLY", "text": "Stop promotions" } ] }
            ]
        })),
        t(serde_json::json!({
            "name": "new_arrivals", "language": "en_US", "category": "MARKETING",
            "components": [
                { "type": "HEADER", "format": "IMAGE", "example": { "header_handle": ["4::aW1hZ2UvanBlZw==:ARb"] } },
                { "type": "BODY", "text": "Hello {{1}}, new arrivals are in store this week. Take a look at the picture and visit us soon.",
                  "example": { "body_text": [["Ana"]] } },
                { "type": "BUTTONS", "buttons": [ { "type": "QUICK_REPLY", "text": "Stop promotions" } ] }
            ]
        })),
        t(serde_json::json!({
            "name": "verification_code", "language": "en_US", "category": "AUTHENTICATION",
            "message_send_ttl_seconds": 600,
            "components": [
                { "type": "BODY", "add_security_recommendation": true },
                { "type": "FOOTER", "code_expiration_minutes": 10 },
                { "type": "BUTTONS", "buttons": [ { "type": "OTP", "otp_type": "COPY_CODE", "text": "Copy code" } ] }
            ]
        })),
    ]
}

/// Template management and review.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TemplateReviewConfig {
    /// Sandbox time from creation (or edit) to the review's decision, ms.
    pub review_delay_ms: Millis,
    /// Templates whose name contains one of these are rejected (reason `INVALID_FORMAT`).
    pub reject_names_containing: Vec<String>,
    /// Templates an account may hold (250 unverified, up to 6,000).
    pub max_per_account: usize,
    /// Case of statuses in the 360dialog listing: `upper` (Meta's) or `lower` (older 360dialog clients).
    pub status_case_360: String,
    /// Whether the default templates (`hello_world` and one per category) are created.
    pub seed_defaults: bool,
}

impl Default for TemplateReviewConfig {
    fn default() -> Self {
        TemplateReviewConfig {
            review_delay_ms: 60_000,
            reject_names_containing: vec!["reject".to_string()],
            max_per_account: 250,
            status_case_360: "upper".to_string(),
            seed_defaults: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_toml_is_the_default() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.limits.messages(), (50, 150));
        assert_eq!(c.limits.other(), (20, 60));
        assert_eq!(c.effective_accounts()[0].numbers[0].api_key, DEV_API_KEY);
    }

    /// TOML has no null: `false` switches an optional rule off; a value sets it; the value's own
    /// errors still name the key.
    #[test]
    fn toml_switches_optional_rules_off_with_false() {
        let c = Config::from_toml(
            "[rules]\nthroughput_mps = false\npair_rate = false\nmarketing_limit = false\npacing = false\nmessaging_limit = false\n",
        )
        .unwrap();
        assert!(c.rules.throughput_mps.is_none());
        assert!(c.rules.pair_rate.is_none());
        assert!(c.rules.marketing_limit.is_none());
        assert!(c.rules.pacing.is_none());
        assert!(c.rules.messaging_limit.is_none());
        let c = Config::from_toml(
            "[rules]\nthroughput_mps = 200\npair_rate = { every_ms = 1000, burst = 2 }\n",
        )
        .unwrap();
        assert_eq!(c.rules.throughput_mps, Some(200));
        assert_eq!(
            c.rules.pair_rate.map(|p| (p.every_ms, p.burst)),
            Some((1000, 2))
        );
        assert!(
            c.rules.pacing.is_some(),
            "unnamed rules keep their defaults"
        );
        let e = Config::from_toml("[rules]\nthroughput_mps = true\n").unwrap_err();
        assert!(e.contains("false to switch it off"), "{e}");
        let e = Config::from_toml("[rules]\npair_rate = { every = 1 }\n").unwrap_err();
        assert!(e.contains("every"), "{e}");
        // JSON's null works as well (the control API).
        let r: RulesConfig = serde_json::from_str(r#"{"throughput_mps": null}"#).unwrap();
        assert!(r.throughput_mps.is_none());
        // A configuration written out and read back keeps its rules off.
        let c = Config {
            rules: RulesConfig::off(),
            ..Config::default()
        };
        let text = c.to_toml_with_rules_off();
        let back = Config::from_toml(&text).unwrap();
        assert!(back.rules.throughput_mps.is_none() && back.rules.pair_rate.is_none());
    }

    #[test]
    fn toml_adds_templates_and_review_rules() {
        let c = Config::from_toml(
            r#"
            [template_review]
            review_delay_ms = 1000
            reject_names_containing = ["bad"]
            [[templates]]
            name = "appointment_reminder"
            language = "en_US"
            category = "UTILITY"
            status = "PENDING"
            components = [{ type = "BODY", text = "Hi {{1}}, this is a reminder of your appointment tomorrow.", example = { body_text = [["Ana"]] } }]
            "#,
        )
        .unwrap();
        assert_eq!(c.template_review.review_delay_ms, 1000);
        assert_eq!(c.templates.len(), 1);
        assert_eq!(c.templates[0].status.as_deref(), Some("PENDING"));
        let body = serde_json::to_vec(&c.templates[0].definition).unwrap();
        let def = mynah_wire::template::parse_create(&body).unwrap();
        assert_eq!(def.body_variables().len(), 1);
    }

    #[test]
    fn default_templates_are_valid() {
        for t in default_templates() {
            let body = serde_json::to_vec(&t.definition).unwrap();
            assert!(
                mynah_wire::template::parse_create(&body).is_ok(),
                "{:?}",
                t.definition.get("name")
            );
        }
    }

    #[test]
    fn toml_sets_numbers_and_users() {
        let c = Config::from_toml(
            r#"
            seed = 9
            [limits]
            profile = "high-throughput"
            [[accounts]]
            waba_id = "1"
            [[accounts.numbers]]
            phone_number_id = "11"
            api_key = "k11"
            [[users.users]]
            wa_id = "4915100000001"
            reads = false
            "#,
        )
        .unwrap();
        assert_eq!(c.seed, 9);
        assert_eq!(c.limits.messages(), (1_000, 3_000));
        assert_eq!(c.effective_accounts()[0].numbers[0].api_key, "k11");
        assert!(!c.users.users[0].behaviour.reads);
        assert!(Config::from_toml("nonsense = 1").is_err());
    }

    /// The README's example configuration parses and is in range, `[server]` included.
    #[test]
    fn the_readme_example_is_valid() {
        let readme = include_str!("../../../README.md");
        let section = readme
            .split("## Configuration file")
            .nth(1)
            .expect("the README has a configuration section");
        let block = section
            .split("```toml")
            .nth(1)
            .and_then(|b| b.split("```").next())
            .expect("with a TOML example");
        let cfg = Config::from_toml(block).unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.media, MediaConfig::default());
        assert_eq!(cfg.server, mynah_serve::ServerConfig::default());
        assert_eq!(cfg.seed, 42);
    }

    #[test]
    fn toml_sets_webhook_subscribers() {
        let c = Config::from_toml(
            r#"
            [webhooks]
            subscribers = ["http://127.0.0.1:8081/webhooks", "http://127.0.0.1:9/x"]
            "#,
        )
        .unwrap();
        assert_eq!(c.webhooks.subscribers.len(), 2);
        assert!(Config::default().webhooks.subscribers.is_empty());
    }

    #[test]
    fn toml_sets_the_server_limits() {
        let c = Config::from_toml(
            r#"
            [server]
            header_read_timeout_ms = 1000
            idle_timeout_ms = 2000
            max_connections = 200
            "#,
        )
        .unwrap();
        assert_eq!(c.server, mynah_serve::ServerConfig::new(1_000, 2_000, 200));
        assert_eq!(
            Config::default().server,
            mynah_serve::ServerConfig::default()
        );
        assert!(Config::from_toml("[server]\nmax_connections = 0").is_err());
    }
}
