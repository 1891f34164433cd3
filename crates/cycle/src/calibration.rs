//! Online calibration of each variant's profile from what the collector observes (pure: no
//! I/O, no clock; ages are inputs).
//!
//! ```text
//! VariantEvidence (per cycle, per variant)          Calibrator (per VA variant)
//!   running / ready replicas, mean ITL      ─► decode sample  ─┐
//!   mean TTFT with an empty queue, prompt   ─► prefill sample ─┤► wvo_perf CalibratedProfile
//!   age of the youngest ready replica       ─► warm-up gate   ─┘        │
//!                                                                        ├─ profile_in_use(): a half
//!   VA status `profiles[].calibration` ◄─ persist ── restore ──┘           (decode / prefill) replaces
//!                                                                        │  the prior once its
//!                                                                        │  confidence >= 0.5
//!                                                                        └─ status(): numbers,
//!                                                                           confidence, contradiction
//! ```
//!
//! The collector reports windowed means per variant, not per-step figures, so the samples are
//! approximations, both on the safe side: the mean ITL includes prefill stalls of the batch
//! (a slightly higher `alpha`/`beta`), and a prefill sample is taken only while no request
//! waits, where TTFT is prefill time plus at most one decode step (a slightly higher
//! `gamma`). See docs/profiles.md.

use std::collections::{BTreeMap, BTreeSet};
use wvo_api::crd::{ProfileConfidence, ProfileNumbers, VariantProfileStatus};
use wvo_api::{Profile, Slo};
use wvo_perf::calibrate::{
    check_contradiction, DecodeSample, PrefillSample, ProfileBounds, SampleOutcome,
};
use wvo_perf::{CalibratedProfile, CalibrationConfig, TokenMix};

/// A variant as calibration knows it: (namespace, VA name, variant name).
pub type VariantKey = (String, String, String);

/// What was observed of one variant over the collector's window.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct VariantEvidence {
    /// Ready replicas (from the Kubernetes API), replicas.
    pub ready_replicas: u32,
    /// Age of the youngest ready replica, s (None: unknown, treated as warm-up).
    pub youngest_ready_age_s: Option<f64>,
    /// Requests running, summed over the variant's replicas, requests.
    pub running: Option<f64>,
    /// Requests waiting, summed over the variant's replicas, requests.
    pub waiting: Option<f64>,
    /// Mean inter-token latency over the window, ms.
    pub itl_mean_ms: Option<f64>,
    /// Mean time to first token over the window, ms.
    pub ttft_mean_ms: Option<f64>,
    /// Mean prompt tokens per request over the window, tokens.
    pub avg_input_tokens: Option<f64>,
}

/// Tuning of the controller's use of calibration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CalibrationSettings {
    /// The fits' own tuning (forgetting, warm-up, outliers).
    pub fit: CalibrationConfig,
    /// A calibrated half (decode or prefill) replaces the prior at this confidence, 0..1.
    pub use_at_confidence: f64,
    /// A profile is contradicted when calibrated capacity is below `1 - this` of the
    /// prior's (0.3: below 70%).
    pub contradiction_tolerance: f64,
    /// Persist the calibration to the VA status after this many new accepted samples.
    pub persist_every_samples: u64,
}

impl Default for CalibrationSettings {
    fn default() -> Self {
        Self {
            fit: CalibrationConfig::default(),
            use_at_confidence: 0.5,
            contradiction_tolerance: 0.3,
            persist_every_samples: 20,
        }
    }
}

/// What one cycle's evidence did to a variant's fits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// Outcome of the decode sample (None: no usable decode figures this cycle).
    pub decode: Option<SampleOutcome>,
    /// Outcome of the prefill sample (None: no usable prefill figures, e.g. a queue).
    pub prefill: Option<SampleOutcome>,
}

#[derive(Clone, Debug)]
struct Entry {
    source: String,
    fit: CalibratedProfile,
    rejected: u64,
    persisted_samples: u64,
}

impl Entry {
    fn samples(&self) -> u64 {
        self.fit.decode.accepted + self.fit.prefill.accepted
    }
}

/// Calibration state of every tracked variant.
#[derive(Clone, Debug, Default)]
pub struct Calibrator {
    settings: CalibrationSettings,
    entries: BTreeMap<VariantKey, Entry>,
}

fn outcome_rejected(o: Option<SampleOutcome>) -> u64 {
    u64::from(matches!(
        o,
        Some(SampleOutcome::WarmUp | SampleOutcome::Outlier | SampleOutcome::Invalid)
    ))
}

impl Calibrator {
    /// A calibrator with these settings.
    pub fn new(settings: CalibrationSettings) -> Self {
        Self {
            settings,
            entries: BTreeMap::new(),
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> &CalibrationSettings {
        &self.settings
    }

    /// Starts tracking `key` with `prior` (from `source`: `inline` or `catalog`), or keeps
    /// tracking it. `saved` is the `calibration` field of the VA status: it is restored when
    /// its prior equals `prior` (a restart or a new leader continues); a changed prior (the
    /// spec's profile changed) starts over. A tracked variant whose prior changed starts over
    /// too.
    pub fn track(&mut self, key: &VariantKey, prior: Profile, source: &str, saved: Option<&str>) {
        if let Some(e) = self.entries.get(&key.clone()) {
            if e.fit.prior == prior {
                return;
            }
        }
        let restored = saved
            .and_then(|s| serde_json::from_str::<CalibratedProfile>(s).ok())
            .filter(|c| c.prior == prior);
        let fit = restored.unwrap_or_else(|| {
            CalibratedProfile::new(prior, ProfileBounds::around(&prior), &self.settings.fit)
        });
        let samples = fit.decode.accepted + fit.prefill.accepted;
        self.entries.insert(
            key.clone(),
            Entry {
                source: source.to_string(),
                fit,
                rejected: 0,
                persisted_samples: samples,
            },
        );
    }

    /// Forgets variants not in `live` (VAs deleted or variants removed).
    pub fn retain(&mut self, live: &BTreeSet<VariantKey>) {
        self.entries.retain(|k, _| live.contains(k));
    }

    /// Feeds one cycle's evidence of a tracked variant (untracked: ignored).
    pub fn observe(&mut self, key: &VariantKey, ev: &VariantEvidence) -> Observed {
        let Some(entry) = self.entries.get_mut(key) else {
            return Observed::default();
        };
        let cfg = self.settings.fit;
        // Unknown age: as young as can be, so the sample counts as warm-up.
        let age = ev.youngest_ready_age_s.unwrap_or(0.0);
        let ready = f64::from(ev.ready_replicas);
        let decode = match (ev.running, ev.itl_mean_ms) {
            (Some(running), Some(itl)) if ev.ready_replicas > 0 && running > 0.0 => {
                Some(entry.fit.observe_decode(
                    &DecodeSample {
                        batch: running / ready,
                        itl_ms: itl,
                        replica_age_s: age,
                    },
                    &cfg,
                ))
            }
            _ => None,
        };
        let prefill = match (ev.waiting, ev.ttft_mean_ms, ev.avg_input_tokens) {
            (Some(waiting), Some(ttft), Some(tokens))
                if ev.ready_replicas > 0 && waiting < 0.5 && tokens > 0.0 =>
            {
                Some(entry.fit.observe_prefill(
                    &PrefillSample {
                        batch_tokens: tokens,
                        prefill_ms: ttft,
                        replica_age_s: age,
                    },
                    &cfg,
                ))
            }
            _ => None,
        };
        entry.rejected += outcome_rejected(decode) + outcome_rejected(prefill);
        Observed { decode, prefill }
    }

    /// The profile to plan with: each half (decode `alpha, beta`; prefill `gamma, delta`)
    /// is the calibrated one once its confidence reaches `use_at_confidence`, else the
    /// prior's. None when `key` is not tracked.
    pub fn profile_in_use(&self, key: &VariantKey) -> Option<Profile> {
        let e = self.entries.get(key)?;
        let c = e.fit.confidence();
        let calibrated = e.fit.profile();
        let prior = e.fit.prior;
        let at = self.settings.use_at_confidence;
        let (alpha, beta) = if c.decode >= at {
            (calibrated.alpha, calibrated.beta)
        } else {
            (prior.alpha, prior.beta)
        };
        let (gamma, delta) = if c.prefill >= at {
            (calibrated.gamma, calibrated.delta)
        } else {
            (prior.gamma, prior.delta)
        };
        Some(Profile {
            alpha,
            beta,
            gamma,
            delta,
            max_batch_size: prior.max_batch_size,
        })
    }

    /// The status entry of `key` (`name` is the variant name), with a contradiction when the
    /// calibrated capacity at `slo` for `mix` is far below the prior's. `calibration` is
    /// filled when `persist` (see [`Calibrator::should_persist`]).
    pub fn status(
        &self,
        key: &VariantKey,
        slo: Option<&Slo>,
        mix: &TokenMix,
        persist: bool,
    ) -> Option<VariantProfileStatus> {
        let e = self.entries.get(key)?;
        let c = e.fit.confidence();
        let contradiction = slo.and_then(|slo| {
            check_contradiction(
                &e.fit,
                slo,
                mix,
                self.settings.contradiction_tolerance,
                self.settings.use_at_confidence,
            )
            .ok()
            .flatten()
            .map(|c| c.message)
        });
        Some(VariantProfileStatus {
            name: key.2.clone(),
            source: e.source.clone(),
            in_use: self.profile_in_use(key).map(ProfileNumbers::from)?,
            prior: ProfileNumbers::from(e.fit.prior),
            confidence: ProfileConfidence {
                decode: round3(c.decode),
                prefill: round3(c.prefill),
                overall: round3(c.overall),
            },
            samples: e.samples(),
            rejected_samples: e.rejected,
            contradiction,
            calibration: if persist {
                serde_json::to_string(&e.fit).ok()
            } else {
                None
            },
        })
    }

    /// True when `key` learned enough since it was last persisted to be worth a status
    /// write (`persist_every_samples` new accepted samples).
    pub fn should_persist(&self, key: &VariantKey) -> bool {
        self.entries.get(key).is_some_and(|e| {
            e.samples() >= e.persisted_samples + self.settings.persist_every_samples.max(1)
        })
    }

    /// Records that `key`'s calibration was written to the status.
    pub fn mark_persisted(&mut self, key: &VariantKey) {
        if let Some(e) = self.entries.get_mut(key) {
            e.persisted_samples = e.samples();
        }
    }

    /// The calibrated profile of `key` (for tests and the status API).
    pub fn calibrated(&self, key: &VariantKey) -> Option<&CalibratedProfile> {
        self.entries.get(key).map(|e| &e.fit)
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> VariantKey {
        ("ns".into(), "va".into(), "h100".into())
    }

    fn prior() -> Profile {
        Profile {
            alpha: 8.0,
            beta: 0.1,
            gamma: 20.0,
            delta: 0.02,
            max_batch_size: 64,
        }
    }

    fn mix0() -> TokenMix {
        TokenMix {
            avg_input_tokens: 500.0,
            avg_output_tokens: 200.0,
        }
    }

    fn evidence(running: f64, itl: f64, age: f64) -> VariantEvidence {
        VariantEvidence {
            ready_replicas: 2,
            youngest_ready_age_s: Some(age),
            running: Some(running),
            waiting: Some(0.0),
            itl_mean_ms: Some(itl),
            ttft_mean_ms: Some(20.0 + 0.02 * 500.0),
            avg_input_tokens: Some(500.0),
        }
    }

    #[test]
    fn warm_up_samples_are_ignored_and_counted() {
        let mut c = Calibrator::default();
        c.track(&key(), prior(), "catalog", None);
        let o = c.observe(&key(), &evidence(20.0, 9.0, 10.0));
        assert_eq!(o.decode, Some(SampleOutcome::WarmUp));
        assert_eq!(o.prefill, Some(SampleOutcome::WarmUp));
        let s = c.status(&key(), None, &mix0(), false).expect("tracked");
        assert_eq!((s.samples, s.rejected_samples), (0, 2));
        // Unknown age is warm-up too.
        let mut ev = evidence(20.0, 9.0, 0.0);
        ev.youngest_ready_age_s = None;
        assert_eq!(c.observe(&key(), &ev).decode, Some(SampleOutcome::WarmUp));
    }

    #[test]
    fn no_prefill_sample_while_requests_wait() {
        let mut c = Calibrator::default();
        c.track(&key(), prior(), "inline", None);
        let mut ev = evidence(20.0, 9.0, 600.0);
        ev.waiting = Some(3.0);
        let o = c.observe(&key(), &ev);
        assert_eq!(o.decode, Some(SampleOutcome::Accepted));
        assert_eq!(o.prefill, None);
    }

    #[test]
    fn learns_a_slower_server_and_flags_the_contradiction() {
        // The real server decodes 3x slower than the prior says.
        let truth = |n: f64| 24.0 + 0.3 * n;
        let mut c = Calibrator::default();
        c.track(&key(), prior(), "catalog", None);
        for i in 0..200 {
            let per_replica = 4.0 + f64::from(i % 50);
            let ev = evidence(per_replica * 2.0, truth(per_replica), 600.0);
            c.observe(&key(), &ev);
        }
        let used = c.profile_in_use(&key()).expect("tracked");
        assert!((used.alpha - 24.0).abs() / 24.0 < 0.05, "{used:?}");
        assert!((used.beta - 0.3).abs() / 0.3 < 0.05, "{used:?}");
        let slo = Slo {
            ttft_ms: 1000.0,
            itl_ms: 40.0,
            percentile: None,
        };
        let mix = TokenMix {
            avg_input_tokens: 500.0,
            avg_output_tokens: 200.0,
        };
        let s = c.status(&key(), Some(&slo), &mix, true).expect("tracked");
        let why = s.contradiction.expect("contradicted");
        assert!(why.contains("of the estimated"), "{why}");
        assert!(s.confidence.decode >= 0.5);
        assert!(s.calibration.is_some());
    }

    #[test]
    fn a_restart_continues_from_the_saved_state_but_a_changed_prior_starts_over() {
        let mut c = Calibrator::default();
        c.track(&key(), prior(), "inline", None);
        for i in 0..60 {
            let n = 2.0 + f64::from(i % 30);
            c.observe(&key(), &evidence(2.0 * n, 8.0 + 0.1 * n, 600.0));
        }
        assert!(c.should_persist(&key()));
        let saved = c
            .status(&key(), None, &mix0(), true)
            .and_then(|s| s.calibration)
            .expect("persisted");
        c.mark_persisted(&key());
        assert!(!c.should_persist(&key()));

        let mut fresh = Calibrator::default();
        fresh.track(&key(), prior(), "inline", Some(&saved));
        assert_eq!(fresh.calibrated(&key()), c.calibrated(&key()));

        let mut changed = prior();
        changed.alpha = 9.0;
        let mut other = Calibrator::default();
        other.track(&key(), changed, "inline", Some(&saved));
        let fit = other.calibrated(&key()).expect("tracked");
        assert_eq!(fit.decode.accepted, 0);
        // Garbage in the status is ignored, not fatal.
        let mut garbage = Calibrator::default();
        garbage.track(&key(), prior(), "inline", Some("{not json"));
        assert_eq!(
            garbage.calibrated(&key()).map(|f| f.decode.accepted),
            Some(0)
        );
    }

    #[test]
    fn untracked_and_retired_variants_are_ignored() {
        let mut c = Calibrator::default();
        assert_eq!(
            c.observe(&key(), &evidence(1.0, 1.0, 600.0)),
            Observed::default()
        );
        c.track(&key(), prior(), "inline", None);
        c.retain(&BTreeSet::new());
        assert!(c.profile_in_use(&key()).is_none());
    }
}
