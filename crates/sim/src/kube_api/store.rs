//! The object store: JSON objects per resource, one global resourceVersion counter, an
//! event log (the watch history) and a broadcast channel for live watches.

use super::error::{qualified, ApiError};
use super::patch::{managed_fields, prune_owners, track_update, Owners};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{broadcast, Notify};
use wvo_schema::validate::{FieldValidation, Refusal, Schema};

/// Where the scale subresource finds its fields (JSON paths like `.spec.replicas`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalePaths {
    /// Path of the desired replicas (`.spec.replicas`).
    pub spec_replicas: String,
    /// Path of the observed replicas (`.status.replicas`).
    pub status_replicas: String,
    /// Path of the label selector in string form, if any.
    pub label_selector: Option<String>,
}

/// One served resource (a group/version/plural).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceInfo {
    /// API group ("" for core).
    pub group: String,
    /// Version served.
    pub version: String,
    /// Plural resource name (`deployments`).
    pub plural: String,
    /// Singular name (`deployment`).
    pub singular: String,
    /// Kind (`Deployment`).
    pub kind: String,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Whether the kind has a `/status` subresource.
    pub status: bool,
    /// The `/scale` subresource, if any.
    pub scale: Option<ScalePaths>,
    /// Short names (`deploy`).
    pub short_names: Vec<String>,
}

impl ResourceInfo {
    /// `version` for the core group, `group/version` otherwise.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The storage key of this resource (group, plural): all versions share objects, and
    /// core/v1 Events are events.k8s.io/v1 Events (see `events.rs`).
    pub fn gr(&self) -> Gr {
        super::events::storage_gr(&self.group, &self.plural)
    }
}

/// Storage key of a resource: (group, plural).
pub type Gr = (String, String);

/// A stored object and what the store remembers beside it.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The object as served.
    pub obj: Value,
    /// resourceVersion at creation (orders objects by age).
    pub created: u64,
    /// Server-side apply ownership.
    pub owners: Owners,
}

/// Watch event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Object created.
    Added,
    /// Object changed.
    Modified,
    /// Object deleted.
    Deleted,
}

/// One change in the history.
#[derive(Debug, Clone)]
pub struct Change {
    /// resourceVersion of the change.
    pub rv: u64,
    /// Resource of the object.
    pub gr: Gr,
    /// Namespace ("" for cluster-scoped).
    pub ns: String,
    /// What happened.
    pub kind: EventKind,
    /// The object after the change (for deletions, the last state).
    pub obj: Value,
    /// The object before a modification.
    pub old: Option<Value>,
    /// When the change was committed (monotonic clock).
    pub at: std::time::Instant,
}

/// Which part of an object a write replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The main resource (keeps `.status` when the kind has a status subresource).
    Main,
    /// Only `.status`.
    Status,
    /// Everything (internal controllers).
    All,
}

/// Options of a write.
#[derive(Debug, Clone, Default)]
pub struct WriteOpts {
    /// Validate and compute but do not store (`dryRun=All`).
    pub dry_run: bool,
    /// Written by an emulator controller: keep `.status` on create.
    pub internal: bool,
    /// New apply ownership to store with the object (server-side apply).
    pub owners: Option<Owners>,
    /// Field manager of a non-apply API write (create, update, patch): fields it changes
    /// become its own. `None` for emulator-internal writes (no ownership change).
    pub manager: Option<String>,
    /// Validate a custom object against its CRD schema (API writes): what to do with
    /// unknown fields. `None` (admin and controller writes): no validation.
    pub validation: Option<FieldValidation>,
    /// The write is a patch (a strict-decoding refusal then has no "cannot be handled" prefix).
    pub patch: bool,
}

/// The store. All methods are synchronous; the server holds it behind a mutex.
pub struct Store {
    resources: BTreeMap<(String, String, String), ResourceInfo>,
    objects: BTreeMap<Gr, BTreeMap<(String, String), Stored>>,
    rv: u64,
    log: VecDeque<Arc<Change>>,
    compacted: u64,
    history_limit: usize,
    tx: broadcast::Sender<Arc<Change>>,
    changed: Arc<Notify>,
    seq: u64,
    /// When each pod (by uid) was bound to a node (for the start-up delay).
    pub bound_at: HashMap<String, Instant>,
    /// The pod-template-hash of each Deployment (by uid) at a generation, so the
    /// controllers hash a template once per change (`workloads.rs`).
    pub template_hashes: HashMap<String, (u64, String)>,
    /// Compiled CRD schemas by (group, version, plural).
    schemas: HashMap<(String, String, String), Arc<Schema>>,
    /// Warnings of the last write (`Warning: 299` headers), see [`Store::take_warnings`].
    warnings: Vec<String>,
}

/// Current time in RFC 3339, whole seconds (the `metav1.Time` form).
pub fn now_rfc3339() -> String {
    let now = jiff::Timestamp::now();
    now.round(jiff::Unit::Second).unwrap_or(now).to_string()
}

fn builtin(
    group: &str,
    version: &str,
    plural: &str,
    kind: &str,
    namespaced: bool,
    status: bool,
    short: &[&str],
) -> ResourceInfo {
    ResourceInfo {
        group: group.into(),
        version: version.into(),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        kind: kind.into(),
        namespaced,
        status,
        scale: None,
        short_names: short.iter().map(|s| s.to_string()).collect(),
    }
}

fn meta_mut(obj: &mut Value) -> Result<&mut Map<String, Value>, ApiError> {
    let o = obj
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("object must be a JSON object"))?;
    let m = o
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    m.as_object_mut()
        .ok_or_else(|| ApiError::bad_request("metadata must be an object"))
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// The object without `metadata` and `status` (what bumps `generation` when it changes).
fn spec_part(v: &Value) -> Value {
    let mut c = v.clone();
    if let Some(o) = c.as_object_mut() {
        o.remove("metadata");
        o.remove("status");
        o.remove("apiVersion");
        o.remove("kind");
    }
    c
}

/// The object without `resourceVersion` and `managedFields` (to detect no-op writes).
fn comparable(v: &Value) -> Value {
    let mut c = v.clone();
    if let Some(m) = c.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
        m.remove("managedFields");
    }
    c
}

/// Changes a live watch (or commit feed) may fall behind before it is disconnected. Counted
/// over every resource (one channel for all), so it is larger than a real server's
/// per-resource watch cache would need: Deployments → ReplicaSets → Pods write several
/// changes per scale.
pub const LIVE_CHANGES: usize = 16_384;

const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

impl Store {
    /// A store with the built-in kinds and namespaces `default`, `kube-system`,
    /// `kube-public`, `kube-node-lease`.
    pub fn new(history_limit: usize, changed: Arc<Notify>) -> Self {
        let (tx, _) = broadcast::channel(LIVE_CHANGES);
        let mut s = Self {
            resources: BTreeMap::new(),
            objects: BTreeMap::new(),
            rv: 0,
            log: VecDeque::new(),
            compacted: 0,
            history_limit: history_limit.max(1),
            tx,
            changed,
            seq: 0,
            bound_at: HashMap::new(),
            template_hashes: HashMap::new(),
            schemas: HashMap::new(),
            warnings: Vec::new(),
        };
        let mut deploy = builtin(
            "apps",
            "v1",
            "deployments",
            "Deployment",
            true,
            true,
            &["deploy"],
        );
        deploy.scale = Some(ScalePaths {
            spec_replicas: ".spec.replicas".into(),
            status_replicas: ".status.replicas".into(),
            label_selector: None,
        });
        let mut replica_sets = builtin(
            "apps",
            "v1",
            "replicasets",
            "ReplicaSet",
            true,
            true,
            &["rs"],
        );
        replica_sets.scale = deploy.scale.clone();
        for r in [
            builtin("", "v1", "namespaces", "Namespace", false, true, &["ns"]),
            builtin("", "v1", "configmaps", "ConfigMap", true, false, &["cm"]),
            builtin("", "v1", "pods", "Pod", true, true, &["po"]),
            builtin("", "v1", "nodes", "Node", false, true, &["no"]),
            builtin("", "v1", "events", "Event", true, false, &["ev"]),
            builtin("", "v1", "services", "Service", true, true, &["svc"]),
            builtin(
                "events.k8s.io",
                "v1",
                "events",
                "Event",
                true,
                false,
                &["ev"],
            ),
            deploy,
            replica_sets,
            builtin(
                "",
                "v1",
                "serviceaccounts",
                "ServiceAccount",
                true,
                false,
                &["sa"],
            ),
            builtin(
                "networking.k8s.io",
                "v1",
                "networkpolicies",
                "NetworkPolicy",
                true,
                false,
                &["netpol"],
            ),
            builtin(
                "autoscaling",
                "v2",
                "horizontalpodautoscalers",
                "HorizontalPodAutoscaler",
                true,
                true,
                &["hpa"],
            ),
            builtin(
                "coordination.k8s.io",
                "v1",
                "leases",
                "Lease",
                true,
                false,
                &[],
            ),
            builtin(
                "rbac.authorization.k8s.io",
                "v1",
                "roles",
                "Role",
                true,
                false,
                &[],
            ),
            builtin(
                "rbac.authorization.k8s.io",
                "v1",
                "clusterroles",
                "ClusterRole",
                false,
                false,
                &[],
            ),
            builtin(
                "rbac.authorization.k8s.io",
                "v1",
                "rolebindings",
                "RoleBinding",
                true,
                false,
                &[],
            ),
            builtin(
                "rbac.authorization.k8s.io",
                "v1",
                "clusterrolebindings",
                "ClusterRoleBinding",
                false,
                false,
                &[],
            ),
            // Create-only reviews, answered and never stored (see `rbac`).
            builtin(
                "authentication.k8s.io",
                "v1",
                "tokenreviews",
                "TokenReview",
                false,
                false,
                &[],
            ),
            builtin(
                "authorization.k8s.io",
                "v1",
                "subjectaccessreviews",
                "SubjectAccessReview",
                false,
                false,
                &[],
            ),
            builtin(
                "authorization.k8s.io",
                "v1",
                "selfsubjectaccessreviews",
                "SelfSubjectAccessReview",
                false,
                false,
                &[],
            ),
            builtin(
                "apiextensions.k8s.io",
                "v1",
                "customresourcedefinitions",
                "CustomResourceDefinition",
                false,
                true,
                &["crd", "crds"],
            ),
        ] {
            s.register(r);
        }
        if let Some(ns) = s.info("", "v1", "namespaces") {
            for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
                let obj = json!({"metadata": {"name": name}});
                let _ = s.create(&ns, "", obj, WriteOpts::default());
            }
        }
        s
    }

    fn register(&mut self, r: ResourceInfo) {
        self.resources
            .insert((r.group.clone(), r.version.clone(), r.plural.clone()), r);
    }

    /// The resource served at group/version/plural.
    pub fn info(&self, group: &str, version: &str, plural: &str) -> Option<ResourceInfo> {
        self.resources
            .get(&(group.to_string(), version.to_string(), plural.to_string()))
            .cloned()
    }

    /// The resource of an `apiVersion` + `kind`.
    pub fn info_by_kind(&self, api_version: &str, kind: &str) -> Option<ResourceInfo> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        self.resources
            .values()
            .find(|r| r.group == group && r.version == version && r.kind == kind)
            .cloned()
    }

    /// Every served resource.
    pub fn infos(&self) -> impl Iterator<Item = &ResourceInfo> {
        self.resources.values()
    }

    /// Current (latest) resourceVersion.
    pub fn rv(&self) -> u64 {
        self.rv
    }

    /// Events at or below this resourceVersion are forgotten.
    pub fn compacted(&self) -> u64 {
        self.compacted
    }

    /// Forget all history up to now: watches from an older resourceVersion get 410.
    pub fn compact(&mut self) -> u64 {
        self.log.clear();
        self.compacted = self.rv;
        self.rv
    }

    /// Subscribe to live changes.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.tx.subscribe()
    }

    /// Changes with resourceVersion > `rv`, or `None` when some were forgotten.
    pub fn changes_since(&self, rv: u64) -> Option<Vec<Arc<Change>>> {
        if rv < self.compacted {
            return None;
        }
        Some(self.log.iter().filter(|c| c.rv > rv).cloned().collect())
    }

    /// Rewrite `apiVersion` to the version served.
    pub fn present(info: &ResourceInfo, obj: &Value) -> Value {
        let mut o = obj.clone();
        super::events::present(&info.group, &info.plural, &mut o);
        if let Some(m) = o.as_object_mut() {
            m.insert("apiVersion".into(), json!(info.api_version()));
            m.insert("kind".into(), json!(info.kind));
        }
        o
    }

    /// [`Store::present`] of an object the caller owns (no copy).
    fn presented(info: &ResourceInfo, mut obj: Value) -> Value {
        super::events::present(&info.group, &info.plural, &mut obj);
        if let Some(m) = obj.as_object_mut() {
            m.insert("apiVersion".into(), json!(info.api_version()));
            m.insert("kind".into(), json!(info.kind));
        }
        obj
    }

    /// A stored object.
    pub fn stored(&self, info: &ResourceInfo, ns: &str, name: &str) -> Option<&Stored> {
        self.objects
            .get(&info.gr())
            .and_then(|m| m.get(&(ns.to_string(), name.to_string())))
    }

    /// Get one object (as served at `info`'s version).
    pub fn get(&self, info: &ResourceInfo, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.stored(info, ns, name)
            .map(|s| Self::present(info, &s.obj))
            .ok_or_else(|| ApiError::not_found(&info.group, &info.plural, name))
    }

    /// Objects of a resource, optionally in one namespace, ordered by (namespace, name).
    pub fn list(&self, info: &ResourceInfo, ns: Option<&str>) -> Vec<&Stored> {
        self.objects
            .get(&info.gr())
            .map(|m| {
                m.iter()
                    .filter(|((n, _), _)| ns.is_none_or(|want| want == n))
                    .map(|(_, s)| s)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn new_uid(&mut self) -> String {
        self.seq += 1;
        let salt = std::process::id() as u64;
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            (self.seq.wrapping_mul(0x9E37_79B9) ^ salt) & 0xffff_ffff,
            (salt >> 4) & 0xffff,
            self.seq & 0xfff,
            (self.seq >> 12) & 0xfff,
            self.seq
        )
    }

    /// A 5-character suffix like the ones `generateName` produces.
    pub fn random_suffix(&mut self) -> String {
        self.seq += 1;
        let mut x = self.seq.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ (std::process::id() as u64);
        (0..5)
            .map(|_| {
                let c = NAME_ALPHABET[(x % NAME_ALPHABET.len() as u64) as usize] as char;
                x /= NAME_ALPHABET.len() as u64;
                c
            })
            .collect()
    }

    fn check_type(info: &ResourceInfo, obj: &Value) -> Result<(), ApiError> {
        if let Some(kind) = obj.get("kind").and_then(Value::as_str) {
            if kind != info.kind {
                return Err(ApiError::bad_request(format!(
                    "the kind of the object ({kind}) does not match the resource {} ({})",
                    qualified(&info.group, &info.plural),
                    info.kind
                )));
            }
        }
        if let Some(av) = obj.get("apiVersion").and_then(Value::as_str) {
            let group = av.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
            if group != info.group {
                return Err(ApiError::bad_request(format!(
                    "the apiVersion of the object ({av}) does not match the group {:?}",
                    info.group
                )));
            }
        }
        Ok(())
    }

    fn defaults(info: &ResourceInfo, obj: &mut Value) {
        let Some(o) = obj.as_object_mut() else { return };
        match (info.group.as_str(), info.plural.as_str()) {
            ("apps", "deployments") => {
                let spec = o.entry("spec").or_insert_with(|| json!({}));
                if let Some(s) = spec.as_object_mut() {
                    s.entry("replicas").or_insert(json!(1));
                }
            }
            ("", "pods") => {
                let st = o.entry("status").or_insert_with(|| json!({}));
                if let Some(s) = st.as_object_mut() {
                    s.entry("phase").or_insert(json!("Pending"));
                }
            }
            ("", "namespaces") => {
                let st = o.entry("status").or_insert_with(|| json!({}));
                if let Some(s) = st.as_object_mut() {
                    s.entry("phase").or_insert(json!("Active"));
                }
            }
            _ => {}
        }
    }

    /// Create an object in namespace `ns` ("" for cluster-scoped).
    pub fn create(
        &mut self,
        info: &ResourceInfo,
        ns: &str,
        mut obj: Value,
        opts: WriteOpts,
    ) -> Result<Value, ApiError> {
        Self::check_type(info, &obj)?;
        super::events::to_storage(&info.group, &info.plural, &mut obj);
        let suffix = self.random_suffix();
        let uid = self.new_uid();
        let meta = meta_mut(&mut obj)?;
        let name = match meta.get("name").and_then(Value::as_str) {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => match meta.get("generateName").and_then(Value::as_str) {
                Some(g) if !g.is_empty() => format!("{g}{suffix}"),
                _ => {
                    return Err(ApiError::invalid(format!(
                        "{} is invalid: metadata.name: Required value: name or generateName is required",
                        info.kind
                    )))
                }
            },
        };
        if name.contains('/') || name.len() > 253 {
            return Err(ApiError::invalid(format!(
                "{} {name:?} is invalid: metadata.name: must be a DNS subdomain",
                info.kind
            )));
        }
        if info.namespaced {
            match meta.get("namespace").and_then(Value::as_str) {
                Some(n) if !n.is_empty() && n != ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ))
                }
                _ => {}
            }
            meta.insert("namespace".into(), json!(ns));
        } else {
            meta.remove("namespace");
        }
        meta.insert("name".into(), json!(name));
        meta.insert("uid".into(), json!(uid));
        meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
        meta.insert("generation".into(), json!(1));
        for k in [
            "resourceVersion",
            "deletionTimestamp",
            "managedFields",
            "selfLink",
        ] {
            meta.remove(k);
        }
        // Like the real registry strategies: status is reset on create, except for Nodes.
        let keeps_status = info.group.is_empty() && info.plural == "nodes";
        if info.status && !opts.internal && !keeps_status {
            if let Some(o) = obj.as_object_mut() {
                o.remove("status");
            }
        }
        Self::defaults(info, &mut obj);
        if let Some(o) = obj.as_object_mut() {
            o.insert("apiVersion".into(), json!(info.api_version()));
            o.insert("kind".into(), json!(info.kind));
        }
        let ns_key = if info.namespaced { ns } else { "" };
        self.warnings.clear();
        self.admit(info, &name, &mut obj, None, Part::All, &opts)?;
        if self.stored(info, ns_key, &name).is_some() {
            return Err(ApiError::already_exists(&info.group, &info.plural, &name));
        }
        if info.group == "apiextensions.k8s.io" {
            crd_resources(&obj)?;
            crd_schemas(&obj)?;
            crd_establish(&mut obj);
        }
        if opts.dry_run {
            return Ok(Self::presented(info, obj));
        }
        let owners = match (opts.owners, &opts.manager) {
            (Some(o), _) => o,
            (None, Some(m)) => {
                let mut o = Owners::new();
                track_update(&mut o, None, &obj, m);
                o
            }
            (None, None) => Owners::new(),
        };
        let out = self.commit(info, ns_key, &name, obj, EventKind::Added, None, owners);
        if info.group == "apiextensions.k8s.io" {
            self.on_crd(&out);
        }
        Ok(Self::presented(info, out))
    }

    /// Replace an object (update, or the result of a patch). A non-empty
    /// `metadata.resourceVersion` in `new` must equal the stored one (else 409 Conflict).
    /// A write that changes nothing does not bump the resourceVersion.
    pub fn replace(
        &mut self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        mut new: Value,
        part: Part,
        opts: WriteOpts,
    ) -> Result<Value, ApiError> {
        Self::check_type(info, &new)?;
        super::events::to_storage(&info.group, &info.plural, &mut new);
        let ns_key = if info.namespaced { ns } else { "" };
        let cur = self
            .stored(info, ns_key, name)
            .ok_or_else(|| ApiError::not_found(&info.group, &info.plural, name))?
            .clone();
        if !new.is_object() {
            return Err(ApiError::bad_request("object must be a JSON object"));
        }
        if let Some(n) = str_at(&new, "/metadata/name") {
            if n != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )));
            }
        }
        if info.namespaced {
            if let Some(n) = str_at(&new, "/metadata/namespace") {
                if !n.is_empty() && n != ns_key {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
            }
        }
        let cur_rv = str_at(&cur.obj, "/metadata/resourceVersion").unwrap_or_default();
        if let Some(rv) = str_at(&new, "/metadata/resourceVersion") {
            if !rv.is_empty() && rv != cur_rv {
                return Err(ApiError::conflict(&info.group, &info.plural, name));
            }
        }
        let mut result = match part {
            Part::Status => {
                let mut r = cur.obj.clone();
                if let Some(o) = r.as_object_mut() {
                    match new.get("status") {
                        Some(s) => o.insert("status".into(), s.clone()),
                        None => o.remove("status"),
                    };
                }
                r
            }
            Part::Main | Part::All => {
                let mut r = new;
                if part == Part::Main && info.status {
                    if let Some(o) = r.as_object_mut() {
                        match cur.obj.get("status") {
                            Some(s) => o.insert("status".into(), s.clone()),
                            None => o.remove("status"),
                        };
                    }
                }
                let meta = meta_mut(&mut r)?;
                for k in ["uid", "creationTimestamp", "generation", "resourceVersion"] {
                    match cur.obj.pointer(&format!("/metadata/{k}")) {
                        Some(v) => meta.insert(k.into(), v.clone()),
                        None => meta.remove(k),
                    };
                }
                meta.insert("name".into(), json!(name));
                if info.namespaced {
                    meta.insert("namespace".into(), json!(ns_key));
                } else {
                    meta.remove("namespace");
                }
                meta.remove("managedFields");
                r
            }
        };
        if let Some(o) = result.as_object_mut() {
            o.insert("apiVersion".into(), json!(info.api_version()));
            o.insert("kind".into(), json!(info.kind));
        }
        self.warnings.clear();
        let owned = if info.status { part } else { Part::All };
        self.admit(info, name, &mut result, Some(&cur.obj), owned, &opts)?;
        if spec_part(&result) != spec_part(&cur.obj) {
            let gen = cur
                .obj
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            meta_mut(&mut result)?.insert("generation".into(), json!(gen + 1));
        }
        if info.group == "apiextensions.k8s.io" {
            crd_resources(&result)?;
            crd_schemas(&result)?;
            crd_establish(&mut result);
        }
        let owners = match (opts.owners, &opts.manager) {
            (Some(o), _) => o,
            (None, manager) => {
                let mut o = cur.owners.clone();
                match manager {
                    Some(m) => track_update(&mut o, Some(&cur.obj), &result, m),
                    None => prune_owners(&mut o, &result),
                }
                o
            }
        };
        if let Some(m) = cur.obj.pointer("/metadata/managedFields") {
            meta_mut(&mut result)?.insert("managedFields".into(), m.clone());
        }
        if comparable(&result) == comparable(&cur.obj) && owners == cur.owners {
            return Ok(Self::present(info, &cur.obj));
        }
        if opts.dry_run {
            return Ok(Self::presented(info, result));
        }
        let out = self.commit(
            info,
            ns_key,
            name,
            result,
            EventKind::Modified,
            Some(cur.obj),
            owners,
        );
        if info.group == "apiextensions.k8s.io" {
            self.on_crd(&out);
        }
        Ok(Self::presented(info, out))
    }

    /// Delete an object; `precondition_rv` / `precondition_uid` must match when given.
    pub fn delete(
        &mut self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        precondition_rv: Option<&str>,
        precondition_uid: Option<&str>,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let ns_key = if info.namespaced { ns } else { "" };
        let cur = self
            .stored(info, ns_key, name)
            .ok_or_else(|| ApiError::not_found(&info.group, &info.plural, name))?
            .obj
            .clone();
        if let Some(rv) = precondition_rv {
            if str_at(&cur, "/metadata/resourceVersion") != Some(rv) {
                return Err(ApiError::conflict(&info.group, &info.plural, name));
            }
        }
        if let Some(uid) = precondition_uid {
            if str_at(&cur, "/metadata/uid") != Some(uid) {
                let mut e = ApiError::conflict(&info.group, &info.plural, name);
                e.message = format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    str_at(&cur, "/metadata/uid").unwrap_or_default()
                );
                return Err(e);
            }
        }
        if dry_run {
            return Ok(Self::present(info, &cur));
        }
        let out = self.commit(
            info,
            ns_key,
            name,
            cur,
            EventKind::Deleted,
            None,
            Owners::new(),
        );
        if info.group == "apiextensions.k8s.io" {
            self.on_crd_deleted(&out);
        }
        if info.group.is_empty() && info.plural == "namespaces" {
            self.delete_namespace_contents(name);
        }
        Ok(Self::presented(info, out))
    }

    fn delete_namespace_contents(&mut self, ns: &str) {
        let infos: BTreeMap<Gr, ResourceInfo> = self
            .resources
            .values()
            .filter(|r| r.namespaced)
            .map(|r| (r.gr(), r.clone()))
            .collect();
        for info in infos.values() {
            let names: Vec<String> = self
                .list(info, Some(ns))
                .iter()
                .filter_map(|s| str_at(&s.obj, "/metadata/name").map(String::from))
                .collect();
            for n in names {
                let _ = self.delete(info, ns, &n, None, None, false);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn commit(
        &mut self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        mut obj: Value,
        kind: EventKind,
        old: Option<Value>,
        owners: Owners,
    ) -> Value {
        self.rv += 1;
        let rv = self.rv;
        if let Ok(meta) = meta_mut(&mut obj) {
            meta.insert("resourceVersion".into(), json!(rv.to_string()));
            if kind != EventKind::Deleted && !owners.is_empty() {
                meta.insert(
                    "managedFields".into(),
                    managed_fields(&owners, &info.api_version(), &now_rfc3339()),
                );
            }
        }
        let gr = info.gr();
        let key = (ns.to_string(), name.to_string());
        let bucket = self.objects.entry(gr.clone()).or_default();
        match kind {
            EventKind::Deleted => {
                bucket.remove(&key);
            }
            _ => {
                let created = bucket.get(&key).map(|s| s.created).unwrap_or(rv);
                bucket.insert(
                    key,
                    Stored {
                        obj: obj.clone(),
                        created,
                        owners,
                    },
                );
            }
        }
        let change = Arc::new(Change {
            rv,
            gr,
            ns: ns.to_string(),
            kind,
            obj: obj.clone(),
            old,
            at: std::time::Instant::now(),
        });
        self.log.push_back(change.clone());
        while self.log.len() > self.history_limit {
            if let Some(c) = self.log.pop_front() {
                self.compacted = c.rv;
            }
        }
        let _ = self.tx.send(change);
        self.changed.notify_one();
        obj
    }

    fn on_crd(&mut self, crd: &Value) {
        if let Ok(infos) = crd_resources(crd) {
            let gr = infos.first().map(ResourceInfo::gr);
            self.schemas
                .retain(|(g, _, p), _| Some((g.clone(), p.clone())) != gr);
            for (version, schema) in crd_schemas(crd).unwrap_or_default() {
                if let Some(i) = infos.first() {
                    self.schemas
                        .insert((i.group.clone(), version, i.plural.clone()), schema);
                }
            }
            self.resources
                .retain(|_, r| Some(r.gr()) != gr || infos.iter().any(|i| i == r));
            for i in infos {
                self.register(i);
            }
        }
    }

    fn on_crd_deleted(&mut self, crd: &Value) {
        let Ok(infos) = crd_resources(crd) else {
            return;
        };
        let Some(info) = infos.first().cloned() else {
            return;
        };
        let keys: Vec<(String, String)> = self
            .list(&info, None)
            .iter()
            .filter_map(|s| {
                Some((
                    str_at(&s.obj, "/metadata/namespace")
                        .unwrap_or_default()
                        .to_string(),
                    str_at(&s.obj, "/metadata/name")?.to_string(),
                ))
            })
            .collect();
        for (ns, name) in keys {
            let _ = self.delete(&info, &ns, &name, None, None, false);
        }
        let gr = info.gr();
        self.resources.retain(|_, r| r.gr() != gr);
        self.schemas
            .retain(|(g, _, p), _| (g.clone(), p.clone()) != gr);
    }

    /// The warnings of the last write (unknown fields dropped under `fieldValidation=Warn`),
    /// to send as `Warning: 299` headers.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// The compiled schema of a custom resource version, if its CRD has one.
    pub fn schema(&self, info: &ResourceInfo) -> Option<Arc<Schema>> {
        self.schemas
            .get(&(
                info.group.clone(),
                info.version.clone(),
                info.plural.clone(),
            ))
            .cloned()
    }

    /// Prune, default and validate a custom object being written through the API, as the
    /// apiserver does (see `wvo_schema::validate`). `owned` is what the request writes: on
    /// a kind with a status subresource, errors in the part the request does not own are
    /// not its fault and are ignored (a stored object may predate a stricter schema).
    fn admit(
        &mut self,
        info: &ResourceInfo,
        name: &str,
        obj: &mut Value,
        old: Option<&Value>,
        owned: Part,
        opts: &WriteOpts,
    ) -> Result<(), ApiError> {
        let Some(mode) = opts.validation else {
            return Ok(());
        };
        let Some(schema) = self.schema(info) else {
            return Ok(());
        };
        match schema.admit(obj, old, mode) {
            Ok(a) => {
                self.warnings = a.warnings;
                Ok(())
            }
            Err(Refusal::UnknownFields(paths)) => {
                let why = Refusal::UnknownFields(paths).to_string();
                Err(ApiError::bad_request(if opts.patch {
                    why
                } else {
                    format!(
                        "{kind} in version {v:?} cannot be handled as a {kind}: {why}",
                        kind = info.kind,
                        v = info.version
                    )
                }))
            }
            Err(Refusal::Invalid(errors)) => {
                let in_status =
                    |f: &str| f == "status" || f.starts_with("status.") || f.starts_with("status[");
                // `<nil>` is the notice that CEL rules were skipped for errors elsewhere: it
                // goes with the errors of the part the request owns, or not at all (a status
                // write to an object whose stored spec predates the schema is allowed, as the
                // apiserver validates a status update against the status schema only).
                let owns = |f: &str| match owned {
                    Part::All => true,
                    Part::Status => in_status(f),
                    Part::Main => !in_status(f) && f != "<nil>",
                };
                let own_errors = errors.iter().any(|e| owns(&e.field));
                let errors: Vec<_> = errors
                    .into_iter()
                    .filter(|e| owns(&e.field) || (own_errors && e.field == "<nil>"))
                    .collect();
                if errors.is_empty() {
                    return Ok(());
                }
                Err(ApiError::invalid_fields(
                    &info.group,
                    &info.kind,
                    name,
                    &errors,
                ))
            }
        }
    }
}

/// The compiled `openAPIV3Schema` of every served version of a CRD; 422 naming the bad
/// patterns or CEL rules when one does not compile.
pub fn crd_schemas(crd: &Value) -> Result<Vec<(String, Arc<Schema>)>, ApiError> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (i, v) in versions.iter().enumerate() {
        let (Some(name), Some(schema)) = (str_at(v, "/name"), v.pointer("/schema/openAPIV3Schema"))
        else {
            continue;
        };
        match Schema::compile(
            schema,
            &format!("spec.versions[{i}].schema.openAPIV3Schema"),
        ) {
            Ok(s) => out.push((name.to_string(), Arc::new(s))),
            Err(e) => errors.extend(e),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        let name = str_at(crd, "/metadata/name").unwrap_or_default();
        Err(ApiError::invalid_fields(
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            name,
            &errors,
        ))
    }
}

/// The resources a CustomResourceDefinition declares (one per served version).
pub fn crd_resources(crd: &Value) -> Result<Vec<ResourceInfo>, ApiError> {
    let spec = crd
        .get("spec")
        .ok_or_else(|| ApiError::invalid("CustomResourceDefinition: spec: Required value"))?;
    let req = |p: &str| {
        str_at(spec, p)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .ok_or_else(|| {
                ApiError::invalid(format!(
                    "CustomResourceDefinition: spec{}: Required value",
                    p.replace('/', ".")
                ))
            })
    };
    let group = req("/group")?;
    let plural = req("/names/plural")?;
    let kind = req("/names/kind")?;
    let singular = str_at(spec, "/names/singular")
        .map(String::from)
        .unwrap_or_else(|| kind.to_lowercase());
    let namespaced = match str_at(spec, "/scope") {
        Some("Namespaced") => true,
        Some("Cluster") => false,
        other => {
            return Err(ApiError::invalid(format!(
                "CustomResourceDefinition: spec.scope: Unsupported value: {other:?}: supported values: \"Cluster\", \"Namespaced\""
            )))
        }
    };
    if let Some(name) = crd.pointer("/metadata/name").and_then(Value::as_str) {
        if name != format!("{plural}.{group}") {
            return Err(ApiError::invalid(format!(
                "CustomResourceDefinition {name:?} is invalid: metadata.name: must be spec.names.plural+\".\"+spec.group"
            )));
        }
    }
    let short_names: Vec<String> = spec
        .pointer("/names/shortNames")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            ApiError::invalid("CustomResourceDefinition: spec.versions: Required value")
        })?;
    let mut out = Vec::new();
    for v in versions {
        let name = str_at(v, "/name")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                ApiError::invalid("CustomResourceDefinition: spec.versions[].name: Required value")
            })?;
        if v.get("served").and_then(Value::as_bool) == Some(false) {
            continue;
        }
        let scale = v.pointer("/subresources/scale").map(|s| ScalePaths {
            spec_replicas: str_at(s, "/specReplicasPath")
                .unwrap_or(".spec.replicas")
                .to_string(),
            status_replicas: str_at(s, "/statusReplicasPath")
                .unwrap_or(".status.replicas")
                .to_string(),
            label_selector: str_at(s, "/labelSelectorPath").map(String::from),
        });
        out.push(ResourceInfo {
            group: group.clone(),
            version: name.to_string(),
            plural: plural.clone(),
            singular: singular.clone(),
            kind: kind.clone(),
            namespaced,
            status: v.pointer("/subresources/status").is_some(),
            scale,
            short_names: short_names.clone(),
        });
    }
    Ok(out)
}

fn crd_establish(crd: &mut Value) {
    let names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
    let stored: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .filter_map(|v| v.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    let now = now_rfc3339();
    let existing = crd.pointer("/status/conditions").cloned();
    let cond = |t: &str, reason: &str, msg: &str| {
        let since = existing
            .as_ref()
            .and_then(Value::as_array)
            .and_then(|a| {
                a.iter()
                    .find(|c| c.get("type").and_then(Value::as_str) == Some(t))
            })
            .and_then(|c| c.get("lastTransitionTime").cloned())
            .unwrap_or(json!(now));
        json!({"type": t, "status": "True", "reason": reason, "message": msg, "lastTransitionTime": since})
    };
    if let Some(o) = crd.as_object_mut() {
        o.insert(
            "status".into(),
            json!({
                "acceptedNames": names,
                "storedVersions": stored,
                "conditions": [
                    cond("NamesAccepted", "NoConflicts", "no conflicts found"),
                    cond("Established", "InitialNamesAccepted", "the initial names have been accepted"),
                ],
            }),
        );
    }
}
