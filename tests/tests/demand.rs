//! Demand settings end to end: the start-up learned from pod ready times or set on the VA,
//! the forecast settings, and the rate history a new leader restores from VA status and
//! from the load source's past (Prometheus range queries).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wvo_collector::{CollectorError, ModelRates, RatePoint, RateRange};
use wvo_controller::loads::{
    BoxFuture, LoadSource, Loads, ModelKey, Observed, PastRates, StaticLoads, VariantPod,
};
use wvo_e2e::*;
use wvo_sim::kube_api::KubeApiOptions;

/// The cluster's loads now, plus a past as a Prometheus range query would give it: model
/// `llama` at `rate` req/s for the last three hours of the asked range (or, with `rate`
/// None, a timeout). Counts the reads.
struct WithPast {
    now: StaticLoads,
    rate: Option<f64>,
    reads: Arc<AtomicUsize>,
}

impl LoadSource for WithPast {
    fn loads<'a>(&'a self, models: &'a [ModelKey]) -> BoxFuture<'a, Loads> {
        self.now.loads(models)
    }

    fn observe<'a>(
        &'a self,
        models: &'a [ModelKey],
        pods: &'a [VariantPod],
    ) -> BoxFuture<'a, Observed> {
        self.now.observe(models, pods)
    }

    fn past_rates(&self, range: RateRange) -> Option<PastRates<'_>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let rate = self.rate;
        Some(Box::pin(async move {
            let Some(rate) = rate else {
                return Err(CollectorError::Timeout {
                    url: "http://prometheus:9090/api/v1/query_range".into(),
                    timeout_ms: 5_000,
                });
            };
            let points = (0..180)
                .map(|k| RatePoint {
                    at_seconds: range.end_seconds - f64::from(k) * range.step_seconds,
                    rps: rate,
                })
                .rev()
                .collect();
            Ok(ModelRates::from([(
                (NS.to_string(), "llama".to_string()),
                points,
            )]))
        }))
    }
}

fn now_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

#[tokio::test]
async fn a_fresh_controller_reads_the_rate_history_from_prometheus_once() {
    let cluster = Cluster::start().await;
    cluster.two_variant_va("llama", "llama", "").await;
    cluster.set_load("llama", 20.0);
    let reads = Arc::new(AtomicUsize::new(0));
    let past = WithPast {
        now: cluster.loads.clone(),
        rate: Some(7.0),
        reads: reads.clone(),
    };
    let (mut c, _, _) = cluster.controller_with_loads(test_config("wvo-0"), Arc::new(past));
    c.cycle().await.expect("cycle");
    let now = now_seconds();
    let history = c.demand_history(NS, "llama").expect("history");
    // Three hours of 7 req/s from Prometheus, then what this cycle saw.
    assert!(
        history.span_seconds() >= 3.0 * 3_600.0,
        "{}",
        history.span_seconds()
    );
    assert_eq!(
        history.max_between(now - 3.0 * 3_600.0, now - 300.0),
        Some(7.0)
    );
    assert_eq!(history.max_between(0.0, f64::MAX), Some(20.0));
    // Read once, not every cycle.
    c.cycle().await.expect("cycle");
    assert_eq!(reads.load(Ordering::SeqCst), 1);
    // The status holds it, for the next leader.
    let saved = cluster
        .get_va("llama")
        .await
        .status
        .and_then(|s| s.demand_history)
        .expect("status.demandHistory");
    assert!(saved.max_rps.len() >= 180, "{}", saved.max_rps.len());
}

#[tokio::test]
async fn the_status_history_is_kept_and_prometheus_fills_what_it_lacks() {
    let cluster = Cluster::start().await;
    cluster.two_variant_va("llama", "llama", "").await;
    cluster.set_load("llama", 20.0);
    // A first leader (no Prometheus) writes one bucket of 20 req/s to the status.
    let (mut first, _, _) = cluster.controller("wvo-0");
    first.cycle().await.expect("cycle");
    drop(first);
    cluster.set_load("llama", 5.0);
    // The next one has the status and a Prometheus that says 7 req/s for three hours.
    let past = WithPast {
        now: cluster.loads.clone(),
        rate: Some(7.0),
        reads: Arc::default(),
    };
    let (mut second, _, _) = cluster.controller_with_loads(test_config("wvo-1"), Arc::new(past));
    second.cycle().await.expect("cycle");
    let now = now_seconds();
    let history = second.demand_history(NS, "llama").expect("history");
    // The status's bucket wins where both have one; Prometheus fills the hours before.
    assert_eq!(history.max_between(0.0, f64::MAX), Some(20.0));
    assert_eq!(
        history.max_between(now - 3.0 * 3_600.0, now - 300.0),
        Some(7.0)
    );
    assert!(history.span_seconds() >= 3.0 * 3_600.0);
}

#[tokio::test]
async fn a_failed_prometheus_read_does_not_stop_the_cycle_nor_repeat_every_cycle() {
    let cluster = Cluster::start().await;
    cluster.two_variant_va("llama", "llama", "").await;
    cluster.set_load("llama", 20.0);
    let reads = Arc::new(AtomicUsize::new(0));
    let past = WithPast {
        now: cluster.loads.clone(),
        rate: None,
        reads: reads.clone(),
    };
    let (mut c, _, metrics) = cluster.controller_with_loads(test_config("wvo-0"), Arc::new(past));
    let report = c.cycle().await.expect("the cycle goes on");
    assert!(report.outcome.is_some(), "planned");
    // A new history from this cycle's observation only.
    let history = c.demand_history(NS, "llama").expect("history");
    assert_eq!(history.span_seconds(), 60.0);
    assert!(metrics
        .encode()
        .contains(r#"wvo_errors_total{kind="history"} 1"#));
    c.cycle().await.expect("cycle");
    assert_eq!(
        reads.load(Ordering::SeqCst),
        1,
        "tried again after 10 minutes, not now"
    );
}

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

    // A bad value is refused, naming the field, and the other model is still planned. The
    // CRD's minimum refuses it through the API (as a real apiserver does): it is stored as
    // if from before that bound, for the controller's own check.
    let refusal = cluster
        .two_variant_va_unchecked("bad", "bad", "  forecast: {periodSeconds: 5}\n")
        .await;
    assert!(
        refusal.is_some_and(|r| r
            .contains("spec.forecast.periodSeconds in body should be greater than or equal to 60")),
        "the CRD's minimum refuses periodSeconds 5 through the API"
    );
    eventually(10, "the new VA in the controller's cache", || async {
        controller.sees_va(NS, "bad").then_some(())
    })
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
