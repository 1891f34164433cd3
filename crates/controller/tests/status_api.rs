//! The status API over a hand-filled view: every endpoint's status and shape, readiness,
//! the what-if planner (same answer as the optimizer, overlays on the live input, bad bodies
//! named), `/metrics` series following the VAs, and the OpenAPI document.

use axum::body::{to_bytes, Body};
use axum::http::{header, Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, RwLock};
use tower::ServiceExt;
use wvo_api::{AcceleratorType, ModelLoad, ModelSpec, PlanInput, PlanOutput, VariantSpec};
use wvo_controller::metrics::Metrics;
use wvo_controller::status_api::{router, PATHS};
use wvo_controller::view::{
    AcceleratorView, ConditionView, ControllerView, DecisionRecord, ModelView, SharedView,
    VariantView,
};

fn variant(name: &str, accelerator: &str, rps: f64) -> VariantSpec {
    VariantSpec {
        name: name.into(),
        accelerator: accelerator.into(),
        gpus_per_replica: 1,
        min_replicas: 0,
        max_replicas: None,
        max_requests_per_second: Some(rps),
        profile: None,
    }
}

fn model(name: &str, variants: Vec<VariantSpec>) -> ModelSpec {
    ModelSpec {
        name: name.into(),
        model_id: Some("meta-llama/Llama-3.1-8B-Instruct".into()),
        priority: 0,
        weight: 1.0,
        slo: None,
        min_replicas: 0,
        max_replicas: None,
        variants,
    }
}

fn rate(arrival_rate: f64) -> ModelLoad {
    ModelLoad {
        arrival_rate,
        avg_input_tokens: None,
        avg_output_tokens: None,
    }
}

/// The live input: two models in `prod`, named `namespace/name` as the control cycle does.
fn live_input() -> PlanInput {
    PlanInput {
        inventory: vec![
            AcceleratorType {
                name: "H100".into(),
                count: 8,
                cost_per_hour: 4.0,
            },
            AcceleratorType {
                name: "L40S".into(),
                count: 16,
                cost_per_hour: 1.5,
            },
        ],
        models: vec![
            model(
                "prod/llama",
                vec![variant("h100", "H100", 10.0), variant("l40s", "L40S", 3.0)],
            ),
            model("prod/mistral", vec![variant("l40s", "L40S", 4.0)]),
        ],
        load: BTreeMap::from([
            ("prod/llama".to_string(), rate(25.0)),
            ("prod/mistral".to_string(), rate(6.0)),
        ]),
        current: BTreeMap::from([(
            "prod/llama".to_string(),
            BTreeMap::from([("h100".to_string(), 2), ("l40s".to_string(), 0)]),
        )]),
        options: Default::default(),
    }
}

fn planned(input: &PlanInput) -> PlanOutput {
    match wvo_optimizer::plan(input) {
        Ok(plan) => plan,
        Err(e) => panic!("the test input plans: {e}"),
    }
}

fn zero_time(mut plan: PlanOutput) -> PlanOutput {
    plan.solve_millis = 0.0;
    plan
}

/// A view as the control loop leaves it after a cycle on [`live_input`].
fn filled_view() -> ControllerView {
    let input = live_input();
    let plan = planned(&input);
    let variant_view = |name: &str, accelerator: &str, current: u32, desired: u32| VariantView {
        name: name.into(),
        accelerator: accelerator.into(),
        current,
        ready: current,
        pending: 0,
        planned: desired,
        desired,
        capacity_rps: 10.0,
        cost_per_hour: 4.0 * f64::from(desired),
        price_per_replica: 4.0,
        reason: "scale up: demand 25.00 req/s".into(),
        may_actuate: true,
        frozen: None,
    };
    ControllerView {
        plan: Some(plan),
        last_input: Some(input),
        models: vec![
            ModelView {
                namespace: "prod".into(),
                name: "llama".into(),
                model_id: "meta-llama/Llama-3.1-8B-Instruct".into(),
                priority: 0,
                arrival_rate: Some(25.0),
                demand_rps: 25.0,
                satisfaction: 1.0,
                metrics_unknown: None,
                variants: vec![
                    variant_view("h100", "H100", 2, 3),
                    variant_view("l40s", "L40S", 0, 0),
                ],
                conditions: vec![ConditionView::new(
                    wvo_cycle::conditions::ConditionType::Optimized,
                    true,
                    wvo_cycle::conditions::Reason::Planned,
                    "all demand met",
                )],
                latency: None,
                actuation: wvo_api::crd::ActuationMode::Scale,
                dry_run: false,
            },
            ModelView {
                namespace: "prod".into(),
                name: "mistral".into(),
                model_id: "mistralai/Mistral-7B-Instruct-v0.3".into(),
                priority: 0,
                arrival_rate: Some(6.0),
                demand_rps: 6.0,
                satisfaction: 1.0,
                metrics_unknown: None,
                variants: vec![variant_view("l40s", "L40S", 2, 2)],
                conditions: vec![],
                latency: None,
                actuation: wvo_api::crd::ActuationMode::Scale,
                dry_run: false,
            },
        ],
        accelerators: vec![
            AcceleratorView {
                name: "H100".into(),
                available: 8,
                used: 3,
                cost_per_hour: 4.0,
            },
            AcceleratorView {
                name: "L40S".into(),
                available: 16,
                used: 2,
                cost_per_hour: 1.5,
            },
        ],
        decisions: VecDeque::from([DecisionRecord {
            time: "2026-01-01T00:00:00Z".into(),
            namespace: "prod".into(),
            name: "llama".into(),
            variant: "h100".into(),
            from: 2,
            to: 3,
            reason: "scale up: demand 25.00 req/s".into(),
            actuated: true,
        }]),
        ready: true,
        leader: true,
        last_error: None,
        ..ControllerView::default()
    }
}

fn app(view: ControllerView) -> (Router, SharedView, Arc<Metrics>) {
    let shared: SharedView = Arc::new(RwLock::new(view));
    let metrics = Arc::new(Metrics::new());
    (router(shared.clone(), metrics.clone()), shared, metrics)
}

struct Answer {
    status: StatusCode,
    content_type: String,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        match serde_json::from_slice(&self.body) {
            Ok(v) => v,
            Err(e) => panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)),
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn call(app: &Router, method: &str, path: &str, body: Option<&str>) -> Answer {
    let mut request = Request::builder().method(method).uri(path);
    if body.is_some() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    let request = request
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .expect("request builds");
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = to_bytes(response.into_body(), 16 << 20)
        .await
        .expect("body reads")
        .to_vec();
    Answer {
        status,
        content_type,
        body,
    }
}

async fn get(app: &Router, path: &str) -> Answer {
    call(app, "GET", path, None).await
}

async fn whatif(app: &Router, body: &str) -> Answer {
    call(app, "POST", "/api/v1/whatif", Some(body)).await
}

fn error_of(a: &Answer) -> String {
    a.json()["error"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn read_endpoints_answer_with_their_shapes() {
    let view = filled_view();
    let (app, _, _) = app(view.clone());

    let plan = get(&app, "/api/v1/plan").await;
    assert_eq!(plan.status, StatusCode::OK);
    assert!(plan.content_type.starts_with("application/json"));
    let got: PlanOutput = serde_json::from_slice(&plan.body).expect("a PlanOutput");
    assert_eq!(Some(got), view.plan);

    let input = get(&app, "/api/v1/input").await;
    assert_eq!(input.status, StatusCode::OK);
    let got: PlanInput = serde_json::from_slice(&input.body).expect("a PlanInput");
    assert_eq!(Some(got), view.last_input);

    let models = get(&app, "/api/v1/models").await;
    assert_eq!(models.status, StatusCode::OK);
    let models = models.json();
    assert_eq!(models.as_array().map(Vec::len), Some(2));
    assert_eq!(models[0]["namespace"], "prod");
    assert_eq!(models[0]["name"], "llama");
    assert_eq!(models[0]["modelID"], "meta-llama/Llama-3.1-8B-Instruct");
    assert_eq!(models[0]["variants"][0]["name"], "h100");
    assert_eq!(models[0]["variants"][0]["current"], 2);
    assert_eq!(models[0]["variants"][0]["desired"], 3);
    assert_eq!(models[0]["conditions"][0]["type"], "Optimized");

    let one = get(&app, "/api/v1/models/prod/mistral").await;
    assert_eq!(one.status, StatusCode::OK);
    let one = one.json();
    assert_eq!(one["name"], "mistral");
    assert_eq!(one["variants"][0]["desired"], 2);
    assert_eq!(one["arrivalRate"], 6.0);

    let accs = get(&app, "/api/v1/accelerators").await;
    assert_eq!(accs.status, StatusCode::OK);
    assert_eq!(
        accs.json(),
        json!([
            {"name": "H100", "available": 8, "used": 3, "costPerHour": 4.0},
            {"name": "L40S", "available": 16, "used": 2, "costPerHour": 1.5}
        ])
    );

    let decisions = get(&app, "/api/v1/decisions").await;
    assert_eq!(decisions.status, StatusCode::OK);
    let decisions = decisions.json();
    assert_eq!(decisions.as_array().map(Vec::len), Some(1));
    assert_eq!(decisions[0]["variant"], "h100");
    assert_eq!(decisions[0]["from"], 2);
    assert_eq!(decisions[0]["to"], 3);
    assert_eq!(decisions[0]["actuated"], true);

    let status = get(&app, "/api/v1/status").await;
    assert_eq!(status.status, StatusCode::OK);
    assert_eq!(
        status.json(),
        json!({"ready": true, "leader": true, "hasPlan": true, "lastError": null, "models": 2, "decisions": 1})
    );

    let health = get(&app, "/healthz").await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.json()["status"], "ok");
    let ready = get(&app, "/readyz").await;
    assert_eq!(ready.status, StatusCode::OK);

    let page = get(&app, "/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.content_type.starts_with("text/html"));
    let html = page.text();
    for endpoint in [
        "/api/v1/models",
        "/api/v1/accelerators",
        "/api/v1/decisions",
        "/api/v1/history",
        "/api/v1/whatif",
    ] {
        assert!(html.contains(endpoint), "dashboard does not use {endpoint}");
    }
    // Works offline: nothing loaded from elsewhere.
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("//cdn"));
}

#[tokio::test]
async fn before_the_first_cycle_plan_and_readyz_are_503_then_200() {
    let (app, view, _) = app(ControllerView::default());
    let plan = get(&app, "/api/v1/plan").await;
    assert_eq!(plan.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(error_of(&plan).contains("no plan yet"), "{}", plan.text());
    assert_eq!(
        get(&app, "/api/v1/input").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let ready = get(&app, "/readyz").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.json()["status"], "not ready");
    assert_eq!(get(&app, "/healthz").await.status, StatusCode::OK);
    // Lists are empty, not errors.
    assert_eq!(get(&app, "/api/v1/models").await.json(), json!([]));
    assert_eq!(get(&app, "/api/v1/accelerators").await.json(), json!([]));
    assert_eq!(get(&app, "/api/v1/decisions").await.json(), json!([]));
    // A what-if overlay needs a live input.
    let overlay = whatif(&app, r#"{"load": {"prod/llama": {"arrivalRate": 1}}}"#).await;
    assert_eq!(overlay.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        error_of(&overlay).starts_with("models:"),
        "{}",
        overlay.text()
    );

    // The first cycle fails: still not ready, and the error is told.
    if let Ok(mut v) = view.write() {
        v.last_error = Some("planning failed: solver: timeout".into());
    }
    let plan = get(&app, "/api/v1/plan").await;
    assert_eq!(plan.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(error_of(&plan).contains("solver: timeout"));
    assert_eq!(
        get(&app, "/readyz").await.json()["lastError"],
        "planning failed: solver: timeout"
    );

    // The control loop completes a cycle.
    if let Ok(mut v) = view.write() {
        *v = filled_view();
    }
    assert_eq!(get(&app, "/readyz").await.status, StatusCode::OK);
    assert_eq!(get(&app, "/api/v1/plan").await.status, StatusCode::OK);
}

#[tokio::test]
async fn unknown_model_and_unknown_path_are_404_json() {
    let (app, _, _) = app(filled_view());
    let missing = get(&app, "/api/v1/models/prod/nope").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.content_type.starts_with("application/json"));
    assert!(
        error_of(&missing).contains("prod/nope"),
        "{}",
        missing.text()
    );
    // Same name, other namespace.
    assert_eq!(
        get(&app, "/api/v1/models/staging/llama").await.status,
        StatusCode::NOT_FOUND
    );
    let nowhere = get(&app, "/api/v1/nowhere").await;
    assert_eq!(nowhere.status, StatusCode::NOT_FOUND);
    assert!(error_of(&nowhere).contains("/api/v1/nowhere"));
    // Read-only: no writes on the read endpoints.
    assert_eq!(
        call(&app, "POST", "/api/v1/plan", Some("{}")).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[tokio::test]
async fn whatif_full_input_equals_the_optimizer_and_changes_nothing() {
    let view = filled_view();
    let (app, shared, _) = app(view.clone());
    // A different problem from the live one: one model, a smaller inventory.
    let input: PlanInput = serde_json::from_value(json!({
        "inventory": [{"name": "A100", "count": 4, "costPerHour": 2.0},
                      {"name": "L4", "count": 10, "costPerHour": 0.8}],
        "models": [{"name": "m", "variants": [
            {"name": "a100", "accelerator": "A100", "maxRequestsPerSecond": 6.0},
            {"name": "l4", "accelerator": "L4", "maxRequestsPerSecond": 2.0}]}],
        "load": {"m": {"arrivalRate": 60.0}}
    }))
    .expect("input parses");
    let body = serde_json::to_string(&input).expect("serializes");
    let answer = whatif(&app, &body).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let got: PlanOutput = serde_json::from_slice(&answer.body).expect("a PlanOutput");
    assert_eq!(zero_time(got.clone()), zero_time(planned(&input)));
    // 60 req/s cannot be served by 4x6 + 10x2 = 44: a capacity-constrained plan is still a plan.
    assert!(!got.feasible);

    // Nothing in the view moved.
    let after = shared.read().expect("not poisoned").clone();
    assert_eq!(after.plan, view.plan);
    assert_eq!(after.last_input, view.last_input);
    assert_eq!(after.models, view.models);
    assert_eq!(after.accelerators, view.accelerators);
    assert_eq!(after.decisions, view.decisions);
    assert_eq!(
        get(&app, "/api/v1/plan").await.json(),
        serde_json::to_value(&view.plan).expect("json")
    );
}

#[tokio::test]
async fn whatif_overlays_a_load_and_an_inventory_on_the_live_models() {
    let (app, shared, _) = app(filled_view());

    // A hypothetical load on one live model; the other keeps its live load.
    let answer = whatif(&app, r#"{"load": {"prod/llama": {"arrivalRate": 70.0}}}"#).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let got: PlanOutput = serde_json::from_slice(&answer.body).expect("a PlanOutput");
    let mut expected = live_input();
    expected.load.insert("prod/llama".into(), rate(70.0));
    assert_eq!(zero_time(got.clone()), zero_time(planned(&expected)));
    let llama = got
        .models
        .iter()
        .find(|m| m.model == "prod/llama")
        .expect("live model planned");
    assert_eq!(llama.demand_rps, 70.0);
    let mistral = got
        .models
        .iter()
        .find(|m| m.model == "prod/mistral")
        .expect("live model planned");
    assert_eq!(mistral.demand_rps, 6.0);

    // A hypothetical inventory (fewer H100s) plus options, with `inventory`/`models` given empty
    // the `wvo plan` way.
    let answer = whatif(
        &app,
        r#"{"inventory": [{"name": "H100", "count": 1, "costPerHour": 4.0}], "models": [],
            "options": {"headroom": 0.2}}"#,
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let got: PlanOutput = serde_json::from_slice(&answer.body).expect("a PlanOutput");
    let mut expected = live_input();
    expected.inventory[0].count = 1;
    expected.options.headroom = 0.2;
    assert_eq!(zero_time(got.clone()), zero_time(planned(&expected)));
    let h100 = got
        .accelerators
        .iter()
        .find(|a| a.name == "H100")
        .expect("H100 listed");
    assert_eq!(h100.available, 1);
    assert!(h100.used <= 1);

    // The live input itself is untouched.
    assert_eq!(
        shared.read().expect("not poisoned").last_input,
        Some(live_input())
    );

    // An overlay naming a model that is not live is refused, naming it.
    let answer = whatif(&app, r#"{"load": {"prod/ghost": {"arrivalRate": 1.0}}}"#).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(
        error_of(&answer).contains("prod/ghost"),
        "{}",
        answer.text()
    );
}

#[tokio::test]
async fn whatif_bad_body_is_400_naming_the_field() {
    let (app, _, _) = app(filled_view());
    let cases: &[(&str, &str)] = &[
        // Wrong type, deep inside.
        (
            r#"{"inventory": [{"name": "H100", "count": "eight", "costPerHour": 4}], "models": []}"#,
            "inventory[0].count",
        ),
        // Unknown field.
        (r#"{"inventory": [], "models": [], "lod": {}}"#, "lod"),
        // Missing field.
        (
            r#"{"inventory": [], "models": [{"name": "m"}]}"#,
            "variants",
        ),
        // Refused by validation: an accelerator that is not in the inventory.
        (
            r#"{"inventory": [{"name": "H100", "count": 1, "costPerHour": 4}],
                "models": [{"name": "m", "variants": [{"name": "v", "accelerator": "TPU", "maxRequestsPerSecond": 1}]}]}"#,
            "models[0].variants[0].accelerator",
        ),
        // Negative rate on the live models.
        (
            r#"{"load": {"prod/llama": {"arrivalRate": -1}}}"#,
            "arrivalRate",
        ),
        // Not JSON, not an object.
        ("inventory: []", "body"),
        ("[1, 2]", "body"),
    ];
    for (body, field) in cases {
        let answer = whatif(&app, body).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            answer.text()
        );
        let message = error_of(&answer);
        assert!(
            message.contains(field),
            "{body}: `{message}` does not name {field}"
        );
        assert!(!message.contains('\n'), "one line: {message}");
    }
}

#[tokio::test]
async fn metrics_follow_set_replicas_and_remove_va() {
    let (app, _, metrics) = app(filled_view());
    metrics.set_replicas("prod", "llama", "h100", "H100", 3, 2);
    metrics.set_replicas("prod", "llama", "l40s", "L40S", 0, 0);
    metrics.set_replicas("prod", "mistral", "l40s", "L40S", 2, 2);
    metrics.observe_cycle(0.25, 0.02);
    metrics.count_error("actuate");
    metrics.set_leader(true);

    let answer = get(&app, "/metrics").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let text = answer.text();
    for line in [
        r#"wvo_desired_replicas{namespace="prod",va="llama",variant="h100",accelerator="H100"} 3"#,
        r#"wvo_current_replicas{namespace="prod",va="llama",variant="h100",accelerator="H100"} 2"#,
        r#"wvo_desired_replicas{namespace="prod",va="llama",variant="l40s",accelerator="L40S"} 0"#,
        r#"wvo_desired_replicas{namespace="prod",va="mistral",variant="l40s",accelerator="L40S"} 2"#,
        r#"wvo_errors_total{kind="actuate"} 1"#,
        "wvo_cycles_total 1",
        "wvo_is_leader 1",
        "wvo_cycle_duration_seconds_count 1",
        "wvo_solve_duration_seconds_count 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in\n{text}"
        );
    }
    assert!(text.ends_with("# EOF\n"));

    metrics.remove_va("prod", "llama");
    let text = get(&app, "/metrics").await.text();
    assert!(
        !text.contains(r#"va="llama""#),
        "llama series stay:\n{text}"
    );
    assert!(text.contains(
        r#"wvo_desired_replicas{namespace="prod",va="mistral",variant="l40s",accelerator="L40S"} 2"#
    ));
    // A replica that is not leader exports no plan.
    metrics.set_leader(false);
    let text = get(&app, "/metrics").await.text();
    assert!(!text.contains("wvo_desired_replicas{"), "{text}");
    assert!(text.lines().any(|l| l == "wvo_is_leader 0"));
}

#[tokio::test]
async fn openapi_document_is_json_and_lists_every_path() {
    let (app, _, _) = app(filled_view());
    let answer = get(&app, "/openapi.json").await;
    assert_eq!(answer.status, StatusCode::OK);
    let doc = answer.json();
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    let paths = doc["paths"].as_object().expect("paths object");
    // The contract's paths, written out (the router's PATHS must include them too).
    for path in [
        "/api/v1/plan",
        "/api/v1/models",
        "/api/v1/models/{ns}/{name}",
        "/api/v1/accelerators",
        "/api/v1/decisions",
        "/api/v1/whatif",
        "/openapi.json",
        "/metrics",
        "/healthz",
        "/readyz",
    ] {
        assert!(paths.contains_key(path), "{path} not documented");
        assert!(PATHS.contains(&path), "{path} not served");
    }
    assert!(paths["/api/v1/whatif"].get("post").is_some());
    // Every served path is documented, and every path documented is served.
    for path in PATHS {
        assert!(paths.contains_key(*path), "{path} not documented");
        let probe = path.replace("{ns}", "prod").replace("{name}", "llama");
        let method = if paths[*path].get("post").is_some() {
            "POST"
        } else {
            "GET"
        };
        let body = (method == "POST").then_some("{}");
        let status = call(&app, method, &probe, body).await.status;
        assert_ne!(status, StatusCode::NOT_FOUND, "{method} {probe}");
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {probe}");
    }
    assert_eq!(paths.len(), PATHS.len());
    // Every schema reference resolves.
    let text = answer.text();
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    for reference in text.split("#/components/schemas/").skip(1) {
        let name: String = reference
            .chars()
            .take_while(|c| c.is_alphanumeric())
            .collect();
        assert!(schemas.contains_key(&name), "dangling $ref {name}");
    }
}

#[tokio::test]
async fn a_poisoned_view_answers_500_and_health_stays_200() {
    let (app, shared, _) = app(filled_view());
    let writer = shared.clone();
    let _ = std::thread::spawn(move || {
        let _guard = writer.write();
        panic!("writer dies holding the lock");
    })
    .join();
    assert!(shared.is_poisoned());
    for path in [
        "/api/v1/plan",
        "/api/v1/models",
        "/api/v1/models/prod/llama",
        "/readyz",
    ] {
        let answer = get(&app, path).await;
        assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR, "{path}");
        assert!(!error_of(&answer).is_empty());
    }
    let overlay = whatif(&app, r#"{"load": {"prod/llama": {"arrivalRate": 1}}}"#).await;
    assert_eq!(overlay.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(get(&app, "/healthz").await.status, StatusCode::OK);
    assert_eq!(get(&app, "/metrics").await.status, StatusCode::OK);
}

#[tokio::test]
async fn serves_over_tcp_on_an_ephemeral_port() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (app, _, _) = app(filled_view());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let addr = listener.local_addr().expect("has an address");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    stream
        .write_all(b"GET /api/v1/models/prod/llama HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("writes");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("reads");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    let model: Value = serde_json::from_str(body).expect("JSON body");
    assert_eq!(model["name"], "llama");
    server.abort();
}

#[tokio::test]
async fn healthz_fails_when_no_cycle_completed_for_the_liveness_window_or_the_loop_stopped() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    // The last completed cycle 100 s ago, a window of 10 cycles of 15 s.
    let (app, view, _) = app(ControllerView {
        heartbeat_unix: Some(now - 100.0),
        liveness_window_seconds: Some(150.0),
        ..ControllerView::default()
    });
    assert_eq!(get(&app, "/healthz").await.status, StatusCode::OK);
    if let Ok(mut v) = view.write() {
        v.heartbeat_unix = Some(now - 200.0);
        v.last_error = Some("kubernetes API: listing VariantAutoscalings: timed out".into());
    }
    let health = get(&app, "/healthz").await;
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE);
    let error = error_of(&health);
    assert!(
        error.contains("no control cycle completed for 200 s"),
        "{error}"
    );
    assert!(error.contains("listing VariantAutoscalings"), "{error}");
    // A fresh cycle makes it alive again; a stopped loop is not, whatever the heartbeat.
    if let Ok(mut v) = view.write() {
        v.heartbeat_unix = Some(now);
    }
    assert_eq!(get(&app, "/healthz").await.status, StatusCode::OK);
    if let Ok(mut v) = view.write() {
        v.stopped = Some("leader election stopped: this replica no longer acts; restart it".into());
    }
    let health = get(&app, "/healthz").await;
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(error_of(&health).contains("leader election stopped"));
}

#[tokio::test]
async fn readyz_is_ok_for_a_live_standby_and_fails_when_the_election_stopped() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    // A standby: never ran a cycle, its loop beats.
    let standby = ControllerView {
        leader: false,
        heartbeat_unix: Some(now),
        liveness_window_seconds: Some(300.0),
        ..ControllerView::default()
    };
    let (app, view, _) = app(standby);
    let ready = get(&app, "/readyz").await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.json()["role"], "standby");
    // A leader before its first cycle is not ready yet.
    if let Ok(mut v) = view.write() {
        v.leader = true;
    }
    assert_eq!(
        get(&app, "/readyz").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // The election task ended: neither leader nor standby.
    if let Ok(mut v) = view.write() {
        v.leader = false;
        v.stopped = Some("leader election stopped".into());
    }
    let ready = get(&app, "/readyz").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        ready.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("leader election stopped")),
        "{}",
        ready.text()
    );
    // A standby whose loop stopped beating is not ready either.
    if let Ok(mut v) = view.write() {
        v.stopped = None;
        v.heartbeat_unix = Some(now - 1000.0);
    }
    assert_eq!(
        get(&app, "/readyz").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn the_openapi_latency_schema_names_every_field_a_model_serves() {
    let mut view = filled_view();
    view.models[0].latency = Some(wvo_controller::view::LatencyView {
        ttft_mean_ms: Some(100.0),
        ttft_p95_ms: Some(300.0),
        itl_mean_ms: Some(20.0),
        itl_p95_ms: Some(40.0),
        ttft_target_ms: Some(500.0),
        itl_target_ms: Some(50.0),
        percentile: Some(95.0),
        within_slo: Some(true),
    });
    let (app, _, _) = app(view);
    let doc = get(&app, "/openapi.json").await.json();
    let models = get(&app, "/api/v1/models").await.json();
    let served = models[0]["latency"].as_object().expect("latency served");
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["ModelView"]["properties"]["latency"]["$ref"],
        "#/components/schemas/LatencyView"
    );
    let documented = schemas["LatencyView"]["properties"]
        .as_object()
        .expect("LatencyView properties");
    let served: Vec<&String> = served.keys().collect();
    let documented: Vec<&String> = documented.keys().collect();
    assert_eq!(served, documented, "served vs documented latency fields");
}
