//! Bad inputs are errors naming the field; impossible SLOs are a result, not an error.

use wvo_api::{Profile, Slo};
use wvo_perf::{predict, replica_capacity, CapacityLimit, TokenMix};

const H100: Profile = Profile {
    alpha: 6.0,
    beta: 0.05,
    gamma: 15.0,
    delta: 0.01,
    max_batch_size: 256,
};
const SLO: Slo = Slo {
    ttft_ms: 500.0,
    itl_ms: 50.0,
    percentile: None,
};
const MIX: TokenMix = TokenMix {
    avg_input_tokens: 512.0,
    avg_output_tokens: 256.0,
};

fn field_of(err: wvo_perf::PerfError) -> String {
    err.to_string()
        .split(':')
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn each_bad_number_is_reported_by_its_field() {
    let cases: Vec<(Profile, Slo, TokenMix, &str)> = vec![
        (Profile { alpha: 0.0, ..H100 }, SLO, MIX, "profile.alpha"),
        (Profile { beta: -1.0, ..H100 }, SLO, MIX, "profile.beta"),
        (
            Profile {
                gamma: f64::NAN,
                ..H100
            },
            SLO,
            MIX,
            "profile.gamma",
        ),
        (
            Profile {
                delta: f64::INFINITY,
                ..H100
            },
            SLO,
            MIX,
            "profile.delta",
        ),
        (
            Profile {
                max_batch_size: 0,
                ..H100
            },
            SLO,
            MIX,
            "profile.maxBatchSize",
        ),
        (
            H100,
            Slo {
                ttft_ms: 0.0,
                ..SLO
            },
            MIX,
            "slo.ttftMs",
        ),
        (
            H100,
            Slo {
                itl_ms: f64::NAN,
                ..SLO
            },
            MIX,
            "slo.itlMs",
        ),
        (
            H100,
            SLO,
            TokenMix {
                avg_input_tokens: -1.0,
                ..MIX
            },
            "avgInputTokens",
        ),
        (
            H100,
            SLO,
            TokenMix {
                avg_output_tokens: 0.5,
                ..MIX
            },
            "avgOutputTokens",
        ),
    ];
    for (profile, slo, mix, field) in cases {
        let err = replica_capacity(&profile, &slo, &mix).expect_err(field);
        assert_eq!(field_of(err), field);
    }
    let err = predict(&H100, &MIX, f64::NAN).expect_err("NaN rate");
    assert_eq!(field_of(err), "arrival_rps");
}

#[test]
fn slo_below_the_zero_load_latency_is_unreachable_with_zero_capacity() {
    // ITL at batch 1 is alpha + beta = 6.05 ms.
    let c = replica_capacity(&H100, &Slo { itl_ms: 6.0, ..SLO }, &MIX).expect("valid");
    assert_eq!((c.rps, c.limit), (0.0, CapacityLimit::SloUnreachable));
    assert!((c.itl_ms - 6.05).abs() < 1e-9);
    // The prefill alone takes 15 + 5.12 ms.
    let c = replica_capacity(
        &H100,
        &Slo {
            ttft_ms: 20.0,
            ..SLO
        },
        &MIX,
    )
    .expect("valid");
    assert_eq!((c.rps, c.limit), (0.0, CapacityLimit::SloUnreachable));
}

#[test]
fn tight_itl_target_binds_at_the_matching_batch() {
    // ITL target 12 ms: capacity is ITL-bound and predicted ITL sits at the target.
    let c = replica_capacity(
        &H100,
        &Slo {
            itl_ms: 12.0,
            ..SLO
        },
        &MIX,
    )
    .expect("valid");
    assert_eq!(c.limit, CapacityLimit::Itl);
    assert!((c.itl_ms - 12.0).abs() < 0.01, "{c:?}");
    let p = predict(&H100, &MIX, c.rps * 1.01).expect("valid");
    assert!(p.itl_ms > 12.0);
}

#[test]
fn absurd_batch_sizes_stay_fast_and_finite() {
    let huge = Profile {
        max_batch_size: u32::MAX,
        ..H100
    };
    let c = replica_capacity(
        &huge,
        &Slo {
            itl_ms: 5000.0,
            ..SLO
        },
        &MIX,
    )
    .expect("valid");
    assert!(c.rps.is_finite() && c.rps > 0.0);
}
