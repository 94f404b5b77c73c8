//! PostgreSQL restarted while the store is writing: calls during the outage fail (the caller
//! retries, as the HTTP API and the dispatcher do), the store reconnects by itself, and nothing
//! that was acknowledged is lost. The test starts a scratch cluster of its own (`initdb`, as the
//! `postgres` user when run as root), so it runs where PostgreSQL's binaries are: with
//! `MYNAH_PG_TESTS=1` (CI) it fails without them, otherwise it is skipped.
#![cfg(unix)]

use mynah_gateway::clock::Millis;
use mynah_gateway::model::{Category, Lane, MessageState};
use mynah_gateway::store::postgres::{PostgresOptions, PostgresStore};
use mynah_gateway::store::{NewMessage, Store};
use std::time::{Duration, Instant};

#[path = "support/pg_cluster.rs"]
mod pg_cluster;
use pg_cluster::{Cluster, pg_bin};

const T0: Millis = 1_700_000_000_000;

fn message(n: usize) -> NewMessage {
    NewMessage {
        id: format!("r{n}"),
        idempotency_key: Some(format!("k{n}")),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_loses_nothing_acknowledged_and_the_store_reconnects() {
    let required = std::env::var("MYNAH_PG_TESTS").is_ok_and(|v| v == "1");
    let Some(bin) = pg_bin() else {
        assert!(
            !required,
            "MYNAH_PG_TESTS=1 but no PostgreSQL binaries were found"
        );
        eprintln!("skipped: no PostgreSQL binaries (initdb)");
        return;
    };
    let cluster = tokio::task::spawn_blocking(move || Cluster::start(bin))
        .await
        .expect("cluster");
    let store = PostgresStore::open(&cluster.url(), PostgresOptions::default())
        .await
        .expect("open");
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut failures = 0;
            let deadline = Instant::now() + Duration::from_secs(60);
            for n in 0..600 {
                // Retried until acknowledged, with its idempotency key (as an app would).
                loop {
                    match store.enqueue(vec![message(n)]).await {
                        Ok(_) => break,
                        Err(_) => {
                            failures += 1;
                            assert!(Instant::now() < deadline, "no reconnection in 60 s");
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
                acked.push(format!("r{n}"));
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            (acked, failures)
        })
    };
    // Restart the server while the writes go on.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.ctl(&["restart"]);
        cluster
    })
    .await
    .expect("restart");
    let (acked, failures) = writer.await.expect("writer");
    assert!(
        failures > 0,
        "the restart interrupted nothing: the test tested nothing"
    );
    for id in &acked {
        assert!(
            store.get(id).await.expect("read").is_some(),
            "{id} was acknowledged but is gone after the restart"
        );
    }
    // Reads reconnect too, and the rows are all there once.
    let all = store
        .list(mynah_gateway::store::ListFilter {
            limit: 10_000,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(all.len(), acked.len());
    store.close().await;
    drop(cluster);
}
