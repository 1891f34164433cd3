//! Strategic merge patch (`application/strategic-merge-patch+json`) for the built-in kinds,
//! as `k8s.io/apimachinery/pkg/util/strategicpatch` applies it on the API server:
//!
//! - maps merge key by key; `null` deletes a key; `$patch: replace` replaces the map,
//!   `$patch: delete` empties it; `$retainKeys: [..]` clears the keys not listed;
//! - a list whose field has `patchStrategy: merge` merges: lists of maps by their
//!   `patchMergeKey` (a patch item updates the item with the same key, or is appended;
//!   `{$patch: delete, <key>: v}` removes it; `{$patch: replace}` makes the rest of the
//!   patch list the whole list), lists of scalars as a set union;
//!   `$deleteFromPrimitiveList/<field>: [..]` removes scalars;
//!   `$setElementOrder/<field>: [..]` orders the merged list (patch items in that order,
//!   server-only items kept near their old neighbours); every other list is replaced;
//! - custom resources have no patch metadata: the API server answers 415
//!   ([`unsupported_for_custom`]).
//!
//! Patch metadata (which fields merge, by which key) comes from [`FIELDS`], a table of the
//! `patchStrategy`/`patchMergeKey` struct tags of the upstream Go types (`k8s.io/api`
//! `core/v1/types.go`, `apps/v1/types.go`, `autoscaling/v2/types.go`,
//! `k8s.io/apimachinery/pkg/apis/meta/v1/types.go`) for the kinds the emulator serves; they
//! are the `x-kubernetes-patch-strategy` / `x-kubernetes-patch-merge-key` extensions of the
//! published OpenAPI documents. [`field_meta`] is the one place that reads it (to be fed
//! from the served OpenAPI data later).

use super::error::ApiError;
use serde_json::{Map, Value};

/// How a field's value is patched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldMeta {
    /// `patchStrategy: merge` (lists merge instead of being replaced).
    pub merge: bool,
    /// `patchMergeKey` of a merging list of maps.
    pub merge_key: Option<&'static str>,
    /// The Go type of the field's value (of a list's items), when it has patch metadata
    /// of its own; `None` for types without merging fields.
    pub child: Option<&'static str>,
}

impl FieldMeta {
    const PLAIN: Self = Self {
        merge: false,
        merge_key: None,
        child: None,
    };
}

/// A field with patch metadata: (Go type, JSON field, value type, strategy merge, merge key).
type Field = (
    &'static str,
    &'static str,
    Option<&'static str>,
    bool,
    Option<&'static str>,
);

/// Patch metadata of the built-in kinds' fields (struct tags of the upstream types; fields
/// without tags are replaced, maps merged). A field leading to a type with metadata of its
/// own names that type even when it does not merge itself.
pub const FIELDS: &[Field] = &[
    // meta/v1 ObjectMeta.
    ("ObjectMeta", "ownerReferences", None, true, Some("uid")),
    ("ObjectMeta", "finalizers", None, true, None),
    // Object roots: metadata, spec, status.
    ("Object", "metadata", Some("ObjectMeta"), false, None),
    ("Deployment", "metadata", Some("ObjectMeta"), false, None),
    ("Deployment", "spec", Some("DeploymentSpec"), false, None),
    ("Deployment", "status", Some("WorkloadStatus"), false, None),
    ("ReplicaSet", "metadata", Some("ObjectMeta"), false, None),
    ("ReplicaSet", "spec", Some("ReplicaSetSpec"), false, None),
    ("ReplicaSet", "status", Some("WorkloadStatus"), false, None),
    ("Pod", "metadata", Some("ObjectMeta"), false, None),
    ("Pod", "spec", Some("PodSpec"), false, None),
    ("Pod", "status", Some("PodStatus"), false, None),
    ("Service", "metadata", Some("ObjectMeta"), false, None),
    ("Service", "spec", Some("ServiceSpec"), false, None),
    (
        "ServiceAccount",
        "metadata",
        Some("ObjectMeta"),
        false,
        None,
    ),
    ("ServiceAccount", "secrets", None, true, Some("name")),
    ("ServiceAccount", "imagePullSecrets", None, false, None),
    ("Node", "metadata", Some("ObjectMeta"), false, None),
    ("Node", "spec", Some("NodeSpec"), false, None),
    ("Node", "status", Some("NodeStatus"), false, None),
    ("Namespace", "metadata", Some("ObjectMeta"), false, None),
    ("Namespace", "status", Some("WorkloadStatus"), false, None),
    (
        "HorizontalPodAutoscaler",
        "metadata",
        Some("ObjectMeta"),
        false,
        None,
    ),
    (
        "HorizontalPodAutoscaler",
        "status",
        Some("WorkloadStatus"),
        false,
        None,
    ),
    // apps/v1.
    (
        "DeploymentSpec",
        "template",
        Some("PodTemplateSpec"),
        false,
        None,
    ),
    (
        "ReplicaSetSpec",
        "template",
        Some("PodTemplateSpec"),
        false,
        None,
    ),
    // DeploymentStatus, ReplicaSetStatus, NamespaceStatus, HPA v2 status: conditions by type.
    ("WorkloadStatus", "conditions", None, true, Some("type")),
    (
        "PodTemplateSpec",
        "metadata",
        Some("ObjectMeta"),
        false,
        None,
    ),
    ("PodTemplateSpec", "spec", Some("PodSpec"), false, None),
    // core/v1 PodSpec.
    ("PodSpec", "volumes", None, true, Some("name")),
    (
        "PodSpec",
        "initContainers",
        Some("Container"),
        true,
        Some("name"),
    ),
    (
        "PodSpec",
        "containers",
        Some("Container"),
        true,
        Some("name"),
    ),
    (
        "PodSpec",
        "ephemeralContainers",
        Some("Container"),
        true,
        Some("name"),
    ),
    ("PodSpec", "imagePullSecrets", None, true, Some("name")),
    ("PodSpec", "hostAliases", None, true, Some("ip")),
    (
        "PodSpec",
        "topologySpreadConstraints",
        None,
        true,
        Some("topologyKey"),
    ),
    ("PodSpec", "schedulingGates", None, true, Some("name")),
    ("PodSpec", "resourceClaims", None, true, Some("name")),
    // core/v1 Container (and EphemeralContainerCommon: the same tags).
    ("Container", "ports", None, true, Some("containerPort")),
    ("Container", "env", None, true, Some("name")),
    ("Container", "volumeMounts", None, true, Some("mountPath")),
    ("Container", "volumeDevices", None, true, Some("devicePath")),
    // core/v1 PodStatus.
    ("PodStatus", "conditions", None, true, Some("type")),
    ("PodStatus", "hostIPs", None, true, Some("ip")),
    ("PodStatus", "podIPs", None, true, Some("ip")),
    // core/v1 ServiceSpec, NodeSpec, NodeStatus.
    ("ServiceSpec", "ports", None, true, Some("port")),
    ("NodeSpec", "podCIDRs", None, true, None),
    ("NodeStatus", "conditions", None, true, Some("type")),
    ("NodeStatus", "addresses", None, true, Some("type")),
];

/// The patch metadata of `field` in Go type `ty` (`None`: a type without metadata, whose
/// fields are all plain).
pub fn field_meta(ty: Option<&str>, field: &str) -> FieldMeta {
    let Some(ty) = ty else {
        return FieldMeta::PLAIN;
    };
    FIELDS
        .iter()
        .find(|(t, f, ..)| *t == ty && *f == field)
        .map(|(_, _, child, merge, key)| FieldMeta {
            merge: *merge,
            merge_key: *key,
            child: *child,
        })
        .unwrap_or(FieldMeta::PLAIN)
}

/// The root patch type of a built-in kind, or `None` for a custom resource (no strategic
/// merge patch: 415).
pub fn root_type(group: &str, kind: &str) -> Option<&'static str> {
    const BUILTIN_GROUPS: &[&str] = &[
        "",
        "apps",
        "autoscaling",
        "coordination.k8s.io",
        "events.k8s.io",
        "rbac.authorization.k8s.io",
        "apiextensions.k8s.io",
        "networking.k8s.io",
        "authentication.k8s.io",
        "authorization.k8s.io",
    ];
    if !BUILTIN_GROUPS.contains(&group) {
        return None;
    }
    Some(match kind {
        "Deployment" => "Deployment",
        "ReplicaSet" => "ReplicaSet",
        "Pod" => "Pod",
        "Service" => "Service",
        "ServiceAccount" => "ServiceAccount",
        "Node" => "Node",
        "Namespace" => "Namespace",
        "HorizontalPodAutoscaler" => "HorizontalPodAutoscaler",
        _ => "Object",
    })
}

/// The API server's answer to a strategic merge patch of a custom resource.
pub fn unsupported_for_custom() -> ApiError {
    ApiError::new(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: \
         application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
    )
}

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER: &str = "$setElementOrder/";
const DELETE_PRIMITIVE: &str = "$deleteFromPrimitiveList/";

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(message)
}

/// Apply strategic merge patch `patch` to `target`, an object of Go type `root` (see
/// [`root_type`]). Errors are the API server's for malformed directives (400).
pub fn strategic_merge_patch(
    target: &mut Value,
    patch: &Value,
    root: &'static str,
) -> Result<(), ApiError> {
    let Value::Object(p) = patch else {
        return Err(bad("invalid JSON document"));
    };
    let original = match std::mem::take(target) {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    *target = Value::Object(merge_map(original, p.clone(), Some(root))?);
    Ok(())
}

/// Remove directive markers from a value taken whole from the patch; `None` when the value
/// itself is a `$patch` directive (the field is then dropped).
fn without_directives(v: Value) -> Option<Value> {
    match v {
        Value::Object(m) => {
            if m.contains_key(PATCH) {
                return None;
            }
            Some(Value::Object(
                m.into_iter()
                    .filter(|(k, _)| !k.starts_with('$'))
                    .filter_map(|(k, v)| without_directives(v).map(|v| (k, v)))
                    .collect(),
            ))
        }
        Value::Array(a) => Some(Value::Array(
            a.into_iter().filter_map(without_directives).collect(),
        )),
        other => Some(other),
    }
}

/// Drop `null` members (the API server ignores nulls that match nothing in the original).
fn discard_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, v| !v.is_null());
            m.values_mut().for_each(discard_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(discard_nulls),
        _ => {}
    }
}

fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    ty: Option<&'static str>,
) -> Result<Map<String, Value>, ApiError> {
    if let Some(d) = patch.remove(PATCH) {
        return match d.as_str() {
            Some("replace") => match without_directives(Value::Object(patch)) {
                Some(Value::Object(m)) => Ok(m),
                _ => Ok(Map::new()),
            },
            Some("delete") => Ok(Map::new()),
            _ => Err(bad(format!("Unknown patch type: {d}"))),
        };
    }
    if let Some(keys) = patch.remove(RETAIN_KEYS) {
        let keys: Vec<&str> = keys
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .ok_or_else(|| bad("invalid patch format of retainKeys"))?;
        let outside = patch
            .iter()
            .any(|(k, v)| !v.is_null() && !k.starts_with('$') && !keys.contains(&k.as_str()));
        if outside {
            return Err(bad("invalid patch format of retainKeys"));
        }
        original.retain(|k, _| keys.contains(&k.as_str()));
    }
    // `$setElementOrder/<field>`: merge that list, then order it.
    let orders: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ORDER))
        .cloned()
        .collect();
    for key in orders {
        let order = patch.remove(&key).unwrap_or(Value::Null);
        let Value::Array(order) = order else {
            return Err(bad("invalid patch format of setElementOrder list"));
        };
        let field = &key[SET_ORDER.len()..];
        if field.is_empty() {
            return Err(bad("invalid patch format of setElementOrder list"));
        }
        let meta = field_meta(ty, field);
        let orig_list = match original.get(field) {
            Some(Value::Array(a)) => Some(a.clone()),
            Some(_) => return Err(bad(format!("field {field} is not a list"))),
            None => None,
        };
        let patch_list = match patch.remove(field) {
            Some(Value::Array(a)) => Some(a),
            Some(Value::Null) | None => None,
            Some(_) => return Err(bad(format!("patch of field {field} is not a list"))),
        };
        if let Some(pl) = &patch_list {
            check_order(pl, &order, meta.merge_key)?;
        }
        let merged = match (&orig_list, patch_list) {
            (Some(o), None) => o.clone(),
            (None, Some(p)) => match without_directives(Value::Array(p)) {
                Some(Value::Array(a)) => a,
                _ => Vec::new(),
            },
            (Some(o), Some(p)) => {
                if meta.merge {
                    merge_list(o.clone(), p, meta)?
                } else {
                    p
                }
            }
            (None, None) => continue,
        };
        let (in_patch, server_only): (Vec<Value>, Vec<Value>) = merged
            .into_iter()
            .partition(|v| position(&order, v, meta.merge_key).is_some());
        let ordered = normalize_order(
            in_patch,
            server_only,
            &order,
            orig_list.as_deref().unwrap_or_default(),
            meta.merge_key,
        );
        original.insert(field.to_string(), Value::Array(ordered));
    }
    // `$deleteFromPrimitiveList/<field>`: remove scalars from that list.
    let deletions: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(DELETE_PRIMITIVE))
        .cloned()
        .collect();
    for key in deletions {
        let gone = patch.remove(&key).unwrap_or(Value::Null);
        let field = &key[DELETE_PRIMITIVE.len()..];
        if field.is_empty() {
            return Err(bad("invalid patch format of primitive list"));
        }
        let Value::Array(gone) = gone else {
            return Err(bad("invalid patch format of primitive list"));
        };
        if let Some(Value::Array(list)) = original.get_mut(field) {
            list.retain(|v| !gone.contains(v));
        }
    }
    for (k, v) in patch {
        if k.starts_with('$') {
            return Err(bad(format!("unknown patch directive {k:?}")));
        }
        if v.is_null() {
            original.remove(&k);
            continue;
        }
        let meta = field_meta(ty, &k);
        let merged = match (original.remove(&k), v) {
            (Some(Value::Object(o)), Value::Object(p)) => {
                Some(Value::Object(merge_map(o, p, meta.child)?))
            }
            (Some(Value::Array(o)), Value::Array(p)) if meta.merge => {
                Some(Value::Array(merge_list(o, p, meta)?))
            }
            (_, mut p) => {
                discard_nulls(&mut p);
                without_directives(p)
            }
        };
        if let Some(m) = merged {
            original.insert(k, m);
        }
    }
    Ok(original)
}

/// The merge key's value of a list item (the item itself for scalars).
fn key_of<'a>(v: &'a Value, key: Option<&str>) -> Option<&'a Value> {
    match key {
        Some(k) => v.get(k),
        None => Some(v),
    }
}

fn position(list: &[Value], item: &Value, key: Option<&str>) -> Option<usize> {
    let want = key_of(item, key)?;
    list.iter().position(|v| key_of(v, key) == Some(want))
}

/// Every item of `patch` must appear in `order`, in the same relative order.
fn check_order(patch: &[Value], order: &[Value], key: Option<&str>) -> Result<(), ApiError> {
    let items: Vec<&Value> = patch.iter().filter(|v| v.get(PATCH).is_none()).collect();
    let (mut i, mut j) = (0, 0);
    while i < items.len() && j < order.len() {
        if key_of(items[i], key).is_some() && key_of(items[i], key) == key_of(&order[j], key) {
            i += 1;
        }
        j += 1;
    }
    if i < items.len() {
        return Err(bad(
            "invalid patch format of setElementOrder list: the order in the patch list does not match the $setElementOrder list",
        ));
    }
    Ok(())
}

fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    meta: FieldMeta,
) -> Result<Vec<Value>, ApiError> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    if original.iter().chain(&patch).any(Value::is_array) {
        return Err(ApiError::invalid("lists of lists are not supported"));
    }
    let maps = original.iter().chain(&patch).any(Value::is_object);
    let merged = if !maps {
        let mut out = original.clone();
        for v in &patch {
            if !out.contains(v) {
                out.push(v.clone());
            }
        }
        out
    } else {
        let key = meta
            .merge_key
            .ok_or_else(|| ApiError::invalid("cannot merge lists without merge key"))?;
        let mut out = original.clone();
        let mut plain = Vec::new();
        let mut replace = false;
        for item in &patch {
            match item.get(PATCH).map(|d| d.as_str()) {
                None => plain.push(item.clone()),
                Some(Some("delete")) => {
                    let value = item.get(key).ok_or_else(|| no_merge_key(item, key))?;
                    out.retain(|o| o.get(key) != Some(value));
                }
                Some(Some("replace")) => replace = true,
                Some(Some("merge")) => {
                    return Err(bad("merging lists cannot yet be specified in the patch"))
                }
                Some(_) => return Err(bad(format!("Unknown patch type in {item}"))),
            }
        }
        if replace {
            return Ok(plain.into_iter().filter_map(without_directives).collect());
        }
        for item in plain {
            let value = item
                .get(key)
                .ok_or_else(|| no_merge_key(&item, key))?
                .clone();
            let Value::Object(p) = item else {
                return Err(bad("list items must all be objects"));
            };
            match out.iter().position(|o| o.get(key) == Some(&value)) {
                Some(i) => {
                    let o = match std::mem::take(&mut out[i]) {
                        Value::Object(m) => m,
                        _ => Map::new(),
                    };
                    out[i] = Value::Object(merge_map(o, p, meta.child)?);
                }
                None => {
                    if let Some(v) = without_directives(Value::Object(p)) {
                        out.push(v);
                    }
                }
            }
        }
        out
    };
    let (in_patch, server_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|v| position(&patch, v, meta.merge_key).is_some());
    Ok(normalize_order(
        in_patch,
        server_only,
        &patch,
        &original,
        meta.merge_key,
    ))
}

fn no_merge_key(item: &Value, key: &str) -> ApiError {
    ApiError::invalid(format!(
        "map: {item} does not contain declared merge key: {key}"
    ))
}

/// Patch items in `patch_order`, server-only items in `server_order`, then the two
/// interleaved: a server-only item goes before the first patch item it preceded on the
/// server (upstream `normalizeElementOrder` + `mergeSortedSlice`).
fn normalize_order(
    mut in_patch: Vec<Value>,
    mut server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    key: Option<&str>,
) -> Vec<Value> {
    let rank = |order: &[Value], v: &Value| position(order, v, key).unwrap_or(usize::MAX);
    in_patch.sort_by_key(|v| rank(patch_order, v));
    server_only.sort_by_key(|v| rank(server_order, v));
    let mut out = Vec::with_capacity(in_patch.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = in_patch.into_iter().peekable();
    loop {
        match (left.peek(), right.peek()) {
            (Some(l), Some(r)) => {
                let (li, ri) = (
                    position(server_order, l, key),
                    position(server_order, r, key),
                );
                let take_left = matches!((li, ri), (Some(a), Some(b)) if a < b);
                let next = if take_left { left.next() } else { right.next() };
                out.extend(next);
            }
            (Some(_), None) => out.extend(left.next()),
            (None, Some(_)) => out.extend(right.next()),
            (None, None) => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn apply(original: Value, patch: Value, root: &'static str) -> Value {
        let mut t = original;
        strategic_merge_patch(&mut t, &patch, root).unwrap();
        t
    }

    fn deployment(containers: Value) -> Value {
        json!({"spec": {"template": {"spec": {"containers": containers}}}})
    }

    #[test]
    fn containers_merge_by_name_keeping_args_and_limits() {
        let d = deployment(json!([
            {"name": "vllm", "image": "v:1", "args": ["--model", "m"],
             "resources": {"limits": {"nvidia.com/gpu": "4"}}},
            {"name": "sidecar", "image": "s:1"}]));
        let out = apply(
            d,
            deployment(json!([{"name": "vllm", "image": "v:2"}])),
            "Deployment",
        );
        let cs = &out["spec"]["template"]["spec"]["containers"];
        assert_eq!(cs.as_array().map(Vec::len), Some(2));
        assert_eq!(cs[0]["image"], "v:2");
        assert_eq!(cs[0]["args"], json!(["--model", "m"]));
        assert_eq!(cs[0]["resources"]["limits"]["nvidia.com/gpu"], "4");
        assert_eq!(cs[1]["name"], "sidecar");
    }

    #[test]
    fn nested_merge_lists_env_ports_and_new_items_append() {
        let d = deployment(json!([{"name": "c", "env": [{"name": "A", "value": "1"}],
            "ports": [{"containerPort": 80, "name": "http"}]}]));
        let out = apply(
            d,
            deployment(json!([{"name": "c", "env": [{"name": "B", "value": "2"}],
                "ports": [{"containerPort": 80, "protocol": "TCP"}]}, {"name": "new"}])),
            "Deployment",
        );
        // Without `$setElementOrder`, patch items not on the server go before the server's
        // own (upstream `mergeSortedSlice`); patch items keep the patch's order.
        let cs = &out["spec"]["template"]["spec"]["containers"];
        assert_eq!(
            cs[0]["env"],
            json!([{"name": "B", "value": "2"}, {"name": "A", "value": "1"}])
        );
        assert_eq!(
            cs[0]["ports"],
            json!([{"containerPort": 80, "name": "http", "protocol": "TCP"}])
        );
        assert_eq!(cs[1]["name"], "new");
    }

    #[test]
    fn lists_without_strategy_are_replaced() {
        // `args` has no patch strategy: replaced whole; `command` absent: kept.
        let d = deployment(json!([{"name": "c", "args": ["a", "b"], "command": ["x"]}]));
        let out = apply(
            d,
            deployment(json!([{"name": "c", "args": ["z"]}])),
            "Deployment",
        );
        let c = &out["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["args"], json!(["z"]));
        assert_eq!(c["command"], json!(["x"]));
        // A custom type without metadata: lists of maps are replaced too.
        let out = apply(
            json!({"l": [{"name": "a", "x": 1}]}),
            json!({"l": [{"name": "a"}]}),
            "Object",
        );
        assert_eq!(out["l"], json!([{"name": "a"}]));
    }

    #[test]
    fn delete_and_replace_directives() {
        let d = deployment(json!([{"name": "a"}, {"name": "b", "image": "b"}]));
        let out = apply(
            d.clone(),
            deployment(json!([{"name": "a", "$patch": "delete"}])),
            "Deployment",
        );
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([{"name": "b", "image": "b"}])
        );
        let out = apply(
            d.clone(),
            deployment(json!([{"name": "c"}, {"$patch": "replace"}])),
            "Deployment",
        );
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([{"name": "c"}])
        );
        // A map with `$patch: replace` replaces the map; `$patch: delete` empties it.
        let out = apply(
            json!({"metadata": {"labels": {"a": "1", "b": "2"}}}),
            json!({"metadata": {"labels": {"c": "3", "$patch": "replace"}}}),
            "Object",
        );
        assert_eq!(out["metadata"]["labels"], json!({"c": "3"}));
        let out = apply(
            json!({"metadata": {"labels": {"a": "1"}}}),
            json!({"metadata": {"labels": {"$patch": "delete"}}}),
            "Object",
        );
        assert_eq!(out["metadata"]["labels"], json!({}));
        // A delete of an item missing its merge key is refused.
        let mut t = deployment(json!([{"name": "a"}]));
        let e = strategic_merge_patch(
            &mut t,
            &deployment(json!([{"$patch": "delete"}])),
            "Deployment",
        );
        assert_eq!(e.unwrap_err().code, 422);
        let mut t = json!({"a": {"b": 1}});
        let e = strategic_merge_patch(&mut t, &json!({"a": {"$patch": "bogus"}}), "Object");
        assert_eq!(e.unwrap_err().code, 400);
    }

    #[test]
    fn null_deletes_and_unmatched_nulls_are_dropped() {
        let out = apply(
            json!({"metadata": {"labels": {"a": "1", "b": "2"}}}),
            json!({"metadata": {"labels": {"a": null}, "annotations": {"x": "1", "y": null}}}),
            "Object",
        );
        assert_eq!(out["metadata"]["labels"], json!({"b": "2"}));
        assert_eq!(out["metadata"]["annotations"], json!({"x": "1"}));
    }

    #[test]
    fn primitive_merge_lists_union_and_delete_from_primitive_list() {
        let o = json!({"metadata": {"finalizers": ["a", "b"]}});
        let out = apply(
            o.clone(),
            json!({"metadata": {"finalizers": ["c", "a"]}}),
            "Object",
        );
        // Patch items in patch order, server-only items kept near their old neighbours.
        assert_eq!(out["metadata"]["finalizers"], json!(["c", "a", "b"]));
        let out = apply(
            o,
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "zz"]}}),
            "Object",
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["a"]));
        // On a missing list, the deletion list adds nothing.
        let out = apply(
            json!({"metadata": {}}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
            "Object",
        );
        assert_eq!(out["metadata"], json!({}));
    }

    #[test]
    fn set_element_order_with_server_only_items() {
        // Mirrors the upstream case "set elements order in a list with server-only items 3".
        let current = deployment(json!([
            {"name": "1", "other": "a"}, {"name": "2", "value": "2"}, {"name": "7"},
            {"name": "9"}, {"name": "8"}, {"name": "3", "value": "3"}, {"name": "4", "value": "4"}]));
        let patch = json!({"spec": {"template": {"spec": {"$setElementOrder/containers": [
            {"name": "2"}, {"name": "1"}, {"name": "4"}, {"name": "3"}]}}}});
        let out = apply(current, patch, "Deployment");
        let names: Vec<&str> = out["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(names, ["2", "1", "7", "9", "8", "4", "3"]);
        // A patch list out of the declared order is refused.
        let mut t = deployment(json!([{"name": "a"}, {"name": "b"}]));
        let bad = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
            "containers": [{"name": "b"}, {"name": "a"}]}}}});
        assert_eq!(
            strategic_merge_patch(&mut t, &bad, "Deployment")
                .unwrap_err()
                .code,
            400
        );
    }

    #[test]
    fn retain_keys_clears_other_fields() {
        let o = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
        let out = apply(
            o.clone(),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
            "Deployment",
        );
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
        // A patch field outside the retained keys is refused.
        let mut t = o;
        let e = strategic_merge_patch(
            &mut t,
            &json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}}),
            "Deployment",
        );
        assert_eq!(e.unwrap_err().code, 400);
    }

    #[test]
    fn conditions_merge_by_type() {
        let o = json!({"status": {"conditions": [
            {"type": "Available", "status": "True"}, {"type": "Progressing", "status": "True"}]}});
        let out = apply(
            o,
            json!({"status": {"conditions": [{"type": "Available", "status": "False"}]}}),
            "Deployment",
        );
        assert_eq!(
            out["status"]["conditions"],
            json!([{"type": "Available", "status": "False"}, {"type": "Progressing", "status": "True"}])
        );
    }

    #[test]
    fn builtin_and_custom_kinds() {
        assert_eq!(root_type("apps", "Deployment"), Some("Deployment"));
        assert_eq!(root_type("", "ConfigMap"), Some("Object"));
        assert_eq!(root_type("wvo.dev", "VariantAutoscaling"), None);
        assert_eq!(unsupported_for_custom().code, 415);
        assert_eq!(
            field_meta(Some("PodSpec"), "containers").merge_key,
            Some("name")
        );
        assert_eq!(field_meta(Some("Container"), "args"), FieldMeta::PLAIN);
    }
}

/// The merge strategy and keys of [`FIELDS`] (what the strategic merge applies) and of
/// `openapi::PATCH_META` (what the OpenAPI documents tell clients) are written from the same
/// upstream struct tags in two shapes; this keeps them from drifting apart.
#[cfg(test)]
mod agrees_with_openapi {
    use super::FIELDS;
    use crate::kube_api::openapi::PATCH_META;

    #[test]
    fn every_list_merged_by_key_in_one_table_is_merged_by_the_same_key_in_the_other() {
        let short = |def: &str| def.rsplit('.').next().unwrap_or(def).to_string();
        let types: std::collections::BTreeSet<&str> = FIELDS.iter().map(|f| f.0).collect();
        let mut compared = 0;
        for (def, field, strategy, key) in PATCH_META {
            let ty = short(def);
            if !types.contains(ty.as_str()) {
                continue;
            }
            let merges = strategy.split(',').any(|s| s == "merge");
            let ours = FIELDS.iter().find(|f| f.0 == ty && f.1 == *field);
            match ours {
                Some(f) => {
                    assert_eq!(f.3, merges, "{ty}.{field}: merge strategy");
                    assert_eq!(f.4, *key, "{ty}.{field}: merge key");
                    compared += 1;
                }
                None => assert!(
                    !merges,
                    "{ty}.{field} merges in the OpenAPI data but is replaced by the strategic merge"
                ),
            }
        }
        let missing: Vec<String> = FIELDS
            .iter()
            .filter(|f| f.3)
            .filter(|f| {
                let listed = PATCH_META
                    .iter()
                    .any(|(def, field, _, key)| short(def) == f.0 && *field == f.1 && *key == f.4);
                let known_type = PATCH_META.iter().any(|(def, ..)| short(def) == f.0);
                known_type && !listed
            })
            .map(|f| format!("{}.{} (key {:?})", f.0, f.1, f.4))
            .collect();
        assert!(
            missing.is_empty(),
            "merged by the strategic merge but not in the OpenAPI data: {missing:?}"
        );
        assert!(compared >= 5, "the tables share few entries ({compared})");
    }
}
