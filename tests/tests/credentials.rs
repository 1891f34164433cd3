//! A Prometheus URL with credentials in it (`http://user:pass@host/?token=...`) is used by
//! the real controller against the emulator and reaches the places a user reads: the VA's
//! status (`MetricsAvailable=False`), its Events, the status API, the metrics text and the
//! log. The URL must appear everywhere redacted (`http://***@host/`), never with its user
//! name, password or query.

use axum::body::{to_bytes, Body};
use axum::http::Request;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::ServiceExt;
use wvo_collector::{HttpConfig, ObserveConfig, PrometheusConfig, SourceConfig};
use wvo_controller::loads::CollectorLoads;
use wvo_controller::status_api::{router, PATHS};
use wvo_e2e::*;

/// Nothing listens on port 1: every query fails with the URL in its error.
const CREDENTIALED_URL: &str = "http://wvo-reader:s3cret-pass@127.0.0.1:1/?token=hunter2";

/// Fails naming `what` when `text` holds any part of the credentials.
fn assert_no_credentials(what: &str, text: &str) {
    for secret in ["s3cret", "wvo-reader", "hunter2"] {
        assert!(!text.contains(secret), "{what} leaks {secret:?}: {text}");
    }
}

/// A log sink the test reads back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log sink").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_credentialed_prometheus_url_is_redacted_in_status_events_api_and_logs() {
    // Every log line of this (single-threaded) test, at every level, into `log`.
    let log = Captured::default();
    let sink = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);
    // Callsites first hit while no subscriber wanted them (other tests of this binary, on
    // other threads) cache "never": recompute their interest with this subscriber in place.
    tracing::callsite::rebuild_interest_cache();

    let cluster = Cluster::start().await;
    cluster
        .two_variant_va("llama", "meta-llama/Llama-3.1-8B-Instruct", "")
        .await;
    cluster.wait_ready("llama-h100", 1).await;
    let loads = CollectorLoads::new(ObserveConfig {
        source: SourceConfig::Prometheus(PrometheusConfig {
            base_url: CREDENTIALED_URL.into(),
            namespace: None,
            model: None,
            http: HttpConfig {
                timeout: Duration::from_secs(2),
                ..HttpConfig::default()
            },
        }),
        window: Default::default(),
        targets: vec![],
    });
    let (mut controller, view, metrics) =
        cluster.controller_with_loads(test_config("wvo-0"), Arc::new(loads));
    // Two cycles: the second sees the status the first wrote (and repeats nothing).
    controller.cycle().await.expect("first cycle");
    controller.cycle().await.expect("second cycle");

    // The VA's status says why its metrics are unknown, naming the URL redacted.
    let va = cluster.get_va("llama").await;
    let (status, reason, message) =
        condition(&va, "MetricsAvailable").expect("MetricsAvailable condition");
    assert_eq!(status, "False", "{reason}: {message}");
    assert!(
        message.contains("http://***@127.0.0.1:1/"),
        "the condition names the Prometheus it could not read: {message}"
    );
    assert_no_credentials(
        "the VA's status",
        &serde_json::to_string(&va.status).expect("status JSON"),
    );
    // No replica was taken away on unknown metrics.
    assert_eq!(cluster.replicas("llama-h100").await, 1);

    // Events in every namespace.
    let events: Api<Event> = Api::all(cluster.client.clone());
    let events = events.list(&ListParams::default()).await.expect("events");
    assert_no_credentials(
        "the Events",
        &serde_json::to_string(&events.items).expect("events JSON"),
    );

    // Every GET endpoint of the status API, and a what-if on the live models.
    let app = router(view, metrics.clone());
    let mut answered = 0;
    for path in PATHS.iter().filter(|p| !p.contains('{')) {
        let response = app
            .clone()
            .oneshot(Request::get(*path).body(Body::empty()).expect("request"))
            .await
            .expect("router answers");
        let body = to_bytes(response.into_body(), 16 << 20)
            .await
            .expect("body");
        assert_no_credentials(path, &String::from_utf8_lossy(&body));
        answered += 1;
    }
    assert!(answered >= 8, "every read endpoint was asked ({answered})");
    let model = app
        .clone()
        .oneshot(
            Request::get("/api/v1/models/llm/llama")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("router answers");
    let model = to_bytes(model.into_body(), 16 << 20).await.expect("body");
    let model = String::from_utf8_lossy(&model);
    assert!(
        model.contains("***@127.0.0.1:1"),
        "the model's view carries the redacted reason: {model}"
    );
    assert_no_credentials("/api/v1/models/llm/llama", &model);
    assert_no_credentials("the metrics text", &metrics.encode());

    // The log said something about the failed reads, and never the credentials.
    let logged = String::from_utf8_lossy(&log.0.lock().expect("log sink")).into_owned();
    assert!(
        logged.contains("127.0.0.1:1"),
        "the log names the unreachable Prometheus: {logged}"
    );
    assert_no_credentials("the log", &logged);
}
