//! llm-d Workload Variant Autoscaler, saturation analyzer V1 (the percentage-based analyzer that
//! was the default before v0.9.0), for one model and all its variants, stateless.
//!
//! Sources (read, not copied): llm-d-workload-variant-autoscaler `docs/saturation-analyzer.md`,
//! `deploy/configmap-saturation-scaling.yaml` (defaults `kvCacheThreshold 0.80`,
//! `queueLengthThreshold 5`, `kvSpareTrigger 0.1`, `queueSpareTrigger 3`) and
//! `internal/saturation/analyzer.go` (`AnalyzeModelSaturation`, `isScaleDownSafe`,
//! `CalculateSaturationTargets`).
//!
//! Followed from WVA:
//! - Only pods that report metrics count (here: `ready` pods with finite samples), across all
//!   variants of the model. A replica is saturated when `kv >= kvCacheThreshold` or
//!   `waiting >= queueLengthThreshold`.
//! - Spare capacity is averaged over non-saturated replicas (`threshold - value`); with none,
//!   the averages are 0, so an all-saturated model scales up.
//! - Scale-up (`avg spare kv < kvSpareTrigger` or `avg spare queue < queueSpareTrigger`) adds 1
//!   replica to the cheapest variant (ties: the first listed, WVA takes the alphabetically first
//!   name); scale-up is checked before scale-down.
//! - Scale-down needs >= 2 non-saturated replicas; the total load of the non-saturated replicas
//!   spread on one replica fewer must leave `spare >= trigger` for both signals (WVA compares with
//!   `>=`); it removes 1 replica from the most expensive variant (ties: the last listed), and never
//!   takes a variant below 1 replica (WVA's floor).
//! - No model-based optimizer, no preserved `desiredReplicas` (the benchmark runs V1 alone).
//!
//! Decided by wvo's DESIGN.md instead:
//! - Any pending pod of the model blocks every change (WVA v0.x skips only the variants that
//!   have pending replicas when it picks the variant to scale up).
//! - Per-variant `min_replicas`/`max_replicas` are respected: a variant at its max is skipped for
//!   a scale-up (the next cheapest gets the replica), one at its min is skipped for a scale-down,
//!   and every result is clamped to its bounds (a variant outside them is brought back).
//! - The base of `+1`/`-1` is the variant's current `replicas` (WVA uses the replicas that
//!   report metrics when all of them do; equal here, because nothing moves while pods pend).

use crate::{invalid, BaselineError, PodMetrics};

/// WVA saturation thresholds and scale-up triggers (the ConfigMap's `default` entry).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WvaConfig {
    /// `kvCacheThreshold`: a replica at or above this KV-cache usage is saturated, 0..1 (0.8).
    pub kv_saturation: f64,
    /// `queueLengthThreshold`: a replica with at least this many waiting requests is
    /// saturated, requests (5).
    pub queue_saturation: f64,
    /// `kvSpareTrigger`: scale up when the average spare KV fraction is below this, 0..1 (0.1).
    pub kv_spare_trigger: f64,
    /// `queueSpareTrigger`: scale up when the average spare queue room is below this,
    /// requests (3).
    pub queue_spare_trigger: f64,
}

impl Default for WvaConfig {
    fn default() -> Self {
        Self {
            kv_saturation: 0.8,
            queue_saturation: 5.0,
            kv_spare_trigger: 0.1,
            queue_spare_trigger: 3.0,
        }
    }
}

impl WvaConfig {
    /// Checks the ranges WVA's ConfigMap validation enforces; names the field and the fix.
    pub fn validate(&self) -> Result<(), BaselineError> {
        if !(self.kv_saturation > 0.0 && self.kv_saturation <= 1.0) {
            return Err(invalid(
                "kv_saturation",
                self.kv_saturation,
                "use a fraction in (0, 1], WVA uses 0.8",
            ));
        }
        if !(self.queue_saturation.is_finite() && self.queue_saturation > 0.0) {
            return Err(invalid(
                "queue_saturation",
                self.queue_saturation,
                "use a finite queue length > 0 requests, WVA uses 5",
            ));
        }
        if !(self.kv_spare_trigger >= 0.0 && self.kv_spare_trigger <= self.kv_saturation) {
            return Err(invalid(
                "kv_spare_trigger",
                self.kv_spare_trigger,
                "use 0..=kv_saturation, WVA uses 0.1",
            ));
        }
        if !(self.queue_spare_trigger >= 0.0 && self.queue_spare_trigger <= self.queue_saturation) {
            return Err(invalid(
                "queue_spare_trigger",
                self.queue_spare_trigger,
                "use 0..=queue_saturation requests, WVA uses 3",
            ));
        }
        Ok(())
    }

    /// Whether a reporting replica is saturated (KV or queue at/above its threshold).
    pub fn is_saturated(&self, pod: &PodMetrics) -> bool {
        pod.kv_usage >= self.kv_saturation || pod.waiting >= self.queue_saturation
    }
}

/// One variant of the model as WVA sees it at decision time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WvaVariant<'a> {
    /// Current spec replicas, replicas.
    pub replicas: u32,
    /// Pods of this variant not yet scheduled/started, pods.
    pub pending: u32,
    /// Lowest replicas allowed, replicas.
    pub min_replicas: u32,
    /// Highest replicas allowed, replicas.
    pub max_replicas: u32,
    /// $/h of one replica
    pub cost_per_replica_hour: f64,
    /// Scraped metrics of this variant's pods.
    pub pods: &'a [PodMetrics],
}

/// Model-wide saturation analysis over all reporting replicas of all variants.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WvaAnalysis {
    /// Ready replicas with finite KV and queue samples, replicas.
    pub reporting_replicas: usize,
    /// Of those, replicas below both saturation thresholds, replicas.
    pub non_saturated_replicas: usize,
    /// Mean of `kv_saturation - kv_usage` over non-saturated replicas (0 if none), 0..1.
    pub avg_spare_kv: f64,
    /// Mean of `queue_saturation - waiting` over non-saturated replicas (0 if none), requests.
    pub avg_spare_queue: f64,
    /// A spare average is below its trigger.
    pub scale_up_needed: bool,
    /// Removing one replica keeps both spares at or above their triggers (needs >= 2
    /// non-saturated replicas).
    pub scale_down_safe: bool,
}

/// What [`wva_decide_explained`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WvaAction {
    /// Nothing to do (or only bounds applied).
    NoChange,
    /// +1 replica on the variant at this index (the cheapest with room).
    ScaleUp {
        /// Index into the variants slice.
        variant: usize,
    },
    /// Scale-up needed but every variant is at its max.
    ScaleUpAtMax,
    /// -1 replica on the variant at this index (the most expensive above its floor).
    ScaleDown {
        /// Index into the variants slice.
        variant: usize,
    },
    /// Some pod of the model is pending: no change.
    BlockedPending,
    /// No ready pod reports metrics: no change.
    NoMetrics,
}

/// Desired replicas per variant (same order as the input) with the analysis behind them.
#[derive(Clone, Debug, PartialEq)]
pub struct WvaDecision {
    /// Desired replicas per variant, replicas.
    pub desired: Vec<u32>,
    /// What was done.
    pub action: WvaAction,
    /// The saturation analysis (absent when blocked before analysing or without metrics).
    pub analysis: Option<WvaAnalysis>,
}

/// WVA's model-wide saturation analysis of the reporting (ready, finite) pods.
/// `None` when no pod reports.
pub fn wva_analyze<'p>(
    config: &WvaConfig,
    pods: impl IntoIterator<Item = &'p PodMetrics>,
) -> Option<WvaAnalysis> {
    let reporting: Vec<&PodMetrics> = pods
        .into_iter()
        .filter(|p| p.ready && p.kv_usage.is_finite() && p.waiting.is_finite())
        .collect();
    if reporting.is_empty() {
        return None;
    }
    let non_saturated: Vec<&PodMetrics> = reporting
        .iter()
        .copied()
        .filter(|p| !config.is_saturated(p))
        .collect();
    let n = non_saturated.len();
    let (avg_spare_kv, avg_spare_queue) = if n == 0 {
        (0.0, 0.0)
    } else {
        let kv: f64 = non_saturated
            .iter()
            .map(|p| config.kv_saturation - p.kv_usage)
            .sum();
        let queue: f64 = non_saturated
            .iter()
            .map(|p| config.queue_saturation - p.waiting)
            .sum();
        (kv / n as f64, queue / n as f64)
    };
    let scale_up_needed =
        avg_spare_kv < config.kv_spare_trigger || avg_spare_queue < config.queue_spare_trigger;
    let scale_down_safe = n >= 2 && {
        let remaining = (n - 1) as f64;
        let kv_load: f64 = non_saturated.iter().map(|p| p.kv_usage).sum();
        let queue_load: f64 = non_saturated.iter().map(|p| p.waiting).sum();
        let spare_kv_after = config.kv_saturation - kv_load / remaining;
        let spare_queue_after = config.queue_saturation - queue_load / remaining;
        spare_kv_after >= config.kv_spare_trigger && spare_queue_after >= config.queue_spare_trigger
    };
    Some(WvaAnalysis {
        reporting_replicas: reporting.len(),
        non_saturated_replicas: n,
        avg_spare_kv,
        avg_spare_queue,
        scale_up_needed,
        scale_down_safe,
    })
}

/// WVA saturation V1 for one model: desired replicas per variant (same order). Stateless.
pub fn wva_decide(config: &WvaConfig, variants: &[WvaVariant<'_>]) -> Vec<u32> {
    wva_decide_explained(config, variants).desired
}

/// [`wva_decide`] with the action taken and the analysis behind it.
pub fn wva_decide_explained(config: &WvaConfig, variants: &[WvaVariant<'_>]) -> WvaDecision {
    let bounds: Vec<(u32, u32)> = variants
        .iter()
        .map(|v| (v.min_replicas, v.max_replicas.max(v.min_replicas)))
        .collect();
    let mut desired: Vec<u32> = variants
        .iter()
        .zip(&bounds)
        .map(|(v, &(lo, hi))| v.replicas.clamp(lo, hi))
        .collect();

    if variants.iter().any(|v| v.pending > 0) {
        return WvaDecision {
            desired,
            action: WvaAction::BlockedPending,
            analysis: None,
        };
    }
    let Some(analysis) = wva_analyze(config, variants.iter().flat_map(|v| v.pods.iter())) else {
        return WvaDecision {
            desired,
            action: WvaAction::NoMetrics,
            analysis: None,
        };
    };

    let action = if analysis.scale_up_needed {
        // Cheapest variant with room; the first listed wins a tie.
        let pick = (0..variants.len())
            .filter(|&i| desired[i] < bounds[i].1)
            .fold(None, |best: Option<usize>, i| match best {
                Some(b)
                    if variants[b].cost_per_replica_hour <= variants[i].cost_per_replica_hour =>
                {
                    Some(b)
                }
                _ => Some(i),
            });
        match pick {
            Some(i) => {
                desired[i] += 1;
                WvaAction::ScaleUp { variant: i }
            }
            None => WvaAction::ScaleUpAtMax,
        }
    } else if analysis.scale_down_safe {
        // Most expensive variant above its floor; the last listed wins a tie.
        let pick = (0..variants.len())
            .filter(|&i| desired[i] > bounds[i].0.max(1))
            .fold(None, |best: Option<usize>, i| match best {
                Some(b)
                    if variants[b].cost_per_replica_hour > variants[i].cost_per_replica_hour =>
                {
                    Some(b)
                }
                _ => Some(i),
            });
        match pick {
            Some(i) => {
                desired[i] -= 1;
                WvaAction::ScaleDown { variant: i }
            }
            None => WvaAction::NoChange,
        }
    } else {
        WvaAction::NoChange
    };
    WvaDecision {
        desired,
        action,
        analysis: Some(analysis),
    }
}
