//! Shared test helpers: tiny instance builders, an independent brute-force reference of the
//! planner's semantics, and invariant checks.
#![allow(dead_code)]

use proptest::prelude::*;
use std::collections::BTreeMap;
use wvo_api::*;
use wvo_optimizer::Problem;

/// A fixed-seed proptest config, so CI runs the same cases every time.
pub fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x005e_ed0f_0a11),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// An accelerator type.
pub fn acc(name: &str, count: u32, cost: f64) -> AcceleratorType {
    AcceleratorType {
        name: name.into(),
        count,
        cost_per_hour: cost,
    }
}

/// A variant with a measured capacity.
pub fn var(name: &str, accelerator: &str, gpus: u32, rps: f64) -> VariantSpec {
    VariantSpec {
        name: name.into(),
        accelerator: accelerator.into(),
        gpus_per_replica: gpus,
        min_replicas: 0,
        max_replicas: None,
        max_requests_per_second: Some(rps),
        profile: None,
    }
}

/// A model with default priority, weight and bounds.
pub fn model(name: &str, variants: Vec<VariantSpec>) -> ModelSpec {
    ModelSpec {
        name: name.into(),
        model_id: None,
        priority: 0,
        weight: 1.0,
        slo: None,
        min_replicas: 0,
        max_replicas: None,
        variants,
    }
}

/// A plan input with the given loads (req/s per model, in model order).
pub fn input(inventory: Vec<AcceleratorType>, models: Vec<ModelSpec>, rates: &[f64]) -> PlanInput {
    let load = models
        .iter()
        .zip(rates)
        .map(|(m, &r)| {
            (
                m.name.clone(),
                ModelLoad {
                    arrival_rate: r,
                    avg_input_tokens: None,
                    avg_output_tokens: None,
                },
            )
        })
        .collect();
    PlanInput {
        inventory,
        models,
        load,
        current: BTreeMap::new(),
        options: PlanOptions::default(),
    }
}

/// Replicas of `plan` per variant, in input order.
pub fn replicas(plan: &PlanOutput) -> Vec<u32> {
    plan.variants.iter().map(|v| v.replicas).collect()
}

/// Random small instances: up to 3 accelerator types, 3 models, 6 variants in all, with
/// bounds, priorities, weights and current replicas. `tie_heavy` makes every GPU cost the
/// same and capacities 2 or 4 req/s, so equal-cost plans abound and the tie-breaks decide.
pub fn small_instance(tie_heavy: bool) -> impl Strategy<Value = PlanInput> {
    let max_cost = if tie_heavy { 1 } else { 3 };
    let accs = prop::collection::vec((0u32..=6, 1u32..=max_cost), 1..=3);
    let capacity = if tie_heavy {
        prop_oneof![Just(2u32), Just(4u32)].boxed()
    } else {
        prop_oneof![Just(2u32), Just(4u32), 1u32..=8].boxed()
    };
    let models = prop::collection::vec(
        (
            prop::collection::vec(
                (
                    0usize..3,
                    1u32..=2,
                    capacity,
                    0u32..=1,
                    prop::option::of(0u32..=4),
                    0u32..=3,
                ),
                1..=2,
            ),
            0u32..=240,
            0i32..=1,
            1u32..=3,
            0u32..=1,
            prop::option::of(1u32..=5),
        ),
        1..=3,
    );
    (accs, models).prop_map(|(accs, models)| {
        let inventory: Vec<AcceleratorType> = accs
            .iter()
            .enumerate()
            .map(|(i, &(count, cost))| acc(&format!("T{i}"), count, f64::from(cost)))
            .collect();
        let mut specs = Vec::new();
        let mut rates = Vec::new();
        let mut current = BTreeMap::new();
        for (mi, (vars, rate, priority, weight, min_total, max_total)) in
            models.into_iter().enumerate()
        {
            let mut variants = Vec::new();
            let mut cur = BTreeMap::new();
            for (vi, (t, gpus, cap, lo, hi, now)) in vars.into_iter().enumerate() {
                let t = t % inventory.len();
                let mut v = var(&format!("v{vi}"), &inventory[t].name, gpus, f64::from(cap));
                v.min_replicas = lo.min(hi.unwrap_or(u32::MAX));
                v.max_replicas = hi;
                variants.push(v);
                cur.insert(format!("v{vi}"), now);
            }
            let sum_lo: u32 = variants.iter().map(|v| v.min_replicas).sum();
            let mut m = model(&format!("m{mi}"), variants);
            m.priority = priority * 100;
            m.weight = f64::from(weight);
            m.max_replicas = max_total.map(|x| x.max(sum_lo));
            let sum_hi: Option<u32> = m.variants.iter().map(|v| v.max_replicas).sum();
            m.min_replicas = min_total.min(sum_hi.unwrap_or(u32::MAX));
            specs.push(m);
            rates.push(f64::from(rate) / 10.0);
            current.insert(format!("m{mi}"), cur);
        }
        let mut input = input(inventory, specs, &rates);
        input.current = current;
        input
    })
}

/// Checks the hard invariants: inventory never exceeded, every min/max respected.
pub fn check_invariants(problem: &Problem, x: &[u32]) -> Result<(), String> {
    for (a, used) in problem.accelerators.iter().zip(problem.usage(x)) {
        if used > u64::from(a.count) {
            return Err(format!("{} uses {used} GPUs of {}", a.name, a.count));
        }
    }
    for (v, &n) in problem.variants.iter().zip(x) {
        if n < v.min_replicas || n > v.max_replicas {
            return Err(format!(
                "variant {} has {n} outside [{}, {}]",
                v.name, v.min_replicas, v.max_replicas
            ));
        }
    }
    for m in &problem.models {
        let total: u32 = x[m.variants.clone()].iter().sum();
        if total < m.min_replicas || total > m.max_replicas {
            return Err(format!(
                "model {} has {total} outside [{}, {}]",
                m.name, m.min_replicas, m.max_replicas
            ));
        }
    }
    Ok(())
}

/// Distinct priorities, highest first.
pub fn tiers(problem: &Problem) -> Vec<i32> {
    let mut t: Vec<i32> = problem.models.iter().map(|m| m.priority).collect();
    t.sort_unstable_by(|a, b| b.cmp(a));
    t.dedup();
    t
}

/// What model `m` can be asked to cover: demand capped by its replica bounds.
pub fn cap_target(problem: &Problem, m: usize) -> f64 {
    problem.models[m]
        .demand
        .min(problem.models[m].max_coverable)
}

/// The max-min level a plan gives a tier: the largest t with
/// `cover_m >= min(1, t*w_m) * capTarget_m` for every member (t_full when all are met).
pub fn tier_level(problem: &Problem, tier: i32, x: &[u32]) -> f64 {
    let members: Vec<usize> = (0..problem.models.len())
        .filter(|&m| problem.models[m].priority == tier)
        .collect();
    let t_full = members
        .iter()
        .map(|&m| 1.0 / problem.models[m].weight)
        .fold(0.0, f64::max);
    members
        .iter()
        .filter(|&&m| problem.coverage(m, x) < cap_target(problem, m) * (1.0 - 1e-7))
        .map(|&m| problem.coverage(m, x) / (problem.models[m].weight * cap_target(problem, m)))
        .fold(t_full, f64::min)
}

/// Total served rate of a tier, req/s.
pub fn tier_served(problem: &Problem, tier: i32, x: &[u32]) -> f64 {
    (0..problem.models.len())
        .filter(|&m| problem.models[m].priority == tier)
        .map(|m| problem.served(m, x))
        .sum()
}

/// The reference answer by enumeration: per tier (highest first) the max-min level and the
/// tier's total served rate, then the minimum cost and the fewest changes. Returns
/// `(cost, changes, levels, served)` or None when the minimums do not fit.
pub fn brute_force(problem: &Problem) -> Option<(f64, u64, Vec<f64>, Vec<f64>)> {
    let n = problem.variants.len();
    let mut candidates = Vec::new();
    let mut x = vec![0u32; n];
    fn rec(problem: &Problem, i: usize, x: &mut Vec<u32>, out: &mut Vec<Vec<u32>>) {
        if i == x.len() {
            let fits = problem
                .usage(x)
                .iter()
                .zip(&problem.accelerators)
                .all(|(&u, a)| u <= u64::from(a.count));
            let bounds = problem.models.iter().all(|m| {
                let t: u32 = x[m.variants.clone()].iter().sum();
                t >= m.min_replicas && t <= m.max_replicas
            });
            if fits && bounds {
                out.push(x.clone());
            }
            return;
        }
        let v = &problem.variants[i];
        for k in v.min_replicas..=v.max_replicas {
            x[i] = k;
            rec(problem, i + 1, x, out);
        }
    }
    rec(problem, 0, &mut x, &mut candidates);
    if candidates.is_empty() {
        return None;
    }
    let mut levels = Vec::new();
    let mut served = Vec::new();
    for tier in tiers(problem) {
        let best = candidates
            .iter()
            .map(|x| tier_level(problem, tier, x))
            .fold(f64::MIN, f64::max);
        candidates.retain(|x| tier_level(problem, tier, x) >= best * (1.0 - 1e-6));
        levels.push(best);
        let best_served = candidates
            .iter()
            .map(|x| tier_served(problem, tier, x))
            .fold(f64::MIN, f64::max);
        candidates
            .retain(|x| tier_served(problem, tier, x) >= best_served - 1e-6 * best_served.max(1.0));
        served.push(best_served);
    }
    let cost = candidates
        .iter()
        .map(|x| problem.cost(x))
        .fold(f64::MAX, f64::min);
    candidates.retain(|x| problem.cost(x) <= cost + 1e-9 * cost.max(1.0));
    let changes = candidates
        .iter()
        .map(|x| problem.changes(x))
        .min()
        .unwrap_or(0);
    Some((cost, changes, levels, served))
}

/// `(model, variant)` pairs where the model is below its cap target with room in its own
/// bounds, and the variant can serve and has room in its bounds.
fn unmet_with_room(problem: &Problem, x: &[u32]) -> Vec<(usize, usize)> {
    let mut pairs = Vec::new();
    for (m, model) in problem.models.iter().enumerate() {
        if problem.coverage(m, x) >= cap_target(problem, m) * (1.0 - 1e-7) {
            continue;
        }
        let count: u32 = x[model.variants.clone()].iter().sum();
        if count >= model.max_replicas {
            continue;
        }
        pairs.extend(model.variants.clone().filter_map(|vi| {
            let v = &problem.variants[vi];
            (v.capacity > 0.0 && x[vi] < v.max_replicas).then_some((m, vi))
        }));
    }
    pairs
}

/// Strict tiers: an unmet model never has a variant (with room in its bounds) whose GPUs are
/// free or held above their floors by lower-priority models on its accelerator type.
pub fn check_tier_order(problem: &Problem, x: &[u32]) -> Result<(), String> {
    let used = problem.usage(x);
    for (m, vi) in unmet_with_room(problem, x) {
        let (model, v) = (&problem.models[m], &problem.variants[vi]);
        let a = v.accelerator;
        let free = u64::from(problem.accelerators[a].count) - used[a];
        let lower: u64 = problem
            .variants
            .iter()
            .zip(x)
            .filter(|(u, _)| {
                u.accelerator == a && problem.models[u.model].priority < model.priority
            })
            .filter(|(u, _)| problem.models[u.model].min_replicas == 0)
            .map(|(u, &n)| u64::from(n - u.min_replicas) * u64::from(u.gpus))
            .sum();
        if free + lower >= u64::from(v.gpus) {
            return Err(format!(
                "model {} (priority {}) is unmet but {free} free + {lower} lower-tier {} GPUs could run its variant {} ({} GPUs)",
                model.name, model.priority, problem.accelerators[a].name, v.name, v.gpus
            ));
        }
    }
    Ok(())
}

/// Work conservation: no model below full satisfaction while a type it can use has room for
/// one more of its replicas (within its bounds).
pub fn check_work_conserving(problem: &Problem, x: &[u32]) -> Result<(), String> {
    let used = problem.usage(x);
    for (m, vi) in unmet_with_room(problem, x) {
        let (model, v) = (&problem.models[m], &problem.variants[vi]);
        let free = u64::from(problem.accelerators[v.accelerator].count) - used[v.accelerator];
        if free >= u64::from(v.gpus) {
            return Err(format!(
                "model {} is at {:.4} of its demand while {free} {} GPUs are free for its variant {} ({} GPUs)",
                model.name,
                problem.coverage(m, x) / model.demand,
                problem.accelerators[v.accelerator].name,
                v.name,
                v.gpus
            ));
        }
    }
    Ok(())
}

/// Solves `problem` with `choice` and no deadline: `(replicas, lower bound, solver)`.
pub fn solved(
    problem: &Problem,
    choice: SolverChoice,
) -> Result<(Vec<u32>, Option<f64>, &'static str), wvo_optimizer::PlanError> {
    let s = wvo_optimizer::solve(problem, choice, &wvo_optimizer::Deadline::none())?;
    Ok((s.x, s.lower_bound, s.solver))
}
