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

    /// Sets `wvo_is_leader` to 1 or 0.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
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
}
