//! Adapters of the peers in crate `wvo-baselines` (pure policies) to the bench's [`Policy`].
//!
//! As their users deploy them: HPA and KEDA drive ONE Deployment per model, its first-listed
//! variant (min 1 replica; the other variants stay at their `minReplicas`). WVA drives every
//! variant of a model.

use wvo_baselines::hpa::{Hpa, HpaConfig, MetricSource};
use wvo_baselines::wva::{wva_decide, WvaConfig, WvaVariant};
use wvo_baselines::PodMetrics;

use crate::policy::{plan_replicas, Desired, PodSample, Policy, View};
use crate::scenario::{Scenario, Variant};
use crate::BenchError;
use wvo_api::PlanOptions;

fn metrics(p: &PodSample) -> PodMetrics {
    PodMetrics {
        ready: p.ready,
        running: p.running,
        waiting: p.waiting,
        kv_usage: p.kv_usage,
    }
}

/// Most replicas of `v` the inventory could ever hold.
fn inventory_max(scenario: &Scenario, v: &Variant) -> u32 {
    let gpus = scenario
        .inventory
        .iter()
        .find(|a| a.name == v.accelerator)
        .map_or(0, |a| a.count);
    let fit = gpus / v.gpus_per_replica.max(1);
    v.max_replicas.map_or(fit, |m| m.min(fit)).max(1)
}

/// Which HPA flavour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HpaKind {
    /// HPA on `vllm:num_requests_running`, 2 per pod (LLMKube/KServe).
    Running,
    /// KEDA on `vllm:num_requests_waiting`, 5 per pod (vLLM production-stack).
    Queue,
}

/// HPA or KEDA on the first variant of every model.
#[derive(Debug)]
pub struct HpaPolicy {
    kind: HpaKind,
    /// Target per pod, requests (None: the flavour's default, 2 running or 5 waiting).
    target: Option<f64>,
    hpas: Vec<Hpa>,
}

impl HpaPolicy {
    /// One HPA per model, with the flavour's default target.
    pub fn new(kind: HpaKind) -> Self {
        HpaPolicy {
            kind,
            target: None,
            hpas: Vec::new(),
        }
    }

    /// One HPA per model with `target` requests per pod (running for [`HpaKind::Running`],
    /// waiting for [`HpaKind::Queue`]).
    pub fn with_target(kind: HpaKind, target: f64) -> Self {
        HpaPolicy {
            kind,
            target: Some(target),
            hpas: Vec::new(),
        }
    }
}

impl Policy for HpaPolicy {
    fn name(&self) -> String {
        match self.kind {
            HpaKind::Running => "hpa".into(),
            HpaKind::Queue => "keda".into(),
        }
    }

    fn period_seconds(&self) -> f64 {
        self.hpas
            .first()
            .map_or(15.0, |h| h.config().sync_period_seconds)
    }

    /// Enough replicas of the first variant for the starting rate at the planner's capacity.
    fn initial(&mut self, scenario: &Scenario) -> Result<Desired, BenchError> {
        self.hpas = scenario
            .models
            .iter()
            .map(|m| {
                let v = &m.variants[0];
                let min = v.min_replicas.max(1);
                let max = inventory_max(scenario, v).max(min);
                let with_target = |mut c: HpaConfig| {
                    if let Some(t) = self.target {
                        c.target_average_value = t;
                    }
                    c
                };
                match self.kind {
                    HpaKind::Running => {
                        Hpa::new(with_target(HpaConfig::running_requests(min, max)))
                    }
                    // KEDA registers its trigger as an External AverageValue metric.
                    HpaKind::Queue => Hpa::with_source(
                        with_target(HpaConfig::keda_queue_depth(min, max)),
                        MetricSource::ExternalAverageValue,
                    ),
                }
            })
            .collect();
        Ok(scenario
            .models
            .iter()
            .map(|m| {
                m.variants
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        if i == 0 {
                            let rate = m.traffic.shape.rate(0.0);
                            let need = if v.capacity_rps > 0.0 {
                                (rate / v.capacity_rps).ceil() as u32
                            } else {
                                1
                            };
                            need.clamp(v.min_replicas.max(1), inventory_max(scenario, v).max(1))
                        } else {
                            v.min_replicas
                        }
                    })
                    .collect()
            })
            .collect())
    }

    fn decide(&mut self, view: &View<'_>) -> Result<Desired, BenchError> {
        let mut out = view.current();
        for ((mv, hpa), d) in view.models.iter().zip(&mut self.hpas).zip(&mut out) {
            let Some(first) = mv.variants.first() else {
                continue;
            };
            let pods: Vec<PodMetrics> = first.pods.iter().map(metrics).collect();
            d[0] = hpa.sync(view.now, first.replicas, &pods);
        }
        Ok(out)
    }
}

/// WVA saturation V1 on every variant of every model.
#[derive(Clone, Debug, Default)]
pub struct WvaPolicy {
    config: WvaConfig,
}

impl WvaPolicy {
    /// WVA with its default thresholds.
    pub fn new() -> Self {
        WvaPolicy::default()
    }
}

impl Policy for WvaPolicy {
    fn name(&self) -> String {
        "wva".into()
    }

    fn period_seconds(&self) -> f64 {
        30.0
    }

    /// The optimizer's plan for the starting rate (as for wvo).
    fn initial(&mut self, scenario: &Scenario) -> Result<Desired, BenchError> {
        let rates: Vec<f64> = scenario
            .models
            .iter()
            .map(|m| m.traffic.shape.rate(0.0))
            .collect();
        plan_replicas(scenario, &rates, PlanOptions::default())
    }

    fn decide(&mut self, view: &View<'_>) -> Result<Desired, BenchError> {
        let s = view.scenario;
        let mut out = Vec::with_capacity(view.models.len());
        for (m, mv) in s.models.iter().zip(&view.models) {
            let pods: Vec<Vec<PodMetrics>> = mv
                .variants
                .iter()
                .map(|v| v.pods.iter().map(metrics).collect())
                .collect();
            let first_min = usize::from(m.variants.iter().all(|v| v.min_replicas == 0));
            let variants: Vec<WvaVariant<'_>> = m
                .variants
                .iter()
                .zip(&mv.variants)
                .zip(&pods)
                .enumerate()
                .map(|(i, ((v, vv), p))| WvaVariant {
                    replicas: vv.replicas,
                    pending: vv.pending + vv.starting,
                    // The model keeps at least one replica (on its first variant).
                    min_replicas: if i == 0 {
                        v.min_replicas.max(first_min as u32)
                    } else {
                        v.min_replicas
                    },
                    max_replicas: inventory_max(s, v),
                    cost_per_replica_hour: v.cost_per_replica_hour,
                    pods: p,
                })
                .collect();
            out.push(wva_decide(&self.config, &variants));
        }
        Ok(out)
    }
}
