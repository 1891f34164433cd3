//! The emulated cluster of the demo: GPU nodes, the inventory ConfigMap, the CRD, and per
//! model its Deployments and VariantAutoscaling (profiles estimated from the catalog).

use super::scenario::{self, Timing, MODELS, NAMESPACE, SYSTEM_NAMESPACE};
use anyhow::{Context, Result};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube::CustomResourceExt;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use wvo_perf::{estimate_by_name, Catalog, Estimate, EstimateOptions};
use wvo_sim::kube_api::{gpu_node, KubeApiHandle, KubeApiOptions, KubeApiServer};

/// Catalog estimates per (VA name, variant name).
pub type Estimates = Arc<BTreeMap<(String, String), Estimate>>;

/// Estimates every variant's profile from the catalog at the demo's token mix.
pub fn estimates() -> Result<Estimates> {
    let catalog = Catalog::embedded().context("reading the embedded catalog")?;
    let opts = EstimateOptions {
        avg_input_tokens: f64::from(scenario::INPUT_TOKENS),
        avg_output_tokens: scenario::MEAN_OUTPUT_TOKENS,
        ..EstimateOptions::default()
    };
    let mut out = BTreeMap::new();
    for m in &MODELS {
        for v in m.variants {
            let e = estimate_by_name(catalog, m.catalog, v.accelerator, v.tp, None, &opts)
                .with_context(|| {
                    format!("estimating {} on {} x{}", m.catalog, v.accelerator, v.tp)
                })?;
            if e.profile().is_none() {
                anyhow::bail!(
                    "{} does not fit on {} x {}: {}",
                    m.catalog,
                    v.tp,
                    v.accelerator,
                    e.reason.clone().unwrap_or_default()
                );
            }
            out.insert((m.name.to_string(), v.name.to_string()), e);
        }
    }
    Ok(Arc::new(out))
}

/// Label of a pod's VA.
pub const VA_LABEL: &str = "wvo.dev/va";
/// Label of a pod's variant.
pub const VARIANT_LABEL: &str = "wvo.dev/variant";

/// Starts the emulator (pods take `timing.startup_seconds` to be ready) and creates the
/// cluster's objects.
pub async fn start(timing: &Timing, estimates: &Estimates) -> Result<KubeApiHandle> {
    let api = KubeApiServer::start(KubeApiOptions {
        pod_startup_delay: Duration::from_secs_f64(timing.startup_seconds),
        ..KubeApiOptions::default()
    })
    .await
    .context("starting the Kubernetes API emulator")?;
    for g in &scenario::FLEET {
        for i in 0..g.nodes {
            let name = format!("{}-{i}", g.name.to_lowercase());
            api.create(&gpu_node(&name, g.product, g.gpus_per_node))
                .with_context(|| format!("creating node {name}"))?;
        }
    }
    for ns in [NAMESPACE, SYSTEM_NAMESPACE] {
        api.create(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
            .with_context(|| format!("creating namespace {ns}"))?;
    }
    let client = api.client().context("a client of the emulator")?;
    let crds: Api<CustomResourceDefinition> = Api::all(client);
    crds.create(
        &PostParams::default(),
        &wvo_api::crd::VariantAutoscaling::crd(),
    )
    .await
    .context("creating the VariantAutoscaling CRD")?;
    api.create(&json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "wvo-inventory", "namespace": SYSTEM_NAMESPACE},
        "data": {"inventory.yaml": scenario::inventory_yaml()}}))
        .context("creating the inventory ConfigMap")?;
    for m in &MODELS {
        for v in m.variants {
            api.create(&deployment(m, v))
                .with_context(|| format!("creating Deployment {}-{}", m.name, v.name))?;
        }
        api.create(&variant_autoscaling(m, timing, estimates))
            .with_context(|| format!("creating VariantAutoscaling {}", m.name))?;
    }
    Ok(api)
}

fn product(accelerator: &str) -> &'static str {
    scenario::gpu_type(accelerator).map_or("", |g| g.product)
}

/// The Deployment of one variant: pods pinned to its GPU product, `tp` GPUs each.
pub fn deployment(m: &scenario::Model, v: &scenario::Variant) -> Value {
    let name = format!("{}-{}", m.name, v.name);
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "replicas": v.initial_replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name, VA_LABEL: m.name, VARIANT_LABEL: v.name}},
                "spec": {
                    "nodeSelector": {"nvidia.com/gpu.product": product(v.accelerator)},
                    "containers": [{
                        "name": "vllm", "image": "vllm/vllm-openai",
                        "args": ["--model", m.model_id, "--tensor-parallel-size", v.tp.to_string()],
                        "resources": {"limits": {"nvidia.com/gpu": v.tp.to_string()}}
                    }]
                }
            }
        }
    })
}

/// The VA of one model: its service class, inline profiles from the catalog, the
/// stabilization window scaled by the speed.
pub fn variant_autoscaling(m: &scenario::Model, timing: &Timing, estimates: &Estimates) -> Value {
    let variants: Vec<Value> = m
        .variants
        .iter()
        .map(|v| {
            let profile = estimates
                .get(&(m.name.to_string(), v.name.to_string()))
                .and_then(Estimate::profile);
            let mut variant = json!({
                "name": v.name,
                "scaleTargetRef": {"name": format!("{}-{}", m.name, v.name)},
                "accelerator": v.accelerator,
                "gpusPerReplica": v.tp,
            });
            if let Some(p) = profile {
                variant["profile"] = json!({"alpha": p.alpha, "beta": p.beta, "gamma": p.gamma,
                    "delta": p.delta, "maxBatchSize": p.max_batch_size});
            }
            variant
        })
        .collect();
    let mut va = json!({
        "apiVersion": "wvo.dev/v1alpha1", "kind": "VariantAutoscaling",
        "metadata": {"name": m.name, "namespace": NAMESPACE},
        "spec": {
            "modelID": m.model_id,
            "serviceClass": m.service_class,
            "minReplicas": 1,
            "scaleDownStabilizationSeconds": timing.stabilization_seconds,
            "variants": variants
        }
    });
    if let Some(idle) = m.idle_seconds {
        va["spec"]["minReplicas"] = json!(0);
        va["spec"]["scaleToZero"] = json!({"idleSeconds": timing.idle_seconds(idle)});
    }
    va
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_fits_and_every_va_parses() {
        let estimates = estimates().unwrap();
        let timing = Timing::new(10.0).unwrap();
        for m in &MODELS {
            let va: wvo_api::crd::VariantAutoscaling =
                serde_json::from_value(variant_autoscaling(m, &timing, &estimates)).unwrap();
            assert_eq!(va.spec.variants.len(), m.variants.len());
            assert!(va.spec.variants.iter().all(|v| v.profile.is_some()));
            assert_eq!(va.spec.scale_down_stabilization_seconds, 30);
            match m.idle_seconds {
                None => assert!(va.spec.scale_to_zero.is_none() && va.spec.min_replicas == 1),
                Some(_) => {
                    let z = va.spec.scale_to_zero.as_ref().unwrap();
                    assert_eq!(z.idle_seconds, 12);
                    assert_eq!(va.spec.min_replicas, 0);
                }
            }
            for v in m.variants {
                let d: k8s_openapi::api::apps::v1::Deployment =
                    serde_json::from_value(deployment(m, v)).unwrap();
                assert_eq!(d.spec.replicas, Some(v.initial_replicas as i32));
            }
        }
    }
}
