//! `wvo profile`: the JSON contract, fits:false, unknown names, --list, and a plan file with
//! catalog profiles.

mod common;

use std::process::Output;

use common::wvo_elsewhere as wvo;

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

const KEYS: [&str; 12] = [
    "model",
    "accelerator",
    "tp",
    "dtype",
    "fits",
    "alpha",
    "beta",
    "gamma",
    "delta",
    "maxBatchSize",
    "kvCacheTokens",
    "capacityRps",
];

#[test]
fn json_contract_with_and_without_an_slo() {
    let v = json(&wvo(&[
        "profile",
        "--model",
        "meta-llama/Llama-3.1-8B-Instruct",
        "--accelerator",
        "H100",
        "--output",
        "json",
    ]));
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    let mut want = KEYS.to_vec();
    want.sort();
    let mut got = keys.clone();
    got.sort();
    assert_eq!(got, want);
    assert_eq!(v["model"], "llama-3.1-8b");
    assert_eq!(
        (v["tp"].as_u64(), v["dtype"].as_str(), v["fits"].as_bool()),
        (Some(1), Some("bf16"), Some(true))
    );
    assert!(v["capacityRps"].is_null());
    assert!((v["alpha"].as_f64().unwrap() - 5.9739).abs() < 1e-3, "{v}");
    assert_eq!(v["maxBatchSize"], 256);

    let v = json(&wvo(&[
        "profile",
        "--model",
        "qwen2.5-32b",
        "--accelerator",
        "A100-80G",
        "--tp",
        "2",
        "--dtype",
        "fp8",
        "--ttft-ms",
        "1000",
        "--itl-ms",
        "50",
        "--input-tokens",
        "2048",
        "--output-tokens",
        "256",
        "-o",
        "json",
    ]));
    assert_eq!(
        (v["tp"].as_u64(), v["dtype"].as_str()),
        (Some(2), Some("fp8"))
    );
    assert!(v["capacityRps"].as_f64().unwrap() > 0.0, "{v}");
}

#[test]
fn a_model_that_does_not_fit_exits_0_with_fits_false() {
    let v = json(&wvo(&[
        "profile",
        "--model",
        "llama-3.1-70b",
        "--accelerator",
        "L4",
        "--ttft-ms",
        "1000",
        "--itl-ms",
        "50",
        "-o",
        "json",
    ]));
    assert_eq!(v["fits"], false);
    assert_eq!(
        (v["maxBatchSize"].as_u64(), v["kvCacheTokens"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(v["capacityRps"].as_f64(), Some(0.0));
}

#[test]
fn unknown_names_exit_nonzero_with_one_line_listing_valid_names() {
    for (args, want) in [
        (
            ["--model", "llama-3.1-8b", "--accelerator", "V100"],
            "H100, H100-PCIE, H200, B200, A100-80G, A100-40G, L40S, L4, A10G, MI300X, Gaudi2",
        ),
        (
            ["--model", "llama-9", "--accelerator", "H100"],
            "llama-3.1-8b",
        ),
    ] {
        let out = wvo(&[&["profile"][..], &args[..]].concat());
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(want), "{err}");
    }
}

#[test]
fn list_shows_the_catalog() {
    let out = wvo(&["profile", "--list"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for name in [
        "H100-PCIE",
        "Gaudi2",
        "MI300X",
        "llama-3.1-70b",
        "openai/gpt-oss-120b",
    ] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
}

#[test]
fn plan_with_catalog_profiles_plans() {
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/plan-catalog.yaml"
    );
    let v = json(&wvo(&["plan", file, "--output", "json"]));
    assert_eq!(v["feasible"], true, "{v}");
    for variant in v["variants"].as_array().unwrap() {
        assert!(variant["capacityRps"].as_f64().unwrap() > 0.0, "{variant}");
    }
}
