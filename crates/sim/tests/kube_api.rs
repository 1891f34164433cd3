//! The Kubernetes API emulator through the real `kube` client: CRUD, optimistic
//! concurrency, patches, subresources, selectors, list/watch, bookmarks, 410, CRDs,
//! injected failures.

use futures_util::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::watcher;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;
use wvo_sim::kube_api::{KubeApiHandle, KubeApiOptions, KubeApiServer};

const DEADLINE: Duration = Duration::from_secs(10);

async fn start() -> KubeApiHandle {
    KubeApiServer::start(KubeApiOptions {
        bookmark_interval: Duration::from_millis(100),
        ..KubeApiOptions::default()
    })
    .await
    .expect("emulator starts")
}

fn cm(name: &str, labels: &[(&str, &str)], data: &[(&str, &str)]) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels.iter().cloned().collect::<BTreeMap<_, _>>()},
        "data": data.iter().cloned().collect::<BTreeMap<_, _>>(),
    }))
    .expect("configmap")
}

fn code(e: kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Poll `f` until it returns `Some`, within the deadline.
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

fn names(list: &[ConfigMap]) -> Vec<String> {
    list.iter()
        .filter_map(|c| c.metadata.name.clone())
        .collect()
}

#[tokio::test]
async fn kubeconfig_client_version_and_discovery() {
    let api = start().await;
    let client = api
        .client_from_kubeconfig()
        .await
        .expect("kubeconfig client");
    assert_eq!(client.default_namespace(), "default");
    let v = client.apiserver_version().await.expect("version");
    assert_eq!(v.major, "1");
    let groups = client.list_api_groups().await.expect("groups");
    let gs: Vec<&str> = groups.groups.iter().map(|g| g.name.as_str()).collect();
    for g in [
        "apps",
        "autoscaling",
        "coordination.k8s.io",
        "apiextensions.k8s.io",
        "events.k8s.io",
    ] {
        assert!(gs.contains(&g), "{g} missing from {gs:?}");
    }
    let apps = client
        .list_api_group_resources("apps/v1")
        .await
        .expect("apps/v1 resources");
    let rs: Vec<&str> = apps.resources.iter().map(|r| r.name.as_str()).collect();
    assert!(rs.contains(&"deployments/scale"), "{rs:?}");
    let core = client.list_core_api_resources("v1").await.expect("core");
    assert!(core.resources.iter().any(|r| r.name == "configmaps"));
    // kube's (non-aggregated) discovery resolves built-in kinds and their capabilities.
    let discovery = kube::Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    let (ar, caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("apps", "v1", "Deployment"))
        .expect("deployments discovered");
    assert_eq!(ar.plural, "deployments");
    assert!(
        caps.subresources
            .iter()
            .any(|(sub, _)| sub.plural == "deployments/scale" || sub.plural == "scale"),
        "{:?}",
        caps.subresources
    );
    let ns: Api<Namespace> = Api::all(client);
    let list = ns.list(&ListParams::default()).await.expect("namespaces");
    assert!(list
        .items
        .iter()
        .any(|n| n.metadata.name.as_deref() == Some("default")));
    api.shutdown().await;
}

#[tokio::test]
async fn create_get_already_exists_and_not_found() {
    let api = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(api.client().unwrap(), "default");
    let created = cms
        .create(&PostParams::default(), &cm("a", &[], &[("k", "v")]))
        .await
        .expect("create");
    let meta = &created.metadata;
    assert!(meta.uid.is_some() && meta.creation_timestamp.is_some());
    assert!(meta
        .resource_version
        .as_deref()
        .unwrap()
        .parse::<u64>()
        .is_ok());
    assert_eq!(meta.namespace.as_deref(), Some("default"));
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    cms.create(&dry, &cm("dry", &[], &[]))
        .await
        .expect("dry run");
    assert!(
        cms.get_opt("dry").await.unwrap().is_none(),
        "dry run stores nothing"
    );
    let again = cms.create(&PostParams::default(), &cm("a", &[], &[])).await;
    assert_eq!(code(again.unwrap_err()), (409, "AlreadyExists".into()));
    let got = cms.get("a").await.expect("get");
    assert_eq!(got.data.unwrap()["k"], "v");
    assert_eq!(
        code(cms.get("missing").await.unwrap_err()),
        (404, "NotFound".into())
    );
    assert!(cms.get_opt("missing").await.unwrap().is_none());
    // Delete, then it is gone.
    cms.delete("a", &DeleteParams::default())
        .await
        .expect("delete");
    assert_eq!(code(cms.get("a").await.unwrap_err()).0, 404);
    assert_eq!(
        code(cms.delete("a", &DeleteParams::default()).await.unwrap_err()).0,
        404
    );
}

#[tokio::test]
async fn update_with_stale_resource_version_conflicts() {
    let api = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(api.client().unwrap(), "default");
    let v1 = cms
        .create(&PostParams::default(), &cm("c", &[], &[("n", "1")]))
        .await
        .unwrap();
    let mut first = v1.clone();
    first.data = Some(BTreeMap::from([("n".into(), "2".into())]));
    let v2 = cms
        .replace("c", &PostParams::default(), &first)
        .await
        .expect("fresh update");
    assert_ne!(v2.metadata.resource_version, v1.metadata.resource_version);
    let mut stale = v1.clone();
    stale.data = Some(BTreeMap::from([("n".into(), "3".into())]));
    let err = cms
        .replace("c", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    assert_eq!(code(err), (409, "Conflict".into()));
    assert_eq!(cms.get("c").await.unwrap().data.unwrap()["n"], "2");
    // An update that changes nothing keeps the resourceVersion.
    let same = cms.replace("c", &PostParams::default(), &v2).await.unwrap();
    assert_eq!(same.metadata.resource_version, v2.metadata.resource_version);
}

#[tokio::test]
async fn merge_strategic_json_and_apply_patches() {
    let api = start().await;
    let client = api.client().unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    cms.create(
        &PostParams::default(),
        &cm("p", &[("a", "1")], &[("x", "1"), ("y", "1")]),
    )
    .await
    .unwrap();
    let merged = cms
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"x": null, "z": "3"}})),
        )
        .await
        .expect("merge patch");
    let data = merged.data.unwrap();
    assert!(!data.contains_key("x") && data["z"] == "3" && data["y"] == "1");
    let strategic = cms
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Strategic(json!({"metadata": {"labels": {"b": "2"}}})),
        )
        .await
        .expect("strategic patch");
    assert_eq!(strategic.metadata.labels.unwrap().len(), 2);
    // JSON patch (raw request: the workspace's kube has no `jsonpatch` feature).
    let req = axum::http::Request::patch("/api/v1/namespaces/default/configmaps/p")
        .header("content-type", "application/json-patch+json")
        .body(
            serde_json::to_vec(&json!([
                {"op": "test", "path": "/data/y", "value": "1"},
                {"op": "replace", "path": "/data/y", "value": "9"}
            ]))
            .unwrap(),
        )
        .unwrap();
    let patched: ConfigMap = client.request(req).await.expect("json patch");
    assert_eq!(patched.data.unwrap()["y"], "9");
    let failing = axum::http::Request::patch("/api/v1/namespaces/default/configmaps/p")
        .header("content-type", "application/json-patch+json")
        .body(br#"[{"op": "test", "path": "/data/y", "value": "1"}]"#.to_vec())
        .unwrap();
    assert_eq!(
        code(client.request::<ConfigMap>(failing).await.unwrap_err()).0,
        422
    );
    // Server-side apply creates a missing object, then updates it.
    let ssa = PatchParams::apply("wvo-test");
    let applied = cms
        .patch(
            "q",
            &ssa,
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "q"}, "data": {"owner": "wvo"}})),
        )
        .await
        .expect("apply creates");
    assert_eq!(applied.data.unwrap()["owner"], "wvo");
    let mf = applied.metadata.managed_fields.unwrap();
    assert_eq!(mf[0].manager.as_deref(), Some("wvo-test"));
    assert_eq!(mf[0].operation.as_deref(), Some("Apply"));
    // Another manager setting the same field to another value conflicts unless forced.
    let other = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "q"}, "data": {"owner": "someone-else"}});
    let err = cms
        .patch("q", &PatchParams::apply("other"), &Patch::Apply(&other))
        .await
        .unwrap_err();
    assert_eq!(code(err), (409, "Conflict".into()));
    let forced = cms
        .patch(
            "q",
            &PatchParams::apply("other").force(),
            &Patch::Apply(&other),
        )
        .await
        .expect("forced apply");
    assert_eq!(forced.data.unwrap()["owner"], "someone-else");
}

#[tokio::test]
async fn bad_requests_are_status_errors_not_panics() {
    let api = start().await;
    let client = api.client().unwrap();
    let raw = |method: &str, path: &str, ct: &str, body: &[u8]| {
        axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", ct)
            .body(body.to_vec())
            .unwrap()
    };
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    cms.create(&PostParams::default(), &cm("b", &[], &[]))
        .await
        .unwrap();
    let path = "/api/v1/namespaces/default/configmaps/b";
    let cases = [
        (
            raw("PATCH", path, "text/plain", b"{}"),
            415,
            "UnsupportedMediaType",
        ),
        (
            raw("PATCH", path, "application/merge-patch+json", b"{not json"),
            400,
            "BadRequest",
        ),
        (
            raw("PATCH", path, "application/apply-patch+yaml", b"{}"),
            400,
            "BadRequest",
        ),
        (
            raw(
                "POST",
                "/api/v1/namespaces/default/configmaps",
                "application/json",
                b"[1,",
            ),
            400,
            "BadRequest",
        ),
        (
            raw(
                "POST",
                "/api/v1/namespaces/default/configmaps",
                "application/json",
                br#"{"kind":"Pod","metadata":{"name":"x"}}"#,
            ),
            400,
            "BadRequest",
        ),
        (
            raw(
                "PUT",
                path,
                "application/json",
                br#"{"metadata":{"name":"other"}}"#,
            ),
            400,
            "BadRequest",
        ),
        (
            raw(
                "GET",
                "/api/v1/namespaces/default/configmaps?labelSelector=a%20in%20(",
                "application/json",
                b"",
            ),
            400,
            "BadRequest",
        ),
        (
            raw(
                "GET",
                "/api/v1/namespaces/default/configmaps?fieldSelector=spec.x%3D1",
                "application/json",
                b"",
            ),
            400,
            "BadRequest",
        ),
        (
            raw("GET", "/api/v1/widgets", "application/json", b""),
            404,
            "NotFound",
        ),
        (
            raw(
                "GET",
                "/api/v1/namespaces/default/configmaps/b/scale",
                "application/json",
                b"",
            ),
            404,
            "NotFound",
        ),
    ];
    for (req, want_code, want_reason) in cases {
        let what = format!("{} {}", req.method(), req.uri());
        let (c, r) = code(client.request::<Value>(req).await.unwrap_err());
        assert_eq!((c, r.as_str()), (want_code, want_reason), "{what}");
    }
    // A huge timeoutSeconds does not overflow: the watch keeps delivering.
    let rv = api.resource_version();
    let huge = axum::http::Request::get(format!(
        "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=18446744073709551615&resourceVersion={rv}"
    ))
    .body(Vec::new())
    .unwrap();
    let mut events = client
        .request_events::<ConfigMap>(huge)
        .await
        .unwrap()
        .boxed();
    cms.create(&PostParams::default(), &cm("after-huge", &[], &[]))
        .await
        .unwrap();
    let ev = tokio::time::timeout(DEADLINE, events.try_next())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(ev, Some(WatchEvent::Added(c)) if c.metadata.name.as_deref() == Some("after-huge"))
    );
    // The server is still fine.
    assert!(cms.get("b").await.is_ok());
}

#[tokio::test]
async fn label_and_field_selectors() {
    let api = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(api.client().unwrap(), "default");
    for (n, app, tier) in [
        ("s1", "web", "gpu"),
        ("s2", "web", "cpu"),
        ("s3", "db", "gpu"),
    ] {
        cms.create(
            &PostParams::default(),
            &cm(n, &[("app", app), ("tier", tier)], &[]),
        )
        .await
        .unwrap();
    }
    cms.create(&PostParams::default(), &cm("s4", &[], &[]))
        .await
        .unwrap();
    let sel = |s: &'static str| {
        let cms = cms.clone();
        async move {
            names(
                &cms.list(&ListParams::default().labels(s))
                    .await
                    .unwrap()
                    .items,
            )
        }
    };
    assert_eq!(sel("app=web").await, ["s1", "s2"]);
    assert_eq!(sel("app==web,tier!=cpu").await, ["s1"]);
    assert_eq!(sel("tier in (gpu)").await, ["s1", "s3"]);
    assert_eq!(sel("app notin (web)").await, ["s3", "s4"]);
    assert_eq!(sel("app").await, ["s1", "s2", "s3"]);
    assert_eq!(sel("!app").await, ["s4"]);
    let by_name = cms
        .list(&ListParams::default().fields("metadata.name=s2"))
        .await
        .unwrap();
    assert_eq!(names(&by_name.items), ["s2"]);
    let gone = cms
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("tier=cpu"),
        )
        .await
        .expect("delete collection");
    let gone = gone.left().expect("deleted items");
    assert_eq!(names(&gone.items), ["s2"]);
    assert_eq!(sel("app=web").await, ["s1"]);
    let all: Api<ConfigMap> = Api::all(api.client().unwrap());
    let other_ns = all
        .list(&ListParams::default().fields("metadata.namespace!=default"))
        .await
        .unwrap();
    assert!(other_ns.items.is_empty());
}

#[tokio::test]
async fn list_pagination_with_limit_and_continue() {
    let api = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(api.client().unwrap(), "default");
    for i in 0..5 {
        cms.create(&PostParams::default(), &cm(&format!("page-{i}"), &[], &[]))
            .await
            .unwrap();
    }
    let first = cms.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(names(&first.items), ["page-0", "page-1"]);
    let token = first.metadata.continue_.clone().expect("continue token");
    let second = cms
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(names(&second.items), ["page-2", "page-3"]);
    let token = second.metadata.continue_.clone().unwrap();
    let third = cms
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(names(&third.items), ["page-4"]);
    assert!(third.metadata.continue_.is_none());
    cms.create(&PostParams::default(), &cm("page-5", &[], &[]))
        .await
        .unwrap();
    api.compact();
    let err = cms
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap_err();
    assert_eq!(code(err), (410, "Expired".into()));
}

#[tokio::test]
async fn watch_from_resource_version_in_order_with_bookmarks() {
    let api = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(api.client().unwrap(), "default");
    cms.create(&PostParams::default(), &cm("before", &[], &[]))
        .await
        .unwrap();
    let list = cms.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.clone().unwrap();
    // Changes made after the list but before the watch starts are replayed from history.
    cms.create(&PostParams::default(), &cm("w", &[("app", "x")], &[]))
        .await
        .unwrap();
    let wp = WatchParams::default().timeout(30);
    assert!(wp.bookmarks, "kube asks for bookmarks by default");
    let mut stream = cms.watch(&wp, &rv).await.expect("watch").boxed();
    cms.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"a": "1"}})),
    )
    .await
    .unwrap();
    cms.delete("w", &DeleteParams::default()).await.unwrap();
    let mut seen = Vec::new();
    let mut last_rv = rv.parse::<u64>().unwrap();
    let mut bookmark = None;
    tokio::time::timeout(DEADLINE, async {
        while let Some(ev) = stream.try_next().await.expect("watch stream") {
            match ev {
                WatchEvent::Added(c) | WatchEvent::Modified(c) | WatchEvent::Deleted(c) => {
                    let r: u64 = c.metadata.resource_version.unwrap().parse().unwrap();
                    assert!(r > last_rv, "events in resourceVersion order");
                    last_rv = r;
                    seen.push(c.metadata.name.unwrap());
                }
                WatchEvent::Bookmark(b) => {
                    if seen.len() == 3 {
                        bookmark = Some(b.metadata.resource_version);
                        break;
                    }
                }
                WatchEvent::Error(e) => panic!("watch error {e:?}"),
            }
        }
    })
    .await
    .expect("events and a bookmark in time");
    assert_eq!(seen, ["w", "w", "w"]);
    let bm: u64 = bookmark.unwrap().parse().unwrap();
    assert!(
        bm >= last_rv,
        "bookmark {bm} covers delivered events up to {last_rv}"
    );
    // Watching from the bookmark resumes after it.
    cms.create(&PostParams::default(), &cm("after", &[], &[]))
        .await
        .unwrap();
    let mut resumed = cms.watch(&wp, &bm.to_string()).await.unwrap().boxed();
    let first = tokio::time::timeout(DEADLINE, resumed.try_next())
        .await
        .unwrap()
        .unwrap();
    match first {
        Some(WatchEvent::Added(c)) => assert_eq!(c.metadata.name.as_deref(), Some("after")),
        other => panic!("expected ADDED after, got {other:?}"),
    }
}

#[tokio::test]
async fn watch_with_label_selector_sees_objects_enter_and_leave() {
    let api = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(api.client().unwrap(), "default");
    let rv = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = cms
        .watch(&WatchParams::default().labels("role=leader"), &rv)
        .await
        .unwrap()
        .boxed();
    cms.create(
        &PostParams::default(),
        &cm("l", &[("role", "follower")], &[]),
    )
    .await
    .unwrap();
    let to = |role: &str| Patch::Merge(json!({"metadata": {"labels": {"role": role}}}));
    cms.patch("l", &PatchParams::default(), &to("leader"))
        .await
        .unwrap();
    cms.patch("l", &PatchParams::default(), &to("follower"))
        .await
        .unwrap();
    let mut kinds = Vec::new();
    tokio::time::timeout(DEADLINE, async {
        while kinds.len() < 2 {
            match stream.try_next().await.unwrap() {
                Some(WatchEvent::Added(_)) => kinds.push("ADDED"),
                Some(WatchEvent::Modified(_)) => kinds.push("MODIFIED"),
                Some(WatchEvent::Deleted(_)) => kinds.push("DELETED"),
                Some(_) => {}
                None => break,
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(kinds, ["ADDED", "DELETED"]);
}

#[tokio::test]
async fn watch_from_compacted_resource_version_gets_410() {
    let api = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(api.client().unwrap(), "default");
    let old = cms
        .create(&PostParams::default(), &cm("old", &[], &[]))
        .await
        .unwrap();
    let old_rv = old.metadata.resource_version.unwrap();
    cms.create(&PostParams::default(), &cm("newer", &[], &[]))
        .await
        .unwrap();
    api.compact();
    let mut stream = cms
        .watch(&WatchParams::default(), &old_rv)
        .await
        .unwrap()
        .boxed();
    let ev = tokio::time::timeout(DEADLINE, stream.try_next())
        .await
        .unwrap()
        .unwrap();
    match ev {
        Some(WatchEvent::Error(s)) => {
            assert_eq!(s.code, 410);
            assert_eq!(s.reason, "Expired");
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
    // From the current version it works.
    let cur = api.resource_version().to_string();
    assert!(cms.watch(&WatchParams::default(), &cur).await.is_ok());
}

/// Wait until the watcher delivers an object named `want`.
async fn next_apply<S>(events: &mut S, want: &str, errors: &mut Vec<String>)
where
    S: futures_util::Stream<Item = Result<watcher::Event<ConfigMap>, watcher::Error>> + Unpin,
{
    tokio::time::timeout(DEADLINE, async {
        loop {
            match events.next().await {
                Some(Ok(watcher::Event::Apply(c))) | Some(Ok(watcher::Event::InitApply(c))) => {
                    if c.metadata.name.as_deref() == Some(want) {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                // The watcher reports a 410 and relists on the next poll (callers use
                // `default_backoff()`); keep polling.
                Some(Err(e)) => errors.push(e.to_string()),
                None => panic!("watcher ended"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("watcher never delivered {want}"));
}

#[tokio::test]
async fn runtime_watcher_keeps_delivering_after_dropped_watches_and_compaction() {
    let api = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(api.client().unwrap(), "default");
    cms.create(&PostParams::default(), &cm("w0", &[], &[]))
        .await
        .unwrap();
    let mut events = watcher(cms.clone(), watcher::Config::default()).boxed();
    let mut errors = Vec::new();
    next_apply(&mut events, "w0", &mut errors).await;
    cms.create(&PostParams::default(), &cm("w1", &[], &[]))
        .await
        .unwrap();
    next_apply(&mut events, "w1", &mut errors).await;
    eventually("a watch to be open", || async {
        (api.open_watches() > 0).then_some(())
    })
    .await;
    api.drop_watches();
    cms.create(&PostParams::default(), &cm("w2", &[], &[]))
        .await
        .unwrap();
    next_apply(&mut events, "w2", &mut errors).await;
    // Dropped again and the history compacted: the watcher relists (410) and catches up.
    eventually("the watch to reopen", || async {
        (api.open_watches() > 0).then_some(())
    })
    .await;
    api.drop_watches();
    cms.create(&PostParams::default(), &cm("w3", &[], &[]))
        .await
        .unwrap();
    api.compact();
    next_apply(&mut events, "w3", &mut errors).await;
    assert!(
        errors
            .iter()
            .all(|e| e.contains("410") || e.contains("too old")),
        "only 410s expected: {errors:?}"
    );
}

#[tokio::test]
async fn streaming_list_watcher_gets_initial_events_then_changes() {
    let api = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(api.client().unwrap(), "default");
    cms.create(&PostParams::default(), &cm("s0", &[], &[]))
        .await
        .unwrap();
    let mut events = watcher(cms.clone(), watcher::Config::default().streaming_lists()).boxed();
    let mut errors = Vec::new();
    next_apply(&mut events, "s0", &mut errors).await;
    cms.create(&PostParams::default(), &cm("s1", &[], &[]))
        .await
        .unwrap();
    next_apply(&mut events, "s1", &mut errors).await;
    assert!(errors.is_empty(), "{errors:?}");
}

#[tokio::test]
async fn lease_create_and_conflicting_updates() {
    let api = start().await;
    let a: Api<Lease> = Api::namespaced(api.client().unwrap(), "default");
    let b: Api<Lease> = Api::namespaced(api.client().unwrap(), "default");
    let lease: Lease = serde_json::from_value(json!({
        "metadata": {"name": "wvo-leader"},
        "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15,
                 "acquireTime": "2026-01-01T00:00:00.000000Z", "renewTime": "2026-01-01T00:00:00.000000Z"}
    }))
    .unwrap();
    a.create(&PostParams::default(), &lease)
        .await
        .expect("a acquires");
    let err = b.create(&PostParams::default(), &lease).await.unwrap_err();
    assert_eq!(code(err).0, 409, "b cannot create the held lease");
    let seen_by_a = a.get("wvo-leader").await.unwrap();
    let seen_by_b = b.get("wvo-leader").await.unwrap();
    let mut renew = seen_by_a.clone();
    renew.spec.as_mut().unwrap().renew_time =
        serde_json::from_value(json!("2026-01-01T00:00:05.000000Z")).unwrap();
    a.replace("wvo-leader", &PostParams::default(), &renew)
        .await
        .expect("a renews");
    let mut steal = seen_by_b;
    steal.spec.as_mut().unwrap().holder_identity = Some("b".into());
    let err = b
        .replace("wvo-leader", &PostParams::default(), &steal)
        .await
        .unwrap_err();
    assert_eq!(
        code(err),
        (409, "Conflict".into()),
        "b's stale takeover loses"
    );
    let now = a.get("wvo-leader").await.unwrap();
    assert_eq!(now.spec.unwrap().holder_identity.as_deref(), Some("a"));
}

#[tokio::test]
async fn injected_failures_and_conflicts() {
    let api = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(api.client().unwrap(), "default");
    api.fail_next_writes(1, 500);
    let err = cms
        .create(&PostParams::default(), &cm("f", &[], &[]))
        .await
        .unwrap_err();
    assert_eq!(code(err), (500, "InternalError".into()));
    cms.create(&PostParams::default(), &cm("f", &[], &[]))
        .await
        .expect("next write works");
    // kube's default client retries 503 (and 429, 504) by itself: one injected 503 is
    // invisible to the caller.
    api.fail_next_writes(1, 503);
    cms.create(&PostParams::default(), &cm("g", &[], &[]))
        .await
        .expect("retried");
    api.inject_conflicts(2);
    let p = Patch::Merge(json!({"data": {"k": "v"}}));
    for _ in 0..2 {
        let err = cms
            .patch("f", &PatchParams::default(), &p)
            .await
            .unwrap_err();
        assert_eq!(code(err), (409, "Conflict".into()));
    }
    let data = cms.get("f").await.unwrap().data.unwrap_or_default();
    assert!(!data.contains_key("k"), "nothing written");
    cms.patch("f", &PatchParams::default(), &p)
        .await
        .expect("third patch works");
}

#[tokio::test]
async fn delayed_requests_time_out_a_client_and_later_ones_are_served_at_once() {
    let api = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(api.client().unwrap(), "default");
    cms.create(&PostParams::default(), &cm("d", &[], &[]))
        .await
        .expect("create");
    api.delay_next_requests(1, Duration::from_secs(60));
    let held = tokio::time::timeout(Duration::from_millis(200), cms.get("d")).await;
    assert!(
        held.is_err(),
        "a held request gets no answer within its deadline"
    );
    // The delay was for one request only: the next one is answered at once.
    let next = tokio::time::timeout(DEADLINE, cms.get("d"))
        .await
        .expect("answered within the deadline")
        .expect("get");
    assert_eq!(next.metadata.name.as_deref(), Some("d"));
    let gets = api.requests().iter().filter(|r| r.verb == "get").count();
    assert_eq!(gets, 2, "both requests were recorded");
}

#[tokio::test]
async fn deployment_status_and_scale_subresources() {
    let api = KubeApiServer::start(KubeApiOptions {
        run_controllers: false,
        ..KubeApiOptions::default()
    })
    .await
    .unwrap();
    let deploys: Api<Deployment> = Api::namespaced(api.client().unwrap(), "default");
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "llm"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "llm"}},
                 "template": {"metadata": {"labels": {"app": "llm"}},
                              "spec": {"containers": [{"name": "vllm", "image": "vllm"}]}}},
        "status": {"replicas": 99}
    }))
    .unwrap();
    let created = deploys.create(&PostParams::default(), &d).await.unwrap();
    assert!(created.status.is_none(), "status is not settable on create");
    assert_eq!(created.metadata.generation, Some(1));
    // Status writes change only status.
    let mut st = created.clone();
    st.status = Some(serde_json::from_value(json!({"replicas": 2, "readyReplicas": 1})).unwrap());
    st.spec.replicas = Some(7);
    let after = deploys
        .replace_status("llm", &PostParams::default(), &st)
        .await
        .unwrap();
    assert_eq!(after.status.as_ref().unwrap().ready_replicas, Some(1));
    assert_eq!(after.spec.replicas, Some(2), "spec untouched by /status");
    assert_eq!(after.metadata.generation, Some(1));
    // Main-resource writes leave status alone and bump generation on spec changes.
    let main = deploys
        .patch(
            "llm",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}, "status": {"readyReplicas": 9}})),
        )
        .await
        .unwrap();
    assert_eq!(main.status.as_ref().unwrap().ready_replicas, Some(1));
    assert_eq!(main.metadata.generation, Some(2));
    // Scale subresource.
    let scale = deploys.get_scale("llm").await.unwrap();
    assert_eq!(scale.spec.as_ref().unwrap().replicas, Some(3));
    assert_eq!(scale.status.as_ref().unwrap().replicas, 2);
    assert_eq!(
        scale.status.as_ref().unwrap().selector.as_deref(),
        Some("app=llm")
    );
    let patched = deploys
        .patch_scale(
            "llm",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.spec.unwrap().replicas, Some(5));
    assert_eq!(deploys.get("llm").await.unwrap().spec.replicas, Some(5));
    let mut stale = scale.clone();
    stale.spec.as_mut().unwrap().replicas = Some(1);
    let err = deploys
        .replace_scale("llm", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    assert_eq!(code(err).0, 409, "stale Scale resourceVersion");
    let mut fresh = deploys.get_scale("llm").await.unwrap();
    fresh.spec.as_mut().unwrap().replicas = Some(1);
    let replaced = deploys
        .replace_scale("llm", &PostParams::default(), &fresh)
        .await
        .unwrap();
    assert_eq!(replaced.spec.unwrap().replicas, Some(1));
}

fn crd_json() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.dev"},
        "spec": {
            "group": "example.dev",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                "subresources": {"status": {}, "scale": {
                    "specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas",
                    "labelSelectorPath": ".status.selector"}}
            }]
        }
    })
}

#[tokio::test]
async fn crd_registers_a_dynamic_kind_with_status_and_scale() {
    let api = start().await;
    let client = api.client().unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(crd_json()).unwrap();
    crds.create(&PostParams::default(), &crd)
        .await
        .expect("create CRD");
    let est = tokio::time::timeout(
        DEADLINE,
        kube::runtime::wait::await_condition(
            crds.clone(),
            "widgets.example.dev",
            kube::runtime::conditions::is_crd_established(),
        ),
    )
    .await
    .expect("established in time")
    .unwrap();
    assert!(est.is_some());
    let groups = client.list_api_groups().await.unwrap();
    assert!(groups.groups.iter().any(|g| g.name == "example.dev"));
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("example.dev", "v1", "Widget"),
        "widgets",
    );
    let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
    let w = DynamicObject::new("w1", &ar).data(json!({"spec": {"replicas": 1, "color": "red"}}));
    let created = widgets
        .create(&PostParams::default(), &w)
        .await
        .expect("create widget");
    assert_eq!(created.types.as_ref().unwrap().kind, "Widget");
    let status = widgets
        .patch_status(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"replicas": 1, "selector": "app=w1"}, "spec": {"color": "blue"}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(status.data["status"]["replicas"], 1);
    assert_eq!(
        status.data["spec"]["color"], "red",
        "/status writes only status"
    );
    let scale = widgets.get_scale("w1").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(1));
    assert_eq!(scale.status.unwrap().selector.as_deref(), Some("app=w1"));
    widgets
        .patch_scale(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 4}})),
        )
        .await
        .unwrap();
    assert_eq!(widgets.get("w1").await.unwrap().data["spec"]["replicas"], 4);
    // Server-side apply on a custom resource, status through /status apply.
    let applied = widgets
        .patch(
            "w2",
            &PatchParams::apply("wvo").force(),
            &Patch::Apply(json!({"apiVersion": "example.dev/v1", "kind": "Widget",
                "metadata": {"name": "w2"}, "spec": {"replicas": 2}})),
        )
        .await
        .unwrap();
    assert_eq!(applied.data["spec"]["replicas"], 2);
    let st = widgets
        .patch_status(
            "w2",
            &PatchParams::apply("wvo").force(),
            &Patch::Apply(json!({"apiVersion": "example.dev/v1", "kind": "Widget",
                "metadata": {"name": "w2"}, "status": {"phase": "Ready"}})),
        )
        .await
        .unwrap();
    assert_eq!(st.data["status"]["phase"], "Ready");
    assert_eq!(st.data["spec"]["replicas"], 2);
    // Deleting the CRD removes the kind.
    crds.delete("widgets.example.dev", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(code(widgets.get("w1").await.unwrap_err()).0, 404);
}
