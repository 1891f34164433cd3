//! Generates `examples/bench/trace.csv`: one hour of synthetic, bursty chat traffic in the
//! Azure LLM inference trace format (`TIMESTAMP,ContextTokens,GeneratedTokens`). Nothing of a
//! public trace is used: arrivals are a seeded Markov-modulated Poisson process, lengths are
//! seeded log-normals. Deterministic: the same seed writes the same bytes.
//!
//! ```text
//! cargo run -p wvo-bench --example gen_trace > examples/bench/trace.csv
//! cargo run -p wvo-bench --example gen_trace -- --seed 7 --seconds 600 > /tmp/t.csv
//! ```
//!
//! The traffic: a base rate of 0.8 req/s drifting by +-35% over the hour; bursts start on
//! average every 6 minutes, last 90 s on average and multiply the rate by 2.5-5x; one request
//! in six is a quick follow-up 1-8 s after another (a user's next turn). Prompts: log-normal,
//! median 900 tokens (one in ten a long-context request, median 4000), 16..8000 tokens;
//! outputs: log-normal, median 180 tokens, 1..1500 tokens.

use std::f64::consts::PI;
use std::fmt::Write as _;

use wvo_perf::workload::SplitMix64;

/// Standard normal by Box-Muller.
fn normal(rng: &mut SplitMix64) -> f64 {
    let u = rng.unit();
    let v = rng.unit_half_open();
    (-2.0 * u.ln()).sqrt() * (2.0 * PI * v).cos()
}

fn lognormal(rng: &mut SplitMix64, median: f64, sigma: f64, lo: f64, hi: f64) -> u32 {
    (median * (sigma * normal(rng)).exp()).round().clamp(lo, hi) as u32
}

/// `2024-03-04 09:00:00.0000000` plus `t` seconds (t < one day), 7 fraction digits.
fn stamp(t: f64) -> String {
    let ticks = (t * 1e7).round() as u64;
    let (secs, frac) = (ticks / 10_000_000, ticks % 10_000_000);
    let s = 9 * 3600 + secs;
    format!(
        "2024-03-04 {:02}:{:02}:{:02}.{frac:07}",
        s / 3600,
        (s / 60) % 60,
        s % 60
    )
}

/// The CSV text of `seconds` of traffic from `seed`.
fn generate(seed: u64, seconds: f64) -> String {
    let mut rng = SplitMix64::new(seed);
    let base = 0.8;
    let phase = rng.unit() * 2.0 * PI;
    // Bursts: (start, end, multiplier), exponential gaps and lengths.
    let mut bursts = Vec::new();
    let mut t = rng.exp1() * 360.0;
    while t < seconds {
        let len = 20.0 + rng.exp1() * 70.0;
        let mult = 2.5 + 2.5 * rng.unit();
        bursts.push((t, t + len, mult));
        t += len + rng.exp1() * 360.0;
    }
    let rate = |t: f64| {
        let drift = 1.0 + 0.35 * (2.0 * PI * t / 3600.0 + phase).sin();
        let burst = bursts
            .iter()
            .find(|b| b.0 <= t && t < b.1)
            .map_or(1.0, |b| b.2);
        base * drift * burst
    };
    let peak = base * 1.35 * 5.0;
    let mut times = Vec::new();
    let mut t = 0.0;
    loop {
        t += rng.exp1() / peak;
        if t >= seconds {
            break;
        }
        if rng.unit_half_open() * peak < rate(t) {
            times.push(t);
            // A user's next turn, a few seconds later.
            if rng.unit_half_open() < 1.0 / 6.0 {
                let follow = t + 1.0 + 7.0 * rng.unit();
                if follow < seconds {
                    times.push(follow);
                }
            }
        }
    }
    times.sort_by(f64::total_cmp);
    let mut out = String::from("TIMESTAMP,ContextTokens,GeneratedTokens\n");
    for t in times {
        let prompt = if rng.unit_half_open() < 0.1 {
            lognormal(&mut rng, 4000.0, 0.4, 16.0, 8000.0)
        } else {
            lognormal(&mut rng, 900.0, 0.8, 16.0, 8000.0)
        };
        let output = lognormal(&mut rng, 180.0, 0.8, 1.0, 1500.0);
        let _ = writeln!(out, "{},{prompt},{output}", stamp(t));
    }
    out
}

fn main() {
    let mut seed = 2024u64;
    let mut seconds = 3600.0;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let value = args.next();
        match (a.as_str(), value.as_deref().map(str::parse::<f64>)) {
            ("--seed", Some(Ok(v))) if v >= 0.0 => seed = v as u64,
            ("--seconds", Some(Ok(v))) if v > 0.0 && v < 86_000.0 => seconds = v,
            _ => {
                eprintln!("usage: gen_trace [--seed N] [--seconds S (< 86000)]");
                std::process::exit(2);
            }
        }
    }
    print!("{}", generate(seed, seconds));
}
