//! Day-2 `kubectl` commands against the emulator: the real `kubectl` (v1.32, on PATH) runs a
//! table of user commands (patch of all three types, scale, wait, rollout status, get
//! events, describe, auth can-i, logs, apply -k deploy/ --dry-run=server) and each answer
//! is checked for what a real cluster would print. Run with `-- --nocapture` to see every
//! command's output.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use serde_json::{json, Value};
use wvo_sim::kube_api::{gpu_node, KubeApiHandle, KubeApiOptions, KubeApiServer};

mod common;
use common::{kubectl, Scratch};

/// One command of the table: its arguments (`{dir}` is the scratch directory), whether it
/// succeeds, and what its stdout (on success) or stderr (on failure) must contain.
struct Case {
    args: &'static str,
    ok: bool,
    expect: &'static [&'static str],
    /// Strings that must not appear in stdout.
    absent: &'static [&'static str],
}

const fn ok(args: &'static str, expect: &'static [&'static str]) -> Case {
    Case {
        args,
        ok: true,
        expect,
        absent: &[],
    }
}

const fn fails(args: &'static str, expect: &'static [&'static str]) -> Case {
    Case {
        args,
        ok: false,
        expect,
        absent: &[],
    }
}

/// Split a command line on spaces, keeping single-quoted words whole.
fn words(line: &str, dir: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in line.replace("{dir}", dir).chars() {
        match c {
            '\'' => quoted = !quoted,
            ' ' if !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

async fn run_cases(dir: &Scratch, cases: &[Case]) {
    let d = dir.0.to_string_lossy().into_owned();
    for case in cases {
        let run = kubectl(&dir.0, &words(case.args, &d), &[]).await;
        eprintln!(
            "$ kubectl {}\n{}{}",
            case.args,
            run.stdout,
            if run.stderr.is_empty() {
                String::new()
            } else {
                format!("[stderr] {}", run.stderr)
            }
        );
        assert_eq!(
            run.ok, case.ok,
            "kubectl {}: expected success={}, stdout:\n{}\nstderr:\n{}",
            case.args, case.ok, run.stdout, run.stderr
        );
        let text = if case.ok {
            run.stdout.clone()
        } else {
            format!("{}{}", run.stderr, run.stdout)
        };
        for e in case.expect {
            assert!(
                text.contains(e),
                "kubectl {}: expected {e:?} in:\n{text}",
                case.args
            );
        }
        for a in case.absent {
            assert!(
                !run.stdout.contains(a),
                "kubectl {}: did not expect {a:?} in:\n{}",
                case.args,
                run.stdout
            );
        }
    }
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "llama-h100", "namespace": "llm"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "llama-h100"}},
            "template": {
                "metadata": {"labels": {"app": "llama-h100"}},
                "spec": {
                    "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
                    "containers": [{
                        "name": "vllm", "image": "vllm/vllm-openai:v0.8.5",
                        "args": ["--model", "meta-llama/Llama-3.1-8B-Instruct"],
                        "resources": {"limits": {"nvidia.com/gpu": "1"}}
                    }]
                }
            }
        }
    })
}

fn variant_autoscaling() -> Value {
    json!({
        "apiVersion": "wvo.dev/v1alpha1", "kind": "VariantAutoscaling",
        "metadata": {"name": "llama", "namespace": "llm"},
        "spec": {
            "modelID": "meta-llama/Llama-3.1-8B-Instruct",
            "maxReplicas": 4,
            "variants": [{"name": "h100", "accelerator": "H100",
                "maxRequestsPerSecond": 10.0, "scaleTargetRef": {"name": "llama-h100"}}]
        }
    })
}

/// A running emulator with GPU nodes, the CRD, namespace `llm`, the Deployment and the VA
/// (applied with kubectl), and a `ScaledUp` Event on the VA published the way wvo
/// publishes its Events (kube's `Recorder`, events.k8s.io/v1).
async fn setup(dir: &Scratch) -> KubeApiHandle {
    let api = KubeApiServer::start(KubeApiOptions::default())
        .await
        .expect("emulator");
    for i in 0..2 {
        api.create(&gpu_node(&format!("h100-{i}"), "NVIDIA-H100-80GB-HBM3", 8))
            .expect("node");
    }
    dir.write("kubeconfig", &api.kubeconfig_yaml());
    dir.write("deploy.json", &deployment().to_string());
    let mut edited = deployment();
    edited["spec"]["template"]["spec"]["containers"] = json!([
        {"name": "metrics", "image": "busybox"},
        {"name": "vllm", "image": "vllm/vllm-openai:v0.9.2",
         "args": ["--model", "meta-llama/Llama-3.1-8B-Instruct", "--max-num-seqs", "64"],
         "resources": {"limits": {"nvidia.com/gpu": "1"}}}]);
    dir.write("deploy-edited.json", &edited.to_string());
    dir.write("va.json", &variant_autoscaling().to_string());
    run_cases(
        dir,
        &[
            ok("create namespace llm", &["namespace/llm created"]),
            ok("apply -f crds/variantautoscaling.yaml", &["created"]),
            ok(
                "apply -f {dir}/deploy.json",
                &["deployment.apps/llama-h100 created"],
            ),
            ok("apply -f {dir}/va.json", &["created"]),
        ],
    )
    .await;
    let va = api
        .get("wvo.dev/v1alpha1", "VariantAutoscaling", "llm", "llama")
        .expect("VA stored");
    let reference = ObjectReference {
        api_version: Some("wvo.dev/v1alpha1".into()),
        kind: Some("VariantAutoscaling".into()),
        name: Some("llama".into()),
        namespace: Some("llm".into()),
        uid: va["metadata"]["uid"].as_str().map(String::from),
        ..ObjectReference::default()
    };
    let recorder = Recorder::new(
        api.client().expect("client"),
        Reporter {
            controller: "wvo".into(),
            instance: Some("wvo-0".into()),
        },
    );
    recorder
        .publish(
            &Event {
                type_: EventType::Normal,
                reason: "ScaledUp".into(),
                note: Some("h100: 1 -> 2 replicas (load 12.0 req/s)".into()),
                action: "Reconcile".into(),
                secondary: None,
            },
            &reference,
        )
        .await
        .expect("publish Event");
    api
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_scale_rollout_wait_events_describe_logs() {
    let dir = Scratch::new("day2", "workload");
    let api = setup(&dir).await;
    run_cases(
        &dir,
        &[
            ok(
                "rollout status deploy/llama-h100 -n llm --timeout=30s",
                &["deployment \"llama-h100\" successfully rolled out"],
            ),
            ok(
                "get rs -n llm -o name",
                &["replicaset.apps/llama-h100-"],
            ),
            // The default patch type is strategic: containers merge by name.
            ok(
                r#"patch deploy llama-h100 -n llm -p '{"spec":{"template":{"spec":{"containers":[{"name":"vllm","image":"vllm/vllm-openai:v0.9.0"}]}}}}'"#,
                &["deployment.apps/llama-h100 patched"],
            ),
            ok(
                "get deploy llama-h100 -n llm -o jsonpath={.spec.template.spec.containers[*].args}",
                &[r#"["--model","meta-llama/Llama-3.1-8B-Instruct"]"#],
            ),
            ok(
                r"get deploy llama-h100 -n llm -o jsonpath={.spec.template.spec.containers[0].resources.limits.nvidia\.com/gpu}{.spec.template.spec.containers[0].image}",
                &["1vllm/vllm-openai:v0.9.0"],
            ),
            // A strategic `$patch: delete` of an env entry, then a new one merged by name.
            ok(
                r#"patch deploy llama-h100 -n llm -p '{"spec":{"template":{"spec":{"containers":[{"name":"vllm","env":[{"name":"HF_HOME","value":"/cache"}]}]}}}}'"#,
                &["patched"],
            ),
            ok(
                r#"patch deploy llama-h100 -n llm --type=merge -p '{"metadata":{"annotations":{"team":"llm"}}}'"#,
                &["deployment.apps/llama-h100 patched"],
            ),
            ok(
                r#"patch deploy llama-h100 -n llm --type=json -p '[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"vllm/vllm-openai:v0.9.1"}]'"#,
                &["deployment.apps/llama-h100 patched"],
            ),
            ok(
                r"get deploy llama-h100 -n llm -o jsonpath={.spec.template.spec.containers[0].args[1]}/{.spec.template.spec.containers[0].resources.limits.nvidia\.com/gpu}/{.spec.template.spec.containers[0].env[0].name}/{.spec.template.spec.containers[0].image}/{.metadata.annotations.team}",
                &["meta-llama/Llama-3.1-8B-Instruct/1/HF_HOME/vllm/vllm-openai:v0.9.1/llm"],
            ),
            // The template changed: a new ReplicaSet took the replica over.
            ok(
                "rollout status deploy/llama-h100 -n llm --timeout=30s",
                &["successfully rolled out"],
            ),
            ok(
                "get rs -n llm -o jsonpath={range.items[*]}{.spec.replicas}{\",\"}{end}",
                &["0,", "1,"],
            ),
            // Custom resources take no strategic merge patch (415), merge patches apply.
            fails(
                r#"patch va llama -n llm -p '{"spec":{"maxReplicas":3}}'"#,
                &["application/strategic-merge-patch+json is not supported", "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"],
            ),
            ok(
                r#"patch va llama -n llm --type=merge -p '{"spec":{"maxReplicas":3}}'"#,
                &["variantautoscaling.wvo.dev/llama patched"],
            ),
            ok(
                "scale deploy/llama-h100 -n llm --replicas=2",
                &["deployment.apps/llama-h100 scaled"],
            ),
            ok(
                "rollout status deploy/llama-h100 -n llm --timeout=30s",
                &["successfully rolled out"],
            ),
            ok(
                "wait --for=condition=Available deploy/llama-h100 -n llm --timeout=30s",
                &["deployment.apps/llama-h100 condition met"],
            ),
            ok(
                "get deploy llama-h100 -n llm -o jsonpath={.status.readyReplicas}/{.status.updatedReplicas}/{.status.availableReplicas}",
                &["2/2/2"],
            ),
            // wvo's Event (events.k8s.io/v1) is a core/v1 Event too.
            // The Table answer carries the apiserver's Event columns.
            ok(
                "get events -n llm",
                &[
                    "LAST SEEN   TYPE     REASON     OBJECT",
                    "Normal   ScaledUp   variantautoscaling/llama   h100: 1 -> 2 replicas",
                ],
            ),
            ok(
                "get events -n llm -o custom-columns=KIND:.involvedObject.kind,NAME:.involvedObject.name,REASON:.reason,FROM:.reportingComponent,MESSAGE:.message",
                &["VariantAutoscaling   llama   ScaledUp   wvo", "h100: 1 -> 2 replicas (load 12.0 req/s)"],
            ),
            ok(
                "get events -n llm --field-selector involvedObject.kind=VariantAutoscaling,involvedObject.name=llama -o name",
                &["event/"],
            ),
            // `kubectl events` lays the core/v1 Events out itself.
            ok(
                "events -n llm --for variantautoscaling/llama",
                &["Normal", "ScaledUp", "VariantAutoscaling/llama", "h100: 1 -> 2 replicas (load 12.0 req/s)"],
            ),
            ok(
                "describe va llama -n llm",
                &["Events:", "ScaledUp", "h100: 1 -> 2 replicas (load 12.0 req/s)"],
            ),
            ok("logs deploy/llama-h100 -n llm --tail=2", &["node: h100-", "started: "]),
            // Client-side apply of an edited manifest: kubectl sends a three-way strategic
            // merge patch (`$setElementOrder/containers`): a container is added before
            // vllm, whose env (set by a patch above, not in the manifest) stays.
            ok("apply -f {dir}/deploy-edited.json", &["deployment.apps/llama-h100 configured"]),
            ok(
                r"get deploy llama-h100 -n llm -o jsonpath={.spec.template.spec.containers[*].name}/{.spec.template.spec.containers[1].args[3]}/{.spec.template.spec.containers[1].env[0].name}/{.spec.template.spec.containers[1].resources.limits.nvidia\.com/gpu}",
                &["metrics vllm/64/HF_HOME/1"],
            ),
            ok(
                "rollout status deploy/llama-h100 -n llm --timeout=30s",
                &["successfully rolled out"],
            ),
            // The manifest's `replicas: 1` is back (a three-way patch sets what differs from
            // the live object, as on a real cluster), and the old ReplicaSets are at 0.
            ok(
                "describe deploy llama-h100 -n llm",
                &[
                    "Replicas:           1 desired | 1 updated | 1 total | 1 available | 0 unavailable",
                    "Progressing    True    NewReplicaSetAvailable",
                    "(0/0 replicas created)",
                    "NewReplicaSet:   llama-h100-",
                    "(1/1 replicas created)",
                ],
            ),
            ok("rollout history deploy/llama-h100 -n llm", &["REVISION", "5 "]),
            // kubectl's typed clients send protobuf: decoded for these kinds.
            ok(
                "create configmap settings -n llm --from-literal=mode=fast",
                &["configmap/settings created"],
            ),
            ok("get configmap settings -n llm -o jsonpath={.data.mode}", &["fast"]),
        ],
    )
    .await;
    drop(api);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_can_i_and_server_dry_run_of_deploy() {
    let dir = Scratch::new("day2", "auth");
    let api = KubeApiServer::start(KubeApiOptions::default())
        .await
        .expect("emulator");
    dir.write("kubeconfig", &api.kubeconfig_yaml());
    dir.write(
        "rbac.yaml",
        "apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: deploy-reader, namespace: llm}
rules:
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: alice-reads, namespace: llm}
subjects:
- {kind: User, name: alice, apiGroup: rbac.authorization.k8s.io}
roleRef: {kind: Role, name: deploy-reader, apiGroup: rbac.authorization.k8s.io}
",
    );
    run_cases(
        &dir,
        &[
            // The kubeconfig's credential-less user may do everything.
            ok("auth can-i create deployments -n llm", &["yes"]),
            // alice (impersonated: kubectl sends no bearer token over plain http), before
            // and after her RoleBinding.
            fails("auth can-i list deployments -n llm --as=alice", &["no\n"]),
            ok("create namespace llm", &["created"]),
            ok("apply -f {dir}/rbac.yaml", &["role.rbac.authorization.k8s.io/deploy-reader created", "rolebinding.rbac.authorization.k8s.io/alice-reads created"]),
            ok("auth can-i list deployments -n llm --as=alice", &["yes"]),
            fails("auth can-i delete deployments -n llm --as=alice", &["no\n"]),
            fails("auth can-i list deployments -n default --as=alice", &["no\n"]),
            // The install manifests, validated and not stored.
            ok(
                "apply -k deploy/ --dry-run=server",
                &[
                    "namespace/wvo-system created (server dry run)",
                    "customresourcedefinition.apiextensions.k8s.io/variantautoscalings.wvo.dev created (server dry run)",
                    "serviceaccount/wvo created (server dry run)",
                    "clusterrole.rbac.authorization.k8s.io/wvo created (server dry run)",
                    "clusterrolebinding.rbac.authorization.k8s.io/wvo created (server dry run)",
                    "configmap/wvo-inventory created (server dry run)",
                    "service/wvo created (server dry run)",
                    "deployment.apps/wvo created (server dry run)",
                    "networkpolicy.networking.k8s.io/wvo created (server dry run)",
                ],
            ),
            fails("get namespace wvo-system", &["NotFound", "\"wvo-system\" not found"]),
            ok(
                "apply -k deploy/overlays/namespaced --dry-run=server",
                &["role.rbac.authorization.k8s.io/wvo created (server dry run)", "(server dry run)"],
            ),
            // Applied for real, then again as a dry run: unchanged.
            ok("apply -k deploy/", &["deployment.apps/wvo created", "networkpolicy.networking.k8s.io/wvo created"]),
            ok("apply -k deploy/ --dry-run=server", &["deployment.apps/wvo unchanged (server dry run)"]),
            ok("get sa,netpol -n wvo-system -o name", &["serviceaccount/wvo", "networkpolicy.networking.k8s.io/wvo"]),
            // What wvo's own ServiceAccount may do, by the installed RBAC.
            ok(
                "auth can-i list nodes --as=system:serviceaccount:wvo-system:wvo",
                &["yes"],
            ),
            ok(
                "auth can-i patch deployments.apps --subresource=scale -n llm --as=system:serviceaccount:wvo-system:wvo",
                &["yes"],
            ),
            fails(
                "auth can-i delete nodes --as=system:serviceaccount:wvo-system:wvo",
                &["no\n"],
            ),
        ],
    )
    .await;
}
