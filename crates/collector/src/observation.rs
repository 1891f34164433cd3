//! What the collector reports: `Observations` per model and per variant, every figure
//! either known (value, age, source metric) or unknown with a reason — never 0 for unknown.

use crate::names::Flavor;
use serde::{Deserialize, Serialize};

/// One observed number: known with its age and the metric it came from, or unknown with
/// the reason. A real zero (e.g. an idle model's arrival rate) is `Known { value: 0 }`;
/// missing, stale, NaN or infinite data is `Unknown`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "state",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Figure {
    /// The value is known.
    Known {
        /// The value, in the unit the field's name gives.
        value: f64,
        /// Age of the newest sample behind the value, s (for a rate: of the window's end).
        age_seconds: f64,
        /// The metric name(s) used, e.g. `vllm:request_success_total`.
        metric: String,
    },
    /// The value is not known.
    Unknown {
        /// Why, e.g. `stale: last sample 95 s old (max 60 s)`.
        reason: String,
    },
}

impl Figure {
    /// A known figure.
    pub fn known(value: f64, age_seconds: f64, metric: impl Into<String>) -> Figure {
        Figure::Known {
            value,
            age_seconds,
            metric: metric.into(),
        }
    }

    /// An unknown figure.
    pub fn unknown(reason: impl Into<String>) -> Figure {
        Figure::Unknown {
            reason: reason.into(),
        }
    }

    /// The value when known.
    pub fn value(&self) -> Option<f64> {
        match self {
            Figure::Known { value, .. } => Some(*value),
            Figure::Unknown { .. } => None,
        }
    }

    /// The reason when unknown.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Figure::Known { .. } => None,
            Figure::Unknown { reason } => Some(reason),
        }
    }

    /// The age when known, s.
    pub fn age_seconds(&self) -> Option<f64> {
        match self {
            Figure::Known { age_seconds, .. } => Some(*age_seconds),
            Figure::Unknown { .. } => None,
        }
    }

    /// The metric name(s) when known.
    pub fn metric(&self) -> Option<&str> {
        match self {
            Figure::Known { metric, .. } => Some(metric),
            Figure::Unknown { .. } => None,
        }
    }
}

/// The figures observed for one variant or one model over the window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadFigures {
    /// Requests finished per second over the window, req/s; in steady state this is the
    /// arrival rate (vLLM exposes no arrival counter).
    pub arrival_rate_rps: Figure,
    /// Mean prompt tokens per finished request, tokens.
    pub avg_input_tokens: Figure,
    /// Mean generated tokens per finished request, tokens.
    pub avg_output_tokens: Figure,
    /// Requests in the running batches now (sum over replicas), requests.
    pub running: Figure,
    /// Requests waiting in the servers' queues now (sum over replicas), requests.
    pub waiting: Figure,
    /// Growth of the requests in the servers (running + waiting) over the window, sum over
    /// replicas, req/s: arrivals minus completions. Positive while a saturated server's
    /// queue builds up (its completions then under-read the demand); negative while a
    /// backlog drains.
    pub in_flight_growth_rps: Figure,
    /// KV-cache usage now, mean over replicas, fraction 0..1.
    pub kv_usage: Figure,
    /// KV-cache capacity, sum over replicas, tokens (`num_gpu_blocks * block_size`).
    pub kv_capacity_tokens: Figure,
    /// Mean time to first token over the window, s.
    pub ttft_mean_seconds: Figure,
    /// 95th-percentile time to first token over the window (from histogram buckets), s.
    pub ttft_p95_seconds: Figure,
    /// Mean inter-token latency over the window, s.
    pub itl_mean_seconds: Figure,
    /// 95th-percentile inter-token latency over the window, s.
    pub itl_p95_seconds: Figure,
    /// Preemptions (SGLang: retractions) per second over the window, 1/s.
    pub preemptions_per_second: Figure,
    /// Replicas whose metrics are fresh, replicas.
    pub ready_replicas: Figure,
    /// Replicas pending (not schedulable yet), replicas: not visible in model-server
    /// metrics, so unknown here; the controller fills it from the Kubernetes API.
    pub pending_replicas: Figure,
}

/// Observations of one variant (one Deployment: one accelerator type and shape).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VariantObservation {
    /// Variant name (`*` when the caller gave no targets: all pods of the model).
    pub variant: String,
    /// Pods (or scrape URLs) that make up the variant.
    pub pods: Vec<String>,
    /// Metric families seen on those pods.
    pub flavors: Vec<Flavor>,
    /// The figures.
    #[serde(flatten)]
    pub figures: LoadFigures,
}

/// Observations of one model: the figures over all its variants, plus the gateway queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelObservation {
    /// Kubernetes namespace (empty when unknown, e.g. a direct scrape without target).
    pub namespace: String,
    /// Served model id (`model_name` label).
    pub model: String,
    /// Requests queued in the gateway's flow control for this model (EPP
    /// `*_flow_control_queue_size`, summed over priorities), requests.
    pub gateway_queue: Figure,
    /// Requests the gateway dispatched to this model's servers and that have not finished
    /// (EPP `llm_d_epp_request_running` > `inference_objective_running_requests` >
    /// `inference_model_running_requests`, summed over target models and priorities),
    /// requests. Used only to tell that the model is not idle (see docs/collector.md).
    pub gateway_running: Figure,
    /// The figures over all variants.
    #[serde(flatten)]
    pub figures: LoadFigures,
    /// Per variant.
    pub variants: Vec<VariantObservation>,
}

/// Everything one collection produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Observations {
    /// Where the data came from, e.g. `prometheus http://prom:9090` or `scrape`.
    pub source: String,
    /// Rate window, s.
    pub window_seconds: f64,
    /// Samples older than this are unknown (stale), s.
    pub max_age_seconds: f64,
    /// When the collection finished, s since the Unix epoch.
    pub collected_at_unix_seconds: f64,
    /// Per model (sorted by namespace, model).
    pub models: Vec<ModelObservation>,
    /// Errors met while collecting (each with its URL); figures they affect are unknown.
    pub errors: Vec<String>,
}

impl Observations {
    /// The model with this id (first match over namespaces).
    pub fn model(&self, model: &str) -> Option<&ModelObservation> {
        self.models.iter().find(|m| m.model == model)
    }
}

impl ModelObservation {
    /// The variant with this name.
    pub fn variant(&self, variant: &str) -> Option<&VariantObservation> {
        self.variants.iter().find(|v| v.variant == variant)
    }
}

/// Which model and variant a pod (or a metrics URL) belongs to. The caller (the
/// controller, from VariantAutoscalings and their workloads' pods; or the CLI) gives the
/// list; the collector never guesses variants.
///
/// - Prometheus source: series are matched by (`namespace`, `pod`) labels, and by
///   `model_name` when `model` is not empty; `url` is unused.
/// - Scrape source: `url` is fetched (`http://10.0.0.5:8000/metrics`); its series are
///   filtered by `model_name == model` when `model` is not empty, else every model the
///   pod reports is kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    /// Kubernetes namespace of the pod (free text for a scrape without cluster).
    pub namespace: String,
    /// Served model id (`model_name` label); empty = any.
    pub model: String,
    /// Variant name the pod belongs to.
    pub variant: String,
    /// Pod name (the `pod` label in Prometheus).
    pub pod: String,
    /// Metrics URL for the scrape source.
    pub url: String,
}

impl Target {
    /// A scrape target from a bare URL (CLI `--scrape URL`): no namespace, any model,
    /// variant `*`, pod named after the URL's host and port.
    pub fn from_url(url: &str) -> Target {
        // From the redacted URL, so no user name or password becomes the pod name.
        let shown = crate::redact::redact_url(url);
        let authority = shown
            .split("://")
            .nth(1)
            .unwrap_or(&shown)
            .split(['/', '?', '#'])
            .next()
            .unwrap_or_default();
        let host = authority.rsplit('@').next().unwrap_or(authority);
        Target {
            namespace: String::new(),
            model: String::new(),
            variant: "*".into(),
            pod: host.to_string(),
            url: url.to_string(),
        }
    }
}
