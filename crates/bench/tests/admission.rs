//! The bench's wvo policy runs the controller's admission on each scenario model.

use wvo_bench::{BenchError, Policy, Scenario, Wvo, WvoConfig};

#[test]
fn a_model_the_controller_would_refuse_is_refused_by_the_bench_naming_it() {
    let mut scenario = Scenario::load("steady").expect("the built-in steady scenario");
    let mut wvo = Wvo::new(WvoConfig::default());
    assert!(wvo.initial(&scenario).is_ok(), "the built-in is admitted");

    // An accelerator the inventory does not have: `wvo run` refuses such a VA (InvalidSpec).
    scenario.models[0].variants[0].accelerator = "TPU-v9".into();
    match wvo.initial(&scenario) {
        Err(BenchError::Field { field, problem }) => {
            assert_eq!(field, "models[0]");
            assert!(
                problem.starts_with("the controller would refuse this model")
                    && problem.contains("TPU-v9"),
                "{problem}"
            );
        }
        other => panic!("expected the admission's refusal, got {other:?}"),
    }
}
