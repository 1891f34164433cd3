//! A Kubernetes API emulator: an in-process HTTP server on 127.0.0.1 that speaks enough of
//! the Kubernetes REST + watch protocol for wvo's controller to run against it through the
//! real `kube` client.
//!
//! ```text
//!  kube::Client ──http──► server (routing, verbs, watch streams, Status errors)
//!                            │
//!                            ▼
//!                         Store (JSON objects, global resourceVersion, event history)
//!                            ▲
//!  controllers (tick) ───────┘  deployments → ReplicaSets → Pods, scheduler, kubelet
//! ```
//!
//! - [`KubeApiServer::start`] binds a port and returns a [`KubeApiHandle`]: its
//!   [`url`](KubeApiHandle::url), a [`kubeconfig`](KubeApiHandle::kubeconfig_yaml), a
//!   ready [`kube::Client`](KubeApiHandle::client), and admin hooks for tests
//!   ([`drop_watches`](KubeApiHandle::drop_watches),
//!   [`fail_next_writes`](KubeApiHandle::fail_next_writes),
//!   [`inject_conflicts`](KubeApiHandle::inject_conflicts),
//!   [`delay_next_requests`](KubeApiHandle::delay_next_requests),
//!   [`compact`](KubeApiHandle::compact), [`tick`](KubeApiHandle::tick)), and the
//!   resource requests it served as authorization attributes
//!   ([`requests`](KubeApiHandle::requests), [`RecordedRequest`]).
//! - Built-in kinds: core/v1 namespaces, configmaps, pods (with `/log`), nodes, events,
//!   services, serviceaccounts; events.k8s.io/v1 events (the same objects as core/v1
//!   events); apps/v1 deployments and replicasets (with `/scale`); networking.k8s.io/v1
//!   networkpolicies; autoscaling/v2
//!   horizontalpodautoscalers; coordination.k8s.io/v1 leases;
//!   apiextensions.k8s.io/v1 customresourcedefinitions (creating one serves its kind);
//!   rbac.authorization.k8s.io/v1 roles, clusterroles, rolebindings, clusterrolebindings;
//!   authentication.k8s.io/v1 tokenreviews (from a token table: [`KubeApiHandle::add_token`])
//!   and authorization.k8s.io/v1 subjectaccessreviews and selfsubjectaccessreviews (decided
//!   by the stored RBAC objects). Strategic merge patch for built-in kinds (415 for custom
//!   resources).
//!
//! - What real clients read besides: OpenAPI v2/v3 documents built from `k8s-openapi`'s
//!   schemas and the CRDs' ([`openapi`], which also answers strategic-merge questions:
//!   [`openapi::patch_merge_key`]), and `Table` answers with the apiserver's printer columns
//!   and CRDs' `additionalPrinterColumns` (`kubectl get`, `-o wide`, `-w`).
//!
//! What is implemented and what is not: `docs/kube-emulator.md`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use wvo_sim::kube_api::{gpu_node, KubeApiOptions, KubeApiServer};
//! let api = KubeApiServer::start(KubeApiOptions::default()).await?;
//! api.create(&gpu_node("h100-0", "NVIDIA-H100-80GB-HBM3", 8))?;
//! let client = api.client()?;
//! # let _ = client; Ok(()) }
//! ```

mod audit;
mod commits;
mod controllers;
mod day2;
mod error;
mod events;
mod nodes;
pub mod openapi;
mod patch;
mod protobuf;
mod rbac;
mod selector;
mod server;
mod store;
mod strategic;
mod table;
mod workloads;

pub use audit::{RecordedRequest, ANONYMOUS};
pub use commits::{Commit, Commits, Lagged};
pub use controllers::pod_gpu_requests;
pub use error::{ApiError, KubeApiError};
pub use nodes::{accelerator_node, gpu_node};
pub use patch::{merge_patch, PatchKind};
pub use rbac::{TokenUser, API_AUDIENCE, AUTHENTICATED_GROUP};
pub use selector::{selector_to_string, FieldSelector, LabelSelector};

use serde::Serialize;
use serde_json::Value;
use server::{Faults, Shared};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::{Store, WriteOpts};
use tokio::sync::{oneshot, watch, Notify};
use tokio::task::JoinHandle;

/// Options of [`KubeApiServer::start`].
#[derive(Debug, Clone)]
pub struct KubeApiOptions {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Run the deployment controller, scheduler and kubelet in a background task
    /// (woken on every change and every `controller_interval`). When false, tests drive
    /// them with [`KubeApiHandle::tick`].
    pub run_controllers: bool,
    /// Period of the background controllers when nothing changes.
    pub controller_interval: Duration,
    /// Least time between two runs of the background controllers (0: run after every
    /// change). A few hundred ms batches the work of a burst of writes, as real controllers'
    /// work queues do; at thousands of objects it keeps the controllers from holding the
    /// store most of the time.
    pub controller_min_gap: Duration,
    /// How long a Pod bound to a node stays Pending before it is Running and Ready.
    pub pod_startup_delay: Duration,
    /// Period of BOOKMARK events on watches that asked for them.
    pub bookmark_interval: Duration,
    /// Watch history kept (events); older resourceVersions get 410 Gone.
    pub history_limit: usize,
}

impl Default for KubeApiOptions {
    fn default() -> Self {
        Self {
            port: 0,
            run_controllers: true,
            controller_interval: Duration::from_millis(50),
            controller_min_gap: Duration::ZERO,
            pod_startup_delay: Duration::ZERO,
            bookmark_interval: Duration::from_secs(1),
            history_limit: 10_000,
        }
    }
}

/// Entry point: starts an emulated API server.
#[derive(Debug)]
pub struct KubeApiServer;

impl KubeApiServer {
    /// Bind 127.0.0.1:`options.port`, serve in the background and return the handle.
    /// Must be called inside a tokio runtime.
    pub async fn start(options: KubeApiOptions) -> Result<KubeApiHandle, KubeApiError> {
        let addr = format!("127.0.0.1:{}", options.port);
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|source| KubeApiError::Bind {
                addr: addr.clone(),
                source,
            })?;
        let local = listener
            .local_addr()
            .map_err(|source| KubeApiError::Bind { addr, source })?;
        let changed = Arc::new(Notify::new());
        let (close_watches, _) = watch::channel(0u64);
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::new(options.history_limit, changed.clone())),
            faults: Mutex::new(Faults::default()),
            close_watches,
            open_watches: AtomicUsize::new(0),
            bookmark_interval: options.bookmark_interval.max(Duration::from_millis(10)),
            changed,
            startup_delay: options.pod_startup_delay,
            requests: Mutex::new(Vec::new()),
            held: AtomicUsize::new(0),
            tokens: Mutex::new(std::collections::HashMap::new()),
        });
        let app = axum::Router::new()
            .fallback(server::handle)
            .with_state(shared.clone());
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stop_rx.await;
                })
                .await;
        });
        let controllers = options.run_controllers.then(|| {
            let sh = shared.clone();
            let period = options.controller_interval.max(Duration::from_millis(5));
            let gap = options.controller_min_gap;
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = sh.changed.notified() => {}
                        _ = tokio::time::sleep(period) => {}
                    }
                    {
                        let mut store = sh.store();
                        controllers::tick(&mut store, sh.startup_delay);
                    }
                    if !gap.is_zero() {
                        tokio::time::sleep(gap).await;
                    }
                }
            })
        });
        Ok(KubeApiHandle {
            shared,
            addr: local,
            stop: Some(stop_tx),
            server: Some(server),
            controllers,
        })
    }
}

/// A running emulator. Dropping it stops the server and its controllers.
pub struct KubeApiHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    controllers: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for KubeApiHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeApiHandle")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

fn split_api_version(v: &Value) -> (String, String) {
    (
        v.get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        v.get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
    )
}

impl KubeApiHandle {
    /// The socket address served.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig (YAML) whose current context points at this server, namespace
    /// `default`, no credentials.
    pub fn kubeconfig_yaml(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: wvo-emulator\n  cluster:\n    server: {}\n\
             contexts:\n- name: wvo-emulator\n  context:\n    cluster: wvo-emulator\n    user: wvo-emulator\n    namespace: default\n\
             current-context: wvo-emulator\nusers:\n- name: wvo-emulator\n  user: {{}}\npreferences: {{}}\n",
            self.url()
        )
    }

    /// A `kube::Config` for this server (default namespace `default`).
    pub fn config(&self) -> Result<kube::Config, KubeApiError> {
        let url = self.url();
        let uri = url
            .parse::<axum::http::Uri>()
            .map_err(|e| KubeApiError::Url {
                url: url.clone(),
                message: e.to_string(),
            })?;
        Ok(kube::Config::new(uri))
    }

    /// A real `kube::Client` talking to this server over plain http.
    pub fn client(&self) -> Result<kube::Client, KubeApiError> {
        kube::Client::try_from(self.config()?).map_err(KubeApiError::Client)
    }

    /// A `kube::Client` built the way a controller does it from a kubeconfig file
    /// (through [`kubeconfig_yaml`](Self::kubeconfig_yaml)).
    pub async fn client_from_kubeconfig(&self) -> Result<kube::Client, KubeApiError> {
        let kc = kube::config::Kubeconfig::from_yaml(&self.kubeconfig_yaml())
            .map_err(KubeApiError::Kubeconfig)?;
        let config =
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(KubeApiError::Kubeconfig)?;
        kube::Client::try_from(config).map_err(KubeApiError::Client)
    }

    /// A `kube::Client` whose requests carry `Authorization: Bearer <user>`. The emulator
    /// authenticates no request and allows everything (the token table of
    /// [`add_token`](Self::add_token) only answers TokenReviews); the token only names the `user` of the
    /// [`RecordedRequest`]s it makes (e.g. `system:serviceaccount:wvo-system:wvo`), so a
    /// test can tell its own requests from those of the client under test.
    pub fn client_as(&self, user: &str) -> Result<kube::Client, KubeApiError> {
        let mut config = self.config()?;
        let value = axum::http::HeaderValue::from_str(&format!("Bearer {user}"))
            .map_err(|_| KubeApiError::User { user: user.into() })?;
        config
            .headers
            .push((axum::http::header::AUTHORIZATION, value));
        kube::Client::try_from(config).map_err(KubeApiError::Client)
    }

    /// Adds `token` to the token table: a TokenReview of it authenticates `user` (until
    /// [`remove_token`](Self::remove_token)). Only TokenReviews read the table; other
    /// requests are not authenticated (see [`client_as`](Self::client_as)).
    pub fn add_token(&self, token: &str, user: TokenUser) {
        self.shared.tokens().insert(token.to_string(), user);
    }

    /// Removes `token` from the token table (a revoked token: reviews of it now fail).
    pub fn remove_token(&self, token: &str) {
        self.shared.tokens().remove(token);
    }

    /// Every resource request received over HTTP since the start or the last
    /// [`clear_requests`](Self::clear_requests), in arrival order, as Kubernetes
    /// authorization attributes (failed requests included: a real server authorizes them
    /// before it handles them). Discovery and other non-resource URLs are not recorded, nor
    /// are admin calls on this handle ([`create`](Self::create), [`get`](Self::get), ...)
    /// or the emulator's own controllers.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared
            .requests()
            .iter()
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// [`requests`](Self::requests) with the time each arrived (monotonic, taken when the
    /// server began handling it, before any [`delay_next_requests`](Self::delay_next_requests)
    /// hold), so a test can tell what a client sent after a given moment.
    pub fn requests_timed(&self) -> Vec<(std::time::Instant, RecordedRequest)> {
        self.shared.requests().clone()
    }

    /// Forget the recorded requests (e.g. after a test's setup).
    pub fn clear_requests(&self) {
        self.shared.requests().clear();
    }

    /// Close every open watch stream (clients see the stream end and must re-watch).
    pub fn drop_watches(&self) {
        self.shared.close_watches.send_modify(|g| *g += 1);
    }

    /// Number of watch streams currently open.
    pub fn open_watches(&self) -> usize {
        self.shared.open_watches.load(Ordering::SeqCst)
    }

    /// The next `n` write requests (POST, PUT, PATCH, DELETE) fail with HTTP `code` and
    /// a matching Status reason, without touching the store.
    pub fn fail_next_writes(&self, n: u32, code: u16) {
        let mut f = self.shared.faults();
        f.fail_writes = n;
        f.fail_code = code;
    }

    /// The next `n` updates and patches (PUT, PATCH) answer 409 Conflict.
    pub fn inject_conflicts(&self, n: u32) {
        self.shared.faults().conflicts = n;
    }

    /// The next `n` resource requests (those [`requests`](Self::requests) records: any
    /// verb, watches included) are held for `delay` before they are handled, as an
    /// overloaded API server would. A client that times out meanwhile gets no answer; the
    /// request is still handled when the delay ends (a write may land after the client gave
    /// up). Discovery and admin calls on this handle are not delayed.
    pub fn delay_next_requests(&self, n: u32, delay: Duration) {
        let mut f = self.shared.faults();
        f.delay_requests = n;
        f.delay = delay;
    }

    /// The next `n` reads (GET of one object or of a list; not watches) fail with HTTP `code`
    /// and a matching Status reason.
    pub fn fail_next_reads(&self, n: u32, code: u16) {
        let mut f = self.shared.faults();
        f.fail_reads = n;
        f.fail_read_code = code;
    }

    /// Resource requests held by [`delay_next_requests`](Self::delay_next_requests) now
    /// (until handled, or until the client that sent one gave up and closed its
    /// connection): 0 means every delayed write has landed or never will.
    pub fn held_requests(&self) -> usize {
        self.shared.held.load(Ordering::SeqCst)
    }

    /// The store's commits from now on, each with the moment it was committed (a test's
    /// independent record of, e.g., who held a Lease when; see [`Commits`]).
    pub fn commits(&self) -> Commits {
        Commits(self.shared.store().subscribe())
    }

    /// Replace an object directly in the store (by `apiVersion`, `kind`, namespace and
    /// name; no resourceVersion check), as an admin write; status is replaced too.
    pub fn replace<K: Serialize>(&self, obj: &K) -> Result<Value, KubeApiError> {
        let mut v = serde_json::to_value(obj).map_err(KubeApiError::Serialize)?;
        let (api_version, kind) = split_api_version(&v);
        let mut store = self.shared.store();
        let info = store.info_by_kind(&api_version, &kind).ok_or_else(|| {
            ApiError::bad_request(format!("no resource for {api_version} {kind}"))
        })?;
        let ns = v
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or("default")
            .to_string();
        let name = v
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
        }
        let opts = WriteOpts {
            internal: true,
            ..WriteOpts::default()
        };
        Ok(store.replace(&info, &ns, &name, v, store::Part::All, opts)?)
    }

    /// Forget the watch history: watching from any older resourceVersion now gets a
    /// 410 Gone (`Expired`) ERROR event. Returns the current resourceVersion.
    pub fn compact(&self) -> u64 {
        self.shared.store().compact()
    }

    /// The current (latest) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.store().rv()
    }

    /// Run the deployment controller, scheduler and kubelet once (also useful with
    /// `run_controllers: false`). Returns true when it wrote something.
    pub fn tick(&self) -> bool {
        let mut store = self.shared.store();
        controllers::tick(&mut store, self.shared.startup_delay)
    }

    /// Create any object (typed or JSON) directly in the store, by its `apiVersion` and
    /// `kind`; namespaced objects without a namespace go to `default`. Status is kept (an
    /// admin write, like a kubelet posting node status).
    pub fn create<K: Serialize>(&self, obj: &K) -> Result<Value, KubeApiError> {
        let v = serde_json::to_value(obj).map_err(KubeApiError::Serialize)?;
        let (api_version, kind) = split_api_version(&v);
        let mut store = self.shared.store();
        let info = store.info_by_kind(&api_version, &kind).ok_or_else(|| {
            ApiError::bad_request(format!("no resource for {api_version} {kind}"))
        })?;
        let ns = v
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or("default")
            .to_string();
        let opts = WriteOpts {
            internal: true,
            ..WriteOpts::default()
        };
        Ok(store.create(&info, &ns, v, opts)?)
    }

    /// Get an object as JSON (`namespace` "" for cluster-scoped kinds).
    pub fn get(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let store = self.shared.store();
        let info = store.info_by_kind(api_version, kind)?;
        store.get(&info, namespace, name).ok()
    }

    /// Every object of a kind, optionally in one namespace, ordered by namespace and name.
    pub fn list(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Vec<Value> {
        let store = self.shared.store();
        let Some(info) = store.info_by_kind(api_version, kind) else {
            return Vec::new();
        };
        store
            .list(&info, namespace)
            .iter()
            .map(|s| Store::present(&info, &s.obj))
            .collect()
    }

    /// Delete an object directly (no preconditions).
    pub fn delete(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Value, KubeApiError> {
        let mut store = self.shared.store();
        let info = store.info_by_kind(api_version, kind).ok_or_else(|| {
            ApiError::bad_request(format!("no resource for {api_version} {kind}"))
        })?;
        Ok(store.delete(&info, namespace, name, None, None, false)?)
    }

    /// Stop serving: close watches, stop the controllers, wait (briefly) for the server.
    pub async fn shutdown(mut self) {
        self.stop_all();
        if let Some(server) = self.server.take() {
            let abort = server.abort_handle();
            if tokio::time::timeout(Duration::from_secs(2), server)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }

    fn stop_all(&mut self) {
        self.drop_watches();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(c) = self.controllers.take() {
            c.abort();
        }
    }
}

impl Drop for KubeApiHandle {
    fn drop(&mut self) {
        self.stop_all();
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}
