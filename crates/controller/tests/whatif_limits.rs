//! The what-if endpoint's limits: bodies over the limit (413), inputs over the model count
//! (413), a full queue (429 with Retry-After), a deadline that cancels the solve (the worker
//! sees the flag and ends), a client going away (same), and the server's choice of solver.
//!
//! The queue and deadline tests plan with a stand-in planner that waits on a gate, so which
//! request holds the slot and which waits is set by the test, not by timing.

use axum::body::{to_bytes, Body};
use axum::http::{header, Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, RwLock};
use std::time::Duration;
use tower::ServiceExt;
use wvo_api::PlanInput;
use wvo_controller::metrics::Metrics;
use wvo_controller::status_api::router_with;
use wvo_controller::view::{ControllerView, SharedView};
use wvo_controller::whatif::{Planner, WhatIfLimits, WhatIfRunner};
use wvo_optimizer::{Cancel, PlanError};

/// A what-if input with `models` models of `variants` variants each.
fn body(models: usize, variants: usize, solver: &str) -> String {
    let accelerators = ["H100", "L40S", "A100"];
    let specs: Vec<Value> = (0..models)
        .map(|m| {
            json!({
                "name": format!("m{m}"),
                "variants": (0..variants).map(|v| json!({
                    "name": format!("v{v}"),
                    "accelerator": accelerators[v % accelerators.len()],
                    "maxRequestsPerSecond": 10.0 - v as f64,
                })).collect::<Vec<_>>()
            })
        })
        .collect();
    let load: serde_json::Map<String, Value> = (0..models)
        .map(|m| (format!("m{m}"), json!({"arrivalRate": 7.0 + m as f64})))
        .collect();
    json!({
        "inventory": accelerators.iter().map(|a| json!({"name": a, "count": 64, "costPerHour": 2.0})).collect::<Vec<_>>(),
        "models": specs,
        "load": load,
        "options": {"solver": solver}
    })
    .to_string()
}

fn app(runner: Arc<WhatIfRunner>) -> (Router, Arc<Metrics>) {
    let view: SharedView = Arc::new(RwLock::new(ControllerView::default()));
    let metrics = Arc::new(Metrics::new());
    (router_with(view, metrics.clone(), runner), metrics)
}

struct Answer {
    status: StatusCode,
    retry_after: Option<String>,
    body: Value,
}

async fn send(app: &Router, request: Request<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = to_bytes(response.into_body(), 16 << 20)
        .await
        .expect("body reads");
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)));
    Answer {
        status,
        retry_after,
        body,
    }
}

fn post(body: String) -> Request<Body> {
    Request::post("/api/v1/whatif")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, body.len())
        .body(Body::from(body))
        .expect("request builds")
}

fn error_of(a: &Answer) -> String {
    a.body["error"].as_str().unwrap_or_default().to_string()
}

/// Waits until `cond` holds (checked every 2 ms), at most 10 s.
async fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited 10 s for {what}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A planner that holds every solve until the gate opens or its cancel flag is raised; it
/// counts the solves started and reports each cancellation it saw.
struct Gated {
    open: Arc<(Mutex<bool>, Condvar)>,
    started: Arc<AtomicUsize>,
    saw_cancel: Mutex<mpsc::Receiver<()>>,
    planner: Planner,
}

fn gated() -> Gated {
    let open = Arc::new((Mutex::new(false), Condvar::new()));
    let started = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let planner: Planner = {
        let open = open.clone();
        let started = started.clone();
        Arc::new(move |input: &PlanInput, cancel: &Cancel| {
            started.fetch_add(1, Ordering::SeqCst);
            let (lock, cv) = &*open;
            let mut is_open = lock.lock().expect("gate lock");
            while !*is_open {
                if cancel.is_cancelled() {
                    let _ = tx.lock().expect("sender lock").send(());
                    return Err(PlanError::Cancelled);
                }
                // The flag is raised from another thread without notifying the condvar:
                // look again every millisecond.
                is_open = cv
                    .wait_timeout(is_open, Duration::from_millis(1))
                    .expect("gate lock")
                    .0;
            }
            drop(is_open);
            wvo_optimizer::plan_cancellable(input, cancel)
        })
    };
    Gated {
        open,
        started,
        saw_cancel: Mutex::new(rx),
        planner,
    }
}

impl Gated {
    fn open(&self) {
        let (lock, cv) = &*self.open;
        *lock.lock().expect("gate lock") = true;
        cv.notify_all();
    }

    fn started(&self) -> usize {
        self.started.load(Ordering::SeqCst)
    }

    fn saw_cancel(&self) -> bool {
        self.saw_cancel
            .lock()
            .expect("receiver lock")
            .recv_timeout(Duration::from_secs(10))
            .is_ok()
    }
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_naming_the_limit() {
    let limits = WhatIfLimits {
        max_body_bytes: 1024,
        ..WhatIfLimits::default()
    };
    let (app, metrics) = app(WhatIfRunner::new(limits));
    let big = body(20, 2, "auto");
    assert!(big.len() > 1024);

    // With a Content-Length: refused before anything reads it.
    let a = send(&app, post(big.clone())).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        error_of(&a).contains("limit of 1024 bytes"),
        "{}",
        error_of(&a)
    );

    // Without one (chunked): refused while it is read.
    let chunks: Vec<Result<String, std::io::Error>> = big
        .as_bytes()
        .chunks(100)
        .map(|c| Ok(String::from_utf8_lossy(c).into_owned()))
        .collect();
    let request = Request::post("/api/v1/whatif")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(futures::stream::iter(chunks)))
        .expect("request builds");
    let a = send(&app, request).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        error_of(&a).contains("limit of 1024 bytes"),
        "{}",
        error_of(&a)
    );

    // Every other endpoint has its own, smaller limit.
    let other = WhatIfLimits::default().max_other_body_bytes;
    let request = Request::get("/api/v1/status")
        .header(header::CONTENT_LENGTH, other + 1)
        .body(Body::from(vec![b' '; other + 1]))
        .expect("request builds");
    let a = send(&app, request).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        error_of(&a).contains(&format!("limit of {other} bytes for /api/v1/status")),
        "{}",
        error_of(&a)
    );
    // A small body still plans.
    let a = send(&app, post(body(2, 2, "auto"))).await;
    assert_eq!(a.status, StatusCode::OK, "{}", error_of(&a));
    assert!(metrics
        .encode()
        .contains("wvo_whatif_requests_total{code=\"413\"} 2"));
}

#[tokio::test]
async fn an_input_over_the_model_or_variant_count_is_413_naming_the_limit() {
    let limits = WhatIfLimits {
        max_models: 3,
        max_variants: 5,
        ..WhatIfLimits::default()
    };
    let (app, _) = app(WhatIfRunner::new(limits));
    let a = send(&app, post(body(4, 1, "auto"))).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        error_of(&a).contains("4 models, over the what-if limit of 3"),
        "{}",
        error_of(&a)
    );
    let a = send(&app, post(body(3, 2, "auto"))).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        error_of(&a).contains("6 variants in all, over the what-if limit of 5"),
        "{}",
        error_of(&a)
    );
    let a = send(&app, post(body(2, 2, "auto"))).await;
    assert_eq!(a.status, StatusCode::OK, "{}", error_of(&a));
}

#[tokio::test]
async fn with_the_slot_and_the_queue_full_the_next_request_gets_429_with_retry_after() {
    let gate = gated();
    let runner = WhatIfRunner::with_planner(
        WhatIfLimits {
            concurrency: 1,
            queue: 1,
            retry_after_seconds: 3,
            deadline: Duration::from_secs(60),
            ..WhatIfLimits::default()
        },
        gate.planner.clone(),
    );
    let (app, metrics) = app(runner.clone());
    // The first request holds the one slot (its solve waits on the gate)...
    let first = tokio::spawn({
        let app = app.clone();
        async move { send(&app, post(body(2, 2, "auto"))).await }
    });
    wait_until("the first solve to start", || gate.started() == 1).await;
    // ... the second waits in the one queue place...
    let second = tokio::spawn({
        let app = app.clone();
        async move { send(&app, post(body(2, 2, "auto"))).await }
    });
    wait_until("the second request to queue", || runner.waiting() == 1).await;
    // ... so the third is turned away at once, without its body being read.
    let third = send(&app, post(body(2, 2, "auto"))).await;
    assert_eq!(third.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(third.retry_after.as_deref(), Some("3"));
    assert!(
        error_of(&third).contains("1 planning and 1 waiting"),
        "{}",
        error_of(&third)
    );
    assert_eq!(gate.started(), 1);
    // Open the gate: both admitted requests are planned.
    gate.open();
    let (first, second) = (
        first.await.expect("first task"),
        second.await.expect("second task"),
    );
    assert_eq!(first.status, StatusCode::OK, "{}", error_of(&first));
    assert_eq!(second.status, StatusCode::OK, "{}", error_of(&second));
    assert_eq!(gate.started(), 2);
    wait_until("the workers to end", || runner.running() == 0).await;
    let text = metrics.encode();
    assert!(
        text.contains("wvo_whatif_requests_total{code=\"429\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("wvo_whatif_requests_total{code=\"200\"} 2"),
        "{text}"
    );
}

#[tokio::test]
async fn a_solve_past_the_deadline_is_cancelled_and_its_worker_ends() {
    let gate = gated();
    let runner = WhatIfRunner::with_planner(
        WhatIfLimits {
            deadline: Duration::from_secs(1),
            ..WhatIfLimits::default()
        },
        gate.planner.clone(),
    );
    let (app, _) = app(runner.clone());
    let a = send(&app, post(body(2, 2, "auto"))).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(a.retry_after.is_some());
    assert!(
        error_of(&a).contains("request deadline of 1 s"),
        "{}",
        error_of(&a)
    );
    assert_eq!(gate.started(), 1);
    assert!(gate.saw_cancel(), "the solve never saw its cancel flag");
    wait_until("the worker to end", || runner.running() == 0).await;
    // Its slot is free again.
    gate.open();
    let a = send(&app, post(body(2, 2, "auto"))).await;
    assert_eq!(a.status, StatusCode::OK, "{}", error_of(&a));
}

#[tokio::test]
async fn a_client_that_goes_away_cancels_its_solve() {
    let gate = gated();
    let runner = WhatIfRunner::with_planner(
        WhatIfLimits {
            deadline: Duration::from_secs(600),
            ..WhatIfLimits::default()
        },
        gate.planner.clone(),
    );
    let (app, _) = app(runner.clone());
    let request = tokio::spawn({
        let app = app.clone();
        async move { send(&app, post(body(2, 2, "auto"))).await }
    });
    wait_until("the solve to start", || gate.started() == 1).await;
    request.abort();
    // The aborted request's future is dropped (with the solve's handle) before this returns.
    assert!(request.await.is_err_and(|e| e.is_cancelled()));
    assert!(gate.saw_cancel(), "the solve never saw its cancel flag");
    wait_until("the worker to end", || runner.running() == 0).await;
}

#[tokio::test]
async fn exact_over_the_size_limit_is_planned_by_the_decomposition_and_says_so() {
    let (app, _) = app(WhatIfRunner::new(WhatIfLimits {
        exact_max_variants: 3,
        ..WhatIfLimits::default()
    }));
    let note = "options.solver: exact is honoured for at most 3 variants";
    let over = send(&app, post(body(2, 2, "exact"))).await;
    assert_eq!(over.status, StatusCode::OK, "{}", error_of(&over));
    assert_eq!(over.body["solver"], "decomposition");
    let warnings = over.body["warnings"].to_string();
    assert!(warnings.contains(note), "{warnings}");
    assert!(warnings.contains("the input has 4"), "{warnings}");

    let under = send(&app, post(body(1, 3, "exact"))).await;
    assert_eq!(under.status, StatusCode::OK, "{}", error_of(&under));
    assert_eq!(under.body["solver"], "milp");
    assert!(!under.body["warnings"].to_string().contains(note));
}

#[tokio::test(start_paused = true)]
async fn a_request_that_waits_past_its_deadline_is_refused_and_leaves_the_queue() {
    use wvo_controller::whatif::Refused;
    let runner = WhatIfRunner::new(WhatIfLimits {
        concurrency: 1,
        queue: 1,
        ..WhatIfLimits::default()
    });
    let far = tokio::time::Instant::now() + Duration::from_secs(3600);
    let held = runner.admit(far).await.expect("the free slot");
    // The queue has one place: the first waiter takes it and gives up at its deadline...
    let soon = tokio::time::Instant::now() + Duration::from_secs(5);
    let waiter = tokio::spawn({
        let runner = runner.clone();
        async move { runner.admit(soon).await.map(drop) }
    });
    wait_until("the waiter to queue", || runner.waiting() == 1).await;
    // ... while a second finds it full.
    assert_eq!(runner.admit(far).await.map(drop), Err(Refused::QueueFull));
    assert_eq!(
        waiter.await.expect("waiter task"),
        Err(Refused::WaitedTooLong)
    );
    assert_eq!(runner.waiting(), 0);
    // Once the slot is given back, the next request gets it at once.
    drop(held);
    assert!(runner.admit(far).await.is_ok());
}
