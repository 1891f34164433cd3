//! The scaler's decisions, without gRPC: which variant a ScaledObject's trigger names, what
//! wvo wants for it, and the metric that makes KEDA's HPA land on exactly that.
//!
//! ## The arithmetic
//! KEDA registers an external scaler's metric as an HPA `External` metric whose target type
//! is the trigger's `metricType`, `AverageValue` unless set otherwise. For an `AverageValue`
//! target the HPA computes `desired = ceil(metricValue / averageValue)` (kube-controller-
//! manager, `GetExternalPerPodMetricReplicas`), whatever the current replicas. wvo answers a
//! target of [`TARGET`] (1) and a value of its desired replicas `d`, so `ceil(d / 1) = d`
//! exactly: both are integers, sent as `int64` and `double` (exact up to 2^53, far above the
//! CRD's 1,000,000 replicas), and KEDA turns them into milli-quantities (`d * 1000m`), also
//! exact. At `d = 0` the value is 0 and [`is_active`] is false: KEDA, not the HPA, takes
//! the workload to 0 (the HPA's own minimum is 1) and back to 1 when `d > 0`.

use std::collections::HashMap;
use wvo_api::crd::ActuationMode;
use wvo_controller::view::ControllerView;

/// The one metric wvo's scaler reports per ScaledObject (KEDA names it `s<trigger index>-`
/// followed by this in the HPA, and strips the prefix again when it asks for its value).
pub const METRIC_NAME: &str = "wvo-desired-replicas";

/// The metric's target (`AverageValue`): one replica per unit of the metric.
pub const TARGET: u32 = 1;

/// Trigger metadata key: the VariantAutoscaling's name (required).
pub const KEY_VARIANT_AUTOSCALING: &str = "variantAutoscaling";
/// Trigger metadata key: the variant's name inside the VA (`spec.variants[].name`, required).
pub const KEY_VARIANT: &str = "variant";
/// Trigger metadata key: the VA's namespace (optional; default: the ScaledObject's).
pub const KEY_NAMESPACE: &str = "namespace";
/// Keys KEDA reads itself from the same trigger metadata and passes along (accepted, unused).
pub const KEDA_KEYS: [&str; 3] = ["scalerAddress", "enableTLS", "unsafeSsl"];

/// One variant of one VA: what a ScaledObject follows.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VariantKey {
    /// Namespace of the VA.
    pub namespace: String,
    /// Name of the VA.
    pub variant_autoscaling: String,
    /// Name of the variant (`spec.variants[].name`).
    pub variant: String,
}

impl std::fmt::Display for VariantKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "variant {:?} of VariantAutoscaling {}/{}",
            self.variant, self.namespace, self.variant_autoscaling
        )
    }
}

/// How a scaler error reaches KEDA (mapped to the gRPC status code of the same name).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The ScaledObject's trigger is wrong (a key missing, misspelt or empty).
    InvalidArgument,
    /// The VA or variant is not in wvo's last plan.
    NotFound,
    /// The VA's spec says KEDA must not drive it.
    FailedPrecondition,
    /// wvo has no plan to serve now (no cycle yet, not the leader, stopped).
    Unavailable,
    /// The controller's view cannot be read (a writer panicked).
    Internal,
}

/// Why the scaler cannot answer; each message names the key or field and the fix.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ScalerError {
    /// A required trigger metadata key is absent or empty.
    #[error("trigger metadata {0:?} is missing or empty: wvo's scaler needs {KEY_VARIANT_AUTOSCALING:?} (the VariantAutoscaling's name) and {KEY_VARIANT:?} (its variant's name), and takes {KEY_NAMESPACE:?} (default: the ScaledObject's namespace)")]
    MissingKey(&'static str),
    /// A trigger metadata key wvo does not know (a misspelling would otherwise go unseen).
    #[error("trigger metadata {0:?} is not a key wvo's scaler knows: use {KEY_VARIANT_AUTOSCALING:?}, {KEY_VARIANT:?} and optionally {KEY_NAMESPACE:?}")]
    UnknownKey(String),
    /// No namespace: neither the trigger nor the ScaledObject reference names one.
    #[error("no namespace: the ScaledObject reference has none and trigger metadata {KEY_NAMESPACE:?} is not set")]
    NoNamespace,
    /// `GetMetrics` asked for a metric wvo did not declare.
    #[error("metric {0:?} is not wvo's: GetMetricSpec declares only {METRIC_NAME:?}")]
    UnknownMetric(String),
    /// No control cycle has completed yet.
    #[error("wvo has not completed a control cycle yet; KEDA will retry")]
    NoCycleYet,
    /// This replica is a standby: its view is not the plan in force.
    #[error("this wvo replica is not the leader, so it has no current plan; point scalerAddress at the leader (docs/keda.md)")]
    NotLeader,
    /// The control loop stopped for good.
    #[error("wvo's control loop stopped: {0}")]
    Stopped(String),
    /// The VA is not in the last plan.
    #[error("VariantAutoscaling {namespace}/{name} is not in wvo's last plan: it does not exist, or wvo refused it (see its status conditions)")]
    VaNotFound {
        /// Namespace asked for.
        namespace: String,
        /// Name asked for.
        name: String,
    },
    /// The VA has no variant of that name.
    #[error("{key} does not exist; its variants are {known:?}")]
    VariantNotFound {
        /// What was asked for.
        key: VariantKey,
        /// The VA's variant names.
        known: Vec<String>,
    },
    /// The VA's actuation mode makes wvo write the workload itself.
    #[error("{key}: spec.actuation is {mode:?}, so wvo writes the workload itself (or bounds its HPA) and would fight KEDA; set spec.actuation: keda")]
    NotForKeda {
        /// What was asked for.
        key: VariantKey,
        /// The VA's mode.
        mode: ActuationMode,
    },
    /// The VA is a dry run: its decisions must not reach the workload.
    #[error("{key}: spec.dryRun is true, so its decisions must not reach the workload; set dryRun: false to let KEDA follow them")]
    DryRun {
        /// What was asked for.
        key: VariantKey,
    },
    /// The view's lock is poisoned.
    #[error("wvo's controller view cannot be read (a writer panicked); restart wvo")]
    ViewPoisoned,
}

impl ScalerError {
    /// How this error reaches KEDA.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::MissingKey(_)
            | Self::UnknownKey(_)
            | Self::NoNamespace
            | Self::UnknownMetric(_) => ErrorKind::InvalidArgument,
            Self::VaNotFound { .. } | Self::VariantNotFound { .. } => ErrorKind::NotFound,
            Self::NotForKeda { .. } | Self::DryRun { .. } => ErrorKind::FailedPrecondition,
            Self::NoCycleYet | Self::NotLeader | Self::Stopped(_) => ErrorKind::Unavailable,
            Self::ViewPoisoned => ErrorKind::Internal,
        }
    }
}

/// The variant a ScaledObject follows, from its namespace (`ScaledObjectRef.namespace`) and
/// its trigger's metadata.
pub fn parse_key(
    scaled_object_namespace: &str,
    metadata: &HashMap<String, String>,
) -> Result<VariantKey, ScalerError> {
    let mut unknown: Vec<&String> = metadata
        .keys()
        .filter(|k| {
            ![KEY_VARIANT_AUTOSCALING, KEY_VARIANT, KEY_NAMESPACE].contains(&k.as_str())
                && !KEDA_KEYS.contains(&k.as_str())
        })
        .collect();
    unknown.sort();
    if let Some(k) = unknown.first() {
        return Err(ScalerError::UnknownKey((*k).clone()));
    }
    let required = |key: &'static str| {
        metadata
            .get(key)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .ok_or(ScalerError::MissingKey(key))
    };
    let variant_autoscaling = required(KEY_VARIANT_AUTOSCALING)?;
    let variant = required(KEY_VARIANT)?;
    let namespace = match metadata.get(KEY_NAMESPACE).map(|v| v.trim()) {
        Some(ns) if !ns.is_empty() => ns.to_string(),
        _ if !scaled_object_namespace.is_empty() => scaled_object_namespace.to_string(),
        _ => return Err(ScalerError::NoNamespace),
    };
    Ok(VariantKey {
        namespace,
        variant_autoscaling,
        variant,
    })
}

/// wvo's desired replicas for `key` in `view` (its last cycle's decision, after
/// stabilization), or why there is none to serve. Served for VAs in `keda` and `metric`
/// mode; `scale` and `hpa` (wvo writes the workload) and dry runs are refused.
pub fn desired_replicas(view: &ControllerView, key: &VariantKey) -> Result<u32, ScalerError> {
    if let Some(why) = &view.stopped {
        return Err(ScalerError::Stopped(why.clone()));
    }
    if !view.ready {
        return Err(ScalerError::NoCycleYet);
    }
    if !view.leader {
        return Err(ScalerError::NotLeader);
    }
    let model = view
        .models
        .iter()
        .find(|m| m.namespace == key.namespace && m.name == key.variant_autoscaling)
        .ok_or_else(|| ScalerError::VaNotFound {
            namespace: key.namespace.clone(),
            name: key.variant_autoscaling.clone(),
        })?;
    let variant = model
        .variants
        .iter()
        .find(|v| v.name == key.variant)
        .ok_or_else(|| ScalerError::VariantNotFound {
            key: key.clone(),
            known: model.variants.iter().map(|v| v.name.clone()).collect(),
        })?;
    match model.actuation {
        ActuationMode::Keda | ActuationMode::Metric => {}
        mode @ (ActuationMode::Scale | ActuationMode::Hpa) => {
            return Err(ScalerError::NotForKeda {
                key: key.clone(),
                mode,
            })
        }
    }
    if model.dry_run {
        return Err(ScalerError::DryRun { key: key.clone() });
    }
    Ok(variant.desired)
}

/// Whether KEDA should keep the workload above zero: wvo wants at least one replica. A
/// model woken by requests waiting at the gateway gets `desired >= 1` in the cycle that sees
/// them, so this turns true then.
pub fn is_active(desired: u32) -> bool {
    desired > 0
}

/// The metric's value for `desired` replicas: `(int64, double)`, the same number in the
/// proto's deprecated integer field and in its float field.
pub fn metric_value(desired: u32) -> (i64, f64) {
    (i64::from(desired), f64::from(desired))
}

/// The replicas KEDA's HPA sets from wvo's answers: KEDA takes `targetSizeFloat` when it
/// is above 0, else `targetSize` (and `metricValueFloat` above 0, else `metricValue`), turns
/// each into a milli-quantity (kedacore/keda v2.20.2, `pkg/scalers/external_scaler.go`,
/// `GetMetricTargetMili`, `GenerateMetricInMili`), and the HPA computes
/// `ceil(value / target)` for an `AverageValue` External metric (Kubernetes'
/// `GetExternalPerPodMetricReplicas`, outside its tolerance band, see docs/keda.md). `None`
/// when the target is not positive or a value is not a finite number >= 0. A model of the
/// consumer, for the tests and the docs: wvo never calls it to decide.
pub fn hpa_replicas(
    target_size: i64,
    target_size_float: f64,
    metric_value: i64,
    metric_value_float: f64,
) -> Option<u64> {
    let pick = |float: f64, int: i64| if float > 0.0 { float } else { int as f64 };
    let target_milli = (pick(target_size_float, target_size) * 1000.0).round();
    let value_milli = (pick(metric_value_float, metric_value) * 1000.0).round();
    let valid = target_milli > 0.0
        && target_milli.is_finite()
        && value_milli >= 0.0
        && value_milli.is_finite();
    if !valid {
        return None;
    }
    let replicas = (value_milli / target_milli).ceil();
    // Below 2^64: a replica count, not an overflow.
    (replicas < 1.8e19).then_some(replicas as u64)
}
