//! An emulated vLLM server: one replica = one `wvo_perf::batching` engine, served over
//! HTTP on its own 127.0.0.1 port.
//!
//! ```text
//!  POST /v1/completions ─┐                       ┌─► Completion (response when it finishes)
//!  ModelServer::submit ──┼─► Replica (engine) ───┤
//!                        │   virtual ms = wall ms × speed
//!  GET /metrics ─────────┘                       └─► vLLM V1 / V0 / SGLang text format
//! ```
//!
//! - [`Replica`] is the pure core on virtual time: tests that need no HTTP and no wall
//!   clock submit and advance it directly (fast, deterministic).
//! - [`ModelServer`] drives a replica with the wall clock scaled by `speed` (virtual ms per
//!   wall ms; 1 = real time, 10 = ten times faster). Latency metrics are in virtual
//!   seconds, so with `speed != 1` rates seen by a scraper (per wall second) are `speed`
//!   times the virtual rates: use `speed = 1` when comparing with Prometheus.
//!
//! `POST /v1/completions` accepts the OpenAI shape: `prompt` (a string: one token per
//! whitespace-separated word; or an array of token ids), `max_tokens` (default 16), and
//! the extension `prompt_tokens` (a count that overrides `prompt`). The emulator always
//! generates exactly `max_tokens` tokens (`finish_reason: "length"`).

pub mod exposition;
pub mod paced;
mod replica;

pub use replica::{MetricsFlavor, Replica, ReplicaConfig, Served};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, Notify};
use wvo_perf::batching::Completion;
use wvo_perf::PerfError;

/// Errors of the emulated server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listening socket could not be opened.
    #[error("bind {addr}: {source}")]
    Bind {
        /// Address tried.
        addr: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The engine refused the configuration or the request.
    #[error("engine: {0}")]
    Engine(#[from] PerfError),
    /// `speed` must be finite and > 0.
    #[error("speed must be finite and > 0, got {0}")]
    BadSpeed(f64),
    /// The server stopped before the request finished.
    #[error("server stopped")]
    Stopped,
}

/// Configuration of one emulated server.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerConfig {
    /// The replica.
    pub replica: ReplicaConfig,
    /// Virtual ms per wall ms (1 = real time).
    pub speed: f64,
}

struct Core {
    replica: Replica,
    waiters: HashMap<u64, oneshot::Sender<Completion>>,
}

struct Shared {
    core: Mutex<Core>,
    notify: Notify,
    start: Instant,
    speed: f64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn virtual_now_ms(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * 1000.0 * self.speed
    }

    /// Advance the replica to now and hand finished requests to their waiters.
    fn catch_up(core: &mut Core, now_ms: f64) {
        for c in core.replica.advance_to(now_ms) {
            if let Some(tx) = core.waiters.remove(&c.id) {
                let _ = tx.send(c);
            }
        }
    }

    fn submit(&self, input: u32, output: u32) -> Result<oneshot::Receiver<Completion>, PerfError> {
        let (tx, rx) = oneshot::channel();
        {
            let mut core = self.lock();
            let now = self.virtual_now_ms().max(core.replica.now_ms());
            Self::catch_up(&mut core, now);
            let id = core.replica.submit(now, input, output)?;
            core.waiters.insert(id, tx);
        }
        self.notify.notify_one();
        Ok(rx)
    }

    fn metrics(&self) -> String {
        let mut core = self.lock();
        let now = self.virtual_now_ms();
        Self::catch_up(&mut core, now);
        core.replica.metrics_text()
    }
}

/// A running emulated server. Dropping it stops the server.
pub struct ModelServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for ModelServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelServer")
            .field("addr", &self.addr)
            .finish()
    }
}

impl ModelServer {
    /// Start a server on a free 127.0.0.1 port (inside a tokio runtime).
    pub async fn start(cfg: ServerConfig) -> Result<ModelServer, ServerError> {
        if !(cfg.speed.is_finite() && cfg.speed > 0.0) {
            return Err(ServerError::BadSpeed(cfg.speed));
        }
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let replica = Replica::new(cfg.replica, created)?;
        let shared = Arc::new(Shared {
            core: Mutex::new(Core {
                replica,
                waiters: HashMap::new(),
            }),
            notify: Notify::new(),
            start: Instant::now(),
            speed: cfg.speed,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|source| ServerError::Bind {
                addr: "127.0.0.1:0".into(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: "127.0.0.1:0".into(),
            source,
        })?;
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (drv_stop_tx, mut drv_stop_rx) = tokio::sync::watch::channel(false);
        let app = Router::new()
            .route("/v1/completions", post(completions))
            .route("/metrics", get(metrics))
            .route("/health", get(|| async { "ok" }))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            let res = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop_rx.await;
                    let _ = drv_stop_tx.send(true);
                })
                .await;
            if let Err(e) = res {
                tracing::warn!(error = %e, "emulated model server stopped with an error");
            }
        });
        let drv_shared = shared.clone();
        let driver = tokio::spawn(async move {
            loop {
                let wait = {
                    let mut core = drv_shared.lock();
                    let now = drv_shared.virtual_now_ms();
                    Shared::catch_up(&mut core, now);
                    match core.replica.next_event_ms() {
                        Some(t) => {
                            let wall_ms = (t - now).max(0.0) / drv_shared.speed;
                            Duration::from_secs_f64(wall_ms / 1000.0)
                        }
                        None => Duration::from_secs(3600),
                    }
                };
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = drv_shared.notify.notified() => {}
                    _ = drv_stop_rx.changed() => break,
                }
            }
        });
        Ok(ModelServer {
            addr,
            shared,
            stop: Some(stop_tx),
            tasks: vec![server, driver],
        })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The `/metrics` URL.
    pub fn metrics_url(&self) -> String {
        format!("http://{}/metrics", self.addr)
    }

    /// Submit a request without HTTP; resolves when it finishes.
    pub async fn submit(
        &self,
        input_tokens: u32,
        output_tokens: u32,
    ) -> Result<Completion, ServerError> {
        let rx = self.shared.submit(input_tokens, output_tokens)?;
        rx.await.map_err(|_| ServerError::Stopped)
    }

    /// What the server has served so far.
    pub fn served(&self) -> Served {
        self.shared.lock().replica.served()
    }

    /// The `/metrics` body now.
    pub fn metrics_text(&self) -> String {
        self.shared.metrics()
    }

    /// Stop serving and wait for the tasks to end.
    pub async fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }
}

impl Drop for ModelServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        for t in &self.tasks {
            t.abort();
        }
    }
}

#[derive(Deserialize)]
struct CompletionRequest {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    prompt: Option<serde_json::Value>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    prompt_tokens: Option<u32>,
}

fn bad_request(msg: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(
            serde_json::json!({"error": {"message": msg, "type": "BadRequestError", "code": 400}}),
        ),
    )
        .into_response()
}

fn prompt_len(req: &CompletionRequest) -> Result<u32, String> {
    if let Some(n) = req.prompt_tokens {
        return Ok(n);
    }
    match &req.prompt {
        None => Err("prompt or prompt_tokens is required".into()),
        Some(serde_json::Value::String(s)) => Ok(s.split_whitespace().count().max(1) as u32),
        Some(serde_json::Value::Array(a)) => Ok(a.len() as u32),
        Some(_) => Err("prompt must be a string or an array of token ids".into()),
    }
}

async fn completions(
    State(shared): State<Arc<Shared>>,
    body: Result<Json<CompletionRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) => return bad_request(e.body_text()),
    };
    let input = match prompt_len(&req) {
        Ok(n) => n,
        Err(e) => return bad_request(e),
    };
    let output = req.max_tokens.unwrap_or(16);
    let model = {
        let core = shared.lock();
        core.replica.config().model_name.clone()
    };
    if let Some(m) = &req.model {
        if *m != model {
            return (
                StatusCode::NOT_FOUND,
                Json(serde_json::json!({"error": {"message": format!("The model `{m}` does not exist."), "type": "NotFoundError", "code": 404}})),
            )
                .into_response();
        }
    }
    let rx = match shared.submit(input, output) {
        Ok(rx) => rx,
        Err(e) => return bad_request(e.to_string()),
    };
    let Ok(c) = rx.await else {
        return (StatusCode::SERVICE_UNAVAILABLE, "server stopped").into_response();
    };
    Json(serde_json::json!({
        "id": format!("cmpl-{}", c.id),
        "object": "text_completion",
        "model": model,
        "choices": [{"index": 0, "text": " tok".repeat(c.output_tokens as usize), "finish_reason": "length"}],
        "usage": {
            "prompt_tokens": c.input_tokens,
            "completion_tokens": c.output_tokens,
            "total_tokens": c.input_tokens + c.output_tokens
        },
        "wvo": {"ttft_ms": c.ttft_ms, "e2e_ms": c.e2e_ms, "queue_ms": c.queue_ms, "preemptions": c.preemptions}
    }))
    .into_response()
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        shared.metrics(),
    )
        .into_response()
}
