//! Online calibration of a profile from what the servers report (pure: ages and times are
//! inputs, there is no clock).
//!
//! ```text
//!  DecodeSample  (mean running batch n, decode ITL ms)   ─► RLS fit of  ITL = alpha + beta*n
//!  PrefillSample (prompt tokens in the step, prefill ms) ─► RLS fit of  T   = gamma + delta*x
//!        │ warm-up (replica younger than warmup_s): ignored
//!        │ outlier (residual beyond k sigma of the prediction): ignored
//!        ▼
//!  CalibratedProfile { decode, prefill: LineFit }  ── serde (camelCase) ─► VA status
//!        ├─ profile()     clamped to ProfileBounds (never outside physical bounds)
//!        ├─ confidence()  0..1 from the relative standard error of the predictions
//!        └─ check_contradiction(estimate, slo, mix) ─► flag when observed capacity is far
//!                                                    below the estimate, with the numbers
//! ```
//!
//! Each fit is recursive least squares with exponential forgetting on *relative* residuals
//! (samples are divided by the current prediction, so a 3% error weighs the same at 6 ms and
//! at 60 ms). It starts from the prior (the catalog estimate) with a wide covariance, so the
//! first samples move it quickly and later ones refine it. The covariance is capped at the
//! prior's so forgetting cannot blow it up when the batch size stays constant.
//! See `docs/profiles.md` for the equations and the measured convergence.

use nalgebra::{Matrix2, Vector2};
use serde::{Deserialize, Serialize};
use wvo_api::{Profile, Slo};

use crate::{replica_capacity, PerfError, TokenMix};

/// Tuning of the calibration.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CalibrationConfig {
    /// RLS forgetting factor per accepted sample, 0 < f <= 1 (0.998: ~500 samples, about 40
    /// minutes of 5 s windows, of memory).
    pub forgetting: f64,
    /// Samples from replicas younger than this are warm-up and ignored, s.
    pub warmup_s: f64,
    /// A sample whose relative residual exceeds this many predicted standard deviations is
    /// an outlier.
    pub outlier_sigmas: f64,
    /// Relative standard deviation assumed for the prior (how wrong the estimate may be).
    pub prior_rel_std: f64,
    /// Relative measurement noise assumed before any sample, and its floor.
    pub noise_rel_std: f64,
    /// After this many outliers in a row the server is taken to have changed: the fit's
    /// covariance is reset to the prior's and the sample is used.
    pub max_consecutive_outliers: u32,
}

impl Default for CalibrationConfig {
    fn default() -> Self {
        Self {
            forgetting: 0.998,
            warmup_s: 120.0,
            outlier_sigmas: 4.0,
            prior_rel_std: 0.5,
            noise_rel_std: 0.05,
            max_consecutive_outliers: 30,
        }
    }
}

/// One decode observation of a replica over a scrape window.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DecodeSample {
    /// Mean number of running (decoding) requests per decode step, requests.
    pub batch: f64,
    /// Mean decode-step time (inter-token latency without prefill stalls), ms.
    pub itl_ms: f64,
    /// Age of the replica at the sample, s.
    pub replica_age_s: f64,
}

/// One prefill observation of a replica over a scrape window.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrefillSample {
    /// Mean prompt tokens per prefill step (input tokens x requests in the step), tokens.
    pub batch_tokens: f64,
    /// Mean prefill time: observed TTFT minus the queueing time, ms.
    pub prefill_ms: f64,
    /// Age of the replica at the sample, s.
    pub replica_age_s: f64,
}

/// What happened to a sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SampleOutcome {
    /// Used to update the fit.
    Accepted,
    /// Ignored: the replica was warming up.
    WarmUp,
    /// Ignored: too far from the prediction.
    Outlier,
    /// Ignored: not finite, negative, or zero time.
    Invalid,
    /// Used after a run of outliers: the fit was reset to re-learn a changed server.
    Reset,
}

/// Physical bounds of the parameters: the calibrated profile never leaves them.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileBounds {
    /// Lowest `alpha, beta, gamma, delta`, ms.
    pub min: [f64; 4],
    /// Highest `alpha, beta, gamma, delta`, ms.
    pub max: [f64; 4],
}

impl ProfileBounds {
    /// Bounds around a prior profile: `alpha` and `delta` within [prior/2, 20*prior] (no
    /// server beats its roofline by 2x when the prior assumes 60-75% of peak), `beta` and
    /// `gamma` within [0, 20*prior + a small absolute slack].
    pub fn around(prior: &Profile) -> Self {
        Self {
            min: [prior.alpha * 0.5, 0.0, 0.0, prior.delta * 0.5],
            max: [
                prior.alpha * 20.0,
                prior.beta * 20.0 + 0.05 * prior.alpha,
                prior.gamma * 20.0 + 10.0,
                prior.delta * 20.0 + 1e-4,
            ],
        }
    }

    /// Bounds from an estimate: like [`around`](Self::around), but `alpha` and `delta` never
    /// below the roofline floors (100% of peak bandwidth and compute).
    pub fn from_estimate(e: &crate::estimate::Estimate, prior: &Profile) -> Self {
        let mut b = Self::around(prior);
        b.min[0] = b.min[0].max(e.alpha_floor);
        b.min[3] = b.min[3].max(e.delta_floor);
        b
    }

    fn clamp(&self, i: usize, v: f64) -> f64 {
        v.max(self.min[i]).min(self.max[i])
    }
}

/// Recursive least-squares state of one line `y = a + b*x` (serializable).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LineFit {
    /// Intercept and slope, `[a, b]` (ms, ms per unit of x).
    pub theta: [f64; 2],
    /// Parameter covariance in units of the relative noise variance, row-major 2x2.
    pub cov: [[f64; 2]; 2],
    /// Prior covariance (the cap and the reset value), row-major 2x2.
    pub prior_cov: [[f64; 2]; 2],
    /// Estimated relative noise variance of a sample (dimensionless).
    pub noise_var: f64,
    /// Samples accepted since creation.
    pub accepted: u64,
    /// Samples rejected as outliers since creation.
    pub outliers: u64,
    /// Warm-up samples ignored since creation.
    pub warmup: u64,
    /// Outliers in a row (reset after `max_consecutive_outliers`).
    pub consecutive_outliers: u32,
    /// Smallest and largest x accepted (the range the fit has seen).
    pub x_range: [f64; 2],
}

fn m2(a: [[f64; 2]; 2]) -> Matrix2<f64> {
    Matrix2::new(a[0][0], a[0][1], a[1][0], a[1][1])
}

fn a2(m: &Matrix2<f64>) -> [[f64; 2]; 2] {
    [[m[(0, 0)], m[(0, 1)]], [m[(1, 0)], m[(1, 1)]]]
}

impl LineFit {
    /// A fit starting at `theta` with relative standard deviation `rel_std` on each
    /// parameter (a zero parameter gets `rel_std * scale` instead).
    fn new(theta: [f64; 2], scale: [f64; 2], cfg: &CalibrationConfig) -> Self {
        let s = |v: f64, sc: f64| (cfg.prior_rel_std * v.abs().max(sc)).powi(2);
        let noise = cfg.noise_rel_std.powi(2);
        // Covariance in units of the noise variance (RLS convention).
        let p = [
            [s(theta[0], scale[0]) / noise, 0.0],
            [0.0, s(theta[1], scale[1]) / noise],
        ];
        Self {
            theta,
            cov: p,
            prior_cov: p,
            noise_var: noise,
            accepted: 0,
            outliers: 0,
            warmup: 0,
            consecutive_outliers: 0,
            x_range: [f64::INFINITY, f64::NEG_INFINITY],
        }
    }

    /// Predicted y at x, ms.
    pub fn predict(&self, x: f64) -> f64 {
        self.theta[0] + self.theta[1] * x
    }

    /// Relative standard error of the prediction at x (dimensionless).
    pub fn rel_std_error(&self, x: f64) -> f64 {
        let y = self.predict(x);
        if y <= 0.0 {
            return f64::INFINITY;
        }
        let v = Vector2::new(1.0 / y, x / y);
        let q = (v.transpose() * m2(self.cov) * v)[(0, 0)];
        (q.max(0.0) * self.noise_var).sqrt()
    }

    fn observe(
        &mut self,
        x: f64,
        y: f64,
        age_s: f64,
        cfg: &CalibrationConfig,
        bounds: (usize, &ProfileBounds),
    ) -> SampleOutcome {
        if !(x.is_finite() && y.is_finite() && age_s.is_finite()) || x < 0.0 || y <= 0.0 {
            return SampleOutcome::Invalid;
        }
        if age_s < cfg.warmup_s {
            self.warmup += 1;
            return SampleOutcome::WarmUp;
        }
        let floor = 1e-9;
        let yhat = self.predict(x).max(floor);
        let v = Vector2::new(1.0 / yhat, x / yhat); // normalized regressor
        let target = y / yhat; // normalized observation (1 when the prediction is right)
        let p = m2(self.cov);
        let q = (v.transpose() * p * v)[(0, 0)].max(0.0);
        let r = target - 1.0; // relative residual
        let noise = self.noise_var.max(cfg.noise_rel_std.powi(2) * 0.01);
        let gate = cfg.outlier_sigmas * (noise * (1.0 + q)).sqrt();
        let mut outcome = SampleOutcome::Accepted;
        let mut p = p;
        if r.abs() > gate {
            self.consecutive_outliers += 1;
            if self.consecutive_outliers <= cfg.max_consecutive_outliers {
                self.outliers += 1;
                return SampleOutcome::Outlier;
            }
            // A run of outliers: the server changed. Start again from a wide covariance
            // around the current parameters.
            p = m2(self.prior_cov);
            self.noise_var = cfg.noise_rel_std.powi(2);
            outcome = SampleOutcome::Reset;
        }
        self.consecutive_outliers = 0;
        let lambda = cfg.forgetting;
        let q = (v.transpose() * p * v)[(0, 0)].max(0.0);
        let k = p * v / (lambda + q);
        let theta = Vector2::new(self.theta[0], self.theta[1]);
        let pred = (v.transpose() * theta)[(0, 0)];
        let theta = theta + k * (target - pred);
        let mut p_new = (p - k * v.transpose() * p) / lambda;
        // Symmetrize and cap at the prior covariance (no wind-up without excitation).
        p_new = (p_new + p_new.transpose()) * 0.5;
        let prior = m2(self.prior_cov);
        if p_new.trace() > prior.trace() {
            p_new *= prior.trace() / p_new.trace();
        }
        let (i, b) = bounds;
        self.theta = [b.clamp(i, theta[0]), b.clamp(i + 1, theta[1])];
        self.cov = a2(&p_new);
        // Noise: exponentially weighted mean of squared relative residuals (gated, so
        // outliers never inflate it).
        let w = (1.0 - lambda).max(0.02);
        self.noise_var = (1.0 - w) * self.noise_var + w * r.powi(2).min(gate.powi(2));
        self.accepted += 1;
        self.x_range = [self.x_range[0].min(x), self.x_range[1].max(x)];
        outcome
    }
}

/// Confidence in a calibrated profile, 0..1 per half and overall.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Confidence {
    /// Decode fit: `1 - e/0.10` clamped to 0..1, where `e` is the larger relative standard
    /// error of the predicted ITL at batch 1 and at `maxBatchSize`.
    pub decode: f64,
    /// Prefill fit: the same at the smallest and largest prompt tokens seen (at least 1 and
    /// 1024 tokens).
    pub prefill: f64,
    /// `min(decode, prefill)`.
    pub overall: f64,
}

/// A calibrated profile: the prior, both fits and the bounds. This is what the controller
/// keeps in the VA status (serde, camelCase) so a restart or a new leader keeps what was
/// learned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CalibratedProfile {
    /// The profile calibration started from (the catalog estimate or an inline profile).
    pub prior: Profile,
    /// Bounds the parameters never leave.
    pub bounds: ProfileBounds,
    /// Decode fit: `ITL = alpha + beta * batch`.
    pub decode: LineFit,
    /// Prefill fit: `T = gamma + delta * tokens`.
    pub prefill: LineFit,
}

impl CalibratedProfile {
    /// Starts from `prior` within `bounds`.
    pub fn new(prior: Profile, bounds: ProfileBounds, cfg: &CalibrationConfig) -> Self {
        // Scales for zero parameters: what a typical sample's share would be.
        let b = f64::from(prior.max_batch_size.max(1));
        Self {
            prior,
            bounds,
            decode: LineFit::new(
                [prior.alpha, prior.beta],
                [prior.alpha, prior.alpha / b],
                cfg,
            ),
            prefill: LineFit::new(
                [prior.gamma, prior.delta],
                [prior.alpha, prior.alpha / 1024.0],
                cfg,
            ),
        }
    }

    /// Feeds one decode sample.
    pub fn observe_decode(&mut self, s: &DecodeSample, cfg: &CalibrationConfig) -> SampleOutcome {
        let bounds = self.bounds;
        self.decode
            .observe(s.batch, s.itl_ms, s.replica_age_s, cfg, (0, &bounds))
    }

    /// Feeds one prefill sample.
    pub fn observe_prefill(&mut self, s: &PrefillSample, cfg: &CalibrationConfig) -> SampleOutcome {
        let bounds = self.bounds;
        self.prefill.observe(
            s.batch_tokens,
            s.prefill_ms,
            s.replica_age_s,
            cfg,
            (2, &bounds),
        )
    }

    /// The calibrated profile (within the bounds; `maxBatchSize` is the prior's).
    pub fn profile(&self) -> Profile {
        Profile {
            alpha: self.bounds.clamp(0, self.decode.theta[0]),
            beta: self.bounds.clamp(1, self.decode.theta[1]),
            gamma: self.bounds.clamp(2, self.prefill.theta[0]),
            delta: self.bounds.clamp(3, self.prefill.theta[1]),
            max_batch_size: self.prior.max_batch_size,
        }
    }

    /// How much the data pins the profile down; see [`Confidence`].
    pub fn confidence(&self) -> Confidence {
        let score = |e: f64| (1.0 - e / 0.10).clamp(0.0, 1.0);
        let b = f64::from(self.prior.max_batch_size.max(1));
        let d = self
            .decode
            .rel_std_error(1.0)
            .max(self.decode.rel_std_error(b));
        let (lo, hi) = if self.prefill.accepted > 0 {
            (
                self.prefill.x_range[0].max(1.0),
                self.prefill.x_range[1].max(1024.0),
            )
        } else {
            (1.0, 1024.0)
        };
        let p = self
            .prefill
            .rel_std_error(lo)
            .max(self.prefill.rel_std_error(hi));
        let (decode, prefill) = (score(d), score(p));
        Confidence {
            decode,
            prefill,
            overall: decode.min(prefill),
        }
    }
}

/// A profile the data contradicts: the capacity the observations imply is far below the
/// capacity the profile promised.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Contradiction {
    /// Capacity of the estimated (prior) profile at the SLO, req/s.
    pub estimated_rps: f64,
    /// Capacity of the calibrated profile at the SLO, req/s.
    pub observed_rps: f64,
    /// `observed / estimated`.
    pub ratio: f64,
    /// One line for `ProfileReady` with the numbers.
    pub message: String,
}

/// Flags `calibrated` when its capacity at `slo` is below `(1 - tolerance)` of the prior's
/// and its confidence is at least `min_confidence` (e.g. tolerance 0.3, confidence 0.5).
pub fn check_contradiction(
    calibrated: &CalibratedProfile,
    slo: &Slo,
    mix: &TokenMix,
    tolerance: f64,
    min_confidence: f64,
) -> Result<Option<Contradiction>, PerfError> {
    let confidence = calibrated.confidence().overall;
    if confidence < min_confidence {
        return Ok(None);
    }
    let estimated = replica_capacity(&calibrated.prior, slo, mix)?;
    let observed_profile = calibrated.profile();
    let observed = replica_capacity(&observed_profile, slo, mix)?;
    if estimated.rps <= 0.0 || observed.rps >= (1.0 - tolerance) * estimated.rps {
        return Ok(None);
    }
    let ratio = observed.rps / estimated.rps;
    let (p, o) = (&calibrated.prior, &observed_profile);
    Ok(Some(Contradiction {
        estimated_rps: estimated.rps,
        observed_rps: observed.rps,
        ratio,
        message: format!(
            "observed capacity {:.2} req/s is {:.0}% of the estimated {:.2} req/s at TTFT {} ms / ITL {} ms (alpha {:.2} vs {:.2} ms, beta {:.4} vs {:.4} ms, gamma {:.1} vs {:.1} ms, delta {:.5} vs {:.5} ms; confidence {:.2})",
            observed.rps,
            ratio * 100.0,
            estimated.rps,
            slo.ttft_ms,
            slo.itl_ms,
            o.alpha,
            p.alpha,
            o.beta,
            p.beta,
            o.gamma,
            p.gamma,
            o.delta,
            p.delta,
            confidence
        ),
    }))
}
