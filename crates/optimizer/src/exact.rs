//! The exact path: the same lexicographic semantics as the fast path, each step a MILP
//! solved to optimality by HiGHS (through `good_lp`). Used for small problems and as the
//! reference in tests.
//!
//! Per priority tier, highest first: the largest max-min level `t` such that every member
//! covers `min(1, t*weight) * capTarget` (one "maximize t" MILP per distinct weight in the
//! tier: progressive filling, members whose weight saturates first are fixed at full and the
//! rest re-solved); then the most total served rate in the tier at that level. Those levels
//! become constraints. Last: minimum cost at all levels, then fewest changes from the current
//! replicas at that cost. Every MILP gets the time left before the plan's [`Deadline`].

use crate::problem::{Problem, RATE_TOLERANCE, TOLERANCE};
use crate::{Deadline, PlanError};
use good_lp::solvers::highs::{highs, HighsPresolveType};
use good_lp::{
    constraint, variable, Expression, ProblemVariables, ResolutionError, Solution, SolutionStatus,
    SolverModel, Variable,
};

/// Most seconds HiGHS may spend on one MILP (the plan's deadline usually binds first).
const TIME_LIMIT_SECONDS: f64 = 3600.0;

/// What one solve asks for.
enum Objective {
    /// Any feasible point.
    Feasibility,
    /// Largest `t` in `[0, t_max]` with `cover_m >= t * weight_m * capTarget_m` for every
    /// model in `open` (the value returned is the level the integer plan really reaches).
    MaxLevel {
        /// Members still below full, with their cap targets, req/s.
        open: Vec<(usize, f64)>,
        /// Upper end of the level.
        t_max: f64,
    },
    /// Most total served rate over these models.
    MaxServed(Vec<usize>),
    /// Least cost.
    MinCost,
    /// Fewest changes from the current replicas at a cost no higher than this.
    MinChanges(f64),
}

/// Constraints accumulated tier by tier.
#[derive(Clone, Default, PartialEq)]
struct Levels {
    /// Per model: rate it must cover (0 when unconstrained).
    cover: Vec<f64>,
    /// Per tier: the member models and the total served rate they must reach.
    served: Vec<(Vec<usize>, f64)>,
}

/// Outcome of one MILP solve.
#[derive(Clone)]
enum Solved {
    Plan(Vec<u32>, f64),
    Infeasible,
}

/// Solves one MILP. HiGHS' presolve has been seen to call a feasible model infeasible (a
/// plan the previous step found violates none of the rows), so "infeasible" is confirmed
/// once with presolve off before it is believed.
fn solve_milp(
    problem: &Problem,
    levels: &Levels,
    objective: &Objective,
    deadline: &Deadline,
) -> Result<Solved, PlanError> {
    match solve_milp_with(problem, levels, objective, deadline, true)? {
        Solved::Infeasible => solve_milp_with(problem, levels, objective, deadline, false),
        plan => Ok(plan),
    }
}

fn solve_milp_with(
    problem: &Problem,
    levels: &Levels,
    objective: &Objective,
    deadline: &Deadline,
    presolve: bool,
) -> Result<Solved, PlanError> {
    let seconds = deadline.remaining_seconds().min(TIME_LIMIT_SECONDS);
    if seconds <= 0.0 {
        return Err(PlanError::Timeout);
    }
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
    let level_var = match objective {
        Objective::MaxLevel { t_max, .. } => Some(vars.add(variable().min(0.0).max(*t_max))),
        _ => None,
    };
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
        Objective::MaxLevel { .. } => level_var.map_or_else(|| cost.clone(), |t| -t),
        Objective::MinCost => cost.clone(),
        Objective::MinChanges(_) => deltas.iter().copied().map(Expression::from).sum(),
    };
    let mut model = vars
        .minimise(goal)
        .using(highs)
        .set_threads(1)
        .set_time_limit(seconds)
        // The feasibility-jump primal heuristic dominated the solve time of these small
        // models (milliseconds each, thousands of solves per simulated hour in `wvo bench`)
        // and is not needed to prove optimality: branch and bound finds the same optimum.
        .set_option("mip_heuristic_run_feasibility_jump", false);
    if !presolve {
        model = model.set_presolve(HighsPresolveType::Off);
    }
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
    if let (Objective::MaxLevel { open, .. }, Some(t)) = (objective, level_var) {
        for &(m, cap) in open {
            // In units of the cap target, so every row is O(1) whatever the rates.
            let share: Expression = problem.models[m]
                .variants
                .clone()
                .map(|v| (problem.variants[v].capacity / cap) * x[v])
                .sum();
            let weight = problem.models[m].weight;
            model = model.with(constraint!(share - weight * t >= -1e-9));
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
                return Err(PlanError::Timeout);
            }
            let values: Vec<u32> = x
                .iter()
                .map(|&v| solution.value(v).round().max(0.0) as u32)
                .collect();
            let value = match objective {
                Objective::MaxServed(members) => {
                    members.iter().map(|&m| problem.served(m, &values)).sum()
                }
                Objective::MaxLevel { open, t_max } => open
                    .iter()
                    .map(|&(m, cap)| {
                        problem.coverage(m, &values) / (problem.models[m].weight * cap)
                    })
                    .fold(*t_max, f64::min),
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

/// The exact plan and, when all demand is met, its cost as the (tight) lower bound.
/// [`PlanError::Timeout`] when the deadline passes first.
pub(crate) fn solve(
    problem: &Problem,
    deadline: &Deadline,
) -> Result<(Vec<u32>, Option<f64>), PlanError> {
    if problem.variants.is_empty() {
        return Ok((Vec::new(), Some(0.0)));
    }
    // `Feasibility` and `MinCost` build the same MILP (least cost under `levels`): when every
    // tier is met in full, the last feasibility check is the min-cost solve itself, so its
    // outcome is kept and reused rather than solved again (HiGHS is deterministic here:
    // one thread, the same model, the same options).
    let mut least_cost: Option<(Levels, Solved)> = None;
    let mut milp = |levels: &Levels, objective: &Objective| -> Result<Solved, PlanError> {
        let cost_model = matches!(objective, Objective::Feasibility | Objective::MinCost);
        if cost_model {
            if let Some((seen, solved)) = &least_cost {
                if seen == levels {
                    return Ok(solved.clone());
                }
            }
        }
        let solved = solve_milp(problem, levels, objective, deadline)?;
        if cost_model && matches!(solved, Solved::Plan(..)) {
            least_cost = Some((levels.clone(), solved.clone()));
        }
        Ok(solved)
    };
    let models = problem.models.len();
    let mut levels = Levels {
        cover: vec![0.0; models],
        served: Vec::new(),
    };
    if let Solved::Infeasible = milp(&levels, &Objective::Feasibility)? {
        return Err(PlanError::floors_exceed_inventory(problem));
    }
    let cap_target: Vec<f64> = (0..models).map(|m| problem.cap_target(m)).collect();
    let mut all_met = problem
        .models
        .iter()
        .all(|m| m.demand <= m.max_coverable * (1.0 + RATE_TOLERANCE));
    let lost = |step: &str| {
        PlanError::Solver(format!(
            "the exact MILP lost feasibility between steps (at {step})"
        ))
    };
    for tier in problem.tiers() {
        let members: Vec<usize> = (0..models)
            .filter(|&m| problem.models[m].priority == tier && cap_target[m] > 0.0)
            .collect();
        let mut full = levels.clone();
        for &m in &members {
            full.cover[m] = cap_target[m];
        }
        if let Solved::Plan(..) = milp(&full, &Objective::Feasibility)? {
            levels = full;
            continue;
        }
        all_met = false;
        // Progressive filling: each round maximizes the level of the members still open; when
        // it reaches 1/weight of the heaviest open members, they are full and leave the round.
        let mut open: Vec<usize> = members.clone();
        let mut level = 0.0;
        for _round in 0..=members.len() {
            let Some(w_top) = open
                .iter()
                .map(|&m| problem.models[m].weight)
                .max_by(f64::total_cmp)
            else {
                break;
            };
            let t_max = 1.0 / w_top;
            let objective = Objective::MaxLevel {
                open: open.iter().map(|&m| (m, cap_target[m])).collect(),
                t_max,
            };
            let Solved::Plan(_, achieved) = milp(&levels, &objective)? else {
                return Err(lost("max level"));
            };
            level = achieved.clamp(0.0, t_max);
            if achieved < t_max * (1.0 - 1e-9) {
                break;
            }
            let (saturated, rest): (Vec<usize>, Vec<usize>) = open
                .iter()
                .partition(|&&m| problem.models[m].weight >= w_top * (1.0 - 1e-12));
            for m in saturated {
                levels.cover[m] = cap_target[m];
            }
            open = rest;
        }
        for &m in &open {
            levels.cover[m] = (level * problem.models[m].weight).min(1.0) * cap_target[m];
        }
        match milp(&levels, &Objective::MaxServed(members.clone()))? {
            Solved::Plan(_, served) => {
                let slack = RATE_TOLERANCE * served.max(1.0);
                levels.served.push((members, served - slack));
            }
            Solved::Infeasible => return Err(lost("max served")),
        }
    }
    let Solved::Plan(_, min_cost) = milp(&levels, &Objective::MinCost)? else {
        return Err(lost("min cost"));
    };
    let max_cost = min_cost + TOLERANCE * min_cost.abs().max(1.0) + 1e-9;
    let Solved::Plan(x, _) = milp(&levels, &Objective::MinChanges(max_cost))? else {
        return Err(lost("min changes"));
    };
    Ok((x, all_met.then_some(min_cost)))
}
