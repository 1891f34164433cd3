//! Builders for emulated nodes.

use k8s_openapi::api::core::v1::{Node, NodeCondition, NodeSpec, NodeStatus, NodeSystemInfo};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;

/// An NVIDIA GPU node: label `nvidia.com/gpu.product=<product_label>` (and
/// `nvidia.com/gpu.count`, `kubernetes.io/hostname`), `gpus` allocatable `nvidia.com/gpu`,
/// 64 CPUs, 512Gi memory, condition Ready=True, `nodeInfo` naming the emulator.
///
/// ```
/// let node = wvo_sim::kube_api::gpu_node("h100-0", "NVIDIA-H100-80GB-HBM3", 8);
/// assert_eq!(node.metadata.name.as_deref(), Some("h100-0"));
/// ```
pub fn gpu_node(name: &str, product_label: &str, gpus: u32) -> Node {
    accelerator_node(
        name,
        "nvidia.com/gpu",
        "nvidia.com/gpu.product",
        product_label,
        gpus,
    )
}

/// A node with `gpus` of an arbitrary accelerator resource (e.g. `amd.com/gpu`) and the
/// product under `product_label_key` (e.g. `amd.com/gpu.product`).
pub fn accelerator_node(
    name: &str,
    resource: &str,
    product_label_key: &str,
    product: &str,
    gpus: u32,
) -> Node {
    let count_key = match product_label_key.strip_suffix(".product") {
        Some(prefix) => format!("{prefix}.count"),
        None => format!("{product_label_key}.count"),
    };
    let labels = BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), name.to_string()),
        (product_label_key.to_string(), product.to_string()),
        (count_key, gpus.to_string()),
    ]);
    let resources = BTreeMap::from([
        (resource.to_string(), Quantity(gpus.to_string())),
        ("cpu".to_string(), Quantity("64".into())),
        ("memory".to_string(), Quantity("512Gi".into())),
        ("pods".to_string(), Quantity("110".into())),
    ]);
    Node {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec::default()),
        status: Some(NodeStatus {
            allocatable: Some(resources.clone()),
            capacity: Some(resources),
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                reason: Some("KubeletReady".into()),
                message: Some("kubelet is posting ready status (emulated)".into()),
                ..NodeCondition::default()
            }]),
            // what `kubectl get nodes -o wide` prints (VERSION, OS-IMAGE, ...)
            node_info: Some(NodeSystemInfo {
                architecture: "amd64".into(),
                container_runtime_version: "containerd://2.0.0-wvo-emulator".into(),
                kernel_version: "6.1.0-wvo-emulator".into(),
                kubelet_version: "v1.34.0-wvo-emulator".into(),
                operating_system: "linux".into(),
                os_image: "wvo emulator".into(),
                ..NodeSystemInfo::default()
            }),
            ..NodeStatus::default()
        }),
    }
}
