//! The VariantAutoscaling CRD in crds/ installs on a real apiserver with no refusal and no
//! warning, every number, string and list in it is bounded, and the CRD as it was before
//! issue 14 is refused (so the checks are not trivially passing).
//!
//! `cargo test -p wvo-schema --test variantautoscaling_crd -- --nocapture` prints the
//! estimated cost of every rule (docs/crd.md).

use serde_json::Value;
use wvo_schema::check::{
    check_crd, rule_costs, Severity, ViolationKind, STATIC_ESTIMATED_COST_LIMIT,
    STATIC_ESTIMATED_CRD_COST_LIMIT,
};

fn load(path: &str) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    // The file is one YAML document after a `---` line.
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn current() -> Value {
    load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../crds/variantautoscaling.yaml"
    ))
}

#[test]
fn the_crd_has_no_violation() {
    let violations = check_crd(&current());
    assert!(
        violations.is_empty(),
        "crds/variantautoscaling.yaml would be refused or warned about:\n{}",
        violations
            .iter()
            .map(|v| format!("  {:?} {v}", v.kind))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn every_rule_is_far_under_the_budgets() {
    let costs = rule_costs(&current());
    assert!(!costs.is_empty(), "the CRD has CEL rules");
    let mut total = 0;
    println!("{:>10} {:>5} {:>10}  rule", "per eval", "×", "total");
    for c in &costs {
        println!(
            "{:>10} {:>5} {:>10}  {}\n{:>29}{}",
            c.per_evaluation, c.cardinality, c.total, c.expression, "at ", c.path
        );
        assert!(
            c.total <= STATIC_ESTIMATED_COST_LIMIT / 100,
            "{} costs {} (over 1% of the per-rule budget)",
            c.path,
            c.total
        );
        total += c.total;
    }
    println!(
        "total {total} (per-rule limit {STATIC_ESTIMATED_COST_LIMIT}, CRD limit {STATIC_ESTIMATED_CRD_COST_LIMIT})"
    );
    assert!(total <= STATIC_ESTIMATED_CRD_COST_LIMIT / 100, "{total}");
}

/// Every node of `schema` (with its path), depth first.
fn nodes<'a>(schema: &'a Value, path: String, out: &mut Vec<(String, &'a Value)>) {
    out.push((path.clone(), schema));
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, child) in props {
            nodes(child, format!("{path}.{name}"), out);
        }
    }
    if let Some(items) = schema.get("items") {
        nodes(items, format!("{path}[]"), out);
    }
    if let Some(extra) = schema.get("additionalProperties").filter(|v| v.is_object()) {
        nodes(extra, format!("{path}{{}}"), out);
    }
}

/// What is unbounded in one node, if anything.
fn unbounded(node: &Value) -> Option<String> {
    let has = |key: &str| node.get(key).is_some_and(Value::is_number);
    match node.get("type").and_then(Value::as_str) {
        Some("integer") => {
            let format = node.get("format").and_then(Value::as_str);
            if !matches!(format, Some("int32" | "int64")) {
                return Some(format!("integer with format {format:?}, not int32/int64"));
            }
            (!has("minimum") || !has("maximum"))
                .then(|| "integer without minimum and maximum".to_string())
        }
        // A string is bounded by maxLength, or by an enum of fixed values.
        Some("string") => (!has("maxLength") && node.get("enum").is_none())
            .then(|| "string without maxLength".to_string()),
        Some("array") => (!has("maxItems")).then(|| "array without maxItems".to_string()),
        Some("object")
            if node
                .get("additionalProperties")
                .is_some_and(Value::is_object) =>
        {
            (!has("maxProperties")).then(|| "map without maxProperties".to_string())
        }
        _ => None,
    }
}

#[test]
fn every_integer_string_and_list_under_spec_and_status_is_bounded() {
    let crd = current();
    let mut all = Vec::new();
    for version in crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(schema) = version.pointer("/schema/openAPIV3Schema") {
            nodes(schema, String::new(), &mut all);
        }
    }
    assert!(all.len() > 50, "walked {} nodes", all.len());
    let problems: Vec<String> = all
        .iter()
        .filter_map(|(path, node)| unbounded(node).map(|why| format!("  {path}: {why}")))
        .collect();
    assert!(problems.is_empty(), "unbounded:\n{}", problems.join("\n"));
    // Every integer's range fits its format (so the controller's u32/i32/u64/i64 decode).
    for (path, node) in &all {
        if node.get("type").and_then(Value::as_str) != Some("integer") {
            continue;
        }
        let min = node
            .get("minimum")
            .and_then(Value::as_f64)
            .unwrap_or(f64::NAN);
        let max = node
            .get("maximum")
            .and_then(Value::as_f64)
            .unwrap_or(f64::NAN);
        let (lo, hi) = match node.get("format").and_then(Value::as_str) {
            Some("int32") => (f64::from(i32::MIN), f64::from(i32::MAX)),
            _ => (-(2f64.powi(53)), 2f64.powi(53)),
        };
        assert!(
            lo <= min && min <= max && max <= hi,
            "{path}: [{min}, {max}] outside [{lo}, {hi}]"
        );
    }
}

#[test]
fn the_walk_finds_an_unbounded_field() {
    let mut crd = current();
    let field = crd
        .pointer_mut(
            "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/minReplicas",
        )
        .and_then(Value::as_object_mut);
    let Some(field) = field else {
        panic!("spec.minReplicas is in the CRD");
    };
    field.remove("maximum");
    assert_eq!(
        unbounded(&Value::Object(field.clone())).as_deref(),
        Some("integer without minimum and maximum")
    );
}

#[test]
fn the_crd_before_issue_14_is_refused_and_warned_about() {
    let old = load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/variantautoscaling-before-issue-14.yaml"
    ));
    let violations = check_crd(&old);
    let count = |kind| violations.iter().filter(|v| v.kind == kind).count();
    // uint32/uint64 on every unsigned count.
    assert!(count(ViolationKind::UnknownFormat) >= 10, "{violations:#?}");
    assert!(violations
        .iter()
        .any(|v| v.kind == ViolationKind::UnknownFormat
            && v.severity() == Severity::Warning
            && v.path
                .ends_with("properties[spec].properties[minReplicas].format")));
    // The quadratic uniqueness rule over unbounded variants with unbounded names.
    let over: Vec<_> = violations
        .iter()
        .filter(|v| v.kind == ViolationKind::RuleCostOverBudget)
        .collect();
    assert!(
        over.iter().any(|v| v
            .path
            .ends_with("properties[spec].x-kubernetes-validations[1].rule")
            && v.severity() == Severity::Refused),
        "{violations:#?}"
    );
    assert_eq!(
        count(ViolationKind::CrdCostOverBudget),
        1,
        "{violations:#?}"
    );
}
