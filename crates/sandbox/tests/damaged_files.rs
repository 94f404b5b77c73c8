//! A data directory whose journal is not a sandbox journal — an empty file, a text file, garbage,
//! another program's SQLite database, a journal damaged inside — is refused at start with an
//! error that names the file and says what to do; the file is left as it was. A journal of an
//! earlier version (unmarked) still opens.

mod common;
use common::*;

use mynah_sandbox::Sandbox;
use mynah_sandbox::store::{DB_FILE, Journal, Kind, Write};
use sqlx::{Connection, SqliteConnection};
use std::path::{Path, PathBuf};

/// A sandbox configuration on `dir`.
fn on_disk(dir: &Path) -> mynah_sandbox::config::Config {
    let mut cfg = config("");
    cfg.data_dir = Some(dir.to_path_buf());
    cfg
}

/// Opens the sandbox on `dir` and expects a refusal naming the file and what to do; the file is
/// unchanged.
async fn refused(dir: &Path, why: &str) -> String {
    let db = dir.join(DB_FILE);
    let before = std::fs::read(&db).ok();
    let err = match Sandbox::open(on_disk(dir)).await {
        Ok(_) => panic!("{why}: the sandbox started"),
        Err(e) => e,
    };
    assert!(
        err.contains(&db.display().to_string()),
        "{why}: names the file: {err}"
    );
    assert!(
        err.contains("Move the file away"),
        "{why}: says what to do: {err}"
    );
    assert!(err.contains("--data-dir"), "{why}: {err}");
    assert_eq!(
        std::fs::read(&db).ok(),
        before,
        "{why}: the file was not touched"
    );
    err
}

fn fresh(name: &str) -> PathBuf {
    let dir = temp_dir(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn sqlite(path: &Path) -> SqliteConnection {
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true);
    SqliteConnection::connect_with(&opts).await.unwrap()
}

#[tokio::test]
async fn files_that_are_not_journals_are_refused() {
    let dir = fresh("damaged-empty");
    std::fs::write(dir.join(DB_FILE), b"").unwrap();
    let err = refused(&dir, "zero-length file").await;
    assert!(err.contains("empty"), "{err}");

    let dir = fresh("damaged-text");
    std::fs::write(
        dir.join(DB_FILE),
        "# notes\nthis is a text file, not a database\n".repeat(10),
    )
    .unwrap();
    let err = refused(&dir, "text file").await;
    assert!(err.contains("not an SQLite database"), "{err}");

    let dir = fresh("damaged-garbage");
    let garbage: Vec<u8> = (0..16_384u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(dir.join(DB_FILE), garbage).unwrap();
    refused(&dir, "garbage").await;

    // Another program's SQLite database, by its tables and by its application id.
    let dir = fresh("damaged-foreign");
    {
        let mut c = sqlite(&dir.join(DB_FILE)).await;
        sqlx::query("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
            .execute(&mut c)
            .await
            .unwrap();
        sqlx::query("INSERT INTO customers (name) VALUES ('Ana')")
            .execute(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
    }
    let err = refused(&dir, "foreign tables").await;
    assert!(
        err.contains("another program") && err.contains("customers"),
        "{err}"
    );

    let dir = fresh("damaged-appid");
    {
        let mut c = sqlite(&dir.join(DB_FILE)).await;
        sqlx::query("PRAGMA application_id = 1234")
            .execute(&mut c)
            .await
            .unwrap();
        sqlx::query("CREATE TABLE entities (kind TEXT, id TEXT, data TEXT)")
            .execute(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
    }
    let err = refused(&dir, "foreign application id").await;
    assert!(err.contains("application_id 1234"), "{err}");

    // A table with the journal's name but not its columns.
    let dir = fresh("damaged-columns");
    {
        let mut c = sqlite(&dir.join(DB_FILE)).await;
        sqlx::query("CREATE TABLE entities (name TEXT)")
            .execute(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
    }
    let err = refused(&dir, "foreign columns").await;
    assert!(err.contains("entities"), "{err}");

    // A data directory that is a file.
    let dir = fresh("damaged-notdir");
    let file = dir.join("data");
    std::fs::write(&file, b"x").unwrap();
    let err = Sandbox::open(on_disk(&file)).await.err().expect("refused");
    assert!(
        err.contains("not a directory") && err.contains(&file.display().to_string()),
        "{err}"
    );
}

#[tokio::test]
async fn a_journal_damaged_inside_is_refused() {
    let dir = fresh("damaged-inside");
    {
        let (j, _) = Journal::open_sqlite(&dir, 10).await.unwrap();
        let mut writes = Vec::new();
        for i in 0..200 {
            writes.push(Write::Put {
                kind: Kind::User,
                id: format!("{i}"),
                data: format!("{{\"n\": {i}, \"pad\": \"{}\"}}", "x".repeat(200)),
            });
        }
        writes.push(Write::Blob {
            id: "m".into(),
            bytes: bytes::Bytes::from(vec![9u8; 64 * 1024]),
        });
        j.submit(writes).wait().await.unwrap();
        j.flush().await.unwrap();
    }
    // Everything into the main file, then pages 2 and on overwritten with garbage.
    let db = dir.join(DB_FILE);
    {
        let mut c = sqlite(&db).await;
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
    }
    let mut bytes = std::fs::read(&db).unwrap();
    assert!(bytes.len() > 8 * 4096, "{}", bytes.len());
    for (i, b) in bytes.iter_mut().enumerate().skip(4096) {
        *b = (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[2];
    }
    std::fs::write(&db, &bytes).unwrap();
    let err = refused(&dir, "damaged pages").await;
    assert!(
        err.contains("damaged") || err.contains("cannot read"),
        "{err}"
    );
}

#[tokio::test]
async fn journals_old_and_new_open() {
    // A journal as earlier versions wrote it: the tables, no application id.
    let dir = fresh("damaged-legacy");
    {
        let mut c = sqlite(&dir.join(DB_FILE)).await;
        for ddl in [
            "CREATE TABLE entities (kind TEXT NOT NULL, id TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (kind, id)) WITHOUT ROWID",
            "CREATE TABLE media_blobs (id TEXT PRIMARY KEY, bytes BLOB NOT NULL)",
            "CREATE TABLE webhook_attempts (seq INTEGER PRIMARY KEY AUTOINCREMENT, data TEXT NOT NULL)",
        ] {
            sqlx::query(ddl).execute(&mut c).await.unwrap();
        }
        sqlx::query("INSERT INTO entities VALUES ('meta', 'boots', '4')")
            .execute(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
    }
    let (_, mut snap) = Journal::open_sqlite(&dir, 10)
        .await
        .expect("an earlier journal opens");
    assert_eq!(
        snap.take(Kind::Meta),
        vec![("boots".to_string(), "4".to_string())]
    );
    // Marked now: it opens again, and a fresh directory opens twice.
    Journal::open_sqlite(&dir, 10).await.expect("reopens");
    let dir = temp_dir("damaged-fresh");
    let sb = Sandbox::open(on_disk(&dir))
        .await
        .expect("a fresh directory opens");
    sb.journal.flush().await.unwrap();
    drop(sb);
    Sandbox::open(on_disk(&dir)).await.expect("and again");
}
