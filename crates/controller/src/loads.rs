//! Where the control loop gets each model's offered load.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use wvo_api::ModelLoad;

/// A model as the load sources know it: (namespace, served model id).
pub type ModelKey = (String, String);

/// Loads per model: known, or unknown with the reason.
pub type Loads = BTreeMap<ModelKey, Result<ModelLoad, String>>;

/// A boxed future, so sources can be used as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Something that reports the offered load of models.
pub trait LoadSource: Send + Sync {
    /// The load of each model in `models`; a model with no data maps to `Err(reason)`.
    fn loads<'a>(&'a self, models: &'a [ModelKey]) -> BoxFuture<'a, Loads>;
}

/// Loads set by hand (tests, the demo, the simulator): a shared map.
#[derive(Clone, Debug, Default)]
pub struct StaticLoads(Arc<RwLock<Loads>>);

impl StaticLoads {
    /// Sets the load of `model` in `namespace` (or why it is unknown).
    pub fn set(&self, namespace: &str, model: &str, load: Result<ModelLoad, String>) {
        if let Ok(mut map) = self.0.write() {
            map.insert((namespace.to_string(), model.to_string()), load);
        }
    }
}

impl LoadSource for StaticLoads {
    fn loads<'a>(&'a self, models: &'a [ModelKey]) -> BoxFuture<'a, Loads> {
        Box::pin(async move {
            let map = match self.0.read() {
                Ok(map) => map.clone(),
                Err(_) => Loads::new(),
            };
            models
                .iter()
                .map(|k| {
                    let load = map.get(k).cloned().unwrap_or_else(|| {
                        Err(format!("no observation of model {} in {}", k.1, k.0))
                    });
                    (k.clone(), load)
                })
                .collect()
        })
    }
}

/// Loads from the collector (Prometheus or direct scrapes).
#[derive(Clone, Debug)]
pub struct CollectorLoads {
    config: wvo_collector::ObserveConfig,
}

impl CollectorLoads {
    /// A source that runs one collection with `config` per cycle.
    pub fn new(config: wvo_collector::ObserveConfig) -> Self {
        Self { config }
    }
}

/// Maps one collection onto the requested models: a model is known when its arrival rate
/// is; token means are passed on when known.
pub fn loads_from_observations(obs: &wvo_collector::Observations, models: &[ModelKey]) -> Loads {
    models
        .iter()
        .map(|(ns, model)| {
            let found = obs
                .models
                .iter()
                .find(|m| &m.model == model && (m.namespace == *ns || m.namespace.is_empty()));
            let load = match found {
                None => Err(match obs.errors.first() {
                    Some(e) => format!("model {model} not observed: {e}"),
                    None => format!("model {model} not observed in {}", obs.source),
                }),
                Some(m) => match m.figures.arrival_rate_rps.value() {
                    Some(rate) => Ok(ModelLoad {
                        arrival_rate: rate,
                        avg_input_tokens: m.figures.avg_input_tokens.value(),
                        avg_output_tokens: m.figures.avg_output_tokens.value(),
                    }),
                    None => Err(m
                        .figures
                        .arrival_rate_rps
                        .reason()
                        .unwrap_or("arrival rate unknown")
                        .to_string()),
                },
            };
            ((ns.clone(), model.clone()), load)
        })
        .collect()
}

impl LoadSource for CollectorLoads {
    fn loads<'a>(&'a self, models: &'a [ModelKey]) -> BoxFuture<'a, Loads> {
        Box::pin(async move {
            match wvo_collector::observe(&self.config).await {
                Ok(obs) => loads_from_observations(&obs, models),
                Err(e) => models
                    .iter()
                    .map(|k| (k.clone(), Err(format!("collector: {e}"))))
                    .collect(),
            }
        })
    }
}
