//! The emulator's deployment controller, scheduler and kubelet, seen through the real
//! `kube` client: replicas become Pods on matching GPU nodes, Pending when GPUs run out,
//! removed Pending-first on scale-down.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use std::future::Future;
use std::time::Duration;
use wvo_sim::kube_api::{accelerator_node, gpu_node, KubeApiHandle, KubeApiOptions, KubeApiServer};

const DEADLINE: Duration = Duration::from_secs(10);
const H100: &str = "NVIDIA-H100-80GB-HBM3";
const L40S: &str = "NVIDIA-L40S";

async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    tokio::time::timeout(DEADLINE, async {
        loop {
            if let Some(v) = f().await {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

fn deployment(name: &str, replicas: i32, product: &str, gpus: u32) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "llm"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name, "wvo.dev/variant": name}},
                "spec": {
                    "nodeSelector": {"nvidia.com/gpu.product": product},
                    "containers": [{"name": "vllm", "image": "vllm/vllm-openai",
                        "resources": {"limits": {"nvidia.com/gpu": gpus.to_string()}}}]
                }
            }
        }
    }))
    .expect("deployment")
}

#[derive(Debug, Default, PartialEq)]
struct PodView {
    running: Vec<(String, String)>,
    pending: Vec<String>,
}

async fn pods_of(pods: &Api<Pod>, app: &str) -> PodView {
    let list = pods
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .expect("list pods");
    let mut v = PodView::default();
    for p in list.items {
        let name = p.metadata.name.clone().unwrap_or_default();
        let status = p.status.clone().unwrap_or_default();
        match status.phase.as_deref() {
            Some("Running") => v
                .running
                .push((name, p.spec.and_then(|s| s.node_name).unwrap_or_default())),
            _ => v.pending.push(name),
        }
    }
    v
}

async fn cluster(delay: Duration) -> (KubeApiHandle, kube::Client) {
    let api = KubeApiServer::start(KubeApiOptions {
        pod_startup_delay: delay,
        ..KubeApiOptions::default()
    })
    .await
    .expect("start");
    for (name, product, gpus) in [
        ("h100-a", H100, 8),
        ("h100-b", H100, 8),
        ("l40s-a", L40S, 4),
    ] {
        api.create(&gpu_node(name, product, gpus)).expect("node");
    }
    let client = api.client().expect("client");
    (api, client)
}

#[tokio::test]
async fn deployment_replicas_become_pods_on_matching_gpu_nodes() {
    let (api, client) = cluster(Duration::ZERO).await;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "llm");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "llm");
    deploys
        .create(&PostParams::default(), &deployment("h100-tp4", 3, H100, 4))
        .await
        .unwrap();
    let view = eventually("3 running pods", || async {
        let v = pods_of(&pods, "h100-tp4").await;
        (v.running.len() == 3).then_some(v)
    })
    .await;
    let mut initial: Vec<String> = view.running.iter().map(|(n, _)| n.clone()).collect();
    initial.sort();
    for (_, node) in &view.running {
        assert!(node.starts_with("h100-"), "scheduled on {node}");
    }
    let pod = pods.get(&view.running[0].0).await.unwrap();
    // Owned by the Deployment's ReplicaSet (`<deployment>-<pod-template-hash>`), which
    // the Deployment owns, as on a real cluster.
    let owner = &pod.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(owner.kind, "ReplicaSet");
    assert_eq!(owner.controller, Some(true));
    let hash = &pod.metadata.labels.as_ref().unwrap()["pod-template-hash"];
    assert_eq!(owner.name, format!("h100-tp4-{hash}"));
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), "llm");
    let rs = sets.get(&owner.name).await.unwrap();
    let rs_owner = &rs.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (rs_owner.kind.as_str(), rs_owner.name.as_str()),
        ("Deployment", "h100-tp4")
    );
    assert_eq!(rs.spec.replicas, Some(3));
    let limits = pod.spec.as_ref().unwrap().containers[0]
        .resources
        .as_ref()
        .unwrap()
        .limits
        .clone()
        .unwrap();
    assert_eq!(limits["nvidia.com/gpu"].0, "4");
    let ready = pod.status.unwrap().conditions.unwrap();
    assert!(ready
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True"));
    // Deployment status follows.
    let d = eventually("status readyReplicas=3", || async {
        let d = deploys.get("h100-tp4").await.unwrap();
        let st = d.status.clone().unwrap_or_default();
        (st.ready_replicas == Some(3) && st.observed_generation == Some(1)).then_some(d)
    })
    .await;
    let st = d.status.unwrap();
    assert_eq!(
        (st.replicas, st.available_replicas, st.updated_replicas),
        (Some(3), Some(3), Some(3))
    );
    // Scale to 5 through /scale: 16 H100 GPUs fit 4 pods of 4; the fifth stays Pending.
    deploys
        .patch_scale(
            "h100-tp4",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .unwrap();
    let view = eventually("4 running, 1 pending", || async {
        let v = pods_of(&pods, "h100-tp4").await;
        (v.running.len() == 4 && v.pending.len() == 1).then_some(v)
    })
    .await;
    let pending = pods.get(&view.pending[0]).await.unwrap();
    let cond = eventually("PodScheduled=False", || {
        let pods = pods.clone();
        let name = view.pending[0].clone();
        async move {
            let p = pods.get(&name).await.ok()?;
            p.status?
                .conditions?
                .into_iter()
                .find(|c| c.type_ == "PodScheduled" && c.status == "False")
        }
    })
    .await;
    assert!(pending.spec.unwrap().node_name.is_none());
    assert_eq!(cond.reason.as_deref(), Some("Unschedulable"));
    assert_eq!(
        cond.message.as_deref(),
        Some("0/3 nodes are available: insufficient nvidia.com/gpu, 1 node(s) didn't match Pod's node affinity/selector")
    );
    let d = eventually("status 4 ready of 5", || async {
        let st = deploys.get("h100-tp4").await.ok()?.status?;
        (st.replicas == Some(5) && st.ready_replicas == Some(4)).then_some(st)
    })
    .await;
    assert_eq!(d.unavailable_replicas, Some(1));
    // Scale down to 3: the Pending pod goes first, then the newest running one.
    deploys
        .patch_scale(
            "h100-tp4",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    let after = eventually("3 running, 0 pending", || async {
        let v = pods_of(&pods, "h100-tp4").await;
        (v.running.len() == 3 && v.pending.is_empty()).then_some(v)
    })
    .await;
    let mut kept: Vec<String> = after.running.iter().map(|(n, _)| n.clone()).collect();
    kept.sort();
    assert_eq!(
        kept, initial,
        "the pending pod and the newest running pod were removed"
    );
    api.shutdown().await;
}

#[tokio::test]
async fn unschedulable_message_when_every_node_matches_but_gpus_are_short() {
    let api = KubeApiServer::start(KubeApiOptions::default())
        .await
        .unwrap();
    api.create(&gpu_node("h100-a", H100, 2)).unwrap();
    let client = api.client().unwrap();
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "llm");
    let pods: Api<Pod> = Api::namespaced(client, "llm");
    deploys
        .create(&PostParams::default(), &deployment("big", 1, H100, 4))
        .await
        .unwrap();
    let msg = eventually("unschedulable condition", || async {
        let p = pods.list(&ListParams::default()).await.ok()?.items.pop()?;
        p.status?
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "PodScheduled" && c.status == "False")?
            .message
    })
    .await;
    assert_eq!(msg, "0/1 nodes are available: insufficient nvidia.com/gpu");
    // A node that fits arrives (created through the API like a kubelet registering): the
    // Pending pod is scheduled.
    let nodes: Api<Node> = Api::all(api.client().unwrap());
    nodes
        .create(&PostParams::default(), &gpu_node("h100-b", H100, 8))
        .await
        .unwrap();
    let running = eventually("pod running on h100-b", || async {
        let v = pods_of(&pods, "big").await;
        (v.running.len() == 1).then_some(v)
    })
    .await;
    assert_eq!(running.running[0].1, "h100-b");
}

#[tokio::test]
async fn pods_run_after_the_startup_delay_and_are_collected_with_their_deployment() {
    let (_api, client) = cluster(Duration::from_millis(300)).await;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "llm");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "llm");
    deploys
        .create(&PostParams::default(), &deployment("l40s-tp1", 2, L40S, 1))
        .await
        .unwrap();
    // Bound but not yet running.
    let bound = eventually("2 bound pods", || async {
        let list = pods.list(&ListParams::default()).await.ok()?;
        let bound: Vec<Pod> = list
            .items
            .into_iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some())
            .collect();
        (bound.len() == 2).then_some(bound)
    })
    .await;
    assert!(bound
        .iter()
        .all(|p| { p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some("l40s-a") }));
    assert!(
        bound
            .iter()
            .any(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Pending")),
        "still starting right after binding"
    );
    eventually("2 running", || async {
        (pods_of(&pods, "l40s-tp1").await.running.len() == 2).then_some(())
    })
    .await;
    deploys
        .delete("l40s-tp1", &DeleteParams::default())
        .await
        .unwrap();
    eventually("pods collected", || async {
        pods.list(&ListParams::default())
            .await
            .ok()?
            .items
            .is_empty()
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn tick_driven_controllers_and_amd_gpus() {
    let api = KubeApiServer::start(KubeApiOptions {
        run_controllers: false,
        ..KubeApiOptions::default()
    })
    .await
    .unwrap();
    api.create(&accelerator_node(
        "mi300-a",
        "amd.com/gpu",
        "amd.com/gpu.product",
        "MI300X",
        8,
    ))
    .unwrap();
    let mut d = deployment("mi300", 2, "unused", 0);
    let tmpl = d.spec.template.spec.as_mut().unwrap();
    tmpl.node_selector = Some([("amd.com/gpu.product".to_string(), "MI300X".to_string())].into());
    tmpl.containers[0].resources =
        Some(serde_json::from_value(json!({"limits": {"amd.com/gpu": "8"}})).unwrap());
    let client = api.client().unwrap();
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "llm");
    let pods: Api<Pod> = Api::namespaced(client, "llm");
    deploys.create(&PostParams::default(), &d).await.unwrap();
    assert!(
        pods.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty(),
        "no tick yet"
    );
    assert!(api.tick());
    let v = pods_of(&pods, "mi300").await;
    assert_eq!(v.running.len(), 1);
    assert_eq!(v.running[0].1, "mi300-a");
    assert_eq!(v.pending.len(), 1, "only 8 AMD GPUs");
    assert!(!api.tick(), "a second tick has nothing to do");
    let st = deploys.get("mi300").await.unwrap().status.unwrap();
    assert_eq!((st.replicas, st.ready_replicas), (Some(2), Some(1)));
}

#[tokio::test]
async fn hpa_and_events_round_trip() {
    let api = KubeApiServer::start(KubeApiOptions::default())
        .await
        .unwrap();
    let client = api.client().unwrap();
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), "llm");
    let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
        "metadata": {"name": "h"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d"},
                 "minReplicas": 1, "maxReplicas": 4}
    }))
    .unwrap();
    hpas.create(&PostParams::default(), &hpa).await.unwrap();
    let bounded = hpas
        .patch(
            "h",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"minReplicas": 2, "maxReplicas": 6}})),
        )
        .await
        .unwrap();
    assert_eq!(bounded.spec.max_replicas, 6);
    // kube::runtime's event recorder writes events.k8s.io/v1 Events.
    let recorder = kube::runtime::events::Recorder::new(
        client.clone(),
        kube::runtime::events::Reporter {
            controller: "wvo".into(),
            instance: None,
        },
    );
    let reference = k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some("autoscaling/v2".into()),
        kind: Some("HorizontalPodAutoscaler".into()),
        name: Some("h".into()),
        namespace: Some("llm".into()),
        ..Default::default()
    };
    recorder
        .publish(
            &kube::runtime::events::Event {
                type_: kube::runtime::events::EventType::Normal,
                reason: "Scaled".into(),
                note: Some("bounds 2..6".into()),
                action: "Scale".into(),
                secondary: None,
            },
            &reference,
        )
        .await
        .expect("event published");
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client, "llm");
    let list = events.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].reason.as_deref(), Some("Scaled"));
}
