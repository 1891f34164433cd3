//! The dashboard in a real browser: headless Chromium (Debian's `chromium`, which `.ci/run`
//! installs) loads `/` from the status API of a controller that ran several real control
//! cycles against the emulated cluster (loads and measured latencies changing between
//! cycles), and the test reads the DOM the page's script rendered (`--dump-dom`): a polyline
//! per series and model with one point per recorded cycle, the measured attainment each
//! model's cycles give, replicas per GPU type, cost, decision times in `HH:MM:SS`, and no
//! script error. With kube authentication the page asks for a token.
//!
//! `WVO_UPDATE_SCREENSHOT=1 cargo test -p wvo-e2e --test dashboard` rewrites
//! `docs/dashboard.png` from the same page.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use wvo_controller::loads::{MeasuredLatency, ModelSignals};
use wvo_controller::view::SharedView;
use wvo_e2e::*;

/// Browser runs get this long before the test gives up on them.
const BROWSER_DEADLINE: Duration = Duration::from_secs(90);

fn chromium() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser"] {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "`chromium` is not on PATH: install it (Debian: `apt-get install -y chromium`; \
         .ci/run installs it). This test drives a real browser and does not skip."
    );
}

/// Runs headless Chromium on `url` with `args`; returns (stdout, stderr). Killed at the
/// deadline.
fn browse(url: &str, args: &[&str], profile: &Path) -> (String, String) {
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--disable-dev-shm-usage",
            "--enable-logging=stderr",
            "--v=0",
            // Virtual time runs the page's timers and waits for its fetches.
            "--virtual-time-budget=4000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let out = child.stdout.take().expect("stdout");
    let err = child.stderr.take().expect("stderr");
    let read = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let (out, err) = (read(Box::new(out)), read(Box::new(err)));
    let started = Instant::now();
    loop {
        if child.try_wait().expect("wait chromium").is_some() {
            break;
        }
        if started.elapsed() > BROWSER_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within {BROWSER_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    )
}

/// A fresh browser profile directory (removed on drop).
struct Profile(PathBuf);

impl Profile {
    fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir =
            std::env::temp_dir().join(format!("wvo-chromium-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("profile dir");
        Self(dir)
    }
}

impl Drop for Profile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn serve(app: axum::Router) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/", listener.local_addr().expect("addr"));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, server)
}

/// The element of `dom` that starts with `open` (an exact opening-tag prefix), up to the
/// end of the enclosing `closing` tag's first occurrence after it.
fn section<'a>(dom: &'a str, open: &str, closing: &str) -> &'a str {
    let Some(start) = dom.find(open) else {
        panic!("{open} not in the rendered page:\n{dom}");
    };
    let rest = &dom[start..];
    let end = rest.find(closing).map_or(rest.len(), |e| e + closing.len());
    &rest[..end]
}

/// The `points` of every `<polyline data-series="{series}" ...>` in `html`, each as a
/// count of points.
fn polylines(html: &str, series: &str) -> Vec<usize> {
    let tag = format!("<polyline data-series=\"{series}\"");
    html.match_indices(&tag)
        .map(|(i, _)| {
            let rest = &html[i..];
            let p = rest.find("points=\"").expect("points") + "points=\"".len();
            let end = rest[p..].find('"').expect("end of points");
            rest[p..p + end].split_whitespace().count()
        })
        .collect()
}

/// Text of `html` without tags, whitespace collapsed.
fn text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

const LLAMA: &str = "meta-llama/Llama-3.1-8B-Instruct";
const MISTRAL: &str = "mistralai/Mistral-7B-Instruct-v0.3";

/// Measured latencies: TTFT p95 `ttft_ms`, ITL p95 `itl_ms` (means half of them).
fn measured(ttft_ms: f64, itl_ms: f64) -> ModelSignals {
    ModelSignals {
        latency: MeasuredLatency {
            ttft_mean_seconds: Some(ttft_ms / 2000.0),
            ttft_p95_seconds: Some(ttft_ms / 1000.0),
            itl_mean_seconds: Some(itl_ms / 2000.0),
            itl_p95_seconds: Some(itl_ms / 1000.0),
        },
        ..ModelSignals::default()
    }
}

/// The cycles the test runs: per cycle, (llama req/s, llama p95 TTFT ms, mistral req/s,
/// mistral p95 TTFT ms). The SLO is p95 TTFT 500 ms, ITL 50 ms (ITL always 30 ms here).
const CYCLES: [(f64, f64, f64, f64); 8] = [
    (5.0, 300.0, 2.0, 200.0),
    (12.0, 450.0, 2.5, 210.0),
    (25.0, 900.0, 3.0, 520.0),
    (32.0, 700.0, 4.0, 260.0),
    (28.0, 480.0, 5.0, 600.0),
    (20.0, 350.0, 5.5, 650.0),
    (15.0, 320.0, 4.0, 300.0),
    (9.0, 310.0, 3.0, 250.0),
];

/// Share of [`CYCLES`] within the SLO for the model whose p95 TTFT `pick` returns.
fn expected_attainment(pick: fn(&(f64, f64, f64, f64)) -> f64) -> (usize, usize) {
    let met = CYCLES.iter().filter(|c| pick(c) <= 500.0).count();
    (met, CYCLES.len())
}

/// A cluster with two models (inline p95 SLO), after the [`CYCLES`] of real control cycles.
async fn cycled() -> (
    Cluster,
    SharedView,
    std::sync::Arc<wvo_controller::metrics::Metrics>,
) {
    let cluster = Cluster::start().await;
    let slo = "  slo: {ttftMs: 500, itlMs: 50, percentile: 95}\n";
    cluster.two_variant_va("llama", LLAMA, slo).await;
    cluster.two_variant_va("mistral", MISTRAL, slo).await;
    let (mut controller, view, metrics) = cluster.controller("wvo-0");
    // Paced like the control loop (`wvo run --interval-seconds`, shortened), so the charts'
    // time axis spans a few seconds.
    let mut interval = tokio::time::interval(Duration::from_millis(400));
    for (llama, llama_ttft, mistral, mistral_ttft) in CYCLES {
        interval.tick().await;
        cluster.set_load(LLAMA, llama);
        cluster.set_load(MISTRAL, mistral);
        cluster
            .loads
            .set_signals(NS, LLAMA, measured(llama_ttft, 30.0));
        cluster
            .loads
            .set_signals(NS, MISTRAL, measured(mistral_ttft, 30.0));
        controller.cycle().await.expect("a cycle");
    }
    // What the control loop sets while it holds the lease.
    view.write().expect("view").leader = true;
    (cluster, view, metrics)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_draws_the_history_of_real_cycles_in_a_browser() {
    let (_cluster, view, metrics) = cycled().await;
    let cycles = view.read().expect("view").history.len();
    assert_eq!(cycles, CYCLES.len(), "one history sample per cycle");
    let (url, server) = serve(wvo_controller::status_api::router(view, metrics)).await;

    let profile = Profile::new("dom");
    let page_url = url.clone();
    let dir = profile.0.clone();
    let (dom, log) = tokio::task::spawn_blocking(move || browse(&page_url, &["--dump-dom"], &dir))
        .await
        .expect("browser thread");

    // The script ran to the end of a refresh, without an error.
    assert!(
        dom.contains("data-refreshed=\""),
        "the page never finished a refresh:\n{dom}\n{log}"
    );
    let errors = section(&dom, "<div id=\"js-errors\"", "</div>");
    assert!(
        !errors.contains("data-count"),
        "script errors: {errors}\n{log}"
    );
    assert!(!log.contains("Uncaught"), "console errors:\n{log}");

    // Per model: load vs capacity, and measured TTFT/ITL, one point per cycle.
    for (model, pick) in [
        (
            "llama",
            (|c: &(f64, f64, f64, f64)| c.1) as fn(&(f64, f64, f64, f64)) -> f64,
        ),
        ("mistral", |c: &(f64, f64, f64, f64)| c.3),
    ] {
        let id = format!("{NS}/{model}");
        let load = section(
            &dom,
            &format!("<div class=\"chart\" data-chart=\"load/{id}\""),
            "</svg>",
        );
        for series in ["arrival", "capacity", "demand"] {
            assert_eq!(
                polylines(load, series),
                vec![cycles],
                "{id} {series}: one polyline with a point per cycle"
            );
        }
        for (chart, series) in [("ttft", "ttft-p95"), ("itl", "itl-p95")] {
            let c = section(
                &dom,
                &format!("<div class=\"chart\" data-chart=\"{chart}/{id}\""),
                "</svg>",
            );
            assert_eq!(polylines(c, series), vec![cycles], "{id} {series}");
            assert!(
                c.contains("class=\"ref\""),
                "{id} {chart}: the SLO target line"
            );
        }
        // Measured attainment: the share of cycles whose p95 met the targets.
        let (met, measured) = expected_attainment(pick);
        let share = met as f64 / measured as f64;
        let figure = section(
            &dom,
            &format!("<span class=\"attainment figure\" data-model=\"{id}\""),
            "</span>",
        );
        assert!(
            figure.contains(&format!(">{:.1}%<", 100.0 * share)),
            "{id}: attainment {met}/{measured}: {figure}"
        );
        let card = section(
            &dom,
            &format!("<div class=\"card model\" data-model=\"{id}\""),
            "</h3>",
        );
        assert!(card.contains(&id));
        let note = text(section(
            &dom,
            &format!("<span class=\"attainment figure\" data-model=\"{id}\""),
            "</div>",
        ));
        assert!(
            note.contains(&format!(
                "{met} of {measured} cycles with a measured verdict met the SLO"
            )),
            "{note}"
        );
    }
    // The two models differ (6 of 8 and 5 of 8): the figure is per model, not a constant.
    assert_ne!(expected_attainment(|c| c.1), expected_attainment(|c| c.3));

    // Replicas per GPU type (desired and current), and the cost.
    let h100 = section(
        &dom,
        "<div class=\"chart\" data-chart=\"replicas/H100\"",
        "</svg>",
    );
    assert_eq!(polylines(h100, "desired/H100"), vec![cycles]);
    assert_eq!(polylines(h100, "current/H100"), vec![cycles]);
    let cost = section(&dom, "<div class=\"chart\" data-chart=\"cost\"", "</svg>");
    assert_eq!(polylines(cost, "cost-desired"), vec![cycles]);
    assert_eq!(polylines(cost, "cost-current"), vec![cycles]);
    let to_date = text(section(&dom, "<div id=\"cost-to-date\"", "</div>"));
    assert!(to_date.starts_with('$'), "cost to date: {to_date}");

    // Decisions: local clock time and how long ago, no RFC 3339 nanoseconds in the text.
    let decisions = section(&dom, "<table id=\"decisions\"", "</table>");
    let body = section(decisions, "<tbody>", "</tbody>");
    let rows: Vec<&str> = body.split("<tr>").skip(1).collect();
    assert!(!rows.is_empty(), "the cycles made decisions: {decisions}");
    for row in rows {
        let first = text(section(row, "<td>", "</td>"));
        let (clock, ago) = first.split_once(' ').unwrap_or((&first, ""));
        let digits: Vec<&str> = clock.split(':').collect();
        assert!(
            digits.len() == 3
                && digits
                    .iter()
                    .all(|d| d.len() == 2 && d.chars().all(|c| c.is_ascii_digit())),
            "decision time {first:?} is not HH:MM:SS"
        );
        assert!(ago.ends_with("s ago"), "{first:?}");
    }

    // The what-if form starts with one row per kind, filled from the live input.
    let loads = section(&dom, "<div id=\"wi-loads\"", "</fieldset>");
    assert!(loads.contains(&format!("value=\"{NS}/llama\"")), "{loads}");
    let accs = section(&dom, "<div id=\"wi-accs\"", "</fieldset>");
    assert!(accs.contains("value=\"L40S\""), "{accs}");

    // The screenshot: always taken (it must come out a PNG), kept in docs/ on request.
    let shot = Profile::new("shot");
    let png = shot.0.join("dashboard.png");
    let (page_url, dir, out) = (url.clone(), shot.0.clone(), png.clone());
    tokio::task::spawn_blocking(move || {
        browse(
            &page_url,
            &[
                &format!("--screenshot={}", out.display()),
                "--window-size=1280,1900",
                "--hide-scrollbars",
            ],
            &dir.join("profile"),
        )
    })
    .await
    .expect("browser thread");
    let bytes = std::fs::read(&png).expect("chromium wrote the screenshot");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    if std::env::var_os("WVO_UPDATE_SCREENSHOT").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/dashboard.png");
        std::fs::write(&docs, &bytes).expect("write docs/dashboard.png");
    }
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_kube_authentication_the_page_loads_and_asks_for_a_token() {
    let (cluster, view, metrics) = cycled().await;
    let auth = wvo_controller::auth::Auth::kube(
        cluster.controller_client(),
        wvo_controller::auth::KubeAuthConfig::default(),
    );
    let app = wvo_controller::status_api::secured_router(
        view,
        metrics,
        wvo_controller::whatif::WhatIfRunner::new(wvo_controller::whatif::WhatIfLimits::default()),
        auth,
    );
    let (url, server) = serve(app).await;
    let profile = Profile::new("auth");
    let dir = profile.0.clone();
    let (dom, log) = tokio::task::spawn_blocking(move || browse(&url, &["--dump-dom"], &dir))
        .await
        .expect("browser thread");
    let panel = section(&dom, "<div id=\"auth\"", "</form>");
    assert!(
        !panel.starts_with("<div id=\"auth\" hidden"),
        "the token form is shown: {panel}\n{log}"
    );
    assert!(text(panel).contains("needs a bearer token"), "{panel}");
    // Nothing of the models reached the page.
    assert!(!dom.contains("llm/llama"), "data without a token");
    let errors = section(&dom, "<div id=\"js-errors\"", "</div>");
    assert!(!errors.contains("data-count"), "script errors: {errors}");
    server.abort();
}
