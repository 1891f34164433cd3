//! Prometheus HTTP API source: one PromQL query per signal for all models at once,
//! grouped `by (namespace, model_name, pod)`; never one query per model.
//!
//! Each signal's query is a union (`or`) over its candidate metric names (V1, V0,
//! SGLang), each branch tagged with `label_replace(..., "wvo_metric", NAME, "", "")` so
//! the pure part ([`pods_from_results`]) can pick the preferred name per pod and report it.

use crate::aggregate::{self, GatewayReadings, Window};
use crate::error::CollectorError;
use crate::http::{self, HttpConfig};
use crate::names::{self, Flavor, Hist, Kind, Scalar};
use crate::observation::{Observations, Target};
use crate::pod::{finite, kv_capacity, HistReading, PodFigures, Reading};
use crate::redact::redact_url;
use crate::text::{parse_value, Sample};
use serde::Deserialize;
use std::collections::BTreeMap;

/// Label the union branches carry: which metric name answered.
pub const TAG: &str = "wvo_metric";

/// What the Prometheus source needs.
#[derive(Clone, PartialEq)]
pub struct PrometheusConfig {
    /// Base URL, e.g. `http://prometheus.monitoring:9090` (no `/api/v1`).
    pub base_url: String,
    /// Only series with this `namespace` label.
    pub namespace: Option<String>,
    /// Only series with this `model_name` label.
    pub model: Option<String>,
    /// Token, CA file, timeout per query.
    pub http: HttpConfig,
}

/// Credentials in the URL are shown as `***` ([`crate::redact_url`]); the token as `HttpConfig` shows it.
impl std::fmt::Debug for PrometheusConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrometheusConfig")
            .field("base_url", &crate::redact_url(&self.base_url))
            .field("namespace", &self.namespace)
            .field("model", &self.model)
            .field("http", &self.http)
            .finish()
    }
}

/// One query to run: an id for the pure part and the PromQL text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// Identifier (`age`, `running`, `ttft_bucket`, `kv_info`, `gateway`, ...).
    pub id: String,
    /// The PromQL expression.
    pub promql: String,
}

/// Escape a PromQL string literal.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Label matchers for the namespace / model filters (without braces).
pub fn matchers(namespace: Option<&str>, model: Option<&str>) -> String {
    let mut m = Vec::new();
    if let Some(ns) = namespace {
        m.push(format!("namespace={}", quote(ns)));
    }
    if let Some(model) = model {
        m.push(format!("model_name={}", quote(model)));
    }
    m.join(",")
}

fn tagged(expr: String, name: &str) -> String {
    format!(
        "label_replace({expr}, \"{TAG}\", {}, \"\", \"\")",
        quote(name)
    )
}

const BY: &str = "namespace, model_name, pod";

/// The queries of one collection, for window `window_s` seconds and label matchers `sel`.
pub fn queries(window_s: u64, sel: &str) -> Vec<Query> {
    let w = format!("{window_s}s");
    let mut out = Vec::new();
    let union = |branches: Vec<String>| branches.join(" or ");
    // Age of each pod's newest scrape (and its engines, for the V1 marker).
    out.push(Query {
        id: "age".into(),
        promql: union(
            names::FRESHNESS
                .iter()
                .map(|n| {
                    tagged(
                        format!("time() - max by ({BY}, engine) (timestamp({n}{{{sel}}}))"),
                        n,
                    )
                })
                .collect(),
        ),
    });
    for s in Scalar::ALL {
        let branches = s
            .candidates()
            .iter()
            .map(|n| {
                let e = match s.kind() {
                    Kind::Counter => format!("sum by ({BY}) (rate({n}{{{sel}}}[{w}]))"),
                    Kind::GaugeSum => format!("sum by ({BY}) ({n}{{{sel}}})"),
                    Kind::GaugeAvg => format!("avg by ({BY}) ({n}{{{sel}}})"),
                    Kind::GaugeSlope => format!("sum by ({BY}) (deriv({n}{{{sel}}}[{w}]))"),
                };
                tagged(e, n)
            })
            .collect();
        out.push(Query {
            id: s.id().into(),
            promql: union(branches),
        });
    }
    for h in Hist::ALL {
        for (suffix, by) in [
            ("bucket", format!("le, {BY}")),
            ("sum", BY.to_string()),
            ("count", BY.to_string()),
        ] {
            let branches = h
                .candidates()
                .iter()
                .map(|n| {
                    tagged(
                        format!("sum by ({by}) (rate({n}_{suffix}{{{sel}}}[{w}]))"),
                        n,
                    )
                })
                .collect();
            out.push(Query {
                id: format!("{}_{suffix}", h.id()),
                promql: union(branches),
            });
        }
    }
    let mut info_names: Vec<&str> = names::CACHE_INFO.to_vec();
    info_names.push(names::SGLANG_MAX_TOKENS);
    let sel_comma = if sel.is_empty() {
        String::new()
    } else {
        format!(",{sel}")
    };
    out.push(Query {
        id: "kv_info".into(),
        promql: format!(
            "max by (__name__, {BY}, engine, block_size, num_gpu_blocks, page_size, num_pages) ({{__name__=~{}{sel_comma}}})",
            quote(&info_names.join("|"))
        ),
    });
    // The gateway's queue and running requests in one union: the tag tells them apart.
    out.push(Query {
        id: "gateway".into(),
        promql: union(
            names::GATEWAY_QUEUE
                .iter()
                .chain(names::GATEWAY_RUNNING)
                .map(|n| tagged(format!("sum by (namespace, model_name) ({n}{{{sel}}})"), n))
                .collect(),
        ),
    });
    out
}

/// One series of an instant-query result.
#[derive(Clone, Debug, PartialEq)]
pub struct PromSample {
    /// The series' labels.
    pub labels: BTreeMap<String, String>,
    /// The value (NaN and infinities kept as such).
    pub value: f64,
}

impl PromSample {
    fn label(&self, name: &str) -> &str {
        self.labels.get(name).map(String::as_str).unwrap_or("")
    }
}

#[derive(Deserialize)]
struct ApiResponse {
    status: String,
    #[serde(default)]
    data: Option<ApiData>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct ApiData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct VectorItem {
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

/// The `data` of a Prometheus API response (pure): the result type and the raw result.
/// `url` and `query` are for messages. Errors: not the API's JSON (or an HTTP error
/// status), `status: error` (the query failed), no `data`.
pub(crate) fn parse_api_data(
    url: &str,
    query: &str,
    status: u16,
    body: &str,
) -> Result<(String, serde_json::Value), CollectorError> {
    let parsed: Result<ApiResponse, _> = serde_json::from_str(body);
    let resp = match parsed {
        Ok(r) => r,
        Err(e) => {
            // Not the API's JSON: report the HTTP status if it is an error, else garbage.
            http::check_status(url, status, body)?;
            return Err(CollectorError::Parse {
                url: url.into(),
                location: format!("line {} column {}", e.line(), e.column()),
                problem: format!("not a Prometheus API response: {e}"),
            });
        }
    };
    if resp.status != "success" {
        return Err(CollectorError::Query {
            url: url.into(),
            query: query.into(),
            error_type: resp.error_type.unwrap_or_else(|| format!("HTTP {status}")),
            error: resp.error.unwrap_or_default(),
        });
    }
    http::check_status(url, status, body)?;
    let data = resp.data.ok_or_else(|| CollectorError::Parse {
        url: url.into(),
        location: "data".into(),
        problem: "missing".into(),
    })?;
    Ok((data.result_type, data.result))
}

/// Parse an instant-query response (pure). `url` and `query` are for messages.
pub fn parse_response(
    url: &str,
    query: &str,
    status: u16,
    body: &str,
) -> Result<Vec<PromSample>, CollectorError> {
    let (result_type, result) = parse_api_data(url, query, status, body)?;
    match result_type.as_str() {
        "vector" => {}
        "scalar" => return Ok(vec![]),
        other => {
            return Err(CollectorError::Parse {
                url: url.into(),
                location: "data.resultType".into(),
                problem: format!("expected vector, got {other}"),
            })
        }
    }
    vector_samples(url, result)
}

/// The series of an instant vector's `data.result` (pure); errors name the item.
fn vector_samples(url: &str, result: serde_json::Value) -> Result<Vec<PromSample>, CollectorError> {
    let items: Vec<VectorItem> =
        serde_json::from_value(result).map_err(|e| CollectorError::Parse {
            url: url.into(),
            location: "data.result".into(),
            problem: e.to_string(),
        })?;
    items
        .into_iter()
        .enumerate()
        .map(|(i, it)| {
            let value = parse_value(&it.value.1).ok_or_else(|| CollectorError::Parse {
                url: url.into(),
                location: format!("data.result[{i}].value"),
                problem: format!("`{}` is not a number", it.value.1),
            })?;
            Ok(PromSample {
                labels: it.metric,
                value,
            })
        })
        .collect()
}

/// The sum of an instant query's result (pure): a vector's values added up (an empty
/// vector is 0), a scalar as it is. A NaN or infinite total is an error, as is any other
/// result type. `url` and `query` are for messages.
pub fn sum_response(
    url: &str,
    query: &str,
    status: u16,
    body: &str,
) -> Result<f64, CollectorError> {
    let (result_type, result) = parse_api_data(url, query, status, body)?;
    let bad = |location: &str, problem: String| CollectorError::Parse {
        url: url.into(),
        location: location.into(),
        problem: format!("{problem} (query {query})"),
    };
    let total = match result_type.as_str() {
        "scalar" => {
            let (_, v): (f64, String) =
                serde_json::from_value(result).map_err(|e| bad("data.result", e.to_string()))?;
            parse_value(&v).ok_or_else(|| bad("data.result", format!("`{v}` is not a number")))?
        }
        "vector" => vector_samples(url, result)
            .map_err(|e| match e {
                CollectorError::Parse {
                    location, problem, ..
                } => bad(&location, problem),
                other => other,
            })?
            .iter()
            .fold(0.0, |total, s| total + s.value),
        other => {
            return Err(bad(
                "data.resultType",
                format!("expected vector or scalar, got {other}"),
            ))
        }
    };
    if total.is_finite() {
        Ok(total)
    } else {
        Err(bad("data.result", format!("the sum is {total}")))
    }
}

type PodKey = (String, String, String);

fn key(s: &PromSample) -> PodKey {
    (
        s.label("namespace").to_string(),
        s.label("model_name").to_string(),
        s.label("pod").to_string(),
    )
}

/// Results by query id: the series, or the error message (with URL).
pub type Results = BTreeMap<String, Result<Vec<PromSample>, String>>;

/// Pick, per pod, the series of the most preferred candidate name.
fn by_pod_preferred<'a>(
    rows: &'a [PromSample],
    candidates: &[&str],
) -> BTreeMap<PodKey, Vec<&'a PromSample>> {
    let mut grouped: BTreeMap<PodKey, Vec<&PromSample>> = BTreeMap::new();
    for r in rows {
        grouped.entry(key(r)).or_default().push(r);
    }
    for rows in grouped.values_mut() {
        let best = candidates
            .iter()
            .find(|c| rows.iter().any(|r| r.label(TAG) == **c));
        if let Some(best) = best {
            rows.retain(|r| r.label(TAG) == *best);
        } else {
            rows.clear();
        }
    }
    grouped.retain(|_, v| !v.is_empty());
    grouped
}

/// Per-pod figures and gateway readings from query results (pure).
pub fn pods_from_results(results: &Results) -> (Vec<PodFigures>, GatewayReadings) {
    let mut pods: BTreeMap<PodKey, PodFigures> = BTreeMap::new();
    let ensure = |pods: &mut BTreeMap<PodKey, PodFigures>, k: &PodKey| {
        if !pods.contains_key(k) {
            pods.insert(k.clone(), PodFigures::new(&k.0, &k.1, &k.2));
        }
    };
    // Discover pods from every successful result that carries a pod label. A pod without
    // `model_name` is a llama.cpp or TGI server (its model comes from the targets); the
    // cache-info series of vLLM V0 lack `model_name` too, and name no pod of their own.
    for (id, r) in results {
        if id == "gateway" {
            continue;
        }
        if let Ok(rows) = r {
            for row in rows {
                let k = key(row);
                if !k.2.is_empty() && (!k.1.is_empty() || id != "kv_info") {
                    ensure(&mut pods, &k);
                }
            }
        }
    }
    let err_of = |id: &str| -> Option<String> {
        match results.get(id) {
            Some(Err(e)) => Some(e.clone()),
            None => Some(format!("query {id} not run")),
            Some(Ok(_)) => None,
        }
    };
    // Age and flavors.
    match results.get("age") {
        Some(Ok(rows)) => {
            for (k, rows) in by_pod_preferred(rows, names::FRESHNESS) {
                if let Some(p) = pods.get_mut(&k) {
                    let mut age = Ok(0.0f64);
                    for r in &rows {
                        if let Some(f) =
                            names::flavor_of_name(r.label(TAG), !r.label("engine").is_empty())
                        {
                            p.flavors.insert(f);
                        }
                        age = age.and_then(|a| finite(r.value, "sample age").map(|v| a.max(v)));
                    }
                    p.age_seconds = age;
                }
            }
            for p in pods.values_mut() {
                if p.age_seconds.is_err() && p.flavors.is_empty() {
                    p.age_seconds = Err(format!(
                        "no {} sample to date the pod's scrape",
                        names::FRESHNESS.join(" or ")
                    ));
                }
            }
        }
        _ => {
            let e = err_of("age").unwrap_or_default();
            for p in pods.values_mut() {
                p.age_seconds = Err(e.clone());
            }
        }
    }
    // Scalars.
    for s in Scalar::ALL {
        match results.get(s.id()) {
            Some(Ok(rows)) => {
                for (k, rows) in by_pod_preferred(rows, s.candidates()) {
                    if let Some(p) = pods.get_mut(&k) {
                        let metric = rows[0].label(TAG).to_string();
                        let v: Result<f64, String> = rows
                            .iter()
                            .try_fold(0.0, |a, r| finite(r.value, &metric).map(|v| a + v));
                        p.scalars
                            .insert(s, v.map(|value| Reading { value, metric }));
                    }
                }
            }
            _ => {
                let e = err_of(s.id()).unwrap_or_default();
                for p in pods.values_mut() {
                    p.scalars.insert(s, Err(e.clone()));
                }
            }
        }
    }
    // Histograms.
    for h in Hist::ALL {
        let ids = ["bucket", "sum", "count"].map(|x| format!("{}_{x}", h.id()));
        if let Some(e) = ids.iter().find_map(|id| err_of(id)) {
            for p in pods.values_mut() {
                p.hists.insert(h, Err(e.clone()));
            }
            continue;
        }
        let rows_of = |id: &str| match results.get(id) {
            Some(Ok(rows)) => rows.as_slice(),
            _ => &[],
        };
        let buckets = by_pod_preferred(rows_of(&ids[0]), h.candidates());
        let sums = by_pod_preferred(rows_of(&ids[1]), h.candidates());
        let counts = by_pod_preferred(rows_of(&ids[2]), h.candidates());
        for (k, p) in pods.iter_mut() {
            // The family: the preferred one among those the pod has in any part.
            let fam = h.candidates().iter().find(|c| {
                [&buckets, &sums, &counts]
                    .iter()
                    .any(|m| m.get(k).is_some_and(|rows| rows[0].label(TAG) == **c))
            });
            let Some(fam) = fam else { continue };
            let pick = |m: &BTreeMap<PodKey, Vec<&PromSample>>| -> Option<Vec<PromSample>> {
                m.get(k)
                    .filter(|rows| rows[0].label(TAG) == *fam)
                    .map(|rows| rows.iter().map(|r| (*r).clone()).collect())
            };
            let mut hr = HistReading {
                metric: fam.to_string(),
                ..Default::default()
            };
            let mut bad = None;
            if let Some(rows) = pick(&buckets) {
                let mut bs: Vec<(f64, f64)> = Vec::new();
                for r in rows {
                    let Some(le) = parse_value(r.label("le")) else {
                        continue;
                    };
                    match finite(r.value, &format!("{fam}_bucket")) {
                        Ok(v) => bs.push((le, v)),
                        Err(e) => bad = Some(e),
                    }
                }
                bs.sort_by(|a, b| a.0.total_cmp(&b.0));
                hr.buckets = bs;
            }
            for (m, slot, suffix) in [(&sums, 0, "sum"), (&counts, 1, "count")] {
                if let Some(rows) = pick(m) {
                    match rows.iter().try_fold(0.0, |a, r| {
                        finite(r.value, &format!("{fam}_{suffix}")).map(|v| a + v)
                    }) {
                        Ok(v) if slot == 0 => hr.sum = Some(v),
                        Ok(v) => hr.count = Some(v),
                        Err(e) => bad = Some(e),
                    }
                }
            }
            p.hists.insert(h, bad.map_or(Ok(hr), Err));
        }
    }
    // KV capacity (info series may lack model_name in V0: they apply to every model of
    // the pod).
    match results.get("kv_info") {
        Some(Ok(rows)) => {
            for p in pods.values_mut() {
                let samples: Vec<Sample> = rows
                    .iter()
                    .filter(|r| {
                        r.label("namespace") == p.namespace
                            && r.label("pod") == p.pod
                            && (r.label("model_name").is_empty()
                                || r.label("model_name") == p.model)
                    })
                    .map(|r| Sample {
                        name: r.label("__name__").to_string(),
                        labels: r.labels.clone(),
                        value: r.value,
                        timestamp_ms: None,
                    })
                    .collect();
                let refs: Vec<&Sample> = samples.iter().collect();
                p.kv_capacity_tokens = kv_capacity(&refs);
            }
        }
        _ => {
            let e = err_of("kv_info").unwrap_or_default();
            for p in pods.values_mut() {
                p.kv_capacity_tokens = Err(e.clone());
            }
        }
    }
    // V1-only names upgrade a V0 guess (older V1 without the engine label).
    for p in pods.values_mut() {
        let v1 = p
            .scalars
            .values()
            .filter_map(|r| r.as_ref().ok())
            .any(|r| names::VLLM_V1_ONLY.contains(&r.metric.as_str()))
            || p.hists
                .values()
                .filter_map(|r| r.as_ref().ok())
                .any(|h| names::VLLM_V1_ONLY.contains(&format!("{}_count", h.metric).as_str()));
        if v1 && p.flavors.remove(&Flavor::VllmV0) {
            p.flavors.insert(Flavor::VllmV1);
        }
    }
    for p in pods.values_mut() {
        crate::pod::explain_missing(p);
    }
    (
        pods.into_values().collect(),
        gateway_from_results(results, names::GATEWAY_QUEUE),
    )
}

/// The gateway's running requests per (namespace, model) from query results (pure).
pub fn gateway_running_from_results(results: &Results) -> GatewayReadings {
    gateway_from_results(results, names::GATEWAY_RUNNING)
}

/// One gateway gauge per (namespace, model) from the `gateway` query's rows tagged with
/// one of `candidates` (newest first; a model's newest name is used).
fn gateway_from_results(results: &Results, candidates: &[&str]) -> GatewayReadings {
    let mut gateway = GatewayReadings::new();
    if let Some(Ok(rows)) = results.get("gateway") {
        let mut grouped: BTreeMap<(String, String), Vec<&PromSample>> = BTreeMap::new();
        for r in rows.iter().filter(|r| candidates.contains(&r.label(TAG))) {
            grouped
                .entry((
                    r.label("namespace").to_string(),
                    r.label("model_name").to_string(),
                ))
                .or_default()
                .push(r);
        }
        for (k, rows) in grouped {
            let best = candidates
                .iter()
                .find(|c| rows.iter().any(|r| r.label(TAG) == **c));
            if let Some(best) = best {
                let v = rows
                    .iter()
                    .filter(|r| r.label(TAG) == *best)
                    .try_fold(0.0, |a, r| finite(r.value, best).map(|v| a + v));
                // Gauges from a Prometheus instant query are at most one lookback old;
                // their exact age is not queried (reported as 0).
                gateway.insert(
                    k,
                    v.map(|value| {
                        (
                            Reading {
                                value,
                                metric: best.to_string(),
                            },
                            0.0,
                        )
                    }),
                );
            }
        }
    }
    gateway
}

/// Reads observations from a Prometheus server.
#[derive(Clone)]
pub struct PrometheusSource {
    pub(crate) cfg: PrometheusConfig,
    pub(crate) window: Window,
    targets: Vec<Target>,
    pub(crate) client: reqwest::Client,
    /// `{base}/api/v1/query`.
    pub(crate) query_url: reqwest::Url,
}

/// The configuration (credentials shown as `***`), window and targets; not the client.
impl std::fmt::Debug for PrometheusSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrometheusSource")
            .field("cfg", &self.cfg)
            .field("window", &self.window)
            .field("targets", &self.targets)
            .field("query_url", &crate::redact_url(self.query_url.as_str()))
            .finish()
    }
}

impl PrometheusSource {
    /// A source for `cfg`, rates over `window`, pods mapped to variants by `targets`
    /// (empty: every pod found, variant `*`).
    pub fn new(
        cfg: PrometheusConfig,
        window: Window,
        targets: Vec<Target>,
    ) -> Result<Self, CollectorError> {
        let base = cfg.base_url.trim_end_matches('/');
        let query_url = reqwest::Url::parse(&format!("{base}/api/v1/query")).map_err(|e| {
            CollectorError::Config {
                field: "prometheus URL",
                problem: format!("{}: {e}", redact_url(&cfg.base_url)),
            }
        })?;
        if !matches!(query_url.scheme(), "http" | "https") {
            return Err(CollectorError::Config {
                field: "prometheus URL",
                problem: format!(
                    "{}: scheme must be http or https",
                    redact_url(&cfg.base_url)
                ),
            });
        }
        let client = http::client(&cfg.http)?;
        Ok(PrometheusSource {
            cfg,
            window,
            targets,
            client,
            query_url,
        })
    }

    /// Run every query concurrently at the same evaluation time.
    pub async fn run_queries(&self) -> Results {
        let sel = matchers(self.cfg.namespace.as_deref(), self.cfg.model.as_deref());
        let window_s = self.window.window_seconds.round().max(1.0) as u64;
        let eval_time = format!("{:.3}", http::unix_now());
        let mut set = tokio::task::JoinSet::new();
        for q in queries(window_s, &sel) {
            let client = self.client.clone();
            let http_cfg = self.cfg.http.clone();
            let base = self.query_url.clone();
            let shown = http::without_credentials(&base);
            let t = eval_time.clone();
            set.spawn(async move {
                let url = reqwest::Url::parse_with_params(
                    base.as_str(),
                    &[("query", q.promql.as_str()), ("time", t.as_str())],
                );
                let res = match url {
                    Err(e) => Err(format!("{shown}: {e}")),
                    Ok(url) => match http::get(&client, &http_cfg, url).await {
                        Err(e) => Err(format!("prometheus: {e}")),
                        Ok((status, body)) => parse_response(&shown, &q.promql, status, &body)
                            .map_err(|e| format!("prometheus: {e}")),
                    },
                };
                (q.id, res)
            });
        }
        let mut out = Results::new();
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok((id, r)) => {
                    out.insert(id, r);
                }
                Err(e) => tracing::warn!(error = %e, "prometheus query task failed"),
            }
        }
        out
    }

    /// The value of `promql` now, summed over its series (a scalar as it is; no series: 0
    /// requests), e.g. a VA's wake query. Errors name the query endpoint without
    /// credentials and the query.
    pub async fn instant_sum(&self, promql: &str) -> Result<f64, CollectorError> {
        let shown = http::without_credentials(&self.query_url);
        let t = format!("{:.3}", http::unix_now());
        let url = reqwest::Url::parse_with_params(
            self.query_url.as_str(),
            &[("query", promql), ("time", t.as_str())],
        )
        .map_err(|e| CollectorError::Config {
            field: "prometheus URL",
            problem: format!("{shown}: {e}"),
        })?;
        let (status, body) = http::get_shown_as(&self.client, &self.cfg.http, url, &shown).await?;
        sum_response(&shown, promql, status, &body)
    }

    /// Query Prometheus and build the observations. Failures become unknown figures
    /// (with the reason) and entries in `errors`; this never fails as a whole.
    pub async fn collect(&self) -> Observations {
        let results = self.run_queries().await;
        observations_from_results(
            &format!("prometheus {}", redact_url(&self.cfg.base_url)),
            &results,
            &self.targets,
            &self.window,
            http::unix_now(),
        )
    }
}

/// Observations from query results (pure).
pub fn observations_from_results(
    source: &str,
    results: &Results,
    targets: &[Target],
    window: &Window,
    now_unix: f64,
) -> Observations {
    let mut errors: Vec<String> = results
        .iter()
        .filter_map(|(id, r)| r.as_ref().err().map(|e| format!("query {id}: {e}")))
        .collect();
    // The same cause (e.g. connection refused) repeated per query says little: dedupe on
    // the message without the query id.
    errors.dedup_by(|a, b| a.split_once(": ").map(|x| x.1) == b.split_once(": ").map(|x| x.1));
    let (pods, gateway) = pods_from_results(results);
    let first_error = results.values().find_map(|r| r.as_ref().err().cloned());
    let no_data = if pods.is_empty() {
        first_error.as_deref()
    } else {
        None
    };
    let gateway_error = match results.get("gateway") {
        Some(Err(e)) => Some(e.as_str()),
        _ => None,
    };
    let running = gateway_running_from_results(results);
    let groups = aggregate::assign(pods, targets, no_data);
    aggregate::observations_with_gateway(
        source,
        groups,
        aggregate::Gateway {
            queue: Some(&gateway),
            running: Some(&running),
            error: gateway_error,
        },
        window,
        now_unix,
        errors,
    )
}
