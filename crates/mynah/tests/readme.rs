//! Every shell example of the README that talks to a server (the `curl` blocks), run in order by
//! `bash` against a fresh `mynah serve` — the first thing a new user copies. Each `curl` must get
//! a 2xx answer (a webhook the example depends on may take a moment to be processed, so an answer
//! outside 2xx is tried again for a few seconds, as a person pasting line by line would); the
//! blocks share one shell, so a variable set by one line (`ID=…`) is there for the next.
#![cfg(unix)]

mod common;

use common::{Scratch, free_port, serve_args, spawn_mynah, wait_port};
use std::process::Command;

/// `curl` for the examples: their own flags, plus the status code; a 2xx prints the body, anything
/// else is retried for up to 5 s, then fails the script with the answer.
const PRELUDE: &str = r#"set -euo pipefail
curl() {
  local out code body i
  for i in $(seq 1 50); do
    out=$(command curl -sS -w '\n%{http_code}' "$@") || true
    code=${out##*$'\n'}
    body=${out%$'\n'*}
    if [[ "$code" =~ ^2[0-9][0-9]$ ]]; then printf '%s\n' "$body"; return 0; fi
    sleep 0.1
  done
  printf 'README example failed: curl %s\n  -> HTTP %s %s\n' "$*" "$code" "$body" >&2
  return 1
}
"#;

/// The README's shell blocks that call a server.
fn examples() -> Vec<String> {
    let readme = include_str!("../../../README.md");
    readme
        .split("```sh\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .filter(|b| b.contains("curl "))
        .map(str::to_string)
        .collect()
}

#[test]
fn every_shell_example_of_the_readme_works_against_a_fresh_serve() {
    let blocks = examples();
    assert!(blocks.len() >= 3, "the README's curl examples were found");
    let dir = Scratch::new("readme", "examples");
    let (sb_port, gw_port) = (free_port(), free_port());
    let _serve = spawn_mynah(&dir.0, "serve", serve_args(&dir.0, sb_port, gw_port));
    wait_port(gw_port);
    wait_port(sb_port);
    // The examples name the default ports; this serve has its own.
    let script = blocks
        .iter()
        .map(|b| {
            b.replace("localhost:8360", &format!("localhost:{sb_port}"))
                .replace("localhost:8361", &format!("localhost:{gw_port}"))
        })
        .collect::<Vec<_>>()
        .join("\n");
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("{PRELUDE}\n{script}"))
        .env("NO_PROXY", "*")
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the README's examples failed:\n{stderr}\n--- output ---\n{stdout}\n--- script ---\n{script}"
    );
    // What they show happened: the message went out, the user's reply is in the conversation.
    assert!(stdout.contains("\"wamid\":\"wamid."), "{stdout}");
    assert!(stdout.contains("Where is my order?"), "{stdout}");
}
