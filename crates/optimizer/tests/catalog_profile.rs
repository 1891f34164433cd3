//! `profile: {catalog: NAME, tp: N}` in a plan: resolved by the estimator, errors name the
//! field (the example file is planned in crates/cli/tests/profile.rs).

use wvo_api::{PlanInput, Profile, ProfileSpec};
use wvo_optimizer::problem::Problem;

fn input(profile_json: &str, accelerator: &str) -> PlanInput {
    let text = format!(
        r#"{{"inventory": [{{"name": "{accelerator}", "count": 8, "costPerHour": 2.5}}],
            "models": [{{"name": "m", "slo": {{"ttftMs": 800, "itlMs": 40}},
              "variants": [{{"name": "v", "accelerator": "{accelerator}", "gpusPerReplica": 2, "profile": {profile_json}}}]}}],
            "load": {{"m": {{"arrivalRate": 10, "avgInputTokens": 1024, "avgOutputTokens": 256}}}}}}"#
    );
    serde_json::from_str(&text).expect("plan parses")
}

#[test]
fn catalog_reference_parses_and_round_trips_while_inline_stays_inline() {
    let i = input(
        r#"{"catalog": "llama-3.1-8b", "tp": 1, "dtype": "fp8"}"#,
        "H100",
    );
    match &i.models[0].variants[0].profile {
        Some(ProfileSpec::Catalog(c)) => {
            assert_eq!(
                (c.catalog.as_str(), c.tp, c.dtype.as_deref()),
                ("llama-3.1-8b", Some(1), Some("fp8"))
            )
        }
        other => panic!("{other:?}"),
    }
    let json = serde_json::to_string(&i).unwrap();
    assert!(
        json.contains(r#""profile":{"catalog":"llama-3.1-8b","tp":1,"dtype":"fp8"}"#),
        "{json}"
    );
    let i = input(
        r#"{"alpha": 6, "beta": 0.05, "gamma": 15, "delta": 0.01, "maxBatchSize": 64}"#,
        "H100",
    );
    assert_eq!(
        i.models[0].variants[0].profile,
        Some(ProfileSpec::Inline(Profile {
            alpha: 6.0,
            beta: 0.05,
            gamma: 15.0,
            delta: 0.01,
            max_batch_size: 64
        }))
    );
    // A typo in an inline profile still names the field.
    let text = r#"{"inventory": [], "models": [{"name": "m", "variants": [{"name": "v", "accelerator": "H100",
        "profile": {"alpah": 6, "beta": 0.05, "gamma": 15, "delta": 0.01, "maxBatchSize": 64}}]}]}"#;
    let err = serde_json::from_str::<PlanInput>(text)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `alpah`"), "{err}");
}

#[test]
fn catalog_profile_gives_the_estimators_capacity() {
    let p = Problem::from_input(&input(r#"{"catalog": "llama-3.1-8b"}"#, "H100")).unwrap();
    let cap = p.variants[0].capacity;
    // tp defaults to gpusPerReplica (2): faster than tp 1.
    let p1 =
        Problem::from_input(&input(r#"{"catalog": "llama-3.1-8b", "tp": 1}"#, "H100")).unwrap();
    assert!(cap > 0.0 && p1.variants[0].capacity > 0.0, "{cap}");
    let est = wvo_perf::estimate_by_name(
        wvo_perf::Catalog::embedded().unwrap(),
        "llama-3.1-8b",
        "H100",
        1,
        None,
        &wvo_perf::EstimateOptions {
            avg_input_tokens: 1024.0,
            avg_output_tokens: 256.0,
            ..Default::default()
        },
    )
    .unwrap();
    // The planner's capacity is the model's at the mix rounded to three significant digits
    // (the memo): 1024 prompt tokens count as 1020.
    let want = wvo_perf::replica_capacity_memo(
        &est.profile().unwrap(),
        &wvo_api::Slo {
            ttft_ms: 800.0,
            itl_ms: 40.0,
            percentile: None,
        },
        &wvo_perf::TokenMix {
            avg_input_tokens: 1024.0,
            avg_output_tokens: 256.0,
        },
    )
    .unwrap()
    .rps;
    assert!((p1.variants[0].capacity - want).abs() < 1e-9);
}

#[test]
fn catalog_errors_name_the_field() {
    let err = Problem::from_input(&input(r#"{"catalog": "llama-9"}"#, "H100")).unwrap_err();
    assert_eq!(err.field, "models[0].variants[0].profile.catalog", "{err}");
    assert!(
        err.problem.contains("llama-3.1-8b"),
        "lists the valid names: {err}"
    );
    let err = Problem::from_input(&input(r#"{"catalog": "llama-3.1-8b"}"#, "V100")).unwrap_err();
    assert_eq!(err.field, "models[0].variants[0].accelerator", "{err}");
    assert!(err.problem.contains("H100-PCIE"), "{err}");
    let err =
        Problem::from_input(&input(r#"{"catalog": "llama-3.1-70b", "tp": 1}"#, "L4")).unwrap_err();
    assert_eq!(err.field, "models[0].variants[0].profile", "{err}");
    assert!(err.problem.contains("does not fit"), "{err}");
    let err = Problem::from_input(&input(
        r#"{"catalog": "llama-3.1-8b", "dtype": "int3"}"#,
        "H100",
    ))
    .unwrap_err();
    assert_eq!(err.field, "models[0].variants[0].profile.dtype", "{err}");
    let err =
        Problem::from_input(&input(r#"{"catalog": "llama-3.1-8b", "tp": 3}"#, "H100")).unwrap_err();
    assert_eq!(err.field, "models[0].variants[0].profile.tp", "{err}");
}
