//! `mynah sandbox` and `mynah serve` refuse to start on a data directory whose journal is not a
//! sandbox journal: they exit with an error that names the file and says what to do, and leave
//! the file as it was.

mod common;
use common::*;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `mynah` with `args` until it exits (at most 30 s); returns success and standard error.
fn run(dir: &Path, args: &[String]) -> (bool, String) {
    let child = Command::new(env!("CARGO_BIN_EXE_mynah"))
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(log_file(dir, "mynah.out"))
        .stderr(log_file(dir, "mynah.log"))
        .spawn()
        .expect("mynah starts");
    let mut proc = Proc::new(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = proc.try_wait() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "mynah did not exit: it started on a damaged journal"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let log = std::fs::read_to_string(dir.join("mynah.log")).unwrap_or_default();
    (status, log)
}

#[test]
fn the_binary_refuses_a_damaged_journal() {
    let scratch = Scratch::new("damaged", "binary");
    let data = scratch.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let db = data.join("sandbox.db");
    for (what, content) in [
        ("zero-length", Vec::new()),
        ("text", b"hello, this is not a database\n".repeat(20)),
        (
            "garbage",
            (0..20_000u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
                .collect(),
        ),
    ] {
        std::fs::write(&db, &content).unwrap();
        for command in ["sandbox", "serve"] {
            let mut args = vec![
                command.to_string(),
                "--data-dir".to_string(),
                data.display().to_string(),
                "--listen".to_string(),
                format!("127.0.0.1:{}", free_port()),
            ];
            if command == "serve" {
                args.push("--gateway-listen".to_string());
                args.push(format!("127.0.0.1:{}", free_port()));
            }
            let _ = std::fs::remove_file(scratch.join("mynah.log"));
            let (ok, log) = run(&scratch.0, &args);
            assert!(
                !ok,
                "{command} on a {what} journal exited successfully: {log}"
            );
            assert!(
                log.contains(&db.display().to_string()),
                "{command}, {what}: names the file: {log}"
            );
            assert!(
                log.contains("Move the file away"),
                "{command}, {what}: says what to do: {log}"
            );
            assert_eq!(
                std::fs::read(&db).unwrap(),
                content,
                "{command}, {what}: the file is untouched"
            );
        }
    }
    // Once it is moved away, the same directory starts.
    std::fs::rename(&db, scratch.join("sandbox.db.damaged")).unwrap();
    let port = free_port();
    let mut proc = spawn_mynah(
        &scratch.0,
        "fresh",
        [
            "sandbox",
            "--data-dir",
            &data.display().to_string(),
            "--listen",
            &format!("127.0.0.1:{port}"),
        ],
    );
    wait_port(port);
    proc.terminate();
}
