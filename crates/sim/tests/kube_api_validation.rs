//! The emulator enforces a CRD's schema and CEL rules the way a real apiserver does: the
//! real `kubectl` (v1.32) against the emulator with the real VariantAutoscaling CRD
//! (`crds/variantautoscaling.yaml`) is refused bad objects with the apiserver's messages.
//! Needs `kubectl` on PATH.

use serde_json::{json, Value};
use std::path::Path;
use wvo_sim::kube_api::{KubeApiHandle, KubeApiOptions, KubeApiServer};

mod common;
use common::{kubectl, Run, Scratch};

/// The checked-in CRD as JSON.
fn crd() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crds/variantautoscaling.yaml");
    let text = std::fs::read_to_string(&path).expect("read crds/variantautoscaling.yaml");
    serde_norway::from_str(&text).expect("CRD YAML")
}

fn spec_schema(crd: &mut Value) -> &mut Value {
    crd.pointer_mut("/spec/versions/0/schema/openAPIV3Schema/properties/spec")
        .expect("spec schema")
}

fn good_va(name: &str) -> Value {
    json!({
        "apiVersion": "wvo.dev/v1alpha1",
        "kind": "VariantAutoscaling",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "modelID": "meta-llama/Llama-3.1-8B-Instruct",
            "maxReplicas": 4,
            "variants": [{
                "name": "h100",
                "accelerator": "H100",
                "maxRequestsPerSecond": 10.0,
                "scaleTargetRef": {"name": "llama-h100"}
            }]
        }
    })
}

/// An emulator with the checked-in CRD installed through `kubectl apply`; the CRD.
async fn setup(dir: &Scratch) -> (KubeApiHandle, Value) {
    let api = KubeApiServer::start(KubeApiOptions {
        run_controllers: false,
        ..KubeApiOptions::default()
    })
    .await
    .expect("emulator");
    dir.write("kubeconfig", &api.kubeconfig_yaml());
    let crd = crd();
    let path = dir.write("crd.json", &crd.to_string());
    let run = kubectl(
        &dir.0,
        &["apply", "-f", path.to_str().unwrap_or_default()],
        &[],
    )
    .await;
    assert!(run.ok, "CRD apply failed: {}", run.stderr);
    (api, crd)
}

/// `kubectl <verb> -f` of `va`: the run.
async fn submit(dir: &Scratch, verb: &[&str], va: &Value) -> Run {
    let name = va["metadata"]["name"].as_str().unwrap_or("va");
    let path = dir.write(&format!("{name}.json"), &va.to_string());
    let mut args: Vec<&str> = verb.to_vec();
    let p = path.to_str().unwrap_or_default().to_string();
    args.extend(["-f", &p]);
    kubectl(&dir.0, &args, &[]).await
}

fn assert_refused(run: &Run, lines: &[&str]) {
    assert!(!run.ok, "accepted, expected a refusal: {}", run.stdout);
    for l in lines {
        assert!(
            run.stderr.contains(l),
            "expected {l:?} in kubectl's stderr:\n{}",
            run.stderr
        );
    }
    eprintln!("kubectl stderr:\n{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_is_refused_bad_variant_autoscalings_with_apiserver_messages() {
    let dir = Scratch::new("validate", "refusals");
    let (api, _) = setup(&dir).await;

    let run = submit(&dir, &["apply"], &good_va("good")).await;
    assert!(run.ok, "good VA refused: {}", run.stderr);
    let stored = api
        .get("wvo.dev/v1alpha1", "VariantAutoscaling", "default", "good")
        .expect("good VA stored");
    // Defaults applied like on a real apiserver.
    assert_eq!(stored["spec"]["actuation"], "scale");
    assert_eq!(stored["spec"]["variants"][0]["minReplicas"], 0);

    let mut negative = good_va("negative");
    negative["spec"]["variants"][0]["minReplicas"] = json!(-1);
    assert_refused(
        &submit(&dir, &["apply"], &negative).await,
        &[
            r#"The VariantAutoscaling "negative" is invalid"#,
            "spec.variants[0].minReplicas: Invalid value: -1: spec.variants[0].minReplicas in body should be greater than or equal to 0",
        ],
    );

    // 1e18 in integer form (what kubectl sends for a YAML `1e18`): refused by the CRD's
    // `maximum` (1e6 for spec.maxReplicas).
    let mut huge = good_va("huge");
    huge["spec"]["maxReplicas"] = json!(1_000_000_000_000_000_000_i64);
    assert_refused(
        &submit(&dir, &["create"], &huge).await,
        &["spec.maxReplicas: Invalid value: 1000000000000000000: spec.maxReplicas in body should be less than or equal to 1e+06"],
    );

    let mut no_model = good_va("no-model");
    if let Some(s) = no_model["spec"].as_object_mut() {
        s.remove("modelID");
    }
    assert_refused(
        &submit(&dir, &["apply"], &no_model).await,
        &["spec.modelID: Required value"],
    );

    let mut min_over_max = good_va("min-over-max");
    min_over_max["spec"]["minReplicas"] = json!(3);
    min_over_max["spec"]["maxReplicas"] = json!(2);
    assert_refused(
        &submit(&dir, &["apply"], &min_over_max).await,
        &[r#"spec: Invalid value: "object": minReplicas must be <= maxReplicas"#],
    );

    let mut dup = good_va("dup");
    let v = dup["spec"]["variants"][0].clone();
    dup["spec"]["variants"] = json!([v.clone(), v]);
    // variants is a list-type map keyed by name.
    assert_refused(
        &submit(&dir, &["apply"], &dup).await,
        &[r#"spec.variants[1]: Duplicate value: map[string]interface {}{"name":"h100"}"#],
    );

    let mut unknown = good_va("unknown");
    unknown["spec"]["foo"] = json!(1);
    assert_refused(
        &submit(&dir, &["apply", "--validate=strict"], &unknown).await,
        &[
            r#"VariantAutoscaling in version "v1alpha1" cannot be handled as a VariantAutoscaling: strict decoding error: unknown field "spec.foo""#,
        ],
    );
    // Warn: stored without the field, kubectl prints the server's warning.
    let run = submit(&dir, &["apply", "--validate=warn"], &unknown).await;
    assert!(run.ok, "{}", run.stderr);
    assert!(
        run.stderr.contains(r#"Warning: unknown field "spec.foo""#),
        "{}",
        run.stderr
    );
    let stored = api
        .get(
            "wvo.dev/v1alpha1",
            "VariantAutoscaling",
            "default",
            "unknown",
        )
        .expect("stored under Warn");
    assert!(stored["spec"].get("foo").is_none(), "{stored}");

    // An update (kubectl apply of a changed object: a merge patch) is validated after
    // the patch is applied.
    let mut changed = good_va("good");
    changed["spec"]["minReplicas"] = json!(9);
    api.clear_requests();
    assert_refused(
        &submit(&dir, &["apply"], &changed).await,
        &[r#"spec: Invalid value: "object": minReplicas must be <= maxReplicas"#],
    );
    assert!(
        api.requests()
            .iter()
            .any(|r| r.verb == "patch" && r.name == "good"),
        "kubectl apply of an existing object patches it: {:?}",
        api.requests()
    );
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_carry_status_causes_and_warnings_carry_headers() {
    let dir = Scratch::new("validate", "causes");
    let (api, _) = setup(&dir).await;
    // reqwest is built without a crypto provider in this workspace (plain http here).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let url = format!(
        "{}/apis/wvo.dev/v1alpha1/namespaces/default/variantautoscalings",
        api.url()
    );
    let mut bad = good_va("bad");
    bad["spec"]["variants"][0]["minReplicas"] = json!(-1);
    if let Some(s) = bad["spec"].as_object_mut() {
        s.remove("modelID");
    }
    let resp = http.post(&url).json(&bad).send().await.expect("POST");
    assert_eq!(resp.status().as_u16(), 422);
    let status: Value = resp.json().await.expect("Status JSON");
    assert_eq!(status["reason"], "Invalid");
    assert_eq!(
        status["message"],
        "VariantAutoscaling.wvo.dev \"bad\" is invalid: [spec.modelID: Required value, \
         spec.variants[0].minReplicas: Invalid value: -1: spec.variants[0].minReplicas in body \
         should be greater than or equal to 0, <nil>: Invalid value: \"null\": some validation \
         rules were not checked because the object was invalid; correct the existing errors to \
         complete validation]"
    );
    assert_eq!(status["details"]["kind"], "VariantAutoscaling");
    assert_eq!(status["details"]["group"], "wvo.dev");
    assert_eq!(
        status["details"]["causes"][0],
        json!({"reason": "FieldValueRequired", "message": "Required value", "field": "spec.modelID"})
    );
    assert_eq!(
        status["details"]["causes"][1]["reason"],
        "FieldValueInvalid"
    );
    assert_eq!(
        status["details"]["causes"][1]["field"],
        "spec.variants[0].minReplicas"
    );

    // Without fieldValidation the server default is Warn: pruned, one Warning header each.
    let mut extra = good_va("extra");
    extra["spec"]["foo"] = json!(1);
    extra["spec"]["variants"][0]["bar"] = json!(2);
    let resp = http.post(&url).json(&extra).send().await.expect("POST");
    assert_eq!(resp.status().as_u16(), 201);
    let warnings: Vec<String> = resp
        .headers()
        .get_all("warning")
        .iter()
        .filter_map(|v| v.to_str().ok().map(String::from))
        .collect();
    assert_eq!(
        warnings,
        [
            r#"299 - "unknown field \"spec.foo\"""#,
            r#"299 - "unknown field \"spec.variants[0].bar\"""#
        ]
    );
    let created: Value = resp.json().await.expect("object");
    assert!(created["spec"].get("foo").is_none());

    // A status write is validated too, and only its own part.
    let status_url = format!("{url}/extra/status");
    let resp = http
        .patch(&status_url)
        .header("content-type", "application/merge-patch+json")
        .body(json!({"status": {"currentReplicas": -3}}).to_string())
        .send()
        .await
        .expect("PATCH status");
    assert_eq!(resp.status().as_u16(), 422);
    let status: Value = resp.json().await.expect("Status JSON");
    assert_eq!(
        status["message"],
        "VariantAutoscaling.wvo.dev \"extra\" is invalid: status.currentReplicas: Invalid value: \
         -3: status.currentReplicas in body should be greater than or equal to 0"
    );
    // An object whose stored spec predates the schema (written by the admin handle, as if
    // before the CRD had its bounds) still takes a status write: the status schema alone
    // judges it, and the skipped-rules notice the bad spec causes is not the write's fault.
    let mut old = good_va("old");
    old["spec"]["maxReplicas"] = json!(1e18);
    if let Some(s) = old["spec"].as_object_mut() {
        s.remove("modelID");
    }
    api.create(&old).expect("admin create");
    let resp = http
        .patch(format!("{url}/old/status"))
        .header("content-type", "application/merge-patch+json")
        .body(json!({"status": {"currentReplicas": 2}}).to_string())
        .send()
        .await
        .expect("PATCH status");
    assert_eq!(resp.status().as_u16(), 200, "{:?}", resp.text().await);
    // Its spec is refused as soon as a write touches it.
    let resp = http
        .patch(format!("{url}/old"))
        .header("content-type", "application/merge-patch+json")
        .body(json!({"spec": {"minReplicas": 1}}).to_string())
        .send()
        .await
        .expect("PATCH spec");
    assert_eq!(resp.status().as_u16(), 422);

    let resp = http
        .post(format!("{url}?fieldValidation=Loose"))
        .json(&good_va("x"))
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status().as_u16(), 400);
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crd_with_a_rule_that_does_not_compile_is_refused() {
    let dir = Scratch::new("validate", "badcrd");
    let api = KubeApiServer::start(KubeApiOptions {
        run_controllers: false,
        ..KubeApiOptions::default()
    })
    .await
    .expect("emulator");
    dir.write("kubeconfig", &api.kubeconfig_yaml());
    let mut crd = crd();
    spec_schema(&mut crd)["x-kubernetes-validations"] =
        json!([{"rule": "(self.minReplicas > 0", "message": "broken"}]);
    let path = dir.write("crd.json", &crd.to_string());
    let run = kubectl(
        &dir.0,
        &["create", "-f", path.to_str().unwrap_or_default()],
        &[],
    )
    .await;
    assert_refused(
        &run,
        &[
            r#"The CustomResourceDefinition "variantautoscalings.wvo.dev" is invalid"#,
            r#"spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: Invalid value: "(self.minReplicas > 0": compilation failed: ERROR: <input>:1:22: Syntax error: missing ')' at '<EOF>'"#,
        ],
    );
    assert!(api
        .get(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            "",
            "variantautoscalings.wvo.dev"
        )
        .is_none());
    api.shutdown().await;
}
