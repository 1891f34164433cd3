//! The status API behind `--api-auth=kube`, over real HTTP, against the API emulator's
//! TokenReviews and SubjectAccessReviews (its token table and RBAC evaluator): 401 without
//! or with a bad token, 403 without a grant, 200 with one, probes open, tenants scoped to
//! their namespaces, 503 when the API server is down, and no token in logs or answers.

use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wvo_controller::auth::{Auth, KubeAuthConfig};
use wvo_controller::scope::Visible;
use wvo_controller::view::SharedView;
use wvo_controller::whatif::{WhatIfLimits, WhatIfRunner};
use wvo_e2e::*;
use wvo_sim::kube_api::TokenUser;

/// The second tenant's namespace (a mirror of `llm`'s model, see [`mirror`]).
const OTHER: &str = "team-b";

const ADMIN: &str = "t-admin-7d1f0c5e";
const ALICE: &str = "t-alice-93be2a41";
const CAROL: &str = "t-carol-0a6e55d2";
const PROM: &str = "t-prom-c4f1e870";

/// RBAC of the test: readers of the API (URLs), the admin sees VAs everywhere, team-a (alice)
/// in `llm` only, carol nothing, prometheus /metrics only.
fn rbac() -> Vec<Value> {
    let binding = |kind: &str, name: &str, role: &str, subject: Value, ns: Option<&str>| {
        let mut b = json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind,
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [subject],
        });
        if let Some(ns) = ns {
            b["metadata"]["namespace"] = json!(ns);
        }
        b
    };
    let group =
        |g: &str| json!({"kind": "Group", "name": g, "apiGroup": "rbac.authorization.k8s.io"});
    let user =
        |u: &str| json!({"kind": "User", "name": u, "apiGroup": "rbac.authorization.k8s.io"});
    vec![
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "wvo-api-reader"},
        "rules": [
            {"nonResourceURLs": ["/", "/openapi.json", "/api/v1/*"], "verbs": ["get"]},
            {"nonResourceURLs": ["/api/v1/whatif"], "verbs": ["create"]}
        ]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "wvo-va-viewer"},
            "rules": [{"apiGroups": ["wvo.dev"], "resources": ["variantautoscalings"], "verbs": ["get", "list", "watch"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "wvo-metrics"},
            "rules": [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]}),
        binding(
            "ClusterRoleBinding",
            "api-readers",
            "wvo-api-reader",
            group("wvo-readers"),
            None,
        ),
        binding(
            "ClusterRoleBinding",
            "admin-views-all",
            "wvo-va-viewer",
            user("admin"),
            None,
        ),
        binding(
            "RoleBinding",
            "team-a-views",
            "wvo-va-viewer",
            group("team-a"),
            Some(NS),
        ),
        binding(
            "ClusterRoleBinding",
            "prometheus-metrics",
            "wvo-metrics",
            json!({"kind": "ServiceAccount", "name": "prometheus", "namespace": "monitoring"}),
            None,
        ),
    ]
}

/// Copies every model, variant, load and decision of `llm` under namespace [`OTHER`]: a
/// second tenant with real cycle output.
fn mirror(view: &SharedView) {
    let mut v = view.write().expect("view");
    let rename = |m: &str| m.replacen(&format!("{NS}/"), &format!("{OTHER}/"), 1);
    let models: Vec<_> = v
        .models
        .iter()
        .map(|m| {
            let mut m = m.clone();
            m.namespace = OTHER.into();
            m
        })
        .collect();
    v.models.extend(models);
    let decisions: Vec<_> = v
        .decisions
        .iter()
        .map(|d| {
            let mut d = d.clone();
            d.namespace = OTHER.into();
            d
        })
        .collect();
    v.decisions.extend(decisions);
    // One more history sample with both tenants (as a cycle after the mirror would record).
    let v2 = &mut *v;
    let last = v2
        .history
        .body(&Visible::All)
        .times
        .last()
        .copied()
        .unwrap_or(0.0);
    v2.history.record(last + 15.0, &v2.models);
    if let Some(plan) = v.plan.as_mut() {
        let variants: Vec<_> = plan
            .variants
            .iter()
            .map(|x| {
                let mut x = x.clone();
                x.model = rename(&x.model);
                x
            })
            .collect();
        plan.total_cost_per_hour *= 2.0;
        plan.variants.extend(variants);
        let models: Vec<_> = plan
            .models
            .iter()
            .map(|x| {
                let mut x = x.clone();
                x.model = rename(&x.model);
                x
            })
            .collect();
        plan.models.extend(models);
    }
    if let Some(input) = v.last_input.as_mut() {
        let models: Vec<_> = input
            .models
            .iter()
            .map(|m| {
                let mut m = m.clone();
                m.name = rename(&m.name);
                m
            })
            .collect();
        input.models.extend(models);
        let loads: Vec<_> = input.load.iter().map(|(k, l)| (rename(k), *l)).collect();
        input.load.extend(loads);
        let current: Vec<_> = input
            .current
            .iter()
            .map(|(k, c)| (rename(k), c.clone()))
            .collect();
        input.current.extend(current);
    }
}

/// A cluster with one planned model in `llm` and its mirror in [`OTHER`], the test's RBAC
/// and tokens, and the status API with kube authentication on 127.0.0.1.
struct Fixture {
    cluster: Cluster,
    web: Web,
    server: tokio::task::JoinHandle<()>,
}

/// An HTTP client of the status API.
struct Web {
    base: String,
    http: reqwest::Client,
}

async fn start() -> Fixture {
    let cluster = Cluster::start().await;
    cluster
        .two_variant_va("llama", "meta-llama/Llama-3.1-8B-Instruct", "")
        .await;
    cluster.set_load("meta-llama/Llama-3.1-8B-Instruct", 35.0);
    let (mut controller, view, metrics) = cluster.controller("wvo-0");
    controller.cycle().await.expect("a cycle");
    mirror(&view);
    {
        let mut v = view.write().expect("view");
        v.last_error = Some(format!("VariantAutoscaling {OTHER}/llama: something broke"));
    }
    for object in rbac() {
        cluster.api.create(&object).expect("RBAC object");
    }
    cluster
        .api
        .add_token(ADMIN, TokenUser::new("admin").with_groups(&["wvo-readers"]));
    cluster.api.add_token(
        ALICE,
        TokenUser::new("alice").with_groups(&["team-a", "wvo-readers"]),
    );
    cluster.api.add_token(CAROL, TokenUser::new("carol"));
    cluster.api.add_token(
        PROM,
        TokenUser::new("system:serviceaccount:monitoring:prometheus"),
    );
    let auth = Auth::kube(
        cluster.controller_client(),
        KubeAuthConfig {
            review_timeout: Duration::from_secs(3),
            ..KubeAuthConfig::default()
        },
    );
    let app = wvo_controller::status_api::secured_router(
        view,
        metrics,
        WhatIfRunner::new(WhatIfLimits::default()),
        auth,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    wvo_collector::install_crypto_provider();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .expect("http client");
    Fixture {
        cluster,
        web: Web { base, http },
        server,
    }
}

impl Fixture {
    async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value, Option<String>) {
        self.web.get(path, token).await
    }

    async fn post(&self, path: &str, token: &str, body: &Value) -> (u16, Value) {
        self.web.post(path, token, body).await
    }
}

impl Web {
    /// (status, body as JSON, WWW-Authenticate) of a GET with an optional token.
    async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value, Option<String>) {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("answered");
        let status = resp.status().as_u16();
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = resp.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body, challenge)
    }

    async fn post(&self, path: &str, token: &str, body: &Value) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("answered");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

fn error_of(body: &Value) -> &str {
    body["error"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_reviewed_and_paths_authorized() {
    let f = start().await;

    // No token, a bad token: 401 with a JSON error and a challenge.
    let (code, body, challenge) = f.get("/api/v1/models", None).await;
    assert_eq!(code, 401, "{body}");
    assert!(error_of(&body).contains("Authorization: Bearer"), "{body}");
    assert!(challenge.is_some_and(|c| c.starts_with("Bearer")));
    let (code, body, _) = f.get("/api/v1/models", Some("not-a-token")).await;
    assert_eq!(code, 401, "{body}");
    assert!(error_of(&body).contains("invalid bearer token"), "{body}");
    // Every endpoint but the probes and the dashboard page is behind it, unknown paths
    // included.
    for path in ["/metrics", "/openapi.json", "/api/v1/plan", "/no/such/path"] {
        assert_eq!(f.get(path, None).await.0, 401, "{path}");
    }

    // A valid token without a grant for the path: 403, naming user, verb and path.
    let (code, body, _) = f.get("/api/v1/models", Some(CAROL)).await;
    assert_eq!(code, 403, "{body}");
    let e = error_of(&body);
    assert!(
        e.contains("\"carol\"") && e.contains("get /api/v1/models"),
        "{e}"
    );
    let (code, _, _) = f.get("/api/v1/models", Some(PROM)).await;
    assert_eq!(code, 403, "prometheus may read /metrics only");
    let (code, body, _) = f.get("/metrics", Some(PROM)).await;
    assert_eq!(code, 200);
    assert!(body.as_str().is_some_and(|t| t.contains("# EOF")), "{body}");
    // The verb follows the method: alice may create /api/v1/whatif, not /api/v1/models.
    let (code, body) = f.post("/api/v1/models", ALICE, &json!({})).await;
    assert_eq!(code, 403, "{body}");
    assert!(error_of(&body).contains("create /api/v1/models"), "{body}");

    // Allowed: 200 with the data.
    let (code, body, _) = f.get("/api/v1/models", Some(ADMIN)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body.as_array().map(Vec::len), Some(2));

    // The probes are open.
    for path in ["/healthz", "/readyz"] {
        let (code, body, _) = f.get(path, None).await;
        assert_ne!(code, 401, "{path}: {body}");
        assert_ne!(code, 403, "{path}: {body}");
    }
    assert_eq!(f.get("/healthz", None).await.0, 200);
    // The dashboard page is open and carries no data: its script fetches the API with the
    // token the user gives it.
    let page = f
        .web
        .http
        .get(format!("{}/", f.web.base))
        .send()
        .await
        .expect("GET /");
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.unwrap_or_default();
    assert!(html.contains("Authorization"), "the page sends a token");
    assert!(
        !html.contains("llama") && !html.contains(OTHER),
        "no data in the page"
    );

    // The API server refuses the controller's own review (its RBAC lacks the grant): 503,
    // naming what to grant.
    f.cluster.api.add_token(
        "t-new-3f7d",
        TokenUser::new("new").with_groups(&["wvo-readers"]),
    );
    f.cluster.api.fail_next_writes(1, 403);
    let (code, body, _) = f.get("/api/v1/models", Some("t-new-3f7d")).await;
    assert_eq!(code, 503, "{body}");
    assert!(
        error_of(&body).contains("`create` on tokenreviews.authentication.k8s.io"),
        "{body}"
    );

    // The controller asked as itself, through the real client path, with create only.
    let reviews: Vec<_> = f
        .cluster
        .api
        .requests()
        .into_iter()
        .filter(|r| r.resource == "tokenreviews" || r.resource == "subjectaccessreviews")
        .collect();
    assert!(!reviews.is_empty());
    assert!(reviews
        .iter()
        .all(|r| r.user == CONTROLLER_USER && r.verb == "create"));
    f.server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_sees_only_its_namespaces() {
    let f = start().await;
    let namespaces = |body: &Value, key: &str| -> Vec<String> {
        body.as_array()
            .into_iter()
            .flatten()
            .map(|m| m[key].as_str().unwrap_or_default().to_string())
            .collect()
    };

    // The admin (get VAs cluster-wide) sees both tenants; alice (a RoleBinding in llm) one.
    let (_, all, _) = f.get("/api/v1/models", Some(ADMIN)).await;
    assert_eq!(namespaces(&all, "namespace"), vec![NS, OTHER]);
    let (code, mine, _) = f.get("/api/v1/models", Some(ALICE)).await;
    assert_eq!(code, 200);
    assert_eq!(namespaces(&mine, "namespace"), vec![NS]);

    let (code, _, _) = f
        .get(&format!("/api/v1/models/{NS}/llama"), Some(ALICE))
        .await;
    assert_eq!(code, 200);
    let (code, body, _) = f
        .get(&format!("/api/v1/models/{OTHER}/llama"), Some(ALICE))
        .await;
    assert_eq!(code, 403, "{body}");
    assert!(error_of(&body).contains(OTHER));
    // Same answer whether or not the VA exists: no probing of other namespaces.
    let (code, _, _) = f
        .get(&format!("/api/v1/models/{OTHER}/nothing"), Some(ALICE))
        .await;
    assert_eq!(code, 403);

    // The plan: alice's variants only, her cost; the admin's is the whole plan.
    let (_, plan, _) = f.get("/api/v1/plan", Some(ALICE)).await;
    let (_, full, _) = f.get("/api/v1/plan", Some(ADMIN)).await;
    let models_of = |p: &Value| -> Vec<String> {
        p["variants"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| v["model"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert!(!models_of(&plan).is_empty());
    assert!(models_of(&plan)
        .iter()
        .all(|m| m.starts_with(&format!("{NS}/"))));
    assert!(models_of(&full)
        .iter()
        .any(|m| m.starts_with(&format!("{OTHER}/"))));
    let cost = |p: &Value| p["totalCostPerHour"].as_f64().unwrap_or(f64::NAN);
    let sum: f64 = plan["variants"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["costPerHour"].as_f64())
        .sum();
    assert!((cost(&plan) - sum).abs() < 1e-9);
    assert!(cost(&plan) < cost(&full));
    assert!(plan.get("lowerBoundCostPerHour").is_none_or(Value::is_null));

    // The input: alice's models, loads and replicas only; the inventory stays.
    let (_, input, _) = f.get("/api/v1/input", Some(ALICE)).await;
    let names: Vec<&str> = input["models"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert!(!names.is_empty() && names.iter().all(|n| n.starts_with(&format!("{NS}/"))));
    assert!(input["load"]
        .as_object()
        .is_some_and(|l| l.keys().all(|k| k.starts_with(&format!("{NS}/")))));
    assert!(input["inventory"].as_array().is_some_and(|i| !i.is_empty()));

    // Decisions and status counts; the last error (it names the other tenant) is hidden.
    let (_, decisions, _) = f.get("/api/v1/decisions", Some(ALICE)).await;
    assert!(namespaces(&decisions, "namespace").iter().all(|n| n == NS));
    let (_, status, _) = f.get("/api/v1/status", Some(ALICE)).await;
    let (_, full_status, _) = f.get("/api/v1/status", Some(ADMIN)).await;
    assert_eq!(status["models"], 1);
    assert_eq!(full_status["models"], 2);
    let hidden = status["lastError"].as_str().unwrap_or_default();
    assert!(!hidden.contains(OTHER), "{hidden}");
    assert!(full_status["lastError"]
        .as_str()
        .is_some_and(|e| e.contains(OTHER)));

    // The history: alice's series and totals over her models; the admin's over both.
    let (code, history, _) = f.get("/api/v1/history", Some(ALICE)).await;
    assert_eq!(code, 200, "{history}");
    let (_, full_history, _) = f.get("/api/v1/history", Some(ADMIN)).await;
    assert_eq!(namespaces(&history["models"], "namespace"), vec![NS]);
    assert_eq!(
        namespaces(&full_history["models"], "namespace"),
        vec![NS, OTHER]
    );
    let last_cost = |h: &Value| {
        h["desiredCostPerHour"]
            .as_array()
            .and_then(|a| a.last())
            .and_then(Value::as_f64)
            .unwrap_or(f64::NAN)
    };
    assert!(last_cost(&history) > 0.0);
    assert!((2.0 * last_cost(&history) - last_cost(&full_history)).abs() < 1e-9);
    assert!(history.get("modelsNotKept").is_none());

    // A what-if over the live input answers with alice's models only.
    let (code, whatif) = f.post("/api/v1/whatif", ALICE, &json!({})).await;
    assert_eq!(code, 200, "{whatif}");
    assert!(!models_of(&whatif).is_empty());
    assert!(models_of(&whatif)
        .iter()
        .all(|m| m.starts_with(&format!("{NS}/"))));

    // Someone with the URL grant but no VA in any namespace sees nothing.
    f.cluster.api.add_token(
        "t-dave-5b1e",
        TokenUser::new("dave").with_groups(&["wvo-readers"]),
    );
    let (code, none, _) = f.get("/api/v1/models", Some("t-dave-5b1e")).await;
    assert_eq!(code, 200);
    assert_eq!(none, json!([]));
    f.server.abort();
}

/// A `MakeWriter` appending every log line to a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// On one thread, so the subscriber set for the test sees every task's logs.
#[tokio::test(flavor = "current_thread")]
async fn the_api_server_down_fails_closed_and_no_token_is_ever_shown() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // Callsites first hit while no subscriber wanted them (other tests of this binary, on
    // other threads) cache "never": recompute their interest with this subscriber in place.
    tracing::callsite::rebuild_interest_cache();

    let f = start().await;
    let mut answers = String::new();
    for token in [ADMIN, ALICE, CAROL, "t-bad-e7c0d3"] {
        for path in ["/api/v1/models", "/api/v1/plan", "/metrics"] {
            let (_, body, _) = f.get(path, Some(token)).await;
            answers.push_str(&body.to_string());
        }
    }
    // The API server goes away: a token not reviewed yet cannot be checked: 503, saying why.
    let late = "t-late-4c2a9f";
    f.cluster
        .api
        .add_token(late, TokenUser::new("late").with_groups(&["wvo-readers"]));
    let Fixture {
        cluster,
        web,
        server,
    } = f;
    cluster.api.shutdown().await;
    let (code, body, _) = web.get("/api/v1/models", Some(late)).await;
    assert_eq!(code, 503, "{body}");
    let e = error_of(&body);
    assert!(e.contains("Kubernetes API"), "{e}");
    answers.push_str(&body.to_string());
    let (code, _, _) = web.get("/api/v1/models", Some("t-bad-2-91aa")).await;
    assert_eq!(code, 503, "fail closed, not open");
    // The probes do not depend on the API server.
    assert_eq!(web.get("/healthz", None).await.0, 200);

    let logged = String::from_utf8_lossy(&logs.0.lock().expect("logs")).into_owned();
    assert!(
        logged.contains("cannot authenticate"),
        "the outage is logged: {logged}"
    );
    for token in [
        ADMIN,
        ALICE,
        CAROL,
        PROM,
        late,
        "t-bad-e7c0d3",
        "t-bad-2-91aa",
    ] {
        assert!(!logged.contains(token), "token in the logs");
        assert!(!answers.contains(token), "token in an answer");
    }
    server.abort();
}
