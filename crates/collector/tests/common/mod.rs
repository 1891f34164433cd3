//! Test harness shared by the other-servers tests: a 127.0.0.1 HTTP server that serves a
//! capture pair as a live `/metrics`, and a real Prometheus scraping such servers.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wvo_collector::aggregate::{self, Slot, Window};
use wvo_collector::pod::PodFigures;
use wvo_collector::{Figure, Observations};

/// A `/metrics` body that moves between two captures of the same server taken `period_s`
/// apart: every counter and histogram sample grows linearly from its value in `a` at the
/// pace `(b - a) / period_s` (and keeps growing past `b`), gauges keep their value in `b`.
/// Comments, HELP/TYPE lines and label sets are the captures' own.
#[derive(Clone, Debug)]
pub struct MovingCapture {
    lines: Vec<Line>,
    period_s: f64,
}

#[derive(Clone, Debug)]
enum Line {
    Text(String),
    Sample {
        series: String,
        a: f64,
        b: f64,
        grows: bool,
    },
}

/// The family a sample name belongs to among the declared `types` (histogram and counter
/// suffixes stripped).
fn family<'a>(name: &'a str, types: &BTreeMap<String, String>) -> Option<&'a str> {
    if types.contains_key(name) {
        return Some(name);
    }
    ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|s| name.strip_suffix(s).filter(|f| types.contains_key(*f)))
}

impl MovingCapture {
    /// From two captures with the same lines in the same order (only values differ).
    pub fn new(a: &str, b: &str, period_s: f64) -> MovingCapture {
        let mut types = BTreeMap::new();
        for l in b.lines() {
            if let Some(rest) = l.strip_prefix("# TYPE ") {
                let mut it = rest.split_whitespace();
                if let (Some(n), Some(t)) = (it.next(), it.next()) {
                    types.insert(n.to_string(), t.to_string());
                }
            }
        }
        let a_lines: Vec<&str> = a.lines().collect();
        let b_lines: Vec<&str> = b.lines().collect();
        assert_eq!(a_lines.len(), b_lines.len(), "captures differ in length");
        let mut lines = Vec::new();
        for (la, lb) in a_lines.iter().zip(&b_lines) {
            if lb.starts_with('#') || lb.trim().is_empty() {
                lines.push(Line::Text(lb.to_string()));
                continue;
            }
            let (sa, va) = la.rsplit_once(' ').expect("a sample line");
            let (sb, vb) = lb.rsplit_once(' ').expect("a sample line");
            assert_eq!(sa, sb, "captures differ in series");
            let name = sb.split('{').next().unwrap_or(sb);
            let grows = family(name, &types)
                .and_then(|f| types.get(f))
                .is_some_and(|t| t == "counter" || t == "histogram");
            lines.push(Line::Sample {
                series: sb.to_string(),
                a: va.parse().expect("a number"),
                b: vb.parse().expect("a number"),
                grows,
            });
        }
        MovingCapture { lines, period_s }
    }

    /// The body `elapsed_s` after the `a` capture.
    pub fn render(&self, elapsed_s: f64) -> String {
        let mut out = String::new();
        for l in &self.lines {
            match l {
                Line::Text(t) => out.push_str(t),
                Line::Sample {
                    series,
                    a,
                    b,
                    grows,
                } => {
                    let v = if *grows {
                        a + (b - a) * elapsed_s / self.period_s
                    } else {
                        *b
                    };
                    out.push_str(&format!("{series} {v}"));
                }
            }
            out.push('\n');
        }
        out
    }
}

/// Serve `capture` on 127.0.0.1 at `/metrics`; returns the URL of `/metrics`.
pub async fn serve_moving(capture: MovingCapture) -> (String, tokio::task::JoinHandle<()>) {
    let start = Instant::now();
    let capture = Arc::new(capture);
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let capture = capture.clone();
            async move { capture.render(start.elapsed().as_secs_f64()) }
        }),
    );
    serve(app).await
}

/// Serve `body` as it is at `/metrics`.
pub async fn serve_static(body: &'static str) -> (String, tokio::task::JoinHandle<()>) {
    let app =
        axum::Router::new().route("/metrics", axum::routing::get(move || async move { body }));
    serve(app).await
}

async fn serve(app: axum::Router) -> (String, tokio::task::JoinHandle<()>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = l.local_addr().expect("addr");
    let h = tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    (format!("http://{addr}/metrics"), h)
}

/// A real Prometheus process and its temp dir; killed and removed on drop.
pub struct Prom {
    child: Child,
    dir: PathBuf,
    /// Base URL.
    pub url: String,
}

impl Drop for Prom {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    l.local_addr().expect("addr").port()
}

fn prometheus_binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let p = dir.join("prometheus");
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "`prometheus` is not on PATH: install it (Debian: `apt-get install -y prometheus`; \
         .ci/run installs it). This test needs a real Prometheus and does not skip."
    );
}

/// Start Prometheus on a free 127.0.0.1 port scraping every `(metrics URL, pod)` each
/// second, with labels `namespace="ns"` and `pod`.
pub fn start_prometheus(targets: &[(&str, &str)]) -> Prom {
    let bin = prometheus_binary();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("wvo-prom-os-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(dir.join("data")).expect("temp dir");
    let mut cfg = String::from(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n",
    );
    for (i, (url, pod)) in targets.iter().enumerate() {
        let rest = url.strip_prefix("http://").expect("http URL");
        let (addr, path) = rest.split_once('/').expect("a path");
        cfg.push_str(&format!(
            "  - job_name: t{i}\n    metrics_path: /{path}\n    static_configs:\n      - targets: ['{addr}']\n        labels: {{namespace: ns, pod: {pod}}}\n"
        ));
    }
    std::fs::write(dir.join("prometheus.yml"), cfg).expect("write config");
    let port = free_port();
    let log = std::fs::File::create(dir.join("prometheus.log")).expect("log file");
    let child = Command::new(bin)
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start prometheus");
    Prom {
        child,
        dir,
        url: format!("http://127.0.0.1:{port}"),
    }
}

/// Poll `check` every 250 ms until it is true; panic naming `what` after `deadline`.
pub async fn wait_for<F, Fut>(what: &str, deadline: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("timed out after {deadline:?} waiting for {what}");
}

/// The observations of one pod's figures, as one variant `v` of its model.
pub fn observe_one(pf: PodFigures) -> Observations {
    let mut groups = BTreeMap::new();
    groups.insert(
        (pf.namespace.clone(), pf.model.clone(), "v".to_string()),
        vec![Slot::Pod(Box::new(pf))],
    );
    aggregate::observations(
        "test",
        groups,
        &BTreeMap::new(),
        None,
        &Window::default(),
        0.0,
        vec![],
    )
}

/// The value of a figure that must be known.
pub fn val(f: &Figure) -> f64 {
    match f.value() {
        Some(v) => v,
        None => panic!("expected a known figure, got {f:?}"),
    }
}
