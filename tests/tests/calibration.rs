//! Profiles through the controller: a VA that names a catalog profile, online calibration
//! from per-variant figures, the calibration kept in the VA status across a restart, and
//! `ProfileReady` flagging a profile the data contradicts.

use wvo_api::crd::VariantAutoscaling;
use wvo_collector::{Figure, LoadFigures};
use wvo_controller::calibration::CalibrationSettings;
use wvo_controller::reconciler::{ControllerConfig, Reconciler};
use wvo_e2e::{condition, Cluster, NS};
use wvo_perf::CalibrationConfig;

const MODEL: &str = "meta-llama/Llama-3.1-8B-Instruct";

/// The figures a variant of `ready` replicas reports when each runs `batch` requests and
/// decodes at `itl_ms`.
fn figures(ready: f64, batch: f64, itl_ms: f64, ttft_ms: f64) -> LoadFigures {
    let known = |v: f64| Figure::known(v, 1.0, "test");
    LoadFigures {
        arrival_rate_rps: known(4.0),
        avg_input_tokens: known(512.0),
        avg_output_tokens: known(128.0),
        running: known(batch * ready),
        waiting: known(0.0),
        in_flight_growth_rps: known(0.0),
        kv_usage: known(0.3),
        kv_capacity_tokens: Figure::unknown("not reported"),
        ttft_mean_seconds: known(ttft_ms / 1000.0),
        ttft_p95_seconds: known(ttft_ms / 1000.0),
        itl_mean_seconds: known(itl_ms / 1000.0),
        itl_p95_seconds: known(itl_ms / 1000.0),
        preemptions_per_second: known(0.0),
        ready_replicas: known(ready),
        pending_replicas: Figure::unknown("not in model-server metrics"),
    }
}

fn config() -> ControllerConfig {
    ControllerConfig {
        identity: "wvo-0".into(),
        calibration: CalibrationSettings {
            // The emulator's pods became ready a moment ago: no warm-up wait in the test.
            fit: CalibrationConfig {
                warmup_s: 0.0,
                ..CalibrationConfig::default()
            },
            ..CalibrationSettings::default()
        },
        ..ControllerConfig::default()
    }
}

async fn catalog_va(cluster: &Cluster, profile: &str) -> VariantAutoscaling {
    cluster
        .deployment("llama-h100", "NVIDIA-H100-80GB-HBM3", 1, 1)
        .await;
    cluster
        .va(&format!(
            "apiVersion: wvo.dev/v1alpha1\nkind: VariantAutoscaling\nmetadata: {{name: llama, namespace: {NS}}}\nspec:\n  modelID: {MODEL}\n  slo: {{ttftMs: 2000, itlMs: 60}}\n  variants:\n  - {{name: h100, scaleTargetRef: {{name: llama-h100}}, accelerator: H100, minReplicas: 1, profile: {profile}}}\n"
        ))
        .await
}

/// Runs `n` cycles, the server answering with `truth(batch)` as its ITL.
async fn feed(
    cluster: &Cluster,
    controller: &mut Reconciler,
    n: u32,
    offset: u32,
    truth: impl Fn(f64) -> f64,
) {
    for i in offset..offset + n {
        let batch = 4.0 + f64::from((i * 7) % 40);
        cluster.set_load(MODEL, 4.0);
        cluster
            .loads
            .set_variant(NS, MODEL, "h100", figures(1.0, batch, truth(batch), 80.0));
        controller.cycle().await.expect("cycle");
    }
}

#[tokio::test]
async fn a_catalog_profile_is_calibrated_kept_in_status_and_flagged_when_contradicted() {
    let cluster = Cluster::start().await;
    catalog_va(&cluster, "{catalog: llama-3.1-8b}").await;
    cluster.wait_ready("llama-h100", 1).await;
    let (mut controller, _, _) = cluster.controller_with(config());

    // First cycle: the catalog estimate is the prior and in use.
    cluster.set_load(MODEL, 4.0);
    controller.cycle().await.expect("cycle");
    let va = cluster.get_va("llama").await;
    let status = va.status.expect("status");
    let p = &status.profiles[0];
    assert_eq!((p.name.as_str(), p.source.as_str()), ("h100", "catalog"));
    assert_eq!(p.in_use, p.prior);
    assert!(p.prior.alpha > 0.0 && p.prior.max_batch_size > 0, "{p:?}");
    let prior = p.prior;
    let (status_ok, reason, _) =
        condition(&cluster.get_va("llama").await, "ProfileReady").expect("ProfileReady");
    assert_eq!(
        (status_ok.as_str(), reason.as_str()),
        ("True", "ProfilesKnown")
    );

    // The server decodes 3x slower than the catalog says.
    let truth = move |b: f64| 3.0 * (prior.alpha + prior.beta * b);
    feed(&cluster, &mut controller, 200, 0, truth).await;
    let va = cluster.get_va("llama").await;
    let status = va.status.clone().expect("status");
    let p = &status.profiles[0];
    assert!(p.samples >= 40, "samples persisted: {p:?}");
    assert!(p.calibration.is_some(), "calibration state kept in status");
    assert!(p.confidence.decode >= 0.5, "{p:?}");
    let rel = |a: f64, b: f64| (a - b).abs() / b;
    assert!(rel(p.in_use.alpha, 3.0 * prior.alpha) < 0.05, "{p:?}");
    assert!(rel(p.in_use.beta, 3.0 * prior.beta) < 0.05, "{p:?}");
    let (ok, reason, message) = condition(&va, "ProfileReady").expect("ProfileReady");
    assert_eq!(
        (ok.as_str(), reason.as_str()),
        ("False", "ProfileContradicted")
    );
    assert!(
        message.contains("h100") && message.contains("req/s") && message.contains("% of"),
        "{message}"
    );
    // The plan uses the calibrated (slower) profile: less capacity per replica.
    let capacity = status.variants[0].capacity_rps;
    assert!(capacity > 0.0);

    // A new leader continues from the status instead of starting over.
    let learned = p.samples;
    let (mut successor, _, _) = cluster.controller_with(config());
    feed(&cluster, &mut successor, 1, 200, truth).await;
    let va = cluster.get_va("llama").await;
    let status = va.status.expect("status");
    let p = &status.profiles[0];
    assert!(p.samples >= learned, "{} < {learned}", p.samples);
    assert!(rel(p.in_use.alpha, 3.0 * prior.alpha) < 0.05, "{p:?}");
    assert!(
        (status.variants[0].capacity_rps - capacity).abs() / capacity < 0.05,
        "the successor plans with the learned profile"
    );
}

#[tokio::test]
async fn a_matching_server_keeps_profile_ready() {
    let cluster = Cluster::start().await;
    catalog_va(
        &cluster,
        "{alpha: 6.0, beta: 0.05, gamma: 20.0, delta: 0.01, maxBatchSize: 128}",
    )
    .await;
    cluster.wait_ready("llama-h100", 1).await;
    let (mut controller, _, _) = cluster.controller_with(config());
    feed(&cluster, &mut controller, 40, 0, |b| 6.3 + 0.05 * b).await;
    let va = cluster.get_va("llama").await;
    let p = &va.status.as_ref().expect("status").profiles[0];
    assert_eq!(p.source, "inline");
    assert!(p.contradiction.is_none(), "{p:?}");
    let (ok, reason, message) = condition(&va, "ProfileReady").expect("ProfileReady");
    assert_eq!((ok.as_str(), reason.as_str()), ("True", "ProfilesKnown"));
    assert!(message.contains("calibrated online: h100"), "{message}");
}

#[tokio::test]
async fn an_unknown_catalog_model_is_refused_naming_the_field() {
    let cluster = Cluster::start().await;
    catalog_va(&cluster, "{catalog: no-such-model}").await;
    let (mut controller, _, _) = cluster.controller_with(config());
    cluster.set_load(MODEL, 1.0);
    let report = controller.cycle().await.expect("cycle");
    let (_, why) = report.refused.first().expect("refused");
    assert!(why.contains("spec.variants[0].profile.catalog"), "{why}");
}
