//! A VA's status without a server: nothing changed gives None (no patch), transition times
//! of unchanged conditions are kept, the decision history is capped, and only what changed
//! changes.

mod common;

use common::{decision, variant};
use wvo_api::crd::{Decision, VariantAutoscalingStatus};
use wvo_cycle::conditions::{Condition, ConditionType as T, Reason};
use wvo_cycle::cycle::ModelDecision;
use wvo_cycle::status::{va_status, Fresh, STATUS_DECISIONS};

const T0: &str = "2026-01-01T00:00:00Z";
const T1: &str = "2026-01-01T00:01:00Z";
const T2: &str = "2026-01-01T00:02:00Z";

fn fresh(d: &ModelDecision) -> Fresh<'_> {
    Fresh {
        decision: d,
        profiles: Vec::new(),
        learned_startup: vec![Some(61.26)],
        startup_seconds: Some(120.0),
        history: None,
    }
}

fn conditions(optimized: bool) -> Vec<Condition> {
    vec![
        Condition::new(T::MetricsAvailable, true, Reason::MetricsFresh, "rate 1"),
        if optimized {
            Condition::new(T::Optimized, true, Reason::Planned, "planned")
        } else {
            Condition::not_optimized(Reason::PlanFailed, "no plan")
        },
    ]
}

fn decided(reason: &str, time: &str) -> Decision {
    Decision {
        time: time.into(),
        reason: reason.into(),
    }
}

/// The status after a first cycle at T0 with `d`.
fn first(d: &ModelDecision) -> VariantAutoscalingStatus {
    va_status(
        &VariantAutoscalingStatus::default(),
        Some(&fresh(d)),
        &conditions(true),
        &[decided("h100 H100: demand", T0)],
        Some(3),
        T0,
    )
    .expect("a first status")
}

#[test]
fn a_first_cycle_writes_the_figures_conditions_and_decision() {
    let d = decision(vec![variant(1, 2)]);
    let s = first(&d);
    assert_eq!(s.observed_generation, Some(3));
    assert_eq!((s.current_replicas, s.desired_replicas), (1, 2));
    assert_eq!(s.cost_per_hour, 8.0);
    assert_eq!((s.demand_rps, s.satisfaction), (8.8, 1.0));
    assert_eq!(s.observed_load.map(|l| l.arrival_rate), Some(8.0));
    assert_eq!(s.startup_seconds, Some(120.0));
    assert_eq!(s.variants.len(), 1);
    assert_eq!(s.variants[0].learned_startup_seconds, Some(61.3));
    type Written<'a> = (&'a str, &'a str, &'a str, &'a str, &'a str, Option<i64>);
    let written: Vec<Written<'_>> = s
        .conditions
        .iter()
        .map(|c| {
            (
                c.type_.as_str(),
                c.status.as_str(),
                c.reason.as_str(),
                c.message.as_str(),
                c.last_transition_time.as_str(),
                c.observed_generation,
            )
        })
        .collect();
    assert_eq!(
        written,
        [
            (
                "MetricsAvailable",
                "True",
                "MetricsFresh",
                "rate 1",
                T0,
                Some(3)
            ),
            ("Optimized", "True", "Planned", "planned", T0, Some(3)),
        ]
    );
    assert_eq!(s.last_decision, Some(decided("h100 H100: demand", T0)));
}

#[test]
fn nothing_changed_gives_none_so_nothing_is_patched() {
    let d = decision(vec![variant(1, 2)]);
    let s = first(&d);
    let again = va_status(&s, Some(&fresh(&d)), &conditions(true), &[], Some(3), T1);
    assert_eq!(again, None);
}

#[test]
fn an_unchanged_condition_keeps_its_transition_time_and_a_changed_one_gets_now() {
    let d = decision(vec![variant(1, 2)]);
    let s = first(&d);
    let next = va_status(&s, Some(&fresh(&d)), &conditions(false), &[], Some(3), T1)
        .expect("Optimized changed");
    let time = |t: &str| {
        next.conditions
            .iter()
            .find(|c| c.type_ == t)
            .map(|c| (c.status.clone(), c.last_transition_time.clone()))
    };
    assert_eq!(time("MetricsAvailable"), Some(("True".into(), T0.into())));
    assert_eq!(time("Optimized"), Some(("False".into(), T1.into())));

    // A new message with the same status is not a transition.
    let mut reworded = conditions(false);
    reworded[1].message = "still no plan".into();
    let later =
        va_status(&next, Some(&fresh(&d)), &reworded, &[], Some(3), T2).expect("message changed");
    let optimized = later
        .conditions
        .iter()
        .find(|c| c.type_ == "Optimized")
        .expect("Optimized");
    assert_eq!(
        (
            optimized.message.as_str(),
            optimized.last_transition_time.as_str()
        ),
        ("still no plan", T1)
    );
}

#[test]
fn a_va_not_planned_keeps_its_figures_and_other_conditions() {
    let d = decision(vec![variant(1, 2)]);
    let s = first(&d);
    let only = [Condition::not_optimized(Reason::InvalidSpec, "spec.x: bad")];
    let next = va_status(&s, None, &only, &[], Some(4), T1).expect("changed");
    // Only the condition and the generation changed.
    assert_eq!(
        VariantAutoscalingStatus {
            conditions: s.conditions.clone(),
            observed_generation: s.observed_generation,
            ..next.clone()
        },
        VariantAutoscalingStatus {
            conditions: s.conditions.clone(),
            ..s.clone()
        }
    );
    assert_eq!(next.observed_generation, Some(4));
    let types: Vec<(&str, &str)> = next
        .conditions
        .iter()
        .map(|c| (c.type_.as_str(), c.reason.as_str()))
        .collect();
    // Computed first, then the ones this cycle did not compute, as they were.
    assert_eq!(
        types,
        [
            ("Optimized", "InvalidSpec"),
            ("MetricsAvailable", "MetricsFresh")
        ]
    );
}

#[test]
fn the_decision_history_keeps_the_newest_ten() {
    let d = decision(vec![variant(1, 2)]);
    let mut s = first(&d);
    for i in 0..12 {
        let change = decided(&format!("change {i}"), T1);
        s = va_status(
            &s,
            Some(&fresh(&d)),
            &conditions(true),
            &[change],
            Some(3),
            T1,
        )
        .expect("a decision changes the status");
    }
    assert_eq!(s.decisions.len(), STATUS_DECISIONS);
    assert_eq!(STATUS_DECISIONS, 10);
    assert_eq!(s.decisions[0].reason, "change 2");
    assert_eq!(s.decisions[9].reason, "change 11");
    assert_eq!(
        s.last_decision.map(|d| d.reason),
        Some("change 11".to_string())
    );
}

#[test]
fn only_changed_figures_change() {
    let d = decision(vec![variant(1, 2)]);
    let s = first(&d);
    let moved = decision(vec![variant(2, 2)]);
    let next = va_status(
        &s,
        Some(&fresh(&moved)),
        &conditions(true),
        &[],
        Some(3),
        T1,
    )
    .expect("current replicas changed");
    assert_eq!(next.current_replicas, 2);
    assert_eq!(next.variants[0].current_replicas, 2);
    assert_eq!(next.variants[0].ready_replicas, 2);
    // Everything else is as it was, conditions (and their times) included.
    assert_eq!(
        VariantAutoscalingStatus {
            current_replicas: s.current_replicas,
            variants: s.variants.clone(),
            ..next
        },
        s
    );
}

#[test]
fn a_history_is_written_only_when_given() {
    let d = decision(vec![variant(1, 2)]);
    let mut s = first(&d);
    s.demand_history = Some(wvo_api::crd::DemandHistoryStatus::default());
    assert_eq!(
        va_status(&s, Some(&fresh(&d)), &conditions(true), &[], Some(3), T1),
        None,
        "no history to write keeps the one in the status"
    );
}

#[test]
fn long_messages_and_reasons_are_cut_to_the_crd_bounds() {
    use wvo_api::crd::{MAX_CONDITION_MESSAGE_LENGTH, MAX_DECISION_REASON_LENGTH};
    let d = decision(vec![variant(1, 2)]);
    let mut long = conditions(false);
    long[1].message = "x".repeat(100_000);
    let huge = decided(&"y".repeat(100_000), T0);
    let s = va_status(
        &VariantAutoscalingStatus::default(),
        Some(&fresh(&d)),
        &long,
        &[huge],
        Some(3),
        T0,
    )
    .expect("a first status");
    let longest = s.conditions.iter().map(|c| c.message.chars().count()).max();
    assert_eq!(longest, Some(MAX_CONDITION_MESSAGE_LENGTH as usize));
    assert_eq!(
        s.decisions[0].reason.chars().count(),
        MAX_DECISION_REASON_LENGTH as usize
    );
    assert!(s.decisions[0].reason.ends_with('…'));
    assert_eq!(s.last_decision.as_ref(), s.decisions.last());
}
