//! Prints the percentile-SLO validation table of `docs/perf-model.md`: for each case and
//! percentile, the model's capacity, the engine's share of requests meeting the SLO at that
//! rate, and the engine's own capacity at the percentile.
//!
//! `cargo run -p wvo-perf --example percentile --release [requests]`

use wvo_api::{Profile, Slo};
use wvo_perf::workload::{measured_capacity, run_poisson_attainment, Workload};
use wvo_perf::{miss_share, replica_capacity, saturation_rps, PerfError, TokenMix};

fn main() -> Result<(), PerfError> {
    let requests: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let seed = 7;
    println!("| case | percentile | mean-SLO capacity | model capacity | limit | engine share at it | model miss at it (TTFT + ITL) | engine capacity | error |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for (name, profile, ttft, itl, mix) in cases() {
        let mean_slo = Slo {
            ttft_ms: ttft,
            itl_ms: itl,
            percentile: None,
        };
        let mean_cap = replica_capacity(&profile, &mean_slo, &mix)?.rps;
        for p in [90.0, 95.0, 99.0] {
            let slo = Slo {
                percentile: Some(p),
                ..mean_slo
            };
            let cap = replica_capacity(&profile, &slo, &mix)?;
            let w = Workload {
                rate_rps: cap.rps.max(1e-3),
                requests,
                mix,
                seed,
                kv_cache_tokens: None,
            };
            let share = run_poisson_attainment(&profile, &w, &slo)?;
            let (t, i) = miss_share(&profile, &slo, &mix, cap.rps)?;
            let hi = 1.2 * saturation_rps(&profile, &mix)?;
            let engine = measured_capacity(&profile, &slo, &mix, hi, requests, seed)?;
            println!(
                "| {name} | p{p} | {mean_cap:.2} | {:.2} | {:?} | {:.2}% | {:.2}% + {:.2}% | {engine:.2} | {:+.1}% |",
                cap.rps, cap.limit, share * 100.0, t * 100.0, i * 100.0,
                (cap.rps / engine - 1.0) * 100.0
            );
        }
    }
    Ok(())
}

fn cases() -> Vec<(&'static str, Profile, f64, f64, TokenMix)> {
    let p = |alpha, beta, gamma, delta, b| Profile {
        alpha,
        beta,
        gamma,
        delta,
        max_batch_size: b,
    };
    let mix = |i, o| TokenMix {
        avg_input_tokens: i,
        avg_output_tokens: o,
    };
    vec![
        (
            "8B on H100",
            p(6.0, 0.05, 15.0, 0.01, 256),
            500.0,
            50.0,
            mix(512.0, 256.0),
        ),
        (
            "8B on H100, tight ITL",
            p(6.0, 0.05, 15.0, 0.01, 256),
            500.0,
            15.0,
            mix(512.0, 256.0),
        ),
        (
            "8B on L4 (slow)",
            p(20.0, 0.6, 40.0, 0.08, 64),
            2000.0,
            50.0,
            mix(512.0, 256.0),
        ),
        (
            "long prompts (TTFT-bound)",
            p(8.0, 0.1, 30.0, 0.04, 128),
            250.0,
            100.0,
            mix(2048.0, 128.0),
        ),
        (
            "short chat",
            p(7.0, 0.08, 20.0, 0.02, 128),
            300.0,
            25.0,
            mix(256.0, 64.0),
        ),
    ]
}
