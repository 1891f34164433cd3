//! A raised [`Cancel`] flag ends a solve with `PlanError::Cancelled`, whatever its time limit.

use wvo_api::SolverChoice;
use wvo_optimizer::{plan_cancellable, synthetic, Cancel, PlanError};

fn large_scarce(solver: SolverChoice) -> wvo_api::PlanInput {
    let mut input = synthetic::instance(3000, 7, 0.6);
    input.options.solver = solver;
    // Without the flag this solve would search for an hour.
    input.options.time_limit_seconds = Some(3600.0);
    input
}

#[test]
fn a_flag_raised_before_the_solve_returns_cancelled_and_no_plan() {
    for solver in [SolverChoice::Exact, SolverChoice::Fast, SolverChoice::Auto] {
        let cancel = Cancel::new();
        cancel.cancel();
        let result = plan_cancellable(&large_scarce(solver), &cancel);
        assert!(
            matches!(result, Err(PlanError::Cancelled)),
            "{solver:?}: {result:?}"
        );
    }
}

#[test]
fn a_flag_raised_from_another_thread_ends_a_running_solve() {
    let cancel = Cancel::new();
    let worker = {
        let cancel = cancel.clone();
        std::thread::spawn(move || plan_cancellable(&large_scarce(SolverChoice::Fast), &cancel))
    };
    cancel.cancel();
    // The worker ends (join returns) and reports the cancellation, not a plan.
    let result = worker.join().expect("the solve panicked");
    assert!(matches!(result, Err(PlanError::Cancelled)), "{result:?}");
}

#[test]
fn an_unraised_flag_changes_nothing() {
    let input = synthetic::instance(40, 3, 0.8);
    let plain = wvo_optimizer::plan(&input).expect("plan");
    let with_flag = plan_cancellable(&input, &Cancel::new()).expect("plan");
    let replicas =
        |p: &wvo_api::PlanOutput| p.variants.iter().map(|v| v.replicas).collect::<Vec<_>>();
    assert_eq!(replicas(&plain), replicas(&with_flag));
}
