//! Prometheus down, slow, failing or answering NaN: figures are unknown with the reason,
//! never 0. Fake endpoints run on 127.0.0.1 only.

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::collections::HashMap;
use std::time::Duration;
use wvo_collector::{
    observe, HttpConfig, Observations, ObserveConfig, PrometheusConfig, SourceConfig, Target,
    Window,
};

fn targets() -> Vec<Target> {
    vec![Target {
        namespace: "ns".into(),
        model: "m".into(),
        variant: "h100".into(),
        pod: "p".into(),
        url: String::new(),
    }]
}

async fn run(base_url: String, timeout: Duration) -> Observations {
    let cfg = ObserveConfig {
        source: SourceConfig::Prometheus(PrometheusConfig {
            base_url,
            namespace: None,
            model: None,
            http: HttpConfig {
                timeout,
                ..HttpConfig::default()
            },
        }),
        window: Window::default(),
        targets: targets(),
    };
    observe(&cfg).await.expect("config is valid")
}

async fn serve(app: Router) -> (String, tokio::task::JoinHandle<()>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = l.local_addr().expect("addr");
    let h = tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    (format!("http://{addr}"), h)
}

/// Every figure of the one variant and its model is unknown and the reason contains `needle`.
fn assert_all_unknown(obs: &Observations, needle: &str) {
    assert!(!obs.errors.is_empty(), "errors are reported");
    assert!(obs.nothing_known());
    let m = obs.model("m").expect("the target's model is reported");
    let v = m.variant("h100").expect("the target's variant is reported");
    for f in [&m.figures, &v.figures] {
        for fig in [
            &f.arrival_rate_rps,
            &f.avg_input_tokens,
            &f.avg_output_tokens,
            &f.running,
            &f.waiting,
            &f.kv_usage,
            &f.kv_capacity_tokens,
            &f.ttft_mean_seconds,
            &f.itl_p95_seconds,
            &f.preemptions_per_second,
        ] {
            let reason = fig
                .reason()
                .unwrap_or_else(|| panic!("known figure {fig:?}"));
            assert!(
                reason.contains(needle),
                "reason `{reason}` lacks `{needle}`"
            );
        }
        assert_eq!(f.ready_replicas.value(), Some(0.0));
    }
}

#[tokio::test]
async fn prometheus_down_is_unknown_with_the_reason() {
    // A port that was free a moment ago: nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let base = format!("http://127.0.0.1:{port}");
    let obs = run(base.clone(), Duration::from_secs(2)).await;
    assert_all_unknown(&obs, "request failed");
    // The root cause is in the message, not just "error sending request".
    assert!(
        obs.errors
            .iter()
            .any(|e| e.to_lowercase().contains("connection refused")),
        "{:?}",
        obs.errors
    );
    assert!(
        obs.errors.iter().all(|e| e.contains(&base)),
        "{:?}",
        obs.errors
    );
}

#[tokio::test]
async fn prometheus_slow_times_out_as_unknown() {
    let app = Router::new().route(
        "/api/v1/query",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "too late"
        }),
    );
    let (base, h) = serve(app).await;
    let started = std::time::Instant::now();
    let obs = run(base, Duration::from_millis(300)).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded by the timeout"
    );
    assert_all_unknown(&obs, "no answer within 300 ms");
    h.abort();
}

#[tokio::test]
async fn prometheus_http_errors_are_unknown() {
    let app = Router::new().route(
        "/api/v1/query",
        get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response() }),
    );
    let (base, h) = serve(app).await;
    let obs = run(base, Duration::from_secs(2)).await;
    assert_all_unknown(&obs, "HTTP 503");
    h.abort();

    let app = Router::new().route(
        "/api/v1/query",
        get(|| async {
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                r#"{"status":"error","errorType":"execution","error":"query timed out"}"#,
            )
                .into_response()
        }),
    );
    let (base, h) = serve(app).await;
    let obs = run(base, Duration::from_secs(2)).await;
    assert_all_unknown(&obs, "query timed out");
    h.abort();
}

/// Answers every query with one series for pod `p`, tagged with the query's first
/// candidate name, valued NaN (the age query answers 1 s so the pod itself is fresh).
async fn nan_answer(Query(q): Query<HashMap<String, String>>) -> impl IntoResponse {
    let query = q.get("query").cloned().unwrap_or_default();
    let tag = query
        .split("\"wvo_metric\", \"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or("")
        .to_string();
    let value = if query.starts_with("label_replace(time()") {
        "1"
    } else {
        "NaN"
    };
    let mut metric =
        serde_json::json!({"namespace": "ns", "model_name": "m", "pod": "p", "wvo_metric": tag});
    if query.contains("_bucket") {
        metric["le"] = serde_json::json!("0.1");
    }
    if query.starts_with("max by (__name__") {
        metric["__name__"] = serde_json::json!("vllm:cache_config_info");
        metric["num_gpu_blocks"] = serde_json::json!("None");
        metric["block_size"] = serde_json::json!("16");
    }
    axum::Json(serde_json::json!({
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": metric, "value": [1.0, value]}]}
    }))
}

#[tokio::test]
async fn prometheus_nan_values_are_unknown_not_zero() {
    let app = Router::new().route("/api/v1/query", get(nan_answer));
    let (base, h) = serve(app).await;
    let obs = run(base, Duration::from_secs(2)).await;
    let m = obs.model("m").expect("model");
    let f = &m.variant("h100").expect("variant").figures;
    assert_eq!(
        f.ready_replicas.value(),
        Some(1.0),
        "the pod itself is fresh"
    );
    for (name, fig) in [
        ("arrival", &f.arrival_rate_rps),
        ("running", &f.running),
        ("waiting", &f.waiting),
        ("kv", &f.kv_usage),
        ("preemptions", &f.preemptions_per_second),
        ("ttft", &f.ttft_mean_seconds),
        ("itl p95", &f.itl_p95_seconds),
        ("input", &f.avg_input_tokens),
    ] {
        let reason = fig
            .reason()
            .unwrap_or_else(|| panic!("{name} is known: {fig:?}"));
        assert!(reason.contains("NaN"), "{name}: {reason}");
    }
    // num_gpu_blocks="None" (early V1) is unknown, not 0 tokens.
    assert!(f
        .kv_capacity_tokens
        .reason()
        .is_some_and(|r| r.contains("None")));
    h.abort();
}
