//! OpenAPI v2 (`/openapi/v2`) and v3 (`/openapi/v3`, `/openapi/v3/apis/{g}/{v}`) documents
//! built from real schemas: the built-in kinds' from `k8s-openapi`'s `schemars` schemas (the
//! Kubernetes definitions that crate is generated from: names such as
//! `io.k8s.api.apps.v1.Deployment`, descriptions, types, `$ref`s), custom resources' from
//! their stored CRD's `openAPIV3Schema`.
//!
//! `k8s-openapi` keeps the strategic-merge extensions (`x-kubernetes-patch-merge-key`,
//! `x-kubernetes-patch-strategy`) out of its schemas, so they come from [`PATCH_META`], the
//! `patchStrategy`/`patchMergeKey` struct tags of `k8s.io/api` for the lists of the kinds
//! the emulator serves, and are written into the documents where kubectl reads them.
//! [`patch_meta`] answers the same question for the emulator's own strategic merge patch.

use super::error::ApiError;
use super::store::{ResourceInfo, Store};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use k8s_openapi::api;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

/// Where v3 documents keep their schemas (`$ref` prefix).
const V3_REFS: &str = "#/components/schemas/";
/// Where the v2 document keeps its schemas.
const V2_REFS: &str = "#/definitions/";
/// The MIME type kubectl's discovery client asks `/openapi/v2` for (gnostic protobuf).
const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2";

/// `(definition, property, x-kubernetes-patch-strategy, x-kubernetes-patch-merge-key)`: the
/// strategic-merge metadata of the lists (and `retainKeys` structs) of the kinds the
/// emulator serves, from the `patchStrategy`/`patchMergeKey` tags of `k8s.io/api`'s Go types.
pub const PATCH_META: &[(&str, &str, &str, Option<&str>)] = &[
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "finalizers",
        "merge",
        None,
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "ownerReferences",
        "merge",
        Some("uid"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "containers",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "initContainers",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "ephemeralContainers",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "volumes",
        "merge,retainKeys",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "imagePullSecrets",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "hostAliases",
        "merge",
        Some("ip"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "topologySpreadConstraints",
        "merge",
        Some("topologyKey"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "schedulingGates",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "resourceClaims",
        "merge,retainKeys",
        Some("name"),
    ),
    ("io.k8s.api.core.v1.Container", "env", "merge", Some("name")),
    (
        "io.k8s.api.core.v1.Container",
        "ports",
        "merge",
        Some("containerPort"),
    ),
    (
        "io.k8s.api.core.v1.Container",
        "volumeMounts",
        "merge",
        Some("mountPath"),
    ),
    (
        "io.k8s.api.core.v1.Container",
        "volumeDevices",
        "merge",
        Some("devicePath"),
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "env",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "ports",
        "merge",
        Some("containerPort"),
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "volumeMounts",
        "merge",
        Some("mountPath"),
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "volumeDevices",
        "merge",
        Some("devicePath"),
    ),
    (
        "io.k8s.api.core.v1.PodStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.core.v1.PodStatus",
        "podIPs",
        "merge",
        Some("ip"),
    ),
    (
        "io.k8s.api.core.v1.PodStatus",
        "hostIPs",
        "merge",
        Some("ip"),
    ),
    ("io.k8s.api.core.v1.NodeSpec", "podCIDRs", "merge", None),
    (
        "io.k8s.api.core.v1.NodeStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.core.v1.NodeStatus",
        "addresses",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.core.v1.NamespaceStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.core.v1.ServiceSpec",
        "ports",
        "merge",
        Some("port"),
    ),
    (
        "io.k8s.api.core.v1.ServiceAccount",
        "secrets",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.apps.v1.DeploymentSpec",
        "strategy",
        "retainKeys",
        None,
    ),
    (
        "io.k8s.api.apps.v1.DeploymentStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.apps.v1.ReplicaSetStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
];

/// The strategic-merge metadata of one field: `x-kubernetes-patch-strategy` (`merge`,
/// `retainKeys`, `merge,retainKeys`) and, for lists merged by key,
/// `x-kubernetes-patch-merge-key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatchMeta {
    /// `x-kubernetes-patch-strategy`.
    pub strategy: &'static str,
    /// `x-kubernetes-patch-merge-key` (`name` for containers), if the list merges by key.
    pub merge_key: Option<&'static str>,
}

/// The strategic-merge metadata of the field at `path` (field names from the object's root;
/// lists are stepped into implicitly, so `["spec", "template", "spec", "containers",
/// "env"]` is the `env` of every container) of a built-in kind, read from the served
/// OpenAPI schema. `None` for fields without it (a list without it is replaced whole),
/// unknown paths, and kinds that are not built in (custom resources take no strategic
/// merge patch).
pub fn patch_meta(group: &str, version: &str, kind: &str, path: &[&str]) -> Option<PatchMeta> {
    let b = builtins();
    let root = b.roots.get(&(group.into(), version.into(), kind.into()))?;
    let mut node = b.defs.get(root)?;
    let mut field: Option<&'static Value> = None;
    for seg in path {
        node = deref(b, node);
        if let Some(items) = node.get("items") {
            node = deref(b, items);
        }
        let f = node.get("properties")?.get(*seg)?;
        field = Some(f);
        node = f;
    }
    let f = field?;
    Some(PatchMeta {
        strategy: f.get("x-kubernetes-patch-strategy")?.as_str()?,
        merge_key: f
            .get("x-kubernetes-patch-merge-key")
            .and_then(Value::as_str),
    })
}

/// [`patch_meta`]'s merge key only: `patch_merge_key("apps", "v1", "Deployment",
/// &["spec", "template", "spec", "containers"]) == Some("name")`.
pub fn patch_merge_key(
    group: &str,
    version: &str,
    kind: &str,
    path: &[&str],
) -> Option<&'static str> {
    patch_meta(group, version, kind, path).and_then(|m| m.merge_key)
}

/// The schema a `$ref` (or an `allOf` holding one) points at; the node itself otherwise.
fn deref(b: &'static Builtins, node: &'static Value) -> &'static Value {
    let r = node.get("$ref").or_else(|| node.pointer("/allOf/0/$ref"));
    r.and_then(Value::as_str)
        .and_then(|r| r.strip_prefix(V3_REFS))
        .and_then(|name| b.defs.get(name))
        .unwrap_or(node)
}

/// The built-in definitions (v3 refs), generated once.
struct Builtins {
    /// Definition name → schema.
    defs: Map<String, Value>,
    /// (group, version, kind) → definition name.
    roots: HashMap<(String, String, String), String>,
}

/// A built-in kind's schema root: `(group, version, kind, generator)`.
type Root = (
    &'static str,
    &'static str,
    &'static str,
    fn(&mut SchemaGenerator) -> schemars::Schema,
);

macro_rules! roots {
    ($(($g:literal, $v:literal, $k:literal, $t:ty)),* $(,)?) => {
        &[$(($g, $v, $k, |g: &mut SchemaGenerator| g.subschema_for::<$t>())),*]
    };
}

/// Every built-in kind the emulator has a schema for (served or not: only the served ones
/// appear in the documents).
const ROOTS: &[Root] = roots![
    ("", "v1", "Namespace", api::core::v1::Namespace),
    ("", "v1", "ConfigMap", api::core::v1::ConfigMap),
    ("", "v1", "Secret", api::core::v1::Secret),
    ("", "v1", "Pod", api::core::v1::Pod),
    ("", "v1", "Node", api::core::v1::Node),
    ("", "v1", "Event", api::core::v1::Event),
    ("", "v1", "Service", api::core::v1::Service),
    ("", "v1", "ServiceAccount", api::core::v1::ServiceAccount),
    ("events.k8s.io", "v1", "Event", api::events::v1::Event),
    ("apps", "v1", "Deployment", api::apps::v1::Deployment),
    ("apps", "v1", "ReplicaSet", api::apps::v1::ReplicaSet),
    ("apps", "v1", "StatefulSet", api::apps::v1::StatefulSet),
    ("autoscaling", "v1", "Scale", api::autoscaling::v1::Scale),
    ("autoscaling", "v2", "HorizontalPodAutoscaler", api::autoscaling::v2::HorizontalPodAutoscaler),
    ("coordination.k8s.io", "v1", "Lease", api::coordination::v1::Lease),
    (
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition
    ),
    ("rbac.authorization.k8s.io", "v1", "Role", api::rbac::v1::Role),
    ("rbac.authorization.k8s.io", "v1", "ClusterRole", api::rbac::v1::ClusterRole),
    ("rbac.authorization.k8s.io", "v1", "RoleBinding", api::rbac::v1::RoleBinding),
    ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", api::rbac::v1::ClusterRoleBinding),
    ("authentication.k8s.io", "v1", "TokenReview", api::authentication::v1::TokenReview),
    ("authorization.k8s.io", "v1", "SubjectAccessReview", api::authorization::v1::SubjectAccessReview),
    (
        "authorization.k8s.io",
        "v1",
        "SelfSubjectAccessReview",
        api::authorization::v1::SelfSubjectAccessReview
    ),
    ("authorization.k8s.io", "v1", "SelfSubjectRulesReview", api::authorization::v1::SelfSubjectRulesReview),
    ("meta.k8s.io", "v1", "Status", meta::Status),
    ("meta.k8s.io", "v1", "DeleteOptions", meta::DeleteOptions),
    ("meta.k8s.io", "v1", "Patch", meta::Patch),
    ("meta.k8s.io", "v1", "ObjectMeta", meta::ObjectMeta),
];

/// Definitions every document carries (bodies of status answers, deletes and patches, and
/// custom resources' `metadata`).
const COMMON: &[&str] = &["Status", "DeleteOptions", "Patch", "ObjectMeta"];

fn builtins() -> &'static Builtins {
    static B: OnceLock<Builtins> = OnceLock::new();
    B.get_or_init(|| {
        let mut generator = SchemaGenerator::new(SchemaSettings::openapi3());
        let mut roots = HashMap::new();
        for (g, v, k, f) in ROOTS {
            let r = f(&mut generator);
            if let Some(name) = r
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix(V3_REFS))
            {
                roots.insert(
                    (g.to_string(), v.to_string(), k.to_string()),
                    name.to_string(),
                );
            }
        }
        let mut defs = generator.take_definitions(true);
        for ((g, v, k), name) in &roots {
            if g == "meta.k8s.io" {
                continue;
            }
            if let Some(o) = defs.get_mut(name).and_then(Value::as_object_mut) {
                o.insert(
                    "x-kubernetes-group-version-kind".into(),
                    json!([{"group": g, "version": v, "kind": k}]),
                );
            }
        }
        for (def, prop, strategy, key) in PATCH_META {
            if let Some(p) = defs
                .get_mut(*def)
                .and_then(|d| d.pointer_mut(&format!("/properties/{prop}")))
                .and_then(Value::as_object_mut)
            {
                p.insert("x-kubernetes-patch-strategy".into(), json!(strategy));
                if let Some(k) = key {
                    p.insert("x-kubernetes-patch-merge-key".into(), json!(k));
                }
            }
        }
        Builtins { defs, roots }
    })
}

/// The definition name of a built-in kind's root, or of a meta.k8s.io type in [`COMMON`].
fn builtin_root(group: &str, version: &str, kind: &str) -> Option<&'static String> {
    builtins()
        .roots
        .get(&(group.to_string(), version.to_string(), kind.to_string()))
}

/// The names of the definitions reachable from `roots` through `$ref`s.
fn closure(defs: &Map<String, Value>, roots: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                if let Some(r) = o.get("$ref").and_then(Value::as_str) {
                    if let Some(n) = r.strip_prefix(V3_REFS) {
                        out.push(n.to_string());
                    }
                }
                o.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }
    let mut seen = BTreeSet::new();
    let mut todo: Vec<String> = roots.into_iter().collect();
    while let Some(n) = todo.pop() {
        if !seen.insert(n.clone()) {
            continue;
        }
        if let Some(d) = defs.get(&n) {
            refs(d, &mut todo);
        }
    }
    seen
}

/// The stored CRD serving `info`, if `info` is a custom resource.
fn crd_of(store: &Store, info: &ResourceInfo) -> Option<Value> {
    let crds = store.info("apiextensions.k8s.io", "v1", "customresourcedefinitions")?;
    store
        .get(&crds, "", &format!("{}.{}", info.plural, info.group))
        .ok()
}

/// The version entry of `crd` named `version`.
pub(crate) fn crd_version<'a>(crd: &'a Value, version: &str) -> Option<&'a Value> {
    crd.pointer("/spec/versions")?
        .as_array()?
        .iter()
        .find(|v| v.get("name").and_then(Value::as_str) == Some(version))
}

/// The definition name the apiserver gives a custom kind: reversed group, version, kind
/// (`dev.wvo.v1alpha1.VariantAutoscaling`).
fn custom_def_name(info: &ResourceInfo) -> String {
    let mut parts: Vec<&str> = info.group.split('.').collect();
    parts.reverse();
    format!("{}.{}.{}", parts.join("."), info.version, info.kind)
}

/// A custom kind's schema: the CRD's `openAPIV3Schema` with `metadata` pointing at
/// ObjectMeta, `apiVersion`/`kind` described, and the kind's group-version-kind.
fn custom_schema(crd: &Value, info: &ResourceInfo) -> Value {
    let mut s = crd_version(crd, &info.version)
        .and_then(|v| v.pointer("/schema/openAPIV3Schema"))
        .cloned()
        .unwrap_or_else(|| json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
    if let Some(o) = s.as_object_mut() {
        let props = o
            .entry("properties")
            .or_insert_with(|| json!({}))
            .as_object_mut();
        if let Some(p) = props {
            p.insert(
                "apiVersion".into(),
                json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"}),
            );
            p.insert(
                "kind".into(),
                json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"}),
            );
            p.insert(
                "metadata".into(),
                json!({"allOf": [{"$ref": format!("{V3_REFS}io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")}], "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"}),
            );
        }
        o.insert(
            "x-kubernetes-group-version-kind".into(),
            json!([{"group": info.group, "version": info.version, "kind": info.kind}]),
        );
    }
    s
}

/// One served kind in a document: its resource, its schema's name, whether it is custom.
struct Kind {
    info: ResourceInfo,
    def: String,
    custom: bool,
}

/// The kinds served at `group`/`version` (every group-version when `None`) and the
/// definitions their documents need.
fn gather(store: &Store, gv: Option<(&str, &str)>) -> (Vec<Kind>, Map<String, Value>) {
    let (kinds, custom_defs) = served_kinds(store, gv);
    let defs = definitions(&kinds, custom_defs);
    (kinds, defs)
}

/// The kinds served at `group`/`version` (every group-version when `None`), and the
/// schemas of those that are not built in.
fn served_kinds(store: &Store, gv: Option<(&str, &str)>) -> (Vec<Kind>, Map<String, Value>) {
    let mut kinds = Vec::new();
    let mut custom_defs = Map::new();
    let mut infos: Vec<&ResourceInfo> = store
        .infos()
        .filter(|r| gv.is_none_or(|(g, v)| r.group == g && r.version == v))
        .collect();
    infos.sort_by(|a, b| (&a.group, &a.version, &a.plural).cmp(&(&b.group, &b.version, &b.plural)));
    for info in infos {
        if let Some(crd) = crd_of(store, info) {
            let def = custom_def_name(info);
            custom_defs.insert(def.clone(), custom_schema(&crd, info));
            kinds.push(Kind {
                info: info.clone(),
                def,
                custom: true,
            });
        } else {
            let def = match builtin_root(&info.group, &info.version, &info.kind) {
                Some(d) => d.clone(),
                None => {
                    // A kind served without a schema here: an open object, still tagged so
                    // kubectl finds its operations.
                    let def = custom_def_name(info);
                    custom_defs.insert(
                        def.clone(),
                        json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                               "x-kubernetes-group-version-kind": [{"group": info.group, "version": info.version, "kind": info.kind}]}),
                    );
                    def
                }
            };
            kinds.push(Kind {
                info: info.clone(),
                def,
                custom: false,
            });
        }
    }
    (kinds, custom_defs)
}

/// The definitions a document of `kinds` needs: the built-in ones reachable from them (and
/// from [`COMMON`]), and the custom ones.
fn definitions(kinds: &[Kind], custom_defs: Map<String, Value>) -> Map<String, Value> {
    let b = builtins();
    let mut roots: Vec<String> = COMMON
        .iter()
        .filter_map(|k| builtin_root("meta.k8s.io", "v1", k).cloned())
        .collect();
    roots.extend(kinds.iter().map(|k| k.def.clone()));
    if kinds.iter().any(|k| k.info.scale.is_some()) {
        roots.extend(builtin_root("autoscaling", "v1", "Scale").cloned());
    }
    let mut defs = Map::new();
    for name in closure(&b.defs, roots) {
        if let Some(d) = b.defs.get(&name) {
            defs.insert(name, d.clone());
        }
    }
    for (name, d) in custom_defs {
        // custom schemas may only point at ObjectMeta, already in the closure
        defs.insert(name, d);
    }
    defs
}

/// The patch bodies a kind accepts: strategic merge only for built-in kinds.
fn patch_types(custom: bool) -> Vec<&'static str> {
    let mut t = vec![
        "application/json-patch+json",
        "application/merge-patch+json",
    ];
    if !custom {
        t.push("application/strategic-merge-patch+json");
    }
    t.push("application/apply-patch+yaml");
    t
}

/// The REST paths and operations of `kinds`, for a v3 (`v2 == false`) or v2 document.
fn paths(kinds: &[Kind], v2: bool) -> Map<String, Value> {
    let refs = if v2 { V2_REFS } else { V3_REFS };
    let schema_ref = |def: &str| json!({"$ref": format!("{refs}{def}")});
    let body = |def: &str, types: &[&str]| -> Value {
        if v2 {
            json!({"name": "body", "in": "body", "required": true, "schema": schema_ref(def)})
        } else {
            let content: Map<String, Value> = types
                .iter()
                .map(|t| (t.to_string(), json!({"schema": schema_ref(def)})))
                .collect();
            json!({"content": content, "required": true})
        }
    };
    let ok = |def: &str| -> Value {
        if v2 {
            json!({"200": {"description": "OK", "schema": schema_ref(def)}, "401": {"description": "Unauthorized"}})
        } else {
            json!({"200": {"description": "OK", "content": {"application/json": {"schema": schema_ref(def)}, "application/yaml": {"schema": schema_ref(def)}}}, "401": {"description": "Unauthorized"}})
        }
    };
    let query = |names: &[&str]| -> Vec<Value> {
        names
            .iter()
            .map(|n| {
                if v2 {
                    json!({"name": n, "in": "query", "type": "string", "uniqueItems": true})
                } else {
                    json!({"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": true}})
                }
            })
            .collect()
    };
    let path_param = |n: &str| -> Value {
        if v2 {
            json!({"name": n, "in": "path", "required": true, "type": "string", "uniqueItems": true})
        } else {
            json!({"name": n, "in": "path", "required": true, "schema": {"type": "string", "uniqueItems": true}})
        }
    };
    let mut out = Map::new();
    for k in kinds {
        let r = &k.info;
        let prefix = if r.group.is_empty() {
            format!("/api/{}", r.version)
        } else {
            format!("/apis/{}/{}", r.group, r.version)
        };
        let (ns_path, ns_word) = if r.namespaced {
            ("/namespaces/{namespace}", "Namespaced")
        } else {
            ("", "")
        };
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        let status_def = builtin_root("meta.k8s.io", "v1", "Status")
            .cloned()
            .unwrap_or_default();
        let patch_def = builtin_root("meta.k8s.io", "v1", "Patch")
            .cloned()
            .unwrap_or_default();
        let delete_def = builtin_root("meta.k8s.io", "v1", "DeleteOptions")
            .cloned()
            .unwrap_or_default();
        let op = |action: &str, id: String, params: &[&str], mut extra: Map<String, Value>| {
            let mut o = Map::new();
            o.insert("operationId".into(), json!(id));
            o.insert("parameters".into(), json!(query(params)));
            o.insert("x-kubernetes-action".into(), json!(action));
            o.insert("x-kubernetes-group-version-kind".into(), gvk.clone());
            if v2 {
                o.insert(
                    "produces".into(),
                    json!(["application/json", "application/yaml"]),
                );
                o.insert("schemes".into(), json!(["https"]));
            }
            o.append(&mut extra);
            Value::Object(o)
        };
        let with_body = |def: &str, types: &[&str], responses: Value| -> Map<String, Value> {
            let mut m = Map::new();
            if v2 {
                m.insert("consumes".into(), json!(types));
                m.insert("x-body".into(), body(def, types));
            } else {
                m.insert("requestBody".into(), body(def, types));
            }
            m.insert("responses".into(), responses);
            m
        };
        let mut item_params = vec![path_param("name")];
        let mut coll_params = Vec::new();
        if r.namespaced {
            item_params.push(path_param("namespace"));
            coll_params.push(path_param("namespace"));
        }
        let writes = ["dryRun", "fieldManager", "fieldValidation"];
        let mut item = Map::new();
        item.insert("parameters".into(), json!(item_params));
        let resp = |def: &str| -> Map<String, Value> {
            let mut m = Map::new();
            m.insert("responses".into(), ok(def));
            m
        };
        item.insert(
            "get".into(),
            op(
                "get",
                format!("read{ns_word}{}", r.kind),
                &["pretty"],
                resp(&k.def),
            ),
        );
        item.insert(
            "put".into(),
            op(
                "put",
                format!("replace{ns_word}{}", r.kind),
                &writes,
                with_body(
                    &k.def,
                    &["application/json", "application/yaml"],
                    ok(&k.def),
                ),
            ),
        );
        item.insert(
            "patch".into(),
            op(
                "patch",
                format!("patch{ns_word}{}", r.kind),
                &["dryRun", "fieldManager", "fieldValidation", "force"],
                with_body(&patch_def, &patch_types(k.custom), ok(&k.def)),
            ),
        );
        item.insert(
            "delete".into(),
            op(
                "delete",
                format!("delete{ns_word}{}", r.kind),
                &["dryRun", "gracePeriodSeconds", "propagationPolicy"],
                with_body(
                    &delete_def,
                    &["application/json", "application/yaml"],
                    ok(&status_def),
                ),
            ),
        );
        let mut coll = Map::new();
        coll.insert("parameters".into(), json!(coll_params));
        let list_params = [
            "allowWatchBookmarks",
            "continue",
            "fieldSelector",
            "labelSelector",
            "limit",
            "resourceVersion",
            "timeoutSeconds",
            "watch",
        ];
        coll.insert(
            "get".into(),
            op(
                "list",
                format!("list{ns_word}{}", r.kind),
                &list_params,
                resp(&k.def),
            ),
        );
        coll.insert(
            "post".into(),
            op(
                "post",
                format!("create{ns_word}{}", r.kind),
                &writes,
                with_body(
                    &k.def,
                    &["application/json", "application/yaml"],
                    ok(&k.def),
                ),
            ),
        );
        coll.insert(
            "delete".into(),
            op(
                "deletecollection",
                format!("deletecollection{ns_word}{}", r.kind),
                &["labelSelector", "fieldSelector"],
                resp(&status_def),
            ),
        );
        let base = format!("{prefix}{ns_path}/{}", r.plural);
        for sub in ["status", "scale"] {
            let served = match sub {
                "status" => r.status,
                _ => r.scale.is_some(),
            };
            if !served {
                continue;
            }
            let def = if sub == "scale" {
                builtin_root("autoscaling", "v1", "Scale")
                    .cloned()
                    .unwrap_or_default()
            } else {
                k.def.clone()
            };
            let cap = if sub == "status" { "Status" } else { "Scale" };
            let mut s = Map::new();
            s.insert("parameters".into(), json!(item_params));
            s.insert(
                "get".into(),
                op(
                    "get",
                    format!("read{ns_word}{}{cap}", r.kind),
                    &["pretty"],
                    resp(&def),
                ),
            );
            s.insert(
                "patch".into(),
                op(
                    "patch",
                    format!("patch{ns_word}{}{cap}", r.kind),
                    &["dryRun", "fieldManager", "fieldValidation", "force"],
                    with_body(&patch_def, &patch_types(k.custom), ok(&def)),
                ),
            );
            s.insert(
                "put".into(),
                op(
                    "put",
                    format!("replace{ns_word}{}{cap}", r.kind),
                    &writes,
                    with_body(&def, &["application/json", "application/yaml"], ok(&def)),
                ),
            );
            out.insert(format!("{base}/{{name}}/{sub}"), Value::Object(s));
        }
        out.insert(format!("{base}/{{name}}"), Value::Object(item));
        out.insert(base, Value::Object(coll));
    }
    if v2 {
        // a v2 body is a parameter: move it where swagger 2.0 wants it
        for p in out.values_mut() {
            if let Some(ops) = p.as_object_mut() {
                for op in ops.values_mut() {
                    let Some(o) = op.as_object_mut() else {
                        continue;
                    };
                    if let Some(b) = o.remove("x-body") {
                        if let Some(ps) = o.get_mut("parameters").and_then(Value::as_array_mut) {
                            ps.insert(0, b);
                        }
                    }
                }
            }
        }
    }
    out
}

/// Rewrite every `$ref` from the v3 location to the v2 one.
fn to_v2_refs(v: &mut Value) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get_mut("$ref") {
                if let Some(n) = r.strip_prefix(V3_REFS) {
                    *r = format!("{V2_REFS}{n}");
                }
            }
            o.values_mut().for_each(to_v2_refs);
        }
        Value::Array(a) => a.iter_mut().for_each(to_v2_refs),
        _ => {}
    }
}

/// A serialized v3 document and its hash.
#[derive(Clone)]
struct Served {
    body: Arc<String>,
    hash: Arc<str>,
}

/// The v3 document of one group-version (`""` group for core), serialized and hashed, or
/// `None` when nothing is served there. Remembered by what it is built from (the kinds
/// served and the custom schemas): discovery hashes every group-version's document, and the
/// built-in ones are large.
fn v3_served(store: &Store, group: &str, version: &str) -> Option<Served> {
    static CACHE: OnceLock<Mutex<HashMap<String, Served>>> = OnceLock::new();
    let (kinds, custom_defs) = served_kinds(store, Some((group, version)));
    if kinds.is_empty() {
        return None;
    }
    let mut key = String::new();
    for k in &kinds {
        let r = &k.info;
        key.push_str(&format!(
            "{}/{}/{}/{}/{}/{}/{}/{}/{};",
            r.group,
            r.version,
            r.plural,
            r.kind,
            r.namespaced,
            r.status,
            r.scale.is_some(),
            k.def,
            k.custom
        ));
    }
    key.push_str(&Value::Object(custom_defs.clone()).to_string());
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(s) = cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
        return Some(s);
    }
    let doc = json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (wvo emulator)", "version": "v1.34.0"},
        "paths": paths(&kinds, false),
        "components": {"schemas": definitions(&kinds, custom_defs)},
    });
    let body = doc.to_string();
    let served = Served {
        hash: hash(body.as_bytes()).into(),
        body: Arc::new(body),
    };
    if let Ok(mut c) = cache.lock() {
        if c.len() >= 256 {
            c.clear();
        }
        c.insert(key, served.clone());
    }
    Some(served)
}

/// The v2 (swagger 2.0) document of everything served.
pub(crate) fn v2_document(store: &Store) -> Value {
    let (kinds, defs) = gather(store, None);
    let mut d = Value::Object(defs);
    to_v2_refs(&mut d);
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes (wvo emulator)", "version": "v1.34.0"},
        "paths": paths(&kinds, true),
        "definitions": d,
    })
}

/// The apiserver's document hash: SHA-512 of the served bytes, upper-case hex.
fn hash(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA512, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

/// The group-versions served, each with the relative path of its v3 document
/// (`api/v1`, `apis/apps/v1`).
fn served_gvs(store: &Store) -> BTreeMap<String, (String, String)> {
    store
        .infos()
        .map(|r| {
            let p = if r.group.is_empty() {
                format!("api/{}", r.version)
            } else {
                format!("apis/{}/{}", r.group, r.version)
            };
            (p, (r.group.clone(), r.version.clone()))
        })
        .collect()
}

fn json_response(code: StatusCode, body: String) -> Response {
    (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Serve `/openapi/v2` and `/openapi/v3[/...]`; `None` for other paths.
pub(crate) fn serve(
    store: &Store,
    segs: &[&str],
    uri: &Uri,
    headers: &HeaderMap,
) -> Option<Result<Response, ApiError>> {
    match segs {
        ["openapi", "v2"] => Some(serve_v2(store, headers)),
        ["openapi", "v3"] => {
            let mut paths = Map::new();
            for (p, (g, v)) in served_gvs(store) {
                if let Some(Served { hash: h, .. }) = v3_served(store, &g, &v) {
                    paths.insert(
                        p.clone(),
                        json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={h}")}),
                    );
                }
            }
            Some(Ok(json_response(
                StatusCode::OK,
                json!({"paths": paths}).to_string(),
            )))
        }
        ["openapi", "v3", rest @ ..] => {
            let p = rest.join("/");
            let Some((g, v)) = served_gvs(store).remove(&p) else {
                return Some(Err(ApiError::no_route(uri.path())));
            };
            let doc = v3_served(store, &g, &v)?;
            Some(Ok(serve_versioned(&doc, &p, uri, headers)))
        }
        _ => None,
    }
}

/// A v3 group-version document with the apiserver's caching: `ETag` is the hash; a request
/// for the current hash is immutable, one for an old hash is redirected to the current one,
/// `If-None-Match` with the current ETag answers 304.
fn serve_versioned(doc: &Served, rel: &str, uri: &Uri, headers: &HeaderMap) -> Response {
    let h = &*doc.hash;
    let etag = format!("\"{h}\"");
    let asked = form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "hash")
        .map(|(_, v)| v.into_owned());
    if asked.as_deref().is_some_and(|a| a != h) {
        let mut r = StatusCode::MOVED_PERMANENTLY.into_response();
        if let Ok(l) = HeaderValue::from_str(&format!("/openapi/v3/{rel}?hash={h}")) {
            r.headers_mut().insert(header::LOCATION, l);
        }
        return r;
    }
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == etag);
    let mut r = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        json_response(StatusCode::OK, doc.body.to_string())
    };
    if let Ok(e) = HeaderValue::from_str(&etag) {
        r.headers_mut().insert(header::ETAG, e);
    }
    let cache = if asked.is_some() {
        "public, immutable"
    } else {
        "no-cache, private"
    };
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    r
}

/// `/openapi/v2` as JSON. A request that accepts only the gnostic protobuf form (what
/// client-go's `OpenAPISchema()` sends) gets 406: the emulator has no protobuf encoder, and
/// the client then reports the document as unavailable (kubectl falls back to OpenAPI v3 or
/// its compiled-in types).
fn serve_v2(store: &Store, headers: &HeaderMap) -> Result<Response, ApiError> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("*/*");
    let json_ok = accept.split(',').any(|a| {
        let t = a.split(';').next().unwrap_or_default().trim();
        t == "application/json" || t == "*/*" || t == "application/*" || t.is_empty()
    });
    if !json_ok && accept.contains(V2_PROTOBUF) {
        return Err(ApiError::new(
            406,
            "NotAcceptable",
            format!("only the following media types are accepted: application/json (asked for {accept})"),
        ));
    }
    let body = v2_document(store).to_string();
    let h = hash(body.as_bytes());
    let mut r = json_response(StatusCode::OK, body);
    if let Ok(e) = HeaderValue::from_str(&format!("\"{h}\"")) {
        r.headers_mut().insert(header::ETAG, e);
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keys_of_the_pod_template_lists() {
        let c = ["spec", "template", "spec", "containers"];
        assert_eq!(
            patch_merge_key("apps", "v1", "Deployment", &c),
            Some("name")
        );
        let env = ["spec", "template", "spec", "containers", "env"];
        assert_eq!(
            patch_merge_key("apps", "v1", "Deployment", &env),
            Some("name")
        );
        let ports = ["spec", "template", "spec", "containers", "ports"];
        assert_eq!(
            patch_merge_key("apps", "v1", "Deployment", &ports),
            Some("containerPort")
        );
        let vols = ["spec", "volumes"];
        assert_eq!(
            patch_meta("", "v1", "Pod", &vols),
            Some(PatchMeta {
                strategy: "merge,retainKeys",
                merge_key: Some("name")
            })
        );
        assert_eq!(
            patch_meta("apps", "v1", "Deployment", &["spec", "strategy"]),
            Some(PatchMeta {
                strategy: "retainKeys",
                merge_key: None
            })
        );
        // a list without strategic metadata (replaced whole), an unknown field, a custom kind
        let args = ["spec", "template", "spec", "containers", "args"];
        assert_eq!(patch_meta("apps", "v1", "Deployment", &args), None);
        assert_eq!(
            patch_meta("apps", "v1", "Deployment", &["spec", "nope"]),
            None
        );
        assert_eq!(
            patch_meta("wvo.dev", "v1alpha1", "VariantAutoscaling", &["spec"]),
            None
        );
    }

    #[test]
    fn every_patch_meta_entry_names_a_real_property() {
        let b = builtins();
        for (def, prop, ..) in PATCH_META {
            assert!(
                b.defs
                    .get(*def)
                    .and_then(|d| d.pointer(&format!("/properties/{prop}")))
                    .is_some(),
                "{def}.{prop} is not in k8s-openapi's schemas"
            );
        }
    }

    #[test]
    fn roots_carry_their_group_version_kind_and_refs_resolve() {
        let b = builtins();
        let d = &b.defs["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            d["x-kubernetes-group-version-kind"],
            json!([{"group": "apps", "version": "v1", "kind": "Deployment"}])
        );
        let all = closure(&b.defs, b.defs.keys().cloned());
        for n in all {
            assert!(b.defs.contains_key(&n), "dangling $ref to {n}");
        }
    }
}
