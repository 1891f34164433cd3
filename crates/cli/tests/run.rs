//! `wvo run` and `wvo crds` as a user runs them: the binary against the Kubernetes API
//! emulator through a kubeconfig.

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, PostParams};
use kube::CustomResourceExt;
use serde_json::json;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use wvo_sim::kube_api::{gpu_node, KubeApiHandle, KubeApiOptions, KubeApiServer, TokenUser};

mod common;
use common::{free_port, http_get};

/// GET on loopback with a short timeout; (status code, body).
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    http_get(
        ([127, 0, 0, 1], port).into(),
        path,
        Duration::from_millis(300),
        Duration::from_secs(2),
    )
}

#[test]
fn crds_prints_the_checked_in_crd() {
    let out = Command::new(env!("CARGO_BIN_EXE_wvo"))
        .arg("crds")
        .output()
        .expect("run wvo crds");
    assert!(out.status.success());
    let checked_in = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../crds/variantautoscaling.yaml"
    ))
    .expect("crds/");
    assert_eq!(String::from_utf8_lossy(&out.stdout), checked_in);
}

/// The emulator with a GPU node, the CRD, the inventory, and VA `llm/m` (minReplicas 2)
/// on Deployment `m-h100` (0 replicas).
async fn cluster_with_one_va() -> (KubeApiHandle, Api<Deployment>) {
    let api = KubeApiServer::start(KubeApiOptions::default())
        .await
        .expect("emulator");
    api.create(&gpu_node("h100-a", "NVIDIA-H100-80GB-HBM3", 8))
        .expect("node");
    let client = api.client().expect("client");
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    crds.create(
        &PostParams::default(),
        &wvo_api::crd::VariantAutoscaling::crd(),
    )
    .await
    .expect("crd");
    api.create(&json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "wvo-inventory", "namespace": "wvo-system"},
        "data": {"inventory.yaml": "accelerators:\n- {name: H100, count: 8, costPerHour: 4.1}\n"}}))
        .expect("inventory");
    let deploy: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "m-h100", "namespace": "llm"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "m"}},
                 "template": {"metadata": {"labels": {"app": "m"}},
                              "spec": {"containers": [{"name": "vllm", "image": "vllm"}]}}}
    }))
    .expect("deployment");
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "llm");
    deploys
        .create(&PostParams::default(), &deploy)
        .await
        .expect("create deployment");
    api.create(&json!({"apiVersion": "wvo.dev/v1alpha1", "kind": "VariantAutoscaling",
        "metadata": {"name": "m", "namespace": "llm"},
        "spec": {"modelID": "m", "minReplicas": 2, "variants": [
            {"name": "h100", "scaleTargetRef": {"name": "m-h100"}, "accelerator": "H100", "maxRequestsPerSecond": 10}]}}))
        .expect("va");
    (api, deploys)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_scales_to_the_minimum_and_serves_the_status_api() {
    let (api, deploys) = cluster_with_one_va().await;
    let dir = std::env::temp_dir().join(format!("wvo-run-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, api.kubeconfig_yaml()).expect("kubeconfig");
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wvo"))
        .args([
            "run",
            "--no-leader-election",
            "--interval-seconds",
            "1",
            "--inventory-namespace",
            "wvo-system",
        ])
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("POD_NAMESPACE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wvo run");

    // No load source: metrics are unknown, so wvo only brings the model to its minimum.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut replicas = 0;
    while Instant::now() < deadline {
        replicas = deploys
            .get("m-h100")
            .await
            .ok()
            .and_then(|d| d.spec.replicas)
            .unwrap_or(0);
        let ready = get(port, "/readyz").is_some_and(|(code, _)| code == 200);
        if replicas == 2 && ready {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let models = get(port, "/api/v1/models");
    let _ = child.kill();
    let output = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(
        replicas, 2,
        "wvo run did not scale to minReplicas; stderr: {stderr}"
    );
    let (code, body) = models.expect("status API answered");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"modelID\":\"m\""), "{body}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn run_refuses_bad_flags_with_one_line() {
    let err = refused(&["run", "--headroom=-1", "--no-leader-election"]);
    assert!(err.contains("--headroom"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");

    let err = refused(&["run", "--scale-down-margin=-0.5", "--no-leader-election"]);
    assert!(err.contains("--scale-down-margin"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

/// Runs `wvo args`, which must fail; its stderr.
fn refused(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_wvo"))
        .args(args)
        .output()
        .expect("run wvo");
    assert!(!out.status.success(), "wvo {args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// GET on loopback with `Authorization: Bearer <token>`; (status code, body).
fn get_with_token(port: u16, path: &str, token: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_string()))
}

/// `wvo run --api-auth=kube`: the status API asks the cluster's TokenReviews and
/// SubjectAccessReviews (the emulator's); the probes stay open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_with_kube_auth_reviews_every_request_but_the_probes() {
    let (api, _deploys) = cluster_with_one_va().await;
    for object in [
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "reader"},
            "rules": [{"nonResourceURLs": ["/api/v1/*"], "verbs": ["get"]},
                      {"apiGroups": ["wvo.dev"], "resources": ["variantautoscalings"], "verbs": ["get"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "reader"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "reader"},
            "subjects": [{"kind": "User", "name": "ops", "apiGroup": "rbac.authorization.k8s.io"}]}),
    ] {
        api.create(&object).expect("RBAC");
    }
    api.add_token("t-ops-18c2", TokenUser::new("ops"));
    api.add_token("t-guest-9e0a", TokenUser::new("guest"));
    let dir = std::env::temp_dir().join(format!("wvo-run-auth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, api.kubeconfig_yaml()).expect("kubeconfig");
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wvo"))
        .args(["run", "--no-leader-election", "--interval-seconds", "1"])
        .args(["--inventory-namespace", "wvo-system", "--api-auth=kube"])
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("POD_NAMESPACE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wvo run");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut models = None;
    while Instant::now() < deadline {
        let ready = get(port, "/readyz").is_some_and(|(code, _)| code == 200);
        models = get_with_token(port, "/api/v1/models", "t-ops-18c2");
        if ready
            && models
                .as_ref()
                .is_some_and(|(_, b)| b.contains("\"modelID\":\"m\""))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let anonymous = get(port, "/api/v1/models");
    let guest = get_with_token(port, "/api/v1/models", "t-guest-9e0a");
    let healthz = get(port, "/healthz");
    let _ = child.kill();
    let output = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    let (code, body) = models.expect("answered");
    assert_eq!(code, 200, "{body}; stderr: {stderr}");
    assert!(body.contains("\"modelID\":\"m\""), "{body}");
    assert_eq!(anonymous.map(|(c, _)| c), Some(401));
    assert_eq!(guest.map(|(c, _)| c), Some(403));
    assert_eq!(healthz.map(|(c, _)| c), Some(200));
    assert!(!stderr.contains("t-ops-18c2") && !stderr.contains("t-guest-9e0a"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn run_refuses_an_unknown_auth_mode() {
    let err = refused(&["run", "--api-auth=basic", "--no-leader-election"]);
    assert!(err.contains("--api-auth") && err.contains("kube"), "{err}");
}
