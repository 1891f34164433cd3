//! core/v1 and events.k8s.io/v1 Events are one object, as on a real API server: what one API
//! writes the other lists, gets and watches, with the apiserver's field mapping.

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Event as CoreEvent;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;
use std::time::Duration;
use wvo_sim::kube_api::{KubeApiOptions, KubeApiServer};

#[tokio::test]
async fn events_are_served_by_both_apis() {
    let api = KubeApiServer::start(KubeApiOptions {
        run_controllers: false,
        ..KubeApiOptions::default()
    })
    .await
    .expect("emulator");
    let client = api.client().expect("client");
    let core: Api<CoreEvent> = Api::namespaced(client.clone(), "llm");
    let events: Api<Event> = Api::namespaced(client, "llm");

    // A core/v1 watch by involvedObject, opened before the events.k8s.io write.
    let selector = "involvedObject.kind=VariantAutoscaling,involvedObject.name=llama";
    let mut stream = core
        .watch(&WatchParams::default().fields(selector).timeout(10), "0")
        .await
        .expect("watch")
        .boxed();
    let written: Event = serde_json::from_value(json!({
        "metadata": {"name": "llama.1", "namespace": "llm"},
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "reportingController": "wvo", "reportingInstance": "wvo-0",
        "action": "Reconcile", "reason": "ScaledUp", "type": "Normal",
        "note": "h100: 1 -> 2",
        "regarding": {"apiVersion": "wvo.dev/v1alpha1", "kind": "VariantAutoscaling",
            "name": "llama", "namespace": "llm", "uid": "u-1"},
        "series": {"count": 3, "lastObservedTime": "2026-01-01T00:01:00.000000Z"},
    }))
    .expect("event");
    events
        .create(&PostParams::default(), &written)
        .await
        .expect("create events.k8s.io Event");
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(ev) = stream.next().await {
            if let Ok(WatchEvent::Added(e)) = ev {
                return Some(e);
            }
        }
        None
    })
    .await
    .expect("watch event within 10 s")
    .expect("ADDED on the core/v1 watch");
    assert_eq!(seen.involved_object.name.as_deref(), Some("llama"));
    assert_eq!(seen.involved_object.uid.as_deref(), Some("u-1"));
    assert_eq!(seen.message.as_deref(), Some("h100: 1 -> 2"));
    assert_eq!(seen.reporting_component.as_deref(), Some("wvo"));
    assert_eq!(seen.series.as_ref().and_then(|s| s.count), Some(3));

    let listed = core
        .list(&ListParams::default().fields("involvedObject.uid=u-1,reason=ScaledUp"))
        .await
        .expect("list");
    assert_eq!(listed.items.len(), 1);
    assert!(core
        .list(&ListParams::default().fields("involvedObject.uid=other"))
        .await
        .expect("list")
        .items
        .is_empty());

    // And a core/v1 write is an events.k8s.io/v1 Event.
    let written: CoreEvent = serde_json::from_value(json!({
        "metadata": {"name": "pod.1", "namespace": "llm"},
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": "llm"},
        "reason": "Scheduled", "message": "bound to h100-0", "type": "Normal",
        "source": {"component": "scheduler"}, "count": 2,
        "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:05Z",
    }))
    .expect("core event");
    core.create(&PostParams::default(), &written)
        .await
        .expect("create core Event");
    let e = events.get("pod.1").await.expect("get as events.k8s.io");
    assert_eq!(
        e.regarding.as_ref().and_then(|r| r.name.as_deref()),
        Some("p")
    );
    assert_eq!(e.note.as_deref(), Some("bound to h100-0"));
    assert_eq!(e.deprecated_count, Some(2));
    assert_eq!(
        e.deprecated_source
            .as_ref()
            .and_then(|s| s.component.as_deref()),
        Some("scheduler")
    );
    let back = core.get("pod.1").await.expect("get as core");
    assert_eq!(back.message.as_deref(), Some("bound to h100-0"));
    assert_eq!(back.count, Some(2));
    api.shutdown().await;
}
