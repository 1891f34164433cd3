//! Prints the model-vs-engine validation table of `docs/perf-model.md`.
//!
//! `cargo run -p wvo-perf --example validate --release`

use wvo_api::{Profile, Slo};
use wvo_perf::workload::{measured_capacity, run_poisson, Workload};
use wvo_perf::{predict, replica_capacity, saturation_rps, PerfError, TokenMix};

struct Case {
    name: &'static str,
    profile: Profile,
    slo: Slo,
    mix: TokenMix,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "8B on H100",
            profile: Profile {
                alpha: 6.0,
                beta: 0.05,
                gamma: 15.0,
                delta: 0.01,
                max_batch_size: 256,
            },
            slo: Slo {
                ttft_ms: 500.0,
                itl_ms: 50.0,
                percentile: None,
            },
            mix: TokenMix {
                avg_input_tokens: 512.0,
                avg_output_tokens: 256.0,
            },
        },
        Case {
            name: "8B on L4 (slow)",
            profile: Profile {
                alpha: 20.0,
                beta: 0.6,
                gamma: 40.0,
                delta: 0.08,
                max_batch_size: 64,
            },
            slo: Slo {
                ttft_ms: 2000.0,
                itl_ms: 50.0,
                percentile: None,
            },
            mix: TokenMix {
                avg_input_tokens: 512.0,
                avg_output_tokens: 256.0,
            },
        },
        Case {
            name: "long prompts (TTFT-bound)",
            profile: Profile {
                alpha: 8.0,
                beta: 0.1,
                gamma: 30.0,
                delta: 0.04,
                max_batch_size: 128,
            },
            slo: Slo {
                ttft_ms: 250.0,
                itl_ms: 100.0,
                percentile: None,
            },
            mix: TokenMix {
                avg_input_tokens: 2048.0,
                avg_output_tokens: 128.0,
            },
        },
    ]
}

fn main() -> Result<(), PerfError> {
    let requests: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(40_000);
    for c in cases() {
        let cap = replica_capacity(&c.profile, &c.slo, &c.mix)?;
        let sat = saturation_rps(&c.profile, &c.mix)?;
        println!(
            "\n## {} — saturation {:.2} req/s, model capacity {:.2} req/s ({:?})",
            c.name, sat, cap.rps, cap.limit
        );
        println!("| load | rate req/s | TTFT model | TTFT engine | err | ITL model | ITL engine | err | batch model | batch engine | prefill share m/e | prefill batch m/e |");
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
        for frac in [0.3, 0.6, 0.85, 1.0] {
            let rate = frac * cap.rps;
            let p = predict(&c.profile, &c.mix, rate)?;
            let m = run_poisson(
                &c.profile,
                &Workload {
                    rate_rps: rate,
                    requests,
                    mix: c.mix,
                    seed: 7,
                    kv_cache_tokens: None,
                },
            )?;
            println!(
                "| {:.0}% | {:.2} | {:.1} | {:.1} | {:+.1}% | {:.2} | {:.2} | {:+.1}% | {:.1} | {:.1} | {:.2}/{:.2} | {:.2}/{:.2} |",
                frac * 100.0, rate, p.ttft_ms, m.ttft_ms, 100.0 * (p.ttft_ms / m.ttft_ms - 1.0),
                p.itl_ms, m.itl_ms, 100.0 * (p.itl_ms / m.itl_ms - 1.0), p.mean_batch, m.mean_batch,
                p.prefill_share, m.prefill_share, p.mean_prefill_batch, m.mean_prefill_batch
            );
        }
        let measured = measured_capacity(&c.profile, &c.slo, &c.mix, 1.2 * sat, requests, 7)?;
        println!(
            "capacity: model {:.2} req/s, engine {:.2} req/s ({:+.1}%)",
            cap.rps,
            measured,
            100.0 * (cap.rps / measured - 1.0)
        );
    }
    Ok(())
}
