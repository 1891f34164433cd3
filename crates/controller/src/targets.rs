//! Loads from direct scrapes of a changing set of model-server pods: a [`TargetProvider`]
//! says which pods to scrape at each cycle (e.g. the pods of the VAs' workloads, as they
//! come and go), and [`ScrapeTargetLoads`] keeps one scrape source across cycles so rates
//! are taken over the time between two cycles' scrapes.

use crate::loads::{loads_from_observations, BoxFuture, LoadSource, Loads, ModelKey};
use std::sync::{Arc, RwLock};
use wvo_collector::{CollectorError, ScrapeConfig, ScrapeSource, Target, Window};

/// Something that knows which model-server pods to scrape now.
pub trait TargetProvider: Send + Sync {
    /// The targets of this cycle (namespace, model, variant, pod, metrics URL).
    fn targets(&self) -> Vec<Target>;
}

/// A target list set by its owner (e.g. whoever watches the pods): a shared vector.
#[derive(Clone, Debug, Default)]
pub struct SharedTargets(Arc<RwLock<Vec<Target>>>);

impl SharedTargets {
    /// Replaces the list.
    pub fn set(&self, targets: Vec<Target>) {
        match self.0.write() {
            Ok(mut t) => *t = targets,
            Err(p) => *p.into_inner() = targets,
        }
    }
}

impl TargetProvider for SharedTargets {
    fn targets(&self) -> Vec<Target> {
        match self.0.read() {
            Ok(t) => t.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

/// Loads from scraping the provider's targets, one scrape per target per cycle (two, an
/// `interval` apart, the first time a pod is seen).
pub struct ScrapeTargetLoads {
    source: ScrapeSource,
    provider: Arc<dyn TargetProvider>,
}

impl std::fmt::Debug for ScrapeTargetLoads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScrapeTargetLoads").finish_non_exhaustive()
    }
}

impl ScrapeTargetLoads {
    /// A source scraping what `provider` lists, with `cfg`'s HTTP settings and first-scrape
    /// gap (`cfg.targets` is ignored), rates checked against `window`.
    pub fn new(
        cfg: ScrapeConfig,
        window: Window,
        provider: Arc<dyn TargetProvider>,
    ) -> Result<Self, CollectorError> {
        Ok(Self {
            source: ScrapeSource::for_changing_targets(cfg, window)?,
            provider,
        })
    }
}

impl LoadSource for ScrapeTargetLoads {
    fn loads<'a>(&'a self, models: &'a [ModelKey]) -> BoxFuture<'a, Loads> {
        Box::pin(async move {
            let targets = self.provider.targets();
            if targets.is_empty() {
                return models
                    .iter()
                    .map(|k| {
                        let why =
                            format!("model {} in {}: no model-server pod to scrape", k.1, k.0);
                        (k.clone(), Err(why))
                    })
                    .collect();
            }
            let obs = self.source.collect_targets(&targets).await;
            loads_from_observations(&obs, models)
        })
    }
}
