//! A paced load for tests: requests offered straight to a [`ModelServer`] (no HTTP) on a
//! fixed schedule, with each completion logged, so a test can compare what a collector reads
//! with what the server really did.

use super::ModelServer;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request that finished: when, and its prompt and output tokens.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Finished {
    /// When the request finished (wall clock).
    pub at: Instant,
    /// Prompt tokens, tokens.
    pub input_tokens: u32,
    /// Generated tokens, tokens.
    pub output_tokens: u32,
}

/// Completions of a [`paced_load`], in the order they finished.
pub type FinishedLog = Arc<Mutex<Vec<Finished>>>;

/// Offers `rps` requests per second to `server`, request `i` at `i / rps` s from the start,
/// at most `max` requests; request `i` has the tokens `mix[i % mix.len()]` (input, output).
/// Each completion is pushed to `log`. Aborting the handle drops the requests in flight.
/// An empty `mix` or a rate that is not positive offers nothing.
pub fn paced_load(
    server: Arc<ModelServer>,
    rps: f64,
    max: u32,
    mix: Vec<(u32, u32)>,
    log: FinishedLog,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if mix.is_empty() || !(rps > 0.0 && rps.is_finite()) {
            return;
        }
        let start = tokio::time::Instant::now();
        let mut inflight = tokio::task::JoinSet::new();
        for (i, &(input_tokens, output_tokens)) in (0..max).zip(mix.iter().cycle()) {
            tokio::time::sleep_until(start + Duration::from_secs_f64(f64::from(i) / rps)).await;
            let server = server.clone();
            let log = log.clone();
            inflight.spawn(async move {
                if server.submit(input_tokens, output_tokens).await.is_ok() {
                    if let Ok(mut l) = log.lock() {
                        l.push(Finished {
                            at: Instant::now(),
                            input_tokens,
                            output_tokens,
                        });
                    }
                }
            });
        }
        while inflight.join_next().await.is_some() {}
    })
}

/// The completions in `log` that finished within `[from, to]`.
pub fn finished_between(log: &FinishedLog, from: Instant, to: Instant) -> Vec<Finished> {
    let l = log.lock().map(|l| l.clone()).unwrap_or_default();
    l.into_iter()
        .filter(|f| f.at >= from && f.at <= to)
        .collect()
}
