//! The range path (`/api/v1/query_range`) against fake endpoints on 127.0.0.1: a long
//! range is split into pieces Prometheus accepts and joined again; the token is sent;
//! Prometheus down, slow or failing is a typed error naming the URL without credentials.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wvo_collector::{
    CollectorError, HttpConfig, PrometheusConfig, PrometheusSource, RateRange, Window,
    MAX_POINTS_PER_REQUEST,
};

fn source(base_url: String, timeout: Duration, token: Option<&str>) -> PrometheusSource {
    PrometheusSource::new(
        PrometheusConfig {
            base_url,
            namespace: Some("llm".into()),
            model: None,
            http: HttpConfig {
                timeout,
                bearer_token: token.map(str::to_string),
                ..HttpConfig::default()
            },
        },
        Window::default(),
        vec![],
    )
    .expect("config is valid")
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

/// What the fake Prometheus was asked: (start, end, step, query, Authorization header).
type Asked = Arc<Mutex<Vec<(f64, f64, f64, String, String)>>>;

/// Answers each range query with model `chat` at `t / 1000` req/s at every evaluation
/// time, like Prometheus does (start, start + step, ... <= end), refusing more than
/// 11,000 points per series as Prometheus does.
async fn matrix(
    State(asked): State<Asked>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> impl IntoResponse {
    let num = |k: &str| {
        q.get(k)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    let (start, end, step) = (num("start"), num("end"), num("step"));
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if let Ok(mut a) = asked.lock() {
        a.push((
            start,
            end,
            step,
            q.get("query").cloned().unwrap_or_default(),
            auth,
        ));
    }
    if (end - start) / step > 11_000.0 {
        return (
            StatusCode::BAD_REQUEST,
            r#"{"status":"error","errorType":"bad_data","error":"exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"}"#.to_string(),
        );
    }
    let mut values = Vec::new();
    let mut t = start;
    while t <= end + 1e-6 {
        values.push(serde_json::json!([t, format!("{}", t / 1000.0)]));
        t += step;
    }
    let body = serde_json::json!({"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {"namespace": "llm", "model_name": "chat"}, "values": values}
    ]}});
    (StatusCode::OK, body.to_string())
}

#[tokio::test]
async fn a_range_longer_than_prometheus_allows_is_read_in_pieces() {
    let asked: Asked = Arc::default();
    let app = Router::new()
        .route("/api/v1/query_range", get(matrix))
        .with_state(asked.clone());
    let (base, h) = serve(app).await;
    let src = source(base, Duration::from_secs(5), Some("s3cret"));
    // Two weeks of minutes: 20,160 points, more than one request may ask for.
    let range = RateRange::for_history(1_800_000_000.0, 20_160, 60.0).expect("range");
    let rates = src
        .arrival_rates(range, MAX_POINTS_PER_REQUEST)
        .await
        .expect("read");
    let chat = &rates[&("llm".to_string(), "chat".to_string())];
    assert_eq!(chat.len(), 20_160, "every evaluation time once");
    assert_eq!(chat[0].at_seconds, range.start_seconds);
    assert_eq!(chat[20_159].at_seconds, range.end_seconds);
    assert!(chat
        .windows(2)
        .all(|w| w[1].at_seconds - w[0].at_seconds == 60.0));
    assert!(chat.iter().all(|p| p.rps == p.at_seconds / 1000.0));
    let asked = asked.lock().expect("lock").clone();
    assert_eq!(asked.len(), 2, "{asked:?}");
    for (start, end, step, query, auth) in &asked {
        assert_eq!(*step, 60.0);
        assert!((end - start) / step < 11_000.0);
        assert!(query.contains(r#"rate(vllm:request_success_total{namespace="llm"}[60s])"#));
        assert_eq!(auth, "Bearer s3cret");
    }
    h.abort();
}

#[tokio::test]
async fn prometheus_down_is_an_error_naming_the_url_without_credentials() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let src = source(
        format!("http://admin:hunter2@127.0.0.1:{port}"),
        Duration::from_secs(2),
        None,
    );
    let range = RateRange::for_history(1_800_000_000.0, 60, 60.0).expect("range");
    let e = src
        .arrival_rates(range, MAX_POINTS_PER_REQUEST)
        .await
        .expect_err("down");
    assert!(matches!(e, CollectorError::Http { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.starts_with(&format!(
            "http://***@127.0.0.1:{port}/api/v1/query_range: request failed"
        )),
        "{text}"
    );
    assert!(text.to_lowercase().contains("connection refused"), "{text}");
    assert!(
        !text.contains("hunter2") && !text.contains("admin"),
        "{text}"
    );
    assert!(!format!("{e:?}").contains("hunter2"), "{e:?}");
}

#[tokio::test]
async fn prometheus_slow_or_failing_is_an_error_within_the_timeout() {
    let app = Router::new().route(
        "/api/v1/query_range",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "too late"
        }),
    );
    let (base, h) = serve(app).await;
    let range = RateRange::for_history(1_800_000_000.0, 60, 60.0).expect("range");
    let started = std::time::Instant::now();
    let e = source(base, Duration::from_millis(300), None)
        .arrival_rates(range, MAX_POINTS_PER_REQUEST)
        .await
        .expect_err("slow");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded by the timeout"
    );
    assert_eq!(e.kind(), "timeout");
    assert!(e.to_string().contains("no answer within 300 ms"), "{e}");
    h.abort();

    let app = Router::new().route(
        "/api/v1/query_range",
        get(|| async {
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                r#"{"status":"error","errorType":"execution","error":"query processing would load too many samples into memory"}"#,
            )
        }),
    );
    let (base, h) = serve(app).await;
    let e = source(base.clone(), Duration::from_secs(2), None)
        .arrival_rates(range, MAX_POINTS_PER_REQUEST)
        .await
        .expect_err("refused");
    assert_eq!(e.kind(), "query");
    assert!(e.to_string().contains("too many samples"), "{e}");
    assert!(
        e.to_string()
            .starts_with(&format!("{base}/api/v1/query_range")),
        "{e}"
    );
    h.abort();
}
