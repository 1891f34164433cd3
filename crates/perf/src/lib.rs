//! Performance model of one LLM serving replica (pure: no I/O, no async, no clock).
//!
//! ```text
//!  Profile (alpha, beta, gamma, delta, B) ─┐
//!  TokenMix (input, output tokens) ────────┼─► queueing::predict(rate)   ─► Prediction
//!  Slo (TTFT, ITL targets) ────────────────┘   replica_capacity(slo)     ─► CapacityEstimate
//!
//!  batching::Engine: the same replica as a deterministic continuous-batching engine on
//!  virtual time — ground truth for the model, and the core of the emulator and simulator.
//!  workload: seeded Poisson driver for the engine (validation, benchmarks).
//!
//!  catalog (models/*.yaml, embedded) ─► estimate(model, accelerator, tp, dtype) ─► Profile
//!  calibrate: (batch, ITL) and (prompt tokens, prefill time) samples ─► CalibratedProfile
//! ```
//!
//! Units: times in milliseconds, rates in requests per second, sizes in tokens.
//! See `docs/perf-model.md` for the equations and validation figures, `docs/profiles.md` for
//! the catalog, the estimator and calibration.

// Production code handles what it cannot rule out; `unwrap()` is for tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod batching;
pub mod calibrate;
pub mod catalog;
pub mod estimate;
pub mod memo;
pub mod queueing;
pub mod workload;

pub use calibrate::{CalibratedProfile, CalibrationConfig, Confidence, Contradiction};
pub use catalog::{Catalog, CatalogError};
pub use estimate::{estimate, estimate_by_name, Dtype, Estimate, EstimateOptions};
pub use memo::replica_capacity_memo;
pub use queueing::{
    miss_share, predict, replica_capacity, saturation_rps, Prediction, SATURATION_MARGIN,
};

use wvo_api::{Profile, Slo};

/// Token mix of the offered requests.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TokenMix {
    /// Mean prompt tokens per request, tokens (>= 0).
    pub avg_input_tokens: f64,
    /// Mean generated tokens per request, tokens (>= 1).
    pub avg_output_tokens: f64,
}

/// What bounds a replica's capacity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapacityLimit {
    /// The TTFT target is reached first.
    Ttft,
    /// The ITL target is reached first.
    Itl,
    /// The replica's saturation throughput (less the safety margin) is reached before either
    /// target.
    Throughput,
    /// The SLO cannot be met even at vanishing load.
    SloUnreachable,
}

/// Capacity of one replica at an SLO.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CapacityEstimate {
    /// Highest sustainable arrival rate meeting the SLO, req/s (0 when unreachable).
    pub rps: f64,
    /// Predicted mean TTFT at that rate, ms (the zero-load TTFT when unreachable).
    pub ttft_ms: f64,
    /// Predicted mean ITL at that rate, ms (the zero-load ITL when unreachable).
    pub itl_ms: f64,
    /// What bounds the capacity.
    pub limit: CapacityLimit,
}

/// Errors of the performance model.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum PerfError {
    /// An input number is not usable.
    #[error("{field}: {problem}")]
    BadInput {
        /// Which input.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
}

impl PerfError {
    pub(crate) fn bad(field: &'static str, problem: impl Into<String>) -> Self {
        PerfError::BadInput {
            field,
            problem: problem.into(),
        }
    }
}

fn at_least(field: &'static str, value: f64, min: f64, unit: &str) -> Result<(), PerfError> {
    if value.is_finite() && value >= min {
        Ok(())
    } else {
        Err(PerfError::bad(
            field,
            format!("must be finite and >= {min} {unit}, got {value}"),
        ))
    }
}

pub(crate) fn check_profile(p: &Profile) -> Result<(), PerfError> {
    if !(p.alpha.is_finite() && p.alpha > 0.0) {
        return Err(PerfError::bad(
            "profile.alpha",
            format!("must be finite and > 0 ms, got {}", p.alpha),
        ));
    }
    at_least("profile.beta", p.beta, 0.0, "ms")?;
    at_least("profile.gamma", p.gamma, 0.0, "ms")?;
    at_least("profile.delta", p.delta, 0.0, "ms")?;
    if p.max_batch_size == 0 {
        return Err(PerfError::bad("profile.maxBatchSize", "must be at least 1"));
    }
    Ok(())
}

pub(crate) fn check_mix(m: &TokenMix) -> Result<(), PerfError> {
    at_least("avgInputTokens", m.avg_input_tokens, 0.0, "tokens")?;
    at_least("avgOutputTokens", m.avg_output_tokens, 1.0, "tokens")
}

pub(crate) fn check_slo(s: &Slo) -> Result<(), PerfError> {
    if !(s.ttft_ms.is_finite() && s.ttft_ms > 0.0) {
        return Err(PerfError::bad(
            "slo.ttftMs",
            format!("must be finite and > 0 ms, got {}", s.ttft_ms),
        ));
    }
    if !(s.itl_ms.is_finite() && s.itl_ms > 0.0) {
        return Err(PerfError::bad(
            "slo.itlMs",
            format!("must be finite and > 0 ms, got {}", s.itl_ms),
        ));
    }
    Ok(())
}
