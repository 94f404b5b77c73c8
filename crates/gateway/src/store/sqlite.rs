//! [`Store`] on SQLite (embedded, the default backend).
//!
//! **Writes are group-committed.** One writer connection is owned by a background task fed by a
//! bounded queue. The task takes whatever is queued (up to [`SqliteOptions::max_batch`] calls),
//! runs every call in ONE `BEGIN IMMEDIATE` transaction on a blocking thread, commits, and only
//! then answers each caller: a write's future resolves once it is durable, and thousands of calls
//! share one fsync. Being the only writer also serialises read-modify-write operations (claims,
//! statuses, idempotency, dedupe), so they need no locks. If a batch fails, its calls are re-run
//! one transaction each, so one bad call fails alone.
//!
//! **Reads** go through a small pool of read-only connections (WAL readers never block the
//! writer). An in-memory store has a single connection, so its reads queue with the writes.
//!
//! **Shutdown**: the writer stops when the [`SqliteOptions::cancel`] token fires, when
//! [`SqliteStore::close`] is called, or when the last handle is dropped; it always commits what
//! was queued first. Writes made after that fail with [`StoreError::Closed`] (reads of a file
//! database keep working until `close`).
//!
//! The schema is created at open and versioned with `PRAGMA user_version` (see `MIGRATIONS`).
//! There are no foreign keys: events and orphans refer to messages by id/wamid, and nothing is
//! deleted except by [`Store::prune`] (orphans, dedupe keys, processed inbox bodies; see
//! `crate::retention`).
//! The operations themselves are `logic.rs`, shared with the PostgreSQL backend; this module
//! supplies the connections, the writer, the readers and the schema.
//!
//! rusqlite is used rather than sqlx: sqlx runs every statement through a channel to a
//! per-connection thread, which measured ~100 µs per statement on the 2-core target; a batch on
//! one blocking thread with cached statements costs a few µs per statement.

use super::{
    CampaignCounts, CampaignFlow, CampaignRecord, Change, Consent, ConsentChange,
    ConversationCursor, ConversationItem, Enqueued, Event, IdKind, IdentityChange, IdentityUpdate,
    InboundRecord, InboxItem, InboxOutcome, InboxRow, Learned, ListFilter, MessageRecord, NewEvent,
    NewMessage, NewRecipient, PARKED_TEMPLATE_PAUSED, Person, Prunable, Pruned,
    RECIPIENT_CANCELLED, RECIPIENT_PENDING, RECIPIENT_RELEASED, RECIPIENT_SKIPPED, RecipientRecord,
    Release, Sighting, StatusApplied, StatusUpdate, Store, StoreError, TemplateRecord, TemplateRef,
    Tokens, kind,
};
use crate::clock::Millis;
use crate::model::{
    CampaignState, Category, ConsentStatus, Lane, MessageState, OnSequenceFailure,
    OnSequenceTimeout, Progress, SequenceStep, observe,
};
use rusqlite as sql;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, Value, ValueRef};
use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Row, ToSql, TransactionBehavior, params,
    params_from_iter,
};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

/// SQLite's `synchronous` setting (with WAL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// Every commit is fsynced: an acknowledged write survives a power loss. The default.
    #[default]
    Full,
    /// The WAL is fsynced only at checkpoints: an acknowledged write survives a process crash
    /// (`kill -9`) but the last commits may be lost on a power loss or OS crash. Faster.
    Normal,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        }
    }
}

/// How to open a [`SqliteStore`].
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Durability of commits.
    pub synchronous: Synchronous,
    /// Read-only connections for reads (file databases; at least 1).
    pub readers: usize,
    /// How long a connection waits on a lock held by another process.
    pub busy_timeout: Duration,
    /// Most calls one commit takes.
    pub max_batch: usize,
    /// Bound of the write queue (callers wait when it is full).
    pub queue: usize,
    /// Stops the writer (after it commits what was queued).
    pub cancel: CancellationToken,
    /// File databases: checkpoint the WAL from a thread of its own this often (PASSIVE, so the
    /// writer never waits on it; the checkpoint's fsyncs leave the commit path). `None`: the
    /// writer checkpoints as it commits (SQLite's default).
    pub checkpoint_every: Option<Duration>,
    /// The writer's page cache in KiB (SQLite's `cache_size`; its default is 2,000). The pages
    /// of the outbox's indexes a commit touches outgrow SQLite's default within tens of
    /// thousands of messages, and each miss is a read from the OS's cache.
    pub writer_cache_kib: u32,
}

impl Default for SqliteOptions {
    fn default() -> SqliteOptions {
        SqliteOptions {
            synchronous: Synchronous::Full,
            readers: 2,
            busy_timeout: Duration::from_secs(5),
            max_batch: 512,
            queue: 8_192,
            cancel: CancellationToken::new(),
            checkpoint_every: Some(Duration::from_millis(250)),
            writer_cache_kib: 16_384,
        }
    }
}

/// The SQLite store. Cheap to clone; every clone shares the writer and the readers.
#[derive(Clone)]
pub struct SqliteStore {
    shared: Arc<Shared>,
}

struct Shared {
    /// Outcome changes and enqueues waiting to be merged into one writer job each.
    applies: Arc<super::coalesce::Coalescer<Change, bool>>,
    enqueues: Arc<super::coalesce::Coalescer<NewMessage, Enqueued>>,
    jobs: mpsc::Sender<Box<dyn Job>>,
    readers: Option<Readers>,
    stop: CancellationToken,
    done: watch::Receiver<bool>,
}

impl SqliteStore {
    /// Opens (creating and migrating) the database at `path`, or a private in-memory database
    /// for `None`, and starts the writer task. Must be called inside a tokio runtime.
    pub async fn open(path: Option<&Path>, opts: SqliteOptions) -> Result<SqliteStore, StoreError> {
        let file = path.map(Path::to_path_buf);
        let (writer, readers) = {
            let opts = opts.clone();
            let path = file.clone();
            tokio::task::spawn_blocking(move || open_connections(path.as_deref(), &opts))
                .await
                .map_err(|e| StoreError::Backend(format!("open: {e}")))??
        };
        let (jobs, rx) = mpsc::channel(opts.queue.max(1));
        let (done_tx, done) = watch::channel(false);
        let stop = opts.cancel.child_token();
        if let (Some(p), Some(every)) = (file.as_deref(), opts.checkpoint_every) {
            spawn_checkpointer(p, every, stop.clone())?;
        }
        tokio::spawn(run_writer(
            writer,
            rx,
            stop.clone(),
            opts.max_batch.max(1),
            done_tx,
        ));
        Ok(SqliteStore {
            shared: Arc::new(Shared {
                applies: Arc::default(),
                enqueues: Arc::default(),
                jobs,
                readers,
                stop,
                done,
            }),
        })
    }

    /// Stops the writer after it commits everything queued, and waits for it. Later calls
    /// (reads included) fail with [`StoreError::Closed`].
    pub async fn close(&self) {
        if let Some(readers) = &self.shared.readers {
            readers.permits.close();
        }
        self.shared.stop.cancel();
        let mut done = self.shared.done.clone();
        let _ = done.wait_for(|d| *d).await;
    }

    /// The writer's page cache in KiB, as SQLite reports it (a diagnostic of
    /// [`SqliteOptions::writer_cache_kib`]).
    pub async fn writer_cache_kib(&self) -> Result<i64, StoreError> {
        self.write((), |conn, ()| {
            let pages: i64 = conn.query_row("PRAGMA cache_size", [], |r| r.get(0))?;
            if pages >= 0 {
                let size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
                return Ok(pages * size / 1024);
            }
            Ok(-pages)
        })
        .await
    }

    /// Runs `op` on the writer, inside the next group commit; resolves after the commit.
    async fn write<I, O, F>(&self, input: I, op: F) -> Result<O, StoreError>
    where
        I: Send + 'static,
        O: Send + 'static,
        F: Fn(&Connection, &I) -> Result<O, StoreError> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let task = Task {
            input,
            op,
            output: None,
            reply,
        };
        self.shared
            .jobs
            .send(Box::new(task))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs `op` on a reader (or on the writer for an in-memory database).
    async fn read<I, O, F>(&self, input: I, op: F) -> Result<O, StoreError>
    where
        I: Send + 'static,
        O: Send + 'static,
        F: Fn(&Connection, &I) -> Result<O, StoreError> + Send + 'static,
    {
        match &self.shared.readers {
            Some(readers) => readers.run(input, op).await,
            None => self.write(input, op).await,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Opening and schema

fn open_connections(
    path: Option<&Path>,
    opts: &SqliteOptions,
) -> Result<(Connection, Option<Readers>), StoreError> {
    if let Some(p) = path {
        check_file(p)?;
    }
    let mut writer = match path {
        Some(p) => Connection::open(p)?,
        None => Connection::open_in_memory()?,
    };
    configure(&writer, opts)?;
    if let Some(p) = path {
        check_database(&writer, p)?;
    }
    if path.is_some() {
        let mode: String =
            writer.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Backend(format!(
                "journal_mode is {mode}, not WAL"
            )));
        }
    }
    writer.pragma_update(None, "synchronous", opts.synchronous.pragma())?;
    writer.pragma_update(None, "cache_size", -i64::from(opts.writer_cache_kib))?;
    if path.is_some() && opts.checkpoint_every.is_some() {
        writer.pragma_update(None, "wal_autocheckpoint", BACKSTOP_CHECKPOINT_PAGES)?;
    }
    migrate(&mut writer)?;
    let readers = match path {
        Some(p) => Some(Readers::open(p, opts)?),
        None => None,
    };
    Ok((writer, readers))
}

/// Databases up to this size get a full `quick_check` at open (a larger one is checked page by
/// page as it is read).
const QUICK_CHECK_MAX_BYTES: u64 = 256 * 1024 * 1024;

/// Refuses a file that is not an SQLite database before SQLite sees it: an empty file would
/// otherwise become a fresh database, a foreign file an error at some later query.
fn check_file(p: &Path) -> Result<(), StoreError> {
    let meta = match std::fs::metadata(p) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(StoreError::Unusable(format!(
                "{} cannot be read: {e}",
                p.display()
            )));
        }
    };
    if !meta.is_file() {
        return Err(StoreError::Unusable(format!(
            "{} is not a file; point --data-dir at a directory where gateway.db can live",
            p.display()
        )));
    }
    if meta.len() == 0 {
        return Err(StoreError::Unusable(format!(
            "{} is empty where the gateway's database was expected (was it cut short?); if it never held anything, delete it and start again, otherwise restore it from a backup",
            p.display()
        )));
    }
    let mut head = [0u8; 16];
    let read = std::fs::File::open(p)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .map_err(|e| StoreError::Unusable(format!("{} cannot be read: {e}", p.display())))?;
    if read < 16 || &head != b"SQLite format 3\0" {
        return Err(StoreError::Unusable(format!(
            "{} is not an SQLite database, so not the gateway's: move it away or point --data-dir elsewhere",
            p.display()
        )));
    }
    Ok(())
}

/// Refuses a database that is damaged or belongs to another program.
fn check_database(conn: &Connection, p: &Path) -> Result<(), StoreError> {
    let unusable = |why: String| StoreError::Unusable(format!("{}: {why}", p.display()));
    let damaged = |e: rusqlite::Error| {
        unusable(format!(
            "the database is damaged ({e}); restore it from a backup or move it away"
        ))
    };
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(damaged)?;
    let tables: Vec<String> = {
        let mut st = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
            .map_err(damaged)?;
        let rows = st.query_map([], |r| r.get(0)).map_err(damaged)?;
        rows.collect::<Result<_, _>>().map_err(damaged)?
    };
    if version == 0 && !tables.is_empty() {
        return Err(unusable(format!(
            "this SQLite database belongs to another program (tables {}); the gateway keeps its own gateway.db: move it away or point --data-dir elsewhere",
            tables.join(", ")
        )));
    }
    if version > 0 {
        let missing: Vec<&str> = ["messages", "events", "inbox", "consents", "templates"]
            .into_iter()
            .filter(|t| !tables.iter().any(|have| have == t))
            .collect();
        if !missing.is_empty() {
            return Err(unusable(format!(
                "the gateway's tables {} are missing: the file is damaged or another program's; restore it from a backup or move it away",
                missing.join(", ")
            )));
        }
    }
    let size = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    if size <= QUICK_CHECK_MAX_BYTES {
        let verdict: String = conn
            .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
            .map_err(damaged)?;
        if verdict != "ok" {
            return Err(unusable(format!(
                "the database is damaged (quick_check: {verdict}); restore it from a backup or move it away"
            )));
        }
    }
    Ok(())
}

/// A WAL-mode writer stops checkpointing by itself beyond this many pages (a backstop, should
/// the checkpointer thread fall behind).
const BACKSTOP_CHECKPOINT_PAGES: i64 = 20_000;

/// Checkpoints the WAL every `every` on a connection of its own until `stop` fires.
fn spawn_checkpointer(
    path: &Path,
    every: Duration,
    stop: CancellationToken,
) -> Result<(), StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_millis(100))?;
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            while !stop.is_cancelled() {
                std::thread::sleep(every);
                let done =
                    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(0));
                if let Err(e) = done {
                    tracing::warn!(error = %e, "WAL checkpoint failed; the next one retries");
                }
            }
        })
        .map_err(|e| StoreError::Backend(format!("checkpoint thread: {e}")))?;
    Ok(())
}

fn configure(conn: &Connection, opts: &SqliteOptions) -> Result<(), StoreError> {
    conn.busy_timeout(opts.busy_timeout)?;
    conn.set_prepared_statement_cache_capacity(128);
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(())
}

/// Schema versions: entry `i` takes the database from `user_version` i to i + 1.
///
/// Partial indexes spell state sets with `OR`, not `IN (…)`: SQLite evaluates an `IN` list
/// through an ephemeral table on every update of the row, which doubled the cost of a status
/// update. Queries repeat the index's `WHERE` term verbatim so the planner can use the index.
const MIGRATIONS: &[&str] = &[
    SCHEMA_V1, SCHEMA_V2, SCHEMA_V3, SCHEMA_V4, SCHEMA_V5, SCHEMA_V6, SCHEMA_V7,
];

const SCHEMA_V1: &str = "
CREATE TABLE messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    idempotency_key TEXT UNIQUE,
    phone_number_id TEXT NOT NULL,
    recipient TEXT NOT NULL,
    category TEXT NOT NULL,
    template_name TEXT,
    template_language TEXT,
    lane TEXT NOT NULL,
    body TEXT NOT NULL,
    metadata TEXT,
    state TEXT NOT NULL,
    reason TEXT,
    parked_reason TEXT,
    wamid TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    not_before INTEGER NOT NULL,
    deadline INTEGER NOT NULL,
    lease_until INTEGER,
    last_error_code INTEGER,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    accepted_at INTEGER,
    sent_at INTEGER,
    delivered_at INTEGER,
    read_at INTEGER,
    failed_at INTEGER
);
CREATE INDEX messages_ready ON messages (lane, next_attempt_at, seq)
    WHERE state = 'queued' AND parked_reason IS NULL;
CREATE INDEX messages_template ON messages (template_name, template_language)
    WHERE state = 'queued';
CREATE INDEX messages_lease ON messages (lease_until) WHERE state = 'sending';
CREATE INDEX messages_overdue ON messages (deadline)
    WHERE (state = 'accepted' OR state = 'held' OR state = 'sent');
CREATE INDEX messages_wamid ON messages (wamid) WHERE wamid IS NOT NULL;
CREATE INDEX messages_recipient ON messages (recipient, seq);

CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    at INTEGER NOT NULL,
    detail TEXT NOT NULL,
    state TEXT NOT NULL
);
CREATE INDEX events_message ON events (message_id, seq);

CREATE TABLE orphan_statuses (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    wamid TEXT NOT NULL,
    payload TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX orphan_statuses_wamid ON orphan_statuses (wamid);

CREATE TABLE inbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at INTEGER NOT NULL,
    source TEXT NOT NULL,
    body BLOB NOT NULL,
    outcome TEXT
);
CREATE INDEX inbox_pending ON inbox (id) WHERE outcome IS NULL;

CREATE TABLE dedupe_keys (
    key TEXT PRIMARY KEY,
    at INTEGER NOT NULL
);

CREATE TABLE consents (
    wa_id TEXT NOT NULL,
    category TEXT NOT NULL,
    status TEXT NOT NULL,
    source TEXT NOT NULL,
    evidence TEXT,
    at INTEGER NOT NULL,
    PRIMARY KEY (wa_id, category)
);
CREATE TABLE consent_history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    wa_id TEXT NOT NULL,
    category TEXT NOT NULL,
    status TEXT NOT NULL,
    source TEXT NOT NULL,
    evidence TEXT,
    at INTEGER NOT NULL
);
CREATE INDEX consent_history_wa_id ON consent_history (wa_id, at, seq);

CREATE TABLE inbound_windows (
    phone_number_id TEXT NOT NULL,
    wa_id TEXT NOT NULL,
    last_at INTEGER NOT NULL,
    PRIMARY KEY (phone_number_id, wa_id)
);

CREATE TABLE templates (
    name TEXT NOT NULL,
    language TEXT NOT NULL,
    category TEXT NOT NULL,
    status TEXT NOT NULL,
    id TEXT NOT NULL,
    components TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (name, language)
);

CREATE TABLE cursors (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
";

/// Version 2: template parameter formats, request hashes for idempotency conflicts, inbound
/// messages (the conversation), cancelled messages, when each consent change was recorded.
const SCHEMA_V2: &str = "
ALTER TABLE templates ADD COLUMN parameter_format TEXT;
ALTER TABLE messages ADD COLUMN request_hash TEXT;
CREATE TABLE inbound_messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    phone_number_id TEXT NOT NULL,
    wa_id TEXT NOT NULL,
    profile_name TEXT,
    type TEXT NOT NULL,
    context_id TEXT,
    body TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    received_at INTEGER NOT NULL
);
CREATE INDEX inbound_messages_contact ON inbound_messages (wa_id, received_at, seq);
ALTER TABLE consents ADD COLUMN recorded_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE consent_history ADD COLUMN recorded_at INTEGER NOT NULL DEFAULT 0;
UPDATE consents SET recorded_at = at;
UPDATE consent_history SET recorded_at = at;
CREATE INDEX consent_history_recorded ON consent_history (wa_id, seq);
CREATE INDEX messages_parked_deadline ON messages (deadline)
    WHERE state = 'queued' AND parked_reason IS NOT NULL;
";

/// Version 3: people known by phone, BSUID or both, each stored under an opaque `ct_…` key.
/// Every phone with consents or a window so far becomes a person; sends and inbound messages
/// name their person (a phone nobody is linked to is its own, implicit, key).
const SCHEMA_V3: &str = "
ALTER TABLE messages ADD COLUMN person TEXT;
ALTER TABLE inbound_messages ADD COLUMN person TEXT;
CREATE TABLE people (
    person TEXT PRIMARY KEY,
    wa_id TEXT,
    user_id TEXT,
    parent_user_id TEXT,
    username TEXT,
    profile_name TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE identities (
    id TEXT PRIMARY KEY,
    person TEXT NOT NULL,
    kind TEXT NOT NULL,
    since INTEGER NOT NULL
);
CREATE INDEX identities_person ON identities (person);
CREATE TABLE identity_history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    person TEXT NOT NULL,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX identity_history_person ON identity_history (person, seq);
CREATE TEMP TABLE legacy (phone TEXT PRIMARY KEY, person TEXT NOT NULL);
INSERT OR IGNORE INTO legacy (phone, person)
    SELECT wa_id, 'ct_' || lower(hex(randomblob(8))) FROM (SELECT wa_id FROM consents
    UNION SELECT wa_id FROM consent_history UNION SELECT wa_id FROM inbound_windows);
INSERT INTO people (person, wa_id, created_at, updated_at) SELECT person, phone, 0, 0 FROM legacy;
INSERT INTO identities (id, person, kind, since) SELECT phone, person, 'phone', 0 FROM legacy;
UPDATE consents SET wa_id = (SELECT person FROM legacy WHERE phone = consents.wa_id)
    WHERE wa_id IN (SELECT phone FROM legacy);
UPDATE consent_history SET wa_id = (SELECT person FROM legacy WHERE phone = consent_history.wa_id)
    WHERE wa_id IN (SELECT phone FROM legacy);
UPDATE inbound_windows SET wa_id = (SELECT person FROM legacy WHERE phone = inbound_windows.wa_id)
    WHERE wa_id IN (SELECT phone FROM legacy);
UPDATE messages SET person = coalesce((SELECT person FROM legacy WHERE phone = messages.recipient), recipient);
UPDATE inbound_messages SET person = coalesce((SELECT person FROM legacy WHERE phone = inbound_messages.wa_id), wa_id);
DROP TABLE legacy;
CREATE INDEX messages_person ON messages (person, created_at, seq);
CREATE INDEX inbound_messages_person ON inbound_messages (person, received_at, seq);
";

/// Version 4: ordered sequences (each message names its sequence and the message it waits for).
const SCHEMA_V4: &str = "
ALTER TABLE messages ADD COLUMN sequence_key TEXT;
ALTER TABLE messages ADD COLUMN sequence_rule TEXT;
ALTER TABLE messages ADD COLUMN sequence_prev TEXT;
CREATE INDEX messages_sequence ON messages (person, sequence_key, seq) WHERE sequence_key IS NOT NULL;
CREATE INDEX messages_sequence_prev ON messages (sequence_prev) WHERE sequence_prev IS NOT NULL;
";

/// Version 5: campaigns, their audiences, and the campaign each message belongs to.
const SCHEMA_V5: &str = "
ALTER TABLE messages ADD COLUMN campaign TEXT;
CREATE INDEX messages_campaign ON messages (campaign, state) WHERE campaign IS NOT NULL;
CREATE INDEX messages_campaign_person ON messages (person, created_at) WHERE campaign IS NOT NULL;
CREATE TABLE campaigns (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    spec TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER
);
CREATE TABLE campaign_recipients (
    campaign TEXT NOT NULL,
    row INTEGER NOT NULL,
    recipient TEXT NOT NULL,
    key TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    detail TEXT,
    columns TEXT NOT NULL,
    body TEXT,
    message_id TEXT,
    PRIMARY KEY (campaign, row)
);
CREATE INDEX campaign_recipients_key ON campaign_recipients (campaign, key)
    WHERE status != 'skipped';
CREATE INDEX campaign_recipients_pending ON campaign_recipients (campaign, row)
    WHERE status = 'pending';
";

/// Version 6: token buckets and role leases shared by the instances of a database
/// (`Store::take_tokens`, `Store::lease_role`).
const SCHEMA_V6: &str = "
CREATE TABLE rate_buckets (
    key TEXT PRIMARY KEY,
    milli INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE roles (
    role TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until INTEGER NOT NULL
);
";

/// Version 7: status dedupe keys are stored under the id of the message their wamid names
/// (`store::message_scoped_key`); the keys remembered before are moved there, so a status
/// delivered again after the upgrade is still known. A key whose message is gone, or whose wamid
/// is another attempt's (recorded on the timeline only), stays as it was.
const SCHEMA_V7: &str = "
UPDATE dedupe_keys SET key = (
    SELECT m.id FROM messages m
    WHERE m.wamid = substr(dedupe_keys.key, 3, instr(substr(dedupe_keys.key, 3), ':') - 1)
    ORDER BY m.seq DESC LIMIT 1
) || ':' || key
WHERE key LIKE 's:%' AND EXISTS (
    SELECT 1 FROM messages m
    WHERE m.wamid = substr(dedupe_keys.key, 3, instr(substr(dedupe_keys.key, 3), ':') - 1)
);
";

/// Brings the schema to the latest version, one transaction per step.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let current = usize::try_from(version).unwrap_or(usize::MAX);
    if current > MIGRATIONS.len() {
        return Err(StoreError::Backend(format!(
            "database schema version {version} is newer than this build ({})",
            MIGRATIONS.len()
        )));
    }
    for (i, step) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(step)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The writer: one connection, group commit

/// A queued call: runs inside the batch's transaction, then answers its caller.
trait Job: Send {
    /// Runs the call (possibly again, if its batch failed).
    fn run(&mut self, conn: &Connection) -> Result<(), StoreError>;
    /// Answers the caller once the outcome is known (after the commit).
    fn finish(self: Box<Self>, outcome: Result<(), StoreError>);
}

struct Task<I, O, F> {
    input: I,
    op: F,
    output: Option<O>,
    reply: oneshot::Sender<Result<O, StoreError>>,
}

impl<I, O, F> Job for Task<I, O, F>
where
    I: Send,
    O: Send,
    F: Fn(&Connection, &I) -> Result<O, StoreError> + Send,
{
    fn run(&mut self, conn: &Connection) -> Result<(), StoreError> {
        self.output = Some((self.op)(conn, &self.input)?);
        Ok(())
    }

    fn finish(self: Box<Self>, outcome: Result<(), StoreError>) {
        let Task { output, reply, .. } = *self;
        let answer = outcome.and_then(|()| {
            output.ok_or_else(|| StoreError::Backend("call produced no result".into()))
        });
        let _ = reply.send(answer);
    }
}

async fn run_writer(
    mut conn: Connection,
    mut rx: mpsc::Receiver<Box<dyn Job>>,
    stop: CancellationToken,
    max_batch: usize,
    done: watch::Sender<bool>,
) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(max_batch.min(1_024));
    loop {
        let n = tokio::select! {
            biased;
            n = rx.recv_many(&mut batch, max_batch) => n,
            () = stop.cancelled() => {
                rx.close();
                continue;
            }
        };
        if n == 0 {
            break;
        }
        let jobs = std::mem::take(&mut batch);
        let joined = tokio::task::spawn_blocking(move || {
            commit_batch(&mut conn, jobs);
            conn
        })
        .await;
        match joined {
            Ok(c) => conn = c,
            Err(e) => {
                tracing::error!(error = %e, "store writer failed");
                break;
            }
        }
    }
    let _ = done.send(true);
}

/// Runs every job in one transaction and answers them; on failure re-runs each alone.
fn commit_batch(conn: &mut Connection, mut jobs: Vec<Box<dyn Job>>) {
    match run_in_transaction(conn, &mut jobs) {
        Ok(()) => jobs.into_iter().for_each(|j| j.finish(Ok(()))),
        Err(e) if jobs.len() == 1 => jobs.into_iter().for_each(|j| j.finish(Err(e.clone()))),
        Err(e) => {
            tracing::warn!(error = %e, calls = jobs.len(), "store batch failed; retrying one by one");
            for mut job in jobs {
                let outcome = run_in_transaction(conn, std::slice::from_mut(&mut job));
                job.finish(outcome);
            }
        }
    }
}

fn run_in_transaction(conn: &mut Connection, jobs: &mut [Box<dyn Job>]) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for job in jobs.iter_mut() {
        job.run(&tx)?;
    }
    tx.commit()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Readers

struct Readers {
    idle: Mutex<Vec<Connection>>,
    permits: Semaphore,
}

impl Readers {
    fn open(path: &Path, opts: &SqliteOptions) -> Result<Readers, StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let n = opts.readers.max(1);
        let mut conns = Vec::with_capacity(n);
        for _ in 0..n {
            let conn = Connection::open_with_flags(PathBuf::from(path), flags)?;
            configure(&conn, opts)?;
            conns.push(conn);
        }
        Ok(Readers {
            idle: Mutex::new(conns),
            permits: Semaphore::new(n),
        })
    }

    async fn run<I, O, F>(&self, input: I, op: F) -> Result<O, StoreError>
    where
        I: Send + 'static,
        O: Send + 'static,
        F: Fn(&Connection, &I) -> Result<O, StoreError> + Send + 'static,
    {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| StoreError::Closed)?;
        let conn = self.take().ok_or(StoreError::Closed)?;
        let joined = tokio::task::spawn_blocking(move || {
            let out = op(&conn, &input);
            (conn, out)
        })
        .await;
        match joined {
            Ok((conn, out)) => {
                self.put(conn);
                out
            }
            Err(e) => {
                // The connection is gone with the panicked task: shrink the pool to match.
                permit.forget();
                Err(StoreError::Backend(format!("read failed: {e}")))
            }
        }
    }

    fn take(&self) -> Option<Connection> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    fn put(&self, conn: Connection) {
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(conn);
    }
}

// ---------------------------------------------------------------------------------------------
// Value conversions

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        match e {
            rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::IntegralValueOutOfRange(..) => StoreError::Corrupt(e.to_string()),
            _ => StoreError::Backend(e.to_string()),
        }
    }
}

/// Stores string enums as their `as_str` form.
macro_rules! sql_text {
    ($($t:ty),+) => {$(
        impl ToSql for $t {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $t {
            fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
                let s = v.as_str()?;
                <$t>::parse(s).ok_or_else(|| {
                    FromSqlError::Other(format!("unknown {} {s:?}", stringify!($t)).into())
                })
            }
        }
    )+};
}

sql_text!(
    MessageState,
    Lane,
    Category,
    ConsentStatus,
    InboxOutcome,
    CampaignState
);

// The shared operations, compiled again for this backend (as for PostgreSQL): deliberate.
#[allow(clippy::duplicate_mod)]
#[path = "logic.rs"]
mod logic;

/// One process uses the file (a second one would wait on its locks).
const SHARED: bool = false;

/// The store the shared operations implement [`Store`] for.
type Backend = SqliteStore;

/// The conflict clause of the shared operations' many-row writes. SQLite copies every page a
/// many-row statement touches to a statement journal, to undo the statement alone should a
/// constraint abort it; `FAIL` stops such a statement where it is instead. A failed write fails
/// its whole transaction anyway (the writer rolls back and reruns each call alone), so nothing
/// partial is ever kept, and the copies (1.7 % of a benchmark's CPU) are saved.
const OR_FAIL: &str = " OR FAIL";

/// The `list` condition "metadata has `key` with `value`" (compared as text), its two values
/// pushed on `args`: the key as a quoted JSON path member, so no character of it is path syntax.
fn metadata_equals(args: &mut Vec<Value>, key: &str, value: &str) -> String {
    args.push(Value::Text(format!("$.\"{}\"", key.replace('"', ""))));
    args.push(Value::Text(value.to_owned()));
    format!(
        " AND json_valid(metadata) AND CAST(json_extract(metadata, ?{}) AS TEXT) = ?{}",
        args.len() - 1,
        args.len()
    )
}

#[cfg(test)]
mod tests {
    use super::logic::*;
    use super::*;

    /// Numbers written by the merged and lone operations below.
    fn note(conn: &Connection, n: i64) -> Result<i64, StoreError> {
        conn.execute("CREATE TABLE IF NOT EXISTS noted (n INTEGER NOT NULL)", [])?;
        conn.execute("INSERT INTO noted (n) VALUES (?1)", [n])?;
        Ok(n * 2)
    }

    /// Notes each call's numbers; a negative one fails the whole merged job.
    fn merged(conn: &Connection, calls: &[&[i64]]) -> Result<Vec<Vec<i64>>, StoreError> {
        calls
            .iter()
            .map(|c| {
                c.iter()
                    .map(|n| {
                        if *n < 0 {
                            return Err(StoreError::Invalid(format!("{n} is negative")));
                        }
                        note(conn, *n)
                    })
                    .collect()
            })
            .collect()
    }

    fn alone(conn: &Connection, call: &[i64]) -> Result<Vec<i64>, StoreError> {
        merged(conn, &[call]).map(|mut v| v.pop().unwrap_or_default())
    }

    /// A merged job that fails is rolled back and its calls run again one by one: the bad call
    /// fails alone, the others succeed, and nothing is written twice.
    #[tokio::test]
    async fn a_failed_merged_job_reruns_its_calls_alone() {
        let store = SqliteStore::open(None, SqliteOptions::default())
            .await
            .unwrap();
        let queue = Arc::new(crate::store::coalesce::Coalescer::<i64, i64>::default());
        let (batch, first) = queue.push(vec![1, 2]);
        let (none, bad) = queue.push(vec![-3]);
        assert!(none.is_none(), "the queue already has its job");
        let (_, last) = queue.push(vec![4]);
        run_merged(store.clone(), batch.unwrap(), merged, alone).await;
        assert_eq!(first.await.unwrap(), Ok(vec![2, 4]));
        assert!(matches!(bad.await.unwrap(), Err(StoreError::Invalid(_))));
        assert_eq!(last.await.unwrap(), Ok(vec![8]));
        let noted: Vec<i64> = store
            .read((), |conn, _| {
                let mut st = conn.prepare("SELECT n FROM noted ORDER BY rowid")?;
                let rows = st.query_map([], |r| r.get(0))?;
                Ok(rows.collect::<Result<Vec<i64>, _>>()?)
            })
            .await
            .unwrap();
        assert_eq!(
            noted,
            vec![1, 2, 4],
            "the merged attempt left nothing behind"
        );
        store.close().await;
    }

    /// A many-row write with `OR_FAIL` that fails part-way keeps nothing: the statement stops
    /// where it is, and the writer rolls its whole transaction back.
    #[tokio::test]
    async fn a_many_row_write_that_fails_keeps_nothing() {
        let store = SqliteStore::open(None, SqliteOptions::default())
            .await
            .unwrap();
        store
            .write((), |conn, _| {
                conn.execute("CREATE TABLE rows (n INTEGER NOT NULL UNIQUE)", [])?;
                Ok(())
            })
            .await
            .unwrap();
        let failed = store
            .write((), |conn, _| {
                conn.execute(&format!("INSERT{OR_FAIL} INTO rows (n) VALUES (0)"), [])?;
                let sql = format!("INSERT{OR_FAIL} INTO rows (n) VALUES (1), (2), (NULL), (3)");
                conn.execute(&sql, [])?;
                Ok(())
            })
            .await;
        assert!(failed.is_err(), "{failed:?}");
        let kept: i64 = store
            .read((), |conn, _| {
                Ok(conn.query_row("SELECT count(*) FROM rows", [], |r| r.get(0))?)
            })
            .await
            .unwrap();
        assert_eq!(
            kept, 0,
            "neither the rows before the failure nor the other statement"
        );
        store.close().await;
    }

    #[test]
    fn migrations_are_idempotent_and_refuse_newer_schemas() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
        conn.pragma_update(None, "user_version", 99).unwrap();
        assert!(matches!(migrate(&mut conn), Err(StoreError::Backend(_))));
    }

    /// An in-memory database whose schema is at `version`, as a build of that version left it.
    fn at_version(version: usize) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        for step in &MIGRATIONS[..version] {
            conn.execute_batch(step).unwrap();
        }
        conn.pragma_update(None, "user_version", version as i64)
            .unwrap();
        conn
    }

    /// Status keys remembered before version 7 move under their message; a key whose message
    /// is gone, and keys of other kinds, stay as they were.
    #[test]
    fn version_7_moves_status_keys_under_their_message() {
        let mut conn = at_version(6);
        conn.execute_batch(crate::store::status_keys_fixture::BEFORE)
            .unwrap();
        migrate(&mut conn).unwrap();
        let mut st = conn
            .prepare("SELECT key, at FROM dedupe_keys ORDER BY at")
            .unwrap();
        let keys: Vec<(String, i64)> = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(keys, crate::store::status_keys_fixture::after());
    }

    #[test]
    fn version_3_makes_people_of_the_phones_with_state() {
        let mut conn = at_version(2);
        conn.execute_batch(
            "INSERT INTO consents (wa_id, category, status, source, at, recorded_at) \
             VALUES ('4915100000001', 'marketing', 'opted_in', 'api', 1, 1); \
             INSERT INTO consent_history (wa_id, category, status, source, at, recorded_at) \
             VALUES ('4915100000001', 'marketing', 'opted_in', 'api', 1, 1); \
             INSERT INTO inbound_windows VALUES ('pn1', '4915100000001', 5); \
             INSERT INTO messages (id, phone_number_id, recipient, category, lane, body, state, \
             next_attempt_at, not_before, deadline, created_at, updated_at) VALUES \
             ('m1', 'pn1', '4915100000001', 'utility', 'transactional', '{}', 'sent', 0, 0, 1, 0, 0), \
             ('m2', 'pn1', '4915100000002', 'utility', 'transactional', '{}', 'sent', 0, 0, 1, 0, 0);",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let key = key_of(&conn, "4915100000001", None).unwrap().unwrap();
        assert!(key.starts_with(PERSON_KEY_PREFIX), "{key}");
        let person_of = |id: &str| -> String {
            conn.query_row("SELECT person FROM messages WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap()
        };
        assert_eq!(person_of("m1"), key);
        assert_eq!(
            person_of("m2"),
            "4915100000002",
            "no state: its implicit key"
        );
        assert_eq!(
            consents_where(&conn, CONSENTS, "4915100000001")
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            consents_where(&conn, CONSENT_HISTORY, "4915100000001")
                .unwrap()
                .len(),
            1
        );
        let window = last_inbound(&conn, &("pn1".into(), "4915100000001".into())).unwrap();
        assert_eq!(window, Some(5));
    }

    #[test]
    fn claim_uses_the_ready_index() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {CLAIM}"))
            .unwrap()
            .query_map(params![0, 0, "bulk", 10], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter().any(|l| l.contains("messages_ready")),
            "plan: {plan:?}"
        );
    }

    #[test]
    fn overdue_uses_its_partial_index() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {OVERDUE}"))
            .unwrap()
            .query_map(params![0, 10], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter().any(|l| l.contains("messages_overdue")),
            "plan: {plan:?}"
        );
    }

    #[tokio::test]
    async fn closed_store_refuses_calls() {
        let s = SqliteStore::open(None, SqliteOptions::default())
            .await
            .unwrap();
        s.set_cursor("a", 1).await.unwrap();
        s.close().await;
        assert_eq!(s.set_cursor("a", 2).await, Err(StoreError::Closed));
    }
}
