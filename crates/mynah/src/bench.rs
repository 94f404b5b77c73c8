//! `mynah bench`: a reproducible load test of the sandbox.
//!
//! Starts an in-memory sandbox on a loopback port (request limits off, lifecycle latencies
//! shortened) and a local webhook receiver, then sends text messages over keep-alive connections
//! for a fixed time, and reports accepted messages per second, latency percentiles, and webhook
//! events received, and peak memory. `--url` benchmarks a sandbox that is already running instead.
//! Either way 429 and 503 answers are counted apart and obeyed (each connection waits as
//! `Retry-After` says, or a short backoff, then goes on): the in-process sandbox keeps its
//! default backpressure, so a load faster than the webhook receiver meets 503 once the webhooks
//! fall `limits.max_webhook_lag_ms` behind. Other errors are counted, and a lost connection is
//! reopened.

use clap::Args;
use mynah_sandbox::Sandbox;
use mynah_sandbox::config::{Config, Latency, LimitProfile};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Flags of `mynah bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// How long to send, seconds.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Webhook events per POST (1 = one event per POST).
    #[arg(long, default_value_t = 1)]
    batch_size: usize,
    /// `full`: sent, delivered and read per message; `sent`: users blocked the business, so only
    /// `sent` is delivered.
    #[arg(long, default_value = "full")]
    lifecycle: String,
    /// Benchmark a running sandbox at this base URL instead (its webhooks are its own business).
    #[arg(long)]
    url: Option<String>,
    /// D360-API-KEY for `--url`.
    #[arg(long, default_value = mynah_sandbox::config::DEV_API_KEY)]
    api_key: String,
    /// Total messages per second to offer (0: as fast as the connections go).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Messages the sandbox keeps (the oldest finished ones are forgotten).
    #[arg(long, default_value_t = 20_000)]
    keep_messages: usize,
    /// Recipients to spread messages over.
    #[arg(long, default_value_t = 10_000)]
    recipients: u64,
    /// How far behind its webhooks the sandbox may fall before it answers 503, ms (the
    /// sandbox's `limits.max_webhook_lag_ms`; its default unless given).
    #[arg(long)]
    max_webhook_lag_ms: Option<i64>,
    /// Webhook events and writes that may wait before the sandbox answers 503 whatever the lag
    /// (its `limits.max_pending`; its default unless given).
    #[arg(long)]
    max_pending: Option<usize>,
    /// Bytes of webhook attempts (bodies and their events' summaries) the sandbox keeps for the
    /// control API (its `webhooks.keep_attempt_bytes`; its default unless given).
    #[arg(long)]
    keep_attempt_bytes: Option<usize>,
    /// Journal the in-process sandbox in this directory (default: in memory, nothing
    /// journalled); the summary then gives the journal's size on disk.
    #[arg(long)]
    data_dir: Option<std::path::PathBuf>,
    /// Messages the sandbox keeps in memory with `--data-dir` (its `retention.hot_messages`);
    /// the rest of `--keep-messages` stays in the journal only.
    #[arg(long)]
    hot_messages: Option<usize>,
}

#[derive(Default)]
struct Received {
    posts: AtomicU64,
    events: AtomicU64,
}

impl Received {
    fn count(&self, body: &[u8]) {
        self.posts.fetch_add(1, Ordering::Relaxed);
        let n = memchr::memmem::find_iter(body, b"\"status\":\"").count()
            + memchr::memmem::find_iter(body, b"\"from\":\"").count();
        self.events.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// The webhook receiver: a bare HTTP/1.1 server that counts events and answers 200, so the
/// benchmark measures the sandbox rather than a web framework.
async fn receiver(
    listener: tokio::net::TcpListener,
    received: Arc<Received>,
    stop: CancellationToken,
) {
    loop {
        let stream = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((s, _)) => s,
                Err(_) => continue,
            },
        };
        let _ = stream.set_nodelay(true);
        let received = received.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let received = received.clone();
                    async move {
                        let body = http_body_util::BodyExt::collect(req.into_body())
                            .await?
                            .to_bytes();
                        received.count(&body);
                        Ok::<_, hyper::Error>(hyper::Response::new(http_body_util::Full::new(
                            bytes::Bytes::from_static(b"ok"),
                        )))
                    }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

/// What the load generator saw.
#[derive(Default)]
struct Counts {
    /// Sends answered 200.
    sent: AtomicU64,
    /// Answers 429 (throttled: rate limits, throughput, pair rate).
    throttled: AtomicU64,
    /// Answers 503 (the sandbox's pending work past its bound).
    unavailable: AtomicU64,
    /// Any other answer, and connections that failed.
    errors: AtomicU64,
    /// Time spent waiting as `Retry-After` said, ms (summed over connections).
    waited_ms: AtomicU64,
    /// Latencies of the current second, for its p99 on the progress line.
    second: SecondLatency,
}

/// A histogram of one second's latencies: 0.1 ms buckets up to 100 ms, then one for the rest.
struct SecondLatency {
    buckets: Vec<AtomicU64>,
}

impl Default for SecondLatency {
    fn default() -> Self {
        SecondLatency {
            buckets: (0..=SECOND_BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

/// 0.1 ms buckets of [`SecondLatency`] below its overflow bucket.
const SECOND_BUCKETS: usize = 1_000;

impl SecondLatency {
    fn record(&self, micros: u32) {
        let i = (micros as usize / 100).min(SECOND_BUCKETS);
        if let Some(b) = self.buckets.get(i) {
            b.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The p99 of the latencies recorded since the last call (the upper edge of its bucket,
    /// ms; `None` above 100 ms or with none), and starts the next second.
    fn take_p99(&self) -> Option<f64> {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.swap(0, Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return Some(0.0);
        }
        let want = total - total / 100;
        let mut seen = 0;
        for (i, n) in counts.iter().enumerate() {
            seen += n;
            if seen >= want {
                return (i < SECOND_BUCKETS).then(|| (i + 1) as f64 / 10.0);
            }
        }
        None
    }
}

/// The wait after a 429/503 without `Retry-After`, and before reconnecting.
const BACKOFF: Duration = Duration::from_millis(100);

type Sender = hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>;

/// Opens a keep-alive HTTP/1.1 connection.
async fn open(authority: &str) -> Result<Sender, String> {
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let (sender, driver) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(driver);
    Ok(sender)
}

/// Sleeps `wait`, or less when the run ends.
async fn pause(stop: &CancellationToken, wait: Duration) {
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = tokio::time::sleep(wait) => {}
    }
}

/// Runs the benchmark.
pub async fn run(args: BenchArgs) -> Result<(), String> {
    measure(args).await.map(|_| ())
}

/// Flags for a run of this benchmark beside another (`bench-gateway --compare`): `connections`,
/// `duration` and `batch_size` as given, the rest at their defaults.
pub fn args_for(connections: usize, duration: u64, batch_size: usize) -> Result<BenchArgs, String> {
    #[derive(clap::Parser)]
    struct Flags {
        #[command(flatten)]
        bench: BenchArgs,
    }
    let (c, d, b) = (
        connections.to_string(),
        duration.to_string(),
        batch_size.to_string(),
    );
    <Flags as clap::Parser>::try_parse_from([
        "bench",
        "--connections",
        &c,
        "--duration",
        &d,
        "--batch-size",
        &b,
    ])
    .map(|f| f.bench)
    .map_err(|e| e.to_string())
}

/// Runs the benchmark; the messages per second with their whole lifecycle delivered (with the
/// in-process sandbox), else accepted messages per second.
pub async fn measure(args: BenchArgs) -> Result<f64, String> {
    let shutdown = CancellationToken::new();
    let received = Arc::new(Received::default());
    let (base, sandbox) = match &args.url {
        Some(u) => (u.trim_end_matches('/').to_string(), None),
        None => {
            let receiver = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|e| e.to_string())?;
            let receiver_url = format!(
                "http://{}/webhook",
                receiver.local_addr().map_err(|e| e.to_string())?
            );
            tokio::spawn(self::receiver(receiver, received.clone(), shutdown.clone()));
            let mut cfg = Config::default();
            cfg.limits.profile = LimitProfile::Unlimited;
            // Backpressure as configured by default (the webhook lag; the count as a last
            // resort): a client faster than the receiver meets 503 and waits as told.
            if let Some(lag) = args.max_webhook_lag_ms {
                cfg.limits.max_webhook_lag_ms = lag;
            }
            if let Some(n) = args.max_pending {
                cfg.limits.max_pending = n;
            }
            if let Some(n) = args.keep_attempt_bytes {
                cfg.webhooks.keep_attempt_bytes = n;
            }
            // The load is spread over many users at a rate no real number may send at.
            cfg.rules = mynah_sandbox::config::RulesConfig::off();
            cfg.webhooks.default_url = receiver_url;
            cfg.webhooks.batch_size = args.batch_size.max(1);
            // With batching, few POSTs in flight let events gather into full batches.
            cfg.webhooks.max_in_flight = if args.batch_size > 1 { 2 } else { 64 };
            cfg.webhooks.keep_attempts = 10_000;
            cfg.latency.sent = Latency::fixed(0);
            cfg.latency.delivered = Latency {
                min_ms: 0,
                max_ms: 5,
            };
            cfg.latency.read = Latency {
                min_ms: 0,
                max_ms: 10,
            };
            if args.lifecycle == "sent" {
                // Users who blocked the business: every message ends at `sent`.
                cfg.users.default.blocks_business = true;
            }
            // Keep the newest messages only, so a long run measures throughput, not memory growth.
            cfg.retention.max_messages = args.keep_messages;
            cfg.data_dir = args.data_dir.clone();
            if let Some(hot) = args.hot_messages {
                cfg.retention.hot_messages = hot;
            }
            // The load generator's connections never compete for the connection cap.
            cfg.server.max_connections = cfg
                .server
                .max_connections
                .max(std::num::NonZeroUsize::MIN.saturating_add(args.connections));
            let sb = Sandbox::open(cfg).await?;
            let listener = mynah_serve::bind(([127, 0, 0, 1], 0).into())
                .await
                .map_err(|e| e.to_string())?;
            let base = format!(
                "http://{}",
                listener.local_addr().map_err(|e| e.to_string())?
            );
            sb.set_base_url(&base);
            let serve_sb = sb.clone();
            let stop = shutdown.clone();
            tokio::spawn(async move {
                let _ = mynah_sandbox::http::run(listener, serve_sb, stop).await;
            });
            (base, Some(sb))
        }
    };
    let authority = base.trim_start_matches("http://").to_string();
    let stop = CancellationToken::new();
    let counts = Arc::new(Counts::default());
    println!(
        "mynah bench: {} connections for {} s against {base} (rate {}, batch size {}, lifecycle {})",
        args.connections,
        args.duration,
        if args.rate > 0 {
            format!("{}/s", args.rate)
        } else {
            "unbounded".to_string()
        },
        args.batch_size,
        args.lifecycle
    );
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..args.connections {
        let (stop, counts, key, authority) = (
            stop.clone(),
            counts.clone(),
            args.api_key.clone(),
            authority.clone(),
        );
        let recipients = args.recipients.max(1);
        let connections = args.connections as u64;
        let per_connection =
            (args.rate > 0).then(|| Duration::from_secs_f64(connections as f64 / args.rate as f64));
        tasks.push(tokio::spawn(async move {
            let mut pace = per_connection.map(|every| {
                let mut t = tokio::time::interval(every);
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                t
            });
            let mut lat = Vec::with_capacity(100_000);
            let mut conn = None;
            let mut i = c as u64;
            while !stop.is_cancelled() {
                let Some(sender) = conn.as_mut() else {
                    match open(&authority).await {
                        Ok(s) => conn = Some(s),
                        Err(_) => {
                            counts.errors.fetch_add(1, Ordering::Relaxed);
                            pause(&stop, BACKOFF).await;
                        }
                    }
                    continue;
                };
                if let Some(p) = pace.as_mut() {
                    p.tick().await;
                }
                let to = 4_915_100_000_000u64 + (i % recipients);
                i += connections;
                let body = format!(
                    "{{\"messaging_product\":\"whatsapp\",\"to\":\"{to}\",\"type\":\"text\",\"text\":{{\"body\":\"bench {i}\"}}}}"
                );
                let Ok(req) = hyper::Request::post("/messages")
                    .header("host", authority.as_str())
                    .header("d360-api-key", key.as_str())
                    .header("content-type", "application/json")
                    .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                else {
                    break;
                };
                let t = Instant::now();
                let resp = match sender.send_request(req).await {
                    Ok(resp) => resp,
                    Err(_) => {
                        // The connection is gone: count it, open another.
                        counts.errors.fetch_add(1, Ordering::Relaxed);
                        conn = None;
                        continue;
                    }
                };
                let status = resp.status().as_u16();
                let retry_after = resp
                    .headers()
                    .get(hyper::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let complete = http_body_util::BodyExt::collect(resp.into_body())
                    .await
                    .is_ok();
                match status {
                    200 => {
                        let micros = t.elapsed().as_micros() as u32;
                        lat.push(micros);
                        counts.second.record(micros);
                        counts.sent.fetch_add(1, Ordering::Relaxed);
                    }
                    429 | 503 => {
                        let counter = if status == 429 {
                            &counts.throttled
                        } else {
                            &counts.unavailable
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                        // Come back when told (or after a short backoff), not at once.
                        let wait = retry_after.unwrap_or(BACKOFF);
                        counts
                            .waited_ms
                            .fetch_add(wait.as_millis() as u64, Ordering::Relaxed);
                        pause(&stop, wait).await;
                    }
                    _ => {
                        counts.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if !complete {
                    conn = None;
                }
            }
            lat
        }));
    }
    let mut last = 0;
    let mut peak_backlog = 0;
    // The worst one-second p99 (`None`: a second's p99 was above 100 ms).
    let mut worst_p99 = Some(0.0f64);
    for s in 1..=args.duration {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = counts.sent.load(Ordering::Relaxed);
        let refused =
            counts.throttled.load(Ordering::Relaxed) + counts.unavailable.load(Ordering::Relaxed);
        let backlog = sandbox.as_ref().map(|sb| {
            let pending = sb.hub.pending();
            peak_backlog = peak_backlog.max(pending);
            format!(
                " · backlog {pending} ({:.1} s behind)",
                sb.webhook_lag_ms() as f64 / 1_000.0
            )
        });
        let p99 = counts.second.take_p99();
        worst_p99 = worst_p99.zip(p99).map(|(w, p)| w.max(p));
        println!(
            "  [{s:>3}/{}] {:>8} msg/s · {:>9} accepted · {:>9} webhook events{}{} · p99 {} · rss {} MiB",
            args.duration,
            now - last,
            now,
            received.events.load(Ordering::Relaxed),
            backlog.unwrap_or_default(),
            if refused > 0 {
                format!(" · {refused} throttled")
            } else {
                String::new()
            },
            p99.map_or_else(|| "> 100 ms".to_string(), |p| format!("{p:.1} ms")),
            proc_status_kib("VmRSS").unwrap_or(0) / 1_024,
        );
        last = now;
    }
    stop.cancel();
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap_or_default());
    }
    let elapsed = started.elapsed().as_secs_f64();
    let accepted = counts.sent.load(Ordering::Relaxed);
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
        lat[i.min(lat.len() - 1)] as f64 / 1_000.0
    };
    // Let the lifecycles finish and the webhook backlog drain (bounded), to report the
    // lifecycle's throughput. The backlog can be empty between two steps of a message.
    let drain_start = Instant::now();
    if let Some(sb) = &sandbox {
        while (sb.hub.pending() > 0 || sb.world().lifecycles_pending() > 0)
            && drain_start.elapsed() < Duration::from_secs(60)
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let total = started.elapsed().as_secs_f64();
    println!(
        "accepted  {accepted} messages in {elapsed:.1} s = {:.0} msg/s ({} errors)",
        accepted as f64 / elapsed,
        counts.errors.load(Ordering::Relaxed)
    );
    let (throttled, unavailable) = (
        counts.throttled.load(Ordering::Relaxed),
        counts.unavailable.load(Ordering::Relaxed),
    );
    if throttled + unavailable > 0 {
        println!(
            "throttled {throttled} × 429, {unavailable} × 503; waited {:.1} s in total as Retry-After said",
            counts.waited_ms.load(Ordering::Relaxed) as f64 / 1_000.0
        );
    }
    println!(
        "latency   p50 {:.2} ms · p90 {:.2} ms · p99 {:.2} ms · max {:.2} ms; the worst second's p99 {}",
        pct(0.5),
        pct(0.9),
        pct(0.99),
        pct(1.0),
        worst_p99.map_or_else(|| "above 100 ms".to_string(), |p| format!("{p:.1} ms")),
    );
    if sandbox.is_some() {
        let events = received.events.load(Ordering::Relaxed);
        println!(
            "webhooks  {events} events in {} POSTs; all delivered {:.1} s after the start = {:.0} events/s, {:.0} messages/s with their lifecycle; backlog at most {peak_backlog} events (sampled each second)",
            received.posts.load(Ordering::Relaxed),
            total,
            events as f64 / total,
            accepted as f64 / total
        );
    }
    if let (Some(sb), Some(dir)) = (&sandbox, &args.data_dir) {
        let _ = sb.journal.flush().await;
        let (hot, cold) = sb.world().message_counts();
        let bytes: u64 = ["", "-wal"]
            .iter()
            .filter_map(|suffix| {
                let name = format!("{}{suffix}", mynah_sandbox::store::DB_FILE);
                std::fs::metadata(dir.join(name)).ok()
            })
            .map(|m| m.len())
            .sum();
        let kept = hot as u64 + cold;
        println!(
            "journal   {:.1} MB on disk (file and write-ahead log) for {kept} messages kept, {hot} of them in memory ({:.2} KB of disk each)",
            bytes as f64 / 1e6,
            bytes as f64 / 1e3 / kept.max(1) as f64,
        );
    }
    if let Some(peak) = proc_status("VmHWM") {
        // What is left once the load is over: memory the allocator gave back no longer counts.
        tokio::time::sleep(Duration::from_secs(3)).await;
        println!(
            "memory    peak {peak}, {} 3 s after the webhooks drained (benchmark process: {})",
            proc_status("VmRSS").unwrap_or_default(),
            if args.url.is_some() {
                "the load generator only"
            } else {
                "sandbox, receiver and load generator"
            }
        );
    }
    shutdown.cancel();
    Ok(if sandbox.is_some() {
        accepted as f64 / total
    } else {
        accepted as f64 / elapsed
    })
}

/// A line of `/proc/self/status` (`VmHWM`: peak resident memory, `VmRSS`: resident now).
fn proc_status(field: &str) -> Option<String> {
    proc_status_of("self", field)
}

/// A line of `/proc/{process}/status` (`self` or a pid), its value trimmed.
pub(crate) fn proc_status_of(process: &str, field: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{process}/status")).ok()?;
    let line = status
        .lines()
        .find(|l| l.split(':').next() == Some(field))?;
    Some(line[field.len() + 1..].trim().to_string())
}

/// A `/proc/self/status` field in kB (`VmRSS`, `VmHWM`) as a number of KiB.
pub(crate) fn proc_status_kib(field: &str) -> Option<u64> {
    proc_status(field)?
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}
