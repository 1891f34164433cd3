//! Global placement of model variants on a heterogeneous GPU inventory (pure: no I/O, no
//! async, no clock but the solve timer).
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

mod exact;
mod fast;
pub mod problem;
mod subproblem;
pub mod synthetic;

pub use problem::Problem;
use std::time::Instant;
use wvo_api::{
    AcceleratorUse, InputError, ModelPlan, PlanInput, PlanOutput, Shortfall, SolverChoice,
    VariantPlan,
};

/// Problems with at most this many variants use the exact MILP under `solver: auto`.
pub const EXACT_MAX_VARIANTS: usize = 24;

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

/// Plans replicas for `input`: validates it, derives capacities, solves, and reports.
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
    let started = Instant::now();
    let problem = Problem::from_input(input)?;
    let (x, lower_bound, solver) = solve(&problem, input.options.solver)?;
    let mut output = report(&problem, &x, lower_bound, solver);
    output.solve_millis = started.elapsed().as_secs_f64() * 1e3;
    Ok(output)
}

/// Solves a built problem with the chosen algorithm: replicas per variant, the lower bound
/// (when all demand is met), and the algorithm's name.
pub fn solve(
    problem: &Problem,
    choice: SolverChoice,
) -> Result<(Vec<u32>, Option<f64>, &'static str), PlanError> {
    let exact = match choice {
        SolverChoice::Exact => true,
        SolverChoice::Fast => false,
        SolverChoice::Auto => problem.variants.len() <= EXACT_MAX_VARIANTS,
    };
    if exact {
        match exact::solve(problem) {
            Ok((x, lb)) => return Ok((x, lb, "milp")),
            Err(PlanError::Solver(_)) if choice == SolverChoice::Auto => {}
            Err(e) => return Err(e),
        }
    }
    let outcome = fast::solve(problem)?;
    Ok((outcome.x, outcome.lower_bound, "decomposition"))
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
fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}
