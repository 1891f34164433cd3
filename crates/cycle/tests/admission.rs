//! Admission of a VariantAutoscaling without a server: each refusal names its field, and an
//! admitted VA carries its plan form and the priors calibration starts from.

mod common;

use common::va;
use serde_json::{json, Value};
use wvo_api::crd::ServiceClass;
use wvo_api::AcceleratorType;
use wvo_cycle::admission::{admit, Admitted, InputError, PriorSource};

fn inventory() -> Vec<AcceleratorType> {
    vec![AcceleratorType {
        name: "H100".into(),
        count: 8,
        cost_per_hour: 4.0,
    }]
}

fn classes() -> Vec<ServiceClass> {
    serde_json::from_value(json!([
        {"name": "premium", "priority": 100, "ttftMs": 500.0, "itlMs": 50.0}
    ]))
    .expect("service classes")
}

fn refused(spec: Value) -> InputError {
    admit(&va(spec), &inventory(), &classes()).expect_err("refused")
}

#[test]
fn a_measured_variant_is_admitted_under_its_namespaced_name_without_a_prior() {
    let Admitted { spec, priors } = admit(&va(json!({})), &inventory(), &classes()).expect("ok");
    assert_eq!(spec.name, "llm/chat");
    assert_eq!(spec.variants.len(), 1);
    assert_eq!(priors, vec![None]);
}

#[test]
fn the_service_class_gives_the_slo_and_priority() {
    let admitted = admit(
        &va(json!({"serviceClass": "premium"})),
        &inventory(),
        &classes(),
    )
    .expect("ok");
    assert_eq!(admitted.spec.priority, 100);
    let slo = admitted.spec.slo.expect("slo from the class");
    assert_eq!((slo.ttft_ms, slo.itl_ms), (500.0, 50.0));
}

#[test]
fn an_unknown_accelerator_is_refused_naming_the_variants_field_not_the_probe() {
    let e = refused(
        json!({"variants": [{"name": "h200", "scaleTargetRef": {"name": "x"},
        "accelerator": "H200", "maxRequestsPerSecond": 10.0}]}),
    );
    assert!(matches!(e, InputError::Plan(_)), "{e:?}");
    assert_eq!(e.field(), "spec.variants[0].accelerator");
    let message = e.to_string();
    assert!(
        message.starts_with("spec.variants[0].accelerator: ") && message.contains("H200"),
        "{message}"
    );
    assert!(!message.contains("models[0]"), "{message}");
}

#[test]
fn an_unknown_service_class_is_refused_listing_the_defined_ones() {
    let e = refused(json!({"serviceClass": "gold"}));
    assert!(matches!(e, InputError::Spec(_)), "{e:?}");
    assert_eq!(e.field(), "spec.serviceClass");
    assert_eq!(
        e.to_string(),
        "spec.serviceClass: unknown service class \"gold\"; the inventory defines: premium"
    );
}

#[test]
fn out_of_range_fields_are_refused_by_name() {
    for (spec, field) in [
        (
            json!({"forecast": {"periodSeconds": 5}}),
            "spec.forecast.periodSeconds",
        ),
        (json!({"startupSeconds": -1.0}), "spec.startupSeconds"),
        (
            json!({"scaleToZero": {"idleSeconds": 1}}),
            "spec.scaleToZero.idleSeconds",
        ),
        (
            json!({"scaleToZero": {"idleSeconds": 300, "wakeQuery": " "}}),
            "spec.scaleToZero.wakeQuery",
        ),
    ] {
        let e = refused(spec.clone());
        assert_eq!(e.field(), field, "{spec}: {e}");
        assert!(e.to_string().starts_with(&format!("{field}: ")), "{e}");
    }
}

#[test]
fn a_plan_field_out_of_range_is_refused_under_spec() {
    let e = refused(
        json!({"variants": [{"name": "h100", "scaleTargetRef": {"name": "x"},
        "accelerator": "H100", "maxRequestsPerSecond": 0.0}]}),
    );
    assert!(matches!(e, InputError::Plan(_)), "{e:?}");
    assert_eq!(e.field(), "spec.variants[0].maxRequestsPerSecond");
}

#[test]
fn an_inline_profile_is_its_own_prior() {
    let admitted = admit(
        &va(json!({"slo": {"ttftMs": 2000.0, "itlMs": 60.0},
            "variants": [{"name": "h100", "scaleTargetRef": {"name": "x"}, "accelerator": "H100",
                "profile": {"alpha": 8.0, "beta": 0.2, "gamma": 20.0, "delta": 0.01, "maxBatchSize": 64}}]})),
        &inventory(),
        &classes(),
    )
    .expect("ok");
    let prior = admitted.priors[0].expect("a prior");
    assert_eq!(prior.source, PriorSource::Inline);
    assert_eq!(prior.source.as_str(), "inline");
    assert_eq!(prior.profile.alpha, 8.0);
    assert_eq!(prior.profile.max_batch_size, 64);
}

#[test]
fn a_catalog_profile_resolves_to_a_catalog_prior() {
    let admitted = admit(
        &va(json!({"slo": {"ttftMs": 2000.0, "itlMs": 60.0},
            "variants": [{"name": "h100", "scaleTargetRef": {"name": "x"}, "accelerator": "H100",
                "profile": {"catalog": "llama-3.1-8b"}}]})),
        &inventory(),
        &classes(),
    )
    .expect("ok");
    let prior = admitted.priors[0].expect("a prior");
    assert_eq!(prior.source.as_str(), "catalog");
    assert!(prior.profile.alpha > 0.0 && prior.profile.max_batch_size > 0);
}

#[test]
fn a_catalog_profile_that_does_not_resolve_is_refused_naming_its_variant() {
    let e = refused(json!({"slo": {"ttftMs": 2000.0, "itlMs": 60.0},
        "variants": [
            {"name": "a", "scaleTargetRef": {"name": "a"}, "accelerator": "H100", "maxRequestsPerSecond": 3.0},
            {"name": "b", "scaleTargetRef": {"name": "b"}, "accelerator": "H100",
             "profile": {"catalog": "no-such-model"}}]}));
    assert!(
        matches!(e, InputError::CatalogProfile { variant: 1, .. }),
        "{e:?}"
    );
    assert_eq!(e.field(), "spec.variants[1].profile.catalog");
    assert!(
        e.to_string()
            .starts_with("spec.variants[1].profile.catalog: "),
        "{e}"
    );
}
