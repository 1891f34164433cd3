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

    let v = view.read().expect("view");
    assert!(v.ready);
    assert_eq!(v.models.len(), 1);
    drop(v);
    assert!(metrics.encode().contains("wvo_desired_replicas"));

    // A second cycle with the same load changes nothing.
    let report = controller.cycle().await.expect("cycle");
    assert!(report.actuations.is_empty());
}
