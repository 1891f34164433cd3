//! The emulated gateway (EPP): routing, holding while a model has no backend, dropping
//! after the hold, the queue bound and the flow-control gauge.

use std::future::Future;
use std::time::{Duration, Instant};
use wvo_api::Profile;
use wvo_sim::gateway::{Gateway, GatewayConfig, GatewayStats, DROPPED_METRIC, QUEUE_SIZE_METRIC};
use wvo_sim::model_server::{ModelServer, ReplicaConfig, ServerConfig};

fn profile() -> Profile {
    Profile {
        alpha: 10.0,
        beta: 0.5,
        gamma: 20.0,
        delta: 0.05,
        max_batch_size: 64,
    }
}

async fn server(model: &str) -> ModelServer {
    ModelServer::start(ServerConfig {
        replica: ReplicaConfig::new(model, profile()),
        speed: 1.0,
    })
    .await
    .expect("start a model server")
}

async fn gateway(hold: Duration, max_queue: usize) -> Gateway {
    Gateway::start(GatewayConfig {
        hold,
        max_queue,
        ..GatewayConfig::default()
    })
    .await
    .expect("start the gateway")
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// POSTs a completion of `model` to the gateway: (status, JSON body).
async fn complete(http: &reqwest::Client, gw: &str, model: &str) -> (u16, serde_json::Value) {
    let r = http
        .post(format!("{gw}/v1/completions"))
        .json(&serde_json::json!({"model": model, "prompt_tokens": 32, "max_tokens": 4}))
        .send()
        .await
        .expect("send");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

/// Waits until `check` returns Some, polling every 10 ms, for at most `seconds`.
async fn eventually<T, F, Fut>(seconds: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The value of the gateway's queue gauge for `model` in a `/metrics` body, if exported.
fn gauge(text: &str, model: &str) -> Option<f64> {
    let needle = format!("model_name=\"{model}\"");
    text.lines()
        .find(|l| l.starts_with(&format!("{QUEUE_SIZE_METRIC}{{")) && l.contains(&needle))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn scrape(http: &reqwest::Client, gw: &Gateway) -> String {
    http.get(gw.metrics_url())
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("metrics body")
}

#[tokio::test]
async fn a_request_is_held_while_its_model_has_no_backend_then_forwarded() {
    let http = client();
    let gw = gateway(Duration::from_secs(20), 8).await;
    gw.set_backends("m", Vec::new());
    assert_eq!(gauge(&scrape(&http, &gw).await, "m"), Some(0.0));

    let url = gw.url();
    let h = http.clone();
    let request = tokio::spawn(async move { complete(&h, &url, "m").await });
    eventually(10, "the request to be held", || async {
        (gw.held("m") == 1).then_some(())
    })
    .await;
    assert_eq!(gauge(&scrape(&http, &gw).await, "m"), Some(1.0));
    assert!(!request.is_finished(), "answered without a backend");

    let s = server("m").await;
    let started = Instant::now();
    gw.set_backends("m", vec![s.url()]);
    let (status, body) = request.await.expect("request task");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model"], "m");
    assert_eq!(body["usage"]["completion_tokens"], 4);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(s.served().finished, 1);
    assert_eq!(
        gw.model_stats("m"),
        GatewayStats {
            served: 1,
            ..GatewayStats::default()
        }
    );
    assert_eq!(gauge(&scrape(&http, &gw).await, "m"), Some(0.0));

    // With a backend, a request goes straight through.
    let (status, _) = complete(&http, &gw.url(), "m").await;
    assert_eq!(status, 200);
    assert_eq!(gw.stats().served, 2);
    gw.shutdown().await;
}

#[tokio::test]
async fn a_request_held_past_the_hold_is_answered_503_and_counted_dropped() {
    let http = client();
    let hold = Duration::from_millis(300);
    let gw = gateway(hold, 8).await;
    let started = Instant::now();
    let (status, body) = complete(&http, &gw.url(), "cold").await;
    let waited = started.elapsed();
    assert_eq!(status, 503, "{body}");
    assert!(waited >= hold, "answered after {waited:?}, before the hold");
    assert!(waited < Duration::from_secs(5), "answered after {waited:?}");
    let stats = gw.model_stats("cold");
    assert_eq!((stats.dropped, stats.held, stats.served), (1, 0, 0));
    let text = scrape(&http, &gw).await;
    // A model only clients named is exported too.
    assert_eq!(gauge(&text, "cold"), Some(0.0));
    assert!(
        text.contains(&format!(
            "{DROPPED_METRIC}{{model_name=\"cold\",reason=\"hold_expired\"}} 1"
        )),
        "{text}"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn the_queue_is_bounded_and_a_stop_answers_the_held_requests() {
    let http = client();
    let gw = gateway(Duration::from_secs(30), 2).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let (h, url) = (http.clone(), gw.url());
        held.push(tokio::spawn(async move { complete(&h, &url, "m").await.0 }));
    }
    eventually(10, "two requests to be held", || async {
        (gw.held("m") == 2).then_some(())
    })
    .await;
    let (status, _) = complete(&http, &gw.url(), "m").await;
    assert_eq!(status, 429, "a third request is refused at once");
    let stats = gw.stats();
    assert_eq!((stats.held, stats.dropped), (2, 1));
    let started = Instant::now();
    gw.shutdown().await;
    for h in held {
        assert_eq!(h.await.expect("request task"), 503);
    }
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn requests_go_to_the_backend_with_the_fewest_in_flight() {
    let http = client();
    let gw = gateway(Duration::from_secs(10), 64).await;
    let (a, b) = (server("m").await, server("m").await);
    gw.set_backends("m", vec![a.url(), b.url()]);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (h, url) = (http.clone(), gw.url());
        tasks.push(tokio::spawn(async move {
            let r = h
                .post(format!("{url}/v1/completions"))
                .json(&serde_json::json!({"model": "m", "prompt_tokens": 256, "max_tokens": 64}))
                .send()
                .await
                .expect("send");
            r.status().as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("task"), 200);
    }
    let (na, nb) = (a.served().finished, b.served().finished);
    assert_eq!(na + nb, 8);
    assert!(na >= 2 && nb >= 2, "uneven split {na}/{nb}");
    // A kept backend keeps its count; a removed one gets no more requests.
    gw.set_backends("m", vec![b.url()]);
    assert_eq!(gw.backends("m"), vec![b.url()]);
    let (status, _) = complete(&http, &gw.url(), "m").await;
    assert_eq!(status, 200);
    assert_eq!(b.served().finished, nb + 1);
    assert_eq!(gw.stats().in_flight, 0);
    // Bad requests are refused and not counted.
    let r = http
        .post(format!("{}/v1/completions", gw.url()))
        .json(&serde_json::json!({"prompt": "no model"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(gw.stats().dropped, 0);
    gw.shutdown().await;
}

#[tokio::test]
async fn models_named_by_clients_are_bounded() {
    let http = client();
    let gw = Gateway::start(GatewayConfig {
        hold: Duration::from_millis(50),
        max_models: 2,
        ..GatewayConfig::default()
    })
    .await
    .expect("gateway");
    gw.set_backends("owned", Vec::new());
    for m in ["x", "y"] {
        assert_eq!(complete(&http, &gw.url(), m).await.0, 503);
    }
    let (status, body) = complete(&http, &gw.url(), "z").await;
    assert_eq!(status, 503);
    assert!(body.to_string().contains("no room"), "{body}");
    let text = scrape(&http, &gw).await;
    assert!(gauge(&text, "z").is_none(), "{text}");
    assert_eq!(gauge(&text, "owned"), Some(0.0));
    assert_eq!(gw.stats().dropped, 3);
}
