//! `mynah campaign …` against a real `mynah serve`: create from a CSV file (streamed up), start,
//! follow to the end with plain lines (not a terminal), and pause, resume, cancel; bad input and
//! an unreachable gateway are clear errors.
#![cfg(unix)]

mod common;

use common::{Proc, Scratch, free_port, serve_args, spawn_mynah};
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

/// Runs `mynah campaign …` against `gw`.
async fn campaign(gw: &str, args: &[&str]) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_mynah"));
    cmd.arg("campaign")
        .args(args)
        .env("MYNAH_GATEWAY_URL", gw)
        .env_remove("MYNAH_GATEWAY_KEY")
        .env_remove("RUST_LOG");
    tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking(move || cmd.output().expect("mynah runs")),
    )
    .await
    .expect("mynah campaign ended within 60 s")
    .expect("joined")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}

async fn serve(dir: &Path) -> (Proc, String) {
    let (sb_port, gw_port) = (free_port(), free_port());
    let cfg = dir.join("gateway.toml");
    std::fs::write(&cfg, "[gates]\nconsent = false\n").unwrap();
    let mut args = serve_args(dir, sb_port, gw_port);
    args.extend(["--gateway-config".to_string(), cfg.display().to_string()]);
    let proc = spawn_mynah(dir, "serve", args);
    let gw = format!("http://127.0.0.1:{gw_port}");
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http.get(format!("{gw}/readyz")).send().await
            && r.status() == 200
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway was not ready in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (proc, gw)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_is_created_from_a_csv_followed_to_the_end_and_controlled() {
    let dir = Scratch::new("campaign-cli", "run");
    let (_serve, gw) = serve(&dir.0).await;
    let csv = dir.join("spring.csv");
    let mut rows = String::from("to,first_name\n");
    for i in 0..12 {
        rows.push_str(&format!("49151790{i:05},N{i}\n"));
    }
    rows.push_str("not a number,x\n");
    std::fs::write(&csv, rows).unwrap();
    let out = campaign(
        &gw,
        &[
            "create",
            "--template",
            "hello_world",
            "--language",
            "en_US",
            "--audience",
            csv.to_str().unwrap(),
            "--rate-share",
            "0.5",
            "--start",
        ],
    )
    .await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let id = stdout.lines().next().unwrap().trim().to_string();
    assert!(id.starts_with("cmp_"), "{stdout}");
    assert!(stdout.contains("invalid_number 1"), "{stdout}");
    assert!(
        stdout.contains("\"spring\""),
        "the file's name names it: {stdout}"
    );
    // Followed to the end: not a terminal, so plain lines, the last one finished.
    let out = campaign(&gw, &["status", &id, "--follow", "--every-ms", "100"]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        !stdout.contains('\r'),
        "no progress bar off a terminal: {stdout:?}"
    );
    let last = stdout.lines().last().unwrap();
    assert!(last.contains(" finished: 13/13 done"), "{stdout}");
    assert!(last.contains("1 skipped"), "{stdout}");
    // A scheduled campaign: paused, resumed, cancelled by hand.
    let out = campaign(
        &gw,
        &[
            "create",
            "--template",
            "hello_world",
            "--audience",
            csv.to_str().unwrap(),
            "--name",
            "later",
            "--start-at",
            "2099-01-01T09:00:00Z",
            "--start",
        ],
    )
    .await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let later = stdout.lines().next().unwrap().trim().to_string();
    assert!(stdout.contains(&format!("{later} scheduled")), "{stdout}");
    for (action, state) in [
        ("pause", "paused"),
        ("resume", "scheduled"),
        ("cancel", "cancelled"),
    ] {
        let out = campaign(&gw, &[action, &later]).await;
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{action}: {stdout}\n{stderr}");
        assert!(stdout.contains(&format!("{later} {state}")), "{stdout}");
    }
    // A control the state does not allow, an unknown campaign, a missing file, no gateway.
    let out = campaign(&gw, &["resume", &later]).await;
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("409") && stderr.contains("campaign_state"),
        "{stderr}"
    );
    let out = campaign(&gw, &["status", "cmp_nothing"]).await;
    assert!(!out.status.success());
    assert!(text(&out).1.contains("404"), "{:?}", text(&out));
    let out = campaign(
        &gw,
        &[
            "create",
            "--template",
            "hello_world",
            "--audience",
            "/nonexistent.csv",
        ],
    )
    .await;
    assert!(!out.status.success());
    assert!(
        text(&out).1.contains("cannot read the audience"),
        "{:?}",
        text(&out)
    );
    let nobody = format!("http://127.0.0.1:{}", free_port());
    let out = campaign(&nobody, &["status", &id]).await;
    assert!(!out.status.success());
    assert!(text(&out).1.contains("did not answer"), "{:?}", text(&out));
}
