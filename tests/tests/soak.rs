//! Fault soak: hundreds of control cycles of the real controller (two instances, `a` and
//! `b`, each with its own election on one Lease and its own direct-scrape metrics source)
//! against the Kubernetes API emulator, with random faults injected at every cycle: API 500s
//! on writes and reads, 409 conflicts, requests held past the client's timeout, dropped
//! watches, compacted history; the metrics of a model down (connection refused), slow (past
//! the scrape timeout) or NaN; bad VAs and bad inventory ConfigMaps appearing and going; the
//! leader paused (its elector stopped, the Lease not renewed, the other instance taking over,
//! the paused one resuming its cycles) or releasing the Lease.
//!
//! After every cycle the invariants are checked from the emulator's own records (the
//! requests it served with their arrival times, the commits of its store with theirs, the
//! Deployments and Pods in its store), never from the controller's bookkeeping:
//! - no write while not leader: every write of `a` or `b` (other than to the Lease) arrived
//!   while the Lease's last commit named it holder, less than the lease duration before;
//! - no scale-down on unknown metrics: a model whose metrics endpoint was down, slow or NaN
//!   for the cycle keeps at least the replicas that were placed on a GPU when the cycle
//!   began (Pending replicas with no GPU may go: the controller drops them on purpose);
//! - within each variant's min/max, and GPUs of each type in desired replicas (the
//!   Deployments' `spec.replicas`) within the inventory;
//! - every bad object named, after each cycle run to the end by a leader with no API fault:
//!   each bad VA the controller's cache holds has `Optimized=False InvalidSpec` naming its
//!   field and an `InvalidSpec` Event for its uid; while the inventory is bad, every good VA
//!   has `Optimized=True StaleInventory` and an Event about the ConfigMap was written since;
//! - no panic (a panic hook counts panics in any thread or task).
//!
//! `WVO_SOAK_SEED` (default 14) and `WVO_SOAK_CYCLES` (default 300) choose the run,
//! `WVO_SOAK_TRACE` prints what each cycle did; the figures are printed
//! (`cargo test -p wvo-e2e --test soak -- --nocapture`), and the test fails on any
//! violation, naming the seed, the cycle and what happened. The run is seeded but not
//! replayed exactly: timing (scrape gaps, lease renewals) varies between runs.

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use wvo_collector::{HttpConfig, ScrapeConfig, Target, Window};
use wvo_controller::reconciler::{ControllerError, Reconciler};
use wvo_controller::runner::{self, Election, LeaderConfig};
use wvo_controller::targets::{ScrapeTargetLoads, SharedTargets};
use wvo_controller::view::{ControllerView, SharedView};
use wvo_e2e::{eventually, test_config, Cluster, INVENTORY, NS};
use wvo_sim::kube_api::{Commit, Commits, KubeApiHandle, KubeApiOptions, RecordedRequest};

/// Lease duration, s: renewed every second, writes stop 1 s before it ends.
const LEASE_SECONDS: u64 = 3;
const MARGIN_SECONDS: u64 = 1;
/// The controllers' kube clients give up on an answer after this long ...
const CLIENT_READ_TIMEOUT: Duration = Duration::from_millis(1000);
/// ... and a held request is held this long (an API timeout).
const API_HOLD: Duration = Duration::from_millis(1500);
/// The scrape timeout of the metrics sources ...
const SCRAPE_TIMEOUT: Duration = Duration::from_millis(300);
/// ... and how long a slow metrics endpoint takes to answer.
const SLOW_SCRAPE: Duration = Duration::from_millis(1200);
/// Zombie cycles (a paused leader resuming before its election restarts) per pause, at most.
const ZOMBIE_CYCLES: u32 = 3;
const DEFAULT_SEED: u64 = 14;
const DEFAULT_CYCLES: u64 = 300;
const LEASE_NAMESPACE: &str = "wvo-system";
const LEASE_NAME: &str = "wvo-leader";
const INVENTORY_NAME: &str = "wvo-inventory";

/// GPUs of each type in [`INVENTORY`] (and on the emulated nodes).
const GPUS: [(&str, u32); 2] = [("H100", 8), ("L40S", 16)];

/// A variant of a soak model: (name, GPU product label, accelerator, req/s per replica,
/// minReplicas, maxReplicas).
type VariantDef = (
    &'static str,
    &'static str,
    &'static str,
    f64,
    u32,
    Option<u32>,
);

/// The good models: id and its two variants (each on its Deployment `<id>-<variant>`).
const MODELS: [(&str, [VariantDef; 2]); 3] = [
    (
        "m1",
        [
            ("h100", "NVIDIA-H100-80GB-HBM3", "H100", 10.0, 1, Some(4)),
            ("l40s", "NVIDIA-L40S", "L40S", 3.0, 0, Some(6)),
        ],
    ),
    (
        "m2",
        [
            ("h100", "NVIDIA-H100-80GB-HBM3", "H100", 10.0, 0, Some(3)),
            ("l40s", "NVIDIA-L40S", "L40S", 3.0, 1, Some(8)),
        ],
    ),
    (
        "m3",
        [
            ("h100", "NVIDIA-H100-80GB-HBM3", "H100", 10.0, 0, None),
            ("l40s", "NVIDIA-L40S", "L40S", 3.0, 0, Some(10)),
        ],
    ),
];

/// Bad VAs that come and go: (name, spec, what the refusal must name).
fn bad_vas() -> Vec<(&'static str, Value, &'static str)> {
    let variant = |name: &str, accel: &str, extra: Value| {
        let mut v = json!({"name": name, "accelerator": accel,
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": format!("bad-{name}")},
            "maxRequestsPerSecond": 10});
        if let (Some(v), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
            v.extend(extra.clone());
        }
        v
    };
    vec![
        (
            "bad-minmax",
            json!({"modelID": "bad-minmax", "variants": [variant("h100", "H100", json!({"minReplicas": 3, "maxReplicas": 1}))]}),
            "maxReplicas",
        ),
        (
            "bad-accelerator",
            json!({"modelID": "bad-accelerator", "variants": [variant("tpu", "TPU-v5", json!({}))]}),
            "accelerator",
        ),
        (
            "bad-duplicate",
            json!({"modelID": "bad-duplicate", "variants": [variant("h100", "H100", json!({})), variant("h100", "H100", json!({}))]}),
            "name",
        ),
        (
            "bad-no-model",
            json!({"variants": [variant("h100", "H100", json!({}))]}),
            "modelID",
        ),
        (
            "bad-huge",
            json!({"modelID": "bad-huge", "variants": [variant("h100", "H100", json!({"maxReplicas": 1e18}))]}),
            "maxReplicas",
        ),
    ]
}

/// Bad inventory texts: (kind, `data` of the ConfigMap).
fn bad_inventories() -> Vec<(&'static str, Value)> {
    vec![
        (
            "garbage",
            json!({"inventory.yaml": "accelerators: [\n  {name: H100"}),
        ),
        (
            "negative-count",
            json!({"inventory.yaml": INVENTORY.replace("count: 8", "count: -8")}),
        ),
        ("no-key", json!({"something-else.yaml": "x: 1"})),
    ]
}

// ---------------------------------------------------------------------------------------
// The metrics: a fault-injecting vLLM exposition on 127.0.0.1.

/// What is wrong with a model's metrics endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum MetricsFault {
    /// Connection refused (the target points at a closed port).
    Down,
    /// Answers after [`SLOW_SCRAPE`], past the scrape timeout.
    Slow,
    /// Every value is NaN.
    NaN,
}

/// One model's synthetic server: completions counted at `rate` req/s.
struct Series {
    rate: f64,
    count: f64,
    at: Instant,
    fault: Option<MetricsFault>,
}

/// A vLLM-style `/metrics` per model (`/metrics/<model>`), whose request counter grows at
/// the model's rate, with faults; and the scrape targets of each controller instance.
struct FaultyMetrics {
    series: Arc<Mutex<BTreeMap<String, Series>>>,
    addr: SocketAddr,
    /// A port nobody listens on (connection refused).
    closed: SocketAddr,
    targets: Vec<SharedTargets>,
    task: tokio::task::JoinHandle<()>,
}

type SeriesMap = Arc<Mutex<BTreeMap<String, Series>>>;

async fn exposition(
    State(series): State<SeriesMap>,
    Path(model): Path<String>,
) -> axum::response::Response {
    let (text, slow) = {
        let mut map = series.lock().unwrap_or_else(|p| p.into_inner());
        let Some(s) = map.get_mut(&model) else {
            return (axum::http::StatusCode::NOT_FOUND, "no such model").into_response();
        };
        let now = Instant::now();
        s.count += s.rate * now.duration_since(s.at).as_secs_f64();
        s.at = now;
        let nan = s.fault == Some(MetricsFault::NaN);
        let value = |v: f64| {
            if nan {
                "NaN".to_string()
            } else {
                format!("{v}")
            }
        };
        let text = format!(
            "# HELP vllm:request_success_total Finished requests.\n# TYPE vllm:request_success_total counter\n\
             vllm:request_success_total{{model_name=\"{model}\",finished_reason=\"stop\"}} {}\n\
             # HELP vllm:num_requests_waiting Waiting requests.\n# TYPE vllm:num_requests_waiting gauge\n\
             vllm:num_requests_waiting{{model_name=\"{model}\"}} {}\n\
             # HELP vllm:num_requests_running Running requests.\n# TYPE vllm:num_requests_running gauge\n\
             vllm:num_requests_running{{model_name=\"{model}\"}} {}\n",
            value(s.count.floor()),
            value(0.0),
            value(0.0)
        );
        (text, s.fault == Some(MetricsFault::Slow))
    };
    if slow {
        // The fault itself: an endpoint that answers too late.
        tokio::time::sleep(SLOW_SCRAPE).await;
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        text,
    )
        .into_response()
}

impl FaultyMetrics {
    async fn start(instances: usize) -> FaultyMetrics {
        let series: SeriesMap = Arc::new(Mutex::new(
            MODELS
                .iter()
                .map(|(id, _)| {
                    let s = Series {
                        rate: 5.0,
                        count: 0.0,
                        at: Instant::now(),
                        fault: None,
                    };
                    (id.to_string(), s)
                })
                .collect(),
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the metrics server");
        let addr = listener.local_addr().expect("metrics address");
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port to close");
            l.local_addr().expect("closed address")
        };
        let app = axum::Router::new()
            .route("/metrics/{model}", axum::routing::get(exposition))
            .with_state(series.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let metrics = FaultyMetrics {
            series,
            addr,
            closed,
            targets: (0..instances).map(|_| SharedTargets::default()).collect(),
            task,
        };
        metrics.publish();
        metrics
    }

    /// The targets of each instance: one per model (its first variant), at the server or,
    /// for a model that is down, at the closed port.
    fn publish(&self) {
        let map = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let list: Vec<Target> = MODELS
            .iter()
            .map(|(id, variants)| {
                let down = map
                    .get(*id)
                    .is_some_and(|s| s.fault == Some(MetricsFault::Down));
                let addr = if down { self.closed } else { self.addr };
                Target {
                    namespace: NS.into(),
                    model: id.to_string(),
                    variant: variants[0].0.into(),
                    pod: format!("{id}-server"),
                    url: format!("http://{addr}/metrics/{id}"),
                }
            })
            .collect();
        drop(map);
        for t in &self.targets {
            t.set(list.clone());
        }
    }

    fn set(&self, model: &str, rate: Option<f64>, fault: Option<MetricsFault>) {
        {
            let mut map = self.series.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(s) = map.get_mut(model) {
                let now = Instant::now();
                s.count += s.rate * now.duration_since(s.at).as_secs_f64();
                s.at = now;
                if let Some(r) = rate {
                    s.rate = r;
                }
                s.fault = fault;
            }
        }
        self.publish();
    }

    fn loads(&self, instance: usize) -> ScrapeTargetLoads {
        ScrapeTargetLoads::new(
            ScrapeConfig {
                interval: Duration::from_millis(100),
                http: HttpConfig {
                    timeout: SCRAPE_TIMEOUT,
                    ..HttpConfig::default()
                },
                ..ScrapeConfig::default()
            },
            Window::default(),
            Arc::new(self.targets[instance].clone()),
        )
        .expect("scrape source")
    }
}

// ---------------------------------------------------------------------------------------
// The controller instances.

fn lease(identity: &str) -> LeaderConfig {
    LeaderConfig {
        namespace: LEASE_NAMESPACE.into(),
        name: LEASE_NAME.into(),
        identity: identity.into(),
        duration_seconds: LEASE_SECONDS,
        grace_seconds: MARGIN_SECONDS,
    }
}

/// A kube client acting as `user` with a short read timeout (so held requests time out).
fn client_as(api: &KubeApiHandle, user: &str) -> kube::Client {
    let mut config = api.config().expect("config");
    config.headers.push((
        axum::http::header::AUTHORIZATION,
        format!("Bearer {user}").parse().expect("header value"),
    ));
    config.read_timeout = Some(CLIENT_READ_TIMEOUT);
    config.write_timeout = Some(CLIENT_READ_TIMEOUT);
    kube::Client::try_from(config).expect("client")
}

struct Instance {
    identity: &'static str,
    client: kube::Client,
    reconciler: Option<Reconciler>,
    /// None while paused (its elector stopped: the Lease is not renewed).
    election: Option<Election>,
    /// Cycles run since it was paused.
    zombie_cycles: u32,
}

impl Instance {
    fn leads(&self) -> bool {
        self.election.as_ref().is_some_and(|e| *e.leader.borrow())
            && self
                .reconciler
                .as_ref()
                .is_some_and(|r| r.lease().check().is_ok())
    }

    async fn restart_election(&mut self) {
        let election = runner::elect(self.client.clone(), &lease(self.identity))
            .await
            .expect("elect");
        let reconciler = self.reconciler.take().expect("reconciler");
        self.reconciler = Some(reconciler.with_lease(election.guard()));
        self.election = Some(election);
        self.zombie_cycles = 0;
    }
}

// ---------------------------------------------------------------------------------------
// The figures.

#[derive(Default)]
struct Figures {
    cycles: u64,
    zombie_cycles: u64,
    quiet_cycles: u64,
    cycle_errors: BTreeMap<&'static str, u64>,
    faults: BTreeMap<&'static str, u64>,
    checks: BTreeMap<&'static str, u64>,
    violations: BTreeMap<&'static str, Vec<String>>,
    takeovers: u64,
    /// Deployment changes seen across cycles: (up, down).
    scaled: (u64, u64),
    /// Replicas Pending for want of a GPU dropped while their model's metrics were unknown.
    pending_dropped_blind: u64,
    /// Writes of the controllers checked against the Lease, per instance.
    writes: BTreeMap<String, u64>,
}

const INVARIANTS: [&str; 6] = [
    "no write while not leader",
    "no scale-down on unknown metrics",
    "within each variant's bounds",
    "within the inventory",
    "every bad object named",
    "no panic",
];

impl Figures {
    fn fault(&mut self, kind: &'static str) {
        *self.faults.entry(kind).or_default() += 1;
    }
    fn check(
        &mut self,
        invariant: &'static str,
        ok: bool,
        seed: u64,
        cycle: u64,
        what: impl FnOnce() -> String,
    ) {
        *self.checks.entry(invariant).or_default() += 1;
        if !ok {
            let line = format!("seed {seed} cycle {cycle}: {}", what());
            eprintln!("VIOLATION {invariant}: {line}");
            self.violations.entry(invariant).or_default().push(line);
        }
    }
}

// ---------------------------------------------------------------------------------------
// What the emulator recorded.

/// The Lease's history from the store's commits: (commit time, holder).
#[derive(Default)]
struct LeaseHistory(Vec<(Instant, Option<String>)>);

impl LeaseHistory {
    /// The holder at `t` and when the Lease was last written before `t`.
    fn at(&self, t: Instant) -> Option<(Instant, Option<&str>)> {
        self.0
            .iter()
            .rev()
            .find(|(at, _)| *at < t)
            .map(|(at, h)| (*at, h.as_deref()))
    }
}

struct Records {
    commits: Commits,
    lease: LeaseHistory,
    /// Events' commits: (time, regarding kind, name, uid, reason).
    events: Vec<(Instant, String, String, String, String)>,
    /// How many of the recorded requests were checked.
    requests_seen: usize,
}

impl Records {
    fn drain(&mut self) {
        let commits: Vec<Commit> = self.commits.drain().expect("commit feed");
        for c in commits {
            if c.resource == "leases" && c.namespace == LEASE_NAMESPACE && c.name == LEASE_NAME {
                let holder = if c.event == "DELETED" {
                    None
                } else {
                    c.object
                        .pointer("/spec/holderIdentity")
                        .and_then(Value::as_str)
                        .filter(|h| !h.is_empty())
                        .map(str::to_string)
                };
                self.lease.0.push((c.at, holder));
            }
            if c.resource == "events" && c.event != "DELETED" {
                let o = &c.object;
                let regarding = o.get("regarding").or_else(|| o.get("involvedObject"));
                let field = |k: &str| {
                    regarding
                        .and_then(|r| r.get(k))
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string()
                };
                let reason = o.get("reason").and_then(Value::as_str).unwrap_or_default();
                self.events.push((
                    c.at,
                    field("kind"),
                    field("name"),
                    field("uid"),
                    reason.to_string(),
                ));
            }
        }
    }
}

fn is_write(r: &RecordedRequest) -> bool {
    matches!(
        r.verb.as_str(),
        "create" | "update" | "patch" | "delete" | "deletecollection"
    )
}

/// Pods of each Deployment of the good models bound to a node (placed on a GPU), read from
/// the store.
fn placed(api: &KubeApiHandle) -> BTreeMap<String, u32> {
    let mut out: BTreeMap<String, u32> = BTreeMap::new();
    for pod in api.list("v1", "Pod", Some(NS)) {
        let app = pod.pointer("/metadata/labels/app").and_then(Value::as_str);
        let bound = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        if let (Some(app), true) = (app, bound) {
            *out.entry(app.to_string()).or_default() += 1;
        }
    }
    out
}

/// spec.replicas of every Deployment of the good models, read from the store.
fn replicas(api: &KubeApiHandle) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    for (id, variants) in MODELS {
        for v in variants {
            let name = format!("{id}-{}", v.0);
            let n = api
                .get("apps/v1", "Deployment", NS, &name)
                .and_then(|d| d.pointer("/spec/replicas").and_then(Value::as_u64))
                .unwrap_or(0);
            out.insert(name, u32::try_from(n).unwrap_or(u32::MAX));
        }
    }
    out
}

fn condition(va: &Value, type_: &str) -> Option<(String, String, String)> {
    va.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
        .map(|c| {
            let s = |k: &str| {
                c.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            (s("status"), s("reason"), s("message"))
        })
}

/// With `WVO_SOAK_TRACE` set: what a cycle did, per model (metrics unknown or not, and each
/// variant's current, desired and reason), on stderr.
fn trace_cycle(
    cycle: u64,
    result: &Result<wvo_controller::reconciler::CycleReport, ControllerError>,
) {
    match result {
        Ok(r) => {
            eprintln!(
                "cycle {cycle}: actuations {:?} refused {:?} errors {:?}",
                r.actuations, r.refused, r.errors
            );
            for m in r.outcome.iter().flat_map(|o| &o.models) {
                let variants: Vec<(u32, u32, &str)> = m
                    .variants
                    .iter()
                    .map(|v| (v.current, v.desired, v.reason.as_str()))
                    .collect();
                eprintln!(
                    "cycle {cycle}:   {} unknown {:?} {variants:?}",
                    m.name, m.metrics_unknown
                );
            }
        }
        Err(e) => eprintln!("cycle {cycle}: error {e}"),
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a whole number")),
        Err(_) => default,
    }
}

fn va_yaml(id: &str, variants: &[VariantDef; 2]) -> String {
    let mut s = format!(
        "apiVersion: wvo.dev/v1alpha1\nkind: VariantAutoscaling\nmetadata: {{name: {id}, namespace: {NS}}}\nspec:\n  modelID: {id}\n  scaleDownStabilizationSeconds: 0\n  variants:\n"
    );
    for (name, _, accel, rps, min, max) in variants {
        let max = max.map_or(String::new(), |m| format!(", maxReplicas: {m}"));
        s.push_str(&format!(
            "  - {{name: {name}, scaleTargetRef: {{name: {id}-{name}}}, accelerator: {accel}, maxRequestsPerSecond: {rps}, minReplicas: {min}{max}}}\n"
        ));
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_keeps_its_invariants_under_random_faults() {
    let seed = env_u64("WVO_SOAK_SEED", DEFAULT_SEED);
    let cycles = env_u64("WVO_SOAK_CYCLES", DEFAULT_CYCLES);
    let trace = std::env::var_os("WVO_SOAK_TRACE").is_some();
    let mut rng = StdRng::seed_from_u64(seed);

    // Panics anywhere (test, controller tasks, emulator) are counted.
    let panics = Arc::new(AtomicU64::new(0));
    let panic_messages = Arc::new(Mutex::new(Vec::<String>::new()));
    {
        let (panics, messages) = (panics.clone(), panic_messages.clone());
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            panics.fetch_add(1, Ordering::SeqCst);
            if let Ok(mut m) = messages.lock() {
                m.push(info.to_string());
            }
            default(info);
        }));
    }

    let cluster = Cluster::start_with(KubeApiOptions {
        bookmark_interval: Duration::from_millis(250),
        ..KubeApiOptions::default()
    })
    .await;
    let api = &cluster.api;
    for (id, variants) in MODELS {
        for (name, product, _, _, min, _) in variants {
            cluster
                .deployment(
                    &format!("{id}-{name}"),
                    product,
                    1,
                    min.max(u32::from(name == "h100")),
                )
                .await;
        }
        cluster.va(&va_yaml(id, &variants)).await;
    }
    let metrics = FaultyMetrics::start(2).await;
    let mut records = Records {
        commits: api.commits(),
        lease: LeaseHistory::default(),
        events: Vec::new(),
        requests_seen: 0,
    };

    let mut instances: Vec<Instance> = Vec::new();
    for (i, identity) in ["a", "b"].into_iter().enumerate() {
        let client = client_as(api, identity);
        let view: SharedView = Arc::new(RwLock::new(ControllerView::default()));
        let reconciler = Reconciler::new(
            client.clone(),
            test_config(identity),
            Arc::new(metrics.loads(i)),
            view,
            None,
        );
        let mut inst = Instance {
            identity,
            client,
            reconciler: Some(reconciler),
            election: None,
            zombie_cycles: 0,
        };
        inst.restart_election().await;
        instances.push(inst);
    }

    let mut figures = Figures::default();
    let bad_va_defs = bad_vas();
    let bad_inventory_defs = bad_inventories();
    // Bad VAs present now: name -> uid.
    let mut bad_present: BTreeMap<&'static str, String> = BTreeMap::new();
    // The bad inventory in place, and since when.
    let mut bad_inventory: Option<(&'static str, Instant)> = None;
    let mut rates: BTreeMap<&'static str, f64> = MODELS.iter().map(|(id, _)| (*id, 5.0)).collect();
    let started = Instant::now();

    for cycle in 0..cycles {
        // --- The faults of this cycle.
        let mut api_faulted = false;
        if rng.random_bool(0.10) {
            api.fail_next_writes(rng.random_range(1..4), 500);
            figures.fault("api: write 500");
            api_faulted = true;
        }
        if rng.random_bool(0.05) {
            api.fail_next_reads(rng.random_range(1..4), 500);
            figures.fault("api: read 500");
            api_faulted = true;
        }
        if rng.random_bool(0.08) {
            api.inject_conflicts(rng.random_range(1..4));
            figures.fault("api: 409 conflict");
            api_faulted = true;
        }
        if rng.random_bool(0.05) {
            api.delay_next_requests(rng.random_range(1..4), API_HOLD);
            figures.fault("api: timeout (request held)");
            api_faulted = true;
        }
        if rng.random_bool(0.04) {
            api.drop_watches();
            figures.fault("api: watches dropped");
            api_faulted = true;
        }
        if rng.random_bool(0.01) {
            api.compact();
            api.drop_watches();
            figures.fault("api: history compacted (410 on re-watch)");
            api_faulted = true;
        }
        let mut unknown_metrics: BTreeSet<&'static str> = BTreeSet::new();
        for (id, _) in MODELS {
            let rate = rng
                .random_bool(0.3)
                .then(|| f64::from(rng.random_range(0..=60u32)));
            if let Some(r) = rate {
                rates.insert(id, r);
            }
            let fault = match rng.random_range(0..100u32) {
                0..=5 => Some(MetricsFault::Down),
                6..=10 => Some(MetricsFault::Slow),
                11..=15 => Some(MetricsFault::NaN),
                _ => None,
            };
            if let Some(f) = fault {
                figures.fault(match f {
                    MetricsFault::Down => "metrics: down",
                    MetricsFault::Slow => "metrics: slow",
                    MetricsFault::NaN => "metrics: NaN",
                });
                unknown_metrics.insert(id);
            }
            metrics.set(id, rate, fault);
        }
        if rng.random_bool(0.08) {
            let (name, spec, _) = &bad_va_defs[rng.random_range(0..bad_va_defs.len())];
            if bad_present.contains_key(name) {
                api.delete("wvo.dev/v1alpha1", "VariantAutoscaling", NS, name)
                    .expect("delete a bad VA");
                bad_present.remove(name);
                figures.fault("objects: bad VA removed");
            } else {
                let created = api
                    .create(
                        &json!({"apiVersion": "wvo.dev/v1alpha1", "kind": "VariantAutoscaling",
                        "metadata": {"name": name, "namespace": NS}, "spec": spec}),
                    )
                    .expect("create a bad VA");
                let uid = created
                    .pointer("/metadata/uid")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                bad_present.insert(name, uid);
                figures.fault("objects: bad VA added");
            }
        }
        if rng.random_bool(0.05) {
            let data = match bad_inventory {
                Some(_) => {
                    bad_inventory = None;
                    figures.fault("objects: inventory fixed");
                    json!({"inventory.yaml": INVENTORY})
                }
                None => {
                    let (kind, data) =
                        &bad_inventory_defs[rng.random_range(0..bad_inventory_defs.len())];
                    bad_inventory = Some((kind, Instant::now()));
                    figures.fault("objects: inventory made bad");
                    data.clone()
                }
            };
            api.replace(&json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": INVENTORY_NAME, "namespace": LEASE_NAMESPACE}, "data": data}))
                .expect("replace the inventory");
        }
        // Leader events: pause the leader (its elector stops: the Lease is not renewed, the
        // other instance takes over, the paused one resumes its cycles) or release.
        let leader = instances.iter().position(Instance::leads);
        let others_running = |instances: &Vec<Instance>, i: usize| {
            instances
                .iter()
                .enumerate()
                .all(|(j, x)| j == i || x.election.is_some())
        };
        if let Some(l) = leader.filter(|l| others_running(&instances, *l)) {
            if rng.random_bool(0.02) {
                drop(instances[l].election.take());
                figures.fault("leader: paused (Lease not renewed)");
            } else if rng.random_bool(0.02) {
                if let Some(e) = instances[l].election.take() {
                    e.release().await;
                }
                figures.fault("leader: released the Lease");
            }
        }

        // --- Who runs this cycle: the instances that lead by their election and guard (as
        // the runner decides), else a paused one resuming; else wait for a leader.
        for i in 0..instances.len() {
            let other_leads = instances
                .iter()
                .enumerate()
                .any(|(j, x)| j != i && x.leads());
            if instances[i].election.is_none() && other_leads && instances[i].zombie_cycles >= 1 {
                instances[i].restart_election().await;
                figures.takeovers += 1;
            }
        }
        let mut run: Vec<(usize, bool)> = instances
            .iter()
            .enumerate()
            .filter(|(_, x)| x.leads())
            .map(|(i, _)| (i, false))
            .collect();
        if run.is_empty() {
            if let Some(z) = instances
                .iter()
                .position(|x| x.election.is_none() && x.zombie_cycles < ZOMBIE_CYCLES)
            {
                run.push((z, true));
            } else {
                // Nobody leads: restart a stopped election if the other is stopped too, and
                // wait (bounded) for a leader.
                if instances.iter().all(|x| x.election.is_none()) {
                    instances[0].restart_election().await;
                }
                let l = eventually(30, "an instance to lead", || {
                    let found = instances.iter().position(Instance::leads);
                    async move { found }
                })
                .await;
                run.push((l, false));
            }
        }

        // --- The cycle(s).
        let before = replicas(api);
        let placed_before = placed(api);
        if trace {
            eprintln!("cycle {cycle}: faults so far {:?}; unknown {unknown_metrics:?}; rates {rates:?}; before {before:?}; run {run:?}", figures.faults);
        }
        let mut quiet = !api_faulted;
        let mut seen_bad: Vec<Vec<&'static str>> = Vec::new();
        for &(i, zombie) in &run {
            let inst = &mut instances[i];
            let reconciler = inst.reconciler.as_mut().expect("reconciler");
            seen_bad.push(
                bad_present
                    .keys()
                    .filter(|n| reconciler.sees_va(NS, n))
                    .copied()
                    .collect(),
            );
            let result = reconciler.cycle().await;
            if trace {
                trace_cycle(cycle, &result);
            }
            figures.cycles += 1;
            if zombie {
                inst.zombie_cycles += 1;
                figures.zombie_cycles += 1;
            }
            if let Err(e) = &result {
                *figures.cycle_errors.entry(e.kind()).or_default() += 1;
                quiet = false;
            }
            if zombie || matches!(result, Err(ControllerError::NotLeader(_))) {
                quiet = false;
            }
        }
        // Faults not consumed by this cycle end with it; held writes land (or never will).
        api.fail_next_writes(0, 500);
        api.fail_next_reads(0, 500);
        api.inject_conflicts(0);
        api.delay_next_requests(0, API_HOLD);
        eventually(10, "held requests to be handled", || async {
            (api.held_requests() == 0).then_some(())
        })
        .await;
        let after = replicas(api);
        records.drain();
        for (name, b) in &before {
            let a = after[name];
            if a > *b {
                figures.scaled.0 += 1;
            } else if a < *b {
                figures.scaled.1 += 1;
            }
        }

        // --- Invariant: no write while not leader, from the served requests and the Lease's
        // commits (holder at the write's arrival, and the holder's last write of the Lease
        // less than its duration before).
        let log = api.requests_timed();
        for (t, r) in &log[records.requests_seen..] {
            if !is_write(r) || r.resource == "leases" || !["a", "b"].contains(&r.user.as_str()) {
                continue;
            }
            *figures.writes.entry(r.user.clone()).or_default() += 1;
            let at = records.lease.at(*t);
            let ok = at.is_some_and(|(written, holder)| {
                holder == Some(r.user.as_str())
                    && t.duration_since(written) < Duration::from_secs(LEASE_SECONDS)
            });
            figures.check(INVARIANTS[0], ok, seed, cycle, || {
                format!(
                    "{} sent {} {}/{} {}/{} while the Lease said {:?}",
                    r.user,
                    r.verb,
                    r.resource,
                    r.subresource,
                    r.namespace,
                    r.name,
                    at.map(|(w, h)| (
                        h.map(str::to_string),
                        format!("written {} ms before", t.duration_since(w).as_millis())
                    ))
                )
            });
        }
        records.requests_seen = log.len();

        // --- Invariant: no scale-down of a model whose metrics are unknown this cycle: its
        // replicas stay at least those placed on a GPU when the cycle started (replicas
        // Pending for want of a GPU serve nothing; the controller drops them on purpose).
        for id in &unknown_metrics {
            let (_, variants) = MODELS.iter().find(|(m, _)| m == id).expect("model");
            for v in variants {
                let name = format!("{id}-{}", v.0);
                let (b, a) = (before[&name], after[&name]);
                let p = placed_before.get(&name).copied().unwrap_or(0);
                if a < b {
                    figures.pending_dropped_blind += u64::from(b - a);
                }
                figures.check(INVARIANTS[1], a >= b.min(p), seed, cycle, || {
                    format!("{name} went from {b} replicas ({p} placed) to {a} while the metrics of {id} were unknown")
                });
            }
        }

        // --- Invariant: within the inventory and each variant's bounds.
        for (accel, count) in GPUS {
            let used: u32 = MODELS
                .iter()
                .flat_map(|(id, vs)| vs.iter().map(move |v| (id, v)))
                .filter(|(_, v)| v.2 == accel)
                .map(|(id, v)| after[&format!("{id}-{}", v.0)])
                .sum();
            figures.check(INVARIANTS[3], used <= count, seed, cycle, || {
                format!(
                    "{used} {accel} GPUs in use by desired replicas, inventory {count}: {after:?}"
                )
            });
        }
        for (id, variants) in MODELS {
            for (name, _, _, _, min, max) in variants {
                let d = format!("{id}-{name}");
                let n = after[&d];
                let ok = n >= min && max.is_none_or(|m| n <= m);
                figures.check(INVARIANTS[2], ok, seed, cycle, || {
                    format!("{d} at {n} replicas, bounds {min}..{max:?}")
                });
            }
        }

        // --- Invariant: every bad object named (checked after a cycle with no API fault, run
        // by a leader to the end).
        if quiet {
            figures.quiet_cycles += 1;
            let seen: BTreeSet<&str> = seen_bad.iter().flatten().copied().collect();
            for (name, _, field) in &bad_va_defs {
                let Some(uid) = bad_present.get(name) else {
                    continue;
                };
                if !seen.contains(name) {
                    continue; // not in the controller's VA cache yet
                }
                let va = api
                    .get("wvo.dev/v1alpha1", "VariantAutoscaling", NS, name)
                    .unwrap_or(Value::Null);
                let c = condition(&va, "Optimized");
                let named = c.as_ref().is_some_and(|(s, reason, message)| {
                    s == "False" && reason == "InvalidSpec" && message.contains(field)
                });
                figures.check(INVARIANTS[4], named, seed, cycle, || {
                    format!("bad VA {name} (must name {field}) has Optimized {c:?}")
                });
                let event = records.events.iter().any(|(_, kind, n, u, reason)| {
                    kind == "VariantAutoscaling" && n == name && u == uid && reason == "InvalidSpec"
                });
                figures.check(INVARIANTS[4], event, seed, cycle, || {
                    format!("bad VA {name} (uid {uid}) has no InvalidSpec Event")
                });
            }
            if let Some((kind, since)) = bad_inventory {
                for (id, _) in MODELS {
                    let va = api
                        .get("wvo.dev/v1alpha1", "VariantAutoscaling", NS, id)
                        .unwrap_or(Value::Null);
                    let c = condition(&va, "Optimized");
                    let stale = c
                        .as_ref()
                        .is_some_and(|(s, reason, _)| s == "True" && reason == "StaleInventory");
                    figures.check(INVARIANTS[4], stale, seed, cycle, || {
                        format!("inventory bad ({kind}) but VA {id} has Optimized {c:?}")
                    });
                }
                let event = records.events.iter().any(|(at, k, n, _, _)| {
                    *at >= since && k == "ConfigMap" && n == INVENTORY_NAME
                });
                figures.check(INVARIANTS[4], event, seed, cycle, || {
                    format!("inventory bad ({kind}) and no Event about ConfigMap {INVENTORY_NAME} since")
                });
            }
        }

        // --- Invariant: no panic.
        let n = panics.load(Ordering::SeqCst);
        figures.check(INVARIANTS[5], n == 0, seed, cycle, || {
            format!(
                "{n} panic(s): {:?}",
                panic_messages.lock().map(|m| m.clone()).unwrap_or_default()
            )
        });
    }
    let elapsed = started.elapsed();

    // --- The figures.
    println!(
        "fault soak: seed {seed}, {} cycles ({} by a paused leader resuming, {} quiet), {:.1} s",
        figures.cycles,
        figures.zombie_cycles,
        figures.quiet_cycles,
        elapsed.as_secs_f64()
    );
    println!(
        "elections restarted after a pause or release: {}",
        figures.takeovers
    );
    println!(
        "deployments scaled up {} times, down {} times; controller writes checked: {:?}",
        figures.scaled.0, figures.scaled.1, figures.writes
    );
    println!(
        "Pending replicas (no GPU) dropped while their model's metrics were unknown: {}",
        figures.pending_dropped_blind
    );
    println!("faults injected:");
    let total: u64 = figures.faults.values().sum();
    for (kind, n) in &figures.faults {
        println!("  {kind:<42} {n:>6}");
    }
    println!("  {:<42} {total:>6}", "total");
    println!(
        "cycles that ended in an error (kind): {:?}",
        figures.cycle_errors
    );
    println!("checks made / violations:");
    let mut violations = 0;
    for inv in INVARIANTS {
        let v = figures.violations.get(inv).map_or(0, Vec::len);
        violations += v;
        println!(
            "  {inv:<42} {:>6} {v:>4}",
            figures.checks.get(inv).copied().unwrap_or(0)
        );
    }
    println!(
        "  {:<42} {:>6} {violations:>4}",
        "total",
        figures.checks.values().sum::<u64>()
    );
    for inst in instances {
        if let Some(e) = inst.election {
            e.release().await;
        }
    }
    metrics.task.abort();
    let shown: Vec<&String> = figures.violations.values().flatten().take(20).collect();
    assert!(
        violations == 0,
        "{violations} violation(s):\n{}",
        shown
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
}
