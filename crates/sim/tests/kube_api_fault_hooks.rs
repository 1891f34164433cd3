//! The emulator's hooks for fault soaks: failed reads, held requests counted until they are
//! handled, the store's commits with their times, admin replace.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use serde_json::json;
use std::time::{Duration, Instant};
use wvo_sim::kube_api::{KubeApiHandle, KubeApiOptions, KubeApiServer};

async fn start() -> KubeApiHandle {
    KubeApiServer::start(KubeApiOptions::default())
        .await
        .expect("emulator starts")
}

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}}))
        .expect("configmap")
}

fn code(e: kube::Error) -> u16 {
    match e {
        kube::Error::Api(s) => s.code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn injected_read_failures_fail_gets_and_lists_and_leave_writes() {
    let api = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(api.client().expect("client"), "default");
    cms.create(&PostParams::default(), &cm("r"))
        .await
        .expect("create");
    api.fail_next_reads(2, 500);
    // Writes do not consume them.
    cms.create(&PostParams::default(), &cm("s"))
        .await
        .expect("a write is not a read");
    assert_eq!(code(cms.get("r").await.unwrap_err()), 500);
    assert_eq!(code(cms.list(&Default::default()).await.unwrap_err()), 500);
    cms.get("r").await.expect("the third read works");
    api.fail_next_reads(1, 500);
    api.fail_next_reads(0, 500);
    cms.get("r").await.expect("disarmed");
}

#[tokio::test]
async fn held_requests_are_counted_until_handled() {
    let api = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(api.client().expect("client"), "default");
    assert_eq!(api.held_requests(), 0);
    api.delay_next_requests(1, Duration::from_millis(300));
    let create = tokio::spawn({
        let cms = cms.clone();
        async move { cms.create(&PostParams::default(), &cm("h")).await }
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while api.held_requests() == 0 {
        assert!(Instant::now() < deadline, "the request was never held");
        tokio::task::yield_now().await;
    }
    assert!(
        api.get("v1", "ConfigMap", "default", "h").is_none(),
        "held, not handled"
    );
    create
        .await
        .expect("join")
        .expect("created once the hold ends");
    assert_eq!(api.held_requests(), 0);
    assert!(api.get("v1", "ConfigMap", "default", "h").is_some());
}

#[tokio::test]
async fn commits_carry_their_time_and_object_and_replace_writes_as_admin() {
    let api = start().await;
    let mut feed = api.commits();
    let before = Instant::now();
    api.create(&json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "default"}, "data": {"k": "1"}}))
        .expect("create");
    api.fail_next_writes(5, 500);
    api.replace(&json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "default"}, "data": {"other": "2"}}))
        .expect("admin writes bypass faults");
    api.delete("v1", "ConfigMap", "default", "c")
        .expect("delete");
    let commits = feed.drain().expect("no lag");
    let mine: Vec<_> = commits.iter().filter(|c| c.name == "c").collect();
    assert_eq!(
        mine.iter().map(|c| c.event).collect::<Vec<_>>(),
        ["ADDED", "MODIFIED", "DELETED"]
    );
    assert!(mine
        .iter()
        .all(|c| c.resource == "configmaps" && c.group.is_empty()));
    assert!(mine[0].at >= before && mine[0].at <= mine[1].at && mine[1].at <= mine[2].at);
    assert!(mine[0].resource_version < mine[1].resource_version);
    assert_eq!(
        mine[1].object["data"],
        json!({"other": "2"}),
        "replaced whole"
    );
    assert!(feed.drain().expect("no lag").is_empty(), "each commit once");
}
