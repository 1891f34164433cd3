//! A VA's status as a function of the previous one and what a cycle computed: the
//! controller patches the result (server-side apply) only when [`va_status`] says something
//! changed.
//!
//! ```text
//!  previous status ─┐
//!  Fresh (decision, profiles, start-up, history) ─┼─► va_status ─► Some(new status) | None (unchanged)
//!  conditions, decisions made, generation, now ───┘
//! ```
//!
//! Pure: `now` is an input (RFC 3339).

use crate::calibration::{Calibrator, VariantKey};
use crate::conditions::Condition;
use crate::cycle::ModelDecision;
use crate::DEFAULT_TOKENS;
use kube_core::ResourceExt;
use wvo_api::crd::{
    clip_chars, Decision, DemandHistoryStatus, VariantAutoscaling, VariantAutoscalingStatus,
    VariantProfileStatus, MAX_CONDITION_MESSAGE_LENGTH, MAX_DECISION_REASON_LENGTH,
    MAX_STATUS_COUNT, MAX_STATUS_NOTE_LENGTH,
};
use wvo_api::ModelSpec;
use wvo_perf::TokenMix;

/// Decisions kept in a VA's status (`status.decisions`), the newest last (the CRD's
/// `maxItems`).
pub const STATUS_DECISIONS: usize = wvo_api::crd::MAX_STATUS_DECISIONS as usize;

/// What one cycle computed for a planned VA's status.
#[derive(Clone, Debug)]
pub struct Fresh<'d> {
    /// The cycle's decision for the model.
    pub decision: &'d ModelDecision,
    /// `status.profiles` ([`profile_statuses`]).
    pub profiles: Vec<VariantProfileStatus>,
    /// Learned start-up per variant (VA order), s.
    pub learned_startup: Vec<Option<f64>>,
    /// The start-up the demand estimate used, s (None without demand estimation).
    pub startup_seconds: Option<f64>,
    /// The rate history to write, when due (None keeps the one in the status).
    pub history: Option<DemandHistoryStatus>,
}

/// The status to write, or None when it equals `previous` (nothing to patch).
///
/// Conditions in `conditions` replace those of the same type; one whose type and status are
/// unchanged keeps its `lastTransitionTime`, a new or changed one gets `now` (RFC 3339).
/// Conditions this cycle did not compute keep their last value. `fresh` (None for a VA that
/// was not planned) replaces the figures; `changes` are appended to `decisions` (at most
/// [`STATUS_DECISIONS`] kept) and the last becomes `lastDecision`. `generation` is the VA's
/// `metadata.generation`, written as `observedGeneration`. Strings longer than the CRD's
/// `maxLength` (condition messages, decision reasons, notes) are cut and counts above its
/// `maximum` are capped, so the apiserver never refuses the status.
pub fn va_status(
    previous: &VariantAutoscalingStatus,
    fresh: Option<&Fresh<'_>>,
    conditions: &[Condition],
    changes: &[Decision],
    generation: Option<i64>,
    now: &str,
) -> Option<VariantAutoscalingStatus> {
    let mut merged: Vec<wvo_api::crd::Condition> = Vec::new();
    for c in conditions {
        let (type_, status) = (c.type_.as_str(), c.status_str());
        let last = previous
            .conditions
            .iter()
            .find(|p| p.type_ == type_ && p.status == status)
            .map(|p| p.last_transition_time.clone())
            .unwrap_or_else(|| now.to_string());
        merged.push(wvo_api::crd::Condition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason: c.reason.as_str().to_string(),
            message: clip_chars(&c.message, MAX_CONDITION_MESSAGE_LENGTH),
            last_transition_time: last,
            observed_generation: generation,
        });
    }
    // Conditions this cycle did not compute keep their last value.
    for p in &previous.conditions {
        if !merged.iter().any(|c| c.type_ == p.type_) {
            merged.push(p.clone());
        }
    }
    let mut status = VariantAutoscalingStatus {
        observed_generation: generation,
        conditions: merged,
        ..previous.clone()
    };
    if let Some(Fresh {
        decision: d,
        profiles,
        learned_startup,
        startup_seconds,
        history,
    }) = fresh
    {
        status.profiles.clone_from(profiles);
        for p in &mut status.profiles {
            if let Some(c) = &mut p.contradiction {
                *c = clip_chars(c, MAX_STATUS_NOTE_LENGTH);
            }
        }
        status.startup_seconds = *startup_seconds;
        if let Some(demand) = &d.demand {
            status.forecast = Some(clip_chars(
                &demand.forecast.summary(),
                MAX_STATUS_NOTE_LENGTH,
            ));
        }
        if history.is_some() {
            status.demand_history.clone_from(history);
        }
        status.observed_load = Some(d.load_used);
        status.demand_rps = d.demand_rps;
        status.satisfaction = d.satisfaction;
        status.variants = d
            .variants
            .iter()
            .zip(learned_startup.iter().chain(std::iter::repeat(&None)))
            .map(|(v, learned)| v.to_status(*learned))
            .collect();
        let total = |count: fn(&crate::cycle::VariantDecision) -> u32| {
            let sum: u64 = d.variants.iter().map(|v| u64::from(count(v))).sum();
            u32::try_from(sum.min(u64::from(MAX_STATUS_COUNT))).unwrap_or(MAX_STATUS_COUNT)
        };
        status.current_replicas = total(|v| v.current);
        status.desired_replicas = total(|v| v.desired);
        status.cost_per_hour = d.variants.iter().map(|v| v.cost_per_hour).sum();
    }
    for c in changes {
        let c = Decision {
            time: c.time.clone(),
            reason: clip_chars(&c.reason, MAX_DECISION_REASON_LENGTH),
        };
        status.decisions.push(c.clone());
        status.last_decision = Some(c);
    }
    let excess = status.decisions.len().saturating_sub(STATUS_DECISIONS);
    status.decisions.drain(..excess);
    (status != *previous).then_some(status)
}

/// The `status.profiles` entries of a VA, and the variants whose calibration state they
/// carry anew (to mark persisted once the status is written). An entry is refreshed when its
/// calibration learned `persist_every_samples` more samples, or the status has none yet;
/// otherwise the previous entry stays when its contradiction and prior are unchanged (the
/// previous calibration state is kept in a refreshed one), so status is not rewritten every
/// cycle.
pub fn profile_statuses(
    calibrator: &Calibrator,
    va: &VariantAutoscaling,
    spec: &ModelSpec,
    decision: &ModelDecision,
) -> (Vec<VariantProfileStatus>, Vec<VariantKey>) {
    let ns = va.namespace().unwrap_or_default();
    let name = va.name_any();
    let previous = va
        .status
        .as_ref()
        .map(|s| s.profiles.as_slice())
        .unwrap_or(&[]);
    let mix = TokenMix {
        avg_input_tokens: decision
            .load_used
            .avg_input_tokens
            .unwrap_or(DEFAULT_TOKENS.0),
        avg_output_tokens: decision
            .load_used
            .avg_output_tokens
            .unwrap_or(DEFAULT_TOKENS.1)
            .max(1.0),
    };
    let mut out = Vec::new();
    let mut persisted = Vec::new();
    for v in &va.spec.variants {
        let key = (ns.clone(), name.clone(), v.name.clone());
        let prev = previous.iter().find(|p| p.name == v.name);
        let persist =
            calibrator.should_persist(&key) || prev.is_none_or(|p| p.calibration.is_none());
        let Some(mut entry) = calibrator.status(&key, spec.slo.as_ref(), &mix, persist) else {
            continue;
        };
        if persist {
            persisted.push(key);
        } else if let Some(p) = prev {
            if p.contradiction.is_some() == entry.contradiction.is_some() && p.prior == entry.prior
            {
                entry = p.clone();
            } else {
                entry.calibration.clone_from(&p.calibration);
            }
        }
        out.push(entry);
    }
    (out, persisted)
}
