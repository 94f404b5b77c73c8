//! [`Store`] on PostgreSQL: several gateway instances on one database.
//!
//! **Driver: the synchronous `postgres` crate** (rust-postgres, over `tokio-postgres`), each
//! connection owned by a thread of this store. The store's operations are the same SQL functions
//! as SQLite's (`store/logic.rs`, compiled against the small rusqlite-shaped layer in
//! `postgres/sql.rs`), so both backends run one body of logic and pass one conformance suite.
//! Those functions are synchronous and issue statements one after another inside a transaction;
//! the synchronous client runs each statement on the calling thread (its own current-thread
//! runtime drives the socket), so a statement costs one round trip to the server and no thread
//! hop. sqlx was not chosen: it runs every statement through a channel to a worker (the cost
//! that made the SQLite backend use rusqlite, ~100 µs a statement on the 2-core target), and an
//! async `tokio-postgres` body of the operations would be a second copy of them to keep in step.
//!
//! **Writes are group-committed**, as on SQLite: one writer thread takes whatever is queued (up
//! to [`PostgresOptions::max_batch`] calls), runs them in one transaction, commits, and only then
//! answers each caller, so thousands of calls share one commit (and its WAL flush). If a batch
//! fails, its calls are re-run one transaction each, so one bad call fails alone.
//!
//! **Several instances.** Every write transaction first takes a transaction-scoped advisory lock
//! (`pg_advisory_xact_lock`, one key per schema): write transactions of all instances on the
//! database run one at a time, as the single writer of SQLite does within one process. That keeps
//! every read-modify-write of the logic (idempotency, statuses, people merges, sequences)
//! race-free across instances, and gives timeline events their sequence numbers in commit order,
//! so a reader following a cursor never skips one. Claims also choose their rows with
//! `FOR UPDATE SKIP LOCKED`. Throughput is that of one writer at a time; with group commit a
//! transaction carries hundreds of calls, so the lock is taken once per batch, not per call.
//!
//! **Reads** go through a small pool of reader threads, each with its own connection.
//!
//! **Connection loss**: a call that meets a lost connection fails with [`StoreError::Backend`];
//! the next call reconnects (the writer and each reader on their own). Nothing is retried behind
//! the caller's back, since a commit whose answer was lost may or may not have happened.
//!
//! **Statistics**: a table without planner statistics (a fresh schema, the first minutes of a
//! new database) gets PostgreSQL's default selectivities, under which a lookup of 100 ids by
//! `IN (…)` looks like half the table and is planned as a sequential scan, tens of times slower
//! than its index scan; autovacuum analyzes only once a minute at best. So every
//! [`PostgresOptions::analyze_every`] the store `ANALYZE`s each of its tables that reached
//! [`ANALYZE_MIN_BYTES`] and has doubled in size since its statistics were taken
//! ([`PostgresStore::analyze_grown`]): a handful of times in a table's life, each with a sample
//! of 3,000 rows ([`GROWN_STATISTICS_TARGET`]).
//!
//! **Schema**: versioned migrations in `schema_migrations(version, applied_at)`, applied at open
//! (and by `mynah gateway migrate`) under a session advisory lock, so instances starting together
//! do not race. All integers are `BIGINT`; text sorts bytewise (`COLLATE "C"`, as SQLite).

mod sql;

// The shared operations, compiled again for this backend (as for SQLite): deliberate.
#[allow(clippy::duplicate_mod)]
#[path = "logic.rs"]
mod logic;

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
use sql::{Connection, OptionalExtension, Row, ToSql, Value, params, params_from_iter};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

/// Other gateway instances may use the database at the same time.
const SHARED: bool = true;

/// The store the shared operations implement [`Store`] for.
type Backend = PostgresStore;

/// The conflict clause of the shared operations' many-row writes: none (SQLite's `OR FAIL`
/// saves its statement journal; PostgreSQL keeps none).
const OR_FAIL: &str = "";

/// The `list` condition "metadata has `key` with `value`" (compared as text), its two values
/// pushed on `args`. Metadata that is not a JSON object matches nothing (it is stored as the
/// app's JSON, so it always parses).
fn metadata_equals(args: &mut Vec<Value>, key: &str, value: &str) -> String {
    args.push(Value::Text(key.to_owned()));
    args.push(Value::Text(value.to_owned()));
    format!(
        " AND (CASE WHEN left(ltrim(metadata), 1) = '{{' THEN metadata::jsonb ->> CAST(?{} AS TEXT) END) = CAST(?{} AS TEXT)",
        args.len() - 1,
        args.len()
    )
}

/// How to open a [`PostgresStore`].
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// Reader threads (each with a connection; at least 1).
    pub readers: usize,
    /// Most calls one commit takes.
    pub max_batch: usize,
    /// Bound of the write queue (callers wait when it is full).
    pub queue: usize,
    /// The schema the tables live in (`None`: the connection's default, normally `public`).
    /// Instances share a database only if they name the same schema.
    pub schema: Option<String>,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// Stops the writer (after it commits what was queued).
    pub cancel: CancellationToken,
    /// How often to look for tables that outgrew their planner statistics (`None`: never).
    pub analyze_every: Option<Duration>,
    /// Whether the writer's connection plans each prepared statement once
    /// (`plan_cache_mode = force_generic_plan`) instead of PostgreSQL's default, which plans
    /// the first five executions of every statement with their values and then keeps planning
    /// anew whenever a generic plan looks dearer. The writer's statements are key look-ups and
    /// multi-row writes whose best plan does not depend on the values; planning a 128-id `IN`
    /// list anew costs more than running it. Readers keep the default (the console's
    /// filters are where values matter).
    pub writer_generic_plans: bool,
}

impl Default for PostgresOptions {
    fn default() -> PostgresOptions {
        PostgresOptions {
            readers: 2,
            max_batch: 512,
            queue: 8_192,
            schema: None,
            connect_timeout: Duration::from_secs(5),
            cancel: CancellationToken::new(),
            analyze_every: Some(Duration::from_secs(1)),
            writer_generic_plans: true,
        }
    }
}

/// A table smaller than this is left to autovacuum's statistics (128 KiB).
pub const ANALYZE_MIN_BYTES: i64 = 128 * 1024;

/// The statistics target of [`PostgresStore::analyze_grown`]'s `ANALYZE`s (PostgreSQL's default
/// is 100): a sample of 3,000 rows instead of 30,000 (the `ANALYZE`s of a 20,000-message
/// benchmark run took 179 ms instead of 641), and plenty for what the store's statements need of
/// the statistics: that ids and wamids are unique, and how few rows each state has.
/// Autovacuum's later `ANALYZE`s use the server's default.
const GROWN_STATISTICS_TARGET: u32 = 10;

/// The store's tables that [`PostgresStore::analyze_grown`] looks at (the schema may hold
/// other applications' tables, which are theirs to analyze).
const ANALYZED_TABLES: &str = "'campaign_recipients', 'campaigns', 'consent_history', \
     'consents', 'cursors', 'dedupe_keys', 'events', 'identities', 'identity_history', \
     'inbound_messages', 'inbound_windows', 'inbox', 'messages', 'orphan_statuses', 'people', \
     'rate_buckets', 'roles', 'templates'";

/// The PostgreSQL store. Cheap to clone; every clone shares the writer and the readers.
#[derive(Clone)]
pub struct PostgresStore {
    shared: Arc<Shared>,
}

struct Shared {
    /// Outcome changes and enqueues waiting to be merged into one writer job each.
    applies: Arc<super::coalesce::Coalescer<Change, bool>>,
    enqueues: Arc<super::coalesce::Coalescer<NewMessage, Enqueued>>,
    connector: Connector,
    jobs: mpsc::Sender<Box<dyn Job>>,
    reads: Mutex<Option<std::sync::mpsc::Sender<Box<dyn Job>>>>,
    stop: CancellationToken,
    done: watch::Receiver<bool>,
}

/// What every connection of a store is opened with.
#[derive(Clone)]
struct Connector {
    config: postgres::Config,
    schema: Option<String>,
    /// The advisory lock key of migrations.
    migrate_lock: i64,
    /// The channel every commit notifies (`LISTEN`ed by [`PostgresStore::follow_changes`]).
    channel: String,
    /// `BEGIN` and the advisory lock of write transactions (one key per schema), and `NOTIFY`
    /// with `COMMIT`: the ends of a write transaction.
    begin: String,
    commit: String,
    /// Set on the writer's connection each time it is made (see
    /// [`PostgresOptions::writer_generic_plans`]).
    writer_setup: Option<&'static str>,
}

impl Connector {
    fn new(url: &str, opts: &PostgresOptions) -> Result<Connector, StoreError> {
        let mut config = postgres::Config::from_str(url)
            .map_err(|e| StoreError::Invalid(format!("database URL: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(opts.connect_timeout);
        }
        config.application_name("mynah-gateway");
        if let Some(s) = &opts.schema
            && (s.is_empty()
                || !s
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'))
        {
            return Err(StoreError::Invalid(format!(
                "schema name {s:?}: lowercase letters, digits and _ only"
            )));
        }
        let scope = opts.schema.as_deref().unwrap_or("public");
        let write_lock = lock_key("write", scope);
        let channel = format!("mynah_changes_{:016x}", lock_key("changes", scope));
        Ok(Connector {
            config,
            schema: opts.schema.clone(),
            migrate_lock: lock_key("migrate", scope),
            channel: channel.clone(),
            begin: format!("BEGIN; SELECT pg_advisory_xact_lock({write_lock})"),
            commit: format!("NOTIFY {channel}; COMMIT"),
            writer_setup: opts
                .writer_generic_plans
                .then_some("SET plan_cache_mode TO force_generic_plan"),
        })
    }

    /// A new connection for the writer: [`Connector::connect`] and the writer's own settings.
    fn connect_writer(&self) -> Result<Connection, StoreError> {
        let conn = self.connect()?;
        self.set_up_writer(&conn)?;
        Ok(conn)
    }

    fn set_up_writer(&self, conn: &Connection) -> Result<(), StoreError> {
        if let Some(sql) = self.writer_setup {
            conn.batch_execute(sql)?;
        }
        Ok(())
    }

    /// A new connection (call from a thread of the store, never from async code: the client
    /// runs its own runtime).
    fn connect(&self) -> Result<Connection, StoreError> {
        let client = self
            .config
            .connect(postgres::NoTls)
            .map_err(|e| StoreError::Backend(format!("cannot connect to PostgreSQL: {e}")))?;
        let conn = Connection::new(client);
        // Notices (`… already exists, skipping`) would reach the log as lines of their own.
        conn.batch_execute("SET client_min_messages TO warning")?;
        if let Some(s) = &self.schema {
            conn.batch_execute(&format!("SET search_path TO {s}"))?;
        }
        Ok(conn)
    }
}

/// An advisory lock key for `what` in `schema` (FNV-1a: stable across builds and instances).
fn lock_key(what: &str, schema: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in format!("mynah-gateway/{what}/{schema}").bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(h.to_ne_bytes())
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/db`), creates the
    /// schema if asked for one, applies the migrations, and starts the writer and the readers.
    pub async fn open(url: &str, opts: PostgresOptions) -> Result<PostgresStore, StoreError> {
        let connector = Connector::new(url, &opts)?;
        let writer = {
            let c = connector.clone();
            tokio::task::spawn_blocking(move || {
                let conn = c.connect()?;
                if let Some(s) = &c.schema {
                    conn.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {s}"))
                        .or_else(|e| {
                            // Two instances creating it at once: one of them loses the race.
                            if conn
                                .batch_execute(&format!("SET search_path TO {s}"))
                                .is_ok()
                            {
                                Ok(())
                            } else {
                                Err(e)
                            }
                        })?;
                }
                migrate(&conn, c.migrate_lock)?;
                c.set_up_writer(&conn)?;
                Ok::<_, StoreError>(conn)
            })
            .await
            .map_err(|e| StoreError::Backend(format!("open: {e}")))??
        };
        let (jobs, rx) = mpsc::channel(opts.queue.max(1));
        let (done_tx, done) = watch::channel(false);
        let stop = opts.cancel.child_token();
        let (batches, batch_rx) = std::sync::mpsc::channel::<Batch>();
        {
            let c = connector.clone();
            std::thread::Builder::new()
                .name("mynah-pg-writer".into())
                .spawn(move || writer_thread(Some(writer), c, batch_rx))
                .map_err(|e| StoreError::Backend(format!("writer thread: {e}")))?;
        }
        let (reads, read_rx) = std::sync::mpsc::channel::<Box<dyn Job>>();
        let read_rx = Arc::new(Mutex::new(read_rx));
        for i in 0..opts.readers.max(1) {
            let c = connector.clone();
            let rx = read_rx.clone();
            std::thread::Builder::new()
                .name(format!("mynah-pg-reader-{i}"))
                .spawn(move || reader_thread(c, rx))
                .map_err(|e| StoreError::Backend(format!("reader thread: {e}")))?;
        }
        tokio::spawn(run_writer(
            rx,
            stop.clone(),
            opts.max_batch.max(1),
            done_tx,
            batches,
        ));
        let store = PostgresStore {
            shared: Arc::new(Shared {
                applies: Arc::default(),
                enqueues: Arc::default(),
                connector,
                jobs,
                reads: Mutex::new(Some(reads)),
                stop: stop.clone(),
                done,
            }),
        };
        if let Some(every) = opts.analyze_every {
            let store = store.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(every) => {}
                    }
                    if let Err(e) = store.analyze_grown().await {
                        tracing::debug!(error = %e, "analyzing grown tables");
                    }
                }
            });
        }
        Ok(store)
    }

    /// `ANALYZE`s each of the store's tables that is at least [`ANALYZE_MIN_BYTES`] and
    /// more than twice the size its planner statistics were taken at (or has none), on a
    /// reader's connection, with a small sample ([`GROWN_STATISTICS_TARGET`]); answers the
    /// tables analyzed. Runs every
    /// [`PostgresOptions::analyze_every`] by itself.
    pub async fn analyze_grown(&self) -> Result<Vec<String>, StoreError> {
        self.read((), |conn, ()| {
            let sql = format!(
                "SELECT c.relname::text FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = current_schema() AND c.relkind = 'r' \
                 AND c.relname IN ({ANALYZED_TABLES}) \
                 AND pg_relation_size(c.oid) >= ?1 \
                 AND pg_relation_size(c.oid) > \
                     2 * GREATEST(c.relpages, 0)::bigint * current_setting('block_size')::bigint \
                 ORDER BY c.relname"
            );
            let grown: Vec<String> = conn
                .prepare_cached(&sql)?
                .query_map(params![ANALYZE_MIN_BYTES], |r| r.get::<_, String>(0))?
                .collect::<Result<_, _>>()?;
            if grown.is_empty() {
                return Ok(grown);
            }
            conn.batch_execute(&format!(
                "SET default_statistics_target = {GROWN_STATISTICS_TARGET}"
            ))?;
            let analyzed = grown.iter().try_for_each(|table| {
                conn.batch_execute(&format!("ANALYZE \"{}\"", table.replace('"', "")))
            });
            // The reader goes on serving reads; nothing but an ANALYZE reads the setting.
            let reset = conn.batch_execute("RESET default_statistics_target");
            analyzed?;
            reset?;
            Ok(grown)
        })
        .await
    }

    /// How the writer's prepared statements have been planned on its current connection:
    /// (generic plans, custom plans), summed over `pg_prepared_statements` (a diagnostic of
    /// [`PostgresOptions::writer_generic_plans`]).
    pub async fn writer_plans(&self) -> Result<(i64, i64), StoreError> {
        self.write((), |conn, ()| {
            Ok(conn
                .prepare_cached(
                    "SELECT coalesce(sum(generic_plans), 0)::bigint, \
                     coalesce(sum(custom_plans), 0)::bigint FROM pg_prepared_statements",
                )?
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?)
        })
        .await
    }

    /// Applies the migrations to the database at `url` and returns the schema version.
    pub async fn migrate(url: &str, opts: PostgresOptions) -> Result<i64, StoreError> {
        let connector = Connector::new(url, &opts)?;
        tokio::task::spawn_blocking(move || {
            let conn = connector.connect()?;
            if let Some(s) = &connector.schema {
                conn.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {s}"))?;
            }
            migrate(&conn, connector.migrate_lock)?;
            schema_version(&conn)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("migrate: {e}")))?
    }

    /// Calls `on_change` (from a thread of its own) soon after any instance on the database
    /// commits a change, until the store closes: `LISTEN`/`NOTIFY` on a channel of the store's
    /// schema. Followers that poll anyway (event streams, app webhooks, the inbox) wake at once.
    pub fn follow_changes(&self, on_change: impl Fn() + Send + 'static) -> Result<(), StoreError> {
        let (c, stop) = (self.shared.connector.clone(), self.shared.stop.clone());
        std::thread::Builder::new()
            .name("mynah-pg-listen".into())
            .spawn(move || listen_thread(c, stop, Box::new(on_change)))
            .map(|_| ())
            .map_err(|e| StoreError::Backend(format!("listener thread: {e}")))
    }

    /// Stops the writer after it commits everything queued, and waits for it. Later calls
    /// (reads included) fail with [`StoreError::Closed`].
    pub async fn close(&self) {
        self.shared
            .reads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        self.shared.stop.cancel();
        let mut done = self.shared.done.clone();
        let _ = done.wait_for(|d| *d).await;
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

    /// Runs `op` on a reader.
    async fn read<I, O, F>(&self, input: I, op: F) -> Result<O, StoreError>
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
        {
            let reads = self.shared.reads.lock().unwrap_or_else(|p| p.into_inner());
            let sender = reads.as_ref().ok_or(StoreError::Closed)?;
            sender
                .send(Box::new(task))
                .map_err(|_| StoreError::Closed)?;
        }
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

// ---------------------------------------------------------------------------------------------
// Schema

/// Schema versions: entry `i` takes the database from version i to i + 1.
const MIGRATIONS: &[&str] = &[SCHEMA_V1, SCHEMA_V2, SCHEMA_V3, SCHEMA_V4];

/// Version 1: everything the SQLite schema has at its version 5, in PostgreSQL's types.
const SCHEMA_V1: &str = r#"
CREATE TABLE messages (
    seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    id TEXT COLLATE "C" NOT NULL UNIQUE,
    idempotency_key TEXT COLLATE "C" UNIQUE,
    request_hash TEXT,
    phone_number_id TEXT COLLATE "C" NOT NULL,
    recipient TEXT COLLATE "C" NOT NULL,
    person TEXT COLLATE "C",
    category TEXT NOT NULL,
    template_name TEXT COLLATE "C",
    template_language TEXT COLLATE "C",
    lane TEXT NOT NULL,
    body TEXT NOT NULL,
    metadata TEXT,
    state TEXT NOT NULL,
    reason TEXT,
    parked_reason TEXT COLLATE "C",
    wamid TEXT COLLATE "C",
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    not_before BIGINT NOT NULL,
    deadline BIGINT NOT NULL,
    lease_until BIGINT,
    last_error_code BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    accepted_at BIGINT,
    sent_at BIGINT,
    delivered_at BIGINT,
    read_at BIGINT,
    failed_at BIGINT,
    sequence_key TEXT COLLATE "C",
    sequence_rule TEXT,
    sequence_prev TEXT COLLATE "C",
    campaign TEXT COLLATE "C"
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
CREATE INDEX messages_parked_deadline ON messages (deadline)
    WHERE state = 'queued' AND parked_reason IS NOT NULL;
CREATE INDEX messages_person ON messages (person, created_at, seq);
CREATE INDEX messages_sequence ON messages (person, sequence_key, seq)
    WHERE sequence_key IS NOT NULL;
CREATE INDEX messages_sequence_prev ON messages (sequence_prev) WHERE sequence_prev IS NOT NULL;
CREATE INDEX messages_campaign ON messages (campaign, state) WHERE campaign IS NOT NULL;
CREATE INDEX messages_campaign_person ON messages (person, created_at)
    WHERE campaign IS NOT NULL;

CREATE TABLE events (
    seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    message_id TEXT COLLATE "C" NOT NULL,
    kind TEXT NOT NULL,
    at BIGINT NOT NULL,
    detail TEXT NOT NULL,
    state TEXT NOT NULL
);
CREATE INDEX events_message ON events (message_id, seq);

CREATE TABLE orphan_statuses (
    seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    wamid TEXT COLLATE "C" NOT NULL,
    payload TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX orphan_statuses_wamid ON orphan_statuses (wamid);

CREATE TABLE inbox (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    received_at BIGINT NOT NULL,
    source TEXT NOT NULL,
    body BYTEA NOT NULL,
    outcome TEXT
);
CREATE INDEX inbox_pending ON inbox (id) WHERE outcome IS NULL;

CREATE TABLE dedupe_keys (
    key TEXT COLLATE "C" PRIMARY KEY,
    at BIGINT NOT NULL,
    rowid BIGINT GENERATED BY DEFAULT AS IDENTITY UNIQUE
);

CREATE TABLE consents (
    wa_id TEXT COLLATE "C" NOT NULL,
    category TEXT COLLATE "C" NOT NULL,
    status TEXT NOT NULL,
    source TEXT NOT NULL,
    evidence TEXT,
    at BIGINT NOT NULL,
    recorded_at BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (wa_id, category)
);
CREATE TABLE consent_history (
    seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    wa_id TEXT COLLATE "C" NOT NULL,
    category TEXT COLLATE "C" NOT NULL,
    status TEXT NOT NULL,
    source TEXT NOT NULL,
    evidence TEXT,
    at BIGINT NOT NULL,
    recorded_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX consent_history_wa_id ON consent_history (wa_id, at, seq);
CREATE INDEX consent_history_recorded ON consent_history (wa_id, seq);

CREATE TABLE inbound_windows (
    phone_number_id TEXT COLLATE "C" NOT NULL,
    wa_id TEXT COLLATE "C" NOT NULL,
    last_at BIGINT NOT NULL,
    PRIMARY KEY (phone_number_id, wa_id)
);

CREATE TABLE templates (
    name TEXT COLLATE "C" NOT NULL,
    language TEXT COLLATE "C" NOT NULL,
    category TEXT NOT NULL,
    status TEXT NOT NULL,
    id TEXT NOT NULL,
    components TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    parameter_format TEXT,
    PRIMARY KEY (name, language)
);

CREATE TABLE cursors (
    name TEXT COLLATE "C" PRIMARY KEY,
    value BIGINT NOT NULL
);

CREATE TABLE inbound_messages (
    seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    id TEXT COLLATE "C" NOT NULL UNIQUE,
    phone_number_id TEXT COLLATE "C" NOT NULL,
    wa_id TEXT COLLATE "C" NOT NULL,
    person TEXT COLLATE "C",
    profile_name TEXT,
    type TEXT NOT NULL,
    context_id TEXT,
    body TEXT NOT NULL,
    timestamp BIGINT NOT NULL,
    received_at BIGINT NOT NULL
);
CREATE INDEX inbound_messages_contact ON inbound_messages (wa_id, received_at, seq);
CREATE INDEX inbound_messages_person ON inbound_messages (person, received_at, seq);

CREATE TABLE people (
    person TEXT COLLATE "C" PRIMARY KEY,
    wa_id TEXT COLLATE "C",
    user_id TEXT COLLATE "C",
    parent_user_id TEXT COLLATE "C",
    username TEXT,
    profile_name TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE identities (
    id TEXT COLLATE "C" PRIMARY KEY,
    person TEXT COLLATE "C" NOT NULL,
    kind TEXT NOT NULL,
    since BIGINT NOT NULL
);
CREATE INDEX identities_person ON identities (person);
CREATE TABLE identity_history (
    seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    person TEXT COLLATE "C" NOT NULL,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX identity_history_person ON identity_history (person, seq);

CREATE TABLE campaigns (
    id TEXT COLLATE "C" PRIMARY KEY,
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    spec TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT
);
CREATE TABLE campaign_recipients (
    campaign TEXT COLLATE "C" NOT NULL,
    row BIGINT NOT NULL,
    recipient TEXT NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    detail TEXT,
    columns TEXT NOT NULL,
    body TEXT,
    message_id TEXT COLLATE "C",
    PRIMARY KEY (campaign, row)
);
CREATE INDEX campaign_recipients_key ON campaign_recipients (campaign, key)
    WHERE status != 'skipped';
CREATE INDEX campaign_recipients_pending ON campaign_recipients (campaign, row)
    WHERE status = 'pending';
"#;

/// Version 2: token buckets and role leases shared by the instances (`Store::take_tokens`,
/// `Store::lease_role`).
const SCHEMA_V2: &str = r#"
CREATE TABLE rate_buckets (
    key TEXT COLLATE "C" PRIMARY KEY,
    milli BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE roles (
    role TEXT COLLATE "C" PRIMARY KEY,
    holder TEXT NOT NULL,
    until BIGINT NOT NULL
)
"#;

/// Version 3: the idempotency keys' unique index holds only the messages that have one (a
/// B-tree indexes NULLs too, and every change of a message's row, five or more in its life and
/// none of them a heap-only update since its state is in the partial indexes' predicates, added
/// an entry for its NULL key); and no planner statistics for the columns no statement filters,
/// joins or groups by (bodies, payloads, timestamps of the lifecycle), which halves the cost
/// of each `ANALYZE` of the large tables; and the inbox's webhook bodies compressed with LZ4
/// where the server has it (a 38 KB batch of 100 statuses: 0.06–0.09 ms against pglz's
/// 0.27–0.33 ms, to the same size). The new index is built in the migration's transaction: on a
/// large outbox, writes wait for the build (0.3 s for a million messages, half of them keyed, on
/// the 2-core machine).
const SCHEMA_V3: &str = r#"
ALTER TABLE messages DROP CONSTRAINT IF EXISTS messages_idempotency_key_key;
CREATE UNIQUE INDEX IF NOT EXISTS messages_idempotency_key ON messages (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
ALTER TABLE messages ALTER COLUMN body SET STATISTICS 0,
    ALTER COLUMN metadata SET STATISTICS 0, ALTER COLUMN request_hash SET STATISTICS 0,
    ALTER COLUMN last_error SET STATISTICS 0, ALTER COLUMN reason SET STATISTICS 0,
    ALTER COLUMN sequence_rule SET STATISTICS 0, ALTER COLUMN accepted_at SET STATISTICS 0,
    ALTER COLUMN sent_at SET STATISTICS 0, ALTER COLUMN delivered_at SET STATISTICS 0,
    ALTER COLUMN read_at SET STATISTICS 0, ALTER COLUMN failed_at SET STATISTICS 0,
    ALTER COLUMN attempts SET STATISTICS 0, ALTER COLUMN updated_at SET STATISTICS 0;
ALTER TABLE events ALTER COLUMN kind SET STATISTICS 0, ALTER COLUMN at SET STATISTICS 0,
    ALTER COLUMN detail SET STATISTICS 0, ALTER COLUMN state SET STATISTICS 0;
ALTER TABLE inbox ALTER COLUMN body SET STATISTICS 0, ALTER COLUMN source SET STATISTICS 0;
ALTER TABLE identity_history ALTER COLUMN detail SET STATISTICS 0;
DO $$ BEGIN
    IF EXISTS (SELECT 1 FROM pg_settings
               WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
        ALTER TABLE inbox ALTER COLUMN body SET COMPRESSION lz4;
    END IF;
END $$
"#;

/// Version 4: status dedupe keys are stored under the id of the message their wamid names
/// (`store::message_scoped_key`); the keys remembered before are moved there, so a status
/// delivered again after the upgrade is still known. A key whose message is gone, or whose wamid
/// is another attempt's (recorded on the timeline only), stays as it was.
const SCHEMA_V4: &str = r#"
UPDATE dedupe_keys SET key = (
    SELECT m.id FROM messages m
    WHERE m.wamid = split_part(dedupe_keys.key, ':', 2)
    ORDER BY m.seq DESC LIMIT 1
) || ':' || key
WHERE key LIKE 's:%' AND EXISTS (
    SELECT 1 FROM messages m WHERE m.wamid = split_part(dedupe_keys.key, ':', 2)
)
"#;

fn schema_version(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn
        .prepare_cached("SELECT coalesce(max(version), 0) FROM schema_migrations")?
        .query_row([], |r| r.get(0))?)
}

/// Brings the schema to the latest version, one transaction per step, under a session advisory
/// lock so that instances starting together apply each step once.
fn migrate(conn: &Connection, lock: i64) -> Result<(), StoreError> {
    conn.batch_execute(&format!("SELECT pg_advisory_lock({lock})"))?;
    let result = migrate_locked(conn);
    let unlocked = conn.batch_execute(&format!("SELECT pg_advisory_unlock({lock})"));
    result?;
    Ok(unlocked?)
}

fn migrate_locked(conn: &Connection) -> Result<(), StoreError> {
    conn.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, \
         applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )?;
    let version = schema_version(conn)?;
    let current = usize::try_from(version).unwrap_or(usize::MAX);
    if current > MIGRATIONS.len() {
        return Err(StoreError::Unusable(format!(
            "the database's gateway schema is at version {version}, newer than this build ({}): \
             run a newer mynah",
            MIGRATIONS.len()
        )));
    }
    for (i, step) in MIGRATIONS.iter().enumerate().skip(current) {
        let sql = format!(
            "BEGIN; {step}; INSERT INTO schema_migrations (version) VALUES ({}); COMMIT",
            i + 1
        );
        if let Err(e) = conn.batch_execute(&sql) {
            let _ = conn.batch_execute("ROLLBACK");
            return Err(StoreError::Backend(format!(
                "schema migration to version {}: {e}",
                i + 1
            )));
        }
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

/// A batch for the writer thread, and where to say it is done.
type Batch = (Vec<Box<dyn Job>>, oneshot::Sender<()>);

async fn run_writer(
    mut rx: mpsc::Receiver<Box<dyn Job>>,
    stop: CancellationToken,
    max_batch: usize,
    done: watch::Sender<bool>,
    batches: std::sync::mpsc::Sender<Batch>,
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
        let (tx, committed) = oneshot::channel();
        if let Err(std::sync::mpsc::SendError((jobs, _))) = batches.send((jobs, tx)) {
            tracing::error!("store writer thread is gone");
            jobs.into_iter()
                .for_each(|j| j.finish(Err(StoreError::Closed)));
            break;
        }
        if committed.await.is_err() {
            tracing::error!("store writer thread failed");
            break;
        }
    }
    // Dropping `batches` ends the writer thread, which closes its connection.
    drop(batches);
    let _ = done.send(true);
}

fn writer_thread(
    mut conn: Option<Connection>,
    connector: Connector,
    rx: std::sync::mpsc::Receiver<Batch>,
) {
    while let Ok((jobs, committed)) = rx.recv() {
        commit_batch(&mut conn, &connector, jobs);
        let _ = committed.send(());
    }
}

/// The connection, connected (again) by `make` if there is none or it was lost.
fn usable<'c>(
    conn: &'c mut Option<Connection>,
    connector: &Connector,
    make: fn(&Connector) -> Result<Connection, StoreError>,
) -> Result<&'c Connection, StoreError> {
    if conn.as_ref().is_none_or(Connection::is_closed) {
        // A lost connection stays in its slot until a new one is made, so that the reconnection
        // is told even when the first attempts fail (the server is still restarting).
        let lost = conn.is_some();
        let fresh = make(connector)?;
        if lost {
            tracing::info!("store reconnected to PostgreSQL");
        }
        *conn = Some(fresh);
    }
    conn.as_ref().ok_or(StoreError::Closed)
}

/// Runs every job in one transaction and answers them; on failure re-runs each alone.
fn commit_batch(conn: &mut Option<Connection>, connector: &Connector, mut jobs: Vec<Box<dyn Job>>) {
    let c = match usable(conn, connector, Connector::connect_writer) {
        Ok(c) => c,
        Err(e) => {
            jobs.into_iter().for_each(|j| j.finish(Err(e.clone())));
            return;
        }
    };
    match run_in_transaction(c, connector, &mut jobs) {
        Ok(()) => jobs.into_iter().for_each(|j| j.finish(Ok(()))),
        Err(e) if jobs.len() == 1 || c.is_closed() => {
            jobs.into_iter().for_each(|j| j.finish(Err(e.clone())));
        }
        Err(e) => {
            tracing::warn!(error = %e, calls = jobs.len(), "store batch failed; retrying one by one");
            for mut job in jobs {
                let outcome = run_in_transaction(c, connector, std::slice::from_mut(&mut job));
                job.finish(outcome);
            }
        }
    }
}

/// Runs `jobs` in one transaction under the write lock; the commit notifies the store's
/// channel (in the same round trip), so other instances' followers wake up.
fn run_in_transaction(
    conn: &Connection,
    connector: &Connector,
    jobs: &mut [Box<dyn Job>],
) -> Result<(), StoreError> {
    conn.batch_execute(&connector.begin)?;
    let ran = jobs.iter_mut().try_for_each(|job| job.run(conn));
    match ran.and_then(|()| Ok(conn.batch_execute(&connector.commit)?)) {
        Ok(()) => Ok(()),
        Err(e) => {
            if !conn.is_closed() {
                let _ = conn.batch_execute("ROLLBACK");
            }
            Err(e)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Change notifications

/// How long the listener waits for a notification before it looks at the stop token.
const LISTEN_TICK: Duration = Duration::from_millis(250);

/// Calls `on_change` after commits of other processes (and this one's) on the store's channel,
/// once per burst of notifications, and once after each reconnection (notifications sent while
/// disconnected are lost). Until `stop`.
fn listen_thread(connector: Connector, stop: CancellationToken, on_change: Box<dyn Fn() + Send>) {
    use postgres::fallible_iterator::FallibleIterator;
    let mut client: Option<postgres::Client> = None;
    let mut failing = false;
    while !stop.is_cancelled() {
        let c = match &mut client {
            Some(c) if !c.is_closed() => c,
            _ => {
                let connected = connector.config.connect(postgres::NoTls).and_then(|mut c| {
                    c.batch_execute(&format!("LISTEN {}", connector.channel))
                        .map(|()| c)
                });
                match connected {
                    Ok(c) => {
                        if std::mem::take(&mut failing) {
                            tracing::info!("change notifications: listening again");
                        }
                        on_change();
                        client.insert(c)
                    }
                    Err(e) => {
                        if !std::mem::replace(&mut failing, true) {
                            tracing::warn!(error = %e, "change notifications: cannot listen; retrying (followers poll meanwhile)");
                        }
                        client = None;
                        std::thread::sleep(LISTEN_TICK * 4);
                        continue;
                    }
                }
            }
        };
        let lost = {
            let mut notifications = c.notifications();
            let first = notifications.timeout_iter(LISTEN_TICK).next();
            match first {
                Ok(Some(_)) => {
                    // The rest of the burst, as far as it has arrived.
                    while let Ok(Some(_)) = notifications.iter().next() {}
                    on_change();
                    None
                }
                Ok(None) => None,
                Err(e) => Some(e),
            }
        };
        if let Some(e) = lost {
            tracing::warn!(error = %e, "change notifications: connection lost");
            failing = true;
            client = None;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Readers

fn reader_thread(connector: Connector, rx: Arc<Mutex<std::sync::mpsc::Receiver<Box<dyn Job>>>>) {
    let mut conn: Option<Connection> = None;
    loop {
        let job = {
            let rx = rx.lock().unwrap_or_else(|p| p.into_inner());
            match rx.recv() {
                Ok(j) => j,
                Err(_) => return,
            }
        };
        let mut job = job;
        let outcome = usable(&mut conn, &connector, Connector::connect).and_then(|c| job.run(c));
        job.finish(outcome);
    }
}

// ---------------------------------------------------------------------------------------------
// Value conversions

impl From<sql::Error> for StoreError {
    fn from(e: sql::Error) -> StoreError {
        match e {
            sql::Error::Conversion(m) => StoreError::Corrupt(m),
            sql::Error::Db(ref d) if d.is_closed() => {
                StoreError::Backend(format!("PostgreSQL connection lost: {e}"))
            }
            e => StoreError::Backend(e.to_string()),
        }
    }
}

/// Stores string enums as their `as_str` form.
macro_rules! sql_text {
    ($($t:ty),+) => {$(
        impl sql::ToSql for $t {
            fn to_value(&self) -> Value {
                Value::Text(self.as_str().to_owned())
            }
        }

        impl sql::FromSql for $t {
            fn from_value(v: &Value) -> sql::Result<Self> {
                match v {
                    Value::Text(s) => <$t>::parse(s).ok_or_else(|| {
                        sql::Error::Conversion(format!("unknown {} {s:?}", stringify!($t)))
                    }),
                    _ => Err(sql::Error::Conversion(format!(
                        "{} stored as {v:?}",
                        stringify!($t)
                    ))),
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Status keys remembered before version 4 move under their message; a key whose message
    /// is gone, and keys of other kinds, stay as they were. Runs against the server that
    /// `MYNAH_TEST_DATABASE_URL` names, in a schema of its own (skipped without it, unless
    /// `MYNAH_PG_TESTS=1`).
    #[test]
    fn version_4_moves_status_keys_under_their_message() {
        let Some(url) = std::env::var("MYNAH_TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())
        else {
            assert!(
                !std::env::var("MYNAH_PG_TESTS").is_ok_and(|v| v == "1"),
                "MYNAH_PG_TESTS=1 but MYNAH_TEST_DATABASE_URL is not set"
            );
            return;
        };
        let schema = format!("migration_v4_{}", std::process::id());
        let opts = PostgresOptions {
            schema: Some(schema.clone()),
            ..PostgresOptions::default()
        };
        let connector = Connector::new(&url, &opts).unwrap();
        let conn = connector.connect().unwrap();
        conn.batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}; \
             SET search_path TO {schema}; \
             CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, \
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        ))
        .unwrap();
        for (i, step) in MIGRATIONS[..3].iter().enumerate() {
            conn.batch_execute(&format!(
                "{step}; INSERT INTO schema_migrations (version) VALUES ({})",
                i + 1
            ))
            .unwrap();
        }
        conn.batch_execute(crate::store::status_keys_fixture::BEFORE)
            .unwrap();
        migrate_locked(&conn).unwrap();
        let keys: Vec<(String, i64)> = conn
            .prepare_cached("SELECT key, at FROM dedupe_keys ORDER BY at")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        conn.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .unwrap();
        assert_eq!(keys, crate::store::status_keys_fixture::after());
    }

    /// Every table the migrations create is one `analyze_grown` looks at (bar the migrations'
    /// own bookkeeping), so a new table cannot be forgotten there.
    #[test]
    fn analyze_grown_covers_every_table_of_the_schema() {
        let created: Vec<&str> = MIGRATIONS
            .iter()
            .flat_map(|sql| sql.split("CREATE TABLE ").skip(1))
            .filter_map(|rest| rest.split([' ', '(']).next())
            .collect();
        assert!(created.contains(&"messages"), "{created:?}");
        for table in created {
            assert!(
                ANALYZED_TABLES.contains(&format!("'{table}'")),
                "{table} is missing from ANALYZED_TABLES"
            );
        }
    }
}
