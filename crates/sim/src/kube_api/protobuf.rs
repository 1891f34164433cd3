//! The few protobuf request bodies kubectl sends through its typed clients
//! (`application/vnd.kubernetes.protobuf`: `kubectl create namespace`, `create configmap`,
//! `create serviceaccount`, `auth can-i`), decoded into their JSON form. Answers stay JSON
//! (kubectl accepts `application/json` too). Any other kind in protobuf is a 415 that says
//! so. The wire format: the `k8s\0` magic, then a `runtime.Unknown` (1: typeMeta
//! {1: apiVersion, 2: kind}, 2: raw), `raw` being the object's message with the field
//! numbers of `k8s.io/api`'s `generated.proto` (only the fields listed below are read).

use super::error::ApiError;
use serde_json::{json, Map, Value};

/// The protobuf content type of Kubernetes.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

const MAGIC: &[u8] = b"k8s\0";

/// One decoded field's value: a varint (not needed by the fields read here), or the bytes
/// of a length-delimited field.
enum Wire<'a> {
    Varint,
    Bytes(&'a [u8]),
}

fn malformed() -> ApiError {
    ApiError::bad_request("invalid protobuf body: truncated or malformed message")
}

fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, ApiError> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos).ok_or_else(malformed)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(malformed())
}

/// The fields of one message, in order.
fn fields(buf: &[u8]) -> Result<Vec<(u64, Wire<'_>)>, ApiError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let tag = varint(buf, &mut pos)?;
        let (num, wire) = (tag >> 3, tag & 7);
        match wire {
            0 => {
                varint(buf, &mut pos)?;
                out.push((num, Wire::Varint));
            }
            2 => {
                let len = usize::try_from(varint(buf, &mut pos)?).map_err(|_| malformed())?;
                let end = pos
                    .checked_add(len)
                    .filter(|e| *e <= buf.len())
                    .ok_or_else(malformed)?;
                out.push((num, Wire::Bytes(&buf[pos..end])));
                pos = end;
            }
            1 => {
                pos = pos
                    .checked_add(8)
                    .filter(|e| *e <= buf.len())
                    .ok_or_else(malformed)?
            }
            5 => {
                pos = pos
                    .checked_add(4)
                    .filter(|e| *e <= buf.len())
                    .ok_or_else(malformed)?
            }
            _ => return Err(malformed()),
        }
    }
    Ok(out)
}

fn text(b: &[u8]) -> Result<String, ApiError> {
    String::from_utf8(b.to_vec())
        .map_err(|_| ApiError::bad_request("invalid protobuf body: a string is not UTF-8"))
}

/// Read the string fields `names` (field number → JSON name) and map fields `maps` of a
/// message into `out`.
fn strings(
    buf: &[u8],
    names: &[(u64, &str)],
    maps: &[(u64, &str)],
    out: &mut Map<String, Value>,
) -> Result<(), ApiError> {
    for (num, w) in fields(buf)? {
        let Wire::Bytes(b) = w else { continue };
        if let Some((_, n)) = names.iter().find(|(k, _)| *k == num) {
            out.insert((*n).to_string(), json!(text(b)?));
        } else if let Some((_, n)) = maps.iter().find(|(k, _)| *k == num) {
            let mut key = String::new();
            let mut value = String::new();
            for (f, w) in fields(b)? {
                if let Wire::Bytes(x) = w {
                    match f {
                        1 => key = text(x)?,
                        2 => value = text(x)?,
                        _ => {}
                    }
                }
            }
            let entry = out.entry((*n).to_string()).or_insert_with(|| json!({}));
            if let Some(m) = entry.as_object_mut() {
                m.insert(key, json!(value));
            }
        }
    }
    Ok(())
}

/// ObjectMeta: name (1), generateName (2), namespace (3), labels (11), annotations (12).
fn object_meta(buf: &[u8]) -> Result<Value, ApiError> {
    let mut m = Map::new();
    strings(
        buf,
        &[(1, "name"), (2, "generateName"), (3, "namespace")],
        &[(11, "labels"), (12, "annotations")],
        &mut m,
    )?;
    Ok(Value::Object(m))
}

/// SelfSubjectAccessReviewSpec: resourceAttributes (1) {namespace 1, verb 2, group 3,
/// version 4, resource 5, subresource 6, name 7}, nonResourceAttributes (2) {path 1, verb 2}.
fn review_spec(buf: &[u8]) -> Result<Value, ApiError> {
    let mut spec = Map::new();
    for (num, w) in fields(buf)? {
        let Wire::Bytes(b) = w else { continue };
        let mut attrs = Map::new();
        match num {
            1 => {
                strings(
                    b,
                    &[
                        (1, "namespace"),
                        (2, "verb"),
                        (3, "group"),
                        (4, "version"),
                        (5, "resource"),
                        (6, "subresource"),
                        (7, "name"),
                    ],
                    &[],
                    &mut attrs,
                )?;
                spec.insert("resourceAttributes".into(), Value::Object(attrs));
            }
            2 => {
                strings(b, &[(1, "path"), (2, "verb")], &[], &mut attrs)?;
                spec.insert("nonResourceAttributes".into(), Value::Object(attrs));
            }
            _ => {}
        }
    }
    Ok(Value::Object(spec))
}

/// Decode a protobuf request body into the object's JSON form.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let rest = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| ApiError::bad_request("invalid protobuf body: no k8s magic prefix"))?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    for (num, w) in fields(rest)? {
        match (num, w) {
            (1, Wire::Bytes(b)) => {
                for (f, w) in fields(b)? {
                    match (f, w) {
                        (1, Wire::Bytes(x)) => api_version = text(x)?,
                        (2, Wire::Bytes(x)) => kind = text(x)?,
                        _ => {}
                    }
                }
            }
            (2, Wire::Bytes(b)) => raw = b,
            _ => {}
        }
    }
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    let supported = matches!(
        kind.as_str(),
        "Namespace" | "ServiceAccount" | "ConfigMap" | "SelfSubjectAccessReview"
    );
    if !supported {
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!("the wvo emulator decodes protobuf bodies only for Namespace, ServiceAccount, ConfigMap and SelfSubjectAccessReview, not {kind}: send JSON (kubectl apply -f, or kubectl create -f)"),
        ));
    }
    for (num, w) in fields(raw)? {
        let Wire::Bytes(b) = w else { continue };
        match (kind.as_str(), num) {
            (_, 1) => {
                obj.insert("metadata".into(), object_meta(b)?);
            }
            ("SelfSubjectAccessReview", 2) => {
                obj.insert("spec".into(), review_spec(b)?);
            }
            ("ConfigMap", 2) => {
                // data is field 2 of ConfigMap itself: a map entry per occurrence.
                let mut key = String::new();
                let mut value = String::new();
                for (f, w) in fields(b)? {
                    if let Wire::Bytes(x) = w {
                        match f {
                            1 => key = text(x)?,
                            2 => value = text(x)?,
                            _ => {}
                        }
                    }
                }
                let data = obj.entry("data").or_insert_with(|| json!({}));
                if let Some(d) = data.as_object_mut() {
                    d.insert(key, json!(value));
                }
            }
            _ => {}
        }
    }
    Ok(Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(num: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![(num << 3 | 2) as u8, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let mut tm = field(1, api_version.as_bytes());
        tm.extend(field(2, kind.as_bytes()));
        let mut body = MAGIC.to_vec();
        body.extend(field(1, &tm));
        body.extend(field(2, raw));
        body
    }

    #[test]
    fn namespace_and_review_decode() {
        let mut meta = field(1, b"llm");
        meta.extend(field(11, &[field(1, b"team"), field(2, b"a")].concat()));
        let ns = decode(&envelope("v1", "Namespace", &field(1, &meta))).unwrap();
        assert_eq!(
            ns,
            json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "llm", "labels": {"team": "a"}}})
        );
        let attrs = [
            field(1, b"llm"),
            field(2, b"list"),
            field(3, b"apps"),
            field(5, b"deployments"),
        ]
        .concat();
        let review = decode(&envelope(
            "authorization.k8s.io/v1",
            "SelfSubjectAccessReview",
            &field(2, &field(1, &attrs)),
        ))
        .unwrap();
        assert_eq!(
            review["spec"]["resourceAttributes"],
            json!({"namespace": "llm", "verb": "list", "group": "apps", "resource": "deployments"})
        );
        let cm = decode(&envelope(
            "v1",
            "ConfigMap",
            &[
                field(1, &field(1, b"c")),
                field(2, &[field(1, b"k"), field(2, b"v")].concat()),
            ]
            .concat(),
        ))
        .unwrap();
        assert_eq!(cm["data"], json!({"k": "v"}));
    }

    #[test]
    fn other_kinds_and_garbage_are_refused() {
        assert_eq!(decode(&envelope("v1", "Pod", &[])).unwrap_err().code, 415);
        assert_eq!(decode(b"nope").unwrap_err().code, 400);
        let mut cut = envelope("v1", "Namespace", &field(1, &field(1, b"llm")));
        cut.truncate(cut.len() - 2);
        assert_eq!(decode(&cut).unwrap_err().code, 400);
    }
}
