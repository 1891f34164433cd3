//! What the controller shows: the state the status API, `/metrics` and the VA status are
//! rendered from. Written by the control loop after each cycle, read by the API.

use crate::cycle::VariantDecision;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::{Arc, RwLock};
use tokio::sync::watch;
use wvo_api::crd::ActuationMode;
use wvo_api::{PlanInput, PlanOutput};

/// Most decisions kept in [`ControllerView::decisions`].
pub const DECISION_HISTORY: usize = 200;

/// One model (VA) as last planned.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelView {
    /// Namespace of the VA.
    pub namespace: String,
    /// Name of the VA.
    pub name: String,
    /// Served model id.
    #[serde(rename = "modelID")]
    pub model_id: String,
    /// Priority tier.
    pub priority: i32,
    /// Arrival rate used by the plan, req/s (None when never observed).
    pub arrival_rate: Option<f64>,
    /// Demand with headroom, req/s.
    pub demand_rps: f64,
    /// Share of demand served (0..1).
    pub satisfaction: f64,
    /// Why metrics are unknown, if they are.
    pub metrics_unknown: Option<String>,
    /// Per variant.
    pub variants: Vec<VariantView>,
    /// Conditions as written to the VA status: (type, status, reason, message).
    pub conditions: Vec<ConditionView>,
    /// Latencies the model's servers measured over the last window, against the SLO (None
    /// when the source reported none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencyView>,
    /// How the VA's decisions are applied (`spec.actuation`).
    pub actuation: ActuationMode,
    /// The VA's `spec.dryRun`: decisions are reported, never applied.
    pub dry_run: bool,
}

/// A model's measured latencies, ms, against its SLO targets.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LatencyView {
    /// Mean time to first token, ms.
    pub ttft_mean_ms: Option<f64>,
    /// 95th-percentile time to first token, ms.
    pub ttft_p95_ms: Option<f64>,
    /// Mean inter-token latency, ms.
    pub itl_mean_ms: Option<f64>,
    /// 95th-percentile inter-token latency, ms.
    pub itl_p95_ms: Option<f64>,
    /// The SLO's TTFT target, ms (None: the model has no SLO).
    pub ttft_target_ms: Option<f64>,
    /// The SLO's ITL target, ms.
    pub itl_target_ms: Option<f64>,
    /// The SLO's percentile, percent (None: the targets are means).
    pub percentile: Option<f64>,
    /// Whether the window met the SLO, where the measured figures can tell: means against
    /// mean targets; the p95 against a percentile target when it bounds it (a p95 within the
    /// targets meets any percentile up to 95; a p95 over them misses any percentile from
    /// 95). None when they cannot tell or a figure is unknown.
    pub within_slo: Option<bool>,
}

impl LatencyView {
    /// The view of `measured` latencies (s) against `slo`; None when nothing was measured.
    pub fn new(
        measured: &crate::loads::MeasuredLatency,
        slo: Option<&wvo_api::Slo>,
    ) -> Option<Self> {
        let ms = |s: Option<f64>| s.filter(|v| v.is_finite()).map(|v| v * 1000.0);
        let (ttft_mean, ttft_p95, itl_mean, itl_p95) = (
            ms(measured.ttft_mean_seconds),
            ms(measured.ttft_p95_seconds),
            ms(measured.itl_mean_seconds),
            ms(measured.itl_p95_seconds),
        );
        if [ttft_mean, ttft_p95, itl_mean, itl_p95]
            .iter()
            .all(Option::is_none)
        {
            return None;
        }
        let within = |ttft: Option<f64>, itl: Option<f64>, s: &wvo_api::Slo| {
            Some(ttft? <= s.ttft_ms && itl? <= s.itl_ms)
        };
        let within_slo = slo.and_then(|s| match s.percentile {
            None => within(ttft_mean, itl_mean, s),
            Some(p) => match within(ttft_p95, itl_p95, s)? {
                true if p <= 95.0 => Some(true),
                false if p >= 95.0 => Some(false),
                _ => None,
            },
        });
        Some(Self {
            ttft_mean_ms: ttft_mean,
            ttft_p95_ms: ttft_p95,
            itl_mean_ms: itl_mean,
            itl_p95_ms: itl_p95,
            ttft_target_ms: slo.map(|s| s.ttft_ms),
            itl_target_ms: slo.map(|s| s.itl_ms),
            percentile: slo.and_then(|s| s.percentile),
            within_slo,
        })
    }
}

/// One variant as last planned: the cycle's own decision (one type for both; it serializes
/// name, accelerator, current, ready, pending, planned, desired, capacityRps, costPerHour and
/// reason).
pub type VariantView = VariantDecision;

/// A condition as the cycle computed it (one type for the cycle, the status API and the VA
/// status, which adds transition time and generation).
pub type ConditionView = wvo_cycle::conditions::Condition;

/// Use of one accelerator type.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AcceleratorView {
    /// Type name.
    pub name: String,
    /// GPUs available to the planner.
    pub available: u32,
    /// GPUs the desired replicas use.
    pub used: u32,
    /// $ per GPU-hour.
    pub cost_per_hour: f64,
}

/// One replica change wvo decided (or would have, in dry-run).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DecisionRecord {
    /// RFC 3339 time.
    pub time: String,
    /// Namespace of the VA.
    pub namespace: String,
    /// Name of the VA.
    pub name: String,
    /// Variant.
    pub variant: String,
    /// Replicas before.
    pub from: u32,
    /// Replicas after.
    pub to: u32,
    /// Why.
    pub reason: String,
    /// False in dry-run or when the workload is not wvo's to change.
    pub actuated: bool,
}

/// Everything the status API serves.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ControllerView {
    /// The last plan (before stabilization).
    pub plan: Option<PlanOutput>,
    /// The input that plan was made from (what-if requests start from it).
    #[serde(skip)]
    pub last_input: Option<PlanInput>,
    /// Per model, in a stable order.
    pub models: Vec<ModelView>,
    /// Per accelerator type.
    pub accelerators: Vec<AcceleratorView>,
    /// Recent decisions, newest last (at most [`DECISION_HISTORY`]).
    pub decisions: VecDeque<DecisionRecord>,
    /// True once a first cycle completed (readiness).
    pub ready: bool,
    /// True while this replica holds the leader lease.
    pub leader: bool,
    /// The last cycle's error, if it failed (the previous plan stays in force).
    pub last_error: Option<String>,
    /// Liveness: when the control loop last did its job (a completed cycle as leader, a
    /// tick as follower), UNIX s; None before the loop started.
    #[serde(skip)]
    pub heartbeat_unix: Option<f64>,
    /// Liveness: how long without a heartbeat makes `/healthz` fail, s (set by the loop:
    /// its interval x [`ControllerView::liveness_cycles`]).
    #[serde(skip)]
    pub liveness_window_seconds: Option<f64>,
    /// Cycle intervals without a completed cycle after which `/healthz` fails (None:
    /// [`DEFAULT_LIVENESS_CYCLES`]); `wvo run --liveness-cycles`.
    #[serde(skip)]
    pub liveness_cycles: Option<u32>,
    /// Why the control loop stopped for good (e.g. the leader election ended): `/healthz`
    /// fails with it.
    #[serde(skip)]
    pub stopped: Option<String>,
    /// Rung after each cycle (and each change of leadership) has updated this view: lets a
    /// reader wait for the next cycle instead of polling (the KEDA scaler's streams).
    #[serde(skip)]
    pub cycle_signal: CycleSignal,
    /// The dashboard's time series: one sample per completed cycle, bounded
    /// ([`crate::history`]); served by `GET /api/v1/history`.
    #[serde(skip)]
    pub history: crate::history::History,
}

/// A counter of view updates that readers can wait on ([`CycleSignal::subscribe`]);
/// clones share the counter.
#[derive(Clone, Debug)]
pub struct CycleSignal(Arc<watch::Sender<u64>>);

impl Default for CycleSignal {
    fn default() -> Self {
        Self(Arc::new(watch::channel(0).0))
    }
}

impl CycleSignal {
    /// Says that the view changed: wakes every receiver from [`CycleSignal::subscribe`].
    pub fn published(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver whose `changed()` completes at the next [`CycleSignal::published`].
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }
}

/// Cycle intervals without a completed cycle after which `/healthz` fails, by default.
pub const DEFAULT_LIVENESS_CYCLES: u32 = 10;

impl ControllerView {
    /// Why the controller is not alive at `now_unix` (s), or None when it is: the loop
    /// stopped, or no cycle completed (no follower tick) within the liveness window.
    pub fn not_alive(&self, now_unix: f64) -> Option<String> {
        if let Some(why) = &self.stopped {
            return Some(why.clone());
        }
        let (Some(beat), Some(window)) = (self.heartbeat_unix, self.liveness_window_seconds) else {
            return None;
        };
        let age = now_unix - beat;
        (age > window).then(|| {
            let last = self
                .last_error
                .as_deref()
                .map_or(String::new(), |e| format!("; last error: {e}"));
            format!(
                "no control cycle completed for {age:.0} s (liveness window {window:.0} s){last}"
            )
        })
    }
}

/// The view shared between the control loop (writer) and the status API (readers).
pub type SharedView = Arc<RwLock<ControllerView>>;

#[cfg(test)]
mod latency_tests {
    use super::LatencyView;
    use crate::loads::MeasuredLatency;

    fn measured(ttft_p95_s: f64, itl_p95_s: f64) -> MeasuredLatency {
        MeasuredLatency {
            ttft_mean_seconds: Some(ttft_p95_s / 2.0),
            ttft_p95_seconds: Some(ttft_p95_s),
            itl_mean_seconds: Some(itl_p95_s / 2.0),
            itl_p95_seconds: Some(itl_p95_s),
        }
    }

    fn slo(percentile: Option<f64>) -> wvo_api::Slo {
        wvo_api::Slo {
            ttft_ms: 500.0,
            itl_ms: 50.0,
            percentile,
        }
    }

    #[test]
    fn within_the_slo_only_where_the_measured_figures_can_tell() {
        let fast = measured(0.4, 0.04);
        let slow = measured(0.8, 0.04);
        let within = |m: &MeasuredLatency, p: Option<f64>| {
            LatencyView::new(m, Some(&slo(p))).and_then(|v| v.within_slo)
        };
        // Means against mean targets (fast's means 200 ms / 20 ms; slow's 400 ms / 20 ms).
        assert_eq!(within(&fast, None), Some(true));
        assert_eq!(within(&slow, None), Some(true));
        // A p95 within the targets meets p90 and p95, says nothing of p99.
        assert_eq!(within(&fast, Some(90.0)), Some(true));
        assert_eq!(within(&fast, Some(95.0)), Some(true));
        assert_eq!(within(&fast, Some(99.0)), None);
        // A p95 over them misses p95 and p99, says nothing of p90.
        assert_eq!(within(&slow, Some(99.0)), Some(false));
        assert_eq!(within(&slow, Some(95.0)), Some(false));
        assert_eq!(within(&slow, Some(90.0)), None);
        // Units: ms; targets carried; no SLO, no verdict.
        let v = LatencyView::new(&fast, None).expect("measured");
        assert_eq!(v.ttft_p95_ms, Some(400.0));
        assert_eq!(v.within_slo, None);
        assert_eq!(v.ttft_target_ms, None);
        // Nothing measured (or NaN): no view.
        let nan = MeasuredLatency {
            ttft_p95_seconds: Some(f64::NAN),
            ..MeasuredLatency::default()
        };
        assert!(LatencyView::new(&nan, Some(&slo(None))).is_none());
    }
}
