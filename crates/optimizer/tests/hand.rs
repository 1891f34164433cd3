//! Hand-checked plans. Each case is solved by both algorithms (exact MILP and decomposition),
//! and both must give the answer worked out by hand in the comments.

mod common;

use common::*;
use wvo_api::{PlanInput, PlanOutput, Profile, Slo, SolverChoice};

fn both(input: &PlanInput) -> Vec<PlanOutput> {
    [SolverChoice::Exact, SolverChoice::Fast]
        .into_iter()
        .map(|solver| {
            let mut input = input.clone();
            input.options.solver = solver;
            wvo_optimizer::plan(&input).unwrap_or_else(|e| panic!("{solver:?}: {e}"))
        })
        .collect()
}

#[test]
fn one_variant_rounds_up_to_whole_replicas() {
    // 25 req/s at 10 req/s per replica: 3 replicas, 3 x $4 = $12/h, and that is optimal.
    let input = input(
        vec![acc("H100", 8, 4.0)],
        vec![model("m", vec![var("h100", "H100", 1, 10.0)])],
        &[25.0],
    );
    for plan in both(&input) {
        assert_eq!(replicas(&plan), vec![3]);
        assert!(plan.feasible);
        assert_eq!(plan.total_cost_per_hour, 12.0);
        assert_eq!(plan.lower_bound_cost_per_hour, Some(12.0));
        assert_eq!(plan.models[0].served_rps, 25.0);
        assert_eq!(plan.accelerators[0].used, 3);
    }
}

#[test]
fn cheapest_mix_of_accelerators() {
    // 21 req/s; H100 serves 10 for $4 (0.40 $/req/s), L40S 3 for $1.30 (0.433 $/req/s).
    // Whole replicas change the order: 7 L40S = $9.10 beats 1 H100 + 4 L40S = $9.20,
    // 2 H100 + 1 L40S = $9.30 and 3 H100 = $12.
    let models = vec![model(
        "m",
        vec![var("h100", "H100", 1, 10.0), var("l40s", "L40S", 1, 3.0)],
    )];
    let plenty = input(
        vec![acc("H100", 8, 4.0), acc("L40S", 8, 1.3)],
        models.clone(),
        &[21.0],
    );
    for plan in both(&plenty) {
        assert_eq!(replicas(&plan), vec![0, 7]);
        assert!((plan.total_cost_per_hour - 9.1).abs() < 1e-9);
    }
    // With only 5 L40S the best is 1 H100 + 4 L40S = $9.20.
    let short = input(
        vec![acc("H100", 8, 4.0), acc("L40S", 5, 1.3)],
        models,
        &[21.0],
    );
    for plan in both(&short) {
        assert_eq!(replicas(&plan), vec![1, 4]);
        assert!((plan.total_cost_per_hour - 9.2).abs() < 1e-9);
        assert!(plan.feasible);
    }
}

#[test]
fn equal_cost_goes_to_the_current_allocation() {
    // Two identical variants on two types of the same price: either pair of replicas costs
    // the same, so the plan keeps whichever is running now.
    let models = vec![model(
        "m",
        vec![var("a", "A", 1, 10.0), var("b", "B", 1, 10.0)],
    )];
    let mut on_b = input(vec![acc("A", 4, 2.0), acc("B", 4, 2.0)], models, &[20.0]);
    on_b.current
        .insert("m".into(), [("b".to_string(), 2)].into());
    for plan in both(&on_b) {
        assert_eq!(replicas(&plan), vec![0, 2]);
    }
    let mut on_a = on_b.clone();
    on_a.current
        .insert("m".into(), [("a".to_string(), 2)].into());
    for plan in both(&on_a) {
        assert_eq!(replicas(&plan), vec![2, 0]);
    }
}

#[test]
fn multi_gpu_replicas_count_all_their_gpus() {
    // tp4 replicas on 8 GPUs: at most 2 replicas, whatever the demand.
    let input = input(
        vec![acc("H100", 8, 4.0)],
        vec![model("m", vec![var("tp4", "H100", 4, 5.0)])],
        &[100.0],
    );
    for plan in both(&input) {
        assert_eq!(replicas(&plan), vec![2]);
        assert_eq!(plan.variants[0].gpus, 8);
        assert_eq!(plan.total_cost_per_hour, 32.0);
        assert!(!plan.feasible);
        assert_eq!(plan.lower_bound_cost_per_hour, None);
    }
}

#[test]
fn higher_priority_tier_is_served_first() {
    // 4 GPUs, both models want 3 replicas: the high tier gets its 3, the low tier the last 1.
    let mut high = model("high", vec![var("v", "T", 1, 10.0)]);
    high.priority = 100;
    let low = model("low", vec![var("v", "T", 1, 10.0)]);
    let input = input(vec![acc("T", 4, 1.0)], vec![low, high], &[30.0, 30.0]);
    for plan in both(&input) {
        assert_eq!(replicas(&plan), vec![1, 3]);
        assert_eq!(plan.models[1].satisfaction, 1.0);
        assert!((plan.models[0].satisfaction - 1.0 / 3.0).abs() < 1e-6);
        assert!(!plan.feasible);
        assert_eq!(plan.shortfall.len(), 1);
        assert_eq!(plan.shortfall[0].accelerator, "T");
        assert_eq!(plan.shortfall[0].missing_gpus, 2);
        assert!((plan.shortfall[0].unmet_rps - 20.0).abs() < 1e-6);
    }
}

#[test]
fn weighted_max_min_inside_a_tier() {
    // 6 GPUs, two models of 100 req/s at 10 req/s per replica, weights 1 and 2. The largest t
    // with served_a >= t*100 and served_b >= 2t*100 on 6 replicas is t = 0.2: a=2, b=4.
    let a = model("a", vec![var("v", "T", 1, 10.0)]);
    let mut b = model("b", vec![var("v", "T", 1, 10.0)]);
    b.weight = 2.0;
    let input = input(vec![acc("T", 6, 1.0)], vec![a, b], &[100.0, 100.0]);
    for plan in both(&input) {
        assert_eq!(replicas(&plan), vec![2, 4]);
    }
}

#[test]
fn idle_gpus_go_to_unmet_demand_of_a_lower_tier() {
    // The high tier is capped at 2 replicas; the other 4 GPUs serve the low tier.
    let mut high = model("high", vec![var("v", "T", 1, 10.0)]);
    high.priority = 1;
    high.max_replicas = Some(2);
    let low = model("low", vec![var("v", "T", 1, 10.0)]);
    let input = input(vec![acc("T", 6, 1.0)], vec![high, low], &[100.0, 100.0]);
    for plan in both(&input) {
        assert_eq!(replicas(&plan), vec![2, 4]);
        assert_eq!(plan.accelerators[0].used, 6);
        assert!(plan
            .warnings
            .iter()
            .any(|w| w.contains("\"high\"") && w.contains("maxReplicas bounds")));
    }
}

#[test]
fn satisfaction_is_served_over_demand_not_over_what_the_inventory_holds() {
    // 4 GPUs of one type, 1 req/s per replica, demands 100 and 4. Max-min of served/demand:
    // k replicas for "big" give min(k/100, (4-k)/4), largest at k = 3: 0.03 and 0.25.
    // (Measured against an inventory-capped demand of 4 each, it would be 2 and 2.)
    let big = model("big", vec![var("v", "T", 1, 1.0)]);
    let small = model("small", vec![var("v", "T", 1, 1.0)]);
    let input = input(vec![acc("T", 4, 1.0)], vec![big, small], &[100.0, 4.0]);
    for plan in both(&input) {
        assert_eq!(replicas(&plan), vec![3, 1], "{}", plan.solver);
        assert!((plan.models[0].satisfaction - 0.03).abs() < 1e-9);
        assert!((plan.models[1].satisfaction - 0.25).abs() < 1e-9);
        let warning = plan
            .warnings
            .iter()
            .find(|w| w.contains("\"big\""))
            .expect("a warning names the model whose demand the GPUs cannot serve");
        assert!(warning.contains("GPUs of its types (T)"), "{warning}");
        assert!(!warning.contains("maxReplicas"), "{warning}");
    }
}

#[test]
fn minimums_hold_without_demand_and_maximums_cap_it() {
    let mut m = model("m", vec![var("a", "T", 1, 10.0), var("b", "T", 1, 10.0)]);
    m.variants[1].min_replicas = 2;
    m.variants[0].max_replicas = Some(1);
    let idle = input(vec![acc("T", 8, 1.0)], vec![m.clone()], &[0.0]);
    for plan in both(&idle) {
        assert_eq!(replicas(&plan), vec![0, 2]);
        assert!(plan.feasible);
        assert_eq!(plan.models[0].satisfaction, 1.0);
    }
    let busy = input(vec![acc("T", 8, 1.0)], vec![m], &[45.0]);
    for plan in both(&busy) {
        // 5 replicas cover 45: a is capped at 1, so b takes 4.
        assert_eq!(replicas(&plan), vec![1, 4]);
    }
}

#[test]
fn headroom_raises_the_demand_planned_for() {
    let mut input = input(
        vec![acc("T", 8, 1.0)],
        vec![model("m", vec![var("v", "T", 1, 10.0)])],
        &[20.0],
    );
    input.options.headroom = 0.25;
    for plan in both(&input) {
        assert_eq!(plan.models[0].demand_rps, 25.0);
        assert_eq!(replicas(&plan), vec![3]);
    }
}

#[test]
fn profile_capacity_comes_from_the_perf_model() {
    let profile = Profile {
        alpha: 6.0,
        beta: 0.05,
        gamma: 15.0,
        delta: 0.01,
        max_batch_size: 256,
    };
    let slo = Slo {
        ttft_ms: 500.0,
        itl_ms: 50.0,
        percentile: None,
    };
    let mut v = var("h100", "H100", 1, 1.0);
    v.max_requests_per_second = None;
    v.profile = Some(profile.into());
    let mut m = model("m", vec![v]);
    m.slo = Some(slo);
    let mut input = input(vec![acc("H100", 16, 4.0)], vec![m], &[60.0]);
    let load = input.load.get_mut("m").expect("load");
    load.avg_input_tokens = Some(512.0);
    load.avg_output_tokens = Some(256.0);
    let expected = wvo_perf::replica_capacity(
        &profile,
        &slo,
        &wvo_perf::TokenMix {
            avg_input_tokens: 512.0,
            avg_output_tokens: 256.0,
        },
    )
    .expect("capacity")
    .rps;
    assert!(expected > 1.0);
    for plan in both(&input) {
        assert!((plan.variants[0].capacity_rps - expected).abs() < 1e-5);
        assert_eq!(plan.variants[0].replicas, (60.0 / expected).ceil() as u32);
    }
}

#[test]
fn unreachable_slo_gets_no_replicas_and_says_so() {
    // alpha = 80 ms per token cannot meet a 50 ms ITL target at any load.
    let mut slow = var("slow", "T", 1, 1.0);
    slow.max_requests_per_second = None;
    slow.profile = Some(
        Profile {
            alpha: 80.0,
            beta: 0.1,
            gamma: 10.0,
            delta: 0.01,
            max_batch_size: 64,
        }
        .into(),
    );
    let mut fast = var("fast", "T", 1, 1.0);
    fast.max_requests_per_second = None;
    fast.profile = Some(
        Profile {
            alpha: 6.0,
            beta: 0.05,
            gamma: 15.0,
            delta: 0.01,
            max_batch_size: 256,
        }
        .into(),
    );
    let mut m = model("m", vec![slow, fast]);
    m.slo = Some(Slo {
        ttft_ms: 500.0,
        itl_ms: 50.0,
        percentile: None,
    });
    let mut input = input(vec![acc("T", 16, 1.0)], vec![m], &[10.0]);
    let load = input.load.get_mut("m").expect("load");
    load.avg_input_tokens = Some(512.0);
    load.avg_output_tokens = Some(128.0);
    for plan in both(&input) {
        assert_eq!(plan.variants[0].replicas, 0);
        assert_eq!(plan.variants[0].capacity_rps, 0.0);
        assert!(plan.variants[1].replicas >= 1);
        assert!(plan
            .warnings
            .iter()
            .any(|w| w.contains("\"slow\"") && w.contains("cannot meet the SLO")));
        // The same fact, typed, on the model's plan; its warning is the one above.
        let unreachable = &plan.models[0].slo_unreachable;
        assert_eq!(
            unreachable
                .iter()
                .map(|u| u.variant.as_str())
                .collect::<Vec<_>>(),
            ["slow"]
        );
        assert!(plan.warnings.contains(&unreachable[0].warning("m")));
        assert_eq!(
            (unreachable[0].ttft_ms, unreachable[0].itl_ms),
            (500.0, 50.0)
        );
    }
}

#[test]
fn same_input_same_plan() {
    let input = wvo_optimizer::synthetic::instance(300, 7, 0.9);
    let first = wvo_optimizer::plan(&input).expect("plan");
    for _ in 0..3 {
        let mut again = wvo_optimizer::plan(&input).expect("plan");
        again.solve_millis = first.solve_millis;
        assert_eq!(again, first);
    }
}

#[test]
fn fast_path_bound_is_tight_when_nothing_binds() {
    // Plenty of every GPU: each model's own optimum is the global one, so the bound equals the
    // cost (gap 0) and matches the exact MILP.
    let input = wvo_optimizer::synthetic::instance(8, 3, 50.0);
    let mut exact = input.clone();
    exact.options.solver = SolverChoice::Exact;
    let mut fast = input;
    fast.options.solver = SolverChoice::Fast;
    let exact = wvo_optimizer::plan(&exact).expect("exact");
    let fast = wvo_optimizer::plan(&fast).expect("fast");
    assert_eq!(
        fast.lower_bound_cost_per_hour,
        Some(fast.total_cost_per_hour)
    );
    assert!((fast.total_cost_per_hour - exact.total_cost_per_hour).abs() < 1e-6);
}
