//! `mynah gateway` (the sending service alone, in front of 360dialog, the Cloud API or a sandbox)
//! and the gateway half of `mynah serve`.

use clap::{Args, ValueEnum};
use mynah_gateway::clock::Clock;
use mynah_gateway::config::Config;
use mynah_gateway::store::postgres::{PostgresOptions, PostgresStore};
use mynah_gateway::store::sqlite::{SqliteOptions, SqliteStore};
use mynah_gateway::upstream::Dialect;
use mynah_gateway::{Gateway, run};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Which API the gateway sends to.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum UpstreamArg {
    /// 360dialog: `D360-API-KEY`, `POST /messages`.
    #[value(name = "360dialog")]
    D360,
    /// Meta Cloud API: bearer token, `POST /{version}/{phone_number_id}/messages`.
    Cloud,
}

/// Flags of `mynah gateway`.
#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8361", env = "MYNAH_GATEWAY_LISTEN")]
    pub listen: SocketAddr,
    /// Where to keep the outbox (SQLite).
    #[arg(
        long,
        default_value = ".mynah-gateway",
        env = "MYNAH_GATEWAY_DATA_DIR",
        conflicts_with = "ephemeral"
    )]
    pub data_dir: PathBuf,
    /// Keep everything in memory (tests and demos: nothing survives a restart).
    #[arg(long)]
    pub ephemeral: bool,
    /// Store in PostgreSQL instead (`postgres://user:password@host:port/database`); several
    /// gateway instances may share one database.
    #[arg(long, env = "MYNAH_GATEWAY_DATABASE_URL", conflicts_with = "ephemeral")]
    pub database_url: Option<String>,
    /// The upstream's dialect. Without it (and without an `[upstream]` table in the config
    /// file) the gateway sends to a local sandbox at http://127.0.0.1:8360 with its
    /// development key, as `mynah sandbox` starts it.
    #[arg(long, value_enum)]
    pub upstream: Option<UpstreamArg>,
    /// The upstream's base URL. Default with `--upstream`: the platform's own
    /// (https://waba-v2.360dialog.io, https://graph.facebook.com); without: the local sandbox.
    #[arg(long)]
    pub upstream_url: Option<String>,
    /// 360dialog API key.
    #[arg(long, env = "MYNAH_UPSTREAM_KEY")]
    pub upstream_key: Option<String>,
    /// Cloud API token.
    #[arg(long, env = "MYNAH_UPSTREAM_TOKEN")]
    pub upstream_token: Option<String>,
    /// Cloud API phone number id.
    #[arg(long)]
    pub phone_number_id: Option<String>,
    /// WhatsApp Business Account id (Cloud template listing).
    #[arg(long)]
    pub waba_id: Option<String>,
    /// App secret that signs incoming webhooks (X-Hub-Signature-256).
    #[arg(long, env = "MYNAH_APP_SECRET")]
    pub app_secret: Option<String>,
    /// Accept webhooks without a signature or shared secret (the gateway refuses to start
    /// without a way to authenticate them otherwise).
    #[arg(long)]
    pub unauthenticated_webhooks: bool,
    /// The key apps present (`Authorization: Bearer …`).
    #[arg(long, env = "MYNAH_GATEWAY_KEY")]
    pub gateway_key: Option<String>,
    /// TOML file with everything else (gates, limits, classifier rows, app webhooks).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// What to do instead of serving.
    #[command(subcommand)]
    pub action: Option<GatewayAction>,
}

/// `mynah gateway <action>`.
#[derive(Debug, clap::Subcommand)]
pub enum GatewayAction {
    /// Bring the store's schema to this build's version and exit (the gateway also does it at
    /// start; instances starting together take turns).
    Migrate(MigrateArgs),
}

/// Flags of `mynah gateway migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The PostgreSQL database (else the config file's `database_url`, else SQLite in
    /// `--data-dir`).
    #[arg(long, env = "MYNAH_GATEWAY_DATABASE_URL")]
    pub database_url: Option<String>,
    /// The SQLite data directory.
    #[arg(long, default_value = ".mynah-gateway", env = "MYNAH_GATEWAY_DATA_DIR")]
    pub data_dir: PathBuf,
    /// The gateway's configuration file (for `database_url` and `database_schema`).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// Runs `mynah gateway migrate`.
pub async fn migrate(args: &MigrateArgs) -> Result<(), String> {
    let file = match &args.config {
        Some(path) => read_config(path)?,
        None => Config::default(),
    };
    match args.database_url.clone().or(file.database_url) {
        Some(url) => {
            let opts = PostgresOptions {
                schema: file.database_schema,
                ..PostgresOptions::default()
            };
            let version = PostgresStore::migrate(&url, opts)
                .await
                .map_err(|e| format!("gateway store: {e}"))?;
            println!(
                "{}: the gateway schema is at version {version}",
                redact_url(&url)
            );
        }
        None => {
            std::fs::create_dir_all(&args.data_dir)
                .map_err(|e| format!("cannot create {}: {e}", args.data_dir.display()))?;
            let path = args.data_dir.join("gateway.db");
            let store = SqliteStore::open(Some(&path), SqliteOptions::default())
                .await
                .map_err(|e| format!("gateway store: {e}"))?;
            store.close().await;
            println!("{}: the gateway schema is up to date", path.display());
        }
    }
    Ok(())
}

/// A database URL without its password, for banners and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{scheme}://{name}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

impl GatewayArgs {
    /// The configuration: the file, then the flags on top.
    pub fn to_config(&self) -> Result<Config, String> {
        let mut cfg: Config = match &self.config {
            Some(path) => read_config(path)?,
            None => Config::default(),
        };
        cfg.listen = self.listen.to_string();
        cfg.data_dir = (!self.ephemeral).then(|| self.data_dir.clone());
        if let Some(url) = &self.database_url {
            cfg.database_url = Some(url.clone());
        }
        if self.ephemeral {
            cfg.database_url = None;
        }
        let dev = Config::default().upstream;
        let untouched = cfg.upstream.base_url == dev.base_url
            && cfg.upstream.api_key == dev.api_key
            && cfg.upstream.dialect == dev.dialect;
        if let Some(u) = self.upstream {
            let dialect = match u {
                UpstreamArg::D360 => Dialect::D360,
                UpstreamArg::Cloud => Dialect::Cloud,
            };
            if untouched {
                // Naming a dialect means the real platform: its own URL, no development key.
                cfg.upstream.base_url = None;
                cfg.upstream.api_key = None;
            }
            cfg.upstream.dialect = dialect;
        }
        if let Some(u) = &self.upstream_url {
            cfg.upstream.base_url = Some(u.trim_end_matches('/').to_string());
        }
        if let Some(k) = &self.upstream_key {
            cfg.upstream.api_key = Some(k.clone());
        }
        if let Some(t) = &self.upstream_token {
            cfg.upstream.token = Some(t.clone());
        }
        if let Some(p) = &self.phone_number_id {
            cfg.upstream.phone_number_id = Some(p.clone());
        }
        if let Some(w) = &self.waba_id {
            cfg.upstream.waba_id = Some(w.clone());
        }
        if let Some(s) = &self.app_secret {
            cfg.app_secret = s.clone();
        }
        if let Some(k) = &self.gateway_key {
            cfg.gateway_key = k.clone();
        }
        if self.unauthenticated_webhooks {
            cfg.unauthenticated_webhooks = true;
        }
        check_credentials(&cfg.upstream)?;
        cfg.check_exposure(self.listen)?;
        Ok(cfg)
    }
}

/// Refuses an upstream that could not send a single message.
fn check_credentials(u: &mynah_gateway::upstream::UpstreamConfig) -> Result<(), String> {
    let blank = |v: &Option<String>| v.as_deref().is_none_or(|s| s.trim().is_empty());
    match u.dialect {
        Dialect::D360 if blank(&u.api_key) => Err(
            "the 360dialog upstream needs its API key: --upstream-key KEY (or MYNAH_UPSTREAM_KEY, or api_key under [upstream])".into(),
        ),
        Dialect::Cloud if blank(&u.token) => Err(
            "the Cloud API upstream needs an access token: --upstream-token TOKEN (or MYNAH_UPSTREAM_TOKEN, or token under [upstream])".into(),
        ),
        Dialect::Cloud if blank(&u.phone_number_id) => Err(
            "the Cloud API upstream needs the sending number: --phone-number-id ID (or phone_number_id under [upstream])".into(),
        ),
        _ => Ok(()),
    }
}

/// Reads a gateway configuration file (TOML; every key optional).
pub fn read_config(path: &Path) -> Result<Config, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// An opened gateway and what closing it needs, on either backend (the gateway is generic over
/// its store; the binary picks one at start).
pub enum Opened {
    /// SQLite (a file in the data directory, or memory).
    Sqlite {
        /// The gateway.
        gateway: Arc<Gateway<SqliteStore>>,
        /// Its store (closed after the gateway stops).
        store: SqliteStore,
    },
    /// PostgreSQL (`database_url`).
    Postgres {
        /// The gateway.
        gateway: Arc<Gateway<PostgresStore>>,
        /// Its store (closed after the gateway stops).
        store: PostgresStore,
    },
}

/// Opens the store (PostgreSQL when `database_url` is set, else SQLite) and builds the gateway.
pub async fn open(cfg: Config) -> Result<Opened, String> {
    if let Some(url) = cfg.database_url.clone() {
        let opts = PostgresOptions {
            schema: cfg.database_schema.clone(),
            ..PostgresOptions::default()
        };
        let store = PostgresStore::open(&url, opts)
            .await
            .map_err(|e| format!("gateway store ({}): {e}", redact_url(&url)))?;
        let gateway = Gateway::new(cfg, store.clone(), Arc::new(Clock::System))?;
        gateway
            .follow_other_instances()
            .map_err(|e| format!("gateway store: {e}"))?;
        return Ok(Opened::Postgres { gateway, store });
    }
    let path = match &cfg.data_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            Some(dir.join("gateway.db"))
        }
        None => None,
    };
    let store = SqliteStore::open(path.as_deref().map(Path::new), SqliteOptions::default())
        .await
        .map_err(|e| format!("gateway store: {e}"))?;
    let gateway = Gateway::new(cfg, store.clone(), Arc::new(Clock::System))?;
    Ok(Opened::Sqlite { gateway, store })
}

/// Serves an opened gateway until `shutdown`, then commits what is queued.
pub async fn serve(
    opened: Opened,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> Result<(), String> {
    let result = match opened {
        Opened::Sqlite { gateway, store } => {
            let r = run(listener, gateway, shutdown).await;
            store.close().await;
            r
        }
        Opened::Postgres { gateway, store } => {
            let r = run(listener, gateway, shutdown).await;
            store.close().await;
            r
        }
    };
    result.map_err(|e| e.to_string())
}

/// The gateway's lines of the start banner.
pub fn banner(cfg: &Config, base: &str, file: Option<&Path>) {
    println!("mynah gateway on {base}");
    if let Some(f) = file {
        println!("  config    {}", f.display());
    }
    println!(
        "  storage   {}",
        match (&cfg.database_url, &cfg.data_dir) {
            (Some(url), _) => format!("{} (PostgreSQL)", redact_url(url)),
            (None, Some(d)) => format!("{} (SQLite)", d.join("gateway.db").display()),
            (None, None) => "in memory (--ephemeral)".to_string(),
        }
    );
    println!(
        "  upstream  {} {}",
        cfg.upstream.dialect.as_str(),
        cfg.upstream.base_url.as_deref().unwrap_or("(the platform)")
    );
    println!(
        "  apps      POST {base}/v1/messages   Authorization: Bearer {}",
        cfg.gateway_key
    );
    println!(
        "  webhooks  POST {base}/webhooks (the platform's webhook URL), {}",
        cfg.webhook_auth()
    );
    println!("  api doc   {base}/openapi.json");
    if cfg.console.enabled {
        let who = match (cfg.console.gateway_key_sign_in, cfg.console.users.len()) {
            (true, 0) => "the gateway key".to_string(),
            (true, n) => format!("the gateway key or one of {n} users' keys"),
            (false, n) => format!("one of {n} users' keys"),
        };
        println!("  console   {base}/console/ (sign in with {who})");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        args: GatewayArgs,
    }

    fn config(argv: &[&str]) -> Result<Config, String> {
        let mut all = vec!["gateway", "--app-secret", "s"];
        all.extend_from_slice(argv);
        Cmd::parse_from(all).args.to_config()
    }

    fn bare(argv: &[&str]) -> Result<Config, String> {
        let mut all = vec!["gateway"];
        all.extend_from_slice(argv);
        Cmd::parse_from(all).args.to_config()
    }

    #[test]
    fn unauthenticated_webhooks_and_the_development_key_abroad_are_refused() {
        let e = bare(&["--ephemeral"]).unwrap_err();
        assert!(e.contains("--unauthenticated-webhooks"), "{e}");
        let open = bare(&["--ephemeral", "--unauthenticated-webhooks"]).unwrap();
        assert!(open.webhook_auth().contains("NOT AUTHENTICATED"));
        assert!(config(&[]).unwrap().webhook_auth().contains("app secret"));
        let e = config(&["--listen", "0.0.0.0:8361"]).unwrap_err();
        assert!(e.contains("development key"), "{e}");
        assert!(config(&["--listen", "0.0.0.0:8361", "--gateway-key", "k9"]).is_ok());
        assert!(config(&["--listen", "[::1]:8361"]).is_ok());
    }

    #[test]
    fn the_default_upstream_is_a_local_sandbox_and_naming_a_dialect_means_the_platform() {
        let dev = config(&["--ephemeral"]).unwrap();
        assert_eq!(dev.upstream.base(), "http://127.0.0.1:8360");
        assert_eq!(
            dev.upstream.api_key.as_deref(),
            Some(mynah_sandbox::config::DEV_API_KEY)
        );
        let d360 = config(&["--upstream", "360dialog", "--upstream-key", "K"]).unwrap();
        assert_eq!(d360.upstream.base(), "https://waba-v2.360dialog.io");
        assert_eq!(d360.upstream.api_key.as_deref(), Some("K"));
        let cloud = config(&[
            "--upstream",
            "cloud",
            "--upstream-token",
            "T",
            "--phone-number-id",
            "1",
        ])
        .unwrap();
        assert_eq!(cloud.upstream.base(), "https://graph.facebook.com");
        assert_eq!(
            cloud.upstream.api_key, None,
            "the development key stays home"
        );
        let local = config(&[
            "--upstream",
            "cloud",
            "--upstream-url",
            "http://127.0.0.1:9/",
            "--upstream-token",
            "T",
            "--phone-number-id",
            "1",
        ])
        .unwrap();
        assert_eq!(local.upstream.base(), "http://127.0.0.1:9");
    }

    #[test]
    fn database_urls_lose_their_password_in_the_banner() {
        assert_eq!(
            redact_url("postgres://gw:s3cret@db.example:5432/mynah"),
            "postgres://gw:***@db.example:5432/mynah"
        );
        assert_eq!(
            redact_url("postgres://gw@db/mynah"),
            "postgres://gw@db/mynah"
        );
        let pg = config(&["--database-url", "postgres://gw@db/mynah"]).unwrap();
        assert_eq!(pg.database_url.as_deref(), Some("postgres://gw@db/mynah"));
    }

    #[test]
    fn an_upstream_without_credentials_is_refused_at_start() {
        let e = config(&["--upstream", "360dialog"]).unwrap_err();
        assert!(e.contains("--upstream-key"), "{e}");
        let e = config(&["--upstream", "cloud", "--phone-number-id", "1"]).unwrap_err();
        assert!(e.contains("--upstream-token"), "{e}");
        let e = config(&["--upstream", "cloud", "--upstream-token", "T"]).unwrap_err();
        assert!(e.contains("--phone-number-id"), "{e}");
    }
}
