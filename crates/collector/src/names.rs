//! Metric names by server family and version, and the signals wvo reads from them.
//!
//! Every signal has candidate names in priority order; the first one a pod exposes is
//! used and reported in the figure (`metric`). See `docs/collector.md` for the table.

use serde::{Deserialize, Serialize};

/// Which server family and metric generation a pod's metrics come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Flavor {
    /// vLLM V1 engine (labels `model_name`, `engine`; `kv_cache_usage_perc`,
    /// `inter_token_latency_seconds`).
    VllmV1,
    /// vLLM V0 engine (label `model_name` only; `gpu_cache_usage_perc`,
    /// `time_per_output_token_seconds`).
    VllmV0,
    /// SGLang (`sglang:*`).
    Sglang,
    /// llama.cpp's `llama-server --metrics` (`llamacpp:*`, no labels: one model per
    /// server, named by the caller's target).
    LlamaCpp,
    /// Hugging Face text-generation-inference (`tgi_*`, no `model_name` label: one model
    /// per server, named by the caller's target).
    Tgi,
}

impl Flavor {
    /// Short display name.
    pub fn as_str(self) -> &'static str {
        match self {
            Flavor::VllmV1 => "vllm-v1",
            Flavor::VllmV0 => "vllm-v0",
            Flavor::Sglang => "sglang",
            Flavor::LlamaCpp => "llamacpp",
            Flavor::Tgi => "tgi",
        }
    }

    /// True for servers whose metrics carry no `model_name` label (llama.cpp, TGI): the
    /// model comes from the caller's target.
    pub fn unlabelled(self) -> bool {
        matches!(self, Flavor::LlamaCpp | Flavor::Tgi)
    }

    /// Why this server never exposes `signal`, for the unknown figure's reason; None when
    /// it may (or when the server family is not one of the unlabelled ones).
    pub fn never_exposes(self, signal: Signal) -> Option<&'static str> {
        match (self, signal) {
            (Flavor::LlamaCpp, Signal::Scalar(Scalar::RequestRate)) => Some(
                "llama.cpp exposes no request counter (llamacpp:* counts tokens and decode calls, not requests)",
            ),
            (Flavor::LlamaCpp, Signal::Scalar(Scalar::PreemptionRate)) => Some(
                "llama.cpp exposes no preemption counter (a request waits for a free slot: llamacpp:requests_deferred)",
            ),
            (Flavor::LlamaCpp, Signal::Scalar(Scalar::KvUsage)) => Some(
                "this llama.cpp exposes no KV-cache usage (llamacpp:kv_cache_usage_ratio was removed from newer servers)",
            ),
            (Flavor::LlamaCpp, Signal::Hist(Hist::Ttft)) => Some(
                "llama.cpp exposes no time-to-first-token histogram (only summed prompt seconds and tokens)",
            ),
            (Flavor::LlamaCpp, Signal::Hist(Hist::Itl)) => Some(
                "llama.cpp exposes no latency histogram (its mean time per token is llamacpp:tokens_predicted_seconds_total / llamacpp:tokens_predicted_total)",
            ),
            (Flavor::LlamaCpp, Signal::Hist(Hist::PromptLen | Hist::GenerationLen)) => Some(
                "llama.cpp exposes no request counter, so no tokens per request (only token totals)",
            ),
            (Flavor::LlamaCpp, Signal::KvCapacity) => Some(
                "llama.cpp exposes no KV capacity on /metrics (n_ctx is on /props)",
            ),
            (Flavor::Tgi, Signal::Scalar(Scalar::PreemptionRate)) => Some("TGI exposes no preemption counter"),
            (Flavor::Tgi, Signal::Scalar(Scalar::KvUsage)) => Some("TGI exposes no KV-cache usage"),
            (Flavor::Tgi, Signal::Hist(Hist::Ttft)) => Some(
                "TGI exposes no time-to-first-token histogram (tgi_request_queue_duration is the queue part only)",
            ),
            (Flavor::Tgi, Signal::KvCapacity) => Some(
                "TGI exposes no KV capacity (tgi_batch_total_tokens is described but never set)",
            ),
            _ => None,
        }
    }
}

/// A signal read per pod, for [`Flavor::never_exposes`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// A scalar signal.
    Scalar(Scalar),
    /// A histogram signal.
    Hist(Hist),
    /// The KV-cache capacity.
    KvCapacity,
}

impl Flavor {
    /// Why a pod with these flavors has no `signal`: the first flavor that never exposes
    /// it, when every flavor of the pod is an unlabelled one (llama.cpp, TGI).
    pub fn never_exposed_by(
        flavors: &std::collections::BTreeSet<Flavor>,
        signal: Signal,
    ) -> Option<&'static str> {
        if flavors.is_empty() || !flavors.iter().all(|f| f.unlabelled()) {
            return None;
        }
        flavors.iter().find_map(|f| f.never_exposes(signal))
    }
}

/// Names only vLLM V1 exposes (any one of them, or an `engine` label, means V1).
pub const VLLM_V1_ONLY: &[&str] = &[
    "vllm:kv_cache_usage_perc",
    "vllm:inter_token_latency_seconds_count",
    "vllm:prefix_cache_queries_total",
    "vllm:request_time_per_output_token_seconds_count",
];

/// How a scalar signal is computed from its samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Counter: per-second rate over the window, summed over a pod's series.
    Counter,
    /// Gauge summed over a pod's series (e.g. one per engine).
    GaugeSum,
    /// Gauge averaged over a pod's series.
    GaugeAvg,
    /// Slope of a gauge over the window, per second, summed over a pod's series (two
    /// scrapes: their difference over the gap; Prometheus: `deriv`).
    GaugeSlope,
}

/// Scalar signals read per pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scalar {
    /// Completed requests, req/s (stands for the arrival rate in steady state).
    RequestRate,
    /// Prompt (prefill) tokens, tokens/s.
    PromptTokenRate,
    /// Generated tokens, tokens/s.
    GenerationTokenRate,
    /// Preemptions (SGLang: retractions), per s.
    PreemptionRate,
    /// Requests in the running batch.
    Running,
    /// Requests waiting in the server's queue.
    Waiting,
    /// KV-cache usage, 0..1.
    KvUsage,
    /// Growth of the running batch over the window, requests/s.
    RunningGrowth,
    /// Growth of the server's queue over the window, requests/s.
    WaitingGrowth,
    /// Seconds spent generating tokens, summed over requests, per s of the window (with
    /// [`Scalar::GenerationTokenRate`] it gives the mean time per generated token).
    GenerationSecondsRate,
}

impl Scalar {
    /// All scalar signals.
    pub const ALL: [Scalar; 10] = [
        Scalar::RequestRate,
        Scalar::PromptTokenRate,
        Scalar::GenerationTokenRate,
        Scalar::PreemptionRate,
        Scalar::Running,
        Scalar::Waiting,
        Scalar::KvUsage,
        Scalar::RunningGrowth,
        Scalar::WaitingGrowth,
        Scalar::GenerationSecondsRate,
    ];

    /// Candidate sample names, first preferred.
    pub fn candidates(self) -> &'static [&'static str] {
        match self {
            Scalar::RequestRate => &[
                "vllm:request_success_total",
                "sglang:num_requests_total",
                "vllm:e2e_request_latency_seconds_count",
                "sglang:e2e_request_latency_seconds_count",
                "tgi_request_success",
            ],
            Scalar::PromptTokenRate => &[
                "vllm:prompt_tokens_total",
                "sglang:prompt_tokens_total",
                "llamacpp:prompt_tokens_total",
            ],
            Scalar::GenerationTokenRate => &[
                "vllm:generation_tokens_total",
                "sglang:generation_tokens_total",
                "llamacpp:tokens_predicted_total",
            ],
            Scalar::PreemptionRate => &[
                "vllm:num_preemptions_total",
                "sglang:num_retracted_requests_total",
            ],
            Scalar::Running | Scalar::RunningGrowth => &[
                "vllm:num_requests_running",
                "sglang:num_running_reqs",
                "llamacpp:requests_processing",
                "tgi_batch_current_size",
            ],
            Scalar::Waiting | Scalar::WaitingGrowth => &[
                "vllm:num_requests_waiting",
                "sglang:num_queue_reqs",
                "llamacpp:requests_deferred",
                "tgi_queue_size",
            ],
            Scalar::KvUsage => &[
                "vllm:kv_cache_usage_perc",
                "vllm:gpu_cache_usage_perc",
                "sglang:token_usage",
                "llamacpp:kv_cache_usage_ratio",
            ],
            Scalar::GenerationSecondsRate => &["llamacpp:tokens_predicted_seconds_total"],
        }
    }

    /// How samples combine.
    pub fn kind(self) -> Kind {
        match self {
            Scalar::RequestRate
            | Scalar::PromptTokenRate
            | Scalar::GenerationTokenRate
            | Scalar::PreemptionRate
            | Scalar::GenerationSecondsRate => Kind::Counter,
            Scalar::Running | Scalar::Waiting => Kind::GaugeSum,
            Scalar::KvUsage => Kind::GaugeAvg,
            Scalar::RunningGrowth | Scalar::WaitingGrowth => Kind::GaugeSlope,
        }
    }

    /// Stable identifier (used as a label in PromQL results).
    pub fn id(self) -> &'static str {
        match self {
            Scalar::RequestRate => "request_rate",
            Scalar::PromptTokenRate => "prompt_token_rate",
            Scalar::GenerationTokenRate => "generation_token_rate",
            Scalar::PreemptionRate => "preemption_rate",
            Scalar::Running => "running",
            Scalar::Waiting => "waiting",
            Scalar::KvUsage => "kv_usage",
            Scalar::RunningGrowth => "running_growth",
            Scalar::WaitingGrowth => "waiting_growth",
            Scalar::GenerationSecondsRate => "generation_seconds_rate",
        }
    }
}

/// Histogram signals read per pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Hist {
    /// Time to first token, s.
    Ttft,
    /// Inter-token latency (V0/old name: time per output token), s.
    Itl,
    /// Prompt tokens per finished request.
    PromptLen,
    /// Generated tokens per finished request.
    GenerationLen,
}

impl Hist {
    /// All histogram signals.
    pub const ALL: [Hist; 4] = [Hist::Ttft, Hist::Itl, Hist::PromptLen, Hist::GenerationLen];

    /// Candidate family names (without `_bucket`/`_sum`/`_count`), first preferred.
    pub fn candidates(self) -> &'static [&'static str] {
        match self {
            Hist::Ttft => &[
                "vllm:time_to_first_token_seconds",
                "sglang:time_to_first_token_seconds",
            ],
            Hist::Itl => &[
                "vllm:inter_token_latency_seconds",
                "vllm:time_per_output_token_seconds",
                "sglang:inter_token_latency_seconds",
                "sglang:time_per_output_token_seconds",
                "tgi_request_mean_time_per_token_duration",
            ],
            Hist::PromptLen => &["vllm:request_prompt_tokens", "tgi_request_input_length"],
            Hist::GenerationLen => &[
                "vllm:request_generation_tokens",
                "tgi_request_generated_tokens",
            ],
        }
    }

    /// Stable identifier.
    pub fn id(self) -> &'static str {
        match self {
            Hist::Ttft => "ttft",
            Hist::Itl => "itl",
            Hist::PromptLen => "prompt_len",
            Hist::GenerationLen => "generation_len",
        }
    }
}

/// Info-style families carrying the KV-cache size in labels.
pub const CACHE_INFO: &[&str] = &["vllm:cache_config_info", "sglang:cache_config_info"];

/// Gauge with the KV-cache size in tokens (SGLang).
pub const SGLANG_MAX_TOKENS: &str = "sglang:max_total_num_tokens";

/// Gateway (EPP) flow-control queue size, newest name first.
pub const GATEWAY_QUEUE: &[&str] = &[
    "llm_d_epp_flow_control_queue_size",
    "inference_extension_flow_control_queue_size",
];

/// Gateway (EPP) running requests per model (dispatched to a model server, not finished),
/// newest name first: llm-d router, GIE >= v1.1, GIE <= v1.0.
pub const GATEWAY_RUNNING: &[&str] = &[
    "llm_d_epp_request_running",
    "inference_objective_running_requests",
    "inference_model_running_requests",
];

/// Names whose presence identifies the family of a pod, for the "running" gauge used to
/// date a pod's scrape. The unlabelled servers' names come last: TGI exposes its gauges
/// only once it has seen a request (`metrics` crate), so both of its gauges are listed.
pub const FRESHNESS: &[&str] = &[
    "vllm:num_requests_running",
    "sglang:num_running_reqs",
    "llamacpp:requests_processing",
    "tgi_queue_size",
    "tgi_batch_current_size",
];

/// Flavor of a single metric name (None for gateway or foreign names).
pub fn flavor_of_name(name: &str, has_engine_label: bool) -> Option<Flavor> {
    if name.starts_with("sglang:") {
        Some(Flavor::Sglang)
    } else if name.starts_with("llamacpp:") {
        Some(Flavor::LlamaCpp)
    } else if name.starts_with("tgi_") {
        Some(Flavor::Tgi)
    } else if name.starts_with("vllm:") {
        if has_engine_label || VLLM_V1_ONLY.contains(&name) {
            Some(Flavor::VllmV1)
        } else {
            Some(Flavor::VllmV0)
        }
    } else {
        None
    }
}
