//! The sandbox's journal: the durable copy of its in-memory state.
//!
//! The sandbox keeps its state in memory (rules read it without I/O) and journals every change
//! here. Writes are group-committed: a writer task takes everything queued, applies it in one
//! SQLite transaction (WAL), then answers every waiter — so a request is acknowledged only once
//! what it changed is on disk, and thousands of requests share one commit. On start the journal
//! is read back into memory. `--ephemeral` uses the memory journal, which persists nothing.
//!
//! Entities are stored as JSON under `(kind, id)`; media bytes and webhook attempts have tables of
//! their own. Messages that left memory (past `retention.hot_messages`) are also listed in
//! `cold_messages` by arrival position and user, so that history is read back on demand
//! ([`Journal::message`], [`Journal::cold_page`]) instead of being kept in memory.

use bytes::Bytes;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Connection, Row, SqliteConnection};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::{mpsc, oneshot};

/// What kind of entity a row holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A business phone number (webhook settings included).
    Number,
    /// A virtual user.
    User,
    /// A message, inbound or outbound.
    Message,
    /// Media metadata (bytes live in the blob table).
    Media,
    /// A pending webhook delivery.
    Delivery,
    /// A message template.
    Template,
    /// Sandbox-wide counters (id sequences, clock).
    Meta,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Number => "number",
            Kind::User => "user",
            Kind::Message => "message",
            Kind::Media => "media",
            Kind::Delivery => "delivery",
            Kind::Template => "template",
            Kind::Meta => "meta",
        }
    }

    fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "number" => Kind::Number,
            "user" => Kind::User,
            "message" => Kind::Message,
            "media" => Kind::Media,
            "delivery" => Kind::Delivery,
            "template" => Kind::Template,
            "meta" => Kind::Meta,
            _ => return None,
        })
    }
}

/// One change to journal.
#[derive(Debug, Clone)]
pub enum Write {
    /// Insert or replace an entity.
    Put {
        /// Kind.
        kind: Kind,
        /// Id within the kind.
        id: String,
        /// JSON.
        data: String,
    },
    /// Remove an entity.
    Delete {
        /// Kind.
        kind: Kind,
        /// Id within the kind.
        id: String,
    },
    /// Store media bytes.
    Blob {
        /// Media id.
        id: String,
        /// The bytes.
        bytes: Bytes,
    },
    /// Remove media bytes.
    DeleteBlob {
        /// Media id.
        id: String,
    },
    /// A message left memory: list it in arrival order (its entity row stays).
    Cool {
        /// Its position in arrival order.
        pos: u64,
        /// Its wamid.
        id: Arc<str>,
        /// Its user.
        wa_id: String,
    },
    /// Forget the messages that left memory at positions before this one.
    Trim {
        /// The first position kept.
        before: u64,
    },
    /// Append a webhook attempt record (JSON).
    Attempt {
        /// JSON of the attempt.
        data: String,
    },
    /// Forget everything (control API reset).
    Reset,
}

/// What was journalled, read back at start.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Entities by kind: `(id, json)`.
    pub rows: HashMap<Kind, Vec<(String, String)>>,
    /// Media bytes by id.
    pub blobs: HashMap<String, Bytes>,
    /// The latest webhook attempts (JSON), oldest first.
    pub attempts: Vec<String>,
    /// Messages that had left memory, `(position, json)` in arrival order (not in `rows`).
    pub cold: Vec<(u64, String)>,
}

impl Snapshot {
    /// The rows of one kind.
    pub fn take(&mut self, kind: Kind) -> Vec<(String, String)> {
        self.rows.remove(&kind).unwrap_or_default()
    }
}

type Ack = oneshot::Sender<Result<(), String>>;

struct Job {
    writes: Vec<Write>,
    done: Option<Ack>,
}

/// Resolves once the writes it stands for are durable.
#[must_use = "await it before acknowledging the work"]
pub struct Durable(Option<oneshot::Receiver<Result<(), String>>>);

impl Durable {
    /// Waits for the commit.
    pub async fn wait(self) -> Result<(), String> {
        match self.0 {
            None => Ok(()),
            Some(rx) => rx
                .await
                .unwrap_or_else(|_| Err("journal writer stopped".to_string())),
        }
    }
}

/// The journal handle. Cheap to clone.
#[derive(Clone)]
pub struct Journal {
    tx: Option<mpsc::UnboundedSender<Job>>,
    backlog: Arc<AtomicUsize>,
    /// A read-only connection for history read back on demand (none in memory).
    reader: Option<Arc<tokio::sync::Mutex<SqliteConnection>>>,
}

impl Journal {
    /// A journal that keeps nothing (`--ephemeral`).
    pub fn memory() -> Journal {
        Journal {
            tx: None,
            backlog: Arc::new(AtomicUsize::new(0)),
            reader: None,
        }
    }

    /// Opens (or creates) `dir/sandbox.db`, reads it back, and starts the writer task.
    /// `keep_attempts` bounds how many webhook attempts are kept (the oldest go as new ones
    /// are written) and read back.
    ///
    /// A file that is there but is not a sandbox journal — empty, not SQLite, another
    /// program's database, or damaged (SQLite's `quick_check`) — is refused before anything is
    /// written to it, with an error that names it and says what to do.
    pub async fn open_sqlite(
        dir: &Path,
        keep_attempts: usize,
    ) -> Result<(Journal, Snapshot), String> {
        if dir.exists() && !dir.is_dir() {
            return Err(format!(
                "the data directory {} is not a directory; point --data-dir (data_dir) at a directory",
                dir.display()
            ));
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let path = dir.join(DB_FILE);
        let existing = match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => {
                check_header(&path, m.len())?;
                inspect(&path).await?
            }
            Ok(_) => {
                return Err(refusal(&path, "it is not a regular file"));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Existing::Fresh,
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let opts = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal);
        let opened = |e: sqlx::Error| format!("cannot open {}: {e}", path.display());
        let mut conn = SqliteConnection::connect_with(&opts)
            .await
            .map_err(opened)?;
        for ddl in SCHEMA {
            sqlx::query(ddl).execute(&mut conn).await.map_err(opened)?;
        }
        if existing != Existing::Mynah {
            // A new journal, or one written before journals were marked: marked now.
            sqlx::query(&format!("PRAGMA application_id = {APPLICATION_ID}"))
                .execute(&mut conn)
                .await
                .map_err(opened)?;
        }
        let snapshot = load(&mut conn, keep_attempts)
            .await
            .map_err(|e| refusal(&path, &format!("it could not be read back ({e})")))?;
        let reader = SqliteConnection::connect_with(&opts.clone().read_only(true))
            .await
            .map_err(opened)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let backlog = Arc::new(AtomicUsize::new(0));
        tokio::spawn(writer(conn, rx, backlog.clone(), keep_attempts));
        Ok((
            Journal {
                tx: Some(tx),
                backlog,
                reader: Some(Arc::new(tokio::sync::Mutex::new(reader))),
            },
            snapshot,
        ))
    }

    /// Queues writes; the answer resolves when they are committed.
    pub fn submit(&self, writes: Vec<Write>) -> Durable {
        let Some(tx) = &self.tx else {
            return Durable(None);
        };
        if writes.is_empty() {
            return Durable(None);
        }
        let (done, rx) = oneshot::channel();
        self.backlog.fetch_add(writes.len(), Ordering::Relaxed);
        let n = writes.len();
        if tx
            .send(Job {
                writes,
                done: Some(done),
            })
            .is_err()
        {
            self.backlog.fetch_sub(n, Ordering::Relaxed);
            return Durable(None);
        }
        Durable(Some(rx))
    }

    /// Queues writes nobody waits for (background state changes).
    pub fn submit_detached(&self, writes: Vec<Write>) {
        let Some(tx) = &self.tx else { return };
        if writes.is_empty() {
            return;
        }
        self.backlog.fetch_add(writes.len(), Ordering::Relaxed);
        let n = writes.len();
        if tx.send(Job { writes, done: None }).is_err() {
            self.backlog.fetch_sub(n, Ordering::Relaxed);
        }
    }

    /// Waits until everything submitted so far is committed (at shutdown).
    pub async fn flush(&self) -> Result<(), String> {
        let Some(tx) = &self.tx else { return Ok(()) };
        let (done, rx) = oneshot::channel();
        if tx
            .send(Job {
                writes: Vec::new(),
                done: Some(done),
            })
            .is_err()
        {
            return Err("journal writer stopped".to_string());
        }
        Durable(Some(rx)).wait().await
    }

    /// A message as journalled, with its arrival position if it left memory (after everything
    /// submitted so far is committed); `None` when the journal has no such message or keeps
    /// nothing.
    pub async fn message(&self, id: &str) -> Result<Option<(Option<u64>, String)>, String> {
        let Some(reader) = &self.reader else {
            return Ok(None);
        };
        self.flush().await?;
        let mut conn = reader.lock().await;
        let row: Option<(Option<i64>, String)> = sqlx::query_as(
            "SELECT o.pos, e.data FROM entities e LEFT JOIN cold_messages o ON o.id = e.id \
             WHERE e.kind = 'message' AND e.id = ?",
        )
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| format!("the journal could not be read: {e}"))?;
        Ok(row.map(|(pos, json)| (pos.and_then(|p| u64::try_from(p).ok()), json)))
    }

    /// Messages that left memory, newest first: at most `limit` at positions before `before`,
    /// of one user or all, as `(position, json)` (after everything submitted so far is
    /// committed).
    pub async fn cold_page(
        &self,
        wa_id: Option<&str>,
        before: u64,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, String> {
        let Some(reader) = &self.reader else {
            return Ok(Vec::new());
        };
        self.flush().await?;
        let before = i64::try_from(before).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let sql = if wa_id.is_some() {
            "SELECT o.pos, e.data FROM cold_messages o JOIN entities e \
             ON e.kind = 'message' AND e.id = o.id \
             WHERE o.wa_id = ?3 AND o.pos < ?1 ORDER BY o.pos DESC LIMIT ?2"
        } else {
            "SELECT o.pos, e.data FROM cold_messages o JOIN entities e \
             ON e.kind = 'message' AND e.id = o.id \
             WHERE o.pos < ?1 ORDER BY o.pos DESC LIMIT ?2"
        };
        let mut conn = reader.lock().await;
        let rows: Vec<(i64, String)> = sqlx::query_as(sql)
            .bind(before)
            .bind(limit)
            .bind(wa_id.unwrap_or(""))
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| format!("the journal could not be read: {e}"))?;
        Ok(rows
            .into_iter()
            .map(|(pos, json)| (u64::try_from(pos).unwrap_or(0), json))
            .collect())
    }

    /// Writes queued but not yet committed.
    pub fn backlog(&self) -> usize {
        self.backlog.load(Ordering::Relaxed)
    }

    /// True when nothing is persisted.
    pub fn is_memory(&self) -> bool {
        self.tx.is_none()
    }
}

/// The journal's file name inside the data directory.
pub const DB_FILE: &str = "sandbox.db";

/// `PRAGMA application_id` of a sandbox journal ("MYNS"), so that another program's SQLite
/// database is never taken for one.
const APPLICATION_ID: i32 = 0x4d59_4e53;

/// The columns of each table (see `SCHEMA`).
const COLUMNS: &[(&str, &str)] = &[
    ("entities", "kind, id, data"),
    ("media_blobs", "id, bytes"),
    ("webhook_attempts", "seq, data"),
    ("cold_messages", "pos, id, wa_id"),
];

/// What an existing file turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Existing {
    /// No file yet.
    Fresh,
    /// A sandbox journal, marked.
    Mynah,
    /// A journal of an earlier version (unmarked, with the journal's tables only), or an
    /// SQLite file with no tables at all.
    Unmarked,
}

/// The error for a file that is not a usable journal: it names the file and what to do.
fn refusal(path: &Path, why: &str) -> String {
    format!(
        "{} is not a usable Mynah sandbox journal: {why}. Nothing was changed. Move the file away \
         (or restore it from a backup), or point --data-dir (data_dir) at another directory.",
        path.display()
    )
}

/// The file's first bytes must be SQLite's header.
fn check_header(path: &Path, len: u64) -> Result<(), String> {
    use std::io::Read;
    if len == 0 {
        return Err(refusal(
            path,
            "it is empty (0 bytes) where the database was expected",
        ));
    }
    let mut head = [0u8; 16];
    let mut f =
        std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let n = f
        .read(&mut head)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if len < 100 || n < 16 || &head != b"SQLite format 3\0" {
        return Err(refusal(
            path,
            "it is not an SQLite database (its first bytes are not SQLite's header)",
        ));
    }
    Ok(())
}

/// Looks at an existing SQLite file without writing to it: SQLite's `quick_check`, then whose
/// it is (the application id, its tables).
async fn inspect(path: &Path) -> Result<Existing, String> {
    let damaged = |e: sqlx::Error| refusal(path, &format!("SQLite cannot read it ({e})"));
    let opts = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .create_if_missing(false);
    let mut conn = SqliteConnection::connect_with(&opts)
        .await
        .map_err(damaged)?;
    let checked: Vec<String> = sqlx::query_scalar("PRAGMA quick_check(5)")
        .fetch_all(&mut conn)
        .await
        .map_err(damaged)?;
    if checked != ["ok"] {
        return Err(refusal(
            path,
            &format!(
                "it is damaged (SQLite's quick_check: {})",
                checked
                    .join("; ")
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        ));
    }
    let app: i32 = sqlx::query_scalar("PRAGMA application_id")
        .fetch_one(&mut conn)
        .await
        .map_err(damaged)?;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .fetch_all(&mut conn)
    .await
    .map_err(damaged)?;
    // The journal's tables that are there have the journal's columns.
    let mut wrong = None;
    for (table, columns) in COLUMNS {
        if tables.iter().any(|t| t == table)
            && sqlx::query(&format!("SELECT {columns} FROM {table} LIMIT 0"))
                .fetch_all(&mut conn)
                .await
                .is_err()
        {
            wrong = Some(*table);
            break;
        }
    }
    let _ = conn.close().await;
    if let Some(table) = wrong {
        return Err(refusal(
            path,
            &format!("its table {table} is not the journal's (other columns)"),
        ));
    }
    if app == APPLICATION_ID {
        return Ok(Existing::Mynah);
    }
    if app != 0 {
        return Err(refusal(
            path,
            &format!("it is another program's SQLite database (application_id {app})"),
        ));
    }
    let foreign: Vec<&String> = tables
        .iter()
        .filter(|t| !COLUMNS.iter().any(|(name, _)| name == t))
        .collect();
    if !foreign.is_empty() {
        let names: Vec<&str> = foreign.iter().take(5).map(|t| t.as_str()).collect();
        return Err(refusal(
            path,
            &format!(
                "it is another program's SQLite database (it has the tables {})",
                names.join(", ")
            ),
        ));
    }
    Ok(Existing::Unmarked)
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS entities (kind TEXT NOT NULL, id TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (kind, id)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS media_blobs (id TEXT PRIMARY KEY, bytes BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS webhook_attempts (seq INTEGER PRIMARY KEY AUTOINCREMENT, data TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS cold_messages (pos INTEGER PRIMARY KEY, id TEXT NOT NULL, wa_id TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS cold_messages_by_user ON cold_messages (wa_id, pos)",
    "CREATE INDEX IF NOT EXISTS cold_messages_by_id ON cold_messages (id)",
];

async fn load(conn: &mut SqliteConnection, keep_attempts: usize) -> Result<Snapshot, sqlx::Error> {
    let mut snap = Snapshot::default();
    // Messages that had left memory are read back apart, in arrival order.
    let mut cold: HashMap<String, u64> = HashMap::new();
    for row in sqlx::query("SELECT pos, id FROM cold_messages")
        .fetch_all(&mut *conn)
        .await?
    {
        let pos: i64 = row.try_get(0)?;
        cold.insert(row.try_get(1)?, u64::try_from(pos).unwrap_or(0));
    }
    for row in sqlx::query("SELECT kind, id, data FROM entities")
        .fetch_all(&mut *conn)
        .await?
    {
        let kind: String = row.try_get(0)?;
        let Some(kind) = Kind::parse(&kind) else {
            continue;
        };
        let id: String = row.try_get(1)?;
        if kind == Kind::Message
            && let Some(pos) = cold.get(&id)
        {
            snap.cold.push((*pos, row.try_get(2)?));
            continue;
        }
        snap.rows
            .entry(kind)
            .or_default()
            .push((id, row.try_get(2)?));
    }
    snap.cold.sort_unstable_by_key(|(pos, _)| *pos);
    for row in sqlx::query("SELECT id, bytes FROM media_blobs")
        .fetch_all(&mut *conn)
        .await?
    {
        let bytes: Vec<u8> = row.try_get(1)?;
        snap.blobs.insert(row.try_get(0)?, Bytes::from(bytes));
    }
    let limit = i64::try_from(keep_attempts).unwrap_or(i64::MAX);
    let rows = sqlx::query("SELECT data FROM webhook_attempts ORDER BY seq DESC LIMIT ?")
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
    for row in rows.into_iter().rev() {
        snap.attempts.push(row.try_get(0)?);
    }
    Ok(snap)
}

/// Most jobs one commit takes.
const MAX_JOBS_PER_COMMIT: usize = 4_096;

async fn writer(
    mut conn: SqliteConnection,
    mut rx: mpsc::UnboundedReceiver<Job>,
    backlog: Arc<AtomicUsize>,
    keep_attempts: usize,
) {
    let mut jobs = Vec::with_capacity(64);
    while rx.recv_many(&mut jobs, MAX_JOBS_PER_COMMIT).await > 0 {
        let n: usize = jobs.iter().map(|j| j.writes.len()).sum();
        let result = commit(&mut conn, &jobs, keep_attempts)
            .await
            .map_err(|e| e.to_string());

        if let Err(e) = &result {
            tracing::error!(error = %e, "journal commit failed");
        }
        backlog.fetch_sub(n, Ordering::Relaxed);
        for job in jobs.drain(..) {
            if let Some(done) = job.done {
                let _ = done.send(result.clone());
            }
        }
    }
}

/// Most rows one multi-row statement writes (chunks are powers of two up to this, so that
/// few distinct statements are prepared).
const SET_ROWS: usize = 64;

/// Splits `n` rows into chunks of [`SET_ROWS`] and then powers of two: `(start, len)`.
fn set_chunks(n: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < n {
        let left = n - at;
        let len = if left >= SET_ROWS {
            SET_ROWS
        } else {
            1 << (usize::BITS - 1 - left.leading_zeros())
        };
        out.push((at, len));
        at += len;
    }
    out
}

/// `(?, ?), (?, ?)`: `rows` groups of `width` placeholders.
fn placeholders(rows: usize, width: usize) -> String {
    let one = format!("({})", vec!["?"; width].join(", "));
    vec![one; rows].join(", ")
}

/// Applies a batch of jobs in one transaction. Only the last write to an entity counts, and the
/// entities' writes go first, set-wise (deletes, then upserts, many rows a statement: each
/// statement is a hop to SQLite's worker thread); the other writes follow in their order, runs of
/// cold listings and of attempts set-wise too. That order is safe: an entity's row never depends
/// on a blob, a listing or an attempt, and a trim only ever follows the last write of a message
/// it forgets.
async fn commit(
    conn: &mut SqliteConnection,
    jobs: &[Job],
    keep_attempts: usize,
) -> Result<(), sqlx::Error> {
    let all: Vec<&Write> = jobs.iter().flat_map(|j| j.writes.iter()).collect();
    // Everything before the last reset is moot.
    let reset = all.iter().rposition(|w| matches!(w, Write::Reset));
    let all = &all[reset.unwrap_or(0)..];
    // Only the last write to an entity in this batch matters.
    let mut last: HashMap<(Kind, &str), usize> = HashMap::new();
    for (i, w) in all.iter().enumerate() {
        if let Write::Put { kind, id, .. } | Write::Delete { kind, id } = w {
            last.insert((*kind, id.as_str()), i);
        }
    }
    // (kind, id, data) of each put and (kind, id) of each delete, flat.
    let mut puts: Vec<Arg> = Vec::new();
    let mut deletes: Vec<Arg> = Vec::new();
    for (i, w) in all.iter().enumerate() {
        match w {
            Write::Put { kind, id, data } if last.get(&(*kind, id.as_str())) == Some(&i) => {
                puts.extend([Arg::Text(kind.as_str()), Arg::Text(id), Arg::Text(data)]);
            }
            Write::Delete { kind, id } if last.get(&(*kind, id.as_str())) == Some(&i) => {
                deletes.extend([Arg::Text(kind.as_str()), Arg::Text(id)]);
            }
            _ => {}
        }
    }
    let mut tx = conn.begin().await?;
    if reset.is_some() {
        for table in [
            "entities",
            "media_blobs",
            "webhook_attempts",
            "cold_messages",
        ] {
            sqlx::query(&format!("DELETE FROM {table}"))
                .execute(&mut *tx)
                .await?;
        }
    }
    write_rows(&mut tx, DELETE_ENTITIES, &mut deletes).await?;
    write_rows(&mut tx, PUT_ENTITIES, &mut puts).await?;
    // The rest in order, runs of one kind together.
    let mut cools: Vec<Arg> = Vec::new();
    let mut attempts: Vec<Arg> = Vec::new();
    let mut any_attempt = false;
    for w in all {
        if !matches!(w, Write::Cool { .. }) {
            write_rows(&mut tx, LIST_COLD, &mut cools).await?;
        }
        if !matches!(w, Write::Attempt { .. }) {
            write_rows(&mut tx, APPEND_ATTEMPTS, &mut attempts).await?;
        }
        match w {
            Write::Reset | Write::Put { .. } | Write::Delete { .. } => {}
            Write::Cool { pos, id, wa_id } => {
                let pos = i64::try_from(*pos).unwrap_or(i64::MAX);
                cools.extend([Arg::Int(pos), Arg::Text(id), Arg::Text(wa_id)]);
            }
            Write::Attempt { data } => {
                attempts.push(Arg::Text(data));
                any_attempt = true;
            }
            Write::Trim { before } => {
                let before = i64::try_from(*before).unwrap_or(i64::MAX);
                sqlx::query(
                    "DELETE FROM entities WHERE kind = 'message' AND id IN \
                     (SELECT id FROM cold_messages WHERE pos < ?)",
                )
                .bind(before)
                .execute(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM cold_messages WHERE pos < ?")
                    .bind(before)
                    .execute(&mut *tx)
                    .await?;
            }
            Write::Blob { id, bytes } => {
                sqlx::query("INSERT OR REPLACE INTO media_blobs (id, bytes) VALUES (?, ?)")
                    .bind(id)
                    .bind(bytes.as_ref())
                    .execute(&mut *tx)
                    .await?;
            }
            Write::DeleteBlob { id } => {
                sqlx::query("DELETE FROM media_blobs WHERE id = ?")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
    }
    write_rows(&mut tx, LIST_COLD, &mut cools).await?;
    write_rows(&mut tx, APPEND_ATTEMPTS, &mut attempts).await?;
    if any_attempt {
        // The journal keeps as many attempts as are read back: the oldest go.
        sqlx::query(
            "DELETE FROM webhook_attempts WHERE seq <= \
             (SELECT max(seq) FROM webhook_attempts) - ?",
        )
        .bind(i64::try_from(keep_attempts.max(1)).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// A value bound to a multi-row statement.
enum Arg<'a> {
    Text(&'a str),
    Int(i64),
}

/// A multi-row statement: the SQL before and after its rows, and the values per row.
struct RowsSql {
    head: &'static str,
    tail: &'static str,
    width: usize,
}

const DELETE_ENTITIES: RowsSql = RowsSql {
    head: "DELETE FROM entities WHERE (kind, id) IN (VALUES",
    tail: ")",
    width: 2,
};
const PUT_ENTITIES: RowsSql = RowsSql {
    head: "INSERT INTO entities (kind, id, data) VALUES",
    tail: "ON CONFLICT (kind, id) DO UPDATE SET data = excluded.data",
    width: 3,
};
const LIST_COLD: RowsSql = RowsSql {
    head: "INSERT OR REPLACE INTO cold_messages (pos, id, wa_id) VALUES",
    tail: "",
    width: 3,
};
const APPEND_ATTEMPTS: RowsSql = RowsSql {
    head: "INSERT INTO webhook_attempts (data) VALUES",
    tail: "",
    width: 1,
};

/// Runs `stmt` over `args` (`stmt.width` values a row, in order), many rows a statement, and
/// empties `args`.
async fn write_rows(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    stmt: RowsSql,
    args: &mut Vec<Arg<'_>>,
) -> Result<(), sqlx::Error> {
    for (start, len) in set_chunks(args.len() / stmt.width) {
        let sql = format!(
            "{} {} {}",
            stmt.head,
            placeholders(len, stmt.width),
            stmt.tail
        );
        let mut q = sqlx::query(&sql);
        for arg in &args[start * stmt.width..(start + len) * stmt.width] {
            q = match arg {
                Arg::Text(s) => q.bind(*s),
                Arg::Int(i) => q.bind(*i),
            };
        }
        q.execute(&mut **tx).await?;
    }
    args.clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(kind: Kind, id: &str, data: &str) -> Write {
        Write::Put {
            kind,
            id: id.into(),
            data: data.into(),
        }
    }

    #[tokio::test]
    async fn writes_survive_reopen_and_coalesce() {
        let dir = std::env::temp_dir().join(format!("mynah-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let (j, snap) = Journal::open_sqlite(&dir, 10).await.unwrap();
            assert!(snap.rows.is_empty());
            j.submit(vec![
                put(Kind::User, "1", "a"),
                put(Kind::User, "1", "b"),
                put(Kind::User, "2", "c"),
            ])
            .wait()
            .await
            .unwrap();
            j.submit(vec![Write::Delete {
                kind: Kind::User,
                id: "2".into(),
            }])
            .wait()
            .await
            .unwrap();
            j.submit(vec![Write::Blob {
                id: "m".into(),
                bytes: Bytes::from_static(b"xyz"),
            }])
            .wait()
            .await
            .unwrap();
            assert_eq!(j.backlog(), 0);
        }
        let (_j, mut snap) = Journal::open_sqlite(&dir, 10).await.unwrap();
        assert_eq!(
            snap.take(Kind::User),
            vec![("1".to_string(), "b".to_string())]
        );
        assert_eq!(snap.blobs.get("m").map(|b| b.as_ref()), Some(&b"xyz"[..]));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Writes many rows a statement: chunks of 64, then powers of two.
    #[test]
    fn set_chunks_cover_every_row_once() {
        for n in [0, 1, 2, 3, 63, 64, 65, 150, 1000] {
            let chunks = set_chunks(n);
            let mut at = 0;
            for (start, len) in &chunks {
                assert_eq!(*start, at);
                assert!(len.is_power_of_two() && *len <= SET_ROWS, "{len}");
                at += len;
            }
            assert_eq!(at, n);
        }
        assert_eq!(
            set_chunks(150),
            vec![(0, 64), (64, 64), (128, 16), (144, 4), (148, 2)]
        );
    }

    /// Jobs committed together, set-wise, end as they would one by one: the last write to an
    /// entity wins, a put after a delete restores, attempts keep their order.
    #[tokio::test]
    async fn a_large_batch_ends_as_its_writes_one_by_one() {
        let dir = std::env::temp_dir().join(format!("mynah-batch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let (j, _) = Journal::open_sqlite(&dir, 1_000).await.unwrap();
            let puts = (0..150)
                .map(|i| put(Kind::User, &i.to_string(), "a"))
                .collect();
            let first = j.submit(puts);
            let deletes = (0..20)
                .map(|i| Write::Delete {
                    kind: Kind::User,
                    id: i.to_string(),
                })
                .chain([put(Kind::User, "5", "back"), put(Kind::User, "149", "b")])
                .chain((0..100).map(|i| Write::Attempt {
                    data: i.to_string(),
                }))
                .collect();
            let second = j.submit(deletes);
            first.wait().await.unwrap();
            second.wait().await.unwrap();
        }
        let (_j, mut snap) = Journal::open_sqlite(&dir, 1_000).await.unwrap();
        let mut users = snap.take(Kind::User);
        users.sort_by_key(|(id, _)| id.parse::<u32>().unwrap());
        assert_eq!(users.len(), 131);
        assert_eq!(users[0], ("5".to_string(), "back".to_string()));
        assert_eq!(users[1], ("20".to_string(), "a".to_string()));
        assert_eq!(users[130], ("149".to_string(), "b".to_string()));
        let want: Vec<String> = (0..100).map(|i| i.to_string()).collect();
        assert_eq!(snap.attempts, want);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The attempts table keeps `keep_attempts` rows on disk, not every attempt ever made.
    #[tokio::test]
    async fn the_journal_keeps_only_the_newest_attempts() {
        let dir = std::env::temp_dir().join(format!("mynah-attempts-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let (j, _) = Journal::open_sqlite(&dir, 10).await.unwrap();
            for batch in 0..5 {
                let writes = (0..7)
                    .map(|i| Write::Attempt {
                        data: format!("{}", batch * 7 + i),
                    })
                    .collect();
                j.submit(writes).wait().await.unwrap();
            }
        }
        let opts = SqliteConnectOptions::new().filename(dir.join(DB_FILE));
        let mut conn = SqliteConnection::connect_with(&opts).await.unwrap();
        let rows: Vec<String> =
            sqlx::query_scalar("SELECT data FROM webhook_attempts ORDER BY seq")
                .fetch_all(&mut conn)
                .await
                .unwrap();
        let want: Vec<String> = (25..35).map(|i| i.to_string()).collect();
        assert_eq!(rows, want);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
