//! The `Store` conformance suite. Every check is generic over `S: Store`; the `conformance!`
//! macro at the bottom runs each one against every backend: SQLite on a temp file and in memory,
//! and PostgreSQL when `MYNAH_TEST_DATABASE_URL` names a database (each test in a fresh schema of
//! its own, so they run in parallel). Without the URL the PostgreSQL tests pass as skipped,
//! unless `MYNAH_PG_TESTS=1`, which makes a missing URL or server fail them.

use mynah_gateway::clock::Millis;
use mynah_gateway::model::{
    CampaignState, Category, ConsentStatus, Effect, Lane, MessageState, Observation, PlatformStatus,
};
use mynah_gateway::store::postgres::{PostgresOptions, PostgresStore};
use mynah_gateway::store::sqlite::{SqliteOptions, SqliteStore, Synchronous};
use mynah_gateway::store::{
    CampaignRecord, Change, Consent, ConversationCursor, ConversationItem, Enqueued, IdKind,
    IdentityUpdate, InboundRecord, InboxItem, InboxOutcome, Learned, ListFilter, NewEvent,
    NewMessage, NewRecipient, PARKED_TEMPLATE_PAUSED, Prunable, Pruned, Release, Sighting,
    StatusApplied, StatusUpdate, Store, StoreError, TemplateRecord, TemplateRef, Tokens, kind,
};
use serde_json::json;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

// ---------------------------------------------------------------------------------------------
// Backends

static NEXT_DB: AtomicUsize = AtomicUsize::new(0);

/// A database file in its own temp directory, removed on drop.
struct FileDb {
    dir: PathBuf,
}

impl FileDb {
    fn new() -> FileDb {
        let n = NEXT_DB.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("mynah-gw-store-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        FileDb { dir }
    }

    async fn open_with(&self, opts: SqliteOptions) -> SqliteStore {
        SqliteStore::open(Some(&self.dir.join("gateway.db")), opts)
            .await
            .unwrap()
    }

    async fn open(&self) -> SqliteStore {
        self.open_with(SqliteOptions::default()).await
    }
}

impl Drop for FileDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn memory() -> SqliteStore {
    SqliteStore::open(None, SqliteOptions::default())
        .await
        .unwrap()
}

/// A PostgreSQL store in a fresh schema of the database `MYNAH_TEST_DATABASE_URL` names; `None`
/// (the test is skipped) without the variable, unless `MYNAH_PG_TESTS=1`.
async fn postgres() -> Option<PostgresStore> {
    let (url, opts) = postgres_options()?;
    match PostgresStore::open(&url, opts).await {
        Ok(s) => Some(s),
        Err(e) => panic!("PostgreSQL at MYNAH_TEST_DATABASE_URL: {e}"),
    }
}

/// The test database's URL and options naming a fresh schema.
fn postgres_options() -> Option<(String, PostgresOptions)> {
    let required = std::env::var("MYNAH_PG_TESTS").is_ok_and(|v| v == "1");
    let Some(url) = std::env::var("MYNAH_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        assert!(
            !required,
            "MYNAH_PG_TESTS=1 but MYNAH_TEST_DATABASE_URL is not set"
        );
        eprintln!("skipped: MYNAH_TEST_DATABASE_URL is not set");
        return None;
    };
    let n = NEXT_DB.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let opts = PostgresOptions {
        schema: Some(format!("conformance_{}_{nanos}_{n}", std::process::id())),
        ..PostgresOptions::default()
    };
    Some((url, opts))
}

// ---------------------------------------------------------------------------------------------
// Fixtures

const T0: Millis = 1_700_000_000_000;

fn msg(id: &str) -> NewMessage {
    NewMessage {
        id: id.to_string(),
        idempotency_key: None,
        request_hash: None,
        person: None,
        sequence: None,
        phone_number_id: "pn1".into(),
        to: "15550001111".into(),
        category: Category::Utility,
        template: None,
        lane: Lane::Transactional,
        body: r#"{"type":"text","text":{"body":"hi"}}"#.into(),
        metadata: None,
        state: MessageState::Queued,
        reason: None,
        not_before: T0,
        deadline: T0 + 86_400_000,
        created_at: T0,
    }
}

fn keyed(id: &str, key: &str) -> NewMessage {
    NewMessage {
        idempotency_key: Some(key.into()),
        ..msg(id)
    }
}

fn in_lane(id: &str, lane: Lane, not_before: Millis) -> NewMessage {
    NewMessage {
        lane,
        not_before,
        ..msg(id)
    }
}

fn of_template(id: &str, name: &str, language: &str) -> NewMessage {
    NewMessage {
        template: Some(TemplateRef {
            name: name.into(),
            language: language.into(),
        }),
        category: Category::Marketing,
        lane: Lane::Bulk,
        ..msg(id)
    }
}

fn ids(records: &[mynah_gateway::store::MessageRecord]) -> Vec<&str> {
    records.iter().map(|r| r.id.as_str()).collect()
}

async fn enqueue_all<S: Store>(s: &S, messages: Vec<NewMessage>) {
    for e in s.enqueue(messages).await.unwrap() {
        assert!(matches!(e, Enqueued::Inserted { .. }), "{e:?}");
    }
}

/// Claims `id` and marks it accepted with `wamid`.
async fn accept<S: Store>(s: &S, id: &str, wamid: &str, at: Millis) {
    let change = Change {
        state: Some(MessageState::Accepted),
        wamid: Some(wamid.into()),
        clear_lease: true,
        accepted_at: Some(at),
        ..Change::new(id, at)
    }
    .with_event(NewEvent::new("accepted", at, json!({ "wamid": wamid })));
    assert_eq!(s.apply(vec![change]).await.unwrap(), vec![true]);
}

fn status(wamid: &str, st: PlatformStatus, secs: i64) -> StatusUpdate {
    StatusUpdate {
        wamid: wamid.into(),
        observation: Observation::platform(st, secs, None),
        received_at: T0 + 5_000,
        event: NewEvent::new(format!("status.{st}"), secs * 1_000, json!({})),
        payload: format!(r#"{{"id":"{wamid}","status":"{st}"}}"#),
        dedupe_key: None,
    }
}

fn keyed_status(wamid: &str, st: PlatformStatus, secs: i64) -> StatusUpdate {
    StatusUpdate {
        dedupe_key: Some(format!("{wamid}:{st}")),
        ..status(wamid, st, secs)
    }
}

// ---------------------------------------------------------------------------------------------
// The checks

async fn idempotency_returns_first_row<S: Store + Clone>(s: S) {
    let first = s.enqueue(vec![keyed("m1", "k1")]).await.unwrap();
    assert_eq!(first, vec![Enqueued::Inserted { id: "m1".into() }]);
    let again = s
        .enqueue(vec![NewMessage {
            body: "other".into(),
            ..keyed("m2", "k1")
        }])
        .await
        .unwrap();
    let Enqueued::Existing(row) = &again[0] else {
        panic!("expected the existing row, got {again:?}");
    };
    assert_eq!(
        (row.id.as_str(), row.body.as_str()),
        ("m1", msg("m1").body.as_str())
    );
    assert_eq!(s.get("m2").await.unwrap(), None);
    let by_key = s.by_idempotency_key("k1").await.unwrap().unwrap();
    assert_eq!(by_key.id, "m1");
    assert_eq!(s.by_idempotency_key("nope").await.unwrap(), None);

    // Within one batch, and by id.
    let batch = s
        .enqueue(vec![keyed("a", "k2"), keyed("b", "k2"), msg("m1")])
        .await
        .unwrap();
    assert_eq!(batch[0], Enqueued::Inserted { id: "a".into() });
    assert!(matches!(&batch[1], Enqueued::Existing(r) if r.id == "a"));
    assert!(matches!(&batch[2], Enqueued::Existing(r) if r.id == "m1"));

    let events = s.events("m1").await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].kind.as_str(), events[0].state),
        (kind::ENQUEUED, MessageState::Queued)
    );
}

async fn gated_messages_are_stored_stopped<S: Store + Clone>(s: S) {
    let stopped = NewMessage {
        state: MessageState::Suppressed,
        reason: Some("no_opt_in".into()),
        ..msg("s1")
    };
    enqueue_all(&s, vec![stopped]).await;
    let row = s.get("s1").await.unwrap().unwrap();
    assert_eq!(row.state, MessageState::Suppressed);
    assert_eq!(row.reason.as_deref(), Some("no_opt_in"));
    let events = s.events("s1").await.unwrap();
    assert_eq!(events[0].kind, kind::SUPPRESSED);
    assert_eq!(events[0].detail, json!({ "reason": "no_opt_in" }));
    assert!(s.claim(T0 + 1, 10, T0 + 100).await.unwrap().is_empty());

    let bad = NewMessage {
        state: MessageState::Sent,
        ..msg("s2")
    };
    assert!(matches!(
        s.enqueue(vec![bad]).await,
        Err(StoreError::Invalid(_))
    ));
}

async fn records_round_trip<S: Store + Clone>(s: S) {
    let m = NewMessage {
        metadata: Some(r#"{"campaign":"c1"}"#.into()),
        idempotency_key: Some("idem".into()),
        request_hash: Some("h1".into()),
        person: None,
        sequence: None,
        deadline: T0 + 60_000,
        created_at: T0 - 5,
        ..of_template("r1", "promo", "en_US")
    };
    enqueue_all(&s, vec![m.clone()]).await;
    let r = s.get("r1").await.unwrap().unwrap();
    assert_eq!(r.id, m.id);
    assert_eq!(r.idempotency_key, m.idempotency_key);
    assert_eq!(r.request_hash.as_deref(), Some("h1"));
    assert_eq!(r.phone_number_id, m.phone_number_id);
    assert_eq!(r.to, m.to);
    assert_eq!(r.category, Category::Marketing);
    assert_eq!(r.template, m.template);
    assert_eq!(r.lane, Lane::Bulk);
    assert_eq!(r.body, m.body);
    assert_eq!(r.metadata, m.metadata);
    assert_eq!(r.state, MessageState::Queued);
    assert_eq!((r.attempts, r.next_attempt_at), (0, T0));
    assert_eq!((r.not_before, r.deadline), (T0, T0 + 60_000));
    assert_eq!((r.created_at, r.updated_at), (T0 - 5, T0 - 5));
    assert_eq!(
        (r.wamid, r.lease_until, r.last_error_code),
        (None, None, None)
    );
    assert_eq!(s.get("nope").await.unwrap(), None);
}

async fn claim_order<S: Store + Clone>(s: S) {
    enqueue_all(
        &s,
        vec![
            in_lane("b1", Lane::Bulk, T0 + 100),
            in_lane("t1", Lane::Transactional, T0 + 200),
            in_lane("b0", Lane::Bulk, T0 + 50),
            in_lane("t2", Lane::Transactional, T0 + 5_000),
            in_lane("b2", Lane::Bulk, T0 + 100),
        ],
    )
    .await;
    let now = T0 + 1_000;
    let first = s.claim(now, 2, now + 30_000).await.unwrap();
    assert_eq!(ids(&first), ["t1", "b0"]);
    let rest = s.claim(now, 10, now + 30_000).await.unwrap();
    assert_eq!(ids(&rest), ["b1", "b2"], "not_before holds t2 back");
    for r in first.iter().chain(&rest) {
        assert_eq!(r.state, MessageState::Sending);
        assert_eq!((r.attempts, r.lease_until), (1, Some(now + 30_000)));
    }
    assert!(s.claim(now, 10, now + 30_000).await.unwrap().is_empty());
    let later = s.claim(T0 + 5_000, 10, T0 + 9_000).await.unwrap();
    assert_eq!(ids(&later), ["t2"]);
    assert!(s.claim(T0 + 5_000, 0, T0).await.unwrap().is_empty());
}

async fn retry_time_orders_claims<S: Store + Clone>(s: S) {
    enqueue_all(&s, vec![msg("x"), msg("y")]).await;
    let got = s.claim(T0, 10, T0 + 1_000).await.unwrap();
    assert_eq!(ids(&got), ["x", "y"]);
    // x retries later than y; a retry scheduled in the future is not due.
    let retry = |id: &str, at: Millis| Change {
        state: Some(MessageState::Queued),
        next_attempt_at: Some(at),
        clear_lease: true,
        last_error: Some((131000, "boom".into())),
        ..Change::new(id, T0 + 10)
    };
    s.apply(vec![retry("x", T0 + 300), retry("y", T0 + 200)])
        .await
        .unwrap();
    assert!(s.claim(T0 + 100, 10, T0 + 1_000).await.unwrap().is_empty());
    let again = s.claim(T0 + 400, 10, T0 + 1_000).await.unwrap();
    assert_eq!(ids(&again), ["y", "x"]);
    assert_eq!(again[0].attempts, 2);
    assert_eq!(again[0].last_error_code, Some(131000));
    assert_eq!(again[0].last_error.as_deref(), Some("boom"));
}

async fn concurrent_claimers_never_share<S: Store + Clone>(s: S) {
    let batch: Vec<NewMessage> = (0..300).map(|i| msg(&format!("c{i:03}"))).collect();
    enqueue_all(&s, batch).await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let s = s.clone();
        tasks.spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = s.claim(T0 + 1, 7, T0 + 60_000).await.unwrap();
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|r| r.id));
            }
        });
    }
    let mut all = Vec::new();
    while let Some(part) = tasks.join_next().await {
        all.extend(part.unwrap());
    }
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), 300);
    assert_eq!(unique.len(), 300, "a row was claimed twice");
}

async fn lease_expiry<S: Store + Clone>(s: S) {
    enqueue_all(&s, vec![msg("l1"), msg("l2"), msg("l3")]).await;
    s.claim(T0, 2, T0 + 2_000).await.unwrap();
    assert!(s.expired_leases(T0 + 1_999).await.unwrap().is_empty());
    let expired = s.expired_leases(T0 + 2_000).await.unwrap();
    assert_eq!(ids(&expired), ["l1", "l2"]);
    // The caller requeues one; the other is settled as unknown.
    let requeue = Change {
        state: Some(MessageState::Queued),
        clear_lease: true,
        ..Change::new("l1", T0 + 2_001)
    };
    let unknown = Change {
        state: Some(MessageState::Unknown),
        clear_lease: true,
        ..Change::new("l2", T0 + 2_001)
    };
    s.apply(vec![requeue, unknown]).await.unwrap();
    assert!(s.expired_leases(T0 + 9_000).await.unwrap().is_empty());
    let again = s.claim(T0 + 3_000, 10, T0 + 5_000).await.unwrap();
    assert_eq!(ids(&again), ["l1", "l3"]);
    assert_eq!(again[0].attempts, 2);
}

async fn conditional_state_changes<S: Store + Clone>(s: S) {
    enqueue_all(&s, vec![msg("c1")]).await;
    let claimed = s.claim(T0, 10, T0 + 1_000).await.unwrap();
    assert_eq!(ids(&claimed), ["c1"]);
    // Statuses overtook the send's answer…
    let read = Change {
        state: Some(MessageState::Read),
        ..Change::new("c1", T0 + 1)
    };
    s.apply(vec![read]).await.unwrap();
    // …so the answer's "accepted", conditional on "sending", leaves the state alone.
    let late = Change {
        state: Some(MessageState::Accepted),
        only_from: Some(MessageState::Sending),
        accepted_at: Some(T0 + 2),
        ..Change::new("c1", T0 + 2)
    }
    .with_event(NewEvent::new("accepted", T0 + 2, json!({})));
    assert_eq!(s.apply(vec![late]).await.unwrap(), [true]);
    let r = s.get("c1").await.unwrap().unwrap();
    assert_eq!((r.state, r.accepted_at), (MessageState::Read, Some(T0 + 2)));
    // The answer's event is in the timeline with the state the row kept.
    let events = s.events("c1").await.unwrap();
    let last = events.last().unwrap();
    assert_eq!(
        (last.kind.as_str(), last.state),
        ("accepted", MessageState::Read)
    );
}

async fn apply_batches<S: Store + Clone>(s: S) {
    enqueue_all(&s, vec![msg("a1"), msg("a2")]).await;
    s.claim(T0, 10, T0 + 1_000).await.unwrap();
    let accepted = Change {
        state: Some(MessageState::Accepted),
        wamid: Some("wamid.A1".into()),
        clear_lease: true,
        accepted_at: Some(T0 + 10),
        ..Change::new("a1", T0 + 10)
    }
    .with_event(NewEvent::new(
        "accepted",
        T0 + 10,
        json!({ "wamid": "wamid.A1" }),
    ));
    let failed = Change {
        state: Some(MessageState::Failed),
        clear_lease: true,
        failed_at: Some(T0 + 11),
        last_error: Some((131026, "undeliverable".into())),
        ..Change::new("a2", T0 + 11)
    }
    .with_event(NewEvent::new("failed", T0 + 11, json!({ "code": 131026 })));
    let rerouted = Change {
        body: Some(r#"{"type":"template"}"#.into()),
        ..Change::new("a1", T0 + 12)
    };
    let missing = Change::new("nope", T0).with_event(NewEvent::new("x", T0, json!({})));
    let found = s
        .apply(vec![accepted, failed, rerouted, missing])
        .await
        .unwrap();
    assert_eq!(found, vec![true, true, true, false]);

    let a1 = s.by_wamid("wamid.A1").await.unwrap().unwrap();
    assert_eq!(a1.id, "a1");
    assert_eq!((a1.state, a1.lease_until), (MessageState::Accepted, None));
    assert_eq!((a1.accepted_at, a1.updated_at), (Some(T0 + 10), T0 + 12));
    assert_eq!(a1.body, r#"{"type":"template"}"#);
    let events = s.events("a1").await.unwrap();
    let kinds: Vec<_> = events.iter().map(|e| (e.kind.as_str(), e.state)).collect();
    assert_eq!(
        kinds,
        [
            ("enqueued", MessageState::Queued),
            ("accepted", MessageState::Accepted)
        ]
    );
    assert_eq!(events[1].detail, json!({ "wamid": "wamid.A1" }));
    assert!(s.events("nope").await.unwrap().is_empty());

    let a2 = s.get("a2").await.unwrap().unwrap();
    assert_eq!(a2.failed_at, Some(T0 + 11));
    assert_eq!(a2.last_error_code, Some(131026));
    // A superseding delivery clears the failure.
    let cleared = Change {
        state: Some(MessageState::Delivered),
        clear_failure: true,
        delivered_at: Some(T0 + 20),
        ..Change::new("a2", T0 + 20)
    };
    s.apply(vec![cleared]).await.unwrap();
    let a2 = s.get("a2").await.unwrap().unwrap();
    assert_eq!((a2.state, a2.failed_at), (MessageState::Delivered, None));
    assert_eq!((a2.last_error_code, a2.last_error), (None, None));
    assert_eq!(s.by_wamid("wamid.none").await.unwrap(), None);
}

async fn statuses_apply_monotonically<S: Store + Clone>(s: S) {
    enqueue_all(&s, vec![msg("s1")]).await;
    s.claim(T0, 1, T0 + 1_000).await.unwrap();
    accept(&s, "s1", "wamid.S1", T0 + 10).await;
    let secs = T0 / 1_000;
    let out = s
        .apply_statuses(vec![
            status("wamid.S1", PlatformStatus::Delivered, secs + 20),
            status("wamid.S1", PlatformStatus::Sent, secs + 10),
            status("wamid.S1", PlatformStatus::Delivered, secs + 20),
        ])
        .await
        .unwrap();
    let effects: Vec<_> = out
        .iter()
        .map(|o| match o {
            StatusApplied::Applied { state, effect, .. } => (*state, *effect),
            other => panic!("expected an applied status, got {other:?}"),
        })
        .collect();
    assert_eq!(
        effects,
        [
            (MessageState::Delivered, Effect::Advanced),
            (MessageState::Delivered, Effect::Recorded),
            (MessageState::Delivered, Effect::Ignored),
        ]
    );
    let r = s.get("s1").await.unwrap().unwrap();
    assert_eq!(r.state, MessageState::Delivered);
    assert_eq!(r.sent_at, Some((secs + 10) * 1_000));
    assert_eq!(r.delivered_at, Some((secs + 20) * 1_000));
    let read = s
        .apply_statuses(vec![status("wamid.S1", PlatformStatus::Read, secs + 30)])
        .await
        .unwrap();
    assert!(matches!(
        &read[0],
        StatusApplied::Applied { state: MessageState::Read, effect: Effect::Advanced, id } if id == "s1"
    ));
    // Every status is on the timeline, with the state after it.
    let timeline: Vec<_> = s
        .events("s1")
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.kind, e.state))
        .collect();
    assert_eq!(timeline.len(), 6);
    assert_eq!(timeline[3], ("status.sent".into(), MessageState::Delivered));
    assert_eq!(timeline[5], ("status.read".into(), MessageState::Read));
}

/// A message's timeline as (kind, time, state after, detail).
async fn timeline<S: Store>(
    s: &S,
    id: &str,
) -> Vec<(String, Millis, MessageState, serde_json::Value)> {
    s.events(id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.kind, e.at, e.state, e.detail))
        .collect()
}

/// Asserts that two sets' status results are the same once the second's message ids (`from`)
/// are renamed to the first's (`to`), and that they include a duplicate and an orphan.
fn assert_same_results(together: &[StatusApplied], alone: &[StatusApplied], from: &str, to: &str) {
    let renamed: Vec<StatusApplied> = alone
        .iter()
        .map(|o| match o {
            StatusApplied::Applied { id, state, effect } => StatusApplied::Applied {
                id: id.replacen(from, to, 1),
                state: *state,
                effect: *effect,
            },
            other => other.clone(),
        })
        .collect();
    assert_eq!(together, renamed.as_slice());
    assert!(together.contains(&StatusApplied::Duplicate));
    assert!(together.contains(&StatusApplied::Orphaned));
}

/// A batch of statuses applied in one call ends exactly as the same statuses applied one call
/// each: outcomes, rows (state, every timestamp, the error) and timelines. Two sets of messages
/// (`b…`, `c…`) get the same statuses, with orphans, repeated wamids, a failure superseded by a
/// delivery, and a dedupe key repeated within the batch.
async fn statuses_applied_together_match_one_by_one<S: Store + Clone>(s: S) {
    let secs = T0 / 1_000;
    for set in ["b", "c"] {
        enqueue_all(&s, (1..=4).map(|i| msg(&format!("{set}{i}"))).collect()).await;
    }
    s.claim(T0, 8, T0 + 1_000).await.unwrap();
    for set in ["b", "c"] {
        for i in 1..=4 {
            accept(&s, &format!("{set}{i}"), &format!("wamid.{set}{i}"), T0 + 1).await;
        }
    }
    let statuses = |set: &str| -> Vec<StatusUpdate> {
        let w = |i: u32| format!("wamid.{set}{i}");
        let failed = StatusUpdate {
            observation: Observation::platform(
                PlatformStatus::Failed,
                secs + 12,
                Some((131026, "undeliverable".into())),
            ),
            ..status(&w(2), PlatformStatus::Failed, secs + 12)
        };
        vec![
            status(&w(1), PlatformStatus::Sent, secs + 10),
            status(
                &format!("wamid.{set}-unknown"),
                PlatformStatus::Sent,
                secs + 10,
            ),
            failed,
            keyed_status(&w(4), PlatformStatus::Sent, secs + 11),
            status(&w(1), PlatformStatus::Delivered, secs + 20),
            status(&w(3), PlatformStatus::Read, secs + 30),
            keyed_status(&w(4), PlatformStatus::Sent, secs + 11),
            status(&w(2), PlatformStatus::Delivered, secs + 25),
            status(&w(1), PlatformStatus::Sent, secs + 9),
            status(&w(1), PlatformStatus::Delivered, secs + 20),
        ]
    };
    let together = s.apply_statuses(statuses("b")).await.unwrap();
    let mut alone = Vec::new();
    for u in statuses("c") {
        alone.extend(s.apply_statuses(vec![u]).await.unwrap());
    }
    assert_same_results(&together, &alone, "c", "b");
    for i in 1..=4 {
        let (b, c) = (format!("b{i}"), format!("c{i}"));
        let (rb, rc) = (
            s.get(&b).await.unwrap().unwrap(),
            s.get(&c).await.unwrap().unwrap(),
        );
        assert_eq!(
            (
                rb.state,
                rb.accepted_at,
                rb.sent_at,
                rb.delivered_at,
                rb.read_at
            ),
            (
                rc.state,
                rc.accepted_at,
                rc.sent_at,
                rc.delivered_at,
                rc.read_at
            ),
            "{b} and {c}"
        );
        assert_eq!(
            (
                rb.failed_at,
                rb.last_error_code,
                rb.last_error,
                rb.updated_at
            ),
            (
                rc.failed_at,
                rc.last_error_code,
                rc.last_error,
                rc.updated_at
            ),
            "{b} and {c}"
        );
        // Details name the wamid, which differs between the sets.
        let without_detail = |t: Vec<(String, Millis, MessageState, serde_json::Value)>| {
            t.into_iter()
                .map(|(k, at, st, _)| (k, at, st))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            without_detail(timeline(&s, &b).await),
            without_detail(timeline(&s, &c).await)
        );
    }
    let b2 = s.get("b2").await.unwrap().unwrap();
    assert_eq!((b2.state, b2.failed_at), (MessageState::Delivered, None));
}

/// A webhook batch's sightings and statuses in one call (`learn_and_apply`) end as the two
/// calls in turn: the same results, the same rows and timelines, every send of a sighted phone
/// moved to its new person, whether a status rewrote its row in the call (a send without one
/// in the batch, a send already final) or not.
async fn a_batch_learned_and_applied_together_matches_the_calls_in_turn<S: Store + Clone>(s: S) {
    let secs = T0 / 1_000;
    let phone = |set: &str, i: u32| format!("4917{set}000000{i}");
    for set in ["1", "2"] {
        let sends: Vec<NewMessage> = (1..=3)
            .map(|i| NewMessage {
                to: phone(set, i),
                ..msg(&format!("j{set}{i}"))
            })
            .collect();
        enqueue_all(&s, sends).await;
        let claimed = s.claim(T0, 3, T0 + 1_000).await.unwrap();
        assert_eq!(claimed.len(), 3);
        for i in 1..=3 {
            let id = format!("j{set}{i}");
            accept(&s, &id, &format!("wamid.j{set}{i}"), T0 + 1).await;
        }
    }
    // A second send to each set's first phone, not sent yet: no status names it.
    for set in ["1", "2"] {
        let queued = NewMessage {
            to: phone(set, 1),
            ..msg(&format!("j{set}q"))
        };
        enqueue_all(&s, vec![queued]).await;
    }
    let sightings = |set: &str| -> Vec<Sighting> {
        (1..=4)
            .map(|i| Sighting {
                wa_id: Some(phone(set, i)),
                user_id: Some(format!("DE.3{set}0000000000000{i}")),
                at: T0 + 2,
                ..Sighting::default()
            })
            .collect()
    };
    let statuses = |set: &str| -> Vec<StatusUpdate> {
        let w = |i: u32| format!("wamid.j{set}{i}");
        vec![
            status(&w(1), PlatformStatus::Sent, secs + 10),
            status(&w(2), PlatformStatus::Sent, secs + 10),
            status(&w(1), PlatformStatus::Delivered, secs + 11),
            keyed_status(&w(2), PlatformStatus::Delivered, secs + 11),
            keyed_status(&w(2), PlatformStatus::Delivered, secs + 11),
            status(&format!("wamid.j{set}-unknown"), PlatformStatus::Sent, secs),
        ]
    };
    let Learned {
        keys,
        applied: together,
        moved,
    } = s
        .learn_and_apply(sightings("1"), statuses("1"))
        .await
        .unwrap();
    let alone_keys = s.learn(sightings("2")).await.unwrap();
    let alone = s.apply_statuses(statuses("2")).await.unwrap();
    assert_eq!(keys.len(), alone_keys.len());
    assert_same_results(&together, &alone, "j2", "j1");
    for (set, keys) in [("1", &keys), ("2", &alone_keys)] {
        for (i, key) in (1..=4).zip(keys.iter()) {
            let person = s.resolve(&phone(set, i)).await.unwrap();
            assert_eq!(person.as_ref(), key.as_ref(), "set {set}, phone {i}");
            assert!(person.as_deref().is_some_and(|p| p.starts_with("ct_")));
        }
        for (id, i) in [("1", 1), ("2", 2), ("3", 3), ("q", 1)] {
            let m = s.get(&format!("j{set}{id}")).await.unwrap().unwrap();
            assert_eq!(
                m.person,
                s.resolve(&phone(set, i)).await.unwrap(),
                "j{set}{id} moved to its phone's new person"
            );
        }
    }
    // Each sighted phone's implicit person moved to its new one (the pair limiter follows).
    let mut expected = Vec::new();
    for i in 1..=4 {
        let now = s.resolve(&phone("1", i)).await.unwrap().unwrap();
        expected.push((phone("1", i), now));
    }
    let mut moved = moved;
    moved.sort();
    assert_eq!(moved, expected);
    for id in ["1", "2", "3", "q"] {
        let (a, b) = (
            s.get(&format!("j1{id}")).await.unwrap().unwrap(),
            s.get(&format!("j2{id}")).await.unwrap().unwrap(),
        );
        assert_eq!(
            (a.state, a.sent_at, a.delivered_at, a.updated_at),
            (b.state, b.sent_at, b.delivered_at, b.updated_at),
            "j1{id} and j2{id}"
        );
        let kinds = |t: Vec<(String, Millis, MessageState, serde_json::Value)>| {
            t.into_iter()
                .map(|(k, at, st, _)| (k, at, st))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            kinds(timeline(&s, &format!("j1{id}")).await),
            kinds(timeline(&s, &format!("j2{id}")).await)
        );
    }
    // A merge of two people: the retired one's key moves to the survivor (looked up again
    // after the call); a first sighting beside it, and a call of one sighting, move too.
    let bsuid = |n: u32| format!("DE.39000000000000{n}");
    let phone9 = |n: u32| format!("4917900000{n}");
    let both = |n: u32, b: u32, at: Millis| Sighting {
        wa_id: Some(phone9(n)),
        user_id: Some(bsuid(b)),
        at,
        ..Sighting::default()
    };
    let first = s
        .learn(vec![
            both(1, 1, T0 + 10),
            Sighting {
                user_id: Some(bsuid(2)),
                at: T0 + 11,
                ..Sighting::default()
            },
        ])
        .await
        .unwrap();
    let (older, younger) = (first[0].clone().unwrap(), first[1].clone().unwrap());
    let merged = s
        .learn_and_apply(vec![both(1, 2, T0 + 12), both(3, 3, T0 + 12)], Vec::new())
        .await
        .unwrap();
    let third = s.resolve(&phone9(3)).await.unwrap().unwrap();
    let mut moves = merged.moved;
    moves.sort();
    let mut expected = vec![(phone9(3), third), (younger, older.clone())];
    expected.sort();
    assert_eq!(moves, expected);
    let one = s
        .learn_and_apply(vec![both(4, 4, T0 + 13)], Vec::new())
        .await
        .unwrap();
    let fourth = s.resolve(&phone9(4)).await.unwrap().unwrap();
    assert_eq!(one.moved, vec![(phone9(4), fourth)]);
}

/// Sightings learned in one call end as the same sightings learned one call each: the same
/// grouping of ids into people (keys are random, so compared by which results are equal) and
/// the same profiles; with first sightings, repeats, a profile, a username and a merge.
async fn sightings_learned_together_match_one_by_one<S: Store + Clone>(s: S) {
    // Set 1 (one call) uses phones 49151… and BSUIDs DE.1…; set 2 (a call each) 49152…, DE.2….
    let sightings = |set: u32| -> Vec<Sighting> {
        let phone = |i: u32| Some(format!("4915{set}0000000{i}"));
        let bsuid = |i: u32| Some(format!("DE.{set}00000000000000{i}"));
        let at = |i: i64| T0 + i;
        vec![
            Sighting {
                wa_id: phone(1),
                at: at(1),
                ..Sighting::default()
            },
            Sighting {
                wa_id: phone(1),
                user_id: bsuid(1),
                at: at(2),
                ..Sighting::default()
            },
            Sighting {
                wa_id: phone(1),
                user_id: bsuid(1),
                at: at(3),
                ..Sighting::default()
            },
            Sighting {
                user_id: bsuid(2),
                at: at(4),
                ..Sighting::default()
            },
            Sighting {
                wa_id: phone(2),
                user_id: bsuid(2),
                at: at(5),
                ..Sighting::default()
            },
            Sighting {
                wa_id: phone(3),
                user_id: bsuid(3),
                profile_name: Some("Ana".into()),
                at: at(6),
                ..Sighting::default()
            },
            Sighting {
                user_id: bsuid(3),
                username: Some(format!("ana.{set}")),
                at: at(7),
                ..Sighting::default()
            },
            Sighting::default(),
            // Two first sightings in a row, one of a phone with a send stored under it.
            Sighting {
                wa_id: phone(4),
                user_id: bsuid(4),
                at: at(8),
                ..Sighting::default()
            },
            Sighting {
                wa_id: phone(5),
                user_id: bsuid(5),
                profile_name: Some("Bo".into()),
                at: at(8),
                ..Sighting::default()
            },
            Sighting {
                wa_id: phone(1),
                user_id: bsuid(2),
                at: at(8),
                ..Sighting::default()
            },
            Sighting {
                wa_id: phone(2),
                user_id: bsuid(2),
                at: at(9),
                ..Sighting::default()
            },
            Sighting {
                user_id: bsuid(1),
                at: at(10),
                ..Sighting::default()
            },
        ]
    };
    for set in ["1", "2"] {
        let send = NewMessage {
            to: format!("4915{set}00000004"),
            ..msg(&format!("adopted{set}"))
        };
        enqueue_all(&s, vec![send]).await;
    }
    let together = s.learn(sightings(1)).await.unwrap();
    let mut alone = Vec::new();
    for one in sightings(2) {
        alone.extend(s.learn(vec![one]).await.unwrap());
    }
    assert_eq!(together.len(), alone.len());
    // The same pattern of who is whom (a merge may leave an earlier result's key behind, as one
    // call after another does).
    for i in 0..together.len() {
        assert_eq!(together[i].is_some(), alone[i].is_some(), "sighting {i}");
        for j in 0..together.len() {
            assert_eq!(
                together[i] == together[j],
                alone[i] == alone[j],
                "sightings {i} and {j}"
            );
        }
    }
    for set in ["1", "2"] {
        let sent = s.get(&format!("adopted{set}")).await.unwrap().unwrap();
        let person = s.resolve(&format!("4915{set}00000004")).await.unwrap();
        assert_eq!(
            sent.person, person,
            "the send moved to the person (set {set})"
        );
        assert!(sent.person.is_some_and(|p| p.starts_with("ct_")));
    }
    for i in 1..=5 {
        let (a, b) = (
            s.person(&format!("DE.100000000000000{i}"))
                .await
                .unwrap()
                .unwrap(),
            s.person(&format!("DE.200000000000000{i}"))
                .await
                .unwrap()
                .unwrap(),
        );
        let strip = |p: &mynah_gateway::store::Person, set: &str| {
            (
                p.wa_id
                    .as_ref()
                    .map(|w| w.replacen(&format!("4915{set}"), "4915x", 1)),
                p.user_id
                    .as_ref()
                    .map(|u| u.replacen(&format!("DE.{set}"), "DE.x", 1)),
                p.username.as_ref().map(|u| u.replacen(set, "x", 1)),
                p.profile_name.clone(),
                p.updated_at,
            )
        };
        assert_eq!(strip(&a, "1"), strip(&b, "2"), "person {i}");
    }
}

/// Calls made at once are merged into one writer job (enqueues and outcome changes, see
/// `store/coalesce.rs`) and end as the same calls made one after another: every answer, row and
/// timeline; with repeated idempotency keys, changes of every shape, a conditional change that
/// does not apply, and two changes to one row in one call.
async fn concurrent_calls_end_as_sequential_ones<S: Store + Clone>(s: S) {
    const N: usize = 24;
    let new = |set: &str, i: usize| NewMessage {
        idempotency_key: (i % 6 == 5)
            .then(|| format!("{set}-key-{}", i - 1))
            .or(Some(format!("{set}-key-{i}"))),
        person: Some(format!("ct_{set}{i:04}")),
        ..msg(&format!("{set}{i:02}"))
    };
    // Together: one task per call.
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let (s, m) = (s.clone(), new("p", i));
            tokio::spawn(async move { s.enqueue(vec![m]).await.unwrap() })
        })
        .collect();
    let mut together = Vec::new();
    for t in tasks {
        together.extend(t.await.unwrap());
    }
    let mut alone = Vec::new();
    for i in 0..N {
        alone.extend(s.enqueue(vec![new("q", i)]).await.unwrap());
    }
    let outcome = |e: &Enqueued| match e {
        Enqueued::Inserted { id } => ("inserted", id[1..].to_string()),
        Enqueued::Existing(r) => ("existing", r.id[1..].to_string()),
    };
    // Callers at once reach the writer in any order: of two messages with one key, either may
    // be the one stored, and the other gets it back.
    for (i, (t, a)) in together.iter().zip(&alone).enumerate() {
        let (t, a) = (outcome(t), outcome(a));
        if i % 6 < 4 {
            assert_eq!((t.clone(), a), (("inserted", format!("{i:02}")), t), "{i}");
        }
    }
    for pair in (0..N).filter(|i| i % 6 == 4) {
        let (first, second) = (outcome(&together[pair]), outcome(&together[pair + 1]));
        assert_eq!(first.1, second.1, "one row for the key of {pair}");
        let mut kinds = [first.0, second.0];
        kinds.sort();
        assert_eq!(kinds, ["existing", "inserted"]);
    }
    let kept: Vec<usize> = (0..N).filter(|i| i % 6 < 4).collect();
    s.claim(T0, 2 * N, T0 + 1_000).await.unwrap();
    let changes = |set: &str, i: usize| -> Vec<Change> {
        let id = format!("{set}{i:02}");
        let at = T0 + 10 + i as i64;
        let e = |kind: &str| NewEvent::new(kind, at, json!({ "i": i }));
        match i % 5 {
            0 => vec![
                Change {
                    state: Some(MessageState::Accepted),
                    only_from: Some(MessageState::Sending),
                    wamid: Some(format!("wamid.{id}")),
                    accepted_at: Some(at),
                    clear_lease: true,
                    ..Change::new(&id, at)
                }
                .with_event(e("accepted")),
                Change {
                    state: Some(MessageState::Sent),
                    sent_at: Some(at + 1),
                    ..Change::new(&id, at + 1)
                }
                .with_event(e("status.sent")),
            ],
            1 => vec![
                Change {
                    state: Some(MessageState::Failed),
                    failed_at: Some(at),
                    last_error: Some((131026, "undeliverable".into())),
                    clear_lease: true,
                    ..Change::new(&id, at)
                }
                .with_event(e("failed")),
            ],
            2 => vec![
                Change {
                    state: Some(MessageState::Queued),
                    next_attempt_at: Some(at + 5_000),
                    last_error: Some((130429, "rate".into())),
                    clear_lease: true,
                    ..Change::new(&id, at)
                }
                .with_event(e("retry")),
            ],
            3 => vec![
                Change {
                    state: Some(MessageState::Sent),
                    only_from: Some(MessageState::Queued),
                    ..Change::new(&id, at)
                }
                .with_event(e("noop")),
            ],
            _ => vec![Change::new(format!("{set}-missing-{i}"), at)],
        }
    };
    let tasks: Vec<_> = kept
        .iter()
        .map(|&i| {
            let (s, c) = (s.clone(), changes("p", i));
            tokio::spawn(async move { s.apply(c).await.unwrap() })
        })
        .collect();
    let mut together = Vec::new();
    for t in tasks {
        together.push(t.await.unwrap());
    }
    let mut alone = Vec::new();
    for &i in &kept {
        alone.push(s.apply(changes("q", i)).await.unwrap());
    }
    assert_eq!(together, alone);
    for &i in &kept {
        let (p, q) = (format!("p{i:02}"), format!("q{i:02}"));
        let (rp, rq) = (
            s.get(&p).await.unwrap().unwrap(),
            s.get(&q).await.unwrap().unwrap(),
        );
        assert_eq!(
            (
                rp.state,
                rp.accepted_at,
                rp.sent_at,
                rp.failed_at,
                rp.last_error_code
            ),
            (
                rq.state,
                rq.accepted_at,
                rq.sent_at,
                rq.failed_at,
                rq.last_error_code
            ),
            "{p}"
        );
        assert_eq!(
            (
                rp.last_error,
                rp.next_attempt_at,
                rp.lease_until,
                rp.updated_at
            ),
            (
                rq.last_error,
                rq.next_attempt_at,
                rq.lease_until,
                rq.updated_at
            ),
            "{p}"
        );
        assert_eq!(
            rp.wamid.map(|w| w.replacen("wamid.p", "", 1)),
            rq.wamid.map(|w| w.replacen("wamid.q", "", 1))
        );
        assert_eq!(timeline(&s, &p).await, timeline(&s, &q).await);
    }
}

async fn early_statuses_become_orphans<S: Store + Clone>(s: S) {
    let out = s
        .apply_statuses(vec![status("wamid.E", PlatformStatus::Sent, 1)])
        .await
        .unwrap();
    assert_eq!(out, vec![StatusApplied::Orphaned]);
    s.park_orphan("wamid.E", "second".into(), T0).await.unwrap();
    s.park_orphan("wamid.F", "other".into(), T0).await.unwrap();
    let taken = s.take_orphans("wamid.E").await.unwrap();
    assert_eq!(taken.len(), 2);
    assert!(taken[0].contains("\"sent\""));
    assert_eq!(taken[1], "second");
    assert!(s.take_orphans("wamid.E").await.unwrap().is_empty());
    assert_eq!(s.take_orphans("wamid.F").await.unwrap(), vec!["other"]);
}

async fn status_dedupe_is_atomic_and_spares_orphans<S: Store + Clone>(s: S) {
    let secs = T0 / 1_000;
    // Arrives before the send response: parked, its key not remembered.
    let early = keyed_status("wamid.K", PlatformStatus::Sent, secs + 1);
    let out = s.apply_statuses(vec![early.clone()]).await.unwrap();
    assert_eq!(out, vec![StatusApplied::Orphaned]);
    enqueue_all(&s, vec![msg("k1")]).await;
    s.claim(T0, 1, T0 + 1_000).await.unwrap();
    accept(&s, "k1", "wamid.K", T0 + 2).await;
    assert_eq!(s.take_orphans("wamid.K").await.unwrap().len(), 1);
    // The caller re-applies the parked status (decoded from its payload) with its key.
    let replayed = s.apply_statuses(vec![early.clone(), early]).await.unwrap();
    assert!(matches!(
        &replayed[0],
        StatusApplied::Applied {
            state: MessageState::Sent,
            effect: Effect::Advanced,
            ..
        }
    ));
    assert_eq!(replayed[1], StatusApplied::Duplicate);
    let again = keyed_status("wamid.K", PlatformStatus::Sent, secs + 1);
    assert_eq!(
        s.apply_statuses(vec![again]).await.unwrap(),
        vec![StatusApplied::Duplicate]
    );
    let kinds: Vec<_> = s
        .events("k1")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["enqueued", "accepted", "status.sent"]);
    // Keys are shared with remember_keys, stored under the message the wamid names.
    assert_eq!(
        s.remember_keys(
            vec![
                mynah_gateway::store::message_scoped_key("k1", "wamid.K:sent"),
                "wamid.K:sent".into()
            ],
            T0
        )
        .await
        .unwrap(),
        vec![false, true]
    );
}

async fn overdue_finds_undelivered_past_deadline<S: Store + Clone>(s: S) {
    let with_deadline = |id: &str, d: Millis| NewMessage {
        deadline: d,
        ..msg(id)
    };
    enqueue_all(
        &s,
        vec![
            with_deadline("o1", T0 + 500),
            with_deadline("o2", T0 + 100),
            with_deadline("o3", T0 + 100),
            with_deadline("o4", T0 + 9_000),
            with_deadline("o5", T0 + 100),
        ],
    )
    .await;
    s.claim(T0, 10, T0 + 1_000).await.unwrap();
    for (id, w) in [("o1", "w1"), ("o2", "w2"), ("o3", "w3"), ("o4", "w4")] {
        accept(&s, id, w, T0 + 1).await;
    }
    let delivered = Change {
        state: Some(MessageState::Delivered),
        ..Change::new("o3", T0 + 2)
    };
    s.apply(vec![delivered]).await.unwrap();
    // o5 is still sending: its lease, not TTL detection, covers it.
    let due = s.overdue(T0 + 1_000, 10).await.unwrap();
    assert_eq!(ids(&due), ["o2", "o1"]);
    assert_eq!(ids(&s.overdue(T0 + 1_000, 1).await.unwrap()), ["o2"]);
    assert!(s.overdue(T0 + 99, 10).await.unwrap().is_empty());
}

async fn park_and_unpark_templates<S: Store + Clone>(s: S) {
    enqueue_all(
        &s,
        vec![
            of_template("p1", "promo", "en"),
            of_template("p2", "promo", "es"),
            of_template("p3", "other", "en"),
            of_template("p4", "promo", "en"),
        ],
    )
    .await;
    // p1 is already in flight: parking leaves it alone.
    assert_eq!(ids(&s.claim(T0, 1, T0 + 1_000).await.unwrap()), ["p1"]);
    let parked = s.park_template("promo", Some("en"), T0 + 1).await.unwrap();
    assert_eq!(parked, 1);
    let p4 = s.get("p4").await.unwrap().unwrap();
    assert_eq!(p4.parked_reason.as_deref(), Some(PARKED_TEMPLATE_PAUSED));
    assert_eq!(p4.state, MessageState::Queued);
    assert_eq!(s.park_template("promo", None, T0 + 2).await.unwrap(), 1);
    assert_eq!(ids(&s.claim(T0 + 3, 10, T0 + 1_000).await.unwrap()), ["p3"]);
    let events = s.events("p4").await.unwrap();
    assert_eq!(events.last().unwrap().kind, kind::PARKED);
    assert_eq!(
        events.last().unwrap().detail["template"],
        json!({ "name": "promo", "language": "en" })
    );

    assert_eq!(
        s.unpark_template("promo", Some("es"), T0 + 4)
            .await
            .unwrap(),
        1
    );
    assert_eq!(s.unpark_template("promo", None, T0 + 4).await.unwrap(), 1);
    assert_eq!(s.unpark_template("promo", None, T0 + 4).await.unwrap(), 0);
    let released = s.claim(T0 + 5, 10, T0 + 1_000).await.unwrap();
    assert_eq!(ids(&released), ["p2", "p4"]);
    assert_eq!(released[1].parked_reason, None);
    let last = s.events("p4").await.unwrap();
    assert_eq!(last.last().unwrap().kind, kind::UNPARKED);
}

async fn list_filters_and_pages<S: Store + Clone>(s: S) {
    let to = |id: &str, to: &str, lane: Lane| NewMessage {
        to: to.into(),
        lane,
        ..msg(id)
    };
    enqueue_all(
        &s,
        vec![
            to("l1", "111", Lane::Bulk),
            to("l2", "222", Lane::Transactional),
            to("l3", "111", Lane::Transactional),
            to("l4", "111", Lane::Bulk),
        ],
    )
    .await;
    s.claim(T0, 1, T0 + 1).await.unwrap(); // l2
    let all = s.list(ListFilter::default()).await.unwrap();
    assert_eq!(ids(&all), ["l1", "l2", "l3", "l4"]);
    let f = ListFilter {
        to: Some("111".into()),
        limit: 2,
        ..ListFilter::default()
    };
    let page1 = s.list(f.clone()).await.unwrap();
    assert_eq!(ids(&page1), ["l1", "l3"]);
    let page2 = s
        .list(ListFilter {
            after_id: Some("l3".into()),
            ..f.clone()
        })
        .await
        .unwrap();
    assert_eq!(ids(&page2), ["l4"]);
    let newest = s
        .list(ListFilter {
            newest_first: true,
            after_id: Some("l4".into()),
            ..f
        })
        .await
        .unwrap();
    assert_eq!(ids(&newest), ["l3", "l1"]);
    let sending = s
        .list(ListFilter {
            state: Some(MessageState::Sending),
            ..ListFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(&sending), ["l2"]);
    let bulk = s
        .list(ListFilter {
            lane: Some(Lane::Bulk),
            phone_number_id: Some("pn1".into()),
            ..ListFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(&bulk), ["l1", "l4"]);
    let other_number = ListFilter {
        phone_number_id: Some("pn2".into()),
        ..ListFilter::default()
    };
    assert!(s.list(other_number).await.unwrap().is_empty());
    // By template name and by a metadata key's value (numbers compare as their text).
    let tagged = |id: &str, template: Option<&str>, metadata: Option<&str>| NewMessage {
        template: template.map(|t| TemplateRef {
            name: t.into(),
            language: "en".into(),
        }),
        metadata: metadata.map(str::to_string),
        ..msg(id)
    };
    enqueue_all(
        &s,
        vec![
            tagged("m1", Some("promo"), Some(r#"{"order":"A-1","n":7}"#)),
            tagged("m2", Some("receipt"), Some(r#"{"order":"A-2"}"#)),
            tagged("m3", None, Some(r#"{"order":"A-1"}"#)),
        ],
    )
    .await;
    let by = |template: Option<&str>, metadata: Option<(&str, &str)>| ListFilter {
        template: template.map(str::to_string),
        metadata: metadata.map(|(k, v)| (k.to_string(), v.to_string())),
        ..ListFilter::default()
    };
    assert_eq!(ids(&s.list(by(Some("promo"), None)).await.unwrap()), ["m1"]);
    assert_eq!(
        ids(&s.list(by(None, Some(("order", "A-1")))).await.unwrap()),
        ["m1", "m3"]
    );
    assert_eq!(
        ids(&s.list(by(None, Some(("n", "7")))).await.unwrap()),
        ["m1"]
    );
    assert!(
        s.list(by(Some("receipt"), Some(("order", "A-1"))))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.list(by(None, Some(("missing", "A-1"))))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn inbox_append_pending_finish<S: Store + Clone>(s: S) {
    let item = |b: &[u8]| InboxItem {
        received_at: T0,
        body: b.to_vec(),
        source: "cloud".into(),
    };
    let ids = s
        .append_inbox(vec![item(b"{\"a\":1}"), item(b"\xff\x00raw")])
        .await
        .unwrap();
    let more = s.append_inbox(vec![item(b"three")]).await.unwrap();
    assert!(ids[0] < ids[1] && ids[1] < more[0]);
    let pending = s.pending_inbox(10).await.unwrap();
    assert_eq!(pending.len(), 3);
    assert_eq!(pending[1].body, b"\xff\x00raw");
    assert_eq!(
        (pending[0].source.as_str(), pending[0].outcome),
        ("cloud", None)
    );
    assert_eq!(s.pending_inbox(1).await.unwrap()[0].id, ids[0]);
    s.finish_inbox(vec![
        (ids[0], InboxOutcome::Processed),
        (ids[1], InboxOutcome::Unparsed),
    ])
    .await
    .unwrap();
    let left = s.pending_inbox(10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, more[0]);
}

async fn prune_deletes_old_rows_in_arrival_order<S: Store + Clone>(s: S) {
    let none = Pruned::default();
    assert_eq!(s.prune(Prunable::Orphans, T0, 10).await.unwrap(), none);
    // Orphans: the old ones go, the young one stays, a batch limit asks for another call.
    for (i, at) in [T0, T0 + 1, T0 + 2, T0 + 3, T0 + 100]
        .into_iter()
        .enumerate()
    {
        s.park_orphan(&format!("wamid.P{i}"), format!("p{i}"), at)
            .await
            .unwrap();
    }
    let first = s.prune(Prunable::Orphans, T0 + 50, 3).await.unwrap();
    assert_eq!(
        first,
        Pruned {
            deleted: 3,
            more: true
        }
    );
    let second = s.prune(Prunable::Orphans, T0 + 50, 3).await.unwrap();
    assert_eq!(
        second,
        Pruned {
            deleted: 1,
            more: false
        }
    );
    assert!(s.take_orphans("wamid.P3").await.unwrap().is_empty());
    assert_eq!(s.take_orphans("wamid.P4").await.unwrap(), ["p4"]);
    // Dedupe keys: a forgotten key is new again, a young one is still known.
    s.remember_keys(vec!["k.old".into()], T0).await.unwrap();
    s.remember_keys(vec!["k.young".into()], T0 + 100)
        .await
        .unwrap();
    let keys = s.prune(Prunable::DedupeKeys, T0 + 50, 10).await.unwrap();
    assert_eq!(
        keys,
        Pruned {
            deleted: 1,
            more: false
        }
    );
    assert_eq!(
        s.remember_keys(vec!["k.old".into(), "k.young".into()], T0 + 200)
            .await
            .unwrap(),
        [true, false]
    );
    // Everything goes; keys written afterwards (their row keys may be reused) go in turn.
    let all = s.prune(Prunable::DedupeKeys, T0 + 1_000, 10).await.unwrap();
    assert_eq!(all.deleted, 2);
    s.remember_keys(vec!["k.next".into()], T0 + 2_000)
        .await
        .unwrap();
    let next = s.prune(Prunable::DedupeKeys, T0 + 3_000, 10).await.unwrap();
    assert_eq!(
        next,
        Pruned {
            deleted: 1,
            more: false
        }
    );
    // Inbox: processed and duplicate bodies go; unparsed and pending ones stay.
    let item = |at| InboxItem {
        received_at: at,
        body: b"{}".to_vec(),
        source: "cloud".into(),
    };
    let ids = s
        .append_inbox(vec![item(T0), item(T0), item(T0), item(T0), item(T0 + 100)])
        .await
        .unwrap();
    s.finish_inbox(vec![
        (ids[0], InboxOutcome::Processed),
        (ids[1], InboxOutcome::Unparsed),
        (ids[2], InboxOutcome::Duplicate),
        (ids[4], InboxOutcome::Processed),
    ])
    .await
    .unwrap();
    let inbox = s.prune(Prunable::Inbox, T0 + 50, 10).await.unwrap();
    assert_eq!(
        inbox,
        Pruned {
            deleted: 2,
            more: false
        }
    );
    let pending = s.pending_inbox(10).await.unwrap();
    assert_eq!(pending.iter().map(|r| r.id).collect::<Vec<_>>(), [ids[3]]);
    // Later: the young row has aged; the kept rows are not examined again.
    let later = s.prune(Prunable::Inbox, T0 + 500, 10).await.unwrap();
    assert_eq!(
        later,
        Pruned {
            deleted: 1,
            more: false
        }
    );
    assert_eq!(s.prune(Prunable::Inbox, T0 + 500, 10).await.unwrap(), none);
}

async fn dedupe_keys_under_concurrency<S: Store + Clone>(s: S) {
    assert_eq!(
        s.remember_keys(vec!["a".into(), "a".into(), "b".into()], T0)
            .await
            .unwrap(),
        vec![true, false, true]
    );
    let keys: Vec<String> = (0..40).map(|i| format!("wamid.{i}:delivered")).collect();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (s, keys) = (s.clone(), keys.clone());
        tasks.spawn(async move {
            let mut firsts = 0;
            for k in keys {
                if s.remember_keys(vec![k], T0).await.unwrap()[0] {
                    firsts += 1;
                }
            }
            firsts
        });
    }
    let mut total = 0;
    while let Some(n) = tasks.join_next().await {
        total += n.unwrap();
    }
    assert_eq!(total, 40, "each key is new exactly once");
}

async fn consents_keep_history_and_latest<S: Store + Clone>(s: S) {
    // `at` is when the person gave it, `recorded_at` when the gateway learned it (here: `seq`).
    let c = |category, status, at: Millis, seq: Millis, source: &str| Consent {
        wa_id: "15550001111".into(),
        category,
        status,
        source: source.into(),
        evidence: None,
        at,
        recorded_at: 1_000 + seq,
    };
    let m = Category::Marketing;
    use ConsentStatus::{OptedIn, OptedOut};
    assert_eq!(
        s.put_consents(vec![c(m, OptedIn, 100, 1, "api")])
            .await
            .unwrap(),
        vec![true]
    );
    // An opt-out takes; an opt-in recorded after it that claims an earlier time is history
    // only; another category is its own.
    let out = c(m, OptedOut, 300, 2, "webhook:131050");
    let older = Consent {
        evidence: Some("form 7".into()),
        ..c(m, OptedIn, 200, 3, "import")
    };
    let utility = c(Category::Utility, OptedIn, 50, 4, "api");
    assert_eq!(
        s.put_consents(vec![out.clone(), older.clone(), utility.clone()])
            .await
            .unwrap(),
        vec![true, false, true]
    );
    let current = s.consents("15550001111").await.unwrap();
    assert_eq!(current, vec![out.clone(), utility.clone()]);
    // The history is in the order recorded.
    let history = s.consent_history("15550001111").await.unwrap();
    let seqs: Vec<_> = history.iter().map(|h| h.recorded_at).collect();
    assert_eq!(seqs, [1_001, 1_002, 1_003, 1_004]);
    assert_eq!(history[2], older);
    // A later opt-in at or after the opt-out's time takes (the person came back).
    let back = c(m, OptedIn, 300, 5, "inbound:START");
    assert_eq!(
        s.put_consents(vec![back.clone()]).await.unwrap(),
        vec![true]
    );
    assert_eq!(s.consents("15550001111").await.unwrap()[0], back);
    // A date cannot pin consent: an opt-in claiming a far later time is overridden by the next
    // opt-out recorded, whatever time that one gives.
    let pinned = c(m, OptedIn, 9_000_000, 6, "api");
    let stop = c(m, OptedOut, 400, 7, "inbound:STOP");
    assert_eq!(
        s.put_consents(vec![pinned, stop.clone()]).await.unwrap(),
        vec![true, true]
    );
    assert_eq!(s.consents("15550001111").await.unwrap()[0], stop);
    assert!(s.consents("other").await.unwrap().is_empty());
}

async fn last_inbound_keeps_max<S: Store + Clone>(s: S) {
    let n = |p: &str, w: &str, at: Millis| (p.to_string(), w.to_string(), at);
    s.note_inbound(vec![n("pn1", "w", 100), n("pn1", "w", 300)])
        .await
        .unwrap();
    s.note_inbound(vec![n("pn1", "w", 200), n("pn2", "w", 50)])
        .await
        .unwrap();
    assert_eq!(s.last_inbound("pn1", "w").await.unwrap(), Some(300));
    assert_eq!(s.last_inbound("pn2", "w").await.unwrap(), Some(50));
    assert_eq!(s.last_inbound("pn1", "x").await.unwrap(), None);
}

async fn templates_upsert<S: Store + Clone>(s: S) {
    let t = |name: &str, lang: &str, status: &str, at: Millis| TemplateRecord {
        name: name.into(),
        language: lang.into(),
        category: Category::Marketing,
        status: status.into(),
        id: format!("{name}-{lang}"),
        components: "[]".into(),
        parameter_format: (name == "alpha").then(|| "NAMED".to_string()),
        updated_at: at,
    };
    s.upsert_templates(vec![
        t("promo", "en", "APPROVED", 100),
        t("alpha", "en", "PENDING", 100),
    ])
    .await
    .unwrap();
    s.upsert_templates(vec![t("promo", "en", "PAUSED", 200)])
        .await
        .unwrap();
    s.upsert_templates(vec![t("promo", "en", "APPROVED", 150)])
        .await
        .unwrap();
    let promo = s.template("promo", "en").await.unwrap().unwrap();
    assert_eq!((promo.status.as_str(), promo.updated_at), ("PAUSED", 200));
    assert_eq!(s.template("promo", "de").await.unwrap(), None);
    let all = s.templates().await.unwrap();
    let names: Vec<_> = all.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["alpha", "promo"]);
    assert_eq!(all[0].parameter_format.as_deref(), Some("NAMED"));
    assert_eq!(all[1].parameter_format, None);
}

async fn event_feed_follows_a_cursor<S: Store + Clone>(s: S) {
    let batch: Vec<NewMessage> = (0..5).map(|i| msg(&format!("e{i}"))).collect();
    enqueue_all(&s, batch).await;
    s.claim(T0, 2, T0 + 1_000).await.unwrap();
    accept(&s, "e1", "wamid.e1", T0 + 1).await;
    accept(&s, "e0", "wamid.e0", T0 + 2).await;

    let mut seen = Vec::new();
    let mut cursor = s.cursor("sse").await.unwrap();
    assert_eq!(cursor, 0);
    loop {
        let page = s.events_after(cursor, 3).await.unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 3);
        cursor = page.last().unwrap().seq;
        s.set_cursor("sse", cursor).await.unwrap();
        seen.extend(page);
    }
    assert!(seen.windows(2).all(|w| w[0].seq < w[1].seq));
    let order: Vec<_> = seen
        .iter()
        .map(|e| (e.message_id.as_str(), e.kind.as_str()))
        .collect();
    assert_eq!(order.len(), 7);
    assert_eq!(order[5..], [("e1", "accepted"), ("e0", "accepted")]);
    assert_eq!(seen[5].state, MessageState::Accepted);
    assert_eq!(s.cursor("sse").await.unwrap(), cursor);
    s.set_cursor("sse", seen[1].seq).await.unwrap();
    assert_eq!(s.cursor("sse").await.unwrap(), seen[1].seq);
    let resumed = s.events_after(seen[1].seq, 100).await.unwrap();
    assert_eq!(resumed[0].seq, seen[2].seq);
}

async fn concurrent_writers_share_commits<S: Store + Clone>(s: S) {
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..16 {
        let s = s.clone();
        tasks.spawn(async move {
            for i in 0..20 {
                let id = format!("w{t}-{i}");
                let r = s.enqueue(vec![keyed(&id, &id)]).await.unwrap();
                assert_eq!(r, vec![Enqueued::Inserted { id: id.clone() }]);
                // Acknowledged means readable.
                assert!(s.get(&id).await.unwrap().is_some());
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    let all = s
        .list(ListFilter {
            limit: 1_000,
            ..ListFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 320);
}

// ---------------------------------------------------------------------------------------------
// Durability: the same data written, the store dropped, the file reopened.

async fn write_everything<S: Store>(s: &S) {
    enqueue_all(s, vec![keyed("d1", "dk1"), msg("d2")]).await;
    s.claim(T0, 1, T0 + 1_000).await.unwrap();
    accept(s, "d1", "wamid.D1", T0 + 1).await;
    s.park_orphan("wamid.X", "orphan".into(), T0).await.unwrap();
    s.append_inbox(vec![InboxItem {
        received_at: T0,
        body: b"body".to_vec(),
        source: "cloud".into(),
    }])
    .await
    .unwrap();
    s.remember_keys(vec!["k".into()], T0).await.unwrap();
    s.put_consents(vec![Consent {
        recorded_at: 1,
        wa_id: "w".into(),
        category: Category::Marketing,
        status: ConsentStatus::OptedIn,
        source: "api".into(),
        evidence: None,
        at: 1,
    }])
    .await
    .unwrap();
    s.note_inbound(vec![("pn1".into(), "w".into(), 77)])
        .await
        .unwrap();
    s.upsert_templates(vec![TemplateRecord {
        name: "t".into(),
        language: "en".into(),
        category: Category::Utility,
        status: "APPROVED".into(),
        id: "1".into(),
        components: "[]".into(),
        parameter_format: None,
        updated_at: 1,
    }])
    .await
    .unwrap();
    s.set_cursor("app", 3).await.unwrap();
}

async fn check_everything<S: Store>(s: &S) {
    let d1 = s.get("d1").await.unwrap().unwrap();
    assert_eq!(
        (d1.state, d1.wamid.as_deref()),
        (MessageState::Accepted, Some("wamid.D1"))
    );
    assert_eq!(
        s.get("d2").await.unwrap().unwrap().state,
        MessageState::Queued
    );
    let again = s.enqueue(vec![keyed("d9", "dk1")]).await.unwrap();
    assert!(matches!(&again[0], Enqueued::Existing(r) if r.id == "d1"));
    assert_eq!(s.events("d1").await.unwrap().len(), 2);
    assert_eq!(s.events_after(0, 10).await.unwrap().len(), 3);
    assert_eq!(s.take_orphans("wamid.X").await.unwrap(), vec!["orphan"]);
    assert_eq!(s.pending_inbox(10).await.unwrap()[0].body, b"body");
    assert_eq!(
        s.remember_keys(vec!["k".into()], T0).await.unwrap(),
        vec![false]
    );
    assert_eq!(s.consents("w").await.unwrap().len(), 1);
    assert_eq!(s.last_inbound("pn1", "w").await.unwrap(), Some(77));
    assert!(s.template("t", "en").await.unwrap().is_some());
    assert_eq!(s.cursor("app").await.unwrap(), 3);
    // New rows continue the sequences.
    enqueue_all(s, vec![msg("d3")]).await;
    let d3 = s.get("d3").await.unwrap().unwrap();
    assert!(d3.seq > d1.seq);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file_survives_reopen() {
    let db = FileDb::new();
    {
        let s = db.open().await;
        write_everything(&s).await;
        drop(s);
    }
    // Dropping finishes the writer in the background; a reopen does not wait for it.
    let s = db.open().await;
    check_everything(&s).await;
    s.close().await;
    let normal = SqliteOptions {
        synchronous: Synchronous::Normal,
        ..SqliteOptions::default()
    };
    let s = db.open_with(normal).await;
    assert_eq!(s.cursor("app").await.unwrap(), 3);
}

/// The writer's page cache is the one asked for (SQLite's default of 2,000 KiB is outgrown by
/// the outbox's indexes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_writer_cache_is_the_one_configured() {
    let db = FileDb::new();
    let s = db.open().await;
    assert_eq!(
        s.writer_cache_kib().await.unwrap(),
        i64::from(SqliteOptions::default().writer_cache_kib)
    );
    assert!(SqliteOptions::default().writer_cache_kib > 2_000);
    s.close().await;
    let small = SqliteOptions {
        writer_cache_kib: 512,
        ..SqliteOptions::default()
    };
    let s = db.open_with(small).await;
    assert_eq!(s.writer_cache_kib().await.unwrap(), 512);
    s.close().await;
}

/// Opening what is not the gateway's database fails with a message naming the file and what to
/// do; nothing is created or changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_or_foreign_files_are_refused_at_open() {
    let db = FileDb::new();
    let path = db.dir.join("gateway.db");
    let refused = |what: &str| {
        let path = path.clone();
        let what = what.to_string();
        async move {
            let e = SqliteStore::open(Some(&path), SqliteOptions::default())
                .await
                .err()
                .unwrap_or_else(|| panic!("{what}: opened"));
            let msg = e.to_string();
            assert!(matches!(e, StoreError::Unusable(_)), "{what}: {e:?}");
            assert!(msg.contains(&path.display().to_string()), "{what}: {msg}");
            msg
        }
    };
    // An empty file where the database was expected.
    std::fs::write(&path, b"").unwrap();
    assert!(refused("empty").await.contains("empty"));
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0, "left as it was");
    // Another program's file.
    std::fs::write(&path, b"name,phone\nAna,4915112345678\n").unwrap();
    assert!(refused("text").await.contains("not an SQLite database"));
    // Another program's SQLite database.
    std::fs::remove_file(&path).unwrap();
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL);")
            .unwrap();
    }
    assert!(refused("foreign").await.contains("another program"));
    // The gateway's own database, damaged inside.
    std::fs::remove_file(&path).unwrap();
    {
        // No checkpointer thread: once closed and dropped, nothing holds the file.
        let s = db
            .open_with(SqliteOptions {
                checkpoint_every: None,
                ..SqliteOptions::default()
            })
            .await;
        let many: Vec<NewMessage> = (0..2_000).map(|i| msg(&format!("d{i}"))).collect();
        enqueue_all(&s, many).await;
        s.close().await;
    }
    {
        // Everything into the main file.
        let c = rusqlite::Connection::open(&path).unwrap();
        c.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
        c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
    }
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 64 * 1024, "{} bytes", bytes.len());
    let garbage_at = 4 * 4096;
    for b in &mut bytes[garbage_at..garbage_at + 16 * 4096] {
        *b = 0xA5;
    }
    std::fs::write(&path, &bytes).unwrap();
    assert!(refused("damaged").await.contains("damaged"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_commits_queued_writes_then_closes() {
    let db = FileDb::new();
    let cancel = tokio_util::sync::CancellationToken::new();
    let s = db
        .open_with(SqliteOptions {
            cancel: cancel.clone(),
            ..SqliteOptions::default()
        })
        .await;
    let pending: Vec<_> = (0..50)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { s.remember_keys(vec![format!("k{i}")], T0).await })
        })
        .collect();
    tokio::task::yield_now().await;
    cancel.cancel();
    let mut ok = 0;
    for p in pending {
        match p.await.unwrap() {
            Ok(v) => {
                assert_eq!(v, vec![true]);
                ok += 1;
            }
            Err(e) => assert_eq!(e, StoreError::Closed),
        }
    }
    s.close().await;
    assert_eq!(s.set_cursor("x", 1).await, Err(StoreError::Closed));
    assert_eq!(s.cursor("x").await, Err(StoreError::Closed));
    let reopened = db.open().await;
    let keys: Vec<String> = (0..50).map(|i| format!("k{i}")).collect();
    let fresh = reopened.remember_keys(keys, T0).await.unwrap();
    assert_eq!(
        fresh.iter().filter(|f| !**f).count(),
        ok,
        "every acknowledged write is on disk"
    );
}

// ---------------------------------------------------------------------------------------------
// Throughput (release mode: cargo test --release -p mynah-gateway --test store -- --ignored)

async fn lifecycle_throughput(sync: Synchronous, n: usize) {
    let db = FileDb::new();
    let s = db
        .open_with(SqliteOptions {
            synchronous: sync,
            ..SqliteOptions::default()
        })
        .await;
    let workers = 128;
    let started = Instant::now();
    let cpu_started = cpu_seconds();

    // API: one message per call, `workers` requests in flight.
    let t = Instant::now();
    run_workers(&s, workers, n, |s, i| async move {
        let id = format!("m{i}");
        s.enqueue(vec![keyed(&id, &id)]).await.unwrap();
    })
    .await;
    let enqueue = t.elapsed();

    // Dispatcher: claim in batches, one `apply` per send response.
    let t = Instant::now();
    loop {
        let claimed = s.claim(T0 + 1, 256, T0 + 60_000).await.unwrap();
        if claimed.is_empty() {
            break;
        }
        let mut set = tokio::task::JoinSet::new();
        for r in claimed {
            let s = s.clone();
            set.spawn(async move {
                let w = format!("wamid.{}", r.id);
                accept(&s, &r.id, &w, T0 + 2).await;
            });
        }
        while set.join_next().await.is_some() {}
    }
    let dispatch = t.elapsed();

    // Webhooks: fast-ack append per status, then batched processing.
    let t = Instant::now();
    run_workers(&s, workers, n * 3, |s, i| async move {
        let body = format!("wamid.m{}|{}", i / 3, i % 3).into_bytes();
        let item = InboxItem {
            received_at: T0,
            body,
            source: "cloud".into(),
        };
        s.append_inbox(vec![item]).await.unwrap();
    })
    .await;
    let intake = t.elapsed();
    let t = Instant::now();
    let kinds = [
        PlatformStatus::Sent,
        PlatformStatus::Delivered,
        PlatformStatus::Read,
    ];
    loop {
        let rows = s.pending_inbox(500).await.unwrap();
        if rows.is_empty() {
            break;
        }
        let parsed: Vec<(String, usize)> = rows
            .iter()
            .map(|r| {
                let text = String::from_utf8_lossy(&r.body).to_string();
                let (w, k) = text.split_once('|').unwrap();
                (w.to_string(), k.parse().unwrap())
            })
            .collect();
        let updates = parsed
            .iter()
            .map(|(w, k)| keyed_status(w, kinds[*k], T0 / 1_000 + *k as i64))
            .collect();
        s.apply_statuses(updates).await.unwrap();
        let done = rows
            .iter()
            .map(|r| (r.id, InboxOutcome::Processed))
            .collect();
        s.finish_inbox(done).await.unwrap();
    }
    let process = t.elapsed();
    let total = started.elapsed();
    let cpu = cpu_seconds() - cpu_started;
    let read = s
        .list(ListFilter {
            state: Some(MessageState::Read),
            limit: n + 1,
            ..ListFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(read.len(), n);
    let rate = |d: std::time::Duration, k: usize| k as f64 / d.as_secs_f64();
    println!(
        "{sync:?}: {n} messages in {:.2}s = {:.0} msg/s end to end, {:.0} µs CPU per message \
         (process) | enqueue {:.0}/s, claim+accept {:.0}/s, inbox append {:.0}/s, \
         status processing {:.0}/s",
        total.as_secs_f64(),
        rate(total, n),
        cpu * 1e6 / n as f64,
        rate(enqueue, n),
        rate(dispatch, n),
        rate(intake, n * 3),
        rate(process, n * 3),
    );
}

/// User + system CPU time of this process (Linux; 0 elsewhere), in seconds.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let Some((_, after_name)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name; 100 Hz ticks.
    let ticks: f64 = fields[11..13]
        .iter()
        .filter_map(|f| f.parse::<f64>().ok())
        .sum();
    ticks / 100.0
}

/// Runs `f(i)` for i in 0..n on `workers` concurrent tasks.
async fn run_workers<F, Fut>(s: &SqliteStore, workers: usize, n: usize, f: F)
where
    F: Fn(SqliteStore, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let mut set = tokio::task::JoinSet::new();
    for w in 0..workers {
        let (s, f) = (s.clone(), f.clone());
        set.spawn(async move {
            for i in (w..n).step_by(workers) {
                f(s.clone(), i).await;
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "throughput measurement; run in release mode"]
async fn throughput_full_lifecycle() {
    lifecycle_throughput(Synchronous::Full, 20_000).await;
    lifecycle_throughput(Synchronous::Normal, 20_000).await;
}

fn inbound(id: &str, from: &str, at: Millis) -> InboundRecord {
    InboundRecord {
        seq: 0,
        id: id.into(),
        phone_number_id: "pn1".into(),
        wa_id: from.into(),
        profile_name: Some("Ana".into()),
        kind: "text".into(),
        context_id: None,
        body: format!(r#"{{"from":"{from}","id":"{id}","type":"text","text":{{"body":"hi"}}}}"#),
        timestamp: at - 1_000,
        received_at: at,
        person: None,
    }
}

async fn inbound_messages_are_recorded_once<S: Store + Clone>(s: S) {
    enqueue_all(&s, vec![msg("o1")]).await;
    s.claim(T0, 1, T0 + 1_000).await.unwrap();
    accept(&s, "o1", "wamid.o1", T0 + 1).await;
    let reply = InboundRecord {
        context_id: Some("wamid.o1".into()),
        kind: "button".into(),
        ..inbound("wamid.in1", "15550001111", T0 + 10)
    };
    let first = s
        .record_inbound(vec![
            reply.clone(),
            inbound("wamid.in2", "15550002222", T0 + 20),
        ])
        .await
        .unwrap();
    assert_eq!(first, vec![true, true]);
    // A redelivery changes nothing; within one batch too.
    let again = s
        .record_inbound(vec![
            reply.clone(),
            inbound("wamid.in3", "15550001111", T0 + 30),
            inbound("wamid.in3", "15550001111", T0 + 30),
        ])
        .await
        .unwrap();
    assert_eq!(again, vec![false, true, false]);
    // The window opens at the platform's time.
    assert_eq!(
        s.last_inbound("pn1", "15550001111").await.unwrap(),
        Some(T0 + 30 - 1_000)
    );
    // One message.received event each, in the feed, naming the message replied to.
    let feed = s.events_after(0, 100).await.unwrap();
    let received: Vec<_> = feed
        .iter()
        .filter(|e| e.kind == kind::MESSAGE_RECEIVED)
        .collect();
    assert_eq!(received.len(), 3);
    assert_eq!(received[0].message_id, "wamid.in1");
    assert_eq!(received[0].state, MessageState::Received);
    assert_eq!(received[0].detail["in_reply_to"]["id"], "o1");
    assert_eq!(received[0].detail["contact"]["profile"]["name"], "Ana");
    assert_eq!(received[0].detail["type"], "button");
    assert_eq!(received[0].detail["message"]["text"]["body"], "hi");
    assert_eq!(received[1].detail["in_reply_to"], serde_json::Value::Null);
}

async fn conversation_pages_newest_first<S: Store + Clone>(s: S) {
    // Outbound at T0, T0+20 (same time as an inbound), T0+40; inbound at T0+10, T0+20, T0+30.
    for (id, at) in [("o1", T0), ("o2", T0 + 20), ("o3", T0 + 40)] {
        enqueue_all(
            &s,
            vec![NewMessage {
                created_at: at,
                ..msg(id)
            }],
        )
        .await;
    }
    enqueue_all(
        &s,
        vec![NewMessage {
            to: "15559999999".into(),
            ..msg("other")
        }],
    )
    .await;
    let ins: Vec<_> = [("i1", T0 + 10), ("i2", T0 + 20), ("i3", T0 + 30)]
        .iter()
        .map(|(id, at)| inbound(id, "15550001111", *at))
        .collect();
    s.record_inbound(ins).await.unwrap();
    s.record_inbound(vec![inbound("i9", "15559999999", T0)])
        .await
        .unwrap();
    let label = |items: &[ConversationItem]| -> Vec<String> {
        items
            .iter()
            .map(|i| match i {
                ConversationItem::Outbound(m) => m.id.clone(),
                ConversationItem::Inbound(m) => m.id.clone(),
            })
            .collect()
    };
    let all = s.conversation("15550001111", None, 100).await.unwrap();
    assert_eq!(label(&all), ["o3", "i3", "o2", "i2", "i1", "o1"]);
    // Pages of two follow the cursor without gaps or repeats.
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = s.conversation("15550001111", before, 2).await.unwrap();
        if page.is_empty() {
            break;
        }
        seen.extend(label(&page));
        let last = page.last().unwrap().cursor();
        assert_eq!(ConversationCursor::decode(&last.encode()), Some(last));
        before = Some(last);
    }
    assert_eq!(seen, label(&all));
    assert_eq!(ConversationCursor::decode("1.x.2"), None);
    assert_eq!(ConversationCursor::decode("1.o.2.3"), None);
}

async fn cancel_only_what_is_queued<S: Store + Clone>(s: S) {
    enqueue_all(
        &s,
        vec![msg("c1"), msg("c2"), of_template("c3", "promo", "en")],
    )
    .await;
    s.park_template("promo", None, T0).await.unwrap();
    // c1 is handed over (claimed); c2 and the parked c3 are still queued.
    let claimed = s.claim(T0, 1, T0 + 1_000).await.unwrap();
    assert_eq!(ids(&claimed), ["c1"]);
    let c1 = s.cancel("c1", T0 + 5).await.unwrap().unwrap();
    assert_eq!(c1.state, MessageState::Sending);
    let c2 = s.cancel("c2", T0 + 5).await.unwrap().unwrap();
    assert_eq!((c2.state, c2.updated_at), (MessageState::Cancelled, T0 + 5));
    let c3 = s.cancel("c3", T0 + 6).await.unwrap().unwrap();
    assert_eq!(c3.state, MessageState::Cancelled);
    assert_eq!(s.cancel("nope", T0).await.unwrap(), None);
    // Cancelled rows are never claimed, released or moved by statuses; a second cancel is a no-op.
    assert!(s.claim(T0 + 10, 10, T0 + 100).await.unwrap().is_empty());
    assert_eq!(s.unpark_template("promo", None, T0 + 7).await.unwrap(), 0);
    let again = s.cancel("c2", T0 + 8).await.unwrap().unwrap();
    assert_eq!(again.updated_at, T0 + 5);
    let events = s.events("c2").await.unwrap();
    let kinds: Vec<_> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, [kind::ENQUEUED, kind::CANCELLED]);
    assert_eq!(events[1].state, MessageState::Cancelled);
}

async fn parked_messages_expire_at_their_deadline<S: Store + Clone>(s: S) {
    let early = NewMessage {
        deadline: T0 + 1_000,
        ..of_template("p1", "promo", "en")
    };
    let late = NewMessage {
        deadline: T0 + 9_000,
        ..of_template("p2", "promo", "en")
    };
    let free = NewMessage {
        deadline: T0 + 1_000,
        ..msg("p3")
    };
    enqueue_all(&s, vec![early, late, free]).await;
    assert_eq!(s.park_template("promo", None, T0).await.unwrap(), 2);
    assert!(s.expire_parked(T0 + 999, 10).await.unwrap().is_empty());
    assert_eq!(s.expire_parked(T0 + 1_000, 10).await.unwrap(), ["p1"]);
    let p1 = s.get("p1").await.unwrap().unwrap();
    assert_eq!(p1.state, MessageState::Expired);
    let last = s.events("p1").await.unwrap().pop().unwrap();
    assert_eq!(
        (last.kind.as_str(), last.state),
        ("expired", MessageState::Expired)
    );
    // Not parked: left to the dispatcher; the later one waits for its own deadline.
    assert_eq!(
        s.get("p3").await.unwrap().unwrap().state,
        MessageState::Queued
    );
    assert_eq!(s.expire_parked(T0 + 20_000, 10).await.unwrap(), ["p2"]);
    assert_eq!(
        s.unpark_template("promo", None, T0 + 20_001).await.unwrap(),
        0
    );
}

async fn people_are_known_by_phone_bsuid_or_both<S: Store + Clone>(s: S) {
    // A phone nobody is linked to names its implicit person, keyed by the phone; a BSUID
    // nobody is known by names nobody.
    assert_eq!(
        s.resolve("4915100000001").await.unwrap().as_deref(),
        Some("4915100000001")
    );
    assert_eq!(s.resolve("DE.9100000000000001").await.unwrap(), None);
    let a = s
        .person_key("4915100000001", IdKind::Phone, T0)
        .await
        .unwrap();
    assert!(a.starts_with("ct_"), "stored people have opaque keys: {a}");
    assert_eq!(
        s.person_key("4915100000001", IdKind::Phone, T0)
            .await
            .unwrap(),
        a
    );
    assert_eq!(
        s.resolve("4915100000001").await.unwrap().as_deref(),
        Some(a.as_str())
    );
    assert_eq!(
        s.resolve(&a).await.unwrap().as_deref(),
        Some(a.as_str()),
        "a key names itself"
    );
    // A webhook shows the phone with its BSUID and a profile: one person.
    let seen = Sighting {
        wa_id: Some("4915100000001".into()),
        user_id: Some("DE.1000000000000001".into()),
        profile_name: Some("Ana".into()),
        at: T0 + 1,
        ..Sighting::default()
    };
    assert_eq!(s.learn(vec![seen]).await.unwrap(), vec![Some(a.clone())]);
    assert_eq!(
        s.resolve("DE.1000000000000001").await.unwrap().as_deref(),
        Some(a.as_str())
    );
    // Later only the BSUID, now with a username.
    let later = Sighting {
        user_id: Some("DE.1000000000000001".into()),
        username: Some("ana.k".into()),
        at: T0 + 2,
        ..Sighting::default()
    };
    assert_eq!(
        s.learn(vec![later, Sighting::default()]).await.unwrap(),
        vec![Some(a.clone()), None]
    );
    let p = s.person("DE.1000000000000001").await.unwrap().unwrap();
    assert_eq!(
        (
            p.key.as_str(),
            p.wa_id.as_deref(),
            p.user_id.as_deref(),
            p.username.as_deref(),
            p.profile_name.as_deref()
        ),
        (
            a.as_str(),
            Some("4915100000001"),
            Some("DE.1000000000000001"),
            Some("ana.k"),
            Some("Ana")
        )
    );
    let ids = s.identifiers(&a).await.unwrap();
    assert_eq!(
        ids,
        vec![
            ("4915100000001".to_string(), IdKind::Phone),
            ("DE.1000000000000001".to_string(), IdKind::UserId)
        ]
    );
    // Someone known only by BSUID.
    let b = s
        .learn(vec![Sighting {
            user_id: Some("DE.2000000000000002".into()),
            at: T0 + 3,
            ..Sighting::default()
        }])
        .await
        .unwrap()[0]
        .clone()
        .unwrap();
    assert_ne!(a, b);
    // A phone nobody is linked to: its implicit person, nothing known but the phone.
    let implicit = s.person("4915199999999").await.unwrap().unwrap();
    assert_eq!(
        (implicit.key.as_str(), implicit.user_id),
        ("4915199999999", None)
    );
    assert_eq!(s.person("DE.9999999999999999").await.unwrap(), None);
}

/// Person keys start with the time they were made, so new people land at the right edge of the
/// indexes keyed by person: one sighting alone, and first sightings learned set-wise.
async fn people_made_later_sort_later<S: Store + Clone>(s: S) {
    let seen = |n: u64, at: Millis| Sighting {
        user_id: Some(format!("DE.{:016}", 3_000_000_000_000_000 + n)),
        at,
        ..Sighting::default()
    };
    let keys = |v: Vec<Option<String>>| -> Vec<String> { v.into_iter().flatten().collect() };
    let first = keys(s.learn(vec![seen(1, T0 + 10)]).await.unwrap());
    let second = keys(
        s.learn(vec![seen(2, T0 + 20), seen(3, T0 + 20)])
            .await
            .unwrap(),
    );
    let third = keys(
        s.learn(vec![seen(4, T0 + 30), seen(5, T0 + 30)])
            .await
            .unwrap(),
    );
    let last = keys(s.learn(vec![seen(6, T0 + 40)]).await.unwrap());
    assert_eq!(
        (first.len(), second.len(), third.len(), last.len()),
        (1, 2, 2, 1)
    );
    let made: Vec<&String> = first
        .iter()
        .chain(&second)
        .chain(&third)
        .chain(&last)
        .collect();
    for k in &made {
        assert!(k.starts_with("ct_") && k.len() <= 40, "{k}");
    }
    let max = |v: &[String]| v.iter().max().cloned().unwrap_or_default();
    let min = |v: &[String]| v.iter().min().cloned().unwrap_or_default();
    assert!(max(&first) < min(&second), "{first:?} then {second:?}");
    assert!(max(&second) < min(&third), "{second:?} then {third:?}");
    assert!(max(&third) < min(&last), "{third:?} then {last:?}");
    assert_ne!(
        second[0], second[1],
        "two people made in one millisecond differ"
    );
}

async fn one_sighting_of_two_people_merges_them<S: Store + Clone>(s: S) {
    let consent = |who: &str, status, recorded_at| Consent {
        wa_id: who.into(),
        category: Category::Marketing,
        status,
        source: "t".into(),
        evidence: None,
        at: recorded_at,
        recorded_at,
    };
    // Known by phone (opted in first), and by BSUID only (opted out later, wrote in).
    let by_phone = s
        .person_key("4915100000003", IdKind::Phone, T0)
        .await
        .unwrap();
    let by_bsuid = s
        .person_key("DE.3000000000000003", IdKind::UserId, T0 + 1)
        .await
        .unwrap();
    s.put_consents(vec![
        consent(&by_phone, ConsentStatus::OptedIn, T0 + 10),
        consent(&by_bsuid, ConsentStatus::OptedOut, T0 + 20),
        Consent {
            category: Category::Utility,
            ..consent(&by_bsuid, ConsentStatus::OptedIn, T0 + 21)
        },
    ])
    .await
    .unwrap();
    s.note_inbound(vec![("pn1".into(), by_bsuid.clone(), T0 + 30)])
        .await
        .unwrap();
    // One webhook names both: the older person stays, the other's state moves in.
    let merged = s
        .learn(vec![Sighting {
            wa_id: Some("4915100000003".into()),
            user_id: Some("DE.3000000000000003".into()),
            at: T0 + 40,
            ..Sighting::default()
        }])
        .await
        .unwrap();
    assert_eq!(merged, vec![Some(by_phone.clone())]);
    assert_eq!(
        s.resolve("DE.3000000000000003").await.unwrap(),
        Some(by_phone.clone())
    );
    assert_eq!(
        s.resolve(&by_bsuid).await.unwrap(),
        None,
        "the other key is gone"
    );
    let current = s.consents(&by_phone).await.unwrap();
    let statuses: Vec<_> = current.iter().map(|c| (c.category, c.status)).collect();
    assert_eq!(
        statuses,
        vec![
            (Category::Marketing, ConsentStatus::OptedOut),
            (Category::Utility, ConsentStatus::OptedIn)
        ],
        "the later-recorded consent wins"
    );
    assert!(s.consents(&by_bsuid).await.unwrap().is_empty());
    assert_eq!(s.consent_history(&by_phone).await.unwrap().len(), 3);
    assert_eq!(
        s.last_inbound("pn1", &by_phone).await.unwrap(),
        Some(T0 + 30)
    );
    let kinds: Vec<String> = s
        .identity_history(&by_phone)
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.kind)
        .collect();
    assert!(kinds.contains(&"merged".to_string()), "{kinds:?}");
}

async fn identity_changes_keep_the_person<S: Store + Clone>(s: S) {
    let key = s
        .learn(vec![Sighting {
            wa_id: Some("4915100000004".into()),
            user_id: Some("DE.4000000000000004".into()),
            at: T0,
            ..Sighting::default()
        }])
        .await
        .unwrap()[0]
        .clone()
        .unwrap();
    s.put_consents(vec![Consent {
        wa_id: key.clone(),
        category: Category::Marketing,
        status: ConsentStatus::OptedIn,
        source: "t".into(),
        evidence: None,
        at: T0,
        recorded_at: T0,
    }])
    .await
    .unwrap();
    // The BSUID changes (user_id_update).
    let after = s
        .change_identity(IdentityUpdate {
            previous_user_id: Some("DE.4000000000000004".into()),
            user_id: Some("DE.4100000000000004".into()),
            source: "webhook:user_id_update".into(),
            at: T0 + 1,
            ..IdentityUpdate::default()
        })
        .await
        .unwrap();
    assert_eq!(after, key);
    assert_eq!(
        s.resolve("DE.4100000000000004").await.unwrap(),
        Some(key.clone())
    );
    assert_eq!(
        s.consents(&key).await.unwrap().len(),
        1,
        "consent carried over"
    );
    // A new phone: the old one no longer names this person (numbers are recycled).
    s.change_identity(IdentityUpdate {
        previous_user_id: Some("DE.4100000000000004".into()),
        previous_wa_id: Some("4915100000004".into()),
        wa_id: Some("4915100000044".into()),
        user_id: Some("DE.4200000000000004".into()),
        source: "webhook:system".into(),
        at: T0 + 2,
        ..IdentityUpdate::default()
    })
    .await
    .unwrap();
    assert_eq!(
        s.resolve("4915100000004").await.unwrap().as_deref(),
        Some("4915100000004"),
        "the old phone names only its own implicit person now"
    );
    assert_eq!(s.resolve("4915100000044").await.unwrap(), Some(key.clone()));
    let p = s.person(&key).await.unwrap().unwrap();
    assert_eq!(
        (p.wa_id.as_deref(), p.user_id.as_deref()),
        (Some("4915100000044"), Some("DE.4200000000000004"))
    );
    let kinds: Vec<String> = s
        .identity_history(&key)
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.kind)
        .collect();
    assert!(
        kinds.contains(&"user_id_changed".to_string())
            && kinds.contains(&"number_changed".to_string()),
        "{kinds:?}"
    );
    // Nobody known by the previous ids: the change creates the person.
    let fresh = s
        .change_identity(IdentityUpdate {
            previous_user_id: Some("DE.5000000000000005".into()),
            user_id: Some("DE.5100000000000005".into()),
            source: "t".into(),
            at: T0 + 3,
            ..IdentityUpdate::default()
        })
        .await
        .unwrap();
    assert_eq!(s.resolve("DE.5100000000000005").await.unwrap(), Some(fresh));
}

// ---------------------------------------------------------------------------------------------
// Every check against every backend.

async fn a_person_is_one_whichever_id_names_them<S: Store + Clone>(s: S) {
    let phone = "4915100000005";
    let bsuid = "DE.5000000000000005";
    // Sent to a phone nobody is linked to, then to a BSUID nobody is known by.
    enqueue_all(
        &s,
        vec![
            NewMessage {
                to: phone.into(),
                ..msg("by_phone")
            },
            NewMessage {
                to: bsuid.into(),
                created_at: T0 + 1,
                ..msg("by_bsuid")
            },
        ],
    )
    .await;
    let by_bsuid = s.get("by_bsuid").await.unwrap().unwrap();
    let key = by_bsuid.person.clone().unwrap();
    assert!(key.starts_with("ct_"), "{key}");
    assert_eq!(
        s.get("by_phone").await.unwrap().unwrap().person.as_deref(),
        Some(phone),
        "a send to an unlinked phone stores nothing about people"
    );
    // A consent recorded under the BSUID, a window noted by the phone's inbound message.
    s.put_consents(vec![Consent {
        wa_id: bsuid.into(),
        category: Category::Marketing,
        status: ConsentStatus::OptedIn,
        source: "form".into(),
        evidence: None,
        at: T0,
        recorded_at: T0 + 2,
    }])
    .await
    .unwrap();
    s.record_inbound(vec![inbound("hello", phone, T0 + 3)])
        .await
        .unwrap();
    assert!(
        s.consents(phone).await.unwrap().is_empty(),
        "not linked yet"
    );
    // A webhook names both: one person, whose state answers to either id.
    let learned = s
        .learn(vec![Sighting {
            wa_id: Some(phone.into()),
            user_id: Some(bsuid.into()),
            at: T0 + 4,
            ..Sighting::default()
        }])
        .await
        .unwrap();
    let person = learned[0].clone().unwrap();
    for id in [phone, bsuid, person.as_str()] {
        let consents = s.consents(id).await.unwrap();
        assert_eq!(consents.len(), 1, "{id}");
        assert_eq!(consents[0].wa_id, id, "named as asked");
        let window = s.last_inbound("pn1", id).await.unwrap();
        assert!(window.is_some_and(|t| t > T0 - 1_000), "{id}: {window:?}");
        let ids: Vec<String> = s
            .conversation(id, None, 10)
            .await
            .unwrap()
            .iter()
            .map(|i| match i {
                ConversationItem::Outbound(m) => m.id.clone(),
                ConversationItem::Inbound(m) => m.id.clone(),
            })
            .collect();
        assert_eq!(ids, ["hello", "by_bsuid", "by_phone"], "{id}");
    }
    assert_eq!(
        s.get("by_phone").await.unwrap().unwrap().person.as_deref(),
        Some(person.as_str())
    );
}

// ---------------------------------------------------------------------------------------------
// Campaigns

fn campaign_record(id: &str) -> CampaignRecord {
    CampaignRecord {
        id: id.into(),
        name: "spring".into(),
        state: CampaignState::Draft,
        reason: None,
        spec: "{}".into(),
        created_at: T0,
        updated_at: T0,
        started_at: None,
        finished_at: None,
    }
}

fn recipient(to: &str) -> NewRecipient {
    NewRecipient {
        recipient: to.into(),
        key: to.into(),
        columns: "{}".into(),
        body: Some("{}".into()),
        skip: None,
    }
}

fn release_of(row: i64, to: &str, id: &str) -> Release {
    Release {
        row,
        message: Some(NewMessage {
            to: to.into(),
            lane: Lane::Bulk,
            ..msg(id)
        }),
        skip: None,
    }
}

async fn campaigns_build_release_and_count<S: Store + Clone>(s: S) {
    s.create_campaign(campaign_record("cmp1")).await.unwrap();
    let rows = s
        .add_recipients(
            "cmp1",
            vec![
                recipient("4915100000001"),
                recipient("4915100000002"),
                recipient("4915100000001"),
                NewRecipient {
                    skip: Some(("invalid_number".into(), "x".into())),
                    ..recipient("12ab")
                },
            ],
        )
        .await
        .unwrap();
    let status: Vec<&str> = rows.iter().map(|r| r.status.as_str()).collect();
    assert_eq!(status, ["pending", "pending", "skipped", "skipped"]);
    assert_eq!(rows[2].reason.as_deref(), Some("duplicate"));
    assert_eq!(rows.iter().map(|r| r.row).collect::<Vec<_>>(), [1, 2, 3, 4]);
    // A later batch numbers on and still sees the duplicate.
    let more = s
        .add_recipients(
            "cmp1",
            vec![recipient("4915100000002"), recipient("4915100000003")],
        )
        .await
        .unwrap();
    assert_eq!(more[0].row, 5);
    assert_eq!(more[0].reason.as_deref(), Some("duplicate"));
    assert_eq!(more[1].status, "pending");
    // Not running: nothing is released.
    let pending = s.pending_recipients("cmp1", 10).await.unwrap();
    assert_eq!(pending.iter().map(|r| r.row).collect::<Vec<_>>(), [1, 2, 6]);
    assert!(s.campaign_flow("cmp1").await.unwrap().pending);
    let n = s
        .release_recipients("cmp1", vec![release_of(1, "4915100000001", "m1")])
        .await
        .unwrap();
    assert_eq!(n, 0);
    assert!(s.get("m1").await.unwrap().is_none());
    let started = s
        .set_campaign_state(
            "cmp1",
            vec![CampaignState::Draft],
            CampaignState::Running,
            None,
            T0 + 1,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(started.state, CampaignState::Running);
    assert_eq!(started.started_at, Some(T0 + 1));
    // A move from a state it is not in changes nothing.
    assert!(
        s.set_campaign_state(
            "cmp1",
            vec![CampaignState::Paused],
            CampaignState::Running,
            None,
            T0
        )
        .await
        .unwrap()
        .is_none()
    );
    let n = s
        .release_recipients(
            "cmp1",
            vec![
                release_of(1, "4915100000001", "m1"),
                release_of(2, "4915100000002", "m2"),
                Release {
                    row: 6,
                    message: None,
                    skip: Some(("no_consent".into(), "withdrawn".into())),
                },
            ],
        )
        .await
        .unwrap();
    assert_eq!(n, 2);
    assert!(s.pending_recipients("cmp1", 10).await.unwrap().is_empty());
    // The runner's flow: nothing pending, both messages in flight.
    let flow = s.campaign_flow("cmp1").await.unwrap();
    assert!(!flow.pending);
    assert_eq!((flow.outstanding, flow.deferred, flow.held), (2, 0, 0));
    // The frequency cap sees messages of other campaigns only.
    let hit = s
        .contacted_by_campaigns(
            vec!["4915100000001".into(), "4915100000009".into()],
            "cmp2",
            T0 - 1,
        )
        .await
        .unwrap();
    assert_eq!(hit, [true, false]);
    let own = s
        .contacted_by_campaigns(vec!["4915100000001".into()], "cmp1", T0 - 1)
        .await
        .unwrap();
    assert_eq!(own, [false]);
    // Pause parks the queued messages; resume releases them; cancel cancels them.
    s.claim(T0 + 2, 1, T0 + 10_000).await.unwrap();
    s.set_campaign_state(
        "cmp1",
        vec![CampaignState::Running],
        CampaignState::Paused,
        Some("hand".into()),
        T0 + 3,
    )
    .await
    .unwrap()
    .unwrap();
    let m2 = s.get("m2").await.unwrap().unwrap();
    assert_eq!(m2.parked_reason.as_deref(), Some("campaign:cmp1"));
    assert!(s.claim(T0 + 4, 10, T0 + 10_000).await.unwrap().is_empty());
    let counts = s.campaign_counts("cmp1").await.unwrap();
    let flow = s.campaign_flow("cmp1").await.unwrap();
    assert_eq!(flow.outstanding, 2, "queued (parked) and sending");
    assert_eq!(counts.parked, 1);
    assert_eq!(counts.messages.get("sending"), Some(&1));
    assert_eq!(counts.recipients.get("released"), Some(&2));
    assert_eq!(counts.skipped.get("duplicate"), Some(&2));
    assert_eq!(counts.skipped.get("no_consent"), Some(&1));
    s.set_campaign_state(
        "cmp1",
        vec![CampaignState::Paused],
        CampaignState::Running,
        None,
        T0 + 5,
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(s.get("m2").await.unwrap().unwrap().parked_reason, None);
    let c = s
        .set_campaign_state(
            "cmp1",
            vec![CampaignState::Running],
            CampaignState::Cancelled,
            None,
            T0 + 6,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.finished_at, Some(T0 + 6));
    assert_eq!(
        s.get("m2").await.unwrap().unwrap().state,
        MessageState::Cancelled
    );
    assert_eq!(
        s.get("m1").await.unwrap().unwrap().state,
        MessageState::Sending
    );
    let listed = s
        .campaign_recipients("cmp1", Some("cancelled".into()), 0, 10)
        .await
        .unwrap();
    assert_eq!(listed.iter().map(|r| r.row).collect::<Vec<_>>(), [2]);
    let page = s.campaign_recipients("cmp1", None, 2, 2).await.unwrap();
    assert_eq!(page.iter().map(|r| r.row).collect::<Vec<_>>(), [3, 4]);
    let live = s
        .campaigns_in(vec![CampaignState::Running, CampaignState::Cancelled])
        .await
        .unwrap();
    assert_eq!(live.len(), 1);
}

/// A shared bucket grants at its rate up to its burst, whoever asks, and says when what was
/// asked for will be there.
async fn shared_buckets_grant_at_their_rate<S: Store + Clone>(s: S) {
    let take = |want: u32, at: Millis| {
        let s = s.clone();
        async move {
            s.take_tokens("number:pn1", 10.0, 5, want, at)
                .await
                .unwrap()
        }
    };
    // A new bucket starts full.
    assert_eq!(
        take(3, T0).await,
        Tokens {
            granted: 3,
            next_at: T0
        }
    );
    // One token short at 10/s: 100 ms.
    assert_eq!(
        take(3, T0).await,
        Tokens {
            granted: 2,
            next_at: T0 + 100
        }
    );
    assert_eq!(take(1, T0).await.granted, 0);
    // 250 ms later it holds 2.5: two go, the half stays.
    assert_eq!(
        take(5, T0 + 250).await,
        Tokens {
            granted: 2,
            next_at: T0 + 500
        }
    );
    // A clock that goes back refills nothing; a long idle refills up to the burst only.
    assert_eq!(take(1, T0).await.granted, 0);
    assert_eq!(take(100, T0 + 3_600_000).await.granted, 5);
    // Another key is another bucket.
    let other = s.take_tokens("number:pn2", 10.0, 5, 5, T0).await.unwrap();
    assert_eq!(other.granted, 5);
    // Concurrent takers share what the bucket holds, never more.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.take_tokens("number:pn3", 10.0, 20, 3, T0)
                .await
                .unwrap()
                .granted
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    assert_eq!(total, 20);
}

/// `list` by template name and by a metadata key's value (compared as text).
async fn list_filters_by_template_and_metadata<S: Store + Clone>(s: S) {
    let tagged = |id: &str, meta: Option<&str>| NewMessage {
        metadata: meta.map(str::to_string),
        ..msg(id)
    };
    enqueue_all(
        &s,
        vec![
            of_template("t1", "promo", "en"),
            of_template("t2", "other", "en"),
            tagged("m1", Some(r#"{"order":"42","n":7}"#)),
            tagged("m2", Some(r#"{"order":"43"}"#)),
            tagged("m3", None),
        ],
    )
    .await;
    let by = |template: Option<&str>, meta: Option<(&str, &str)>| ListFilter {
        template: template.map(str::to_string),
        metadata: meta.map(|(k, v)| (k.to_string(), v.to_string())),
        ..ListFilter::default()
    };
    assert_eq!(ids(&s.list(by(Some("promo"), None)).await.unwrap()), ["t1"]);
    assert_eq!(
        ids(&s.list(by(None, Some(("order", "42")))).await.unwrap()),
        ["m1"]
    );
    assert_eq!(
        ids(&s.list(by(None, Some(("n", "7")))).await.unwrap()),
        ["m1"]
    );
    assert!(
        s.list(by(None, Some(("missing", "1"))))
            .await
            .unwrap()
            .is_empty()
    );
}

/// One holder of a role at a time; the role passes on when its lease ends.
async fn roles_have_one_holder_at_a_time<S: Store + Clone>(s: S) {
    assert!(s.lease_role("intake", "a", T0, T0 + 100).await.unwrap());
    assert!(
        !s.lease_role("intake", "b", T0 + 50, T0 + 150)
            .await
            .unwrap()
    );
    // The holder renews.
    assert!(
        s.lease_role("intake", "a", T0 + 90, T0 + 200)
            .await
            .unwrap()
    );
    assert!(
        !s.lease_role("intake", "b", T0 + 150, T0 + 250)
            .await
            .unwrap()
    );
    // Another role is free.
    assert!(s.lease_role("templates", "b", T0, T0 + 100).await.unwrap());
    // Once the lease ends, another instance takes it, and the first no longer holds it.
    assert!(
        s.lease_role("intake", "b", T0 + 200, T0 + 300)
            .await
            .unwrap()
    );
    assert!(
        !s.lease_role("intake", "a", T0 + 210, T0 + 310)
            .await
            .unwrap()
    );
}

macro_rules! conformance {
    ($($name:ident),+ $(,)?) => {
        mod sqlite_file {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = super::FileDb::new();
                    super::$name(db.open().await).await;
                }
            )+
        }

        mod sqlite_memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::memory().await).await;
                }
            )+
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(s) = super::postgres().await {
                        super::$name(s).await;
                    }
                }
            )+
        }
    };
}

conformance!(
    idempotency_returns_first_row,
    gated_messages_are_stored_stopped,
    records_round_trip,
    claim_order,
    retry_time_orders_claims,
    concurrent_claimers_never_share,
    lease_expiry,
    apply_batches,
    conditional_state_changes,
    statuses_apply_monotonically,
    statuses_applied_together_match_one_by_one,
    sightings_learned_together_match_one_by_one,
    a_batch_learned_and_applied_together_matches_the_calls_in_turn,
    concurrent_calls_end_as_sequential_ones,
    early_statuses_become_orphans,
    status_dedupe_is_atomic_and_spares_orphans,
    overdue_finds_undelivered_past_deadline,
    park_and_unpark_templates,
    list_filters_and_pages,
    inbox_append_pending_finish,
    prune_deletes_old_rows_in_arrival_order,
    dedupe_keys_under_concurrency,
    consents_keep_history_and_latest,
    last_inbound_keeps_max,
    templates_upsert,
    event_feed_follows_a_cursor,
    concurrent_writers_share_commits,
    inbound_messages_are_recorded_once,
    conversation_pages_newest_first,
    cancel_only_what_is_queued,
    parked_messages_expire_at_their_deadline,
    people_are_known_by_phone_bsuid_or_both,
    a_person_is_one_whichever_id_names_them,
    one_sighting_of_two_people_merges_them,
    people_made_later_sort_later,
    identity_changes_keep_the_person,
    campaigns_build_release_and_count,
    shared_buckets_grant_at_their_rate,
    roles_have_one_holder_at_a_time,
    list_filters_by_template_and_metadata,
);

/// The next wake-up, within 10 s.
async fn wait(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<()>,
) -> Result<Option<()>, tokio::time::error::Elapsed> {
    tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv()).await
}

/// PostgreSQL only: a commit of one instance wakes the followers of another on the same schema
/// (`LISTEN`/`NOTIFY`), and not those of another schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_commits_wake_other_instances() {
    let Some((url, opts)) = postgres_options() else {
        return;
    };
    let writer = PostgresStore::open(&url, opts.clone()).await.unwrap();
    let follower = PostgresStore::open(&url, opts.clone()).await.unwrap();
    let (other_url, mut other_opts) = postgres_options().unwrap();
    other_opts.schema = other_opts.schema.map(|s| format!("{s}_other"));
    let elsewhere = PostgresStore::open(&other_url, other_opts).await.unwrap();
    let (tx, mut woken) = tokio::sync::mpsc::unbounded_channel();
    let (tx2, mut woken_elsewhere) = tokio::sync::mpsc::unbounded_channel();
    follower
        .follow_changes(move || {
            let _ = tx.send(());
        })
        .unwrap();
    elsewhere
        .follow_changes(move || {
            let _ = tx2.send(());
        })
        .unwrap();
    // Once when listening starts (what was missed before is worth a look).
    wait(&mut woken).await.expect("listening").unwrap();
    wait(&mut woken_elsewhere)
        .await
        .expect("listening")
        .unwrap();
    writer.enqueue(vec![msg("m1")]).await.unwrap();
    wait(&mut woken)
        .await
        .expect("woken by the other's commit")
        .unwrap();
    writer.set_cursor("c", 1).await.unwrap();
    wait(&mut woken).await.expect("woken again").unwrap();
    assert!(
        woken_elsewhere.try_recv().is_err(),
        "another schema's commits are not this one's"
    );
    for s in [writer, follower, elsewhere] {
        s.close().await;
    }
}
/// The writer plans its statements once (generic plans) unless told otherwise: a statement's
/// plan does not depend on its values there, and planning a long `IN` list anew on every call
/// cost more than running it.
#[tokio::test]
async fn postgres_writer_plans_its_statements_once() {
    for generic in [true, false] {
        let Some((url, mut opts)) = postgres_options() else {
            return;
        };
        opts.analyze_every = None;
        opts.writer_generic_plans = generic;
        let store = PostgresStore::open(&url, opts).await.unwrap();
        for i in 0..8 {
            store.enqueue(vec![msg(&format!("p{i}"))]).await.unwrap();
        }
        let (generic_plans, custom_plans) = store.writer_plans().await.unwrap();
        if generic {
            assert_eq!(custom_plans, 0, "generic plans only");
            assert!(generic_plans >= 8, "{generic_plans} generic plans");
        } else {
            assert!(
                custom_plans >= 5,
                "PostgreSQL's default: {custom_plans} custom plans"
            );
        }
        store.close().await;
    }
}

/// A table that outgrew its planner statistics is analyzed (a fresh schema's lookups are
/// otherwise planned as sequential scans), and not again until it doubles.
#[tokio::test]
async fn postgres_analyzes_tables_that_outgrew_their_statistics() {
    let Some((url, mut opts)) = postgres_options() else {
        return;
    };
    opts.analyze_every = None;
    let opts_schema = opts.schema.clone().unwrap();
    let store = PostgresStore::open(&url, opts).await.unwrap();
    assert_eq!(
        store.analyze_grown().await.unwrap(),
        Vec::<String>::new(),
        "a fresh schema has nothing big enough"
    );
    for chunk in 0..15 {
        let batch: Vec<NewMessage> = (0..100).map(|i| msg(&format!("m{chunk}-{i}"))).collect();
        store.enqueue(batch).await.unwrap();
    }
    let first = store.analyze_grown().await.unwrap();
    assert!(first.iter().any(|t| t == "messages"), "{first:?}");
    assert_eq!(
        store.analyze_grown().await.unwrap(),
        Vec::<String>::new(),
        "analyzed at this size already"
    );
    store.close().await;
    // With a small sample: a histogram of at most 11 bounds (PostgreSQL's default target takes
    // up to 101 of the 1,500 distinct ids).
    let schema = opts_schema.clone();
    let bounds = tokio::task::spawn_blocking(move || {
        let mut client = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
        let row = client
            .query_one(
                "SELECT cardinality(histogram_bounds::text::text[]) FROM pg_stats \
                 WHERE schemaname = $1 AND tablename = 'messages' AND attname = 'id'",
                &[&schema],
            )
            .unwrap();
        let bounds: Option<i32> = row.get(0);
        client
            .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .unwrap();
        bounds
    })
    .await
    .unwrap();
    assert!(
        bounds.is_some_and(|b| (2..=11).contains(&b)),
        "histogram bounds of messages.id: {bounds:?}"
    );
}
