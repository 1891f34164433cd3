//! Global placement of model variants on a heterogeneous GPU inventory (pure: no I/O, no
//! async, no clock but the solve timer and the plan's [`Deadline`]).
//!
//! ```text
//!  PlanInput ─► Problem (capacities from wvo-perf) ─┬─ exact::solve  (MILP, HiGHS)   small problems
//!                                                   └─ fast::solve   (Lagrangian decomposition)
//!                                                  ─► replicas per variant ─► PlanOutput
//! ```
//!
//! Semantics (DESIGN.md, "The optimizer's semantics"): never exceed the inventory nor any
//! min/max; when GPUs suffice, the minimum cost that meets every demand (ties: fewer changes
//! from `current`, then a stable order); when they don't, priority tiers from the highest,
//! weighted max-min fairness of served/demand inside a tier, idle GPUs given to unmet demand,
//! then minimum cost at those service levels. Every plan carries a proven lower bound on cost
//! when all demand is met.

// Production code handles what it cannot rule out; `unwrap()` is for tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod deadline;
mod exact;
mod fast;
pub mod problem;
mod subproblem;
pub mod synthetic;

pub use deadline::{Cancel, Deadline};
pub use problem::Problem;
use std::time::Instant;
use wvo_api::{
    AcceleratorUse, InputError, ModelPlan, PlanInput, PlanOutput, Shortfall, SolverChoice,
    VariantPlan,
};

/// Problems with at most this many variants use the exact MILP under `solver: auto`.
pub const EXACT_MAX_VARIANTS: usize = 24;

/// Under `solver: auto`, a scarce problem (the decomposition cannot meet all demand) with at
/// most this many variants is also solved exactly in the time left before the deadline, and
/// the better plan by the fair-share order (tier levels, then served, then cost) is kept.
pub const EXACT_SCARCE_MAX_VARIANTS: usize = 240;

/// A solved plan: replicas per variant and how they were found.
#[derive(Clone, Debug)]
pub struct Solution {
    /// Replicas per variant, in [`Problem::variants`] order.
    pub x: Vec<u32>,
    /// Proven lower bound on the cost of meeting all demand, $/h (None when not all is met).
    pub lower_bound: Option<f64>,
    /// The algorithm whose plan this is: `milp` or `decomposition`.
    pub solver: &'static str,
    /// What the solve could not do in time (the deadline cut the exact path short).
    pub notes: Vec<String>,
}

/// Why no plan could be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The input is invalid.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The replica minimums alone need more GPUs than the inventory has.
    #[error("minReplicas: the models' minimum replicas need more GPUs than the inventory has ({detail}); lower minReplicas or add GPUs")]
    FloorsExceedInventory {
        /// Which accelerator types are short.
        detail: String,
    },
    /// The MILP solver failed.
    #[error("solver: {0}")]
    Solver(String),
    /// The exact path did not finish before the plan's deadline.
    #[error("options.timeLimitSeconds: the exact MILP did not finish in the time left; raise timeLimitSeconds or use solver: auto")]
    Timeout,
    /// The caller raised the solve's [`Cancel`] flag (it no longer waits for the plan).
    #[error("the solve was cancelled before it finished (its caller stopped waiting)")]
    Cancelled,
}

impl PlanError {
    /// Builds [`PlanError::FloorsExceedInventory`] naming the types the minimums overflow
    /// when every model takes its cheapest floor.
    pub(crate) fn floors_exceed_inventory(problem: &Problem) -> Self {
        let mut need = vec![0u64; problem.accelerators.len()];
        for v in &problem.variants {
            need[v.accelerator] += u64::from(v.min_replicas) * u64::from(v.gpus);
        }
        let mut parts: Vec<String> = problem
            .accelerators
            .iter()
            .zip(&need)
            .filter(|(a, &n)| n > u64::from(a.count))
            .map(|(a, n)| format!("{}: {} needed, {} available", a.name, n, a.count))
            .collect();
        if parts.is_empty() {
            parts.push("the model-wide minReplicas cannot all be placed at once".into());
        }
        Self::FloorsExceedInventory {
            detail: parts.join("; "),
        }
    }
}

/// Plans replicas for `input`: validates it, derives capacities, solves within
/// `options.timeLimitSeconds`, and reports.
///
/// ```
/// let input: wvo_api::PlanInput = serde_json::from_str(r#"{
///   "inventory": [{"name": "H100", "count": 8, "costPerHour": 4.0}],
///   "models": [{"name": "m", "variants": [{"name": "h100", "accelerator": "H100",
///               "maxRequestsPerSecond": 10.0}]}],
///   "load": {"m": {"arrivalRate": 25.0}}
/// }"#).unwrap();
/// let plan = wvo_optimizer::plan(&input).unwrap();
/// assert_eq!(plan.variants[0].replicas, 3);
/// assert!(plan.feasible);
/// ```
pub fn plan(input: &PlanInput) -> Result<PlanOutput, PlanError> {
    plan_until(input, Deadline::after(input.options.time_limit_seconds()))
}

/// [`plan`], stopped early with [`PlanError::Cancelled`] when `cancel` is raised (checked
/// between models while deriving capacities, between the solver's iterations and between
/// MILPs; one MILP in HiGHS runs to its own time limit, `options.timeLimitSeconds` at most).
pub fn plan_cancellable(input: &PlanInput, cancel: &Cancel) -> Result<PlanOutput, PlanError> {
    plan_until(
        input,
        Deadline::after(input.options.time_limit_seconds()).with_cancel(cancel.clone()),
    )
}

fn plan_until(input: &PlanInput, deadline: Deadline) -> Result<PlanOutput, PlanError> {
    let started = Instant::now();
    let problem = Problem::from_input(input)?;
    if deadline.cancelled() {
        return Err(PlanError::Cancelled);
    }
    let solution = solve(&problem, input.options.solver, &deadline)?;
    if deadline.cancelled() {
        return Err(PlanError::Cancelled);
    }
    let mut output = report(&problem, &solution.x, solution.lower_bound, solution.solver);
    output.warnings.extend(solution.notes);
    output.solve_millis = started.elapsed().as_secs_f64() * 1e3;
    Ok(output)
}

/// Solves a built problem with the chosen algorithm before `deadline`. `exact` falls back
/// to the decomposition's plan (with a note) when the MILP cannot finish in time; `auto`
/// uses the MILP for small problems and, for scarce ones up to
/// [`EXACT_SCARCE_MAX_VARIANTS`], keeps whichever of the two plans shares GPUs better.
/// [`PlanError::Cancelled`] when the deadline's [`Cancel`] flag is raised.
pub fn solve(
    problem: &Problem,
    choice: SolverChoice,
    deadline: &Deadline,
) -> Result<Solution, PlanError> {
    let mut notes = Vec::new();
    let small = problem.variants.len() <= EXACT_MAX_VARIANTS;
    if choice == SolverChoice::Exact || (choice == SolverChoice::Auto && small) {
        match exact::solve(problem, deadline) {
            Ok((x, lower_bound)) => {
                return Ok(Solution {
                    x,
                    lower_bound,
                    solver: "milp",
                    notes,
                })
            }
            Err(PlanError::Timeout) if deadline.cancelled() => return Err(PlanError::Cancelled),
            Err(PlanError::Timeout) => notes.push(
                "solver: the exact MILP did not finish within options.timeLimitSeconds; this is the decomposition's plan"
                    .to_string(),
            ),
            Err(PlanError::Solver(_)) if choice == SolverChoice::Auto => {}
            Err(e) => return Err(e),
        }
    }
    let outcome = fast::solve(problem, deadline)?;
    if deadline.cancelled() {
        return Err(PlanError::Cancelled);
    }
    let fast = Solution {
        x: outcome.x,
        lower_bound: outcome.lower_bound,
        solver: "decomposition",
        notes,
    };
    let scarce = fast.lower_bound.is_none();
    if choice != SolverChoice::Auto
        || small
        || !scarce
        || problem.variants.len() > EXACT_SCARCE_MAX_VARIANTS
    {
        return Ok(fast);
    }
    match exact::solve(problem, deadline) {
        Ok((x, lower_bound)) if fair_order(problem, &x, &fast.x).is_ge() => Ok(Solution {
            x,
            lower_bound,
            solver: "milp",
            notes: fast.notes,
        }),
        _ => Ok(fast),
    }
}

/// Compares two plans by the fair-share semantics: tier levels from the highest tier, then
/// the tier's served rate, then lower cost. `Greater` means `a` is the better plan.
pub fn fair_order(problem: &Problem, a: &[u32], b: &[u32]) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let close = |p: f64, q: f64| (p - q).abs() <= 1e-6 * p.abs().max(q.abs()).max(1.0);
    for tier in problem.tiers() {
        let members: Vec<usize> = (0..problem.models.len())
            .filter(|&m| problem.models[m].priority == tier)
            .collect();
        let (la, lb) = (
            problem.tier_level(&members, a),
            problem.tier_level(&members, b),
        );
        if !close(la, lb) {
            return la.total_cmp(&lb);
        }
        let served = |x: &[u32]| members.iter().map(|&m| problem.served(m, x)).sum::<f64>();
        let (sa, sb) = (served(a), served(b));
        if !close(sa, sb) {
            return sa.total_cmp(&sb);
        }
    }
    let (ca, cb) = (problem.cost(a), problem.cost(b));
    if close(ca, cb) {
        Ordering::Equal
    } else {
        cb.total_cmp(&ca)
    }
}

/// Builds the output for replica counts `x`.
pub fn report(problem: &Problem, x: &[u32], lower_bound: Option<f64>, solver: &str) -> PlanOutput {
    let variants: Vec<VariantPlan> = problem
        .variants
        .iter()
        .zip(x)
        .map(|(v, &n)| VariantPlan {
            model: problem.models[v.model].name.clone(),
            variant: v.name.clone(),
            accelerator: problem.accelerators[v.accelerator].name.clone(),
            replicas: n,
            gpus: n * v.gpus,
            cost_per_hour: round6(v.price * f64::from(n)),
            capacity_rps: round6(v.capacity),
        })
        .collect();
    let mut unmet = vec![(0u64, 0.0f64); problem.accelerators.len()];
    let models: Vec<ModelPlan> = problem
        .models
        .iter()
        .enumerate()
        .map(|(m, info)| {
            let served = problem.served(m, x);
            let satisfied = problem::meets(problem.coverage(m, x), info.demand);
            if !satisfied {
                // Missing GPUs: the unmet rate on the model's cheapest usable variant.
                let missing = info.demand - served;
                let cheapest = problem.variants[info.variants.clone()]
                    .iter()
                    .filter(|v| v.capacity > 0.0)
                    .min_by(|a, b| (a.price / a.capacity).total_cmp(&(b.price / b.capacity)));
                if let Some(v) = cheapest {
                    let replicas = (missing / v.capacity).ceil() as u64;
                    unmet[v.accelerator].0 += replicas * u64::from(v.gpus);
                    unmet[v.accelerator].1 += missing;
                }
            }
            ModelPlan {
                model: info.name.clone(),
                demand_rps: round6(info.demand),
                served_rps: round6(if satisfied { info.demand } else { served }),
                satisfaction: if info.demand <= 0.0 || satisfied {
                    1.0
                } else {
                    round6(served / info.demand)
                },
                slo: info.slo.clone(),
                slo_unreachable: info.slo_unreachable.clone(),
            }
        })
        .collect();
    let used = problem.usage(x);
    let accelerators = problem
        .accelerators
        .iter()
        .zip(&used)
        .map(|(a, &u)| AcceleratorUse {
            name: a.name.clone(),
            available: a.count,
            used: u32::try_from(u).unwrap_or(u32::MAX),
        })
        .collect();
    let shortfall = problem
        .accelerators
        .iter()
        .zip(&unmet)
        .filter(|(_, (gpus, _))| *gpus > 0)
        .map(|(a, &(gpus, rps))| Shortfall {
            accelerator: a.name.clone(),
            missing_gpus: u32::try_from(gpus).unwrap_or(u32::MAX),
            unmet_rps: round6(rps),
        })
        .collect();
    let feasible = models.iter().all(|m| m.satisfaction >= 1.0);
    PlanOutput {
        feasible,
        total_cost_per_hour: round6(problem.cost(x)),
        lower_bound_cost_per_hour: if feasible {
            lower_bound.map(|lb| round6(lb.min(problem.cost(x))))
        } else {
            None
        },
        solve_millis: 0.0,
        solver: solver.to_string(),
        variants,
        models,
        accelerators,
        shortfall,
        warnings: problem.warnings.clone(),
    }
}

/// Rounds to 6 decimals so printed plans are stable across platforms' last-bit differences.
/// Adds 0.0 so an empty sum (-0.0 in IEEE arithmetic) prints as 0.
fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6 + 0.0
}
