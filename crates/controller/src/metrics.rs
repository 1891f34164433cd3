//! The controller's own Prometheus metrics (served on `/metrics` in the OpenMetrics text
//! format).
//!
//! | series | type | meaning |
//! |---|---|---|
//! | `wvo_cycle_duration_seconds` | histogram | wall time of one control cycle |
//! | `wvo_solve_duration_seconds` | histogram | time the optimizer spent solving |
//! | `wvo_cycles_total` | counter | control cycles run |
//! | `wvo_last_cycle_timestamp_seconds` | gauge | Unix time the last cycle ended |
//! | `wvo_desired_replicas{namespace,va,variant,accelerator}` | gauge | replicas wvo wants |
//! | `wvo_current_replicas{namespace,va,variant,accelerator}` | gauge | replicas running now |
//! | `wvo_wake_requests{namespace,va}` | gauge | requests waiting for the model where its replicas do not see them (its wake signal); absent while unknown |
//! | `wvo_errors_total{kind}` | counter | errors by kind |
//! | `wvo_is_leader` | gauge | 1 while this replica holds the leader lease |
//! | `wvo_whatif_requests_total{code}` | counter | what-if requests answered, by HTTP status code |
//! | `wvo_whatif_solve_duration_seconds` | histogram | wall time of one what-if solve on its worker thread (cancelled ones included) |
//! | `wvo_whatif_longest_solve_seconds` | gauge | the longest what-if solve since start |
//! | `wvo_cost_dollars_per_hour{namespace,va,variant,accelerator}` | gauge | cost of the desired replicas |
//! | `wvo_arrival_rate_requests_per_second{namespace,va,model}` | gauge | arrival rate the plan used |
//! | `wvo_demand_requests_per_second{namespace,va,model}` | gauge | demand with headroom |
//! | `wvo_capacity_requests_per_second{namespace,va,model}` | gauge | capacity of the desired replicas |
//! | `wvo_satisfaction_ratio{namespace,va,model}` | gauge | share of demand the plan serves |
//! | `wvo_capacity_constrained{namespace,va,model}` | gauge | 1 while the inventory limits the model |
//! | `wvo_metrics_unknown{namespace,va,model}` | gauge | 1 while the model's load is unknown |
//! | `wvo_cost_dollars_total{namespace,va,model}` | counter | cost of the replicas that ran |
//! | `wvo_ttft_p95_seconds`, `wvo_itl_p95_seconds{namespace,va,model}` | gauge | measured p95 latencies |
//! | `wvo_ttft_target_seconds`, `wvo_itl_target_seconds{namespace,va,model}` | gauge | the SLO's targets |
//! | `wvo_within_slo{namespace,va,model}` | gauge | 1/0: the last window met the SLO; absent when unknown |
//! | `wvo_gpus_used{accelerator}`, `wvo_gpus_available{accelerator}` | gauge | GPUs the desired replicas use / the planner may use |
//!
//! docs/controller.md ("Exported metrics") has the full table with units.
//!
//! The `metric` actuation mode lets an HPA/KEDA read `wvo_desired_replicas`, so its series
//! are kept exact: one series per live (VA, variant), removed when the VA (or the variant)
//! goes away, moved when a variant changes accelerator.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use wvo_cycle::conditions::ConditionType;

use crate::view::{AcceleratorView, ModelView};

/// `v`, or 0 when it is not finite.
fn finite_or_zero(v: f64) -> f64 {
    if v.is_finite() {
        v
    } else {
        0.0
    }
}

/// Content type of [`Metrics::encode`]'s output.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of the per-variant replica gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct ReplicaLabels {
    /// Namespace of the VA.
    pub namespace: String,
    /// Name of the VA.
    pub va: String,
    /// Variant name.
    pub variant: String,
    /// Accelerator type of the variant.
    pub accelerator: String,
}

/// Labels of the per-VA wake gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct VaLabels {
    /// Namespace of the VA.
    pub namespace: String,
    /// Name of the VA.
    pub va: String,
}

/// Label of the error counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// Error kind, e.g. `plan`, `actuate`, `collect`, `inventory`.
    pub kind: String,
}

/// Label of the what-if request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabels {
    /// HTTP status code of the answer, e.g. `200`, `413`, `429`.
    pub code: String,
}

/// Labels of the per-model series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct ModelLabels {
    /// Namespace of the VA.
    pub namespace: String,
    /// Name of the VA (`va`, as on the replica series, so the two join `on(namespace, va)`).
    pub va: String,
    /// Served model id.
    pub model: String,
}

/// Label of the per-accelerator series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct AcceleratorLabels {
    /// Accelerator type.
    pub accelerator: String,
}

/// Longest gap between two cycles over which `wvo_cost_dollars_total` integrates the cost,
/// s: a longer one (a leader change, a stall) is not counted, as wvo did not see the
/// replicas meanwhile.
pub const MAX_COST_GAP_SECONDS: f64 = 600.0;

/// The per-model series one VA is exported with, and where its cost integral stands.
#[derive(Clone, Debug)]
struct ModelSeries {
    /// The `model` label its series carry.
    model: String,
    /// When its cost was last counted (UNIX s) and the running replicas' cost then, $/h.
    cost_at: Option<(f64, f64)>,
}

/// A gauge that holds a float.
type FloatGauge = Gauge<f64, AtomicU64>;

/// Replica series of one VA: variant -> accelerator it is exported with.
type VaSeries = BTreeMap<String, String>;

/// The controller's metrics and the registry that encodes them. Cheap to share behind an
/// `Arc`; every method takes `&self`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    cycle_duration: Histogram,
    solve_duration: Histogram,
    cycles: Counter,
    last_cycle: Gauge<f64, AtomicU64>,
    desired: Family<ReplicaLabels, Gauge>,
    current: Family<ReplicaLabels, Gauge>,
    errors: Family<ErrorLabels, Counter>,
    leader: Gauge,
    wake: Family<VaLabels, Gauge<f64, AtomicU64>>,
    whatif_requests: Family<CodeLabels, Counter>,
    whatif_solve: Histogram,
    whatif_longest: Gauge<f64, AtomicU64>,
    variant_cost: Family<ReplicaLabels, FloatGauge>,
    arrival_rate: Family<ModelLabels, FloatGauge>,
    demand: Family<ModelLabels, FloatGauge>,
    capacity: Family<ModelLabels, FloatGauge>,
    satisfaction: Family<ModelLabels, FloatGauge>,
    constrained: Family<ModelLabels, Gauge>,
    metrics_unknown: Family<ModelLabels, Gauge>,
    cost_total: Family<ModelLabels, Counter<f64, AtomicU64>>,
    ttft_p95: Family<ModelLabels, FloatGauge>,
    itl_p95: Family<ModelLabels, FloatGauge>,
    ttft_target: Family<ModelLabels, FloatGauge>,
    itl_target: Family<ModelLabels, FloatGauge>,
    within_slo: Family<ModelLabels, Gauge>,
    gpus_used: Family<AcceleratorLabels, Gauge>,
    gpus_available: Family<AcceleratorLabels, Gauge>,
    /// Which per-model series exist, per (namespace, VA).
    model_series: Mutex<BTreeMap<(String, String), ModelSeries>>,
    /// Which accelerator series exist.
    accelerator_series: Mutex<std::collections::BTreeSet<String>>,
    /// Which replica series exist, per (namespace, VA), so they can be removed exactly.
    series: Mutex<BTreeMap<(String, String), VaSeries>>,
    /// Which wake series exist.
    wake_series: Mutex<std::collections::BTreeSet<VaLabels>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh set of metrics, all registered.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        // 5 ms .. ~82 s.
        let cycle_duration = Histogram::new(exponential_buckets(0.005, 2.0, 15));
        // 1 ms .. ~16 s.
        let solve_duration = Histogram::new(exponential_buckets(0.001, 2.0, 15));
        let cycles = Counter::default();
        let last_cycle = Gauge::<f64, AtomicU64>::default();
        let desired = Family::<ReplicaLabels, Gauge>::default();
        let current = Family::<ReplicaLabels, Gauge>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let leader = Gauge::default();
        let wake = Family::<VaLabels, Gauge<f64, AtomicU64>>::default();
        let whatif_requests = Family::<CodeLabels, Counter>::default();
        // 5 ms .. ~82 s.
        let whatif_solve = Histogram::new(exponential_buckets(0.005, 2.0, 15));
        let whatif_longest = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "wvo_whatif_requests",
            "What-if requests answered, by HTTP status code",
            whatif_requests.clone(),
        );
        registry.register_with_unit(
            "wvo_whatif_solve_duration",
            "Wall time of one what-if solve on its worker thread, cancelled ones included",
            Unit::Seconds,
            whatif_solve.clone(),
        );
        registry.register(
            "wvo_whatif_longest_solve_seconds",
            "The longest what-if solve since start, seconds",
            whatif_longest.clone(),
        );
        registry.register_with_unit(
            "wvo_cycle_duration",
            "Wall time of one control cycle",
            Unit::Seconds,
            cycle_duration.clone(),
        );
        registry.register_with_unit(
            "wvo_solve_duration",
            "Time the optimizer spent solving in one cycle",
            Unit::Seconds,
            solve_duration.clone(),
        );
        registry.register("wvo_cycles", "Control cycles run", cycles.clone());
        registry.register(
            "wvo_last_cycle_timestamp_seconds",
            "Unix time the last control cycle ended",
            last_cycle.clone(),
        );
        registry.register(
            "wvo_desired_replicas",
            "Replicas wvo wants for a variant (after stabilization)",
            desired.clone(),
        );
        registry.register(
            "wvo_current_replicas",
            "Replicas of a variant running now",
            current.clone(),
        );
        registry.register("wvo_errors", "Errors by kind", errors.clone());
        registry.register(
            "wvo_wake_requests",
            "Requests waiting for the model where its replicas do not see them (the gateway's queue, the VA's wake query): its wake signal, for KEDA's activation",
            wake.clone(),
        );
        registry.register(
            "wvo_is_leader",
            "1 while this replica holds the leader lease, else 0",
            leader.clone(),
        );
        let per_hour = || Unit::Other("dollars_per_hour".into());
        let rps = || Unit::Other("requests_per_second".into());
        let variant_cost = Family::<ReplicaLabels, FloatGauge>::default();
        registry.register_with_unit(
            "wvo_cost",
            "Cost of a variant's desired replicas, dollars per hour",
            per_hour(),
            variant_cost.clone(),
        );
        let model_gauge = |registry: &mut Registry, name: &str, help: &str, unit: Option<Unit>| {
            let family = Family::<ModelLabels, FloatGauge>::default();
            match unit {
                Some(unit) => registry.register_with_unit(name, help, unit, family.clone()),
                None => registry.register(name, help, family.clone()),
            }
            family
        };
        let arrival_rate = model_gauge(
            &mut registry,
            "wvo_arrival_rate",
            "Arrival rate the last plan used for a model (observed, or the last known one while its metrics are unknown), requests per second",
            Some(rps()),
        );
        let demand = model_gauge(
            &mut registry,
            "wvo_demand",
            "Demand the last plan serves for a model (the arrival rate with headroom, or the forecast), requests per second",
            Some(rps()),
        );
        let capacity = model_gauge(
            &mut registry,
            "wvo_capacity",
            "Capacity of a model's desired replicas at its SLO, requests per second",
            Some(rps()),
        );
        let satisfaction = model_gauge(
            &mut registry,
            "wvo_satisfaction",
            "Share of a model's demand the plan serves, 0 to 1",
            Some(Unit::Other("ratio".into())),
        );
        let ttft_p95 = model_gauge(
            &mut registry,
            "wvo_ttft_p95",
            "95th-percentile time to first token the model's servers measured over the last window, seconds; absent when not measured",
            Some(Unit::Seconds),
        );
        let itl_p95 = model_gauge(
            &mut registry,
            "wvo_itl_p95",
            "95th-percentile inter-token latency the model's servers measured over the last window, seconds; absent when not measured",
            Some(Unit::Seconds),
        );
        let ttft_target = model_gauge(
            &mut registry,
            "wvo_ttft_target",
            "The model's SLO target for time to first token (a mean, or the SLO's percentile), seconds; absent without an SLO",
            Some(Unit::Seconds),
        );
        let itl_target = model_gauge(
            &mut registry,
            "wvo_itl_target",
            "The model's SLO target for inter-token latency (a mean, or the SLO's percentile), seconds; absent without an SLO",
            Some(Unit::Seconds),
        );
        let constrained = Family::<ModelLabels, Gauge>::default();
        registry.register(
            "wvo_capacity_constrained",
            "1 while the inventory limits what a model gets (CapacityConstrained=True: demand not served, or its minimums lowered), else 0",
            constrained.clone(),
        );
        let metrics_unknown = Family::<ModelLabels, Gauge>::default();
        registry.register(
            "wvo_metrics_unknown",
            "1 while a model's load could not be read (MetricsAvailable=False; the last known load is planned), else 0",
            metrics_unknown.clone(),
        );
        let within_slo = Family::<ModelLabels, Gauge>::default();
        registry.register(
            "wvo_within_slo",
            "1 when the model's measured latencies over the last window met its SLO, 0 when they missed it; absent when the figures cannot tell",
            within_slo.clone(),
        );
        let cost_total = Family::<ModelLabels, Counter<f64, AtomicU64>>::default();
        registry.register_with_unit(
            "wvo_cost",
            "Cost of a model's running replicas (current minus those Pending for a GPU) integrated over time between cycles, dollars",
            Unit::Other("dollars".into()),
            cost_total.clone(),
        );
        let gpus_used = Family::<AcceleratorLabels, Gauge>::default();
        registry.register(
            "wvo_gpus_used",
            "GPUs of an accelerator type the desired replicas use, GPUs",
            gpus_used.clone(),
        );
        let gpus_available = Family::<AcceleratorLabels, Gauge>::default();
        registry.register(
            "wvo_gpus_available",
            "GPUs of an accelerator type available to the planner, GPUs",
            gpus_available.clone(),
        );
        Self {
            registry,
            cycle_duration,
            solve_duration,
            cycles,
            last_cycle,
            desired,
            current,
            errors,
            leader,
            wake,
            whatif_requests,
            whatif_solve,
            whatif_longest,
            variant_cost,
            arrival_rate,
            demand,
            capacity,
            satisfaction,
            constrained,
            metrics_unknown,
            cost_total,
            ttft_p95,
            itl_p95,
            ttft_target,
            itl_target,
            within_slo,
            gpus_used,
            gpus_available,
            model_series: Mutex::new(BTreeMap::new()),
            accelerator_series: Mutex::new(std::collections::BTreeSet::new()),
            series: Mutex::new(BTreeMap::new()),
            wake_series: Mutex::new(std::collections::BTreeSet::new()),
        }
    }

    /// Records one completed cycle: its wall time and the solver's share, in seconds.
    /// Negative or non-finite values are ignored.
    pub fn observe_cycle(&self, duration_s: f64, solve_s: f64) {
        if duration_s.is_finite() && duration_s >= 0.0 {
            self.cycle_duration.observe(duration_s);
        }
        if solve_s.is_finite() && solve_s >= 0.0 {
            self.solve_duration.observe(solve_s);
        }
        self.cycles.inc();
        self.last_cycle.set(crate::reconciler::now_seconds());
    }

    /// Counts one answered what-if request by its HTTP status code.
    pub fn count_whatif(&self, code: u16) {
        self.whatif_requests
            .get_or_create(&CodeLabels {
                code: code.to_string(),
            })
            .inc();
    }

    /// Records the wall time of one what-if solve, seconds (non-finite or negative: ignored).
    pub fn observe_whatif_solve(&self, seconds: f64) {
        if !(seconds.is_finite() && seconds >= 0.0) {
            return;
        }
        self.whatif_solve.observe(seconds);
        if seconds > self.whatif_longest.get() {
            self.whatif_longest.set(seconds);
        }
    }

    /// Control cycles run so far (`wvo_cycles_total`).
    pub fn cycles(&self) -> u64 {
        self.cycles.get()
    }

    /// Sets the desired and current replicas of one variant. When the variant was exported
    /// before with another accelerator, that old series is removed.
    pub fn set_replicas(
        &self,
        namespace: &str,
        va: &str,
        variant: &str,
        accelerator: &str,
        desired: u32,
        current: u32,
    ) {
        let labels = ReplicaLabels {
            namespace: namespace.to_string(),
            va: va.to_string(),
            variant: variant.to_string(),
            accelerator: accelerator.to_string(),
        };
        let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let known = series
            .entry((namespace.to_string(), va.to_string()))
            .or_default();
        if let Some(old) = known.insert(variant.to_string(), accelerator.to_string()) {
            if old != accelerator {
                let stale = ReplicaLabels {
                    accelerator: old,
                    ..labels.clone()
                };
                self.desired.remove(&stale);
                self.current.remove(&stale);
                self.variant_cost.remove(&stale);
            }
        }
        self.desired.get_or_create(&labels).set(i64::from(desired));
        self.current.get_or_create(&labels).set(i64::from(current));
    }

    /// Sets a VA's wake signal, requests (None: not read this cycle, the series is removed).
    pub fn set_wake(&self, namespace: &str, va: &str, requests: Option<f64>) {
        let labels = VaLabels {
            namespace: namespace.to_string(),
            va: va.to_string(),
        };
        let mut known = self.wake_series.lock().unwrap_or_else(|p| p.into_inner());
        match requests.filter(|r| r.is_finite()) {
            Some(r) => {
                self.wake.get_or_create(&labels).set(r.max(0.0));
                known.insert(labels);
            }
            None => {
                self.wake.remove(&labels);
                known.remove(&labels);
            }
        }
    }

    /// Removes every replica series of one variant (a variant dropped from its VA).
    pub fn remove_variant(&self, namespace: &str, va: &str, variant: &str) {
        let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let key = (namespace.to_string(), va.to_string());
        if let Some(known) = series.get_mut(&key) {
            if let Some(accelerator) = known.remove(variant) {
                self.remove_series(namespace, va, variant, accelerator);
            }
            if known.is_empty() {
                series.remove(&key);
            }
        }
    }

    /// Removes every replica series of one VA (a deleted VA).
    pub fn remove_va(&self, namespace: &str, va: &str) {
        self.set_wake(namespace, va, None);
        {
            let mut models = self.model_series.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(known) = models.remove(&(namespace.to_string(), va.to_string())) {
                self.remove_model_series(&ModelLabels {
                    namespace: namespace.to_string(),
                    va: va.to_string(),
                    model: known.model,
                });
            }
        }
        let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(known) = series.remove(&(namespace.to_string(), va.to_string())) {
            for (variant, accelerator) in known {
                self.remove_series(namespace, va, &variant, accelerator);
            }
        }
    }

    /// Removes the replica series of every VA for which `keep(namespace, va)` is false
    /// (call after a cycle with the live VAs to drop the deleted ones).
    pub fn retain_vas(&self, keep: impl Fn(&str, &str) -> bool) {
        {
            let mut models = self.model_series.lock().unwrap_or_else(|p| p.into_inner());
            let gone: Vec<(String, String)> = models
                .keys()
                .filter(|(ns, va)| !keep(ns, va))
                .cloned()
                .collect();
            for (namespace, va) in gone {
                if let Some(known) = models.remove(&(namespace.clone(), va.clone())) {
                    self.remove_model_series(&ModelLabels {
                        namespace,
                        va,
                        model: known.model,
                    });
                }
            }
        }
        {
            let mut known = self.wake_series.lock().unwrap_or_else(|p| p.into_inner());
            let gone: Vec<VaLabels> = known
                .iter()
                .filter(|l| !keep(&l.namespace, &l.va))
                .cloned()
                .collect();
            for labels in gone {
                self.wake.remove(&labels);
                known.remove(&labels);
            }
        }
        let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let gone: Vec<(String, String)> = series
            .keys()
            .filter(|(ns, va)| !keep(ns, va))
            .cloned()
            .collect();
        for key in gone {
            if let Some(known) = series.remove(&key) {
                for (variant, accelerator) in known {
                    self.remove_series(&key.0, &key.1, &variant, accelerator);
                }
            }
        }
    }

    fn remove_series(&self, namespace: &str, va: &str, variant: &str, accelerator: String) {
        let labels = ReplicaLabels {
            namespace: namespace.to_string(),
            va: va.to_string(),
            variant: variant.to_string(),
            accelerator,
        };
        self.desired.remove(&labels);
        self.current.remove(&labels);
        self.variant_cost.remove(&labels);
    }

    /// Sets the per-model, per-variant cost and per-accelerator series from the view a cycle
    /// publishes (`models`: every planned VA; `accelerators`: the whole inventory), at
    /// `now_unix` (s). A model whose id changed moves its series; a variant no longer in its
    /// VA and an accelerator type no longer in the inventory lose theirs. VAs that are gone
    /// are removed by [`Metrics::remove_va`] / [`Metrics::retain_vas`].
    ///
    /// `wvo_cost_dollars_total` grows by the running replicas' cost of the previous call
    /// times the time since it, when that is at most [`MAX_COST_GAP_SECONDS`].
    pub fn set_models(
        &self,
        models: &[ModelView],
        accelerators: &[AcceleratorView],
        now_unix: f64,
    ) {
        for m in models {
            self.set_model(m, now_unix);
        }
        let mut known = self
            .accelerator_series
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let live: std::collections::BTreeSet<String> =
            accelerators.iter().map(|a| a.name.clone()).collect();
        for gone in known.difference(&live) {
            let labels = AcceleratorLabels {
                accelerator: gone.clone(),
            };
            self.gpus_used.remove(&labels);
            self.gpus_available.remove(&labels);
        }
        for a in accelerators {
            let labels = AcceleratorLabels {
                accelerator: a.name.clone(),
            };
            self.gpus_used.get_or_create(&labels).set(i64::from(a.used));
            self.gpus_available
                .get_or_create(&labels)
                .set(i64::from(a.available));
        }
        *known = live;
    }

    fn set_model(&self, m: &ModelView, now_unix: f64) {
        let labels = ModelLabels {
            namespace: m.namespace.clone(),
            va: m.name.clone(),
            model: m.model_id.clone(),
        };
        // Variants no longer in the VA lose their series.
        let stale: Vec<String> = {
            let series = self.series.lock().unwrap_or_else(|p| p.into_inner());
            series
                .get(&(m.namespace.clone(), m.name.clone()))
                .map(|known| {
                    known
                        .keys()
                        .filter(|v| !m.variants.iter().any(|d| &d.name == *v))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default()
        };
        for variant in stale {
            self.remove_variant(&m.namespace, &m.name, &variant);
        }
        let mut running_cost = 0.0;
        let mut capacity = 0.0;
        for d in &m.variants {
            let replica = ReplicaLabels {
                namespace: m.namespace.clone(),
                va: m.name.clone(),
                variant: d.name.clone(),
                accelerator: d.accelerator.clone(),
            };
            self.variant_cost
                .get_or_create(&replica)
                .set(finite_or_zero(d.cost_per_hour));
            running_cost += f64::from(d.current.saturating_sub(d.pending))
                * finite_or_zero(d.price_per_replica);
            capacity += f64::from(d.desired) * finite_or_zero(d.capacity_rps);
        }
        let mut models = self.model_series.lock().unwrap_or_else(|p| p.into_inner());
        let entry = models
            .entry((m.namespace.clone(), m.name.clone()))
            .or_insert_with(|| ModelSeries {
                model: m.model_id.clone(),
                cost_at: None,
            });
        if entry.model != m.model_id {
            self.remove_model_series(&ModelLabels {
                model: std::mem::replace(&mut entry.model, m.model_id.clone()),
                ..labels.clone()
            });
            entry.cost_at = None;
        }
        let cost = self.cost_total.get_or_create(&labels);
        if let Some((at, dollars_per_hour)) = entry.cost_at {
            let elapsed = now_unix - at;
            if elapsed > 0.0 && elapsed <= MAX_COST_GAP_SECONDS {
                cost.inc_by(dollars_per_hour * elapsed / 3600.0);
            }
        }
        entry.cost_at = Some((now_unix, running_cost));
        drop(models);

        let set = |family: &Family<ModelLabels, FloatGauge>, value: Option<f64>| match value
            .filter(|v| v.is_finite())
        {
            Some(v) => {
                family.get_or_create(&labels).set(v);
            }
            None => {
                family.remove(&labels);
            }
        };
        set(&self.arrival_rate, m.arrival_rate);
        set(&self.demand, Some(m.demand_rps));
        set(&self.capacity, Some(capacity));
        set(&self.satisfaction, Some(m.satisfaction));
        let constrained = m
            .conditions
            .iter()
            .any(|c| c.type_ == ConditionType::CapacityConstrained && c.status);
        self.constrained
            .get_or_create(&labels)
            .set(i64::from(constrained));
        self.metrics_unknown
            .get_or_create(&labels)
            .set(i64::from(m.metrics_unknown.is_some()));
        let latency = m.latency.as_ref();
        let seconds = |ms: Option<f64>| ms.map(|v| v / 1000.0);
        set(&self.ttft_p95, seconds(latency.and_then(|l| l.ttft_p95_ms)));
        set(&self.itl_p95, seconds(latency.and_then(|l| l.itl_p95_ms)));
        set(
            &self.ttft_target,
            seconds(latency.and_then(|l| l.ttft_target_ms)),
        );
        set(
            &self.itl_target,
            seconds(latency.and_then(|l| l.itl_target_ms)),
        );
        match latency.and_then(|l| l.within_slo) {
            Some(within) => {
                self.within_slo
                    .get_or_create(&labels)
                    .set(i64::from(within));
            }
            None => {
                self.within_slo.remove(&labels);
            }
        }
    }

    fn remove_model_series(&self, labels: &ModelLabels) {
        for family in [
            &self.arrival_rate,
            &self.demand,
            &self.capacity,
            &self.satisfaction,
            &self.ttft_p95,
            &self.itl_p95,
            &self.ttft_target,
            &self.itl_target,
        ] {
            family.remove(labels);
        }
        self.constrained.remove(labels);
        self.metrics_unknown.remove(labels);
        self.within_slo.remove(labels);
        self.cost_total.remove(labels);
    }

    /// Counts one error of `kind` (a short, bounded word such as `plan`, `actuate`,
    /// `collect`, `inventory`, `status` — never free text, which would explode the series).
    pub fn count_error(&self, kind: &str) {
        self.errors
            .get_or_create(&ErrorLabels {
                kind: kind.to_string(),
            })
            .inc();
    }

    /// Sets `wvo_is_leader` to 1 or 0. A replica that is not leader plans nothing, so it
    /// exports no plan: its per-VA, per-variant and per-accelerator series are removed (the
    /// leader's are the only ones, and sums over both replicas count each model once).
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
        if !leader {
            self.retain_vas(|_, _| false);
            let mut known = self
                .accelerator_series
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            for accelerator in std::mem::take(&mut *known) {
                let labels = AcceleratorLabels { accelerator };
                self.gpus_used.remove(&labels);
                self.gpus_available.remove(&labels);
            }
        }
    }

    /// All metrics in the OpenMetrics text format (ending with `# EOF`), served with
    /// [`OPENMETRICS_CONTENT_TYPE`].
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            // Writing to a String cannot fail; keep the exposition well-formed regardless.
            out.clear();
            out.push_str("# EOF\n");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::{ConditionView, LatencyView, VariantView};
    use wvo_cycle::conditions::Reason;

    #[test]
    fn the_wake_series_is_there_only_while_the_signal_is_read() {
        let m = Metrics::new();
        m.set_wake("ns", "va", Some(3.0));
        m.set_wake("ns", "other", Some(0.0));
        let text = m.encode();
        assert!(
            text.contains(r#"wvo_wake_requests{namespace="ns",va="va"} 3.0"#),
            "{text}"
        );
        assert!(text.contains(r#"wvo_wake_requests{namespace="ns",va="other"} 0.0"#));
        m.set_wake("ns", "va", None);
        assert!(!m.encode().contains(r#"va="va"}"#));
        m.retain_vas(|_, va| va != "other");
        assert!(!m.encode().contains("wvo_wake_requests{"));
    }

    #[test]
    fn series_follow_the_variants() {
        let m = Metrics::new();
        m.set_replicas("ns", "va", "h100", "H100", 3, 2);
        m.set_replicas("ns", "va", "l40s", "L40S", 1, 1);
        let text = m.encode();
        assert!(text.contains(
            r#"wvo_desired_replicas{namespace="ns",va="va",variant="h100",accelerator="H100"} 3"#
        ));
        assert!(text.contains(
            r#"wvo_current_replicas{namespace="ns",va="va",variant="h100",accelerator="H100"} 2"#
        ));
        // A variant that changes accelerator moves its series.
        m.set_replicas("ns", "va", "h100", "H200", 4, 2);
        let text = m.encode();
        assert!(!text.contains(r#"accelerator="H100""#));
        assert!(text.contains(r#"variant="h100",accelerator="H200"} 4"#));
        m.remove_variant("ns", "va", "l40s");
        assert!(!m.encode().contains(r#"variant="l40s""#));
        m.retain_vas(|_, _| false);
        assert!(!m.encode().contains("wvo_desired_replicas{"));
        assert!(m.encode().ends_with("# EOF\n"));
    }

    #[test]
    fn counters_and_leader() {
        let m = Metrics::new();
        m.observe_cycle(0.2, 0.01);
        m.count_error("plan");
        m.count_error("plan");
        m.set_leader(true);
        let text = m.encode();
        assert!(text.contains("wvo_cycles_total 1"));
        assert!(text.contains(r#"wvo_errors_total{kind="plan"} 2"#));
        assert!(text.contains("wvo_is_leader 1"));
        assert!(text.contains("wvo_cycle_duration_seconds_count 1"));
        assert!(text.contains("wvo_solve_duration_seconds_count 1"));
    }

    fn variant(name: &str, accelerator: &str, current: u32, desired: u32) -> VariantView {
        VariantView {
            name: name.into(),
            accelerator: accelerator.into(),
            current,
            ready: current,
            pending: 0,
            planned: desired,
            desired,
            capacity_rps: 10.0,
            cost_per_hour: 4.0 * f64::from(desired),
            price_per_replica: 4.0,
            reason: String::new(),
            may_actuate: true,
            frozen: None,
        }
    }

    fn model(model_id: &str, variants: Vec<VariantView>, constrained: bool) -> ModelView {
        ModelView {
            namespace: "ns".into(),
            name: "va".into(),
            model_id: model_id.into(),
            priority: 0,
            arrival_rate: Some(25.0),
            demand_rps: 30.0,
            satisfaction: if constrained { 0.5 } else { 1.0 },
            metrics_unknown: None,
            variants,
            conditions: vec![ConditionView::new(
                ConditionType::CapacityConstrained,
                constrained,
                if constrained {
                    Reason::NotEnoughGPUs
                } else {
                    Reason::DemandMet
                },
                "",
            )],
            latency: Some(LatencyView {
                ttft_mean_ms: Some(100.0),
                ttft_p95_ms: Some(450.0),
                itl_mean_ms: Some(20.0),
                itl_p95_ms: Some(40.0),
                ttft_target_ms: Some(500.0),
                itl_target_ms: Some(50.0),
                percentile: Some(95.0),
                within_slo: Some(true),
            }),
            actuation: wvo_api::crd::ActuationMode::Scale,
            dry_run: false,
        }
    }

    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.parse().ok())
    }

    const LABELS: &str = r#"{namespace="ns",va="va",model="m"}"#;

    #[test]
    fn model_series_carry_the_view_in_seconds_and_requests_per_second() {
        let m = Metrics::new();
        let h100 = AcceleratorView {
            name: "H100".into(),
            available: 8,
            used: 3,
            cost_per_hour: 4.0,
        };
        m.set_models(
            &[model("m", vec![variant("a", "H100", 2, 3)], true)],
            std::slice::from_ref(&h100),
            1000.0,
        );
        let text = m.encode();
        let at = |name: &str| sample(&text, &format!("{name}{LABELS}"));
        assert_eq!(at("wvo_arrival_rate_requests_per_second"), Some(25.0));
        assert_eq!(at("wvo_demand_requests_per_second"), Some(30.0));
        // Capacity of the desired replicas: 3 x 10 req/s.
        assert_eq!(at("wvo_capacity_requests_per_second"), Some(30.0));
        assert_eq!(at("wvo_satisfaction_ratio"), Some(0.5));
        assert_eq!(at("wvo_capacity_constrained"), Some(1.0));
        assert_eq!(at("wvo_metrics_unknown"), Some(0.0));
        assert_eq!(at("wvo_ttft_p95_seconds"), Some(0.45));
        assert_eq!(at("wvo_itl_p95_seconds"), Some(0.04));
        assert_eq!(at("wvo_ttft_target_seconds"), Some(0.5));
        assert_eq!(at("wvo_itl_target_seconds"), Some(0.05));
        assert_eq!(at("wvo_within_slo"), Some(1.0));
        assert_eq!(at("wvo_cost_dollars_total"), Some(0.0));
        assert_eq!(
            sample(
                &text,
                r#"wvo_cost_dollars_per_hour{namespace="ns",va="va",variant="a",accelerator="H100"}"#
            ),
            Some(12.0)
        );
        assert_eq!(
            sample(&text, r#"wvo_gpus_used{accelerator="H100"}"#),
            Some(3.0)
        );
        assert_eq!(
            sample(&text, r#"wvo_gpus_available{accelerator="H100"}"#),
            Some(8.0)
        );
        assert!(
            text.contains("# UNIT wvo_satisfaction_ratio ratio"),
            "{text}"
        );
        assert!(text.contains("# TYPE wvo_cost_dollars counter"), "{text}");

        // An unknown verdict and an unmeasured p95 remove their series; the rest stays.
        let mut unknown = model("m", vec![variant("a", "H100", 2, 3)], false);
        if let Some(l) = unknown.latency.as_mut() {
            l.within_slo = None;
            l.itl_p95_ms = None;
        }
        unknown.metrics_unknown = Some("no samples".into());
        m.set_models(&[unknown], &[h100], 1030.0);
        let text = m.encode();
        let at = |name: &str| sample(&text, &format!("{name}{LABELS}"));
        assert_eq!(at("wvo_within_slo"), None);
        assert_eq!(at("wvo_itl_p95_seconds"), None);
        assert_eq!(at("wvo_ttft_p95_seconds"), Some(0.45));
        assert_eq!(at("wvo_capacity_constrained"), Some(0.0));
        assert_eq!(at("wvo_metrics_unknown"), Some(1.0));
    }

    #[test]
    fn the_cost_counter_integrates_the_running_replicas_between_cycles() {
        let m = Metrics::new();
        // 2 replicas run at $4/h each: $8/h; desired 3 does not count until it runs.
        let running = |current, pending| {
            let mut v = variant("a", "H100", current, 3);
            v.pending = pending;
            model("m", vec![v], false)
        };
        let cost = |m: &Metrics| sample(&m.encode(), &format!("wvo_cost_dollars_total{LABELS}"));
        m.set_models(&[running(2, 0)], &[], 0.0);
        assert_eq!(cost(&m), Some(0.0));
        // 6 min at $8/h.
        m.set_models(&[running(3, 1)], &[], 360.0);
        assert_eq!(cost(&m), Some(0.8));
        // Then 6 min at 2 running (one Pending for a GPU is not billed).
        m.set_models(&[running(3, 0)], &[], 720.0);
        assert_eq!(cost(&m), Some(1.6));
        // A gap longer than MAX_COST_GAP_SECONDS is not counted.
        m.set_models(&[running(3, 0)], &[], 720.0 + MAX_COST_GAP_SECONDS + 1.0);
        assert_eq!(cost(&m), Some(1.6));
    }

    #[test]
    fn a_replica_that_is_not_leader_exports_no_plan() {
        let m = Metrics::new();
        m.set_leader(true);
        m.set_replicas("ns", "va", "a", "H100", 1, 1);
        m.set_wake("ns", "va", Some(1.0));
        let h100 = AcceleratorView {
            name: "H100".into(),
            available: 8,
            used: 1,
            cost_per_hour: 4.0,
        };
        m.set_models(
            &[model("m", vec![variant("a", "H100", 1, 1)], false)],
            &[h100],
            0.0,
        );
        m.observe_cycle(0.1, 0.01);
        assert!(m.encode().contains(r#"va="va""#));
        m.set_leader(false);
        let text = m.encode();
        assert!(!text.contains(r#"va="va""#), "{text}");
        assert!(!text.contains(r#"accelerator="H100""#), "{text}");
        assert!(text.contains("wvo_is_leader 0"));
        assert!(text.contains("wvo_cycles_total 1"));
    }

    #[test]
    fn model_series_move_with_the_model_id_and_go_with_the_va() {
        let m = Metrics::new();
        let h100 = AcceleratorView {
            name: "H100".into(),
            available: 8,
            used: 0,
            cost_per_hour: 4.0,
        };
        let l40s = AcceleratorView {
            name: "L40S".into(),
            ..h100.clone()
        };
        m.set_replicas("ns", "va", "a", "H100", 1, 1);
        m.set_replicas("ns", "va", "b", "L40S", 1, 1);
        m.set_models(
            &[model(
                "m",
                vec![variant("a", "H100", 1, 1), variant("b", "L40S", 1, 1)],
                false,
            )],
            &[h100.clone(), l40s],
            0.0,
        );
        assert!(m.encode().contains(r#"variant="b""#));
        // The model id changes and variant b leaves the VA; L40S leaves the inventory.
        m.set_models(
            &[model("m2", vec![variant("a", "H100", 1, 1)], false)],
            &[h100],
            10.0,
        );
        let text = m.encode();
        assert!(!text.contains(r#"model="m""#), "{text}");
        assert!(text
            .contains(r#"wvo_demand_requests_per_second{namespace="ns",va="va",model="m2"} 30.0"#));
        assert!(!text.contains(r#"variant="b""#), "{text}");
        assert!(!text.contains(r#"accelerator="L40S""#), "{text}");
        m.remove_va("ns", "va");
        let text = m.encode();
        assert!(!text.contains(r#"va="va""#), "{text}");
        // And retain_vas drops them too.
        m.set_models(&[model("m", vec![], false)], &[], 20.0);
        assert!(m.encode().contains(r#"model="m""#));
        m.retain_vas(|_, _| false);
        assert!(!m.encode().contains(r#"model="m""#));
    }
}
