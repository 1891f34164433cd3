//! The JSON report (the contract of `wvo bench --output json`) and its table form.

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::scenario::Scenario;
use crate::sim::{RunResult, BUCKET_SECONDS, RECOVERY_WINDOW_BUCKETS};

/// Attainment a recovery window must reach after a load step (0..1).
pub const RECOVERY_TARGET: f64 = 0.95;

/// The report of one scenario.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Traffic seed.
    pub seed: u64,
    /// Simulated time, s.
    pub simulated_seconds: f64,
    /// Scored time: the simulated time after the scenario's warm-up, s.
    pub scored_seconds: f64,
    /// One entry per policy, in the order asked.
    pub policies: Vec<PolicyReport>,
}

/// What one policy achieved.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyReport {
    /// Policy name.
    pub policy: String,
    /// GPU-hours held by pods holding GPUs (starting + ready + draining), GPU-h.
    pub gpu_hours: f64,
    /// Those GPU-hours at each type's price, $.
    pub cost_dollars: f64,
    /// Share of arrived requests meeting both TTFT and ITL targets (dropped ones miss), 0..1.
    pub slo_attainment: f64,
    /// 99th percentile TTFT of served requests (gateway wait included), ms.
    pub ttft_p99_ms: f64,
    /// 99th percentile of served requests' mean ITL, ms.
    pub itl_p99_ms: f64,
    /// Requests arrived.
    pub requests: u64,
    /// Requests dropped at the gateway.
    pub dropped: u64,
    /// Changes of desired replicas (per variant and decision).
    pub scaling_actions: u64,
    /// Mean time from an upward load step to the first 30 s window whose requests meet the
    /// SLO at [`RECOVERY_TARGET`], s; null when the scenario has no load step.
    pub recovery_seconds: Option<f64>,
    /// Attainment per priority tier (key: the priority).
    pub per_tier: BTreeMap<String, f64>,
    /// The setting a tuned baseline ran with (e.g. `{"targetRunningPerPod": 12}`); absent for
    /// the policies' own defaults.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Value>,
    /// How a tuned baseline's setting was chosen; absent for untuned policies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tuning: Option<Tuning>,
}

/// How `--tune-baselines` chose a baseline's setting.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tuning {
    /// The attainment to reach: wvo's in the same run, 0..1.
    pub attainment_goal: f64,
    /// True when the chosen setting reaches it (the cheapest that does); false: none tried
    /// does, and the chosen one has the best attainment.
    pub reached: bool,
    /// Settings tried (one simulation each), in order.
    pub tried: Vec<u32>,
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// Nearest-rank percentile `q` (0..1) of `xs` (0 when empty).
pub fn percentile(xs: &mut [f64], q: f64) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    xs.sort_by(f64::total_cmp);
    let rank = ((q * xs.len() as f64).ceil() as usize).clamp(1, xs.len());
    xs[rank - 1]
}

/// Recovery after each upward load step of any model: seconds from the step to the start of
/// the first 30 s window (windows start every 10 s, requests counted by arrival time) whose
/// attainment is at least [`RECOVERY_TARGET`]; a step that never recovers before the next
/// step (or the end) counts the whole span. Steps before the warm-up are not scored. Mean
/// over steps; None without steps.
pub fn recovery_seconds(scenario: &Scenario, buckets: &[(u64, u64)]) -> Option<f64> {
    let end = scenario.duration_seconds;
    let mut steps: Vec<f64> = scenario
        .models
        .iter()
        .flat_map(|m| m.traffic.shape.steps(end))
        .filter(|&t| t >= scenario.warmup_seconds)
        .collect();
    steps.sort_by(f64::total_cmp);
    steps.dedup();
    if steps.is_empty() {
        return None;
    }
    let mut total = 0.0;
    for (k, &t) in steps.iter().enumerate() {
        let span_end = steps.get(k + 1).copied().unwrap_or(end);
        let first = (t / BUCKET_SECONDS).ceil() as usize;
        let last = ((span_end / BUCKET_SECONDS).floor() as usize).min(buckets.len());
        let mut rec = span_end - t;
        let mut b = first;
        while b + RECOVERY_WINDOW_BUCKETS <= last {
            let (arrived, met) = buckets[b..b + RECOVERY_WINDOW_BUCKETS]
                .iter()
                .fold((0, 0), |a, x| (a.0 + x.0, a.1 + x.1));
            if arrived == 0 || met as f64 >= RECOVERY_TARGET * arrived as f64 {
                rec = (b as f64 * BUCKET_SECONDS - t).max(0.0);
                break;
            }
            b += 1;
        }
        total += rec;
    }
    Some(round(total / steps.len() as f64, 1))
}

impl PolicyReport {
    /// The report of one run.
    pub fn from_run(scenario: &Scenario, run: &RunResult) -> PolicyReport {
        let mut ttft = run.ttft_ms.clone();
        let mut itl = run.itl_ms.clone();
        let share = |met: u64, n: u64| if n == 0 { 1.0 } else { met as f64 / n as f64 };
        PolicyReport {
            policy: run.policy.clone(),
            gpu_hours: round(run.gpu_hours.iter().sum(), 3),
            cost_dollars: round(run.cost_dollars, 2),
            slo_attainment: round(share(run.met, run.requests), 4),
            ttft_p99_ms: round(percentile(&mut ttft, 0.99), 1),
            itl_p99_ms: round(percentile(&mut itl, 0.99), 2),
            requests: run.requests,
            dropped: run.dropped,
            scaling_actions: run.scaling_actions,
            recovery_seconds: recovery_seconds(scenario, &run.buckets),
            per_tier: run
                .per_tier
                .iter()
                .map(|&(p, n, met)| (p.to_string(), round(share(met, n), 4)))
                .collect(),
            config: None,
            tuning: None,
        }
    }
}

/// A fixed-width table of the report, one row per policy.
pub fn render_table(report: &Report) -> String {
    let mut out = String::new();
    let _ = if report.scored_seconds < report.simulated_seconds {
        writeln!(
            out,
            "scenario {} (seed {}, {} s simulated, the last {} s scored)",
            report.scenario, report.seed, report.simulated_seconds, report.scored_seconds
        )
    } else {
        writeln!(
            out,
            "scenario {} (seed {}, {} s simulated)",
            report.scenario, report.seed, report.simulated_seconds
        )
    };
    let _ = writeln!(
        out,
        "{:<10} {:>9} {:>9} {:>10} {:>10} {:>9} {:>9} {:>8} {:>8} {:>9}  per tier",
        "policy",
        "GPU-h",
        "cost $",
        "attain %",
        "TTFT p99",
        "ITL p99",
        "requests",
        "dropped",
        "actions",
        "recover s"
    );
    for p in &report.policies {
        let tiers: Vec<String> = p
            .per_tier
            .iter()
            .rev()
            .map(|(k, v)| format!("{k}:{:.2}%", v * 100.0))
            .collect();
        let mut extra = String::new();
        if let Some(serde_json::Value::Object(c)) = &p.config {
            for (k, v) in c {
                let _ = write!(extra, "  {k}={v}");
            }
        }
        if let Some(t) = p.tuning.as_ref().filter(|t| !t.reached) {
            let _ = write!(
                extra,
                " (goal {:.2}% not reached)",
                t.attainment_goal * 100.0
            );
        }
        let _ = writeln!(
            out,
            "{:<10} {:>9.2} {:>9.2} {:>10.2} {:>10.0} {:>9.1} {:>9} {:>8} {:>8} {:>9}  {}{}",
            p.policy,
            p.gpu_hours,
            p.cost_dollars,
            p.slo_attainment * 100.0,
            p.ttft_p99_ms,
            p.itl_p99_ms,
            p.requests,
            p.dropped,
            p.scaling_actions,
            p.recovery_seconds
                .map_or_else(|| "-".to_string(), |r| format!("{r:.0}")),
            tiers.join(" "),
            extra
        );
    }
    out
}
