//! End to end against a REAL Prometheus (Debian package `prometheus`): it scrapes two
//! emulated vLLM servers (V1 and V0 names) under a known load, and the Prometheus source
//! must return arrival rates and token means within 10% of what the emulators served.
//! The scrape source reads the same servers directly and must agree too.
//!
//! Everything listens on 127.0.0.1; the load is bounded in count and time; waits are on
//! conditions with deadlines.

use std::sync::Arc;
use std::time::{Duration, Instant};
use wvo_api::Profile;
use wvo_collector::{
    observe, Flavor, HttpConfig, ObserveConfig, PrometheusConfig, ScrapeConfig, SourceConfig,
    Target, Window,
};
use wvo_sim::model_server::paced::{finished_between, paced_load, FinishedLog};
use wvo_sim::model_server::{MetricsFlavor, ModelServer, ReplicaConfig, ServerConfig};

mod common;
use common::{start_prometheus, wait_for, Prom};

/// The `/metrics` URL of a server listening on `addr`.
fn metrics_url(addr: std::net::SocketAddr) -> String {
    format!("http://{addr}/metrics")
}

/// The Prometheus source on `prom`, namespace `ns`, series attributed by `targets`.
fn prometheus_source(prom: &Prom, window: Window, targets: Vec<Target>) -> ObserveConfig {
    ObserveConfig {
        source: SourceConfig::Prometheus(PrometheusConfig {
            base_url: prom.url.clone(),
            namespace: Some("ns".into()),
            model: None,
            http: HttpConfig::default(),
        }),
        window,
        targets,
    }
}

/// The direct-scrape source on `targets`' URLs, two scrapes 3 s apart.
fn scrape_source(targets: Vec<Target>, window: Window) -> ObserveConfig {
    ObserveConfig {
        source: SourceConfig::Scrape(ScrapeConfig {
            targets,
            http: HttpConfig::default(),
            interval: Duration::from_secs(3),
        }),
        window,
        targets: vec![],
    }
}

/// Waits until Prometheus answers `/-/ready`.
async fn wait_until_ready(prom: &Prom, client: &reqwest::Client) {
    let ready = format!("{}/-/ready", prom.url);
    wait_for("prometheus ready", Duration::from_secs(30), || {
        let c = client.clone();
        let u = ready.clone();
        async move {
            c.get(&u)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        }
    })
    .await;
}

/// Waits until the URL-encoded instant query `query` returns `series` series.
async fn wait_for_series(
    prom: &Prom,
    client: &reqwest::Client,
    what: &str,
    query: &str,
    series: usize,
) {
    let url = format!("{}/api/v1/query?query={query}", prom.url);
    wait_for(what, Duration::from_secs(40), || {
        let c = client.clone();
        let u = url.clone();
        async move {
            let Ok(r) = c.get(&u).send().await else {
                return false;
            };
            let Ok(v) = r.json::<serde_json::Value>().await else {
                return false;
            };
            v["data"]["result"]
                .as_array()
                .is_some_and(|a| a.len() == series)
        }
    })
    .await;
}

/// The completions in the trailing `window`: rate (req/s), mean input and output tokens.
fn served_in_window(log: &FinishedLog, window: Duration) -> (f64, f64, f64) {
    let now = Instant::now();
    let w = finished_between(log, now.checked_sub(window).unwrap_or(now), now);
    let n = w.len() as f64;
    let inp = w.iter().map(|f| f64::from(f.input_tokens)).sum::<f64>() / n;
    let out = w.iter().map(|f| f64::from(f.output_tokens)).sum::<f64>() / n;
    (n / window.as_secs_f64(), inp, out)
}

/// Alternating 100/300 prompt tokens and 10/30 output tokens.
const MIX: [(u32, u32); 2] = [(100, 10), (300, 30)];

fn within(got: Option<f64>, want: f64, tol: f64, what: &str) {
    let Some(g) = got else {
        panic!("{what}: unknown, expected ~{want}")
    };
    let err = (g - want).abs() / want;
    println!(
        "{what}: got {g:.3}, emulator served {want:.3} ({:.1}% off)",
        err * 100.0
    );
    assert!(
        err <= tol,
        "{what}: got {g}, want {want} ± {:.0}%",
        tol * 100.0
    );
}

fn profile() -> Profile {
    // Fast replica: ~20 ms prefill, 5 ms + 0.1 ms x batch per token.
    Profile {
        alpha: 5.0,
        beta: 0.1,
        gamma: 10.0,
        delta: 0.02,
        max_batch_size: 64,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_source_matches_emulated_load() {
    wvo_collector::install_crypto_provider();
    let mut v0 = ReplicaConfig::new("m", profile());
    v0.flavor = MetricsFlavor::VllmV0;
    let a = Arc::new(
        ModelServer::start(ServerConfig {
            replica: ReplicaConfig::new("m", profile()),
            speed: 1.0,
        })
        .await
        .expect("server a"),
    );
    let b = Arc::new(
        ModelServer::start(ServerConfig {
            replica: v0,
            speed: 1.0,
        })
        .await
        .expect("server b"),
    );
    let prom = start_prometheus(&[
        (&metrics_url(a.addr()), "pod-a"),
        (&metrics_url(b.addr()), "pod-b"),
    ]);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("client");
    wait_until_ready(&prom, &client).await;

    // Known load: 12 req/s on a, 6 req/s on b, bounded to 50 s worth of requests.
    let (log_a, log_b): (FinishedLog, FinishedLog) = Default::default();
    let load_a = paced_load(a.clone(), 12.0, 600, MIX.to_vec(), log_a.clone());
    let load_b = paced_load(b.clone(), 6.0, 300, MIX.to_vec(), log_b.clone());

    // Wait until Prometheus has > 12 s of samples from both pods (rate window 10 s).
    wait_for_series(
        &prom,
        &client,
        "12 s of scraped samples of both pods",
        "count%20by%20(pod)%20(count_over_time(vllm%3Anum_requests_running%5B15s%5D)%20%3E%3D%2012)",
        2,
    )
    .await;

    let window = Window {
        window_seconds: 10.0,
        max_age_seconds: 30.0,
    };
    let targets = vec![
        Target {
            namespace: "ns".into(),
            model: "m".into(),
            variant: "a-v1".into(),
            pod: "pod-a".into(),
            url: a.metrics_url(),
        },
        Target {
            namespace: "ns".into(),
            model: "m".into(),
            variant: "b-v0".into(),
            pod: "pod-b".into(),
            url: b.metrics_url(),
        },
    ];
    let cfg = prometheus_source(&prom, window, targets.clone());
    let obs = observe(&cfg).await.expect("observe");
    let (rate_a, in_a, out_a) = served_in_window(&log_a, Duration::from_secs(10));
    let (rate_b, in_b, out_b) = served_in_window(&log_b, Duration::from_secs(10));
    println!("{}", wvo_collector::render_table(&obs));
    assert!(obs.errors.is_empty(), "{:?}", obs.errors);

    let m = obs.model("m").expect("model m");
    let va = m.variant("a-v1").expect("variant a");
    let vb = m.variant("b-v0").expect("variant b");
    assert_eq!(va.flavors, vec![Flavor::VllmV1]);
    assert_eq!(vb.flavors, vec![Flavor::VllmV0]);
    within(
        va.figures.arrival_rate_rps.value(),
        rate_a,
        0.10,
        "prometheus a rps",
    );
    within(
        vb.figures.arrival_rate_rps.value(),
        rate_b,
        0.10,
        "prometheus b rps",
    );
    within(
        m.figures.arrival_rate_rps.value(),
        rate_a + rate_b,
        0.10,
        "prometheus model rps",
    );
    within(
        va.figures.avg_input_tokens.value(),
        in_a,
        0.10,
        "prometheus a input tokens",
    );
    within(
        va.figures.avg_output_tokens.value(),
        out_a,
        0.10,
        "prometheus a output tokens",
    );
    within(
        vb.figures.avg_input_tokens.value(),
        in_b,
        0.10,
        "prometheus b input tokens",
    );
    within(
        vb.figures.avg_output_tokens.value(),
        out_b,
        0.10,
        "prometheus b output tokens",
    );
    assert_eq!(m.figures.kv_capacity_tokens.value(), Some(2.0 * 116_496.0));
    assert_eq!(m.figures.ready_replicas.value(), Some(2.0));
    for f in [&va.figures, &vb.figures] {
        let age = f.running.age_seconds().expect("running known");
        assert!(age <= 5.0, "fresh samples, age {age}");
        assert!(f
            .ttft_mean_seconds
            .value()
            .is_some_and(|v| v > 0.0 && v < 1.0));
        assert!(f
            .itl_p95_seconds
            .value()
            .is_some_and(|v| v > 0.0 && v < 0.1));
        assert_eq!(f.preemptions_per_second.value(), Some(0.0));
    }

    // The scrape source on the same servers agrees (rates from two scrapes 3 s apart).
    let scrape = scrape_source(targets, window);
    let obs = observe(&scrape).await.expect("observe scrape");
    let (rate_a, in_a, _) = served_in_window(&log_a, Duration::from_secs(3));
    println!("{}", wvo_collector::render_table(&obs));
    let m = obs.model("m").expect("model m");
    let va = m.variant("a-v1").expect("variant a");
    within(
        va.figures.arrival_rate_rps.value(),
        rate_a,
        0.15,
        "scrape a rps",
    );
    within(
        va.figures.avg_input_tokens.value(),
        in_a,
        0.10,
        "scrape a input tokens",
    );
    assert_eq!(m.figures.kv_capacity_tokens.value(), Some(2.0 * 116_496.0));

    load_a.abort();
    load_b.abort();
    drop(prom);
}

/// A saturated server completes at its throughput while its queue grows: completions alone
/// under-read the demand, and completions plus the growth of the requests in the server
/// give it back, from Prometheus (`deriv`) and from two direct scrapes alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_growth_gives_back_the_demand_of_a_saturated_server() {
    wvo_collector::install_crypto_provider();
    // Two requests at a time: ~15 req/s at most for this token mix, offered 40 req/s.
    let small = Profile {
        max_batch_size: 2,
        ..profile()
    };
    let offered = 40.0;
    let server = Arc::new(
        ModelServer::start(ServerConfig {
            replica: ReplicaConfig::new("m", small),
            speed: 1.0,
        })
        .await
        .expect("server"),
    );
    let prom = start_prometheus(&[(&metrics_url(server.addr()), "pod-s")]);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("client");
    wait_until_ready(&prom, &client).await;
    // At most 60 s of offered requests; the test reads after ~15 s.
    let load = paced_load(
        server.clone(),
        offered,
        2400,
        MIX.to_vec(),
        FinishedLog::default(),
    );
    wait_for_series(
        &prom,
        &client,
        "12 s of samples while a queue builds",
        "count%20by%20(pod)%20(count_over_time(vllm%3Anum_requests_waiting%7Bpod%3D%22pod-s%22%7D%5B15s%5D)%20%3E%3D%2012)%20and%20on()%20(sum(vllm%3Anum_requests_waiting)%20%3E%2050)",
        1,
    )
    .await;
    let window = Window {
        window_seconds: 10.0,
        max_age_seconds: 30.0,
    };
    let targets = vec![Target {
        namespace: "ns".into(),
        model: "m".into(),
        variant: "small".into(),
        pod: "pod-s".into(),
        url: server.metrics_url(),
    }];
    let prometheus = prometheus_source(&prom, window, targets.clone());
    let scrape = scrape_source(targets, window);
    for (what, cfg) in [("prometheus", prometheus), ("scrape", scrape)] {
        let obs = observe(&cfg).await.expect("observe");
        println!("{}", wvo_collector::render_table(&obs));
        assert!(obs.errors.is_empty(), "{what}: {:?}", obs.errors);
        let f = &obs.model("m").expect("model m").figures;
        let completions = f.arrival_rate_rps.value().expect("completion rate known");
        let growth = f.in_flight_growth_rps.value().expect("growth known");
        assert!(
            completions < 0.6 * offered,
            "{what}: the server is saturated, completions {completions:.1} req/s of {offered}"
        );
        within(
            Some(completions + growth),
            offered,
            0.15,
            &format!("{what}: completions + growth"),
        );
    }
    load.abort();
    drop(prom);
}

/// `PrometheusSource::instant_sum` (a VA's wake query) against a real Prometheus: a
/// vector is summed over its series, an empty one is 0, a scalar is itself, and a bad query
/// is an error that names the query and not the credentials of the URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wake_query_is_summed_over_its_series() {
    wvo_collector::install_crypto_provider();
    let servers = [
        ModelServer::start(ServerConfig {
            replica: ReplicaConfig::new("m", profile()),
            speed: 1.0,
        })
        .await
        .expect("server a"),
        ModelServer::start(ServerConfig {
            replica: ReplicaConfig::new("m", profile()),
            speed: 1.0,
        })
        .await
        .expect("server b"),
    ];
    let prom = start_prometheus(&[
        (&metrics_url(servers[0].addr()), "pod-a"),
        (&metrics_url(servers[1].addr()), "pod-b"),
    ]);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("client");
    wait_until_ready(&prom, &client).await;
    wait_for_series(&prom, &client, "both targets up", "up%3D%3D1", 2).await;
    let with_credentials = prom.url.replacen("http://", "http://user:secret@", 1);
    let source = wvo_collector::PrometheusSource::new(
        PrometheusConfig {
            base_url: with_credentials,
            namespace: None,
            model: None,
            http: HttpConfig::default(),
        },
        Window::default(),
        vec![],
    )
    .expect("source");
    // `up` is 1 for each of the two targets.
    assert_eq!(source.instant_sum("up").await.expect("vector"), 2.0);
    assert_eq!(
        source
            .instant_sum(r#"up{job="no-such-job"}"#)
            .await
            .expect("empty vector"),
        0.0
    );
    assert_eq!(source.instant_sum("3").await.expect("scalar"), 3.0);
    let err = source
        .instant_sum("sum(up")
        .await
        .expect_err("bad query")
        .to_string();
    assert!(err.contains("sum(up"), "{err}");
    assert!(!err.contains("secret"), "{err}");
    for s in servers {
        s.shutdown().await;
    }
}
