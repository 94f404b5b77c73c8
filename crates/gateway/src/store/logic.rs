//! The store's operations in SQL, shared by the SQLite and PostgreSQL backends.
//!
//! Each operation is a plain function over a connection inside the caller's transaction. The
//! file is compiled once per backend (`#[path]` modules of `sqlite.rs` and `postgres.rs`): the
//! parent module supplies `Connection`, `Row`, `params!`, `Value`, `OptionalExtension` and the
//! `sql` error types — rusqlite's own for SQLite, a thin layer over the `postgres` crate with
//! the same surface for PostgreSQL, which turns `?N` placeholders into `$N`. The SQL is
//! written in the dialect both accept (`ON CONFLICT`, `RETURNING`, `IS DISTINCT FROM`, partial
//! indexes, `CASE` rather than two-argument `max`); the comment `/* FOR UPDATE SKIP LOCKED */` in
//! a claim's row choice is SQL there on PostgreSQL (several instances claim side by side).

use super::*;
use crate::store::message_scoped_key;
use std::collections::{HashMap, HashSet};

pub(super) fn json_text(v: &serde_json::Value) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Invalid(format!("event detail: {e}")))
}

pub(super) fn i64_of(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

// ---------------------------------------------------------------------------------------------
// Messages

/// The message columns, in the order [`record`] reads them.
macro_rules! columns {
    () => {
        "seq, id, idempotency_key, phone_number_id, recipient, category, template_name, \
         template_language, lane, body, metadata, state, reason, parked_reason, wamid, attempts, \
         next_attempt_at, not_before, deadline, lease_until, last_error_code, last_error, \
         created_at, updated_at, accepted_at, sent_at, delivered_at, read_at, failed_at, \
         request_hash, person, sequence_rule, sequence_prev"
    };
}

pub(super) fn record(r: &Row<'_>) -> sql::Result<MessageRecord> {
    let name: Option<String> = r.get(6)?;
    let language: Option<String> = r.get(7)?;
    Ok(MessageRecord {
        seq: r.get(0)?,
        id: r.get(1)?,
        idempotency_key: r.get(2)?,
        phone_number_id: r.get(3)?,
        to: r.get(4)?,
        category: r.get(5)?,
        template: name.map(|name| TemplateRef {
            name,
            language: language.unwrap_or_default(),
        }),
        lane: r.get(8)?,
        body: r.get(9)?,
        metadata: r.get(10)?,
        state: r.get(11)?,
        reason: r.get(12)?,
        parked_reason: r.get(13)?,
        wamid: r.get(14)?,
        attempts: r.get(15)?,
        next_attempt_at: r.get(16)?,
        not_before: r.get(17)?,
        deadline: r.get(18)?,
        lease_until: r.get(19)?,
        last_error_code: r.get(20)?,
        last_error: r.get(21)?,
        created_at: r.get(22)?,
        updated_at: r.get(23)?,
        accepted_at: r.get(24)?,
        sent_at: r.get(25)?,
        delivered_at: r.get(26)?,
        read_at: r.get(27)?,
        failed_at: r.get(28)?,
        request_hash: r.get(29)?,
        person: r.get(30)?,
        sequence: r
            .get::<_, Option<String>>(31)?
            .and_then(|rule| serde_json::from_str(&rule).ok()),
        sequence_prev: r.get(32)?,
    })
}

pub(super) fn records(
    conn: &Connection,
    sql: &str,
    args: impl sql::Params,
) -> Result<Vec<MessageRecord>, StoreError> {
    let mut st = conn.prepare_cached(sql)?;
    let rows = st.query_map(args, record)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

pub(super) fn one_record(
    conn: &Connection,
    sql: &str,
    key: &str,
) -> Result<Option<MessageRecord>, StoreError> {
    Ok(conn
        .prepare_cached(sql)?
        .query_row([key], record)
        .optional()?)
}

pub(super) const BY_ID: &str = concat!("SELECT ", columns!(), " FROM messages WHERE id = ?1");
pub(super) const BY_IDEMPOTENCY_KEY: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM messages WHERE idempotency_key = ?1"
);
pub(super) const BY_WAMID: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM messages WHERE wamid = ?1 ORDER BY seq DESC LIMIT 1"
);

pub(super) const INSERT_MESSAGE: &str = "INSERT INTO messages (id, idempotency_key, phone_number_id, \
     recipient, category, template_name, template_language, lane, body, metadata, state, reason, \
     next_attempt_at, not_before, deadline, created_at, updated_at, request_hash, person, \
     sequence_key, sequence_rule) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13, ?14, ?15, ?15, ?16, \
     ?17, ?18, ?19) \
     ON CONFLICT DO NOTHING";

pub(super) fn enqueue(
    conn: &Connection,
    messages: &[NewMessage],
) -> Result<Vec<Enqueued>, StoreError> {
    messages.iter().map(|m| enqueue_one(conn, m)).collect()
}

pub(super) fn enqueue_one(conn: &Connection, m: &NewMessage) -> Result<Enqueued, StoreError> {
    let template = m.template.as_ref();
    // A phone nobody is linked to keeps its implicit key (no row written on the send path); a
    // BSUID nobody is known by gets a person.
    let person = match &m.person {
        Some(p) => Some(p.clone()),
        None => match key_of(conn, &m.to, None)? {
            Some(k) => Some(k),
            None => key_of(conn, &m.to, Some(m.created_at))?,
        },
    };
    let inserted = conn.prepare_cached(INSERT_MESSAGE)?.execute(params![
        m.id,
        m.idempotency_key,
        m.phone_number_id,
        m.to,
        m.category,
        template.map(|t| t.name.as_str()),
        template.map(|t| t.language.as_str()),
        m.lane,
        m.body,
        m.metadata,
        m.state,
        m.reason,
        m.not_before,
        m.deadline,
        m.created_at,
        m.request_hash,
        person,
        m.sequence.as_ref().map(|q| q.key.as_str()),
        m.sequence
            .as_ref()
            .map(|q| serde_json::to_string(q).map_err(|e| StoreError::Invalid(e.to_string())))
            .transpose()?,
    ])?;
    if inserted == 1 {
        let detail = match &m.reason {
            Some(r) => serde_json::json!({ "reason": r }),
            None => serde_json::json!({}),
        };
        let event = NewEvent::new(m.event_kind(), m.created_at, detail);
        insert_event(conn, &m.id, &event, m.state)?;
        if let Some(step) = &m.sequence
            && m.state == MessageState::Queued
        {
            place_in_sequence(conn, m, person.as_deref().unwrap_or(&m.to), step)?;
        }
        return Ok(Enqueued::Inserted { id: m.id.clone() });
    }
    existing(conn, m)?
        .map(|r| Enqueued::Existing(Box::new(r)))
        .ok_or_else(|| StoreError::Backend(format!("message {} conflicted but is absent", m.id)))
}

/// An operation over the inputs of several calls, answering each call.
type MergedOp<I, O> = fn(&Connection, &[&[I]]) -> Result<Vec<Vec<O>>, StoreError>;

/// Runs a merged job of calls (`store/coalesce.rs`) with `merged`, answering each caller after
/// the commit; if it fails, runs each call alone with `alone`, so a bad call fails by itself.
pub(super) async fn run_merged<I, O>(
    store: Backend,
    batch: std::sync::Arc<crate::store::coalesce::Batch<I, O>>,
    merged: MergedOp<I, O>,
    alone: fn(&Connection, &[I]) -> Result<Vec<O>, StoreError>,
) where
    I: Send + 'static,
    O: Send + 'static,
{
    let result = store
        .write(batch.clone(), move |conn, batch| {
            batch.with_calls(|calls| {
                let inputs: Vec<&[I]> = calls.iter().map(|c| c.input.as_slice()).collect();
                merged(conn, &inputs)
            })
        })
        .await;
    let calls = batch.take_calls();
    match result {
        Ok(outputs) if outputs.len() == calls.len() => {
            for (call, out) in calls.into_iter().zip(outputs) {
                call.answer(Ok(out));
            }
        }
        Ok(_) => {
            for call in calls {
                call.answer(Err(StoreError::Backend(
                    "a merged write answered for the wrong number of calls".into(),
                )));
            }
        }
        Err(e) if calls.len() <= 1 || e == StoreError::Closed => {
            for call in calls {
                call.answer(Err(e.clone()));
            }
        }
        Err(_) => {
            for mut call in calls {
                let input = std::mem::take(&mut call.input);
                let result = store
                    .write(input, move |conn, input: &Vec<I>| alone(conn, input))
                    .await;
                call.answer(result);
            }
        }
    }
}

/// A `NULL` parameter.
const NO_VALUE: Option<i64> = None;

/// [`enqueue`] of several calls at once (see `store/coalesce.rs`): runs of messages whose person
/// is known and that belong to no sequence, with distinct ids and idempotency keys, are inserted
/// by one statement each and their events together; a message that collides, or needs more,
/// takes [`enqueue_one`]'s path. The result is that of enqueueing each in order.
pub(super) fn enqueue_calls(
    conn: &Connection,
    calls: &[&[NewMessage]],
) -> Result<Vec<Vec<Enqueued>>, StoreError> {
    let all: Vec<&NewMessage> = calls.iter().flat_map(|c| c.iter()).collect();
    // Each message's person, as `enqueue_one` finds it without creating one (`None`: it would
    // create one, so that message takes `enqueue_one`'s path).
    let unknown: Vec<&str> = all
        .iter()
        .filter(|m| m.person.is_none())
        .map(|m| m.to.as_str())
        .collect();
    let linked = linked_many(conn, &unknown)?;
    let persons: Vec<Option<String>> = all
        .iter()
        .map(|m| match (&m.person, linked.get(&m.to)) {
            (Some(p), _) | (None, Some(p)) => Ok(Some(p.clone())),
            (None, None) => unlinked_key(conn, &m.to, None),
        })
        .collect::<Result<_, StoreError>>()?;
    let simple = |k: usize| persons[k].is_some() && all[k].sequence.is_none();
    let mut done: Vec<Option<Enqueued>> = Vec::with_capacity(all.len());
    let mut i = 0;
    while i < all.len() {
        if !simple(i) {
            done.push(Some(enqueue_one(conn, all[i])?));
            i += 1;
            continue;
        }
        // The run ends before a repeated id or idempotency key (the first message always fits:
        // both sets are empty), which then starts the next run.
        let (mut ids, mut idempotency_keys) = (HashSet::new(), HashSet::new());
        let mut j = i;
        while j < all.len()
            && simple(j)
            && ids.insert(all[j].id.as_str())
            && all[j]
                .idempotency_key
                .as_deref()
                .is_none_or(|k| idempotency_keys.insert(k))
        {
            j += 1;
        }
        let run = &all[i..j];
        let mut inserted = HashSet::with_capacity(run.len());
        for (start, len) in set_chunks(run.len()) {
            let sql = format!(
                "INSERT{OR_FAIL} INTO messages (id, idempotency_key, phone_number_id, recipient, category, \
                 template_name, template_language, lane, body, metadata, state, reason, \
                 next_attempt_at, not_before, deadline, created_at, updated_at, request_hash, \
                 person, sequence_key, sequence_rule) VALUES {} ON CONFLICT DO NOTHING RETURNING id",
                value_rows(len, &[None; 21])
            );
            let chunk = &run[start..start + len];
            let chunk_persons = &persons[i + start..i + start + len];
            let templates: Vec<(Option<&str>, Option<&str>)> = chunk
                .iter()
                .map(|m| {
                    let t = m.template.as_ref();
                    (t.map(|t| t.name.as_str()), t.map(|t| t.language.as_str()))
                })
                .collect();
            let mut args: Vec<&dyn ToSql> = Vec::with_capacity(21 * len);
            for ((m, (name, language)), person) in chunk.iter().zip(&templates).zip(chunk_persons) {
                args.extend([
                    sql_ref(&m.id),
                    sql_ref(&m.idempotency_key),
                    sql_ref(&m.phone_number_id),
                    sql_ref(&m.to),
                    sql_ref(&m.category),
                    sql_ref(name),
                    sql_ref(language),
                    sql_ref(&m.lane),
                    sql_ref(&m.body),
                    sql_ref(&m.metadata),
                    sql_ref(&m.state),
                    sql_ref(&m.reason),
                    sql_ref(&m.not_before),
                    sql_ref(&m.not_before),
                    sql_ref(&m.deadline),
                    sql_ref(&m.created_at),
                    sql_ref(&m.created_at),
                    sql_ref(&m.request_hash),
                    sql_ref(person),
                    sql_ref(&NO_VALUE),
                    sql_ref(&NO_VALUE),
                ]);
            }
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(args.as_slice())?;
            while let Some(r) = rows.next()? {
                inserted.insert(r.get::<_, String>(0)?);
            }
        }
        // Their events, as `enqueue_one` records them (a new message is in no one's sequence
        // yet, so none waits on it).
        let events: Vec<(&str, NewEvent, MessageState)> = run
            .iter()
            .filter(|m| inserted.contains(&m.id))
            .map(|m| {
                let detail = match &m.reason {
                    Some(r) => serde_json::json!({ "reason": r }),
                    None => serde_json::json!({}),
                };
                (
                    m.id.as_str(),
                    NewEvent::new(m.event_kind(), m.created_at, detail),
                    m.state,
                )
            })
            .collect();
        let refs: Vec<(&str, &NewEvent, MessageState)> = events
            .iter()
            .map(|(id, e, state)| (*id, e, *state))
            .collect();
        insert_events(conn, &refs)?;
        for m in run {
            done.push(Some(if inserted.contains(&m.id) {
                Enqueued::Inserted { id: m.id.clone() }
            } else {
                existing(conn, m)?
                    .map(|r| Enqueued::Existing(Box::new(r)))
                    .ok_or_else(|| {
                        StoreError::Backend(format!("message {} conflicted but is absent", m.id))
                    })?
            }));
        }
        i = j;
    }
    let mut flat = done.into_iter().flatten();
    Ok(calls
        .iter()
        .map(|c| flat.by_ref().take(c.len()).collect())
        .collect())
}

/// The row a conflicting insert collided with: by idempotency key, else by id.
pub(super) fn existing(
    conn: &Connection,
    m: &NewMessage,
) -> Result<Option<MessageRecord>, StoreError> {
    if let Some(key) = &m.idempotency_key
        && let Some(r) = one_record(conn, BY_IDEMPOTENCY_KEY, key)?
    {
        return Ok(Some(r));
    }
    one_record(conn, BY_ID, &m.id)
}

pub(super) const CLAIM: &str = concat!(
    "UPDATE messages SET state = 'sending', lease_until = ?1, attempts = attempts + 1, \
     updated_at = ?2 WHERE seq IN (SELECT seq FROM messages WHERE state = 'queued' \
     AND parked_reason IS NULL AND lane = ?3 AND next_attempt_at <= ?2 AND not_before <= ?2 \
     ORDER BY next_attempt_at, seq LIMIT ?4 /* FOR UPDATE SKIP LOCKED */) RETURNING ",
    columns!()
);

pub(super) fn claim(
    conn: &Connection,
    &(now, limit, lease_until): &(Millis, usize, Millis),
) -> Result<Vec<MessageRecord>, StoreError> {
    let mut out = Vec::new();
    for lane in Lane::DISPATCH_ORDER {
        let left = limit.saturating_sub(out.len());
        if left == 0 {
            break;
        }
        let mut got = records(conn, CLAIM, params![lease_until, now, lane, i64_of(left)])?;
        // RETURNING has no defined order.
        got.sort_by_key(|r| (r.next_attempt_at, r.seq));
        out.append(&mut got);
    }
    Ok(out)
}

/// Which row an update targets.
pub(super) enum RowKey<'a> {
    /// By message id.
    Id(&'a str),
    /// By insertion sequence (rowid): no index lookup.
    Seq(i64),
}

pub(super) fn sql_ref<T: ToSql>(v: &T) -> &dyn ToSql {
    v
}

/// Updates one row with `UPDATE messages SET …` naming only the columns `c` changes, so SQLite
/// touches only the indexes that depend on them; `false` if the row does not exist.
/// Applies `c` to one row; its state afterwards, or `None` when no row has that key.
pub(super) fn update_message(
    conn: &Connection,
    key: RowKey<'_>,
    c: &Change,
) -> Result<Option<MessageState>, StoreError> {
    let (code, text) = match &c.last_error {
        Some((code, text)) => (Some(code), Some(text)),
        None => (None, None),
    };
    let values: [(&str, Option<&dyn ToSql>); 10] = [
        ("wamid", c.wamid.as_ref().map(sql_ref)),
        ("next_attempt_at", c.next_attempt_at.as_ref().map(sql_ref)),
        ("body", c.body.as_ref().map(sql_ref)),
        ("accepted_at", c.accepted_at.as_ref().map(sql_ref)),
        ("sent_at", c.sent_at.as_ref().map(sql_ref)),
        ("delivered_at", c.delivered_at.as_ref().map(sql_ref)),
        ("read_at", c.read_at.as_ref().map(sql_ref)),
        ("failed_at", c.failed_at.as_ref().map(sql_ref)),
        ("last_error_code", code.map(sql_ref)),
        ("last_error", text.map(sql_ref)),
    ];
    let mut args: Vec<&dyn ToSql> = Vec::with_capacity(values.len() + 2);
    let mut sql = String::with_capacity(192);
    match &key {
        RowKey::Id(id) => args.push(id),
        RowKey::Seq(seq) => args.push(seq),
    }
    args.push(&c.at);
    sql.push_str("UPDATE messages SET updated_at = ?2");
    if let Some(state) = &c.state {
        args.push(state);
        let to = args.len();
        match &c.only_from {
            Some(from) => {
                args.push(from);
                sql.push_str(&format!(
                    ", state = CASE WHEN state = ?{} THEN ?{to} ELSE state END",
                    args.len()
                ));
            }
            None => sql.push_str(&format!(", state = ?{to}")),
        }
    }
    for (column, value) in values {
        if let Some(v) = value {
            args.push(v);
            sql.push_str(&format!(", {column} = ?{}", args.len()));
        }
    }
    if c.clear_lease {
        sql.push_str(", lease_until = NULL");
    }
    if c.clear_failure && c.failed_at.is_none() {
        sql.push_str(", failed_at = NULL");
    }
    if c.clear_failure && c.last_error.is_none() {
        sql.push_str(", last_error_code = NULL, last_error = NULL");
    }
    sql.push_str(match key {
        RowKey::Id(_) => " WHERE id = ?1 RETURNING state",
        RowKey::Seq(_) => " WHERE seq = ?1 RETURNING state",
    });
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(args.as_slice())?;
    Ok(match rows.next()? {
        Some(r) => Some(r.get(0)?),
        None => None,
    })
}

pub(super) fn apply(conn: &Connection, changes: &[Change]) -> Result<Vec<bool>, StoreError> {
    changes.iter().map(|c| apply_one(conn, c)).collect()
}

/// Which columns a change sets: alike changes are written by one statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shape {
    state: bool,
    only_from: bool,
    values: [bool; 9],
    clear_lease: bool,
    clear_failed_at: bool,
    clear_error: bool,
}

/// The value columns of a change (as in [`update_message`]), with the type each is cast to.
const CHANGE_COLUMNS: [(&str, &str); 9] = [
    ("wamid", "TEXT"),
    ("next_attempt_at", "BIGINT"),
    ("body", "TEXT"),
    ("accepted_at", "BIGINT"),
    ("sent_at", "BIGINT"),
    ("delivered_at", "BIGINT"),
    ("read_at", "BIGINT"),
    ("failed_at", "BIGINT"),
    ("last_error_code", "BIGINT"),
];

fn change_values(c: &Change) -> [Option<&dyn ToSql>; 9] {
    [
        c.wamid.as_ref().map(sql_ref),
        c.next_attempt_at.as_ref().map(sql_ref),
        c.body.as_ref().map(sql_ref),
        c.accepted_at.as_ref().map(sql_ref),
        c.sent_at.as_ref().map(sql_ref),
        c.delivered_at.as_ref().map(sql_ref),
        c.read_at.as_ref().map(sql_ref),
        c.failed_at.as_ref().map(sql_ref),
        c.last_error.as_ref().map(|(code, _)| sql_ref(code)),
    ]
}

fn shape(c: &Change) -> Shape {
    Shape {
        state: c.state.is_some(),
        only_from: c.state.is_some() && c.only_from.is_some(),
        values: change_values(c).map(|v| v.is_some()),
        clear_lease: c.clear_lease,
        clear_failed_at: c.clear_failure && c.failed_at.is_none(),
        clear_error: c.clear_failure && c.last_error.is_none(),
    }
}

/// `UPDATE … FROM (VALUES …)` of `rows` changes of shape `sh`; the values of a row are its id,
/// its time, then what the shape names, in that order.
fn shaped_update(sh: &Shape, rows: usize) -> String {
    let mut types: Vec<Option<&str>> = vec![Some("TEXT"), Some("BIGINT")];
    let mut set = format!("UPDATE{OR_FAIL} messages SET updated_at = v.column2");
    if sh.state {
        types.push(Some("TEXT"));
        let to = types.len();
        if sh.only_from {
            types.push(Some("TEXT"));
            set.push_str(&format!(
                ", state = CASE WHEN messages.state = v.column{} THEN v.column{to} ELSE messages.state END",
                types.len()
            ));
        } else {
            set.push_str(&format!(", state = v.column{to}"));
        }
    }
    for (on, (column, ty)) in sh.values.iter().zip(CHANGE_COLUMNS) {
        if *on {
            types.push(Some(ty));
            set.push_str(&format!(", {column} = v.column{}", types.len()));
            if column == "last_error_code" {
                types.push(Some("TEXT"));
                set.push_str(&format!(", last_error = v.column{}", types.len()));
            }
        }
    }
    if sh.clear_lease {
        set.push_str(", lease_until = NULL");
    }
    if sh.clear_failed_at {
        set.push_str(", failed_at = NULL");
    }
    if sh.clear_error {
        set.push_str(", last_error_code = NULL, last_error = NULL");
    }
    format!(
        "{set} FROM (SELECT * FROM (VALUES {}) AS r) AS v WHERE messages.id = v.column1 \
         RETURNING id, state",
        value_rows(rows, &types)
    )
}

/// [`apply`] of several calls at once (see `store/coalesce.rs`): runs of alike changes to
/// distinct rows are written by one statement each and their events inserted together; the
/// result is that of applying every change in order.
pub(super) fn apply_calls(
    conn: &Connection,
    calls: &[&[Change]],
) -> Result<Vec<Vec<bool>>, StoreError> {
    let all: Vec<&Change> = calls.iter().flat_map(|c| c.iter()).collect();
    let mut done = vec![false; all.len()];
    let mut i = 0;
    while i < all.len() {
        let sh = shape(all[i]);
        let mut ids = HashSet::new();
        let mut j = i;
        while j < all.len() && shape(all[j]) == sh && ids.insert(all[j].id.as_str()) {
            j += 1;
        }
        let run = &all[i..j];
        let mut after: HashMap<String, MessageState> = HashMap::with_capacity(run.len());
        for (start, len) in set_chunks(run.len()) {
            let sql = shaped_update(&sh, len);
            let mut args: Vec<&dyn ToSql> = Vec::with_capacity(16 * len);
            for c in &run[start..start + len] {
                args.push(&c.id);
                args.push(&c.at);
                if let Some(state) = &c.state {
                    args.push(state);
                    if let Some(from) = &c.only_from {
                        args.push(from);
                    }
                }
                for v in change_values(c).into_iter().flatten() {
                    args.push(v);
                }
                if let Some((_, text)) = &c.last_error {
                    // After its code (the last value column), as `shaped_update` lays them out.
                    args.push(text);
                }
            }
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(args.as_slice())?;
            while let Some(r) = rows.next()? {
                after.insert(r.get(0)?, r.get(1)?);
            }
        }
        let mut events = Vec::new();
        for (k, c) in run.iter().enumerate() {
            if let Some(state) = after.get(&c.id) {
                done[i + k] = true;
                if let Some(e) = &c.event {
                    events.push((c.id.as_str(), e, *state));
                }
            }
        }
        insert_events(conn, &events)?;
        for (id, e, state) in events {
            if state.is_lost() || matches!(state, MessageState::Delivered | MessageState::Read) {
                advance_sequence(conn, id, state, e.at)?;
            }
        }
        i = j;
    }
    let mut out = Vec::with_capacity(calls.len());
    let mut rest = done.as_slice();
    for c in calls {
        let (mine, next) = rest.split_at(c.len().min(rest.len()));
        out.push(mine.to_vec());
        rest = next;
    }
    Ok(out)
}

pub(super) fn apply_one(conn: &Connection, c: &Change) -> Result<bool, StoreError> {
    // The state after the change (a conditional change may have left it as it was).
    let Some(state) = update_message(conn, RowKey::Id(&c.id), c)? else {
        return Ok(false);
    };
    if let Some(event) = &c.event {
        insert_event(conn, &c.id, event, state)?;
    }
    Ok(true)
}

pub(super) const PROGRESS_BY_WAMID: &str = "SELECT seq, id, state, accepted_at, sent_at, delivered_at, \
     read_at, failed_at, last_error_code FROM messages WHERE wamid = ?1 ORDER BY seq DESC LIMIT 1";

/// A message found by wamid: its seq, id and progress.
pub(super) type Found = (i64, String, Progress);

pub(super) fn progress_by_wamid(
    conn: &Connection,
    wamid: &str,
) -> Result<Option<Found>, StoreError> {
    let found = conn
        .prepare_cached(PROGRESS_BY_WAMID)?
        .query_row([wamid], |r| {
            let progress = Progress {
                state: r.get(2)?,
                accepted_at: r.get(3)?,
                sent_at: r.get(4)?,
                delivered_at: r.get(5)?,
                read_at: r.get(6)?,
                failed_at: r.get(7)?,
                error_code: r.get(8)?,
            };
            Ok((r.get(0)?, r.get(1)?, progress))
        })
        .optional()?;
    Ok(found)
}

/// Most rows one set-wise statement carries; a call's rows go in chunks whose sizes are powers of
/// two up to this, so a handful of statement texts serve every batch (and stay prepared).
pub(super) const SET_CHUNK: usize = 128;

/// `(start, len)` of the chunks `n` rows go in: `SET_CHUNK`s, then the binary digits of the rest.
pub(super) fn set_chunks(n: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    while n - start >= SET_CHUNK {
        out.push((start, SET_CHUNK));
        start += SET_CHUNK;
    }
    let mut size = SET_CHUNK / 2;
    while size > 0 {
        if n - start >= size {
            out.push((start, size));
            start += size;
        }
        size /= 2;
    }
    out
}

/// `(?1, ?2), (?3, ?4)` for `rows` rows of `types.len()` values, each as `CAST(?n AS type)`
/// where a type is given (a `VALUES` list outside an `INSERT` has no column to take types from).
pub(super) fn value_rows(rows: usize, types: &[Option<&str>]) -> String {
    let mut sql = String::with_capacity(rows * types.len() * 8);
    let mut n = 0;
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for (i, ty) in types.iter().enumerate() {
            n += 1;
            if i > 0 {
                sql.push_str(", ");
            }
            match ty {
                Some(t) => sql.push_str(&format!("CAST(?{n} AS {t})")),
                None => sql.push_str(&format!("?{n}")),
            }
        }
        sql.push(')');
    }
    sql
}

/// `?1, ?2, …, ?n`: the list of an `IN (…)`.
pub(super) fn in_list(n: usize) -> String {
    (1..=n)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a status may change of a message, read once and changed in memory while a call's
/// statuses are applied in turn, then written once.
struct StatusImage {
    seq: i64,
    id: String,
    progress: Progress,
    last_error: Option<String>,
    in_sequence: bool,
    /// Its person (a first sighting's adoption rewrites it with the row, see
    /// [`learn_and_apply`]).
    person: Option<String>,
    /// `updated_at` of the last status that changed the row; `None`: unchanged.
    changed_at: Option<Millis>,
}

/// The latest message of each wamid, one statement per chunk.
fn status_images(
    conn: &Connection,
    wamids: &[&str],
) -> Result<HashMap<String, StatusImage>, StoreError> {
    let mut found = HashMap::with_capacity(wamids.len());
    for (start, len) in set_chunks(wamids.len()) {
        let sql = format!(
            "SELECT seq, id, state, accepted_at, sent_at, delivered_at, read_at, failed_at, \
             last_error_code, last_error, sequence_key IS NOT NULL, wamid, person \
             FROM messages WHERE wamid IN ({}) ORDER BY seq",
            in_list(len)
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let args = &wamids[start..start + len];
        let mut rows = stmt.query(params_from_iter(args.iter()))?;
        while let Some(r) = rows.next()? {
            let image = StatusImage {
                seq: r.get(0)?,
                id: r.get(1)?,
                progress: Progress {
                    state: r.get(2)?,
                    accepted_at: r.get(3)?,
                    sent_at: r.get(4)?,
                    delivered_at: r.get(5)?,
                    read_at: r.get(6)?,
                    failed_at: r.get(7)?,
                    error_code: r.get(8)?,
                },
                last_error: r.get(9)?,
                in_sequence: r.get(10)?,
                person: r.get(12)?,
                changed_at: None,
            };
            // In seq order: the latest message with the wamid wins, as `PROGRESS_BY_WAMID`.
            found.insert(r.get::<_, String>(11)?, image);
        }
    }
    Ok(found)
}

/// Records dedupe keys; answers those that were new.
fn remember_new_keys(
    conn: &Connection,
    keys: &[(&str, Millis)],
) -> Result<HashSet<String>, StoreError> {
    let mut fresh = HashSet::with_capacity(keys.len());
    for (start, len) in set_chunks(keys.len()) {
        let sql = format!(
            "INSERT{OR_FAIL} INTO dedupe_keys (key, at) VALUES {} ON CONFLICT DO NOTHING RETURNING key",
            value_rows(len, &[None, None])
        );
        let mut args: Vec<&dyn ToSql> = Vec::with_capacity(2 * len);
        for (key, at) in &keys[start..start + len] {
            args.push(key);
            args.push(at);
        }
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(args.as_slice())?;
        while let Some(r) = rows.next()? {
            fresh.insert(r.get::<_, String>(0)?);
        }
    }
    Ok(fresh)
}

/// Writes the changed images: one `UPDATE … FROM (VALUES …)` per chunk, every column a status
/// may touch set to its value after the call's statuses (unchanged columns to what was read).
fn write_status_images(conn: &Connection, images: &[&StatusImage]) -> Result<(), StoreError> {
    const TYPES: [Option<&str>; 11] = [
        Some("BIGINT"),
        Some("BIGINT"),
        Some("TEXT"),
        Some("BIGINT"),
        Some("BIGINT"),
        Some("BIGINT"),
        Some("BIGINT"),
        Some("BIGINT"),
        Some("BIGINT"),
        Some("TEXT"),
        Some("TEXT"),
    ];
    for (start, len) in set_chunks(images.len()) {
        let sql = format!(
            "UPDATE{OR_FAIL} messages SET updated_at = v.column2, state = v.column3, \
             accepted_at = v.column4, sent_at = v.column5, delivered_at = v.column6, \
             read_at = v.column7, failed_at = v.column8, last_error_code = v.column9, \
             last_error = v.column10, person = v.column11 \
             FROM (SELECT * FROM (VALUES {}) AS r) AS v WHERE messages.seq = v.column1",
            value_rows(len, &TYPES)
        );
        let mut args: Vec<&dyn ToSql> = Vec::with_capacity(TYPES.len() * len);
        for img in &images[start..start + len] {
            let p = &img.progress;
            args.push(&img.seq);
            args.push(&img.changed_at);
            args.push(&p.state);
            args.push(&p.accepted_at);
            args.push(&p.sent_at);
            args.push(&p.delivered_at);
            args.push(&p.read_at);
            args.push(&p.failed_at);
            args.push(&p.error_code);
            args.push(&img.last_error);
            args.push(&img.person);
        }
        conn.prepare_cached(&sql)?.execute(args.as_slice())?;
    }
    Ok(())
}

/// Timeline events, in order: one multi-row `INSERT` per chunk.
fn insert_events(
    conn: &Connection,
    events: &[(&str, &NewEvent, MessageState)],
) -> Result<(), StoreError> {
    for (start, len) in set_chunks(events.len()) {
        let sql = format!(
            "INSERT{OR_FAIL} INTO events (message_id, kind, at, detail, state) VALUES {}",
            value_rows(len, &[None; 5])
        );
        let chunk = &events[start..start + len];
        let details = chunk
            .iter()
            .map(|(_, e, _)| json_text(&e.detail))
            .collect::<Result<Vec<_>, _>>()?;
        let mut args: Vec<&dyn ToSql> = Vec::with_capacity(5 * len);
        for ((id, e, state), detail) in chunk.iter().zip(&details) {
            args.push(id);
            args.push(&e.kind);
            args.push(&e.at);
            args.push(detail);
            args.push(state);
        }
        conn.prepare_cached(&sql)?.execute(args.as_slice())?;
    }
    Ok(())
}

/// Applies a call's statuses in order, with the same outcome as [`apply_status`] on each in
/// turn, but set-wise: the messages are read in one statement per chunk and changed in memory,
/// the dedupe keys recorded in one, the rows written once and the events inserted in one. So a
/// webhook batch of a hundred statuses costs a handful of statements instead of four each.
/// (Sequences advanced by a status still take their own statements, as orphans do.)
pub(super) fn apply_statuses(
    conn: &Connection,
    updates: &[StatusUpdate],
) -> Result<Vec<StatusApplied>, StoreError> {
    apply_statuses_adopting(conn, updates, &[])
}

/// [`learn`], then [`apply_statuses`], in one transaction: what a webhook batch teaches about
/// people and the statuses it carries. A first sighting's phone hands its sends to the new
/// person as [`learn`] does, but the sends whose row a status rewrites anyway take their new
/// person in that same write: each such message's row changes once instead of twice (every
/// change of a row writes all its index entries, so this is a fifth of a message's writes).
pub(super) fn learn_and_apply(
    conn: &Connection,
    (sightings, updates): &(Vec<Sighting>, Vec<StatusUpdate>),
) -> Result<Learned, StoreError> {
    let (mut adoptions, mut moved) = (Vec::new(), Vec::new());
    let keys = learn_deferring(conn, sightings, Some(&mut adoptions), Some(&mut moved))?;
    let applied = apply_statuses_adopting(conn, updates, &adoptions)?;
    Ok(Learned {
        keys,
        applied,
        moved,
    })
}

/// [`apply_statuses`], and the sends of each `(person, phone)` in `adoptions` moved from the
/// phone's implicit person to `person`: those a status rewrites in that write, the rest by
/// one statement, before anything reads messages by person (a sequence's next message).
fn apply_statuses_adopting(
    conn: &Connection,
    updates: &[StatusUpdate],
    adoptions: &[(String, String)],
) -> Result<Vec<StatusApplied>, StoreError> {
    let pairs: Vec<(&str, &str)> = adoptions
        .iter()
        .map(|(person, phone)| (person.as_str(), phone.as_str()))
        .collect();
    if updates.len() < 2 {
        adopt_messages(conn, &pairs)?;
        return updates.iter().map(|u| apply_status(conn, u)).collect();
    }
    let mut wamids: Vec<&str> = updates.iter().map(|u| u.wamid.as_str()).collect();
    wamids.sort_unstable();
    wamids.dedup();
    let mut images = status_images(conn, &wamids)?;
    // Each update's key as stored (under its message), where it has one and its wamid is known.
    let stored: Vec<Option<String>> = updates
        .iter()
        .map(|u| {
            let img = images.get(&u.wamid)?;
            Some(message_scoped_key(&img.id, u.dedupe_key.as_deref()?))
        })
        .collect();
    let keys: Vec<(&str, Millis)> = updates
        .iter()
        .zip(&stored)
        .filter_map(|(u, k)| Some((k.as_deref()?, u.received_at)))
        .collect();
    let fresh = remember_new_keys(conn, &keys)?;
    let mut used = HashSet::with_capacity(fresh.len());
    let mut out = Vec::with_capacity(updates.len());
    // (wamid, index into `updates`, state after) of each status applied.
    let mut applied: Vec<(&str, usize, MessageState)> = Vec::with_capacity(updates.len());
    for (i, u) in updates.iter().enumerate() {
        let Some(img) = images.get_mut(&u.wamid) else {
            park_orphan(conn, &(u.wamid.clone(), u.payload.clone(), u.received_at))?;
            out.push(StatusApplied::Orphaned);
            continue;
        };
        if let Some(key) = stored[i].as_deref()
            && (!fresh.contains(key) || !used.insert(key))
        {
            out.push(StatusApplied::Duplicate);
            continue;
        }
        let t = observe(&img.progress, &u.observation);
        if t.changes_row() {
            t.apply_to(&mut img.progress);
            if let Some((_, text)) = &t.error {
                img.last_error = Some(text.clone());
            } else if t.clear_failure {
                img.last_error = None;
            }
            img.changed_at = Some(u.received_at);
        }
        let state = img.progress.state;
        applied.push((u.wamid.as_str(), i, state));
        out.push(StatusApplied::Applied {
            id: img.id.clone(),
            state,
            effect: t.effect,
        });
    }
    if !pairs.is_empty() {
        let by_phone: HashMap<&str, &str> = pairs
            .iter()
            .map(|(person, phone)| (*phone, *person))
            .collect();
        for img in images.values_mut().filter(|i| i.changed_at.is_some()) {
            if let Some(person) = img.person.as_deref().and_then(|p| by_phone.get(p)) {
                img.person = Some((*person).to_string());
            }
        }
    }
    let mut changed: Vec<&StatusImage> =
        images.values().filter(|i| i.changed_at.is_some()).collect();
    changed.sort_unstable_by_key(|i| i.seq);
    write_status_images(conn, &changed)?;
    adopt_messages(conn, &pairs)?;
    let events: Vec<(&str, &NewEvent, MessageState)> = applied
        .iter()
        .filter_map(|(wamid, i, state)| {
            let img = images.get(*wamid)?;
            Some((img.id.as_str(), &updates[*i].event, *state))
        })
        .collect();
    insert_events(conn, &events)?;
    for (wamid, i, state) in &applied {
        if let Some(img) = images.get(*wamid)
            && img.in_sequence
            && (state.is_lost() || matches!(state, MessageState::Delivered | MessageState::Read))
        {
            advance_sequence(conn, &img.id, *state, updates[*i].event.at)?;
        }
    }
    Ok(out)
}

pub(super) fn apply_status(
    conn: &Connection,
    u: &StatusUpdate,
) -> Result<StatusApplied, StoreError> {
    let Some((seq, id, progress)) = progress_by_wamid(conn, &u.wamid)? else {
        park_orphan(conn, &(u.wamid.clone(), u.payload.clone(), u.received_at))?;
        return Ok(StatusApplied::Orphaned);
    };
    if let Some(key) = &u.dedupe_key
        && !remember_key(conn, &message_scoped_key(&id, key), u.received_at)?
    {
        return Ok(StatusApplied::Duplicate);
    }
    let t = observe(&progress, &u.observation);
    if t.changes_row() {
        let change = Change::from_transition(String::new(), u.received_at, &t);
        update_message(conn, RowKey::Seq(seq), &change)?;
    }
    let state = t.state.unwrap_or(progress.state);
    insert_event(conn, &id, &u.event, state)?;
    Ok(StatusApplied::Applied {
        id,
        state,
        effect: t.effect,
    })
}

pub(super) const PARK_TEMPLATE: &str = "UPDATE messages SET parked_reason = ?1, updated_at = ?2 \
     WHERE state = 'queued' AND parked_reason IS NULL AND template_name = ?3 \
     AND (CAST(?4 AS TEXT) IS NULL OR template_language = ?4) RETURNING id, template_language";

pub(super) const UNPARK_TEMPLATE: &str = "UPDATE messages SET parked_reason = NULL, updated_at = ?2 \
     WHERE state = 'queued' AND parked_reason = ?1 AND template_name = ?3 \
     AND (CAST(?4 AS TEXT) IS NULL OR template_language = ?4) RETURNING id, template_language";

/// `(template name, language, now)`.
pub(super) type TemplateScope = (String, Option<String>, Millis);

pub(super) fn park_template(conn: &Connection, scope: &TemplateScope) -> Result<u64, StoreError> {
    move_parked(conn, PARK_TEMPLATE, kind::PARKED, scope)
}

pub(super) fn unpark_template(conn: &Connection, scope: &TemplateScope) -> Result<u64, StoreError> {
    move_parked(conn, UNPARK_TEMPLATE, kind::UNPARKED, scope)
}

pub(super) fn move_parked(
    conn: &Connection,
    sql: &str,
    event_kind: &str,
    (name, language, now): &TemplateScope,
) -> Result<u64, StoreError> {
    let moved: Vec<(String, Option<String>)> = {
        let mut st = conn.prepare_cached(sql)?;
        let rows = st.query_map(params![PARKED_TEMPLATE_PAUSED, now, name, language], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        rows.collect::<Result<_, _>>()?
    };
    for (id, lang) in &moved {
        let detail = serde_json::json!({
            "reason": PARKED_TEMPLATE_PAUSED,
            "template": { "name": name, "language": lang },
        });
        let event = NewEvent::new(event_kind, *now, detail);
        insert_event(conn, id, &event, MessageState::Queued)?;
    }
    Ok(moved.len() as u64)
}

pub(super) const EXPIRED_LEASES: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM messages WHERE state = 'sending' AND lease_until <= ?1 ORDER BY lease_until, seq"
);

pub(super) const OVERDUE: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM messages WHERE (state = 'accepted' OR state = 'held' OR state = 'sent') \
     AND deadline <= ?1 \
     ORDER BY deadline, seq LIMIT ?2"
);

pub(super) const EXPIRE_PARKED: &str = "UPDATE messages SET state = 'expired', updated_at = ?1 \
     WHERE seq IN (SELECT seq FROM messages WHERE state = 'queued' AND parked_reason IS NOT NULL \
     AND deadline <= ?1 ORDER BY deadline LIMIT ?2) RETURNING id, deadline, parked_reason";

pub(super) fn expire_parked(
    conn: &Connection,
    &(now, limit): &(Millis, usize),
) -> Result<Vec<String>, StoreError> {
    let expired: Vec<(String, Millis, Option<String>)> = {
        let mut st = conn.prepare_cached(EXPIRE_PARKED)?;
        let rows = st.query_map(params![now, i64_of(limit)], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
        rows.collect::<Result<_, _>>()?
    };
    for (id, deadline, parked) in &expired {
        let detail = serde_json::json!({
            "deadline": deadline,
            "sent": false,
            "reason": "its time-to-live ended while it was held back",
            "parked": parked,
        });
        insert_event(
            conn,
            id,
            &NewEvent::new("expired", now, detail),
            MessageState::Expired,
        )?;
    }
    Ok(expired.into_iter().map(|(id, _, _)| id).collect())
}

pub(super) fn list(conn: &Connection, f: &ListFilter) -> Result<Vec<MessageRecord>, StoreError> {
    let mut sql = String::from(concat!("SELECT ", columns!(), " FROM messages WHERE 1 = 1"));
    let mut args: Vec<Value> = Vec::new();
    let mut cond = |column: &str, value: Value| {
        args.push(value);
        sql.push_str(&format!(" AND {column} = ?{}", args.len()));
    };
    if let Some(s) = f.state {
        cond("state", Value::Text(s.as_str().into()));
    }
    if let Some(to) = &f.to {
        cond("recipient", Value::Text(to.clone()));
    }
    if let Some(p) = &f.phone_number_id {
        cond("phone_number_id", Value::Text(p.clone()));
    }
    if let Some(l) = f.lane {
        cond("lane", Value::Text(l.as_str().into()));
    }
    if let Some(t) = &f.template {
        cond("template_name", Value::Text(t.clone()));
    }
    if let Some((key, value)) = &f.metadata {
        sql.push_str(&metadata_equals(&mut args, key, value));
    }
    let (cmp, order) = if f.newest_first {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    if let Some(after) = &f.after_id {
        args.push(Value::Text(after.clone()));
        sql.push_str(&format!(
            " AND seq {cmp} (SELECT seq FROM messages WHERE id = ?{})",
            args.len()
        ));
    }
    args.push(Value::Integer(i64_of(f.effective_limit())));
    sql.push_str(&format!(" ORDER BY seq {order} LIMIT ?{}", args.len()));
    records(conn, &sql, params_from_iter(args.iter()))
}

// ---------------------------------------------------------------------------------------------
// Events

pub(super) const INSERT_EVENT: &str =
    "INSERT INTO events (message_id, kind, at, detail, state) VALUES (?1, ?2, ?3, ?4, ?5)";

pub(super) fn insert_event(
    conn: &Connection,
    message_id: &str,
    e: &NewEvent,
    state: MessageState,
) -> Result<(), StoreError> {
    conn.prepare_cached(INSERT_EVENT)?.execute(params![
        message_id,
        e.kind,
        e.at,
        json_text(&e.detail)?,
        state
    ])?;
    if state.is_lost() || matches!(state, MessageState::Delivered | MessageState::Read) {
        advance_sequence(conn, message_id, state, e.at)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Ordered sequences

/// Why a message waiting for the one before it in its sequence is parked.
pub(super) const SEQUENCE_PARK: &str = "sequence";

/// Puts a freshly inserted message after the latest message of its sequence for the same
/// person: it waits (parked until the timeout, in `next_attempt_at`) while that one is on its
/// way, fails at once when that one was lost and the sequence stops on failure, and goes now
/// otherwise.
pub(super) fn place_in_sequence(
    conn: &Connection,
    m: &NewMessage,
    person: &str,
    step: &SequenceStep,
) -> Result<(), StoreError> {
    let prev: Option<(String, MessageState)> = conn
        .prepare_cached(
            "SELECT id, state FROM messages WHERE person = ?1 AND sequence_key = ?2 AND id <> ?3 \
             ORDER BY seq DESC LIMIT 1",
        )?
        .query_row(params![person, step.key, m.id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let Some((prev, prev_state)) = prev else {
        return Ok(());
    };
    conn.prepare_cached("UPDATE messages SET sequence_prev = ?2 WHERE id = ?1")?
        .execute(params![m.id, prev])?;
    if step.wait.met_by(prev_state) {
        return Ok(());
    }
    if prev_state.is_lost() {
        return match step.on_failure {
            OnSequenceFailure::Continue => Ok(()),
            OnSequenceFailure::Stop => {
                fail_step(conn, &m.id, &step.key, &prev, prev_state, m.created_at)
            }
        };
    }
    let until = m.created_at.saturating_add(step.timeout_ms);
    conn.prepare_cached(
        "UPDATE messages SET parked_reason = ?2, next_attempt_at = ?3 WHERE id = ?1",
    )?
    .execute(params![m.id, SEQUENCE_PARK, until])?;
    let detail = serde_json::json!({
        "sequence": step.key, "after": prev, "until": step.wait, "timeout_at": until,
    });
    insert_event(
        conn,
        &m.id,
        &NewEvent::new("sequence_wait", m.created_at, detail),
        MessageState::Queued,
    )
}

/// Fails a waiting step of a sequence because the message before it was lost (its own event
/// then carries the failure on to the step after it).
pub(super) fn fail_step(
    conn: &Connection,
    id: &str,
    key: &str,
    prev: &str,
    prev_state: MessageState,
    at: Millis,
) -> Result<(), StoreError> {
    let reason = format!("the message before it in sequence {key:?} ({prev}) is {prev_state}");
    fail_waiting(conn, id, "sequence_stopped", &reason, prev, at)
}

/// Fails a queued step of a sequence, never sent, with its `failed` event (which carries the
/// failure on to the step after it).
pub(super) fn fail_waiting(
    conn: &Connection,
    id: &str,
    kind: &str,
    reason: &str,
    prev: &str,
    at: Millis,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE messages SET state = 'failed', parked_reason = NULL, reason = ?2, failed_at = ?3, \
         updated_at = ?3 WHERE id = ?1 AND state = 'queued'",
    )?
    .execute(params![id, reason, at])?;
    let detail = serde_json::json!({ "kind": kind, "reason": reason, "after": prev });
    insert_event(
        conn,
        id,
        &NewEvent::new("failed", at, detail),
        MessageState::Failed,
    )
}

/// Lets the message waiting for `id` in its sequence go (its wait is met, or `id` was lost and
/// the sequence continues on failure), or fails it (lost, and the sequence stops).
pub(super) fn advance_sequence(
    conn: &Connection,
    id: &str,
    state: MessageState,
    at: Millis,
) -> Result<(), StoreError> {
    let waiting: Vec<(String, Option<String>)> = {
        let mut st = conn.prepare_cached(
            "SELECT id, sequence_rule FROM messages WHERE sequence_prev = ?1 \
             AND state = 'queued' AND parked_reason = ?2",
        )?;
        let rows = st.query_map(params![id, SEQUENCE_PARK], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    for (next, rule) in waiting {
        let Some(step) = rule.and_then(|r| serde_json::from_str::<SequenceStep>(&r).ok()) else {
            continue;
        };
        if step.wait.met_by(state)
            || (state.is_lost() && step.on_failure == OnSequenceFailure::Continue)
        {
            release_step(
                conn,
                &next,
                at,
                serde_json::json!({ "after": id, "state": state }),
            )?;
        } else if state.is_lost() {
            fail_step(conn, &next, &step.key, id, state, at)?;
        }
    }
    Ok(())
}

pub(super) fn release_step(
    conn: &Connection,
    id: &str,
    at: Millis,
    detail: serde_json::Value,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE messages SET parked_reason = NULL, next_attempt_at = ?2, updated_at = ?2 \
         WHERE id = ?1 AND state = 'queued' AND parked_reason = ?3",
    )?
    .execute(params![id, at, SEQUENCE_PARK])?;
    insert_event(
        conn,
        id,
        &NewEvent::new("sequence_released", at, detail),
        MessageState::Queued,
    )
}

pub(super) fn sequence_timeouts(
    conn: &Connection,
    &(now, limit): &(Millis, usize),
) -> Result<Vec<String>, StoreError> {
    let due: Vec<(String, Option<String>, Option<String>)> = {
        let mut st = conn.prepare_cached(
            "SELECT id, sequence_rule, sequence_prev FROM messages WHERE state = 'queued' \
             AND parked_reason = ?1 AND next_attempt_at <= ?2 ORDER BY next_attempt_at LIMIT ?3",
        )?;
        let rows = st.query_map(params![SEQUENCE_PARK, now, i64_of(limit)], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
        rows.collect::<Result<_, _>>()?
    };
    let mut out = Vec::with_capacity(due.len());
    for (id, rule, prev) in due {
        let step = rule.and_then(|r| serde_json::from_str::<SequenceStep>(&r).ok());
        let prev = prev.unwrap_or_default();
        match step.map(|s| (s.on_timeout, s.key)) {
            Some((OnSequenceTimeout::FailRest, key)) => {
                let reason = format!(
                    "the message before it in sequence {key:?} ({prev}) did not get there in time"
                );
                fail_waiting(conn, &id, "sequence_timeout", &reason, &prev, now)?;
            }
            _ => release_step(
                conn,
                &id,
                now,
                serde_json::json!({ "after": prev, "timeout": true }),
            )?,
        }
        out.push(id);
    }
    Ok(out)
}

pub(super) fn event(r: &Row<'_>) -> sql::Result<Event> {
    let detail: String = r.get(4)?;
    let kind: String = r.get(2)?;
    // A campaign's event holds the campaign's state: no message state to read.
    let state = if kind.starts_with("campaign.") {
        MessageState::Queued
    } else {
        r.get(5)?
    };
    Ok(Event {
        seq: r.get(0)?,
        message_id: r.get(1)?,
        kind,
        at: r.get(3)?,
        detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
        state,
    })
}

pub(super) fn events_where(
    conn: &Connection,
    sql: &str,
    args: impl sql::Params,
) -> Result<Vec<Event>, StoreError> {
    let mut st = conn.prepare_cached(sql)?;
    let rows = st.query_map(args, event)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

pub(super) const EVENTS_OF: &str = "SELECT seq, message_id, kind, at, detail, state FROM events \
     WHERE message_id = ?1 ORDER BY seq";
pub(super) const EVENTS_AFTER: &str = "SELECT seq, message_id, kind, at, detail, state FROM events \
     WHERE seq > ?1 ORDER BY seq LIMIT ?2";

// ---------------------------------------------------------------------------------------------
// Orphans, inbox, dedupe

pub(super) fn park_orphan(
    conn: &Connection,
    (wamid, payload, at): &(String, String, Millis),
) -> Result<(), StoreError> {
    conn.prepare_cached("INSERT INTO orphan_statuses (wamid, payload, at) VALUES (?1, ?2, ?3)")?
        .execute(params![wamid, payload, at])?;
    Ok(())
}

pub(super) fn take_orphans(conn: &Connection, wamid: &str) -> Result<Vec<String>, StoreError> {
    let mut st =
        conn.prepare_cached("DELETE FROM orphan_statuses WHERE wamid = ?1 RETURNING seq, payload")?;
    let rows = st.query_map([wamid], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut taken = rows.collect::<Result<Vec<_>, _>>()?;
    taken.sort_by_key(|(seq, _)| *seq);
    Ok(taken.into_iter().map(|(_, p)| p).collect())
}

pub(super) fn append_inbox(conn: &Connection, items: &[InboxItem]) -> Result<Vec<i64>, StoreError> {
    let mut st = conn.prepare_cached(
        "INSERT INTO inbox (received_at, source, body) VALUES (?1, ?2, ?3) RETURNING id",
    )?;
    let mut ids = Vec::with_capacity(items.len());
    for item in items {
        ids.push(
            st.query_row(params![item.received_at, item.source, item.body], |r| {
                r.get(0)
            })?,
        );
    }
    Ok(ids)
}

pub(super) fn pending_inbox(conn: &Connection, limit: &usize) -> Result<Vec<InboxRow>, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT id, received_at, source, body, outcome FROM inbox \
         WHERE outcome IS NULL ORDER BY id LIMIT ?1",
    )?;
    let rows = st.query_map([i64_of(*limit)], |r| {
        Ok(InboxRow {
            id: r.get(0)?,
            received_at: r.get(1)?,
            source: r.get(2)?,
            body: r.get(3)?,
            outcome: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

pub(super) fn finish_inbox(
    conn: &Connection,
    outcomes: &[(i64, InboxOutcome)],
) -> Result<(), StoreError> {
    let mut st = conn.prepare_cached("UPDATE inbox SET outcome = ?2 WHERE id = ?1")?;
    for (id, outcome) in outcomes {
        st.execute(params![id, outcome])?;
    }
    Ok(())
}

pub(super) fn remember_keys(
    conn: &Connection,
    (keys, at): &(Vec<String>, Millis),
) -> Result<Vec<bool>, StoreError> {
    keys.iter().map(|k| remember_key(conn, k, *at)).collect()
}

/// Records a dedupe key; `true` the first time. The primary key decides, not a prior read.
pub(super) fn remember_key(conn: &Connection, key: &str, at: Millis) -> Result<bool, StoreError> {
    let inserted = conn
        .prepare_cached("INSERT INTO dedupe_keys (key, at) VALUES (?1, ?2) ON CONFLICT DO NOTHING")?
        .execute(params![key, at])?;
    Ok(inserted == 1)
}

// ---------------------------------------------------------------------------------------------
// Inbound messages, the conversation, cancellation

pub(super) const INSERT_INBOUND: &str = "INSERT INTO inbound_messages (id, phone_number_id, wa_id, \
     profile_name, type, context_id, body, timestamp, received_at, person) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT DO NOTHING";

pub(super) const INBOUND_COLUMNS: &str = "seq, id, phone_number_id, wa_id, profile_name, type, context_id, \
     body, timestamp, received_at, person";

pub(super) fn record_inbound(
    conn: &Connection,
    items: &[InboundRecord],
) -> Result<Vec<bool>, StoreError> {
    let mut out = Vec::with_capacity(items.len());
    for m in items {
        // Same dedupe key as before the conversation was stored, so a redelivery of a message
        // processed by an older version is still a duplicate.
        if !remember_key(conn, &format!("m:{}", m.id), m.received_at)? {
            out.push(false);
            continue;
        }
        let person = match &m.person {
            Some(p) => Some(p.clone()),
            None => key_of(conn, &m.wa_id, Some(m.received_at))?,
        };
        conn.prepare_cached(INSERT_INBOUND)?.execute(params![
            m.id,
            m.phone_number_id,
            m.wa_id,
            m.profile_name,
            m.kind,
            m.context_id,
            m.body,
            m.timestamp,
            m.received_at,
            person,
        ])?;
        note_inbound(
            conn,
            &[(
                m.phone_number_id.clone(),
                person.unwrap_or_else(|| m.wa_id.clone()),
                m.timestamp,
            )],
        )?;
        let replied: Option<String> = match &m.context_id {
            Some(w) => conn
                .prepare_cached(
                    "SELECT id FROM messages WHERE wamid = ?1 ORDER BY seq DESC LIMIT 1",
                )?
                .query_row([w], |r| r.get(0))
                .optional()?,
            None => None,
        };
        let event = NewEvent::new(
            kind::MESSAGE_RECEIVED,
            m.received_at,
            m.event_detail(replied.as_deref()),
        );
        insert_event(conn, &m.id, &event, MessageState::Received)?;
        out.push(true);
    }
    Ok(out)
}

pub(super) fn inbound_row(r: &Row<'_>) -> sql::Result<InboundRecord> {
    Ok(InboundRecord {
        seq: r.get(0)?,
        id: r.get(1)?,
        phone_number_id: r.get(2)?,
        wa_id: r.get(3)?,
        profile_name: r.get(4)?,
        kind: r.get(5)?,
        context_id: r.get(6)?,
        body: r.get(7)?,
        timestamp: r.get(8)?,
        received_at: r.get(9)?,
        person: r.get(10)?,
    })
}

/// `(wa_id, before, limit)`.
pub(super) type ConversationArgs = (String, Option<ConversationCursor>, usize);

pub(super) fn conversation(
    conn: &Connection,
    (wa_id, before, limit): &ConversationArgs,
) -> Result<Vec<ConversationItem>, StoreError> {
    // Each side's newest `limit` items before the cursor, then merged. An item is before the
    // cursor when its key (time, outbound?, seq) is smaller.
    let (at, outbound, seq) = match before {
        Some(c) => (c.at, c.outbound, c.seq),
        None => (Millis::MAX, true, i64::MAX),
    };
    // Every identifier of the person: their key.
    let Some(wa_id) = key_of(conn, wa_id, None)? else {
        return Ok(Vec::new());
    };
    let out_sql = concat!(
        "SELECT ",
        columns!(),
        " FROM messages WHERE person = ?1 AND (created_at < ?2 OR (created_at = ?2 AND ?3 \
         AND seq < ?4)) ORDER BY created_at DESC, seq DESC LIMIT ?5"
    );
    let mut items: Vec<ConversationItem> = records(
        conn,
        out_sql,
        params![wa_id, at, outbound, seq, i64_of(*limit)],
    )?
    .into_iter()
    .map(|r| ConversationItem::Outbound(Box::new(r)))
    .collect();
    let in_sql = format!(
        "SELECT {INBOUND_COLUMNS} FROM inbound_messages WHERE person = ?1 AND (received_at < ?2 \
         OR (received_at = ?2 AND (?3 OR seq < ?4))) ORDER BY received_at DESC, seq DESC LIMIT ?5"
    );
    let mut st = conn.prepare_cached(&in_sql)?;
    let rows = st.query_map(
        params![wa_id, at, outbound, seq, i64_of(*limit)],
        inbound_row,
    )?;
    for r in rows {
        items.push(ConversationItem::Inbound(Box::new(r?)));
    }
    items.sort_by_key(|i| {
        let c = i.cursor();
        std::cmp::Reverse((c.at, c.outbound, c.seq))
    });
    items.truncate(*limit);
    Ok(items)
}

pub(super) const CANCEL: &str = "UPDATE messages SET state = 'cancelled', updated_at = ?2, \
     lease_until = NULL WHERE id = ?1 AND state = 'queued' RETURNING parked_reason";

pub(super) fn cancel(
    conn: &Connection,
    (id, at): &(String, Millis),
) -> Result<Option<MessageRecord>, StoreError> {
    let parked: Option<Option<String>> = conn
        .prepare_cached(CANCEL)?
        .query_row(params![id, at], |r| r.get(0))
        .optional()?;
    if let Some(parked) = parked {
        let detail = serde_json::json!({ "was_parked": parked });
        let event = NewEvent::new(kind::CANCELLED, *at, detail);
        insert_event(conn, id, &event, MessageState::Cancelled)?;
    }
    one_record(conn, BY_ID, id)
}

// ---------------------------------------------------------------------------------------------
// People and their identifiers

/// A fresh person key made `at`: the time in milliseconds (11 hex digits, as message ids), then
/// 52 random bits. Keys made later sort later, so the indexes keyed by person take new people at
/// their right edge, a few pages a commit, instead of one random page each.
pub(super) fn new_person_key(at: Millis) -> String {
    format!(
        "{PERSON_KEY_PREFIX}{:011x}{:013x}",
        at.clamp(0, 0xfff_ffff_ffff),
        rand::random::<u64>() >> 12
    )
}

/// How stored person keys that are not phones start.
pub(super) const PERSON_KEY_PREFIX: &str = "ct_";

/// Whether a person is stored under `key`.
pub(super) fn has_person(conn: &Connection, key: &str) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM people WHERE person = ?1")?
        .query_row([key], |_| Ok(()))
        .optional()?
        .is_some())
}

/// The key of the person `id` names: the person it is linked to; a `ct_` key as itself; a phone
/// linked to nobody names its implicit person, keyed by the phone itself (only sends are stored
/// under it). With `create`, an identifier linked to nobody gets a stored person (the implicit
/// person's sends move to it).
pub(super) fn key_of(
    conn: &Connection,
    id: &str,
    create: Option<Millis>,
) -> Result<Option<String>, StoreError> {
    let found: Option<String> = conn
        .prepare_cached("SELECT person FROM identities WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    if found.is_some() {
        return Ok(found);
    }
    unlinked_key(conn, id, create)
}

/// [`key_of`] for an id no identity row links: a `ct_` key as itself (if stored), a phone's
/// implicit person, a group id as itself; with `create`, a stored person for it.
pub(super) fn unlinked_key(
    conn: &Connection,
    id: &str,
    create: Option<Millis>,
) -> Result<Option<String>, StoreError> {
    if id.starts_with(PERSON_KEY_PREFIX) {
        return Ok(has_person(conn, id)?.then(|| id.to_string()));
    }
    let Some(kind) = IdKind::of(id) else {
        // Neither a phone nor a BSUID (a group id): its own key, never stored as a person.
        return Ok(Some(id.to_string()));
    };
    match create {
        None => Ok((kind == IdKind::Phone).then(|| id.to_string())),
        Some(at) => {
            let key = create_person(conn, at)?;
            link(conn, &key, id, kind, at)?;
            if kind == IdKind::Phone {
                adopt(conn, &key, id)?;
            }
            Ok(Some(key))
        }
    }
}

pub(super) fn lookup(conn: &Connection, id: &str) -> Result<Option<String>, StoreError> {
    key_of(conn, id, None)
}

/// The stored person `id` is linked to (or names, for a `ct_` key); `None` for an implicit one.
pub(super) fn linked(conn: &Connection, id: &str) -> Result<Option<String>, StoreError> {
    match key_of(conn, id, None)? {
        Some(k) if k.starts_with(PERSON_KEY_PREFIX) => Ok(Some(k)),
        _ => Ok(None),
    }
}

pub(super) fn history(
    conn: &Connection,
    person: &str,
    at: Millis,
    kind: &str,
    detail: serde_json::Value,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO identity_history (person, at, kind, detail) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![person, at, kind, json_text(&detail)?])?;
    Ok(())
}

pub(super) fn create_person(conn: &Connection, at: Millis) -> Result<String, StoreError> {
    let key = new_person_key(at);
    conn.prepare_cached("INSERT INTO people (person, created_at, updated_at) VALUES (?1, ?2, ?2)")?
        .execute(params![key, at])?;
    Ok(key)
}

/// Links `id` to `person` (moving it from another person is the caller's merge).
pub(super) fn link(
    conn: &Connection,
    person: &str,
    id: &str,
    kind: IdKind,
    at: Millis,
) -> Result<(), StoreError> {
    let linked = conn
        .prepare_cached(
            "INSERT INTO identities (id, person, kind, since) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (id) DO NOTHING",
        )?
        .execute(params![id, person, kind.as_str(), at])?;
    if linked == 1 {
        set_current(conn, person, id, kind, at)?;
        history(
            conn,
            person,
            at,
            "linked",
            serde_json::json!({ "id": id, "kind": kind.as_str() }),
        )?;
    }
    Ok(())
}

pub(super) fn resolve(conn: &Connection, id: &str) -> Result<Option<String>, StoreError> {
    lookup(conn, id)
}

/// [`resolve`] of each id, the identity look-ups done at once.
pub(super) fn resolve_all(
    conn: &Connection,
    ids: &[String],
) -> Result<Vec<Option<String>>, StoreError> {
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    resolve_linked(conn, &refs, &linked_many(conn, &refs)?)
}

/// [`resolve_all`] given what [`linked_many`] found for `ids`.
fn resolve_linked(
    conn: &Connection,
    ids: &[&str],
    linked: &HashMap<String, String>,
) -> Result<Vec<Option<String>>, StoreError> {
    ids.iter()
        .map(|id| match linked.get(*id) {
            Some(p) => Ok(Some(p.clone())),
            None => unlinked_key(conn, id, None),
        })
        .collect()
}

pub(super) fn person_key(
    conn: &Connection,
    (id, kind, at): &(String, IdKind, Millis),
) -> Result<String, StoreError> {
    if let Some(p) = conn
        .prepare_cached("SELECT person FROM identities WHERE id = ?1")?
        .query_row([id], |r| r.get::<_, String>(0))
        .optional()?
    {
        return Ok(p);
    }
    let key = create_person(conn, *at)?;
    link(conn, &key, id, *kind, *at)?;
    if *kind == IdKind::Phone {
        adopt(conn, &key, id)?;
    }
    Ok(key)
}

/// Moves everything of `from` to `into`: identifiers, consents (the later-recorded current one
/// per category wins), consent history, windows (the later time), the profile's gaps, history.
pub(super) fn merge(
    conn: &Connection,
    into: &str,
    from: &str,
    at: Millis,
) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE identities SET person = ?1 WHERE person = ?2")?
        .execute(params![into, from])?;
    adopt(conn, into, from)?;
    conn.prepare_cached(
        "UPDATE people SET \
         wa_id = coalesce(wa_id, (SELECT wa_id FROM people WHERE person = ?2)), \
         user_id = coalesce(user_id, (SELECT user_id FROM people WHERE person = ?2)), \
         parent_user_id = coalesce(parent_user_id, (SELECT parent_user_id FROM people WHERE person = ?2)), \
         username = coalesce(username, (SELECT username FROM people WHERE person = ?2)), \
         profile_name = coalesce(profile_name, (SELECT profile_name FROM people WHERE person = ?2)), \
         updated_at = ?3 WHERE person = ?1",
    )?
    .execute(params![into, from, at])?;
    conn.prepare_cached("DELETE FROM people WHERE person = ?1")?
        .execute([from])?;
    conn.prepare_cached("UPDATE identity_history SET person = ?1 WHERE person = ?2")?
        .execute(params![into, from])?;
    history(
        conn,
        into,
        at,
        "merged",
        serde_json::json!({ "from": from }),
    )
}

/// Moves the state stored under the key `from` (a merged person, or a phone's implicit person)
/// to `into`: consents (the later-recorded current one per category wins), consent history,
/// windows (the later time), sends and inbound messages.
pub(super) fn adopt(conn: &Connection, into: &str, from: &str) -> Result<(), StoreError> {
    // The messages sent to the phone before anyone was linked to it: the usual case.
    conn.prepare_cached("UPDATE messages SET person = ?1 WHERE person = ?2")?
        .execute(params![into, from])?;
    // Consents, windows and inbound messages of a phone nobody was linked to are rare: one look
    // instead of seven writes.
    let any: i64 = conn
        .prepare_cached(
            "SELECT CASE WHEN EXISTS (SELECT 1 FROM consents WHERE wa_id = ?1) \
             OR EXISTS (SELECT 1 FROM consent_history WHERE wa_id = ?1) \
             OR EXISTS (SELECT 1 FROM inbound_windows WHERE wa_id = ?1) \
             OR EXISTS (SELECT 1 FROM inbound_messages WHERE person = ?1) THEN 1 ELSE 0 END",
        )?
        .query_row([from], |r| r.get(0))?;
    if any == 0 {
        return Ok(());
    }
    // Current consents: the one recorded later wins per category.
    conn.prepare_cached(
        "DELETE FROM consents WHERE wa_id = ?1 AND EXISTS (SELECT 1 FROM consents o \
         WHERE o.wa_id = ?2 AND o.category = consents.category \
         AND o.recorded_at > consents.recorded_at)",
    )?
    .execute(params![into, from])?;
    conn.prepare_cached(
        "UPDATE consents SET wa_id = ?1 WHERE wa_id = ?2 AND NOT EXISTS (SELECT 1 FROM consents c \
         WHERE c.wa_id = ?1 AND c.category = consents.category)",
    )?
    .execute(params![into, from])?;
    conn.prepare_cached("DELETE FROM consents WHERE wa_id = ?1")?
        .execute([from])?;
    conn.prepare_cached("UPDATE consent_history SET wa_id = ?1 WHERE wa_id = ?2")?
        .execute(params![into, from])?;
    conn.prepare_cached(
        "INSERT INTO inbound_windows (phone_number_id, wa_id, last_at) \
         SELECT phone_number_id, ?1, last_at FROM inbound_windows WHERE wa_id = ?2 \
         ON CONFLICT (phone_number_id, wa_id) DO UPDATE SET last_at = excluded.last_at \
         WHERE excluded.last_at > inbound_windows.last_at",
    )?
    .execute(params![into, from])?;
    conn.prepare_cached("DELETE FROM inbound_windows WHERE wa_id = ?1")?
        .execute([from])?;
    conn.prepare_cached("UPDATE inbound_messages SET person = ?1 WHERE person = ?2")?
        .execute(params![into, from])?;
    Ok(())
}

/// The sighting's identifiers with their kinds.
pub(super) fn ids_of(s: &Sighting) -> Vec<(&str, IdKind)> {
    [
        (s.wa_id.as_deref(), IdKind::Phone),
        (s.user_id.as_deref(), IdKind::UserId),
        (s.parent_user_id.as_deref(), IdKind::ParentUserId),
    ]
    .into_iter()
    .filter_map(|(id, k)| id.filter(|i| !i.is_empty()).map(|i| (i, k)))
    .collect()
}

/// The oldest of several people (the one that survives a merge).
pub(super) fn oldest(conn: &Connection, people: &[String]) -> Result<String, StoreError> {
    let mut best: Option<(Millis, String)> = None;
    for p in people {
        let created: Millis = conn
            .prepare_cached("SELECT created_at FROM people WHERE person = ?1")?
            .query_row([p], |r| r.get(0))
            .optional()?
            .unwrap_or(Millis::MAX);
        if best.as_ref().is_none_or(|(c, k)| (created, p) < (*c, k)) {
            best = Some((created, p.clone()));
        }
    }
    best.map(|(_, p)| p)
        .ok_or_else(|| StoreError::Invalid("no person to merge into".into()))
}

pub(super) fn learn_one(conn: &Connection, s: &Sighting) -> Result<Option<String>, StoreError> {
    let ids = ids_of(s);
    if ids.is_empty() {
        return Ok(None);
    }
    let mut people: Vec<String> = Vec::new();
    let mut implicit = Vec::new();
    // Each id's person as found: ids already linked to the person chosen need no link.
    let mut found: Vec<Option<String>> = Vec::with_capacity(ids.len());
    for (id, kind) in &ids {
        let p = linked(conn, id)?;
        match &p {
            Some(p) if !people.contains(p) => people.push(p.clone()),
            Some(_) => {}
            None if *kind == IdKind::Phone => implicit.push(*id),
            None => {}
        }
        found.push(p);
    }
    let person = match people.len() {
        0 => create_person(conn, s.at)?,
        1 => people.remove(0),
        _ => {
            let into = oldest(conn, &people)?;
            for other in people.iter().filter(|p| **p != into) {
                merge(conn, &into, other, s.at)?;
            }
            into
        }
    };
    for ((id, kind), was) in ids.iter().zip(&found) {
        if was.as_deref() != Some(person.as_str()) {
            link(conn, &person, id, *kind, s.at)?;
        }
    }
    for phone in implicit {
        adopt(conn, &person, phone)?;
    }
    update_profile(conn, &person, s)?;
    Ok(Some(person))
}

/// The profile follows the latest sighting that carries it (a sighting without one, as a
/// status's, changes nothing and costs no statement).
fn update_profile(conn: &Connection, person: &str, s: &Sighting) -> Result<(), StoreError> {
    if s.username.is_none() && s.profile_name.is_none() {
        return Ok(());
    }
    conn.prepare_cached(
        "UPDATE people SET \
         username = coalesce(?2, username), profile_name = coalesce(?3, profile_name), \
         updated_at = CASE WHEN ?4 > updated_at THEN ?4 ELSE updated_at END \
         WHERE person = ?1 AND (coalesce(?2, username) IS DISTINCT FROM username \
         OR coalesce(?3, profile_name) IS DISTINCT FROM profile_name)",
    )?
    .execute(params![person, s.username, s.profile_name, s.at])?;
    Ok(())
}

/// The stored person each of `ids` is linked to (those linked to none are absent).
fn linked_many(conn: &Connection, ids: &[&str]) -> Result<HashMap<String, String>, StoreError> {
    let mut found = HashMap::with_capacity(ids.len());
    for (start, len) in set_chunks(ids.len()) {
        let sql = format!(
            "SELECT id, person FROM identities WHERE id IN ({})",
            in_list(len)
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(params_from_iter(ids[start..start + len].iter()))?;
        while let Some(r) = rows.next()? {
            let person: String = r.get(1)?;
            if person.starts_with(PERSON_KEY_PREFIX) {
                found.insert(r.get(0)?, person);
            }
        }
    }
    Ok(found)
}

/// [`learn_one`] on each sighting in turn, with the look-ups of a call done at once: a sighting
/// whose ids are all linked to one person already (every status after a recipient's first)
/// costs no statement, or one when it carries a profile. The others take the full path; one
/// that merges people ends the shortcut for the rest of the call.
pub(super) fn learn(
    conn: &Connection,
    sightings: &[Sighting],
) -> Result<Vec<Option<String>>, StoreError> {
    learn_deferring(conn, sightings, None, None)
}

/// [`learn`]; with `defer`, the last first sightings' phones hand their sends over later: the
/// `(person, phone)` pairs are pushed there for the caller to move (nothing after them in this
/// call reads messages by person). With `moved`, each `(before, after)` pair of person keys
/// that a sighted id named before the call and after it, where they differ (an implicit phone
/// person now a stored one, a person merged into another), is pushed there, once.
fn learn_deferring(
    conn: &Connection,
    sightings: &[Sighting],
    defer: Option<&mut Vec<(String, String)>>,
    moved: Option<&mut Vec<(String, String)>>,
) -> Result<Vec<Option<String>>, StoreError> {
    let mut all: Vec<&str> = sightings
        .iter()
        .flat_map(|s| ids_of(s).into_iter().map(|(id, _)| id))
        .collect();
    all.sort_unstable();
    all.dedup();
    if sightings.len() < 2 {
        let before = match moved {
            Some(_) => named_before(conn, &all, None)?,
            None => Vec::new(),
        };
        let out = sightings
            .iter()
            .map(|s| learn_one(conn, s))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(moved) = moved {
            record_moves(conn, &before, None, moved)?;
        }
        return Ok(out);
    }
    let mut known = Some(linked_many(conn, &all)?);
    let before = match (&moved, &known) {
        (Some(_), Some(map)) => named_before(conn, &all, Some(map))?,
        _ => Vec::new(),
    };
    let mut out = Vec::with_capacity(sightings.len());
    // First sightings (no id linked yet, none shared with another pending one), written
    // set-wise before anything else reads what they create.
    let mut fresh: Vec<(usize, &Sighting)> = Vec::new();
    // Whether any sighting took `learn_one` (which may move ids this call does not track).
    let mut slow = false;
    for s in sightings {
        let ids = ids_of(s);
        if ids.is_empty() {
            out.push(None);
            continue;
        }
        if let Some(map) = known.as_mut()
            && ids.iter().all(|(id, _)| !map.contains_key(*id))
        {
            let key = new_person_key(s.at);
            for (id, _) in &ids {
                map.insert((*id).to_string(), key.clone());
            }
            fresh.push((out.len(), s));
            out.push(Some(key));
            continue;
        }
        learn_fresh(conn, &fresh, &out, None)?;
        fresh.clear();
        let Some(map) = known.as_mut() else {
            slow = true;
            out.push(learn_one(conn, s)?);
            continue;
        };
        let people: Vec<Option<&String>> = ids.iter().map(|(id, _)| map.get(*id)).collect();
        if let Some(Some(p)) = people.first()
            && people.iter().all(|q| *q == Some(*p))
        {
            let p = (*p).clone();
            update_profile(conn, &p, s)?;
            out.push(Some(p));
            continue;
        }
        let mut distinct: Vec<&String> = people.iter().flatten().copied().collect();
        distinct.sort_unstable();
        distinct.dedup();
        let merges = distinct.len() > 1;
        slow = true;
        let person = learn_one(conn, s)?;
        match &person {
            Some(p) if !merges => {
                for (id, _) in &ids {
                    map.insert((*id).to_string(), p.clone());
                }
            }
            // A merge moved other ids too: look each one up again.
            _ => known = None,
        }
        out.push(person);
    }
    learn_fresh(conn, &fresh, &out, defer)?;
    if let Some(moved) = moved {
        let now_known = if slow { None } else { known.as_ref() };
        record_moves(conn, &before, now_known, moved)?;
    }
    Ok(out)
}

/// The person each of `ids` names now, as [`resolve_all`] answers (`linked`: what
/// [`linked_many`] found for them already): the ids that name one, with it.
fn named_before(
    conn: &Connection,
    ids: &[&str],
    linked: Option<&HashMap<String, String>>,
) -> Result<Vec<(String, String)>, StoreError> {
    let people = match linked {
        Some(map) => resolve_linked(conn, ids, map)?,
        None => resolve_linked(conn, ids, &linked_many(conn, ids)?)?,
    };
    Ok(ids
        .iter()
        .zip(people)
        .filter_map(|(id, p)| p.map(|p| ((*id).to_string(), p)))
        .collect())
}

/// Pushes `(before, after)` for each id of `before` whose person changed, once per pair:
/// `after` from `known` (what the call linked, when it took no path that may move other ids) or
/// looked up afresh.
fn record_moves(
    conn: &Connection,
    before: &[(String, String)],
    known: Option<&HashMap<String, String>>,
    moved: &mut Vec<(String, String)>,
) -> Result<(), StoreError> {
    if before.is_empty() {
        return Ok(());
    }
    let after: Vec<Option<String>> = match known {
        Some(map) => before
            .iter()
            .map(|(id, old)| Some(map.get(id).unwrap_or(old).clone()))
            .collect(),
        None => {
            let ids: Vec<String> = before.iter().map(|(id, _)| id.clone()).collect();
            resolve_all(conn, &ids)?
        }
    };
    for ((_, old), new) in before.iter().zip(after) {
        if let Some(new) = new
            && new != *old
            && !moved.iter().any(|(o, n)| o == old && *n == new)
        {
            moved.push((old.clone(), new));
        }
    }
    Ok(())
}

/// Stores first sightings set-wise, as [`learn_one`] would one by one: a person each (key from
/// `keys[i]`, its ids current, its profile), the ids linked, the links on its history, and the
/// sends stored under a sighted phone's implicit person adopted (the rare phone with consents,
/// windows or inbound messages of its own is adopted in full). With `defer`, the sends' move is
/// left to the caller: its `(person, phone)` pairs are pushed there.
fn learn_fresh(
    conn: &Connection,
    fresh: &[(usize, &Sighting)],
    keys: &[Option<String>],
    defer: Option<&mut Vec<(String, String)>>,
) -> Result<(), StoreError> {
    if fresh.is_empty() {
        return Ok(());
    }
    let key = |i: usize| keys.get(i).and_then(|k| k.as_deref()).unwrap_or_default();
    for (start, len) in set_chunks(fresh.len()) {
        let sql = format!(
            "INSERT{OR_FAIL} INTO people (person, created_at, updated_at, wa_id, user_id, \
             parent_user_id, username, profile_name) VALUES {}",
            value_rows(len, &[None; 8])
        );
        let rows = &fresh[start..start + len];
        let mut args: Vec<&dyn ToSql> = Vec::with_capacity(8 * len);
        for (i, s) in rows {
            args.push(&keys[*i]);
            args.push(&s.at);
            args.push(&s.at);
            args.push(&s.wa_id);
            args.push(&s.user_id);
            args.push(&s.parent_user_id);
            args.push(&s.username);
            args.push(&s.profile_name);
        }
        conn.prepare_cached(&sql)?.execute(args.as_slice())?;
    }
    // (person, id, kind, at) of every link, in order.
    let links: Vec<(&str, &str, &'static str, Millis)> = fresh
        .iter()
        .flat_map(|(i, s)| {
            ids_of(s)
                .into_iter()
                .map(move |(id, kind)| (key(*i), id, kind.as_str(), s.at))
        })
        .collect();
    let details = links
        .iter()
        .map(|(_, id, kind, _)| json_text(&serde_json::json!({ "id": id, "kind": kind })))
        .collect::<Result<Vec<_>, _>>()?;
    for (start, len) in set_chunks(links.len()) {
        let rows = &links[start..start + len];
        let sql = format!(
            "INSERT{OR_FAIL} INTO identities (id, person, kind, since) VALUES {}",
            value_rows(len, &[None; 4])
        );
        let mut args: Vec<&dyn ToSql> = Vec::with_capacity(4 * len);
        for (person, id, kind, at) in rows {
            args.extend([sql_ref(id), sql_ref(person), sql_ref(kind), sql_ref(at)]);
        }
        conn.prepare_cached(&sql)?.execute(args.as_slice())?;
        let sql = format!(
            "INSERT{OR_FAIL} INTO identity_history (person, at, kind, detail) VALUES {}",
            value_rows(len, &[None; 4])
        );
        let mut args: Vec<&dyn ToSql> = Vec::with_capacity(4 * len);
        for ((person, _, _, at), detail) in rows.iter().zip(&details[start..start + len]) {
            args.extend([
                sql_ref(person),
                sql_ref(at),
                sql_ref(&"linked"),
                sql_ref(detail),
            ]);
        }
        conn.prepare_cached(&sql)?.execute(args.as_slice())?;
    }
    // (person, phone) of each sighted phone: its implicit person's sends move.
    let adopted: Vec<(&str, &str)> = fresh
        .iter()
        .filter_map(|(i, s)| {
            s.wa_id
                .as_deref()
                .filter(|w| !w.is_empty())
                .map(|w| (key(*i), w))
        })
        .collect();
    match defer {
        Some(later) => later.extend(
            adopted
                .iter()
                .map(|(person, phone)| ((*person).to_string(), (*phone).to_string())),
        ),
        None => adopt_messages(conn, &adopted)?,
    }
    for (start, len) in set_chunks(adopted.len()) {
        let rows = &adopted[start..start + len];
        let list = in_list(len);
        let sql = format!(
            "SELECT wa_id FROM consents WHERE wa_id IN ({list}) \
             UNION SELECT wa_id FROM consent_history WHERE wa_id IN ({list}) \
             UNION SELECT wa_id FROM inbound_windows WHERE wa_id IN ({list}) \
             UNION SELECT person FROM inbound_messages WHERE person IN ({list})"
        );
        let phones: Vec<&str> = rows.iter().map(|(_, phone)| *phone).collect();
        let with_state: HashSet<String> = conn
            .prepare_cached(&sql)?
            .query_map(params_from_iter(phones.iter()), |r| r.get::<_, String>(0))?
            .collect::<Result<_, _>>()?;
        for (person, phone) in rows {
            if with_state.contains(*phone) {
                adopt(conn, person, phone)?;
            }
        }
    }
    Ok(())
}

/// Moves the sends stored under each `(person, phone)`'s phone (its implicit person) to
/// `person`: one `UPDATE … FROM (VALUES …)` per chunk.
fn adopt_messages(conn: &Connection, adoptions: &[(&str, &str)]) -> Result<(), StoreError> {
    for (start, len) in set_chunks(adoptions.len()) {
        let sql = format!(
            "UPDATE{OR_FAIL} messages SET person = v.column1 FROM (SELECT * FROM (VALUES {}) AS r) AS v \
             WHERE messages.person = v.column2",
            value_rows(len, &[Some("TEXT"), Some("TEXT")])
        );
        let mut args: Vec<&dyn ToSql> = Vec::with_capacity(2 * len);
        for (person, phone) in &adoptions[start..start + len] {
            args.extend([sql_ref(person), sql_ref(phone)]);
        }
        conn.prepare_cached(&sql)?.execute(args.as_slice())?;
    }
    Ok(())
}

pub(super) fn change_identity(conn: &Connection, u: &IdentityUpdate) -> Result<String, StoreError> {
    let mut found = None;
    for id in [
        u.previous_user_id.as_deref(),
        u.previous_wa_id.as_deref(),
        u.user_id.as_deref(),
        u.wa_id.as_deref(),
    ]
    .into_iter()
    .flatten()
    {
        if let Some(p) = linked(conn, id)? {
            found = Some(p);
            break;
        }
    }
    let person = match found {
        Some(p) => p,
        None => create_person(conn, u.at)?,
    };
    // The user left the previous phone (a new one, or one the platform withholds): it is
    // unlinked, since numbers are given to other people later.
    // The previous phone's implicit state (sends while nobody was linked to it) was theirs.
    if let Some(old) = &u.previous_wa_id
        && linked(conn, old)?.is_none()
    {
        adopt(conn, &person, old)?;
    }
    if let Some(old) = &u.previous_wa_id
        && u.wa_id.as_deref() != Some(old.as_str())
    {
        let unlinked = conn
            .prepare_cached("DELETE FROM identities WHERE id = ?1 AND person = ?2")?
            .execute(params![old, person])?;
        if unlinked > 0 {
            conn.prepare_cached(
                "UPDATE people SET wa_id = NULL, updated_at = ?3 WHERE person = ?1 AND wa_id = ?2",
            )?
            .execute(params![person, old, u.at])?;
            history(
                conn,
                &person,
                u.at,
                "number_changed",
                serde_json::json!({ "previous": old, "current": u.wa_id, "source": u.source }),
            )?;
        }
    }
    let current: Option<String> = conn
        .prepare_cached("SELECT user_id FROM people WHERE person = ?1")?
        .query_row([&person], |r| r.get(0))
        .optional()?
        .flatten();
    if let Some(new) = &u.user_id
        && current.as_deref() != Some(new.as_str())
    {
        history(
            conn,
            &person,
            u.at,
            "user_id_changed",
            serde_json::json!({ "previous": u.previous_user_id, "current": new, "source": u.source }),
        )?;
    }
    for (id, kind) in [
        (u.wa_id.as_deref(), IdKind::Phone),
        (u.user_id.as_deref(), IdKind::UserId),
        (u.parent_user_id.as_deref(), IdKind::ParentUserId),
    ] {
        let Some(id) = id else { continue };
        match linked(conn, id)? {
            Some(other) if other != person => merge(conn, &person, &other, u.at)?,
            Some(_) => {}
            None if kind == IdKind::Phone => adopt(conn, &person, id)?,
            None => {}
        }
        link(conn, &person, id, kind, u.at)?;
        set_current(conn, &person, id, kind, u.at)?;
    }
    Ok(person)
}

/// Makes `id` the person's current id of its kind.
pub(super) fn set_current(
    conn: &Connection,
    person: &str,
    id: &str,
    kind: IdKind,
    at: Millis,
) -> Result<(), StoreError> {
    let column = match kind {
        IdKind::Phone => "wa_id",
        IdKind::UserId => "user_id",
        IdKind::ParentUserId => "parent_user_id",
    };
    conn.prepare_cached(&format!(
        "UPDATE people SET {column} = ?2, updated_at = ?3 WHERE person = ?1"
    ))?
    .execute(params![person, id, at])?;
    Ok(())
}

pub(super) const PERSON_COLUMNS: &str =
    "person, wa_id, user_id, parent_user_id, username, profile_name, updated_at";

pub(super) fn person(conn: &Connection, id: &str) -> Result<Option<Person>, StoreError> {
    let Some(key) = lookup(conn, id)? else {
        return Ok(None);
    };
    if key == id && IdKind::of(id) == Some(IdKind::Phone) {
        // A phone nobody is linked to: its implicit person, nothing stored yet.
        return Ok(Some(Person {
            key: key.clone(),
            wa_id: Some(key),
            user_id: None,
            parent_user_id: None,
            username: None,
            profile_name: None,
            updated_at: 0,
        }));
    }
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {PERSON_COLUMNS} FROM people WHERE person = ?1"
        ))?
        .query_row([key], |r| {
            Ok(Person {
                key: r.get(0)?,
                wa_id: r.get(1)?,
                user_id: r.get(2)?,
                parent_user_id: r.get(3)?,
                username: r.get(4)?,
                profile_name: r.get(5)?,
                updated_at: r.get(6)?,
            })
        })
        .optional()?)
}

pub(super) fn identifiers(
    conn: &Connection,
    key: &str,
) -> Result<Vec<(String, IdKind)>, StoreError> {
    let mut st = conn
        .prepare_cached("SELECT id, kind FROM identities WHERE person = ?1 ORDER BY since, id")?;
    let rows = st.query_map([key], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, kind) = row?;
        let kind = IdKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("identity kind {kind:?}")))?;
        out.push((id, kind));
    }
    Ok(out)
}

pub(super) fn identity_history(
    conn: &Connection,
    key: &str,
) -> Result<Vec<IdentityChange>, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT seq, person, at, kind, detail FROM identity_history WHERE person = ?1 ORDER BY seq",
    )?;
    let rows = st.query_map([key], |r| {
        let detail: String = r.get(4)?;
        Ok(IdentityChange {
            seq: r.get(0)?,
            person: r.get(1)?,
            at: r.get(2)?,
            kind: r.get(3)?,
            detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

// ---------------------------------------------------------------------------------------------
// Consents, conversation windows, templates, cursors

pub(super) fn put_consents(
    conn: &Connection,
    changes: &[ConsentChange],
) -> Result<Vec<bool>, StoreError> {
    let mut history = conn.prepare_cached(
        "INSERT INTO consent_history (wa_id, category, status, source, evidence, at, recorded_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    // Recorded order decides, except that an opt-in claiming a time before the opt-out in force
    // is history only (the person opted in before they opted out). An opt-out always takes.
    let mut current = conn.prepare_cached(
        "INSERT INTO consents (wa_id, category, status, source, evidence, at, recorded_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (wa_id, category) DO UPDATE SET \
         status = excluded.status, source = excluded.source, evidence = excluded.evidence, \
         at = excluded.at, recorded_at = excluded.recorded_at \
         WHERE excluded.status = 'opted_out' OR consents.status = 'opted_in' \
         OR excluded.at >= consents.at",
    )?;
    let mut out = Vec::with_capacity(changes.len());
    for c in changes {
        // Stored under the person's key, whichever of their ids the change names.
        let key = key_of(conn, &c.wa_id, Some(c.recorded_at))?.unwrap_or_else(|| c.wa_id.clone());
        let row = params![
            key,
            c.category,
            c.status,
            c.source,
            c.evidence,
            c.at,
            c.recorded_at
        ];
        history.execute(row)?;
        let became = current.execute(row)?;
        out.push(became == 1);
    }
    Ok(out)
}

pub(super) fn consent(r: &Row<'_>) -> sql::Result<Consent> {
    Ok(Consent {
        wa_id: r.get(0)?,
        category: r.get(1)?,
        status: r.get(2)?,
        source: r.get(3)?,
        evidence: r.get(4)?,
        at: r.get(5)?,
        recorded_at: r.get(6)?,
    })
}

pub(super) fn consents_where(
    conn: &Connection,
    sql: &str,
    wa_id: &str,
) -> Result<Vec<Consent>, StoreError> {
    let Some(key) = key_of(conn, wa_id, None)? else {
        return Ok(Vec::new());
    };
    consents_of_key(conn, sql, &key, wa_id)
}

/// The consents stored under a person's `key` (`sql` is [`CONSENTS`] or [`CONSENT_HISTORY`]),
/// each named `wa_id`.
pub(super) fn consents_of_key(
    conn: &Connection,
    sql: &str,
    key: &str,
    wa_id: &str,
) -> Result<Vec<Consent>, StoreError> {
    let mut st = conn.prepare_cached(sql)?;
    // Named as asked: the person's consents hold whichever of their ids the caller used.
    let rows = st.query_map([key], |r| {
        consent(r).map(|c| Consent {
            wa_id: wa_id.to_string(),
            ..c
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

pub(super) const CONSENTS: &str = "SELECT wa_id, category, status, source, evidence, at, recorded_at \
     FROM consents WHERE wa_id = ?1 ORDER BY category";
pub(super) const CONSENT_HISTORY: &str = "SELECT wa_id, category, status, source, evidence, at, recorded_at \
     FROM consent_history WHERE wa_id = ?1 ORDER BY seq";

pub(super) fn note_inbound(
    conn: &Connection,
    notes: &[(String, String, Millis)],
) -> Result<(), StoreError> {
    let mut st = conn.prepare_cached(
        "INSERT INTO inbound_windows (phone_number_id, wa_id, last_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (phone_number_id, wa_id) DO UPDATE SET last_at = excluded.last_at \
         WHERE excluded.last_at > inbound_windows.last_at",
    )?;
    for (pnid, wa_id, at) in notes {
        st.execute(params![pnid, wa_id, at])?;
    }
    Ok(())
}

pub(super) fn last_inbound(
    conn: &Connection,
    (pnid, wa_id): &(String, String),
) -> Result<Option<Millis>, StoreError> {
    let Some(wa_id) = key_of(conn, wa_id, None)? else {
        return Ok(None);
    };
    Ok(conn
        .prepare_cached(
            "SELECT last_at FROM inbound_windows WHERE phone_number_id = ?1 AND wa_id = ?2",
        )?
        .query_row([pnid, &wa_id], |r| r.get(0))
        .optional()?)
}

/// Each count reads a partial index of its states (never the whole table).
pub(super) fn queue_depth(conn: &Connection) -> Result<Vec<(String, Lane, u64)>, StoreError> {
    const COUNTS: [(&str, &str); 4] = [
        (
            "queued",
            "SELECT 'queued', lane, count(*) FROM messages WHERE state = 'queued' \
             AND parked_reason IS NULL GROUP BY lane",
        ),
        (
            "parked",
            "SELECT 'parked', lane, count(*) FROM messages WHERE state = 'queued' \
             AND parked_reason IS NOT NULL GROUP BY lane",
        ),
        (
            "sending",
            "SELECT 'sending', lane, count(*) FROM messages WHERE state = 'sending' GROUP BY lane",
        ),
        (
            "in_flight",
            "SELECT state, lane, count(*) FROM messages \
             WHERE (state = 'accepted' OR state = 'held' OR state = 'sent') GROUP BY state, lane",
        ),
    ];
    let mut out = Vec::new();
    for (_, sql) in COUNTS {
        let mut st = conn.prepare_cached(sql)?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Lane>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        for row in rows {
            let (state, lane, n) = row?;
            out.push((state, lane, u64::try_from(n).unwrap_or(0)));
        }
    }
    Ok(out)
}

pub(super) fn upsert_templates(
    conn: &Connection,
    templates: &[TemplateRecord],
) -> Result<(), StoreError> {
    let mut st = conn.prepare_cached(
        "INSERT INTO templates (name, language, category, status, id, components, updated_at, \
         parameter_format) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
         ON CONFLICT (name, language) DO UPDATE SET \
         category = excluded.category, status = excluded.status, id = excluded.id, \
         components = excluded.components, updated_at = excluded.updated_at, \
         parameter_format = excluded.parameter_format \
         WHERE excluded.updated_at >= templates.updated_at",
    )?;
    for t in templates {
        st.execute(params![
            t.name,
            t.language,
            t.category,
            t.status,
            t.id,
            t.components,
            t.updated_at,
            t.parameter_format
        ])?;
    }
    Ok(())
}

pub(super) fn template_row(r: &Row<'_>) -> sql::Result<TemplateRecord> {
    Ok(TemplateRecord {
        name: r.get(0)?,
        language: r.get(1)?,
        category: r.get(2)?,
        status: r.get(3)?,
        id: r.get(4)?,
        components: r.get(5)?,
        updated_at: r.get(6)?,
        parameter_format: r.get(7)?,
    })
}

pub(super) const TEMPLATE_COLUMNS: &str =
    "name, language, category, status, id, components, updated_at, parameter_format";

pub(super) fn template(
    conn: &Connection,
    (name, language): &(String, String),
) -> Result<Option<TemplateRecord>, StoreError> {
    let sql = format!("SELECT {TEMPLATE_COLUMNS} FROM templates WHERE name = ?1 AND language = ?2");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([name, language], template_row)
        .optional()?)
}

pub(super) fn templates(conn: &Connection) -> Result<Vec<TemplateRecord>, StoreError> {
    let sql = format!("SELECT {TEMPLATE_COLUMNS} FROM templates ORDER BY name, language");
    let mut st = conn.prepare_cached(&sql)?;
    let rows = st.query_map([], template_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// `(what, before, limit)`.
pub(super) type PruneArgs = (Prunable, Millis, usize);

pub(super) fn prune(
    conn: &Connection,
    &(what, before, limit): &PruneArgs,
) -> Result<Pruned, StoreError> {
    // (table, row key in arrival order, arrival time, rows never deleted)
    let (table, key, time, keep) = match what {
        Prunable::Orphans => ("orphan_statuses", "seq", "at", "0"),
        Prunable::DedupeKeys => ("dedupe_keys", "rowid", "at", "0"),
        Prunable::Inbox => (
            "inbox",
            "id",
            "received_at",
            "(outcome IS NULL OR outcome = 'unparsed')",
        ),
    };
    let name = format!("prune.{table}");
    let mut from = cursor(conn, &name)?;
    // A table without AUTOINCREMENT reuses keys once its newest rows are gone: a cursor past
    // every key starts over.
    let max: Option<i64> = conn
        .prepare_cached(&format!("SELECT max({key}) FROM {table}"))?
        .query_row([], |r| r.get(0))?;
    if max.is_none_or(|m| m < from) {
        from = 0;
    }
    let rows = conn
        .prepare_cached(&format!(
            "SELECT {key}, {time} < ?2, {keep} FROM {table} WHERE {key} > ?1 \
             ORDER BY {key} LIMIT ?3"
        ))?
        .query_map(params![from, before, i64_of(limit)], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, bool>(1)?,
                r.get::<_, bool>(2)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let examined = rows.len();
    let mut last = from;
    let mut reached_young = false;
    let mut delete = conn.prepare_cached(&format!("DELETE FROM {table} WHERE {key} = ?1"))?;
    let mut deleted = 0;
    for (k, old, kept) in rows {
        if !old {
            reached_young = true;
            break;
        }
        last = k;
        if !kept {
            deleted += delete.execute([k])? as u64;
        }
    }
    if last != from || from == 0 {
        set_cursor(conn, &(name, last))?;
    }
    Ok(Pruned {
        deleted,
        more: !reached_young && examined == limit,
    })
}

pub(super) fn cursor(conn: &Connection, name: &str) -> Result<i64, StoreError> {
    Ok(conn
        .prepare_cached("SELECT value FROM cursors WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

pub(super) fn set_cursor(
    conn: &Connection,
    (name, value): &(String, i64),
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO cursors (name, value) VALUES (?1, ?2) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![name, value])?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Shared rate buckets

/// `(key, rate, burst, want, now)`.
pub(super) type TakeArgs = (String, f64, u32, u32, Millis);

/// Refills the bucket for the time since its last take (in thousandths of a token: a rate in
/// tokens per second adds `rate` of them per millisecond), then grants what it holds.
pub(super) fn take_tokens(
    conn: &Connection,
    (key, rate, burst, want, now): &TakeArgs,
) -> Result<Tokens, StoreError> {
    let cap = i64::from((*burst).max(1)).saturating_mul(1_000);
    let per_ms = if rate.is_finite() { rate.max(0.0) } else { 0.0 };
    let row: Option<(i64, Millis)> = conn
        .prepare_cached("SELECT milli, updated_at FROM rate_buckets WHERE key = ?1")?
        .query_row([key], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (held, since) = row.unwrap_or((cap, *now));
    let elapsed = now.saturating_sub(since).max(0);
    let refill = (elapsed as f64 * per_ms).min(cap as f64) as i64;
    let mut milli = held.saturating_add(refill).min(cap);
    let granted = (milli / 1_000).clamp(0, i64::from(*want));
    milli -= granted * 1_000;
    conn.prepare_cached(
        "INSERT INTO rate_buckets (key, milli, updated_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (key) DO UPDATE SET milli = excluded.milli, updated_at = excluded.updated_at",
    )?
    .execute(params![key, milli, since.max(*now)])?;
    let missing = (i64::from(*want) - granted).saturating_mul(1_000) - milli;
    let next_at = if granted == i64::from(*want) || missing <= 0 {
        *now
    } else if per_ms > 0.0 {
        now.saturating_add((missing as f64 / per_ms).ceil() as Millis)
    } else {
        Millis::MAX
    };
    Ok(Tokens {
        granted: u32::try_from(granted).unwrap_or(0),
        next_at,
    })
}

/// `(role, holder, now, until)`.
pub(super) type RoleArgs = (String, String, Millis, Millis);

pub(super) fn lease_role(
    conn: &Connection,
    (role, holder, now, until): &RoleArgs,
) -> Result<bool, StoreError> {
    let changed = conn
        .prepare_cached(
            "INSERT INTO roles (role, holder, until) VALUES (?1, ?2, ?4) \
             ON CONFLICT (role) DO UPDATE SET holder = excluded.holder, until = excluded.until \
             WHERE roles.holder = excluded.holder OR roles.until <= ?3",
        )?
        .execute(params![role, holder, now, until])?;
    Ok(changed == 1)
}

// ---------------------------------------------------------------------------------------------
// Campaigns

pub(super) const CAMPAIGN_COLUMNS: &str =
    "id, name, state, reason, spec, created_at, updated_at, started_at, finished_at";

pub(super) fn campaign_row(r: &Row<'_>) -> sql::Result<CampaignRecord> {
    Ok(CampaignRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        state: r.get(2)?,
        reason: r.get(3)?,
        spec: r.get(4)?,
        created_at: r.get(5)?,
        updated_at: r.get(6)?,
        started_at: r.get(7)?,
        finished_at: r.get(8)?,
    })
}

pub(super) fn create_campaign(conn: &Connection, c: &CampaignRecord) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO campaigns (id, name, state, reason, spec, created_at, updated_at, \
         started_at, finished_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        c.id,
        c.name,
        c.state,
        c.reason,
        c.spec,
        c.created_at,
        c.updated_at,
        c.started_at,
        c.finished_at
    ])?;
    Ok(())
}

pub(super) fn campaign(conn: &Connection, id: &str) -> Result<Option<CampaignRecord>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE id = ?1"
        ))?
        .query_row([id], campaign_row)
        .optional()?)
}

pub(super) fn campaigns_in(
    conn: &Connection,
    states: &[CampaignState],
) -> Result<Vec<CampaignRecord>, StoreError> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE state = ?1 ORDER BY created_at, id"
    ))?;
    let mut out = Vec::new();
    for s in states {
        let rows = st.query_map([s], campaign_row)?;
        out.extend(rows.collect::<Result<Vec<_>, _>>()?);
    }
    out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    Ok(out)
}

pub(super) const RECIPIENT_COLUMNS: &str = "r.row, r.recipient, r.key, r.status, r.reason, r.detail, \
     r.columns, r.body, r.message_id, m.state, m.last_error_code";

pub(super) fn recipient_row(r: &Row<'_>) -> sql::Result<RecipientRecord> {
    Ok(RecipientRecord {
        row: r.get(0)?,
        recipient: r.get(1)?,
        key: r.get(2)?,
        status: r.get(3)?,
        reason: r.get(4)?,
        detail: r.get(5)?,
        columns: r.get(6)?,
        body: r.get(7)?,
        message_id: r.get(8)?,
        message_state: r.get(9)?,
        error_code: r.get(10)?,
    })
}

pub(super) fn add_recipients(
    conn: &Connection,
    (id, recipients): &(String, Vec<NewRecipient>),
) -> Result<Vec<RecipientRecord>, StoreError> {
    let mut row: i64 = conn
        .prepare_cached(
            "SELECT coalesce(max(row), 0) FROM campaign_recipients WHERE campaign = ?1",
        )?
        .query_row([id], |r| r.get(0))?;
    let mut seen = conn.prepare_cached(
        "SELECT row FROM campaign_recipients WHERE campaign = ?1 AND key = ?2 \
         AND status != 'skipped' LIMIT 1",
    )?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO campaign_recipients (campaign, row, recipient, key, status, reason, detail, \
         columns, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    let mut out = Vec::with_capacity(recipients.len());
    for n in recipients {
        row += 1;
        let mut skip = n.skip.clone();
        if skip.is_none()
            && let Some(first) = seen
                .query_row(params![id, n.key], |r| r.get::<_, i64>(0))
                .optional()?
        {
            skip = Some((
                "duplicate".to_string(),
                format!("{} is already in the audience (row {first})", n.recipient),
            ));
        }
        let status = if skip.is_some() {
            RECIPIENT_SKIPPED
        } else {
            RECIPIENT_PENDING
        };
        let (reason, detail) = match &skip {
            Some((r, d)) => (Some(r.as_str()), Some(d.as_str())),
            None => (None, None),
        };
        let body = if skip.is_some() { None } else { n.body.clone() };
        insert.execute(params![
            id,
            row,
            n.recipient,
            n.key,
            status,
            reason,
            detail,
            n.columns,
            body
        ])?;
        out.push(RecipientRecord {
            row,
            recipient: n.recipient.clone(),
            key: n.key.clone(),
            status: status.to_string(),
            reason: reason.map(str::to_string),
            detail: detail.map(str::to_string),
            columns: n.columns.clone(),
            body,
            message_id: None,
            message_state: None,
            error_code: None,
        });
    }
    Ok(out)
}

pub(super) fn contacted_by_campaigns(
    conn: &Connection,
    (keys, except, since): &(Vec<String>, String, Millis),
) -> Result<Vec<bool>, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT 1 FROM messages WHERE person = ?1 AND campaign IS NOT NULL AND campaign != ?2 \
         AND created_at >= ?3 LIMIT 1",
    )?;
    keys.iter()
        .map(|k| Ok(st.exists(params![k, except, since])?))
        .collect()
}

pub(super) fn pending_recipients(
    conn: &Connection,
    (id, limit): &(String, usize),
) -> Result<Vec<RecipientRecord>, StoreError> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {RECIPIENT_COLUMNS} FROM campaign_recipients r LEFT JOIN messages m \
         ON m.id = r.message_id WHERE r.campaign = ?1 AND r.status = 'pending' \
         ORDER BY r.row LIMIT ?2"
    ))?;
    let rows = st.query_map(params![id, i64_of(*limit)], recipient_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn release_recipients(
    conn: &Connection,
    (id, releases): &(String, Vec<Release>),
) -> Result<usize, StoreError> {
    let running: bool = conn
        .prepare_cached("SELECT 1 FROM campaigns WHERE id = ?1 AND state = 'running'")?
        .exists([id])?;
    if !running {
        return Ok(0);
    }
    let mut released = 0;
    for r in releases {
        match (&r.message, &r.skip) {
            (Some(m), _) => {
                let id_now = match enqueue_one(conn, m)? {
                    Enqueued::Inserted { id } => id,
                    Enqueued::Existing(first) => first.id,
                };
                conn.prepare_cached("UPDATE messages SET campaign = ?1 WHERE id = ?2")?
                    .execute(params![id, id_now])?;
                conn.prepare_cached(
                    "UPDATE campaign_recipients SET status = ?3, message_id = ?4 \
                     WHERE campaign = ?1 AND row = ?2 AND status = 'pending'",
                )?
                .execute(params![id, r.row, RECIPIENT_RELEASED, id_now])?;
                released += 1;
            }
            (None, Some((reason, detail))) => {
                conn.prepare_cached(
                    "UPDATE campaign_recipients SET status = ?3, reason = ?4, detail = ?5 \
                     WHERE campaign = ?1 AND row = ?2 AND status = 'pending'",
                )?
                .execute(params![id, r.row, RECIPIENT_SKIPPED, reason, detail])?;
            }
            (None, None) => {}
        }
    }
    Ok(released)
}

/// The `parked_reason` of a paused campaign's queued messages.
pub(super) fn campaign_park(id: &str) -> String {
    format!("campaign:{id}")
}

pub(super) type CampaignMove = (
    String,
    Vec<CampaignState>,
    CampaignState,
    Option<String>,
    Millis,
);

pub(super) fn set_campaign_state(
    conn: &Connection,
    (id, from, to, reason, at): &CampaignMove,
) -> Result<Option<CampaignRecord>, StoreError> {
    let Some(now) = campaign(conn, id)? else {
        return Ok(None);
    };
    if !from.contains(&now.state) {
        return Ok(None);
    }
    let started = matches!(to, CampaignState::Running) && now.started_at.is_none();
    let ended = matches!(to, CampaignState::Finished | CampaignState::Cancelled);
    conn.prepare_cached(
        "UPDATE campaigns SET state = ?2, reason = ?3, updated_at = ?4, \
         started_at = CASE WHEN ?5 THEN ?4 ELSE started_at END, \
         finished_at = CASE WHEN ?6 THEN ?4 ELSE finished_at END WHERE id = ?1",
    )?
    .execute(params![id, to, reason, at, started, ended])?;
    let park = campaign_park(id);
    let moved: Vec<String> = match to {
        CampaignState::Paused => {
            let mut st = conn.prepare_cached(
                "UPDATE messages SET parked_reason = ?2, updated_at = ?3 WHERE campaign = ?1 \
                 AND state = 'queued' AND parked_reason IS NULL RETURNING id",
            )?;
            let rows = st.query_map(params![id, park, at], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        }
        CampaignState::Running => {
            let mut st = conn.prepare_cached(
                "UPDATE messages SET parked_reason = NULL, updated_at = ?3 WHERE campaign = ?1 \
                 AND state = 'queued' AND parked_reason = ?2 RETURNING id",
            )?;
            let rows = st.query_map(params![id, park, at], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        }
        CampaignState::Cancelled => {
            let ids: Vec<String> = {
                let mut st = conn.prepare_cached(
                    "SELECT id FROM messages WHERE campaign = ?1 AND state = 'queued'",
                )?;
                let rows = st.query_map([id], |r| r.get(0))?;
                rows.collect::<Result<_, _>>()?
            };
            for m in &ids {
                cancel(conn, &(m.clone(), *at))?;
            }
            conn.prepare_cached(
                "UPDATE campaign_recipients SET status = ?2 WHERE campaign = ?1 \
                 AND status = 'pending'",
            )?
            .execute(params![id, RECIPIENT_CANCELLED])?;
            Vec::new()
        }
        _ => Vec::new(),
    };
    let kind = match to {
        CampaignState::Paused => Some(kind::PARKED),
        CampaignState::Running => Some(kind::UNPARKED),
        _ => None,
    };
    if let Some(kind) = kind {
        for m in &moved {
            let detail = serde_json::json!({ "reason": park, "campaign": id });
            insert_event(
                conn,
                m,
                &NewEvent::new(kind, *at, detail),
                MessageState::Queued,
            )?;
        }
    }
    campaign(conn, id)
}

pub(super) fn campaign_flow(conn: &Connection, id: &str) -> Result<CampaignFlow, StoreError> {
    let pending: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM (SELECT 1 FROM campaign_recipients \
             WHERE campaign = ?1 AND status = ?2 LIMIT 1) AS p",
        )?
        .query_row(params![id, RECIPIENT_PENDING], |r| r.get(0))?;
    let mut flow = CampaignFlow {
        pending: pending > 0,
        ..CampaignFlow::default()
    };
    let mut st = conn.prepare_cached(
        "SELECT state, count(*), sum(CASE WHEN not_before > created_at THEN 1 ELSE 0 END) \
         FROM messages WHERE campaign = ?1 AND state IN (?2, ?3, ?4) GROUP BY state",
    )?;
    let rows = st.query_map(
        params![
            id,
            MessageState::Queued.as_str(),
            MessageState::Sending.as_str(),
            MessageState::Held.as_str()
        ],
        |r| {
            Ok((
                r.get::<_, MessageState>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<i64>>(2)?,
            ))
        },
    )?;
    for row in rows {
        let (state, n, later) = row?;
        match state {
            MessageState::Held => flow.held += n,
            MessageState::Queued => {
                flow.outstanding += n;
                flow.deferred += later.unwrap_or(0);
            }
            _ => flow.outstanding += n,
        }
    }
    Ok(flow)
}

pub(super) fn campaign_counts(conn: &Connection, id: &str) -> Result<CampaignCounts, StoreError> {
    let mut c = CampaignCounts::default();
    {
        let mut st = conn.prepare_cached(
            "SELECT status, coalesce(reason, ''), count(*) FROM campaign_recipients \
             WHERE campaign = ?1 GROUP BY status, reason",
        )?;
        let rows = st.query_map([id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        for row in rows {
            let (status, reason, n) = row?;
            *c.recipients.entry(status.clone()).or_default() += n;
            if status == RECIPIENT_SKIPPED {
                *c.skipped.entry(reason).or_default() += n;
            }
        }
    }
    {
        let mut st = conn.prepare_cached(
            "SELECT state, category, last_error_code, parked_reason IS NOT NULL, \
             not_before > created_at, count(*) FROM messages WHERE campaign = ?1 \
             GROUP BY state, category, last_error_code, parked_reason IS NOT NULL, \
             not_before > created_at",
        )?;
        let rows = st.query_map([id], |r| {
            Ok((
                r.get::<_, MessageState>(0)?,
                r.get::<_, Category>(1)?,
                r.get::<_, Option<i64>>(2)?,
                r.get::<_, bool>(3)?,
                r.get::<_, bool>(4)?,
                r.get::<_, i64>(5)?,
            ))
        })?;
        for row in rows {
            let (state, category, code, parked, deferred, n) = row?;
            *c.messages.entry(state.as_str().to_string()).or_default() += n;
            if state == MessageState::Failed {
                let code = code.map_or_else(|| "none".to_string(), |c| c.to_string());
                *c.failed.entry(code).or_default() += n;
            }
            if state == MessageState::Queued && parked {
                c.parked += n;
            }
            if state == MessageState::Queued && deferred {
                c.deferred += n;
            }
            if matches!(
                state,
                MessageState::Sent | MessageState::Delivered | MessageState::Read
            ) {
                *c.billable.entry(category.as_str().to_string()).or_default() += n;
            }
        }
    }
    Ok(c)
}

pub(super) fn campaign_recipients(
    conn: &Connection,
    (id, state, after, limit): &(String, Option<String>, i64, usize),
) -> Result<Vec<RecipientRecord>, StoreError> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {RECIPIENT_COLUMNS} FROM campaign_recipients r LEFT JOIN messages m \
         ON m.id = r.message_id WHERE r.campaign = ?1 AND r.row > ?2 \
         AND (CAST(?3 AS TEXT) IS NULL OR r.status = ?3 OR m.state = ?3) ORDER BY r.row LIMIT ?4"
    ))?;
    let rows = st.query_map(params![id, after, state, i64_of(*limit)], recipient_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

// ---------------------------------------------------------------------------------------------
// The trait

impl Store for Backend {
    async fn enqueue(&self, messages: Vec<NewMessage>) -> Result<Vec<Enqueued>, StoreError> {
        messages.iter().try_for_each(NewMessage::validate)?;
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let (batch, answer) = self.shared.enqueues.push(messages);
        if let Some(batch) = batch {
            tokio::spawn(run_merged(self.clone(), batch, enqueue_calls, enqueue));
        }
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn get(&self, id: &str) -> Result<Option<MessageRecord>, StoreError> {
        self.read(id.to_owned(), |c, id| one_record(c, BY_ID, id))
            .await
    }

    async fn by_idempotency_key(&self, key: &str) -> Result<Option<MessageRecord>, StoreError> {
        self.read(key.to_owned(), |c, k| one_record(c, BY_IDEMPOTENCY_KEY, k))
            .await
    }

    async fn by_wamid(&self, wamid: &str) -> Result<Option<MessageRecord>, StoreError> {
        self.read(wamid.to_owned(), |c, w| one_record(c, BY_WAMID, w))
            .await
    }

    async fn events(&self, id: &str) -> Result<Vec<Event>, StoreError> {
        self.read(id.to_owned(), |c, id| events_where(c, EVENTS_OF, [id]))
            .await
    }

    async fn list(&self, filter: ListFilter) -> Result<Vec<MessageRecord>, StoreError> {
        self.read(filter, list).await
    }

    async fn claim(
        &self,
        now: Millis,
        limit: usize,
        lease_until: Millis,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.write((now, limit, lease_until), claim).await
    }

    async fn apply(&self, changes: Vec<Change>) -> Result<Vec<bool>, StoreError> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let (batch, answer) = self.shared.applies.push(changes);
        if let Some(batch) = batch {
            tokio::spawn(run_merged(self.clone(), batch, apply_calls, apply));
        }
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn apply_statuses(
        &self,
        updates: Vec<StatusUpdate>,
    ) -> Result<Vec<StatusApplied>, StoreError> {
        if updates.is_empty() {
            return Ok(Vec::new());
        }
        self.write(updates, |c, u| apply_statuses(c, u)).await
    }

    async fn park_template(
        &self,
        name: &str,
        language: Option<&str>,
        now: Millis,
    ) -> Result<u64, StoreError> {
        let scope = (name.to_owned(), language.map(str::to_owned), now);
        self.write(scope, park_template).await
    }

    async fn unpark_template(
        &self,
        name: &str,
        language: Option<&str>,
        now: Millis,
    ) -> Result<u64, StoreError> {
        let scope = (name.to_owned(), language.map(str::to_owned), now);
        self.write(scope, unpark_template).await
    }

    async fn expired_leases(&self, now: Millis) -> Result<Vec<MessageRecord>, StoreError> {
        self.read(now, |c, now| records(c, EXPIRED_LEASES, [now]))
            .await
    }

    async fn overdue(&self, now: Millis, limit: usize) -> Result<Vec<MessageRecord>, StoreError> {
        self.read((now, i64_of(limit)), |c, (now, limit)| {
            records(c, OVERDUE, [now, limit])
        })
        .await
    }

    async fn expire_parked(&self, now: Millis, limit: usize) -> Result<Vec<String>, StoreError> {
        self.write((now, limit), expire_parked).await
    }

    async fn sequence_timeouts(
        &self,
        now: Millis,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        self.write((now, limit), sequence_timeouts).await
    }

    async fn park_orphan(
        &self,
        wamid: &str,
        payload: String,
        at: Millis,
    ) -> Result<(), StoreError> {
        self.write((wamid.to_owned(), payload, at), park_orphan)
            .await
    }

    async fn take_orphans(&self, wamid: &str) -> Result<Vec<String>, StoreError> {
        self.write(wamid.to_owned(), |c, w| take_orphans(c, w))
            .await
    }

    async fn append_inbox(&self, items: Vec<InboxItem>) -> Result<Vec<i64>, StoreError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        self.write(items, |c, i| append_inbox(c, i)).await
    }

    async fn pending_inbox(&self, limit: usize) -> Result<Vec<InboxRow>, StoreError> {
        self.read(limit, pending_inbox).await
    }

    async fn finish_inbox(&self, outcomes: Vec<(i64, InboxOutcome)>) -> Result<(), StoreError> {
        if outcomes.is_empty() {
            return Ok(());
        }
        self.write(outcomes, |c, o| finish_inbox(c, o)).await
    }

    async fn remember_keys(&self, keys: Vec<String>, at: Millis) -> Result<Vec<bool>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.write((keys, at), remember_keys).await
    }

    async fn put_consents(&self, changes: Vec<ConsentChange>) -> Result<Vec<bool>, StoreError> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        self.write(changes, |c, ch| put_consents(c, ch)).await
    }

    async fn consents(&self, wa_id: &str) -> Result<Vec<Consent>, StoreError> {
        self.read(wa_id.to_owned(), |c, w| consents_where(c, CONSENTS, w))
            .await
    }

    async fn consent_history(&self, wa_id: &str) -> Result<Vec<Consent>, StoreError> {
        self.read(wa_id.to_owned(), |c, w| {
            consents_where(c, CONSENT_HISTORY, w)
        })
        .await
    }

    async fn note_inbound(&self, notes: Vec<(String, String, Millis)>) -> Result<(), StoreError> {
        if notes.is_empty() {
            return Ok(());
        }
        self.write(notes, |c, n| note_inbound(c, n)).await
    }

    async fn last_inbound(
        &self,
        phone_number_id: &str,
        wa_id: &str,
    ) -> Result<Option<Millis>, StoreError> {
        let key = (phone_number_id.to_owned(), wa_id.to_owned());
        self.read(key, last_inbound).await
    }

    async fn record_inbound(&self, messages: Vec<InboundRecord>) -> Result<Vec<bool>, StoreError> {
        self.write(messages, |c, m| record_inbound(c, m)).await
    }

    async fn conversation(
        &self,
        wa_id: &str,
        before: Option<ConversationCursor>,
        limit: usize,
    ) -> Result<Vec<ConversationItem>, StoreError> {
        self.read((wa_id.to_owned(), before, limit), conversation)
            .await
    }

    async fn cancel(&self, id: &str, at: Millis) -> Result<Option<MessageRecord>, StoreError> {
        self.write((id.to_owned(), at), cancel).await
    }

    async fn resolve(&self, id: &str) -> Result<Option<String>, StoreError> {
        self.read(id.to_owned(), |c, id| resolve(c, id)).await
    }

    async fn resolve_many(&self, ids: Vec<String>) -> Result<Vec<Option<String>>, StoreError> {
        self.read(ids, |c, ids| resolve_all(c, ids)).await
    }

    async fn consents_many(&self, ids: Vec<String>) -> Result<Vec<Vec<Consent>>, StoreError> {
        self.read(ids, |c, ids| {
            ids.iter()
                .map(|id| {
                    if id.starts_with(PERSON_KEY_PREFIX) {
                        // A key `resolve` returned: no identity look-up.
                        consents_of_key(c, CONSENTS, id, id)
                    } else {
                        consents_where(c, CONSENTS, id)
                    }
                })
                .collect()
        })
        .await
    }

    async fn person_key(&self, id: &str, kind: IdKind, at: Millis) -> Result<String, StoreError> {
        self.write((id.to_owned(), kind, at), person_key).await
    }

    async fn learn(&self, sightings: Vec<Sighting>) -> Result<Vec<Option<String>>, StoreError> {
        if sightings.is_empty() {
            return Ok(Vec::new());
        }
        self.write(sightings, |c, s| learn(c, s)).await
    }

    async fn learn_and_apply(
        &self,
        sightings: Vec<Sighting>,
        updates: Vec<StatusUpdate>,
    ) -> Result<Learned, StoreError> {
        if sightings.is_empty() {
            return Ok(Learned {
                applied: self.apply_statuses(updates).await?,
                ..Learned::default()
            });
        }
        self.write((sightings, updates), learn_and_apply).await
    }

    async fn change_identity(&self, update: IdentityUpdate) -> Result<String, StoreError> {
        self.write(update, change_identity).await
    }

    async fn person(&self, id: &str) -> Result<Option<Person>, StoreError> {
        self.read(id.to_owned(), |c, id| person(c, id)).await
    }

    async fn identifiers(&self, key: &str) -> Result<Vec<(String, IdKind)>, StoreError> {
        self.read(key.to_owned(), |c, k| identifiers(c, k)).await
    }

    async fn identity_history(&self, key: &str) -> Result<Vec<IdentityChange>, StoreError> {
        self.read(key.to_owned(), |c, k| identity_history(c, k))
            .await
    }

    async fn upsert_templates(&self, templates: Vec<TemplateRecord>) -> Result<(), StoreError> {
        if templates.is_empty() {
            return Ok(());
        }
        self.write(templates, |c, t| upsert_templates(c, t)).await
    }

    async fn template(
        &self,
        name: &str,
        language: &str,
    ) -> Result<Option<TemplateRecord>, StoreError> {
        self.read((name.to_owned(), language.to_owned()), template)
            .await
    }

    async fn templates(&self) -> Result<Vec<TemplateRecord>, StoreError> {
        self.read((), |c, ()| templates(c)).await
    }

    fn shared(&self) -> bool {
        SHARED
    }

    async fn take_tokens(
        &self,
        key: &str,
        rate: f64,
        burst: u32,
        want: u32,
        now: Millis,
    ) -> Result<Tokens, StoreError> {
        self.write((key.to_owned(), rate, burst, want, now), take_tokens)
            .await
    }

    async fn lease_role(
        &self,
        role: &str,
        holder: &str,
        now: Millis,
        until: Millis,
    ) -> Result<bool, StoreError> {
        self.write((role.to_owned(), holder.to_owned(), now, until), lease_role)
            .await
    }

    async fn events_after(&self, seq: i64, limit: usize) -> Result<Vec<Event>, StoreError> {
        self.read((seq, i64_of(limit)), |c, (seq, limit)| {
            events_where(c, EVENTS_AFTER, [seq, limit])
        })
        .await
    }

    async fn cursor(&self, name: &str) -> Result<i64, StoreError> {
        self.read(name.to_owned(), |c, n| cursor(c, n)).await
    }

    async fn queue_depth(&self) -> Result<Vec<(String, Lane, u64)>, StoreError> {
        self.read((), |c, _| queue_depth(c)).await
    }

    async fn last_event_seq(&self) -> Result<i64, StoreError> {
        self.read((), |c, _| {
            Ok(
                c.prepare_cached("SELECT coalesce(max(seq), 0) FROM events")?
                    .query_row([], |r| r.get(0))?,
            )
        })
        .await
    }

    async fn set_cursor(&self, name: &str, value: i64) -> Result<(), StoreError> {
        self.write((name.to_owned(), value), set_cursor).await
    }

    async fn prune(
        &self,
        what: Prunable,
        before: Millis,
        limit: usize,
    ) -> Result<Pruned, StoreError> {
        self.write((what, before, limit.max(1)), prune).await
    }

    async fn create_campaign(&self, campaign: CampaignRecord) -> Result<(), StoreError> {
        self.write(campaign, create_campaign).await
    }

    async fn campaign(&self, id: &str) -> Result<Option<CampaignRecord>, StoreError> {
        self.read(id.to_owned(), |c, id| campaign(c, id)).await
    }

    async fn campaigns_in(
        &self,
        states: Vec<CampaignState>,
    ) -> Result<Vec<CampaignRecord>, StoreError> {
        self.read(states, |c, s| campaigns_in(c, s)).await
    }

    async fn add_recipients(
        &self,
        campaign: &str,
        recipients: Vec<NewRecipient>,
    ) -> Result<Vec<RecipientRecord>, StoreError> {
        self.write((campaign.to_owned(), recipients), add_recipients)
            .await
    }

    async fn contacted_by_campaigns(
        &self,
        keys: Vec<String>,
        except: &str,
        since: Millis,
    ) -> Result<Vec<bool>, StoreError> {
        self.read((keys, except.to_owned(), since), contacted_by_campaigns)
            .await
    }

    async fn pending_recipients(
        &self,
        campaign: &str,
        limit: usize,
    ) -> Result<Vec<RecipientRecord>, StoreError> {
        self.read((campaign.to_owned(), limit), pending_recipients)
            .await
    }

    async fn release_recipients(
        &self,
        campaign: &str,
        releases: Vec<Release>,
    ) -> Result<usize, StoreError> {
        for r in &releases {
            if let Some(m) = &r.message {
                m.validate()?;
            }
        }
        self.write((campaign.to_owned(), releases), release_recipients)
            .await
    }

    async fn set_campaign_state(
        &self,
        id: &str,
        from: Vec<CampaignState>,
        to: CampaignState,
        reason: Option<String>,
        at: Millis,
    ) -> Result<Option<CampaignRecord>, StoreError> {
        self.write((id.to_owned(), from, to, reason, at), set_campaign_state)
            .await
    }

    async fn campaign_event(
        &self,
        campaign: &str,
        kind: &str,
        at: Millis,
        state: CampaignState,
        detail: serde_json::Value,
    ) -> Result<(), StoreError> {
        let row = (
            campaign.to_owned(),
            kind.to_owned(),
            at,
            state.to_string(),
            detail.to_string(),
        );
        self.write(row, |c, (id, kind, at, state, detail)| {
            c.prepare_cached(
                "INSERT INTO events (message_id, kind, at, detail, state) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![id, kind, at, detail, state])?;
            Ok(())
        })
        .await
    }

    async fn campaign_flow(&self, id: &str) -> Result<CampaignFlow, StoreError> {
        self.read(id.to_owned(), |c, id| campaign_flow(c, id)).await
    }

    async fn campaign_counts(&self, id: &str) -> Result<CampaignCounts, StoreError> {
        self.read(id.to_owned(), |c, id| campaign_counts(c, id))
            .await
    }

    async fn campaign_recipients(
        &self,
        id: &str,
        state: Option<String>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<RecipientRecord>, StoreError> {
        self.read((id.to_owned(), state, after, limit), campaign_recipients)
            .await
    }
}
