//! One control cycle as a pure function: `Snapshot` (cluster state + observations) and the
//! state kept between cycles in, decisions out. No I/O, no clock: `now` is an input.
//!
//! ```text
//! Snapshot ─► PlanInput (pending pods shrink the inventory; unknown load holds) ─► optimizer
//!          ─► per model: scale-down band (a scale-down keeps what serves demand x
//!             (1 + headroom + margin))
//!          ─► per variant: stabilizer (scale-up now, scale-down after its window)
//!          ─► per model: make-before-break (ready replicas left must absorb the load)
//! ```

use crate::stabilizer::{Stabilizer, Step, VariantKey};
use std::collections::{BTreeMap, BTreeSet};
use wvo_api::{
    AcceleratorType, ModelLoad, ModelSpec, PlanInput, PlanOptions, PlanOutput, VariantPlan,
    VariantSpec,
};

/// Observed state of one variant's workload.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VariantState {
    /// Replicas the workload is set to now (its `/scale` spec.replicas).
    pub replicas: u32,
    /// Replicas ready to serve.
    pub ready: u32,
    /// Replicas Pending because no node has a free GPU of their type.
    pub pending_unschedulable: u32,
    /// Why wvo must not change this workload (target missing, driven by another scaler,
    /// owned by another VA), or None when it may.
    pub frozen: Option<Frozen>,
    /// Start-up of this variant's new replicas learned from its pods' ready times, s; None
    /// when not learned (the model's start-up applies).
    pub startup_seconds: Option<f64>,
}

/// Why wvo must not change a workload: planned around as it is, reported on the VA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frozen {
    /// The `scaleTargetRef` does not exist (the message names it).
    TargetNotFound(String),
    /// Another autoscaler (an HPA, or KEDA's) scales it while the VA's actuation is
    /// `scale`: wvo reports and does not fight it.
    ForeignScaler(String),
    /// The VA's actuation is `hpa` but no HorizontalPodAutoscaler targets the workload.
    NoHpa(String),
    /// Another VariantAutoscaling (the older one) owns the same workload.
    TargetConflict(String),
}

impl Frozen {
    /// The `Actuated=False` condition reason: `TargetNotFound`, `ForeignScaler`, `NoHpa` or
    /// `TargetConflict`.
    pub fn reason(&self) -> &'static str {
        crate::conditions::Reason::from(self).as_str()
    }

    /// What is wrong and what to do, for the condition's message.
    pub fn message(&self) -> &str {
        match self {
            Frozen::TargetNotFound(m)
            | Frozen::ForeignScaler(m)
            | Frozen::NoHpa(m)
            | Frozen::TargetConflict(m) => m,
        }
    }
}

impl std::fmt::Display for Frozen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

/// One model (one VariantAutoscaling) as the cycle sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelState {
    /// Namespace of the VA.
    pub namespace: String,
    /// Name of the VA.
    pub name: String,
    /// The model in plan form (variants in the VA's order; `name` is ignored).
    pub spec: ModelSpec,
    /// Workload state per variant, in the same order as `spec.variants`.
    pub variants: Vec<VariantState>,
    /// Scale-down stabilization window, s.
    pub stabilization_seconds: f64,
    /// Observed load, or why it is unknown.
    pub load: Result<ModelLoad, String>,
    /// What the collector saw beyond the arrival rate, and the VA's demand settings (used
    /// when the snapshot has [`DemandOptions`]).
    pub demand: DemandInputs,
}

/// One model's observations beyond the arrival rate, and its VA's demand settings.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DemandInputs {
    /// Requests waiting now: in the servers' queues plus the gateway's queue, requests;
    /// None when unknown.
    pub waiting: Option<f64>,
    /// Mean KV-cache usage of the ready replicas now, 0..1; None when unknown.
    pub kv_usage: Option<f64>,
    /// Start-up of a new replica, s: set on the VA, or learned from pod ready times; None
    /// uses [`DemandOptions::default_startup_seconds`].
    pub startup_seconds: Option<f64>,
    /// The VA turned the forecast off.
    pub forecast_off: bool,
    /// The load's period as the VA gives it, s; None finds it from the rate history.
    pub forecast_period_seconds: Option<f64>,
    /// `spec.scaleToZero.idleSeconds`, s: the model may go to zero replicas after this long
    /// idle. None: it keeps at least one replica.
    pub scale_to_zero_idle_seconds: Option<f64>,
    /// Requests waiting for the model where none of its replicas sees them (the gateway's
    /// flow-control queue, the VA's wake query), requests; None when no wake signal could be
    /// read (then the model cannot be woken from zero, so it keeps one replica).
    pub wake: Option<f64>,
    /// Requests being generated on the model's servers now, requests; None when unknown.
    /// A model with requests running is not idle (arrivals are counted from completions,
    /// which lag a request's start by its generation time).
    pub running: Option<f64>,
}

/// The arrival rate a model that must keep one replica is planned for at least, req/s:
/// above 0, so the plan gives it a replica of its cheapest fitting variant, and far below
/// what one replica serves.
pub const KEEP_WARM_RPS: f64 = 1e-3;

/// Arrivals at or below this rate count as none when deciding whether a model is idle, req/s.
pub const IDLE_RPS: f64 = 1e-3;

/// Where a model stands on scaling to zero (`spec.scaleToZero`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ZeroState {
    /// `spec.scaleToZero` is not set: the model keeps at least one replica.
    KeepsOne,
    /// `spec.scaleToZero` is set but no wake signal could be read: the model keeps one
    /// replica, since nothing would wake it from zero.
    NoWakeSignal,
    /// Used within the last `idleSeconds`: planned as usual, with at least one replica.
    Active {
        /// Time since it last had arrivals, waiting requests or a wake signal, s.
        idle_for_seconds: f64,
    },
    /// Idle for `idleSeconds` or more: planned for what the forecast predicts over the
    /// start-up horizon (zero replicas without a forecast of a return).
    Idle {
        /// Time since it last had arrivals, waiting requests or a wake signal, s.
        idle_for_seconds: f64,
    },
}

/// How the cycle turns observations into the demand it plans for (`wvo_demand`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DemandOptions {
    /// Seconds between cycles (`wvo run --interval-seconds`).
    pub cycle_seconds: f64,
    /// The collector's rate window, s.
    pub window_seconds: f64,
    /// Mean age of the scraped metrics when a cycle reads them, s.
    pub scrape_age_seconds: f64,
    /// Start-up of a new replica when neither the VA nor pod history tells, s.
    pub default_startup_seconds: f64,
    /// Time constant of the slow fall of the demand, s.
    pub fall_seconds: f64,
    /// The backlog adds at most this multiple of the demand, dimensionless.
    pub backlog_cap: f64,
}

impl DemandOptions {
    /// The start-up of a new replica the demand estimate plans with, s: `known` (set on the
    /// VA or learned from pods) when finite and >= 0, else [`Self::default_startup_seconds`].
    pub fn startup_seconds(&self, known: Option<f64>) -> f64 {
        known
            .filter(|s| s.is_finite() && *s >= 0.0)
            .unwrap_or(self.default_startup_seconds)
    }
}

/// Start-up of a new replica when neither the VA nor its pods tell, s.
pub const DEFAULT_STARTUP_SECONDS: f64 = 120.0;

impl Default for DemandOptions {
    /// `wvo run`'s defaults: 15 s cycles, a 60 s window scraped every 15 s.
    fn default() -> Self {
        DemandOptions {
            cycle_seconds: 15.0,
            window_seconds: 60.0,
            scrape_age_seconds: 15.0,
            default_startup_seconds: DEFAULT_STARTUP_SECONDS,
            fall_seconds: 60.0,
            backlog_cap: 1.0,
        }
    }
}

/// Everything one cycle needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// Time of the snapshot, s (any fixed origin).
    pub now_seconds: f64,
    /// Accelerator inventory in force.
    pub inventory: Vec<AcceleratorType>,
    /// Models to plan, in a stable order.
    pub models: Vec<ModelState>,
    /// Planner options (headroom, solver).
    pub options: PlanOptions,
    /// Scale-down hysteresis margin, a fraction of the observed arrival rate (dimensionless,
    /// e.g. 0.05). A model scales up when its replicas serve less than
    /// `arrival * (1 + headroom)` req/s (the plan), but a scale-down of placed replicas only
    /// goes as far as the replicas left still serve `arrival * (1 + headroom + margin)` req/s,
    /// and only once that held for the whole stabilization window. 0 turns the band off; a
    /// negative or non-finite value counts as 0. Reclaims by a higher tier and scale-downs of
    /// a GPU type another model waits for are not held.
    pub scale_down_margin: f64,
    /// Demand estimation (fast rise, backlog, start-up horizon, forecast); None plans for
    /// the observed arrival rate as it is.
    pub demand: Option<DemandOptions>,
}

/// How long a GPU shortage seen through Pending pods is remembered when no model on the type
/// says otherwise, s. Without the memory the cycle after the Pending pods are removed would
/// plan them again (the type looks free), and the workload would flap between N and N+1
/// every cycle. The memory in force is the longest scale-down stabilization window of the
/// models with a variant on the type (the time scale their owners accept changes on), this
/// value when there is none.
pub const SHORTAGE_MEMORY_SECONDS: f64 = 300.0;

/// How long a shortage of accelerator type `acc` is remembered, s: the longest scale-down
/// stabilization window of the models with a variant on it, else
/// [`SHORTAGE_MEMORY_SECONDS`].
fn shortage_memory_seconds(snapshot: &Snapshot, acc: &str) -> f64 {
    snapshot
        .models
        .iter()
        .filter(|m| m.spec.variants.iter().any(|v| v.accelerator == acc))
        .map(|m| m.stabilization_seconds)
        .filter(|s| s.is_finite() && *s >= 0.0)
        .reduce(f64::max)
        .unwrap_or(SHORTAGE_MEMORY_SECONDS)
}

/// A GPU type found short: Pending pods asked for more than could be placed.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Shortage {
    /// GPUs that were placed (bound) when the shortage was seen.
    usable: u32,
    /// The type's inventory count then (a changed count ends the memory).
    count: u32,
    /// When it was last seen, s.
    seen_at: f64,
}

/// State kept from one cycle to the next.
#[derive(Clone, Debug, Default)]
pub struct CycleState {
    stabilizer: Stabilizer,
    last_known_load: BTreeMap<(String, String), ModelLoad>,
    shortages: BTreeMap<String, Shortage>,
    /// Demand state per model (rate history, level, forecast checks).
    demand: BTreeMap<(String, String), wvo_demand::ModelDemand>,
    /// Capacity of one replica per variant as last planned, req/s.
    capacity: BTreeMap<VariantKey, f64>,
    /// When each model last had arrivals, waiting requests or a wake signal, s.
    last_active: BTreeMap<(String, String), f64>,
    /// Per model, its wake signal (requests) at recent cycles: (time s, requests).
    wake_history: BTreeMap<(String, String), std::collections::VecDeque<(f64, f64)>>,
}

impl CycleState {
    /// The rate history of a model (for status and restore), if it has one.
    pub fn demand_history(&self, namespace: &str, name: &str) -> Option<&wvo_demand::History> {
        self.demand
            .get(&(namespace.to_string(), name.to_string()))
            .map(wvo_demand::ModelDemand::history)
    }

    /// Restores a model's rate history (after a restart or a failover).
    pub fn restore_demand_history(
        &mut self,
        namespace: &str,
        name: &str,
        history: wvo_demand::History,
    ) {
        self.demand
            .entry((namespace.to_string(), name.to_string()))
            .or_default()
            .restore_history(history);
    }
}

/// After a model's variant floors were lowered: its model-wide minimum is at most their sum
/// (its maximum, at least their sum since it was built, stays valid).
fn lower_model_floor(spec: &mut wvo_api::ModelSpec) {
    let floors: u32 = spec.variants.iter().map(|v| v.min_replicas).sum();
    spec.min_replicas = spec.min_replicas.min(floors);
}

/// The decision for one variant; also what the status API shows of it (`/api/v1/models`,
/// camelCase, without the fields that only steer actuation).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VariantDecision {
    /// Variant name.
    pub name: String,
    /// Accelerator type.
    pub accelerator: String,
    /// Replicas now.
    pub current: u32,
    /// Ready replicas now.
    pub ready: u32,
    /// Replicas Pending for lack of a GPU.
    pub pending: u32,
    /// What the optimizer planned.
    pub planned: u32,
    /// What to set after stabilization (equals `current` when frozen).
    pub desired: u32,
    /// Capacity of one replica, req/s.
    pub capacity_rps: f64,
    /// Cost of the desired replicas, $/h.
    pub cost_per_hour: f64,
    /// Cost of one replica, $/h.
    #[serde(skip)]
    pub price_per_replica: f64,
    /// Why.
    pub reason: String,
    /// False when the workload must not be touched (`frozen`).
    #[serde(skip)]
    pub may_actuate: bool,
    /// Why the workload is not touched (None when it may be).
    #[serde(skip)]
    pub frozen: Option<Frozen>,
}

impl VariantDecision {
    /// This variant's entry in the VA's `status.variants`, with the start-up learned from its
    /// pods (s; rounded to 0.1 s, None before a pod of it was seen Ready).
    pub fn to_status(&self, learned_startup_seconds: Option<f64>) -> wvo_api::crd::VariantStatus {
        wvo_api::crd::VariantStatus {
            name: self.name.clone(),
            accelerator: self.accelerator.clone(),
            current_replicas: self.current,
            ready_replicas: self.ready,
            pending_replicas: self.pending,
            desired_replicas: self.desired,
            capacity_rps: self.capacity_rps,
            cost_per_hour: self.cost_per_hour,
            learned_startup_seconds: learned_startup_seconds.map(|s| (s * 10.0).round() / 10.0),
        }
    }
}

/// The decision for one model.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelDecision {
    /// Namespace of the VA.
    pub namespace: String,
    /// Name of the VA.
    pub name: String,
    /// Per variant, in the VA's order.
    pub variants: Vec<VariantDecision>,
    /// Load the plan used (observed, or the last known one when unknown).
    pub load_used: ModelLoad,
    /// None when metrics were known, else why not.
    pub metrics_unknown: Option<String>,
    /// Demand (with headroom) the plan serves, req/s.
    pub demand_rps: f64,
    /// Share of demand the plan serves (0..1).
    pub satisfaction: f64,
    /// How the planned arrival rate was made from the observations (None without
    /// [`DemandOptions`] or with unknown metrics).
    pub demand: Option<wvo_demand::Demand>,
    /// Why the model was planned below its VA's minimums (they could not all be placed
    /// beside the other models' on the inventory), or None.
    pub floors_lowered: Option<String>,
    /// Whether the model may go to zero replicas, and how long it has been idle.
    pub zero: ZeroState,
    /// The wake signal read this cycle, requests (None: none read).
    pub wake: Option<f64>,
}

/// What a cycle produced.
#[derive(Clone, Debug, PartialEq)]
pub struct CycleOutcome {
    /// The optimizer's plan (before stabilization).
    pub plan: PlanOutput,
    /// Per model, in snapshot order.
    pub models: Vec<ModelDecision>,
    /// Accelerator types whose usable count was lowered because pods wait for a GPU.
    pub inventory_notes: Vec<String>,
}

/// Why a cycle made no plan; the previous plan stays in force.
#[derive(Debug, thiserror::Error)]
pub enum CycleError {
    /// The planner refused the combined input.
    #[error("planning failed: {0}")]
    Plan(#[from] wvo_optimizer::PlanError),
}

fn plan_name(m: &ModelState) -> String {
    format!("{}/{}", m.namespace, m.name)
}

/// Per accelerator type that is contended (keeping every placed replica and adding every
/// planned one would not fit its usable count), the highest priority of a model that plans
/// more replicas of that type than it has placed, whose placed replicas do not serve its
/// demand, **and** that could not get the capacity it misses from GPUs that are free now on
/// its other variants' types. First, models whose placed replicas serve their demand give
/// up what they hold beyond their plan on that type without their windows (any tier: a
/// window smooths one model's noise; it does not keep GPUs another model needs now). Where
/// that does not cover the claim, lower tiers' scale-downs of that type also skip the
/// stabilization window and make-before-break: strict tiers hold in actuation
/// too, not only in the plan. A higher tier that merely moves to a cheaper type (its placed
/// replicas serve its demand, or capacity elsewhere is free) claims nothing: the lower tier's
/// replicas move with make-before-break.
/// No model's scale-down of a type in the result is held by the scale-down band (its GPUs
/// are claimed by a higher tier).
fn reclaiming_tiers<'a>(
    snapshot: &'a Snapshot,
    inventory: &[AcceleratorType],
    plan: &PlanOutput,
) -> Reclaim<'a> {
    /// One variant as the reclaim sees it.
    struct VariantUse<'s> {
        spec: &'s VariantSpec,
        planned: u32,
        placed: u32,
        /// Capacity of one replica, req/s.
        capacity_rps: f64,
    }
    impl VariantUse<'_> {
        fn accelerator(&self) -> &str {
            self.spec.accelerator.as_str()
        }
    }
    let usable = |acc: &str| {
        inventory
            .iter()
            .find(|a| a.name == acc)
            .map_or(0, |a| u64::from(a.count))
    };
    // Per model (snapshot order), its variants.
    let mut per_model: Vec<Vec<VariantUse>> = Vec::with_capacity(snapshot.models.len());
    let mut needed: BTreeMap<&str, u64> = BTreeMap::new();
    let mut offset = 0;
    for m in &snapshot.models {
        let mut uses = Vec::with_capacity(m.variants.len());
        for (vi, (vs, v)) in m.spec.variants.iter().zip(&m.variants).enumerate() {
            let planned_variant = plan.variants.get(offset + vi);
            let planned = planned_variant.map_or(0, |p| p.replicas);
            let placed = placed(v);
            *needed.entry(vs.accelerator.as_str()).or_default() +=
                u64::from(planned.max(placed)) * u64::from(vs.gpus_per_replica);
            uses.push(VariantUse {
                spec: vs,
                planned,
                placed,
                capacity_rps: planned_variant.map_or(0.0, |p| p.capacity_rps),
            });
        }
        per_model.push(uses);
        offset += m.variants.len();
    }
    let contended: BTreeSet<&str> = needed
        .iter()
        .filter(|(acc, n)| **n > usable(acc))
        .map(|(acc, _)| *acc)
        .collect();
    // GPUs left free on uncontended types, handed out to claimants in snapshot order.
    let mut spare: BTreeMap<&str, u64> = needed
        .iter()
        .filter(|(acc, _)| !contended.contains(*acc))
        .map(|(acc, n)| (*acc, usable(acc) - n))
        .collect();
    let mut claim: BTreeMap<&str, i32> = BTreeMap::new();
    let mut bridge: BTreeMap<(usize, usize), u32> = BTreeMap::new();
    // GPUs claimants want per type (their planned replicas beyond those placed).
    let mut wanted_gpus: BTreeMap<&str, u64> = BTreeMap::new();
    for (mi, (m, uses)) in snapshot.models.iter().zip(&per_model).enumerate() {
        let claiming =
            |u: &&VariantUse| u.planned > u.placed && contended.contains(u.accelerator());
        // Only what the model's placed replicas (all of them: those the plan moves away keep
        // serving until their window and make-before-break let them go) leave unserved is
        // wanted now; a move that is only cheaper claims nothing.
        let placed_rps: f64 = uses
            .iter()
            .map(|u| f64::from(u.placed) * u.capacity_rps)
            .sum();
        let shortfall = plan
            .models
            .get(mi)
            .map_or(f64::INFINITY, |p| p.demand_rps - placed_rps);
        let wanted: f64 = uses
            .iter()
            .filter(claiming)
            .map(|u| f64::from(u.planned - u.placed) * u.capacity_rps)
            .sum::<f64>()
            .min(shortfall);
        if wanted <= 1e-9 {
            continue;
        }
        let mut elsewhere = 0.0;
        let mut taken: Vec<(usize, &str, u64, u64)> = Vec::new();
        for (vi, u) in uses
            .iter()
            .enumerate()
            .filter(|(_, u)| !contended.contains(u.accelerator()))
        {
            let gpus = u64::from(u.spec.gpus_per_replica.max(1));
            let free = spare.get(u.accelerator()).copied().unwrap_or(0);
            let room = u.spec.max_replicas.map_or(u64::MAX, |max| {
                u64::from(max.saturating_sub(u.planned.max(u.placed)))
            });
            let more = (free / gpus).min(room);
            let useful = more.min(((wanted - elsewhere) / u.capacity_rps.max(1e-9)).ceil() as u64);
            if useful > 0 && u.capacity_rps > 0.0 {
                elsewhere += useful as f64 * u.capacity_rps;
                taken.push((vi, u.accelerator(), useful, gpus));
            }
            if elsewhere >= wanted {
                break;
            }
        }
        if elsewhere >= wanted {
            // Served on the free GPUs now, while the plan's replicas wait for theirs.
            for (vi, acc, replicas, gpus) in taken {
                if let Some(free) = spare.get_mut(acc) {
                    *free -= replicas * gpus;
                }
                let u = &uses[vi];
                let more = u32::try_from(replicas).unwrap_or(u32::MAX);
                bridge.insert((mi, vi), u.planned.max(u.placed).saturating_add(more));
            }
            continue;
        }
        for u in uses.iter().filter(claiming) {
            let e = claim.entry(u.spec.accelerator.as_str()).or_insert(i32::MIN);
            *e = (*e).max(m.spec.priority);
            *wanted_gpus.entry(u.spec.accelerator.as_str()).or_default() +=
                u64::from(u.planned - u.placed) * u64::from(u.spec.gpus_per_replica);
        }
    }
    // A model whose placed replicas serve its demand without those beyond its plan on the
    // claimed types holds these only for its window.
    let surplus: Vec<bool> = per_model
        .iter()
        .enumerate()
        .map(|(mi, uses)| {
            let kept_rps: f64 = uses
                .iter()
                .map(|u| {
                    let kept = if claim.contains_key(u.accelerator()) {
                        u.placed.min(u.planned)
                    } else {
                        u.placed
                    };
                    f64::from(kept) * u.capacity_rps
                })
                .sum();
            plan.models
                .get(mi)
                .is_some_and(|p| kept_rps >= p.demand_rps)
        })
        .collect();
    // Per type (read for the claimed ones), the GPUs such models keep beyond their plan.
    let mut held_gpus: BTreeMap<&str, u64> = BTreeMap::new();
    for (uses, _) in per_model.iter().zip(&surplus).filter(|(_, s)| **s) {
        for u in uses.iter().filter(|u| u.placed > u.planned) {
            *held_gpus.entry(u.spec.accelerator.as_str()).or_default() +=
                u64::from(u.placed - u.planned) * u64::from(u.spec.gpus_per_replica);
        }
    }
    // Lower tiers give up replicas they need only where the GPUs held beyond other models'
    // plans (released below, without their windows) do not cover the claim.
    let evict = wanted_gpus
        .iter()
        .filter(|(acc, wanted)| **wanted > held_gpus.get(*acc).copied().unwrap_or(0))
        .map(|(acc, _)| *acc)
        .collect();
    Reclaim {
        claim,
        evict,
        surplus,
        bridge,
    }
}

/// What [`reclaiming_tiers`] found.
struct Reclaim<'a> {
    /// Per contended accelerator type, the highest priority that claims it now.
    claim: BTreeMap<&'a str, i32>,
    /// Claimed types where the GPUs models hold beyond their plans (in their windows) do not
    /// cover the claim: lower tiers give up replicas there at once, without make-before-break.
    evict: BTreeSet<&'a str>,
    /// Per model (snapshot order): its placed replicas serve its demand, so what it holds
    /// beyond its plan on a claimed type is released without the window.
    surplus: Vec<bool>,
    /// Per (model index, variant index) in snapshot order, the replicas a model that is short
    /// now sets on a type with free GPUs while the replicas the plan gives it on a contended
    /// type wait for their GPUs (a bridge: the plan takes them back, after the window, once
    /// the planned replicas are placed).
    bridge: BTreeMap<(usize, usize), u32>,
}

/// Replicas of a variant that are placed (hold their GPUs): set minus Pending-unschedulable.
fn placed(v: &VariantState) -> u32 {
    v.replicas - v.pending_unschedulable.min(v.replicas)
}

/// Placed replicas of a variant once it is set to `replicas`: a scale-down removes the
/// Pending ones first; new replicas count as placed (the plan placed them).
fn placed_after(v: &VariantState, replicas: u32) -> u32 {
    if replicas >= v.replicas {
        placed(v) + (replicas - v.replicas)
    } else {
        replicas.min(placed(v))
    }
}

/// Capacity of the placed replicas once each variant is set to `replicas[i]`, req/s.
fn placed_capacity_rps(states: &[VariantState], planned: &[VariantPlan], replicas: &[u32]) -> f64 {
    states
        .iter()
        .zip(planned)
        .zip(replicas)
        .map(|((v, p), &r)| p.capacity_rps * f64::from(placed_after(v, r)))
        .sum()
}

/// A re-mix (new replicas of some variants while others of the same model go) is started
/// only when it saves at least this share of the model's cost now, $/h over $/h: a move pays
/// the new replicas' start-up and the old ones' stabilization window, so small savings
/// never pay back under a load that keeps moving (`wvo bench --scenario mixed-fleet`).
pub const REMIX_MIN_SAVING: f64 = 0.2;

/// The replicas to plan with instead of `planned` when the plan re-mixes a model whose
/// placed replicas already serve `demand_rps` for a saving below [`REMIX_MIN_SAVING`] of
/// their cost: the plan's scale-ups are not started (each such variant stays at what it
/// has, or its minimum) and its scale-downs stay, or, when cheaper, the placed replicas
/// shrink to the fewest that serve the demand ([`shrink_placed`]); the band judges the
/// scale-downs either way. None when the plan is
/// no such re-mix: it adds nothing, the placed replicas fall short, a variant is frozen or
/// its GPUs are claimed by a higher tier, another model's plan needs the GPUs the re-mix
/// frees (`free_after_plan`: GPUs per type the whole plan leaves free), or the saving is
/// large enough.
fn hold_remix(
    spec: &ModelSpec,
    states: &[VariantState],
    planned: &[VariantPlan],
    price_per_replica: &[f64],
    restorable: &[bool],
    demand_rps: f64,
    free_after_plan: &BTreeMap<&str, u64>,
) -> Option<Vec<u32>> {
    if restorable.iter().any(|r| !r) {
        return None;
    }
    // Keeping the replicas the plan removes must not take GPUs the plan gives others.
    let mut kept_gpus: BTreeMap<&str, u64> = BTreeMap::new();
    for (i, vs) in spec.variants.iter().enumerate() {
        let removed = placed(&states[i]).saturating_sub(planned[i].replicas);
        *kept_gpus.entry(vs.accelerator.as_str()).or_default() +=
            u64::from(removed) * u64::from(vs.gpus_per_replica);
    }
    if kept_gpus
        .iter()
        .any(|(name, &n)| n > free_after_plan.get(name).copied().unwrap_or(0))
    {
        return None;
    }
    let adds = |i: usize| planned[i].replicas > states[i].replicas;
    if !(0..states.len()).any(adds) {
        return None;
    }
    let current: Vec<u32> = states.iter().map(|v| v.replicas).collect();
    if !covers(placed_capacity_rps(states, planned, &current), demand_rps) {
        return None;
    }
    let cost_now = cost_per_hour(states.iter().map(placed), price_per_replica);
    let cost_planned = cost_per_hour(planned.iter().map(|p| p.replicas), price_per_replica);
    if cost_now - cost_planned >= REMIX_MIN_SAVING * cost_now {
        return None;
    }
    // The plan's own scale-downs, with the variants it adds to left as they are...
    let plan_downs: Vec<u32> = (0..states.len())
        .map(|i| {
            if adds(i) {
                states[i].replicas.max(spec.variants[i].min_replicas)
            } else {
                planned[i].replicas
            }
        })
        .collect();
    // ...or the cheapest scale-down of the placed replicas that still serves the demand,
    // when that costs less (the plan may drop a replica of one variant the re-mix would
    // replace, where the placed mix can drop one of another).
    let shrunk = shrink_placed(spec, states, planned, price_per_replica, demand_rps);
    let cost = |r: &[u32]| cost_per_hour(r.iter().copied(), price_per_replica);
    let plan_downs_cover = covers(
        placed_capacity_rps(states, planned, &plan_downs),
        demand_rps,
    );
    Some(if plan_downs_cover && cost(&plan_downs) <= cost(&shrunk) {
        plan_downs
    } else {
        shrunk
    })
}

/// The placed replicas of a model less as many as can go while the rest serve
/// `demand_rps` (req/s): one at a time, the dearest replica whose removal still serves it
/// (ties: the dearest per req/s), never below a variant's or the model's minimum. Adds
/// nothing: a variant with Pending replicas keeps its placed ones at most.
fn shrink_placed(
    spec: &ModelSpec,
    states: &[VariantState],
    planned: &[VariantPlan],
    price_per_replica: &[f64],
    demand_rps: f64,
) -> Vec<u32> {
    let mut replicas: Vec<u32> = states
        .iter()
        .zip(&spec.variants)
        .map(|(v, vs)| placed(v).max(vs.min_replicas.min(v.replicas)))
        .collect();
    let mut capacity = placed_capacity_rps(states, planned, &replicas);
    let mut total: u32 = replicas.iter().sum();
    loop {
        let removable = (0..replicas.len()).filter(|&i| {
            replicas[i] > spec.variants[i].min_replicas
                && total > spec.min_replicas
                && covers(capacity - planned[i].capacity_rps, demand_rps)
        });
        let per_rps = |i: usize| price_per_replica[i] / planned[i].capacity_rps.max(1e-9);
        let Some(i) = removable.max_by(|&a, &b| {
            price_per_replica[a]
                .total_cmp(&price_per_replica[b])
                .then(per_rps(a).total_cmp(&per_rps(b)))
        }) else {
            return replicas;
        };
        replicas[i] -= 1;
        total -= 1;
        capacity -= planned[i].capacity_rps;
    }
}

/// Cost of `replicas` per variant at `price_per_replica` ($/h each), $/h.
fn cost_per_hour(replicas: impl Iterator<Item = u32>, price_per_replica: &[f64]) -> f64 {
    replicas
        .zip(price_per_replica)
        .map(|(n, price)| f64::from(n) * price)
        .sum()
}

/// True when `capacity_rps` serves `required_rps`, up to rounding.
fn covers(capacity_rps: f64, required_rps: f64) -> bool {
    capacity_rps >= required_rps * (1.0 - 1e-9)
}

/// One model's scale-down hysteresis band.
struct Band {
    /// Per variant, the replicas to recommend to the stabilizer: the plan's, raised (never
    /// above what is placed now, nor above the variant's or the model's max) so that a
    /// scale-down leaves enough capacity for `required_rps`.
    recommended: Vec<u32>,
    /// Capacity the plan's scale-down would leave placed, req/s.
    plan_capacity_rps: f64,
    /// `arrival * (1 + headroom + margin)`, req/s.
    required_rps: f64,
}

/// The band of one model: when the plan removes placed replicas and what would be left serves
/// less than `required_rps`, keeps some of them, one at a time (first of the variants the
/// plan keeps; the cheapest replica that closes the gap alone, else the cheapest per req/s),
/// until it does or every removed replica is kept. Variants with `restorable[i] == false`
/// (frozen, or a GPU type another model waits for) get the plan as it is. Scale-ups are
/// untouched. `price_per_replica` is in $/h, `required_rps` in req/s.
fn scale_down_band(
    spec: &ModelSpec,
    states: &[VariantState],
    planned: &[VariantPlan],
    price_per_replica: &[f64],
    restorable: &[bool],
    required_rps: f64,
) -> Band {
    let mut recommended: Vec<u32> = planned.iter().map(|p| p.replicas).collect();
    let plan_capacity_rps = placed_capacity_rps(states, planned, &recommended);
    let removes = |i: usize, recommended: &[u32]| recommended[i] < placed(&states[i]);
    let band = |recommended| Band {
        recommended,
        plan_capacity_rps,
        required_rps,
    };
    if covers(plan_capacity_rps, required_rps)
        || !(0..states.len()).any(|i| restorable[i] && removes(i, &recommended))
    {
        return band(recommended);
    }
    // Each variant may keep up to what is placed now, within its own max and the model's.
    let ceiling: Vec<u32> = (0..states.len())
        .map(|i| {
            if restorable[i] && planned[i].capacity_rps > 0.0 {
                placed(&states[i]).min(spec.variants[i].max_replicas.unwrap_or(u32::MAX))
            } else {
                recommended[i]
            }
        })
        .collect();
    let planned_total: u64 = recommended.iter().map(|&r| u64::from(r)).sum();
    let mut model_room = spec
        .max_replicas
        .map_or(u64::MAX, |max| u64::from(max).saturating_sub(planned_total));
    let mut capacity = plan_capacity_rps;
    // One replica at a time, from the variants the plan keeps if they have any to keep (a
    // variant the plan gives up is kept last): the cheapest replica that closes the gap
    // alone, else the cheapest per req/s (ties: the VA's order).
    let price_per_rps = |i: usize| price_per_replica[i] / planned[i].capacity_rps;
    while !covers(capacity, required_rps) && model_room > 0 {
        let gap = required_rps - capacity;
        let open = |i: &usize| recommended[*i] < ceiling[*i];
        let kept: Vec<usize> = (0..states.len())
            .filter(|i| open(i) && planned[*i].replicas > 0)
            .collect();
        let candidates = if kept.is_empty() {
            (0..states.len()).filter(open).collect()
        } else {
            kept
        };
        let closing = candidates
            .iter()
            .copied()
            .filter(|&i| covers(planned[i].capacity_rps, gap))
            .min_by(|&a, &b| price_per_replica[a].total_cmp(&price_per_replica[b]));
        let Some(i) = closing.or_else(|| {
            candidates
                .iter()
                .copied()
                .min_by(|&a, &b| price_per_rps(a).total_cmp(&price_per_rps(b)))
        }) else {
            break;
        };
        recommended[i] += 1;
        model_room -= 1;
        capacity += planned[i].capacity_rps;
    }
    band(recommended)
}

/// The demand to plan `m` for this cycle: its observed `load` and signals through its
/// `wvo_demand` state (created on first sight).
fn estimate_demand(
    now: f64,
    m: &ModelState,
    load: &ModelLoad,
    waiting: f64,
    opts: &DemandOptions,
    state: &mut CycleState,
) -> wvo_demand::Demand {
    let mut ready_capacity = Some(0.0);
    let mut ready_replicas = 0u32;
    for (vs, v) in m.spec.variants.iter().zip(&m.variants) {
        let key: VariantKey = (m.namespace.clone(), m.name.clone(), vs.name.clone());
        ready_replicas = ready_replicas.saturating_add(v.ready);
        ready_capacity = match (ready_capacity, state.capacity.get(&key)) {
            (Some(total), Some(c)) => Some(total + c * f64::from(v.ready)),
            (Some(total), None) if v.ready == 0 => Some(total),
            _ => None,
        };
    }
    let startup = opts.startup_seconds(m.demand.startup_seconds);
    let settings = wvo_demand::Settings {
        horizon_seconds: startup + opts.cycle_seconds,
        lag_seconds: opts.window_seconds / 2.0 + opts.scrape_age_seconds,
        window_seconds: opts.window_seconds,
        fall_seconds: opts.fall_seconds,
        ttft_seconds: m.spec.slo.map_or(1.0, |s| s.ttft_ms / 1000.0),
        backlog_cap: opts.backlog_cap,
        ready_capacity_rps: ready_capacity,
        ready_replicas,
        stabilization_seconds: m.stabilization_seconds,
        forecast: wvo_demand::ForecastSettings {
            enabled: !m.demand.forecast_off,
            period_seconds: m.demand.forecast_period_seconds,
            // After a predicted peak, a scale-down waits one cycle.
            quick_scale_down_seconds: opts.cycle_seconds,
            ..wvo_demand::ForecastSettings::default()
        },
    };
    state
        .demand
        .entry((m.namespace.clone(), m.name.clone()))
        .or_default()
        .update(
            &wvo_demand::Observation {
                at_seconds: now,
                arrival_rps: load.arrival_rate,
                waiting: (m.demand.waiting.is_some() || m.demand.wake.is_some()).then_some(waiting),
                kv_usage: m.demand.kv_usage,
            },
            &settings,
        )
}

/// The growth of a model's wake signal (the gateway's queue) over the collector's rate window,
/// req/s: recorded each cycle, taken between now and the newest reading at least a window
/// old (or the oldest one, when it is at least half a window old); None until then. With
/// `nothing_placed` nothing drains the queue, so its growth since the previous cycle is the
/// arrival rate itself, and the higher of the two is taken (a burst from zero is seen in the
/// cycle after it starts, not a window later).
fn gateway_queue_growth(
    state: &mut CycleState,
    key: &(String, String),
    now: f64,
    wake: f64,
    nothing_placed: bool,
    opts: &DemandOptions,
) -> Option<f64> {
    let window = opts.window_seconds.max(opts.cycle_seconds).max(1e-3);
    let readings = state.wake_history.entry(key.clone()).or_default();
    // A clock that went back (a restored state) starts the readings over.
    if readings.back().is_some_and(|&(t, _)| t > now) {
        readings.clear();
    }
    readings.push_back((now, wake.max(0.0)));
    // Keep the newest reading at least a window old, and everything after it.
    while readings.len() > 2 && readings[1].0 <= now - window {
        readings.pop_front();
    }
    let recent = match readings.len() {
        n if nothing_placed && n >= 2 => {
            let (then, before) = readings[n - 2];
            (now > then).then(|| (wake.max(0.0) - before) / (now - then))
        }
        _ => None,
    };
    let &(then, before) = readings.front()?;
    let span = now - then;
    let windowed = (span >= window / 2.0).then(|| (wake.max(0.0) - before) / span);
    match (windowed, recent) {
        (Some(w), Some(r)) => Some(w.max(r)),
        (w, r) => w.or(r),
    }
}

/// The variant a model with nothing placed and requests waiting is woken on.
#[derive(Clone, Copy, Debug, Default)]
struct Woken {
    /// Index of the variant in the model.
    variant: usize,
    /// Its start-up, s.
    startup_seconds: f64,
    /// Requests waiting for the model, requests.
    waiting: f64,
}

/// Start-up of a new replica of variant `v` of model `m`, s: learned for the variant, else
/// the model's (the VA's setting or its slowest learned variant), else the default.
fn variant_startup_seconds(snapshot: &Snapshot, m: &ModelState, v: &VariantState) -> f64 {
    let known = v.startup_seconds.or(m.demand.startup_seconds);
    snapshot.demand.map_or_else(
        || known.unwrap_or(DEFAULT_STARTUP_SECONDS),
        |o| o.startup_seconds(known),
    )
}

/// Keeps the desired replicas of every GPU type within its inventory. The plan fits, but a
/// scale-down may be held after it (stabilization window, make-before-break, a frozen
/// workload) while a scale-up the plan placed on the GPUs it gives up is written at once:
/// the new Pods would wait Pending for GPUs still in use (and read as missing supply next
/// cycle). Such scale-ups are held back, lowest priority first (then the later model and
/// variant), never below the replicas there now or a variant's or model's minimum, until each
/// type fits; they go ahead in the cycle the held replicas go. When replicas already placed
/// exceed a type's count (the inventory shrank), nothing is taken away here.
fn fit_scale_ups_to_inventory(snapshot: &Snapshot, models: &mut [ModelDecision]) {
    for acc in &snapshot.inventory {
        let gpus_of = |mi: usize, vi: usize| -> u64 {
            u64::from(
                snapshot.models[mi]
                    .spec
                    .variants
                    .get(vi)
                    .map_or(1, |v| v.gpus_per_replica),
            )
        };
        let desired_gpus = |models: &[ModelDecision]| -> u64 {
            models
                .iter()
                .enumerate()
                .flat_map(|(mi, m)| {
                    m.variants
                        .iter()
                        .enumerate()
                        .filter(|(_, d)| d.accelerator == acc.name)
                        .map(move |(vi, d)| (mi, vi, d.desired))
                })
                .map(|(mi, vi, desired)| u64::from(desired) * gpus_of(mi, vi))
                .sum()
        };
        let wanted = desired_gpus(models);
        let count = u64::from(acc.count);
        if wanted <= count {
            continue;
        }
        // Scale-ups on this type, the first to hold back first.
        let mut candidates: Vec<(i32, usize, usize)> = Vec::new();
        for (mi, m) in models.iter().enumerate() {
            for (vi, d) in m.variants.iter().enumerate() {
                if d.accelerator == acc.name && d.may_actuate && d.desired > d.current {
                    candidates.push((snapshot.models[mi].spec.priority, mi, vi));
                }
            }
        }
        candidates.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(b.2.cmp(&a.2)));
        let mut excess = wanted - count;
        for (_, mi, vi) in candidates {
            if excess == 0 {
                break;
            }
            let spec = &snapshot.models[mi].spec;
            let model_total: u32 = models[mi].variants.iter().map(|d| d.desired).sum();
            let d = &models[mi].variants[vi];
            let variant_floor = spec
                .variants
                .get(vi)
                .map_or(0, |v| v.min_replicas)
                .max(d.current);
            // Replicas this variant can give back without breaking the model's minimum.
            let above_model_min = model_total.saturating_sub(spec.min_replicas);
            let room = d.desired.saturating_sub(variant_floor).min(above_model_min);
            let gpus = gpus_of(mi, vi).max(1);
            let take = u32::try_from(excess.div_ceil(gpus))
                .unwrap_or(u32::MAX)
                .min(room);
            if take == 0 {
                continue;
            }
            let d = &mut models[mi].variants[vi];
            let was = d.desired;
            d.desired -= take;
            d.cost_per_hour = d.price_per_replica * f64::from(d.desired);
            d.reason = format!(
                "{}; scale-up to {was} held at {}: {} GPUs of {} would be desired against {} in the inventory while replicas going away still hold theirs (it goes ahead when they go)",
                d.reason, d.desired, wanted, acc.name, acc.count
            );
            excess = excess.saturating_sub(u64::from(take) * gpus);
        }
    }
}

/// Runs one cycle.
pub fn run_cycle(snapshot: &Snapshot, state: &mut CycleState) -> Result<CycleOutcome, CycleError> {
    // Pending pods are missing supply: cap each type where they wait at what is bound now.
    let mut inventory = snapshot.inventory.clone();
    let mut inventory_notes = Vec::new();
    for acc in &mut inventory {
        let mut pending = 0u64;
        let mut bound = 0u64;
        // GPUs per replica of the smallest Pending replica of the type.
        let mut smallest_pending: Option<u64> = None;
        for m in &snapshot.models {
            for (spec, v) in m.spec.variants.iter().zip(&m.variants) {
                if spec.accelerator == acc.name {
                    let gpus = u64::from(spec.gpus_per_replica);
                    pending += u64::from(v.pending_unschedulable) * gpus;
                    bound += u64::from(placed(v)) * gpus;
                    if v.pending_unschedulable > 0 {
                        smallest_pending = Some(smallest_pending.map_or(gpus, |s| s.min(gpus)));
                    }
                }
            }
        }
        let bound32 = u32::try_from(bound).unwrap_or(u32::MAX);
        // A Pending replica is a shortage of the inventory only when the count says it should
        // have fit next to the bound replicas: then GPUs the count includes are not usable
        // (taken by pods wvo does not plan, or split across nodes). A replica Pending because
        // the bound replicas leave fewer GPUs than it needs (e.g. GPUs another variant gives
        // up after its window) only waits: the count is right and is not lowered.
        let free = u64::from(acc.count).saturating_sub(bound);
        let unexplained = smallest_pending.is_some_and(|k| k <= free);
        if pending > 0 && unexplained {
            inventory_notes.push(format!(
                "{}: {pending} GPUs requested by Pending pods cannot be placed; planning with the {bound} in use instead of {}",
                acc.name, acc.count
            ));
            state.shortages.insert(
                acc.name.clone(),
                Shortage {
                    usable: bound32,
                    count: acc.count,
                    seen_at: snapshot.now_seconds,
                },
            );
            acc.count = bound32;
        } else if let Some(short) = state.shortages.get(&acc.name).copied() {
            let age = snapshot.now_seconds - short.seen_at;
            let memory = shortage_memory_seconds(snapshot, &acc.name);
            if short.count == acc.count && (0.0..memory).contains(&age) {
                // Still short as far as we know: what is placed now is usable, no more.
                let usable = short.usable.max(bound32).min(acc.count);
                if usable < acc.count {
                    inventory_notes.push(format!(
                        "{}: planning with {usable} of {} GPUs: Pending pods found no free GPU {:.0} s ago (retried after {memory:.0} s)",
                        acc.name, acc.count, age
                    ));
                    acc.count = usable;
                }
            } else {
                state.shortages.remove(&acc.name);
            }
        }
    }

    let mut input = PlanInput {
        inventory,
        models: Vec::with_capacity(snapshot.models.len()),
        load: BTreeMap::new(),
        current: BTreeMap::new(),
        options: snapshot.options,
    };
    let mut load_used = Vec::with_capacity(snapshot.models.len());
    let mut demands: Vec<Option<wvo_demand::Demand>> = Vec::with_capacity(snapshot.models.len());
    let mut zero_states: Vec<ZeroState> = Vec::with_capacity(snapshot.models.len());
    // Per model, the variant a model with nothing placed and requests waiting is woken on.
    let mut woken_on: Vec<Option<Woken>> = Vec::with_capacity(snapshot.models.len());
    // GPUs of each type that no placed replica holds (in the usable inventory).
    let mut free_now: BTreeMap<String, u64> = input
        .inventory
        .iter()
        .map(|a| (a.name.clone(), u64::from(a.count)))
        .collect();
    for m in &snapshot.models {
        for (vs, v) in m.spec.variants.iter().zip(&m.variants) {
            if let Some(free) = free_now.get_mut(&vs.accelerator) {
                *free = free.saturating_sub(u64::from(placed(v)) * u64::from(vs.gpus_per_replica));
            }
        }
    }
    for m in &snapshot.models {
        let key = (m.namespace.clone(), m.name.clone());
        let last_known = |state: &CycleState| {
            state
                .last_known_load
                .get(&key)
                .copied()
                .unwrap_or(ModelLoad {
                    // Never observed (e.g. no pod yet): the default token mix, so variants
                    // with a profile still get a capacity and the other models are planned.
                    arrival_rate: 0.0,
                    avg_input_tokens: Some(crate::DEFAULT_TOKENS.0),
                    avg_output_tokens: Some(crate::DEFAULT_TOKENS.1),
                })
        };
        let placed_total: u32 = m.variants.iter().map(placed).sum();
        // A model with no placed replica has no server to observe: with a wake signal read,
        // it is known to have no arrivals but those the wake signal says wait.
        let observed = match (&m.load, m.demand.wake) {
            (Err(_), Some(_)) if placed_total == 0 => Ok(ModelLoad {
                arrival_rate: 0.0,
                ..last_known(state)
            }),
            (load, _) => load.clone(),
        };
        // Requests that arrived but wait at the gateway are in no server's completions or
        // in-flight growth: add the gateway queue's growth over the collector's window (it
        // also cancels the servers' growth when the gateway hands its queue to new replicas).
        let gateway_growth = match (m.demand.wake, snapshot.demand) {
            (Some(wake), Some(opts)) => gateway_queue_growth(
                state,
                &key,
                snapshot.now_seconds,
                wake,
                placed_total == 0,
                &opts,
            ),
            _ => {
                state.wake_history.remove(&key);
                None
            }
        };
        let observed = observed.map(|load| ModelLoad {
            arrival_rate: (load.arrival_rate + gateway_growth.unwrap_or(0.0)).max(0.0),
            ..load
        });
        let hold = observed.is_err();
        // Requests waiting for the model: in its servers' and the gateway's queues (`waiting`)
        // or where the wake signal reads them (which may count the gateway's queue too).
        let waiting_now = m
            .demand
            .waiting
            .unwrap_or(0.0)
            .max(m.demand.wake.unwrap_or(0.0))
            .max(0.0);
        let active = match &observed {
            Ok(load) => {
                load.arrival_rate > IDLE_RPS
                    || waiting_now > 0.0
                    || m.demand.running.is_some_and(|r| r > 0.0)
            }
            // Unknown: it cannot be shown idle.
            Err(_) => true,
        };
        let last_active = state
            .last_active
            .entry(key.clone())
            .or_insert(snapshot.now_seconds);
        if active {
            *last_active = snapshot.now_seconds;
        }
        let idle_for_seconds = (snapshot.now_seconds - *last_active).max(0.0);
        let zero = match (m.demand.scale_to_zero_idle_seconds, m.demand.wake) {
            (None, _) => ZeroState::KeepsOne,
            (Some(_), None) => ZeroState::NoWakeSignal,
            (Some(idle), Some(_)) if idle_for_seconds >= idle => {
                ZeroState::Idle { idle_for_seconds }
            }
            (Some(_), Some(_)) => ZeroState::Active { idle_for_seconds },
        };
        let idle = matches!(zero, ZeroState::Idle { .. });
        let load = match &observed {
            Ok(load) => {
                state.last_known_load.insert(key.clone(), *load);
                let demand = snapshot.demand.map(|opts| {
                    estimate_demand(snapshot.now_seconds, m, load, waiting_now, &opts, state)
                });
                let rate = match &demand {
                    // Idle: only a forecast return over the start-up horizon keeps (or wakes)
                    // a replica.
                    Some(d) if idle => match d.forecast {
                        wvo_demand::ForecastStatus::Active { forecast_rps, .. }
                            if forecast_rps > IDLE_RPS =>
                        {
                            forecast_rps
                        }
                        _ => 0.0,
                    },
                    None if idle => 0.0,
                    Some(d) => d.plan_rps.max(KEEP_WARM_RPS),
                    None => load.arrival_rate.max(KEEP_WARM_RPS),
                };
                demands.push(demand);
                ModelLoad {
                    arrival_rate: rate,
                    ..*load
                }
            }
            Err(_) => {
                demands.push(None);
                let load = last_known(state);
                ModelLoad {
                    arrival_rate: load.arrival_rate.max(KEEP_WARM_RPS),
                    ..load
                }
            }
        };
        zero_states.push(zero);
        let mut spec = m.spec.clone();
        spec.name = plan_name(m);
        // Nothing placed and requests wait: one replica on the variant that starts fastest
        // (then the cheapest) of those that fit GPUs free now, whatever the plan adds.
        let woken = (placed_total == 0 && waiting_now > 0.0 && spec.max_replicas != Some(0))
            .then(|| {
                let startup = |v: &VariantState| variant_startup_seconds(snapshot, m, v);
                let price = |vs: &VariantSpec| {
                    input
                        .inventory
                        .iter()
                        .find(|a| a.name == vs.accelerator)
                        .map_or(f64::INFINITY, |a| {
                            a.cost_per_hour * f64::from(vs.gpus_per_replica)
                        })
                };
                spec.variants
                    .iter()
                    .zip(&m.variants)
                    .enumerate()
                    .filter(|(_, (vs, v))| {
                        v.frozen.is_none()
                            && vs.max_replicas != Some(0)
                            && free_now.get(&vs.accelerator).copied().unwrap_or(0)
                                >= u64::from(vs.gpus_per_replica.max(1))
                    })
                    .min_by(|(_, (a, va)), (_, (b, vb))| {
                        startup(va)
                            .total_cmp(&startup(vb))
                            .then(price(a).total_cmp(&price(b)))
                    })
                    .map(|(variant, (_, v))| Woken {
                        variant,
                        startup_seconds: startup(v),
                        waiting: waiting_now,
                    })
            })
            .flatten();
        if let Some(Woken { variant: vi, .. }) = woken {
            let vs = &mut spec.variants[vi];
            vs.min_replicas = vs.min_replicas.max(1);
            if let Some(free) = free_now.get_mut(&vs.accelerator) {
                *free = free.saturating_sub(u64::from(vs.gpus_per_replica.max(1)));
            }
        }
        woken_on.push(woken);
        // A model that may go to zero and whose placed replicas serve its demand starts no
        // new replica (no move to a cheaper variant while it winds down: the new replica
        // would cost a start-up for the few minutes until the model idles to zero).
        if matches!(zero, ZeroState::Active { .. }) && !hold && placed_total > 0 {
            let placed_rps: Option<f64> = m
                .spec
                .variants
                .iter()
                .zip(&m.variants)
                .map(|(vs, v)| {
                    let key: VariantKey = (m.namespace.clone(), m.name.clone(), vs.name.clone());
                    state
                        .capacity
                        .get(&key)
                        .map(|c| c * f64::from(placed(v)))
                        .or((placed(v) == 0).then_some(0.0))
                })
                .sum();
            let needed = load.arrival_rate * (1.0 + snapshot.options.headroom.max(0.0));
            if placed_rps.is_some_and(|c| c >= needed) {
                for (vs, v) in spec.variants.iter_mut().zip(&m.variants) {
                    let cap = placed(v).max(vs.min_replicas);
                    vs.max_replicas = Some(vs.max_replicas.map_or(cap, |max| max.min(cap)));
                }
            }
        }
        let mut current = BTreeMap::new();
        for (vs, v) in spec.variants.iter_mut().zip(&m.variants) {
            let serving = placed(v);
            current.insert(vs.name.clone(), serving);
            if v.frozen.is_some() {
                // Not ours to change: plan around it as it is.
                vs.min_replicas = serving;
                vs.max_replicas = Some(serving);
            } else if hold {
                // Unknown metrics: never below what serves now.
                let floor = serving.min(vs.max_replicas.unwrap_or(u32::MAX));
                vs.min_replicas = vs.min_replicas.max(floor);
            }
        }
        // Model-wide bounds stay consistent with the per-variant floors set above.
        let floors: u32 = spec.variants.iter().map(|v| v.min_replicas).sum();
        if let Some(max) = spec.max_replicas {
            spec.max_replicas = Some(max.max(floors));
        }
        input.current.insert(spec.name.clone(), current);
        input.load.insert(spec.name.clone(), load);
        input.models.push(spec);
        load_used.push(load);
    }

    // Minimums that cannot all be placed do not stop everyone's plan: the lowest tier's (then
    // the last model's) are lowered to what it has placed, one model at a time, until the
    // plan fits; that model is planned at what fits and says so.
    let mut floors_lowered: Vec<Option<String>> = vec![None; snapshot.models.len()];
    // A variant whose minimum alone exceeds its accelerator's inventory (valid per the CRD,
    // which cannot know the inventory) is planned with at most what the inventory holds.
    let mut clamped: Vec<Option<String>> = vec![None; snapshot.models.len()];
    for (mi, spec) in input.models.iter_mut().enumerate() {
        let mut lowered = Vec::new();
        for (vi, vs) in spec.variants.iter_mut().enumerate() {
            let Some(count) = input
                .inventory
                .iter()
                .find(|a| a.name == vs.accelerator)
                .map(|a| a.count)
            else {
                continue;
            };
            let most = count / vs.gpus_per_replica.max(1);
            if vs.min_replicas > most {
                lowered.push(format!(
                    "spec.variants[{vi}].minReplicas {} needs {} {} GPUs but the inventory has {count}: planned with at most {most}",
                    vs.min_replicas,
                    u64::from(vs.min_replicas) * u64::from(vs.gpus_per_replica),
                    vs.accelerator,
                ));
                vs.min_replicas = most;
            }
        }
        if !lowered.is_empty() {
            lower_model_floor(spec);
            if let Some(slot) = clamped.get_mut(mi) {
                *slot = Some(lowered.join("; "));
            }
        }
    }
    let plan = loop {
        match wvo_optimizer::plan(&input) {
            Err(wvo_optimizer::PlanError::FloorsExceedInventory { detail }) => {
                let next =
                    snapshot
                        .models
                        .iter()
                        .enumerate()
                        .filter(|(mi, _)| floors_lowered[*mi].is_none())
                        .filter(|(mi, m)| {
                            let spec = &input.models[*mi];
                            spec.min_replicas > 0
                                || spec.variants.iter().zip(&m.variants).any(|(vs, v)| {
                                    v.frozen.is_none() && vs.min_replicas > placed(v)
                                })
                        })
                        .min_by_key(|(mi, m)| (m.spec.priority, std::cmp::Reverse(*mi)))
                        .map(|(mi, _)| mi);
                let Some(mi) = next else {
                    return Err(CycleError::Plan(
                        wvo_optimizer::PlanError::FloorsExceedInventory { detail },
                    ));
                };
                let m = &snapshot.models[mi];
                let spec = &mut input.models[mi];
                for (vs, v) in spec.variants.iter_mut().zip(&m.variants) {
                    if v.frozen.is_none() {
                        vs.min_replicas = vs.min_replicas.min(placed(v));
                    }
                }
                lower_model_floor(spec);
                floors_lowered[mi] = Some(format!(
                    "the minimums of the models do not all fit the inventory ({detail}): this model (priority {}) is planned at what fits, its minimums lowered to the replicas it has placed",
                    m.spec.priority
                ));
            }
            other => break other?,
        }
    };
    for (lowered, clamp) in floors_lowered.iter_mut().zip(clamped) {
        *lowered = match (lowered.take(), clamp) {
            (Some(l), Some(c)) => Some(format!("{c}; {l}")),
            (l, c) => l.or(c),
        };
    }
    let Reclaim {
        claim: reclaim,
        evict,
        surplus,
        bridge,
    } = reclaiming_tiers(snapshot, &input.inventory, &plan);
    {
        let mut offset = 0;
        for m in &snapshot.models {
            for (vs, planned) in m.spec.variants.iter().zip(&plan.variants[offset..]) {
                let key: VariantKey = (m.namespace.clone(), m.name.clone(), vs.name.clone());
                state.capacity.insert(key, planned.capacity_rps);
            }
            offset += m.variants.len();
        }
    }

    let margin = if snapshot.scale_down_margin.is_finite() {
        snapshot.scale_down_margin.max(0.0)
    } else {
        0.0
    };
    // GPUs of each type the plan leaves free (what a held re-mix may keep using).
    let free_after_plan: BTreeMap<&str, u64> = plan
        .accelerators
        .iter()
        .map(|a| {
            (
                a.name.as_str(),
                u64::from(a.available).saturating_sub(u64::from(a.used)),
            )
        })
        .collect();
    let mut keep = BTreeSet::new();
    let mut models = Vec::with_capacity(snapshot.models.len());
    let mut offset = 0;
    for (mi, m) in snapshot.models.iter().enumerate() {
        let hold = m.load.is_err();
        let planned_variants = &plan.variants[offset..offset + m.variants.len()];
        let prices: Vec<f64> = m
            .spec
            .variants
            .iter()
            .zip(planned_variants)
            .map(|(vs, planned)| {
                if planned.replicas > 0 {
                    planned.cost_per_hour / f64::from(planned.replicas)
                } else {
                    input
                        .inventory
                        .iter()
                        .find(|a| a.name == vs.accelerator)
                        .map_or(0.0, |a| a.cost_per_hour * f64::from(vs.gpus_per_replica))
                }
            })
            .collect();
        // The band keeps no GPUs a higher tier claims: such a type is left to the plan (and
        // to the reclaim below).
        let restorable: Vec<bool> = m
            .spec
            .variants
            .iter()
            .zip(&m.variants)
            .map(|(vs, v)| v.frozen.is_none() && !reclaim.contains_key(vs.accelerator.as_str()))
            .collect();
        // A re-mix the placed replicas do not need is not started (with the band on): see
        // [`hold_remix`].
        let remix = (!hold && margin > 0.0)
            .then(|| {
                hold_remix(
                    &input.models[mi],
                    &m.variants,
                    planned_variants,
                    &prices,
                    &restorable,
                    plan.models[mi].demand_rps,
                    &free_after_plan,
                )
            })
            .flatten();
        let guarded: std::borrow::Cow<'_, [VariantPlan]> = match &remix {
            Some(held) => planned_variants
                .iter()
                .zip(held)
                .map(|(p, &r)| VariantPlan {
                    replicas: r,
                    ..p.clone()
                })
                .collect(),
            None => std::borrow::Cow::Borrowed(planned_variants),
        };
        let band = (!hold && margin > 0.0).then(|| {
            scale_down_band(
                &input.models[mi],
                &m.variants,
                &guarded,
                &prices,
                &restorable,
                load_used[mi].arrival_rate * (1.0 + snapshot.options.headroom + margin),
            )
        });
        let mut variants = Vec::with_capacity(m.variants.len());
        let mut reclaimed = Vec::with_capacity(m.variants.len());
        let idle_for = match zero_states[mi] {
            ZeroState::Idle { idle_for_seconds } => Some(idle_for_seconds),
            _ => None,
        };
        for (vi, (vs, v)) in m.spec.variants.iter().zip(&m.variants).enumerate() {
            let planned = &planned_variants[vi];
            let key: VariantKey = (m.namespace.clone(), m.name.clone(), vs.name.clone());
            keep.insert(key.clone());
            // A strictly higher tier waits for GPUs of this type: give them up now.
            let reclaimed_by = reclaim.get(vs.accelerator.as_str()).copied().filter(|&p| {
                p > m.spec.priority
                    && planned.replicas < v.replicas
                    && evict.contains(vs.accelerator.as_str())
            });
            // Another model waits for GPUs of this type and this one holds replicas its
            // demand does not need: they go without the window (make-before-break still
            // applies).
            let released = reclaimed_by.is_none()
                && planned.replicas < v.replicas
                && surplus.get(mi).copied().unwrap_or(false)
                && reclaim.contains_key(vs.accelerator.as_str());
            let banded = band
                .as_ref()
                .map_or(guarded[vi].replicas, |b| b.recommended[vi]);
            let bridged = bridge.get(&(mi, vi)).copied().filter(|&b| b > banded);
            let recommended = bridged.unwrap_or(banded);
            let (desired, reason, may_actuate) = match &v.frozen {
                Some(why) => (v.replicas, format!("not actuated: {why}"), false),
                None => {
                    let s = state.stabilizer.stabilize(
                        &key,
                        Step {
                            now: snapshot.now_seconds,
                            recommended,
                            current: v.replicas,
                            pending: v.pending_unschedulable,
                            // An idle model has waited its idle time already.
                            window_seconds: if reclaimed_by.is_some()
                                || released
                                || idle_for.is_some()
                            {
                                0.0
                            } else {
                                demands[mi]
                                    .as_ref()
                                    .and_then(|d| d.scale_down_window_seconds)
                                    .map_or(m.stabilization_seconds, |w| {
                                        w.min(m.stabilization_seconds)
                                    })
                            },
                            hold,
                        },
                    );
                    let reason = match (reclaimed_by, &band) {
                        _ if remix.is_some() && guarded[vi].replicas < planned.replicas => {
                            let why = format!(
                                "the plan's {} is part of a re-mix that saves less than {:.0}% of the model's cost while the replicas placed now serve its {:.2} req/s",
                                planned.replicas,
                                REMIX_MIN_SAVING * 100.0,
                                plan.models[mi].demand_rps
                            );
                            if s.desired < v.replicas {
                                format!("{}; not {why}", s.reason)
                            } else {
                                format!("hold at {}: {why}", s.desired)
                            }
                        }
                        (Some(p), _) if s.desired < v.replicas => format!(
                            "{}; now, without the stabilization window: priority {p} waits for {} GPUs",
                            s.reason, vs.accelerator
                        ),
                        _ if released && s.desired < v.replicas => format!(
                            "{}; now, without the stabilization window: another model waits for {} GPUs and this model's placed replicas serve its {:.2} req/s without these",
                            s.reason, vs.accelerator, plan.models[mi].demand_rps
                        ),
                        _ if woken_on[mi].is_some_and(|w| w.variant == vi)
                            && s.desired > v.replicas =>
                        {
                            let w = woken_on[mi].unwrap_or_default();
                            format!(
                                "{}; woken: {:.0} requests wait for this model and none of its replicas is placed; this variant starts fastest ({:.0} s) of those that fit free GPUs",
                                s.reason, w.waiting, w.startup_seconds
                            )
                        }
                        _ if s.desired < v.replicas && idle_for.is_some() => {
                            let wait = variant_startup_seconds(snapshot, m, v)
                                + snapshot.demand.unwrap_or_default().cycle_seconds;
                            // What a cold start would cost if the load came back as it last
                            // was: the highest rate of the last day, held for the wait.
                            let peak = state
                                .demand
                                .get(&(m.namespace.clone(), m.name.clone()))
                                .and_then(|d| {
                                    d.history()
                                        .max_between(snapshot.now_seconds - 86_400.0, snapshot.now_seconds)
                                })
                                .filter(|p| p.is_finite() && *p > IDLE_RPS);
                            let cold = peak.map_or(String::new(), |p| {
                                format!(
                                    " (a return at its last day's peak of {p:.2} req/s would hold about {:.0} requests that long)",
                                    p * wait
                                )
                            });
                            format!(
                                "{}; idle for {:.0} s (no arrivals, no waiting request, no wake signal; scaleToZero.idleSeconds {:.0}): staying warm would cost {:.2} $/h per replica, and a request arriving at zero waits about {wait:.0} s (start-up + one cycle) at the gateway{cold}",
                                s.reason,
                                idle_for.unwrap_or(0.0),
                                m.demand.scale_to_zero_idle_seconds.unwrap_or(0.0),
                                prices[vi],
                            )
                        }
                        _ if bridged.is_some() && s.desired > planned.replicas => format!(
                            "{} (plan {}): serves now on free {} GPUs what the plan's new replicas of this model wait for on a type whose GPUs are still in use",
                            s.reason, planned.replicas, vs.accelerator
                        ),
                        (_, Some(b)) if recommended > planned.replicas => {
                            let why = format!(
                                "the plan's {} would leave {:.2} req/s, below the scale-down band of {:.2} req/s ({:.2} req/s x (1 + {} headroom + {margin} margin))",
                                planned.replicas,
                                b.plan_capacity_rps,
                                b.required_rps,
                                load_used[mi].arrival_rate,
                                snapshot.options.headroom
                            );
                            if recommended >= v.replicas {
                                format!("hold at {}: {why}", v.replicas)
                            } else {
                                format!("{}; keeps {recommended}: {why}", s.reason)
                            }
                        }
                        _ => s.reason,
                    };
                    (s.desired, reason, true)
                }
            };
            reclaimed.push(reclaimed_by.is_some());
            variants.push(VariantDecision {
                name: vs.name.clone(),
                accelerator: vs.accelerator.clone(),
                current: v.replicas,
                ready: v.ready,
                pending: v.pending_unschedulable,
                planned: planned.replicas,
                desired,
                capacity_rps: planned.capacity_rps,
                cost_per_hour: 0.0,
                price_per_replica: prices[vi],
                reason,
                may_actuate,
                frozen: v.frozen.clone(),
            });
        }
        offset += m.variants.len();
        let model_plan = &plan.models[mi];
        // Make before break: ready replicas that remain must absorb the demand before any
        // ready replica goes.
        if !hold {
            let demand = model_plan.demand_rps;
            let remaining: f64 = variants
                .iter()
                .map(|d| d.capacity_rps * f64::from(d.desired.min(d.ready)))
                .sum();
            let now_serving: f64 = variants
                .iter()
                .map(|d| d.capacity_rps * f64::from(d.ready))
                .sum();
            let drops_ready = variants.iter().any(|d| d.desired < d.ready);
            if drops_ready && remaining < demand && remaining < now_serving {
                for (d, &reclaimed) in variants.iter_mut().zip(&reclaimed) {
                    let keep_ready = d.ready.min(d.current);
                    if d.may_actuate && d.desired < keep_ready && !reclaimed {
                        d.reason = format!(
                            "scale-down to {} held: the ready replicas left ({remaining:.2} req/s) would not absorb {demand:.2} req/s until new replicas are ready",
                            d.desired
                        );
                        d.desired = keep_ready;
                    }
                }
            }
        }
        for d in &mut variants {
            d.cost_per_hour = d.price_per_replica * f64::from(d.desired);
        }
        models.push(ModelDecision {
            namespace: m.namespace.clone(),
            name: m.name.clone(),
            variants,
            load_used: load_used[mi],
            metrics_unknown: m.load.clone().err(),
            demand_rps: model_plan.demand_rps,
            satisfaction: model_plan.satisfaction,
            demand: demands[mi].clone(),
            floors_lowered: floors_lowered[mi].clone(),
            zero: zero_states[mi],
            wake: m.demand.wake,
        });
    }
    fit_scale_ups_to_inventory(snapshot, &mut models);
    state.stabilizer.retain(&keep);
    state.capacity.retain(|k, _| keep.contains(k));
    let models_now: BTreeSet<(String, String)> = snapshot
        .models
        .iter()
        .map(|m| (m.namespace.clone(), m.name.clone()))
        .collect();
    state.demand.retain(|k, _| models_now.contains(k));
    state.last_active.retain(|k, _| models_now.contains(k));
    state.wake_history.retain(|k, _| models_now.contains(k));
    Ok(CycleOutcome {
        plan,
        models,
        inventory_notes,
    })
}
