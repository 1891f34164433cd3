//! Autoscaling policies behind one trait: what a policy sees in ([`View`]), desired replicas
//! per variant out ([`Desired`]).

use std::collections::BTreeMap;

use wvo_api::{ModelLoad, PlanInput, PlanOptions};
use wvo_cycle::cycle::{
    run_cycle, CycleState, DemandInputs, DemandOptions, ModelState, Snapshot, VariantState,
};

use crate::scenario::Scenario;
use crate::BenchError;

/// Desired replicas per model, per variant (scenario order).
pub type Desired = Vec<Vec<u32>>;

/// Scraped metrics of one pod (what a policy sees, up to one scrape interval old).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PodSample {
    /// The pod was Ready (serving) at the scrape; pods not yet scraped while ready have no
    /// metrics (all zero, `ready == false`).
    pub ready: bool,
    /// `vllm:num_requests_running`, requests.
    pub running: f64,
    /// `vllm:num_requests_waiting`, requests.
    pub waiting: f64,
    /// `vllm:kv_cache_usage_perc`, 0..1.
    pub kv_usage: f64,
}

/// Observed load of a model over the trailing rate window of the scraped counters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ObservedLoad {
    /// Arrivals at the gateway per second, req/s.
    pub arrival_rate: f64,
    /// Mean prompt tokens of the requests finished in the window, tokens.
    pub avg_input_tokens: f64,
    /// Mean generated tokens of the requests finished in the window, tokens.
    pub avg_output_tokens: f64,
    /// Requests waiting at the last scrape: in the servers' queues plus the gateway's
    /// queue gauge, requests.
    pub waiting: f64,
    /// The gateway's queue gauge alone at the last scrape (the EPP's flow-control queue
    /// size: requests held while the model has no ready replica), requests.
    pub gateway_queue: f64,
    /// Mean KV-cache usage of the ready pods at the last scrape, 0..1 (None with no pod
    /// scraped).
    pub kv_usage: Option<f64>,
}

/// One variant (one Deployment) as the Kubernetes API shows it now.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VariantView {
    /// spec.replicas: pending + starting + ready pods.
    pub replicas: u32,
    /// Ready pods.
    pub ready: u32,
    /// Pods bound to GPUs, not ready yet.
    pub starting: u32,
    /// Pods Pending for lack of a free GPU.
    pub pending: u32,
    /// Last scraped metrics of each of its pods.
    pub pods: Vec<PodSample>,
    /// The last start-up seen of one of its pods (GPUs bound to Ready, as pod conditions
    /// show), s; None before any pod started.
    pub startup_seconds: Option<f64>,
}

/// One model as a policy sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelView {
    /// Per variant, scenario order.
    pub variants: Vec<VariantView>,
    /// Observed load (None before two scrapes).
    pub load: Option<ObservedLoad>,
}

/// Everything a policy may look at when it decides.
#[derive(Clone, Debug)]
pub struct View<'a> {
    /// Simulated time, s.
    pub now: f64,
    /// The scenario (models, inventory; only the oracle reads its traffic).
    pub scenario: &'a Scenario,
    /// Per model, scenario order.
    pub models: Vec<ModelView>,
}

impl View<'_> {
    /// The replicas every variant has now (the "change nothing" answer).
    pub fn current(&self) -> Desired {
        self.models
            .iter()
            .map(|m| m.variants.iter().map(|v| v.replicas).collect())
            .collect()
    }
}

/// An autoscaling policy.
pub trait Policy {
    /// Its name in the report.
    fn name(&self) -> String;
    /// Seconds between decisions (infinite: never decides after the start).
    fn period_seconds(&self) -> f64;
    /// True when new pods skip the start-up time (the oracle).
    fn instant_startup(&self) -> bool {
        false
    }
    /// Replicas ready at time 0 (warm start).
    fn initial(&mut self, scenario: &Scenario) -> Result<Desired, BenchError>;
    /// One decision.
    fn decide(&mut self, view: &View<'_>) -> Result<Desired, BenchError>;
}

/// The optimizer's plan for `rates` (req/s per model) at the scenario's token mix.
pub fn plan_replicas(
    scenario: &Scenario,
    rates: &[f64],
    options: PlanOptions,
) -> Result<Desired, BenchError> {
    let mut load = BTreeMap::new();
    for (m, &rate) in scenario.models.iter().zip(rates) {
        let mix = m.mix();
        load.insert(
            m.name.clone(),
            ModelLoad {
                arrival_rate: rate,
                avg_input_tokens: Some(mix.avg_input_tokens),
                avg_output_tokens: Some(mix.avg_output_tokens),
            },
        );
    }
    let input = PlanInput {
        inventory: scenario.inventory.clone(),
        models: scenario.models.iter().map(|m| m.spec()).collect(),
        load,
        current: BTreeMap::new(),
        options,
    };
    let plan = wvo_optimizer::plan(&input).map_err(|e| BenchError::Policy(e.to_string()))?;
    let mut out = Vec::with_capacity(scenario.models.len());
    let mut offset = 0;
    for m in &scenario.models {
        out.push(
            plan.variants[offset..offset + m.variants.len()]
                .iter()
                .map(|v| v.replicas)
                .collect(),
        );
        offset += m.variants.len();
    }
    Ok(out)
}

fn initial_rates(scenario: &Scenario) -> Vec<f64> {
    scenario
        .models
        .iter()
        .map(|m| m.traffic.shape.rate(0.0))
        .collect()
}

/// Options of the `wvo` policy: the controller's own knobs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WvoConfig {
    /// Scale-down stabilization window of every VariantAutoscaling, s (CRD default 300).
    pub stabilization_seconds: f64,
    /// Planner options (`wvo run --headroom`).
    pub options: PlanOptions,
    /// Scale-down hysteresis margin, a fraction of the observed arrival rate
    /// (`wvo run --scale-down-margin`).
    pub scale_down_margin: f64,
    /// Seconds between cycles (`wvo run --interval-seconds`, default 15).
    pub period_seconds: f64,
    /// Demand estimation (`wvo run`'s defaults); None plans for the observed rate as it is.
    pub demand: Option<DemandOptions>,
}

impl Default for WvoConfig {
    /// What `wvo run` does by default.
    fn default() -> Self {
        // `wvo run`'s defaults (ControllerConfig::default in wvo-controller; a test there
        // checks they are the same).
        WvoConfig {
            stabilization_seconds: 300.0,
            options: PlanOptions {
                headroom: wvo_cycle::DEFAULT_HEADROOM,
                ..PlanOptions::default()
            },
            scale_down_margin: wvo_cycle::DEFAULT_SCALE_DOWN_MARGIN,
            period_seconds: 15.0,
            demand: Some(DemandOptions::default()),
        }
    }
}

/// wvo: the controller's own control cycle (`wvo_cycle::run_cycle`, which `wvo run` calls each cycle) on a
/// snapshot built from what the API and the scrapes show.
#[derive(Debug, Default)]
pub struct Wvo {
    config: WvoConfig,
    state: CycleState,
}

impl Wvo {
    /// A wvo controller with `config`.
    pub fn new(config: WvoConfig) -> Self {
        Wvo {
            config,
            state: CycleState::default(),
        }
    }
}

impl Policy for Wvo {
    fn name(&self) -> String {
        "wvo".into()
    }

    fn period_seconds(&self) -> f64 {
        self.config.period_seconds
    }

    fn initial(&mut self, scenario: &Scenario) -> Result<Desired, BenchError> {
        // The controller's admission of each model (what `wvo run` checks of a VA once it is
        // in plan form): a model it would refuse is refused here too, naming the field.
        for (i, m) in scenario.models.iter().enumerate() {
            wvo_cycle::admission::admit_spec(m.spec(), &scenario.inventory).map_err(|e| {
                BenchError::Field {
                    field: format!("models[{i}]"),
                    problem: format!("the controller would refuse this model: {e}"),
                }
            })?;
        }
        plan_replicas(scenario, &initial_rates(scenario), PlanOptions::default())
    }

    fn decide(&mut self, view: &View<'_>) -> Result<Desired, BenchError> {
        let s = view.scenario;
        let models = s
            .models
            .iter()
            .zip(&view.models)
            .map(|(m, mv)| ModelState {
                namespace: "bench".into(),
                name: m.name.clone(),
                spec: m.spec(),
                variants: mv
                    .variants
                    .iter()
                    .map(|v| VariantState {
                        replicas: v.replicas,
                        ready: v.ready,
                        pending_unschedulable: v.pending,
                        frozen: None,
                        startup_seconds: v.startup_seconds,
                    })
                    .collect(),
                stabilization_seconds: self.config.stabilization_seconds,
                load: mv
                    .load
                    .map(|l| ModelLoad {
                        arrival_rate: l.arrival_rate,
                        avg_input_tokens: Some(l.avg_input_tokens),
                        avg_output_tokens: Some(l.avg_output_tokens),
                    })
                    .ok_or_else(|| "no metrics scraped yet".to_string()),
                demand: DemandInputs {
                    waiting: mv.load.map(|l| l.waiting),
                    kv_usage: mv.load.and_then(|l| l.kv_usage),
                    // The slowest start-up seen among its variants' pods.
                    startup_seconds: mv
                        .variants
                        .iter()
                        .filter_map(|v| v.startup_seconds)
                        .reduce(f64::max),
                    scale_to_zero_idle_seconds: m.scale_to_zero_idle_seconds,
                    // The gateway's queue gauge is every bench model's wake signal.
                    wake: mv.load.map(|l| l.gateway_queue),
                    running: mv.load.map(|_| {
                        mv.variants
                            .iter()
                            .flat_map(|v| &v.pods)
                            .map(|p| p.running)
                            .sum()
                    }),
                    ..DemandInputs::default()
                },
            })
            .collect();
        let snapshot = Snapshot {
            now_seconds: view.now,
            inventory: s.inventory.clone(),
            models,
            options: self.config.options,
            scale_down_margin: self.config.scale_down_margin,
            demand: self.config.demand,
        };
        match run_cycle(&snapshot, &mut self.state) {
            Ok(outcome) => Ok(outcome
                .models
                .iter()
                .map(|m| m.variants.iter().map(|v| v.desired).collect())
                .collect()),
            // A cycle that cannot plan leaves everything as it is (as `wvo run` does).
            Err(_) => Ok(view.current()),
        }
    }
}

/// Peak provisioning: the optimizer's plan for every model's peak rate, held for the whole run.
#[derive(Clone, Debug, Default)]
pub struct Static {
    plan: Option<Desired>,
}

impl Static {
    /// A static policy (planned at the start of the run).
    pub fn new() -> Self {
        Static::default()
    }
}

impl Policy for Static {
    fn name(&self) -> String {
        "static".into()
    }

    fn period_seconds(&self) -> f64 {
        f64::INFINITY
    }

    fn initial(&mut self, scenario: &Scenario) -> Result<Desired, BenchError> {
        let peaks: Vec<f64> = scenario
            .models
            .iter()
            .map(|m| m.traffic.shape.max_rate(0.0, scenario.duration_seconds))
            .collect();
        let plan = plan_replicas(scenario, &peaks, PlanOptions::default())?;
        self.plan = Some(plan.clone());
        Ok(plan)
    }

    fn decide(&mut self, view: &View<'_>) -> Result<Desired, BenchError> {
        Ok(self.plan.clone().unwrap_or_else(|| view.current()))
    }
}

/// Clairvoyant lower limit: every period, the optimizer's plan (no headroom) for the highest
/// true rate of the coming period; new pods are ready at once.
#[derive(Clone, Copy, Debug)]
pub struct Oracle {
    period_seconds: f64,
}

impl Default for Oracle {
    fn default() -> Self {
        Oracle {
            period_seconds: 15.0,
        }
    }
}

impl Oracle {
    fn rates(&self, scenario: &Scenario, now: f64) -> Vec<f64> {
        scenario
            .models
            .iter()
            .map(|m| m.traffic.shape.max_rate(now, now + self.period_seconds))
            .collect()
    }
}

impl Policy for Oracle {
    fn name(&self) -> String {
        "oracle".into()
    }

    fn period_seconds(&self) -> f64 {
        self.period_seconds
    }

    fn instant_startup(&self) -> bool {
        true
    }

    fn initial(&mut self, scenario: &Scenario) -> Result<Desired, BenchError> {
        plan_replicas(scenario, &self.rates(scenario, 0.0), PlanOptions::default())
    }

    fn decide(&mut self, view: &View<'_>) -> Result<Desired, BenchError> {
        plan_replicas(
            view.scenario,
            &self.rates(view.scenario, view.now),
            PlanOptions::default(),
        )
    }
}
