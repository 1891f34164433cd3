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
    /// How the VA's decisions are applied (`spec.actuation`).
    pub actuation: ActuationMode,
    /// The VA's `spec.dryRun`: decisions are reported, never applied.
    pub dry_run: bool,
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
