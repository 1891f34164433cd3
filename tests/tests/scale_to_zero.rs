//! Scale to zero and back, with real metrics: emulated vLLM servers follow the Deployment's
//! Ready pods, an emulated gateway (EPP) routes to them and holds requests while the model
//! has none, and the controller's direct-scrape collector reads the servers' and the
//! gateway's `/metrics` (no `set_load`). The control loop runs every 0.5 s.

use std::sync::Arc;
use std::time::{Duration, Instant};
use wvo_api::Profile;
use wvo_collector::{HttpConfig, ScrapeConfig, Window};
use wvo_controller::targets::ScrapeTargetLoads;
use wvo_e2e::{
    condition, eventually, test_config, Cluster, CycleLoop, ServedDeployment, ServerFleet,
};
use wvo_sim::gateway::{Gateway, GatewayConfig};
use wvo_sim::kube_api::KubeApiOptions;

const H100: &str = "NVIDIA-H100-80GB-HBM3";
/// `spec.scaleToZero.idleSeconds` of the model that scales to zero.
const IDLE_SECONDS: f64 = 10.0;
/// The emulator's pod start-up (Pending to Ready).
const STARTUP: Duration = Duration::from_millis(1500);
/// Time between two control cycles (start to start).
const CYCLE: Duration = Duration::from_millis(500);
/// How long the gateway holds a request of a model with no ready server: more than the
/// start-up plus a cycle (and the servers' first scrape gap).
const HOLD: Duration = Duration::from_secs(20);

fn profile() -> Profile {
    Profile {
        alpha: 10.0,
        beta: 0.5,
        gamma: 20.0,
        delta: 0.05,
        max_batch_size: 64,
    }
}

fn va(name: &str, model: &str) -> String {
    format!(
        "apiVersion: wvo.dev/v1alpha1\nkind: VariantAutoscaling\nmetadata: {{name: {name}, namespace: llm}}\nspec:\n  modelID: {model}\n  minReplicas: 0\n  scaleDownStabilizationSeconds: 2\n  startupSeconds: {startup}\n  scaleToZero: {{idleSeconds: {IDLE_SECONDS}}}\n  variants:\n  - {{name: h100, scaleTargetRef: {{name: {name}-h100}}, accelerator: H100, maxRequestsPerSecond: 10}}\n",
        startup = STARTUP.as_secs_f64()
    )
}

/// POSTs a completion of `model` to the gateway: the HTTP status.
async fn complete(http: &reqwest::Client, gateway: &str, model: &str) -> u16 {
    http.post(format!("{gateway}/v1/completions"))
        .json(&serde_json::json!({"model": model, "prompt_tokens": 128, "max_tokens": 8}))
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

/// The gateway's queue for `model` as the collector reads it from a scrape of its
/// `/metrics`.
async fn gateway_gauge(http: &reqwest::Client, gateway: &Gateway, model: &str) -> Option<f64> {
    let body = http
        .get(gateway.metrics_url())
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let expo = wvo_collector::text::parse(&body).ok()?;
    wvo_collector::pod::gateway_queues(&expo)
        .get(model)?
        .as_ref()
        .ok()
        .map(|r| r.value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_model_goes_to_zero_and_a_held_request_wakes_it_within_one_cycle() {
    wvo_collector::install_crypto_provider();
    let cluster = Cluster::start_with(KubeApiOptions {
        pod_startup_delay: STARTUP,
        ..KubeApiOptions::default()
    })
    .await;
    // `chat` is behind the gateway (its wake signal); `quiet` may go to zero too but no
    // wake signal is read for it (the gateway never reports it, no wakeQuery).
    cluster.deployment("chat-h100", H100, 1, 1).await;
    cluster.deployment("quiet-h100", H100, 1, 1).await;
    cluster.va(&va("chat", "chat-model")).await;
    cluster.va(&va("quiet", "quiet-model")).await;

    let gateway = Arc::new(
        Gateway::start(GatewayConfig {
            hold: HOLD,
            ..GatewayConfig::default()
        })
        .await
        .expect("start the gateway"),
    );
    let served = |deployment: &str, model: &str, behind_gateway: bool| ServedDeployment {
        deployment: deployment.into(),
        model: model.into(),
        variant: "h100".into(),
        profile: profile(),
        behind_gateway,
    };
    let fleet = ServerFleet::start(
        cluster.client.clone(),
        vec![
            served("chat-h100", "chat-model", true),
            served("quiet-h100", "quiet-model", false),
        ],
        Some(gateway.clone()),
    );
    let loads = ScrapeTargetLoads::new(
        ScrapeConfig {
            interval: Duration::from_millis(200),
            http: HttpConfig {
                timeout: Duration::from_secs(2),
                ..HttpConfig::default()
            },
            ..ScrapeConfig::default()
        },
        Window::default(),
        Arc::new(fleet.targets()),
    )
    .expect("scrape source");
    let mut config = test_config("wvo-0");
    config.demand = config.demand.map(|d| wvo_controller::cycle::DemandOptions {
        cycle_seconds: CYCLE.as_secs_f64(),
        ..d
    });
    let (reconciler, _view, _metrics) = cluster.controller_with_loads(config, Arc::new(loads));
    let cycles = CycleLoop::start(reconciler, CYCLE);

    eventually(20, "a server for each model", || {
        let fleet = &fleet;
        async move {
            (fleet.servers("chat-h100") == 1 && fleet.servers("quiet-h100") == 1).then_some(())
        }
    })
    .await;

    // Some traffic through the gateway (about 2.5 req/s, one replica's worth), then none.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    for _ in 0..5 {
        assert_eq!(complete(&http, &gateway.url(), "chat-model").await, 200);
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert_eq!(complete(&http, &gateway.url(), "chat-model").await, 200);
    let last_request = Instant::now();

    // Idle for half of idleSeconds: still one replica.
    tokio::time::sleep_until((last_request + Duration::from_secs_f64(IDLE_SECONDS / 2.0)).into())
        .await;
    assert_eq!(
        cluster.replicas("chat-h100").await,
        1,
        "at zero before idleSeconds"
    );
    let (status, reason, message) =
        condition(&cluster.get_va("chat").await, "ScaleToZeroUnavailable").expect("condition");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "Active"),
        "{message}"
    );

    // Idle for idleSeconds: zero replicas (not before).
    eventually(
        IDLE_SECONDS as u64 + 15,
        "chat to go to zero replicas",
        || {
            let cluster = &cluster;
            async move { (cluster.replicas("chat-h100").await == 0).then_some(()) }
        },
    )
    .await;
    let idle = last_request.elapsed().as_secs_f64();
    println!("chat at zero {idle:.1} s after its last request (idleSeconds {IDLE_SECONDS})");
    assert!(
        idle >= IDLE_SECONDS - 0.25,
        "at zero {idle:.1} s after the last request"
    );
    assert_eq!(cluster.replicas("quiet-h100").await, 1);
    eventually(10, "chat's server to stop and leave the gateway", || {
        let (fleet, gateway) = (&fleet, &gateway);
        async move {
            (fleet.servers("chat-h100") == 0 && gateway.backends("chat-model").is_empty())
                .then_some(())
        }
    })
    .await;
    // The cycle that scaled to zero writes its statuses after all of its scales: wait for it.
    eventually(10, "chat's status to say Idle", || {
        let cluster = &cluster;
        async move {
            let (status, reason, _) =
                condition(&cluster.get_va("chat").await, "ScaleToZeroUnavailable")?;
            (status == "False" && reason == "Idle").then_some(())
        }
    })
    .await;

    // One request at the gateway: held (gauge 1) ...
    let request = tokio::spawn({
        let (http, url) = (http.clone(), gateway.url());
        async move {
            let sent = Instant::now();
            (complete(&http, &url, "chat-model").await, sent.elapsed())
        }
    });
    eventually(5, "the gateway's queue gauge to read 1", || {
        let (http, gateway) = (&http, &gateway);
        async move { (gateway_gauge(http, gateway, "chat-model").await == Some(1.0)).then_some(()) }
    })
    .await;
    let held_at = Instant::now();
    // ... and the first cycle that starts after that sets the Deployment to 1.
    let wake = eventually(
        10,
        "a cycle to start and end after the gauge read 1",
        || {
            let cycles = &cycles;
            async move { cycles.first_started_after(held_at) }
        },
    )
    .await;
    assert_eq!(wake.error, None);
    assert_eq!(
        cluster.replicas("chat-h100").await,
        1,
        "not woken by the first cycle after the gauge read 1"
    );
    println!(
        "woken by the cycle that started {:.2} s after the gauge read 1",
        wake.started.duration_since(held_at).as_secs_f64()
    );

    // The pod becomes Ready, the held request is served, nothing was dropped.
    let (status, waited) = tokio::time::timeout(HOLD + Duration::from_secs(5), request)
        .await
        .expect("the held request to finish")
        .expect("request task");
    println!(
        "held request answered {status} after {:.2} s",
        waited.as_secs_f64()
    );
    assert_eq!(status, 200);
    assert!(waited < HOLD, "answered after the hold ({waited:?})");
    cluster.wait_ready("chat-h100", 1).await;
    let stats = gateway.stats();
    assert_eq!(stats.dropped, 0, "{stats:?}");
    assert_eq!(stats.served, 7, "{stats:?}");
    assert_eq!(stats.failed, 0, "{stats:?}");

    // `quiet` was idle just as long but has no wake signal: one replica and the condition.
    assert_eq!(cluster.replicas("quiet-h100").await, 1);
    let (status, reason, message) =
        condition(&cluster.get_va("quiet").await, "ScaleToZeroUnavailable").expect("condition");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "NoWakeSignal"),
        "{message}"
    );

    let records = cycles.records();
    cycles.stop().await;
    fleet.stop().await;
    let errors: Vec<String> = records.into_iter().filter_map(|r| r.error).collect();
    assert!(errors.is_empty(), "cycles failed: {errors:?}");
}
