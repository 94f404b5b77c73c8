//! `mynah bench-campaign`: how fast a CSV audience becomes a built campaign, in one process.
//!
//! A gateway on SQLite in a scratch directory (the production settings) with a template in its
//! cache; a campaign whose template names a column; a generated CSV of `--rows` distinct German
//! mobile numbers streamed in 64 KiB chunks through the same import the HTTP route uses (every
//! row checked: number, duplicate, consent, frequency cap, the rendered message against the
//! template). Reported: rows per second, the rows by status, and the process's peak resident
//! memory before and after (bounded: the audience is never held whole).

use clap::Args;
use mynah_gateway::Gateway;
use mynah_gateway::clock::Clock;
use mynah_gateway::config::Config as GwConfig;
use mynah_gateway::model::Category;
use mynah_gateway::store::sqlite::{SqliteOptions, SqliteStore};
use mynah_gateway::store::{Store, TemplateRecord};
use mynah_gateway::upstream::UpstreamConfig;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Flags of `mynah bench-campaign`.
#[derive(Debug, Args)]
pub struct BenchCampaignArgs {
    /// Audience rows.
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// Record consents for every recipient first and check them (the consent gate on).
    #[arg(long)]
    consent: bool,
    /// Rows per batch (`[campaigns] batch`).
    #[arg(long, default_value_t = mynah_gateway::config::Campaigns::default().batch)]
    batch: usize,
    /// Scratch directory (default: a fresh one under the system's temp dir, removed at the end).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// Peak resident memory of this process, KiB (`VmHWM`), where the system says.
fn peak_rss_kib() -> Option<u64> {
    crate::bench::proc_status_kib("VmHWM")
}

/// A generated CSV audience of `rows` rows, as the import reads an upload: 64 KiB chunks
/// made as they are read, `header` first, then `line(i)` (with its newline) for each row.
pub(crate) fn csv_chunks(
    rows: u64,
    header: &'static str,
    line: impl Fn(u64) -> String + Copy + Send + 'static,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::convert::Infallible>> + Send {
    futures_util::stream::unfold(0u64, move |next| async move {
        if next > rows {
            return None;
        }
        let mut chunk = String::with_capacity(70 * 1024);
        let mut i = next;
        if i == 0 {
            chunk.push_str(header);
        }
        while i < rows && chunk.len() < 64 * 1024 {
            chunk.push_str(&line(i));
            i += 1;
        }
        let end = if i == rows { rows + 1 } else { i };
        Some((Ok(bytes::Bytes::from(chunk)), end))
    })
}

/// Runs the benchmark.
pub async fn run(args: BenchCampaignArgs) -> Result<(), String> {
    let (dir, remove) = match &args.data_dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("mynah-bench-campaign-{}", std::process::id())),
            true,
        ),
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let result = bench(&args, &dir).await;
    if remove {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

async fn bench(args: &BenchCampaignArgs, dir: &std::path::Path) -> Result<(), String> {
    let store = SqliteStore::open(Some(&dir.join("gateway.db")), SqliteOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    let mut cfg = GwConfig {
        template_sync_ms: 0,
        ..GwConfig::default()
    };
    // Never called: the template is put in the cache by hand.
    cfg.upstream = UpstreamConfig::d360("http://127.0.0.1:9", "unused");
    cfg.upstream.phone_number_id = Some("bench".into());
    cfg.gates.consent = args.consent;
    cfg.campaigns.batch = args.batch;
    let gw = Gateway::new(cfg, store.clone(), Arc::new(Clock::System))?;
    let template = TemplateRecord {
        name: "order_ready".into(),
        language: "en_US".into(),
        category: Category::Utility,
        status: "APPROVED".into(),
        id: "1".into(),
        components: json!([{ "type": "BODY", "text": "Hi {{1}}, your order is ready." }])
            .to_string(),
        parameter_format: None,
        updated_at: 0,
    };
    store
        .upsert_templates(vec![template.clone()])
        .await
        .map_err(|e| e.to_string())?;
    gw.template_heads.remember(&[template]);
    let number = |i: u64| 4_915_100_000_000 + i;
    if args.consent {
        let started = Instant::now();
        let mut csv = String::from("wa_id,category,status,source\n");
        for i in 0..args.rows {
            csv.push_str(&format!("{},utility,opted_in,bench\n", number(i)));
            if csv.len() > 4 << 20 || i + 1 == args.rows {
                let (rows, _) = mynah_gateway::consent::parse_csv(csv.as_bytes(), gw.now())?;
                store.put_consents(rows).await.map_err(|e| e.to_string())?;
                csv = String::from("wa_id,category,status,source\n");
            }
        }
        println!(
            "consents recorded: {} in {:.1} s",
            args.rows,
            started.elapsed().as_secs_f64()
        );
    }
    let spec = json!({
        "name": "bench",
        "template": { "name": "order_ready", "language": "en_US", "components": [
            { "type": "body", "parameters": [ { "type": "text", "text": "{{first_name}}" } ] } ] },
    });
    let created = mynah_gateway::campaigns::create(&gw, spec.to_string().as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let id = created["id"].as_str().unwrap_or_default().to_string();
    let rss_before = peak_rss_kib();
    // The CSV, generated as it is read: 64 KiB chunks.
    let rows = args.rows;
    let chunks = csv_chunks(rows, "to,first_name\n", move |i| {
        format!("{},Name{i}\n", number(i))
    });
    let started = Instant::now();
    let v = mynah_gateway::campaigns::import_csv(&gw, &id, Box::pin(chunks))
        .await
        .map_err(|e| e.to_string())?;
    let secs = started.elapsed().as_secs_f64();
    let rss_after = peak_rss_kib();
    println!(
        "audience import: {rows} rows in {secs:.2} s = {:.0} rows/s (batch {}, consent gate {})",
        rows as f64 / secs,
        args.batch,
        if args.consent { "on" } else { "off" }
    );
    println!("rows by status: {}", v["imported"]);
    if let (Some(a), Some(b)) = (rss_before, rss_after) {
        println!(
            "peak resident memory: {} MiB before the import, {} MiB after",
            a / 1024,
            b / 1024
        );
    }
    let db = std::fs::metadata(dir.join("gateway.db"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!("database: {} MiB", db / (1 << 20));
    store.close().await;
    Ok(())
}
