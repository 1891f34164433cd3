//! Patch formats: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and a simplified
//! server-side apply (strategic merge patch: [`super::strategic`]).

use super::error::ApiError;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The patch formats the emulator understands, from the request's `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/merge-patch+json`.
    Merge,
    /// `application/strategic-merge-patch+json` (built-in kinds only, see `strategic.rs`).
    Strategic,
    /// `application/json-patch+json`.
    Json,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
}

impl PatchKind {
    /// The kind for a `Content-Type` value (parameters after `;` ignored).
    pub fn from_content_type(ct: &str) -> Option<Self> {
        match ct.split(';').next().unwrap_or_default().trim() {
            "application/merge-patch+json" => Some(Self::Merge),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/json-patch+json" => Some(Self::Json),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Some(Self::Apply),
            _ => None,
        }
    }
}

/// How a manager last wrote its fields (`managedFields[].operation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operation {
    /// Server-side apply.
    Apply,
    /// Create, update or a non-apply patch.
    Update,
}

/// A field manager: its name and operation (as in `managedFields`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Manager {
    /// `fieldManager` of the request.
    pub name: String,
    /// Apply or Update.
    pub operation: Operation,
}

impl Manager {
    fn apply(name: &str) -> Self {
        Self {
            name: name.to_string(),
            operation: Operation::Apply,
        }
    }
}

/// Field ownership: manager -> set of owned leaf paths.
pub type Owners = BTreeMap<Manager, BTreeSet<Vec<String>>>;

/// Whether a leaf path is a tracked field (not apiVersion/kind, and of metadata only
/// labels and annotations).
fn tracked(p: &[String]) -> bool {
    match p.first().map(String::as_str) {
        None | Some("apiVersion") | Some("kind") => false,
        Some("metadata") => matches!(p.get(1).map(String::as_str), Some("labels" | "annotations")),
        Some(_) => true,
    }
}

/// Drop ownership of fields that no longer exist in `obj`, and empty managers.
pub fn prune_owners(owners: &mut Owners, obj: &Value) {
    for set in owners.values_mut() {
        set.retain(|p| get_path(obj, p).is_some());
    }
    owners.retain(|_, set| !set.is_empty());
}

/// Record a non-apply write by `manager`: fields it added or changed move to its Update
/// entry (taken from whoever owned them), like the API server's field manager does.
pub fn track_update(owners: &mut Owners, old: Option<&Value>, new: &Value, manager: &str) {
    let mut paths = BTreeSet::new();
    leaf_paths(new, &mut Vec::new(), &mut paths);
    let changed: BTreeSet<Vec<String>> = paths
        .into_iter()
        .filter(|p| tracked(p) && old.and_then(|o| get_path(o, p)) != get_path(new, p))
        .collect();
    if !changed.is_empty() {
        for set in owners.values_mut() {
            set.retain(|p| !changed.contains(p));
        }
        owners
            .entry(Manager {
                name: manager.to_string(),
                operation: Operation::Update,
            })
            .or_default()
            .extend(changed);
    }
    prune_owners(owners, new);
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            if let Value::Object(t) = target {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

/// Remove strategic-merge-patch directives (`$patch`, `$retainKeys`,
/// `$setElementOrder/...`, `$deleteFromPrimitiveList/...`) so the rest can be applied as a
/// merge patch.
pub fn strip_directives(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !k.starts_with('$'));
            m.values_mut().for_each(strip_directives);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

/// Apply an RFC 6902 JSON patch document (the body) to `target`.
pub fn json_patch(target: &mut Value, body: &Value) -> Result<(), ApiError> {
    let ops: json_patch::Patch = serde_json::from_value(body.clone())
        .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
    json_patch::patch(target, &ops).map_err(|e| ApiError::invalid(format!("json patch: {e}")))
}

/// Leaf paths of a JSON object: scalars, arrays (atomic) and empty objects are leaves.
pub fn leaf_paths(v: &Value, prefix: &mut Vec<String>, out: &mut BTreeSet<Vec<String>>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, c) in m {
                prefix.push(k.clone());
                leaf_paths(c, prefix, out);
                prefix.pop();
            }
        }
        _ => {
            if !prefix.is_empty() {
                out.insert(prefix.clone());
            }
        }
    }
}

/// The value at a path of object keys.
pub fn get_path<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, k| cur.get(k))
}

fn set_path(v: &mut Value, path: &[String], val: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = v;
    for k in parents {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Value::Object(m) = cur else { return };
        cur = m
            .entry(k.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if !cur.is_object() {
        *cur = Value::Object(Map::new());
    }
    if let Value::Object(m) = cur {
        // An empty object in the configuration only asserts that the object exists.
        let keep_existing =
            val.as_object().is_some_and(Map::is_empty) && m.get(last).is_some_and(Value::is_object);
        if !keep_existing {
            m.insert(last.clone(), val);
        }
    }
}

fn remove_path(v: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = v;
    for k in parents {
        match cur.get_mut(k) {
            Some(c) => cur = c,
            None => return,
        }
    }
    if let Value::Object(m) = cur {
        m.remove(last);
    }
}

/// Which part of the object an apply request addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyScope {
    /// The main resource; `status` is ignored when the kind has a status subresource.
    Main {
        /// Whether the kind has a status subresource.
        status_subresource: bool,
    },
    /// The `/status` subresource: only `status` fields count.
    Status,
}

/// The dotted form of a field path for messages (`.spec.replicas`).
fn dotted(p: &[String]) -> String {
    p.iter().map(|k| format!(".{k}")).collect()
}

/// Render ownership as `managedFields` entries (`FieldsV1` form).
pub fn managed_fields(owners: &Owners, api_version: &str, time: &str) -> Value {
    let entries: Vec<Value> = owners
        .iter()
        .map(|(manager, paths)| {
            let mut fields = Value::Object(Map::new());
            for p in paths {
                let fp: Vec<String> = p.iter().map(|k| format!("f:{k}")).collect();
                set_path(&mut fields, &fp, Value::Object(Map::new()));
            }
            serde_json::json!({
                "manager": manager.name,
                "operation": match manager.operation {
                    Operation::Apply => "Apply",
                    Operation::Update => "Update",
                },
                "apiVersion": api_version,
                "time": time,
                "fieldsType": "FieldsV1",
                "fieldsV1": fields,
            })
        })
        .collect();
    Value::Array(entries)
}

/// Simplified server-side apply.
///
/// Fields are tracked as leaf paths (lists are atomic: a list is owned and replaced as a
/// whole). Applying a value different from the current one to a field owned by any other
/// manager (another applier, or any Update writer) is a conflict; with `force` the fields
/// are taken over. Fields this manager
/// applied before and no longer applies are removed unless another manager owns them.
/// Returns the new object and the new ownership.
pub fn server_side_apply(
    current: Option<&Value>,
    owners: &Owners,
    config: &Value,
    manager: &str,
    force: bool,
    scope: ApplyScope,
) -> Result<(Value, Owners), ApiError> {
    if !config.is_object() {
        return Err(ApiError::bad_request(
            "apply configuration must be an object",
        ));
    }
    let mut all = BTreeSet::new();
    leaf_paths(config, &mut Vec::new(), &mut all);
    let wanted: BTreeSet<Vec<String>> = all
        .into_iter()
        .filter(|p| {
            let first = p.first().map(String::as_str).unwrap_or_default();
            let in_scope = match scope {
                ApplyScope::Main { status_subresource } => {
                    !(status_subresource && first == "status")
                }
                ApplyScope::Status => first == "status",
            };
            in_scope && tracked(p)
        })
        .collect();
    let mut new_owners = owners.clone();
    let mut conflicts = Vec::new();
    let me = Manager::apply(manager);
    for (m, paths) in owners.iter().filter(|(m, _)| **m != me) {
        for p in paths.intersection(&wanted) {
            let cur = current.and_then(|c| get_path(c, p));
            if cur != get_path(config, p) {
                conflicts.push((m.clone(), p.clone()));
            }
        }
    }
    if !conflicts.is_empty() {
        if !force {
            let causes: Vec<Value> = conflicts
                .iter()
                .map(|(m, p)| {
                    serde_json::json!({"reason": "FieldManagerConflict",
                        "message": format!("conflict with \"{}\"", m.name), "field": dotted(p)})
                })
                .collect();
            let list: Vec<String> = conflicts
                .iter()
                .map(|(m, p)| format!("conflict with \"{}\": {}", m.name, dotted(p)))
                .collect();
            let mut err = ApiError::new(
                409,
                "Conflict",
                format!(
                    "Apply failed with {} conflict(s): {}",
                    conflicts.len(),
                    list.join(", ")
                ),
            );
            err.details = Some(serde_json::json!({ "causes": causes }));
            return Err(err);
        }
        for (m, p) in &conflicts {
            if let Some(set) = new_owners.get_mut(m) {
                set.remove(p);
            }
        }
    }
    let mut result = match current {
        Some(c) => c.clone(),
        None => {
            let mut skeleton = serde_json::json!({});
            for k in ["apiVersion", "kind"] {
                if let Some(v) = config.get(k) {
                    set_path(&mut skeleton, &[k.to_string()], v.clone());
                }
            }
            let mut meta = Map::new();
            for k in ["name", "namespace"] {
                if let Some(v) = config.pointer(&format!("/metadata/{k}")) {
                    meta.insert(k.to_string(), v.clone());
                }
            }
            set_path(
                &mut skeleton,
                &["metadata".to_string()],
                Value::Object(meta),
            );
            skeleton
        }
    };
    let previously = owners.get(&me).cloned().unwrap_or_default();
    for p in previously.difference(&wanted) {
        let owned_by_other = new_owners
            .iter()
            .any(|(m, set)| *m != me && set.contains(p));
        if !owned_by_other {
            remove_path(&mut result, p);
        }
    }
    for p in &wanted {
        if let Some(v) = get_path(config, p) {
            set_path(&mut result, p, v.clone());
        }
    }
    new_owners.insert(me, wanted);
    prune_owners(&mut new_owners, &result);
    Ok((result, new_owners))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_rfc7386() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]});
        merge_patch(
            &mut t,
            &json!({"a": "z", "c": {"f": null}, "l": [3], "n": {"x": 1}}),
        );
        assert_eq!(
            t,
            json!({"a": "z", "c": {"d": "e"}, "l": [3], "n": {"x": 1}})
        );
    }

    #[test]
    fn json_patch_ops_and_errors() {
        let mut t = json!({"spec": {"replicas": 1}});
        json_patch(
            &mut t,
            &json!([{"op": "replace", "path": "/spec/replicas", "value": 3}]),
        )
        .unwrap();
        assert_eq!(t["spec"]["replicas"], 3);
        let e = json_patch(
            &mut t,
            &json!([{"op": "test", "path": "/spec/replicas", "value": 9}]),
        );
        assert_eq!(e.unwrap_err().code, 422);
        assert_eq!(json_patch(&mut t, &json!({"op": 1})).unwrap_err().code, 400);
    }

    #[test]
    fn apply_conflicts_force_and_removal() {
        let scope = ApplyScope::Main {
            status_subresource: true,
        };
        let a = json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": "x", "labels": {"a": "1"}},
            "spec": {"replicas": 1, "image": "i"}, "status": {"ignored": true}});
        let (obj, owners) =
            server_side_apply(None, &Owners::new(), &a, "alice", false, scope).unwrap();
        assert_eq!(obj["spec"]["replicas"], 1);
        assert!(obj.get("status").is_none());
        let b = json!({"metadata": {"name": "x"}, "spec": {"replicas": 2}});
        let err = server_side_apply(Some(&obj), &owners, &b, "bob", false, scope).unwrap_err();
        assert_eq!(err.code, 409);
        assert!(err.message.contains(".spec.replicas"), "{}", err.message);
        let (obj, owners) = server_side_apply(Some(&obj), &owners, &b, "bob", true, scope).unwrap();
        assert_eq!(obj["spec"]["replicas"], 2);
        // alice re-applies without image: image is removed, replicas (bob's) stays.
        let a2 = json!({"metadata": {"name": "x", "labels": {"a": "1"}}});
        let (obj, _) = server_side_apply(Some(&obj), &owners, &a2, "alice", false, scope).unwrap();
        assert!(obj["spec"].get("image").is_none());
        assert_eq!(obj["spec"]["replicas"], 2);
        assert_eq!(obj["metadata"]["labels"]["a"], "1");
    }
}
