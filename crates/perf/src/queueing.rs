//! The queueing model of one replica: a state-dependent birth-death chain with prefill
//! stalls, solved in closed form (see `docs/perf-model.md` for the derivation).

use wvo_api::{Profile, Slo};

use crate::{CapacityEstimate, CapacityLimit, PerfError, TokenMix};

/// Capacity is never placed closer to saturation than this fraction of the saturation rate:
/// `rps <= (1 - SATURATION_MARGIN) * saturation_rps`. Near saturation the mean queue grows as
/// `1/(1 - utilization)`, so a tiny error in the profile there means an unbounded latency error.
pub const SATURATION_MARGIN: f64 = 0.05;

/// Batch sizes above this are modelled as this (the chain costs `O(batch)` per evaluation;
/// no real replica decodes more requests at once). The plan input refuses larger ones.
pub const MAX_MODELLED_BATCH: u32 = wvo_api::validate::MAX_BATCH_SIZE;

/// Above this mean count of prefill stalls in a request's life, the percentile model takes
/// the count as normal instead of summing its distribution term by term.
const MANY_STALLS: f64 = 20.0;

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
        self.eval_spread(lam, sat).0
    }

    /// [`Self::eval`] and what the percentile model needs beyond the means (None when the
    /// replica is overloaded or idle).
    fn eval_spread(&self, lam: f64, sat: f64) -> (Prediction, Option<Spread>) {
        let utilization = lam / sat;
        let p1 = self.prefill_ms();
        let (f, m) = self.prefill_share(lam);
        if utilization.is_nan() || utilization >= 1.0 || f >= 1.0 {
            let overloaded = Prediction {
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
            return (overloaded, None);
        }
        if lam <= 0.0 {
            let idle = Prediction {
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
            return (idle, None);
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
        // s2 = sum b^2 q_n (the batch's variance, for the percentile model).
        let mut s2 = 0.0_f64;
        let mut reached_tail = true;
        for n in 1..=self.max_batch {
            let nf = f64::from(n);
            let itl = self.itl_at(nf);
            let ratio = f + k * itl / nf;
            let prev = q;
            q *= ratio;
            s0 += q;
            s1 += nf * q;
            s2 += nf * nf * q;
            s_itl += (q - f * prev) * itl;
            if q > 1e200 {
                q *= 1e-200;
                s0 *= 1e-200;
                s1 *= 1e-200;
                s2 *= 1e-200;
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
        // Mass of the states in which an arrival finds every slot taken (n >= B), and the
        // rate of the exponential wait it then has.
        let (mut full_mass, mut wait_rate) = (0.0, f64::INFINITY);
        if reached_tail {
            // Geometric tail n > B (requests queue for a slot): constant rate
            // mu = (1-f) B / (D ITL(B)), ratio r < 1 exactly when utilization < 1.
            let r = k * self.itl_at(b) / (b * (1.0 - f));
            let tail = q * r / (1.0 - r);
            s0 += tail;
            s1 += b * tail;
            s2 += b * b * tail;
            s_itl += self.itl_at(b) * tail * (1.0 - f);
            lq = q * r / ((1.0 - r) * (1.0 - r));
            // An arrival at n >= B waits for n - B + 1 completions at the constant rate
            // mu_B = (1-f) B / (D ITL(B)); with the geometric count that wait is exponential
            // with rate mu_B (1 - r) (as in M/M/1).
            full_mass = q / (1.0 - r);
            wait_rate = (1.0 - f) * b / (self.decode_tokens * self.itl_at(b)) * (1.0 - r);
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
        let spread = Spread {
            wait_probability: (full_mass / s0).clamp(0.0, 1.0),
            wait_rate,
            batch_variance: (s2 / s0 - mean_batch * mean_batch).max(0.0),
            lam,
            prefill_share: f,
            decode_step: if f < 1.0 {
                (s_itl / s0) / (1.0 - f)
            } else {
                0.0
            },
            prefill_arrivals: m,
            prefill_steps_per_ms: if sp_mean > 0.0 { f / sp_mean } else { 0.0 },
            prefill_step: sp_mean,
        };
        let prediction = Prediction {
            ttft_ms: queue_wait_ms + residual + prefill_seen,
            itl_ms,
            queue_wait_ms,
            mean_batch,
            mean_waiting,
            utilization,
            stable: true,
            prefill_share: f,
            mean_prefill_batch: batch_of(m),
        };
        (prediction, Some(spread))
    }

    /// Share of requests (0..=1) that miss the TTFT target `ttft_ms` or the ITL target
    /// `itl_ms` at `lam` requests per ms (a union bound of the two tails; see
    /// `docs/perf-model.md`, "Percentile SLOs"). 1 when overloaded.
    fn miss_share(&self, lam: f64, sat: f64, ttft_ms: f64, itl_ms: f64) -> (f64, f64) {
        let (p, spread) = self.eval_spread(lam, sat);
        let Some(sp) = spread else {
            return if p.stable { (0.0, 0.0) } else { (1.0, 1.0) };
        };
        (self.ttft_miss(&sp, ttft_ms), self.itl_miss(&p, &sp, itl_ms))
    }

    /// P(TTFT > `target`): TTFT = W + U + own prefill, with W the wait for a slot
    /// (`wait_probability` times an exponential), U the residual of the step the arrival
    /// lands in — a decode step (time share `1 - f`) or a prefill step of K requests (share
    /// `f`, length-biased in K) — uniform over that step, and the own prefill holding
    /// `gamma + delta*I*(1 + K')`, K' ~ Poisson(lambda * that step) (the others who arrive
    /// during it).
    fn ttft_miss(&self, sp: &Spread, target: f64) -> f64 {
        let per_req = self.delta * self.input;
        // Miss given the step in progress has length `step`.
        let given_step = |step: f64| {
            let (mut mass, mut miss) = (0.0, 0.0);
            for (k, pmf) in poisson_terms(sp.lam * step) {
                let x = target - self.gamma - per_req * (1.0 + k as f64);
                miss += pmf * wait_plus_uniform_exceeds(sp.wait_probability, sp.wait_rate, step, x);
                mass += pmf;
            }
            miss + (1.0 - mass).max(0.0)
        };
        let mut miss = (1.0 - sp.prefill_share) * given_step(sp.decode_step);
        if sp.prefill_share > 0.0 && sp.prefill_step > 0.0 {
            // K ~ Poisson(m) | K >= 1, weighted by its step's length (time share).
            let m = sp.prefill_arrivals.max(1e-12);
            let mut pk = (-m).exp();
            let norm = 1.0 - (-m).exp();
            let (mut mass, mut weighted) = (0.0, 0.0);
            let last = (m + 12.0 * m.sqrt() + 30.0).min(1e6) as u32;
            for k in 1..=last {
                pk *= m / f64::from(k);
                let p = pk / norm;
                let step = self.gamma + per_req * f64::from(k);
                weighted += p * step / sp.prefill_step * given_step(step);
                mass += p;
                if 1.0 - mass < 1e-12 {
                    break;
                }
            }
            miss += sp.prefill_share * (weighted + (1.0 - mass).max(0.0));
        }
        miss.clamp(0.0, 1.0)
    }

    /// P(a request's mean ITL > `target`), over output lengths (geometric with the mix's
    /// mean). A request with `d` decode tokens lives `L = d * ITL` ms; its mean gap is its
    /// decode steps, `alpha + beta * b` with `b` the batch averaged over its life (normal,
    /// with the variance of a time average of a process whose correlation time is a
    /// request's decode life), plus `N * prefill step / d` for the N ~ Poisson(prefill
    /// steps per ms * L) prefills that stall it.
    fn itl_miss(&self, p: &Prediction, sp: &Spread, target: f64) -> f64 {
        let mean_output = self.decode_tokens + 1.0;
        if mean_output <= 1.0 + 1e-9 {
            return 0.0;
        }
        let stay = 1.0 - 1.0 / mean_output; // P(output > k | output > k - 1)
        let itl = p.itl_ms;
        let decode_mean = (1.0 - sp.prefill_share) * itl;
        // Feedback: a fuller batch decodes slower, so its requests stay longer and keep it
        // full. With gain e = d ln(step) / d ln(batch) at the mean batch, a linear loop
        // stretches the batch's correlation time and amplifies its swings by 1 / (1 - e).
        let gain = (self.beta * p.mean_batch / self.itl_at(p.mean_batch)).clamp(0.0, 0.9);
        let amplify = 1.0 / (1.0 - gain);
        let life = (self.decode_tokens * itl * amplify).max(f64::MIN_POSITIVE);
        // The cluster of prefills right after a request's own (those who arrived during a
        // prefill step are prefilled next, and so on): P(N0 >= j) = q^j, q = P(an arrival
        // during a prefill step).
        let q = (1.0 - (-sp.lam * sp.prefill_step).exp()).clamp(0.0, 0.99);
        let mut miss = 0.0;
        // Decode tokens d in bins [a, b): P(d >= a) = stay^a; each bin at its lower end
        // (fewer tokens: a noisier mean, so the bin's miss is not understated).
        let mut a = 1.0_f64;
        let mut at_a = stay;
        while at_a > 1e-12 {
            let b = (a * 1.19).ceil().max(a + 1.0);
            let at_b = stay.powf(b);
            let life_d = a * itl;
            let x = life_d / life;
            let averaged = if x < 1e-6 {
                sp.batch_variance
            } else {
                2.0 * sp.batch_variance / (x * x) * (x - 1.0 + (-x).exp())
            };
            let sd = self.beta * (averaged * amplify).sqrt() * amplify;
            // Stall count N0 + N: N ~ Poisson(stalls) over the life, N0 the cluster above.
            let stalls = sp.prefill_steps_per_ms * life_d;
            let per_stall = sp.prefill_step / a;
            let tail = if stalls > MANY_STALLS {
                // Many stalls: their count is near normal; one tail for the whole bin.
                let n_mean = stalls + q / (1.0 - q);
                let n_var = stalls + q / ((1.0 - q) * (1.0 - q));
                let sd_all = (sd * sd + per_stall * per_stall * n_var).sqrt();
                normal_exceeds(target - decode_mean - per_stall * n_mean, sd_all)
            } else {
                let counts = stall_counts(stalls, q);
                let mass: f64 = counts.iter().sum();
                let exceeds: f64 = counts
                    .iter()
                    .enumerate()
                    .map(|(n, pmf)| {
                        pmf * normal_exceeds(target - decode_mean - per_stall * n as f64, sd)
                    })
                    .sum();
                exceeds + (1.0 - mass).max(0.0)
            };
            miss += (at_a - at_b) * tail;
            a = b;
            at_a = at_b;
        }
        miss.clamp(0.0, 1.0)
    }
}

/// The distribution of `N0 + N` for N ~ Poisson(`mean`) and N0 geometric with
/// P(N0 >= j) = `q`^j, as a pmf over 0, 1, ... cut where the rest is below 1e-12 (at most
/// a few hundred terms).
fn stall_counts(mean: f64, q: f64) -> Vec<f64> {
    let poisson: Vec<f64> = poisson_terms(mean).map(|(_, pmf)| pmf).collect();
    let extra = if q > 0.0 {
        ((1e-12_f64).ln() / q.ln()).ceil().clamp(1.0, 400.0) as usize
    } else {
        1
    };
    let mut out = vec![0.0; poisson.len() + extra];
    let mut geo = 1.0 - q;
    for j in 0..extra {
        for (n, p) in poisson.iter().enumerate() {
            out[n + j] += geo * p;
        }
        geo *= q;
    }
    out
}

/// The terms `(k, P(K = k))` of K ~ Poisson(`mean`) from k = 0, until the mass left is
/// below 1e-12 (or `mean + 12 sqrt(mean) + 30` terms).
fn poisson_terms(mean: f64) -> impl Iterator<Item = (u32, f64)> {
    let mean = mean.max(0.0);
    let last = (mean + 12.0 * mean.sqrt() + 30.0).min(1e6) as u32;
    let (mut pmf, mut mass, mut done) = ((-mean).exp(), 0.0, false);
    (0..=last).map_while(move |k| {
        if done {
            return None;
        }
        if k > 0 {
            pmf *= mean / f64::from(k);
        }
        mass += pmf;
        done = 1.0 - mass < 1e-12;
        Some((k, pmf))
    })
}

/// P(X > 0) for X normal with mean `-room` and deviation `sd` (a step at `room = 0` when
/// `sd` is 0): the share of requests whose latency exceeds a target by more than `room`.
fn normal_exceeds(room: f64, sd: f64) -> f64 {
    if sd > 0.0 {
        normal_tail(room / sd)
    } else if room < 0.0 {
        1.0
    } else {
        0.0
    }
}

/// What the percentile model needs beyond the means at one rate.
#[derive(Clone, Copy, Debug)]
struct Spread {
    /// Probability that an arrival finds every batch slot taken, 0..=1.
    wait_probability: f64,
    /// Rate of the (exponential) wait for a slot given there is one, 1/ms.
    wait_rate: f64,
    /// Variance of the number of decoding requests, requests^2.
    batch_variance: f64,
    /// Arrival rate, requests per ms.
    lam: f64,
    /// Share of time in prefill steps, 0..=1.
    prefill_share: f64,
    /// Length-biased mean decode step (the decode step an arrival lands in), ms.
    decode_step: f64,
    /// Poisson mean of the requests a prefill step holds (conditioned on >= 1).
    prefill_arrivals: f64,
    /// Prefill steps per ms.
    prefill_steps_per_ms: f64,
    /// Mean prefill step, ms.
    prefill_step: f64,
}

/// P(W + U > x) for W = 0 with probability `1 - pw` else exponential with rate `a` (1/ms),
/// and U uniform on [0, s] ms.
fn wait_plus_uniform_exceeds(pw: f64, a: f64, s: f64, x: f64) -> f64 {
    let wait_exceeds = |y: f64| {
        if y < 0.0 {
            1.0
        } else if a.is_finite() {
            pw * (-a * y).exp()
        } else {
            0.0
        }
    };
    if s <= 0.0 {
        return wait_exceeds(x);
    }
    if x < 0.0 {
        return 1.0;
    }
    // (1/s) * integral over u in [0, s] of P(W > x - u).
    let integral_of_wait = |from: f64, to: f64| {
        // integral of pw e^{-a y} dy over y in [from, to], 0 <= from <= to.
        if !a.is_finite() {
            0.0
        } else if a * (to - from) < 1e-9 {
            pw * (-a * from).exp() * (to - from)
        } else {
            pw * ((-a * from).exp() - (-a * to).exp()) / a
        }
    };
    if x >= s {
        integral_of_wait(x - s, x) / s
    } else {
        ((s - x) + integral_of_wait(0.0, x)) / s
    }
}

/// Upper tail of the standard normal, P(Z > z): `erfc(z / sqrt 2) / 2` with the Chebyshev
/// fit of Numerical Recipes' `erfcc` (relative error below 1.2e-7 everywhere).
fn normal_tail(z: f64) -> f64 {
    let x = z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * x.abs());
    let poly = -x * x - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    0.5 * if x >= 0.0 { erfc } else { 2.0 - erfc }
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

/// Rates looked at between zero and the top of the capacity search, to find where the
/// SLO is first missed (mean SLOs; a percentile's evaluations cost more, it looks at
/// [`PERCENTILE_CROSSING_GRID`]).
const CROSSING_GRID: u32 = 24;
/// The same for percentile SLOs.
const PERCENTILE_CROSSING_GRID: u32 = 8;

/// The first bracket `(lo, g(lo), hi, g(hi))` on a grid of `steps` steps from
/// `from` (where `g(from) = g_from <= 0`) to `to` in which `g` turns positive; None when it
/// stays `<= 0` up to `to`.
fn first_crossing(
    from: f64,
    g_from: f64,
    to: f64,
    steps: u32,
    mut g: impl FnMut(f64) -> f64,
) -> Option<(f64, f64, f64, f64)> {
    let (mut lo, mut g_lo) = (from, g_from);
    for i in 1..=steps {
        let x = from + (to - from) * f64::from(i) / f64::from(steps);
        let gx = g(x);
        if gx > 0.0 {
            return Some((lo, g_lo, x, gx));
        }
        lo = x;
        g_lo = gx;
    }
    None
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
/// rate (req/s) at which the predicted mean TTFT and mean ITL meet their targets — or, when
/// `slo.percentile` is set, at which that share of requests meets both targets (see
/// [`miss_share`]) — capped at `(1 - SATURATION_MARGIN)` of the saturation rate.
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
    if let Some(percentile) = slo.percentile {
        return Ok(percentile_capacity(&model, sat, slo, percentile));
    }
    let zero = model.eval(0.0, sat);
    if !meets(&zero) {
        return Ok(estimate(0.0, &zero, CapacityLimit::SloUnreachable));
    }
    let top = (1.0 - SATURATION_MARGIN) * sat;
    // The worse of the two ratios to its target, in logs (which straightens the blow-up
    // near saturation). Every rate searched is below saturation, so predictions are stable
    // and finite.
    let excess_of = |p: &Prediction| {
        (p.ttft_ms / slo.ttft_ms)
            .max(p.itl_ms / slo.itl_ms)
            .ln()
            .min(1e3)
    };
    // Latencies mostly grow with the rate, but not everywhere (with heavy prefills and short
    // outputs, prefill batching can lower the ITL again near saturation): the capacity is
    // the first crossing, below which every rate meets the SLO.
    let Some((lo, g_lo, hi, g_hi)) =
        first_crossing(0.0, excess_of(&zero), top, CROSSING_GRID, |lam| {
            excess_of(&model.eval(lam, sat))
        })
    else {
        return Ok(estimate(
            top,
            &model.eval(top, sat),
            CapacityLimit::Throughput,
        ));
    };
    let lam = largest_feasible(lo, g_lo, hi, g_hi, RATE_TOLERANCE * top, |lam| {
        excess_of(&model.eval(lam, sat))
    });
    let lo_pred = model.eval(lam, sat);
    // The binding target is the one closer to (or further past) its limit.
    let limit = if lo_pred.ttft_ms / slo.ttft_ms >= lo_pred.itl_ms / slo.itl_ms {
        CapacityLimit::Ttft
    } else {
        CapacityLimit::Itl
    };
    Ok(estimate(lam, &lo_pred, limit))
}

/// Capacity at a percentile SLO: the highest rate at which the predicted share of requests
/// missing a target (`Model::miss_share`, TTFT tail + ITL tail) is at most
/// `1 - percentile/100`. The estimate carries the predicted means at that rate.
fn percentile_capacity(model: &Model, sat: f64, slo: &Slo, percentile: f64) -> CapacityEstimate {
    let allowed = (1.0 - percentile / 100.0).clamp(1e-9, 1.0);
    let miss = |lam: f64| {
        let (t, i) = model.miss_share(lam, sat, slo.ttft_ms, slo.itl_ms);
        (t, i, t + i)
    };
    // In logs (the tails fall by orders of magnitude with the rate), clamped so that a
    // zero miss compares as far below the allowance.
    let excess = |total: f64| (total.max(1e-300) / allowed).ln().clamp(-1e3, 1e3);
    let estimate = |lam: f64, limit| {
        let p = model.eval(lam, sat);
        CapacityEstimate {
            rps: lam * 1000.0,
            ttft_ms: p.ttft_ms,
            itl_ms: p.itl_ms,
            limit,
        }
    };
    let top = (1.0 - SATURATION_MARGIN) * sat;
    // The lowest rate looked at: a millionth of the top (a vanishing load).
    let bottom = 1e-6 * top;
    let (_, _, at_bottom) = miss(bottom);
    if at_bottom.is_nan() || at_bottom > allowed {
        return estimate(0.0, CapacityLimit::SloUnreachable);
    }
    let Some((lo, g_lo, hi, g_hi)) = first_crossing(
        bottom,
        excess(at_bottom),
        top,
        PERCENTILE_CROSSING_GRID,
        |lam| excess(miss(lam).2),
    ) else {
        return estimate(top, CapacityLimit::Throughput);
    };
    // Relative to the bracket when the crossing is in the first grid step (a capacity far
    // below saturation, e.g. a TTFT target barely above one prefill): a tolerance relative
    // to the top would then be coarser than the capacity itself.
    let tol = RATE_TOLERANCE * top.min(10.0 * lo);
    let lam = largest_feasible(lo, g_lo, hi, g_hi, tol, |lam| excess(miss(lam).2));
    let (t, i, _) = miss(lam);
    estimate(
        lam,
        if t >= i {
            CapacityLimit::Ttft
        } else {
            CapacityLimit::Itl
        },
    )
}

/// Predicted share of requests (0..=1) that miss `slo`'s TTFT target or its ITL target,
/// one replica with `profile` serving `mix` at `arrival_rps` req/s: `(ttft, itl)` tails
/// (a request may miss both, so their sum bounds the share missing either). `(1, 1)` when
/// the replica is overloaded.
pub fn miss_share(
    profile: &Profile,
    slo: &Slo,
    mix: &TokenMix,
    arrival_rps: f64,
) -> Result<(f64, f64), PerfError> {
    crate::check_slo(slo)?;
    if !arrival_rps.is_finite() || arrival_rps < 0.0 {
        return Err(PerfError::bad(
            "arrival_rps",
            format!("must be finite and >= 0 req/s, got {arrival_rps}"),
        ));
    }
    let model = Model::new(profile, mix)?;
    let sat = model.saturation_per_ms();
    let lam = (arrival_rps / 1000.0).max(1e-6 * sat);
    Ok(model.miss_share(lam, sat, slo.ttft_ms, slo.itl_ms))
}
