//! The direct-scrape source against emulated servers and a garbage endpoint (127.0.0.1).

use axum::routing::get;
use axum::Router;
use std::time::Duration;
use wvo_api::Profile;
use wvo_collector::{Flavor, HttpConfig, ScrapeConfig, ScrapeSource, Target, Window};
use wvo_sim::model_server::{MetricsFlavor, ModelServer, ReplicaConfig, ServerConfig};

fn target(url: String) -> Target {
    Target {
        namespace: "ns".into(),
        model: String::new(),
        variant: "v".into(),
        pod: "p".into(),
        url,
    }
}

fn source(targets: Vec<Target>) -> ScrapeSource {
    ScrapeSource::new(
        ScrapeConfig {
            targets,
            http: HttpConfig {
                timeout: Duration::from_secs(2),
                ..HttpConfig::default()
            },
            interval: Duration::from_millis(300),
        },
        Window::default(),
    )
    .expect("valid config")
}

#[tokio::test]
async fn sglang_idle_is_a_known_zero_then_load_is_seen() {
    let mut cfg = ReplicaConfig::new(
        "qwen",
        Profile {
            alpha: 2.0,
            beta: 0.1,
            gamma: 5.0,
            delta: 0.01,
            max_batch_size: 32,
        },
    );
    cfg.flavor = MetricsFlavor::Sglang;
    let server = ModelServer::start(ServerConfig {
        replica: cfg,
        speed: 1.0,
    })
    .await
    .expect("server");
    let src = source(vec![target(server.metrics_url())]);

    // Idle: the arrival rate is a real, known 0 (not unknown); token means are unknown.
    let obs = src.collect().await;
    let m = obs.model("qwen").expect("model discovered from model_name");
    assert_eq!(m.variants[0].flavors, vec![Flavor::Sglang]);
    assert_eq!(m.figures.arrival_rate_rps.value(), Some(0.0));
    assert!(m
        .figures
        .avg_input_tokens
        .reason()
        .is_some_and(|r| r.contains("no requests")));
    assert_eq!(m.figures.kv_capacity_tokens.value(), Some(116_496.0));

    // 20 requests of 64 prompt / 8 output tokens, all finished before the next scrape.
    let mut set = tokio::task::JoinSet::new();
    let server = std::sync::Arc::new(server);
    for _ in 0..20 {
        let s = server.clone();
        set.spawn(async move { s.submit(64, 8).await.is_ok() });
    }
    while let Some(r) = set.join_next().await {
        assert!(matches!(r, Ok(true)));
    }
    let started = std::time::Instant::now();
    let obs = src.collect().await; // one scrape: rates against the previous collection
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "previous scrape reused"
    );
    let f = &obs.model("qwen").expect("model").figures;
    assert!(f.arrival_rate_rps.value().is_some_and(|r| r > 0.0));
    assert_eq!(
        f.arrival_rate_rps.metric(),
        Some("sglang:num_requests_total")
    );
    assert_eq!(f.avg_input_tokens.value(), Some(64.0));
    assert_eq!(f.avg_output_tokens.value(), Some(8.0));
    assert!(f.itl_mean_seconds.value().is_some_and(|v| v > 0.0));
}

#[tokio::test]
async fn garbage_endpoint_is_an_error_with_the_url() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    let app = Router::new().route(
        "/metrics",
        get(|| async { "<html><body>login</body></html>" }),
    );
    let h = tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    let url = format!("http://{addr}/metrics");
    let mut t = target(url.clone());
    t.model = "m".into();
    let obs = source(vec![t]).collect().await;
    assert!(
        obs.errors
            .iter()
            .any(|e| e.contains(&url) && e.contains("line 1")),
        "{:?}",
        obs.errors
    );
    let f = &obs.model("m").expect("target's model").figures;
    assert!(f.running.reason().is_some_and(|r| r.contains(&url)));
    assert!(obs.nothing_known());
    h.abort();
}
