//! A restarted controller's rate history from a REAL Prometheus (Debian packages
//! `prometheus` and `promtool`): three hours of vLLM and SGLang counters and gauges are
//! backfilled with `promtool tsdb create-blocks-from openmetrics`, Prometheus serves that
//! data directory on 127.0.0.1, and the controller's range path must give back the
//! written arrival rates bucket by bucket, a history in which `wvo_demand` finds the
//! written period, and a forecast trusted at once.
//!
//! Fails (does not skip) when `prometheus` or `promtool` is not on PATH. Waits are polls
//! with a deadline.

use std::collections::BTreeMap;
use std::f64::consts::PI;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use wvo_collector::{
    HttpConfig, ModelRates, ObserveConfig, PrometheusConfig, RateRange, SourceConfig, Window,
    MAX_POINTS_PER_REQUEST,
};
use wvo_controller::loads::{CollectorLoads, LoadSource};
use wvo_controller::persist::{fill_history, history_from_rates};
use wvo_demand::{ForecastStatus, ModelDemand, Observation, Settings, BUCKET_SECONDS};

/// Period of the chat model's load, s.
const PERIOD: f64 = 1_800.0;
/// Seconds between backfilled samples (a usual scrape interval).
const SCRAPE: i64 = 15;
/// Hours of backfilled data.
const HOURS: i64 = 3;

/// The chat model's arrival rate at `t` (UNIX s), req/s: 6 +- 4 with period [`PERIOD`].
fn chat_rate(t: f64) -> f64 {
    6.0 + 4.0 * (2.0 * PI * t / PERIOD).sin()
}

/// Requests the chat model finished from `t0` to `t` (the integral of [`chat_rate`]).
fn chat_done(t0: f64, t: f64) -> f64 {
    let a = 4.0 * PERIOD / (2.0 * PI);
    6.0 * (t - t0) - a * ((2.0 * PI * t / PERIOD).cos() - (2.0 * PI * t0 / PERIOD).cos())
}

/// The mean chat rate over the 60 s rate window ending at `t`, req/s.
fn chat_window_rate(t0: f64, t: f64) -> f64 {
    (chat_done(t0, t) - chat_done(t0, t - 60.0)) / 60.0
}

fn on_path(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not on PATH: install it (Debian: `apt-get install -y prometheus`; \
                 .ci/run installs it). This test needs a real Prometheus and does not skip."
            )
        })
}

/// One OpenMetrics family: `# TYPE`, then each series' samples at `times` (UNIX s).
fn family(
    out: &mut String,
    name: &str,
    kind: &str,
    series: &[(&str, &dyn Fn(f64) -> f64)],
    times: &[i64],
) {
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in series {
        for &t in times {
            let _ = writeln!(out, "{name}{{{labels}}} {:.4} {t}", value(t as f64));
        }
    }
}

/// The backfill: per (namespace, model), what the controller should read back, req/s:
/// - `llm/chat`: vLLM, two pods (60% / 40%) at [`chat_rate`]; running and waiting flat;
/// - `llm/code`: vLLM, 2 req/s finished while its queue grows by 0.5 req/s: 2.5 arrive;
/// - `llm/sg`: SGLang, 3 req/s;
/// - `other/chat`: another namespace, outside the controller's filter.
fn openmetrics(t0: i64, end: i64) -> String {
    let times: Vec<i64> = (t0..=end).step_by(SCRAPE as usize).collect();
    let s = t0 as f64;
    let mut out = String::new();
    let chat0 = move |t: f64| 0.6 * chat_done(s, t);
    let chat1 = move |t: f64| 0.4 * chat_done(s, t);
    let code = move |t: f64| 2.0 * (t - s);
    let other = move |t: f64| t - s;
    family(
        &mut out,
        "vllm:request_success_total",
        "counter",
        &[
            (
                r#"namespace="llm",model_name="chat",pod="chat-0",finished_reason="stop""#,
                &chat0,
            ),
            (
                r#"namespace="llm",model_name="chat",pod="chat-1",finished_reason="stop""#,
                &chat1,
            ),
            (
                r#"namespace="llm",model_name="code",pod="code-0",finished_reason="stop""#,
                &code,
            ),
            (
                r#"namespace="other",model_name="chat",pod="chat-0",finished_reason="stop""#,
                &other,
            ),
        ],
        &times,
    );
    let sg = move |t: f64| 3.0 * (t - s);
    family(
        &mut out,
        "sglang:num_requests_total",
        "counter",
        &[(r#"namespace="llm",model_name="sg",pod="sg-0""#, &sg)],
        &times,
    );
    let flat8 = |_: f64| 8.0;
    let flat4 = |_: f64| 4.0;
    family(
        &mut out,
        "vllm:num_requests_running",
        "gauge",
        &[
            (r#"namespace="llm",model_name="chat",pod="chat-0""#, &flat8),
            (r#"namespace="llm",model_name="code",pod="code-0""#, &flat4),
        ],
        &times,
    );
    let flat1 = |_: f64| 1.0;
    let growing = move |t: f64| 0.5 * (t - s);
    family(
        &mut out,
        "vllm:num_requests_waiting",
        "gauge",
        &[
            (r#"namespace="llm",model_name="chat",pod="chat-0""#, &flat1),
            (
                r#"namespace="llm",model_name="code",pod="code-0""#,
                &growing,
            ),
        ],
        &times,
    );
    out.push_str("# EOF\n");
    out
}

/// Owns the Prometheus process and its temp dir; kills and removes them on drop.
struct Prom {
    child: Child,
    dir: PathBuf,
    url: String,
}

impl Drop for Prom {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn backfill(dir: &Path, text: &str) {
    let input = dir.join("backfill.om");
    std::fs::write(&input, text).expect("write openmetrics");
    let out = Command::new(on_path("promtool"))
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&input)
        .arg(dir.join("data"))
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn start_prometheus(openmetrics: &str) -> Prom {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("wvo-promhist-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(dir.join("data")).expect("temp dir");
    backfill(&dir, openmetrics);
    std::fs::write(
        dir.join("prometheus.yml"),
        "global:\n  scrape_interval: 15s\n",
    )
    .expect("write config");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        l.local_addr().expect("addr").port()
    };
    let log = std::fs::File::create(dir.join("prometheus.log")).expect("log file");
    let child = Command::new(on_path("prometheus"))
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

/// The controller's load source on `prom`, namespace `llm`, as `wvo run --prometheus-url`
/// builds it.
fn loads(prom: &Prom) -> CollectorLoads {
    CollectorLoads::new(ObserveConfig {
        source: SourceConfig::Prometheus(PrometheusConfig {
            base_url: prom.url.clone(),
            namespace: Some("llm".into()),
            model: None,
            http: HttpConfig::default(),
        }),
        window: Window::default(),
        targets: vec![],
    })
}

fn key(ns: &str, model: &str) -> (String, String) {
    (ns.to_string(), model.to_string())
}

/// Reads the past until Prometheus is up and answers for the three models (deadline 30 s).
async fn read_when_ready(loads: &CollectorLoads, range: RateRange) -> ModelRates {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    while Instant::now() < deadline {
        match loads
            .past_rates(range)
            .expect("Prometheus has a past")
            .await
        {
            Ok(rates) if rates.len() == 3 => return rates,
            Ok(rates) => last = format!("models {:?}", rates.keys().collect::<Vec<_>>()),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("Prometheus did not answer the range query within 30 s: {last}");
}

fn close(got: f64, want: f64, rel: f64, what: &str) {
    assert!(
        (got - want).abs() <= rel * want.abs().max(0.5),
        "{what}: got {got:.4}, want {want:.4}"
    );
}

#[tokio::test]
async fn a_restart_reads_the_rate_history_from_prometheus_and_finds_its_period() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let end = (now as i64 / SCRAPE) * SCRAPE;
    let t0 = end - HOURS * 3_600;
    let prom = start_prometheus(&openmetrics(t0, end));
    let loads = loads(&prom);
    let capacity = wvo_demand::history_capacity(wvo_demand::DEFAULT_MAX_PERIOD_SECONDS);
    let range = RateRange::for_history(now, capacity, BUCKET_SECONDS).expect("range");
    assert_eq!(range.points(), capacity, "two days of minutes");
    let rates = read_when_ready(&loads, range).await;
    assert!(
        !rates.contains_key(&key("other", "chat")),
        "namespace filter"
    );

    // The same answer read in pieces of 100 points (29 requests).
    let src = wvo_collector::PrometheusSource::new(
        PrometheusConfig {
            base_url: prom.url.clone(),
            namespace: Some("llm".into()),
            model: None,
            http: HttpConfig::default(),
        },
        Window::default(),
        vec![],
    )
    .expect("source");
    let pieces = src.arrival_rates(range, 100).await.expect("read in pieces");
    assert_eq!(pieces, rates);
    assert_eq!(range.split(100).len(), 29);
    assert_eq!(range.split(MAX_POINTS_PER_REQUEST).len(), 1);

    // Chat: every bucket of the three hours holds the rate written for it.
    let chat = history_from_rates(&rates[&key("llm", "chat")], BUCKET_SECONDS, capacity)
        .expect("chat history");
    let first = chat.start_seconds().expect("start");
    let newest = chat.newest_start_seconds().expect("newest");
    assert!(
        first >= t0 as f64 - 60.0 && first <= t0 as f64 + 120.0,
        "{first} vs {t0}"
    );
    assert!(newest >= now - 180.0, "reaches now: {newest} vs {now}");
    let mut checked = 0;
    for (i, b) in chat.buckets().iter().enumerate() {
        let evaluated = first + i as f64 * BUCKET_SECONDS + BUCKET_SECONDS / 2.0;
        if evaluated - 60.0 < t0 as f64 || evaluated > end as f64 {
            continue;
        }
        assert_eq!(b.samples, 1, "bucket {i} has its point");
        close(
            b.max_rps,
            chat_window_rate(t0 as f64, evaluated),
            0.02,
            &format!("chat bucket {i}"),
        );
        checked += 1;
    }
    assert!(
        checked >= (HOURS * 60 - 3) as usize,
        "{checked} buckets checked"
    );
    println!(
        "chat: {} buckets from {first} to {newest}, {checked} checked against the written rate",
        chat.buckets().len()
    );

    // Code: completions plus the queue's growth; SGLang's counter name is read too.
    for (model, want) in [("code", 2.5), ("sg", 3.0)] {
        let h = history_from_rates(&rates[&key("llm", model)], BUCKET_SECONDS, capacity)
            .expect("history");
        let inner = &h.buckets()[2..h.buckets().len() - 2];
        assert!(inner.len() > 150, "{model}: {} buckets", inner.len());
        for b in inner {
            close(b.max_rps, want, 0.02, model);
        }
    }

    // The period is found in the restored history...
    let found = wvo_demand::period::detect(
        &chat.means(),
        BUCKET_SECONDS,
        wvo_demand::DEFAULT_MIN_PERIOD_SECONDS,
        wvo_demand::DEFAULT_MAX_PERIOD_SECONDS,
    )
    .expect("a period in the restored history");
    assert!(
        (found.period_seconds - PERIOD).abs() <= 60.0,
        "period {} s",
        found.period_seconds
    );
    println!(
        "period found: {} s (correlation {:.3})",
        found.period_seconds, found.correlation
    );

    // ...and the forecast it predicted the last period with is trusted at once.
    let mut demand = ModelDemand::default();
    demand.restore_history(chat.clone());
    let d = demand.update(
        &Observation {
            at_seconds: now,
            arrival_rps: chat_rate(now),
            waiting: None,
            kv_usage: None,
        },
        &Settings::default(),
    );
    match d.forecast {
        ForecastStatus::Active {
            period_seconds,
            forecast_rps,
            ..
        } => {
            assert!((period_seconds - PERIOD).abs() <= 60.0, "{period_seconds}");
            // The highest bucket one period ago over the coming start-up horizon, as
            // written (the bucket holding the horizon's start counts whole).
            let s = Settings::default();
            let from = now - period_seconds + s.lag_seconds;
            let to = from + s.horizon_seconds;
            let mut start = (from / BUCKET_SECONDS).floor() * BUCKET_SECONDS;
            let mut want = f64::MIN;
            while start <= to {
                want = want.max(chat_window_rate(t0 as f64, start + BUCKET_SECONDS / 2.0));
                start += BUCKET_SECONDS;
            }
            close(forecast_rps, want, 0.02, "forecast");
            println!("{}", d.forecast.summary());
        }
        other => panic!("forecast not trusted at once: {}", other.summary()),
    }

    // A status written an hour ago (the controller died then) keeps its buckets;
    // Prometheus fills the hour since.
    let hour_ago = now - 3_600.0;
    let status_points: BTreeMap<i64, f64> = chat
        .buckets()
        .iter()
        .enumerate()
        .map(|(i, b)| (i as i64, b.max_rps))
        .filter(|(i, _)| first + *i as f64 * BUCKET_SECONDS < hour_ago)
        .collect();
    let status = wvo_demand::History::from_buckets(
        BUCKET_SECONDS,
        capacity,
        first,
        status_points
            .values()
            .map(|&v| wvo_demand::history::Bucket {
                // What the status saved, marked so it can be told apart.
                max_rps: v + 0.001,
                mean_rps: v + 0.001,
                samples: 1,
            }),
    );
    let merged = fill_history(&status, &chat);
    assert_eq!(merged.start_seconds(), chat.start_seconds());
    assert_eq!(merged.newest_start_seconds(), chat.newest_start_seconds());
    for (i, (m, p)) in merged.buckets().iter().zip(chat.buckets()).enumerate() {
        let want = if status_points.contains_key(&(i as i64)) {
            p.max_rps + 0.001
        } else {
            p.max_rps
        };
        assert_eq!(m.max_rps, want, "bucket {i}");
    }
}
