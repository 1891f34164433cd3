//! The Prometheus source's pure parts: PromQL text, response parsing, per-pod figures.

use std::collections::BTreeMap;
use wvo_collector::aggregate::Window;
use wvo_collector::names::Flavor;
use wvo_collector::prometheus::{self, PromSample, Results};
use wvo_collector::{CollectorError, Target};

fn row(labels: &[(&str, &str)], value: f64) -> PromSample {
    PromSample {
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        value,
    }
}

fn pod(p: &str, tag: &str, value: f64) -> PromSample {
    row(
        &[
            ("namespace", "ns"),
            ("model_name", "m"),
            ("pod", p),
            ("wvo_metric", tag),
        ],
        value,
    )
}

#[test]
fn one_query_per_signal_grouped_by_pod_with_all_names() {
    let qs = prometheus::queries(60, &prometheus::matchers(Some("ns"), None));
    let ids: Vec<&str> = qs.iter().map(|q| q.id.as_str()).collect();
    assert!(ids.contains(&"request_rate") && ids.contains(&"kv_usage"));
    let mut seen = std::collections::BTreeSet::new();
    for q in &qs {
        assert!(seen.insert(q.id.clone()), "duplicate query id {}", q.id);
        assert!(
            !q.promql.contains("model_name=\""),
            "no per-model query: {}",
            q.promql
        );
    }
    let kv = qs.iter().find(|q| q.id == "kv_usage").expect("kv query");
    for name in [
        "vllm:kv_cache_usage_perc",
        "vllm:gpu_cache_usage_perc",
        "sglang:token_usage",
    ] {
        assert!(kv.promql.contains(name), "{}", kv.promql);
    }
    assert!(kv.promql.contains("by (namespace, model_name, pod)"));
    assert!(kv.promql.contains("namespace=\"ns\""));
    for (id, name) in [
        ("running_growth", "vllm:num_requests_running"),
        ("waiting_growth", "vllm:num_requests_waiting"),
    ] {
        let q = qs.iter().find(|q| q.id == id).expect("growth query");
        assert!(
            q.promql.contains(&format!(
                "sum by (namespace, model_name, pod) (deriv({name}{{namespace=\"ns\"}}[60s]))"
            )),
            "{}",
            q.promql
        );
    }
    let rate = qs.iter().find(|q| q.id == "request_rate").expect("rate");
    assert!(rate
        .promql
        .contains("rate(vllm:request_success_total{namespace=\"ns\"}[60s])"));
}

#[test]
fn api_error_html_and_nan_responses() {
    let err = prometheus::parse_response(
        "http://p/api/v1/query",
        "up",
        400,
        r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#,
    )
    .expect_err("api error");
    assert!(matches!(err, CollectorError::Query { .. }));
    assert!(err.to_string().contains("bad_data") && err.to_string().contains("http://p"));

    let err = prometheus::parse_response(
        "http://p/api/v1/query",
        "up",
        502,
        "<html>bad gateway</html>",
    )
    .expect_err("html 502");
    assert!(
        matches!(err, CollectorError::Status { status: 502, .. }),
        "{err}"
    );

    let err = prometheus::parse_response("http://p/api/v1/query", "up", 200, "hello")
        .expect_err("garbage");
    assert!(matches!(err, CollectorError::Parse { .. }));
    assert!(err.to_string().contains("http://p/api/v1/query"));

    let ok = prometheus::parse_response(
        "u",
        "q",
        200,
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"pod":"a"},"value":[1.5,"NaN"]},{"metric":{"pod":"b"},"value":[1.5,"+Inf"]}]}}"#,
    )
    .expect("parses");
    assert!(ok[0].value.is_nan());
    assert!(ok[1].value.is_infinite());
}

#[test]
fn preferred_name_per_pod_and_nan_unknown() {
    let mut r: Results = BTreeMap::new();
    r.insert(
        "age".into(),
        Ok(vec![
            row(
                &[
                    ("namespace", "ns"),
                    ("model_name", "m"),
                    ("pod", "a"),
                    ("engine", "0"),
                    ("wvo_metric", "vllm:num_requests_running"),
                ],
                2.0,
            ),
            pod("b", "vllm:num_requests_running", 3.0),
        ]),
    );
    r.insert(
        "kv_usage".into(),
        Ok(vec![
            pod("a", "vllm:gpu_cache_usage_perc", 0.9),
            pod("a", "vllm:kv_cache_usage_perc", 0.5),
            pod("b", "vllm:gpu_cache_usage_perc", 0.7),
        ]),
    );
    r.insert(
        "running".into(),
        Ok(vec![
            pod("a", "vllm:num_requests_running", 4.0),
            pod("b", "vllm:num_requests_running", f64::NAN),
        ]),
    );
    let (pods, _) = prometheus::pods_from_results(&r);
    assert_eq!(pods.len(), 2);
    let a = &pods[0];
    assert_eq!(
        a.flavors.iter().copied().collect::<Vec<_>>(),
        vec![Flavor::VllmV1]
    );
    let b = &pods[1];
    assert_eq!(
        b.flavors.iter().copied().collect::<Vec<_>>(),
        vec![Flavor::VllmV0]
    );
    let obs = prometheus::observations_from_results(
        "t",
        &r,
        &[
            Target {
                namespace: "ns".into(),
                model: "m".into(),
                variant: "h100".into(),
                pod: "a".into(),
                url: String::new(),
            },
            Target {
                namespace: "ns".into(),
                model: "m".into(),
                variant: "l40s".into(),
                pod: "b".into(),
                url: String::new(),
            },
        ],
        &Window::default(),
        0.0,
    );
    let m = obs.model("m").expect("model");
    let h100 = m.variant("h100").expect("h100");
    assert_eq!(h100.figures.kv_usage.value(), Some(0.5));
    assert_eq!(
        h100.figures.kv_usage.metric(),
        Some("vllm:kv_cache_usage_perc")
    );
    assert_eq!(h100.figures.kv_usage.age_seconds(), Some(2.0));
    assert_eq!(h100.figures.running.value(), Some(4.0));
    let l40s = m.variant("l40s").expect("l40s");
    assert!(l40s
        .figures
        .running
        .reason()
        .is_some_and(|r| r.contains("NaN")));
    // The model figure needs every pod: one NaN pod makes it unknown, not 4.
    assert!(m.figures.running.value().is_none());
    assert!((m.figures.kv_usage.value().unwrap_or(-1.0) - 0.6).abs() < 1e-9);
    // Queries that were not answered at all: unknown with a reason.
    assert!(m.figures.arrival_rate_rps.reason().is_some());
}
