//! deploy/monitoring/: what a Prometheus-operator stack gets from wvo.
//!
//! - The kustomization renders a ServiceMonitor for the wvo Service's port (with Prometheus's
//!   token, the VA's `namespace` label kept), the RBAC that lets Prometheus `get` /metrics,
//!   the PrometheusRule and the Grafana dashboard's ConfigMap (the JSON file, labelled for
//!   Grafana's sidecar).
//! - The rules pass `promtool check rules`, and `promtool test rules` runs
//!   tests/tests/data/wvo-rules-test.yaml (each alert firing and not firing).
//! - Every metric a dashboard panel, a dashboard variable or an alert names is one wvo's
//!   `/metrics` encoder produces (read from its `# TYPE` lines).
//! - A real Prometheus (Debian's `prometheus`) on 127.0.0.1 scrapes a server exposing
//!   `Metrics::encode()` and evaluates every panel and alert query, the SLO attainment and
//!   capacity ones to the values set.
//!
//! promtool and prometheus are required (`.ci/run` installs them): a test fails, naming the
//! package, when one is missing.

use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wvo_controller::metrics::Metrics;
use wvo_controller::view::{AcceleratorView, LatencyView, ModelView, VariantView};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn monitoring(file: &str) -> PathBuf {
    root().join("deploy/monitoring").join(file)
}

/// A binary on PATH, or a failure naming the package that provides it.
fn binary(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not on PATH: install Debian's `prometheus` package (it provides \
                 prometheus and promtool; .ci/run installs it). This test does not skip."
            )
        })
}

/// A temp dir removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("wvo-{what}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn yaml_documents(text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).expect("YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

/// The PrometheusRule of deploy/monitoring.
fn prometheus_rule() -> Value {
    let path = monitoring("prometheusrule.yaml");
    let docs = yaml_documents(&std::fs::read_to_string(&path).expect("read rules"));
    assert_eq!(docs.len(), 1, "{}: one document", path.display());
    let rule = docs.into_iter().next().expect("one");
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(rule["kind"], "PrometheusRule");
    rule
}

/// The rule's groups as a Prometheus rules file, written to `dir/wvo-rules.yaml`.
fn write_rules_file(dir: &Path) -> PathBuf {
    let groups = serde_json::json!({"groups": prometheus_rule()["spec"]["groups"]});
    let path = dir.join("wvo-rules.yaml");
    std::fs::write(&path, serde_norway::to_string(&groups).expect("YAML")).expect("write");
    path
}

/// Every rule of the PrometheusRule: (alert name, rule).
fn alerts() -> Vec<(String, Value)> {
    let rule = prometheus_rule();
    let mut out = Vec::new();
    for group in rule["spec"]["groups"].as_array().expect("groups") {
        for r in group["rules"].as_array().expect("rules") {
            let name = r["alert"].as_str().expect("every rule is an alert");
            out.push((name.to_string(), r.clone()));
        }
    }
    out
}

fn dashboard() -> Value {
    let text = std::fs::read_to_string(monitoring("grafana-dashboard.json")).expect("read");
    serde_json::from_str(&text).expect("the Grafana dashboard is JSON")
}

fn promtool(args: &[&str], dir: &Path) -> (bool, String) {
    let out = Command::new(binary("promtool"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run promtool");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_rules_pass_promtool_check_rules() {
    let dir = TempDir::new("rules");
    let rules = write_rules_file(&dir.0);
    let (ok, out) = promtool(&["check", "rules", &rules.to_string_lossy()], &dir.0);
    assert!(ok, "promtool check rules:\n{out}");
    assert!(
        out.contains(&format!("{} rules found", alerts().len())),
        "{out}"
    );

    // And promtool does fail on a broken expression (the check can fail).
    let broken = dir.0.join("broken.yaml");
    std::fs::write(
        &broken,
        "groups:\n  - name: x\n    rules:\n      - alert: X\n        expr: sum(wvo_cycles_total[5m]\n",
    )
    .expect("write");
    let (ok, _) = promtool(&["check", "rules", &broken.to_string_lossy()], &dir.0);
    assert!(!ok, "promtool accepted a broken expression");
}

#[test]
fn the_alerts_pass_their_promtool_unit_tests() {
    let dir = TempDir::new("rules-test");
    write_rules_file(&dir.0);
    let tests = root().join("tests/tests/data/wvo-rules-test.yaml");
    std::fs::copy(&tests, dir.0.join("wvo-rules-test.yaml")).expect("copy");
    let (ok, out) = promtool(&["test", "rules", "wvo-rules-test.yaml"], &dir.0);
    assert!(ok, "promtool test rules:\n{out}");
    // Every alert is tested.
    let text = std::fs::read_to_string(&tests).expect("read");
    for (name, _) in alerts() {
        assert!(
            text.contains(&format!("alertname: {name}")),
            "{name} has no promtool unit test in {}",
            tests.display()
        );
    }
}

#[test]
fn alerts_have_a_duration_a_severity_and_say_what_happened() {
    let names: BTreeSet<String> = alerts().into_iter().map(|(n, _)| n).collect();
    for wanted in [
        "WvoCycleFailing",
        "WvoCycleStalled",
        "WvoMetricsUnknown",
        "WvoCapacityConstrained",
        "WvoSloAttainmentLow",
        "WvoLeaderFlapping",
    ] {
        assert!(names.contains(wanted), "{wanted} missing: {names:?}");
    }
    for (name, rule) in alerts() {
        let duration = rule["for"].as_str().unwrap_or_default();
        assert!(
            duration.ends_with('m') && duration.len() > 1,
            "{name}: `for:` in minutes, got {duration:?}"
        );
        let severity = rule["labels"]["severity"].as_str().unwrap_or_default();
        assert!(
            ["warning", "critical"].contains(&severity),
            "{name}: severity {severity:?}"
        );
        for annotation in ["summary", "description"] {
            assert!(
                rule["annotations"][annotation]
                    .as_str()
                    .is_some_and(|s| s.len() > 10),
                "{name}: no {annotation}"
            );
        }
        // An alert about a model names its VA.
        let expr = rule["expr"].as_str().expect("expr");
        if expr.contains("by (namespace, va, model)") {
            for annotation in ["summary", "description"] {
                let text = rule["annotations"][annotation].as_str().unwrap_or_default();
                assert!(
                    text.contains("{{ $labels.namespace }}/{{ $labels.va }}"),
                    "{name}: the {annotation} does not name the VA"
                );
            }
        }
    }
}

/// Metric names wvo's `/metrics` encoder produces after a cycle-like set of values, with the
/// sample suffixes of their types (`_total` for counters; `_bucket`, `_sum`, `_count` for
/// histograms).
fn exported_names() -> BTreeSet<String> {
    let text = filled_metrics().encode();
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
            panic!("malformed TYPE line {line:?}");
        };
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            "gauge" => &[""],
            other => panic!("unexpected metric type {other} of {name}"),
        };
        for s in suffixes {
            names.insert(format!("{name}{s}"));
        }
    }
    // Every name is one a sample line of the exposition uses.
    for name in &names {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} "))),
            "{name} has a TYPE line but no sample after a cycle"
        );
    }
    names
}

/// A view like one a cycle publishes: one model within its SLO with 3 of 4 desired replicas
/// of 10 req/s each.
fn sample_model() -> ModelView {
    ModelView {
        namespace: "llm".into(),
        name: "chat".into(),
        model_id: "qwen".into(),
        priority: 0,
        arrival_rate: Some(25.0),
        demand_rps: 30.0,
        satisfaction: 1.0,
        metrics_unknown: None,
        variants: vec![VariantView {
            name: "h100".into(),
            accelerator: "H100".into(),
            current: 3,
            ready: 3,
            pending: 0,
            planned: 4,
            desired: 4,
            capacity_rps: 10.0,
            cost_per_hour: 16.0,
            price_per_replica: 4.0,
            reason: String::new(),
            may_actuate: true,
            frozen: None,
        }],
        conditions: vec![],
        latency: Some(LatencyView {
            ttft_mean_ms: Some(120.0),
            ttft_p95_ms: Some(300.0),
            itl_mean_ms: Some(20.0),
            itl_p95_ms: Some(35.0),
            ttft_target_ms: Some(500.0),
            itl_target_ms: Some(50.0),
            percentile: Some(95.0),
            within_slo: Some(true),
        }),
        actuation: wvo_api::crd::ActuationMode::Scale,
        dry_run: false,
    }
}

fn sample_accelerators() -> Vec<AcceleratorView> {
    vec![AcceleratorView {
        name: "H100".into(),
        available: 8,
        used: 4,
        cost_per_hour: 4.0,
    }]
}

/// Metrics after a cycle: every family has a sample.
fn filled_metrics() -> Metrics {
    let m = Metrics::new();
    m.set_leader(true);
    m.observe_cycle(0.2, 0.02);
    m.count_error("plan");
    m.count_whatif(200);
    m.observe_whatif_solve(0.1);
    m.set_wake("llm", "chat", Some(0.0));
    m.set_replicas("llm", "chat", "h100", "H100", 4, 3);
    m.set_models(&[sample_model()], &sample_accelerators(), 1000.0);
    m
}

/// The metric names a PromQL expression selects: identifiers that are not functions,
/// keywords, label names (in `{...}` or grouping clauses), durations (`[...]`) or strings.
fn metric_names(expr: &str) -> BTreeSet<String> {
    const KEYWORDS: &[&str] = &[
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "inf",
        "nan",
        "atan2",
    ];
    // Aggregations, whose modifier may come before their parentheses (`sum by (a) (x)`).
    const AGGREGATIONS: &[&str] = &[
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio",
    ];
    const CLAUSES: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let skip_to = |from: usize, close: char| -> usize {
        let mut j = from;
        let mut quote: Option<char> = None;
        while j < chars.len() {
            let c = chars[j];
            match quote {
                Some(_) if c == '\\' => j += 1,
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None if c == '"' || c == '\'' || c == '`' => quote = Some(c),
                None if c == close => return j + 1,
                None => {}
            }
            j += 1;
        }
        j
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            // A string: skip to its closing quote.
            let mut j = i + 1;
            while j < chars.len() && chars[j] != c {
                if chars[j] == '\\' {
                    j += 1;
                }
                j += 1;
            }
            i = j + 1;
        } else if c == '{' {
            i = skip_to(i + 1, '}');
        } else if c == '[' {
            i = skip_to(i + 1, ']');
        } else if c.is_ascii_alphanumeric() || c == '_' || c == ':' || c == '$' || c == '.' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "_:$.".contains(chars[i]))
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut next = i;
            while next < chars.len() && chars[next].is_whitespace() {
                next += 1;
            }
            let called = chars.get(next) == Some(&'(');
            if CLAUSES.contains(&word.as_str()) {
                // A label list follows (`by (a, b)`, `group_left(c)`, or none).
                if called {
                    i = skip_to(next + 1, ')');
                }
            } else if word.starts_with(|c: char| c.is_ascii_digit() || c == '.' || c == '$')
                || KEYWORDS.contains(&word.to_ascii_lowercase().as_str())
                || AGGREGATIONS.contains(&word.as_str())
                || called
            {
                // A number, a variable, a keyword or a function.
            } else {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn the_metric_name_reader_finds_selectors_only() {
    let expr = r#"histogram_quantile(0.95, sum by (le) (rate(a_bucket{x="b}c"}[$__rate_interval]))) / on (namespace) group_left(model) max without(pod)(b_total offset 5m) > bool 1e3 and c unless d{y=~"$v"}"#;
    let want: BTreeSet<String> = ["a_bucket", "b_total", "c", "d"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(metric_names(expr), want);
    assert_eq!(
        metric_names("time() - max(wvo_last_cycle_timestamp_seconds) > 150"),
        BTreeSet::from(["wvo_last_cycle_timestamp_seconds".to_string()])
    );
}

/// Every expression of the dashboard: each panel target's, and each variable's query.
fn dashboard_exprs(dash: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for panel in dash["panels"].as_array().expect("panels") {
        let title = panel["title"].as_str().unwrap_or_default();
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("every target has an expr");
            out.push((format!("panel {title:?}"), expr.to_string()));
        }
    }
    for var in dash["templating"]["list"].as_array().expect("templating") {
        if var["type"] == "query" {
            let query = var["query"]["query"].as_str().expect("a variable's query");
            let inner = query
                .strip_prefix("label_values(")
                .and_then(|q| q.rsplit_once(','))
                .map(|(selector, _)| selector)
                .unwrap_or_else(|| panic!("variable query {query:?}: label_values(metric, label)"));
            out.push((format!("variable {}", var["name"]), inner.to_string()));
        }
    }
    out
}

#[test]
fn dashboard_has_the_panels_and_names_only_exported_metrics() {
    let dash = dashboard();
    assert!(dash["uid"].as_str().is_some_and(|u| !u.is_empty()));
    let titles: Vec<&str> = dash["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .filter(|p| p["type"] != "row")
        .map(|p| p["title"].as_str().unwrap_or_default())
        .collect();
    for wanted in [
        "Load vs capacity per model",
        "Replicas per GPU type: desired vs current",
        "Cost of the desired replicas ($/h)",
        "Cost to date over the range ($)",
        "Measured p95 TTFT vs target",
        "Measured p95 ITL vs target",
        "SLO attainment (share of time within SLO, 30 min)",
        "Cycle duration",
        "Errors by kind",
        "Leader",
    ] {
        assert!(titles.contains(&wanted), "no panel {wanted:?}: {titles:?}");
    }
    // Panels have distinct ids and every non-row panel queries something.
    let ids: BTreeSet<i64> = dash["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .map(|p| p["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(ids.len(), dash["panels"].as_array().map_or(0, Vec::len));

    let exported = exported_names();
    let mut used = BTreeSet::new();
    for (what, expr) in dashboard_exprs(&dash) {
        let names = metric_names(&expr);
        assert!(!names.is_empty(), "{what}: {expr:?} names no metric");
        for name in names {
            assert!(
                exported.contains(&name),
                "{what}: {name} is not a metric wvo exports ({expr})\nexported: {exported:?}"
            );
            used.insert(name);
        }
    }
    // The per-model series this dashboard is for are all shown.
    for name in [
        "wvo_arrival_rate_requests_per_second",
        "wvo_demand_requests_per_second",
        "wvo_capacity_requests_per_second",
        "wvo_ttft_p95_seconds",
        "wvo_ttft_target_seconds",
        "wvo_itl_p95_seconds",
        "wvo_itl_target_seconds",
        "wvo_within_slo",
        "wvo_cost_dollars_per_hour",
        "wvo_cost_dollars_total",
        "wvo_desired_replicas",
        "wvo_current_replicas",
        "wvo_is_leader",
        "wvo_errors_total",
    ] {
        assert!(used.contains(name), "no panel shows {name}");
    }
}

#[test]
fn alerts_name_only_exported_metrics() {
    let exported = exported_names();
    for (name, rule) in alerts() {
        let expr = rule["expr"].as_str().expect("expr");
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{name}: {expr:?} names no metric");
        for metric in names {
            assert!(
                exported.contains(&metric),
                "{name}: {metric} is not a metric wvo exports ({expr})"
            );
        }
    }
    // A misspelt metric is caught.
    assert!(!exported.contains("wvo_within_slo_ratio"));
}

/// `kubectl kustomize deploy/monitoring` (offline), as documents.
fn render_monitoring() -> Vec<Value> {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(root().join("deploy/monitoring"))
        .output()
        .expect("kubectl runs (it is installed on the project's machines)");
    assert!(
        out.status.success(),
        "kubectl kustomize deploy/monitoring: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    yaml_documents(&String::from_utf8(out.stdout).expect("utf-8"))
}

#[test]
fn the_kustomization_installs_scrape_rbac_rules_and_dashboard() {
    let docs = render_monitoring();
    let by_kind: BTreeMap<&str, Vec<&Value>> = docs.iter().fold(BTreeMap::new(), |mut m, d| {
        m.entry(d["kind"].as_str().unwrap_or_default())
            .or_default()
            .push(d);
        m
    });
    let kinds: Vec<&str> = by_kind.keys().copied().collect();
    assert_eq!(
        kinds,
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "PrometheusRule",
            "ServiceMonitor"
        ]
    );
    let one = |kind: &str| -> &Value {
        let v = &by_kind[kind];
        assert_eq!(v.len(), 1, "one {kind}");
        v[0]
    };

    // The dashboard ConfigMap carries the JSON file as is, labelled for Grafana's sidecar.
    let cm = one("ConfigMap");
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    let file = std::fs::read_to_string(monitoring("grafana-dashboard.json")).expect("read");
    assert_eq!(
        cm["data"]["wvo-dashboard.json"].as_str(),
        Some(file.as_str())
    );

    // The ServiceMonitor selects the wvo Service and its port, keeps the VA's namespace label
    // and sends a bearer token.
    let base = std::fs::read_to_string(root().join("deploy/base/controller.yaml")).expect("read");
    let service = yaml_documents(&base)
        .into_iter()
        .find(|d| d["kind"] == "Service")
        .expect("the wvo Service");
    let sm = one("ServiceMonitor");
    assert_eq!(sm["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(
        sm["metadata"]["namespace"],
        service["metadata"]["namespace"]
    );
    let selector = sm["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("matchLabels");
    for (k, v) in selector {
        assert_eq!(&service["metadata"]["labels"][k], v, "selector {k}");
    }
    assert_eq!(
        sm["spec"]["namespaceSelector"]["matchNames"][0],
        service["metadata"]["namespace"]
    );
    let endpoints = sm["spec"]["endpoints"].as_array().expect("endpoints");
    assert_eq!(endpoints.len(), 1);
    let ep = &endpoints[0];
    let ports: Vec<&Value> = service["spec"]["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| &p["name"])
        .collect();
    assert!(
        ports.contains(&&ep["port"]),
        "port {} not in {ports:?}",
        ep["port"]
    );
    assert_eq!(ep["path"], "/metrics");
    assert_eq!(ep["honorLabels"], true);
    assert!(
        ep["bearerTokenFile"]
            .as_str()
            .is_some_and(|f| f.ends_with("serviceaccount/token"))
            || ep["authorization"].is_object(),
        "the ServiceMonitor sends no token: /metrics needs one (--api-auth=kube)"
    );

    // Prometheus may get /metrics, and nothing else.
    let role = one("ClusterRole");
    assert_eq!(
        role["rules"],
        serde_json::json!([{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}])
    );
    let binding = one("ClusterRoleBinding");
    assert_eq!(binding["roleRef"]["kind"], "ClusterRole");
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    assert_eq!(binding["subjects"][0]["kind"], "ServiceAccount");

    // The PrometheusRule rendered is the file's.
    assert_eq!(one("PrometheusRule")["spec"], prometheus_rule()["spec"]);
}

/// Owns a Prometheus process; kills it on drop (its temp dir goes with `dir`).
struct Prom {
    child: Child,
    url: String,
    _dir: TempDir,
}

impl Drop for Prom {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    l.local_addr().expect("addr").port()
}

fn start_prometheus(target: &str) -> Prom {
    let dir = TempDir::new("prom-monitoring");
    std::fs::create_dir_all(dir.0.join("data")).expect("data dir");
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n  - job_name: wvo\n    honor_labels: true\n    static_configs:\n      \
         - targets: ['{target}']\n        labels: {{pod: wvo-0}}\n"
    );
    std::fs::write(dir.0.join("prometheus.yml"), config).expect("config");
    let port = free_port();
    let log = std::fs::File::create(dir.0.join("prometheus.log")).expect("log");
    let child = Command::new(binary("prometheus"))
        .arg(format!(
            "--config.file={}",
            dir.0.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.0.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start prometheus");
    Prom {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    }
}

/// A `/metrics` server on 127.0.0.1 over `metrics`, as the status API serves it.
async fn serve_metrics(metrics: Arc<Metrics>) -> String {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let m = metrics.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        wvo_controller::metrics::OPENMETRICS_CONTENT_TYPE,
                    )],
                    m.encode(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr.to_string()
}

/// The result of an instant query, or the error Prometheus gave.
async fn query(client: &reqwest::Client, prom: &Prom, expr: &str) -> Result<Vec<Value>, String> {
    let url =
        reqwest::Url::parse_with_params(&format!("{}/api/v1/query", prom.url), &[("query", expr)])
            .map_err(|e| e.to_string())?;
    let answer = client.get(url).send().await.map_err(|e| e.to_string())?;
    let body: Value = answer.json().await.map_err(|e| e.to_string())?;
    if body["status"] != "success" {
        return Err(body.to_string());
    }
    Ok(body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

/// The single value of an instant vector result.
fn single_value(result: &[Value]) -> Option<f64> {
    match result {
        [one] => one["value"][1].as_str()?.parse().ok(),
        _ => None,
    }
}

/// Grafana's variables, as a query over the whole range would expand them.
fn expand_grafana(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__range", "5m")
        .replace("$namespace", ".*")
        .replace("$model", ".*")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_evaluates_the_dashboard_and_alert_queries() {
    wvo_collector::install_crypto_provider();
    let metrics = Arc::new(filled_metrics());
    let target = serve_metrics(metrics.clone()).await;
    let prom = start_prometheus(&target);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");

    // Wait (deadline 60 s) until two scrapes of the model's verdict are stored.
    let attainment = r#"avg by (namespace, va) (avg_over_time(wvo_within_slo{namespace=~".*",model=~".*"}[30m]))"#;
    let started = Instant::now();
    loop {
        let samples = query(&client, &prom, "count_over_time(wvo_within_slo[5m])").await;
        if samples.as_deref().ok().and_then(single_value) >= Some(2.0) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "Prometheus did not store two scrapes of wvo's /metrics in 60 s: {samples:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Attainment: the model was within its SLO at every scrape.
    let result = query(&client, &prom, attainment).await.expect("attainment");
    assert_eq!(single_value(&result), Some(1.0), "{result:?}");
    assert_eq!(result[0]["metric"]["va"], "chat");
    assert_eq!(
        result[0]["metric"]["namespace"], "llm",
        "the VA's namespace is kept"
    );
    // Capacity: 4 desired replicas of 10 req/s.
    let capacity = query(
        &client,
        &prom,
        "sum by (namespace, va) (wvo_capacity_requests_per_second)",
    )
    .await
    .expect("capacity");
    assert_eq!(single_value(&capacity), Some(40.0), "{capacity:?}");

    // Every panel, variable and alert expression evaluates without an error.
    let dash = dashboard();
    for (what, expr) in dashboard_exprs(&dash) {
        let expanded = expand_grafana(&expr);
        if let Err(e) = query(&client, &prom, &expanded).await {
            panic!("{what}: {expanded}: {e}");
        }
    }
    for (name, rule) in alerts() {
        let expr = rule["expr"].as_str().expect("expr");
        if let Err(e) = query(&client, &prom, expr).await {
            panic!("{name}: {expr}: {e}");
        }
    }
    // The SLO alert's condition is false for a model within its SLO.
    let slo = alerts()
        .into_iter()
        .find(|(n, _)| n == "WvoSloAttainmentLow")
        .expect("alert");
    let firing = query(&client, &prom, slo.1["expr"].as_str().expect("expr"))
        .await
        .expect("query");
    assert!(firing.is_empty(), "{firing:?}");

    // Then the model misses its SLO: the 30-minute share falls below 1.
    let mut missed = sample_model();
    if let Some(l) = missed.latency.as_mut() {
        l.within_slo = Some(false);
    }
    metrics.set_models(&[missed], &sample_accelerators(), 1015.0);
    let started = Instant::now();
    loop {
        let result = query(&client, &prom, attainment).await.expect("attainment");
        if single_value(&result).is_some_and(|v| v < 1.0 && v > 0.0) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the attainment did not fall after a miss: {result:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
