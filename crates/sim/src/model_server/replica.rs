//! One emulated replica on virtual time (pure, synchronous): a `wvo_perf::batching`
//! engine plus the counters and histograms a vLLM (or SGLang) server exports.

use super::exposition::{self, Histogram};
use std::collections::BTreeMap;
use wvo_api::Profile;
use wvo_perf::batching::{Completion, Engine, EngineConfig, Request};
use wvo_perf::PerfError;

/// Which metric names `/metrics` uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MetricsFlavor {
    /// vLLM V1 (labels `model_name`, `engine`; `kv_cache_usage_perc`,
    /// `inter_token_latency_seconds`, `_created` samples).
    #[default]
    VllmV1,
    /// vLLM V0 (label `model_name`; `gpu_cache_usage_perc`, `time_per_output_token_seconds`).
    VllmV0,
    /// SGLang (`sglang:*`).
    Sglang,
}

/// Configuration of one emulated replica.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplicaConfig {
    /// Served model id (`model_name` label).
    pub model_name: String,
    /// Step times and batch limit (the same profile the planner uses).
    pub profile: Profile,
    /// KV-cache blocks (`num_gpu_blocks`).
    pub num_gpu_blocks: u64,
    /// Tokens per KV block (`block_size`, vLLM default 16).
    pub block_size: u64,
    /// Metric names to export.
    pub flavor: MetricsFlavor,
    /// Maximum model length, tokens (sets the token-count histogram buckets).
    pub max_model_len: u64,
}

impl ReplicaConfig {
    /// A replica of `model_name` with `profile`, 7281 blocks of 16 tokens (116 496 tokens),
    /// V1 metrics, max model length 8192.
    pub fn new(model_name: &str, profile: Profile) -> ReplicaConfig {
        ReplicaConfig {
            model_name: model_name.into(),
            profile,
            num_gpu_blocks: 7281,
            block_size: 16,
            flavor: MetricsFlavor::VllmV1,
            max_model_len: 8192,
        }
    }

    /// KV-cache capacity in tokens.
    pub fn kv_cache_tokens(&self) -> u64 {
        self.num_gpu_blocks * self.block_size
    }
}

/// What the replica has served so far (ground truth for tests).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Served {
    /// Requests submitted.
    pub submitted: u64,
    /// Requests finished.
    pub finished: u64,
    /// Prompt tokens of finished requests.
    pub prompt_tokens: u64,
    /// Generated tokens of finished requests.
    pub generation_tokens: u64,
    /// Sum of TTFTs of finished requests, ms (virtual).
    pub ttft_ms_sum: f64,
    /// Preemptions.
    pub preemptions: u64,
}

/// One emulated replica on virtual time.
#[derive(Debug)]
pub struct Replica {
    cfg: ReplicaConfig,
    engine: Engine,
    next_id: u64,
    served: Served,
    ttft: Histogram,
    itl: Histogram,
    e2e: Histogram,
    queue: Histogram,
    prompt_len: Histogram,
    gen_len: Histogram,
    success_by_reason: BTreeMap<&'static str, u64>,
    created_unix: f64,
}

impl Replica {
    /// A new idle replica at virtual time 0. `created_unix` stamps the `_created` samples.
    pub fn new(cfg: ReplicaConfig, created_unix: f64) -> Result<Replica, PerfError> {
        let mut ecfg = EngineConfig::new(cfg.profile);
        ecfg.kv_cache_tokens = Some(cfg.kv_cache_tokens());
        ecfg.record_itl = true;
        let engine = Engine::new(ecfg)?;
        let v0 = cfg.flavor == MetricsFlavor::VllmV0;
        let b = |v1: &[f64], v0b: &[f64]| Histogram::new(if v0 { v0b } else { v1 });
        let len_buckets = exposition::buckets_1_2_5(cfg.max_model_len);
        Ok(Replica {
            ttft: b(exposition::TTFT_V1, exposition::TTFT_V0),
            itl: b(exposition::ITL_V1, exposition::ITL_V0),
            e2e: b(exposition::E2E_V1, exposition::E2E_V0),
            queue: b(exposition::E2E_V1, exposition::E2E_V1),
            prompt_len: Histogram::new(&len_buckets),
            gen_len: Histogram::new(&len_buckets),
            cfg,
            engine,
            next_id: 0,
            served: Served::default(),
            success_by_reason: BTreeMap::new(),
            created_unix,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ReplicaConfig {
        &self.cfg
    }

    /// Virtual clock of the engine, ms.
    pub fn now_ms(&self) -> f64 {
        self.engine.gauges().now_ms
    }

    /// When the engine next does something on its own, virtual ms (`None`: idle).
    pub fn next_event_ms(&self) -> Option<f64> {
        self.engine.next_event_ms()
    }

    /// Queue a request arriving at `arrival_ms` (virtual, non-decreasing); returns its id.
    pub fn submit(
        &mut self,
        arrival_ms: f64,
        input_tokens: u32,
        output_tokens: u32,
    ) -> Result<u64, PerfError> {
        let id = self.next_id;
        self.engine.submit(Request {
            id,
            arrival_ms,
            input_tokens,
            output_tokens,
        })?;
        self.next_id += 1;
        self.served.submitted += 1;
        Ok(id)
    }

    /// Run to virtual time `t_ms`, record metrics; returns the requests that finished.
    pub fn advance_to(&mut self, t_ms: f64) -> Vec<Completion> {
        let adv = self.engine.advance_to(t_ms);
        for f in &adv.first_tokens {
            self.ttft.observe(f.ttft_ms / 1000.0);
        }
        for o in &adv.itl {
            self.itl.observe(o.itl_ms / 1000.0);
        }
        for c in &adv.completions {
            self.e2e.observe(c.e2e_ms / 1000.0);
            self.queue.observe(c.queue_ms / 1000.0);
            self.prompt_len.observe(f64::from(c.input_tokens));
            self.gen_len.observe(f64::from(c.output_tokens));
            self.served.finished += 1;
            self.served.prompt_tokens += u64::from(c.input_tokens);
            self.served.generation_tokens += u64::from(c.output_tokens);
            self.served.ttft_ms_sum += c.ttft_ms;
            // The emulator generates exactly max_tokens: vLLM reports "length".
            *self.success_by_reason.entry("length").or_insert(0) += 1;
        }
        adv.completions
    }

    /// Ground truth so far.
    pub fn served(&self) -> Served {
        let mut s = self.served;
        s.preemptions = self.engine.gauges().preemptions_total;
        s
    }

    /// The `/metrics` body (Prometheus text format) at the engine's current time.
    pub fn metrics_text(&self) -> String {
        let g = self.engine.gauges();
        let m = &self.cfg.model_name;
        let mut w = exposition::Writer::default();
        // `waiting` from the engine includes submitted-but-not-yet-arrived requests; with
        // wall-clock driving arrivals are never in the future, so it is the queue.
        match self.cfg.flavor {
            MetricsFlavor::VllmV1 | MetricsFlavor::VllmV0 => {
                let v1 = self.cfg.flavor == MetricsFlavor::VllmV1;
                let base: Vec<(&str, String)> = if v1 {
                    vec![("engine", "0".into()), ("model_name", m.clone())]
                } else {
                    vec![("model_name", m.clone())]
                };
                let created = v1.then_some(self.created_unix);
                w.gauge(
                    "vllm:num_requests_running",
                    "Number of requests in model execution batches.",
                    &base,
                    g.running as f64,
                );
                w.gauge(
                    "vllm:num_requests_waiting",
                    "Number of requests waiting to be processed.",
                    &base,
                    g.waiting as f64,
                );
                if v1 {
                    w.gauge(
                        "vllm:kv_cache_usage_perc",
                        "KV-cache usage. 1 means 100 percent usage.",
                        &base,
                        g.kv_cache_usage,
                    );
                } else {
                    w.gauge(
                        "vllm:num_requests_swapped",
                        "Number of requests swapped to CPU.",
                        &base,
                        0.0,
                    );
                    w.gauge(
                        "vllm:gpu_cache_usage_perc",
                        "GPU KV-cache usage. 1 means 100 percent usage.",
                        &base,
                        g.kv_cache_usage,
                    );
                }
                let mut info: Vec<(&str, String)> = vec![
                    ("block_size", self.cfg.block_size.to_string()),
                    ("cache_dtype", "auto".into()),
                    ("enable_prefix_caching", "False".into()),
                    ("gpu_memory_utilization", "0.9".into()),
                    ("num_cpu_blocks", "0".into()),
                    ("num_gpu_blocks", self.cfg.num_gpu_blocks.to_string()),
                ];
                if v1 {
                    info.push(("engine", "0".into()));
                }
                w.gauge(
                    "vllm:cache_config_info",
                    "Information of the LLMEngine CacheConfig",
                    &info,
                    1.0,
                );
                w.counter(
                    "vllm:num_preemptions",
                    "Cumulative number of preemption from the engine.",
                    &base,
                    g.preemptions_total as f64,
                    created,
                );
                w.counter(
                    "vllm:prompt_tokens",
                    "Number of prefill tokens processed.",
                    &base,
                    g.prompt_tokens_total as f64,
                    created,
                );
                w.counter(
                    "vllm:generation_tokens",
                    "Number of generation tokens processed.",
                    &base,
                    g.generation_tokens_total as f64,
                    created,
                );
                let mut rows: Vec<(Vec<(&str, String)>, f64)> = Vec::new();
                for (reason, n) in &self.success_by_reason {
                    let mut l = base.clone();
                    l.push(("finished_reason", (*reason).to_string()));
                    rows.push((l, *n as f64));
                }
                if rows.is_empty() {
                    let mut l = base.clone();
                    l.push(("finished_reason", "length".into()));
                    rows.push((l, 0.0));
                }
                w.counter_rows(
                    "vllm:request_success",
                    "Count of successfully processed requests.",
                    &rows,
                    created,
                );
                w.histogram(
                    "vllm:time_to_first_token_seconds",
                    "Histogram of time to first token in seconds.",
                    &base,
                    &self.ttft,
                    created,
                );
                if v1 {
                    w.histogram(
                        "vllm:inter_token_latency_seconds",
                        "Histogram of inter-token latency in seconds.",
                        &base,
                        &self.itl,
                        created,
                    );
                } else {
                    w.histogram(
                        "vllm:time_per_output_token_seconds",
                        "Histogram of time per output token in seconds.",
                        &base,
                        &self.itl,
                        created,
                    );
                }
                w.histogram(
                    "vllm:e2e_request_latency_seconds",
                    "Histogram of e2e request latency in seconds.",
                    &base,
                    &self.e2e,
                    created,
                );
                if v1 {
                    w.histogram(
                        "vllm:request_queue_time_seconds",
                        "Histogram of time spent in WAITING phase for request.",
                        &base,
                        &self.queue,
                        created,
                    );
                }
                w.histogram(
                    "vllm:request_prompt_tokens",
                    "Number of prefill tokens processed.",
                    &base,
                    &self.prompt_len,
                    created,
                );
                w.histogram(
                    "vllm:request_generation_tokens",
                    "Number of generation tokens processed.",
                    &base,
                    &self.gen_len,
                    created,
                );
            }
            MetricsFlavor::Sglang => {
                let base: Vec<(&str, String)> = vec![("model_name", m.clone())];
                w.counter(
                    "sglang:prompt_tokens",
                    "Number of prefill tokens processed.",
                    &base,
                    g.prompt_tokens_total as f64,
                    None,
                );
                w.counter(
                    "sglang:generation_tokens",
                    "Number of generation tokens processed.",
                    &base,
                    g.generation_tokens_total as f64,
                    None,
                );
                w.counter(
                    "sglang:num_requests",
                    "Number of requests processed.",
                    &base,
                    self.served.finished as f64,
                    None,
                );
                w.counter(
                    "sglang:num_retracted_requests",
                    "Number of retracted requests.",
                    &base,
                    g.preemptions_total as f64,
                    None,
                );
                w.gauge(
                    "sglang:token_usage",
                    "The token usage",
                    &base,
                    g.kv_cache_usage,
                );
                w.gauge(
                    "sglang:max_total_num_tokens",
                    "Maximum total number of tokens in the KV cache pool.",
                    &base,
                    self.cfg.kv_cache_tokens() as f64,
                );
                w.gauge(
                    "sglang:num_running_reqs",
                    "The number of running requests",
                    &base,
                    g.running as f64,
                );
                w.gauge(
                    "sglang:num_queue_reqs",
                    "The number of requests in the waiting queue",
                    &base,
                    g.waiting as f64,
                );
                w.histogram(
                    "sglang:time_to_first_token_seconds",
                    "Histogram of time to first token in seconds.",
                    &base,
                    &self.ttft,
                    None,
                );
                w.histogram(
                    "sglang:inter_token_latency_seconds",
                    "Histogram of inter-token latency in seconds.",
                    &base,
                    &self.itl,
                    None,
                );
                w.histogram(
                    "sglang:e2e_request_latency_seconds",
                    "Histogram of End-to-end request latency in seconds",
                    &base,
                    &self.e2e,
                    None,
                );
            }
        }
        w.finish()
    }
}
