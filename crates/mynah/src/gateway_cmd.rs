//! `mynah gateway` (the sending service alone, in front of 360dialog, the Cloud API or a sandbox)
//! and the gateway half of `mynah serve`.

use clap::{Args, ValueEnum};
use mynah_gateway::clock::Clock;
use mynah_gateway::config::Config;
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
    /// The upstream's dialect.
    #[arg(long, value_enum)]
    pub upstream: Option<UpstreamArg>,
    /// The upstream's base URL (360dialog: https://waba-v2.360dialog.io; Cloud:
    /// https://graph.facebook.com).
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
    /// The key apps present (`Authorization: Bearer …`).
    #[arg(long, env = "MYNAH_GATEWAY_KEY")]
    pub gateway_key: Option<String>,
    /// TOML file with everything else (gates, limits, classifier rows, app webhooks).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

impl GatewayArgs {
    /// The configuration: the file, then the flags on top.
    pub fn to_config(&self) -> Result<Config, String> {
        let mut cfg: Config = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
            }
            None => Config::default(),
        };
        cfg.listen = self.listen.to_string();
        cfg.data_dir = (!self.ephemeral).then(|| self.data_dir.clone());
        if let Some(u) = self.upstream {
            cfg.upstream.dialect = match u {
                UpstreamArg::D360 => Dialect::D360,
                UpstreamArg::Cloud => Dialect::Cloud,
            };
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
        Ok(cfg)
    }
}

/// An opened gateway and what closing it needs.
pub struct Opened {
    /// The gateway.
    pub gateway: Arc<Gateway<SqliteStore>>,
    /// Its store (closed after the gateway stops).
    pub store: SqliteStore,
}

/// Opens the store and builds the gateway.
pub async fn open(cfg: Config) -> Result<Opened, String> {
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
    Ok(Opened { gateway, store })
}

/// Serves an opened gateway until `shutdown`, then commits what is queued.
pub async fn serve(
    opened: Opened,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> Result<(), String> {
    let result = run(listener, opened.gateway, shutdown).await;
    opened.store.close().await;
    result.map_err(|e| e.to_string())
}

/// The gateway's lines of the start banner.
pub fn banner(cfg: &Config, base: &str) {
    println!("mynah gateway on {base}");
    println!(
        "  storage   {}",
        match &cfg.data_dir {
            Some(d) => format!("{} (SQLite)", d.join("gateway.db").display()),
            None => "in memory (--ephemeral)".to_string(),
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
    println!("  webhooks  POST {base}/webhooks (the platform's webhook URL)");
    println!("  api doc   {base}/openapi.json");
}
