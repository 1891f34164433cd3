//! The actuator through the real kube client against the Kubernetes API emulator: what each
//! write does to the objects, and which failures are retried, how often, and how they end.

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::{Api, PostParams};
use serde_json::{json, Value};
use std::time::Duration;
use wvo_actuator::{
    Action, ActionResult, Actuation, ActuationError, Actuator, ActuatorConfig, Applied, WorkloadRef,
};
use wvo_sim::kube_api::{KubeApiHandle, KubeApiOptions, KubeApiServer};

const NS: &str = "default";
const MANAGER: &str = "wvo-test";

/// An emulator with Deployment `llama` at 1 replica; no background controllers (nothing
/// writes but the test and the actuator).
async fn cluster() -> KubeApiHandle {
    let api = KubeApiServer::start(KubeApiOptions {
        run_controllers: false,
        ..KubeApiOptions::default()
    })
    .await
    .expect("emulator starts");
    api.create(&deployment("llama", 1)).expect("deployment");
    api
}

fn deployment(name: &str, replicas: u32) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "vllm", "image": "vllm"}]}}}
    })
}

/// Fast retries, so a test of three attempts takes milliseconds.
fn config() -> ActuatorConfig {
    ActuatorConfig {
        call_timeout: Duration::from_secs(5),
        retries: 3,
        backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        concurrency: 4,
        field_manager: MANAGER.into(),
    }
}

fn actuator(api: &KubeApiHandle, config: ActuatorConfig) -> Actuator {
    Actuator::new(api.client().expect("client"), config)
}

fn scale(name: &str, desired: u32) -> Action {
    Action {
        namespace: NS.into(),
        workload: WorkloadRef::new("apps/v1", "Deployment", name),
        desired,
        how: Actuation::Scale,
    }
}

fn replicas(api: &KubeApiHandle, name: &str) -> Option<u64> {
    api.get("apps/v1", "Deployment", NS, name)?
        .pointer("/spec/replicas")?
        .as_u64()
}

/// Writes the actuator sent: (resource[/subresource], name).
fn writes(api: &KubeApiHandle) -> Vec<(String, String)> {
    api.requests()
        .into_iter()
        .filter(|r| r.verb == "patch")
        .map(|r| (r.rbac_resource(), r.name))
        .collect()
}

async fn one(actuator: &Actuator, action: Action) -> ActionResult {
    let mut results = actuator.apply(&[action]).await;
    assert_eq!(results.len(), 1);
    results.remove(0)
}

#[tokio::test]
async fn scale_patches_the_workloads_scale_subresource() {
    let api = cluster().await;
    let result = one(&actuator(&api, config()), scale("llama", 3)).await;
    assert_eq!(result.outcome, Ok(Applied::Scaled { replicas: 3 }));
    assert_eq!(result.attempts, 1);
    assert_eq!(replicas(&api, "llama"), Some(3));
    assert_eq!(
        writes(&api),
        [("deployments/scale".to_string(), "llama".to_string())]
    );
}

#[tokio::test]
async fn hpa_bounds_are_server_side_applied_and_owned_by_the_field_manager() {
    let api = cluster().await;
    // The HPA's author (another field manager) owns all of its spec.
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(api.client().expect("client"), NS);
    let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "llama-hpa", "namespace": NS},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "llama"},
            "minReplicas": 1, "maxReplicas": 3,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 80}}}]
        }
    }))
    .expect("hpa");
    let params = PostParams {
        field_manager: Some("hpa-author".into()),
        ..PostParams::default()
    };
    hpas.create(&params, &hpa).await.expect("create HPA");
    api.clear_requests();

    let action = Action {
        how: Actuation::HpaBounds {
            hpa: "llama-hpa".into(),
            min: 2,
            max: 6,
        },
        ..scale("llama", 2)
    };
    let result = one(&actuator(&api, config()), action).await;
    assert_eq!(result.outcome, Ok(Applied::Bounded { min: 2, max: 6 }));
    assert_eq!(result.attempts, 1);

    let stored = api
        .get("autoscaling/v2", "HorizontalPodAutoscaler", NS, "llama-hpa")
        .expect("HPA");
    assert_eq!(stored.pointer("/spec/minReplicas"), Some(&json!(2)));
    assert_eq!(stored.pointer("/spec/maxReplicas"), Some(&json!(6)));
    // The partial apply left the author's fields as they were.
    assert_eq!(
        stored.pointer("/spec/scaleTargetRef/name"),
        Some(&json!("llama"))
    );
    assert_eq!(
        stored.pointer("/spec/metrics/0/resource/name"),
        Some(&json!("cpu"))
    );
    let managed = stored
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .expect("managedFields");
    let entry = |manager: &str| {
        managed
            .iter()
            .find(|e| e["manager"] == manager)
            .unwrap_or_else(|| panic!("no managedFields entry of {manager}: {managed:?}"))
    };
    let ours = entry(MANAGER);
    assert_eq!(ours["operation"], "Apply");
    let spec = &ours["fieldsV1"]["f:spec"];
    assert!(spec.get("f:minReplicas").is_some(), "{ours}");
    assert!(spec.get("f:maxReplicas").is_some(), "{ours}");
    assert!(spec.get("f:scaleTargetRef").is_none(), "{ours}");
    let author = &entry("hpa-author")["fieldsV1"]["f:spec"];
    assert!(author.get("f:scaleTargetRef").is_some(), "{author}");
    assert!(
        author.get("f:minReplicas").is_none(),
        "taken over: {author}"
    );

    // The workload is the HPA's to scale, not the actuator's.
    assert_eq!(replicas(&api, "llama"), Some(1));
    assert_eq!(
        writes(&api),
        [(
            "horizontalpodautoscalers".to_string(),
            "llama-hpa".to_string()
        )]
    );
}

#[tokio::test]
async fn conflicts_are_retried_then_applied() {
    let api = cluster().await;
    api.inject_conflicts(2);
    let result = one(&actuator(&api, config()), scale("llama", 4)).await;
    assert_eq!(result.outcome, Ok(Applied::Scaled { replicas: 4 }));
    assert_eq!(result.attempts, 3);
    assert_eq!(writes(&api).len(), 3);
    assert_eq!(replicas(&api, "llama"), Some(4));
}

#[tokio::test]
async fn server_errors_are_retried_and_give_up_after_the_retries() {
    let api = cluster().await;
    api.fail_next_writes(100, 500);
    let config = ActuatorConfig {
        retries: 2,
        ..config()
    };
    let result = one(&actuator(&api, config), scale("llama", 4)).await;
    match &result.outcome {
        Err(ActuationError::Unavailable { code: 500, .. }) => {}
        other => panic!("expected Unavailable 500, got {other:?}"),
    }
    assert_eq!(result.attempts, 3, "the first call and two retries");
    assert_eq!(writes(&api).len(), 3);
    assert_eq!(replicas(&api, "llama"), Some(1));
}

#[tokio::test]
async fn forbidden_and_invalid_writes_are_not_retried() {
    let api = cluster().await;
    let actuator = actuator(&api, config());
    api.fail_next_writes(1, 403);
    let result = one(&actuator, scale("llama", 4)).await;
    assert!(
        matches!(result.outcome, Err(ActuationError::Forbidden { .. })),
        "{result:?}"
    );
    assert_eq!(result.attempts, 1);
    api.fail_next_writes(1, 422);
    let result = one(&actuator, scale("llama", 4)).await;
    match &result.outcome {
        Err(ActuationError::Rejected { code: 422, .. }) => {}
        other => panic!("expected Rejected 422, got {other:?}"),
    }
    assert_eq!(result.attempts, 1);
    assert_eq!(writes(&api).len(), 2, "one call each");
    assert_eq!(replicas(&api, "llama"), Some(1));
}

#[tokio::test]
async fn a_server_that_does_not_answer_ends_in_a_timeout() {
    let api = cluster().await;
    api.delay_next_requests(100, Duration::from_secs(60));
    let config = ActuatorConfig {
        call_timeout: Duration::from_millis(200),
        retries: 1,
        ..config()
    };
    let started = std::time::Instant::now();
    let result = one(&actuator(&api, config), scale("llama", 4)).await;
    assert_eq!(
        result.outcome,
        Err(ActuationError::Timeout { after_ms: 200 })
    );
    assert_eq!(result.attempts, 2);
    assert_eq!(writes(&api).len(), 2, "each attempt reached the server");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the timeout bounds the wait: {:?}",
        started.elapsed()
    );
    let message = ActuationError::Timeout { after_ms: 200 }.to_string();
    assert!(message.contains("200 ms"), "{message}");
}

#[tokio::test]
async fn a_call_that_times_out_is_tried_again() {
    let api = cluster().await;
    api.delay_next_requests(1, Duration::from_secs(60));
    let config = ActuatorConfig {
        call_timeout: Duration::from_millis(200),
        ..config()
    };
    let result = one(&actuator(&api, config), scale("llama", 2)).await;
    assert_eq!(result.outcome, Ok(Applied::Scaled { replicas: 2 }));
    assert_eq!(result.attempts, 2);
    assert_eq!(replicas(&api, "llama"), Some(2));
}

#[tokio::test]
async fn each_action_has_its_result_in_order_and_a_failure_stops_no_other() {
    let api = cluster().await;
    api.create(&deployment("qwen", 1)).expect("deployment");
    let actions = [scale("llama", 2), scale("missing", 3), scale("qwen", 5)];
    let results = actuator(&api, config()).apply(&actions).await;
    let indices: Vec<usize> = results.iter().map(|r| r.index).collect();
    assert_eq!(indices, [0, 1, 2]);
    assert_eq!(results[0].outcome, Ok(Applied::Scaled { replicas: 2 }));
    assert!(
        matches!(results[1].outcome, Err(ActuationError::NotFound { .. })),
        "{:?}",
        results[1]
    );
    assert_eq!(results[1].attempts, 1, "a 404 is not retried");
    assert_eq!(results[2].outcome, Ok(Applied::Scaled { replicas: 5 }));
    assert_eq!(replicas(&api, "llama"), Some(2));
    assert_eq!(replicas(&api, "qwen"), Some(5));
    assert!(actuator(&api, config()).apply(&[]).await.is_empty());
}

/// A controller spawns the cycle that calls `apply`: its future must be `Send` (a stream
/// `map` closure over borrowed actions made it not provably so).
#[tokio::test]
async fn apply_can_run_in_a_spawned_task() {
    let api = cluster().await;
    let actuator = actuator(&api, config());
    let task = tokio::spawn(async move {
        let actions = vec![scale("llama", 2)];
        actuator.apply(&actions).await
    });
    let results = task.await.expect("task");
    assert_eq!(results[0].outcome, Ok(Applied::Scaled { replicas: 2 }));
}

#[tokio::test]
async fn a_write_the_caller_may_no_longer_make_is_withheld_before_it_is_sent() {
    let api = cluster().await;
    api.inject_conflicts(100);
    let asked = std::sync::atomic::AtomicU32::new(0);
    // The caller may write twice (its lease runs out before the third try).
    let may_write = || {
        let n = asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        (n < 2).then_some(Duration::from_secs(60))
    };
    let actuator = actuator(&api, config());
    let results = actuator
        .apply_checked(&[scale("llama", 4)], &may_write)
        .await;
    assert_eq!(results[0].outcome, Err(ActuationError::Withheld));
    assert_eq!(results[0].attempts, 2, "two calls, the third withheld");
    assert_eq!(
        writes(&api).len(),
        2,
        "nothing sent after the check said no"
    );
    assert_eq!(replicas(&api, "llama"), Some(1));
    assert!(!ActuationError::Withheld.is_retryable());
    // Not allowed from the start: nothing at all is sent.
    let results = actuator.apply_checked(&[scale("llama", 4)], &|| None).await;
    assert_eq!(results[0].outcome, Err(ActuationError::Withheld));
    assert_eq!(results[0].attempts, 0);
    assert_eq!(writes(&api).len(), 2);
}

#[tokio::test]
async fn a_call_is_cut_when_the_callers_time_to_write_runs_out() {
    let api = cluster().await;
    api.delay_next_requests(100, Duration::from_secs(60));
    let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
    let may_write = || {
        let now = tokio::time::Instant::now();
        (now < deadline).then(|| deadline - now)
    };
    let started = std::time::Instant::now();
    let results = actuator(&api, config())
        .apply_checked(&[scale("llama", 4)], &may_write)
        .await;
    assert_eq!(results[0].outcome, Err(ActuationError::Withheld));
    assert_eq!(results[0].attempts, 1);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "cut at the caller's deadline, not the 5 s call timeout: {:?}",
        started.elapsed()
    );
}
