//! `wvo`: the Workload Variant Optimizer command line.

mod observe;
mod plan;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Workload Variant Optimizer: how many replicas of each LLM model variant to run, and on
/// which GPU type, at the lowest cost that meets every latency SLO.
#[derive(Parser)]
#[command(name = "wvo", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Offline capacity planning: place models on an inventory, no cluster needed.
    Plan(plan::PlanArgs),
    /// What wvo sees of the model servers, from Prometheus or a direct /metrics scrape.
    Observe(observe::ObserveArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Plan(args) => plan::run(&args),
        Command::Observe(args) => observe::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // One line, naming what is wrong.
            let message = format!("{e:#}").replace('\n', " ");
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
    }
}
