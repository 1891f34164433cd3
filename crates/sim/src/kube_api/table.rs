//! `Table` answers (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`), what `kubectl
//! get` asks for and prints: the columns of the apiserver's printers for the built-in kinds
//! the emulator serves (`-o wide` shows those with `priority` 1), the CRD's
//! `additionalPrinterColumns` for custom resources (JSONPath evaluated per row; an `Age`
//! column when the CRD declares none), and `Name` + `Created At` for any other kind.

use super::error::ApiError;
use super::openapi::crd_version;
use super::store::{ResourceInfo, Store};
use axum::http::{header, HeaderMap};
use jsonpath_rust::JsonPath;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// Whether the request accepts a `meta.k8s.io` Table (v1 or v1beta1).
pub(crate) fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|media| {
            let params: Vec<&str> = media.split(';').map(str::trim).skip(1).collect();
            params.contains(&"as=Table")
                && params.contains(&"g=meta.k8s.io")
                && (params.contains(&"v=v1") || params.contains(&"v=v1beta1"))
        })
}

/// What a row's `object` holds (`includeObject`): nothing, the object's metadata as a
/// `PartialObjectMetadata` (the default), or the whole object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Include {
    None,
    Metadata,
    Object,
}

/// How one column's cell is computed.
enum Cell {
    /// A built-in printer's function of the object and the current time (Unix seconds).
    Func(fn(&Value, i64) -> Value),
    /// A CRD column: a JSONPath (Kubernetes syntax, without `$`) and its `type`.
    Path(String, String),
}

/// One column: its definition (as served) and its cell.
struct Column {
    def: Value,
    cell: Cell,
}

fn col(
    name: &str,
    ty: &str,
    priority: u8,
    description: &str,
    f: fn(&Value, i64) -> Value,
) -> Column {
    let format = if name == "Name" { "name" } else { "" };
    Column {
        def: json!({"name": name, "type": ty, "format": format, "description": description, "priority": priority}),
        cell: Cell::Func(f),
    }
}

fn name_col() -> Column {
    col(
        "Name",
        "string",
        0,
        "Name must be unique within a namespace. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
        |o, _| json!(s(o, "/metadata/name")),
    )
}

fn age_col() -> Column {
    col(
        "Age",
        "string",
        0,
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
        |o, now| json!(since(s(o, "/metadata/creationTimestamp"), now)),
    )
}

/// A `/`-pointer's string, `""` when absent.
fn s<'a>(o: &'a Value, p: &str) -> &'a str {
    o.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

/// A `/`-pointer's string, `<none>` when absent or empty.
fn or_none(o: &Value, p: &str) -> Value {
    match s(o, p) {
        "" => json!("<none>"),
        v => json!(v),
    }
}

fn int(o: &Value, p: &str) -> i64 {
    o.pointer(p).and_then(Value::as_i64).unwrap_or(0)
}

fn arr<'a>(o: &'a Value, p: &str) -> &'a [Value] {
    o.pointer(p)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// `k=v,k2=v2` of a string map (sorted), `<none>` when empty.
fn labels_text(o: &Value, p: &str) -> String {
    let mut kv: Vec<String> = o
        .pointer(p)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    kv.sort();
    if kv.is_empty() {
        "<none>".into()
    } else {
        kv.join(",")
    }
}

/// A label selector as `kubectl` prints it: matchLabels `k=v`, matchExpressions
/// `k in (a,b)`, `k notin (...)`, `k`, `!k`.
fn selector_text(o: &Value, p: &str) -> String {
    let Some(sel) = o.pointer(p) else {
        return "<none>".into();
    };
    let mut parts = Vec::new();
    if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in m {
            parts.push(format!("{k}={}", v.as_str().unwrap_or_default()));
        }
    }
    for e in arr(sel, "/matchExpressions") {
        let key = s(e, "/key");
        let vals: Vec<&str> = arr(e, "/values").iter().filter_map(Value::as_str).collect();
        parts.push(match s(e, "/operator") {
            "In" => format!("{key} in ({})", vals.join(",")),
            "NotIn" => format!("{key} notin ({})", vals.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            op => format!("{key} {op} ({})", vals.join(",")),
        });
    }
    if parts.is_empty() {
        "<none>".into()
    } else {
        parts.join(",")
    }
}

/// The apiserver's human-readable age of an RFC 3339 timestamp at `now` (Unix seconds):
/// `42s`, `3m5s`, `15m`, `2h30m`, `20h`, `3d4h`, `40d`, `2y10d`; `<unknown>` without one.
pub(crate) fn since(ts: &str, now: i64) -> String {
    match ts.parse::<jiff::Timestamp>() {
        Ok(t) => human_duration(now - t.as_second()),
        Err(_) => "<unknown>".into(),
    }
}

/// `duration.HumanDuration` of Kubernetes' apimachinery, for whole seconds.
pub(crate) fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    if secs < 0 {
        return "0s".into();
    }
    if secs < 120 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        return two_units(minutes, "m", secs % 60, "s");
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = secs / 3600;
    if hours < 8 {
        return two_units(hours, "h", minutes % 60, "m");
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        return two_units(hours / 24, "d", hours % 24, "h");
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        return two_units(hours / 24 / 365, "y", (hours / 24) % 365, "d");
    }
    format!("{}y", hours / 24 / 365)
}

/// `3m5s`, or `3m` when the smaller unit is 0 (as the apiserver's `HumanDuration`).
fn two_units(big: i64, big_unit: &str, small: i64, small_unit: &str) -> String {
    if small == 0 {
        format!("{big}{big_unit}")
    } else {
        format!("{big}{big_unit}{small}{small_unit}")
    }
}

fn pod_status(o: &Value) -> String {
    if o.pointer("/metadata/deletionTimestamp").is_some() {
        return "Terminating".into();
    }
    let mut reason = s(o, "/status/phase").to_string();
    if !s(o, "/status/reason").is_empty() {
        reason = s(o, "/status/reason").to_string();
    }
    for c in arr(o, "/status/containerStatuses") {
        let waiting = s(c, "/state/waiting/reason");
        let terminated = s(c, "/state/terminated/reason");
        if !waiting.is_empty() {
            reason = waiting.to_string();
        } else if !terminated.is_empty() {
            reason = terminated.to_string();
        }
    }
    reason
}

fn pod_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Ready", "string", 0, "The aggregate readiness state of this pod for accepting traffic.", |o, _| {
            let ready = arr(o, "/status/containerStatuses")
                .iter()
                .filter(|c| c.get("ready").and_then(Value::as_bool) == Some(true))
                .count();
            json!(format!("{ready}/{}", arr(o, "/spec/containers").len()))
        }),
        col("Status", "string", 0, "The aggregate status of the containers in this pod.", |o, _| {
            json!(pod_status(o))
        }),
        col("Restarts", "string", 0, "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.", |o, _| {
            let n: i64 = arr(o, "/status/containerStatuses")
                .iter()
                .map(|c| int(c, "/restartCount"))
                .sum();
            json!(n.to_string())
        }),
        age_col(),
        col("IP", "string", 1, "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.", |o, _| or_none(o, "/status/podIP")),
        col("Node", "string", 1, "NodeName is a request to schedule this pod onto a specific node.", |o, _| or_none(o, "/spec/nodeName")),
        col("Nominated Node", "string", 1, "nominatedNodeName is set when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods.", |o, _| or_none(o, "/status/nominatedNodeName")),
        col("Readiness Gates", "string", 1, "If specified, all readiness gates will be evaluated for pod readiness.", |o, _| {
            let gates = arr(o, "/spec/readinessGates");
            if gates.is_empty() {
                return json!("<none>");
            }
            let conds = arr(o, "/status/conditions");
            let ready = gates
                .iter()
                .filter(|g| {
                    conds.iter().any(|c| {
                        s(c, "/type") == s(g, "/conditionType") && s(c, "/status") == "True"
                    })
                })
                .count();
            json!(format!("{ready}/{}", gates.len()))
        }),
    ]
}

fn containers_text(o: &Value, field: &str) -> Value {
    let v: Vec<&str> = arr(o, "/spec/template/spec/containers")
        .iter()
        .map(|c| s(c, field))
        .collect();
    json!(v.join(","))
}

fn workload_wide() -> Vec<Column> {
    vec![
        col("Containers", "string", 1, "Names of each container in the template.", |o, _| containers_text(o, "/name")),
        col("Images", "string", 1, "Images referenced by each container in the template.", |o, _| containers_text(o, "/image")),
        col("Selector", "string", 1, "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.", |o, _| json!(selector_text(o, "/spec/selector"))),
    ]
}

fn deployment_columns() -> Vec<Column> {
    let mut c = vec![
        name_col(),
        col("Ready", "string", 0, "Number of the pod with ready state", |o, _| {
            json!(format!("{}/{}", int(o, "/status/readyReplicas"), int(o, "/spec/replicas")))
        }),
        col("Up-to-date", "integer", 0, "Total number of non-terminated pods targeted by this deployment that have the desired template spec.", |o, _| json!(int(o, "/status/updatedReplicas"))),
        col("Available", "integer", 0, "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.", |o, _| json!(int(o, "/status/availableReplicas"))),
        age_col(),
    ];
    c.extend(workload_wide());
    c
}

fn replicaset_columns() -> Vec<Column> {
    let mut c = vec![
        name_col(),
        col(
            "Desired",
            "integer",
            0,
            "Replicas is the number of desired replicas.",
            |o, _| json!(int(o, "/spec/replicas")),
        ),
        col(
            "Current",
            "integer",
            0,
            "Replicas is the most recently observed number of replicas.",
            |o, _| json!(int(o, "/status/replicas")),
        ),
        col(
            "Ready",
            "integer",
            0,
            "The number of ready replicas for this replica set.",
            |o, _| json!(int(o, "/status/readyReplicas")),
        ),
        age_col(),
    ];
    c.extend(workload_wide());
    c
}

fn node_address(o: &Value, kind: &str) -> Value {
    arr(o, "/status/addresses")
        .iter()
        .find(|a| s(a, "/type") == kind)
        .map_or(json!("<none>"), |a| json!(s(a, "/address")))
}

fn or_unknown(o: &Value, p: &str) -> Value {
    match s(o, p) {
        "" => json!("<unknown>"),
        v => json!(v),
    }
}

fn node_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Status", "string", 0, "The status of the node", |o, _| {
            let ready = arr(o, "/status/conditions")
                .iter()
                .find(|c| s(c, "/type") == "Ready")
                .map(|c| s(c, "/status"));
            let mut st = match ready {
                Some("True") => "Ready".to_string(),
                Some("False") => "NotReady".to_string(),
                _ => "Unknown".to_string(),
            };
            if o.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
                st.push_str(",SchedulingDisabled");
            }
            json!(st)
        }),
        col("Roles", "string", 0, "The roles of the node", |o, _| {
            let mut roles: Vec<String> = o
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| {
                            k.strip_prefix("node-role.kubernetes.io/")
                                .filter(|r| !r.is_empty())
                                .map(String::from)
                                .or_else(|| {
                                    (k == "kubernetes.io/role")
                                        .then(|| v.as_str().unwrap_or_default().to_string())
                                })
                        })
                        .collect()
                })
                .unwrap_or_default();
            roles.sort();
            json!(if roles.is_empty() { "<none>".into() } else { roles.join(",") })
        }),
        age_col(),
        col("Version", "string", 0, "Kubelet Version reported by the node.", |o, _| json!(s(o, "/status/nodeInfo/kubeletVersion"))),
        col("Internal-IP", "string", 1, "List of addresses reachable to the node. Queried from cloud provider, if available.", |o, _| node_address(o, "InternalIP")),
        col("External-IP", "string", 1, "List of addresses reachable to the node. Queried from cloud provider, if available.", |o, _| node_address(o, "ExternalIP")),
        col("OS-Image", "string", 1, "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).", |o, _| or_unknown(o, "/status/nodeInfo/osImage")),
        col("Kernel-Version", "string", 1, "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).", |o, _| or_unknown(o, "/status/nodeInfo/kernelVersion")),
        col("Container-Runtime", "string", 1, "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).", |o, _| or_unknown(o, "/status/nodeInfo/containerRuntimeVersion")),
    ]
}

fn event_time(o: &Value, now: i64) -> Value {
    let t = [
        "/series/lastObservedTime",
        "/lastTimestamp",
        "/deprecatedLastTimestamp",
        "/eventTime",
        "/firstTimestamp",
    ]
    .iter()
    .map(|p| s(o, p))
    .find(|t| !t.is_empty())
    .unwrap_or_default();
    json!(since(t, now))
}

/// core/v1 and events.k8s.io/v1 Events: the apiserver prints both with the same columns.
fn event_columns() -> Vec<Column> {
    fn regarding(o: &Value) -> &Value {
        o.get("involvedObject")
            .or_else(|| o.get("regarding"))
            .unwrap_or(&Value::Null)
    }
    vec![
        col("Last Seen", "string", 0, "The time at which the most recent occurrence of this event was recorded.", event_time),
        col("Type", "string", 0, "Type of this event (Normal, Warning), new types could be added in the future.", |o, _| json!(s(o, "/type"))),
        col("Reason", "string", 0, "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.", |o, _| json!(s(o, "/reason"))),
        col("Object", "string", 0, "The object that this event is about.", |o, _| {
            let r = regarding(o);
            json!(format!("{}/{}", s(r, "/kind").to_lowercase(), s(r, "/name")))
        }),
        col("Subobject", "string", 1, "The subobject this event is about (fieldPath).", |o, _| json!(s(regarding(o), "/fieldPath"))),
        col("Source", "string", 1, "The component reporting this event.", |o, _| {
            let src = [
                "/source/component",
                "/reportingController",
                "/reportingComponent",
                "/deprecatedSource/component",
            ]
            .iter()
            .map(|p| s(o, p))
            .find(|t| !t.is_empty())
            .unwrap_or_default();
            json!(src)
        }),
        col("Message", "string", 0, "A human-readable description of the status of this operation.", |o, _| {
            let m = if o.get("message").is_some() { s(o, "/message") } else { s(o, "/note") };
            json!(m.trim())
        }),
        col("First Seen", "string", 1, "The time at which the event was first recorded.", |o, now| {
            let t = ["/firstTimestamp", "/deprecatedFirstTimestamp", "/eventTime"]
                .iter()
                .map(|p| s(o, p))
                .find(|t| !t.is_empty())
                .unwrap_or_default();
            json!(since(t, now))
        }),
        col("Count", "string", 1, "The number of times this event has occurred.", |o, _| {
            let n = ["/count", "/series/count", "/deprecatedCount"]
                .iter()
                .map(|p| int(o, p))
                .find(|n| *n > 0)
                .unwrap_or(1);
            json!(n.to_string())
        }),
        col("Name", "string", 1, "Name of the event.", |o, _| json!(s(o, "/metadata/name"))),
    ]
}

fn service_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Type", "string", 0, "type determines how the Service is exposed.", |o, _| {
            json!(match s(o, "/spec/type") {
                "" => "ClusterIP",
                t => t,
            })
        }),
        col("Cluster-IP", "string", 0, "clusterIP is the IP address of the service and is usually assigned randomly by the master.", |o, _| or_none(o, "/spec/clusterIP")),
        col("External-IP", "string", 0, "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.", |o, _| {
            let mut ips: Vec<&str> = arr(o, "/status/loadBalancer/ingress")
                .iter()
                .map(|i| if s(i, "/ip").is_empty() { s(i, "/hostname") } else { s(i, "/ip") })
                .collect();
            ips.extend(arr(o, "/spec/externalIPs").iter().filter_map(Value::as_str));
            if ips.is_empty() {
                let lb = s(o, "/spec/type") == "LoadBalancer";
                json!(if lb { "<pending>" } else { "<none>" })
            } else {
                json!(ips.join(","))
            }
        }),
        col("Port(s)", "string", 0, "The list of ports that are exposed by this service.", |o, _| {
            let ports: Vec<String> = arr(o, "/spec/ports")
                .iter()
                .map(|p| {
                    let proto = match s(p, "/protocol") {
                        "" => "TCP",
                        x => x,
                    };
                    match int(p, "/nodePort") {
                        0 => format!("{}/{proto}", int(p, "/port")),
                        n => format!("{}:{n}/{proto}", int(p, "/port")),
                    }
                })
                .collect();
            json!(if ports.is_empty() { "<none>".into() } else { ports.join(",") })
        }),
        age_col(),
        col("Selector", "string", 1, "Route service traffic to pods with label keys and values matching this selector.", |o, _| json!(labels_text(o, "/spec/selector"))),
    ]
}

fn hpa_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Reference", "string", 0, "scaleTargetRef points to the target resource to scale.", |o, _| {
            json!(format!("{}/{}", s(o, "/spec/scaleTargetRef/kind"), s(o, "/spec/scaleTargetRef/name")))
        }),
        col("Targets", "string", 0, "metrics contains the specifications for which to use to calculate the desired replica count.", |o, _| {
            let metrics = arr(o, "/spec/metrics");
            if metrics.is_empty() {
                return json!("<none>");
            }
            let current = arr(o, "/status/currentMetrics");
            let parts: Vec<String> = metrics
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    let ty = s(m, "/type");
                    let key = match ty {
                        "Resource" => "resource",
                        "ContainerResource" => "containerResource",
                        "Pods" => "pods",
                        "Object" => "object",
                        _ => "external",
                    };
                    let target = m.pointer(&format!("/{key}/target")).unwrap_or(&Value::Null);
                    let cur = current.get(i).and_then(|c| c.pointer(&format!("/{key}/current")));
                    if let Some(u) = target.get("averageUtilization") {
                        let c = cur
                            .and_then(|c| c.get("averageUtilization"))
                            .map_or("<unknown>".to_string(), |v| format!("{v}%"));
                        let res = s(m, &format!("/{key}/name"));
                        format!("{res}: {c}/{u}%")
                    } else {
                        let t = target
                            .get("averageValue")
                            .or_else(|| target.get("value"))
                            .map_or("<unknown>".into(), |v| v.as_str().map_or(v.to_string(), String::from));
                        let c = cur
                            .and_then(|c| c.get("averageValue").or_else(|| c.get("value")))
                            .map_or("<unknown>".into(), |v| v.as_str().map_or(v.to_string(), String::from));
                        format!("{c}/{t}")
                    }
                })
                .collect();
            json!(parts.join(", "))
        }),
        col("MinPods", "string", 0, "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down.", |o, _| {
            json!(o.pointer("/spec/minReplicas").and_then(Value::as_i64).unwrap_or(1).to_string())
        }),
        col("MaxPods", "integer", 0, "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up.", |o, _| json!(int(o, "/spec/maxReplicas"))),
        col("Replicas", "integer", 0, "currentReplicas is current number of replicas of pods managed by this autoscaler.", |o, _| json!(int(o, "/status/currentReplicas"))),
        age_col(),
    ]
}

fn created_at_col() -> Column {
    col(
        "Created At",
        "date",
        0,
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
        |o, _| json!(s(o, "/metadata/creationTimestamp")),
    )
}

fn binding_columns() -> Vec<Column> {
    fn subjects(o: &Value, kind: &str) -> Value {
        let v: Vec<String> = arr(o, "/subjects")
            .iter()
            .filter(|x| s(x, "/kind") == kind)
            .map(|x| {
                if kind == "ServiceAccount" {
                    format!("{}/{}", s(x, "/namespace"), s(x, "/name"))
                } else {
                    s(x, "/name").to_string()
                }
            })
            .collect();
        json!(v.join(", "))
    }
    vec![
        name_col(),
        col("Role", "string", 0, "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace.", |o, _| {
            json!(format!("{}/{}", s(o, "/roleRef/kind"), s(o, "/roleRef/name")))
        }),
        age_col(),
        col("Users", "string", 1, "Users in the binding", |o, _| subjects(o, "User")),
        col("Groups", "string", 1, "Groups in the binding", |o, _| subjects(o, "Group")),
        col("ServiceAccounts", "string", 1, "ServiceAccounts in the binding", |o, _| subjects(o, "ServiceAccount")),
    ]
}

fn map_len(o: &Value, p: &str) -> i64 {
    o.pointer(p)
        .and_then(Value::as_object)
        .map_or(0, |m| m.len() as i64)
}

/// The columns of a built-in resource (by group and plural).
fn builtin_columns(info: &ResourceInfo) -> Vec<Column> {
    match (info.group.as_str(), info.plural.as_str()) {
        ("", "pods") => pod_columns(),
        ("apps", "deployments") => deployment_columns(),
        ("apps", "replicasets") => replicaset_columns(),
        ("", "nodes") => node_columns(),
        ("", "events") | ("events.k8s.io", "events") => event_columns(),
        ("", "services") => service_columns(),
        ("", "namespaces") => vec![
            name_col(),
            col("Status", "string", 0, "The status of the namespace", |o, _| json!(s(o, "/status/phase"))),
            age_col(),
        ],
        ("", "configmaps") => vec![
            name_col(),
            col("Data", "integer", 0, "Number of data in the configmap", |o, _| {
                json!(map_len(o, "/data") + map_len(o, "/binaryData"))
            }),
            age_col(),
        ],
        ("", "secrets") => vec![
            name_col(),
            col("Type", "string", 0, "The type of the secret", |o, _| json!(s(o, "/type"))),
            col("Data", "integer", 0, "Number of data in the secret", |o, _| json!(map_len(o, "/data"))),
            age_col(),
        ],
        ("", "serviceaccounts") => vec![
            name_col(),
            col("Secrets", "integer", 0, "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.", |o, _| json!(arr(o, "/secrets").len())),
            age_col(),
        ],
        ("autoscaling", "horizontalpodautoscalers") => hpa_columns(),
        ("coordination.k8s.io", "leases") => vec![
            name_col(),
            col("Holder", "string", 0, "HolderIdentity contains the identity of the holder of a current lease.", |o, _| json!(s(o, "/spec/holderIdentity"))),
            age_col(),
        ],
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => binding_columns(),
        _ => vec![name_col(), created_at_col()],
    }
}

/// The columns of a custom resource: Name, then the CRD's `additionalPrinterColumns` for
/// this version (an `Age` column when it declares none, as the apiserver defaults it).
fn custom_columns(crd: &Value, info: &ResourceInfo) -> Vec<Column> {
    let mut out = vec![name_col()];
    let declared = crd_version(crd, &info.version)
        .and_then(|v| v.get("additionalPrinterColumns"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if declared.is_empty() {
        out.push(age_col());
        return out;
    }
    for c in declared {
        let ty = s(&c, "/type").to_string();
        out.push(Column {
            def: json!({
                "name": s(&c, "/name"),
                "type": ty,
                "format": s(&c, "/format"),
                "description": s(&c, "/description"),
                "priority": int(&c, "/priority"),
            }),
            cell: Cell::Path(s(&c, "/jsonPath").to_string(), ty),
        });
    }
    out
}

/// A CRD column's cell, as the apiserver computes it: the first JSONPath result; `string`
/// columns print it (a string as-is, anything else as JSON), `integer`/`number`/`boolean`
/// keep a value of that type, `date` becomes an age; `null` (printed `<none>`) otherwise.
fn path_cell(obj: &Value, path: &str, ty: &str, now: i64) -> Value {
    let query = format!(
        "${}",
        path.trim().trim_start_matches('{').trim_end_matches('}')
    );
    let Some(first) = obj.query(&query).ok().and_then(|r| r.first().copied()) else {
        return Value::Null;
    };
    match (ty, first) {
        ("string", Value::String(x)) => json!(x),
        ("string", Value::Null) => Value::Null,
        ("string", v) => json!(v.to_string()),
        ("integer", Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .map_or(Value::Null, |i| json!(i)),
        ("number", Value::Number(n)) => json!(n),
        ("boolean", Value::Bool(b)) => json!(b),
        ("date", Value::String(t)) => json!(since(t, now)),
        _ => Value::Null,
    }
}

fn row(columns: &[Column], obj: &Value, include: Include, now: i64) -> Value {
    let cells: Vec<Value> = columns
        .iter()
        .map(|c| match &c.cell {
            Cell::Func(f) => f(obj, now),
            Cell::Path(p, ty) => path_cell(obj, p, ty, now),
        })
        .collect();
    let mut r = Map::new();
    r.insert("cells".into(), json!(cells));
    match include {
        Include::None => {}
        Include::Metadata => {
            r.insert(
                "object".into(),
                json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                       "metadata": obj.get("metadata").cloned().unwrap_or(json!({}))}),
            );
        }
        Include::Object => {
            r.insert("object".into(), obj.clone());
        }
    }
    Value::Object(r)
}

/// The discovery `categories` of a resource (`kubectl get all` lists the `all` category):
/// the apiserver's for built-in kinds, `spec.names.categories` for custom resources.
pub(crate) fn categories(store: &Store, info: &ResourceInfo) -> Vec<String> {
    let crd = store
        .info("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        .and_then(|crds| {
            store
                .get(&crds, "", &format!("{}.{}", info.plural, info.group))
                .ok()
        });
    if let Some(c) = crd {
        return arr(&c, "/spec/names/categories")
            .iter()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect();
    }
    let all = matches!(
        (info.group.as_str(), info.plural.as_str()),
        ("", "pods" | "services" | "replicationcontrollers")
            | (
                "apps",
                "deployments" | "replicasets" | "statefulsets" | "daemonsets"
            )
            | ("autoscaling", "horizontalpodautoscalers")
            | ("batch", "jobs" | "cronjobs")
    );
    if all {
        vec!["all".into()]
    } else {
        Vec::new()
    }
}

/// How one resource's objects become Table rows: its columns and what rows hold
/// (`includeObject`). Built once per request (or watch).
pub(crate) struct Printer {
    columns: Vec<Column>,
    include: Include,
}

impl Printer {
    /// The printer of resource `info` (a custom resource's columns from its stored CRD),
    /// with `includeObject` from `query`; 400 for an unknown `includeObject`.
    pub(crate) fn new(
        store: &Store,
        info: &ResourceInfo,
        query: &HashMap<String, String>,
    ) -> Result<Self, ApiError> {
        let include = match query.get("includeObject").map(String::as_str) {
            None | Some("" | "Metadata") => Include::Metadata,
            Some("None") => Include::None,
            Some("Object") => Include::Object,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "includeObject: Unsupported value: {other:?}: supported values: \"Metadata\", \"None\", \"Object\""
                )))
            }
        };
        let crd = store
            .info("apiextensions.k8s.io", "v1", "customresourcedefinitions")
            .and_then(|crds| {
                store
                    .get(&crds, "", &format!("{}.{}", info.plural, info.group))
                    .ok()
            });
        let columns = match &crd {
            Some(c) => custom_columns(c, info),
            None => builtin_columns(info),
        };
        Ok(Self { columns, include })
    }

    /// The `Table` of a list or object answer `doc`, at `now` (Unix seconds).
    pub(crate) fn table(&self, doc: &Value, now: i64) -> Value {
        let (objects, mut meta): (Vec<&Value>, Map<String, Value>) = match doc.get("items") {
            Some(Value::Array(items)) => (
                items.iter().collect(),
                doc.get("metadata")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default(),
            ),
            _ => (vec![doc], Map::new()),
        };
        if meta.is_empty() {
            if let Some(rv) = doc.pointer("/metadata/resourceVersion") {
                meta.insert("resourceVersion".into(), rv.clone());
            }
        }
        json!({
            "kind": "Table",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": meta,
            "columnDefinitions": self.columns.iter().map(|c| c.def.clone()).collect::<Vec<_>>(),
            "rows": objects.iter().map(|o| row(&self.columns, o, self.include, now)).collect::<Vec<_>>(),
        })
    }
}

/// The current time, Unix seconds (ages in tables).
pub(crate) fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_match_the_apiservers_steps() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (119, "119s"),
            (120, "2m"),
            (185, "3m5s"),
            (600, "10m"),
            (179 * 60, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 60 * 7, "3h7m"),
            (8 * 3600 + 59, "8h"),
            (47 * 3600, "47h"),
            (48 * 3600, "2d"),
            (3 * 86400 + 4 * 3600, "3d4h"),
            (40 * 86400, "40d"),
            (2 * 365 * 86400 + 10 * 86400, "2y10d"),
            (9 * 365 * 86400, "9y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(secs), want, "{secs} s");
        }
    }

    #[test]
    fn crd_column_paths_take_the_first_match_and_the_declared_type() {
        let va = json!({"status": {
            "currentReplicas": 2, "costPerHour": 12.5,
            "conditions": [{"type": "Ready", "status": "False"}, {"type": "Optimized", "status": "True"}]
        }});
        let opt = r#".status.conditions[?(@.type=="Optimized")].status"#;
        assert_eq!(path_cell(&va, opt, "string", 0), json!("True"));
        assert_eq!(
            path_cell(&va, ".status.currentReplicas", "integer", 0),
            json!(2)
        );
        assert_eq!(
            path_cell(&va, ".status.costPerHour", "number", 0),
            json!(12.5)
        );
        // absent, and of another type than declared: null (kubectl prints <none>)
        assert_eq!(
            path_cell(&va, ".status.desiredReplicas", "integer", 0),
            Value::Null
        );
        assert_eq!(
            path_cell(&va, ".status.costPerHour", "integer", 0),
            Value::Null
        );
        let t = json!({"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"}});
        let now = "2026-01-01T00:03:05Z"
            .parse::<jiff::Timestamp>()
            .map(|t| t.as_second());
        assert_eq!(
            path_cell(&t, ".metadata.creationTimestamp", "date", now.unwrap_or(0)),
            json!("3m5s")
        );
    }

    #[test]
    fn pod_status_shows_container_reasons_and_termination() {
        let mut pod = json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 2, "state": {"running": {}}},
                {"name": "b", "ready": false, "restartCount": 3,
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
            ]}
        });
        let cells: Vec<Value> = pod_columns()
            .iter()
            .take(4)
            .map(|c| match c.cell {
                Cell::Func(f) => f(&pod, 0),
                Cell::Path(..) => Value::Null,
            })
            .collect();
        assert_eq!(
            cells,
            vec![
                json!("p"),
                json!("1/2"),
                json!("CrashLoopBackOff"),
                json!("5")
            ]
        );
        pod["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert_eq!(pod_status(&pod), "Terminating");
    }

    #[test]
    fn accept_headers_asking_for_tables() {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT,
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
                .parse()
                .unwrap_or(header::HeaderValue::from_static("")),
        );
        assert!(wants_table(&h));
        h.insert(
            header::ACCEPT,
            header::HeaderValue::from_static("application/json"),
        );
        assert!(!wants_table(&h));
    }
}
