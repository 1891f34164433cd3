//! The queueing model against the continuous-batching engine it abstracts: mean TTFT and
//! ITL at 30/60/85% of the predicted capacity, and the engine's own capacity at the SLO.
//! Full table: `cargo run -p wvo-perf --example validate --release`.

use wvo_api::{Profile, Slo};
use wvo_perf::workload::{measured_capacity, run_poisson, Workload};
use wvo_perf::{predict, replica_capacity, saturation_rps, CapacityLimit, TokenMix};

const REQUESTS: usize = 40_000;
const SEED: u64 = 7;
/// Mean TTFT and ITL must be within this relative error of the engine below capacity.
const LATENCY_TOLERANCE: f64 = 0.10;
/// Capacity must be within this relative error of the engine's.
const CAPACITY_TOLERANCE: f64 = 0.10;

fn check(profile: Profile, slo: Slo, mix: TokenMix, expected_limit: CapacityLimit) {
    let cap = replica_capacity(&profile, &slo, &mix).expect("valid input");
    assert_eq!(cap.limit, expected_limit, "{cap:?}");
    for frac in [0.3, 0.6, 0.85] {
        let rate = frac * cap.rps;
        let p = predict(&profile, &mix, rate).expect("valid input");
        let m = run_poisson(
            &profile,
            &Workload {
                rate_rps: rate,
                requests: REQUESTS,
                mix,
                seed: SEED,
                kv_cache_tokens: None,
            },
        )
        .expect("valid workload");
        let ttft_err = p.ttft_ms / m.ttft_ms - 1.0;
        let itl_err = p.itl_ms / m.itl_ms - 1.0;
        assert!(
            ttft_err.abs() <= LATENCY_TOLERANCE,
            "TTFT at {frac}: model {:.1} engine {:.1}",
            p.ttft_ms,
            m.ttft_ms
        );
        assert!(
            itl_err.abs() <= LATENCY_TOLERANCE,
            "ITL at {frac}: model {:.2} engine {:.2}",
            p.itl_ms,
            m.itl_ms
        );
    }
    let hi = 1.2 * saturation_rps(&profile, &mix).expect("valid input");
    let engine = measured_capacity(&profile, &slo, &mix, hi, REQUESTS, SEED).expect("valid");
    let err = cap.rps / engine - 1.0;
    assert!(
        err.abs() <= CAPACITY_TOLERANCE,
        "capacity: model {:.2} engine {engine:.2} req/s",
        cap.rps
    );
}

#[test]
fn h100_8b_model_matches_engine() {
    check(
        Profile {
            alpha: 6.0,
            beta: 0.05,
            gamma: 15.0,
            delta: 0.01,
            max_batch_size: 256,
        },
        Slo {
            ttft_ms: 500.0,
            itl_ms: 50.0,
            percentile: None,
        },
        TokenMix {
            avg_input_tokens: 512.0,
            avg_output_tokens: 256.0,
        },
        CapacityLimit::Throughput,
    );
}

#[test]
fn l4_8b_itl_bound_model_matches_engine() {
    check(
        Profile {
            alpha: 20.0,
            beta: 0.6,
            gamma: 40.0,
            delta: 0.08,
            max_batch_size: 64,
        },
        Slo {
            ttft_ms: 2000.0,
            itl_ms: 50.0,
            percentile: None,
        },
        TokenMix {
            avg_input_tokens: 512.0,
            avg_output_tokens: 256.0,
        },
        CapacityLimit::Itl,
    );
}

#[test]
fn long_prompts_ttft_bound_model_matches_engine() {
    check(
        Profile {
            alpha: 8.0,
            beta: 0.1,
            gamma: 30.0,
            delta: 0.04,
            max_batch_size: 128,
        },
        Slo {
            ttft_ms: 250.0,
            itl_ms: 100.0,
            percentile: None,
        },
        TokenMix {
            avg_input_tokens: 2048.0,
            avg_output_tokens: 128.0,
        },
        CapacityLimit::Ttft,
    );
}

/// A percentile SLO: the model's capacity against the engine's (the highest rate at which
/// that share of the engine's requests meets both targets one by one), and the engine's
/// share at the planned capacity. Full table: `cargo run -p wvo-perf --example percentile
/// --release`.
fn check_percentile(profile: Profile, ttft_ms: f64, itl_ms: f64, mix: TokenMix, percentile: f64) {
    use wvo_perf::workload::run_poisson_attainment;
    let slo = Slo {
        ttft_ms,
        itl_ms,
        percentile: Some(percentile),
    };
    let cap = replica_capacity(&profile, &slo, &mix).expect("valid input");
    let mean = replica_capacity(&profile, &Slo::mean(ttft_ms, itl_ms), &mix).expect("valid");
    assert!(
        cap.rps <= mean.rps + 1e-9,
        "{cap:?} above the mean capacity {mean:?}"
    );
    let share = run_poisson_attainment(
        &profile,
        &Workload {
            rate_rps: cap.rps,
            requests: REQUESTS,
            mix,
            seed: SEED,
            kv_cache_tokens: None,
        },
        &slo,
    )
    .expect("valid workload");
    // Loaded at the planned capacity, the engine meets the percentile (to within the
    // sampling noise of 32,000 requests and the model's error, 2 points at p90, 0.5 at p99).
    let slack = (100.0 - percentile) * 0.2;
    assert!(
        share * 100.0 >= percentile - slack,
        "p{percentile}: the engine at the planned {:.2} req/s meets {:.2}%",
        cap.rps,
        share * 100.0
    );
    let hi = 1.2 * saturation_rps(&profile, &mix).expect("valid input");
    let engine = measured_capacity(&profile, &slo, &mix, hi, REQUESTS, SEED).expect("valid");
    let err = cap.rps / engine - 1.0;
    assert!(
        err.abs() <= CAPACITY_TOLERANCE,
        "p{percentile} capacity: model {:.2} engine {engine:.2} req/s",
        cap.rps
    );
}

/// `(profile, mix)` from `alpha, beta, gamma, delta` (ms), `maxBatchSize`, and mean input
/// and output tokens.
fn case(coefficients: [f64; 4], max_batch_size: u32, tokens: (f64, f64)) -> (Profile, TokenMix) {
    let [alpha, beta, gamma, delta] = coefficients;
    (
        Profile {
            alpha,
            beta,
            gamma,
            delta,
            max_batch_size,
        },
        TokenMix {
            avg_input_tokens: tokens.0,
            avg_output_tokens: tokens.1,
        },
    )
}

#[test]
fn percentile_capacity_matches_engine_itl_bound() {
    // An ITL target close to the decode step: the tail of per-request mean ITL binds.
    let (profile, mix) = case([6.0, 0.05, 15.0, 0.01], 256, (512.0, 256.0));
    for p in [90.0, 99.0] {
        check_percentile(profile, 500.0, 15.0, mix, p);
    }
}

#[test]
fn percentile_capacity_matches_engine_ttft_bound() {
    // Long prompts: prefill batching and the step in progress make the TTFT tail.
    let (profile, mix) = case([8.0, 0.1, 30.0, 0.04], 128, (2048.0, 128.0));
    for p in [90.0, 99.0] {
        check_percentile(profile, 250.0, 100.0, mix, p);
    }
}

#[test]
fn percentile_capacity_matches_engine_short_requests() {
    // Short outputs: a request's few gaps carry the prefills that follow its own.
    let (profile, mix) = case([7.0, 0.08, 20.0, 0.02], 128, (256.0, 64.0));
    for p in [95.0, 99.0] {
        check_percentile(profile, 300.0, 25.0, mix, p);
    }
}
