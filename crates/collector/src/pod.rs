//! Per-pod raw figures (pure): what one pod's metrics say over the window, before
//! aggregation into variants and models. Built from two scrapes (`from_scrapes`) or from
//! Prometheus query results (`crate::prometheus`).

use crate::names::{self, Flavor, Hist, Kind, Scalar};
use crate::text::{Exposition, Sample};
use std::collections::{BTreeMap, BTreeSet};

/// A scalar reading: value and the metric it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    /// The value (rates per second; gauges as exposed).
    pub value: f64,
    /// The metric name used.
    pub metric: String,
}

/// A histogram over the window: cumulative bucket counts (as deltas or rates), sum, count.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct HistReading {
    /// The family name used.
    pub metric: String,
    /// `(le, cumulative)` sorted by `le`; `+Inf` included when exposed.
    pub buckets: Vec<(f64, f64)>,
    /// Sum of observations over the window (same scale as the buckets).
    pub sum: Option<f64>,
    /// Number of observations over the window (same scale as the buckets).
    pub count: Option<f64>,
}

impl HistReading {
    /// Number of observations: `_count`, else the `+Inf` bucket.
    pub fn total(&self) -> Option<f64> {
        self.count.or_else(|| {
            self.buckets
                .iter()
                .find(|(le, _)| le.is_infinite())
                .map(|(_, c)| *c)
        })
    }
}

/// A figure that failed: why (e.g. `not exposed`, `NaN in vllm:...`).
pub type Missing = String;

/// What one pod's metrics say for one model.
#[derive(Clone, Debug, PartialEq)]
pub struct PodFigures {
    /// Namespace.
    pub namespace: String,
    /// Model id (`model_name`).
    pub model: String,
    /// Pod name.
    pub pod: String,
    /// Families seen.
    pub flavors: BTreeSet<Flavor>,
    /// Age of the pod's newest sample, s; `Err` when it cannot be dated.
    pub age_seconds: Result<f64, Missing>,
    /// Scalar signals.
    pub scalars: BTreeMap<Scalar, Result<Reading, Missing>>,
    /// Histogram signals.
    pub hists: BTreeMap<Hist, Result<HistReading, Missing>>,
    /// KV-cache capacity, tokens.
    pub kv_capacity_tokens: Result<Reading, Missing>,
}

impl PodFigures {
    /// Empty figures for a pod (everything "not exposed").
    pub fn new(namespace: &str, model: &str, pod: &str) -> PodFigures {
        PodFigures {
            namespace: namespace.into(),
            model: model.into(),
            pod: pod.into(),
            flavors: BTreeSet::new(),
            age_seconds: Err("not dated".into()),
            scalars: BTreeMap::new(),
            hists: BTreeMap::new(),
            kv_capacity_tokens: Err("no cache config metric".into()),
        }
    }

    /// The scalar reading, or why it is missing.
    pub fn scalar(&self, s: Scalar) -> Result<&Reading, Missing> {
        match self.scalars.get(&s) {
            Some(Ok(r)) => Ok(r),
            Some(Err(m)) => Err(m.clone()),
            None => Err(format!("none of {} exposed", s.candidates().join(", "))),
        }
    }

    /// The histogram reading, or why it is missing.
    pub fn hist(&self, h: Hist) -> Result<&HistReading, Missing> {
        match self.hists.get(&h) {
            Some(Ok(r)) => Ok(r),
            Some(Err(m)) => Err(m.clone()),
            None => Err(format!("none of {} exposed", h.candidates().join(", "))),
        }
    }
}

/// Check a value: NaN or infinite is a reason, not a number.
pub(crate) fn finite(value: f64, metric: &str) -> Result<f64, Missing> {
    if value.is_nan() {
        Err(format!("{metric} is NaN"))
    } else if value.is_infinite() {
        Err(format!("{metric} is infinite"))
    } else {
        Ok(value)
    }
}

/// Model ids a scrape reports (from the running-requests gauges).
pub fn models_in(expo: &Exposition) -> BTreeSet<String> {
    expo.samples
        .iter()
        .filter(|s| names::FRESHNESS.contains(&s.name.as_str()))
        .filter_map(|s| s.label("model_name").map(str::to_string))
        .collect()
}

/// True when the scrape has metrics of a model server whose series carry no
/// `model_name` label (llama.cpp, TGI): its one model is the caller's target's.
pub fn has_unlabelled_server(expo: &Exposition) -> bool {
    expo.samples.iter().any(|s| {
        names::flavor_of_name(&s.name, false).is_some_and(Flavor::unlabelled)
            && s.label("model_name").is_none()
    })
}

/// Replace "not exposed" with the reason a pod's server family never exposes a signal
/// (llama.cpp, TGI), so an unknown figure says why rather than listing names.
pub fn explain_missing(pf: &mut PodFigures) {
    use names::Signal;
    for s in Scalar::ALL {
        if !pf.scalars.contains_key(&s) {
            if let Some(why) = Flavor::never_exposed_by(&pf.flavors, Signal::Scalar(s)) {
                pf.scalars.insert(s, Err(why.to_string()));
            }
        }
    }
    for h in Hist::ALL {
        if !pf.hists.contains_key(&h) {
            if let Some(why) = Flavor::never_exposed_by(&pf.flavors, Signal::Hist(h)) {
                pf.hists.insert(h, Err(why.to_string()));
            }
        }
    }
    if pf.kv_capacity_tokens.is_err() {
        if let Some(why) = Flavor::never_exposed_by(&pf.flavors, Signal::KvCapacity) {
            pf.kv_capacity_tokens = Err(why.to_string());
        }
    }
}

fn for_model(s: &Sample, model: &str) -> bool {
    match s.label("model_name") {
        Some(m) => m == model,
        None => true,
    }
}

/// Series key of a sample without `le`, for matching counters across scrapes.
fn series_key(s: &Sample) -> String {
    let mut k = s.name.clone();
    for (n, v) in &s.labels {
        if n != "le" {
            k.push('\u{1}');
            k.push_str(n);
            k.push('=');
            k.push_str(v);
        }
    }
    k
}

/// Increase of a counter between two values (a drop means a restart: count from 0).
fn increase(prev: f64, cur: f64) -> f64 {
    if cur >= prev {
        cur - prev
    } else {
        cur
    }
}

/// Sum over series of `name` for `model` of the increase between scrapes; `None` when the
/// current scrape has no such series.
fn counter_increase(
    prev: &Exposition,
    cur: &Exposition,
    name: &str,
    model: &str,
) -> Option<Result<f64, Missing>> {
    let prev_values: BTreeMap<String, f64> = prev
        .named(name)
        .filter(|s| for_model(s, model))
        .map(|s| (series_key(s), s.value))
        .collect();
    let mut total = 0.0;
    let mut any = false;
    for s in cur.named(name).filter(|s| for_model(s, model)) {
        any = true;
        let c = match finite(s.value, name) {
            Ok(v) => v,
            Err(e) => return Some(Err(e)),
        };
        let p = match prev_values.get(&series_key(s)) {
            Some(p) => match finite(*p, name) {
                Ok(v) => v,
                Err(e) => return Some(Err(e)),
            },
            None => 0.0, // series born between the scrapes
        };
        total += increase(p, c);
    }
    any.then_some(Ok(total))
}

fn gauge(cur: &Exposition, name: &str, model: &str, kind: Kind) -> Option<Result<f64, Missing>> {
    let mut values = Vec::new();
    for s in cur.named(name).filter(|s| for_model(s, model)) {
        match finite(s.value, name) {
            Ok(v) => values.push(v),
            Err(e) => return Some(Err(e)),
        }
    }
    if values.is_empty() {
        return None;
    }
    let sum: f64 = values.iter().sum();
    Some(Ok(match kind {
        Kind::GaugeAvg => sum / values.len() as f64,
        _ => sum,
    }))
}

/// Change per second of gauge `name` from the previous scrape `prev` (taken `dt` s
/// earlier) to `now` (the current value, or why it is missing).
fn gauge_slope(
    prev: &Exposition,
    now: Result<f64, Missing>,
    dt: f64,
    name: &str,
    model: &str,
) -> Result<f64, Missing> {
    let now = now?;
    let before = gauge(prev, name, model, Kind::GaugeSum)
        .unwrap_or_else(|| Err(format!("{name} not in the previous scrape")))?;
    if dt > 0.0 {
        Ok((now - before) / dt)
    } else {
        Err("scrapes at the same instant".into())
    }
}

/// Histogram increase between scrapes for family `family` and `model`, summed over
/// series (engines). `prev = None` reads the current totals as they are.
fn hist_increase(
    prev: Option<&Exposition>,
    cur: &Exposition,
    family: &str,
    model: &str,
) -> Option<Result<HistReading, Missing>> {
    let bucket_name = format!("{family}_bucket");
    let sum_name = format!("{family}_sum");
    let count_name = format!("{family}_count");
    let has_any = cur
        .samples
        .iter()
        .any(|s| (s.name == bucket_name || s.name == count_name) && for_model(s, model));
    if !has_any {
        return None;
    }
    let delta = |name: &str| -> Option<Result<f64, Missing>> {
        match prev {
            Some(p) => counter_increase(p, cur, name, model),
            None => gauge(cur, name, model, Kind::GaugeSum),
        }
    };
    // Buckets: per le, increase summed over series.
    let mut per_le: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    let prev_buckets: BTreeMap<(String, String), f64> = prev
        .map(|p| {
            p.named(&bucket_name)
                .filter(|s| for_model(s, model))
                .map(|s| {
                    (
                        (series_key(s), s.label("le").unwrap_or("").to_string()),
                        s.value,
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    for s in cur.named(&bucket_name).filter(|s| for_model(s, model)) {
        let Some(le) = s.label("le").and_then(crate::text::parse_value) else {
            continue; // a bucket without a readable le is skipped, not fatal
        };
        let c = match finite(s.value, &bucket_name) {
            Ok(v) => v,
            Err(e) => return Some(Err(e)),
        };
        let p = prev_buckets
            .get(&(series_key(s), s.label("le").unwrap_or("").to_string()))
            .copied()
            .unwrap_or(0.0);
        let inc = if prev.is_some() { increase(p, c) } else { c };
        let key = ordered_key(le);
        let e = per_le.entry(key).or_insert((le, 0.0));
        e.1 += inc;
    }
    let sum = match delta(&sum_name) {
        Some(Ok(v)) => Some(v),
        Some(Err(e)) => return Some(Err(e)),
        None => None,
    };
    let count = match delta(&count_name) {
        Some(Ok(v)) => Some(v),
        Some(Err(e)) => return Some(Err(e)),
        None => None,
    };
    Some(Ok(HistReading {
        metric: family.to_string(),
        buckets: per_le.into_values().collect(),
        sum,
        count,
    }))
}

/// Total-order key for a non-NaN float (for sorting buckets by `le`).
pub(crate) fn ordered_key(x: f64) -> u64 {
    let bits = x.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

/// KV capacity in tokens from cache-config info labels or SGLang's max-tokens gauge,
/// summed over engines.
pub fn kv_capacity(samples: &[&Sample]) -> Result<Reading, Missing> {
    let mut total = 0.0;
    let mut metric = None;
    let mut problem = None;
    for s in samples {
        if s.name == names::SGLANG_MAX_TOKENS {
            match finite(s.value, &s.name) {
                Ok(v) => {
                    total += v;
                    metric.get_or_insert_with(|| s.name.clone());
                }
                Err(e) => problem = Some(e),
            }
            continue;
        }
        let (blocks, size) = if s.name == "sglang:cache_config_info" {
            (s.label("num_pages"), s.label("page_size"))
        } else {
            (s.label("num_gpu_blocks"), s.label("block_size"))
        };
        match (
            blocks.and_then(|b| b.parse::<f64>().ok()),
            size.and_then(|b| b.parse::<f64>().ok()),
        ) {
            (Some(b), Some(z)) if b.is_finite() && z.is_finite() => {
                total += b * z;
                metric.get_or_insert_with(|| s.name.clone());
            }
            _ => {
                problem = Some(format!(
                    "{}: block count `{}` or size `{}` not a number",
                    s.name,
                    blocks.unwrap_or("missing"),
                    size.unwrap_or("missing")
                ))
            }
        }
    }
    match (metric, problem) {
        (_, Some(p)) => Err(p),
        (Some(m), None) => Ok(Reading {
            value: total,
            metric: m,
        }),
        (None, None) => Err("no cache config metric".into()),
    }
}

/// Figures of one scraped pod for `model`, from the previous and current scrape;
/// `dt_seconds` apart. Without a previous scrape, rates and histograms are unknown.
///
/// `age_seconds` is the age of the current scrape when the figures are used.
pub fn from_scrapes(
    namespace: &str,
    pod: &str,
    model: &str,
    prev: Option<(&Exposition, f64)>,
    cur: &Exposition,
    age_seconds: f64,
) -> PodFigures {
    let mut pf = PodFigures::new(namespace, model, pod);
    pf.age_seconds = Ok(age_seconds);
    for s in cur.samples.iter().filter(|s| for_model(s, model)) {
        if let Some(f) = names::flavor_of_name(&s.name, s.labels.contains_key("engine")) {
            pf.flavors.insert(f);
        }
    }
    if pf.flavors.contains(&Flavor::VllmV1) {
        pf.flavors.remove(&Flavor::VllmV0);
    }
    let no_prev = "rates need two scrapes; only one so far".to_string();
    for sig in Scalar::ALL {
        for name in sig.candidates() {
            let got = match sig.kind() {
                Kind::Counter => match prev {
                    Some((p, dt)) => counter_increase(p, cur, name, model).map(|r| {
                        r.and_then(|inc| {
                            if dt > 0.0 {
                                Ok(inc / dt)
                            } else {
                                Err("scrapes at the same instant".into())
                            }
                        })
                    }),
                    None => cur.has(name).then(|| Err(no_prev.clone())),
                },
                Kind::GaugeSlope => match prev {
                    Some((p, dt)) => gauge(cur, name, model, Kind::GaugeSum)
                        .map(|now| gauge_slope(p, now, dt, name, model)),
                    None => cur.has(name).then(|| Err(no_prev.clone())),
                },
                kind => gauge(cur, name, model, kind),
            };
            if let Some(r) = got {
                pf.scalars.insert(
                    sig,
                    r.map(|value| Reading {
                        value,
                        metric: name.to_string(),
                    }),
                );
                break;
            }
        }
    }
    for h in Hist::ALL {
        for family in h.candidates() {
            let got = match prev {
                Some((p, dt)) => hist_increase(Some(p), cur, family, model).map(|r| {
                    r.and_then(|mut hr| {
                        if dt <= 0.0 {
                            return Err("scrapes at the same instant".into());
                        }
                        for b in &mut hr.buckets {
                            b.1 /= dt;
                        }
                        hr.sum = hr.sum.map(|v| v / dt);
                        hr.count = hr.count.map(|v| v / dt);
                        Ok(hr)
                    })
                }),
                None => hist_increase(None, cur, family, model).map(|_| Err(no_prev.clone())),
            };
            if let Some(r) = got {
                pf.hists.insert(h, r);
                break;
            }
        }
    }
    let info: Vec<&Sample> = cur
        .samples
        .iter()
        .filter(|s| {
            (names::CACHE_INFO.contains(&s.name.as_str()) || s.name == names::SGLANG_MAX_TOKENS)
                && for_model(s, model)
        })
        .collect();
    pf.kv_capacity_tokens = kv_capacity(&info);
    explain_missing(&mut pf);
    pf
}

/// Totals of one scrape as if the pod's counters started at zero: used to read a single
/// dump (`prev` = nothing, `dt` = 1 s gives "increase since start").
pub fn totals_since_start(namespace: &str, pod: &str, model: &str, cur: &Exposition) -> PodFigures {
    let empty = Exposition::default();
    from_scrapes(namespace, pod, model, Some((&empty, 1.0)), cur, 0.0)
}

/// Gateway flow-control queue sizes by model from a scrape, summed over priorities.
pub fn gateway_queues(expo: &Exposition) -> BTreeMap<String, Result<Reading, Missing>> {
    gateway_gauges(expo, names::GATEWAY_QUEUE)
}

/// Gateway running requests by model from a scrape (EPP `*_running_requests` /
/// `llm_d_epp_request_running`), summed over target models, fairness ids and priorities.
pub fn gateway_running(expo: &Exposition) -> BTreeMap<String, Result<Reading, Missing>> {
    gateway_gauges(expo, names::GATEWAY_RUNNING)
}

/// A gateway gauge by model (`model_name`, else `target_model_name`), summed over its
/// other labels; of `candidates` (newest first) the newest a model has is used.
fn gateway_gauges(
    expo: &Exposition,
    candidates: &[&str],
) -> BTreeMap<String, Result<Reading, Missing>> {
    let mut out: BTreeMap<String, Result<Reading, Missing>> = BTreeMap::new();
    for name in candidates {
        for s in expo.named(name) {
            let model = s
                .label("model_name")
                .or_else(|| s.label("target_model_name"))
                .unwrap_or("")
                .to_string();
            let entry = out.entry(model).or_insert_with(|| {
                Ok(Reading {
                    value: 0.0,
                    metric: name.to_string(),
                })
            });
            if let Ok(r) = entry {
                if r.metric != *name {
                    continue; // newest name wins; the deprecated copy is not added twice
                }
                match finite(s.value, name) {
                    Ok(v) => r.value += v,
                    Err(e) => *entry = Err(e),
                }
            }
        }
    }
    out
}
