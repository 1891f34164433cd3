//! The three walks over an object and its schema: normalize (prune, nulls, defaults),
//! check (the OpenAPI rules and list types) and rules (CEL).

use super::gofmt::go_float;
use super::{cel, ErrorKind, FieldError, ListType, Node, Ty};
use serde_json::{Map, Value};

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

fn key(path: &str, k: &str) -> String {
    format!("{path}[{k}]")
}

/// Fields every object (and embedded resource) has outside its schema.
const META: [&str; 3] = ["apiVersion", "kind", "metadata"];

/// Prune unknown fields (their paths go to `unknown`), drop nulls of non-nullable fields,
/// apply defaults.
pub(super) fn normalize(
    node: &Node,
    v: &mut Value,
    path: &str,
    unknown: &mut Vec<String>,
    resource: bool,
) {
    match v {
        Value::Object(map) => {
            if node.ty.is_some_and(|t| t != Ty::Object) {
                return;
            }
            fill_defaults(node, map);
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                if resource && META.contains(&k.as_str()) {
                    continue;
                }
                let Some(val) = map.get_mut(&k) else { continue };
                if let Some(c) = node.properties.get(&k) {
                    normalize(c, val, &child(path, &k), unknown, c.embedded_resource);
                } else if let Some(a) = &node.additional {
                    normalize(a, val, &key(path, &k), unknown, a.embedded_resource);
                } else if !node.preserve_unknown {
                    unknown.push(child(path, &k));
                    map.remove(&k);
                }
            }
        }
        Value::Array(items) => {
            if let Some(it) = &node.items {
                for (i, x) in items.iter_mut().enumerate() {
                    normalize(it, x, &index(path, i), unknown, it.embedded_resource);
                }
            }
        }
        _ => {}
    }
}

/// Defaults of missing (or null, non-nullable) properties; nulls without a default dropped.
fn fill_defaults(node: &Node, map: &mut Map<String, Value>) {
    for (k, c) in &node.properties {
        match map.get(k) {
            Some(Value::Null) if !c.nullable => match &c.default {
                Some(d) => {
                    map.insert(k.clone(), d.clone());
                }
                None => {
                    map.remove(k);
                }
            },
            None => {
                if let Some(d) = &c.default {
                    map.insert(k.clone(), d.clone());
                }
            }
            _ => {}
        }
    }
}

/// The JSON type of a decoded value, as kube-openapi names it (an integer is a number that
/// fits an int64 and was written without a fraction).
fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A float a JSON integer field accepts (kube-openapi: integral and within ±(2^53-1)).
fn is_json_integer(f: f64) -> bool {
    const MAX: f64 = 9_007_199_254_740_991.0;
    f.is_finite() && f.abs() <= MAX && f.fract() == 0.0
}

fn type_matches(ty: Ty, v: &Value) -> bool {
    match (ty, v) {
        (Ty::Object, Value::Object(_))
        | (Ty::Array, Value::Array(_))
        | (Ty::String, Value::String(_))
        | (Ty::Boolean, Value::Bool(_))
        | (Ty::Number, Value::Number(_)) => true,
        (Ty::Integer, Value::Number(n)) => {
            n.is_i64()
                || n.as_f64()
                    .is_some_and(|f| !n.is_u64() && is_json_integer(f))
        }
        _ => false,
    }
}

fn type_error(path: &str, expected: &str, v: &Value) -> FieldError {
    let actual = json_type(v);
    FieldError::new(
        ErrorKind::TypeInvalid,
        path,
        Some(Value::String(actual.into())),
        format!("{path} in body must be of type {expected}: \"{actual}\""),
    )
}

/// Validate `v` against `node`: the OpenAPI keywords and the list types.
pub(super) fn check(
    node: &Node,
    v: &Value,
    path: &str,
    errors: &mut Vec<FieldError>,
    resource: bool,
) {
    if v.is_null() {
        if !node.nullable && (node.ty.is_some() || node.int_or_string) {
            let expected = node.ty.map_or("integer,string", Ty::as_str);
            errors.push(type_error(path, expected, v));
        }
        return;
    }
    if node.int_or_string {
        if !matches!(v, Value::String(_)) && !type_matches(Ty::Integer, v) {
            errors.push(type_error(path, "integer,string", v));
            return;
        }
    } else if let Some(ty) = node.ty {
        if !type_matches(ty, v) {
            errors.push(type_error(path, ty.as_str(), v));
            return;
        }
    }
    if let Some(values) = &node.enumeration {
        if !values.iter().any(|e| e == v) {
            let supported: Vec<String> = values
                .iter()
                .map(|e| match e {
                    Value::String(s) => super::gofmt::go_quote(s),
                    other => super::gofmt::go_quote(&other.to_string()),
                })
                .collect();
            errors.push(FieldError::new(
                ErrorKind::NotSupported,
                path,
                Some(v.clone()),
                format!("supported values: {}", supported.join(", ")),
            ));
        }
    }
    match v {
        Value::Number(n) => check_number(node, v, n.as_f64().unwrap_or(f64::NAN), path, errors),
        Value::String(s) => check_string(node, v, s, path, errors),
        Value::Array(items) => check_array(node, items, path, errors),
        Value::Object(map) => check_object(node, map, path, errors, resource),
        _ => {}
    }
}

fn check_number(node: &Node, v: &Value, f: f64, path: &str, errors: &mut Vec<FieldError>) {
    let mut fail = |detail: String| {
        errors.push(FieldError::new(
            ErrorKind::Invalid,
            path,
            Some(v.clone()),
            detail,
        ));
    };
    if let Some(max) = node.maximum {
        if node.exclusive_maximum && f >= max {
            fail(format!(
                "{path} in body should be less than {}",
                go_float(max)
            ));
        } else if f > max {
            fail(format!(
                "{path} in body should be less than or equal to {}",
                go_float(max)
            ));
        }
    }
    if let Some(min) = node.minimum {
        if node.exclusive_minimum && f <= min {
            fail(format!(
                "{path} in body should be greater than {}",
                go_float(min)
            ));
        } else if f < min {
            fail(format!(
                "{path} in body should be greater than or equal to {}",
                go_float(min)
            ));
        }
    }
    if let Some(m) = node.multiple_of.filter(|m| *m > 0.0) {
        let q = f / m;
        if (q - q.round()).abs() > 1e-9 {
            fail(format!(
                "{path} in body should be a multiple of {}",
                go_float(m)
            ));
        }
    }
}

fn check_string(node: &Node, v: &Value, s: &str, path: &str, errors: &mut Vec<FieldError>) {
    let len = s.chars().count() as u64;
    if let Some(max) = node.max_length {
        if len > max {
            errors.push(FieldError::new(
                ErrorKind::TooLong,
                path,
                Some(v.clone()),
                format!("may not be longer than {max}"),
            ));
        }
    }
    if let Some(min) = node.min_length {
        if len < min {
            errors.push(FieldError::new(
                ErrorKind::Invalid,
                path,
                Some(v.clone()),
                format!("{path} in body should be at least {min} chars long"),
            ));
        }
    }
    if let Some(format) = node.format.as_deref() {
        if !format_ok(format, s) {
            errors.push(FieldError::new(
                ErrorKind::TypeInvalid,
                path,
                Some(v.clone()),
                format!(
                    "{path} in body must be of type {format}: {}",
                    super::gofmt::go_quote(s)
                ),
            ));
        }
    }
    if let Some((src, re)) = &node.pattern {
        if !re.is_match(s) {
            errors.push(FieldError::new(
                ErrorKind::Invalid,
                path,
                Some(v.clone()),
                format!("{path} in body should match '{src}'"),
            ));
        }
    }
}

/// `maxItems`/`minItems` or `maxProperties`/`minProperties` of a node holding `n` `noun`s
/// (the apiserver says "items" for both maxima).
fn check_count(
    n: u64,
    max: Option<u64>,
    min: Option<u64>,
    noun: &str,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    if let Some(max) = max.filter(|&max| n > max) {
        errors.push(FieldError::new(
            ErrorKind::TooMany,
            path,
            Some(Value::from(n)),
            format!("must have at most {max} items"),
        ));
    }
    if let Some(min) = min.filter(|&min| n < min) {
        errors.push(FieldError::new(
            ErrorKind::Invalid,
            path,
            Some(Value::from(n)),
            format!("{path} in body should have at least {min} {noun}"),
        ));
    }
}

fn check_array(node: &Node, items: &[Value], path: &str, errors: &mut Vec<FieldError>) {
    let n = items.len() as u64;
    check_count(n, node.max_items, node.min_items, "items", path, errors);
    if let Some(it) = &node.items {
        for (i, x) in items.iter().enumerate() {
            check(it, x, &index(path, i), errors, it.embedded_resource);
        }
    }
    match &node.list_type {
        ListType::Atomic => {}
        ListType::Set => {
            for (i, x) in items.iter().enumerate() {
                if items[..i].contains(x) {
                    errors.push(FieldError::new(
                        ErrorKind::Duplicate,
                        &index(path, i),
                        Some(x.clone()),
                        "",
                    ));
                }
            }
        }
        ListType::Map(keys) => {
            let mut seen: Vec<Value> = Vec::new();
            for (i, x) in items.iter().enumerate() {
                let Some(k) = map_key(keys, x) else { continue };
                if seen.contains(&k) {
                    errors.push(FieldError::new(
                        ErrorKind::Duplicate,
                        &index(path, i),
                        Some(k),
                        "",
                    ));
                } else {
                    seen.push(k);
                }
            }
        }
    }
}

/// The key fields of a `map` list item (`{"name":"a"}`), `None` for a non-object item.
pub(super) fn map_key(keys: &[String], item: &Value) -> Option<Value> {
    let o = item.as_object()?;
    let mut k = Map::new();
    for name in keys {
        if let Some(v) = o.get(name) {
            k.insert(name.clone(), v.clone());
        }
    }
    Some(Value::Object(k))
}

fn check_object(
    node: &Node,
    map: &Map<String, Value>,
    path: &str,
    errors: &mut Vec<FieldError>,
    resource: bool,
) {
    let n = map
        .keys()
        .filter(|k| !(resource && META.contains(&k.as_str())))
        .count() as u64;
    check_count(
        n,
        node.max_properties,
        node.min_properties,
        "properties",
        path,
        errors,
    );
    for r in &node.required {
        if resource && META.contains(&r.as_str()) {
            continue;
        }
        if !map.contains_key(r) {
            errors.push(FieldError::new(
                ErrorKind::Required,
                &child(path, r),
                None,
                "",
            ));
        }
    }
    for (k, val) in map {
        if resource && META.contains(&k.as_str()) {
            continue;
        }
        if let Some(c) = node.properties.get(k) {
            check(c, val, &child(path, k), errors, c.embedded_resource);
        } else if let Some(a) = &node.additional {
            check(a, val, &key(path, k), errors, a.embedded_resource);
        }
    }
    if node.embedded_resource {
        for f in ["apiVersion", "kind"] {
            if map.get(f).and_then(Value::as_str).is_none_or(str::is_empty) {
                errors.push(FieldError::new(
                    ErrorKind::Required,
                    &child(path, f),
                    None,
                    "must not be empty",
                ));
            }
        }
    }
}

/// Evaluate the CEL rules of `node` and of everything below it. `old` is the stored value
/// at the same place (for transition rules), when it can be correlated.
pub(super) fn rules(
    node: &Node,
    v: &Value,
    old: Option<&Value>,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    if v.is_null() {
        return;
    }
    if !node.rules.is_empty() {
        let this = cel::to_cel(node, v);
        let before = old.filter(|o| !o.is_null()).map(|o| cel::to_cel(node, o));
        for r in &node.rules {
            if let Some(e) = r.evaluate(node, &this, before.as_ref(), path) {
                errors.push(e);
            }
        }
    }
    match v {
        Value::Object(map) => {
            for (k, val) in map {
                let old_val = old.and_then(|o| o.get(k));
                if let Some(c) = node.properties.get(k) {
                    rules(c, val, old_val, &child(path, k), errors);
                } else if let Some(a) = &node.additional {
                    rules(a, val, old_val, &key(path, k), errors);
                }
            }
        }
        Value::Array(items) => {
            let Some(it) = &node.items else { return };
            let old_items = old.and_then(Value::as_array);
            for (i, x) in items.iter().enumerate() {
                let old_x = old_items.and_then(|olds| match &node.list_type {
                    ListType::Atomic => None,
                    ListType::Set => olds.iter().find(|o| *o == x),
                    ListType::Map(keys) => {
                        let k = map_key(keys, x);
                        olds.iter().find(|o| map_key(keys, o) == k)
                    }
                });
                rules(it, x, old_x, &index(path, i), errors);
            }
        }
        _ => {}
    }
}

/// The string formats checked (others, like the apiserver's unknown ones, pass).
fn format_ok(format: &str, s: &str) -> bool {
    use regex::Regex;
    use std::sync::OnceLock;
    static DATE_TIME: OnceLock<Option<Regex>> = OnceLock::new();
    static DATE: OnceLock<Option<Regex>> = OnceLock::new();
    static BYTE: OnceLock<Option<Regex>> = OnceLock::new();
    static UUID: OnceLock<Option<Regex>> = OnceLock::new();
    let (cell, src) = match format {
        "date-time" | "datetime" => (
            &DATE_TIME,
            r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$",
        ),
        "date" => (&DATE, r"^\d{4}-\d{2}-\d{2}$"),
        "byte" => (
            &BYTE,
            r"^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$",
        ),
        "uuid" => (
            &UUID,
            r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
        ),
        _ => return true,
    };
    cell.get_or_init(|| Regex::new(src).ok())
        .as_ref()
        .is_none_or(|re| re.is_match(s))
}
