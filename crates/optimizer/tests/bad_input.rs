//! Bad input: each case is refused with a message that names the field and the problem.

mod common;

use common::*;
use wvo_api::{PlanInput, Profile};

fn base() -> PlanInput {
    input(
        vec![acc("H100", 8, 4.0), acc("L40S", 8, 1.3)],
        vec![model(
            "m",
            vec![var("h100", "H100", 1, 10.0), var("l40s", "L40S", 1, 3.0)],
        )],
        &[20.0],
    )
}

fn refused(input: &PlanInput) -> String {
    match wvo_optimizer::plan(input) {
        Ok(_) => panic!("bad input was accepted"),
        Err(e) => e.to_string(),
    }
}

fn assert_refused(input: &PlanInput, field: &str, problem: &str) {
    let message = refused(input);
    assert!(
        message.starts_with(field),
        "message {message:?} should start with {field:?}"
    );
    assert!(
        message.contains(problem),
        "message {message:?} should say {problem:?}"
    );
    assert!(!message.contains('\n'), "one line: {message:?}");
}

#[test]
fn unknown_accelerator() {
    let mut i = base();
    i.models[0].variants[1].accelerator = "H200".into();
    assert_refused(
        &i,
        "models[0].variants[1].accelerator",
        "unknown accelerator \"H200\"; the inventory has: H100, L40S",
    );
}

#[test]
fn duplicate_names() {
    let mut i = base();
    i.models.push(i.models[0].clone());
    assert_refused(&i, "models[1].name", "duplicate model name \"m\"");
    let mut i = base();
    i.models[0].variants[1].name = "h100".into();
    assert_refused(
        &i,
        "models[0].variants[1].name",
        "duplicate variant name \"h100\"",
    );
    let mut i = base();
    i.inventory.push(acc("H100", 1, 1.0));
    assert_refused(
        &i,
        "inventory[2].name",
        "duplicate accelerator type \"H100\"",
    );
}

#[test]
fn min_greater_than_max() {
    let mut i = base();
    i.models[0].variants[0].min_replicas = 3;
    i.models[0].variants[0].max_replicas = Some(2);
    assert_refused(
        &i,
        "models[0].variants[0].minReplicas",
        "minReplicas 3 is greater than maxReplicas 2",
    );
    let mut i = base();
    i.models[0].min_replicas = 5;
    i.models[0].max_replicas = Some(1);
    assert_refused(&i, "models[0].minReplicas", "greater than maxReplicas 1");
}

#[test]
fn negative_or_non_finite_numbers() {
    let mut i = base();
    i.load.get_mut("m").expect("load").arrival_rate = -1.0;
    assert_refused(&i, "load.m.arrivalRate", "must be a finite number >= 0");
    let mut i = base();
    i.inventory[0].cost_per_hour = f64::NAN;
    assert_refused(&i, "inventory[0].costPerHour", "finite number");
    let mut i = base();
    i.models[0].variants[0].max_requests_per_second = Some(0.0);
    assert_refused(
        &i,
        "models[0].variants[0].maxRequestsPerSecond",
        "must be a finite number > 0",
    );
    let mut i = base();
    i.options.headroom = -0.5;
    assert_refused(&i, "options.headroom", ">= 0");
    let mut i = base();
    i.models[0].weight = 0.0;
    assert_refused(&i, "models[0].weight", "> 0");
}

#[test]
fn missing_slo_for_a_profile() {
    let mut i = base();
    i.models[0].variants[0].max_requests_per_second = None;
    i.models[0].variants[0].profile = Some(
        Profile {
            alpha: 6.0,
            beta: 0.05,
            gamma: 15.0,
            delta: 0.01,
            max_batch_size: 256,
        }
        .into(),
    );
    assert_refused(
        &i,
        "models[0].slo",
        "missing: variant \"h100\" gives a profile",
    );
}

#[test]
fn missing_token_mix_for_a_profile() {
    let mut i = base();
    i.models[0].slo = Some(wvo_api::Slo {
        ttft_ms: 500.0,
        itl_ms: 50.0,
        percentile: None,
    });
    i.models[0].variants[0].max_requests_per_second = None;
    i.models[0].variants[0].profile = Some(
        Profile {
            alpha: 6.0,
            beta: 0.05,
            gamma: 15.0,
            delta: 0.01,
            max_batch_size: 256,
        }
        .into(),
    );
    assert_refused(&i, "load.m.avgInputTokens", "missing");
}

#[test]
fn capacity_must_be_given_exactly_once() {
    let mut i = base();
    i.models[0].variants[0].max_requests_per_second = None;
    assert_refused(&i, "models[0].variants[0]", "capacity unknown");
    let mut i = base();
    i.models[0].variants[0].profile = Some(
        Profile {
            alpha: 6.0,
            beta: 0.05,
            gamma: 15.0,
            delta: 0.01,
            max_batch_size: 256,
        }
        .into(),
    );
    assert_refused(&i, "models[0].variants[0]", "not both");
}

#[test]
fn load_and_current_must_name_real_models() {
    let mut i = base();
    i.load.clear();
    assert_refused(&i, "load.m", "every model needs a load entry");
    let mut i = base();
    let extra = i.load["m"];
    i.load.insert("ghost".into(), extra);
    assert_refused(&i, "load.ghost", "no model of that name");
    let mut i = base();
    i.current
        .insert("m".into(), [("a100".to_string(), 1)].into());
    assert_refused(&i, "current.m.a100", "no variant of that name");
}

#[test]
fn zero_gpus_per_replica_and_empty_variants() {
    let mut i = base();
    i.models[0].variants[0].gpus_per_replica = 0;
    assert_refused(&i, "models[0].variants[0].gpusPerReplica", "at least 1");
    let mut i = base();
    i.models[0].variants.clear();
    assert_refused(&i, "models[0].variants", "at least one variant");
}

#[test]
fn minimums_that_do_not_fit_the_inventory() {
    let mut i = base();
    i.models[0].variants[0].min_replicas = 9;
    assert_refused(
        &i,
        "models[0].variants[0].minReplicas",
        "minReplicas 9 needs 9 H100 GPUs but the inventory has 8",
    );
    // Each variant's minimum fits alone, but two models' minimums together do not.
    let mut i = base();
    i.models[0].variants[0].min_replicas = 5;
    let mut other = i.models[0].clone();
    other.name = "n".into();
    i.models.push(other);
    let load = i.load["m"];
    i.load.insert("n".into(), load);
    for solver in [wvo_api::SolverChoice::Exact, wvo_api::SolverChoice::Fast] {
        i.options.solver = solver;
        let message = refused(&i);
        assert!(message.starts_with("minReplicas:"), "{message}");
        assert!(
            message.contains("H100: 10 needed, 8 available"),
            "{message}"
        );
    }
}
