//! The catalog files and the profile estimator: schema and units, hand-computed figures,
//! monotonicity in the hardware, and models that do not fit.

use proptest::prelude::*;
use wvo_perf::catalog::{Accelerator, Catalog, CatalogError, ACCELERATORS_YAML, MODELS_YAML};
use wvo_perf::{estimate, estimate_by_name, Dtype, EstimateOptions};

fn cat() -> &'static Catalog {
    Catalog::embedded().expect("embedded catalog parses and validates")
}

fn close(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() <= 1e-3 * want.abs().max(1e-9),
        "{what}: got {got}, want {want}"
    );
}

#[test]
fn embedded_catalog_validates_with_the_contract_names() {
    let c = cat();
    assert_eq!(
        c.accelerator_names(),
        [
            "H100",
            "H100-PCIE",
            "H200",
            "B200",
            "A100-80G",
            "A100-40G",
            "L40S",
            "L4",
            "A10G",
            "MI300X",
            "Gaudi2"
        ]
    );
    assert!(c.models.len() >= 10, "{} models", c.models.len());
    for m in &c.models {
        assert!(
            m.source.contains(&m.hf_id),
            "{}: source should be the HF config of {}",
            m.name,
            m.hf_id
        );
        assert_eq!(c.model(&m.hf_id).map(|x| &x.name), Ok(&m.name));
    }
    // Every figure positive; FP8 at least the BF16 rate.
    for a in &c.accelerators {
        assert!(
            a.memory_gib > 0.0
                && a.memory_bandwidth_gbs > 0.0
                && a.bf16_tflops > 0.0
                && a.cost_per_hour > 0.0
        );
        assert!(a.fp8_tflops.is_none_or(|f| f >= a.bf16_tflops));
    }
}

#[test]
fn duplicates_and_bad_units_are_rejected_naming_the_field() {
    // A duplicate accelerator.
    let dup = ACCELERATORS_YAML.replacen("name: H100-PCIE", "name: H100", 1);
    let err = Catalog::parse(&dup, MODELS_YAML).unwrap_err();
    assert!(err.to_string().contains("accelerators[1].name"), "{err}");
    // A duplicate model (by HF id).
    let dup = MODELS_YAML.replacen(
        "hfId: meta-llama/Llama-3.1-70B-Instruct",
        "hfId: meta-llama/Llama-3.1-8B-Instruct",
        1,
    );
    let err = Catalog::parse(ACCELERATORS_YAML, &dup).unwrap_err();
    assert!(err.to_string().contains("models[1].hfId"), "{err}");
    // Bandwidth in TB/s by mistake (3.35 instead of 3350).
    let bad = ACCELERATORS_YAML.replacen("memoryBandwidthGBs: 3350", "memoryBandwidthGBs: 3.35", 1);
    let err = Catalog::parse(&bad, MODELS_YAML).unwrap_err();
    assert!(
        err.to_string()
            .contains("accelerators[0].memoryBandwidthGBs"),
        "{err}"
    );
    // Negative parameters.
    let bad = MODELS_YAML.replacen("paramsB: 8.03", "paramsB: -8.03", 1);
    let err = Catalog::parse(ACCELERATORS_YAML, &bad).unwrap_err();
    assert!(err.to_string().contains("models[0].paramsB"), "{err}");
    // Unknown field (schema).
    let bad = ACCELERATORS_YAML.replacen("memoryGiB: 80", "memoryGB: 80", 1);
    assert!(matches!(
        Catalog::parse(&bad, MODELS_YAML),
        Err(CatalogError::Parse { .. })
    ));
}

#[test]
fn unknown_names_list_the_valid_ones() {
    let err = cat().accelerator("V100").unwrap_err().to_string();
    assert!(
        err.contains("unknown accelerator \"V100\"") && err.contains("H100-PCIE, H200"),
        "{err}"
    );
    let err = cat().model("llama-9").unwrap_err().to_string();
    assert!(
        err.contains("unknown model \"llama-9\"") && err.contains("llama-3.1-8b"),
        "{err}"
    );
}

/// Llama-3.1-8B, H100 SXM, tp 1, bf16, 1024 in / 256 out, gpu_memory_utilization 0.9.
///
/// Hand computation (BW eff 0.75, compute eff 0.6, reserve 3.5 GiB):
/// * embeddings E = 2 * 128256 * 4096 = 1.050673152e9 params (untied), kept 16-bit;
///   weights = 8.03e9 * 2 B = 16.06e9 B.
/// * read per decode step = (8.03e9 - E) * 2 + LM head 128256*4096*2 = 15.009326848e9 B;
///   effective bandwidth 3350e9 * 0.75 = 2.5125e12 B/s -> alpha = 5.973861 ms.
/// * KV per token = 2 * 32 layers * 8 heads * 128 * 2 B = 131072 B; mean context
///   1024 + 256/2 = 1152 -> 150994944 B per request per step -> 0.060097 ms; FLOPs
///   2 * 8.03e9 = 16.06e9 at 989.4e12 * 0.6 = 593.64e12 -> 0.027054 ms; beta = 0.087151 ms.
/// * gamma = 16.06e9 / 2.5125e12 = 6.392040 ms.
/// * delta = (16.06e9 + attention 2*32*1024*32*128 = 268435456) / 593.64e12 = 0.0275056 ms.
/// * KV: 80 GiB * 0.9 - 3.5 GiB = 73551314944 B, less 16.06e9 = 57491314944 B
///   / 131072 = 438623.9 -> 438623 tokens; max batch = min(256, 438623 / 1280) = 256.
#[test]
fn hand_computed_llama_8b_on_h100() {
    let e = estimate_by_name(
        cat(),
        "meta-llama/Llama-3.1-8B-Instruct",
        "H100",
        1,
        Some(Dtype::Bf16),
        &EstimateOptions::default(),
    )
    .unwrap();
    assert!(e.fits);
    close(e.alpha, 5.973861, "alpha");
    close(e.beta, 0.087151, "beta");
    close(e.gamma, 6.392040, "gamma");
    close(e.delta, 0.0275056, "delta");
    assert_eq!(e.kv_cache_tokens, 438_623);
    assert_eq!(e.max_batch_size, 256);
}

/// Llama-3.1-70B, A100-80G, tp 4, bf16, 512 in / 128 out.
///
/// Hand computation:
/// * weights 70.55e9 * 2 = 141.1e9 B, 35.275e9 B per GPU.
/// * read per step = (70.55e9 - 2*128256*8192) * 2 + 128256*8192*2 = 138.998653696e9 B,
///   per GPU 34.749663424e9 at 2039e9 * 0.75 = 1529.25e9 B/s -> 22.723337 ms, plus
///   2 all-reduces * 80 layers * 10 µs = 1.6 ms -> alpha = 24.323337 ms.
/// * KV heads per GPU 8/4 = 2: 2*80*2*128*2 = 81920 B/token; context 512 + 64 = 576 ->
///   0.030856 ms; FLOPs 2*70.55e9/4 at 312e12*0.6 -> 0.188435 ms; ring all-reduce payload
///   2*80*8192*2 B * 2 * 3/4 = 3932160 B at 300e9 B/s -> 0.013107 ms; beta = 0.232398 ms.
/// * gamma = 35.275e9 / 1529.25e9 = 23.066863 ms + 1.6 = 24.666863 ms.
/// * delta = (141.1e9 + 2*80*512*64*128 = 671088640) / 4 / 187.2e12 = 0.189331 ms + 0.013107
///   = 0.202438 ms.
/// * KV: 73551314944 - 35.275e9 = 38276314944 B / 81920 = 467240 tokens; batch 256.
#[test]
fn hand_computed_llama_70b_on_4_a100_80g() {
    let opts = EstimateOptions {
        avg_input_tokens: 512.0,
        avg_output_tokens: 128.0,
        ..Default::default()
    };
    let e = estimate_by_name(cat(), "llama-3.1-70b", "A100-80G", 4, None, &opts).unwrap();
    assert!(e.fits);
    assert_eq!(e.dtype, Dtype::Bf16);
    close(e.alpha, 24.323337, "alpha");
    close(e.beta, 0.232398, "beta");
    close(e.gamma, 24.666863, "gamma");
    close(e.delta, 0.202438, "delta");
    assert_eq!(e.kv_cache_tokens, 467_240);
    assert_eq!(e.max_batch_size, 256);
}

#[test]
fn a_model_that_does_not_fit_says_so() {
    let e = estimate_by_name(
        cat(),
        "llama-3.1-70b",
        "L4",
        1,
        Some(Dtype::Bf16),
        &EstimateOptions::default(),
    )
    .unwrap();
    assert!(!e.fits);
    assert_eq!((e.kv_cache_tokens, e.max_batch_size), (0, 0));
    assert!(e.profile().is_none());
    let reason = e.reason.unwrap();
    assert!(
        reason.contains("weights need 131.4 GiB per GPU"),
        "{reason}"
    );
    // The same model fits on 2 H100s but not on 1 in bf16; fp8 fits on 1.
    assert!(
        !estimate_by_name(
            cat(),
            "llama-3.1-70b",
            "H100",
            1,
            None,
            &EstimateOptions::default()
        )
        .unwrap()
        .fits
    );
    assert!(
        estimate_by_name(
            cat(),
            "llama-3.1-70b",
            "H100",
            2,
            None,
            &EstimateOptions::default()
        )
        .unwrap()
        .fits
    );
    assert!(
        estimate_by_name(
            cat(),
            "llama-3.1-70b",
            "H100",
            1,
            Some(Dtype::Fp8),
            &EstimateOptions::default()
        )
        .unwrap()
        .fits
    );
    // Weights fit but not one long request's KV cache.
    let long = EstimateOptions {
        avg_input_tokens: 2_000_000.0,
        ..Default::default()
    };
    let e = estimate_by_name(cat(), "llama-3.1-8b", "L4", 1, None, &long).unwrap();
    assert!(!e.fits && e.reason.unwrap().contains("less than one request"));
}

#[test]
fn bad_tp_is_an_error_naming_the_field() {
    let err = estimate_by_name(
        cat(),
        "llama-3.1-8b",
        "H100",
        3,
        None,
        &EstimateOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().starts_with("tp: "), "{err}");
    let err = estimate_by_name(
        cat(),
        "llama-3.1-8b",
        "H100",
        0,
        None,
        &EstimateOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().starts_with("tp: "), "{err}");
}

#[test]
fn every_catalog_pair_gives_finite_positive_numbers() {
    for m in &cat().models {
        for a in &cat().accelerators {
            for tp in [1, 2, 4, 8] {
                if !m.attention_heads.is_multiple_of(tp) {
                    continue;
                }
                let e = estimate_by_name(
                    cat(),
                    &m.name,
                    &a.name,
                    tp,
                    None,
                    &EstimateOptions::default(),
                )
                .unwrap();
                for v in [e.alpha, e.beta, e.gamma, e.delta] {
                    assert!(
                        v.is_finite() && v > 0.0,
                        "{} {} tp{tp}: {e:?}",
                        m.name,
                        a.name
                    );
                }
                assert_eq!(e.fits, e.profile().is_some());
            }
        }
    }
}

fn scaled(base: &Accelerator, mem: f64, bw: f64, compute: f64, link: f64) -> Accelerator {
    let mut a = base.clone();
    a.memory_gib *= mem;
    a.memory_bandwidth_gbs *= bw;
    a.bf16_tflops *= compute;
    a.fp8_tflops = a.fp8_tflops.map(|f| f * compute);
    a.interconnect.bandwidth_gbs *= link;
    a.interconnect.allreduce_latency_us /= link;
    a
}

proptest! {
    /// More memory, faster memory, more compute or a faster link never give a slower
    /// profile, less KV cache or a smaller batch.
    #[test]
    fn bigger_faster_gpus_never_give_a_slower_profile(
        mi in 0usize..100, ai in 0usize..100, tp_pow in 0u32..4, dtype_i in 0usize..3,
        mem in 1.0f64..3.0, bw in 1.0f64..3.0, compute in 1.0f64..3.0, link in 1.0f64..3.0,
        input in 16.0f64..8192.0, output in 1.0f64..2048.0,
    ) {
        let c = cat();
        let m = &c.models[mi % c.models.len()];
        let base = &c.accelerators[ai % c.accelerators.len()];
        let tp = 1u32 << tp_pow;
        prop_assume!(m.attention_heads.is_multiple_of(tp));
        let dtype = [Dtype::Bf16, Dtype::Fp16, Dtype::Fp8][dtype_i];
        let opts = EstimateOptions { avg_input_tokens: input, avg_output_tokens: output, ..Default::default() };
        let slow = estimate(m, base, tp, dtype, &opts).unwrap();
        let fast = estimate(m, &scaled(base, mem, bw, compute, link), tp, dtype, &opts).unwrap();
        prop_assert!(fast.kv_cache_tokens >= slow.kv_cache_tokens);
        prop_assert!(fast.max_batch_size >= slow.max_batch_size);
        prop_assert!(fast.fits || !slow.fits);
        prop_assert!(fast.alpha <= slow.alpha * (1.0 + 1e-12));
        prop_assert!(fast.gamma <= slow.gamma * (1.0 + 1e-12));
        prop_assert!(fast.delta <= slow.delta * (1.0 + 1e-12));
        // MoE beta grows with the batch (more experts read), so compare it at equal batch.
        if m.experts.is_none() || fast.max_batch_size == slow.max_batch_size {
            prop_assert!(fast.beta <= slow.beta * (1.0 + 1e-12));
        }
    }
}
