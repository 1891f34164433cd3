//! `wvo bench`: wvo and its peers on the same simulated traffic and GPUs (see docs/bench.md).

use crate::output;
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use wvo_api::PlanOptions;
use wvo_bench::{render_table, RunOptions, Scenario, WvoConfig, POLICIES};

/// How to print the report.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OutputFormat {
    /// The JSON contract (camelCase).
    Json,
    /// One aligned row per policy, for people.
    Table,
}

/// Arguments of `wvo bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// A built-in scenario (steady, step, diurnal, bursty, mixed-fleet, scarce, trace,
    /// flash-crowd, multi-tier, idle-burst, idle-irregular) or a scenario file (see
    /// examples/bench/).
    #[arg(long)]
    pub scenario: String,
    /// Comma-separated policies to run, in report order.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "wvo,hpa,keda,wva,static,oracle"
    )]
    pub policies: Vec<String>,
    /// Traffic seed (default: the scenario's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Simulated seconds (default: the scenario's).
    #[arg(long)]
    pub duration_seconds: Option<f64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Json)]
    pub output: OutputFormat,
    /// Planner headroom of the `wvo` policy (as `wvo run --headroom`): plan demand x (1 + H).
    #[arg(long, default_value_t = wvo_controller::reconciler::DEFAULT_HEADROOM)]
    pub wvo_headroom: f64,
    /// Scale-down hysteresis margin of the `wvo` policy (as `wvo run --scale-down-margin`).
    #[arg(long, default_value_t = wvo_controller::reconciler::DEFAULT_SCALE_DOWN_MARGIN)]
    pub wvo_scale_down_margin: f64,
    /// Write SVG charts into this directory.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Also report `hpa-tuned` and `keda-tuned`: HPA (running requests per pod, 1..256) and
    /// KEDA (waiting requests per pod, 1..64) at the cheapest target whose attainment reaches
    /// wvo's in the same run (needs wvo in --policies).
    #[arg(long)]
    pub tune_baselines: bool,
}

/// Runs `wvo bench`.
pub fn run(args: &BenchArgs) -> Result<ExitCode> {
    for p in &args.policies {
        if !POLICIES.contains(&p.as_str()) {
            bail!(
                "--policies: unknown policy {p:?}; choose from {}",
                POLICIES.join(", ")
            );
        }
    }
    if args.tune_baselines && !args.policies.iter().any(|p| p == "wvo") {
        bail!(
            "--tune-baselines: needs wvo in --policies (the tuned baselines are matched to \
             wvo's attainment)"
        );
    }
    let mut scenario = Scenario::load(&args.scenario)?;
    if let Some(d) = args.duration_seconds {
        if !(d.is_finite() && d > 0.0) {
            bail!("--duration-seconds: must be a finite number > 0, got {d}");
        }
        if d <= scenario.warmup_seconds {
            bail!(
                "--duration-seconds: must be more than the scenario's warmupSeconds ({} s), got {d}",
                scenario.warmup_seconds
            );
        }
        scenario = scenario.with_duration(d);
    }
    if !(0.0..=wvo_api::validate::MAX_HEADROOM).contains(&args.wvo_headroom) {
        bail!(
            "--wvo-headroom: must be a finite number between 0 and {} (fraction of demand), got {}",
            wvo_api::validate::MAX_HEADROOM,
            args.wvo_headroom
        );
    }
    if !(args.wvo_scale_down_margin.is_finite() && args.wvo_scale_down_margin >= 0.0) {
        bail!(
            "--wvo-scale-down-margin: must be a finite number >= 0, got {}",
            args.wvo_scale_down_margin
        );
    }
    let seed = args.seed.unwrap_or(scenario.seed);
    let defaults = WvoConfig::default();
    let wvo = WvoConfig {
        options: PlanOptions {
            headroom: args.wvo_headroom,
            ..defaults.options
        },
        scale_down_margin: args.wvo_scale_down_margin,
        ..defaults
    };
    let options = RunOptions {
        wvo,
        tune_baselines: args.tune_baselines,
    };
    let (report, runs) = wvo_bench::run_with_options(&scenario, &args.policies, seed, &options)?;
    if let Some(dir) = &args.plot {
        std::fs::create_dir_all(dir).with_context(|| format!("--plot {}", dir.display()))?;
        for (name, svg) in wvo_bench::plot::charts(&scenario, &report, &runs) {
            let path = dir.join(name);
            std::fs::write(&path, svg).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    match args.output {
        OutputFormat::Json => output::println(&serde_json::to_string_pretty(&report)?)?,
        OutputFormat::Table => output::print(&render_table(&report))?,
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    /// `wvo bench` judges wvo as `wvo run` runs by default: the bench's `wvo` policy (which
    /// links only the pure cycle) has the controller's headroom, band and demand settings.
    #[test]
    fn the_bench_runs_wvo_with_the_controllers_defaults() {
        let controller = wvo_controller::reconciler::ControllerConfig::default();
        let bench = wvo_bench::WvoConfig::default();
        assert_eq!(bench.options, controller.options);
        assert_eq!(bench.scale_down_margin, controller.scale_down_margin);
        assert_eq!(bench.demand, controller.demand);
    }
}
