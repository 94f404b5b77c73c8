//! `mynah gateway` and `mynah serve` on a data directory whose gateway database is damaged, empty
//! or another program's: they refuse to start, naming the file and what to do, and leave it as
//! it was.
#![cfg(unix)]

mod common;

use common::{Scratch, free_port};
use std::process::Command;

fn start(args: &[String]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mynah"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("mynah runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn damaged_gateway_databases_stop_the_start_with_a_clear_message() {
    let dir = Scratch::new("damaged", "gateway");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let db = data.join("gateway.db");
    for (what, bytes, says) in [
        ("empty", Vec::new(), "empty"),
        (
            "text",
            b"id;name\n1;Ana\n".to_vec(),
            "not an SQLite database",
        ),
        ("garbage", vec![0xA5; 8192], "not an SQLite database"),
    ] {
        std::fs::write(&db, &bytes).unwrap();
        let gateway = vec![
            "gateway".to_string(),
            "--data-dir".to_string(),
            data.display().to_string(),
            "--listen".to_string(),
            format!("127.0.0.1:{}", free_port()),
            "--app-secret".to_string(),
            "s".to_string(),
        ];
        let (ok, err) = start(&gateway);
        assert!(!ok, "{what}: the gateway started");
        assert!(
            err.contains(&db.display().to_string()) && err.contains(says),
            "{what}: {err}"
        );
        assert_eq!(std::fs::read(&db).unwrap(), bytes, "{what}: left as it was");
        let serve = vec![
            "serve".to_string(),
            "--data-dir".to_string(),
            data.display().to_string(),
            "--listen".to_string(),
            format!("127.0.0.1:{}", free_port()),
            "--gateway-listen".to_string(),
            format!("127.0.0.1:{}", free_port()),
        ];
        let (ok, err) = start(&serve);
        assert!(!ok, "{what}: serve started");
        assert!(err.contains(&db.display().to_string()), "{what}: {err}");
    }
}
