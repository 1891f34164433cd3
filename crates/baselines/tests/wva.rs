//! WVA saturation V1 on hand-made metrics: each test pins one published rule.

use wvo_baselines::{
    wva_analyze, wva_decide, wva_decide_explained, PodMetrics, WvaAction, WvaConfig, WvaVariant,
};

fn pod(kv_usage: f64, waiting: f64) -> PodMetrics {
    PodMetrics {
        ready: true,
        running: 4.0,
        waiting,
        kv_usage,
    }
}

fn variant(replicas: u32, cost: f64, pods: &[PodMetrics]) -> WvaVariant<'_> {
    WvaVariant {
        replicas,
        pending: 0,
        min_replicas: 0,
        max_replicas: 10,
        cost_per_replica_hour: cost,
        pods,
    }
}

#[test]
fn defaults_are_wva_configmap_defaults() {
    let c = WvaConfig::default();
    assert_eq!(
        (
            c.kv_saturation,
            c.queue_saturation,
            c.kv_spare_trigger,
            c.queue_spare_trigger
        ),
        (0.8, 5.0, 0.1, 3.0)
    );
    assert!(c.validate().is_ok());
    let bad = WvaConfig {
        kv_saturation: 1.5,
        ..c
    };
    let message = bad
        .validate()
        .map_err(|e| e.to_string())
        .err()
        .unwrap_or_default();
    assert!(message.contains("kv_saturation"), "{message}");
}

#[test]
fn saturation_is_kv_at_threshold_or_queue_at_threshold() {
    let c = WvaConfig::default();
    assert!(c.is_saturated(&pod(0.8, 0.0)));
    assert!(c.is_saturated(&pod(0.1, 5.0)));
    assert!(!c.is_saturated(&pod(0.79, 4.0)));
}

#[test]
fn scales_up_the_cheapest_variant_when_spare_kv_is_low() {
    let expensive = [pod(0.75, 0.0), pod(0.72, 0.0)];
    let cheap = [pod(0.75, 0.0)];
    // Spare KV (0.05 + 0.08 + 0.05) / 3 = 0.06 < 0.1; queue spare 5 is fine.
    let variants = [variant(2, 10.0, &expensive), variant(1, 4.0, &cheap)];
    let decision = wva_decide_explained(&WvaConfig::default(), &variants);
    assert_eq!(decision.desired, vec![2, 2]);
    assert_eq!(decision.action, WvaAction::ScaleUp { variant: 1 });
    let analysis = decision.analysis.unwrap_or_else(|| panic!("analysed"));
    assert!((analysis.avg_spare_kv - 0.06).abs() < 1e-9);
}

#[test]
fn scales_up_on_the_queue_trigger_alone() {
    // KV nearly idle, but 3 waiting per replica: queue spare 2 < 3.
    let a = [pod(0.2, 3.0), pod(0.2, 3.0)];
    let b = [pod(0.2, 3.0)];
    let variants = [variant(1, 3.0, &b), variant(2, 8.0, &a)];
    assert_eq!(wva_decide(&WvaConfig::default(), &variants), vec![2, 2]);
    // 2 waiting per replica: spare 3 is not below the trigger -> no scale-up.
    let a = [pod(0.2, 2.0), pod(0.2, 2.0)];
    let variants = [variant(2, 8.0, &a)];
    assert_eq!(wva_decide(&WvaConfig::default(), &variants), vec![2]);
}

#[test]
fn all_saturated_counts_as_no_spare() {
    let a = [pod(0.95, 0.0), pod(0.5, 9.0)];
    let decision = wva_decide_explained(&WvaConfig::default(), &[variant(2, 1.0, &a)]);
    assert_eq!(decision.desired, vec![3]);
    let analysis = decision.analysis.unwrap_or_else(|| panic!("analysed"));
    assert_eq!(analysis.non_saturated_replicas, 0);
}

#[test]
fn scales_down_the_most_expensive_variant_when_spare_survives_removal() {
    let a = [pod(0.2, 0.0), pod(0.2, 0.0)];
    let b = [pod(0.2, 0.0), pod(0.2, 0.0)];
    // 4 non-saturated replicas; load 0.8 KV on 3 -> 0.267 each, spare 0.533 >= 0.1.
    let variants = [variant(2, 10.0, &a), variant(2, 4.0, &b)];
    let decision = wva_decide_explained(&WvaConfig::default(), &variants);
    assert_eq!(decision.desired, vec![1, 2]);
    assert_eq!(decision.action, WvaAction::ScaleDown { variant: 0 });
}

#[test]
fn keeps_replicas_when_removal_would_cross_a_trigger() {
    // 2 replicas at 0.36 KV: spare now 0.44 (no scale-up), but 0.72 on one replica leaves
    // 0.08 < 0.1 -> no scale-down.
    let a = [pod(0.36, 0.0), pod(0.36, 0.0)];
    assert_eq!(
        wva_decide(&WvaConfig::default(), &[variant(2, 5.0, &a)]),
        vec![2]
    );
    // Queue: 1 waiting each -> 2 on one replica leaves spare 3 >= 3 (WVA compares with >=): down.
    let a = [pod(0.1, 1.0), pod(0.1, 1.0)];
    assert_eq!(
        wva_decide(&WvaConfig::default(), &[variant(2, 5.0, &a)]),
        vec![1]
    );
    // 1.5 waiting each -> 3 on one replica leaves spare 2 < 3: kept.
    let a = [pod(0.1, 1.5), pod(0.1, 1.5)];
    assert_eq!(
        wva_decide(&WvaConfig::default(), &[variant(2, 5.0, &a)]),
        vec![2]
    );
}

#[test]
fn needs_two_non_saturated_replicas_to_scale_down() {
    // One idle replica and one saturated one: spare fine (no scale-up), but only 1 non-saturated.
    let a = [pod(0.1, 0.0), pod(0.9, 0.0)];
    let decision = wva_decide_explained(&WvaConfig::default(), &[variant(2, 5.0, &a)]);
    assert_eq!(decision.desired, vec![2]);
    assert_eq!(decision.action, WvaAction::NoChange);
}

#[test]
fn nothing_moves_while_any_pod_of_the_model_is_pending() {
    let hot = [pod(0.79, 0.0)];
    let idle = [pod(0.0, 0.0), pod(0.0, 0.0), pod(0.0, 0.0)];
    let mut pending = variant(2, 9.0, &hot);
    pending.pending = 1;
    // The scale-up trigger fires (spare 0.01) but a pod of the other variant is pending.
    let variants = [variant(1, 1.0, &hot), pending];
    let decision = wva_decide_explained(&WvaConfig::default(), &variants);
    assert_eq!(decision.desired, vec![1, 2]);
    assert_eq!(decision.action, WvaAction::BlockedPending);
    // Same for a scale-down.
    let mut pending = variant(3, 9.0, &idle);
    pending.pending = 1;
    assert_eq!(wva_decide(&WvaConfig::default(), &[pending]), vec![3]);
    pending.pending = 0;
    assert_eq!(wva_decide(&WvaConfig::default(), &[pending]), vec![2]);
}

#[test]
fn respects_per_variant_min_and_max() {
    let hot = [pod(0.79, 0.0)];
    let cheap_full = WvaVariant {
        max_replicas: 1,
        ..variant(1, 1.0, &hot)
    };
    let mid = variant(1, 2.0, &hot);
    // The cheapest is at its max: the next cheapest gets the replica.
    assert_eq!(
        wva_decide(&WvaConfig::default(), &[cheap_full, mid]),
        vec![1, 2]
    );
    // Everything at max: no change, reported.
    let mid_full = WvaVariant {
        max_replicas: 1,
        ..mid
    };
    let decision = wva_decide_explained(&WvaConfig::default(), &[cheap_full, mid_full]);
    assert_eq!(decision.desired, vec![1, 1]);
    assert_eq!(decision.action, WvaAction::ScaleUpAtMax);

    let idle = [pod(0.0, 0.0), pod(0.0, 0.0)];
    let expensive_at_min = WvaVariant {
        min_replicas: 2,
        ..variant(2, 9.0, &idle)
    };
    let cheap = variant(2, 1.0, &idle);
    // The most expensive is at its min: the next most expensive loses the replica.
    assert_eq!(
        wva_decide(&WvaConfig::default(), &[expensive_at_min, cheap]),
        vec![2, 1]
    );
    // Replicas outside the bounds are brought back (metrics that ask for nothing).
    let steady = [pod(0.5, 0.0)];
    let below = WvaVariant {
        min_replicas: 3,
        ..variant(1, 1.0, &steady)
    };
    let above = WvaVariant {
        max_replicas: 2,
        ..variant(4, 1.0, &steady)
    };
    assert_eq!(wva_decide(&WvaConfig::default(), &[below]), vec![3]);
    assert_eq!(wva_decide(&WvaConfig::default(), &[above]), vec![2]);
}

#[test]
fn never_scales_a_variant_below_one_replica() {
    // Min 0 everywhere: the idle expensive variant with 1 replica is kept (WVA's floor), the
    // cheaper one with 2 replicas gives one up.
    let one = [pod(0.0, 0.0)];
    let two = [pod(0.0, 0.0), pod(0.0, 0.0)];
    let variants = [variant(1, 9.0, &one), variant(2, 1.0, &two)];
    assert_eq!(wva_decide(&WvaConfig::default(), &variants), vec![1, 1]);
}

#[test]
fn ties_go_to_the_first_listed_up_and_the_last_listed_down() {
    let hot = [pod(0.79, 0.0)];
    assert_eq!(
        wva_decide(
            &WvaConfig::default(),
            &[variant(1, 2.0, &hot), variant(1, 2.0, &hot)]
        ),
        vec![2, 1]
    );
    let idle = [pod(0.0, 0.0), pod(0.0, 0.0)];
    assert_eq!(
        wva_decide(
            &WvaConfig::default(),
            &[variant(2, 2.0, &idle), variant(2, 2.0, &idle)]
        ),
        vec![2, 1]
    );
}

#[test]
fn starting_pods_and_unknown_samples_are_not_evidence() {
    let c = WvaConfig::default();
    // Not-ready pods (kv 0, queue 0 by default) would make the model look idle; they are skipped.
    let mut pods = vec![pod(0.75, 0.0)];
    pods.extend([PodMetrics::default(); 3]);
    pods.push(PodMetrics {
        kv_usage: f64::NAN,
        ..pod(0.0, 0.0)
    });
    let analysis = wva_analyze(&c, &pods).unwrap_or_else(|| panic!("one pod reports"));
    assert_eq!(analysis.reporting_replicas, 1);
    assert_eq!(wva_decide(&c, &[variant(5, 1.0, &pods)]), vec![6]);
    // No reporting pod at all: no change.
    let none = [PodMetrics::default(); 2];
    let decision = wva_decide_explained(&c, &[variant(2, 1.0, &none)]);
    assert_eq!(
        (decision.desired, decision.action),
        (vec![2], WvaAction::NoMetrics)
    );
}
