//! The capacity memo: a pure function of the mix rounded to three significant digits.

use proptest::prelude::*;
use wvo_api::{Profile, Slo};
use wvo_perf::memo::three_significant_digits;
use wvo_perf::{replica_capacity, replica_capacity_memo, TokenMix};

fn h100_like() -> Profile {
    Profile {
        alpha: 8.0,
        beta: 0.1,
        gamma: 20.0,
        delta: 0.02,
        max_batch_size: 128,
    }
}

#[test]
fn three_significant_digits_keeps_small_integers_and_rounds_the_rest() {
    assert_eq!(three_significant_digits(512.0), 512.0);
    assert_eq!(three_significant_digits(999.0), 999.0);
    assert_eq!(three_significant_digits(1234.0), 1230.0);
    assert_eq!(three_significant_digits(1235.5), 1240.0);
    assert_eq!(three_significant_digits(0.0), 0.0);
    assert!((three_significant_digits(1.23456) - 1.23).abs() < 1e-12);
    assert!((three_significant_digits(87.66) - 87.7).abs() < 1e-12);
}

#[test]
fn the_memo_answers_what_the_model_says_at_the_rounded_mix_whatever_was_asked_first() {
    let profile = h100_like();
    let slo = Slo {
        ttft_ms: 500.0,
        itl_ms: 40.0,
        percentile: Some(99.0),
    };
    let exact = TokenMix {
        avg_input_tokens: 512.0,
        avg_output_tokens: 200.0,
    };
    let near = TokenMix {
        avg_input_tokens: 512.4,
        avg_output_tokens: 199.8,
    };
    let want = replica_capacity(&profile, &slo, &exact).expect("valid inputs");
    // Asked first at the unrounded mix, then at the exact one: the same answer both times.
    let first = replica_capacity_memo(&profile, &slo, &near).expect("valid inputs");
    let second = replica_capacity_memo(&profile, &slo, &exact).expect("valid inputs");
    assert_eq!(first, want);
    assert_eq!(second, want);
}

#[test]
fn the_memo_does_not_keep_errors() {
    let slo = Slo {
        ttft_ms: 500.0,
        itl_ms: 40.0,
        percentile: None,
    };
    let bad = TokenMix {
        avg_input_tokens: f64::NAN,
        avg_output_tokens: 100.0,
    };
    assert!(replica_capacity_memo(&h100_like(), &slo, &bad).is_err());
    assert!(replica_capacity_memo(&h100_like(), &slo, &bad).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Rounding moves a value by at most half a unit of its third digit (0.5%).
    #[test]
    fn rounding_moves_a_value_by_at_most_half_a_percent(x in 1e-3..1e7f64) {
        let r = three_significant_digits(x);
        prop_assert!((r - x).abs() <= 0.005 * x + 1e-12, "{x} -> {r}");
    }

    /// The memo's capacity is the model's at the rounded mix, for mean and percentile SLOs.
    #[test]
    fn the_memo_is_the_model_at_the_rounded_mix(
        input in 0.0..4000.0f64,
        output in 1.0..1000.0f64,
        percentile in prop::option::of(90.0..99.9f64),
    ) {
        let slo = Slo { ttft_ms: 800.0, itl_ms: 50.0, percentile };
        let mix = TokenMix { avg_input_tokens: input, avg_output_tokens: output };
        let rounded = TokenMix {
            avg_input_tokens: three_significant_digits(input),
            avg_output_tokens: three_significant_digits(output),
        };
        let memo = replica_capacity_memo(&h100_like(), &slo, &mix).expect("valid inputs");
        let model = replica_capacity(&h100_like(), &slo, &rounded).expect("valid inputs");
        prop_assert_eq!(memo, model);
    }
}
