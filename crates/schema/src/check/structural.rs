//! The apiserver's structural-schema, format and list-type rules for a CRD schema
//! (k8s.io/apiextensions-apiserver `validation.go`, `schema/validation.go`, `formats.go`).

use super::{Violation, ViolationKind as K};
use serde_json::{Map, Value};

/// The OpenAPI v3 types a CRD schema may use.
const TYPES: [&str; 6] = ["string", "number", "integer", "boolean", "array", "object"];

/// String formats the apiserver validates (go-openapi names, compared without `-`).
const STRING_FORMATS: [&str; 25] = [
    "bsonobjectid",
    "uri",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "cidr",
    "mac",
    "uuid",
    "uuid3",
    "uuid4",
    "uuid5",
    "isbn",
    "isbn10",
    "isbn13",
    "creditcard",
    "ssn",
    "hexcolor",
    "rgbcolor",
    "byte",
    "password",
    "date",
    "duration",
    "datetime",
    "quantity",
];

/// Every key of the CRD schema type (`JSONSchemaProps`, JSON names).
const KNOWN_KEYS: [&str; 44] = [
    "id",
    "$schema",
    "$ref",
    "description",
    "type",
    "format",
    "title",
    "default",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "multipleOf",
    "enum",
    "maxProperties",
    "minProperties",
    "required",
    "items",
    "allOf",
    "oneOf",
    "anyOf",
    "not",
    "properties",
    "additionalProperties",
    "patternProperties",
    "dependencies",
    "additionalItems",
    "definitions",
    "externalDocs",
    "example",
    "nullable",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-int-or-string",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-list-type",
    "x-kubernetes-map-type",
    "x-kubernetes-validations",
];

/// Keys allowed at the root of a schema (the apiserver's `allowedFieldsAtRootSchema`).
const ROOT_KEYS: [&str; 22] = [
    "description",
    "type",
    "format",
    "title",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "multipleOf",
    "required",
    "items",
    "properties",
    "externalDocs",
    "example",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-validations",
];

/// Keys that make a schema structural, forbidden inside `allOf`/`anyOf`/`oneOf`/`not`.
const NOT_IN_JUNCTOR: [&str; 5] = [
    "type",
    "default",
    "nullable",
    "description",
    "additionalProperties",
];

/// `x-kubernetes-validations[].reason` values the apiserver accepts.
const RULE_REASONS: [&str; 4] = [
    "FieldValueRequired",
    "FieldValueForbidden",
    "FieldValueInvalid",
    "FieldValueDuplicate",
];

/// Where a node sits.
#[derive(Clone, Copy)]
struct At {
    /// The schema's root.
    root: bool,
    /// Under the root's `metadata` (defaults forbidden).
    in_metadata: bool,
    /// Inside `allOf`/`anyOf`/`oneOf`/`not` (value validation only).
    in_junctor: bool,
    /// What a missing type is called: `specified object fields`, `specified array items`.
    role: &'static str,
}

/// The violations of the structural, format and list-type rules in `schema` (at `path`).
pub(super) fn check(schema: &Value, path: &str) -> Vec<Violation> {
    let mut out = Vec::new();
    let at = At {
        root: true,
        in_metadata: false,
        in_junctor: false,
        role: "the root",
    };
    node(schema, path, at, &mut out);
    out
}

fn type_of(s: &Map<String, Value>) -> Option<&str> {
    s.get("type").and_then(Value::as_str)
}

fn flag(s: &Map<String, Value>, key: &str) -> bool {
    s.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn node(schema: &Value, path: &str, at: At, out: &mut Vec<Violation>) {
    let Some(s) = schema.as_object() else {
        out.push(Violation::new(
            K::UnsupportedType,
            path,
            "Invalid value: a schema must be an object",
        ));
        return;
    };
    for key in s.keys() {
        if !KNOWN_KEYS.contains(&key.as_str()) {
            out.push(Violation::new(
                K::UnknownKeyword,
                format!("{path}.{key}"),
                "Warning: unknown field, dropped by the apiserver",
            ));
        }
        if at.root && !ROOT_KEYS.contains(&key.as_str()) && KNOWN_KEYS.contains(&key.as_str()) {
            out.push(Violation::new(
                K::ForbiddenKeyword,
                format!("{path}.{key}"),
                "Forbidden: must not be used at the root",
            ));
        }
        if at.in_junctor
            && (NOT_IN_JUNCTOR.contains(&key.as_str()) || key.starts_with("x-kubernetes-"))
        {
            out.push(Violation::new(
                K::StructuralInJunctor,
                format!("{path}.{key}"),
                "Forbidden: must not be used inside a value validation (allOf, anyOf, oneOf, not)",
            ));
        }
    }
    types(s, path, at, out);
    forbidden(s, path, out);
    if let (Some(props), Some(extra)) = (s.get("properties"), s.get("additionalProperties")) {
        let excludes = extra.is_object() || extra == &Value::Bool(false);
        if props.as_object().is_some_and(|p| !p.is_empty()) && excludes {
            out.push(Violation::new(
                K::PropertiesWithAdditionalProperties,
                format!("{path}.additionalProperties"),
                "Forbidden: additionalProperties and properties are mutual exclusive",
            ));
        }
    }
    default(s, path, at, out);
    format(s, path, out);
    list_type(s, path, out);
    rules_text(s, path, out);
    if at.root {
        metadata(s, path, out);
    }

    // Children.
    if let Some(props) = s.get("properties").and_then(Value::as_object) {
        for (name, child) in props {
            let child_at = At {
                root: false,
                in_metadata: at.in_metadata || (at.root && name == "metadata"),
                in_junctor: at.in_junctor,
                role: "specified object fields",
            };
            node(child, &format!("{path}.properties[{name}]"), child_at, out);
        }
    }
    if let Some(extra) = s.get("additionalProperties").filter(|v| v.is_object()) {
        let child_at = At {
            root: false,
            role: "specified object fields",
            ..at
        };
        node(
            extra,
            &format!("{path}.additionalProperties"),
            child_at,
            out,
        );
    }
    if let Some(items) = s.get("items").filter(|v| v.is_object()) {
        let child_at = At {
            root: false,
            role: "specified array items",
            ..at
        };
        node(items, &format!("{path}.items"), child_at, out);
    }
    for junctor in ["allOf", "anyOf", "oneOf"] {
        if let Some(list) = s.get(junctor).and_then(Value::as_array) {
            for (i, child) in list.iter().enumerate() {
                let child_at = At {
                    root: false,
                    in_junctor: true,
                    ..at
                };
                node(child, &format!("{path}.{junctor}[{i}]"), child_at, out);
            }
        }
    }
    if let Some(child) = s.get("not") {
        let child_at = At {
            root: false,
            in_junctor: true,
            ..at
        };
        node(child, &format!("{path}.not"), child_at, out);
    }
}

fn types(s: &Map<String, Value>, path: &str, at: At, out: &mut Vec<Violation>) {
    match s.get("type") {
        Some(Value::String(t)) if t == "null" => out.push(Violation::new(
            K::ForbiddenKeyword,
            format!("{path}.type"),
            "Forbidden: type cannot be set to null, use nullable as an alternative",
        )),
        Some(Value::String(t)) if !TYPES.contains(&t.as_str()) => out.push(Violation::new(
            K::UnsupportedType,
            format!("{path}.type"),
            format!(
                "Unsupported value: \"{t}\": supported values: \"{}\"",
                TYPES.join("\", \"")
            ),
        )),
        Some(Value::String(t)) => {
            if at.root && t != "object" {
                out.push(Violation::new(
                    K::MissingType,
                    format!("{path}.type"),
                    "Invalid value: must be object at the root",
                ));
            }
        }
        Some(other) => out.push(Violation::new(
            K::UnsupportedType,
            format!("{path}.type"),
            format!("Invalid value: {other}: must be one string"),
        )),
        None => {
            let exempt = flag(s, "x-kubernetes-int-or-string")
                || (flag(s, "x-kubernetes-preserve-unknown-fields") && !at.root);
            if !at.in_junctor && !exempt {
                out.push(Violation::new(
                    K::MissingType,
                    format!("{path}.type"),
                    format!("Required value: must not be empty for {}", at.role),
                ));
            }
        }
    }
}

fn forbidden(s: &Map<String, Value>, path: &str, out: &mut Vec<Violation>) {
    for (key, what) in [
        ("$ref", "$ref is not supported"),
        ("id", "id is not supported"),
        ("additionalItems", "additionalItems is not supported"),
        ("patternProperties", "patternProperties is not supported"),
        ("definitions", "definitions is not supported"),
        ("dependencies", "dependencies is not supported"),
    ] {
        if s.contains_key(key) {
            out.push(Violation::new(
                K::ForbiddenKeyword,
                format!("{path}.{key}"),
                format!("Forbidden: {what}"),
            ));
        }
    }
    if flag(s, "uniqueItems") {
        out.push(Violation::new(
            K::ForbiddenKeyword,
            format!("{path}.uniqueItems"),
            "Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        ));
    }
    if s.get("items").is_some_and(Value::is_array) {
        out.push(Violation::new(
            K::ForbiddenKeyword,
            format!("{path}.items"),
            "Forbidden: items must be a schema object and not an array",
        ));
    }
    if s.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(false)) {
        out.push(Violation::new(
            K::ForbiddenKeyword,
            format!("{path}.x-kubernetes-preserve-unknown-fields"),
            "Invalid value: false: must be true or undefined",
        ));
    }
}

/// Whether `value` has the JSON type `ty` (an integer-valued number counts as an integer).
fn has_type(value: &Value, ty: &str) -> bool {
    match ty {
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        "number" => value.is_number(),
        "integer" => {
            value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => true,
    }
}

fn default(s: &Map<String, Value>, path: &str, at: At, out: &mut Vec<Violation>) {
    let Some(value) = s.get("default") else {
        return;
    };
    let at_path = format!("{path}.default");
    if at.in_metadata {
        out.push(Violation::new(
            K::BadDefault,
            at_path,
            "Forbidden: must not be set in top-level metadata",
        ));
        return;
    }
    if value.is_null() {
        if !flag(s, "nullable") {
            out.push(Violation::new(
                K::BadDefault,
                at_path,
                "Invalid value: null: must not be null unless nullable",
            ));
        }
        return;
    }
    if let Some(ty) = type_of(s) {
        if !has_type(value, ty) {
            out.push(Violation::new(
                K::BadDefault,
                at_path,
                format!("Invalid value: {value}: must be of type {ty}"),
            ));
        }
    }
}

fn format(s: &Map<String, Value>, path: &str, out: &mut Vec<Violation>) {
    let Some(format) = s.get("format").and_then(Value::as_str) else {
        return;
    };
    if format.is_empty() {
        return;
    }
    let known = match type_of(s).unwrap_or("") {
        "" | "string" => STRING_FORMATS.contains(&format.replace('-', "").as_str()),
        "integer" => format == "int32" || format == "int64",
        "number" => format == "float" || format == "double",
        _ => false,
    };
    if !known {
        out.push(Violation::new(
            K::UnknownFormat,
            format!("{path}.format"),
            format!(
                "Warning: unrecognized format \"{format}\" (ignored: the apiserver validates nothing for it)"
            ),
        ));
    }
}

fn list_type(s: &Map<String, Value>, path: &str, out: &mut Vec<Violation>) {
    let ty = type_of(s);
    if let Some(map_type) = s.get("x-kubernetes-map-type") {
        if ty != Some("object") {
            out.push(Violation::new(
                K::ListType,
                format!("{path}.type"),
                "Invalid value: must be object if x-kubernetes-map-type is specified",
            ));
        }
        if !matches!(map_type.as_str(), Some("atomic" | "granular")) {
            out.push(Violation::new(
                K::ListType,
                format!("{path}.x-kubernetes-map-type"),
                format!(
                    "Unsupported value: {map_type}: supported values: \"atomic\", \"granular\""
                ),
            ));
        }
    }
    let list_type = s.get("x-kubernetes-list-type");
    let keys: Vec<&Value> = s
        .get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
        .map(|k| k.iter().collect())
        .unwrap_or_default();
    if !keys.is_empty() && list_type.and_then(Value::as_str) != Some("map") {
        out.push(Violation::new(
            K::ListType,
            format!("{path}.x-kubernetes-list-type"),
            "Invalid value: must be map if x-kubernetes-list-map-keys is non-empty",
        ));
    }
    let Some(list_type) = list_type else {
        return;
    };
    if ty != Some("array") {
        out.push(Violation::new(
            K::ListType,
            format!("{path}.type"),
            "Invalid value: must be array if x-kubernetes-list-type is specified",
        ));
    }
    let list_type = match list_type.as_str() {
        Some(t @ ("atomic" | "set" | "map")) => t,
        _ => {
            out.push(Violation::new(
                K::ListType,
                format!("{path}.x-kubernetes-list-type"),
                format!(
                    "Unsupported value: {list_type}: supported values: \"atomic\", \"set\", \"map\""
                ),
            ));
            return;
        }
    };
    let items = s.get("items").and_then(Value::as_object);
    if list_type != "atomic" && items.is_some_and(|i| flag(i, "nullable")) {
        out.push(Violation::new(
            K::ListType,
            format!("{path}.items.nullable"),
            format!("Forbidden: cannot be nullable when x-kubernetes-list-type is {list_type}"),
        ));
    }
    if list_type == "set" {
        if let Some(items) = items {
            let atomic = match type_of(items) {
                Some("object") => {
                    items.get("x-kubernetes-map-type").and_then(Value::as_str) == Some("atomic")
                }
                Some("array") => matches!(
                    items.get("x-kubernetes-list-type").and_then(Value::as_str),
                    None | Some("atomic")
                ),
                _ => true,
            };
            if !atomic {
                out.push(Violation::new(
                    K::ListType,
                    format!("{path}.items"),
                    "Invalid value: must be atomic as item of a list with x-kubernetes-list-type=set",
                ));
            }
        }
    }
    if list_type != "map" {
        return;
    }
    if keys.is_empty() {
        out.push(Violation::new(
            K::ListType,
            format!("{path}.x-kubernetes-list-map-keys"),
            "Required value: must not be empty if x-kubernetes-list-type is map",
        ));
    }
    let Some(items) = items else {
        out.push(Violation::new(
            K::ListType,
            format!("{path}.items"),
            "Required value: must have a schema if x-kubernetes-list-type is map",
        ));
        return;
    };
    if type_of(items) != Some("object") {
        out.push(Violation::new(
            K::ListType,
            format!("{path}.items.type"),
            "Invalid value: must be object if parent array's x-kubernetes-list-type is map",
        ));
        return;
    }
    let required: Vec<&str> = items
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let props = items.get("properties").and_then(Value::as_object);
    let mut seen = Vec::new();
    for key in keys {
        let Some(key) = key.as_str() else {
            continue;
        };
        if seen.contains(&key) {
            out.push(Violation::new(
                K::ListType,
                format!("{path}.x-kubernetes-list-map-keys"),
                "Invalid value: must not contain duplicate entries",
            ));
        }
        seen.push(key);
        let Some(prop) = props.and_then(|p| p.get(key)).and_then(Value::as_object) else {
            out.push(Violation::new(
                K::ListType,
                format!("{path}.x-kubernetes-list-map-keys"),
                format!("Invalid value: \"{key}\": entries must all be names of item properties"),
            ));
            continue;
        };
        let key_path = format!("{path}.items.properties[{key}]");
        if matches!(type_of(prop), Some("array" | "object")) {
            out.push(Violation::new(
                K::ListType,
                format!("{key_path}.type"),
                "Invalid value: must be a scalar type if parent array's x-kubernetes-list-type is map",
            ));
        }
        if !required.contains(&key) && !prop.contains_key("default") {
            out.push(Violation::new(
                K::ListType,
                format!("{key_path}.default"),
                "Required value: this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property",
            ));
        }
        if flag(prop, "nullable") {
            out.push(Violation::new(
                K::ListType,
                format!("{key_path}.nullable"),
                "Forbidden: this property is in x-kubernetes-list-map-keys, so it cannot be nullable",
            ));
        }
    }
}

fn rules_text(s: &Map<String, Value>, path: &str, out: &mut Vec<Violation>) {
    let Some(rules) = s.get("x-kubernetes-validations") else {
        return;
    };
    let Some(rules) = rules.as_array() else {
        out.push(Violation::new(
            K::BadRule,
            format!("{path}.x-kubernetes-validations"),
            "Invalid value: must be a list of rules",
        ));
        return;
    };
    for (i, rule) in rules.iter().enumerate() {
        let at = format!("{path}.x-kubernetes-validations[{i}]");
        let text = rule.get("rule").and_then(Value::as_str).unwrap_or("");
        let message = rule.get("message").and_then(Value::as_str);
        let newline = |t: &str| t.contains('\n') || t.contains('\r');
        if text.trim().is_empty() {
            out.push(Violation::new(
                K::BadRule,
                format!("{at}.rule"),
                "Required value: rule is not specified",
            ));
        } else if message.is_some_and(|m| !m.is_empty() && m.trim().is_empty()) {
            out.push(Violation::new(
                K::BadRule,
                format!("{at}.message"),
                "Invalid value: message must be non-empty if specified",
            ));
        } else if message.is_some_and(|m| newline(m.trim())) {
            out.push(Violation::new(
                K::BadRule,
                format!("{at}.message"),
                "Invalid value: message must not contain line breaks",
            ));
        } else if newline(text.trim()) && message.is_none_or(|m| m.trim().is_empty()) {
            out.push(Violation::new(
                K::BadRule,
                format!("{at}.message"),
                "Required value: message must be specified if rule contains line breaks",
            ));
        }
        if let Some(reason) = rule.get("reason").and_then(Value::as_str) {
            if !RULE_REASONS.contains(&reason) {
                out.push(Violation::new(
                    K::BadRule,
                    format!("{at}.reason"),
                    format!(
                        "Unsupported value: \"{reason}\": supported values: \"{}\"",
                        RULE_REASONS.join("\", \"")
                    ),
                ));
            }
        }
    }
}

/// The root's `metadata` may only say that `name` and `generateName` are strings.
fn metadata(s: &Map<String, Value>, path: &str, out: &mut Vec<Violation>) {
    let Some(meta) = s
        .get("properties")
        .and_then(|p| p.get("metadata"))
        .and_then(Value::as_object)
    else {
        return;
    };
    let plain_string = |v: &Value| {
        v.as_object().is_some_and(|o| {
            o.keys().all(|k| k == "type" || k == "description") && type_of(o) == Some("string")
        })
    };
    let ok = meta.iter().all(|(k, v)| match k.as_str() {
        "type" => v == "object",
        "description" => true,
        "properties" => v.as_object().is_some_and(|p| {
            p.iter()
                .all(|(n, s)| (n == "name" || n == "generateName") && plain_string(s))
        }),
        _ => false,
    });
    if !ok {
        out.push(Violation::new(
            K::MetadataRestricted,
            format!("{path}.properties[metadata]"),
            "Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified",
        ));
    }
}
