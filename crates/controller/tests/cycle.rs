//! The pure control cycle: scale-up now, scale-down after its window, unknown metrics hold,
//! Pending pods are missing supply, make-before-break, frozen workloads untouched.

use wvo_api::{AcceleratorType, ModelLoad, ModelSpec, PlanOptions, VariantSpec};
use wvo_controller::{run_cycle, CycleState, ModelState, Snapshot, VariantState};

fn acc(name: &str, count: u32, cost: f64) -> AcceleratorType {
    AcceleratorType {
        name: name.into(),
        count,
        cost_per_hour: cost,
    }
}

fn variant(name: &str, accelerator: &str, rps: f64) -> VariantSpec {
    VariantSpec {
        name: name.into(),
        accelerator: accelerator.into(),
        gpus_per_replica: 1,
        min_replicas: 0,
        max_replicas: None,
        max_requests_per_second: Some(rps),
        profile: None,
    }
}

fn load(rate: f64) -> Result<ModelLoad, String> {
    Ok(ModelLoad {
        arrival_rate: rate,
        avg_input_tokens: None,
        avg_output_tokens: None,
    })
}

fn running(n: u32) -> VariantState {
    VariantState {
        replicas: n,
        ready: n,
        pending_unschedulable: 0,
        frozen: None,
    }
}

/// 6 replicas set, 3 of them Pending for lack of a GPU, 3 ready.
fn six_with_three_pending() -> VariantState {
    VariantState {
        replicas: 6,
        ready: 3,
        pending_unschedulable: 3,
        frozen: None,
    }
}

/// One model with an H100 variant (10 req/s, $4) and an L40S variant (3 req/s, $1.30... made
/// dearer per req/s here: $1.50), window 300 s.
fn snapshot(
    now: f64,
    rate: Result<ModelLoad, String>,
    h100: VariantState,
    l40s: VariantState,
) -> Snapshot {
    Snapshot {
        now_seconds: now,
        inventory: vec![acc("H100", 8, 4.0), acc("L40S", 16, 1.5)],
        models: vec![ModelState {
            namespace: "prod".into(),
            name: "llama".into(),
            spec: ModelSpec {
                name: String::new(),
                model_id: Some("meta-llama/Llama-3.1-8B-Instruct".into()),
                priority: 0,
                weight: 1.0,
                slo: None,
                min_replicas: 0,
                max_replicas: None,
                variants: vec![variant("h100", "H100", 10.0), variant("l40s", "L40S", 3.0)],
            },
            variants: vec![h100, l40s],
            stabilization_seconds: 300.0,
            load: rate,
        }],
        options: PlanOptions::default(),
    }
}

fn desired(outcome: &wvo_controller::CycleOutcome) -> Vec<u32> {
    outcome.models[0]
        .variants
        .iter()
        .map(|v| v.desired)
        .collect()
}

#[test]
fn scale_up_acts_in_the_cycle_it_is_decided() {
    let mut state = CycleState::default();
    let out = run_cycle(
        &snapshot(0.0, load(35.0), running(2), running(0)),
        &mut state,
    )
    .expect("cycle");
    // 35 req/s: 3 H100 + 2 L40S cover 36 for $15.00, cheaper than 4 H100 for $16.00.
    assert_eq!(desired(&out), vec![3, 2]);
    assert!(out.models[0].variants[0].reason.contains("scale up 2 -> 3"));
    assert!((out.models[0].variants[0].cost_per_hour - 12.0).abs() < 1e-9);
}

#[test]
fn scale_down_waits_for_its_window() {
    let mut state = CycleState::default();
    run_cycle(
        &snapshot(0.0, load(40.0), running(4), running(0)),
        &mut state,
    )
    .expect("cycle");
    // Load falls to 10 req/s: the plan wants 1 H100, but the window holds 4 for 300 s.
    for t in (15..=300).step_by(15) {
        let out = run_cycle(
            &snapshot(f64::from(t), load(10.0), running(4), running(0)),
            &mut state,
        )
        .expect("cycle");
        assert_eq!(out.models[0].variants[0].planned, 1);
        assert_eq!(desired(&out), vec![4, 0], "t={t}");
    }
    let out = run_cycle(
        &snapshot(315.0, load(10.0), running(4), running(0)),
        &mut state,
    )
    .expect("cycle");
    assert_eq!(desired(&out), vec![1, 0]);
}

#[test]
fn unknown_metrics_hold_the_last_good_plan() {
    let mut state = CycleState::default();
    run_cycle(
        &snapshot(0.0, load(40.0), running(4), running(0)),
        &mut state,
    )
    .expect("cycle");
    for t in 1..40 {
        let out = run_cycle(
            &snapshot(
                f64::from(t) * 15.0,
                Err("Prometheus timed out".into()),
                running(4),
                running(0),
            ),
            &mut state,
        )
        .expect("cycle");
        assert_eq!(desired(&out), vec![4, 0]);
        assert_eq!(
            out.models[0].metrics_unknown.as_deref(),
            Some("Prometheus timed out")
        );
        // The plan used the last known load, not 0.
        assert_eq!(out.models[0].load_used.arrival_rate, 40.0);
    }
}

#[test]
fn pending_pods_are_missing_supply_not_a_freeze() {
    let mut state = CycleState::default();
    run_cycle(
        &snapshot(0.0, load(60.0), running(6), running(0)),
        &mut state,
    )
    .expect("cycle");
    // The plan wanted 6 H100 (60 req/s) but only 3 found a GPU: 3 are Pending. The H100 type is
    // capped at the 3 in use and the rest of the demand moves to L40S now; the pending
    // replicas are dropped at once instead of waiting for the window.
    let h100 = six_with_three_pending();
    let out = run_cycle(&snapshot(15.0, load(60.0), h100, running(0)), &mut state).expect("cycle");
    assert_eq!(out.models[0].variants[0].planned, 3);
    assert_eq!(out.models[0].variants[1].planned, 10); // 30 req/s left at 3 req/s each
    assert_eq!(desired(&out), vec![3, 10]);
    assert!(out.inventory_notes.iter().any(|n| n.starts_with("H100")));
}

#[test]
fn a_shortage_is_remembered_so_pending_pods_do_not_flap() {
    let mut state = CycleState::default();
    run_cycle(
        &snapshot(0.0, load(60.0), running(6), running(0)),
        &mut state,
    )
    .expect("cycle");
    let h100 = six_with_three_pending();
    let out = run_cycle(&snapshot(15.0, load(60.0), h100, running(10)), &mut state).expect("cycle");
    assert_eq!(desired(&out), vec![3, 10]);
    // Next cycle: the Pending pods are gone, so H100 looks free again; it must not be planned
    // back to 6 (they would only go Pending again).
    let out = run_cycle(
        &snapshot(30.0, load(60.0), running(3), running(10)),
        &mut state,
    )
    .expect("cycle");
    assert_eq!(desired(&out), vec![3, 10]);
    assert!(
        out.inventory_notes
            .iter()
            .any(|n| n.starts_with("H100: planning with 3 of 8")),
        "{:?}",
        out.inventory_notes
    );
    // After the memory runs out the planner tries the cheaper type again.
    let later = 15.0 + wvo_controller::cycle::SHORTAGE_MEMORY_SECONDS + 1.0;
    let out = run_cycle(
        &snapshot(later, load(60.0), running(3), running(10)),
        &mut state,
    )
    .expect("cycle");
    assert_eq!(out.models[0].variants[0].planned, 6);
    assert!(out.inventory_notes.is_empty(), "{:?}", out.inventory_notes);
}

#[test]
fn a_changed_inventory_ends_the_shortage_memory() {
    let mut state = CycleState::default();
    let h100 = six_with_three_pending();
    run_cycle(&snapshot(0.0, load(60.0), h100, running(0)), &mut state).expect("cycle");
    // Nodes were added: the count changed, so the planner may use them at once.
    let mut snap = snapshot(15.0, load(60.0), running(3), running(10));
    snap.inventory[0].count = 16;
    let out = run_cycle(&snap, &mut state).expect("cycle");
    assert_eq!(out.models[0].variants[0].planned, 6);
}

#[test]
fn make_before_break_when_moving_between_variants() {
    let mut state = CycleState::default();
    let mut snap = snapshot(0.0, load(30.0), running(3), running(0));
    snap.models[0].stabilization_seconds = 0.0;
    run_cycle(&snap, &mut state).expect("cycle");
    // L40S becomes far cheaper than H100 per req/s.
    let mut snap = snapshot(1.0, load(30.0), running(3), running(0));
    snap.inventory[1].cost_per_hour = 0.5;
    snap.models[0].stabilization_seconds = 0.0;
    let out = run_cycle(&snap, &mut state).expect("cycle");
    // The plan moves everything to L40S (10 x $0.50), but no L40S replica is ready yet: the
    // H100 replicas stay until the new ones serve.
    assert_eq!(out.models[0].variants[1].desired, 10);
    assert_eq!(out.models[0].variants[0].desired, 3);
    assert!(out.models[0].variants[0].reason.contains("held"));
    // Once the L40S replicas are ready, the H100 ones go.
    let mut snap = snapshot(16.0, load(30.0), running(3), running(10));
    snap.inventory[1].cost_per_hour = 0.5;
    snap.models[0].stabilization_seconds = 0.0;
    let out = run_cycle(&snap, &mut state).expect("cycle");
    assert_eq!(desired(&out), vec![0, 10]);
}

#[test]
fn a_new_leader_waits_a_full_window_before_scaling_down() {
    // A fresh CycleState (a new leader) sees 4 replicas and a plan for 1: it keeps the 4 for
    // the window instead of undoing the running allocation at once.
    let mut state = CycleState::default();
    let out = run_cycle(
        &snapshot(1000.0, load(10.0), running(4), running(0)),
        &mut state,
    )
    .expect("cycle");
    assert_eq!(desired(&out), vec![4, 0]);
    let out = run_cycle(
        &snapshot(1301.0, load(10.0), running(4), running(0)),
        &mut state,
    )
    .expect("cycle");
    assert_eq!(desired(&out), vec![1, 0]);
}

#[test]
fn frozen_workloads_are_planned_around_not_touched() {
    let mut state = CycleState::default();
    let frozen = VariantState {
        frozen: Some("scaled by HPA prod/other".into()),
        ..running(2)
    };
    let out = run_cycle(&snapshot(0.0, load(50.0), frozen, running(0)), &mut state).expect("cycle");
    let h100 = &out.models[0].variants[0];
    assert_eq!(h100.desired, 2);
    assert!(!h100.may_actuate);
    assert!(h100.reason.contains("HPA prod/other"));
    // The other 30 req/s go to L40S.
    assert_eq!(out.models[0].variants[1].desired, 10);
}

#[test]
fn a_model_never_observed_with_a_profile_does_not_stop_the_plan() {
    let mut snap = snapshot(0.0, Err("no pod to scrape".into()), running(1), running(0));
    snap.models[0].spec.slo = Some(wvo_api::Slo {
        ttft_ms: 1000.0,
        itl_ms: 50.0,
    });
    snap.models[0].spec.variants[0].max_requests_per_second = None;
    snap.models[0].spec.variants[0].profile =
        Some(wvo_api::ProfileSpec::Inline(wvo_api::Profile {
            alpha: 11.0,
            beta: 0.1,
            gamma: 20.0,
            delta: 0.02,
            max_batch_size: 256,
        }));
    let mut state = CycleState::default();
    let outcome = run_cycle(&snap, &mut state).expect("planned with the default token mix");
    // Unknown load holds what serves now.
    assert_eq!(desired(&outcome), vec![1, 0]);
}

/// Two models on the same 8 H100: `chat` (priority 100) and `batch` (priority 0), 10 req/s
/// per replica, window 300 s.
fn tiers(now: f64, chat_rate: f64, chat: VariantState, batch: VariantState) -> Snapshot {
    let model = |name: &str, priority: i32, state: VariantState, rate: f64| ModelState {
        namespace: "prod".into(),
        name: name.into(),
        spec: ModelSpec {
            name: String::new(),
            model_id: None,
            priority,
            weight: 1.0,
            slo: None,
            min_replicas: 0,
            max_replicas: None,
            variants: vec![variant("h100", "H100", 10.0)],
        },
        variants: vec![state],
        stabilization_seconds: 300.0,
        load: load(rate),
    };
    Snapshot {
        now_seconds: now,
        inventory: vec![acc("H100", 8, 4.0)],
        models: vec![
            model("chat", 100, chat, chat_rate),
            model("batch", 0, batch, 60.0),
        ],
        options: PlanOptions::default(),
    }
}

#[test]
fn a_higher_tier_waiting_for_gpus_reclaims_them_without_the_window() {
    let mut state = CycleState::default();
    let out = run_cycle(&tiers(0.0, 20.0, running(2), running(6)), &mut state).expect("cycle");
    assert_eq!(out.models[0].variants[0].desired, 2);
    assert_eq!(out.models[1].variants[0].desired, 6);
    // chat doubles: the plan gives it 4 of the 8 H100 and batch 4. batch's scale-down is not
    // stabilized (chat would wait 300 s for its GPUs) nor held by make-before-break.
    let out = run_cycle(&tiers(15.0, 40.0, running(2), running(6)), &mut state).expect("cycle");
    assert_eq!(out.models[0].variants[0].desired, 4);
    let batch = &out.models[1].variants[0];
    assert_eq!(batch.desired, 4, "{}", batch.reason);
    assert!(
        batch.reason.contains("priority 100 waits for H100"),
        "{}",
        batch.reason
    );
}

#[test]
fn without_contention_a_lower_tier_still_waits_for_its_window() {
    let mut state = CycleState::default();
    run_cycle(&tiers(0.0, 10.0, running(1), running(6)), &mut state).expect("cycle");
    // batch's own demand halves while chat grows within the free GPUs: no reclaim, the window
    // applies.
    let mut snap = tiers(15.0, 20.0, running(1), running(6));
    snap.models[1].load = load(30.0);
    let out = run_cycle(&snap, &mut state).expect("cycle");
    assert_eq!(out.models[0].variants[0].desired, 2);
    assert_eq!(out.models[1].variants[0].desired, 6);
}

#[test]
fn a_higher_tier_that_could_use_free_gpus_elsewhere_does_not_reclaim() {
    // chat (priority 100) and batch (priority 0) fill the 8 H100; 8 A100 are free. chat is
    // slow on A100 (5 req/s), batch is not (10 req/s). When chat doubles, the cheapest plan
    // moves two batch replicas to A100 and gives their H100 to chat: a move for cost, while
    // chat could be served on the free A100 at once. batch's H100 replicas are not taken
    // from under it: its scale-down waits for its window and its new replicas.
    let two_types = |now: f64, chat_rate: f64| {
        let mut snap = tiers(now, chat_rate, running(2), running(6));
        snap.inventory.push(acc("A100", 8, 6.0));
        snap.models[0]
            .spec
            .variants
            .push(variant("a100", "A100", 5.0));
        snap.models[1]
            .spec
            .variants
            .push(variant("a100", "A100", 10.0));
        for m in &mut snap.models {
            m.variants.push(running(0));
        }
        snap
    };
    let mut state = CycleState::default();
    run_cycle(&two_types(0.0, 20.0), &mut state).expect("cycle");
    let out = run_cycle(&two_types(15.0, 40.0), &mut state).expect("cycle");
    let plan: Vec<u32> = out.plan.variants.iter().map(|v| v.replicas).collect();
    assert_eq!(plan, vec![4, 0, 4, 2], "chat h100/a100, batch h100/a100");
    let batch = &out.models[1].variants;
    assert_eq!(batch[0].desired, 6, "{}", batch[0].reason);
    assert!(
        batch[0].reason.contains("stabilization window"),
        "{}",
        batch[0].reason
    );
    assert_eq!(batch[1].desired, 2);
}
