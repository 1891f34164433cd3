//! Scenarios: inventory, models (VariantAutoscaling-like), traffic per model, timing.
//!
//! A scenario is a YAML file (see `examples/bench/`); the built-in ones are those files,
//! embedded. [`Scenario::parse`] checks everything and resolves catalog profiles once (at the
//! model's mean token mix), so the simulator and the planner use the same numbers.

use serde::Deserialize;
use std::f64::consts::PI;
use wvo_api::{AcceleratorType, Profile, ProfileSpec, Slo};
use wvo_perf::{Dtype, EstimateOptions, TokenMix};

use crate::BenchError;

/// Names of the built-in scenarios, in report order.
pub const BUILT_IN: [&str; 6] = [
    "steady",
    "step",
    "diurnal",
    "bursty",
    "mixed-fleet",
    "scarce",
];

/// The YAML text of a built-in scenario (the files under `examples/bench/`).
pub fn built_in_yaml(name: &str) -> Option<&'static str> {
    Some(match name {
        "steady" => include_str!("../../../examples/bench/steady.yaml"),
        "step" => include_str!("../../../examples/bench/step.yaml"),
        "diurnal" => include_str!("../../../examples/bench/diurnal.yaml"),
        "bursty" => include_str!("../../../examples/bench/bursty.yaml"),
        "mixed-fleet" => include_str!("../../../examples/bench/mixed-fleet.yaml"),
        "scarce" => include_str!("../../../examples/bench/scarce.yaml"),
        _ => return None,
    })
}

/// The scenario file as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ScenarioFile {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default = "default_duration")]
    duration_seconds: f64,
    #[serde(default = "default_startup")]
    startup_seconds: f64,
    #[serde(default = "default_timeout")]
    timeout_seconds: f64,
    #[serde(default = "default_drain")]
    drain_seconds: f64,
    #[serde(default = "default_seed")]
    seed: u64,
    inventory: Vec<AcceleratorType>,
    models: Vec<ModelFile>,
}

fn default_duration() -> f64 {
    7200.0
}
fn default_startup() -> f64 {
    90.0
}
fn default_timeout() -> f64 {
    60.0
}
fn default_drain() -> f64 {
    30.0
}
fn default_seed() -> u64 {
    1
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ModelFile {
    name: String,
    #[serde(default)]
    priority: i32,
    slo: Slo,
    #[serde(default)]
    min_replicas: u32,
    variants: Vec<VariantFile>,
    traffic: Shape,
    tokens: Tokens,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct VariantFile {
    name: String,
    accelerator: String,
    #[serde(default = "one")]
    gpus_per_replica: u32,
    #[serde(default)]
    min_replicas: u32,
    #[serde(default)]
    max_replicas: Option<u32>,
    profile: ProfileSpec,
    /// KV cache of one replica, tokens (inline profiles; catalog profiles bring their own).
    #[serde(default)]
    kv_cache_tokens: Option<u64>,
}

fn one() -> u32 {
    1
}

/// Output-length distribution of the generated requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OutputDistribution {
    /// Geometric on `1, 2, ...` with the given mean (what the queueing model assumes).
    #[default]
    Geometric,
    /// Every request generates exactly the mean (rounded).
    Fixed,
}

/// Token counts of a model's requests.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tokens {
    /// Prompt tokens of every request, tokens.
    pub input: u32,
    /// Mean generated tokens per request, tokens (>= 1).
    pub output: u32,
    /// How output lengths vary around `output`. Default geometric.
    #[serde(default)]
    pub output_distribution: OutputDistribution,
}

/// Arrival rate over time of one model (req/s), plus its token mix.
#[derive(Clone, Debug, PartialEq)]
pub struct Traffic {
    /// Shape of the rate over time.
    pub shape: Shape,
    /// Token counts.
    pub tokens: Tokens,
}

/// Rate shapes. All rates in req/s, times in s from the start.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "shape", rename_all = "camelCase", deny_unknown_fields)]
pub enum Shape {
    /// A constant `rate`.
    #[serde(rename_all = "camelCase")]
    Constant {
        /// req/s.
        rate: f64,
    },
    /// `rate` until `atSeconds`, then `rate * factor`.
    #[serde(rename_all = "camelCase")]
    Step {
        /// req/s before the step.
        rate: f64,
        /// Multiplier at the step.
        factor: f64,
        /// Time of the step, s.
        at_seconds: f64,
    },
    /// `min + (max - min) * (1 - cos(2 pi t / period)) / 2`: starts at `min`, peaks mid-period.
    #[serde(rename_all = "camelCase")]
    Diurnal {
        /// Lowest rate, req/s.
        min: f64,
        /// Highest rate, req/s.
        max: f64,
        /// Period, s.
        period_seconds: f64,
    },
    /// On/off bursts: `peak` for `burstSeconds` starting at `firstBurstSeconds` and then every
    /// `periodSeconds`, `base` otherwise.
    #[serde(rename_all = "camelCase")]
    Bursty {
        /// Rate between bursts, req/s.
        base: f64,
        /// Rate during a burst, req/s.
        peak: f64,
        /// Burst period, s.
        period_seconds: f64,
        /// Burst length, s.
        burst_seconds: f64,
        /// Start of the first burst, s.
        #[serde(default)]
        first_burst_seconds: f64,
    },
}

impl Shape {
    /// Rate at time `t` (s), req/s.
    pub fn rate(&self, t: f64) -> f64 {
        match *self {
            Shape::Constant { rate } => rate,
            Shape::Step {
                rate,
                factor,
                at_seconds,
            } => {
                if t < at_seconds {
                    rate
                } else {
                    rate * factor
                }
            }
            Shape::Diurnal {
                min,
                max,
                period_seconds,
            } => min + (max - min) * (1.0 - (2.0 * PI * t / period_seconds).cos()) / 2.0,
            Shape::Bursty {
                base,
                peak,
                period_seconds,
                burst_seconds,
                first_burst_seconds,
            } => {
                if t < first_burst_seconds {
                    return base;
                }
                let phase = (t - first_burst_seconds) % period_seconds;
                if phase < burst_seconds {
                    peak
                } else {
                    base
                }
            }
        }
    }

    /// Highest rate over `[from, to]` (s), req/s.
    pub fn max_rate(&self, from: f64, to: f64) -> f64 {
        match *self {
            Shape::Constant { rate } => rate,
            Shape::Step { .. } | Shape::Bursty { .. } => {
                // Piecewise constant: the ends and every change point inside.
                let mut best = self.rate(from).max(self.rate(to));
                if let Shape::Bursty {
                    period_seconds,
                    first_burst_seconds,
                    peak,
                    ..
                } = *self
                {
                    // A burst starting inside the span.
                    let k = ((from - first_burst_seconds) / period_seconds)
                        .ceil()
                        .max(0.0);
                    if first_burst_seconds + k * period_seconds <= to {
                        best = best.max(peak);
                    }
                }
                best
            }
            Shape::Diurnal { .. } => {
                // Smooth: a fine grid (1/200 of the span, at most 1 s apart) is close enough.
                let n = (((to - from) / 1.0).ceil() as usize).clamp(1, 200);
                (0..=n)
                    .map(|i| self.rate(from + (to - from) * i as f64 / n as f64))
                    .fold(0.0, f64::max)
            }
        }
    }

    /// Times of upward load steps (a jump to at least 1.5x the rate before) up to `until`, s.
    pub fn steps(&self, until: f64) -> Vec<f64> {
        match *self {
            Shape::Step {
                factor, at_seconds, ..
            } if factor >= 1.5 && at_seconds < until => vec![at_seconds],
            Shape::Bursty {
                base,
                peak,
                period_seconds,
                first_burst_seconds,
                ..
            } if peak >= 1.5 * base => {
                let mut out = Vec::new();
                let mut t = first_burst_seconds;
                while t < until {
                    if t > 0.0 {
                        out.push(t);
                    }
                    t += period_seconds;
                }
                out
            }
            _ => Vec::new(),
        }
    }

    fn check(&self, at: &str) -> Result<(), BenchError> {
        let rate_ok = |field: &str, v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(BenchError::field(
                    format!("{at}.{field}"),
                    format!("must be a finite rate >= 0 req/s, got {v}"),
                ))
            }
        };
        let positive = |field: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(BenchError::field(
                    format!("{at}.{field}"),
                    format!("must be a finite number > 0 s, got {v}"),
                ))
            }
        };
        match *self {
            Shape::Constant { rate } => rate_ok("rate", rate),
            Shape::Step {
                rate,
                factor,
                at_seconds,
            } => {
                rate_ok("rate", rate)?;
                rate_ok("factor", factor)?;
                rate_ok("atSeconds", at_seconds)
            }
            Shape::Diurnal {
                min,
                max,
                period_seconds,
            } => {
                rate_ok("min", min)?;
                rate_ok("max", max)?;
                if max < min {
                    return Err(BenchError::field(
                        format!("{at}.max"),
                        format!("must be >= min ({min}), got {max}"),
                    ));
                }
                positive("periodSeconds", period_seconds)
            }
            Shape::Bursty {
                base,
                peak,
                period_seconds,
                burst_seconds,
                first_burst_seconds,
            } => {
                rate_ok("base", base)?;
                rate_ok("peak", peak)?;
                positive("periodSeconds", period_seconds)?;
                positive("burstSeconds", burst_seconds)?;
                rate_ok("firstBurstSeconds", first_burst_seconds)?;
                if burst_seconds > period_seconds {
                    return Err(BenchError::field(
                        format!("{at}.burstSeconds"),
                        format!("must be <= periodSeconds ({period_seconds}), got {burst_seconds}"),
                    ));
                }
                Ok(())
            }
        }
    }
}

/// One variant of a model, resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct Variant {
    /// Variant name, unique within its model.
    pub name: String,
    /// Accelerator type (in the inventory).
    pub accelerator: String,
    /// GPUs one replica holds.
    pub gpus_per_replica: u32,
    /// Minimum replicas.
    pub min_replicas: u32,
    /// Maximum replicas (None = unbounded).
    pub max_replicas: Option<u32>,
    /// Step times and batch limit of one replica.
    pub profile: Profile,
    /// KV cache of one replica, tokens (None = unlimited).
    pub kv_cache_tokens: Option<u64>,
    /// The planner's capacity of one replica at the model's SLO and mix, req/s.
    pub capacity_rps: f64,
    /// Price of one replica, $/h (GPUs x $/GPU-hour).
    pub cost_per_replica_hour: f64,
}

/// One model, resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    /// Model name.
    pub name: String,
    /// Priority tier (higher is more important).
    pub priority: i32,
    /// Latency targets (TTFT and ITL, ms).
    pub slo: Slo,
    /// Minimum replicas over all variants.
    pub min_replicas: u32,
    /// Variants in the file's order (the first is the "primary" a single-Deployment scaler
    /// drives).
    pub variants: Vec<Variant>,
    /// Its traffic.
    pub traffic: Traffic,
}

impl Model {
    /// Mean token mix of the model's traffic.
    pub fn mix(&self) -> TokenMix {
        TokenMix {
            avg_input_tokens: f64::from(self.traffic.tokens.input),
            avg_output_tokens: f64::from(self.traffic.tokens.output),
        }
    }

    /// The model in the planner's form (inline profiles, the model's SLO).
    pub fn spec(&self) -> wvo_api::ModelSpec {
        wvo_api::ModelSpec {
            name: self.name.clone(),
            model_id: None,
            priority: self.priority,
            weight: 1.0,
            slo: Some(self.slo),
            min_replicas: self.min_replicas,
            max_replicas: None,
            variants: self
                .variants
                .iter()
                .map(|v| wvo_api::VariantSpec {
                    name: v.name.clone(),
                    accelerator: v.accelerator.clone(),
                    gpus_per_replica: v.gpus_per_replica,
                    min_replicas: v.min_replicas,
                    max_replicas: v.max_replicas,
                    max_requests_per_second: None,
                    profile: Some(ProfileSpec::Inline(v.profile)),
                })
                .collect(),
        }
    }
}

/// A checked scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// Scenario name.
    pub name: String,
    /// What it exercises.
    pub description: String,
    /// Simulated time, s.
    pub duration_seconds: f64,
    /// Time from a pod getting its GPUs to serving, s.
    pub startup_seconds: f64,
    /// A request waiting this long at the gateway (no ready replica) is dropped, s.
    pub timeout_seconds: f64,
    /// Termination grace period of a pod removed by scale-down: it finishes its requests for
    /// at most this long, then is killed and what it still holds is dropped, s.
    pub drain_seconds: f64,
    /// Default seed of the traffic.
    pub seed: u64,
    /// GPUs per type and their price.
    pub inventory: Vec<AcceleratorType>,
    /// Models in file order.
    pub models: Vec<Model>,
}

impl Scenario {
    /// A built-in scenario by name, or a scenario file by path.
    pub fn load(name_or_path: &str) -> Result<Scenario, BenchError> {
        if let Some(yaml) = built_in_yaml(name_or_path) {
            return Scenario::parse(yaml);
        }
        let text = std::fs::read_to_string(name_or_path).map_err(|e| BenchError::Io {
            path: name_or_path.to_string(),
            message: format!(
                "{e} (not a file, nor a built-in scenario: {})",
                BUILT_IN.join(", ")
            ),
        })?;
        Scenario::parse(&text)
    }

    /// Parses and checks a scenario; errors name the offending field.
    pub fn parse(yaml: &str) -> Result<Scenario, BenchError> {
        let file: ScenarioFile =
            serde_norway::from_str(yaml).map_err(|e| BenchError::Parse(e.to_string()))?;
        let positive = |field: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(BenchError::field(
                    field,
                    format!("must be a finite number > 0 s, got {v}"),
                ))
            }
        };
        positive("durationSeconds", file.duration_seconds)?;
        positive("timeoutSeconds", file.timeout_seconds)?;
        if !(file.drain_seconds.is_finite() && file.drain_seconds >= 0.0) {
            return Err(BenchError::field(
                "drainSeconds",
                format!("must be a finite number >= 0 s, got {}", file.drain_seconds),
            ));
        }
        if !(file.startup_seconds.is_finite() && file.startup_seconds >= 0.0) {
            return Err(BenchError::field(
                "startupSeconds",
                format!(
                    "must be a finite number >= 0 s, got {}",
                    file.startup_seconds
                ),
            ));
        }
        if file.inventory.is_empty() {
            return Err(BenchError::field(
                "inventory",
                "must list at least one accelerator type",
            ));
        }
        for (i, a) in file.inventory.iter().enumerate() {
            if !(a.cost_per_hour.is_finite() && a.cost_per_hour >= 0.0) {
                return Err(BenchError::field(
                    format!("inventory[{i}].costPerHour"),
                    format!("must be a finite $/h >= 0, got {}", a.cost_per_hour),
                ));
            }
            if file.inventory[..i].iter().any(|b| b.name == a.name) {
                return Err(BenchError::field(
                    format!("inventory[{i}].name"),
                    format!("{} is listed twice", a.name),
                ));
            }
        }
        if file.models.is_empty() {
            return Err(BenchError::field("models", "must list at least one model"));
        }
        let mut models = Vec::with_capacity(file.models.len());
        for (mi, m) in file.models.iter().enumerate() {
            let at = format!("models[{mi}]");
            if file.models[..mi].iter().any(|o| o.name == m.name) {
                return Err(BenchError::field(
                    format!("{at}.name"),
                    format!("{} is listed twice", m.name),
                ));
            }
            if !(m.slo.ttft_ms.is_finite() && m.slo.ttft_ms > 0.0) {
                return Err(BenchError::field(
                    format!("{at}.slo.ttftMs"),
                    format!("must be > 0 ms, got {}", m.slo.ttft_ms),
                ));
            }
            if !(m.slo.itl_ms.is_finite() && m.slo.itl_ms > 0.0) {
                return Err(BenchError::field(
                    format!("{at}.slo.itlMs"),
                    format!("must be > 0 ms, got {}", m.slo.itl_ms),
                ));
            }
            m.traffic.check(&format!("{at}.traffic"))?;
            if m.tokens.output == 0 {
                return Err(BenchError::field(
                    format!("{at}.tokens.output"),
                    "must be at least 1 token",
                ));
            }
            if m.variants.is_empty() {
                return Err(BenchError::field(
                    format!("{at}.variants"),
                    "must list at least one variant",
                ));
            }
            let mix = TokenMix {
                avg_input_tokens: f64::from(m.tokens.input),
                avg_output_tokens: f64::from(m.tokens.output),
            };
            let mut variants = Vec::with_capacity(m.variants.len());
            for (vi, v) in m.variants.iter().enumerate() {
                let vat = format!("{at}.variants[{vi}]");
                if m.variants[..vi].iter().any(|o| o.name == v.name) {
                    return Err(BenchError::field(
                        format!("{vat}.name"),
                        format!("{} is listed twice", v.name),
                    ));
                }
                let Some(acc) = file.inventory.iter().find(|a| a.name == v.accelerator) else {
                    return Err(BenchError::field(
                        format!("{vat}.accelerator"),
                        format!("{} is not in the inventory", v.accelerator),
                    ));
                };
                if v.gpus_per_replica == 0 {
                    return Err(BenchError::field(
                        format!("{vat}.gpusPerReplica"),
                        "must be at least 1",
                    ));
                }
                let (profile, kv) = resolve_profile(v, &mix, &vat)?;
                if let Some(kv) = kv {
                    let need = u64::from(m.tokens.input) + 1;
                    if kv < need {
                        return Err(BenchError::field(
                            format!("{vat}.kvCacheTokens"),
                            format!("{kv} tokens cannot hold one request's prompt ({need})"),
                        ));
                    }
                }
                let cap = wvo_perf::replica_capacity(&profile, &m.slo, &mix)
                    .map_err(|e| BenchError::field(format!("{vat}.profile"), e.to_string()))?;
                variants.push(Variant {
                    name: v.name.clone(),
                    accelerator: v.accelerator.clone(),
                    gpus_per_replica: v.gpus_per_replica,
                    min_replicas: v.min_replicas,
                    max_replicas: v.max_replicas,
                    profile,
                    kv_cache_tokens: kv,
                    capacity_rps: cap.rps,
                    cost_per_replica_hour: acc.cost_per_hour * f64::from(v.gpus_per_replica),
                });
            }
            models.push(Model {
                name: m.name.clone(),
                priority: m.priority,
                slo: m.slo,
                min_replicas: m.min_replicas,
                variants,
                traffic: Traffic {
                    shape: m.traffic.clone(),
                    tokens: m.tokens,
                },
            });
        }
        Ok(Scenario {
            name: file.name,
            description: file.description,
            duration_seconds: file.duration_seconds,
            startup_seconds: file.startup_seconds,
            timeout_seconds: file.timeout_seconds,
            drain_seconds: file.drain_seconds,
            seed: file.seed,
            inventory: file.inventory,
            models,
        })
    }

    /// The same scenario cut to `seconds` of simulated time (tests, quick looks).
    pub fn with_duration(mut self, seconds: f64) -> Scenario {
        self.duration_seconds = seconds;
        self
    }

    /// Price of one GPU of `accelerator`, $/h (0 when unknown).
    pub fn gpu_price(&self, accelerator: &str) -> f64 {
        self.inventory
            .iter()
            .find(|a| a.name == accelerator)
            .map_or(0.0, |a| a.cost_per_hour)
    }
}

fn resolve_profile(
    v: &VariantFile,
    mix: &TokenMix,
    at: &str,
) -> Result<(Profile, Option<u64>), BenchError> {
    match &v.profile {
        ProfileSpec::Inline(p) => Ok((*p, v.kv_cache_tokens)),
        ProfileSpec::Catalog(c) => {
            let catalog = wvo_perf::Catalog::embedded()
                .map_err(|e| BenchError::field(format!("{at}.profile"), e.to_string()))?;
            let dtype = c
                .dtype
                .as_deref()
                .map(Dtype::parse)
                .transpose()
                .map_err(|e| BenchError::field(format!("{at}.profile.dtype"), e.to_string()))?;
            let opts = EstimateOptions {
                avg_input_tokens: mix.avg_input_tokens.max(1.0),
                avg_output_tokens: mix.avg_output_tokens,
                ..EstimateOptions::default()
            };
            let tp = c.tp.unwrap_or(v.gpus_per_replica);
            let e =
                wvo_perf::estimate_by_name(catalog, &c.catalog, &v.accelerator, tp, dtype, &opts)
                    .map_err(|e| BenchError::field(format!("{at}.profile"), e.to_string()))?;
            let profile = e.profile().ok_or_else(|| {
                BenchError::field(
                    format!("{at}.profile"),
                    format!(
                        "{} does not fit on {tp} x {}: {}",
                        c.catalog,
                        v.accelerator,
                        e.reason.clone().unwrap_or_default()
                    ),
                )
            })?;
            Ok((profile, v.kv_cache_tokens.or(Some(e.kv_cache_tokens))))
        }
    }
}
