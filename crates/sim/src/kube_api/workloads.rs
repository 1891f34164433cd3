//! The emulator's deployment and replica set controllers, shaped like the real ones:
//! a Deployment owns ReplicaSets (one per pod template, named `<deployment>-<hash>`, with
//! the `pod-template-hash` label on the ReplicaSet, its selector and its template), a
//! ReplicaSet owns Pods (`<replicaset>-<5 chars>`). A template change makes a new
//! ReplicaSet that gets all the replicas while the old ones go to 0 at once (no surge, no
//! `maxUnavailable` pacing: like the `Recreate` strategy). Status: ReplicaSet `replicas`,
//! `fullyLabeledReplicas`, `readyReplicas`, `availableReplicas`, `observedGeneration`;
//! Deployment `replicas`, `updatedReplicas` (Pods of the current template),
//! `readyReplicas`, `availableReplicas`, `unavailableReplicas`, `observedGeneration` and
//! the `Available` and `Progressing` conditions, which `kubectl rollout status` and
//! `kubectl wait --for=condition=Available` read.

use super::store::{now_rfc3339, Part, ResourceInfo, Store, Stored, WriteOpts};
use serde_json::{json, Map, Value};
use std::collections::{HashMap, HashSet};

/// Label the deployment controller puts on a ReplicaSet, its selector and its Pods.
pub const TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

/// Annotation numbering a Deployment's ReplicaSets in rollout order.
const REVISION: &str = "deployment.kubernetes.io/revision";

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

fn key(obj: &Value) -> (String, String) {
    (
        s(obj, "/metadata/namespace").to_string(),
        s(obj, "/metadata/name").to_string(),
    )
}

/// The controlling owner of an object: (kind, uid).
pub fn controller_of(obj: &Value) -> Option<(String, String)> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)?
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .map(|r| (s(r, "/kind").to_string(), s(r, "/uid").to_string()))
}

fn terminal(pod: &Value) -> bool {
    matches!(s(pod, "/status/phase"), "Succeeded" | "Failed")
}

fn is_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| s(c, "/type") == "Ready" && s(c, "/status") == "True")
        })
}

fn replicas(obj: &Value) -> u64 {
    obj.pointer("/spec/replicas")
        .and_then(Value::as_u64)
        .unwrap_or(1)
}

/// The `pod-template-hash` of a pod template: FNV-1a (32 bits) of its JSON, its decimal
/// digits spelled in the alphabet generated names use (like the upstream controller's
/// hash, though not the same number).
pub fn template_hash(template: &Value) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut h: u32 = 0x811c_9dc5;
    for b in template.to_string().bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h.to_string()
        .bytes()
        .map(|d| ALPHABET[usize::from(d) % ALPHABET.len()] as char)
        .collect()
}

/// The template hash of every Deployment, by uid: from the store's cache when the
/// Deployment's generation did not change (a template change bumps it), else computed and
/// cached. Entries of deleted Deployments are dropped.
fn deployment_hashes(store: &mut Store, deploy: &ResourceInfo) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut cache = std::mem::take(&mut store.template_hashes);
    for d in store.list(deploy, None) {
        let uid = s(&d.obj, "/metadata/uid").to_string();
        let generation = d
            .obj
            .pointer("/metadata/generation")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let hash = match cache.get(&uid) {
            Some((g, h)) if *g == generation => h.clone(),
            _ => template_hash(d.obj.pointer("/spec/template").unwrap_or(&Value::Null)),
        };
        cache.insert(uid.clone(), (generation, hash.clone()));
        out.insert(uid, hash);
    }
    cache.retain(|uid, _| out.contains_key(uid));
    store.template_hashes = cache;
    out
}

fn owner_ref(kind: &str, obj: &Value) -> Value {
    json!([{
        "apiVersion": "apps/v1",
        "kind": kind,
        "name": s(obj, "/metadata/name"),
        "uid": s(obj, "/metadata/uid"),
        "controller": true,
        "blockOwnerDeletion": true,
    }])
}

fn with_label(mut v: Value, pointer: &str, hash: &str) -> Value {
    let mut cur = &mut v;
    for k in pointer.split('/').filter(|k| !k.is_empty()) {
        if !cur.is_object() {
            *cur = json!({});
        }
        let Some(o) = cur.as_object_mut() else {
            return v;
        };
        cur = o.entry(k.to_string()).or_insert_with(|| json!({}));
    }
    if let Some(m) = cur.as_object_mut() {
        m.insert(TEMPLATE_HASH_LABEL.into(), json!(hash));
    }
    v
}

/// Objects of `info` by the uid of their controlling owner of kind `owner_kind`.
fn owned_by<'a>(
    store: &'a Store,
    info: &ResourceInfo,
    owner_kind: &str,
) -> HashMap<String, Vec<&'a Stored>> {
    let mut out: HashMap<String, Vec<&'a Stored>> = HashMap::new();
    for o in store.list(info, None) {
        if let Some((kind, uid)) = controller_of(&o.obj) {
            if kind == owner_kind {
                out.entry(uid).or_default().push(o);
            }
        }
    }
    out
}

fn internal() -> WriteOpts {
    WriteOpts {
        internal: true,
        ..WriteOpts::default()
    }
}

/// Delete ReplicaSets whose Deployment is gone, then Pods whose ReplicaSet (or Deployment,
/// for Pods made before ReplicaSets existed) is gone.
pub fn garbage_collect(
    store: &mut Store,
    deploy: &ResourceInfo,
    rs: &ResourceInfo,
    pods: &ResourceInfo,
) {
    let uids = |store: &Store, info: &ResourceInfo| -> HashSet<String> {
        store
            .list(info, None)
            .iter()
            .map(|o| s(&o.obj, "/metadata/uid").to_string())
            .collect()
    };
    let live = uids(store, deploy);
    let orphans: Vec<(String, String)> = store
        .list(rs, None)
        .iter()
        .filter(|o| {
            controller_of(&o.obj).is_some_and(|(k, uid)| k == "Deployment" && !live.contains(&uid))
        })
        .map(|o| key(&o.obj))
        .collect();
    for (ns, name) in orphans {
        let _ = store.delete(rs, &ns, &name, None, None, false);
    }
    let live_rs = uids(store, rs);
    let orphans: Vec<(String, String)> = store
        .list(pods, None)
        .iter()
        .filter(|p| {
            controller_of(&p.obj).is_some_and(|(k, uid)| match k.as_str() {
                "ReplicaSet" => !live_rs.contains(&uid),
                "Deployment" => !live.contains(&uid),
                _ => false,
            })
        })
        .map(|p| key(&p.obj))
        .collect();
    for (ns, name) in orphans {
        let _ = store.delete(pods, &ns, &name, None, None, false);
    }
}

/// Each Deployment's current ReplicaSet gets `spec.replicas`, older ones 0; a template
/// without a ReplicaSet gets a new one.
pub fn sync_deployments(store: &mut Store, deploy: &ResourceInfo, rs: &ResourceInfo) {
    // (namespace, name) of ReplicaSets to set to a replica count, and new ones to create.
    let mut resize: Vec<(String, String, u64)> = Vec::new();
    let mut create: Vec<(String, Value)> = Vec::new();
    let hashes = deployment_hashes(store, deploy);
    {
        let sets = owned_by(store, rs, "Deployment");
        for d in store.list(deploy, None) {
            let d = &d.obj;
            let hash = hashes
                .get(s(d, "/metadata/uid"))
                .cloned()
                .unwrap_or_default();
            let desired = replicas(d);
            let owned = sets
                .get(s(d, "/metadata/uid"))
                .map(Vec::as_slice)
                .unwrap_or_default();
            let mut current = false;
            let mut revision = 0u64;
            for set in owned {
                let o = &set.obj;
                revision = revision.max(
                    s(
                        o,
                        &format!("/metadata/annotations/{}", REVISION.replace('/', "~1")),
                    )
                    .parse()
                    .unwrap_or(0),
                );
                let is_current = s(o, &format!("/metadata/labels/{TEMPLATE_HASH_LABEL}")) == hash;
                current |= is_current;
                let want = if is_current { desired } else { 0 };
                if replicas(o) != want {
                    let (ns, name) = key(o);
                    resize.push((ns, name, want));
                }
            }
            if !current {
                let template = d.pointer("/spec/template").cloned().unwrap_or(json!({}));
                create.push((
                    s(d, "/metadata/namespace").to_string(),
                    replica_set_for(d, &template, &hash, desired, revision + 1),
                ));
            }
        }
    }
    for (ns, name, want) in resize {
        let Ok(mut o) = store.get(rs, &ns, &name) else {
            continue;
        };
        if let Some(spec) = o.get_mut("spec").and_then(Value::as_object_mut) {
            spec.insert("replicas".into(), json!(want));
        }
        let _ = store.replace(rs, &ns, &name, o, Part::Main, WriteOpts::default());
    }
    for (ns, obj) in create {
        let _ = store.create(rs, &ns, obj, internal());
    }
}

fn replica_set_for(d: &Value, template: &Value, hash: &str, desired: u64, revision: u64) -> Value {
    let name = format!("{}-{hash}", s(d, "/metadata/name"));
    let template = with_label(template.clone(), "/metadata/labels", hash);
    let selector = with_label(
        d.pointer("/spec/selector").cloned().unwrap_or(json!({})),
        "/matchLabels",
        hash,
    );
    let labels = template
        .pointer("/metadata/labels")
        .cloned()
        .unwrap_or(json!({}));
    json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {REVISION: revision.to_string()},
            "ownerReferences": owner_ref("Deployment", d),
        },
        "spec": {"replicas": desired, "selector": selector, "template": template},
    })
}

/// Each ReplicaSet gets `spec.replicas` live Pods: new ones from its template; surplus
/// ones deleted unscheduled first, then not yet running, then the newest.
pub fn sync_replica_sets(store: &mut Store, rs: &ResourceInfo, pods: &ResourceInfo) {
    // (namespace, name, uid, desired replicas).
    let sets: Vec<(String, String, String, usize)> = store
        .list(rs, None)
        .iter()
        .map(|o| {
            let (ns, name) = key(&o.obj);
            let uid = s(&o.obj, "/metadata/uid").to_string();
            (ns, name, uid, replicas(&o.obj) as usize)
        })
        .collect();
    // (unscheduled, not running, created, name) of each ReplicaSet's live pods.
    let mut owned: HashMap<String, Vec<(bool, bool, u64, String)>> =
        owned_by(store, pods, "ReplicaSet")
            .into_iter()
            .map(|(uid, ps)| {
                let live = ps
                    .iter()
                    .filter(|p| !terminal(&p.obj))
                    .map(|p| {
                        (
                            s(&p.obj, "/spec/nodeName").is_empty(),
                            s(&p.obj, "/status/phase") == "Pending",
                            p.created,
                            s(&p.obj, "/metadata/name").to_string(),
                        )
                    })
                    .collect();
                (uid, live)
            })
            .collect();
    for (ns, name, uid, desired) in sets {
        let mut live = owned.remove(&uid).unwrap_or_default();
        if live.len() > desired {
            live.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)).then(b.2.cmp(&a.2)));
            for (_, _, _, pod) in live.iter().take(live.len() - desired) {
                let _ = store.delete(pods, &ns, pod, None, None, false);
            }
        }
        for _ in live.len()..desired {
            let Some(set) = store.stored(rs, &ns, &name).map(|o| o.obj.clone()) else {
                break;
            };
            let pod = pod_from_template(&set, store.random_suffix());
            let _ = store.create(pods, &ns, pod, internal());
        }
    }
}

fn pod_from_template(set: &Value, suffix: String) -> Value {
    let name = s(set, "/metadata/name");
    let tmpl = set.pointer("/spec/template").cloned().unwrap_or(json!({}));
    let mut meta = tmpl
        .get("metadata")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    meta.insert("name".into(), json!(format!("{name}-{suffix}")));
    meta.insert("generateName".into(), json!(format!("{name}-")));
    meta.insert("ownerReferences".into(), owner_ref("ReplicaSet", set));
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": tmpl.get("spec").cloned().unwrap_or(json!({"containers": []})),
        "status": {"phase": "Pending"},
    })
}

/// (live, ready) Pods of each ReplicaSet, by uid.
fn pod_counts(store: &Store, pods: &ResourceInfo) -> HashMap<String, (u64, u64)> {
    owned_by(store, pods, "ReplicaSet")
        .into_iter()
        .map(|(uid, ps)| {
            let live: Vec<&&Stored> = ps.iter().filter(|p| !terminal(&p.obj)).collect();
            let ready = live.iter().filter(|p| is_ready(&p.obj)).count() as u64;
            (uid, (live.len() as u64, ready))
        })
        .collect()
}

/// Write ReplicaSet and Deployment status from their Pods.
pub fn update_status(
    store: &mut Store,
    deploy: &ResourceInfo,
    rs: &ResourceInfo,
    pods: &ResourceInfo,
) {
    let counts = pod_counts(store, pods);
    let mut changed_sets: Vec<Value> = Vec::new();
    for o in store.list(rs, None) {
        let (live, ready) = counts
            .get(s(&o.obj, "/metadata/uid"))
            .copied()
            .unwrap_or((0, 0));
        let mut st = Map::new();
        st.insert("replicas".into(), json!(live));
        for (k, v) in [
            ("fullyLabeledReplicas", live),
            ("readyReplicas", ready),
            ("availableReplicas", ready),
        ] {
            if v > 0 {
                st.insert(k.into(), json!(v));
            }
        }
        st.insert(
            "observedGeneration".into(),
            o.obj
                .pointer("/metadata/generation")
                .cloned()
                .unwrap_or(json!(1)),
        );
        let st = Value::Object(st);
        if o.obj.get("status") != Some(&st) {
            let mut obj = o.obj.clone();
            if let Some(m) = obj.as_object_mut() {
                m.insert("status".into(), st);
            }
            changed_sets.push(obj);
        }
    }
    for o in changed_sets {
        let (ns, name) = key(&o);
        let _ = store.replace(rs, &ns, &name, o, Part::Status, WriteOpts::default());
    }
    let hashes = deployment_hashes(store, deploy);
    let sets = owned_by(store, rs, "Deployment");
    let mut changed: Vec<Value> = Vec::new();
    for d in store.list(deploy, None) {
        let d = &d.obj;
        let hash = hashes
            .get(s(d, "/metadata/uid"))
            .map(String::as_str)
            .unwrap_or_default();
        let desired = replicas(d);
        let (mut total, mut ready, mut updated) = (0, 0, 0);
        let mut current_name = None;
        for set in sets
            .get(s(d, "/metadata/uid"))
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let (l, r) = counts
                .get(s(&set.obj, "/metadata/uid"))
                .copied()
                .unwrap_or((0, 0));
            total += l;
            ready += r;
            if s(&set.obj, &format!("/metadata/labels/{TEMPLATE_HASH_LABEL}")) == hash {
                updated += l;
                current_name = Some(s(&set.obj, "/metadata/name").to_string());
            }
        }
        let new_status =
            deployment_status(d, desired, (total, ready, updated), current_name.as_deref());
        if d.get("status") == Some(&new_status) {
            continue;
        }
        let mut d = d.clone();
        if let Some(o) = d.as_object_mut() {
            o.insert("status".into(), new_status);
        }
        changed.push(d);
    }
    for d in changed {
        let (ns, name) = key(&d);
        let _ = store.replace(deploy, &ns, &name, d, Part::Status, WriteOpts::default());
    }
}

fn deployment_status(
    d: &Value,
    desired: u64,
    (total, ready, updated): (u64, u64, u64),
    current: Option<&str>,
) -> Value {
    let mut st = Map::new();
    st.insert(
        "observedGeneration".into(),
        d.pointer("/metadata/generation")
            .cloned()
            .unwrap_or(json!(1)),
    );
    for (k, v) in [
        ("replicas", total),
        ("updatedReplicas", updated),
        ("readyReplicas", ready),
        ("availableReplicas", ready),
        ("unavailableReplicas", desired.saturating_sub(ready)),
    ] {
        if v > 0 {
            st.insert(k.into(), json!(v));
        }
    }
    let available = ready >= desired;
    // A rollout is complete once no Pod of an older template is left; like the upstream
    // controller, a scaling event does not change the condition.
    let complete = total == updated;
    let old_conds = d.pointer("/status/conditions").cloned();
    let since = |t: &str, status: &str| {
        old_conds
            .as_ref()
            .and_then(Value::as_array)
            .and_then(|a| {
                a.iter()
                    .find(|c| s(c, "/type") == t && s(c, "/status") == status)
            })
            .and_then(|c| c.get("lastTransitionTime").cloned())
            .unwrap_or_else(|| json!(now_rfc3339()))
    };
    let avail_status = if available { "True" } else { "False" };
    let rs = current.unwrap_or_default();
    let (reason, message) = if complete {
        (
            "NewReplicaSetAvailable",
            format!("ReplicaSet {rs:?} has successfully progressed."),
        )
    } else {
        (
            "ReplicaSetUpdated",
            format!("ReplicaSet {rs:?} is progressing."),
        )
    };
    st.insert(
        "conditions".into(),
        json!([
            {"type": "Available", "status": avail_status,
             "reason": if available { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" },
             "message": if available { "Deployment has minimum availability." } else { "Deployment does not have minimum availability." },
             "lastTransitionTime": since("Available", avail_status)},
            {"type": "Progressing", "status": "True", "reason": reason, "message": message,
             "lastTransitionTime": since("Progressing", "True")},
        ]),
    );
    Value::Object(st)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_hash_is_stable_and_follows_the_template() {
        let a =
            json!({"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c"}]}});
        let b =
            json!({"metadata": {"labels": {"app": "y"}}, "spec": {"containers": [{"name": "c"}]}});
        assert_eq!(template_hash(&a), template_hash(&a.clone()));
        assert_ne!(template_hash(&a), template_hash(&b));
        assert!(template_hash(&a)
            .chars()
            .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
    }

    #[test]
    fn replica_set_carries_the_hash_label_selector_and_owner() {
        let d = json!({"metadata": {"name": "web", "uid": "u1"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {}}}});
        let t = d["spec"]["template"].clone();
        let rs = replica_set_for(&d, &t, "abc", 2, 1);
        assert_eq!(rs["metadata"]["name"], "web-abc");
        assert_eq!(
            rs["spec"]["selector"]["matchLabels"],
            json!({"app": "web", "pod-template-hash": "abc"})
        );
        assert_eq!(
            rs["spec"]["template"]["metadata"]["labels"]["pod-template-hash"],
            "abc"
        );
        assert_eq!(controller_of(&rs), Some(("Deployment".into(), "u1".into())));
        let pod = pod_from_template(
            &json!({"metadata": {"name": "web-abc", "uid": "u2"}, "spec": rs["spec"]}),
            "xyz12".into(),
        );
        assert_eq!(pod["metadata"]["name"], "web-abc-xyz12");
        assert_eq!(
            controller_of(&pod),
            Some(("ReplicaSet".into(), "u2".into()))
        );
    }

    #[test]
    fn rollout_conditions() {
        let d = json!({"metadata": {"name": "web", "generation": 2}, "spec": {"replicas": 2}});
        let st = deployment_status(&d, 2, (3, 2, 1), Some("web-new"));
        assert_eq!(st["updatedReplicas"], 1);
        assert_eq!(st["conditions"][1]["reason"], "ReplicaSetUpdated");
        let st = deployment_status(&d, 2, (2, 2, 2), Some("web-new"));
        assert_eq!(st["conditions"][0]["status"], "True");
        assert_eq!(st["conditions"][1]["reason"], "NewReplicaSetAvailable");
        assert_eq!(st["observedGeneration"], 2);
        assert!(st.get("unavailableReplicas").is_none());
    }
}
