//! The exact path: the same lexicographic semantics as the fast path, each step a MILP
//! solved to optimality by HiGHS (through `good_lp`). Used for small problems and as the
//! reference in tests.
//!
//! Per priority tier, highest first: the largest max-min level `t` such that every member
//! covers `min(1, t*weight) * demand` (bisection on `t`, each step a feasibility MILP); then
//! the most total served rate in the tier at that level. Those levels become constraints.
//! Last: minimum cost at all levels, then fewest changes from the current replicas at that cost.

use crate::problem::{Problem, RATE_TOLERANCE, TOLERANCE};
use crate::PlanError;
use good_lp::solvers::highs::highs;
use good_lp::{
    constraint, variable, Expression, ProblemVariables, ResolutionError, Solution, SolutionStatus,
    SolverModel, Variable,
};

/// Seconds HiGHS may spend on one MILP.
const TIME_LIMIT_SECONDS: f64 = 20.0;

/// What one solve asks for.
enum Objective {
    /// Any feasible point.
    Feasibility,
    /// Most total served rate over these models.
    MaxServed(Vec<usize>),
    /// Least cost.
    MinCost,
    /// Fewest changes from the current replicas at a cost no higher than this.
    MinChanges(f64),
}

/// Constraints accumulated tier by tier.
#[derive(Clone, Default)]
struct Levels {
    /// Per model: rate it must cover (0 when unconstrained).
    cover: Vec<f64>,
    /// Per tier: the member models and the total served rate they must reach.
    served: Vec<(Vec<usize>, f64)>,
}

/// Outcome of one MILP solve.
enum Solved {
    Plan(Vec<u32>, f64),
    Infeasible,
}

fn solve_milp(
    problem: &Problem,
    levels: &Levels,
    objective: &Objective,
) -> Result<Solved, PlanError> {
    let mut vars = ProblemVariables::new();
    let x: Vec<Variable> = problem
        .variants
        .iter()
        .map(|v| {
            vars.add(
                variable()
                    .integer()
                    .min(f64::from(v.min_replicas))
                    .max(f64::from(v.max_replicas)),
            )
        })
        .collect();
    let cover_of = |m: usize| -> Expression {
        problem.models[m]
            .variants
            .clone()
            .map(|v| problem.variants[v].capacity * x[v])
            .sum()
    };
    let cost: Expression = problem
        .variants
        .iter()
        .zip(&x)
        .map(|(v, &xv)| v.price * xv)
        .sum();
    // Served rate per model, for the tiers' served constraints and the MaxServed objective.
    let mut served_vars = vec![None; problem.models.len()];
    let mut needs_served = vec![false; problem.models.len()];
    for (members, _) in &levels.served {
        for &m in members {
            needs_served[m] = true;
        }
    }
    if let Objective::MaxServed(members) = objective {
        for &m in members {
            needs_served[m] = true;
        }
    }
    for (m, model) in problem.models.iter().enumerate() {
        if needs_served[m] {
            served_vars[m] = Some(vars.add(variable().min(0.0).max(model.demand)));
        }
    }
    let mut deltas = Vec::new();
    if matches!(objective, Objective::MinChanges(_)) {
        deltas = problem
            .variants
            .iter()
            .map(|_| vars.add(variable().min(0.0)))
            .collect();
    }
    let goal: Expression = match objective {
        // (A constant objective makes HiGHS report an error on some infeasible models.)
        Objective::Feasibility => cost.clone(),
        Objective::MaxServed(members) => -members
            .iter()
            .filter_map(|&m| served_vars[m])
            .map(Expression::from)
            .sum::<Expression>(),
        Objective::MinCost => cost.clone(),
        Objective::MinChanges(_) => deltas.iter().copied().map(Expression::from).sum(),
    };
    let mut model = vars
        .minimise(goal)
        .using(highs)
        .set_threads(1)
        .set_time_limit(TIME_LIMIT_SECONDS);
    model = model
        .set_mip_rel_gap(0.0)
        .map_err(|e| PlanError::Solver(e.to_string()))?
        .set_mip_abs_gap(1e-9)
        .map_err(|e| PlanError::Solver(e.to_string()))?;
    for (a, acc) in problem.accelerators.iter().enumerate() {
        let used: Expression = problem
            .variants
            .iter()
            .zip(&x)
            .filter(|(v, _)| v.accelerator == a)
            .map(|(v, &xv)| f64::from(v.gpus) * xv)
            .sum();
        model = model.with(constraint!(used <= f64::from(acc.count)));
    }
    for (m, info) in problem.models.iter().enumerate() {
        let count: Expression = info.variants.clone().map(|v| x[v]).sum();
        model = model.with(constraint!(count.clone() >= f64::from(info.min_replicas)));
        model = model.with(constraint!(count <= f64::from(info.max_replicas)));
        let target = levels.cover[m];
        if target > 0.0 {
            // A hair of slack so a level reached exactly stays feasible in floating point.
            let target = target * (1.0 - 1e-9) - 1e-12;
            model = model.with(constraint!(cover_of(m) >= target));
        }
        if let Some(s) = served_vars[m] {
            model = model.with(constraint!(s <= cover_of(m)));
        }
    }
    for (members, total) in &levels.served {
        let sum: Expression = members
            .iter()
            .filter_map(|&m| served_vars[m])
            .map(Expression::from)
            .sum();
        model = model.with(constraint!(sum >= *total));
    }
    if let Objective::MinChanges(max_cost) = objective {
        for ((v, &xv), &d) in problem.variants.iter().zip(&x).zip(&deltas) {
            let current = f64::from(v.current);
            model = model.with(constraint!(d >= xv - current));
            model = model.with(constraint!(d >= current - xv));
        }
        model = model.with(constraint!(cost.clone() <= *max_cost));
    }
    match model.solve() {
        Ok(solution) => {
            if matches!(solution.status(), SolutionStatus::TimeLimit) {
                return Err(PlanError::Solver(format!(
                    "the exact MILP did not finish within {TIME_LIMIT_SECONDS} s"
                )));
            }
            let values: Vec<u32> = x
                .iter()
                .map(|&v| solution.value(v).round().max(0.0) as u32)
                .collect();
            let value = match objective {
                Objective::MaxServed(members) => {
                    members.iter().map(|&m| problem.served(m, &values)).sum()
                }
                _ => problem.cost(&values),
            };
            Ok(Solved::Plan(values, value))
        }
        Err(ResolutionError::Infeasible) => Ok(Solved::Infeasible),
        // HiGHS ends with a solve error when its only candidate violates a row by more than
        // its tolerance: for a feasibility probe that means "not feasible at this precision"
        // (bisection targets can sit a hair above an achievable cover).
        Err(ResolutionError::Str(_)) if matches!(objective, Objective::Feasibility) => {
            Ok(Solved::Infeasible)
        }
        Err(e) => Err(PlanError::Solver(e.to_string())),
    }
}

/// The max-min level plan `x` gives `members`: the largest `t` with
/// `cover_m >= min(1, t*weight_m) * cap_target_m` for all of them (infinite when all are met).
fn tier_level(problem: &Problem, members: &[usize], cap_target: &[f64], x: &[u32]) -> f64 {
    members
        .iter()
        .filter(|&&m| !crate::problem::meets(problem.coverage(m, x), cap_target[m]))
        .map(|&m| problem.coverage(m, x) / (problem.models[m].weight * cap_target[m]))
        .fold(f64::INFINITY, f64::min)
}

/// The exact plan and, when all demand is met, its cost as the (tight) lower bound.
pub(crate) fn solve(problem: &Problem) -> Result<(Vec<u32>, Option<f64>), PlanError> {
    if problem.variants.is_empty() {
        return Ok((Vec::new(), Some(0.0)));
    }
    let models = problem.models.len();
    let mut levels = Levels {
        cover: vec![0.0; models],
        served: Vec::new(),
    };
    if let Solved::Infeasible = solve_milp(problem, &levels, &Objective::Feasibility)? {
        return Err(PlanError::floors_exceed_inventory(problem));
    }
    let cap_target: Vec<f64> = problem
        .models
        .iter()
        .map(|m| m.demand.min(m.max_coverable))
        .collect();
    let tiers = problem.tiers();
    let mut all_met = problem
        .models
        .iter()
        .all(|m| m.demand <= m.max_coverable * (1.0 + RATE_TOLERANCE));
    for tier in tiers {
        let members: Vec<usize> = (0..models)
            .filter(|&m| problem.models[m].priority == tier)
            .collect();
        let at_level = |levels: &Levels, t: f64| {
            let mut next = levels.clone();
            for &m in &members {
                next.cover[m] = (t * problem.models[m].weight).min(1.0) * cap_target[m];
            }
            next
        };
        let t_full = members
            .iter()
            .map(|&m| 1.0 / problem.models[m].weight)
            .fold(0.0, f64::max);
        let full = at_level(&levels, t_full);
        if let Solved::Plan(..) = solve_milp(problem, &full, &Objective::Feasibility)? {
            levels = full;
            continue;
        }
        all_met = false;
        let (mut lo, mut hi) = (0.0, t_full);
        let mut achieved = 0.0;
        while hi - lo > 1e-7 * hi {
            let mid = 0.5 * (lo + hi);
            match solve_milp(problem, &at_level(&levels, mid), &Objective::Feasibility)? {
                Solved::Plan(x, _) => {
                    // The level the integer plan really reaches (the solver accepts targets
                    // within its feasibility tolerance; the constraint must not).
                    achieved = tier_level(problem, &members, &cap_target, &x).min(t_full);
                    lo = mid.max(achieved.min(hi));
                }
                Solved::Infeasible => hi = mid,
            }
        }
        levels = at_level(&levels, achieved);
        match solve_milp(problem, &levels, &Objective::MaxServed(members.clone()))? {
            Solved::Plan(_, served) => {
                let slack = RATE_TOLERANCE * served.max(1.0);
                levels.served.push((members, served - slack));
            }
            Solved::Infeasible => {
                return Err(PlanError::Solver(
                    "the exact MILP lost feasibility between steps".into(),
                ))
            }
        }
    }
    let Solved::Plan(_, min_cost) = solve_milp(problem, &levels, &Objective::MinCost)? else {
        return Err(PlanError::Solver(
            "the exact MILP lost feasibility between steps".into(),
        ));
    };
    let max_cost = min_cost + TOLERANCE * min_cost.abs().max(1.0) + 1e-9;
    let Solved::Plan(x, _) = solve_milp(problem, &levels, &Objective::MinChanges(max_cost))? else {
        return Err(PlanError::Solver(
            "the exact MILP lost feasibility between steps".into(),
        ));
    };
    Ok((x, all_met.then_some(min_cost)))
}
