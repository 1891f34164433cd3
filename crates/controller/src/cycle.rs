//! One control cycle as a pure function: `Snapshot` (cluster state + observations) and the
//! state kept between cycles in, decisions out. No I/O, no clock: `now` is an input.
//!
//! ```text
//! Snapshot ─► PlanInput (pending pods shrink the inventory; unknown load holds) ─► optimizer
//!          ─► per variant: stabilizer (scale-up now, scale-down after its window)
//!          ─► per model: make-before-break (ready replicas left must absorb the load)
//! ```

use crate::stabilizer::{Stabilizer, Step, VariantKey};
use std::collections::{BTreeMap, BTreeSet};
use wvo_api::{AcceleratorType, ModelLoad, ModelSpec, PlanInput, PlanOptions, PlanOutput};

/// Observed state of one variant's workload.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VariantState {
    /// Replicas the workload is set to now (its `/scale` spec.replicas).
    pub replicas: u32,
    /// Replicas ready to serve.
    pub ready: u32,
    /// Replicas Pending because no node has a free GPU of their type.
    pub pending_unschedulable: u32,
    /// Why wvo must not change this workload (target missing, driven by another scaler...),
    /// or None when it may.
    pub frozen: Option<String>,
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
}

/// How long a GPU shortage seen through Pending pods is remembered, s. Without the memory
/// the cycle after the Pending pods are removed would plan them again (the type looks free),
/// and the workload would flap between N and N+1 every cycle.
pub const SHORTAGE_MEMORY_SECONDS: f64 = 300.0;

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
}

/// The decision for one variant.
#[derive(Clone, Debug, PartialEq)]
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
    pub price_per_replica: f64,
    /// Why.
    pub reason: String,
    /// False when the workload must not be touched (`frozen`).
    pub may_actuate: bool,
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
/// more replicas of that type than it has placed **and** could not get that capacity from
/// GPUs that are free now on its other variants' types. Lower tiers' scale-downs of that type
/// then skip the stabilization window and make-before-break: strict tiers hold in actuation
/// too, not only in the plan. A higher tier that merely moves to a cheaper type (capacity
/// elsewhere is free) claims nothing: the lower tier's replicas move with make-before-break.
fn reclaiming_tiers<'a>(
    snapshot: &'a Snapshot,
    inventory: &[AcceleratorType],
    plan: &PlanOutput,
) -> BTreeMap<&'a str, i32> {
    let usable = |acc: &str| {
        inventory
            .iter()
            .find(|a| a.name == acc)
            .map_or(0, |a| u64::from(a.count))
    };
    // (model, variant spec, planned, placed, capacity of one replica in req/s)
    let mut rows = Vec::new();
    let mut needed: BTreeMap<&str, u64> = BTreeMap::new();
    let mut offset = 0;
    for m in &snapshot.models {
        for (vi, (vs, v)) in m.spec.variants.iter().zip(&m.variants).enumerate() {
            let planned_variant = plan.variants.get(offset + vi);
            let planned = planned_variant.map_or(0, |p| p.replicas);
            let capacity = planned_variant.map_or(0.0, |p| p.capacity_rps);
            let placed = v.replicas - v.pending_unschedulable.min(v.replicas);
            *needed.entry(vs.accelerator.as_str()).or_default() +=
                u64::from(planned.max(placed)) * u64::from(vs.gpus_per_replica);
            rows.push((m, vs, planned, placed, capacity));
        }
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
    for m in &snapshot.models {
        let own: Vec<_> = rows.iter().filter(|r| std::ptr::eq(r.0, m)).collect();
        let wanted: f64 = own
            .iter()
            .filter(|r| r.2 > r.3 && contended.contains(r.1.accelerator.as_str()))
            .map(|r| f64::from(r.2 - r.3) * r.4)
            .sum();
        if wanted <= 0.0 {
            continue;
        }
        let mut elsewhere = 0.0;
        let mut taken: Vec<(&str, u64)> = Vec::new();
        for r in own
            .iter()
            .filter(|r| !contended.contains(r.1.accelerator.as_str()))
        {
            let acc = r.1.accelerator.as_str();
            let gpus = u64::from(r.1.gpus_per_replica.max(1));
            let free = spare.get(acc).copied().unwrap_or(0);
            let room =
                r.1.max_replicas
                    .map_or(u64::MAX, |max| u64::from(max.saturating_sub(r.2.max(r.3))));
            let more = (free / gpus).min(room);
            let useful = more.min((((wanted - elsewhere) / r.4.max(1e-9)).ceil()) as u64);
            if useful > 0 && r.4 > 0.0 {
                elsewhere += useful as f64 * r.4;
                taken.push((acc, useful * gpus));
            }
            if elsewhere >= wanted {
                break;
            }
        }
        if elsewhere >= wanted {
            for (acc, gpus) in taken {
                if let Some(free) = spare.get_mut(acc) {
                    *free -= gpus;
                }
            }
            continue;
        }
        for r in own
            .iter()
            .filter(|r| r.2 > r.3 && contended.contains(r.1.accelerator.as_str()))
        {
            let e = claim.entry(r.1.accelerator.as_str()).or_insert(i32::MIN);
            *e = (*e).max(m.spec.priority);
        }
    }
    claim
}

/// Runs one cycle.
pub fn run_cycle(snapshot: &Snapshot, state: &mut CycleState) -> Result<CycleOutcome, CycleError> {
    // Pending pods are missing supply: cap each type where they wait at what is bound now.
    let mut inventory = snapshot.inventory.clone();
    let mut inventory_notes = Vec::new();
    for acc in &mut inventory {
        let mut pending = 0u64;
        let mut bound = 0u64;
        for m in &snapshot.models {
            for (spec, v) in m.spec.variants.iter().zip(&m.variants) {
                if spec.accelerator == acc.name {
                    let gpus = u64::from(spec.gpus_per_replica);
                    pending += u64::from(v.pending_unschedulable) * gpus;
                    bound += u64::from(v.replicas - v.pending_unschedulable.min(v.replicas)) * gpus;
                }
            }
        }
        let bound32 = u32::try_from(bound).unwrap_or(u32::MAX);
        if pending > 0 && bound < u64::from(acc.count) {
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
            if short.count == acc.count && (0.0..SHORTAGE_MEMORY_SECONDS).contains(&age) {
                // Still short as far as we know: what is placed now is usable, no more.
                let usable = short.usable.max(bound32).min(acc.count);
                if usable < acc.count {
                    inventory_notes.push(format!(
                        "{}: planning with {usable} of {} GPUs: Pending pods found no free GPU {:.0} s ago (retried after {SHORTAGE_MEMORY_SECONDS:.0} s)",
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
    for m in &snapshot.models {
        let key = (m.namespace.clone(), m.name.clone());
        let hold = m.load.is_err();
        let load = match &m.load {
            Ok(load) => {
                state.last_known_load.insert(key, *load);
                *load
            }
            Err(_) => state
                .last_known_load
                .get(&key)
                .copied()
                .unwrap_or(ModelLoad {
                    // Never observed (e.g. no pod yet): the default token mix, so variants
                    // with a profile still get a capacity and the other models are planned.
                    arrival_rate: 0.0,
                    avg_input_tokens: Some(crate::reconciler::DEFAULT_TOKENS.0),
                    avg_output_tokens: Some(crate::reconciler::DEFAULT_TOKENS.1),
                }),
        };
        let mut spec = m.spec.clone();
        spec.name = plan_name(m);
        let mut current = BTreeMap::new();
        for (vs, v) in spec.variants.iter_mut().zip(&m.variants) {
            let serving = v.replicas - v.pending_unschedulable.min(v.replicas);
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

    let plan = wvo_optimizer::plan(&input)?;
    let reclaim = reclaiming_tiers(snapshot, &input.inventory, &plan);

    let mut keep = BTreeSet::new();
    let mut models = Vec::with_capacity(snapshot.models.len());
    let mut offset = 0;
    for (mi, m) in snapshot.models.iter().enumerate() {
        let hold = m.load.is_err();
        let mut variants = Vec::with_capacity(m.variants.len());
        let mut reclaimed = Vec::with_capacity(m.variants.len());
        for (vi, (vs, v)) in m.spec.variants.iter().zip(&m.variants).enumerate() {
            let planned = &plan.variants[offset + vi];
            let key: VariantKey = (m.namespace.clone(), m.name.clone(), vs.name.clone());
            keep.insert(key.clone());
            // A strictly higher tier waits for GPUs of this type: give them up now.
            let reclaimed_by = reclaim
                .get(vs.accelerator.as_str())
                .copied()
                .filter(|&p| p > m.spec.priority && planned.replicas < v.replicas);
            let (desired, reason, may_actuate) = match &v.frozen {
                Some(why) => (v.replicas, format!("not actuated: {why}"), false),
                None => {
                    let s = state.stabilizer.stabilize(
                        &key,
                        Step {
                            now: snapshot.now_seconds,
                            recommended: planned.replicas,
                            current: v.replicas,
                            pending: v.pending_unschedulable,
                            window_seconds: if reclaimed_by.is_some() {
                                0.0
                            } else {
                                m.stabilization_seconds
                            },
                            hold,
                        },
                    );
                    match reclaimed_by {
                        Some(p) if s.desired < v.replicas => (
                            s.desired,
                            format!(
                                "{}; now, without the stabilization window: priority {p} waits for {} GPUs",
                                s.reason, vs.accelerator
                            ),
                            true,
                        ),
                        _ => (s.desired, s.reason, true),
                    }
                }
            };
            reclaimed.push(reclaimed_by.is_some());
            let price = if planned.replicas > 0 {
                planned.cost_per_hour / f64::from(planned.replicas)
            } else {
                plan.accelerators
                    .iter()
                    .zip(&input.inventory)
                    .find(|(a, _)| a.name == vs.accelerator)
                    .map_or(0.0, |(_, inv)| {
                        inv.cost_per_hour * f64::from(vs.gpus_per_replica)
                    })
            };
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
                price_per_replica: price,
                reason,
                may_actuate,
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
        });
    }
    state.stabilizer.retain(&keep);
    Ok(CycleOutcome {
        plan,
        models,
        inventory_notes,
    })
}
