//! `wvo observe` end to end: the real binary against emulated vLLM servers
//! (`wvo_sim::model_server`) on 127.0.0.1 under a known in-process load, a closed port,
//! and bad flags. Every wait is on a condition with a deadline; the child is killed if it
//! outlives its deadline.

use serde_json::Value;
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use wvo_api::Profile;
use wvo_sim::model_server::paced::{finished_between, paced_load, FinishedLog};
use wvo_sim::model_server::{MetricsFlavor, ModelServer, ReplicaConfig, ServerConfig};

mod common;
use common::free_port;

/// What a finished `wvo` run printed.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

/// Runs the `wvo` binary with `args`; kills it and panics after `deadline`.
fn wvo(args: &[&str], deadline: Duration) -> Run {
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wvo"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn wvo");
    // Drain the pipes on threads so a large output cannot block the child.
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = loop {
        match child.try_wait().expect("wait wvo") {
            Some(status) => break status,
            None if start.elapsed() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("wvo {args:?} still running after {deadline:?}: killed");
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    Run {
        code: status.code(),
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
        elapsed: start.elapsed(),
    }
}

/// Runs `wvo` off the async runtime so the emulated servers keep serving meanwhile.
async fn wvo_async(args: Vec<String>, deadline: Duration) -> Run {
    tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        wvo(&a, deadline)
    })
    .await
    .expect("wvo runner")
}

fn profile() -> Profile {
    // Fast replica: ~15 ms prefill, 5 ms + 0.1 ms x batch per token.
    Profile {
        alpha: 5.0,
        beta: 0.1,
        gamma: 10.0,
        delta: 0.02,
        max_batch_size: 64,
    }
}

async fn server(model: &str, flavor: MetricsFlavor) -> Arc<ModelServer> {
    let mut replica = ReplicaConfig::new(model, profile());
    replica.flavor = flavor;
    Arc::new(
        ModelServer::start(ServerConfig {
            replica,
            speed: 1.0,
        })
        .await
        .expect("emulated server"),
    )
}

/// Completions per second in `[from, to]`.
fn served_rate(log: &FinishedLog, from: Instant, to: Instant) -> f64 {
    finished_between(log, from, to).len() as f64 / to.duration_since(from).as_secs_f64()
}

/// 128 prompt and 16 output tokens per request.
fn start_load(server: Arc<ModelServer>, rps: f64, max: u32, log: FinishedLog) -> JoinHandle<()> {
    paced_load(server, rps, max, vec![(128, 16)], log)
}

fn known(fig: &Value) -> Option<f64> {
    (fig["state"] == "known")
        .then(|| fig["value"].as_f64())
        .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrape_json_matches_emulated_load() {
    let s = server("meta-llama/Llama-3.1-8B-Instruct", MetricsFlavor::VllmV1).await;
    let log: FinishedLog = Arc::default();
    let rps = 20.0;
    let load = start_load(s.clone(), rps, 1200, log.clone());

    // Steady state first: wait (bounded) until a second's worth of requests finished.
    let warm = Instant::now();
    while s.served().finished < 20 {
        assert!(
            warm.elapsed() < Duration::from_secs(10),
            "load did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let url = s.metrics_url();
    let args = [
        "observe",
        "--scrape",
        &url,
        "--interval",
        "3s",
        "--timeout",
        "2s",
        "-o",
        "json",
    ];
    let t0 = Instant::now();
    let run = wvo_async(
        args.iter().map(|a| a.to_string()).collect(),
        Duration::from_secs(30),
    )
    .await;
    let t1 = Instant::now();
    load.abort();
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    assert!(
        run.elapsed >= Duration::from_secs(3),
        "two scrapes 3 s apart"
    );

    let obs: Value = serde_json::from_str(&run.stdout).expect("JSON on stdout");
    assert_eq!(obs["errors"], Value::Array(vec![]), "{}", run.stdout);
    let models = obs["models"].as_array().expect("models");
    assert_eq!(models.len(), 1, "{}", run.stdout);
    let m = &models[0];
    assert_eq!(m["model"], "meta-llama/Llama-3.1-8B-Instruct");
    let v = &m["variants"][0];
    assert_eq!(v["flavors"], serde_json::json!(["vllmV1"]));

    // Arrival rate within 10% of what the emulator served while the command ran (steady
    // load, so the rate between its two scrapes is the rate over the whole run).
    let want = served_rate(&log, t0, t1);
    let got = known(&m["arrivalRateRps"]).expect("arrival rate known");
    println!("arrival rate: wvo {got:.2} req/s, served {want:.2} req/s");
    assert!(
        (got - want).abs() <= 0.10 * want,
        "arrival rate {got}, served {want}"
    );
    assert!(
        (want - rps).abs() <= 0.10 * rps,
        "the emulator kept up: {want}"
    );
    assert_eq!(m["arrivalRateRps"]["metric"], "vllm:request_success_total");
    assert_eq!(known(&m["avgInputTokens"]), Some(128.0));
    assert_eq!(known(&m["avgOutputTokens"]), Some(16.0));
    assert_eq!(known(&m["kvCapacityTokens"]), Some(116_496.0));
    assert_eq!(known(&m["readyReplicas"]), Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_is_the_default_and_lists_every_scraped_model() {
    let a = server("model-a", MetricsFlavor::VllmV1).await;
    let b = server("model-b", MetricsFlavor::VllmV0).await;
    let args = vec![
        "observe".to_string(),
        "--scrape".into(),
        a.metrics_url(),
        "--scrape".into(),
        b.metrics_url(),
        "--interval".into(),
        "200ms".into(),
        "--timeout".into(),
        "2s".into(),
    ];
    let run = wvo_async(args, Duration::from_secs(20)).await;
    // Idle servers: an arrival rate of a known 0 is an observation.
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    assert!(run.stdout.contains("MODEL"), "{}", run.stdout);
    assert!(run.stdout.contains("REQ/s"), "{}", run.stdout);
    for model in ["model-a", "model-b"] {
        let line = run
            .stdout
            .lines()
            .find(|l| l.starts_with(model) && l.contains("ALL"))
            .unwrap_or_else(|| panic!("no ALL row for {model}:\n{}", run.stdout));
        assert!(line.contains("0.00"), "idle rate is a known 0: {line}");
    }
}

#[test]
fn scrape_of_closed_port_fails_with_one_line_naming_the_url() {
    let url = format!("http://127.0.0.1:{}/metrics", free_port());
    let run = wvo(
        &[
            "observe",
            "--scrape",
            &url,
            "--interval",
            "100ms",
            "--timeout",
            "2s",
        ],
        Duration::from_secs(20),
    );
    assert_eq!(run.code, Some(1), "stdout: {}", run.stdout);
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), 1, "one line: {:?}", run.stderr);
    assert!(
        lines[0].starts_with("error: nothing observed"),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains(&url), "{}", lines[0]);
}

#[test]
fn prometheus_down_fails_with_one_short_line_naming_the_url() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let run = wvo(
        &[
            "observe",
            "--prometheus",
            &url,
            "--timeout",
            "2s",
            "-o",
            "json",
        ],
        Duration::from_secs(20),
    );
    assert_eq!(run.code, Some(1), "stdout: {}", run.stdout);
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), 1, "one line: {:?}", run.stderr);
    assert!(lines[0].contains(&url), "{}", lines[0]);
    assert!(lines[0].len() < 600, "readable, no PromQL: {}", lines[0]);
    // The JSON still says why, for scripts.
    let obs: Value = serde_json::from_str(&run.stdout).expect("JSON on stdout");
    assert!(!obs["errors"].as_array().expect("errors").is_empty());
}

#[test]
fn credentials_in_a_url_are_printed_nowhere() {
    let port = free_port();
    let prometheus = format!("http://user:s3cret@127.0.0.1:{port}/?token=hunter2");
    let scrape = format!("http://user:s3cret@127.0.0.1:{port}/metrics?access_token=hunter2");
    let runs = [
        vec!["observe", "--prometheus", &prometheus, "--timeout", "2s"],
        vec!["observe", "--prometheus", &prometheus, "-o", "json"],
        vec!["observe", "--scrape", &scrape, "--interval", "100ms"],
        vec!["observe", "--scrape", &scrape, "-o", "json"],
        vec![
            "observe",
            "--prometheus",
            "ftp://user:s3cret@host/?token=hunter2",
        ],
    ];
    for args in runs {
        let run = wvo(&args, Duration::from_secs(20));
        assert_ne!(run.code, Some(0), "{args:?} fails");
        let printed = format!("{}{}", run.stdout, run.stderr);
        assert!(
            !printed.contains("s3cret")
                && !printed.contains("user:")
                && !printed.contains("hunter2"),
            "{args:?} printed a credential: {printed}"
        );
        assert!(
            printed.contains("***@"),
            "{args:?} names the URL: {printed}"
        );
    }
}

#[test]
fn neither_source_is_a_one_line_usage_error() {
    let run = wvo(&["observe"], Duration::from_secs(10));
    assert_eq!(run.code, Some(2));
    assert_eq!(run.stderr.lines().count(), 1, "{:?}", run.stderr);
    assert!(run.stderr.contains("--prometheus") && run.stderr.contains("--scrape"));
    assert!(run.stdout.is_empty());
}

#[test]
fn both_sources_are_a_one_line_usage_error() {
    let run = wvo(
        &[
            "observe",
            "--prometheus",
            "http://127.0.0.1:9",
            "--scrape",
            "http://127.0.0.1:9/metrics",
        ],
        Duration::from_secs(10),
    );
    assert_eq!(run.code, Some(2));
    assert_eq!(run.stderr.lines().count(), 1, "{:?}", run.stderr);
    assert!(
        run.stderr.contains("cannot be used together"),
        "{}",
        run.stderr
    );
}

#[test]
fn bad_flag_values_are_rejected() {
    for args in [
        &[
            "observe",
            "--scrape",
            "http://127.0.0.1:9/metrics",
            "--timeout",
            "5x",
        ][..],
        &["observe", "--scrape", "not a url"][..],
        &[
            "observe",
            "--prometheus",
            "http://127.0.0.1:9",
            "--window",
            "500ms",
        ][..],
        &[
            "observe",
            "--prometheus",
            "http://127.0.0.1:9",
            "-o",
            "yaml",
        ][..],
        &[
            "observe",
            "--prometheus",
            "http://127.0.0.1:9",
            "--bearer-token-file",
            "/nonexistent/token",
        ][..],
    ] {
        let run = wvo(args, Duration::from_secs(10));
        assert_eq!(run.code, Some(2), "{args:?}: {}", run.stderr);
        let first = run.stderr.lines().next().unwrap_or_default();
        assert!(first.starts_with("error:"), "{args:?}: {}", run.stderr);
    }
}

#[test]
fn help_documents_the_flags() {
    let run = wvo(&["observe", "--help"], Duration::from_secs(10));
    assert_eq!(run.code, Some(0));
    for flag in [
        "--prometheus",
        "--scrape",
        "--namespace",
        "--model",
        "--output",
        "--timeout",
        "--bearer-token-file",
        "--ca-file",
        "--window",
        "--max-age",
        "--interval",
    ] {
        assert!(run.stdout.contains(flag), "--help lacks {flag}");
    }
}
