//! Request recording: every HTTP resource request is recorded as Kubernetes authorization
//! attributes (user, verb, group, resource, subresource, namespace, name); admin calls are not.

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchParams};
use kube::core::WatchEvent;
use serde_json::json;
use wvo_sim::kube_api::{KubeApiOptions, KubeApiServer, RecordedRequest, ANONYMOUS};

fn req(
    verb: &str,
    group: &str,
    resource: &str,
    sub: &str,
    ns: &str,
    name: &str,
) -> RecordedRequest {
    RecordedRequest {
        user: ANONYMOUS.into(),
        verb: verb.into(),
        api_group: group.into(),
        resource: resource.into(),
        subresource: sub.into(),
        namespace: ns.into(),
        name: name.into(),
    }
}

#[tokio::test]
async fn every_resource_request_is_recorded_with_its_verb() {
    let api = KubeApiServer::start(KubeApiOptions::default())
        .await
        .unwrap();
    // Admin calls bypass HTTP and are not recorded.
    api.create(&json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "seed", "namespace": "a"}}))
        .unwrap();
    assert!(api.get("v1", "ConfigMap", "a", "seed").is_some());
    assert!(api.requests().is_empty(), "{:?}", api.requests());

    let client = api.client().unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "a");
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "c"}, "data": {"k": "v"}})).unwrap();
    let mut cm = cms.create(&PostParams::default(), &cm).await.unwrap();
    cms.get("c").await.unwrap();
    cms.list(&ListParams::default()).await.unwrap();
    cm.data = Some([("k".to_string(), "w".to_string())].into());
    cms.replace("c", &PostParams::default(), &cm).await.unwrap();
    cms.patch(
        "c",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "x"}})),
    )
    .await
    .unwrap();
    // A failed request is recorded too (it is authorized before it is handled).
    assert!(cms.get("missing").await.is_err());
    let mut stream = cms
        .watch(&WatchParams::default().timeout(1), "0")
        .await
        .unwrap()
        .boxed();
    assert!(matches!(
        stream.next().await,
        Some(Ok(WatchEvent::Added(_)))
    ));
    drop(stream);
    cms.delete("c", &DeleteParams::default()).await.unwrap();
    cms.delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .unwrap();
    let all: Api<ConfigMap> = Api::all(client.clone());
    all.list(&ListParams::default()).await.unwrap();

    // Subresources, another group, a cluster-scoped kind.
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "a");
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "d"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "d"}},
            "template": {"metadata": {"labels": {"app": "d"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]}}}
    }))
    .unwrap();
    deploys.create(&PostParams::default(), &d).await.unwrap();
    deploys.get_scale("d").await.unwrap();
    deploys
        .patch_scale(
            "d",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 2}})),
        )
        .await
        .unwrap();
    deploys
        .patch_status(
            "d",
            &PatchParams::apply("t").force(),
            &Patch::Apply(json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "status": {"replicas": 2}})),
        )
        .await
        .unwrap();
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    nodes.list(&ListParams::default()).await.unwrap();

    let want = vec![
        req("create", "", "configmaps", "", "a", ""),
        req("get", "", "configmaps", "", "a", "c"),
        req("list", "", "configmaps", "", "a", ""),
        req("update", "", "configmaps", "", "a", "c"),
        req("patch", "", "configmaps", "", "a", "c"),
        req("get", "", "configmaps", "", "a", "missing"),
        req("watch", "", "configmaps", "", "a", ""),
        req("delete", "", "configmaps", "", "a", "c"),
        req("deletecollection", "", "configmaps", "", "a", ""),
        req("list", "", "configmaps", "", "", ""),
        req("create", "apps", "deployments", "", "a", ""),
        req("get", "apps", "deployments", "scale", "a", "d"),
        req("patch", "apps", "deployments", "scale", "a", "d"),
        req("patch", "apps", "deployments", "status", "a", "d"),
        req("list", "", "nodes", "", "", ""),
    ];
    assert_eq!(api.requests(), want);
    assert_eq!(want[12].rbac_resource(), "deployments/scale");

    // clear_requests forgets; a client with a user is told apart from the anonymous one.
    api.clear_requests();
    assert!(api.requests().is_empty());
    let sa = "system:serviceaccount:wvo-system:wvo";
    let as_sa: Api<ConfigMap> = Api::namespaced(api.client_as(sa).unwrap(), "wvo-system");
    assert!(as_sa.get_opt("inventory").await.unwrap().is_none());
    cms.list(&ListParams::default()).await.unwrap();
    let got = api.requests();
    assert_eq!(
        got,
        vec![
            RecordedRequest {
                user: sa.into(),
                ..req("get", "", "configmaps", "", "wvo-system", "inventory")
            },
            req("list", "", "configmaps", "", "a", ""),
        ]
    );
    // Discovery is not a resource request and is not recorded.
    kube::Discovery::new(client).run().await.unwrap();
    assert_eq!(api.requests().len(), 2);
    api.shutdown().await;
}
