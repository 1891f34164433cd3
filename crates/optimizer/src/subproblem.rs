//! The per-model subproblem, solved exactly by a small branch and bound:
//!
//! ```text
//! minimize   sum_v price_v * x_v
//! subject to sum_v capacity_v * x_v >= target
//!            min_v <= x_v <= max_v,   min_total <= sum_v x_v <= max_total
//!            sum_{v on type a} gpus_v * x_v <= cap_a      (optional GPU caps)
//! ```
//!
//! Ties in price go to fewer changes from the current replicas, then to the lexicographically
//! smaller replica vector in input order. A model has a handful of variants, so the search is
//! tiny; the bound is the fractional cover (variants taken in price-per-capacity order).

use crate::problem::{meets, VariantInfo, RATE_TOLERANCE, TOLERANCE};

/// Nodes explored before ties stop being explored (the cost stays exact; only the tie-break
/// between equal-cost answers may then be incomplete).
const TIE_NODE_BUDGET: usize = 20_000;

/// One per-model subproblem.
pub(crate) struct SubInput<'a> {
    /// The model's variants.
    pub vars: &'a [VariantInfo],
    /// Objective price per replica of each variant ($/h, possibly with GPU shadow prices).
    pub prices: &'a [f64],
    /// Rate to cover, req/s.
    pub target: f64,
    /// Minimum replicas over all variants.
    pub min_total: u32,
    /// Maximum replicas over all variants.
    pub max_total: u32,
    /// GPUs available to this model per accelerator type (global index), if capped.
    pub caps: Option<&'a [u64]>,
}

/// Reusable scratch space for [`SubSolver::solve`].
#[derive(Default)]
pub(crate) struct SubSolver {
    order: Vec<usize>,
    x: Vec<u32>,
    best: Vec<u32>,
    leaf: Vec<u32>,
    best_cost: f64,
    best_changes: u64,
    found: bool,
    nodes: usize,
    suffix_lo_count: Vec<u32>,
    suffix_lo_cover: Vec<f64>,
    suffix_lo_cost: Vec<f64>,
}

impl SubSolver {
    /// Solves `input`; writes the replica counts into `out` (one per variant) and returns the
    /// objective, or `None` when no replica vector meets the target within the bounds and caps.
    pub fn solve(&mut self, input: &SubInput<'_>, out: &mut [u32]) -> Option<f64> {
        let k = input.vars.len();
        self.order.clear();
        self.order.extend(0..k);
        let ratio = |i: usize| {
            let v = &input.vars[i];
            if v.capacity > 0.0 {
                input.prices[i] / v.capacity
            } else {
                f64::INFINITY
            }
        };
        self.order
            .sort_by(|&a, &b| ratio(a).total_cmp(&ratio(b)).then(a.cmp(&b)));
        self.x.clear();
        self.x.resize(k, 0);
        self.suffix_lo_count.clear();
        self.suffix_lo_count.resize(k + 1, 0);
        self.suffix_lo_cover.clear();
        self.suffix_lo_cover.resize(k + 1, 0.0);
        self.suffix_lo_cost.clear();
        self.suffix_lo_cost.resize(k + 1, 0.0);
        for d in (0..k).rev() {
            let i = self.order[d];
            let v = &input.vars[i];
            self.suffix_lo_count[d] = self.suffix_lo_count[d + 1] + v.min_replicas;
            self.suffix_lo_cover[d] =
                self.suffix_lo_cover[d + 1] + f64::from(v.min_replicas) * v.capacity;
            self.suffix_lo_cost[d] =
                self.suffix_lo_cost[d + 1] + f64::from(v.min_replicas) * input.prices[i];
        }
        if self.suffix_lo_count[0] > input.max_total {
            return None;
        }
        self.found = false;
        self.best_cost = f64::INFINITY;
        self.best_changes = u64::MAX;
        self.nodes = 0;
        self.dfs(input, 0, 0.0, 0.0, 0);
        if !self.found {
            return None;
        }
        out[..k].copy_from_slice(&self.best);
        Some(self.best_cost)
    }

    /// Most replicas of variant `i` the GPU caps allow, given the replicas already placed and
    /// the minimums still to place on the same accelerator type.
    fn cap_limit(&self, input: &SubInput<'_>, depth: usize, i: usize) -> u32 {
        let Some(caps) = input.caps else {
            return u32::MAX;
        };
        let acc = input.vars[i].accelerator;
        let mut used: u64 = 0;
        for (j, v) in input.vars.iter().enumerate() {
            if v.accelerator == acc {
                used += u64::from(self.x[j]) * u64::from(v.gpus);
            }
        }
        for &j in &self.order[depth + 1..] {
            let v = &input.vars[j];
            if v.accelerator == acc {
                used += u64::from(v.min_replicas) * u64::from(v.gpus);
            }
        }
        let free = caps[acc].saturating_sub(used);
        u32::try_from(free / u64::from(input.vars[i].gpus)).unwrap_or(u32::MAX)
    }

    /// Cheapest fractional cover of `need` by the variants at order positions `from..`,
    /// beyond their minimums; `None` when they cannot cover it.
    fn fractional_cover(&self, input: &SubInput<'_>, from: usize, mut need: f64) -> Option<f64> {
        let mut cost = 0.0;
        if need <= 0.0 {
            return Some(0.0);
        }
        for &j in &self.order[from..] {
            let v = &input.vars[j];
            if v.capacity <= 0.0 {
                break;
            }
            let mut hi = v.max_replicas;
            if let Some(caps) = input.caps {
                hi = hi.min(
                    u32::try_from(caps[v.accelerator] / u64::from(v.gpus)).unwrap_or(u32::MAX),
                );
            }
            let room = f64::from(hi.saturating_sub(v.min_replicas));
            let take = room.min(need / v.capacity);
            cost += take * input.prices[j];
            need -= take * v.capacity;
            if need <= RATE_TOLERANCE * input.target.max(1.0) {
                return Some(cost);
            }
        }
        None
    }

    fn dfs(&mut self, input: &SubInput<'_>, depth: usize, covered: f64, cost: f64, count: u32) {
        self.nodes += 1;
        if depth == self.order.len() {
            self.leaf(input, covered, count);
            return;
        }
        let i = self.order[depth];
        let v = &input.vars[i];
        let lo = v.min_replicas;
        let need = input.target - covered - self.suffix_lo_cover[depth + 1];
        let by_cover = if need > 0.0 && v.capacity > 0.0 {
            let extra = (need / v.capacity - RATE_TOLERANCE).ceil().max(0.0);
            lo.saturating_add(if extra >= f64::from(u32::MAX) {
                u32::MAX
            } else {
                extra as u32
            })
        } else {
            lo
        };
        let by_total = input
            .max_total
            .saturating_sub(count)
            .saturating_sub(self.suffix_lo_count[depth + 1]);
        let hi = v
            .max_replicas
            .min(by_cover)
            .min(by_total)
            .min(self.cap_limit(input, depth, i));
        if hi < lo {
            return;
        }
        let price = input.prices[i];
        let capacity = v.capacity;
        for n in (lo..=hi).rev() {
            let new_cover = covered + f64::from(n) * capacity;
            let new_cost = cost + f64::from(n) * price;
            let rest_need = input.target - new_cover - self.suffix_lo_cover[depth + 1];
            let Some(fraction) = self.fractional_cover(input, depth + 1, rest_need) else {
                // Fewer replicas of the best-ratio variant only make covering harder.
                break;
            };
            let bound = new_cost + self.suffix_lo_cost[depth + 1] + fraction;
            if self.found {
                let tol = TOLERANCE * self.best_cost.abs().max(1.0);
                let pruned = if self.nodes < TIE_NODE_BUDGET {
                    bound > self.best_cost + tol
                } else {
                    bound >= self.best_cost - tol
                };
                if pruned {
                    if n < hi {
                        break;
                    }
                    continue;
                }
            }
            self.x[i] = n;
            self.dfs(input, depth + 1, new_cover, new_cost, count + n);
        }
        self.x[i] = 0;
    }

    fn leaf(&mut self, input: &SubInput<'_>, covered: f64, count: u32) {
        if !meets(covered, input.target) {
            return;
        }
        self.leaf.clear();
        self.leaf.extend_from_slice(&self.x);
        let mut count = count;
        // Fill up to the model's minimum with the cheapest variants that have room.
        while count < input.min_total {
            let mut pick: Option<(usize, u32)> = None;
            for (j, v) in input.vars.iter().enumerate() {
                let mut room = v.max_replicas.saturating_sub(self.leaf[j]);
                if let Some(caps) = input.caps {
                    let used: u64 = input
                        .vars
                        .iter()
                        .zip(&self.leaf)
                        .filter(|(w, _)| w.accelerator == v.accelerator)
                        .map(|(w, &n)| u64::from(n) * u64::from(w.gpus))
                        .sum();
                    let free = caps[v.accelerator].saturating_sub(used) / u64::from(v.gpus);
                    room = room.min(u32::try_from(free).unwrap_or(u32::MAX));
                }
                if room > 0 && pick.is_none_or(|(p, _)| input.prices[j] < input.prices[p]) {
                    pick = Some((j, room));
                }
            }
            let Some((j, room)) = pick else {
                return;
            };
            let add = room.min(input.min_total - count);
            self.leaf[j] += add;
            count += add;
        }
        let cost: f64 = self
            .leaf
            .iter()
            .zip(input.prices)
            .map(|(&n, &p)| f64::from(n) * p)
            .sum();
        let changes: u64 = self
            .leaf
            .iter()
            .zip(input.vars)
            .map(|(&n, v)| u64::from(n.abs_diff(v.current)))
            .sum();
        let better = if !self.found {
            true
        } else {
            let tol = TOLERANCE * self.best_cost.abs().max(1.0);
            if cost < self.best_cost - tol {
                true
            } else if cost > self.best_cost + tol {
                false
            } else if changes != self.best_changes {
                changes < self.best_changes
            } else {
                self.leaf < self.best
            }
        };
        if better {
            self.found = true;
            self.best_cost = cost;
            self.best_changes = changes;
            self.best.clear();
            self.best.extend_from_slice(&self.leaf);
        }
    }
}
