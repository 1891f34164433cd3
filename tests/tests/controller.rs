//! The controller end to end, through the Kubernetes API emulator and the real kube client.

use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use wvo_e2e::*;

#[tokio::test]
async fn scales_deployments_to_the_plan_and_reports() {
    let cluster = Cluster::start().await;
    cluster
        .two_variant_va("llama", "meta-llama/Llama-3.1-8B-Instruct", "")
        .await;
    cluster.wait_ready("llama-h100", 1).await;
    cluster.set_load("meta-llama/Llama-3.1-8B-Instruct", 35.0);
    let (mut controller, view, metrics) = cluster.controller("wvo-0");
    let report = controller.cycle().await.expect("cycle");
    // 35 req/s: 2 H100 (20) + 5 L40S (15) = $14.70 is the cheapest cover (3 + 2 = $14.90,
    // 4 H100 = $16.40).
    assert_eq!(cluster.replicas("llama-h100").await, 2);
    assert_eq!(cluster.replicas("llama-l40s").await, 5);
    assert_eq!(report.actuations.len(), 2);
    cluster.wait_ready("llama-h100", 2).await;
    cluster.wait_ready("llama-l40s", 5).await;

    let va = cluster.get_va("llama").await;
    let status = va.status.clone().expect("status written");
    assert_eq!(status.desired_replicas, 7);
    assert_eq!(status.variants[0].desired_replicas, 2);
    assert!((status.cost_per_hour - 14.7).abs() < 1e-6);
    assert_eq!(condition(&va, "Optimized").expect("Optimized").0, "True");
    assert_eq!(
        condition(&va, "MetricsAvailable")
            .expect("MetricsAvailable")
            .0,
        "True"
    );
    assert_eq!(condition(&va, "Actuated").expect("Actuated").0, "True");
    assert_eq!(
        condition(&va, "CapacityConstrained")
            .expect("CapacityConstrained")
            .0,
        "False"
    );
    assert_eq!(
        condition(&va, "ProfileReady").expect("ProfileReady").0,
        "True"
    );
    assert_eq!(status.decisions.len(), 2);

    let events: Api<Event> = Api::namespaced(cluster.client.clone(), NS);
    let list = events.list(&ListParams::default()).await.expect("events");
    assert!(list
        .items
        .iter()
        .any(|e| e.reason.as_deref() == Some("ScaledUp")));

    {
        let v = view.read().expect("view");
        assert!(v.ready);
        assert_eq!(v.models.len(), 1);
    }
    assert!(metrics.encode().contains("wvo_desired_replicas"));
    // The per-model series follow the view the cycle published.
    {
        let text = metrics.encode();
        let v = view.read().expect("view");
        let model = &v.models[0];
        let labels = format!(
            r#"{{namespace="{}",va="{}",model="{}"}}"#,
            model.namespace, model.name, model.model_id
        );
        let value = |name: &str| -> Option<f64> {
            let prefix = format!("{name}{labels} ");
            text.lines()
                .find_map(|l| l.strip_prefix(&prefix))
                .and_then(|v| v.parse().ok())
        };
        assert_eq!(
            value("wvo_demand_requests_per_second"),
            Some(model.demand_rps),
            "{text}"
        );
        let capacity: f64 = model
            .variants
            .iter()
            .map(|d| f64::from(d.desired) * d.capacity_rps)
            .sum();
        assert_eq!(value("wvo_capacity_requests_per_second"), Some(capacity));
        assert!(
            capacity >= model.demand_rps,
            "{capacity} < {}",
            model.demand_rps
        );
        assert_eq!(value("wvo_capacity_constrained"), Some(0.0));
        assert_eq!(value("wvo_metrics_unknown"), Some(0.0));
        for a in &v.accelerators {
            assert!(text.contains(&format!(
                "wvo_gpus_available{{accelerator=\"{}\"}} {}",
                a.name, a.available
            )));
        }
    }

    // A second cycle with the same load changes nothing.
    let report = controller.cycle().await.expect("cycle");
    assert!(report.actuations.is_empty());
}

#[tokio::test]
async fn hpa_mode_bounds_the_hpa_and_leaves_the_deployment() {
    use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
    let cluster = Cluster::start().await;
    cluster
        .two_variant_va("qwen", "Qwen/Qwen2.5-7B-Instruct", "  actuation: hpa\n")
        .await;
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(cluster.client.clone(), NS);
    for target in ["qwen-h100", "qwen-l40s"] {
        let hpa: HorizontalPodAutoscaler = serde_json::from_value(serde_json::json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": target, "namespace": NS},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
                     "minReplicas": 1, "maxReplicas": 3}
        }))
        .expect("hpa");
        hpas.create(&Default::default(), &hpa)
            .await
            .expect("create hpa");
    }
    cluster.set_load("Qwen/Qwen2.5-7B-Instruct", 35.0);
    let (mut controller, _, _) = cluster.controller("wvo-0");
    controller.cycle().await.expect("cycle");
    let h100 = hpas.get("qwen-h100").await.expect("hpa");
    assert_eq!(h100.spec.min_replicas, Some(2));
    assert_eq!(h100.spec.max_replicas, 3);
    let l40s = hpas.get("qwen-l40s").await.expect("hpa");
    assert_eq!(l40s.spec.min_replicas, Some(5));
    assert_eq!(l40s.spec.max_replicas, 8);
    // Written by server-side apply: wvo's field manager owns the bounds, the HPA's author
    // keeps its scaleTargetRef.
    let managed = l40s.metadata.managed_fields.clone().unwrap_or_default();
    let wvo = managed
        .iter()
        .find(|m| m.manager.as_deref() == Some("wvo"))
        .unwrap_or_else(|| panic!("no managedFields entry of wvo: {managed:?}"));
    assert_eq!(wvo.operation.as_deref(), Some("Apply"));
    let fields = serde_json::to_value(&wvo.fields_v1).expect("fieldsV1");
    assert!(
        fields.pointer("/f:spec/f:minReplicas").is_some(),
        "{fields}"
    );
    assert!(
        fields.pointer("/f:spec/f:scaleTargetRef").is_none(),
        "{fields}"
    );
    assert_eq!(l40s.spec.scale_target_ref.name, "qwen-l40s");
    // The Deployments are the HPA's to scale, not wvo's.
    assert_eq!(cluster.replicas("qwen-h100").await, 1);
    assert_eq!(cluster.replicas("qwen-l40s").await, 0);
    let va = cluster.get_va("qwen").await;
    assert_eq!(condition(&va, "Actuated").expect("Actuated").0, "True");
}

#[tokio::test]
async fn metric_mode_exports_and_dry_run_touches_nothing() {
    let cluster = Cluster::start().await;
    cluster
        .two_variant_va("m1", "model-one", "  actuation: metric\n")
        .await;
    cluster
        .two_variant_va("m2", "model-two", "  dryRun: true\n")
        .await;
    cluster.set_load("model-one", 35.0);
    cluster.set_load("model-two", 35.0);
    let (mut controller, view, metrics) = cluster.controller("wvo-0");
    let report = controller.cycle().await.expect("cycle");
    assert!(report.actuations.is_empty(), "{:?}", report.actuations);
    for d in ["m1-h100", "m2-h100"] {
        assert_eq!(cluster.replicas(d).await, 1);
    }
    let text = metrics.encode();
    assert!(
        text.contains(
            r#"wvo_desired_replicas{namespace="llm",va="m1",variant="l40s",accelerator="L40S"} 5"#
        ),
        "{text}"
    );
    let dry = cluster.get_va("m2").await;
    let (status, reason, _) = condition(&dry, "Actuated").expect("Actuated");
    assert_eq!((status.as_str(), reason.as_str()), ("False", "DryRun"));
    assert_eq!(dry.status.expect("status").desired_replicas, 7);
    let v = view.read().expect("view");
    assert!(v.decisions.iter().all(|d| !d.actuated));
}

#[tokio::test]
async fn scale_down_waits_for_its_window() {
    let cluster = Cluster::start().await;
    cluster
        .two_variant_va("llama", "llama", "  scaleDownStabilizationSeconds: 2\n")
        .await;
    cluster.set_load("llama", 40.0);
    let (mut controller, _, _) = cluster.controller("wvo-0");
    let last_high = std::time::Instant::now();
    controller.cycle().await.expect("cycle");
    let up = (
        cluster.replicas("llama-h100").await,
        cluster.replicas("llama-l40s").await,
    );
    assert!(up.0 * 10 + up.1 * 3 >= 40, "{up:?}");
    cluster.wait_ready("llama-h100", up.0).await;
    cluster.wait_ready("llama-l40s", up.1).await;
    cluster.set_load("llama", 5.0);
    let started = std::time::Instant::now();
    controller.cycle().await.expect("cycle");
    assert_eq!(
        cluster.replicas("llama-h100").await,
        up.0,
        "no scale-down inside the window"
    );
    // Cycles keep running; the scale-down lands once the 2 s window has passed, not before.
    let deadline = started + std::time::Duration::from_secs(10);
    let down_at = loop {
        controller.cycle().await.expect("cycle");
        if cluster.replicas("llama-h100").await < up.0 {
            break std::time::Instant::now();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no scale-down after the window"
        );
        // Pacing between control cycles (the controller's interval), not synchronisation.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    // The window counts from the last high recommendation. (Scale-up of the cheaper L40S
    // variant for the new, small load happens at once; only removals wait.)
    assert!(down_at.duration_since(last_high).as_secs_f64() >= 2.0);
    let cost = |h: i32, l: i32| f64::from(h) * 4.1 + f64::from(l) * 1.3;
    let after = (
        cluster.replicas("llama-h100").await,
        cluster.replicas("llama-l40s").await,
    );
    assert!(cost(after.0, after.1) < cost(up.0, up.1));
}

#[tokio::test]
async fn pending_pods_move_demand_instead_of_freezing() {
    let cluster = Cluster::start().await;
    // The inventory claims 16 H100, but the nodes have only 8.
    cluster
        .set_inventory(&INVENTORY.replace("{name: H100, count: 8,", "{name: H100, count: 16,"))
        .await;
    cluster.two_variant_va("big", "big-model", "").await;
    cluster.set_load("big-model", 120.0);
    let (mut controller, _, _) = cluster.controller("wvo-0");
    let report = controller.cycle().await.expect("cycle");
    assert_eq!(cluster.replicas("big-h100").await, 12, "{report:?}");
    // 8 run, 4 stay Pending; the next cycles plan around them.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (h100, l40s) = loop {
        controller.cycle().await.expect("cycle");
        let h = cluster.replicas("big-h100").await;
        let l = cluster.replicas("big-l40s").await;
        if h == 8 && l > 0 {
            break (h, l);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "demand never moved: {h} H100, {l} L40S"
        );
        // Pacing between control cycles, not synchronisation.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(
        f64::from(h100) * 10.0 + f64::from(l40s) * 3.0 >= 120.0,
        "{h100} H100 + {l40s} L40S"
    );
    cluster.wait_ready("big-h100", 8).await;
    let va = cluster.get_va("big").await;
    assert!(va.status.expect("status").variants[0].pending_replicas == 0 || h100 == 8);
}

#[tokio::test]
async fn bad_inputs_get_a_clear_condition_and_touch_nothing() {
    let cluster = Cluster::start().await;
    // Unknown accelerator.
    cluster.deployment("bad-h200", "NVIDIA-H200", 1, 1).await;
    cluster
        .va(&format!(
            "apiVersion: wvo.dev/v1alpha1\nkind: VariantAutoscaling\nmetadata: {{name: bad, namespace: {NS}}}\nspec:\n  modelID: bad\n  variants:\n  - {{name: h200, scaleTargetRef: {{name: bad-h200}}, accelerator: H200, maxRequestsPerSecond: 10}}\n"
        ))
        .await;
    // A target that does not exist, beside a good variant.
    cluster.deployment("lost-l40s", "NVIDIA-L40S", 1, 0).await;
    cluster
        .va(&format!(
            "apiVersion: wvo.dev/v1alpha1\nkind: VariantAutoscaling\nmetadata: {{name: lost, namespace: {NS}}}\nspec:\n  modelID: lost\n  variants:\n  - {{name: h100, scaleTargetRef: {{name: no-such-deployment}}, accelerator: H100, maxRequestsPerSecond: 10}}\n  - {{name: l40s, scaleTargetRef: {{name: lost-l40s}}, accelerator: L40S, maxRequestsPerSecond: 3}}\n"
        ))
        .await;
    cluster.set_load("bad", 50.0);
    cluster.set_load("lost", 9.0);
    let (mut controller, _, _) = cluster.controller("wvo-0");
    let report = controller.cycle().await.expect("cycle");
    assert_eq!(report.refused.len(), 1);

    let bad = cluster.get_va("bad").await;
    let (status, reason, message) = condition(&bad, "Optimized").expect("Optimized");
    assert_eq!((status.as_str(), reason.as_str()), ("False", "InvalidSpec"));
    assert!(
        message.contains("spec.variants[0].accelerator") && message.contains("H200"),
        "{message}"
    );
    assert_eq!(cluster.replicas("bad-h200").await, 1);

    let lost = cluster.get_va("lost").await;
    let (status, reason, message) = condition(&lost, "Actuated").expect("Actuated");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "TargetNotFound")
    );
    assert!(message.contains("no-such-deployment"), "{message}");
    // The good variant still serves the model: 9 req/s on 3 L40S.
    assert_eq!(cluster.replicas("lost-l40s").await, 3);

    // A bad inventory is refused with an Event; the last good one stays in force.
    cluster
        .set_inventory("accelerators:\n- {name: H100, count: -3, costPerHour: 4.1}\n")
        .await;
    cluster.set_load("lost", 15.0);
    controller
        .cycle()
        .await
        .expect("cycle with the last good inventory");
    assert_eq!(cluster.replicas("lost-l40s").await, 5);
    let lost = cluster.get_va("lost").await;
    let (_, reason, message) = condition(&lost, "Optimized").expect("Optimized");
    assert_eq!(reason, "StaleInventory");
    assert!(message.contains("inventory refused"), "{message}");
    let events: Api<Event> = Api::namespaced(cluster.client.clone(), "wvo-system");
    let list = events.list(&ListParams::default()).await.expect("events");
    assert!(list
        .items
        .iter()
        .any(|e| e.reason.as_deref() == Some("InvalidInventory")));
}

#[tokio::test]
async fn conflicts_are_retried() {
    let cluster = Cluster::start().await;
    cluster.two_variant_va("llama", "llama", "").await;
    cluster.set_load("llama", 35.0);
    let (mut controller, _, _) = cluster.controller("wvo-0");
    cluster.api.inject_conflicts(2);
    let report = controller.cycle().await.expect("cycle");
    assert_eq!(cluster.replicas("llama-h100").await, 2);
    assert_eq!(cluster.replicas("llama-l40s").await, 5);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
}

#[tokio::test]
async fn a_refused_write_is_reported_as_actuation_failed_and_not_retried() {
    let cluster = Cluster::start().await;
    cluster.two_variant_va("llama", "llama", "").await;
    cluster.set_load("llama", 35.0);
    let (mut controller, _, metrics) = cluster.controller("wvo-0");
    // The cycle's first writes are its two /scale patches: both are forbidden.
    cluster.api.fail_next_writes(2, 403);
    cluster.api.clear_requests();
    let report = controller.cycle().await.expect("cycle");
    assert!(report.actuations.is_empty(), "{:?}", report.actuations);
    assert_eq!(report.errors.len(), 2, "{:?}", report.errors);
    assert!(
        report.errors.iter().all(|e| e.contains("403 Forbidden")),
        "{:?}",
        report.errors
    );
    let scale_patches = cluster
        .api
        .requests()
        .iter()
        .filter(|r| r.verb == "patch" && r.subresource == "scale")
        .count();
    assert_eq!(scale_patches, 2, "a 403 is not retried");
    assert_eq!(cluster.replicas("llama-h100").await, 1);
    let va = cluster.get_va("llama").await;
    let (status, reason, message) = condition(&va, "Actuated").expect("Actuated");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "ActuationFailed")
    );
    assert!(
        message.contains("ClusterRole"),
        "says what to do: {message}"
    );
    let text = metrics.encode();
    assert!(
        text.contains(r#"wvo_errors_total{kind="actuate"} 2"#),
        "{text}"
    );
}

#[tokio::test]
async fn whatif_returns_what_wvo_plan_returns() {
    let cluster = Cluster::start().await;
    cluster.two_variant_va("llama", "llama", "").await;
    cluster.set_load("llama", 35.0);
    let (mut controller, view, metrics) = cluster.controller("wvo-0");
    controller.cycle().await.expect("cycle");
    let input = view
        .read()
        .expect("view")
        .last_input
        .clone()
        .expect("input");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = wvo_controller::status_api::router(view.clone(), metrics);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let body = serde_json::to_vec(&input).expect("json");
    let response = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        post(addr, "/api/v1/whatif", &body),
    )
    .await
    .expect("whatif answered in time");
    let mut from_api: serde_json::Value = serde_json::from_str(&response).expect("plan JSON");
    let mut expected =
        serde_json::to_value(wvo_optimizer::plan(&input).expect("plan")).expect("json");
    from_api["solveMillis"] = serde_json::Value::Null;
    expected["solveMillis"] = serde_json::Value::Null;
    assert_eq!(from_api, expected);
    server.abort();
}

/// A minimal HTTP/1.1 POST on loopback; returns the body.
async fn post(addr: std::net::SocketAddr, path: &str, body: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    stream.write_all(body).await.expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8_lossy(&raw).to_string();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn leader_failover_continues_without_undoing_decisions() {
    use std::time::{Duration, Instant};
    use wvo_controller::runner::{self, LeaderConfig};
    let cluster = Cluster::start().await;
    cluster.two_variant_va("llama", "llama", "").await;
    cluster.set_load("llama", 35.0);
    let lease = |identity: &str| LeaderConfig {
        namespace: "wvo-system".into(),
        name: "wvo-leader".into(),
        identity: identity.into(),
        duration_seconds: 2,
        grace_seconds: 1,
    };
    let start = |identity: &'static str| {
        let (reconciler, view, metrics) = cluster.controller(identity);
        let client = cluster.api.client().expect("client");
        let config = lease(identity);
        async move {
            let election = runner::elect(client, &config).await.expect("elect");
            let leader = election.leader.clone();
            let task = tokio::spawn(runner::run(
                reconciler,
                view.clone(),
                Some(metrics),
                Duration::from_millis(200),
                leader,
                std::future::pending(),
            ));
            (election, task, view)
        }
    };
    let (first, first_task, first_view) = start("wvo-0").await;
    eventually(10, "wvo-0 to lead and act", || {
        let cluster = &cluster;
        async move { (cluster.replicas("llama-l40s").await == 5).then_some(()) }
    })
    .await;
    assert!(first_view.read().expect("view").leader);
    let (_second, second_task, second_view) = start("wvo-1").await;
    tokio::time::sleep(Duration::from_millis(600)).await; // a few cycles of the follower
    assert!(!second_view.read().expect("view").leader, "two leaders");

    // The leader dies without releasing its Lease.
    let died = Instant::now();
    first_task.abort();
    drop(first);
    eventually(10, "wvo-1 to take over", || {
        let view = second_view.clone();
        async move { view.read().ok()?.leader.then_some(()) }
    })
    .await;
    let takeover = died.elapsed();
    println!("takeover after {takeover:?} (lease 2 s)");
    assert!(
        takeover <= Duration::from_secs(3),
        "took over after {takeover:?}"
    );
    // The new leader keeps the running allocation (same load: nothing to undo) ...
    eventually(10, "wvo-1 to complete a cycle", || {
        let view = second_view.clone();
        async move { view.read().ok()?.ready.then_some(()) }
    })
    .await;
    assert_eq!(cluster.replicas("llama-h100").await, 2);
    assert_eq!(cluster.replicas("llama-l40s").await, 5);
    // ... and acts on new load.
    cluster.set_load("llama", 60.0);
    eventually(10, "wvo-1 to scale up for the new load", || {
        let cluster = &cluster;
        async move {
            let h = cluster.replicas("llama-h100").await;
            let l = cluster.replicas("llama-l40s").await;
            (f64::from(h) * 10.0 + f64::from(l) * 3.0 >= 60.0).then_some(())
        }
    })
    .await;
    // A dropped watch (the emulator closes every open stream) does not stop it either.
    cluster.api.drop_watches();
    cluster.set_load("llama", 80.0);
    eventually(10, "wvo-1 to keep acting after dropped watches", || {
        let cluster = &cluster;
        async move {
            let h = cluster.replicas("llama-h100").await;
            let l = cluster.replicas("llama-l40s").await;
            (f64::from(h) * 10.0 + f64::from(l) * 3.0 >= 80.0).then_some(())
        }
    })
    .await;
    second_task.abort();
}

/// A VA whose value the types cannot read (`maxReplicas: 1e18`, stored before the CRD had
/// its `maximum`: the emulator, like a real apiserver, now refuses it through the API, so it
/// is stored with the admin handle) is refused on its own: every other VA is planned and
/// acted on, and the bad one's status and Event name it and the field.
#[tokio::test]
async fn an_undecodable_va_is_named_and_the_others_are_planned() {
    use kube::api::{DynamicObject, PostParams};
    use kube::core::ApiResource;
    let cluster = Cluster::start().await;
    cluster.two_variant_va("good", "good-model", "").await;
    cluster
        .deployment("huge-h100", "NVIDIA-H100-80GB-HBM3", 1, 1)
        .await;
    let resource = ApiResource::erase::<wvo_api::crd::VariantAutoscaling>(&());
    let raw: Api<DynamicObject> = Api::namespaced_with(cluster.client.clone(), NS, &resource);
    let huge = serde_json::json!({
        "apiVersion": "wvo.dev/v1alpha1", "kind": "VariantAutoscaling",
        "metadata": {"name": "huge", "namespace": NS},
        "spec": {"modelID": "huge-model", "maxReplicas": 1_000_000_000_000_000_000_u64, "variants": [
            {"name": "h100", "scaleTargetRef": {"name": "huge-h100"}, "accelerator": "H100",
             "maxRequestsPerSecond": 10}]}
    });
    let through_api: DynamicObject = serde_json::from_value(huge.clone()).expect("object");
    let refused = raw.create(&PostParams::default(), &through_api).await;
    assert!(
        matches!(&refused, Err(kube::Error::Api(e)) if e.code == 422 && e.message.contains("spec.maxReplicas")),
        "the bounded CRD refuses 1e18 through the API: {refused:?}"
    );
    cluster
        .api
        .create(&huge)
        .expect("stored as if from before the bound");
    cluster.set_load("good-model", 25.0);
    cluster.set_load("huge-model", 50.0);
    let (mut controller, _, _) = cluster.controller("wvo-0");
    let report = controller.cycle().await.expect("the cycle runs");
    assert_eq!(report.refused.len(), 1, "{:?}", report.refused);
    assert!(
        report.refused[0].0.ends_with("/huge"),
        "{:?}",
        report.refused
    );
    // The good model is planned: its replicas now serve its 25 req/s (H100 10 req/s, L40S
    // 3 req/s; no headroom in the fixture), where 1 H100 served 10.
    let served = 10 * cluster.replicas("good-h100").await + 3 * cluster.replicas("good-l40s").await;
    assert!(served >= 25, "{served} req/s");
    // The bad one is named with its field, and its workload is left as it is.
    let huge = raw.get("huge").await.expect("get");
    let conditions = huge.data["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let optimized = conditions
        .iter()
        .find(|c| c["type"] == "Optimized")
        .expect("an Optimized condition");
    assert_eq!(optimized["status"], "False");
    assert_eq!(optimized["reason"], "InvalidSpec");
    let message = optimized["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("llm/huge") && message.contains("spec.maxReplicas"),
        "{message}"
    );
    assert_eq!(cluster.replicas("huge-h100").await, 1);

    // Said once: once the controller's cache holds the refusal it wrote, later cycles do not
    // write that status again (one patch per change, not one per cycle).
    let huge_status_patches = || {
        cluster
            .api
            .requests()
            .iter()
            .filter(|r| {
                r.verb == "patch"
                    && r.resource == "variantautoscalings"
                    && r.subresource == "status"
                    && r.name == "huge"
            })
            .count()
    };
    // The watch cache lags the write a moment: cycle until a cycle writes nothing new.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let before = huge_status_patches();
        controller.cycle().await.expect("cycle");
        if huge_status_patches() == before {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the refusal is written again every cycle"
        );
    }
    let settled = huge_status_patches();
    let written = raw
        .get("huge")
        .await
        .expect("get")
        .metadata
        .resource_version;
    for _ in 0..3 {
        controller.cycle().await.expect("cycle");
    }
    let now = raw.get("huge").await.expect("get");
    assert_eq!(
        huge_status_patches(),
        settled,
        "the refusal is not written again"
    );
    assert_eq!(now.metadata.resource_version, written);
}

/// Two VAs on one Deployment: the older owns it and sets it; the other is planned around it
/// and reports `Actuated=False, TargetConflict` naming the owner. The replicas do not flap
/// between the two plans.
#[tokio::test]
async fn two_vas_on_one_deployment_do_not_fight_and_the_conflict_is_named() {
    let cluster = Cluster::start().await;
    cluster.two_variant_va("first", "first-model", "").await;
    // The second VA names the first one's H100 Deployment (and its own L40S one).
    cluster.deployment("second-l40s", "NVIDIA-L40S", 1, 0).await;
    cluster
        .va(&format!(
            "apiVersion: wvo.dev/v1alpha1\nkind: VariantAutoscaling\nmetadata: {{name: second, namespace: {NS}}}\nspec:\n  modelID: second-model\n  variants:\n  - {{name: h100, scaleTargetRef: {{name: first-h100}}, accelerator: H100, maxRequestsPerSecond: 10}}\n  - {{name: l40s, scaleTargetRef: {{name: second-l40s}}, accelerator: L40S, maxRequestsPerSecond: 3}}\n"
        ))
        .await;
    // Loads that ask for different H100 counts.
    cluster.set_load("first-model", 30.0);
    cluster.set_load("second-model", 5.0);
    let (mut controller, _, _) = cluster.controller("wvo-0");
    let mut seen = Vec::new();
    for _ in 0..4 {
        controller.cycle().await.expect("cycle");
        seen.push(cluster.replicas("first-h100").await);
    }
    assert!(
        seen.windows(2).all(|w| w[0] == w[1]),
        "first-h100 flapped: {seen:?}"
    );
    let second = cluster.get_va("second").await;
    let (status, reason, message) = condition(&second, "Actuated").expect("Actuated");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "TargetConflict")
    );
    assert!(
        message.contains("first-h100") && message.contains("llm/first"),
        "{message}"
    );
    let first = cluster.get_va("first").await;
    let (status, reason, _) = condition(&first, "Actuated").expect("Actuated");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Applied"));
}

/// A VA whose workload cannot be read (its target has no `/scale` subresource) is reported on
/// its own; the other VAs are planned (one failed read aborted every model's cycle).
#[tokio::test]
async fn an_unreadable_workload_stops_only_its_own_va() {
    let cluster = Cluster::start().await;
    cluster.two_variant_va("good", "good-model", "").await;
    cluster
        .api
        .create(&serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "not-a-workload", "namespace": NS}, "data": {}}))
        .expect("configmap");
    cluster
        .va(&format!(
            "apiVersion: wvo.dev/v1alpha1\nkind: VariantAutoscaling\nmetadata: {{name: odd, namespace: {NS}}}\nspec:\n  modelID: odd-model\n  variants:\n  - {{name: h100, scaleTargetRef: {{apiVersion: v1, kind: ConfigMap, name: not-a-workload}}, accelerator: H100, maxRequestsPerSecond: 10}}\n"
        ))
        .await;
    cluster.set_load("good-model", 25.0);
    cluster.set_load("odd-model", 10.0);
    let (mut controller, _, _) = cluster.controller("wvo-0");
    let report = controller.cycle().await.expect("the cycle runs");
    assert!(
        report.errors.iter().any(|e| e.contains("llm/odd")),
        "{:?}",
        report.errors
    );
    let served = 10 * cluster.replicas("good-h100").await + 3 * cluster.replicas("good-l40s").await;
    assert!(served >= 25, "{served} req/s");
    let odd = cluster.get_va("odd").await;
    let (status, reason, message) = condition(&odd, "Optimized").expect("Optimized");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "WorkloadUnreadable")
    );
    assert!(
        message.contains("spec.variants[0].scaleTargetRef"),
        "{message}"
    );
}

#[tokio::test]
async fn a_steady_cycle_reads_caches_and_writes_nothing() {
    let cluster = Cluster::start().await;
    cluster.two_variant_va("llama", "llama", "").await;
    cluster.two_variant_va("qwen", "qwen", "").await;
    cluster.set_load("llama", 12.0);
    cluster.set_load("qwen", 4.0);
    // As `wvo run` has it (demand estimation with its trailing window, forecast on).
    let (mut controller, _, _) =
        cluster.controller_with(wvo_controller::reconciler::ControllerConfig {
            identity: "wvo-0".into(),
            ..wvo_controller::reconciler::ControllerConfig::default()
        });
    let va_status = |cluster: &Cluster, name: &str| {
        cluster
            .api
            .get("wvo.dev/v1alpha1", "VariantAutoscaling", NS, name)
            .map(|v| v["status"].clone())
            .unwrap_or_default()
    };
    // Scale, wait for the pods, and let the controller see them.
    controller.cycle().await.expect("first cycle");
    eventually(30, "every Deployment ready at its replicas", || async {
        cluster
            .api
            .list("apps/v1", "Deployment", Some(NS))
            .iter()
            .all(|d| {
                d["spec"]["replicas"].as_u64().unwrap_or(1)
                    == d["status"]["readyReplicas"].as_u64().unwrap_or(0)
            })
            .then_some(())
    })
    .await;
    // Cycles until one writes nothing: the controller's caches follow the emulator a moment
    // later (deployment status, then each pod's Ready time, which is a start-up sample), and a
    // cycle that sees something new writes it. A controller that wrote every cycle would
    // never get here.
    let writes = |cluster: &Cluster| {
        cluster
            .api
            .requests()
            .into_iter()
            .filter(|r| {
                r.user == CONTROLLER_USER && !matches!(r.verb.as_str(), "get" | "list" | "watch")
            })
            .count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        cluster.api.clear_requests();
        controller.cycle().await.expect("cycle");
        if writes(&cluster) == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "every cycle for 30 s wrote something"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let before = [va_status(&cluster, "llama"), va_status(&cluster, "qwen")];
    cluster.api.clear_requests();
    let report = controller.cycle().await.expect("steady cycle");
    assert!(report.actuations.is_empty(), "{:?}", report.actuations);
    let after = [va_status(&cluster, "llama"), va_status(&cluster, "qwen")];
    let made: Vec<String> = cluster
        .api
        .requests()
        .into_iter()
        .filter(|r| r.user == CONTROLLER_USER)
        .map(|r| {
            format!(
                "{} {} {}/{}",
                r.verb,
                r.rbac_resource(),
                r.namespace,
                r.name
            )
        })
        .collect();
    // Reads come from the watch caches: no GET or LIST of a workload, its /scale or its
    // pods; the inventory ConfigMap is the one read per cycle.
    assert!(
        made.iter()
            .all(|r| r.starts_with("get configmaps wvo-system/wvo-inventory")),
        "a steady cycle made {made:#?}\nstatus before {before:#?}\nafter {after:#?}"
    );
}

/// A VA whose minimums cannot all be placed (valid per the CRD: 20 H100 replicas on an
/// inventory of 8) is planned at what fits and says so; the other VA is planned as usual
/// (one such VA used to fail the global plan for everyone).
#[tokio::test]
async fn impossible_minimums_are_named_and_the_others_are_planned() {
    let cluster = Cluster::start().await;
    cluster.two_variant_va("good", "good-model", "").await;
    cluster
        .deployment("greedy-h100", "NVIDIA-H100-80GB-HBM3", 1, 1)
        .await;
    cluster
        .va(&format!(
            "apiVersion: wvo.dev/v1alpha1\nkind: VariantAutoscaling\nmetadata: {{name: greedy, namespace: {NS}}}\nspec:\n  modelID: greedy-model\n  variants:\n  - {{name: h100, scaleTargetRef: {{name: greedy-h100}}, accelerator: H100, maxRequestsPerSecond: 10, minReplicas: 20}}\n"
        ))
        .await;
    cluster.set_load("good-model", 12.0);
    cluster.set_load("greedy-model", 1.0);
    let (mut controller, _, _) = cluster.controller("wvo-0");
    let report = controller.cycle().await.expect("the cycle plans");
    let outcome = report.outcome.expect("a plan");
    let h100: u32 = outcome
        .models
        .iter()
        .flat_map(|m| &m.variants)
        .filter(|v| v.accelerator == "H100")
        .map(|v| v.desired)
        .sum();
    assert!(h100 <= 8, "{h100} H100 replicas planned on 8 GPUs");

    let greedy = cluster.get_va("greedy").await;
    let (status, reason, message) =
        condition(&greedy, "CapacityConstrained").expect("CapacityConstrained");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "MinimumsDoNotFit")
    );
    assert!(
        message.contains("minReplicas 20") && message.contains("inventory has 8"),
        "{message}"
    );
    assert_eq!(
        condition(&greedy, "Optimized").expect("Optimized").0,
        "True"
    );

    let good = cluster.get_va("good").await;
    let (status, reason, _) = condition(&good, "Optimized").expect("Optimized");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Planned"));
    let good_status = good.status.expect("status");
    assert!(
        good_status.desired_replicas >= 1
            && good_status
                .variants
                .iter()
                .map(|v| v.capacity_rps * f64::from(v.desired_replicas))
                .sum::<f64>()
                >= 12.0,
        "the good model is served: {:?}",
        good_status.variants
    );
}

/// The notes of the inventory Events in `wvo-system` of `reason`, newest first.
async fn inventory_notes(cluster: &Cluster, reason: &str) -> Vec<String> {
    let events: Api<Event> = Api::namespaced(cluster.client.clone(), "wvo-system");
    let mut list: Vec<Event> = events
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .collect();
    list.sort_by_key(|e| std::cmp::Reverse(e.event_time.as_ref().map(|t| t.0)));
    list.into_iter().filter_map(|e| e.note).collect()
}

#[tokio::test]
async fn a_second_inventory_refusal_gets_its_own_event_and_the_refusal_stays_until_fixed() {
    // Was: the second refusal was folded into the first Event (same key, stale note), and the
    // VAs went back to Planned one cycle after a refusal while the text was still bad.
    let cluster = Cluster::start().await;
    cluster.two_variant_va("llama", "llama", "").await;
    cluster.set_load("llama", 35.0);
    let (mut controller, _, _) = cluster.controller("wvo-0");
    // The first cycle starts the watch cache and waits for its first list.
    controller
        .cycle()
        .await
        .expect("cycle with a good inventory");
    let optimized = |va: &wvo_api::crd::VariantAutoscaling| {
        let (status, reason, message) = condition(va, "Optimized").expect("Optimized");
        assert_eq!(status, "True", "{message}");
        (reason, message)
    };
    assert_eq!(optimized(&cluster.get_va("llama").await).0, "Planned");

    // Bad text A: refused every cycle, one Event naming it.
    cluster
        .set_inventory("accelerators:\n- {name: H100, count: -3, costPerHour: 4.1}\n")
        .await;
    for cycle in 0..3 {
        controller
            .cycle()
            .await
            .expect("cycle with the last good inventory");
        let (reason, message) = optimized(&cluster.get_va("llama").await);
        assert_eq!(reason, "StaleInventory", "cycle {cycle}: {message}");
        assert!(
            message.contains("accelerators[0].count")
                && message.ends_with("planned with the last good inventory"),
            "cycle {cycle}: {message}"
        );
    }
    let notes = inventory_notes(&cluster, "InvalidInventory").await;
    assert_eq!(notes.len(), 1, "one Event for A: {notes:?}");
    assert!(notes[0].contains("accelerators[0].count"), "{notes:?}");

    // Bad text B: a new Event with B's note (not a series of A's under A's note).
    cluster
        .set_inventory("accelerators:\n- {name: H100, count: 16, costPerHour: -1}\n")
        .await;
    controller
        .cycle()
        .await
        .expect("cycle with the last good inventory");
    let notes = inventory_notes(&cluster, "InvalidInventory").await;
    assert_eq!(notes.len(), 2, "one Event per cause: {notes:?}");
    assert!(
        notes[0].contains("accelerators[0].costPerHour")
            && notes[0].contains("the last good inventory stays in force"),
        "the newest names B: {notes:?}"
    );
    let (reason, message) = optimized(&cluster.get_va("llama").await);
    assert_eq!(reason, "StaleInventory");
    assert!(message.contains("accelerators[0].costPerHour"), "{message}");

    // Good again: Planned.
    cluster.set_inventory(INVENTORY).await;
    controller
        .cycle()
        .await
        .expect("cycle with a good inventory");
    assert_eq!(optimized(&cluster.get_va("llama").await).0, "Planned");

    // A missing key is refused with its own reason, and stays so.
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(cluster.client.clone(), "wvo-system");
    cms.patch(
        "wvo-inventory",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(serde_json::json!({"data": {"inventory.yaml": null}})),
    )
    .await
    .expect("remove the key");
    for _ in 0..2 {
        controller
            .cycle()
            .await
            .expect("cycle with the last good inventory");
        let (reason, message) = optimized(&cluster.get_va("llama").await);
        assert_eq!(reason, "StaleInventory");
        assert!(message.contains("no data key inventory.yaml"), "{message}");
    }
    assert_eq!(
        inventory_notes(&cluster, "InventoryKeyMissing").await.len(),
        1
    );
}

/// The Events of the refusals of VA `name`, by reason: (reason, note).
async fn va_refusal_events(cluster: &Cluster, name: &str) -> Vec<(String, String)> {
    let events: Api<Event> = Api::namespaced(cluster.client.clone(), NS);
    events
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
        .collect()
}

/// Found by the fault soak (tests/tests/soak.rs, seed 14, cycle 125): a refusal's Event that
/// failed (500) while its status condition was written was never published again, since the
/// status said the refusal was not new. It is published at the next cycle now, once.
#[tokio::test]
async fn a_refusal_event_that_failed_is_published_again_once() {
    let cluster = Cluster::start().await;
    let (mut controller, _, _) = cluster.controller("wvo-0");
    // The first cycle starts the watch caches.
    controller.cycle().await.expect("the cycle runs");
    // An undecodable VA and one the admission refuses, one after the other, each in a cycle
    // whose first write (its refusal Event) fails; the status patch after it succeeds.
    for (name, spec) in [
        (
            "huge",
            serde_json::json!({"modelID": "huge", "maxReplicas": 1e18, "variants": [
                {"name": "h100", "scaleTargetRef": {"name": "huge-h100"}, "accelerator": "H100",
                 "maxRequestsPerSecond": 10}]}),
        ),
        (
            "minmax",
            serde_json::json!({"modelID": "minmax", "variants": [
                {"name": "h100", "scaleTargetRef": {"name": "minmax-h100"}, "accelerator": "H100",
                 "maxRequestsPerSecond": 10, "minReplicas": 3, "maxReplicas": 1}]}),
        ),
    ] {
        cluster
            .api
            .create(
                &serde_json::json!({"apiVersion": "wvo.dev/v1alpha1", "kind": "VariantAutoscaling",
                "metadata": {"name": name, "namespace": NS}, "spec": spec}),
            )
            .expect("create");
        eventually(10, "the VA in the controller's cache", || {
            let seen = controller.sees_va(NS, name);
            async move { seen.then_some(()) }
        })
        .await;
        cluster.api.fail_next_writes(1, 500);
        controller.cycle().await.expect("the cycle runs");
        let va = cluster
            .api
            .get("wvo.dev/v1alpha1", "VariantAutoscaling", NS, name)
            .expect("the VA");
        assert_eq!(
            va.pointer("/status/conditions/0/reason"),
            Some(&serde_json::json!("InvalidSpec")),
            "condition written: {va}"
        );
        assert!(
            va_refusal_events(&cluster, name).await.is_empty(),
            "the Event failed"
        );
        // The next cycles publish it, once (the same note folds into its series).
        controller.cycle().await.expect("the cycle runs");
        controller.cycle().await.expect("the cycle runs");
        let events = va_refusal_events(&cluster, name).await;
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].0, "InvalidSpec");
        assert!(events[0].1.contains("maxReplicas"), "{events:?}");
        // Gone before the next one (its status is patched every cycle).
        cluster
            .api
            .delete("wvo.dev/v1alpha1", "VariantAutoscaling", NS, name)
            .expect("delete");
        eventually(10, "the VA gone from the controller's cache", || {
            let seen = controller.sees_va(NS, name);
            async move { (!seen).then_some(()) }
        })
        .await;
    }
}
