//! Leader election against the emulator with `kube-lease-manager` (which locks through
//! server-side apply field-manager conflicts), and apply conflicts with Update writers.

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube_lease_manager::LeaseManagerBuilder;
use serde_json::json;
use std::time::Duration;
use tokio::sync::watch;
use wvo_sim::kube_api::{KubeApiOptions, KubeApiServer};

async fn wait_leader(rx: &mut watch::Receiver<bool>, deadline: Duration) -> bool {
    tokio::time::timeout(deadline, rx.wait_for(|leader| *leader))
        .await
        .is_ok_and(|r| r.is_ok())
}

#[tokio::test]
async fn lease_manager_failover_to_the_second_replica() {
    let api = KubeApiServer::start(KubeApiOptions::default())
        .await
        .unwrap();
    let manager = |identity: &'static str| {
        let client = api.client().unwrap();
        async move {
            LeaseManagerBuilder::new(client, "wvo-leader")
                .with_namespace("default")
                .with_identity(identity)
                .with_duration(2)
                .with_grace(1)
                .build()
                .await
                .expect("lease manager")
                .watch()
                .await
        }
    };
    let (mut rx_a, task_a) = manager("replica-a").await;
    assert!(
        wait_leader(&mut rx_a, Duration::from_secs(10)).await,
        "a leads"
    );
    let (mut rx_b, task_b) = manager("replica-b").await;
    // b does not take over a lease a keeps renewing.
    assert!(
        !wait_leader(&mut rx_b, Duration::from_secs(3)).await,
        "b must wait"
    );
    assert!(*rx_a.borrow(), "a still leads");
    // a dies without releasing: b takes over after the lease expires.
    task_a.abort();
    assert!(
        wait_leader(&mut rx_b, Duration::from_secs(15)).await,
        "b takes over within the lease period plus backoff"
    );
    let lease = api
        .get("coordination.k8s.io/v1", "Lease", "default", "wvo-leader")
        .expect("lease exists");
    assert_eq!(lease["spec"]["holderIdentity"], "replica-b");
    drop(rx_b);
    let _ = tokio::time::timeout(Duration::from_secs(5), task_b).await;
}

#[tokio::test]
async fn apply_conflicts_with_the_creator_unless_forced() {
    let api = KubeApiServer::start(KubeApiOptions::default())
        .await
        .unwrap();
    let deploys: Api<Deployment> = Api::namespaced(api.client().unwrap(), "default");
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "v"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "v"}},
                 "template": {"metadata": {"labels": {"app": "v"}},
                              "spec": {"containers": [{"name": "c", "image": "i"}]}}}
    }))
    .unwrap();
    let pp = PostParams {
        field_manager: Some("kubectl-create".into()),
        ..PostParams::default()
    };
    let created = deploys.create(&pp, &d).await.unwrap();
    let mf = created.metadata.managed_fields.unwrap();
    assert_eq!(mf[0].manager.as_deref(), Some("kubectl-create"));
    assert_eq!(mf[0].operation.as_deref(), Some("Update"));
    let scale_to = |n: i32| {
        Patch::Apply(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "v"}, "spec": {"replicas": n}}))
    };
    // Same value: shared ownership, no conflict.
    deploys
        .patch("v", &PatchParams::apply("wvo"), &scale_to(1))
        .await
        .expect("same value applies");
    let err = deploys
        .patch("v", &PatchParams::apply("wvo"), &scale_to(3))
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
            assert!(s.message.contains("kubectl-create"), "{}", s.message);
            assert!(s.message.contains(".spec.replicas"), "{}", s.message);
        }
        other => panic!("expected 409, got {other:?}"),
    }
    let forced = deploys
        .patch("v", &PatchParams::apply("wvo").force(), &scale_to(3))
        .await
        .unwrap();
    assert_eq!(forced.spec.replicas, Some(3));
}
