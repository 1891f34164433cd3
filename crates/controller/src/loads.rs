//! Where the control loop gets each model's offered load.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use wvo_api::ModelLoad;

/// A model as the load sources know it: (namespace, served model id).
pub type ModelKey = (String, String);

/// Loads per model: known, or unknown with the reason.
pub type Loads = BTreeMap<ModelKey, Result<ModelLoad, String>>;

/// A boxed future, so sources can be used as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A variant as the load sources know it: (namespace, served model id, variant name).
pub type VariantObsKey = (String, String, String);

/// A ready pod of a variant, so a source can attribute the pod's series to the variant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VariantPod {
    /// Namespace of the pod.
    pub namespace: String,
    /// Served model id.
    pub model: String,
    /// Variant name.
    pub variant: String,
    /// Pod name.
    pub pod: String,
}

/// One collection: the load per model and, where the source can attribute pods, the figures
/// per variant (calibration evidence).
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// Load per model.
    pub loads: Loads,
    /// Figures per variant (only known variants; may be empty).
    pub variants: BTreeMap<VariantObsKey, wvo_collector::LoadFigures>,
    /// Per model, what the demand estimate reads beyond the arrival rate (only models the
    /// source saw; may be empty).
    pub signals: BTreeMap<ModelKey, ModelSignals>,
}

/// A model's queue and cache figures now.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ModelSignals {
    /// Requests waiting in the servers' queues plus the gateway's queue, requests; None
    /// when neither is known.
    pub waiting: Option<f64>,
    /// Mean KV-cache usage of the ready replicas, 0..1; None when unknown.
    pub kv_usage: Option<f64>,
    /// Requests waiting for the model where none of its replicas sees them (the gateway's
    /// flow-control queue, a VA's wake query), requests; None when no such signal is read.
    pub wake: Option<f64>,
    /// Requests being generated on the model's servers now, requests: the servers' count or
    /// the gateway's (EPP running requests), the larger; None when neither is known.
    pub running: Option<f64>,
    /// The latencies the model's servers measured over the window (all unknown when the
    /// source reports none).
    pub latency: MeasuredLatency,
}

/// Latencies a model's servers measured over the collection window, s (None: unknown).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MeasuredLatency {
    /// Mean time to first token, s.
    pub ttft_mean_seconds: Option<f64>,
    /// 95th-percentile time to first token, s.
    pub ttft_p95_seconds: Option<f64>,
    /// Mean inter-token latency, s.
    pub itl_mean_seconds: Option<f64>,
    /// 95th-percentile inter-token latency, s.
    pub itl_p95_seconds: Option<f64>,
}

/// The signals of the model `key` (namespace, served model id): those observed in its
/// namespace, else those observed with no namespace (a direct scrape of a gateway).
pub fn signals_for<'a>(
    signals: &'a BTreeMap<ModelKey, ModelSignals>,
    key: &ModelKey,
) -> Option<&'a ModelSignals> {
    signals
        .get(key)
        .or_else(|| signals.get(&(String::new(), key.1.clone())))
}

/// The signals of each observed model: servers' waiting requests plus the gateway queue
/// (either may be unknown), and the KV-cache usage.
pub fn signals_from_observations(
    obs: &wvo_collector::Observations,
) -> BTreeMap<ModelKey, ModelSignals> {
    obs.models
        .iter()
        .map(|m| {
            let waiting = match (m.figures.waiting.value(), m.gateway_queue.value()) {
                (None, None) => None,
                (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
            };
            (
                (m.namespace.clone(), m.model.clone()),
                ModelSignals {
                    waiting,
                    kv_usage: m.figures.kv_usage.value(),
                    wake: m.gateway_queue.value(),
                    // The servers' running requests, or the gateway's count of them
                    // (EPP), the larger where both are read: either one above 0 means
                    // the model is not idle.
                    running: match (m.figures.running.value(), m.gateway_running.value()) {
                        (None, None) => None,
                        (a, b) => Some(a.unwrap_or(0.0).max(b.unwrap_or(0.0))),
                    },
                    latency: MeasuredLatency {
                        ttft_mean_seconds: m.figures.ttft_mean_seconds.value(),
                        ttft_p95_seconds: m.figures.ttft_p95_seconds.value(),
                        itl_mean_seconds: m.figures.itl_mean_seconds.value(),
                        itl_p95_seconds: m.figures.itl_p95_seconds.value(),
                    },
                },
            )
        })
        .collect()
}

/// A read of models' past arrival rates: per (namespace, served model id), the series in
/// time order (UNIX s, req/s), or why it could not be read.
pub type PastRates<'a> =
    BoxFuture<'a, Result<wvo_collector::ModelRates, wvo_collector::CollectorError>>;

/// Something that reports the offered load of models.
pub trait LoadSource: Send + Sync {
    /// The load of each model in `models`; a model with no data maps to `Err(reason)`.
    fn loads<'a>(&'a self, models: &'a [ModelKey]) -> BoxFuture<'a, Loads>;

    /// The loads plus per-variant figures, given the variants' ready pods. The default
    /// knows no variants.
    fn observe<'a>(
        &'a self,
        models: &'a [ModelKey],
        pods: &'a [VariantPod],
    ) -> BoxFuture<'a, Observed> {
        let _ = pods;
        Box::pin(async move {
            Observed {
                loads: self.loads(models).await,
                ..Observed::default()
            }
        })
    }

    /// Every model's arrival rate (the same definition as [`LoadSource::loads`]) at the
    /// evaluation times of `range`, read from the source's past; None when the source
    /// keeps no past (direct scrapes, loads set by hand: the default).
    fn past_rates(&self, range: wvo_collector::RateRange) -> Option<PastRates<'_>> {
        let _ = range;
        None
    }

    /// The value of each model's wake query now (requests waiting for it elsewhere, summed
    /// over the query's series), or why it could not be read; None when the source cannot
    /// run queries (direct scrapes, loads set by hand: the default).
    fn wake_queries<'a>(&'a self, queries: &'a [(ModelKey, String)]) -> Option<WakeReads<'a>> {
        let _ = queries;
        None
    }
}

/// What [`LoadSource::wake_queries`] reads: per model, requests or the error.
pub type WakeReads<'a> = BoxFuture<'a, BTreeMap<ModelKey, Result<f64, String>>>;

/// Loads set by hand (tests, the demo, the simulator): a shared map.
#[derive(Clone, Debug, Default)]
pub struct StaticLoads(Arc<RwLock<Loads>>, Arc<RwLock<Observed>>);

impl StaticLoads {
    /// Sets the load of `model` in `namespace` (or why it is unknown).
    pub fn set(&self, namespace: &str, model: &str, load: Result<ModelLoad, String>) {
        if let Ok(mut map) = self.0.write() {
            map.insert((namespace.to_string(), model.to_string()), load);
        }
    }

    /// Sets the figures of one variant of `model` in `namespace`.
    pub fn set_variant(
        &self,
        namespace: &str,
        model: &str,
        variant: &str,
        figures: wvo_collector::LoadFigures,
    ) {
        if let Ok(mut obs) = self.1.write() {
            obs.variants.insert(
                (
                    namespace.to_string(),
                    model.to_string(),
                    variant.to_string(),
                ),
                figures,
            );
        }
    }

    /// Sets the signals (queues, cache, measured latencies) of `model` in `namespace`.
    pub fn set_signals(&self, namespace: &str, model: &str, signals: ModelSignals) {
        if let Ok(mut obs) = self.1.write() {
            obs.signals
                .insert((namespace.to_string(), model.to_string()), signals);
        }
    }
}

impl LoadSource for StaticLoads {
    fn observe<'a>(
        &'a self,
        models: &'a [ModelKey],
        _pods: &'a [VariantPod],
    ) -> BoxFuture<'a, Observed> {
        Box::pin(async move {
            Observed {
                loads: self.loads(models).await,
                variants: self
                    .1
                    .read()
                    .map(|o| o.variants.clone())
                    .unwrap_or_default(),
                signals: self.1.read().map(|o| o.signals.clone()).unwrap_or_default(),
            }
        })
    }

    fn loads<'a>(&'a self, models: &'a [ModelKey]) -> BoxFuture<'a, Loads> {
        Box::pin(async move {
            let map = match self.0.read() {
                Ok(map) => map.clone(),
                Err(_) => Loads::new(),
            };
            models
                .iter()
                .map(|k| {
                    let load = map.get(k).cloned().unwrap_or_else(|| {
                        Err(format!("no observation of model {} in {}", k.1, k.0))
                    });
                    (k.clone(), load)
                })
                .collect()
        })
    }
}

/// Loads from the collector (Prometheus or direct scrapes).
#[derive(Clone, Debug)]
pub struct CollectorLoads {
    config: wvo_collector::ObserveConfig,
}

impl CollectorLoads {
    /// A source that runs one collection with `config` per cycle.
    pub fn new(config: wvo_collector::ObserveConfig) -> Self {
        Self { config }
    }
}

/// Maps one collection onto the requested models: a model is known when its completion
/// rate is; its arrival rate is that plus the growth of its requests in the servers
/// ([`arrivals`]); token means are passed on when known.
pub fn loads_from_observations(obs: &wvo_collector::Observations, models: &[ModelKey]) -> Loads {
    models
        .iter()
        .map(|(ns, model)| {
            let found = obs
                .models
                .iter()
                .find(|m| &m.model == model && (m.namespace == *ns || m.namespace.is_empty()));
            let load = match found {
                None => Err(match obs.errors.first() {
                    Some(e) => format!("model {model} not observed: {e}"),
                    None => format!("model {model} not observed in {}", obs.source),
                }),
                Some(m) => match m.figures.arrival_rate_rps.value() {
                    Some(rate) => Ok(ModelLoad {
                        arrival_rate: arrivals(rate, &m.figures.in_flight_growth_rps),
                        avg_input_tokens: m.figures.avg_input_tokens.value(),
                        avg_output_tokens: m.figures.avg_output_tokens.value(),
                    }),
                    None => Err(m
                        .figures
                        .arrival_rate_rps
                        .reason()
                        .unwrap_or("arrival rate unknown")
                        .to_string()),
                },
            };
            ((ns.clone(), model.clone()), load)
        })
        .collect()
}

/// The arrival rate behind a completion rate (req/s): completions plus the growth of the
/// requests in the servers when that is known (a saturated server completes at its
/// throughput while its queue grows, so completions alone under-read the demand), never
/// below 0. With the growth unknown (e.g. a pod's first scrape), the completions.
pub fn arrivals(completions_rps: f64, in_flight_growth: &wvo_collector::Figure) -> f64 {
    match in_flight_growth.value() {
        Some(growth) if growth.is_finite() => (completions_rps + growth).max(0.0),
        _ => completions_rps,
    }
}

/// The per-variant figures of one collection, for variants the source could attribute
/// (variant `*` means "all pods of the model" and is skipped).
pub fn variants_from_observations(
    obs: &wvo_collector::Observations,
) -> BTreeMap<VariantObsKey, wvo_collector::LoadFigures> {
    let mut out = BTreeMap::new();
    for m in &obs.models {
        for v in &m.variants {
            if v.variant != "*" {
                out.insert(
                    (m.namespace.clone(), m.model.clone(), v.variant.clone()),
                    v.figures.clone(),
                );
            }
        }
    }
    out
}

impl LoadSource for CollectorLoads {
    fn observe<'a>(
        &'a self,
        models: &'a [ModelKey],
        pods: &'a [VariantPod],
    ) -> BoxFuture<'a, Observed> {
        Box::pin(async move {
            let mut config = self.config.clone();
            // Prometheus: attribute series by (namespace, pod). With no pods known, keep
            // the configured targets (every pod, variant `*`).
            if matches!(config.source, wvo_collector::SourceConfig::Prometheus(_))
                && !pods.is_empty()
            {
                config.targets = pods
                    .iter()
                    .map(|p| wvo_collector::Target {
                        namespace: p.namespace.clone(),
                        model: p.model.clone(),
                        variant: p.variant.clone(),
                        pod: p.pod.clone(),
                        url: String::new(),
                    })
                    .collect();
            }
            match wvo_collector::observe(&config).await {
                Ok(obs) => Observed {
                    loads: loads_from_observations(&obs, models),
                    variants: variants_from_observations(&obs),
                    signals: signals_from_observations(&obs),
                },
                Err(e) => Observed {
                    loads: models
                        .iter()
                        .map(|k| (k.clone(), Err(format!("collector: {e}"))))
                        .collect(),
                    ..Observed::default()
                },
            }
        })
    }

    /// Prometheus only: range queries over `range` (at most
    /// [`wvo_collector::MAX_POINTS_PER_REQUEST`] points per request), same filters,
    /// window, token, CAs and timeout as the cycle's instant queries.
    fn past_rates(&self, range: wvo_collector::RateRange) -> Option<PastRates<'_>> {
        let wvo_collector::SourceConfig::Prometheus(cfg) = &self.config.source else {
            return None;
        };
        Some(Box::pin(async move {
            wvo_collector::PrometheusSource::new(cfg.clone(), self.config.window, vec![])?
                .arrival_rates(range, wvo_collector::MAX_POINTS_PER_REQUEST)
                .await
        }))
    }

    /// Prometheus only: one instant query per model, concurrently, with the cycle's
    /// token, CAs and timeout.
    fn wake_queries<'a>(&'a self, queries: &'a [(ModelKey, String)]) -> Option<WakeReads<'a>> {
        let wvo_collector::SourceConfig::Prometheus(cfg) = &self.config.source else {
            return None;
        };
        Some(Box::pin(async move {
            let source =
                match wvo_collector::PrometheusSource::new(cfg.clone(), self.config.window, vec![])
                {
                    Ok(s) => s,
                    Err(e) => {
                        return queries
                            .iter()
                            .map(|(k, _)| (k.clone(), Err(e.to_string())))
                            .collect()
                    }
                };
            let reads = queries.iter().map(|(key, promql)| {
                let source = &source;
                async move {
                    (
                        key.clone(),
                        source.instant_sum(promql).await.map_err(|e| e.to_string()),
                    )
                }
            });
            futures::future::join_all(reads).await.into_iter().collect()
        }))
    }

    fn loads<'a>(&'a self, models: &'a [ModelKey]) -> BoxFuture<'a, Loads> {
        Box::pin(async move {
            match wvo_collector::observe(&self.config).await {
                Ok(obs) => loads_from_observations(&obs, models),
                Err(e) => models
                    .iter()
                    .map(|k| (k.clone(), Err(format!("collector: {e}"))))
                    .collect(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wvo_collector::Figure;

    #[tokio::test]
    async fn prometheus_credentials_appear_in_no_model_reason() {
        // Port 1: nothing listens there, so every model is unknown with the error.
        let loads = CollectorLoads::new(wvo_collector::ObserveConfig {
            source: wvo_collector::SourceConfig::Prometheus(wvo_collector::PrometheusConfig {
                base_url: "http://user:s3cret@127.0.0.1:1/".into(),
                namespace: None,
                model: None,
                http: wvo_collector::HttpConfig {
                    timeout: std::time::Duration::from_secs(2),
                    ..Default::default()
                },
            }),
            window: Default::default(),
            targets: vec![],
        });
        let models = [("ns".to_string(), "m".to_string())];
        let observed = loads.observe(&models, &[]).await;
        let reason = observed.loads[&models[0]]
            .as_ref()
            .expect_err("prometheus is down");
        // This reason becomes the VA's MetricsUnknown message and the status API's.
        assert!(reason.contains("127.0.0.1:1"), "{reason}");
        assert!(
            !reason.contains("s3cret") && !reason.contains("user:"),
            "{reason}"
        );
    }

    #[test]
    fn arrivals_are_completions_plus_the_growth_in_the_servers() {
        let known = |v: f64| Figure::known(v, 1.0, "vllm:num_requests_waiting");
        // 4 req/s completed while the servers' requests grew by 10 req/s: 14 req/s arrived.
        assert_eq!(arrivals(4.0, &known(10.0)), 14.0);
        // A draining backlog lowers it, never below zero.
        assert_eq!(arrivals(4.0, &known(-1.5)), 2.5);
        assert_eq!(arrivals(4.0, &known(-10.0)), 0.0);
        // Growth unknown or not a number: completions only.
        assert_eq!(arrivals(4.0, &Figure::unknown("one scrape so far")), 4.0);
        assert_eq!(arrivals(4.0, &known(f64::NAN)), 4.0);
    }

    #[test]
    fn observed_loads_use_the_arrivals() {
        let figures = |rate: f64, growth: Figure| wvo_collector::LoadFigures {
            arrival_rate_rps: Figure::known(rate, 1.0, "vllm:request_success_total"),
            avg_input_tokens: Figure::known(512.0, 1.0, "t"),
            avg_output_tokens: Figure::unknown("no requests finished in the window"),
            running: Figure::known(30.0, 1.0, "t"),
            waiting: Figure::known(12.0, 1.0, "t"),
            in_flight_growth_rps: growth,
            kv_usage: Figure::known(0.9, 1.0, "t"),
            kv_capacity_tokens: Figure::unknown("t"),
            ttft_mean_seconds: Figure::unknown("t"),
            ttft_p95_seconds: Figure::unknown("t"),
            itl_mean_seconds: Figure::unknown("t"),
            itl_p95_seconds: Figure::unknown("t"),
            preemptions_per_second: Figure::unknown("t"),
            ready_replicas: Figure::known(1.0, 1.0, "t"),
            pending_replicas: Figure::unknown("t"),
        };
        let model = |name: &str, f: wvo_collector::LoadFigures| wvo_collector::ModelObservation {
            namespace: "ns".into(),
            model: name.into(),
            gateway_queue: Figure::unknown("no gateway"),
            gateway_running: Figure::unknown("no gateway"),
            figures: f,
            variants: vec![],
        };
        let obs = wvo_collector::Observations {
            source: "test".into(),
            window_seconds: 60.0,
            max_age_seconds: 60.0,
            collected_at_unix_seconds: 0.0,
            models: vec![
                model("saturated", figures(5.0, Figure::known(3.0, 1.0, "g"))),
                model("first-scrape", figures(5.0, Figure::unknown("two scrapes"))),
            ],
            errors: vec![],
        };
        let keys: Vec<ModelKey> = vec![
            ("ns".into(), "saturated".into()),
            ("ns".into(), "first-scrape".into()),
            ("ns".into(), "absent".into()),
        ];
        let loads = loads_from_observations(&obs, &keys);
        let rate = |k: &ModelKey| loads[k].as_ref().map(|l| l.arrival_rate).ok();
        assert_eq!(rate(&keys[0]), Some(8.0));
        assert_eq!(rate(&keys[1]), Some(5.0));
        assert!(loads[&keys[2]]
            .as_ref()
            .is_err_and(|e| e.contains("absent")));
        let tokens = loads[&keys[0]].as_ref().map(|l| l.avg_input_tokens).ok();
        assert_eq!(tokens, Some(Some(512.0)));

        // The gateway's running requests (EPP) count where the servers' are unknown or
        // lower: a model with requests running at the gateway is not idle.
        let mut obs = obs;
        obs.models[0].figures.running = Figure::unknown("llama.cpp pod not scraped yet");
        obs.models[0].gateway_running =
            Figure::known(2.0, 1.0, "inference_objective_running_requests");
        obs.models[1].gateway_running =
            Figure::known(7.0, 1.0, "inference_objective_running_requests");
        let signals = signals_from_observations(&obs);
        assert_eq!(signals[&keys[0]].running, Some(2.0));
        assert_eq!(signals[&keys[1]].running, Some(30.0));
    }
}
