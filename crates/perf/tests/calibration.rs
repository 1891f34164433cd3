//! Online calibration against an emulated server: the batching engine with known parameters,
//! driven by a day-like load (rate and prompt lengths drift), observed the way a collector
//! sees it (5 s windows, 3% measurement noise), with injected outliers and warm-up samples.

use std::collections::HashMap;
use wvo_api::{Profile, Slo};
use wvo_perf::batching::{Engine, EngineConfig, Request};
use wvo_perf::calibrate::{
    check_contradiction, CalibratedProfile, CalibrationConfig, DecodeSample, PrefillSample,
    ProfileBounds, SampleOutcome,
};
use wvo_perf::workload::{measured_capacity, SplitMix64};
use wvo_perf::{replica_capacity, TokenMix};

const TRUE: Profile = Profile {
    alpha: 7.0,
    beta: 0.08,
    gamma: 20.0,
    delta: 0.015,
    max_batch_size: 128,
};
const WINDOW_S: f64 = 5.0;

fn gauss(rng: &mut SplitMix64) -> f64 {
    (-2.0 * rng.unit().ln()).sqrt() * (2.0 * std::f64::consts::PI * rng.unit()).cos()
}

/// Windows of (decode sample, prefill sample) from the engine with `TRUE` parameters.
/// `warm_until_s`: samples before this replica age are inflated 2.5x (cold server) and
/// flagged with their age; every 17th decode and 23rd prefill window is an outlier.
struct Emulator {
    engine: Engine,
    rng: SplitMix64,
    next_id: u64,
    next_arrival_ms: f64,
    inputs: HashMap<u64, u32>,
}

struct Window {
    decode: Option<DecodeSample>,
    prefill: Option<PrefillSample>,
    decode_outlier: bool,
    prefill_outlier: bool,
}

impl Emulator {
    fn new(seed: u64) -> Self {
        Self {
            engine: Engine::new(EngineConfig::new(TRUE)).unwrap(),
            rng: SplitMix64::new(seed),
            next_id: 0,
            next_arrival_ms: 0.0,
            inputs: HashMap::new(),
        }
    }

    /// Load at time t: rate 2.1..13.3 req/s (15-minute cycle), mean prompt 200..2000 tokens
    /// (22-minute cycle), geometric outputs with mean 150.
    fn rate(t_s: f64) -> f64 {
        14.0 * (0.55 + 0.4 * (2.0 * std::f64::consts::PI * t_s / 900.0).sin())
    }
    fn mean_input(t_s: f64) -> f64 {
        1100.0 + 900.0 * (2.0 * std::f64::consts::PI * t_s / 1320.0).sin()
    }

    fn window(&mut self, index: u64, age_s: f64) -> Window {
        let (start, end) = (
            index as f64 * WINDOW_S * 1e3,
            (index + 1) as f64 * WINDOW_S * 1e3,
        );
        let g0 = self.engine.gauges();
        let mut firsts = Vec::new();
        while self.next_arrival_ms < end {
            let t = self.next_arrival_ms;
            firsts.extend(self.engine.advance_to(t).first_tokens);
            let mean_in = Self::mean_input(t / 1e3);
            let input = (mean_in * (0.5 + self.rng.unit())).round().max(1.0) as u32;
            let output = self.rng.geometric(150.0);
            self.inputs.insert(self.next_id, input);
            self.engine
                .submit(Request {
                    id: self.next_id,
                    arrival_ms: t,
                    input_tokens: input,
                    output_tokens: output,
                })
                .unwrap();
            self.next_id += 1;
            self.next_arrival_ms += self.rng.exp1() * 1e3 / Self::rate(t / 1e3);
        }
        firsts.extend(self.engine.advance_to(end).first_tokens);
        let _ = start;
        let g1 = self.engine.gauges();
        let warm = if age_s < 120.0 { 2.5 } else { 1.0 };
        let decode_outlier = index % 17 == 5;
        let prefill_outlier = index % 23 == 7;
        let steps = (g1.decode_steps_total - g0.decode_steps_total) as f64;
        let decode_tokens =
            (g1.generation_tokens_total - g0.generation_tokens_total) as f64 - firsts.len() as f64;
        let decode = (steps > 0.0).then(|| {
            let noise = 1.0 + 0.03 * gauss(&mut self.rng);
            let spike = if decode_outlier { 4.0 } else { 1.0 };
            DecodeSample {
                batch: decode_tokens / steps,
                itl_ms: (g1.decode_ms_total - g0.decode_ms_total) / steps * noise * warm * spike,
                replica_age_s: age_s,
            }
        });
        // Prefill: group first tokens by step (same time), TTFT minus queueing per request.
        let mut step_tokens: HashMap<u64, f64> = HashMap::new();
        for f in &firsts {
            *step_tokens.entry(f.at_ms.to_bits()).or_default() += f64::from(self.inputs[&f.id]);
        }
        let n = firsts.len() as f64;
        let prefill = (n > 0.0).then(|| {
            let x: f64 = firsts
                .iter()
                .map(|f| step_tokens[&f.at_ms.to_bits()])
                .sum::<f64>()
                / n;
            let y: f64 = firsts.iter().map(|f| f.ttft_ms - f.queue_ms).sum::<f64>() / n;
            let noise = 1.0 + 0.03 * gauss(&mut self.rng);
            let spike = if prefill_outlier { 5.0 } else { 1.0 };
            PrefillSample {
                batch_tokens: x,
                prefill_ms: y * noise * warm * spike,
                replica_age_s: age_s,
            }
        });
        for f in &firsts {
            self.inputs.remove(&f.id);
        }
        Window {
            decode,
            prefill,
            decode_outlier,
            prefill_outlier,
        }
    }
}

fn rel(got: f64, want: f64) -> f64 {
    (got - want).abs() / want
}

/// The estimate the calibration starts from: 35% slow on alpha, 40% low on beta, etc.
fn prior() -> Profile {
    Profile {
        alpha: TRUE.alpha * 1.35,
        beta: TRUE.beta * 0.6,
        gamma: TRUE.gamma * 0.7,
        delta: TRUE.delta * 1.3,
        max_batch_size: 128,
    }
}

struct Run {
    cal: CalibratedProfile,
    /// (window index, max relative error of the four parameters) after each window.
    errors: Vec<f64>,
    injected: (u64, u64),
    rejected_injected: (u64, u64),
    warmup: u64,
    false_rejections: u64,
}

fn run(windows: u64, seed: u64) -> Run {
    let cfg = CalibrationConfig::default();
    let p = prior();
    let mut cal = CalibratedProfile::new(p, ProfileBounds::around(&p), &cfg);
    let mut emu = Emulator::new(seed);
    let mut r = Run {
        cal: cal.clone(),
        errors: vec![],
        injected: (0, 0),
        rejected_injected: (0, 0),
        warmup: 0,
        false_rejections: 0,
    };
    for i in 0..windows {
        // The replica starts at t=0; a second "new replica" restarts the age at 40 minutes.
        let t = i as f64 * WINDOW_S;
        let age = if t >= 2400.0 { t - 2400.0 } else { t };
        let w = emu.window(i, age);
        if let Some(d) = w.decode {
            let o = cal.observe_decode(&d, &cfg);
            if o == SampleOutcome::WarmUp {
                r.warmup += 1;
            } else if w.decode_outlier {
                r.injected.0 += 1;
                r.rejected_injected.0 += u64::from(o == SampleOutcome::Outlier);
            } else if o == SampleOutcome::Outlier {
                r.false_rejections += 1;
            }
        }
        if let Some(s) = w.prefill {
            let o = cal.observe_prefill(&s, &cfg);
            if o == SampleOutcome::WarmUp {
                r.warmup += 1;
            } else if w.prefill_outlier {
                r.injected.1 += 1;
                r.rejected_injected.1 += u64::from(o == SampleOutcome::Outlier);
            } else if o == SampleOutcome::Outlier {
                r.false_rejections += 1;
            }
        }
        let q = cal.profile();
        r.errors.push(
            [
                rel(q.alpha, TRUE.alpha),
                rel(q.beta, TRUE.beta),
                rel(q.gamma, TRUE.gamma),
                rel(q.delta, TRUE.delta),
            ]
            .into_iter()
            .fold(0.0, f64::max),
        );
    }
    r.cal = cal;
    r
}

/// 30 minutes of 5 s windows (360 decode + 360 prefill samples) bring all four parameters
/// within 5% of the truth, and they stay there for the rest of the hour; every injected
/// outlier and warm-up sample is ignored.
#[test]
fn converges_within_5_percent_and_ignores_outliers_and_warmup() {
    let r = run(720, 11);
    let q = r.cal.profile();
    eprintln!(
        "calibrated {q:?}, errors at 10/20/30/60 min: {:.3} {:.3} {:.3} {:.3}",
        r.errors[119], r.errors[239], r.errors[359], r.errors[719]
    );
    eprintln!(
        "injected {:?} rejected {:?} warmup {} false rejections {}",
        r.injected, r.rejected_injected, r.warmup, r.false_rejections
    );
    let worst_after_30 = r.errors[360..].iter().copied().fold(0.0, f64::max);
    assert!(
        worst_after_30 < 0.05,
        "worst parameter error after 30 min {worst_after_30:.3}; {q:?}"
    );
    assert_eq!(r.injected.0, r.rejected_injected.0, "decode outliers");
    assert_eq!(r.injected.1, r.rejected_injected.1, "prefill outliers");
    // 24 + 24 warm-up windows at the start and at 40 min, decode and prefill each.
    assert_eq!(r.warmup, 4 * 24);
    assert!(
        r.false_rejections <= 10,
        "{} good samples rejected",
        r.false_rejections
    );
    let c = r.cal.confidence();
    assert!(c.overall > 0.8, "{c:?}");
}

/// Without the outlier gate and warm-up filter the same data would mislead: a plain
/// least-squares fit over every sample is far off (the guard is doing work).
#[test]
fn warmup_and_outliers_would_bias_an_unguarded_fit() {
    let cfg = CalibrationConfig {
        warmup_s: 0.0,
        outlier_sigmas: 1e9,
        ..Default::default()
    };
    let p = prior();
    let mut cal = CalibratedProfile::new(p, ProfileBounds::around(&p), &cfg);
    let mut emu = Emulator::new(11);
    for i in 0..720 {
        let t = i as f64 * WINDOW_S;
        let w = emu.window(i, if t >= 2400.0 { t - 2400.0 } else { t });
        if let Some(d) = w.decode {
            cal.observe_decode(&d, &cfg);
        }
        if let Some(s) = w.prefill {
            cal.observe_prefill(&s, &cfg);
        }
    }
    let q = cal.profile();
    assert!(
        rel(q.alpha, TRUE.alpha) > 0.05 || rel(q.gamma, TRUE.gamma) > 0.05,
        "{q:?}"
    );
}

/// Capacity from the calibrated profile matches the engine's measured capacity at the SLO
/// within 10%.
#[test]
fn capacity_from_the_calibrated_profile_matches_the_engine() {
    let r = run(720, 12);
    let q = r.cal.profile();
    let slo = Slo {
        ttft_ms: 1000.0,
        itl_ms: 20.0,
        percentile: None,
    };
    let mix = TokenMix {
        avg_input_tokens: 800.0,
        avg_output_tokens: 150.0,
    };
    let model = replica_capacity(&q, &slo, &mix).unwrap();
    let measured = measured_capacity(&TRUE, &slo, &mix, 40.0, 20_000, 7).unwrap();
    eprintln!(
        "capacity: calibrated model {:.2} req/s ({:?}), engine {measured:.2} req/s",
        model.rps, model.limit
    );
    assert!(
        rel(model.rps, measured) < 0.10,
        "model {:.3} vs engine {measured:.3}",
        model.rps
    );
    // The prior alone was further off.
    let prior_cap = replica_capacity(&prior(), &slo, &mix).unwrap().rps;
    eprintln!("prior capacity {prior_cap:.2} req/s");
}

/// A server much slower than its estimate is flagged with the numbers; a matching one is
/// not. The state round-trips through JSON (VA status) without losing anything.
#[test]
fn contradiction_is_flagged_and_state_round_trips() {
    let r = run(400, 13);
    let slo = Slo {
        ttft_ms: 1000.0,
        itl_ms: 20.0,
        percentile: None,
    };
    let mix = TokenMix {
        avg_input_tokens: 800.0,
        avg_output_tokens: 150.0,
    };
    // Prior = truth: no contradiction.
    let cfg = CalibrationConfig::default();
    let mut ok = r.cal.clone();
    ok.prior = TRUE;
    assert_eq!(
        check_contradiction(&ok, &slo, &mix, 0.3, 0.5).unwrap(),
        None
    );
    // Prior twice as fast as the truth: flagged.
    let mut bad = r.cal.clone();
    bad.prior = Profile {
        alpha: 3.5,
        beta: 0.04,
        gamma: 10.0,
        delta: 0.0075,
        max_batch_size: 128,
    };
    let c = check_contradiction(&bad, &slo, &mix, 0.3, 0.5)
        .unwrap()
        .expect("flagged");
    assert!(c.ratio < 0.7, "{c:?}");
    assert!(
        c.message.contains("of the estimated") && c.message.contains("alpha 7.0"),
        "{}",
        c.message
    );
    // Round trip.
    let json = serde_json::to_string(&r.cal).unwrap();
    assert!(
        json.contains("\"prefill\"") && json.contains("\"noiseVar\""),
        "{json}"
    );
    let back: CalibratedProfile = serde_json::from_str(&json).unwrap();
    let (a, b) = (back.profile(), r.cal.profile());
    for (x, y) in [
        (a.alpha, b.alpha),
        (a.beta, b.beta),
        (a.gamma, b.gamma),
        (a.delta, b.delta),
    ] {
        assert!(rel(x, y) < 1e-12, "{x} vs {y}");
    }
    assert_eq!(
        (back.decode.accepted, back.prefill.outliers),
        (r.cal.decode.accepted, r.cal.prefill.outliers)
    );
    assert!((back.confidence().overall - r.cal.confidence().overall).abs() < 1e-9);
    let _ = cfg;
}

/// Parameters never leave their bounds, whatever the samples say.
#[test]
fn parameters_stay_within_physical_bounds() {
    let cfg = CalibrationConfig::default();
    let p = prior();
    let bounds = ProfileBounds::around(&p);
    let mut cal = CalibratedProfile::new(p, bounds, &cfg);
    let mut rng = SplitMix64::new(3);
    for _ in 0..2000 {
        let n = 1.0 + 100.0 * rng.unit();
        // A server that claims decode is free and prefill is absurdly slow.
        cal.observe_decode(
            &DecodeSample {
                batch: n,
                itl_ms: 0.01,
                replica_age_s: 1e4,
            },
            &cfg,
        );
        cal.observe_prefill(
            &PrefillSample {
                batch_tokens: 1000.0 * rng.unit(),
                prefill_ms: 1e6,
                replica_age_s: 1e4,
            },
            &cfg,
        );
        let q = cal.profile();
        for (i, v) in [q.alpha, q.beta, q.gamma, q.delta].into_iter().enumerate() {
            assert!(
                v >= bounds.min[i] && v <= bounds.max[i],
                "param {i} = {v} outside {bounds:?}"
            );
        }
    }
    // Invalid samples are ignored.
    assert_eq!(
        cal.observe_decode(
            &DecodeSample {
                batch: f64::NAN,
                itl_ms: 5.0,
                replica_age_s: 1e4
            },
            &cfg
        ),
        SampleOutcome::Invalid
    );
}
