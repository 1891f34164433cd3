//! Property tests: invariants on random instances, the exact path against an independent
//! brute-force enumeration, the fast path against the exact path.

mod common;

use common::*;
use proptest::prelude::*;
use wvo_api::SolverChoice;
use wvo_optimizer::Problem;

proptest! {
    #![proptest_config(config(96))]

    /// The exact MILP path reproduces the brute-force reference: same cost, same number of
    /// changes, same max-min level and served rate in every tier; and never breaks a bound.
    #[test]
    fn exact_path_matches_brute_force(input in small_instance(false)) {
        exact_matches_brute_force(input)?;
    }

    /// The same where equal-cost plans abound: the tie-breaks (fewer changes) decide.
    #[test]
    fn exact_path_breaks_ties_like_brute_force(input in small_instance(true)) {
        exact_matches_brute_force(input)?;
    }

    #[test]
    fn fast_path_is_valid_and_bounded(input in small_instance(false)) {
        fast_valid_and_bounded(input)?;
    }

    /// Larger random instances: the fast path never exceeds the inventory or breaks min/max,
    /// and its bound never exceeds its own cost.
    #[test]
    fn fast_path_invariants_at_scale(seed in 0u64..10_000, models in 20usize..120, tight in 30u32..150) {
        fast_invariants_at_scale(seed, models, tight)?;
    }
}

fn exact_matches_brute_force(input: wvo_api::PlanInput) -> Result<(), TestCaseError> {
    let Ok(problem) = Problem::from_input(&input) else {
        return Ok(());
    };
    let reference = brute_force(&problem);
    let result = solved(&problem, SolverChoice::Exact);
    match (reference, result) {
        (None, Err(e)) => prop_assert!(e.to_string().contains("minReplicas")),
        (None, Ok(_)) => prop_assert!(false, "exact found a plan where none exists"),
        (Some(_), Err(e)) => prop_assert!(false, "exact failed: {e}"),
        (Some((cost, changes, levels, served)), Ok((x, lb, _))) => {
            check_invariants(&problem, &x).map_err(TestCaseError::fail)?;
            check_tier_order(&problem, &x).map_err(TestCaseError::fail)?;
            for (i, tier) in tiers(&problem).into_iter().enumerate() {
                let level = tier_level(&problem, tier, &x);
                prop_assert!(
                    level >= levels[i] * (1.0 - 1e-5),
                    "tier {tier} level {level} < best {}",
                    levels[i]
                );
                let s = tier_served(&problem, tier, &x);
                prop_assert!(
                    s >= served[i] - 1e-5 * served[i].max(1.0),
                    "tier {tier} served {s} < best {}",
                    served[i]
                );
            }
            prop_assert!(
                (problem.cost(&x) - cost).abs() <= 1e-6 * cost.max(1.0),
                "cost {} != optimum {cost}",
                problem.cost(&x)
            );
            prop_assert_eq!(problem.changes(&x), changes);
            if let Some(lb) = lb {
                prop_assert!(lb <= cost + 1e-6);
            }
        }
    }
    Ok(())
}

fn fast_valid_and_bounded(input: wvo_api::PlanInput) -> Result<(), TestCaseError> {
    let Ok(problem) = Problem::from_input(&input) else {
        return Ok(());
    };
    let Some((optimum, ..)) = brute_force(&problem) else {
        return Ok(());
    };
    let (x, lb, _) =
        solved(&problem, SolverChoice::Fast).map_err(|e| TestCaseError::fail(e.to_string()))?;
    check_invariants(&problem, &x).map_err(TestCaseError::fail)?;
    check_tier_order(&problem, &x).map_err(TestCaseError::fail)?;
    let all_met = (0..problem.models.len())
        .all(|m| problem.coverage(m, &x) >= problem.models[m].demand * (1.0 - 1e-7));
    if all_met {
        prop_assert!(problem.cost(&x) >= optimum - 1e-6 * optimum.max(1.0));
        if let Some(lb) = lb {
            prop_assert!(
                lb <= optimum + 1e-6 * optimum.max(1.0),
                "bound {lb} above optimum {optimum}"
            );
        }
    }
    Ok(())
}

fn fast_invariants_at_scale(seed: u64, models: usize, tight: u32) -> Result<(), TestCaseError> {
    let input = wvo_optimizer::synthetic::instance(models, seed, f64::from(tight) / 100.0);
    let problem = Problem::from_input(&input).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let (x, lb, _) =
        solved(&problem, SolverChoice::Fast).map_err(|e| TestCaseError::fail(e.to_string()))?;
    check_invariants(&problem, &x).map_err(TestCaseError::fail)?;
    check_tier_order(&problem, &x).map_err(TestCaseError::fail)?;
    if let Some(lb) = lb {
        prop_assert!(lb <= problem.cost(&x) + 1e-6);
    }
    Ok(())
}
