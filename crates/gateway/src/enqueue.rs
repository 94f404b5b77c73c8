//! Accepting a message into the outbox: the body is validated with `wire` (no field the gateway
//! does not know; a template message against its cached definition), the envelope fields are
//! read, and the policy gates run (consent, 24-hour window, template cache, US marketing block).
//! The row is durable before the caller gets its `202`. An `Idempotency-Key` returns the first
//! answer for the same request and `409` for another.

use crate::error::{AppError, Code};
use crate::gateway::Gateway;
use crate::model::{Category, ConsentStatus, Lane, MessageState};
use crate::store::{Enqueued, MessageRecord, NewMessage, Store, TemplateRef};
use mynah_wire::message::{BodyFlavor, Content, Request, parse_request};
use serde::Serialize;
use serde_json::{Map, Value};

/// What `POST /v1/messages` answers.
#[derive(Debug, Clone, Serialize)]
pub struct Accepted {
    /// The gateway's message id.
    pub id: String,
    /// Its state (`queued`, or `suppressed` when a gate stopped it).
    pub state: MessageState,
    /// The platform's id, once known.
    pub wamid: Option<String>,
    /// Why it was suppressed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl From<&MessageRecord> for Accepted {
    fn from(r: &MessageRecord) -> Self {
        Accepted {
            id: r.id.clone(),
            state: r.state,
            wamid: r.wamid.clone(),
            reason: r.reason.clone(),
        }
    }
}

/// The envelope fields an app may add to a platform body.
pub const ENVELOPE_FIELDS: &[&str] = &[
    "category",
    "ttl_seconds",
    "not_before",
    "lane",
    "metadata",
    "phone_number_id",
    "sequence",
];

/// The longest `ttl_seconds`: 30 days, the longest the platform keeps an undelivered message.
pub const MAX_TTL_SECONDS: i64 = 30 * 24 * 3_600;

/// The longest `Idempotency-Key` accepted.
pub const MAX_KEY_LEN: usize = 255;

/// Reads an `Idempotency-Key` header value: 1 to [`MAX_KEY_LEN`] printable ASCII characters
/// (surrounding spaces trimmed).
pub fn idempotency_key(raw: Option<&[u8]>) -> Result<Option<String>, AppError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let bad = |why: &str| {
        AppError::new(
            Code::InvalidParameter,
            format!("Idempotency-Key {why}: use 1 to {MAX_KEY_LEN} printable ASCII characters"),
        )
    };
    if !raw.iter().all(|b| (0x20..0x7f).contains(b)) {
        return Err(bad("has characters that are not printable ASCII"));
    }
    let key = String::from_utf8_lossy(raw).trim().to_string();
    if key.is_empty() {
        return Err(bad("is empty"));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(bad(&format!("is {} characters long", key.len())));
    }
    Ok(Some(key))
}

/// Refuses a top-level field that is neither the platform's nor an envelope field, naming the
/// closest known one.
fn check_fields(obj: &Map<String, Value>) -> Result<(), AppError> {
    let known = mynah_wire::message::REQUEST_FIELDS
        .iter()
        .chain(ENVELOPE_FIELDS)
        .copied();
    for field in obj.keys() {
        if known.clone().any(|k| k == field) {
            continue;
        }
        let nearest = known
            .clone()
            .map(|k| (strsim::damerau_levenshtein(field, k), k))
            .min()
            .filter(|(d, _)| *d <= 2.max(field.len() / 3));
        let hint = match nearest {
            Some((_, k)) => format!("did you mean `{k}`?"),
            None => format!(
                "the gateway takes the platform's message fields and its envelope fields ({})",
                ENVELOPE_FIELDS.join(", ")
            ),
        };
        return Err(AppError::new(
            Code::UnknownField,
            format!("unknown field `{field}`: {hint}"),
        ));
    }
    Ok(())
}

/// The request's fingerprint for idempotency: SHA-256 of its JSON with keys sorted (spacing and
/// key order do not matter).
fn request_hash(v: &Value) -> String {
    use sha2::{Digest, Sha256};
    fn canonical(v: &Value, out: &mut String) {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    canonical(&m[k], out);
                }
                out.push('}');
            }
            Value::Array(a) => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    canonical(x, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut text = String::with_capacity(256);
    canonical(v, &mut text);
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The envelope fields an app may add to a platform body.
#[derive(Debug, Default)]
struct Envelope {
    category: Option<Category>,
    ttl_seconds: Option<i64>,
    not_before: Option<i64>,
    lane: Option<Lane>,
    metadata: Option<Value>,
    sequence: Option<crate::model::SequenceStep>,
}

/// The longest sequence key.
pub const MAX_SEQUENCE_KEY: usize = 128;

/// Reads `sequence`: a key, or `{key, wait, timeout_seconds, on_timeout, on_failure}` (what is
/// left out comes from the `[sequences]` configuration).
fn sequence(
    v: Value,
    defaults: &crate::config::Sequences,
) -> Result<crate::model::SequenceStep, AppError> {
    use crate::model::SequenceStep;
    let bad = |why: String| AppError::new(Code::InvalidEnvelope, format!("sequence {why}"));
    let key_of = |k: &Value| -> Result<String, AppError> {
        match k.as_str().map(str::trim) {
            Some(k) if !k.is_empty() && k.len() <= MAX_SEQUENCE_KEY => Ok(k.to_string()),
            _ => Err(bad(format!(
                "key must be a string of 1 to {MAX_SEQUENCE_KEY} characters"
            ))),
        }
    };
    let mut step = SequenceStep {
        key: String::new(),
        wait: defaults.wait,
        timeout_ms: defaults.timeout_ms,
        on_timeout: defaults.on_timeout,
        on_failure: defaults.on_failure,
    };
    match v {
        Value::String(_) => step.key = key_of(&v)?,
        Value::Object(mut o) => {
            step.key = key_of(o.get("key").unwrap_or(&Value::Null))?;
            o.remove("key");
            let field = |name: &str, v: Value| -> Result<Value, AppError> {
                if v.is_string() || v.is_number() {
                    Ok(v)
                } else {
                    Err(bad(format!("{name} has the wrong type")))
                }
            };
            for (name, v) in o {
                let v = field(&name, v)?;
                match name.as_str() {
                    "wait" => {
                        step.wait = serde_json::from_value(v)
                            .map_err(|_| bad("wait must be delivered or read".into()))?
                    }
                    "on_timeout" => {
                        step.on_timeout = serde_json::from_value(v).map_err(|_| {
                            bad("on_timeout must be send_anyway or fail_rest".into())
                        })?
                    }
                    "on_failure" => {
                        step.on_failure = serde_json::from_value(v)
                            .map_err(|_| bad("on_failure must be stop or continue".into()))?
                    }
                    "timeout_seconds" => {
                        let n = v
                            .as_i64()
                            .filter(|n| (1..=MAX_TTL_SECONDS).contains(n))
                            .ok_or_else(|| {
                                bad(format!("timeout_seconds must be 1 to {MAX_TTL_SECONDS}"))
                            })?;
                        step.timeout_ms = n * 1_000;
                    }
                    other => {
                        return Err(bad(format!(
                            "has no field {other:?} (key, wait, timeout_seconds, on_timeout, on_failure)"
                        )));
                    }
                }
            }
        }
        _ => {
            return Err(bad(
                "must be a key (a string) or an object {key, wait, timeout_seconds, on_timeout, on_failure}"
                    .into(),
            ));
        }
    }
    Ok(step)
}

fn take_envelope(
    obj: &mut Map<String, Value>,
    defaults: &crate::config::Sequences,
) -> Result<Envelope, AppError> {
    let bad = |field: &str, want: &str| {
        AppError::new(Code::InvalidEnvelope, format!("{field} must be {want}"))
    };
    let mut env = Envelope::default();
    if let Some(v) = obj.remove("category") {
        let s = v.as_str().ok_or_else(|| bad("category", "a string"))?;
        env.category = Some(
            Category::parse(&s.to_ascii_lowercase())
                .ok_or_else(|| bad("category", "marketing, utility, authentication or service"))?,
        );
    }
    if let Some(v) = obj.remove("ttl_seconds") {
        let n = v
            .as_i64()
            .filter(|n| (1..=MAX_TTL_SECONDS).contains(n))
            .ok_or_else(|| {
                bad(
                    "ttl_seconds",
                    &format!("a whole number of seconds from 1 to {MAX_TTL_SECONDS} (30 days, the longest the platform keeps a message)"),
                )
            })?;
        env.ttl_seconds = Some(n);
    }
    if let Some(v) = obj.remove("not_before") {
        env.not_before = Some(
            v.as_i64()
                .filter(|t| *t >= crate::consent::EARLIEST_AT)
                .ok_or_else(|| bad("not_before", "unix milliseconds (an integer after 2009)"))?,
        );
    }
    if let Some(v) = obj.remove("lane") {
        let s = v.as_str().ok_or_else(|| bad("lane", "a string"))?;
        env.lane = Some(Lane::parse(s).ok_or_else(|| bad("lane", "transactional or bulk"))?);
    }
    if let Some(v) = obj.remove("metadata") {
        env.metadata = Some(v);
    }
    if let Some(v) = obj.remove("sequence") {
        env.sequence = Some(sequence(v, defaults)?);
    }
    // The gateway sends for its one number; a phone number id in the body is only checked.
    obj.remove("phone_number_id");
    Ok(env)
}

/// A fresh message id: time-ordered, random tail.
fn new_id(now: i64) -> String {
    format!("msg_{:011x}{:016x}", now.max(0), rand::random::<u64>())
}

/// Validates, gates and stores one message. With an idempotency key already used, the first
/// answer comes back for the same request (even if a gate would refuse it now) and
/// `idempotency_conflict` for another.
pub async fn enqueue<S: Store + Clone>(
    gw: &Gateway<S>,
    body: &[u8],
    idempotency_key: Option<String>,
) -> Result<Accepted, AppError> {
    let mut value: Value = serde_json::from_slice(body)
        .map_err(|e| AppError::new(Code::InvalidBody, format!("not JSON: {e}")))?;
    // Only a keyed request can be replayed, so only its fingerprint is ever compared.
    let hash = idempotency_key.is_some().then(|| request_hash(&value));
    let result = admit(gw, &mut value, idempotency_key.clone(), hash.as_deref()).await;
    match (result, idempotency_key) {
        (Err(e), Some(key)) if e.code.http() == 422 => {
            match gw.store.by_idempotency_key(&key).await? {
                Some(first) => replay(&first, &key, hash.as_deref()),
                None => Err(e),
            }
        }
        (result, _) => result,
    }
}

/// The first answer for a reused key, or the conflict.
fn replay(first: &MessageRecord, key: &str, hash: Option<&str>) -> Result<Accepted, AppError> {
    match (first.request_hash.as_deref(), hash) {
        (Some(h), Some(now)) if h != now => Err(AppError::new(
            Code::IdempotencyConflict,
            format!(
                "Idempotency-Key {key:?} made message {} at {} with a different request; send a new message with a new key",
                first.id,
                crate::events::rfc3339(first.created_at)
            ),
        )),
        // The same request (or a row from before requests were fingerprinted): the first answer.
        _ => Ok(Accepted::from(first)),
    }
}

/// A message that passed validation and the gates, ready for the outbox.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The outbox row.
    pub message: NewMessage,
    /// Its template (name, language) is paused: park its messages once the row is stored.
    pub park: Option<(String, String)>,
}

async fn admit<S: Store + Clone>(
    gw: &Gateway<S>,
    value: &mut Value,
    idempotency_key: Option<String>,
    hash: Option<&str>,
) -> Result<Accepted, AppError> {
    let now = gw.now();
    let Prepared { message: msg, park } = prepare(gw, value, idempotency_key, hash).await?;
    let answer = match gw.store.enqueue(vec![msg.clone()]).await?.pop() {
        Some(Enqueued::Existing(first)) => {
            let key = first.idempotency_key.clone().unwrap_or_default();
            return replay(&first, &key, hash);
        }
        Some(Enqueued::Inserted { id }) => Accepted {
            id,
            state: msg.state,
            wamid: None,
            reason: msg.reason.clone(),
        },
        None => {
            return Err(AppError::new(
                Code::Unavailable,
                "the store returned nothing",
            ));
        }
    };
    if let Some((name, language)) = park {
        gw.store.park_template(&name, Some(&language), now).await?;
    }
    gw.changed();
    gw.wake_dispatch.notify_one();
    Ok(answer)
}

/// Validates a message body (a JSON object: the platform's fields and the envelope's) and runs
/// the gates, without storing anything: the outbox row `POST /v1/messages` would write (its
/// state `suppressed` when a gate stopped it), or the error it would answer. `hash` is kept
/// with the row as its `request_hash`.
pub async fn prepare<S: Store + Clone>(
    gw: &Gateway<S>,
    value: &mut Value,
    idempotency_key: Option<String>,
    hash: Option<&str>,
) -> Result<Prepared, AppError> {
    prepare_with(gw, value, idempotency_key, hash, true).await
}

/// [`prepare`] of a message without a key, with the consent gate left to the caller when
/// `consent` is false (a campaign reads the consents of a whole batch at once).
pub async fn prepare_gated<S: Store + Clone>(
    gw: &Gateway<S>,
    value: &mut Value,
    consent: bool,
) -> Result<Prepared, AppError> {
    prepare_with(gw, value, None, None, consent).await
}

async fn prepare_with<S: Store + Clone>(
    gw: &Gateway<S>,
    value: &mut Value,
    idempotency_key: Option<String>,
    hash: Option<&str>,
    consent: bool,
) -> Result<Prepared, AppError> {
    let now = gw.now();
    let obj = value
        .as_object_mut()
        .ok_or_else(|| AppError::new(Code::InvalidBody, "the body must be a JSON object"))?;
    check_fields(obj)?;
    let env = take_envelope(obj, &gw.cfg.sequences)?;
    obj.entry("messaging_product")
        .or_insert_with(|| Value::String("whatsapp".into()));
    // A business-scoped user id belongs in `recipient`: in `to` the platform takes it for a
    // phone number (and drops the message).
    if !obj.contains_key("recipient")
        && let Some(Value::String(to)) = obj.get("to")
        && mynah_wire::UserId::well_formed(to.trim())
    {
        let id = to.trim().to_string();
        obj.remove("to");
        obj.insert("recipient".into(), Value::String(id));
    }
    let id = new_id(now);
    // Statuses echo biz_opaque_callback_data: it carries our id, so a status can be matched even
    // before (or without) the send response. The app's own value moves into the metadata.
    let mut metadata = env.metadata;
    if let Some(app_value) =
        obj.insert("biz_opaque_callback_data".into(), Value::String(id.clone()))
    {
        let m = metadata.get_or_insert_with(|| Value::Object(Map::new()));
        if let Some(m) = m.as_object_mut() {
            m.insert("biz_opaque_callback_data".into(), app_value);
        }
    }
    let bytes =
        serde_json::to_vec(value).map_err(|e| AppError::new(Code::InvalidBody, e.to_string()))?;
    let send = match parse_request(&bytes, BodyFlavor::Cloud) {
        Ok(Request::Send(s)) => s,
        Ok(_) => {
            return Err(AppError::new(
                Code::InvalidBody,
                "mark-as-read requests are not messages; send them to the platform directly",
            ));
        }
        Err(e) => {
            return Err(AppError::new(
                Code::InvalidBody,
                format!("({}) {}", e.code.code(), e.details),
            ));
        }
    };
    let to = send.to.as_str().to_string();
    let pnid = gw.phone_number_id().to_string();
    let mut state = MessageState::Queued;
    let mut reason = None;
    let mut park = None;
    let (category, template) = match &send.content {
        Content::Template(t) => {
            let mut head = gw
                .template_heads
                .get(&gw.store, &t.name, &t.language)
                .await?;
            // Not in the cache: it may be new, or the start's sync may not have finished.
            let synced = head.is_none() && crate::templates::sync_on_demand(gw).await;
            if synced {
                head = gw
                    .template_heads
                    .get(&gw.store, &t.name, &t.language)
                    .await?;
            }
            if let Some(def) = head.as_ref().and_then(|h| h.definition.as_ref())
                && gw.cfg.gates.template_parameters
                && let Err(e) = def.check_send(t)
            {
                return Err(AppError::new(
                    Code::TemplateMismatch,
                    format!(
                        "template {} ({}): ({}) {}; the platform would refuse it",
                        t.name,
                        t.language,
                        e.code.code(),
                        e.details
                    ),
                ));
            }
            let cached = head.map(|h| (h.category, h.status));
            let category = match &cached {
                Some((category, _)) => *category,
                None if gw.cfg.gates.template => {
                    return Err(AppError::new(
                        Code::TemplateUnknown,
                        if synced {
                            format!(
                                "template {} ({}) is not among the platform's templates (the cache was synced just now); check its name and language",
                                t.name, t.language
                            )
                        } else {
                            format!(
                                "template {} ({}) is not in the template cache (synced less than {} s ago; POST /v1/templates/sync reads it again)",
                                t.name,
                                t.language,
                                crate::templates::ON_DEMAND_SYNC_MS / 1_000
                            )
                        },
                    ));
                }
                None => env.category.unwrap_or(Category::Utility),
            };
            if let (Some((_, status)), true) = (&cached, gw.cfg.gates.template) {
                let is = |word: &str| status.eq_ignore_ascii_case(word);
                if is("PAUSED") {
                    park = Some((t.name.clone(), t.language.clone()));
                } else if !is("APPROVED") && !is("ACTIVE") {
                    return Err(AppError::new(
                        Code::TemplateInactive,
                        format!(
                            "template {} ({}) is {}",
                            t.name,
                            t.language,
                            status.to_ascii_uppercase()
                        ),
                    ));
                }
            }
            (
                category,
                Some(TemplateRef {
                    name: t.name.clone(),
                    language: t.language.clone(),
                }),
            )
        }
        _ => (env.category.unwrap_or(Category::Service), None),
    };
    let ttl_ms = match env.ttl_seconds {
        Some(s) => s.saturating_mul(1_000),
        None if category == Category::Authentication => gw.cfg.auth_ttl_ms,
        None => gw.cfg.default_ttl_ms,
    };
    // The time-to-live runs from now: a message that may not go before its time-to-live ends
    // would only ever expire.
    let deadline = now.saturating_add(ttl_ms);
    let not_before = env.not_before.unwrap_or(now);
    if not_before >= deadline {
        return Err(AppError::new(
            Code::InvalidEnvelope,
            format!(
                "not_before ({}) is at or after the end of the message's time-to-live ({}, {} s from now): raise ttl_seconds or send it sooner",
                crate::events::rfc3339(not_before),
                crate::events::rfc3339(deadline),
                ttl_ms / 1_000
            ),
        ));
    }
    if template.is_some() && gw.cfg.gates.consent && consent {
        check_consent(gw, &to, category).await?;
    }
    if template.is_none() && gw.cfg.gates.window {
        let last = gw.store.last_inbound(&pnid, &to).await?;
        let open = last.is_some_and(|t| now - t < 24 * 3_600_000);
        if !open {
            return Err(AppError::new(
                Code::WindowClosed,
                match last {
                    Some(t) => format!(
                        "{to} last wrote {} h ago; send a template instead",
                        (now - t) / 3_600_000
                    ),
                    None => format!("{to} never wrote to this number; send a template instead"),
                },
            ));
        }
    }
    if category == Category::Marketing
        && template.is_some()
        && gw.cfg.gates.us_marketing
        && crate::people::is_us(gw, &to).await?
    {
        state = MessageState::Suppressed;
        reason = Some(match send.to.phone() {
            Some(phone) => format!(
                "marketing templates are not delivered to United States numbers (+1 with a US area code; {}): the platform would fail it with 131049",
                phone.region().unwrap_or_else(|| "US".to_string())
            ),
            None => format!(
                "marketing templates are not delivered to users in the United States ({to} is one): the platform would fail it with 131049"
            ),
        });
    }
    let msg = NewMessage {
        id,
        idempotency_key,
        request_hash: hash.map(str::to_string),
        person: None,
        sequence: env.sequence,
        phone_number_id: pnid,
        to,
        category,
        template,
        lane: env.lane.unwrap_or(match category {
            Category::Marketing => Lane::Bulk,
            _ => Lane::Transactional,
        }),
        body: String::from_utf8(bytes).unwrap_or_default(),
        metadata: metadata.map(|m| m.to_string()),
        state,
        reason,
        not_before,
        deadline,
        created_at: now,
    };
    Ok(Prepared { message: msg, park })
}

/// The consent gate: the recipient's current opt-in for `category`.
async fn check_consent<S: Store + Clone>(
    gw: &Gateway<S>,
    to: &str,
    category: Category,
) -> Result<(), AppError> {
    let consents = gw.store.consents(to).await?;
    match consents.iter().find(|c| c.category == category) {
        Some(c) if c.status == ConsentStatus::OptedIn => Ok(()),
        Some(c) => Err(AppError::new(
            Code::ConsentMissing,
            format!(
                "{to} opted out of {category} messages (source {}, at {} ms)",
                c.source, c.at
            ),
        )),
        None => Err(AppError::new(
            Code::ConsentMissing,
            format!(
                "{to} has no opt-in for {category} messages; record one with PUT /v1/contacts/{to}/consents/{category}"
            ),
        )),
    }
}
