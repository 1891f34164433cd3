//! `warmupSeconds` (nothing before it is scored) and `--tune-baselines` (the cheapest HPA or
//! KEDA target reaching a goal).

use wvo_bench::baselines::{HpaKind, HpaPolicy};
use wvo_bench::tune::tune_up_to;
use wvo_bench::{run_policy, run_with_options, RunOptions, Scenario};

mod common;
use common::{Fixed, Flip};

fn small(traffic: &str, duration: f64, warmup: f64, gpus: u32) -> Scenario {
    Scenario::parse(&format!(
        r#"
name: small
durationSeconds: {duration}
warmupSeconds: {warmup}
startupSeconds: 30
timeoutSeconds: 20
inventory: [{{name: L4, count: {gpus}, costPerHour: 0.8}}]
models:
  - name: m
    slo: {{ttftMs: 500, itlMs: 30}}
    variants:
      - {{name: l4, accelerator: L4, kvCacheTokens: 20000, profile: {{alpha: 8, beta: 0.3, gamma: 10, delta: 0.05, maxBatchSize: 32}}}}
    traffic: {traffic}
    tokens: {{input: 200, output: 50}}
"#
    ))
    .expect("test scenario parses")
}

#[test]
fn warm_up_excludes_early_requests_cost_and_actions() {
    let traffic = "{shape: constant, rate: 4}";
    let all = run_policy(&small(traffic, 600.0, 0.0, 4), Box::new(Fixed(2)), 3).unwrap();
    let w = small(traffic, 600.0, 240.0, 4);
    let late = run_policy(&w, Box::new(Fixed(2)), 3).unwrap();
    // Same arrivals; only those from 240 s on (about 60%) are scored.
    let share = late.requests as f64 / all.requests as f64;
    assert!(
        (share - 0.6).abs() < 0.05,
        "{} of {}",
        late.requests,
        all.requests
    );
    assert_eq!(late.ttft_ms.len() as u64 + late.dropped, late.requests);
    assert!(late.buckets[..24].iter().all(|b| *b == (0, 0)));
    assert!(late.buckets[24..].iter().all(|b| b.0 > 0));
    // Two L4s held for 600 s, of which 360 s are scored.
    assert!((all.cost_dollars - 2.0 * 600.0 / 3600.0 * 0.8).abs() < 1e-9);
    assert!((late.cost_dollars - 2.0 * 360.0 / 3600.0 * 0.8).abs() < 1e-9);
    // A policy changing its replicas every 20 s: 10 decisions in 200 s, 6 from 90 s on.
    let flip = || {
        Box::new(Flip {
            period: 20.0,
            low: 1,
            high: 2,
            up: false,
        })
    };
    let a = run_policy(&small(traffic, 200.0, 0.0, 4), flip(), 1).unwrap();
    let b = run_policy(&small(traffic, 200.0, 90.0, 4), flip(), 1).unwrap();
    assert_eq!((a.scaling_actions, b.scaling_actions), (10, 6));
    // The report: simulated and scored time; a load step in the warm-up is not scored.
    let step = "{shape: step, rate: 2, factor: 3, atSeconds: 60}";
    let names = vec!["static".to_string()];
    let (r, _) = run_with_options(
        &small(step, 300.0, 100.0, 4),
        &names,
        1,
        &RunOptions::default(),
    )
    .unwrap();
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["simulatedSeconds"], 300.0);
    assert_eq!(json["scoredSeconds"], 200.0);
    assert!(json["policies"][0]["recoverySeconds"].is_null());
}

#[test]
fn warm_up_must_end_before_the_scenario() {
    for bad in ["-1", "600", "700", ".nan"] {
        let yaml = format!(
            "name: t\ndurationSeconds: 600\nwarmupSeconds: {bad}\ninventory: [{{name: L4, count: 1, costPerHour: 1}}]\nmodels: []\n"
        );
        let e = Scenario::parse(&yaml).unwrap_err().to_string();
        assert!(e.contains("warmupSeconds"), "{bad}: {e}");
    }
}

/// Brute force: the cheapest target in 1..=max whose attainment reaches `goal`.
fn cheapest(s: &Scenario, kind: HpaKind, goal: f64, max: u32) -> (u32, f64) {
    (1..=max)
        .filter_map(|t| {
            let run =
                run_policy(s, Box::new(HpaPolicy::with_target(kind, f64::from(t))), 1).unwrap();
            let p = wvo_bench::PolicyReport::from_run(s, &run);
            (p.slo_attainment >= goal).then_some((t, p.cost_dollars))
        })
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap()
}

#[test]
fn tuning_picks_the_cheapest_target_reaching_the_goal() {
    let s = small(
        "{shape: step, rate: 4, factor: 4, atSeconds: 200}",
        600.0,
        0.0,
        8,
    );
    let names = vec!["wvo".to_string()];
    let (report, runs) = run_with_options(
        &s,
        &names,
        1,
        &RunOptions {
            tune_baselines: true,
            ..RunOptions::default()
        },
    )
    .unwrap();
    let rows: Vec<&str> = report.policies.iter().map(|p| p.policy.as_str()).collect();
    assert_eq!(rows, ["wvo", "hpa-tuned", "keda-tuned"]);
    assert_eq!(runs.len(), 3);
    let goal = report.policies[0].slo_attainment;
    for row in &report.policies[1..] {
        let t = row.tuning.as_ref().unwrap();
        assert_eq!(t.attainment_goal, goal);
        assert!(!t.reached || row.slo_attainment >= goal, "{row:?}");
    }
    let json = serde_json::to_value(&report).unwrap();
    assert!(
        json["policies"][1]["config"]["targetRunningPerPod"].is_u64(),
        "{json}"
    );
    assert!(
        json["policies"][2]["config"]["targetWaitingPerPod"].is_u64(),
        "{json}"
    );
    assert!(json["policies"][0].get("config").is_none());
    // Against a brute force over 1..=16 at a goal the defaults reach.
    for kind in [HpaKind::Running, HpaKind::Queue] {
        let goal = 0.9;
        let tuned = tune_up_to(&s, kind, goal, 1, 16).unwrap();
        let (_, cost) = cheapest(&s, kind, goal, 16);
        assert!(tuned.report.tuning.as_ref().unwrap().reached);
        assert!(tuned.report.slo_attainment >= goal);
        assert_eq!(
            tuned.report.cost_dollars,
            (cost * 100.0).round() / 100.0,
            "{kind:?}"
        );
        // Tries the powers of two, then bisects: far fewer than all 16.
        assert!(tuned.report.tuning.unwrap().tried.len() <= 8);
    }
    // A goal nothing reaches: the best attainment tried, flagged.
    let t = tune_up_to(&s, HpaKind::Running, 1.01, 1, 16).unwrap();
    let tuning = t.report.tuning.unwrap();
    assert!(!tuning.reached);
    assert_eq!(tuning.tried, [1, 2, 4, 8, 16]);
}
