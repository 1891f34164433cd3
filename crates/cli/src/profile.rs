//! `wvo profile`: the estimated profile of a catalog model on an accelerator, its KV-cache
//! capacity, max batch and (with an SLO and a token mix) its capacity in req/s.

use crate::output;
use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use serde::Serialize;
use std::process::ExitCode;
use wvo_api::Slo;
use wvo_perf::{estimate_by_name, replica_capacity, Catalog, Dtype, EstimateOptions, TokenMix};

/// How to print the profile.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OutputFormat {
    /// Aligned lines for people.
    Table,
    /// The JSON contract (camelCase).
    Json,
}

/// Weight dtype accepted on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DtypeArg {
    /// bfloat16 weights.
    Bf16,
    /// float16 weights.
    Fp16,
    /// FP8 weights (16-bit KV cache).
    Fp8,
}

/// Arguments of `wvo profile`.
#[derive(Args, Debug)]
pub struct ProfileArgs {
    /// List the catalog (accelerators and models) and exit.
    #[arg(long)]
    pub list: bool,
    /// Catalog model name or Hugging Face id, e.g. `llama-3.1-8b` or
    /// `meta-llama/Llama-3.1-8B-Instruct`.
    #[arg(long, required_unless_present = "list")]
    pub model: Option<String>,
    /// Accelerator type: H100, H100-PCIE, H200, B200, A100-80G, A100-40G, L40S, L4, A10G,
    /// MI300X, Gaudi2.
    #[arg(long, required_unless_present = "list")]
    pub accelerator: Option<String>,
    /// GPUs per replica (tensor parallelism).
    #[arg(long, default_value_t = 1)]
    pub tp: u32,
    /// Weight dtype (default: the checkpoint's).
    #[arg(long, value_enum)]
    pub dtype: Option<DtypeArg>,
    /// Target mean TTFT, ms (with --itl-ms, gives capacityRps).
    #[arg(long, requires = "itl_ms")]
    pub ttft_ms: Option<f64>,
    /// Target mean ITL, ms (with --ttft-ms).
    #[arg(long, requires = "ttft_ms")]
    pub itl_ms: Option<f64>,
    /// Mean prompt tokens per request (default 1024).
    #[arg(long)]
    pub input_tokens: Option<f64>,
    /// Mean generated tokens per request (default 256).
    #[arg(long)]
    pub output_tokens: Option<f64>,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

/// The JSON contract of `wvo profile --output json` (ms, tokens, req/s).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileOutput {
    /// Catalog model name.
    pub model: String,
    /// Accelerator name.
    pub accelerator: String,
    /// GPUs per replica.
    pub tp: u32,
    /// Weight dtype.
    pub dtype: String,
    /// Whether the model fits.
    pub fits: bool,
    /// Decode base time, ms.
    pub alpha: f64,
    /// Decode time per running request, ms.
    pub beta: f64,
    /// Prefill base time, ms.
    pub gamma: f64,
    /// Prefill time per prompt token, ms.
    pub delta: f64,
    /// Most requests running at once (0 when it does not fit).
    pub max_batch_size: u32,
    /// KV-cache capacity, tokens.
    pub kv_cache_tokens: u64,
    /// Capacity at the SLO, req/s; null without an SLO (0 when it does not fit).
    pub capacity_rps: Option<f64>,
}

fn positive(name: &str, v: Option<f64>, min: f64) -> Result<Option<f64>> {
    match v {
        Some(x) if !(x.is_finite() && x >= min) => {
            bail!("--{name}: must be a finite number >= {min}, got {x}")
        }
        other => Ok(other),
    }
}

/// Runs `wvo profile`. Unknown names exit 1 with one line listing the valid names; a model
/// that does not fit is a result (`fits: false`, exit 0).
pub fn run(args: &ProfileArgs) -> Result<ExitCode> {
    let catalog = Catalog::embedded()?;
    if args.list {
        output::print(&render_list(catalog))?;
        return Ok(ExitCode::SUCCESS);
    }
    let (Some(model), Some(accelerator)) = (&args.model, &args.accelerator) else {
        bail!("--model and --accelerator are required (or --list)");
    };
    let ttft = positive("ttft-ms", args.ttft_ms, f64::MIN_POSITIVE)?;
    let itl = positive("itl-ms", args.itl_ms, f64::MIN_POSITIVE)?;
    let defaults = EstimateOptions::default();
    let opts = EstimateOptions {
        avg_input_tokens: positive("input-tokens", args.input_tokens, 0.0)?
            .unwrap_or(defaults.avg_input_tokens),
        avg_output_tokens: positive("output-tokens", args.output_tokens, 1.0)?
            .unwrap_or(defaults.avg_output_tokens),
        ..defaults
    };
    let dtype = args.dtype.map(|d| match d {
        DtypeArg::Bf16 => Dtype::Bf16,
        DtypeArg::Fp16 => Dtype::Fp16,
        DtypeArg::Fp8 => Dtype::Fp8,
    });
    let e = estimate_by_name(catalog, model, accelerator, args.tp, dtype, &opts)?;
    let capacity_rps = match (ttft, itl) {
        (Some(ttft_ms), Some(itl_ms)) => Some(match e.profile() {
            Some(p) => {
                replica_capacity(
                    &p,
                    &Slo {
                        ttft_ms,
                        itl_ms,
                        percentile: None,
                    },
                    &TokenMix {
                        avg_input_tokens: opts.avg_input_tokens,
                        avg_output_tokens: opts.avg_output_tokens,
                    },
                )?
                .rps
            }
            None => 0.0,
        }),
        _ => None,
    };
    let out = ProfileOutput {
        model: e.model.clone(),
        accelerator: e.accelerator.clone(),
        tp: e.tp,
        dtype: e.dtype.to_string(),
        fits: e.fits,
        alpha: e.alpha,
        beta: e.beta,
        gamma: e.gamma,
        delta: e.delta,
        max_batch_size: e.max_batch_size,
        kv_cache_tokens: e.kv_cache_tokens,
        capacity_rps,
    };
    match args.output {
        OutputFormat::Json => output::println(&serde_json::to_string_pretty(&out)?)?,
        OutputFormat::Table => {
            use std::fmt::Write as _;
            let mut text = String::new();
            writeln!(
                text,
                "model          {} ({} x{}, {})",
                out.model, out.accelerator, out.tp, out.dtype
            )?;
            writeln!(text, "fits           {}", out.fits)?;
            if let Some(reason) = &e.reason {
                writeln!(text, "why not        {reason}")?;
            }
            writeln!(
                text,
                "decode         ITL(n) = {:.3} + {:.5} * n ms",
                out.alpha, out.beta
            )?;
            writeln!(
                text,
                "prefill        {:.3} + {:.6} * tokens ms",
                out.gamma, out.delta
            )?;
            writeln!(
                text,
                "weights        {:.1} GiB per GPU",
                e.weights_gib_per_gpu
            )?;
            writeln!(text, "kv cache       {} tokens", out.kv_cache_tokens)?;
            writeln!(text, "max batch      {}", out.max_batch_size)?;
            match out.capacity_rps {
                Some(rps) => writeln!(text, "capacity       {rps:.3} req/s at the SLO")?,
                None => writeln!(text, "capacity       (give --ttft-ms and --itl-ms)")?,
            }
            output::print(&text)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The catalog as text: accelerators, then models.
pub fn render_list(catalog: &Catalog) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<10} {:>8} {:>10} {:>10} {:>9} {:>7}  PRODUCT",
        "ACCELERATOR", "MEM GiB", "HBM GB/s", "BF16 TF/s", "FP8 TF/s", "$/h"
    );
    for a in &catalog.accelerators {
        let fp8 = a.fp8_tflops.map_or("-".to_string(), |f| format!("{f:.0}"));
        let _ = writeln!(
            s,
            "{:<11} {:>7.0} {:>10.0} {:>10.0} {:>9} {:>7.2}  {}",
            a.name,
            a.memory_gib,
            a.memory_bandwidth_gbs,
            a.bf16_tflops,
            fp8,
            a.cost_per_hour,
            a.product
        );
    }
    s.push('\n');
    let _ = writeln!(
        s,
        "{:<30} {:>8} {:>8} {:>6}  HUGGING FACE ID",
        "MODEL", "PARAMS B", "ACTIVE B", "DTYPE"
    );
    for m in &catalog.models {
        let _ = writeln!(
            s,
            "{:<30} {:>8.2} {:>8.2} {:>6}  {}",
            m.name,
            m.params_b,
            m.active_params(),
            m.default_dtype,
            m.hf_id
        );
    }
    s
}
