//! llama.cpp, TGI and the EPP's running requests: captures in each server's own format
//! (`tests/data/`, each citing where its names, types, HELP text and labels come from) read
//! as two scrapes (pure), served on 127.0.0.1 to the direct scrape source, and scraped by a
//! real Prometheus for the Prometheus source. Figures a server cannot give are unknown with
//! the reason, never 0.

mod common;

use common::{
    observe_one, serve_moving, serve_static, start_prometheus, val, wait_for, MovingCapture,
};
use std::time::Duration;
use wvo_collector::aggregate::Window;
use wvo_collector::names::{Flavor, Scalar};
use wvo_collector::pod;
use wvo_collector::prometheus::{self, PromSample, Results};
use wvo_collector::{
    observe, render_json, render_table, text, Figure, HttpConfig, ModelObservation, Observations,
    ObserveConfig, PrometheusConfig, PrometheusSource, ScrapeConfig, SourceConfig, Target,
};

const LLAMA_A: &str = include_str!("data/llamacpp-server-scrape-a.prom");
const LLAMA_B: &str = include_str!("data/llamacpp-server-scrape-b.prom");
const LLAMA_2024: &str = include_str!("data/llamacpp-2024-kv-scrape.prom");
const TGI_A: &str = include_str!("data/tgi-3.3-scrape-a.prom");
const TGI_B: &str = include_str!("data/tgi-3.3-scrape-b.prom");
const EPP_LLMD: &str = include_str!("data/epp-llm-d-router-running.prom");
const EPP_GIE: &str = include_str!("data/epp-gie-v1.1-running.prom");

/// Seconds between the A and B captures.
const PERIOD_S: f64 = 10.0;

/// TGI's mean-time-per-token bucket bounds (router/src/server.rs: 1e-4 x 1.5^k, k = 1..35).
fn tgi_duration_bound(k: i32) -> f64 {
    let mut v = 0.0001;
    for _ in 0..k {
        v *= 1.5;
    }
    v
}

/// TGI's ITL p95 over the window: 80 requests at 30 ms fall in bucket 15, 20 at 60 ms in
/// bucket 16; rank 95 is interpolated inside bucket 16.
fn tgi_itl_p95() -> f64 {
    let (lo, hi) = (tgi_duration_bound(15), tgi_duration_bound(16));
    lo + (hi - lo) * (95.0 - 80.0) / (100.0 - 80.0)
}

fn parse(body: &str) -> text::Exposition {
    text::parse(body).expect("capture parses")
}

fn close(f: &Figure, want: f64, rel: f64) {
    let got = val(f);
    assert!(
        (got - want).abs() <= rel * want.abs().max(1e-9),
        "got {got}, want {want} (within {:.1}%): {f:?}",
        rel * 100.0
    );
}

fn unknown_because(f: &Figure, needle: &str) {
    let reason = f
        .reason()
        .unwrap_or_else(|| panic!("expected unknown ({needle}), got {f:?}"));
    assert!(
        reason.contains(needle),
        "reason `{reason}` lacks `{needle}`"
    );
}

/// What a llama.cpp server cannot say, whatever the source.
fn assert_llamacpp_unknowns(m: &ModelObservation) {
    let f = &m.figures;
    unknown_because(&f.arrival_rate_rps, "llama.cpp exposes no request counter");
    unknown_because(&f.avg_input_tokens, "no request counter");
    unknown_because(&f.avg_output_tokens, "no request counter");
    unknown_because(&f.ttft_mean_seconds, "no time-to-first-token histogram");
    unknown_because(&f.ttft_p95_seconds, "no time-to-first-token histogram");
    unknown_because(&f.itl_p95_seconds, "no latency histogram");
    unknown_because(&f.kv_usage, "no KV-cache usage");
    unknown_because(&f.kv_capacity_tokens, "n_ctx is on /props");
    unknown_because(&f.preemptions_per_second, "no preemption counter");
}

/// What a TGI server cannot say, whatever the source.
fn assert_tgi_unknowns(m: &ModelObservation) {
    let f = &m.figures;
    unknown_because(
        &f.ttft_mean_seconds,
        "TGI exposes no time-to-first-token histogram",
    );
    unknown_because(&f.kv_usage, "TGI exposes no KV-cache usage");
    unknown_because(&f.kv_capacity_tokens, "TGI exposes no KV capacity");
    unknown_because(
        &f.preemptions_per_second,
        "TGI exposes no preemption counter",
    );
}

#[test]
fn llamacpp_two_scrapes_give_tokens_slots_and_time_per_token_but_no_request_rate() {
    let (a, b) = (parse(LLAMA_A), parse(LLAMA_B));
    // The 6-significant-digit counters (1.23457e+06) are read as numbers.
    let pf = pod::from_scrapes("ns", "llama-0", "llama", Some((&a, PERIOD_S)), &b, 0.5);
    assert_eq!(
        pf.flavors.iter().copied().collect::<Vec<_>>(),
        vec![Flavor::LlamaCpp]
    );
    let rate = |s: Scalar| pf.scalar(s).map(|r| r.value).expect("known");
    assert_eq!(rate(Scalar::PromptTokenRate), 600.0); // (1.24057e6 - 1.23457e6) / 10 s
    assert_eq!(rate(Scalar::GenerationTokenRate), 80.0); // (346478 - 345678) / 10 s
    assert!((rate(Scalar::GenerationSecondsRate) - 4.0).abs() < 1e-9); // 40 slot-s / 10 s
    let obs = observe_one(pf);
    let m = obs.model("llama").expect("the target's model");
    assert_eq!(val(&m.figures.running), 4.0);
    assert_eq!(
        m.figures.running.metric(),
        Some("llamacpp:requests_processing")
    );
    assert_eq!(val(&m.figures.waiting), 2.0);
    assert_eq!(
        m.figures.waiting.metric(),
        Some("llamacpp:requests_deferred")
    );
    // Running + deferred went from 3 + 1 to 4 + 2 in 10 s.
    close(&m.figures.in_flight_growth_rps, 0.2, 1e-9);
    // 40 s of generation over 800 tokens: 50 ms per generated token.
    close(&m.figures.itl_mean_seconds, 0.05, 1e-9);
    assert_eq!(
        m.figures.itl_mean_seconds.metric(),
        Some("llamacpp:tokens_predicted_seconds_total/llamacpp:tokens_predicted_total")
    );
    assert_eq!(val(&m.figures.ready_replicas), 1.0);
    assert_llamacpp_unknowns(m);
}

#[test]
fn llamacpp_of_2024_gives_its_kv_cache_usage() {
    let pf = pod::totals_since_start("ns", "llama-0", "llama", &parse(LLAMA_2024));
    let obs = observe_one(pf);
    let m = obs.model("llama").expect("model");
    assert_eq!(val(&m.figures.kv_usage), 0.4375);
    assert_eq!(
        m.figures.kv_usage.metric(),
        Some("llamacpp:kv_cache_usage_ratio")
    );
    assert_eq!(val(&m.figures.running), 2.0);
    // Its KV-cache tokens do not give the capacity: still unknown.
    unknown_because(&m.figures.kv_capacity_tokens, "n_ctx is on /props");
}

#[test]
fn tgi_two_scrapes_give_completions_tokens_batch_queue_and_itl() {
    let (a, b) = (parse(TGI_A), parse(TGI_B));
    let pf = pod::from_scrapes("ns", "tgi-0", "mistral", Some((&a, PERIOD_S)), &b, 0.5);
    assert_eq!(
        pf.flavors.iter().copied().collect::<Vec<_>>(),
        vec![Flavor::Tgi]
    );
    let obs = observe_one(pf);
    let m = obs.model("mistral").expect("model");
    let f = &m.figures;
    // 100 successes in 10 s (tgi_request_count's 113 arrivals are not this field).
    close(&f.arrival_rate_rps, 10.0, 1e-9);
    assert_eq!(f.arrival_rate_rps.metric(), Some("tgi_request_success"));
    // 50 x 256 + 50 x 768 + 13 x 512 prompt tokens over 113 validated requests.
    close(&f.avg_input_tokens, 512.0, 1e-9);
    assert_eq!(
        f.avg_input_tokens.metric(),
        Some("tgi_request_input_length_sum/tgi_request_input_length_count")
    );
    // 60 x 100 + 40 x 300 generated tokens over 100 successes.
    close(&f.avg_output_tokens, 180.0, 1e-9);
    assert_eq!(val(&f.running), 24.0);
    assert_eq!(f.running.metric(), Some("tgi_batch_current_size"));
    assert_eq!(val(&f.waiting), 8.0);
    assert_eq!(f.waiting.metric(), Some("tgi_queue_size"));
    // Batch + queue went from 16 + 3 to 24 + 8: 13 requests in 10 s, the arrivals the
    // completions lack (113 = 100 + 13).
    close(&f.in_flight_growth_rps, 1.3, 1e-9);
    // Per-request mean time per token: 80 at 30 ms, 20 at 60 ms.
    close(&f.itl_mean_seconds, 0.036, 1e-9);
    close(&f.itl_p95_seconds, tgi_itl_p95(), 1e-9);
    assert_tgi_unknowns(m);
}

#[test]
fn tgi_rates_need_two_scrapes() {
    let pf = pod::from_scrapes("ns", "tgi-0", "mistral", None, &parse(TGI_B), 0.5);
    let obs = observe_one(pf);
    let m = obs.model("mistral").expect("model");
    unknown_because(&m.figures.arrival_rate_rps, "two scrapes");
    unknown_because(&m.figures.avg_output_tokens, "two scrapes");
    assert_eq!(val(&m.figures.running), 24.0);
}

#[test]
fn epp_running_requests_by_model_newest_name_summed_over_priorities() {
    let running = pod::gateway_running(&parse(EPP_LLMD));
    let llama = running["llama"].as_ref().expect("known");
    // 3 + 2 over two priorities; the deprecated inference_objective copy is not added.
    assert_eq!(
        (llama.value, llama.metric.as_str()),
        (5.0, "llm_d_epp_request_running")
    );
    assert_eq!(running["qwen"].as_ref().map(|r| r.value), Ok(4.0));
    let gie = pod::gateway_running(&parse(EPP_GIE));
    let llama = gie["llama"].as_ref().expect("known");
    assert_eq!(
        (llama.value, llama.metric.as_str()),
        (6.0, "inference_objective_running_requests")
    );
    // GIE <= v1.0's name and label set (its pkg/epp/metrics/testdata/running_requests_metrics
    // @6f06bcbe: `inference_model_running_requests{model_name}` gauge).
    let old = parse(
        "# HELP inference_model_running_requests Inference model number of running requests in each model.\n\
         # TYPE inference_model_running_requests gauge\n\
         inference_model_running_requests{model_name=\"m1\"} 1\n",
    );
    let m1 = pod::gateway_running(&old);
    assert_eq!(
        m1["m1"].as_ref().map(|r| (r.value, r.metric.clone())),
        Ok((1.0, "inference_model_running_requests".to_string()))
    );
    // NaN is a reason, not a number.
    let nan = parse("inference_objective_running_requests{model_name=\"m\"} NaN\n");
    assert!(pod::gateway_running(&nan)["m"].is_err());
}

fn row(labels: &[(&str, &str)], value: f64) -> PromSample {
    PromSample {
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        value,
    }
}

#[test]
fn prometheus_rows_without_model_name_take_the_targets_model_and_the_gateway_running() {
    let pod_row = |tag: &str, v: f64| {
        row(
            &[("namespace", "ns"), ("pod", "llama-0"), ("wvo_metric", tag)],
            v,
        )
    };
    // Every query answered; those not set below found no series.
    let mut r: Results = prometheus::queries(60, "")
        .into_iter()
        .map(|q| (q.id, Ok(vec![])))
        .collect();
    r.insert(
        "age".into(),
        Ok(vec![pod_row("llamacpp:requests_processing", 2.0)]),
    );
    r.insert(
        "running".into(),
        Ok(vec![pod_row("llamacpp:requests_processing", 4.0)]),
    );
    r.insert(
        "waiting".into(),
        Ok(vec![pod_row("llamacpp:requests_deferred", 2.0)]),
    );
    let gw = |model: &str, tag: &str, v: f64| {
        row(
            &[
                ("namespace", "ns"),
                ("model_name", model),
                ("wvo_metric", tag),
            ],
            v,
        )
    };
    r.insert(
        "gateway".into(),
        Ok(vec![
            gw("llama", "llm_d_epp_request_running", 5.0),
            gw("llama", "inference_objective_running_requests", 5.0),
            gw("llama", "llm_d_epp_flow_control_queue_size", 1.0),
            gw("qwen", "inference_objective_running_requests", 4.0),
        ]),
    );
    let running = prometheus::gateway_running_from_results(&r);
    let llama = running[&("ns".to_string(), "llama".to_string())]
        .as_ref()
        .expect("known");
    assert_eq!(
        (llama.0.value, llama.0.metric.as_str()),
        (5.0, "llm_d_epp_request_running")
    );
    let target = Target {
        namespace: "ns".into(),
        model: "llama".into(),
        variant: "cpu".into(),
        pod: "llama-0".into(),
        url: String::new(),
    };
    let obs = prometheus::observations_from_results(
        "test",
        &r,
        std::slice::from_ref(&target),
        &Window::default(),
        0.0,
    );
    let m = obs.model("llama").expect("the target names the model");
    assert_eq!(
        m.variant("cpu").map(|v| v.pods.clone()),
        Some(vec!["llama-0".to_string()])
    );
    assert_eq!(val(&m.figures.running), 4.0);
    assert_eq!(val(&m.gateway_running), 5.0);
    assert_eq!(val(&m.gateway_queue), 1.0);
    assert_llamacpp_unknowns(m);
    // A model only the gateway knows (no pod listed) is reported with its running count.
    let q = obs.model("qwen").expect("gateway-only model");
    assert_eq!(val(&q.gateway_running), 4.0);
    // Without targets the unlabelled pod is its own variant of the unnamed model.
    let obs = prometheus::observations_from_results("test", &r, &[], &Window::default(), 0.0);
    let unnamed = obs.model("").expect("unnamed model");
    assert!(unnamed.variant("llama-0").is_some(), "{unnamed:?}");
}

/// The three servers on 127.0.0.1: llama.cpp and TGI moving between their captures, the
/// EPP as captured.
async fn serve_all() -> (String, String, String, Vec<tokio::task::JoinHandle<()>>) {
    let (llama, h1) = serve_moving(MovingCapture::new(LLAMA_A, LLAMA_B, PERIOD_S)).await;
    let (tgi, h2) = serve_moving(MovingCapture::new(TGI_A, TGI_B, PERIOD_S)).await;
    let (epp, h3) = serve_static(EPP_LLMD).await;
    (llama, tgi, epp, vec![h1, h2, h3])
}

fn target(model: &str, variant: &str, pod: &str, url: &str) -> Target {
    Target {
        namespace: "ns".into(),
        model: model.into(),
        variant: variant.into(),
        pod: pod.into(),
        url: url.into(),
    }
}

/// What both sources must read from the served captures: counters move at (B - A) / 10 s,
/// gauges stay at B's values.
fn assert_served_figures(obs: &Observations, rate_tolerance: f64) {
    let llama = obs.model("llama").expect("llama.cpp's model");
    assert_eq!(llama.variants[0].flavors, vec![Flavor::LlamaCpp]);
    assert_eq!(val(&llama.figures.running), 4.0);
    assert_eq!(val(&llama.figures.waiting), 2.0);
    assert!(val(&llama.figures.in_flight_growth_rps).abs() < 0.05);
    close(&llama.figures.itl_mean_seconds, 0.05, rate_tolerance);
    assert_llamacpp_unknowns(llama);
    assert_eq!(val(&llama.gateway_running), 5.0);
    assert_eq!(
        llama.gateway_running.metric(),
        Some("llm_d_epp_request_running")
    );
    assert_eq!(val(&llama.gateway_queue), 1.0);

    let tgi = obs.model("mistral").expect("TGI's model");
    assert_eq!(tgi.variants[0].flavors, vec![Flavor::Tgi]);
    close(&tgi.figures.arrival_rate_rps, 10.0, rate_tolerance);
    close(&tgi.figures.avg_input_tokens, 512.0, rate_tolerance);
    close(&tgi.figures.avg_output_tokens, 180.0, rate_tolerance);
    close(&tgi.figures.itl_mean_seconds, 0.036, rate_tolerance);
    close(&tgi.figures.itl_p95_seconds, tgi_itl_p95(), rate_tolerance);
    assert_eq!(val(&tgi.figures.running), 24.0);
    assert_eq!(val(&tgi.figures.waiting), 8.0);
    assert_tgi_unknowns(tgi);
    unknown_because(&tgi.gateway_running, "no gateway running-requests metric");

    let qwen = obs.model("qwen").expect("the gateway's other model");
    assert_eq!(val(&qwen.gateway_running), 4.0);
    assert!(qwen.variants.is_empty());
}

#[tokio::test]
async fn the_scrape_source_reads_llamacpp_tgi_and_the_epp_from_served_captures() {
    let (llama, tgi, epp, _servers) = serve_all().await;
    let cfg = ObserveConfig {
        source: SourceConfig::Scrape(ScrapeConfig {
            targets: vec![
                target("llama", "cpu", "llama-0", &llama),
                target("mistral", "a10g", "tgi-0", &tgi),
                target("", "*", "epp-0", &epp),
            ],
            interval: Duration::from_millis(1000),
            ..ScrapeConfig::default()
        }),
        window: Window::default(),
        targets: vec![],
    };
    let obs = tokio::time::timeout(Duration::from_secs(30), observe(&cfg))
        .await
        .expect("bounded")
        .expect("config is valid");
    assert!(obs.errors.is_empty(), "{:?}", obs.errors);
    // Two scrapes about 1 s apart: rates from wall-clock gaps, within 5%.
    assert_served_figures(&obs, 0.05);
    let json = render_json(&obs);
    assert!(json.contains("\"gatewayRunning\""), "{json}");
    let table = render_table(&obs);
    assert!(table.contains("GWRUN"), "{table}");
}

#[tokio::test]
async fn a_bare_scrape_url_of_llamacpp_is_the_unnamed_model() {
    let (url, _h) = serve_moving(MovingCapture::new(LLAMA_A, LLAMA_B, PERIOD_S)).await;
    let cfg = ObserveConfig {
        source: SourceConfig::Scrape(ScrapeConfig {
            targets: vec![Target::from_url(&url)],
            interval: Duration::from_millis(200),
            ..ScrapeConfig::default()
        }),
        window: Window::default(),
        targets: vec![],
    };
    let obs = tokio::time::timeout(Duration::from_secs(30), observe(&cfg))
        .await
        .expect("bounded")
        .expect("config is valid");
    assert!(obs.errors.is_empty(), "{:?}", obs.errors);
    let m = obs.model("").expect("the unnamed model");
    assert_eq!(val(&m.figures.running), 4.0);
    assert!(!obs.nothing_known());
    let table = render_table(&obs);
    assert!(table.contains("(unnamed: no model_name label)"), "{table}");
}

#[tokio::test]
async fn prometheus_reads_llamacpp_tgi_and_the_epp_scraped_from_served_captures() {
    let (llama, tgi, epp, _servers) = serve_all().await;
    let prom = start_prometheus(&[(&llama, "llama-0"), (&tgi, "tgi-0"), (&epp, "epp-0")]);
    let window = Window {
        window_seconds: 5.0,
        max_age_seconds: 60.0,
    };
    let cfg = ObserveConfig {
        source: SourceConfig::Prometheus(PrometheusConfig {
            base_url: prom.url.clone(),
            namespace: Some("ns".into()),
            model: None,
            http: HttpConfig::default(),
        }),
        window,
        targets: vec![
            target("llama", "cpu", "llama-0", ""),
            target("mistral", "a10g", "tgi-0", ""),
        ],
    };
    let probe = PrometheusSource::new(
        PrometheusConfig {
            base_url: prom.url.clone(),
            namespace: None,
            model: None,
            http: HttpConfig::default(),
        },
        window,
        vec![],
    )
    .expect("valid config");
    // Rates over 5 s need more than 5 s of samples of every target.
    wait_for(
        "8 scrapes of each target within 10 s",
        Duration::from_secs(60),
        || {
            let probe = probe.clone();
            async move {
                probe
                    .instant_sum("min(count_over_time(up{namespace=\"ns\"}[10s])) >= 8")
                    .await
                    .is_ok_and(|v| v >= 8.0)
            }
        },
    )
    .await;
    let obs = observe(&cfg).await.expect("config is valid");
    assert!(obs.errors.is_empty(), "{:?}", obs.errors);
    // Prometheus' rate() of a linear counter is its slope: within 3%.
    assert_served_figures(&obs, 0.03);
}
