//! The status API: read-only JSON over the [`ControllerView`], a what-if planner, the
//! OpenAPI document, `/metrics`, probes and a capacity-planning dashboard.
//!
//! | method | path | answer |
//! |---|---|---|
//! | GET | `/api/v1/plan` | the last plan (`wvo plan` output form); 503 before the first cycle |
//! | GET | `/api/v1/input` | the plan input the last plan was made from; 503 before the first cycle |
//! | GET | `/api/v1/status` | readiness, leadership, last cycle error |
//! | GET | `/api/v1/models` | every model (VA) with its variants |
//! | GET | `/api/v1/models/{ns}/{name}` | one model; 404 when unknown |
//! | GET | `/api/v1/accelerators` | available / used GPUs and cost by accelerator type |
//! | GET | `/api/v1/decisions` | recent replica decisions, newest last |
//! | GET | `/api/v1/history` | per-cycle series of the last hour ([`crate::history`]) |
//! | POST | `/api/v1/whatif` | a plan for a hypothetical input; acts on nothing |
//! | GET | `/openapi.json` | OpenAPI 3 document of all of the above |
//! | GET | `/metrics` | [`Metrics`] in the OpenMetrics text format |
//! | GET | `/healthz` | 200 while the control loop runs; 503 when no cycle completed for `--liveness-cycles` intervals (default 10) or the leader election ended |
//! | GET | `/readyz` | 200 for a leader once a cycle completed, or a standby whose loop and election are alive; else 503 |
//! | GET | `/` | the dashboard (HTML) |
//!
//! Errors are JSON `{"error": "<one line>"}`. Handlers copy what they need out of the
//! [`SharedView`] and release the lock before any await; a poisoned lock answers 500.
//!
//! ## Authentication and tenant scoping
//! [`secured_router`] puts [`crate::auth::layer`] in front of every endpoint but the probes
//! and the dashboard page (constant, no data; its script asks for a token on a 401)
//! (TokenReview + SubjectAccessReview on the path; 401, 403, 503). The read endpoints then
//! answer with what the caller's namespaces hold ([`crate::scope`]): `plan`, `input`,
//! `status`, `models`, `models/{ns}/{name}` (403 outside them), `decisions`, `history`
//! (totals summed over the visible models), and a what-if over the live input. [`router`]
//! has no authentication (loopback, tests).
//!
//! ## What-if
//! The body is a [`PlanInput`] in the `wvo plan` input form. With `models` listed, it is
//! planned as is: the answer is exactly what `wvo plan --output json` prints for the same
//! input. With `models` empty (or absent), the body is an overlay on the live input the last
//! plan was made from (see `GET /api/v1/input`; model names there are `namespace/name`):
//! - `inventory`: each listed accelerator type replaces the live one of the same name (new
//!   names are added);
//! - `load`: each listed model's load replaces the live one; `avgInputTokens` /
//!   `avgOutputTokens` left out keep their live values (a rate change at the same token mix);
//! - `current`: each listed model's replicas replace the live ones;
//! - `options`: when present, replaces the live options.
//!
//! A body that does not parse, or an input the planner refuses, gets 400 with a one-line
//! message naming the field.
//!
//! ## Limits (see [`crate::whatif`])
//! - Bodies: over [`WhatIfLimits::max_body_bytes`] on the what-if, over
//!   [`WhatIfLimits::max_other_body_bytes`] elsewhere: 413 naming the limit. A what-if input
//!   (after the overlay) with more than [`WhatIfLimits::max_models`] models or
//!   [`WhatIfLimits::max_variants`] variants: 413 naming the limit.
//! - At most [`WhatIfLimits::concurrency`] what-ifs are read and planned at once, each on
//!   its own thread (not the runtime's, which run the control cycle); at most
//!   [`WhatIfLimits::queue`] more wait. A request finding the queue full gets 429 with
//!   `Retry-After`; one whose deadline ([`WhatIfLimits::deadline`]) passes while waiting or
//!   planning gets 503 with `Retry-After`, and its solve is cancelled (also when the client
//!   goes away).
//! - The server picks the solver: `options.solver: exact` is honoured up to
//!   [`WhatIfLimits::exact_max_variants`] variants; above, the decomposition plans and
//!   `warnings` says so. `options.timeLimitSeconds` is clamped to the time the request has
//!   left.

use crate::auth::{Access, Auth};
use crate::history::HistoryBody;
use crate::metrics::{Metrics, OPENMETRICS_CONTENT_TYPE};
use crate::scope::Visible;
use crate::view::{ControllerView, SharedView};
pub use crate::whatif::WhatIfLimits;
use crate::whatif::{Ended, Planner, Refused, WhatIfRunner};
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Serialize;
use serde_json::{json, Value};
use std::sync::{Arc, RwLockReadGuard};
use std::time::Duration;
use wvo_api::{PlanInput, PlanOutput, SolverChoice};
use wvo_optimizer::{Cancel, PlanError};

/// What-if plans computed at once by default; see [`WhatIfLimits::concurrency`].
pub const WHATIF_CONCURRENCY: usize = 1;

/// Every path the router serves (as written in the OpenAPI document).
pub const PATHS: &[&str] = &[
    "/api/v1/plan",
    "/api/v1/input",
    "/api/v1/status",
    "/api/v1/models",
    "/api/v1/models/{ns}/{name}",
    "/api/v1/accelerators",
    "/api/v1/decisions",
    "/api/v1/history",
    "/api/v1/whatif",
    "/openapi.json",
    "/metrics",
    "/healthz",
    "/readyz",
    "/",
];

#[derive(Clone)]
struct AppState {
    view: SharedView,
    metrics: Arc<Metrics>,
    whatif: Arc<WhatIfRunner>,
}

/// The status API router over the controller's view and metrics, with the default
/// [`WhatIfLimits`] and without authentication (every caller sees everything: for loopback
/// and tests). Serve it with `axum::serve(listener, router(view, metrics))`.
pub fn router(view: SharedView, metrics: Arc<Metrics>) -> Router {
    router_with(view, metrics, WhatIfRunner::new(WhatIfLimits::default()))
}

/// [`router`] with the what-if endpoint's limits and planner given by `runner`.
pub fn router_with(view: SharedView, metrics: Arc<Metrics>, runner: Arc<WhatIfRunner>) -> Router {
    secured_router(view, metrics, runner, Auth::none())
}

/// [`router_with`] with `auth` in front of every endpoint but the probes and the dashboard
/// page, and the read endpoints scoped to the caller's namespaces.
pub fn secured_router(
    view: SharedView,
    metrics: Arc<Metrics>,
    runner: Arc<WhatIfRunner>,
    auth: Auth,
) -> Router {
    let state = AppState {
        view,
        metrics,
        whatif: runner,
    };
    Router::new()
        .route("/", get(dashboard))
        .route("/api/v1/plan", get(plan))
        .route("/api/v1/input", get(input))
        .route("/api/v1/status", get(status))
        .route("/api/v1/models", get(models))
        .route("/api/v1/models/{ns}/{name}", get(model))
        .route("/api/v1/accelerators", get(accelerators))
        .route("/api/v1/decisions", get(decisions))
        .route("/api/v1/history", get(history))
        .route("/api/v1/whatif", post(whatif))
        .route("/openapi.json", get(openapi))
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), limit_body))
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(
            auth,
            crate::auth::layer,
        ))
}

/// Refuses a request whose `Content-Length` is over its endpoint's limit (413), before
/// anything reads it. Bodies without a length are limited where they are read.
async fn limit_body(State(s): State<AppState>, request: Request, next: Next) -> Response {
    let whatif = request.uri().path() == "/api/v1/whatif";
    let limits = s.whatif.limits();
    let limit = if whatif {
        limits.max_body_bytes
    } else {
        limits.max_other_body_bytes
    };
    let length = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match length {
        Some(length) if length > limit as u64 => {
            let response =
                ApiError::body_too_large(request.uri().path(), Some(length), limit).into_response();
            if whatif {
                s.metrics.count_whatif(response.status().as_u16());
            }
            response
        }
        _ => next.run(request).await,
    }
}

/// An error answer: a status and a one-line message, sent as `{"error": message}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
    /// `Retry-After` of a 429 or 503, seconds.
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        let message: String = message.into();
        Self {
            status,
            message: one_line(&message),
            retry_after: None,
        }
    }

    fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    fn body_too_large(path: &str, length: Option<u64>, limit: usize) -> Self {
        let size = length.map_or_else(|| "over".to_string(), |l| format!("{l} bytes,"));
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body: {size} the limit of {limit} bytes for {path}; send a smaller body"),
        )
    }

    fn poisoned() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "controller view unavailable: a writer panicked while holding it",
        )
    }

    fn no_plan_yet(last_error: Option<&str>) -> Self {
        let mut message = String::from("no plan yet: the first control cycle has not completed");
        if let Some(e) = last_error {
            message.push_str("; last error: ");
            message.push_str(e);
        }
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({ "error": self.message }))).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// The namespaces the caller may see among those the view holds (tenant scoping); 503 when
/// the API server cannot say.
async fn visible(view: &SharedView, access: &Access) -> Result<Visible, ApiError> {
    let namespaces = with_view(view, crate::scope::namespaces)?;
    access.visible(namespaces).await.map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("cannot scope the answer to your namespaces: {e}"),
        )
    })
}

/// A what-if answer without the models of namespaces the view holds that the caller may not
/// see (a what-if over the live input plans every tenant's models).
async fn visible_whatif(
    view: &SharedView,
    access: &Access,
    plan: PlanOutput,
) -> Result<PlanOutput, ApiError> {
    let live = with_view(view, crate::scope::namespaces)?;
    let visible = visible(view, access).await?;
    Ok(visible.whatif(plan, &live))
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Reads the view and copies out what `f` picks; the lock is released before returning.
fn with_view<T>(view: &SharedView, f: impl FnOnce(&ControllerView) -> T) -> Result<T, ApiError> {
    let guard: RwLockReadGuard<'_, ControllerView> =
        view.read().map_err(|_| ApiError::poisoned())?;
    Ok(f(&guard))
}

async fn plan(
    State(s): State<AppState>,
    Extension(access): Extension<Access>,
) -> Result<Json<PlanOutput>, ApiError> {
    let visible = visible(&s.view, &access).await?;
    let (plan, last_error) = with_view(&s.view, |v| (v.plan.clone(), v.last_error.clone()))?;
    let last_error = visible.last_error(last_error);
    plan.map(|p| Json(visible.plan(p)))
        .ok_or_else(|| ApiError::no_plan_yet(last_error.as_deref()))
}

async fn input(
    State(s): State<AppState>,
    Extension(access): Extension<Access>,
) -> Result<Json<PlanInput>, ApiError> {
    let visible = visible(&s.view, &access).await?;
    let (input, last_error) = with_view(&s.view, |v| (v.last_input.clone(), v.last_error.clone()))?;
    let last_error = visible.last_error(last_error);
    input
        .map(|i| Json(visible.input(i)))
        .ok_or_else(|| ApiError::no_plan_yet(last_error.as_deref()))
}

/// Body of `GET /api/v1/status`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusBody {
    ready: bool,
    leader: bool,
    has_plan: bool,
    last_error: Option<String>,
    models: usize,
    decisions: usize,
}

async fn status(
    State(s): State<AppState>,
    Extension(access): Extension<Access>,
) -> Result<Json<StatusBody>, ApiError> {
    let visible = visible(&s.view, &access).await?;
    with_view(&s.view, |v| StatusBody {
        ready: v.ready,
        leader: v.leader,
        has_plan: v.plan.is_some(),
        last_error: visible.last_error(v.last_error.clone()),
        models: visible.models(&v.models).len(),
        decisions: visible.decisions(&v.decisions).len(),
    })
    .map(Json)
}

async fn models(
    State(s): State<AppState>,
    Extension(access): Extension<Access>,
) -> Result<Response, ApiError> {
    let visible = visible(&s.view, &access).await?;
    with_view(&s.view, |v| Json(visible.models(&v.models)).into_response())
}

async fn model(
    State(s): State<AppState>,
    Extension(access): Extension<Access>,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let visible = access.visible([ns.clone()]).await.map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("cannot check access: {e}"),
        )
    })?;
    if !visible.contains(&ns) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "you may not get variantautoscalings.wvo.dev in namespace {ns}: ask for a Role granting it there"
            ),
        ));
    }
    with_view(&s.view, |v| {
        v.models
            .iter()
            .find(|m| m.namespace == ns && m.name == name)
            .map(|m| Json(m).into_response())
    })?
    .ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no VariantAutoscaling {ns}/{name} in the last plan"),
        )
    })
}

async fn accelerators(State(s): State<AppState>) -> Result<Response, ApiError> {
    with_view(&s.view, |v| Json(&v.accelerators).into_response())
}

async fn decisions(
    State(s): State<AppState>,
    Extension(access): Extension<Access>,
) -> Result<Response, ApiError> {
    let visible = visible(&s.view, &access).await?;
    with_view(&s.view, |v| {
        Json(visible.decisions(&v.decisions)).into_response()
    })
}

async fn history(
    State(s): State<AppState>,
    Extension(access): Extension<Access>,
) -> Result<Json<HistoryBody>, ApiError> {
    let visible = visible(&s.view, &access).await?;
    with_view(&s.view, |v| Json(v.history.body(&visible)))
}

async fn whatif(State(s): State<AppState>, request: Request) -> Response {
    // Set by the auth layer on every request it lets through; never defaulted (fail closed).
    let access = request.extensions().get::<Access>().cloned();
    let answer = match access {
        Some(access) => match whatif_answer(&s, request).await {
            // The answer may hold every tenant's live models: scoped like /plan.
            Ok(plan) => visible_whatif(&s.view, &access, plan).await,
            Err(e) => Err(e),
        },
        None => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "what-if: no access decision on the request",
        )),
    };
    let response = match answer {
        Ok(plan) => Json(plan).into_response(),
        Err(e) => e.into_response(),
    };
    s.metrics.count_whatif(response.status().as_u16());
    response
}

/// Admits, reads and plans one what-if before its deadline (module doc, "Limits").
async fn whatif_answer(s: &AppState, request: Request) -> Result<PlanOutput, ApiError> {
    let limits = s.whatif.limits().clone();
    let deadline = tokio::time::Instant::now() + limits.deadline;
    let retry = limits.retry_after_seconds;
    let slot = s.whatif.admit(deadline).await.map_err(|refused| match refused {
        Refused::QueueFull => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "what-if: {} planning and {} waiting, the most allowed; retry after {retry} s",
                limits.concurrency, limits.queue
            ),
        )
        .retry_after(retry),
        Refused::WaitedTooLong => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "what-if: no planning slot freed within the request deadline of {} s; retry after {retry} s",
                limits.deadline.as_secs_f64()
            ),
        )
        .retry_after(retry),
        Refused::NoThread(e) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("what-if: could not start a planning thread ({e}); retry after {retry} s"),
        )
        .retry_after(retry),
    })?;
    let read = axum::body::to_bytes(request.into_body(), limits.max_body_bytes);
    let body = match tokio::time::timeout_at(deadline, read).await {
        Ok(Ok(body)) => body,
        Ok(Err(e)) if is_length_limit(&e) => {
            return Err(ApiError::body_too_large(
                "/api/v1/whatif",
                None,
                limits.max_body_bytes,
            ))
        }
        Ok(Err(e)) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("body: could not be read ({e})"),
            ))
        }
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "body: not received within the request deadline of {} s",
                    limits.deadline.as_secs_f64()
                ),
            )
            .retry_after(retry))
        }
    };
    let view = s.view.clone();
    let metrics = s.metrics.clone();
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    let job_limits = limits.clone();
    let running = s
        .whatif
        .spawn(slot, move |planner, cancel| {
            let started = std::time::Instant::now();
            let answer = plan_whatif(&body, &view, &job_limits, left, planner, cancel);
            drop(body);
            metrics.observe_whatif_solve(started.elapsed().as_secs_f64());
            answer
        })
        .map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "what-if: could not start a planning thread ({e:?}); retry after {retry} s"
                ),
            )
            .retry_after(retry)
        })?;
    match running.answer_before(deadline).await {
        Ok(answer) => answer,
        Err(Ended::Deadline) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "what-if: not planned within the request deadline of {} s (the solve was cancelled); plan fewer models or retry after {retry} s",
                limits.deadline.as_secs_f64()
            ),
        )
        .retry_after(retry)),
        Err(Ended::Panicked) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "planner crashed",
        )),
    }
}

/// Whether reading a body failed on its length limit.
fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// The worker thread's part of a what-if: parse, overlay, count, choose the solver, plan.
fn plan_whatif(
    body: &[u8],
    view: &SharedView,
    limits: &WhatIfLimits,
    left: Duration,
    planner: &Planner,
    cancel: &Cancel,
) -> Result<PlanOutput, ApiError> {
    let overlay = parse_whatif(body)?;
    let mut input = if overlay.input.models.is_empty() {
        let base = with_view(view, |v| v.last_input.clone())?;
        let Some(base) = base else {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "models: empty, and there is no live plan input to apply the what-if to yet \
                 (the first control cycle has not completed); list the models to plan",
            ));
        };
        apply_overlay(base, overlay)
    } else {
        overlay.input
    };
    check_size(&input, limits)?;
    let downgraded = choose_solver(&mut input, limits);
    let asked = input.options.time_limit_seconds();
    input.options.time_limit_seconds = Some(asked.min(left.as_secs_f64()));
    match planner(&input, cancel) {
        Ok(mut plan) => {
            plan.warnings.extend(downgraded);
            Ok(plan)
        }
        Err(PlanError::Cancelled) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "what-if: the solve was cancelled (the request's deadline passed)",
        )
        .retry_after(limits.retry_after_seconds)),
        Err(e @ PlanError::Solver(_)) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            e.to_string(),
        )),
        Err(e) => Err(ApiError::new(StatusCode::BAD_REQUEST, e.to_string())),
    }
}

/// 413 when the input has more models or variants than the limits allow.
fn check_size(input: &PlanInput, limits: &WhatIfLimits) -> Result<(), ApiError> {
    let models = input.models.len();
    let variants = variant_count(input);
    if models > limits.max_models {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "models: {models} models, over the what-if limit of {}; plan fewer models",
                limits.max_models
            ),
        ));
    }
    if variants > limits.max_variants {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "models[].variants: {variants} variants in all, over the what-if limit of {}; plan fewer variants",
                limits.max_variants
            ),
        ));
    }
    Ok(())
}

fn variant_count(input: &PlanInput) -> usize {
    input.models.iter().map(|m| m.variants.len()).sum()
}

/// The server's choice of solver: `exact` only up to [`WhatIfLimits::exact_max_variants`]
/// variants, else `fast`; returns the warning to add to the answer when it overrode the
/// request.
fn choose_solver(input: &mut PlanInput, limits: &WhatIfLimits) -> Option<String> {
    let variants = variant_count(input);
    if input.options.solver != SolverChoice::Exact || variants <= limits.exact_max_variants {
        return None;
    }
    input.options.solver = SolverChoice::Fast;
    Some(format!(
        "options.solver: exact is honoured for at most {} variants on this server and the input has {variants}; \
         this is the decomposition's plan (solver: fast)",
        limits.exact_max_variants
    ))
}

/// A parsed what-if body and which optional parts it gave.
struct WhatIf {
    input: PlanInput,
    has_options: bool,
}

fn parse_whatif(body: &[u8]) -> Result<WhatIf, ApiError> {
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, m);
    let mut value: Value = serde_json::from_slice(body).map_err(|e| {
        bad(format!(
            "body: not JSON ({e}); send a `wvo plan` input as JSON"
        ))
    })?;
    let Some(object) = value.as_object_mut() else {
        return Err(bad(
            "body: must be a JSON object in the `wvo plan` input form (inventory, models, load, current, options)"
                .into(),
        ));
    };
    let has_options = object.contains_key("options");
    object
        .entry("inventory")
        .or_insert_with(|| Value::Array(Vec::new()));
    object
        .entry("models")
        .or_insert_with(|| Value::Array(Vec::new()));
    let input: PlanInput = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            bad(format!("body: {inner}"))
        } else {
            bad(format!("{path}: {inner}"))
        }
    })?;
    Ok(WhatIf { input, has_options })
}

/// Applies a what-if overlay (a body without models) to the live input.
fn apply_overlay(mut base: PlanInput, overlay: WhatIf) -> PlanInput {
    let WhatIf { input, has_options } = overlay;
    for acc in input.inventory {
        match base.inventory.iter_mut().find(|a| a.name == acc.name) {
            Some(live) => *live = acc,
            None => base.inventory.push(acc),
        }
    }
    for (model, mut load) in input.load {
        if let Some(live) = base.load.get(&model) {
            load.avg_input_tokens = load.avg_input_tokens.or(live.avg_input_tokens);
            load.avg_output_tokens = load.avg_output_tokens.or(live.avg_output_tokens);
        }
        base.load.insert(model, load);
    }
    for (model, replicas) in input.current {
        base.current.insert(model, replicas);
    }
    if has_options {
        base.options = input.options;
    }
    base
}

async fn metrics_text(State(s): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)],
        s.metrics.encode(),
    )
        .into_response()
}

async fn healthz(State(s): State<AppState>) -> Response {
    let now = crate::reconciler::now_seconds();
    // Read through a poisoned lock: liveness is about the loop's heartbeat, which a panic in
    // another reader or writer of the view does not stop (the other endpoints answer 500).
    let not_alive = match s.view.read() {
        Ok(v) => v.not_alive(now),
        Err(poisoned) => poisoned.into_inner().not_alive(now),
    };
    match not_alive {
        None => Json(json!({ "status": "ok" })).into_response(),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not alive", "error": one_line(&why) })),
        )
            .into_response(),
    }
}

async fn readyz(State(s): State<AppState>) -> Result<Response, ApiError> {
    let now = crate::reconciler::now_seconds();
    let (ready, role, last_error) = with_view(&s.view, |v| {
        // Healthy as leader (a cycle completed, cycles keep completing) or as standby (the
        // loop beats and the election runs, ready to take over).
        let alive = v.not_alive(now);
        let ready = match (&alive, v.leader) {
            (Some(_), _) => Err(alive.clone().unwrap_or_default()),
            (None, true) if v.ready => Ok("leader"),
            (None, true) => Err("the first control cycle has not completed".to_string()),
            (None, false) if v.heartbeat_unix.is_some() => Ok("standby"),
            (None, false) => Err("the control loop has not started".to_string()),
        };
        (ready.clone().is_ok(), ready, v.last_error.clone())
    })?;
    if ready {
        let role = role.unwrap_or_default();
        Ok(Json(json!({ "status": "ready", "role": role })).into_response())
    } else {
        let why = role.err().unwrap_or_default();
        let mut body = json!({
            "status": "not ready",
            "error": why,
        });
        if let Some(e) = last_error {
            body["lastError"] = Value::String(one_line(&e));
        }
        Ok((StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response())
    }
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no endpoint {}; see /openapi.json for the API", uri.path()),
    )
}

async fn openapi() -> Json<Value> {
    Json(openapi_document())
}

async fn dashboard() -> Html<&'static str> {
    Html(DASHBOARD_HTML)
}

/// The OpenAPI 3 document describing every endpoint of [`router`].
pub fn openapi_document() -> Value {
    let err = |description: &str| {
        json!({
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
        })
    };
    let ok = |description: &str, schema: Value| {
        json!({
            "description": description,
            "content": {"application/json": {"schema": schema}}
        })
    };
    let r = |name: &str| json!({ "$ref": format!("#/components/schemas/{name}") });
    let list = |name: &str| json!({ "type": "array", "items": { "$ref": format!("#/components/schemas/{name}") } });
    let mut doc = json!({
        "openapi": "3.0.3",
        "info": {
            "title": "wvo status API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Read-only state of the wvo controller: the last plan, models (VariantAutoscalings) and their variants, accelerator use, replica decisions, and a what-if planner that acts on nothing."
        },
        "paths": {
            "/api/v1/plan": {"get": {
                "operationId": "getPlan",
                "summary": "The last plan, before stabilization (the `wvo plan --output json` form). Model names are `namespace/name`.",
                "responses": {
                    "200": ok("The last plan", r("PlanOutput")),
                    "503": err("No plan yet: the first control cycle has not completed"),
                    "500": err("Controller view unavailable")
                }
            }},
            "/api/v1/input": {"get": {
                "operationId": "getInput",
                "summary": "The plan input the last plan was made from (the `wvo plan` input form): the base of what-if overlays.",
                "responses": {
                    "200": ok("The live plan input", r("PlanInput")),
                    "503": err("No plan yet: the first control cycle has not completed"),
                    "500": err("Controller view unavailable")
                }
            }},
            "/api/v1/status": {"get": {
                "operationId": "getStatus",
                "summary": "Readiness, leadership and the last cycle's error.",
                "responses": {
                    "200": ok("Controller status", r("Status")),
                    "500": err("Controller view unavailable")
                }
            }},
            "/api/v1/models": {"get": {
                "operationId": "listModels",
                "summary": "Every model (VariantAutoscaling) as last planned, with per-variant current/desired replicas.",
                "responses": {
                    "200": ok("Models in a stable order", list("ModelView")),
                    "500": err("Controller view unavailable")
                }
            }},
            "/api/v1/models/{ns}/{name}": {"get": {
                "operationId": "getModel",
                "summary": "One model (VariantAutoscaling) as last planned.",
                "parameters": [
                    {"name": "ns", "in": "path", "required": true, "description": "Namespace of the VariantAutoscaling", "schema": {"type": "string"}},
                    {"name": "name", "in": "path", "required": true, "description": "Name of the VariantAutoscaling", "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": ok("The model", r("ModelView")),
                    "404": err("No such VariantAutoscaling in the last plan"),
                    "500": err("Controller view unavailable")
                }
            }},
            "/api/v1/accelerators": {"get": {
                "operationId": "listAccelerators",
                "summary": "GPUs available to the planner, used by the desired replicas, and cost, per accelerator type.",
                "responses": {
                    "200": ok("Accelerator types", list("AcceleratorView")),
                    "500": err("Controller view unavailable")
                }
            }},
            "/api/v1/decisions": {"get": {
                "operationId": "listDecisions",
                "summary": "Recent replica decisions, newest last.",
                "responses": {
                    "200": ok("Decisions", list("DecisionRecord")),
                    "500": err("Controller view unavailable")
                }
            }},
            "/api/v1/history": {"get": {
                "operationId": "getHistory",
                "summary": "Per-cycle series kept in memory for a bounded window (default the last hour, at most 720 cycles and 100 model series): load vs capacity, cost, replicas per accelerator type, measured latency and SLO attainment. Totals are summed over the models the caller may see.",
                "responses": {
                    "200": ok("The series, oldest first", r("History")),
                    "500": err("Controller view unavailable")
                }
            }},
            "/api/v1/whatif": {"post": {
                "operationId": "whatIf",
                "summary": "Plan a hypothetical input; acts on nothing.",
                "description": "The body is a plan input in the `wvo plan` form. With `models` listed it is planned as is (the same answer as `wvo plan --output json`). With `models` empty or absent it overlays the live input (GET /api/v1/input): listed inventory types replace the live ones of the same name, listed loads replace the live ones (token averages left out keep their live values), listed current replicas replace the live ones, and `options`, when present, replace the live options. Limits: a body size, a model and variant count, one planning slot and a short wait queue, a request deadline; `options.solver: exact` is honoured only for small inputs (else the decomposition plans and `warnings` says so), and `options.timeLimitSeconds` is clamped to the time the request has left.",
                "requestBody": {"required": true, "content": {"application/json": {"schema": r("PlanInput")}}},
                "responses": {
                    "200": ok("The plan", r("PlanOutput")),
                    "400": err("Bad body: the message names the field"),
                    "413": err("The body, or its model or variant count, is over the limit the message names"),
                    "429": err("Every planning slot is busy and the wait queue is full; see Retry-After"),
                    "503": err("An overlay was sent before the first control cycle completed, or the request's deadline passed while it waited or planned (the solve is cancelled); see Retry-After"),
                    "500": err("The solver failed")
                }
            }},
            "/openapi.json": {"get": {
                "operationId": "getOpenApi",
                "summary": "This document.",
                "responses": {"200": ok("OpenAPI 3 document", json!({"type": "object"}))}
            }},
            "/metrics": {"get": {
                "operationId": "getMetrics",
                "summary": "Controller metrics: cycle and solve time, desired/current replicas per variant, errors by kind, leadership.",
                "responses": {"200": {
                    "description": "OpenMetrics text",
                    "content": {"application/openmetrics-text; version=1.0.0; charset=utf-8": {"schema": {"type": "string"}}}
                }}
            }},
            "/healthz": {"get": {
                "operationId": "healthz",
                "summary": "Liveness: 200 while the control loop completes cycles (or ticks as a follower); 503 when none completed for --liveness-cycles intervals or the leader election ended.",
                "responses": {"200": ok("Alive", r("Probe")), "503": ok("Not alive (why in `error`)", r("Error"))}
            }},
            "/readyz": {"get": {
                "operationId": "readyz",
                "summary": "Readiness: 200 once the first control cycle completed.",
                "responses": {
                    "200": ok("Ready", r("Probe")),
                    "503": ok("Not ready yet", r("Probe")),
                    "500": err("Controller view unavailable")
                }
            }},
            "/": {"get": {
                "operationId": "dashboard",
                "summary": "Capacity-planning dashboard (HTML).",
                "responses": {"200": {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}}
            }}
        },
        "components": {"schemas": schemas()}
    });
    crate::auth::describe(&mut doc);
    doc
}

fn schemas() -> Value {
    let num = json!({"type": "number"});
    let int = json!({"type": "integer", "minimum": 0});
    let s = json!({"type": "string"});
    let mut schemas = json!({
        "Error": {"type": "object", "required": ["error"], "properties": {
            "error": {"type": "string", "description": "One-line message; names the field for a bad what-if body"}
        }},
        "Probe": {"type": "object", "properties": {
            "status": s, "error": s, "lastError": s
        }},
        "Status": {"type": "object", "properties": {
            "ready": {"type": "boolean"}, "leader": {"type": "boolean"},
            "hasPlan": {"type": "boolean"}, "lastError": {"type": "string", "nullable": true},
            "models": int, "decisions": int
        }},
        "PlanInput": {"type": "object", "additionalProperties": false, "properties": {
            "inventory": {"type": "array", "items": {"$ref": "#/components/schemas/AcceleratorType"}},
            "models": {"type": "array", "items": {"$ref": "#/components/schemas/ModelSpec"}},
            "load": {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/ModelLoad"}},
            "current": {"type": "object", "additionalProperties": {"type": "object", "additionalProperties": int}},
            "options": {"$ref": "#/components/schemas/PlanOptions"}
        }},
        "AcceleratorType": {"type": "object", "additionalProperties": false, "required": ["name", "count", "costPerHour"], "properties": {
            "name": s, "count": int, "costPerHour": {"type": "number", "minimum": 0}
        }},
        "ModelSpec": {"type": "object", "additionalProperties": false, "required": ["name", "variants"], "properties": {
            "name": s, "modelID": s, "priority": {"type": "integer"}, "weight": num,
            "slo": {"$ref": "#/components/schemas/Slo"},
            "minReplicas": int, "maxReplicas": int,
            "variants": {"type": "array", "items": {"$ref": "#/components/schemas/VariantSpec"}}
        }},
        "Slo": {"type": "object", "additionalProperties": false, "required": ["ttftMs", "itlMs"], "properties": {
            "ttftMs": num, "itlMs": num
        }},
        "VariantSpec": {"type": "object", "additionalProperties": false, "required": ["name", "accelerator"], "properties": {
            "name": s, "accelerator": s, "gpusPerReplica": int, "minReplicas": int, "maxReplicas": int,
            "maxRequestsPerSecond": num, "profile": {"$ref": "#/components/schemas/Profile"}
        }},
        "Profile": {"type": "object", "additionalProperties": false, "required": ["alpha", "beta", "gamma", "delta", "maxBatchSize"], "properties": {
            "alpha": num, "beta": num, "gamma": num, "delta": num, "maxBatchSize": int
        }},
        "ModelLoad": {"type": "object", "additionalProperties": false, "required": ["arrivalRate"], "properties": {
            "arrivalRate": num, "avgInputTokens": num, "avgOutputTokens": num
        }},
        "PlanOptions": {"type": "object", "additionalProperties": false, "properties": {
            "headroom": num, "solver": {"type": "string", "enum": ["auto", "exact", "fast"]}
        }},
        "PlanOutput": {"type": "object", "required": ["feasible", "totalCostPerHour", "lowerBoundCostPerHour", "solveMillis", "solver", "variants", "models", "accelerators"], "properties": {
            "feasible": {"type": "boolean"}, "totalCostPerHour": num,
            "lowerBoundCostPerHour": {"type": "number", "nullable": true},
            "solveMillis": num, "solver": {"type": "string", "enum": ["milp", "decomposition"]},
            "variants": {"type": "array", "items": {"$ref": "#/components/schemas/VariantPlan"}},
            "models": {"type": "array", "items": {"$ref": "#/components/schemas/ModelPlan"}},
            "accelerators": {"type": "array", "items": {"$ref": "#/components/schemas/AcceleratorUse"}},
            "shortfall": {"type": "array", "items": {"$ref": "#/components/schemas/Shortfall"}},
            "warnings": {"type": "array", "items": s}
        }},
        "VariantPlan": {"type": "object", "properties": {
            "model": s, "variant": s, "accelerator": s, "replicas": int, "gpus": int,
            "costPerHour": num, "capacityRps": num
        }},
        "ModelPlan": {"type": "object", "properties": {
            "model": s, "demandRps": num, "servedRps": num, "satisfaction": num
        }},
        "AcceleratorUse": {"type": "object", "properties": {
            "name": s, "available": int, "used": int
        }},
        "Shortfall": {"type": "object", "properties": {
            "accelerator": s, "missingGpus": int, "unmetRps": num
        }},
        "ModelView": {"type": "object", "properties": {
            "namespace": s, "name": s, "modelID": s, "priority": {"type": "integer"},
            "arrivalRate": {"type": "number", "nullable": true}, "demandRps": num, "satisfaction": num,
            "metricsUnknown": {"type": "string", "nullable": true},
            "variants": {"type": "array", "items": {"$ref": "#/components/schemas/VariantView"}},
            "conditions": {"type": "array", "items": {"$ref": "#/components/schemas/ConditionView"}},
            "latency": {"$ref": "#/components/schemas/LatencyView"}
        }},
        "LatencyView": {"type": "object", "description": "Latencies the model's servers measured over the last window, ms, against its SLO; absent when none were reported", "properties": {
            "ttftMeanMs": {"type": "number", "nullable": true}, "ttftP95Ms": {"type": "number", "nullable": true},
            "itlMeanMs": {"type": "number", "nullable": true}, "itlP95Ms": {"type": "number", "nullable": true},
            "ttftTargetMs": {"type": "number", "nullable": true}, "itlTargetMs": {"type": "number", "nullable": true},
            "percentile": {"type": "number", "nullable": true},
            "withinSlo": {"type": "boolean", "nullable": true}
        }},
        "VariantView": {"type": "object", "properties": {
            "name": s, "accelerator": s, "current": int, "ready": int, "pending": int,
            "planned": int, "desired": int, "capacityRps": num, "costPerHour": num, "reason": s
        }},
        "ConditionView": {"type": "object", "properties": {
            "type": s, "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
            "reason": s, "message": s
        }},
        "AcceleratorView": {"type": "object", "properties": {
            "name": s, "available": int, "used": int, "costPerHour": num
        }},
        "DecisionRecord": {"type": "object", "properties": {
            "time": {"type": "string", "format": "date-time"}, "namespace": s, "name": s,
            "variant": s, "from": int, "to": int, "reason": s, "actuated": {"type": "boolean"}
        }}
    });
    if let (Some(all), Value::Object(history)) = (schemas.as_object_mut(), history_schemas()) {
        all.extend(history);
    }
    schemas
}

/// The schemas of `GET /api/v1/history` ([`HistoryBody`]).
fn history_schemas() -> Value {
    let num = json!({"type": "number"});
    let int = json!({"type": "integer", "minimum": 0});
    let s = json!({"type": "string"});
    json!({
        "History": {"type": "object", "required": ["windowSeconds", "maxPoints", "maxModels", "times", "desiredCostPerHour", "currentCostPerHour", "costToDate", "models", "accelerators", "attainment"], "properties": {
            "windowSeconds": num, "maxPoints": int, "maxModels": int,
            "modelsNotKept": {"type": "integer", "minimum": 0, "description": "Models of the last cycle not recorded because maxModels series were live (only for callers who see every namespace)"},
            "times": {"type": "array", "items": num, "description": "Completed cycles, UNIX s, oldest first; the arrays below without their own times align with it"},
            "desiredCostPerHour": {"type": "array", "items": num, "description": "$/h of the desired replicas of the visible models"},
            "currentCostPerHour": {"type": "array", "items": num, "description": "$/h of the current replicas of the visible models"},
            "costToDate": {"type": "array", "items": num, "description": "$ of the current replicas integrated from the first cycle kept (each cycle's $/h holds until the next)"},
            "models": {"type": "array", "items": {"$ref": "#/components/schemas/ModelSeries"}},
            "accelerators": {"type": "array", "items": {"$ref": "#/components/schemas/AcceleratorSeries"}},
            "attainment": {"$ref": "#/components/schemas/Attainment"}
        }},
        "ModelSeries": {"type": "object", "description": "One entry per cycle in which the model was published, at `times`", "properties": {
            "namespace": s, "name": s,
            "times": {"type": "array", "items": num},
            "arrivalRate": {"type": "array", "items": {"type": "number", "nullable": true}},
            "demandRps": {"type": "array", "items": num},
            "capacityRps": {"type": "array", "items": num, "description": "Capacity of the desired replicas, req/s"},
            "costPerHour": {"type": "array", "items": num, "description": "$/h of the desired replicas"},
            "plannedCoverage": {"type": "array", "items": num, "description": "The planner's share of demand served (0..1): planned, not measured"},
            "ttftP95Ms": {"type": "array", "items": {"type": "number", "nullable": true}},
            "itlP95Ms": {"type": "array", "items": {"type": "number", "nullable": true}},
            "ttftMeanMs": {"type": "array", "items": {"type": "number", "nullable": true}},
            "itlMeanMs": {"type": "array", "items": {"type": "number", "nullable": true}},
            "ttftTargetMs": {"type": "array", "items": {"type": "number", "nullable": true}},
            "itlTargetMs": {"type": "array", "items": {"type": "number", "nullable": true}},
            "withinSlo": {"type": "array", "items": {"type": "boolean", "nullable": true}, "description": "Whether the measured window met the SLO; null when the figures cannot tell"},
            "percentile": {"type": "number", "nullable": true, "description": "The SLO's percentile at the last measured point; null when the targets are means"},
            "attainment": {"$ref": "#/components/schemas/Attainment"}
        }},
        "AcceleratorSeries": {"type": "object", "properties": {
            "name": s,
            "current": {"type": "array", "items": int},
            "desired": {"type": "array", "items": int}
        }},
        "Attainment": {"type": "object", "description": "Measured SLO attainment: of the cycles whose measured latencies could tell, how many met the SLO", "properties": {
            "met": int, "measured": int, "undecided": int, "share": {"type": "number", "nullable": true}
        }}
    })
}

/// The dashboard: plain HTML, a script and hand-drawn SVG over the JSON endpoints (no
/// external resource: it works offline). Constant, carrying no data: with authentication its
/// script asks for a token on a 401 and sends it with every API call.
const DASHBOARD_HTML: &str = include_str!("dashboard.html");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_lists_every_path() {
        let doc = openapi_document();
        for path in PATHS {
            assert!(doc["paths"].get(*path).is_some(), "{path} missing");
        }
        assert_eq!(doc["paths"].as_object().map(|p| p.len()), Some(PATHS.len()));
    }

    #[test]
    fn bad_body_names_the_field() {
        let e = parse_whatif(br#"{"load": {"m": {"arrivalRate": "x"}}}"#)
            .err()
            .map(|e| e.message);
        let e = e.unwrap_or_default();
        assert!(e.starts_with("load.m.arrivalRate:"), "{e}");
    }
}
