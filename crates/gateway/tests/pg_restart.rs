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
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const T0: Millis = 1_700_000_000_000;

fn pg_bin() -> Option<PathBuf> {
    if let Ok(b) = std::env::var("MYNAH_PG_BIN") {
        return Some(PathBuf::from(b));
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort();
    found.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// Runs a PostgreSQL program, as the `postgres` user when the test runs as root.
fn pg(bin: &Path, program: &str, args: &[&str]) {
    let exe = bin.join(program);
    let status = if is_root() {
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(&exe)
            .args(args)
            .status()
    } else {
        Command::new(&exe).args(args).status()
    };
    assert!(
        status.is_ok_and(|s| s.success()),
        "{program} {args:?} failed"
    );
}

/// A scratch cluster, stopped and removed when dropped.
struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
}

impl Cluster {
    fn start(bin: PathBuf) -> Cluster {
        let dir = std::env::temp_dir().join(format!("mynah-pg-restart-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch directory");
        if is_root() {
            let ok = Command::new("chown")
                .arg("postgres")
                .arg(&dir)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown postgres {}", dir.display());
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let data = dir.join("data");
        let data = data.to_string_lossy().to_string();
        pg(
            &bin,
            "initdb",
            &[
                "-D",
                &data,
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        let cluster = Cluster { bin, dir, port };
        cluster.ctl(&["start"]);
        cluster
    }

    fn ctl(&self, action: &[&str]) {
        let data = self.dir.join("data").to_string_lossy().to_string();
        let log = self.dir.join("server.log").to_string_lossy().to_string();
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.display()
        );
        let mut args = vec![
            "-D", &data, "-l", &log, "-w", "-t", "60", "-m", "fast", "-o", &opts,
        ];
        args.extend_from_slice(action);
        pg(&self.bin, "pg_ctl", &args);
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.dir.join("data").to_string_lossy().to_string();
        let exe = self.bin.join("pg_ctl");
        let args = ["-D", data.as_str(), "-m", "immediate", "stop"];
        let _ = if is_root() {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&exe)
                .args(args)
                .output()
        } else {
            Command::new(&exe).args(args).output()
        };
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

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
