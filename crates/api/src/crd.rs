//! The Kubernetes custom resource `VariantAutoscaling` (group `wvo.dev`, version `v1alpha1`)
//! and the accelerator inventory ConfigMap format. Enabled by the `crd` feature.

use crate::plan::{self, ModelSpec, VariantSpec};
use crate::validate::{
    MAX_BATCH_SIZE, MAX_GPUS_PER_REPLICA, MAX_PRIORITY, MAX_PROFILE_MS, MAX_REPLICAS,
    MAX_REQUESTS_PER_SECOND, MAX_SLO_MS, MAX_SLO_PERCENTILE, MAX_WEIGHT, MIN_PRIORITY,
    MIN_REQUESTS_PER_SECOND, MIN_SLO_PERCENTILE, MIN_WEIGHT,
};
use kube_derive::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

// Bounds of the CRD schema (`crds/variantautoscaling.yaml`). The apiserver refuses a value
// outside them, so every admitted value fits the Rust type, and every list and string has a
// size the CEL cost estimate can rely on. The numeric ones shared with the plan input's
// validation (replicas, weights, SLOs, rates, profile numbers, priority) are the constants of
// `crate::validate`; the rest are here. See docs/crd.md.

/// Most variants in one VA (`spec.variants`, and the per-variant lists of the status).
pub const MAX_VARIANTS: u32 = 32;
/// Longest name of a Kubernetes object or of a DNS label-like name (variant, accelerator
/// type, service class, kind), characters.
pub const MAX_LABEL_LENGTH: u32 = 63;
/// Longest DNS subdomain (a workload's `metadata.name`), characters.
pub const MAX_SUBDOMAIN_LENGTH: u32 = 253;
/// Longest `apiVersion` (`<DNS subdomain>/<version>`), characters.
pub const MAX_API_VERSION_LENGTH: u32 = 317;
/// Longest `spec.modelID` and `profile.catalog` (a Hugging Face id is at most 96 + 1 + 96),
/// characters.
pub const MAX_MODEL_ID_LENGTH: u32 = 256;
/// Longest `profile.dtype`, characters.
pub const MAX_DTYPE_LENGTH: u32 = 16;
/// Longest `spec.scaleToZero.wakeQuery` (PromQL), characters.
pub const MAX_QUERY_LENGTH: u32 = 4096;
/// Longest `spec.scaleDownStabilizationSeconds`, s (one hour, as the HPA's
/// `stabilizationWindowSeconds`).
pub const MAX_STABILIZATION_SECONDS: u32 = 3600;
/// Highest count a status reports (replicas of a variant or a model, as a workload's int32
/// `replicas`; a profile's batch size).
pub const MAX_STATUS_COUNT: u32 = i32::MAX as u32;
/// Highest 64-bit count or generation a status reports: 2^53 - 1, the largest integer a
/// JSON number (an IEEE double) keeps exactly.
pub const MAX_STATUS_INT64: i64 = (1 << 53) - 1;
/// Longest condition message in a status, characters (as `metav1.Condition`); longer
/// messages are cut when the status is built.
pub const MAX_CONDITION_MESSAGE_LENGTH: u32 = 32_768;
/// Longest condition reason and type in a status, characters (as `metav1.Condition`).
pub const MAX_CONDITION_REASON_LENGTH: u32 = 1024;
/// Longest RFC 3339 time in a status, characters.
pub const MAX_TIME_LENGTH: u32 = 64;
/// Longest decision reason in a status, characters; longer ones are cut when the status is
/// built.
pub const MAX_DECISION_REASON_LENGTH: u32 = 4096;
/// Longest short note in a status (`forecast`, `contradiction`, a profile's `source`, a
/// condition's `status`), characters; longer ones are cut when the status is built.
pub const MAX_STATUS_NOTE_LENGTH: u32 = 4096;
/// Longest opaque calibration state in `status.profiles[].calibration` (a fixed-size JSON of
/// about 1.5 kB), characters.
pub const MAX_CALIBRATION_LENGTH: u32 = 16_384;
/// Most conditions in a status.
pub const MAX_CONDITIONS: u32 = 16;
/// Decisions kept in `status.decisions`, the newest last.
pub const MAX_STATUS_DECISIONS: u32 = 10;
/// Most buckets of `status.demandHistory` (two days of 60 s buckets).
pub const MAX_HISTORY_BUCKETS: u32 = 2_880;

/// `text` cut to at most `max` characters (a status string's `maxLength` counts characters),
/// ending with `…` when cut; unchanged when it fits.
pub fn clip_chars(text: &str, max: u32) -> String {
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    if max > 0 {
        cut.push('…');
    }
    cut
}

/// Latency targets, ms.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SloTargets {
    /// Target time to first token, ms (queueing included): the mean, or the value
    /// `percentile` percent of requests stay within. More than 0, at most 1e7.
    #[schemars(range(min = 0.0, max = MAX_SLO_MS), extend("exclusiveMinimum" = true))]
    pub ttft_ms: f64,
    /// Target inter-token latency, ms: the mean, or the value `percentile` percent of
    /// requests stay within. More than 0, at most 1e7.
    #[schemars(range(min = 0.0, max = MAX_SLO_MS), extend("exclusiveMinimum" = true))]
    pub itl_ms: f64,
    /// Share of requests, percent (more than 50, at most 99.9), that must meet both targets.
    /// Absent: the targets are means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        range(min = MIN_SLO_PERCENTILE, max = MAX_SLO_PERCENTILE),
        extend("exclusiveMinimum" = true)
    )]
    pub percentile: Option<f64>,
}

/// Profile of one replica: either numbers (`alpha`, `beta`, `gamma`, `delta`,
/// `maxBatchSize`; ms, see `wvo_api::Profile`) or a catalog reference (`catalog`, optional
/// `tp` and `dtype`) that wvo estimates for the variant's accelerator. Either way the
/// controller then calibrates it online and keeps the result in `status.profiles`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[x_kube(crates(kube_core = "::kube_core"))]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube_core::Rule::new("has(self.catalog) ? !(has(self.alpha) || has(self.beta) || has(self.gamma) || has(self.delta) || has(self.maxBatchSize)) : (has(self.alpha) && has(self.beta) && has(self.gamma) && has(self.delta) && has(self.maxBatchSize))").message("give either catalog (with optional tp, dtype) or all of alpha, beta, gamma, delta, maxBatchSize"))]
#[x_kube(validation = kube_core::Rule::new("has(self.catalog) || !(has(self.tp) || has(self.dtype))").message("tp and dtype only go with catalog"))]
pub struct InlineProfile {
    /// Decode base time per token, ms (more than 0, at most 1e6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = MAX_PROFILE_MS), extend("exclusiveMinimum" = true))]
    pub alpha: Option<f64>,
    /// Decode time added per request in the batch, ms (0..=1e6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = MAX_PROFILE_MS))]
    pub beta: Option<f64>,
    /// Prefill base time, ms (0..=1e6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = MAX_PROFILE_MS))]
    pub gamma: Option<f64>,
    /// Prefill time per input token per request in the batch, ms (0..=1e6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = MAX_PROFILE_MS))]
    pub delta: Option<f64>,
    /// Most requests one replica runs at once (1..=65536).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_BATCH_SIZE), extend("format" = "int32"))]
    pub max_batch_size: Option<u32>,
    /// Catalog model name or Hugging Face id (`wvo profile --list`), e.g. `llama-3.1-8b`;
    /// at most 256 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_MODEL_ID_LENGTH))]
    pub catalog: Option<String>,
    /// Tensor-parallel degree for a catalog profile (default: `gpusPerReplica`; 1..=1024).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_GPUS_PER_REPLICA), extend("format" = "int32"))]
    pub tp: Option<u32>,
    /// Weight dtype for a catalog profile: `bf16`, `fp16` or `fp8` (default: the model's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_DTYPE_LENGTH))]
    pub dtype: Option<String>,
}

impl InlineProfile {
    /// Numbers for a profile given inline.
    pub fn numbers(alpha: f64, beta: f64, gamma: f64, delta: f64, max_batch_size: u32) -> Self {
        Self {
            alpha: Some(alpha),
            beta: Some(beta),
            gamma: Some(gamma),
            delta: Some(delta),
            max_batch_size: Some(max_batch_size),
            catalog: None,
            tp: None,
            dtype: None,
        }
    }

    /// A catalog reference.
    pub fn catalog(model: &str, tp: Option<u32>) -> Self {
        Self {
            alpha: None,
            beta: None,
            gamma: None,
            delta: None,
            max_batch_size: None,
            catalog: Some(model.to_string()),
            tp,
            dtype: None,
        }
    }

    /// The plan form, or what is missing (`field` is the path of this profile).
    pub fn to_plan(&self, field: &str) -> Result<plan::ProfileSpec, crate::InputError> {
        if let Some(catalog) = &self.catalog {
            return Ok(plan::ProfileSpec::Catalog(plan::CatalogProfile {
                catalog: catalog.clone(),
                tp: self.tp,
                dtype: self.dtype.clone(),
            }));
        }
        match (
            self.alpha,
            self.beta,
            self.gamma,
            self.delta,
            self.max_batch_size,
        ) {
            (Some(alpha), Some(beta), Some(gamma), Some(delta), Some(max_batch_size)) => {
                Ok(plan::ProfileSpec::Inline(plan::Profile {
                    alpha,
                    beta,
                    gamma,
                    delta,
                    max_batch_size,
                }))
            }
            _ => Err(crate::InputError::new(
                field,
                "give either catalog or all of alpha, beta, gamma, delta, maxBatchSize",
            )),
        }
    }
}

/// The workload a variant scales: any kind with a `/scale` subresource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleTargetRef {
    /// API version of the target, e.g. `apps/v1`.
    #[serde(default = "default_api_version")]
    #[schemars(length(min = 1, max = MAX_API_VERSION_LENGTH))]
    pub api_version: String,
    /// Kind of the target, e.g. `Deployment`.
    #[serde(default = "default_kind")]
    #[schemars(length(min = 1, max = MAX_LABEL_LENGTH))]
    pub kind: String,
    /// Name of the target, in the VA's namespace (a DNS subdomain, at most 253 characters).
    #[schemars(length(min = 1, max = MAX_SUBDOMAIN_LENGTH))]
    pub name: String,
}

fn default_api_version() -> String {
    "apps/v1".into()
}
fn default_kind() -> String {
    "Deployment".into()
}

/// One way to serve the model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[x_kube(crates(kube_core = "::kube_core"))]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube_core::Rule::new("!has(self.maxReplicas) || self.minReplicas <= self.maxReplicas").message("minReplicas must be <= maxReplicas"))]
#[x_kube(validation = kube_core::Rule::new("has(self.maxRequestsPerSecond) != has(self.profile)").message("give exactly one of maxRequestsPerSecond or profile"))]
pub struct VariantAutoscalingVariant {
    /// Variant name, unique in the VA (the list's map key), 1 to 63 characters.
    #[schemars(length(min = 1, max = MAX_LABEL_LENGTH))]
    pub name: String,
    /// The workload this variant scales.
    pub scale_target_ref: ScaleTargetRef,
    /// Accelerator type name (as in the inventory), 1 to 63 characters.
    #[schemars(length(min = 1, max = MAX_LABEL_LENGTH))]
    pub accelerator: String,
    /// GPUs one replica uses (1..=1024).
    #[serde(default = "default_gpus")]
    #[schemars(range(min = 1, max = MAX_GPUS_PER_REPLICA), extend("format" = "int32"))]
    pub gpus_per_replica: u32,
    /// Minimum replicas of this variant (0..=1000000).
    #[serde(default)]
    #[schemars(range(min = 0, max = MAX_REPLICAS), extend("format" = "int32"))]
    pub min_replicas: u32,
    /// Maximum replicas of this variant (0..=1000000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = MAX_REPLICAS), extend("format" = "int32"))]
    pub max_replicas: Option<u32>,
    /// Measured capacity per replica at the SLO, req/s (1e-6..=1e9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = MIN_REQUESTS_PER_SECOND, max = MAX_REQUESTS_PER_SECOND))]
    pub max_requests_per_second: Option<f64>,
    /// Performance profile (with the model's SLO and observed token mix gives capacity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<InlineProfile>,
}

fn default_gpus() -> u32 {
    1
}
fn default_weight() -> f64 {
    1.0
}
fn default_stabilization() -> u32 {
    300
}

/// How wvo applies its decisions to a variant's workload.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ActuationMode {
    /// Patch the target's `/scale` subresource.
    #[default]
    Scale,
    /// Set min/max replicas of the HPA that targets the workload.
    Hpa,
    /// Export `wvo_desired_replicas` for an external autoscaler (KEDA, prometheus-adapter).
    Metric,
    /// KEDA drives the workload: wvo serves each variant's desired replicas to a KEDA
    /// ScaledObject through its external scaler (`wvo run --keda-listen`, docs/keda.md) and
    /// never writes the workload itself.
    Keda,
}

/// Spec of a VariantAutoscaling: one served model and its variants.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "wvo.dev",
    version = "v1alpha1",
    kind = "VariantAutoscaling",
    namespaced,
    shortname = "va",
    status = "VariantAutoscalingStatus",
    printcolumn = r#"{"name":"Model","type":"string","jsonPath":".spec.modelID"}"#,
    printcolumn = r#"{"name":"Replicas","type":"integer","jsonPath":".status.currentReplicas"}"#,
    printcolumn = r#"{"name":"Desired","type":"integer","jsonPath":".status.desiredReplicas"}"#,
    printcolumn = r#"{"name":"Cost/h","type":"number","jsonPath":".status.costPerHour"}"#,
    printcolumn = r#"{"name":"Optimized","type":"string","jsonPath":".status.conditions[?(@.type==\"Optimized\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Demand/s","type":"number","jsonPath":".status.demandRps","priority":1,"description":"Demand with headroom, requests/s"}"#,
    printcolumn = r#"{"name":"Actuation","type":"string","jsonPath":".spec.actuation","priority":1}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(crates(kube_core = "::kube_core"))]
#[x_kube(validation = kube_core::Rule::new("!has(self.maxReplicas) || self.minReplicas <= self.maxReplicas").message("minReplicas must be <= maxReplicas"))]
#[x_kube(validation = kube_core::Rule::new("has(self.slo) || has(self.serviceClass) || self.variants.all(v, has(v.maxRequestsPerSecond))").message("variants with a profile need slo or serviceClass"))]
pub struct VariantAutoscalingSpec {
    /// The served model id, e.g. `meta-llama/Llama-3.1-8B-Instruct`, 1 to 256 characters.
    #[serde(rename = "modelID")]
    #[schemars(length(min = 1, max = MAX_MODEL_ID_LENGTH))]
    pub model_id: String,
    /// Service class (from the inventory ConfigMap) giving priority and SLO, at most 63
    /// characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_LABEL_LENGTH))]
    pub service_class: Option<String>,
    /// Inline SLO; overrides the service class's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo: Option<SloTargets>,
    /// Priority tier, 0..=1000 (higher tiers are served first when GPUs are short);
    /// overrides the service class's. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = MIN_PRIORITY, max = MAX_PRIORITY), extend("format" = "int32"))]
    pub priority: Option<i32>,
    /// Fair-share weight inside the tier (1e-6..=1e6). Default 1.
    #[serde(default = "default_weight")]
    #[schemars(range(min = MIN_WEIGHT, max = MAX_WEIGHT))]
    pub weight: f64,
    /// Minimum replicas over all variants (0..=1000000).
    #[serde(default)]
    #[schemars(range(min = 0, max = MAX_REPLICAS), extend("format" = "int32"))]
    pub min_replicas: u32,
    /// Maximum replicas over all variants (0..=1000000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = MAX_REPLICAS), extend("format" = "int32"))]
    pub max_replicas: Option<u32>,
    /// The variants, 1 to 32, names unique (a list of type `map` keyed by `name`).
    #[schemars(
        length(min = 1, max = MAX_VARIANTS),
        extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"])
    )]
    pub variants: Vec<VariantAutoscalingVariant>,
    /// How decisions are applied.
    #[serde(default)]
    pub actuation: ActuationMode,
    /// Decide and report only; never touch the workloads.
    #[serde(default)]
    pub dry_run: bool,
    /// Scale-down stabilization window, s (0..=3600). Default 300.
    #[serde(default = "default_stabilization")]
    #[schemars(range(min = 0, max = MAX_STABILIZATION_SECONDS), extend("format" = "int32"))]
    pub scale_down_stabilization_seconds: u32,
    /// Seconds from the creation of a new replica's pod to its Ready condition (model
    /// download and load included), 0..=86400 s. The plan holds for the highest expected
    /// demand over the next start-up + cycle. Absent: learned per variant from the pods'
    /// ready times (the slowest variant of the model counts), else 120 s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = MAX_STARTUP_SECONDS))]
    pub startup_seconds: Option<f64>,
    /// Seasonal forecast of periodic load from the model's rate history. Absent: on, with
    /// the period found by autocorrelation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast: Option<ForecastSpec>,
    /// Lets the model go to zero replicas when idle. Absent (the default): the model keeps at
    /// least one replica whatever `minReplicas` says, because nothing would wake it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_to_zero: Option<ScaleToZeroSpec>,
}

/// Lowest accepted `spec.scaleToZero.idleSeconds`, s.
pub const MIN_IDLE_SECONDS: u32 = 10;
/// Highest accepted `spec.scaleToZero.idleSeconds`, s (one week).
pub const MAX_IDLE_SECONDS: u32 = 604_800;

/// When a model may go to zero replicas (`spec.scaleToZero`), and what wakes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleToZeroSpec {
    /// Seconds with no arrivals, no waiting request and no wake signal after which the
    /// model's replicas are removed, 10..=604800 s.
    #[schemars(range(min = MIN_IDLE_SECONDS, max = MAX_IDLE_SECONDS), extend("format" = "int32"))]
    pub idle_seconds: u32,
    /// PromQL whose value (summed over its series) is the number of requests waiting for
    /// this model at a gateway wvo does not know; above 0 wakes the model. Optional: the
    /// llm-d / Gateway API inference extension EPP's flow-control queue
    /// (`*_flow_control_queue_size`) is read for every model without it. Needs
    /// `--prometheus-url`. At most 4096 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_QUERY_LENGTH))]
    pub wake_query: Option<String>,
}

/// Highest accepted `spec.startupSeconds`, s (one day).
pub const MAX_STARTUP_SECONDS: f64 = 86_400.0;
/// Lowest accepted `spec.forecast.periodSeconds`, s.
pub const MIN_FORECAST_PERIOD_SECONDS: f64 = 60.0;
/// Highest accepted `spec.forecast.periodSeconds`, s (one day: the rate history holds two).
pub const MAX_FORECAST_PERIOD_SECONDS: f64 = 86_400.0;

/// The seasonal forecast of a model's load (`spec.forecast`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ForecastSpec {
    /// False turns the forecast off (the fast-rise level, backlog and KV guard still apply).
    /// Default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// The load's period, s (60..=86400), e.g. 86400 for a daily pattern. Absent: found by
    /// autocorrelation of the rate history (300 s to one day). The forecast is used only
    /// while it predicted the last period well, either way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = MIN_FORECAST_PERIOD_SECONDS, max = MAX_FORECAST_PERIOD_SECONDS))]
    pub period_seconds: Option<f64>,
}

impl Default for ForecastSpec {
    fn default() -> Self {
        ForecastSpec {
            enabled: true,
            period_seconds: None,
        }
    }
}

fn default_true() -> bool {
    true
}

/// A condition in `metav1.Condition` form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `MetricsAvailable`, `ProfileReady`, `Optimized`, `Actuated` or `CapacityConstrained`.
    #[serde(rename = "type")]
    #[schemars(length(max = MAX_CONDITION_REASON_LENGTH))]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    #[schemars(length(max = MAX_STATUS_NOTE_LENGTH))]
    pub status: String,
    /// CamelCase reason.
    #[schemars(length(max = MAX_CONDITION_REASON_LENGTH))]
    pub reason: String,
    /// Human-readable detail (at most 32768 characters; longer ones are cut).
    #[schemars(length(max = MAX_CONDITION_MESSAGE_LENGTH))]
    pub message: String,
    /// RFC 3339 time of the last status change.
    #[schemars(length(max = MAX_TIME_LENGTH))]
    pub last_transition_time: String,
    /// Generation of the spec this condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = MAX_STATUS_INT64), extend("format" = "int64"))]
    pub observed_generation: Option<i64>,
}

/// Observed offered load of the model: the plan's own [`crate::ModelLoad`] (one type for
/// the plan input and the status).
pub type ObservedLoad = crate::ModelLoad;

/// Status of one variant.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VariantStatus {
    /// Variant name.
    #[schemars(length(max = MAX_LABEL_LENGTH))]
    pub name: String,
    /// Accelerator type.
    #[schemars(length(max = MAX_LABEL_LENGTH))]
    pub accelerator: String,
    /// Replicas the workload is set to.
    #[schemars(range(min = 0, max = MAX_STATUS_COUNT), extend("format" = "int32"))]
    pub current_replicas: u32,
    /// Ready replicas.
    #[schemars(range(min = 0, max = MAX_STATUS_COUNT), extend("format" = "int32"))]
    pub ready_replicas: u32,
    /// Replicas Pending for lack of a GPU.
    #[schemars(range(min = 0, max = MAX_STATUS_COUNT), extend("format" = "int32"))]
    pub pending_replicas: u32,
    /// Replicas wvo wants.
    #[schemars(range(min = 0, max = MAX_STATUS_COUNT), extend("format" = "int32"))]
    pub desired_replicas: u32,
    /// Capacity of one replica, req/s.
    pub capacity_rps: f64,
    /// Cost of the desired replicas, $/h.
    pub cost_per_hour: f64,
    /// Start-up of a new replica learned from this variant's pods (creation to Ready), s;
    /// absent until a pod of the variant became Ready while wvo watched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learned_startup_seconds: Option<f64>,
}

/// The model's recent arrival-rate history (`status.demandHistory`), so a restarted
/// controller or a new leader keeps forecasting periodic load. Bucket `i` covers
/// `[startSeconds + i * bucketSeconds, startSeconds + (i + 1) * bucketSeconds)`; the newest
/// day at most, rates rounded to 0.01 req/s.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DemandHistoryStatus {
    /// Width of one bucket, s.
    pub bucket_seconds: f64,
    /// Start of the first bucket, UNIX seconds.
    pub start_seconds: f64,
    /// Highest arrival rate observed in each bucket, req/s, oldest first; -1 marks a bucket
    /// with no observation. At most 2880 buckets.
    #[schemars(length(max = MAX_HISTORY_BUCKETS))]
    pub max_rps: Vec<f64>,
    /// Mean arrival rate observed in each bucket, req/s, oldest first; -1 marks a bucket
    /// with no observation. At most 2880 buckets.
    #[schemars(length(max = MAX_HISTORY_BUCKETS))]
    pub mean_rps: Vec<f64>,
}

/// The profile wvo uses for one variant, and what it learned online.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VariantProfileStatus {
    /// Variant name.
    #[schemars(length(max = MAX_LABEL_LENGTH))]
    pub name: String,
    /// Where the prior came from: `inline` or `catalog`.
    #[schemars(length(max = MAX_STATUS_NOTE_LENGTH))]
    pub source: String,
    /// The profile planning uses now (the prior until calibration is confident), ms.
    pub in_use: ProfileNumbers,
    /// The prior: the inline numbers or the catalog estimate, ms.
    pub prior: ProfileNumbers,
    /// Confidence of the calibration, 0..1 (decode fit, prefill fit, minimum of both).
    pub confidence: ProfileConfidence,
    /// Samples the decode and prefill fits accepted so far.
    #[schemars(range(min = 0, max = MAX_STATUS_INT64), extend("format" = "int64"))]
    pub samples: u64,
    /// Samples ignored as warm-up of new replicas, outliers or invalid, since this leader
    /// started.
    #[serde(default)]
    #[schemars(range(min = 0, max = MAX_STATUS_INT64), extend("format" = "int64"))]
    pub rejected_samples: u64,
    /// Set when the data contradicts the prior (observed capacity far below the estimate),
    /// with the numbers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_STATUS_NOTE_LENGTH))]
    pub contradiction: Option<String>,
    /// The calibration state (JSON of `wvo_perf::calibrate::CalibratedProfile`), so a restart
    /// or a new leader continues from what was learned. Opaque.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_CALIBRATION_LENGTH))]
    pub calibration: Option<String>,
}

/// Profile numbers, ms (see `wvo_api::Profile`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProfileNumbers {
    /// Decode base time per token, ms.
    pub alpha: f64,
    /// Decode time added per request in the batch, ms.
    pub beta: f64,
    /// Prefill base time, ms.
    pub gamma: f64,
    /// Prefill time per input token, ms.
    pub delta: f64,
    /// Most requests one replica runs at once.
    #[schemars(range(min = 0, max = MAX_STATUS_COUNT), extend("format" = "int32"))]
    pub max_batch_size: u32,
}

impl From<plan::Profile> for ProfileNumbers {
    fn from(p: plan::Profile) -> Self {
        Self {
            alpha: p.alpha,
            beta: p.beta,
            gamma: p.gamma,
            delta: p.delta,
            max_batch_size: p.max_batch_size,
        }
    }
}

/// Confidence of a calibration, 0..1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProfileConfidence {
    /// Decode fit (ITL vs running batch), 0..1.
    pub decode: f64,
    /// Prefill fit (TTFT vs prompt tokens), 0..1.
    pub prefill: f64,
    /// The smaller of both, 0..1.
    pub overall: f64,
}

/// One decision, for the short history.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// RFC 3339 time.
    #[schemars(length(max = MAX_TIME_LENGTH))]
    pub time: String,
    /// What changed and why (at most 4096 characters; longer ones are cut).
    #[schemars(length(max = MAX_DECISION_REASON_LENGTH))]
    pub reason: String,
}

/// Status of a VariantAutoscaling.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VariantAutoscalingStatus {
    /// Spec generation this status reflects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = MAX_STATUS_INT64), extend("format" = "int64"))]
    pub observed_generation: Option<i64>,
    /// Load the last plan used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_load: Option<ObservedLoad>,
    /// Demand with headroom, req/s.
    #[serde(default)]
    pub demand_rps: f64,
    /// Share of the demand the plan serves (0..1).
    #[serde(default)]
    pub satisfaction: f64,
    /// Replicas over all variants now.
    #[serde(default)]
    #[schemars(range(min = 0, max = MAX_STATUS_COUNT), extend("format" = "int32"))]
    pub current_replicas: u32,
    /// Replicas over all variants wvo wants.
    #[serde(default)]
    #[schemars(range(min = 0, max = MAX_STATUS_COUNT), extend("format" = "int32"))]
    pub desired_replicas: u32,
    /// Cost of the desired replicas, $/h.
    #[serde(default)]
    pub cost_per_hour: f64,
    /// Per variant.
    #[serde(default)]
    #[schemars(length(max = MAX_VARIANTS))]
    pub variants: Vec<VariantStatus>,
    /// Per variant with a profile: the profile in use and the online calibration.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_VARIANTS))]
    pub profiles: Vec<VariantProfileStatus>,
    /// The last decision that changed something.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_decision: Option<Decision>,
    /// The last 10 decisions, newest last.
    #[serde(default)]
    #[schemars(length(max = MAX_STATUS_DECISIONS))]
    pub decisions: Vec<Decision>,
    /// Conditions (at most 16).
    #[serde(default)]
    #[schemars(length(max = MAX_CONDITIONS))]
    pub conditions: Vec<Condition>,
    /// Start-up of a new replica the demand estimate uses, s: `spec.startupSeconds`, else
    /// the slowest learned start-up of the variants, else the 120 s default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_seconds: Option<f64>,
    /// The seasonal forecast's state: `disabled`, `no period: <why>`, `period <P> s, not
    /// trusted (<H>% of <N> checks hit)` or `period <P> s, forecast <F> req/s (<H>% of checks
    /// hit)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_STATUS_NOTE_LENGTH))]
    pub forecast: Option<String>,
    /// The model's recent arrival-rate history, 60 s buckets, at most two days (a restarted
    /// controller or a new leader continues from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub demand_history: Option<DemandHistoryStatus>,
}

/// One accelerator type in the inventory ConfigMap.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InventoryAccelerator {
    /// Type name, as variants use it.
    pub name: String,
    /// GPUs available (the cap when `discover` is on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// Count GPUs from Nodes matching `nodeSelector` (allocatable `nvidia.com/gpu` or
    /// `amd.com/gpu`); `count`, when given, caps it.
    #[serde(default)]
    pub discover: bool,
    /// $ per GPU-hour.
    pub cost_per_hour: f64,
    /// Memory per GPU, GiB (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_gib: Option<f64>,
    /// Node labels that select nodes of this type, e.g. `nvidia.com/gpu.product: NVIDIA-H100-80GB-HBM3`.
    #[serde(default)]
    pub node_selector: std::collections::BTreeMap<String, String>,
}

/// A service class: a priority and SLO that VAs refer to by name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceClass {
    /// Class name.
    pub name: String,
    /// Priority tier.
    #[serde(default)]
    pub priority: i32,
    /// Target TTFT, ms (the mean, or at `percentile`).
    pub ttft_ms: f64,
    /// Target ITL, ms (the mean, or at `percentile`).
    pub itl_ms: f64,
    /// Share of requests, percent (more than 50, at most 99.9), that must meet both
    /// targets. Absent: the targets are means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentile: Option<f64>,
}

/// Content of the inventory ConfigMap (key `inventory.yaml`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InventoryConfig {
    /// Accelerator types.
    pub accelerators: Vec<InventoryAccelerator>,
    /// Service classes.
    #[serde(default)]
    pub service_classes: Vec<ServiceClass>,
}

/// The ConfigMap data key holding the inventory.
pub const INVENTORY_KEY: &str = "inventory.yaml";

impl InventoryConfig {
    /// Parses and checks the ConfigMap's `inventory.yaml`; errors name the field.
    pub fn parse(text: &str) -> Result<Self, crate::InputError> {
        let config: Self = serde_norway::from_str(text)
            .map_err(|e| crate::InputError::new(INVENTORY_KEY, e.to_string().replace('\n', " ")))?;
        let mut names = std::collections::BTreeSet::new();
        for (i, a) in config.accelerators.iter().enumerate() {
            let at = format!("accelerators[{i}]");
            if a.name.trim().is_empty() {
                return Err(crate::InputError::new(
                    format!("{at}.name"),
                    "must not be empty",
                ));
            }
            if !names.insert(a.name.as_str()) {
                return Err(crate::InputError::new(
                    format!("{at}.name"),
                    format!("duplicate accelerator type \"{}\"", a.name),
                ));
            }
            if !a.cost_per_hour.is_finite() || a.cost_per_hour < 0.0 {
                return Err(crate::InputError::new(
                    format!("{at}.costPerHour"),
                    format!(
                        "must be a finite number >= 0 ($ per GPU-hour), got {}",
                        a.cost_per_hour
                    ),
                ));
            }
            if a.count.is_none() && !a.discover {
                return Err(crate::InputError::new(
                    format!("{at}.count"),
                    "missing: give count, or discover: true to count GPUs from Nodes",
                ));
            }
            if a.discover && a.node_selector.is_empty() {
                return Err(crate::InputError::new(
                    format!("{at}.nodeSelector"),
                    "discover: true needs a nodeSelector to find this type's Nodes",
                ));
            }
        }
        let mut classes = std::collections::BTreeSet::new();
        for (i, c) in config.service_classes.iter().enumerate() {
            let at = format!("serviceClasses[{i}]");
            if !classes.insert(c.name.as_str()) {
                return Err(crate::InputError::new(
                    format!("{at}.name"),
                    format!("duplicate service class \"{}\"", c.name),
                ));
            }
            if !(crate::validate::MIN_PRIORITY..=MAX_PRIORITY).contains(&c.priority) {
                return Err(crate::InputError::new(
                    format!("{at}.priority"),
                    format!(
                        "must be between {} and {MAX_PRIORITY} (got {})",
                        crate::validate::MIN_PRIORITY,
                        c.priority
                    ),
                ));
            }
            for (field, v) in [("ttftMs", c.ttft_ms), ("itlMs", c.itl_ms)] {
                if !v.is_finite() || v <= 0.0 {
                    return Err(crate::InputError::new(
                        format!("{at}.{field}"),
                        format!("must be a finite number > 0 (ms), got {v}"),
                    ));
                }
            }
        }
        Ok(config)
    }
}

impl VariantAutoscaling {
    /// The model in plan form, with the SLO and priority resolved against `classes`.
    /// Errors name the field (`spec.serviceClass`, ...).
    pub fn to_model_spec(
        &self,
        name: &str,
        classes: &[ServiceClass],
    ) -> Result<ModelSpec, crate::InputError> {
        let spec = &self.spec;
        let class = match &spec.service_class {
            Some(c) => Some(classes.iter().find(|k| &k.name == c).ok_or_else(|| {
                crate::InputError::new(
                    "spec.serviceClass",
                    format!(
                        "unknown service class \"{c}\"; the inventory defines: {}",
                        classes
                            .iter()
                            .map(|k| k.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })?),
            None => None,
        };
        let slo = spec
            .slo
            .map(|s| plan::Slo {
                ttft_ms: s.ttft_ms,
                itl_ms: s.itl_ms,
                percentile: s.percentile,
            })
            .or(class.map(|c| plan::Slo {
                ttft_ms: c.ttft_ms,
                itl_ms: c.itl_ms,
                percentile: c.percentile,
            }));
        if let Some(s) = spec.startup_seconds {
            if !(0.0..=MAX_STARTUP_SECONDS).contains(&s) {
                return Err(crate::InputError::new(
                    "spec.startupSeconds",
                    format!(
                        "must be between 0 and {MAX_STARTUP_SECONDS} s (got {s}); remove it to learn the start-up from the pods' ready times"
                    ),
                ));
            }
        }
        if let Some(p) = spec.forecast.and_then(|f| f.period_seconds) {
            if !(MIN_FORECAST_PERIOD_SECONDS..=MAX_FORECAST_PERIOD_SECONDS).contains(&p) {
                return Err(crate::InputError::new(
                    "spec.forecast.periodSeconds",
                    format!(
                        "must be between {MIN_FORECAST_PERIOD_SECONDS} and {MAX_FORECAST_PERIOD_SECONDS} s (got {p}); remove it to find the period from the rate history"
                    ),
                ));
            }
        }
        if let Some(z) = &spec.scale_to_zero {
            if !(MIN_IDLE_SECONDS..=MAX_IDLE_SECONDS).contains(&z.idle_seconds) {
                return Err(crate::InputError::new(
                    "spec.scaleToZero.idleSeconds",
                    format!(
                        "must be between {MIN_IDLE_SECONDS} and {MAX_IDLE_SECONDS} s (got {}); remove spec.scaleToZero to keep one replica",
                        z.idle_seconds
                    ),
                ));
            }
            if z.wake_query.as_deref().is_some_and(|q| q.trim().is_empty()) {
                return Err(crate::InputError::new(
                    "spec.scaleToZero.wakeQuery",
                    "must be a PromQL expression, not empty; remove it to wake on the gateway's queue only",
                ));
            }
        }
        Ok(ModelSpec {
            name: name.to_string(),
            model_id: Some(spec.model_id.clone()),
            priority: spec.priority.or(class.map(|c| c.priority)).unwrap_or(0),
            weight: spec.weight,
            slo,
            min_replicas: spec.min_replicas,
            max_replicas: spec.max_replicas,
            variants: spec
                .variants
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let profile = v
                        .profile
                        .as_ref()
                        .map(|p| p.to_plan(&format!("spec.variants[{i}].profile")))
                        .transpose()?;
                    Ok(VariantSpec {
                        name: v.name.clone(),
                        accelerator: v.accelerator.clone(),
                        gpus_per_replica: v.gpus_per_replica,
                        min_replicas: v.min_replicas,
                        max_replicas: v.max_replicas,
                        max_requests_per_second: v.max_requests_per_second,
                        profile,
                    })
                })
                .collect::<Result<Vec<_>, crate::InputError>>()?,
        })
    }
}

/// The CRD manifests wvo installs, as YAML documents (what `wvo crds` prints and `crds/`
/// holds).
pub fn crd_yaml() -> Result<String, serde_norway::Error> {
    use kube_core::CustomResourceExt;
    let crd = VariantAutoscaling::crd();
    Ok(format!("---\n{}", serde_norway::to_string(&crd)?))
}
