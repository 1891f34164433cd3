//! `wvo bench`: wvo and its peers on the same traffic and the same emulated GPUs, in a
//! discrete-event simulation on a virtual clock (pure: no I/O apart from reading a scenario
//! file, no async, no wall clock; deterministic for a seed).
//!
//! ```text
//!  Scenario ─► per model: rate(t) ─► seeded Poisson arrivals ─► gateway
//!                                                  │ least outstanding requests over ready pods
//!                                                  │ (queue + timeout while none is ready)
//!              pods: Pending (no free GPU) ─► Starting (start-up s) ─► Ready ─► Draining
//!                    each pod = one wvo_perf::batching::Engine (its profile, KV cache)
//!              every 15 s: scrape (running, waiting, KV usage; arrival/token counters)
//!              every policy period: Policy::decide(View) ─► desired replicas per variant
//! ```
//!
//! Policies: `wvo` (the controller's `run_cycle`), `hpa`, `keda`, `wva` (crate
//! `wvo-baselines`), `static` (peak plan) and `oracle` (clairvoyant, instant start-up).
//! See `docs/bench.md` for the model, the policies and the metrics.

// Production code handles what it cannot rule out; `unwrap()` is for tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod baselines;
pub mod plot;
pub mod policy;
pub mod report;
pub mod scenario;
pub mod sim;
pub mod trace;
pub mod tune;

pub use policy::{Desired, Policy, View, Wvo, WvoConfig};
pub use report::{render_table, PolicyReport, Report, Tuning};
pub use scenario::{Scenario, BUILT_IN};
pub use sim::{RunResult, Simulation};

/// Policy names, in report order.
pub const POLICIES: [&str; 6] = ["wvo", "hpa", "keda", "wva", "static", "oracle"];

/// Errors of the benchmark.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The scenario file is not valid YAML of the expected shape.
    #[error("scenario: {0}")]
    Parse(String),
    /// A scenario field has a bad value.
    #[error("scenario: {field}: {problem}")]
    Field {
        /// Path of the field, e.g. `models[0].slo.ttftMs`.
        field: String,
        /// What is wrong and what would be right.
        problem: String,
    },
    /// The scenario file cannot be read.
    #[error("scenario {path}: {message}")]
    Io {
        /// The path given.
        path: String,
        /// Why it cannot be read.
        message: String,
    },
    /// A row of a trace file is bad.
    #[error("trace {file}: line {line}: column {column}: {problem}")]
    Trace {
        /// The trace file as the scenario names it.
        file: String,
        /// 1-based line of the file.
        line: usize,
        /// Column name (`TIMESTAMP`, `ContextTokens`, `GeneratedTokens`), or `header`/`row`.
        column: String,
        /// What is wrong.
        problem: String,
    },
    /// An unknown policy name.
    #[error("unknown policy {0:?}: choose from wvo, hpa, keda, wva, static, oracle")]
    UnknownPolicy(String),
    /// A policy failed.
    #[error("policy: {0}")]
    Policy(String),
}

impl BenchError {
    pub(crate) fn field(field: impl Into<String>, problem: impl Into<String>) -> Self {
        BenchError::Field {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// A policy by name with its default configuration.
pub fn policy_by_name(name: &str) -> Result<Box<dyn Policy>, BenchError> {
    policy_with(name, WvoConfig::default())
}

/// A policy by name; `wvo` runs with `wvo_config`, the others with their defaults.
pub fn policy_with(name: &str, wvo_config: WvoConfig) -> Result<Box<dyn Policy>, BenchError> {
    Ok(match name {
        "wvo" => Box::new(Wvo::new(wvo_config)),
        "hpa" => Box::new(baselines::HpaPolicy::new(baselines::HpaKind::Running)),
        "keda" => Box::new(baselines::HpaPolicy::new(baselines::HpaKind::Queue)),
        "wva" => Box::new(baselines::WvaPolicy::new()),
        "static" => Box::new(policy::Static::new()),
        "oracle" => Box::new(policy::Oracle::default()),
        other => return Err(BenchError::UnknownPolicy(other.to_string())),
    })
}

/// Runs `policy` on `scenario` with traffic seed `seed`.
pub fn run_policy(
    scenario: &Scenario,
    policy: Box<dyn Policy>,
    seed: u64,
) -> Result<RunResult, BenchError> {
    Simulation::new(scenario, policy, seed)?.finish()
}

/// Runs the named policies on `scenario` and reports them (in the order given), with every
/// run's full result (time series for plots).
pub fn run(
    scenario: &Scenario,
    policies: &[String],
    seed: u64,
) -> Result<(Report, Vec<RunResult>), BenchError> {
    run_with(scenario, policies, seed, WvoConfig::default())
}

/// [`run`] with the `wvo` policy configured by `wvo_config`.
pub fn run_with(
    scenario: &Scenario,
    policies: &[String],
    seed: u64,
    wvo_config: WvoConfig,
) -> Result<(Report, Vec<RunResult>), BenchError> {
    run_with_options(
        scenario,
        policies,
        seed,
        &RunOptions {
            wvo: wvo_config,
            tune_baselines: false,
        },
    )
}

/// How [`run_with_options`] runs the policies.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RunOptions {
    /// Configuration of the `wvo` policy.
    pub wvo: WvoConfig,
    /// Also report `hpa-tuned` and `keda-tuned` (after the named policies): HPA and KEDA at
    /// the cheapest target whose attainment reaches wvo's (see [`tune`]). Needs `wvo` among
    /// the policies.
    pub tune_baselines: bool,
}

/// Runs the named policies (in the order given), then the tuned baselines when asked, and
/// reports them with every run's full result (time series for plots).
pub fn run_with_options(
    scenario: &Scenario,
    policies: &[String],
    seed: u64,
    options: &RunOptions,
) -> Result<(Report, Vec<RunResult>), BenchError> {
    let wvo_at = policies.iter().position(|p| p == "wvo");
    if options.tune_baselines && wvo_at.is_none() {
        return Err(BenchError::Policy(
            "tuning the baselines needs wvo among the policies: its attainment is the goal".into(),
        ));
    }
    // Each policy runs its own simulation of the same seeded traffic: in parallel on the
    // machine's cores (results do not depend on that).
    let mut runs = par_map(policies, |name| {
        run_policy(scenario, policy_with(name, options.wvo)?, seed)
    })?;
    runs.reserve(2);
    let mut rows: Vec<PolicyReport> = runs
        .iter()
        .map(|r| PolicyReport::from_run(scenario, r))
        .collect();
    if let (true, Some(w)) = (options.tune_baselines, wvo_at) {
        let goal = rows[w].slo_attainment;
        for kind in [baselines::HpaKind::Running, baselines::HpaKind::Queue] {
            let tuned = tune::tune(scenario, kind, goal, seed)?;
            rows.push(tuned.report);
            runs.push(tuned.run);
        }
    }
    let report = Report {
        scenario: scenario.name.clone(),
        seed,
        simulated_seconds: scenario.duration_seconds,
        scored_seconds: scenario.duration_seconds - scenario.warmup_seconds,
        policies: rows,
    };
    Ok((report, runs))
}

/// Runs `f` on every item, in parallel on up to the machine's cores; results in order.
pub(crate) fn par_map<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(&T) -> Result<R, BenchError> + Sync,
) -> Result<Vec<R>, BenchError> {
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(items.len())
        .max(1);
    if threads == 1 {
        return items.iter().map(&f).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut out: Vec<Option<Result<R, BenchError>>> = (0..items.len()).map(|_| None).collect();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(item) = items.get(i) else {
                            break;
                        };
                        done.push((i, f(item)));
                    }
                    done
                })
            })
            .collect();
        for w in workers {
            match w.join() {
                Ok(done) => {
                    for (i, r) in done {
                        out[i] = Some(r);
                    }
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    out.into_iter()
        .map(|r| r.unwrap_or_else(|| Err(BenchError::Policy("a parallel run was lost".into()))))
        .collect()
}
