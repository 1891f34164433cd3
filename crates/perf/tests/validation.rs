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
