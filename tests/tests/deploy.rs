//! The manifests of `deploy/` and `crds/`: every document parses into its k8s-openapi type
//! (or wvo's CRD type), the kustomizations list files that exist, the controller Deployment
//! is hardened, the NetworkPolicy admits only the API port from the monitoring namespace,
//! and the RBAC of `deploy/base/rbac.yaml` allows exactly the API calls the real controller
//! makes — checked against the requests the API emulator recorded while the controller ran
//! through every code path that calls the API (its status API's TokenReviews and
//! SubjectAccessReviews included). The same for the namespaced install
//! (`deploy/overlays/namespaced`, rendered by `kubectl kustomize`), which must also grant
//! nothing cluster-wide on namespaced resources.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;
use wvo_api::crd::{InventoryConfig, VariantAutoscaling, INVENTORY_KEY};
use wvo_controller::auth::{Auth, KubeAuthConfig};
use wvo_controller::reconciler::ControllerConfig;
use wvo_controller::runner::{self, LeaderConfig};
use wvo_e2e::*;
use wvo_sim::kube_api::{RecordedRequest, TokenUser};

/// One parsed document.
#[derive(Debug)]
enum Manifest {
    Namespace(Box<Namespace>),
    ServiceAccount(Box<ServiceAccount>),
    ClusterRole(Box<ClusterRole>),
    ClusterRoleBinding(Box<ClusterRoleBinding>),
    Role(Box<Role>),
    RoleBinding(Box<RoleBinding>),
    Deployment(Box<Deployment>),
    Service(Box<Service>),
    NetworkPolicy(Box<NetworkPolicy>),
    ConfigMap(Box<ConfigMap>),
    CustomResourceDefinition(Box<CustomResourceDefinition>),
    VariantAutoscaling(Box<VariantAutoscaling>),
    /// A KEDA ScaledObject (keda.sh/v1alpha1; an example, no typed struct here): its trigger
    /// is checked against wvo's scaler in `the_keda_overlay_serves_...`.
    ScaledObject,
}

/// A kustomization (not a Kubernetes object: kustomize's own file).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Kustomization {
    api_version: String,
    kind: String,
    #[serde(default)]
    resources: Vec<String>,
    /// Patches of an overlay (checked by rendering it, see [`render`]).
    #[serde(default)]
    patches: Vec<Value>,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Every `*.yaml` under `dir`, recursively, sorted.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            out.extend(yaml_files(&p));
        } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            out.push(p);
        }
    }
    out
}

/// The documents of a YAML stream (empty documents skipped).
fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("read manifest");
    serde_norway::Deserializer::from_str(&text)
        .map(|d| {
            Value::deserialize(d)
                .unwrap_or_else(|e| panic!("{}: invalid YAML: {e}", path.display()))
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// `got` (a typed round trip) keeps every field of `want` (the file) with the same value:
/// a field the type does not know (a typo, a wrong level) is lost in the round trip.
fn kept(want: &Value, got: &Value, at: &str) -> Result<(), String> {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (k, wv) in w {
                let here = format!("{at}.{k}");
                match g.get(k) {
                    Some(gv) => kept(wv, gv, &here)?,
                    None if wv.is_null() => {}
                    None => return Err(format!("{here}: unknown field (dropped by the type)")),
                }
            }
            Ok(())
        }
        (Value::Array(w), Value::Array(g)) if w.len() == g.len() => w
            .iter()
            .zip(g)
            .enumerate()
            .try_for_each(|(i, (wv, gv))| kept(wv, gv, &format!("{at}[{i}]"))),
        (Value::Number(w), Value::Number(g)) if w.as_f64() == g.as_f64() => Ok(()),
        (w, g) if w == g => Ok(()),
        (w, g) => Err(format!("{at}: {w} became {g}")),
    }
}

fn typed<K: DeserializeOwned + Serialize>(doc: &Value, api_version: &str, what: &str) -> K {
    assert_eq!(
        doc["apiVersion"].as_str(),
        Some(api_version),
        "{what}: apiVersion"
    );
    let obj: K = serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{what}: {e}"));
    let back = serde_json::to_value(&obj).expect("serialize");
    if let Err(e) = kept(doc, &back, "") {
        panic!("{what}: {e}");
    }
    obj
}

fn parse(doc: &Value, what: &str) -> Manifest {
    use k8s_openapi::Resource as _;
    let kind = doc["kind"].as_str().unwrap_or_default();
    match kind {
        "Namespace" => Manifest::Namespace(Box::new(typed(doc, Namespace::API_VERSION, what))),
        "ServiceAccount" => {
            Manifest::ServiceAccount(Box::new(typed(doc, ServiceAccount::API_VERSION, what)))
        }
        "ClusterRole" => {
            Manifest::ClusterRole(Box::new(typed(doc, ClusterRole::API_VERSION, what)))
        }
        "ClusterRoleBinding" => Manifest::ClusterRoleBinding(Box::new(typed(
            doc,
            ClusterRoleBinding::API_VERSION,
            what,
        ))),
        "Role" => Manifest::Role(Box::new(typed(doc, Role::API_VERSION, what))),
        "RoleBinding" => {
            Manifest::RoleBinding(Box::new(typed(doc, RoleBinding::API_VERSION, what)))
        }
        "Deployment" => Manifest::Deployment(Box::new(typed(doc, Deployment::API_VERSION, what))),
        "Service" => Manifest::Service(Box::new(typed(doc, Service::API_VERSION, what))),
        "NetworkPolicy" => {
            Manifest::NetworkPolicy(Box::new(typed(doc, NetworkPolicy::API_VERSION, what)))
        }
        "ConfigMap" => Manifest::ConfigMap(Box::new(typed(doc, ConfigMap::API_VERSION, what))),
        "CustomResourceDefinition" => Manifest::CustomResourceDefinition(Box::new(typed(
            doc,
            CustomResourceDefinition::API_VERSION,
            what,
        ))),
        "VariantAutoscaling" => Manifest::VariantAutoscaling(Box::new(typed(
            doc,
            &<VariantAutoscaling as kube::Resource>::api_version(&()),
            what,
        ))),
        "ScaledObject" => {
            assert_eq!(
                doc["apiVersion"].as_str(),
                Some("keda.sh/v1alpha1"),
                "{what}: apiVersion"
            );
            Manifest::ScaledObject
        }
        other => panic!("{what}: unknown kind {other:?}: add it to this test"),
    }
}

/// Manifests and kustomizations, each with its path relative to the workspace root.
type Loaded = (Vec<(PathBuf, Manifest)>, Vec<(PathBuf, Kustomization)>);

/// The Prometheus-operator objects (ServiceMonitor, PrometheusRule, the Grafana dashboard):
/// applied on their own (`kubectl apply -k deploy/monitoring/`, they need the operator's
/// CRDs), not by `kubectl apply -k deploy/`; tests/tests/monitoring.rs checks them.
const MONITORING: &str = "deploy/monitoring";

/// Every manifest under deploy/ (examples included, [`MONITORING`] not) and crds/, by file,
/// kustomizations apart.
fn load_all() -> Loaded {
    let root = root();
    let mut manifests = Vec::new();
    let mut kustomizations = Vec::new();
    for dir in ["deploy", "crds"] {
        for path in yaml_files(&root.join(dir)) {
            let rel = path.strip_prefix(&root).expect("under root").to_path_buf();
            if rel.starts_with(MONITORING) {
                continue;
            }
            if path.file_name().is_some_and(|n| n == "kustomization.yaml") {
                let k: Kustomization =
                    serde_norway::from_str(&std::fs::read_to_string(&path).expect("read"))
                        .unwrap_or_else(|e| panic!("{}: {e}", rel.display()));
                kustomizations.push((rel, k));
                continue;
            }
            let docs = documents(&path);
            assert!(!docs.is_empty(), "{}: no document", rel.display());
            for (i, doc) in docs.iter().enumerate() {
                let what = format!("{} document {}", rel.display(), i + 1);
                manifests.push((rel.clone(), parse(doc, &what)));
            }
        }
    }
    (manifests, kustomizations)
}

/// The deploy/ manifests checked for coherence, plus the RBAC they grant.
struct Deploy {
    namespace: Namespace,
    service_account: ServiceAccount,
    cluster_roles: Vec<ClusterRole>,
    cluster_bindings: Vec<ClusterRoleBinding>,
    roles: Vec<Role>,
    bindings: Vec<RoleBinding>,
    controller: Deployment,
    services: Vec<Service>,
    network_policies: Vec<NetworkPolicy>,
    inventory: ConfigMap,
    crds: Vec<CustomResourceDefinition>,
    example_vas: Vec<VariantAutoscaling>,
}

/// The install of `kubectl apply -k deploy/`: every manifest under deploy/ but the
/// overlays (their files are only parts of another install), with the examples and crds/.
fn load_deploy() -> Deploy {
    let (manifests, _) = load_all();
    deploy_from(
        manifests
            .into_iter()
            .filter(|(rel, _)| !rel.starts_with("deploy/overlays"))
            .map(|(_, m)| m),
    )
}

/// `kubectl kustomize <dir>` (kustomize is built into kubectl; offline), as documents.
fn render(dir: &str) -> Vec<Value> {
    let out = std::process::Command::new("kubectl")
        .arg("kustomize")
        .arg(root().join(dir))
        .output()
        .expect("kubectl runs (it is installed on the project's machines)");
    assert!(
        out.status.success(),
        "kubectl kustomize {dir}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    serde_norway::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).expect("rendered YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

/// The install of `kubectl apply -k deploy/overlays/namespaced/`, rendered.
fn load_namespaced() -> Deploy {
    let docs = render("deploy/overlays/namespaced");
    deploy_from(
        docs.iter()
            .enumerate()
            .map(|(i, doc)| parse(doc, &format!("namespaced overlay document {}", i + 1))),
    )
}

fn deploy_from(manifests: impl Iterator<Item = Manifest>) -> Deploy {
    let mut namespaces = Vec::new();
    let mut sas = Vec::new();
    let mut deployments = Vec::new();
    let mut cms = Vec::new();
    let mut d = Deploy {
        namespace: Namespace::default(),
        service_account: ServiceAccount::default(),
        cluster_roles: Vec::new(),
        cluster_bindings: Vec::new(),
        roles: Vec::new(),
        bindings: Vec::new(),
        controller: Deployment::default(),
        services: Vec::new(),
        network_policies: Vec::new(),
        inventory: ConfigMap::default(),
        crds: Vec::new(),
        example_vas: Vec::new(),
    };
    for m in manifests {
        match m {
            Manifest::Namespace(x) => namespaces.push(*x),
            Manifest::ServiceAccount(x) => sas.push(*x),
            Manifest::ClusterRole(x) => d.cluster_roles.push(*x),
            Manifest::ClusterRoleBinding(x) => d.cluster_bindings.push(*x),
            Manifest::Role(x) => d.roles.push(*x),
            Manifest::RoleBinding(x) => d.bindings.push(*x),
            Manifest::Deployment(x) => deployments.push(*x),
            Manifest::Service(x) => d.services.push(*x),
            Manifest::NetworkPolicy(x) => d.network_policies.push(*x),
            Manifest::ConfigMap(x) => cms.push(*x),
            Manifest::CustomResourceDefinition(x) => d.crds.push(*x),
            Manifest::VariantAutoscaling(x) => d.example_vas.push(*x),
            Manifest::ScaledObject => {}
        }
    }
    assert_eq!(namespaces.len(), 1, "one Namespace");
    assert_eq!(sas.len(), 1, "one ServiceAccount");
    assert_eq!(deployments.len(), 1, "one Deployment (the controller)");
    assert_eq!(cms.len(), 1, "one ConfigMap (the inventory)");
    d.namespace = namespaces.remove(0);
    d.service_account = sas.remove(0);
    d.controller = deployments.remove(0);
    d.inventory = cms.remove(0);
    d
}

#[test]
fn every_manifest_parses_into_its_type() {
    let (manifests, kustomizations) = load_all();
    let kinds: BTreeSet<&str> = manifests
        .iter()
        .map(|(_, m)| match m {
            Manifest::Namespace(_) => "Namespace",
            Manifest::ServiceAccount(_) => "ServiceAccount",
            Manifest::ClusterRole(_) => "ClusterRole",
            Manifest::ClusterRoleBinding(_) => "ClusterRoleBinding",
            Manifest::Role(_) => "Role",
            Manifest::RoleBinding(_) => "RoleBinding",
            Manifest::Deployment(_) => "Deployment",
            Manifest::Service(_) => "Service",
            Manifest::NetworkPolicy(_) => "NetworkPolicy",
            Manifest::ConfigMap(_) => "ConfigMap",
            Manifest::CustomResourceDefinition(_) => "CustomResourceDefinition",
            Manifest::VariantAutoscaling(_) => "VariantAutoscaling",
            Manifest::ScaledObject => "ScaledObject",
        })
        .collect();
    assert_eq!(kinds.len(), 13, "every kind is present: {kinds:?}");
    assert_eq!(
        kustomizations.len(),
        5,
        "deploy/, deploy/base/, deploy/overlays/namespaced/, deploy/overlays/keda/ and crds/"
    );

    // An unknown field is caught by the round trip, an unknown kind by `parse`.
    let typo: Value = serde_json::json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "x", "namspace": "y"}});
    let caught = std::panic::catch_unwind(|| parse(&typo, "typo"));
    assert!(caught.is_err(), "a misspelt field must fail");
    let unknown: Value = serde_json::json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "x"}});
    assert!(std::panic::catch_unwind(|| parse(&unknown, "unknown")).is_err());
}

#[test]
fn kustomizations_list_files_that_exist() {
    let root = root();
    let (manifests, kustomizations) = load_all();
    let mut listed: BTreeSet<PathBuf> = BTreeSet::new();
    for (rel, k) in &kustomizations {
        assert_eq!(
            k.api_version,
            "kustomize.config.k8s.io/v1beta1",
            "{}",
            rel.display()
        );
        assert_eq!(k.kind, "Kustomization", "{}", rel.display());
        let dir = rel.parent().expect("in a directory");
        assert!(!k.resources.is_empty(), "{}: no resources", rel.display());
        for r in &k.resources {
            let target = root.join(dir).join(r);
            let target = target
                .canonicalize()
                .unwrap_or_else(|e| panic!("{}: {r}: {e}", rel.display()));
            if target.is_dir() {
                assert!(
                    target.join("kustomization.yaml").is_file(),
                    "{}: {r} is a directory without kustomization.yaml",
                    rel.display()
                );
            } else {
                assert!(target.is_file(), "{}: {r} is not a file", rel.display());
            }
            listed.insert(target);
        }
    }
    // Every manifest outside examples/ is applied by `kubectl apply -k deploy/`.
    for (rel, _) in &manifests {
        if rel.starts_with("deploy/examples") {
            continue;
        }
        let abs = root.join(rel).canonicalize().expect("exists");
        assert!(
            listed.contains(&abs),
            "{} is listed by no kustomization",
            rel.display()
        );
    }
    // And crds/ is reached from deploy/ (through base/).
    let find = |path: &str| {
        &kustomizations
            .iter()
            .find(|(rel, _)| rel == Path::new(path))
            .unwrap_or_else(|| panic!("{path}"))
            .1
    };
    assert_eq!(find("deploy/kustomization.yaml").resources, vec!["base"]);
    assert!(find("deploy/base/kustomization.yaml")
        .resources
        .iter()
        .any(|r| r == "../../crds"));
    // Only the overlay patches, and the whole install renders.
    assert!(kustomizations
        .iter()
        .all(|(rel, k)| k.patches.is_empty() || rel.starts_with("deploy/overlays")));
    let rendered = render("deploy");
    assert!(rendered.iter().any(|d| d["kind"] == "NetworkPolicy"));
    // The install does not need the Prometheus operator's CRDs.
    assert!(
        rendered.iter().all(|d| !d["apiVersion"]
            .as_str()
            .unwrap_or_default()
            .starts_with("monitoring.coreos.com")),
        "kubectl apply -k deploy/ must not need the Prometheus operator"
    );
}

fn controller_user(d: &Deploy) -> String {
    let ns = d
        .service_account
        .metadata
        .namespace
        .clone()
        .expect("ServiceAccount namespace");
    let name = d.service_account.metadata.name.clone().expect("name");
    format!("system:serviceaccount:{ns}:{name}")
}

#[test]
fn controller_deployment_is_hardened_and_bound_to_its_service_account() {
    let d = load_deploy();
    let ns = d.namespace.metadata.name.clone().expect("namespace name");
    assert_eq!(ns, "wvo-system");
    let sa_name = d.service_account.metadata.name.clone().expect("name");
    assert_eq!(
        d.service_account.metadata.namespace.as_deref(),
        Some(ns.as_str())
    );

    let dep = &d.controller;
    assert_eq!(dep.metadata.namespace.as_deref(), Some(ns.as_str()));
    let spec = &dep.spec;
    assert_eq!(spec.replicas, Some(2), "two replicas, leader-elected");
    let labels = spec.selector.match_labels.clone().expect("selector");
    let pod_labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .expect("pod labels");
    for (k, v) in &labels {
        assert_eq!(
            pod_labels.get(k),
            Some(v),
            "selector matches the pod template"
        );
    }
    let pod = spec.template.spec.as_ref().expect("pod spec");
    assert_eq!(pod.service_account_name.as_deref(), Some(sa_name.as_str()));
    let psc = pod.security_context.as_ref().expect("pod securityContext");
    assert_eq!(psc.run_as_non_root, Some(true));
    assert!(psc.run_as_user.is_some_and(|u| u != 0), "a non-root uid");
    assert_eq!(pod.containers.len(), 1);
    let c = &pod.containers[0];
    let sc = c
        .security_context
        .as_ref()
        .expect("container securityContext");
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    let requests = c
        .resources
        .as_ref()
        .and_then(|r| r.requests.clone())
        .expect("resource requests");
    assert!(requests.contains_key("cpu") && requests.contains_key("memory"));
    let probe_path = |p: Option<&k8s_openapi::api::core::v1::Probe>| {
        p.and_then(|p| p.http_get.as_ref())
            .and_then(|h| h.path.clone())
    };
    assert_eq!(
        probe_path(c.readiness_probe.as_ref()).as_deref(),
        Some("/readyz")
    );
    assert_eq!(
        probe_path(c.liveness_probe.as_ref()).as_deref(),
        Some("/healthz")
    );
    let ports: Vec<String> = c
        .ports
        .iter()
        .flatten()
        .filter_map(|p| p.name.clone())
        .collect();
    for svc in &d.services {
        assert_eq!(svc.metadata.namespace.as_deref(), Some(ns.as_str()));
        let s = svc.spec.as_ref().expect("service spec");
        let sel = s.selector.clone().expect("service selector");
        for (k, v) in &sel {
            assert_eq!(
                pod_labels.get(k),
                Some(v),
                "Service selects the controller pods"
            );
        }
        for p in s.ports.iter().flatten() {
            use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
            if let Some(IntOrString::String(name)) = &p.target_port {
                assert!(
                    ports.contains(name),
                    "Service targetPort {name} is a container port"
                );
            }
        }
    }

    // The bindings bind the roles of this directory to that ServiceAccount.
    assert!(!d.cluster_bindings.is_empty() && !d.bindings.is_empty());
    let is_sa = |subjects: &Option<Vec<k8s_openapi::api::rbac::v1::Subject>>| {
        subjects.iter().flatten().any(|s| {
            s.kind == "ServiceAccount"
                && s.name == sa_name
                && s.namespace.as_deref() == Some(ns.as_str())
        })
    };
    for b in &d.cluster_bindings {
        assert!(
            is_sa(&b.subjects),
            "ClusterRoleBinding binds the ServiceAccount"
        );
        assert_eq!(b.role_ref.kind, "ClusterRole");
        assert!(d
            .cluster_roles
            .iter()
            .any(|r| r.metadata.name.as_ref() == Some(&b.role_ref.name)));
    }
    for b in &d.bindings {
        assert!(is_sa(&b.subjects), "RoleBinding binds the ServiceAccount");
        assert_eq!(b.metadata.namespace.as_deref(), Some(ns.as_str()));
        assert_eq!(b.role_ref.kind, "Role");
        assert!(d
            .roles
            .iter()
            .any(|r| r.metadata.name.as_ref() == Some(&b.role_ref.name)
                && r.metadata.namespace == b.metadata.namespace));
    }
    assert_eq!(controller_user(&d), CONTROLLER_USER);
}

#[test]
fn inventory_crd_and_example_parse_into_wvo_types() {
    let d = load_deploy();
    assert_eq!(
        d.inventory.metadata.namespace.as_deref(),
        Some("wvo-system")
    );
    assert_eq!(d.inventory.metadata.name.as_deref(), Some("wvo-inventory"));
    let text = d
        .inventory
        .data
        .as_ref()
        .and_then(|m| m.get(INVENTORY_KEY))
        .expect("inventory key");
    let inventory = InventoryConfig::parse(text).expect("the example inventory is valid");
    assert!(inventory.accelerators.iter().any(|a| a.discover));

    let crd = d.crds.first().expect("the CRD");
    assert_eq!(d.crds.len(), 1);
    let generated = <VariantAutoscaling as kube::CustomResourceExt>::crd();
    assert_eq!(crd.spec.group, generated.spec.group);
    assert_eq!(crd.spec.names.kind, generated.spec.names.kind);
    assert_eq!(
        serde_json::to_value(crd).expect("json"),
        serde_json::to_value(&generated).expect("json"),
        "crds/variantautoscaling.yaml is the CRD of wvo_api (regenerate it)"
    );

    assert!(!d.example_vas.is_empty());
    for va in &d.example_vas {
        let name = kube::ResourceExt::name_any(va);
        let spec = va
            .to_model_spec(&name, &inventory.service_classes)
            .unwrap_or_else(|e| panic!("example VA {name}: {e}"));
        assert_eq!(spec.variants.len(), va.spec.variants.len());
        for v in &va.spec.variants {
            assert!(
                inventory
                    .accelerators
                    .iter()
                    .any(|a| a.name == v.accelerator),
                "example variant {} uses an inventory accelerator",
                v.name
            );
        }
    }
}

// ---- RBAC ------------------------------------------------------------------------------

/// A rule with its scope: `None` cluster-wide (ClusterRole through a ClusterRoleBinding),
/// `Some(ns)` in one namespace (Role through a RoleBinding).
type ScopedRule = (Option<String>, PolicyRule);

/// The rules granted to `user` by the bindings of deploy/.
fn granted_rules(d: &Deploy, user: &str) -> Vec<ScopedRule> {
    let subject_is = |s: &k8s_openapi::api::rbac::v1::Subject| {
        s.kind == "ServiceAccount"
            && format!(
                "system:serviceaccount:{}:{}",
                s.namespace.as_deref().unwrap_or_default(),
                s.name
            ) == user
    };
    let mut out = Vec::new();
    for b in &d.cluster_bindings {
        if !b.subjects.iter().flatten().any(subject_is) {
            continue;
        }
        let role = d
            .cluster_roles
            .iter()
            .find(|r| r.metadata.name.as_ref() == Some(&b.role_ref.name))
            .expect("bound ClusterRole");
        for rule in role.rules.iter().flatten() {
            out.push((None, rule.clone()));
        }
    }
    for b in &d.bindings {
        if !b.subjects.iter().flatten().any(subject_is) {
            continue;
        }
        let ns = b.metadata.namespace.clone().expect("RoleBinding namespace");
        let rules: Vec<PolicyRule> = if b.role_ref.kind == "ClusterRole" {
            d.cluster_roles
                .iter()
                .find(|r| r.metadata.name.as_ref() == Some(&b.role_ref.name))
                .and_then(|r| r.rules.clone())
                .unwrap_or_default()
        } else {
            d.roles
                .iter()
                .find(|r| {
                    r.metadata.name.as_ref() == Some(&b.role_ref.name)
                        && r.metadata.namespace.as_ref() == Some(&ns)
                })
                .and_then(|r| r.rules.clone())
                .unwrap_or_default()
        };
        for rule in rules {
            out.push((Some(ns.clone()), rule));
        }
    }
    out
}

fn has(list: &[String], x: &str) -> bool {
    list.iter().any(|v| v == x || v == "*")
}

/// Whether a rule allows a request, as the RBAC authorizer decides it.
fn allows((scope, rule): &ScopedRule, r: &RecordedRequest) -> bool {
    if scope.as_ref().is_some_and(|ns| *ns != r.namespace) {
        return false;
    }
    if rule.non_resource_urls.is_some() && rule.resources.is_none() {
        return false;
    }
    let names_ok = match &rule.resource_names {
        Some(names) if !names.is_empty() => names.contains(&r.name),
        _ => true,
    };
    has(&rule.verbs, &r.verb)
        && has(rule.api_groups.as_deref().unwrap_or_default(), &r.api_group)
        && has(
            rule.resources.as_deref().unwrap_or_default(),
            &r.rbac_resource(),
        )
        && names_ok
}

/// (scope, apiGroup, resource, verb) a rule set grants.
fn grants(rules: &[ScopedRule]) -> BTreeSet<(String, String, String, String)> {
    let mut out = BTreeSet::new();
    for (scope, rule) in rules {
        for g in rule.api_groups.iter().flatten() {
            for res in rule.resources.iter().flatten() {
                for v in &rule.verbs {
                    out.insert((
                        scope.clone().unwrap_or_else(|| "*".into()),
                        g.clone(),
                        res.clone(),
                        v.clone(),
                    ));
                }
            }
        }
    }
    out
}

fn grant_used(g: &(String, String, String, String), r: &RecordedRequest) -> bool {
    (g.0 == "*" || g.0 == r.namespace)
        && g.1 == r.api_group
        && g.2 == r.rbac_resource()
        && g.3 == r.verb
}

fn show(r: &RecordedRequest) -> String {
    format!(
        "{} {}/{} ns={:?} name={:?}",
        r.verb,
        if r.api_group.is_empty() {
            "core"
        } else {
            &r.api_group
        },
        r.rbac_resource(),
        r.namespace,
        r.name
    )
}

#[test]
fn rbac_matcher_denies_what_no_rule_grants() {
    let d = load_deploy();
    let rules = granted_rules(&d, CONTROLLER_USER);
    assert!(!rules.is_empty());
    assert!(
        rules.iter().all(|(_, r)| {
            !r.verbs.iter().any(|v| v == "*")
                && !r.api_groups.iter().flatten().any(|g| g == "*")
                && !r.resources.iter().flatten().any(|x| x == "*")
        }),
        "no wildcards in a least-privilege role"
    );
    let req = |verb: &str, group: &str, res: &str, sub: &str, ns: &str| RecordedRequest {
        user: CONTROLLER_USER.into(),
        verb: verb.into(),
        api_group: group.into(),
        resource: res.into(),
        subresource: sub.into(),
        namespace: ns.into(),
        name: "x".into(),
    };
    let allowed = |r: &RecordedRequest| rules.iter().any(|rule| allows(rule, r));
    assert!(allowed(&req(
        "patch",
        "apps",
        "deployments",
        "scale",
        "llm"
    )));
    assert!(allowed(&req("watch", "apps", "deployments", "", "llm")));
    assert!(!allowed(&req(
        "update",
        "apps",
        "deployments",
        "scale",
        "llm"
    )));
    assert!(!allowed(&req("patch", "apps", "deployments", "", "llm")));
    assert!(!allowed(&req("delete", "", "pods", "", "llm")));
    assert!(!allowed(&req("list", "", "secrets", "", "llm")));
    // The Role only counts in its namespace.
    assert!(allowed(&req("get", "", "configmaps", "", "wvo-system")));
    assert!(!allowed(&req("get", "", "configmaps", "", "llm")));
    assert!(allowed(&req(
        "patch",
        "coordination.k8s.io",
        "leases",
        "",
        "wvo-system"
    )));
    assert!(!allowed(&req(
        "patch",
        "coordination.k8s.io",
        "leases",
        "",
        "kube-system"
    )));
    // Nobody else is granted anything.
    assert!(granted_rules(&d, "system:serviceaccount:default:default").is_empty());
}

/// The inventory of the coverage run: H100 discovered from Nodes (capped), L40S discovered.
const DISCOVER_INVENTORY: &str = "accelerators:\n- {name: H100, discover: true, count: 8, costPerHour: 4.1, nodeSelector: {nvidia.com/gpu.product: NVIDIA-H100-80GB-HBM3}}\n- {name: L40S, discover: true, costPerHour: 1.3, nodeSelector: {nvidia.com/gpu.product: NVIDIA-L40S}}\nserviceClasses:\n- {name: premium, priority: 100, ttftMs: 500, itlMs: 50}\n";

fn admin_va(cluster: &Cluster, name: &str) -> Option<Value> {
    cluster
        .api
        .get("wvo.dev/v1alpha1", "VariantAutoscaling", NS, name)
}

/// The ClusterRole of the status API's reader in the coverage run.
const READER_RBAC: &str = r#"[
 {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
  "metadata": {"name": "wvo-reader"},
  "rules": [{"nonResourceURLs": ["/api/v1/*"], "verbs": ["get"]}]},
 {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
  "metadata": {"name": "wvo-reader"},
  "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "wvo-reader"},
  "subjects": [{"kind": "User", "name": "reader", "apiGroup": "rbac.authorization.k8s.io"}]}
]"#;

/// Runs the real controller (leader election, the run loop, cycles, the status API with
/// kube authentication) through every path that calls the API, watching `watch_namespace`
/// (None: all), and returns the requests its client made.
async fn controller_requests(d: &Deploy, watch_namespace: Option<&str>) -> Vec<RecordedRequest> {
    let user = controller_user(d);
    assert_eq!(
        user, CONTROLLER_USER,
        "the fixtures' controller acts as the deployed SA"
    );

    // Setup, with the test's own client: inventory with discovery, a VA in mode scale and
    // one in mode hpa whose workloads an HPA each targets; a reader of the status API.
    let cluster = Cluster::start().await;
    cluster.set_inventory(DISCOVER_INVENTORY).await;
    cluster
        .two_variant_va(
            "scaled",
            "meta-llama/Llama-3.1-8B-Instruct",
            "  actuation: scale\n",
        )
        .await;
    cluster
        .two_variant_va("bounded", "Qwen/Qwen2.5-7B-Instruct", "  actuation: hpa\n")
        .await;
    cluster.hpa("bounded-h100", "bounded-h100", 1, 1).await;
    cluster.hpa("bounded-l40s", "bounded-l40s", 1, 1).await;
    cluster.wait_ready("scaled-h100", 1).await;
    cluster.wait_ready("bounded-h100", 1).await;
    cluster.set_load("meta-llama/Llama-3.1-8B-Instruct", 35.0);
    cluster.set_load("Qwen/Qwen2.5-7B-Instruct", 35.0);
    let reader: Vec<Value> = serde_json::from_str(READER_RBAC).expect("reader RBAC");
    for object in &reader {
        cluster.api.create(object).expect("reader RBAC object");
    }
    let token = "t-reader-6f0b2d";
    cluster.api.add_token(token, TokenUser::new("reader"));
    cluster.api.clear_requests();

    // The controller as `wvo run` wires it: leader election on a Lease in wvo-system, then
    // the run loop. From here on the test reads the cluster through admin calls only.
    let election = runner::elect(
        cluster.controller_client(),
        &LeaderConfig {
            namespace: "wvo-system".into(),
            name: "wvo-leader".into(),
            identity: "wvo-0".into(),
            duration_seconds: 15,
            grace_seconds: 5,
        },
    )
    .await
    .expect("leader election");
    let leader = election.leader.clone();
    let mut leading = election.leader.clone();
    tokio::time::timeout(Duration::from_secs(20), leading.wait_for(|l| *l))
        .await
        .expect("becomes leader in time")
        .expect("election running");
    let (reconciler, view, metrics) = cluster.controller_with(ControllerConfig {
        watch_namespace: watch_namespace.map(str::to_string),
        ..test_config("wvo-0")
    });
    let reconciler = reconciler.with_lease(election.guard());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(runner::run(
        reconciler,
        view.clone(),
        Some(metrics.clone()),
        Duration::from_millis(100),
        leader,
        async {
            let _ = stopped.await;
        },
    ));

    // Scale-up through /scale, HPA bounds, status written, and a repeated Event (two
    // ScaledUp on one VA in a cycle: the Recorder patches the second into a series).
    eventually(30, "scaled-h100 scaled up through /scale", || async {
        let dep = cluster
            .api
            .get("apps/v1", "Deployment", NS, "scaled-h100")?;
        (dep["spec"]["replicas"].as_i64()? > 1).then_some(())
    })
    .await;
    eventually(30, "an HPA of bounded raised", || async {
        cluster
            .api
            .list("autoscaling/v2", "HorizontalPodAutoscaler", Some(NS))
            .iter()
            .any(|h| h["spec"]["minReplicas"].as_i64().unwrap_or(1) > 1)
            .then_some(())
    })
    .await;
    eventually(30, "both statuses written", || async {
        ["scaled", "bounded"]
            .iter()
            .all(|n| {
                admin_va(&cluster, n).is_some_and(|v| {
                    v["status"]["decisions"]
                        .as_array()
                        .is_some_and(|d| !d.is_empty())
                })
            })
            .then_some(())
    })
    .await;
    eventually(30, "a repeated Event (series)", || async {
        cluster
            .api
            .list("events.k8s.io/v1", "Event", Some(NS))
            .iter()
            .any(|e| e["series"]["count"].as_i64().unwrap_or(0) >= 2)
            .then_some(())
    })
    .await;

    // The status API as `wvo run --listen 0.0.0.0:8080` serves it: a reader's request is
    // reviewed (TokenReview, SubjectAccessReview on the path, then on the VAs' namespace).
    let app = wvo_controller::status_api::secured_router(
        view.clone(),
        metrics.clone(),
        wvo_controller::whatif::WhatIfRunner::new(Default::default()),
        Auth::kube(cluster.controller_client(), KubeAuthConfig::default()),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "http://{}/api/v1/models",
        listener.local_addr().expect("addr")
    );
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    wvo_collector::install_crypto_provider();
    let answer = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .expect("http client")
        .get(&url)
        .bearer_auth(token)
        .send()
        .await
        .expect("status API answers");
    assert_eq!(
        answer.status().as_u16(),
        200,
        "the reader may get the models"
    );
    server.abort();

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("run loop stops")
        .expect("run loop");
    // Release the Lease cleanly (every receiver closed first, or the manager keeps it).
    drop(leading);
    tokio::time::timeout(Duration::from_secs(10), election.release())
        .await
        .expect("the Lease is released");

    let made: Vec<RecordedRequest> = cluster
        .api
        .requests()
        .into_iter()
        .filter(|r| r.user == user)
        .collect();
    assert!(!made.is_empty(), "the controller's requests were recorded");
    made
}

/// Every request in `made` is allowed by `rules`, and every (scope, group, resource, verb)
/// the rules grant was used by one of them.
fn allows_exactly(rules: &[ScopedRule], made: &[RecordedRequest], install: &str) {
    let denied: BTreeSet<String> = made
        .iter()
        .filter(|r| !rules.iter().any(|rule| allows(rule, r)))
        .map(show)
        .collect();
    assert!(
        denied.is_empty(),
        "{install} lacks rules for calls the controller makes:\n  {}",
        denied.into_iter().collect::<Vec<_>>().join("\n  ")
    );
    let granted = grants(rules);
    let unused: Vec<String> = granted
        .iter()
        .filter(|g| !made.iter().any(|r| grant_used(g, r)))
        .map(|(scope, g, res, v)| format!("{v} {g}/{res} (scope {scope})"))
        .collect();
    let mut used: BTreeMap<String, usize> = BTreeMap::new();
    for r in made {
        let call = show(r);
        let call = call.split(" ns=").next().unwrap_or_default().to_string();
        *used.entry(call).or_default() += 1;
    }
    assert!(
        unused.is_empty(),
        "{install} grants what the controller never uses:\n  {}\nused: {used:?}",
        unused.join("\n  ")
    );
}

/// Runs the real controller through every path that calls the API, and checks the requests
/// its client made against deploy/base/rbac.yaml both ways: each is allowed, and each
/// granted (apiGroup, resource, verb) was used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_allows_exactly_the_calls_the_controller_makes() {
    let d = load_deploy();
    let rules = granted_rules(&d, &controller_user(&d));
    let made = controller_requests(&d, None).await;
    assert!(
        made.iter()
            .any(|r| r.resource == "tokenreviews" && r.verb == "create"),
        "the status API's reviews were made"
    );
    allows_exactly(&rules, &made, "deploy/base/rbac.yaml");
}

/// Resources that are cluster-scoped: the only ones the namespaced install may grant through
/// a ClusterRoleBinding.
const CLUSTER_SCOPED: &[(&str, &str)] = &[
    ("", "nodes"),
    ("authentication.k8s.io", "tokenreviews"),
    ("authorization.k8s.io", "subjectaccessreviews"),
];

/// The namespaced install (deploy/overlays/namespaced, rendered by kubectl's kustomize):
/// nothing namespaced is granted cluster-wide, `wvo run --namespace X` is given the same
/// namespace as the Role, and the calls of a controller watching X are allowed exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_namespaced_install_allows_exactly_the_calls_of_a_namespaced_controller() {
    let d = load_namespaced();
    let user = controller_user(&d);
    let rules = granted_rules(&d, &user);

    // Cluster-wide (ClusterRoleBinding) grants only cluster-scoped resources.
    for (scope, rule) in &rules {
        if scope.is_some() {
            continue;
        }
        assert!(rule.non_resource_urls.is_none(), "no URLs: {rule:?}");
        for g in rule.api_groups.iter().flatten() {
            for r in rule.resources.iter().flatten() {
                assert!(
                    CLUSTER_SCOPED.contains(&(g.as_str(), r.as_str())),
                    "the namespaced install grants {g}/{r} cluster-wide"
                );
            }
        }
    }
    // A RoleBinding of a ClusterRole would do the same in one namespace: none here.
    assert!(d.bindings.iter().all(|b| b.role_ref.kind == "Role"));

    // The controller's --namespace is the namespace of the Role granting the VAs.
    let args = d
        .controller
        .spec
        .template
        .spec
        .as_ref()
        .and_then(|p| p.containers.first())
        .and_then(|c| c.args.clone());
    let namespace = args
        .iter()
        .flatten()
        .find_map(|a| a.strip_prefix("--namespace="))
        .expect("the overlay passes --namespace")
        .to_string();
    assert_eq!(
        namespace, NS,
        "the overlay's example namespace is the fixtures'"
    );
    assert!(rules.iter().any(|(scope, r)| {
        scope.as_deref() == Some(namespace.as_str())
            && r.resources
                .iter()
                .flatten()
                .any(|x| x == "variantautoscalings")
    }));

    let made = controller_requests(&d, Some(&namespace)).await;
    allows_exactly(&rules, &made, "deploy/overlays/namespaced");
}

#[test]
fn the_network_policy_admits_only_the_api_port_from_monitoring() {
    let d = load_deploy();
    assert_eq!(d.network_policies.len(), 1);
    let np = &d.network_policies[0];
    assert_eq!(np.metadata.namespace, d.controller.metadata.namespace);
    let spec = np.spec.as_ref().expect("spec");
    let pod_labels = d
        .controller
        .spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .expect("pod labels");
    let selector = spec.pod_selector.as_ref().expect("podSelector");
    let selected = selector.match_labels.clone().unwrap_or_default();
    assert!(!selected.is_empty(), "selects by label, not every pod");
    for (k, v) in &selected {
        assert_eq!(pod_labels.get(k), Some(v), "selects the controller pods");
    }
    assert!(spec.policy_types.iter().flatten().any(|t| t == "Ingress"));
    let container_ports: Vec<String> = d
        .controller
        .spec
        .template
        .spec
        .as_ref()
        .map(|p| {
            p.containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .filter_map(|p| p.name.clone())
                .collect()
        })
        .unwrap_or_default();
    let ingress = spec.ingress.as_ref().expect("ingress rules");
    assert!(!ingress.is_empty());
    for rule in ingress {
        use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
        // Every rule names its sources (no open `from`) and the API port only.
        let from = rule
            .from
            .as_ref()
            .expect("a rule without `from` admits everyone");
        assert!(!from.is_empty());
        for peer in from {
            let ns = peer
                .namespace_selector
                .as_ref()
                .and_then(|s| s.match_labels.as_ref())
                .and_then(|l| l.get("kubernetes.io/metadata.name"));
            assert_eq!(ns.map(String::as_str), Some("monitoring"));
            assert!(peer.ip_block.is_none());
        }
        let ports = rule
            .ports
            .as_ref()
            .expect("a rule without ports admits every port");
        for p in ports {
            match &p.port {
                Some(IntOrString::String(name)) => assert!(container_ports.contains(name)),
                other => panic!("port {other:?}: name the container's API port"),
            }
        }
    }
}

/// The KEDA install (deploy/overlays/keda, rendered by kubectl's kustomize): the scaler's
/// port is served (`--keda-listen`), exposed by the Service under the address the example
/// ScaledObject names, admitted from KEDA's namespace only, with one replica (a standby
/// answers `Unavailable`); and the example's trigger metadata is what the scaler reads.
#[test]
fn the_keda_overlay_serves_the_scaler_port_the_example_scaled_object_names() {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    let docs = render("deploy/overlays/keda");
    let d = deploy_from(
        docs.iter()
            .enumerate()
            .map(|(i, doc)| parse(doc, &format!("keda overlay document {}", i + 1))),
    );
    let spec = &d.controller.spec;
    assert_eq!(
        spec.replicas,
        Some(1),
        "one replica: a standby cannot answer KEDA"
    );
    let pod = spec.template.spec.as_ref().expect("pod spec");
    let container = &pod.containers[0];
    let args = container.args.clone().unwrap_or_default();
    let listen = args
        .iter()
        .find_map(|a| a.strip_prefix("--keda-listen="))
        .expect("--keda-listen in the args");
    let port: i32 = listen
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port");
    let named = container
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some("keda"))
        .expect("a container port named keda");
    assert_eq!(named.container_port, port);
    // Everything the base has is still there.
    assert!(args.iter().any(|a| a == "--api-auth=kube"), "{args:?}");

    // The example names the Service's keda port.
    let example: Value = serde_norway::from_str(
        &std::fs::read_to_string(root().join("deploy/examples/scaledobject.yaml"))
            .expect("the example ScaledObject"),
    )
    .expect("YAML");
    let trigger = &example["spec"]["triggers"][0];
    let address = trigger["metadata"]["scalerAddress"]
        .as_str()
        .expect("scalerAddress");
    let svc = d
        .services
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some("wvo"))
        .expect("the wvo Service");
    let svc_ns = svc.metadata.namespace.clone().unwrap_or_default();
    let svc_port = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .and_then(|ps| ps.iter().find(|p| p.name.as_deref() == Some("keda")))
        .expect("a Service port named keda");
    assert_eq!(
        svc_port.target_port,
        Some(IntOrString::String("keda".into()))
    );
    assert_eq!(
        address,
        format!("wvo.{svc_ns}.svc:{}", svc_port.port),
        "the example's scalerAddress is the Service's keda port"
    );
    let metadata: std::collections::HashMap<String, String> = trigger["metadata"]
        .as_object()
        .expect("metadata")
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect();
    let key = wvo_keda::scaler::parse_key(
        example["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default(),
        &metadata,
    )
    .expect("the scaler reads the example's trigger");
    assert_eq!(
        (key.variant_autoscaling.as_str(), key.variant.as_str()),
        ("llama-8b", "h100")
    );

    // KEDA's namespace reaches the scaler port, and nothing else is opened to it.
    let np = &d.network_policies[0];
    let ingress = np
        .spec
        .as_ref()
        .and_then(|s| s.ingress.clone())
        .unwrap_or_default();
    let keda_rules: Vec<_> = ingress
        .iter()
        .filter(|r| {
            r.from.iter().flatten().any(|peer| {
                peer.namespace_selector
                    .as_ref()
                    .and_then(|s| s.match_labels.as_ref())
                    .and_then(|l| l.get("kubernetes.io/metadata.name"))
                    .is_some_and(|n| n == "keda")
            })
        })
        .collect();
    assert_eq!(keda_rules.len(), 1, "{ingress:?}");
    let ports: Vec<_> = keda_rules[0].ports.iter().flatten().collect();
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0].port, Some(IntOrString::String("keda".into())));
}
