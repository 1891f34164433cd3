//! `wvo`: the Workload Variant Optimizer command line.

// Production code handles what it cannot rule out; `unwrap()` is for tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod bench;
mod demo;
mod dos_bench;
mod observe;
mod output;
mod plan;
mod profile;
mod run;
mod scale_bench;

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
    /// Estimated profile of a catalog model on an accelerator (and its capacity at an SLO).
    Profile(profile::ProfileArgs),
    /// The controller: plan, stabilize, actuate and report every cycle (leader-elected).
    Run(Box<run::RunArgs>),
    /// The whole system on one machine: emulated cluster, model servers, traffic, controller.
    Demo(demo::DemoArgs),
    /// Print the CustomResourceDefinitions (apply with `wvo crds | kubectl apply -f -`).
    Crds,
    /// Simulate wvo and its peers (HPA, KEDA, WVA, static, oracle) on the same traffic.
    Bench(bench::BenchArgs),
    /// The controller's cost per cycle (time, API requests by verb, RSS, CPU) at 100 to
    /// thousands of VAs, against the Kubernetes API emulator.
    BenchScale(scale_bench::ScaleBenchArgs),
    /// Flood the status API's what-if endpoint (N clients, big bodies, exact solver) and
    /// measure the controller: answers by status, RSS, cycle period, longest solve.
    BenchDos(dos_bench::DosBenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Plan(args) => plan::run(&args),
        Command::Observe(args) => observe::run(&args),
        Command::Profile(args) => profile::run(&args),
        Command::Run(args) => run::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Crds => run::crds(),
        Command::Bench(args) => bench::run(&args),
        Command::BenchScale(args) => scale_bench::run(&args),
        Command::BenchDos(args) => dos_bench::run(&args),
    };
    match result {
        Ok(code) => code,
        // The reader of our output left (`wvo crds | head`): nothing more to say.
        Err(e) if output::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, naming what is wrong.
            let message = format!("{e:#}").replace('\n', " ");
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
    }
}
