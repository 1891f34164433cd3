//! Prints the estimate-vs-published comparison of `docs/profiles.md`.
//!
//! `cargo run -p wvo-perf --example profiles --release`
//!
//! Latency rows run the estimated profile on the batching engine closed-loop at the
//! benchmark's concurrency and token counts (what `vllm bench serve --max-concurrency C`
//! measures), so prefill stalls are included as in the measurement.

use wvo_perf::batching::{Engine, EngineConfig, Request};
use wvo_perf::{estimate_by_name, Catalog, Dtype, EstimateOptions};

/// Mean ITL (ms) and mean TTFT (ms) of `conc` closed-loop clients.
fn closed_loop(profile: &wvo_api::Profile, conc: usize, input: u32, output: u32) -> (f64, f64) {
    let mut engine = Engine::new(EngineConfig::new(*profile)).expect("profile");
    let total = conc * 40;
    let mut next = 0u64;
    for _ in 0..conc {
        engine
            .submit(Request {
                id: next,
                arrival_ms: 0.0,
                input_tokens: input,
                output_tokens: output,
            })
            .expect("submit");
        next += 1;
    }
    let (mut itl, mut n_itl, mut ttft, mut n) = (0.0, 0u64, 0.0, 0u64);
    while let Some(t) = engine.next_event_ms() {
        let adv = engine.advance_to(t);
        for c in adv.completions {
            if c.id >= conc as u64 {
                itl += c.itl_sum_ms;
                n_itl += u64::from(c.itl_count);
                ttft += c.ttft_ms;
                n += 1;
            }
            if (next as usize) < total {
                engine
                    .submit(Request {
                        id: next,
                        arrival_ms: c.finish_ms,
                        input_tokens: input,
                        output_tokens: output,
                    })
                    .expect("submit");
                next += 1;
            }
        }
    }
    (itl / n_itl.max(1) as f64, ttft / n.max(1) as f64)
}

/// (model, accelerator, tp, dtype, concurrency, in, out, published ITL ms, label).
type Row = (
    &'static str,
    &'static str,
    u32,
    Dtype,
    usize,
    u32,
    u32,
    f64,
    &'static str,
);

fn main() {
    let cat = Catalog::embedded().expect("catalog");
    let opts = |i: f64, o: f64| EstimateOptions {
        avg_input_tokens: i,
        avg_output_tokens: o,
        ..Default::default()
    };
    println!("| # | what | estimate | published | error |");
    println!("|---|---|---|---|---|");
    // Latency rows: (model, accelerator, tp, dtype, conc, in, out, published ITL ms, label)
    let rows: [Row; 5] = [
        (
            "llama-3.1-8b",
            "A100-40G",
            1,
            Dtype::Bf16,
            1,
            1024,
            128,
            1000.0 / 75.0,
            "johnmusgrave A100-40G C=1 (75 tok/s)",
        ),
        (
            "llama-3.1-8b",
            "A100-40G",
            1,
            Dtype::Bf16,
            8,
            1024,
            128,
            8.0 / (6.6 * 75.0) * 1000.0,
            "johnmusgrave A100-40G C=8 (6.6x of 75 tok/s)",
        ),
        (
            "llama-3.1-8b",
            "H100",
            1,
            Dtype::Fp16,
            1,
            256,
            256,
            6.48,
            "yobitel H100 C=1 TPOT p50",
        ),
        (
            "llama-3.1-8b",
            "H100",
            1,
            Dtype::Fp16,
            4,
            256,
            256,
            6.59,
            "yobitel H100 C=4 TPOT p50",
        ),
        (
            "llama-3.1-8b",
            "H100",
            1,
            Dtype::Fp16,
            16,
            256,
            256,
            10.94,
            "yobitel H100 C=16 TPOT p50",
        ),
    ];
    for (i, (m, a, tp, d, conc, inp, out, published, label)) in rows.iter().enumerate() {
        let e = estimate_by_name(
            cat,
            m,
            a,
            *tp,
            Some(*d),
            &opts(f64::from(*inp), f64::from(*out)),
        )
        .expect("estimate");
        let p = e.profile().expect("fits");
        let (itl, ttft) = closed_loop(&p, *conc, *inp, *out);
        println!(
            "| {} | {m} {a} tp{tp} {d}: ITL at C={conc} ({inp} in/{out} out) — {label} | {itl:.2} ms (TTFT {ttft:.1} ms; alpha {:.2}, beta {:.4}, gamma {:.1}, delta {:.5}) | {published:.2} ms | {:+.1}% |",
            i + 1, p.alpha, p.beta, p.gamma, p.delta, (itl / published - 1.0) * 100.0
        );
    }
    // Memory rows.
    let mut o = opts(1024.0, 1024.0);
    o.gpu_memory_utilization = 0.98;
    let e =
        estimate_by_name(cat, "llama-3.1-70b", "H100", 1, Some(Dtype::Fp8), &o).expect("estimate");
    println!("| 6 | llama-3.1-70b H100 tp1 fp8: weights per GPU (vLLM PR #12569 log) | {:.2} GiB | 67.72 GiB | {:+.1}% |", e.weights_gib_per_gpu, (e.weights_gib_per_gpu / 67.72 - 1.0) * 100.0);
    println!("| 7 | llama-3.1-70b H100 tp1 fp8, util 0.98: KV tokens (1381 blocks x 16) | {} | 22096 | {:+.1}% |", e.kv_cache_tokens, (e.kv_cache_tokens as f64 / 22096.0 - 1.0) * 100.0);
    let e = estimate_by_name(
        cat,
        "qwen3-235b-a22b",
        "H100",
        4,
        Some(Dtype::Fp8),
        &opts(1024.0, 1024.0),
    )
    .expect("estimate");
    println!("| 8 | qwen3-235b-a22b H100 tp4 fp8, util 0.9: KV tokens (vLLM issue #21348 log) | {} | 178880 | {:+.1}% |", e.kv_cache_tokens, (e.kv_cache_tokens as f64 / 178880.0 - 1.0) * 100.0);
}
