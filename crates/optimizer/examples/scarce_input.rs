//! Writes a seeded scarce plan input (JSON) for `wvo plan`, to measure the planner at scale:
//! `cargo run --release -p wvo-optimizer --example scarce_input -- 10000 6 1 0.5 > scarce.json`
//! (models, accelerator types, seed, scarcity: the share of the GPUs all demand would want).

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = (
        args.first().and_then(|a| a.parse::<usize>().ok()),
        args.get(1).map_or(Some(6), |a| a.parse::<usize>().ok()),
        args.get(2).map_or(Some(1), |a| a.parse::<u64>().ok()),
        args.get(3).map_or(Some(0.5), |a| a.parse::<f64>().ok()),
    );
    let (Some(models), Some(types), Some(seed), Some(scarcity)) = parsed else {
        eprintln!("usage: scarce_input MODELS [TYPES=6] [SEED=1] [SCARCITY=0.5]");
        return ExitCode::from(2);
    };
    let input = wvo_optimizer::synthetic::scarce_instance(models, types, seed, scarcity);
    match serde_json::to_string(&input) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("scarce_input: {e}");
            ExitCode::FAILURE
        }
    }
}
