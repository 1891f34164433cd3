//! wvo as a KEDA external scaler, end to end: the real controller plans VAs in `keda` mode
//! on the emulated cluster, the scaler serves its view over gRPC on 127.0.0.1, and a client
//! generated from KEDA's own `externalscaler.proto` (crates/keda/proto) asks what KEDA asks.
//! Between cycles the test does what KEDA and its HPA would do with the answers (scale to 0
//! when inactive, else `ceil(metric / target)`, at least 1) through the Deployments, so the
//! loop closes as it does in a cluster.

use kube::api::{Api, Patch, PatchParams};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::transport::Channel;
use tonic::Code;
use wvo_controller::loads::{
    BoxFuture, LoadSource, Loads, ModelKey, Observed, VariantPod, WakeReads,
};
use wvo_controller::view::SharedView;
use wvo_e2e::{eventually, test_config, Cluster, CycleLoop, NS};
use wvo_keda::proto::external_scaler_client::ExternalScalerClient;
use wvo_keda::proto::{GetMetricsRequest, ScaledObjectRef};
use wvo_keda::scaler::{hpa_replicas, METRIC_NAME};

type Client = ExternalScalerClient<Channel>;

/// Serves the scaler over `view` on a free loopback port; the server stops when the
/// returned sender is dropped or sent `()`.
async fn serve(view: SharedView) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let address = listener.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(wvo_keda::serve(listener, view, async move {
        let _ = stopped.await;
    }));
    (address, stop)
}

async fn client(address: SocketAddr) -> Client {
    tokio::time::timeout(
        Duration::from_secs(10),
        ExternalScalerClient::connect(format!("http://{address}")),
    )
    .await
    .expect("connect in time")
    .expect("connect")
}

/// The reference KEDA sends for a ScaledObject in `llm` whose trigger names `va`/`variant`.
fn scaled_object(va: &str, variant: &str) -> ScaledObjectRef {
    ScaledObjectRef {
        name: format!("{va}-{variant}"),
        namespace: NS.into(),
        scaler_metadata: HashMap::from([
            ("scalerAddress".into(), "wvo.wvo-system:9090".into()),
            ("variantAutoscaling".into(), va.into()),
            ("variant".into(), variant.into()),
        ]),
    }
}

/// What KEDA and its HPA ask of the scaler for one ScaledObject: (IsActive, the HPA's
/// replicas from GetMetricSpec and GetMetrics).
async fn ask(client: &mut Client, so: &ScaledObjectRef) -> (bool, u64) {
    let active = client
        .is_active(so.clone())
        .await
        .expect("IsActive")
        .into_inner()
        .result;
    let specs = client
        .get_metric_spec(so.clone())
        .await
        .expect("GetMetricSpec")
        .into_inner()
        .metric_specs;
    assert_eq!(specs.len(), 1, "one metric per ScaledObject: {specs:?}");
    let spec = &specs[0];
    let values = client
        .get_metrics(GetMetricsRequest {
            scaled_object_ref: Some(so.clone()),
            metric_name: spec.metric_name.clone(),
        })
        .await
        .expect("GetMetrics")
        .into_inner()
        .metric_values;
    assert_eq!(values.len(), 1, "one value: {values:?}");
    let value = &values[0];
    assert_eq!(value.metric_name, spec.metric_name);
    let replicas = hpa_replicas(
        spec.target_size,
        spec.target_size_float,
        value.metric_value,
        value.metric_value_float,
    )
    .expect("a positive target and a finite value");
    (active, replicas)
}

/// wvo's desired replicas for `variant` of `va` in the view.
fn desired(view: &SharedView, va: &str, variant: &str) -> u32 {
    let view = view.read().expect("view");
    let model = view
        .models
        .iter()
        .find(|m| m.name == va)
        .expect("VA in view");
    model
        .variants
        .iter()
        .find(|v| v.name == variant)
        .expect("variant in view")
        .desired
}

/// Sets a Deployment's replicas through `/scale`, as the HPA (or KEDA at 0) does.
async fn scale(cluster: &Cluster, deployment: &str, replicas: u64) {
    let deploys: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(cluster.client.clone(), NS);
    deploys
        .patch_scale(
            deployment,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"replicas": replicas}})),
        )
        .await
        .expect("patch /scale");
}

/// The replicas KEDA and the HPA give a workload at `current` from the scaler's answers:
/// 0 when inactive (KEDA, minReplicaCount 0, cooldown 0), 1 when KEDA activates it from 0,
/// else the HPA's `ceil(metric / target)`, at least the HPA's minimum of 1.
fn keda_replicas(current: i32, active: bool, hpa: u64) -> u64 {
    match (active, current) {
        (false, _) => 0,
        (true, 0) => 1,
        (true, _) => hpa.max(1),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keda_follows_wvos_plan_exactly_and_is_active_flips_with_it() {
    let cluster = Cluster::start().await;
    cluster
        .two_variant_va(
            "m1",
            "model-one",
            "  actuation: keda\n  scaleDownStabilizationSeconds: 0\n",
        )
        .await;
    let (mut reconciler, view, _) = cluster.controller("wvo-keda");
    // The runner sets this for the replica that leads (always, without leader election).
    view.write().expect("view").leader = true;
    let (address, _stop) = serve(view.clone()).await;
    let mut client = client(address).await;
    let h100 = scaled_object("m1", "h100");
    let l40s = scaled_object("m1", "l40s");

    // Before the first cycle there is no plan to follow.
    for so in [&h100, &l40s] {
        let e = client
            .is_active(so.clone())
            .await
            .expect_err("no cycle yet");
        assert_eq!(e.code(), Code::Unavailable, "{e:?}");
        assert!(e.message().contains("control cycle"), "{}", e.message());
    }

    cluster.set_load("model-one", 2.0);
    reconciler.cycle().await.expect("first cycle");

    // KEDA's push scaler: the stream sends the current answer at once, then each flip.
    let streamed = Arc::new(Mutex::new(Vec::<bool>::new()));
    let mut stream = client
        .stream_is_active(h100.clone())
        .await
        .expect("StreamIsActive")
        .into_inner();
    let stream_task = tokio::spawn({
        let streamed = streamed.clone();
        async move {
            while let Ok(Some(m)) = stream.message().await {
                streamed.lock().expect("lock").push(m.result);
            }
        }
    });

    // Loads from one cheap replica to most of the cluster and back: the h100 variant goes
    // through 0 and back, answers go from 0 to large counts.
    let mut seen: Vec<(&str, u32)> = Vec::new();
    let mut h100_active: Vec<bool> = Vec::new();
    for rate in [2.0, 30.0, 75.0, 120.0, 45.0, 5.0, 0.0, 60.0] {
        cluster.set_load("model-one", rate);
        // Cycles until KEDA has carried out what wvo wants (make-before-break may take a
        // step through both variants while new pods start).
        let mut converged = false;
        for _ in 0..20 {
            reconciler.cycle().await.expect("cycle");
            let mut all_there = true;
            for (so, variant) in [(&h100, "h100"), (&l40s, "l40s")] {
                let want = desired(&view, "m1", variant);
                let (active, hpa) = ask(&mut client, so).await;
                assert_eq!(
                    hpa,
                    u64::from(want),
                    "load {rate}: the HPA's replicas from wvo's metric must equal wvo's desired replicas of {variant}"
                );
                assert_eq!(active, want > 0, "load {rate}: IsActive of {variant}");
                seen.push((variant, want));
                if variant == "h100" && h100_active.last() != Some(&active) {
                    h100_active.push(active);
                    // The stream delivers every flip the unary call sees.
                    eventually(10, "StreamIsActive to deliver the flip", || {
                        let streamed = streamed.clone();
                        async move {
                            (streamed.lock().expect("lock").last() == Some(&active)).then_some(())
                        }
                    })
                    .await;
                }
                let deployment = format!("m1-{variant}");
                let current = cluster.replicas(&deployment).await;
                let next = keda_replicas(current, active, hpa);
                if next != u64::try_from(current).unwrap_or(0) {
                    scale(&cluster, &deployment, next).await;
                    all_there = false;
                }
                // The new pods start before the next cycle reads them.
                cluster
                    .wait_ready(&deployment, i32::try_from(next).unwrap_or(i32::MAX))
                    .await;
                if next != u64::from(want) {
                    all_there = false;
                }
            }
            if all_there {
                converged = true;
                break;
            }
        }
        assert!(converged, "load {rate}: KEDA never settled on wvo's plan");
    }

    // 120 req/s at most 10 req/s a replica needs 12 replicas, more than the 8 H100: the
    // answers went from 0 to large ones.
    let counts: Vec<u32> = seen.iter().map(|(_, d)| *d).collect();
    assert!(counts.contains(&0), "never 0: {seen:?}");
    assert!(counts.iter().any(|&d| d >= 8), "never large: {seen:?}");
    assert!(
        h100_active.len() >= 3,
        "IsActive of h100 should flip 1 -> 0 -> 1 at least: {h100_active:?} ({seen:?})"
    );
    // The stream sent the same sequence of flips, and nothing in between.
    let streamed = streamed.lock().expect("lock").clone();
    assert_eq!(streamed, h100_active, "StreamIsActive's messages");
    stream_task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scaler_names_what_is_wrong_with_a_trigger() {
    let cluster = Cluster::start().await;
    cluster
        .two_variant_va("m1", "model-one", "  actuation: keda\n")
        .await;
    cluster.two_variant_va("m2", "model-two", "").await;
    cluster
        .two_variant_va("m3", "model-three", "  actuation: keda\n  dryRun: true\n")
        .await;
    cluster.set_load("model-one", 5.0);
    cluster.set_load("model-two", 5.0);
    cluster.set_load("model-three", 5.0);
    let (mut reconciler, view, _) = cluster.controller("wvo-keda");
    let (address, _stop) = serve(view.clone()).await;
    let mut client = client(address).await;

    // Unavailable before the first cycle, on every RPC.
    let so = scaled_object("m1", "h100");
    let no_cycle = [
        client.is_active(so.clone()).await.map(|_| ()),
        client.get_metric_spec(so.clone()).await.map(|_| ()),
        client
            .get_metrics(GetMetricsRequest {
                scaled_object_ref: Some(so.clone()),
                metric_name: METRIC_NAME.into(),
            })
            .await
            .map(|_| ()),
        client.stream_is_active(so.clone()).await.map(|_| ()),
    ];
    for r in no_cycle {
        assert_eq!(r.expect_err("no cycle yet").code(), Code::Unavailable);
    }

    reconciler.cycle().await.expect("cycle");
    // A standby replica's view is not the plan in force.
    let e = client.is_active(so.clone()).await.expect_err("standby");
    assert_eq!(e.code(), Code::Unavailable);
    assert!(e.message().contains("not the leader"), "{}", e.message());
    view.write().expect("view").leader = true;
    assert!(client.is_active(so.clone()).await.is_ok());

    let code_and_message = |r: Result<tonic::Response<_>, tonic::Status>| {
        let e: tonic::Status = r
            .map(|_: tonic::Response<wvo_keda::proto::IsActiveResponse>| ())
            .expect_err("an error");
        (e.code(), e.message().to_string())
    };
    // Unknown VA, unknown variant: NotFound naming them.
    let (code, message) = code_and_message(client.is_active(scaled_object("nope", "h100")).await);
    assert_eq!(code, Code::NotFound);
    assert!(message.contains("llm/nope"), "{message}");
    let (code, message) = code_and_message(client.is_active(scaled_object("m1", "a100")).await);
    assert_eq!(code, Code::NotFound);
    assert!(
        message.contains("\"a100\"") && message.contains("[\"h100\", \"l40s\"]"),
        "{message}"
    );
    // The namespace key reaches another namespace's VA (here: none there).
    let mut elsewhere = scaled_object("m1", "h100");
    elsewhere
        .scaler_metadata
        .insert("namespace".into(), "other".into());
    let (code, message) = code_and_message(client.is_active(elsewhere).await);
    assert_eq!(code, Code::NotFound);
    assert!(message.contains("other/m1"), "{message}");
    // A key missing or misspelt: InvalidArgument naming it.
    let mut missing = scaled_object("m1", "h100");
    missing.scaler_metadata.remove("variant");
    let (code, message) = code_and_message(client.is_active(missing).await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("\"variant\""), "{message}");
    let mut typo = scaled_object("m1", "h100");
    typo.scaler_metadata
        .insert("variantautoscaling".into(), "m1".into());
    let (code, message) = code_and_message(client.is_active(typo).await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("\"variantautoscaling\""), "{message}");
    // A VA wvo writes itself (mode scale), or a dry run: FailedPrecondition with the fix.
    let (code, message) = code_and_message(client.is_active(scaled_object("m2", "h100")).await);
    assert_eq!(code, Code::FailedPrecondition);
    assert!(message.contains("actuation: keda"), "{message}");
    let (code, message) = code_and_message(client.is_active(scaled_object("m3", "h100")).await);
    assert_eq!(code, Code::FailedPrecondition);
    assert!(message.contains("dryRun"), "{message}");
    // A metric wvo did not declare.
    let e = client
        .get_metrics(GetMetricsRequest {
            scaled_object_ref: Some(so.clone()),
            metric_name: "queue-depth".into(),
        })
        .await
        .expect_err("unknown metric");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("queue-depth"), "{}", e.message());

    // A VA deleted while KEDA streams: the stream ends with NotFound after the next cycle.
    let mut stream = client
        .stream_is_active(so.clone())
        .await
        .expect("StreamIsActive")
        .into_inner();
    assert_eq!(
        stream
            .message()
            .await
            .expect("first message")
            .map(|m| m.result),
        Some(true)
    );
    let vas: Api<wvo_api::crd::VariantAutoscaling> = Api::namespaced(cluster.client.clone(), NS);
    vas.delete("m1", &Default::default())
        .await
        .expect("delete VA");
    // The watch cache sees the deletion shortly: cycles until the plan has no m1.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        reconciler.cycle().await.expect("cycle");
        if !view
            .read()
            .expect("view")
            .models
            .iter()
            .any(|m| m.name == "m1")
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "m1 still planned");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let end = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("the stream ends in time");
    let e = end.expect_err("NotFound ends the stream");
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
}

/// The next message of an IsActive stream, within 30 s.
async fn next(stream: &mut tonic::Streaming<wvo_keda::proto::IsActiveResponse>) -> bool {
    tokio::time::timeout(Duration::from_secs(30), stream.message())
        .await
        .expect("a message in time")
        .expect("no error")
        .expect("the stream goes on")
        .result
}

/// Loads set by hand plus a wake signal set by hand (the value a VA's `wakeQuery` reads).
#[derive(Clone, Default)]
struct WakeLoads {
    loads: wvo_controller::loads::StaticLoads,
    waiting: Arc<Mutex<f64>>,
}

impl LoadSource for WakeLoads {
    fn loads<'a>(&'a self, models: &'a [ModelKey]) -> BoxFuture<'a, Loads> {
        self.loads.loads(models)
    }

    fn observe<'a>(
        &'a self,
        models: &'a [ModelKey],
        pods: &'a [VariantPod],
    ) -> BoxFuture<'a, Observed> {
        self.loads.observe(models, pods)
    }

    fn wake_queries<'a>(&'a self, queries: &'a [(ModelKey, String)]) -> Option<WakeReads<'a>> {
        let waiting = *self.waiting.lock().expect("lock");
        Some(Box::pin(async move {
            queries
                .iter()
                .map(|(model, _)| (model.clone(), Ok(waiting)))
                .collect()
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_model_deactivates_and_a_waiting_request_activates_it_through_the_stream() {
    let cluster = Cluster::start().await;
    cluster
        .deployment("m1-h100", "NVIDIA-H100-80GB-HBM3", 1, 1)
        .await;
    cluster
        .va("apiVersion: wvo.dev/v1alpha1\nkind: VariantAutoscaling\nmetadata: {name: m1, namespace: llm}\nspec:\n  modelID: model-one\n  actuation: keda\n  minReplicas: 0\n  scaleDownStabilizationSeconds: 0\n  startupSeconds: 1\n  scaleToZero: {idleSeconds: 10, wakeQuery: 'sum(gateway_queue{model=\"model-one\"})'}\n  variants:\n  - {name: h100, scaleTargetRef: {name: m1-h100}, accelerator: H100, maxRequestsPerSecond: 10}\n")
        .await;
    let loads = WakeLoads::default();
    loads.loads.set(
        NS,
        "model-one",
        Ok(wvo_api::ModelLoad {
            arrival_rate: 0.0,
            avg_input_tokens: Some(512.0),
            avg_output_tokens: Some(128.0),
        }),
    );
    let (mut reconciler, view, _) =
        cluster.controller_with_loads(test_config("wvo-keda"), Arc::new(loads.clone()));
    view.write().expect("view").leader = true;
    reconciler.cycle().await.expect("first cycle");
    let (address, _stop) = serve(view.clone()).await;
    let mut client = client(address).await;
    let so = scaled_object("m1", "h100");

    // Not idle for idleSeconds yet: one warm replica, active.
    assert_eq!(desired(&view, "m1", "h100"), 1);
    let mut stream = client
        .stream_is_active(so.clone())
        .await
        .expect("StreamIsActive")
        .into_inner();
    assert!(next(&mut stream).await, "first message: active");

    // Idle for idleSeconds: wvo wants 0 and the stream says so; KEDA scales to 0.
    let cycles = CycleLoop::start(reconciler, Duration::from_millis(300));
    assert!(!next(&mut stream).await, "idle: inactive");
    assert_eq!(desired(&view, "m1", "h100"), 0);
    let (active, hpa) = ask(&mut client, &so).await;
    assert_eq!((active, hpa), (false, 0));
    scale(&cluster, "m1-h100", 0).await;

    // Requests wait at the gateway: the next cycle wakes the model and the stream says so.
    *loads.waiting.lock().expect("lock") = 3.0;
    assert!(next(&mut stream).await, "woken: active");
    let want = desired(&view, "m1", "h100");
    assert!(want >= 1, "woken with {want} replicas");
    let (active, hpa) = ask(&mut client, &so).await;
    assert!(active);
    assert_eq!(hpa, u64::from(desired(&view, "m1", "h100")));
    cycles.stop().await;
}
