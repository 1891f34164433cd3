//! What a user types, run with the real `kubectl` (v1.32, on PATH) against the emulator:
//! apply (client-side and server-side), edit, get with printer columns (`-o wide` too),
//! explain, and the OpenAPI documents kubectl reads for them.
//!
//! The session is a table of [`Step`]s (kubectl arguments, environment, expected outcome and
//! output checks): a new command is one more entry in [`session`]. Run with
//! `cargo test -p wvo-sim --test kubectl_conformance -- --nocapture` to see every command
//! and what kubectl printed.

use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use wvo_sim::kube_api::{gpu_node, KubeApiHandle, KubeApiOptions, KubeApiServer};

mod common;
use common::{kubectl, kubectl_command, Run, Scratch};

/// One check of a step's output.
#[derive(Debug, Clone, Copy)]
enum Check {
    /// stdout contains this text.
    Out(&'static str),
    /// stdout does not contain this text.
    NotOut(&'static str),
    /// stderr contains this text.
    Stderr(&'static str),
    /// A table header line holds these column names, in this order.
    Header(&'static [&'static str]),
    /// A table row whose first cell starts with `.0` (one of them, when several do) has,
    /// under each named column, the given value (`"?"`: any value other than empty or
    /// `<none>`).
    Row(&'static str, &'static [(&'static str, &'static str)]),
}

/// One kubectl command of the session.
struct Step {
    /// kubectl arguments; `{dir}` is the scratch directory (manifests, editor scripts),
    /// `{crd}` the checked-in CRD.
    args: &'static [&'static str],
    /// Extra environment (`KUBE_EDITOR` for `edit`).
    env: &'static [(&'static str, &'static str)],
    /// Whether kubectl must succeed (exit 0) or fail.
    ok: bool,
    /// What its output must show.
    checks: &'static [Check],
    /// Rerun until the checks pass (for what the emulator's controllers do asynchronously,
    /// such as Pods becoming Ready), within [`UNTIL`].
    until: bool,
    /// For a command that does not end by itself (`get -w`): a second kubectl command run
    /// once the first printed a line; the first is stopped when its output passes the checks
    /// (or after [`UNTIL`]).
    during: &'static [&'static str],
}

/// How long an `until` step may keep retrying.
const UNTIL: Duration = Duration::from_secs(30);

const fn step(args: &'static [&'static str], checks: &'static [Check]) -> Step {
    Step {
        args,
        env: &[],
        ok: true,
        checks,
        until: false,
        during: &[],
    }
}

const MODEL: &str = "meta-llama/Llama-3.1-8B-Instruct";

/// The VariantAutoscaling status a controller would write (through the status subresource).
const VA_STATUS: &str = r#"{"status":{"currentReplicas":2,"desiredReplicas":3,"costPerHour":12.5,"demandRps":7.25,"conditions":[{"type":"MetricsAvailable","status":"True","reason":"Scraped","message":"ok","lastTransitionTime":"2026-01-01T00:00:00Z"},{"type":"Optimized","status":"True","reason":"Planned","message":"ok","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}"#;

use Check::*;

/// The user session, in order.
fn session() -> Vec<Step> {
    vec![
        // client-side apply: create, unchanged, configured (a three-way patch)
        step(
            &["apply", "-f", "{crd}"],
            &[Out(
                "customresourcedefinition.apiextensions.k8s.io/variantautoscalings.wvo.dev created",
            )],
        ),
        step(
            &["apply", "-f", "{dir}/deploy.yaml"],
            &[Out("deployment.apps/llama-h100 created")],
        ),
        step(
            &["apply", "-f", "{dir}/va.yaml"],
            &[Out("variantautoscaling.wvo.dev/llama created")],
        ),
        // (unchanged only because the manifest spells out what the CRD defaults in the
        // variants list: kubectl's merge patch of a custom resource replaces a list that
        // differs, here as on a real apiserver)
        step(
            &["apply", "-f", "{dir}/va.yaml"],
            &[Out("variantautoscaling.wvo.dev/llama unchanged")],
        ),
        step(
            &["apply", "-f", "{dir}/deploy.yaml"],
            &[Out("deployment.apps/llama-h100 unchanged")],
        ),
        step(
            &["apply", "-f", "{dir}/va-max5.yaml"],
            &[Out("variantautoscaling.wvo.dev/llama configured")],
        ),
        step(
            &["get", "va", "llama", "-o", "jsonpath={.spec.maxReplicas}"],
            &[Out("5")],
        ),
        step(
            &["apply", "-f", "{dir}/deploy-3.yaml"],
            &[Out("deployment.apps/llama-h100 configured")],
        ),
        // kubectl sent a strategic merge patch (the OpenAPI v3 PATCH operation offers it):
        // the emulator merges the containers by name, so their args and limits stay (a merge
        // patch would replace the list with the patch's `{image, name}`)
        step(
            &[
                "get",
                "deploy",
                "llama-h100",
                "-o",
                "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].args[0]} {.spec.template.spec.containers[0].resources.limits.nvidia\\.com/gpu}",
            ],
            &[Out("3 vllm/vllm-openai:v0.9.1 --max-num-seqs=64 1")],
        ),
        // server-side apply: create, re-apply, a conflict with the client-side manager, forced
        step(
            &["apply", "--server-side", "-f", "{dir}/va-mistral.yaml"],
            &[Out("variantautoscaling.wvo.dev/mistral serverside-applied")],
        ),
        step(
            &["apply", "--server-side", "-f", "{dir}/deploy-mistral.yaml"],
            &[Out("deployment.apps/mistral-a100 serverside-applied")],
        ),
        Step {
            ok: false,
            ..step(
                &["apply", "--server-side", "-f", "{dir}/va.yaml"],
                &[Stderr("conflict"), Stderr("spec.maxReplicas")],
            )
        },
        step(
            &[
                "apply",
                "--server-side",
                "--force-conflicts",
                "-f",
                "{dir}/va.yaml",
            ],
            &[Out("variantautoscaling.wvo.dev/llama serverside-applied")],
        ),
        step(
            &["get", "va", "llama", "-o", "jsonpath={.spec.maxReplicas}"],
            &[Out("4")],
        ),
        // edit through an editor script
        Step {
            env: &[("KUBE_EDITOR", "{dir}/edit-va.sh")],
            ..step(
                &["edit", "va", "llama"],
                &[Out("variantautoscaling.wvo.dev/llama edited")],
            )
        },
        step(
            &["get", "va", "llama", "-o", "jsonpath={.spec.maxReplicas}"],
            &[Out("7")],
        ),
        Step {
            env: &[("KUBE_EDITOR", "{dir}/edit-deploy.sh")],
            ..step(
                &["edit", "deployment", "llama-h100"],
                &[Out("deployment.apps/llama-h100 edited")],
            )
        },
        step(
            &[
                "get",
                "deploy",
                "llama-h100",
                "-o",
                "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].name}",
            ],
            &[Out("2 vllm")],
        ),
        // printer columns
        step(
            &[
                "patch",
                "va",
                "llama",
                "--subresource=status",
                "--type=merge",
                "-p",
                VA_STATUS,
            ],
            &[Out("variantautoscaling.wvo.dev/llama patched")],
        ),
        step(
            &["get", "va"],
            &[
                Header(&[
                    "NAME",
                    "MODEL",
                    "REPLICAS",
                    "DESIRED",
                    "COST/H",
                    "OPTIMIZED",
                    "AGE",
                ]),
                Row(
                    "llama",
                    &[
                        ("MODEL", MODEL),
                        ("REPLICAS", "2"),
                        ("DESIRED", "3"),
                        ("COST/H", "12.5"),
                        ("OPTIMIZED", "True"),
                        ("AGE", "?"),
                    ],
                ),
                // no status yet: the status columns are blank (null cells), as on a real server
                Row(
                    "mistral",
                    &[
                        ("MODEL", "mistralai/Mistral-7B-Instruct-v0.3"),
                        ("REPLICAS", ""),
                        ("OPTIMIZED", ""),
                    ],
                ),
                NotOut("DEMAND/S"),
            ],
        ),
        // across namespaces kubectl adds NAMESPACE from each row's object metadata
        step(
            &["get", "va", "--all-namespaces"],
            &[
                Header(&[
                    "NAMESPACE",
                    "NAME",
                    "MODEL",
                    "REPLICAS",
                    "DESIRED",
                    "COST/H",
                    "OPTIMIZED",
                    "AGE",
                ]),
                Row("default", &[("NAME", "llama"), ("OPTIMIZED", "True")]),
            ],
        ),
        // a watch prints rows with the same columns as changes arrive
        Step {
            during: &[
                "patch",
                "va",
                "llama",
                "--subresource=status",
                "--type=merge",
                "-p",
                r#"{"status":{"desiredReplicas":5}}"#,
            ],
            ..step(
                &["get", "va", "llama", "--watch"],
                &[
                    Header(&[
                        "NAME",
                        "MODEL",
                        "REPLICAS",
                        "DESIRED",
                        "COST/H",
                        "OPTIMIZED",
                        "AGE",
                    ]),
                    Row("llama", &[("DESIRED", "3")]),
                    Row("llama", &[("DESIRED", "5")]),
                ],
            )
        },
        step(
            &["get", "va", "llama", "-o", "wide"],
            &[
                Header(&[
                    "NAME",
                    "MODEL",
                    "REPLICAS",
                    "DESIRED",
                    "COST/H",
                    "OPTIMIZED",
                    "AGE",
                    "DEMAND/S",
                    "ACTUATION",
                ]),
                Row("llama", &[("DEMAND/S", "7.25"), ("ACTUATION", "scale")]),
            ],
        ),
        Step {
            until: true,
            ..step(
                &["get", "deploy,pods", "-o", "wide"],
                &[
                    Header(&[
                        "NAME",
                        "READY",
                        "UP-TO-DATE",
                        "AVAILABLE",
                        "AGE",
                        "CONTAINERS",
                        "IMAGES",
                        "SELECTOR",
                    ]),
                    Row(
                        "deployment.apps/llama-h100",
                        &[
                            ("READY", "2/2"),
                            ("UP-TO-DATE", "2"),
                            ("AVAILABLE", "2"),
                            ("CONTAINERS", "vllm"),
                            ("IMAGES", "vllm/vllm-openai:v0.9.1"),
                            ("SELECTOR", "app=llama-h100"),
                        ],
                    ),
                    Header(&[
                        "NAME",
                        "READY",
                        "STATUS",
                        "RESTARTS",
                        "AGE",
                        "IP",
                        "NODE",
                        "NOMINATED NODE",
                        "READINESS GATES",
                    ]),
                    Row(
                        "pod/llama-h100-",
                        &[
                            ("READY", "1/1"),
                            ("STATUS", "Running"),
                            ("RESTARTS", "0"),
                            ("IP", "?"),
                            ("NODE", "h100-0"),
                            ("NOMINATED NODE", "<none>"),
                        ],
                    ),
                ],
            )
        },
        // the `all` category: pods, deployments (not VAs, whose CRD names no category)
        step(
            &["get", "all"],
            &[
                Row("pod/llama-h100-", &[("STATUS", "Running")]),
                Row("deployment.apps/llama-h100", &[("READY", "2/2")]),
                NotOut("variantautoscaling"),
            ],
        ),
        step(
            &["get", "nodes"],
            &[
                Header(&["NAME", "STATUS", "ROLES", "AGE", "VERSION"]),
                Row(
                    "h100-0",
                    &[
                        ("STATUS", "Ready"),
                        ("ROLES", "<none>"),
                        ("VERSION", "v1.34.0-wvo-emulator"),
                    ],
                ),
            ],
        ),
        step(
            &["get", "crd"],
            &[
                Header(&["NAME", "CREATED AT"]),
                Row("variantautoscalings.wvo.dev", &[("CREATED AT", "?")]),
            ],
        ),
        // more built-in printers: events, HPAs, config maps
        step(
            &["apply", "-f", "{dir}/others.yaml"],
            &[
                Out("event/llama.1 created"),
                Out("horizontalpodautoscaler.autoscaling/llama-h100 created"),
                Out("configmap/wvo-inventory created"),
            ],
        ),
        step(
            &["get", "events"],
            &[
                Header(&["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]),
                Row(
                    "",
                    &[
                        ("LAST SEEN", "?"),
                        ("TYPE", "Normal"),
                        ("REASON", "Scaled"),
                        ("OBJECT", "variantautoscaling/llama"),
                        ("MESSAGE", "desired 3 replicas"),
                    ],
                ),
            ],
        ),
        step(
            &["get", "hpa,cm", "-o", "wide"],
            &[
                Header(&[
                    "NAME",
                    "REFERENCE",
                    "TARGETS",
                    "MINPODS",
                    "MAXPODS",
                    "REPLICAS",
                    "AGE",
                ]),
                Row(
                    "horizontalpodautoscaler.autoscaling/llama-h100",
                    &[
                        ("REFERENCE", "Deployment/llama-h100"),
                        ("TARGETS", "cpu: <unknown>/80%"),
                        ("MINPODS", "1"),
                        ("MAXPODS", "4"),
                    ],
                ),
                Header(&["NAME", "DATA", "AGE"]),
                Row("configmap/wvo-inventory", &[("DATA", "2")]),
            ],
        ),
        // explain: from the CRD's schema and k8s-openapi's
        step(
            &["explain", "va"],
            &[
                Out("KIND:       VariantAutoscaling"),
                Out("GROUP:      wvo.dev"),
                Out("VERSION:    v1alpha1"),
                Out("spec\t<Object> -required-"),
                Out("status\t<Object>"),
            ],
        ),
        step(
            &["explain", "va.spec.variants"],
            &[
                Out("FIELD: variants <[]Object>"),
                Out("accelerator\t<string> -required-"),
                Out("scaleTargetRef\t<Object> -required-"),
            ],
        ),
        step(
            &["explain", "deployment.spec.template.spec.containers.env"],
            &[
                Out("KIND:       Deployment"),
                Out("FIELD: env <[]EnvVar>"),
                Out("valueFrom\t<EnvVarSource>"),
            ],
        ),
    ]
}

fn fill(s: &str, dir: &Path) -> String {
    let crd = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crds/variantautoscaling.yaml");
    s.replace("{dir}", &dir.to_string_lossy())
        .replace("{crd}", &crd.to_string_lossy())
}

/// Run `args` in the background; once it printed a line run `during`, then stop it as soon
/// as its output passes `step`'s checks (or after [`UNTIL`]). Its output and `ok` = whether
/// it ran until stopped (a watch that ended by itself failed).
async fn kubectl_during(dir: &Path, args: &[String], during: &[String], step: &Step) -> Run {
    use std::io::Read;
    use std::sync::{Arc, Mutex};
    let mut child = kubectl_command(dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl runs (is it on PATH?)");
    let collect = |mut r: Box<dyn Read + Send>| {
        let buf = Arc::new(Mutex::new(String::new()));
        let b = buf.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = r.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                if let Ok(mut s) = b.lock() {
                    s.push_str(&String::from_utf8_lossy(&chunk[..n]));
                }
            }
        });
        buf
    };
    let out = collect(Box::new(child.stdout.take().expect("stdout")));
    let err = collect(Box::new(child.stderr.take().expect("stderr")));
    let text = |b: &Arc<Mutex<String>>| b.lock().map(|s| s.clone()).unwrap_or_default();
    let deadline = tokio::time::Instant::now() + UNTIL;
    let mut started = false;
    let mut exited = false;
    while tokio::time::Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            exited = true;
            break;
        }
        let so_far = Run {
            ok: true,
            stdout: text(&out),
            stderr: text(&err),
        };
        if !started && so_far.stdout.contains('\n') {
            let r = kubectl(dir, during, &[]).await;
            eprintln!(
                "  (meanwhile) $ kubectl {}\n  {}{}",
                during.join(" "),
                r.stdout,
                r.stderr
            );
            assert!(r.ok, "kubectl {}: {}", during.join(" "), r.stderr);
            started = true;
        } else if started && failures(step, &so_far).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    Run {
        ok: !exited,
        stdout: text(&out),
        stderr: text(&err),
    }
}

/// The column names of a header line and where each starts (kubectl separates columns by
/// at least three spaces; a name has at most single spaces inside).
fn columns(header: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let bytes = header.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b' ' {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !(bytes[i] == b' ' && bytes.get(i + 1).is_none_or(|b| *b == b' '))
        {
            i += 1;
        }
        out.push((start, header[start..i].to_string()));
    }
    out
}

/// A table kubectl printed: its columns (start offset, name) and its row lines.
type Table = (Vec<(usize, String)>, Vec<String>);

/// The tables in kubectl's output: (columns, rows), a table per header (`NAME ...`).
fn tables(out: &str) -> Vec<Table> {
    let mut t: Vec<Table> = Vec::new();
    let mut in_table = false;
    for line in out.lines() {
        if line.trim().is_empty() {
            in_table = false;
        } else if !in_table {
            t.push((columns(line), Vec::new()));
            in_table = true;
        } else if let Some(last) = t.last_mut() {
            last.1.push(line.to_string());
        }
    }
    t
}

/// The cell of `row` under column `i` of `cols`.
fn cell(cols: &[(usize, String)], row: &str, i: usize) -> String {
    let start = cols[i].0.min(row.len());
    let end = cols.get(i + 1).map_or(row.len(), |c| c.0.min(row.len()));
    row.get(start..end).unwrap_or_default().trim().to_string()
}

/// The checks of `step` that `run` fails, as messages.
fn failures(step: &Step, run: &Run) -> Vec<String> {
    let mut bad = Vec::new();
    if run.ok != step.ok {
        bad.push(format!("exit: wanted success={}, got {}", step.ok, run.ok));
    }
    let tabs = tables(&run.stdout);
    for c in step.checks {
        match *c {
            Out(t) if !run.stdout.contains(t) => bad.push(format!("stdout lacks {t:?}")),
            NotOut(t) if run.stdout.contains(t) => bad.push(format!("stdout has {t:?}")),
            Stderr(t) if !run.stderr.contains(t) => bad.push(format!("stderr lacks {t:?}")),
            Header(names) => {
                let found = tabs.iter().any(|(cols, _)| {
                    let n: Vec<&str> = cols.iter().map(|(_, n)| n.as_str()).collect();
                    n == names
                });
                if !found {
                    bad.push(format!("no header {names:?}"));
                }
            }
            Row(first, want) => {
                // every row starting with `first` in a table with these columns; one must match
                let mut seen = Vec::new();
                let mut good = false;
                for (cols, rows) in &tabs {
                    if !want.iter().all(|(w, _)| cols.iter().any(|(_, n)| n == w)) {
                        continue;
                    }
                    for row in rows.iter().filter(|r| cell(cols, r, 0).starts_with(first)) {
                        let mismatch: Vec<String> = want
                            .iter()
                            .filter_map(|(name, value)| {
                                let i = cols.iter().position(|(_, n)| n == name).unwrap_or(0);
                                let got = cell(cols, row, i);
                                let ok = if *value == "?" {
                                    !got.is_empty() && got != "<none>"
                                } else {
                                    got == *value
                                };
                                (!ok).then(|| format!("{name}: wanted {value:?}, got {got:?}"))
                            })
                            .collect();
                        good |= mismatch.is_empty();
                        seen.push(mismatch.join(", "));
                    }
                }
                if !good {
                    bad.push(format!(
                        "no row {first:?} with {want:?} (rows seen: {seen:?})"
                    ));
                }
            }
            _ => {}
        }
    }
    bad
}

/// Run the steps in order; panic at the first whose checks fail (naming command, checks and
/// kubectl's output).
async fn run_session(dir: &Path, steps: &[Step]) {
    for s in steps {
        let args: Vec<String> = s.args.iter().map(|a| fill(a, dir)).collect();
        let env: Vec<(String, String)> = s
            .env
            .iter()
            .map(|(k, v)| (k.to_string(), fill(v, dir)))
            .collect();
        let deadline = tokio::time::Instant::now() + UNTIL;
        let during: Vec<String> = s.during.iter().map(|a| fill(a, dir)).collect();
        loop {
            let run = if during.is_empty() {
                kubectl(dir, &args, &env).await
            } else {
                kubectl_during(dir, &args, &during, s).await
            };
            let bad = failures(s, &run);
            eprintln!("$ kubectl {}\n{}{}", args.join(" "), run.stdout, run.stderr);
            if bad.is_empty() {
                break;
            }
            if !s.until || tokio::time::Instant::now() > deadline {
                panic!(
                    "kubectl {}: {}\n--- stdout\n{}--- stderr\n{}",
                    args.join(" "),
                    bad.join("; "),
                    run.stdout,
                    run.stderr
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn deployment(name: &str, replicas: u32, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
                    "containers": [{
                        "name": "vllm",
                        "image": image,
                        "args": ["--max-num-seqs=64"],
                        "env": [{"name": "HF_HOME", "value": "/cache"}],
                        "resources": {"limits": {"nvidia.com/gpu": "1"}}
                    }]
                }
            }
        }
    })
}

fn va(name: &str, model: &str, max: u32) -> Value {
    json!({
        "apiVersion": "wvo.dev/v1alpha1",
        "kind": "VariantAutoscaling",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "modelID": model,
            "maxReplicas": max,
            "variants": [{
                "name": "h100",
                "accelerator": "H100",
                "gpusPerReplica": 1,
                "minReplicas": 0,
                "maxRequestsPerSecond": 10.0,
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": format!("{name}-h100")}
            }]
        }
    })
}

/// Manifests as YAML files (what users apply).
fn write_yaml(dir: &Scratch, name: &str, v: &Value) {
    dir.write(name, &serde_norway::to_string(v).expect("YAML"));
}

async fn emulator(dir: &Scratch) -> KubeApiHandle {
    let api = KubeApiServer::start(KubeApiOptions::default())
        .await
        .expect("emulator");
    api.create(&gpu_node("h100-0", "NVIDIA-H100-80GB-HBM3", 8))
        .expect("node");
    dir.write("kubeconfig", &api.kubeconfig_yaml());
    api
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_session_with_real_kubectl() {
    let dir = Scratch::new("kubectl", "session");
    let api = emulator(&dir).await;
    write_yaml(
        &dir,
        "deploy.yaml",
        &deployment("llama-h100", 2, "vllm/vllm-openai:v0.9.0"),
    );
    write_yaml(
        &dir,
        "deploy-3.yaml",
        &deployment("llama-h100", 3, "vllm/vllm-openai:v0.9.1"),
    );
    write_yaml(
        &dir,
        "deploy-mistral.yaml",
        &deployment("mistral-a100", 1, "vllm/vllm-openai:v0.9.1"),
    );
    write_yaml(&dir, "va.yaml", &va("llama", MODEL, 4));
    write_yaml(&dir, "va-max5.yaml", &va("llama", MODEL, 5));
    write_yaml(
        &dir,
        "va-mistral.yaml",
        &va("mistral", "mistralai/Mistral-7B-Instruct-v0.3", 2),
    );
    let others = [
        json!({"apiVersion": "v1", "kind": "Event",
               "metadata": {"name": "llama.1", "namespace": "default"},
               "involvedObject": {"apiVersion": "wvo.dev/v1alpha1", "kind": "VariantAutoscaling",
                                  "name": "llama", "namespace": "default"},
               "type": "Normal", "reason": "Scaled", "message": "desired 3 replicas",
               "count": 1, "source": {"component": "wvo"},
               "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z"}),
        json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
               "metadata": {"name": "llama-h100", "namespace": "default"},
               "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "llama-h100"},
                        "maxReplicas": 4,
                        "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                                     "target": {"type": "Utilization", "averageUtilization": 80}}}]}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "wvo-inventory", "namespace": "default"},
               "data": {"accelerators.yaml": "[]", "classes.yaml": "[]"}}),
    ];
    let docs: Vec<String> = others
        .iter()
        .map(|d| serde_norway::to_string(d).expect("YAML"))
        .collect();
    dir.write("others.yaml", &docs.join("---\n"));
    dir.editor("edit-va.sh", "s/^  maxReplicas: 4$/  maxReplicas: 7/");
    dir.editor("edit-deploy.sh", "s/^  replicas: 3$/  replicas: 2/");
    run_session(&dir.0, &session()).await;
    api.shutdown().await;
}

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("http client")
}

/// Every `$ref` in `doc` resolves inside it (`prefix` is where its schemas live).
fn dangling_refs(doc: &Value, prefix: &str, schemas: &Value) -> BTreeSet<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                if let Some(r) = o.get("$ref").and_then(Value::as_str) {
                    out.push(r.to_string());
                }
                o.values().for_each(|x| walk(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut refs = Vec::new();
    walk(doc, &mut refs);
    refs.into_iter()
        .filter(|r| {
            r.strip_prefix(prefix)
                .is_none_or(|n| schemas.get(n).is_none())
        })
        .collect()
}

/// The patch operation of the path ending in `suffix`.
fn patch_op<'a>(doc: &'a Value, suffix: &str) -> &'a Value {
    let paths = doc["paths"].as_object().expect("paths");
    let (_, p) = paths
        .iter()
        .find(|(k, _)| k.ends_with(suffix))
        .unwrap_or_else(|| panic!("no path ending in {suffix}"));
    &p["patch"]
}

#[tokio::test]
async fn openapi_documents_have_the_apiservers_shape() {
    let dir = Scratch::new("kubectl", "openapi");
    let api = emulator(&dir).await;
    let http = http();
    let base = api.url();
    let get = |path: String| http.get(format!("{base}{path}")).send();

    // v3 discovery: one entry per group-version, each URL carrying its document's hash
    let disc: Value = get("/openapi/v3".into())
        .await
        .expect("GET")
        .json()
        .await
        .expect("json");
    assert!(
        disc["paths"].get("apis/wvo.dev/v1alpha1").is_none(),
        "no CRD yet"
    );
    let apps = disc["paths"]["apis/apps/v1"]["serverRelativeURL"]
        .as_str()
        .expect("apps/v1")
        .to_string();
    let (_, hash) = apps.split_once("?hash=").expect("hash in the URL");
    let r = get(apps.clone()).await.expect("GET apps/v1");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["etag"].to_str().ok(),
        Some(format!("\"{hash}\"").as_str())
    );
    assert_eq!(
        r.headers()["cache-control"].to_str().ok(),
        Some("public, immutable")
    );
    let doc: Value = r.json().await.expect("json");
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        dangling_refs(&doc, "#/components/schemas/", schemas),
        BTreeSet::new()
    );
    let deploy = &schemas["io.k8s.api.apps.v1.Deployment"];
    assert_eq!(
        deploy["x-kubernetes-group-version-kind"],
        json!([{"group": "apps", "version": "v1", "kind": "Deployment"}])
    );
    let containers = &schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
    assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
    assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
    let env = &schemas["io.k8s.api.core.v1.Container"]["properties"]["env"];
    assert_eq!(env["x-kubernetes-patch-merge-key"], "name");
    let dp = patch_op(&doc, "/deployments/{name}");
    assert_eq!(dp["x-kubernetes-group-version-kind"]["kind"], "Deployment");
    assert!(dp["requestBody"]["content"]
        .get("application/strategic-merge-patch+json")
        .is_some());
    assert!(dp["parameters"]
        .as_array()
        .is_some_and(|ps| ps.iter().any(|p| p["name"] == "fieldValidation")));
    // a conditional GET with the current ETag, an old hash redirected to the current one
    let r = http
        .get(format!("{base}{apps}"))
        .header("If-None-Match", format!("\"{hash}\""))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), 304);
    let r = get("/openapi/v3/apis/apps/v1?hash=0123".into())
        .await
        .expect("GET");
    assert_eq!(r.status(), 301);
    assert_eq!(r.headers()["location"].to_str().ok(), Some(apps.as_str()));

    // a CRD adds its group-version, with its schema and without strategic merge patch
    let crd_text = std::fs::read_to_string(fill("{crd}", &dir.0)).expect("CRD file");
    let crd: Value = serde_norway::from_str(&crd_text).expect("CRD YAML");
    api.create(&crd).expect("CRD");
    let disc: Value = get("/openapi/v3".into())
        .await
        .expect("GET")
        .json()
        .await
        .expect("json");
    let url = disc["paths"]["apis/wvo.dev/v1alpha1"]["serverRelativeURL"]
        .as_str()
        .expect("wvo.dev");
    let doc: Value = get(url.to_string())
        .await
        .expect("GET")
        .json()
        .await
        .expect("json");
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        dangling_refs(&doc, "#/components/schemas/", schemas),
        BTreeSet::new()
    );
    let va = &schemas["dev.wvo.v1alpha1.VariantAutoscaling"];
    assert_eq!(
        va["x-kubernetes-group-version-kind"],
        json!([{"group": "wvo.dev", "version": "v1alpha1", "kind": "VariantAutoscaling"}])
    );
    let crd_spec = crd.pointer("/spec/versions/0/schema/openAPIV3Schema/properties/spec");
    assert_eq!(
        va["properties"].get("spec"),
        crd_spec,
        "the CRD's own schema"
    );
    assert!(schemas
        .get("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
        .is_some());
    let vp = patch_op(&doc, "/variantautoscalings/{name}");
    let types: BTreeSet<&str> = vp["requestBody"]["content"]
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    assert_eq!(
        types,
        BTreeSet::from([
            "application/apply-patch+yaml",
            "application/json-patch+json",
            "application/merge-patch+json"
        ])
    );

    // v2: JSON for JSON clients, 406 for a protobuf-only Accept
    let r = http
        .get(format!("{base}/openapi/v2"))
        .header(
            "Accept",
            "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
        )
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), 406);
    let r = http
        .get(format!("{base}/openapi/v2"))
        .header("Accept", "application/json")
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), 200);
    let v2: Value = r.json().await.expect("json");
    assert_eq!(v2["swagger"], "2.0");
    assert_eq!(
        dangling_refs(&v2, "#/definitions/", &v2["definitions"]),
        BTreeSet::new()
    );
    assert!(v2["definitions"]
        .get("dev.wvo.v1alpha1.VariantAutoscaling")
        .is_some());
    let dp = patch_op(&v2, "/namespaces/{namespace}/deployments/{name}");
    assert!(dp["consumes"]
        .as_array()
        .is_some_and(|c| c.contains(&json!("application/strategic-merge-patch+json"))));
    assert_eq!(dp["parameters"][0]["in"], "body");
    api.shutdown().await;
}
