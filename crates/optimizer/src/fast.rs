//! The decomposition solver for large problems.
//!
//! The only constraints that couple models are the per-accelerator GPU counts. Relaxing them
//! with shadow prices `lambda_a` ($/GPU-hour) splits the problem into one tiny integer
//! subproblem per model ([`crate::subproblem`]), each solved exactly. For any `lambda >= 0`,
//!
//! ```text
//! L(lambda) = sum_m min_x sum_v (price_v + lambda_a(v) * gpus_v) * x_v  -  sum_a lambda_a * count_a
//! ```
//!
//! is a proven lower bound on the minimum cost (Lagrangian duality); a projected subgradient
//! ascent raises it. Feasible plans come from a repair (models that want an over-used type are
//! placed in order of how much they lose without it, each under the GPUs still free) followed
//! by a local search that re-solves one model at a time against the GPUs left.
//!
//! When demand cannot all be met, [`fair_share`] serves priority tiers in order with a
//! bisection on the tier's max-min service level, then grows unmet models into idle GPUs and
//! finally lowers cost at the service levels reached.

use crate::problem::{meets, Problem, TOLERANCE};
use crate::subproblem::{SubInput, SubSolver};
use crate::{Deadline, PlanError};

/// Relative optimality gap at which the dual ascent stops.
const GAP_TARGET: f64 = 8e-4;
/// Most subgradient iterations.
const MAX_ITERATIONS: usize = 300;
/// Iterations without any feasible plan after which the dual ascent gives up.
const GIVE_UP_ITERATIONS: usize = 80;
/// Rounds of one-model-at-a-time local search.
const LOCAL_SEARCH_ROUNDS: usize = 4;
/// Most bisection steps on a tier's level with the greedy placement.
const GREEDY_PROBES: usize = 48;
/// Most bisection steps on a tier's level with the joint re-placement of all tiers so far.
const JOINT_PROBES: usize = 14;
/// Subgradient iterations of one joint re-placement probe.
const JOINT_ITERATIONS: usize = 60;
/// Share of the time left that the joint re-placement of one tier may use.
const JOINT_TIME_SHARE: f64 = 0.5;

/// How long one [`Workspace::min_cost`] run may search.
#[derive(Clone, Copy)]
struct Limits {
    /// Most subgradient iterations.
    iterations: usize,
    /// Iterations without a feasible plan after which the run gives up.
    give_up: usize,
    /// Whether to lower cost by local search and pair moves once a plan is found.
    polish: bool,
}

impl Limits {
    /// A full run: the all-demand plan and the floors.
    const FULL: Limits = Limits {
        iterations: MAX_ITERATIONS,
        give_up: GIVE_UP_ITERATIONS,
        polish: true,
    };
    /// A joint re-placement probe: does this set of targets fit?
    const PROBE: Limits = Limits {
        iterations: JOINT_ITERATIONS,
        give_up: JOINT_ITERATIONS,
        polish: false,
    };
}

/// What one [`Workspace::min_cost`] run found.
struct MinCost {
    /// The cheapest plan found that meets every target and fits (None when none was found).
    x: Option<Vec<u32>>,
    /// Proven lower bound on that cost (None when some target cannot be covered at all).
    lower_bound: Option<f64>,
    /// The multipliers at the best bound, $/GPU-hour per accelerator type: high on the
    /// types the targets contend for.
    lambda: Vec<f64>,
}

/// A plan from the fast path.
pub(crate) struct FastOutcome {
    /// Replicas per variant.
    pub x: Vec<u32>,
    /// Proven lower bound on the cost of meeting all demand (None when demand is not all met).
    pub lower_bound: Option<f64>,
}

/// Working state shared by the fast-path steps.
struct Workspace<'p> {
    problem: &'p Problem,
    solver: SubSolver,
    prices: Vec<f64>,
    deadline: Deadline,
}

impl<'p> Workspace<'p> {
    fn new(problem: &'p Problem, deadline: Deadline) -> Self {
        Self {
            problem,
            solver: SubSolver::default(),
            prices: Vec::new(),
            deadline,
        }
    }

    /// Solves model `m` at shadow prices `lambda` (or plain prices), covering `target` within
    /// `caps`; writes into `out` (the model's slice) and returns the objective.
    fn solve_model(
        &mut self,
        m: usize,
        lambda: Option<&[f64]>,
        target: f64,
        caps: Option<&[u64]>,
        out: &mut [u32],
    ) -> Option<f64> {
        let model = &self.problem.models[m];
        let vars = &self.problem.variants[model.variants.clone()];
        self.prices.clear();
        self.prices.extend(
            vars.iter()
                .map(|v| v.price + lambda.map_or(0.0, |l| l[v.accelerator] * f64::from(v.gpus))),
        );
        let input = SubInput {
            vars,
            prices: &self.prices,
            target,
            min_total: model.min_replicas,
            max_total: model.max_replicas,
            caps,
        };
        self.solver.solve(&input, out)
    }

    fn add_usage(&self, m: usize, x: &[u32], usage: &mut [u64], sign: i64) {
        let range = self.problem.models[m].variants.clone();
        for (v, &n) in self.problem.variants[range.clone()].iter().zip(&x[range]) {
            let gpus = u64::from(n) * u64::from(v.gpus);
            if sign > 0 {
                usage[v.accelerator] += gpus;
            } else {
                usage[v.accelerator] -= gpus;
            }
        }
    }

    fn model_cost(&self, m: usize, x: &[u32]) -> f64 {
        let range = self.problem.models[m].variants.clone();
        self.problem.variants[range.clone()]
            .iter()
            .zip(&x[range])
            .map(|(v, &n)| v.price * f64::from(n))
            .sum()
    }

    fn model_changes(&self, m: usize, x: &[u32]) -> u64 {
        let range = self.problem.models[m].variants.clone();
        self.problem.variants[range.clone()]
            .iter()
            .zip(&x[range])
            .map(|(v, &n)| u64::from(n.abs_diff(v.current)))
            .sum()
    }

    fn free(&self, x: &[u32]) -> Vec<u64> {
        let used = self.problem.usage(x);
        self.problem
            .accelerators
            .iter()
            .zip(used)
            .map(|(a, u)| u64::from(a.count).saturating_sub(u))
            .collect()
    }

    fn fits(&self, x: &[u32]) -> bool {
        self.problem
            .usage(x)
            .iter()
            .zip(&self.problem.accelerators)
            .all(|(&u, a)| u <= u64::from(a.count))
    }

    /// Minimum cost meeting `targets`: dual ascent for the bound, repair and local search for
    /// the plan, starting from multipliers `start` (zero when None), within `limits` and the
    /// deadline.
    fn min_cost(&mut self, targets: &[f64], start: Option<&[f64]>, limits: Limits) -> MinCost {
        let problem = self.problem;
        let types = problem.accelerators.len();
        let capacity: Vec<f64> = problem
            .accelerators
            .iter()
            .map(|a| f64::from(a.count))
            .collect();
        let mut lambda = start.map_or_else(|| vec![0.0; types], <[f64]>::to_vec);
        let mut x_lambda = vec![0u32; problem.variants.len()];
        let mut obj = vec![0.0; problem.models.len()];
        for m in 0..problem.models.len() {
            let range = problem.models[m].variants.clone();
            match self.solve_model(m, Some(&lambda), targets[m], None, &mut x_lambda[range]) {
                Some(o) => obj[m] = o,
                None => {
                    return MinCost {
                        x: None,
                        lower_bound: None,
                        lambda,
                    }
                }
            }
        }
        let dual = |obj: &[f64], lambda: &[f64]| {
            obj.iter().sum::<f64>()
                - lambda
                    .iter()
                    .zip(&capacity)
                    .map(|(l, c)| l * c)
                    .sum::<f64>()
        };
        let mut best_lb = dual(&obj, &lambda);
        let mut best_lambda = lambda.clone();
        if self.fits(&x_lambda) {
            if limits.polish {
                self.local_search(&mut x_lambda, targets, None);
            }
            return MinCost {
                x: Some(x_lambda),
                lower_bound: Some(best_lb),
                lambda,
            };
        }
        let mut best_x = self.repair(&x_lambda, &lambda, targets);
        let mut ub = best_x.as_ref().map(|x| problem.cost(x));
        let mut theta = 1.0;
        let mut stall = 0;
        let touches: Vec<Vec<usize>> = (0..types)
            .map(|a| {
                (0..problem.models.len())
                    .filter(|&m| {
                        problem.variants[problem.models[m].variants.clone()]
                            .iter()
                            .any(|v| v.accelerator == a)
                    })
                    .collect()
            })
            .collect();
        let mut dirty = vec![false; problem.models.len()];
        for iteration in 0..limits.iterations {
            match ub {
                Some(ub) if ub - best_lb <= GAP_TARGET * ub.abs().max(1e-9) => break,
                // No repair has found room for all targets: most likely there is none, and
                // the caller falls back to fair share (or a lower level).
                None if iteration >= limits.give_up => break,
                // Found one and only asked whether one exists.
                Some(_) if !limits.polish => break,
                _ => {}
            }
            if self.deadline.expired() {
                break;
            }
            let usage = problem.usage(&x_lambda);
            let subgradient: Vec<f64> = usage
                .iter()
                .zip(&capacity)
                .zip(&lambda)
                .map(|((&u, &c), &l)| {
                    let s = u as f64 - c;
                    if l <= 0.0 && s < 0.0 {
                        0.0
                    } else {
                        s
                    }
                })
                .collect();
            let norm: f64 = subgradient.iter().map(|s| s * s).sum();
            if norm <= 0.0 {
                break;
            }
            let current_l = dual(&obj, &lambda);
            let gap = match ub {
                Some(ub) => (ub - current_l).max(1e-6 * ub.abs().max(1.0)),
                None => 0.05 * best_lb.abs().max(1.0),
            };
            let step = theta * gap / norm;
            for a in 0..types {
                let new = (lambda[a] + step * subgradient[a]).max(0.0);
                if new != lambda[a] {
                    lambda[a] = new;
                    for &m in &touches[a] {
                        dirty[m] = true;
                    }
                }
            }
            for m in 0..problem.models.len() {
                if !dirty[m] {
                    continue;
                }
                dirty[m] = false;
                let range = problem.models[m].variants.clone();
                // Feasible at lambda = 0, so feasible at any lambda (no caps).
                if let Some(o) =
                    self.solve_model(m, Some(&lambda), targets[m], None, &mut x_lambda[range])
                {
                    obj[m] = o;
                }
            }
            let l = dual(&obj, &lambda);
            if l > best_lb + TOLERANCE * best_lb.abs().max(1.0) {
                best_lb = l;
                best_lambda.clone_from(&lambda);
                stall = 0;
            } else {
                stall += 1;
                if stall >= 4 {
                    theta /= 2.0;
                    stall = 0;
                }
            }
            if self.fits(&x_lambda) {
                let c = problem.cost(&x_lambda);
                if ub.is_none_or(|u| c < u) {
                    ub = Some(c);
                    best_x = Some(x_lambda.clone());
                }
            } else if iteration % 8 == 7 {
                if let Some(x) = self.repair(&x_lambda, &lambda, targets) {
                    let c = problem.cost(&x);
                    if ub.is_none_or(|u| c < u) {
                        ub = Some(c);
                        best_x = Some(x);
                    }
                }
            }
        }
        // A last repair at the best multipliers.
        let mut x_best_lambda = vec![0u32; problem.variants.len()];
        let mut all = true;
        for (m, &target) in targets.iter().enumerate() {
            let range = problem.models[m].variants.clone();
            all &= self
                .solve_model(
                    m,
                    Some(&best_lambda),
                    target,
                    None,
                    &mut x_best_lambda[range],
                )
                .is_some();
        }
        if all && (limits.polish || best_x.is_none()) {
            if let Some(x) = self.repair(&x_best_lambda, &best_lambda, targets) {
                let c = problem.cost(&x);
                if ub.is_none_or(|u| c < u) {
                    best_x = Some(x);
                }
            }
        }
        if let Some(x) = best_x.as_mut().filter(|_| limits.polish) {
            self.local_search(x, targets, None);
            for _ in 0..LOCAL_SEARCH_ROUNDS {
                if self.deadline.expired() || !self.pair_moves(x, targets) {
                    break;
                }
                self.local_search(x, targets, None);
            }
        }
        MinCost {
            x: best_x,
            lower_bound: Some(best_lb),
            lambda: best_lambda,
        }
    }

    /// Turns the per-model answers `x_lambda` at multipliers `lambda` into a plan that fits:
    /// models not on an over-used type keep their answer; the others are placed one by one,
    /// those that lose most without the over-used types first.
    fn repair(&mut self, x_lambda: &[u32], lambda: &[f64], targets: &[f64]) -> Option<Vec<u32>> {
        let problem = self.problem;
        let usage = problem.usage(x_lambda);
        let over: Vec<bool> = usage
            .iter()
            .zip(&problem.accelerators)
            .map(|(&u, a)| u > u64::from(a.count))
            .collect();
        let mut x = x_lambda.to_vec();
        let mut free: Vec<u64> = problem
            .accelerators
            .iter()
            .map(|a| u64::from(a.count))
            .collect();
        let mut pending = Vec::new();
        for (m, model) in problem.models.iter().enumerate() {
            let on_over = problem.variants[model.variants.clone()]
                .iter()
                .zip(&x[model.variants.clone()])
                .any(|(v, &n)| n > 0 && over[v.accelerator]);
            if on_over {
                pending.push(m);
                for n in &mut x[model.variants.clone()] {
                    *n = 0;
                }
            } else {
                let mut used = vec![0u64; 0];
                used.resize(problem.accelerators.len(), 0);
                self.add_usage(m, &x, &mut used, 1);
                for (f, u) in free.iter_mut().zip(used) {
                    *f = f.saturating_sub(u);
                }
            }
        }
        let forbid: Vec<u64> = over.iter().map(|&o| if o { 0 } else { u64::MAX }).collect();
        let mut scratch = vec![0u32; problem.variants.len()];
        let mut regret: Vec<(f64, usize)> = pending
            .iter()
            .map(|&m| {
                let range = problem.models[m].variants.clone();
                let here: f64 = problem.variants[range.clone()]
                    .iter()
                    .zip(&x_lambda[range.clone()])
                    .map(|(v, &n)| {
                        (v.price + lambda[v.accelerator] * f64::from(v.gpus)) * f64::from(n)
                    })
                    .sum();
                let alt = self.solve_model(
                    m,
                    Some(lambda),
                    targets[m],
                    Some(&forbid),
                    &mut scratch[range],
                );
                (alt.map_or(f64::INFINITY, |a| a - here), m)
            })
            .collect();
        regret.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        for (_, m) in regret {
            let range = problem.models[m].variants.clone();
            self.solve_model(m, Some(lambda), targets[m], Some(&free), &mut x[range])?;
            let mut used = vec![0u64; problem.accelerators.len()];
            self.add_usage(m, &x, &mut used, 1);
            for (f, u) in free.iter_mut().zip(used) {
                *f -= u;
            }
        }
        self.local_search(&mut x, targets, None);
        Some(x)
    }

    /// Re-solves one model at a time at plain prices against the GPUs left, keeping a change
    /// when it is cheaper (or as cheap with fewer changes). Keeps every target met.
    fn local_search(&mut self, x: &mut [u32], targets: &[f64], only: Option<&[usize]>) -> bool {
        let problem = self.problem;
        let mut free = self.free(x);
        let mut scratch = vec![0u32; problem.variants.len()];
        let mut any = false;
        let all: Vec<usize>;
        let members = match only {
            Some(members) => members,
            None => {
                all = (0..problem.models.len()).collect();
                &all
            }
        };
        for _ in 0..LOCAL_SEARCH_ROUNDS {
            let mut improved = false;
            for &m in members {
                let range = problem.models[m].variants.clone();
                self.add_usage(m, x, &mut free, 1);
                let before = self.model_cost(m, x);
                let before_changes = self.model_changes(m, x);
                if let Some(cost) = self.solve_model(
                    m,
                    None,
                    targets[m],
                    Some(&free),
                    &mut scratch[range.clone()],
                ) {
                    let tol = TOLERANCE * before.abs().max(1.0);
                    let better = cost < before - tol
                        || (cost <= before + tol
                            && self.model_changes(m, &scratch) < before_changes);
                    if better {
                        x[range.clone()].copy_from_slice(&scratch[range]);
                        improved = true;
                    }
                }
                self.add_usage(m, x, &mut free, -1);
            }
            any |= improved;
            if !improved {
                break;
            }
        }
        any
    }
}

impl Workspace<'_> {
    /// Two-model moves the one-model search cannot make: model `m2` would be cheaper with
    /// more GPUs of a full type `a`, and model `m1` can leave `a` (for a smaller cost rise
    /// than `m2` saves) to make that room. Returns whether any move was made.
    fn pair_moves(&mut self, x: &mut [u32], targets: &[f64]) -> bool {
        let problem = self.problem;
        let types = problem.accelerators.len();
        let mut free = self.free(x);
        let mut scratch = vec![0u32; problem.variants.len()];
        // Per type: models that can leave it, cheapest rise first: (rise, freed GPUs, model).
        let mut leavers: Vec<Vec<(f64, u64, usize)>> = vec![Vec::new(); types];
        for (m, &target) in targets.iter().enumerate() {
            let range = problem.models[m].variants.clone();
            let mut own = vec![0u64; types];
            self.add_usage(m, x, &mut own, 1);
            let before = self.model_cost(m, x);
            for a in 0..types {
                if own[a] == 0 || free[a] >= own[a] {
                    continue;
                }
                let mut caps: Vec<u64> = free.iter().zip(&own).map(|(f, o)| f + o).collect();
                caps[a] = 0;
                if let Some(cost) =
                    self.solve_model(m, None, target, Some(&caps), &mut scratch[range.clone()])
                {
                    leavers[a].push((cost - before, own[a], m));
                }
            }
        }
        for list in &mut leavers {
            list.sort_by(|p, q| p.0.total_cmp(&q.0).then(p.2.cmp(&q.2)));
        }
        let mut touched = vec![false; problem.models.len()];
        let mut moved = false;
        for m2 in 0..problem.models.len() {
            if touched[m2] {
                continue;
            }
            let range2 = problem.models[m2].variants.clone();
            let mut own2 = vec![0u64; types];
            self.add_usage(m2, x, &mut own2, 1);
            let before2 = self.model_cost(m2, x);
            for a in 0..types {
                let mut caps: Vec<u64> = free.iter().zip(&own2).map(|(f, o)| f + o).collect();
                caps[a] = u64::MAX;
                let Some(cost2) = self.solve_model(
                    m2,
                    None,
                    targets[m2],
                    Some(&caps),
                    &mut scratch[range2.clone()],
                ) else {
                    continue;
                };
                let saving = before2 - cost2;
                let tol = TOLERANCE * before2.abs().max(1.0);
                let wanted: u64 = problem.variants[range2.clone()]
                    .iter()
                    .zip(&scratch[range2.clone()])
                    .filter(|(v, _)| v.accelerator == a)
                    .map(|(v, &n)| u64::from(n) * u64::from(v.gpus))
                    .sum();
                let need = wanted.saturating_sub(free[a] + own2[a]);
                if saving <= tol || need == 0 {
                    continue;
                }
                let Some(&(rise, _, m1)) = leavers[a].iter().find(|&&(rise, freed, m1)| {
                    m1 != m2 && !touched[m1] && freed >= need && rise < saving - tol
                }) else {
                    continue;
                };
                // Re-check both moves against the GPUs free now, then apply them together.
                let saved = x.to_vec();
                let range1 = problem.models[m1].variants.clone();
                self.add_usage(m1, x, &mut free, 1);
                let mut caps1 = free.clone();
                caps1[a] = 0;
                let before1 = self.model_cost(m1, x);
                let ok1 = self
                    .solve_model(
                        m1,
                        None,
                        targets[m1],
                        Some(&caps1),
                        &mut scratch[range1.clone()],
                    )
                    .filter(|c| c - before1 <= rise + tol);
                if ok1.is_none() {
                    self.add_usage(m1, x, &mut free, -1);
                    continue;
                }
                x[range1.clone()].copy_from_slice(&scratch[range1.clone()]);
                self.add_usage(m1, x, &mut free, -1);
                self.add_usage(m2, x, &mut free, 1);
                let new_cost1 = self.model_cost(m1, x);
                let ok2 = self
                    .solve_model(
                        m2,
                        None,
                        targets[m2],
                        Some(&free),
                        &mut scratch[range2.clone()],
                    )
                    .filter(|c| (new_cost1 - before1) + c < before2 - tol);
                match ok2 {
                    Some(_) => {
                        x[range2.clone()].copy_from_slice(&scratch[range2.clone()]);
                        self.add_usage(m2, x, &mut free, -1);
                        touched[m1] = true;
                        touched[m2] = true;
                        moved = true;
                        break;
                    }
                    None => {
                        self.add_usage(m2, x, &mut free, -1);
                        self.add_usage(m1, x, &mut free, 1);
                        x.copy_from_slice(&saved);
                        self.add_usage(m1, x, &mut free, -1);
                    }
                }
            }
        }
        moved
    }
}

/// Minimum-cost plan that meets every model's demand, with its lower bound; falls back to
/// [`fair_share`] when the demand cannot all be met.
pub(crate) fn solve(problem: &Problem, deadline: &Deadline) -> Result<FastOutcome, PlanError> {
    let mut ws = Workspace::new(problem, deadline.clone());
    let demands: Vec<f64> = problem.models.iter().map(|m| m.demand).collect();
    let all = ws.min_cost(&demands, None, Limits::FULL);
    if let Some(x) = all.x {
        return Ok(FastOutcome {
            x,
            lower_bound: all.lower_bound,
        });
    }
    let x = fair_share(&mut ws, &all.lambda)?;
    let all_met = (0..problem.models.len()).all(|m| meets(problem.coverage(m, &x), demands[m]));
    Ok(FastOutcome {
        x,
        lower_bound: if all_met { all.lower_bound } else { None },
    })
}

/// Service level of model `m` for max-min fairness: `served / (weight * demand)`.
fn level(problem: &Problem, m: usize, x: &[u32]) -> f64 {
    let model = &problem.models[m];
    if model.demand <= 0.0 {
        return f64::INFINITY;
    }
    problem.served(m, x) / (model.weight * model.demand)
}

/// Accelerator types model `m` can serve on.
fn usable_types(problem: &Problem, m: usize) -> usize {
    let mut t: Vec<usize> = problem.variants[problem.models[m].variants.clone()]
        .iter()
        .filter(|v| v.capacity > 0.0)
        .map(|v| v.accelerator)
        .collect();
    t.sort_unstable();
    t.dedup();
    t.len()
}

/// Places `members` at level `t` one by one (in the given order) into the GPUs `free`,
/// each at least cost under `prices` (plain prices when None); writes into `out`. Returns
/// false when some member does not fit (`out` is then partly written).
fn place_greedy(
    ws: &mut Workspace<'_>,
    members: &[usize],
    t: f64,
    free: &[u64],
    prices: Option<&[f64]>,
    out: &mut [u32],
) -> bool {
    let problem = ws.problem;
    let mut left = free.to_vec();
    let mut scratch = vec![0u32; problem.variants.len()];
    for &m in members {
        let model = &problem.models[m];
        let target = (t * model.weight).min(1.0) * problem.cap_target(m);
        let range = model.variants.clone();
        if ws
            .solve_model(m, prices, target, Some(&left), &mut scratch[range.clone()])
            .is_none()
        {
            return false;
        }
        out[range.clone()].copy_from_slice(&scratch[range]);
        ws.add_usage(m, out, &mut left, -1);
    }
    true
}

/// Fair-share plan when GPUs are too few (see the module docs). Per tier, highest first:
///
/// 1. a bisection on the tier's level placing its members greedily (least flexible first)
///    into the GPUs the tiers above left, once at plain prices and once at the contention
///    prices `contention` (so members stay off the types the others fight over);
/// 2. a bisection above that level where each probe re-places every model of this tier and
///    the tiers above jointly (higher tiers held at the rate they already serve), so a higher
///    tier moves to the types lower tiers cannot use instead of locking them out;
/// 3. idle GPUs to the tier's unmet members; their served rates are then held.
///
/// Last, cost is lowered at the rates reached and idle GPUs go to unmet demand, tier by tier.
fn fair_share(ws: &mut Workspace<'_>, contention: &[f64]) -> Result<Vec<u32>, PlanError> {
    let problem = ws.problem;
    let models = problem.models.len();
    let zero = vec![0.0; models];
    let Some(mut x) = ws.min_cost(&zero, None, Limits::FULL).x else {
        return Err(PlanError::floors_exceed_inventory(problem));
    };
    let tiers = problem.tiers();
    // Rate each model of a planned tier must keep covering, req/s.
    let mut held = vec![0.0; models];
    let mut lambda: Vec<f64> = contention.to_vec();
    for &tier in &tiers {
        let mut members: Vec<usize> = (0..models)
            .filter(|&m| problem.models[m].priority == tier)
            .collect();
        members.sort_by(|&a, &b| {
            usable_types(problem, a)
                .cmp(&usable_types(problem, b))
                .then(
                    problem.models[b]
                        .demand
                        .total_cmp(&problem.models[a].demand),
                )
                .then(a.cmp(&b))
        });
        let t_full = members
            .iter()
            .map(|&m| 1.0 / problem.models[m].weight)
            .fold(0.0, f64::max);
        let mut free = ws.free(&x);
        for &m in &members {
            ws.add_usage(m, &x, &mut free, 1);
        }
        let floors = x.clone();
        let mut candidate = floors.clone();
        let mut lo = problem.tier_level(&members, &x);
        if place_greedy(ws, &members, t_full, &free, None, &mut candidate) {
            x = candidate;
            lo = t_full;
        } else {
            for prices in [None, Some(contention)] {
                let (mut low, mut hi) = (0.0, t_full);
                for _ in 0..GREEDY_PROBES {
                    if hi - low <= 1e-7 * hi || ws.deadline.expired() {
                        break;
                    }
                    let mid = 0.5 * (low + hi);
                    candidate.clone_from(&floors);
                    if place_greedy(ws, &members, mid, &free, prices, &mut candidate) {
                        // The level the integer plan really reaches can pass the probe's.
                        let achieved = problem.tier_level(&members, &candidate).min(t_full);
                        low = mid.max(achieved.min(hi));
                        if achieved > lo {
                            lo = achieved;
                            x.clone_from(&candidate);
                        }
                    } else {
                        hi = mid;
                    }
                }
            }
        }
        if lo < t_full * (1.0 - 1e-9) {
            let joint = ws.deadline.share(JOINT_TIME_SHARE);
            let mut hi = t_full;
            let mut targets = vec![0.0; models];
            for _ in 0..JOINT_PROBES {
                if hi - lo <= 1e-6 * hi || joint.expired() {
                    break;
                }
                let mid = 0.5 * (lo + hi);
                for m in 0..models {
                    targets[m] = if problem.models[m].priority > tier {
                        held[m]
                    } else if problem.models[m].priority == tier {
                        (mid * problem.models[m].weight).min(1.0) * problem.cap_target(m)
                    } else {
                        0.0
                    };
                }
                let saved = std::mem::replace(&mut ws.deadline, joint.clone());
                let probe = ws.min_cost(&targets, Some(&lambda), Limits::PROBE);
                ws.deadline = saved;
                match probe.x {
                    Some(plan) => {
                        let achieved = problem.tier_level(&members, &plan).min(t_full);
                        lo = mid.max(achieved.min(hi));
                        x = plan;
                        lambda = probe.lambda;
                    }
                    None => hi = mid,
                }
            }
        }
        grow(problem, &mut x, &members);
        for &m in &members {
            held[m] = problem.served(m, &x);
        }
    }
    // Lower cost at the levels reached, tier by tier; GPUs that frees go to unmet demand of
    // that tier and the tiers above it before any lower tier may re-solve into them.
    let members_of: Vec<Vec<usize>> = tiers
        .iter()
        .map(|&tier| {
            (0..models)
                .filter(|&m| problem.models[m].priority == tier)
                .collect()
        })
        .collect();
    for _ in 0..LOCAL_SEARCH_ROUNDS {
        if ws.deadline.expired() {
            break;
        }
        let mut changed = false;
        for k in 0..tiers.len() {
            let served: Vec<f64> = (0..models).map(|m| problem.served(m, &x)).collect();
            changed |= ws.local_search(&mut x, &served, Some(&members_of[k]));
            for members in &members_of[..=k] {
                changed |= grow(problem, &mut x, members);
            }
        }
        if !changed {
            break;
        }
    }
    // Strict tiers, whatever the joint re-placements freed late: an unmet model takes the
    // GPUs lower tiers hold above their floors on a type it can use. Then work conservation:
    // no unmet model while a type it can use has room for one more of its replicas.
    preempt_lower_tiers(problem, &mut x, &members_of);
    for members in &members_of {
        grow(problem, &mut x, members);
    }
    Ok(x)
}

/// For each tier from the highest (`members_of` in tier order), gives its unmet members
/// (lowest level first) replicas made of free GPUs plus GPUs taken from lower-tier replicas
/// above their minimums on the same type, while that is possible. Returns whether any moved.
fn preempt_lower_tiers(problem: &Problem, x: &mut [u32], members_of: &[Vec<usize>]) -> bool {
    let mut moved = false;
    let mut free: Vec<u64> = problem
        .accelerators
        .iter()
        .zip(problem.usage(x))
        .map(|(a, u)| u64::from(a.count).saturating_sub(u))
        .collect();
    for (k, members) in members_of.iter().enumerate() {
        let lower: Vec<usize> = members_of[k + 1..].iter().flatten().copied().collect();
        if lower.is_empty() {
            break;
        }
        let mut unmet: Vec<usize> = members
            .iter()
            .copied()
            .filter(|&m| !meets(problem.coverage(m, x), problem.cap_target(m)))
            .collect();
        unmet.sort_by(|&a, &b| level(problem, a, x).total_cmp(&level(problem, b, x)));
        for m in unmet {
            // Bounded: each pass adds one replica to m or stops.
            let most = problem.models[m].max_replicas;
            for _ in 0..most {
                if meets(problem.coverage(m, x), problem.cap_target(m)) {
                    break;
                }
                let count: u32 = x[problem.models[m].variants.clone()].iter().sum();
                if count >= problem.models[m].max_replicas {
                    break;
                }
                // Lower-tier GPUs above minimums, per type.
                let mut reclaimable = vec![0u64; problem.accelerators.len()];
                for &l in &lower {
                    let model = &problem.models[l];
                    let total: u32 = x[model.variants.clone()].iter().sum();
                    let mut spare_replicas = total.saturating_sub(model.min_replicas);
                    for vi in model.variants.clone() {
                        let v = &problem.variants[vi];
                        let spare = x[vi].saturating_sub(v.min_replicas).min(spare_replicas);
                        spare_replicas -= spare;
                        reclaimable[v.accelerator] += u64::from(spare) * u64::from(v.gpus);
                    }
                }
                let pick = problem.models[m]
                    .variants
                    .clone()
                    .filter(|&vi| {
                        let v = &problem.variants[vi];
                        v.capacity > 0.0
                            && x[vi] < v.max_replicas
                            && free[v.accelerator] + reclaimable[v.accelerator] >= u64::from(v.gpus)
                    })
                    .min_by(|&a, &b| {
                        let ra = problem.variants[a].price / problem.variants[a].capacity;
                        let rb = problem.variants[b].price / problem.variants[b].capacity;
                        ra.total_cmp(&rb).then(a.cmp(&b))
                    });
                let Some(vi) = pick else { break };
                let (a, need) = (
                    problem.variants[vi].accelerator,
                    u64::from(problem.variants[vi].gpus),
                );
                // Take from the lowest tier first, the best-served model first.
                let mut donors: Vec<usize> = lower.clone();
                donors.sort_by(|&p, &q| {
                    problem.models[p]
                        .priority
                        .cmp(&problem.models[q].priority)
                        .then(level(problem, q, x).total_cmp(&level(problem, p, x)))
                });
                for l in donors {
                    if free[a] >= need {
                        break;
                    }
                    let model = &problem.models[l];
                    for ui in model.variants.clone() {
                        let u = &problem.variants[ui];
                        if u.accelerator != a {
                            continue;
                        }
                        while free[a] < need && x[ui] > u.min_replicas {
                            let total: u32 = x[model.variants.clone()].iter().sum();
                            if total <= model.min_replicas {
                                break;
                            }
                            x[ui] -= 1;
                            free[a] += u64::from(u.gpus);
                        }
                    }
                }
                if free[a] < need {
                    break;
                }
                x[vi] += 1;
                free[a] -= need;
                moved = true;
            }
        }
    }
    moved
}

/// Adds replicas one at a time to the unmet member with the lowest service level, on its
/// cheapest-per-capacity variant that still fits, until no unmet member can grow. Returns
/// whether anything was added.
fn grow(problem: &Problem, x: &mut [u32], members: &[usize]) -> bool {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    #[derive(PartialEq)]
    struct Key(f64);
    impl Eq for Key {}
    impl PartialOrd for Key {
        fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
            Some(self.cmp(other))
        }
    }
    impl Ord for Key {
        fn cmp(&self, other: &Self) -> std::cmp::Ordering {
            self.0.total_cmp(&other.0)
        }
    }
    let mut free: Vec<u64> = {
        let used = problem.usage(x);
        problem
            .accelerators
            .iter()
            .zip(used)
            .map(|(a, u)| u64::from(a.count).saturating_sub(u))
            .collect()
    };
    let mut heap: BinaryHeap<Reverse<(Key, usize)>> = members
        .iter()
        .filter(|&&m| !meets(problem.coverage(m, x), problem.models[m].demand))
        .map(|&m| Reverse((Key(level(problem, m, x)), m)))
        .collect();
    let mut grown = false;
    while let Some(Reverse((_, m))) = heap.pop() {
        let model = &problem.models[m];
        let count: u32 = x[model.variants.clone()].iter().sum();
        if count >= model.max_replicas {
            continue;
        }
        let pick = model
            .variants
            .clone()
            .filter(|&v| {
                let var = &problem.variants[v];
                var.capacity > 0.0
                    && x[v] < var.max_replicas
                    && free[var.accelerator] >= u64::from(var.gpus)
            })
            .min_by(|&a, &b| {
                let ra = problem.variants[a].price / problem.variants[a].capacity;
                let rb = problem.variants[b].price / problem.variants[b].capacity;
                ra.total_cmp(&rb).then(a.cmp(&b))
            });
        let Some(v) = pick else { continue };
        x[v] += 1;
        free[problem.variants[v].accelerator] -= u64::from(problem.variants[v].gpus);
        grown = true;
        if !meets(problem.coverage(m, x), model.demand) {
            heap.push(Reverse((Key(level(problem, m, x)), m)));
        }
    }
    grown
}
