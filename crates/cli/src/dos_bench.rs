//! `wvo bench-dos`: floods the status API's what-if endpoint and measures what it costs the
//! controller (docs/controller.md, "Status API under load").
//!
//! The API emulator runs in this process with the `wvo bench-scale` world (N VAs). The
//! controller is `wvo run` in a child process (this binary, or `--controller-exe` to measure
//! another build), with its status API on a loopback port. After its first cycle, `--clients`
//! clients post `--models`-model what-if bodies (`options.solver` from `--solver`) back to
//! back for `--seconds`, never backing off (a 429's `Retry-After` is not honoured). Meanwhile
//! the child's resident memory is read from `/proc/<pid>/status` and its completed cycles
//! from `/metrics` (`wvo_cycles_total`, `wvo_last_cycle_timestamp_seconds`).

use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// `wvo bench-dos` flags.
#[derive(clap::Args, Debug)]
pub struct DosBenchArgs {
    /// VariantAutoscalings in the emulated cluster (the `bench-scale` world).
    #[arg(long, default_value_t = 300)]
    pub vas: usize,
    /// Concurrent clients posting what-if bodies.
    #[arg(long, default_value_t = 40)]
    pub clients: usize,
    /// Models in each what-if body (two variants each, on a scarce inventory).
    #[arg(long, default_value_t = 5000)]
    pub models: usize,
    /// `options.solver` of the bodies: auto, exact or fast.
    #[arg(long, default_value = "exact")]
    pub solver: String,
    /// Seconds of flooding.
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// The controller's `--interval-seconds`.
    #[arg(long, default_value_t = 2)]
    pub interval_seconds: u64,
    /// Post this file as the body instead of the generated `--models` input (e.g. a
    /// worst case for the parser).
    #[arg(long)]
    pub body_file: Option<std::path::PathBuf>,
    /// The `wvo` binary to run as the controller (default: this one), e.g. an older build
    /// to compare with.
    #[arg(long)]
    pub controller_exe: Option<std::path::PathBuf>,
    /// `table` or `json`.
    #[arg(long, default_value = "table")]
    pub output: String,
}

/// What one run measured (`--output json`: camelCase fields).
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DosFigures {
    /// VAs in the cluster.
    pub vas: usize,
    /// Flooding clients.
    pub clients: usize,
    /// Models per what-if body.
    pub models_per_body: usize,
    /// Size of one body, bytes.
    pub body_bytes: usize,
    /// The body's file when `--body-file` was given (else the generated input).
    pub body_file: Option<String>,
    /// Seconds of flooding.
    pub seconds: f64,
    /// Answers by HTTP status code; `timeout`: none within the client's 120 s; `error`: the
    /// connection closed before an answer could be read (the server answered early, e.g.
    /// 429, and closed while the body was still being sent).
    pub requests: BTreeMap<String, usize>,
    /// 429 and 503 answers without a `Retry-After` header.
    pub retry_after_missing: usize,
    /// Controller RSS just before the flood, MiB.
    pub rss_before_mib: f64,
    /// Highest controller RSS sampled during the flood (every 100 ms), MiB.
    pub rss_max_mib: f64,
    /// Controller peak RSS over its life (`VmHWM`), MiB.
    pub peak_rss_mib: f64,
    /// The controller's `--interval-seconds`.
    pub interval_seconds: f64,
    /// Cycles completed during the flood.
    pub cycles: usize,
    /// Intervals between completed cycles during the flood: mean, median, longest, s.
    pub cycle_period_mean: f64,
    /// Median interval between completed cycles, s.
    pub cycle_period_p50: f64,
    /// Longest interval between completed cycles, s.
    pub cycle_period_max: f64,
    /// The longest what-if solve as the controller measured it
    /// (`wvo_whatif_longest_solve_seconds`; None where the controller has no such metric).
    pub longest_solve_seconds: Option<f64>,
    /// The longest `solveMillis` among the 200 answers, ms.
    pub longest_solve_millis: f64,
    /// The longest time a client waited for any answer, s.
    pub longest_request_seconds: f64,
    /// Whether the controller was still running (and answering /healthz) at the end.
    pub alive: bool,
}

/// Runs `wvo bench-dos`.
pub fn run(args: &DosBenchArgs) -> Result<ExitCode> {
    if !matches!(args.output.as_str(), "table" | "json") {
        bail!("--output {}: use table or json", args.output);
    }
    if !matches!(args.solver.as_str(), "auto" | "exact" | "fast") {
        bail!("--solver {}: use auto, exact or fast", args.solver);
    }
    if args.vas == 0 || args.clients == 0 || args.models == 0 || args.seconds == 0 {
        bail!("--vas, --clients, --models and --seconds: give values above 0");
    }
    wvo_collector::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let figures = runtime.block_on(measure(args))?;
    let text = if args.output == "json" {
        serde_json::to_string_pretty(&figures)? + "\n"
    } else {
        table(&figures)
    };
    // An error (a reader that left: broken pipe) is returned, not a panic.
    std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// The figures as lines for people.
fn table(f: &DosFigures) -> String {
    use std::fmt::Write as _;
    let mut text = String::new();
    let what = match &f.body_file {
        Some(file) => format!("{file} bodies"),
        None => format!("{}-model bodies", f.models_per_body),
    };
    let _ = writeln!(
        text,
        "{} clients x {what} ({:.2} MiB) for {:.0} s against a {}-VA cluster",
        f.clients,
        f.body_bytes as f64 / 1_048_576.0,
        f.seconds,
        f.vas
    );
    let by_code: Vec<String> = f
        .requests
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    let _ = writeln!(
        text,
        "answers        {} (429/503 without Retry-After: {})",
        by_code.join(", "),
        f.retry_after_missing
    );
    let _ = writeln!(
        text,
        "controller RSS before {:.1} MiB, max during flood {:.1} MiB, peak {:.1} MiB",
        f.rss_before_mib, f.rss_max_mib, f.peak_rss_mib
    );
    let _ = writeln!(
        text,
        "cycle period   {} cycles, mean {:.2} s, p50 {:.2} s, max {:.2} s (interval {:.0} s)",
        f.cycles, f.cycle_period_mean, f.cycle_period_p50, f.cycle_period_max, f.interval_seconds
    );
    let _ = writeln!(
        text,
        "longest solve  {} (server), {:.0} ms (solveMillis of a 200); longest request {:.1} s",
        f.longest_solve_seconds
            .map_or_else(|| "n/a".to_string(), |s| format!("{s:.2} s")),
        f.longest_solve_millis,
        f.longest_request_seconds
    );
    let _ = writeln!(
        text,
        "controller     {}",
        if f.alive { "alive" } else { "DOWN" }
    );
    text
}

/// A what-if body: `models` models with an H100 and an L40S variant each, on an inventory
/// half of what they want (scarce, the exact path's hardest case).
fn whatif_body(models: usize, solver: &str) -> String {
    let specs: Vec<serde_json::Value> = (0..models)
        .map(|i| {
            serde_json::json!({
                "name": format!("dos-{i}"),
                "variants": [
                    {"name": "h100", "accelerator": "H100", "maxRequestsPerSecond": 10.0},
                    {"name": "l40s", "accelerator": "L40S", "maxRequestsPerSecond": 3.0}
                ]
            })
        })
        .collect();
    let load: serde_json::Map<String, serde_json::Value> = (0..models)
        .map(|i| {
            (
                format!("dos-{i}"),
                serde_json::json!({"arrivalRate": 5.0 + (i % 7) as f64}),
            )
        })
        .collect();
    let count = (models / 2).max(1);
    serde_json::json!({
        "inventory": [
            {"name": "H100", "count": count, "costPerHour": 4.1},
            {"name": "L40S", "count": count, "costPerHour": 1.3}
        ],
        "models": specs,
        "load": load,
        "options": {"solver": solver}
    })
    .to_string()
}

/// Resident and peak resident memory of a process, bytes (0 when unreadable).
fn rss_of(pid: u32) -> (u64, u64) {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return (0, 0);
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The value of an unlabelled series in an OpenMetrics text.
fn series(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

const MIB: f64 = 1_048_576.0;

/// What the flooding clients saw.
#[derive(Default)]
struct Tally {
    requests: BTreeMap<String, usize>,
    retry_after_missing: usize,
    longest_solve_millis: f64,
    longest_request_seconds: f64,
}

/// The `solveMillis` of a plan answer.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SolveMillis {
    solve_millis: f64,
}

async fn measure(args: &DosBenchArgs) -> Result<DosFigures> {
    let (api, _pods) = crate::scale_bench::seeded_world(args.vas).await?;
    let dir = std::env::temp_dir().join(format!("wvo-bench-dos-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, api.kubeconfig_yaml())
        .with_context(|| format!("writing {}", kubeconfig.display()))?;
    let result = flood(args, &kubeconfig).await;
    let _ = std::fs::remove_dir_all(&dir);
    api.shutdown().await;
    result
}

async fn flood(args: &DosBenchArgs, kubeconfig: &std::path::Path) -> Result<DosFigures> {
    // A free loopback port for the child's status API.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context("finding a free port")?
        .port();
    let exe = match &args.controller_exe {
        Some(path) => path.clone(),
        None => std::env::current_exe().context("finding this binary")?,
    };
    let mut child = tokio::process::Command::new(&exe)
        .arg("run")
        .arg("--no-leader-election")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--interval-seconds")
        .arg(args.interval_seconds.to_string())
        .env("KUBECONFIG", kubeconfig)
        .env("RUST_LOG", "error")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting the controller {}", exe.display()))?;
    let pid = child.id().context("the controller's pid")?;
    let base = format!("http://127.0.0.1:{port}");
    let probe = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    // Ready: the first cycle completed.
    let ready_by = Instant::now() + Duration::from_secs(300);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            bail!("the controller exited before its first cycle ({status})");
        }
        let ready = probe.get(format!("{base}/readyz")).send().await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        if Instant::now() > ready_by {
            bail!("the controller was not ready within 300 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (rss_before, _) = rss_of(pid);

    // One shared buffer: each request's clone is a reference, not a copy.
    let body = match &args.body_file {
        Some(path) => axum::body::Bytes::from(
            std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        ),
        None => axum::body::Bytes::from(whatif_body(args.models, &args.solver)),
    };
    let body_bytes = body.len();
    let tally = Arc::new(Mutex::new(Tally::default()));
    let flood_start = unix_now();
    let end = Instant::now() + Duration::from_secs(args.seconds);
    let mut clients = Vec::with_capacity(args.clients);
    for _ in 0..args.clients {
        let (body, tally, url) = (body.clone(), tally.clone(), format!("{base}/api/v1/whatif"));
        clients.push(tokio::spawn(async move {
            let Ok(client) = reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
            else {
                return;
            };
            while Instant::now() < end {
                let sent = Instant::now();
                let answer = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                let (code, retry_after, solve_millis) = match answer {
                    Ok(r) => {
                        let code = r.status().as_u16();
                        let retry_after = r.headers().contains_key("retry-after");
                        let millis = if code == 200 {
                            r.bytes()
                                .await
                                .ok()
                                .and_then(|b| serde_json::from_slice::<SolveMillis>(&b).ok())
                                .map(|s| s.solve_millis)
                        } else {
                            let _ = r.bytes().await;
                            None
                        };
                        (code.to_string(), retry_after, millis)
                    }
                    // No answer: the client's timeout, or the connection closed under a
                    // body still being sent (an early 429 or 413 is not read through).
                    Err(e) if e.is_timeout() => ("timeout".to_string(), true, None),
                    Err(_) => ("error".to_string(), true, None),
                };
                let took = sent.elapsed().as_secs_f64();
                let mut t = tally.lock().unwrap_or_else(|p| p.into_inner());
                if (code == "429" || code == "503") && !retry_after {
                    t.retry_after_missing += 1;
                }
                *t.requests.entry(code).or_default() += 1;
                t.longest_request_seconds = t.longest_request_seconds.max(took);
                if let Some(ms) = solve_millis {
                    t.longest_solve_millis = t.longest_solve_millis.max(ms);
                }
            }
        }));
    }

    // Sample memory and completed cycles while the clients run.
    let mut rss_max = rss_before;
    let mut cycles: Vec<(u64, f64)> = Vec::new();
    while Instant::now() < end {
        rss_max = rss_max.max(rss_of(pid).0);
        if let Some((count, at)) = cycle_mark(&probe, &base).await {
            if cycles.last().is_none_or(|&(c, _)| c != count) {
                cycles.push((count, at));
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let flood_end = unix_now();
    // Answers still in flight are counted (up to the clients' 120 s timeout).
    for c in clients {
        let _ = c.await;
    }
    rss_max = rss_max.max(rss_of(pid).0);
    if let Some((count, at)) = cycle_mark(&probe, &base).await {
        if cycles.last().is_none_or(|&(c, _)| c != count) {
            cycles.push((count, at));
        }
    }
    let (_, peak) = rss_of(pid);
    let metrics = probe
        .get(format!("{base}/metrics"))
        .send()
        .await
        .ok()
        .map(|r| r.text());
    let metrics = match metrics {
        Some(text) => text.await.ok(),
        None => None,
    };
    let longest_solve_seconds = metrics
        .as_deref()
        .and_then(|t| series(t, "wvo_whatif_longest_solve_seconds"));
    let healthy = probe
        .get(format!("{base}/healthz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success());
    let alive = healthy && matches!(child.try_wait(), Ok(None));
    let _ = child.kill().await;

    let periods = cycle_periods(&cycles, flood_start, flood_end);
    let completed = cycles
        .iter()
        .filter(|&&(_, at)| at >= flood_start && at <= flood_end)
        .count();
    let mut sorted = periods.clone();
    sorted.sort_by(f64::total_cmp);
    let tally = Arc::try_unwrap(tally)
        .map(|m| m.into_inner().unwrap_or_else(|p| p.into_inner()))
        .unwrap_or_default();
    Ok(DosFigures {
        vas: args.vas,
        clients: args.clients,
        models_per_body: args.models,
        body_bytes,
        body_file: args.body_file.as_ref().map(|p| p.display().to_string()),
        seconds: args.seconds as f64,
        requests: tally.requests,
        retry_after_missing: tally.retry_after_missing,
        rss_before_mib: rss_before as f64 / MIB,
        rss_max_mib: rss_max as f64 / MIB,
        peak_rss_mib: peak as f64 / MIB,
        interval_seconds: args.interval_seconds as f64,
        cycles: completed,
        cycle_period_mean: if sorted.is_empty() {
            0.0
        } else {
            sorted.iter().sum::<f64>() / sorted.len() as f64
        },
        cycle_period_p50: sorted.get(sorted.len() / 2).copied().unwrap_or(0.0),
        cycle_period_max: sorted.last().copied().unwrap_or(0.0),
        longest_solve_seconds,
        longest_solve_millis: tally.longest_solve_millis,
        longest_request_seconds: tally.longest_request_seconds,
        alive,
    })
}

/// `wvo_cycles_total` and `wvo_last_cycle_timestamp_seconds` now (None when /metrics does
/// not answer within the probe's timeout).
async fn cycle_mark(probe: &reqwest::Client, base: &str) -> Option<(u64, f64)> {
    let text = probe
        .get(format!("{base}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let count = series(&text, "wvo_cycles_total")? as u64;
    let at = series(&text, "wvo_last_cycle_timestamp_seconds")?;
    Some((count, at))
}

/// Intervals between completed cycles that ended during the flood (the first measured from
/// the last cycle before it). When several cycles ended between two samples, their span is
/// split evenly among them.
fn cycle_periods(marks: &[(u64, f64)], start: f64, end: f64) -> Vec<f64> {
    let mut periods = Vec::new();
    for pair in marks.windows(2) {
        let ((c0, t0), (c1, t1)) = (pair[0], pair[1]);
        if t1 < start || t1 > end || c1 <= c0 {
            continue;
        }
        let n = c1 - c0;
        for _ in 0..n {
            periods.push((t1 - t0) / n as f64);
        }
    }
    periods
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_reads_unlabelled_values_only() {
        let text = "# TYPE wvo_cycles counter\nwvo_cycles_total 7\nwvo_cycles_total_x 9\nwvo_last_cycle_timestamp_seconds 1.5e9\n";
        assert_eq!(series(text, "wvo_cycles_total"), Some(7.0));
        assert_eq!(
            series(text, "wvo_last_cycle_timestamp_seconds"),
            Some(1.5e9)
        );
        assert_eq!(series(text, "wvo_missing"), None);
    }

    #[test]
    fn missed_cycles_share_their_span() {
        let marks = [(1, 100.0), (2, 102.0), (5, 110.0), (6, 200.0)];
        assert_eq!(
            cycle_periods(&marks, 101.0, 150.0),
            vec![2.0, 8.0 / 3.0, 8.0 / 3.0, 8.0 / 3.0]
        );
    }
}
