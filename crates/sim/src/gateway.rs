//! An emulated inference gateway (the EPP of the Gateway API Inference Extension / llm-d):
//! routes `POST /v1/completions` to the ready model server of the request's `model` with the
//! fewest requests in flight, and, like the EPP's flow control, **holds** a request while its
//! model has no ready server, for at most a hold time, forwarding it as soon as one appears.
//!
//! ```text
//!  client ── POST /v1/completions {"model": m} ──► Gateway ──► least-loaded backend of m
//!                                                     │ no backend: FIFO queue of m
//!                                                     │   (held ≤ hold, then 503, dropped)
//!  scraper ── GET /metrics ───────────────────────────┘
//!     inference_extension_flow_control_queue_size{model_name="m",...}  requests held now
//!     wvo_gateway_dropped_requests_total{model_name="m",reason="..."}  requests dropped
//! ```
//!
//! The owner says which servers are ready with [`Gateway::set_backends`] (e.g. whoever
//! watches the pods). Memory is bounded: at most [`GatewayConfig::max_queue`] held requests
//! per model (beyond that a request is refused with 429 and counted as dropped) and at most
//! [`GatewayConfig::max_models`] models named by clients (a request for another unknown
//! model is refused with 503 and dropped).

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::oneshot;

/// The flow-control queue gauge the gateway exports (the Gateway API Inference Extension's
/// name; llm-d's EPP also exports it, next to `llm_d_epp_flow_control_queue_size`).
pub const QUEUE_SIZE_METRIC: &str = "inference_extension_flow_control_queue_size";

/// The gateway's counter of dropped requests (emulator-specific name).
pub const DROPPED_METRIC: &str = "wvo_gateway_dropped_requests_total";

/// The gateway's counter of requests a backend answered with a 2xx (emulator-specific name).
pub const SERVED_METRIC: &str = "wvo_gateway_served_requests_total";

/// Errors of the emulated gateway.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The listening socket could not be opened.
    #[error("bind {addr}: {source}")]
    Bind {
        /// Address tried.
        addr: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP client that forwards requests could not be built.
    #[error("http client: {0}")]
    Client(String),
    /// A setting is out of range.
    #[error("{field}: {problem}")]
    Config {
        /// The setting.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
}

/// Settings of the emulated gateway.
#[derive(Clone, Debug, PartialEq)]
pub struct GatewayConfig {
    /// How long a request may wait for a backend of its model before it is answered 503
    /// and counted as dropped (the EPP flow control's request TTL).
    pub hold: Duration,
    /// Requests held per model at most; one more is refused at once with 429 and counted
    /// as dropped. At least 1.
    pub max_queue: usize,
    /// Models named by clients (not set by [`Gateway::set_backends`]) the gateway keeps
    /// track of at most; a request for another unknown model is refused with 503.
    pub max_models: usize,
    /// Timeout of a forwarded request (connection and response body included).
    pub backend_timeout: Duration,
    /// The `inference_pool` label of the exported series.
    pub pool: String,
}

impl Default for GatewayConfig {
    /// A 60 s hold, 1024 held requests per model, 256 client-named models, 300 s backend
    /// timeout, pool `pool`.
    fn default() -> Self {
        GatewayConfig {
            hold: Duration::from_secs(60),
            max_queue: 1024,
            max_models: 256,
            backend_timeout: Duration::from_secs(300),
            pool: "pool".into(),
        }
    }
}

/// What the gateway has done with its requests (per model, or summed over models).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GatewayStats {
    /// Requests a backend answered with a 2xx status.
    pub served: u64,
    /// Requests forwarded to a backend that failed (transport error, timeout, or a
    /// non-2xx status).
    pub failed: u64,
    /// Requests never forwarded: held past the hold time, refused on a full queue or an
    /// unknown model beyond `max_models`, or held when the gateway stopped.
    pub dropped: u64,
    /// Requests held now, waiting for a backend.
    pub held: usize,
    /// Requests forwarded and not finished now.
    pub in_flight: usize,
}

/// A backend of a model: its base URL and the requests sent to it and not finished.
#[derive(Clone, Debug)]
struct Backend {
    url: String,
    in_flight: Arc<AtomicUsize>,
}

/// A held request: its id and where its backend is sent.
#[derive(Debug)]
struct Waiter {
    id: u64,
    tx: oneshot::Sender<Backend>,
}

#[derive(Debug, Default)]
struct ModelEntry {
    backends: Vec<Backend>,
    /// Requests waiting for a backend, oldest first (empty whenever a backend exists).
    queue: VecDeque<Waiter>,
    served: u64,
    failed: u64,
    dropped_hold: u64,
    dropped_full: u64,
    dropped_stopped: u64,
    /// Set by [`Gateway::set_backends`] (not counted against `max_models`).
    owned: bool,
}

impl ModelEntry {
    /// The backend with the fewest requests in flight (the first on a tie).
    fn pick(&self) -> Option<&Backend> {
        self.backends
            .iter()
            .min_by_key(|b| b.in_flight.load(Ordering::Relaxed))
    }

    /// Hands held requests, oldest first, to the least-loaded backends while there are
    /// backends. A request whose client went away is skipped (its slot is given back).
    fn dispatch(&mut self) {
        while !self.queue.is_empty() {
            let Some(backend) = self.pick().cloned() else {
                return;
            };
            let Some(w) = self.queue.pop_front() else {
                return;
            };
            backend.in_flight.fetch_add(1, Ordering::Relaxed);
            if let Err(b) = w.tx.send(backend) {
                b.in_flight.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    fn dropped(&self) -> u64 {
        self.dropped_hold + self.dropped_full + self.dropped_stopped
    }

    fn stats(&self) -> GatewayStats {
        GatewayStats {
            served: self.served,
            failed: self.failed,
            dropped: self.dropped(),
            held: self.queue.len(),
            in_flight: self
                .backends
                .iter()
                .map(|b| b.in_flight.load(Ordering::Relaxed))
                .sum(),
        }
    }
}

#[derive(Debug, Default)]
struct Table {
    models: BTreeMap<String, ModelEntry>,
    /// Requests refused because they named an unknown model beyond `max_models`.
    dropped_unknown: u64,
    next_id: u64,
    closing: bool,
}

impl Table {
    /// Models named by clients only.
    fn client_models(&self) -> usize {
        self.models.values().filter(|m| !m.owned).count()
    }
}

struct Shared {
    table: Mutex<Table>,
    cfg: GatewayConfig,
    http: reqwest::Client,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends every hold at once (the held requests are answered 503 and dropped) and
    /// refuses new requests.
    fn close(&self) {
        let mut t = self.lock();
        t.closing = true;
        for m in t.models.values_mut() {
            // Dropping the senders wakes the holders with an error.
            m.queue.clear();
        }
    }
}

/// A running emulated gateway. Dropping it stops it (held requests are answered 503).
pub struct Gateway {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").field("addr", &self.addr).finish()
    }
}

impl Gateway {
    /// Starts a gateway on a free 127.0.0.1 port (inside a tokio runtime), with no backend.
    pub async fn start(cfg: GatewayConfig) -> Result<Gateway, GatewayError> {
        if cfg.max_queue == 0 {
            return Err(GatewayError::Config {
                field: "max_queue",
                problem: "must be at least 1".into(),
            });
        }
        // reqwest is built without a TLS crypto provider (workspace choice): install ring's
        // so the client builds (the gateway only speaks plain HTTP to 127.0.0.1).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(cfg.backend_timeout)
            .connect_timeout(cfg.backend_timeout.min(Duration::from_secs(10)))
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| GatewayError::Client(e.to_string()))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|source| GatewayError::Bind {
                addr: "127.0.0.1:0".into(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| GatewayError::Bind {
            addr: "127.0.0.1:0".into(),
            source,
        })?;
        let shared = Arc::new(Shared {
            table: Mutex::new(Table::default()),
            cfg,
            http,
        });
        let app = Router::new()
            .route("/v1/completions", post(completions))
            .route("/metrics", get(metrics))
            .route("/health", get(|| async { "ok" }))
            .with_state(shared.clone());
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let res = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop_rx.await;
                })
                .await;
            if let Err(e) = res {
                tracing::warn!(error = %e, "emulated gateway stopped with an error");
            }
        });
        Ok(Gateway {
            addr,
            shared,
            stop: Some(stop_tx),
            task: Some(task),
        })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL, e.g. `http://127.0.0.1:41234` (clients POST to `<url>/v1/completions`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The `/metrics` URL.
    pub fn metrics_url(&self) -> String {
        format!("http://{}/metrics", self.addr)
    }

    /// Sets the ready backends of `model` (base URLs such as `http://127.0.0.1:41235`;
    /// requests go to `<url>/v1/completions`). A URL kept from the previous list keeps its
    /// in-flight count. Held requests of the model are forwarded at once when the list is
    /// not empty. The model is known from then on (its gauge is exported, 0 when empty).
    pub fn set_backends(&self, model: &str, urls: Vec<String>) {
        let mut t = self.shared.lock();
        let entry = t.models.entry(model.to_string()).or_default();
        entry.owned = true;
        let old = std::mem::take(&mut entry.backends);
        entry.backends = urls
            .into_iter()
            .map(|url| {
                let in_flight = old
                    .iter()
                    .find(|b| b.url == url)
                    .map_or_else(|| Arc::new(AtomicUsize::new(0)), |b| b.in_flight.clone());
                Backend { url, in_flight }
            })
            .collect();
        entry.dispatch();
    }

    /// The backends of `model` now (base URLs, as last set).
    pub fn backends(&self, model: &str) -> Vec<String> {
        self.shared
            .lock()
            .models
            .get(model)
            .map_or_else(Vec::new, |m| {
                m.backends.iter().map(|b| b.url.clone()).collect()
            })
    }

    /// Requests of `model` held now.
    pub fn held(&self, model: &str) -> usize {
        self.shared
            .lock()
            .models
            .get(model)
            .map_or(0, |m| m.queue.len())
    }

    /// What the gateway did with the requests of `model` (zeros for a model it never saw).
    pub fn model_stats(&self, model: &str) -> GatewayStats {
        self.shared
            .lock()
            .models
            .get(model)
            .map(ModelEntry::stats)
            .unwrap_or_default()
    }

    /// What the gateway did with all its requests (refusals of unknown models included).
    pub fn stats(&self) -> GatewayStats {
        let t = self.shared.lock();
        let mut s = GatewayStats {
            dropped: t.dropped_unknown,
            ..GatewayStats::default()
        };
        for m in t.models.values() {
            let m = m.stats();
            s.served += m.served;
            s.failed += m.failed;
            s.dropped += m.dropped;
            s.held += m.held;
            s.in_flight += m.in_flight;
        }
        s
    }

    /// The `/metrics` body now (Prometheus text format).
    pub fn metrics_text(&self) -> String {
        render_metrics(&self.shared)
    }

    /// Stops: held requests are answered 503 (dropped), new ones refused, and the server
    /// waits for forwarded requests to finish, at most the backend timeout.
    pub async fn shutdown(mut self) {
        self.shared.close();
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(self.shared.cfg.backend_timeout, task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.shared.close();
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn answer(status: StatusCode, message: &str) -> Response {
    let code = status.as_u16();
    (
        status,
        axum::Json(serde_json::json!({"error": {"message": message, "code": code}})),
    )
        .into_response()
}

/// Decrements a backend's in-flight count when a forwarded request ends, however it ends.
struct InFlight(Backend);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A held request. Dropped before it got a backend (client gone, hold over), it leaves the
/// queue; a backend handed to it and never used gets its slot back.
struct Held {
    shared: Arc<Shared>,
    model: String,
    id: u64,
    rx: oneshot::Receiver<Backend>,
}

impl Held {
    /// Leaves the queue if still in it: true when it was (no backend was handed to it).
    fn leave(&mut self) -> bool {
        let mut t = self.shared.lock();
        let Some(m) = t.models.get_mut(&self.model) else {
            return false;
        };
        let before = m.queue.len();
        m.queue.retain(|w| w.id != self.id);
        m.queue.len() < before
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if !self.leave() {
            if let Ok(b) = self.rx.try_recv() {
                b.in_flight.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

/// How a request got (or did not get) a backend.
enum Route {
    Now(Backend),
    Wait(Held),
    Refused(Response),
}

fn route(shared: &Arc<Shared>, model: &str) -> Route {
    let mut t = shared.lock();
    if t.closing {
        return Route::Refused(answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "the gateway is stopping",
        ));
    }
    if !t.models.contains_key(model) && t.client_models() >= shared.cfg.max_models {
        t.dropped_unknown += 1;
        return Route::Refused(answer(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("model `{model}`: no backend and no room to queue for another model"),
        ));
    }
    let id = t.next_id;
    t.next_id += 1;
    let entry = t.models.entry(model.to_string()).or_default();
    if let Some(b) = entry.pick().cloned() {
        b.in_flight.fetch_add(1, Ordering::Relaxed);
        return Route::Now(b);
    }
    if entry.queue.len() >= shared.cfg.max_queue {
        entry.dropped_full += 1;
        return Route::Refused(answer(
            StatusCode::TOO_MANY_REQUESTS,
            &format!(
                "model `{model}`: no ready backend and {} requests already held",
                entry.queue.len()
            ),
        ));
    }
    let (tx, rx) = oneshot::channel();
    entry.queue.push_back(Waiter { id, tx });
    Route::Wait(Held {
        shared: shared.clone(),
        model: model.to_string(),
        id,
        rx,
    })
}

/// Waits for a backend for at most the hold time; None when the request is dropped (the
/// drop is counted).
async fn wait_for_backend(shared: &Arc<Shared>, mut held: Held) -> Option<Backend> {
    let got = tokio::time::timeout(shared.cfg.hold, &mut held.rx).await;
    let (backend, stopped) = match got {
        Ok(Ok(b)) => (Some(b), false),
        // The sender was dropped: the gateway is stopping.
        Ok(Err(_)) => (None, true),
        // The hold is over; a backend may have been handed over at that very moment.
        Err(_) => {
            if held.leave() {
                (None, false)
            } else {
                (held.rx.try_recv().ok(), false)
            }
        }
    };
    if backend.is_none() {
        let mut t = shared.lock();
        if let Some(m) = t.models.get_mut(&held.model) {
            if stopped {
                m.dropped_stopped += 1;
            } else {
                m.dropped_hold += 1;
            }
        }
    }
    backend
}

async fn completions(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let model = match serde_json::from_slice::<serde_json::Value>(&body) {
        Err(e) => {
            return answer(
                StatusCode::BAD_REQUEST,
                &format!("the body is not JSON: {e}"),
            )
        }
        Ok(v) => match v.get("model").and_then(serde_json::Value::as_str) {
            Some(m) => m.to_string(),
            None => return answer(StatusCode::BAD_REQUEST, "`model` (a string) is required"),
        },
    };
    let backend = match route(&shared, &model) {
        Route::Refused(r) => return r,
        Route::Now(b) => b,
        Route::Wait(held) => match wait_for_backend(&shared, held).await {
            Some(b) => b,
            None => {
                return answer(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!(
                        "model `{model}`: no ready backend within {:.1} s",
                        shared.cfg.hold.as_secs_f64()
                    ),
                )
            }
        },
    };
    let guard = InFlight(backend);
    let result = forward(&shared.http, &guard.0.url, body).await;
    drop(guard);
    let mut t = shared.lock();
    let entry = t.models.get_mut(&model);
    match result {
        Ok((status, bytes)) => {
            if let Some(e) = entry {
                if status.is_success() {
                    e.served += 1;
                } else {
                    e.failed += 1;
                }
            }
            drop(t);
            (
                status,
                [(header::CONTENT_TYPE, "application/json")],
                Body::from(bytes),
            )
                .into_response()
        }
        Err(why) => {
            if let Some(e) = entry {
                e.failed += 1;
            }
            drop(t);
            answer(StatusCode::BAD_GATEWAY, &why)
        }
    }
}

/// POSTs the body to `<url>/v1/completions`: the backend's status and body, or why it
/// could not be read.
async fn forward(
    http: &reqwest::Client,
    url: &str,
    body: Bytes,
) -> Result<(StatusCode, Vec<u8>), String> {
    let response = http
        .post(format!("{url}/v1/completions"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.to_vec())
        .send()
        .await
        .map_err(|e| format!("backend {url}: {e}"))?;
    let status =
        StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let bytes = response
        .bytes()
        .await
        .map_err(|e| format!("backend {url}: reading the answer: {e}"))?;
    Ok((status, bytes.to_vec()))
}

/// Escapes a label value for the Prometheus text format.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn render_metrics(shared: &Shared) -> String {
    let t = shared.lock();
    let pool = escape(&shared.cfg.pool);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP {QUEUE_SIZE_METRIC} Number of requests currently held in the flow-control queue."
    );
    let _ = writeln!(out, "# TYPE {QUEUE_SIZE_METRIC} gauge");
    for (name, m) in &t.models {
        let model = escape(name);
        let _ = writeln!(
            out,
            "{QUEUE_SIZE_METRIC}{{fairness_id=\"default\",inference_pool=\"{pool}\",model_name=\"{model}\",priority=\"0\",target_model_name=\"{model}\"}} {}",
            m.queue.len()
        );
    }
    let _ = writeln!(
        out,
        "# HELP {DROPPED_METRIC} Requests never forwarded: held past the hold time (hold_expired), refused on a full queue (queue_full) or held when the gateway stopped (stopped)."
    );
    let _ = writeln!(out, "# TYPE {DROPPED_METRIC} counter");
    for (name, m) in &t.models {
        let model = escape(name);
        for (reason, n) in [
            ("hold_expired", m.dropped_hold),
            ("queue_full", m.dropped_full),
            ("stopped", m.dropped_stopped),
        ] {
            let _ = writeln!(
                out,
                "{DROPPED_METRIC}{{model_name=\"{model}\",reason=\"{reason}\"}} {n}"
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP {SERVED_METRIC} Requests a backend answered with a 2xx status."
    );
    let _ = writeln!(out, "# TYPE {SERVED_METRIC} counter");
    for (name, m) in &t.models {
        let _ = writeln!(
            out,
            "{SERVED_METRIC}{{model_name=\"{}\"}} {}",
            escape(name),
            m.served
        );
    }
    out
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render_metrics(&shared),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn held_requests_go_to_the_least_loaded_backends_in_order() {
        let mut m = ModelEntry::default();
        let (tx1, mut rx1) = oneshot::channel();
        let (tx2, mut rx2) = oneshot::channel();
        let (tx3, rx3) = oneshot::channel();
        m.queue.push_back(Waiter { id: 1, tx: tx1 });
        m.queue.push_back(Waiter { id: 3, tx: tx3 });
        m.queue.push_back(Waiter { id: 2, tx: tx2 });
        drop(rx3); // its client went away
        m.dispatch();
        assert_eq!(m.queue.len(), 3, "no backend: everything stays held");
        let busy = Arc::new(AtomicUsize::new(1));
        m.backends = vec![
            Backend {
                url: "a".into(),
                in_flight: busy.clone(),
            },
            Backend {
                url: "b".into(),
                in_flight: Arc::new(AtomicUsize::new(0)),
            },
        ];
        m.dispatch();
        assert!(m.queue.is_empty());
        assert_eq!(rx1.try_recv().map(|b| b.url).ok(), Some("b".to_string()));
        // The second live waiter goes to the first of the two tied backends.
        assert_eq!(rx2.try_recv().map(|b| b.url).ok(), Some("a".to_string()));
        // The abandoned waiter's slot was given back.
        assert_eq!(m.stats().in_flight, 3);
        assert_eq!(busy.load(Ordering::Relaxed), 2);
    }
}
