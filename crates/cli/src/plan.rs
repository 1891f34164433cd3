//! `wvo plan`: read a plan input file, print the plan.

use crate::output;
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use std::io::Read;
use std::process::ExitCode;
use wvo_api::{PlanInput, PlanOutput, SolverChoice};

/// How to print results.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for people.
    Table,
    /// The JSON contract (camelCase).
    Json,
}

/// Which algorithm to use.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum SolverArg {
    /// Exact MILP for small problems, decomposition for large ones.
    Auto,
    /// Always the exact MILP (HiGHS).
    Exact,
    /// Always the decomposition.
    Fast,
}

/// Arguments of `wvo plan`.
#[derive(Args, Debug)]
pub struct PlanArgs {
    /// Plan input (YAML or JSON): inventory, models, load, current, options. `-` reads stdin.
    pub input: String,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// Override `options.solver` from the input.
    #[arg(long, value_enum)]
    pub solver: Option<SolverArg>,
}

/// Parses plan input text: JSON when it looks like JSON, YAML otherwise. Either way a
/// parse error names the field path (`inventory[0].count: invalid value: ...`).
pub fn parse_input(text: &str, origin: &str) -> Result<PlanInput> {
    if text.trim_start().starts_with('{') {
        let mut de = serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(&mut de)
            .map_err(anyhow::Error::from)
            .and_then(|input| de.end().map(|()| input).map_err(anyhow::Error::from))
            .with_context(|| format!("{origin}: invalid JSON plan input"))
    } else {
        serde_norway::from_str(text).with_context(|| format!("{origin}: invalid YAML plan input"))
    }
}

/// Runs `wvo plan`. Bad input exits 2 with one line; any plan (also a capacity-constrained
/// one) exits 0.
pub fn run(args: &PlanArgs) -> Result<ExitCode> {
    let text = if args.input == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading plan input from stdin")?;
        s
    } else {
        std::fs::read_to_string(&args.input)
            .with_context(|| format!("cannot read {}", args.input))?
    };
    let mut input = match parse_input(&text, &args.input) {
        Ok(input) => input,
        Err(e) => {
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            return Ok(ExitCode::from(2));
        }
    };
    if let Some(solver) = args.solver {
        input.options.solver = match solver {
            SolverArg::Auto => SolverChoice::Auto,
            SolverArg::Exact => SolverChoice::Exact,
            SolverArg::Fast => SolverChoice::Fast,
        };
    }
    let plan = match wvo_optimizer::plan(&input) {
        Ok(plan) => plan,
        Err(wvo_optimizer::PlanError::Solver(e)) => anyhow::bail!("solver failed: {e}"),
        Err(e) => {
            eprintln!("error: {}: {e}", args.input);
            return Ok(ExitCode::from(2));
        }
    };
    match args.output {
        OutputFormat::Json => output::println(&serde_json::to_string_pretty(&plan)?)?,
        OutputFormat::Table => output::print(&render_table(&plan))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The plan as aligned text tables.
pub fn render_table(plan: &PlanOutput) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let w = |s: &mut String, line: String| {
        s.push_str(&line);
        s.push('\n');
    };
    w(
        &mut out,
        format!(
            "{:<24} {:<16} {:<12} {:>8} {:>6} {:>10} {:>12}",
            "MODEL", "VARIANT", "ACCELERATOR", "REPLICAS", "GPUS", "COST $/h", "CAP r/s/rep"
        ),
    );
    for v in &plan.variants {
        w(
            &mut out,
            format!(
                "{:<24} {:<16} {:<12} {:>8} {:>6} {:>10.2} {:>12.2}",
                v.model,
                v.variant,
                v.accelerator,
                v.replicas,
                v.gpus,
                v.cost_per_hour,
                v.capacity_rps
            ),
        );
    }
    out.push('\n');
    w(
        &mut out,
        format!(
            "{:<24} {:>12} {:>12} {:>8} {:>5}",
            "MODEL", "DEMAND r/s", "SERVED r/s", "SERVED%", "SLO"
        ),
    );
    for m in &plan.models {
        w(
            &mut out,
            format!(
                "{:<24} {:>12.2} {:>12.2} {:>7.1}% {:>5}",
                m.model,
                m.demand_rps,
                m.served_rps,
                m.satisfaction * 100.0,
                m.slo.as_deref().unwrap_or("-")
            ),
        );
    }
    out.push('\n');
    w(
        &mut out,
        format!("{:<12} {:>10} {:>8}", "ACCELERATOR", "AVAILABLE", "USED"),
    );
    for a in &plan.accelerators {
        w(
            &mut out,
            format!("{:<12} {:>10} {:>8}", a.name, a.available, a.used),
        );
    }
    out.push('\n');
    let _ = write!(out, "total cost: ${:.2}/h", plan.total_cost_per_hour);
    match plan.lower_bound_cost_per_hour {
        Some(lb) => {
            let gap = if plan.total_cost_per_hour > 0.0 {
                (plan.total_cost_per_hour - lb) / plan.total_cost_per_hour * 100.0
            } else {
                0.0
            };
            let _ = writeln!(out, "  lower bound: ${lb:.2}/h (gap {gap:.3}%)");
        }
        None => out.push('\n'),
    }
    let _ = writeln!(
        out,
        "feasible: {}  solver: {}  solve: {:.1} ms",
        plan.feasible, plan.solver, plan.solve_millis
    );
    for s in &plan.shortfall {
        let _ = writeln!(
            out,
            "capacity constrained: {} more {} GPUs would serve {:.2} req/s of unmet demand",
            s.missing_gpus, s.accelerator, s.unmet_rps
        );
    }
    for warning in &plan.warnings {
        let _ = writeln!(out, "warning: {warning}");
    }
    let means: Vec<&str> = plan
        .models
        .iter()
        .filter(|m| m.slo.as_deref() == Some("mean"))
        .map(|m| m.model.as_str())
        .collect();
    if !means.is_empty() {
        let _ = writeln!(
            out,
            "note: SLO targets of {} are means (no slo.percentile): the share of requests above them is not bounded",
            means.join(", ")
        );
    }
    out
}
