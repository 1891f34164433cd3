//! Planner speed, optimality gap and memory at scale.
//!
//! `cargo bench -p wvo-optimizer --bench scale` prints, per size: models, variants, binding
//! accelerator types, median solve time over repeated runs, cost, proven lower bound, gap, and
//! peak heap bytes (counted by a wrapping global allocator). Instances come from
//! `wvo_optimizer::synthetic::instance` (seeded, 8 accelerator types).

// The one place with unsafe code in the workspace: a global allocator must implement the
// unsafe `GlobalAlloc` trait to count the peak heap; it forwards to `System`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use wvo_api::SolverChoice;

struct Counting;
static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    // (models, inventory tightness, seeds, runs per seed)
    let sizes: &[(usize, f64, u64, usize)] = if quick {
        &[(1_000, 1.0, 3, 3)]
    } else {
        &[
            (1_000, 1.0, 10, 5),
            (1_000, 0.8, 10, 5),
            (2_000, 1.0, 5, 3),
            (5_000, 1.0, 3, 3),
            (10_000, 1.0, 3, 3),
            (10_000, 0.6, 3, 1),
        ]
    };
    println!(
        "{:>7} {:>6} {:>5} {:>5} {:>7} {:>9} {:>9} {:>12} {:>8} {:>9}",
        "models",
        "vars",
        "tight",
        "seeds",
        "binding",
        "median ms",
        "max ms",
        "worst gap %",
        "feasible",
        "peak MiB"
    );
    for &(models, tightness, seeds, runs) in sizes {
        let mut times = Vec::new();
        let mut worst_gap: Option<f64> = None;
        let mut all_feasible = true;
        let mut peak = 0;
        let mut binding = 0;
        let mut variants = 0;
        for seed in 1..=seeds {
            let input = wvo_optimizer::synthetic::instance(models, seed, tightness);
            let problem =
                wvo_optimizer::Problem::from_input(&input).expect("synthetic input is valid");
            variants = problem.variants.len();
            let base = CURRENT.load(Ordering::Relaxed);
            PEAK.store(base, Ordering::Relaxed);
            let mut outcome = None;
            for _ in 0..runs {
                let started = Instant::now();
                let result = wvo_optimizer::solve(
                    &problem,
                    SolverChoice::Fast,
                    &wvo_optimizer::Deadline::none(),
                )
                .expect("plan");
                times.push(started.elapsed().as_secs_f64() * 1e3);
                outcome = Some(result);
            }
            peak = peak.max(PEAK.load(Ordering::Relaxed) - base);
            let solution = outcome.expect("at least one run");
            let (x, lb) = (solution.x, solution.lower_bound);
            let cost = problem.cost(&x);
            let usage = problem.usage(&x);
            binding = binding.max(
                problem
                    .accelerators
                    .iter()
                    .zip(&usage)
                    .filter(|(a, &u)| u + 4 >= u64::from(a.count))
                    .count(),
            );
            let output = wvo_optimizer::report(&problem, &x, lb, "decomposition");
            all_feasible &= output.feasible;
            if let Some(lb) = output.lower_bound_cost_per_hour {
                let gap = (cost - lb) / cost * 100.0;
                worst_gap = Some(worst_gap.map_or(gap, |w: f64| w.max(gap)));
            }
        }
        times.sort_by(f64::total_cmp);
        println!(
            "{:>7} {:>6} {:>5.2} {:>5} {:>7} {:>9.1} {:>9.1} {:>12} {:>8} {:>9.2}",
            models,
            variants,
            tightness,
            seeds,
            binding,
            times[times.len() / 2],
            times[times.len() - 1],
            worst_gap.map_or("-".to_string(), |g| format!("{g:.4}")),
            all_feasible,
            peak as f64 / (1024.0 * 1024.0)
        );
    }
}
