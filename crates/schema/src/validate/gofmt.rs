//! How the apiserver (Go's `fmt`) prints the values inside field errors, so messages read
//! the same as a real cluster's: `%v` of a float64 (`1e+18`, `2.147483647e+09`), `%q` of a
//! string, `%#v` of a map (`map[string]interface {}{"name":"a"}`).

use serde_json::Value;

/// Go's `%v` of a float64: the shortest digits that round-trip, in exponent form when the
/// exponent is below -4 or at least 6 (strconv's `'g'` with precision -1).
pub(crate) fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let sci = format!("{f:e}");
    let Some((mantissa, exp)) = sci.split_once('e') else {
        return sci;
    };
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        format!("{f}")
    }
}

/// Go's `%q` of a string (close enough: JSON string syntax).
pub(crate) fn go_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// Go's `%v` of a JSON number as the apiserver decodes it: integers that fit an int64 stay
/// integers, anything else is a float64.
pub(crate) fn go_number(n: &serde_json::Number) -> String {
    match n.as_i64() {
        Some(i) => i.to_string(),
        None => go_float(n.as_f64().unwrap_or(f64::NAN)),
    }
}

/// Go's `%#v` of a decoded JSON value (`map[string]interface {}{...}`, `[]interface {}{...}`).
pub(crate) fn go_sharp(v: &Value) -> String {
    match v {
        Value::Null => "interface {}(nil)".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => go_number(n),
        Value::String(s) => go_quote(s),
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(go_sharp).collect();
            format!("[]interface {{}}{{{}}}", items.join(", "))
        }
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            let items: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", go_quote(k), go_sharp(&o[k.as_str()])))
                .collect();
            format!("map[string]interface {{}}{{{}}}", items.join(", "))
        }
    }
}

/// How `field.Error` prints its bad value: `%v` for numbers and booleans, `%q` for strings,
/// `"null"` for nil, `%#v` for maps and lists.
pub(crate) fn go_bad_value(v: &Value) -> String {
    match v {
        Value::Null => "\"null\"".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => go_number(n),
        Value::String(s) => go_quote(s),
        other => go_sharp(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn floats_print_like_go() {
        assert_eq!(go_float(2147483647.0), "2.147483647e+09");
        assert_eq!(go_float(1e18), "1e+18");
        assert_eq!(go_float(123456.0), "123456");
        assert_eq!(go_float(0.5), "0.5");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(go_float(0.0), "0");
        assert_eq!(go_float(-3.25), "-3.25");
    }

    #[test]
    fn maps_print_like_go_sharp_v() {
        assert_eq!(
            go_sharp(&json!({"name": "a", "n": 1})),
            r#"map[string]interface {}{"n":1, "name":"a"}"#
        );
        assert_eq!(go_sharp(&json!([1, "x"])), r#"[]interface {}{1, "x"}"#);
        assert_eq!(go_bad_value(&json!(null)), r#""null""#);
        assert_eq!(go_bad_value(&json!(1.5)), "1.5");
        assert_eq!(go_bad_value(&json!(u64::MAX)), "1.8446744073709552e+19");
    }
}
