//! Campaigns: one template sent to an audience. A campaign is created as a draft with its
//! template, category, schedule and rate share; its audience (inline, or CSV streamed in
//! batches) is checked row by row as it is added — each recipient is pending or skipped with its
//! reason (invalid number, duplicate, no consent, opted out, US number for marketing, contacted
//! by another campaign within the frequency cap, a template column missing, the rendered message
//! not fitting the template). Started, the runner ([`run`]) releases pending recipients into the
//! normal outbox in bounded batches at the campaign's share of the number's rate (each message
//! goes through the gates of `enqueue::prepare` again and carries the campaign), so every
//! mechanism of a single message applies. Pause parks the campaign's queued messages, resume
//! releases them, cancel cancels them (never sent). A paused or disabled template pauses the
//! campaign with the reason; it resumes when the template is active again (`auto_resume`).
//! Messages held for quality assessment stop the release until they are released or dropped.

use crate::clock::Millis;
use crate::config::Campaigns as Defaults;
use crate::enqueue::Prepared;
use crate::error::{AppError, Code};
use crate::gateway::{Gateway, lock};
use crate::model::{CampaignState, Category, ConsentStatus};
use crate::store::{CampaignCounts, CampaignRecord, NewRecipient, RecipientRecord, Release, Store};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The template a campaign sends.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateSpec {
    /// Its name.
    pub name: String,
    /// Its language code (`en_US`, or `{"code": "en_US"}`).
    pub language: Value,
    /// The platform's template components; a parameter's text may name an audience column
    /// (`{{first_name}}`).
    #[serde(default)]
    pub components: Option<Value>,
}

/// When a campaign may send.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// Not before (unix ms); now when absent.
    #[serde(default)]
    pub start_at: Option<Millis>,
    /// Nothing is released after this, and no message lives past it (unix ms).
    #[serde(default)]
    pub end_by: Option<Millis>,
    /// Quiet hours in the recipient's local time (`"21:00-08:00"`), or `"off"`; the
    /// configured `[campaigns] quiet_hours` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_hours: Option<String>,
}

impl Schedule {
    /// The quiet hours in force: the campaign's, else the configured ones.
    fn quiet(&self, d: &Defaults) -> Option<crate::quiet::Window> {
        match self.quiet_hours.as_deref() {
            Some("off") => None,
            Some(w) => w.parse().ok(),
            None => d.quiet_hours,
        }
    }
}

/// What `POST /v1/campaigns` takes (the audience apart).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// The campaign's name.
    pub name: String,
    /// The template.
    pub template: TemplateSpec,
    /// Its category (the cached template's when absent).
    #[serde(default)]
    pub category: Option<Category>,
    /// The schedule.
    #[serde(default)]
    pub schedule: Schedule,
    /// Its share of the number's rate (0 < share ≤ 1).
    #[serde(default)]
    pub rate_share: Option<f64>,
    /// Skip recipients another campaign contacted within this many seconds.
    #[serde(default)]
    pub frequency_cap_seconds: Option<i64>,
    /// Resume by itself when its paused template is active again.
    #[serde(default)]
    pub auto_resume: Option<bool>,
    /// Each message's time-to-live (seconds).
    #[serde(default)]
    pub ttl_seconds: Option<i64>,
    /// Inline audience: objects with `to` (phone) or `recipient` (BSUID) and columns.
    #[serde(default, skip_serializing)]
    pub audience: Option<Vec<Map<String, Value>>>,
}

impl Spec {
    fn language(&self) -> String {
        match &self.template.language {
            Value::String(s) => s.clone(),
            v => v["code"].as_str().unwrap_or_default().to_string(),
        }
    }

    fn share(&self, d: &Defaults) -> f64 {
        self.rate_share.unwrap_or(d.rate_share)
    }
}

fn bad(why: impl Into<String>) -> AppError {
    AppError::new(Code::InvalidCampaign, why)
}

fn spec_of(c: &CampaignRecord) -> Result<Spec, AppError> {
    serde_json::from_str(&c.spec)
        .map_err(|e| AppError::new(Code::Unavailable, format!("stored campaign spec: {e}")))
}

/// Creates a campaign (a draft) and adds its inline audience.
pub async fn create<S: Store + Clone>(gw: &Gateway<S>, body: &[u8]) -> Result<Value, AppError> {
    let mut spec: Spec = serde_json::from_slice(body).map_err(|e| bad(e.to_string()))?;
    let name = spec.name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(bad("name must be 1 to 200 characters"));
    }
    if let Some(share) = spec.rate_share
        && !(share > 0.0 && share <= 1.0)
    {
        return Err(bad("rate_share must be more than 0 and at most 1"));
    }
    if let Some(cap) = spec.frequency_cap_seconds
        && !(0..=crate::enqueue::MAX_TTL_SECONDS * 12).contains(&cap)
    {
        return Err(bad("frequency_cap_seconds must be 0 to 360 days"));
    }
    if let Some(ttl) = spec.ttl_seconds
        && !(1..=crate::enqueue::MAX_TTL_SECONDS).contains(&ttl)
    {
        return Err(bad(format!(
            "ttl_seconds must be 1 to {}",
            crate::enqueue::MAX_TTL_SECONDS
        )));
    }
    if let Some(w) = spec.schedule.quiet_hours.as_deref()
        && w != "off"
    {
        w.parse::<crate::quiet::Window>()
            .map_err(|e| bad(format!("schedule.quiet_hours: {e}, or \"off\"")))?;
    }
    if let (Some(a), Some(b)) = (spec.schedule.start_at, spec.schedule.end_by)
        && b <= a
    {
        return Err(bad("schedule.end_by must be after schedule.start_at"));
    }
    for t in [spec.schedule.start_at, spec.schedule.end_by]
        .into_iter()
        .flatten()
    {
        if !(crate::consent::EARLIEST_AT..4_102_444_800_000).contains(&t) {
            return Err(bad(
                "schedule times are unix milliseconds between 2009 and 2100",
            ));
        }
    }
    let language = spec.language();
    let head = gw
        .template_heads
        .get(&gw.store, &spec.template.name, &language)
        .await?;
    let head = match head {
        Some(h) => Some(h),
        None if crate::templates::sync_on_demand(gw).await => {
            gw.template_heads
                .get(&gw.store, &spec.template.name, &language)
                .await?
        }
        None => None,
    };
    let Some(head) = head else {
        return Err(AppError::new(
            Code::TemplateUnknown,
            format!(
                "template {} ({language}) is not in the template cache",
                spec.template.name
            ),
        ));
    };
    if spec.category.is_none() {
        spec.category = Some(head.category);
    }
    let audience = spec.audience.take();
    let now = gw.now();
    let id = format!("cmp_{:011x}{:08x}", now.max(0), rand::random::<u32>());
    let record = CampaignRecord {
        id: id.clone(),
        name: name.to_string(),
        state: CampaignState::Draft,
        reason: None,
        spec: serde_json::to_string(&spec).map_err(|e| bad(e.to_string()))?,
        created_at: now,
        updated_at: now,
        started_at: None,
        finished_at: None,
    };
    gw.store.create_campaign(record.clone()).await?;
    if let Some(rows) = audience {
        add_audience(gw, &record, &spec, rows).await?;
    }
    view(gw, &id).await
}

/// Adds rows to a draft's audience, checking each: the rows as stored (pending or skipped with
/// the reason). Each batch costs a few store calls, not a few per row: the people and the
/// consents of the whole batch are read at once, and its rows are stored in one transaction.
pub async fn add_audience<S: Store + Clone>(
    gw: &Gateway<S>,
    campaign: &CampaignRecord,
    spec: &Spec,
    rows: Vec<Map<String, Value>>,
) -> Result<Vec<RecipientRecord>, AppError> {
    if campaign.state != CampaignState::Draft {
        return Err(AppError::new(
            Code::CampaignState,
            format!(
                "campaign {} is {}: the audience can only be added to a draft",
                campaign.id, campaign.state
            ),
        ));
    }
    let mut out = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(gw.cfg.campaigns.batch.max(1)) {
        let built = build_audience(gw, campaign, spec, chunk).await?;
        out.extend(gw.store.add_recipients(&campaign.id, built).await?);
    }
    gw.changed();
    Ok(out)
}

/// Checks a batch of rows (see [`check_rows`]) and the frequency cap: the rows to store.
async fn build_audience<S: Store + Clone>(
    gw: &Gateway<S>,
    campaign: &CampaignRecord,
    spec: &Spec,
    chunk: &[Map<String, Value>],
) -> Result<Vec<NewRecipient>, AppError> {
    {
        let mut built = check_rows(gw, campaign, spec, chunk).await?;
        // The frequency cap, in one read for the chunk.
        let cap_ms = spec
            .frequency_cap_seconds
            .map(|s| s * 1_000)
            .unwrap_or(gw.cfg.campaigns.frequency_cap_ms);
        if cap_ms > 0 {
            let keys: Vec<String> = built.iter().map(|r| r.key.clone()).collect();
            let hit = gw
                .store
                .contacted_by_campaigns(keys, &campaign.id, gw.now() - cap_ms)
                .await?;
            for (r, hit) in built.iter_mut().zip(hit) {
                if hit && r.skip.is_none() {
                    r.skip = Some((
                        "frequency_cap".into(),
                        format!(
                            "{} was contacted by another campaign in the last {} s",
                            r.recipient,
                            cap_ms / 1_000
                        ),
                    ));
                    r.body = None;
                }
            }
        }
        Ok(built)
    }
}

fn skip(
    recipient: String,
    key: String,
    columns: String,
    reason: &str,
    detail: String,
) -> NewRecipient {
    NewRecipient {
        recipient,
        key,
        columns,
        body: None,
        skip: Some((reason.to_string(), detail)),
    }
}

/// A row past the checks that need no store: its id, columns and rendered components.
struct Parsed {
    id: String,
    columns: String,
    components: Option<Value>,
}

/// Checks a batch of audience rows: the number, the template's columns, then (one store call
/// each for the batch) the person and the consent, the US rule, and the message as it would be
/// enqueued now (the template checks and every other gate).
async fn check_rows<S: Store + Clone>(
    gw: &Gateway<S>,
    campaign: &CampaignRecord,
    spec: &Spec,
    rows: &[Map<String, Value>],
) -> Result<Vec<NewRecipient>, AppError> {
    let mut out: Vec<Option<NewRecipient>> = Vec::with_capacity(rows.len());
    let mut parsed: Vec<(usize, Parsed)> = Vec::with_capacity(rows.len());
    for row in rows {
        let columns = serde_json::to_string(row).unwrap_or_else(|_| "{}".into());
        let raw = RECIPIENT_COLUMNS
            .iter()
            .find_map(|k| row.get(*k))
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .unwrap_or_default();
        let id = match crate::people::parse_contact_id(&raw) {
            Ok(id) if !id.starts_with("ct_") => id,
            _ => {
                out.push(Some(skip(
                    raw.clone(),
                    raw.clone(),
                    columns,
                    "invalid_number",
                    format!("{raw:?} is neither a phone number nor a business-scoped user id"),
                )));
                continue;
            }
        };
        let components = match &spec.template.components {
            Some(c) => match render(c, row) {
                Ok(c) => Some(c),
                Err(col) => {
                    // Its key is its id here: a skipped row needs no person.
                    out.push(Some(skip(
                        id.clone(),
                        id,
                        columns,
                        "missing_column",
                        format!("the template needs the column {col:?}, which this row lacks"),
                    )));
                    continue;
                }
            },
            None => None,
        };
        parsed.push((
            out.len(),
            Parsed {
                id,
                columns,
                components,
            },
        ));
        out.push(None);
    }
    let ids: Vec<String> = parsed.iter().map(|(_, p)| p.id.clone()).collect();
    let keys = gw.store.resolve_many(ids.clone()).await?;
    let consents = if gw.cfg.gates.consent {
        // By the keys just resolved: one look-up of each person, not two.
        let people = keys
            .iter()
            .zip(ids)
            .map(|(k, id)| k.clone().unwrap_or(id))
            .collect();
        Some(gw.store.consents_many(people).await?)
    } else {
        None
    };
    let category = spec.category.unwrap_or(Category::Marketing);
    for (k, (slot, p)) in parsed.into_iter().enumerate() {
        let Parsed {
            id,
            columns,
            components,
        } = p;
        let key = keys.get(k).cloned().flatten().unwrap_or_else(|| id.clone());
        let skipped = |reason: &str, detail: String| {
            Some(skip(
                id.clone(),
                key.clone(),
                columns.clone(),
                reason,
                detail,
            ))
        };
        if let Some(all) = &consents {
            let found = all
                .get(k)
                .and_then(|c| c.iter().find(|c| c.category == category));
            match found {
                Some(c) if c.status == ConsentStatus::OptedIn => {}
                Some(c) => {
                    out[slot] = skipped(
                        "opted_out",
                        format!(
                            "{id} opted out of {category} messages (source {})",
                            c.source
                        ),
                    );
                    continue;
                }
                None => {
                    out[slot] = skipped(
                        "no_consent",
                        format!("{id} has no opt-in for {category} messages"),
                    );
                    continue;
                }
            }
        }
        if category == Category::Marketing
            && gw.cfg.gates.us_marketing
            && crate::people::is_us(gw, &id).await?
        {
            out[slot] = skipped(
                "us_marketing",
                format!(
                    "{id} is in the United States: marketing templates are not delivered there (131049)"
                ),
            );
            continue;
        }
        let mut probe = message_body(spec, campaign, &id, components);
        let body = probe.to_string();
        // The message as it would be enqueued now (the consent was read above).
        out[slot] = match crate::enqueue::prepare_gated(gw, &mut probe, false).await {
            Ok(p) if p.message.state == crate::model::MessageState::Queued => Some(NewRecipient {
                recipient: id,
                key,
                columns,
                body: Some(body),
                skip: None,
            }),
            Ok(p) => skipped("suppressed", p.message.reason.unwrap_or_default()),
            Err(e) if e.code == Code::Unavailable => return Err(e),
            Err(e) => skipped(reason_of(e.code), e.details),
        };
    }
    Ok(out.into_iter().flatten().collect())
}

fn reason_of(code: Code) -> &'static str {
    match code {
        Code::TemplateMismatch => "template_mismatch",
        Code::ConsentMissing => "no_consent",
        Code::InvalidBody => "invalid_message",
        Code::TemplateInactive | Code::TemplateUnknown => "template_inactive",
        _ => "refused",
    }
}

/// The message body of one recipient.
fn message_body(
    spec: &Spec,
    campaign: &CampaignRecord,
    id: &str,
    components: Option<Value>,
) -> Value {
    let mut template = json!({
        "name": spec.template.name,
        "language": { "code": spec.language() },
    });
    if let Some(c) = components {
        template["components"] = c;
    }
    let mut body = json!({
        "type": "template",
        "template": template,
        "lane": "bulk",
        "metadata": { "campaign": campaign.id },
    });
    let field = if mynah_wire::UserId::well_formed(id) {
        "recipient"
    } else {
        "to"
    };
    body[field] = Value::String(id.to_string());
    if let Some(t) = spec.ttl_seconds {
        body["ttl_seconds"] = json!(t);
    }
    body
}

/// Replaces `{{column}}` in every string of `v` by the row's value; the first missing column
/// is the error.
fn render(v: &Value, row: &Map<String, Value>) -> Result<Value, String> {
    Ok(match v {
        Value::String(s) => Value::String(render_text(s, row)?),
        Value::Array(a) => {
            Value::Array(a.iter().map(|x| render(x, row)).collect::<Result<_, _>>()?)
        }
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| Ok((k.clone(), render(x, row)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

/// A `{{name}}` that names a column (not a positional `{{1}}`).
fn is_column(name: &str) -> bool {
    !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.chars().all(|c| c.is_ascii_digit())
}

fn render_text(s: &str, row: &Map<String, Value>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start + 2..].find("}}") else {
            break;
        };
        let name = rest[start + 2..start + 2 + len].trim();
        out.push_str(&rest[..start]);
        if is_column(name) {
            match row.get(name) {
                Some(Value::String(v)) if !v.trim().is_empty() => out.push_str(v),
                Some(Value::Number(n)) => out.push_str(&n.to_string()),
                _ => return Err(name.to_string()),
            }
        } else {
            out.push_str(&rest[start..start + 4 + len]);
        }
        rest = &rest[start + 4 + len..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The character set of a CSV audience (`Content-Type: text/csv; charset=…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    /// UTF-8 (the default; a byte-order mark is dropped).
    Utf8,
    /// ISO-8859-1 (Latin-1): every byte is its character.
    Latin1,
}

impl Charset {
    /// The charset a `Content-Type` names: UTF-8 (or none) or Latin-1; anything else is refused.
    pub fn of_content_type(ct: Option<&str>) -> Result<Charset, AppError> {
        let Some(ct) = ct else {
            return Ok(Charset::Utf8);
        };
        let charset = ct.split(';').skip(1).find_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case("charset")
                .then(|| v.trim().trim_matches('"').to_ascii_lowercase())
        });
        match charset.as_deref() {
            None | Some("utf-8" | "utf8" | "us-ascii") => Ok(Charset::Utf8),
            Some("iso-8859-1" | "latin1" | "latin-1" | "iso8859-1") => Ok(Charset::Latin1),
            Some(other) => Err(bad(format!(
                "the audience's charset {other:?} is not read: send UTF-8 (or ISO-8859-1 with charset=iso-8859-1)"
            ))),
        }
    }
}

/// The longest CSV line of an audience (longer lines are skipped as `bad_row`).
pub const MAX_LINE: usize = 64 * 1024;

/// Reads a CSV audience in UTF-8; see [`import_csv_with`].
pub async fn import_csv<S, B, E>(gw: &Gateway<S>, id: &str, chunks: B) -> Result<Value, AppError>
where
    S: Store + Clone,
    B: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    import_csv_with(gw, id, chunks, Charset::Utf8).await
}

/// Every `{{column}}` the template's components name.
fn needed_columns(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => {
            let mut rest = s.as_str();
            while let Some(start) = rest.find("{{") {
                let Some(len) = rest[start + 2..].find("}}") else {
                    break;
                };
                let name = rest[start + 2..start + 2 + len].trim();
                if is_column(name) && !out.iter().any(|c| c == name) {
                    out.push(name.to_string());
                }
                rest = &rest[start + 4 + len..];
            }
        }
        Value::Array(a) => a.iter().for_each(|x| needed_columns(x, out)),
        Value::Object(o) => o.values().for_each(|x| needed_columns(x, out)),
        _ => {}
    }
}

/// Reads a CSV audience (a header naming the columns, one recipient per line) from a stream of
/// chunks, adding it in batches: memory stays bounded by a batch. Refused before any row is
/// added: a UTF-16 file, a header without a recipient column or without a column the template
/// names, an over-long header. Skipped as `bad_row`, each with its line and reason: a line
/// longer than [`MAX_LINE`], not in the charset, with an unterminated quote or another number
/// of fields than the header. A failure part-way (the upload breaks off) says how many rows
/// were added before it: the campaign stays a draft with them.
pub async fn import_csv_with<S, B, E>(
    gw: &Gateway<S>,
    id: &str,
    mut chunks: B,
    charset: Charset,
) -> Result<Value, AppError>
where
    S: Store + Clone,
    B: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    use futures_util::StreamExt;
    let campaign = get(gw, id).await?;
    let spec = spec_of(&campaign)?;
    if campaign.state != CampaignState::Draft {
        return Err(AppError::new(
            Code::CampaignState,
            format!(
                "campaign {id} is {}: the audience can only be added to a draft",
                campaign.state
            ),
        ));
    }
    let mut needed = Vec::new();
    if let Some(c) = &spec.template.components {
        needed_columns(c, &mut needed);
    }
    let mut header: Option<Vec<String>> = None;
    let mut buf: Vec<u8> = Vec::new();
    let mut rows: Vec<Map<String, Value>> = Vec::new();
    let mut bad_rows: Vec<NewRecipient> = Vec::new();
    let mut line_no = 0u64;
    let mut totals: HashMap<String, i64> = HashMap::new();
    let mut added_to_line = 0u64;
    let mut inflight: Option<(Written, u64)> = None;
    let mut overlong = false;
    let mut first = true;
    let batch = gw.cfg.campaigns.batch.max(1);
    let bad_row = |line_no: u64, text: String, why: String| {
        skip(
            text,
            format!("line:{line_no}"),
            "{}".into(),
            "bad_row",
            format!("line {line_no}: {why}"),
        )
    };
    let mut done = false;
    while !done {
        let chunk = match chunks.next().await {
            Some(Ok(c)) => c,
            Some(Err(e)) => {
                settle(&mut inflight, &mut totals, &mut added_to_line).await?;
                let added: i64 = totals.values().sum();
                return Err(bad(format!(
                    "reading the audience broke off after line {added_to_line}: {e}; campaign {id} stays a draft with the {added} rows added before (add the rest from line {}, or cancel it)",
                    added_to_line + 1
                )));
            }
            None => {
                done = true;
                bytes::Bytes::new()
            }
        };
        if first && !chunk.is_empty() {
            first = false;
            if chunk.starts_with(&[0xFF, 0xFE])
                || chunk.starts_with(&[0xFE, 0xFF])
                || chunk.iter().take(64).filter(|b| **b == 0).count() > 4
            {
                return Err(bad(
                    "the audience is UTF-16 (or binary): send it as UTF-8 (or ISO-8859-1 with charset=iso-8859-1); nothing was added",
                ));
            }
        }
        buf.extend_from_slice(&chunk);
        let mut start = 0;
        loop {
            let line: &[u8] = match memchr_newline(&buf[start..]) {
                Some(i) => {
                    let l = &buf[start..start + i + 1];
                    start += i + 1;
                    l
                }
                None if done && start < buf.len() => {
                    let l = &buf[start..];
                    start = buf.len();
                    l
                }
                None => {
                    if buf.len() - start > MAX_LINE {
                        overlong = true;
                        start = buf.len();
                    }
                    break;
                }
            };
            line_no += 1;
            if overlong || line.len() > MAX_LINE + 2 {
                overlong = false;
                if header.is_none() {
                    return Err(bad(format!(
                        "the audience's header (line {line_no}) is longer than {MAX_LINE} bytes; nothing was added"
                    )));
                }
                bad_rows.push(bad_row(
                    line_no,
                    String::new(),
                    format!("longer than {MAX_LINE} bytes"),
                ));
                continue;
            }
            let decoded: std::borrow::Cow<str> = match charset {
                Charset::Utf8 => match std::str::from_utf8(line) {
                    Ok(t) => t.into(),
                    Err(e) => {
                        if header.is_none() {
                            return Err(bad(format!(
                                "the audience's header is not UTF-8 (byte {}): send UTF-8, or say charset=iso-8859-1; nothing was added",
                                e.valid_up_to() + 1
                            )));
                        }
                        bad_rows.push(bad_row(
                            line_no,
                            String::from_utf8_lossy(&line[..line.len().min(200)]).into_owned(),
                            format!(
                                "not UTF-8 (byte {}; a Latin-1 file is read with charset=iso-8859-1)",
                                e.valid_up_to() + 1
                            ),
                        ));
                        continue;
                    }
                },
                Charset::Latin1 => line
                    .iter()
                    .map(|b| char::from(*b))
                    .collect::<String>()
                    .into(),
            };
            let text = decoded
                .trim_end_matches(['\r', '\n'])
                .trim_start_matches('\u{feff}');
            if text.trim().is_empty() {
                continue;
            }
            if text.bytes().filter(|b| *b == b'"').count() % 2 == 1 {
                if header.is_none() {
                    return Err(bad(
                        "the audience's header has an unterminated quote; nothing was added",
                    ));
                }
                bad_rows.push(bad_row(
                    line_no,
                    text.chars().take(200).collect(),
                    "an unterminated quote (a field cannot span lines)".into(),
                ));
                continue;
            }
            let fields = crate::consent::split_csv(text);
            let Some(names) = &header else {
                let names: Vec<String> = fields.iter().map(|f| f.trim().to_string()).collect();
                if !names
                    .iter()
                    .any(|n| RECIPIENT_COLUMNS.contains(&n.as_str()))
                {
                    return Err(bad(format!(
                        "the CSV's header ({}) must name the recipient column: to, recipient, phone, wa_id or user_id; nothing was added",
                        text.chars().take(200).collect::<String>()
                    )));
                }
                let missing: Vec<&String> = needed.iter().filter(|c| !names.contains(c)).collect();
                if !missing.is_empty() {
                    return Err(bad(format!(
                        "the template names the column(s) {missing:?}, which the CSV's header ({}) lacks; nothing was added",
                        names.join(",")
                    )));
                }
                header = Some(names);
                continue;
            };
            if fields.len() != names.len() {
                bad_rows.push(bad_row(
                    line_no,
                    text.chars().take(200).collect(),
                    format!("{} fields, the header has {}", fields.len(), names.len()),
                ));
                continue;
            }
            let mut row = Map::new();
            for (n, f) in names.iter().zip(fields) {
                row.insert(n.clone(), Value::String(f.trim().to_string()));
            }
            rows.push(row);
            if rows.len() + bad_rows.len() >= batch {
                // This batch is checked while the one before is written.
                let mut all = std::mem::take(&mut bad_rows);
                all.extend(build_audience(gw, &campaign, &spec, &std::mem::take(&mut rows)).await?);
                settle(&mut inflight, &mut totals, &mut added_to_line).await?;
                let (store, cid) = (gw.store.clone(), id.to_string());
                inflight = Some((
                    tokio::spawn(async move { store.add_recipients(&cid, all).await }),
                    line_no,
                ));
            }
        }
        buf.drain(..start);
    }
    if header.is_none() {
        return Err(bad(
            "the audience is empty: a header naming the columns, then one recipient per line",
        ));
    }
    settle(&mut inflight, &mut totals, &mut added_to_line).await?;
    let mut all = bad_rows;
    all.extend(build_audience(gw, &campaign, &spec, &rows).await?);
    count(&mut totals, &gw.store.add_recipients(id, all).await?);
    gw.changed();
    let mut v = view(gw, id).await?;
    v["imported"] = json!(totals);
    v["lines"] = json!(line_no);
    Ok(v)
}

/// A batch of audience rows being written, with its last line.
type Written = tokio::task::JoinHandle<Result<Vec<RecipientRecord>, crate::store::StoreError>>;

/// Waits for the batch being written, counting it.
async fn settle(
    inflight: &mut Option<(Written, u64)>,
    totals: &mut HashMap<String, i64>,
    added_to_line: &mut u64,
) -> Result<(), AppError> {
    if let Some((handle, line)) = inflight.take() {
        let rows = handle.await.map_err(|e| {
            AppError::new(Code::Unavailable, format!("writing the audience: {e}"))
        })??;
        count(totals, &rows);
        *added_to_line = line;
    }
    Ok(())
}

/// The columns that may hold the recipient.
const RECIPIENT_COLUMNS: [&str; 5] = ["to", "recipient", "phone", "wa_id", "user_id"];

fn memchr_newline(b: &[u8]) -> Option<usize> {
    b.iter().position(|c| *c == b'\n')
}

fn count(totals: &mut HashMap<String, i64>, rows: &[RecipientRecord]) {
    for r in rows {
        *totals.entry(r.status.clone()).or_default() += 1;
    }
}

async fn get<S: Store + Clone>(gw: &Gateway<S>, id: &str) -> Result<CampaignRecord, AppError> {
    gw.store
        .campaign(id)
        .await?
        .ok_or_else(|| AppError::new(Code::NotFound, format!("no campaign {id}")))
}

/// A control: `start`, `pause`, `resume` or `cancel`.
pub async fn control<S: Store + Clone>(
    gw: &Gateway<S>,
    id: &str,
    action: &str,
) -> Result<Value, AppError> {
    use CampaignState::*;
    let c = get(gw, id).await?;
    let spec = spec_of(&c)?;
    let now = gw.now();
    // Before its start, a campaign started (or resumed) waits for it.
    let later = spec.schedule.start_at.is_some_and(|t| t > now);
    let go = if later { Scheduled } else { Running };
    let (from, to, reason): (Vec<CampaignState>, CampaignState, Option<String>) = match action {
        "start" => (vec![Draft], go, None),
        "pause" => (
            vec![Running, Scheduled],
            Paused,
            Some("paused by hand".into()),
        ),
        "resume" => (vec![Paused], go, None),
        "cancel" => (
            vec![Draft, Scheduled, Running, Paused],
            Cancelled,
            Some("cancelled by hand".into()),
        ),
        other => {
            return Err(AppError::new(
                Code::NotFound,
                format!("no campaign action {other:?} (start, pause, resume, cancel)"),
            ));
        }
    };
    match transition(gw, id, from, to, reason, now).await? {
        Some(_) => {
            gw.changed();
            gw.wake_campaigns.notify_one();
            gw.wake_dispatch.notify_one();
            view(gw, id).await
        }
        None => Err(AppError::new(
            Code::CampaignState,
            format!("campaign {id} is {}: it cannot {action}", c.state),
        )),
    }
}

/// Moves a campaign (as [`Store::set_campaign_state`]) and, when it moved, tells apps on the
/// event feed (SSE and app webhooks): `campaign.<new state>` with the reason and the counters.
async fn transition<S: Store + Clone>(
    gw: &Gateway<S>,
    id: &str,
    from: Vec<CampaignState>,
    to: CampaignState,
    reason: Option<String>,
    now: Millis,
) -> Result<Option<CampaignRecord>, AppError> {
    let moved = gw
        .store
        .set_campaign_state(id, from, to, reason.clone(), now)
        .await?;
    if let Some(c) = &moved {
        let counts = gw.store.campaign_counts(id).await?;
        let detail = json!({
            "state": to,
            "reason": reason,
            "name": c.name,
            "counts": counters(&counts),
        });
        gw.store
            .campaign_event(id, &format!("campaign.{to}"), now, to, detail)
            .await?;
        gw.changed();
    }
    Ok(moved)
}

/// While a campaign runs, a `campaign.progress` event every `[campaigns] progress_ms` of the
/// gateway's clock when its counters moved (the first at once).
async fn progress<S: Store + Clone>(
    gw: &Gateway<S>,
    c: &CampaignRecord,
    spec: &Spec,
    last: &std::sync::Mutex<HashMap<String, (Millis, Value)>>,
) -> Result<(), AppError> {
    let every = gw.cfg.campaigns.progress_ms;
    let now = gw.now();
    if every <= 0
        || lock(last)
            .get(&c.id)
            .is_some_and(|(at, _)| now - *at < every)
    {
        return Ok(());
    }
    let counts = gw.store.campaign_counts(&c.id).await?;
    let counts = counters(&counts);
    if lock(last).get(&c.id).is_some_and(|(_, v)| *v == counts) {
        // Unchanged: looked at again after another period, not at every tick.
        lock(last).insert(c.id.clone(), (now, counts));
        return Ok(());
    }
    let rate = gw.cfg.rate().rate * spec.share(&gw.cfg.campaigns);
    let detail = json!({ "state": c.state, "name": c.name, "rate": rate, "counts": counts });
    gw.store
        .campaign_event(&c.id, "campaign.progress", now, c.state, detail)
        .await?;
    lock(last).insert(c.id.clone(), (now, counts));
    gw.changed();
    Ok(())
}

/// The campaign as `GET /v1/campaigns/{id}` shows it: state, counters, rate, ETA and cost.
pub async fn view<S: Store + Clone>(gw: &Gateway<S>, id: &str) -> Result<Value, AppError> {
    let c = get(gw, id).await?;
    let spec = spec_of(&c)?;
    let counts = gw.store.campaign_counts(id).await?;
    let rate = gw.cfg.rate().rate * spec.share(&gw.cfg.campaigns);
    let n = |m: &std::collections::BTreeMap<String, i64>, k: &str| m.get(k).copied().unwrap_or(0);
    let pending = n(&counts.recipients, "pending");
    let queued = n(&counts.messages, "queued") + n(&counts.messages, "sending");
    let eta_ms = match c.state {
        CampaignState::Running | CampaignState::Scheduled if rate > 0.0 => {
            let start = spec.schedule.start_at.unwrap_or(0).max(gw.now());
            Some(start + (((pending + queued) as f64 / rate) * 1_000.0) as Millis)
        }
        _ => None,
    };
    let price = |category: &str| {
        gw.cfg
            .campaigns
            .rate_card
            .get(category)
            .copied()
            .unwrap_or(0.0)
    };
    let spent: f64 = counts
        .billable
        .iter()
        .map(|(cat, k)| price(cat) * *k as f64)
        .sum();
    let category = spec.category.unwrap_or(Category::Marketing);
    let projected = spent
        + price(category.as_str())
            * (pending + queued + n(&counts.messages, "accepted") + n(&counts.messages, "held"))
                as f64;
    Ok(json!({
        "id": c.id,
        "name": c.name,
        "state": c.state,
        "reason": c.reason,
        "template": { "name": spec.template.name, "language": spec.language() },
        "category": category,
        "schedule": spec.schedule,
        "rate_share": spec.share(&gw.cfg.campaigns),
        "rate": rate,
        "created_at": c.created_at,
        "started_at": c.started_at,
        "finished_at": c.finished_at,
        "counts": counters(&counts),
        "eta": eta_ms,
        "cost": { "spent": spent, "projected": projected },
    }))
}

fn counters(c: &CampaignCounts) -> Value {
    let n = |m: &std::collections::BTreeMap<String, i64>, k: &str| m.get(k).copied().unwrap_or(0);
    let audience: i64 = c.recipients.values().sum();
    json!({
        "audience": audience,
        "pending": n(&c.recipients, "pending"),
        "released": n(&c.recipients, "released"),
        "skipped": n(&c.recipients, "skipped"),
        "skipped_by_reason": c.skipped,
        "cancelled": n(&c.recipients, "cancelled") + n(&c.messages, "cancelled"),
        "queued": n(&c.messages, "queued") + n(&c.messages, "sending"),
        "parked": c.parked,
        "deferred": c.deferred,
        "held": n(&c.messages, "held"),
        "accepted": n(&c.messages, "accepted"),
        "sent": n(&c.messages, "sent"),
        "delivered": n(&c.messages, "delivered"),
        "read": n(&c.messages, "read"),
        "failed": n(&c.messages, "failed"),
        "failed_by_code": c.failed,
        "expired": n(&c.messages, "expired"),
        "messages": c.messages,
    })
}

/// One recipient as the listing shows it.
pub fn recipient_view(r: &RecipientRecord) -> Value {
    json!({
        "row": r.row,
        "recipient": r.recipient,
        "status": r.status,
        "reason": r.reason,
        "detail": r.detail,
        "message_id": r.message_id,
        "state": r.message_state.map(|s| s.as_str()).unwrap_or(r.status.as_str()),
        "error_code": r.error_code,
        "columns": serde_json::from_str::<Value>(&r.columns).unwrap_or(Value::Null),
    })
}

/// `GET /v1/campaigns/{id}/recipients`.
pub async fn recipients<S: Store + Clone>(
    gw: &Gateway<S>,
    id: &str,
    state: Option<String>,
    after: i64,
    limit: usize,
) -> Result<Value, AppError> {
    get(gw, id).await?;
    let rows = gw
        .store
        .campaign_recipients(id, state, after, limit.clamp(1, 1_000))
        .await?;
    let next = rows.last().map(|r| r.row);
    Ok(json!({
        "recipients": rows.iter().map(recipient_view).collect::<Vec<_>>(),
        "next": next,
    }))
}

/// A CSV of the campaign's recipients (`state` as in the listing; `skipped` gives the skipped
/// rows with their reasons): row, recipient, status, reason, detail, message id, state, error.
/// Streamed a page of 1,000 rows at a time: memory stays bounded whatever the audience's size.
pub async fn recipients_csv<S: Store + Clone>(
    gw: Arc<Gateway<S>>,
    id: String,
    state: Option<String>,
) -> Result<impl futures_util::Stream<Item = Result<bytes::Bytes, AppError>>, AppError> {
    get(&gw, &id).await?;
    let header = bytes::Bytes::from_static(
        b"row,recipient,status,reason,detail,message_id,state,error_code\n",
    );
    let pages = futures_util::stream::try_unfold(Some(0i64), move |after| {
        let (gw, id, state) = (gw.clone(), id.clone(), state.clone());
        async move {
            let Some(after) = after else {
                return Ok(None);
            };
            let rows = gw
                .store
                .campaign_recipients(&id, state, after, 1_000)
                .await?;
            let Some(last) = rows.last().map(|r| r.row) else {
                return Ok(None);
            };
            let mut out = String::with_capacity(rows.len() * 96);
            for r in &rows {
                let fields = [
                    r.row.to_string(),
                    r.recipient.clone(),
                    r.status.clone(),
                    r.reason.clone().unwrap_or_default(),
                    r.detail.clone().unwrap_or_default(),
                    r.message_id.clone().unwrap_or_default(),
                    r.message_state
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default(),
                    r.error_code.map(|c| c.to_string()).unwrap_or_default(),
                ];
                let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
                out.push_str(&line.join(","));
                out.push('\n');
            }
            Ok(Some((bytes::Bytes::from(out), Some(last))))
        }
    });
    Ok(futures_util::StreamExt::chain(
        futures_util::stream::once(async move { Ok(header) }),
        pages,
    ))
}

fn csv_field(f: &str) -> String {
    if f.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", f.replace('"', "\"\""))
    } else {
        f.to_string()
    }
}

/// Per running campaign, the runner's budget: tokens at the campaign's share of the rate.
#[derive(Debug)]
struct Budget {
    tokens: f64,
    at: Instant,
}

/// The campaign runner: starts scheduled campaigns, releases running ones' recipients in bounded
/// batches at their share of the rate, pauses and resumes them with their template, finishes
/// them. Woken by [`Gateway::wake_campaigns`], and every 200 ms.
pub async fn run<S: Store + Clone>(gw: Arc<Gateway<S>>, shutdown: CancellationToken) {
    let budgets: std::sync::Mutex<HashMap<String, Budget>> = Default::default();
    let reported: std::sync::Mutex<HashMap<String, (Millis, Value)>> = Default::default();
    loop {
        let busy = match tick(&gw, &budgets, &reported).await {
            Ok(busy) => busy,
            Err(e) => {
                tracing::warn!(error = %e, "campaign runner");
                false
            }
        };
        let pause = if busy { 20 } else { 200 };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = gw.wake_campaigns.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(pause)) => {}
        }
    }
}

fn template_active(status: &str) -> bool {
    status.eq_ignore_ascii_case("APPROVED") || status.eq_ignore_ascii_case("ACTIVE")
}

/// The reason a campaign paused for its template starts with this.
const TEMPLATE_PAUSE: &str = "template ";

async fn tick<S: Store + Clone>(
    gw: &Gateway<S>,
    budgets: &std::sync::Mutex<HashMap<String, Budget>>,
    reported: &std::sync::Mutex<HashMap<String, (Millis, Value)>>,
) -> Result<bool, AppError> {
    use CampaignState::*;
    let mut busy = false;
    let live = gw
        .store
        .campaigns_in(vec![Scheduled, Running, Paused])
        .await?;
    lock(reported).retain(|id, _| live.iter().any(|c| &c.id == id));
    for c in live {
        let spec = spec_of(&c)?;
        let now = gw.now();
        let language = spec.language();
        let status = gw
            .template_heads
            .get(&gw.store, &spec.template.name, &language)
            .await?
            .map(|h| h.status);
        match c.state {
            Scheduled if spec.schedule.start_at.is_none_or(|t| t <= now) => {
                transition(gw, &c.id, vec![Scheduled], Running, None, now).await?;
                gw.changed();
                busy = true;
            }
            Paused => {
                let auto = spec.auto_resume.unwrap_or(gw.cfg.campaigns.auto_resume);
                let for_template = c
                    .reason
                    .as_deref()
                    .is_some_and(|r| r.starts_with(TEMPLATE_PAUSE));
                if auto && for_template && status.as_deref().is_some_and(template_active) {
                    transition(gw, &c.id, vec![Paused], Running, None, now).await?;
                    gw.changed();
                    gw.wake_dispatch.notify_one();
                    busy = true;
                }
            }
            Running => {
                if let Some(s) = status.as_deref()
                    && !template_active(s)
                {
                    // Its messages the platform refused with 132015 — a pacing drop (the failed
                    // webhook) or the answer to a send — wait parked with that code.
                    let dropped = gw
                        .store
                        .campaign_recipients(&c.id, Some("queued".into()), 0, 1_000)
                        .await?
                        .iter()
                        .filter(|r| r.error_code == Some(132015))
                        .count();
                    let reason = if dropped > 0 {
                        format!(
                            "{TEMPLATE_PAUSE}{} ({language}) is {}: {dropped} message(s) refused with 132015, parked until it is active",
                            spec.template.name,
                            s.to_ascii_uppercase()
                        )
                    } else {
                        format!(
                            "{TEMPLATE_PAUSE}{} ({language}) is {}",
                            spec.template.name,
                            s.to_ascii_uppercase()
                        )
                    };
                    transition(gw, &c.id, vec![Running], Paused, Some(reason), now).await?;
                    gw.changed();
                    continue;
                }
                busy |= release(gw, &c, &spec, budgets).await?;
                progress(gw, &c, &spec, reported).await?;
            }
            _ => {}
        }
    }
    Ok(busy)
}

/// Releases what the budget allows of a running campaign; finishes it when nothing is left.
async fn release<S: Store + Clone>(
    gw: &Gateway<S>,
    c: &CampaignRecord,
    spec: &Spec,
    budgets: &std::sync::Mutex<HashMap<String, Budget>>,
) -> Result<bool, AppError> {
    let now = gw.now();
    // Read through indexes on every pass: the full counters cost a scan of the audience.
    let flow = gw.store.campaign_flow(&c.id).await?;
    let outstanding = flow.outstanding;
    // Waiting for the end of quiet hours: not in the outbox's way.
    let in_flight = outstanding - flow.deferred;
    if spec.schedule.end_by.is_some_and(|t| t <= now) && flow.pending {
        // Past its end: what was not released is skipped.
        loop {
            let rows = gw.store.pending_recipients(&c.id, 1_000).await?;
            if rows.is_empty() {
                break;
            }
            let releases = rows
                .iter()
                .map(|r| Release {
                    row: r.row,
                    message: None,
                    skip: Some((
                        "end_by".into(),
                        "the campaign's end_by passed before its turn".into(),
                    )),
                })
                .collect();
            if gw.store.release_recipients(&c.id, releases).await? == 0
                && gw
                    .store
                    .pending_recipients(&c.id, 1)
                    .await?
                    .first()
                    .map(|r| r.row)
                    == rows.first().map(|r| r.row)
            {
                break;
            }
        }
        return Ok(true);
    }
    if !flow.pending {
        if outstanding == 0 {
            transition(
                gw,
                &c.id,
                vec![CampaignState::Running],
                CampaignState::Finished,
                None,
                now,
            )
            .await?;
            lock(budgets).remove(&c.id);
            gw.changed();
        }
        return Ok(false);
    }
    // Pacing: the platform holds this template's first messages; release nothing more until
    // they are released or dropped.
    if flow.held > 0 {
        return Ok(false);
    }
    let rate = (gw.cfg.rate().rate * spec.share(&gw.cfg.campaigns)).max(0.1);
    let window = (rate * 2.0).ceil().max(1.0);
    let allowed = {
        let mut b = lock(budgets);
        let budget = b.entry(c.id.clone()).or_insert(Budget {
            tokens: rate.min(window),
            at: Instant::now(),
        });
        let elapsed = budget.at.elapsed().as_secs_f64();
        budget.at = Instant::now();
        budget.tokens = (budget.tokens + elapsed * rate).min(window);
        let room = (window - in_flight as f64).max(0.0);
        let take = budget
            .tokens
            .min(room)
            .floor()
            .min(gw.cfg.campaigns.batch as f64);
        budget.tokens -= take;
        take as usize
    };
    if allowed == 0 {
        return Ok(false);
    }
    let rows = gw.store.pending_recipients(&c.id, allowed).await?;
    let mut releases = Vec::with_capacity(rows.len());
    let quiet = spec.schedule.quiet(&gw.cfg.campaigns);
    let default_zone =
        crate::quiet::zone(&gw.cfg.campaigns.time_zone).unwrap_or(chrono_tz::Tz::UTC);
    let mut deferred = 0usize;
    for r in &rows {
        let Some(body) = &r.body else {
            releases.push(Release {
                row: r.row,
                message: None,
                skip: Some((
                    "invalid_message".into(),
                    "no message was built for this row".into(),
                )),
            });
            continue;
        };
        let mut value: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let hash = format!("{}:{}", c.id, r.row);
        match crate::enqueue::prepare(gw, &mut value, None, Some(&hash)).await {
            Ok(Prepared { mut message, .. }) => {
                if let Some(window) = quiet
                    && let Some(at) = quiet_until(r, window, default_zone, message.not_before)
                {
                    // Inside the recipient's quiet hours: it starts when they end, with its
                    // whole time-to-live from then.
                    message.deadline = message.deadline.saturating_add(at - message.not_before);
                    message.not_before = at;
                    deferred += 1;
                }
                if let Some(end) = spec.schedule.end_by {
                    message.deadline = message.deadline.min(end);
                    if message.not_before >= message.deadline {
                        releases.push(Release {
                            row: r.row,
                            message: None,
                            skip: Some(("end_by".into(), "the campaign's end_by passed".into())),
                        });
                        continue;
                    }
                }
                if message.state != crate::model::MessageState::Queued {
                    releases.push(Release {
                        row: r.row,
                        message: None,
                        skip: Some(("suppressed".into(), message.reason.unwrap_or_default())),
                    });
                    continue;
                }
                releases.push(Release {
                    row: r.row,
                    message: Some(message),
                    skip: None,
                });
            }
            Err(e) if e.code == Code::Unavailable => return Err(e),
            Err(e) => releases.push(Release {
                row: r.row,
                message: None,
                skip: Some((reason_of(e.code).into(), e.details)),
            }),
        }
    }
    let released = gw.store.release_recipients(&c.id, releases).await?;
    if deferred > 0 {
        // A message waiting for the morning uses none of the campaign's rate now.
        let mut b = lock(budgets);
        if let Some(budget) = b.get_mut(&c.id) {
            budget.tokens = (budget.tokens + deferred as f64).min(window);
        }
    }
    if released > 0 {
        gw.wake_dispatch.notify_one();
    }
    gw.changed();
    Ok(true)
}

/// The end of the recipient's quiet hours when `at` falls inside them (their zone: the row's
/// `time_zone` column, their number's country, or the default).
fn quiet_until(
    r: &RecipientRecord,
    window: crate::quiet::Window,
    default_zone: chrono_tz::Tz,
    at: Millis,
) -> Option<Millis> {
    let column = if r.columns.contains("time_zone") {
        serde_json::from_str::<Value>(&r.columns)
            .ok()
            .and_then(|c| c["time_zone"].as_str().map(str::to_string))
    } else {
        None
    };
    let tz = crate::quiet::zone_of(&r.recipient, column.as_deref(), default_zone);
    crate::quiet::wait_until(at, tz, window)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_rendered_and_a_missing_one_is_named() {
        let mut row = Map::new();
        row.insert("first_name".into(), json!("Ana"));
        let c = json!([{ "type": "body", "parameters": [{ "type": "text", "text": "Hi {{first_name}} {{1}}" }] }]);
        let out = render(&c, &row).unwrap();
        assert_eq!(out[0]["parameters"][0]["text"], "Hi Ana {{1}}");
        let c = json!([{ "type": "body", "parameters": [{ "type": "text", "text": "{{city}}" }] }]);
        assert_eq!(render(&c, &row).unwrap_err(), "city");
    }
}
