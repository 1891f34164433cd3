//! The Kubernetes side of one control cycle: read the cluster, run the pure cycle, act,
//! report. Only the leader calls [`Reconciler::cycle`].
//!
//! Reads: the inventory ConfigMap, Nodes (for `discover: true`), VariantAutoscalings, each
//! variant's workload and its `/scale`, the workload's Pods, HPAs. Writes: `/scale` (mode
//! `scale`) and HPA min/max (mode `hpa`) through [`wvo_actuator`], VA `/status` (server-side
//! apply), Events. Each write is preceded by a check of the [`LeaseGuard`]
//! ([`Reconciler::with_lease`]): the first refusal stops the cycle's writes and the cycle
//! ends in [`ControllerError::NotLeader`].

use crate::cache::{CachedHpa, CachedPod};
use crate::calibration::{Calibrator, VariantEvidence};
use crate::cycle::{
    run_cycle, CycleOutcome, CycleState, Frozen, ModelState, Snapshot, VariantState,
};
use crate::lease::{LeaseGuard, NotLeader};
use crate::loads::{LoadSource, ModelKey, VariantPod};
use crate::view::{
    AcceleratorView, DecisionRecord, LatencyView, ModelView, SharedView, DECISION_HISTORY,
};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Node, ObjectReference, Pod};
use kube::api::{ListParams, Patch, PatchParams};
use kube::core::{ApiResource, DynamicObject};
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use wvo_actuator::{Action, ActionResult, Actuation, Actuator, ActuatorConfig, WorkloadRef};
use wvo_api::crd::{ActuationMode, Decision, VariantAutoscaling, INVENTORY_KEY};
use wvo_api::{AcceleratorType, ModelLoad, PlanInput, PlanOptions, ProfileSpec};
use wvo_cycle::admission::{admit, Admitted, Prior};
use wvo_cycle::conditions::{model_conditions, Condition, ConditionType, ModelConditions, Reason};
use wvo_cycle::inventory::{InventoryOutcome, InventoryRead, InventoryState};
use wvo_cycle::status::{profile_statuses, va_status, Fresh};

pub use wvo_cycle::{DEFAULT_HEADROOM, DEFAULT_SCALE_DOWN_MARGIN, DEFAULT_TOKENS};

pub use wvo_cycle::status::STATUS_DECISIONS;

/// Settings of the control loop.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// Namespace of the inventory ConfigMap.
    pub inventory_namespace: String,
    /// Name of the inventory ConfigMap.
    pub inventory_name: String,
    /// Only VAs in this namespace (None: all namespaces).
    pub watch_namespace: Option<String>,
    /// Planner options (headroom, solver).
    pub options: PlanOptions,
    /// Scale-down hysteresis margin, a fraction of the observed arrival rate (see
    /// [`Snapshot::scale_down_margin`]); default [`DEFAULT_SCALE_DOWN_MARGIN`].
    pub scale_down_margin: f64,
    /// Field manager for server-side apply and the Events' reporting controller.
    pub field_manager: String,
    /// This replica's identity (pod name), for Events.
    pub identity: String,
    /// Online calibration of profiles from the observed per-variant figures.
    pub calibration: crate::calibration::CalibrationSettings,
    /// Demand estimation (fast rise, backlog, start-up horizon, forecast); None plans for
    /// the observed arrival rate as it is.
    pub demand: Option<crate::cycle::DemandOptions>,
    /// `hpa` actuation may set an HPA's `minReplicas` to 0 (the cluster runs the
    /// HPAScaleToZero feature gate, alpha since Kubernetes 1.16, and the HPA scales on an
    /// Object or External metric); false keeps `minReplicas >= 1`, as the API server
    /// requires without the gate (`wvo run --hpa-scale-to-zero`).
    pub hpa_scale_to_zero: bool,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            inventory_namespace: "wvo-system".into(),
            inventory_name: "wvo-inventory".into(),
            watch_namespace: None,
            options: PlanOptions {
                headroom: DEFAULT_HEADROOM,
                ..PlanOptions::default()
            },
            scale_down_margin: DEFAULT_SCALE_DOWN_MARGIN,
            field_manager: "wvo".into(),
            identity: "wvo".into(),
            calibration: crate::calibration::CalibrationSettings::default(),
            demand: Some(crate::cycle::DemandOptions::default()),
            hpa_scale_to_zero: false,
        }
    }
}

/// Errors of one cycle's I/O; their `kind()` labels `wvo_errors_total`.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// A Kubernetes API call failed.
    #[error("kubernetes API: {context}: {source}")]
    Kube {
        /// What was being done.
        context: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// No valid inventory has ever been read.
    #[error("no valid inventory: {0}")]
    NoInventory(String),
    /// The VariantAutoscaling watch cache could not be read (not listed yet, or stopped).
    #[error("VariantAutoscaling cache: {0}")]
    Cache(String),
    /// The planner failed; the previous plan stays in force.
    #[error(transparent)]
    Cycle(#[from] crate::cycle::CycleError),
    /// A write was refused because this replica may not write any more
    /// ([`LeaseGuard::check`]): the cycle stopped writing. Not an error of any VA.
    #[error("write refused: {0}")]
    NotLeader(#[from] NotLeader),
}

impl ControllerError {
    /// A short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Kube { .. } => "kube",
            Self::NoInventory(_) => "inventory",
            Self::Cache(_) => "cache",
            Self::Cycle(_) => "plan",
            Self::NotLeader(_) => "not_leader",
        }
    }
}

fn kube_err(context: impl Into<String>) -> impl FnOnce(kube::Error) -> ControllerError {
    let context = context.into();
    move |source| ControllerError::Kube { context, source }
}

/// What one cycle did, for tests and logs.
#[derive(Clone, Debug, Default)]
pub struct CycleReport {
    /// The stabilized outcome (None when planning failed or was impossible).
    pub outcome: Option<CycleOutcome>,
    /// Workload changes made: (namespace, workload, from, to).
    pub actuations: Vec<(String, String, u32, u32)>,
    /// VAs refused (namespace/name, reason).
    pub refused: Vec<(String, String)>,
    /// Errors met while acting or reporting (the cycle went on).
    pub errors: Vec<String>,
    /// Time spent planning, s.
    pub solve_seconds: f64,
}

/// One variant's workload as read from the cluster.
struct Workload {
    name: String,
    state: VariantState,
    /// Names of the ready pods.
    ready_pods: Vec<String>,
    /// Age of the youngest ready pod, s.
    youngest_ready_age_s: Option<f64>,
    /// Creation and ready times of the ready pods that never restarted (start-up samples).
    ready_times: Vec<crate::startup::PodReady>,
}

/// The control loop's Kubernetes side, with its state between cycles.
pub struct Reconciler {
    client: Client,
    actuator: Actuator,
    config: ControllerConfig,
    loads: Arc<dyn LoadSource>,
    view: SharedView,
    metrics: Option<Arc<crate::metrics::Metrics>>,
    state: CycleState,
    inventory: InventoryState,
    last_tokens: BTreeMap<ModelKey, (f64, f64)>,
    recorder: Recorder,
    known_vas: BTreeSet<(String, String)>,
    calibrator: Calibrator,
    startup: crate::startup::StartupLearner,
    /// Which models' past was read from the load source (Prometheus range queries).
    range_restores: crate::persist::RangeRestores,
    /// Watch caches of VAs, Pods, HPAs and workloads.
    cache: crate::cache::ClusterCache,
    /// Checked before each write: whether this replica still holds the leader Lease.
    lease: LeaseGuard,
    /// Why this cycle stopped writing (the first refusal of [`Self::lease`]), if it did.
    refusal: std::sync::Mutex<Option<NotLeader>>,
    /// Refusal Events whose publication failed, to publish again while the refusal stands
    /// (the status, which says whether a refusal is new, may have been written meanwhile).
    owed_events: std::sync::Mutex<BTreeSet<OwedEvent>>,
}

/// A refusal Event not published yet: (namespace, name, uid, reason, note) of the object.
type OwedEvent = (String, String, String, String, String);

fn owed_event(reference: &ObjectReference, reason: &str, note: &str) -> OwedEvent {
    (
        reference.namespace.clone().unwrap_or_default(),
        reference.name.clone().unwrap_or_default(),
        reference.uid.clone().unwrap_or_default(),
        reason.to_string(),
        note.to_string(),
    )
}

fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

/// The wall clock now, UNIX seconds (0 if the clock is before 1970).
pub(crate) fn now_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A timestamp as UNIX seconds.
fn unix_seconds(t: k8s_openapi::jiff::Timestamp) -> f64 {
    t.as_millisecond() as f64 / 1000.0
}

/// Creation time of a pod, UNIX seconds, when its Ready time is a start-up sample: it has a
/// creation time and none of its containers restarted (a restart moves the Ready time).
fn startup_sample_created(p: &CachedPod) -> Option<f64> {
    if p.restarted {
        return None;
    }
    p.created.map(unix_seconds)
}

impl Reconciler {
    /// A reconciler using `client`, reading loads from `loads`, publishing to `view`.
    pub fn new(
        client: Client,
        config: ControllerConfig,
        loads: Arc<dyn LoadSource>,
        view: SharedView,
        metrics: Option<Arc<crate::metrics::Metrics>>,
    ) -> Self {
        let reporter = Reporter {
            controller: config.field_manager.clone(),
            instance: Some(config.identity.clone()),
        };
        let calibration = config.calibration;
        let cache = crate::cache::ClusterCache::new(client.clone(), config.watch_namespace.clone());
        let actuator = Actuator::new(
            client.clone(),
            ActuatorConfig {
                field_manager: config.field_manager.clone(),
                ..ActuatorConfig::default()
            },
        );
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            actuator,
            client,
            config,
            loads,
            view,
            metrics,
            state: CycleState::default(),
            inventory: InventoryState::new(),
            last_tokens: BTreeMap::new(),
            known_vas: BTreeSet::new(),
            calibrator: Calibrator::new(calibration),
            startup: crate::startup::StartupLearner::new(),
            range_restores: crate::persist::RangeRestores::default(),
            cache,
            lease: LeaseGuard::always(),
            refusal: std::sync::Mutex::new(None),
            owed_events: std::sync::Mutex::new(BTreeSet::new()),
        }
    }

    /// The same reconciler writing only while `guard` is valid: every status patch,
    /// actuation and Event is preceded by [`LeaseGuard::check`] (without it, [`new`](Self::new)
    /// writes as if always leader: `--no-leader-election`).
    pub fn with_lease(mut self, guard: LeaseGuard) -> Self {
        self.lease = guard;
        self
    }

    /// The guard this reconciler checks before each write.
    pub fn lease(&self) -> &LeaseGuard {
        &self.lease
    }

    /// How long this cycle may still write ([`LeaseGuard::remaining`]): None from the first
    /// refusal of the guard on (the cycle stops writing; logged once per cycle).
    fn may_write(&self) -> Option<std::time::Duration> {
        let mut refusal = self.refusal.lock().unwrap_or_else(|p| p.into_inner());
        if refusal.is_some() {
            return None;
        }
        match self.lease.remaining() {
            Ok(left) => Some(left),
            Err(why) => {
                tracing::warn!(why = %why, identity = %self.config.identity, "not leader: this cycle writes nothing more");
                *refusal = Some(why);
                None
            }
        }
    }

    /// Runs `write` if this cycle may write, cut at the lease's deadline (the kube client's
    /// own retries inside it included); None when refused or cut.
    async fn guarded<T>(&self, write: impl std::future::Future<Output = T>) -> Option<T> {
        let left = self.may_write()?;
        match tokio::time::timeout(left, write).await {
            Ok(out) => Some(out),
            Err(_) => {
                // Records the refusal (the deadline passed).
                let _ = self.may_write();
                None
            }
        }
    }

    /// Whether a write of this cycle was refused.
    fn refused(&self) -> bool {
        self.refusal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// The rate history this controller keeps for VA `namespace/name` (None before its
    /// first cycle planned that model); UNIX seconds.
    pub fn demand_history(&self, namespace: &str, name: &str) -> Option<&wvo_demand::History> {
        self.state.demand_history(namespace, name)
    }

    /// Whether this controller's watch cache holds VA `namespace/name` (a VA created a moment
    /// ago is planned from the first cycle after its watch event arrives).
    pub fn sees_va(&self, namespace: &str, name: &str) -> bool {
        self.cache.holds_va(namespace, name)
    }

    /// The start-up learned for variant `variant` of VA `namespace/name` from its pods'
    /// ready times, s (None before a pod of it was seen Ready).
    pub fn learned_startup_seconds(
        &self,
        namespace: &str,
        name: &str,
        variant: &str,
    ) -> Option<f64> {
        self.startup
            .estimate(&(namespace.into(), name.into(), variant.into()))
    }

    /// Publishes an Event under action `Reconcile`: kube's [`Recorder`] folds the Events of
    /// one (type, action, reason, object, reporting controller) into a series that keeps the
    /// first note (for 6 minutes), which suits repeated happenings such as `ScaledUp`.
    async fn publish(
        &self,
        reference: &ObjectReference,
        warning: bool,
        reason: &str,
        note: String,
    ) {
        self.publish_as(reference, warning, reason, "Reconcile".into(), note)
            .await;
    }

    /// Publishes the Event of a refusal (bad inventory, bad spec, a workload not touched):
    /// one Event per distinct note, each carrying its own. The [`Recorder`]'s cache key is
    /// (type, action, reason, reporting controller and instance, regarding, related), the
    /// note not in it, so a second refusal of the same reason on the same object within its
    /// 6-minute cache would be patched into the first Event's series under the first (stale)
    /// note. The action is therefore `Refuse-<digest of the note>`: a new cause is a new
    /// Event with the current note, and the same cause repeated (same note) still folds into
    /// its own series. The action, not `related`: it is the only free string in the key and
    /// needs no made-up object reference.
    ///
    /// Published when `newly` (the object's status does not show this refusal yet) or when
    /// an earlier publication of the same refusal failed: the status may have been written
    /// since, and the Event would otherwise never be.
    async fn publish_refusal(
        &self,
        newly: bool,
        reference: &ObjectReference,
        reason: &str,
        note: String,
    ) {
        let note: String = note.chars().take(1000).collect();
        let key = owed_event(reference, reason, &note);
        let owed = self
            .owed_events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&key);
        if !newly && !owed {
            return;
        }
        let action = format!("Refuse-{:08x}", note_digest(&note));
        let published = self.publish_as(reference, true, reason, action, note).await;
        let mut owed = self.owed_events.lock().unwrap_or_else(|p| p.into_inner());
        if published {
            owed.remove(&key);
        } else {
            owed.insert(key);
        }
    }

    /// Forgets the refusal Events owed for objects other than `live` ((namespace, name)) and
    /// the inventory ConfigMap.
    fn retain_owed_events(&self, live: &BTreeSet<(String, String)>) {
        let inventory = (
            self.config.inventory_namespace.as_str(),
            self.config.inventory_name.as_str(),
        );
        self.owed_events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(ns, name, ..)| {
                (ns.as_str(), name.as_str()) == inventory
                    || live.contains(&(ns.clone(), name.clone()))
            });
    }

    /// Whether the Event was published.
    async fn publish_as(
        &self,
        reference: &ObjectReference,
        warning: bool,
        reason: &str,
        action: String,
        note: String,
    ) -> bool {
        let event = KubeEvent {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.into(),
            note: Some(note.chars().take(1000).collect()),
            action,
            secondary: None,
        };
        match self.guarded(self.recorder.publish(&event, reference)).await {
            Some(Ok(())) => true,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "could not publish an Event");
                false
            }
            None => false,
        }
    }

    /// Reads and checks the inventory ConfigMap; a bad one is refused (Event) and the last
    /// good one stays. Returns the inventory in force and the refusal message, if any.
    async fn read_inventory(
        &mut self,
    ) -> Result<(Vec<AcceleratorType>, Option<String>), ControllerError> {
        let api: Api<ConfigMap> =
            Api::namespaced(self.client.clone(), &self.config.inventory_namespace);
        let cm = api
            .get_opt(&self.config.inventory_name)
            .await
            .map_err(kube_err("reading the inventory ConfigMap"))?;
        let read = match &cm {
            None => InventoryRead::NotFound {
                namespace: &self.config.inventory_namespace,
                name: &self.config.inventory_name,
            },
            Some(cm) => match cm.data.as_ref().and_then(|d| d.get(INVENTORY_KEY)) {
                None => InventoryRead::NoKey,
                Some(text) => InventoryRead::Text(text),
            },
        };
        let InventoryOutcome {
            inventory,
            refusal,
            newly_refused,
        } = self.inventory.observe(read);
        if let Some(refused) = &refusal {
            // A ConfigMap that is not there is still named (no uid).
            let reference = cm.as_ref().map_or_else(
                || ObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("ConfigMap".into()),
                    namespace: Some(self.config.inventory_namespace.clone()),
                    name: Some(self.config.inventory_name.clone()),
                    ..ObjectReference::default()
                },
                |cm| cm.object_ref(&()),
            );
            let stays = if inventory.is_ok() {
                "the last good inventory stays in force"
            } else {
                "no inventory is in force: nothing is planned"
            };
            self.publish_refusal(
                newly_refused,
                &reference,
                refused.kind.reason(),
                format!("{}; {stays}", refused.message),
            )
            .await;
        }
        let refusal = refusal.map(|r| r.message);
        let inventory = inventory.map_err(|e| ControllerError::NoInventory(e.0))?;
        let mut accelerators = Vec::with_capacity(inventory.accelerators.len());
        for a in &inventory.accelerators {
            let mut count = a.count.unwrap_or(u32::MAX);
            if a.discover {
                let selector = a
                    .node_selector
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",");
                let nodes: Api<Node> = Api::all(self.client.clone());
                let list = nodes
                    .list(&ListParams::default().labels(&selector))
                    .await
                    .map_err(kube_err(format!("listing Nodes for {}", a.name)))?;
                let found: u64 = list
                    .items
                    .iter()
                    .filter_map(|n| n.status.as_ref()?.allocatable.as_ref())
                    .filter_map(|alloc| {
                        alloc
                            .get("nvidia.com/gpu")
                            .or_else(|| alloc.get("amd.com/gpu"))
                            .and_then(|q| q.0.parse::<u64>().ok())
                    })
                    .sum();
                count = count.min(u32::try_from(found).unwrap_or(u32::MAX));
            }
            accelerators.push(AcceleratorType {
                name: a.name.clone(),
                count,
                cost_per_hour: a.cost_per_hour,
            });
        }
        Ok((accelerators, refusal))
    }

    /// Reads one variant's workload: replicas, ready, Pending-for-GPU pods, and whether it is
    /// wvo's to change. From the watch caches when they hold the workload's kind; otherwise
    /// (a kind with its own `/scale` paths, or a cache not listed yet) by a GET of the
    /// workload and its `/scale` and a LIST of its pods.
    async fn read_workload(
        &self,
        namespace: &str,
        target: &wvo_api::crd::ScaleTargetRef,
        mode: ActuationMode,
        hpas: &[Arc<CachedHpa>],
        pod_index: &mut crate::cache::PodIndex,
    ) -> Result<Workload, ControllerError> {
        let resource = crate::cache::target_resource(&target.api_version, &target.kind);
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, &resource);
        let what = format!("{} {namespace}/{}", target.kind, target.name);
        let not_found = || Workload {
            name: target.name.clone(),
            state: VariantState {
                frozen: Some(Frozen::TargetNotFound(format!(
                    "scaleTargetRef {what} not found"
                ))),
                ..VariantState::default()
            },
            ready_pods: Vec::new(),
            youngest_ready_age_s: None,
            ready_times: Vec::new(),
        };
        let cached = self.cache.workload(
            namespace,
            &target.api_version,
            &target.kind,
            &target.name,
            pod_index,
        );
        let (replicas, ready, pods) = match cached {
            Some(crate::cache::CachedWorkload::NotFound) => return Ok(not_found()),
            Some(crate::cache::CachedWorkload::Found {
                replicas,
                ready,
                pods,
            }) => (replicas, ready, pods),
            Some(crate::cache::CachedWorkload::ReadScale) | None => {
                let Some(object) = api
                    .get_opt(&target.name)
                    .await
                    .map_err(kube_err(format!("reading {what}")))?
                else {
                    return Ok(not_found());
                };
                let scale = api
                    .get_scale(&target.name)
                    .await
                    .map_err(kube_err(format!("reading the scale of {what}")))?;
                let replicas = scale
                    .spec
                    .as_ref()
                    .and_then(|s| s.replicas)
                    .and_then(|r| u32::try_from(r).ok())
                    .unwrap_or(0);
                let selector = scale.status.as_ref().and_then(|s| s.selector.clone());
                let ready = crate::cache::ready_replicas(&object);
                let mut pods = Vec::new();
                if let Some(selector) = selector.filter(|s| !s.is_empty()) {
                    let pod_api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
                    pods = pod_api
                        .list(&ListParams::default().labels(&selector))
                        .await
                        .map_err(kube_err(format!("listing the pods of {what}")))?
                        .items
                        .iter()
                        .map(|p| Arc::new(CachedPod::from_pod(p)))
                        .collect();
                }
                (replicas, ready, pods)
            }
        };
        let pending = pods.iter().filter(|p| p.pending_unschedulable).count();
        let mut ready_pods = Vec::new();
        let mut youngest_ready_age_s: Option<f64> = None;
        let mut ready_times = Vec::new();
        let now = k8s_openapi::jiff::Timestamp::now();
        for p in &pods {
            if let Some(since) = p.ready_since {
                ready_pods.push(p.name.clone());
                if let (Some(ready), Some(created)) = (since, startup_sample_created(p)) {
                    ready_times.push(crate::startup::PodReady {
                        pod: p.name.clone(),
                        created_seconds: created,
                        ready_seconds: unix_seconds(ready),
                    });
                }
                // Unknown transition time: unknown age (calibration treats it as warm-up).
                let age = since.map(|t| now.duration_since(t).as_secs_f64().max(0.0));
                youngest_ready_age_s = match (youngest_ready_age_s, age) {
                    (_, None) => Some(0.0),
                    (None, Some(a)) => Some(a),
                    (Some(y), Some(a)) => Some(y.min(a)),
                };
            }
        }
        let foreign = hpas
            .iter()
            .find(|h| h.target_kind == target.kind && h.target_name == target.name);
        let frozen = match (mode, foreign) {
            (ActuationMode::Scale, Some(h)) => Some(Frozen::ForeignScaler(format!(
                "{what} is scaled by HorizontalPodAutoscaler {namespace}/{}; wvo reports but does not fight it (use actuation: hpa to bound it)",
                h.name
            ))),
            (ActuationMode::Hpa, None) => Some(Frozen::NoHpa(format!(
                "actuation is hpa but no HorizontalPodAutoscaler targets {what}; create one, or use actuation: scale"
            ))),
            _ => None,
        };
        Ok(Workload {
            name: target.name.clone(),
            state: VariantState {
                replicas,
                ready,
                pending_unschedulable: u32::try_from(pending).unwrap_or(u32::MAX),
                frozen,
                startup_seconds: None,
            },
            ready_pods,
            youngest_ready_age_s,
            ready_times,
        })
    }

    /// Fills the rate history of each VA in `vas` ((namespace, name), model key) whose
    /// past was not read yet (or whose last read failed [`crate::persist::RANGE_RETRY_SECONDS`]
    /// ago) from the load source's past: one read for all of them, over the `capacity`
    /// newest history buckets. The buckets the controller (or the status) already has
    /// are kept ([`crate::persist::fill_history`]). A failed read is logged and counted
    /// (`wvo_errors_total{kind="history"}`) and never fails the cycle. A source with no
    /// past (direct scrape) is not asked again.
    async fn restore_past_rates(&mut self, vas: &[((String, String), ModelKey)], capacity: usize) {
        let now = now_seconds();
        self.range_restores
            .retain(&vas.iter().map(|(va, _)| va.clone()).collect());
        let due: Vec<&((String, String), ModelKey)> = vas
            .iter()
            .filter(|(va, _)| self.range_restores.due(va, now))
            .collect();
        if due.is_empty() {
            return;
        }
        let bucket = wvo_demand::BUCKET_SECONDS;
        let loads = self.loads.clone();
        let read = wvo_collector::RateRange::for_history(now, capacity, bucket)
            .and_then(|range| loads.past_rates(range));
        let Some(read) = read else {
            for (va, _) in due {
                self.range_restores.done(va.clone());
            }
            return;
        };
        match read.await {
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    models = due.len(),
                    retry_seconds = crate::persist::RANGE_RETRY_SECONDS,
                    "rate history not read from Prometheus; planning goes on with the history from status or a new one"
                );
                if let Some(m) = &self.metrics {
                    m.count_error("history");
                }
                for (va, _) in due {
                    self.range_restores.failed(va.clone(), now);
                }
            }
            Ok(rates) => {
                for ((ns, name), model) in due {
                    self.range_restores.done((ns.clone(), name.clone()));
                    let Some(past) = rates.get(model).and_then(|points| {
                        crate::persist::history_from_rates(points, bucket, capacity)
                    }) else {
                        continue;
                    };
                    let history = match self.state.demand_history(ns, name) {
                        Some(ours) => {
                            let filled = crate::persist::fill_history(ours, &past);
                            if &filled == ours {
                                continue;
                            }
                            filled
                        }
                        None => past,
                    };
                    tracing::info!(
                        va = %format!("{ns}/{name}"),
                        seconds = history.span_seconds(),
                        "rate history filled from Prometheus"
                    );
                    self.state.restore_demand_history(ns, name, history);
                }
            }
        }
    }

    /// Runs one cycle: read, plan, act, report. Errors that stop planning are returned; the
    /// previous plan then stays in force.
    pub async fn cycle(&mut self) -> Result<CycleReport, ControllerError> {
        let started = std::time::Instant::now();
        *self.refusal.get_mut().unwrap_or_else(|p| p.into_inner()) = None;
        let result = self.cycle_inner().await;
        // A refused write ends the cycle as not leader, whatever else it met.
        let result = match self
            .refusal
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            Some(why) => Err(ControllerError::NotLeader(why)),
            None => result,
        };
        if let Some(m) = &self.metrics {
            let solve = result.as_ref().map_or(0.0, |r| r.solve_seconds);
            m.observe_cycle(started.elapsed().as_secs_f64(), solve);
            if let Err(e) = &result {
                m.count_error(e.kind());
            }
        }
        if let Ok(mut view) = self.view.write() {
            match &result {
                Ok(_) => view.last_error = None,
                Err(e) => view.last_error = Some(e.to_string()),
            }
            view.ready = view.ready || result.is_ok();
            view.cycle_signal.published();
        }
        result
    }

    async fn cycle_inner(&mut self) -> Result<CycleReport, ControllerError> {
        let mut report = CycleReport::default();
        // Read from the watch cache and decoded one by one: an object the types cannot read
        // (a value a real apiserver accepts, such as `maxReplicas: 1e18`) is refused on its own.
        let resource = ApiResource::erase::<VariantAutoscaling>(&());
        let listed = self.cache.vas().await.map_err(ControllerError::Cache)?;
        let live: BTreeSet<(String, String)> = listed
            .decoded
            .iter()
            .map(|va| (va.namespace().unwrap_or_default(), va.name_any()))
            .chain(
                listed
                    .undecodable
                    .iter()
                    .map(|(o, _)| (o.namespace().unwrap_or_default(), o.name_any())),
            )
            .collect();
        self.retain_owed_events(&live);
        for (object, message) in &listed.undecodable {
            self.refuse_undecodable(&resource, object, message, &mut report)
                .await;
        }
        let mut list = listed.decoded;
        list.sort_by_key(|va| (va.namespace(), va.name_any()));
        // The workload kinds the VAs target are watched too (a kind no VA names any more is
        // not); a kind whose watch has not listed yet is read directly this cycle.
        let kinds: BTreeSet<(String, String)> = list
            .iter()
            .flat_map(|va| va.spec.variants.iter())
            .map(|v| {
                (
                    v.scale_target_ref.api_version.clone(),
                    v.scale_target_ref.kind.clone(),
                )
            })
            .collect();
        let kinds: Vec<(String, String)> = kinds.into_iter().collect();
        for ((api_version, kind), why) in self.cache.watch_workloads(&kinds).await {
            tracing::warn!(kind = %kind, api_version = %api_version, error = %why, "cache not synced; reading directly this cycle");
        }
        let mut pod_index = self.cache.pod_index();

        let (inventory, inventory_refusal) = match self.read_inventory().await {
            Ok(x) => x,
            Err(e) => {
                self.not_optimized(
                    list.iter().map(|va| &**va),
                    Reason::NoInventory,
                    &e.to_string(),
                    &mut report,
                )
                .await;
                return Err(e);
            }
        };
        let classes = self
            .inventory
            .in_force()
            .map(|i| i.service_classes.clone())
            .unwrap_or_default();

        // One VA per workload: the oldest VA (then the first by namespace/name, then its first
        // variant) owns a target; any other variant pointing at it is planned around, not
        // actuated (two owners would fight every cycle).
        let owners = target_owners(&list);

        // Valid VAs, their workloads, and their loads.
        let mut hpas_by_ns: BTreeMap<String, Vec<Arc<CachedHpa>>> = BTreeMap::new();
        let mut accepted: Vec<(Arc<VariantAutoscaling>, wvo_api::ModelSpec, Vec<Workload>)> =
            Vec::new();
        let mut priors_by_va: BTreeMap<(String, String), Vec<Option<Prior>>> = BTreeMap::new();
        for va in &list {
            let ns = va.namespace().unwrap_or_default();
            let name = va.name_any();
            let spec = match admit(va, &inventory, &classes) {
                Ok(Admitted { spec, priors }) => {
                    priors_by_va.insert((ns.clone(), name.clone()), priors);
                    spec
                }
                Err(e) => {
                    let message = e.to_string();
                    report
                        .refused
                        .push((format!("{ns}/{name}"), message.clone()));
                    let newly = !va.status.as_ref().is_some_and(|s| {
                        s.conditions
                            .iter()
                            .any(|c| c.reason == "InvalidSpec" && c.message == message)
                    });
                    let note = message.clone();
                    self.publish_refusal(newly, &va.object_ref(&()), "InvalidSpec", note)
                        .await;
                    self.not_optimized(
                        std::iter::once(&**va),
                        Reason::InvalidSpec,
                        &message,
                        &mut report,
                    )
                    .await;
                    continue;
                }
            };
            if !hpas_by_ns.contains_key(&ns) {
                let hpas = match self.cache.hpas(&ns) {
                    Some(cached) => cached,
                    None => {
                        let hpa_api: Api<HorizontalPodAutoscaler> =
                            Api::namespaced(self.client.clone(), &ns);
                        hpa_api
                            .list(&ListParams::default())
                            .await
                            .map_err(kube_err(format!("listing HPAs in {ns}")))?
                            .items
                            .iter()
                            .map(|h| Arc::new(CachedHpa::from_hpa(h)))
                            .collect()
                    }
                };
                hpas_by_ns.insert(ns.clone(), hpas);
            }
            let hpas = hpas_by_ns.get(&ns).map(Vec::as_slice).unwrap_or(&[]);
            let mut workloads = Vec::with_capacity(va.spec.variants.len());
            let mut unreadable = None;
            for (vi, v) in va.spec.variants.iter().enumerate() {
                // A workload that cannot be read (e.g. a target without a /scale
                // subresource) stops this VA only: it is reported, the others are planned.
                let mut workload = match self
                    .read_workload(
                        &ns,
                        &v.scale_target_ref,
                        va.spec.actuation,
                        hpas,
                        &mut pod_index,
                    )
                    .await
                {
                    Ok(w) => w,
                    Err(e) => {
                        unreadable = Some(format!(
                            "spec.variants[{vi}].scaleTargetRef: {e}; this model is not planned until its workload can be read (the others are)"
                        ));
                        break;
                    }
                };
                if let Some(owner) = owners.get(&target_key(&ns, &v.scale_target_ref)) {
                    if (
                        owner.namespace.as_str(),
                        owner.name.as_str(),
                        owner.variant_index,
                    ) != (ns.as_str(), name.as_str(), vi)
                    {
                        workload.state.frozen = Some(Frozen::TargetConflict(format!(
                            "{} {ns}/{} is also the target of VariantAutoscaling {}/{} (variant {}), which owns it (the older one); wvo plans around this variant and does not actuate it: point it at its own workload or remove it",
                            v.scale_target_ref.kind,
                            v.scale_target_ref.name,
                            owner.namespace,
                            owner.name,
                            owner.variant
                        )));
                    }
                }
                workloads.push(workload);
            }
            if let Some(message) = unreadable {
                report.errors.push(format!("{ns}/{name}: {message}"));
                if let Some(m) = &self.metrics {
                    m.count_error("workload");
                }
                self.not_optimized(
                    std::iter::once(&**va),
                    Reason::WorkloadUnreadable,
                    &message,
                    &mut report,
                )
                .await;
                continue;
            }
            accepted.push((va.clone(), spec, workloads));
        }

        let keys: Vec<ModelKey> = accepted
            .iter()
            .map(|(va, _, _)| (va.namespace().unwrap_or_default(), va.spec.model_id.clone()))
            .collect();
        let pods: Vec<VariantPod> = accepted
            .iter()
            .zip(&keys)
            .flat_map(|((va, _, workloads), (ns, model))| {
                va.spec
                    .variants
                    .iter()
                    .zip(workloads)
                    .flat_map(move |(v, w)| {
                        w.ready_pods.iter().map(move |pod| VariantPod {
                            namespace: ns.clone(),
                            model: model.clone(),
                            variant: v.name.clone(),
                            pod: pod.clone(),
                        })
                    })
            })
            .collect();
        let observed = self.loads.observe(&keys, &pods).await;
        let loads = observed.loads;
        let signals = observed.signals;
        // The VAs' wake queries (`spec.scaleToZero.wakeQuery`), per model.
        let wake_queries: Vec<(ModelKey, String)> = accepted
            .iter()
            .zip(&keys)
            .filter_map(|((va, _, _), key)| {
                let query = va.spec.scale_to_zero.as_ref()?.wake_query.clone()?;
                Some((key.clone(), query))
            })
            .collect();
        let wake_reads: BTreeMap<ModelKey, Result<f64, String>> = if wake_queries.is_empty() {
            BTreeMap::new()
        } else {
            match self.loads.wake_queries(&wake_queries) {
                Some(reads) => reads.await,
                None => wake_queries
                    .iter()
                    .map(|(k, _)| {
                        (
                            k.clone(),
                            Err(
                                "spec.scaleToZero.wakeQuery is PromQL: it needs --prometheus-url"
                                    .to_string(),
                            ),
                        )
                    })
                    .collect(),
            }
        };
        for (key, read) in &wake_reads {
            if let Err(e) = read {
                tracing::warn!(namespace = %key.0, model = %key.1, error = %e, "wake query failed; the model keeps one replica");
                if let Some(m) = &self.metrics {
                    m.count_error("wake");
                }
            }
        }
        // Calibrate each profile from its variant's figures; plan with what is in use.
        let mut live_variants = BTreeSet::new();
        for ((va, spec, workloads), (ns, model)) in accepted.iter_mut().zip(&keys) {
            let name = va.name_any();
            let saved = va
                .status
                .as_ref()
                .map(|s| s.profiles.clone())
                .unwrap_or_default();
            for (i, (vs, w)) in spec.variants.iter_mut().zip(workloads.iter()).enumerate() {
                let Some(Prior {
                    profile: prior,
                    source,
                }) = priors_by_va
                    .get(&(ns.clone(), name.clone()))
                    .and_then(|p| p.get(i).copied().flatten())
                else {
                    continue;
                };
                let key = (ns.clone(), name.clone(), vs.name.clone());
                let saved_state = saved
                    .iter()
                    .find(|p| p.name == vs.name)
                    .and_then(|p| p.calibration.as_deref());
                self.calibrator
                    .track(&key, prior, source.as_str(), saved_state);
                if let Some(f) =
                    observed
                        .variants
                        .get(&(ns.clone(), model.clone(), vs.name.clone()))
                {
                    let ms = |x: &wvo_collector::Figure| x.value().map(|v| v * 1000.0);
                    let evidence = VariantEvidence {
                        ready_replicas: w.state.ready,
                        youngest_ready_age_s: w.youngest_ready_age_s,
                        running: f.running.value(),
                        waiting: f.waiting.value(),
                        itl_mean_ms: ms(&f.itl_mean_seconds),
                        ttft_mean_ms: ms(&f.ttft_mean_seconds),
                        avg_input_tokens: f.avg_input_tokens.value(),
                    };
                    self.calibrator.observe(&key, &evidence);
                }
                if let Some(p) = self.calibrator.profile_in_use(&key) {
                    vs.profile = Some(ProfileSpec::Inline(p));
                }
                live_variants.insert(key);
            }
        }
        self.calibrator.retain(&live_variants);

        // Start-up per variant, learned from its pods' ready times; per model, the VA's
        // setting or the slowest learned variant.
        let mut startup_variants = BTreeSet::new();
        let mut learned_startup: Vec<Vec<Option<f64>>> = Vec::with_capacity(accepted.len());
        let mut model_startup: Vec<Option<f64>> = Vec::with_capacity(accepted.len());
        for (va, _, workloads) in &accepted {
            let (ns, name) = (va.namespace().unwrap_or_default(), va.name_any());
            let mut learned = Vec::with_capacity(workloads.len());
            for (v, w) in va.spec.variants.iter().zip(workloads) {
                let key = (ns.clone(), name.clone(), v.name.clone());
                self.startup.observe(&key, &w.ready_times);
                learned.push(self.startup.estimate(&key));
                startup_variants.insert(key);
            }
            model_startup.push(crate::startup::model_startup_seconds(
                va.spec.startup_seconds,
                learned.iter().copied(),
            ));
            learned_startup.push(learned);
        }
        self.startup.retain(&startup_variants);

        let mut models = Vec::with_capacity(accepted.len());
        for ((((va, spec, workloads), key), startup), learned) in accepted
            .iter()
            .zip(&keys)
            .zip(&model_startup)
            .zip(&learned_startup)
        {
            let forecast = va.spec.forecast.unwrap_or_default();
            let needs_tokens = spec.variants.iter().any(|v| v.profile.is_some());
            let load = match loads
                .get(key)
                .cloned()
                .unwrap_or_else(|| Err("no observation".into()))
            {
                Ok(mut load) => {
                    let (last_in, last_out) =
                        self.last_tokens.get(key).copied().unwrap_or(DEFAULT_TOKENS);
                    let input = load.avg_input_tokens.unwrap_or(last_in);
                    let output = load.avg_output_tokens.unwrap_or(last_out).max(1.0);
                    self.last_tokens.insert(key.clone(), (input, output));
                    if needs_tokens {
                        load.avg_input_tokens = Some(input);
                        load.avg_output_tokens = Some(output);
                    }
                    Ok(load)
                }
                Err(e) => Err(e),
            };
            let model_signals = crate::loads::signals_for(&signals, key)
                .copied()
                .unwrap_or_default();
            models.push(ModelState {
                namespace: va.namespace().unwrap_or_default(),
                name: va.name_any(),
                spec: spec.clone(),
                variants: workloads
                    .iter()
                    .zip(learned.iter().chain(std::iter::repeat(&None)))
                    .map(|(w, learned)| VariantState {
                        startup_seconds: *learned,
                        ..w.state.clone()
                    })
                    .collect(),
                stabilization_seconds: f64::from(va.spec.scale_down_stabilization_seconds),
                load,
                demand: crate::cycle::DemandInputs {
                    waiting: model_signals.waiting,
                    kv_usage: model_signals.kv_usage,
                    running: model_signals.running,
                    startup_seconds: *startup,
                    forecast_off: !forecast.enabled,
                    forecast_period_seconds: forecast.period_seconds,
                    scale_to_zero_idle_seconds: va
                        .spec
                        .scale_to_zero
                        .as_ref()
                        .map(|z| f64::from(z.idle_seconds)),
                    wake: {
                        let gateway = model_signals.wake;
                        match wake_reads.get(key) {
                            // A configured query must be read: without it nothing says the
                            // model may sleep.
                            Some(Ok(requests)) => Some(gateway.unwrap_or(0.0) + requests.max(0.0)),
                            Some(Err(_)) => None,
                            None => gateway,
                        }
                    },
                },
            });
        }
        // The unknown-load path needs token means too when profiles are used.
        for (m, key) in models.iter_mut().zip(&keys) {
            if m.load.is_err() && m.spec.variants.iter().any(|v| v.profile.is_some()) {
                let (i, o) = self.last_tokens.get(key).copied().unwrap_or(DEFAULT_TOKENS);
                self.last_tokens.insert(key.clone(), (i, o));
            }
        }
        // A model this controller has no (or an older) rate history of continues from the
        // one in its status (fresh start, new leader).
        let capacity = wvo_demand::history_capacity(wvo_demand::DEFAULT_MAX_PERIOD_SECONDS);
        for (va, _, _) in &accepted {
            let (ns, name) = (va.namespace().unwrap_or_default(), va.name_any());
            let Some(saved) = va.status.as_ref().and_then(|s| s.demand_history.as_ref()) else {
                continue;
            };
            if !crate::persist::saved_is_newer(saved, self.state.demand_history(&ns, &name)) {
                continue;
            }
            if let Some(history) = crate::persist::history_from_status(saved, capacity) {
                tracing::info!(va = %format!("{ns}/{name}"), seconds = history.span_seconds(), "rate history restored from status");
                self.state.restore_demand_history(&ns, &name, history);
            }
        }
        // Then, once per model, what that history lacks from the load source's past
        // (Prometheus range queries); a failure leaves the history as it is.
        let vas: Vec<((String, String), ModelKey)> = accepted
            .iter()
            .zip(&keys)
            .map(|((va, _, _), key)| {
                (
                    (va.namespace().unwrap_or_default(), va.name_any()),
                    key.clone(),
                )
            })
            .collect();
        self.restore_past_rates(&vas, capacity).await;
        let snapshot = Snapshot {
            now_seconds: now_seconds(),
            inventory: inventory.clone(),
            models,
            options: self.config.options,
            scale_down_margin: self.config.scale_down_margin,
            demand: self.config.demand,
        };
        let solve_started = std::time::Instant::now();
        let outcome = match run_cycle(&snapshot, &mut self.state) {
            Ok(outcome) => outcome,
            Err(e) => {
                let message = format!("{e}; the previous plan stays in force");
                let vas = accepted.iter().map(|(va, _, _)| &**va);
                self.not_optimized(vas, Reason::PlanFailed, &message, &mut report)
                    .await;
                return Err(e.into());
            }
        };
        report.solve_seconds = solve_started.elapsed().as_secs_f64();

        // Act: every write of this cycle at once (a few at a time), each with its timeout and
        // retries; the results are reported per VA below.
        let mut actuated = self.actuate(&accepted, &outcome.models, &hpas_by_ns).await;
        if self.refused() {
            // Not leader any more: nothing of this cycle is reported as written.
            report.outcome = Some(outcome);
            return Ok(report);
        }

        // Then report, per VA.
        let time = now_rfc3339();
        let mut model_views = Vec::with_capacity(accepted.len());
        let mut records = Vec::new();
        let mut live = BTreeSet::new();
        for (mi, ((((va, spec, workloads), decision), learned), startup)) in accepted
            .iter()
            .zip(&outcome.models)
            .zip(&learned_startup)
            .zip(&model_startup)
            .enumerate()
        {
            let ns = decision.namespace.clone();
            live.insert((ns.clone(), decision.name.clone()));
            let mut actuation_errors = Vec::new();
            let mut changes = Vec::new();
            if let Some(m) = &self.metrics {
                m.set_wake(&ns, &decision.name, decision.wake);
            }
            for (vi, (d, w)) in decision.variants.iter().zip(workloads).enumerate() {
                if let Some(m) = &self.metrics {
                    m.set_replicas(
                        &ns,
                        &decision.name,
                        &d.name,
                        &d.accelerator,
                        d.desired,
                        d.current,
                    );
                }
                if d.desired == d.current {
                    continue;
                }
                let acted = acts(va, d);
                if acted {
                    // No result: nothing was written (hpa mode without an HPA), as before.
                    let result = actuated
                        .remove(&(mi, vi))
                        .map_or(Ok(()), |r| r.outcome.map(|_| ()));
                    match result {
                        Ok(()) => {
                            if let (ActuationMode::Scale, Some(v)) =
                                (va.spec.actuation, va.spec.variants.get(vi))
                            {
                                self.cache.wrote_replicas(
                                    &ns,
                                    &v.scale_target_ref.api_version,
                                    &v.scale_target_ref.kind,
                                    &w.name,
                                    d.desired,
                                );
                            }
                            report.actuations.push((
                                ns.clone(),
                                w.name.clone(),
                                d.current,
                                d.desired,
                            ))
                        }
                        Err(e) => {
                            actuation_errors.push(format!("{}: {e}", d.name));
                            if let Some(m) = &self.metrics {
                                m.count_error("actuate");
                            }
                            continue;
                        }
                    }
                }
                let how = if va.spec.dry_run {
                    " (dry run: not applied)"
                } else if va.spec.actuation == ActuationMode::Metric {
                    " (exported as wvo_desired_replicas)"
                } else if va.spec.actuation == ActuationMode::Keda {
                    " (served to KEDA)"
                } else if !d.may_actuate {
                    " (not applied)"
                } else {
                    ""
                };
                let reason = format!("{} {}: {}{how}", d.name, d.accelerator, d.reason);
                changes.push(Decision {
                    time: time.clone(),
                    reason: reason.clone(),
                });
                records.push(DecisionRecord {
                    time: time.clone(),
                    namespace: ns.clone(),
                    name: decision.name.clone(),
                    variant: d.name.clone(),
                    from: d.current,
                    to: d.desired,
                    reason: d.reason.clone(),
                    actuated: acted,
                });
                let event_reason = if d.desired > d.current {
                    "ScaledUp"
                } else {
                    "ScaledDown"
                };
                let note = format!(
                    "{} {} -> {}: {}{how}",
                    d.name, d.current, d.desired, d.reason
                );
                self.publish(&va.object_ref(&()), false, event_reason, note)
                    .await;
            }
            for d in &decision.variants {
                if !d.may_actuate && d.desired != d.planned {
                    // Reported once per change of message by the condition below.
                    tracing::info!(va = %decision.name, variant = %d.name, reason = %d.reason, "not actuated");
                }
            }
            let (profiles, persisted) = profile_statuses(&self.calibrator, va, spec, decision);
            let conditions = model_conditions(&ModelConditions {
                va,
                spec,
                decision,
                outcome: &outcome,
                inventory_refusal: inventory_refusal.as_deref(),
                actuation_errors: &actuation_errors,
                profiles: &profiles,
                gateway_queue_metrics: wvo_collector::names::GATEWAY_QUEUE,
            });
            // The Event of a workload wvo does not touch, when the Actuated condition reports
            // it (dry-run and actuation errors take precedence there).
            let frozen = decision.variants.iter().find_map(|d| d.frozen.as_ref());
            if let Some(refused) = frozen.and_then(|f| {
                conditions
                    .iter()
                    .find(|c| c.type_ == ConditionType::Actuated && c.reason == Reason::from(f))
            }) {
                let already = va
                    .status
                    .as_ref()
                    .is_some_and(|s| s.conditions.iter().any(|c| c.message == refused.message));
                self.publish_refusal(
                    !already,
                    &va.object_ref(&()),
                    refused.reason.as_str(),
                    refused.message.clone(),
                )
                .await;
            }
            report.errors.extend(actuation_errors);
            // As the cycle takes it, to 0.1 s.
            let startup_seconds = self
                .config
                .demand
                .map(|opts| (opts.startup_seconds(*startup) * 10.0).round() / 10.0);
            let history = self
                .state
                .demand_history(&ns, &decision.name)
                .filter(|h| {
                    crate::persist::history_due(
                        va.status.as_ref().and_then(|s| s.demand_history.as_ref()),
                        h,
                    )
                })
                .and_then(crate::persist::history_to_status);
            let fresh = Fresh {
                decision,
                profiles,
                learned_startup: learned.clone(),
                startup_seconds,
                history,
            };
            let written = self
                .write_status(
                    &vas_api(&self.client, va),
                    va,
                    Some(&fresh),
                    &conditions,
                    &changes,
                    &mut report,
                )
                .await;
            if written {
                for key in &persisted {
                    self.calibrator.mark_persisted(key);
                }
            }
            model_views.push(ModelView {
                namespace: ns,
                name: decision.name.clone(),
                model_id: va.spec.model_id.clone(),
                priority: spec.priority,
                arrival_rate: Some(decision.load_used.arrival_rate),
                demand_rps: decision.demand_rps,
                satisfaction: decision.satisfaction,
                metrics_unknown: decision.metrics_unknown.clone(),
                variants: decision.variants.clone(),
                conditions: conditions.clone(),
                latency: crate::loads::signals_for(
                    &signals,
                    &(va.namespace().unwrap_or_default(), va.spec.model_id.clone()),
                )
                .and_then(|s| LatencyView::new(&s.latency, spec.slo.as_ref())),
                actuation: va.spec.actuation,
                dry_run: va.spec.dry_run,
            });
        }
        if let Some(m) = &self.metrics {
            for gone in self.known_vas.difference(&live) {
                m.remove_va(&gone.0, &gone.1);
            }
        }
        self.known_vas = live;

        // Publish the view.
        let mut used: BTreeMap<&str, u64> = BTreeMap::new();
        for (m, (_, spec, _)) in outcome.models.iter().zip(&accepted) {
            for (d, v) in m.variants.iter().zip(&spec.variants) {
                *used.entry(d.accelerator.as_str()).or_default() +=
                    u64::from(d.desired) * u64::from(v.gpus_per_replica);
            }
        }
        let accelerators: Vec<AcceleratorView> = inventory
            .iter()
            .map(|a| AcceleratorView {
                name: a.name.clone(),
                available: a.count,
                used: u32::try_from(used.get(a.name.as_str()).copied().unwrap_or(0))
                    .unwrap_or(u32::MAX),
                cost_per_hour: a.cost_per_hour,
            })
            .collect();
        let last_input = PlanInput {
            inventory: inventory.clone(),
            models: accepted
                .iter()
                .map(|(va, spec, _)| {
                    let mut s = spec.clone();
                    s.name = format!("{}/{}", va.namespace().unwrap_or_default(), va.name_any());
                    s
                })
                .collect(),
            load: outcome
                .models
                .iter()
                .map(|m| {
                    (
                        format!("{}/{}", m.namespace, m.name),
                        with_tokens(m.load_used),
                    )
                })
                .collect(),
            current: outcome
                .models
                .iter()
                .map(|m| {
                    (
                        format!("{}/{}", m.namespace, m.name),
                        m.variants
                            .iter()
                            .map(|v| (v.name.clone(), v.current))
                            .collect(),
                    )
                })
                .collect(),
            options: self.config.options,
        };
        if let Some(m) = &self.metrics {
            m.set_models(&model_views, &accelerators, now_seconds());
        }
        if let Ok(mut view) = self.view.write() {
            view.plan = Some(outcome.plan.clone());
            view.last_input = Some(last_input);
            view.models = model_views;
            view.accelerators = accelerators;
            for r in records {
                view.decisions.push_back(r);
            }
            while view.decisions.len() > DECISION_HISTORY {
                view.decisions.pop_front();
            }
            let view = &mut *view;
            view.history.record(now_seconds(), &view.models);
        }
        report.outcome = Some(outcome);
        Ok(report)
    }

    /// Marks `vas` `Optimized=False` with `reason` and `message` (nothing else changes).
    async fn not_optimized<'v>(
        &self,
        vas: impl Iterator<Item = &'v VariantAutoscaling>,
        reason: Reason,
        message: &str,
        report: &mut CycleReport,
    ) {
        let conditions = [Condition::not_optimized(reason, message)];
        for va in vas {
            let api = vas_api(&self.client, va);
            self.write_status(&api, va, None, &conditions, &[], report)
                .await;
        }
    }

    /// Reports a VA the types cannot decode: `Optimized=False, InvalidSpec` with the field (a
    /// merge patch of its status conditions through the untyped API), an Event when the
    /// message is new, and the refusal in the report. The other VAs are planned as usual.
    async fn refuse_undecodable(
        &self,
        resource: &ApiResource,
        object: &DynamicObject,
        message: &str,
        report: &mut CycleReport,
    ) {
        let ns = object.namespace().unwrap_or_default();
        let name = object.name_any();
        report
            .refused
            .push((format!("{ns}/{name}"), message.to_string()));
        let previous = object
            .data
            .pointer("/status/conditions")
            .and_then(|c| c.as_array())
            .is_some_and(|cs| {
                cs.iter().any(|c| {
                    c.get("reason").and_then(|r| r.as_str()) == Some("InvalidSpec")
                        && c.get("message").and_then(|m| m.as_str()) == Some(message)
                })
            });
        let reference = ObjectReference {
            api_version: Some(resource.api_version.clone()),
            kind: Some(resource.kind.clone()),
            name: Some(name.clone()),
            namespace: Some(ns.clone()),
            uid: object.metadata.uid.clone(),
            ..ObjectReference::default()
        };
        self.publish_refusal(!previous, &reference, "InvalidSpec", message.to_string())
            .await;
        // Already said for this generation: nothing to write (one patch per change, not per
        // cycle).
        let observed = object
            .data
            .pointer("/status/observedGeneration")
            .and_then(|g| g.as_i64());
        if previous && observed == object.metadata.generation {
            return;
        }
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), &ns, resource);
        let patch = json!({"status": {"observedGeneration": object.metadata.generation,
        "conditions": [{
            "type": "Optimized", "status": "False", "reason": "InvalidSpec",
            "message": message, "lastTransitionTime": now_rfc3339(),
            "observedGeneration": object.metadata.generation,
        }]}});
        let params = PatchParams::default();
        let Some(written) = self
            .guarded(api.patch_status(&name, &params, &Patch::Merge(&patch)))
            .await
        else {
            return;
        };
        if let Err(e) = written {
            report
                .errors
                .push(format!("writing the status of {ns}/{name}: {e}"));
        }
    }

    /// Writes a VA's status by server-side apply when it changed ([`va_status`]: transition
    /// times of unchanged conditions kept, `changes` appended to the decision history).
    async fn write_status(
        &self,
        api: &Api<VariantAutoscaling>,
        va: &VariantAutoscaling,
        decision: Option<&Fresh<'_>>,
        conditions: &[Condition],
        changes: &[Decision],
        report: &mut CycleReport,
    ) -> bool {
        let previous = va.status.clone().unwrap_or_default();
        let Some(status) = va_status(
            &previous,
            decision,
            conditions,
            changes,
            va.metadata.generation,
            &now_rfc3339(),
        ) else {
            return true;
        };
        let body = json!({
            "apiVersion": "wvo.dev/v1alpha1",
            "kind": "VariantAutoscaling",
            "status": status,
        });
        let params = PatchParams::apply(&self.config.field_manager).force();
        let name = va.name_any();
        let Some(written) = self
            .guarded(api.patch_status(&name, &params, &Patch::Apply(&body)))
            .await
        else {
            return false;
        };
        if let Err(e) = written {
            report
                .errors
                .push(format!("status of {}: {e}", va.name_any()));
            if let Some(m) = &self.metrics {
                m.count_error("status");
            }
            return false;
        }
        self.cache.wrote_status(va, status);
        true
    }
}

/// A workload as VAs name it: (namespace, kind, name).
type TargetKey = (String, String, String);

fn target_key(namespace: &str, target: &wvo_api::crd::ScaleTargetRef) -> TargetKey {
    (
        namespace.to_string(),
        target.kind.clone(),
        target.name.clone(),
    )
}

/// The VA variant that owns a workload. Fields in ownership order: the oldest VA (creation
/// time), then namespace and name, then its first variant naming the workload.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Owner {
    created: String,
    namespace: String,
    name: String,
    variant_index: usize,
    variant: String,
}

/// The owner of each workload the VAs target.
fn target_owners(vas: &[Arc<VariantAutoscaling>]) -> BTreeMap<TargetKey, Owner> {
    let mut owners: BTreeMap<TargetKey, Owner> = BTreeMap::new();
    for va in vas {
        let ns = va.namespace().unwrap_or_default();
        let created = va
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string())
            .unwrap_or_default();
        for (vi, v) in va.spec.variants.iter().enumerate() {
            let candidate = Owner {
                created: created.clone(),
                namespace: ns.clone(),
                name: va.name_any(),
                variant_index: vi,
                variant: v.name.clone(),
            };
            owners
                .entry(target_key(&ns, &v.scale_target_ref))
                .and_modify(|o| {
                    if candidate < *o {
                        *o = candidate.clone();
                    }
                })
                .or_insert(candidate);
        }
    }
    owners
}

/// Decodes one listed VariantAutoscaling; the error names the object and the field the types
/// could not read, and says what to fix.
pub fn decode_va(object: &DynamicObject) -> Result<VariantAutoscaling, String> {
    let value = serde_json::to_value(object).map_err(|e| {
        format!(
            "VariantAutoscaling {}/{}: {e}",
            object.namespace().unwrap_or_default(),
            object.name_any()
        )
    })?;
    serde_path_to_error::deserialize::<_, VariantAutoscaling>(value).map_err(|e| {
        let path = e.path().to_string();
        format!(
            "VariantAutoscaling {}/{}: {}: {}; fix the field (its workloads are left as they are; the other models are planned)",
            object.namespace().unwrap_or_default(),
            object.name_any(),
            if path == "." { "the object" } else { path.as_str() },
            e.inner()
        )
    })
}

fn vas_api(client: &Client, va: &VariantAutoscaling) -> Api<VariantAutoscaling> {
    Api::namespaced(client.clone(), &va.namespace().unwrap_or_default())
}

fn with_tokens(load: ModelLoad) -> ModelLoad {
    ModelLoad {
        avg_input_tokens: load.avg_input_tokens.or(Some(DEFAULT_TOKENS.0)),
        avg_output_tokens: load.avg_output_tokens.or(Some(DEFAULT_TOKENS.1)),
        ..load
    }
}

/// The bounds wvo sets on an HPA; moved to `wvo-actuator`, re-exported under its old path.
pub use wvo_actuator::hpa_bounds;

impl Reconciler {
    /// Writes every decision of `models` (in the order of `accepted`) that [`acts`], through
    /// the actuator: all of them at once, a few at a time. Returns the results by (model
    /// index, variant index); a variant without an action (hpa mode with no HPA targeting
    /// its workload) has none.
    async fn actuate(
        &self,
        accepted: &[(Arc<VariantAutoscaling>, wvo_api::ModelSpec, Vec<Workload>)],
        models: &[crate::cycle::ModelDecision],
        hpas_by_ns: &BTreeMap<String, Vec<Arc<CachedHpa>>>,
    ) -> BTreeMap<(usize, usize), ActionResult> {
        let mut keys = Vec::new();
        let mut actions = Vec::new();
        for (mi, ((va, _, _), decision)) in accepted.iter().zip(models).enumerate() {
            let ns = decision.namespace.as_str();
            let hpas = hpas_by_ns.get(ns).map(Vec::as_slice).unwrap_or(&[]);
            for (vi, (d, v)) in decision.variants.iter().zip(&va.spec.variants).enumerate() {
                if d.desired == d.current || !acts(va, d) {
                    continue;
                }
                if let Some(action) = action_for(ns, va, v, d, hpas, self.config.hpa_scale_to_zero)
                {
                    keys.push((mi, vi));
                    actions.push(action);
                }
            }
        }
        if actions.is_empty() || self.may_write().is_none() {
            return BTreeMap::new();
        }
        // Checked again before each call and retry: a lease lost mid-apply stops it.
        let may_write = || self.may_write();
        let results = self.actuator.apply_checked(&actions, &may_write).await;
        keys.into_iter().zip(results).collect()
    }
}

/// Whether a decision is written to its workload: wvo may touch the workload, and the VA is
/// neither a dry run nor in `metric` or `keda` mode (another autoscaler writes it).
fn acts(va: &VariantAutoscaling, d: &crate::cycle::VariantDecision) -> bool {
    d.may_actuate
        && !va.spec.dry_run
        && !matches!(
            va.spec.actuation,
            ActuationMode::Metric | ActuationMode::Keda
        )
}

/// The write that carries decision `d` of variant `v` (namespace `ns`): its `/scale` (mode
/// `scale`), or the bounds of the HPA that targets its workload (mode `hpa`; None when no
/// HPA in `hpas` does).
fn action_for(
    ns: &str,
    va: &VariantAutoscaling,
    v: &wvo_api::crd::VariantAutoscalingVariant,
    d: &crate::cycle::VariantDecision,
    hpas: &[Arc<CachedHpa>],
    hpa_scale_to_zero: bool,
) -> Option<Action> {
    let target = &v.scale_target_ref;
    let how = match va.spec.actuation {
        ActuationMode::Scale => Actuation::Scale,
        ActuationMode::Hpa => {
            let hpa = hpas
                .iter()
                .find(|h| h.target_kind == target.kind && h.target_name == target.name)?;
            let (min, max) = hpa_bounds(d.desired, v.max_replicas, hpa_scale_to_zero);
            Actuation::HpaBounds {
                hpa: hpa.name.clone(),
                min,
                max,
            }
        }
        ActuationMode::Metric | ActuationMode::Keda => return None,
    };
    Some(Action {
        namespace: ns.to_string(),
        workload: WorkloadRef::new(&target.api_version, &target.kind, &target.name),
        desired: d.desired,
        how,
    })
}

/// A short digest of an Event's note (32-bit FNV-1a): stable across runs and releases, which
/// the standard hasher does not promise; only told apart within one Recorder's cache.
fn note_digest(note: &str) -> u32 {
    note.bytes().fold(0x811c_9dc5, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_that_differ_get_distinct_refusal_digests() {
        // FNV-1a reference values.
        assert_eq!(note_digest(""), 0x811c_9dc5);
        assert_eq!(note_digest("a"), 0xe40c_292c);
        assert_ne!(
            note_digest("inventory refused: accelerators[0].count: must be >= 0"),
            note_digest("inventory refused: accelerators[0].costPerHour: must be >= 0")
        );
    }

    fn pod(created: Option<&str>, restarts: i32) -> CachedPod {
        CachedPod::from_pod(
            &serde_json::from_value(json!({
                "metadata": {"name": "p", "creationTimestamp": created},
                "status": {"containerStatuses": [{
                    "name": "vllm", "image": "vllm", "imageID": "", "ready": true,
                    "restartCount": restarts
                }]}
            }))
            .expect("pod"),
        )
    }

    #[test]
    fn a_pod_is_a_start_up_sample_only_with_a_creation_time_and_no_restart() {
        assert_eq!(
            startup_sample_created(&pod(Some("2026-01-01T00:00:10Z"), 0)),
            Some(1_767_225_610.0)
        );
        assert_eq!(
            startup_sample_created(&pod(Some("2026-01-01T00:00:10Z"), 1)),
            None
        );
        assert_eq!(startup_sample_created(&pod(None, 0)), None);
    }
}
