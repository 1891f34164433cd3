//! The scaler's decisions without a cluster: trigger keys, the arithmetic that makes KEDA's
//! HPA land on wvo's desired replicas (up to the CRD's largest and beyond), and the gRPC
//! service over a view filled by hand, asked through a client generated from KEDA's proto.

use proptest::prelude::*;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use wvo_api::crd::ActuationMode;
use wvo_controller::view::{ControllerView, ModelView, SharedView, VariantView};
use wvo_keda::proto::external_scaler_client::ExternalScalerClient;
use wvo_keda::proto::{GetMetricsRequest, ScaledObjectRef};
use wvo_keda::scaler::{
    desired_replicas, hpa_replicas, is_active, metric_value, parse_key, ErrorKind, ScalerError,
    VariantKey, TARGET,
};

fn metadata(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The HPA's replicas for wvo's answers at `desired`.
fn round_trip(desired: u32) -> Option<u64> {
    let (int, float) = metric_value(desired);
    hpa_replicas(i64::from(TARGET), f64::from(TARGET), int, float)
}

#[test]
fn the_hpa_lands_on_exactly_the_desired_replicas_from_zero_to_the_largest() {
    for desired in [0, 1, 2, 3, 7, 10, 11, 99, 1000, 65_535, 999_999, 1_000_000] {
        assert_eq!(round_trip(desired), Some(u64::from(desired)), "{desired}");
    }
    // Far past the CRD's 1,000,000: still exact (f64 holds integers to 2^53).
    assert_eq!(round_trip(u32::MAX), Some(u64::from(u32::MAX)));
    assert!(!is_active(0));
    assert!(is_active(1));
}

proptest! {
    #[test]
    fn every_replica_count_round_trips(desired in 0u32..=u32::MAX) {
        prop_assert_eq!(round_trip(desired), Some(u64::from(desired)));
        prop_assert_eq!(is_active(desired), desired > 0);
    }
}

#[test]
fn keda_reads_the_integer_fields_when_the_float_ones_are_zero() {
    // At 0 the float value is 0 and KEDA falls back to the integer field: both say 0.
    assert_eq!(metric_value(0), (0, 0.0));
    assert_eq!(hpa_replicas(1, 0.0, 0, 0.0), Some(0));
    // A model of KEDA that took the other field would get a different answer here.
    assert_eq!(hpa_replicas(2, 0.0, 7, 0.0), Some(4));
    assert_eq!(hpa_replicas(0, 0.0, 7, 0.0), None, "no target");
}

#[test]
fn trigger_keys_name_the_variant_and_default_to_the_scaled_objects_namespace() {
    let key = parse_key(
        "llm",
        &metadata(&[
            ("scalerAddress", "wvo.wvo-system:9090"),
            ("variantAutoscaling", "llama"),
            ("variant", "h100"),
        ]),
    )
    .expect("valid");
    assert_eq!(
        key,
        VariantKey {
            namespace: "llm".into(),
            variant_autoscaling: "llama".into(),
            variant: "h100".into()
        }
    );
    let key = parse_key(
        "llm",
        &metadata(&[
            ("variantAutoscaling", "llama"),
            ("variant", "h100"),
            ("namespace", "models"),
        ]),
    )
    .expect("valid");
    assert_eq!(key.namespace, "models");
    let e = parse_key("llm", &metadata(&[("variant", "h100")])).expect_err("no VA");
    assert_eq!(e, ScalerError::MissingKey("variantAutoscaling"));
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    let e = parse_key(
        "llm",
        &metadata(&[("variantAutoscaling", "llama"), ("variant", " ")]),
    )
    .expect_err("blank");
    assert_eq!(e, ScalerError::MissingKey("variant"));
    let e = parse_key(
        "llm",
        &metadata(&[
            ("variantAutoscaling", "llama"),
            ("variant", "h100"),
            ("varaint", "l40s"),
        ]),
    )
    .expect_err("typo");
    assert_eq!(e, ScalerError::UnknownKey("varaint".into()));
    assert!(e.to_string().contains("\"varaint\""), "{e}");
    let e = parse_key(
        "",
        &metadata(&[("variantAutoscaling", "llama"), ("variant", "h100")]),
    )
    .expect_err("no namespace");
    assert_eq!(e, ScalerError::NoNamespace);
}

fn variant(name: &str, desired: u32) -> VariantView {
    VariantView {
        name: name.into(),
        accelerator: "H100".into(),
        current: 0,
        ready: 0,
        pending: 0,
        planned: desired,
        desired,
        capacity_rps: 10.0,
        cost_per_hour: 4.1 * f64::from(desired),
        price_per_replica: 4.1,
        reason: "planned".into(),
        may_actuate: true,
        frozen: None,
    }
}

fn model(
    name: &str,
    actuation: ActuationMode,
    dry_run: bool,
    desired: &[(&str, u32)],
) -> ModelView {
    ModelView {
        namespace: "llm".into(),
        name: name.into(),
        model_id: format!("org/{name}"),
        priority: 0,
        arrival_rate: Some(1.0),
        demand_rps: 1.0,
        satisfaction: 1.0,
        metrics_unknown: None,
        variants: desired.iter().map(|(v, d)| variant(v, *d)).collect(),
        conditions: vec![],
        latency: None,
        actuation,
        dry_run,
    }
}

fn view() -> ControllerView {
    ControllerView {
        models: vec![
            model(
                "big",
                ActuationMode::Keda,
                false,
                &[("h100", 1_000_000), ("l40s", 0)],
            ),
            model("exported", ActuationMode::Metric, false, &[("h100", 3)]),
            model("bounded", ActuationMode::Hpa, false, &[("h100", 3)]),
            model("shadow", ActuationMode::Keda, true, &[("h100", 3)]),
        ],
        ready: true,
        leader: true,
        ..ControllerView::default()
    }
}

fn key(va: &str, variant: &str) -> VariantKey {
    VariantKey {
        namespace: "llm".into(),
        variant_autoscaling: va.into(),
        variant: variant.into(),
    }
}

#[test]
fn keda_and_metric_vas_are_served_the_others_refused_with_the_fix() {
    let v = view();
    assert_eq!(desired_replicas(&v, &key("big", "h100")), Ok(1_000_000));
    assert_eq!(desired_replicas(&v, &key("big", "l40s")), Ok(0));
    assert_eq!(desired_replicas(&v, &key("exported", "h100")), Ok(3));
    let e = desired_replicas(&v, &key("bounded", "h100")).expect_err("hpa mode");
    assert_eq!(e.kind(), ErrorKind::FailedPrecondition);
    assert!(e.to_string().contains("set spec.actuation: keda"), "{e}");
    let e = desired_replicas(&v, &key("shadow", "h100")).expect_err("dry run");
    assert_eq!(e.kind(), ErrorKind::FailedPrecondition);
    let e = desired_replicas(&v, &key("big", "a100")).expect_err("no such variant");
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("[\"h100\", \"l40s\"]"), "{e}");
    let e = desired_replicas(&v, &key("gone", "h100")).expect_err("no such VA");
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("llm/gone"), "{e}");

    let standby = ControllerView {
        leader: false,
        ..view()
    };
    let e = desired_replicas(&standby, &key("big", "h100")).expect_err("standby");
    assert_eq!(e, ScalerError::NotLeader);
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    let fresh = ControllerView::default();
    assert_eq!(
        desired_replicas(&fresh, &key("big", "h100")),
        Err(ScalerError::NoCycleYet)
    );
    let stopped = ControllerView {
        stopped: Some("leader election ended".into()),
        ..view()
    };
    assert_eq!(
        desired_replicas(&stopped, &key("big", "h100")).map_err(|e| e.kind()),
        Err(ErrorKind::Unavailable)
    );
}

#[tokio::test]
async fn the_grpc_service_serves_the_largest_count_and_ends_streams_at_shutdown() {
    let view: SharedView = Arc::new(RwLock::new(view()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(wvo_keda::serve(listener, view.clone(), async move {
        let _ = stopped.await;
    }));
    let mut client = tokio::time::timeout(
        Duration::from_secs(10),
        ExternalScalerClient::connect(format!("http://{address}")),
    )
    .await
    .expect("in time")
    .expect("connect");
    let so = ScaledObjectRef {
        name: "big-h100".into(),
        namespace: "llm".into(),
        scaler_metadata: metadata(&[("variantAutoscaling", "big"), ("variant", "h100")]),
    };
    let spec = client
        .get_metric_spec(so.clone())
        .await
        .expect("spec")
        .into_inner()
        .metric_specs
        .remove(0);
    let value = client
        .get_metrics(GetMetricsRequest {
            scaled_object_ref: Some(so.clone()),
            metric_name: spec.metric_name.clone(),
        })
        .await
        .expect("metrics")
        .into_inner()
        .metric_values
        .remove(0);
    assert_eq!(
        hpa_replicas(
            spec.target_size,
            spec.target_size_float,
            value.metric_value,
            value.metric_value_float
        ),
        Some(1_000_000)
    );

    let mut stream = client
        .stream_is_active(so.clone())
        .await
        .expect("stream")
        .into_inner();
    let first = stream.message().await.expect("message").map(|m| m.result);
    assert_eq!(first, Some(true));
    // Shutdown ends the open stream (graceful shutdown would otherwise wait on it) and the
    // server returns.
    stop.send(()).expect("server running");
    let end = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("the stream ends in time");
    assert!(matches!(end, Ok(None)), "{end:?}");
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server stops in time")
        .expect("joined")
        .expect("served");
}
