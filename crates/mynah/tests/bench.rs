//! `mynah bench --url` against a running sandbox with its default limits: the 429s it meets are
//! counted and obeyed (its connections wait as `Retry-After` says and go on), never fatal.
#![cfg(unix)]

mod common;

use common::{Scratch, free_port, spawn_mynah, wait_port};
use std::process::Command;

#[test]
fn bench_against_a_limited_sandbox_counts_and_obeys_429() {
    let dir = Scratch::new("bench", "url");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let _sandbox = spawn_mynah(
        &dir.0,
        "sandbox",
        ["sandbox", "--ephemeral", "--listen", listen.as_str()],
    );
    wait_port(port);
    let out = Command::new(env!("CARGO_BIN_EXE_mynah"))
        .args(["bench", "--connections", "8", "--duration", "2", "--url"])
        .arg(format!("http://127.0.0.1:{port}"))
        .output()
        .expect("mynah bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let number_after = |label: &str| -> u64 {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("no `{label}` line in:\n{stdout}"));
        line[label.len()..]
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no number in {line:?}"))
    };
    // 80 messages/s per number: two seconds of 8 unpaced connections meet the limit, and the
    // connections go on sending after each 429.
    let accepted = number_after("accepted");
    let throttled = number_after("throttled");
    assert!(throttled > 0, "{stdout}");
    assert!(accepted >= 150, "the connections kept going: {stdout}");
    assert!(stdout.contains("(0 errors)"), "{stdout}");
}

/// Runs `mynah` with `args` and answers its standard output (it must succeed).
fn run_mynah(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mynah"))
        .args(args)
        .output()
        .expect("mynah runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `--data-dir` journals the in-process sandbox: `--keep-messages` bound the journal, the hot
/// set's messages are in memory, and the summary gives the journal's size.
#[test]
fn bench_with_a_data_dir_reports_the_journal() {
    let dir = Scratch::new("bench", "journal");
    let data = dir.0.join("sandbox");
    let data = data.to_str().unwrap();
    let stdout = run_mynah(&[
        "bench",
        "--connections",
        "4",
        "--duration",
        "2",
        "--data-dir",
        data,
        "--keep-messages",
        "50",
        "--hot-messages",
        "10",
    ]);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("journal"))
        .unwrap_or_else(|| panic!("no journal line in:\n{stdout}"));
    assert!(line.contains("for 50 messages kept"), "{line}");
    assert!(line.contains("10 of them in memory"), "{line}");
}

/// `--sandbox-process` runs the sandbox as a child process with the benchmark's configuration
/// (limits and rules off): every message goes through, and the child's memory is reported
/// apart.
#[test]
fn bench_gateway_can_run_the_sandbox_in_a_child_process() {
    let stdout = run_mynah(&[
        "bench-gateway",
        "--count",
        "300",
        "--connections",
        "8",
        "--sandbox-process",
    ]);
    assert!(
        stdout.contains("300 of 300 delivered and applied"),
        "{stdout}"
    );
    assert!(stdout.contains("failures 0"), "{stdout}");
    assert!(stdout.contains("the sandbox's process: peak"), "{stdout}");
    assert!(
        stdout.contains("(benchmark process: gateway, load generator)"),
        "{stdout}"
    );
}
