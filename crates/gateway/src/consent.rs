//! The consent registry: its input (one consent from the API, or many from a CSV or JSON
//! import) and the withdrawals the platform or the user make ([`withdraw_marketing`]).

use crate::clock::Millis;
use crate::gateway::Gateway;
use crate::model::{Category, ConsentStatus};
use crate::store::{Consent, Store};
use serde::{Deserialize, Serialize};

/// Body of `PUT /v1/contacts/{wa_id}/consents/{category}` (and one JSON import row, with
/// `wa_id` and `category`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentInput {
    /// The contact (import rows only).
    #[serde(default)]
    pub wa_id: Option<String>,
    /// The category (import rows only).
    #[serde(default)]
    pub category: Option<String>,
    /// `opted_in` or `opted_out`.
    pub status: String,
    /// Who recorded it (a form, a checkout, a call …).
    #[serde(default)]
    pub source: Option<String>,
    /// Proof (text or JSON).
    #[serde(default)]
    pub evidence: Option<serde_json::Value>,
    /// When the contact gave or withdrew it (unix ms); now when absent.
    #[serde(default)]
    pub at: Option<Millis>,
}

/// A refused import row.
#[derive(Debug, Clone, Serialize)]
pub struct RowError {
    /// 1-based line (CSV, header = 1) or array index + 1 (JSON).
    pub line: usize,
    /// Why.
    pub message: String,
}

/// Builds a consent from its parts, checking each.
pub fn build(
    wa_id: &str,
    category: &str,
    input: &ConsentInput,
    now: Millis,
) -> Result<Consent, String> {
    let wa = crate::people::parse_contact_id(wa_id).map_err(|e| e.details)?;
    let category = Category::parse(&category.trim().to_ascii_lowercase()).ok_or_else(|| {
        format!("{category:?} is not a category (marketing, utility, authentication, service)")
    })?;
    let status =
        ConsentStatus::parse(&input.status.trim().to_ascii_lowercase()).ok_or_else(|| {
            format!(
                "{:?} is not a consent status (opted_in, opted_out)",
                input.status
            )
        })?;
    let at = check_at(input.at.unwrap_or(now), now)?;
    let source = input.source.clone().unwrap_or_else(|| "api".to_string());
    if source.len() > MAX_SOURCE_LEN {
        return Err(format!("source is longer than {MAX_SOURCE_LEN} bytes"));
    }
    let evidence = input.evidence.as_ref().map(|e| match e {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    });
    if evidence
        .as_ref()
        .is_some_and(|e| e.len() > MAX_EVIDENCE_LEN)
    {
        return Err(format!("evidence is longer than {MAX_EVIDENCE_LEN} bytes"));
    }
    Ok(Consent {
        wa_id: wa,
        category,
        status,
        source,
        evidence,
        at,
        recorded_at: now,
    })
}

/// The earliest consent time accepted: 2009-01-01 (a time before it is a unit mistake, seconds
/// for milliseconds).
pub const EARLIEST_AT: Millis = 1_230_768_000_000;

/// How far in the future a consent time may be (clocks differ a little).
pub const CLOCK_SKEW_MS: Millis = 5 * 60_000;

/// Longest `source` and `evidence` kept, in bytes.
pub const MAX_SOURCE_LEN: usize = 256;
/// See [`MAX_SOURCE_LEN`].
pub const MAX_EVIDENCE_LEN: usize = 16 * 1024;

/// Checks a consent time from a client: not in the future beyond [`CLOCK_SKEW_MS`], not before
/// [`EARLIEST_AT`].
pub fn check_at(at: Millis, now: Millis) -> Result<Millis, String> {
    if at > now.saturating_add(CLOCK_SKEW_MS) {
        return Err(format!(
            "at {at} is {} s in the future; a consent is recorded when it is given (unix ms, at most {} s ahead of the gateway's clock)",
            (at - now) / 1_000,
            CLOCK_SKEW_MS / 1_000
        ));
    }
    if at < EARLIEST_AT {
        return Err(format!(
            "at {at} is before 2009-01-01: give unix milliseconds (not seconds)"
        ));
    }
    Ok(at)
}

/// Parses a JSON array of consents.
pub fn parse_json(body: &[u8], now: Millis) -> Result<(Vec<Consent>, Vec<RowError>), String> {
    let rows: Vec<ConsentInput> =
        serde_json::from_slice(body).map_err(|e| format!("not a JSON array of consents: {e}"))?;
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let built = match (&r.wa_id, &r.category) {
            (Some(w), Some(c)) => build(w, c, r, now),
            _ => Err("wa_id and category are required".to_string()),
        };
        match built {
            Ok(c) => ok.push(c),
            Err(message) => errors.push(RowError {
                line: i + 1,
                message,
            }),
        }
    }
    Ok((ok, errors))
}

/// Parses CSV with a header row naming `wa_id,category,status` and optionally `source`,
/// `evidence`, `at` (any order). Quoted fields may contain commas and doubled quotes.
pub fn parse_csv(body: &[u8], now: Millis) -> Result<(Vec<Consent>, Vec<RowError>), String> {
    let text = std::str::from_utf8(body).map_err(|_| "the CSV is not UTF-8".to_string())?;
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines.next().ok_or("the CSV is empty")?;
    let names: Vec<String> = split_csv(header)
        .into_iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    let col = |n: &str| names.iter().position(|h| h == n);
    let (Some(w), Some(c), Some(s)) = (col("wa_id"), col("category"), col("status")) else {
        return Err("the header must name wa_id, category and status".to_string());
    };
    let (src, ev, at) = (col("source"), col("evidence"), col("at"));
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    for (i, line) in lines {
        let f = split_csv(line);
        let get = |k: Option<usize>| k.and_then(|k| f.get(k)).map(|v| v.trim().to_string());
        let at_value = match get(at).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v
                .parse::<Millis>()
                .map(Some)
                .map_err(|_| format!("at {v:?} is not unix ms")),
        };
        let built = at_value.and_then(|at| {
            let input = ConsentInput {
                wa_id: None,
                category: None,
                status: get(Some(s)).unwrap_or_default(),
                source: get(src).filter(|v| !v.is_empty()),
                evidence: get(ev)
                    .filter(|v| !v.is_empty())
                    .map(serde_json::Value::String),
                at,
            };
            build(
                &get(Some(w)).unwrap_or_default(),
                &get(Some(c)).unwrap_or_default(),
                &input,
                now,
            )
        });
        match built {
            Ok(c) => ok.push(c),
            Err(message) => errors.push(RowError {
                line: i + 1,
                message,
            }),
        }
    }
    Ok((ok, errors))
}

/// Splits one CSV line (RFC 4180 quoting, no embedded newlines).
fn split_csv(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(ch) = chars.next() {
        match (ch, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// Records a marketing opt-out that the platform reported (131050, `user_preferences`) or the
/// user sent (an opt-out keyword).
pub async fn withdraw_marketing<S: Store + Clone>(
    gw: &Gateway<S>,
    wa_id: &str,
    at: Millis,
    source: &str,
) {
    let change = Consent {
        wa_id: wa_id.to_string(),
        category: Category::Marketing,
        status: ConsentStatus::OptedOut,
        source: source.to_string(),
        evidence: None,
        at,
        recorded_at: gw.now(),
    };
    match gw.store.put_consents(vec![change]).await {
        Ok(_) => tracing::info!(wa_id, source, "marketing consent withdrawn"),
        Err(e) => tracing::error!(error = %e, wa_id, "recording an opt-out failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = 1_750_000_000_000;

    #[test]
    fn consent_times_are_bounded_and_texts_too() {
        assert_eq!(check_at(NOW + CLOCK_SKEW_MS, NOW), Ok(NOW + CLOCK_SKEW_MS));
        assert!(check_at(NOW + CLOCK_SKEW_MS + 1, NOW).is_err());
        assert!(check_at(EARLIEST_AT - 1, NOW).is_err());
        assert!(check_at(i64::MAX, NOW).is_err() && check_at(i64::MIN, NOW).is_err());
        let long = ConsentInput {
            wa_id: None,
            category: None,
            status: "opted_in".into(),
            source: Some("x".repeat(MAX_SOURCE_LEN + 1)),
            evidence: None,
            at: None,
        };
        assert!(build("4915112345678", "marketing", &long, NOW).is_err());
    }

    #[test]
    fn csv_rows_and_errors() {
        let csv = b"wa_id,category,status,source,evidence,at\n+49 151 1234 5678,marketing,opted_in,form,\"checkbox, page 2\",1700000000000\n4915112345679,newsletter,opted_in,,,\n4915112345670,marketing,opted_in,,,1800000000000\n4915112345671,marketing,opted_in,,,1700000000\n";
        let (ok, errors) = parse_csv(csv, NOW).unwrap();
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].wa_id, "4915112345678");
        assert_eq!(ok[0].evidence.as_deref(), Some("checkbox, page 2"));
        assert_eq!((ok[0].at, ok[0].recorded_at), (1_700_000_000_000, NOW));
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [3, 4, 5]);
        assert!(
            errors[1].message.contains("in the future"),
            "{:?}",
            errors[1]
        );
        assert!(
            errors[2].message.contains("milliseconds"),
            "{:?}",
            errors[2]
        );
        assert!(parse_csv(b"phone,status\n", 0).is_err());
    }

    #[test]
    fn json_rows() {
        let body = br#"[{"wa_id":"4915112345678","category":"utility","status":"opted_out"},{"status":"opted_in"}]"#;
        let (ok, errors) = parse_json(body, NOW).unwrap();
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].status, ConsentStatus::OptedOut);
        assert_eq!(ok[0].at, NOW);
        assert_eq!(errors[0].line, 2);
    }
}
