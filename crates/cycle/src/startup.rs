//! Start-up of a new replica, learned per variant from its pods' ready times (pure: no I/O,
//! no clock).
//!
//! ```text
//!  each cycle, per variant: pods that are Ready, never restarted
//!      └─► sample = Ready condition's lastTransitionTime - creationTimestamp, s
//!          (once per pod name; the newest STARTUP_SAMPLES pods by ready time are kept)
//!      ▼
//!  estimate = 95th percentile (nearest rank) of the kept samples
//!  model start-up = spec.startupSeconds, else the slowest variant's estimate, else None
//! ```
//!
//! The 95th percentile of the last 20 pods: one slow outlier in 20 (an image pull on a cold
//! node) does not set the horizon for every later decision, two do; with fewer than 20
//! samples it is the slowest one seen (a start-up planned too short costs SLO misses, one
//! too long only an earlier scale-up). A plan may put new replicas on any variant of the model, so
//! the model plans with the slowest variant's start-up.

use crate::stabilizer::VariantKey;
use std::collections::{BTreeMap, BTreeSet};

/// Samples kept per variant (the newest pods by ready time).
pub const STARTUP_SAMPLES: usize = 20;
/// Percentile of the kept samples used as the estimate, percent.
pub const STARTUP_PERCENTILE: f64 = 95.0;
/// Samples above this are ignored, s (one hour): no model server takes that long to load;
/// such a Ready time is a readiness flap long after the start (a probe failing under load),
/// not a start-up. A flap within the hour is not told apart (set `spec.startupSeconds`).
pub const MAX_STARTUP_SAMPLE_SECONDS: f64 = 3_600.0;

/// One pod of a variant that is Ready, as read from the cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct PodReady {
    /// Pod name (a pod is counted once).
    pub pod: String,
    /// Its `metadata.creationTimestamp`, UNIX seconds.
    pub created_seconds: f64,
    /// Its Ready=True condition's `lastTransitionTime`, UNIX seconds.
    pub ready_seconds: f64,
}

/// One kept sample.
#[derive(Clone, Debug, PartialEq)]
struct Sample {
    pod: String,
    ready_seconds: f64,
    startup_seconds: f64,
}

/// Learned start-up per variant.
#[derive(Clone, Debug, Default)]
pub struct StartupLearner {
    samples: BTreeMap<VariantKey, Vec<Sample>>,
}

impl StartupLearner {
    /// A learner with no samples.
    pub fn new() -> Self {
        Self::default()
    }

    /// Folds the Ready pods of variant `key` in: each pod not counted yet whose start-up
    /// (ready minus created) is finite and in `0..=MAX_STARTUP_SAMPLE_SECONDS` adds one
    /// sample; the newest [`STARTUP_SAMPLES`] by ready time are kept.
    pub fn observe(&mut self, key: &VariantKey, pods: &[PodReady]) {
        let kept = self.samples.entry(key.clone()).or_default();
        for p in pods {
            let startup = p.ready_seconds - p.created_seconds;
            if !(startup.is_finite() && (0.0..=MAX_STARTUP_SAMPLE_SECONDS).contains(&startup)) {
                continue;
            }
            if kept.iter().any(|s| s.pod == p.pod) {
                continue;
            }
            kept.push(Sample {
                pod: p.pod.clone(),
                ready_seconds: p.ready_seconds,
                startup_seconds: startup,
            });
        }
        // Newest first by ready time (ties: name), then keep the newest.
        kept.sort_by(|a, b| {
            b.ready_seconds
                .total_cmp(&a.ready_seconds)
                .then_with(|| a.pod.cmp(&b.pod))
        });
        kept.truncate(STARTUP_SAMPLES);
    }

    /// The learned start-up of variant `key`, s: the [`STARTUP_PERCENTILE`]th percentile
    /// (nearest rank) of its kept samples; None without samples.
    pub fn estimate(&self, key: &VariantKey) -> Option<f64> {
        let kept = self.samples.get(key).filter(|k| !k.is_empty())?;
        let mut v: Vec<f64> = kept.iter().map(|s| s.startup_seconds).collect();
        v.sort_by(f64::total_cmp);
        let rank = (STARTUP_PERCENTILE / 100.0 * v.len() as f64).ceil() as usize;
        v.get(rank.clamp(1, v.len()) - 1).copied()
    }

    /// Samples kept for variant `key`.
    pub fn samples(&self, key: &VariantKey) -> usize {
        self.samples.get(key).map_or(0, Vec::len)
    }

    /// Forgets variants not in `keep`.
    pub fn retain(&mut self, keep: &BTreeSet<VariantKey>) {
        self.samples.retain(|k, _| keep.contains(k));
    }
}

/// The start-up a model plans with, s: the VA's `spec.startupSeconds` when set, else the
/// slowest learned start-up among its variants that have one, else None (the default).
pub fn model_startup_seconds(
    configured: Option<f64>,
    learned: impl IntoIterator<Item = Option<f64>>,
) -> Option<f64> {
    configured
        .filter(|s| s.is_finite() && *s >= 0.0)
        .or_else(|| learned.into_iter().flatten().reduce(f64::max))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(v: &str) -> VariantKey {
        ("llm".into(), "llama".into(), v.into())
    }

    fn pod(name: &str, created: f64, ready: f64) -> PodReady {
        PodReady {
            pod: name.into(),
            created_seconds: created,
            ready_seconds: ready,
        }
    }

    #[test]
    fn a_pod_is_counted_once_however_often_it_is_seen() {
        let mut l = StartupLearner::new();
        let k = key("h100");
        assert_eq!(l.estimate(&k), None);
        for _ in 0..5 {
            l.observe(&k, &[pod("a", 1000.0, 1090.0)]);
        }
        assert_eq!(l.samples(&k), 1);
        assert_eq!(l.estimate(&k), Some(90.0));
    }

    #[test]
    fn few_samples_give_the_slowest_and_one_outlier_in_twenty_is_ignored() {
        let mut l = StartupLearner::new();
        let k = key("h100");
        l.observe(
            &k,
            &[
                pod("a", 0.0, 60.0),
                pod("b", 0.0, 200.0),
                pod("c", 0.0, 80.0),
            ],
        );
        assert_eq!(l.estimate(&k), Some(200.0));
        // 19 pods at 60..=78 s and one at 900 s: the 95th percentile is the 19th.
        let mut l = StartupLearner::new();
        let mut pods: Vec<PodReady> = (0..19)
            .map(|i| pod(&format!("p{i}"), 0.0, 60.0 + f64::from(i)))
            .collect();
        pods.push(pod("slow", 0.0, 900.0));
        l.observe(&k, &pods);
        assert_eq!(l.estimate(&k), Some(78.0));
        // A second slow pod among the newest twenty sets it.
        l.observe(&k, &[pod("slow2", 1000.0, 1800.0)]);
        assert_eq!(l.samples(&k), STARTUP_SAMPLES);
        assert_eq!(l.estimate(&k), Some(800.0));
    }

    #[test]
    fn the_newest_pods_by_ready_time_are_kept() {
        let mut l = StartupLearner::new();
        let k = key("l40s");
        // Twenty old fast pods, then twenty new slow ones: only the new ones count.
        let old: Vec<PodReady> = (0..20)
            .map(|i| pod(&format!("old{i}"), 0.0, 30.0))
            .collect();
        l.observe(&k, &old);
        assert_eq!(l.estimate(&k), Some(30.0));
        let new: Vec<PodReady> = (0..20)
            .map(|i| pod(&format!("new{i}"), 5000.0, 5300.0))
            .collect();
        l.observe(&k, &new);
        assert_eq!(l.estimate(&k), Some(300.0));
        // An old pod offered again (it fell out of the kept samples) changes nothing.
        l.observe(&k, &[pod("old0", 0.0, 30.0)]);
        assert_eq!(l.estimate(&k), Some(300.0));
        assert_eq!(l.samples(&k), STARTUP_SAMPLES);
    }

    #[test]
    fn implausible_samples_are_ignored() {
        let mut l = StartupLearner::new();
        let k = key("h100");
        l.observe(
            &k,
            &[
                pod("clock-skew", 100.0, 50.0),
                pod("nan", f64::NAN, 50.0),
                pod("not-ready-for-hours", 0.0, 3.0 * 3_600.0),
            ],
        );
        assert_eq!(l.estimate(&k), None);
        assert_eq!(l.samples(&k), 0);
    }

    #[test]
    fn variants_are_learned_apart_and_forgotten_when_gone() {
        let mut l = StartupLearner::new();
        l.observe(&key("h100"), &[pod("a", 0.0, 60.0)]);
        l.observe(&key("l40s"), &[pod("b", 0.0, 240.0)]);
        assert_eq!(l.estimate(&key("h100")), Some(60.0));
        assert_eq!(l.estimate(&key("l40s")), Some(240.0));
        l.retain(&[key("h100")].into_iter().collect());
        assert_eq!(l.estimate(&key("l40s")), None);
        assert_eq!(l.estimate(&key("h100")), Some(60.0));
    }

    #[test]
    fn the_va_setting_wins_else_the_slowest_learned_variant_else_the_default() {
        assert_eq!(
            model_startup_seconds(Some(30.0), [Some(60.0), Some(240.0)]),
            Some(30.0)
        );
        assert_eq!(
            model_startup_seconds(None, [Some(60.0), None, Some(240.0)]),
            Some(240.0)
        );
        assert_eq!(model_startup_seconds(None, [None, None]), None);
        assert_eq!(
            model_startup_seconds(Some(f64::NAN), [Some(60.0)]),
            Some(60.0)
        );
    }
}
