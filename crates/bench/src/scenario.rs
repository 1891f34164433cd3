//! Scenarios: inventory, models (VariantAutoscaling-like), traffic per model, timing.
//!
//! A scenario is a YAML file (see `examples/bench/`); the built-in ones are those files,
//! embedded. [`Scenario::parse`] checks everything and resolves catalog profiles once (at the
//! model's mean token mix), so the simulator and the planner use the same numbers. Files a
//! scenario names (trace CSVs) are relative to the scenario file's directory; the built-in
//! scenarios embed theirs.

use serde::Deserialize;
use std::f64::consts::PI;
use std::path::Path;
use std::sync::Arc;
use wvo_api::{AcceleratorType, Profile, ProfileSpec, Slo};
use wvo_perf::{Dtype, EstimateOptions, TokenMix};

use crate::trace::{Replay, Trace};
use crate::BenchError;

/// Names of the built-in scenarios, in report order.
pub const BUILT_IN: [&str; 11] = [
    "steady",
    "step",
    "diurnal",
    "bursty",
    "mixed-fleet",
    "scarce",
    "trace",
    "flash-crowd",
    "multi-tier",
    "idle-burst",
    "idle-irregular",
];

/// A rise of a `piecewise` shape to at least 1.5x within this many seconds counts as an
/// upward load step (for `recoverySeconds`), s.
pub const STEP_RISE_SECONDS: f64 = 60.0;

/// The YAML text of a built-in scenario (the files under `examples/bench/`).
pub fn built_in_yaml(name: &str) -> Option<&'static str> {
    Some(match name {
        "steady" => include_str!("../../../examples/bench/steady.yaml"),
        "step" => include_str!("../../../examples/bench/step.yaml"),
        "diurnal" => include_str!("../../../examples/bench/diurnal.yaml"),
        "bursty" => include_str!("../../../examples/bench/bursty.yaml"),
        "mixed-fleet" => include_str!("../../../examples/bench/mixed-fleet.yaml"),
        "scarce" => include_str!("../../../examples/bench/scarce.yaml"),
        "trace" => include_str!("../../../examples/bench/trace.yaml"),
        "flash-crowd" => include_str!("../../../examples/bench/flash-crowd.yaml"),
        "multi-tier" => include_str!("../../../examples/bench/multi-tier.yaml"),
        "idle-burst" => include_str!("../../../examples/bench/idle-burst.yaml"),
        "idle-irregular" => include_str!("../../../examples/bench/idle-irregular.yaml"),
        _ => return None,
    })
}

/// A file the built-in scenarios name (under `examples/bench/`), embedded.
pub fn built_in_file(name: &str) -> Option<&'static str> {
    Some(match name {
        "trace.csv" => include_str!("../../../examples/bench/trace.csv"),
        _ => return None,
    })
}

/// Where the files a scenario names come from.
enum Files<'a> {
    /// Relative to this directory.
    Dir(&'a Path),
    /// The embedded files of the built-in scenarios.
    BuiltIn,
}

impl Files<'_> {
    /// (name for messages, contents) of `file`; the error says why it cannot be read.
    fn read(&self, file: &str) -> Result<(String, String), String> {
        match self {
            Files::Dir(dir) => {
                let path = dir.join(file);
                let name = path.display().to_string();
                std::fs::read_to_string(&path)
                    .map(|text| (name.clone(), text))
                    .map_err(|e| format!("cannot read {name}: {e}"))
            }
            Files::BuiltIn => built_in_file(file)
                .map(|text| (file.to_string(), text.to_string()))
                .ok_or_else(|| format!("{file} is not a file of the built-in scenarios")),
        }
    }
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
    #[serde(default)]
    warmup_seconds: f64,
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
    #[serde(default)]
    tokens: Option<Tokens>,
    #[serde(default)]
    scale_to_zero: Option<ScaleToZeroFile>,
}

/// `scaleToZero` of a scenario model, as in the VariantAutoscaling.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ScaleToZeroFile {
    idle_seconds: f64,
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
    /// Token counts of generated requests; None for a trace, whose rows bring their own.
    pub tokens: Option<Tokens>,
}

impl Traffic {
    /// Mean token mix: the trace's mean prompt and generated tokens, or `tokens`.
    pub fn mix(&self) -> TokenMix {
        match (&self.shape, &self.tokens) {
            (
                Shape::Trace {
                    replay: Some(r), ..
                },
                _,
            ) => TokenMix {
                avg_input_tokens: r.trace.mean_input,
                avg_output_tokens: r.trace.mean_output,
            },
            (_, Some(t)) => TokenMix {
                avg_input_tokens: f64::from(t.input),
                avg_output_tokens: f64::from(t.output),
            },
            _ => TokenMix {
                avg_input_tokens: 0.0,
                avg_output_tokens: 1.0,
            },
        }
    }

    /// Largest prompt a request of this traffic has, tokens.
    pub fn max_input(&self) -> u32 {
        match (&self.shape, &self.tokens) {
            (
                Shape::Trace {
                    replay: Some(r), ..
                },
                _,
            ) => r.trace.max_input,
            (_, Some(t)) => t.input,
            _ => 0,
        }
    }
}

fn one_f64() -> f64 {
    1.0
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
    /// Piecewise linear through `points` (`[t, rate]`: s, req/s; times non-decreasing; two
    /// points at the same time make a jump, the later one holds from then on); the first
    /// point's rate before it, the last point's after it.
    #[serde(rename_all = "camelCase")]
    Piecewise {
        /// `[time s, rate req/s]` pairs, times non-decreasing.
        points: Vec<[f64; 2]>,
    },
    /// Replay of a per-request CSV (Azure LLM inference trace format, see
    /// [`crate::trace`]): each row one request with its own prompt and output tokens.
    #[serde(rename_all = "camelCase")]
    Trace {
        /// The CSV, relative to the scenario file's directory.
        file: String,
        /// Copies of each row (expected): > 1 replays rows several times (a seeded extra
        /// copy for the fractional part), < 1 keeps a row with that probability. Default 1.
        #[serde(default = "one_f64")]
        rate_scale: f64,
        /// Stretch of time: a row at trace time x arrives at x * timeScale s. Default 1.
        #[serde(default = "one_f64")]
        time_scale: f64,
        /// The loaded trace (set by [`Scenario::parse`]; None: no arrivals, rate 0).
        #[serde(skip)]
        replay: Option<Arc<Replay>>,
    },
}

impl Shape {
    /// Rate at time `t` (s), req/s.
    pub fn rate(&self, t: f64) -> f64 {
        match *self {
            Shape::Piecewise { ref points } => piecewise_rate(points, t),
            Shape::Trace { ref replay, .. } => replay.as_ref().map_or(0.0, |r| r.rate(t)),
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
            Shape::Piecewise { ref points } => {
                // Linear between points: the ends and every point inside.
                points
                    .iter()
                    .filter(|p| p[0] >= from && p[0] <= to)
                    .map(|p| p[1])
                    .fold(self.rate(from).max(self.rate(to)), f64::max)
            }
            Shape::Trace { ref replay, .. } => {
                replay.as_ref().map_or(0.0, |r| r.max_rate(from, to))
            }
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
    /// A `piecewise` rise to at least 1.5x within [`STEP_RISE_SECONDS`] counts from its start
    /// (consecutive rising segments once); a trace has none.
    pub fn steps(&self, until: f64) -> Vec<f64> {
        match *self {
            Shape::Piecewise { ref points } => {
                let mut out = Vec::new();
                let mut rising = false;
                for w in points.windows(2) {
                    let (a, b) = (w[0], w[1]);
                    let step =
                        b[1] > a[1] && b[1] >= 1.5 * a[1] && b[0] - a[0] <= STEP_RISE_SECONDS;
                    if step && !rising && a[0] > 0.0 && a[0] < until {
                        out.push(a[0]);
                    }
                    rising = step;
                }
                out
            }
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

    /// The shape's name as written in files.
    pub fn kind(&self) -> &'static str {
        match self {
            Shape::Constant { .. } => "constant",
            Shape::Step { .. } => "step",
            Shape::Diurnal { .. } => "diurnal",
            Shape::Bursty { .. } => "bursty",
            Shape::Piecewise { .. } => "piecewise",
            Shape::Trace { .. } => "trace",
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
        let positive_scale = |field: &str, v: f64| {
            if v.is_finite() && v > 0.0 && v <= 1e6 {
                Ok(())
            } else {
                Err(BenchError::field(
                    format!("{at}.{field}"),
                    format!("must be a finite factor > 0 (at most 1e6), got {v}"),
                ))
            }
        };
        match *self {
            Shape::Constant { rate } => rate_ok("rate", rate),
            Shape::Piecewise { ref points } => {
                if points.is_empty() {
                    return Err(BenchError::field(
                        format!("{at}.points"),
                        "must list at least one [t, rate] point",
                    ));
                }
                for (i, p) in points.iter().enumerate() {
                    if !(p[0].is_finite() && p[0] >= 0.0) {
                        return Err(BenchError::field(
                            format!("{at}.points[{i}]"),
                            format!("time must be a finite number >= 0 s, got {}", p[0]),
                        ));
                    }
                    if !(p[1].is_finite() && p[1] >= 0.0) {
                        return Err(BenchError::field(
                            format!("{at}.points[{i}]"),
                            format!("rate must be a finite rate >= 0 req/s, got {}", p[1]),
                        ));
                    }
                    if i > 0 && p[0] < points[i - 1][0] {
                        return Err(BenchError::field(
                            format!("{at}.points[{i}]"),
                            format!(
                                "times must not decrease: {} s after {} s",
                                p[0],
                                points[i - 1][0]
                            ),
                        ));
                    }
                }
                Ok(())
            }
            Shape::Trace {
                rate_scale,
                time_scale,
                ..
            } => {
                positive_scale("rateScale", rate_scale)?;
                positive_scale("timeScale", time_scale)
            }
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

/// Rate of a piecewise-linear shape at `t` (s), req/s.
fn piecewise_rate(points: &[[f64; 2]], t: f64) -> f64 {
    let i = points.partition_point(|p| p[0] <= t);
    match (i.checked_sub(1).map(|k| points[k]), points.get(i)) {
        (None, Some(b)) => b[1],
        (Some(a), None) => a[1],
        (Some(a), Some(b)) => a[1] + (b[1] - a[1]) * (t - a[0]) / (b[0] - a[0]),
        (None, None) => 0.0,
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
    /// `scaleToZero.idleSeconds`, s: wvo may take the model to zero replicas after this
    /// long idle (None: it keeps one replica, the VA's default).
    pub scale_to_zero_idle_seconds: Option<f64>,
}

impl Model {
    /// Mean token mix of the model's traffic.
    pub fn mix(&self) -> TokenMix {
        self.traffic.mix()
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
    /// Nothing before this time is scored (requests arriving before it, GPU time, scaling
    /// actions); traffic runs and policies act from 0, s.
    pub warmup_seconds: f64,
    /// GPUs per type and their price.
    pub inventory: Vec<AcceleratorType>,
    /// Models in file order.
    pub models: Vec<Model>,
}

impl Scenario {
    /// A built-in scenario by name, or a scenario file by path.
    pub fn load(name_or_path: &str) -> Result<Scenario, BenchError> {
        if let Some(yaml) = built_in_yaml(name_or_path) {
            return Scenario::parse_with(yaml, &Files::BuiltIn);
        }
        let text = std::fs::read_to_string(name_or_path).map_err(|e| BenchError::Io {
            path: name_or_path.to_string(),
            message: format!(
                "{e} (not a file, nor a built-in scenario: {})",
                BUILT_IN.join(", ")
            ),
        })?;
        let dir = Path::new(name_or_path)
            .parent()
            .unwrap_or_else(|| Path::new("."));
        Scenario::parse_in(&text, dir)
    }

    /// Parses and checks a scenario (files it names relative to the current directory);
    /// errors name the offending field.
    pub fn parse(yaml: &str) -> Result<Scenario, BenchError> {
        Scenario::parse_in(yaml, Path::new("."))
    }

    /// Parses and checks a scenario whose files (trace CSVs) are relative to `dir`.
    pub fn parse_in(yaml: &str, dir: &Path) -> Result<Scenario, BenchError> {
        Scenario::parse_with(yaml, &Files::Dir(dir))
    }

    fn parse_with(yaml: &str, files: &Files<'_>) -> Result<Scenario, BenchError> {
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
        if !(file.warmup_seconds.is_finite()
            && file.warmup_seconds >= 0.0
            && file.warmup_seconds < file.duration_seconds)
        {
            return Err(BenchError::field(
                "warmupSeconds",
                format!(
                    "must be a finite number >= 0 s and below durationSeconds ({}), got {}",
                    file.duration_seconds, file.warmup_seconds
                ),
            ));
        }
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
            if let Some(p) = m.slo.percentile {
                use wvo_api::validate::{MAX_SLO_PERCENTILE, MIN_SLO_PERCENTILE};
                if !(p.is_finite() && p > MIN_SLO_PERCENTILE && p <= MAX_SLO_PERCENTILE) {
                    return Err(BenchError::field(
                        format!("{at}.slo.percentile"),
                        format!(
                            "must be more than {MIN_SLO_PERCENTILE} and at most \
                             {MAX_SLO_PERCENTILE} %, got {p}"
                        ),
                    ));
                }
            }
            m.traffic.check(&format!("{at}.traffic"))?;
            let mut shape = m.traffic.clone();
            if let Shape::Trace {
                file: name,
                rate_scale,
                time_scale,
                replay,
            } = &mut shape
            {
                if m.tokens.is_some() {
                    return Err(BenchError::field(
                        format!("{at}.tokens"),
                        "not used with traffic shape trace (each row brings its own tokens): \
                         remove it",
                    ));
                }
                let (shown, text) = files
                    .read(name)
                    .map_err(|e| BenchError::field(format!("{at}.traffic.file"), e))?;
                let trace = Trace::parse(&text, &shown)?;
                *replay = Some(Arc::new(Replay::new(
                    Arc::new(trace),
                    *rate_scale,
                    *time_scale,
                )));
            } else {
                let Some(tokens) = m.tokens else {
                    return Err(BenchError::field(
                        format!("{at}.tokens"),
                        format!(
                            "required for traffic shape {} ({{input, output}}; only a trace \
                             brings its own tokens)",
                            shape.kind()
                        ),
                    ));
                };
                if tokens.output == 0 {
                    return Err(BenchError::field(
                        format!("{at}.tokens.output"),
                        "must be at least 1 token",
                    ));
                }
            }
            let traffic = Traffic {
                shape,
                tokens: m.tokens,
            };
            if m.variants.is_empty() {
                return Err(BenchError::field(
                    format!("{at}.variants"),
                    "must list at least one variant",
                ));
            }
            let mix = traffic.mix();
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
                    let need = u64::from(traffic.max_input()) + 1;
                    if kv < need {
                        let which = match &traffic.shape {
                            Shape::Trace {
                                replay: Some(r),
                                file,
                                ..
                            } => format!(
                                "the largest prompt of {file} (line {}) plus its first token",
                                r.trace.max_input_line
                            ),
                            _ => "one request's prompt plus its first token".to_string(),
                        };
                        return Err(BenchError::field(
                            format!("{vat}.kvCacheTokens"),
                            format!("{kv} tokens cannot hold {which} ({need})"),
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
            let scale_to_zero_idle_seconds = match m.scale_to_zero {
                None => None,
                Some(z) if z.idle_seconds.is_finite() && z.idle_seconds >= 10.0 => {
                    Some(z.idle_seconds)
                }
                Some(z) => {
                    return Err(BenchError::field(
                        format!("{at}.scaleToZero.idleSeconds"),
                        format!("must be a number of seconds >= 10 (got {})", z.idle_seconds),
                    ))
                }
            };
            models.push(Model {
                name: m.name.clone(),
                priority: m.priority,
                slo: m.slo,
                min_replicas: m.min_replicas,
                variants,
                traffic,
                scale_to_zero_idle_seconds,
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
            warmup_seconds: file.warmup_seconds,
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
