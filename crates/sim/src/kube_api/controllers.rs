//! The emulator's own controllers: the deployment and replica set controllers (Deployment
//! -> ReplicaSets -> Pods, see `workloads.rs`), a scheduler (binds Pods to Nodes with enough
//! free GPUs and matching node selector) and a "kubelet" (bound Pods become Running and
//! Ready after the start-up delay), plus garbage collection of ReplicaSets and Pods whose
//! owner is gone.

use super::store::{now_rfc3339, Part, ResourceInfo, Store, WriteOpts};
use super::workloads;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

/// Parse a whole-number quantity (`"2"`, `2`, `"2k"` is not a GPU count: 0).
fn quantity(v: &Value) -> u64 {
    match v {
        Value::Number(n) => n.as_u64().unwrap_or(0),
        Value::String(s) => s.trim().parse().unwrap_or(0),
        _ => 0,
    }
}

/// Accelerator resources (names ending in `/gpu`, e.g. `nvidia.com/gpu`) a Pod asks for:
/// the sum over containers of limits (or requests when there is no limit).
pub fn pod_gpu_requests(pod: &Value) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let containers = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for c in &containers {
        let limits = c.pointer("/resources/limits").and_then(Value::as_object);
        let requests = c.pointer("/resources/requests").and_then(Value::as_object);
        let mut names: Vec<&String> = limits.map(|l| l.keys().collect()).unwrap_or_default();
        names.extend(
            requests
                .map(|r| r.keys().collect::<Vec<_>>())
                .unwrap_or_default(),
        );
        names.sort();
        names.dedup();
        for r in names.into_iter().filter(|r| r.ends_with("/gpu")) {
            let q = limits
                .and_then(|l| l.get(r))
                .or_else(|| requests.and_then(|q| q.get(r)))
                .map(quantity)
                .unwrap_or(0);
            *out.entry(r.clone()).or_insert(0) += q;
        }
    }
    out.retain(|_, q| *q > 0);
    out
}

fn terminal(pod: &Value) -> bool {
    matches!(s(pod, "/status/phase"), "Succeeded" | "Failed")
}

fn set_condition(obj: &mut Value, cond: Value) {
    let Some(o) = obj.as_object_mut() else { return };
    let status = o.entry("status").or_insert_with(|| json!({}));
    let Some(st) = status.as_object_mut() else {
        return;
    };
    let conds = st.entry("conditions").or_insert_with(|| json!([]));
    if !conds.is_array() {
        *conds = json!([]);
    }
    if let Some(a) = conds.as_array_mut() {
        let t = s(&cond, "/type").to_string();
        a.retain(|c| s(c, "/type") != t);
        a.push(cond);
    }
}

/// The resources the controllers work on: deployments, replicasets, pods, nodes.
struct Infos {
    deploy: ResourceInfo,
    rs: ResourceInfo,
    pods: ResourceInfo,
    nodes: ResourceInfo,
}

fn infos(store: &Store) -> Option<Infos> {
    Some(Infos {
        deploy: store.info("apps", "v1", "deployments")?,
        rs: store.info("apps", "v1", "replicasets")?,
        pods: store.info("", "v1", "pods")?,
        nodes: store.info("", "v1", "nodes")?,
    })
}

fn key(obj: &Value) -> (String, String) {
    (
        s(obj, "/metadata/namespace").to_string(),
        s(obj, "/metadata/name").to_string(),
    )
}

/// Run every controller once. Returns true when something was written.
pub fn tick(store: &mut Store, startup_delay: Duration) -> bool {
    let Some(i) = infos(store) else {
        return false;
    };
    let before = store.rv();
    workloads::garbage_collect(store, &i.deploy, &i.rs, &i.pods);
    workloads::sync_deployments(store, &i.deploy, &i.rs);
    workloads::sync_replica_sets(store, &i.rs, &i.pods);
    schedule(store, &i.pods, &i.nodes);
    run_kubelet(store, &i.pods, startup_delay);
    workloads::update_status(store, &i.deploy, &i.rs, &i.pods);
    store.rv() != before
}

struct NodeView {
    name: String,
    labels: Map<String, Value>,
    allocatable: BTreeMap<String, u64>,
    used: BTreeMap<String, u64>,
    unschedulable: bool,
}

fn schedule(store: &mut Store, pods: &ResourceInfo, nodes: &ResourceInfo) {
    let mut views: Vec<NodeView> = store
        .list(nodes, None)
        .iter()
        .map(|n| {
            let alloc = n
                .obj
                .pointer("/status/allocatable")
                .or_else(|| n.obj.pointer("/status/capacity"))
                .and_then(Value::as_object)
                .map(|m| m.iter().map(|(k, v)| (k.clone(), quantity(v))).collect())
                .unwrap_or_default();
            NodeView {
                name: s(&n.obj, "/metadata/name").to_string(),
                labels: n
                    .obj
                    .pointer("/metadata/labels")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default(),
                allocatable: alloc,
                used: BTreeMap::new(),
                unschedulable: n
                    .obj
                    .pointer("/spec/unschedulable")
                    .and_then(Value::as_bool)
                    == Some(true),
            }
        })
        .collect();
    let mut pending: Vec<(u64, Value)> = Vec::new();
    for p in store.list(pods, None) {
        let node = s(&p.obj, "/spec/nodeName");
        if node.is_empty() {
            if !terminal(&p.obj) {
                pending.push((p.created, p.obj.clone()));
            }
        } else if !terminal(&p.obj) {
            if let Some(v) = views.iter_mut().find(|v| v.name == node) {
                for (r, q) in pod_gpu_requests(&p.obj) {
                    *v.used.entry(r).or_insert(0) += q;
                }
            }
        }
    }
    pending.sort_by_key(|(c, _)| *c);
    let total = views.len();
    for (_, mut pod) in pending {
        let req = pod_gpu_requests(&pod);
        let selector = pod
            .pointer("/spec/nodeSelector")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mut mismatched = 0usize;
        let mut short: BTreeMap<String, usize> = BTreeMap::new();
        let mut chosen = None;
        for (i, v) in views.iter().enumerate() {
            if v.unschedulable
                || !selector
                    .iter()
                    .all(|(k, want)| v.labels.get(k) == Some(want))
            {
                mismatched += 1;
                continue;
            }
            let lacking: Vec<&String> = req
                .iter()
                .filter(|(r, q)| {
                    let free = v
                        .allocatable
                        .get(*r)
                        .copied()
                        .unwrap_or(0)
                        .saturating_sub(v.used.get(*r).copied().unwrap_or(0));
                    free < **q
                })
                .map(|(r, _)| r)
                .collect();
            if lacking.is_empty() {
                chosen = Some(i);
                break;
            }
            for r in lacking {
                *short.entry(r.clone()).or_insert(0) += 1;
            }
        }
        let (ns, name) = key(&pod);
        let uid = s(&pod, "/metadata/uid").to_string();
        let now = now_rfc3339();
        match chosen {
            Some(i) => {
                let v = &mut views[i];
                for (r, q) in &req {
                    *v.used.entry(r.clone()).or_insert(0) += q;
                }
                if let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) {
                    spec.insert("nodeName".into(), json!(v.name));
                } else if let Some(o) = pod.as_object_mut() {
                    o.insert("spec".into(), json!({"nodeName": v.name}));
                }
                set_condition(
                    &mut pod,
                    json!({"type": "PodScheduled", "status": "True", "lastTransitionTime": now}),
                );
                store.bound_at.insert(uid, Instant::now());
                let _ = store.replace(pods, &ns, &name, pod, Part::All, WriteOpts::default());
            }
            None => {
                let mut parts: Vec<String> =
                    short.keys().map(|r| format!("insufficient {r}")).collect();
                if mismatched > 0 {
                    parts.push(format!(
                        "{mismatched} node(s) didn't match Pod's node affinity/selector"
                    ));
                }
                let message = format!("0/{total} nodes are available: {}", parts.join(", "));
                let existing = pod
                    .pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .and_then(|cs| cs.iter().find(|c| s(c, "/type") == "PodScheduled"))
                    .cloned();
                if existing.as_ref().map(|c| s(c, "/message")) == Some(message.as_str())
                    && existing.as_ref().map(|c| s(c, "/status")) == Some("False")
                {
                    continue;
                }
                set_condition(
                    &mut pod,
                    json!({"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                        "message": message, "lastTransitionTime": now}),
                );
                let _ = store.replace(pods, &ns, &name, pod, Part::All, WriteOpts::default());
            }
        }
    }
}

fn run_kubelet(store: &mut Store, pods: &ResourceInfo, delay: Duration) {
    let now = Instant::now();
    let bound: Vec<Value> = store
        .list(pods, None)
        .iter()
        .filter(|p| {
            !s(&p.obj, "/spec/nodeName").is_empty() && s(&p.obj, "/status/phase") == "Pending"
        })
        .map(|p| p.obj.clone())
        .collect();
    for mut pod in bound {
        let uid = s(&pod, "/metadata/uid").to_string();
        let since = *store.bound_at.entry(uid).or_insert(now);
        if now.duration_since(since) < delay {
            continue;
        }
        let t = now_rfc3339();
        let containers: Vec<Value> = pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .map(|c| {
                        json!({"name": s(c, "/name"), "image": s(c, "/image"), "imageID": "",
                            "ready": true, "started": true, "restartCount": 0,
                            "state": {"running": {"startedAt": t}}})
                    })
                    .collect()
            })
            .unwrap_or_default();
        let seq = store.rv() % 65_000;
        if let Some(st) = pod.get_mut("status").and_then(Value::as_object_mut) {
            st.insert("phase".into(), json!("Running"));
            st.insert("startTime".into(), json!(t));
            st.insert("containerStatuses".into(), json!(containers));
            st.insert(
                "podIP".into(),
                json!(format!("10.244.{}.{}", seq / 250, seq % 250 + 2)),
            );
        }
        for c in ["Initialized", "ContainersReady", "Ready"] {
            set_condition(
                &mut pod,
                json!({"type": c, "status": "True", "lastTransitionTime": t}),
            );
        }
        let (ns, name) = key(&pod);
        let _ = store.replace(pods, &ns, &name, pod, Part::All, WriteOpts::default());
    }
    let live: std::collections::HashSet<String> = store
        .list(pods, None)
        .iter()
        .map(|p| s(&p.obj, "/metadata/uid").to_string())
        .collect();
    store.bound_at.retain(|uid, _| live.contains(uid));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_requests_sum_limits() {
        let pod = json!({"spec": {"containers": [
            {"name": "a", "resources": {"limits": {"nvidia.com/gpu": "2", "cpu": "4"}}},
            {"name": "b", "resources": {"requests": {"nvidia.com/gpu": 1}}}]}});
        assert_eq!(
            pod_gpu_requests(&pod),
            BTreeMap::from([("nvidia.com/gpu".to_string(), 3)])
        );
    }
}
