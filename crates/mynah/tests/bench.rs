//! `mynah bench --url` against a running sandbox with its default limits: the 429s it meets are
//! counted and obeyed (its connections wait as `Retry-After` says and go on), never fatal.
#![cfg(unix)]

mod common;

use common::{Proc, Scratch, free_port, log_file};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn bench_against_a_limited_sandbox_counts_and_obeys_429() {
    let dir = Scratch::new("bench", "url");
    let port = free_port();
    let sandbox = Command::new(env!("CARGO_BIN_EXE_mynah"))
        .args(["sandbox", "--ephemeral", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(log_file(&dir.0, "sandbox.out"))
        .stderr(log_file(&dir.0, "sandbox.log"))
        .spawn()
        .expect("mynah sandbox starts");
    let _sandbox = Proc::new(sandbox);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the sandbox never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
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
