//! The demand a model's plan must serve, from what the collector saw (pure: no I/O, no
//! async, no clock; time is an input).
//!
//! ```text
//!  Observation (arrival rate over the collector's window, waiting requests on the servers
//!  and at the gateway, KV-cache usage) each cycle
//!      │
//!      ├─► level: fast rise (a rise is projected over the window's lag), slow fall
//!      ├─► backlog: waiting requests drained once new replicas serve (start-up + cycle),
//!      │            capped, and less what spare ready capacity drains already
//!      ├─► KV guard: full KV caches with requests waiting while the profile says the ready
//!      │             replicas suffice: the profile is optimistic, ask for one step more
//!      └─► forecast: rate history ─► period (configured, or found by autocorrelation)
//!                    ─► the highest rate one period ago over the coming start-up horizon;
//!                    used only while it predicted the last period well
//!      ▼
//!  Demand { plan_rps = max(level or observed, forecast) + backlog, ... }
//! ```
//!
//! [`ModelDemand`] keeps one model's state between cycles; [`ModelDemand::update`] takes one
//! observation and the [`Settings`] in force and returns the [`Demand`] to plan for.

// Production code handles what it cannot rule out; `unwrap()` is for tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod history;
pub mod period;

use std::collections::VecDeque;

pub use history::History;
pub use period::Detected;

/// Width of one history bucket, s.
pub const BUCKET_SECONDS: f64 = 60.0;
/// Longest period looked for by default, s (one day).
pub const DEFAULT_MAX_PERIOD_SECONDS: f64 = 86_400.0;
/// Shortest period looked for by default, s.
pub const DEFAULT_MIN_PERIOD_SECONDS: f64 = 300.0;
/// Seconds between period detections while a period is known.
pub const DETECT_EVERY_SECONDS: f64 = 600.0;
/// Seconds between period detections while none is known (a new model's period is found
/// soon after its history first holds two of it).
pub const DETECT_UNKNOWN_EVERY_SECONDS: f64 = 120.0;
/// Relative error within which a forecast counts as a hit.
pub const FORECAST_TOLERANCE: f64 = 0.25;
/// Share of the last period's forecasts that must hit for the forecast to be used.
pub const FORECAST_MIN_HIT_SHARE: f64 = 0.8;
/// Share of the last period's forecasts with load (in the prediction or the observation)
/// that must hit too.
pub const FORECAST_MIN_ACTIVE_HIT_SHARE: f64 = 0.5;
/// KV-cache usage (0..1) at which the KV guard looks at waiting requests.
pub const KV_PRESSURE: f64 = 0.9;
/// What the KV guard adds to the ready capacity, as a fraction of it.
pub const KV_GUARD_STEP: f64 = 0.25;
/// A rise is projected at most to this multiple of the observed rate.
pub const MAX_RISE_FACTOR: f64 = 2.0;
/// A change of the observed rate between two cycles counts as a rise when above this many
/// standard deviations of Poisson noise on the window.
pub const RISE_SIGMAS: f64 = 2.0;

/// One cycle's observation of a model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Observation {
    /// When it was taken, s (any fixed origin; increasing).
    pub at_seconds: f64,
    /// Arrival rate over the collector's window, req/s.
    pub arrival_rps: f64,
    /// Requests waiting now: in the servers' queues plus the gateway's queue, requests;
    /// None when unknown.
    pub waiting: Option<f64>,
    /// Mean KV-cache usage of the ready replicas now, 0..1; None when unknown.
    pub kv_usage: Option<f64>,
}

/// What the forecast may do.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ForecastSettings {
    /// False turns the forecast off (level, backlog and guard still apply).
    pub enabled: bool,
    /// The load's period, s, when the user knows it (`forecast.periodSeconds`); None finds
    /// it by autocorrelation.
    pub period_seconds: Option<f64>,
    /// Shortest period looked for, s.
    pub min_period_seconds: f64,
    /// Longest period looked for, s (the history holds two of them).
    pub max_period_seconds: f64,
    /// Scale-down window while a trusted forecast says the load stays below the plan for a
    /// whole stabilization window, s (default 15: one `wvo run` cycle).
    pub quick_scale_down_seconds: f64,
}

impl Default for ForecastSettings {
    fn default() -> Self {
        ForecastSettings {
            enabled: true,
            period_seconds: None,
            min_period_seconds: DEFAULT_MIN_PERIOD_SECONDS,
            max_period_seconds: DEFAULT_MAX_PERIOD_SECONDS,
            quick_scale_down_seconds: 15.0,
        }
    }
}

/// The settings of one update.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    /// How far ahead the plan must hold, s: the start-up of a new replica plus one cycle.
    pub horizon_seconds: f64,
    /// Mean age of the observed rate, s: half the collector's window plus the scrape age. A
    /// rise is projected over it; forecasts are shifted by it.
    pub lag_seconds: f64,
    /// The collector's rate window, s (sets the Poisson noise of the observed rate).
    pub window_seconds: f64,
    /// Time constant of the slow fall of the level, s.
    pub fall_seconds: f64,
    /// The TTFT target, s: the backlog is drained no slower than this once the replicas it
    /// needs are ready.
    pub ttft_seconds: f64,
    /// The backlog adds at most this multiple of the level, dimensionless.
    pub backlog_cap: f64,
    /// Capacity of the ready replicas at the SLO now, req/s; None when unknown.
    pub ready_capacity_rps: Option<f64>,
    /// Ready replicas now.
    pub ready_replicas: u32,
    /// The model's scale-down stabilization window, s.
    pub stabilization_seconds: f64,
    /// Forecast settings.
    pub forecast: ForecastSettings,
}

impl Default for Settings {
    /// What `wvo run` uses for a VA that sets nothing: 120 s start-up + 15 s cycle, a 60 s
    /// window scraped every 15 s, 60 s fall, backlog at most doubling the level.
    fn default() -> Self {
        Settings {
            horizon_seconds: 135.0,
            lag_seconds: 45.0,
            window_seconds: 60.0,
            fall_seconds: 60.0,
            ttft_seconds: 1.0,
            backlog_cap: 1.0,
            ready_capacity_rps: None,
            ready_replicas: 0,
            stabilization_seconds: 300.0,
            forecast: ForecastSettings::default(),
        }
    }
}

/// Where the forecast stands.
#[derive(Clone, Debug, PartialEq)]
pub enum ForecastStatus {
    /// Turned off in the settings.
    Disabled,
    /// No period yet (configured none, none found, or too little history), with why.
    NoPeriod(String),
    /// A period is known but the forecast is not trusted (too few checks, or it missed).
    Untrusted {
        /// The period, s.
        period_seconds: f64,
        /// Share of the checked forecasts that hit, 0..=1.
        hit_share: f64,
        /// Forecasts checked over the last period.
        checked: usize,
    },
    /// In use.
    Active {
        /// The period, s.
        period_seconds: f64,
        /// Share of the checked forecasts that hit, 0..=1.
        hit_share: f64,
        /// The highest rate one period ago over the horizon, req/s.
        forecast_rps: f64,
    },
}

impl ForecastStatus {
    /// One line for a status: `disabled`, `no period: <why>`, `period 3600 s, not trusted
    /// (40% of 52 checks hit)` or `period 3600 s, forecast 42.00 req/s (95% of checks hit)`.
    pub fn summary(&self) -> String {
        match self {
            ForecastStatus::Disabled => "disabled".to_string(),
            ForecastStatus::NoPeriod(why) => format!("no period: {why}"),
            ForecastStatus::Untrusted {
                period_seconds,
                hit_share,
                checked,
            } => format!(
                "period {period_seconds:.0} s, not trusted ({:.0}% of {checked} checks hit)",
                hit_share * 100.0
            ),
            ForecastStatus::Active {
                period_seconds,
                hit_share,
                forecast_rps,
            } => format!(
                "period {period_seconds:.0} s, forecast {forecast_rps:.2} req/s ({:.0}% of checks hit)",
                hit_share * 100.0
            ),
        }
    }
}

/// The demand to plan for, and how it was made.
#[derive(Clone, Debug, PartialEq)]
pub struct Demand {
    /// Arrival rate to plan for, req/s.
    pub plan_rps: f64,
    /// The observed rate, req/s.
    pub observed_rps: f64,
    /// Fast-rise / slow-fall level, req/s.
    pub level_rps: f64,
    /// Rate added to drain the backlog, req/s.
    pub backlog_rps: f64,
    /// Floor set by the KV guard, req/s (None when it did not fire).
    pub kv_guard_rps: Option<f64>,
    /// The forecast's state.
    pub forecast: ForecastStatus,
    /// Scale-down window to use instead of the model's, s (a trusted forecast says the load
    /// stays below the plan for the whole window); None keeps the model's.
    pub scale_down_window_seconds: Option<f64>,
}

impl Demand {
    /// One line for a decision's reason: what the plan's rate is made of.
    pub fn explain(&self) -> String {
        let mut parts = vec![format!("observed {:.2} req/s", self.observed_rps)];
        if (self.level_rps - self.observed_rps).abs() > 1e-9 {
            parts.push(format!("level {:.2}", self.level_rps));
        }
        if let ForecastStatus::Active {
            period_seconds,
            forecast_rps,
            ..
        } = self.forecast
        {
            parts.push(format!(
                "forecast {forecast_rps:.2} (period {period_seconds:.0} s)"
            ));
        }
        if self.backlog_rps > 0.0 {
            parts.push(format!("+ backlog {:.2}", self.backlog_rps));
        }
        if let Some(k) = self.kv_guard_rps {
            parts.push(format!("KV guard {k:.2}"));
        }
        format!("demand {:.2} req/s ({})", self.plan_rps, parts.join(", "))
    }
}

/// One model's demand state between cycles.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelDemand {
    /// Recent observations (time, rate), for the rise test; a few cycles.
    recent: VecDeque<(f64, f64)>,
    /// The level of the last update, req/s, and when.
    level: Option<(f64, f64)>,
    history: History,
    /// Detected period and when it was last looked for.
    detected: Option<Detected>,
    detected_at: Option<f64>,
    /// Forecast checks over the last period: (time, hit, active), active when the
    /// prediction or the observation had load (an idle model's silences predicted as
    /// silences are hits that say little about the period).
    checks: VecDeque<(f64, bool, bool)>,
    /// The history was restored: rebuild the checks from it once a period is known.
    replay_checks: bool,
}

impl Default for ModelDemand {
    fn default() -> Self {
        ModelDemand::new(DEFAULT_MAX_PERIOD_SECONDS)
    }
}

fn finite_or(v: f64, or: f64) -> f64 {
    if v.is_finite() {
        v
    } else {
        or
    }
}

impl ModelDemand {
    /// A model with no history, keeping enough for two periods of `max_period_seconds`.
    pub fn new(max_period_seconds: f64) -> Self {
        ModelDemand {
            recent: VecDeque::new(),
            level: None,
            history: History::new(BUCKET_SECONDS, history_capacity(max_period_seconds)),
            detected: None,
            detected_at: None,
            checks: VecDeque::new(),
            replay_checks: false,
        }
    }

    /// The rate history (for status and restore).
    pub fn history(&self) -> &History {
        &self.history
    }

    /// Replaces the rate history (restored after a restart or a failover).
    /// The forecast's checks are rebuilt from it once a period is known (one per bucket of
    /// the last period: the bucket's peak against the peak one period before), so a forecast
    /// that predicted the restored period well is trusted again at once.
    pub fn restore_history(&mut self, history: History) {
        self.history = history;
        self.detected_at = None;
        self.replay_checks = true;
    }

    /// Rebuilds the checks of the period `p` before `now` from the history.
    fn replay(&mut self, now: f64, p: f64, window_seconds: f64) {
        self.checks.clear();
        let bucket = self.history.bucket_seconds();
        let mut t = ((now - p) / bucket).ceil() * bucket;
        while t + bucket <= now {
            let mid = t + bucket / 2.0;
            if let (Some(observed), Some(predicted)) = (
                self.history.max_between(mid, mid),
                self.history.max_between(mid - p, mid - p),
            ) {
                self.checks.push_back((
                    mid,
                    forecast_hit(observed, predicted, window_seconds),
                    observed > 0.0 || predicted > 0.0,
                ));
            }
            t += bucket;
        }
    }

    /// One cycle: folds `obs` into the state and returns the demand to plan for.
    pub fn update(&mut self, obs: &Observation, s: &Settings) -> Demand {
        let now = obs.at_seconds;
        let observed = finite_or(obs.arrival_rps, 0.0).max(0.0);
        let lag = finite_or(s.lag_seconds, 0.0).max(0.0);
        let horizon = finite_or(s.horizon_seconds, 0.0).max(0.0);

        // Fast rise: a rise beyond the window's noise since the previous cycle is projected
        // over the lag of the window (a trailing mean trails a rising rate by half its span).
        let mut projected = observed;
        if let Some(&(t_prev, r_prev)) = self.recent.back() {
            let dt = now - t_prev;
            let window = finite_or(s.window_seconds, 60.0).max(1.0);
            let noise = RISE_SIGMAS * (2.0 * observed.max(r_prev) / window).sqrt();
            if dt > 0.0 && observed - r_prev > noise {
                let slope = (observed - r_prev) / dt;
                projected = (observed + slope * lag).min(MAX_RISE_FACTOR * observed);
            }
        }
        self.recent.push_back((now, observed));
        while self.recent.len() > 8 {
            self.recent.pop_front();
        }
        // Slow fall: the level decays toward the projected rate with `fall_seconds`.
        let fall = finite_or(s.fall_seconds, 0.0).max(0.0);
        let level = match self.level {
            Some((t, prev)) if prev > projected && fall > 0.0 && now >= t => {
                projected + (prev - projected) * (-(now - t) / fall).exp()
            }
            _ => projected,
        };
        self.level = Some((now, level));

        let forecast = self.forecast(now, observed, lag, horizon, s);
        let trusted = matches!(forecast, ForecastStatus::Active { .. });
        let base = match forecast {
            // A trusted forecast knows when the load falls: no slow fall, never below now.
            // It also knows a rise it predicted: the rise is projected only when the load
            // goes beyond the forecast (a surprise), not while it climbs toward it.
            ForecastStatus::Active { forecast_rps, .. } => {
                let now = if observed > forecast_rps {
                    projected
                } else {
                    observed
                };
                now.max(forecast_rps)
            }
            _ => level,
        };

        // Backlog: drained within the TTFT budget once the replicas it needs serve (start-up
        // + cycle), capped, less what the ready replicas' spare capacity drains already.
        let waiting = obs
            .waiting
            .filter(|w| w.is_finite() && *w > 0.0)
            .unwrap_or(0.0);
        let drain_seconds = finite_or(s.ttft_seconds, 1.0).max(horizon).max(1.0);
        let spare = s
            .ready_capacity_rps
            .filter(|c| c.is_finite())
            .map_or(0.0, |c| (c - base).max(0.0));
        let cap = finite_or(s.backlog_cap, 0.0).max(0.0) * base.max(observed);
        let backlog_rps = (waiting / drain_seconds).min(cap).sub_floor(spare);

        // KV guard: full caches with requests waiting while the profile says the ready
        // replicas cover the load: the profile is optimistic there; one step more.
        let kv_guard_rps = match (obs.kv_usage, s.ready_capacity_rps) {
            (Some(kv), Some(c))
                if kv >= KV_PRESSURE
                    && c.is_finite()
                    && c > 0.0
                    && c >= base
                    && waiting >= f64::from(s.ready_replicas.max(1)) =>
            {
                Some(c * (1.0 + KV_GUARD_STEP))
            }
            _ => None,
        };
        let plan_rps = (base + backlog_rps).max(kv_guard_rps.unwrap_or(0.0));

        // Quick scale-down: the forecast says nothing above the plan for a whole window, and
        // its prediction of now hit (a forecast that is wrong now, e.g. a burst it did not
        // predict, must not take replicas away while they hold the burst's requests).
        let now_hit = self.checks.back().is_none_or(|c| c.0 < now || c.1);
        let scale_down_window_seconds = if trusted && now_hit {
            self.period().and_then(|p| {
                let window = finite_or(s.stabilization_seconds, 0.0).max(horizon);
                self.history
                    .max_between(now - p + lag, now - p + lag + window)
                    .filter(|&peak| peak <= plan_rps)
                    .map(|_| s.forecast.quick_scale_down_seconds.min(window))
            })
        } else {
            None
        };

        Demand {
            plan_rps,
            observed_rps: observed,
            level_rps: level,
            backlog_rps,
            kv_guard_rps,
            forecast,
            scale_down_window_seconds,
        }
    }

    /// The period in force: configured, else detected.
    fn period(&self) -> Option<f64> {
        self.detected.map(|d| d.period_seconds)
    }

    /// Records `observed`, checks what one period ago predicted for now, finds the period
    /// when due, and returns the forecast's state.
    fn forecast(
        &mut self,
        now: f64,
        observed: f64,
        lag: f64,
        horizon: f64,
        s: &Settings,
    ) -> ForecastStatus {
        let f = s.forecast;
        // Check the seasonal prediction of now before recording now.
        if let Some(p) = self.period() {
            if let Some(predicted) = self.history.max_between(now - p, now - p) {
                self.checks.push_back((
                    now,
                    forecast_hit(observed, predicted, s.window_seconds),
                    observed > 0.0 || predicted > 0.0,
                ));
            }
            while self.checks.front().is_some_and(|(t, _, _)| *t < now - p) {
                self.checks.pop_front();
            }
        }
        self.history.record(now, observed);
        if !f.enabled {
            return ForecastStatus::Disabled;
        }
        match f.period_seconds.filter(|p| p.is_finite() && *p > 0.0) {
            Some(p) => {
                if self.period() != Some(p) {
                    self.detected = Some(Detected {
                        period_seconds: p,
                        correlation: f64::NAN,
                    });
                    self.replay_checks = true;
                }
            }
            None => {
                let every = if self.detected.is_some() {
                    DETECT_EVERY_SECONDS
                } else {
                    DETECT_UNKNOWN_EVERY_SECONDS
                };
                let due = self.detected_at.is_none_or(|t| now - t >= every || now < t);
                if due {
                    self.detected_at = Some(now);
                    let found = period::detect(
                        &self.history.means(),
                        self.history.bucket_seconds(),
                        f.min_period_seconds,
                        f.max_period_seconds,
                    );
                    // A new period is checked on the history at once (what its forecast
                    // would have predicted over the last period), not from scratch: the
                    // history already holds the two periods the detector needed.
                    if found.map(|d| d.period_seconds) != self.period() {
                        self.checks.clear();
                        self.replay_checks = true;
                    }
                    self.detected = found;
                }
            }
        }
        if self.replay_checks {
            if let Some(p) = self.period() {
                self.replay_checks = false;
                self.replay(now, p, s.window_seconds);
            }
        }
        let Some(p) = self.period() else {
            return ForecastStatus::NoPeriod(
                if self.history.span_seconds() < 2.0 * f.min_period_seconds {
                    format!(
                        "{:.0} s of rate history, a period needs two repeats",
                        self.history.span_seconds()
                    )
                } else {
                    "no repeating pattern in the rate history".to_string()
                },
            );
        };
        let checked = self.checks.len();
        let hits = self.checks.iter().filter(|c| c.1).count();
        let hit_share = if checked > 0 {
            hits as f64 / checked as f64
        } else {
            0.0
        };
        // Of the checks with load, at least FORECAST_MIN_ACTIVE_HIT_SHARE must hit too: a
        // model idle most of the period would otherwise trust any period (its silences hit).
        let active = self.checks.iter().filter(|c| c.2).count();
        let active_hits = self.checks.iter().filter(|c| c.2 && c.1).count();
        let active_ok =
            active == 0 || active_hits as f64 >= FORECAST_MIN_ACTIVE_HIT_SHARE * active as f64;
        // A whole period of checks: at least one per bucket over the period.
        let enough = checked as f64 >= (p / BUCKET_SECONDS).floor().max(1.0) * 0.9
            && self
                .checks
                .front()
                .is_some_and(|(t, _, _)| now - t >= 0.9 * p);
        if !(enough && hit_share >= FORECAST_MIN_HIT_SHARE && active_ok) {
            return ForecastStatus::Untrusted {
                period_seconds: p,
                hit_share,
                checked,
            };
        }
        // The true rate over [now, now + horizon] was observed `lag` later one period ago
        // (bucket resolution: the bucket holding the start counts whole).
        match self
            .history
            .max_between(now - p + lag, now - p + lag + horizon)
        {
            Some(forecast_rps) => ForecastStatus::Active {
                period_seconds: p,
                hit_share,
                forecast_rps,
            },
            None => ForecastStatus::Untrusted {
                period_seconds: p,
                hit_share,
                checked,
            },
        }
    }
}

/// Whether a forecast of `predicted` req/s hit the `observed` rate: within
/// [`FORECAST_TOLERANCE`] of the larger, or within three standard deviations of the Poisson
/// noise of a rate measured over `window_seconds`.
fn forecast_hit(observed: f64, predicted: f64, window_seconds: f64) -> bool {
    let window = finite_or(window_seconds, 60.0).max(1.0);
    let top = observed.max(predicted);
    let allowed = (FORECAST_TOLERANCE * top).max(3.0 * (top / window).sqrt());
    (observed - predicted).abs() <= allowed
}

/// Buckets of rate history a model keeps to find periods up to `max_period_seconds`: two of
/// them (the detector compares the load with itself one period earlier), and two spare.
pub fn history_capacity(max_period_seconds: f64) -> usize {
    let span =
        finite_or(max_period_seconds, DEFAULT_MAX_PERIOD_SECONDS).clamp(60.0, 7.0 * 86_400.0);
    (2.0 * span / BUCKET_SECONDS).ceil() as usize + 2
}

/// `x - floor`, never below 0.
trait SubFloor {
    fn sub_floor(self, floor: f64) -> f64;
}

impl SubFloor for f64 {
    fn sub_floor(self, floor: f64) -> f64 {
        (self - floor).max(0.0)
    }
}
