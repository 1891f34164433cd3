//! The `wvo plan` input and output contract.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Everything the planner needs: inventory, models with their variants, load, and
/// optionally the replicas running now.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlanInput {
    /// Accelerator types with their GPU counts and hourly cost.
    pub inventory: Vec<AcceleratorType>,
    /// Served models, each with one or more variants.
    pub models: Vec<ModelSpec>,
    /// Offered load per model name.
    #[serde(default)]
    pub load: BTreeMap<String, ModelLoad>,
    /// Replicas running now, per model name and variant name (used to break cost ties
    /// towards fewer changes).
    #[serde(default)]
    pub current: BTreeMap<String, BTreeMap<String, u32>>,
    /// Planner options.
    #[serde(default)]
    pub options: PlanOptions,
}

/// One accelerator (GPU) type in the inventory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AcceleratorType {
    /// Type name, e.g. `H100`; variants refer to it by this name.
    pub name: String,
    /// GPUs of this type available to the planner.
    pub count: u32,
    /// Cost of one GPU of this type, $ per hour.
    pub cost_per_hour: f64,
}

/// Latency targets of a model.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Slo {
    /// Target time to first token, ms (queueing included): the mean, or with `percentile`
    /// the value that share of requests stays within.
    pub ttft_ms: f64,
    /// Target inter-token latency of a request (the mean gap between its tokens), ms: the
    /// mean over requests, or with `percentile` the value that share of requests stays within.
    pub itl_ms: f64,
    /// Share of requests, in percent (more than 50, at most 99.9), that must meet **both**
    /// targets. Absent: the targets are means over requests (the planner's older semantics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentile: Option<f64>,
}

impl Slo {
    /// Targets on the mean TTFT and mean ITL, ms.
    pub fn mean(ttft_ms: f64, itl_ms: f64) -> Self {
        Slo {
            ttft_ms,
            itl_ms,
            percentile: None,
        }
    }

    /// What the targets mean, for messages: `"mean"` or e.g. `"p99"`.
    pub fn semantics(&self) -> String {
        match self.percentile {
            None => "mean".to_string(),
            Some(p) => format!("p{}", crate::validate::short_number(p)),
        }
    }
}

/// One served model and the ways it can be served.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelSpec {
    /// Unique name of the model in this plan (keys `load` and `current`).
    pub name: String,
    /// The served model id, e.g. `meta-llama/Llama-3.1-8B-Instruct` (informational).
    #[serde(default, rename = "modelID", skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    /// Priority tier: higher is more important (PriorityClass convention). Default 0.
    #[serde(default)]
    pub priority: i32,
    /// Fair-share weight inside a priority tier. Default 1.
    #[serde(default = "default_weight")]
    pub weight: f64,
    /// Latency targets; required when any variant gives a `profile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo: Option<Slo>,
    /// Minimum replicas over all variants. Default 0.
    #[serde(default)]
    pub min_replicas: u32,
    /// Maximum replicas over all variants. Default unbounded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replicas: Option<u32>,
    /// The variants (at least one).
    pub variants: Vec<VariantSpec>,
}

fn default_weight() -> f64 {
    1.0
}

/// One way to serve a model: an accelerator type, GPUs per replica, and how fast a replica is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VariantSpec {
    /// Variant name, unique within its model.
    pub name: String,
    /// Accelerator type name; must be in the inventory.
    pub accelerator: String,
    /// GPUs one replica occupies. Default 1.
    #[serde(default = "default_gpus")]
    pub gpus_per_replica: u32,
    /// Minimum replicas of this variant. Default 0.
    #[serde(default)]
    pub min_replicas: u32,
    /// Maximum replicas of this variant. Default unbounded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replicas: Option<u32>,
    /// Measured capacity of one replica at the model's SLO, req/s (Mélange style).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests_per_second: Option<f64>,
    /// Performance profile, used with the model's SLO and token mix to derive capacity:
    /// inline numbers, or a catalog reference (`{catalog: NAME, tp: N}`) the planner
    /// estimates from `models/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<ProfileSpec>,
}

/// A variant's profile: inline numbers or a reference to the model catalog.
///
/// Serialized untagged: a map with `catalog` is a [`CatalogProfile`], any other map is an
/// inline [`Profile`] (whose parse errors still name the offending field).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ProfileSpec {
    /// Measured or hand-entered numbers.
    Inline(Profile),
    /// Estimated from the catalog (`models/`) for the variant's accelerator.
    Catalog(CatalogProfile),
}

impl From<Profile> for ProfileSpec {
    fn from(p: Profile) -> Self {
        ProfileSpec::Inline(p)
    }
}

impl<'de> Deserialize<'de> for ProfileSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        // Decide on the `catalog` key, then parse strictly so errors name the field.
        let value = serde_json::Value::deserialize(d)?;
        if value.get("catalog").is_some() {
            serde_json::from_value(value)
                .map(ProfileSpec::Catalog)
                .map_err(D::Error::custom)
        } else {
            serde_json::from_value(value)
                .map(ProfileSpec::Inline)
                .map_err(D::Error::custom)
        }
    }
}

/// A profile estimated from the catalog: model, tensor-parallel degree and dtype; the
/// accelerator is the variant's `accelerator` (a catalog name such as `H100`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CatalogProfile {
    /// Catalog model name or Hugging Face id, e.g. `llama-3.1-8b`.
    pub catalog: String,
    /// GPUs the model is split over (tensor parallelism). Default: the variant's
    /// `gpusPerReplica`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tp: Option<u32>,
    /// Weight dtype: `bf16`, `fp16` or `fp8`. Default: the checkpoint's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtype: Option<String>,
}

fn default_gpus() -> u32 {
    1
}

/// Performance profile of one replica of a variant.
///
/// Decode: `ITL(n) = alpha + beta*n` ms per output token at batch size `n`.
/// Prefill: `gamma + delta*inputTokens*n` ms for a prefill at batch size `n`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Profile {
    /// Decode base time per token, ms.
    pub alpha: f64,
    /// Decode time added per request in the batch, ms.
    pub beta: f64,
    /// Prefill base time, ms.
    pub gamma: f64,
    /// Prefill time per input token per request in the batch, ms.
    pub delta: f64,
    /// Most requests one replica runs at once.
    pub max_batch_size: u32,
}

/// Offered load of one model: the plan's input, and (as `status.observedLoad`, the one type
/// for both, its schema generated with the `crd` feature) what a VA's status says was planned
/// for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "crd", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelLoad {
    /// Arrival rate, req/s.
    pub arrival_rate: f64,
    /// Mean prompt tokens per request (needed when a variant uses a profile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avg_input_tokens: Option<f64>,
    /// Mean generated tokens per request (needed when a variant uses a profile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avg_output_tokens: Option<f64>,
}

/// Which algorithm the planner uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SolverChoice {
    /// Exact MILP for small problems, decomposition for large ones.
    #[default]
    Auto,
    /// Always the exact MILP (HiGHS).
    Exact,
    /// Always the decomposition (Lagrangian bound + per-model exact subproblems).
    Fast,
}

/// Planner options.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlanOptions {
    /// Extra capacity to plan for: serve `demand * (1 + headroom)`. Default 0.
    #[serde(default)]
    pub headroom: f64,
    /// Algorithm choice. Default `auto`.
    #[serde(default)]
    pub solver: SolverChoice,
    /// Seconds of solve time for the whole plan; the planner returns the best plan found by
    /// then. Default (None) [`DEFAULT_TIME_LIMIT_SECONDS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_limit_seconds: Option<f64>,
}

/// Solve time for a whole plan when `options.timeLimitSeconds` is not given, seconds.
pub const DEFAULT_TIME_LIMIT_SECONDS: f64 = 10.0;

impl PlanOptions {
    /// Seconds of solve time for the whole plan: `timeLimitSeconds`, or
    /// [`DEFAULT_TIME_LIMIT_SECONDS`] when not given.
    pub fn time_limit_seconds(&self) -> f64 {
        self.time_limit_seconds
            .unwrap_or(DEFAULT_TIME_LIMIT_SECONDS)
    }
}

impl Default for PlanOptions {
    fn default() -> Self {
        Self {
            headroom: 0.0,
            solver: SolverChoice::Auto,
            time_limit_seconds: None,
        }
    }
}

/// The planner's answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanOutput {
    /// True when every model's demand (with headroom) is met.
    pub feasible: bool,
    /// Cost of the plan, $ per hour.
    pub total_cost_per_hour: f64,
    /// A proven lower bound on the minimum cost that meets every demand, $ per hour;
    /// null when demand cannot be met.
    pub lower_bound_cost_per_hour: Option<f64>,
    /// Wall time spent solving, ms.
    pub solve_millis: f64,
    /// Which algorithm made the plan: `milp` or `decomposition`.
    pub solver: String,
    /// Per variant, in input order.
    pub variants: Vec<VariantPlan>,
    /// Per model, in input order.
    pub models: Vec<ModelPlan>,
    /// Per accelerator type, in input order.
    pub accelerators: Vec<AcceleratorUse>,
    /// What is missing when demand cannot be met: GPUs per accelerator type that would serve
    /// the unmet demand on each unmet model's cheapest usable variant.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shortfall: Vec<Shortfall>,
    /// Things a person should know (e.g. a variant whose profile cannot meet the SLO).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Planned replicas of one variant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VariantPlan {
    /// Model name.
    pub model: String,
    /// Variant name.
    pub variant: String,
    /// Accelerator type name.
    pub accelerator: String,
    /// Planned replicas.
    pub replicas: u32,
    /// GPUs those replicas occupy.
    pub gpus: u32,
    /// Cost of those replicas, $ per hour.
    pub cost_per_hour: f64,
    /// Capacity of one replica at the SLO, req/s.
    pub capacity_rps: f64,
}

/// Demand and service of one model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelPlan {
    /// Model name.
    pub model: String,
    /// Rate to serve (arrival rate times `1 + headroom`), req/s.
    pub demand_rps: f64,
    /// Rate the plan serves: `min(demand, planned capacity)`, req/s.
    pub served_rps: f64,
    /// `served / demand` (1 when demand is 0).
    pub satisfaction: f64,
    /// What the capacities were planned for: `"mean"` (the SLO has no `percentile`: mean
    /// TTFT and mean ITL meet the targets, the share of requests above them is not bounded)
    /// or `"pNN"` (that share of requests meets both targets); absent when the model has no
    /// SLO (measured `maxRequestsPerSecond` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo: Option<String>,
    /// Variants of this model whose profile cannot meet the SLO at any load (capacity 0:
    /// no replicas beyond their minimum); each is also one of the plan's `warnings`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slo_unreachable: Vec<SloUnreachable>,
}

/// A variant whose profile cannot meet its model's SLO at any load.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SloUnreachable {
    /// Variant name.
    pub variant: String,
    /// The SLO's TTFT target, ms.
    pub ttft_ms: f64,
    /// The SLO's ITL target, ms.
    pub itl_ms: f64,
}

impl SloUnreachable {
    /// The plan's warning about this variant of model `model`.
    pub fn warning(&self, model: &str) -> String {
        format!(
            "model \"{model}\" variant \"{}\": the profile cannot meet the SLO (TTFT {} ms, ITL {} ms) at any load; it gets no replicas beyond its minimum",
            self.variant, self.ttft_ms, self.itl_ms
        )
    }
}

/// Use of one accelerator type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AcceleratorUse {
    /// Type name.
    pub name: String,
    /// GPUs in the inventory.
    pub available: u32,
    /// GPUs the plan uses.
    pub used: u32,
}

/// GPUs missing of one accelerator type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Shortfall {
    /// Accelerator type name.
    pub accelerator: String,
    /// Extra GPUs of that type that would serve the unmet demand.
    pub missing_gpus: u32,
    /// Unmet demand those GPUs would serve, req/s.
    pub unmet_rps: f64,
}
