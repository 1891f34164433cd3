//! Loads from direct scrapes of a changing set of model-server pods: a [`TargetProvider`]
//! says which pods to scrape at each cycle (e.g. the pods of the VAs' workloads, as they
//! come and go), and [`ScrapeTargetLoads`] keeps one scrape source across cycles so rates
//! are taken over the time between two cycles' scrapes.

use crate::loads::{
    loads_from_observations, variants_from_observations, BoxFuture, LoadSource, Loads, ModelKey,
    Observed, VariantPod,
};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
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
    rate_window: Duration,
    history: Mutex<History>,
}

/// Past collections: when each was made, and each model's arrival rate then (req/s).
type History = VecDeque<(Instant, BTreeMap<ModelKey, f64>)>;

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
            rate_window: Duration::ZERO,
            history: Mutex::new(VecDeque::new()),
        })
    }

    /// Reports each model's arrival rate over at least `window` of past collections (the
    /// time-weighted mean of the per-collection rates, i.e. completions over the whole
    /// span) instead of over the last gap only: fewer noisy swings when cycles are short.
    /// A model unknown now stays unknown. Default: zero (the last gap only).
    pub fn with_rate_window(mut self, window: Duration) -> Self {
        self.rate_window = window;
        self
    }

    fn smooth(&self, loads: &mut Loads) {
        if self.rate_window.is_zero() {
            return;
        }
        let now = Instant::now();
        let current: BTreeMap<ModelKey, f64> = loads
            .iter()
            .filter_map(|(k, l)| l.as_ref().ok().map(|l| (k.clone(), l.arrival_rate)))
            .collect();
        let mut history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        history.push_back((now, current));
        // Keep the newest entries spanning the window, plus the one before (its time starts
        // the oldest gap).
        while history.len() > 2
            && history
                .get(1)
                .is_some_and(|(at, _)| now.duration_since(*at) >= self.rate_window)
        {
            history.pop_front();
        }
        let points: Vec<(f64, &BTreeMap<ModelKey, f64>)> = history
            .iter()
            .map(|(at, rates)| (now.duration_since(*at).as_secs_f64(), rates))
            .collect();
        for (key, load) in loads.iter_mut() {
            if let Ok(load) = load {
                if let Some(rate) = windowed_rate(&points, key) {
                    load.arrival_rate = rate;
                }
            }
        }
    }
}

/// Time-weighted mean rate of `key` over `points` (age in s, oldest first, rates per
/// model): each point's rate weighs the gap since the point before it; the oldest point only
/// marks the start. Points without the model are skipped. None with fewer than two points.
pub fn windowed_rate(points: &[(f64, &BTreeMap<ModelKey, f64>)], key: &ModelKey) -> Option<f64> {
    let mut weighted = 0.0;
    let mut span = 0.0;
    for pair in points.windows(2) {
        let gap = pair[0].0 - pair[1].0;
        if let Some(rate) = pair[1].1.get(key) {
            if gap > 0.0 && rate.is_finite() {
                weighted += rate * gap;
                span += gap;
            }
        }
    }
    (span > 0.0).then(|| weighted / span)
}

impl ScrapeTargetLoads {
    async fn collect(&self, models: &[ModelKey]) -> Observed {
        let targets = self.provider.targets();
        if targets.is_empty() {
            let loads = models
                .iter()
                .map(|k| {
                    let why = format!("model {} in {}: no model-server pod to scrape", k.1, k.0);
                    (k.clone(), Err(why))
                })
                .collect();
            return Observed {
                loads,
                ..Observed::default()
            };
        }
        let obs = self.source.collect_targets(&targets).await;
        let mut loads = loads_from_observations(&obs, models);
        self.smooth(&mut loads);
        Observed {
            loads,
            variants: variants_from_observations(&obs),
            signals: crate::loads::signals_from_observations(&obs),
        }
    }
}

impl LoadSource for ScrapeTargetLoads {
    fn loads<'a>(&'a self, models: &'a [ModelKey]) -> BoxFuture<'a, Loads> {
        Box::pin(async move { self.collect(models).await.loads })
    }

    /// The provider's targets name their variants, so per-variant figures are known; the
    /// `pods` argument is not needed.
    fn observe<'a>(
        &'a self,
        models: &'a [ModelKey],
        _pods: &'a [VariantPod],
    ) -> BoxFuture<'a, Observed> {
        Box::pin(self.collect(models))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ModelKey {
        ("ns".into(), "m".into())
    }

    #[test]
    fn the_windowed_rate_weighs_each_rate_by_its_gap() {
        let at = |r: f64| BTreeMap::from([(key(), r)]);
        let (a, b, c) = (at(100.0), at(2.0), at(8.0));
        // Gaps: 3 s at 2 req/s, then 1 s at 8 req/s; the first point only starts the span.
        let points = vec![(4.0, &a), (1.0, &b), (0.0, &c)];
        assert_eq!(
            windowed_rate(&points, &key()),
            Some((2.0 * 3.0 + 8.0) / 4.0)
        );
        assert_eq!(windowed_rate(&points[..1], &key()), None);
        let other: ModelKey = ("ns".into(), "x".into());
        assert_eq!(windowed_rate(&points, &other), None);
    }
}
