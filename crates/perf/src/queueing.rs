//! The queueing model of one replica: a state-dependent birth-death chain with prefill
//! stalls, solved in closed form (see `docs/perf-model.md` for the derivation).

use wvo_api::{Profile, Slo};

use crate::{CapacityEstimate, CapacityLimit, PerfError, TokenMix};

/// Capacity is never placed closer to saturation than this fraction of the saturation rate:
/// `rps <= (1 - SATURATION_MARGIN) * saturation_rps`. Near saturation the mean queue grows as
/// `1/(1 - utilization)`, so a tiny error in the profile there means an unbounded latency error.
pub const SATURATION_MARGIN: f64 = 0.05;

/// Batch sizes above this are modelled as this (the chain costs `O(batch)` per evaluation;
/// no real replica decodes more requests at once).
pub const MAX_MODELLED_BATCH: u32 = 1 << 16;

/// Relative precision of the capacity search, as a fraction of the saturation rate.
const RATE_TOLERANCE: f64 = 1e-4;

/// Prediction of the steady state of one replica at an arrival rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prediction {
    /// Mean time to first token, ms: `queue_wait_ms` + wait for the step in progress +
    /// the (batched) prefill. Infinite when not `stable`.
    pub ttft_ms: f64,
    /// Mean inter-token latency over all generated tokens after the first, ms (decode step
    /// plus stalls by other requests' prefills). Infinite when not `stable`.
    pub itl_ms: f64,
    /// Mean wait for a batch slot (queueing beyond `max_batch_size`), ms.
    pub queue_wait_ms: f64,
    /// Mean number of requests holding a batch slot (decoding), requests.
    pub mean_batch: f64,
    /// Mean number of requests waiting for a batch slot, requests.
    pub mean_waiting: f64,
    /// Arrival rate over the saturation rate (the highest rate the replica can complete), 0..;
    /// >= 1 means unstable.
    pub utilization: f64,
    /// Whether the queue is stable (finite steady state).
    pub stable: bool,
    /// Fraction of time the replica spends in prefill steps, 0..=1.
    pub prefill_share: f64,
    /// Mean requests per prefill step (prefill batching), requests.
    pub mean_prefill_batch: f64,
}

/// The profile and token mix in the units the chain uses (ms).
#[derive(Clone, Copy, Debug)]
struct Model {
    alpha: f64,
    beta: f64,
    gamma: f64,
    delta: f64,
    max_batch: u32,
    input: f64,
    /// Decode tokens per request (`avg_output_tokens - 1`: the prefill yields the first).
    decode_tokens: f64,
}

impl Model {
    fn new(profile: &Profile, mix: &TokenMix) -> Result<Self, PerfError> {
        crate::check_profile(profile)?;
        crate::check_mix(mix)?;
        Ok(Self {
            alpha: profile.alpha,
            beta: profile.beta,
            gamma: profile.gamma,
            delta: profile.delta,
            max_batch: profile.max_batch_size.min(MAX_MODELLED_BATCH),
            input: mix.avg_input_tokens,
            // Floor keeps the chain finite for single-token outputs (no decode at all).
            decode_tokens: (mix.avg_output_tokens - 1.0).max(1e-6),
        })
    }

    fn itl_at(&self, n: f64) -> f64 {
        self.alpha + self.beta * n
    }

    /// Prefill time of one request alone, ms.
    fn prefill_ms(&self) -> f64 {
        self.gamma + self.delta * self.input
    }

    /// Prefill batching at `lam` requests per ms: `(f, m)` with `f` the fraction of time in
    /// prefill steps and `m` the mean number of arrivals during the step before a prefill.
    ///
    /// Arrivals during one step are admitted together by the next, so a prefill step holds
    /// `K ~ Poisson(m) | K >= 1` requests, `E[K] = m / (1 - e^-m)`, and `gamma` is paid once
    /// per step: `f = lam * (delta*I + gamma/E[K])`. The preceding step is a decode step at the
    /// mean-field batch `b = lam*D*alpha / (1 - f - lam*D*beta)` or a prefill step (weights
    /// `1-f`, `f`). A few scalar fixed-point rounds; no chain needed.
    fn prefill_share(&self, lam: f64) -> (f64, f64) {
        let bmax = f64::from(self.max_batch);
        let per_token = self.delta * self.input;
        let mut k = 1.0;
        let mut f = lam * (per_token + self.gamma);
        let mut m = 0.0;
        for _ in 0..12 {
            let denom = 1.0 - f - lam * self.decode_tokens * self.beta;
            let b = if denom > 0.0 {
                (lam * self.decode_tokens * self.alpha / denom).min(bmax)
            } else {
                bmax
            };
            let decode_step = self.itl_at(b.max(1.0));
            let prefill_step = self.gamma + per_token * k;
            let fc = f.clamp(0.0, 1.0);
            m = lam * ((1.0 - fc) * decode_step + fc * prefill_step);
            k = batch_of(m);
            let next = lam * (per_token + self.gamma / k);
            let done = (next - f).abs() <= 1e-12 * next.max(1e-300);
            f = next;
            if done {
                break;
            }
        }
        (f, m)
    }

    /// Saturation arrival rate, requests per ms: the full batch decoding, interrupted by
    /// prefills: `lam = (1 - f(lam)) * B / (D * ITL(B))`, solved by bisection (the right side
    /// decreases in `lam`).
    fn saturation_per_ms(&self) -> f64 {
        let b = f64::from(self.max_batch);
        let c = b / (self.decode_tokens * self.itl_at(b));
        // Unbatched prefill gives a lower bound, prefill without gamma an upper bound.
        let lo = c / (1.0 + c * self.prefill_ms());
        let hi = c / (1.0 + c * self.delta * self.input);
        let excess = |lam: f64| lam - (1.0 - self.prefill_share(lam).0) * c;
        if hi <= lo || hi.is_nan() {
            return lo;
        }
        largest_feasible(lo, excess(lo), hi, excess(hi), 1e-9 * hi, excess)
    }

    /// Steady state at `lam` requests per ms; `sat` = [`Self::saturation_per_ms`].
    fn eval(&self, lam: f64, sat: f64) -> Prediction {
        let utilization = lam / sat;
        let p1 = self.prefill_ms();
        let (f, m) = self.prefill_share(lam);
        if utilization.is_nan() || utilization >= 1.0 || f >= 1.0 {
            return Prediction {
                ttft_ms: f64::INFINITY,
                itl_ms: f64::INFINITY,
                queue_wait_ms: f64::INFINITY,
                mean_batch: f64::from(self.max_batch),
                mean_waiting: f64::INFINITY,
                utilization,
                stable: false,
                prefill_share: f.min(1.0),
                mean_prefill_batch: batch_of(m),
            };
        }
        if lam <= 0.0 {
            return Prediction {
                ttft_ms: p1,
                itl_ms: self.itl_at(1.0),
                queue_wait_ms: 0.0,
                mean_batch: 0.0,
                mean_waiting: 0.0,
                utilization: 0.0,
                stable: true,
                prefill_share: 0.0,
                mean_prefill_batch: 1.0,
            };
        }
        // Unnormalised q_n = prod_{j<=n} lam / mu(j). For n <= B (no queue) the completion
        // rate is mu(n) = n / (n*Pbar + D*ITL(n)), Pbar = f/lam the prefill time per request:
        // prefill work is charged at the completion rate of the state, so fuller states see
        // more stalls (as in the engine: bursts of arrivals both fill the batch and trigger
        // prefills), and the mean prefill share stays sum p_n mu(n) Pbar = f.
        // Sums: s0 = sum q_n, s1 = sum b q_n, s_itl = sum q_n (1 - mu(n) Pbar) ITL(b), the
        // decode time share weighted by its step length (q_n mu(n) = lam q_{n-1}).
        let k = lam * self.decode_tokens;
        let (mut q, mut s0, mut s1, mut s_itl) = (1.0_f64, 1.0_f64, 0.0_f64, 0.0_f64);
        let mut reached_tail = true;
        for n in 1..=self.max_batch {
            let nf = f64::from(n);
            let itl = self.itl_at(nf);
            let ratio = f + k * itl / nf;
            let prev = q;
            q *= ratio;
            s0 += q;
            s1 += nf * q;
            s_itl += (q - f * prev) * itl;
            if q > 1e200 {
                q *= 1e-200;
                s0 *= 1e-200;
                s1 *= 1e-200;
                s_itl *= 1e-200;
            }
            // ratio(n) decreases in n, so once below 1 the rest is bounded by a geometric
            // series; stop when it cannot change the sums at double precision.
            if ratio < 1.0 && q * f64::from(self.max_batch) < 1e-17 * s0 * (1.0 - ratio) {
                reached_tail = false;
                break;
            }
        }
        let b = f64::from(self.max_batch);
        let mut lq = 0.0;
        if reached_tail {
            // Geometric tail n > B (requests queue for a slot): constant rate
            // mu = (1-f) B / (D ITL(B)), ratio r < 1 exactly when utilization < 1.
            let r = k * self.itl_at(b) / (b * (1.0 - f));
            let tail = q * r / (1.0 - r);
            s0 += tail;
            s1 += b * tail;
            s_itl += self.itl_at(b) * tail * (1.0 - f);
            lq = q * r / ((1.0 - r) * (1.0 - r));
        }
        let mean_batch = s1 / s0;
        let mean_waiting = lq / s0;
        let queue_wait_ms = mean_waiting / lam;
        // Little on decoding requests: E[b] = lam * D * ITL.
        let itl_ms = if mean_batch > 0.0 {
            mean_batch / (lam * self.decode_tokens)
        } else {
            self.itl_at(1.0) / (1.0 - f)
        };
        // The step in progress at a Poisson arrival is length-biased: E[S^2]/E[S] per kind,
        // weighted by the time share of the kind. Prefill steps hold K ~ Poisson(m) | K >= 1
        // requests: E[K] = kb, E[K^2] = kb (1 + m).
        let kb = batch_of(m);
        let per_req = self.delta * self.input;
        let sp_mean = self.gamma + per_req * kb;
        let sp_sq = sp_mean * sp_mean + per_req * per_req * (kb * (1.0 + m) - kb * kb).max(0.0);
        // s_itl / s0 is already the decode time share times the time-weighted step length.
        let prefill_biased = if sp_mean > 0.0 { sp_sq / sp_mean } else { 0.0 };
        let biased_step = f * prefill_biased + s_itl / s0;
        let residual = 0.5 * biased_step;
        // The arrival's own prefill also holds everyone who arrived during that step.
        let prefill_seen = self.gamma + per_req * (1.0 + lam * biased_step);
        Prediction {
            ttft_ms: queue_wait_ms + residual + prefill_seen,
            itl_ms,
            queue_wait_ms,
            mean_batch,
            mean_waiting,
            utilization,
            stable: true,
            prefill_share: f,
            mean_prefill_batch: batch_of(m),
        }
    }
}

/// The largest `x` in `[lo, hi]` with `g(x) <= 0`, for `g` increasing with `g(lo) <= 0 < g(hi)`,
/// to within `tol` in `x` (or where `|g| < 1e-6`): the Illinois variant of regula falsi,
/// which keeps a bracket and converges superlinearly; falls back to bisection steps.
fn largest_feasible(
    mut lo: f64,
    mut g_lo: f64,
    mut hi: f64,
    mut g_hi: f64,
    tol: f64,
    mut g: impl FnMut(f64) -> f64,
) -> f64 {
    let mut side = 0i8;
    for _ in 0..100 {
        if hi - lo <= tol {
            break;
        }
        let mut x = (lo * g_hi - hi * g_lo) / (g_hi - g_lo);
        if !(x > lo && x < hi) {
            x = 0.5 * (lo + hi);
        }
        let gx = g(x);
        if gx <= 0.0 {
            lo = x;
            g_lo = gx;
            if gx > -1e-6 {
                break;
            }
            if side == -1 {
                g_hi *= 0.5;
            }
            side = -1;
        } else {
            hi = x;
            g_hi = gx;
            if side == 1 {
                g_lo *= 0.5;
            }
            side = 1;
        }
    }
    lo
}

/// Mean of `Poisson(m)` conditioned on `>= 1`: `m / (1 - e^-m)`.
fn batch_of(m: f64) -> f64 {
    if m > 1e-9 {
        m / (1.0 - (-m).exp())
    } else {
        1.0 + 0.5 * m
    }
}

/// Predicted steady state of one replica with `profile` serving `mix` at `arrival_rps`
/// requests per second.
///
/// Fails when an input is not usable (named in the error). An overloaded replica is not an
/// error: it returns `stable == false` with infinite latencies.
pub fn predict(
    profile: &Profile,
    mix: &TokenMix,
    arrival_rps: f64,
) -> Result<Prediction, PerfError> {
    if !arrival_rps.is_finite() || arrival_rps < 0.0 {
        return Err(PerfError::bad(
            "arrival_rps",
            format!("must be finite and >= 0 req/s, got {arrival_rps}"),
        ));
    }
    let model = Model::new(profile, mix)?;
    Ok(model.eval(arrival_rps / 1000.0, model.saturation_per_ms()))
}

/// Saturation throughput of one replica, req/s: the arrival rate at which its queue stops
/// being stable (full batch, one prefill per request).
pub fn saturation_rps(profile: &Profile, mix: &TokenMix) -> Result<f64, PerfError> {
    Ok(Model::new(profile, mix)?.saturation_per_ms() * 1000.0)
}

/// Capacity of one replica with `profile` serving `mix` under `slo`: the highest arrival
/// rate (req/s) at which the predicted mean TTFT and mean ITL meet their targets, capped at
/// `(1 - SATURATION_MARGIN)` of the saturation rate.
///
/// Returns `limit == SloUnreachable` with `rps == 0` when even a vanishing load misses the
/// SLO (its `ttft_ms`/`itl_ms` are then the zero-load latencies). Fails when an input is not
/// usable (named in the error).
pub fn replica_capacity(
    profile: &Profile,
    slo: &Slo,
    mix: &TokenMix,
) -> Result<CapacityEstimate, PerfError> {
    crate::check_slo(slo)?;
    let model = Model::new(profile, mix)?;
    let meets = |p: &Prediction| p.stable && p.ttft_ms <= slo.ttft_ms && p.itl_ms <= slo.itl_ms;
    let estimate = |lam: f64, p: &Prediction, limit| CapacityEstimate {
        rps: lam * 1000.0,
        ttft_ms: p.ttft_ms,
        itl_ms: p.itl_ms,
        limit,
    };

    let sat = model.saturation_per_ms();
    let zero = model.eval(0.0, sat);
    if !meets(&zero) {
        return Ok(estimate(0.0, &zero, CapacityLimit::SloUnreachable));
    }
    let top = (1.0 - SATURATION_MARGIN) * sat;
    let at_top = model.eval(top, sat);
    if meets(&at_top) {
        return Ok(estimate(top, &at_top, CapacityLimit::Throughput));
    }
    // TTFT and ITL both grow with the rate: find where the worse of the two ratios to its
    // target crosses 1 (in logs, which straightens the blow-up near saturation). Every rate
    // searched is below saturation, so predictions are stable and finite.
    let excess_of = |p: &Prediction| {
        (p.ttft_ms / slo.ttft_ms)
            .max(p.itl_ms / slo.itl_ms)
            .ln()
            .min(1e3)
    };
    let lam = largest_feasible(
        0.0,
        excess_of(&zero),
        top,
        excess_of(&at_top),
        RATE_TOLERANCE * top,
        |lam| excess_of(&model.eval(lam, sat)),
    );
    let lo_pred = model.eval(lam, sat);
    // The binding target is the one closer to (or further past) its limit.
    let limit = if lo_pred.ttft_ms / slo.ttft_ms >= lo_pred.itl_ms / slo.itl_ms {
        CapacityLimit::Ttft
    } else {
        CapacityLimit::Itl
    };
    Ok(estimate(lam, &lo_pred, limit))
}
