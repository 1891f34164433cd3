//! Pure aggregation: per-pod figures + targets -> `Observations` per variant and model.
//!
//! Rules: a figure of a group (variant or model) is known only when every pod of the
//! group contributes a known value (a partial sum would look like a load drop); its age
//! is the oldest contributing pod's age. A pod older than `max_age_seconds` is stale and
//! makes the group's figures unknown. Histograms are merged bucket-wise across pods
//! before quantiles are taken (quantiles are never averaged).

use crate::names::{Flavor, Hist, Scalar};
use crate::observation::{
    Figure, LoadFigures, ModelObservation, Observations, Target, VariantObservation,
};
use crate::pod::{ordered_key, HistReading, Missing, PodFigures, Reading};
use std::collections::{BTreeMap, BTreeSet};

/// Settings of the aggregation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    /// Rate window, s.
    pub window_seconds: f64,
    /// Data older than this is stale (unknown), s.
    pub max_age_seconds: f64,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            window_seconds: 60.0,
            max_age_seconds: 60.0,
        }
    }
}

/// A pod slot of a variant: its figures, or why there are none.
#[derive(Clone, Debug, PartialEq)]
pub enum Slot {
    /// The pod's figures.
    Pod(Box<PodFigures>),
    /// No figures for this pod.
    Missing {
        /// Pod name or URL.
        pod: String,
        /// Why.
        reason: String,
    },
}

impl Slot {
    fn name(&self) -> &str {
        match self {
            Slot::Pod(p) => &p.pod,
            Slot::Missing { pod, .. } => pod,
        }
    }
}

/// (namespace, model, variant).
pub type VariantKey = (String, String, String);

/// Assign Prometheus pods to the caller's targets. With no targets, every pod is kept
/// under variant `*` of its (namespace, model); a pod without `model_name` (llama.cpp,
/// TGI) under the unnamed model `""`, as a variant named after the pod. A target takes a
/// pod without `model_name` for its own model. Targets without data become `Missing`
/// slots with `no_data_reason` (e.g. the query error) or "no series".
pub fn assign(
    pods: Vec<PodFigures>,
    targets: &[Target],
    no_data_reason: Option<&str>,
) -> BTreeMap<VariantKey, Vec<Slot>> {
    let mut out: BTreeMap<VariantKey, Vec<Slot>> = BTreeMap::new();
    if targets.is_empty() {
        for p in pods {
            // A pod with no `model_name` (llama.cpp, TGI) is its own variant of the unnamed
            // model: nothing tells which of them serve the same model.
            let variant = if p.model.is_empty() {
                p.pod.clone()
            } else {
                "*".into()
            };
            out.entry((p.namespace.clone(), p.model.clone(), variant))
                .or_default()
                .push(Slot::Pod(Box::new(p)));
        }
        return out;
    }
    let mut pods: Vec<Option<PodFigures>> = pods.into_iter().map(Some).collect();
    for t in targets {
        let mut found = false;
        for slot in pods.iter_mut() {
            // A pod whose series carry no `model_name` (llama.cpp, TGI) serves the
            // target's model.
            let matches = slot.as_ref().is_some_and(|p| {
                p.namespace == t.namespace
                    && p.pod == t.pod
                    && (t.model.is_empty() || p.model == t.model || p.model.is_empty())
            });
            if matches {
                if let Some(mut p) = slot.take() {
                    found = true;
                    if p.model.is_empty() {
                        p.model = t.model.clone();
                    }
                    out.entry((t.namespace.clone(), p.model.clone(), t.variant.clone()))
                        .or_default()
                        .push(Slot::Pod(Box::new(p)));
                }
            }
        }
        if !found {
            let reason = match no_data_reason {
                Some(r) => r.to_string(),
                None => format!(
                    "no series for pod {}/{} (model {})",
                    t.namespace,
                    t.pod,
                    if t.model.is_empty() { "any" } else { &t.model }
                ),
            };
            out.entry((t.namespace.clone(), t.model.clone(), t.variant.clone()))
                .or_default()
                .push(Slot::Missing {
                    pod: t.pod.clone(),
                    reason,
                });
        }
    }
    out
}

/// A contributing pod's value plus its age.
struct Contribution<T> {
    value: T,
    age: f64,
}

/// Collect one thing from every pod of a group; the first failure names the pod.
fn gather<T>(
    slots: &[&Slot],
    window: &Window,
    get: impl Fn(&PodFigures) -> Result<T, Missing>,
) -> Result<Vec<Contribution<T>>, String> {
    if slots.is_empty() {
        return Err("no pods".into());
    }
    let mut out = Vec::with_capacity(slots.len());
    for slot in slots {
        match slot {
            Slot::Missing { pod, reason } => return Err(format!("{pod}: {reason}")),
            Slot::Pod(p) => {
                let age = match &p.age_seconds {
                    Ok(a) => *a,
                    Err(e) => return Err(format!("{}: {e}", p.pod)),
                };
                if age > window.max_age_seconds {
                    return Err(format!(
                        "{}: stale: last sample {:.0} s old (max {:.0} s)",
                        p.pod, age, window.max_age_seconds
                    ));
                }
                match get(p) {
                    Ok(value) => out.push(Contribution { value, age }),
                    Err(e) => return Err(format!("{}: {e}", p.pod)),
                }
            }
        }
    }
    Ok(out)
}

fn max_age<T>(c: &[Contribution<T>]) -> f64 {
    c.iter().map(|c| c.age).fold(0.0, f64::max)
}

fn metrics_of<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let set: BTreeSet<&str> = names.collect();
    set.into_iter().collect::<Vec<_>>().join(",")
}

fn scalar_figure(slots: &[&Slot], window: &Window, s: Scalar, average: bool) -> Figure {
    match gather(slots, window, |p| p.scalar(s).cloned()) {
        Err(reason) => Figure::unknown(reason),
        Ok(c) => {
            let sum: f64 = c.iter().map(|c| c.value.value).sum();
            let v = if average { sum / c.len() as f64 } else { sum };
            Figure::known(
                v,
                max_age(&c),
                metrics_of(c.iter().map(|c| c.value.metric.as_str())),
            )
        }
    }
}

/// The sum of `parts`: known when every part is (oldest age, metrics joined), else the
/// first part's reason.
fn sum_figures(parts: &[Figure]) -> Figure {
    let mut value = 0.0;
    let mut age: f64 = 0.0;
    let mut metrics = Vec::new();
    for part in parts {
        match part {
            Figure::Known {
                value: v,
                age_seconds,
                metric,
            } => {
                value += v;
                age = age.max(*age_seconds);
                metrics.push(metric.as_str());
            }
            Figure::Unknown { reason } => return Figure::unknown(reason.clone()),
        }
    }
    Figure::known(value, age, metrics_of(metrics.into_iter()))
}

/// Merge histograms bucket-wise (only `le` bounds every pod has).
fn merge_hists(hs: &[&HistReading]) -> HistReading {
    let mut common: Option<BTreeSet<u64>> = None;
    for h in hs {
        let keys: BTreeSet<u64> = h.buckets.iter().map(|(le, _)| ordered_key(*le)).collect();
        common = Some(match common {
            None => keys,
            Some(c) => c.intersection(&keys).copied().collect(),
        });
    }
    let common = common.unwrap_or_default();
    let mut per: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    let mut sum = Some(0.0);
    let mut count = Some(0.0);
    for h in hs {
        for (le, c) in &h.buckets {
            let k = ordered_key(*le);
            if common.contains(&k) {
                per.entry(k).or_insert((*le, 0.0)).1 += c;
            }
        }
        sum = sum.zip(h.sum).map(|(a, b)| a + b);
        count = count.zip(h.total()).map(|(a, b)| a + b);
    }
    HistReading {
        metric: metrics_of(hs.iter().map(|h| h.metric.as_str())),
        buckets: per.into_values().collect(),
        sum,
        count,
    }
}

/// Quantile `q` (0..1) of a cumulative histogram, interpolating linearly inside the
/// bucket like PromQL's `histogram_quantile`. When the rank falls above the highest
/// finite bound, that bound is returned (a lower bound of the true value).
pub fn quantile(q: f64, h: &HistReading) -> Result<f64, Missing> {
    let total = h
        .total()
        .ok_or("histogram truncated: neither _count nor +Inf bucket")?;
    if total <= 0.0 {
        return Err("no requests finished in the window".into());
    }
    let finite: Vec<(f64, f64)> = h
        .buckets
        .iter()
        .copied()
        .filter(|(le, _)| le.is_finite())
        .collect();
    if finite.is_empty() {
        return Err("histogram has no finite buckets".into());
    }
    let rank = q * total;
    let mut prev_le = 0.0;
    let mut prev_c = 0.0;
    for (le, c) in &finite {
        if *c >= rank {
            if *c <= prev_c {
                return Ok(*le);
            }
            let lo = if prev_le < *le { prev_le } else { *le };
            return Ok(lo + (le - lo) * (rank - prev_c) / (c - prev_c));
        }
        prev_le = *le;
        prev_c = *c;
    }
    Ok(prev_le)
}

fn hist_figures(slots: &[&Slot], window: &Window, h: Hist) -> (Figure, Figure) {
    match gather(slots, window, |p| p.hist(h).cloned()) {
        Err(reason) => (Figure::unknown(reason.clone()), Figure::unknown(reason)),
        Ok(c) => {
            let age = max_age(&c);
            let hs: Vec<&HistReading> = c.iter().map(|c| &c.value).collect();
            let merged = merge_hists(&hs);
            let mean = match (merged.sum, merged.count) {
                (Some(s), Some(n)) if n > 0.0 => {
                    Figure::known(s / n, age, format!("{m}_sum/{m}_count", m = merged.metric))
                }
                (Some(_), Some(_)) => Figure::unknown("no requests finished in the window"),
                _ => Figure::unknown(format!(
                    "{}: histogram truncated: _sum or _count missing",
                    merged.metric
                )),
            };
            let p95 = match quantile(0.95, &merged) {
                Ok(v) => Figure::known(v, age, format!("{}_bucket", merged.metric)),
                Err(e) => Figure::unknown(format!("{}: {e}", merged.metric)),
            };
            (mean, p95)
        }
    }
}

/// Inter-token latency mean and p95: from the histogram when every pod has it; else,
/// where every pod sums its generation seconds and generated tokens (llama.cpp), the mean
/// is their ratio (seconds per generated token) and the p95 is unknown; else the
/// histogram's reason.
fn itl_figures(slots: &[&Slot], window: &Window) -> (Figure, Figure) {
    let from_hist = hist_figures(slots, window, Hist::Itl);
    if gather(slots, window, |p| p.hist(Hist::Itl).cloned()).is_ok() {
        return from_hist;
    }
    let both = gather(slots, window, |p| {
        Ok((
            p.scalar(Scalar::GenerationSecondsRate)?.clone(),
            p.scalar(Scalar::GenerationTokenRate)?.clone(),
        ))
    });
    let Ok(c) = both else {
        return from_hist;
    };
    let seconds: f64 = c.iter().map(|c| c.value.0.value).sum();
    let tokens: f64 = c.iter().map(|c| c.value.1.value).sum();
    let metric = format!(
        "{}/{}",
        metrics_of(c.iter().map(|c| c.value.0.metric.as_str())),
        metrics_of(c.iter().map(|c| c.value.1.metric.as_str()))
    );
    let mean = if tokens > 0.0 {
        Figure::known(seconds / tokens, max_age(&c), metric.clone())
    } else {
        Figure::unknown("no tokens generated in the window")
    };
    let p95 = Figure::unknown(format!(
        "{metric}: no latency histogram, only summed seconds and tokens (a mean, no quantile)"
    ));
    (mean, p95)
}

/// Mean tokens per request: from the per-request histogram when every pod has it, else
/// token counter rate / request rate. When neither works and every pod exposes the
/// histogram (e.g. TGI's first scrape), the histogram's reason is given.
fn tokens_per_request(slots: &[&Slot], window: &Window, h: Hist, tokens: Scalar) -> Figure {
    let from_hist = gather(slots, window, |p| p.hist(h).cloned());
    let hist_exposed = slots
        .iter()
        .all(|s| matches!(s, Slot::Pod(p) if p.hists.contains_key(&h)));
    if let Ok(c) = from_hist.as_ref() {
        let hs: Vec<&HistReading> = c.iter().map(|c| &c.value).collect();
        let m = merge_hists(&hs);
        if let (Some(s), Some(n)) = (m.sum, m.count) {
            return if n > 0.0 {
                Figure::known(
                    s / n,
                    max_age(c),
                    format!("{x}_sum/{x}_count", x = m.metric),
                )
            } else {
                Figure::unknown("no requests finished in the window")
            };
        }
    }
    let both = gather(slots, window, |p| {
        Ok((
            p.scalar(tokens)?.clone(),
            p.scalar(Scalar::RequestRate)?.clone(),
        ))
    });
    match (both, from_hist) {
        (Err(_), Err(hist_reason)) if hist_exposed => Figure::unknown(hist_reason),
        (Err(reason), _) => Figure::unknown(reason),
        (Ok(c), _) => {
            let tok: f64 = c.iter().map(|c| c.value.0.value).sum();
            let req: f64 = c.iter().map(|c| c.value.1.value).sum();
            if req > 0.0 {
                let metric = format!(
                    "{}/{}",
                    metrics_of(c.iter().map(|c| c.value.0.metric.as_str())),
                    metrics_of(c.iter().map(|c| c.value.1.metric.as_str()))
                );
                Figure::known(tok / req, max_age(&c), metric)
            } else {
                Figure::unknown("no requests finished in the window")
            }
        }
    }
}

/// Figures of a group of pod slots.
pub fn figures(slots: &[&Slot], window: &Window) -> LoadFigures {
    let (ttft_mean, ttft_p95) = hist_figures(slots, window, Hist::Ttft);
    let (itl_mean, itl_p95) = itl_figures(slots, window);
    let kv_capacity = match gather(slots, window, |p| p.kv_capacity_tokens.clone()) {
        Err(r) => Figure::unknown(r),
        Ok(c) => Figure::known(
            c.iter().map(|c| c.value.value).sum(),
            max_age(&c),
            metrics_of(c.iter().map(|c| c.value.metric.as_str())),
        ),
    };
    let fresh: Vec<&PodFigures> = slots
        .iter()
        .filter_map(|s| match s {
            Slot::Pod(p) => Some(p.as_ref()),
            Slot::Missing { .. } => None,
        })
        .filter(|p| {
            p.age_seconds
                .as_ref()
                .is_ok_and(|a| *a <= window.max_age_seconds)
        })
        .collect();
    let ready = Figure::known(
        fresh.len() as f64,
        fresh
            .iter()
            .filter_map(|p| p.age_seconds.as_ref().ok())
            .fold(0.0, |a: f64, b| a.max(*b)),
        "pods with fresh samples",
    );
    LoadFigures {
        arrival_rate_rps: scalar_figure(slots, window, Scalar::RequestRate, false),
        avg_input_tokens: tokens_per_request(
            slots,
            window,
            Hist::PromptLen,
            Scalar::PromptTokenRate,
        ),
        avg_output_tokens: tokens_per_request(
            slots,
            window,
            Hist::GenerationLen,
            Scalar::GenerationTokenRate,
        ),
        running: scalar_figure(slots, window, Scalar::Running, false),
        waiting: scalar_figure(slots, window, Scalar::Waiting, false),
        in_flight_growth_rps: sum_figures(&[
            scalar_figure(slots, window, Scalar::RunningGrowth, false),
            scalar_figure(slots, window, Scalar::WaitingGrowth, false),
        ]),
        kv_usage: scalar_figure(slots, window, Scalar::KvUsage, true),
        kv_capacity_tokens: kv_capacity,
        ttft_mean_seconds: ttft_mean,
        ttft_p95_seconds: ttft_p95,
        itl_mean_seconds: itl_mean,
        itl_p95_seconds: itl_p95,
        preemptions_per_second: scalar_figure(slots, window, Scalar::PreemptionRate, false),
        ready_replicas: ready,
        pending_replicas: Figure::unknown(
            "not in model-server metrics; the controller fills it from the Kubernetes API",
        ),
    }
}

/// Gateway queue readings keyed by (namespace, model); namespace may be empty (matches any).
pub type GatewayReadings = BTreeMap<(String, String), Result<(Reading, f64), Missing>>;

/// What the gateway (EPP) said per model: its flow-control queue and its running
/// requests, and the error that kept either from being read.
#[derive(Clone, Copy, Debug, Default)]
pub struct Gateway<'a> {
    /// Flow-control queue size per (namespace, model).
    pub queue: Option<&'a GatewayReadings>,
    /// Running requests per (namespace, model).
    pub running: Option<&'a GatewayReadings>,
    /// Why the gateway could not be read (e.g. its query failed).
    pub error: Option<&'a str>,
}

/// Build `Observations` from assigned slots and gateway queue readings (no gateway
/// running requests: see [`observations_with_gateway`]).
pub fn observations(
    source: &str,
    groups: BTreeMap<VariantKey, Vec<Slot>>,
    gateway: &GatewayReadings,
    gateway_error: Option<&str>,
    window: &Window,
    collected_at_unix_seconds: f64,
    errors: Vec<String>,
) -> Observations {
    observations_with_gateway(
        source,
        groups,
        Gateway {
            queue: Some(gateway),
            running: None,
            error: gateway_error,
        },
        window,
        collected_at_unix_seconds,
        errors,
    )
}

/// The figure of a gateway gauge for a model: its reading (stale past `max_age`), else the
/// gateway's error, else "no `what` metric for model".
fn gateway_figure(
    readings: &GatewayReadings,
    error: Option<&str>,
    namespace: &str,
    model: &str,
    window: &Window,
    what: &str,
) -> Figure {
    let reading = readings
        .get(&(namespace.to_string(), model.to_string()))
        .or_else(|| readings.get(&(String::new(), model.to_string())));
    match (reading, error) {
        (Some(Ok((r, age))), _) if *age <= window.max_age_seconds => {
            Figure::known(r.value, *age, r.metric.clone())
        }
        (Some(Ok((_, age))), _) => Figure::unknown(format!(
            "stale: last sample {age:.0} s old (max {:.0} s)",
            window.max_age_seconds
        )),
        (Some(Err(e)), _) => Figure::unknown(e.clone()),
        (None, Some(e)) => Figure::unknown(e.to_string()),
        (None, None) => Figure::unknown(format!("no gateway {what} metric for model {model}")),
    }
}

/// Build `Observations` from assigned slots and what the gateway said.
pub fn observations_with_gateway(
    source: &str,
    groups: BTreeMap<VariantKey, Vec<Slot>>,
    gw: Gateway<'_>,
    window: &Window,
    collected_at_unix_seconds: f64,
    errors: Vec<String>,
) -> Observations {
    let empty = GatewayReadings::new();
    let gateway = gw.queue.unwrap_or(&empty);
    let running = gw.running.unwrap_or(&empty);
    type ByModel = BTreeMap<(String, String), Vec<(String, Vec<Slot>)>>;
    let mut by_model: ByModel = BTreeMap::new();
    for ((ns, model, variant), slots) in groups {
        by_model
            .entry((ns, model))
            .or_default()
            .push((variant, slots));
    }
    // Models the gateway queues for but no pod serves (scaled to zero): the queue is their
    // wake signal.
    let gateway_only: Vec<(String, String)> = gateway
        .keys()
        .chain(running.keys())
        .filter(|(ns, model)| {
            !by_model
                .keys()
                .any(|(n, m)| m == model && (ns.is_empty() || n == ns))
        })
        .cloned()
        .collect();
    for key in gateway_only {
        by_model.entry(key).or_default();
    }
    let mut models = Vec::new();
    for ((namespace, model), variants) in by_model {
        let all: Vec<&Slot> = variants.iter().flat_map(|(_, s)| s.iter()).collect();
        let model_figures = figures(&all, window);
        let gateway_queue = gateway_figure(
            gateway,
            gw.error,
            &namespace,
            &model,
            window,
            "flow-control queue",
        );
        let gateway_running = gateway_figure(
            running,
            gw.error,
            &namespace,
            &model,
            window,
            "running-requests",
        );
        let variants = variants
            .into_iter()
            .map(|(variant, slots)| {
                let refs: Vec<&Slot> = slots.iter().collect();
                let flavors: BTreeSet<Flavor> = slots
                    .iter()
                    .filter_map(|s| match s {
                        Slot::Pod(p) => Some(p.flavors.iter().copied()),
                        Slot::Missing { .. } => None,
                    })
                    .flatten()
                    .collect();
                VariantObservation {
                    variant,
                    pods: slots.iter().map(|s| s.name().to_string()).collect(),
                    flavors: flavors.into_iter().collect(),
                    figures: figures(&refs, window),
                }
            })
            .collect();
        models.push(ModelObservation {
            namespace,
            model,
            gateway_queue,
            gateway_running,
            figures: model_figures,
            variants,
        });
    }
    Observations {
        source: source.to_string(),
        window_seconds: window.window_seconds,
        max_age_seconds: window.max_age_seconds,
        collected_at_unix_seconds,
        models,
        errors,
    }
}
