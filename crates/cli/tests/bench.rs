//! `wvo bench`: the JSON contract, reproducible bytes for a seed, the table, SVG plots, and
//! errors that name the field or flag.

mod common;

use std::process::Output;

use common::wvo_elsewhere as wvo;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const POLICY_KEYS: [&str; 11] = [
    "policy",
    "gpuHours",
    "costDollars",
    "sloAttainment",
    "ttftP99Ms",
    "itlP99Ms",
    "requests",
    "dropped",
    "scalingActions",
    "recoverySeconds",
    "perTier",
];

#[test]
fn json_contract_for_a_short_step() {
    let out = wvo(&[
        "bench",
        "--scenario",
        "step",
        "--duration-seconds",
        "2400",
        "--policies",
        "wvo,static,oracle",
        "--seed",
        "5",
    ]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["scenario"], "step");
    assert_eq!(v["seed"], 5);
    assert_eq!(v["simulatedSeconds"].as_f64(), Some(2400.0));
    let policies = v["policies"].as_array().expect("policies array");
    let names: Vec<&str> = policies
        .iter()
        .map(|p| p["policy"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["wvo", "static", "oracle"]);
    for p in policies {
        let obj = p.as_object().expect("policy object");
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut want = POLICY_KEYS.to_vec();
        want.sort_unstable();
        assert_eq!(keys, want);
        let requests = p["requests"].as_u64().unwrap();
        assert!(requests > 1000, "{p}");
        assert!(p["dropped"].as_u64().unwrap() <= requests);
        let attainment = p["sloAttainment"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&attainment));
        assert!(p["gpuHours"].as_f64().unwrap() > 0.0);
        assert!(p["costDollars"].as_f64().unwrap() > p["gpuHours"].as_f64().unwrap());
        assert!(p["ttftP99Ms"].as_f64().unwrap() > 0.0);
        assert!(p["itlP99Ms"].as_f64().unwrap() > 0.0);
        // The step scenario has a load step: recovery is a number.
        assert!(p["recoverySeconds"].as_f64().is_some(), "{p}");
        assert_eq!(p["perTier"]["0"].as_f64(), Some(attainment));
    }
    // Same arrivals for every policy.
    assert!(policies
        .iter()
        .all(|p| p["requests"] == policies[0]["requests"]));
    // Static holds the peak plan for the whole run: no scaling, the highest cost.
    assert_eq!(policies[1]["scalingActions"], 0);
    assert!(policies[2]["costDollars"].as_f64() < policies[1]["costDollars"].as_f64());

    let again = wvo(&[
        "bench",
        "--scenario",
        "step",
        "--duration-seconds",
        "2400",
        "--policies",
        "wvo,static,oracle",
        "--seed",
        "5",
    ]);
    assert_eq!(out.stdout, again.stdout, "same seed, same bytes");
}

#[test]
fn table_and_plots() {
    let dir = std::env::temp_dir().join(format!("wvo-bench-plots-{}", std::process::id()));
    let out = wvo(&[
        "bench",
        "--scenario",
        "steady",
        "--duration-seconds",
        "600",
        "--policies",
        "wvo,oracle",
        "--output",
        "table",
        "--plot",
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.lines().any(|l| l.starts_with("wvo ")), "{table}");
    assert!(table.lines().any(|l| l.starts_with("oracle ")), "{table}");
    for name in [
        "replicas-wvo.svg",
        "load-capacity-oracle.svg",
        "cost-attainment.svg",
    ] {
        let svg = std::fs::read_to_string(dir.join(name)).expect(name);
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{name}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn errors_name_the_flag_or_field() {
    let out = wvo(&["bench", "--scenario", "steady", "--policies", "wvo,cron"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--policies") && stderr(&out).contains("cron"),
        "{}",
        stderr(&out)
    );

    let out = wvo(&[
        "bench",
        "--scenario",
        "steady",
        "--wvo-scale-down-margin=NaN",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--wvo-scale-down-margin"),
        "{}",
        stderr(&out)
    );

    let out = wvo(&["bench", "--scenario", "no-such-scenario"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no-such-scenario"),
        "{}",
        stderr(&out)
    );

    let file = std::env::temp_dir().join(format!("wvo-bench-bad-{}.yaml", std::process::id()));
    std::fs::write(
        &file,
        "name: bad\ninventory: [{name: L4, count: 1, costPerHour: 0.8}]\nmodels:\n  - name: m\n    slo: {ttftMs: 500, itlMs: 30}\n    variants: [{name: v, accelerator: A100, profile: {alpha: 8, beta: 0.3, gamma: 10, delta: 0.05, maxBatchSize: 32}}]\n    traffic: {shape: constant, rate: 1}\n    tokens: {input: 100, output: 10}\n",
    )
    .unwrap();
    let out = wvo(&["bench", "--scenario", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("models[0].variants[0].accelerator"),
        "{}",
        stderr(&out)
    );
    let _ = std::fs::remove_file(&file);
}
