//! `wvo demo` as a user runs it: the built binary, 30 s at speed 10. It must run to the
//! end and exit 0, answer on its status API while it runs, and scale replicas as the load
//! rises (read from its per-cycle lines).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod common;
use common::http_get;

/// GET on loopback with a short timeout; (status code, body).
fn get(addr: &str, path: &str) -> Option<(u16, String)> {
    http_get(
        addr.parse().ok()?,
        path,
        Duration::from_millis(500),
        Duration::from_secs(5),
    )
}

/// Desired replicas per (model, variant) in a cycle line:
/// `t=  15s | chat 4.0 req/s (seen 3.9) h100=1/1 a100=0/0 | ... | $5.00/h | SLO ...`.
fn desired(line: &str) -> BTreeMap<(String, String), u32> {
    let mut out = BTreeMap::new();
    for part in line.split(" | ").skip(1) {
        let mut words = part.split_whitespace();
        let Some(model) = words.next() else { continue };
        for w in words {
            if let Some((variant, counts)) = w.split_once('=') {
                if let Some(d) = counts.split('/').next().and_then(|d| d.parse().ok()) {
                    out.insert((model.to_string(), variant.to_string()), d);
                }
            }
        }
    }
    out
}

#[test]
fn demo_runs_serves_its_api_and_scales_with_the_load() {
    let stderr_path =
        std::env::temp_dir().join(format!("wvo-demo-test-{}.err", std::process::id()));
    let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_wvo"))
        .args([
            "demo",
            "--duration",
            "30",
            "--speed",
            "10",
            "--listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("start wvo demo");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let logs = || std::fs::read_to_string(&stderr_path).unwrap_or_default();

    // Everything within a bound: start-up (6 s of pod start-up) + 30 s + generous slack
    // for a slow machine.
    let deadline = Instant::now() + Duration::from_secs(150);
    let mut lines = Vec::new();
    let mut status_addr: Option<String> = None;
    let mut api_checked = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "timed out; output so far:\n{}\nstderr:\n{}",
            lines.join("\n"),
            logs()
        );
        match rx.recv_timeout(left.min(Duration::from_millis(500))) {
            Ok(line) => {
                if let Some(rest) = line.strip_prefix("dashboard:") {
                    let url = rest.trim();
                    let addr = url
                        .trim_start_matches("http://")
                        .trim_end_matches('/')
                        .to_string();
                    status_addr = Some(addr);
                }
                lines.push(line);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        // While it runs: probes and the models answer once the first cycle is done.
        if let (false, Some(addr)) = (api_checked, &status_addr) {
            let healthy = get(addr, "/healthz").is_some_and(|(c, _)| c == 200);
            let models = get(addr, "/api/v1/models").filter(|(c, _)| *c == 200);
            if let (true, Some((_, body))) = (healthy, models) {
                let v: serde_json::Value = serde_json::from_str(&body).expect("models JSON");
                let names: Vec<&str> = v
                    .as_array()
                    .expect("a list of models")
                    .iter()
                    .filter_map(|m| m["name"].as_str())
                    .collect();
                // Empty until the first cycle has planned.
                if !names.is_empty() {
                    assert_eq!(names, ["chat", "code", "reasoning", "summarize"], "{body}");
                    api_checked = true;
                }
            }
        }
    }
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "wvo demo did not exit; stderr:\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let all = lines.join("\n");
    assert!(
        status.success(),
        "exit {status:?}\n{all}\nstderr:\n{}",
        logs()
    );
    assert!(api_checked, "the status API never answered\n{all}");
    assert!(all.contains("kubectl --kubeconfig"), "{all}");

    let cycles: Vec<&String> = lines.iter().filter(|l| l.starts_with("t=")).collect();
    assert!(cycles.len() >= 5, "too few cycle lines:\n{all}");
    let first = desired(cycles[0]);
    assert_eq!(
        first.len(),
        9,
        "every variant of the four models: {}",
        cycles[0]
    );
    let total = |d: &BTreeMap<(String, String), u32>| d.values().sum::<u32>();
    // The load rises over the first 300 simulated seconds (the chat wave, the code step):
    // wvo adds replicas.
    let peak = cycles.iter().map(|l| total(&desired(l))).max().unwrap_or(0);
    assert!(
        peak > total(&first),
        "replicas never rose above the first cycle's {}:\n{all}",
        total(&first)
    );
    let done = lines
        .iter()
        .position(|l| l.starts_with("done:"))
        .unwrap_or_else(|| panic!("no final summary:\n{all}"));
    let requests = lines
        .get(done + 1)
        .and_then(|l| l.strip_prefix("requests "))
        .and_then(|l| l.split(':').next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(requests > 100, "too few requests served:\n{all}");
    let _ = std::fs::remove_file(&stderr_path);
}

#[test]
fn a_failed_bind_exits_1_naming_the_flag_and_leaves_no_temp_files() {
    // The port is taken; the demo's temp files go to a directory of this test's own.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let port = taken.local_addr().expect("address").port();
    let tmp = std::env::temp_dir().join(format!("wvo-demo-bind-test-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("temp dir");
    let out = Command::new(env!("CARGO_BIN_EXE_wvo"))
        .args(["demo", "--duration", "5", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .env("TMPDIR", &tmp)
        .stdin(Stdio::null())
        .output()
        .expect("run wvo demo");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.contains("--listen"), "names the flag: {stderr}");
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .expect("read temp dir")
        .flatten()
        .map(|e| e.path())
        .collect();
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(left.is_empty(), "temp files left behind: {left:?}");
}

#[test]
fn the_demo_stops_by_itself_when_its_reader_leaves() {
    // No --duration: only the closed stdout can end it (`wvo demo | head -3`).
    let tmp = std::env::temp_dir().join(format!("wvo-demo-pipe-test-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("temp dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_wvo"))
        .args(["demo", "--speed", "10", "--listen", "127.0.0.1:0"])
        .env("TMPDIR", &tmp)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wvo demo");
    drop(child.stdout.take());
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for wvo demo") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("wvo demo kept running after its stdout closed");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stderr = child
        .wait_with_output()
        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        .unwrap_or_default();
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .expect("read temp dir")
        .flatten()
        .map(|e| e.path())
        .collect();
    let _ = std::fs::remove_dir_all(&tmp);
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(left.is_empty(), "temp files left behind: {left:?}");
}
