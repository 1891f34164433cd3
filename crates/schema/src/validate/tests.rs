//! One test per rule kind; the expected strings are the apiserver's wording.

use super::*;
use serde_json::json;

fn schema(s: Value) -> Schema {
    match Schema::compile(&s, "openAPIV3Schema") {
        Ok(s) => s,
        Err(e) => panic!("schema does not compile: {}", aggregate(&e)),
    }
}

/// A schema with one `spec` object of the given properties (and optional extras on spec).
fn spec_schema(props: Value, extra: Value) -> Schema {
    let mut spec = json!({"type": "object", "properties": props});
    if let (Some(o), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    schema(json!({"type": "object", "properties": {"spec": spec}}))
}

fn obj(spec: Value) -> Value {
    json!({"apiVersion": "wvo.dev/v1alpha1", "kind": "VariantAutoscaling",
           "metadata": {"name": "x", "namespace": "default"}, "spec": spec})
}

/// The refusal's messages, one per error.
fn errors_of(s: &Schema, spec: Value) -> Vec<String> {
    match s.admit(&mut obj(spec), None, FieldValidation::Strict) {
        Ok(_) => vec![],
        Err(Refusal::Invalid(es)) => es.iter().map(ToString::to_string).collect(),
        Err(other) => vec![other.to_string()],
    }
}

#[test]
fn a_negative_count_breaks_the_minimum() {
    let s = spec_schema(
        json!({"variants": {"type": "array", "items": {"type": "object", "properties": {
            "minReplicas": {"type": "integer", "format": "int32", "minimum": 0}}}}}),
        json!({}),
    );
    assert_eq!(
        errors_of(&s, json!({"variants": [{"minReplicas": -1}]})),
        ["spec.variants[0].minReplicas: Invalid value: -1: spec.variants[0].minReplicas in body should be greater than or equal to 0"]
    );
    assert!(errors_of(&s, json!({"variants": [{"minReplicas": 0}]})).is_empty());
}

#[test]
fn maximum_and_exclusive_bounds_print_the_limit_like_go() {
    let s = spec_schema(
        json!({"n": {"type": "integer", "maximum": 2147483647},
               "r": {"type": "number", "minimum": 0, "exclusiveMinimum": true,
                     "maximum": 1, "exclusiveMaximum": true},
               "m": {"type": "integer", "multipleOf": 5}}),
        json!({}),
    );
    assert_eq!(
        errors_of(&s, json!({"n": 1_000_000_000_000_000_000_i64})),
        ["spec.n: Invalid value: 1000000000000000000: spec.n in body should be less than or equal to 2.147483647e+09"]
    );
    assert_eq!(
        errors_of(&s, json!({"r": 0})),
        ["spec.r: Invalid value: 0: spec.r in body should be greater than 0"]
    );
    assert_eq!(
        errors_of(&s, json!({"r": 1.0})),
        ["spec.r: Invalid value: 1: spec.r in body should be less than 1"]
    );
    assert_eq!(
        errors_of(&s, json!({"m": 7})),
        ["spec.m: Invalid value: 7: spec.m in body should be a multiple of 5"]
    );
    assert!(errors_of(&s, json!({"n": 2147483647, "r": 0.5, "m": 10})).is_empty());
}

#[test]
fn int32_format_alone_does_not_bound_an_integer_as_on_a_real_apiserver() {
    let s = spec_schema(
        json!({"n": {"type": "integer", "format": "int32"}}),
        json!({}),
    );
    assert!(errors_of(&s, json!({"n": 1_000_000_000_000_000_000_i64})).is_empty());
}

#[test]
fn wrong_types_are_refused_with_the_actual_type() {
    let s = spec_schema(
        json!({"modelID": {"type": "string"}, "n": {"type": "integer"},
               "o": {"type": "object"}, "b": {"type": "boolean"}}),
        json!({}),
    );
    assert_eq!(
        errors_of(&s, json!({"modelID": 5})),
        [
            r#"spec.modelID: Invalid value: "integer": spec.modelID in body must be of type string: "integer""#
        ]
    );
    assert_eq!(
        errors_of(&s, json!({"n": 1.5})),
        [r#"spec.n: Invalid value: "number": spec.n in body must be of type integer: "number""#]
    );
    assert_eq!(
        errors_of(&s, json!({"o": [1]})),
        [r#"spec.o: Invalid value: "array": spec.o in body must be of type object: "array""#]
    );
    // An integral float is an integer (kube-openapi), up to 2^53.
    assert!(errors_of(&s, json!({"n": 3.0, "b": true})).is_empty());
    assert_eq!(errors_of(&s, json!({"n": 1e18})).len(), 1);
}

#[test]
fn strings_lengths_patterns_and_formats() {
    let s = spec_schema(
        json!({"name": {"type": "string", "maxLength": 3, "minLength": 2,
                        "pattern": "^[a-z]+$"},
               "at": {"type": "string", "format": "date-time"}}),
        json!({}),
    );
    assert_eq!(
        errors_of(&s, json!({"name": "abcd"})),
        ["spec.name: Too long: may not be longer than 3"]
    );
    assert_eq!(
        errors_of(&s, json!({"name": "a"})),
        [r#"spec.name: Invalid value: "a": spec.name in body should be at least 2 chars long"#]
    );
    assert_eq!(
        errors_of(&s, json!({"name": "A1"})),
        [r#"spec.name: Invalid value: "A1": spec.name in body should match '^[a-z]+$'"#]
    );
    assert_eq!(
        errors_of(&s, json!({"at": "yesterday"})),
        [
            r#"spec.at: Invalid value: "yesterday": spec.at in body must be of type date-time: "yesterday""#
        ]
    );
    assert!(errors_of(&s, json!({"name": "ab", "at": "2026-01-01T00:00:00Z"})).is_empty());
}

#[test]
fn item_and_property_counts() {
    let s = spec_schema(
        json!({"list": {"type": "array", "maxItems": 2, "minItems": 1, "items": {"type": "integer"}},
               "labels": {"type": "object", "maxProperties": 1, "minProperties": 1,
                          "additionalProperties": {"type": "string"}}}),
        json!({}),
    );
    assert_eq!(
        errors_of(&s, json!({"list": [1, 2, 3]})),
        ["spec.list: Too many: 3: must have at most 2 items"]
    );
    assert_eq!(
        errors_of(&s, json!({"list": []})),
        ["spec.list: Invalid value: 0: spec.list in body should have at least 1 items"]
    );
    assert_eq!(
        errors_of(&s, json!({"labels": {"a": "1", "b": "2"}})),
        ["spec.labels: Too many: 2: must have at most 1 items"]
    );
    assert_eq!(
        errors_of(&s, json!({"labels": {"a": 1}})),
        [
            r#"spec.labels[a]: Invalid value: "integer": spec.labels[a] in body must be of type string: "integer""#
        ]
    );
}

#[test]
fn enum_values_are_listed_quoted() {
    let s = spec_schema(
        json!({"actuation": {"type": "string", "enum": ["scale", "hpa", "metric"]}}),
        json!({}),
    );
    assert_eq!(
        errors_of(&s, json!({"actuation": "magic"})),
        [
            r#"spec.actuation: Unsupported value: "magic": supported values: "scale", "hpa", "metric""#
        ]
    );
}

#[test]
fn a_missing_required_field_is_named_and_blocks_the_cel_rules() {
    let s = spec_schema(
        json!({"modelID": {"type": "string"}, "n": {"type": "integer"}}),
        json!({"required": ["modelID"],
               "x-kubernetes-validations": [{"rule": "self.n > 0", "message": "n positive"}]}),
    );
    assert_eq!(
        errors_of(&s, json!({"n": 0})),
        [
            "spec.modelID: Required value",
            r#"<nil>: Invalid value: "null": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"#,
        ]
    );
    assert_eq!(
        errors_of(&s, json!({"modelID": "m", "n": 0})),
        [r#"spec: Invalid value: "object": n positive"#]
    );
}

#[test]
fn nulls_are_dropped_unless_nullable_and_defaults_fill_missing_fields() {
    let s = spec_schema(
        json!({"a": {"type": "integer"}, "b": {"type": "integer", "nullable": true},
               "c": {"type": "string", "default": "scale"},
               "d": {"type": "integer", "default": 3},
               "list": {"type": "array", "items": {"type": "integer"}}}),
        json!({}),
    );
    let mut o = obj(json!({"a": null, "b": null, "d": null}));
    assert!(s.admit(&mut o, None, FieldValidation::Strict).is_ok());
    assert_eq!(o["spec"], json!({"b": null, "c": "scale", "d": 3}));
    assert_eq!(
        errors_of(&s, json!({"list": [null]})),
        [
            r#"spec.list[0]: Invalid value: "null": spec.list[0] in body must be of type integer: "null""#
        ]
    );
}

#[test]
fn int_or_string_and_preserved_unknown_fields() {
    let s = spec_schema(
        json!({"port": {"x-kubernetes-int-or-string": true},
               "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}),
        json!({}),
    );
    let mut o = obj(json!({"port": "http", "free": {"anything": {"x": 1}}}));
    assert!(s.admit(&mut o, None, FieldValidation::Strict).is_ok());
    assert_eq!(o["spec"]["free"], json!({"anything": {"x": 1}}));
    assert!(errors_of(&s, json!({"port": 80})).is_empty());
    assert_eq!(
        errors_of(&s, json!({"port": true})),
        [
            r#"spec.port: Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean""#
        ]
    );
}

#[test]
fn list_type_map_and_set_refuse_duplicates() {
    let s = spec_schema(
        json!({"variants": {"type": "array", "x-kubernetes-list-type": "map",
                            "x-kubernetes-list-map-keys": ["name"],
                            "items": {"type": "object", "properties": {
                                "name": {"type": "string"}, "n": {"type": "integer"}}}},
               "tags": {"type": "array", "x-kubernetes-list-type": "set",
                        "items": {"type": "string"}}}),
        json!({}),
    );
    assert_eq!(
        errors_of(
            &s,
            json!({"variants": [{"name": "a", "n": 1}, {"name": "b"}, {"name": "a", "n": 2}]})
        ),
        [r#"spec.variants[2]: Duplicate value: map[string]interface {}{"name":"a"}"#]
    );
    assert_eq!(
        errors_of(&s, json!({"tags": ["x", "y", "x"]})),
        [r#"spec.tags[2]: Duplicate value: "x""#]
    );
}

#[test]
fn unknown_fields_are_refused_warned_or_dropped_by_field_validation() {
    let s = spec_schema(
        json!({"variants": {"type": "array", "items": {"type": "object",
                "properties": {"name": {"type": "string"}}}}}),
        json!({}),
    );
    let bad = || obj(json!({"foo": 1, "variants": [{"name": "a", "bar": 2}]}));
    let strict = s.admit(&mut bad(), None, FieldValidation::Strict);
    assert_eq!(
        strict.map_err(|e| e.to_string()),
        Err(r#"strict decoding error: unknown field "spec.foo", unknown field "spec.variants[0].bar""#.to_string())
    );
    let mut o = bad();
    let warned = s.admit(&mut o, None, FieldValidation::Warn);
    assert_eq!(
        warned.map(|a| a.warnings),
        Ok(vec![
            r#"unknown field "spec.foo""#.to_string(),
            r#"unknown field "spec.variants[0].bar""#.to_string()
        ])
    );
    assert_eq!(o["spec"], json!({"variants": [{"name": "a"}]}));
    let mut o = bad();
    assert_eq!(
        s.admit(&mut o, None, FieldValidation::Ignore),
        Ok(Admitted::default())
    );
    assert_eq!(o["spec"], json!({"variants": [{"name": "a"}]}));
    // Top-level unknown fields too; apiVersion, kind and metadata are not the schema's.
    let mut o = obj(json!({}));
    o["extra"] = json!(1);
    assert_eq!(
        s.admit(&mut o, None, FieldValidation::Strict)
            .map_err(|e| e.to_string()),
        Err(r#"strict decoding error: unknown field "extra""#.to_string())
    );
}

#[test]
fn cel_rules_see_self_defaults_and_report_message_field_path_and_reason() {
    let s = spec_schema(
        json!({"minReplicas": {"type": "integer", "default": 0},
               "maxReplicas": {"type": "integer"},
               "variants": {"type": "array", "items": {"type": "object", "properties": {
                   "name": {"type": "string"}}},
                   "x-kubernetes-validations": [{"rule": "size(self) >= 1", "message": "at least one variant"}]}}),
        json!({"x-kubernetes-validations": [
            {"rule": "!has(self.maxReplicas) || self.minReplicas <= self.maxReplicas",
             "message": "minReplicas must be <= maxReplicas"},
            {"rule": "self.variants.all(v, self.variants.exists_one(w, w.name == v.name))",
             "message": "variant names must be unique"},
            {"rule": "self.minReplicas < 100", "messageExpression": "'too many: ' + string(self.minReplicas)",
             "fieldPath": ".minReplicas"},
            {"rule": "self.minReplicas != 42", "reason": "FieldValueForbidden", "message": "not 42"}]}),
    );
    assert_eq!(
        errors_of(
            &s,
            json!({"minReplicas": 3, "maxReplicas": 2, "variants": [{"name": "a"}]})
        ),
        [r#"spec: Invalid value: "object": minReplicas must be <= maxReplicas"#]
    );
    assert_eq!(
        errors_of(&s, json!({"variants": [{"name": "a"}, {"name": "a"}]})),
        [r#"spec: Invalid value: "object": variant names must be unique"#]
    );
    assert_eq!(
        errors_of(&s, json!({"variants": []})),
        [r#"spec.variants: Invalid value: "array": at least one variant"#]
    );
    assert_eq!(
        errors_of(&s, json!({"minReplicas": 100, "variants": [{"name": "a"}]})),
        [r#"spec.minReplicas: Invalid value: "object": too many: 100"#]
    );
    assert_eq!(
        errors_of(&s, json!({"minReplicas": 42, "variants": [{"name": "a"}]})),
        ["spec: Forbidden: not 42"]
    );
    assert!(errors_of(&s, json!({"maxReplicas": 2, "variants": [{"name": "a"}]})).is_empty());
}

#[test]
fn transition_rules_run_only_on_update_with_old_self() {
    let s = spec_schema(
        json!({"modelID": {"type": "string",
               "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "modelID is immutable"}]}}),
        json!({}),
    );
    let mut new = obj(json!({"modelID": "b"}));
    assert!(s.admit(&mut new, None, FieldValidation::Strict).is_ok());
    let old = obj(json!({"modelID": "a"}));
    let refused = s.admit(&mut new, Some(&old), FieldValidation::Strict);
    assert_eq!(
        refused.map_err(|e| e.to_string()),
        Err(r#"spec.modelID: Invalid value: "string": modelID is immutable"#.to_string())
    );
    assert!(s
        .admit(
            &mut obj(json!({"modelID": "a"})),
            Some(&old),
            FieldValidation::Strict
        )
        .is_ok());
}

#[test]
fn a_rule_that_cannot_evaluate_gives_an_error_never_a_panic() {
    let s = spec_schema(
        json!({"a": {"type": "integer"}, "free": {"x-kubernetes-preserve-unknown-fields": true}}),
        json!({"x-kubernetes-validations": [
            {"rule": "self.a > 0"},
            {"rule": "!has(self.free) || self.free.all(c, c != 'z')"}]}),
    );
    assert_eq!(
        errors_of(&s, json!({})),
        [r#"spec: Invalid value: "object": no such key: a evaluating rule: self.a > 0"#]
    );
    // A comprehension over a string makes cel-interpreter panic (todo!()): caught.
    let errs = errors_of(&s, json!({"a": 1, "free": "abc"}));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with(r#"spec: Invalid value: "object": "#),
        "{errs:?}"
    );
}

#[test]
fn crds_with_broken_or_unsupported_rules_or_patterns_do_not_compile() {
    let bad = |extra: Value| {
        let mut spec = json!({"type": "object", "properties": {"a": {"type": "string"}}});
        if let (Some(o), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        Schema::compile(
            &json!({"type": "object", "properties": {"spec": spec}}),
            "openAPIV3Schema",
        )
        .err()
        .map(|e| aggregate(&e))
        .unwrap_or_default()
    };
    let syntax = bad(json!({"x-kubernetes-validations": [{"rule": "(self.a"}]}));
    assert!(
        syntax.starts_with(r#"openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: Invalid value: "(self.a": compilation failed: ERROR: <input>:1:8: Syntax error: missing ')'"#),
        "{syntax}"
    );
    // cel-parser panics on a missing right operand: caught, still a refusal.
    let panicky = bad(json!({"x-kubernetes-validations": [{"rule": "self.a <"}]}));
    assert!(
        panicky.contains("compilation failed: Syntax error"),
        "{panicky}"
    );
    let unsupported =
        bad(json!({"x-kubernetes-validations": [{"rule": "self.a.lowerAscii() == self.a"}]}));
    assert!(
        unsupported.contains(r#"function "lowerAscii" is not implemented"#),
        "{unsupported}"
    );
    let regex = bad(json!({"properties": {"a": {"type": "string", "pattern": "("}}}));
    assert!(
        regex.starts_with(
            r#"openAPIV3Schema.properties[spec].properties[a].pattern: Invalid value: "(""#
        ),
        "{regex}"
    );
    assert_eq!(
        bad(json!({"x-kubernetes-validations": [{"rule": "has(self.a)"}]})),
        ""
    );
}

#[test]
fn embedded_resources_keep_their_metadata_and_need_api_version_and_kind() {
    let s = spec_schema(
        json!({"template": {"type": "object", "x-kubernetes-embedded-resource": true,
                            "properties": {"spec": {"type": "object", "properties": {"x": {"type": "integer"}}}}}}),
        json!({}),
    );
    let mut o = obj(json!({"template": {"apiVersion": "v1", "kind": "Pod",
                                        "metadata": {"name": "p"}, "spec": {"x": 1}}}));
    assert!(s.admit(&mut o, None, FieldValidation::Strict).is_ok());
    assert_eq!(o["spec"]["template"]["metadata"], json!({"name": "p"}));
    assert_eq!(
        errors_of(&s, json!({"template": {"spec": {"x": 1}}})),
        [
            "spec.template.apiVersion: Required value: must not be empty",
            "spec.template.kind: Required value: must not be empty"
        ]
    );
}

#[test]
fn several_errors_aggregate_in_brackets_with_status_causes() {
    let s = spec_schema(
        json!({"a": {"type": "integer", "minimum": 0}, "b": {"type": "string"}}),
        json!({"required": ["b"]}),
    );
    let Err(Refusal::Invalid(es)) =
        s.admit(&mut obj(json!({"a": -1})), None, FieldValidation::Strict)
    else {
        panic!("refusal expected")
    };
    assert_eq!(
        aggregate(&es),
        "[spec.b: Required value, spec.a: Invalid value: -1: spec.a in body should be greater than or equal to 0]"
    );
    assert_eq!(es[0].kind.cause_reason(), "FieldValueRequired");
    assert_eq!(es[0].body(), "Required value");
    assert_eq!(es[1].kind.cause_reason(), "FieldValueInvalid");
}

#[test]
fn field_validation_parses_the_query_values() {
    assert_eq!("Strict".parse(), Ok(FieldValidation::Strict));
    assert_eq!("".parse(), Ok(FieldValidation::Warn));
    assert_eq!("Ignore".parse(), Ok(FieldValidation::Ignore));
    assert!("strict".parse::<FieldValidation>().is_err());
}
