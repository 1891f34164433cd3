//! Shared fixtures for the end-to-end tests: an emulated cluster with GPU nodes, the
//! inventory ConfigMap, model-server Deployments and VariantAutoscalings, and the real
//! controller (`Reconciler`) talking to it through the `kube` client; for tests with real
//! metrics, a fleet of emulated vLLM servers following the pods ([`ServerFleet`]) and a
//! background control loop ([`CycleLoop`]).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube::{Client, CustomResourceExt};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use wvo_api::crd::VariantAutoscaling;
use wvo_api::ModelLoad;
use wvo_collector::Target;
use wvo_controller::loads::{LoadSource, StaticLoads};
use wvo_controller::metrics::Metrics;
use wvo_controller::reconciler::{ControllerConfig, Reconciler};
use wvo_controller::targets::SharedTargets;
use wvo_controller::view::{ControllerView, SharedView};
use wvo_sim::gateway::Gateway;
use wvo_sim::kube_api::{gpu_node, KubeApiHandle, KubeApiOptions, KubeApiServer};
use wvo_sim::model_server::{ModelServer, ReplicaConfig, ServerConfig};

/// Namespace of the models in the fixtures.
pub const NS: &str = "llm";

/// The inventory used by the fixtures: 8 H100 at $4.10, 16 L40S at $1.30.
pub const INVENTORY: &str = "accelerators:\n- {name: H100, count: 8, costPerHour: 4.1, nodeSelector: {nvidia.com/gpu.product: NVIDIA-H100-80GB-HBM3}}\n- {name: L40S, count: 16, costPerHour: 1.3, nodeSelector: {nvidia.com/gpu.product: NVIDIA-L40S}}\nserviceClasses:\n- {name: premium, priority: 100, ttftMs: 500, itlMs: 50}\n";

/// The user the controller's client acts as: the `wvo` ServiceAccount of `deploy/base/rbac.yaml`
/// (the emulator records it with every request; it authorizes nothing).
pub const CONTROLLER_USER: &str = "system:serviceaccount:wvo-system:wvo";

/// An emulated cluster plus the handles a test needs.
pub struct Cluster {
    /// The API emulator.
    pub api: KubeApiHandle,
    /// A client to it.
    pub client: Client,
    /// Loads the controller sees (set by the test).
    pub loads: StaticLoads,
}

/// Waits until `check` returns Some, polling every 20 ms, for at most `seconds`.
pub async fn eventually<T, F, Fut>(seconds: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Cluster {
    /// Starts the emulator with GPU nodes (2 x 4 H100, 2 x 8 L40S), the CRD, the namespaces
    /// and the inventory ConfigMap.
    pub async fn start() -> Cluster {
        Self::start_with(KubeApiOptions::default()).await
    }

    /// Same with emulator options.
    pub async fn start_with(options: KubeApiOptions) -> Cluster {
        let api = KubeApiServer::start(options)
            .await
            .expect("start the API emulator");
        for (name, product, gpus) in [
            ("h100-a", "NVIDIA-H100-80GB-HBM3", 4),
            ("h100-b", "NVIDIA-H100-80GB-HBM3", 4),
            ("l40s-a", "NVIDIA-L40S", 8),
            ("l40s-b", "NVIDIA-L40S", 8),
        ] {
            api.create(&gpu_node(name, product, gpus)).expect("node");
        }
        let client = api.client().expect("client");
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        crds.create(&PostParams::default(), &VariantAutoscaling::crd())
            .await
            .expect("create the CRD");
        for ns in [NS, "wvo-system"] {
            api.create(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
                .expect("namespace");
        }
        let cluster = Cluster {
            api,
            client,
            loads: StaticLoads::default(),
        };
        cluster.set_inventory(INVENTORY).await;
        cluster
    }

    /// Creates or replaces the inventory ConfigMap's content.
    pub async fn set_inventory(&self, text: &str) {
        let cms: Api<ConfigMap> = Api::namespaced(self.client.clone(), "wvo-system");
        let cm: ConfigMap = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "wvo-inventory", "namespace": "wvo-system"},
            "data": {"inventory.yaml": text}
        }))
        .expect("configmap");
        match cms.get_opt("wvo-inventory").await.expect("get configmap") {
            None => {
                cms.create(&PostParams::default(), &cm)
                    .await
                    .expect("create configmap");
            }
            Some(_) => {
                let patch = json!({"data": {"inventory.yaml": text}});
                cms.patch(
                    "wvo-inventory",
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(&patch),
                )
                .await
                .expect("patch configmap");
            }
        }
    }

    /// Creates a model-server Deployment pinned to a GPU product, `gpus` per pod.
    pub async fn deployment(&self, name: &str, product: &str, gpus: u32, replicas: u32) {
        let deploys: Api<Deployment> = Api::namespaced(self.client.clone(), NS);
        let d: Deployment = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": NS},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {
                        "nodeSelector": {"nvidia.com/gpu.product": product},
                        "containers": [{"name": "vllm", "image": "vllm/vllm-openai",
                            "resources": {"limits": {"nvidia.com/gpu": gpus.to_string()}}}]
                    }
                }
            }
        }))
        .expect("deployment");
        deploys
            .create(&PostParams::default(), &d)
            .await
            .expect("create deployment");
    }

    /// Creates a VariantAutoscaling from YAML (namespace `llm`).
    pub async fn va(&self, yaml: &str) -> VariantAutoscaling {
        let va: VariantAutoscaling = serde_norway::from_str(yaml).expect("VA yaml");
        let vas: Api<VariantAutoscaling> = Api::namespaced(self.client.clone(), NS);
        vas.create(&PostParams::default(), &va)
            .await
            .expect("create VA")
    }

    /// A VA of two variants (H100 at 10 req/s, L40S at 3 req/s) for model `id`, with the
    /// given actuation block appended to its spec.
    pub async fn two_variant_va(&self, name: &str, id: &str, extra: &str) -> VariantAutoscaling {
        self.two_variant_deployments(name).await;
        self.va(&two_variant_yaml(name, id, extra)).await
    }

    /// Like [`Cluster::two_variant_va`], but stored through the emulator's admin handle,
    /// past the CRD's validation: a VA stored before its CRD got a bound it now breaks.
    /// Returns the emulator's refusal of the same VA through the API (422), if any.
    pub async fn two_variant_va_unchecked(
        &self,
        name: &str,
        id: &str,
        extra: &str,
    ) -> Option<String> {
        self.two_variant_deployments(name).await;
        let yaml = two_variant_yaml(name, id, extra);
        let va: VariantAutoscaling = serde_norway::from_str(&yaml).expect("VA yaml");
        let vas: Api<VariantAutoscaling> = Api::namespaced(self.client.clone(), NS);
        let refusal = match vas.create(&PostParams::default(), &va).await {
            Ok(_) => return None,
            Err(e) => e.to_string(),
        };
        let raw: serde_json::Value = serde_norway::from_str(&yaml).expect("VA yaml");
        self.api.create(&raw).expect("admin create of the VA");
        Some(refusal)
    }

    async fn two_variant_deployments(&self, name: &str) {
        self.deployment(&format!("{name}-h100"), "NVIDIA-H100-80GB-HBM3", 1, 1)
            .await;
        self.deployment(&format!("{name}-l40s"), "NVIDIA-L40S", 1, 0)
            .await;
    }

    /// Sets the observed arrival rate of model `id`.
    pub fn set_load(&self, id: &str, rate: f64) {
        self.loads.set(
            NS,
            id,
            Ok(ModelLoad {
                arrival_rate: rate,
                avg_input_tokens: Some(512.0),
                avg_output_tokens: Some(128.0),
            }),
        );
    }

    /// A client acting as [`CONTROLLER_USER`], as the controller's own client does.
    pub fn controller_client(&self) -> Client {
        self.api.client_as(CONTROLLER_USER).expect("client")
    }

    /// Creates an autoscaling/v2 HPA on a Deployment in `llm` (CPU target 80%).
    pub async fn hpa(&self, name: &str, deployment: &str, min: i32, max: i32) {
        let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(self.client.clone(), NS);
        let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": name, "namespace": NS},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
                "minReplicas": min, "maxReplicas": max,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 80}}}]
            }
        }))
        .expect("hpa");
        hpas.create(&PostParams::default(), &hpa)
            .await
            .expect("create HPA");
    }

    /// A controller (reconciler) against this cluster, with its view and metrics. Its client
    /// acts as [`CONTROLLER_USER`].
    pub fn controller(&self, identity: &str) -> (Reconciler, SharedView, Arc<Metrics>) {
        self.controller_with(test_config(identity))
    }

    /// Same with a given configuration.
    pub fn controller_with(
        &self,
        config: ControllerConfig,
    ) -> (Reconciler, SharedView, Arc<Metrics>) {
        self.controller_with_loads(config, Arc::new(self.loads.clone()))
    }

    /// Same with a given configuration and load source.
    pub fn controller_with_loads(
        &self,
        config: ControllerConfig,
        loads: Arc<dyn LoadSource>,
    ) -> (Reconciler, SharedView, Arc<Metrics>) {
        let view: SharedView = Arc::new(RwLock::new(ControllerView::default()));
        let metrics = Arc::new(Metrics::new());
        let reconciler = Reconciler::new(
            self.controller_client(),
            config,
            loads,
            view.clone(),
            Some(metrics.clone()),
        );
        (reconciler, view, metrics)
    }

    /// Replicas a Deployment is set to.
    pub async fn replicas(&self, name: &str) -> i32 {
        let deploys: Api<Deployment> = Api::namespaced(self.client.clone(), NS);
        deploys
            .get(name)
            .await
            .expect("get deployment")
            .spec
            .replicas
            .unwrap_or(0)
    }

    /// Waits until a Deployment has `n` ready replicas.
    pub async fn wait_ready(&self, name: &str, n: i32) {
        let deploys: Api<Deployment> = Api::namespaced(self.client.clone(), NS);
        eventually(10, &format!("{name} to have {n} ready replicas"), || {
            let deploys = deploys.clone();
            async move {
                let d = deploys.get(name).await.ok()?;
                (d.status?.ready_replicas.unwrap_or(0) == n).then_some(())
            }
        })
        .await
    }

    /// The VA as stored now.
    pub async fn get_va(&self, name: &str) -> VariantAutoscaling {
        let vas: Api<VariantAutoscaling> = Api::namespaced(self.client.clone(), NS);
        vas.get(name).await.expect("get VA")
    }
}

/// The configuration of [`Cluster::controller`]: no planning headroom (the tests check
/// exact replica counts for given loads) and no rate window (`set_load` gives the exact
/// rate now).
pub fn test_config(identity: &str) -> ControllerConfig {
    ControllerConfig {
        identity: identity.into(),
        // The tests check exact replica counts for given loads: no planning headroom.
        options: wvo_api::PlanOptions {
            headroom: 0.0,
            ..ControllerConfig::default().options
        },
        // `set_load` gives the exact rate now (no trailing window, no scrape age), so
        // there is no lag to project a rise over and no noise to fall slowly from;
        // backlog, start-up horizon and forecast stay as `wvo run` has them.
        demand: Some(wvo_controller::cycle::DemandOptions {
            window_seconds: 0.0,
            scrape_age_seconds: 0.0,
            fall_seconds: 0.0,
            ..wvo_controller::cycle::DemandOptions::default()
        }),
        ..ControllerConfig::default()
    }
}

/// The condition of a type on a VA, as (status, reason, message).
pub fn condition(va: &VariantAutoscaling, type_: &str) -> Option<(String, String, String)> {
    va.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// A Deployment whose Ready pods each get an emulated vLLM server ([`ServerFleet`]).
#[derive(Clone, Debug)]
pub struct ServedDeployment {
    /// Deployment name in `llm` (its pods carry `app: <name>`, as [`Cluster::deployment`]
    /// makes them).
    pub deployment: String,
    /// Served model id (the servers' `model_name`, the scrape targets' model).
    pub model: String,
    /// Variant name the scrape targets carry.
    pub variant: String,
    /// Engine profile of the emulated servers.
    pub profile: wvo_api::Profile,
    /// Whether the fleet's gateway routes the model's requests to these servers.
    pub behind_gateway: bool,
}

/// A ready pod with its server: (deployment index, pod name, server).
type RunningServer = (usize, String, ModelServer);

/// One emulated vLLM server per Ready pod of some Deployments, started when the emulator's
/// kubelet marks the pod Ready and stopped when the pod goes (as `wvo demo` does). Keeps
/// current: the scrape targets of the controller's direct-scrape collector (the servers'
/// `/metrics`, plus the gateway's `/metrics` when there is a gateway) and the gateway's
/// backends of each model behind it.
pub struct ServerFleet {
    targets: SharedTargets,
    servers: Arc<Mutex<BTreeMap<String, usize>>>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl ServerFleet {
    /// Starts following the pods of `deployments` in `llm` (polled every 50 ms through
    /// `client`). The gateway, if any, knows each model behind it from now on (no backend
    /// until a pod is Ready) and its `/metrics` is a scrape target (namespace `llm`, any
    /// model, variant and pod `gateway`).
    pub fn start(
        client: Client,
        deployments: Vec<ServedDeployment>,
        gateway: Option<Arc<Gateway>>,
    ) -> ServerFleet {
        let targets = SharedTargets::default();
        let servers = Arc::new(Mutex::new(BTreeMap::new()));
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let mut running: Vec<RunningServer> = Vec::new();
        publish(
            &deployments,
            &running,
            gateway.as_deref(),
            &targets,
            &servers,
        );
        let task = tokio::spawn({
            let (targets, servers) = (targets.clone(), servers.clone());
            async move {
                follow(
                    client,
                    deployments,
                    gateway,
                    targets,
                    servers,
                    stop_rx,
                    &mut running,
                )
                .await;
                drop(running);
            }
        });
        ServerFleet {
            targets,
            servers,
            stop,
            task,
        }
    }

    /// The scrape targets, for [`ScrapeTargetLoads`](wvo_controller::targets::ScrapeTargetLoads).
    pub fn targets(&self) -> SharedTargets {
        self.targets.clone()
    }

    /// Servers running now for a Deployment (one per Ready pod, once started).
    pub fn servers(&self, deployment: &str) -> usize {
        self.servers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(deployment)
            .copied()
            .unwrap_or(0)
    }

    /// Stops following the pods and stops every server.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn follow(
    client: Client,
    deployments: Vec<ServedDeployment>,
    gateway: Option<Arc<Gateway>>,
    targets: SharedTargets,
    servers: Arc<Mutex<BTreeMap<String, usize>>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    running: &mut Vec<RunningServer>,
) {
    let pods: Api<Pod> = Api::namespaced(client, NS);
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let Ok(list) = pods.list(&kube::api::ListParams::default()).await else {
            continue;
        };
        // (deployment index, pod) of every Ready pod of the deployments.
        let ready: Vec<(usize, String)> = list
            .items
            .iter()
            .filter(|p| {
                p.metadata.deletion_timestamp.is_none()
                    && p.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|cs| {
                            cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                        })
            })
            .filter_map(|p| {
                let app = p.metadata.labels.as_ref()?.get("app")?;
                let i = deployments.iter().position(|d| &d.deployment == app)?;
                Some((i, p.metadata.name.clone()?))
            })
            .collect();
        let before = running.len();
        let mut gone = Vec::new();
        running.retain_mut(|(i, pod, _)| {
            let keep = ready.iter().any(|(j, p)| j == i && p == pod);
            if !keep {
                gone.push(pod.clone());
            }
            keep
        });
        let mut changed = running.len() != before;
        for (i, pod) in ready {
            if running.iter().any(|(_, p, _)| *p == pod) {
                continue;
            }
            let d = &deployments[i];
            let started = ModelServer::start(ServerConfig {
                replica: ReplicaConfig::new(&d.model, d.profile),
                speed: 1.0,
            })
            .await;
            match started {
                Ok(server) => {
                    running.push((i, pod, server));
                    changed = true;
                }
                Err(e) => eprintln!("model server for pod {pod}: {e}"),
            }
        }
        if changed {
            publish(
                &deployments,
                running,
                gateway.as_deref(),
                &targets,
                &servers,
            );
        }
    }
}

/// Sets the scrape targets, the gateway's backends and the server counts from `running`.
fn publish(
    deployments: &[ServedDeployment],
    running: &[RunningServer],
    gateway: Option<&Gateway>,
    targets: &SharedTargets,
    servers: &Mutex<BTreeMap<String, usize>>,
) {
    let mut list: Vec<Target> = running
        .iter()
        .map(|(i, pod, server)| Target {
            namespace: NS.to_string(),
            model: deployments[*i].model.clone(),
            variant: deployments[*i].variant.clone(),
            pod: pod.clone(),
            url: server.metrics_url(),
        })
        .collect();
    if let Some(gw) = gateway {
        let models: BTreeSet<&str> = deployments
            .iter()
            .filter(|d| d.behind_gateway)
            .map(|d| d.model.as_str())
            .collect();
        for model in models {
            let urls = running
                .iter()
                .filter(|(i, _, _)| {
                    deployments[*i].behind_gateway && deployments[*i].model == model
                })
                .map(|(_, _, s)| s.url())
                .collect();
            gw.set_backends(model, urls);
        }
        list.push(Target {
            namespace: NS.to_string(),
            model: String::new(),
            variant: "gateway".into(),
            pod: "gateway".into(),
            url: gw.metrics_url(),
        });
    }
    targets.set(list);
    let mut counts = servers.lock().unwrap_or_else(|p| p.into_inner());
    counts.clear();
    for d in deployments {
        let n = running
            .iter()
            .filter(|(i, _, _)| deployments[*i].deployment == d.deployment)
            .count();
        counts.insert(d.deployment.clone(), n);
    }
}

/// One control cycle run by a [`CycleLoop`]: when it started and ended, and its error.
#[derive(Clone, Debug)]
pub struct CycleRecord {
    /// When `Reconciler::cycle` was called.
    pub started: Instant,
    /// When it returned.
    pub ended: Instant,
    /// Its error, if it failed.
    pub error: Option<String>,
}

/// Runs `Reconciler::cycle` in a background task every `interval` (start to start; a
/// cycle longer than that is followed at once by the next), recording each cycle.
pub struct CycleLoop {
    log: Arc<Mutex<Vec<CycleRecord>>>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl CycleLoop {
    /// Starts cycling (the first cycle at once).
    pub fn start(mut reconciler: Reconciler, interval: Duration) -> CycleLoop {
        let log = Arc::new(Mutex::new(Vec::new()));
        let (stop, mut stop_rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn({
            let log = log.clone();
            async move {
                let mut tick = tokio::time::interval(interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = stop_rx.changed() => return,
                    }
                    let started = Instant::now();
                    let result = reconciler.cycle().await;
                    let record = CycleRecord {
                        started,
                        ended: Instant::now(),
                        error: result.err().map(|e| e.to_string()),
                    };
                    log.lock().unwrap_or_else(|p| p.into_inner()).push(record);
                }
            }
        });
        CycleLoop { log, stop, task }
    }

    /// The cycles run so far, oldest first.
    pub fn records(&self) -> Vec<CycleRecord> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The first cycle that started at or after `t` and has ended, if any.
    pub fn first_started_after(&self, t: Instant) -> Option<CycleRecord> {
        self.records().into_iter().find(|r| r.started >= t)
    }

    /// Stops after the cycle in progress, if any.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// The YAML of a two-variant VA (H100 at 10 req/s, L40S at 3 req/s) for model `id`, with
/// `extra` appended to the spec.
fn two_variant_yaml(name: &str, id: &str, extra: &str) -> String {
    format!(
        "apiVersion: wvo.dev/v1alpha1\nkind: VariantAutoscaling\nmetadata: {{name: {name}, namespace: {NS}}}\nspec:\n  modelID: {id}\n  variants:\n  - {{name: h100, scaleTargetRef: {{name: {name}-h100}}, accelerator: H100, maxRequestsPerSecond: 10}}\n  - {{name: l40s, scaleTargetRef: {{name: {name}-l40s}}, accelerator: L40S, maxRequestsPerSecond: 3}}\n{extra}"
    )
}
