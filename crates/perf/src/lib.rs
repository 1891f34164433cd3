//! Performance model of one LLM serving replica (pure: no I/O, no clock).
//!
//! STUB: the queueing model is being written; this placeholder only fixes the interface.

use wvo_api::{Profile, Slo};

/// Token mix of the offered requests.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TokenMix {
    /// Mean prompt tokens per request.
    pub avg_input_tokens: f64,
    /// Mean generated tokens per request (>= 1).
    pub avg_output_tokens: f64,
}

/// What bounds a replica's capacity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapacityLimit {
    /// The TTFT target is reached first.
    Ttft,
    /// The ITL target is reached first.
    Itl,
    /// The replica's saturation throughput is reached before either target.
    Throughput,
    /// The SLO cannot be met even at vanishing load.
    SloUnreachable,
}

/// Capacity of one replica at an SLO.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CapacityEstimate {
    /// Highest sustainable arrival rate meeting the SLO, req/s (0 when unreachable).
    pub rps: f64,
    /// Predicted mean TTFT at that rate, ms.
    pub ttft_ms: f64,
    /// Predicted mean ITL at that rate, ms.
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

/// Capacity of one replica with `profile` serving `mix` under `slo` (STUB).
pub fn replica_capacity(
    profile: &Profile,
    slo: &Slo,
    mix: &TokenMix,
) -> Result<CapacityEstimate, PerfError> {
    // Placeholder: decode-bound batch at the ITL target, Little's law.
    let n = ((slo.itl_ms - profile.alpha) / profile.beta.max(1e-9))
        .clamp(0.0, f64::from(profile.max_batch_size));
    if n < 1.0 {
        return Ok(CapacityEstimate {
            rps: 0.0,
            ttft_ms: f64::INFINITY,
            itl_ms: f64::INFINITY,
            limit: CapacityLimit::SloUnreachable,
        });
    }
    let itl = profile.alpha + profile.beta * n;
    let service_ms =
        profile.gamma + profile.delta * mix.avg_input_tokens + mix.avg_output_tokens * itl;
    Ok(CapacityEstimate {
        rps: n / service_ms * 1000.0,
        ttft_ms: profile.gamma,
        itl_ms: itl,
        limit: CapacityLimit::Itl,
    })
}
