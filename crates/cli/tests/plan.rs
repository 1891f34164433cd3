//! `wvo plan` as a user runs it: exit codes, one-line errors, the JSON contract.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn wvo(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wvo"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run wvo");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write stdin");
    } else {
        drop(child.stdin.take());
    }
    child.wait_with_output().expect("wait for wvo")
}

#[test]
fn example_plan_prints_the_json_contract() {
    let out = wvo(&["plan", "examples/plan.yaml", "--output", "json"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    for key in [
        "feasible",
        "totalCostPerHour",
        "lowerBoundCostPerHour",
        "solveMillis",
        "variants",
        "models",
        "accelerators",
    ] {
        assert!(plan.get(key).is_some(), "missing {key}");
    }
    let variant = &plan["variants"][0];
    for key in [
        "model",
        "variant",
        "accelerator",
        "replicas",
        "gpus",
        "costPerHour",
        "capacityRps",
    ] {
        assert!(variant.get(key).is_some(), "variant missing {key}");
    }
    let model = &plan["models"][0];
    for key in ["model", "demandRps", "servedRps", "satisfaction"] {
        assert!(model.get(key).is_some(), "model missing {key}");
    }
    assert_eq!(plan["variants"].as_array().map(Vec::len), Some(6));
    assert_eq!(plan["models"][0]["model"], "llama-8b");
    // Cost is the sum of the variants' costs, and never below the bound.
    let sum: f64 = plan["variants"]
        .as_array()
        .expect("variants")
        .iter()
        .map(|v| v["costPerHour"].as_f64().expect("cost"))
        .sum();
    let total = plan["totalCostPerHour"].as_f64().expect("total");
    assert!((sum - total).abs() < 1e-6);
    if let Some(lb) = plan["lowerBoundCostPerHour"].as_f64() {
        assert!(lb <= total + 1e-9);
    }
}

#[test]
fn same_file_same_output() {
    let strip = |out: Output| {
        let mut v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        v["solveMillis"] = serde_json::Value::Null;
        v
    };
    let a = strip(wvo(&["plan", "examples/plan.yaml", "-o", "json"], None));
    let b = strip(wvo(&["plan", "examples/plan.yaml", "-o", "json"], None));
    assert_eq!(a, b);
}

#[test]
fn table_output_for_people() {
    let out = wvo(&["plan", "examples/plan.yaml"], None);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("MODEL"));
    assert!(text.contains("total cost: $"));
    assert!(text.contains("llama-8b"));
}

#[test]
fn capacity_constrained_plan_exits_zero() {
    let input = r#"{"inventory": [{"name": "T", "count": 2, "costPerHour": 1.0}],
        "models": [{"name": "m", "variants": [{"name": "v", "accelerator": "T", "maxRequestsPerSecond": 10}]}],
        "load": {"m": {"arrivalRate": 50}}}"#;
    let out = wvo(&["plan", "-", "-o", "json"], Some(input));
    assert!(out.status.success());
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(plan["feasible"], false);
    assert_eq!(plan["lowerBoundCostPerHour"], serde_json::Value::Null);
    assert_eq!(plan["variants"][0]["replicas"], 2);
    assert_eq!(plan["models"][0]["satisfaction"], 0.4);
}

#[test]
fn bad_input_exits_non_zero_with_one_line_naming_the_field() {
    let cases = [
        (
            r#"{"inventory": [{"name": "H100", "count": 2, "costPerHour": 1.0}],
               "models": [{"name": "m", "variants": [{"name": "v", "accelerator": "H200", "maxRequestsPerSecond": 10}]}],
               "load": {"m": {"arrivalRate": 5}}}"#,
            "models[0].variants[0].accelerator",
        ),
        (
            "inventory: [{name: T, count: 2, costPerHour: 1.0}]\nmodels: [{name: m, variants: [{name: v, accelerator: T, maxRequestsPerSecond: 10}]}]\nload: {m: {arrivalRate: -3}}\n",
            "load.m.arrivalRate",
        ),
        (
            "inventory: [{name: T, count: 2, costPerHour: 1.0}]\nmodels: [{name: m, variants: [{name: v, accelerater: T, maxRequestsPerSecond: 10}]}]\nload: {m: {arrivalRate: 3}}\n",
            "accelerater",
        ),
    ];
    for (input, field) in cases {
        let out = wvo(&["plan", "-"], Some(input));
        assert_eq!(out.status.code(), Some(2), "{input}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        assert!(err.contains(field), "{err} should name {field}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn missing_file_is_an_error() {
    let out = wvo(&["plan", "no/such/file.yaml"], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no/such/file.yaml"), "{err}");
}

/// A one-model input (JSON) with `cost`, `rps`, `rate` and `headroom` filled in.
fn one_model(cost: &str, rps: &str, rate: &str, headroom: &str) -> String {
    format!(
        r#"{{"inventory": [{{"name": "T", "count": 2, "costPerHour": {cost}}}],
            "models": [{{"name": "m", "variants": [{{"name": "v", "accelerator": "T", "maxRequestsPerSecond": {rps}}}]}}],
            "load": {{"m": {{"arrivalRate": {rate}}}}},
            "options": {{"headroom": {headroom}}}}}"#
    )
}

/// Runs `wvo plan -` on `input`, expects exit 2 with one line on stderr and nothing on
/// stdout, and returns that line.
fn refused(input: &str) -> String {
    let out = wvo(&["plan", "-", "-o", "json"], Some(input));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{input}\nstderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    err
}

fn assert_names(err: &str, field: &str, range: &str) {
    assert!(err.contains(field), "{err} should name {field}");
    assert!(
        err.contains(range),
        "{err} should state the range {range:?}"
    );
}

#[test]
fn huge_cost_per_hour_exits_2_naming_the_field_and_range() {
    let err = refused(&one_model("1e308", "10", "5", "0"));
    assert_names(
        &err,
        "inventory[0].costPerHour",
        "must be between 0 and 1000000 $/h (got 1e308)",
    );
}

#[test]
fn huge_arrival_rate_exits_2_naming_the_field_and_range() {
    let err = refused(&one_model("1.0", "10", "1e308", "0"));
    assert_names(
        &err,
        "load.m.arrivalRate",
        "between 0 and 1e9 req/s (got 1e308)",
    );
}

#[test]
fn huge_headroom_exits_2_naming_the_field_and_range() {
    let err = refused(&one_model("1.0", "10", "5", "1e308"));
    assert_names(&err, "options.headroom", "between 0 and 100");
    assert!(err.contains("(got 1e308)"), "{err}");
}

#[test]
fn huge_max_requests_per_second_exits_2_naming_the_field_and_range() {
    let err = refused(&one_model("1.0", "1e308", "5", "0"));
    assert_names(
        &err,
        "models[0].variants[0].maxRequestsPerSecond",
        "between 1e-6 and 1e9 req/s per replica (got 1e308)",
    );
}

#[test]
fn yaml_huge_cost_per_hour_exits_2_naming_the_field_and_range() {
    let input = "inventory: [{name: T, count: 2, costPerHour: 1.0e+308}]\nmodels: [{name: m, variants: [{name: v, accelerator: T, maxRequestsPerSecond: 10}]}]\nload: {m: {arrivalRate: 5}}\n";
    let err = refused(input);
    assert_names(
        &err,
        "inventory[0].costPerHour",
        "between 0 and 1000000 $/h",
    );
}

#[test]
fn json_negative_count_exits_2_naming_the_field_path() {
    let input =
        r#"{"inventory":[{"name":"H100","count":-1,"costPerHour":1.0}],"models":[],"load":{}}"#;
    let err = refused(input);
    assert!(err.contains("inventory[0].count"), "{err}");
    assert!(
        err.contains("invalid value: integer `-1`, expected u32"),
        "{err}"
    );
}

#[test]
fn json_type_errors_name_nested_field_paths() {
    let input = r#"{"inventory": [{"name": "T", "count": 2, "costPerHour": 1.0}],
        "models": [{"name": "m", "variants": [{"name": "v", "accelerator": "T", "gpusPerReplica": 1.5, "maxRequestsPerSecond": 10}]}],
        "load": {"m": {"arrivalRate": 5}}}"#;
    let err = refused(input);
    assert!(
        err.contains("models[0].variants[0].gpusPerReplica"),
        "{err}"
    );
    let input = r#"{"inventory": [{"name": "T", "count": 2, "costPerHour": 1.0}],
        "models": [{"name": "m", "variants": [{"name": "v", "accelerator": "T", "maxRequestsPerSecond": 10}]}],
        "load": {"m": {"arrivalRate": "fast"}}}"#;
    let err = refused(input);
    assert!(err.contains("load.m.arrivalRate"), "{err}");
    // Trailing text after the object is still refused.
    let err = refused(r#"{"inventory": [], "models": []} extra"#);
    assert!(err.contains("invalid JSON plan input"), "{err}");
}

#[test]
fn yaml_negative_count_exits_2_naming_the_field_path() {
    let input = "inventory: [{name: H100, count: -1, costPerHour: 1.0}]\nmodels: []\n";
    let err = refused(input);
    assert!(err.contains("inventory[0].count"), "{err}");
}

#[test]
fn empty_plan_costs_zero_not_negative_zero() {
    let out = wvo(
        &["plan", "-", "-o", "json"],
        Some(r#"{"inventory": [], "models": []}"#),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("-0.0"), "negative zero in {text}");
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(plan["totalCostPerHour"].as_f64(), Some(0.0), "{text}");
}

/// A profile-based model planned at a mean SLO and at p99: the output says which, the table
/// notes the mean, and p99 needs at least as many replicas.
#[test]
fn the_plan_says_what_its_slo_targets_mean() {
    let input = |slo: &str| {
        format!(
            r#"{{"inventory": [{{"name": "H100", "count": 16, "costPerHour": 2.5}}],
            "models": [{{"name": "m", "slo": {slo},
              "variants": [{{"name": "h100", "accelerator": "H100",
                "profile": {{"alpha": 6, "beta": 0.05, "gamma": 15, "delta": 0.01, "maxBatchSize": 256}}}}]}}],
            "load": {{"m": {{"arrivalRate": 60, "avgInputTokens": 512, "avgOutputTokens": 256}}}}}}"#
        )
    };
    let run = |slo: &str, format: &str| {
        let out = wvo(&["plan", "-", "--output", format], Some(&input(slo)));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let replicas = |json: &str| {
        let plan: serde_json::Value = serde_json::from_str(json).expect("JSON");
        (
            plan["models"][0]["slo"].as_str().map(str::to_string),
            plan["variants"][0]["replicas"].as_u64().expect("replicas"),
        )
    };
    let mean_slo = r#"{"ttftMs": 500, "itlMs": 15}"#;
    let p99_slo = r#"{"ttftMs": 500, "itlMs": 15, "percentile": 99}"#;
    let (mean_label, mean_replicas) = replicas(&run(mean_slo, "json"));
    let (p99_label, p99_replicas) = replicas(&run(p99_slo, "json"));
    assert_eq!(mean_label.as_deref(), Some("mean"));
    assert_eq!(p99_label.as_deref(), Some("p99"));
    // An ITL target near the decode step: the tail needs more replicas than the mean.
    assert!(
        p99_replicas > mean_replicas,
        "{mean_replicas} -> {p99_replicas}"
    );
    assert!(run(mean_slo, "table").contains("are means (no slo.percentile)"));
    assert!(!run(p99_slo, "table").contains("are means"));
}
