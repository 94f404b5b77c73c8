//! `mynah campaign …`: campaigns of a running gateway, over its HTTP API — create one from a CSV
//! audience (streamed from the file), follow its progress, pause, resume or cancel it.

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::time::Duration;

/// Flags of `mynah campaign`.
#[derive(Debug, Args)]
pub struct CampaignArgs {
    /// The gateway's base URL.
    #[arg(
        long,
        global = true,
        default_value = "http://127.0.0.1:8361",
        env = "MYNAH_GATEWAY_URL"
    )]
    gateway: String,
    /// The gateway key (`Authorization: Bearer …`).
    #[arg(
        long,
        global = true,
        default_value = mynah_gateway::config::DEV_GATEWAY_KEY,
        env = "MYNAH_GATEWAY_KEY",
        hide_env_values = true
    )]
    key: String,
    #[command(subcommand)]
    command: CampaignCommand,
}

#[derive(Debug, Subcommand)]
enum CampaignCommand {
    /// Create a campaign from a CSV audience (a header naming the columns: `to` or `recipient`,
    /// and any the template's parameters name); prints its id, then its counts.
    Create(Box<CreateArgs>),
    /// A campaign's state and counters; `--follow` until it ends (a live progress bar on a
    /// terminal, a line per change otherwise).
    Status {
        /// The campaign's id.
        id: String,
        /// Follow until it is finished or cancelled.
        #[arg(long)]
        follow: bool,
        /// How often to look, ms (with `--follow`).
        #[arg(long, default_value_t = 500)]
        every_ms: u64,
    },
    /// Start a draft.
    Start {
        /// The campaign's id.
        id: String,
    },
    /// Pause: nothing more is released, its queued messages are held.
    Pause {
        /// The campaign's id.
        id: String,
    },
    /// Resume a paused campaign.
    Resume {
        /// The campaign's id.
        id: String,
    },
    /// Cancel: its unsent messages are cancelled, never sent later.
    Cancel {
        /// The campaign's id.
        id: String,
    },
}

#[derive(Debug, Args)]
struct CreateArgs {
    /// The template's name.
    #[arg(long)]
    template: String,
    /// The template's language code.
    #[arg(long, default_value = "en_US")]
    language: String,
    /// `marketing`, `utility` or `authentication` (the template's by default).
    #[arg(long)]
    category: Option<String>,
    /// The audience: a CSV file.
    #[arg(long)]
    audience: PathBuf,
    /// The campaign's name (the file's name by default).
    #[arg(long)]
    name: Option<String>,
    /// The template's components as JSON; a parameter's text may name a column
    /// (`{{first_name}}`).
    #[arg(long)]
    components: Option<String>,
    /// Not before: RFC 3339 (`2026-12-24T09:00:00Z`) or unix milliseconds.
    #[arg(long)]
    start_at: Option<String>,
    /// Nothing released after, and no message lives past: RFC 3339 or unix milliseconds.
    #[arg(long)]
    end_by: Option<String>,
    /// The campaign's share of the number's rate (0 < share ≤ 1).
    #[arg(long)]
    rate_share: Option<f64>,
    /// Quiet hours in the recipient's local time (`21:00-08:00`, or `off`).
    #[arg(long)]
    quiet_hours: Option<String>,
    /// Start it once the audience is in (else it stays a draft: `mynah campaign start ID`).
    #[arg(long)]
    start: bool,
}

/// Runs `mynah campaign …`.
pub async fn run(args: CampaignArgs) -> Result<(), String> {
    let client = Client::new(&args.gateway, &args.key)?;
    match args.command {
        CampaignCommand::Create(c) => create(&client, *c).await,
        CampaignCommand::Status {
            id,
            follow,
            every_ms,
        } => status(&client, &id, follow, every_ms.max(50)).await,
        CampaignCommand::Start { id } => control(&client, &id, "start").await,
        CampaignCommand::Pause { id } => control(&client, &id, "pause").await,
        CampaignCommand::Resume { id } => control(&client, &id, "resume").await,
        CampaignCommand::Cancel { id } => control(&client, &id, "cancel").await,
    }
}

struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Client {
    fn new(base: &str, key: &str) -> Result<Client, String> {
        let mut http = reqwest::Client::builder().connect_timeout(Duration::from_secs(10));
        // A gateway on this machine is never reached through a proxy.
        let host = reqwest::Url::parse(base)
            .map_err(|e| format!("--gateway {base:?} is not a URL: {e}"))?
            .host_str()
            .unwrap_or_default()
            .to_string();
        if host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
        {
            http = http.no_proxy();
        }
        let http = http
            .build()
            .map_err(|e| format!("cannot start an HTTP client: {e}"))?;
        Ok(Client {
            http,
            base: base.trim_end_matches('/').to_string(),
            key: key.to_string(),
        })
    }

    async fn send(&self, req: reqwest::RequestBuilder, what: &str) -> Result<Value, String> {
        let r = req
            .bearer_auth(&self.key)
            .send()
            .await
            .map_err(|e| format!("{what}: the gateway at {} did not answer: {e}", self.base))?;
        let status = r.status();
        let text = r
            .text()
            .await
            .map_err(|e| format!("{what}: reading the answer: {e}"))?;
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_success() {
            return Ok(v);
        }
        let msg = match &v["error"] {
            Value::Object(e) => format!(
                "{} ({}){}",
                e.get("message").and_then(Value::as_str).unwrap_or(""),
                e.get("code").and_then(Value::as_str).unwrap_or(""),
                e.get("details")
                    .and_then(Value::as_str)
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default()
            ),
            other => other.to_string(),
        };
        Err(format!("{what}: {} {msg}", status.as_u16()))
    }

    async fn get(&self, path: &str) -> Result<Value, String> {
        self.send(self.http.get(format!("{}{path}", self.base)), path)
            .await
    }

    async fn post(&self, path: &str, body: &Value) -> Result<Value, String> {
        self.send(
            self.http.post(format!("{}{path}", self.base)).json(body),
            path,
        )
        .await
    }
}

/// Unix milliseconds from RFC 3339 or digits.
fn instant(s: &str, flag: &str) -> Result<i64, String> {
    if let Ok(ms) = s.trim().parse::<i64>() {
        return Ok(ms);
    }
    parse_rfc3339(s.trim()).ok_or_else(|| {
        format!("--{flag} {s:?} is neither RFC 3339 (2026-12-24T09:00:00Z) nor unix milliseconds")
    })
}

/// `YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)` as unix milliseconds.
fn parse_rfc3339(s: &str) -> Option<i64> {
    let num = |a: usize, b: usize| -> Option<i64> {
        let t = s.get(a..b)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, sec) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if s.get(4..5)? != "-" || s.get(7..8)? != "-" || !matches!(s.get(10..11)?, "T" | "t" | " ") {
        return None;
    }
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = s.get(19..)?;
    let mut ms = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        let f = frac.get(..digits)?;
        ms = format!("{f:0<3}").get(..3)?.parse().ok()?;
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        o if o.len() == 6 && matches!(&o[..1], "+" | "-") && &o[3..4] == ":" => {
            let v = o[1..3].parse::<i64>().ok()? * 60 + o[4..6].parse::<i64>().ok()?;
            if &o[..1] == "-" { -v } else { v }
        }
        _ => return None,
    };
    // Days from the civil date (proleptic Gregorian).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + h * 3_600 + mi * 60 + sec) - offset * 60) * 1_000 + ms)
}

async fn create(client: &Client, c: CreateArgs) -> Result<(), String> {
    let file = std::fs::File::open(&c.audience)
        .map_err(|e| format!("cannot read the audience {}: {e}", c.audience.display()))?;
    let name = c.name.clone().unwrap_or_else(|| {
        c.audience
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| "campaign".into())
    });
    let mut template = json!({ "name": c.template, "language": c.language });
    if let Some(components) = &c.components {
        template["components"] = serde_json::from_str(components)
            .map_err(|e| format!("--components is not JSON: {e}"))?;
    }
    let mut spec = json!({ "name": name, "template": template });
    if let Some(cat) = &c.category {
        spec["category"] = json!(cat);
    }
    if let Some(share) = c.rate_share {
        spec["rate_share"] = json!(share);
    }
    let mut schedule = serde_json::Map::new();
    if let Some(t) = &c.start_at {
        schedule.insert("start_at".into(), json!(instant(t, "start-at")?));
    }
    if let Some(t) = &c.end_by {
        schedule.insert("end_by".into(), json!(instant(t, "end-by")?));
    }
    if let Some(q) = &c.quiet_hours {
        schedule.insert("quiet_hours".into(), json!(q));
    }
    if !schedule.is_empty() {
        spec["schedule"] = Value::Object(schedule);
    }
    let created = client.post("/v1/campaigns", &spec).await?;
    let id = created["id"]
        .as_str()
        .ok_or_else(|| format!("the gateway answered without an id: {created}"))?
        .to_string();
    println!("{id}");
    // The file goes up in chunks as it is read: memory stays bounded whatever its size.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
    let reader = tokio::task::spawn_blocking(move || {
        let mut file = file;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match file.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    if tx
                        .blocking_send(Ok(bytes::Bytes::copy_from_slice(&buf[..n])))
                        .is_err()
                    {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let imported = client
        .send(
            client
                .http
                .post(format!("{}/v1/campaigns/{id}/audience", client.base))
                .header("content-type", "text/csv")
                .body(reqwest::Body::wrap_stream(stream)),
            "uploading the audience",
        )
        .await;
    let _ = reader.await;
    let imported = imported.map_err(|e| {
        format!("{e}\ncampaign {id} stays a draft with what was added before the error")
    })?;
    println!("{}", summary(&imported));
    let by_reason = &imported["counts"]["skipped_by_reason"];
    if let Some(reasons) = by_reason.as_object().filter(|r| !r.is_empty()) {
        let list: Vec<String> = reasons.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!(
            "skipped: {} (the rows: GET /v1/campaigns/{id}/recipients.csv?state=skipped)",
            list.join(", ")
        );
    }
    if c.start {
        let v = client
            .post(&format!("/v1/campaigns/{id}/start"), &json!({}))
            .await?;
        println!("{}", summary(&v));
    }
    Ok(())
}

async fn control(client: &Client, id: &str, action: &str) -> Result<(), String> {
    let v = client
        .post(&format!("/v1/campaigns/{id}/{action}"), &json!({}))
        .await?;
    println!("{}", summary(&v));
    Ok(())
}

fn n(v: &Value, k: &str) -> i64 {
    v["counts"][k].as_i64().unwrap_or(0)
}

/// Recipients with an outcome: handed over, failed, skipped, cancelled or expired.
fn done(v: &Value) -> i64 {
    n(v, "audience") - n(v, "pending") - n(v, "queued") - n(v, "held") - n(v, "accepted")
}

/// One line: state, progress and counters.
fn summary(v: &Value) -> String {
    let mut s = format!(
        "{} {}: {}/{} done · {} sent · {} delivered · {} read · {} failed · {} skipped · {} pending",
        v["id"].as_str().unwrap_or("?"),
        v["state"].as_str().unwrap_or("?"),
        done(v).max(0),
        n(v, "audience"),
        n(v, "sent") + n(v, "delivered") + n(v, "read"),
        n(v, "delivered") + n(v, "read"),
        n(v, "read"),
        n(v, "failed"),
        n(v, "skipped"),
        n(v, "pending"),
    );
    for (k, label) in [
        ("queued", "queued"),
        ("held", "held"),
        ("deferred", "waiting for quiet hours to end"),
        ("cancelled", "cancelled"),
        ("expired", "expired"),
    ] {
        if n(v, k) > 0 {
            s.push_str(&format!(" · {} {label}", n(v, k)));
        }
    }
    if let Some(r) = v["reason"].as_str() {
        s.push_str(&format!(" ({r})"));
    }
    if let Some(name) = v["name"].as_str() {
        s.push_str(&format!(" · {name:?}"));
    }
    s
}

/// A progress bar line for a terminal.
fn bar(v: &Value, now_ms: i64) -> String {
    let total = n(v, "audience").max(1);
    let d = done(v).clamp(0, total);
    let width = 30;
    let filled = (d * width / total) as usize;
    let eta = match v["eta"].as_i64() {
        Some(t) if t > now_ms => format!(" · ETA {}", human((t - now_ms) / 1_000)),
        _ => String::new(),
    };
    format!(
        "[{}{}] {:>3}% {}/{} · {} delivered · {} failed · {} skipped · {}{eta}",
        "#".repeat(filled),
        "-".repeat(width as usize - filled),
        d * 100 / total,
        d,
        total,
        n(v, "delivered") + n(v, "read"),
        n(v, "failed"),
        n(v, "skipped"),
        v["state"].as_str().unwrap_or("?"),
    )
}

fn human(secs: i64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3_600 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{}h{:02}m", s / 3_600, (s % 3_600) / 60),
    }
}

fn ended(v: &Value) -> bool {
    matches!(v["state"].as_str(), Some("finished" | "cancelled"))
}

async fn status(client: &Client, id: &str, follow: bool, every_ms: u64) -> Result<(), String> {
    let path = format!("/v1/campaigns/{id}");
    let mut v = client.get(&path).await?;
    if !follow {
        println!("{}", summary(&v));
        return Ok(());
    }
    let tty = std::io::stdout().is_terminal();
    let mut last = String::new();
    loop {
        let now_ms = mynah_gateway::clock::Clock::System.now();
        let line = if tty { bar(&v, now_ms) } else { summary(&v) };
        if line != last {
            let mut out = std::io::stdout().lock();
            if tty {
                // Redrawn in place.
                let _ = write!(out, "\r\x1b[2K{line}");
            } else {
                let _ = writeln!(out, "{line}");
            }
            let _ = out.flush();
            last = line;
        }
        if ended(&v) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(every_ms)).await;
        v = client.get(&path).await?;
    }
    if tty {
        println!();
        println!("{}", summary(&v));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_unix_milliseconds() {
        assert_eq!(instant("1700000000000", "x"), Ok(1_700_000_000_000));
        assert_eq!(instant("2023-11-14T22:13:20Z", "x"), Ok(1_700_000_000_000));
        assert_eq!(
            instant("2023-11-14T23:13:20.5+01:00", "x"),
            Ok(1_700_000_000_500)
        );
        assert!(
            instant("tomorrow", "start-at")
                .unwrap_err()
                .contains("--start-at")
        );
        assert!(instant("2023-13-14T22:13:20Z", "x").is_err());
    }

    #[test]
    fn the_progress_bar_counts_recipients_with_an_outcome() {
        let v = json!({ "id": "cmp_1", "state": "running", "eta": 95_000,
            "counts": { "audience": 10, "pending": 4, "queued": 1, "delivered": 3, "read": 1,
                        "failed": 0, "skipped": 1 } });
        let line = bar(&v, 5_000);
        assert!(
            line.starts_with("[###############---------------]  50% 5/10 · 4 delivered"),
            "{line}"
        );
        assert!(line.ends_with("running · ETA 1m30s"), "{line}");
        assert!(summary(&v).starts_with("cmp_1 running: 5/10 done"));
    }
}
