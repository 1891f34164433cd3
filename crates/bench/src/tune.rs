//! `--tune-baselines`: the HPA and KEDA targets that match wvo's attainment most cheaply.
//!
//! For `hpa` the target running requests per pod is swept over 1..=256, for `keda` the target
//! waiting requests per pod over 1..=64: first the powers of two, then a bisection between
//! the largest power of two whose attainment reaches the goal and the next one (attainment
//! falls and cost falls as the target grows). Of every setting tried, the cheapest reaching
//! the goal wins (ties: higher attainment, then the larger target); when none reaches it,
//! the one with the best attainment (ties: cheaper). The powers of two run in parallel on
//! the machine's cores; results do not depend on that.

use crate::baselines::{HpaKind, HpaPolicy};
use crate::report::{PolicyReport, Tuning};
use crate::scenario::Scenario;
use crate::sim::{RunResult, Simulation};
use crate::{par_map, BenchError};

/// Highest `hpa` target tried, running requests per pod.
pub const HPA_MAX_TARGET: u32 = 256;
/// Highest `keda` target tried, waiting requests per pod.
pub const KEDA_MAX_TARGET: u32 = 64;

/// One tuned baseline: its report row (named `hpa-tuned` or `keda-tuned`, with `config`
/// and `tuning`) and its run.
#[derive(Clone, Debug)]
pub struct Tuned {
    /// The report row.
    pub report: PolicyReport,
    /// The run of the chosen setting (its `policy` renamed too).
    pub run: RunResult,
}

/// Name of the tuned row, the config key and the highest target of a flavour.
fn describe(kind: HpaKind) -> (&'static str, &'static str, u32) {
    match kind {
        HpaKind::Running => ("hpa-tuned", "targetRunningPerPod", HPA_MAX_TARGET),
        HpaKind::Queue => ("keda-tuned", "targetWaitingPerPod", KEDA_MAX_TARGET),
    }
}

/// The cheapest `kind` target whose attainment reaches `goal` (0..1) on `scenario` with
/// `seed`, or the best attainment when none does, over the flavour's whole range
/// ([`HPA_MAX_TARGET`], [`KEDA_MAX_TARGET`]). See the module docs.
pub fn tune(scenario: &Scenario, kind: HpaKind, goal: f64, seed: u64) -> Result<Tuned, BenchError> {
    tune_up_to(scenario, kind, goal, seed, describe(kind).2)
}

/// [`tune`] over the targets `1..=max` (requests per pod).
pub fn tune_up_to(
    scenario: &Scenario,
    kind: HpaKind,
    goal: f64,
    seed: u64,
    max: u32,
) -> Result<Tuned, BenchError> {
    let (name, key, _) = describe(kind);
    let run_at = |target: &u32| -> Result<(u32, PolicyReport, RunResult), BenchError> {
        let policy = HpaPolicy::with_target(kind, f64::from(*target));
        let run = Simulation::new(scenario, Box::new(policy), seed)?.finish()?;
        Ok((*target, PolicyReport::from_run(scenario, &run), run))
    };
    let powers: Vec<u32> = (0..).map(|k| 1u32 << k).take_while(|&t| t <= max).collect();
    let mut tried = par_map(&powers, run_at)?;
    let reaches = |r: &PolicyReport| r.slo_attainment >= goal;
    // Bisect between the largest reaching power of two and the next one.
    if let Some(lo) = tried
        .iter()
        .filter(|(_, r, _)| reaches(r))
        .map(|(t, _, _)| *t)
        .max()
    {
        let (mut lo, mut hi) = (lo, lo.saturating_mul(2));
        if hi <= max {
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                let r = run_at(&mid)?;
                if reaches(&r.1) {
                    lo = mid;
                } else {
                    hi = mid;
                }
                tried.push(r);
            }
        }
    }
    let order = tried.iter().map(|(t, _, _)| *t).collect();
    let any_reaches = tried.iter().any(|(_, r, _)| reaches(r));
    let best = tried
        .into_iter()
        .filter(|(_, r, _)| !any_reaches || reaches(r))
        .min_by(|a, b| {
            if any_reaches {
                a.1.cost_dollars
                    .total_cmp(&b.1.cost_dollars)
                    .then(b.1.slo_attainment.total_cmp(&a.1.slo_attainment))
                    .then(b.0.cmp(&a.0))
            } else {
                b.1.slo_attainment
                    .total_cmp(&a.1.slo_attainment)
                    .then(a.1.cost_dollars.total_cmp(&b.1.cost_dollars))
                    .then(b.0.cmp(&a.0))
            }
        });
    let Some((target, mut report, mut run)) = best else {
        return Err(BenchError::Policy(format!("{name}: no setting was tried")));
    };
    report.policy = name.to_string();
    run.policy = name.to_string();
    report.config = Some(serde_json::json!({ key: target }));
    report.tuning = Some(Tuning {
        attainment_goal: goal,
        reached: any_reaches,
        tried: order,
    });
    Ok(Tuned { report, run })
}
