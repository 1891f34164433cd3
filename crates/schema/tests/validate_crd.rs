//! The checked-in VariantAutoscaling CRD compiles for object validation (every CEL rule
//! parses and calls only functions the emulator's CEL has), accepts a good VA with its
//! defaults and refuses the bad ones of issue 14 with the apiserver's messages.

use serde_json::{json, Value};
use wvo_schema::validate::{aggregate, FieldValidation, Refusal, Schema};

fn schema() -> Schema {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../crds/variantautoscaling.yaml"
    );
    let text = std::fs::read_to_string(path).expect("read the CRD");
    let crd: Value = serde_norway::from_str(&text).expect("CRD YAML");
    let s = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    Schema::compile(s, "spec.versions[0].schema.openAPIV3Schema")
        .unwrap_or_else(|e| panic!("the CRD does not compile: {}", aggregate(&e)))
}

fn va(spec_changes: impl FnOnce(&mut Value)) -> Value {
    let mut v = json!({
        "apiVersion": "wvo.dev/v1alpha1", "kind": "VariantAutoscaling",
        "metadata": {"name": "va", "namespace": "llm"},
        "spec": {"modelID": "m", "variants": [{"name": "h100", "accelerator": "H100",
            "maxRequestsPerSecond": 10.0, "scaleTargetRef": {"name": "d"}}]}
    });
    spec_changes(&mut v["spec"]);
    v
}

fn refusal(v: Value) -> String {
    match schema().admit(&mut v.clone(), None, FieldValidation::Strict) {
        Ok(_) => String::new(),
        Err(Refusal::Invalid(e)) => aggregate(&e),
        Err(other) => other.to_string(),
    }
}

#[test]
fn a_good_va_is_admitted_with_its_defaults() {
    let mut v = va(|_| {});
    assert_eq!(
        schema()
            .admit(&mut v, None, FieldValidation::Strict)
            .map(|a| a.warnings),
        Ok(vec![])
    );
    assert_eq!(v["spec"]["actuation"], "scale");
    assert_eq!(v["spec"]["variants"][0]["gpusPerReplica"], 1);
    assert_eq!(
        v["spec"]["variants"][0]["scaleTargetRef"]["kind"],
        "Deployment"
    );
}

#[test]
fn the_bad_vas_of_issue_14_are_refused() {
    assert_eq!(
        refusal(va(|s| s["variants"][0]["minReplicas"] = json!(-1))),
        "spec.variants[0].minReplicas: Invalid value: -1: spec.variants[0].minReplicas in body should be greater than or equal to 0"
    );
    assert!(refusal(va(|s| s["maxReplicas"] = json!(1_000_000_000_000_000_000_i64)))
        .starts_with("spec.maxReplicas: Invalid value: 1000000000000000000: spec.maxReplicas in body should be less than or equal to "));
    assert!(refusal(va(|s| {
        s.as_object_mut().map(|o| o.remove("modelID"));
    }))
    .starts_with("[spec.modelID: Required value, "));
    assert_eq!(
        refusal(va(|s| {
            s["minReplicas"] = json!(3);
            s["maxReplicas"] = json!(2);
        })),
        r#"spec: Invalid value: "object": minReplicas must be <= maxReplicas"#
    );
    assert_eq!(
        refusal(va(|s| {
            let v = s["variants"][0].clone();
            s["variants"] = json!([v.clone(), v]);
        })),
        r#"spec.variants[1]: Duplicate value: map[string]interface {}{"name":"h100"}"#
    );
    assert_eq!(
        refusal(va(|s| s["foo"] = json!(1))),
        r#"strict decoding error: unknown field "spec.foo""#
    );
}
