//! Simulator invariants: conservation of requests, a replica's measured capacity against the
//! planner's prediction, seeded reproducibility, and the `wvo` policy running the controller's
//! cycle (a controller option changes the result).

use proptest::prelude::*;
use wvo_api::PlanOptions;
use wvo_bench::policy::{Desired, Policy, View};
use wvo_bench::{policy_by_name, run, run_policy, Scenario, Simulation, Wvo, WvoConfig};

/// One model on L4s with an inline profile: cheap to simulate in debug builds.
fn small(shape: &str, duration: f64, count: u32) -> Scenario {
    let yaml = format!(
        r#"
name: small
durationSeconds: {duration}
startupSeconds: 30
timeoutSeconds: 20
inventory:
  - {{name: L4, count: {count}, costPerHour: 0.8}}
models:
  - name: m
    slo: {{ttftMs: 500, itlMs: 30}}
    variants:
      - name: l4
        accelerator: L4
        kvCacheTokens: 20000
        profile: {{alpha: 8, beta: 0.3, gamma: 10, delta: 0.05, maxBatchSize: 32}}
    traffic: {shape}
    tokens: {{input: 200, output: 50}}
"#
    );
    Scenario::parse(&yaml).expect("test scenario parses")
}

/// A fixed number of replicas of every variant, never changed.
struct Fixed(u32);

impl Policy for Fixed {
    fn name(&self) -> String {
        "fixed".into()
    }
    fn period_seconds(&self) -> f64 {
        f64::INFINITY
    }
    fn initial(&mut self, s: &Scenario) -> Result<Desired, wvo_bench::BenchError> {
        Ok(s.models
            .iter()
            .map(|m| vec![self.0; m.variants.len()])
            .collect())
    }
    fn decide(&mut self, v: &View<'_>) -> Result<Desired, wvo_bench::BenchError> {
        Ok(v.current())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// served + dropped + in flight = arrived, at any time and for every policy; at the end
    /// nothing is left in flight.
    #[test]
    fn requests_are_conserved(
        seed in 0u64..1000,
        policy in prop::sample::select(wvo_bench::POLICIES.to_vec()),
        rate in 1.0f64..30.0,
        factor in 1.0f64..6.0,
        gpus in 1u32..6,
        cut in 20.0f64..280.0,
    ) {
        let shape = format!("{{shape: step, rate: {rate}, factor: {factor}, atSeconds: 100}}");
        let s = small(&shape, 300.0, gpus);
        let mut sim = Simulation::new(&s, policy_by_name(policy).unwrap(), seed).unwrap();
        sim.run_until(cut).unwrap();
        let c = sim.counts();
        prop_assert!(c.arrived > 0);
        prop_assert_eq!(c.served + c.dropped + c.in_flight, c.arrived);
        let r = sim.finish().unwrap();
        prop_assert_eq!(r.ttft_ms.len() as u64 + r.dropped, r.requests);
        prop_assert!(r.met <= r.requests);
    }
}

/// Mean TTFT and token-weighted mean ITL of one replica at `rate` req/s, in the simulator.
fn measure(rate: f64) -> (f64, f64) {
    let s = small(&format!("{{shape: constant, rate: {rate}}}"), 1200.0, 1);
    let r = run_policy(&s, Box::new(Fixed(1)), 7).unwrap();
    let ttft = r.ttft_ms.iter().sum::<f64>() / r.ttft_ms.len() as f64;
    (ttft, r.itl_gap_sum_ms / r.itl_gaps as f64)
}

#[test]
fn a_replicas_measured_capacity_matches_the_planners_within_10_percent() {
    let s = small("{shape: constant, rate: 1}", 60.0, 1);
    let v = &s.models[0].variants[0];
    let slo = s.models[0].slo;
    let predicted = v.capacity_rps;
    assert!(predicted > 1.0, "predicted capacity {predicted} req/s");
    // Bisect the highest rate whose measured means meet the SLO.
    let (mut lo, mut hi) = (0.3 * predicted, 2.0 * predicted);
    for _ in 0..7 {
        let mid = 0.5 * (lo + hi);
        let (ttft, itl) = measure(mid);
        if ttft <= slo.ttft_ms && itl <= slo.itl_ms {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let measured = 0.5 * (lo + hi);
    let err = (measured - predicted).abs() / predicted;
    assert!(
        err <= 0.10,
        "measured {measured:.2} req/s vs predicted {predicted:.2} req/s ({:.1}% off)",
        err * 100.0
    );
}

#[test]
fn seeded_runs_are_reproducible_and_seeds_matter() {
    let s = small(
        "{shape: step, rate: 5, factor: 4, atSeconds: 120}",
        300.0,
        4,
    );
    let names: Vec<String> = ["wvo", "static", "oracle"].map(String::from).to_vec();
    let a = serde_json::to_string(&run(&s, &names, 3).unwrap().0).unwrap();
    let b = serde_json::to_string(&run(&s, &names, 3).unwrap().0).unwrap();
    let c = serde_json::to_string(&run(&s, &names, 4).unwrap().0).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
}

/// The `wvo` policy is the controller's cycle: planner headroom and the stabilization window
/// (controller options) change what the bench measures.
#[test]
fn controller_options_change_the_wvo_result() {
    let cap = small("{shape: constant, rate: 1}", 60.0, 1).models[0].variants[0].capacity_rps;
    let s = small(
        &format!(
            "{{shape: bursty, base: {}, peak: {}, periodSeconds: 400, burstSeconds: 150, firstBurstSeconds: 50}}",
            0.5 * cap,
            3.0 * cap
        ),
        800.0,
        8,
    );
    let with = |config: WvoConfig| run_policy(&s, Box::new(Wvo::new(config)), 1).unwrap();
    let base = with(WvoConfig::default());
    // Headroom on a flat load, where nothing else (bursts, backlog, the start-up horizon) moves
    // the plan: 1.6 replicas' worth at +10 % needs 2, at +100 % 4.
    let flat = small(
        &format!("{{shape: constant, rate: {}}}", 1.6 * cap),
        600.0,
        8,
    );
    let on_flat = |config: WvoConfig| run_policy(&flat, Box::new(Wvo::new(config)), 1).unwrap();
    let flat_base = on_flat(WvoConfig::default());
    let headroom = on_flat(WvoConfig {
        options: PlanOptions {
            headroom: 1.0,
            ..PlanOptions::default()
        },
        ..WvoConfig::default()
    });
    assert!(
        headroom.cost_dollars > flat_base.cost_dollars * 1.4,
        "headroom 1.0 costs {} $, headroom 0 {} $",
        headroom.cost_dollars,
        flat_base.cost_dollars
    );
    let eager = with(WvoConfig {
        stabilization_seconds: 0.0,
        ..WvoConfig::default()
    });
    assert!(
        eager.scaling_actions > base.scaling_actions,
        "no stabilization: {} actions, 300 s: {}",
        eager.scaling_actions,
        base.scaling_actions
    );
    assert!(eager.cost_dollars < base.cost_dollars);
}

/// A constant load between the scale-up threshold of 3 replicas (capacity / 1.1) and the
/// scale-down band (capacity / 1.15): Poisson noise in the 60 s rate window makes the plan
/// flap 3 -> 4 -> 3 without the band; with the controller's default margin it stays up.
#[test]
fn the_scale_down_band_stops_flapping_at_a_replica_boundary() {
    let cap = small("{shape: constant, rate: 1}", 60.0, 1).models[0].variants[0].capacity_rps;
    let s = small(
        &format!("{{shape: constant, rate: {}}}", 3.0 * cap / 1.125),
        3600.0,
        8,
    );
    let with = |margin: f64| {
        run_policy(
            &s,
            Box::new(Wvo::new(WvoConfig {
                scale_down_margin: margin,
                ..WvoConfig::default()
            })),
            1,
        )
        .unwrap()
    };
    let band = with(WvoConfig::default().scale_down_margin);
    let off = with(0.0);
    assert!(
        off.scaling_actions >= 4 && band.scaling_actions * 2 <= off.scaling_actions,
        "band: {} actions, no band: {}",
        band.scaling_actions,
        off.scaling_actions
    );
}

/// What a [`Watcher`] was shown per decision: (time s, load, start-up of variant 0 s).
type Seen = std::rc::Rc<
    std::cell::RefCell<Vec<(f64, Option<wvo_bench::policy::ObservedLoad>, Option<f64>)>>,
>;

/// Records what a policy is shown and keeps `replicas` of every variant (0 at the start).
struct Watcher {
    replicas: u32,
    seen: Seen,
}

impl Policy for Watcher {
    fn name(&self) -> String {
        "watcher".into()
    }
    fn period_seconds(&self) -> f64 {
        15.0
    }
    fn initial(&mut self, s: &Scenario) -> Result<Desired, wvo_bench::BenchError> {
        Ok(s.models.iter().map(|m| vec![0; m.variants.len()]).collect())
    }
    fn decide(&mut self, v: &View<'_>) -> Result<Desired, wvo_bench::BenchError> {
        let m = &v.models[0];
        self.seen
            .borrow_mut()
            .push((v.now, m.load, m.variants[0].startup_seconds));
        Ok(v.scenario
            .models
            .iter()
            .map(|m| vec![self.replicas; m.variants.len()])
            .collect())
    }
}

#[test]
fn policies_see_completions_and_queue_growth_not_the_gateways_arrival_counter() {
    // 10 req/s from t = 0 with no replica until the first decision (15 s), then one replica
    // that starts in 30 s: requests wait at the gateway meanwhile.
    let s = small("{shape: constant, rate: 10}", 400.0, 2);
    let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let watcher = Watcher {
        replicas: 1,
        seen: seen.clone(),
    };
    let mut sim = Simulation::new(&s, Box::new(watcher), 3).unwrap();
    sim.run_until(400.0).unwrap();
    let seen = seen.borrow();
    // Before the replica is ready, nothing completes and no server holds a request: the
    // observed arrival rate is 0, and the waiting requests are the gateway's queue gauge.
    let early: Vec<_> = seen
        .iter()
        .filter(|(t, _, _)| *t > 15.0 && *t <= 45.0)
        .collect();
    assert!(!early.is_empty());
    for (t, load, _) in &early {
        let l = load.expect("two scrapes by then");
        assert_eq!(l.arrival_rate, 0.0, "at {t}: {l:?}");
        assert!(
            l.waiting >= 100.0,
            "at {t}: the gateway holds ~10 req/s: {l:?}"
        );
    }
    // Once serving (and the backlog drained), completions plus in-flight growth read the
    // offered 10 req/s, and the start-up the pod took is visible.
    let late: Vec<_> = seen.iter().filter(|(t, _, _)| *t >= 300.0).collect();
    for (t, load, startup) in &late {
        let l = load.expect("scraped");
        assert!((l.arrival_rate - 10.0).abs() < 3.0, "at {t}: {l:?}");
        assert_eq!(*startup, Some(30.0));
        assert!(l.kv_usage.is_some());
    }
}
