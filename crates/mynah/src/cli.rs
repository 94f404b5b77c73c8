//! The command line: `mynah sandbox`, `mynah serve`, `mynah bench`.

use clap::{Args, Parser, Subcommand, ValueEnum};
use mynah_sandbox::Sandbox;
use mynah_sandbox::config::{ClockMode, Config};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// Mynah: the WhatsApp Business messaging system in one binary.
#[derive(Debug, Parser)]
#[command(name = "mynah", version, about)]
pub struct Cli {
    /// What to log: `error`, `warn`, `info` (the default), `debug`, `trace`, or a filter such as
    /// `info,mynah_gateway=debug`. Without it, `RUST_LOG` decides; without that, `info`.
    #[arg(long, global = true, env = "MYNAH_LOG_LEVEL")]
    log_level: Option<String>,
    /// `text` (readable lines) or `json` (one JSON object per line, for production).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "MYNAH_LOG_FORMAT"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// The log's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// One readable line per event.
    Text,
    /// One JSON object per line.
    Json,
}

impl Cli {
    /// The filter in force: `--log-level`, else `RUST_LOG`, else `info`.
    fn log_filter(&self) -> String {
        self.log_level
            .clone()
            .or_else(|| std::env::var("RUST_LOG").ok())
            .filter(|f| !f.trim().is_empty())
            .unwrap_or_else(|| "info".to_string())
    }

    /// Starts the log on standard error (standard output carries the start banners).
    pub fn init_logging(&self) -> Result<(), String> {
        let filter = self.log_filter();
        let env = tracing_subscriber::EnvFilter::try_new(&filter)
            .map_err(|e| format!("--log-level {filter:?} is not a log filter: {e}"))?;
        use std::io::IsTerminal;
        let builder = tracing_subscriber::fmt()
            .with_env_filter(env)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false);
        let done = match self.log_format {
            LogFormat::Text => builder.try_init(),
            LogFormat::Json => builder.json().with_current_span(false).try_init(),
        };
        done.map_err(|e| format!("cannot start the log: {e}"))
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the sandbox: the platform's API in its dialects, virtual users, signed webhooks.
    Sandbox(SandboxArgs),
    /// Run the gateway: the resilient sending service in front of 360dialog or the Cloud API.
    Gateway(crate::gateway_cmd::GatewayArgs),
    /// Run both on one machine: the gateway in front of an embedded sandbox, wired together.
    Serve(ServeArgs),
    /// Load-test a sandbox: send text messages over keep-alive connections, report throughput
    /// and latency percentiles.
    Bench(crate::bench::BenchArgs),
    /// Load-test the gateway wired to an in-process sandbox: end-to-end throughput, or webhook
    /// intake latency under a steady rate.
    BenchGateway(crate::bench_gateway::BenchGatewayArgs),
    /// Benchmark of a campaign's audience import: a generated CSV into a built campaign.
    BenchCampaign(crate::bench_campaign::BenchCampaignArgs),
    /// Campaigns of a running gateway: create one from a CSV audience, follow it, pause,
    /// resume or cancel it.
    Campaign(crate::campaign_cmd::CampaignArgs),
}

/// Which clock the sandbox runs on.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum ClockArg {
    /// Wall-clock time.
    System,
    /// Stands still until `POST /_mynah/clock/advance`.
    Manual,
}

/// Flags of `mynah sandbox` and `mynah serve`.
#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8360", env = "MYNAH_LISTEN")]
    listen: SocketAddr,
    /// Where to keep data (SQLite).
    #[arg(
        long,
        default_value = ".mynah",
        env = "MYNAH_DATA_DIR",
        conflicts_with = "ephemeral"
    )]
    data_dir: PathBuf,
    /// Keep everything in memory; nothing survives a restart.
    #[arg(long)]
    ephemeral: bool,
    /// `system` or `manual`.
    #[arg(long, value_enum)]
    clock: Option<ClockArg>,
    /// Seed of every random draw (ids, latencies, chaos).
    #[arg(long)]
    seed: Option<u64>,
    /// 360dialog API key (D360-API-KEY) of the first number.
    #[arg(long)]
    api_key: Option<String>,
    /// Cloud API bearer token.
    #[arg(long)]
    token: Option<String>,
    /// App secret that signs webhooks.
    #[arg(long)]
    app_secret: Option<String>,
    /// Phone number id of the first number.
    #[arg(long)]
    phone_number_id: Option<String>,
    /// WhatsApp Business Account id of the first account.
    #[arg(long)]
    waba_id: Option<String>,
    /// Default webhook URL for numbers that have none.
    #[arg(long)]
    webhook_url: Option<String>,
    /// TOML file with everything else (numbers, behaviours, limits, latencies, chaos).
    #[arg(long)]
    config: Option<PathBuf>,
}

/// Flags of `mynah serve`: the sandbox's, and the gateway's address, key and configuration.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    sandbox: SandboxArgs,
    /// Address the gateway listens on.
    #[arg(long, default_value = "127.0.0.1:8361", env = "MYNAH_GATEWAY_LISTEN")]
    gateway_listen: SocketAddr,
    /// The key apps present to the gateway (`Authorization: Bearer …`); wins over the gateway
    /// configuration's `gateway_key`.
    #[arg(long, env = "MYNAH_GATEWAY_KEY")]
    gateway_key: Option<String>,
    /// The gateway's configuration (the TOML of `mynah gateway --config`: gates, rate,
    /// classifier rows, app webhooks, retention …). Under `serve` its upstream, app secret,
    /// listen address and data directory are the embedded sandbox's and serve's own.
    #[arg(long, env = "MYNAH_GATEWAY_CONFIG")]
    gateway_config: Option<PathBuf>,
}

impl ServeArgs {
    /// The gateway's configuration under `serve`: the file (if any), wired to the sandbox.
    fn gateway_config(
        &self,
        sb: &Sandbox,
        sb_base: &str,
        gw_addr: SocketAddr,
    ) -> Result<mynah_gateway::config::Config, String> {
        let mut cfg = match &self.gateway_config {
            Some(path) => crate::gateway_cmd::read_config(path)?,
            None => mynah_gateway::config::Config::default(),
        };
        let (key, token, pnid, waba) = {
            let world = sb.world();
            let first = world.first_number();
            (
                first.map(|n| n.api_key.clone()).unwrap_or_default(),
                first.map(|n| n.token.clone()).unwrap_or_default(),
                first.map(|n| n.phone_number_id.clone()).unwrap_or_default(),
                first.map(|n| n.waba_id.clone()).unwrap_or_default(),
            )
        };
        // The dialect the file chose is kept; the address and credentials are the sandbox's.
        let mut upstream = match cfg.upstream.dialect {
            mynah_gateway::upstream::Dialect::D360 => {
                mynah_gateway::upstream::UpstreamConfig::d360(sb_base, &key)
            }
            mynah_gateway::upstream::Dialect::Cloud => {
                let mut u = mynah_gateway::upstream::UpstreamConfig::d360(sb_base, &key);
                u.dialect = mynah_gateway::upstream::Dialect::Cloud;
                u.api_key = None;
                u.token = Some(token);
                u.waba_id = Some(waba);
                u
            }
        };
        upstream.phone_number_id = Some(pnid);
        upstream.timeout_ms = cfg.upstream.timeout_ms;
        cfg.upstream = upstream;
        cfg.app_secret = sb.config.app_secret.clone();
        cfg.webhook_secret_header = None;
        cfg.listen = gw_addr.to_string();
        cfg.data_dir = sb.config.data_dir.clone();
        if let Some(k) = &self.gateway_key {
            cfg.gateway_key = k.clone();
        }
        cfg.check_exposure(gw_addr)?;
        Ok(cfg)
    }
}

impl SandboxArgs {
    /// The configuration: the file, then the flags on top.
    pub fn to_config(&self) -> Result<Config, String> {
        let mut cfg = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                Config::from_toml(&text).map_err(|e| format!("{}: {e}", path.display()))?
            }
            None => Config::default(),
        };
        cfg.data_dir = if self.ephemeral {
            None
        } else {
            Some(self.data_dir.clone())
        };
        if let Some(c) = self.clock {
            cfg.clock.mode = match c {
                ClockArg::System => ClockMode::System,
                ClockArg::Manual => ClockMode::Manual,
            };
        }
        if let Some(s) = self.seed {
            cfg.seed = s;
        }
        if let Some(t) = &self.token {
            cfg.token = t.clone();
        }
        if let Some(s) = &self.app_secret {
            cfg.app_secret = s.clone();
        }
        if let Some(u) = &self.webhook_url {
            cfg.webhooks.default_url = u.clone();
        }
        let mut accounts = cfg.effective_accounts();
        if let Some(first) = accounts.first_mut() {
            if let Some(w) = &self.waba_id {
                first.waba_id = w.clone();
            }
            if let Some(n) = first.numbers.first_mut() {
                if let Some(k) = &self.api_key {
                    n.api_key = k.clone();
                }
                if let Some(p) = &self.phone_number_id {
                    n.phone_number_id = p.clone();
                }
            }
        }
        cfg.accounts = accounts;
        Ok(cfg)
    }
}

/// Runs the chosen command.
pub async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Sandbox(args) => serve_sandbox(args).await,
        Command::Gateway(args) => serve_gateway(args).await,
        Command::Serve(args) => serve_both(args).await,
        Command::Bench(args) => crate::bench::run(args).await,
        Command::BenchGateway(args) => crate::bench_gateway::run(args).await.map(|_| ()),
        Command::Campaign(args) => crate::campaign_cmd::run(args).await,
        Command::BenchCampaign(args) => crate::bench_campaign::run(args).await,
    }
}

async fn serve_sandbox(args: SandboxArgs) -> Result<(), String> {
    let started = Instant::now();
    let cfg = args.to_config()?;
    let sandbox = Sandbox::open(cfg).await?;
    let listener = mynah_serve::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let base = format!("http://{addr}");
    sandbox.set_base_url(&base);
    print_banner(&sandbox, &base, started);
    tracing::info!(sandbox = %base, "sandbox listening");
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        stop.cancel();
    });
    mynah_sandbox::http::run(listener, sandbox, shutdown)
        .await
        .map_err(|e| e.to_string())
}

async fn serve_gateway(args: crate::gateway_cmd::GatewayArgs) -> Result<(), String> {
    if let Some(crate::gateway_cmd::GatewayAction::Migrate(m)) = &args.action {
        return crate::gateway_cmd::migrate(m).await;
    }
    let cfg = args.to_config()?;
    let listener = mynah_serve::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let base = format!(
        "http://{}",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    crate::gateway_cmd::banner(&cfg, &base, args.config.as_deref());
    let upstream = cfg.upstream.base_url.clone().unwrap_or_default();
    let opened = crate::gateway_cmd::open(cfg).await?;
    tracing::info!(gateway = %base, upstream = %upstream, "gateway listening");
    crate::gateway_cmd::serve(opened, listener, signal_token()).await
}

/// Both planes, wired: the gateway's intake is subscribed to every sandbox webhook (beside any
/// URL the user registers), the gateway's upstream is the sandbox. Both addresses are computed
/// anew on every start; nothing of the wiring is saved in the data directory.
async fn serve_both(args: ServeArgs) -> Result<(), String> {
    let started = Instant::now();
    let mut sb_cfg = args.sandbox.to_config()?;
    let gw_listener = mynah_serve::bind(args.gateway_listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.gateway_listen))?;
    let gw_addr = gw_listener.local_addr().map_err(|e| e.to_string())?;
    let gw_base = format!("http://{gw_addr}");
    let intake = format!("{gw_base}/webhooks");
    sb_cfg.webhooks.subscribers.push(intake.clone());
    let sandbox = Sandbox::open(sb_cfg).await?;
    let sb_listener = mynah_serve::bind(args.sandbox.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.sandbox.listen))?;
    let sb_base = format!(
        "http://{}",
        sb_listener.local_addr().map_err(|e| e.to_string())?
    );
    sandbox.set_base_url(&sb_base);
    let gw_cfg = args.gateway_config(&sandbox, &sb_base, gw_addr)?;
    print_banner(&sandbox, &sb_base, started);
    crate::gateway_cmd::banner(&gw_cfg, &gw_base, args.gateway_config.as_deref());
    tracing::info!(sandbox = %sb_base, "sandbox listening");
    tracing::info!(
        intake = %intake,
        "wired: every sandbox webhook goes to the gateway's intake, beside any URL registered"
    );
    let opened = crate::gateway_cmd::open(gw_cfg).await?;
    tracing::info!(gateway = %gw_base, upstream = %sb_base, "gateway listening; its upstream is the sandbox");
    let shutdown = signal_token();
    let sb_task = tokio::spawn(mynah_sandbox::http::run(
        sb_listener,
        sandbox,
        shutdown.clone(),
    ));
    let gw_result = crate::gateway_cmd::serve(opened, gw_listener, shutdown.clone()).await;
    shutdown.cancel();
    let sb_result = sb_task.await.map_err(|e| e.to_string())?;
    gw_result?;
    sb_result.map_err(|e| e.to_string())
}

/// A token cancelled by Ctrl-C or SIGTERM.
fn signal_token() -> CancellationToken {
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        stop.cancel();
    });
    shutdown
}

fn print_banner(sb: &Sandbox, base: &str, started: Instant) {
    let world = sb.world();
    let cfg = &sb.config;
    println!(
        "mynah sandbox ready on {base} in {} ms",
        started.elapsed().as_millis()
    );
    println!(
        "  storage   {}",
        match &cfg.data_dir {
            Some(d) => format!("{} (SQLite)", d.display()),
            None => "in memory (--ephemeral)".to_string(),
        }
    );
    println!(
        "  clock     {} · seed {}",
        if sb.clock.is_manual() {
            "manual (POST /_mynah/clock/advance)"
        } else {
            "system"
        },
        cfg.seed
    );
    println!(
        "  app secret {} (signs X-Hub-Signature-256)",
        cfg.app_secret
    );
    for n in world.numbers.values() {
        println!(
            "  number +{} · phone_number_id {} · waba {}",
            n.display_phone_number, n.phone_number_id, n.waba_id
        );
        println!(
            "    360dialog  POST {base}/messages                     D360-API-KEY: {}",
            n.api_key
        );
        println!(
            "    Cloud API  POST {base}/v23.0/{}/messages   Authorization: Bearer {}",
            n.phone_number_id, n.token
        );
        println!(
            "    webhook    {}",
            if n.webhook.url.is_empty() {
                "(none: POST /v1/configs/webhook to set one)"
            } else {
                n.webhook.url.as_str()
            }
        );
    }
    for s in &cfg.webhooks.subscribers {
        println!("  subscriber {s} gets every webhook too, beside the URLs above");
    }
    println!("  control   {base}/_mynah/ (messages, inbound, users, clock, webhooks)");
}

/// Resolves on Ctrl-C, or on SIGTERM (how service managers and containers stop a process).
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> SandboxArgs {
        let mut argv = vec!["mynah", "sandbox"];
        argv.extend_from_slice(extra);
        match Cli::parse_from(argv).command {
            Command::Sandbox(a) => a,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn flags_win_over_the_config_file() {
        let dir = std::env::temp_dir().join(format!("mynah-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("mynah.toml");
        std::fs::write(
            &file,
            "seed = 3\ntoken = \"file-token\"\n[clock]\nmode = \"system\"\n",
        )
        .unwrap();
        let path = file.to_string_lossy().to_string();
        let cfg = args(&[
            "--config",
            &path,
            "--ephemeral",
            "--clock",
            "manual",
            "--seed",
            "9",
            "--api-key",
            "k",
            "--phone-number-id",
            "123",
            "--waba-id",
            "456",
            "--webhook-url",
            "http://127.0.0.1:9/h",
        ])
        .to_config()
        .unwrap();
        assert_eq!(cfg.seed, 9);
        assert_eq!(
            cfg.token, "file-token",
            "the file still sets what no flag sets"
        );
        assert_eq!(cfg.clock.mode, ClockMode::Manual);
        assert!(cfg.data_dir.is_none());
        let account = &cfg.accounts[0];
        assert_eq!(
            (
                account.waba_id.as_str(),
                account.numbers[0].phone_number_id.as_str()
            ),
            ("456", "123")
        );
        assert_eq!(account.numbers[0].api_key, "k");
        assert_eq!(cfg.webhooks.default_url, "http://127.0.0.1:9/h");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn defaults_and_bad_files() {
        let cfg = args(&[]).to_config().unwrap();
        assert_eq!(
            cfg.data_dir.as_deref(),
            Some(std::path::Path::new(".mynah"))
        );
        assert_eq!(
            cfg.accounts[0].numbers[0].api_key,
            mynah_sandbox::config::DEV_API_KEY
        );
        let err = args(&["--config", "/nonexistent/mynah.toml"])
            .to_config()
            .unwrap_err();
        assert!(err.contains("cannot read"), "{err}");
        assert!(
            Cli::try_parse_from(["mynah", "sandbox", "--ephemeral", "--data-dir", "x"]).is_err()
        );
    }
}
