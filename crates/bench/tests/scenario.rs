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
