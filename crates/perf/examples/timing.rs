//! Wall-clock cost of `replica_capacity` (`cargo run -p wvo-perf --example timing --release`).

use std::time::Instant;
use wvo_api::{Profile, Slo};
use wvo_perf::{replica_capacity, PerfError, TokenMix};

fn main() -> Result<(), PerfError> {
    for percentile in [None, Some(99.0)] {
        time(Slo {
            ttft_ms: 500.0,
            itl_ms: 20.0,
            percentile,
        })?;
    }
    Ok(())
}

fn time(slo: Slo) -> Result<(), PerfError> {
    println!("SLO {} (TTFT 500 ms, ITL 20 ms):", slo.semantics());
    let mix = TokenMix {
        avg_input_tokens: 512.0,
        avg_output_tokens: 256.0,
    };
    for max_batch_size in [16, 64, 256, 1024] {
        let calls = 20_000u32;
        let start = Instant::now();
        let mut sum = 0.0;
        for i in 0..calls {
            let profile = Profile {
                alpha: 6.0 + f64::from(i % 100) * 0.01,
                beta: 0.05,
                gamma: 15.0,
                delta: 0.01,
                max_batch_size,
            };
            sum += replica_capacity(&profile, &slo, &mix)?.rps;
        }
        let per_call = start.elapsed().as_secs_f64() / f64::from(calls) * 1e6;
        println!("maxBatchSize {max_batch_size:5}: {per_call:6.2} µs per call (checksum {sum:.1})");
    }
    Ok(())
}
