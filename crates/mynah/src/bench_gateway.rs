//! `mynah bench-gateway`: a reproducible load test of the gateway, in one process.
//!
//! A gateway (SQLite in a scratch directory with the production settings, or in memory) and an
//! in-memory sandbox (request limits off, delivery rules off, lifecycle latencies of a few
//! milliseconds) run wired together on loopback ports, the gateway's gates off and its send rate
//! raised. Two modes:
//!
//! - `throughput`: keep-alive connections `POST /v1/messages` (template messages to distinct
//!   recipients) for a fixed time or count. Reported: accepted enqueues per second with their
//!   latency percentiles, and end to end — every message enqueued, accepted by the upstream and
//!   its `delivered` status applied by the gateway — in messages per second, with per-message
//!   latency percentiles (from the gateway's own timeline events: `enqueued` → `status.delivered`).
//! - `intake`: a steady offered rate of signed status webhooks (`sent`, `delivered`, `read`, one
//!   event per POST as the platform sends them) for messages already in the outbox, posted to
//!   `/webhooks`. Reported: latency percentiles of the `200` answers (measured from each POST's
//!   scheduled time, so a client that falls behind counts its wait), and whether the webhook
//!   processor kept up (inbox backlog at the end, statuses applied).
//!
//! Progress is read from the gateway's event feed (`Store::events_after`), as an app following
//! `/v1/events` would; that reader shares the machine with everything else.
//!
//! With `--database-url` the gateway keeps its outbox in PostgreSQL (a fresh schema per run),
//! and `--instances N` runs N gateway instances on that database in this process, each with its
//! own store connections and port; the load generator spreads its connections over them and the
//! sandbox sends its webhooks to the first (any instance takes them). At the end the CPU time of
//! this process and of the PostgreSQL server's processes is reported per message.

use clap::{Args, ValueEnum};
use mynah_gateway::Gateway;
use mynah_gateway::clock::Clock;
use mynah_gateway::config::Config as GwConfig;
use mynah_gateway::model::{Category, Lane, MessageState};
use mynah_gateway::ratelimit::NumberLimitConfig;
use mynah_gateway::store::postgres::{PostgresOptions, PostgresStore};
use mynah_gateway::store::sqlite::{SqliteOptions, SqliteStore, Synchronous};
use mynah_gateway::store::{Change, NewEvent, NewMessage, Store, TemplateRef};
use mynah_gateway::upstream::UpstreamConfig;
use mynah_sandbox::Sandbox;
use mynah_sandbox::config::{
    Config as SbConfig, DEV_API_KEY, DEV_APP_SECRET, DEV_PHONE_NUMBER_ID, Latency, LimitProfile,
};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The gateway key the load generator presents.
const KEY: &str = "bench-gateway-key";
/// Recipients: distinct German mobile numbers from here on.
const FIRST_RECIPIENT: u64 = 4_915_100_000_000;

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Enqueue → upstream accept → `delivered` applied.
    Throughput,
    /// Webhook intake latency under a steady offered rate.
    Intake,
    /// A campaign of `--count` recipients at its rate share, with transactional messages sent
    /// meanwhile at `--rate`.
    Campaign,
}

/// Where the gateway keeps its outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Storage {
    /// SQLite in a scratch directory (WAL, `synchronous = FULL`: the production default).
    File,
    /// SQLite in memory (one connection; nothing durable).
    Memory,
}

/// Flags of `mynah bench-gateway`.
#[derive(Debug, Args)]
pub struct BenchGatewayArgs {
    /// `throughput` or `intake`.
    #[arg(long, value_enum, default_value = "throughput")]
    mode: Mode,
    /// Concurrent keep-alive connections of the load generator.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// How long to offer load, seconds.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Offered rate per second: messages (throughput; 0 = as fast as the connections go) or
    /// webhook events (intake; default 3,000).
    #[arg(long)]
    rate: Option<u64>,
    /// Throughput: enqueue this many messages, then stop (instead of `--duration`).
    #[arg(long)]
    count: Option<u64>,
    /// Throughput: status events per webhook POST from the sandbox to the gateway.
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// Throughput: `delivered` (users do not open the messages) or `read` (they do: one more
    /// status per message).
    #[arg(long, default_value = "delivered")]
    lifecycle: String,
    /// The gateway's outbox.
    #[arg(long, value_enum, default_value = "file")]
    store: Storage,
    /// `synchronous = NORMAL` instead of FULL (an acknowledged write survives a process crash,
    /// not a power loss).
    #[arg(long)]
    sync_normal: bool,
    /// Let the writer checkpoint the WAL as it commits (SQLite's default) instead of the
    /// store's checkpointer thread.
    #[arg(long)]
    checkpoint_in_writer: bool,
    /// Scratch directory of the file store (default: a fresh one under the system's temp dir,
    /// removed at the end).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The dispatcher's sends in flight (the gateway's default).
    #[arg(long, default_value_t = mynah_gateway::config::DispatchConfig::default().concurrency)]
    dispatch_concurrency: usize,
    /// The gateway's send rate ceiling, messages/s.
    #[arg(long, default_value_t = 20_000.0)]
    send_rate: f64,
    /// PostgreSQL instead of SQLite (`postgres://user:password@host:port/db`; a fresh schema
    /// `bench_<pid>` is created, and dropped at the end).
    #[arg(long)]
    database_url: Option<String>,
    /// Gateway instances on the database (PostgreSQL only).
    #[arg(long, default_value_t = 1)]
    instances: usize,
    /// Campaign: its share of the gateway's send rate.
    #[arg(long, default_value_t = 0.5)]
    share: f64,
    /// Throughput: send to this many recipients in turn (0: a new one for every message), so
    /// that the sandbox's virtual users stay bounded in a long run. The gateway keeps to the
    /// platform's pair rate: a recipient may get up to 45 messages within 6 s of the first of a
    /// burst; past that window its next message waits 6 s for each one the burst took. So a run
    /// that sends each recipient many messages over more than 6 s waits minutes for its last
    /// ones, as production would.
    #[arg(long, default_value_t = 0)]
    recipients: u64,
    /// Throughput: first run `mynah bench` (the sandbox alone, whole lifecycle, the same
    /// connections, duration and webhook batch size), then this, and print both and the ratio.
    #[arg(long)]
    compare: bool,
    /// Run the sandbox in a child process (`mynah sandbox --ephemeral`) instead of this one, so
    /// that the memory and CPU printed are the gateway's and the load generator's alone.
    #[arg(long)]
    sandbox_process: bool,
}

/// A store the benchmark can run the gateway on.
trait BenchStore: Store + Clone + 'static {
    /// Commits what is queued and stops.
    fn close_store(&self) -> impl std::future::Future<Output = ()> + Send;
}

impl BenchStore for SqliteStore {
    async fn close_store(&self) {
        self.close().await;
    }
}

impl BenchStore for PostgresStore {
    async fn close_store(&self) {
        self.close().await;
    }
}

/// CPU time (user + system) of the processes whose pid is `pid`, or of every process named
/// `postgres` (`None`), in ms, from `/proc` (0 where it cannot be read).
fn cpu_ms(pid: Option<u32>) -> u64 {
    // Clock ticks per second: 100 on Linux everywhere this runs.
    const TICK_MS: u64 = 10;
    let ticks = |stat: &str| -> Option<(String, u64)> {
        let open = stat.find('(')?;
        let close = stat.rfind(')')?;
        let comm = stat.get(open + 1..close)?.to_string();
        let mut fields = stat.get(close + 2..)?.split_whitespace();
        // After the name: state is field 3; utime and stime are fields 14 and 15.
        let utime: u64 = fields.nth(11)?.parse().ok()?;
        let stime: u64 = fields.next()?.parse().ok()?;
        Some((comm, utime + stime))
    };
    match pid {
        Some(p) => std::fs::read_to_string(format!("/proc/{p}/stat"))
            .ok()
            .and_then(|s| ticks(&s))
            .map_or(0, |(_, t)| t * TICK_MS),
        None => std::fs::read_dir("/proc")
            .map(|dir| {
                dir.flatten()
                    .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
                    .filter_map(|s| ticks(&s))
                    .filter(|(comm, _)| comm == "postgres")
                    .map(|(_, t)| t * TICK_MS)
                    .sum()
            })
            .unwrap_or(0),
    }
}

/// Progress read from the gateway's event feed.
#[derive(Default)]
struct Progress {
    enqueued: AtomicU64,
    accepted: AtomicU64,
    /// Messages whose `delivered` was applied.
    delivered: AtomicU64,
    /// Status events applied (intake).
    statuses: AtomicU64,
    failed: AtomicU64,
    /// Gateway clock (unix ms) of the last `delivered` applied.
    last_delivered_at: AtomicU64,
    /// `enqueued` → `status.delivered`, ms, per message.
    e2e_ms: Mutex<Vec<u32>>,
}

/// Follows the event feed until `stop`, counting what the benchmark waits for.
async fn follow<S: Store>(store: S, progress: Arc<Progress>, stop: CancellationToken) {
    const PAGE: usize = 20_000;
    let mut seq = 0;
    let mut enqueued_at: HashMap<String, i64> = HashMap::new();
    loop {
        let events = match store.events_after(seq, PAGE).await {
            Ok(e) => e,
            Err(e) => {
                eprintln!("bench-gateway: reading the event feed failed: {e}");
                Vec::new()
            }
        };
        let full = events.len() == PAGE;
        let mut lat = Vec::new();
        for e in events {
            seq = e.seq;
            match e.kind.as_str() {
                "enqueued" => {
                    progress.enqueued.fetch_add(1, Ordering::Relaxed);
                    enqueued_at.insert(e.message_id, e.at);
                }
                "accepted" => {
                    progress.accepted.fetch_add(1, Ordering::Relaxed);
                }
                "failed" | "status.failed" => {
                    progress.failed.fetch_add(1, Ordering::Relaxed);
                }
                kind if kind.starts_with("status.") => {
                    progress.statuses.fetch_add(1, Ordering::Relaxed);
                    if kind == "status.delivered"
                        && let Some(t0) = enqueued_at.remove(&e.message_id)
                    {
                        progress.delivered.fetch_add(1, Ordering::Relaxed);
                        progress
                            .last_delivered_at
                            .fetch_max(e.at.max(0) as u64, Ordering::Relaxed);
                        lat.push((e.at - t0).clamp(0, i64::from(u32::MAX)) as u32);
                    }
                }
                _ => {}
            }
        }
        if !lat.is_empty() {
            progress
                .e2e_ms
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(lat);
        }
        if full {
            continue;
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
}

/// Percentile `p` of sorted samples, in the samples' unit divided by `scale`.
fn pct<T: Copy + Into<f64>>(sorted: &[T], p: f64, scale: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].into() / scale
}

fn percentiles<T: Copy + Into<f64>>(sorted: &[T], scale: f64) -> String {
    format!(
        "p50 {:.2} ms · p90 {:.2} ms · p99 {:.2} ms · max {:.2} ms",
        pct(sorted, 0.5, scale),
        pct(sorted, 0.9, scale),
        pct(sorted, 0.99, scale),
        pct(sorted, 1.0, scale)
    )
}

/// The SQLite store the options ask for, and its scratch directory to remove at the end.
async fn open_sqlite(args: &BenchGatewayArgs) -> Result<(SqliteStore, Option<PathBuf>), String> {
    let scratch = match args.store {
        Storage::Memory => None,
        Storage::File => Some(args.data_dir.clone().unwrap_or_else(|| {
            std::env::temp_dir().join(format!("mynah-bench-gateway-{}", std::process::id()))
        })),
    };
    if let Some(dir) = &scratch {
        let _ = std::fs::remove_file(dir.join("gateway.db"));
        let _ = std::fs::remove_file(dir.join("gateway.db-wal"));
        let _ = std::fs::remove_file(dir.join("gateway.db-shm"));
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let opts = SqliteOptions {
        synchronous: if args.sync_normal {
            Synchronous::Normal
        } else {
            Synchronous::Full
        },
        checkpoint_every: if args.checkpoint_in_writer {
            None
        } else {
            SqliteOptions::default().checkpoint_every
        },
        ..SqliteOptions::default()
    };
    let db = scratch.as_ref().map(|d| d.join("gateway.db"));
    let store = SqliteStore::open(db.as_deref(), opts)
        .await
        .map_err(|e| format!("gateway store: {e}"))?;
    let keep = args.data_dir.is_some();
    Ok((store, if keep { None } else { scratch }))
}

/// The benchmark's schema on PostgreSQL (fresh per run).
fn bench_schema() -> String {
    format!("bench_{}", std::process::id())
}

/// One PostgreSQL store per instance, on a fresh schema.
async fn open_postgres(args: &BenchGatewayArgs, url: &str) -> Result<Vec<PostgresStore>, String> {
    let mut stores = Vec::new();
    for _ in 0..args.instances.max(1) {
        let opts = PostgresOptions {
            schema: Some(bench_schema()),
            ..PostgresOptions::default()
        };
        stores.push(
            PostgresStore::open(url, opts)
                .await
                .map_err(|e| format!("gateway store (PostgreSQL): {e}"))?,
        );
    }
    Ok(stores)
}

/// Drops the benchmark's schema.
async fn drop_schema(url: &str) {
    let url = url.to_string();
    let _ = tokio::task::spawn_blocking(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls)?;
        client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", bench_schema()))
    })
    .await;
}

/// The wired planes and what stopping them needs.
struct Rig<S> {
    /// The first gateway instance (the sandbox's webhooks go to it).
    gw: Arc<Gateway<S>>,
    /// Its store.
    store: S,
    /// Every instance's store.
    stores: Vec<S>,
    /// Every instance's `host:port`.
    authorities: Vec<String>,
    shutdown: CancellationToken,
    gateway_tasks: Vec<tokio::task::JoinHandle<std::io::Result<()>>>,
    scratch: Option<PathBuf>,
    /// The sandbox's process and its configuration file, with `--sandbox-process`.
    sandbox: Option<(std::process::Child, PathBuf)>,
}

impl<S: BenchStore> Rig<S> {
    /// The sandbox and one gateway instance per store.
    async fn start(
        args: &BenchGatewayArgs,
        webhooks: bool,
        stores: Vec<S>,
        scratch: Option<PathBuf>,
    ) -> Result<Rig<S>, String> {
        let shutdown = CancellationToken::new();
        let mut listeners = Vec::new();
        let mut authorities = Vec::new();
        for _ in &stores {
            let l = mynah_serve::bind(([127, 0, 0, 1], 0).into())
                .await
                .map_err(|e| e.to_string())?;
            authorities.push(l.local_addr().map_err(|e| e.to_string())?.to_string());
            listeners.push(l);
        }
        let gw_authority = authorities.first().cloned().ok_or("no store")?;

        // The platform: limits and delivery rules off, a lifecycle of a few milliseconds.
        let mut sb_cfg = SbConfig::default();
        sb_cfg.limits.profile = LimitProfile::Unlimited;
        sb_cfg.limits.max_pending = usize::MAX;
        sb_cfg.rules = mynah_sandbox::config::RulesConfig::off();
        sb_cfg.latency.sent = Latency::fixed(0);
        sb_cfg.latency.delivered = Latency {
            min_ms: 0,
            max_ms: 5,
        };
        sb_cfg.latency.read = Latency {
            min_ms: 0,
            max_ms: 10,
        };
        sb_cfg.users.default.reads = args.lifecycle == "read";
        if webhooks {
            sb_cfg.webhooks.default_url = format!("http://{gw_authority}/webhooks");
        }
        sb_cfg.webhooks.batch_size = args.batch_size.max(1);
        // With batching, few POSTs in flight let events gather into full batches.
        sb_cfg.webhooks.max_in_flight = if args.batch_size > 1 { 2 } else { 64 };
        sb_cfg.webhooks.keep_attempts = 10_000;
        sb_cfg.retention.max_messages = 20_000;
        // Neither plane's connection cap comes into play: the load generator's connections, the
        // dispatcher's and the webhooks' all fit.
        let cap = std::num::NonZeroUsize::MIN
            .saturating_add(args.connections + args.dispatch_concurrency + 128);
        sb_cfg.server.max_connections = sb_cfg.server.max_connections.max(cap);
        let (sb_base, sandbox) = if args.sandbox_process {
            let (base, child, file) = spawn_sandbox(sb_cfg).await?;
            (base, Some((child, file)))
        } else {
            let sb = Sandbox::open(sb_cfg).await?;
            let sb_listener = mynah_serve::bind(([127, 0, 0, 1], 0).into())
                .await
                .map_err(|e| e.to_string())?;
            let sb_base = format!(
                "http://{}",
                sb_listener.local_addr().map_err(|e| e.to_string())?
            );
            sb.set_base_url(&sb_base);
            let stop = shutdown.clone();
            tokio::spawn(async move {
                let _ = mynah_sandbox::http::run(sb_listener, sb, stop).await;
            });
            (sb_base, None)
        };

        // The gateways: gates off, the send rate raised.
        let mut cfg = GwConfig {
            gateway_key: KEY.to_string(),
            app_secret: DEV_APP_SECRET.to_string(),
            template_sync_ms: 0,
            rate: Some(NumberLimitConfig {
                rate: args.send_rate,
                burst: args.send_rate.max(1.0) as u32,
                ..NumberLimitConfig::cloud()
            }),
            ..GwConfig::default()
        };
        cfg.upstream = UpstreamConfig::d360(&sb_base, DEV_API_KEY);
        cfg.upstream.phone_number_id = Some(DEV_PHONE_NUMBER_ID.to_string());
        cfg.gates.consent = false;
        cfg.gates.window = false;
        cfg.dispatch.concurrency = args.dispatch_concurrency.max(1);
        cfg.server.max_connections = cfg.server.max_connections.max(cap);
        let mut gws = Vec::new();
        let mut gateway_tasks = Vec::new();
        for (store, listener) in stores.iter().zip(listeners) {
            let gw = Gateway::new(cfg.clone(), store.clone(), Arc::new(Clock::System))?;
            // The template cache, before the first enqueue.
            mynah_gateway::templates::sync(&gw)
                .await
                .map_err(|e| format!("template sync: {e}"))?;
            gateway_tasks.push(tokio::spawn(mynah_gateway::run(
                listener,
                gw.clone(),
                shutdown.clone(),
            )));
            gws.push(gw);
        }
        let gw = gws.first().cloned().ok_or("no store")?;
        let store = stores.first().cloned().ok_or("no store")?;
        Ok(Rig {
            gw,
            store,
            stores,
            authorities,
            shutdown,
            gateway_tasks,
            scratch,
            sandbox,
        })
    }

    async fn stop(self) {
        if let Some((mut child, file)) = self.sandbox {
            if let Some(peak) = crate::bench::proc_status_of(&child.id().to_string(), "VmHWM") {
                println!("          the sandbox's process: peak {peak}");
            }
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_file(file);
        }
        self.shutdown.cancel();
        for t in self.gateway_tasks {
            let _ = t.await;
        }
        for s in &self.stores {
            s.close_store().await;
        }
        if let Some(dir) = self.scratch {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Starts `mynah sandbox --ephemeral` with `cfg` on a free local port; answers its base URL
/// once it accepts connections, the child and its configuration file.
async fn spawn_sandbox(
    mut cfg: SbConfig,
) -> Result<(String, std::process::Child, PathBuf), String> {
    // TOML integers are 64-bit signed.
    cfg.limits.max_pending = cfg.limits.max_pending.min(i64::MAX as usize);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let file = std::env::temp_dir().join(format!(
        "mynah-bench-sandbox-{}-{port}.toml",
        std::process::id()
    ));
    let text = cfg.to_toml_with_rules_off();
    std::fs::write(&file, text).map_err(|e| format!("{}: {e}", file.display()))?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let listen = format!("127.0.0.1:{port}");
    let mut child = std::process::Command::new(exe)
        .args(["sandbox", "--ephemeral", "--listen", &listen, "--config"])
        .arg(&file)
        .stdout(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("starting the sandbox's process: {e}"))?;
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(&listen).await.is_ok() {
            return Ok((format!("http://{listen}"), child, file));
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("the sandbox's process ended: {status}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    Err("the sandbox's process did not listen within 10 s".to_string())
}

type Sender = hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>;

async fn connect(authority: &str) -> Option<Sender> {
    let stream = tokio::net::TcpStream::connect(authority).await.ok()?;
    let _ = stream.set_nodelay(true);
    let (sender, driver) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .ok()?;
    tokio::spawn(driver);
    Some(sender)
}

/// One POST; the status, or `None` when the connection failed.
async fn post(
    conn: &mut Sender,
    authority: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: String,
) -> Option<u16> {
    post_for_body(conn, authority, path, headers, body)
        .await
        .map(|(status, _)| status)
}

/// [`post`], with the answer's body.
async fn post_for_body(
    conn: &mut Sender,
    authority: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: String,
) -> Option<(u16, bytes::Bytes)> {
    let mut req = hyper::Request::post(path)
        .header("host", authority)
        .header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .ok()?;
    conn.ready().await.ok()?;
    let resp = conn.send_request(req).await.ok()?;
    let status = resp.status().as_u16();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .ok()?
        .to_bytes();
    Some((status, body))
}

/// This process's resident memory now, KiB (0 where the system does not say).
fn rss_kib() -> u64 {
    crate::bench::proc_status_kib("VmRSS").unwrap_or(0)
}

fn print_memory(args: &BenchGatewayArgs) {
    if let Some(peak) = crate::bench::proc_status_of("self", "VmHWM") {
        println!(
            "memory    peak {peak} (benchmark process: gateway, {}load generator)",
            if args.sandbox_process {
                ""
            } else {
                "sandbox and "
            }
        );
    }
}

/// Runs the benchmark; the end-to-end messages per second in the throughput mode (0 in the
/// others).
pub async fn run(args: BenchGatewayArgs) -> Result<f64, String> {
    if !matches!(args.lifecycle.as_str(), "delivered" | "read") {
        return Err("--lifecycle is delivered or read".into());
    }
    if args.compare {
        if args.mode != Mode::Throughput || args.count.is_some() {
            return Err("--compare runs the throughput mode for --duration seconds".into());
        }
        let reference = crate::bench::args_for(args.connections, args.duration, args.batch_size)?;
        println!("== mynah bench (the sandbox alone, whole lifecycle)");
        let sandbox = crate::bench::measure(reference).await?;
        println!("== mynah bench-gateway");
        let compare = BenchGatewayArgs {
            compare: false,
            ..args
        };
        let gateway = Box::pin(run(compare)).await?;
        println!(
            "ratio     bench-gateway {gateway:.0} msg/s end to end ÷ bench {sandbox:.0} msg/s with the whole lifecycle = {:.2}",
            gateway / sandbox.max(1.0)
        );
        return Ok(0.0);
    }
    let webhooks = args.mode != Mode::Intake;
    match args.database_url.clone() {
        Some(url) => {
            let stores = open_postgres(&args, &url).await?;
            let rig = Rig::start(&args, webhooks, stores, None).await?;
            let result = match args.mode {
                Mode::Throughput => throughput(args, rig).await,
                Mode::Intake => intake(args, rig).await,
                Mode::Campaign => campaign(args, rig).await,
            };
            drop_schema(&url).await;
            result
        }
        None => {
            if args.instances > 1 {
                return Err("--instances needs --database-url (one database they share)".into());
            }
            let (store, scratch) = open_sqlite(&args).await?;
            let rig = Rig::start(&args, webhooks, vec![store], scratch).await?;
            match args.mode {
                Mode::Throughput => throughput(args, rig).await,
                Mode::Intake => intake(args, rig).await,
                Mode::Campaign => campaign(args, rig).await,
            }
        }
    }
}

/// What the run's store is, for the headline.
fn storage_name(args: &BenchGatewayArgs) -> String {
    match (&args.database_url, args.store) {
        (Some(_), _) if args.instances > 1 => {
            format!("PostgreSQL, {} instances", args.instances)
        }
        (Some(_), _) => "PostgreSQL".into(),
        (None, Storage::File) => "SQLite file".into(),
        (None, Storage::Memory) => "SQLite in-memory".into(),
    }
}

async fn throughput<S: BenchStore>(args: BenchGatewayArgs, rig: Rig<S>) -> Result<f64, String> {
    let progress = Arc::new(Progress::default());
    let follow_stop = CancellationToken::new();
    let follower = tokio::spawn(follow(
        rig.store.clone(),
        progress.clone(),
        follow_stop.clone(),
    ));
    let rate = args.rate.unwrap_or(0);
    println!(
        "mynah bench-gateway throughput: {} connections, {} ({} store{}), offered {}, gateway send rate {}/s, dispatch concurrency {}, sandbox webhooks {} event(s) per POST, lifecycle to {}",
        args.connections,
        match args.count {
            Some(c) => format!("{c} messages"),
            None => format!("{} s", args.duration),
        },
        storage_name(&args),
        if args.sync_normal {
            ", synchronous NORMAL"
        } else {
            ""
        },
        if rate > 0 {
            format!("{rate} msg/s")
        } else {
            "as fast as the connections go".to_string()
        },
        args.send_rate,
        args.dispatch_concurrency,
        args.batch_size.max(1),
        args.lifecycle,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let issued = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let limit = args.count.unwrap_or(u64::MAX);
    let started = Instant::now();
    let start_ms = rig.gw.now();
    let cpu_at_start = (cpu_ms(Some(std::process::id())), cpu_ms(None));
    let mut tasks = Vec::new();
    let recipients = args.recipients;
    for c in 0..args.connections.max(1) {
        let (stop, issued, acked, errors) =
            (stop.clone(), issued.clone(), acked.clone(), errors.clone());
        let authority = rig.authorities[c % rig.authorities.len()].clone();
        let per_connection = (rate > 0)
            .then(|| Duration::from_secs_f64(args.connections.max(1) as f64 / rate as f64));
        tasks.push(tokio::spawn(async move {
            let mut lat: Vec<u32> = Vec::with_capacity(100_000);
            let mut pace = per_connection.map(|every| {
                let mut t = tokio::time::interval(every);
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                t
            });
            let Some(mut conn) = connect(&authority).await else {
                errors.fetch_add(1, Ordering::Relaxed);
                return (lat, Instant::now());
            };
            let auth = format!("Bearer {KEY}");
            while !stop.load(Ordering::Relaxed) {
                if let Some(p) = pace.as_mut() {
                    p.tick().await;
                }
                let n = issued.fetch_add(1, Ordering::Relaxed);
                if n >= limit {
                    break;
                }
                let to = FIRST_RECIPIENT + if recipients > 0 { n % recipients } else { n };
                let body = format!(
                    r#"{{"to":"{to}","type":"template","template":{{"name":"hello_world","language":{{"code":"en_US"}}}}}}"#,
                );
                let t = Instant::now();
                let status = post(
                    &mut conn,
                    &authority,
                    "/v1/messages",
                    &[("authorization", auth.as_str())],
                    body,
                )
                .await;
                lat.push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                match status {
                    Some(202) => {
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    None => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
            }
            (lat, Instant::now())
        }));
    }
    // Progress once a second until the load ends.
    let mut last = (0, 0, 0);
    let mut second = 0;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        second += 1;
        let now = (
            acked.load(Ordering::Relaxed),
            progress.accepted.load(Ordering::Relaxed),
            progress.delivered.load(Ordering::Relaxed),
        );
        println!(
            "  [{second:>3} s] {:>6} enqueued/s · {:>6} accepted upstream/s · {:>6} delivered applied/s · backlog {:>6} · rss {} MiB",
            now.0 - last.0,
            now.1 - last.1,
            now.2 - last.2,
            now.0.saturating_sub(now.2),
            rss_kib() / 1024
        );
        last = now;
        let done = match args.count {
            Some(c) => issued.load(Ordering::Relaxed) >= c || tasks.iter().all(|t| t.is_finished()),
            None => second >= args.duration,
        };
        if done {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut lat = Vec::new();
    let mut finished = started;
    for t in tasks {
        if let Ok((l, at)) = t.await {
            lat.extend(l);
            finished = finished.max(at);
        }
    }
    let load_secs = (finished - started).as_secs_f64().max(0.001);
    let enqueued = acked.load(Ordering::Relaxed);
    // Wait (bounded) until every acknowledged message's `delivered` was applied.
    let drain = Instant::now();
    while progress.delivered.load(Ordering::Relaxed) < enqueued
        && drain.elapsed() < Duration::from_secs(120)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delivered = progress.delivered.load(Ordering::Relaxed);
    let cpu = (
        cpu_ms(Some(std::process::id())).saturating_sub(cpu_at_start.0),
        cpu_ms(None).saturating_sub(cpu_at_start.1),
    );
    let last_ms = progress.last_delivered_at.load(Ordering::Relaxed) as i64;
    let e2e_secs = ((last_ms - start_ms).max(1) as f64) / 1_000.0;
    follow_stop.cancel();
    let _ = follower.await;
    lat.sort_unstable();
    let mut e2e = std::mem::take(&mut *progress.e2e_ms.lock().unwrap_or_else(|e| e.into_inner()));
    e2e.sort_unstable();
    println!(
        "enqueue   {enqueued} messages acknowledged (202) in {load_secs:.1} s = {:.0} msg/s ({} errors)",
        enqueued as f64 / load_secs,
        errors.load(Ordering::Relaxed)
    );
    println!("          latency {}", percentiles(&lat, 1_000.0));
    println!(
        "end2end   {delivered} of {enqueued} delivered and applied, the last {e2e_secs:.2} s after the first enqueue = {:.0} msg/s end to end{}",
        delivered as f64 / e2e_secs,
        if delivered < enqueued {
            " (INCOMPLETE after 120 s)"
        } else {
            ""
        }
    );
    println!(
        "          per message, enqueued → delivered applied: {}",
        percentiles(&e2e, 1.0)
    );
    println!(
        "          upstream accepts {} · statuses applied {} · failures {}",
        progress.accepted.load(Ordering::Relaxed),
        progress.statuses.load(Ordering::Relaxed),
        progress.failed.load(Ordering::Relaxed)
    );
    let per = |ms: u64| ms as f64 * 1_000.0 / delivered.max(1) as f64;
    println!(
        "cpu       {:.0} µs per message in this process (gateway{}{}, load generator){}",
        per(cpu.0),
        if rig.authorities.len() > 1 { "s" } else { "" },
        if args.sandbox_process {
            ""
        } else {
            ", sandbox"
        },
        if args.database_url.is_some() {
            format!(" + {:.0} µs in PostgreSQL's processes", per(cpu.1))
        } else {
            String::new()
        }
    );
    print_memory(&args);
    rig.stop().await;
    Ok(delivered as f64 / e2e_secs)
}

/// A status webhook as the platform sends it (one status per POST).
fn status_body(wamid: &str, id: &str, to: u64, status: &str, ts: i64) -> String {
    format!(
        concat!(
            r#"{{"object":"whatsapp_business_account","entry":[{{"id":"102290129340398","changes":[{{"value":{{"#,
            r#""messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550783881","phone_number_id":"{pnid}"}},"#,
            r#""contacts":[{{"profile":{{"name":"Bench User"}},"wa_id":"{to}"}}],"#,
            r#""statuses":[{{"id":"{wamid}","status":"{status}","timestamp":"{ts}","recipient_id":"{to}","#,
            r#""biz_opaque_callback_data":"{id}","#,
            r#""conversation":{{"id":"bench-conversation","origin":{{"type":"utility"}}}},"#,
            r#""pricing":{{"billable":true,"pricing_model":"PMP","type":"regular","category":"utility"}}}}]}},"#,
            r#""field":"messages"}}]}}]}}"#
        ),
        pnid = DEV_PHONE_NUMBER_ID,
        to = to,
        wamid = wamid,
        status = status,
        ts = ts,
        id = id,
    )
}

/// Puts `n` messages in the outbox as if the upstream had accepted them (wamid `wamid.bench{i}`).
async fn seed<S: BenchStore>(rig: &Rig<S>, n: u64) -> Result<(), String> {
    let now = rig.gw.now();
    let chunk = 2_000;
    let mut i = 0;
    while i < n {
        let end = (i + chunk).min(n);
        let messages: Vec<NewMessage> = (i..end)
            .map(|k| NewMessage {
                id: format!("msg_bench{k:08}"),
                idempotency_key: None,
                request_hash: None,
                person: None,
                sequence: None,
                phone_number_id: DEV_PHONE_NUMBER_ID.to_string(),
                to: (FIRST_RECIPIENT + k).to_string(),
                category: Category::Utility,
                template: Some(TemplateRef {
                    name: "hello_world".into(),
                    language: "en_US".into(),
                }),
                lane: Lane::Transactional,
                body: String::from("{}"),
                metadata: None,
                state: MessageState::Queued,
                reason: None,
                // Never due: the dispatcher leaves them alone.
                not_before: now + 86_400_000,
                deadline: now + 30 * 86_400_000,
                created_at: now,
            })
            .collect();
        rig.store
            .enqueue(messages)
            .await
            .map_err(|e| format!("seeding: {e}"))?;
        let changes: Vec<Change> = (i..end)
            .map(|k| {
                Change {
                    state: Some(MessageState::Accepted),
                    wamid: Some(format!("wamid.bench{k:08}")),
                    accepted_at: Some(now),
                    ..Change::new(format!("msg_bench{k:08}"), now)
                }
                .with_event(NewEvent::new("accepted", now, Default::default()))
            })
            .collect();
        rig.store
            .apply(changes)
            .await
            .map_err(|e| format!("seeding: {e}"))?;
        i = end;
    }
    Ok(())
}

async fn intake<S: BenchStore>(args: BenchGatewayArgs, rig: Rig<S>) -> Result<f64, String> {
    let rate = args.rate.unwrap_or(3_000).max(1);
    let connections = args.connections.max(1) as u64;
    let total = rate * args.duration;
    let messages = total.div_ceil(3).max(1);
    // The sandbox sends no webhooks here: the load generator is the platform.
    seed(&rig, messages).await?;
    let progress = Arc::new(Progress::default());
    let follow_stop = CancellationToken::new();
    let follower = tokio::spawn(follow(
        rig.store.clone(),
        progress.clone(),
        follow_stop.clone(),
    ));
    // The seeding's events are not part of the measurement.
    while progress.accepted.load(Ordering::Relaxed) < messages {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seeded_statuses = progress.statuses.load(Ordering::Relaxed);
    println!(
        "mynah bench-gateway intake: {total} status webhooks (sent, delivered, read for {messages} messages; one event per POST, signed) at {rate}/s for {} s over {connections} connections, each POST at its scheduled time ({} store{})",
        args.duration,
        storage_name(&args),
        if args.sync_normal {
            ", synchronous NORMAL"
        } else {
            ""
        },
    );
    let answered = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let t0 = tokio::time::Instant::now() + Duration::from_millis(100);
    let started = Instant::now() + Duration::from_millis(100);
    let mut tasks = Vec::new();
    for c in 0..connections {
        let (answered, errors) = (answered.clone(), errors.clone());
        let authority = rig.authorities[c as usize % rig.authorities.len()].clone();
        tasks.push(tokio::spawn(async move {
            // (latency from the scheduled time, service time), µs
            let mut lat: Vec<(u32, u32)> = Vec::with_capacity(100_000);
            let Some(mut conn) = connect(&authority).await else {
                errors.fetch_add(1, Ordering::Relaxed);
                return lat;
            };
            let statuses = ["sent", "delivered", "read"];
            // Event k goes over connection k mod C at t0 + k/rate; the statuses come in three
            // waves (every message `sent`, then `delivered`, then `read`), as a message's
            // statuses are apart in time on the platform.
            let mut k = c;
            while k < total {
                let (i, status) = (k % messages, statuses[(k / messages) as usize % 3]);
                let due = t0 + Duration::from_secs_f64(k as f64 / rate as f64);
                tokio::time::sleep_until(due).await;
                let body = status_body(
                    &format!("wamid.bench{i:08}"),
                    &format!("msg_bench{i:08}"),
                    FIRST_RECIPIENT + i,
                    status,
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs() as i64),
                );
                let sig = mynah_sandbox::webhooks::sign(DEV_APP_SECRET, body.as_bytes());
                let sent = tokio::time::Instant::now();
                let status = post(
                    &mut conn,
                    &authority,
                    "/webhooks",
                    &[("x-hub-signature-256", sig.as_str())],
                    body,
                )
                .await;
                let end = tokio::time::Instant::now();
                let us = |d: Duration| d.as_micros().min(u128::from(u32::MAX)) as u32;
                lat.push((us(end - due), us(end - sent)));
                match status {
                    Some(200) => {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    None => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
                k += connections;
            }
            lat
        }));
    }
    let mut last = (0, 0);
    for s in 1..=args.duration {
        tokio::time::sleep_until(t0 + Duration::from_secs(s)).await;
        let now = (
            answered.load(Ordering::Relaxed),
            progress.statuses.load(Ordering::Relaxed) - seeded_statuses,
        );
        println!(
            "  [{s:>3} s] {:>6} webhooks answered/s · {:>6} statuses applied/s",
            now.0 - last.0,
            now.1 - last.1
        );
        last = now;
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap_or_default());
    }
    let load_secs = started.elapsed().as_secs_f64();
    let backlog_at_end = rig
        .store
        .pending_inbox(1_000_000)
        .await
        .map_err(|e| e.to_string())?
        .len();
    let drain = Instant::now();
    let posted = answered.load(Ordering::Relaxed);
    while progress.statuses.load(Ordering::Relaxed) - seeded_statuses < posted
        && drain.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let drained = drain.elapsed();
    let applied = progress.statuses.load(Ordering::Relaxed) - seeded_statuses;
    follow_stop.cancel();
    let _ = follower.await;
    let mut from_due: Vec<u32> = lat.iter().map(|l| l.0).collect();
    let mut service: Vec<u32> = lat.iter().map(|l| l.1).collect();
    from_due.sort_unstable();
    service.sort_unstable();
    println!(
        "intake    {posted} webhooks answered 200 in {load_secs:.1} s = {:.0}/s offered {rate}/s ({} errors)",
        posted as f64 / load_secs,
        errors.load(Ordering::Relaxed)
    );
    println!(
        "          latency from the scheduled send: {}",
        percentiles(&from_due, 1_000.0)
    );
    println!(
        "          service time (from the actual send): {}",
        percentiles(&service, 1_000.0)
    );
    println!(
        "processor inbox backlog at the end of the load: {backlog_at_end}; {applied} of {posted} statuses applied {} ms after the end{}",
        drained.as_millis(),
        if applied < posted {
            " (INCOMPLETE after 60 s)"
        } else {
            ""
        }
    );
    print_memory(&args);
    rig.stop().await;
    Ok(0.0)
}

/// Campaign mode: a campaign of `--count` recipients (a CSV streamed through the import the
/// HTTP route uses) sent at `--share` of `--send-rate`, while one connection offers transactional
/// messages at `--rate` (default 100/s). Reported: the campaign's rate between the 5th and the
/// 95th percentile of its acceptances against its share, and the transactional messages'
/// enqueue → accepted latency percentiles.
async fn campaign<S: BenchStore>(args: BenchGatewayArgs, rig: Rig<S>) -> Result<f64, String> {
    let recipients = args.count.unwrap_or(100_000).max(1);
    let tx_rate = args.rate.unwrap_or(100).max(1);
    let share = args.share;
    let spec = serde_json::json!({
        "name": "bench",
        "template": { "name": "hello_world", "language": "en_US" },
        "rate_share": share,
        "schedule": { "quiet_hours": "off" },
    });
    let created = mynah_gateway::campaigns::create(&rig.gw, spec.to_string().as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let id = created["id"].as_str().unwrap_or_default().to_string();
    let chunks = crate::bench_campaign::csv_chunks(recipients, "to\n", |i| {
        format!("{}\n", FIRST_RECIPIENT + i)
    });
    let imported = mynah_gateway::campaigns::import_csv(&rig.gw, &id, Box::pin(chunks))
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "mynah bench-gateway campaign: {recipients} recipients ({}) at {share} of {}/s = {:.0}/s, transactional messages meanwhile at {tx_rate}/s ({} store)",
        imported["imported"],
        args.send_rate,
        share * args.send_rate,
        storage_name(&args),
    );
    // Acceptances, from the event feed: message → (enqueued at, accepted at).
    let accepted: Arc<Mutex<HashMap<String, (i64, i64)>>> = Arc::default();
    let follow_stop = CancellationToken::new();
    let follower = {
        let (store, accepted, stop) = (rig.store.clone(), accepted.clone(), follow_stop.clone());
        tokio::spawn(async move {
            let mut seq = 0;
            let mut enqueued: HashMap<String, i64> = HashMap::new();
            loop {
                let events = store.events_after(seq, 20_000).await.unwrap_or_default();
                let full = events.len() == 20_000;
                let mut got = Vec::new();
                for e in events {
                    seq = e.seq;
                    match e.kind.as_str() {
                        "enqueued" => {
                            enqueued.insert(e.message_id, e.at);
                        }
                        "accepted" => {
                            if let Some(t0) = enqueued.remove(&e.message_id) {
                                got.push((e.message_id, (t0, e.at)));
                            }
                        }
                        _ => {}
                    }
                }
                accepted
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend(got);
                if !full {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                    }
                }
            }
        })
    };
    mynah_gateway::campaigns::control(&rig.gw, &id, "start")
        .await
        .map_err(|e| e.to_string())?;
    // Transactional messages while the campaign runs, paced on one connection.
    let stop = Arc::new(AtomicBool::new(false));
    let tx = {
        let (stop, authority) = (stop.clone(), rig.authorities[0].clone());
        tokio::spawn(async move {
            let mut ids = Vec::new();
            let mut errors = 0u64;
            let Some(mut conn) = connect(&authority).await else {
                return (ids, 1);
            };
            let mut pace = tokio::time::interval(Duration::from_secs_f64(1.0 / tx_rate as f64));
            pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let auth = format!("Bearer {KEY}");
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                pace.tick().await;
                let body = format!(
                    r#"{{"to":"{}","type":"text","text":{{"body":"Your code is {n}"}}}}"#,
                    FIRST_RECIPIENT + 50_000_000 + n
                );
                n += 1;
                let answer = post_for_body(
                    &mut conn,
                    &authority,
                    "/v1/messages",
                    &[("authorization", auth.as_str())],
                    body,
                )
                .await;
                match answer {
                    Some((202, b)) => {
                        if let Some(id) = serde_json::from_slice::<serde_json::Value>(&b)
                            .ok()
                            .and_then(|v| v["id"].as_str().map(str::to_string))
                        {
                            ids.push(id);
                        }
                    }
                    Some(_) => errors += 1,
                    None => {
                        errors += 1;
                        match connect(&authority).await {
                            Some(c) => conn = c,
                            None => break,
                        }
                    }
                }
            }
            (ids, errors)
        })
    };
    // Until the campaign has handed every recipient over (or 10 minutes).
    let started = Instant::now();
    let mut second = 0;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        second += 1;
        let v = mynah_gateway::campaigns::view(&rig.gw, &id)
            .await
            .map_err(|e| e.to_string())?;
        let c = &v["counts"];
        let n = |k: &str| c[k].as_i64().unwrap_or(0);
        if second % 5 == 0 {
            println!(
                "  [{second:>3} s] campaign {}: {} pending · {} queued · {} accepted or later",
                v["state"].as_str().unwrap_or("?"),
                n("pending"),
                n("queued"),
                n("accepted") + n("sent") + n("delivered") + n("read"),
            );
        }
        let done = n("pending") + n("queued") + n("held") == 0;
        if done || started.elapsed() > Duration::from_secs(600) {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let (tx_ids, tx_errors) = tx.await.map_err(|e| e.to_string())?;
    // The transactional messages' acceptances (bounded wait).
    let drain = Instant::now();
    loop {
        let have = {
            let a = accepted.lock().unwrap_or_else(|e| e.into_inner());
            tx_ids.iter().filter(|i| a.contains_key(*i)).count()
        };
        if have == tx_ids.len() || drain.elapsed() > Duration::from_secs(30) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    follow_stop.cancel();
    let _ = follower.await;
    let accepted = std::mem::take(&mut *accepted.lock().unwrap_or_else(|e| e.into_inner()));
    let tx_set: std::collections::HashSet<&String> = tx_ids.iter().collect();
    let mut tx_lat: Vec<u32> = Vec::new();
    let mut campaign_at: Vec<i64> = Vec::new();
    for (id, (t0, t1)) in &accepted {
        if tx_set.contains(id) {
            tx_lat.push((t1 - t0).clamp(0, i64::from(u32::MAX)) as u32);
        } else {
            campaign_at.push(*t1);
        }
    }
    tx_lat.sort_unstable();
    campaign_at.sort_unstable();
    let (lo, hi) = (campaign_at.len() / 20, campaign_at.len() * 19 / 20);
    let span = campaign_at
        .get(hi)
        .zip(campaign_at.get(lo))
        .map_or(0, |(b, a)| b - a);
    let rate = (hi - lo) as f64 / (span.max(1) as f64 / 1_000.0);
    let target = share * args.send_rate;
    println!(
        "campaign  {} of {recipients} accepted upstream; {rate:.0}/s between the 5th and 95th percentile = {:.1} % of its share ({target:.0}/s)",
        campaign_at.len(),
        100.0 * rate / target
    );
    println!(
        "transact. {} sent meanwhile ({tx_errors} errors), {} accepted; enqueue → accepted {}",
        tx_ids.len(),
        tx_lat.len(),
        percentiles(&tx_lat, 1.0)
    );
    print_memory(&args);
    rig.stop().await;
    Ok(0.0)
}
