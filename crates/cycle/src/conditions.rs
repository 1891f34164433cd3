//! The conditions a VA's status reports after a cycle, as typed values: which condition
//! ([`ConditionType`]), whether it holds, why ([`Reason`]) and a message for a person.
//!
//! ```text
//!  ModelDecision, CycleOutcome, inventory refusal, actuation errors, profiles
//!    ─► model_conditions ─► MetricsAvailable · ProfileReady · Optimized ·
//!                           [ScaleToZeroUnavailable] · Actuated · CapacityConstrained
//! ```
//!
//! Pure: the controller writes them to the status ([`crate::status::va_status`]) with the
//! strings of [`ConditionType::as_str`] and [`Reason::as_str`].

use crate::cycle::{CycleOutcome, Frozen, ModelDecision, VariantDecision, ZeroState};
use wvo_api::crd::{ActuationMode, VariantAutoscaling, VariantProfileStatus};
use wvo_api::ModelSpec;

/// A condition type of a VA's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConditionType {
    /// The model's load was observed this cycle.
    MetricsAvailable,
    /// Every variant has a capacity at the SLO the plan can use.
    ProfileReady,
    /// The model was planned.
    Optimized,
    /// Scale to zero is configured but cannot (or does not yet) take the model to zero
    /// (only with `spec.scaleToZero`).
    ScaleToZeroUnavailable,
    /// The decisions reached the workloads.
    Actuated,
    /// The inventory limits what the model gets.
    CapacityConstrained,
}

impl ConditionType {
    /// The condition's `type` in the status, e.g. `Optimized`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MetricsAvailable => "MetricsAvailable",
            Self::ProfileReady => "ProfileReady",
            Self::Optimized => "Optimized",
            Self::ScaleToZeroUnavailable => "ScaleToZeroUnavailable",
            Self::Actuated => "Actuated",
            Self::CapacityConstrained => "CapacityConstrained",
        }
    }
}

/// Why a condition has its status (the condition's `reason` in the status).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// MetricsAvailable=True: the load was read.
    MetricsFresh,
    /// MetricsAvailable=False: the load is unknown; the last good load holds.
    MetricsUnknown,
    /// ProfileReady=True: every variant's capacity is known.
    ProfilesKnown,
    /// ProfileReady=False: calibration contradicts a variant's prior profile.
    ProfileContradicted,
    /// ProfileReady=False: a variant's profile cannot meet the SLO at any load.
    SloUnreachable,
    /// Optimized=True: planned with the inventory read this cycle.
    Planned,
    /// Optimized=True: planned with the last good inventory (the one read was refused).
    StaleInventory,
    /// Optimized=False: no valid inventory was ever read.
    NoInventory,
    /// Optimized=False: the spec is refused (the message names the field).
    InvalidSpec,
    /// Optimized=False: a variant's workload cannot be read; this VA is skipped.
    WorkloadUnreadable,
    /// Optimized=False: the planner failed; the previous plan stays in force.
    PlanFailed,
    /// ScaleToZeroUnavailable=True: no wake signal is read, so the model keeps one replica.
    NoWakeSignal,
    /// ScaleToZeroUnavailable=False: used within `idleSeconds`.
    Active,
    /// ScaleToZeroUnavailable=False: idle; at zero unless the forecast predicts a return.
    Idle,
    /// Actuated=True: the desired replicas were applied.
    Applied,
    /// Actuated=False: applying a decision failed.
    ActuationFailed,
    /// Actuated=False: `dryRun`: decisions are reported, not applied.
    DryRun,
    /// Actuated=False: a `scaleTargetRef` does not exist ([`Frozen::TargetNotFound`]).
    TargetNotFound,
    /// Actuated=False: another autoscaler scales the workload ([`Frozen::ForeignScaler`]).
    ForeignScaler,
    /// Actuated=False: actuation `hpa` without an HPA ([`Frozen::NoHpa`]).
    NoHpa,
    /// Actuated=False: an older VA owns the workload ([`Frozen::TargetConflict`]).
    TargetConflict,
    /// CapacityConstrained=False: all demand is served.
    DemandMet,
    /// CapacityConstrained=True: part of the demand is not served for lack of GPUs.
    NotEnoughGPUs,
    /// CapacityConstrained=True: the minimums did not all fit; this model's were lowered.
    MinimumsDoNotFit,
}

impl Reason {
    /// The condition's `reason` in the status, e.g. `StaleInventory`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MetricsFresh => "MetricsFresh",
            Self::MetricsUnknown => "MetricsUnknown",
            Self::ProfilesKnown => "ProfilesKnown",
            Self::ProfileContradicted => "ProfileContradicted",
            Self::SloUnreachable => "SloUnreachable",
            Self::Planned => "Planned",
            Self::StaleInventory => "StaleInventory",
            Self::NoInventory => "NoInventory",
            Self::InvalidSpec => "InvalidSpec",
            Self::WorkloadUnreadable => "WorkloadUnreadable",
            Self::PlanFailed => "PlanFailed",
            Self::NoWakeSignal => "NoWakeSignal",
            Self::Active => "Active",
            Self::Idle => "Idle",
            Self::Applied => "Applied",
            Self::ActuationFailed => "ActuationFailed",
            Self::DryRun => "DryRun",
            Self::TargetNotFound => "TargetNotFound",
            Self::ForeignScaler => "ForeignScaler",
            Self::NoHpa => "NoHpa",
            Self::TargetConflict => "TargetConflict",
            Self::DemandMet => "DemandMet",
            Self::NotEnoughGPUs => "NotEnoughGPUs",
            Self::MinimumsDoNotFit => "MinimumsDoNotFit",
        }
    }
}

impl From<&Frozen> for Reason {
    fn from(f: &Frozen) -> Self {
        match f {
            Frozen::TargetNotFound(_) => Self::TargetNotFound,
            Frozen::ForeignScaler(_) => Self::ForeignScaler,
            Frozen::NoHpa(_) => Self::NoHpa,
            Frozen::TargetConflict(_) => Self::TargetConflict,
        }
    }
}

/// One condition as computed by a cycle (the status adds transition time and generation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    /// Which condition.
    pub type_: ConditionType,
    /// Whether it holds (`True` / `False` in the status).
    pub status: bool,
    /// Why.
    pub reason: Reason,
    /// What a person should know, and what to do.
    pub message: String,
}

/// As the status API shows it: `{"type", "status": "True"|"False", "reason", "message"}`
/// (the VA status adds its transition time and generation).
impl serde::Serialize for Condition {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("Condition", 4)?;
        s.serialize_field("type", self.type_.as_str())?;
        s.serialize_field("status", self.status_str())?;
        s.serialize_field("reason", self.reason.as_str())?;
        s.serialize_field("message", &self.message)?;
        s.end()
    }
}

impl Condition {
    /// A condition of type `type_`, holding when `status`.
    pub fn new(
        type_: ConditionType,
        status: bool,
        reason: Reason,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason,
            message: message.into(),
        }
    }

    /// `Optimized=False` with `reason` (a VA that was not planned this cycle).
    pub fn not_optimized(reason: Reason, message: impl Into<String>) -> Self {
        Self::new(ConditionType::Optimized, false, reason, message)
    }

    /// The status as written: `True` or `False`.
    pub fn status_str(&self) -> &'static str {
        if self.status {
            "True"
        } else {
            "False"
        }
    }
}

/// What the conditions of one planned VA are computed from.
#[derive(Clone, Copy, Debug)]
pub struct ModelConditions<'a> {
    /// The VA (`spec.scaleToZero`, `spec.dryRun`, `spec.actuation`, `spec.modelID`).
    pub va: &'a VariantAutoscaling,
    /// The VA in plan form.
    pub spec: &'a ModelSpec,
    /// This cycle's decision for the model.
    pub decision: &'a ModelDecision,
    /// The whole cycle (the plan's warnings and shortfall, the number of models).
    pub outcome: &'a CycleOutcome,
    /// Why the inventory read this cycle was refused (the last good one was used).
    pub inventory_refusal: Option<&'a str>,
    /// Errors met applying this model's decisions, one per variant.
    pub actuation_errors: &'a [String],
    /// The VA's `status.profiles` as computed this cycle.
    pub profiles: &'a [VariantProfileStatus],
    /// Names of the gateway queue metrics that serve as a wake signal, newest first (for the
    /// `NoWakeSignal` message).
    pub gateway_queue_metrics: &'a [&'a str],
}

/// The plan's warnings about the variants of model `plan_name` (`namespace/name`) whose
/// profile cannot meet the SLO at any load (from the plan's typed per-model marker).
pub fn slo_unreachable_warnings(outcome: &CycleOutcome, plan_name: &str) -> Vec<String> {
    outcome
        .plan
        .models
        .iter()
        .filter(|m| m.model == plan_name)
        .flat_map(|m| m.slo_unreachable.iter().map(|u| u.warning(&m.model)))
        .collect()
}

/// The conditions of a planned VA, in the order they are written: MetricsAvailable,
/// ProfileReady, Optimized, ScaleToZeroUnavailable (only with `spec.scaleToZero`), Actuated,
/// CapacityConstrained.
pub fn model_conditions(c: &ModelConditions<'_>) -> Vec<Condition> {
    use ConditionType as T;
    let ModelConditions {
        va,
        spec,
        decision,
        outcome,
        inventory_refusal,
        actuation_errors,
        profiles,
        gateway_queue_metrics,
    } = *c;
    let mut out = Vec::new();
    out.push(match &decision.metrics_unknown {
        None => Condition::new(
            T::MetricsAvailable,
            true,
            Reason::MetricsFresh,
            format!("arrival rate {:.3} req/s", decision.load_used.arrival_rate),
        ),
        Some(why) => Condition::new(
            T::MetricsAvailable,
            false,
            Reason::MetricsUnknown,
            format!("{why}; the last good load holds and nothing is scaled down"),
        ),
    });
    let plan_name = format!("{}/{}", decision.namespace, decision.name);
    let unreachable = slo_unreachable_warnings(outcome, &plan_name);
    let contradicted: Vec<String> = profiles
        .iter()
        .filter_map(|p| {
            p.contradiction
                .as_ref()
                .map(|c| format!("{} (prior from {}): {c}", p.name, p.source))
        })
        .collect();
    out.push(if !unreachable.is_empty() {
        Condition::new(
            T::ProfileReady,
            false,
            Reason::SloUnreachable,
            unreachable.join("; "),
        )
    } else if !contradicted.is_empty() {
        Condition::new(
            T::ProfileReady,
            false,
            Reason::ProfileContradicted,
            format!(
                "{}; planning uses the calibrated profile",
                contradicted.join("; ")
            ),
        )
    } else {
        let estimated = spec.variants.iter().filter(|v| v.profile.is_some()).count();
        let calibrated: Vec<String> = profiles
            .iter()
            .filter(|p| p.in_use != p.prior)
            .map(|p| format!("{} (confidence {:.2})", p.name, p.confidence.overall))
            .collect();
        let learned = if calibrated.is_empty() {
            String::new()
        } else {
            format!("; calibrated online: {}", calibrated.join(", "))
        };
        Condition::new(
            T::ProfileReady,
            true,
            Reason::ProfilesKnown,
            format!(
                "{} variants with a measured capacity, {estimated} from a profile{learned}",
                spec.variants.len() - estimated
            ),
        )
    });
    out.push(match inventory_refusal {
        None => Condition::new(
            T::Optimized,
            true,
            Reason::Planned,
            format!(
                "global plan over {} models; this model {:.1}% served",
                outcome.models.len(),
                decision.satisfaction * 100.0
            ),
        ),
        Some(why) => Condition::new(
            T::Optimized,
            true,
            Reason::StaleInventory,
            format!("{why}; planned with the last good inventory"),
        ),
    });
    if let Some(z) = &va.spec.scale_to_zero {
        out.push(match &decision.zero {
            ZeroState::NoWakeSignal | ZeroState::KeepsOne => Condition::new(
                T::ScaleToZeroUnavailable,
                true,
                Reason::NoWakeSignal,
                format!(
                    "spec.scaleToZero is set but no wake signal is read for model {} (no gateway flow-control queue metric ({}) for it{}): it keeps one replica, since nothing would wake it from zero",
                    va.spec.model_id,
                    gateway_queue_metrics.join(" or "),
                    if z.wake_query.is_some() {
                        ", and spec.scaleToZero.wakeQuery gave no value"
                    } else {
                        ", and no spec.scaleToZero.wakeQuery"
                    }
                ),
            ),
            ZeroState::Active { idle_for_seconds } => Condition::new(
                T::ScaleToZeroUnavailable,
                false,
                Reason::Active,
                format!(
                    "wake signal read; idle for {idle_for_seconds:.0} s of the {} s after which its replicas go to zero",
                    z.idle_seconds
                ),
            ),
            ZeroState::Idle { idle_for_seconds } => Condition::new(
                T::ScaleToZeroUnavailable,
                false,
                Reason::Idle,
                format!(
                    "idle for {idle_for_seconds:.0} s (spec.scaleToZero.idleSeconds {}): at zero replicas unless the forecast predicts a return; a request at the gateway wakes it",
                    z.idle_seconds
                ),
            ),
        });
    }
    let frozen = decision
        .variants
        .iter()
        .filter(|d| !d.may_actuate)
        .find_map(|d: &VariantDecision| d.frozen.as_ref());
    out.push(if !actuation_errors.is_empty() {
        Condition::new(
            T::Actuated,
            false,
            Reason::ActuationFailed,
            actuation_errors.join("; "),
        )
    } else if va.spec.dry_run {
        Condition::new(
            T::Actuated,
            false,
            Reason::DryRun,
            "dryRun: decisions are reported, workloads are not changed",
        )
    } else if let Some(why) = frozen {
        Condition::new(T::Actuated, false, Reason::from(why), why.message())
    } else {
        let mode = match va.spec.actuation {
            ActuationMode::Scale => "scale subresource",
            ActuationMode::Hpa => "HPA bounds",
            ActuationMode::Metric => "wvo_desired_replicas metric",
            ActuationMode::Keda => "KEDA external scaler",
        };
        Condition::new(
            T::Actuated,
            true,
            Reason::Applied,
            format!("desired replicas applied through the {mode}"),
        )
    });
    out.push(if let Some(why) = &decision.floors_lowered {
        Condition::new(
            T::CapacityConstrained,
            true,
            Reason::MinimumsDoNotFit,
            why.clone(),
        )
    } else if decision.satisfaction < 1.0 {
        let missing = outcome
            .plan
            .shortfall
            .iter()
            .map(|s| {
                format!(
                    "{} more {} GPUs (cluster-wide unmet {:.2} req/s)",
                    s.missing_gpus, s.accelerator, s.unmet_rps
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        Condition::new(
            T::CapacityConstrained,
            true,
            Reason::NotEnoughGPUs,
            format!(
                "{:.1}% of {:.2} req/s served; missing: {missing}",
                decision.satisfaction * 100.0,
                decision.demand_rps
            ),
        )
    } else {
        Condition::new(
            T::CapacityConstrained,
            false,
            Reason::DemandMet,
            "all demand is served",
        )
    });
    out
}
