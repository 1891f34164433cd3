//! Invariants over random metric sequences: outputs stay within min/max, the HPA never moves
//! more than its policies allow within one policy period, WVA moves at most one replica, on the
//! cheapest (up) or most expensive (down) eligible variant, and never while a pod is pending.

use proptest::prelude::*;
use wvo_baselines::{
    wva_decide, Hpa, HpaConfig, HpaMetric, MetricSource, PodMetrics, WvaConfig, WvaVariant,
};

#[derive(Clone, Debug)]
struct HpaCase {
    config: HpaConfig,
    source: MetricSource,
    initial: u32,
    /// (time step s, per-pod samples: ready, value; cycled over the pods).
    steps: Vec<(f64, Vec<(bool, f64)>)>,
}

fn hpa_case() -> impl Strategy<Value = HpaCase> {
    let config = (
        1_u32..4,
        0_u32..30,
        prop_oneof![Just(HpaMetric::Running), Just(HpaMetric::Waiting)],
        prop_oneof![Just(0.5), Just(2.0), Just(5.0)],
        prop_oneof![Just(0.0), Just(30.0), Just(300.0)],
        prop_oneof![Just(50.0), Just(100.0)],
        prop_oneof![Just(5.0), Just(15.0)],
        0_u32..6,
    )
        .prop_map(
            |(min, span, metric, target, down_window, down_pct, sync, up_pods)| HpaConfig {
                scale_down_stabilization_seconds: down_window,
                scale_down_percent: down_pct,
                sync_period_seconds: sync,
                scale_up_pods: up_pods,
                ..HpaConfig::with_defaults(metric, target, min, min + span)
            },
        );
    let sample = (
        prop::bool::weighted(0.85),
        prop_oneof![8 => 0.0..60.0_f64, 1 => Just(f64::NAN), 1 => Just(0.0)],
    );
    let step = (
        prop_oneof![Just(5.0), Just(10.0), Just(15.0), Just(30.0)],
        prop::collection::vec(sample, 1..12),
    );
    (
        config,
        prop_oneof![
            Just(MetricSource::Pods),
            Just(MetricSource::ExternalAverageValue)
        ],
        1_u32..40,
        prop::collection::vec(step, 1..60),
    )
        .prop_map(|(config, source, initial, steps)| HpaCase {
            config,
            source,
            initial,
            steps,
        })
}

fn pods_for(replicas: u32, samples: &[(bool, f64)], metric: HpaMetric) -> Vec<PodMetrics> {
    (0..replicas as usize)
        .map(|i| {
            let (ready, value) = samples[i % samples.len()];
            let mut pod = PodMetrics {
                ready,
                kv_usage: 0.5,
                ..PodMetrics::default()
            };
            match metric {
                HpaMetric::Running => pod.running = value,
                HpaMetric::Waiting => pod.waiting = value,
            }
            pod
        })
        .collect()
}

/// Replicas held at time `at` according to the timeline of sync results.
fn held_at(timeline: &[(f64, u32)], at: f64) -> u32 {
    timeline
        .iter()
        .rev()
        .find(|(t, _)| *t <= at)
        .map_or(timeline[0].1, |(_, r)| *r)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn hpa_stays_in_bounds_and_within_its_policies(case in hpa_case()) {
        let c = case.config.clone();
        let mut hpa = Hpa::with_source(c.clone(), case.source);
        let mut current = case.initial;
        let mut now = 0.0;
        // Replicas after each evaluated sync, starting with the initial count "long ago".
        let mut timeline = vec![(f64::NEG_INFINITY, current)];
        for (dt, samples) in &case.steps {
            let due = hpa.next_sync_seconds().is_none_or(|next| now >= next);
            let pods = pods_for(current, samples, c.metric);
            let out = hpa.sync(now, current, &pods);
            if !due {
                prop_assert_eq!(out, current, "a call between syncs changed replicas");
            } else {
                prop_assert!(
                    (c.min_replicas..=c.max_replicas).contains(&out),
                    "{} outside [{}, {}] ({})", out, c.min_replicas, c.max_replicas, hpa.last_reason()
                );
                let in_bounds = (c.min_replicas..=c.max_replicas).contains(&current);
                if in_bounds && out > current {
                    let start = held_at(&timeline, now - c.scale_up_period_seconds);
                    let by_pods = start + c.scale_up_pods;
                    let by_percent = (f64::from(start) * (1.0 + c.scale_up_percent / 100.0)).ceil() as u32;
                    let allowed = by_pods.max(by_percent).max(current);
                    prop_assert!(out <= allowed, "up {} -> {} beyond {} (period start {})", current, out, allowed, start);
                }
                if in_bounds && out < current {
                    let start = held_at(&timeline, now - c.scale_down_period_seconds);
                    let floor = (f64::from(start) * (1.0 - c.scale_down_percent / 100.0)) as u32;
                    let allowed = floor.min(current).max(c.min_replicas);
                    prop_assert!(out >= allowed, "down {} -> {} beyond {} (period start {})", current, out, allowed, start);
                }
                timeline.push((now, out));
            }
            current = out;
            now += dt;
        }
    }
}

#[derive(Clone, Debug)]
struct VariantCase {
    replicas: u32,
    pending: u32,
    min: u32,
    max: u32,
    cost: f64,
    pods: Vec<PodMetrics>,
}

fn variant_case() -> impl Strategy<Value = VariantCase> {
    let pod = (
        prop::bool::weighted(0.9),
        prop_oneof![8 => 0.0..1.0_f64, 1 => Just(0.8), 1 => Just(f64::NAN)],
        prop_oneof![6 => 0.0..8.0_f64, 2 => Just(0.0), 1 => Just(5.0)],
    )
        .prop_map(|(ready, kv_usage, waiting)| PodMetrics {
            ready,
            running: 1.0,
            waiting,
            kv_usage,
        });
    (
        0_u32..8,
        prop_oneof![6 => Just(0_u32), 1 => 1_u32..3],
        0_u32..4,
        0_u32..6,
        1_u32..6,
        prop::collection::vec(pod, 8),
    )
        .prop_map(|(replicas, pending, min, span, cost, pods)| VariantCase {
            replicas,
            pending,
            min,
            max: min + span,
            cost: f64::from(cost),
            pods: pods.into_iter().take(replicas as usize).collect(),
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn wva_moves_one_replica_on_the_right_variant_within_bounds(
        cases in prop::collection::vec(variant_case(), 1..5)
    ) {
        let variants: Vec<WvaVariant<'_>> = cases
            .iter()
            .map(|v| WvaVariant {
                replicas: v.replicas,
                pending: v.pending,
                min_replicas: v.min,
                max_replicas: v.max,
                cost_per_replica_hour: v.cost,
                pods: &v.pods,
            })
            .collect();
        let out = wva_decide(&WvaConfig::default(), &variants);
        prop_assert_eq!(out.len(), cases.len());
        let clamped: Vec<u32> = cases.iter().map(|v| v.replicas.clamp(v.min, v.max)).collect();
        let mut moved = 0;
        for (i, v) in cases.iter().enumerate() {
            prop_assert!((v.min..=v.max).contains(&out[i]), "variant {}: {} outside [{}, {}]", i, out[i], v.min, v.max);
            moved += out[i].abs_diff(clamped[i]);
            if out[i] > clamped[i] {
                // Up: no variant with room is cheaper.
                for (j, w) in cases.iter().enumerate() {
                    if clamped[j] < w.max {
                        prop_assert!(v.cost <= w.cost, "scaled up {} at {} $/h, {} with room costs {}", i, v.cost, j, w.cost);
                    }
                }
            }
            if out[i] < clamped[i] {
                prop_assert!(out[i] >= 1, "WVA never scales a variant below 1");
                for (j, w) in cases.iter().enumerate() {
                    if clamped[j] > w.min.max(1) {
                        prop_assert!(v.cost >= w.cost, "scaled down {} at {} $/h, {} above floor costs {}", i, v.cost, j, w.cost);
                    }
                }
            }
        }
        prop_assert!(moved <= 1, "moved {} replicas in one decision", moved);
        if cases.iter().any(|v| v.pending > 0) {
            prop_assert_eq!(out, clamped, "changed while a pod was pending");
        }
    }
}
