//! Demand settings end to end: the start-up learned from pod ready times or set on the VA,
//! the forecast settings, and the rate history a new leader restores from VA status.

use std::time::Duration;
use wvo_e2e::*;
use wvo_sim::kube_api::KubeApiOptions;

#[tokio::test]
async fn a_new_leader_restores_the_rate_history_from_status() {
    let cluster = Cluster::start().await;
    cluster.two_variant_va("llama", "llama", "").await;
    cluster.set_load("llama", 20.0);
    let (mut first, _, _) = cluster.controller("wvo-0");
    first.cycle().await.expect("cycle");
    assert!(first.demand_history(NS, "llama").is_some());
    // The history is in the status after the first cycle.
    let saved = cluster
        .get_va("llama")
        .await
        .status
        .and_then(|s| s.demand_history)
        .expect("status.demandHistory");
    assert_eq!(saved.bucket_seconds, 60.0);
    assert_eq!(saved.max_rps.last().copied(), Some(20.0));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    assert!(
        (saved.start_seconds - now).abs() < 3600.0,
        "UNIX seconds: {}",
        saved.start_seconds
    );

    // The leader goes; a new one (fresh state, another identity) sees a lower load.
    drop(first);
    cluster.set_load("llama", 5.0);
    let (mut second, _, _) = cluster.controller("wvo-1");
    assert!(second.demand_history(NS, "llama").is_none());
    second.cycle().await.expect("cycle");
    let history = second.demand_history(NS, "llama").expect("history");
    // It continues from what the first one saw: 20 req/s is only in the restored history.
    assert_eq!(history.max_between(0.0, f64::MAX), Some(20.0));
    // A later cycle of the same leader does not restore again over its own history.
    second.cycle().await.expect("cycle");
    assert_eq!(
        second
            .demand_history(NS, "llama")
            .and_then(|h| h.max_between(0.0, f64::MAX)),
        Some(20.0)
    );
}

#[tokio::test]
async fn start_up_is_learned_from_pod_ready_times_unless_the_va_sets_it() {
    let cluster = Cluster::start_with(KubeApiOptions {
        pod_startup_delay: Duration::from_secs(2),
        ..KubeApiOptions::default()
    })
    .await;
    cluster.two_variant_va("llama", "llama", "").await;
    cluster
        .two_variant_va(
            "mistral",
            "mistral",
            "  startupSeconds: 45\n  forecast: {enabled: false}\n",
        )
        .await;
    cluster.set_load("llama", 5.0);
    cluster.set_load("mistral", 5.0);
    cluster.wait_ready("llama-h100", 1).await;
    cluster.wait_ready("mistral-h100", 1).await;
    let (mut controller, _, _) = cluster.controller("wvo-0");
    controller.cycle().await.expect("cycle");

    // Learned from the pod: created, Ready ~2 s later (timestamps have 1 s resolution).
    let learned = controller
        .learned_startup_seconds(NS, "llama", "h100")
        .expect("learned start-up");
    assert!((1.0..=4.0).contains(&learned), "{learned}");
    let llama = cluster.get_va("llama").await.status.expect("status");
    assert_eq!(llama.variants[0].learned_startup_seconds, Some(learned));
    assert_eq!(
        llama.variants[1].learned_startup_seconds, None,
        "no pod yet"
    );
    // The model plans with the slowest variant that has samples.
    assert_eq!(llama.startup_seconds, Some(learned));
    // Forecast on by default (too little history for a period yet) ...
    let forecast = llama.forecast.expect("status.forecast");
    assert!(forecast.starts_with("no period"), "{forecast}");

    // The VA's setting wins over what was learned.
    let mistral = cluster.get_va("mistral").await.status.expect("status");
    assert!(mistral.variants[0].learned_startup_seconds.is_some());
    assert_eq!(mistral.startup_seconds, Some(45.0));
    // ... and off where the VA says so.
    assert_eq!(mistral.forecast.as_deref(), Some("disabled"));

    // A bad value is refused, naming the field, and the other model is still planned.
    cluster
        .two_variant_va("bad", "bad", "  forecast: {periodSeconds: 5}\n")
        .await;
    let report = controller.cycle().await.expect("cycle");
    assert!(
        report
            .refused
            .iter()
            .any(|(va, why)| va == "llm/bad" && why.contains("spec.forecast.periodSeconds")),
        "{:?}",
        report.refused
    );
    assert_eq!(
        condition(&cluster.get_va("bad").await, "Optimized")
            .expect("Optimized")
            .1,
        "InvalidSpec"
    );
    assert_eq!(report.outcome.expect("plan").models.len(), 2);
}
