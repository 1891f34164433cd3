//! Scenario files: the built-ins parse, and a bad file names the offending field.

use wvo_bench::{BenchError, Scenario, BUILT_IN};

#[test]
fn every_built_in_scenario_parses_and_is_its_example_file() {
    for name in BUILT_IN {
        let s = Scenario::load(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(s.name, name);
        let path = format!(
            "{}/../../examples/bench/{name}.yaml",
            env!("CARGO_MANIFEST_DIR")
        );
        let from_file = Scenario::load(&path).unwrap();
        assert_eq!(s, from_file, "{name}: built-in differs from {path}");
        for m in &s.models {
            for v in &m.variants {
                assert!(
                    v.capacity_rps > 0.0,
                    "{name}/{}/{}: no capacity",
                    m.name,
                    v.name
                );
            }
        }
    }
}

const GOOD: &str = r#"
name: t
inventory: [{name: L4, count: 2, costPerHour: 0.8}]
models:
  - name: m
    slo: {ttftMs: 500, itlMs: 30}
    variants:
      - {name: l4, accelerator: L4, profile: {alpha: 8, beta: 0.3, gamma: 10, delta: 0.05, maxBatchSize: 32}}
    traffic: {shape: constant, rate: 2}
    tokens: {input: 200, output: 50}
"#;

fn error_of(yaml: &str) -> String {
    match Scenario::parse(yaml) {
        Ok(_) => panic!("accepted a bad scenario:\n{yaml}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn defaults_apply_to_a_minimal_file() {
    let s = Scenario::parse(GOOD).unwrap();
    assert_eq!(s.duration_seconds, 7200.0);
    assert_eq!(s.startup_seconds, 90.0);
    assert_eq!(s.timeout_seconds, 60.0);
}

#[test]
fn bad_files_name_the_field() {
    let cases = [
        (
            GOOD.replace("accelerator: L4", "accelerator: H100"),
            "models[0].variants[0].accelerator",
        ),
        (
            GOOD.replace("ttftMs: 500", "ttftMs: -1"),
            "models[0].slo.ttftMs",
        ),
        (
            GOOD.replace("rate: 2", "rate: -2"),
            "models[0].traffic.rate",
        ),
        (
            GOOD.replace("output: 50", "output: 0"),
            "models[0].tokens.output",
        ),
        (
            GOOD.replace("name: t", "name: t\ndurationSeconds: 0"),
            "durationSeconds",
        ),
        (
            GOOD.replace("name: t", "name: t\ntimeoutSecs: 3"),
            "timeoutSecs",
        ),
        (
            GOOD.replace("shape: constant", "shape: sawtooth"),
            "sawtooth",
        ),
        (
            GOOD.replace("    tokens: {input: 200, output: 50}\n", ""),
            "tokens",
        ),
        (
            GOOD.replace(
                "profile: {alpha",
                "profile: {catalog: no-such-model, tp: 1}, unused: {alpha",
            ),
            "unused",
        ),
    ];
    for (yaml, field) in cases {
        let e = error_of(&yaml);
        assert!(e.contains(field), "error {e:?} does not name {field:?}");
    }
    let missing = Scenario::load("/no/such/file.yaml").unwrap_err();
    assert!(matches!(missing, BenchError::Io { .. }));
    assert!(missing.to_string().contains("steady"), "{missing}");
}

#[test]
fn a_piecewise_shape_interpolates_holds_its_ends_and_jumps() {
    let s = Scenario::parse(&GOOD.replace(
        "{shape: constant, rate: 2}",
        "{shape: piecewise, points: [[100, 2], [130, 20], [300, 20], [300, 5], [400, 5], [1000, 10]]}",
    ))
    .unwrap();
    let shape = &s.models[0].traffic.shape;
    let r = |t: f64| shape.rate(t);
    assert_eq!(r(0.0), 2.0, "the first point's rate before it");
    assert_eq!(r(100.0), 2.0);
    assert!((r(115.0) - 11.0).abs() < 1e-12, "linear between points");
    assert_eq!(r(299.0), 20.0);
    assert_eq!(
        r(300.0),
        5.0,
        "two points at one time: a jump, the later one holds"
    );
    assert!((r(700.0) - 7.5).abs() < 1e-12);
    assert_eq!(r(5000.0), 10.0, "the last point's rate after it");
    assert_eq!(shape.max_rate(0.0, 110.0), r(110.0));
    assert_eq!(shape.max_rate(120.0, 2000.0), 20.0);
    assert_eq!(shape.max_rate(350.0, 400.0), 5.0);
    // A rise to >= 1.5x within 60 s is a load step (counted from its start); the slow rise
    // from 400 s to 1000 s is not.
    assert_eq!(shape.steps(7200.0), vec![100.0]);
    assert!(shape.steps(50.0).is_empty());
    for (points, field) in [
        ("[]", "models[0].traffic.points"),
        ("[[10, 1], [5, 2]]", "models[0].traffic.points[1]"),
        ("[[0, -1]]", "models[0].traffic.points[0]"),
    ] {
        let e = error_of(&GOOD.replace(
            "{shape: constant, rate: 2}",
            &format!("{{shape: piecewise, points: {points}}}"),
        ));
        assert!(e.contains(field), "{points}: {e}");
    }
}

#[test]
fn slo_percentile_reaches_the_planner_and_is_checked() {
    let s = Scenario::parse(&GOOD.replace(
        "slo: {ttftMs: 500, itlMs: 30}",
        "slo: {ttftMs: 500, itlMs: 30, percentile: 95}",
    ))
    .unwrap();
    assert_eq!(s.models[0].slo.percentile, Some(95.0));
    assert_eq!(
        s.models[0].spec().slo.and_then(|slo| slo.percentile),
        Some(95.0),
        "static, oracle and wvo plan with the model spec"
    );
    for bad in ["50", "99.95", "-3"] {
        let e = error_of(&GOOD.replace(
            "slo: {ttftMs: 500, itlMs: 30}",
            &format!("slo: {{ttftMs: 500, itlMs: 30, percentile: {bad}}}"),
        ));
        assert!(e.contains("models[0].slo.percentile"), "{bad}: {e}");
    }
}
