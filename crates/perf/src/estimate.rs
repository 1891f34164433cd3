//! Profile estimator: model architecture + accelerator + tensor parallelism + dtype ->
//! `alpha`, `beta`, `gamma`, `delta`, KV-cache capacity, `maxBatchSize`, and whether the model
//! fits at all. Roofline arithmetic with efficiency factors; formulas in `docs/profiles.md`.
//!
//! ```text
//!  decode step  ITL(n) = alpha + beta*n        alpha: weights read once per step
//!                                              beta:  KV of one request read + its FLOPs
//!  prefill step gamma + delta*tokens           gamma: weights read once per step
//!                                              delta: FLOPs of one prompt token
//!  KV tokens = (memory*util - weights/tp - reserve) / KV bytes per token per GPU
//! ```

use serde::{Deserialize, Serialize};
use wvo_api::Profile;

use crate::catalog::{Accelerator, CatalogError, ModelArch};

/// Fraction of peak memory bandwidth a decode step achieves. Chosen from two published
/// batch-1 measurements of Llama-3.1-8B on vLLM (A100-40G: 77%, H100: 74%; see
/// `docs/profiles.md`), so those two rows of the comparison are in-sample.
pub const BANDWIDTH_EFFICIENCY: f64 = 0.75;
/// Fraction of the dense tensor peak a prefill achieves (an assumption: typical large-GEMM
/// utilization; not validated against a published TTFT with a known prompt length).
pub const COMPUTE_EFFICIENCY: f64 = 0.6;
/// GPU memory per GPU the server keeps for activations, CUDA graphs and the allocator, GiB.
/// From one vLLM log (Llama-3.1-70B FP8 on one H100: 3.9 GiB); uncertain, see the docs.
pub const NON_KV_RESERVE_GIB: f64 = 3.5;
/// KV-cache element size, bytes (BF16/FP16 cache; FP8 weights keep a 16-bit cache).
pub const KV_ELEMENT_BYTES: f64 = 2.0;
/// Largest tensor-parallel degree accepted.
pub const MAX_TP: u32 = 64;

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// Weight (and compute) precision of a served model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    /// bfloat16 weights, 2 bytes per parameter, BF16 compute.
    Bf16,
    /// float16 weights, 2 bytes per parameter, FP16 (= BF16 rate) compute.
    Fp16,
    /// FP8 weights, 1 byte per parameter; FP8 compute where the accelerator has FP8 tensor
    /// cores, else BF16 compute (W8A16). Embeddings and LM head stay 16-bit.
    Fp8,
    /// MXFP4 weights (4.25 bits per parameter with scales), BF16 compute; embeddings stay
    /// 16-bit. Only as a checkpoint default (gpt-oss).
    Mxfp4,
}

impl Dtype {
    /// Bytes per (non-embedding) weight parameter.
    pub fn weight_bytes(self) -> f64 {
        match self {
            Dtype::Bf16 | Dtype::Fp16 => 2.0,
            Dtype::Fp8 => 1.0,
            Dtype::Mxfp4 => 4.25 / 8.0,
        }
    }

    /// The catalog spelling: `bf16`, `fp16`, `fp8`, `mxfp4`.
    pub fn as_str(self) -> &'static str {
        match self {
            Dtype::Bf16 => "bf16",
            Dtype::Fp16 => "fp16",
            Dtype::Fp8 => "fp8",
            Dtype::Mxfp4 => "mxfp4",
        }
    }

    /// Parses the catalog spelling (case-insensitive).
    pub fn parse(s: &str) -> Result<Dtype, CatalogError> {
        match s.to_ascii_lowercase().as_str() {
            "bf16" | "bfloat16" => Ok(Dtype::Bf16),
            "fp16" | "float16" | "half" => Ok(Dtype::Fp16),
            "fp8" => Ok(Dtype::Fp8),
            "mxfp4" => Ok(Dtype::Mxfp4),
            other => Err(CatalogError::BadInput {
                field: "dtype",
                problem: format!("\"{other}\" is not one of bf16, fp16, fp8, mxfp4"),
            }),
        }
    }
}

impl std::fmt::Display for Dtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Serving assumptions of an estimate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EstimateOptions {
    /// Fraction of GPU memory the server may use (vLLM `gpu_memory_utilization`), 0..1.
    pub gpu_memory_utilization: f64,
    /// Mean prompt tokens per request, tokens (sets the KV read per decode step, the attention
    /// FLOPs of a prompt token and the KV a request holds).
    pub avg_input_tokens: f64,
    /// Mean generated tokens per request, tokens.
    pub avg_output_tokens: f64,
    /// Most sequences the server runs at once (vLLM `max_num_seqs`).
    pub max_num_seqs: u32,
}

impl Default for EstimateOptions {
    /// vLLM defaults (`gpu_memory_utilization` 0.9, `max_num_seqs` 256) and a 1024-in /
    /// 256-out request.
    fn default() -> Self {
        Self {
            gpu_memory_utilization: 0.9,
            avg_input_tokens: 1024.0,
            avg_output_tokens: 256.0,
            max_num_seqs: 256,
        }
    }
}

/// An estimated profile of one replica (`tp` GPUs) of a model on an accelerator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Estimate {
    /// Catalog model name.
    pub model: String,
    /// Catalog accelerator name.
    pub accelerator: String,
    /// Tensor-parallel degree (GPUs per replica).
    pub tp: u32,
    /// Weight dtype.
    pub dtype: Dtype,
    /// Whether the weights and at least one request's KV cache fit in memory.
    pub fits: bool,
    /// Decode base time per step, ms.
    pub alpha: f64,
    /// Decode time added per running request, ms.
    pub beta: f64,
    /// Prefill base time per step, ms.
    pub gamma: f64,
    /// Prefill time per prompt token in the step, ms.
    pub delta: f64,
    /// Most requests running at once: `min(max_num_seqs, kvCacheTokens / (in + out))`; 0 when
    /// the model does not fit.
    pub max_batch_size: u32,
    /// KV-cache capacity of the replica, tokens (0 when the model does not fit).
    pub kv_cache_tokens: u64,
    /// Weights per GPU, GiB.
    pub weights_gib_per_gpu: f64,
    /// KV cache per token per GPU, bytes.
    pub kv_bytes_per_token_per_gpu: f64,
    /// `alpha` at 100% of peak bandwidth and no interconnect cost: nothing decodes faster, ms.
    pub alpha_floor: f64,
    /// `delta` at 100% of peak compute: no prefill is faster per token, ms.
    pub delta_floor: f64,
    /// Why the model does not fit (when `fits` is false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Estimate {
    /// The profile for the queueing model, or `None` when the model does not fit.
    pub fn profile(&self) -> Option<Profile> {
        (self.fits && self.max_batch_size >= 1).then_some(Profile {
            alpha: self.alpha,
            beta: self.beta,
            gamma: self.gamma,
            delta: self.delta,
            max_batch_size: self.max_batch_size,
        })
    }
}

fn bad(field: &'static str, problem: impl Into<String>) -> CatalogError {
    CatalogError::BadInput {
        field,
        problem: problem.into(),
    }
}

/// Fraction of a MoE layer's experts that `n` tokens touch (uniform routing).
fn experts_touched(experts: f64, per_token: f64, n: f64) -> f64 {
    1.0 - (1.0 - per_token / experts).powf(n)
}

/// Estimates the profile of `model` on `tp` GPUs of `acc` at `dtype`. See the module docs
/// and `docs/profiles.md` for the formulas. Fails on a bad `tp` (0, above [`MAX_TP`], or not
/// dividing the attention heads) or bad options; a model that does not fit is not an error
/// (`fits: false` with the reason).
pub fn estimate(
    model: &ModelArch,
    acc: &Accelerator,
    tp: u32,
    dtype: Dtype,
    opts: &EstimateOptions,
) -> Result<Estimate, CatalogError> {
    if tp == 0 || tp > MAX_TP {
        return Err(bad("tp", format!("must be in 1..={MAX_TP} GPUs, got {tp}")));
    }
    if !model.attention_heads.is_multiple_of(tp) {
        return Err(bad(
            "tp",
            format!(
                "{} has {} attention heads, which {tp} GPUs do not divide",
                model.name, model.attention_heads
            ),
        ));
    }
    let util = opts.gpu_memory_utilization;
    if !(util.is_finite() && util > 0.0 && util <= 1.0) {
        return Err(bad(
            "gpuMemoryUtilization",
            format!("must be in (0, 1], got {util}"),
        ));
    }
    let (inp, out) = (opts.avg_input_tokens, opts.avg_output_tokens);
    if !(inp.is_finite() && inp >= 0.0) {
        return Err(bad(
            "avgInputTokens",
            format!("must be finite and >= 0 tokens, got {inp}"),
        ));
    }
    if !(out.is_finite() && out >= 1.0) {
        return Err(bad(
            "avgOutputTokens",
            format!("must be finite and >= 1 token, got {out}"),
        ));
    }
    if opts.max_num_seqs == 0 {
        return Err(bad("maxNumSeqs", "must be at least 1"));
    }

    let t = f64::from(tp);
    let layers = f64::from(model.layers);
    let hidden = f64::from(model.hidden_size);
    // Effective per-GPU rates.
    let peak_bw = acc.memory_bandwidth_gbs * 1e9; // B/s
    let bw = peak_bw * BANDWIDTH_EFFICIENCY;
    let peak_flops = match (dtype, acc.fp8_tflops) {
        (Dtype::Fp8, Some(fp8)) => fp8,
        _ => acc.bf16_tflops,
    } * 1e12; // FLOP/s
    let flops = peak_flops * COMPUTE_EFFICIENCY;

    // Weights.
    let wb = dtype.weight_bytes();
    let emb = model.embedding_params() * 1e9;
    let lm_head = f64::from(model.vocab_size) * hidden;
    let total = model.params_b * 1e9;
    let active = model.active_params() * 1e9;
    let weight_bytes = (total - emb) * wb + emb * 2.0;
    let weights_per_gpu = weight_bytes / t;
    // Read per decode step at batch 1: active non-embedding weights plus the LM head.
    let active_read = (active - emb).max(0.0) * wb + lm_head * 2.0;

    // KV cache per token per GPU (KV heads split over the GPUs, replicated when fewer).
    let kv_heads_per_gpu = (f64::from(model.kv_heads) / t).ceil().max(1.0);
    let kv_per_token =
        2.0 * layers * kv_heads_per_gpu * f64::from(model.head_dim) * KV_ELEMENT_BYTES;

    // Memory and KV capacity.
    let usable = acc.memory_gib * GIB * util - NON_KV_RESERVE_GIB * GIB;
    let kv_bytes = usable - weights_per_gpu;
    let kv_tokens = if kv_bytes > 0.0 {
        (kv_bytes / kv_per_token).floor() as u64
    } else {
        0
    };
    let per_request = (inp + out).ceil().max(1.0);
    let (fits, reason) = if kv_bytes <= 0.0 {
        (
            false,
            Some(format!(
                "weights need {:.1} GiB per GPU but {} x{tp} leaves {:.1} GiB per GPU ({:.0} GiB at gpu_memory_utilization {util} less {NON_KV_RESERVE_GIB} GiB reserve)",
                weights_per_gpu / GIB,
                acc.name,
                usable / GIB,
                acc.memory_gib,
            )),
        )
    } else if (kv_tokens as f64) < per_request {
        (
            false,
            Some(format!(
                "the KV cache holds {kv_tokens} tokens, less than one request ({per_request} tokens)"
            )),
        )
    } else {
        (true, None)
    };
    let max_batch_size = if fits {
        let by_kv = (kv_tokens as f64 / per_request).floor();
        by_kv.min(f64::from(opts.max_num_seqs)).max(1.0) as u32
    } else {
        0
    };

    // Tensor-parallel cost: two all-reduces per layer per step (latency), and per token the
    // ring all-reduce moves 2(t-1)/t of a hidden vector per all-reduce over one direction.
    let (tp_latency_ms, tp_ms_per_token) = if tp > 1 {
        let lat = 2.0 * layers * acc.interconnect.allreduce_latency_us * 1e-3;
        let one_way = acc.interconnect.bandwidth_gbs * 1e9 / 2.0;
        let bytes = 2.0 * layers * hidden * 2.0 * 2.0 * (t - 1.0) / t;
        (lat, bytes / one_way * 1e3)
    } else {
        (0.0, 0.0)
    };

    // Mixture of experts: more distinct experts are read as the batch grows. Linearized as
    // the secant of the touched fraction between batch 1 and the max batch.
    let moe_beta_bytes = match (model.experts, model.experts_per_token) {
        (Some(e), Some(k)) if max_batch_size > 1 => {
            let (e, k) = (f64::from(e), f64::from(k));
            // Expert weights in total and the part batch 1 already reads.
            let expert_bytes = (total - active) * wb * e / (e - k).max(1.0);
            let b = f64::from(max_batch_size);
            let slope = (experts_touched(e, k, b) - experts_touched(e, k, 1.0)) / (b - 1.0);
            expert_bytes * slope
        }
        _ => 0.0,
    };

    let ctx = inp + out / 2.0; // mean context length during decode
    let flops_per_token = 2.0 * active;
    let attn_flops_per_prompt_token =
        2.0 * layers * inp * f64::from(model.attention_heads) * f64::from(model.head_dim);

    let alpha = active_read / t / bw * 1e3 + tp_latency_ms;
    let beta = (kv_per_token * ctx + moe_beta_bytes / t) / bw * 1e3
        + flops_per_token / t / flops * 1e3
        + tp_ms_per_token;
    let gamma = weight_bytes / t / bw * 1e3 + tp_latency_ms;
    let delta = (flops_per_token + attn_flops_per_prompt_token) / t / flops * 1e3 + tp_ms_per_token;
    let alpha_floor = active_read / t / peak_bw * 1e3;
    let delta_floor = flops_per_token / t / peak_flops * 1e3;

    Ok(Estimate {
        model: model.name.clone(),
        accelerator: acc.name.clone(),
        tp,
        dtype,
        fits,
        alpha,
        beta,
        gamma,
        delta,
        max_batch_size,
        kv_cache_tokens: if fits { kv_tokens } else { 0 },
        weights_gib_per_gpu: weights_per_gpu / GIB,
        kv_bytes_per_token_per_gpu: kv_per_token,
        alpha_floor,
        delta_floor,
        reason,
    })
}

/// [`estimate`] by catalog names: model by catalog name or Hugging Face id, accelerator by
/// name, dtype defaulting to the checkpoint's.
pub fn estimate_by_name(
    catalog: &crate::catalog::Catalog,
    model: &str,
    accelerator: &str,
    tp: u32,
    dtype: Option<Dtype>,
    opts: &EstimateOptions,
) -> Result<Estimate, CatalogError> {
    let m = catalog.model(model)?;
    let a = catalog.accelerator(accelerator)?;
    let dtype = match dtype {
        Some(d) => d,
        None => Dtype::parse(&m.default_dtype)?,
    };
    estimate(m, a, tp, dtype, opts)
}
