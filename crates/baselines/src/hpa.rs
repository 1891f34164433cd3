//! Kubernetes HorizontalPodAutoscaler (`autoscaling/v2`) on one per-pod vLLM gauge, as the
//! kube-controller-manager's HPA controller computes it, one sync at a time.
//!
//! Sources (read, not copied):
//! - Kubernetes docs, "Horizontal Pod Autoscaling", sections *Algorithm details* (ratio,
//!   tolerance 0.1, missing metrics count as the target on a scale-down and 0 on a scale-up,
//!   not-yet-ready pods count as 0 on a scale-up, no action if the corrected ratio reverses
//!   direction or falls inside the tolerance) and *Configurable scaling behavior* (policies,
//!   `selectPolicy`, stabilization windows, the default behavior used here):
//!   <https://kubernetes.io/docs/concepts/workloads/autoscaling/horizontal-pod-autoscale/>
//! - The controller, `pkg/controller/podautoscaler/replica_calculator.go`
//!   (`calcPlainMetricReplicas`, `groupPods`: Pending pods are "unready" and ignored on a
//!   scale-down, pods without a sample are "missing"; `GetExternalPerPodMetricReplicas`) and
//!   `horizontal.go` (`reconcileAutoscaler`, `stabilizeRecommendationWithBehaviors`,
//!   `convertDesiredReplicasWithBehaviorRate`, `calculateScaleUpLimitWithScalingRules`: a rate
//!   limit is computed from the replica count at the *start* of the policy period, i.e. the
//!   current count minus the scale events of the last period).
//!
//! Mapping onto [`PodMetrics`]: a pod with `ready == false` is a starting pod and goes to the
//! controller's "unready" group (what `groupPods` does with Pending pods); a ready pod whose
//! sample is NaN, infinite or negative is "missing". Metric values are quantized to milli-units
//! and averaged with integer division, as Kubernetes quantities are, so tolerance edges behave as
//! in the controller. Where the docs write `ceil(currentReplicas * ratio)`, the controller
//! multiplies by the number of pods that reported a sample; the two agree whenever every pod of
//! the target reports, and this module follows the controller.
//!
//! Not modelled: the CPU-only readiness windows (`--horizontal-pod-autoscaler-initial-readiness-
//! delay`, `...-cpu-initialization-period`), several metrics per HPA, KEDA's 0 <-> 1 activation.

use crate::{invalid, BaselineError, PodMetrics};

/// Slack on every time comparison (sync period, stabilization windows, policy periods), s:
/// absorbs the float drift of a simulator's clock, so a sync at 14.999999 s after the previous
/// one is still "the next sync" and an event 15 s old has left a 15 s period.
const TIME_SLACK_SECONDS: f64 = 1e-3;

/// Which per-pod vLLM gauge the HPA averages (`type: Pods` metric, `target.type: AverageValue`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HpaMetric {
    /// `vllm:num_requests_running`, requests per pod.
    Running,
    /// `vllm:num_requests_waiting`, requests per pod.
    Waiting,
}

impl HpaMetric {
    /// The pod's sample of this metric, requests.
    pub fn value(self, pod: &PodMetrics) -> f64 {
        match self {
            HpaMetric::Running => pod.running,
            HpaMetric::Waiting => pod.waiting,
        }
    }

    /// The Prometheus series name vLLM exports for this metric.
    pub fn prometheus_name(self) -> &'static str {
        match self {
            HpaMetric::Running => "vllm:num_requests_running",
            HpaMetric::Waiting => "vllm:num_requests_waiting",
        }
    }
}

/// One HorizontalPodAutoscaler: metric, target, bounds and `spec.behavior`.
///
/// The constructors give the Kubernetes default behavior: scale-up stabilization 0 s with
/// policies max(4 pods, 100 %) per 15 s; scale-down stabilization 300 s with 100 % per 15 s.
#[derive(Clone, Debug, PartialEq)]
pub struct HpaConfig {
    /// Per-pod metric the HPA averages.
    pub metric: HpaMetric,
    /// Target average value per pod (`AverageValue`), requests.
    pub target_average_value: f64,
    /// No scaling while `|1 - ratio| <= tolerance`, dimensionless (Kubernetes default 0.1).
    pub tolerance: f64,
    /// `spec.minReplicas`, replicas.
    pub min_replicas: u32,
    /// `spec.maxReplicas`, replicas.
    pub max_replicas: u32,
    /// `behavior.scaleUp.stabilizationWindowSeconds`: a scale-up uses the lowest
    /// recommendation of this window, s (default 0).
    pub scale_up_stabilization_seconds: f64,
    /// Scale-up `Pods` policy: at most this many pods added per period, replicas (default 4).
    pub scale_up_pods: u32,
    /// Scale-up `Percent` policy: at most this % added per period, % (default 100).
    /// The larger of the two policies applies (`selectPolicy: Max`).
    pub scale_up_percent: f64,
    /// Period of both scale-up policies, s (default 15).
    pub scale_up_period_seconds: f64,
    /// `behavior.scaleDown.stabilizationWindowSeconds`: a scale-down uses the highest
    /// recommendation of this window, s (default 300).
    pub scale_down_stabilization_seconds: f64,
    /// Scale-down `Percent` policy: at most this % removed per period, % (default 100).
    pub scale_down_percent: f64,
    /// Period of the scale-down policy, s (default 15).
    pub scale_down_period_seconds: f64,
    /// Controller sync period (`--horizontal-pod-autoscaler-sync-period`), s (default 15).
    pub sync_period_seconds: f64,
}

impl HpaConfig {
    /// LLMKube/KServe style: running requests, target 2 per pod, HPA v2 defaults.
    pub fn running_requests(min_replicas: u32, max_replicas: u32) -> Self {
        Self::with_defaults(HpaMetric::Running, 2.0, min_replicas, max_replicas)
    }

    /// KEDA on vLLM production-stack: waiting requests, 5 per pod (AverageValue), same HPA
    /// defaults (KEDA's polling interval, 15 s, is the sync period here).
    pub fn keda_queue_depth(min_replicas: u32, max_replicas: u32) -> Self {
        Self::with_defaults(HpaMetric::Waiting, 5.0, min_replicas, max_replicas)
    }

    /// Kubernetes default behavior for any metric and target (target in requests per pod).
    pub fn with_defaults(
        metric: HpaMetric,
        target_average_value: f64,
        min_replicas: u32,
        max_replicas: u32,
    ) -> Self {
        Self {
            metric,
            target_average_value,
            tolerance: 0.1,
            min_replicas,
            max_replicas,
            scale_up_stabilization_seconds: 0.0,
            scale_up_pods: 4,
            scale_up_percent: 100.0,
            scale_up_period_seconds: 15.0,
            scale_down_stabilization_seconds: 300.0,
            scale_down_percent: 100.0,
            scale_down_period_seconds: 15.0,
            sync_period_seconds: 15.0,
        }
    }

    /// Checks what the API server and the controller would reject; names the field and the fix.
    /// [`Hpa`] still runs on an invalid config (it then does not scale on the metric), so call
    /// this where the config is built.
    pub fn validate(&self) -> Result<(), BaselineError> {
        let positive = |v: f64| v.is_finite() && v > 0.0;
        let non_negative = |v: f64| v.is_finite() && v >= 0.0;
        if !positive(self.target_average_value) {
            return Err(invalid(
                "target_average_value",
                self.target_average_value,
                "use a finite per-pod target > 0 requests, e.g. 2 for running requests",
            ));
        }
        if !non_negative(self.tolerance) {
            return Err(invalid(
                "tolerance",
                self.tolerance,
                "use a finite value >= 0, Kubernetes uses 0.1",
            ));
        }
        if self.max_replicas == 0 {
            return Err(invalid(
                "max_replicas",
                self.max_replicas,
                "use at least 1 replica",
            ));
        }
        if self.min_replicas > self.max_replicas {
            return Err(invalid(
                "min_replicas",
                self.min_replicas,
                "must not exceed max_replicas",
            ));
        }
        for (field, value) in [
            (
                "scale_up_stabilization_seconds",
                self.scale_up_stabilization_seconds,
            ),
            (
                "scale_down_stabilization_seconds",
                self.scale_down_stabilization_seconds,
            ),
            ("scale_up_percent", self.scale_up_percent),
        ] {
            if !non_negative(value) {
                return Err(invalid(field, value, "use a finite value >= 0"));
            }
        }
        if !(non_negative(self.scale_down_percent) && self.scale_down_percent <= 100.0) {
            return Err(invalid(
                "scale_down_percent",
                self.scale_down_percent,
                "use 0..=100 %",
            ));
        }
        for (field, value) in [
            ("scale_up_period_seconds", self.scale_up_period_seconds),
            ("scale_down_period_seconds", self.scale_down_period_seconds),
            ("sync_period_seconds", self.sync_period_seconds),
        ] {
            if !positive(value) {
                return Err(invalid(
                    field,
                    value,
                    "use a finite period > 0 s, Kubernetes uses 15",
                ));
            }
        }
        Ok(())
    }

    fn within_tolerance(&self, ratio: f64) -> bool {
        (1.0 - self.tolerance) <= ratio && ratio <= (1.0 + self.tolerance)
    }
}

/// How the metric reaches the HPA controller.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MetricSource {
    /// A `type: Pods` metric (prometheus-adapter custom metric): per-pod samples, with the
    /// controller's missing-metric and not-ready corrections. [`Hpa::new`] uses this.
    #[default]
    Pods,
    /// A `type: External` metric with an `AverageValue` target, which is how KEDA registers its
    /// scalers with the HPA: one summed value, divided by the number of pods of the target
    /// (`status.replicas`, starting pods included), no missing/not-ready corrections.
    /// The desired count is `ceil(sum / target)` outside the tolerance, as with `Pods`; the two
    /// differ only while pods are starting. Opt in with [`Hpa::with_source`].
    ExternalAverageValue,
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Recommendation {
    at_seconds: f64,
    replicas: i64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct ScaleEvent {
    at_seconds: f64,
    /// Replicas added (> 0) or removed (> 0 in the down list), replicas.
    replicas: i64,
}

/// One HPA object and the controller state kept for it: the recommendations of the
/// stabilization windows and the scale events of the rate-limit periods.
#[derive(Clone, Debug)]
pub struct Hpa {
    config: HpaConfig,
    source: MetricSource,
    recommendations: Vec<Recommendation>,
    scale_up_events: Vec<ScaleEvent>,
    scale_down_events: Vec<ScaleEvent>,
    last_sync_seconds: Option<f64>,
    last_reason: String,
}

impl Hpa {
    /// An HPA on a `Pods` metric with no history.
    pub fn new(config: HpaConfig) -> Self {
        Self::with_source(config, MetricSource::Pods)
    }

    /// An HPA whose metric arrives as `source` (e.g. KEDA's External `AverageValue`).
    pub fn with_source(config: HpaConfig, source: MetricSource) -> Self {
        Self {
            config,
            source,
            recommendations: Vec::new(),
            scale_up_events: Vec::new(),
            scale_down_events: Vec::new(),
            last_sync_seconds: None,
            last_reason: String::from("no sync yet"),
        }
    }

    /// The configuration this HPA runs with.
    pub fn config(&self) -> &HpaConfig {
        &self.config
    }

    /// How the metric reaches this HPA.
    pub fn source(&self) -> MetricSource {
        self.source
    }

    /// Why the last evaluated sync chose its result (for logs and bench traces).
    pub fn last_reason(&self) -> &str {
        &self.last_reason
    }

    /// Time of the next sync that will be evaluated, s (`None` before the first sync: any time).
    pub fn next_sync_seconds(&self) -> Option<f64> {
        self.last_sync_seconds
            .map(|last| last + self.config.sync_period_seconds)
    }

    /// One HPA sync at `now_seconds` for a target whose spec.replicas is `current_replicas`,
    /// given its pods' metrics. Returns the new desired replicas (== current when nothing changes).
    ///
    /// The controller evaluates an HPA once per `sync_period_seconds`: a call sooner than that
    /// after the previous evaluated one returns `current_replicas` and changes no state, so the
    /// caller may call every simulation tick. `now_seconds` must not go backwards.
    /// As in the controller, a target at 0 replicas with `min_replicas > 0` has autoscaling
    /// disabled and stays at 0; a target outside `[min, max]` is brought back at once; when no
    /// pod reports the metric nothing changes.
    pub fn sync(&mut self, now_seconds: f64, current_replicas: u32, pods: &[PodMetrics]) -> u32 {
        if let Some(next) = self.next_sync_seconds() {
            if now_seconds < next - TIME_SLACK_SECONDS {
                return current_replicas;
            }
        }
        self.last_sync_seconds = Some(now_seconds);
        let current = i64::from(current_replicas);
        let min = i64::from(self.config.min_replicas);
        let max = i64::from(self.config.max_replicas).max(min);

        let desired = if current == 0 && min != 0 {
            self.last_reason = "scaling disabled: the target has 0 replicas".into();
            0
        } else if current > max {
            self.last_reason = format!("current {current} above max_replicas {max}");
            max
        } else if current < min {
            self.last_reason = format!("current {current} below min_replicas {min}");
            min
        } else {
            let proposal = match self.source {
                MetricSource::Pods => self.pods_proposal(current, pods),
                MetricSource::ExternalAverageValue => self.external_proposal(pods),
            };
            match proposal {
                Ok((proposal, why)) => {
                    let (desired, how) = self.normalize(now_seconds, current, proposal, min, max);
                    self.last_reason = format!("{why}; {how}");
                    desired
                }
                Err(why) => {
                    self.last_reason = why;
                    current
                }
            }
        };
        if desired != current {
            self.record_scale_event(now_seconds, desired - current);
        }
        to_u32(desired)
    }

    /// `calcPlainMetricReplicas`: the metric's replica proposal, or why there is none.
    fn pods_proposal(&self, current: i64, pods: &[PodMetrics]) -> Result<(i64, String), String> {
        let name = self.config.metric.prometheus_name();
        let target = to_milli(self.config.target_average_value);
        if target <= 0 {
            return Err(format!(
                "no scaling: target_average_value {} is not > 0",
                self.config.target_average_value
            ));
        }
        let mut samples: Vec<i64> = Vec::with_capacity(pods.len());
        let (mut missing, mut unready) = (0_i64, 0_i64);
        for pod in pods {
            if !pod.ready {
                unready += 1;
                continue;
            }
            let value = self.config.metric.value(pod);
            if value.is_finite() && value >= 0.0 {
                samples.push(to_milli(value));
            } else {
                missing += 1;
            }
        }
        if samples.is_empty() {
            return Err(format!("no scaling: no ready pod reports {name}"));
        }
        let reported = i64::try_from(samples.len()).unwrap_or(i64::MAX);
        let total: i64 = samples.iter().sum();
        let ratio = (total / reported) as f64 / target as f64;
        let describe = |r: f64, n: i64| {
            format!(
                "{name} avg {:.3} over {n} pods, target {:.3}, ratio {r:.3}",
                r * target as f64 / 1000.0,
                target as f64 / 1000.0
            )
        };

        let scale_up_with_unready = unready > 0 && ratio > 1.0;
        if !scale_up_with_unready && missing == 0 {
            if self.config.within_tolerance(ratio) {
                return Ok((
                    current,
                    format!("{} within tolerance", describe(ratio, reported)),
                ));
            }
            let proposal = ceil_i64(ratio * reported as f64);
            return Ok((
                proposal,
                format!("{} -> {proposal}", describe(ratio, reported)),
            ));
        }

        // Conservative recount: missing pods at the target on a scale-down and at 0 on a
        // scale-up; not-yet-ready pods at 0 on a scale-up (ignored on a scale-down).
        let (mut total, mut count) = (total, reported);
        if missing > 0 {
            if ratio < 1.0 {
                total += target * missing;
                count += missing;
            } else if ratio > 1.0 {
                count += missing;
            }
        }
        if scale_up_with_unready {
            count += unready;
        }
        let new_ratio = (total / count) as f64 / target as f64;
        let note = format!("{missing} missing, {unready} not ready");
        if self.config.within_tolerance(new_ratio)
            || (ratio > 1.0 && new_ratio < 1.0)
            || (ratio < 1.0 && new_ratio > 1.0)
        {
            return Ok((
                current,
                format!(
                    "{} ({note}): within tolerance or direction reversed",
                    describe(new_ratio, count)
                ),
            ));
        }
        let proposal = ceil_i64(new_ratio * count as f64);
        if (new_ratio < 1.0 && proposal > current) || (new_ratio > 1.0 && proposal < current) {
            return Ok((
                current,
                format!(
                    "{} ({note}): pod count reverses direction",
                    describe(new_ratio, count)
                ),
            ));
        }
        Ok((
            proposal,
            format!("{} ({note}) -> {proposal}", describe(new_ratio, count)),
        ))
    }

    /// `GetExternalPerPodMetricReplicas`: KEDA's summed metric against `AverageValue`.
    fn external_proposal(&self, pods: &[PodMetrics]) -> Result<(i64, String), String> {
        let name = self.config.metric.prometheus_name();
        let target = to_milli(self.config.target_average_value);
        if target <= 0 {
            return Err(format!(
                "no scaling: target_average_value {} is not > 0",
                self.config.target_average_value
            ));
        }
        let status_replicas = i64::try_from(pods.len()).unwrap_or(i64::MAX);
        let samples: Vec<i64> = pods
            .iter()
            .filter(|pod| pod.ready)
            .map(|pod| self.config.metric.value(pod))
            .filter(|v| v.is_finite() && *v >= 0.0)
            .map(to_milli)
            .collect();
        if samples.is_empty() {
            return Err(format!("no scaling: no ready pod reports {name}"));
        }
        let usage: i64 = samples.iter().sum();
        let ratio = usage as f64 / (target as f64 * status_replicas as f64);
        let what = format!(
            "sum({name}) {:.3} over {status_replicas} pods, target {:.3}/pod, ratio {ratio:.3}",
            usage as f64 / 1000.0,
            target as f64 / 1000.0
        );
        if self.config.within_tolerance(ratio) {
            Ok((status_replicas, format!("{what} within tolerance")))
        } else {
            let proposal = ceil_i64(usage as f64 / target as f64);
            Ok((proposal, format!("{what} -> {proposal}")))
        }
    }

    /// `normalizeDesiredReplicasWithBehaviors`: stabilization windows, then rate limits and bounds.
    fn normalize(
        &mut self,
        now: f64,
        current: i64,
        proposal: i64,
        min: i64,
        max: i64,
    ) -> (i64, String) {
        let up_cutoff = now - self.config.scale_up_stabilization_seconds;
        let down_cutoff = now - self.config.scale_down_stabilization_seconds;
        let mut up_limit = proposal;
        let mut down_limit = proposal;
        for rec in &self.recommendations {
            if rec.at_seconds > up_cutoff + TIME_SLACK_SECONDS {
                up_limit = up_limit.min(rec.replicas);
            }
            if rec.at_seconds > down_cutoff + TIME_SLACK_SECONDS {
                down_limit = down_limit.max(rec.replicas);
            }
        }
        // Samples older than both windows never count again.
        self.recommendations
            .retain(|rec| !(rec.at_seconds < up_cutoff && rec.at_seconds < down_cutoff));
        self.recommendations.push(Recommendation {
            at_seconds: now,
            replicas: proposal,
        });
        let stabilized = current.max(up_limit).min(down_limit);
        let mut how = if stabilized == proposal {
            String::from("recommendation stable")
        } else if proposal < current {
            format!("scale-down stabilized at {stabilized} (highest recommendation of the window)")
        } else {
            format!("scale-up stabilized at {stabilized} (lowest recommendation of the window)")
        };

        let desired = if stabilized > current {
            let limit = self.scale_up_limit(now, current).max(current);
            let allowed = max.min(limit);
            if stabilized > allowed {
                how.push_str(&format!(
                    "; limited to {allowed} ({})",
                    if allowed == max {
                        "max_replicas"
                    } else {
                        "scale-up policy"
                    }
                ));
            }
            stabilized.min(allowed)
        } else if stabilized < current {
            let limit = self.scale_down_limit(now, current).min(current);
            let allowed = min.max(limit);
            if stabilized < allowed {
                how.push_str(&format!(
                    "; limited to {allowed} ({})",
                    if allowed == min {
                        "min_replicas"
                    } else {
                        "scale-down policy"
                    }
                ));
            }
            stabilized.max(allowed)
        } else {
            stabilized
        };
        (desired, how)
    }

    /// Replicas at the start of a policy period of length `period`, s: the current count
    /// minus what was added plus what was removed since `now - period`.
    fn period_start_replicas(&self, now: f64, current: i64, period: f64) -> i64 {
        let cutoff = now - period + TIME_SLACK_SECONDS;
        let added: i64 = self
            .scale_up_events
            .iter()
            .filter(|e| e.at_seconds > cutoff)
            .map(|e| e.replicas)
            .sum();
        let removed: i64 = self
            .scale_down_events
            .iter()
            .filter(|e| e.at_seconds > cutoff)
            .map(|e| e.replicas)
            .sum();
        current - added + removed
    }

    /// `calculateScaleUpLimitWithScalingRules` with `selectPolicy: Max` over the Pods and Percent
    /// policies.
    fn scale_up_limit(&self, now: f64, current: i64) -> i64 {
        let start = self.period_start_replicas(now, current, self.config.scale_up_period_seconds);
        let by_pods = start.saturating_add(i64::from(self.config.scale_up_pods));
        let by_percent = ceil_i64(start as f64 * (1.0 + self.config.scale_up_percent / 100.0));
        by_pods.max(by_percent)
    }

    /// `calculateScaleDownLimitWithBehaviors` for the single Percent policy (truncated, as the
    /// controller's integer conversion does).
    fn scale_down_limit(&self, now: f64, current: i64) -> i64 {
        let start = self.period_start_replicas(now, current, self.config.scale_down_period_seconds);
        (start as f64 * (1.0 - self.config.scale_down_percent / 100.0)) as i64
    }

    fn record_scale_event(&mut self, now: f64, change: i64) {
        let longest = self
            .config
            .scale_up_period_seconds
            .max(self.config.scale_down_period_seconds);
        let cutoff = now - longest;
        self.scale_up_events.retain(|e| e.at_seconds > cutoff);
        self.scale_down_events.retain(|e| e.at_seconds > cutoff);
        let (list, replicas) = if change > 0 {
            (&mut self.scale_up_events, change)
        } else {
            (&mut self.scale_down_events, -change)
        };
        list.push(ScaleEvent {
            at_seconds: now,
            replicas,
        });
    }
}

/// A metric value as a Kubernetes quantity's milli-value (nearest milli-unit), capped at 10^15
/// milli-units (10^12 requests) so sums over pods cannot overflow.
fn to_milli(value: f64) -> i64 {
    const CAP: f64 = 1e15;
    (value * 1000.0).round().clamp(-CAP, CAP) as i64
}

fn ceil_i64(value: f64) -> i64 {
    value.ceil() as i64
}

fn to_u32(value: i64) -> u32 {
    u32::try_from(value.max(0)).unwrap_or(u32::MAX)
}
