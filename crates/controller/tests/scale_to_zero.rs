//! Scale to zero and back in the pure cycle: a model keeps one replica unless
//! `scaleToZero` is set and a wake signal is read; an idle model goes to zero after its idle
//! time (not after a further window); requests waiting for a model at zero wake it within
//! one cycle on the variant that starts fastest among those that fit free GPUs.

use wvo_api::{AcceleratorType, ModelLoad, ModelSpec, PlanOptions, VariantSpec};
use wvo_controller::cycle::{DemandInputs, DemandOptions, ZeroState};
use wvo_controller::reconciler::DEFAULT_SCALE_DOWN_MARGIN;
use wvo_controller::{run_cycle, CycleOutcome, CycleState, ModelState, Snapshot, VariantState};

const T0: f64 = 1_780_000_000.0;

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

fn replicas(n: u32, startup_seconds: Option<f64>) -> VariantState {
    VariantState {
        replicas: n,
        ready: n,
        pending_unschedulable: 0,
        frozen: None,
        startup_seconds,
    }
}

/// One model on an L40S variant (cheap, 3 req/s, $1.50/h, slow to start: 300 s) and an H100
/// variant (10 req/s, $4/h, quick to start: 60 s), minReplicas 0 everywhere, window 300 s,
/// with `wvo run`'s demand estimate.
fn snap(
    now: f64,
    load: Result<ModelLoad, String>,
    l40s: u32,
    h100: u32,
    demand: DemandInputs,
) -> Snapshot {
    Snapshot {
        now_seconds: now,
        inventory: vec![
            AcceleratorType {
                name: "L40S".into(),
                count: 4,
                cost_per_hour: 1.5,
            },
            AcceleratorType {
                name: "H100".into(),
                count: 4,
                cost_per_hour: 4.0,
            },
        ],
        models: vec![ModelState {
            namespace: "llm".into(),
            name: "chat".into(),
            spec: ModelSpec {
                name: String::new(),
                model_id: Some("chat".into()),
                priority: 0,
                weight: 1.0,
                slo: None,
                min_replicas: 0,
                max_replicas: None,
                variants: vec![variant("l40s", "L40S", 3.0), variant("h100", "H100", 10.0)],
            },
            variants: vec![replicas(l40s, Some(300.0)), replicas(h100, Some(60.0))],
            stabilization_seconds: 300.0,
            load,
            demand,
        }],
        options: PlanOptions::default(),
        scale_down_margin: DEFAULT_SCALE_DOWN_MARGIN,
        demand: Some(DemandOptions::default()),
    }
}

fn rate(r: f64) -> Result<ModelLoad, String> {
    Ok(ModelLoad {
        arrival_rate: r,
        avg_input_tokens: None,
        avg_output_tokens: None,
    })
}

fn desired(out: &CycleOutcome) -> Vec<u32> {
    out.models[0].variants.iter().map(|v| v.desired).collect()
}

fn scale_to_zero(idle_seconds: f64, wake: Option<f64>) -> DemandInputs {
    DemandInputs {
        waiting: Some(0.0),
        scale_to_zero_idle_seconds: Some(idle_seconds),
        wake,
        ..DemandInputs::default()
    }
}

#[test]
fn without_scale_to_zero_an_idle_model_keeps_one_replica_whatever_its_minimums() {
    let mut state = CycleState::default();
    let idle = DemandInputs {
        waiting: Some(0.0),
        wake: Some(0.0),
        ..DemandInputs::default()
    };
    // Hours of no traffic: it keeps one replica of its cheapest variant.
    for t in (0..7200).step_by(15) {
        let out =
            run_cycle(&snap(T0 + f64::from(t), rate(0.0), 1, 0, idle), &mut state).expect("cycle");
        assert_eq!(desired(&out), vec![1, 0], "t={t}");
        assert_eq!(out.models[0].zero, ZeroState::KeepsOne);
    }
    // A model that is at zero (e.g. created with 0 replicas) gets one.
    let mut state = CycleState::default();
    let out = run_cycle(
        &snap(
            T0,
            Err("not observed".into()),
            0,
            0,
            DemandInputs::default(),
        ),
        &mut state,
    )
    .expect("cycle");
    assert_eq!(desired(&out).iter().sum::<u32>(), 1, "{:?}", desired(&out));
}

#[test]
fn an_idle_model_goes_to_zero_after_its_idle_time_and_not_before() {
    let mut state = CycleState::default();
    // Traffic until t = 600 s, then nothing; idle time 900 s.
    let inputs = scale_to_zero(900.0, Some(0.0));
    let mut zero_at = None;
    for t in (0..=2400).step_by(15) {
        let now = T0 + f64::from(t);
        let r = if t <= 600 { 2.0 } else { 0.0 };
        let placed = zero_at.map_or(1, |_| 0);
        let out = run_cycle(&snap(now, rate(r), placed, 0, inputs), &mut state).expect("cycle");
        let total: u32 = desired(&out).iter().sum();
        if t < 600 + 900 {
            assert!(total >= 1, "t={t}: {:?}", desired(&out));
            assert!(
                !matches!(out.models[0].zero, ZeroState::Idle { .. }),
                "t={t}"
            );
        }
        if total == 0 && zero_at.is_none() {
            zero_at = Some(t);
            let reason = &out.models[0].variants[0].reason;
            assert!(reason.contains("idle for 900 s"), "{reason}");
            assert!(
                reason.contains("staying warm would cost 1.50 $/h"),
                "{reason}"
            );
            // The L40S starts in 300 s, + one 15 s cycle; the last peak was 2 req/s.
            assert!(reason.contains("waits about 315 s"), "{reason}");
            assert!(
                reason.contains("peak of 2.00 req/s would hold about 630 requests"),
                "{reason}"
            );
            assert!(matches!(
                out.models[0].zero,
                ZeroState::Idle { idle_for_seconds } if (idle_for_seconds - 900.0).abs() < 1e-9
            ));
        }
    }
    // At the first cycle 900 s after the last arrival, not after a further 300 s window.
    assert_eq!(zero_at, Some(1500));
}

#[test]
fn a_request_waiting_at_the_gateway_wakes_a_model_at_zero_within_one_cycle_on_its_fastest_starting_variant(
) {
    let mut state = CycleState::default();
    let inputs = scale_to_zero(300.0, Some(0.0));
    // Idle at zero for a while: stays at zero.
    for t in (0..=900).step_by(15) {
        let out = run_cycle(
            &snap(T0 + f64::from(t), Err("not observed".into()), 0, 0, inputs),
            &mut state,
        )
        .expect("cycle");
        if t >= 300 {
            assert_eq!(desired(&out), vec![0, 0], "t={t}");
        }
    }
    // One request waits at the gateway: one replica on H100 (60 s start-up, though dearer
    // than the L40S's 300 s), in this very cycle.
    let woken = DemandInputs {
        wake: Some(1.0),
        ..inputs
    };
    let out = run_cycle(
        &snap(T0 + 915.0, Err("not observed".into()), 0, 0, woken),
        &mut state,
    )
    .expect("cycle");
    assert_eq!(desired(&out), vec![0, 1]);
    let reason = &out.models[0].variants[1].reason;
    assert!(reason.contains("woken: 1 requests wait"), "{reason}");
    assert!(reason.contains("starts fastest (60 s)"), "{reason}");
    assert!(matches!(out.models[0].zero, ZeroState::Active { .. }));
}

#[test]
fn a_woken_model_starts_where_gpus_are_free_when_its_fastest_type_is_full() {
    let mut state = CycleState::default();
    let mut s = snap(
        T0,
        Err("not observed".into()),
        0,
        0,
        DemandInputs {
            wake: Some(4.0),
            ..scale_to_zero(300.0, Some(4.0))
        },
    );
    // Another model holds every H100.
    let mut other = s.models[0].clone();
    other.name = "other".into();
    other.spec.variants = vec![variant("h100", "H100", 10.0)];
    other.spec.min_replicas = 4;
    other.variants = vec![replicas(4, None)];
    other.load = rate(35.0);
    other.demand = DemandInputs::default();
    s.models.push(other);
    let out = run_cycle(&s, &mut state).expect("cycle");
    assert_eq!(desired(&out), vec![1, 0]);
    assert!(out.models[0].variants[0].reason.contains("woken"));
    assert_eq!(out.models[1].variants[0].desired, 4);
}

#[test]
fn scale_to_zero_without_a_wake_signal_keeps_one_replica() {
    let mut state = CycleState::default();
    let inputs = scale_to_zero(60.0, None);
    for t in (0..3600).step_by(15) {
        let out = run_cycle(
            &snap(T0 + f64::from(t), rate(0.0), 1, 0, inputs),
            &mut state,
        )
        .expect("cycle");
        assert_eq!(desired(&out), vec![1, 0], "t={t}");
        assert_eq!(out.models[0].zero, ZeroState::NoWakeSignal);
    }
}

#[test]
fn waiting_requests_or_a_wake_signal_keep_a_model_from_idling() {
    let mut state = CycleState::default();
    // No completions for an hour, but a request stays queued at the server: never idle.
    let busy = DemandInputs {
        waiting: Some(1.0),
        ..scale_to_zero(60.0, Some(0.0))
    };
    for t in (0..3600).step_by(15) {
        let out =
            run_cycle(&snap(T0 + f64::from(t), rate(0.0), 1, 0, busy), &mut state).expect("cycle");
        assert!(desired(&out).iter().sum::<u32>() >= 1, "t={t}");
        assert!(matches!(out.models[0].zero, ZeroState::Active { .. }));
    }
}

#[test]
fn requests_piling_up_at_the_gateway_count_as_arrivals() {
    let mut state = CycleState::default();
    // At zero, 0.5 req/s queue at the gateway (7.5 more each 15 s cycle); nothing completes.
    let mut observed = Vec::new();
    for (i, t) in (0..=90).step_by(15).enumerate() {
        let wake = 7.5 * i as f64;
        let inputs = DemandInputs {
            wake: Some(wake),
            ..scale_to_zero(300.0, Some(wake))
        };
        let out = run_cycle(
            &snap(T0 + f64::from(t), Err("not observed".into()), 0, 0, inputs),
            &mut state,
        )
        .expect("cycle");
        observed.push(out.models[0].demand.as_ref().expect("demand").observed_rps);
    }
    // Unknown until half the 60 s window is covered, then the queue's growth.
    assert_eq!(observed[0], 0.0);
    for r in &observed[2..] {
        assert!((r - 0.5).abs() < 1e-9, "{observed:?}");
    }
}

#[test]
fn a_gateway_queue_handed_to_new_replicas_is_not_counted_twice() {
    let mut state = CycleState::default();
    // 10 req/s served all along; 60 requests held at the gateway go to the replicas between
    // t = 60 and t = 75: the servers' in-flight growth over the next 60 s window reads +1 req/s
    // (in the load the collector reports), the gateway's queue -1 req/s.
    let mut observed = Vec::new();
    for t in (0..=135).step_by(15) {
        let gateway = if t <= 60 { 60.0 } else { 0.0 };
        // Windows that hold the hand-over (60, 75] see the servers' growth.
        let server_growth = if (75..=120).contains(&t) { 1.0 } else { 0.0 };
        let inputs = DemandInputs {
            waiting: Some(gateway),
            wake: Some(gateway),
            ..DemandInputs::default()
        };
        let out = run_cycle(
            &snap(T0 + f64::from(t), rate(10.0 + server_growth), 1, 0, inputs),
            &mut state,
        )
        .expect("cycle");
        observed.push(out.models[0].demand.as_ref().expect("demand").observed_rps);
    }
    for (i, r) in observed.iter().enumerate() {
        assert!((r - 10.0).abs() < 1e-9, "cycle {i}: {observed:?}");
    }
}

#[test]
fn a_model_winding_down_to_zero_starts_no_cheaper_replica() {
    // One H100 placed serves the little load left; an L40S would be cheaper, but the model
    // idles to zero soon: no new replica is started.
    let mut state = CycleState::default();
    let inputs = scale_to_zero(300.0, Some(0.0));
    for t in (0..=120).step_by(15) {
        let out = run_cycle(
            &snap(T0 + f64::from(t), rate(0.5), 0, 1, inputs),
            &mut state,
        )
        .expect("cycle");
        if t > 0 {
            assert_eq!(desired(&out), vec![0, 1], "t={t}");
        }
    }
    // Without scaleToZero the model moves to the cheaper L40S (it stays warm for good).
    let mut state = CycleState::default();
    let keep = DemandInputs {
        waiting: Some(0.0),
        ..DemandInputs::default()
    };
    let out = (0..=120)
        .step_by(15)
        .map(|t| {
            run_cycle(&snap(T0 + f64::from(t), rate(0.5), 0, 1, keep), &mut state).expect("cycle")
        })
        .last()
        .expect("cycles");
    assert_eq!(desired(&out)[0], 1, "{:?}", desired(&out));
}

#[test]
fn a_burst_from_zero_is_seen_at_its_arrival_rate_in_the_first_cycle() {
    // Idle at zero (the gateway's queue read as 0 every cycle), then 10 req/s start: 150
    // requests wait 15 s later. Nothing drains the queue, so its growth since the last cycle
    // is the arrival rate (over the 60 s window it would read 2.5 req/s).
    let mut state = CycleState::default();
    let inputs = scale_to_zero(300.0, Some(0.0));
    for t in (0..=600).step_by(15) {
        run_cycle(
            &snap(T0 + f64::from(t), Err("not observed".into()), 0, 0, inputs),
            &mut state,
        )
        .expect("cycle");
    }
    let burst = DemandInputs {
        wake: Some(150.0),
        ..inputs
    };
    let out = run_cycle(
        &snap(T0 + 615.0, Err("not observed".into()), 0, 0, burst),
        &mut state,
    )
    .expect("cycle");
    let observed = out.models[0].demand.as_ref().expect("demand").observed_rps;
    assert!((observed - 10.0).abs() < 1e-9, "{observed}");
    // Woken with enough for that rate plus the backlog, not one replica at a time.
    assert!(
        desired(&out).iter().sum::<u32>() >= 2,
        "{:?}",
        desired(&out)
    );
}

#[test]
fn requests_running_keep_a_model_from_idling() {
    // A burst has just started: its requests run, none has completed (arrivals read 0 from
    // completions), nothing waits. The model has been idle for longer than idleSeconds
    // before: it must not be taken to zero under its running requests.
    let mut state = CycleState::default();
    let idle = scale_to_zero(60.0, Some(0.0));
    for t in (0..=120).step_by(15) {
        run_cycle(&snap(T0 + f64::from(t), rate(0.0), 1, 0, idle), &mut state).expect("cycle");
    }
    let running = DemandInputs {
        running: Some(4.0),
        ..idle
    };
    let out = run_cycle(&snap(T0 + 135.0, rate(0.0), 1, 0, running), &mut state).expect("cycle");
    assert_eq!(desired(&out), vec![1, 0]);
    assert!(matches!(out.models[0].zero, ZeroState::Active { .. }));
}
