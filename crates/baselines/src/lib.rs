//! The autoscalers wvo is compared against in the benchmark simulator, as pure policies
//! (no I/O, no async, no clock: the caller passes the time and the scraped metrics).
//!
//! ```text
//!  per-pod scrape (PodMetrics: ready, running, waiting, kv_usage)
//!      │
//!      ├─► hpa::Hpa::sync(now, spec.replicas, pods)    HPA v2 on running requests (2/pod)
//!      │        (stateful: recommendation + scale-event history, like the controller)
//!      ├─► hpa::Hpa::sync(now, spec.replicas, pods)    KEDA on queue depth (5/pod), same HPA
//!      │
//!      └─► wva::wva_decide(config, variants)           WVA saturation V1, one model, stateless
//!               ─► desired replicas per variant
//! ```
//!
//! Each policy follows its published rule; where the source and wvo's DESIGN.md differ, the
//! module documentation says which one decides. See `crates/baselines/README.md`.

// Production code handles what it cannot rule out; `unwrap()` is for tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod hpa;
pub mod wva;

pub use hpa::{Hpa, HpaConfig, HpaMetric, MetricSource};
pub use wva::{
    wva_analyze, wva_decide, wva_decide_explained, WvaAction, WvaAnalysis, WvaConfig, WvaDecision,
    WvaVariant,
};

/// Scraped metrics of one pod at decision time (what the policy sees, possibly lagged).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PodMetrics {
    /// Pod is Ready (serving). Not-ready pods (starting) have no trustworthy metrics.
    pub ready: bool,
    /// `vllm:num_requests_running`, requests.
    pub running: f64,
    /// `vllm:num_requests_waiting`, requests.
    pub waiting: f64,
    /// `vllm:kv_cache_usage_perc`, 0..1.
    pub kv_usage: f64,
}

/// A baseline configuration that no real deployment of that peer would accept.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum BaselineError {
    /// One field has a value the policy cannot work with.
    #[error("invalid {field} = {value}: {fix}")]
    InvalidConfig {
        /// Name of the offending field, as in the Rust struct.
        field: &'static str,
        /// The rejected value, printed.
        value: String,
        /// What a valid value looks like.
        fix: &'static str,
    },
}

pub(crate) fn invalid(
    field: &'static str,
    value: impl ToString,
    fix: &'static str,
) -> BaselineError {
    BaselineError::InvalidConfig {
        field,
        value: value.to_string(),
        fix,
    }
}
