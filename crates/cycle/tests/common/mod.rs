//! Tiny builders for the pure tests: a VA, a model's decision and a cycle's outcome.
#![allow(dead_code)]

use serde_json::{json, Value};
use wvo_api::crd::VariantAutoscaling;
use wvo_api::{ModelLoad, PlanOutput};
use wvo_cycle::cycle::{CycleOutcome, Frozen, ModelDecision, VariantDecision, ZeroState};

/// VA `llm/chat` (model `chat`, one variant `h100` on H100 at 10 req/s) with `spec` merged
/// over its spec.
pub fn va(spec: Value) -> VariantAutoscaling {
    let mut base = json!({
        "modelID": "chat",
        "variants": [{"name": "h100", "scaleTargetRef": {"name": "chat-h100"},
                      "accelerator": "H100", "maxRequestsPerSecond": 10.0}]
    });
    if let (Some(base), Value::Object(extra)) = (base.as_object_mut(), spec) {
        base.extend(extra);
    }
    serde_json::from_value(json!({
        "apiVersion": "wvo.dev/v1alpha1",
        "kind": "VariantAutoscaling",
        "metadata": {"name": "chat", "namespace": "llm", "generation": 3},
        "spec": base,
    }))
    .expect("a VariantAutoscaling")
}

/// Variant `h100` going from `current` to `desired` replicas, free to actuate.
pub fn variant(current: u32, desired: u32) -> VariantDecision {
    VariantDecision {
        name: "h100".into(),
        accelerator: "H100".into(),
        current,
        ready: current,
        pending: 0,
        planned: desired,
        desired,
        capacity_rps: 10.0,
        cost_per_hour: 4.0 * f64::from(desired),
        price_per_replica: 4.0,
        reason: "demand".into(),
        may_actuate: true,
        frozen: None,
    }
}

/// The same variant, frozen for `why` (desired stays at current).
pub fn frozen(current: u32, why: Frozen) -> VariantDecision {
    VariantDecision {
        may_actuate: false,
        frozen: Some(why),
        ..variant(current, current)
    }
}

/// The decision for `llm/chat` at 8 req/s, all served.
pub fn decision(variants: Vec<VariantDecision>) -> ModelDecision {
    ModelDecision {
        namespace: "llm".into(),
        name: "chat".into(),
        variants,
        load_used: ModelLoad {
            arrival_rate: 8.0,
            avg_input_tokens: Some(512.0),
            avg_output_tokens: Some(256.0),
        },
        metrics_unknown: None,
        demand_rps: 8.8,
        satisfaction: 1.0,
        demand: None,
        floors_lowered: None,
        zero: ZeroState::KeepsOne,
        wake: None,
    }
}

/// A cycle with `models` and a plan with `warnings` and `shortfall` (JSON).
pub fn outcome(models: Vec<ModelDecision>, warnings: &[&str], shortfall: Value) -> CycleOutcome {
    let plan: PlanOutput = serde_json::from_value(json!({
        "feasible": shortfall.as_array().is_none_or(|s| s.is_empty()),
        "totalCostPerHour": 4.0,
        "solveMillis": 0.0,
        "solver": "milp",
        "variants": [],
        "models": [],
        "accelerators": [],
        "shortfall": shortfall,
        "warnings": warnings,
    }))
    .expect("a plan");
    CycleOutcome {
        plan,
        models,
        inventory_notes: Vec::new(),
    }
}
