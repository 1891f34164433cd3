//! Shared fixtures for the end-to-end tests: an emulated cluster with GPU nodes, the
//! inventory ConfigMap, model-server Deployments and VariantAutoscalings, and the real
//! controller (`Reconciler`) talking to it through the `kube` client.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube::{Client, CustomResourceExt};
use serde_json::json;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use wvo_api::crd::VariantAutoscaling;
use wvo_api::ModelLoad;
use wvo_controller::loads::{LoadSource, StaticLoads};
use wvo_controller::metrics::Metrics;
use wvo_controller::reconciler::{ControllerConfig, Reconciler};
use wvo_controller::view::{ControllerView, SharedView};
use wvo_sim::kube_api::{gpu_node, KubeApiHandle, KubeApiOptions, KubeApiServer};

/// Namespace of the models in the fixtures.
pub const NS: &str = "llm";

/// The inventory used by the fixtures: 8 H100 at $4.10, 16 L40S at $1.30.
pub const INVENTORY: &str = "accelerators:\n- {name: H100, count: 8, costPerHour: 4.1, nodeSelector: {nvidia.com/gpu.product: NVIDIA-H100-80GB-HBM3}}\n- {name: L40S, count: 16, costPerHour: 1.3, nodeSelector: {nvidia.com/gpu.product: NVIDIA-L40S}}\nserviceClasses:\n- {name: premium, priority: 100, ttftMs: 500, itlMs: 50}\n";

/// The user the controller's client acts as: the `wvo` ServiceAccount of `deploy/rbac.yaml`
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
        self.deployment(&format!("{name}-h100"), "NVIDIA-H100-80GB-HBM3", 1, 1)
            .await;
        self.deployment(&format!("{name}-l40s"), "NVIDIA-L40S", 1, 0)
            .await;
        self.va(&format!(
            "apiVersion: wvo.dev/v1alpha1\nkind: VariantAutoscaling\nmetadata: {{name: {name}, namespace: {NS}}}\nspec:\n  modelID: {id}\n  variants:\n  - {{name: h100, scaleTargetRef: {{name: {name}-h100}}, accelerator: H100, maxRequestsPerSecond: 10}}\n  - {{name: l40s, scaleTargetRef: {{name: {name}-l40s}}, accelerator: L40S, maxRequestsPerSecond: 3}}\n{extra}"
        ))
        .await
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
