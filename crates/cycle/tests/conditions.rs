//! The conditions of a planned VA without a server: each reason, which one wins, and the
//! strings written to the status.

mod common;

use common::{decision, frozen, outcome, va, variant};
use serde_json::{json, Value};
use wvo_api::crd::{ProfileNumbers, VariantAutoscaling, VariantProfileStatus};
use wvo_api::{ModelPlan, ModelSpec, SloUnreachable};
use wvo_cycle::admission::admit;
use wvo_cycle::conditions::{
    model_conditions, Condition, ConditionType as T, ModelConditions, Reason,
};
use wvo_cycle::cycle::{CycleOutcome, Frozen, ModelDecision, ZeroState};

const QUEUE: &[&str] = &["epp_queue_new", "epp_queue_old"];

fn spec_of(va: &VariantAutoscaling) -> ModelSpec {
    let inventory = [wvo_api::AcceleratorType {
        name: "H100".into(),
        count: 8,
        cost_per_hour: 4.0,
    }];
    admit(va, &inventory, &[]).expect("admitted").spec
}

/// The conditions of `va` for `decision` in `outcome`, no refusal, errors or profiles.
struct Case {
    va: VariantAutoscaling,
    decision: ModelDecision,
    outcome: CycleOutcome,
    refusal: Option<String>,
    errors: Vec<String>,
    profiles: Vec<VariantProfileStatus>,
}

impl Case {
    fn new(spec: Value, decision: ModelDecision) -> Self {
        Self {
            va: va(spec),
            outcome: outcome(vec![decision.clone()], &[], json!([])),
            decision,
            refusal: None,
            errors: Vec::new(),
            profiles: Vec::new(),
        }
    }

    fn conditions(&self) -> Vec<Condition> {
        let spec = spec_of(&self.va);
        model_conditions(&ModelConditions {
            va: &self.va,
            spec: &spec,
            decision: &self.decision,
            outcome: &self.outcome,
            inventory_refusal: self.refusal.as_deref(),
            actuation_errors: &self.errors,
            profiles: &self.profiles,
            gateway_queue_metrics: QUEUE,
        })
    }

    fn get(&self, type_: T) -> Condition {
        let all = self.conditions();
        all.iter()
            .find(|c| c.type_ == type_)
            .cloned()
            .unwrap_or_else(|| panic!("no {type_:?} in {all:?}"))
    }
}

fn plain() -> Case {
    Case::new(json!({}), decision(vec![variant(1, 2)]))
}

fn zero_case(zero: ZeroState, wake_query: Option<&str>) -> Case {
    let mut d = decision(vec![variant(1, 1)]);
    d.zero = zero;
    let mut z = json!({"idleSeconds": 300});
    if let Some(q) = wake_query {
        z["wakeQuery"] = json!(q);
    }
    Case::new(json!({"scaleToZero": z}), d)
}

fn profile(contradiction: Option<&str>, calibrated: bool) -> VariantProfileStatus {
    let prior = ProfileNumbers {
        alpha: 8.0,
        beta: 0.2,
        gamma: 20.0,
        delta: 0.01,
        max_batch_size: 64,
    };
    VariantProfileStatus {
        name: "h100".into(),
        source: "catalog".into(),
        in_use: if calibrated {
            ProfileNumbers {
                alpha: 9.0,
                ..prior
            }
        } else {
            prior
        },
        prior,
        confidence: wvo_api::crd::ProfileConfidence {
            decode: 0.8,
            prefill: 0.75,
            overall: 0.75,
        },
        contradiction: contradiction.map(str::to_string),
        ..VariantProfileStatus::default()
    }
}

#[test]
fn a_served_model_reports_each_condition_in_order_with_todays_strings() {
    let all = plain().conditions();
    let written: Vec<(&str, &str, &str, &str)> = all
        .iter()
        .map(|c| {
            (
                c.type_.as_str(),
                c.status_str(),
                c.reason.as_str(),
                c.message.as_str(),
            )
        })
        .collect();
    assert_eq!(
        written,
        vec![
            (
                "MetricsAvailable",
                "True",
                "MetricsFresh",
                "arrival rate 8.000 req/s"
            ),
            (
                "ProfileReady",
                "True",
                "ProfilesKnown",
                "1 variants with a measured capacity, 0 from a profile"
            ),
            (
                "Optimized",
                "True",
                "Planned",
                "global plan over 1 models; this model 100.0% served"
            ),
            (
                "Actuated",
                "True",
                "Applied",
                "desired replicas applied through the scale subresource"
            ),
            (
                "CapacityConstrained",
                "False",
                "DemandMet",
                "all demand is served"
            ),
        ]
    );
}

#[test]
fn unknown_metrics_say_the_last_good_load_holds() {
    let mut case = plain();
    case.decision.metrics_unknown = Some("no samples for chat".into());
    let c = case.get(T::MetricsAvailable);
    assert_eq!((c.status, c.reason), (false, Reason::MetricsUnknown));
    assert_eq!(
        c.message,
        "no samples for chat; the last good load holds and nothing is scaled down"
    );
}

#[test]
fn a_refused_inventory_makes_the_plan_stale_but_optimized() {
    let mut case = plain();
    case.refusal = Some("inventory refused: accelerators[0].count: must be >= 0".into());
    let c = case.get(T::Optimized);
    assert_eq!((c.status, c.reason), (true, Reason::StaleInventory));
    assert_eq!(c.reason.as_str(), "StaleInventory");
    assert_eq!(
        c.message,
        "inventory refused: accelerators[0].count: must be >= 0; planned with the last good inventory"
    );
}

/// `case`'s plan with a model plan for each of `models`, marking `variant` of each as unable
/// to meet a 10 ms / 1 ms SLO.
fn with_unreachable(case: &mut Case, models: &[&str]) {
    for model in models {
        let marker = SloUnreachable {
            variant: "h100".into(),
            ttft_ms: 10.0,
            itl_ms: 1.0,
        };
        case.outcome.plan.warnings.push(marker.warning(model));
        case.outcome.plan.models.push(ModelPlan {
            model: model.to_string(),
            demand_rps: 8.8,
            served_rps: 8.8,
            satisfaction: 1.0,
            slo: Some("mean".into()),
            slo_unreachable: vec![marker],
        });
    }
}

#[test]
fn an_unreachable_slo_of_this_model_wins_over_a_contradiction_and_ignores_other_models() {
    let mut case = plain();
    with_unreachable(&mut case, &["llm/chatbot"]);
    assert_eq!(case.get(T::ProfileReady).reason, Reason::ProfilesKnown);

    let mut case = plain();
    with_unreachable(&mut case, &["llm/chatbot", "llm/chat"]);
    case.profiles = vec![profile(Some("capacity 40% of the prior"), false)];
    let c = case.get(T::ProfileReady);
    assert_eq!((c.status, c.reason), (false, Reason::SloUnreachable));
    assert_eq!(
        c.message,
        "model \"llm/chat\" variant \"h100\": the profile cannot meet the SLO (TTFT 10 ms, ITL 1 ms) at any load; it gets no replicas beyond its minimum"
    );
}

#[test]
fn a_contradicted_profile_names_its_variant_and_prior_source() {
    let mut case = plain();
    case.profiles = vec![profile(Some("capacity 40% of the prior"), false)];
    let c = case.get(T::ProfileReady);
    assert_eq!((c.status, c.reason), (false, Reason::ProfileContradicted));
    assert_eq!(
        c.message,
        "h100 (prior from catalog): capacity 40% of the prior; planning uses the calibrated profile"
    );
}

#[test]
fn a_calibrated_profile_is_named_with_its_confidence() {
    let mut case = plain();
    case.profiles = vec![profile(None, true)];
    let c = case.get(T::ProfileReady);
    assert_eq!((c.status, c.reason), (true, Reason::ProfilesKnown));
    assert_eq!(
        c.message,
        "1 variants with a measured capacity, 0 from a profile; calibrated online: h100 (confidence 0.75)"
    );
}

#[test]
fn scale_to_zero_is_reported_only_when_configured() {
    assert!(plain()
        .conditions()
        .iter()
        .all(|c| c.type_ != T::ScaleToZeroUnavailable));
    let types: Vec<T> = zero_case(
        ZeroState::Active {
            idle_for_seconds: 5.0,
        },
        None,
    )
    .conditions()
    .iter()
    .map(|c| c.type_)
    .collect();
    assert_eq!(
        types,
        [
            T::MetricsAvailable,
            T::ProfileReady,
            T::Optimized,
            T::ScaleToZeroUnavailable,
            T::Actuated,
            T::CapacityConstrained
        ]
    );
}

#[test]
fn no_wake_signal_keeps_one_replica_and_names_the_gateway_metrics_and_the_wake_query() {
    for zero in [ZeroState::NoWakeSignal, ZeroState::KeepsOne] {
        let c = zero_case(zero, None).get(T::ScaleToZeroUnavailable);
        assert_eq!(
            (c.status, c.reason),
            (true, Reason::NoWakeSignal),
            "{zero:?}"
        );
        assert_eq!(
            c.message,
            "spec.scaleToZero is set but no wake signal is read for model chat (no gateway flow-control queue metric (epp_queue_new or epp_queue_old) for it, and no spec.scaleToZero.wakeQuery): it keeps one replica, since nothing would wake it from zero"
        );
    }
    let c = zero_case(ZeroState::NoWakeSignal, Some("sum(queue)")).get(T::ScaleToZeroUnavailable);
    assert!(
        c.message
            .contains(", and spec.scaleToZero.wakeQuery gave no value): "),
        "{}",
        c.message
    );
}

#[test]
fn an_active_model_says_how_long_it_has_been_idle() {
    let c = zero_case(
        ZeroState::Active {
            idle_for_seconds: 42.4,
        },
        None,
    )
    .get(T::ScaleToZeroUnavailable);
    assert_eq!((c.status, c.reason), (false, Reason::Active));
    assert_eq!(
        c.message,
        "wake signal read; idle for 42 s of the 300 s after which its replicas go to zero"
    );
}

#[test]
fn an_idle_model_is_at_zero_unless_the_forecast_predicts_a_return() {
    let c = zero_case(
        ZeroState::Idle {
            idle_for_seconds: 600.0,
        },
        None,
    )
    .get(T::ScaleToZeroUnavailable);
    assert_eq!((c.status, c.reason), (false, Reason::Idle));
    assert_eq!(
        c.message,
        "idle for 600 s (spec.scaleToZero.idleSeconds 300): at zero replicas unless the forecast predicts a return; a request at the gateway wakes it"
    );
}

#[test]
fn each_frozen_workload_gives_its_own_reason_and_message() {
    for (why, reason) in [
        (Frozen::TargetNotFound("t".into()), Reason::TargetNotFound),
        (Frozen::ForeignScaler("f".into()), Reason::ForeignScaler),
        (Frozen::NoHpa("n".into()), Reason::NoHpa),
        (Frozen::TargetConflict("c".into()), Reason::TargetConflict),
    ] {
        let case = Case::new(json!({}), decision(vec![frozen(1, why.clone())]));
        let c = case.get(T::Actuated);
        assert_eq!((c.status, c.reason), (false, reason), "{why:?}");
        assert_eq!(c.reason.as_str(), why.reason());
        assert_eq!(c.message, why.message());
    }
}

#[test]
fn a_frozen_variant_that_may_still_actuate_is_not_reported() {
    let mut v = frozen(1, Frozen::NoHpa("n".into()));
    v.may_actuate = true;
    let case = Case::new(json!({}), decision(vec![v]));
    assert_eq!(case.get(T::Actuated).reason, Reason::Applied);
}

#[test]
fn actuation_errors_win_over_dry_run_which_wins_over_a_frozen_workload() {
    let mut case = Case::new(
        json!({"dryRun": true}),
        decision(vec![
            frozen(1, Frozen::NoHpa("no HPA".into())),
            variant(1, 2),
        ]),
    );
    let c = case.get(T::Actuated);
    assert_eq!((c.status, c.reason), (false, Reason::DryRun));
    assert_eq!(
        c.message,
        "dryRun: decisions are reported, workloads are not changed"
    );
    case.errors = vec!["h100: conflict".into(), "l40s: gone".into()];
    let c = case.get(T::Actuated);
    assert_eq!((c.status, c.reason), (false, Reason::ActuationFailed));
    assert_eq!(c.message, "h100: conflict; l40s: gone");
}

#[test]
fn applied_names_the_actuation_mode() {
    for (mode, how) in [
        ("scale", "scale subresource"),
        ("hpa", "HPA bounds"),
        ("metric", "wvo_desired_replicas metric"),
        ("keda", "KEDA external scaler"),
    ] {
        let case = Case::new(json!({"actuation": mode}), decision(vec![variant(1, 2)]));
        assert_eq!(
            case.get(T::Actuated).message,
            format!("desired replicas applied through the {how}")
        );
    }
}

#[test]
fn lowered_minimums_win_over_missing_gpus() {
    let mut case = plain();
    case.decision.satisfaction = 0.5;
    case.outcome = outcome(
        vec![case.decision.clone()],
        &[],
        json!([{"accelerator": "H100", "missingGpus": 2, "unmetRps": 4.4}]),
    );
    let c = case.get(T::CapacityConstrained);
    assert_eq!((c.status, c.reason), (true, Reason::NotEnoughGPUs));
    assert_eq!(
        c.message,
        "50.0% of 8.80 req/s served; missing: 2 more H100 GPUs (cluster-wide unmet 4.40 req/s)"
    );

    case.decision.floors_lowered = Some("minReplicas lowered from 3 to 1".into());
    let c = case.get(T::CapacityConstrained);
    assert_eq!((c.status, c.reason), (true, Reason::MinimumsDoNotFit));
    assert_eq!(c.message, "minReplicas lowered from 3 to 1");
}

#[test]
fn not_optimized_is_optimized_false_with_the_reason() {
    for reason in [
        Reason::NoInventory,
        Reason::InvalidSpec,
        Reason::WorkloadUnreadable,
        Reason::PlanFailed,
    ] {
        let c = Condition::not_optimized(reason, "why");
        assert_eq!(
            (
                c.type_.as_str(),
                c.status_str(),
                c.reason,
                c.message.as_str()
            ),
            ("Optimized", "False", reason, "why")
        );
    }
}

#[test]
fn reason_strings_are_the_variant_names() {
    for r in [
        Reason::MetricsFresh,
        Reason::MetricsUnknown,
        Reason::ProfilesKnown,
        Reason::ProfileContradicted,
        Reason::SloUnreachable,
        Reason::Planned,
        Reason::StaleInventory,
        Reason::NoInventory,
        Reason::InvalidSpec,
        Reason::WorkloadUnreadable,
        Reason::PlanFailed,
        Reason::NoWakeSignal,
        Reason::Active,
        Reason::Idle,
        Reason::Applied,
        Reason::ActuationFailed,
        Reason::DryRun,
        Reason::TargetNotFound,
        Reason::ForeignScaler,
        Reason::NoHpa,
        Reason::TargetConflict,
        Reason::DemandMet,
        Reason::NotEnoughGPUs,
        Reason::MinimumsDoNotFit,
    ] {
        assert_eq!(r.as_str(), format!("{r:?}"));
    }
    for t in [
        T::MetricsAvailable,
        T::ProfileReady,
        T::Optimized,
        T::ScaleToZeroUnavailable,
        T::Actuated,
        T::CapacityConstrained,
    ] {
        assert_eq!(t.as_str(), format!("{t:?}"));
    }
}
