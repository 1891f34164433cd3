//! TokenReviews and SubjectAccessReviews of the emulator, through the real `kube` client and
//! `kubectl`: the token table, audiences, and the RBAC evaluator over stored Roles,
//! ClusterRoles and their bindings.

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use serde_json::Value;
use std::process::Command;
use wvo_sim::kube_api::{KubeApiHandle, KubeApiOptions, KubeApiServer, TokenUser};

const RBAC: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: metrics-reader}
rules:
- nonResourceURLs: ["/metrics", "/api/v1/models/*"]
  verbs: ["get"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: monitoring-reads-metrics}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: metrics-reader}
subjects:
- {kind: ServiceAccount, name: prometheus, namespace: monitoring}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: va-viewer}
rules:
- apiGroups: ["wvo.dev"]
  resources: ["variantautoscalings"]
  verbs: ["get", "list"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: team-a-views-vas, namespace: team-a}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: va-viewer}
subjects:
- {kind: Group, name: team-a, apiGroup: rbac.authorization.k8s.io}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: scaler, namespace: team-b}
rules:
- apiGroups: ["apps"]
  resources: ["deployments/scale"]
  verbs: ["patch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: bob-scales, namespace: team-b}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: scaler}
subjects:
- {kind: User, name: bob, apiGroup: rbac.authorization.k8s.io}
"#;

/// Runs `kubectl <args> -f <stdin as a file>` against the emulator (off the runtime's
/// threads, which serve the emulator).
async fn kubectl(api: &KubeApiHandle, dir: &std::path::Path, args: &[&str], stdin: &str) -> String {
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, api.kubeconfig_yaml()).expect("write kubeconfig");
    let input = dir.join("input.yaml");
    std::fs::write(&input, stdin).expect("write input");
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--request-timeout=20s")
            .args(&args)
            .arg("-f")
            .arg(&input)
            .output()
            .map(|o| (args, o))
    })
    .await
    .expect("kubectl task")
    .expect("kubectl runs (it is installed on the project's machines)");
    let (args, out) = out;
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("wvo-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

async fn sar(client: &kube::Client, spec: SubjectAccessReviewSpec) -> bool {
    let api: Api<SubjectAccessReview> = Api::all(client.clone());
    let review = SubjectAccessReview {
        spec,
        ..Default::default()
    };
    let out = api
        .create(&PostParams::default(), &review)
        .await
        .expect("SubjectAccessReview created");
    out.status.expect("status").allowed
}

fn resource(user: &str, groups: &[&str], verb: &str, ns: &str) -> SubjectAccessReviewSpec {
    SubjectAccessReviewSpec {
        user: Some(user.into()),
        groups: Some(groups.iter().map(|g| g.to_string()).collect()),
        resource_attributes: Some(ResourceAttributes {
            group: Some("wvo.dev".into()),
            resource: Some("variantautoscalings".into()),
            verb: Some(verb.into()),
            namespace: Some(ns.into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subject_access_reviews_follow_the_stored_rbac() {
    let api = KubeApiServer::start(KubeApiOptions::default())
        .await
        .unwrap();
    let dir = temp_dir("sar");
    // kubectl finds the RBAC kinds through discovery and creates them.
    kubectl(&api, &dir, &["apply", "--validate=false"], RBAC).await;
    let client = api.client().unwrap();

    // A ClusterRoleBinding to a ServiceAccount grants URLs, exactly and by prefix.
    let url = |user: &str, path: &str, verb: &str| SubjectAccessReviewSpec {
        user: Some(user.into()),
        non_resource_attributes: Some(NonResourceAttributes {
            path: Some(path.into()),
            verb: Some(verb.into()),
        }),
        ..Default::default()
    };
    let prom = "system:serviceaccount:monitoring:prometheus";
    assert!(sar(&client, url(prom, "/metrics", "get")).await);
    assert!(sar(&client, url(prom, "/api/v1/models/a/b", "get")).await);
    assert!(!sar(&client, url(prom, "/api/v1/models", "get")).await);
    assert!(!sar(&client, url(prom, "/metrics", "create")).await);
    assert!(
        !sar(
            &client,
            url(
                "system:serviceaccount:default:prometheus",
                "/metrics",
                "get"
            )
        )
        .await
    );

    // A RoleBinding of a ClusterRole to a group counts in its namespace only.
    assert!(sar(&client, resource("alice", &["team-a"], "get", "team-a")).await);
    assert!(!sar(&client, resource("alice", &["team-a"], "get", "team-b")).await);
    assert!(
        !sar(&client, resource("alice", &["team-a"], "get", "")).await,
        "not cluster-wide"
    );
    assert!(!sar(&client, resource("alice", &["team-a"], "delete", "team-a")).await);
    assert!(
        !sar(&client, resource("alice", &[], "get", "team-a")).await,
        "not in the group"
    );

    // A Role through a RoleBinding to a user, with a subresource.
    let scale = |ns: &str, sub: &str| SubjectAccessReviewSpec {
        user: Some("bob".into()),
        resource_attributes: Some(ResourceAttributes {
            group: Some("apps".into()),
            resource: Some("deployments".into()),
            subresource: Some(sub.into()),
            verb: Some("patch".into()),
            namespace: Some(ns.into()),
            name: Some("x".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert!(sar(&client, scale("team-b", "scale")).await);
    assert!(!sar(&client, scale("team-b", "")).await);
    assert!(!sar(&client, scale("team-a", "scale")).await);

    // kubectl sees the decision and the reason.
    let out = kubectl(
        &api,
        &dir,
        &["create", "--validate=false", "-o", "json"],
        "apiVersion: authorization.k8s.io/v1\nkind: SubjectAccessReview\nspec:\n  user: bob\n  resourceAttributes: {group: apps, resource: deployments, subresource: scale, verb: patch, namespace: team-b}\n",
    )
    .await;
    let v: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["status"]["allowed"], true);
    let reason = v["status"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("bob-scales") && reason.contains("scaler"),
        "{reason}"
    );

    // Reviews are never stored, and a review with neither user nor group is refused.
    let reviews: Api<SubjectAccessReview> = Api::all(client.clone());
    let err = reviews
        .create(
            &PostParams::default(),
            &SubjectAccessReview {
                spec: SubjectAccessReviewSpec {
                    non_resource_attributes: Some(NonResourceAttributes::default()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 422),
        "{err:?}"
    );
    assert!(
        reviews.list(&Default::default()).await.is_err(),
        "create only"
    );
    let _ = std::fs::remove_dir_all(&dir);
    api.shutdown().await;
}

#[tokio::test]
async fn token_reviews_authenticate_from_the_token_table() {
    let api = KubeApiServer::start(KubeApiOptions::default())
        .await
        .unwrap();
    api.add_token("t-alice", TokenUser::new("alice").with_groups(&["team-a"]));
    api.add_token(
        "t-bound",
        TokenUser::new("system:serviceaccount:monitoring:prometheus").with_audiences(&["wvo"]),
    );
    let reviews: Api<TokenReview> = Api::all(api.client().unwrap());
    let review = |token: &str, audiences: &[&str]| TokenReview {
        spec: TokenReviewSpec {
            token: token.into(),
            audiences: (!audiences.is_empty())
                .then(|| audiences.iter().map(|a| a.to_string()).collect()),
        },
        ..Default::default()
    };
    let pp = PostParams::default();
    let ok = reviews.create(&pp, &review("t-alice", &[])).await.unwrap();
    let status = ok.status.expect("status");
    assert_eq!(status.authenticated, Some(true));
    let user = status.user.expect("user");
    assert_eq!(user.username.as_deref(), Some("alice"));
    assert_eq!(
        user.groups,
        Some(vec!["team-a".into(), "system:authenticated".into()])
    );

    let bad = reviews.create(&pp, &review("nope", &[])).await.unwrap();
    assert_eq!(bad.status.expect("status").authenticated, Some(false));
    // Audiences: a token bound to "wvo" is valid for "wvo", not for the API server.
    let wrong = reviews.create(&pp, &review("t-bound", &[])).await.unwrap();
    assert_eq!(wrong.status.expect("status").authenticated, Some(false));
    let right = reviews
        .create(&pp, &review("t-bound", &["wvo"]))
        .await
        .unwrap();
    let status = right.status.expect("status");
    assert_eq!(status.authenticated, Some(true));
    assert_eq!(status.audiences, Some(vec!["wvo".into()]));
    // A revoked token no longer authenticates.
    api.remove_token("t-alice");
    let revoked = reviews.create(&pp, &review("t-alice", &[])).await.unwrap();
    assert_eq!(revoked.status.expect("status").authenticated, Some(false));
    api.shutdown().await;
}
