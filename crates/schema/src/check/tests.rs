//! Each install check fires on a small hand-written schema, and stays quiet on a good one.

use super::*;
use serde_json::{json, Value};

/// The kinds of the violations of a root schema.
fn kinds(schema: Value) -> Vec<ViolationKind> {
    check_schema(&schema, "s")
        .into_iter()
        .map(|v| v.kind)
        .collect()
}

/// A root object with one property `spec` of `spec`.
fn with_spec(spec: Value) -> Value {
    json!({"type": "object", "properties": {"spec": spec}})
}

fn crd(schema: Value) -> Value {
    json!({"spec": {"versions": [{"name": "v1", "schema": {"openAPIV3Schema": schema}}]}})
}

#[test]
fn a_bounded_structural_schema_has_no_violation() {
    let schema = with_spec(json!({
        "type": "object",
        "required": ["items"],
        "properties": {
            "count": {"type": "integer", "format": "int32", "minimum": 0, "maximum": 10, "default": 1},
            "when": {"type": "string", "format": "date-time", "maxLength": 64},
            "items": {
                "type": "array", "maxItems": 8,
                "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object", "required": ["name"],
                          "properties": {"name": {"type": "string", "maxLength": 63}}}
            },
            "free": {"x-kubernetes-preserve-unknown-fields": true},
            "port": {"x-kubernetes-int-or-string": true}
        },
        "x-kubernetes-validations": [{"rule": "size(self.items) <= 8", "message": "ok"}]
    }));
    assert_eq!(check_crd(&crd(schema)), vec![]);
}

#[test]
fn structural_rules_fire_with_the_field_path() {
    let v = check_schema(
        &with_spec(json!({"properties": {"a": {"type": "string"}}})),
        "root",
    );
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].kind, ViolationKind::MissingType);
    assert_eq!(v[0].path, "root.properties[spec].type");
    assert!(
        v[0].message.starts_with("Required value"),
        "{}",
        v[0].message
    );
    assert_eq!(v[0].severity(), Severity::Refused);

    let items_untyped = with_spec(json!({"type": "array", "items": {"description": "x"}}));
    assert_eq!(kinds(items_untyped), vec![ViolationKind::MissingType]);
    assert_eq!(
        kinds(json!({"type": "string"})),
        vec![ViolationKind::MissingType]
    );
    assert_eq!(
        kinds(with_spec(json!({"type": "date"}))),
        vec![ViolationKind::UnsupportedType]
    );
    for (spec, key) in [
        (json!({"$ref": "#/definitions/x"}), "$ref"),
        (
            json!({"type": "array", "uniqueItems": true, "items": {"type": "string"}}),
            "uniqueItems",
        ),
        (
            json!({"type": "array", "items": [{"type": "string"}]}),
            "items",
        ),
        (
            json!({"type": "array", "items": {"type": "string"}, "additionalItems": false}),
            "additionalItems",
        ),
        (
            json!({"type": "object", "patternProperties": {}}),
            "patternProperties",
        ),
        (json!({"type": "object", "definitions": {}}), "definitions"),
        (
            json!({"type": "object", "dependencies": {}}),
            "dependencies",
        ),
        (json!({"type": "null"}), "type"),
        (
            json!({"type": "object", "x-kubernetes-preserve-unknown-fields": false}),
            "x-kubernetes-preserve-unknown-fields",
        ),
    ] {
        let v = check_schema(&with_spec(spec.clone()), "s");
        assert!(
            v.iter().any(|v| v.kind == ViolationKind::ForbiddenKeyword
                && v.path == format!("s.properties[spec].{key}")),
            "{spec}: {v:?}"
        );
    }
    assert_eq!(
        kinds(with_spec(
            json!({"type": "object", "properties": {"a": {"type": "string"}},
                               "additionalProperties": {"type": "string"}})
        )),
        vec![ViolationKind::PropertiesWithAdditionalProperties]
    );
    // additionalProperties alone (a map) is fine.
    assert_eq!(
        kinds(with_spec(
            json!({"type": "object", "additionalProperties": {"type": "string"}})
        )),
        vec![]
    );
    assert_eq!(
        kinds(with_spec(
            json!({"type": "object", "anyOf": [{"type": "object", "required": ["a"]}]})
        )),
        vec![ViolationKind::StructuralInJunctor]
    );
}

#[test]
fn root_metadata_and_defaults_are_restricted() {
    let meta_ok = json!({"type": "object", "properties": {"metadata": {"type": "object",
        "properties": {"name": {"type": "string"}}}}});
    assert_eq!(kinds(meta_ok), vec![]);
    let meta_bad = json!({"type": "object", "properties": {"metadata": {"type": "object",
        "properties": {"labels": {"type": "object"}}}}});
    assert_eq!(kinds(meta_bad), vec![ViolationKind::MetadataRestricted]);
    let meta_default = json!({"type": "object", "properties": {"metadata": {"type": "object",
        "properties": {"name": {"type": "string", "default": "x"}}}}});
    assert!(kinds(meta_default).contains(&ViolationKind::BadDefault));
    assert_eq!(
        kinds(with_spec(
            json!({"type": "integer", "format": "int32", "default": "one"})
        )),
        vec![ViolationKind::BadDefault]
    );
    assert_eq!(
        kinds(with_spec(json!({"type": "string", "default": null}))),
        vec![ViolationKind::BadDefault]
    );
    assert_eq!(
        kinds(with_spec(
            json!({"type": "string", "nullable": true, "default": null})
        )),
        vec![]
    );
    assert_eq!(
        kinds(json!({"type": "object", "default": {}})),
        vec![ViolationKind::ForbiddenKeyword]
    );
}

#[test]
fn unknown_formats_are_warnings_and_known_ones_pass() {
    let v = check_schema(
        &with_spec(json!({"type": "integer", "format": "uint32", "minimum": 0})),
        "s",
    );
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].kind, ViolationKind::UnknownFormat);
    assert_eq!(v[0].severity(), Severity::Warning);
    assert_eq!(v[0].path, "s.properties[spec].format");
    assert!(v[0].message.contains("\"uint32\""), "{}", v[0].message);
    for (ty, format) in [
        ("integer", "int64"),
        ("number", "double"),
        ("number", "float"),
        ("string", "date-time"),
        ("string", "byte"),
        ("string", "quantity"),
    ] {
        assert_eq!(
            kinds(with_spec(json!({"type": ty, "format": format}))),
            vec![],
            "{ty} {format}"
        );
    }
    for (ty, format) in [
        ("integer", "double"),
        ("number", "int32"),
        ("string", "int32"),
        ("boolean", "byte"),
        ("string", "uint64"),
    ] {
        assert_eq!(
            kinds(with_spec(json!({"type": ty, "format": format}))),
            vec![ViolationKind::UnknownFormat],
            "{ty} {format}"
        );
    }
    assert_eq!(
        kinds(with_spec(
            json!({"type": "object", "title": "x", "widget": 1})
        )),
        vec![ViolationKind::UnknownKeyword]
    );
}

#[test]
fn list_type_rules_fire() {
    let list = |extra: Value, item: Value| {
        let mut s = json!({"type": "array", "items": item});
        if let (Some(s), Some(extra)) = (s.as_object_mut(), extra.as_object()) {
            s.extend(extra.clone());
        }
        kinds(with_spec(s))
    };
    let named = json!({"type": "object", "required": ["name"],
                       "properties": {"name": {"type": "string"}}});
    let map = json!({"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]});
    assert_eq!(list(map.clone(), named.clone()), vec![]);
    assert_eq!(
        list(json!({"x-kubernetes-list-type": "map"}), named.clone()),
        vec![ViolationKind::ListType]
    );
    assert_eq!(
        list(json!({"x-kubernetes-list-type": "sorted"}), named.clone()),
        vec![ViolationKind::ListType]
    );
    assert_eq!(
        list(
            json!({"x-kubernetes-list-map-keys": ["name"]}),
            named.clone()
        ),
        vec![ViolationKind::ListType]
    );
    // A key that is neither required nor defaulted, one that is nullable, one not a scalar,
    // one that is not a property, and items that are not objects.
    let optional = json!({"type": "object", "properties": {"name": {"type": "string"}}});
    assert_eq!(list(map.clone(), optional), vec![ViolationKind::ListType]);
    let defaulted = json!({"type": "object",
                           "properties": {"name": {"type": "string", "default": "a"}}});
    assert_eq!(list(map.clone(), defaulted), vec![]);
    let nullable = json!({"type": "object", "required": ["name"],
                          "properties": {"name": {"type": "string", "nullable": true}}});
    assert_eq!(list(map.clone(), nullable), vec![ViolationKind::ListType]);
    let object_key = json!({"type": "object", "required": ["name"],
                            "properties": {"name": {"type": "object"}}});
    assert_eq!(list(map.clone(), object_key), vec![ViolationKind::ListType]);
    let other_key = json!({"type": "object", "properties": {"id": {"type": "string"}}});
    assert_eq!(list(map.clone(), other_key), vec![ViolationKind::ListType]);
    assert_eq!(
        list(map, json!({"type": "string"})),
        vec![ViolationKind::ListType]
    );
    assert_eq!(
        list(
            json!({"x-kubernetes-list-type": "set"}),
            json!({"type": "object"})
        ),
        vec![ViolationKind::ListType]
    );
    assert_eq!(
        list(
            json!({"x-kubernetes-list-type": "set"}),
            json!({"type": "string"})
        ),
        vec![]
    );
    assert_eq!(
        kinds(with_spec(
            json!({"type": "string", "x-kubernetes-list-type": "atomic"})
        )),
        vec![ViolationKind::ListType]
    );
}

#[test]
fn rule_text_and_parse_errors_are_refused() {
    let rules = |rules: Value| {
        kinds(with_spec(
            json!({"type": "object", "x-kubernetes-validations": rules}),
        ))
    };
    assert_eq!(rules(json!([{"rule": " "}])), vec![ViolationKind::BadRule]);
    assert_eq!(
        rules(json!([{"rule": "true", "message": "a\nb"}])),
        vec![ViolationKind::BadRule]
    );
    assert_eq!(
        rules(json!([{"rule": "true ||\nfalse"}])),
        vec![ViolationKind::BadRule]
    );
    assert_eq!(
        rules(json!([{"rule": "true", "reason": "Because"}])),
        vec![ViolationKind::BadRule]
    );
    let v = check_schema(
        &with_spec(json!({"type": "object", "x-kubernetes-validations": [{"rule": "self.a <="}]})),
        "s",
    );
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].kind, ViolationKind::BadRule);
    assert_eq!(
        v[0].path,
        "s.properties[spec].x-kubernetes-validations[0].rule"
    );
    assert!(
        v[0].message.contains("compilation failed"),
        "{}",
        v[0].message
    );
    assert_eq!(
        rules(json!([{"rule": "self.a <= )"}])),
        vec![ViolationKind::BadRule]
    );
    assert_eq!(
        rules(json!([{"rule": "self.a.all(x, "}])),
        vec![ViolationKind::BadRule]
    );
}

/// The estimated per-evaluation cost of `rule` on `schema`.
fn cost_of(rule: &str, schema: Value) -> RuleCost {
    let mut schema = schema;
    if let Some(s) = schema.as_object_mut() {
        s.insert("x-kubernetes-validations".into(), json!([{"rule": rule}]));
    }
    let costs = rule_costs(&crd(with_spec(schema)));
    assert_eq!(costs.len(), 1, "{costs:?}");
    costs.into_iter().next().unwrap_or_else(|| unreachable!())
}

#[test]
fn costs_follow_cel_go_for_simple_rules() {
    let ints = json!({"type": "object", "properties": {
        "a": {"type": "integer"}, "b": {"type": "integer"}}});
    // self (1) .a (1) + self (1) .b (1) + the comparison (1).
    assert_eq!(cost_of("self.a <= self.b", ints.clone()).per_evaluation, 5);
    // has(self.a) is a select (1) on self (1); the logical or adds nothing.
    assert_eq!(
        cost_of("!has(self.a) || self.a <= self.b", ints.clone()).per_evaluation,
        8
    );
    // Literals are free; size() is 1.
    assert_eq!(cost_of("size('abc') == 3", ints).per_evaluation, 2);
    // String equality traverses the larger operand: maxLength 100 → 400 bytes → 40.
    let strs = json!({"type": "object", "properties": {
        "s": {"type": "string", "maxLength": 100}, "t": {"type": "string", "maxLength": 10}}});
    assert_eq!(cost_of("self.s == self.t", strs).per_evaluation, 4 + 1 + 40);
}

/// A spec with `variants` (items: a required `name` of `name_bound`) of `max_items`.
fn variants(max_items: Option<u64>, name_max_length: Option<u64>) -> Value {
    let mut name = json!({"type": "string"});
    let mut list = json!({"type": "array", "items": {"type": "object", "required": ["name"],
        "properties": {"name": name.clone(), "maxReplicas": {"type": "integer"}}}});
    if let (Some(n), Some(o)) = (name_max_length, name.as_object_mut()) {
        o.insert("maxLength".into(), json!(n));
    }
    if let Some(o) = list
        .pointer_mut("/items/properties")
        .and_then(Value::as_object_mut)
    {
        o.insert("name".into(), name);
    }
    if let (Some(n), Some(o)) = (max_items, list.as_object_mut()) {
        o.insert("maxItems".into(), json!(n));
    }
    json!({"type": "object", "required": ["variants"], "properties": {"variants": list}})
}

const UNIQUE: &str = "self.variants.all(v, self.variants.exists_one(w, w.name == v.name))";

#[test]
fn the_quadratic_uniqueness_rule_over_unbounded_variants_is_over_budget() {
    let mut schema = variants(None, None);
    if let Some(s) = schema.as_object_mut() {
        s.insert("x-kubernetes-validations".into(), json!([{"rule": UNIQUE}]));
    }
    let v = check_schema(&with_spec(schema), "s");
    let over: Vec<_> = v
        .iter()
        .filter(|v| v.kind == ViolationKind::RuleCostOverBudget)
        .collect();
    assert_eq!(over.len(), 1, "{v:?}");
    assert_eq!(
        over[0].path,
        "s.properties[spec].x-kubernetes-validations[0].rule"
    );
    assert!(
        over[0].message.contains("more than 100x"),
        "{}",
        over[0].message
    );
    assert!(
        v.iter().any(|v| v.kind == ViolationKind::CrdCostOverBudget),
        "{v:?}"
    );
    // The item of `variants` is at least {"name":""} = 2 + 4 + 2 + 4 = 12 bytes, so the
    // apiserver assumes (3 MiB - 2) / 13 of them.
    let n = (MAX_REQUEST_SIZE_BYTES - 2) / 13;
    let cost = cost_of(UNIQUE, variants(None, None)).per_evaluation;
    assert!(cost >= n * n, "{cost} < {n}²");
}

#[test]
fn bounds_make_the_same_rule_cheap_and_the_estimate_grows_with_them() {
    let small = cost_of(UNIQUE, variants(Some(32), Some(63))).per_evaluation;
    // w.name == v.name: 4 selects/idents + 1 + 252 bytes / 10 = 31; exists_one's step
    // `p ? accu + 1 : accu` 31 + 2, × 32, + range 2 + result 2 = 1060; all's step
    // `@not_strictly_false(accu)` 2 + `accu && inner` 1061, × 32, + range 2 + result 1.
    assert_eq!(small, 32 * (2 + 1 + (32 * (31 + 2) + 2 + 2)) + 2 + 1);
    assert!(small <= STATIC_ESTIMATED_COST_LIMIT, "{small}");
    let bigger_list = cost_of(UNIQUE, variants(Some(64), Some(63))).per_evaluation;
    let longer_names = cost_of(UNIQUE, variants(Some(32), Some(253))).per_evaluation;
    assert!(
        bigger_list > 3 * small,
        "{bigger_list} vs {small}: quadratic in maxItems"
    );
    assert!(longer_names > small, "{longer_names} vs {small}");
    // Bounded lists but unbounded names: each comparison may scan 3 MiB.
    let unbounded_names = cost_of(UNIQUE, variants(Some(32), None)).per_evaluation;
    assert!(
        unbounded_names > STATIC_ESTIMATED_COST_LIMIT,
        "{unbounded_names}"
    );
}

#[test]
fn a_rule_under_a_list_is_multiplied_by_its_cardinality() {
    let item_rule = |max_items: Option<u64>| {
        let mut list = json!({"type": "array", "items": {"type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "x-kubernetes-validations": [{"rule": "self.a <= self.b"}]}});
        if let (Some(n), Some(o)) = (max_items, list.as_object_mut()) {
            o.insert("maxItems".into(), json!(n));
        }
        let costs = rule_costs(&crd(with_spec(json!({"type": "object",
            "properties": {"list": list}}))));
        assert_eq!(costs.len(), 1, "{costs:?}");
        costs[0].clone()
    };
    let bounded = item_rule(Some(10));
    assert_eq!(
        (bounded.per_evaluation, bounded.cardinality, bounded.total),
        (5, 10, 50)
    );
    // Unbounded: as many items of the smallest size ({} = 2 bytes) as fit in a request.
    let unbounded = item_rule(None);
    assert_eq!(unbounded.cardinality, MAX_REQUEST_SIZE_BYTES / 3);
    assert_eq!(unbounded.total, 5 * (MAX_REQUEST_SIZE_BYTES / 3));
}

#[test]
fn unmodelled_functions_are_reported() {
    let v = check_schema(
        &with_spec(
            json!({"type": "object", "properties": {"s": {"type": "string", "maxLength": 8}},
            "x-kubernetes-validations": [{"rule": "self.s.lowerAscii() == 'a'"}]}),
        ),
        "s",
    );
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].kind, ViolationKind::CostNotModelled);
    assert_eq!(v[0].severity(), Severity::Warning);
}
