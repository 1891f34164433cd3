//! How close the fast path's fair share comes to the exact one on scarce instances.
//! `cargo test -p wvo-optimizer --release --test fair_quality -- --ignored --nocapture`

mod common;

use common::*;
use wvo_api::SolverChoice;
use wvo_optimizer::{solve, Problem};

#[test]
#[ignore = "measurement; prints a summary"]
fn fast_fair_share_against_exact() {
    let (mut cases, mut equal, mut worst) = (0, 0, 1.0f64);
    let mut ratio_sum = 0.0;
    for seed in 0..60u64 {
        let input = wvo_optimizer::synthetic::instance(6, seed, 0.5);
        let problem = Problem::from_input(&input).expect("valid");
        let Ok((exact, ..)) = solve(&problem, SolverChoice::Exact) else {
            continue;
        };
        let (fast, ..) = solve(&problem, SolverChoice::Fast).expect("fast");
        check_invariants(&problem, &fast).expect("invariants");
        check_tier_order(&problem, &fast).expect("strict tiers");
        for tier in tiers(&problem) {
            let e = tier_level(&problem, tier, &exact);
            let f = tier_level(&problem, tier, &fast);
            if e <= 0.0 || !e.is_finite() {
                continue;
            }
            cases += 1;
            let r = (f / e).min(1.0);
            ratio_sum += r;
            worst = worst.min(r);
            if r >= 1.0 - 1e-6 {
                equal += 1;
            }
        }
    }
    println!("tiers compared: {cases}; fast level = exact level in {equal}; mean ratio {:.4}; worst {:.4}", ratio_sum / f64::from(cases), worst);
}
