//! A seeded Poisson workload for the [`batching`](crate::batching) engine: measure mean TTFT
//! and ITL at a rate, and the engine's own capacity at an SLO. Deterministic for a seed.
//!
//! Arrivals are Poisson; prompts have a fixed length (the mix's mean, rounded); output lengths
//! are geometric on `1, 2, ...` with the mix's mean (the discrete exponential the queueing
//! model assumes). The same seed gives the same unit-rate arrival stream and lengths at every
//! rate (common random numbers), so measured latency is monotone-ish in the rate and the
//! capacity bisection is stable.

use wvo_api::{Profile, Slo};

use crate::batching::{Engine, EngineConfig, Request};
use crate::{PerfError, TokenMix};

/// SplitMix64: a tiny, good-enough, seedable generator.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    pub fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// Uniform in [0, 1).
    pub fn unit_half_open(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform integer in [lo, hi] (`lo <= hi`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// Exponential with mean 1.
    pub fn exp1(&mut self) -> f64 {
        -self.unit().ln()
    }

    /// Geometric on `1, 2, ...` with the given mean (>= 1).
    pub fn geometric(&mut self, mean: f64) -> u32 {
        if mean <= 1.0 {
            return 1;
        }
        let p = 1.0 / mean;
        let k = 1.0 + (self.unit().ln() / (1.0 - p).ln()).floor();
        k.min(f64::from(u32::MAX)) as u32
    }
}

/// One measurement run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Workload {
    /// Arrival rate, req/s.
    pub rate_rps: f64,
    /// Requests to generate.
    pub requests: usize,
    /// Token mix (means).
    pub mix: TokenMix,
    /// PRNG seed.
    pub seed: u64,
    /// KV-cache limit of the replica, tokens (`None` = unlimited).
    pub kv_cache_tokens: Option<u64>,
}

/// Engine-measured means over the measured window (arrivals from 10% to 90% of the run, so
/// neither the empty start nor the drain at the end bias them).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Measured {
    /// Mean TTFT, ms.
    pub ttft_ms: f64,
    /// Token-weighted mean inter-token latency (sum of gaps / number of gaps), ms.
    pub itl_ms: f64,
    /// Mean wait for admission, ms.
    pub queue_ms: f64,
    /// Mean end-to-end latency, ms.
    pub e2e_ms: f64,
    /// Time-average number of requests past their first token (decoding), requests.
    pub mean_batch: f64,
    /// Requests in the window.
    pub measured: usize,
    /// Preemptions over the whole run.
    pub preemptions: u64,
    /// Fraction of the whole run's time spent in prefill steps, 0..=1.
    pub prefill_share: f64,
    /// Mean requests per prefill step over the whole run.
    pub mean_prefill_batch: f64,
}

/// One run of the engine: every completion, and the measured window (arrival ids
/// `from..to`, arriving over `[start_ms, end_ms]`).
struct Run {
    completions: Vec<crate::batching::Completion>,
    from: u64,
    to: u64,
    start_ms: f64,
    end_ms: f64,
    engine: Engine,
}

/// Drives a fresh engine with `profile` through `w` to idle.
fn drive(profile: &Profile, w: &Workload) -> Result<Run, PerfError> {
    crate::check_mix(&w.mix)?;
    if !(w.rate_rps.is_finite() && w.rate_rps > 0.0) {
        return Err(PerfError::bad(
            "rate_rps",
            format!("must be finite and > 0 req/s, got {}", w.rate_rps),
        ));
    }
    let mut engine = Engine::new(EngineConfig {
        profile: *profile,
        kv_cache_tokens: w.kv_cache_tokens,
        record_itl: false,
    })?;
    let mut rng = SplitMix64::new(w.seed);
    let input = w.mix.avg_input_tokens.round().min(f64::from(u32::MAX)) as u32;
    let mean_gap_ms = 1000.0 / w.rate_rps;
    let (from, to) = ((w.requests / 10) as u64, (w.requests * 9 / 10) as u64);
    let mut to_ms = f64::NAN;
    let mut t = 0.0;
    let mut completions = Vec::with_capacity(w.requests);
    let mut window_start = f64::NAN;
    for id in 0..w.requests as u64 {
        t += rng.exp1() * mean_gap_ms;
        let output = rng.geometric(w.mix.avg_output_tokens);
        completions.extend(engine.advance_to(t).completions);
        if id == from {
            window_start = t;
        }
        if id == to {
            to_ms = t;
        }
        engine.submit(Request {
            id,
            arrival_ms: t,
            input_tokens: input,
            output_tokens: output,
        })?;
    }
    completions.extend(engine.run_to_idle().completions);
    Ok(Run {
        completions,
        from,
        to,
        start_ms: window_start,
        end_ms: to_ms,
        engine,
    })
}

/// Share (0..=1) of the measured window's requests that meet `slo` one by one: TTFT at most
/// `ttft_ms` and the request's own mean ITL at most `itl_ms` (single-token requests only
/// need the TTFT) — the per-request check of `wvo bench`. `slo.percentile` is not used.
pub fn run_poisson_attainment(
    profile: &Profile,
    w: &Workload,
    slo: &Slo,
) -> Result<f64, PerfError> {
    crate::check_slo(slo)?;
    let run = drive(profile, w)?;
    let (mut n, mut met) = (0usize, 0usize);
    for c in &run.completions {
        if (run.from..run.to).contains(&c.id) {
            n += 1;
            let itl_ok = c.mean_itl_ms().is_none_or(|itl| itl <= slo.itl_ms);
            if c.ttft_ms <= slo.ttft_ms && itl_ok {
                met += 1;
            }
        }
    }
    Ok(if n == 0 { 1.0 } else { met as f64 / n as f64 })
}

/// Run `w` on a fresh engine with `profile` and measure it.
pub fn run_poisson(profile: &Profile, w: &Workload) -> Result<Measured, PerfError> {
    let Run {
        completions,
        from,
        to,
        start_ms: window_start,
        end_ms: to_ms,
        engine,
    } = drive(profile, w)?;
    let (mut n, mut ttft, mut queue, mut e2e, mut gaps, mut gap_n) =
        (0usize, 0.0, 0.0, 0.0, 0.0, 0u64);
    let mut decode_time_in_window = 0.0;
    for c in &completions {
        if (from..to).contains(&c.id) {
            n += 1;
            ttft += c.ttft_ms;
            queue += c.queue_ms;
            e2e += c.e2e_ms;
            gaps += c.itl_sum_ms;
            gap_n += u64::from(c.itl_count);
        }
        // Decoding time of every request clipped to the window, for the time-average batch.
        let first = c.arrival_ms + c.ttft_ms;
        let lo = first.max(window_start);
        let hi = c.finish_ms.min(to_ms);
        if hi > lo {
            decode_time_in_window += hi - lo;
        }
    }
    let nf = n.max(1) as f64;
    let g = engine.gauges();
    Ok(Measured {
        ttft_ms: ttft / nf,
        itl_ms: if gap_n > 0 { gaps / gap_n as f64 } else { 0.0 },
        queue_ms: queue / nf,
        e2e_ms: e2e / nf,
        mean_batch: decode_time_in_window / (to_ms - window_start).max(f64::MIN_POSITIVE),
        measured: n,
        preemptions: g.preemptions_total,
        prefill_share: g.prefill_ms_total / g.now_ms.max(f64::MIN_POSITIVE),
        mean_prefill_batch: g.submitted_total as f64 / (g.prefill_steps_total.max(1)) as f64,
    })
}

/// The engine's capacity at `slo`: the highest rate (req/s) at which the engine's measured
/// mean TTFT and ITL meet the targets (with `slo.percentile`: at which that share of
/// requests meets both, [`run_poisson_attainment`]), by bisection on `[0, hi_rps]` to 0.5%
/// of `hi_rps`. Returns 0 when even `hi_rps / 1000` misses the SLO.
pub fn measured_capacity(
    profile: &Profile,
    slo: &Slo,
    mix: &TokenMix,
    hi_rps: f64,
    requests: usize,
    seed: u64,
) -> Result<f64, PerfError> {
    crate::check_slo(slo)?;
    let meets = |rate: f64| -> Result<bool, PerfError> {
        let w = Workload {
            rate_rps: rate,
            requests,
            mix: *mix,
            seed,
            kv_cache_tokens: None,
        };
        if let Some(p) = slo.percentile {
            return Ok(run_poisson_attainment(profile, &w, slo)? >= p / 100.0);
        }
        let m = run_poisson(profile, &w)?;
        Ok(m.ttft_ms <= slo.ttft_ms && m.itl_ms <= slo.itl_ms)
    };
    let (mut lo, mut hi) = (hi_rps / 1000.0, hi_rps);
    if !meets(lo)? {
        return Ok(0.0);
    }
    if meets(hi)? {
        return Ok(hi);
    }
    while hi - lo > 0.005 * hi_rps {
        let mid = 0.5 * (lo + hi);
        if meets(mid)? {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(0.5 * (lo + hi))
}
